//! Several nodes on one bucket, as separate `muninn serve` processes on a real S3 API
//! (`moto_server`): two ingest nodes (`role = "ingest"`, each with its `[storage] node`) take a
//! fleet-like workload between them, a query node (`role = "query"`) reads every block they
//! committed, and a single node (blocks on its local disk) takes the same workload whole. Every
//! query through the query node answers as the single node does; the query node refuses spans.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::Server;
use support::moto::Moto;

const BUCKET: &str = "muninn-cluster";
const EVENT_TYPES: [&str; 3] = ["order.created", "payment.settled", "parcel.shipped"];
const CONSUMERS: [&str; 4] = ["billing", "fraud", "warehouse", "email"];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn span_id(rng: &mut StdRng) -> String {
    let mut id = rng.random::<[u8; 8]>();
    id[0] |= 1;
    hex(&id)
}

/// A batch of events: a producer span and 1–3 consumer spans each, some consumers in a trace of
/// their own linked to the producer; the event ids of the batch.
fn batch(rng: &mut StdRng, now: i64, n_events: usize) -> (Value, Vec<String>) {
    let mut spans = Vec::new();
    let mut event_ids = Vec::new();
    for _ in 0..n_events {
        let trace_id = hex(&rng.random::<[u8; 16]>());
        let producer = span_id(rng);
        let event_id = uuid::Uuid::from_bytes(rng.random()).to_string();
        let event_type = EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())];
        let stream = event_type.split('.').next().unwrap_or("events");
        let start = now - rng.random_range(0..600_000_000_000i64);
        let common = json!({
            "event_id": event_id, "event_type": event_type, "stream": stream, "broker": "kafka",
        });
        let mut span = |fields: Value| {
            let mut span = common.clone();
            span.as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
            spans.push(span);
        };
        span(json!({
            "trace_id": trace_id, "span_id": producer, "name": format!("publish {stream}"),
            "kind": "producer", "service": "orders", "start_time_unix_nano": start,
            "duration_nano": 400_000, "attributes": {"region": "eu-west-1"},
        }));
        for consumer in 0..rng.random_range(1..=3usize) {
            let service = CONSUMERS[(consumer + rng.random_range(0..2usize)) % CONSUMERS.len()];
            let linked = rng.random_bool(0.25);
            let mut consume = json!({
                "trace_id": if linked { hex(&rng.random::<[u8; 16]>()) } else { trace_id.clone() },
                "span_id": span_id(rng), "name": format!("consume {stream}"), "kind": "consumer",
                "service": service, "start_time_unix_nano": start + 2_000_000,
                "duration_nano": 1_500_000,
            });
            if linked {
                consume["links"] = json!([{"trace_id": trace_id, "span_id": producer}]);
            } else {
                consume["parent_span_id"] = json!(producer);
            }
            span(consume);
        }
        event_ids.push(event_id);
    }
    (Value::Array(spans), event_ids)
}

fn config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn storage(port: u16, extra: &str) -> String {
    format!(
        "[storage]\nurl = \"s3://{BUCKET}/prod\"\nendpoint = \"http://127.0.0.1:{port}\"\n\
         region = \"us-east-1\"\npath_style = true\naccess_key_id = \"muninn-test\"\n\
         secret_access_key = \"muninn-test-secret\"\n{extra}"
    )
}

