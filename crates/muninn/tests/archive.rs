//! The archive recorder against a real Kafka-API broker (tansu): 100,000 keyed messages with
//! binary, null and repeated headers across 6 partitions are produced while `muninn archive run`
//! is SIGKILLed at random moments; afterwards every message is in the archive exactly once (count
//! and checksum per partition equal to what the broker acknowledged), and `archive cat` prints
//! the same messages. Run twice: into a local directory, and into S3 (a real `moto_server`).

mod support;

use support::Recorder;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use muninn_archive::{Archive, Header, Message, Selection};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use xxhash_rust::xxh3::Xxh3;

const MUNINN: &str = env!("CARGO_BIN_EXE_muninn");
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;
const MESSAGES: usize = 100_000;
const KILLS: usize = 6;

/// What a message is, for comparing produced and archived: key, headers and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    key: Option<Vec<u8>>,
    headers: Vec<Header>,
    payload: Vec<u8>,
}

fn make(n: usize, rng: &mut StdRng) -> Sent {
    let mut payload = vec![0u8; rng.random_range(16..400)];
    rng.fill_bytes(&mut payload);
    let mut binary = vec![0u8; 8];
    rng.fill_bytes(&mut binary);
    let event_id = uuid::Uuid::new_v4().to_string();
    Sent {
        key: (!n.is_multiple_of(10))
            .then(|| format!("customer-{}", rng.random_range(0..5000)).into_bytes()),
        headers: vec![
            Header {
                name: "muninn-event-id".into(),
                value: Some(event_id.into_bytes()),
            },
            Header {
                name: "muninn-event-type".into(),
                value: Some(b"order.created".to_vec()),
            },
            Header {
                name: "blob".into(),
                value: Some(binary),
            },
            Header {
                name: "blob".into(),
                value: None,
            },
            Header {
                name: "seq".into(),
                value: Some(n.to_string().into_bytes()),
            },
        ],
        payload,
    }
}

fn checksum<'a>(messages: impl Iterator<Item = &'a Sent>) -> (usize, u64) {
    let mut hasher = Xxh3::new();
    let mut count = 0;
    for message in messages {
        count += 1;
        hasher.update(format!("{:?}", message.key).as_bytes());
        for header in &message.headers {
            hasher.update(header.name.as_bytes());
            hasher.update(format!("{:?}", header.value).as_bytes());
        }
        hasher.update(&message.payload);
    }
    (count, hasher.digest())
}

