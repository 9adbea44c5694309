//! Tail sampling in the collector: a known mix of traces is decided by the policies (every
//! error, retry and slow trace kept, the rest kept exactly when its trace id is sampled), the
//! dropped ones disappear at the next flush while the roll-ups keep counting them, the buffer
//! never exceeds its bound (early decisions are counted), late spans follow the decision, and
//! `GET /api/v1/sampling/tail` and `/metrics` show it all. Short real windows, polled.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use muninn_model::sampling::is_sampled;
use muninn_server::{ServerConfig, TailSamplingConfig};
use serde_json::{Value, json};

use crate::support::{Api, NANOS_PER_MILLI, NANOS_PER_SECOND, TestServer, event, span, with};

fn trace_hex(number: u32) -> String {
    // Spread over the id space so the hash sees varied ids.
    format!("7a11{:028x}", u128::from(number) * 0x9e37_79b9_7f4a_7c15)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Error,
    Retry,
    Slow,
    Normal,
}

/// A produce and a consume of one order event; errors fail the consume, retries consume
/// twice, slow traces consume two seconds after the publish.
fn trace_spans(number: u32, kind: Kind, start: i64) -> Vec<Value> {
    let trace = trace_hex(number);
    let order = event(
        &format!("order-{number}"),
        "order.created",
        "v1",
        "orders",
        "kafka",
    );
    let publish = with(
        span(
            &trace,
            &format!("{number:08x}00000001"),
            None,
            "checkout",
            "publish order.created",
            "producer",
            start,
        ),
        order.clone(),
    );
    let consume_at = if kind == Kind::Slow {
        start + 2 * NANOS_PER_SECOND
    } else {
        start + 5 * NANOS_PER_MILLI
    };
    let mut consume = with(
        span(
            &trace,
            &format!("{number:08x}00000002"),
            Some(&format!("{number:08x}00000001")),
            "billing",
            "consume order.created",
            "consumer",
            consume_at,
        ),
        order.clone(),
    );
    if kind == Kind::Error {
        consume["status"] = json!({"code": "error", "message": "card declined"});
    }
    let mut spans = vec![publish, consume];
    if kind == Kind::Retry {
        spans.push(with(
            span(
                &trace,
                &format!("{number:08x}00000003"),
                Some(&format!("{number:08x}00000001")),
                "billing",
                "consume order.created",
                "consumer",
                consume_at + 100 * NANOS_PER_MILLI,
            ),
            order,
        ));
    }
    spans
}

fn start_time() -> i64 {
    (muninn_model::now_unix_nanos() / NANOS_PER_SECOND - 300) * NANOS_PER_SECOND
}

async fn tail_stats(api: &Api) -> Value {
    let answer = api.get_json("/api/v1/sampling/tail", &[]).await;
    assert_eq!(answer["enabled"], json!(true), "{answer}");
    answer["stats"].clone()
}

