//! `muninn lineage` against a real server: `--out` and `--check` (a line diff), and `diff
//! --against` (the edges added and removed, as Markdown; `--write`), with domain filters.

use std::path::Path;
use std::time::Duration;

use crate::process::{Finished, Server, ingest_one_event, muninn, now_unix_nanos, post_json, run};

/// Spans of one event per `(kind, service, event type, stream)`, on Kafka, now.
fn ingest_edges(base_url: &str, trace: u32, edges: &[(&str, &str, &str, &str)]) {
    let now = now_unix_nanos();
    let spans = edges
        .iter()
        .enumerate()
        .map(|(idx, (kind, service, event_type, stream))| {
            serde_json::json!({
                "trace_id": format!("{trace:032x}"), "span_id": format!("{:016x}", idx + 1),
                "name": format!("{kind} {stream}"), "kind": kind, "service": service,
                "start_time_unix_nano": now + idx as i64 * 1_000_000, "duration_nano": 1_000_000,
                "event_id": format!("e-{trace}-{idx}"), "event_type": event_type,
                "stream": stream, "broker": "kafka",
            })
        })
        .collect();
    post_json(base_url, "/api/v1/spans", &serde_json::Value::Array(spans));
}

/// `muninn lineage --server URL ARGS`, run to completion.
fn lineage(server: &Server, args: &[&str]) -> Finished {
    let mut all = vec!["lineage", "--server", &server.base_url];
    all.extend_from_slice(args);
    run(muninn(&all), Duration::from_secs(60))
}

/// `muninn lineage --server URL diff --against FILE ARGS`.
fn diff(server: &Server, file: &Path, args: &[&str]) -> Finished {
    let mut all = vec!["diff", "--against", file.to_str().unwrap()];
    all.extend_from_slice(args);
    lineage(server, &all)
}

/// The table rows of a drift report.
fn rows(finished: &Finished) -> Vec<&str> {
    finished
        .stdout
        .lines()
        .filter(|line| line.starts_with("| added") || line.starts_with("| removed"))
        .collect()
}

#[test]
fn lineage_check_passes_for_the_current_lineage_and_fails_with_a_diff_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[], &[]);
    ingest_one_event(&server.base_url, "e-lineage-1");
    let file = dir.path().join("lineage.mmd");
    let file_arg = file.to_str().unwrap();

    let written = run(
        muninn(&[
            "lineage",
            "--server",
            &server.base_url,
            "--format",
            "mermaid",
            "--out",
            file_arg,
        ]),
        Duration::from_secs(60),
    );
    assert!(written.status.success(), "{written:?}");
    let committed = std::fs::read_to_string(&file).unwrap();
    assert!(committed.starts_with("flowchart LR\n"), "{committed}");
    assert!(
        committed.contains("svc_checkout") && committed.contains("(modifies)"),
        "{committed}"
    );

    let same = run(
        muninn(&["lineage", "--server", &server.base_url, "--check", file_arg]),
        Duration::from_secs(60),
    );
    assert_eq!(same.status.code(), Some(0), "{same:?}");

    std::fs::write(&file, committed.replace("svc_billing", "svc_invoicing")).unwrap();
    let different = run(
        muninn(&["lineage", "--server", &server.base_url, "--check", file_arg]),
        Duration::from_secs(60),
    );
    assert_eq!(different.status.code(), Some(1), "{different:?}");
    assert!(different.stdout.contains("@@ -"), "{different:?}");
    assert!(
        different.stdout.contains("-    svc_invoicing")
            && different.stdout.contains("+    svc_billing"),
        "{different:?}"
    );
    assert!(different.stdout.contains("out of date"), "{different:?}");

    let stdout = run(
        muninn(&["lineage", "--server", &server.base_url, "--format", "dot"]),
        Duration::from_secs(60),
    );
    assert!(
        stdout.status.success() && stdout.stdout.starts_with("digraph lineage {"),
        "{stdout:?}"
    );
}

