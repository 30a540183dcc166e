//! The closed set of stage kinds, selected by a stage table's `type` key.
//!
//! The engine reads `type` from a stage table first, then decodes the rest of the table with
//! [`StageConfig::decode`] (and friends) on the TOML deserializer itself, so every error keeps
//! its line and key path. A new stage kind adds its file and one arm in each `match` here.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

use crate::sink::archive::{ArchiveSinkConfig, RunInfo};
use crate::sink::ddl::DdlSinkConfig;
use crate::sink::file::FileSinkConfig;
use crate::sink::kinesis::KinesisSinkConfig;
use crate::source::archive::ArchiveSourceConfig;
use crate::source::file::FileSourceConfig;
use crate::source::kinesis::KinesisSourceConfig;
use crate::stage::{RecordTransform, Sink, Source, StatefulTransform};
use crate::transform::annotate::AnnotateConfig;
use crate::transform::compact::CompactConfig;
use crate::transform::filter::FilterConfig;
use crate::transform::window::WindowConfig;

/// The three sections of a pipeline file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `[sources.<id>]`
    Source,
    /// `[transforms.<id>]`
    Transform,
    /// `[sinks.<id>]`
    Sink,
}

impl Role {
    /// The section name in a pipeline file.
    pub fn section(self) -> &'static str {
        match self {
            Role::Source => "sources",
            Role::Transform => "transforms",
            Role::Sink => "sinks",
        }
    }

    /// The singular noun, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Transform => "transform",
            Role::Sink => "sink",
        }
    }

    /// The stage types this section accepts.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Role::Source => &["archive", "file", "kinesis"],
            Role::Transform => &["annotate", "compact", "filter", "window"],
            Role::Sink => &["archive", "ddl", "file", "kinesis"],
        }
    }

    /// Stage types that are planned but not yet available, for a clearer message.
    pub fn planned_kinds(self) -> &'static [&'static str] {
        match self {
            Role::Source => &[],
            Role::Transform => &[],
            Role::Sink => &[],
        }
    }
}

/// What stages need to know about the run when they are built.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The pipeline's name.
    pub pipeline: String,
    /// This run's id.
    pub run_id: String,
    /// The stage's id.
    pub stage: String,
    /// `flux-engine run --dry-run`: sinks that support it check and plan but write nothing;
    /// sinks that cannot refuse to build.
    pub dry_run: bool,
    /// Sources: the raw-bytes pre-check of the filter that is this source's only reader, when
    /// compile decided to push it down (see [`StageConfig::accepts_pushdown`]). The source skips
    /// input that cannot match before parsing it (counted as skipped); the filter still decides
    /// on every record that is parsed.
    pub pushdown: Option<crate::expr::Prefilter>,
    /// Sinks: the streams the sources upstream of its main input read, as named in their
    /// configuration (see [`StageConfig::source_stream`]), so that a sink can account for a
    /// stream that brings no record (the `archive` sink writes its run manifest anyway).
    pub upstream_streams: Vec<String>,
    /// A dry run's target shards for `kinesis` sinks, given on the command line (`--shards N`,
    /// `--shards-file F`) instead of listed from the stream: the dry run needs no Kinesis.
    pub offline_shards: Option<Vec<crate::sink::kinesis::shards::ShardRange>>,
    /// The stage's counters, which progress and the summary read: stages that count more than
    /// records and bytes in and out (skipped, throttled, an expected total) keep them.
    pub metrics: std::sync::Arc<crate::stage::StageMetrics>,
    /// The run's stop signal (Ctrl-C, SIGTERM), for stages whose work is slow to finish: the
    /// `kinesis` sink stops sending when it fires (a replay must stop within seconds).
    pub stop: tokio_util::sync::CancellationToken,
}

impl BuildContext {
    /// A context for building `stage` outside a run (tools, tests): fresh counters, a stop
    /// signal that never fires.
    pub fn detached(stage: &str) -> BuildContext {
        BuildContext {
            pipeline: String::new(),
            run_id: String::new(),
            stage: stage.to_owned(),
            dry_run: false,
            pushdown: None,
            upstream_streams: Vec::new(),
            offline_shards: None,
            metrics: Default::default(),
            stop: Default::default(),
        }
    }
}

/// What a stage needs from the runtime it runs on, beyond a task and its channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Threads the stage may hold at once in the runtime's blocking pool (0: the default pool
    /// is enough).
    pub blocking_threads: usize,
}

/// A decoded stage configuration of any role.
#[derive(Debug, Clone)]
pub enum StageConfig {
    /// `type = "file"` source.
    FileSource(FileSourceConfig),
    /// `type = "archive"` source.
    ArchiveSource(ArchiveSourceConfig),
    /// `type = "kinesis"` source.
    KinesisSource(KinesisSourceConfig),
    /// `type = "filter"` transform.
    Filter(FilterConfig),
    /// `type = "annotate"` transform.
    Annotate(AnnotateConfig),
    /// `type = "window"` transform.
    Window(WindowConfig),
    /// `type = "compact"` transform.
    Compact(CompactConfig),
    /// `type = "file"` sink.
    FileSink(FileSinkConfig),
    /// `type = "archive"` sink.
    ArchiveSink(ArchiveSinkConfig),
    /// `type = "ddl"` sink.
    DdlSink(Box<DdlSinkConfig>),
    /// `type = "kinesis"` sink.
    KinesisSink(KinesisSinkConfig),
}

