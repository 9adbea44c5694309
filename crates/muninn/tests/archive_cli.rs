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
