//! Wrapping a broker the SDK has no adapter for: an in-house queue carrying headers.
//!
//! Run `muninn serve` (or `muninn demo`) first, then:
//! `cargo run -p muninn-sdk --example custom_broker -- http://127.0.0.1:4320`

use std::collections::VecDeque;
use std::time::Duration;

use muninn_sdk::{Broker, Tracer, new_event_id};

/// Your broker's message: a payload and string headers. Any carrier works as long as it
/// implements `muninn_sdk::Injector` (write) and `muninn_sdk::Extractor` (read); a
/// `Vec<(String, String)>` and a `HashMap<String, String>` already do.
struct Message {
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
    offset: i64,
}

#[derive(Default)]
struct InHouseQueue {
    messages: VecDeque<Message>,
    next_offset: i64,
}

impl InHouseQueue {
    fn publish(&mut self, headers: Vec<(String, String)>, payload: Vec<u8>) -> i64 {
        let offset = self.next_offset;
        self.next_offset += 1;
        self.messages.push_back(Message {
            headers,
            payload,
            offset,
        });
        offset
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let collector = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:4320".to_string());
    // One tracer per service; here two services share a process for the example's sake.
    let shop = Tracer::builder("shop").collector(&collector).build()?;
    let mailer = Tracer::builder("mailer").collector(&collector).build()?;
    let mut queue = InHouseQueue::default();

    // 1. Where you publish: take the route once, then per message produce + inject headers.
    //    Broker::Other covers brokers without their own name (Pulsar, SQS, Kinesis, RabbitMQ
    //    and Redis have one).
    let receipts = shop.route("receipt.issued", "receipts", Broker::Other);
    for n in 0..10 {
        let event_id = new_event_id();
        let mut headers = Vec::new();
        let mut span =
            receipts.produce_with_headers(&event_id, Some("receipt/v1"), None, &mut headers);
        let offset = queue.publish(headers, format!("receipt {n}").into_bytes());
        span.offset(offset); // what the broker told you: offset, partition, message id
        span.end();
    }

    // 2. Where you consume: read the headers, record the consumption, pass its context on.
    while let Some(message) = queue.messages.pop_front() {
        let mut span = mailer.consume("receipts", Broker::Other, &message.headers);
        span.offset(message.offset);
        if message.payload.is_empty() {
            span.error("empty payload");
        }
        // Anything mailer publishes in reaction continues the trace:
        // `route.produce_with_headers(new_id, schema, Some(span.context()), &mut headers)`.
        span.end();
    }

    // 3. At exit, send what is left (blocking, bounded by the timeout).
    for tracer in [&shop, &mailer] {
        tracer.shutdown(Duration::from_secs(5));
        let stats = tracer.stats();
        println!(
            "{}: {} spans exported, {} dropped",
            tracer.service(),
            stats.spans_exported,
            stats.spans_dropped()
        );
    }
    println!("lineage: {collector}/api/v1/lineage?format=mermaid");
    Ok(())
}
