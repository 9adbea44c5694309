//! The demo's in-process broker: every stream of the fleet, Kafka topics with partitions and
//! offsets, NATS subjects with a stream sequence. A published message (the event id as its
//! payload, and headers) gets its position and is delivered to every subscription of its event
//! type on that stream, each through its own queue, as consumer groups would read it. It also
//! keeps track of the messages in flight, so the demo knows when the fleet has gone quiet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use muninn_model::Broker as BrokerKind;
use muninn_sdk::EventSpan;
use rand::Rng;
use tokio::sync::mpsc;

use super::fleet::{Fleet, Stream};

/// Where a message landed: a Kafka partition and offset, or a NATS stream sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Kafka { partition: i32, offset: i64 },
    Nats { sequence: u64 },
}

impl Position {
    /// Records the position on a produce or consume span.
    pub fn record(self, span: &mut EventSpan) {
        match self {
            Position::Kafka { partition, offset } => {
                span.partition(partition).offset(offset);
            }
            Position::Nats { sequence } => {
                span.message_id(&sequence.to_string());
            }
        }
    }
}

/// A message on a stream. The demo's events have no body: the payload is the event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub payload: String,
    /// What the producer's tracer wrote: event id, type and schema, `traceparent`.
    pub headers: Vec<(String, String)>,
    pub position: Position,
}

/// Counts one unit of work in flight for as long as it lives.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A message handed to one subscription; it is in flight until the delivery is dropped.
#[derive(Debug)]
pub struct Delivery {
    pub message: Arc<Message>,
    _in_flight: InFlight,
}

struct Subscriber {
    event_type: &'static str,
    queue: mpsc::UnboundedSender<Delivery>,
}

struct StreamState {
    stream: &'static Stream,
    /// Kafka: the next offset of each partition. NATS: one entry, the next sequence.
    next: Mutex<Vec<i64>>,
    subscribers: Vec<Subscriber>,
}

/// Every stream of a fleet.
pub struct Broker {
    streams: HashMap<&'static str, StreamState>,
    in_flight: Arc<AtomicUsize>,
}

/// The receiving end of one subscription, by its index in `Fleet::subscriptions`.
pub type Queues = Vec<(usize, mpsc::UnboundedReceiver<Delivery>)>;

impl Broker {
    /// The streams of `fleet`, with a queue per subscription. Kafka partitions start at random
    /// offsets, as on a topic that has been in use for a while.
    pub fn new(fleet: &Fleet, rng: &mut impl Rng) -> (Broker, Queues) {
        let mut streams: HashMap<&'static str, StreamState> = fleet
            .streams
            .iter()
            .map(|stream| {
                let next = match stream.broker {
                    BrokerKind::Kafka if stream.partitions > 0 => (0..stream.partitions)
                        .map(|_| rng.random_range(1_000..1_000_000))
                        .collect(),
                    _ => vec![1],
                };
                (
                    stream.name,
                    StreamState {
                        stream,
                        next: Mutex::new(next),
                        subscribers: Vec::new(),
                    },
                )
            })
            .collect();
        let mut queues = Vec::new();
        for (index, subscription) in fleet.subscriptions.iter().enumerate() {
            if let Some(state) = streams.get_mut(subscription.stream) {
                let (queue, receiver) = mpsc::unbounded_channel();
                state.subscribers.push(Subscriber {
                    event_type: subscription.event_type,
                    queue,
                });
                queues.push((index, receiver));
            }
        }
        let broker = Broker {
            streams,
            in_flight: Arc::new(AtomicUsize::new(0)),
        };
        (broker, queues)
    }

