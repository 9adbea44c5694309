//! The `muninn` binary end to end: the demo, `serve` configuration errors and precedence,
//! `lineage` (in `lineage.rs`), `query` and `compare`, each against a real server process on
//! loopback (`process.rs`). Every wait has a deadline, so a hung process fails the test instead
//! of hanging it.

mod auth;
mod impact;
mod lineage;
mod process;
mod tls;

// The UI's browser driver, shared with the server's API tests.
#[allow(dead_code)]
#[path = "../../../muninn-server/tests/api/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use process::{Server, ingest_one_event, muninn, now_unix_nanos, post_json, read_all, run};

#[test]
fn demo_runs_the_fleet_through_the_api_and_prints_the_lineage() {
    let finished = run(
        muninn(&[
            "demo",
            "--duration",
            "20s",
            "--rate",
            "100",
            "--exit",
            "--listen",
            "127.0.0.1:0",
        ]),
        Duration::from_secs(360),
    );
    assert!(finished.status.success(), "{finished:?}");
    let stdout = &finished.stdout;
    assert!(
        stdout.contains("muninn listening on http://127.0.0.1:"),
        "{finished:?}"
    );
    assert!(stdout.contains("flowchart LR"), "{finished:?}");
    for name in [
        "checkout",
        "order-router",
        "fraud-detection",
        "audit-log",
        "email-sender",
        "analytics",
    ] {
        assert!(
            stdout.contains(name),
            "service {name} missing: {finished:?}"
        );
    }
    for name in [
        "orders<br/>kafka",
        "inventory-updates",
        "fraud.signals<br/>nats",
        "audit.events",
    ] {
        assert!(stdout.contains(name), "stream {name} missing: {finished:?}");
    }
    for name in [
        "order.placed",
        "order.routed",
        "payment.authorized",
        "ledger.entry.posted",
        "email.requested",
    ] {
        assert!(
            stdout.contains(name),
            "event type {name} missing: {finished:?}"
        );
    }
    assert!(
        stdout.contains("order.placed<br/>(modifies)"),
        "the modifying consumer is drawn: {finished:?}"
    );
    assert!(
        stdout.contains("(0 errors)"),
        "nothing was rejected: {finished:?}"
    );
    assert!(
        stdout.contains("curl -s http://127.0.0.1:") && stdout.contains("/api/v1/events/"),
        "{finished:?}"
    );
    // The fleet ran on the SDK: its tracers (one per instance) counted every produce and
    // consume the demo made and exported every sampled span, sampling left some events
    // untraced (cart.abandoned at 25%), and the server's counts cover every message anyway.
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?}: {finished:?}"))
    };
    let sent = line("sent ");
    let (messages, consumes) = (
        number_before(sent, "messages produced"),
        number_before(sent, "consumes"),
    );
    let sdk = line("SDK: ");
    assert_eq!(number_before(sdk, "tracers"), 26, "{sdk}");
    assert_eq!(
        number_before(sdk, "produces and consumes"),
        messages + consumes,
        "the SDK counted every produce and consume: {finished:?}"
    );
    assert_eq!(number_before(sdk, "dropped)"), 0, "{sdk}");
    let sampling = line("sampling rules: ");
    assert!(sampling.contains("cart.abandoned 25%"), "{sampling}");
    let traced = number_before(sampling, "of ");
    assert_eq!(
        number_before(sdk, "spans"),
        traced,
        "every sampled span was exported"
    );
    assert!(
        0 < traced && traced < messages + consumes,
        "some but not all produces and consumes were traced: {finished:?}"
    );
    // The incident staged from the first minute after half-way is what `compare` finds: the
    // doubled producer, named as the origin, and the new schema from one instance.
    let changed = stdout
        .split("WHAT CHANGED")
        .nth(1)
        .and_then(|rest| rest.split("LINEAGE").next())
        .unwrap_or_else(|| panic!("no WHAT CHANGED section: {finished:?}"));
    let doubled = changed
        .lines()
        .find(|line| line.starts_with("shipment.delivered "))
        .unwrap_or_else(|| panic!("the doubled type is not flagged: {changed}"));
    assert!(doubled.contains("shipping (100% of it)"), "{changed}");
    assert!(
        changed.contains("schema    order.placed v4 (from checkout)"),
        "{changed}"
    );
    // The summary ends by naming the UI, at the root of the server it printed.
    let ui = stdout
        .split("OPEN THE UI")
        .nth(1)
        .unwrap_or_else(|| panic!("no OPEN THE UI section: {finished:?}"));
    assert!(
        ui.lines()
            .any(|line| line.trim().starts_with("http://127.0.0.1:") && line.trim().ends_with('/')),
        "{ui}"
    );
    let server = line("the server counts ");
    // At least: a minute's count is the larger of the spans and the SDK's count, and the SDK
    // may count an event in the minute after its span's.
    assert!(
        number_before(server, "produced") >= messages
            && number_before(server, "consumed") >= consumes,
        "{finished:?}"
    );
}

