//! TLS end to end, with a self-signed certificate from rcgen: HTTPS through hyper on rustls,
//! OTLP/gRPC through tonic on rustls and through OpenTelemetry's Python SDK (trusting
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`); a client that does not trust the certificate, or speaks
//! plain HTTP, gets nothing; a renewed certificate is served without a restart; bad files stop
//! the start with an error that names them. What went in over TLS is read back after a
//! restart without it, through the plain client every other test uses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use muninn_server::TlsConfig;

use crate::otlp::{assert_the_shop_is_stored, shop};
use crate::otlp_clients::{assert_messaging_flow, run_python_client_with};
use crate::support::{TestServer, metric, tls_client_config};

/// A certificate for 127.0.0.1 and localhost, signed by a private CA of its own, written as
/// PEM files into `dir` (the key first: a watcher that sees the certificate change reads a
/// pair that matches); the CA's PEM, which clients trust.
fn write_certificate(dir: &Path) -> (TlsConfig, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // Names of their own: with rcgen's default name for both, OpenSSL takes the leaf for a
    // self-signed certificate.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "muninn test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let leaf = leaf_params.signed_by(&key, &issuer).unwrap();
    let config = TlsConfig {
        cert_path: dir.join("cert.pem"),
        key_path: dir.join("key.pem"),
    };
    std::fs::write(&config.key_path, key.serialize_pem()).unwrap();
    std::fs::write(&config.cert_path, leaf.pem()).unwrap();
    (config, ca.pem())
}

async fn tls_server(tls: TlsConfig) -> TestServer {
    crate::otlp::server_with_grpc(|config| config.tls = Some(tls)).await
}

/// One HTTPS request on a new connection to `address`, trusting only `ca_pem` for the name
/// `localhost`; the status and body, or why the connection or the handshake failed.
async fn https(
    address: SocketAddr,
    ca_pem: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, String), String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(ca_pem)));
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|error| error.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|error| error.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn http_address(server: &TestServer) -> SocketAddr {
    server
        .base_url()
        .trim_start_matches("https://")
        .parse()
        .expect("a socket address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_grpc_over_tls_take_and_answer_spans_and_refuse_untrusting_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, pem) = write_certificate(dir.path());
    let mut server = tls_server(tls).await;
    let address = http_address(&server);
    let plain = tokio::time::timeout(Duration::from_secs(20), async {
        reqwest::get(format!("http://{address}/healthz")).await
    })
    .await
    .expect("a plain HTTP request to the TLS port ends");
    assert!(plain.is_err(), "plain HTTP got an answer: {plain:?}");
    // A client that trusts another certificate does not get through the handshake.
    let other_dir = tempfile::tempdir().unwrap();
    let (_, other_pem) = write_certificate(other_dir.path());
    let refused = https(address, &other_pem, "GET", "/healthz", Vec::new()).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|error| error.starts_with("handshake")),
        "an untrusting client got {refused:?}"
    );

    // HTTPS: spans in, answers out.
    let start = muninn_model::now_unix_nanos() - 60_000_000_000;
    let span = crate::support::with(
        crate::support::span(
            "0000000000000000000000000000e1e1",
            "00000000000000a1",
            None,
            "tls-checkout",
            "send tls-orders",
            "producer",
            start,
        ),
        crate::support::event("evt-tls-1", "order.created", "", "tls-orders", "kafka"),
    );
    let body = serde_json::to_vec(&[span]).unwrap();
    let (status, text) = https(address, &pem, "POST", "/api/v1/spans", body)
        .await
        .expect("an HTTPS request");
    assert_eq!(status, 200, "{text}");
    let (status, text) = https(
        address,
        &pem,
        "GET",
        "/api/v1/traces/0000000000000000000000000000e1e1",
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{text}");
    let trace: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(trace["n_spans"], serde_json::json!(1), "{trace}");

    // OTLP/gRPC over TLS with tonic, trusting the certificate.
    let grpc = server.otlp_grpc_addr().expect("OTLP/gRPC listens");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{grpc}"))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("a TLS connection to OTLP/gRPC");
    let mut client =
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::new(channel);
    client.export(shop()).await.expect("the export over TLS");

    let (_, metrics) = https(address, &pem, "GET", "/metrics", Vec::new())
        .await
        .unwrap();
    assert!(
        metric(
            &metrics,
            "muninn_tls_handshake_failures_total{listener=\"http\"}"
        ) >= 2.0,
        "the plain and the untrusting client count as failed handshakes:\n{metrics}"
    );
    assert!(metric(&metrics, "muninn_connections_open{listener=\"otlp_grpc\"}") >= 1.0);
    drop(client);
    server.restart_with(|config| config.tls = None).await;
    assert_the_shop_is_stored(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_for_python_exports_over_tls_to_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca) = write_certificate(dir.path());
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca).unwrap();
    let ca_path = ca_path.to_str().unwrap().to_string();
    let mut server = tls_server(tls).await;
    let https = server.base_url();
    assert!(https.starts_with("https://"), "{https}");
    let grpc = format!("https://{}", server.otlp_grpc_addr().unwrap());
    let trust = [("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_path.as_str())];
    let over_http = run_python_client_with("http", &https, "orders-py-tls-http", &trust).await;
    let over_grpc = run_python_client_with("grpc", &grpc, "orders-py-tls-grpc", &trust).await;
    server.restart_with(|config| config.tls = None).await;
    assert_messaging_flow(&server, "py", "orders-py-tls-http", &over_http).await;
    assert_messaging_flow(&server, "py", "orders-py-tls-grpc", &over_grpc).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, first) = write_certificate(dir.path());
    let server = tls_server(tls).await;
    let address = http_address(&server);
    let healthz = async |pem: &str| https(address, pem, "GET", "/healthz", Vec::new()).await;
    assert_eq!(healthz(&first).await.map(|answer| answer.0), Ok(200));

    // The renewal: new files in place of the old ones, as certbot or cert-manager writes them.
    let renewal_dir = tempfile::tempdir().unwrap();
    let (renewed, second) = write_certificate(renewal_dir.path());
    replace(&renewed.key_path, &dir.path().join("key.pem"));
    replace(&renewed.cert_path, &dir.path().join("cert.pem"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while healthz(&second).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served 15 s after it was written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        healthz(&first).await.is_err(),
        "the old certificate is still served"
    );
    let (_, metrics) = https(address, &second, "GET", "/metrics", Vec::new())
        .await
        .unwrap();
    assert!(
        metric(
            &metrics,
            "muninn_tls_certificate_reloads_total{result=\"ok\"}"
        ) >= 1.0
    );
    server.stop().await;
}

/// Moves `from` over `to` in one rename, as renewal tools do.
fn replace(from: &Path, to: &Path) {
    let staged: PathBuf = to.with_extension("new");
    std::fs::copy(from, &staged).unwrap();
    std::fs::rename(&staged, to).unwrap();
}

#[tokio::test]
async fn files_that_are_not_a_certificate_and_its_key_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, _) = write_certificate(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let (other, _) = write_certificate(other_dir.path());
    let data = tempfile::tempdir().unwrap();
    let start = |tls: TlsConfig| {
        let mut config = muninn_server::ServerConfig::new(data.path(), 0);
        config.tls = Some(tls);
        muninn_server::start(config)
    };
    let mismatched = TlsConfig {
        key_path: other.key_path.clone(),
        ..tls.clone()
    };
    let missing = TlsConfig {
        cert_path: dir.path().join("missing.pem"),
        ..tls.clone()
    };
    for (tls, expected) in [
        (mismatched, "does not belong to the certificate"),
        (missing, "missing.pem"),
    ] {
        let error = match start(tls).await {
            Ok(_) => panic!("the server started with {expected:?}"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(expected), "{error}");
    }
}
