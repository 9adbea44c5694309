//! Journeys and traces that survive broken trace context (Funding Circle's stateful join): a
//! consumer that starts a new trace with a link to the publish, a join that drops the context
//! but keeps the event id, and a join that keeps only a link. Each is checked from the
//! in-memory head, from Parquet blocks, and after a restart.

use serde_json::{Value, json};

use crate::support::{Api, NANOS_PER_MILLI, NANOS_PER_SECOND, TestServer, event, span, with};

const TRACE_A: &str = "a0000000000000000000000000000001";
const TRACE_B: &str = "b0000000000000000000000000000002";

fn base_time() -> i64 {
    (muninn_model::now_unix_nanos() / NANOS_PER_SECOND - 600) * NANOS_PER_SECOND
}

/// Ingests `spans`, then runs `check` from the head, from blocks, and after a restart.
async fn at_every_stage(spans: Vec<Value>, check: impl AsyncFn(&Api)) {
    let mut server = TestServer::start().await;
    server.api.ingest_ok("/api/v1/spans", &spans).await;
    eprintln!("stage: head");
    check(&server.api).await;
    let flushed = server.flush().await;
    assert_eq!(flushed["spans_written"], json!(spans.len()));
    eprintln!("stage: blocks");
    check(&server.api).await;
    server.restart().await;
    eprintln!("stage: after a restart");
    check(&server.api).await;
    server.stop().await;
}

/// `[service, action or kind, trace, span, joined_by, lag_ns, attempt, status]` per hop.
fn hop_rows(journey: &Value) -> Vec<Value> {
    journey["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .map(|hop| {
            json!([
                hop["service"],
                hop.get("action").unwrap_or(&hop["kind"]),
                hop["trace_id"],
                hop["span_id"],
                hop["joined_by"],
                hop["lag_ns"],
                hop["attempt"],
                hop["status"]
            ])
        })
        .collect()
}