/// The number just before ` {words}` in `line`, like 12 in `sent 12 events`.
fn number_before(line: &str, words: &str) -> u64 {
    let at = line
        .find(&format!(" {words}"))
        .unwrap_or_else(|| panic!("no {words:?} in {line:?}"));
    let number = line[..at].rsplit([' ', '(']).next().unwrap_or_default();
    number
        .parse()
        .unwrap_or_else(|_| panic!("no number before {words:?} in {line:?}"))
}

#[test]
fn serve_refuses_an_unknown_config_key_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("muninn.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nretension = \"7d\"\n").unwrap();
    let mut command = muninn(&["serve", "--data-dir"]);
    command
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config);
    let finished = run(command, Duration::from_secs(60));
    assert!(!finished.status.success(), "{finished:?}");
    assert!(
        finished.stderr.contains("retension"),
        "names the bad key: {finished:?}"
    );
    assert!(
        finished.stderr.contains("`retention`"),
        "lists the valid keys: {finished:?}"
    );
    assert!(
        !finished.stdout.contains("muninn listening"),
        "{finished:?}"
    );
}

#[test]
fn serve_rejects_a_bad_retention_and_says_what_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = muninn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--retention",
        "7x",
        "--data-dir",
    ]);
    command.arg(dir.path());
    let finished = run(command, Duration::from_secs(60));
    assert!(!finished.status.success(), "{finished:?}");
    let stderr = &finished.stderr;
    assert!(
        stderr.contains("--retention") && stderr.contains("\"7x\""),
        "names the flag and value: {finished:?}"
    );
    assert!(
        stderr.contains("7d") && stderr.contains("forever"),
        "says what is valid: {finished:?}"
    );
}

#[test]
fn serve_settings_come_from_flags_then_environment_then_file() {
    let dir = tempfile::tempdir().unwrap();
    let valid_file = dir.path().join("valid.toml");
    std::fs::write(&valid_file, "retention = \"7d\"\n").unwrap();
    let invalid_file = dir.path().join("invalid.toml");
    std::fs::write(&invalid_file, "retention = \"bogus\"\n").unwrap();

    // The environment overrides the file: its bad value is the one reported.
    let mut command = muninn(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
    command
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&valid_file)
        .env("MUNINN_RETENTION", "soon");
    let finished = run(command, Duration::from_secs(60));
    assert!(!finished.status.success(), "{finished:?}");
    assert!(finished.stderr.contains("MUNINN_RETENTION"), "{finished:?}");

    // A flag overrides both: the bad file and environment values are never read.
    let config_arg = invalid_file.to_str().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--retention", "30d", "--config", config_arg],
        &[("MUNINN_RETENTION", "soon")],
    );
    assert!(server.base_url.starts_with("http://127.0.0.1:"));
}

