//! Per-stage facts that compile derives from the whole graph, for the runtime to act on when it
//! builds the stages: a filter's pre-check pushed down into the source it is the only reader of,
//! the streams upstream of each sink, and what each stage needs from the runtime. The runtime
//! hands them to the stages through their `BuildContext` and sizes its tokio runtime from them;
//! it never changes a stage after it is built.

use std::collections::{BTreeSet, HashSet};

use flux_stages::expr::Prefilter;
use flux_stages::json::probe::PayloadProbe;
use flux_stages::registry::{Resources, Role};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use super::{Edge, Node};
use crate::config::Port;

/// What compile decided about one stage.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Sources: the raw-bytes pre-check of the filter that is the source's only reader, and
    /// that filter's id, when the source applies one (see
    /// `flux_stages::registry::BuildContext::pushdown`).
    pub pushdown: Option<(Prefilter, String)>,
    /// Sources: the payload paths that the stage which is the source's only reader takes from
    /// every record, when the source notes them (see `flux_stages::json::probe`).
    pub probe: Option<PayloadProbe>,
    /// Sinks: the streams the sources upstream of its main input read, sorted (dead-letter
    /// edges carry rejects, not the stream's records, and are not followed).
    pub upstream_streams: Vec<String>,
    /// Sinks: those of `upstream_streams` whose source shares them with other processes
    /// (`workers = "shared"`).
    pub shared_streams: Vec<String>,
    /// What the stage needs from the runtime.
    pub resources: Resources,
}

/// Fills in [`Node::facts`] of every node of a checked graph.
pub(super) fn derive(graph: &mut DiGraph<Node, Edge>) {
    for n in graph.node_indices() {
        let facts = Facts {
            pushdown: pushdown(graph, n),
            probe: probe(graph, n),
            upstream_streams: upstream_streams(graph, n),
            shared_streams: shared_streams(graph, n),
            resources: graph[n].config.resources(),
        };
        graph[n].facts = facts;
    }
}

/// A source's pushed-down pre-check: its only main-port reader is a filter with a useful one,
/// and the source applies them.
fn pushdown(graph: &DiGraph<Node, Edge>, n: NodeIndex) -> Option<(Prefilter, String)> {
    let reader = &graph[only_reader(graph, n)?];
    let pre = reader.config.pushdown_prefilter()?;
    Some((pre, reader.id.clone()))
}

/// A source's pushed-down probe: that of the stage its records reach through a chain of only
/// readers that forward records as they are (filters), the source applying it.
fn probe(graph: &DiGraph<Node, Edge>, n: NodeIndex) -> Option<PayloadProbe> {
    let mut at = only_reader(graph, n)?;
    loop {
        let config = &graph[at].config;
        if let Some(probe) = config.pushdown_probe() {
            return Some(probe);
        }
        if !config.forwards_records() {
            return None;
        }
        at = only_main_reader(graph, at)?;
    }
}

/// The only main-port reader of a source that applies what is pushed down into it.
fn only_reader(graph: &DiGraph<Node, Edge>, n: NodeIndex) -> Option<NodeIndex> {
    let node = &graph[n];
    if node.role != Role::Source || !node.config.accepts_pushdown() {
        return None;
    }
    only_main_reader(graph, n)
}

/// The only stage reading node `n`'s main port.
fn only_main_reader(graph: &DiGraph<Node, Edge>, n: NodeIndex) -> Option<NodeIndex> {
    let readers: Vec<NodeIndex> = graph
        .edges_directed(n, Direction::Outgoing)
        .filter(|e| e.weight().port == Port::Main)
        .map(|e| e.target())
        .collect();
    match readers.as_slice() {
        [only] => Some(*only),
        _ => None,
    }
}

/// The streams a sink's upstream sources read.
fn upstream_streams(graph: &DiGraph<Node, Edge>, n: NodeIndex) -> Vec<String> {
    streams_reaching(graph, n, |e| e.port == Port::Main, |_| true)
}

