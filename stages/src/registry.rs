//! The closed set of stage kinds, selected by a stage table's `type` key.
//!
//! The engine reads `type` from a stage table first, then decodes the rest of the table with
//! [`StageConfig::decode`] on the TOML deserializer itself, so every error keeps its line and
//! key path.
//!
//! **Adding a stage kind**: write its module (its configuration type, with serde and schemars
//! derives, and the stage), implement [`StageKind`] for the configuration type there (how it is
//! checked and built, and what the engine should know about it), and add one row to the table
//! in the `stage_kinds!` invocation below: role, `type` name, variant, configuration type. The
//! decoding, the JSON Schema, the list of kinds per section and every dispatch come from that
//! row.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

use crate::sink::archive::ArchiveSinkConfig;
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

    /// The stage types this section accepts, sorted.
    pub fn kinds(self) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> = KINDS
            .iter()
            .filter(|(role, _)| *role == self)
            .map(|(_, name)| *name)
            .collect();
        kinds.sort_unstable();
        kinds
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
    /// Sources: the payload paths that the stage which is this source's only reader takes
    /// from every record, when compile pushed them down (see [`StageKind::pushdown_probe`]).
    /// The source notes where their values lie on each record it reads by a full scan.
    pub probe: Option<crate::json::probe::PayloadProbe>,
    /// Sinks: the streams the sources upstream of its main input read, as named in their
    /// configuration (see [`StageConfig::source_stream`]), so that a sink can account for a
    /// stream that brings no record (the `archive` sink writes its run manifest anyway).
    pub upstream_streams: Vec<String>,
    /// Sinks: those of [`BuildContext::upstream_streams`] that several processes share
    /// (`workers = "shared"` on their source): the `archive` sink takes no stream lease for
    /// them and reads a shard's checkpoint again before each object it opens.
    pub shared_streams: Vec<String>,
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
            probe: None,
            upstream_streams: Vec::new(),
            shared_streams: Vec::new(),
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

/// What the engine needs of a stage kind, implemented by its configuration type (in the kind's
/// own module). Only [`StageKind::build`] is required: the rest has the common answer.
pub trait StageKind {
    /// Checks what serde cannot (value ranges, URLs, templates, keys that contradict each
    /// other), recording every problem with the key it is about.
    fn validate(&self, problems: &mut crate::problems::Problems) {
        let _ = problems;
    }

    /// Builds the runnable stage.
    fn build(&self, ctx: &BuildContext) -> Result<BuiltStage, String>;

    /// True when every record into this stage leaves as one record or one dead letter (as in
    /// `annotate`), so progress can carry an expected count through it.
    fn one_to_one(&self) -> bool {
        false
    }

    /// The byte capacity of the channels into this stage when `buffer_bytes` is not set, where
    /// it differs from the default.
    fn default_buffer_bytes(&self) -> Option<usize> {
        None
    }

    /// The stream a source's records carry, when its configuration decides it.
    fn source_stream(&self) -> Option<&str> {
        None
    }

    /// The place outside the pipeline this stage reads (a source) or writes (a sink), as the
    /// operating system or the store resolves it now; `None` for stages without one here.
    /// `Err` when the place is invalid.
    fn place(&self) -> Option<Result<Place, String>> {
        None
    }

    /// Sources whose stream several processes share (`workers = "shared"`): the archive
    /// holding the checkpoints and shard leases through which they hand shards over. An archive
    /// sink fed by the source must write there.
    fn shared_archive(&self) -> Option<Result<Place, String>> {
        None
    }

    /// The raw-bytes pre-check a source may apply when this stage is its only reader: only a
    /// pre-check that can rule something out.
    fn pushdown_prefilter(&self) -> Option<crate::expr::Prefilter> {
        None
    }

    /// The payload paths this stage reads of every record, which a source it is the only
    /// reader of can note on each record it reads (see [`crate::json::probe`]).
    fn pushdown_probe(&self) -> Option<crate::json::probe::PayloadProbe> {
        None
    }

    /// True when records leave this stage as they came (or not at all), so that what a source
    /// noted on them stays true for the stage after it: a probe is pushed through it.
    fn forwards_records(&self) -> bool {
        false
    }

    /// Whether this source applies a pushed-down pre-check ([`BuildContext::pushdown`]) and
    /// probe ([`BuildContext::probe`]).
    fn accepts_pushdown(&self) -> bool {
        false
    }

    /// What the stage needs from the runtime (see [`Resources`]).
    fn resources(&self) -> Resources {
        Resources::default()
    }
}

