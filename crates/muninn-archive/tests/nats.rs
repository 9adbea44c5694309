//! The NATS JetStream recorder against a real `nats-server`: every message lands exactly once,
//! in sequence order, payload and headers byte for byte, acked only once archived; a recorder
//! that crashed is followed by one that loses and repeats nothing; a pattern picks up a stream
//! created while recording.

#[path = "../../muninn-sdk/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use async_nats::jetstream::consumer::AckPolicy;
use muninn_archive::{
    Archive, Header, Message, NatsSource, RecorderOptions, RecorderStats, Selection, record_nats,
};
use support::Nats;

const DURABLE: &str = "muninn-archive";

/// Small files, closed soon, so that a test sees many of them in a few seconds.
fn small_files() -> RecorderOptions {
    RecorderOptions {
        max_file_messages: 700,
        max_file_age: Duration::from_millis(500),
        max_backoff: Duration::from_secs(1),
        ..RecorderOptions::default()
    }
}

fn source(nats: &Nats, streams: &[&str]) -> NatsSource {
    NatsSource {
        url: nats.url.clone(),
        streams: streams.iter().map(|stream| (*stream).to_owned()).collect(),
        durable: DURABLE.to_owned(),
    }
}

/// What the test published as message `n`, and what the archive should hold of it.
struct Published {
    subject: String,
    payload: Vec<u8>,
    /// In the archive's order: names sorted, each name's values in the order they were sent.
    headers: Vec<Header>,
    event_id: String,
    trace_id: String,
}

fn published(stream_subject: &str, n: u64) -> Published {
    let mut payload = format!("{{\"order\":{n}}}").into_bytes();
    payload.extend([0, 0xff, n as u8]);
    let trace_id = format!(
        "{:032x}",
        (0x4bf9_2f35_77b3_4da6_u128 << 64) | (u128::from(n) + 1)
    );
    let header = |name: &str, value: String| Header {
        name: name.to_owned(),
        value: Some(value.into_bytes()),
    };
    Published {
        subject: format!(
            "{stream_subject}.{}",
            ["created", "paid", "shipped"][n as usize % 3]
        ),
        payload,
        headers: vec![
            header("muninn-event-id", format!("evt-{n}")),
            header("muninn-event-type", "order.created".to_owned()),
            header("tag", "first".to_owned()),
            header("tag", format!("second-{n}")),
            header("tag", "third".to_owned()),
            header("tenant", "acme".to_owned()),
            header(
                "traceparent",
                format!("00-{trace_id}-{:016x}-01", 0x00f0_67aa_0ba9_02b7_u64 + n),
            ),
        ],
        event_id: format!("evt-{n}"),
        trace_id,
    }
}

/// Publishes messages `range` (1-based, the stream's sequences when it starts empty) and
/// waits until the stream has stored them all.
async fn publish(
    jetstream: &jetstream::Context,
    stream_subject: &str,
    range: std::ops::RangeInclusive<u64>,
) {
    let mut acks = Vec::new();
    for n in range {
        let message = published(stream_subject, n);
        let mut headers = HeaderMap::new();
        for header in &message.headers {
            headers.append(
                header.name.as_str(),
                String::from_utf8(header.value.clone().unwrap()).unwrap(),
            );
        }
        acks.push(
            jetstream
                .publish_with_headers(message.subject, headers, message.payload.into())
                .await
                .expect("publish"),
        );
    }
    for ack in acks {
        ack.await.expect("the stream stores the message");
    }
}

