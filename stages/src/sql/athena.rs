//! Athena: the archive table with partition projection (no crawler, no `MSCK REPAIR`: Athena
//! computes the partitions from the table properties), and the typed view (Trino SQL).

use super::columns::ColumnType;
use super::hive::{PARTITIONS, raw_columns};
use super::model::Model;
use super::text::{GeneratedFile, Quoting, list};

/// Athena's DDL is Hive DDL (backticks); its views are Trino SQL (double quotes).
const DDL: Quoting = Quoting::Backtick;
const VIEW: Quoting = Quoting::Ansi;

/// The OpenX JSON SerDe, Athena's recommended one; malformed lines become rows of NULLs
/// instead of failing the query.
pub const JSON_SERDE: &str = "org.openx.data.jsonserde.JsonSerDe";

fn cast(text: &str, ty: ColumnType) -> String {
    match ty {
        ColumnType::String => text.to_owned(),
        ColumnType::BigInt => format!("TRY_CAST({text} AS bigint)"),
        ColumnType::Double => format!("TRY_CAST({text} AS double)"),
        ColumnType::Boolean => format!("TRY_CAST({text} AS boolean)"),
        ColumnType::Date => format!("TRY_CAST({text} AS date)"),
        ColumnType::Timestamp => utc(text),
        ColumnType::Presence => format!("({text} IS NOT NULL)"),
    }
}

fn utc(text: &str) -> String {
    format!("CAST(try(from_iso8601_timestamp({text})) AT TIME ZONE 'UTC' AS timestamp(3))")
}

/// The table properties of the partition projection.
fn projection_properties(m: &Model) -> Vec<(String, String)> {
    let template = m.archive.join(
        "s3",
        &format!(
            "{}/dt=${{dt}}/hour=${{hour}}/shard=${{shard}}/",
            m.stream_dir()
        ),
    );
    let hours: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
    vec![
        ("projection.enabled".into(), "true".into()),
        ("projection.dt.type".into(), "date".into()),
        ("projection.dt.format".into(), "yyyy-MM-dd".into()),
        (
            "projection.dt.range".into(),
            format!("{},NOW", m.athena_since),
        ),
        ("projection.dt.interval".into(), "1".into()),
        ("projection.dt.interval.unit".into(), "DAYS".into()),
        ("projection.hour.type".into(), "enum".into()),
        ("projection.hour.values".into(), hours.join(",")),
        ("projection.shard.type".into(), "enum".into()),
        ("projection.shard.values".into(), m.shards.join(",")),
        ("storage.location.template".into(), template),
        ("flux.stream".into(), m.stream.clone()),
    ]
}

/// The statements of `athena/archive.sql`.
pub fn statements(m: &Model) -> Vec<String> {
    let db = &m.athena_database;
    let raw = format!("{}.{}", DDL.ident(db), DDL.ident(&m.names.raw));
    let cols = list(
        &raw_columns(m)
            .iter()
            .map(|(n, t)| format!("{} {t}", DDL.ident(n)))
            .collect::<Vec<_>>(),
    );
    let parts = PARTITIONS
        .iter()
        .map(|p| format!("{} STRING", DDL.ident(p)))
        .collect::<Vec<_>>()
        .join(", ");
    let props = list(
        &projection_properties(m)
            .iter()
            .map(|(k, v)| format!("{} = {}", DDL.string(k), DDL.string(v)))
            .collect::<Vec<_>>(),
    );
    let location = m.archive.join("s3", &format!("{}/", m.stream_dir()));
    let id = |c: &str| VIEW.ident(c);
    let mut items = vec![
        id("stream"),
        id("shard_id"),
        id("sequence_number"),
        id("partition_key"),
        format!("{} AS {}", utc(&id("arrival_ts")), id("arrival_ts")),
        id("data_b64"),
        id("dt"),
        id("hour"),
        id("shard"),
    ];
    let expr = |p: &super::columns::Projection| {
        let path: String = std::iter::once("data")
            .chain(p.spec.path.iter().map(String::as_str))
            .map(id)
            .collect::<Vec<_>>()
            .join(".");
        cast(&path, p.spec.ty)
    };
    items.extend(
        m.projections
            .iter()
            .map(|p| format!("{} AS {}", expr(p), id(&p.name))),
    );
    let fences = m
        .fence_filter()
        .map(|p| format!("\nWHERE NOT {}", expr(p)))
        .unwrap_or_default();
    vec![
        format!("DROP TABLE IF EXISTS {raw}"),
        format!(
            "CREATE EXTERNAL TABLE {raw} (\n{cols}\n)\nPARTITIONED BY ({parts})\nROW FORMAT SERDE {serde}\nWITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')\nSTORED AS TEXTFILE\nLOCATION {location}\nTBLPROPERTIES (\n{props}\n)",
            serde = DDL.string(JSON_SERDE),
            location = DDL.string(&location),
        ),
        format!(
            "CREATE OR REPLACE VIEW {}.{} AS\nSELECT\n{}\nFROM {}.{}{fences}",
            id(db),
            id(&m.names.archive),
            list(&items),
            id(db),
            id(&m.names.raw)
        ),
    ]
}

/// Renders `athena/archive.sql`.
pub fn render(m: &Model) -> Vec<GeneratedFile> {
    vec![GeneratedFile::Sql {
        path: "athena/archive.sql".into(),
        header: vec![
            format!(
                "Athena: the archive of stream `{}` with partition projection (no crawler, no MSCK REPAIR).",
                m.stream
            ),
            format!(
                "Shards projected: {}. After a reshard, run the ddl sink again (or add the new shard ids to projection.shard.values).",
                m.shards.join(", ")
            ),
            "Run each statement on its own (the Athena console and API take one statement per query).".into(),
        ],
        statements: statements(m),
    }]
}
