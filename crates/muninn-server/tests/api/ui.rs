//! The browser UI in a real headless chromium against a real server holding the deterministic
//! fleet of `support.rs`: the on-call path (lineage → search box → journey → linked span opened
//! in place → trace with the link followed backwards → stream → event type with its chart →
//! sampling rule created with a validation error, edited, deleted → trace search), then bad
//! input and an empty store. Screenshots at 1280×800 go to `docs/screenshots/`; each page's
//! time to interactive is printed.

use fantoccini::Locator;
use serde_json::Value;

use crate::browser::{Browser, sampling_rules};
use crate::support::{Fleet, RETRY_TRACE, TestServer, span_id, trace_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_on_call_path_runs_in_a_real_browser() {
    let server = TestServer::start().await;
    let fleet = Fleet::new();
    server.ingest_fleet(&fleet).await;
    let browser = Browser::open(&server.base_url(), 1280, 800).await;

    // The lineage: services as boxes, streams as cylinders, the modifying consumer dashed.
    browser.visit("/", "lineage").await;
    browser.find(r#"a[data-node="service:checkout"]"#).await;
    browser.find(r#"a[data-node="stream:kafka/orders"]"#).await;
    assert_eq!(
        browser.find_all("path.edge.modifies").await.len(),
        1,
        "enricher's edge is the one modifying consumer"
    );
    assert_eq!(
        browser.overlapping_nodes().await,
        (8, 0),
        "5 services and 3 streams, none overlapping"
    );
    browser.screenshot("lineage").await;

    // The search box takes an event id to its journey.
    let input = browser.find("#search-input").await;
    input.send_keys("order-1").await.unwrap();
    browser.click("#search-box button").await;
    browser.wait_ready("journey").await;
    assert_eq!(browser.path().await, "/events/order-1");
    let journey = server.api.get_json("/api/v1/events/order-1", &[]).await;
    let hops = journey["hops"].as_array().unwrap();
    assert_eq!(
        browser.find_all("ol.waterfall li").await.len(),
        hops.len(),
        "one row per hop"
    );
    for badge in [".badge.error", ".badge.retry", ".badge.modified"] {
        browser.find(badge).await;
    }

    // The retry (in its own trace, linked to the publish): its link opens the publish in place,
    // and the retry's own details stay.
    let retry_row = format!("#span-{}", span_id(1, 7));
    browser.click(&retry_row).await;
    assert_eq!(
        browser.path().await,
        format!("/events/order-1?span={}", span_id(1, 7)),
        "a chosen hop has its own link"
    );
    let details = browser.find("aside.details").await;
    assert!(details.text().await.unwrap().contains("Links to"));
    browser
        .find("aside.details .linked-slot")
        .await
        .find(Locator::XPath("preceding-sibling::button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let linked = browser.find("aside.details .linked-span").await;
    let linked_text = linked.text().await.unwrap();
    assert!(
        linked_text.contains("enricher") && linked_text.contains("publish order.enriched"),
        "{linked_text}"
    );
    let details_text = browser.find("aside.details").await.text().await.unwrap();
    assert!(
        details_text.contains("shipping: consume order.enriched"),
        "the span we came from is still shown: {details_text}"
    );
    browser.screenshot("journey").await;

    // The publish's trace, opened at the publish: the link is followed backwards.
    let publish = format!("/traces/{}?span={}", trace_id(1), span_id(1, 5));
    browser.visit(&publish, "trace").await;
    let chosen = browser.find(r#"button.row[aria-pressed="true"]"#).await;
    assert_eq!(
        chosen.attr("data-span-id").await.unwrap().as_deref(),
        Some(span_id(1, 5).as_str())
    );
    let details_text = browser.find("aside.details").await.text().await.unwrap();
    assert!(
        details_text.contains("Linked from") && details_text.contains(&trace_id(RETRY_TRACE)[..12]),
        "the retry that links here is listed: {details_text}"
    );
    browser.screenshot("trace").await;

    // Lineage → a stream's page by clicking its cylinder → an event type's page.
    browser.click(r#"header nav a[href="/lineage"]"#).await;
    browser.wait_ready("lineage").await;
    browser.click(r#"a[data-node="stream:kafka/orders"]"#).await;
    browser.wait_ready("stream").await;
    assert_eq!(browser.path().await, "/streams/orders");
    browser
        .click(r#"main a[href="/event-types/order.created"]"#)
        .await;
    browser.wait_ready("event-type").await;
    browser.find(".chart-holder canvas").await;
    let text = browser.main_text().await;
    assert!(
        text.contains("order.v1") && text.contains("enricher"),
        "{text}"
    );
    browser.screenshot("event-type").await;

    // Sampling: a bad rate is shown next to its field; then create, edit, delete.
    browser
        .sampling_rule_round_trip("checkout", Some("sampling"), || rules(&server))
        .await;
    browser.wait_for_text("No rules").await;

    // Trace search, Jaeger's semantics: the five orders' traces from checkout.
    browser
        .visit("/search?service=checkout&lookback=1h&limit=20", "search")
        .await;
    assert_eq!(browser.find_all("ol.results li").await.len(), 5);
    browser.find("figure.scatter circle").await;
    browser.screenshot("search").await;
    browser.close().await;
}

/// The sampling rules as (id, rate).
async fn rules(server: &TestServer) -> Vec<(String, f64)> {
    sampling_rules(&server.api.get_json("/api/v1/sampling/rules", &[]).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_an_empty_store_never_break_a_page() {
    let empty = TestServer::start().await;
    let mut browser = Browser::open(&empty.base_url(), 1280, 800).await;
    browser.visit("/", "lineage").await;
    assert!(browser.main_text().await.contains("Nothing is stored yet"));

    let server = TestServer::start().await;
    server.ingest_fleet(&Fleet::new()).await;
    let base = server.base_url();
    browser.base_url = base.clone();
    let visit_error = |path: String, expected: &'static [&'static str]| {
        let browser = &browser;
        let base = base.clone();
        async move {
            browser.client.goto(&format!("{base}{path}")).await.unwrap();
            browser.wait_ready("error").await;
            let text = browser.main_text().await;
            for part in expected {
                assert!(text.contains(part), "{path}: {part:?} not in {text}");
            }
        }
    };
    visit_error(
        "/events/no-such-event".into(),
        &["Not found", "no-such-event"],
    )
    .await;
    visit_error("/traces/xyz".into(), &["trace_id"]).await;
    visit_error(format!("/events/{}", "x".repeat(600)), &["event_id"]).await;
    visit_error("/no/such/page".into(), &["no such page"]).await;
    for (path, page) in [
        ("/event-types/no.such.type", "event-type"),
        ("/services/nobody", "service"),
        ("/streams/nowhere", "stream"),
    ] {
        browser.client.goto(&format!("{base}{path}")).await.unwrap();
        browser.wait_ready(page).await;
        assert!(browser.main_text().await.contains("Not found"), "{path}");
    }
    // The search box says what it searched for when nothing matches.
    browser.client.goto(&base).await.unwrap();
    browser.wait_ready("lineage").await;
    browser
        .find("#search-input")
        .await
        .send_keys("nothing-here")
        .await
        .unwrap();
    browser.click("#search-box button").await;
    let not_found = browser.find(".not-found").await.text().await.unwrap();
    assert!(
        not_found.contains("nothing-here") && not_found.contains("trace id"),
        "{not_found}"
    );
    browser.close().await;

    // A phone: every page fits its width (wide tables and graphs scroll inside themselves).
    let phone = Browser::open(&base, 390, 844).await;
    let trace = format!("/traces/{}", crate::support::trace_id(1));
    for (path, page) in [
        ("/", "lineage"),
        ("/events/order-1", "journey"),
        (trace.as_str(), "trace"),
        ("/event-types/order.created", "event-type"),
        ("/services/enricher", "service"),
        ("/streams/orders", "stream"),
        ("/search?service=checkout", "search"),
        ("/sampling", "sampling"),
    ] {
        phone.visit(path, page).await;
        let overflow: Value = phone
            .client
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            overflow.as_f64().unwrap() <= 0.0,
            "{path}: no sideways scrolling at 390 px (the page is {overflow} px wider)"
        );
    }
    phone.close().await;
}

/// The keyboard alone: Tab reaches a journey's rows with a visible focus ring, Enter opens a
/// hop's details, and `/` jumps to the search box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_can_be_read_with_the_keyboard_alone() {
    let server = TestServer::start().await;
    server.ingest_fleet(&Fleet::new()).await;
    let browser = Browser::open(&server.base_url(), 1280, 800).await;
    browser.visit("/events/order-1", "journey").await;
    let first_row = format!("span-{}", span_id(1, 2));
    let mut focused = String::new();
    for _ in 0..40 {
        let active = browser.client.active_element().await.unwrap();
        active.send_keys("\u{E004}").await.unwrap(); // Tab
        let active = browser.client.active_element().await.unwrap();
        focused = active.attr("id").await.unwrap().unwrap_or_default();
        if focused == first_row {
            break;
        }
    }
    assert_eq!(focused, first_row, "Tab reaches the first hop");
    let ring: Value = browser
        .client
        .execute(
            "const style = getComputedStyle(document.activeElement); return [style.outlineStyle, parseFloat(style.outlineWidth)];",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        ring[0] != "none" && ring[1].as_f64().unwrap_or(0.0) >= 2.0,
        "a visible focus ring: {ring}"
    );
    let active = browser.client.active_element().await.unwrap();
    active.send_keys("\u{E007}").await.unwrap(); // Enter
    let details = browser.find("aside.details h3").await.text().await.unwrap();
    assert!(details.starts_with("checkout:"), "{details}");
    // `/` from the page (not from a text field) focuses the search box.
    browser
        .client
        .execute("document.activeElement.blur();", vec![])
        .await
        .unwrap();
    let body = browser.find("body").await;
    body.send_keys("/").await.unwrap();
    let active = browser.client.active_element().await.unwrap();
    assert_eq!(
        active.attr("id").await.unwrap().as_deref(),
        Some("search-input")
    );
    browser.close().await;
}

/// A fleet of 50 services and 25 event types on 8 streams (each type produced by 2 services and
/// consumed by 4): every node is drawn, none overlaps another, and with more than 80 arrows
/// the event types move into the arrows' tooltips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_services_lay_out_without_overlaps() {
    let server = TestServer::start().await;
    let minute = muninn_model::now_unix_nanos() / 1_000_000_000 / 60 * 60 - 600;
    let mut counts = Vec::new();
    for type_idx in 0..25usize {
        let stream = format!("stream-{}", type_idx * 8 / 25);
        let event_type = format!("type-{type_idx:02}.happened");
        let edges = [
            (0, "produced"),
            (1, "produced"),
            (2, "consumed"),
            (13, "consumed"),
            (26, "consumed"),
            (39, "consumed"),
        ];
        for (offset, action) in edges {
            counts.push(serde_json::json!({
                "service": format!("service-{:02}", (2 * type_idx + offset) % 50),
                "event_type": event_type, "stream": stream, "broker": "kafka",
                "action": action, "minute": minute, "count": 10,
            }));
        }
    }
    server.api.ingest_ok("/api/v1/counts", &counts).await;
    let browser = Browser::open(&server.base_url(), 1280, 800).await;
    browser.visit("/", "lineage").await;
    assert_eq!(
        browser.overlapping_nodes().await,
        (58, 0),
        "50 services and 8 streams, none overlapping"
    );
    assert_eq!(
        browser.find_all(r#"a[data-node^="service:"]"#).await.len(),
        50
    );
    assert_eq!(
        browser.find_all(r#"a[data-node^="stream:"]"#).await.len(),
        8
    );
    assert!(
        browser.find_all("text.edge-label").await.is_empty(),
        "labels go to tooltips at this size"
    );
    browser.screenshot("lineage-50-services").await;
    browser.close().await;
}

/// Every page's text is readable: a contrast of at least 4.5:1 (WCAG AA) against its
/// background, checked on each page of the fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pages_text_has_readable_contrast() {
    let server = TestServer::start().await;
    server.ingest_fleet(&Fleet::new()).await;
    let browser = Browser::open(&server.base_url(), 1280, 800).await;
    let trace = format!("/traces/{}?span={}", trace_id(1), span_id(1, 4));
    for (path, page) in [
        ("/", "lineage"),
        ("/events/order-1?span=0100000000000003", "journey"),
        (trace.as_str(), "trace"),
        ("/event-types/order.created", "event-type"),
        ("/services/enricher", "service"),
        ("/streams/orders", "stream"),
        ("/search?service=checkout", "search"),
        ("/sampling", "sampling"),
        ("/events/no-such-event", "error"),
    ] {
        browser.visit(path, page).await;
        let (ratio, text) = browser.lowest_text_contrast().await;
        assert!(ratio < 21.0, "{path}: no text was examined");
        assert!(ratio >= 4.5, "{path}: contrast {ratio:.2} for {text}");
    }
    browser.close().await;
}

/// A server with `[auth]` tokens: the UI's calls get 401, and the page asks for a token; a
/// token without the read scope gets 403 and the form again; a read token, kept in the browser,
/// shows the lineage, and is sent on every page after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_tokens_asks_the_ui_for_one() {
    use muninn_server::auth::{ApiToken, AuthConfig, Scope, new_token};

    let (ingest, read) = (new_token(), new_token());
    let auth = AuthConfig::new(vec![
        ApiToken::for_token("fleet", &ingest, &[Scope::Ingest]),
        ApiToken::for_token("on-call", &read, &[Scope::Read]),
    ]);
    let mut server = TestServer::start_with(|config| config.auth = Some(auth)).await;
    server.api = server.api.with_token(&ingest);
    server.ingest_fleet(&Fleet::new()).await;
    let browser = Browser::open(&server.base_url(), 1280, 800).await;

    browser.visit("/", "error").await;
    let text = browser.main_text().await;
    assert!(
        text.contains("This server asks for a token") && text.contains("muninn token new"),
        "{text}"
    );
    browser
        .find("#api-token")
        .await
        .send_keys(&ingest)
        .await
        .unwrap();
    browser.click("form.token-form button[type=submit]").await;
    browser.wait_for_text("This token may not see this").await;
    assert!(
        browser.main_text().await.contains("the read scope"),
        "the 403 names the scope"
    );
    browser
        .find("#api-token")
        .await
        .send_keys(&read)
        .await
        .unwrap();
    browser.click("form.token-form button[type=submit]").await;
    browser.wait_ready("lineage").await;
    browser.find(r#"a[data-node="service:checkout"]"#).await;
    // The token stays: another page loads with it.
    browser.visit("/services/checkout", "service").await;
    assert!(!browser.main_text().await.contains("token"));
    browser.close().await;
    server.stop().await;
}
