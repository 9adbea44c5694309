//! `GET /api/v1/event-types/{type}/schemas` and `/impact` on a small order pipeline: checkout
//! ships schema v2 from a new instance and version while legacy-shop stays on v1; enricher
//! consumes orders, changes them and publishes them again to orders.enriched, where warehouse
//! (modifying, and publishing them again to orders.picked, read by ledger, modifying, and
//! mailer) and analytics (read-only) consume them; billing reads orders and already
//! handles v2. The answers must name who sent v2 first (instance and version from the
//! resource), walk the re-publish to depth 2, and split who must redeploy — before and after a
//! restart, when the roll-ups are read back from blocks, and from blocks written before the
//! roll-ups kept first senders, when the first spans themselves are read back.

use serde_json::{Value, json};

use crate::support::{NANOS_PER_SECOND, TestServer, event, span, span_id, trace_id, with};

struct Pipeline {
    spans: Vec<Value>,
    order: u32,
}

impl Pipeline {
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        service: &str,
        kind: &str,
        at: i64,
        stream: &str,
        schema: &str,
        modified: bool,
        resource: Value,
    ) {
        self.order += 1;
        let mut span = with(
            span(
                &trace_id(self.order),
                &span_id(self.order, 0),
                None,
                service,
                &format!("{kind} order.created"),
                kind,
                at,
            ),
            event(
                &format!("evt-{}", self.order),
                "order.created",
                schema,
                stream,
                "kafka",
            ),
        );
        if modified {
            span["modified"] = json!(true);
        }
        if !resource.is_null() {
            span["resource"] = resource;
        }
        self.spans.push(span);
    }
}

/// Makes the blocks under `data_dir` look as blocks written before roll-up cells kept their
/// first span: every `rollup.json.zst` becomes a plain `rollup.json` (as they were then) whose
/// cells have no `first_span`.
fn forget_first_spans(data_dir: &std::path::Path) {
    fn visit(dir: &std::path::Path, removed: &mut usize) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, removed);
            } else if path
                .file_name()
                .is_some_and(|name| name == "rollup.json.zst")
            {
                let json = zstd::stream::decode_all(&std::fs::read(&path).unwrap()[..]).unwrap();
                let mut cells: Vec<Value> = serde_json::from_slice(&json).unwrap();
                for cell in &mut cells {
                    *removed +=
                        usize::from(cell.as_object_mut().unwrap().remove("first_span").is_some());
                }
                std::fs::write(
                    path.with_file_name("rollup.json"),
                    serde_json::to_vec(&cells).unwrap(),
                )
                .unwrap();
                std::fs::remove_file(&path).unwrap();
                // Blocks written before `first_span` was kept had no checksums either.
                let meta_path = path.with_file_name("meta.json");
                let mut meta: Value =
                    serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
                let meta = meta.as_object_mut().unwrap();
                meta.remove("rollup_crc32");
                meta.remove("spans_crc32");
                meta.remove("rollup_zstd");
                std::fs::write(&meta_path, serde_json::to_vec(meta).unwrap()).unwrap();
            }
        }
    }
    let mut removed = 0;
    visit(&data_dir.join("blocks"), &mut removed);
    assert!(
        removed > 0,
        "the blocks' roll-up cells keep who sent their first span"
    );
}

fn rfc3339(unix_nanos: i64) -> String {
    crate::support::rfc3339(unix_nanos)
}

/// The services of `list`, in order.
fn services(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|entry| entry["service"].as_str().unwrap())
        .collect()
}

