//! OTLP from clients nobody here wrote — OpenTelemetry's Rust exporter over HTTP and gRPC, and
//! the OpenTelemetry SDK for Python — exporting messaging spans that come out as lineage edges
//! and journeys.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::otlp::{edges_on, journey_of, server_with_grpc};
use crate::support::TestServer;

/// Messaging spans from OpenTelemetry's Rust SDK: `rs-checkout` sends `n_messages` to kafka
/// `destination`, `rs-billing` processes each (a child of its send), `rs-audit` receives them
/// all in one batch span linked to each send. Returns the message ids.
fn trace_with_the_rust_sdk(
    exporter: impl Fn() -> opentelemetry_otlp::SpanExporter,
    destination: &str,
    n_messages: usize,
) -> Vec<String> {
    use opentelemetry::trace::{
        Link as OtelLink, SpanKind as OtelKind, TraceContextExt, Tracer, TracerProvider,
    };
    use opentelemetry::{Context, KeyValue as OtelKeyValue};
    use opentelemetry_sdk::Resource as OtelResource;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    let provider = |service: &'static str| {
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter())
            .with_resource(OtelResource::builder().with_service_name(service).build())
            .build()
    };
    let providers = [
        provider("rs-checkout"),
        provider("rs-billing"),
        provider("rs-audit"),
    ];
    let [checkout, billing, audit] = [0, 1, 2].map(|index| providers[index].tracer("shop"));
    let messaging = |operation: &'static str, message_id: &str| {
        vec![
            OtelKeyValue::new("messaging.system", "kafka"),
            OtelKeyValue::new("messaging.destination.name", destination.to_string()),
            OtelKeyValue::new("messaging.operation.type", operation),
            OtelKeyValue::new("messaging.message.id", message_id.to_string()),
        ]
    };
    let mut message_ids = Vec::new();
    let mut links = Vec::new();
    for _ in 0..n_messages {
        let message_id = uuid::Uuid::new_v4().to_string();
        let send = checkout
            .span_builder(format!("send {destination}"))
            .with_kind(OtelKind::Producer)
            .with_attributes(messaging("send", &message_id))
            .start(&checkout);
        let send_context = opentelemetry::trace::Span::span_context(&send).clone();
        drop(send);
        // The consumer continues the trace from the message's headers.
        let parent = Context::new().with_remote_span_context(send_context.clone());
        let process = billing
            .span_builder(format!("process {destination}"))
            .with_kind(OtelKind::Consumer)
            .with_attributes(messaging("process", &message_id))
            .start_with_context(&billing, &parent);
        drop(process);
        links.push(OtelLink::new(
            send_context,
            vec![OtelKeyValue::new(
                "messaging.message.id",
                message_id.clone(),
            )],
            0,
        ));
        message_ids.push(message_id);
    }
    let receive = audit
        .span_builder(format!("receive {destination}"))
        .with_kind(OtelKind::Consumer)
        .with_attributes(vec![
            OtelKeyValue::new("messaging.system", "kafka"),
            OtelKeyValue::new("messaging.destination.name", destination.to_string()),
            OtelKeyValue::new("messaging.operation.type", "receive"),
        ])
        .with_links(links)
        .start(&audit);
    drop(receive);
    for provider in providers {
        provider
            .shutdown()
            .expect("the exporter shuts down cleanly");
    }
    message_ids
}

