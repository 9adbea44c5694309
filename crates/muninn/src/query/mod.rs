//! `muninn query`: asks a running server one question of the query API and prints the answer
//! as an aligned table (or a tree, for traces), or as the server's JSON with `--json`.

mod answers;
mod tables;

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use answers::{EventTypeSummary, ServiceSummary, StreamSummary};
pub use tables::{event_types_table, services_overview_table, streams_table};

use crate::client::ApiClient;
use crate::server_args::{FilterArgs, RangeArgs, ServerArg};

/// `muninn query` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Print the server's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(subcommand)]
    pub question: Question,
}

/// The questions `muninn query` can ask.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Question {
    /// Every event type: how many were produced and consumed, by whom, on which streams.
    EventTypes,
    /// The services that produce an event type, per stream.
    Producers {
        /// The event type, like order.placed.
        event_type: String,
    },
    /// The services that consume an event type, per stream, and whether they modify it.
    Consumers {
        /// The event type, like order.placed.
        event_type: String,
    },
    /// Every stream: its broker, event types, producers and consumers.
    Streams,
    /// Every service: what it produces and consumes.
    Services,
    /// Events per step over time, per service, action, stream and event type.
    Throughput {
        #[command(flatten)]
        filter: FilterArgs,
        /// Only `produced` or `consumed`.
        #[arg(long)]
        action: Option<String>,
        /// Step between points, a whole number of minutes like 1m, 5m, 1h [default: 1m].
        #[arg(long)]
        step: Option<String>,
    },
    /// The journey of one event across services (and traces), hop by hop.
    Journey {
        /// The event id.
        event_id: String,
    },
    /// One trace as a tree of spans.
    Trace {
        /// The trace id, 32 hex digits.
        trace_id: String,
    },
}

pub async fn run(args: QueryArgs) -> Result<ExitCode> {
    let client = ApiClient::connect(&args.server)?;
    let range = args.range.query();
    let answer = match &args.question {
        Question::EventTypes => {
            client
                .get_json(&["api", "v1", "event-types"], &range)
                .await?
        }
        Question::Producers { event_type } => {
            client
                .get_json(
                    &["api", "v1", "event-types", event_type, "producers"],
                    &range,
                )
                .await?
        }
        Question::Consumers { event_type } => {
            client
                .get_json(
                    &["api", "v1", "event-types", event_type, "consumers"],
                    &range,
                )
                .await?
        }
        Question::Streams => client.get_json(&["api", "v1", "streams"], &range).await?,
        Question::Services => client.get_json(&["api", "v1", "services"], &range).await?,
        Question::Throughput {
            filter,
            action,
            step,
        } => {
            let mut query = range.clone();
            query.extend(filter.query());
            query.push(("action", action.as_deref()));
            query.push(("step", step.as_deref()));
            client
                .get_json(&["api", "v1", "throughput"], &query)
                .await?
        }
        Question::Journey { event_id } => {
            client
                .get_json(&["api", "v1", "events", event_id], &[])
                .await?
        }
        Question::Trace { trace_id } => {
            client
                .get_json(&["api", "v1", "traces", trace_id], &[])
                .await?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let text = match &args.question {
        Question::EventTypes => tables::event_types_table(&field(answer, "event_types")?),
        Question::Producers { event_type } => {
            tables::participants_table(event_type, &field(answer, "producers")?, false)
        }
        Question::Consumers { event_type } => {
            tables::participants_table(event_type, &field(answer, "consumers")?, true)
        }
        Question::Streams => tables::streams_table(&field(answer, "streams")?),
        Question::Services => tables::services_table(&field(answer, "services")?),
        Question::Throughput { .. } => tables::throughput_text(&whole(answer)?),
        Question::Journey { .. } => tables::journey_text(&whole(answer)?),
        Question::Trace { .. } => tables::trace_text(&whole(answer)?),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The list under `key` of a wrapped answer like `{"streams": [...]}`.
fn field<T: DeserializeOwned>(mut answer: Value, key: &str) -> Result<Vec<T>> {
    let list = answer
        .get_mut(key)
        .map(Value::take)
        .unwrap_or(Value::Array(Vec::new()));
    serde_json::from_value(list)
        .with_context(|| format!("the server's `{key}` answer has an unexpected shape"))
}

fn whole<T: DeserializeOwned>(answer: Value) -> Result<T> {
    serde_json::from_value(answer).context("the server's answer has an unexpected shape")
}

/// The event types, streams and services in the whole retention (for the demo summary).
pub async fn catalog(
    client: &ApiClient,
) -> Result<(
    Vec<EventTypeSummary>,
    Vec<StreamSummary>,
    Vec<ServiceSummary>,
)> {
    let event_types = field(
        client.get_json(&["api", "v1", "event-types"], &[]).await?,
        "event_types",
    )?;
    let streams = field(
        client.get_json(&["api", "v1", "streams"], &[]).await?,
        "streams",
    )?;
    let services = field(
        client.get_json(&["api", "v1", "services"], &[]).await?,
        "services",
    )?;
    Ok((event_types, streams, services))
}
