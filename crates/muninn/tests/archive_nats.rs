//! The JetStream recorder through `muninn archive run --nats`: 100,000 messages with headers
//! published into a real nats-server while the recorder is SIGKILLed six times; afterwards
//! every stream sequence is in the archive exactly once, with the payload and header values
//! that were published (NATS keeps each header's values in order, not the order between names).

mod support;

use support::Recorder;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use muninn_archive::{Archive, Selection};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const MUNINN: &str = env!("CARGO_BIN_EXE_muninn");
const MESSAGES: usize = 100_000;
const KILLS: usize = 6;

fn recorder(url: &str, archive: &std::path::Path) -> Recorder {
    let child = Command::new(MUNINN)
        .args(["archive", "run", "--nats", url, "--jetstream", "ORDERS"])
        .args([
            "--group",
            "archive-crash-test",
            "--max-file-messages",
            "3000",
        ])
        .args(["--max-file-age", "1s"])
        .arg("--archive")
        .arg(archive)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the muninn binary starts");
    Recorder(child)
}

/// (payload, sorted (name, value) pairs): what must come back.
type Sent = (Vec<u8>, Vec<(String, String)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_jetstream_message_is_archived_exactly_once_across_sigkills() {
    let nats = support::Nats::start();
    nats.create_stream("ORDERS", &["orders.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = dir.path().join("archive");

    let jetstream = nats.jetstream().await;
    let producing = tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(15);
        let mut sent: BTreeMap<u64, Sent> = BTreeMap::new();
        let mut pending = Vec::new();
        for n in 0..MESSAGES {
            let mut payload = vec![0u8; rng.random_range(16..400)];
            rng.fill_bytes(&mut payload);
            let mut headers = async_nats::HeaderMap::new();
            let event_id = uuid::Uuid::new_v4().to_string();
            headers.insert("muninn-event-id", event_id.as_str());
            headers.insert("muninn-event-type", "order.created");
            headers.append("tag", "a");
            headers.append("tag", format!("n{n}").as_str());
            let mut pairs = vec![
                ("muninn-event-id".to_owned(), event_id),
                ("muninn-event-type".to_owned(), "order.created".to_owned()),
                ("tag".to_owned(), "a".to_owned()),
                ("tag".to_owned(), format!("n{n}")),
            ];
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let ack = jetstream
                .publish_with_headers(format!("orders.{}", n % 3), headers, payload.clone().into())
                .await
                .expect("publish");
            pending.push((ack, (payload, pairs)));
            if pending.len() == 500 {
                for (ack, message) in pending.drain(..) {
                    let ack = ack.await.expect("the server stored the message");
                    sent.insert(ack.sequence, message);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        for (ack, message) in pending.drain(..) {
            sent.insert(ack.await.unwrap().sequence, message);
        }
        sent
    });

    let mut rng = StdRng::seed_from_u64(0x0A75);
    let archive = Archive::open_local(&archive_dir).await.unwrap();
    let mut archived_at_kills = Vec::new();
    for kill in 0..KILLS {
        let mut recorder = recorder(&nats.url, &archive_dir);
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_500..5_000))).await;
        assert!(
            recorder.0.try_wait().unwrap().is_none(),
            "the recorder exited before kill {kill}"
        );
        recorder.0.kill().unwrap(); // SIGKILL
        recorder.0.wait().unwrap();
        let count: u64 = archive
            .streams()
            .await
            .unwrap()
            .iter()
            .map(|s| s.messages)
            .sum();
        archived_at_kills.push(count);
    }
    let sent = producing.await.unwrap();
    assert_eq!(sent.len(), MESSAGES);
    let progressed = archived_at_kills
        .windows(2)
        .filter(|pair| pair[1] > pair[0])
        .count();
    assert!(
        progressed >= 3 && archived_at_kills[0] > 0,
        "archived at the kills: {archived_at_kills:?}"
    );

    let mut last = recorder(&nats.url, &archive_dir);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let count: u64 = archive
            .streams()
            .await
            .unwrap()
            .iter()
            .map(|s| s.messages)
            .sum();
        if count >= MESSAGES as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of {MESSAGES} archived"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &last.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        last.0.wait().unwrap().success(),
        "the recorder stops cleanly on SIGTERM"
    );

    let all = Selection::new("ORDERS", None, 0, i64::MAX, Vec::new()).unwrap();
    let messages = archive.read(&all).await.unwrap();
    let sequences: Vec<u64> = messages.iter().map(|m| m.offset as u64).collect();
    assert_eq!(
        sequences,
        sent.keys().copied().collect::<Vec<_>>(),
        "every sequence exactly once"
    );
    for message in &messages {
        let (payload, pairs) = &sent[&(message.offset as u64)];
        assert_eq!(message.payload.as_deref(), Some(payload.as_slice()));
        let headers: Vec<(String, String)> = message
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    String::from_utf8(h.value.clone().unwrap()).unwrap(),
                )
            })
            .collect();
        assert_eq!(&headers, pairs, "sequence {}", message.offset);
        assert_eq!(message.event_type.as_deref(), Some("order.created"));
    }
}
