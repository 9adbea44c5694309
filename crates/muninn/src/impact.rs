//! `muninn impact TYPE` and `muninn schemas TYPE`: who a schema change reaches, printed as a
//! Markdown checklist (modifying consumers first: they must redeploy before the new schema
//! ships), and a type's schemas per producer with who sent each first. `--json` prints the
//! server's answer.

use std::fmt::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::client::ApiClient;
use crate::server_args::ServerArg;
use crate::table::Table;

#[derive(Debug, Clone, clap::Args)]
pub struct ImpactArgs {
    #[command(flatten)]
    server: ServerArg,
    /// The event type whose schema changes, like order.created.
    event_type: String,
    /// The schema about to ship: consumers that already handled it are marked ready.
    #[arg(long)]
    schema: Option<String>,
    /// Print the server's JSON answer instead of the checklist.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SchemasArgs {
    #[command(flatten)]
    server: ServerArg,
    /// The event type, like order.created.
    event_type: String,
    /// Print the server's JSON answer instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Deserialize)]
struct Producer {
    service: String,
    streams: Vec<String>,
    current_schema: String,
    republishes: bool,
}

#[derive(Debug, Deserialize)]
struct Consumer {
    service: String,
    depth: u32,
    via: Vec<String>,
    streams: Vec<String>,
    republishes_to: Vec<String>,
    last_schema: Option<String>,
    handled_schema: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Impact {
    event_type: String,
    schema: Option<String>,
    producers: Vec<Producer>,
    must_redeploy: Vec<Consumer>,
    read_only: Vec<Consumer>,
    streams: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct FirstSender {
    service: String,
    instance: Option<String>,
    version: Option<String>,
    at: String,
}

#[derive(Debug, Deserialize)]
struct SchemaSummary {
    schema: String,
    spans: u64,
    first_seen: String,
    last_seen: String,
    producers: Vec<String>,
    first_sent_by: Option<FirstSender>,
}

#[derive(Debug, Deserialize)]
struct SchemaUse {
    schema: String,
    spans: u64,
    first_seen: String,
    last_seen: String,
}

#[derive(Debug, Deserialize)]
struct ProducerSchemas {
    service: String,
    current: String,
    schemas: Vec<SchemaUse>,
}

#[derive(Debug, Deserialize)]
struct Schemas {
    event_type: String,
    schemas: Vec<SchemaSummary>,
    producers: Vec<ProducerSchemas>,
    spans_without_schema: u64,
}

pub async fn run_impact(args: ImpactArgs) -> Result<ExitCode> {
    let client = ApiClient::connect(&args.server)?;
    let answer = client
        .get_json(
            &["api", "v1", "event-types", &args.event_type, "impact"],
            &[("schema", args.schema.as_deref())],
        )
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let impact: Impact =
        serde_json::from_value(answer).context("the server's answer has an unexpected shape")?;
    print!("{}", checklist(&impact));
    Ok(ExitCode::SUCCESS)
}

pub async fn run_schemas(args: SchemasArgs) -> Result<ExitCode> {
    let client = ApiClient::connect(&args.server)?;
    let answer = client
        .get_json(
            &["api", "v1", "event-types", &args.event_type, "schemas"],
            &[],
        )
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let schemas: Schemas =
        serde_json::from_value(answer).context("the server's answer has an unexpected shape")?;
    print!("{}", schema_tables(&schemas));
    Ok(ExitCode::SUCCESS)
}

fn consumer_line(out: &mut String, consumer: &Consumer) {
    let ready = consumer.handled_schema == Some(true);
    let mut line = format!(
        "- [{}] **{}** — reads {}",
        if ready { "x" } else { " " },
        consumer.service,
        consumer.streams.join(", ")
    );
    if !consumer.via.is_empty() {
        let _ = write!(line, " (through {})", consumer.via.join(" → "));
    }
    match &consumer.last_schema {
        Some(schema) => {
            let _ = write!(line, "; last handled {schema}");
        }
        None => line.push_str("; no schema seen"),
    }
    if ready {
        line.push_str(", already handles the new schema");
    }
    if !consumer.republishes_to.is_empty() {
        let _ = write!(
            line,
            "; publishes it again to {}",
            consumer.republishes_to.join(", ")
        );
    }
    let _ = writeln!(out, "{line}");
}

/// The impact as a Markdown checklist, fit for a pull request or a change ticket.
fn checklist(impact: &Impact) -> String {
    let mut out = String::new();
    let change = match &impact.schema {
        Some(schema) => format!("{} → {schema}", impact.event_type),
        None => impact.event_type.clone(),
    };
    let _ = writeln!(out, "## Schema change: {change}\n");
    let producers: Vec<String> = impact
        .producers
        .iter()
        .filter(|producer| !producer.republishes)
        .map(|producer| {
            let schema = if producer.current_schema.is_empty() {
                String::new()
            } else {
                format!(", now {}", producer.current_schema)
            };
            format!(
                "{} ({}{schema})",
                producer.service,
                producer.streams.join(", ")
            )
        })
        .collect();
    if !producers.is_empty() {
        let _ = writeln!(out, "Produced by {}.\n", producers.join("; "));
    }
    let depth = |list: &[Consumer]| list.iter().map(|consumer| consumer.depth).max();
    let _ = writeln!(
        out,
        "### Must redeploy before it ships ({} modifying consumer{})\n",
        impact.must_redeploy.len(),
        if impact.must_redeploy.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    if impact.must_redeploy.is_empty() {
        let _ = writeln!(out, "None: no consumer writes this type back.");
    }
    for consumer in &impact.must_redeploy {
        consumer_line(&mut out, consumer);
    }
    let _ = writeln!(
        out,
        "\n### Read-only consumers ({}): redeploy when they need the new fields\n",
        impact.read_only.len()
    );
    if impact.read_only.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for consumer in &impact.read_only {
        consumer_line(&mut out, consumer);
    }
    let deepest = depth(&impact.must_redeploy)
        .max(depth(&impact.read_only))
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "\nStreams: {}.{}",
        impact.streams.join(", "),
        if deepest > 1 {
            format!(" The change travels {deepest} hops through re-publishing consumers.")
        } else {
            String::new()
        }
    );
    out
}

fn schema_tables(schemas: &Schemas) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Schemas of {} (oldest first)", schemas.event_type);
    let mut table = Table::new(&[
        "SCHEMA",
        "SPANS",
        "FIRST SEEN",
        "LAST SEEN",
        "PRODUCERS",
        "FIRST SENT BY",
    ])
    .align_right(&["SPANS"]);
    for schema in &schemas.schemas {
        let first = match &schema.first_sent_by {
            Some(sender) => {
                let mut who = sender.service.clone();
                if let Some(instance) = &sender.instance {
                    let _ = write!(who, " {instance}");
                }
                if let Some(version) = &sender.version {
                    let _ = write!(who, " v{}", version.trim_start_matches('v'));
                }
                format!("{who} at {}", sender.at)
            }
            None => "-".to_owned(),
        };
        table.row(vec![
            schema.schema.clone(),
            schema.spans.to_string(),
            schema.first_seen.clone(),
            schema.last_seen.clone(),
            schema.producers.join(", "),
            first,
        ]);
    }
    out.push_str(&table.render());
    let _ = writeln!(out, "\nPer producer");
    let mut table = Table::new(&[
        "PRODUCER",
        "SCHEMA",
        "SPANS",
        "FIRST SEEN",
        "LAST SEEN",
        "CURRENT",
    ])
    .align_right(&["SPANS"]);
    for producer in &schemas.producers {
        for schema in &producer.schemas {
            table.row(vec![
                producer.service.clone(),
                schema.schema.clone(),
                schema.spans.to_string(),
                schema.first_seen.clone(),
                schema.last_seen.clone(),
                if schema.schema == producer.current {
                    "yes".to_owned()
                } else {
                    String::new()
                },
            ]);
        }
    }
    out.push_str(&table.render());
    if schemas.spans_without_schema > 0 {
        let _ = writeln!(
            out,
            "\n{} producer spans named no schema.",
            schemas.spans_without_schema
        );
    }
    out
}
