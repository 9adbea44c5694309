//! `muninn replay`: sends archived messages again — a stream's time range (with filters), one
//! event's journey or one trace — to Kafka, JetStream or a file, keeping key, headers, payload
//! bytes and per-partition order, with a progress bar, a rate limit, a dry run and a checkpoint
//! to resume from. Everything is checked before the first message is sent.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use muninn_archive::{
    Filter, GroupOffsets, Message, PartitionMap, ReplayOptions, ReplayProgress, Target,
};

use super::{ArchiveLocation, SelectionArgs};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    archive: ArchiveLocation,
    #[command(flatten)]
    selection: SelectionArgs,
    /// Replay the messages of one event's journey (every archived message with this event id,
    /// on every stream) instead of a stream's range.
    #[arg(long, value_name = "EVENT_ID", conflicts_with = "trace")]
    journey: Option<String>,
    /// Replay the messages of one trace (every archived message with this trace id).
    #[arg(long, value_name = "TRACE_ID")]
    trace: Option<String>,
    /// Send at most this many messages per second.
    #[arg(long, value_name = "N")]
    rate: Option<u32>,
    /// Count what would be sent (messages, bytes) and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remember what was delivered in this file; run again with it to resume.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<std::path::PathBuf>,
    /// Remove this header from every replayed message (repeatable; ASCII case ignored).
    #[arg(long = "drop-header", value_name = "NAME")]
    drop_headers: Vec<String>,
    /// Target partitions: `same` (default), `key` (the target's partitioner by key) or a map
    /// like `0:3,1:4`.
    #[arg(long, value_name = "MAP", default_value = "same")]
    partitions: String,
    /// Create the target topic or JetStream stream when it does not exist; a topic gets the
    /// partitions and settings the recorder saw on the archived one (at least as many
    /// partitions as the replay sends to).
    #[arg(long)]
    create: bool,
    /// A Muninn server to send the replay's own spans to: each replayed message then carries
    /// a new trace context linked to its original span, and lineage shows the replay as
    /// produces of service `muninn-replay`. Without it, trace headers are kept as archived.
    #[arg(long, value_name = "URL")]
    collector: Option<String>,
    /// After the replay, set this consumer group's offsets on the target topic to where the
    /// group stood on the archived stream at the end of the range (as the recorder sampled
    /// it), translated into the replayed messages' new offsets: a service started on the
    /// replayed topic with this group goes on where it left off. Kafka: the group's committed
    /// offsets; JetStream: a new durable consumer of that name starting there.
    #[arg(long, value_name = "GROUP", conflicts_with_all = ["journey", "trace"])]
    set_group_offsets: Option<String>,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let (_, urls) = args.selection.split_to()?;
    let target = match urls.as_slice() {
        [url] => Target::parse(url).map_err(|error| anyhow::anyhow!("--to: {error}"))?,
        [] => anyhow::bail!(
            "--to URL is required: kafka://HOST:PORT/TOPIC, nats://HOST:PORT/SUBJECT or file://PATH"
        ),
        _ => anyhow::bail!(
            "--to given {} targets ({}); give one",
            urls.len(),
            urls.join(", ")
        ),
    };
    let partitions = PartitionMap::parse(&args.partitions)
        .map_err(|error| anyhow::anyhow!("--partitions: {error}"))?;
    if args.rate == Some(0) {
        anyhow::bail!("--rate: must be at least 1 message per second");
    }
    let extra = match (&args.journey, &args.trace) {
        (Some(event_id), _) => Some(Filter::parse(&format!("event_id={event_id}"))?),
        (_, Some(trace_id)) => {
            let trace_id = trace_id.to_ascii_lowercase();
            if trace_id.len() != 32 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!("--trace {trace_id}: a trace id is 32 hexadecimal digits");
            }
            Some(Filter::parse(&format!("trace_id={trace_id}"))?)
        }
        (None, None) => None,
    };
    // Validate the selection before opening anything.
    if extra.is_none() {
        args.selection.selection()?;
    } else {
        args.selection.selection_of("x")?;
    }
    let tracer = match &args.collector {
        Some(url) => Some(
            muninn_sdk::Tracer::builder("muninn-replay")
                .collector(url.clone())
                .build()
                .map_err(|error| anyhow::anyhow!("--collector {url}: {error}"))?,
        ),
        None => None,
    };

    let archive = args.archive.open_existing().await?;
    let set_group_offsets = match &args.set_group_offsets {
        Some(group) => Some(group_offsets(&archive, &args.selection, group).await?),
        None => None,
    };
    let messages = read(&archive, &args.selection, extra).await?;
    // A Kafka topic created for the replay is made like the archived one.
    let create_like = match (&target, &args.selection.stream, args.create) {
        (Target::Kafka { .. }, Some(stream), true) => archive
            .topic(stream)
            .await
            .context("reading the archived topic's settings")?,
        _ => None,
    };
    if messages.is_empty() {
        eprintln!("nothing to replay: no archived message matches");
        return Ok(ExitCode::SUCCESS);
    }
    let options = ReplayOptions {
        rate_per_second: args.rate,
        dry_run: args.dry_run,
        checkpoint: args.checkpoint.clone(),
        drop_headers: args.drop_headers.clone(),
        partitions,
        create: args.create,
        create_like,
        tracer: tracer.clone(),
        set_group_offsets,
    };
    let bar =
        ProgressBar::with_draw_target(Some(messages.len() as u64), ProgressDrawTarget::stderr());
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) || args.dry_run {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} messages sent, {per_sec}, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let progress = {
        let bar = bar.clone();
        move |progress: ReplayProgress| {
            bar.set_length(progress.total);
            bar.set_position(progress.sent);
        }
    };
    let report = muninn_archive::replay(messages, &target, &options, &progress)
        .await
        .with_context(|| format!("replaying to {target}"))?;
    bar.finish_and_clear();
    if let Some(tracer) = tracer {
        tracer.shutdown(Duration::from_secs(5));
    }
    if report.dry_run {
        eprintln!(
            "dry run: would replay {} messages ({} bytes) to {target}; {} already sent by the checkpoint; nothing sent",
            report.would_send, report.would_send_bytes, report.skipped
        );
    } else {
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "replayed {} messages ({} bytes) to {target} in {seconds:.1} s ({:.0} messages/s){}",
            report.sent,
            report.bytes,
            report.sent as f64 / seconds.max(1e-9),
            if report.skipped > 0 {
                format!(
                    "; {} skipped, already sent by the checkpoint",
                    report.skipped
                )
            } else {
                String::new()
            }
        );
    }
    if let Some(group) = &args.set_group_offsets {
        let positions: Vec<String> = report
            .group_offsets
            .iter()
            .map(|(partition, offset)| format!("{partition}:{offset}"))
            .collect();
        eprintln!(
            "set the offsets of group {group} on {target} to partition:offset {}",
            positions.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--set-group-offsets GROUP`: the group's positions on the replayed stream at the end of the
/// range, as the recorder sampled them.
async fn group_offsets(
    archive: &muninn_archive::Archive,
    selection: &SelectionArgs,
    group: &str,
) -> anyhow::Result<GroupOffsets> {
    let chosen = selection.selection()?;
    let (until, _) = selection.split_to()?;
    let at_ms = until.is_some().then_some(chosen.to_ms);
    let positions = archive
        .group_offsets_at(&chosen.stream, group, at_ms)
        .await
        .context("reading the consumer groups' positions")?;
    if positions.is_empty() {
        anyhow::bail!(
            "--set-group-offsets {group}: the archive has no position of group {group} on stream {}{}; \
             the recorder samples consumer groups every minute (see `muninn archive groups --stream {}`)",
            chosen.stream,
            match &until {
                Some(until) => format!(" at or before --to {until}"),
                None => String::new(),
            },
            chosen.stream
        );
    }
    Ok(GroupOffsets {
        group: group.to_owned(),
        committed: positions
            .into_iter()
            .map(|(partition, position)| ((chosen.stream.clone(), partition), position.offset))
            .collect(),
    })
}

/// The messages to send: the stream's range, or with `extra` (an event or trace id) the
/// matching messages of every stream, by stream, partition and offset.
async fn read(
    archive: &muninn_archive::Archive,
    selection: &SelectionArgs,
    extra: Option<Filter>,
) -> anyhow::Result<Vec<Message>> {
    let Some(extra) = extra else {
        return archive
            .read(&selection.selection()?)
            .await
            .context("reading the archive");
    };
    let streams: Vec<String> = match &selection.stream {
        Some(stream) => vec![stream.clone()],
        None => archive
            .streams()
            .await
            .context("listing the archive")?
            .into_iter()
            .map(|summary| summary.stream)
            .collect(),
    };
    let mut messages = Vec::new();
    for stream in streams {
        let mut chosen = selection.selection_of(&stream)?;
        chosen.filters.push(extra.clone());
        messages.extend(archive.read(&chosen).await.context("reading the archive")?);
    }
    Ok(messages)
}
