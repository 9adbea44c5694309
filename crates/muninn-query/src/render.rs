//! Lineage as text: Mermaid (`flowchart LR`) and Graphviz DOT. The output is sorted and uses
//! stable node ids, so the same lineage always gives byte-identical text that can be committed
//! and diffed in CI.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::edges::Lineage;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Service(String),
    Stream { broker: String, stream: String },
}

/// Edges merged per (from, to, modifies): the event types on that arrow.
struct Graph {
    nodes: BTreeMap<Node, String>,
    arrows: BTreeMap<(Node, Node, bool), BTreeSet<String>>,
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|char| {
            if char.is_ascii_alphanumeric() {
                char
            } else {
                '_'
            }
        })
        .collect()
}

fn graph(lineage: &Lineage) -> Graph {
    let mut arrows: BTreeMap<(Node, Node, bool), BTreeSet<String>> = BTreeMap::new();
    let mut node_set: BTreeSet<Node> = BTreeSet::new();
    for edge in &lineage.edges {
        let service = Node::Service(edge.service.clone());
        let stream = Node::Stream {
            broker: edge.broker.to_string(),
            stream: edge.stream.clone(),
        };
        node_set.insert(service.clone());
        node_set.insert(stream.clone());
        let label = if edge.event_type.is_empty() {
            "(unknown type)".to_string()
        } else {
            edge.event_type.clone()
        };
        let key = if edge.action == "produced" {
            (service, stream, false)
        } else {
            (stream, service, edge.modifies)
        };
        arrows.entry(key).or_default().insert(label);
    }
    // Stable ids: a readable prefix, with a suffix when two names sanitize alike. The suffixed
    // id is checked too: `a_b_2` must not take the id already given to the second `a_b`.
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut nodes = BTreeMap::new();
    for node in node_set {
        let base = match &node {
            Node::Service(name) => format!("svc_{}", sanitize(name)),
            Node::Stream { broker, stream } => {
                format!("stream_{}_{}", sanitize(broker), sanitize(stream))
            }
        };
        let mut id = base.clone();
        let mut n_tried = 1;
        while used.contains(&id) {
            n_tried += 1;
            id = format!("{base}_{n_tried}");
        }
        used.insert(id.clone());
        nodes.insert(node, id);
    }
    Graph { nodes, arrows }
}

fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// Mermaid `flowchart LR`: services as boxes, streams as cylinders, arrows labelled with the
/// event types; a consumer that modifies the payload gets a thick arrow marked `modifies`.
pub fn render_mermaid(lineage: &Lineage) -> String {
    let graph = graph(lineage);
    let mut out = String::from("flowchart LR\n");
    for (node, id) in &graph.nodes {
        match node {
            Node::Service(name) => {
                let _ = writeln!(out, "    {id}[\"{}\"]", mermaid_text(name));
            }
            Node::Stream { broker, stream } => {
                let _ = writeln!(
                    out,
                    "    {id}[(\"{}<br/>{}\")]",
                    mermaid_text(stream),
                    mermaid_text(broker)
                );
            }
        }
    }
    for ((from, to, modifies), labels) in &graph.arrows {
        let label = labels
            .iter()
            .map(|label| mermaid_text(label))
            .collect::<Vec<_>>()
            .join("<br/>");
        let (from_id, to_id) = (&graph.nodes[from], &graph.nodes[to]);
        if *modifies {
            let _ = writeln!(
                out,
                "    {from_id} == \"{label}<br/>(modifies)\" ==> {to_id}"
            );
        } else {
            let _ = writeln!(out, "    {from_id} -- \"{label}\" --> {to_id}");
        }
    }
    out
}

fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT of the same graph.
pub fn render_dot(lineage: &Lineage) -> String {
    let graph = graph(lineage);
    let mut out = String::from("digraph lineage {\n    rankdir=LR;\n");
    for (node, id) in &graph.nodes {
        match node {
            Node::Service(name) => {
                let _ = writeln!(out, "    {id} [label=\"{}\", shape=box];", dot_text(name));
            }
            Node::Stream { broker, stream } => {
                let _ = writeln!(
                    out,
                    "    {id} [label=\"{}\\n({})\", shape=cylinder];",
                    dot_text(stream),
                    dot_text(broker)
                );
            }
        }
    }
    for ((from, to, modifies), labels) in &graph.arrows {
        let label = labels
            .iter()
            .map(|label| dot_text(label))
            .collect::<Vec<_>>()
            .join("\\n");
        let style = if *modifies {
            ", style=bold, color=\"#c0392b\""
        } else {
            ""
        };
        let suffix = if *modifies { "\\n(modifies)" } else { "" };
        let _ = writeln!(
            out,
            "    {} -> {} [label=\"{label}{suffix}\"{style}];",
            graph.nodes[from], graph.nodes[to]
        );
    }
    out.push_str("}\n");
    out
}
