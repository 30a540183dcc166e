-- Athena: the archive of stream `orders` with partition projection (no crawler, no MSCK REPAIR).
-- Shards projected: shardId-000000000000, shardId-000000000001. After a reshard, run the ddl sink again (or add the new shard ids to projection.shard.values).
-- Run each statement on its own (the Athena console and API take one statement per query).

DROP TABLE IF EXISTS `analytics`.`orders_objects`;

CREATE EXTERNAL TABLE `analytics`.`orders_objects` (
  `stream` STRING,
  `shard_id` STRING,
  `sequence_number` STRING,
  `partition_key` STRING,
  `arrival_ts` STRING,
  `data` STRUCT<`_flux`:STRUCT<`fence`:STRUCT<`replay_id`:STRING>, `replay`:STRUCT<`id`:STRING>>>,
  `data_b64` STRING
)
PARTITIONED BY (`dt` STRING, `hour` STRING, `shard` STRING)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')
STORED AS TEXTFILE
LOCATION 's3://acme-archive/stream=orders/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-11-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'enum',
  'projection.hour.values' = '00,01,02,03,04,05,06,07,08,09,10,11,12,13,14,15,16,17,18,19,20,21,22,23',
  'projection.shard.type' = 'enum',
  'projection.shard.values' = 'shardId-000000000000,shardId-000000000001',
  'storage.location.template' = 's3://acme-archive/stream=orders/dt=${dt}/hour=${hour}/shard=${shard}/',
  'flux.stream' = 'orders'
);

CREATE OR REPLACE VIEW "analytics"."orders_all" AS
SELECT
  "stream",
  "shard_id",
  "sequence_number",
  "partition_key",
  CAST(try(from_iso8601_timestamp("arrival_ts")) AT TIME ZONE 'UTC' AS timestamp(3)) AS "arrival_ts",
  "data_b64",
  "dt",
  "hour",
  "shard",
  "data"."_flux"."replay"."id" AS "replay_id",
  ("data"."_flux"."fence"."replay_id" IS NOT NULL) AS "is_fence"
FROM "analytics"."orders_objects"
WHERE NOT ("data"."_flux"."fence"."replay_id" IS NOT NULL);
