//! `/metrics` in the Prometheus text format: ingest and rejection counters with the right
//! values, a latency histogram per query route, the store gauges (head, WAL, blocks), and the
//! event metrics from the roll-ups (events per edge, first seen per edge and per schema).

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::{Fleet, NANOS_PER_SECOND, TestServer, event, span, span_id, trace_id, with};

/// One sample: metric name and sorted labels.
type SeriesKey = (String, Vec<(String, String)>);

/// The parsed exposition: samples by series, and the declared type of each family.
pub struct Exposition {
    samples: BTreeMap<SeriesKey, f64>,
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        labels.sort();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// The value of a series that must exist.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| {
            let known: Vec<&SeriesKey> = self
                .samples
                .keys()
                .filter(|(known, _)| known == name)
                .collect();
            panic!("no sample {name}{labels:?}; samples of that name: {known:?}")
        })
    }

    /// `(le, cumulative count)` of a histogram's buckets, in order.
    fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|((sample, _), _)| sample == &format!("{name}_bucket"))
            .filter_map(|((_, sample_labels), value)| {
                let le = sample_labels.iter().find(|(key, _)| key == "le")?.1.clone();
                let rest: Vec<(String, String)> = sample_labels
                    .iter()
                    .filter(|(key, _)| key != "le")
                    .cloned()
                    .collect();
                wanted.sort();
                (rest == wanted).then(|| {
                    (
                        if le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().unwrap()
                        },
                        *value,
                    )
                })
            })
            .collect();
        buckets.sort_by(|left, right| left.0.total_cmp(&right.0));
        buckets
    }
}

/// Reads the text format strictly: `# HELP`/`# TYPE`/`# UNIT` comments, an optional final
/// `# EOF`, and `name{label="value",...} number` samples whose family has a `# TYPE`.
fn parse_exposition(text: &str) -> Exposition {
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "line {index}: {line}"
                    );
                    types.insert(name.to_string(), kind.to_string());
                }
                (Some("HELP" | "UNIT"), Some(_), _) => {}
                (Some("EOF"), None, None) => {
                    assert_eq!(index, lines.len() - 1, "# EOF must be the last line")
                }
                _ => panic!("line {index}: unknown comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("line {index}: no value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("line {index}: bad value: {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => (name.to_string(), parse_labels(rest, line)),
        };
        assert!(
            name.chars()
                .all(|char| char.is_ascii_alphanumeric() || char == '_')
                && !name.starts_with(|char: char| char.is_ascii_digit()),
            "line {index}: bad metric name {name:?}"
        );
        let family = ["_total", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|family| types.contains_key(*family))
            })
            .unwrap_or(&name);
        assert!(
            types.contains_key(family),
            "line {index}: {name} has no # TYPE"
        );
        let mut labels = labels;
        labels.sort();
        assert!(
            samples.insert((name, labels), value).is_none(),
            "line {index}: duplicate series {line:?}"
        );
    }
    Exposition { samples, types }
}

/// `key="value",...}` with `\"`, `\\` and `\n` escapes in values.
fn parse_labels(text: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|char| *char != '=').collect();
        assert_eq!(
            chars.next(),
            Some('"'),
            "label {key} without a quoted value in {line:?}"
        );
        let mut value = String::new();
        while let Some(char) = chars.next() {
            match char {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(escaped) => value.push(escaped),
                    None => panic!("dangling escape in {line:?}"),
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.push((key, value));
        match chars.next() {
            Some(',') if chars.peek() == Some(&'}') => {
                chars.next();
                break;
            }
            Some(',') => {}
            Some('}') => break,
            other => panic!("unexpected {other:?} after a label in {line:?}"),
        }
    }
    assert!(chars.next().is_none(), "text after the labels in {line:?}");
    labels
}

