//! `muninn archive ls` and `muninn archive cat`: what the archive holds, and a stream's messages
//! as JSON lines (the lossless form `replay --to file://` also writes), with a progress bar on
//! the terminal for long reads.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{ArchiveLocation, SelectionArgs};
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    #[command(flatten)]
    archive: ArchiveLocation,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct CatArgs {
    #[command(flatten)]
    archive: ArchiveLocation,
    #[command(flatten)]
    selection: SelectionArgs,
    /// Stop after this many messages.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
}

pub async fn ls(args: LsArgs) -> anyhow::Result<ExitCode> {
    let archive = args.archive.open_existing().await?;
    let streams = archive.streams().await.context("listing the archive")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&streams)?);
        return Ok(ExitCode::SUCCESS);
    }
    if streams.is_empty() {
        eprintln!(
            "the archive at {} holds no messages yet",
            archive.description()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "STREAM",
        "PARTITION",
        "FIRST OFFSET",
        "LAST OFFSET",
        "MESSAGES",
        "BYTES",
        "FILES",
        "FIRST HOUR",
        "LAST HOUR",
        "GAPS",
    ])
    .align_right(&[
        "PARTITION",
        "FIRST OFFSET",
        "LAST OFFSET",
        "MESSAGES",
        "BYTES",
        "FILES",
    ]);
    for stream in &streams {
        for partition in &stream.partitions {
            let gaps: Vec<String> = partition
                .gaps
                .iter()
                .map(|(from, to)| format!("{from}-{to}"))
                .collect();
            table.row(vec![
                stream.stream.clone(),
                partition.partition.to_string(),
                partition.first_offset.to_string(),
                partition.last_offset.to_string(),
                partition.messages.to_string(),
                partition.bytes.to_string(),
                partition.files.to_string(),
                partition.first_hour.clone(),
                partition.last_hour.clone(),
                gaps.join(", "),
            ]);
        }
    }
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}

pub async fn cat(args: CatArgs) -> anyhow::Result<ExitCode> {
    let (_, urls) = args.selection.split_to()?;
    if let Some(url) = urls.first() {
        anyhow::bail!(
            "--to {url}: `archive cat` prints to standard output; to send messages somewhere, use `muninn replay`"
        );
    }
    let selection = args.selection.selection()?;
    let archive = args.archive.open_existing().await?;
    let files = archive
        .files(&selection)
        .await
        .context("listing the archive")?;
    let total: u64 = files.iter().map(|file| file.entry.count).sum();
    let progress = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) || files.len() < 2 {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} messages read, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    'files: for file in &files {
        let messages = archive.read_file(file).await?;
        progress.inc(file.entry.count);
        for message in messages.iter().filter(|message| selection.matches(message)) {
            if args.limit.is_some_and(|limit| printed >= limit) {
                break 'files;
            }
            serde_json::to_writer(&mut out, &muninn_archive::to_json(message))?;
            if let Err(error) = out.write_all(b"\n") {
                // A closed pipe (`| head`) ends the output, not with an error.
                if error.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(ExitCode::SUCCESS);
                }
                return Err(error.into());
            }
            printed += 1;
        }
    }
    progress.finish_and_clear();
    match out.flush() {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => return Err(error.into()),
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}
