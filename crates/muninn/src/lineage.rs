//! `muninn lineage`: fetches the lineage (Mermaid, DOT or JSON) and prints it, writes it to a
//! file, or checks that a committed file is still current (for CI: exit 1 and a diff when not);
//! `muninn lineage diff` compares it edge by edge (`drift.rs`).

mod drift;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::client::ApiClient;
use crate::diff;
use crate::server_args::{FilterArgs, RangeArgs, ServerArg};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LineageFormat {
    Mermaid,
    Dot,
    Json,
}

impl LineageFormat {
    fn as_str(self) -> &'static str {
        match self {
            LineageFormat::Mermaid => "mermaid",
            LineageFormat::Dot => "dot",
            LineageFormat::Json => "json",
        }
    }

    /// The format a file name suggests: `.mmd`/`.mermaid`, `.dot`/`.gv`, `.json`.
    fn from_extension(path: &Path) -> Option<LineageFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "mmd" | "mermaid" => Some(LineageFormat::Mermaid),
            "dot" | "gv" => Some(LineageFormat::Dot),
            "json" => Some(LineageFormat::Json),
            _ => None,
        }
    }
}

/// `muninn lineage` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct LineageArgs {
    #[command(subcommand)]
    pub command: Option<LineageCommand>,
    #[command(flatten)]
    pub server: ServerArg,
    /// Output format [default: from the --out/--check file extension (.mmd, .dot, .json), else mermaid].
    #[arg(long, value_enum)]
    pub format: Option<LineageFormat>,
    /// Write the lineage to FILE instead of stdout.
    #[arg(long, value_name = "FILE", conflicts_with = "check")]
    pub out: Option<PathBuf>,
    /// Compare FILE with the current lineage: exit 0 when identical, 1 with a diff when not.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum LineageCommand {
    /// Compare a committed Mermaid or DOT file with the current lineage edge by edge, and print
    /// the edges added and removed as Markdown: exit 0 without drift, 1 with, 2 on an error.
    Diff(drift::DiffArgs),
}

pub async fn run(args: LineageArgs) -> Result<ExitCode> {
    if let Some(LineageCommand::Diff(diff_args)) = &args.command {
        // `--server`, `--from` and `--to` are global; the rest of `lineage`'s own options would
        // be silently ignored, so they are refused (as a usage error, exit 2).
        let filters_before_diff = args.filter.query().iter().any(|(_, value)| value.is_some());
        if args.out.is_some()
            || args.check.is_some()
            || args.format.is_some()
            || filters_before_diff
        {
            eprintln!(
                "error: `muninn lineage diff` takes --format and the filters after `diff` (like \
                 `muninn lineage diff --against docs/lineage.mmd --event-type 'order.*'`), and \
                 neither --out nor --check"
            );
            return Ok(ExitCode::from(2));
        }
        return Ok(drift::run(&args.server, &args.range, diff_args).await);
    }
    let file = args.check.as_deref().or(args.out.as_deref());
    let format = args
        .format
        .or_else(|| file.and_then(LineageFormat::from_extension))
        .unwrap_or(LineageFormat::Mermaid);
    if args.check.is_some() && format == LineageFormat::Json {
        bail!(
            "--check compares text that only changes when the lineage does; JSON carries counts and times that change with every event, so use --format mermaid or dot"
        );
    }
    let client = ApiClient::connect(&args.server)?;
    let text = fetch(&client, format, &args.range, &args.filter).await?;

    if let Some(path) = &args.check {
        return check(&client, path, format, &text);
    }
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            println!(
                "wrote the {} lineage to {}",
                format.as_str(),
                path.display()
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
            stdout.flush().context("writing to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The lineage text; JSON is pretty-printed with a final newline like the other formats.
async fn fetch(
    client: &ApiClient,
    format: LineageFormat,
    range: &RangeArgs,
    filter: &FilterArgs,
) -> Result<String> {
    let mut query = vec![("format", Some(format.as_str()))];
    query.extend(range.query());
    query.extend(filter.query());
    let segments = ["api", "v1", "lineage"];
    if format == LineageFormat::Json {
        let value = client.get_json(&segments, &query).await?;
        return Ok(serde_json::to_string_pretty(&value)? + "\n");
    }
    client.get_text(&segments, &query).await
}

fn check(
    client: &ApiClient,
    path: &Path,
    format: LineageFormat,
    current: &str,
) -> Result<ExitCode> {
    let committed = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {}; create it with `muninn lineage --server {} --format {} --out {}`",
            path.display(),
            client.base_url(),
            format.as_str(),
            path.display()
        )
    })?;
    // Line endings and trailing newlines are not part of the lineage: a file checked out with
    // CRLF or saved by an editor that adds or drops the final newline still matches.
    let committed = committed.replace("\r\n", "\n");
    let (committed, current) = (
        committed.trim_end_matches('\n'),
        current.trim_end_matches('\n'),
    );
    if committed == current {
        println!("{} matches the current lineage", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let lines = diff::diff_lines(committed, current);
    let (added, removed) = diff::count_changes(&lines);
    let current_name = format!("{} (current lineage)", client.base_url());
    print!(
        "{}",
        diff::unified(&path.display().to_string(), &current_name, &lines, 3)
    );
    println!(
        "{} is out of date: {added} line(s) added, {removed} removed in the current lineage; update it with `muninn lineage --server {} --format {} --out {}`",
        path.display(),
        client.base_url(),
        format.as_str(),
        path.display()
    );
    std::io::stdout().flush().context("writing to stdout")?;
    Ok(ExitCode::from(1))
}
