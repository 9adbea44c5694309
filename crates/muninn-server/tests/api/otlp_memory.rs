//! OTLP/gRPC exports hold memory within `max_body_memory` as HTTP bodies do: tonic holds a
//! message as received and as decompressed, so each export reserves twice the body limit first,
//! waits while other bodies hold the budget, and is answered `UNAVAILABLE` with a `RetryInfo`
//! (nothing stored) when no room is made in time.

use std::time::Duration;

use tonic_types::StatusExt;

use crate::otlp::{assert_the_shop_is_stored, grpc_client, server_with_grpc, shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_export_waits_for_room_in_the_request_bodies_budget() {
    let server = server_with_grpc(|config| {
        config.max_body_bytes = 512 << 10;
        config.max_body_memory_bytes = 1 << 20;
        config.store.max_append_wait = Duration::from_millis(300);
    })
    .await;
    // A slow HTTP sender announces 300,000 bytes and sends one: its body holds them meanwhile.
    let slow = server.hold_body_memory(300_000).await;

    // An export reserves 2 × 512 KiB, the whole 1 MiB: it waits, then is told to retry.
    let status = grpc_client(&server)
        .await
        .export(shop())
        .await
        .expect_err("no room for the export's message");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("max_body_memory"), "{status:?}");
    assert_eq!(
        status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay),
        Some(Duration::from_secs(1))
    );
    let stored = server.api.get_json("/api/v1/services", &[]).await;
    assert_eq!(
        stored["services"],
        serde_json::json!([]),
        "nothing stored: {stored}"
    );

    // The slow sender goes away: the same export is taken.
    drop(slow);
    let mut client = grpc_client(&server).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.export(shop()).await {
            Ok(_) => break,
            Err(status) if status.code() == tonic::Code::Unavailable => {
                assert!(std::time::Instant::now() < deadline, "{status:?}");
            }
            Err(status) => panic!("{status:?}"),
        }
    }
    assert_the_shop_is_stored(&server).await;
    server.stop().await;
}
