//! The Muninn SDK: trace every event a service produces or consumes, for any broker.
//!
//! ```no_run
//! use muninn_sdk::{Broker, Tracer};
//!
//! let tracer = Tracer::builder("checkout")
//!     .collector("http://127.0.0.1:4320")
//!     .version("1.4.2")
//!     .build()?;
//! let orders = tracer.route("order.created", "orders", Broker::Kafka);
//!
//! // Where the event is produced: count it, maybe trace it, and put its headers on the message.
//! let mut headers: Vec<(String, String)> = Vec::new();
//! let span = orders.produce_with_headers("order-42", Some("order.created/v2"), None, &mut headers);
//! // ... send the message with `headers` ...
//! span.end();
//!
//! // Where it is consumed (in another service): read the headers, continue the trace.
//! let mut span = tracer.consume("orders", Broker::Kafka, &headers);
//! span.modified(); // this consumer changed the event
//! span.end();
//! # Ok::<(), muninn_sdk::ConfigError>(())
//! ```
//!
//! Calls never block: counting is one atomic add, the sampling decision is a hash of the
//! event id (`docs/sampling.md`), and sampled spans go to a bounded queue that a background
//! thread sends to the collector. What cannot be sent is dropped and counted ([`Tracer::stats`],
//! [`Tracer::metrics_text`]).

mod clock;
mod counter;
mod export;
#[cfg(feature = "kafka")]
pub mod kafka;
mod metrics;
#[cfg(feature = "nats")]
pub mod nats;
mod options;
pub mod propagation;
mod queue;
mod record;
mod route;
mod tracer;

pub use export::GZIP_LEVEL;
pub use muninn_model::Broker;
pub use muninn_model::sampling::{ServiceSamplingConfig, event_id_hash, is_sampled};
pub use options::{ConfigError, Options};
pub use propagation::{Extractor, Format, Injector, SpanContext};
pub use record::Value;
pub use route::{EventSpan, Route, UNKNOWN_EVENT_TYPE};
pub use tracer::{Stats, Tracer, TracerBuilder};

/// A new random event id (UUID v4), for producers whose events have none.
pub fn new_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
