//! `muninn archive compact`: merges the small files of every partition's sealed hours (each
//! hour before the partition's newest, which a recorder may still write) and reports the files
//! and bytes before and after (`--dry-run` only reports). Safe while recorders run.

use std::process::ExitCode;

use muninn_archive::{CompactFigures, CompactOptions};

use super::ArchiveLocation;

#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    archive: ArchiveLocation,
    /// The streams to compact: a name, or a pattern with * for any run of characters.
    #[arg(long, value_name = "PATTERN", default_value = "*")]
    stream: String,
    /// Merge files into files of up to this size: bytes, or with KiB, MiB or GiB.
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    target_size: String,
    /// Merge only runs of at least this many files.
    #[arg(long, value_name = "N", default_value_t = 2)]
    min_files: usize,
    /// Only hours ending after this time (RFC 3339, unix seconds, -48h, now-2d) [default: every
    /// hour].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    since: Option<String>,
    /// Report what would be merged, change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl CompactArgs {
    /// The validated options; every error names its flag.
    fn options(&self) -> anyhow::Result<CompactOptions> {
        let target_file_bytes = crate::config::parse_body_bytes(&self.target_size)
            .map_err(|hint| anyhow::anyhow!("--target-size {}: {hint}", self.target_size))?
            as u64;
        let since_ms = match &self.since {
            None => None,
            Some(text) => Some(
                muninn_model::parse_time(text, muninn_model::now_unix_nanos())
                    .map_err(|error| anyhow::anyhow!("--since: {error}"))?
                    .div_euclid(1_000_000),
            ),
        };
        let options = CompactOptions {
            streams: self.stream.clone(),
            target_file_bytes,
            min_files: self.min_files,
            since_ms,
            dry_run: self.dry_run,
        };
        for (flag, alone) in [
            (
                "--stream",
                CompactOptions {
                    streams: options.streams.clone(),
                    ..CompactOptions::default()
                },
            ),
            (
                "--min-files",
                CompactOptions {
                    min_files: options.min_files,
                    ..CompactOptions::default()
                },
            ),
        ] {
            alone
                .check()
                .map_err(|error| anyhow::anyhow!("{flag}: {error}"))?;
        }
        options.check()?;
        Ok(options)
    }
}

pub async fn compact(args: CompactArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let archive = args.archive.open_existing().await?;
    let report = archive.compact(&options).await?;
    for (stream, figures) in &report.streams {
        if figures.partition_hours_examined > 0 {
            println!("{stream}: {}", describe(figures));
        }
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    let total = &report.total;
    eprintln!(
        "{}: {}; {} unreferenced files removed ({} bytes)",
        if args.dry_run {
            "would compact"
        } else {
            "compacted"
        },
        describe(total),
        total.unreferenced_files_removed,
        total.unreferenced_bytes_removed
    );
    if report.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} files could not be merged (listed above); their runs were left as they were",
            report.problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn describe(figures: &CompactFigures) -> String {
    format!(
        "{} of {} sealed partition-hours, {} files ({} bytes) -> {} files ({} bytes), {} messages merged",
        figures.partition_hours_compacted,
        figures.partition_hours_examined,
        figures.files_before,
        figures.bytes_before,
        figures.files_after,
        figures.bytes_after,
        figures.messages_merged
    )
}