/// A place outside the pipeline that stages read or write (see [`StageConfig::place`]); equal
/// when they are the same file, stream or archive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    /// Standard input, output or error.
    Std(crate::local_path::StdStream),
    /// A local file, resolved (see [`crate::local_path::resolve`]).
    File(std::path::PathBuf),
    /// An archive root.
    Archive(crate::store::StoreLocation),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Std(s) => f.write_str(s.name()),
            Place::File(p) => write!(f, "{}", p.display()),
            Place::Archive(a) => write!(f, "{a}"),
        }
    }
}

/// A stage, built and ready to run.
pub enum BuiltStage {
    /// A source.
    Source(Box<dyn Source>),
    /// A transform that decides about each record on its own.
    PerRecord(Box<dyn RecordTransform>),
    /// A transform with state across batches, run on the blocking pool.
    Stateful(Box<dyn StatefulTransform>),
    /// A sink.
    Sink(Box<dyn Sink>),
}

impl StageConfig {
    /// Decodes the stage table (without the engine keys) as the config of `role`/`kind`.
    /// `Ok(None)` when the kind is unknown for the role.
    pub fn decode<'de, D: Deserializer<'de>>(
        role: Role,
        kind: &str,
        d: D,
    ) -> Result<Option<StageConfig>, D::Error> {
        Ok(Some(match (role, kind) {
            (Role::Source, "file") => StageConfig::FileSource(FileSourceConfig::deserialize(d)?),
            (Role::Source, "archive") => {
                StageConfig::ArchiveSource(ArchiveSourceConfig::deserialize(d)?)
            }
            (Role::Source, "kinesis") => {
                StageConfig::KinesisSource(KinesisSourceConfig::deserialize(d)?)
            }
            (Role::Transform, "filter") => StageConfig::Filter(FilterConfig::deserialize(d)?),
            (Role::Transform, "annotate") => StageConfig::Annotate(AnnotateConfig::deserialize(d)?),
            (Role::Transform, "window") => StageConfig::Window(WindowConfig::deserialize(d)?),
            (Role::Transform, "compact") => StageConfig::Compact(CompactConfig::deserialize(d)?),
            (Role::Sink, "file") => StageConfig::FileSink(FileSinkConfig::deserialize(d)?),
            (Role::Sink, "archive") => StageConfig::ArchiveSink(ArchiveSinkConfig::deserialize(d)?),
            (Role::Sink, "ddl") => StageConfig::DdlSink(Box::new(DdlSinkConfig::deserialize(d)?)),
            (Role::Sink, "kinesis") => StageConfig::KinesisSink(KinesisSinkConfig::deserialize(d)?),
            _ => return Ok(None),
        }))
    }

