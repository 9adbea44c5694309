//! Lineage as Mermaid and DOT, compared byte for byte with the golden files in `golden/`
//! (regenerate with `UPDATE_GOLDEN=1 cargo test -p muninn-server`), and the same bytes again
//! for the same data whatever the order it was ingested in.

use std::path::PathBuf;

use crate::ingest::ndjson;
use crate::support::{Answer, Api, Fleet, TestServer, line_diff, params};

/// Compares `actual` with `golden/<name>`, or rewrites the file when `UPDATE_GOLDEN` is set.
pub fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual)
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "reading {} ({error}); create it with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{name} differs from {} (- golden, + actual); if the change is intended, run with UPDATE_GOLDEN=1\n{}",
            path.display(),
            line_diff(&expected, actual)
        );
    }
}

async fn lineage_text(api: &Api, fleet: &Fleet, format: &str, extra: &[(&str, &str)]) -> Answer {
    let range = fleet.range();
    let mut query = params(&range);
    query.push(("format", format));
    query.extend_from_slice(extra);
    let answer = api.get("/api/v1/lineage", &query).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_mermaid_and_dot_match_the_golden_files() {
    let fleet = Fleet::new();
    let server = TestServer::start().await;
    server.ingest_fleet(&fleet).await;
    let mermaid = lineage_text(&server.api, &fleet, "mermaid", &[]).await;
    assert_eq!(mermaid.content_type, "text/plain; charset=utf-8");
    check_golden("lineage.mmd", &mermaid.text);
    let dot = lineage_text(&server.api, &fleet, "dot", &[]).await;
    assert_eq!(dot.content_type, "text/vnd.graphviz; charset=utf-8");
    check_golden("lineage.dot", &dot.text);
    let enricher = lineage_text(&server.api, &fleet, "mermaid", &[("service", "enricher")]).await;
    check_golden("lineage_enricher.mmd", &enricher.text);
    // A domain by pattern: the order events' producers and consumers, nothing of stock.
    let orders = lineage_text(&server.api, &fleet, "mermaid", &[("event_type", "order.*")]).await;
    check_golden("lineage_orders_domain.mmd", &orders.text);
    // No data, no edges: still a valid (empty) graph.
    let empty = lineage_text(&server.api, &fleet, "dot", &[("service", "nobody")]).await;
    check_golden("lineage_empty.dot", &empty.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_text_is_byte_identical_twice_and_whatever_the_ingest_order() {
    let fleet = Fleet::new();
    let in_order = TestServer::start().await;
    in_order.ingest_fleet(&fleet).await;
    // The other server gets counts first, then the spans reversed, in three NDJSON batches.
    let reordered = TestServer::start().await;
    reordered
        .api
        .ingest_ok(
            "/api/v1/counts",
            &fleet.counts.iter().rev().cloned().collect::<Vec<_>>(),
        )
        .await;
    let reversed = fleet.spans_reordered(|spans| spans.reverse());
    for batch in reversed.chunks(reversed.len() / 3 + 1) {
        let answer = reordered
            .api
            .post("/api/v1/spans", ndjson(batch), &[])
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    for format in ["mermaid", "dot", "json"] {
        let first = lineage_text(&in_order.api, &fleet, format, &[]).await.text;
        let second = lineage_text(&in_order.api, &fleet, format, &[]).await.text;
        assert_eq!(first, second, "{format}: two requests gave different bytes");
        let other = lineage_text(&reordered.api, &fleet, format, &[]).await.text;
        assert_eq!(
            first,
            other,
            "{format}: the ingest order changed the bytes\n{}",
            line_diff(&first, &other)
        );
    }
    in_order.stop().await;
    reordered.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_names_get_distinct_node_ids_and_escaped_labels() {
    let server = TestServer::start().await;
    let start = muninn_model::now_unix_nanos() - 120 * crate::support::NANOS_PER_SECOND;
    let producer = |n: u64, service: &str, stream: &str, event_type: &str| {
        crate::support::with(
            crate::support::span(
                "a1b2000000000000000000000000000a",
                &format!("{n:016x}"),
                None,
                service,
                "publish",
                "producer",
                start,
            ),
            serde_json::json!({"stream": stream, "broker": "kafka", "event_type": event_type}),
        )
    };
    let spans = [
        // Three names that sanitize to the same id, one of them equal to another's suffixed id.
        producer(1, "a-b", "orders", "order.created"),
        producer(2, "a_b", "orders", "order.created"),
        producer(3, "a_b_2", "orders", "order.created"),
        producer(4, "say \"hi\"", "back\\slash", "quote\"d"),
        producer(5, "naïve", "orders v2", "order.created"),
        producer(6, "naïve", "orders-v2", "order.created"),
    ];
    server.api.ingest_ok("/api/v1/spans", &spans).await;
    for (format, golden) in [
        ("mermaid", "lineage_awkward_names.mmd"),
        ("dot", "lineage_awkward_names.dot"),
    ] {
        let answer = server
            .api
            .get("/api/v1/lineage", &[("format", format)])
            .await;
        assert_eq!(answer.status, 200);
        check_golden(golden, &answer.text);
    }
    server.stop().await;
}
