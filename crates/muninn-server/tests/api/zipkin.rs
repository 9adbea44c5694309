//! Zipkin's v2 API: spans from Zipkin reporters read back through Muninn's own API, Jaeger's and
//! Zipkin's; malformed bodies answered as documented without hurting the server; the read API
//! for the shop fleet against `golden/zipkin_fleet.json` (regenerate with `UPDATE_GOLDEN=1`);
//! every search filter proven by a case that would fail without it; and a real reporter,
//! `py_zipkin`, posting to the server.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::compat::{Case, Golden, SearchFleet, Window, check_cases, search_trace};
use crate::ingest::gzip;
use crate::support::{Api, Fleet, NANOS_PER_SECOND, RETRY_TRACE, TestServer, trace_id};

/// The Zipkin answers the golden file holds.
async fn fleet_answers(api: &Api, fleet: &Fleet) -> Golden {
    let window = Window::of(fleet);
    let times = ["timestamp"];
    let mut golden = Golden::new();
    golden
        .get(api, &window, fleet, "/api/v2/services", &[], &times)
        .await;
    golden
        .get(
            api,
            &window,
            fleet,
            "/api/v2/spans",
            &[("serviceName", "enricher")],
            &times,
        )
        .await;
    golden
        .get(
            api,
            &window,
            fleet,
            "/api/v2/traces",
            &[
                ("serviceName", "shipping"),
                ("annotationQuery", "error"),
                ("endTs", "{end_ms}"),
                ("lookback", "{lookback_ms}"),
            ],
            &times,
        )
        .await;
    for trace in [trace_id(3), trace_id(RETRY_TRACE)] {
        golden
            .get(
                api,
                &window,
                fleet,
                &format!("/api/v2/trace/{trace}"),
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
                "/api/v2/dependencies",
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
async fn zipkin_answers_for_the_fleet_match_the_golden_file_from_memory_and_blocks() {
    let fleet = Fleet::new();
    let server = TestServer::start().await;
    server.ingest_fleet(&fleet).await;
    let in_memory = fleet_answers(&server.api, &fleet).await;
    server.flush().await;
    let from_blocks = fleet_answers(&server.api, &fleet).await;
    assert_eq!(
        in_memory.text(),
        from_blocks.text(),
        "a flush changed the Zipkin answers"
    );
    from_blocks.check("zipkin_fleet.json");

    let services = server.api.get_json("/api/v2/services", &[]).await;
    assert_eq!(
        services,
        json!(["billing", "checkout", "enricher", "inventory", "shipping"])
    );
    let trace = server
        .api
        .get_json(&format!("/api/v2/trace/{}", trace_id(1)), &[])
        .await;
    let spans = trace.as_array().unwrap();
    assert_eq!(spans.len(), 6);
    let failed = spans
        .iter()
        .find(|span| span["localEndpoint"]["serviceName"] == "shipping")
        .unwrap();
    assert_eq!(failed["kind"], "CONSUMER");
    assert_eq!(failed["remoteEndpoint"], json!({"serviceName": "nats"}));
    assert_eq!(failed["tags"]["error"], "carrier timed out");
    assert_eq!(
        failed["tags"]["messaging.destination.name"],
        "orders.enriched"
    );
    assert_eq!(failed["duration"], 1000, "microseconds");
    assert_eq!(
        failed["timestamp"],
        json!((fleet.order_start(1) + 50_000_000) / 1000)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_zipkin_search_filter_narrows_the_traces_found() {
    let fleet = SearchFleet::new();
    let server = TestServer::start().await;
    server.api.ingest_ok("/api/v1/spans", &fleet.spans).await;
    let window = |mut params: Vec<(&'static str, String)>| {
        params.push(("endTs", fleet.millis(100)));
        params.push(("lookback", "10000".to_string()));
        params
    };
    let with = |extra: Vec<(&'static str, &str)>| {
        let mut params = vec![("serviceName", "api".to_string())];
        params.extend(
            extra
                .into_iter()
                .map(|(name, value)| (name, value.to_string())),
        );
        window(params)
    };
    let cases = vec![
        Case {
            what: "no service: every trace",
            params: window(vec![]),
            expected: vec![5, 4, 3, 2, 1],
        },
        Case {
            what: "serviceName",
            params: with(vec![]),
            expected: vec![5, 3, 2, 1],
        },
        Case {
            what: "spanName",
            params: with(vec![("spanName", "GET /a")]),
            expected: vec![5, 3, 1],
        },
        Case {
            what: "spanName all is any name",
            params: with(vec![("spanName", "all")]),
            expected: vec![5, 3, 2, 1],
        },
        Case {
            what: "minDuration in microseconds",
            params: with(vec![("minDuration", "10000")]),
            expected: vec![3, 2],
        },
        Case {
            what: "maxDuration in microseconds",
            params: with(vec![("maxDuration", "10000")]),
            expected: vec![5, 1],
        },
        Case {
            what: "annotationQuery key=value",
            params: with(vec![("annotationQuery", "http.status_code=500")]),
            expected: vec![2],
        },
        Case {
            what: "annotationQuery bare key",
            params: with(vec![("annotationQuery", "region")]),
            expected: vec![3, 1],
        },
        Case {
            what: "annotationQuery terms joined by and",
            params: with(vec![("annotationQuery", "region and region=eu")]),
            expected: vec![3],
        },
        Case {
            what: "annotationQuery error",
            params: with(vec![("annotationQuery", "error")]),
            expected: vec![2],
        },
        Case {
            what: "remoteServiceName",
            params: window(vec![
                ("serviceName", "db".to_string()),
                ("remoteServiceName", "postgres".to_string()),
            ]),
            expected: vec![4],
        },
        Case {
            what: "limit keeps the most recent",
            params: with(vec![("limit", "2")]),
            expected: vec![5, 3],
        },
        Case {
            what: "endTs and lookback",
            params: vec![
                ("serviceName", "api".to_string()),
                ("endTs", fleet.millis(35)),
                ("lookback", "2000".to_string()),
            ],
            expected: vec![3, 2],
        },
    ];
    check_cases(&server, &cases, |api, params| async move {
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let traces = api.get_json("/api/v2/traces", &pairs).await;
        traces
            .as_array()
            .unwrap_or_else(|| panic!("not a list of traces: {traces}"))
            .iter()
            .map(|trace| trace[0]["traceId"].as_str().unwrap_or_default().to_string())
            .collect()
    })
    .await;
    let names = server
        .api
        .get_json("/api/v2/spans", &[("serviceName", "api")])
        .await;
    assert_eq!(names, json!(["GET /a", "GET /b"]));
    let whole = server
        .api
        .get_json(&format!("/api/v2/trace/{}", search_trace(5)), &[])
        .await;
    assert_eq!(whole.as_array().unwrap().len(), 2);
    server.stop().await;
}

/// A Kafka publish and its consume as Zipkin reporters (Brave's Kafka instrumentation) write
/// them: a 64-bit trace id, `kafka.topic`, the remote endpoint `kafka`, times in microseconds.
fn kafka_pair(now_micros: i64) -> Value {
    json!([
        {
            "traceId": "5af7183fb1d4cf5f", "id": "6b221d5bc9e6496c", "kind": "PRODUCER",
            "name": "send", "timestamp": now_micros, "duration": 1500,
            "localEndpoint": {"serviceName": "orders-api", "ipv4": "10.1.2.3", "port": 8080},
            "remoteEndpoint": {"serviceName": "kafka"},
            "tags": {"kafka.topic": "payments", "cloudevents.event_id": "pay-42",
                     "cloudevents.event_type": "payment.requested", "tenant": "acme"}
        },
        {
            "traceId": "5af7183fb1d4cf5f", "parentId": "6b221d5bc9e6496c",
            "id": "7c3f2e1d0a9b8c7d", "kind": "CONSUMER", "name": "poll",
            "timestamp": now_micros + 20_000, "duration": 300,
            "localEndpoint": {"serviceName": "payments"},
            "remoteEndpoint": {"serviceName": "kafka"},
            "tags": {"kafka.topic": "payments", "cloudevents.event_id": "pay-42",
                     "cloudevents.event_type": "payment.requested", "error": "card declined"},
            "annotations": [{"timestamp": now_micros + 20_100, "value": "wr"}]
        }
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_spans_read_back_through_the_native_jaeger_and_zipkin_apis() {
    let server = TestServer::start().await;
    let now_micros = muninn_model::now_unix_nanos() / 1000 - 60_000_000;
    let body = serde_json::to_vec(&kafka_pair(now_micros)).unwrap();
    // As a reporter sends it: gzip, Zipkin's content type; the answer is Zipkin's 202.
    let answer = server
        .api
        .post(
            "/api/v2/spans",
            gzip(&body),
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
        )
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert_eq!(answer.text, "");

    // Muninn's own API sees an event on a Kafka stream, with its journey and lineage.
    let journey = server.api.get_json("/api/v1/events/pay-42", &[]).await;
    let hops = journey["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 2);
    assert_eq!(hops[0]["service"], "orders-api");
    assert_eq!(hops[0]["action"], "produced");
    assert_eq!(hops[0]["broker"], "kafka");
    assert_eq!(hops[0]["stream"], "payments");
    assert_eq!(hops[1]["service"], "payments");
    assert_eq!(hops[1]["lag_ns"], 20_000_000);
    assert_eq!(hops[1]["status"], "error");
    assert_eq!(hops[1]["status_message"], "card declined");
    let streams = server.api.get_json("/api/v1/streams", &[]).await;
    assert_eq!(streams["streams"][0]["stream"], "payments");
    assert_eq!(streams["streams"][0]["producers"], json!(["orders-api"]));
    assert_eq!(streams["streams"][0]["consumers"], json!(["payments"]));
    let native = server
        .api
        .get_json("/api/v1/traces/00000000000000005af7183fb1d4cf5f", &[])
        .await;
    assert_eq!(native["n_spans"], 2);
    assert_eq!(
        native["roots"][0]["resource"],
        json!({"net.host.ip": "10.1.2.3", "net.host.port": 8080})
    );

    // Zipkin's API gives back what was sent, tags included, plus what Muninn derived.
    let zipkin = server
        .api
        .get_json("/api/v2/trace/5af7183fb1d4cf5f", &[])
        .await;
    let producer = &zipkin[0];
    assert_eq!(producer["traceId"], "5af7183fb1d4cf5f");
    assert_eq!(producer["timestamp"], now_micros);
    assert_eq!(producer["duration"], 1500);
    assert_eq!(producer["remoteEndpoint"], json!({"serviceName": "kafka"}));
    for (key, value) in [
        ("kafka.topic", "payments"),
        ("tenant", "acme"),
        ("peer.service", "kafka"),
        ("messaging.system", "kafka"),
        ("messaging.destination.name", "payments"),
        ("net.host.ip", "10.1.2.3"),
    ] {
        assert_eq!(producer["tags"][key], value, "{key} in {producer}");
    }
    assert_eq!(zipkin[1]["parentId"], "6b221d5bc9e6496c");
    assert_eq!(zipkin[1]["tags"]["error"], "card declined");
    let dependencies = server.api.get_json("/api/v2/dependencies", &[]).await;
    assert_eq!(
        dependencies,
        json!([{"parent": "orders-api", "child": "payments", "callCount": 1}])
    );

    // Jaeger's API: the same trace, searchable by the original tags.
    let jaeger = server
        .api
        .get_json(
            "/api/traces",
            &[
                ("service", "payments"),
                ("tags", r#"{"kafka.topic":"payments","error":"true"}"#),
            ],
        )
        .await;
    assert_eq!(jaeger["total"], 1, "{jaeger}");
    let trace = &jaeger["data"][0];
    assert_eq!(trace["traceID"], "5af7183fb1d4cf5f");
    assert_eq!(trace["spans"][1]["references"][0]["refType"], "CHILD_OF");
    assert_eq!(trace["spans"][0]["duration"], 1500);
    let operations = server
        .api
        .get_json("/api/services/orders-api/operations", &[])
        .await;
    assert_eq!(operations["data"], json!(["send"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_zipkin_bodies_get_the_documented_errors_and_the_server_keeps_serving() {
    let server = TestServer::start_with(|config| config.max_body_bytes = 64 * 1024).await;
    let now_micros = muninn_model::now_unix_nanos() / 1000;
    let post = |body: Vec<u8>, headers: Vec<(&'static str, &'static str)>| {
        let api = server.api.clone();
        async move { api.post("/api/v2/spans", body, &headers).await }
    };
    // Not JSON: 400 naming line and column; nothing stored.
    let answer = post(b"[\n  {\"traceId\": \"1\",}\n]".to_vec(), vec![]).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let error = answer.error();
    assert_eq!(
        (error["line"].clone(), error["column"].clone()),
        (json!(2), json!(19))
    );
    // Protobuf is refused by content type; broken gzip, unknown encodings and huge bodies too.
    let answer = post(
        b"\x0a\x02".to_vec(),
        vec![("content-type", "application/x-protobuf")],
    )
    .await;
    assert_eq!(answer.status, 415, "{}", answer.text);
    assert!(answer.error()["message"].as_str().unwrap().contains("JSON"));
    let answer = post(b"not gzip".to_vec(), vec![("content-encoding", "gzip")]).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let answer = post(b"[]".to_vec(), vec![("content-encoding", "br")]).await;
    assert_eq!(answer.status, 415, "{}", answer.text);
    let answer = post(vec![b' '; 100 * 1024], vec![]).await;
    assert_eq!(answer.status, 413, "{}", answer.text);
    // Valid spans are kept next to invalid ones; the answer names each rejected one.
    let mut spans = kafka_pair(now_micros);
    let good = spans[0].clone();
    let mut no_service = good.clone();
    no_service["id"] = json!("0000000000000002");
    no_service["localEndpoint"] = json!({"ipv4": "10.0.0.1"});
    let mut bad_id = good.clone();
    bad_id["traceId"] = json!("zz");
    let mut old = good.clone();
    old["id"] = json!("0000000000000003");
    old["timestamp"] = json!(1_000_000);
    spans = json!([good, no_service, bad_id, old, "a string"]);
    let answer = post(serde_json::to_vec(&spans).unwrap(), vec![]).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["rejected_count"], 4);
    let fields: Vec<(u64, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rejection| {
            (
                rejection["index"].as_u64().unwrap(),
                rejection["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            (1, "localEndpoint.serviceName"),
            (2, "traceId"),
            (3, "timestamp"),
            (4, "(record)")
        ]
    );
    let stored = server
        .api
        .get_json("/api/v2/trace/5af7183fb1d4cf5f", &[])
        .await;
    assert_eq!(
        stored.as_array().unwrap().len(),
        1,
        "the valid span was stored"
    );
    // Bad read parameters name the parameter.
    for (path, params, field) in [
        ("/api/v2/spans", vec![], "serviceName"),
        (
            "/api/v2/traces",
            vec![("minDuration", "fast")],
            "minDuration",
        ),
        (
            "/api/v2/traces",
            vec![("minDuration", "5"), ("maxDuration", "1")],
            "minDuration",
        ),
        ("/api/v2/traces", vec![("limit", "100000")], "limit"),
        ("/api/v2/traces", vec![("endTs", "now")], "endTs"),
        ("/api/v2/traces", vec![("lookback", "-1")], "lookback"),
        (
            "/api/v2/traces",
            vec![("annotationQuery", "error and ")],
            "annotationQuery",
        ),
        ("/api/v2/dependencies", vec![("streams", "yes")], "streams"),
        ("/api/v2/trace/not-a-trace", vec![], "traceId"),
    ] {
        server.api.get(path, &params).await.expect_bad_field(field);
    }
    let missing = server.api.get("/api/v2/trace/00000000000000ab", &[]).await;
    assert_eq!(missing.status, 404);
    // What Zipkin's UI asks for autocompletion: nothing is configured, as in Zipkin by default.
    assert_eq!(
        server.api.get_json("/api/v2/autocompleteKeys", &[]).await,
        json!([])
    );
    assert_eq!(
        server
            .api
            .get_json("/api/v2/autocompleteValues", &[("key", "tenant")])
            .await,
        json!([])
    );
    // An empty batch is fine, and the server still serves.
    assert_eq!(post(b"[]".to_vec(), vec![]).await.status, 202);
    assert_eq!(
        server.api.get_json("/api/v2/services", &[]).await,
        json!(["orders-api"])
    );
    server.stop().await;
}

/// The Python interpreter with `py_zipkin` (`scripts/python.sh` makes it and sets
/// `MUNINN_PYTHON`; `scripts/test.sh` runs it).
fn python() -> PathBuf {
    match std::env::var_os("MUNINN_PYTHON").filter(|path| !path.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "MUNINN_PYTHON is not set: run the tests with `bash scripts/test.sh`, which makes \
             the Python environment of scripts/python-requirements.txt (py_zipkin) and sets it, \
             or set MUNINN_PYTHON to a Python that has py_zipkin"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_py_zipkin_reporter_posts_spans_that_read_back_through_every_api() {
    let server = TestServer::start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/zipkin_reporter.py");
    let output = tokio::process::Command::new(python())
        .arg(&script)
        .arg(server.base_url())
        .output()
        .await
        .expect("running the py_zipkin reporter");
    assert!(
        output.status.success(),
        "{} failed: {}\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let sent: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "the reporter printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let trace_id = sent["trace_id"].as_str().unwrap();
    let event_id = sent["event_id"].as_str().unwrap();

    // Zipkin's API: the five spans py_zipkin reported, with their kinds and tags.
    let zipkin = server
        .api
        .get_json(&format!("/api/v2/trace/{trace_id}"), &[])
        .await;
    let spans = zipkin.as_array().unwrap();
    let mut names: Vec<(&str, &str, &str)> = spans
        .iter()
        .map(|span| {
            (
                span["localEndpoint"]["serviceName"].as_str().unwrap(),
                span["name"].as_str().unwrap(),
                span["kind"].as_str().unwrap_or("INTERNAL"),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("shop-web", "charge card", "CLIENT"),
            ("shop-web", "post /checkout", "SERVER"),
            ("shop-web", "send order.created", "PRODUCER"),
            ("shop-worker", "process order.created", "CONSUMER"),
            ("shop-worker", "reserve stock", "INTERNAL"),
        ]
    );
    let client = spans
        .iter()
        .find(|span| span["name"] == "charge card")
        .unwrap();
    assert_eq!(client["remoteEndpoint"]["serviceName"], "payments-api");
    assert_eq!(client["tags"]["error"], "card declined");
    // Muninn's API: the event's journey from the producer to the consumer on kafka/orders.
    let journey = server
        .api
        .get_json(&format!("/api/v1/events/{event_id}"), &[])
        .await;
    let hops: Vec<(&str, &str)> = journey["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hop| {
            (
                hop["service"].as_str().unwrap(),
                hop["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hops,
        [("shop-web", "produced"), ("shop-worker", "consumed")]
    );
    assert_eq!(journey["event_types"], json!(["order.created"]));
    // Jaeger's API: found by service and tag, whole.
    let jaeger = server
        .api
        .get_json(
            "/api/traces",
            &[
                ("service", "shop-worker"),
                ("tags", r#"{"messaging.destination.name":"orders"}"#),
            ],
        )
        .await;
    assert_eq!(jaeger["total"], 1, "{jaeger}");
    assert_eq!(jaeger["data"][0]["spans"].as_array().unwrap().len(), 5);
    let processes: Vec<&str> = jaeger["data"][0]["processes"]
        .as_object()
        .unwrap()
        .values()
        .map(|process| process["serviceName"].as_str().unwrap())
        .collect();
    assert!(
        processes.contains(&"shop-web") && processes.contains(&"shop-worker"),
        "{processes:?}"
    );
    // The span times are the reporter's: within the last minute.
    let now_micros = muninn_model::now_unix_nanos() / 1000;
    for span in spans {
        let timestamp = span["timestamp"].as_i64().unwrap();
        assert!(
            (now_micros - 60 * NANOS_PER_SECOND / 1000..=now_micros).contains(&timestamp),
            "{span}"
        );
    }
    server.stop().await;
}