/// The table of stage kinds: one row per kind, `Role "type" => Variant(ConfigType)`. It makes
/// [`StageConfig`], its decoding, its JSON Schema, the kinds per [`Role`] and the dispatch to
/// [`StageKind`].
macro_rules! stage_kinds {
    ($($role:ident $name:literal => $variant:ident($config:ty)),* $(,)?) => {
        /// A decoded stage configuration of any role and kind.
        #[derive(Debug, Clone)]
        pub enum StageConfig {
            $(
                #[doc = concat!("`type = \"", $name, "\"` in `[", stringify!($role), "s]`.")]
                $variant($config),
            )*
        }

        /// Every (role, `type`) pair.
        const KINDS: &[(Role, &str)] = &[$((Role::$role, $name)),*];

        impl StageConfig {
            /// Decodes the stage table (without the engine keys) as the config of
            /// `role`/`kind`. `Ok(None)` when the kind is unknown for the role.
            pub fn decode<'de, D: Deserializer<'de>>(
                role: Role,
                kind: &str,
                d: D,
            ) -> Result<Option<StageConfig>, D::Error> {
                $(
                    if role == Role::$role && kind == $name {
                        return <$config as Deserialize>::deserialize(d)
                            .map(|c| Some(StageConfig::$variant(c)));
                    }
                )*
                Ok(None)
            }

            /// The JSON Schema of a kind's own keys (without the engine keys).
            pub fn schema(
                role: Role,
                kind: &str,
                generator: &mut SchemaGenerator,
            ) -> Option<Schema> {
                $(
                    if role == Role::$role && kind == $name {
                        return Some(<$config as JsonSchema>::json_schema(generator));
                    }
                )*
                None
            }

            /// The kind behind this configuration.
            pub fn kind(&self) -> &dyn StageKind {
                match self {
                    $(StageConfig::$variant(c) => c,)*
                }
            }
        }
    };
}

stage_kinds! {
    Source "file" => FileSource(FileSourceConfig),
    Source "archive" => ArchiveSource(ArchiveSourceConfig),
    Source "kinesis" => KinesisSource(KinesisSourceConfig),
    Transform "filter" => Filter(FilterConfig),
    Transform "annotate" => Annotate(AnnotateConfig),
    Transform "window" => Window(WindowConfig),
    Transform "compact" => Compact(CompactConfig),
    Sink "file" => FileSink(FileSinkConfig),
    Sink "archive" => ArchiveSink(ArchiveSinkConfig),
    Sink "ddl" => DdlSink(Box<DdlSinkConfig>),
    Sink "kinesis" => KinesisSink(KinesisSinkConfig),
}

impl StageConfig {
    /// Checks what serde cannot ([`StageKind::validate`]): every problem, with its key.
    pub fn validate(&self) -> Vec<crate::problems::Problem> {
        crate::problems::Problems::all(|p| self.kind().validate(p))
    }

    /// Builds the runnable stage ([`StageKind::build`]).
    pub fn build(&self, ctx: &BuildContext) -> Result<BuiltStage, String> {
        self.kind().build(ctx)
    }

    /// See [`StageKind::one_to_one`].
    pub fn one_to_one(&self) -> bool {
        self.kind().one_to_one()
    }

    /// See [`StageKind::default_buffer_bytes`].
    pub fn default_buffer_bytes(&self) -> Option<usize> {
        self.kind().default_buffer_bytes()
    }

    /// See [`StageKind::source_stream`].
    pub fn source_stream(&self) -> Option<&str> {
        self.kind().source_stream()
    }

    /// See [`StageKind::place`].
    pub fn place(&self) -> Option<Result<Place, String>> {
        self.kind().place()
    }

    /// See [`StageKind::shared_archive`].
    pub fn shared_archive(&self) -> Option<Result<Place, String>> {
        self.kind().shared_archive()
    }

    /// See [`StageKind::pushdown_prefilter`].
    pub fn pushdown_prefilter(&self) -> Option<crate::expr::Prefilter> {
        self.kind().pushdown_prefilter()
    }

    /// See [`StageKind::pushdown_probe`].
    pub fn pushdown_probe(&self) -> Option<crate::json::probe::PayloadProbe> {
        self.kind().pushdown_probe()
    }

    /// See [`StageKind::forwards_records`].
    pub fn forwards_records(&self) -> bool {
        self.kind().forwards_records()
    }

    /// See [`StageKind::accepts_pushdown`].
    pub fn accepts_pushdown(&self) -> bool {
        self.kind().accepts_pushdown()
    }

    /// See [`StageKind::resources`].
    pub fn resources(&self) -> Resources {
        self.kind().resources()
    }
}

impl<K: StageKind + ?Sized> StageKind for Box<K> {
    fn validate(&self, p: &mut crate::problems::Problems) {
        (**self).validate(p)
    }
    fn build(&self, ctx: &BuildContext) -> Result<BuiltStage, String> {
        (**self).build(ctx)
    }
    fn one_to_one(&self) -> bool {
        (**self).one_to_one()
    }
    fn default_buffer_bytes(&self) -> Option<usize> {
        (**self).default_buffer_bytes()
    }
    fn source_stream(&self) -> Option<&str> {
        (**self).source_stream()
    }
    fn place(&self) -> Option<Result<Place, String>> {
        (**self).place()
    }
    fn shared_archive(&self) -> Option<Result<Place, String>> {
        (**self).shared_archive()
    }
    fn pushdown_prefilter(&self) -> Option<crate::expr::Prefilter> {
        (**self).pushdown_prefilter()
    }
    fn pushdown_probe(&self) -> Option<crate::json::probe::PayloadProbe> {
        (**self).pushdown_probe()
    }
    fn forwards_records(&self) -> bool {
        (**self).forwards_records()
    }
    fn accepts_pushdown(&self) -> bool {
        (**self).accepts_pushdown()
    }
    fn resources(&self) -> Resources {
        (**self).resources()
    }
}

/// The place of a stage that reads or writes a local file (or a standard stream).
pub(crate) fn file_place(
    path: &str,
    std: Option<crate::local_path::StdStream>,
) -> Result<Place, String> {
    match std {
        Some(s) => Ok(Place::Std(s)),
        None => crate::local_path::resolve(std::path::Path::new(path))
            .map(Place::File)
            .map_err(|e| format!("{path}: {e}")),
    }
}

#[cfg(test)]
mod tests;
