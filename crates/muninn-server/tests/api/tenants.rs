//! Tenants end to end: two tenants' tokens write to one server; each reads back only its own
//! spans, services, lineage, sampling rules and idempotency answers, a guessed trace or event id
//! of the other answers as if it did not exist, and a token cannot act for another tenant; the
//! same after a restart. Behind a trusted proxy, `X-Scope-OrgID` names the tenant over HTTP and
//! OTLP/gRPC; without it, or with a bad one, the request is refused naming the header.

use muninn_server::TenantId;
use muninn_server::auth::{ApiToken, AuthConfig, Scope, new_token};
use serde_json::{Value, json};

use crate::otlp::{grpc_client, server_with_grpc, shop};
use crate::support::{Api, TestServer, event, span, with};

const TRACE_A: &str = "aaaa0000000000000000000000000001";
const TRACE_B: &str = "bbbb0000000000000000000000000001";

/// A producer span of `service` sending event `event_id` on `orders`.
fn produced(trace: &str, service: &str, event_id: &str) -> Value {
    let start = muninn_model::now_unix_nanos() - 60_000_000_000;
    with(
        span(
            trace,
            "00000000000000a1",
            None,
            service,
            "send orders",
            "producer",
            start,
        ),
        event(event_id, "order.created", "", "orders", "kafka"),
    )
}

fn token_of(name: &str, token: &str, scopes: &[Scope], tenant: Option<&str>) -> ApiToken {
    ApiToken {
        tenant: tenant.map(|tenant| TenantId::parse(tenant).unwrap()),
        ..ApiToken::for_token(name, token, scopes)
    }
}

/// The services of `/api/services` (Jaeger's list) as `api` sees them.
async fn services(api: &Api) -> Value {
    let answer = api.get("/api/services", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()["data"].clone()
}

async fn post_spans(
    api: &Api,
    spans: &[Value],
    headers: &[(&str, &str)],
) -> crate::support::Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    api.post("/api/v1/spans", serde_json::to_vec(spans).unwrap(), &all)
        .await
}

