//! A producer service over NATS JetStream, instrumented with the Muninn SDK.
//!
//! `cargo run -p muninn-sdk --features nats --example nats_producer -- NATS_URL MUNINN_URL [COUNT]`
//! (defaults: nats://127.0.0.1:4222, http://127.0.0.1:4320, 100). Publishes `order.placed`
//! events to `shop.orders.placed` on the JetStream stream `SHOP` (created if missing).

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use muninn_sdk::Tracer;
use muninn_sdk::nats::{NatsEvent, TracedJetStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let nats_url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let muninn_url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:4320".into());
    let count: usize = match args.next() {
        Some(text) => text
            .parse()
            .map_err(|_| format!("COUNT must be a number, got {text:?}"))?,
        None => 100,
    };

    let tracer = Tracer::builder("storefront")
        .collector(&muninn_url)
        .version("2.3.0")
        .build()?;
    let context = jetstream::new(async_nats::connect(&nats_url).await?);
    context
        .get_or_create_stream(stream::Config {
            name: "SHOP".into(),
            subjects: vec!["shop.>".into()],
            ..Default::default()
        })
        .await?;
    let publisher = TracedJetStream::new(context, tracer.clone());
    for n in 0..count {
        let event_id = muninn_sdk::new_event_id();
        let payload = format!("{{\"order\":{n},\"total\":{}}}", 10 + n % 90);
        publisher
            .publish(
                "shop.orders.placed",
                HeaderMap::new(),
                payload.into(),
                NatsEvent {
                    event_id: &event_id,
                    event_type: "order.placed",
                    schema: Some("order.placed/v1"),
                },
                None,
            )
            .await?;
    }
    tokio::task::spawn_blocking(move || tracer.shutdown(Duration::from_secs(5))).await?;
    println!("storefront published {count} order.placed events");
    Ok(())
}
