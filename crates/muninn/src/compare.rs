//! `muninn compare`: asks a running server what changed between two windows
//! (`GET /api/v1/compare`) and prints the triage answer: the unusual throughput changes (with
//! the producer behind an increase), whether a drop holds for every event type, the mix
//! changes, and what appeared or disappeared. `--json` prints the server's answer.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::client::ApiClient;
use crate::server_args::{FilterArgs, ServerArg};
use crate::table::Table;

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Start of the window [default: 15 minutes before --to].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    from: Option<String>,
    /// End of the window [default: now].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    to: Option<String>,
    /// Start of the baseline [default: the window a day earlier, or an hour earlier past the
    /// store's retention].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    baseline_from: Option<String>,
    /// End of the baseline.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    baseline_to: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Print every change, not only the unusual ones.
    #[arg(long)]
    all: bool,
    /// Print the server's JSON answer instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Deserialize)]
struct Window {
    from: String,
    to: String,
}

#[derive(Debug, Deserialize)]
struct Origin {
    service: String,
    share: f64,
}

#[derive(Debug, Deserialize)]
struct Change {
    service: Option<String>,
    action: Option<String>,
    stream: Option<String>,
    event_type: Option<String>,
    baseline_rate: f64,
    rate: f64,
    relative_change: Option<f64>,
    score: f64,
    unusual: bool,
    origin: Option<Origin>,
}

#[derive(Debug, Deserialize)]
struct MixChange {
    stream: String,
    event_type: String,
    baseline_share: f64,
    share: f64,
    score: f64,
    unusual: bool,
}

#[derive(Debug, Deserialize)]
struct Presence {
    service: Option<String>,
    event_type: Option<String>,
    stream: Option<String>,
    schema: Option<String>,
    #[serde(default)]
    producers: Vec<String>,
    count: u64,
    unusual: bool,
}

#[derive(Debug, Deserialize)]
struct Presences {
    event_types: Vec<Presence>,
    producers: Vec<Presence>,
    consumers: Vec<Presence>,
    streams: Vec<Presence>,
    schemas: Vec<Presence>,
}

#[derive(Debug, Deserialize)]
struct Decrease {
    down: Vec<String>,
    all: bool,
}

#[derive(Debug, Deserialize)]
struct Comparison {
    baseline: Window,
    window: Window,
    event_types: Vec<Change>,
    edges: Vec<Change>,
    streams: Vec<Change>,
    mix: Vec<MixChange>,
    appeared: Presences,
    disappeared: Presences,
    decrease: Option<Decrease>,
}

pub async fn run(args: CompareArgs) -> Result<ExitCode> {
    let client = ApiClient::connect(&args.server)?;
    let mut query = vec![
        ("from", args.from.as_deref()),
        ("to", args.to.as_deref()),
        ("baseline_from", args.baseline_from.as_deref()),
        ("baseline_to", args.baseline_to.as_deref()),
    ];
    query.extend(args.filter.query());
    let answer = client.get_json(&["api", "v1", "compare"], &query).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let comparison: Comparison =
        serde_json::from_value(answer).context("the server's answer has an unexpected shape")?;
    print!("{}", render(&comparison, args.all));
    Ok(ExitCode::SUCCESS)
}

/// The comparison the query asks for, rendered as in `muninn compare` (for the demo).
pub(crate) async fn fetch_and_render(
    client: &ApiClient,
    query: &[(&str, Option<&str>)],
    all: bool,
) -> Result<String> {
    let answer = client.get_json(&["api", "v1", "compare"], query).await?;
    let comparison: Comparison =
        serde_json::from_value(answer).context("the server's answer has an unexpected shape")?;
    Ok(render(&comparison, all))
}

fn percent(change: Option<f64>) -> String {
    match change {
        Some(change) => format!("{:+.0}%", change * 100.0),
        None => "new".to_owned(),
    }
}

