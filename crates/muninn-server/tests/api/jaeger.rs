//! Jaeger's query API as Jaeger UI and Grafana's Jaeger data source call it: the answers for
//! the shop fleet against the golden file `golden/jaeger_fleet.json` (regenerate with
//! `UPDATE_GOLDEN=1`), identical before and after a flush; every search filter proven by a case
//! that would fail without it; and errors in Jaeger's envelope naming the parameter.

use serde_json::{Value, json};

use crate::compat::{Case, Golden, SearchFleet, Window, check_cases, search_trace};
use crate::support::{Api, Fleet, INVENTORY_TRACE, RETRY_TRACE, TestServer, span_id, trace_id};

/// The trace ids of a Jaeger answer's `data`.
fn data_trace_ids(answer: &Value) -> Vec<String> {
    answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {answer}"))
        .iter()
        .map(|trace| trace["traceID"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The Jaeger answers the golden file holds.
async fn fleet_answers(api: &Api, fleet: &Fleet) -> Golden {
    let window = Window::of(fleet);
    let times = ["startTime"];
    let mut golden = Golden::new();
    golden
        .get(api, &window, fleet, "/api/services", &[], &times)
        .await;
    golden
        .get(
            api,
            &window,
            fleet,
            "/api/services/checkout/operations",
            &[],
            &times,
        )
        .await;
    golden
        .get(
            api,
            &window,
            fleet,
            "/api/operations",
            &[("service", "enricher")],
            &times,
        )
        .await;
    golden
        .get(
            api,
            &window,
            fleet,
            "/api/operations",
            &[("service", "enricher"), ("spanKind", "producer")],
            &times,
        )
        .await;
    golden
        .get(
            api,
            &window,
            fleet,
            "/api/traces",
            &[
                ("service", "shipping"),
                ("tags", r#"{"error":"true"}"#),
                ("start", "{start_us}"),
                ("end", "{end_us}"),
            ],
            &times,
        )
        .await;
    for trace in [trace_id(2), trace_id(RETRY_TRACE)] {
        golden
            .get(
                api,
                &window,
                fleet,
                &format!("/api/traces/{trace}"),
                &[],
                &times,
            )
            .await;
    }
    for streams in ["false", "true"] {
        golden
            .get(
                api,
                &window,
                fleet,
                "/api/dependencies",
                &[
                    ("endTs", "{end_ms}"),
                    ("lookback", "{lookback_ms}"),
                    ("streams", streams),
                ],
                &times,
            )
            .await;
    }
    golden
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_answers_for_the_fleet_match_the_golden_file_from_memory_and_blocks() {
    let fleet = Fleet::new();
    let server = TestServer::start().await;
    server.ingest_fleet(&fleet).await;
    let in_memory = fleet_answers(&server.api, &fleet).await;
    server.flush().await;
    let from_blocks = fleet_answers(&server.api, &fleet).await;
    assert_eq!(
        in_memory.text(),
        from_blocks.text(),
        "a flush changed the Jaeger answers"
    );
    from_blocks.check("jaeger_fleet.json");

    // What Jaeger UI draws from, spelled out.
    let services = server.api.get_json("/api/services", &[]).await;
    assert_eq!(
        services,
        json!({"data": ["billing", "checkout", "enricher", "inventory", "shipping"],
               "total": 5, "limit": 0, "offset": 0, "errors": null})
    );
    let trace = server
        .api
        .get_json(&format!("/api/traces/{}", trace_id(1)), &[])
        .await;
    let trace = &trace["data"][0];
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 6, "the trace of order 1 has six spans");
    let publish = spans
        .iter()
        .find(|span| span["operationName"] == "publish order.created")
        .unwrap();
    assert_eq!(
        publish["references"],
        json!([{"refType": "CHILD_OF", "traceID": trace_id(1), "spanID": span_id(1, 1)}])
    );
    let tag = |span: &Value, key: &str| {
        span["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|tag| tag["key"] == key)
            .map(|tag| tag["value"].clone())
    };
    assert_eq!(tag(publish, "messaging.system"), Some(json!("kafka")));
    assert_eq!(
        tag(publish, "messaging.destination.name"),
        Some(json!("orders"))
    );
    assert_eq!(
        tag(publish, "cloudevents.event_type"),
        Some(json!("order.created"))
    );
    assert_eq!(
        tag(publish, "messaging.operation.type"),
        Some(json!("send"))
    );
    assert_eq!(tag(publish, "span.kind"), Some(json!("producer")));
    // Microseconds, as Jaeger counts.
    assert_eq!(publish["duration"], json!(1000));
    assert_eq!(
        publish["startTime"],
        json!((fleet.order_start(1) + 1_000_000) / 1000)
    );
    // The request span's resource is its process.
    let request = &spans[0];
    let process = &trace["processes"][request["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "checkout");
    assert_eq!(
        process["tags"],
        json!([{"key": "host.name", "type": "string", "value": "checkout-0"},
               {"key": "service.version", "type": "string", "value": "1.4.2"}])
    );
    // The shipping retry's own trace follows from the publish it is linked to.
    let retry = server
        .api
        .get_json(&format!("/api/traces/{}", trace_id(RETRY_TRACE)), &[])
        .await;
    assert_eq!(
        retry["data"][0]["spans"][0]["references"],
        json!([{"refType": "FOLLOWS_FROM", "traceID": trace_id(1), "spanID": span_id(1, 5)}])
    );
    // Dependencies from roll-ups: billing took 43 events (3 spans, then a count of 40).
    let window = Window::of(&fleet);
    let end_ms = &window.placeholders[2].1;
    let dependencies = server
        .api
        .get_json(
            "/api/dependencies",
            &[("endTs", end_ms.as_str()), ("lookback", "7200000")],
        )
        .await;
    assert_eq!(
        dependencies["data"],
        json!([
            {"parent": "checkout", "child": "billing", "callCount": 43},
            {"parent": "checkout", "child": "enricher", "callCount": 5},
            {"parent": "enricher", "child": "shipping", "callCount": 6},
        ])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_jaeger_search_filter_narrows_the_traces_found() {
    let fleet = SearchFleet::new();
    let server = TestServer::start().await;
    server.api.ingest_ok("/api/v1/spans", &fleet.spans).await;
    let window = |mut params: Vec<(&'static str, String)>| {
        params.push(("start", fleet.micros(0)));
        params.push(("end", fleet.micros(100)));
        params
    };
    let api_service = || vec![("service", "api".to_string())];
    let with = |extra: Vec<(&'static str, &str)>| {
        let mut params = api_service();
        params.extend(
            extra
                .into_iter()
                .map(|(name, value)| (name, value.to_string())),
        );
        window(params)
    };
    let cases = vec![
        Case {
            what: "service alone: every api trace, most recent first",
            params: with(vec![]),
            expected: vec![5, 3, 2, 1],
        },
        Case {
            what: "another service",
            params: window(vec![("service", "db".to_string())]),
            expected: vec![5, 4],
        },
        Case {
            what: "operation",
            params: with(vec![("operation", "GET /a")]),
            expected: vec![5, 3, 1],
        },
        Case {
            what: "minDuration",
            params: with(vec![("minDuration", "10ms")]),
            expected: vec![3, 2],
        },
        Case {
            what: "maxDuration",
            params: with(vec![("maxDuration", "0.01s")]),
            expected: vec![5, 1],
        },
        Case {
            what: "both durations",
            params: with(vec![("minDuration", "10ms"), ("maxDuration", "100ms")]),
            expected: vec![2],
        },
        Case {
            what: "a tag with a number value",
            params: with(vec![("tags", r#"{"http.status_code":"500"}"#)]),
            expected: vec![2],
        },
        Case {
            what: "the error tag",
            params: with(vec![("tags", r#"{"error":"true"}"#)]),
            expected: vec![2],
        },
        Case {
            what: "two tags on the same span",
            params: with(vec![("tags", r#"{"region":"eu","http.status_code":200}"#)]),
            expected: vec![3],
        },
        Case {
            what: "the older tag=key:value form",
            params: with(vec![("tag", "region:us")]),
            expected: vec![1],
        },
        Case {
            what: "a tag of another service's span",
            params: window(vec![
                ("service", "db".to_string()),
                ("tags", r#"{"peer.service":"postgres"}"#.to_string()),
            ]),
            expected: vec![4],
        },
        Case {
            what: "limit keeps the most recent",
            params: with(vec![("limit", "2")]),
            expected: vec![5, 3],
        },
        Case {
            what: "start and end",
            params: vec![
                ("service", "api".to_string()),
                ("start", fleet.micros(15)),
                ("end", fleet.micros(35)),
            ],
            expected: vec![3, 2],
        },
    ];
    check_cases(&server, &cases, |api, params| async move {
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        data_trace_ids(&api.get_json("/api/traces", &pairs).await)
    })
    .await;
    // Traces come back whole: trace 5 found through its db span has its api span too.
    let found = server
        .api
        .get_json(
            "/api/traces",
            &[("service", "db"), ("limit", "1"), ("lookback", "2h")],
        )
        .await;
    assert_eq!(data_trace_ids(&found), [search_trace(5)]);
    assert_eq!(found["data"][0]["spans"].as_array().unwrap().len(), 2);
    // Several traces by id; an unknown one is left out.
    let by_id = server
        .api
        .get(
            "/api/traces",
            &[
                ("traceID", search_trace(1).as_str()),
                ("traceID", "ffff"),
                ("traceID", search_trace(4).as_str()),
            ],
        )
        .await;
    assert_eq!(by_id.status, 200, "{}", by_id.text);
    assert_eq!(
        data_trace_ids(&by_id.json()),
        [search_trace(1), search_trace(4)]
    );
    // Operations with their kinds, and of one kind.
    let operations = server
        .api
        .get_json("/api/operations", &[("service", "db")])
        .await;
    assert_eq!(
        operations["data"],
        json!([{"name": "SELECT", "spanKind": "client"}])
    );
    let none = server
        .api
        .get_json(
            "/api/operations",
            &[("service", "db"), ("spanKind", "server")],
        )
        .await;
    assert_eq!(none["data"], json!([]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jaeger_parameters_are_named_in_jaegers_error_envelope() {
    let server = TestServer::start().await;
    server
        .api
        .ingest_ok("/api/v1/spans", &SearchFleet::new().spans)
        .await;
    // (path, parameters, the parameter the error must name)
    type BadCase = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        &'static str,
    );
    let cases: Vec<BadCase> = vec![
        ("/api/traces", vec![], "service"),
        (
            "/api/traces",
            vec![("service", "api"), ("minDuration", "fast")],
            "minDuration",
        ),
        (
            "/api/traces",
            vec![("service", "api"), ("maxDuration", "10")],
            "maxDuration",
        ),
        (
            "/api/traces",
            vec![
                ("service", "api"),
                ("minDuration", "2s"),
                ("maxDuration", "1s"),
            ],
            "minDuration",
        ),
        (
            "/api/traces",
            vec![("service", "api"), ("limit", "0")],
            "limit",
        ),
        (
            "/api/traces",
            vec![("service", "api"), ("limit", "many")],
            "limit",
        ),
        (
            "/api/traces",
            vec![("service", "api"), ("start", "yesterday")],
            "start",
        ),
        (
            "/api/traces",
            vec![("service", "api"), ("start", "20"), ("end", "10")],
            "start",
        ),
        (
            "/api/traces",
            vec![("service", "api"), ("tags", "{oops")],
            "tags",
        ),
        (
            "/api/traces",
            vec![("service", "api"), ("tags", r#"{"a":[1]}"#)],
            "tags",
        ),
        (
            "/api/traces",
            vec![("service", "api"), ("tag", "no-colon")],
            "tag",
        ),
        (
            "/api/traces",
            vec![("service", "api"), ("lookback", "a while")],
            "lookback",
        ),
        ("/api/traces", vec![("traceID", "not-hex")], "traceID"),
        ("/api/operations", vec![], "service"),
        (
            "/api/operations",
            vec![("service", "api"), ("spanKind", "sideways")],
            "spanKind",
        ),
        ("/api/dependencies", vec![("endTs", "soon")], "endTs"),
        ("/api/dependencies", vec![("lookback", "-5")], "lookback"),
        ("/api/dependencies", vec![("streams", "maybe")], "streams"),
        ("/api/traces/xyz", vec![], "traceID"),
    ];
    for (path, params, field) in cases {
        let answer = server.api.get(path, &params).await;
        assert_eq!(answer.status, 400, "{path} {params:?}: {}", answer.text);
        let body = answer.json();
        assert_eq!(body["data"], Value::Null, "{body}");
        let error = &body["errors"][0];
        assert_eq!(error["code"], 400, "{body}");
        assert_eq!(error["field"], field, "{path} {params:?}: {body}");
        assert!(
            error["msg"].as_str().unwrap_or_default().starts_with(field),
            "the message names {field}: {body}"
        );
    }
    let missing = server
        .api
        .get(&format!("/api/traces/{INVENTORY_TRACE}"), &[])
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["errors"][0]["code"], 404);
    // Still serving.
    let services = server.api.get_json("/api/services", &[]).await;
    assert_eq!(services["data"], json!(["api", "db"]));
    server.stop().await;
}

/// Every `spans.parquet` under the data directory, overwritten with bytes that are not Parquet
/// (same length, so the footer read earlier points into garbage).
fn corrupt_blocks(data_dir: &std::path::Path) -> usize {
    let mut n_files = 0;
    let mut pending = vec![data_dir.join("blocks")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|name| name == "spans.parquet") {
                let size = std::fs::metadata(&path).unwrap().len() as usize;
                std::fs::write(&path, vec![0xab; size]).unwrap();
                n_files += 1;
            }
        }
    }
    n_files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_block_makes_a_partial_answer_not_a_failure() {
    let fleet = SearchFleet::new();
    let mut server = TestServer::start().await;
    server.api.ingest_ok("/api/v1/spans", &fleet.spans).await;
    server.flush().await;
    assert!(corrupt_blocks(server.data_dir()) > 0);
    // Newer spans, still in memory, are found; the block is reported.
    let mut late = fleet.spans[0].clone();
    late["trace_id"] = serde_json::json!(search_trace(9));
    late["start_time_unix_nano"] = serde_json::json!(fleet.base + 9 * 1_000_000_000);
    server.api.ingest_ok("/api/v1/spans", &[late]).await;
    let jaeger = server
        .api
        .get_json("/api/traces", &[("service", "api"), ("lookback", "2h")])
        .await;
    assert_eq!(data_trace_ids(&jaeger), [search_trace(9)]);
    let errors = jaeger["errors"].as_array().expect("errors next to data");
    assert!(
        errors[0]["msg"].as_str().unwrap().contains("spans.parquet"),
        "{jaeger}"
    );
    assert_eq!(errors[0]["code"], 500);
    // The services a flush wrote are remembered from the flush, not read back.
    let services = server.api.get_json("/api/services", &[]).await;
    assert_eq!(services["data"], json!(["api", "db"]));
    // After a restart they must be read from the block, which fails: the answer says so.
    server.restart().await;
    let services = server.api.get_json("/api/services", &[]).await;
    assert_eq!(services["data"], json!(["api"]));
    assert!(
        services["errors"][0]["msg"]
            .as_str()
            .is_some_and(|message| message.contains("spans.parquet")),
        "{services}"
    );
    let zipkin = server
        .api
        .get("/api/v2/traces", &[("serviceName", "api")])
        .await;
    assert_eq!(zipkin.status, 200, "{}", zipkin.text);
    assert_eq!(zipkin.header("muninn-unreadable-blocks"), Some("1"));
    assert_eq!(zipkin.json().as_array().unwrap().len(), 1);
    server.stop().await;
}
