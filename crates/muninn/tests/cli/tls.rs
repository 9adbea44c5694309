//! Muninn's own clients over TLS: `muninn serve` with a certificate (self-signed, from rcgen)
//! takes spans from the SDK over `https://`, trusting that certificate
//! (`TracerBuilder::ca_certificate`), and answers `muninn query` with `--ca-cert`; without
//! the certificate trusted, the CLI says why it cannot connect.

use std::time::Duration;

use muninn_sdk::{Broker, Tracer};

use crate::process::{Server, muninn, run};

#[test]
fn the_sdk_and_the_cli_talk_to_a_tls_server_that_they_trust() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let url = server.base_url.clone();
    assert!(url.starts_with("https://"), "{url}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tracer = Tracer::builder("checkout")
            .collector(&url)
            .ca_certificate(certified.cert.pem())
            .configure(|options| options.batch_timeout = Duration::from_millis(50))
            .build()
            .expect("a tracer for an https:// collector");
        let route = tracer.route("order.placed", "orders", Broker::Kafka);
        route.produce("evt-over-tls").end();
        let tracer_for_shutdown = tracer.clone();
        tokio::task::spawn_blocking(move || tracer_for_shutdown.shutdown(Duration::from_secs(10)))
            .await
            .unwrap();
        let stats = tracer.stats();
        assert_eq!(stats.spans_exported, 1, "{stats:?}");
    });

    let untrusting = run(
        muninn(&["query", "--server", &url, "journey", "evt-over-tls"]),
        Duration::from_secs(60),
    );
    assert!(!untrusting.status.success(), "{untrusting:?}");
    assert!(
        untrusting.stderr.contains("certificate"),
        "the error says it is the certificate: {untrusting:?}"
    );
    let answered = run(
        muninn(&[
            "query",
            "--server",
            &url,
            "--ca-cert",
            cert.to_str().unwrap(),
            "journey",
            "evt-over-tls",
            "--json",
        ]),
        Duration::from_secs(60),
    );
    assert!(answered.status.success(), "{answered:?}");
    assert!(
        answered.stdout.contains("\"service\": \"checkout\"")
            || answered.stdout.contains("\"service\":\"checkout\""),
        "{answered:?}"
    );
    let missing = run(
        muninn(&[
            "query",
            "--server",
            &url,
            "--ca-cert",
            dir.path().join("nothing.pem").to_str().unwrap(),
            "services",
        ]),
        Duration::from_secs(60),
    );
    assert!(!missing.status.success());
    assert!(
        missing.stderr.contains("--ca-cert") && missing.stderr.contains("nothing.pem"),
        "{missing:?}"
    );
    server.stop();
}
