//! A consumer service over NATS JetStream, instrumented with the Muninn SDK: it consumes
//! `order.placed`, and publishes an `invoice.issued` event for each, continuing the trace.
//!
//! `cargo run -p muninn-sdk --features nats --example nats_consumer -- NATS_URL MUNINN_URL [COUNT]`
//! Stops after COUNT messages (default 100), or after 5 s without one.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt as _;
use muninn_sdk::Tracer;
use muninn_sdk::nats::{self, NatsEvent, TracedJetStream};

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

    let tracer = Tracer::builder("invoicing")
        .collector(&muninn_url)
        .build()?;
    let context = jetstream::new(async_nats::connect(&nats_url).await?);
    let stream = context.get_stream("SHOP").await?;
    let consumer = stream
        .get_or_create_consumer(
            "invoicing",
            pull::Config {
                durable_name: Some("invoicing".into()),
                filter_subject: "shop.orders.>".into(),
                ..Default::default()
            },
        )
        .await?;
    let publisher = TracedJetStream::new(context, tracer.clone());
    let mut messages = consumer.messages().await?;
    let mut done = 0;
    while done < count {
        let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await
        else {
            break;
        };
        let message = message?;
        // Record the consumption: event id, type and trace context come from the headers.
        let span = nats::consume(&tracer, &message);
        let invoice_id = muninn_sdk::new_event_id();
        publisher
            .publish(
                "shop.invoices.issued",
                HeaderMap::new(),
                message.payload.clone(),
                NatsEvent {
                    event_id: &invoice_id,
                    event_type: "invoice.issued",
                    schema: Some("invoice.issued/v1"),
                },
                Some(span.context()),
            )
            .await?;
        span.end();
        message.ack().await.map_err(|error| error.to_string())?;
        done += 1;
    }
    tokio::task::spawn_blocking(move || tracer.shutdown(Duration::from_secs(5))).await?;
    println!("invoicing consumed {done} order.placed events");
    Ok(())
}
