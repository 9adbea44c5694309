//! `GET /api/v1/compare` on a fleet of 100 services and 10 event types sending steady Poisson
//! traffic, with changes injected in the last window: a producer that doubles its rate, an
//! event type that vanishes, a new event type on a new stream, a new schema from one service,
//! a new consumer. Each change comes first in its list; an unchanged control window of the
//! same fleet flags nothing.

use serde_json::{Value, json};

use crate::support::{NANOS_PER_SECOND, TestServer, event, span, span_id, trace_id, with};

const SERVICES: usize = 100;
const TYPES: usize = 10;
const RATE: f64 = 50.0;

/// A small deterministic generator (xorshift) and Poisson counts from it.
struct Random(u64);

impl Random {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Knuth's method: fine for rates of a few dozen.
    fn poisson(&mut self, rate: f64) -> u64 {
        let limit = (-rate).exp();
        let (mut count, mut product) = (0, self.next());
        while product > limit {
            count += 1;
            product *= self.next();
        }
        count
    }
}

fn service(n: usize) -> String {
    format!("svc-{n:03}")
}

fn count(
    service: &str,
    event_type: &str,
    stream: &str,
    action: &str,
    minute: i64,
    n: u64,
) -> Value {
    json!({"service": service, "event_type": event_type, "stream": stream, "broker": "kafka", "action": action, "minute": minute, "count": n})
}

/// One minute of the fleet: service `i` produces `type-(i % 10)` on `stream-(i % 5)` and
/// consumes `type-((i + 3) % 10)`, about 50 events a minute each. `changed` injects the
/// window's changes.
fn minute_of_counts(random: &mut Random, minute: i64, changed: bool) -> Vec<Value> {
    let mut counts = Vec::new();
    for i in 0..SERVICES {
        let (produced, consumed) = (i % TYPES, (i + 3) % TYPES);
        let mut rate = RATE;
        if changed && i == 7 {
            rate *= 2.0; // svc-007 doubles its type-7 traffic.
        }
        if !(changed && produced == 3) {
            let stream = format!("stream-{}", produced % 5);
            let n = random.poisson(rate);
            counts.push(count(
                &service(i),
                &format!("type-{produced}"),
                &stream,
                "produced",
                minute,
                n,
            ));
        }
        if !(changed && consumed == 3) {
            let stream = format!("stream-{}", consumed % 5);
            let n = random.poisson(RATE);
            counts.push(count(
                &service(i),
                &format!("type-{consumed}"),
                &stream,
                "consumed",
                minute,
                n,
            ));
        }
    }
    if changed {
        // A new event type on a new stream, and a new consumer of an existing type.
        let n = random.poisson(40.0);
        counts.push(count(
            "svc-050",
            "type-new",
            "stream-new",
            "produced",
            minute,
            n,
        ));
        let n = random.poisson(30.0);
        counts.push(count(
            "svc-099", "type-1", "stream-1", "consumed", minute, n,
        ));
    }
    counts
}

/// Producer spans of svc-005's type-5 carrying a schema: v1 always, v2 too in the window.
fn schema_spans(minute: i64, order: &mut u32, changed: bool) -> Vec<Value> {
    let mut spans = Vec::new();
    let schemas: &[&str] = if changed {
        &["type-5.v1", "type-5.v2"]
    } else {
        &["type-5.v1"]
    };
    for schema in schemas {
        for second in [5, 25, 45] {
            *order += 1;
            spans.push(with(
                span(
                    &trace_id(*order),
                    &span_id(*order, 0),
                    None,
                    "svc-005",
                    "send type-5",
                    "producer",
                    (minute + second) * NANOS_PER_SECOND,
                ),
                event(
                    &format!("evt-{order}"),
                    "type-5",
                    schema,
                    "stream-0",
                    "kafka",
                ),
            ));
        }
    }
    spans
}

fn rfc3339(unix_seconds: i64) -> String {
    crate::support::rfc3339(unix_seconds * NANOS_PER_SECOND)
}

/// Entry `index` of `list`, named `what` in the failure.
fn at<'a>(list: &'a Value, index: usize, what: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("{what}: not a list"))
        .get(index)
        .unwrap_or_else(|| panic!("{what}: fewer than {} entries: {list}", index + 1))
}