#[test]
fn query_prints_tables_json_and_server_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[], &[]);
    ingest_one_event(&server.base_url, "e-query-1");
    let url = server.base_url.as_str();

    let consumers = run(
        muninn(&["query", "--server", url, "consumers", "order.placed"]),
        Duration::from_secs(60),
    );
    assert!(consumers.status.success(), "{consumers:?}");
    let header = consumers.stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("SERVICE  STREAM  BROKER  COUNT  MODIFIES"),
        "{consumers:?}"
    );
    assert!(
        consumers
            .stdout
            .contains("billing  orders  kafka       1  yes"),
        "{consumers:?}"
    );

    let journey = run(
        muninn(&["query", "journey", "e-query-1", "--server", url, "--json"]),
        Duration::from_secs(60),
    );
    assert!(journey.status.success(), "{journey:?}");
    let answer: serde_json::Value =
        serde_json::from_str(&journey.stdout).expect("--json prints JSON");
    assert_eq!(
        answer["hops"].as_array().map(Vec::len),
        Some(2),
        "{journey:?}"
    );

    let missing = run(
        muninn(&["query", "--server", url, "journey", "no-such-event"]),
        Duration::from_secs(60),
    );
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert_eq!(
        missing.stderr.trim(),
        "error: no span carries event id \"no-such-event\"",
        "{missing:?}"
    );

    // Several servers: one that is down is passed over; none up names each.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let servers = format!("{closed},{url}");
    let failed_over = run(
        muninn(&[
            "query",
            "--server",
            &servers,
            "journey",
            "e-query-1",
            "--json",
        ]),
        Duration::from_secs(60),
    );
    assert!(failed_over.status.success(), "{failed_over:?}");
    let none_up = run(
        muninn(&[
            "query",
            "--server",
            &format!("{closed},{closed}"),
            "journey",
            "e-query-1",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(none_up.status.code(), Some(1), "{none_up:?}");
    assert!(
        none_up
            .stderr
            .contains(&format!("cannot reach muninn at {closed}:"))
            && none_up.stderr.matches(&closed).count() >= 2,
        "{none_up:?}"
    );

    let bad_step = run(
        muninn(&["query", "--server", url, "throughput", "--step", "30s"]),
        Duration::from_secs(60),
    );
    assert_eq!(bad_step.status.code(), Some(1), "{bad_step:?}");
    assert!(
        bad_step
            .stderr
            .starts_with("error: step: must be a whole number of minutes"),
        "{bad_step:?}"
    );
}

#[test]
fn compare_prints_what_changed_and_names_a_bad_window() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[], &[]);
    let url = server.base_url.as_str();
    let minute = now_unix_nanos() / 1_000_000_000 / 60 * 60;
    let mut counts = Vec::new();
    // An hour ago and in the last 15 minutes: checkout's order.placed, steady; in the last 15
    // minutes also a new type, refund.issued, from billing.
    for start in [minute - 75 * 60, minute - 15 * 60] {
        for m in (start..start + 15 * 60).step_by(60) {
            counts.push(serde_json::json!({"service": "checkout", "event_type": "order.placed",
                "stream": "orders", "broker": "kafka", "action": "produced", "minute": m, "count": 60}));
            if start == minute - 15 * 60 {
                counts.push(serde_json::json!({"service": "billing", "event_type": "refund.issued",
                    "stream": "refunds", "broker": "kafka", "action": "produced", "minute": m, "count": 20}));
            }
        }
    }
    post_json(url, "/api/v1/counts", &serde_json::Value::Array(counts));
    let baseline = ["--baseline-from", "-75m", "--baseline-to", "-60m"];
    let mut args = vec!["compare", "--server", url, "--from", "-15m"];
    args.extend(baseline);
    let text = run(muninn(&args), Duration::from_secs(60));
    assert!(text.status.success(), "{text:?}");
    assert!(
        text.stdout.contains("appeared:")
            && text.stdout.contains("type      refund.issued: 300 events")
            && text.stdout.contains("stream    refunds: 300 events")
            && text
                .stdout
                .contains("producer  billing refund.issued: 300 events"),
        "{text:?}"
    );
    assert!(
        !text.stdout.contains("order.placed"),
        "steady, so not shown: {text:?}"
    );

    args.push("--json");
    let json = run(muninn(&args), Duration::from_secs(60));
    let answer: serde_json::Value = serde_json::from_str(&json.stdout).expect("--json prints JSON");
    assert_eq!(
        answer["appeared"]["event_types"][0]["event_type"],
        "refund.issued"
    );

    let inverted = run(
        muninn(&["compare", "--server", url, "--from", "-5m", "--to", "-10m"]),
        Duration::from_secs(60),
    );
    assert_eq!(inverted.status.code(), Some(1), "{inverted:?}");
    assert!(
        inverted
            .stderr
            .starts_with("error: from: must be before to"),
        "{inverted:?}"
    );
}

