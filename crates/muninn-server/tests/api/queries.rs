//! Every query route over the fleet, with the exact answers: catalog, producers and consumers,
//! streams, services, throughput with its filters, and lineage (journeys and trace trees are in
//! `queries_traces.rs`). Each answer is checked four times: from the in-memory head, after
//! `POST /api/v1/admin/flush` (read from Parquet blocks), after a restart on the same data
//! directory, and on a second server that took the fleet in two flushes and compacted their
//! blocks into one per hour. Every answer is also the same byte for byte from the head, from
//! blocks and after a restart, and `from`/`to` take every form of time they document.

use serde_json::{Value, json};

use crate::queries_traces::shape;
use crate::support::{
    Api, Fleet, INVENTORY_TRACE, NANOS_PER_MILLI, NANOS_PER_SECOND, RETRY_TRACE, TestServer,
    params, rfc3339, span, span_id, trace_id,
};

/// Ingests the fleet, then runs `check` from the head, from blocks, after a restart, and from
/// compacted blocks.
pub(crate) async fn at_every_stage(check: impl AsyncFn(&Api, &Fleet)) {
    let fleet = Fleet::new();
    let mut server = TestServer::start().await;
    server.ingest_fleet(&fleet).await;
    eprintln!("stage: answers from the in-memory head");
    check(&server.api, &fleet).await;
    let flushed = server.flush().await;
    assert_eq!(
        flushed["spans_written"],
        json!(fleet.spans.len()),
        "flush answer: {flushed}"
    );
    assert!(
        flushed["blocks_written"].as_u64() >= Some(1),
        "flush answer: {flushed}"
    );
    eprintln!("stage: answers from Parquet blocks after a flush");
    check(&server.api, &fleet).await;
    server.restart().await;
    eprintln!("stage: answers after a restart on the same data directory");
    check(&server.api, &fleet).await;
    server.stop().await;

    let server = TestServer::start().await;
    let half = fleet.spans.len() / 2;
    server
        .api
        .ingest_ok("/api/v1/spans", &fleet.spans[..half])
        .await;
    server.flush().await;
    server
        .api
        .ingest_ok("/api/v1/spans", &fleet.spans[half..])
        .await;
    server.api.ingest_ok("/api/v1/counts", &fleet.counts).await;
    server.flush().await;
    let compacted = server.compact().await;
    assert!(
        compacted["blocks_in"].as_u64() > compacted["blocks_out"].as_u64()
            && compacted["spans"] == json!(fleet.spans.len()),
        "compaction answer: {compacted}"
    );
    eprintln!("stage: answers from blocks compacted from two flushes");
    check(&server.api, &fleet).await;
    server.stop().await;
}

fn at(fleet: &Fleet, seconds_after_first_minute: i64) -> String {
    rfc3339((fleet.minute + seconds_after_first_minute) * NANOS_PER_SECOND)
}

