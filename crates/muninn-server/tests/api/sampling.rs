//! Central sampling over HTTP: the rules API (create, read, replace, delete; validation that
//! names the field; one rule per scope; at most 10,000), the rules file (durable before the
//! answer, kept across restarts, a corrupt one stops the start), the config each service
//! resolves to, its `ETag`/`If-None-Match` handling, and the sampling metrics.

use serde_json::{Value, json};

use crate::openapi::{check_schema, document, json_to_yaml};
use crate::support::{Answer, Api, TestServer};

const RULES: &str = "/api/v1/sampling/rules";
const CONFIG: &str = "/api/v1/sampling/config";

fn rule_path(id: &str) -> String {
    format!("{RULES}/{id}")
}

/// Asserts that a request body is valid by the documented `SamplingRuleInput`.
fn documented_input(body: &Value) {
    let schema = json_to_yaml(&json!({"$ref": "#/components/schemas/SamplingRuleInput"}));
    check_schema(document(), &schema, body, "body")
        .unwrap_or_else(|error| panic!("a valid rule is not valid by openapi.yaml: {error}"));
}

/// `POST /api/v1/sampling/rules`, expecting 201; returns the stored rule.
async fn create(api: &Api, body: Value) -> Value {
    documented_input(&body);
    let answer = api.send_json("POST", RULES, &body).await;
    assert_eq!(answer.status, 201, "POST {body}: {}", answer.text);
    let rule = answer.json();
    let id = rule["id"].as_str().expect("the rule has an id");
    assert_eq!(answer.header("location"), Some(rule_path(id).as_str()));
    rule
}

async fn list(api: &Api) -> Value {
    api.get_json(RULES, &[]).await
}

async fn config(api: &Api, service: &str) -> Value {
    api.get_json(CONFIG, &[("service", service)]).await
}

/// `GET /api/v1/sampling/config?service=…` with `If-None-Match` headers.
async fn config_if(api: &Api, service: &str, if_none_match: &[&str]) -> Answer {
    let headers: Vec<(&str, &str)> = if_none_match
        .iter()
        .map(|value| ("if-none-match", *value))
        .collect();
    api.send("GET", CONFIG, &[("service", service)], None, &headers)
        .await
}

