//! `muninn archive retain`: removes whole hours older than each stream pattern's rule and
//! reports the sizes removed and kept (`--dry-run` only reports).

use std::process::ExitCode;

use muninn_archive::RetentionRule;

use super::ArchiveLocation;

#[derive(Debug, clap::Args)]
pub struct RetainArgs {
    #[command(flatten)]
    archive: ArchiveLocation,
    /// PATTERN=DURATION, like `orders.*=30d` (repeatable; the first matching rule applies, a
    /// stream no rule matches is kept; `*=2d` last covers the rest).
    #[arg(long = "keep", value_name = "PATTERN=DURATION", required = true)]
    rules: Vec<String>,
    /// Report what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn retain(args: RetainArgs) -> anyhow::Result<ExitCode> {
    let rules = args
        .rules
        .iter()
        .map(|text| RetentionRule::parse(text).map_err(|error| anyhow::anyhow!("--keep: {error}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let archive = args.archive.open_existing().await?;
    let now_ms = muninn_model::now_unix_nanos() / 1_000_000;
    let report = archive.retain(&rules, now_ms, args.dry_run).await?;
    for (stream, hour) in &report.hours_removed {
        println!("{stream} {hour}");
    }
    eprintln!(
        "{} {} hours ({} files, {} messages, {} bytes); {} bytes kept",
        if args.dry_run {
            "would remove"
        } else {
            "removed"
        },
        report.hours_removed.len(),
        report.files_removed,
        report.messages_removed,
        report.bytes_removed,
        report.bytes_kept
    );
    Ok(ExitCode::SUCCESS)
}