fn link(from_trace: &str, from_span: &str, to_trace: &str, to_span: &str) -> Value {
    json!({"trace_id": from_trace, "span_id": from_span, "linked_trace_id": to_trace, "linked_span_id": to_span})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_starts_a_new_trace_with_a_link_continues_the_journey() {
    let start = base_time();
    let payment = event("pay-1", "payment.requested", "v1", "payments", "kafka");
    let request = span(
        TRACE_A,
        "a000000000000001",
        None,
        "orders-api",
        "POST /pay",
        "server",
        start,
    );
    let publish = with(
        span(
            TRACE_A,
            "a000000000000002",
            Some("a000000000000001"),
            "orders-api",
            "publish payment.requested",
            "producer",
            start + NANOS_PER_MILLI,
        ),
        payment.clone(),
    );
    // The consumer starts its own trace and links to the publish (OpenTelemetry's batch style).
    let mut consume = with(
        span(
            TRACE_B,
            "b000000000000001",
            None,
            "payments",
            "consume payment.requested",
            "consumer",
            start + 40 * NANOS_PER_MILLI,
        ),
        with(
            payment,
            json!({"links": [{"trace_id": TRACE_A, "span_id": "a000000000000002"}]}),
        ),
    );
    consume["duration_nano"] = json!(7 * NANOS_PER_MILLI);
    let charge = span(
        TRACE_B,
        "b000000000000002",
        Some("b000000000000001"),
        "payments",
        "charge card",
        "client",
        start + 42 * NANOS_PER_MILLI,
    );
    at_every_stage(vec![request, publish, consume, charge], async |api| {
        let journey = api.get_json("/api/v1/events/pay-1", &[]).await;
        assert_eq!(
            journey["traces"],
            json!([TRACE_A, TRACE_B]),
            "one journey, two traces"
        );
        assert_eq!(
            hop_rows(&journey),
            vec![
                json!([
                    "orders-api",
                    "produced",
                    TRACE_A,
                    "a000000000000002",
                    "event_id",
                    null,
                    1,
                    "ok"
                ]),
                json!([
                    "payments",
                    "consumed",
                    TRACE_B,
                    "b000000000000001",
                    "event_id",
                    39 * NANOS_PER_MILLI,
                    1,
                    "ok"
                ]),
            ]
        );
        assert_eq!(
            journey["hops"][1]["duration_ns"],
            json!(7 * NANOS_PER_MILLI),
            "processing time"
        );

        let publish_to_consume = link(TRACE_B, "b000000000000001", TRACE_A, "a000000000000002");
        let upstream = api
            .get_json(&format!("/api/v1/traces/{TRACE_A}"), &[])
            .await;
        assert_eq!(
            upstream["continued_in"],
            json!([{"trace_id": TRACE_B, "root_service": "payments", "event_ids": ["pay-1"],
                "links": [publish_to_consume]}])
        );
        assert_eq!(upstream["continued_from"], json!([]));
        let downstream = api
            .get_json(&format!("/api/v1/traces/{TRACE_B}"), &[])
            .await;
        assert_eq!(
            downstream["continued_from"],
            json!([{"trace_id": TRACE_A, "root_service": "orders-api", "event_ids": ["pay-1"],
                "links": [publish_to_consume]}])
        );
        assert_eq!(downstream["continued_in"], json!([]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_join_that_drops_the_context_but_keeps_the_event_id_is_one_journey() {
    let start = base_time();
    let click = event("click-7", "page.clicked", "v1", "clicks", "kafka");
    let enriched = event("click-7", "page.clicked", "v2", "clicks.enriched", "kafka");
    let publish = with(
        span(
            TRACE_A,
            "a000000000000001",
            None,
            "web",
            "publish page.clicked",
            "producer",
            start,
        ),
        click.clone(),
    );
    let join_in = with(
        span(
            TRACE_A,
            "a000000000000002",
            Some("a000000000000001"),
            "joiner",
            "consume page.clicked",
            "consumer",
            start + 5 * NANOS_PER_MILLI,
        ),
        click,
    );
    // The join's output starts a new trace: no parent, no link, but the same event id.
    let join_out = with(
        span(
            TRACE_B,
            "b000000000000001",
            None,
            "joiner",
            "publish page.clicked",
            "producer",
            start + 2 * NANOS_PER_SECOND,
        ),
        enriched.clone(),
    );
    let mut failed = with(
        span(
            TRACE_B,
            "b000000000000002",
            Some("b000000000000001"),
            "analytics",
            "consume page.clicked",
            "consumer",
            start + 2 * NANOS_PER_SECOND + 30 * NANOS_PER_MILLI,
        ),
        enriched.clone(),
    );
    failed["status"] = json!({"code": "error", "message": "warehouse unavailable"});
    let retried = with(
        span(
            TRACE_B,
            "b000000000000003",
            Some("b000000000000001"),
            "analytics",
            "consume page.clicked",
            "consumer",
            start + 3 * NANOS_PER_SECOND,
        ),
        enriched,
    );
    at_every_stage(vec![publish, join_in, join_out, failed, retried], async |api| {
        let journey = api.get_json("/api/v1/events/click-7", &[]).await;
        assert_eq!(journey["traces"], json!([TRACE_A, TRACE_B]));
        assert_eq!(
            hop_rows(&journey),
            vec![
                json!(["web", "produced", TRACE_A, "a000000000000001", "event_id", null, 1, "ok"]),
                json!(["joiner", "consumed", TRACE_A, "a000000000000002", "event_id",
                    5 * NANOS_PER_MILLI, 1, "ok"]),
                json!(["joiner", "produced", TRACE_B, "b000000000000001", "event_id", null, 1, "ok"]),
                // Lags count from the publish on the consumer's own stream, across the break.
                json!(["analytics", "consumed", TRACE_B, "b000000000000002", "event_id",
                    30 * NANOS_PER_MILLI, 1, "error"]),
                json!(["analytics", "consumed", TRACE_B, "b000000000000003", "event_id",
                    NANOS_PER_SECOND, 2, "ok"]),
            ]
        );
        let upstream = api.get_json(&format!("/api/v1/traces/{TRACE_A}"), &[]).await;
        assert_eq!(
            upstream["continued_in"],
            json!([{"trace_id": TRACE_B, "root_service": "joiner", "event_ids": ["click-7"], "links": []}])
        );
        let downstream = api.get_json(&format!("/api/v1/traces/{TRACE_B}"), &[]).await;
        assert_eq!(
            downstream["continued_from"],
            json!([{"trace_id": TRACE_A, "root_service": "web", "event_ids": ["click-7"], "links": []}])
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_that_keeps_only_a_link_is_joined_by_the_link() {
    let start = base_time();
    let publish = with(
        span(
            TRACE_A,
            "a000000000000001",
            None,
            "web",
            "publish page.clicked",
            "producer",
            start,
        ),
        event("click-9", "page.clicked", "v1", "clicks", "kafka"),
    );
    // The join lost the event id but kept a link to the publish; what it produces is a new event.
    let join = with(
        span(
            TRACE_B,
            "b000000000000001",
            None,
            "joiner",
            "join clicks with users",
            "consumer",
            start + 80 * NANOS_PER_MILLI,
        ),
        json!({"stream": "clicks", "broker": "kafka",
            "attributes": {"join.key": "user_id"},
            "links": [{"trace_id": TRACE_A, "span_id": "a000000000000001"}]}),
    );
    let joined = with(
        span(
            TRACE_B,
            "b000000000000002",
            Some("b000000000000001"),
            "joiner",
            "publish click.joined",
            "producer",
            start + 85 * NANOS_PER_MILLI,
        ),
        event("joined-9", "click.joined", "v1", "clicks.joined", "kafka"),
    );
    let unrelated = with(
        span(
            "c0000000000000000000000000000003",
            "c000000000000001",
            None,
            "joiner",
            "join clicks with users",
            "consumer",
            start + 90 * NANOS_PER_MILLI,
        ),
        json!({"links": [{"trace_id": TRACE_A, "span_id": "a0000000000000ff"}]}),
    );
    at_every_stage(vec![publish, join, joined, unrelated], async |api| {
        let journey = api.get_json("/api/v1/events/click-9", &[]).await;
        assert_eq!(journey["traces"], json!([TRACE_A, TRACE_B]));
        assert_eq!(
            hop_rows(&journey),
            vec![
                json!(["web", "produced", TRACE_A, "a000000000000001", "event_id", null, 1, "ok"]),
                json!(["joiner", "consumed", TRACE_B, "b000000000000001", "link",
                    80 * NANOS_PER_MILLI, 1, "ok"]),
            ],
            "the span linking to another span of trace A is not a hop of this event"
        );
        assert_eq!(
            journey["hops"][1]["linked_span"],
            json!({"trace_id": TRACE_A, "span_id": "a000000000000001"})
        );
        assert!(journey["hops"][1].get("event_id").is_none());
        // Found through an outline of the spans linking here, the hop is shown whole.
        assert_eq!(journey["hops"][1]["duration_ns"], json!(NANOS_PER_MILLI));
        assert_eq!(journey["hops"][1]["stream"], json!("clicks"));
        assert_eq!(
            journey["hops"][1]["attributes"],
            json!({"join.key": "user_id"})
        );

        let upstream = api.get_json(&format!("/api/v1/traces/{TRACE_A}"), &[]).await;
        assert_eq!(
            upstream["continued_in"],
            json!([
                {"trace_id": TRACE_B, "root_service": "joiner", "event_ids": [],
                    "links": [link(TRACE_B, "b000000000000001", TRACE_A, "a000000000000001")]},
                {"trace_id": "c0000000000000000000000000000003", "root_service": "joiner", "event_ids": [],
                    "links": [link("c0000000000000000000000000000003", "c000000000000001", TRACE_A, "a0000000000000ff")]},
            ])
        );
        let downstream = api.get_json(&format!("/api/v1/traces/{TRACE_B}"), &[]).await;
        assert_eq!(
            downstream["continued_from"],
            json!([{"trace_id": TRACE_A, "root_service": "web", "event_ids": [],
                "links": [link(TRACE_B, "b000000000000001", TRACE_A, "a000000000000001")]}])
        );
        assert_eq!(downstream["continued_in"], json!([]));
    })
    .await;
}
