//! `muninn archive groups`: the consumer groups' committed positions the recorder sampled on a
//! stream, as they stood at a time (default now), or every recorded change with `--history`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;

use super::ArchiveLocation;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    archive: ArchiveLocation,
    /// The stream (Kafka topic or JetStream stream).
    #[arg(long, value_name = "NAME")]
    stream: String,
    /// Only this consumer group.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// The positions as they stood at this time (RFC 3339, unix seconds, now, -1h)
    /// [default: now].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    at: Option<String>,
    /// Print every recorded change up to --at as JSON lines instead.
    #[arg(long)]
    history: bool,
}

pub async fn groups(args: GroupsArgs) -> anyhow::Result<ExitCode> {
    muninn_archive::check_stream_name(&args.stream)
        .map_err(|error| anyhow::anyhow!("--stream: {error}"))?;
    let at_ms = match &args.at {
        None => None,
        Some(text) => Some(
            muninn_model::parse_time(text, muninn_model::now_unix_nanos())
                .map(|nanos| nanos.div_euclid(1_000_000))
                .map_err(|error| anyhow::anyhow!("--at: {error}"))?,
        ),
    };
    let archive = args.archive.open_existing().await?;
    let rows = archive
        .group_positions(&args.stream, args.group.as_deref(), at_ms)
        .await
        .context("reading the consumer groups' positions")?;
    if args.history {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!(
            "no consumer group positions recorded for stream {} (the recorder samples them every minute)",
            args.stream
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut latest = BTreeMap::new();
    for row in rows {
        latest.insert((row.group.clone(), row.partition), row);
    }
    let mut table =
        Table::new(&["GROUP", "PARTITION", "OFFSET", "SEEN"]).align_right(&["PARTITION", "OFFSET"]);
    for row in latest.values() {
        let seen = muninn_model::format_rfc3339_nanos(row.time_ms.saturating_mul(1_000_000));
        table.row(vec![
            row.group.clone(),
            row.partition.to_string(),
            row.offset.to_string(),
            seen,
        ]);
    }
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}