/// A `muninn demo` that keeps serving after its summary, killed when dropped.
struct ServingDemo {
    child: Child,
    base_url: String,
}

impl Drop for ServingDemo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServingDemo {
    /// Runs the demo's traffic into `data_dir` and waits for its `serving on` line.
    fn start(data_dir: &Path) -> ServingDemo {
        let mut command = muninn(&["demo", "--duration", "3s", "--rate", "100"]);
        command.arg("--listen").arg("127.0.0.1:0");
        command.arg("--data-dir").arg(data_dir);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the muninn binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = read_all(child.stderr.take().expect("stderr is piped"));
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("serving on ") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let _ = sender.send(url.to_string());
                }
            }
        });
        match receiver.recv_timeout(Duration::from_secs(180)) {
            Ok(base_url) => ServingDemo { child, base_url },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the demo printed no serving line within 180 s; stderr:\n{}",
                    stderr.join().unwrap_or_default()
                );
            }
        }
    }
}

/// GETs `path` and returns its JSON, failing on any status but 200.
async fn get_json(client: &reqwest::Client, base: &str, path: &str) -> serde_json::Value {
    let response = client
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {path}: {error}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status.as_u16(), 200, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("GET {path}: {error}: {text}"))
}

/// Jaeger's envelope around `data`, as Jaeger UI and Grafana read it.
fn jaeger_data<'a>(answer: &'a serde_json::Value, path: &str) -> &'a Vec<serde_json::Value> {
    for key in ["total", "limit", "offset", "errors"] {
        assert!(
            answer.get(key).is_some(),
            "GET {path}: no {key:?} in {answer}"
        );
    }
    answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("GET {path}: data is not an array: {answer}"))
}