/// Waits up to 60 s for `done`.
async fn wait_for(what: &str, stats: &RecorderStats, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn archived(archive: &Archive, stream: &str) -> Vec<Message> {
    archive
        .read(&Selection::new(stream, None, 0, i64::MAX, Vec::new()).unwrap())
        .await
        .unwrap()
}

/// Asserts that the archive holds messages `1..=count` of `stream`, each once, in order, as
/// published.
fn assert_exactly_once(messages: &[Message], stream: &str, stream_subject: &str, count: u64) {
    let sequences: Vec<i64> = messages.iter().map(|message| message.offset).collect();
    let expected: Vec<i64> = (1..=count as i64).collect();
    assert_eq!(sequences, expected, "each message once, in sequence order");
    for message in messages {
        let sent = published(stream_subject, message.offset as u64);
        assert_eq!(message.stream, stream);
        assert_eq!(message.partition, 0);
        assert_eq!(message.subject.as_deref(), Some(sent.subject.as_str()));
        assert_eq!(message.payload.as_deref(), Some(sent.payload.as_slice()));
        assert_eq!(message.key, None);
        assert_eq!(message.headers, sent.headers, "message {}", message.offset);
        assert_eq!(message.event_id.as_deref(), Some(sent.event_id.as_str()));
        assert_eq!(message.event_type.as_deref(), Some("order.created"));
        assert_eq!(message.trace_id.as_deref(), Some(sent.trace_id.as_str()));
    }
}

async fn ack_floor(nats: &Nats, stream: &str) -> u64 {
    nats.jetstream()
        .await
        .get_stream(stream)
        .await
        .unwrap()
        .consumer_info(DURABLE)
        .await
        .unwrap()
        .ack_floor
        .stream_sequence
}

#[tokio::test]
async fn every_message_is_archived_once_with_its_headers_and_acked_after() {
    let nats = Nats::start();
    nats.create_stream("orders", &["orders.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let stats = Arc::new(RecorderStats::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let recording = tokio::spawn(record_nats(
        archive.clone(),
        source(&nats, &["orders"]),
        small_files(),
        stats.clone(),
        async {
            let _ = stopped.await;
        },
    ));

    publish(&nats.jetstream().await, "orders", 1..=5_000).await;
    wait_for("5,000 messages archived", &stats, || {
        stats.messages_archived.load(Ordering::Relaxed) >= 5_000
    })
    .await;
    stop.send(()).unwrap();
    recording.await.unwrap().unwrap();

    assert_exactly_once(
        &archived(&archive, "orders").await,
        "orders",
        "orders",
        5_000,
    );
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.messages_archived, 5_000);
    assert!(snapshot.files_written >= 8, "{snapshot:?}");
    assert_eq!(snapshot.broker_errors, 0, "{snapshot:?}");
    assert!(snapshot.healthy, "{snapshot:?}");
    assert_eq!(ack_floor(&nats, "orders").await, 5_000);
    let consumer = nats
        .jetstream()
        .await
        .get_stream("orders")
        .await
        .unwrap()
        .consumer_info(DURABLE)
        .await
        .unwrap();
    assert_eq!(consumer.config.ack_policy, AckPolicy::All);
    // Twice the file age and 30 s: a file's messages stay unacked until it is written.
    assert_eq!(consumer.config.ack_wait, Duration::from_secs(31));
    assert_eq!(consumer.config.max_ack_pending, -1, "unlimited");
}

