//! DuckDB reads the archive directly, as docs/archive.md says: the files under
//! `v1/stream=…/dt=…/hour=…/` with hive partitioning give the same messages, byte for byte,
//! as the archive's own reader (which `muninn archive cat` prints). Runs the real DuckDB of
//! the test venv (`MUNINN_PYTHON`, installed by `scripts/python.sh`).

use std::process::Command;

use base64::Engine as _;
use muninn_archive::{Archive, Header, Message, Selection, SourceBroker, TimestampType};

const HOUR_MS: i64 = 3_600_000;

fn python() -> String {
    std::env::var("MUNINN_PYTHON").unwrap_or_else(|_| {
        panic!("MUNINN_PYTHON is not set: run the tests with `bash scripts/test.sh`, which installs the venv with DuckDB")
    })
}

fn message(stream: &str, partition: i32, offset: i64, timestamp_ms: i64) -> Message {
    let binary: Vec<u8> = (0..8)
        .map(|n| (offset as u8).wrapping_mul(31).wrapping_add(n))
        .collect();
    Message::from_broker(
        SourceBroker::Kafka,
        stream.into(),
        None,
        partition,
        offset,
        timestamp_ms,
        TimestampType::CreateTime,
        (offset % 5 != 0).then(|| format!("key-{offset}").into_bytes()),
        vec![
            Header {
                name: "muninn-event-id".into(),
                value: Some(format!("{stream}-{partition}-{offset}").into_bytes()),
            },
            Header {
                name: "muninn-event-type".into(),
                value: Some(b"order.created".to_vec()),
            },
            Header {
                name: "blob".into(),
                value: Some(binary.clone()),
            },
            Header {
                name: "blob".into(),
                value: None,
            },
        ],
        Some(
            [
                br#"{"n":"#.as_slice(),
                offset.to_string().as_bytes(),
                b"}",
                &binary,
            ]
            .concat(),
        ),
    )
}

#[tokio::test]
async fn duckdb_reads_the_same_messages_as_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let base = 1_796_000_000_000 - 1_796_000_000_000 % HOUR_MS;
    for stream in ["orders", "payments.v2"] {
        for partition in 0..3 {
            // Two hours, two files in the first.
            let first: Vec<Message> = (0..40)
                .map(|o| message(stream, partition, o, base + o * 1000))
                .collect();
            let second: Vec<Message> = (40..70)
                .map(|o| message(stream, partition, o, base + o * 1000))
                .collect();
            let third: Vec<Message> = (70..90)
                .map(|o| message(stream, partition, o, base + HOUR_MS + o))
                .collect();
            for file in [first, second, third] {
                archive.commit(&file).await.unwrap();
            }
        }
    }

    let script = r#"
import base64, json, sys, duckdb
rows = duckdb.connect().execute(
    "SELECT stream, partition, \"offset\", epoch_ms(timestamp) AS timestamp_ms, key, "
    "headers, payload, event_id, dt, hour "
    "FROM read_parquet(? || '/v1/*/*/*/*.parquet', hive_partitioning = true) "
    "WHERE stream = 'payments.v2' ORDER BY partition, \"offset\"",
    [sys.argv[1]],
).fetchall()
b64 = lambda b: None if b is None else base64.b64encode(b).decode()
for stream, partition, offset, ts, key, headers, payload, event_id, dt, hour in rows:
    print(json.dumps({
        "stream": stream, "partition": partition, "offset": offset, "timestamp_ms": ts,
        "key": b64(key), "payload": b64(payload), "event_id": event_id,
        "headers": [[h["name"], b64(h["value"])] for h in headers],
        "dt": str(dt), "hour": str(hour),
    }))
"#;
    let output = Command::new(python())
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();

    let selection = Selection::new("payments.v2", None, 0, i64::MAX, Vec::new()).unwrap();
    let expected = archive.read(&selection).await.unwrap();
    assert_eq!(rows.len(), expected.len());
    assert_eq!(rows.len(), 3 * 90);
    let b64 = |bytes: &Option<Vec<u8>>| match bytes {
        Some(bytes) => {
            serde_json::Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        None => serde_json::Value::Null,
    };
    for (row, message) in rows.iter().zip(&expected) {
        assert_eq!(row["stream"], "payments.v2");
        assert_eq!(row["partition"], message.partition);
        assert_eq!(row["offset"], message.offset);
        assert_eq!(row["timestamp_ms"], message.timestamp_ms);
        assert_eq!(row["key"], b64(&message.key));
        assert_eq!(row["payload"], b64(&message.payload));
        assert_eq!(row["event_id"], message.event_id.clone().unwrap());
        let headers: Vec<serde_json::Value> = message
            .headers
            .iter()
            .map(|header| serde_json::json!([header.name, b64(&header.value)]))
            .collect();
        assert_eq!(row["headers"], serde_json::Value::from(headers));
        // The hive columns say where the file lives: the hour of its first message.
        let hour = muninn_archive::Hour::of(message.timestamp_ms);
        assert_eq!(
            row["hour"].as_str().unwrap().parse::<u32>().unwrap() as i64,
            hour.0 % 86_400_000 / HOUR_MS
        );
    }
}
