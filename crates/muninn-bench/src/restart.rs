//! The restart phase: after the server stopped, a new one opens the same data directory; the
//! time from the start call to the first `200` from `GET /healthz` is "restart to healthy".

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::http::{ClientKind, Connection};
use crate::report::{seconds, thousands};

/// What the restart measured.
pub(crate) struct Restart {
    pub(crate) to_healthy: Duration,
    /// Of `to_healthy`: opening the store (WAL replay, block metadata) and binding.
    pub(crate) start: Duration,
    pub(crate) n_blocks: u64,
    pub(crate) n_spans_in_head: u64,
}

impl Restart {
    pub(crate) fn line(&self) -> String {
        format!(
            "restart to healthy: {} (opening the store and binding {}; {} blocks opened, {} spans replayed into the head)",
            seconds(self.to_healthy),
            seconds(self.start),
            thousands(self.n_blocks),
            thousands(self.n_spans_in_head)
        )
    }
}

/// Starts a server on `config` (the stopped one's), waits for `/healthz`, then stops it.
pub(crate) fn run(
    server_runtime: &tokio::runtime::Runtime,
    client_runtime: &tokio::runtime::Runtime,
    config: muninn_server::ServerConfig,
    client: ClientKind,
) -> anyhow::Result<Restart> {
    let started = Instant::now();
    let server = server_runtime
        .block_on(muninn_server::start(config))
        .context("restarting the server on the same data directory")?;
    let start = started.elapsed();
    let address = server.local_addr;
    client_runtime.block_on(async {
        let mut connection = Connection::open(client, address).await?;
        loop {
            let answer = connection.get("/healthz").await?;
            if answer.is_success() {
                return anyhow::Ok(());
            }
            if started.elapsed() > Duration::from_secs(120) {
                anyhow::bail!(
                    "GET /healthz answered {} for 120 s after the restart",
                    answer.status
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })?;
    let to_healthy = started.elapsed();
    let stats = server.store.stats();
    server_runtime.block_on(server.stop());
    Ok(Restart {
        to_healthy,
        start,
        n_blocks: stats.n_blocks,
        n_spans_in_head: stats.head_spans,
    })
}
