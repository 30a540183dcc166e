//! The typed model the renderers work from: where the archive is, what the tables and views are
//! called, which columns they have, and which payload fields are projected. Built once from the
//! sink's config (and what the run learned: shard ids); every engine renders the same model.

use std::collections::BTreeMap;

use super::columns::{ColumnType, Projection};

/// The archive root, parsed from the `archive` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveRoot {
    /// `s3://bucket/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without slashes around it (may be empty).
        prefix: String,
    },
    /// A local directory (`file://…` or a plain path), as written (relative paths are relative
    /// to the working directory of whoever runs the SQL).
    Local {
        /// The directory, without a trailing slash.
        path: String,
    },
}

impl ArchiveRoot {
    /// Parses an archive URL of the forms the `archive` sink accepts.
    pub fn parse(url: &str) -> Result<ArchiveRoot, String> {
        crate::store::check_url(url)?;
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            return Ok(ArchiveRoot::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        let path = path.trim_end_matches('/');
        Ok(ArchiveRoot::Local {
            path: if path.is_empty() { "/" } else { path }.to_owned(),
        })
    }

    /// The URL of `rel` below the root, with `scheme` for S3 (`s3`, `s3a`): for local roots the
    /// plain path.
    pub fn join(&self, scheme: &str, rel: &str) -> String {
        match self {
            ArchiveRoot::S3 { bucket, prefix } if prefix.is_empty() => {
                format!("{scheme}://{bucket}/{rel}")
            }
            ArchiveRoot::S3 { bucket, prefix } => format!("{scheme}://{bucket}/{prefix}/{rel}"),
            ArchiveRoot::Local { path } => format!("{path}/{rel}"),
        }
    }

    /// True for S3.
    pub fn is_s3(&self) -> bool {
        matches!(self, ArchiveRoot::S3 { .. })
    }
}

/// The names of the generated tables and views (each engine qualifies them its own way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The external table over the archive's objects (Hive, Athena).
    pub raw: String,
    /// The typed view over the archive (every engine).
    pub archive: String,
    /// Each shard's archived checkpoint (DuckDB, Hive, Drill).
    pub checkpoints: String,
    /// The live stream: the Hive Kinesis table, or DuckDB's view over a local snapshot.
    pub live: String,
    /// Live records after each shard's checkpoint, plus the archive up to it.
    pub unified: String,
}

impl Names {
    /// The default names for a stream: `<stream>_archive`, `<stream>_live`, … (the stream name
    /// with every character other than letters, digits and `_` turned into `_`).
    pub fn for_stream(stream: &str) -> Names {
        let mut base: String = stream
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        if base.starts_with(|c: char| c.is_ascii_digit()) || base.is_empty() {
            base.insert(0, 's');
        }
        Names {
            raw: format!("{base}_archive_raw"),
            archive: format!("{base}_archive"),
            checkpoints: format!("{base}_checkpoints"),
            live: format!("{base}_live"),
            unified: format!("{base}_unified"),
        }
    }
}

/// The shape of `data` that the projections need: nested objects down to the projected values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A projected value (read as text by the SerDes, cast in the views).
    Value,
    /// An object with these fields.
    Object(BTreeMap<String, Shape>),
}

/// Settings of the Drill output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillModel {
    /// Name of the storage plugin for the archive.
    pub plugin: String,
    /// The Hadoop file system scheme for S3: `s3a` (Drill's own), or `s3` (EMRFS on EMR).
    pub filesystem: String,
    /// The writable workspace the views are stored in, e.g. `dfs.tmp`.
    pub views_workspace: String,
    /// Name of the Hive storage plugin.
    pub hive_plugin: String,
    /// The Hive metastore URI, e.g. `thrift://localhost:9083`.
    pub metastore: String,
}

/// How DuckDB reaches an S3 archive, beyond the credential chain: the region and endpoint of
/// the `aws` settings (an emulator, MinIO, a VPC endpoint). Empty: DuckDB's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuckdbS3 {
    /// The region.
    pub region: Option<String>,
    /// The endpoint URL (`http://host:port` or `https://…`).
    pub endpoint: Option<String>,
}