#[test]
fn lineage_diff_reports_the_edges_added_and_removed_and_write_brings_the_file_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[], &[]);
    ingest_one_event(&server.base_url, "e-diff-1");
    let file = dir.path().join("docs").join("lineage.mmd");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();

    // No file yet: nothing to compare with (exit 2), and the message says how to create it.
    let missing = diff(&server, &file, &[]);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(
        missing.stderr.contains(file.to_str().unwrap()) && missing.stderr.contains("--write"),
        "{missing:?}"
    );

    // --write creates it; everything is drift against nothing, so exit 1 with every edge added.
    let created = diff(&server, &file, &["--write"]);
    assert_eq!(created.status.code(), Some(1), "{created:?}");
    assert_eq!(
        rows(&created),
        [
            "| added | `billing` | consumes (modifies) | `orders` (kafka) | `order.placed` |",
            "| added | `checkout` | produces | `orders` (kafka) | `order.placed` |",
        ],
        "{created:?}"
    );
    assert!(created.stdout.contains("Updated `"), "{created:?}");
    // What --write wrote is exactly what --check expects.
    let file_arg = file.to_str().unwrap();
    let checked = lineage(&server, &["--check", file_arg]);
    assert_eq!(checked.status.code(), Some(0), "{checked:?}");

    let same = diff(&server, &file, &[]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    assert_eq!(
        same.stdout,
        format!("no drift: {file_arg} matches the current lineage (2 edges)\n"),
        "{same:?}"
    );

    // New traffic (a new consumer, a new event type), and a committed edge the server no longer
    // has: the committed file names billing's consumer node `invoicing`.
    ingest_edges(
        &server.base_url,
        7,
        &[
            ("consumer", "fraud", "order.placed", "orders"),
            ("producer", "billing", "payment.settled", "payments"),
        ],
    );
    let committed = std::fs::read_to_string(&file)
        .unwrap()
        .replace(r#"svc_billing["billing"]"#, r#"svc_billing["invoicing"]"#);
    std::fs::write(&file, &committed).unwrap();
    let drifted = diff(&server, &file, &[]);
    assert_eq!(drifted.status.code(), Some(1), "{drifted:?}");
    assert_eq!(
        rows(&drifted),
        [
            "| added | `billing` | consumes (modifies) | `orders` (kafka) | `order.placed` |",
            "| added | `billing` | produces | `payments` (kafka) | `payment.settled` |",
            "| added | `fraud` | consumes | `orders` (kafka) | `order.placed` |",
            "| removed | `invoicing` | consumes (modifies) | `orders` (kafka) | `order.placed` |",
        ],
        "{drifted:?}"
    );
    assert!(
        drifted.stdout.starts_with(&format!(
            "### Lineage drift in `{file_arg}`\n\n3 edges added and 1 removed in the current lineage of {}.\n",
            server.base_url
        )),
        "{drifted:?}"
    );
    assert!(
        drifted.stdout.contains(&format!(
            "Update it with `muninn lineage diff --server {} --against {file_arg} --write`.",
            server.base_url
        )),
        "{drifted:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        committed,
        "without --write the file is left alone"
    );

    // --write reports the same drift, updates the file, and the next diff finds none.
    let written = diff(&server, &file, &["--write"]);
    assert_eq!(written.status.code(), Some(1), "{written:?}");
    assert_eq!(rows(&written), rows(&drifted), "{written:?}");
    let after = diff(&server, &file, &[]);
    assert_eq!(after.status.code(), Some(0), "{after:?}");
    assert!(
        after.stdout.starts_with("no drift") && after.stdout.lines().count() == 1,
        "{after:?}"
    );
}

#[test]
fn lineage_diff_reads_dot_and_names_the_line_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[], &[]);
    ingest_one_event(&server.base_url, "e-diff-dot");

    let dot = dir.path().join("lineage.dot");
    let created = diff(&server, &dot, &["--write"]);
    assert_eq!(created.status.code(), Some(1), "{created:?}");
    assert!(
        std::fs::read_to_string(&dot)
            .unwrap()
            .starts_with("digraph lineage {"),
        "the format follows the extension"
    );
    let same = diff(&server, &dot, &[]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");

    let broken = dir.path().join("broken.mmd");
    std::fs::write(
        &broken,
        "flowchart LR\n    svc_a[\"a\"]\n    svc_a --> stream_b\n",
    )
    .unwrap();
    let unreadable = diff(&server, &broken, &["--write"]);
    assert_eq!(unreadable.status.code(), Some(2), "{unreadable:?}");
    assert!(
        unreadable
            .stderr
            .contains(&format!("{}:3: ", broken.display()))
            && unreadable
                .stderr
                .contains("not a line `muninn lineage` writes"),
        "{unreadable:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap(),
        "flowchart LR\n    svc_a[\"a\"]\n    svc_a --> stream_b\n",
        "a file that cannot be read is not overwritten"
    );
}

#[test]
fn a_domain_filter_keeps_the_edges_touching_the_domain_and_a_bad_pattern_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[], &[]);
    ingest_one_event(&server.base_url, "e-domain-1");
    ingest_edges(
        &server.base_url,
        8,
        &[
            ("producer", "billing", "payment.settled", "payments"),
            ("consumer", "ledger", "payment.settled", "payments"),
        ],
    );
    let payments = "flowchart LR\n    \
                    svc_billing[\"billing\"]\n    \
                    svc_ledger[\"ledger\"]\n    \
                    stream_kafka_payments[(\"payments<br/>kafka\")]\n    \
                    svc_billing -- \"payment.settled\" --> stream_kafka_payments\n    \
                    stream_kafka_payments -- \"payment.settled\" --> svc_ledger\n";
    let by_type = lineage(&server, &["--event-type", "payment.*"]);
    assert!(by_type.status.success(), "{by_type:?}");
    assert_eq!(by_type.stdout, payments);
    // The ledger team's diagram: its own edges and the producer of what it consumes, but not
    // what that producer does elsewhere.
    let by_service = lineage(&server, &["--service", "ledg?r*"]);
    assert!(by_service.status.success(), "{by_service:?}");
    assert_eq!(by_service.stdout, payments);

    // A diff with the domain's filter sees only the domain.
    let file = dir.path().join("payments.mmd");
    let created = diff(&server, &file, &["--event-type", "payment.*", "--write"]);
    assert_eq!(created.status.code(), Some(1), "{created:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), payments);
    let same = diff(&server, &file, &["--event-type", "payment.*"]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    let whole = diff(&server, &file, &[]);
    assert_eq!(whole.status.code(), Some(1), "{whole:?}");
    assert_eq!(
        rows(&whole).len(),
        2,
        "the two order.placed edges: {whole:?}"
    );

    // A bad pattern: the server's 400 names the parameter and says what is valid.
    let bad = lineage(&server, &["--event-type", r"order\"]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(
        bad.stderr.contains("event_type:") && bad.stderr.contains("* for any characters"),
        "{bad:?}"
    );
    let bad_diff = diff(&server, &file, &["--service", r"bill\ing"]);
    assert_eq!(bad_diff.status.code(), Some(2), "{bad_diff:?}");
    assert!(bad_diff.stderr.contains("service:"), "{bad_diff:?}");
}
