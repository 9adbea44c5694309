//! `muninn demo`: starts the server in-process with an embedded store, sends the traffic of a
//! simulated fleet through the real HTTP ingest API (spans in gzip batches, per-minute counts),
//! then prints what Muninn learned (catalog, Mermaid lineage) and `curl` lines to explore it.

mod fleet;
mod traffic;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use indicatif::{ProgressBar, ProgressStyle};
use muninn_server::ServerConfig;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use self::fleet::DEMO_FLEET;
use self::traffic::{MinuteCounts, SpanRecord, TrafficGenerator};
use crate::client::ApiClient;
use crate::config::{DEFAULT_LISTEN, parse_listen};
use crate::{query, signals};

/// `muninn demo` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How long to send traffic, like 30s or 2m.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub duration: String,
    /// Events published per second across the fleet (new events, including those caused by others).
    #[arg(long, default_value_t = 200.0, value_name = "EVENTS")]
    pub rate: f64,
    /// Stop after printing the summary instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Directory of the store [default: a fresh temporary directory, removed at exit].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on, HOST:PORT; port 0 picks a free port.
    #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: String,
}

/// Spans per request; a batch of this size is well under the default body limit.
const SPANS_PER_REQUEST: usize = 2000;
/// How often the traffic loop wakes up to generate, send and redraw.
const TICK: Duration = Duration::from_millis(200);
/// The most events per second the demo will try to send.
const MAX_RATE: f64 = 100_000.0;

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let duration = muninn_model::parse_duration(&args.duration)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| {
            anyhow!(
                "--duration: {:?} is not a valid duration; use one above zero, like 30s or 2m",
                args.duration
            )
        })?;
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= MAX_RATE) {
        bail!(
            "--rate: {} is not a valid rate; use a number of events per second above 0 and at most {MAX_RATE}",
            args.rate
        );
    }
    DEMO_FLEET
        .validate()
        .map_err(|error| anyhow!("the demo fleet is inconsistent: {error}"))?;
    let listen = parse_listen(&args.listen)
        .map_err(|hint| anyhow!("--listen: {:?} is not a valid address; {hint}", args.listen))?;
    let (data_dir, temporary) = match &args.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("muninn-demo-{}", uuid::Uuid::new_v4().simple())),
            true,
        ),
    };
    let mut config = ServerConfig::new(&data_dir, 0);
    config.listen = listen;
    let server = muninn_server::start(config)
        .await
        .context("starting the demo server")?;
    let base_url = server.base_url();
    println!("muninn listening on {base_url}");
    let note = if temporary {
        " (temporary; removed at exit, pass --data-dir to keep it)"
    } else {
        ""
    };
    println!("data in {}{note}", data_dir.display());
    println!(
        "simulating {} services, {} streams and {} event types at {} events/s for {}",
        DEMO_FLEET.services.len(),
        DEMO_FLEET.streams.len(),
        DEMO_FLEET.event_types.len(),
        args.rate,
        humantime::format_duration(duration)
    );
    std::io::stdout().flush().context("writing to stdout")?;

    let result = async {
        let client = ApiClient::new(&base_url)?;
        let report = tokio::select! {
            report = send_traffic(&client, duration, args.rate) => report?,
            () = signals::stop_requested() => {
                eprintln!("interrupted; stopping the demo");
                return Ok(());
            }
        };
        print_summary(&client, &report, args.exit).await?;
        if !args.exit {
            println!("serving on {base_url} until Ctrl-C");
            std::io::stdout().flush().context("writing to stdout")?;
            signals::stop_requested().await;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    server.stop().await;
    if temporary && let Err(error) = std::fs::remove_dir_all(&data_dir) {
        tracing::warn!(%error, dir = %data_dir.display(), "cannot remove the demo's temporary data directory");
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// What was sent, and ids worth looking at afterwards.
#[derive(Debug, Default)]
struct TrafficReport {
    n_events: usize,
    n_spans_accepted: usize,
    n_counts_accepted: usize,
    n_errors: usize,
    elapsed: Duration,
    /// An order.placed event that was traced: its journey spans two traces.
    showcase: Option<(String, String)>,
    /// An event whose consumption failed and was retried.
    retried_event_id: Option<String>,
    last_error: Option<String>,
}

async fn send_traffic(client: &ApiClient, duration: Duration, rate: f64) -> Result<TrafficReport> {
    let mut generator = TrafficGenerator::new(DEMO_FLEET, StdRng::from_os_rng());
    let mut counts = MinuteCounts::default();
    let mut pending: Vec<SpanRecord> = Vec::new();
    let mut report = TrafficReport::default();
    let progress = ProgressBar::new(duration.as_millis() as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .map_err(|error| anyhow!("progress bar template: {error}"))?,
    );
    let started = Instant::now();
    let mut last_tick_nanos = muninn_model::now_unix_nanos();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let elapsed = started.elapsed().min(duration);
        let now_nanos = muninn_model::now_unix_nanos();
        // Flows start spread over the time since the last tick, until the rate is met.
        let due = (elapsed.as_secs_f64() * rate) as usize;
        let mut flows = Vec::new();
        let mut n_new_events = 0;
        while report.n_events + n_new_events < due {
            let flow = generator.flow(now_nanos);
            n_new_events += flow.n_events.max(1);
            flows.push(flow);
        }
        let n_flows = flows.len().max(1) as i64;
        for (flow_idx, mut flow) in flows.into_iter().enumerate() {
            let shift = (now_nanos - last_tick_nanos) * (n_flows - 1 - flow_idx as i64) / n_flows;
            for span in &mut flow.spans {
                span.start_time_unix_nano -= shift;
            }
            for seen in &mut flow.seen {
                seen.unix_nanos -= shift;
            }
            report.n_events += flow.n_events;
            counts.add(&flow);
            if flow.sampled {
                if report.showcase.is_none() && flow.root_event_type == "order.placed" {
                    report.showcase =
                        Some((flow.root_event_id.clone(), flow.root_trace_id.clone()));
                }
                if report.retried_event_id.is_none() {
                    report.retried_event_id = flow.retried_event_ids.first().cloned();
                }
            }
            pending.extend(flow.spans);
        }
        last_tick_nanos = now_nanos;
        for batch in pending.chunks(SPANS_PER_REQUEST) {
            let (accepted, rejected) = post(client, "spans", batch, &mut report.last_error).await;
            report.n_spans_accepted += accepted;
            report.n_errors += rejected;
        }
        pending.clear();
        // A minute's counts are sent once it is over (with slack for late retries).
        let finished_minutes = (now_nanos / 1_000_000_000 - 10).div_euclid(60) * 60;
        let finished = counts.take_before(finished_minutes);
        if !finished.is_empty() {
            let (accepted, rejected) =
                post(client, "counts", &finished, &mut report.last_error).await;
            report.n_counts_accepted += accepted;
            report.n_errors += rejected;
        }
        progress.set_position(elapsed.as_millis() as u64);
        progress.set_message(format!(
            "{} events · {} spans · {} errors",
            report.n_events, report.n_spans_accepted, report.n_errors
        ));
        if elapsed >= duration {
            break;
        }
    }
    let remaining = counts.take_before(i64::MAX);
    if !remaining.is_empty() {
        let (accepted, rejected) = post(client, "counts", &remaining, &mut report.last_error).await;
        report.n_counts_accepted += accepted;
        report.n_errors += rejected;
    }
    progress.finish_and_clear();
    report.elapsed = started.elapsed();
    if report.n_spans_accepted == 0 {
        bail!(
            "the server accepted no spans{}",
            report
                .last_error
                .as_deref()
                .map(|error| format!("; last error: {error}"))
                .unwrap_or_default()
        );
    }
    Ok(report)
}

/// Sends one gzip-compressed batch to `/api/v1/{endpoint}`; returns (accepted, failed) and
/// remembers the last error. Failures are counted, not fatal: the demo keeps going.
async fn post<T: Serialize>(
    client: &ApiClient,
    endpoint: &str,
    records: &[T],
    last_error: &mut Option<String>,
) -> (usize, usize) {
    let result = async {
        let json = serde_json::to_vec(records)?;
        let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
        encoder.write_all(&json)?;
        let body = encoder.finish()?;
        client
            .post(&["api", "v1", endpoint], body, Some("gzip"))
            .await
    }
    .await;
    match result {
        Ok(answer) => {
            let accepted = answer["accepted"].as_u64().unwrap_or(0) as usize;
            let rejected = answer["rejected_count"].as_u64().unwrap_or(0) as usize;
            if let Some(first) = answer["rejected"].get(0) {
                *last_error = Some(format!(
                    "{endpoint}: record rejected: {}: {}",
                    first["field"], first["reason"]
                ));
            }
            (accepted, rejected)
        }
        Err(error) => {
            *last_error = Some(format!("{endpoint}: {error:#}"));
            (0, records.len())
        }
    }
}

async fn print_summary(client: &ApiClient, report: &TrafficReport, exit: bool) -> Result<()> {
    let (event_types, streams, services) = query::catalog(client).await?;
    let lineage = client
        .get_text(&["api", "v1", "lineage"], &[("format", Some("mermaid"))])
        .await?;
    let base = client.base_url();
    let mut out = String::new();
    out.push_str(&format!(
        "\nsent {} events as {} spans and {} counts in {:.1}s ({} errors{})\n",
        report.n_events,
        report.n_spans_accepted,
        report.n_counts_accepted,
        report.elapsed.as_secs_f64(),
        report.n_errors,
        report
            .last_error
            .as_deref()
            .map(|error| format!("; last: {error}"))
            .unwrap_or_default()
    ));
    out.push_str(&format!("\nSERVICES ({})\n", services.len()));
    out.push_str(&query::services_overview_table(&services));
    out.push_str(&format!("\nSTREAMS ({})\n", streams.len()));
    out.push_str(&query::streams_table(&streams));
    out.push_str(&format!("\nEVENT TYPES ({})\n", event_types.len()));
    out.push_str(&query::event_types_table(&event_types));
    out.push_str(
        "\nLINEAGE (Mermaid: paste into https://mermaid.live or a ```mermaid block in Markdown)\n",
    );
    out.push_str(&lineage);
    let when = if exit {
        "next time, without --exit, while the demo serves"
    } else {
        "while the demo serves"
    };
    out.push_str(&format!("\nTRY IT ({when})\n"));
    let mut lines = vec![
        format!("curl -s {base}/api/v1/event-types"),
        format!("curl -s {base}/api/v1/event-types/order.placed/consumers"),
        format!("curl -s {base}/api/v1/streams"),
        format!("curl -s {base}/api/v1/services"),
        format!("curl -s '{base}/api/v1/throughput?event_type=order.placed&from=-15m&step=1m'"),
        format!("curl -s '{base}/api/v1/lineage?format=mermaid'"),
    ];
    if let Some((event_id, trace_id)) = &report.showcase {
        lines.push(format!("curl -s {base}/api/v1/events/{event_id}    # an order across two traces (fraud-detection starts its own)"));
        lines.push(format!("curl -s {base}/api/v1/traces/{trace_id}"));
    }
    if let Some(event_id) = &report.retried_event_id {
        lines.push(format!(
            "curl -s {base}/api/v1/events/{event_id}    # an email that failed and was retried"
        ));
    }
    lines.push(format!("curl -s {base}/metrics"));
    lines.push(format!("muninn query --server {base} event-types"));
    if let Some((event_id, trace_id)) = &report.showcase {
        lines.push(format!("muninn query --server {base} journey {event_id}"));
        lines.push(format!("muninn query --server {base} trace {trace_id}"));
    }
    lines.push(format!(
        "muninn lineage --server {base} --format mermaid --out lineage.mmd"
    ));
    for line in lines {
        out.push_str("  ");
        out.push_str(&line);
        out.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;
    Ok(())
}