#[test]
fn the_demo_fleet_answers_through_jaegers_and_zipkins_apis() {
    let data_dir = tempfile::tempdir().unwrap();
    let demo = ServingDemo::start(data_dir.path());
    let base = demo.base_url.as_str();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let demo_services = ["checkout", "order-router", "fraud-detection", "audit-log"];

        // Jaeger: services, operations, a search, one trace, the dependency graph.
        let path = "/api/services";
        let answer = get_json(&client, base, path).await;
        let services: Vec<&str> = jaeger_data(&answer, path)
            .iter()
            .filter_map(|service| service.as_str())
            .collect();
        for name in demo_services {
            assert!(services.contains(&name), "{name} missing from {answer}");
        }
        let path = "/api/services/checkout/operations";
        let answer = get_json(&client, base, path).await;
        assert!(
            jaeger_data(&answer, path).iter().any(|name| name
                .as_str()
                .is_some_and(|name| name.starts_with("publish "))),
            "checkout publishes: {answer}"
        );
        let path = "/api/traces?service=checkout&limit=5";
        let answer = get_json(&client, base, path).await;
        let traces = jaeger_data(&answer, path);
        assert!(
            !traces.is_empty() && traces.len() <= 5,
            "1 to 5 traces: {answer}"
        );
        let trace = &traces[0];
        let trace_id = trace["traceID"].as_str().expect("traceID").to_string();
        let now_us = now_unix_nanos() / 1_000;
        for span in trace["spans"].as_array().expect("spans") {
            assert_eq!(span["traceID"], trace["traceID"], "{span}");
            assert!(
                span["spanID"].as_str().is_some_and(|id| id.len() == 16),
                "{span}"
            );
            assert!(span["operationName"].is_string(), "{span}");
            assert!(span["references"].is_array(), "{span}");
            assert!(span["tags"].is_array(), "{span}");
            // Microseconds: within the last hour, not nanoseconds or milliseconds.
            let start = span["startTime"].as_i64().expect("startTime");
            assert!(now_us - 3_600_000_000 < start && start <= now_us, "{span}");
            assert!(span["duration"].as_i64().is_some(), "{span}");
            let process = span["processID"].as_str().expect("processID");
            assert!(
                trace["processes"][process]["serviceName"].is_string(),
                "{trace}"
            );
        }
        let path = format!("/api/traces/{trace_id}");
        let answer = get_json(&client, base, &path).await;
        assert_eq!(
            jaeger_data(&answer, &path)[0]["traceID"],
            json_str(&trace_id)
        );
        let path = format!(
            "/api/dependencies?endTs={}&lookback=3600000",
            now_us / 1_000 + 1
        );
        let answer = get_json(&client, base, &path).await;
        let links = jaeger_data(&answer, &path);
        assert!(
            links
                .iter()
                .any(|link| link["parent"] == json_str("checkout")
                    && link["callCount"].as_u64().is_some_and(|calls| calls > 0)),
            "checkout calls someone: {answer}"
        );

        // Zipkin: services, a search and one trace in Zipkin's v2 shape, dependencies.
        let services = get_json(&client, base, "/api/v2/services").await;
        for name in demo_services {
            assert!(
                services
                    .as_array()
                    .is_some_and(|all| all.contains(&json_str(name))),
                "{name} missing from {services}"
            );
        }
        let traces = get_json(&client, base, "/api/v2/traces?serviceName=checkout&limit=5").await;
        let traces = traces.as_array().expect("Zipkin traces are an array");
        assert!(!traces.is_empty() && traces.len() <= 5, "{traces:?}");
        let span = &traces[0][0];
        assert!(
            span["traceId"].is_string() && span["id"].is_string(),
            "{span}"
        );
        assert!(span["localEndpoint"]["serviceName"].is_string(), "{span}");
        let timestamp = span["timestamp"].as_i64().expect("timestamp in µs");
        assert!(
            now_us - 3_600_000_000 < timestamp && timestamp <= now_us,
            "{span}"
        );
        let trace_id = span["traceId"].as_str().unwrap().to_string();
        let trace = get_json(&client, base, &format!("/api/v2/trace/{trace_id}")).await;
        assert!(
            trace.as_array().is_some_and(|spans| !spans.is_empty()
                && spans
                    .iter()
                    .all(|span| span["traceId"] == json_str(&trace_id))),
            "{trace}"
        );
        let path = format!(
            "/api/v2/dependencies?endTs={}&lookback=3600000",
            now_us / 1_000 + 1
        );
        let links = get_json(&client, base, &path).await;
        assert!(
            links.as_array().is_some_and(|links| links
                .iter()
                .any(|link| link["parent"] == json_str("checkout")
                    && link["callCount"].as_u64().is_some_and(|calls| calls > 0))),
            "{links}"
        );

        // The UI shows the demo fleet: its lineage, a type's page from the search box, and
        // the journey of an order that crossed into fraud-detection's own trace.
        let browser = browser::Browser::open(base, 1280, 800).await;
        browser.visit("/", "lineage").await;
        assert_eq!(
            browser.find_all(r#"a[data-node^="service:"]"#).await.len(),
            12
        );
        assert_eq!(
            browser.find_all(r#"a[data-node^="stream:"]"#).await.len(),
            8
        );
        browser.screenshot("demo-lineage").await;
        browser
            .find("#search-input")
            .await
            .send_keys("order.placed")
            .await
            .unwrap();
        browser.click("#search-box button").await;
        browser.wait_ready("event-type").await;
        browser.find(".chart-holder canvas").await;
        let path = "/api/traces?service=fraud-detection&limit=1";
        let answer = get_json(&client, base, path).await;
        let event_id = jaeger_data(&answer, path)[0]["spans"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|span| span["tags"].as_array().unwrap())
            .find(|tag| tag["key"] == json_str("cloudevents.event_id"))
            .and_then(|tag| tag["value"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("a fraud-detection span names its event: {answer}"));
        browser
            .visit(&format!("/events/{event_id}"), "journey")
            .await;
        assert!(
            browser.find_all("ol.waterfall li").await.len() >= 2,
            "the order's journey has its publish and fraud-detection's consume"
        );

        // The rest of the on-call path on the demo's own data: a hop's span opens its trace,
        // the service and stream pages draw their throughput, trace search finds checkout's
        // traces, and a sampling rule is refused, created, edited and deleted.
        browser.click("ol.waterfall li button.row").await;
        browser.click("aside.details a.permalink").await;
        browser.wait_ready("trace").await;
        let path = browser.path().await;
        assert!(
            path.starts_with("/traces/") && path.contains("?span="),
            "{path}"
        );
        assert!(!browser.find_all("ol.waterfall li").await.is_empty());
        browser.visit("/services/checkout", "service").await;
        browser.find(".chart-holder canvas").await;
        let text = browser.main_text().await;
        assert!(text.contains("order.placed"), "{text}");
        browser.visit("/streams/orders", "stream").await;
        browser.find(".chart-holder canvas").await;
        browser
            .visit("/search?service=checkout&lookback=1h&limit=20", "search")
            .await;
        let results = browser.find_all("ol.results li").await.len();
        assert!((1..=20).contains(&results), "{results} traces listed");
        browser.find("figure.scatter circle").await;
        let rules = || async {
            browser::sampling_rules(&get_json(&client, base, "/api/v1/sampling/rules").await)
        };
        let demo_rules = rules().await;
        assert!(!demo_rules.is_empty(), "the demo sets its own rules");
        browser
            .sampling_rule_round_trip("checkout", None, rules)
            .await;
        assert_eq!(
            rules().await,
            demo_rules,
            "the demo's own rules are untouched"
        );
        browser.close().await;
    });
    drop(demo);
}

fn json_str(text: &str) -> serde_json::Value {
    serde_json::Value::String(text.to_string())
}

/// The WAL segment holding records, and the byte offset of the record whose payload holds
/// `needle` (records: `[length u32][crc u32][seq u64][payload]` after an 8-byte magic).
fn wal_record_holding(data_dir: &Path, needle: &[u8]) -> (std::path::PathBuf, usize, usize) {
    for entry in std::fs::read_dir(data_dir.join("wal")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let mut position = 8;
        while position + 16 <= bytes.len() {
            let length =
                u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap()) as usize;
            let payload = &bytes[position + 16..position + 16 + length];
            if payload.windows(needle.len()).any(|window| window == needle) {
                return (path, position, length);
            }
            position += 16 + length;
        }
    }
    panic!("no WAL record holds {}", String::from_utf8_lossy(needle));
}

