//! Crash test: a real `muninn serve` process is killed with SIGKILL at random moments while a
//! client keeps ingesting; after every restart, every batch that was acknowledged (2xx) must be
//! found again. Flushes are made frequent so that kills also land in the middle of flushes.
//! The same with the blocks in S3 (a real S3 API, `moto_server`), through an outage of the
//! object store in the middle.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use support::Server;
use support::fault_proxy::FaultProxy;
use tokio::sync::Mutex;

const SPANS_PER_BATCH: usize = 40;
const N_KILLS: usize = 12;

/// Starts `muninn serve` on a free loopback port and waits for its "listening" line.
fn start_server(data_dir: &Path) -> Server {
    start_server_with(data_dir, None)
}

/// Starts `muninn serve`, with the configuration file `config` if given, flushing every 3,000
/// spans.
fn start_server_with(data_dir: &Path, config: Option<&Path>) -> Server {
    Server::start(data_dir, config, &["--flush-max-spans", "3000"])
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

/// Ingests with three clients into `server` until it is SIGKILLed once `wait` is done; the
/// trace ids of the acknowledged batches are added to `acknowledged`.
async fn ingest_until_killed(
    server: &mut Server,
    client: &reqwest::Client,
    acknowledged: &Arc<Mutex<Vec<String>>>,
    wait: impl std::future::Future<Output = ()>,
) {
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
    wait.await;
    server.child.kill().expect("SIGKILL the server");
    let _ = server.child.wait();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.expect("sender task");
    }
}

