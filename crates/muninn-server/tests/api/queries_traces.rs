//! Journeys and trace trees over the fleet, with the exact answers, each checked at every stage
//! (from the head, from blocks, after a restart, from compacted blocks: `at_every_stage` in
//! `queries.rs`): a journey's hops in time order with lag and retry attempts, a trace's children
//! nested under their parents in time order, and a trace whose parents form a cycle answering
//! all the same.

use serde_json::{Value, json};

use crate::queries::{at_every_stage, order_at};
use crate::support::{
    INVENTORY_SPAN, INVENTORY_TRACE, NANOS_PER_MILLI, NANOS_PER_SECOND, RETRY_TRACE, TestServer,
    span, span_id, trace_id,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_lists_hops_in_time_order_with_lag_and_retry_attempts() {
    at_every_stage(async |api, fleet| {
        let journey = api.get_json("/api/v1/events/order-1", &[]).await;
        assert_eq!(journey["event_id"], json!("order-1"));
        assert_eq!(journey["event_types"], json!(["order.created", "order.enriched"]));
        assert_eq!(journey["traces"], json!([trace_id(1), trace_id(RETRY_TRACE)]));
        assert_eq!(journey["unreadable_blocks"], json!([]));
        let hops: Vec<Value> = journey["hops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hop| {
                json!([hop["service"], hop["action"], hop["stream"], hop["span_id"], hop["status"], hop["lag_ns"], hop["attempt"]])
            })
            .collect();
        let ms = |millis: i64| json!(millis * NANOS_PER_MILLI);
        assert_eq!(
            hops,
            vec![
                json!(["checkout", "produced", "orders", span_id(1, 2), "ok", null, 1]),
                json!(["billing", "consumed", "orders", span_id(1, 3), "ok", ms(19), 1]),
                json!(["enricher", "consumed", "orders", span_id(1, 4), "ok", ms(29), 1]),
                json!(["enricher", "produced", "orders.enriched", span_id(1, 5), "ok", null, 1]),
                // The lag of a consume counts from the publish on its own stream.
                json!(["shipping", "consumed", "orders.enriched", span_id(1, 6), "error", ms(15), 1]),
                json!(["shipping", "consumed", "orders.enriched", span_id(1, 7), "ok", ms(1965), 2]),
            ]
        );
        // One hop in full: every event column survives the trip through the store.
        assert_eq!(
            journey["hops"][0],
            json!({
                "trace_id": trace_id(1),
                "span_id": span_id(1, 2),
                "parent_span_id": span_id(1, 1),
                "service": "checkout",
                "name": "publish order.created",
                "kind": "producer",
                "action": "produced",
                "start_time": order_at(fleet, 1, 1),
                "start_time_unix_nano": fleet.order_start(1) + NANOS_PER_MILLI,
                "duration_ns": NANOS_PER_MILLI,
                "status": "ok",
                "event_id": "order-1",
                "event_type": "order.created",
                "schema": "order.v1",
                "stream": "orders",
                "broker": "kafka",
                "modified": false,
                "partition": 1,
                "offset": 101,
                "message_id": "m-1",
                "attributes": {},
                "resource": {},
                "attempt": 1,
                "joined_by": "event_id",
            })
        );
        assert_eq!(journey["hops"][2]["modified"], json!(true));
        assert_eq!(journey["hops"][4]["status_message"], json!("carrier timed out"));
        assert_eq!(
            journey["hops"][5]["links"],
            json!([{"trace_id": trace_id(1), "span_id": span_id(1, 5), "attributes": {"reason": "retry"}}])
        );
        // Another event: one publish, no consumers.
        let stock = api.get_json("/api/v1/events/stock-1", &[]).await;
        assert_eq!(stock["traces"], json!([INVENTORY_TRACE]));
        assert_eq!(stock["hops"].as_array().map(Vec::len), Some(1));
        assert_eq!(stock["hops"][0]["span_id"], json!(INVENTORY_SPAN));
    })
    .await;
}

