//! DuckDB: views over the archive with `read_json` and Hive partitioning, typed projections, the
//! checkpoints, and (with a local snapshot of the live stream) the live and unified views.
//! `duckdb -init duckdb/views.sql` (the DuckDB CLI), or the file executed from Python's `duckdb`
//! package, gives an analyst the same tables as Drill, on one machine.

use super::columns::{ColumnType, Projection};
use super::model::{ArchiveRoot, Model, SEQ_WIDTH};
use super::text::{GeneratedFile, Quoting, list};

const Q: Quoting = Quoting::Ansi;

/// The envelope's fields as `read_json` should type them.
const ENVELOPE_COLUMNS: &str = "{'stream': 'VARCHAR', 'shard_id': 'VARCHAR', 'sequence_number': 'VARCHAR', 'partition_key': 'VARCHAR', 'arrival_ts': 'VARCHAR', 'data': 'JSON', 'data_b64': 'VARCHAR', 'annotations': 'JSON'}";

/// A UTC timestamp from an RFC 3339 text column (any offset is converted to UTC).
fn utc(expr: &str) -> String {
    format!("timezone('UTC', CAST({expr} AS TIMESTAMPTZ))")
}

/// The sortable text key of a sequence number: numeric order as text order.
pub fn seq_key(expr: &str) -> String {
    format!("lpad(ltrim({expr}, '0'), {SEQ_WIDTH}, '0')")
}

/// The expression of a projection over `data`.
fn projection_expr(p: &Projection) -> String {
    let path = format!("$.{}", p.spec.path.join("."));
    let text = format!(
        "json_extract_string({}, {})",
        Q.ident("data"),
        Q.string(&path)
    );
    match p.spec.ty {
        ColumnType::String => text,
        ColumnType::BigInt => format!("TRY_CAST({text} AS BIGINT)"),
        ColumnType::Double => format!("TRY_CAST({text} AS DOUBLE)"),
        ColumnType::Boolean => format!("TRY_CAST({text} AS BOOLEAN)"),
        ColumnType::Date => format!("TRY_CAST({text} AS DATE)"),
        ColumnType::Timestamp => format!("timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ))"),
        ColumnType::Presence => format!("({text} IS NOT NULL)"),
    }
}

fn projection(p: &Projection) -> String {
    format!("{} AS {}", projection_expr(p), Q.ident(&p.name))
}

/// ` WHERE NOT <is_fence>` for the archive view, unless fences are kept.
fn without_fences(m: &Model) -> String {
    m.fence_filter()
        .map(|p| format!("\nWHERE NOT {}", projection_expr(p)))
        .unwrap_or_default()
}

/// The select list shared by the archive and live views; `dt`, `hour` and `shard` are given.
fn select_list(m: &Model, dt: &str, hour: &str, shard: &str) -> Vec<String> {
    let id = |c: &str| Q.ident(c);
    let mut items = vec![
        id("stream"),
        id("shard_id"),
        id("sequence_number"),
        id("partition_key"),
        format!("{} AS {}", utc(&id("arrival_ts")), id("arrival_ts")),
        id("data_b64"),
        id("data"),
        format!("{dt} AS {}", id("dt")),
        format!("{hour} AS {}", id("hour")),
        format!("{shard} AS {}", id("shard")),
    ];
    items.extend(m.projections.iter().map(projection));
    items
}

