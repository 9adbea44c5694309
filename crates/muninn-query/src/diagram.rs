//! Lineage text read back: the edges of a Mermaid or DOT file as `render.rs` writes it, so that
//! a committed diagram can be compared with the current lineage edge by edge (`muninn lineage
//! diff`) rather than line by line. Both sides of such a comparison go through this parser, so
//! what the text cannot tell apart (a Mermaid name containing `<br/>`) never shows as drift.

use std::collections::{BTreeMap, BTreeSet};

use muninn_model::Action;

/// One edge as a diagram shows it: who, which way, where, what; no counts or times.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiagramEdge {
    pub service: String,
    pub action: Action,
    /// A consumer that changes the payload (a thick `(modifies)` arrow).
    pub modifies: bool,
    pub stream: String,
    pub broker: String,
    /// Empty for the `(unknown type)` label.
    pub event_type: String,
}

/// Why a diagram could not be read: the 1-based line and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DiagramError {
    pub line: usize,
    pub message: String,
}

const UNKNOWN_TYPE: &str = "(unknown type)";
const MODIFIES: &str = "(modifies)";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Service(String),
    Stream { stream: String, broker: String },
}

/// The nodes by id and the arrows (line, from id, to id, labels, thick), before resolution.
#[derive(Default)]
struct Parsed {
    nodes: BTreeMap<String, (usize, Node)>,
    arrows: Vec<Arrow>,
}

struct Arrow {
    line: usize,
    from: String,
    to: String,
    labels: Vec<String>,
    modifies: bool,
}

fn error(line: usize, message: impl Into<String>) -> DiagramError {
    DiagramError {
        line,
        message: message.into(),
    }
}

impl Parsed {
    fn add_node(&mut self, line: usize, id: &str, node: Node) -> Result<(), DiagramError> {
        if let Some((first_line, first)) = self.nodes.get(id) {
            if *first != node {
                return Err(error(
                    line,
                    format!("node {id} is defined again, differently from line {first_line}"),
                ));
            }
            return Ok(());
        }
        self.nodes.insert(id.to_string(), (line, node));
        Ok(())
    }

    /// The edges, each arrow's labels one edge each.
    fn edges(self) -> Result<BTreeSet<DiagramEdge>, DiagramError> {
        let mut edges = BTreeSet::new();
        for arrow in self.arrows {
            let node = |id: &str| {
                self.nodes.get(id).map(|(_, node)| node).ok_or_else(|| {
                    error(
                        arrow.line,
                        format!("node {id} is not defined on any line (as a service or a stream)"),
                    )
                })
            };
            let (service, action, stream, broker) = match (node(&arrow.from)?, node(&arrow.to)?) {
                (Node::Service(service), Node::Stream { stream, broker }) => {
                    (service, Action::Produced, stream, broker)
                }
                (Node::Stream { stream, broker }, Node::Service(service)) => {
                    (service, Action::Consumed, stream, broker)
                }
                _ => {
                    return Err(error(
                        arrow.line,
                        "an arrow goes from a service to a stream (produces) or from a stream \
                         to a service (consumes)",
                    ));
                }
            };
            if arrow.modifies && action == Action::Produced {
                return Err(error(
                    arrow.line,
                    "only a consumer modifies: a (modifies) arrow goes from a stream to a service",
                ));
            }
            for label in arrow.labels {
                let event_type = if label == UNKNOWN_TYPE {
                    String::new()
                } else {
                    label
                };
                edges.insert(DiagramEdge {
                    service: service.clone(),
                    action,
                    modifies: arrow.modifies,
                    stream: stream.clone(),
                    broker: broker.clone(),
                    event_type,
                });
            }
        }
        Ok(edges)
    }
}

/// A node id as the renderers write them: ASCII letters, digits and `_`.
fn split_id(text: &str) -> (&str, &str) {
    let end = text
        .find(|char: char| !(char.is_ascii_alphanumeric() || char == '_'))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// The significant lines (1-based numbers, trimmed), without blanks and `comment` lines.
fn significant_lines<'a>(
    text: &'a str,
    comment: &'a [&'a str],
) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    text.lines()
        .enumerate()
        .map(|(idx, line)| (idx + 1, line.trim()))
        .filter(move |(_, line)| {
            !line.is_empty() && !comment.iter().any(|prefix| line.starts_with(prefix))
        })
}