    /// Appends a message of `event_type` to `stream` and delivers it to the stream's
    /// subscriptions of that type; returns its position, or `None` for an unknown stream.
    /// The partition of a Kafka message is chosen by its key, the event id.
    pub fn publish(
        &self,
        stream: &str,
        event_type: &str,
        payload: String,
        headers: Vec<(String, String)>,
    ) -> Option<Position> {
        let state = self.streams.get(stream)?;
        let position = {
            let mut next = match state.next.lock() {
                Ok(next) => next,
                Err(poisoned) => poisoned.into_inner(),
            };
            let index = if next.len() > 1 {
                partition_of(&payload, next.len())
            } else {
                0
            };
            let slot = next.get_mut(index)?;
            let value = *slot;
            *slot += 1;
            match state.stream.broker {
                BrokerKind::Kafka if state.stream.partitions > 0 => Position::Kafka {
                    partition: i32::try_from(index).unwrap_or(i32::MAX),
                    offset: value,
                },
                _ => Position::Nats {
                    sequence: u64::try_from(value).unwrap_or(0),
                },
            }
        };
        let message = Arc::new(Message {
            payload,
            headers,
            position,
        });
        for subscriber in &state.subscribers {
            if subscriber.event_type == event_type {
                // A closed queue means its consumer stopped; the message is then dropped.
                let _ = subscriber.queue.send(Delivery {
                    message: message.clone(),
                    _in_flight: InFlight::new(&self.in_flight),
                });
            }
        }
        Some(position)
    }

    /// Counts other work (a request being handled) as in flight while the guard lives.
    pub fn track(&self) -> InFlight {
        InFlight::new(&self.in_flight)
    }

    /// Messages delivered but not yet handled, and other tracked work.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

/// FNV-1a of the key, modulo the number of partitions: the same key, the same partition.
fn partition_of(key: &str, partitions: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % partitions.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::super::fleet::DEMO_FLEET;
    use super::*;

    fn broker() -> (Broker, Queues) {
        Broker::new(&DEMO_FLEET, &mut StdRng::seed_from_u64(7))
    }

    fn receiver<'a>(
        queues: &'a mut Queues,
        service: &str,
        event_type: &str,
    ) -> &'a mut mpsc::UnboundedReceiver<Delivery> {
        let (_, receiver) = queues
            .iter_mut()
            .find(|(index, _)| {
                let subscription = &DEMO_FLEET.subscriptions[*index];
                subscription.service == service && subscription.event_type == event_type
            })
            .unwrap();
        receiver
    }

    #[test]
    fn every_subscription_gets_its_own_queue() {
        let (_, queues) = broker();
        assert_eq!(queues.len(), DEMO_FLEET.subscriptions.len());
    }

    #[test]
    fn a_message_reaches_every_subscriber_of_its_type_and_no_other() {
        let (broker, mut queues) = broker();
        let headers = vec![("muninn-event-id".to_string(), "e-1".to_string())];
        let position = broker
            .publish("orders", "order.placed", "e-1".into(), headers.clone())
            .unwrap();
        assert_eq!(broker.in_flight(), 3, "fan-out to three consumers");
        for service in ["order-router", "fraud-detection", "analytics"] {
            let delivery = receiver(&mut queues, service, "order.placed")
                .try_recv()
                .unwrap();
            assert_eq!(delivery.message.payload, "e-1");
            assert_eq!(delivery.message.headers, headers);
            assert_eq!(delivery.message.position, position);
        }
        assert!(
            receiver(&mut queues, "analytics", "order.cancelled")
                .try_recv()
                .is_err()
        );
        assert_eq!(broker.in_flight(), 0, "handled once the deliveries drop");
        let tracked = broker.track();
        assert_eq!(broker.in_flight(), 1);
        drop(tracked);
        assert_eq!(broker.in_flight(), 0);
    }

    #[test]
    fn kafka_partitions_by_key_with_growing_offsets_and_nats_by_sequence() {
        let (broker, _queues) = broker();
        let first = broker
            .publish("orders", "order.placed", "key".into(), Vec::new())
            .unwrap();
        let second = broker
            .publish("orders", "order.placed", "key".into(), Vec::new())
            .unwrap();
        match (first, second) {
            (
                Position::Kafka { partition, offset },
                Position::Kafka {
                    partition: partition_2,
                    offset: offset_2,
                },
            ) => {
                assert_eq!(partition, partition_2);
                assert!((0..12).contains(&partition));
                assert_eq!(offset_2, offset + 1);
            }
            other => panic!("not Kafka positions: {other:?}"),
        }
        let sequences: Vec<Position> = ["a", "b"]
            .into_iter()
            .filter_map(|id| broker.publish("audit.events", "x", id.into(), Vec::new()))
            .collect();
        assert_eq!(
            sequences,
            [
                Position::Nats { sequence: 1 },
                Position::Nats { sequence: 2 }
            ]
        );
        assert_eq!(broker.publish("nowhere", "x", "a".into(), Vec::new()), None);
    }
}
