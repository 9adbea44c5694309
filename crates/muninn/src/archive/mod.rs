//! `muninn archive`: run the recorder that keeps every message of the brokers, list what the
//! archive holds, and print a stream's messages in a time range as JSON lines.

mod browse;
mod compact;
mod groups;
mod mirror;
pub mod replay;
mod retain;
mod run;

use std::process::ExitCode;

use muninn_archive::{Archive, Filter, Selection};

/// `muninn archive …`.
#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    #[command(subcommand)]
    command: ArchiveCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ArchiveCommand {
    /// Record every message of Kafka topics and JetStream streams into the archive, until
    /// SIGINT or SIGTERM.
    Run(run::RunArgs),
    /// List the archived streams: partitions, offsets, hours, counts, bytes and gaps.
    Ls(browse::LsArgs),
    /// Print a stream's archived messages in a time range as JSON lines.
    Cat(browse::CatArgs),
    /// Copy new files and manifests to a second archive (the offsite copy), incrementally.
    Mirror(mirror::MirrorArgs),
    /// Compare two archives' manifests, counts and checksums (or check one archive's files);
    /// exits 1 on any difference.
    Verify(mirror::VerifyArgs),
    /// Show the consumer groups' committed positions the recorder sampled on a stream.
    Groups(groups::GroupsArgs),
    /// Remove whole hours older than each stream pattern's rule (`--keep 'orders.*=30d'`).
    Retain(retain::RetainArgs),
    /// Merge the small files of each partition's sealed hours (every hour before its newest)
    /// into files of up to --target-size.
    Compact(compact::CompactArgs),
}

/// `--archive`: where the archive lives.
#[derive(Debug, Clone, clap::Args)]
pub struct ArchiveLocation {
    /// The archive: a local directory, file://PATH, or s3://BUCKET[/PREFIX] (settings from
    /// the AWS_* variables: AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, …).
    #[arg(
        long = "archive",
        env = "MUNINN_ARCHIVE",
        value_name = "DIR",
        default_value = "muninn-archive"
    )]
    pub location: String,
}

impl ArchiveLocation {
    fn local_path(&self) -> Option<&str> {
        let path = self
            .location
            .strip_prefix("file://")
            .unwrap_or(&self.location);
        (!path.contains("://")).then_some(path)
    }

    /// The archive for reading: a local one must exist already.
    pub async fn open_existing(&self) -> anyhow::Result<Archive> {
        if let Some(path) = self.local_path()
            && !std::path::Path::new(path).is_dir()
        {
            anyhow::bail!(
                "--archive {}: no archive there (not a directory); give the directory `muninn archive run` writes to",
                self.location
            );
        }
        self.open().await
    }

    /// The archive (a local directory is created when missing).
    pub async fn open(&self) -> anyhow::Result<Archive> {
        Archive::open(&self.location)
            .await
            .map_err(|error| anyhow::anyhow!("--archive {}: {error}", self.location))
    }
}

/// The stream, time range, partition and filters that `cat` and `replay` select.
#[derive(Debug, Clone, clap::Args)]
pub struct SelectionArgs {
    /// The stream (Kafka topic or JetStream stream).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Start of the range, by broker timestamp (RFC 3339, unix seconds, now, -1h, now-15m)
    /// [default: the beginning].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the range, exclusive [default: now + 1 day]. For `replay`, a `--to` that is a URL
    /// (kafka://, nats://, file://) names the target instead.
    #[arg(long = "to", value_name = "TIME", allow_hyphen_values = true)]
    pub to: Vec<String>,
    /// Only this partition.
    #[arg(long, value_name = "N")]
    pub partition: Option<i32>,
    /// Only messages matching: event_type=NAME, event_id=ID, trace_id=HEX, key=TEXT or
    /// header.NAME=TEXT (repeatable: all must match).
    #[arg(long = "filter", value_name = "FIELD=VALUE")]
    pub filters: Vec<String>,
}

impl SelectionArgs {
    /// The `--to` values that are URLs (replay targets), and the one that is a time.
    pub fn split_to(&self) -> anyhow::Result<(Option<String>, Vec<String>)> {
        let (urls, times): (Vec<String>, Vec<String>) = self
            .to
            .iter()
            .cloned()
            .partition(|value| value.contains("://"));
        if times.len() > 1 {
            anyhow::bail!(
                "--to given {} times as a time ({}); give one end time",
                times.len(),
                times.join(", ")
            );
        }
        Ok((times.into_iter().next(), urls))
    }

    /// The validated selection; every error names the flag.
    pub fn selection(&self) -> anyhow::Result<Selection> {
        let Some(stream) = &self.stream else {
            anyhow::bail!(
                "--stream NAME is required: the stream to read (see `muninn archive ls`)"
            );
        };
        self.selection_of(stream)
    }

    /// The selection with another stream (a journey or trace reads every stream).
    pub fn selection_of(&self, stream: &str) -> anyhow::Result<Selection> {
        let (until, _) = self.split_to()?;
        let now = muninn_model::now_unix_nanos();
        let time = |flag: &str, text: &Option<String>, default: i64| -> anyhow::Result<i64> {
            match text {
                None => Ok(default),
                Some(text) => muninn_model::parse_time(text, now)
                    .map(|nanos| nanos.div_euclid(1_000_000))
                    .map_err(|error| anyhow::anyhow!("--{flag}: {error}")),
            }
        };
        let from = time("from", &self.from, 0)?;
        let until = time("to", &until, now / 1_000_000 + 86_400_000)?;
        let filters = self
            .filters
            .iter()
            .map(|text| Filter::parse(text).map_err(|error| anyhow::anyhow!("--filter: {error}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Selection::new(stream, self.partition, from, until, filters)
            .map_err(|error| anyhow::anyhow!("{error}"))
    }
}

impl ArchiveArgs {
    /// Whether this is the long-running recorder, which logs its progress.
    pub fn is_recorder(&self) -> bool {
        matches!(self.command, ArchiveCommand::Run(_))
    }
}

pub async fn run(args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ArchiveCommand::Run(args) => run::run(args).await,
        ArchiveCommand::Ls(args) => browse::ls(args).await,
        ArchiveCommand::Cat(args) => browse::cat(args).await,
        ArchiveCommand::Mirror(args) => mirror::mirror(args).await,
        ArchiveCommand::Verify(args) => mirror::verify(args).await,
        ArchiveCommand::Retain(args) => retain::retain(args).await,
        ArchiveCommand::Compact(args) => compact::compact(args).await,
        ArchiveCommand::Groups(args) => groups::groups(args).await,
    }
}