/// What each tenant sees: its own services, traces, events, lineage and rules, nothing of the
/// other's; and no way to act for the other.
async fn check(server_api: &Api, a: &str, b: &str, operator: &str) {
    let (api_a, api_b) = (server_api.with_token(a), server_api.with_token(b));
    assert_eq!(services(&api_a).await, json!(["checkout-a"]));
    assert_eq!(services(&api_b).await, json!(["checkout-b"]));
    // The default tenant holds neither.
    assert_eq!(services(&server_api.with_token(operator)).await, json!([]));
    for (api, own, other, other_event) in [
        (&api_a, TRACE_A, TRACE_B, "evt-b"),
        (&api_b, TRACE_B, TRACE_A, "evt-a"),
    ] {
        let path = |trace: &str| format!("/api/v1/traces/{trace}");
        assert_eq!(api.get(&path(own), &[]).await.status, 200);
        // Another tenant's ids answer exactly as ids that were never sent.
        let guessed = api.get(&path(other), &[]).await;
        let never = api
            .get(&path("cccc0000000000000000000000000001"), &[])
            .await;
        assert_eq!(guessed.status, 404, "{}", guessed.text);
        assert_eq!(
            guessed.text.replace(other, "ID"),
            never.text.replace("cccc0000000000000000000000000001", "ID")
        );
        let guessed = api.get(&format!("/api/v1/events/{other_event}"), &[]).await;
        assert_eq!(guessed.status, 404, "{}", guessed.text);
        let jaeger = api.get(&format!("/api/traces/{other}"), &[]).await;
        assert_eq!(jaeger.status, 404, "{}", jaeger.text);
        let lineage = api.get_json("/api/v1/lineage", &[]).await.to_string();
        assert!(
            !lineage.contains(if own == TRACE_A {
                "checkout-b"
            } else {
                "checkout-a"
            }),
            "{lineage}"
        );
    }
    let rules = |api: Api| async move {
        api.get_json("/api/v1/sampling/rules", &[]).await["rules"].clone()
    };
    assert_eq!(rules(api_a.clone()).await, json!([]));
    assert_eq!(rules(api_b.clone()).await.as_array().unwrap().len(), 1);
    // A token cannot act for another tenant.
    let answer = api_a
        .send("GET", "/api/services", &[], None, &[("x-scope-orgid", "b")])
        .await;
    assert_eq!(answer.status, 403, "{}", answer.text);
    assert!(
        answer.text.contains("belongs to tenant `a`"),
        "{}",
        answer.text
    );
    // The archive is the default tenant's.
    let archive = api_a.get("/api/v1/archive/streams", &[]).await;
    assert_eq!(archive.status, 404, "{}", archive.text);
    assert!(
        archive.text.contains("tenant `a` has no event archive"),
        "{}",
        archive.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_reads_only_its_own_data_and_cannot_guess_the_others() {
    let (a, b, operator) = (new_token(), new_token(), new_token());
    let all = [Scope::Ingest, Scope::Read, Scope::Admin];
    let auth = AuthConfig::new(vec![
        token_of("team-a", &a, &all, Some("a")),
        token_of("team-b", &b, &all, Some("b")),
        token_of("operator", &operator, &all, None),
    ]);
    let mut server = TestServer::start_with(|config| config.auth = Some(auth)).await;
    let (api_a, api_b) = (server.api.with_token(&a), server.api.with_token(&b));

    // The same idempotency key from both: B's request is stored as B's, not answered with A's.
    let key = ("idempotency-key", "batch-1");
    let answer = post_spans(&api_a, &[produced(TRACE_A, "checkout-a", "evt-a")], &[key]).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let answer = post_spans(&api_b, &[produced(TRACE_B, "checkout-b", "evt-b")], &[key]).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["accepted"], 1, "{}", answer.text);

    // Rules are the tenant's own.
    let rule = json!({"service": "checkout-b", "rate": 0.5});
    let created = api_b
        .send_json("POST", "/api/v1/sampling/rules", &rule)
        .await;
    assert_eq!(created.status, 201, "{}", created.text);

    check(&server.api, &a, &b, &operator).await;

    // Each tenant's flush writes its own blocks, under its own directory; a restart reopens them.
    for api in [&api_a, &api_b] {
        let flushed = api.post("/api/v1/admin/flush", Vec::new(), &[]).await;
        assert_eq!(flushed.status, 200, "{}", flushed.text);
    }
    for tenant in ["a", "b"] {
        let blocks = server
            .data_dir()
            .join("tenants")
            .join(tenant)
            .join("blocks");
        assert!(blocks.is_dir(), "{} is missing", blocks.display());
    }
    post_spans(
        &api_a,
        &[produced(
            "aaaa0000000000000000000000000002",
            "checkout-a",
            "evt-a2",
        )],
        &[],
    )
    .await;
    server.restart().await;
    check(&server.api, &a, &b, &operator).await;
    let second = server
        .api
        .with_token(&a)
        .get("/api/v1/traces/aaaa0000000000000000000000000002", &[])
        .await;
    assert_eq!(
        second.status, 200,
        "the WAL of tenant a was replayed: {}",
        second.text
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_header_names_the_tenant_over_http_and_grpc() {
    let server = server_with_grpc(|config| {
        config.tenancy.header = true;
        config.tenancy.max_tenants = 2;
    })
    .await;
    let api = &server.api;
    let tenant = |name: &'static str| ("x-scope-orgid", name);

    let answer = post_spans(
        api,
        &[produced(TRACE_A, "checkout-a", "evt-a")],
        &[tenant("a")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let get = |name: &'static str| async move {
        let answer = api
            .send("GET", "/api/services", &[], None, &[tenant(name)])
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json()["data"].clone()
    };
    assert_eq!(get("a").await, json!(["checkout-a"]));

    // OTLP/gRPC names the tenant in its metadata.
    let mut client = grpc_client(&server).await;
    let mut request = tonic::Request::new(shop());
    request
        .metadata_mut()
        .insert("x-scope-orgid", "b".parse().unwrap());
    client.export(request).await.expect("an export of tenant b");
    let of_b = get("b").await;
    assert!(
        of_b.as_array().unwrap().contains(&json!("checkout")),
        "{of_b}"
    );
    assert!(
        !of_b.as_array().unwrap().contains(&json!("checkout-a")),
        "{of_b}"
    );
    assert!(
        !get("a")
            .await
            .as_array()
            .unwrap()
            .contains(&json!("checkout"))
    );

    // No tenant, a bad one, one past max_tenants: refused, naming the header or the setting.
    let answer = api.get("/api/v1/services", &[]).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.error()["field"], "X-Scope-OrgID", "{}", answer.text);
    let status = client.export(shop()).await.expect_err("no tenant");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let answer = api
        .send("GET", "/api/v1/services", &[], None, &[tenant("../a")])
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(answer.text.contains("not a tenant name"), "{}", answer.text);
    let answer = post_spans(api, &[produced(TRACE_A, "c", "evt-c")], &[tenant("c")]).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.text.contains("max_tenants"), "{}", answer.text);
    // The monitoring routes are the server's, not a tenant's; /healthz names each tenant's store.
    let health = api.get_json("/healthz", &[]).await;
    assert_eq!(health["status"], "ok", "{health}");
    for tenant in ["a", "b"] {
        assert_eq!(health["tenants"][tenant]["wal"], "ok", "{health}");
    }
    let metrics = api.get("/metrics", &[]).await.text;
    assert_eq!(crate::support::metric(&metrics, "muninn_tenants_open"), 2.0);
    assert_eq!(
        crate::support::metric(&metrics, "muninn_tenant_head_spans{tenant=\"a\"}"),
        1.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_trusted_proxy_the_header_is_refused() {
    let server = TestServer::start().await;
    let answer = server
        .api
        .send(
            "GET",
            "/api/v1/services",
            &[],
            None,
            &[("x-scope-orgid", "a")],
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(answer.text.contains("tenant_header"), "{}", answer.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_refuses_tenants_at_start() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = muninn_server::ServerConfig::new(data_dir.path(), 0);
    config.tenancy.header = true;
    config.store.role = muninn_store::StoreRole::ReadOnly {
        refresh_every: std::time::Duration::from_secs(1),
    };
    let error = muninn_server::start(config).await.err().expect("refused");
    assert!(error.to_string().contains("a cluster's roles"), "{error}");
}
