//! `muninn demo`: starts the server in-process with an embedded store, runs a simulated fleet
//! whose every service instance is traced by the Muninn SDK (`muninn-sdk`) and talks through an
//! in-process broker, with central sampling rules set through the API; then prints what Muninn
//! learned (catalog, Mermaid lineage), the SDK's own numbers, and `curl` lines to explore it.

mod broker;
mod fleet;
mod incident;
mod sampling;
mod traffic;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use muninn_server::ServerConfig;
use tokio::task::JoinSet;

use self::fleet::DEMO_FLEET;
use self::traffic::{SdkTotals, Showcase, Simulation, Tally};
use crate::client::ApiClient;
use crate::config::{DEFAULT_LISTEN, parse_listen};
use crate::{query, signals};

/// `muninn demo` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How long to send traffic, like 30s or 2m; it runs on to the end of that minute, so the
    /// comparison in the summary covers whole minutes.
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

/// How often the traffic loop wakes up to start flows and redraw.
const TICK: Duration = Duration::from_millis(200);
/// How long the tracers may take to fetch their sampling config before traffic starts.
const SAMPLING_CONFIG_WAIT: Duration = Duration::from_secs(10);
/// How long the demo waits, after the last flow started, for the fleet to handle everything.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// How long each tracer may take to send what is left at the end.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(15);
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
    config.store.release_memory = Some(muninn_server::allocator::release_freed_pages);
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
        "simulating {} services ({} instances, each traced by its own muninn-sdk tracer), {} streams and {} event types at {} events/s for {}",
        DEMO_FLEET.services.len(),
        DEMO_FLEET
            .services
            .iter()
            .map(|service| service.replicas)
            .sum::<u32>(),
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
            println!("serving on {base_url} until Ctrl-C; the UI is at {base_url}/");
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

/// What the fleet did, what the SDK sent, and ids worth looking at afterwards.
#[derive(Debug, Default)]
struct TrafficReport {
    tally: Tally,
    sdk: SdkTotals,
    /// The sampling rules set, in a few words.
    sampling: String,
    elapsed: Duration,
    /// Messages still being handled when the demo stopped waiting for them.
    stuck: usize,
    showcase: Showcase,
    /// When traffic started, how long it ran, and how long before the incident.
    started_unix_nanos: i64,
    traffic_for: Duration,
    steady_for: Duration,
    /// The counts records sent for the hour before the demo.
    history_records: usize,
}

impl TrafficReport {
    /// What went wrong, in a few words each; empty when nothing did.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.sdk.spans_dropped > 0 {
            problems.push(format!("{} spans dropped", self.sdk.spans_dropped));
        }
        if self.sdk.counts_dropped > 0 {
            problems.push(format!("{} counts lost", self.sdk.counts_dropped));
        }
        if self.sdk.late > 0 {
            problems.push(format!("{} tracers did not finish sending", self.sdk.late));
        }
        if self.stuck > 0 {
            problems.push(format!("{} messages still in flight", self.stuck));
        }
        problems
    }

    fn n_errors(&self) -> u64 {
        self.sdk.spans_dropped + self.sdk.counts_dropped + self.sdk.late as u64 + self.stuck as u64
    }
}