/// Each run joins a consumer group of its own: tansu 0.6 never expires the member of a
/// SIGKILLed consumer, so a group that lost one never gets its partitions back there (Kafka
/// expires it after `session.timeout.ms`). A new group starts from the earliest offset, which
/// also checks that the archive, not the group, decides what is already archived.
fn recorder(bootstrap: &str, place: &Place, run: usize) -> Recorder {
    let child = Command::new(MUNINN)
        .args(["archive", "run", "--kafka", bootstrap, "--topic", TOPIC])
        .args(["--group", &format!("archive-crash-test-{run}")])
        .args(["--max-file-messages", "3000"])
        .args(["--max-file-age", "1s"])
        .args(["--kafka-option", "session.timeout.ms=6000"])
        .args(["--kafka-option", "heartbeat.interval.ms=500"])
        .arg("--archive")
        .arg(&place.location)
        .envs(place.env.iter().map(|(k, v)| (k, v)))
        .env(
            "RUST_LOG",
            std::env::var("ARCHIVE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the muninn binary starts");
    Recorder(child)
}

async fn archived(archive: &Archive) -> Vec<Message> {
    let all = Selection::new(TOPIC, None, 0, i64::MAX, Vec::new()).unwrap();
    archive.read(&all).await.unwrap()
}

/// Where the recorders write: the `--archive` value, the environment the commands get (the
/// S3 settings), and the archive opened in the test process.
struct Place {
    location: String,
    env: Vec<(String, String)>,
    archive: Archive,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_archived_exactly_once_across_sigkills() {
    let kafka = support::Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("archive").display().to_string();
    let place = Place {
        archive: Archive::open_local(&location).await.unwrap(),
        location,
        env: Vec::new(),
    };
    scenario(&kafka, &place).await;
}

/// The same on a real S3 API (moto): the recorder's files and manifests are S3 objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_archived_exactly_once_across_sigkills_on_s3() {
    let kafka = support::Kafka::start();
    let moto = support::moto::Moto::start().await;
    moto.create_bucket("muninn-archive").await;
    let env: Vec<(String, String)> = [
        (
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", moto.port),
        ),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "muninn-test".into()),
        ("AWS_SECRET_ACCESS_KEY", "muninn-test-secret".into()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let options: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let place = Place {
        archive: Archive::open_s3("muninn-archive", Some("crash-test"), &options).unwrap(),
        location: "s3://muninn-archive/crash-test".into(),
        env,
    };
    scenario(&kafka, &place).await;
}

async fn scenario(kafka: &support::Kafka, place: &Place) {
    kafka.create_topic(TOPIC, PARTITIONS).await;

    // The producer: steady traffic over the whole test, every delivery remembered by
    // (partition, offset).
    let producer: FutureProducer = kafka
        .config()
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let produced: Arc<std::sync::Mutex<BTreeMap<(i32, i64), Sent>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let producing = {
        let produced = produced.clone();
        let done = done.clone();
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(15);
            let mut pending = Vec::new();
            for n in 0..MESSAGES {
                let sent = make(n, &mut rng);
                let mut headers = OwnedHeaders::new();
                for header in &sent.headers {
                    headers = headers.insert(KafkaHeader {
                        key: &header.name,
                        value: header.value.as_deref(),
                    });
                }
                let mut record = FutureRecord::<[u8], [u8]>::to(TOPIC)
                    .payload(&sent.payload)
                    .headers(headers)
                    .partition((n % PARTITIONS as usize) as i32);
                if let Some(key) = &sent.key {
                    record = record.key(key);
                }
                let delivery = producer.send_result(record).expect("queue a record");
                pending.push((delivery, sent));
                if pending.len() == 500 {
                    for (delivery, sent) in pending.drain(..) {
                        let delivery = delivery
                            .await
                            .expect("delivery report")
                            .expect("the broker acknowledged the record");
                        produced
                            .lock()
                            .unwrap()
                            .insert((delivery.partition, delivery.offset), sent);
                    }
                    // About 100,000 messages in 20 s.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            for (delivery, sent) in pending.drain(..) {
                let delivery = delivery.await.unwrap().unwrap();
                produced
                    .lock()
                    .unwrap()
                    .insert((delivery.partition, delivery.offset), sent);
            }
            producer.flush(Duration::from_secs(30)).unwrap();
            done.store(true, Ordering::SeqCst);
        })
    };

    // Kill the recorder at random moments while the traffic flows.
    let mut rng = StdRng::seed_from_u64(0xA5C1);
    let mut archived_at_kills = Vec::new();
    for kill in 0..KILLS {
        let mut recorder = recorder(&kafka.bootstrap, place, kill);
        let child = &mut recorder.0;
        let wait = Duration::from_millis(rng.random_range(1_500..5_000));
        tokio::time::sleep(wait).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "the recorder exited by itself before kill {kill}"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let archive = &place.archive;
        let count: u64 = archive
            .streams()
            .await
            .unwrap()
            .iter()
            .map(|s| s.messages)
            .sum();
        archived_at_kills.push(count);
    }
    // The kills landed while the recorder was working: most runs archived something first.
    let progressed = archived_at_kills
        .windows(2)
        .filter(|pair| pair[1] > pair[0])
        .count();
    assert!(
        progressed >= 3 && archived_at_kills[0] > 0,
        "archived counts at the kills: {archived_at_kills:?}"
    );
    producing.await.unwrap();
    assert!(done.load(Ordering::SeqCst));

    // A last run archives the rest; stop it with SIGTERM once everything is in.
    let mut last = recorder(&kafka.bootstrap, place, KILLS);
    let child = &mut last.0;
    let archive = &place.archive;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let count: u64 = archive
            .streams()
            .await
            .unwrap()
            .iter()
            .map(|stream| stream.messages)
            .sum();
        if count >= MESSAGES as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of {MESSAGES} messages archived 120 s after the last restart"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        child.wait().unwrap().success(),
        "the recorder stops cleanly on SIGTERM"
    );

    let produced = produced.lock().unwrap().clone();
    assert_eq!(produced.len(), MESSAGES);
    let messages = archived(archive).await;
    assert_eq!(messages.len(), MESSAGES, "every message exactly once");
    let mut by_partition: BTreeMap<i32, Vec<(i64, Sent)>> = BTreeMap::new();
    for message in &messages {
        by_partition.entry(message.partition).or_default().push((
            message.offset,
            Sent {
                key: message.key.clone(),
                headers: message.headers.clone(),
                payload: message.payload.clone().unwrap_or_default(),
            },
        ));
    }
    assert_eq!(by_partition.len(), PARTITIONS as usize);
    for (partition, archived) in &by_partition {
        let offsets: Vec<i64> = archived.iter().map(|(offset, _)| *offset).collect();
        let expected_offsets: Vec<i64> = produced
            .keys()
            .filter(|(p, _)| p == partition)
            .map(|(_, offset)| *offset)
            .collect();
        assert_eq!(offsets, expected_offsets, "partition {partition}: offsets");
        let expected = checksum(
            produced
                .iter()
                .filter(|((p, _), _)| p == partition)
                .map(|(_, sent)| sent),
        );
        let actual = checksum(archived.iter().map(|(_, sent)| sent));
        assert_eq!(
            actual, expected,
            "partition {partition}: count and checksum"
        );
    }
    // The producer's event ids are columns of their own.
    assert!(messages.iter().all(|message| message.event_id.is_some()
        && message.event_type.as_deref() == Some("order.created")));

    // `archive cat` prints the same messages of a partition, in order.
    let output = Command::new(MUNINN)
        .args(["archive", "cat", "--stream", TOPIC, "--partition", "4"])
        .arg("--archive")
        .arg(&place.location)
        .envs(place.env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Vec<Message> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(n, line)| muninn_archive::from_json(line, n + 1).unwrap())
        .collect();
    let expected: Vec<Message> = messages.into_iter().filter(|m| m.partition == 4).collect();
    assert_eq!(printed, expected);

    // `muninn replay` of that partition into a topic it creates: a dry run first, then the
    // messages byte for byte, in order, each with its replay marker.
    let replay = |extra: &[&str]| {
        let output = Command::new(MUNINN)
            .args(["replay", "--stream", TOPIC, "--partition", "4", "--create"])
            .arg("--to")
            .arg(format!("kafka://{}/orders-replayed", kafka.bootstrap))
            .arg("--archive")
            .arg(&place.location)
            .envs(place.env.iter().map(|(k, v)| (k, v)))
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        stderr
    };
    let dry = replay(&["--dry-run"]);
    assert!(
        dry.contains(&format!("would replay {} messages", expected.len())),
        "{dry}"
    );
    let done = replay(&[]);
    assert!(
        done.contains(&format!("replayed {} messages", expected.len())),
        "{done}"
    );
    let replayed = consume(kafka, "orders-replayed", 4, expected.len());
    for (archived, again) in expected.iter().zip(&replayed) {
        let (marker, headers) = again.headers.split_last().unwrap();
        assert_eq!(marker.name, "muninn-replayed-from");
        assert_eq!(
            marker.value.as_deref(),
            Some(format!("kafka://{TOPIC}/4/{}", archived.offset).as_bytes())
        );
        assert_eq!(headers, archived.headers.as_slice());
        assert_eq!(again.key, archived.key);
        assert_eq!(again.payload, archived.payload);
    }
}

/// Reads `count` messages of one partition from the beginning.
fn consume(kafka: &support::Kafka, topic: &str, partition: i32, count: usize) -> Vec<Message> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = kafka
        .config()
        .set("group.id", "archive-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut messages = Vec::new();
    while messages.len() < count {
        assert!(
            Instant::now() < deadline,
            "read {} of {count}",
            messages.len()
        );
        let Some(record) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        // The recorder's own conversion: what was replayed reads back as it was archived.
        messages.push(muninn_archive::from_kafka_record(&record.unwrap()));
    }
    messages
}