    /// Checks what serde cannot: value ranges, URLs, templates. The message names the key.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            StageConfig::FileSource(c) => c.validate(),
            StageConfig::ArchiveSource(c) => c.validate(),
            StageConfig::KinesisSource(c) => c.validate(),
            StageConfig::Filter(_) => Ok(()),
            StageConfig::Annotate(c) => c.validate(),
            StageConfig::Window(c) => c.validate(),
            StageConfig::Compact(c) => c.validate(),
            StageConfig::FileSink(_) => Ok(()),
            StageConfig::ArchiveSink(c) => c.validate(),
            StageConfig::DdlSink(c) => c.validate(),
            StageConfig::KinesisSink(c) => c.validate(),
        }
    }

    /// Builds the runnable stage.
    pub fn build(&self, ctx: &BuildContext) -> Result<BuiltStage, String> {
        if ctx.dry_run && matches!(self, StageConfig::ArchiveSink(_)) {
            return Err(
                "the archive sink has no dry run; --dry-run works with kinesis and file sinks"
                    .into(),
            );
        }
        Ok(match self {
            StageConfig::FileSource(c) => BuiltStage::Source(c.build()?),
            StageConfig::ArchiveSource(c) => BuiltStage::Source(c.build(ctx.pushdown.clone())?),
            StageConfig::KinesisSource(c) => BuiltStage::Source(c.build()?),
            StageConfig::Filter(c) => BuiltStage::PerRecord(c.build()?),
            StageConfig::Annotate(c) => BuiltStage::PerRecord(c.build()?),
            StageConfig::Window(c) => BuiltStage::Stateful(c.build()?),
            StageConfig::Compact(c) => BuiltStage::Stateful(c.build(ctx.metrics.clone())?),
            StageConfig::FileSink(c) => BuiltStage::Sink(c.build(ctx.dry_run)?),
            StageConfig::ArchiveSink(c) => BuiltStage::Sink(c.build(
                RunInfo {
                    run_id: ctx.run_id.clone(),
                    pipeline: ctx.pipeline.clone(),
                    stage: ctx.stage.clone(),
                },
                ctx.upstream_streams.clone(),
            )?),
            StageConfig::DdlSink(c) => BuiltStage::Sink(c.build(&ctx.stage)?),
            StageConfig::KinesisSink(c) => BuiltStage::Sink(c.build(ctx)?),
        })
    }

    /// True when every record into this stage leaves as one record or one dead letter (as in
    /// `annotate`), so progress can carry an expected count through it.
    pub fn one_to_one(&self) -> bool {
        matches!(self, StageConfig::Annotate(_))
    }

    /// The byte capacity of the channels into this stage when `buffer_bytes` is not set, where
    /// it differs from the default: `compact` holds its input in its own bounded state, so a
    /// large channel in front of it only adds memory outside `memory_limit`.
    pub fn default_buffer_bytes(&self) -> Option<usize> {
        match self {
            StageConfig::Compact(_) => Some(2 * 1024 * 1024),
            _ => None,
        }
    }

    /// The stream a source's records carry, when its configuration decides it: a `kinesis`
    /// source's stream name (also when configured by ARN), an `archive` source's stream, a
    /// `file` source's `stream` with the `data` format (envelopes carry their own).
    pub fn source_stream(&self) -> Option<&str> {
        match self {
            StageConfig::FileSource(c) if c.format == crate::source::file::LineFormat::Data => {
                Some(&c.stream)
            }
            StageConfig::KinesisSource(c) => Some(c.stream_name()),
            StageConfig::ArchiveSource(c) => Some(&c.stream),
            _ => None,
        }
    }

    /// The place outside the pipeline this stage reads (a source) or writes (a sink), as the
    /// operating system or the store resolves it now; `None` for stages without one here
    /// (Kinesis streams, DDL output). `Err` when the place is invalid.
    pub fn place(&self) -> Option<Result<Place, String>> {
        use crate::local_path::{StdStream, resolve};
        let file = |path: &str, std: Option<StdStream>| match std {
            Some(s) => Ok(Place::Std(s)),
            None => resolve(std::path::Path::new(path))
                .map(Place::File)
                .map_err(|e| format!("{path}: {e}")),
        };
        Some(match self {
            StageConfig::FileSource(c) => file(&c.path, StdStream::for_reading(&c.path)),
            StageConfig::FileSink(c) => crate::sink::file::Target::of(&c.path)
                .map_err(|e| format!("{}: {e}", c.path))
                .and_then(|_| file(&c.path, StdStream::for_writing(&c.path))),
            StageConfig::ArchiveSource(c) => {
                crate::store::locate(&c.url, c.aws.endpoint.as_deref()).map(Place::Archive)
            }
            StageConfig::ArchiveSink(c) => {
                crate::store::locate(&c.url, c.aws.endpoint.as_deref()).map(Place::Archive)
            }
            _ => return None,
        })
    }

    /// The raw-bytes pre-check a source may apply when this stage is its only reader: only a
    /// pre-check that can rule something out.
    pub fn pushdown_prefilter(&self) -> Option<crate::expr::Prefilter> {
        match self {
            StageConfig::Filter(f) if !f.invert => {
                let pre = f.condition.0.prefilter();
                pre.is_useful().then(|| pre.clone())
            }
            _ => None,
        }
    }

    /// Whether this source applies a pushed-down pre-check ([`BuildContext::pushdown`]).
    pub fn accepts_pushdown(&self) -> bool {
        matches!(self, StageConfig::ArchiveSource(_))
    }

    /// What the stage needs from the runtime (see [`Resources`]).
    pub fn resources(&self) -> Resources {
        match self {
            // An arrival-order read keeps one reader thread per shard open at once.
            StageConfig::ArchiveSource(_) => Resources {
                blocking_threads: crate::source::archive::BLOCKING_THREADS,
            },
            _ => Resources::default(),
        }
    }

    /// The JSON Schema of a kind's own keys (without the engine keys).
    pub fn schema(role: Role, kind: &str, generator: &mut SchemaGenerator) -> Option<Schema> {
        Some(match (role, kind) {
            (Role::Source, "file") => FileSourceConfig::json_schema(generator),
            (Role::Source, "archive") => ArchiveSourceConfig::json_schema(generator),
            (Role::Source, "kinesis") => KinesisSourceConfig::json_schema(generator),
            (Role::Transform, "filter") => FilterConfig::json_schema(generator),
            (Role::Transform, "annotate") => AnnotateConfig::json_schema(generator),
            (Role::Transform, "window") => WindowConfig::json_schema(generator),
            (Role::Transform, "compact") => CompactConfig::json_schema(generator),
            (Role::Sink, "file") => FileSinkConfig::json_schema(generator),
            (Role::Sink, "archive") => ArchiveSinkConfig::json_schema(generator),
            (Role::Sink, "ddl") => DdlSinkConfig::json_schema(generator),
            (Role::Sink, "kinesis") => KinesisSinkConfig::json_schema(generator),
            _ => return None,
        })
    }
}
