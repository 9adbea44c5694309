//! The archive commands on a real archive directory, no broker: `ls`, `mirror` and `verify`
//! (exit 1 naming a damaged file), and replay refusing a malformed range, filter or target
//! before anything is sent.

use std::path::Path;
use std::process::{Command, Output};

use muninn_archive::{Archive, Header, Message, SourceBroker, TimestampType};

const MUNINN: &str = env!("CARGO_BIN_EXE_muninn");

fn muninn(args: &[&str], archive: &Path) -> Output {
    Command::new(MUNINN)
        .args(args)
        .arg("--archive")
        .arg(archive)
        .output()
        .expect("the muninn binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn archive_with_messages(dir: &Path) {
    let archive = Archive::open_local(dir).await.unwrap();
    for partition in 0..2 {
        let messages: Vec<Message> = (0..25)
            .map(|offset| {
                Message::from_broker(
                    SourceBroker::Kafka,
                    "orders".into(),
                    None,
                    partition,
                    offset,
                    1_796_000_000_000 + offset,
                    TimestampType::CreateTime,
                    None,
                    vec![Header {
                        name: "muninn-event-type".into(),
                        value: Some(b"order.created".to_vec()),
                    }],
                    Some(vec![partition as u8, offset as u8]),
                )
            })
            .collect();
        archive.commit(&messages).await.unwrap();
    }
}

#[tokio::test]
async fn mirror_then_verify_and_a_damaged_copy_exits_1_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (source, copy) = (dir.path().join("source"), dir.path().join("copy"));
    archive_with_messages(&source).await;

    let ls = muninn(&["archive", "ls"], &source);
    assert!(ls.status.success(), "{}", text(&ls));
    assert!(text(&ls).contains("orders"), "{}", text(&ls));

    let mirror = muninn(
        &["archive", "mirror", "--to", copy.to_str().unwrap()],
        &source,
    );
    assert!(mirror.status.success(), "{}", text(&mirror));
    assert!(
        text(&mirror).contains("2 files copied"),
        "{}",
        text(&mirror)
    );
    let again = muninn(
        &["archive", "mirror", "--to", copy.to_str().unwrap()],
        &source,
    );
    assert!(text(&again).contains("0 files copied"), "{}", text(&again));

    let verify = |deep: bool| {
        let mut args = vec!["archive", "verify", "--against", copy.to_str().unwrap()];
        if deep {
            args.push("--deep");
        }
        muninn(&args, &source)
    };
    assert!(verify(true).status.success(), "{}", text(&verify(true)));

    let file = walk(&copy)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0x5a;
    std::fs::write(&file, bytes).unwrap();
    let damaged = verify(true);
    assert_eq!(damaged.status.code(), Some(1), "{}", text(&damaged));
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        text(&damaged).contains(&name) && text(&damaged).contains("checksum"),
        "{}",
        text(&damaged)
    );
    // The copy checked on its own finds it too.
    let alone = muninn(&["archive", "verify"], &copy);
    assert_eq!(alone.status.code(), Some(1), "{}", text(&alone));

    // Retention: the messages are of 2026-11-30T00; thirty days keep them, a dry run of one
    // day reports the hour and removes nothing, a real one removes it.
    let keep = muninn(&["archive", "retain", "--keep", "ord*=30d"], &source);
    assert!(text(&keep).contains("removed 0 hours"), "{}", text(&keep));
    let dry = muninn(
        &["archive", "retain", "--keep", "ord*=1d", "--dry-run"],
        &source,
    );
    assert!(
        text(&dry).contains("orders 2026-11-30T00") && text(&dry).contains("would remove 1 hours"),
        "{}",
        text(&dry)
    );
    assert!(
        verify(false).status.success(),
        "the dry run removed something"
    );
    let gone = muninn(&["archive", "retain", "--keep", "ord*=1d"], &source);
    assert!(
        text(&gone).contains("removed 1 hours (2 files, 50 messages"),
        "{}",
        text(&gone)
    );
    let bad = muninn(&["archive", "retain", "--keep", "orders"], &source);
    assert!(
        !bad.status.success() && text(&bad).contains("PATTERN=DURATION"),
        "{}",
        text(&bad)
    );
}

