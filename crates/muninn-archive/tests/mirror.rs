//! The offsite copy between two real archive directories: a mirror copies what the target
//! lacks and nothing twice, and verify finds every missing, extra or damaged file.

use muninn_archive::{Archive, Header, Message, SourceBroker, TimestampType};

const HOUR_MS: i64 = 3_600_000;
const BASE_MS: i64 = 1_796_000_000_000 - 1_796_000_000_000 % HOUR_MS;

fn messages(partition: i32, offsets: std::ops::Range<i64>, hour: i64) -> Vec<Message> {
    offsets
        .map(|offset| {
            Message::from_broker(
                SourceBroker::Kafka,
                "orders".into(),
                None,
                partition,
                offset,
                BASE_MS + hour * HOUR_MS + offset,
                TimestampType::CreateTime,
                Some(vec![0xff, offset as u8]),
                vec![Header {
                    name: "h".into(),
                    value: Some(vec![0, 1, offset as u8]),
                }],
                Some(format!("payload {offset}").into_bytes()),
            )
        })
        .collect()
}

fn parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn a_mirror_copies_only_what_is_new_and_verify_finds_every_difference() {
    let source_dir = tempfile::tempdir().unwrap();
    let mirror_dir = tempfile::tempdir().unwrap();
    let source = Archive::open_local(source_dir.path()).await.unwrap();
    let mirror = Archive::open_local(mirror_dir.path()).await.unwrap();
    for partition in 0..2 {
        source.commit(&messages(partition, 0..50, 0)).await.unwrap();
        source
            .commit(&messages(partition, 50..80, 0))
            .await
            .unwrap();
    }
    let first = source.mirror_to(&mirror, &|_| {}).await.unwrap();
    assert_eq!((first.files_copied, first.manifests_written), (4, 2));
    assert!(
        source
            .verify_against(&mirror, true)
            .await
            .unwrap()
            .is_empty()
    );

    // New files: only they are copied.
    source.commit(&messages(0, 80..90, 1)).await.unwrap();
    source.commit(&messages(1, 80..95, 0)).await.unwrap();
    let second = source.mirror_to(&mirror, &|_| {}).await.unwrap();
    assert_eq!(second.files_copied, 2);
    assert_eq!(second.files_already_there, 4);
    let third = source.mirror_to(&mirror, &|_| {}).await.unwrap();
    assert_eq!(third.files_copied, 0);
    assert!(
        source
            .verify_against(&mirror, true)
            .await
            .unwrap()
            .is_empty()
    );
    let streams = mirror.streams().await.unwrap();
    assert_eq!(streams[0].messages, 185);

    // A damaged file in the mirror: found by the deep check, by name.
    let files = parquet_files(mirror_dir.path());
    let damaged = &files[0];
    let mut bytes = std::fs::read(damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(damaged, bytes).unwrap();
    let differences = source.verify_against(&mirror, true).await.unwrap();
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert!(
        differences[0].problem.contains("checksum")
            && damaged.to_string_lossy().ends_with(&differences[0].place),
        "{differences:?}"
    );
    // Without the deep check, manifests agree.
    assert!(
        source
            .verify_against(&mirror, false)
            .await
            .unwrap()
            .is_empty()
    );

    // The source gains an hour the mirror lacks; the mirror gains a stream the source lacks.
    source.commit(&messages(1, 95..99, 2)).await.unwrap();
    let mut extra = messages(0, 0..3, 0);
    for message in &mut extra {
        message.stream = "audit".into();
    }
    mirror.commit(&extra).await.unwrap();
    let problems: Vec<String> = source
        .verify_against(&mirror, false)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("stream=orders") && p.contains("missing in"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("stream=audit") && p.contains("only in"))
    );
}
