//! `muninn impact` and `muninn schemas` against a real server: the checklist puts the
//! modifying consumer (also reached through a re-publisher) under "must redeploy" with the
//! schema it last handled, and a misspelt type is an error, not an empty checklist.

use std::time::Duration;

use super::post_json;
use super::process::{Server, muninn, now_unix_nanos, run};

fn span(
    order: u32,
    service: &str,
    kind: &str,
    at: i64,
    stream: &str,
    schema: &str,
) -> serde_json::Value {
    serde_json::json!({
        "trace_id": format!("{order:032x}"), "span_id": format!("{order:016x}"),
        "name": format!("{kind} order.created"), "kind": kind, "service": service,
        "start_time_unix_nano": at, "duration_nano": 1_000_000,
        "event_id": format!("evt-{order}"), "event_type": "order.created", "schema": schema,
        "stream": stream, "broker": "kafka",
        "resource": {"service.instance.id": format!("{service}-0"), "service.version": "2.0.1"},
    })
}

#[test]
fn impact_prints_a_checklist_and_schemas_name_the_first_sender() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[], &[]);
    let url = server.base_url.as_str();
    let at = now_unix_nanos() - 600 * 1_000_000_000;
    let mut fraud = span(4, "fraud-check", "consumer", at + 4, "orders.checked", "v1");
    fraud["modified"] = serde_json::json!(true);
    let spans = serde_json::json!([
        span(1, "checkout", "producer", at, "orders", "v1"),
        span(
            2,
            "checkout",
            "producer",
            at + 1_000_000_000,
            "orders",
            "v2"
        ),
        span(3, "router", "consumer", at + 2, "orders", "v1"),
        span(5, "router", "producer", at + 3, "orders.checked", "v1"),
        fraud,
        span(6, "audit", "consumer", at + 5, "orders", "v2"),
    ]);
    post_json(url, "/api/v1/spans", &spans);

    let checklist = run(
        muninn(&["impact", "order.created", "--schema", "v2", "--server", url]),
        Duration::from_secs(60),
    );
    assert!(checklist.status.success(), "{checklist:?}");
    let text = &checklist.stdout;
    let must = text
        .find("### Must redeploy before it ships (1 modifying consumer)")
        .unwrap_or_else(|| panic!("{text}"));
    let read_only = text
        .find("### Read-only consumers (2)")
        .unwrap_or_else(|| panic!("{text}"));
    let fraud_line = text
        .find(
            "- [ ] **fraud-check** — reads kafka/orders.checked (through router); last handled v1",
        )
        .unwrap_or_else(|| panic!("{text}"));
    assert!(must < fraud_line && fraud_line < read_only, "{text}");
    assert!(
        text.contains(
            "- [x] **audit** — reads kafka/orders; last handled v2, already handles the new schema"
        ),
        "{text}"
    );
    assert!(
        text.contains("- [ ] **router** — reads kafka/orders; last handled v1; publishes it again to kafka/orders.checked"),
        "{text}"
    );

    let schemas = run(
        muninn(&["schemas", "order.created", "--server", url]),
        Duration::from_secs(60),
    );
    assert!(schemas.status.success(), "{schemas:?}");
    let v2 = schemas
        .stdout
        .lines()
        .find(|line| line.starts_with("v2 "))
        .unwrap_or_else(|| panic!("{schemas:?}"));
    assert!(v2.contains("checkout checkout-0 v2.0.1 at "), "{v2}");

    let misspelt = run(
        muninn(&["impact", "order.craeted", "--server", url]),
        Duration::from_secs(60),
    );
    assert_eq!(misspelt.status.code(), Some(1), "{misspelt:?}");
    assert!(misspelt.stderr.contains("order.craeted"), "{misspelt:?}");
}