#[test]
fn a_damaged_wal_record_is_reported_by_segment_and_offset_and_the_records_after_it_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = Server::start(&data_dir, &[], &[]);
    for event_id in ["e-before", "e-damaged", "e-after"] {
        ingest_one_event(&server.base_url, event_id);
    }
    // SIGKILL: the three acknowledged batches are in the WAL, nothing is flushed.
    server.stop();
    let (segment, offset, length) = wal_record_holding(&data_dir, b"e-damaged");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[offset + 16 + length / 2] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();

    let server = Server::start(&data_dir, &[], &[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (hops, metrics) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut hops = Vec::new();
        for event_id in ["e-before", "e-damaged", "e-after"] {
            let response = client
                .get(format!("{}/api/v1/events/{event_id}", server.base_url))
                .send()
                .await
                .unwrap();
            let n_hops = if response.status().is_success() {
                let journey: serde_json::Value = response.json().await.unwrap();
                journey["hops"].as_array().map_or(0, Vec::len)
            } else {
                0
            };
            hops.push(n_hops);
        }
        let metrics = client
            .get(format!("{}/metrics", server.base_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (hops, metrics)
    });
    assert_eq!(
        hops,
        [2, 0, 2],
        "the batch before and the one after the damage are replayed, the damaged one is gone"
    );
    for line in [
        "muninn_wal_damaged_regions 1",
        "muninn_wal_damaged_records 1",
    ] {
        assert!(
            metrics.lines().any(|metric| metric == line),
            "/metrics lacks {line:?}:\n{metrics}"
        );
    }
    let stderr = server.stop();
    let segment_name = segment.file_name().unwrap().to_str().unwrap();
    let report = stderr
        .lines()
        .find(|line| line.contains("WAL segment damaged"))
        .unwrap_or_else(|| panic!("no damage report in the log:\n{stderr}"));
    assert!(
        report.contains(segment_name) && report.contains(&format!("offset={offset}")),
        "the report names the segment and the offset {offset}: {report}"
    );
    let copy = data_dir.join("wal-damaged").join(segment_name);
    assert!(
        copy.exists(),
        "a copy of the damaged segment is kept at {}",
        copy.display()
    );
}
