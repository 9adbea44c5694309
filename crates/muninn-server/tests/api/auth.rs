//! Authentication end to end: a server with `[auth]` tokens answers 401 (with
//! `WWW-Authenticate`) without a token or with an unknown one, 403 naming the scope a token
//! lacks, and serves a token with the right scope; the same over OTLP/gRPC (tonic's client),
//! for OpenTelemetry's Python SDK given `OTEL_EXPORTER_OTLP_HEADERS`, and for the query node's
//! peer token. Without tokens, a non-loopback address is refused unless `insecure`.

use std::net::SocketAddr;

use muninn_server::auth::{ApiToken, AuthConfig, Scope, new_token};
use serde_json::{Value, json};

use crate::otlp::{assert_the_shop_is_stored, grpc_client, server_with_grpc, shop};
use crate::otlp_clients::{assert_messaging_flow, run_python_client_with};
use crate::support::TestServer;

/// Three tokens: one per scope.
struct Tokens {
    ingest: String,
    read: String,
    admin: String,
}

impl Tokens {
    fn new() -> Tokens {
        Tokens {
            ingest: new_token(),
            read: new_token(),
            admin: new_token(),
        }
    }

    fn config(&self) -> AuthConfig {
        AuthConfig::new(vec![
            ApiToken::for_token("checkout", &self.ingest, &[Scope::Ingest]),
            ApiToken::for_token("dashboards", &self.read, &[Scope::Read]),
            ApiToken::for_token("ops", &self.admin, &[Scope::Admin]),
        ])
    }
}

fn span(trace: &str) -> Value {
    let start = muninn_model::now_unix_nanos() - 60_000_000_000;
    crate::support::with(
        crate::support::span(
            trace,
            "00000000000000a1",
            None,
            "checkout",
            "send orders",
            "producer",
            start,
        ),
        crate::support::event("evt-auth-1", "order.created", "", "orders", "kafka"),
    )
}

