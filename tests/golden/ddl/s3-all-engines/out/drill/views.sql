-- Apache Drill: views over the archive of stream `orders`; needs the storage plugins `flux` and `hive` (drill/storage-*.json).
-- Views are stored in the writable workspace dfs.tmp.

CREATE OR REPLACE VIEW `dfs`.`tmp`.`orders_archive` AS
SELECT
  t.`stream` AS `stream`,
  t.`shard_id` AS `shard_id`,
  t.`sequence_number` AS `sequence_number`,
  t.`partition_key` AS `partition_key`,
  CAST(regexp_replace(regexp_replace(t.`arrival_ts`, 'T', ' '), 'Z$', '') AS TIMESTAMP) AS `arrival_ts`,
  t.`data_b64` AS `data_b64`,
  SUBSTR(t.`dir0`, 4) AS `dt`,
  SUBSTR(t.`dir1`, 6) AS `hour`,
  SUBSTR(t.`dir2`, 7) AS `shard`,
  t.`data`.`customer`.`city` AS `city`,
  CAST(regexp_replace(regexp_replace(t.`data`.`created_at`, 'T', ' '), 'Z$', '') AS TIMESTAMP) AS `created_at`,
  t.`data`.`customer_id` AS `customer_id`,
  t.`data`.`event_id` AS `event_id`,
  CAST(t.`data`.`total` AS DOUBLE) AS `total`,
  t.`data`.`_flux`.`replay`.`id` AS `replay_id`,
  (t.`data`.`_flux`.`fence`.`replay_id` IS NOT NULL) AS `is_fence`
FROM `flux`.`archive`.`stream=orders` AS t
WHERE NOT (t.`data`.`_flux`.`fence`.`replay_id` IS NOT NULL);

CREATE OR REPLACE VIEW `dfs`.`tmp`.`orders_checkpoints` AS
SELECT
  t.`shard_id` AS `shard_id`,
  t.`sequence_number` AS `sequence_number`,
  CAST(regexp_replace(regexp_replace(t.`arrival_ts`, 'T', ' '), 'Z$', '') AS TIMESTAMP) AS `arrival_ts`,
  t.`object` AS `object`,
  t.`run_id` AS `run_id`
FROM `flux`.`checkpoints`.`stream=orders` AS t;

CREATE OR REPLACE VIEW `dfs`.`tmp`.`orders_unified` AS
SELECT u.* FROM (
  SELECT 'archive' AS `origin`, a.`city`, a.`created_at`, a.`customer_id`, a.`event_id`, a.`total`, a.`replay_id`, a.`is_fence`
  FROM `dfs`.`tmp`.`orders_archive` a
  JOIN `dfs`.`tmp`.`orders_checkpoints` c ON a.`shard_id` = c.`shard_id`
  WHERE lpad(regexp_replace(a.`sequence_number`, '^0+', ''), 130, '0') <= lpad(regexp_replace(c.`sequence_number`, '^0+', ''), 130, '0')
  UNION ALL
  SELECT 'live' AS `origin`, l.`customer`.`city` AS `city`, CAST(regexp_replace(regexp_replace(l.`created_at`, 'T', ' '), 'Z$', '') AS TIMESTAMP) AS `created_at`, l.`customer_id` AS `customer_id`, l.`event_id` AS `event_id`, CAST(l.`total` AS DOUBLE) AS `total`, l.`_flux`.`replay`.`id` AS `replay_id`, (l.`_flux`.`fence`.`replay_id` IS NOT NULL) AS `is_fence`
  FROM `hive`.`default`.`orders_live` l
  LEFT JOIN (
    SELECT DISTINCT a.`event_id`
    FROM `dfs`.`tmp`.`orders_archive` a
    JOIN `dfs`.`tmp`.`orders_checkpoints` c ON a.`shard_id` = c.`shard_id`
    WHERE lpad(regexp_replace(a.`sequence_number`, '^0+', ''), 130, '0') <= lpad(regexp_replace(c.`sequence_number`, '^0+', ''), 130, '0')
  ) k ON l.`event_id` = k.`event_id`
  WHERE k.`event_id` IS NULL AND NOT (l.`_flux`.`fence`.`replay_id` IS NOT NULL)
) u;