#[tokio::test]
async fn a_malformed_replay_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    archive_with_messages(dir.path()).await;
    let out = dir.path().join("out.ndjson");
    let target = format!("file://{}", out.display());
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "--from",
                "2026-12-03T10:00:00Z",
                "--to",
                "2026-12-03T09:00:00Z",
            ],
            "from",
        ),
        (&["--from", "yesterday"], "--from"),
        (&["--filter", "colour=red"], "--filter"),
        (&["--partitions", "0:a"], "--partitions"),
        (&["--rate", "0"], "--rate"),
    ];
    for (extra, named) in cases {
        let mut args = vec!["replay", "--stream", "orders", "--to", &target];
        args.extend_from_slice(extra);
        let output = muninn(&args, dir.path());
        assert!(!output.status.success(), "{extra:?} was accepted");
        assert!(
            text(&output).contains(named),
            "{extra:?}: {}",
            text(&output)
        );
        assert!(!out.exists(), "{extra:?} wrote the target");
    }
    let bad_target = muninn(
        &["replay", "--stream", "orders", "--to", "kafka://nohost"],
        dir.path(),
    );
    assert!(
        text(&bad_target).contains("kafka://HOST:PORT"),
        "{}",
        text(&bad_target)
    );

    // And a good one writes every message of the range.
    let good = muninn(
        &[
            "replay",
            "--stream",
            "orders",
            "--partition",
            "1",
            "--to",
            &target,
        ],
        dir.path(),
    );
    assert!(good.status.success(), "{}", text(&good));
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines.lines().count(), 25);
}

#[tokio::test]
async fn archive_groups_shows_positions_as_of_a_time_and_replay_needs_them() {
    let dir = tempfile::tempdir().unwrap();
    archive_with_messages(dir.path()).await;
    let out = dir.path().join("out.ndjson");
    let target = format!("file://{}", out.display());
    // No positions recorded yet: the replay names the group and what to do.
    let missing = muninn(
        &[
            "replay",
            "--stream",
            "orders",
            "--to",
            "kafka://127.0.0.1:1/orders-restored",
            "--set-group-offsets",
            "billing",
        ],
        dir.path(),
    );
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("no position of group billing on stream orders"),
        "{}",
        text(&missing)
    );

    let archive = Archive::open_local(dir.path()).await.unwrap();
    let at = |time_ms: i64, partition: i32, offset: i64| muninn_archive::GroupPosition {
        time_ms,
        broker: SourceBroker::Kafka,
        group: "billing".into(),
        stream: "orders".into(),
        partition,
        offset,
    };
    // 2026-12-03T10:00:00Z, then an hour later.
    let ten = 1_796_292_000_000;
    archive
        .record_group_positions(&[at(ten, 0, 7), at(ten, 1, 3)])
        .await
        .unwrap();
    archive
        .record_group_positions(&[at(ten + 3_600_000, 0, 20)])
        .await
        .unwrap();
    let now = text(&muninn(
        &["archive", "groups", "--stream", "orders"],
        dir.path(),
    ));
    let row = |partition: &str, offset: &str| {
        now.lines().any(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            cells.get(..3) == Some(&["billing", partition, offset][..])
        })
    };
    assert!(row("0", "20") && row("1", "3"), "{now}");
    let earlier = text(&muninn(
        &[
            "archive",
            "groups",
            "--stream",
            "orders",
            "--at",
            "2026-12-03T10:30:00Z",
        ],
        dir.path(),
    ));
    assert!(
        earlier
            .lines()
            .any(|line| line.split_whitespace().take(3).eq(["billing", "0", "7"])),
        "{earlier}"
    );
    let history = muninn(
        &["archive", "groups", "--stream", "orders", "--history"],
        dir.path(),
    );
    assert_eq!(String::from_utf8_lossy(&history.stdout).lines().count(), 3);
    let bad = muninn(
        &["archive", "groups", "--stream", "orders", "--at", "soon"],
        dir.path(),
    );
    assert!(
        !bad.status.success() && text(&bad).contains("--at"),
        "{}",
        text(&bad)
    );

    // Group offsets go to brokers only, refused before anything is written.
    let to_file = muninn(
        &[
            "replay",
            "--stream",
            "orders",
            "--to",
            &target,
            "--set-group-offsets",
            "billing",
        ],
        dir.path(),
    );
    assert!(!to_file.status.success());
    assert!(
        text(&to_file).contains("a file has no consumer groups"),
        "{}",
        text(&to_file)
    );
    assert!(!out.exists());
}