/// The rules file as JSON.
fn rules_file(server: &TestServer) -> Value {
    let path = server.data_dir().join("sampling").join("rules.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_json::from_str(&text).expect("the rules file is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_round_trip_through_create_read_replace_and_delete() {
    let server = TestServer::start().await;
    let api = &server.api;
    assert_eq!(list(api).await, json!({"rules": []}));

    let generated = create(
        api,
        json!({"service": "checkout", "rate": 0.5, "description": "half of checkout"}),
    )
    .await;
    let id = generated["id"].as_str().unwrap().to_string();
    assert!(
        id.len() == 13
            && id.starts_with("rule-")
            && id[5..]
                .chars()
                .all(|char| char.is_ascii_hexdigit() && !char.is_ascii_uppercase()),
        "generated id {id:?} is not rule-<8 hex>"
    );
    assert_eq!(
        generated,
        json!({"id": id, "service": "checkout", "rate": 0.5, "live_debug": false, "description": "half of checkout"})
    );
    let named = create(
        api,
        json!({"id": "errors.always", "event_type": "payment.failed", "rate": 1}),
    )
    .await;
    assert_eq!(
        named,
        json!({"id": "errors.always", "event_type": "payment.failed", "rate": 1.0, "live_debug": false})
    );
    // Written before the answer: the file already holds both, in the documented format.
    assert_eq!(
        rules_file(&server),
        json!({"version": 1, "rules": [named, generated]})
    );
    // Sorted by id.
    assert_eq!(list(api).await, json!({"rules": [named, generated]}));
    assert_eq!(api.get_json(&rule_path(&id), &[]).await, generated);

    // PUT replaces (200, no Location) ...
    let replacement = json!({"service": "checkout", "rate": 0.25, "live_debug": true});
    documented_input(&replacement);
    let answer = api.send_json("PUT", &rule_path(&id), &replacement).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("location"), None);
    let replaced = json!({"id": id, "service": "checkout", "rate": 0.25, "live_debug": true});
    assert_eq!(answer.json(), replaced);
    assert_eq!(api.get_json(&rule_path(&id), &[]).await, replaced);
    // ... or creates (201 with Location); a body id equal to the path's is fine.
    let answer = api
        .send_json(
            "PUT",
            &rule_path("zz-global"),
            &json!({"id": "zz-global", "rate": 0.1}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(
        answer.header("location"),
        Some("/api/v1/sampling/rules/zz-global")
    );
    let global = json!({"id": "zz-global", "rate": 0.1, "live_debug": false});
    assert_eq!(answer.json(), global);
    assert_eq!(list(api).await, json!({"rules": [named, replaced, global]}));

    // DELETE: 204 without a body, then 404.
    let answer = api
        .send("DELETE", &rule_path("errors.always"), &[], None, &[])
        .await;
    assert_eq!(answer.status, 204, "{}", answer.text);
    assert_eq!(answer.text, "");
    let answer = api
        .send("DELETE", &rule_path("errors.always"), &[], None, &[])
        .await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.error()["message"]
            .as_str()
            .unwrap()
            .contains("errors.always"),
        "{}",
        answer.text
    );
    assert_eq!(api.get(&rule_path("errors.always"), &[]).await.status, 404);
    assert_eq!(list(api).await, json!({"rules": [replaced, global]}));
    assert_eq!(
        rules_file(&server),
        json!({"version": 1, "rules": [replaced, global]})
    );
    // A method the route does not take.
    let (answer, allow) = api.request("PATCH", &rule_path(&id)).await;
    assert_eq!(answer.status, 405);
    for method in ["GET", "PUT", "DELETE"] {
        assert!(allow.contains(method), "Allow: {allow}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_rule_is_refused_naming_its_field() {
    let server = TestServer::start().await;
    let api = &server.api;
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"rate": 1.5}), "rate", "0 to 1"),
        (json!({"rate": -0.01}), "rate", "0 to 1"),
        (json!({"rate": "0.5"}), "rate", "got a string"),
        (json!({"rate": null}), "rate", "required"),
        (json!({"service": "a"}), "rate", "required"),
        (json!({"rate": 1, "id": ""}), "id", "1 to 64 characters"),
        (json!({"rate": 1, "id": "has space"}), "id", "A-Z"),
        (json!({"rate": 1, "id": "ü"}), "id", "A-Z"),
        (json!({"rate": 1, "id": long(65)}), "id", "1 to 64"),
        (json!({"rate": 1, "id": 7}), "id", "must be a string"),
        (
            json!({"rate": 1, "service": ""}),
            "service",
            "omit the field to match every service",
        ),
        (
            json!({"rate": 1, "service": long(257)}),
            "service",
            "at most 256",
        ),
        (
            json!({"rate": 1, "service": "a\u{7}b"}),
            "service",
            "control characters",
        ),
        (
            json!({"rate": 1, "event_type": ""}),
            "event_type",
            "omit the field to match every event type",
        ),
        (
            json!({"rate": 1, "event_type": long(257)}),
            "event_type",
            "at most 256",
        ),
        (
            json!({"rate": 1, "event_type": "a\nb"}),
            "event_type",
            "control characters",
        ),
        (
            json!({"rate": 1, "live_debug": true}),
            "live_debug",
            "needs a `service`",
        ),
        (
            json!({"rate": 1, "event_type": "e", "live_debug": true}),
            "live_debug",
            "needs a `service`",
        ),
        (
            json!({"rate": 1, "service": "s", "live_debug": "yes"}),
            "live_debug",
            "true or false",
        ),
        (
            json!({"rate": 1, "description": long(1025)}),
            "description",
            "at most 1024",
        ),
        (
            json!({"rate": 1, "sample_rate": 0.5}),
            "sample_rate",
            "unknown field",
        ),
    ];
    for (body, field, says) in &cases {
        for (method, path) in [("POST", RULES.to_string()), ("PUT", rule_path("r1"))] {
            let answer = api.send_json(method, &path, body).await;
            let error = answer.expect_bad_field(field);
            let message = error["message"].as_str().unwrap();
            assert!(
                message.contains(says),
                "{method} {body}: the message does not say {says:?}: {message}"
            );
        }
    }
    // Limits count characters: 256 two-byte characters are fine.
    let wide = create(api, json!({"service": "é".repeat(256), "rate": 1})).await;
    let wide_id = wide["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.send("DELETE", &rule_path(&wide_id), &[], None, &[])
            .await
            .status,
        204
    );

    // The path id: validated like a body id, and a body id must equal it.
    let answer = api
        .send_json("PUT", &rule_path("r1"), &json!({"id": "r2", "rate": 1}))
        .await;
    let message = answer.expect_bad_field("id")["message"].to_string();
    assert!(
        message.contains("r2") && message.contains("r1"),
        "{message}"
    );
    for method in ["GET", "PUT", "DELETE"] {
        let answer = api
            .send(
                method,
                &rule_path("bad%20id"),
                &[],
                Some(b"{\"rate\":1}".to_vec()),
                &[],
            )
            .await;
        answer.expect_bad_field("id");
    }
    // Not an object; not JSON (line and column); too large.
    let answer = api.send_json("POST", RULES, &json!([{"rate": 1}])).await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.error()["message"]
            .as_str()
            .unwrap()
            .contains("JSON object")
    );
    let answer = api
        .send(
            "POST",
            RULES,
            &[],
            Some(b"{\n  \"rate\": 1,,\n}".to_vec()),
            &[],
        )
        .await;
    assert_eq!(answer.status, 400);
    let error = answer.error();
    assert_eq!(
        (error["line"].clone(), error["column"].clone()),
        (json!(2), json!(13))
    );
    let answer = api.send("POST", RULES, &[], None, &[]).await;
    assert_eq!(answer.status, 400, "an empty body: {}", answer.text);
    let huge = json!({"rate": 1, "description": long(70_000)});
    let answer = api.send_json("POST", RULES, &huge).await;
    assert_eq!(answer.status, 413, "{}", answer.text);

    // The config needs a service.
    api.get(CONFIG, &[]).await.expect_bad_field("service");
    api.get(CONFIG, &[("service", "")])
        .await
        .expect_bad_field("service");
    api.get(CONFIG, &[("service", long(513).as_str())])
        .await
        .expect_bad_field("service");
    api.get(CONFIG, &[("service", "a\u{1}")])
        .await
        .expect_bad_field("service");

    // Nothing was stored (the file is there since the wide rule came and went).
    assert_eq!(list(api).await, json!({"rules": []}));
    assert_eq!(rules_file(&server), json!({"version": 1, "rules": []}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rule_per_scope_and_ids_are_unique() {
    let server = TestServer::start().await;
    let api = &server.api;
    let first = create(api, json!({"service": "billing", "rate": 1})).await;
    let first_id = first["id"].as_str().unwrap();
    // Other scopes are fine: the same name as an event type, the pair, the global rule.
    create(api, json!({"event_type": "billing", "rate": 1})).await;
    create(
        api,
        json!({"service": "billing", "event_type": "billing", "rate": 1}),
    )
    .await;
    create(api, json!({"id": "global", "rate": 0.5})).await;

    let expect_conflict = |answer: Answer, names: &str| {
        assert_eq!(answer.status, 409, "{}", answer.text);
        let message = answer.error()["message"].as_str().unwrap().to_string();
        assert!(
            message.contains(names),
            "409 does not name {names}: {message}"
        );
    };
    expect_conflict(
        api.send_json("POST", RULES, &json!({"service": "billing", "rate": 0}))
            .await,
        first_id,
    );
    expect_conflict(
        api.send_json(
            "PUT",
            &rule_path("other"),
            &json!({"service": "billing", "rate": 0}),
        )
        .await,
        first_id,
    );
    expect_conflict(
        api.send_json("POST", RULES, &json!({"rate": 0, "description": "again"}))
            .await,
        "global",
    );
    // A taken id on POST.
    expect_conflict(
        api.send_json(
            "POST",
            RULES,
            &json!({"id": "global", "service": "x", "rate": 0}),
        )
        .await,
        "PUT",
    );
    // Replacing a rule keeps its own scope.
    let answer = api
        .send_json(
            "PUT",
            &rule_path(first_id),
            &json!({"service": "billing", "rate": 0.75}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(list(api).await["rules"].as_array().unwrap().len(), 4);

    // Concurrent creations of one scope: exactly one wins; of distinct scopes: all do.
    let same: Vec<_> = (0..8)
        .map(|n| {
            let api = api.clone();
            tokio::spawn(async move {
                api.send_json(
                    "POST",
                    RULES,
                    &json!({"service": "race", "rate": f64::from(n) / 8.0}),
                )
                .await
                .status
            })
        })
        .collect();
    let distinct: Vec<_> = (0..16)
        .map(|n| {
            let api = api.clone();
            tokio::spawn(async move {
                api.send_json(
                    "POST",
                    RULES,
                    &json!({"service": format!("svc-{n}"), "rate": 1}),
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in same {
        statuses.push(task.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    for task in distinct {
        assert_eq!(task.await.unwrap(), 201);
    }
    let listed = list(api).await;
    assert_eq!(listed["rules"].as_array().unwrap().len(), 4 + 1 + 16);
    assert_eq!(rules_file(&server)["rules"], listed["rules"]);
    server.stop().await;
}

/// A rules file of `n` rules, one per service `svc-00000`, …
fn rules_document(n: usize) -> Value {
    let rules: Vec<Value> = (0..n)
        .map(|index| json!({"id": format!("r{index:05}"), "service": format!("svc-{index:05}"), "rate": 0.5}))
        .collect();
    json!({"version": 1, "rules": rules})
}

fn write_rules_file(data_dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let dir = data_dir.join("sampling");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.json");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_ten_thousand_rules() {
    let server = TestServer::start_with(|config| {
        write_rules_file(&config.store.data_dir, &rules_document(10_000).to_string());
    })
    .await;
    let api = &server.api;
    assert_eq!(list(api).await["rules"].as_array().unwrap().len(), 10_000);
    for answer in [
        api.send_json("POST", RULES, &json!({"service": "one-more", "rate": 1}))
            .await,
        api.send_json("PUT", &rule_path("one-more"), &json!({"rate": 1}))
            .await,
    ] {
        assert_eq!(answer.status, 409, "{}", answer.text);
        let message = answer.error()["message"].as_str().unwrap().to_string();
        assert!(message.contains("10000"), "{message}");
    }
    // Replacing is not adding.
    let answer = api
        .send_json(
            "PUT",
            &rule_path("r00042"),
            &json!({"service": "svc-00042", "rate": 0}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        api.send("DELETE", &rule_path("r00000"), &[], None, &[])
            .await
            .status,
        204
    );
    create(api, json!({"service": "one-more", "rate": 1})).await;
    assert_eq!(config(api, "svc-00042").await["default_rate_ppm"], json!(0));
    server.stop().await;
}

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