/// Polls the tail stats until `done` holds (decisions are taken by a ticker in real time).
async fn wait_for(api: &Api, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = tail_stats(api).await;
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn trace_status(api: &Api, trace: &str) -> u16 {
    api.get(&format!("/api/v1/traces/{trace}"), &[])
        .await
        .status
}

fn metric_line(text: &str, line: &str) -> bool {
    text.lines().any(|candidate| candidate == line)
}

async fn server_with(tail: TailSamplingConfig) -> TestServer {
    TestServer::start_with(|config: &mut ServerConfig| {
        // No automatic flush during the test: the flush happens when the test asks for it.
        config.store.flush_max_age = Duration::from_secs(3600);
        config.tail_sampling = Some(tail);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_mix_keeps_every_interesting_trace_and_the_sampled_share_of_the_rest() {
    let server = server_with(TailSamplingConfig {
        decision_wait: Duration::from_millis(300),
        slow_trace: Some(Duration::from_secs(1)),
        sample_rate_ppm: 100_000,
        ..TailSamplingConfig::default()
    })
    .await;
    let api = &server.api;
    let start = start_time();
    // 1,000 traces: 50 with errors, 30 with retries, 20 slow, 900 normal.
    let kind_of = |number: u32| match number {
        0..50 => Kind::Error,
        50..80 => Kind::Retry,
        80..100 => Kind::Slow,
        _ => Kind::Normal,
    };
    let mut all_spans = Vec::new();
    for number in 0..1000u32 {
        all_spans.extend(trace_spans(
            number,
            kind_of(number),
            start + i64::from(number) * NANOS_PER_MILLI,
        ));
    }
    for batch in all_spans.chunks(250) {
        api.ingest_ok("/api/v1/spans", batch).await;
    }
    let n_spans = all_spans.len() as u64;
    // Before any decision is applied, every trace is there (nothing is held back from storage).
    assert_eq!(trace_status(api, &trace_hex(999)).await, 200);

    let stats = wait_for(api, "1,000 decisions", |stats| {
        stats["kept_traces"].as_u64().unwrap_or(0) + stats["dropped_traces"].as_u64().unwrap_or(0)
            == 1000
    })
    .await;
    let sampled_normal: BTreeSet<u32> = (100..1000u32)
        .filter(|number| is_sampled(trace_hex(*number).as_bytes(), 100_000))
        .collect();
    let expected_kept: BTreeSet<u32> = (0..100u32).chain(sampled_normal.iter().copied()).collect();
    let share = sampled_normal.len() as f64 / 900.0;
    assert!(
        (0.07..=0.13).contains(&share),
        "the sampled share of the rest is {share}"
    );
    assert_eq!(stats["buffered_traces"], json!(0));
    assert_eq!(stats["spans_observed"], json!(n_spans));
    assert_eq!(stats["early_decisions"], json!(0));
    let count = |decision: &str, reason: &str| {
        stats["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["decision"] == json!(decision) && line["reason"] == json!(reason))
            .map(|line| line["traces"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(count("keep", "error"), json!(50));
    assert_eq!(count("keep", "retry"), json!(30));
    assert_eq!(count("keep", "slow_trace"), json!(20));
    assert_eq!(count("keep", "probabilistic"), json!(sampled_normal.len()));
    assert_eq!(
        count("drop", "probabilistic"),
        json!(900 - sampled_normal.len())
    );

    // Dropped traces are still answered until the flush writes memory to blocks without them.
    let dropped_one = (100..1000u32)
        .find(|number| !sampled_normal.contains(number))
        .unwrap();
    assert_eq!(trace_status(api, &trace_hex(dropped_one)).await, 200);
    let kept_spans: u64 = expected_kept
        .iter()
        .map(|number| trace_spans(*number, kind_of(*number), 0).len() as u64)
        .sum();
    let flushed = server.flush().await;
    assert_eq!(flushed["spans_written"], json!(kept_spans), "{flushed}");
    let mut kept = BTreeSet::new();
    for number in 0..1000u32 {
        match trace_status(api, &trace_hex(number)).await {
            200 => {
                kept.insert(number);
            }
            404 => {}
            other => panic!("trace {number}: status {other}"),
        }
    }
    assert_eq!(
        kept, expected_kept,
        "exactly the interesting and the sampled traces"
    );

    // Roll-ups still count every event, dropped traces included.
    let catalog = api
        .get_json("/api/v1/event-types", &[("from", "-1h"), ("to", "now")])
        .await;
    let produced = catalog["event_types"][0]["count"].as_u64();
    let consumed = catalog["event_types"][0]["consumed"].as_u64();
    assert_eq!((produced, consumed), (Some(1000), Some(1030)), "{catalog}");

    let stats = tail_stats(api).await;
    assert_eq!(stats["flush_dropped_spans"], json!(n_spans - kept_spans));
    assert_eq!(stats["flush_undecided_spans"], json!(0));
    let metrics = api.get("/metrics", &[]).await.text;
    for line in [
        "muninn_tail_decisions_total{decision=\"keep\",reason=\"error\"} 50".to_string(),
        "muninn_tail_decisions_total{decision=\"keep\",reason=\"retry\"} 30".to_string(),
        "muninn_tail_decisions_total{decision=\"keep\",reason=\"slow_trace\"} 20".to_string(),
        format!(
            "muninn_tail_decisions_total{{decision=\"drop\",reason=\"probabilistic\"}} {}",
            900 - sampled_normal.len()
        ),
        "muninn_tail_buffered_traces 0".to_string(),
        "muninn_tail_early_decisions_total 0".to_string(),
        format!(
            "muninn_tail_flush_dropped_spans_total {}",
            n_spans - kept_spans
        ),
    ] {
        assert!(
            metric_line(&metrics, &line),
            "no line {line:?} in /metrics:\n{metrics}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_decides_the_oldest_traces_early_and_never_grows_past_its_bound() {
    let server = server_with(TailSamplingConfig {
        decision_wait: Duration::from_secs(600),
        max_buffered_traces: 10,
        sample_rate_ppm: 0,
        ..TailSamplingConfig::default()
    })
    .await;
    let api = &server.api;
    let start = start_time();
    for first in (0..100u32).step_by(20) {
        let spans: Vec<Value> = (first..first + 20)
            .flat_map(|number| trace_spans(number, Kind::Normal, start))
            .collect();
        api.ingest_ok("/api/v1/spans", &spans).await;
    }
    let stats = tail_stats(api).await;
    assert_eq!(stats["buffered_traces"], json!(10));
    assert_eq!(
        stats["buffered_traces_peak"],
        json!(10),
        "never above the bound"
    );
    assert_eq!(stats["early_decisions"], json!(90));
    assert_eq!(stats["dropped_traces"], json!(90));
    let config = &api.get_json("/api/v1/sampling/tail", &[]).await["config"];
    assert_eq!(config["max_buffered_traces"], json!(10));
    assert_eq!(config["decision_wait"], json!("10m"));
    let metrics = api.get("/metrics", &[]).await.text;
    assert!(
        metric_line(&metrics, "muninn_tail_early_decisions_total 90"),
        "{metrics}"
    );
    assert!(
        metric_line(&metrics, "muninn_tail_buffered_traces 10"),
        "{metrics}"
    );
    // The oldest went first: the ten newest still wait and are kept by the flush.
    server.flush().await;
    assert_eq!(trace_status(api, &trace_hex(0)).await, 404);
    assert_eq!(trace_status(api, &trace_hex(99)).await, 200);
    let stats = tail_stats(api).await;
    assert_eq!(
        stats["flush_undecided_spans"],
        json!(20),
        "fail-open for the undecided"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_spans_follow_the_decision_already_taken() {
    let server = server_with(TailSamplingConfig {
        decision_wait: Duration::from_millis(200),
        sample_rate_ppm: 0,
        ..TailSamplingConfig::default()
    })
    .await;
    let api = &server.api;
    let start = start_time();
    api.ingest_ok("/api/v1/spans", &trace_spans(1, Kind::Normal, start))
        .await;
    api.ingest_ok("/api/v1/spans", &trace_spans(2, Kind::Error, start))
        .await;
    wait_for(api, "two decisions", |stats| {
        stats["kept_traces"] == json!(1) && stats["dropped_traces"] == json!(1)
    })
    .await;
    // A late error in the dropped trace does not bring it back; a late span of the kept trace
    // joins it.
    let mut late_error = span(
        &trace_hex(1),
        "0000000100000009",
        None,
        "audit",
        "audit order",
        "internal",
        start + 3 * NANOS_PER_SECOND,
    );
    late_error["status"] = json!({"code": "error"});
    let late_kept = span(
        &trace_hex(2),
        "0000000200000009",
        None,
        "audit",
        "audit order",
        "internal",
        start + 3 * NANOS_PER_SECOND,
    );
    api.ingest_ok("/api/v1/spans", &[late_error, late_kept])
        .await;
    let stats = tail_stats(api).await;
    assert_eq!(
        (
            stats["late_spans_dropped"].clone(),
            stats["late_spans_kept"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(
        stats["buffered_traces"],
        json!(0),
        "late spans do not reopen a trace"
    );
    server.flush().await;
    assert_eq!(trace_status(api, &trace_hex(1)).await, 404);
    let kept = api
        .get_json(&format!("/api/v1/traces/{}", trace_hex(2)), &[])
        .await;
    assert_eq!(kept["n_spans"], json!(3));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_sampling_is_off_by_default_and_a_bad_setting_stops_the_start() {
    let server = TestServer::start().await;
    assert_eq!(
        server.api.get_json("/api/v1/sampling/tail", &[]).await,
        json!({"enabled": false})
    );
    let metrics = server.api.get("/metrics", &[]).await.text;
    assert!(!metrics.contains("muninn_tail_"), "{metrics}");
    server.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path(), 0);
    config.tail_sampling = Some(TailSamplingConfig {
        max_buffered_traces: 0,
        ..TailSamplingConfig::default()
    });
    let error = match muninn_server::start(config).await {
        Ok(_) => panic!("a zero buffer must not start"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.starts_with("tail_sampling.max_buffered_traces:"),
        "{error}"
    );
}