fn challenge(answer: &crate::support::Answer) -> String {
    answer
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate on {}: {}", answer.status, answer.text))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_needs_a_token_with_its_scope() {
    let tokens = Tokens::new();
    let server = TestServer::start_with(|config| config.auth = Some(tokens.config())).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let body = serde_json::to_vec(&[span(trace)]).unwrap();
    let json = ("content-type", "application/json");
    let bearer = |token: &str| format!("Bearer {token}");

    // No token: 401 with the Bearer challenge, nothing stored.
    let answer = server
        .api
        .post("/api/v1/spans", body.clone(), &[json])
        .await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert_eq!(challenge(&answer), "Bearer realm=\"muninn\"");
    assert!(
        answer.error()["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{}",
        answer.text
    );
    // A token the server does not know, and a header that is not Bearer.
    let unknown = bearer(&new_token());
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            body.clone(),
            &[json, ("authorization", &unknown)],
        )
        .await;
    assert_eq!(answer.status, 401);
    assert!(challenge(&answer).contains("error=\"invalid_token\""));
    let basic = format!("Basic {}", tokens.ingest);
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            body.clone(),
            &[json, ("authorization", &basic)],
        )
        .await;
    assert_eq!(answer.status, 401);
    // A read token cannot write: 403 naming the scope.
    let read = bearer(&tokens.read);
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            body.clone(),
            &[json, ("authorization", &read)],
        )
        .await;
    assert_eq!(answer.status, 403, "{}", answer.text);
    let message = answer.error()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("the ingest scope") && message.contains("`dashboards`"),
        "{message}"
    );
    assert!(challenge(&answer).contains("scope=\"ingest\""));
    // Nothing of those was stored: the read token finds no trace.
    let reader = server.api.with_token(&tokens.read);
    let answer = reader.get(&format!("/api/v1/traces/{trace}"), &[]).await;
    assert_eq!(answer.status, 404, "{}", answer.text);

    // The ingest token writes, but cannot read or flush.
    let ingest = bearer(&tokens.ingest);
    let answer = server
        .api
        .post(
            "/api/v1/spans",
            body.clone(),
            &[json, ("authorization", &ingest)],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let writer = server.api.with_token(&tokens.ingest);
    let answer = writer.get(&format!("/api/v1/traces/{trace}"), &[]).await;
    assert_eq!(answer.status, 403);
    assert!(answer.text.contains("the read scope"), "{}", answer.text);
    // The SDK's sampling config takes the ingest token.
    let answer = writer
        .get("/api/v1/sampling/config", &[("service", "checkout")])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let answer = writer.post("/api/v1/admin/flush", Vec::new(), &[]).await;
    assert_eq!(answer.status, 403);
    assert!(answer.text.contains("the admin scope"), "{}", answer.text);

    // The read token reads what was written, by every API; it cannot change rules.
    let trace_answer = reader
        .get_json(&format!("/api/v1/traces/{trace}"), &[])
        .await;
    assert_eq!(trace_answer["n_spans"], json!(1));
    let jaeger = reader.get_json(&format!("/api/traces/{trace}"), &[]).await;
    assert_eq!(jaeger["data"][0]["spans"].as_array().unwrap().len(), 1);
    let rule = json!({"service": "checkout", "event_type": "order.created", "rate": 0.5});
    let answer = reader
        .send_json("POST", "/api/v1/sampling/rules", &rule)
        .await;
    assert_eq!(answer.status, 403, "{}", answer.text);
    let answer = server
        .api
        .with_token(&tokens.admin)
        .send_json("POST", "/api/v1/sampling/rules", &rule)
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let answer = server
        .api
        .with_token(&tokens.admin)
        .post("/api/v1/admin/flush", Vec::new(), &[])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    // Probes and scrapes need no token, and the refusals are counted.
    assert_eq!(server.api.get("/healthz", &[]).await.status, 200);
    assert_eq!(
        server.api.get("/api/v1/openapi.yaml", &[]).await.status,
        200
    );
    let metrics = server.api.get("/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    for expected in [
        "muninn_auth_refusals_total{reason=\"missing\"} 1",
        "muninn_auth_refusals_total{reason=\"unknown\"} 1",
        "muninn_auth_refusals_total{reason=\"malformed\"} 1",
        "muninn_auth_refusals_total{reason=\"scope\"} 4",
    ] {
        assert!(metrics.text.contains(expected), "/metrics lacks {expected}");
    }
    // The UI's pages hold no data and stay open; its calls to the API carry the token.
    let page = reqwest::get(format!("{}/", server.base_url()))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_routes_can_be_closed() {
    let tokens = Tokens::new();
    let server = TestServer::start_with(|config| {
        config.auth = Some(AuthConfig {
            open_healthz: false,
            open_metrics: false,
            ..tokens.config()
        })
    })
    .await;
    for path in ["/healthz", "/metrics"] {
        assert_eq!(server.api.get(path, &[]).await.status, 401, "{path}");
        let answer = server.api.with_token(&tokens.read).get(path, &[]).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_needs_an_ingest_token() {
    let tokens = Tokens::new();
    let mut server = server_with_grpc(|config| config.auth = Some(tokens.config())).await;
    let mut client = grpc_client(&server).await;
    let status = client.export(shop()).await.expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let with = |token: &str| {
        let mut request = tonic::Request::new(shop());
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    let status = client
        .export(with(&new_token()))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = client.export(with(&tokens.read)).await.expect_err("read");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(status.message().contains("the ingest scope"), "{status:?}");
    client
        .export(with(&tokens.ingest))
        .await
        .expect("the ingest token exports");
    server.api = server.api.with_token(&tokens.read);
    assert_the_shop_is_stored(&server).await;
    server.stop().await;
}

/// OpenTelemetry's SDKs send the standard `OTEL_EXPORTER_OTLP_HEADERS`: with it, the Python
/// SDK's OTLP/HTTP exporter stores everything on a server that refuses requests without a
/// token; nothing was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_sdk_sends_its_token_from_the_standard_variable() {
    let tokens = Tokens::new();
    let mut server = TestServer::start_with(|config| config.auth = Some(tokens.config())).await;
    let header = format!("authorization=Bearer%20{}", tokens.ingest);
    let ids = run_python_client_with(
        "http",
        &server.base_url(),
        "orders-py-auth",
        &[("OTEL_EXPORTER_OTLP_HEADERS", &header)],
    )
    .await;
    assert_eq!(ids.len(), 3);
    server.api = server.api.with_token(&tokens.read);
    assert_messaging_flow(&server, "py", "orders-py-auth", &ids).await;
    let metrics = server.api.get("/metrics", &[]).await.text;
    for reason in ["missing", "malformed", "unknown", "scope"] {
        let line = format!("muninn_auth_refusals_total{{reason=\"{reason}\"}} 0");
        assert!(metrics.contains(&line), "{line} not in {metrics}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_only_loopback_is_served_unless_insecure() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = muninn_server::ServerConfig::new(data_dir.path(), 0);
    config.listen = SocketAddr::from(([0, 0, 0, 0], 0));
    let error = muninn_server::start(config.clone())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("0.0.0.0:0") && error.contains("--insecure") && error.contains("[auth]"),
        "{error}"
    );
    // OTLP/gRPC beyond loopback is refused the same way.
    let mut grpc = muninn_server::ServerConfig::new(data_dir.path(), 0);
    grpc.otlp_grpc_listen = Some(SocketAddr::from(([0, 0, 0, 0], 0)));
    assert!(muninn_server::start(grpc).await.is_err());
    // Tokens, or an explicit --insecure, let it start.
    let tokens = Tokens::new();
    let with_tokens = muninn_server::start(muninn_server::ServerConfig {
        auth: Some(tokens.config()),
        ..config.clone()
    })
    .await
    .expect("starts with tokens");
    with_tokens.stop().await;
    let insecure = muninn_server::start(muninn_server::ServerConfig {
        insecure: true,
        ..config.clone()
    })
    .await
    .expect("starts when told --insecure");
    insecure.stop().await;
    // [auth] without tokens would refuse everything: refused at start, with what to do.
    let error = muninn_server::start(muninn_server::ServerConfig {
        auth: Some(AuthConfig::new(Vec::new())),
        ..config
    })
    .await
    .err()
    .expect("refused")
    .to_string();
    assert!(error.contains("[[auth.tokens]]"), "{error}");
}