pub(crate) fn order_at(fleet: &Fleet, order: u32, millis: i64) -> String {
    rfc3339(fleet.order_start(order) + millis * NANOS_PER_MILLI)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lists_event_types_with_producers_consumers_streams_schemas_and_counts() {
    at_every_stage(async |api, fleet| {
        let range = fleet.range();
        let answer = api.get_json("/api/v1/event-types", &params(&range)).await;
        assert_eq!(
            answer,
            json!({"event_types": [
                {
                    "event_type": "order.created",
                    "count": 5,
                    // billing's own count of 40 in the second minute beats its 2 spans.
                    "consumed": 43 + 5,
                    "producers": ["checkout"],
                    "consumers": ["billing", "enricher"],
                    "streams": ["kafka/orders"],
                    "schemas": ["order.v1"],
                    // checkout's count record is dated at the start of its minute.
                    "first_seen": at(fleet, 0),
                    "last_seen": order_at(fleet, 5, 30),
                },
                {
                    "event_type": "order.enriched",
                    "count": 5,
                    "consumed": 6,
                    "producers": ["enricher"],
                    "consumers": ["shipping"],
                    "streams": ["nats/orders.enriched"],
                    "schemas": ["order.v2"],
                    "first_seen": order_at(fleet, 1, 35),
                    "last_seen": order_at(fleet, 5, 50),
                },
                {
                    "event_type": "stock.reserved",
                    "count": 100,
                    "consumed": 0,
                    "producers": ["inventory"],
                    "consumers": [],
                    "streams": ["nats/stock"],
                    "schemas": ["stock.v1"],
                    "first_seen": at(fleet, 120),
                    "last_seen": at(fleet, 125),
                },
            ]})
        );
        // The default range is the whole retention.
        assert_eq!(api.get_json("/api/v1/event-types", &[]).await, answer);
        // A range before the fleet is empty.
        let before = [
            ("from", (fleet.minute - 7200).to_string()),
            ("to", (fleet.minute - 3600).to_string()),
        ];
        assert_eq!(
            api.get_json("/api/v1/event-types", &params(&before)).await,
            json!({"event_types": []})
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_and_consumers_of_an_event_type_say_who_modifies_it() {
    at_every_stage(async |api, fleet| {
        let range = fleet.range();
        let producers = api.get_json("/api/v1/event-types/order.created/producers", &params(&range)).await;
        assert_eq!(
            producers,
            json!({"event_type": "order.created", "producers": [{
                "service": "checkout", "stream": "orders", "broker": "kafka", "count": 5,
                "first_seen": at(fleet, 0), "last_seen": order_at(fleet, 5, 1), "schemas": ["order.v1"],
            }]})
        );
        let consumers = api.get_json("/api/v1/event-types/order.created/consumers", &params(&range)).await;
        assert_eq!(
            consumers,
            json!({"event_type": "order.created", "consumers": [
                {
                    "service": "billing", "stream": "orders", "broker": "kafka", "count": 43,
                    "first_seen": order_at(fleet, 1, 20), "last_seen": order_at(fleet, 5, 20),
                    "modifies": false, "schemas": ["order.v1"],
                },
                {
                    "service": "enricher", "stream": "orders", "broker": "kafka", "count": 5,
                    "first_seen": order_at(fleet, 1, 30), "last_seen": order_at(fleet, 5, 30),
                    "modifies": true, "schemas": ["order.v1"],
                },
            ]})
        );
        let nobody = api.get_json("/api/v1/event-types/no.such.type/consumers", &params(&range)).await;
        assert_eq!(nobody, json!({"event_type": "no.such.type", "consumers": []}));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_services_describe_who_writes_and_reads_what() {
    at_every_stage(async |api, fleet| {
        let range = fleet.range();
        assert_eq!(
            api.get_json("/api/v1/streams", &params(&range)).await,
            json!({"streams": [
                {
                    "stream": "orders", "broker": "kafka", "event_types": ["order.created"],
                    "producers": ["checkout"], "consumers": ["billing", "enricher"],
                    "produced": 5, "consumed": 48, "first_seen": at(fleet, 0), "last_seen": order_at(fleet, 5, 30),
                },
                {
                    "stream": "orders.enriched", "broker": "nats", "event_types": ["order.enriched"],
                    "producers": ["enricher"], "consumers": ["shipping"],
                    "produced": 5, "consumed": 6, "first_seen": order_at(fleet, 1, 35), "last_seen": order_at(fleet, 5, 50),
                },
                {
                    "stream": "stock", "broker": "nats", "event_types": ["stock.reserved"],
                    "producers": ["inventory"], "consumers": [],
                    "produced": 100, "consumed": 0, "first_seen": at(fleet, 120), "last_seen": at(fleet, 125),
                },
            ]})
        );
        assert_eq!(
            api.get_json("/api/v1/services", &params(&range)).await,
            json!({"services": [
                {"service": "billing", "produces": [], "consumes": [
                    {"event_type": "order.created", "stream": "orders", "broker": "kafka", "count": 43, "modifies": false},
                ]},
                {"service": "checkout", "produces": [
                    {"event_type": "order.created", "stream": "orders", "broker": "kafka", "count": 5},
                ], "consumes": []},
                {"service": "enricher", "produces": [
                    {"event_type": "order.enriched", "stream": "orders.enriched", "broker": "nats", "count": 5},
                ], "consumes": [
                    {"event_type": "order.created", "stream": "orders", "broker": "kafka", "count": 5, "modifies": true},
                ]},
                {"service": "inventory", "produces": [
                    {"event_type": "stock.reserved", "stream": "stock", "broker": "nats", "count": 100},
                ], "consumes": []},
                {"service": "shipping", "produces": [], "consumes": [
                    {"event_type": "order.enriched", "stream": "orders.enriched", "broker": "nats", "count": 6, "modifies": false},
                ]},
            ]})
        );
    })
    .await;
}

/// `(service, action, stream, points)` of each series, for compact comparisons.
fn series_points(answer: &Value) -> Vec<(String, String, String, Vec<u64>)> {
    answer["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|series| {
            let points: Vec<u64> = series["points"]
                .as_array()
                .expect("points")
                .iter()
                .map(|point| point["count"].as_u64().unwrap())
                .collect();
            let total: u64 = points.iter().sum();
            assert_eq!(
                series["total"],
                json!(total),
                "total is the sum of the points: {series}"
            );
            let text = |name: &str| series[name].as_str().unwrap().to_string();
            (text("service"), text("action"), text("stream"), points)
        })
        .collect()
}

fn expected(rows: &[(&str, &str, &str, &[u64])]) -> Vec<(String, String, String, Vec<u64>)> {
    rows.iter()
        .map(|(service, action, stream, points)| {
            (
                service.to_string(),
                action.to_string(),
                stream.to_string(),
                points.to_vec(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_counts_exactly_per_step_and_counts_win_over_sampled_spans() {
    at_every_stage(async |api, fleet| {
        let five_minutes = [
            ("from", fleet.minute.to_string()),
            ("to", (fleet.minute + 300).to_string()),
        ];
        let answer = api
            .get_json("/api/v1/throughput", &params(&five_minutes))
            .await;
        assert_eq!(answer["from"], json!(at(fleet, 0)));
        assert_eq!(answer["to"], json!(at(fleet, 300)));
        assert_eq!(answer["step_seconds"], json!(60));
        let times: Vec<i64> = answer["series"][0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|point| point["time"].as_i64().unwrap())
            .collect();
        assert_eq!(
            times,
            (0..5)
                .map(|step| fleet.minute + 60 * step)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            series_points(&answer),
            expected(&[
                // 2 spans in the second minute, but billing counted 40 itself: the count wins.
                ("billing", "consumed", "orders", &[3, 40, 0, 0, 0]),
                // checkout counted 2 in the first minute, fewer than its 3 spans: the spans win.
                ("checkout", "produced", "orders", &[3, 2, 0, 0, 0]),
                ("enricher", "produced", "orders.enriched", &[3, 2, 0, 0, 0]),
                ("enricher", "consumed", "orders", &[3, 2, 0, 0, 0]),
                // One sampled span and a count of 100 in the same minute: 100.
                ("inventory", "produced", "stock", &[0, 0, 100, 0, 0]),
                // Order 1 was consumed twice (a retry).
                ("shipping", "consumed", "orders.enriched", &[4, 2, 0, 0, 0]),
            ])
        );
        let get = async |extra: &[(&str, &str)]| {
            let mut query = params(&five_minutes);
            query.extend_from_slice(extra);
            series_points(&api.get_json("/api/v1/throughput", &query).await)
        };
        assert_eq!(
            get(&[("step", "5m")]).await,
            expected(&[
                ("billing", "consumed", "orders", &[43]),
                ("checkout", "produced", "orders", &[5]),
                ("enricher", "produced", "orders.enriched", &[5]),
                ("enricher", "consumed", "orders", &[5]),
                ("inventory", "produced", "stock", &[100]),
                ("shipping", "consumed", "orders.enriched", &[6]),
            ])
        );
        let services = |rows: Vec<(String, String, String, Vec<u64>)>| {
            rows.into_iter()
                .map(|(service, action, _, _)| format!("{service} {action}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            services(get(&[("event_type", "order.created")]).await),
            ["billing consumed", "checkout produced", "enricher consumed"]
        );
        assert_eq!(
            services(get(&[("service", "enricher")]).await),
            ["enricher produced", "enricher consumed"]
        );
        assert_eq!(
            services(get(&[("stream", "orders.enriched")]).await),
            ["enricher produced", "shipping consumed"]
        );
        assert_eq!(
            services(get(&[("action", "consumed")]).await),
            ["billing consumed", "enricher consumed", "shipping consumed"]
        );
        // The span kind names are accepted for the action too.
        assert_eq!(
            services(get(&[("action", "producer")]).await),
            [
                "checkout produced",
                "enricher produced",
                "inventory produced"
            ]
        );
        assert_eq!(
            services(get(&[("service", "enricher"), ("action", "consumed")]).await),
            ["enricher consumed"]
        );
        assert_eq!(get(&[("service", "nobody")]).await, expected(&[]));
        // The default range is the last hour, which holds the whole fleet.
        let last_hour = api.get_json("/api/v1/throughput", &[("step", "1h")]).await;
        let totals: Vec<u64> = last_hour["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|series| series["total"].as_u64().unwrap())
            .collect();
        assert_eq!(totals, [43, 5, 5, 5, 100, 6]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_json_has_one_edge_per_service_action_stream_and_event_type() {
    at_every_stage(async |api, fleet| {
        let range = fleet.range();
        let edge = |service: &str, action: &str, stream: &str, broker: &str, event_type: &str, count: u64, modifies: bool, first: String, last: String| {
            json!({
                "service": service, "action": action, "stream": stream, "broker": broker, "event_type": event_type,
                "count": count, "modifies": modifies, "first_seen": first, "last_seen": last,
            })
        };
        let all_edges = vec![
            edge("billing", "consumed", "orders", "kafka", "order.created", 43, false, order_at(fleet, 1, 20), order_at(fleet, 5, 20)),
            edge("checkout", "produced", "orders", "kafka", "order.created", 5, false, at(fleet, 0), order_at(fleet, 5, 1)),
            edge("enricher", "produced", "orders.enriched", "nats", "order.enriched", 5, false, order_at(fleet, 1, 35), order_at(fleet, 5, 35)),
            edge("enricher", "consumed", "orders", "kafka", "order.created", 5, true, order_at(fleet, 1, 30), order_at(fleet, 5, 30)),
            edge("inventory", "produced", "stock", "nats", "stock.reserved", 100, false, at(fleet, 120), at(fleet, 125)),
            edge("shipping", "consumed", "orders.enriched", "nats", "order.enriched", 6, false, order_at(fleet, 1, 50), order_at(fleet, 5, 50)),
        ];
        let lineage = api.get_json("/api/v1/lineage", &params(&range)).await;
        assert_eq!(
            lineage,
            json!({"from": at(fleet, -3600), "to": at(fleet, 3600), "edges": all_edges.clone()})
        );
        let edges_with = async |extra: &[(&str, &str)]| {
            let mut query = params(&range);
            query.extend_from_slice(extra);
            api.get_json("/api/v1/lineage", &query).await["edges"].clone()
        };
        let pick = |indices: &[usize]| Value::Array(indices.iter().map(|index| all_edges[*index].clone()).collect());
        // A service, its own edges and one hop up- and downstream on its streams.
        assert_eq!(edges_with(&[("service", "enricher")]).await, pick(&[0, 1, 2, 3, 5]));
        assert_eq!(edges_with(&[("event_type", "order.enriched")]).await, pick(&[2, 5]));
        assert_eq!(edges_with(&[("stream", "orders")]).await, pick(&[0, 1, 3]));
        assert_eq!(edges_with(&[("action", "produced")]).await, pick(&[1, 2, 4]));
        assert_eq!(edges_with(&[("format", "json"), ("service", "inventory")]).await, pick(&[4]));
        // Patterns select a domain, keeping the edges that touch it: `*` any run, `?` one.
        assert_eq!(edges_with(&[("event_type", "order.*")]).await, pick(&[0, 1, 2, 3, 5]));
        assert_eq!(edges_with(&[("service", "*ing")]).await, pick(&[0, 1, 2, 3, 5]));
        assert_eq!(edges_with(&[("service", "ship*")]).await, pick(&[2, 5]));
        assert_eq!(edges_with(&[("service", "billin?")]).await, pick(&[0, 1, 3]));
        assert_eq!(edges_with(&[("stream", "orders*"), ("action", "produced")]).await, pick(&[1, 2]));
        assert_eq!(edges_with(&[("event_type", "order.?")]).await, json!([]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_byte_identical_from_head_blocks_and_after_restart() {
    let fleet = Fleet::new();
    let mut server = TestServer::start().await;
    server.ingest_fleet(&fleet).await;
    let range = fleet.range();
    let five_minutes = [
        ("from", fleet.minute.to_string()),
        ("to", (fleet.minute + 300).to_string()),
    ];
    let mut queries: Vec<(String, Vec<(&str, String)>)> = vec![
        ("/api/v1/event-types".into(), range.to_vec()),
        (
            "/api/v1/event-types/order.created/producers".into(),
            range.to_vec(),
        ),
        (
            "/api/v1/event-types/order.created/consumers".into(),
            range.to_vec(),
        ),
        (
            "/api/v1/event-types/order.enriched/consumers".into(),
            range.to_vec(),
        ),
        ("/api/v1/streams".into(), range.to_vec()),
        ("/api/v1/services".into(), range.to_vec()),
        ("/api/v1/throughput".into(), five_minutes.to_vec()),
        ("/api/v1/lineage".into(), range.to_vec()),
        ("/api/v1/events/stock-1".into(), Vec::new()),
        (
            format!("/api/v1/traces/{}", trace_id(RETRY_TRACE)),
            Vec::new(),
        ),
        (format!("/api/v1/traces/{INVENTORY_TRACE}"), Vec::new()),
    ];
    for format in ["mermaid", "dot"] {
        let mut query = range.to_vec();
        query.push(("format", format.to_string()));
        queries.push(("/api/v1/lineage".into(), query));
    }
    for order in 1..=5 {
        queries.push((format!("/api/v1/events/order-{order}"), Vec::new()));
        queries.push((format!("/api/v1/traces/{}", trace_id(order)), Vec::new()));
    }
    async fn snapshot(api: &Api, queries: &[(String, Vec<(&str, String)>)]) -> Vec<String> {
        let mut answers = Vec::new();
        for (path, query) in queries {
            let answer = api.get(path, &params(query)).await;
            assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
            answers.push(answer.text);
        }
        answers
    }
    let from_head = snapshot(&server.api, &queries).await;
    server.flush().await;
    let from_blocks = snapshot(&server.api, &queries).await;
    server.restart().await;
    let after_restart = snapshot(&server.api, &queries).await;
    for (index, (path, _)) in queries.iter().enumerate() {
        assert_eq!(
            from_blocks[index], from_head[index],
            "GET {path} changed after the flush"
        );
        assert_eq!(
            after_restart[index], from_head[index],
            "GET {path} changed after the restart"
        );
    }
    // Spans ingested after the restart join the ones read back from blocks.
    let late = span(
        &trace_id(1),
        &span_id(1, 8),
        Some(&span_id(1, 1)),
        "audit",
        "record order",
        "internal",
        fleet.order_start(1) + 3 * NANOS_PER_SECOND,
    );
    server.api.ingest_ok("/api/v1/spans", &[late]).await;
    let trace = server
        .api
        .get_json(&format!("/api/v1/traces/{}", trace_id(1)), &[])
        .await;
    assert_eq!(trace["n_spans"], json!(7));
    assert_eq!(shape(&trace["roots"][0])[1][1][0], json!(span_id(1, 8)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_and_to_accept_rfc3339_unix_seconds_now_and_relative_times() {
    let fleet = Fleet::new();
    let server = TestServer::start().await;
    server.ingest_fleet(&fleet).await;
    let edges = async |from: &str, to: &str| {
        let answer = server
            .api
            .get_json("/api/v1/lineage", &[("from", from), ("to", to)])
            .await;
        answer["edges"].as_array().map(Vec::len).unwrap_or_default()
    };
    let (from_seconds, to_seconds) = (fleet.minute - 3600, fleet.minute + 3600);
    let unix = edges(&from_seconds.to_string(), &to_seconds.to_string()).await;
    assert_eq!(unix, 6);
    let rfc3339_from = rfc3339(from_seconds * NANOS_PER_SECOND);
    let answer = server
        .api
        .get_json(
            "/api/v1/lineage",
            &[("from", &rfc3339_from), ("to", &to_seconds.to_string())],
        )
        .await;
    assert_eq!(answer["from"], json!(rfc3339_from));
    assert_eq!(answer["edges"].as_array().map(Vec::len), Some(6));
    // An offset other than Z names the same instant.
    let answer = server
        .api
        .get_json(
            "/api/v1/lineage",
            &[("from", "1970-01-01T01:00:00+01:00"), ("to", "+1h")],
        )
        .await;
    assert_eq!(answer["from"], json!("1970-01-01T00:00:00Z"));
    assert_eq!(edges("-2h", "now").await, 6);
    assert_eq!(edges("now-2h", "+1h").await, 6);
    assert_eq!(
        edges("now-1m", "now").await,
        0,
        "the fleet is older than a minute"
    );
    let throughput = server
        .api
        .get_json(
            "/api/v1/throughput",
            &[("from", &at(&fleet, 0)), ("to", &at(&fleet, 300))],
        )
        .await;
    assert_eq!(
        throughput["series"][0]["points"].as_array().map(Vec::len),
        Some(5)
    );
    server.stop().await;
}
