//! `muninn archive mirror` and `muninn archive verify`: the offsite copy, kept up to date
//! incrementally, and the check that two archives (or one archive and its manifests) agree.

use std::process::ExitCode;

use anyhow::Context as _;

use super::ArchiveLocation;

#[derive(Debug, clap::Args)]
pub struct MirrorArgs {
    #[command(flatten)]
    archive: ArchiveLocation,
    /// The second archive to copy new files to: a directory (created when missing) or
    /// s3://BUCKET[/PREFIX].
    #[arg(long = "to", value_name = "DIR|URL")]
    target: String,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    archive: ArchiveLocation,
    /// Compare with this archive (a mirror): manifests, counts and checksums. Without it, the
    /// archive's files are read and checked against its own manifests.
    #[arg(long, value_name = "DIR|URL")]
    against: Option<String>,
    /// With --against, also read every file of the other archive and check its checksum.
    #[arg(long)]
    deep: bool,
}

pub async fn mirror(args: MirrorArgs) -> anyhow::Result<ExitCode> {
    let source = args.archive.open_existing().await?;
    let target = ArchiveLocation {
        location: args.target.clone(),
    }
    .open()
    .await
    .context("--to")?;
    let report = source
        .mirror_to(&target, &|_| {})
        .await
        .with_context(|| format!("mirroring {} to {}", source.description(), args.target))?;
    eprintln!(
        "mirrored {} to {}: {} files copied ({} bytes), {} manifests written, {} files already there, {} replaced files removed",
        source.description(),
        target.description(),
        report.files_copied,
        report.bytes_copied,
        report.manifests_written,
        report.files_already_there,
        report.files_removed
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let archive = args.archive.open_existing().await?;
    let differences = match &args.against {
        Some(other) => {
            let other = ArchiveLocation {
                location: other.clone(),
            }
            .open_existing()
            .await
            .context("--against")?;
            archive.verify_against(&other, args.deep).await?
        }
        None => archive.check_files().await?,
    };
    if differences.is_empty() {
        eprintln!("verified: no difference");
        return Ok(ExitCode::SUCCESS);
    }
    for difference in &differences {
        println!("{difference}");
    }
    eprintln!("{} differences", differences.len());
    Ok(ExitCode::FAILURE)
}