/// The increases of what was there before (what is new is in `appeared`), most unusual first.
fn increases(list: &Value) -> Vec<&Value> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|change| {
            change["score"].as_f64().unwrap() > 0.0 && change["baseline_count"] != json!(0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_changes_rank_first_and_a_steady_control_window_flags_nothing() {
    let server = TestServer::start().await;
    let now_minute = muninn_model::now_unix_nanos() / NANOS_PER_SECOND / 60 * 60;
    // Three 15-minute windows: control (2 h ago), baseline (1 h ago), window (the last 15 min).
    let (control, baseline, window) = (
        now_minute - 135 * 60,
        now_minute - 75 * 60,
        now_minute - 15 * 60,
    );
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let (mut counts, mut spans, mut order) = (Vec::new(), Vec::new(), 0);
    for start in [control, baseline, window] {
        for minute in (start..start + 15 * 60).step_by(60) {
            let changed = start == window;
            counts.extend(minute_of_counts(&mut random, minute, changed));
            spans.extend(schema_spans(minute, &mut order, changed));
        }
    }
    for chunk in counts.chunks(1_000) {
        server.api.ingest_ok("/api/v1/counts", chunk).await;
    }
    server.api.ingest_ok("/api/v1/spans", &spans).await;

    let compare = |from: i64, baseline_from: i64| {
        let query = [
            ("from", rfc3339(from)),
            ("to", rfc3339(from + 15 * 60)),
            ("baseline_from", rfc3339(baseline_from)),
            ("baseline_to", rfc3339(baseline_from + 15 * 60)),
        ];
        let api = &server.api;
        async move {
            let pairs: Vec<(&str, &str)> = query
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            api.get_json("/api/v1/compare", &pairs).await
        }
    };

    // The unchanged control window against the baseline: nothing unusual anywhere.
    let steady = compare(control, baseline).await;
    for list in ["event_types", "edges", "streams", "mix"] {
        let flagged: Vec<&Value> = steady[list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|change| change["unusual"] == json!(true))
            .collect();
        assert!(flagged.is_empty(), "{list}: false positives {flagged:?}");
    }
    for side in ["appeared", "disappeared"] {
        for (kind, found) in steady[side].as_object().unwrap() {
            assert_eq!(found, &json!([]), "{side}.{kind} in steady traffic");
        }
    }
    assert!(steady.get("decrease").is_none(), "{}", steady["decrease"]);

    // The window with the injected changes.
    let found = compare(window, baseline).await;
    // The producer that doubled: the first increase per (service, type, action), and the
    // origin of its event type's increase.
    let edge = increases(&found["edges"])[0];
    assert_eq!(
        (&edge["service"], &edge["event_type"], &edge["action"]),
        (&json!("svc-007"), &json!("type-7"), &json!("produced")),
        "{edge}"
    );
    assert!(edge["unusual"] == json!(true) && edge["relative_change"].as_f64().unwrap() > 0.8);
    let type_7 = increases(&found["event_types"])
        .into_iter()
        .find(|change| change["event_type"] == json!("type-7"))
        .expect("type-7 went up");
    // (Diluted over type-7's ten producers, the type's own rise is 8%: borderline.)
    assert_eq!(type_7["origin"]["service"], json!("svc-007"), "{type_7}");
    assert!(
        type_7["origin"]["share"].as_f64().unwrap() > 0.5,
        "{type_7}"
    );
    // The type that vanished: the first change of event types, and the first disappeared.
    let vanished = at(&found["event_types"], 0, "event_types");
    assert_eq!(vanished["event_type"], json!("type-3"), "{vanished}");
    assert_eq!(vanished["count"], json!(0));
    let gone = at(&found["disappeared"]["event_types"], 0, "disappeared types");
    assert_eq!(
        (&gone["event_type"], &gone["unusual"]),
        (&json!("type-3"), &json!(true))
    );
    assert_eq!(found["decrease"]["down"], json!(["type-3"]));
    assert_eq!(found["decrease"]["all"], json!(false));
    // The new type, on its new stream, from its producer.
    let new_type = at(&found["appeared"]["event_types"], 0, "appeared types");
    assert_eq!(
        (&new_type["event_type"], &new_type["unusual"]),
        (&json!("type-new"), &json!(true))
    );
    let new_stream = at(&found["appeared"]["streams"], 0, "appeared streams");
    assert_eq!(new_stream["stream"], json!("stream-new"));
    let new_producer = at(&found["appeared"]["producers"], 0, "appeared producers");
    assert_eq!(
        (&new_producer["service"], &new_producer["event_type"]),
        (&json!("svc-050"), &json!("type-new"))
    );
    // The new schema, naming the service that sent it.
    let schema = at(&found["appeared"]["schemas"], 0, "appeared schemas");
    assert_eq!(
        (
            &schema["event_type"],
            &schema["schema"],
            &schema["producers"],
            &schema["unusual"]
        ),
        (
            &json!("type-5"),
            &json!("type-5.v2"),
            &json!(["svc-005"]),
            &json!(true)
        ),
        "{schema}"
    );
    assert_eq!(found["appeared"]["schemas"].as_array().unwrap().len(), 1);
    // The new consumer.
    let consumer = at(&found["appeared"]["consumers"], 0, "appeared consumers");
    assert_eq!(
        (
            &consumer["service"],
            &consumer["event_type"],
            &consumer["unusual"]
        ),
        (&json!("svc-099"), &json!("type-1"), &json!(true))
    );
    // And no other edge changed unusually: only the injected ones (type-3's every edge, the
    // doubled producer, the new producer and the new consumer).
    let unusual_edges: Vec<(String, String)> = found["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|change| change["unusual"] == json!(true))
        .map(|change| {
            (
                change["service"].as_str().unwrap().to_owned(),
                change["event_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        unusual_edges.iter().all(|(service, event_type)| matches!(
            (service.as_str(), event_type.as_str()),
            ("svc-007", "type-7") | (_, "type-3") | ("svc-050", "type-new") | ("svc-099", "type-1")
        )),
        "{unusual_edges:?}"
    );

    // A filter narrows everything to one type.
    let only = server
        .api
        .get_json(
            "/api/v1/compare",
            &[
                ("from", &rfc3339(window)),
                ("to", &rfc3339(window + 900)),
                ("baseline_from", &rfc3339(baseline)),
                ("event_type", "type-7"),
            ],
        )
        .await;
    assert_eq!(only["event_types"].as_array().unwrap().len(), 1);
    assert_eq!(
        only["baseline"]["seconds"],
        json!(900.0),
        "baseline_from alone: as long as the window"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_and_bad_parameters() {
    let server = TestServer::start().await;
    // Defaults: the last 15 minutes against the same 15 minutes a day earlier, both taken as
    // the whole minutes they touch (the window up to now, the baseline to its minute's end).
    let answer = server.api.get_json("/api/v1/compare", &[]).await;
    let seconds = answer["window"]["seconds"].as_f64().unwrap();
    assert!((900.0..960.0).contains(&seconds), "{answer}");
    let from = |window: &Value| chrono_free_seconds(window["from"].as_str().unwrap());
    assert_eq!(from(&answer["window"]) % 60, 0, "{answer}");
    assert_eq!(from(&answer["window"]) - from(&answer["baseline"]), 86_400);
    let baseline_seconds = answer["baseline"]["seconds"].as_f64().unwrap();
    assert!(
        [900.0, 960.0].contains(&baseline_seconds),
        "whole minutes: {answer}"
    );

    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("from", "-5m"), ("to", "-10m")], "from"),
        (
            &[("baseline_from", "-1d"), ("baseline_to", "-2d")],
            "baseline_from",
        ),
        (&[("from", "-400d"), ("to", "-399d")], "from"),
        (&[("event_type", "no.such.type")], "event_type"),
        (&[("baseline_to", "yesterday-ish")], "baseline_to"),
    ];
    for (query, field) in cases {
        server
            .api
            .get("/api/v1/compare", query)
            .await
            .expect_bad_field(field);
    }
    server.stop().await;
}

/// Unix seconds of an RFC 3339 time the server wrote (`…Z`, whole or fractional seconds).
fn chrono_free_seconds(text: &str) -> i64 {
    muninn_model::parse_time(text, 0).unwrap() / NANOS_PER_SECOND
}