/// What a producer, a consumer and a batch consumer of `destination` leave in Muninn.
pub(crate) async fn assert_messaging_flow(
    server: &TestServer,
    prefix: &str,
    destination: &str,
    message_ids: &[String],
) {
    let n = message_ids.len() as u64;
    let service = |role: &str| format!("{prefix}-{role}");
    assert_eq!(
        edges_on(server, destination).await,
        vec![
            json!([service("audit"), "consumed", destination, "kafka", "", n]),
            json!([service("billing"), "consumed", destination, "kafka", "", n]),
            json!([service("checkout"), "produced", destination, "kafka", "", n]),
        ],
        "lineage of {destination}"
    );
    for message_id in message_ids {
        assert_eq!(
            journey_of(server, message_id).await,
            vec![
                json!([service("checkout"), "produced", message_id]),
                json!([service("billing"), "consumed", message_id]),
                json!([service("audit"), "consumed", message_id]),
            ],
            "journey of {message_id}"
        );
        let journey = server
            .api
            .get_json(&format!("/api/v1/events/{message_id}"), &[])
            .await;
        let hops = journey["hops"].as_array().unwrap();
        assert_eq!(
            hops[0]["trace_id"], hops[1]["trace_id"],
            "the consumer continued the producer's trace"
        );
        assert_eq!(hops[1]["parent_span_id"], hops[0]["span_id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_rust_exporters_over_http_and_grpc_are_understood() {
    let server = server_with_grpc(|_| {}).await;
    // OTLP/HTTP with the exporter's blocking reqwest client, on a thread of its own as the
    // exporter's documentation asks (outside any async runtime).
    let endpoint = format!("{}/v1/traces", server.base_url());
    let http_ids = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || {
            use opentelemetry_otlp::{Protocol, WithExportConfig};
            trace_with_the_rust_sdk(
                || {
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_http()
                        .with_protocol(Protocol::HttpBinary)
                        .with_endpoint(endpoint.clone())
                        .build()
                        .expect("building the OTLP/HTTP exporter")
                },
                "orders-http",
                4,
            )
        })
        .join()
        .expect("the OTLP/HTTP client thread")
    })
    .await
    .unwrap();
    assert_messaging_flow(&server, "rs", "orders-http", &http_ids).await;

    // OTLP/gRPC with tonic: the channel is made in the runtime, the batch processor's thread
    // exports through it.
    let grpc_endpoint = format!("http://{}", server.otlp_grpc_addr().unwrap());
    let handle = tokio::runtime::Handle::current();
    let grpc_ids = tokio::task::spawn_blocking(move || {
        let _runtime = handle.enter();
        use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
        trace_with_the_rust_sdk(
            || {
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(grpc_endpoint.clone())
                    .with_compression(opentelemetry_otlp::Compression::Gzip)
                    .build()
                    .expect("building the OTLP/gRPC exporter")
            },
            "orders-grpc",
            4,
        )
    })
    .await
    .unwrap();
    assert_messaging_flow(&server, "rs", "orders-grpc", &grpc_ids).await;
    server.stop().await;
}

/// The interpreter of the venv that `scripts/python.sh` makes, with OpenTelemetry's SDK.
fn python() -> PathBuf {
    let Some(python) = std::env::var_os("MUNINN_PYTHON") else {
        panic!(
            "MUNINN_PYTHON is not set: run the tests with `bash scripts/test.sh`, which installs \
             the OpenTelemetry SDK for Python in a venv (scripts/python.sh) and sets it"
        );
    };
    PathBuf::from(python)
}

/// Runs `tests/python/otel_messaging.py` against `endpoint`; returns the message ids it sent.
async fn run_python_client(protocol: &str, endpoint: &str, destination: &str) -> Vec<String> {
    run_python_client_with(protocol, endpoint, destination, &[]).await
}

/// As `run_python_client`, with more environment variables for the Python process (the SDK
/// reads `OTEL_EXPORTER_OTLP_HEADERS` there).
pub(crate) async fn run_python_client_with(
    protocol: &str,
    endpoint: &str,
    destination: &str,
    environment: &[(&str, &str)],
) -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/otel_messaging.py");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(python())
            .arg(&script)
            .args(["--protocol", protocol, "--endpoint", endpoint])
            .args(["--destination", destination, "--messages", "3"])
            .envs(environment.iter().copied())
            // requests lets these override the CA an exporter was given
            // (OTEL_EXPORTER_OTLP_CERTIFICATE); this machine's environment sets them.
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client finished within 120 s")
    .expect("the Python client starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let printed: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("{error}: {stdout}\n{stderr}"));
    printed["message_ids"]
        .as_array()
        .expect("message_ids")
        .iter()
        .map(|id| id.as_str().expect("an id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_sdk_for_python_over_http_is_understood() {
    let server = TestServer::start().await;
    let ids = run_python_client("http", &server.base_url(), "orders-py-http").await;
    assert_eq!(ids.len(), 3);
    assert_messaging_flow(&server, "py", "orders-py-http", &ids).await;
    // The consumer's attributes are kept, and the ones read into columns are not repeated.
    let journey = server
        .api
        .get_json(&format!("/api/v1/events/{}", ids[0]), &[])
        .await;
    let process = &journey["hops"][1];
    assert_eq!(process["name"], json!("process orders-py-http"));
    assert_eq!(process["offset"], json!(0));
    assert_eq!(
        process["attributes"]["messaging.consumer.group.name"],
        json!("billing")
    );
    assert_eq!(process["attributes"].get("messaging.message.id"), None);
    assert_eq!(process["resource"]["service.version"], json!("1.0.0"));
    assert_eq!(
        process["resource"]["telemetry.sdk.language"],
        json!("python")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_sdk_for_python_over_grpc_is_understood() {
    let server = server_with_grpc(|_| {}).await;
    let endpoint = format!("http://{}", server.otlp_grpc_addr().unwrap());
    let ids = run_python_client("grpc", &endpoint, "orders-py-grpc").await;
    assert_eq!(ids.len(), 3);
    assert_messaging_flow(&server, "py", "orders-py-grpc", &ids).await;
    server.stop().await;
}