/// The streams of the shared sources (`workers = "shared"`) whose records or dead letters reach
/// a sink: several processes write them at once, so no sink of the pipeline may take a lease on
/// the whole stream (the dead-letter archive of a shared stream included).
fn shared_streams(graph: &DiGraph<Node, Edge>, n: NodeIndex) -> Vec<String> {
    streams_reaching(graph, n, |_| true, |c| c.shared_archive().is_some())
}

/// The streams of the sources (those `source` picks) from which edges that `edge` follows reach
/// sink `n`.
fn streams_reaching(
    graph: &DiGraph<Node, Edge>,
    n: NodeIndex,
    edge: impl Fn(&Edge) -> bool,
    source: impl Fn(&flux_stages::registry::StageConfig) -> bool,
) -> Vec<String> {
    if graph[n].role != Role::Sink {
        return Vec::new();
    }
    let mut streams = BTreeSet::new();
    let mut seen = HashSet::new();
    let mut todo = vec![n];
    while let Some(m) = todo.pop() {
        for e in graph.edges_directed(m, Direction::Incoming) {
            if edge(e.weight()) && seen.insert(e.source()) {
                todo.push(e.source());
            }
        }
        if let Some(s) = graph[m]
            .config
            .source_stream()
            .filter(|_| source(&graph[m].config))
        {
            streams.insert(s.to_owned());
        }
    }
    streams.into_iter().collect()
}

/// What a whole pipeline needs from its runtime: the largest need of any stage (each figure is
/// a pool size, and the stages share one pool).
pub fn pipeline_resources<'a>(nodes: impl Iterator<Item = &'a Node>) -> Resources {
    nodes.fold(Resources::default(), |acc, n| Resources {
        blocking_threads: acc.blocking_threads.max(n.facts.resources.blocking_threads),
    })
}

#[cfg(test)]
mod tests {
    use crate::compile::Pipeline;

    fn compile(toml: &str) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, toml).unwrap();
        let loaded = crate::config::load_file(file.to_str().unwrap(), &Default::default());
        let spec = loaded
            .spec
            .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
        let (p, diags) = crate::compile::compile(&spec);
        p.unwrap_or_else(|| panic!("{diags:?}"))
    }

    fn node<'a>(p: &'a Pipeline, id: &str) -> &'a crate::compile::Node {
        p.graph.node_weights().find(|n| n.id == id).unwrap()
    }

    const ARCHIVE_SOURCE: &str = r#"