#[tokio::test]
async fn compact_merges_a_sealed_hour_and_refuses_bad_flags_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open_local(dir.path()).await.unwrap();
    // Five small files of partition 0 in one hour, then one in the next, which seals the first.
    let hour_ms = 3_600_000;
    let base = 1_796_000_000_000 - 1_796_000_000_000 % hour_ms;
    let batch = |first: i64, hour: i64| -> Vec<Message> {
        (first..first + 10)
            .map(|offset| {
                Message::from_broker(
                    SourceBroker::Kafka,
                    "orders".into(),
                    None,
                    0,
                    offset,
                    base + hour * hour_ms + offset,
                    TimestampType::CreateTime,
                    Some(vec![0xff, offset as u8]),
                    Vec::new(),
                    Some(vec![offset as u8; 50]),
                )
            })
            .collect()
    };
    for first in (0..50).step_by(10) {
        archive.commit(&batch(first, 0)).await.unwrap();
    }
    archive.commit(&batch(50, 1)).await.unwrap();
    let cat = || muninn(&["archive", "cat", "--stream", "orders"], dir.path()).stdout;
    let before = cat();
    let parquet = || {
        walk(dir.path())
            .into_iter()
            .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
            .collect::<Vec<_>>()
    };

    let dry = muninn(&["archive", "compact", "--dry-run"], dir.path());
    assert!(
        dry.status.success()
            && text(&dry).contains("would compact: 1 of 1 sealed partition-hours, 5 files"),
        "{}",
        text(&dry)
    );
    assert_eq!(parquet().len(), 6);
    let compacted = muninn(
        &[
            "archive",
            "compact",
            "--stream",
            "ord*",
            "--target-size",
            "16MiB",
        ],
        dir.path(),
    );
    assert!(
        compacted.status.success()
            && text(&compacted).contains("orders: 1 of 1 sealed partition-hours, 5 files")
            && text(&compacted).contains("-> 1 files"),
        "{}",
        text(&compacted)
    );
    let files = parquet();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().any(|path| {
        path.to_string_lossy()
            .ends_with("p0-o00000000000000000000-c00000000000000000049.parquet")
    }));
    assert!(muninn(&["archive", "verify"], dir.path()).status.success());
    assert_eq!(cat(), before);
    let again = muninn(&["archive", "compact"], dir.path());
    assert!(
        text(&again).contains("compacted: 0 of 1 sealed partition-hours"),
        "{}",
        text(&again)
    );

    for (flag, value) in [
        ("--target-size", "5"),
        ("--stream", "a/b"),
        ("--min-files", "1"),
        ("--since", "yesterday"),
    ] {
        let refused = muninn(&["archive", "compact", flag, value], dir.path());
        assert!(
            !refused.status.success() && text(&refused).contains(flag),
            "{flag} {value}: {}",
            text(&refused)
        );
    }
    assert_eq!(parquet(), files);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
