//! Journeys and the archive: a hop names its archived message (or the event's messages) with its
//! time in the broker, the links resolve, and the UI opens a hop's archived message beside its
//! journey.

use serde_json::{Value, json};

use crate::browser;
use crate::common::{TRACEPARENT, base_ms, server_with_archive};
use crate::support::{NANOS_PER_MILLI, event, span, with};

/// Spans of event `order-1` whose hops name archived messages: the publish and billing's
/// consume name `orders`/0/10 (the publish ends 4 ms before the broker's timestamp; billing
/// starts 20 ms after it), a retry names offset 99, which the archive does not hold, and
/// shipping names no offset at all.
fn archived_journey(base_nanos: i64) -> Vec<Value> {
    let trace = "7ace0000000000000000000000000001";
    let at = |partition: i64, offset: i64| json!({"partition": partition, "offset": offset});
    let created = event("order-1", "order.created", "order.v1", "orders", "kafka");
    vec![
        with(
            span(
                trace,
                "0000000000000001",
                None,
                "checkout",
                "publish",
                "producer",
                base_nanos - 5 * NANOS_PER_MILLI,
            ),
            with(created.clone(), at(0, 10)),
        ),
        with(
            span(
                trace,
                "0000000000000002",
                Some("0000000000000001"),
                "billing",
                "consume",
                "consumer",
                base_nanos + 20 * NANOS_PER_MILLI,
            ),
            with(created.clone(), at(0, 10)),
        ),
        with(
            span(
                trace,
                "0000000000000003",
                Some("0000000000000001"),
                "billing",
                "consume",
                "consumer",
                base_nanos + 30 * NANOS_PER_MILLI,
            ),
            with(created, at(0, 99)),
        ),
        with(
            span(
                trace,
                "0000000000000004",
                Some("0000000000000002"),
                "shipping",
                "consume",
                "consumer",
                base_nanos + 40 * NANOS_PER_MILLI,
            ),
            event("order-1", "order.created", "order.v1", "shipments", "kafka"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_hop_links_to_its_archived_message_and_its_time_in_the_broker() {
    let base_ms = base_ms();
    let (server, _archive_dir) = server_with_archive(base_ms).await;
    let base_nanos = base_ms * NANOS_PER_MILLI;
    server
        .api
        .ingest_ok("/api/v1/spans", &archived_journey(base_nanos))
        .await;

    let journey = server.api.get_json("/api/v1/events/order-1", &[]).await;
    let archive_of = |index: usize| journey["hops"][index]["archive"].clone();
    let link = "/api/v1/archive/messages?stream=orders&partition=0&offset=10";
    let timestamp = muninn_model::format_rfc3339_nanos(base_nanos);
    assert_eq!(
        archive_of(0),
        json!({
            "message": link,
            "archived": true,
            "broker_timestamp": timestamp,
            "timestamp_type": "create_time",
            "broker_ms": {"after_publish_ms": 4.0, "before_consume_ms": 20.0},
        })
    );
    assert_eq!(
        archive_of(1),
        json!({
            "message": link,
            "archived": true,
            "broker_timestamp": timestamp,
            "timestamp_type": "create_time",
            "broker_ms": {"after_publish_ms": 4.0, "before_consume_ms": 20.0},
        })
    );
    assert_eq!(
        archive_of(2),
        json!({
            "message": "/api/v1/archive/messages?stream=orders&partition=0&offset=99",
            "archived": false,
        })
    );
    assert_eq!(
        archive_of(3),
        json!({"event": "/api/v1/archive/events/order-1"})
    );

    // The links resolve.
    let (path, link_query) = link.split_once('?').expect("a query");
    let link_query: Vec<(&str, &str)> = link_query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let message = server.api.get_json(path, &link_query).await;
    assert_eq!(
        (&message["stream"], &message["offset"], &message["event_id"]),
        (&json!("orders"), &json!(10), &json!("order-1"))
    );
    let event_messages = server
        .api
        .get_json("/api/v1/archive/events/order-1", &[])
        .await;
    assert_eq!(event_messages["messages"].as_array().map(Vec::len), Some(2));
    server.stop().await;
}

/// In the browser: a hop's archived message opens beside its journey with its headers in the
/// broker's order, its payload rendered and its time in the broker; a hop without a position
/// lists the event's archived messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_a_hops_archived_message() {
    let base_ms = base_ms();
    let (server, _archive_dir) = server_with_archive(base_ms).await;
    server
        .api
        .ingest_ok(
            "/api/v1/spans",
            &archived_journey(base_ms * NANOS_PER_MILLI),
        )
        .await;
    let browser = browser::Browser::open(&server.base_url(), 1280, 800).await;
    browser
        .visit("/events/order-1?span=0000000000000002", "journey")
        .await;
    let details = browser.find("aside.details").await;
    let text = details.text().await.unwrap();
    assert!(
        text.contains("20.0 ms in the broker before the consume")
            && text.contains("4.0 ms after the publish ended")
            && text.contains("muninn replay --journey order-1"),
        "{text}"
    );
    browser.click("aside.details button.show-archived").await;
    let message = browser.find("aside.details .message").await;
    let shown = message.text().await.unwrap();
    for part in [
        "orders partition 0 offset 10",
        "muninn-event-id",
        "traceparent",
        TRACEPARENT,
        "base64 /wCA",
        "tombstone",
        "\"order\": 1",
        "download the exact bytes",
    ] {
        assert!(shown.contains(part), "{part:?} not in {shown}");
    }
    browser.screenshot("journey-archive").await;

    browser
        .visit("/events/order-1?span=0000000000000004", "journey")
        .await;
    browser.click("aside.details button.show-archived").await;
    browser.find("aside.details .message").await;
    assert_eq!(
        browser.find_all("aside.details .message").await.len(),
        2,
        "order-1 is archived in orders and shipments"
    );
    browser.close().await;
    server.stop().await;
}