/// Looks every trace up in `server`; the traces not found whole, with what was found.
async fn missing_traces(
    server: &Server,
    client: &reqwest::Client,
    trace_ids: &[String],
) -> BTreeMap<String, String> {
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
    missing
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_span_survives_sigkill() {
    let data_dir = tempfile::tempdir().unwrap();
    let client = http_client();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut rng = rand::rng();
    for round in 0..N_KILLS {
        let mut server = start_server(data_dir.path());
        let kill_after = Duration::from_millis(rng.random_range(200..1500));
        let wait = tokio::time::sleep(kill_after);
        ingest_until_killed(&mut server, &client, &acknowledged, wait).await;
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
    let missing = missing_traces(&server, &client, &trace_ids).await;
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

const BUCKET: &str = "muninn-blocks";

/// A configuration file putting the blocks in `s3://BUCKET/node-a`, through `port`.
fn s3_config(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("muninn.toml");
    let text = format!(
        "[storage]\nurl = \"s3://{BUCKET}/node-a\"\nendpoint = \"http://127.0.0.1:{port}\"\n\
         region = \"us-east-1\"\npath_style = true\naccess_key_id = \"muninn-test\"\n\
         secret_access_key = \"muninn-test-secret\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Waits until `/healthz` says the store's flushes are `flushing` (`ok` or `failing`), and
/// returns the store's part.
async fn wait_for_flushing(client: &reqwest::Client, base_url: &str, flushing: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health: Value = match client.get(format!("{base_url}/healthz")).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if health["store"]["flushing"] == flushing {
            return health["store"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "/healthz did not say flushing {flushing:?} within 60 s: {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The keys a bucket's listing names under `prefix` (moto answers unsigned requests).
async fn bucket_keys(moto: &support::moto::Moto, prefix: &str) -> Vec<String> {
    let listing = reqwest::get(moto.url(&format!("{BUCKET}?list-type=2&prefix={prefix}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
        .collect()
}

/// Every file under `dir` named `name`.
fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_named(&path, name));
        } else if path.file_name().is_some_and(|file| file == name) {
            found.push(path);
        }
    }
    found
}

/// Blocks in S3 (a real S3 API behind a fault injector): SIGKILLs at random moments, a round
/// whose flushes fail throughout (the object store answers 503 SlowDown; the server is killed
/// while they fail), and one where the outage ends while the server runs and it catches up.
/// Every acknowledged span is found afterwards, the blocks are in the bucket and none on the
/// local disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_blocks_in_s3_every_acknowledged_span_survives_sigkill_and_outages() {
    let moto = support::moto::Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let proxy = FaultProxy::start(moto.port).await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = s3_config(dir.path(), proxy.port);
    let client = http_client();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut rng = rand::rng();
    for round in 0..6 {
        let mut server = start_server_with(&data_dir, Some(&config));
        let kill_after = Duration::from_millis(rng.random_range(100..350));
        let base_url = server.base_url.clone();
        let client_for_health = client.clone();
        let proxy = &proxy;
        let wait = async move {
            match round {
                // Killed while its flushes fail.
                2 => {
                    proxy.set_failing(true);
                    let store = wait_for_flushing(&client_for_health, &base_url, "failing").await;
                    let error = store["last_flush_error"].as_str().unwrap_or_default();
                    assert!(
                        error.contains("node-a/blocks/") && error.contains("503"),
                        "the error names the object and the answer: {store}"
                    );
                    assert!(store["flush_failures"].as_u64() >= Some(1), "{store}");
                }
                // The outage ends while it runs: it catches up.
                4 => {
                    proxy.set_failing(true);
                    wait_for_flushing(&client_for_health, &base_url, "failing").await;
                    proxy.set_failing(false);
                    wait_for_flushing(&client_for_health, &base_url, "ok").await;
                }
                _ => {}
            }
            tokio::time::sleep(kill_after).await;
        };
        ingest_until_killed(&mut server, &client, &acknowledged, wait).await;
        proxy.set_failing(false);
        eprintln!(
            "round {round}: {} batches acknowledged so far, {} object store requests refused",
            acknowledged.lock().await.len(),
            proxy.refused()
        );
    }

    // A node whose local copies are gone reads every block from the bucket.
    let cache = data_dir.join("cache");
    assert!(
        !files_named(&cache, "spans.parquet").is_empty(),
        "the newest blocks were copied to {}",
        cache.display()
    );
    std::fs::remove_dir_all(&cache).unwrap();
    let mut server = start_server_with(&data_dir, Some(&config));
    let flushed = client
        .post(format!("{}/api/v1/admin/flush", server.base_url))
        .send()
        .await
        .unwrap();
    assert!(flushed.status().is_success(), "{}", flushed.status());
    let store = wait_for_flushing(&client, &server.base_url, "ok").await;
    assert!(store["last_flush_error"].is_null(), "{store}");
    let trace_ids = acknowledged.lock().await.clone();
    assert!(trace_ids.len() > 30, "{} batches", trace_ids.len());
    let started = Instant::now();
    let missing = missing_traces(&server, &client, &trace_ids).await;
    eprintln!(
        "verified {} acknowledged batches in {:?}",
        trace_ids.len(),
        started.elapsed()
    );
    let metrics = client
        .get(format!("{}/metrics", server.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics:\n{metrics}"))
    };
    eprintln!(
        "cache hits {}, remote reads {} of {} bytes",
        metric("muninn_storage_cache_hits_total"),
        metric("muninn_storage_remote_reads_total"),
        metric("muninn_storage_remote_read_bytes_total")
    );
    assert!(metric("muninn_storage_remote_reads_total") > 0.0);
    assert!(metric("muninn_storage_remote_read_bytes_total") > 0.0);
    assert!(metric("muninn_storage_cache_max_bytes") > 0.0);
    server.child.kill().unwrap();
    let _ = server.child.wait();
    assert!(
        missing.is_empty(),
        "{} acknowledged batches lost or incomplete: {missing:?}",
        missing.len()
    );
    assert!(proxy.refused() > 0, "the outages refused requests");
    let keys = bucket_keys(&moto, "node-a/blocks/").await;
    assert!(
        keys.iter().any(|key| key.ends_with("/meta.json"))
            && keys.iter().any(|key| key.ends_with("/spans.parquet")),
        "blocks in the bucket: {keys:?}"
    );
    assert!(
        !data_dir.join("blocks").exists(),
        "no block on the local disk but the copies"
    );
}
