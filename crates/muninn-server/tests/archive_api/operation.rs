//! What the server runs for its archive: recorders that cannot reach their brokers show in
//! `/metrics` and `/healthz` and stop with the server, an archive setting that cannot work stops
//! the start naming its key, and retention and compaction run on the archive.

use std::time::Duration;

use muninn_archive::{Archive, KafkaSource, Message, NatsSource};
use muninn_server::ArchiveConfig;
use serde_json::json;

use crate::common::{kafka_message, position, query};
use crate::support::{NANOS_PER_MILLI, TestServer};

/// A `name{recorder="…"} value` line of the exposition, as a number.
fn series(metrics: &str, name: &str, recorder: &str) -> Option<f64> {
    let prefix = format!("{name}{{recorder=\"{recorder}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorders_that_cannot_reach_their_brokers_show_in_metrics_and_healthz() {
    let archive_dir = tempfile::tempdir().expect("creating the archive directory");
    let location = archive_dir.path().display().to_string();
    let server = TestServer::start_with(|config| {
        let mut archive = ArchiveConfig::new(location.clone());
        // Nothing listens on port 1.
        archive.kafka = Some(KafkaSource {
            bootstrap: "127.0.0.1:1".into(),
            group: "muninn-test".into(),
            topics: vec!["orders".into()],
            settings: vec![],
        });
        archive.nats = Some(NatsSource {
            url: "nats://127.0.0.1:1".into(),
            streams: vec!["orders".into()],
            durable: "muninn-test".into(),
        });
        config.archive = Some(archive);
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let metrics = server.api.get("/metrics", &[]).await.text;
        let failing = ["kafka", "nats"].iter().all(|recorder| {
            series(&metrics, "muninn_archive_broker_errors_total", recorder)
                .is_some_and(|n| n > 0.0)
                && series(&metrics, "muninn_archive_healthy", recorder) == Some(0.0)
        });
        if failing {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the recorders were not reported failing within 60 s:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for name in [
        "muninn_archive_messages_received_total",
        "muninn_archive_messages_total",
        "muninn_archive_bytes_total",
        "muninn_archive_files_total",
        "muninn_archive_duplicates_skipped_total",
        "muninn_archive_object_store_errors_total",
    ] {
        for recorder in ["kafka", "nats"] {
            assert_eq!(
                series(&metrics, name, recorder),
                Some(0.0),
                "{name} {recorder}"
            );
        }
    }

    let health = server.api.get_json("/healthz", &[]).await;
    assert_eq!(health["status"], json!("degraded"));
    assert_eq!(health["archive"]["location"], json!(location));
    let recorders = health["archive"]["recorders"]
        .as_array()
        .expect("recorders");
    assert_eq!(recorders.len(), 2);
    for (recorder, name) in recorders.iter().zip(["kafka", "nats"]) {
        assert_eq!(recorder["recorder"], json!(name));
        assert_eq!(recorder["healthy"], json!(false));
        assert!(recorder["broker_errors"].as_u64().is_some_and(|n| n > 0));
        let last_error = recorder["last_error"].as_str().unwrap_or_default();
        assert!(last_error.starts_with(&format!("{name}:")), "{recorder}");
    }
    // The recorders stop with the server.
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("the server and its recorders stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_setting_that_cannot_work_stops_the_start_naming_the_key() {
    let data_dir = tempfile::tempdir().expect("a data directory");
    let mut config = muninn_server::ServerConfig::new(data_dir.path(), 0);
    let mut archive = ArchiveConfig::new(data_dir.path().join("archive").display().to_string());
    archive.kafka = Some(KafkaSource {
        bootstrap: "127.0.0.1:9092".into(),
        group: "muninn".into(),
        topics: vec![],
        settings: vec![],
    });
    config.archive = Some(archive);
    let error = muninn_server::start(config.clone())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.starts_with("archive.kafka.topics: "), "{error}");
    config.archive = Some(ArchiveConfig::new("ftp://host/archive"));
    let error = muninn_server::start(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.starts_with("archive.location: "), "{error}");
}

fn unlabelled(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_applies_retention_and_compacts_sealed_hours() {
    const HOUR_MS: i64 = 3_600_000;
    let archive_dir = tempfile::tempdir().expect("creating the archive directory");
    let archive = Archive::open_local(archive_dir.path()).await.unwrap();
    let now_hour = muninn_model::now_unix_nanos() / NANOS_PER_MILLI / HOUR_MS * HOUR_MS;
    let commit = |first: i64, hour_start: i64| {
        let messages: Vec<Message> = (first..first + 10)
            .map(|offset| {
                kafka_message(
                    "orders",
                    0,
                    offset,
                    hour_start + offset,
                    None,
                    Vec::new(),
                    b"{}",
                )
            })
            .collect();
        let archive = archive.clone();
        async move { archive.commit(&messages).await.expect("commit") }
    };
    // Ten days old (past the rule), three small files in an hour the partition has left, and
    // the partition's newest hour.
    commit(0, now_hour - 240 * HOUR_MS).await;
    for first in [100, 110, 120] {
        commit(first, now_hour - 3 * HOUR_MS).await;
    }
    commit(130, now_hour - HOUR_MS).await;

    let location = archive_dir.path().display().to_string();
    let server = TestServer::start_with(|config| {
        let mut archive = ArchiveConfig::new(location.clone());
        archive.maintenance.retention =
            vec![muninn_archive::RetentionRule::parse("orders=2d").unwrap()];
        config.archive = Some(archive);
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let metrics = server.api.get("/metrics", &[]).await.text;
        if unlabelled(&metrics, "muninn_archive_compaction_files_reduced_total") == Some(2.0) {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no compaction within 30 s:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        unlabelled(&metrics, "muninn_archive_retention_hours_removed_total"),
        Some(1.0)
    );
    assert_eq!(
        unlabelled(&metrics, "muninn_archive_compaction_messages_merged_total"),
        Some(30.0)
    );
    assert_eq!(
        unlabelled(&metrics, "muninn_archive_maintenance_errors_total"),
        Some(0.0)
    );
    let answer = server.api.get_json("/api/v1/archive/streams", &[]).await;
    let partition = &answer["streams"][0]["partitions"][0];
    assert_eq!(
        (
            &partition["first_offset"],
            &partition["last_offset"],
            &partition["messages"],
            &partition["files"]
        ),
        (&json!(100), &json!(139), &json!(40), &json!(2)),
        "{answer}"
    );
    // Every message of the compacted hour still reads back.
    let one = server
        .api
        .get_json(
            "/api/v1/archive/messages",
            &query(&position("orders", "0", "115")),
        )
        .await;
    assert_eq!(one["offset"], json!(115), "{one}");
    server.stop().await;
}