/// The edges of a Mermaid `flowchart` as `render_mermaid` writes it: `ID["service"]`,
/// `ID[("stream<br/>broker")]`, `A -- "types" --> B` and `A == "types<br/>(modifies)" ==> B`,
/// with `%%` comments and blank lines allowed.
pub fn parse_mermaid(text: &str) -> Result<BTreeSet<DiagramEdge>, DiagramError> {
    let mut lines = significant_lines(text, &["%%"]);
    match lines.next() {
        Some((_, header)) if is_mermaid_header(header) => {}
        Some((line, header)) => {
            return Err(error(
                line,
                format!("expected `flowchart LR` as the first line, found {header:?}"),
            ));
        }
        None => return Err(error(1, "the file is empty; expected `flowchart LR`")),
    }
    let mut parsed = Parsed::default();
    for (line, content) in lines {
        let (id, rest) = split_id(content);
        if id.is_empty() {
            return Err(error(line, not_a_mermaid_line(content)));
        }
        let rest = rest.trim_start();
        if let Some(label) = quoted(rest, "[(\"", "\")]") {
            let label = mermaid_unescape(label);
            let Some((stream, broker)) = label.rsplit_once("<br/>") else {
                return Err(error(
                    line,
                    format!("a stream's label is \"STREAM<br/>BROKER\", found {label:?}"),
                ));
            };
            let node = Node::Stream {
                stream: stream.to_string(),
                broker: broker.to_string(),
            };
            parsed.add_node(line, id, node)?;
        } else if let Some(label) = quoted(rest, "[\"", "\"]") {
            parsed.add_node(line, id, Node::Service(mermaid_unescape(label)))?;
        } else if let Some((label, to, modifies)) = mermaid_arrow(rest) {
            let mut labels: Vec<String> = label.split("<br/>").map(mermaid_unescape).collect();
            if modifies && labels.last().map(String::as_str) == Some(MODIFIES) {
                labels.pop();
            }
            parsed.arrows.push(Arrow {
                line,
                from: id.to_string(),
                to: to.to_string(),
                labels,
                modifies,
            });
        } else {
            return Err(error(line, not_a_mermaid_line(content)));
        }
    }
    parsed.edges()
}

fn is_mermaid_header(line: &str) -> bool {
    let mut words = line.split_whitespace();
    matches!(words.next(), Some("flowchart" | "graph"))
        && words
            .next()
            .is_none_or(|direction| ["LR", "RL", "TB", "TD", "BT"].contains(&direction))
        && words.next().is_none()
}

fn not_a_mermaid_line(content: &str) -> String {
    format!(
        "{content:?} is not a line `muninn lineage` writes: expected a service ID[\"name\"], a \
         stream ID[(\"stream<br/>broker\")], an arrow A -- \"types\" --> B or \
         A == \"types<br/>(modifies)\" ==> B, or a %% comment"
    )
}

/// The text between `open` and `close` when `text` is exactly that, without other quotes.
fn quoted<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let inner = text.strip_prefix(open)?.strip_suffix(close)?;
    (!inner.contains('"')).then_some(inner)
}

/// `-- "label" --> TO` or `== "label" ==> TO`: the label, the target id, and whether thick.
fn mermaid_arrow(text: &str) -> Option<(&str, &str, bool)> {
    for (open, close, modifies) in [("-- \"", "\" -->", false), ("== \"", "\" ==>", true)] {
        let Some(rest) = text.strip_prefix(open) else {
            continue;
        };
        let (label, rest) = rest.split_once('"')?;
        let to = rest.strip_prefix(&close[1..])?.trim();
        let (id, after) = split_id(to);
        return (!id.is_empty() && after.is_empty()).then_some((label, id, modifies));
    }
    None
}

fn mermaid_unescape(text: &str) -> String {
    text.replace("#quot;", "\"")
}