fn entry<'a>(list: &'a Value, service: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["service"] == service)
        .unwrap_or_else(|| panic!("{service} missing from {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_name_their_first_sender_and_impact_splits_who_must_redeploy() {
    let mut server = TestServer::start().await;
    let start =
        (muninn_model::now_unix_nanos() / NANOS_PER_SECOND / 60 - 30) * 60 * NANOS_PER_SECOND;
    let v1_at = start + 7 * NANOS_PER_SECOND;
    let v2_at = start + 10 * 60 * NANOS_PER_SECOND + 123_456_789;
    let old = json!({"service.instance.id": "checkout-7f9c", "service.version": "1.4.2"});
    let new = json!({"service.instance.id": "checkout-2b1d", "service.version": "1.5.0"});
    let legacy = json!({"host.name": "legacy-0"});
    let mut pipeline = Pipeline {
        spans: Vec::new(),
        order: 0,
    };
    // checkout: v1 every minute for 15 minutes; from minute 10 the new instance sends v2 (a
    // rolling deploy: both for five minutes, then v2 only).
    for minute in 0..20 {
        if minute < 15 {
            let at = v1_at + minute * 60 * NANOS_PER_SECOND;
            pipeline.span(
                "checkout",
                "producer",
                at,
                "orders",
                "v1",
                false,
                old.clone(),
            );
        }
        if minute >= 10 {
            let at = v2_at + (minute - 10) * 60 * NANOS_PER_SECOND;
            pipeline.span(
                "checkout",
                "producer",
                at,
                "orders",
                "v2",
                false,
                new.clone(),
            );
        }
    }
    // legacy-shop stays on v1 on its own stream, which billing also reads.
    pipeline.span(
        "legacy-shop",
        "producer",
        start + 3 * NANOS_PER_SECOND,
        "orders-legacy",
        "v1",
        false,
        legacy,
    );
    // enricher: consumes (modifying) v1 only, publishes again to orders.enriched.
    pipeline.span(
        "enricher",
        "consumer",
        start + 8 * NANOS_PER_SECOND,
        "orders",
        "v1",
        true,
        Value::Null,
    );
    pipeline.span(
        "enricher",
        "producer",
        start + 9 * NANOS_PER_SECOND,
        "orders.enriched",
        "v1",
        false,
        Value::Null,
    );
    // billing reads orders and has handled v2 already.
    pipeline.span(
        "billing",
        "consumer",
        start + 8 * NANOS_PER_SECOND,
        "orders",
        "v1",
        false,
        Value::Null,
    );
    pipeline.span(
        "billing",
        "consumer",
        v2_at + NANOS_PER_SECOND,
        "orders",
        "v2",
        false,
        Value::Null,
    );
    // Downstream of the re-publish: warehouse changes the order, analytics only reads it.
    pipeline.span(
        "warehouse",
        "consumer",
        start + 10 * NANOS_PER_SECOND,
        "orders.enriched",
        "v1",
        true,
        Value::Null,
    );
    pipeline.span(
        "analytics",
        "consumer",
        start + 11 * NANOS_PER_SECOND,
        "orders.enriched",
        "v1",
        false,
        Value::Null,
    );
    // The second level: warehouse publishes again to orders.picked, where ledger (modifying)
    // and mailer (read-only) consume at depth 3.
    pipeline.span(
        "warehouse",
        "producer",
        start + 12 * NANOS_PER_SECOND,
        "orders.picked",
        "v1",
        false,
        Value::Null,
    );
    pipeline.span(
        "ledger",
        "consumer",
        start + 13 * NANOS_PER_SECOND,
        "orders.picked",
        "v1",
        true,
        Value::Null,
    );
    pipeline.span(
        "mailer",
        "consumer",
        start + 14 * NANOS_PER_SECOND,
        "orders.picked",
        "v1",
        false,
        Value::Null,
    );
    // Another type entirely: never part of the answer.
    let mut other = with(
        span(
            &trace_id(90),
            &span_id(90, 0),
            None,
            "shipping",
            "send",
            "producer",
            start,
        ),
        event("evt-900", "shipment.sent", "v9", "shipments", "kafka"),
    );
    other["resource"] = json!({"service.version": "9.9.9"});
    pipeline.spans.push(other);
    server.api.ingest_ok("/api/v1/spans", &pipeline.spans).await;

    for round in ["in memory", "after a restart", "from older blocks"] {
        let schemas = server
            .api
            .get_json("/api/v1/event-types/order.created/schemas", &[])
            .await;
        let names: Vec<&str> = schemas["schemas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|schema| schema["schema"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["v1", "v2"], "{round}: oldest first: {schemas}");
        let v2 = &schemas["schemas"][1];
        assert_eq!(
            v2["first_sent_by"],
            json!({
                "service": "checkout", "instance": "checkout-2b1d", "version": "1.5.0",
                "at": rfc3339(v2_at), "trace_id": trace_id(12), "span_id": span_id(12, 0),
            }),
            "{round}: v2 was first sent by the new checkout instance: {schemas}"
        );
        assert_eq!(v2["spans"], json!(10), "{round}");
        assert_eq!(v2["producers"], json!(["checkout"]), "{round}");
        let v1 = &schemas["schemas"][0];
        assert_eq!(
            v1["first_sent_by"]["service"],
            json!("legacy-shop"),
            "{round}"
        );
        assert_eq!(
            v1["first_sent_by"]["instance"],
            json!("legacy-0"),
            "{round}: host.name stands in"
        );
        assert_eq!(v1["first_sent_by"]["version"], Value::Null, "{round}");
        assert_eq!(
            v1["producers"],
            json!(["checkout", "enricher", "legacy-shop", "warehouse"]),
            "{round}"
        );
        assert_eq!(v1["spans"], json!(18), "{round}");
        let checkout = entry(&schemas["producers"], "checkout");
        assert_eq!(checkout["current"], json!("v2"), "{round}");
        assert_eq!(checkout["schemas"][0]["schema"], json!("v1"), "{round}");
        assert_eq!(checkout["schemas"][0]["spans"], json!(15), "{round}");
        assert_eq!(
            checkout["schemas"][0]["first_seen"],
            json!(rfc3339(v1_at)),
            "{round}"
        );
        assert_eq!(
            checkout["schemas"][1]["first_seen"],
            json!(rfc3339(v2_at)),
            "{round}"
        );
        assert_eq!(
            checkout["schemas"][1]["streams"],
            json!(["kafka/orders"]),
            "{round}"
        );
        assert_eq!(
            entry(&schemas["producers"], "legacy-shop")["current"],
            json!("v1")
        );

        let impact = server
            .api
            .get_json(
                "/api/v1/event-types/order.created/impact",
                &[("schema", "v2")],
            )
            .await;
        assert_eq!(
            services(&impact["must_redeploy"]),
            ["enricher", "warehouse", "ledger"],
            "{round}: {impact}"
        );
        assert_eq!(
            services(&impact["read_only"]),
            ["billing", "analytics", "mailer"],
            "{round}: {impact}"
        );
        let enricher = entry(&impact["must_redeploy"], "enricher");
        assert_eq!(enricher["depth"], json!(1));
        assert_eq!(enricher["last_schema"], json!("v1"));
        assert_eq!(enricher["handled_schema"], json!(false));
        assert_eq!(enricher["republishes_to"], json!(["kafka/orders.enriched"]));
        let warehouse = entry(&impact["must_redeploy"], "warehouse");
        assert_eq!(
            warehouse["depth"],
            json!(2),
            "reached through enricher's re-publish"
        );
        assert_eq!(warehouse["via"], json!(["enricher"]));
        assert_eq!(warehouse["streams"], json!(["kafka/orders.enriched"]));
        assert_eq!(warehouse["republishes_to"], json!(["kafka/orders.picked"]));
        for (list, service) in [("must_redeploy", "ledger"), ("read_only", "mailer")] {
            let consumer = entry(&impact[list], service);
            assert_eq!(consumer["depth"], json!(3), "{round}: {consumer}");
            assert_eq!(consumer["via"], json!(["enricher", "warehouse"]), "{round}");
            assert_eq!(
                consumer["streams"],
                json!(["kafka/orders.picked"]),
                "{round}"
            );
        }
        assert_eq!(entry(&impact["read_only"], "analytics")["depth"], json!(2));
        let billing = entry(&impact["read_only"], "billing");
        assert_eq!(billing["last_schema"], json!("v2"));
        assert_eq!(billing["handled_schema"], json!(true));
        assert_eq!(billing["streams"], json!(["kafka/orders"]));
        assert_eq!(
            impact["streams"],
            json!([
                "kafka/orders",
                "kafka/orders-legacy",
                "kafka/orders.enriched",
                "kafka/orders.picked"
            ]),
            "{round}"
        );
        assert_eq!(
            services(&impact["producers"]),
            ["checkout", "enricher", "legacy-shop", "warehouse"]
        );
        assert_eq!(
            entry(&impact["producers"], "enricher")["republishes"],
            json!(true)
        );
        assert_eq!(
            entry(&impact["producers"], "checkout")["current_schema"],
            json!("v2")
        );
        let without = server
            .api
            .get_json("/api/v1/event-types/order.created/impact", &[])
            .await;
        assert!(
            without["must_redeploy"][0].get("handled_schema").is_none(),
            "no schema asked, no handled_schema: {without}"
        );

        match round {
            "in memory" => server.restart().await,
            "after a restart" => server.restart_after(forget_first_spans).await,
            _ => {}
        }
    }

    for route in ["impact", "schemas"] {
        let unknown = server
            .api
            .get(&format!("/api/v1/event-types/order.craeted/{route}"), &[])
            .await;
        // A misspelt type is not "nobody affected".
        let error = unknown.expect_bad_field("event_type");
        assert!(
            error["message"].as_str().unwrap().contains("order.craeted"),
            "{error}"
        );
    }
    server
        .api
        .get(
            "/api/v1/event-types/order.created/impact",
            &[("schema", " ")],
        )
        .await
        .expect_bad_field("schema");
}