async fn send_traffic(client: &ApiClient, duration: Duration, rate: f64) -> Result<TrafficReport> {
    let progress = ProgressBar::new(duration.as_millis() as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .map_err(|error| anyhow!("progress bar template: {error}"))?,
    );
    progress.set_message("setting the sampling rules, starting the tracers");
    let rules = sampling::apply(client, sampling::rules(&DEMO_FLEET)).await?;
    let mut report = TrafficReport {
        sampling: sampling::describe(&rules),
        ..TrafficReport::default()
    };
    let (simulation, consumers) = Simulation::start(DEMO_FLEET, &client.base_url())?;
    if !simulation
        .wait_for_sampling_config(SAMPLING_CONFIG_WAIT)
        .await
    {
        eprintln!(
            "warning: some tracers have not fetched their sampling config yet; they trace every event until they do"
        );
    }
    let mean_events_per_flow = DEMO_FLEET.mean_events_per_flow();
    progress.reset_elapsed();
    let started = Instant::now();
    report.started_unix_nanos = muninn_model::now_unix_nanos();
    // The incident starts at the first minute after half-way and lasts at least that minute
    // (counts are kept per minute, so the summary's comparison covers whole minutes of it).
    let schedule = incident_schedule(report.started_unix_nanos, duration);
    let (incident_after, duration) = schedule.unwrap_or((Duration::MAX, duration));
    progress.set_length(duration.as_millis() as u64);
    let mut flows = JoinSet::new();
    let mut n_flows = 0;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let elapsed = started.elapsed().min(duration);
        // Flows start spread over the next tick, until the rate of events is met.
        let due = (elapsed.as_secs_f64() * rate / mean_events_per_flow).ceil() as usize;
        let n_new = due.saturating_sub(n_flows);
        if elapsed >= incident_after && !simulation.incident().is_on() {
            report.steady_for = elapsed;
            simulation.incident().start();
        }
        for flow_idx in 0..n_new {
            let Some(origin) = simulation.origin(n_flows) else {
                break;
            };
            let delay = TICK.mul_f64(flow_idx as f64 / n_new as f64);
            flows.spawn(simulation.flow(origin, delay));
            if simulation
                .incident()
                .doubles(origin.service, origin.event_type)
            {
                flows.spawn(simulation.flow(origin, delay));
            }
            n_flows += 1;
        }
        while flows.try_join_next().is_some() {}
        progress.set_position(elapsed.as_millis() as u64);
        let tally = simulation.tally();
        progress.set_message(format!(
            "{} events · {} spans exported",
            tally.events,
            simulation.sdk_totals().spans_exported
        ));
        if elapsed >= duration {
            break;
        }
    }
    // Events published near the end still travel down the fleet.
    let deadline = Instant::now() + DRAIN_LIMIT;
    while simulation.in_flight() > 0 && Instant::now() < deadline {
        progress.set_message(format!(
            "{} events · finishing {} in-flight messages",
            simulation.tally().events,
            simulation.in_flight()
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report.stuck = simulation.in_flight();
    drop(flows);
    drop(consumers);
    report.elapsed = started.elapsed();
    report.traffic_for = duration;
    progress.set_message("sending the last spans and counts");
    report.sdk = simulation.shutdown(SHUTDOWN_LIMIT).await;
    report.tally = simulation.tally();
    report.showcase = simulation.showcase_ids();
    if schedule.is_some() {
        progress.set_message("filling in the hour before the demo");
        report.history_records =
            incident::fill_history(client, &DEMO_FLEET, rate, report.started_unix_nanos).await?;
    }
    progress.finish_and_clear();
    if report.sdk.spans_exported == 0 && report.tally.sampled > 0 {
        bail!(
            "the server accepted none of the {} sampled spans ({})",
            report.tally.sampled,
            report.problems().join(", ")
        );
    }
    Ok(report)
}

async fn print_summary(client: &ApiClient, report: &TrafficReport, exit: bool) -> Result<()> {
    let (event_types, streams, services) = query::catalog(client).await?;
    let lineage = client
        .get_text(&["api", "v1", "lineage"], &[("format", Some("mermaid"))])
        .await?;
    let base = client.base_url();
    let (tally, sdk) = (&report.tally, &report.sdk);
    let problems = report.problems();
    let server_produced: u64 = services
        .iter()
        .flat_map(|service| &service.produces)
        .map(|flow| flow.count)
        .sum();
    let server_consumed: u64 = services
        .iter()
        .flat_map(|service| &service.consumes)
        .map(|flow| flow.count)
        .sum();
    let mut out = String::new();
    out.push_str(&format!(
        "\nsent {} events in {:.1}s: {} messages produced, {} consumes ({} failed and were retried) ({} errors{})\n",
        tally.events,
        report.elapsed.as_secs_f64(),
        tally.messages,
        tally.consumes,
        tally.failures,
        report.n_errors(),
        if problems.is_empty() {
            String::new()
        } else {
            format!(": {}", problems.join(", "))
        }
    ));
    out.push_str(&format!(
        "SDK: {} tracers exported {} spans ({} dropped) and counted {} produces and consumes ({} lost)\n",
        sdk.tracers, sdk.spans_exported, sdk.spans_dropped, sdk.counts_sent, sdk.counts_dropped
    ));
    out.push_str(&format!(
        "sampling rules: {}; {} of {} produces and consumes were traced, and every one was counted\n",
        report.sampling,
        tally.sampled,
        tally.messages + tally.consumes
    ));
    let history = if report.history_records > 0 {
        ", with the hour of history filled in"
    } else {
        ""
    };
    out.push_str(&format!(
        "the server counts {server_produced} produced and {server_consumed} consumed (from the SDK's counts, not the sampled spans{history})\n"
    ));
    out.push_str(&format!("\nSERVICES ({})\n", services.len()));
    out.push_str(&query::services_overview_table(&services));
    out.push_str(&format!("\nSTREAMS ({})\n", streams.len()));
    out.push_str(&query::streams_table(&streams));
    out.push_str(&format!("\nEVENT TYPES ({})\n", event_types.len()));
    out.push_str(&query::event_types_table(&event_types));
    if report.steady_for > Duration::ZERO {
        out.push_str(&what_changed(client, report).await?);
    }
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
        format!("muninn compare --server {base} --from -15m    # what changed"),
        format!("muninn impact --server {base} order.placed --schema v4    # who must redeploy"),
        format!("curl -s {base}/api/v1/event-types/order.placed/consumers"),
        format!("curl -s {base}/api/v1/streams"),
        format!("curl -s {base}/api/v1/services"),
        format!("curl -s '{base}/api/v1/throughput?event_type=order.placed&from=-15m&step=1m'"),
        format!("curl -s '{base}/api/v1/lineage?format=mermaid'"),
    ];
    if let Some((event_id, trace_id)) = &report.showcase.order {
        lines.push(format!("curl -s {base}/api/v1/events/{event_id}    # an order across two traces (fraud-detection starts its own)"));
        lines.push(format!("curl -s {base}/api/v1/traces/{trace_id}"));
    }
    if let Some(event_id) = &report.showcase.retried_event_id {
        lines.push(format!(
            "curl -s {base}/api/v1/events/{event_id}    # an email that failed and was retried"
        ));
    }
    lines.push(format!(
        "curl -s '{base}/api/traces?service=checkout&limit=5'    # Jaeger's query API (Jaeger UI, Grafana)"
    ));
    lines.push(format!(
        "curl -s '{base}/api/v2/traces?serviceName=checkout&limit=5'    # Zipkin's"
    ));
    lines.push(format!("curl -s {base}/metrics"));
    lines.push(format!("muninn query --server {base} event-types"));
    if let Some((event_id, trace_id)) = &report.showcase.order {
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
    out.push_str(&format!("\nOPEN THE UI ({when})\n  {base}/\n"));
    if let Some((event_id, _)) = &report.showcase.order {
        out.push_str(&format!(
            "  {base}/events/{event_id}    # the order's journey\n"
        ));
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;
    Ok(())
}

/// What `compare` finds: the minutes since the incident began against the whole hour of
/// steady history filled in before the demo's first minute. An hour of baseline rather than
/// as many minutes as the window keeps the baseline's own noise out of the score, so a doubled
/// type of a couple of events per second stands out in a single minute.
async fn what_changed(client: &ApiClient, report: &TrafficReport) -> Result<String> {
    let nanos = |duration: Duration| i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
    let incident_at = report.started_unix_nanos + nanos(report.steady_for);
    let minute = 60 * muninn_model::NANOS_PER_SECOND;
    let from = incident_at.div_euclid(minute) * minute;
    let to = report.started_unix_nanos + nanos(report.traffic_for);
    let history_to = report.started_unix_nanos.div_euclid(minute) * minute;
    let history_from = history_to - incident::HISTORY_MINUTES * minute;
    let times = [from, to, history_from, history_to].map(muninn_model::format_rfc3339_nanos);
    let query = [
        ("from", Some(times[0].as_str())),
        ("to", Some(times[1].as_str())),
        ("baseline_from", Some(times[2].as_str())),
        ("baseline_to", Some(times[3].as_str())),
    ];
    let (service, replica, event_type, schema) = incident::NEW_SCHEMA;
    let (doubled, doubled_type) = incident::DOUBLED;
    let mut out = format!(
        "\nWHAT CHANGED (from the first minute after half-way, {service}-{replica} sent {event_type} {schema} and {doubled} doubled its {doubled_type}; the hour before the demo is the fleet's steady traffic, {} counts and spans filled in)\n",
        report.history_records
    );
    out.push_str(&crate::compare::fetch_and_render(client, &query, false).await?);
    Ok(out)
}

/// Demos this long or longer stage the incident.
const INCIDENT_MIN_DURATION: Duration = Duration::from_secs(20);

/// When the incident starts (after the start) and how long traffic runs: the incident starts
/// at the first minute start after half-way and traffic runs at least to the end of that
/// minute and to the end of the minute `duration` ends in. `None` for demos too short to
/// stage one (they run `duration`).
fn incident_schedule(start_unix_nanos: i64, duration: Duration) -> Option<(Duration, Duration)> {
    if duration < INCIDENT_MIN_DURATION {
        return None;
    }
    let minute = 60 * muninn_model::NANOS_PER_SECOND;
    let nanos = |duration: Duration| i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
    let ceil = |time: i64| {
        time.div_euclid(minute) * minute + minute * i64::from(time.rem_euclid(minute) > 0)
    };
    let incident_at = ceil(start_unix_nanos.saturating_add(nanos(duration / 2)));
    let end = ceil(start_unix_nanos.saturating_add(nanos(duration))).max(incident_at + minute);
    let after =
        |time: i64| Duration::from_nanos(u64::try_from(time - start_unix_nanos).unwrap_or(0));
    Some((after(incident_at), after(end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incident_fills_whole_minutes() {
        let minute = 60_000_000_000;
        let start = 1_800_000_000 * 1_000_000_000 + 40_000_000_000; // 40 s into a minute
        let (after, run) = incident_schedule(start, Duration::from_secs(30)).unwrap();
        assert_eq!(
            (after, run),
            (Duration::from_secs(20), Duration::from_secs(80))
        );
        let (after, run) = incident_schedule(start, Duration::from_secs(300)).unwrap();
        assert_eq!((start + after.as_nanos() as i64) % minute, 0);
        assert_eq!(
            run,
            Duration::from_secs(320),
            "to the end of the last minute"
        );
        assert_eq!(incident_schedule(start, Duration::from_secs(3)), None);
    }
}