/// Everything the renderers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The stream.
    pub stream: String,
    /// The archive root.
    pub archive: ArchiveRoot,
    /// Table and view names.
    pub names: Names,
    /// The projections, by column name: the user's, then the replay protocol's
    /// ([`protocol_projections`](super::columns::protocol_projections)).
    pub projections: Vec<Projection>,
    /// Keep the replay protocol's fences in the archive and unified views (default: left out;
    /// the `is_fence` column tells them apart either way).
    pub include_fences: bool,
    /// DuckDB: the files of the local snapshot of the live stream (envelopes), a glob.
    pub snapshot: Option<String>,
    /// Hive and Drill: a projection whose value is unique per record, for the unified view.
    pub live_key: Option<String>,
    /// Shard ids known (Athena's shard projection).
    pub shards: Vec<String>,
    /// Athena: the first day of the `dt` projection (`YYYY-MM-DD`).
    pub athena_since: String,
    /// Athena: the database.
    pub athena_database: String,
    /// Hive: the database.
    pub hive_database: String,
    /// Drill settings.
    pub drill: DrillModel,
    /// DuckDB: region and endpoint for the S3 secret.
    pub duckdb_s3: DuckdbS3,
    /// DuckDB: where `duckdb/views.sql` will be, for the header's `duckdb -init` line (`None`:
    /// relative to the output folder).
    pub duckdb_views_path: Option<String>,
}

/// Columns of the typed archive view, before the projections, in order (every engine).
pub const VIEW_COLUMNS: [&str; 9] = [
    "stream",
    "shard_id",
    "sequence_number",
    "partition_key",
    "arrival_ts",
    "data_b64",
    "dt",
    "hour",
    "shard",
];

/// The width sequence numbers are padded to (after stripping leading zeros) so that text order
/// is numeric order. Kinesis sequence numbers have at most 129 digits.
pub const SEQ_WIDTH: usize = 130;

impl Model {
    /// The prefix of the stream's data objects below the archive root.
    pub fn stream_dir(&self) -> String {
        format!("stream={}", self.stream)
    }

    /// The prefix of the stream's checkpoints below the archive root.
    pub fn checkpoint_dir(&self) -> String {
        format!("_flux/checkpoints/stream={}", self.stream)
    }

    /// The shape of `data` the projections read (`None` without projections).
    pub fn data_shape(&self) -> Option<Shape> {
        if self.projections.is_empty() {
            return None;
        }
        let mut root = BTreeMap::new();
        for p in &self.projections {
            let mut node = &mut root;
            let (last, parents) = p.spec.path.split_last().expect("a path has a field");
            for parent in parents {
                let entry = node
                    .entry(parent.clone())
                    .or_insert_with(|| Shape::Object(BTreeMap::new()));
                node = match entry {
                    Shape::Object(fields) => fields,
                    Shape::Value => unreachable!("checked by columns::check_paths"),
                };
            }
            node.insert(last.clone(), Shape::Value);
        }
        Some(Shape::Object(root))
    }

    /// True when the user declared projections (beyond the protocol's columns).
    pub fn has_user_projections(&self) -> bool {
        self.projections
            .iter()
            .any(|p| !super::columns::is_protocol_column(&p.name))
    }

    /// The `is_fence` projection, when the views leave fences out (`include_fences` unset).
    pub fn fence_filter(&self) -> Option<&Projection> {
        (!self.include_fences)
            .then(|| self.projection(super::columns::IS_FENCE))
            .flatten()
    }

    /// The projection named `name`.
    pub fn projection(&self, name: &str) -> Option<&Projection> {
        self.projections.iter().find(|p| p.name == name)
    }

    /// The typed archive view's columns: the fixed ones, then the projections.
    pub fn view_columns(&self) -> Vec<String> {
        VIEW_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .chain(self.projections.iter().map(|p| p.name.clone()))
            .collect()
    }
}

/// A projection's type, for renderers that spell types themselves.
pub fn type_of(p: &Projection) -> ColumnType {
    p.spec.ty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_parse_and_join() {
        let s3 = ArchiveRoot::parse("s3://acme/kinesis/").unwrap();
        assert_eq!(s3.join("s3a", "stream=o"), "s3a://acme/kinesis/stream=o");
        let bare = ArchiveRoot::parse("s3://acme").unwrap();
        assert_eq!(bare.join("s3", "x"), "s3://acme/x");
        let local = ArchiveRoot::parse("file://./archive/").unwrap();
        assert_eq!(local.join("s3", "x"), "./archive/x");
        assert!(ArchiveRoot::parse("gs://x").is_err());
    }

    #[test]
    fn default_names_are_identifiers() {
        let n = Names::for_stream("orders-eu.v2");
        assert_eq!(n.archive, "orders_eu_v2_archive");
        assert_eq!(Names::for_stream("7x").live, "s7x_live");
    }
}
