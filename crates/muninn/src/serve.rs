//! `muninn serve`: configuration → `muninn_server::start`, one `muninn listening on` line on
//! stdout (scripts and tests read it to learn the port), then serve until SIGINT or SIGTERM
//! and stop gracefully (in-flight requests finish, the head is flushed to blocks).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::config::{self, ServeArgs};
use crate::signals;

pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    let mut config = config::load(&args)?;
    config.store.release_memory = Some(muninn_server::allocator::release_freed_pages);
    let retention = match config.store.retention {
        Some(duration) => humantime::format_duration(duration).to_string(),
        None => "forever".to_string(),
    };
    tracing::info!(
        data_dir = %config.store.data_dir.display(),
        %retention,
        max_body_bytes = config.max_body_bytes,
        flush_max_spans = config.store.flush_max_spans,
        flush_max_age = %humantime::format_duration(config.store.flush_max_age),
        "starting muninn"
    );
    let mut server = muninn_server::start(config)
        .await
        .context("starting the server")?;
    println!("muninn listening on {}", server.base_url());
    if let Some(address) = server.otlp_grpc_addr {
        println!("muninn otlp/grpc listening on {address}");
    }
    std::io::stdout().flush().context("writing to stdout")?;

    let shutdown = server.take_shutdown();
    let stopper = tokio::spawn(async move {
        signals::stop_requested().await;
        tracing::info!("stopping: finishing requests in flight and flushing the head to blocks");
        if let Some(shutdown) = shutdown {
            let _ = shutdown.send(());
        }
    });
    server.wait().await;
    stopper.abort();
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
