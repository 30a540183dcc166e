//! Compiling a loaded pipeline into a checked DAG (petgraph). Every check runs and every problem
//! is reported at once: duplicate ids, unknown inputs, reading a sink, cycles (with the whole
//! chain), stages whose output nobody reads, stages writing one file or archive or writing what
//! the pipeline reads ([`places`]). A compiled pipeline carries per-stage [`Facts`] that the
//! runtime acts on ([`facts`]).

pub mod facts;
#[cfg(test)]
mod kind_tests;
mod places;
pub mod plan;

use std::collections::{BTreeMap, HashMap};

use flux_stages::channel::Capacity;
use flux_stages::registry::{Role, StageConfig};
use petgraph::Direction;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::config::{PipelineSpec, Port};
use crate::diagnostic::{Diagnostic, DiagnosticKind, did_you_mean};
pub use facts::Facts;

/// A stage in the compiled graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// The stage id.
    pub id: String,
    /// Its section.
    pub role: Role,
    /// Its `type`.
    pub kind: String,
    /// Its decoded settings.
    pub config: StageConfig,
    /// Capacity of each channel into it.
    pub buffer: Capacity,
    /// What compile derived for it from the whole graph (push-down, upstream streams,
    /// resource needs).
    pub facts: Facts,
}

/// An edge: records of `port` of the upstream stage flow into the downstream one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// The upstream port.
    pub port: Port,
}

/// A compiled pipeline: a DAG whose nodes are in a valid run order.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The pipeline's name.
    pub name: String,
    /// The pipeline's description.
    pub description: Option<String>,
    /// The graph.
    pub graph: DiGraph<Node, Edge>,
    /// Nodes in topological order (sources first).
    pub order: Vec<NodeIndex>,
}

impl Pipeline {
    /// The downstream edges of a node's port.
    pub fn outputs(&self, node: NodeIndex, port: Port) -> Vec<NodeIndex> {
        self.graph
            .edges_directed(node, Direction::Outgoing)
            .filter(|e| e.weight().port == port)
            .map(|e| e.target())
            .collect()
    }

    /// What the whole pipeline needs from the runtime it runs on (see [`Facts::resources`]).
    pub fn resources(&self) -> flux_stages::registry::Resources {
        facts::pipeline_resources(self.graph.node_weights())
    }
}

