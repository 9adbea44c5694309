//! The `muninn` binary: parses arguments and hands each command to its module. Commands are
//! thin: arguments → configuration → a library call (the server) or HTTP calls to one.

mod archive;
mod client;
mod compare;
mod config;
mod demo;
mod diff;
mod impact;
mod lineage;
mod query;
mod serve;
mod server_args;
mod signals;
mod table;
mod tail_sampling_config;
mod token;

use std::process::ExitCode;

/// jemalloc, not glibc's allocator: under ingest glibc kept freed memory in its per-thread
/// arenas (9.5 GiB resident at 100M spans against a 1 GiB memory bound); jemalloc hands it
/// back to the system within seconds.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Muninn traces the events flowing through event-streaming architectures: who produces and
/// consumes what, on which streams, how much, and what happened to one event.
#[derive(Debug, Parser)]
#[command(name = "muninn", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (ingest, store, query API) until SIGINT or SIGTERM.
    Serve(config::ServeArgs),
    /// Start a server with a simulated fleet sending traffic, then show what it learned.
    Demo(demo::DemoArgs),
    /// Keep every message of the brokers (`archive run`), list it, print it.
    Archive(archive::ArchiveArgs),
    /// Send archived messages again (a stream's time range, an event's journey or a trace) to
    /// Kafka, JetStream or a file.
    Replay(archive::replay::ReplayArgs),
    /// Print, write or check the lineage diagram (Mermaid, DOT or JSON).
    Lineage(lineage::LineageArgs),
    /// Ask a running server: event types, producers, consumers, streams, services, throughput,
    /// an event's journey or a trace.
    Query(query::QueryArgs),
    /// What changed between two windows (default: the last 15 minutes against the same
    /// minutes a day earlier): throughput, mix, new and vanished types, producers, consumers,
    /// streams and schemas.
    Compare(compare::CompareArgs),
    /// Who a schema change of an event type reaches, as a checklist: the modifying consumers
    /// that must redeploy before it ships, the read-only ones, directly and through services
    /// that publish it again.
    Impact(impact::ImpactArgs),
    /// An event type's schemas per producer, with who sent each first (instance, version).
    Schemas(impact::SchemasArgs),
    /// Create API tokens (`token new --scope ingest,read`) for a server with [auth].
    Token(token::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs its work; client commands only say when something is wrong, and the demo
    // keeps the terminal for its progress bar.
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        Command::Archive(ref args) if args.is_recorder() => "info",
        Command::Demo(_)
        | Command::Lineage(_)
        | Command::Query(_)
        | Command::Compare(_)
        | Command::Impact(_)
        | Command::Schemas(_)
        | Command::Archive(_)
        | Command::Replay(_)
        | Command::Token(_) => "warn",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let colors = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colors)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Archive(args) => archive::run(args).await,
            Command::Replay(args) => archive::replay::run(args).await,
            Command::Lineage(args) => lineage::run(args).await,
            Command::Query(args) => query::run(args).await,
            Command::Compare(args) => compare::run(args).await,
            Command::Impact(args) => impact::run_impact(args).await,
            Command::Schemas(args) => impact::run_schemas(args).await,
            Command::Token(args) => token::run(args),
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
