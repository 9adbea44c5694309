//! A full disk, for real: the data directory on a small tmpfs that the test fills. Ingest
//! answers 503 with `Retry-After` and acknowledges nothing, reads go on, `/healthz` and
//! `/metrics` say what is wrong, and once space returns ingest resumes by itself; what was
//! acknowledged before, during and after is there after a restart. Mounting needs root (the
//! test command runs as root, as its installs do); without it the test fails, it does not skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{TestServer, metric};

/// A tmpfs of `size` mounted on a temporary directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs on {} failed ({status}): this test needs root (CAP_SYS_ADMIN)",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the file system is full; its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xa5u8; 64 << 10];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
                Err(error) => panic!("filling the tmpfs: {error}"),
            }
        }
        // The last partial page too.
        while file.write(&[0xa5]).is_ok_and(|written| written == 1) {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A batch of `n` spans of one trace, about 1 KB of WAL each.
fn batch(trace: &str, n: usize) -> Vec<Value> {
    let start = muninn_model::now_unix_nanos() - 60_000_000_000;
    (0..n)
        .map(|index| {
            let mut span = crate::support::with(
                crate::support::span(
                    trace,
                    &format!("{:016x}", index + 1),
                    None,
                    "checkout",
                    "send orders",
                    "producer",
                    start + index as i64 * 1000,
                ),
                crate::support::event(
                    &format!("evt-{trace}-{index}"),
                    "order.created",
                    "",
                    "orders",
                    "kafka",
                ),
            );
            span["attributes"] = serde_json::json!({ "padding": "x".repeat(800) });
            span
        })
        .collect()
}

fn trace_id(order: u32) -> String {
    format!("{order:032x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_503_keeps_reads_and_ingest_resumes_when_space_returns() {
    let disk = Tmpfs::mount("16m");
    let data_dir = disk.path().join("data");
    let mut server = TestServer::start_with(|config| {
        config.store.data_dir = data_dir.clone();
    })
    .await;
    server
        .api
        .ingest_ok("/api/v1/spans", &batch(&trace_id(1), 20))
        .await;

    let filler = disk.fill();
    let refused = server
        .api
        .ingest("/api/v1/spans", &batch(&trace_id(2), 50))
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.header("retry-after").is_some());
    let message = refused.error()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("write-ahead log") && message.contains("nothing of this batch"),
        "{message}"
    );
    // Reads go on.
    let first = server
        .api
        .get_json(&format!("/api/v1/traces/{}", trace_id(1)), &[])
        .await;
    assert_eq!(first["n_spans"], serde_json::json!(20), "{first}");
    let health = server.api.get_json("/healthz", &[]).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store"]["wal"], "failing", "{health}");
    let error = health["store"]["last_wal_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("No space left"), "{health}");
    let metrics = server.api.get("/metrics", &[]).await.text;
    let failures = metric(&metrics, "muninn_wal_failures_total");
    assert!(failures >= 1.0, "{failures}");

    // Space returns: ingest resumes by itself, within seconds.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = server
            .api
            .ingest("/api/v1/spans", &batch(&trace_id(3), 50))
            .await;
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 503, "{}", answer.text);
        assert!(
            Instant::now() < deadline,
            "ingest still refused 15 s after space returned: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let health = server.api.get_json("/healthz", &[]).await;
    assert_eq!(health["store"]["wal"], "ok", "{health}");
    server
        .api
        .ingest_ok("/api/v1/spans", &batch(&trace_id(4), 5))
        .await;

    // What was acknowledged is all there after a restart (from the WAL segments, old and new).
    server.restart().await;
    for (trace, spans) in [(1, 20), (3, 50), (4, 5)] {
        let answer = server
            .api
            .get_json(&format!("/api/v1/traces/{}", trace_id(trace)), &[])
            .await;
        assert_eq!(
            answer["n_spans"],
            serde_json::json!(spans),
            "trace {trace}: {answer}"
        );
    }
    server.flush().await;
    server.stop().await;
}

/// The block directories under `data_dir`, oldest flush first.
fn block_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    let mut pending = vec![data_dir.join("blocks")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name() == Some("meta.json".as_ref()) {
                let meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                let dir = path.parent().unwrap().to_path_buf();
                found.push((meta["flush_seq"].as_u64().unwrap(), dir));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, dir)| dir).collect()
}

/// A byte flipped in a block on disk while the server is down: the scrub at start finds it by
/// its checksum, the block is quarantined (out of the read path, its files left with a
/// `quarantine.json`), `/metrics`, `/healthz` and the answers that needed it say so, and the
/// rest is served as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_damaged_on_disk_is_found_by_its_checksum_and_quarantined() {
    let mut server = TestServer::start().await;
    for trace in [1, 2] {
        server
            .api
            .ingest_ok("/api/v1/spans", &batch(&trace_id(trace), 20))
            .await;
        server.flush().await;
    }
    let blocks = block_dirs(server.data_dir());
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    server
        .restart_after(|_| {
            let path = blocks[0].join("spans.parquet");
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x10;
            std::fs::write(&path, bytes).unwrap();
        })
        .await;

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = server.api.get("/metrics", &[]).await.text;
        // The block leaves the read path first; its marker is written just after.
        let marked = blocks[0].join("quarantine.json").exists();
        if metric(&metrics, "muninn_blocks_quarantined") == 1.0 && marked {
            assert!(metric(&metrics, "muninn_block_scrubs_total") >= 1.0);
            assert!(metric(&metrics, "muninn_block_scrub_read_bytes_total") > 0.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no block quarantined and marked 15 s after the start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = server.api.get_json("/healthz", &[]).await;
    let quarantined = health["store"]["quarantined_blocks"].as_array().unwrap();
    assert_eq!(quarantined.len(), 1, "{health}");
    let reason = quarantined[0].as_str().unwrap();
    assert!(
        reason.contains("spans.parquet fails its checksum"),
        "{reason}"
    );
    assert!(
        blocks[0].join("spans.parquet").exists(),
        "the block stays for inspection"
    );

    // The intact block answers as before; the answer that needed the damaged one says so.
    let intact = server
        .api
        .get_json(&format!("/api/v1/traces/{}", trace_id(2)), &[])
        .await;
    assert_eq!(intact["n_spans"], serde_json::json!(20), "{intact}");
    let partial = server
        .api
        .get(&format!("/api/traces/{}", trace_id(1)), &[])
        .await;
    assert!(
        partial.text.contains("quarantined"),
        "{} {}",
        partial.status,
        partial.text
    );
    // Still out after another restart, from its marker.
    server.restart().await;
    let health = server.api.get_json("/healthz", &[]).await;
    assert_eq!(
        health["store"]["quarantined_blocks"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{health}"
    );
    server.stop().await;
}
