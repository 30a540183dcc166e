//! Hive (on EMR): the external table over the archive (JSON SerDe, partitioned by dt, hour and
//! shard, with the partition repair), the typed view, the checkpoints, the table over the live
//! stream through EMR's Kinesis storage handler, and the unified view.
//!
//! Every identifier is quoted with backticks, so reserved words (`date`, `hour`, `default`)
//! never break a statement. Tables are per stream (location `…/stream=<name>/`): a table rooted
//! at the archive root with `stream` as a partition column clashes with the envelope's own
//! `stream` field, which Hive rejects.

use super::columns::{ColumnType, Projection};
use super::model::{Model, SEQ_WIDTH, Shape};
use super::text::{GeneratedFile, Quoting, list};

const Q: Quoting = Quoting::Backtick;

/// The JSON SerDe shipped with Hive (hive-hcatalog-core), present on EMR.
pub const JSON_SERDE: &str = "org.apache.hive.hcatalog.data.JsonSerDe";
/// EMR's Kinesis storage handler.
pub const KINESIS_HANDLER: &str = "com.amazon.emr.kinesis.hive.KinesisStorageHandler";

/// `db`.`name`
pub fn qualified(db: &str, name: &str) -> String {
    format!("{}.{}", Q.ident(db), Q.ident(name))
}