/// A trace as nested `[span_id, [children...]]`.
pub(crate) fn shape(node: &Value) -> Value {
    let children: Vec<Value> = node["children"]
        .as_array()
        .expect("children")
        .iter()
        .map(shape)
        .collect();
    json!([node["span_id"], children])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_nests_children_under_their_parents_in_time_order() {
    at_every_stage(async |api, fleet| {
        let trace = api
            .get_json(&format!("/api/v1/traces/{}", trace_id(1)), &[])
            .await;
        assert_eq!(trace["trace_id"], json!(trace_id(1)));
        assert_eq!(trace["n_spans"], json!(6));
        assert_eq!(
            trace["services"],
            json!(["billing", "checkout", "enricher", "shipping"])
        );
        assert_eq!(trace["unreadable_blocks"], json!([]));
        let roots: Vec<Value> = trace["roots"]
            .as_array()
            .unwrap()
            .iter()
            .map(shape)
            .collect();
        let id = |step| json!(span_id(1, step));
        assert_eq!(
            roots,
            vec![json!([
                id(1),
                [[id(2), [[id(3), []], [id(4), [[id(5), [[id(6), []]]]]]]]]
            ])]
        );
        let root = &trace["roots"][0];
        assert_eq!(root["kind"], json!("server"));
        assert!(
            root.get("action").is_none(),
            "a request span has no action: {root}"
        );
        assert_eq!(root["start_time"], json!(order_at(fleet, 1, 0)));
        assert_eq!(root["duration_ns"], json!(5 * NANOS_PER_MILLI));
        assert_eq!(
            root["attributes"],
            json!({"http.method": "POST", "http.status_code": 201, "ratio": 0.5, "retry": false})
        );
        assert_eq!(
            root["resource"],
            json!({"host.name": "checkout-0", "service.version": "1.4.2"})
        );
        // Upper-case ids are accepted and answered in lower case.
        let upper = api
            .get_json(
                &format!("/api/v1/traces/{}", trace_id(1).to_uppercase()),
                &[],
            )
            .await;
        assert_eq!(upper, trace);
        // The retry's own trace: one root, linked to the publish in the order's trace.
        let retry = api
            .get_json(&format!("/api/v1/traces/{}", trace_id(RETRY_TRACE)), &[])
            .await;
        assert_eq!(retry["n_spans"], json!(1));
        assert_eq!(shape(&retry["roots"][0]), json!([span_id(1, 7), []]));
        // Each names the other: the retry continued the order's trace, by its event id and by
        // its link to the publish.
        let link = json!({"trace_id": trace_id(RETRY_TRACE), "span_id": span_id(1, 7),
            "linked_trace_id": trace_id(1), "linked_span_id": span_id(1, 5)});
        assert_eq!(
            trace["continued_in"],
            json!([{"trace_id": trace_id(RETRY_TRACE), "root_service": "shipping",
                "event_ids": ["order-1"], "links": [link]}])
        );
        assert_eq!(trace["continued_from"], json!([]));
        assert_eq!(
            retry["continued_from"],
            json!([{"trace_id": trace_id(1), "root_service": "checkout",
                "event_ids": ["order-1"], "links": [link]}])
        );
        assert_eq!(retry["continued_in"], json!([]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_trace_whose_parents_form_a_cycle_still_answers() {
    // Before the fix, a trace without any root (every parent present, in a cycle) made the
    // tree builder loop forever inside the request handler.
    let server = TestServer::start().await;
    let trace = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
    let start = muninn_model::now_unix_nanos() - 60 * NANOS_PER_SECOND;
    let first = "00000000000000a1";
    let second = "00000000000000a2";
    let child = "00000000000000a3";
    server
        .api
        .ingest_ok(
            "/api/v1/spans",
            &[
                span(
                    trace,
                    first,
                    Some(second),
                    "loop",
                    "first",
                    "internal",
                    start,
                ),
                span(
                    trace,
                    second,
                    Some(first),
                    "loop",
                    "second",
                    "internal",
                    start + 1,
                ),
                span(
                    trace,
                    child,
                    Some(second),
                    "loop",
                    "child",
                    "internal",
                    start + 2,
                ),
            ],
        )
        .await;
    let answer = server
        .api
        .get_json(&format!("/api/v1/traces/{trace}"), &[])
        .await;
    assert_eq!(answer["n_spans"], json!(3));
    // The cycle is cut at its earliest span; every span appears exactly once.
    assert_eq!(answer["roots"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        shape(&answer["roots"][0]),
        json!([first, [[second, [[child, []]]]]])
    );

    // A span that is its own parent, and one whose parent never arrived, are roots.
    let other = "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2";
    server
        .api
        .ingest_ok(
            "/api/v1/spans",
            &[
                span(
                    other,
                    "00000000000000b1",
                    Some("00000000000000b1"),
                    "loop",
                    "self",
                    "internal",
                    start,
                ),
                span(
                    other,
                    "00000000000000b2",
                    Some("00000000000000ff"),
                    "loop",
                    "orphan",
                    "internal",
                    start + 1,
                ),
            ],
        )
        .await;
    let answer = server
        .api
        .get_json(&format!("/api/v1/traces/{other}"), &[])
        .await;
    let roots: Vec<Value> = answer["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(shape)
        .collect();
    assert_eq!(
        roots,
        vec![
            json!(["00000000000000b1", []]),
            json!(["00000000000000b2", []])
        ]
    );
    server.stop().await;
}
