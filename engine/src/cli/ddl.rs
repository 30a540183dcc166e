//! `flux-engine ddl <archive-url> --stream S [--engines duckdb,…] [--out DIR]`: the SQL the
//! `ddl` sink writes, for an existing archive, without a pipeline and without Kinesis (see
//! docs/sql.md, "Without a pipeline"). The SQL comes from `flux_stages::sql`; this file reads
//! the arguments, surveys the archive (shards, first day), and writes the files below `--out`
//! ([`super::ddl_out`]), never over an existing file unless `--force`.

use std::path::{Path, PathBuf};

use clap::Args;
use flux_stages::aws::{AwsSettings, sdk_config};
use flux_stages::names::StreamName;
use flux_stages::sink::ddl::DdlSinkConfig;
use flux_stages::sql::{self, Engine};
use flux_stages::store::{self, StoreLocation, StoreOptions};

use super::{EXIT_INVALID, EXIT_OK, EXIT_RUNTIME};

/// `flux-engine ddl …`.
#[derive(Args, Debug)]
pub(crate) struct DdlArgs {
    /// The archive root: s3://bucket/prefix, file:///abs/dir or a path.
    archive: String,
    /// The stream whose archive the tables and views cover.
    #[arg(long)]
    stream: String,
    /// The engines to write for, comma-separated: duckdb, drill, hive, athena. Default: all four
    /// for an s3:// archive, duckdb and drill for a local one (Hive and Athena read S3 only).
    #[arg(long, value_delimiter = ',', value_name = "ENGINES")]
    engines: Vec<String>,
    /// The folder the files go to (created if missing); nothing is written outside it.
    #[arg(long, default_value = "sql", value_name = "DIR")]
    out: PathBuf,
    /// Replace files that exist already (default: refuse, and write nothing).
    #[arg(long)]
    force: bool,
    /// A typed column read from the payload (repeatable): NAME=PATH[:TYPE], e.g.
    /// `total=data.total:double` (types: string, bigint, double, boolean, date, timestamp).
    #[arg(long = "column", value_name = "NAME=PATH[:TYPE]")]
    columns: Vec<String>,
    /// DuckDB: a local snapshot of the live stream (envelope JSON Lines, a path or glob), for
    /// the live and unified views.
    #[arg(long, value_name = "PATH")]
    snapshot: Option<String>,
    /// Hive and Drill: the column (of --column) unique per record, for the unified view.
    #[arg(long, value_name = "COLUMN")]
    live_key: Option<String>,
    /// Keep the fences of replays in the archive and unified views (default: left out; the
    /// `is_fence` column tells them apart).
    #[arg(long)]
    include_fences: bool,
    /// AWS region for s3:// archives (also written into the DuckDB secret).
    #[arg(long)]
    region: Option<String>,
    /// AWS profile for s3:// archives.
    #[arg(long)]
    profile: Option<String>,
    /// Endpoint URL for s3:// archives (also written into the DuckDB secret).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
}

fn fail(code: i32, message: impl std::fmt::Display) -> i32 {
    errln!("error: {message}");
    code
}

/// The sink's messages name its keys; here they are flags.
fn as_flags(message: &str) -> String {
    [
        ("`archive`", "the archive URL"),
        ("`engines`", "--engines"),
        ("`columns`", "--column"),
        ("`live_key`", "--live-key"),
        ("`snapshot`", "--snapshot"),
        ("`stream`", "--stream"),
        ("`out`", "--out"),
    ]
    .iter()
    .fold(message.to_owned(), |m, (key, flag)| m.replace(key, flag))
}

/// An absolute path for a local path given on the command line.
fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    std::path::absolute(path)
}

impl DdlArgs {
    fn aws(&self) -> AwsSettings {
        AwsSettings {
            region: self.region.clone(),
            profile: self.profile.clone(),
            endpoint: self.endpoint.clone(),
            max_attempts: Some(3),
        }
    }