/// The edges of a Graphviz `digraph` as `render_dot` writes it: `ID [label="…", shape=box];`
/// for services, `shape=cylinder` with `label="stream\n(broker)"` for streams, and
/// `A -> B [label="types"];` with a `\n(modifies)` label suffix for modifying consumers; `//`
/// and `#` comments and blank lines allowed.
pub fn parse_dot(text: &str) -> Result<BTreeSet<DiagramEdge>, DiagramError> {
    let mut lines = significant_lines(text, &["//", "#"]);
    match lines.next() {
        Some((_, header)) if header.starts_with("digraph") && header.ends_with('{') => {}
        Some((line, header)) => {
            return Err(error(
                line,
                format!("expected `digraph lineage {{` as the first line, found {header:?}"),
            ));
        }
        None => return Err(error(1, "the file is empty; expected `digraph lineage {`")),
    }
    let mut parsed = Parsed::default();
    let mut closed_on: Option<usize> = None;
    for (line, content) in lines {
        if let Some(closing_line) = closed_on {
            return Err(error(
                line,
                format!("{content:?} after the graph's closing brace on line {closing_line}"),
            ));
        }
        if content == "}" {
            closed_on = Some(line);
            continue;
        }
        let statement = content.strip_suffix(';').unwrap_or(content).trim_end();
        if statement.starts_with("rankdir=") {
            continue;
        }
        let (id, rest) = split_id(statement);
        if id.is_empty() {
            return Err(error(line, not_a_dot_line(content)));
        }
        let rest = rest.trim_start();
        if let Some(rest) = rest.strip_prefix("->") {
            let (to, rest) = split_id(rest.trim_start());
            let attributes = dot_attributes(rest.trim_start())
                .map_err(|message| error(line, message))?
                .ok_or_else(|| error(line, not_a_dot_line(content)))?;
            if to.is_empty() {
                return Err(error(line, not_a_dot_line(content)));
            }
            let label = attribute(&attributes, "label").unwrap_or_default();
            let mut labels: Vec<String> = label.split('\n').map(str::to_string).collect();
            let modifies = labels.last().map(String::as_str) == Some(MODIFIES);
            if modifies {
                labels.pop();
            }
            parsed.arrows.push(Arrow {
                line,
                from: id.to_string(),
                to: to.to_string(),
                labels,
                modifies,
            });
            continue;
        }
        let attributes = dot_attributes(rest)
            .map_err(|message| error(line, message))?
            .ok_or_else(|| error(line, not_a_dot_line(content)))?;
        let label = attribute(&attributes, "label")
            .ok_or_else(|| error(line, format!("node {id} has no label")))?;
        let node = match attribute(&attributes, "shape") {
            Some("box") => Node::Service(label.to_string()),
            Some("cylinder") => {
                let stream_and_broker = label.rsplit_once('\n').and_then(|(stream, broker)| {
                    let broker = broker.strip_prefix('(')?.strip_suffix(')')?;
                    Some((stream, broker))
                });
                let Some((stream, broker)) = stream_and_broker else {
                    return Err(error(
                        line,
                        format!("a stream's label is \"STREAM\\n(BROKER)\", found {label:?}"),
                    ));
                };
                Node::Stream {
                    stream: stream.to_string(),
                    broker: broker.to_string(),
                }
            }
            other => {
                return Err(error(
                    line,
                    format!(
                        "node {id} has shape {other:?}: a service is shape=box, a stream \
                         shape=cylinder"
                    ),
                ));
            }
        };
        parsed.add_node(line, id, node)?;
    }
    if closed_on.is_none() {
        let n_lines = text.lines().count().max(1);
        return Err(error(n_lines, "the graph is not closed with `}`"));
    }
    parsed.edges()
}

fn not_a_dot_line(content: &str) -> String {
    format!(
        "{content:?} is not a line `muninn lineage` writes: expected a node \
         ID [label=\"…\", shape=box|cylinder]; or an edge A -> B [label=\"…\"];"
    )
}

fn attribute<'a>(attributes: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// `[key=value, key="quoted", …]` (quoted values unescaped: `\"`, `\\`, `\n` as a line
/// break), or `None` when `text` does not start with `[`; an error names what is malformed.
fn dot_attributes(text: &str) -> Result<Option<Vec<(String, String)>>, String> {
    let Some(mut rest) = text.strip_prefix('[') else {
        return Ok(None);
    };
    let mut attributes = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix(']') {
            if !after.trim().is_empty() {
                return Err(format!("{after:?} after the attribute list"));
            }
            return Ok(Some(attributes));
        }
        let (key, after_key) = split_id(rest);
        let Some(after_equals) = after_key.trim_start().strip_prefix('=') else {
            return Err(format!("expected KEY=VALUE in the attributes at {rest:?}"));
        };
        let after_equals = after_equals.trim_start();
        let (value, after_value) = match after_equals.strip_prefix('"') {
            Some(quoted) => dot_quoted(quoted)?,
            None => {
                let end = after_equals
                    .find([',', ']', ' '])
                    .unwrap_or(after_equals.len());
                (after_equals[..end].to_string(), &after_equals[end..])
            }
        };
        attributes.push((key.to_string(), value));
        rest = after_value;
    }
}