fn changes_table(what: &str, changes: &[Change], all: bool) -> Option<String> {
    let shown: Vec<&Change> = changes
        .iter()
        .filter(|change| all || change.unusual)
        .collect();
    if shown.is_empty() {
        return None;
    }
    let mut table = Table::new(&[what, "BEFORE/S", "NOW/S", "CHANGE", "SCORE", "ORIGIN"])
        .align_right(&["BEFORE/S", "NOW/S", "CHANGE", "SCORE"]);
    for change in shown {
        let name = [
            change.service.as_deref(),
            change.action.as_deref(),
            change.event_type.as_deref(),
            change.stream.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        let origin = change
            .origin
            .as_ref()
            .map(|origin| format!("{} ({:.0}% of it)", origin.service, origin.share * 100.0))
            .unwrap_or_default();
        table.row(vec![
            name,
            format!("{:.2}", change.baseline_rate),
            format!("{:.2}", change.rate),
            percent(change.relative_change),
            format!("{:+.1}", change.score),
            origin,
        ]);
    }
    Some(table.render())
}

fn presences_text(side: &str, presences: &Presences) -> Option<String> {
    let mut lines = Vec::new();
    let mut list = |kind: &str, items: &[Presence]| {
        for item in items {
            let name = match (&item.service, &item.event_type, &item.stream, &item.schema) {
                (Some(service), Some(event_type), _, _) => format!("{service} {event_type}"),
                (_, Some(event_type), _, Some(schema)) => {
                    format!("{event_type} {schema} (from {})", item.producers.join(", "))
                }
                (_, Some(event_type), _, _) => event_type.clone(),
                (_, _, Some(stream), _) => stream.clone(),
                _ => continue,
            };
            let mark = if item.unusual { "" } else { "  (few events)" };
            lines.push(format!("  {kind:<9} {name}: {} events{mark}", item.count));
        }
    };
    list("type", &presences.event_types);
    list("producer", &presences.producers);
    list("consumer", &presences.consumers);
    list("stream", &presences.streams);
    list("schema", &presences.schemas);
    (!lines.is_empty()).then(|| format!("{side}:\n{}\n", lines.join("\n")))
}

fn render(comparison: &Comparison, all: bool) -> String {
    let mut out = format!(
        "window {} – {} against baseline {} – {}\n\n",
        comparison.window.from,
        comparison.window.to,
        comparison.baseline.from,
        comparison.baseline.to
    );
    let mut found = false;
    for (what, changes) in [
        ("EVENT TYPE", &comparison.event_types),
        ("STREAM", &comparison.streams),
        ("SERVICE ACTION TYPE", &comparison.edges),
    ] {
        if let Some(table) = changes_table(what, changes, all) {
            out.push_str(&table);
            out.push('\n');
            found = true;
        }
    }
    if let Some(decrease) = &comparison.decrease {
        out.push_str(&format!(
            "the drop holds for {} event types: {}\n\n",
            if decrease.all { "all" } else { "only some" },
            decrease.down.join(", ")
        ));
    }
    let mix: Vec<&MixChange> = comparison
        .mix
        .iter()
        .filter(|change| all || change.unusual)
        .collect();
    if !mix.is_empty() {
        let mut table = Table::new(&["STREAM", "EVENT TYPE", "SHARE BEFORE", "SHARE NOW", "SCORE"])
            .align_right(&["SHARE BEFORE", "SHARE NOW", "SCORE"]);
        for change in mix {
            table.row(vec![
                change.stream.clone(),
                change.event_type.clone(),
                format!("{:.1}%", change.baseline_share * 100.0),
                format!("{:.1}%", change.share * 100.0),
                format!("{:+.1}", change.score),
            ]);
        }
        out.push_str(&table.render());
        out.push('\n');
        found = true;
    }
    for (side, presences) in [
        ("appeared", &comparison.appeared),
        ("disappeared", &comparison.disappeared),
    ] {
        if let Some(text) = presences_text(side, presences) {
            out.push_str(&text);
            out.push('\n');
            found = true;
        }
    }
    if !found {
        out.push_str("nothing unusual: every change is within what steady traffic varies by\n");
    }
    out
}
