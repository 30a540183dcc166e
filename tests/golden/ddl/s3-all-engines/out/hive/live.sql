-- Hive on EMR: stream `orders` as a table, through EMR's Kinesis storage handler.
-- Each row is one record's payload (JSON); the handler exposes no shard or sequence number.

DROP TABLE IF EXISTS `default`.`orders_live`;

CREATE TABLE `default`.`orders_live` (
  `_flux` STRUCT<`fence`:STRUCT<`replay_id`:STRING>, `replay`:STRUCT<`id`:STRING>>,
  `created_at` STRING,
  `customer` STRUCT<`city`:STRING>,
  `customer_id` STRING,
  `event_id` STRING,
  `total` STRING
)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED BY 'com.amazon.emr.kinesis.hive.KinesisStorageHandler'
TBLPROPERTIES ('kinesis.stream.name' = 'orders');
