-- Athena: the archive of stream `orders` with partition projection (no crawler, no MSCK REPAIR).
-- Shards projected: shardId-000000000000, shardId-000000000001, shardId-000000000002. After a reshard, run the ddl sink again (or add the new shard ids to projection.shard.values).
-- Run each statement on its own (the Athena console and API take one statement per query).

DROP TABLE IF EXISTS `default`.`orders_archive_raw`;

CREATE EXTERNAL TABLE `default`.`orders_archive_raw` (
  `stream` STRING,
  `shard_id` STRING,
  `sequence_number` STRING,
  `partition_key` STRING,
  `arrival_ts` STRING,
  `data` STRUCT<`_flux`:STRUCT<`fence`:STRUCT<`replay_id`:STRING>, `replay`:STRUCT<`id`:STRING>>, `created_at`:STRING, `customer`:STRUCT<`city`:STRING>, `customer_id`:STRING, `event_id`:STRING, `total`:STRING>,
  `data_b64` STRING
)
PARTITIONED BY (`dt` STRING, `hour` STRING, `shard` STRING)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')
STORED AS TEXTFILE
LOCATION 's3://acme-archive/kinesis/stream=orders/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'enum',
  'projection.hour.values' = '00,01,02,03,04,05,06,07,08,09,10,11,12,13,14,15,16,17,18,19,20,21,22,23',
  'projection.shard.type' = 'enum',
  'projection.shard.values' = 'shardId-000000000000,shardId-000000000001,shardId-000000000002',
  'storage.location.template' = 's3://acme-archive/kinesis/stream=orders/dt=${dt}/hour=${hour}/shard=${shard}/',
  'flux.stream' = 'orders'
);

CREATE OR REPLACE VIEW "default"."orders_archive" AS
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
  "data"."customer"."city" AS "city",
  CAST(try(from_iso8601_timestamp("data"."created_at")) AT TIME ZONE 'UTC' AS timestamp(3)) AS "created_at",
  "data"."customer_id" AS "customer_id",
  "data"."event_id" AS "event_id",
  TRY_CAST("data"."total" AS double) AS "total",
  "data"."_flux"."replay"."id" AS "replay_id",
  ("data"."_flux"."fence"."replay_id" IS NOT NULL) AS "is_fence"
FROM "default"."orders_archive_raw"
WHERE NOT ("data"."_flux"."fence"."replay_id" IS NOT NULL);
