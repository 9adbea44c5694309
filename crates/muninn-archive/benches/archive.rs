//! Archive and replay throughput on real brokers started here (tansu for the Kafka API,
//! nats-server for JetStream): 1 KB messages as fleets send them (JSON payloads with random
//! UUIDs, random trace and span ids in `traceparent`, event headers, a UUID key), across 6
//! partitions. Prints, in this order: the archive's own ceiling (Parquet encoding and durable
//! commits, no broker), the broker's serving rate (a bare rdkafka consumer reading the topic),
//! the recorder from tansu into a local archive (and into S3 when `ARCHIVE_BENCH_S3` names a
//! bucket, `s3://BUCKET/PREFIX`, of a running S3 API set up by the `AWS_*` variables, e.g. a
//! `moto_server`), then replay into tansu and into JetStream.
//!
//! `cargo bench -p muninn-archive --features kafka,nats --bench archive`; `ARCHIVE_BENCH_MESSAGES`
//! sets the count (default 300,000).

#[path = "../../muninn-sdk/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use muninn_archive::{
    Archive, Header, KafkaSource, Message, RecorderOptions, RecorderStats, ReplayOptions,
    Selection, SourceBroker, Target, TimestampType,
};
use rand::{Rng, RngCore};
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 6;
const PAYLOAD_BYTES: usize = 1024;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

/// One message as a service would publish it: a 1 KB JSON order with random ids.
fn workload(count: usize) -> Vec<(Vec<u8>, Vec<Header>, Vec<u8>)> {
    let mut rng = rand::rng();
    (0..count)
        .map(|_| {
            let event_id = uuid::Uuid::new_v4().to_string();
            let mut trace = [0u8; 16];
            let mut span = [0u8; 8];
            rng.fill_bytes(&mut trace);
            rng.fill_bytes(&mut span);
            let mut payload = format!(
                r#"{{"event_id":"{event_id}","order_id":"{}","customer_id":"{}","total_cents":{},"currency":"EUR","items":["#,
                uuid::Uuid::new_v4(),
                uuid::Uuid::new_v4(),
                rng.random_range(100..1_000_000)
            );
            while payload.len() < PAYLOAD_BYTES - 120 {
                payload.push_str(&format!(
                    r#"{{"sku":"{}","quantity":{},"price_cents":{}}},"#,
                    uuid::Uuid::new_v4(),
                    rng.random_range(1..10),
                    rng.random_range(100..100_000)
                ));
            }
            payload.pop();
            payload.push_str("]}");
            payload.truncate(PAYLOAD_BYTES);
            let headers = vec![
                header("muninn-event-id", event_id.as_bytes()),
                header("muninn-event-type", b"order.created"),
                header("muninn-event-schema", b"order.created/v3"),
                header(
                    "traceparent",
                    format!("00-{}-{}-01", hex(&trace), hex(&span)).as_bytes(),
                ),
            ];
            (
                uuid::Uuid::new_v4().to_string().into_bytes(),
                headers,
                payload.into_bytes(),
            )
        })
        .collect()
}

