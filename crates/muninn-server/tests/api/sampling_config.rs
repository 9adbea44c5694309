//! Central sampling as the server keeps and serves it: the rules file (kept across restarts, a
//! corrupt one stops the start), the config each service resolves to, its
//! `ETag`/`If-None-Match` handling, and the sampling metrics. The rules API itself is in
//! `sampling.rs`, with the helpers these tests share.

use serde_json::{Value, json};

use crate::sampling::{
    CONFIG, RULES, config, config_if, create, list, rule_path, rules_document, write_rules_file,
};
use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_survive_a_restart() {
    let mut server = TestServer::start().await;
    create(
        &server.api,
        json!({"service": "payments", "rate": 1, "live_debug": true}),
    )
    .await;
    create(
        &server.api,
        json!({"event_type": "order.created", "rate": 0.1}),
    )
    .await;
    create(&server.api, json!({"id": "quiet", "rate": 0})).await;
    let before = list(&server.api).await;
    let config_before = config_if(&server.api, "payments", &[]).await;
    assert_eq!(config_before.status, 200);
    server.restart().await;
    assert_eq!(list(&server.api).await, before);
    let etag = config_before.header("etag").unwrap();
    let answer = config_if(&server.api, "payments", &[etag]).await;
    assert_eq!(answer.status, 304, "the same rules give the same ETag");
    // Changes after the restart are kept too.
    let answer = server
        .api
        .send("DELETE", &rule_path("quiet"), &[], None, &[])
        .await;
    assert_eq!(answer.status, 204);
    server.restart().await;
    assert_eq!(
        list(&server.api).await["rules"].as_array().unwrap().len(),
        2
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_rules_file_stops_the_start() {
    let cases: Vec<(String, &str)> = vec![
        ("{\"version\": 1, \"rules\": [".to_string(), "is not JSON"),
        (String::new(), "is not JSON"),
        ("[]".to_string(), "must be a JSON object"),
        (r#"{"version": 2, "rules": []}"#.to_string(), "version 2 is not supported"),
        (r#"{"rules": []}"#.to_string(), "version"),
        (r#"{"version": 1}"#.to_string(), "rules: must be an array"),
        (
            r#"{"version": 1, "rules": [], "extra": true}"#.to_string(),
            "unknown member \"extra\"",
        ),
        (
            r#"{"version": 1, "rules": [{"id": "a", "rate": 1.5}]}"#.to_string(),
            "rules[0].rate",
        ),
        (
            r#"{"version": 1, "rules": [{"rate": 1}]}"#.to_string(),
            "rules[0].id: is required",
        ),
        (
            r#"{"version": 1, "rules": [{"id": "a", "rate": 1}, {"id": "b", "rate": 1, "colour": "red"}]}"#
                .to_string(),
            "rules[1].colour",
        ),
        (
            r#"{"version": 1, "rules": [{"id": "a", "service": "s", "rate": 1}, {"id": "b", "service": "s", "rate": 0}]}"#
                .to_string(),
            "same scope",
        ),
        (
            r#"{"version": 1, "rules": [{"id": "a", "rate": 1}, {"id": "a", "service": "s", "rate": 0}]}"#
                .to_string(),
            "two rules have id \"a\"",
        ),
        (rules_document(10_001).to_string(), "more than the 10000"),
    ];
    for (text, expected) in cases {
        let data_dir = tempfile::tempdir().unwrap();
        let path = write_rules_file(data_dir.path(), &text);
        let config = muninn_server::ServerConfig::new(data_dir.path(), 0);
        let error = match muninn_server::start(config).await {
            Ok(running) => {
                running.stop().await;
                panic!("the server started with a rules file saying {text:.80}");
            }
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains(&path.display().to_string()),
            "the error does not name the file: {error}"
        );
        assert!(
            error.contains(expected),
            "the error does not say {expected:?}: {error}"
        );
        // Nothing was reset.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    // A temporary file left by a crash mid-write is not the rules file: it is ignored and
    // replaced by the next write.
    let data_dir = tempfile::tempdir().unwrap();
    write_rules_file(
        data_dir.path(),
        r#"{"version": 1, "rules": [{"id": "kept", "rate": 1}]}"#,
    );
    // Left by interrupted writes: this version's temporary name, and the fixed one before it.
    let leftovers = ["rules.json.muninn-tmp-0123", "rules.json.tmp"];
    for leftover in leftovers {
        std::fs::write(data_dir.path().join("sampling").join(leftover), "{half").unwrap();
    }
    let running = muninn_server::start(muninn_server::ServerConfig::new(data_dir.path(), 0))
        .await
        .expect("starting next to a leftover temporary file");
    let answer = reqwest::Client::new()
        .post(format!("{}{RULES}", running.base_url()))
        .body(r#"{"service": "new", "rate": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    running.stop().await;
    let text = std::fs::read_to_string(data_dir.path().join("sampling/rules.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["rules"].as_array().unwrap().len(), 2);
    for leftover in leftovers {
        assert!(!data_dir.path().join("sampling").join(leftover).exists());
    }

    // An out-of-range default rate is refused by name.
    let mut config = muninn_server::ServerConfig::new(data_dir.path(), 0);
    config.default_sample_rate_ppm = 1_000_001;
    let error = muninn_server::start(config).await.err().expect("refused");
    assert!(
        error.to_string().contains("default_sample_rate_ppm"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_of_a_service_resolves_the_most_specific_rules() {
    let server = TestServer::start().await;
    let api = &server.api;
    // Before any rule: everything is traced.
    assert_eq!(
        config(api, "payments").await,
        json!({"service": "payments", "default_rate_ppm": 1_000_000, "event_types": {}, "live_debug": false})
    );
    for rule in [
        json!({"rate": 0.5}),
        json!({"service": "payments", "rate": 1, "live_debug": true}),
        json!({"event_type": "order.created", "rate": 0}),
        json!({"service": "payments", "event_type": "order.paid", "rate": 0.25}),
        json!({"service": "other", "event_type": "order.paid", "rate": 0.75}),
        json!({"event_type": "order.shipped", "rate": 0.1234567}),
        json!({"service": "payments", "event_type": "order.shipped", "rate": 0.9}),
    ] {
        create(api, rule).await;
    }
    assert_eq!(
        config(api, "payments").await,
        json!({
            "service": "payments",
            "default_rate_ppm": 1_000_000,
            "event_types": {"order.created": 0, "order.paid": 250_000, "order.shipped": 900_000},
            "live_debug": true,
        })
    );
    // Another service: the general rules only, and no live debugging.
    assert_eq!(
        config(api, "shipping").await,
        json!({
            "service": "shipping",
            "default_rate_ppm": 500_000,
            "event_types": {"order.created": 0, "order.shipped": 123_457},
            "live_debug": false,
        })
    );
    assert_eq!(
        config(api, "other").await["event_types"]["order.paid"],
        json!(750_000)
    );
    // Names are matched exactly, whatever they hold.
    assert_eq!(
        config(api, "Payments ü/1").await["service"],
        json!("Payments ü/1")
    );
    assert_eq!(config(api, "Payments").await["live_debug"], json!(false));
    server.stop().await;

    // The fallback rate is the server's setting.
    let server = TestServer::start_with(|config| config.default_sample_rate_ppm = 250_000).await;
    assert_eq!(
        config(&server.api, "payments").await["default_rate_ppm"],
        json!(250_000)
    );
    create(&server.api, json!({"event_type": "x", "rate": 1})).await;
    assert_eq!(
        config(&server.api, "payments").await,
        json!({"service": "payments", "default_rate_ppm": 250_000, "event_types": {"x": 1_000_000}, "live_debug": false})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_has_an_etag_and_answers_304_while_unchanged() {
    let server = TestServer::start().await;
    let api = &server.api;
    create(
        api,
        json!({"id": "base", "service": "payments", "rate": 0.5}),
    )
    .await;
    let first = config_if(api, "payments", &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("cache-control"), Some("no-cache"));
    let etag = first.header("etag").unwrap().to_string();
    // The tag is the quoted XXH3-64 of the body.
    let hash = muninn_model::sampling::event_id_hash(first.text.as_bytes());
    assert_eq!(etag, format!("\"{hash:016x}\""));
    assert_eq!(
        config_if(api, "payments", &[]).await.header("etag"),
        Some(etag.as_str())
    );
    assert_ne!(
        config_if(api, "shipping", &[]).await.header("etag"),
        Some(etag.as_str()),
        "another service's config has another tag"
    );

    let weak = format!("W/{etag}");
    let listed = format!("\"0000000000000000\", {etag}");
    for if_none_match in [
        vec![etag.as_str()],
        vec![listed.as_str()],
        vec!["\"1\"", etag.as_str()],
        vec!["*"],
        vec![weak.as_str()],
    ] {
        let answer = config_if(api, "payments", &if_none_match).await;
        assert_eq!(answer.status, 304, "If-None-Match {if_none_match:?}");
        assert_eq!(answer.text, "");
        assert_eq!(answer.header("etag"), Some(etag.as_str()));
        assert_eq!(answer.header("cache-control"), Some("no-cache"));
    }
    for if_none_match in ["\"0000000000000000\"", "nonsense", etag.trim_matches('"')] {
        let answer = config_if(api, "payments", &[if_none_match]).await;
        assert_eq!(answer.status, 200, "If-None-Match {if_none_match:?}");
        assert_eq!(answer.text, first.text);
    }

    // A rule of another service leaves this config, and so its tag, unchanged.
    create(api, json!({"service": "shipping", "rate": 0})).await;
    assert_eq!(config_if(api, "payments", &[&etag]).await.status, 304);
    // A change that concerns it: a full answer with a new tag, which is then current.
    let answer = api
        .send_json(
            "PUT",
            &rule_path("base"),
            &json!({"service": "payments", "rate": 0.25}),
        )
        .await;
    assert_eq!(answer.status, 200);
    let changed = config_if(api, "payments", &[&etag]).await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.json()["default_rate_ppm"], json!(250_000));
    let new_etag = changed.header("etag").unwrap();
    assert_ne!(new_etag, etag);
    assert_eq!(config_if(api, "payments", &[new_etag]).await.status, 304);
    // Deleting the rule changes it again.
    api.send("DELETE", &rule_path("base"), &[], None, &[]).await;
    assert_eq!(config_if(api, "payments", &[new_etag]).await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_metrics_count_rules_and_config_answers() {
    let mut server = TestServer::start().await;
    let fresh = crate::metrics::scrape(&server).await;
    assert_eq!(fresh.get("muninn_sampling_rules", &[]), 0.0);
    assert_eq!(
        fresh.types.get("muninn_sampling_rules").map(String::as_str),
        Some("gauge")
    );
    assert_eq!(
        fresh
            .types
            .get("muninn_sampling_config_requests")
            .map(String::as_str),
        Some("counter")
    );
    // The answers of a working poll are exported from the start.
    for result in ["200", "304"] {
        assert_eq!(
            fresh.get(
                "muninn_sampling_config_requests_total",
                &[("result", result)]
            ),
            0.0
        );
    }

    let api = server.api.clone();
    create(&api, json!({"id": "a", "rate": 1})).await;
    create(&api, json!({"id": "b", "service": "s", "rate": 1})).await;
    create(&api, json!({"id": "c", "event_type": "e", "rate": 1})).await;
    api.send("DELETE", &rule_path("a"), &[], None, &[]).await;
    // Refused changes do not count.
    api.send_json("POST", RULES, &json!({"rate": 2})).await;

    let etag = config_if(&api, "s", &[])
        .await
        .header("etag")
        .unwrap()
        .to_string();
    config_if(&api, "t", &[]).await;
    for _ in 0..3 {
        assert_eq!(config_if(&api, "s", &[&etag]).await.status, 304);
    }
    api.get(CONFIG, &[]).await;

    let metrics = crate::metrics::scrape(&server).await;
    assert_eq!(metrics.get("muninn_sampling_rules", &[]), 2.0);
    let requests = |result: &str| {
        metrics.get(
            "muninn_sampling_config_requests_total",
            &[("result", result)],
        )
    };
    assert_eq!(requests("200"), 2.0);
    assert_eq!(requests("304"), 3.0);
    assert_eq!(requests("400"), 1.0);

    // After a restart the gauge counts the loaded rules; the counters start again.
    server.restart().await;
    let metrics = crate::metrics::scrape(&server).await;
    assert_eq!(metrics.get("muninn_sampling_rules", &[]), 2.0);
    assert_eq!(
        metrics.get(
            "muninn_sampling_config_requests_total",
            &[("result", "200")]
        ),
        0.0
    );
    assert_eq!(
        metrics.value(
            "muninn_sampling_config_requests_total",
            &[("result", "400")]
        ),
        None
    );
    server.stop().await;
}