/// Two ingest nodes (`ingest-a`, `ingest-b`, each with `ingest_extra` in its file), a query
/// node refreshing every second, all on the bucket behind `moto_port`, and a single node with
/// its blocks on local disk.
fn start_nodes(dir: &Path, moto_port: u16, ingest_extra: &str) -> [Server; 4] {
    let ingest = |name: &str| {
        let text = format!(
            "role = \"ingest\"\n{}{ingest_extra}",
            storage(moto_port, &format!("node = \"{name}\"\n"))
        );
        Server::start(&dir.join(name), Some(&config(dir, name, &text)), &[])
    };
    let query_text = format!(
        "role = \"query\"\n{}",
        storage(moto_port, "refresh = \"1s\"\n")
    );
    [
        ingest("ingest-a"),
        ingest("ingest-b"),
        Server::start(
            &dir.join("query"),
            Some(&config(dir, "query", &query_text)),
            &[],
        ),
        Server::start(&dir.join("single"), None, &[]),
    ]
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn get(client: &reqwest::Client, server: &Server, path: &str) -> Value {
    let response = client
        .get(format!("{}{path}", server.base_url))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_node_over_two_ingest_nodes_answers_as_one_node_does() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let [node_a, node_b, query, single] = start_nodes(dir.path(), moto.port, "");
    let client = reqwest::Client::new();

    let mut rng = StdRng::seed_from_u64(19);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut event_ids = Vec::new();
    let mut trace_ids = Vec::new();
    for batch_idx in 0..40 {
        let (spans, events) = batch(&mut rng, now, 25);
        trace_ids.extend(
            spans
                .as_array()
                .unwrap()
                .iter()
                .step_by(7)
                .map(|span| span["trace_id"].as_str().unwrap().to_string()),
        );
        event_ids.extend(events);
        let ingest_node = if batch_idx % 2 == 0 { &node_a } else { &node_b };
        for server in [ingest_node, &single] {
            let (status, answer) =
                post(&client, format!("{}/api/v1/spans", server.base_url), &spans).await;
            assert_eq!(status, 200, "{answer}");
        }
    }
    let (status, answer) = post(
        &client,
        format!("{}/api/v1/spans", query.base_url),
        &batch(&mut rng, now, 1).0,
    )
    .await;
    assert_eq!(status, 403, "a query node takes no spans: {answer}");
    assert!(
        answer.to_string().contains("ingest node"),
        "the refusal says where spans go: {answer}"
    );
    // Nothing flushed yet: the query node answers from the ingest nodes' heads.
    let n_compared = compare_all(&client, &query, &single, now, &event_ids, &trace_ids).await;
    eprintln!("{n_compared} answers alike from the ingest nodes' heads");
    for server in [&node_a, &node_b, &single] {
        let (status, answer) = post(
            &client,
            format!("{}/api/v1/admin/flush", server.base_url),
            &json!({}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    // Flushed: from their blocks (once the query node's mirror of the heads is empty), each
    // record counted once.
    let metric = |name: &'static str| {
        let (client, url) = (client.clone(), format!("{}/metrics", query.base_url));
        async move {
            let metrics = client.get(url).send().await.unwrap().text().await.unwrap();
            metrics
                .lines()
                .find_map(|line| {
                    line.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or_else(|| panic!("{name} in /metrics:\n{metrics}"))
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric("muninn_head_spans").await > 0.0 || metric("muninn_blocks").await < 2.0 {
        assert!(
            Instant::now() < deadline,
            "the query node never read the flushed blocks"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let n_compared = compare_all(&client, &query, &single, now, &event_ids, &trace_ids).await;
    eprintln!("{n_compared} answers alike from the ingest nodes' blocks");
    // The query node copies the blocks it finds to its local disk, and reads them there.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric("muninn_storage_cache_bytes").await == 0.0 {
        assert!(Instant::now() < deadline, "the query node copied no block");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let hits_before = metric("muninn_storage_cache_hits_total").await;
    let path = format!("/api/v1/traces/{}", trace_ids[0]);
    assert_eq!(
        get(&client, &query, &path).await,
        get(&client, &single, &path).await
    );
    assert!(
        metric("muninn_storage_cache_hits_total").await > hits_before,
        "a look-up read the local copies"
    );

    // An ingest node down: answers still hold what it flushed, and name it as missing.
    drop(node_b);
    let path = format!("/api/v1/events/{}", event_ids[1]);
    let expected = get(&client, &single, &path).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let journey = get(&client, &query, &path).await;
        assert_eq!(journey["hops"], expected["hops"], "{journey}");
        let notes = journey["unreadable_blocks"].to_string();
        if notes.contains("nodes/ingest-b") {
            assert!(notes.contains("did not answer"), "{notes}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the query node never named the missing ingest node: {journey}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the query node's lineage is the single node's (its next refresh), then compares
/// catalog, lineage, throughput, producers, Jaeger searches, journeys and traces; the number of
/// answers compared.
async fn compare_all(
    client: &reqwest::Client,
    query: &Server,
    single: &Server,
    now: i64,
    event_ids: &[String],
    trace_ids: &[String],
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    // Fixed time ranges: an answer names its range, which "-1h" would move between requests.
    let now_s = now / 1_000_000_000;
    let range = format!("from={}&to={}", now_s - 7_200, now_s + 3_600);
    let jaeger_range = format!(
        "start={}&end={}",
        (now_s - 7_200) * 1_000_000,
        (now_s + 3_600) * 1_000_000
    );
    let lineage_path = format!("/api/v1/lineage?{range}");
    let expected_lineage = get(client, single, &lineage_path).await;
    loop {
        let lineage = get(client, query, &lineage_path).await;
        if lineage == expected_lineage {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the query node's lineage never matched the single node's:\n{lineage}\nexpected\n{expected_lineage}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut paths: Vec<String> = vec![
        format!("/api/v1/event-types?{range}"),
        format!("/api/v1/services?{range}"),
        format!("/api/v1/streams?{range}"),
        "/api/services".into(),
        format!("/api/traces?service=orders&limit=20&{jaeger_range}"),
        format!("/api/traces?service=billing&operation=consume%20order&limit=5&{jaeger_range}"),
    ];
    for event_type in EVENT_TYPES {
        paths.push(format!(
            "/api/v1/throughput?{range}&step=60s&event_type={event_type}"
        ));
        paths.push(format!(
            "/api/v1/event-types/{event_type}/producers?{range}"
        ));
    }
    paths.extend(
        event_ids
            .iter()
            .step_by(37)
            .map(|id| format!("/api/v1/events/{id}")),
    );
    paths.extend(
        trace_ids
            .iter()
            .step_by(11)
            .map(|id| format!("/api/v1/traces/{id}")),
    );
    for path in &paths {
        let expected = get(client, single, path).await;
        let answered = get(client, query, path).await;
        assert!(
            expected.to_string().len() > 20,
            "{path}: the single node knows something: {expected}"
        );
        assert_eq!(answered, expected, "{path}");
    }
    paths.len() + 1
}

/// The Kafka ingest bus against a real Kafka-API broker (tansu): two ingest nodes consume span
/// batches (gzip'd or not) from one topic as a consumer group, and the query node over them
/// answers as a single node that took the same batches over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_nodes_consuming_a_kafka_topic_answer_as_one_node_does() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::io::Write as _;

    const TOPIC: &str = "muninn-spans";
    let kafka = support::Kafka::start();
    kafka.create_topic(TOPIC, 4).await;
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let kafka_table = format!(
        "[kafka_ingest]\nbootstrap = \"{}\"\ntopics = [\"{TOPIC}\"]\n",
        kafka.bootstrap
    );
    let [node_a, node_b, query, single] = start_nodes(dir.path(), moto.port, &kafka_table);
    let client = reqwest::Client::new();
    let producer: FutureProducer = kafka
        .config()
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();

    let mut rng = StdRng::seed_from_u64(23);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let ingested = |node: &Server| {
        let (client, url) = (client.clone(), format!("{}/metrics", node.base_url));
        async move {
            let metrics = client.get(url).send().await.unwrap().text().await.unwrap();
            metrics
                .lines()
                .find_map(|line| {
                    line.strip_prefix("muninn_ingested_spans_total ")?
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(0.0)
        }
    };
    // Batches until both nodes have consumed some (the group spreads the partitions once both
    // have joined), at least 24, at most 400.
    let (mut event_ids, mut trace_ids) = (Vec::new(), Vec::new());
    for batch_idx in 0..400 {
        if batch_idx >= 24 && ingested(&node_a).await > 0.0 && ingested(&node_b).await > 0.0 {
            break;
        }
        assert!(
            batch_idx < 399,
            "the consumer group never gave both nodes a partition"
        );
        if batch_idx >= 24 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (spans, events) = batch(&mut rng, now, 20);
        trace_ids.extend(
            spans
                .as_array()
                .unwrap()
                .iter()
                .step_by(5)
                .map(|span| span["trace_id"].as_str().unwrap().to_string()),
        );
        event_ids.extend(events);
        let json = spans.to_string().into_bytes();
        let (payload, headers) = if batch_idx % 2 == 0 {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&json).unwrap();
            let headers = OwnedHeaders::new().insert(Header {
                key: "content-encoding",
                value: Some("gzip"),
            });
            (encoder.finish().unwrap(), headers)
        } else {
            (json, OwnedHeaders::new())
        };
        producer
            .send(
                FutureRecord::<[u8], [u8]>::to(TOPIC)
                    .payload(&payload)
                    .headers(headers)
                    .partition(batch_idx % 4),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(error, _)| error)
            .unwrap();
        let (status, answer) =
            post(&client, format!("{}/api/v1/spans", single.base_url), &spans).await;
        assert_eq!(status, 200, "{answer}");
    }
    let n_compared = compare_all(&client, &query, &single, now, &event_ids, &trace_ids).await;
    eprintln!("{n_compared} answers alike through the Kafka bus");
}

/// An ingest node SIGKILLed while it consumes the Kafka bus, and restarted, loses no batch: what
/// it had not committed is delivered again (to it or to the other node). Then the other node is
/// SIGKILLed for good, and the group gives its partitions to the one left once its session
/// expires. Every trace produced is found whole through the query node (at least once: a batch
/// stored twice shows its spans once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_node_killed_while_consuming_kafka_loses_no_batch() {
    kafka_kill_scenario(false).await;
}

/// The same, but the object store refuses every request (503 SlowDown) from the first node's
/// return until after the second kill, and the second node dies sooner, while the group is
/// still settling the first node's return: flushes wait, consuming waits for room, and the node
/// left still takes the dead node's partitions once its session expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumers_take_a_dead_nodes_partitions_through_an_object_store_outage() {
    kafka_kill_scenario(true).await;
}

async fn kafka_kill_scenario(outage: bool) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use support::fault_proxy::FaultProxy;

    const TOPIC: &str = "muninn-spans";
    let kafka = support::Kafka::start();
    kafka.create_topic(TOPIC, 4).await;
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let proxy = FaultProxy::start(moto.port).await;
    let dir = tempfile::tempdir().unwrap();
    let ingest = |name: &str| {
        // A short session: the group gives a killed node's partitions to the others soon.
        let text = format!(
            "role = \"ingest\"\n{}[kafka_ingest]\nbootstrap = \"{}\"\ntopics = [\"{TOPIC}\"]\n\
             options = {{ \"session.timeout.ms\" = \"6000\", \"heartbeat.interval.ms\" = \"500\" }}\n",
            storage(proxy.port, &format!("node = \"{name}\"\n")),
            kafka.bootstrap
        );
        Server::start(
            &dir.path().join(name),
            Some(&config(dir.path(), name, &text)),
            &["--flush-max-spans", "2000"],
        )
    };
    let mut node_a = ingest("ingest-a");
    let node_b = ingest("ingest-b");
    let query_config = format!(
        "role = \"query\"\n{}",
        storage(moto.port, "refresh = \"1s\"\n")
    );
    let query = Server::start(
        &dir.path().join("query"),
        Some(&config(dir.path(), "query", &query_config)),
        &[],
    );
    let producer: FutureProducer = kafka
        .config()
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    // Which traces were produced after ingest-b died: only ingest-a can have consumed them.
    let b_dead = Arc::new(AtomicBool::new(false));
    let producing = tokio::spawn({
        let b_dead = b_dead.clone();
        async move {
            let mut rng = StdRng::seed_from_u64(29);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i64;
            let mut traces: HashMap<String, usize> = HashMap::new();
            let mut after_b: Vec<String> = Vec::new();
            for batch_idx in 0..if outage { 600 } else { 300 } {
                let (spans, _) = batch(&mut rng, now, 8);
                let late = b_dead.load(Ordering::SeqCst);
                for span in spans.as_array().unwrap() {
                    let trace_id = span["trace_id"].as_str().unwrap().to_string();
                    if late && !traces.contains_key(&trace_id) {
                        after_b.push(trace_id.clone());
                    }
                    *traces.entry(trace_id).or_default() += 1;
                }
                let payload = spans.to_string().into_bytes();
                producer
                    .send(
                        FutureRecord::<[u8], [u8]>::to(TOPIC)
                            .payload(&payload)
                            .partition(batch_idx % 4),
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|(error, _)| error)
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (traces, after_b)
        }
    });
    // Killed mid-production, back a second later (its old member is still in the group).
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    drop(node_a);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    node_a = ingest("ingest-a");
    if outage {
        proxy.set_failing(true);
    }
    // The other node dies while batches still come, and stays down.
    // With the outage, five seconds: while the group drops ingest-a's old member (its session
    // is six), which is when tansu 0.6.0 left partitions with nobody.
    tokio::time::sleep(Duration::from_millis(if outage { 5_000 } else { 2_000 })).await;
    drop(node_b);
    b_dead.store(true, Ordering::SeqCst);
    if outage {
        // At least four seconds, and until a flush has met the outage.
        tokio::time::sleep(Duration::from_millis(4_000)).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while proxy.refused() == 0 {
            assert!(
                Instant::now() < deadline,
                "the object store's outage refused nothing"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        proxy.set_failing(false);
    }
    let (traces, after_b) = producing.await.unwrap();
    assert!(
        after_b.len() > 100,
        "only {} traces were produced after ingest-b died",
        after_b.len()
    );
    // While ingest-b is down, answers name it as the node that did not answer.
    let client = reqwest::Client::new();
    let early: Vec<&String> = traces.keys().filter(|id| !after_b.contains(id)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    'named: loop {
        for trace_id in &early {
            let answer = trace_answer(&client, &query, trace_id).await;
            let notes = answer["unreadable_blocks"].to_string();
            if notes.contains("nodes/ingest-b") {
                assert!(notes.contains("did not answer"), "{notes}");
                break 'named;
            }
            if answer["n_spans"].is_u64() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "with ingest-b down, no answer of the query node named it"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What ingest-b's head held is out of sight while it is down, but every batch produced
    // after it died, half of them to its partitions, reaches ingest-a once b's session expires.
    let late: HashMap<String, usize> = after_b
        .iter()
        .map(|trace_id| (trace_id.clone(), traces[trace_id]))
        .collect();
    wait_whole(&client, &query, &[("ingest-a", &node_a)], &late, &kafka).await;
    // Back up, ingest-b replays its WAL: now every trace is whole.
    let node_b = ingest("ingest-b");
    wait_whole(
        &client,
        &query,
        &[("ingest-a", &node_a), ("ingest-b", &node_b)],
        &traces,
        &kafka,
    )
    .await;
    eprintln!(
        "{} traces found whole ({} produced while ingest-b was down) after one consuming ingest \
         node was SIGKILLed and restarted and the other SIGKILLed for a while",
        traces.len(),
        after_b.len()
    );
    drop(node_b);
    drop(node_a);
}

/// The query node's answer for a trace: without `n_spans` while it answers 404 (not consumed yet).
async fn trace_answer(client: &reqwest::Client, query: &Server, trace_id: &str) -> Value {
    client
        .get(format!("{}/api/v1/traces/{trace_id}", query.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default()
}

/// Waits (up to three minutes) until the query node finds each trace with its number of spans;
/// fails naming what each node holds.
async fn wait_whole(
    client: &reqwest::Client,
    query: &Server,
    ingest: &[(&str, &Server)],
    traces: &HashMap<String, usize>,
    kafka: &support::Kafka,
) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut missing: Vec<String> = traces.keys().cloned().collect();
    loop {
        let mut still = Vec::new();
        for trace_id in &missing {
            let answer = trace_answer(client, query, trace_id).await;
            if answer["n_spans"].as_u64() != Some(traces[trace_id] as u64) {
                still.push(trace_id.clone());
            }
        }
        missing = still;
        if missing.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let mut states = Vec::new();
            for (name, node) in ingest.iter().copied().chain([("query", query)]) {
                let metrics = client
                    .get(format!("{}/metrics", node.base_url))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap_or_default();
                let wanted = [
                    "muninn_ingested_spans_total ",
                    "muninn_head_spans ",
                    "muninn_blocks ",
                ];
                let lines: Vec<&str> = metrics
                    .lines()
                    .filter(|line| wanted.iter().any(|prefix| line.starts_with(prefix)))
                    .collect();
                states.push(format!("{name}: {lines:?}"));
            }
            panic!(
                "{} of {} traces not found whole: {:?}; {}; tansu's log ends:\n{}",
                missing.len(),
                traces.len(),
                &missing[..missing.len().min(5)],
                states.join("; "),
                kafka.process().log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Nodes with `[auth]`: the query node sends its `peer_token` when it asks the ingest node for
/// its head, so a trace acknowledged but not flushed is found through it; a query node without
/// the token is refused (401) and names the ingest node as not answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_node_asks_ingest_nodes_with_its_peer_token() {
    use muninn_server::auth::{TokenHash, new_token};

    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let (ingest_token, read_token, peer_token) = (new_token(), new_token(), new_token());
    let tokens = format!(
        "[auth]\n\
         [[auth.tokens]]\nname = \"fleet\"\nhash = \"{}\"\nscopes = [\"ingest\"]\n\
         [[auth.tokens]]\nname = \"dashboards\"\nhash = \"{}\"\nscopes = [\"read\"]\n\
         [[auth.tokens]]\nname = \"query-nodes\"\nhash = \"{}\"\nscopes = [\"read\"]\n",
        TokenHash::of(&ingest_token),
        TokenHash::of(&read_token),
        TokenHash::of(&peer_token)
    );
    let ingest_text = format!(
        "role = \"ingest\"\n{}{tokens}",
        storage(moto.port, "node = \"ingest-a\"\n")
    );
    let ingest = Server::start(
        &dir.path().join("ingest-a"),
        Some(&config(dir.path(), "ingest-a", &ingest_text)),
        &[],
    );
    let query_node = |name: &str, peer: Option<&str>| {
        let mut text = format!(
            "role = \"query\"\n{}{tokens}",
            storage(moto.port, "refresh = \"1s\"\n")
        );
        if let Some(peer) = peer {
            text = text.replace("[auth]\n", &format!("[auth]\npeer_token = \"{peer}\"\n"));
        }
        Server::start(
            &dir.path().join(name),
            Some(&config(dir.path(), name, &text)),
            &[],
        )
    };
    let with_peer = query_node("query", Some(&peer_token));
    let without = query_node("query-stranger", None);

    let mut rng = StdRng::seed_from_u64(41);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let (spans, event_ids) = batch(&mut rng, now, 4);
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}/api/v1/spans", ingest.base_url))
        .bearer_auth(&ingest_token)
        .json(&spans)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let path = format!("/api/v1/events/{}", event_ids[0]);
    let journey = |server: &Server| {
        let request = client
            .get(format!("{}{path}", server.base_url))
            .bearer_auth(&read_token);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    // Not flushed: only the ingest node's head holds it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, answer) = journey(&with_peer).await;
        if status == 200
            && answer["hops"]
                .as_array()
                .is_some_and(|hops| !hops.is_empty())
        {
            assert_eq!(answer["unreadable_blocks"], json!([]), "{answer}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the query node with the peer token never found the event: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, answer) = journey(&without).await;
        let notes = answer["unreadable_blocks"].to_string();
        if notes.contains("nodes/ingest-a") {
            assert!(notes.contains("401"), "{notes}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the query node without the token never named the ingest node: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop((ingest, with_peer, without));
}