[sources.arch]
type = "archive"
url = "file:///tmp/flux-facts-test-archive"
stream = "orders"
"#;

    #[test]
    fn a_filter_that_is_the_only_reader_of_an_archive_source_is_pushed_down() {
        let p = compile(&format!(
            r#"{ARCHIVE_SOURCE}
[transforms.eu]
type = "filter"
inputs = ["arch"]
where = "@.data.region == 'eu'"
[sinks.out]
type = "file"
inputs = ["eu"]
path = "-"
"#
        ));
        let (_, filter) = node(&p, "arch")
            .facts
            .pushdown
            .as_ref()
            .expect("pushed down");
        assert_eq!(filter, "eu");
        assert!(node(&p, "eu").facts.pushdown.is_none());
        assert_eq!(node(&p, "out").facts.upstream_streams, ["orders"]);
        assert_eq!(
            p.resources().blocking_threads,
            flux_stages::source::archive::BLOCKING_THREADS
        );
    }

    #[test]
    fn a_compaction_that_is_the_only_reader_of_an_archive_source_gets_its_paths_noted() {
        let pipeline = |key: &str, more: &str| {
            format!(
                r#"{ARCHIVE_SOURCE}
[transforms.latest]
type = "compact"
inputs = ["arch"]
key = "{key}"
[sinks.out]
type = "file"
inputs = ["latest"]
path = "-"
{more}"#
            )
        };
        let p = compile(&pipeline("$.data.customer.id", ""));
        let probe = node(&p, "arch").facts.probe.as_ref().expect("pushed down");
        let paths: Vec<Vec<&str>> = probe
            .paths()
            .iter()
            .map(|p| p.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(paths, [vec!["customer", "id"], vec!["_flux"]]);
        assert!(node(&p, "arch").facts.pushdown.is_none());
        // A key that is not a path into the payload needs no scan; a second reader of the
        // source gets records the probe was not made for.
        let p = compile(&pipeline("partition_key", ""));
        assert!(node(&p, "arch").facts.probe.is_none());
        let p = compile(&pipeline(
            "$.data.id",
            "[sinks.all]\ntype = \"file\"\ninputs = [\"arch\"]\npath = \"all.jsonl\"\n",
        ));
        assert!(node(&p, "arch").facts.probe.is_none());
        // Through a filter (the replay template's shape), which is pushed down too.
        let p = compile(&format!(
            r#"{ARCHIVE_SOURCE}
[transforms.eu]
type = "filter"
inputs = ["arch"]
where = "@.data.region == 'eu'"
[transforms.latest]
type = "compact"
inputs = ["eu"]
key = "$.data.id"
[sinks.out]
type = "file"
inputs = ["latest"]
path = "-"
"#
        ));
        let arch = &node(&p, "arch").facts;
        assert!(arch.probe.is_some() && arch.pushdown.is_some());
        // Not through a stage that changes records.
        let p = compile(&format!(
            r#"{ARCHIVE_SOURCE}
[transforms.mark]
type = "annotate"
inputs = ["arch"]
fields = {{ replay = "r1" }}
[transforms.latest]
type = "compact"
inputs = ["mark"]
key = "$.data.id"
[sinks.out]
type = "file"
inputs = ["latest"]
path = "-"
"#
        ));
        assert!(node(&p, "arch").facts.probe.is_none());
    }

    #[test]
    fn no_push_down_with_a_second_reader_nor_into_a_file_source() {
        let p = compile(&format!(
            r#"{ARCHIVE_SOURCE}
[transforms.eu]
type = "filter"
inputs = ["arch"]
where = "@.data.region == 'eu'"
[sinks.out]
type = "file"
inputs = ["eu"]
path = "-"
[sinks.all]
type = "file"
inputs = ["arch"]
path = "all.jsonl"
"#
        ));
        assert!(node(&p, "arch").facts.pushdown.is_none());
        let p = compile(
            r#"
[sources.f]
type = "file"
path = "in.jsonl"
stream = "clicks"
[transforms.eu]
type = "filter"
inputs = ["f"]
where = "@.data.region == 'eu'"
[sinks.out]
type = "file"
inputs = ["eu"]
path = "-"
[sinks.bad]
type = "file"
inputs = ["f.dead_letter"]
path = "bad.jsonl"
"#,
        );
        assert!(node(&p, "f").facts.pushdown.is_none());
        assert_eq!(node(&p, "out").facts.upstream_streams, ["clicks"]);
        assert!(
            node(&p, "bad").facts.upstream_streams.is_empty(),
            "dead letters are not the stream's records"
        );
        assert_eq!(p.resources().blocking_threads, 0);
    }

    #[test]
    fn the_sinks_of_a_shared_source_dead_letters_included_know_its_stream_is_shared() {
        let p = compile(
            r#"
[sources.k]
type = "kinesis"
stream = "orders"
start = "checkpoint"
checkpoints = "file://./arch"
workers = "shared"
[sources.f]
type = "file"
path = "in.jsonl"
stream = "clicks"
[sinks.arch]
type = "archive"
inputs = ["k", "f"]
url = "file://./arch"
[sinks.rejects]
type = "archive"
inputs = ["k.dead_letter"]
url = "file://./rejects"
"#,
        );
        assert_eq!(
            node(&p, "arch").facts.upstream_streams,
            ["clicks", "orders"]
        );
        assert_eq!(node(&p, "arch").facts.shared_streams, ["orders"]);
        assert_eq!(node(&p, "rejects").facts.shared_streams, ["orders"]);
        assert!(node(&p, "rejects").facts.upstream_streams.is_empty());
    }
}
