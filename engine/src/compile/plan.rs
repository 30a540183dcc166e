//! Printing a compiled pipeline: a text plan and Graphviz DOT.

use std::fmt::Write;

use petgraph::Direction;
use petgraph::visit::EdgeRef;

use super::Pipeline;
use crate::config::Port;

/// The plan as text: stages in run order with their inputs and buffers.
pub fn text(p: &Pipeline) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pipeline {}", p.name);
    if let Some(d) = &p.description {
        let _ = writeln!(out, "  {d}");
    }
    for &n in &p.order {
        let node = &p.graph[n];
        let mut inputs: Vec<String> = p
            .graph
            .edges_directed(n, Direction::Incoming)
            .map(|e| label(&p.graph[e.source()].id, e.weight().port))
            .collect();
        inputs.sort();
        let _ = write!(
            out,
            "  {:<9} {:<20} type={}",
            node.role.noun(),
            node.id,
            node.kind
        );
        if !inputs.is_empty() {
            let _ = write!(
                out,
                "  inputs=[{}]  buffer={} records/{} bytes",
                inputs.join(", "),
                node.buffer.records,
                node.buffer.bytes
            );
        }
        out.push('\n');
    }
    out
}

fn label(id: &str, port: Port) -> String {
    match port {
        Port::Main => id.to_owned(),
        Port::DeadLetter => format!("{id}.dead_letter"),
    }
}

/// The plan as Graphviz DOT.
pub fn dot(p: &Pipeline) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&p.name));
    let _ = writeln!(out, "  rankdir=LR;");
    for &n in &p.order {
        let node = &p.graph[n];
        let shape = match node.role {
            flux_stages::registry::Role::Source => "invhouse",
            flux_stages::registry::Role::Transform => "box",
            flux_stages::registry::Role::Sink => "house",
        };
        let _ = writeln!(
            out,
            "  {} [label={}, shape={shape}];",
            quote(&node.id),
            quote(&format!(
                "{}\n({} {})",
                node.id,
                node.kind,
                node.role.noun()
            ))
        );
    }
    for e in p.graph.edge_references() {
        let style = match e.weight().port {
            Port::Main => String::new(),
            Port::DeadLetter => " [style=dashed, label=\"dead_letter\"]".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {} -> {}{style};",
            quote(&p.graph[e.source()].id),
            quote(&p.graph[e.target()].id)
        );
    }
    out.push_str("}\n");
    out
}

fn quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}
