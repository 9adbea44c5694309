//! `muninn lineage diff --against FILE`: the committed diagram against the current lineage, edge
//! by edge, printed as Markdown for a pull request; `--write` brings the file up to date. Like
//! diff(1) it exits 0 without drift, 1 with drift and 2 when it could not tell, so a scheduled
//! CI job can tell drift from a failure.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use muninn_model::Action;
use muninn_query::{DiagramEdge, DiagramError};

use super::{LineageFormat, fetch};
use crate::client::ApiClient;
use crate::server_args::{FilterArgs, RangeArgs, ServerArg};

/// `muninn lineage diff` arguments (`--server`, `--from` and `--to` are `muninn lineage`'s).
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The committed Mermaid (.mmd, .mermaid) or DOT (.dot, .gv) file to compare.
    #[arg(long, value_name = "FILE")]
    pub against: PathBuf,
    /// Also rewrite FILE with the current lineage (creating it if missing); the drift is still
    /// printed and still exits 1, so CI sees what changed.
    #[arg(long)]
    pub write: bool,
    /// The file's format [default: from its extension, else mermaid].
    #[arg(long, value_enum)]
    pub format: Option<LineageFormat>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Runs the comparison; errors are printed here, as exit code 2.
pub(super) async fn run(server: &ServerArg, range: &RangeArgs, args: &DiffArgs) -> ExitCode {
    match compare(server, range, args).await {
        Ok(Drift::None) => ExitCode::SUCCESS,
        Ok(Drift::Found) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

enum Drift {
    None,
    Found,
}

async fn compare(server: &ServerArg, range: &RangeArgs, args: &DiffArgs) -> Result<Drift> {
    let path = args.against.as_path();
    let format = args
        .format
        .or_else(|| LineageFormat::from_extension(path))
        .unwrap_or(LineageFormat::Mermaid);
    let parse: fn(&str) -> Result<BTreeSet<DiagramEdge>, DiagramError> = match format {
        LineageFormat::Mermaid => muninn_query::parse_mermaid,
        LineageFormat::Dot => muninn_query::parse_dot,
        LineageFormat::Json => bail!(
            "{}: lineage diff reads Mermaid (.mmd) or DOT (.dot) diagrams; use --format mermaid or dot",
            path.display()
        ),
    };
    let rerun = rerun_command(server, range, args, format);
    let committed_text = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && args.write => None,
        Err(error) => {
            return Err(error).with_context(|| {
                format!(
                    "reading {}; create it with `{rerun} --write`",
                    path.display()
                )
            });
        }
    };
    let committed = match &committed_text {
        Some(text) => parse(text).map_err(|error| {
            anyhow!(
                "{}:{}: {}; fix the line, or replace the file with `{rerun} --write`",
                path.display(),
                error.line,
                error.message
            )
        })?,
        None => BTreeSet::new(),
    };

    let client = ApiClient::connect(server)?;
    let current_text = fetch(&client, format, range, &args.filter).await?;
    let current = parse(&current_text).map_err(|error| {
        anyhow!(
            "the lineage {} sent does not read back (line {}: {}); are muninn and the server the same version?",
            client.base_url(),
            error.line,
            error.message
        )
    })?;

    let added: Vec<&DiagramEdge> = current.difference(&committed).collect();
    let removed: Vec<&DiagramEdge> = committed.difference(&current).collect();
    // The text can differ without the edges (a hand-edited comment, an older layout, CRLF):
    // `--write` brings it to exactly what `muninn lineage --check` expects.
    let text_differs = committed_text
        .as_deref()
        .is_none_or(|text| normalized(text) != normalized(&current_text));
    if args.write && text_differs {
        std::fs::write(path, &current_text)
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let file = path.display().to_string();
    let mut report = String::new();
    if added.is_empty() && removed.is_empty() {
        let _ = write!(
            report,
            "no drift: {file} matches the current lineage ({})",
            count(current.len(), "edge")
        );
        if args.write && text_differs {
            report.push_str("; rewrote it as the server renders it");
        }
        report.push('\n');
    } else {
        report = markdown(&file, &client.base_url(), &added, &removed);
        if args.write {
            let _ = writeln!(report, "\nUpdated `{file}` to the current lineage.");
        } else {
            let _ = writeln!(report, "\nUpdate it with `{rerun} --write`.");
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(report.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    Ok(if added.is_empty() && removed.is_empty() {
        Drift::None
    } else {
        Drift::Found
    })
}

/// Line endings and trailing newlines are not part of the lineage (as for `--check`).
fn normalized(text: &str) -> String {
    text.replace("\r\n", "\n")
        .trim_end_matches('\n')
        .to_string()
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The drift as a Markdown heading, a summary line and one table row per edge added or
/// removed, sorted so that an edge that only changed its `modifies` shows as adjacent rows.
fn markdown(file: &str, server: &str, added: &[&DiagramEdge], removed: &[&DiagramEdge]) -> String {
    let mut rows: Vec<(&DiagramEdge, &str)> = added
        .iter()
        .map(|edge| (*edge, "added"))
        .chain(removed.iter().map(|edge| (*edge, "removed")))
        .collect();
    rows.sort_by(|(left, left_change), (right, right_change)| {
        let key = |edge: &DiagramEdge| {
            (
                edge.service.clone(),
                edge.stream.clone(),
                edge.broker.clone(),
                edge.event_type.clone(),
                edge.action,
                edge.modifies,
            )
        };
        key(left)
            .cmp(&key(right))
            .then_with(|| left_change.cmp(right_change))
    });
    let mut out = format!(
        "### Lineage drift in {}\n\n{} added and {} removed in the current lineage of {server}.\n\n\
         | change | service | action | stream | event type |\n\
         | --- | --- | --- | --- | --- |\n",
        code(file),
        count(added.len(), "edge"),
        removed.len(),
    );
    for (edge, change) in rows {
        let action = match (edge.action, edge.modifies) {
            (Action::Produced, _) => "produces",
            (Action::Consumed, false) => "consumes",
            (Action::Consumed, true) => "consumes (modifies)",
        };
        let event_type = if edge.event_type.is_empty() {
            "_(unknown type)_".to_string()
        } else {
            code(&edge.event_type)
        };
        let _ = writeln!(
            out,
            "| {change} | {} | {action} | {} ({}) | {event_type} |",
            code(&edge.service),
            code(&edge.stream),
            edge.broker.replace('|', "\\|"),
        );
    }
    out
}

/// `text` as a Markdown code span that survives a table cell: `|` escaped, and a longer fence
/// (with spaces) when the text holds a backtick.
fn code(text: &str) -> String {
    let text = text.replace('|', "\\|");
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

/// The command that reproduces this comparison, for the messages (`--write` appended there).
fn rerun_command(
    server: &ServerArg,
    range: &RangeArgs,
    args: &DiffArgs,
    format: LineageFormat,
) -> String {
    let mut words = vec![
        "muninn lineage diff".to_string(),
        format!("--server {}", shell_word(&server.server)),
    ];
    let options = range
        .query()
        .into_iter()
        .chain(args.filter.query())
        .filter_map(|(name, value)| value.map(|value| (name.replace('_', "-"), value)));
    for (name, value) in options {
        words.push(format!("--{name} {}", shell_word(value)));
    }
    if args.format.is_some() {
        words.push(format!("--format {}", format.as_str()));
    }
    words.push(format!(
        "--against {}",
        shell_word(&args.against.display().to_string())
    ));
    words.join(" ")
}

/// `word` as one shell word: as is when plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|char| char.is_ascii_alphanumeric() || "-_./:@+=,".contains(char));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(service: &str, action: Action, modifies: bool, event_type: &str) -> DiagramEdge {
        DiagramEdge {
            service: service.to_string(),
            action,
            modifies,
            stream: "orders".to_string(),
            broker: "kafka".to_string(),
            event_type: event_type.to_string(),
        }
    }

    #[test]
    fn the_drift_is_a_markdown_table_of_the_edges_added_and_removed() {
        let added = edge("billing", Action::Consumed, true, "order.created");
        let removed = edge("billing", Action::Consumed, false, "order.created");
        let odd = edge("a|b", Action::Produced, false, "");
        let text = markdown(
            "docs/lineage.mmd",
            "http://127.0.0.1:4320",
            &[&added, &odd],
            &[&removed],
        );
        assert_eq!(
            text,
            "### Lineage drift in `docs/lineage.mmd`\n\n\
             2 edges added and 1 removed in the current lineage of http://127.0.0.1:4320.\n\n\
             | change | service | action | stream | event type |\n\
             | --- | --- | --- | --- | --- |\n\
             | added | `a\\|b` | produces | `orders` (kafka) | _(unknown type)_ |\n\
             | removed | `billing` | consumes | `orders` (kafka) | `order.created` |\n\
             | added | `billing` | consumes (modifies) | `orders` (kafka) | `order.created` |\n"
        );
        assert_eq!(code("a`b"), "`` a`b ``");
    }

    #[test]
    fn the_rerun_command_quotes_what_the_shell_would_change() {
        let args = DiffArgs {
            against: PathBuf::from("docs/lineage.mmd"),
            write: false,
            format: None,
            filter: FilterArgs {
                event_type: Some("order.*".to_string()),
                service: None,
                stream: None,
            },
        };
        let server = ServerArg {
            server: "http://127.0.0.1:4320".to_string(),
            token: None,
            ca_cert: None,
        };
        let range = RangeArgs {
            from: Some("-7d".to_string()),
            to: None,
        };
        assert_eq!(
            rerun_command(&server, &range, &args, LineageFormat::Mermaid),
            "muninn lineage diff --server http://127.0.0.1:4320 --from -7d \
             --event-type 'order.*' --against docs/lineage.mmd"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