    /// The sink's configuration for these arguments (the archive as resolved).
    fn config(&self, archive: &str, engines: &[Engine]) -> Result<DdlSinkConfig, String> {
        let mut columns = serde_json::Map::new();
        for c in &self.columns {
            let (name, spec) = c.split_once('=').ok_or_else(|| {
                format!("--column {c:?}: write NAME=PATH[:TYPE], e.g. total=data.total:double")
            })?;
            columns.insert(name.to_owned(), spec.into());
        }
        let snapshot = match &self.snapshot {
            Some(s) => Some(
                absolute(Path::new(s))
                    .map_err(|e| format!("--snapshot {s:?}: {e}"))?
                    .to_string_lossy()
                    .into_owned(),
            ),
            None => None,
        };
        let engine_names: Vec<String> = engines
            .iter()
            .map(|e| format!("{e:?}").to_lowercase())
            .collect();
        let value = serde_json::json!({
            "archive": archive,
            "stream": self.stream,
            "out": self.out.to_string_lossy(),
            "engines": engine_names,
            "columns": columns,
            "snapshot": snapshot,
            "live_key": self.live_key,
            "include_fences": self.include_fences,
            "aws": {
                "region": self.region, "profile": self.profile, "endpoint": self.endpoint,
            },
        });
        let config: DdlSinkConfig =
            serde_json::from_value(value).map_err(|e| as_flags(&e.to_string()))?;
        flux_stages::problems::Problems::first(|p| config.check(p)).map_err(|e| as_flags(&e))?;
        Ok(config)
    }
}

pub(crate) fn ddl(args: DdlArgs) -> i32 {
    let stream = match StreamName::parse(&args.stream) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_INVALID, format!("--stream: {e}")),
    };
    let options = StoreOptions {
        aws: args.aws(),
        ..Default::default()
    };
    let store = match store::open_with(&args.archive, &options) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_INVALID, format!("the archive URL: {e}")),
    };
    // Local archives by absolute path, so the views work from any directory.
    let (archive, is_s3) = match store::locate(&args.archive, None) {
        Ok(StoreLocation::Local(dir)) => {
            if !dir.is_dir() {
                return fail(
                    EXIT_INVALID,
                    format!(
                        "{}: no archive there ({} is not a directory)",
                        args.archive,
                        dir.display()
                    ),
                );
            }
            (dir.to_string_lossy().into_owned(), false)
        }
        Ok(StoreLocation::S3 { .. }) => (args.archive.clone(), true),
        Err(e) => return fail(EXIT_INVALID, format!("the archive URL: {e}")),
    };
    let engines = if args.engines.is_empty() {
        if is_s3 {
            Engine::all()
        } else {
            vec![Engine::Duckdb, Engine::Drill]
        }
    } else {
        match args
            .engines
            .iter()
            .map(|e| Engine::parse(e.trim()))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(e) => e,
            Err(e) => return fail(EXIT_INVALID, format!("--engines: {e}")),
        }
    };
    let config = match args.config(&archive, &engines) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_INVALID, e),
    };
    let out = match absolute(&args.out) {
        Ok(o) => o,
        Err(e) => return fail(EXIT_INVALID, format!("--out {}: {e}", args.out.display())),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_RUNTIME, format!("cannot start the runtime: {e}")),
    };
    let (shards, first) = match rt.block_on(sql::survey(&store, &stream)) {
        Ok(s) => s,
        Err(e) => {
            return fail(
                EXIT_INVALID,
                format!("reading the archive {}: {e}", store.url()),
            );
        }
    };
    if shards.is_empty() && first.is_none() {
        return fail(
            EXIT_INVALID,
            format!(
                "--stream {stream}: the archive {} holds nothing of that stream (no checkpoint, no data object)",
                store.url()
            ),
        );
    }
    let since = first.unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d").to_string());
    let mut model = match config.model(shards, since) {
        Ok(m) => m,
        Err(e) => return fail(EXIT_INVALID, as_flags(&e)),
    };
    if engines.contains(&Engine::Athena) && model.shards.is_empty() {
        return fail(
            EXIT_INVALID,
            format!(
                "--engines athena: no shard of stream {stream} has a checkpoint in the archive, and Athena's projection needs the shard ids"
            ),
        );
    }
    if is_s3 {
        model.duckdb_s3.region = match &args.region {
            Some(r) => Some(r.clone()),
            None => rt
                .block_on(sdk_config(&args.aws()))
                .region()
                .map(|r| r.to_string()),
        };
        model.duckdb_s3.endpoint = args.endpoint.clone().or_else(|| {
            ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        });
    }
    model.duckdb_views_path = Some(out.join("duckdb/views.sql").to_string_lossy().into_owned());
    let files = sql::generate(&model, &engines);
    match super::ddl_out::write(&out, &files, args.force) {
        Ok(written) => {
            for path in &written {
                outln!("{}", path.display());
            }
            errln!("wrote {} files to {}", written.len(), out.display());
            if engines.contains(&Engine::Duckdb) {
                errln!(
                    "DuckDB: duckdb -init {}",
                    out.join("duckdb/views.sql").display()
                );
            }
            EXIT_OK
        }
        Err(super::ddl_out::WriteError::Refused(message)) => fail(EXIT_INVALID, message),
        Err(super::ddl_out::WriteError::Io(message)) => fail(EXIT_RUNTIME, message),
    }
}