/// The column names of the archive and live views, in order.
fn view_columns(m: &Model) -> Vec<String> {
    let mut cols: Vec<String> = [
        "stream",
        "shard_id",
        "sequence_number",
        "partition_key",
        "arrival_ts",
        "data_b64",
        "data",
        "dt",
        "hour",
        "shard",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    cols.extend(m.projections.iter().map(|p| p.name.clone()));
    cols
}

fn archive_view(m: &Model) -> String {
    let glob = m.archive.join(
        "s3",
        &format!("{}/dt=*/hour=*/shard=*/*.json.gz", m.stream_dir()),
    );
    let id = |c: &str| Q.ident(c);
    format!(
        "CREATE OR REPLACE VIEW {view} AS\nSELECT\n{items}\nFROM read_json(\n  {glob},\n  format = 'newline_delimited',\n  hive_partitioning = true,\n  hive_types = {{'dt': 'VARCHAR', 'hour': 'VARCHAR', 'shard': 'VARCHAR'}},\n  hive_types_autocast = false,\n  columns = {ENVELOPE_COLUMNS}\n){fences}",
        view = id(&m.names.archive),
        items = list(&select_list(m, &id("dt"), &id("hour"), &id("shard"))),
        glob = Q.string(&glob),
        fences = without_fences(m),
    )
}

fn checkpoints_view(m: &Model) -> String {
    let glob = m
        .archive
        .join("s3", &format!("{}/*.json", m.checkpoint_dir()));
    let id = |c: &str| Q.ident(c);
    let items = vec![
        id("shard_id"),
        id("sequence_number"),
        format!("{} AS {}", utc(&id("arrival_ts")), id("arrival_ts")),
        id("object"),
        id("run_id"),
        format!("{} AS {}", utc(&id("updated_at")), id("updated_at")),
    ];
    format!(
        "CREATE OR REPLACE VIEW {view} AS\nSELECT\n{items}\nFROM read_json(\n  {glob},\n  format = 'auto',\n  columns = {{'stream': 'VARCHAR', 'shard_id': 'VARCHAR', 'sequence_number': 'VARCHAR', 'arrival_ts': 'VARCHAR', 'object': 'VARCHAR', 'run_id': 'VARCHAR', 'updated_at': 'VARCHAR'}}\n)\nWHERE {stream} = {name}",
        view = id(&m.names.checkpoints),
        items = list(&items),
        glob = Q.string(&glob),
        stream = id("stream"),
        name = Q.string(&m.stream),
    )
}

fn live_view(m: &Model, snapshot: &str) -> String {
    let id = |c: &str| Q.ident(c);
    let ts = utc(&id("arrival_ts"));
    format!(
        "CREATE OR REPLACE VIEW {view} AS\nSELECT\n{items}\nFROM read_json(\n  {glob},\n  format = 'newline_delimited',\n  columns = {ENVELOPE_COLUMNS}\n)\nWHERE {stream} = {name}",
        view = id(&m.names.live),
        items = list(&select_list(
            m,
            &format!("strftime({ts}, '%Y-%m-%d')"),
            &format!("strftime({ts}, '%H')"),
            &id("shard_id"),
        )),
        glob = Q.string(snapshot),
        stream = id("stream"),
        name = Q.string(&m.stream),
    )
}

fn unified_view(m: &Model) -> String {
    let id = |c: &str| Q.ident(c);
    let cols = view_columns(m);
    let side = |alias: &str| -> String {
        cols.iter()
            .map(|c| format!("{alias}.{}", id(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cp = id("cp");
    format!(
        "CREATE OR REPLACE VIEW {view} AS\n\
         WITH {cp} AS MATERIALIZED (\n  SELECT {shard_id}, {key} AS {seq} FROM {checkpoints}\n)\n\
         SELECT 'archive' AS {origin}, {a_cols}\n\
         FROM {archive} AS a\n\
         JOIN {cp} ON a.{shard_id} = {cp}.{shard_id}\n\
         WHERE {a_key} <= {cp}.{seq}\n\
         UNION ALL\n\
         SELECT 'live' AS {origin}, {l_cols}\n\
         FROM {live} AS l\n\
         LEFT JOIN {cp} ON l.{shard_id} = {cp}.{shard_id}\n\
         WHERE ({cp}.{seq} IS NULL OR {l_key} > {cp}.{seq}){l_fences}",
        view = id(&m.names.unified),
        shard_id = id("shard_id"),
        key = seq_key(&id("sequence_number")),
        seq = id("seq"),
        checkpoints = id(&m.names.checkpoints),
        origin = id("origin"),
        a_cols = side("a"),
        l_cols = side("l"),
        archive = id(&m.names.archive),
        live = id(&m.names.live),
        a_key = seq_key(&format!("a.{}", id("sequence_number"))),
        l_key = seq_key(&format!("l.{}", id("sequence_number"))),
        l_fences = m
            .fence_filter()
            .map(|p| format!(" AND NOT l.{}", id(&p.name)))
            .unwrap_or_default(),
    )
}

/// The S3 secret: the credential chain, plus the region and endpoint of the `aws` settings
/// (path-style URLs and, for `http://`, no TLS, as the engine's own S3 client uses them).
fn secret(m: &Model) -> String {
    let mut options = vec!["TYPE s3".to_owned(), "PROVIDER credential_chain".to_owned()];
    if let Some(region) = &m.duckdb_s3.region {
        options.push(format!("REGION {}", Q.string(region)));
    }
    if let Some(endpoint) = &m.duckdb_s3.endpoint {
        let (host, tls) = match endpoint.split_once("://") {
            Some(("http", rest)) => (rest, false),
            Some((_, rest)) => (rest, true),
            None => (endpoint.as_str(), true),
        };
        options.push(format!("ENDPOINT {}", Q.string(host.trim_end_matches('/'))));
        options.push("URL_STYLE 'path'".to_owned());
        if !tls {
            options.push("USE_SSL false".to_owned());
        }
    }
    format!(
        "CREATE SECRET IF NOT EXISTS flux_archive ({})",
        options.join(", ")
    )
}

/// Renders `duckdb/views.sql`.
pub fn render(m: &Model) -> Vec<GeneratedFile> {
    let mut header = vec![
        format!(
            "DuckDB views over the flux-engine archive of stream `{}` (generated by the ddl sink).",
            m.stream
        ),
        {
            let file = m.duckdb_views_path.as_deref().unwrap_or("duckdb/views.sql");
            format!(
                "Use: duckdb -init {file} (the DuckDB CLI), or from Python: con = duckdb.connect(); con.execute(open(\"{file}\").read()) (see docs/sql.md)."
            )
        },
    ];
    let mut statements = Vec::new();
    match &m.archive {
        ArchiveRoot::S3 { .. } => {
            header.push("The archive is on S3: these views need DuckDB's httpfs and aws extensions and AWS credentials (the standard chain).".into());
            statements.push("INSTALL httpfs".to_string());
            statements.push("LOAD httpfs".to_string());
            statements.push("INSTALL aws".to_string());
            statements.push("LOAD aws".to_string());
            statements.push(secret(m));
        }
        ArchiveRoot::Local { path } if !path.starts_with('/') => header.push(format!(
            "Relative paths ({path}) are relative to the directory duckdb runs in: run it where flux-engine ran."
        )),
        ArchiveRoot::Local { .. } => {}
    }
    statements.push(archive_view(m));
    statements.push(checkpoints_view(m));
    if let Some(snapshot) = &m.snapshot {
        statements.push(live_view(m, snapshot));
        statements.push(unified_view(m));
    } else {
        header.push(format!(
            "No `snapshot` is configured: no `{}` and `{}` views.",
            m.names.live, m.names.unified
        ));
    }
    vec![GeneratedFile::Sql {
        path: "duckdb/views.sql".into(),
        header,
        statements,
    }]
}