/// A loaded file compiled: the pipeline when it has no error, and every diagnostic in file
/// order (those without a place last). What `validate` and `run` print and what `serve`
/// returns as JSON.
#[derive(Debug)]
pub struct Checked {
    /// The pipeline, when there is no error.
    pub pipeline: Option<Pipeline>,
    /// Errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

/// Compiles what [`crate::config::load_file`] or [`crate::config::load_text`] loaded, keeping
/// the load's diagnostics: secrets redacted, sorted by place.
pub fn check(loaded: crate::config::Loaded) -> Checked {
    let mut diags = loaded.diagnostics;
    let Some(spec) = loaded.spec else {
        return Checked {
            pipeline: None,
            diagnostics: diags,
        };
    };
    let load_errors = diags.iter().any(Diagnostic::is_error);
    let (pipeline, mut more) = compile(&spec);
    more.iter_mut().for_each(|d| d.redact(&spec.secrets));
    // With errors in the file already, "no source"/"no sink" only repeat them (a misspelt
    // section name is the usual cause).
    diags.extend(
        more.into_iter()
            .filter(|d| !(load_errors && d.location.is_none())),
    );
    // File order; diagnostics without a place come last.
    diags.sort_by_key(|d| {
        (
            d.location.is_none(),
            d.location.as_ref().map(|l| (l.line, l.column)),
            d.severity,
        )
    });
    let ok = !diags.iter().any(Diagnostic::is_error);
    Checked {
        pipeline: pipeline.filter(|_| ok),
        diagnostics: diags,
    }
}

/// Compiles a spec. Returns the pipeline when there are no errors, and every diagnostic.
pub fn compile(spec: &PipelineSpec) -> (Option<Pipeline>, Vec<Diagnostic>) {
    let file = spec.file.as_str();
    let mut diags = Vec::new();
    let mut graph: DiGraph<Option<Node>, Edge> = DiGraph::new();
    let mut index: HashMap<&str, (NodeIndex, usize)> = HashMap::new();

    // Pass 1: nodes, duplicate ids.
    for (i, stage) in spec.stages.iter().enumerate() {
        if let Some((_, first)) = index.get(stage.id.as_str()) {
            let first = &spec.stages[*first];
            diags.push(
                Diagnostic::error(
                    file,
                    format!(
                        "duplicate stage id `{}`: used by {} and {}",
                        stage.id,
                        first.path(),
                        stage.path()
                    ),
                )
                .at(stage.location.clone())
                .field(stage.path())
                .kind(DiagnosticKind::DuplicateId)
                .help(
                    "stage ids are shared across [sources], [transforms] and [sinks]; rename one",
                ),
            );
            continue;
        }
        let node = match (&stage.kind, &stage.config) {
            (Some(kind), Some(config)) => Some(Node {
                id: stage.id.clone(),
                role: stage.role,
                kind: kind.clone(),
                config: config.clone(),
                buffer: stage.buffer,
                facts: Facts::default(),
            }),
            _ => None,
        };
        index.insert(&stage.id, (graph.add_node(node), i));
    }

    // Pass 2: edges.
    for (i, stage) in spec.stages.iter().enumerate() {
        // A duplicate's inputs are not wired: the id belongs to its first declaration.
        let Some((to, _)) = index
            .get(stage.id.as_str())
            .copied()
            .filter(|(_, owner)| *owner == i)
        else {
            continue;
        };
        let mut seen = Vec::new();
        for input in &stage.inputs {
            let field = format!("{}.inputs", stage.path());
            if seen.contains(&input.label()) {
                diags.push(
                    Diagnostic::error(
                        file,
                        format!(
                            "`{}` is listed twice in the inputs of `{}`",
                            input.label(),
                            stage.id
                        ),
                    )
                    .at(input.location.clone())
                    .field(field),
                );
                continue;
            }
            seen.push(input.label());
            let Some((from, from_i)) = index.get(input.stage.as_str()).copied() else {
                let mut d = Diagnostic::error(
                    file,
                    format!("unknown input `{}` in {}", input.stage, stage.path()),
                )
                .kind(DiagnosticKind::UnknownInput)
                .at(input.location.clone())
                .field(field);
                let ids = spec
                    .stages
                    .iter()
                    .map(|s| s.id.as_str())
                    .filter(|id| *id != stage.id);
                d = match did_you_mean(&input.stage, ids) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!(
                        "inputs name stages of this file: {}",
                        spec.stages
                            .iter()
                            .map(|s| format!("`{}`", s.id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                diags.push(d);
                continue;
            };
            let upstream = &spec.stages[from_i];
            if upstream.role == Role::Sink && input.port == Port::Main {
                diags.push(
                    Diagnostic::error(file, format!("`{}` reads sink `{}`, but a sink has no output", stage.id, input.stage))
                        .at(input.location.clone())
                        .field(field)
                        .kind(DiagnosticKind::ReadsSink)
                        .help(format!("read the stage that feeds `{}` instead, or `{}.dead_letter` for the records it rejects", input.stage, input.stage)),
                );
                continue;
            }
            graph.add_edge(from, to, Edge { port: input.port });
        }
    }

    // Pass 3: cycles.
    let stage_of = |n: NodeIndex| -> &crate::config::StageSpec {
        let i = index
            .values()
            .find(|(ni, _)| *ni == n)
            .map(|(_, i)| *i)
            .unwrap_or(0);
        &spec.stages[i]
    };
    let mut cycles: Vec<Vec<NodeIndex>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
        .collect();
    cycles.sort_by_key(|scc| scc.iter().map(|n| n.index()).min());
    for scc in cycles {
        let chain = cycle_chain(&graph, &scc);
        let names: Vec<String> = chain.iter().map(|n| stage_of(*n).id.clone()).collect();
        let first = stage_of(chain[0]);
        diags.push(
            Diagnostic::error(
                file,
                format!("the stages form a cycle: {}", names.join(" → ")),
            )
            .at(first.location.clone())
            .field(first.path())
            .kind(DiagnosticKind::Cycle)
            .help("a pipeline is a DAG; break the cycle by removing one of these inputs"),
        );
    }

    // Pass 4: outputs nobody reads (not worth saying when an input name is already wrong).
    let unknown_inputs = diags.iter().any(|d| {
        matches!(
            d.kind,
            DiagnosticKind::UnknownInput | DiagnosticKind::DuplicateId
        )
    });
    for stage in &spec.stages {
        if unknown_inputs {
            break;
        }
        let Some((n, _)) = index.get(stage.id.as_str()).copied() else {
            continue;
        };
        if stage.role == Role::Sink
            || graph
                .edges_directed(n, Direction::Outgoing)
                .any(|e| e.weight().port == Port::Main)
        {
            continue;
        }
        let (make, what): (fn(&str, String) -> Diagnostic, &str) = match stage.role {
            Role::Source => (
                |f, m| Diagnostic::warning(f, m),
                "its records are read but go nowhere",
            ),
            _ => (|f, m| Diagnostic::error(f, m), "its records would be lost"),
        };
        diags.push(
            make(
                file,
                format!("nothing reads {} `{}`: {what}", stage.role.noun(), stage.id),
            )
            .at(stage.location.clone())
            .field(stage.path())
            .kind(DiagnosticKind::UnreadOutput)
            .help(format!(
                "add `\"{}\"` to the `inputs` of a transform or sink, or remove the stage",
                stage.id
            )),
        );
    }
    // Pass 5: files and archives read and written.
    let spec_index: HashMap<NodeIndex, usize> = index.values().copied().collect();
    places::check(
        spec,
        |i| {
            let Some((start, _)) = index.get(spec.stages[i].id.as_str()).copied() else {
                return Vec::new();
            };
            let mut seen = std::collections::HashSet::from([start]);
            let mut todo = vec![start];
            while let Some(n) = todo.pop() {
                for e in graph.edges_directed(n, Direction::Incoming) {
                    if e.weight().port == Port::Main && seen.insert(e.source()) {
                        todo.push(e.source());
                    }
                }
            }
            seen.remove(&start);
            seen.iter()
                .filter_map(|n| spec_index.get(n).copied())
                .collect()
        },
        &mut diags,
    );

    if !spec.stages.iter().any(|s| s.role == Role::Source) {
        diags.push(
            Diagnostic::error(file, "the pipeline has no source")
                .help("add a [sources.<id>] table"),
        );
    }
    if !spec.stages.iter().any(|s| s.role == Role::Sink) {
        diags.push(
            Diagnostic::error(file, "the pipeline has no sink").help("add a [sinks.<id>] table"),
        );
    }

    let has_errors = diags.iter().any(Diagnostic::is_error);
    if has_errors || graph.node_weights().any(Option::is_none) {
        return (None, diags);
    }
    let Ok(order) = toposort(&graph, None) else {
        return (None, diags);
    };
    let mut graph = graph.map(|_, n| n.clone().expect("checked above"), |_, e| *e);
    facts::derive(&mut graph);
    (
        Some(Pipeline {
            name: spec.name.clone(),
            description: spec.description.clone(),
            graph,
            order,
        }),
        diags,
    )
}

/// Orders the nodes of a strongly connected component along one cycle, starting at the node
/// declared first.
fn cycle_chain<N>(graph: &DiGraph<N, Edge>, scc: &[NodeIndex]) -> Vec<NodeIndex> {
    let start = *scc.iter().min().expect("non-empty");
    // Breadth-first search inside the component back to `start`.
    let mut prev: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(n).filter(|m| scc.contains(m)).collect();
        next.sort();
        for m in next {
            if m == start {
                let mut chain = vec![start];
                let mut cur = n;
                while cur != start {
                    chain.push(cur);
                    cur = prev[&cur];
                }
                chain[1..].reverse();
                chain.push(start);
                return chain;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    let mut chain = scc.to_vec();
    chain.push(start);
    chain
}