/// A Hive type for a `data` shape: `STRUCT<`a`:STRING, `b`:STRUCT<…>>`, leaves as STRING (the
/// views cast them, so a value of an unexpected JSON type does not fail the SerDe).
pub fn shape_type(shape: &Shape) -> String {
    match shape {
        Shape::Value => "STRING".into(),
        Shape::Object(fields) => format!(
            "STRUCT<{}>",
            fields
                .iter()
                .map(|(k, v)| format!("{}:{}", Q.ident(k), shape_type(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Hive (and Drill) expression turning text into the projection's type.
pub fn cast(text: &str, ty: ColumnType) -> String {
    match ty {
        ColumnType::String => text.to_owned(),
        ColumnType::BigInt => format!("CAST({text} AS BIGINT)"),
        ColumnType::Double => format!("CAST({text} AS DOUBLE)"),
        ColumnType::Boolean => format!("(lower({text}) = 'true')"),
        ColumnType::Date => format!("CAST({text} AS DATE)"),
        ColumnType::Timestamp => timestamp(text),
        ColumnType::Presence => format!("({text} IS NOT NULL)"),
    }
}

/// A UTC timestamp from RFC 3339 text ending in `Z` (as the archive writes `arrival_ts`).
pub fn timestamp(text: &str) -> String {
    format!("CAST(regexp_replace(regexp_replace({text}, 'T', ' '), 'Z$', '') AS TIMESTAMP)")
}

/// The sortable text key of a sequence number (numeric order as text order).
pub fn seq_key(expr: &str) -> String {
    format!("lpad(regexp_replace({expr}, '^0+', ''), {SEQ_WIDTH}, '0')")
}

/// `alias`.`a`.`b` for a path.
pub fn path_expr(alias: &str, path: &[String]) -> String {
    let mut s = alias.to_owned();
    for p in path {
        s.push('.');
        s.push_str(&Q.ident(p));
    }
    s
}

fn column_defs(cols: &[(String, String)]) -> String {
    list(
        &cols
            .iter()
            .map(|(n, t)| format!("{} {t}", Q.ident(n)))
            .collect::<Vec<_>>(),
    )
}

/// The raw table's columns: the envelope, with `data` as the STRUCT the projections need.
pub fn raw_columns(m: &Model) -> Vec<(String, String)> {
    let mut cols: Vec<(String, String)> = [
        "stream",
        "shard_id",
        "sequence_number",
        "partition_key",
        "arrival_ts",
    ]
    .iter()
    .map(|c| (c.to_string(), "STRING".to_string()))
    .collect();
    if let Some(shape) = m.data_shape() {
        cols.push(("data".into(), shape_type(&shape)));
    }
    cols.push(("data_b64".into(), "STRING".into()));
    cols
}

/// The partition columns, in folder order.
pub const PARTITIONS: [&str; 3] = ["dt", "hour", "shard"];

fn partition_defs() -> String {
    PARTITIONS
        .iter()
        .map(|p| format!("{} STRING", Q.ident(p)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn typed_select(m: &Model, raw: &str) -> String {
    let id = |c: &str| Q.ident(c);
    let mut items = vec![
        format!("r.{}", id("stream")),
        format!("r.{}", id("shard_id")),
        format!("r.{}", id("sequence_number")),
        format!("r.{}", id("partition_key")),
        format!(
            "{} AS {}",
            timestamp(&format!("r.{}", id("arrival_ts"))),
            id("arrival_ts")
        ),
        format!("r.{}", id("data_b64")),
        format!("r.{}", id("dt")),
        format!("r.{}", id("hour")),
        format!("r.{}", id("shard")),
    ];
    items.extend(
        m.projections
            .iter()
            .map(|p| format!("{} AS {}", data_expr("r", p, cast), id(&p.name))),
    );
    format!(
        "SELECT\n{}\nFROM {raw} r{}",
        list(&items),
        without_fences(m, "r", cast)
    )
}

/// A projection read from `alias`.`data`, cast by `cast_of` (Hive's or Drill's).
pub fn data_expr(alias: &str, p: &Projection, cast_of: fn(&str, ColumnType) -> String) -> String {
    let mut path = vec!["data".to_string()];
    path.extend(p.spec.path.iter().cloned());
    cast_of(&path_expr(alias, &path), p.spec.ty)
}

/// `\nWHERE NOT <is_fence>` over `alias`.`data` for an archive view, unless fences are kept.
pub fn without_fences(m: &Model, alias: &str, cast_of: fn(&str, ColumnType) -> String) -> String {
    m.fence_filter()
        .map(|p| format!("\nWHERE NOT {}", data_expr(alias, p, cast_of)))
        .unwrap_or_default()
}

/// The statements of `hive/archive.sql`.
pub fn archive_statements(m: &Model) -> Vec<String> {
    let db = &m.hive_database;
    let raw = qualified(db, &m.names.raw);
    let view = qualified(db, &m.names.archive);
    let lines = qualified(db, &format!("{}_lines", m.names.checkpoints));
    let checkpoints = qualified(db, &m.names.checkpoints);
    let location = m.archive.join("s3", &format!("{}/", m.stream_dir()));
    let cp_location = m.archive.join("s3", &format!("{}/", m.checkpoint_dir()));
    let line = Q.ident("line");
    vec![
        format!("DROP TABLE IF EXISTS {raw}"),
        format!(
            "CREATE EXTERNAL TABLE {raw} (\n{cols}\n)\nPARTITIONED BY ({parts})\nROW FORMAT SERDE {serde}\nSTORED AS TEXTFILE\nLOCATION {location}\nTBLPROPERTIES ('flux.stream' = {stream})",
            cols = column_defs(&raw_columns(m)),
            parts = partition_defs(),
            serde = Q.string(JSON_SERDE),
            location = Q.string(&location),
            stream = Q.string(&m.stream),
        ),
        format!("MSCK REPAIR TABLE {raw}"),
        format!("DROP VIEW IF EXISTS {view}"),
        format!("CREATE VIEW {view} AS\n{}", typed_select(m, &raw)),
        format!("DROP TABLE IF EXISTS {lines}"),
        format!(
            "CREATE EXTERNAL TABLE {lines} (\n  {line} STRING\n)\nSTORED AS TEXTFILE\nLOCATION {}",
            Q.string(&cp_location)
        ),
        format!("DROP VIEW IF EXISTS {checkpoints}"),
        format!(
            "CREATE VIEW {checkpoints} AS\nSELECT\n  max(regexp_extract({line}, '\"shard_id\"[ ]*:[ ]*\"([^\"]*)\"', 1)) AS {shard},\n  max(regexp_extract({line}, '\"sequence_number\"[ ]*:[ ]*\"([0-9]*)\"', 1)) AS {seq}\nFROM {lines}\nGROUP BY INPUT__FILE__NAME",
            shard = Q.ident("shard_id"),
            seq = Q.ident("sequence_number"),
        ),
    ]
}

/// The live table's columns: the payload's top-level fields the projections read.
pub fn live_columns(m: &Model) -> Vec<(String, String)> {
    match m.data_shape() {
        Some(Shape::Object(fields)) => fields
            .iter()
            .map(|(k, v)| (k.clone(), shape_type(v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The statements of `hive/live.sql` (none without the user's projections: the table is for
/// the unified view, which needs them).
pub fn live_statements(m: &Model) -> Vec<String> {
    let cols = live_columns(m);
    if !m.has_user_projections() {
        return Vec::new();
    }
    let live = qualified(&m.hive_database, &m.names.live);
    vec![
        format!("DROP TABLE IF EXISTS {live}"),
        format!(
            "CREATE TABLE {live} (\n{cols}\n)\nROW FORMAT SERDE {serde}\nSTORED BY {handler}\nTBLPROPERTIES ('kinesis.stream.name' = {stream})",
            cols = column_defs(&cols),
            serde = Q.string(JSON_SERDE),
            handler = Q.string(KINESIS_HANDLER),
            stream = Q.string(&m.stream),
        ),
    ]
}

/// The unified view's SELECT (shared with Drill, which reads the same Hive tables), with table
/// references already rendered; `None` without `live_key`.
///
/// One rule decides every record, so each is counted exactly once: it is *archived* iff its
/// archive row is at or below its shard's checkpoint. The archive branch is the archived rows;
/// the live branch is the live rows whose key is not the key of an archived row. Rows past the
/// checkpoint (objects a crashed run left, removed by the next run) and rows of shards without
/// a checkpoint are in neither the archive branch nor the anti-join, so their records come from
/// the live side while the stream still holds them. Both branches read the same
/// `FROM … JOIN … WHERE` text.
pub fn unified_select(
    m: &Model,
    archive: &str,
    checkpoints: &str,
    live: &str,
    key_of: fn(&str) -> String,
    cast_of: fn(&str, ColumnType) -> String,
) -> Option<String> {
    let key = m.projection(m.live_key.as_deref()?)?;
    let id = |c: &str| Q.ident(c);
    let mut archive_items = vec![format!("'archive' AS {}", id("origin"))];
    archive_items.extend(m.projections.iter().map(|p| format!("a.{}", id(&p.name))));
    let mut live_items = vec![format!("'live' AS {}", id("origin"))];
    live_items.extend(m.projections.iter().map(|p| {
        format!(
            "{} AS {}",
            cast_of(&path_expr("l", &p.spec.path), p.spec.ty),
            id(&p.name)
        )
    }));
    let k = id(&key.name);
    // The archived rows: at or below their shard's checkpoint.
    let archived = |indent: &str| {
        format!(
            "FROM {archive} a\n{indent}JOIN {checkpoints} c ON a.{shard} = c.{shard}\n{indent}WHERE {a_key} <= {c_key}",
            shard = id("shard_id"),
            a_key = key_of(&format!("a.{}", id("sequence_number"))),
            c_key = key_of(&format!("c.{}", id("sequence_number"))),
        )
    };
    Some(format!(
        "SELECT u.* FROM (\n  SELECT {a_items}\n  {a_from}\n  UNION ALL\n  SELECT {l_items}\n  FROM {live} l\n  LEFT JOIN (\n    SELECT DISTINCT a.{k}\n    {k_from}\n  ) k ON {live_key} = k.{k}\n  WHERE k.{k} IS NULL{l_fences}\n) u",
        a_items = archive_items.join(", "),
        a_from = archived("  "),
        l_items = live_items.join(", "),
        k_from = archived("    "),
        live_key = cast_of(&path_expr("l", &key.spec.path), key.spec.ty),
        l_fences = m
            .fence_filter()
            .map(|p| format!(
                " AND NOT {}",
                cast_of(&path_expr("l", &p.spec.path), p.spec.ty)
            ))
            .unwrap_or_default(),
    ))
}

/// The statements of `hive/unified.sql` (none without `live_key` or projections).
pub fn unified_statements(m: &Model) -> Vec<String> {
    if !m.has_user_projections() {
        return Vec::new();
    }
    let db = &m.hive_database;
    let Some(select) = unified_select(
        m,
        &qualified(db, &m.names.archive),
        &qualified(db, &m.names.checkpoints),
        &qualified(db, &m.names.live),
        seq_key,
        cast,
    ) else {
        return Vec::new();
    };
    let view = qualified(db, &m.names.unified);
    vec![
        format!("DROP VIEW IF EXISTS {view}"),
        format!("CREATE VIEW {view} AS\n{select}"),
    ]
}

/// Renders `hive/archive.sql`, `hive/live.sql` and `hive/unified.sql`.
pub fn render(m: &Model) -> Vec<GeneratedFile> {
    let mut files = vec![GeneratedFile::Sql {
        path: "hive/archive.sql".into(),
        header: vec![
            format!(
                "Hive: the archive of stream `{}` (external table, partition repair, typed view, checkpoints).",
                m.stream
            ),
            "Generated by the flux-engine ddl sink; safe to run again (it drops and recreates)."
                .into(),
        ],
        statements: archive_statements(m),
    }];
    let live = live_statements(m);
    if !live.is_empty() {
        files.push(GeneratedFile::Sql {
            path: "hive/live.sql".into(),
            header: vec![
                format!(
                    "Hive on EMR: stream `{}` as a table, through EMR's Kinesis storage handler.",
                    m.stream
                ),
                "Each row is one record's payload (JSON); the handler exposes no shard or sequence number.".into(),
            ],
            statements: live,
        });
    }
    let unified = unified_statements(m);
    if !unified.is_empty() {
        files.push(GeneratedFile::Sql {
            path: "hive/unified.sql".into(),
            header: vec![
                format!(
                    "Hive: the archive of `{}` up to each shard's checkpoint, plus the live records whose `{}` is not in that part of the archive.",
                    m.stream,
                    m.live_key.as_deref().unwrap_or_default()
                ),
                "Run after hive/archive.sql and hive/live.sql. See docs/sql.md for what it guarantees.".into(),
            ],
            statements: unified,
        });
    }
    files
}

/// An EMR step that runs a HiveQL script stored at `script_url` (`s3://…`), for
/// `flux-engine cluster` (aws-sdk-emr `StepConfig` with `HadoopJarStepConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiveStep {
    /// The step's name.
    pub name: String,
    /// The jar: EMR's `command-runner.jar`.
    pub jar: String,
    /// Its arguments.
    pub args: Vec<String>,
}

/// The Hive script of every Hive file, in order (archive, live, unified), for one EMR step.
pub fn step_script(m: &Model) -> String {
    render(m)
        .iter()
        .map(GeneratedFile::text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The EMR step running the script at `script_url` with Hive.
pub fn step(m: &Model, script_url: &str) -> HiveStep {
    HiveStep {
        name: format!("flux-engine: Hive tables for stream {}", m.stream),
        jar: "command-runner.jar".into(),
        args: vec![
            "hive-script".into(),
            "--run-hive-script".into(),
            "--args".into(),
            "-f".into(),
            script_url.into(),
        ],
    }
}