fn header(name: &str, value: &[u8]) -> Header {
    Header {
        name: name.to_owned(),
        value: Some(value.to_vec()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// CPU seconds (user + system) a process used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |n: usize| {
        fields
            .get(n)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU used by the broker and by this process over a phase, to name the bottleneck.
struct Cpu {
    broker: String,
    started: (f64, f64, Instant),
}

impl Cpu {
    fn start(broker: u32) -> Cpu {
        let broker = broker.to_string();
        let started = (cpu_seconds(&broker), cpu_seconds("self"), Instant::now());
        Cpu { broker, started }
    }

    fn print(&self, broker_name: &str) {
        let wall = self.started.2.elapsed().as_secs_f64();
        println!(
            "  CPU over {wall:.1} s: {broker_name} {:.0}% of a core, this process (client) {:.0}% (2 cores = 200%)",
            (cpu_seconds(&self.broker) - self.started.0) / wall * 100.0,
            (cpu_seconds("self") - self.started.1) / wall * 100.0
        );
    }
}

fn rate(label: &str, messages: usize, bytes: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{label:<58} {:>10.0} messages/s {:>8.1} MB/s   ({messages} messages, {:.1} MB, {seconds:.2} s)",
        messages as f64 / seconds,
        bytes as f64 / seconds / 1e6,
        bytes as f64 / 1e6
    );
}

async fn run() {
    let count: usize = std::env::var("ARCHIVE_BENCH_MESSAGES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(300_000);
    let workload = workload(count);
    let message_bytes: usize = workload
        .iter()
        .map(|(key, headers, payload)| {
            key.len()
                + payload.len()
                + headers
                    .iter()
                    .map(|h| h.name.len() + h.value.as_ref().map_or(0, Vec::len))
                    .sum::<usize>()
        })
        .sum();
    println!(
        "workload: {count} messages of {PAYLOAD_BYTES} B JSON payloads, random UUID keys and event ids, random traceparent; {PARTITIONS} partitions; {:.1} MB of keys, headers and payloads",
        message_bytes as f64 / 1e6
    );

    // 1. The archive alone: encode and commit durably, files of 50,000 messages per partition.
    let dir = tempfile::tempdir().expect("a temp dir");
    let archive = Archive::open_local(dir.path().join("ceiling"))
        .await
        .expect("an archive");
    let now_ms = muninn_model::now_unix_nanos() / 1_000_000;
    let messages: Vec<Message> = workload
        .iter()
        .enumerate()
        .map(|(n, (key, headers, payload))| {
            Message::from_broker(
                SourceBroker::Kafka,
                "bench".into(),
                None,
                (n % PARTITIONS as usize) as i32,
                (n / PARTITIONS as usize) as i64,
                now_ms,
                TimestampType::CreateTime,
                Some(key.clone()),
                headers.clone(),
                Some(payload.clone()),
            )
        })
        .collect();
    let started = Instant::now();
    let stats = Arc::new(RecorderStats::new());
    let mut recorder =
        muninn_archive::Recorder::new(archive.clone(), file_options(), stats.clone());
    for message in messages {
        recorder.offer(message).await;
    }
    recorder.commit_all().await;
    rate(
        "archive ceiling: the recorder without a broker, local disk",
        count,
        message_bytes,
        started.elapsed(),
    );
    let disk: u64 = archive
        .streams()
        .await
        .expect("list")
        .iter()
        .flat_map(|stream| &stream.partitions)
        .map(|partition| partition.bytes)
        .sum();
    println!(
        "  on disk: {:.1} MB ({:.2} of the message bytes)",
        disk as f64 / 1e6,
        disk as f64 / message_bytes as f64
    );

    // 2. Produce into tansu (not the figure; the figures read it back).
    let kafka = support::Kafka::start();
    kafka.create_topic("bench", PARTITIONS).await;
    let producer: FutureProducer = kafka
        .config()
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("a producer");
    let started = Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for (n, (key, headers, payload)) in workload.iter().enumerate() {
        let mut kafka_headers = OwnedHeaders::new_with_capacity(headers.len());
        for header in headers {
            kafka_headers = kafka_headers.insert(KafkaHeader {
                key: &header.name,
                value: header.value.as_deref(),
            });
        }
        let record = FutureRecord::to("bench")
            .key(key.as_slice())
            .payload(payload.as_slice())
            .headers(kafka_headers)
            .partition((n % PARTITIONS as usize) as i32);
        pending.push(producer.send_result(record).expect("queue a record"));
        if pending.len() == 10_000 {
            for delivery in pending.drain(..) {
                delivery.await.expect("report").expect("delivered");
            }
        }
    }
    for delivery in pending.drain(..) {
        delivery.await.expect("report").expect("delivered");
    }
    rate(
        "(setup) produce into tansu, rdkafka",
        count,
        message_bytes,
        started.elapsed(),
    );

    // 3. The broker's serving rate: a bare consumer reading everything.
    let consumer: StreamConsumer = kafka
        .config()
        .set("group.id", "bench-baseline")
        // The recorder's fetch settings (src/kafka.rs).
        .set("fetch.wait.max.ms", "10")
        .set("max.partition.fetch.bytes", "8388608")
        .set("fetch.max.bytes", "67108864")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    consumer.subscribe(&["bench"]).expect("subscribe");
    let cpu = Cpu::start(kafka.process().pid());
    let started = Instant::now();
    let mut read = 0;
    let mut first = None;
    while read < count {
        let message = consumer.recv().await.expect("a message");
        first.get_or_insert_with(Instant::now);
        std::hint::black_box(message.payload());
        read += 1;
    }
    let joined = first.map_or(Duration::ZERO, |first| first - started);
    rate(
        "baseline: bare rdkafka consumer reading tansu (after join)",
        count,
        message_bytes,
        started.elapsed() - joined,
    );
    cpu.print("tansu");
    drop(consumer);

    // 4. The recorder, tansu → local archive.
    let local = Archive::open_local(dir.path().join("recorded"))
        .await
        .expect("an archive");
    let cpu = Cpu::start(kafka.process().pid());
    record(
        &kafka,
        local.clone(),
        "recorder: tansu -> local disk",
        count,
        message_bytes,
        "bench-local",
    )
    .await;
    cpu.print("tansu");
    if let Ok(url) = std::env::var("ARCHIVE_BENCH_S3") {
        match Archive::open(&url).await {
            Ok(s3) => {
                let cpu = Cpu::start(kafka.process().pid());
                record(
                    &kafka,
                    s3,
                    &format!("recorder: tansu -> {url}"),
                    count,
                    message_bytes,
                    "bench-s3",
                )
                .await;
                cpu.print("tansu");
            }
            Err(error) => println!("ARCHIVE_BENCH_S3={url}: {error}"),
        }
    }

    // 5. Replay from the archive into tansu and JetStream.
    let all = Selection::new("bench", None, 0, i64::MAX, Vec::new()).expect("a selection");
    let archived = local.read(&all).await.expect("read the archive");
    assert_eq!(archived.len(), count, "the recorder archived every message");
    let target =
        Target::parse(&format!("kafka://{}/bench-replayed", kafka.bootstrap)).expect("a target");
    let options = ReplayOptions {
        create: true,
        ..ReplayOptions::default()
    };
    let cpu = Cpu::start(kafka.process().pid());
    let started = Instant::now();
    let report = muninn_archive::replay(archived.clone(), &target, &options, &|_| {})
        .await
        .expect("replay into tansu");
    rate(
        "replay: archive -> tansu",
        report.sent as usize,
        report.bytes as usize,
        started.elapsed(),
    );
    cpu.print("tansu");
    drop(kafka);

    let nats = support::Nats::start();
    // Headers archived from Kafka are UTF-8 here, so they can go to NATS byte for byte.
    let target = Target::parse(&format!("{}/bench.replayed", nats.url)).expect("a target");
    let cpu = Cpu::start(nats.process().pid());
    let started = Instant::now();
    let report = muninn_archive::replay(archived, &target, &options, &|_| {})
        .await
        .expect("replay into JetStream");
    rate(
        "replay: archive -> JetStream (file storage)",
        report.sent as usize,
        report.bytes as usize,
        started.elapsed(),
    );
    cpu.print("nats-server");
}

/// Files of 16 MiB (`ARCHIVE_BENCH_FILE_MB`), so that the steady state includes many closes and a run does not end waiting
/// for the age bound.
fn file_options() -> RecorderOptions {
    let file_mb: usize = std::env::var("ARCHIVE_BENCH_FILE_MB")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(16);
    RecorderOptions {
        max_file_bytes: file_mb << 20,
        max_file_age: Duration::from_secs(5),
        ..RecorderOptions::default()
    }
}

async fn record(
    kafka: &support::Kafka,
    archive: Archive,
    label: &str,
    count: usize,
    message_bytes: usize,
    group: &str,
) {
    let stats = Arc::new(RecorderStats::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = file_options();
    let source = KafkaSource {
        bootstrap: kafka.bootstrap.clone(),
        group: group.to_owned(),
        topics: vec!["bench".into()],
        settings: Vec::new(),
    };
    let task = tokio::spawn(muninn_archive::record_kafka(
        archive,
        source,
        options,
        stats.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let started = Instant::now();
    let mut first = None;
    // Until every message is received, then a shutdown, which writes what is buffered: the
    // figure is the time until all of it is durable, without waiting for the files' age bound.
    while stats.messages_received.load(Ordering::Relaxed) < count as u64 {
        if first.is_none() && stats.messages_received.load(Ordering::Relaxed) > 0 {
            first = Some(Instant::now());
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "recorder stalled: {:?}",
            stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(());
    task.await
        .expect("the recorder task")
        .expect("the recorder");
    let total = started.elapsed();
    assert_eq!(
        stats.messages_archived.load(Ordering::Relaxed),
        count as u64
    );
    let joined = first.map_or(Duration::ZERO, |first| first - started);
    rate(
        &format!("{label} (after the group join)"),
        count,
        message_bytes,
        total - joined,
    );
    println!(
        "  group join and first fetch: {:.2} s",
        joined.as_secs_f64()
    );
    let snapshot = stats.snapshot();
    println!(
        "  {} files, {} object-store errors, {} broker errors",
        snapshot.files_written, snapshot.object_store_errors, snapshot.broker_errors
    );
}
