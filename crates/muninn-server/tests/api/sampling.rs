//! Central sampling over HTTP, the rules API: create, read, replace, delete; validation that
//! names the field; one rule per scope; at most 10,000; each change in the rules file before the
//! answer. The rules file across restarts, the config each service resolves to and the sampling
//! metrics are in `sampling_config.rs`.

use serde_json::{Value, json};

use crate::openapi::{check_schema, document, json_to_yaml};
use crate::support::{Answer, Api, TestServer};

pub(crate) const RULES: &str = "/api/v1/sampling/rules";
pub(crate) const CONFIG: &str = "/api/v1/sampling/config";

pub(crate) fn rule_path(id: &str) -> String {
    format!("{RULES}/{id}")
}

/// Asserts that a request body is valid by the documented `SamplingRuleInput`.
fn documented_input(body: &Value) {
    let schema = json_to_yaml(&json!({"$ref": "#/components/schemas/SamplingRuleInput"}));
    check_schema(document(), &schema, body, "body")
        .unwrap_or_else(|error| panic!("a valid rule is not valid by openapi.yaml: {error}"));
}

/// `POST /api/v1/sampling/rules`, expecting 201; returns the stored rule.
pub(crate) async fn create(api: &Api, body: Value) -> Value {
    documented_input(&body);
    let answer = api.send_json("POST", RULES, &body).await;
    assert_eq!(answer.status, 201, "POST {body}: {}", answer.text);
    let rule = answer.json();
    let id = rule["id"].as_str().expect("the rule has an id");
    assert_eq!(answer.header("location"), Some(rule_path(id).as_str()));
    rule
}

pub(crate) async fn list(api: &Api) -> Value {
    api.get_json(RULES, &[]).await
}

pub(crate) async fn config(api: &Api, service: &str) -> Value {
    api.get_json(CONFIG, &[("service", service)]).await
}

/// `GET /api/v1/sampling/config?service=…` with `If-None-Match` headers.
pub(crate) async fn config_if(api: &Api, service: &str, if_none_match: &[&str]) -> Answer {
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
pub(crate) fn rules_document(n: usize) -> Value {
    let rules: Vec<Value> = (0..n)
        .map(|index| json!({"id": format!("r{index:05}"), "service": format!("svc-{index:05}"), "rate": 0.5}))
        .collect();
    json!({"version": 1, "rules": rules})
}

pub(crate) fn write_rules_file(data_dir: &std::path::Path, text: &str) -> std::path::PathBuf {
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