/// A DOT string after its opening quote: the unescaped value and the text after the closing one.
fn dot_quoted(text: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((idx, char)) = chars.next() {
        match char {
            '"' => return Ok((value, &text[idx + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, escaped @ ('"' | '\\'))) => value.push(escaped),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => break,
            },
            other => value.push(other),
        }
    }
    Err("a quoted value is not closed with \"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edges::{Lineage, LineageEdge};
    use crate::render::{render_dot, render_mermaid};

    fn lineage_edge(
        service: &str,
        action: &'static str,
        stream: &str,
        broker: &'static str,
        event_type: &str,
        modifies: bool,
    ) -> LineageEdge {
        LineageEdge {
            service: service.to_string(),
            action,
            stream: stream.to_string(),
            broker,
            event_type: event_type.to_string(),
            count: 1,
            modifies,
            first_seen: String::new(),
            last_seen: String::new(),
        }
    }

    fn lineage(edges: Vec<LineageEdge>) -> Lineage {
        Lineage {
            from: String::new(),
            to: String::new(),
            edges,
        }
    }

    fn expected(lineage: &Lineage) -> BTreeSet<DiagramEdge> {
        lineage
            .edges
            .iter()
            .map(|edge| DiagramEdge {
                service: edge.service.clone(),
                action: Action::parse(edge.action).unwrap(),
                modifies: edge.modifies,
                stream: edge.stream.clone(),
                broker: edge.broker.to_string(),
                event_type: edge.event_type.clone(),
            })
            .collect()
    }

    /// Names that the renderers escape, sanitize alike, or merge onto one arrow.
    fn awkward() -> Lineage {
        lineage(vec![
            lineage_edge("a-b", "produced", "orders", "kafka", "order.created", false),
            lineage_edge("a_b", "produced", "orders", "kafka", "order.created", false),
            lineage_edge(
                "a_b_2",
                "produced",
                "orders",
                "kafka",
                "order.created",
                false,
            ),
            lineage_edge("a_b", "consumed", "orders", "kafka", "order.created", true),
            lineage_edge("a_b", "consumed", "orders", "kafka", "order.paid", true),
            lineage_edge("a_b", "consumed", "orders", "kafka", "order.shipped", false),
            lineage_edge(
                "say \"hi\"",
                "produced",
                "back\\slash",
                "nats",
                "quote\"d",
                false,
            ),
            lineage_edge("naïve", "produced", "orders v2", "kafka", "", false),
            lineage_edge("naïve", "consumed", "orders-v2", "kafka", "x]y)\\n", false),
            lineage_edge("svc", "consumed", "orders", "kafka", "order.created", false),
            lineage_edge("#quot", "produced", "[(\"]", "other", "a, b=c", false),
        ])
    }

    #[test]
    fn mermaid_and_dot_read_back_exactly_the_rendered_edges() {
        for lineage in [lineage(Vec::new()), awkward()] {
            let edges = expected(&lineage);
            let mermaid = render_mermaid(&lineage);
            assert_eq!(parse_mermaid(&mermaid), Ok(edges.clone()), "{mermaid}");
            let dot = render_dot(&lineage);
            assert_eq!(parse_dot(&dot), Ok(edges), "{dot}");
        }
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_allowed() {
        let mermaid = "%% lineage of the orders domain\r\nflowchart LR\r\n\r\n    \
                       svc_a[\"a\"]\r\n    %% a comment\r\n    s[(\"orders<br/>kafka\")]\r\n    \
                       svc_a -- \"order.created\" --> s\r\n";
        let edges = parse_mermaid(mermaid).unwrap();
        assert_eq!(edges.len(), 1);
        let dot = "// generated\ndigraph lineage {\n  a [label=\"a\", shape=box];\n\n  # c\n  \
                   s [label=\"orders\\n(kafka)\", shape=cylinder];\n  a -> s [label=\"order.created\"];\n}\n";
        assert_eq!(parse_dot(dot).unwrap(), edges);
    }

    #[test]
    fn errors_name_the_line_and_what_was_expected() {
        let check = |result: Result<BTreeSet<DiagramEdge>, DiagramError>, line, needle: &str| {
            let error = result.unwrap_err();
            assert_eq!(error.line, line, "{error}");
            assert!(error.to_string().contains(needle), "{error}");
        };
        check(parse_mermaid(""), 1, "empty");
        check(parse_mermaid("digraph lineage {\n}\n"), 1, "flowchart LR");
        let header = "flowchart LR\n    a[\"a\"]\n";
        check(
            parse_mermaid(&format!("{header}    a --> b\n")),
            3,
            "not a line `muninn lineage` writes",
        );
        check(
            parse_mermaid(&format!("{header}    a -- \"t\" --> nowhere\n")),
            3,
            "node nowhere is not defined",
        );
        check(
            parse_mermaid(&format!("{header}    b[\"b\"]\n    a -- \"t\" --> b\n")),
            4,
            "from a service to a stream",
        );
        check(
            parse_mermaid(&format!("{header}    s[(\"orders\")]\n")),
            3,
            "STREAM<br/>BROKER",
        );
        check(
            parse_mermaid(&format!("{header}    a[\"other\"]\n")),
            3,
            "differently from line 2",
        );
        check(parse_dot("flowchart LR\n"), 1, "digraph lineage {");
        check(parse_dot("digraph lineage {\n"), 1, "not closed");
        check(
            parse_dot("digraph lineage {\n    a [label=\"a\", shape=oval];\n}\n"),
            2,
            "shape=box",
        );
        check(
            parse_dot("digraph lineage {\n    a [label=\"a, shape=box];\n}\n"),
            2,
            "not closed",
        );
        check(
            parse_dot("digraph lineage {\n}\n    a [label=\"a\", shape=box];\n"),
            3,
            "after the graph's closing brace on line 2",
        );
    }
}
