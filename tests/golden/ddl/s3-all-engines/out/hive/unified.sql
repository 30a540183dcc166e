-- Hive: the archive of `orders` up to each shard's checkpoint, plus the live records whose `event_id` is not in that part of the archive.
-- Run after hive/archive.sql and hive/live.sql. See docs/sql.md for what it guarantees.

DROP VIEW IF EXISTS `default`.`orders_unified`;

CREATE VIEW `default`.`orders_unified` AS
SELECT u.* FROM (
  SELECT 'archive' AS `origin`, a.`city`, a.`created_at`, a.`customer_id`, a.`event_id`, a.`total`, a.`replay_id`, a.`is_fence`
  FROM `default`.`orders_archive` a
  JOIN `default`.`orders_checkpoints` c ON a.`shard_id` = c.`shard_id`
  WHERE lpad(regexp_replace(a.`sequence_number`, '^0+', ''), 130, '0') <= lpad(regexp_replace(c.`sequence_number`, '^0+', ''), 130, '0')
  UNION ALL
  SELECT 'live' AS `origin`, l.`customer`.`city` AS `city`, CAST(regexp_replace(regexp_replace(l.`created_at`, 'T', ' '), 'Z$', '') AS TIMESTAMP) AS `created_at`, l.`customer_id` AS `customer_id`, l.`event_id` AS `event_id`, CAST(l.`total` AS DOUBLE) AS `total`, l.`_flux`.`replay`.`id` AS `replay_id`, (l.`_flux`.`fence`.`replay_id` IS NOT NULL) AS `is_fence`
  FROM `default`.`orders_live` l
  LEFT JOIN (
    SELECT DISTINCT a.`event_id`
    FROM `default`.`orders_archive` a
    JOIN `default`.`orders_checkpoints` c ON a.`shard_id` = c.`shard_id`
    WHERE lpad(regexp_replace(a.`sequence_number`, '^0+', ''), 130, '0') <= lpad(regexp_replace(c.`sequence_number`, '^0+', ''), 130, '0')
  ) k ON l.`event_id` = k.`event_id`
  WHERE k.`event_id` IS NULL AND NOT (l.`_flux`.`fence`.`replay_id` IS NOT NULL)
) u;