pub async fn scrape(server: &TestServer) -> Exposition {
    let answer = server.api.get("/metrics", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse_exposition(&answer.text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_ingest_rejections_query_latency_and_store_state() {
    let fleet = Fleet::new();
    let server = TestServer::start().await;
    let fresh = scrape(&server).await;
    assert_eq!(fresh.get("muninn_ingested_spans_total", &[]), 0.0);
    assert_eq!(
        fresh.types.get("muninn_wal_bytes").map(String::as_str),
        Some("gauge")
    );

    server.ingest_fleet(&fleet).await;
    let good = fleet.spans[0].clone();
    let mixed = [
        with(good.clone(), json!({"span_id": "00000000000000e1"})),
        with(good.clone(), json!({"kind": "broadcaster"})),
        with(good.clone(), json!({"trace_id": "nope"})),
        with(good.clone(), json!({"attributes": {"": 1}})),
        with(
            good.clone(),
            json!({"attributes": {"payload": {"nested": true}}}),
        ),
        with(good.clone(), json!({"kind": "unknown"})),
    ];
    let answer = server.api.ingest("/api/v1/spans", &mixed).await;
    assert_eq!(answer.json()["accepted"], json!(1));
    let bad_count = with(fleet.counts[0].clone(), json!({"broker": "carrier-pigeon"}));
    server.api.ingest("/api/v1/counts", &[bad_count]).await;
    server.api.post("/api/v1/spans", b"[{".to_vec(), &[]).await;
    for _ in 0..3 {
        server
            .api
            .get("/api/v1/lineage", &[("format", "mermaid")])
            .await;
    }
    server.api.get("/api/v1/events/order-1", &[]).await;

    let n_spans = (fleet.spans.len() + 1) as f64;
    let metrics = scrape(&server).await;
    assert_eq!(
        metrics
            .types
            .get("muninn_query_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(metrics.get("muninn_ingested_spans_total", &[]), n_spans);
    assert_eq!(
        metrics.get("muninn_ingested_counts_total", &[]),
        fleet.counts.len() as f64
    );
    // Rejections by field; indices and attribute names are folded so the labels stay few.
    let rejected = |record: &str, field: &str| {
        metrics.get(
            "muninn_rejected_records_total",
            &[("record", record), ("field", field)],
        )
    };
    assert_eq!(rejected("span", "kind"), 2.0);
    assert_eq!(rejected("span", "trace_id"), 1.0);
    assert_eq!(rejected("span", "attributes[].key"), 1.0);
    assert_eq!(rejected("span", "attributes.*"), 1.0);
    assert_eq!(rejected("count", "broker"), 1.0);
    let requests = |endpoint: &str, status: &str| {
        metrics.get(
            "muninn_ingest_requests_total",
            &[("endpoint", endpoint), ("status", status)],
        )
    };
    assert_eq!(requests("/api/v1/spans", "200"), 2.0);
    assert_eq!(requests("/api/v1/spans", "400"), 1.0);
    assert_eq!(requests("/api/v1/counts", "200"), 1.0);
    assert_eq!(requests("/api/v1/counts", "400"), 1.0);
    // Query latency: a histogram per route template, cumulative buckets ending in +Inf = count.
    for (route, n_queries) in [("/api/v1/lineage", 3.0), ("/api/v1/events/{event_id}", 1.0)] {
        let labels = [("route", route)];
        assert_eq!(
            metrics.get("muninn_query_duration_seconds_count", &labels),
            n_queries,
            "{route}"
        );
        assert!(
            metrics.get("muninn_query_duration_seconds_sum", &labels) > 0.0,
            "{route}"
        );
        let buckets = metrics.buckets("muninn_query_duration_seconds", &labels);
        assert!(buckets.len() > 10, "{route}: {buckets:?}");
        assert!(
            buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "{route}: buckets are not cumulative: {buckets:?}"
        );
        assert_eq!(
            buckets.last().copied(),
            Some((f64::INFINITY, n_queries)),
            "{route}"
        );
    }
    // The store: everything in the head and the WAL, nothing in blocks yet.
    assert_eq!(metrics.get("muninn_head_spans", &[]), n_spans);
    assert!(metrics.get("muninn_wal_bytes", &[]) > 0.0);
    assert_eq!(metrics.get("muninn_blocks", &[]), 0.0);
    assert!(metrics.get("muninn_rollup_cells", &[]) > 0.0);

    let flushed = server.flush().await;
    let metrics = scrape(&server).await;
    assert_eq!(metrics.get("muninn_head_spans", &[]), 0.0);
    assert_eq!(
        metrics.get("muninn_blocks", &[]),
        flushed["blocks_written"].as_f64().unwrap()
    );
    assert!(metrics.get("muninn_blocks", &[]) >= 1.0);
    assert_eq!(metrics.get("muninn_block_spans", &[]), n_spans);
    assert_eq!(
        metrics.get("muninn_block_bytes", &[]),
        flushed["bytes_written"].as_f64().unwrap()
    );
    assert_eq!(metrics.get("muninn_compactions_total", &[]), 0.0);

    // A second flush into the first span's partition, then a compaction: the counters count
    // what it merged and wrote.
    server
        .api
        .ingest_ok(
            "/api/v1/spans",
            &[with(good, json!({"span_id": "00000000000000e2"}))],
        )
        .await;
    server.flush().await;
    let compacted = server.compact().await;
    assert!(
        compacted["compactions"].as_u64() >= Some(1),
        "compaction answer: {compacted}"
    );
    let metrics = scrape(&server).await;
    assert_eq!(
        metrics.types.get("muninn_compactions").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        metrics.get("muninn_compactions_total", &[]),
        compacted["compactions"].as_f64().unwrap()
    );
    assert_eq!(
        metrics.get("muninn_compaction_spans_total", &[]),
        compacted["spans"].as_f64().unwrap()
    );
    assert_eq!(
        metrics.get("muninn_compaction_written_bytes_total", &[]),
        compacted["bytes_out"].as_f64().unwrap()
    );
    assert_eq!(metrics.get("muninn_block_spans", &[]), n_spans + 1.0);
    server.stop().await;
}

/// `order.created` on kafka `orders`: span `number` of `service` (`producer` or `consumer`).
fn order_span(
    number: u32,
    service: &str,
    kind: &str,
    schema: &str,
    start: i64,
) -> serde_json::Value {
    let step = if kind == "producer" { 1 } else { 2 };
    with(
        span(
            &trace_id(number),
            &span_id(number, step),
            None,
            service,
            "order.created",
            kind,
            start,
        ),
        event(
            &format!("order-{number}"),
            "order.created",
            schema,
            "orders",
            "kafka",
        ),
    )
}

fn order_count(service: &str, action: &str, minute: i64, count: u64) -> serde_json::Value {
    json!({"service": service, "event_type": "order.created", "stream": "orders",
           "broker": "kafka", "action": action, "minute": minute, "count": count})
}

fn edge<'a>(service: &'a str, action: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("event_type", "order.created"),
        ("action", action),
        ("stream", "orders"),
        ("broker", "kafka"),
        ("service", service),
    ]
}

fn schema_use<'a>(
    schema: &'a str,
    service: &'a str,
    action: &'a str,
) -> [(&'static str, &'a str); 4] {
    [
        ("event_type", "order.created"),
        ("schema", schema),
        ("service", service),
        ("action", action),
    ]
}

/// Per lineage edge, `muninn_events_total` counts each minute's max(spans, counted events) as
/// the data arrives (late counts included); the first-seen gauges date each edge and each
/// schema from the data itself, so they survive a restart, while the counters start again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_metrics_count_each_edge_and_date_new_producers_and_schemas() {
    let mut server = TestServer::start().await;
    let now_seconds = muninn_model::now_unix_nanos() / NANOS_PER_SECOND;
    let minute = (now_seconds - 10 * 60).div_euclid(60) * 60;
    let at = |seconds: i64| (minute + seconds) * NANOS_PER_SECOND;
    // checkout: 3 spans (v1) and 10 counted in the first minute, 4 spans (v2) and 2 counted in
    // the second; billing consumes 2 (v1, spans only); returns starts producing in the third.
    let mut spans = vec![
        order_span(1, "checkout", "producer", "v1", at(5)),
        order_span(2, "checkout", "producer", "v1", at(10)),
        order_span(3, "checkout", "producer", "v1", at(15)),
        order_span(1, "billing", "consumer", "v1", at(20)),
        order_span(2, "billing", "consumer", "v1", at(21)),
    ];
    spans.extend((4..=7).map(|number| {
        order_span(
            number,
            "checkout",
            "producer",
            "v2",
            at(60 + i64::from(number)),
        )
    }));
    server.api.ingest_ok("/api/v1/spans", &spans).await;
    let counts = [
        order_count("checkout", "produced", minute, 10),
        order_count("checkout", "produced", minute + 60, 2),
    ];
    server.api.ingest_ok("/api/v1/counts", &counts).await;
    let returns = order_span(8, "returns", "producer", "v2", at(125));
    server.api.ingest_ok("/api/v1/spans", &[returns]).await;

    let metrics = scrape(&server).await;
    for (family, kind) in [
        ("muninn_events", "counter"),
        ("muninn_event_edge_first_seen_timestamp_seconds", "gauge"),
        ("muninn_event_schema_first_seen_timestamp_seconds", "gauge"),
    ] {
        assert_eq!(metrics.types.get(family).map(String::as_str), Some(kind));
    }
    let events = |metrics: &Exposition, service, action| {
        metrics.get("muninn_events_total", &edge(service, action))
    };
    assert_eq!(events(&metrics, "checkout", "produced"), 10.0 + 4.0);
    assert_eq!(events(&metrics, "billing", "consumed"), 2.0);
    assert_eq!(events(&metrics, "returns", "produced"), 1.0);
    let seconds = |seconds: i64| (minute + seconds) as f64;
    let first_seen = |metrics: &Exposition| {
        [
            ("checkout", "produced"),
            ("billing", "consumed"),
            ("returns", "produced"),
        ]
        .map(|(service, action)| {
            metrics.get(
                "muninn_event_edge_first_seen_timestamp_seconds",
                &edge(service, action),
            )
        })
    };
    // checkout's count is dated at the start of its minute, before its first span.
    let edges_first_seen = [seconds(0), seconds(20), seconds(125)];
    assert_eq!(first_seen(&metrics), edges_first_seen);
    let schemas = |metrics: &Exposition| {
        [
            ("v1", "checkout", "produced"),
            ("v2", "checkout", "produced"),
            ("v1", "billing", "consumed"),
            ("v2", "returns", "produced"),
        ]
        .map(|(schema, service, action)| {
            metrics.get(
                "muninn_event_schema_first_seen_timestamp_seconds",
                &schema_use(schema, service, action),
            )
        })
    };
    let schemas_first_seen = [seconds(5), seconds(64), seconds(20), seconds(125)];
    assert_eq!(schemas(&metrics), schemas_first_seen);
    assert_eq!(
        metrics.value(
            "muninn_event_schema_first_seen_timestamp_seconds",
            &schema_use("", "checkout", "produced")
        ),
        None,
        "counts carry no schema"
    );

    // A late report for the first minute raises its max(spans, counted) from 10 to 20.
    let late = [order_count("checkout", "produced", minute, 10)];
    server.api.ingest_ok("/api/v1/counts", &late).await;
    let metrics = scrape(&server).await;
    assert_eq!(events(&metrics, "checkout", "produced"), 24.0);

    // A restart: the counters count again from zero (what Prometheus expects of a new
    // process); the first-seen times come from the data, so they stay.
    server.restart().await;
    let metrics = scrape(&server).await;
    for (service, action) in [
        ("checkout", "produced"),
        ("billing", "consumed"),
        ("returns", "produced"),
    ] {
        assert_eq!(events(&metrics, service, action), 0.0, "{service}");
    }
    assert_eq!(first_seen(&metrics), edges_first_seen);
    assert_eq!(schemas(&metrics), schemas_first_seen);
    let billing = order_span(3, "billing", "consumer", "v1", at(130));
    server.api.ingest_ok("/api/v1/spans", &[billing]).await;
    let metrics = scrape(&server).await;
    assert_eq!(events(&metrics, "billing", "consumed"), 1.0);
    server.stop().await;
}

#[test]
fn the_exposition_reader_rejects_what_prometheus_would() {
    let valid =
        "# HELP a_total A.\n# TYPE a counter\na_total{route=\"/x/{id}\",le=\"+Inf\"} 3\n# EOF\n";
    let parsed = parse_exposition(valid);
    assert_eq!(
        parsed.get("a_total", &[("le", "+Inf"), ("route", "/x/{id}")]),
        3.0
    );
    for invalid in [
        "a_total 1\n",
        "# TYPE a counter\na_total{route=/x} 1\n",
        "# TYPE a counter\na_total one\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_exposition(invalid)).is_err(),
            "accepted {invalid:?}"
        );
    }
}
