//! Apache Drill: storage plugin JSON for the archive (file system plugin over `s3a://` or
//! EMRFS `s3://`, read-only workspaces, json and parquet formats) and for the Hive metastore,
//! and views over the archive with typed columns, partition columns usable for pruning, and
//! the user's projections.
//!
//! Drill's implicit `dir0`, `dir1`, `dir2` columns hold whole folder names (`dt=2026-11-25`),
//! so the views strip the `key=` part; Drill prunes folders on expressions of `dirN` alone.

use serde_json::json;

use super::hive::{
    cast, data_expr, seq_key as hive_seq_key, timestamp, unified_select, without_fences,
};
use super::model::{ArchiveRoot, Model};
use super::text::{GeneratedFile, Quoting, list};

const Q: Quoting = Quoting::Backtick;

/// `a`.`b`.`c` from a dotted name such as `dfs.tmp`.
fn dotted(name: &str) -> String {
    name.split('.')
        .map(|p| Q.ident(p))
        .collect::<Vec<_>>()
        .join(".")
}

/// The file system connection and the workspace location of the archive root.
fn connection(m: &Model) -> (String, String) {
    match &m.archive {
        ArchiveRoot::S3 { bucket, prefix } => (
            format!("{}://{bucket}", m.drill.filesystem),
            format!("/{prefix}"),
        ),
        ArchiveRoot::Local { path } => ("file:///".into(), absolute(path)),
    }
}

/// A local path made absolute against the working directory (Drill runs elsewhere).
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        return path.to_owned();
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let rel = path.strip_prefix("./").unwrap_or(path);
    cwd.join(rel).to_string_lossy().into_owned()
}

/// The storage plugin for the archive, as `POST /storage/<name>.json` takes it.
pub fn archive_plugin(m: &Model) -> serde_json::Value {
    let (connection, root) = connection(m);
    let below = |rel: &str| {
        if root.ends_with('/') {
            format!("{root}{rel}")
        } else {
            format!("{root}/{rel}")
        }
    };
    json!({
        "name": m.drill.plugin,
        "config": {
            "type": "file",
            "connection": connection,
            "workspaces": {
                "archive": {
                    "location": root,
                    "writable": false,
                    "defaultInputFormat": "json",
                    "allowAccessOutsideWorkspace": false
                },
                "checkpoints": {
                    "location": below("_flux/checkpoints"),
                    "writable": false,
                    "defaultInputFormat": "json",
                    "allowAccessOutsideWorkspace": false
                }
            },
            "formats": {
                "json": { "type": "json", "extensions": ["json"] },
                "parquet": { "type": "parquet" }
            },
            "enabled": true
        }
    })
}

/// The storage plugin for the Hive metastore (shared with Hive on the cluster).
pub fn hive_plugin(m: &Model) -> serde_json::Value {
    json!({
        "name": m.drill.hive_plugin,
        "config": {
            "type": "hive",
            "configProps": {
                "hive.metastore.uris": m.drill.metastore,
                "hive.metastore.sasl.enabled": "false"
            },
            "enabled": true
        }
    })
}

fn view(m: &Model, name: &str) -> String {
    format!("{}.{}", dotted(&m.drill.views_workspace), Q.ident(name))
}

/// The statements of `drill/views.sql`.
pub fn statements(m: &Model) -> Vec<String> {
    let id = |c: &str| Q.ident(c);
    let t = |c: &str| format!("t.{}", id(c));
    let mut items = vec![
        format!("{} AS {}", t("stream"), id("stream")),
        format!("{} AS {}", t("shard_id"), id("shard_id")),
        format!("{} AS {}", t("sequence_number"), id("sequence_number")),
        format!("{} AS {}", t("partition_key"), id("partition_key")),
        format!("{} AS {}", timestamp(&t("arrival_ts")), id("arrival_ts")),
        format!("{} AS {}", t("data_b64"), id("data_b64")),
        format!("SUBSTR({}, 4) AS {}", t("dir0"), id("dt")),
        format!("SUBSTR({}, 6) AS {}", t("dir1"), id("hour")),
        format!("SUBSTR({}, 7) AS {}", t("dir2"), id("shard")),
    ];
    items.extend(
        m.projections
            .iter()
            .map(|p| format!("{} AS {}", data_expr("t", p, cast), id(&p.name))),
    );
    let plugin = Q.ident(&m.drill.plugin);
    let mut out = vec![
        format!(
            "CREATE OR REPLACE VIEW {} AS\nSELECT\n{}\nFROM {plugin}.{}.{} AS t{}",
            view(m, &m.names.archive),
            list(&items),
            id("archive"),
            id(&m.stream_dir()),
            without_fences(m, "t", cast),
        ),
        format!(
            "CREATE OR REPLACE VIEW {} AS\nSELECT\n{}\nFROM {plugin}.{}.{} AS t",
            view(m, &m.names.checkpoints),
            list(&[
                format!("{} AS {}", t("shard_id"), id("shard_id")),
                format!("{} AS {}", t("sequence_number"), id("sequence_number")),
                format!("{} AS {}", timestamp(&t("arrival_ts")), id("arrival_ts")),
                format!("{} AS {}", t("object"), id("object")),
                format!("{} AS {}", t("run_id"), id("run_id")),
            ]),
            id("checkpoints"),
            id(&m.stream_dir()),
        ),
    ];
    let live = format!(
        "{}.{}.{}",
        Q.ident(&m.drill.hive_plugin),
        Q.ident(&m.hive_database),
        Q.ident(&m.names.live)
    );
    if m.has_user_projections()
        && let Some(select) = unified_select(
            m,
            &view(m, &m.names.archive),
            &view(m, &m.names.checkpoints),
            &live,
            hive_seq_key,
            cast,
        )
    {
        out.push(format!(
            "CREATE OR REPLACE VIEW {} AS\n{select}",
            view(m, &m.names.unified)
        ));
    }
    out
}

/// Renders the two storage plugin files and `drill/views.sql`.
pub fn render(m: &Model) -> Vec<GeneratedFile> {
    vec![
        GeneratedFile::Json {
            path: format!("drill/storage-{}.json", m.drill.plugin),
            value: archive_plugin(m),
        },
        GeneratedFile::Json {
            path: format!("drill/storage-{}.json", m.drill.hive_plugin),
            value: hive_plugin(m),
        },
        GeneratedFile::Sql {
            path: "drill/views.sql".into(),
            header: vec![
                format!(
                    "Apache Drill: views over the archive of stream `{}`; needs the storage plugins `{}` and `{}` (drill/storage-*.json).",
                    m.stream, m.drill.plugin, m.drill.hive_plugin
                ),
                format!(
                    "Views are stored in the writable workspace {}.",
                    m.drill.views_workspace
                ),
            ],
            statements: statements(m),
        },
    ]
}