#[tokio::test]
async fn a_recorder_after_a_crash_archives_the_rest_exactly_once() {
    let nats = Nats::start();
    nats.create_stream("payments", &["payments.>"]).await;
    let jetstream = nats.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    publish(&jetstream, "payments", 1..=3_000).await;

    // Files close at 700 messages only: four land, and the last 200 are buffered (and delivered,
    // unacked) when the recorder dies without a shutdown.
    let first_stats = Arc::new(RecorderStats::new());
    let crashing = record_nats(
        archive.clone(),
        source(&nats, &["payments"]),
        RecorderOptions {
            max_file_age: Duration::from_secs(3600),
            ..small_files()
        },
        first_stats.clone(),
        std::future::pending(),
    );
    let four_files_acked = async {
        wait_for("four files", &first_stats, || {
            first_stats.messages_archived.load(Ordering::Relaxed) >= 2_800
        })
        .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ack_floor(&nats, "payments").await < 2_800 {
            assert!(Instant::now() < deadline, "the four files are not acked");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        result = crashing => panic!("the recorder stopped by itself: {result:?}"),
        () = four_files_acked => {}
    }
    assert_eq!(archived(&archive, "payments").await.len(), 2_800);
    // Acked up to the last message of the last file, not further.
    assert_eq!(ack_floor(&nats, "payments").await, 2_800);
    // Let the server see the dead connection go before more messages come.
    tokio::time::sleep(Duration::from_millis(200)).await;
    publish(&jetstream, "payments", 3_001..=5_000).await;

    let stats = Arc::new(RecorderStats::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let recording = tokio::spawn(record_nats(
        archive.clone(),
        source(&nats, &["payments"]),
        small_files(),
        stats.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    wait_for("the other 2,200 messages archived", &stats, || {
        stats.messages_archived.load(Ordering::Relaxed) >= 2_200
    })
    .await;
    stop.send(()).unwrap();
    recording.await.unwrap().unwrap();

    assert_exactly_once(
        &archived(&archive, "payments").await,
        "payments",
        "payments",
        5_000,
    );
    assert_eq!(stats.snapshot().messages_archived, 2_200);
    assert_eq!(ack_floor(&nats, "payments").await, 5_000);
}

#[tokio::test]
async fn a_pattern_picks_up_a_stream_created_while_recording() {
    let nats = Nats::start();
    nats.create_stream("events-eu", &["events-eu.>"]).await;
    nats.create_stream("audit", &["audit.>"]).await;
    let jetstream = nats.jetstream().await;
    publish(&jetstream, "events-eu", 1..=10).await;
    publish(&jetstream, "audit", 1..=5).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let stats = Arc::new(RecorderStats::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let recording = tokio::spawn(record_nats(
        archive.clone(),
        source(&nats, &["events-*"]),
        small_files(),
        stats.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    wait_for("the first stream archived", &stats, || {
        stats.messages_archived.load(Ordering::Relaxed) >= 10
    })
    .await;

    nats.create_stream("events-us", &["events-us.>"]).await;
    publish(&jetstream, "events-us", 1..=20).await;
    // The streams are listed again every 10 s.
    wait_for("the new stream archived", &stats, || {
        stats.messages_archived.load(Ordering::Relaxed) >= 30
    })
    .await;
    stop.send(()).unwrap();
    recording.await.unwrap().unwrap();

    assert_exactly_once(
        &archived(&archive, "events-eu").await,
        "events-eu",
        "events-eu",
        10,
    );
    assert_exactly_once(
        &archived(&archive, "events-us").await,
        "events-us",
        "events-us",
        20,
    );
    let streams: Vec<String> = archive
        .streams()
        .await
        .unwrap()
        .into_iter()
        .map(|summary| summary.stream)
        .collect();
    assert_eq!(streams, ["events-eu", "events-us"], "audit does not match");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_consumers_ack_floors_are_sampled_as_group_positions() {
    let nats = Nats::start();
    nats.create_stream("shipments", &["shipments.>"]).await;
    let jetstream = nats.jetstream().await;
    publish(&jetstream, "shipments", 1..=10).await;
    // A service's durable consumer that acknowledged the first 4 messages.
    let stream = jetstream.get_stream("shipments").await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("dispatch".into()),
            ack_policy: AckPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(4).messages().await.unwrap();
    let mut last = None;
    while let Some(message) = futures::StreamExt::next(&mut batch).await {
        last = Some(message.unwrap());
    }
    last.expect("4 messages").double_ack().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let stats = Arc::new(RecorderStats::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let recorder = tokio::spawn(record_nats(
        archive.clone(),
        source(&nats, &["ship*"]),
        RecorderOptions {
            group_positions_every: Some(Duration::from_millis(200)),
            ..small_files()
        },
        stats.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let positions = archive
            .group_offsets_at("shipments", "dispatch", None)
            .await
            .unwrap();
        if positions.get(&0).map(|position| position.offset) == Some(5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dispatch's position in 30 s: {positions:?} {:?}",
            stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("every message archived", &stats, || {
        stats.messages_archived.load(Ordering::Relaxed) == 10
    })
    .await;
    stop.send(()).unwrap();
    recorder.await.unwrap().unwrap();
    let all = archive
        .group_positions("shipments", None, None)
        .await
        .unwrap();
    assert!(
        all.iter().all(|position| position.group == "dispatch"),
        "the recorder's own durable is left out: {all:?}"
    );
}
