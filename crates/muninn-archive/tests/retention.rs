//! Retention on a real archive directory: whole hours older than a stream's rule go (dry runs
//! only report), streams no rule matches stay, and what stays reads as before.

use std::time::Duration;

use muninn_archive::{Archive, Message, RetentionRule, Selection, SourceBroker, TimestampType};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn messages(stream: &str, first: i64, count: i64, timestamp_ms: i64) -> Vec<Message> {
    (first..first + count)
        .map(|offset| {
            Message::from_broker(
                SourceBroker::Kafka,
                stream.into(),
                None,
                0,
                offset,
                timestamp_ms + offset,
                TimestampType::CreateTime,
                None,
                Vec::new(),
                Some(vec![offset as u8; 100]),
            )
        })
        .collect()
}

async fn offsets(archive: &Archive, stream: &str) -> Vec<i64> {
    let all = Selection::new(stream, None, 0, i64::MAX, Vec::new()).unwrap();
    archive
        .read(&all)
        .await
        .unwrap()
        .iter()
        .map(|m| m.offset)
        .collect()
}

#[tokio::test]
async fn whole_hours_past_a_streams_rule_go_and_the_rest_stays() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    let now = 1_796_000_000_000 - 1_796_000_000_000 % HOUR_MS + 30 * 60_000;
    for stream in ["orders.eu", "audit"] {
        archive
            .commit(&messages(stream, 0, 10, now - 10 * DAY_MS))
            .await
            .unwrap();
        archive
            .commit(&messages(stream, 10, 10, now - DAY_MS))
            .await
            .unwrap();
        archive
            .commit(&messages(stream, 20, 10, now - 60_000))
            .await
            .unwrap();
    }
    let rules = vec![RetentionRule::parse("orders.*=2d").unwrap()];

    let dry = archive.retain(&rules, now, true).await.unwrap();
    assert_eq!(dry.hours_removed.len(), 1);
    assert_eq!(dry.hours_removed[0].0, "orders.eu");
    assert_eq!((dry.files_removed, dry.messages_removed), (1, 10));
    assert_eq!(
        offsets(&archive, "orders.eu").await,
        (0..30).collect::<Vec<_>>()
    );

    let done = archive.retain(&rules, now, false).await.unwrap();
    assert_eq!(done, dry);
    assert_eq!(
        offsets(&archive, "orders.eu").await,
        (10..30).collect::<Vec<_>>()
    );
    assert_eq!(
        offsets(&archive, "audit").await,
        (0..30).collect::<Vec<_>>()
    );
    // The recorder's position is untouched: the newest hour still names the last offset.
    assert_eq!(archive.last_offset("orders.eu", 0).await.unwrap(), Some(29));
    // Again: nothing more to remove.
    assert!(
        archive
            .retain(&rules, now, false)
            .await
            .unwrap()
            .hours_removed
            .is_empty()
    );
    // A tighter rule for the rest: one day keeps only the hour of now.
    let all = vec![RetentionRule {
        pattern: "*".into(),
        keep: Duration::from_secs(3600 * 12),
    }];
    archive.retain(&all, now, false).await.unwrap();
    assert_eq!(
        offsets(&archive, "audit").await,
        (20..30).collect::<Vec<_>>()
    );
}
