//! Crash test: a real `muninn serve` process is killed with SIGKILL at random moments while a
//! client keeps ingesting; after every restart, every batch that was acknowledged (2xx) must be
//! found again. Flushes are made frequent so that kills also land in the middle of flushes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

const SPANS_PER_BATCH: usize = 40;
const N_KILLS: usize = 12;

struct Server {
    child: Child,
    base_url: String,
}

/// Starts `muninn serve` on a free loopback port and waits for its "listening" line.
fn start_server(data_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_muninn"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--otlp-grpc-listen",
            "127.0.0.1:0",
            "--flush-max-spans",
            "3000",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the muninn binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("muninn listening on ") {
                let _ = sender.send(url.trim().to_string());
            }
        }
    });
    let base_url = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("server printed its address within 60 s");
    Server { child, base_url }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A batch of spans sharing one fresh trace id; returns (trace id, body).
fn make_batch(rng: &mut impl Rng) -> (String, String) {
    let trace_id = hex(&rng.random::<[u8; 16]>());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let spans: Vec<serde_json::Value> = (0..SPANS_PER_BATCH)
        .map(|span_idx| {
            let mut span_id = rng.random::<[u8; 8]>();
            span_id[0] |= 1;
            let kind = if span_idx == 0 {
                "producer"
            } else {
                "consumer"
            };
            serde_json::json!({
                "trace_id": trace_id,
                "span_id": hex(&span_id),
                "name": format!("{kind} orders"),
                "kind": kind,
                "service": format!("service-{}", span_idx % 5),
                "start_time_unix_nano": now - (SPANS_PER_BATCH - span_idx) as i64 * 1_000,
                "duration_nano": 500,
                "event_id": uuid::Uuid::new_v4().to_string(),
                "event_type": "order.created",
                "stream": "orders",
                "broker": "kafka",
                "attributes": {"attempt": 1, "region": "eu-west-1"},
            })
        })
        .collect();
    (trace_id, serde_json::Value::Array(spans).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_span_survives_sigkill() {
    let data_dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut rng = rand::rng();
    for round in 0..N_KILLS {
        let mut server = start_server(data_dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = Vec::new();
        for _ in 0..3 {
            let (client, url, stop, acknowledged) = (
                client.clone(),
                format!("{}/api/v1/spans", server.base_url),
                stop.clone(),
                acknowledged.clone(),
            );
            senders.push(tokio::spawn(async move {
                // A thread-local generator is not `Send`; the task may move between threads.
                let mut rng = StdRng::from_os_rng();
                while !stop.load(Ordering::Relaxed) {
                    let (trace_id, body) = make_batch(&mut rng);
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    match response {
                        Ok(response) if response.status().is_success() => {
                            acknowledged.lock().await.push(trace_id)
                        }
                        Ok(response) => panic!("valid batch refused with {}", response.status()),
                        // The server died under us: this batch was not acknowledged.
                        Err(_) => break,
                    }
                }
            }));
        }
        let kill_after = Duration::from_millis(rng.random_range(200..1500));
        tokio::time::sleep(kill_after).await;
        server.child.kill().expect("SIGKILL the server");
        let _ = server.child.wait();
        stop.store(true, Ordering::Relaxed);
        for sender in senders {
            sender.await.expect("sender task");
        }
        eprintln!(
            "round {round}: killed after {kill_after:?}, {} batches acknowledged so far",
            acknowledged.lock().await.len()
        );
    }

    // Restart once more and look every acknowledged trace up.
    let mut server = start_server(data_dir.path());
    let trace_ids = acknowledged.lock().await.clone();
    assert!(
        trace_ids.len() > N_KILLS * 5,
        "the client managed to ingest between kills ({} batches)",
        trace_ids.len()
    );
    let started = Instant::now();
    let mut missing: BTreeMap<String, String> = BTreeMap::new();
    for chunk in trace_ids.chunks(8) {
        let lookups = chunk.iter().map(|trace_id| {
            let client = client.clone();
            let url = format!("{}/api/v1/traces/{trace_id}", server.base_url);
            let trace_id = trace_id.clone();
            tokio::spawn(async move {
                let response = client.get(&url).send().await.expect("query answered");
                let status = response.status();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                (trace_id, status, body["n_spans"].as_u64())
            })
        });
        let handles: Vec<_> = lookups.collect();
        for handle in handles {
            let (trace_id, status, n_spans) = handle.await.expect("lookup task");
            if n_spans != Some(SPANS_PER_BATCH as u64) {
                missing.insert(trace_id, format!("status {status}, n_spans {n_spans:?}"));
            }
        }
    }
    server.child.kill().unwrap();
    let _ = server.child.wait();
    eprintln!(
        "verified {} acknowledged batches in {:?}",
        trace_ids.len(),
        started.elapsed()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged batches lost or incomplete: {missing:?}",
        missing.len()
    );
}
