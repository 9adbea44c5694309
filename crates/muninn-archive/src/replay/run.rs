//! The replay loop: send in order through the target's window of deliveries in flight, settle
//! the answers in send order, record each archived partition's last delivered offset, and
//! write the checkpoint every second, at the end, and when the replay is dropped midway.
//!
//! A partition's position only moves over an unbroken run of acknowledged messages: after a
//! refusal, later messages of that partition are not recorded even when delivered (the
//! resumed replay sends them again: at least once, never a gap).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures::FutureExt as _;
use muninn_sdk::propagation;
use muninn_sdk::{Broker, EventSpan, Route, Tracer, UNKNOWN_EVENT_TYPE};
use tokio::time::Instant;

use super::checkpoint::Checkpoint;
use super::groups::{self, Landing, Landings};
use super::headers::{self, position};
use super::rate::RateLimit;
use super::sink::{self, Delivered, Delivery, Outgoing, Sink};
use super::{ReplayOptions, ReplayProgress, ReplayReport, Target};
use crate::error::{ArchiveError, Result};
use crate::message::{HeaderList, Message};

const PROGRESS_EVERY: Duration = Duration::from_millis(100);
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// One message awaiting its answer.
struct InFlight {
    index: usize,
    bytes: u64,
    span: Option<EventSpan>,
    delivery: Delivery,
}

/// The replay's producer spans: one route per event type on the target.
struct Spans {
    tracer: Tracer,
    stream: String,
    broker: Broker,
    routes: HashMap<String, Route>,
}

impl Spans {
    fn new(tracer: &Tracer, target: &Target) -> Option<Spans> {
        let (stream, broker) = match target {
            Target::Kafka { topic, .. } => (topic.clone(), Broker::Kafka),
            Target::Nats { subject, .. } => (subject.clone(), Broker::Nats),
            Target::File { .. } => return None,
        };
        Some(Spans {
            tracer: tracer.clone(),
            stream,
            broker,
            routes: HashMap::new(),
        })
    }

    /// A new trace's producer span for `message`, linked to the span it was archived with.
    fn start(&mut self, message: &Message, partition: Option<i32>) -> EventSpan {
        let event_type = message.event_type.as_deref().unwrap_or(UNKNOWN_EVENT_TYPE);
        let route = match self.routes.get(event_type) {
            Some(route) => route,
            None => {
                let route = self.tracer.route(event_type, &self.stream, self.broker);
                self.routes.entry(event_type.to_owned()).or_insert(route)
            }
        };
        let origin = position(message);
        let mut span = route.produce(message.event_id.as_deref().unwrap_or(&origin));
        if let Some(original) = propagation::extract(&HeaderList(&message.headers)).context {
            span.link(&original);
        }
        if let Some(schema) = &message.event_schema {
            span.schema(schema);
        }
        if let Some(partition) = partition {
            span.partition(partition);
        }
        span.attribute("muninn.replayed_from", origin);
        span
    }
}

pub(super) struct Run<'a> {
    messages: &'a [Message],
    /// Each message's (stream, partition) slot.
    slots: &'a [usize],
    /// A message of each slot, to name its stream and partition.
    slot_message: Vec<usize>,
    /// Each slot's last offset delivered in an unbroken run of acknowledgements, this run.
    delivered: Vec<Option<i64>>,
    /// Slots whose run of acknowledged messages was broken: their position stays put.
    broken: Vec<bool>,
    /// With `set_group_offsets`: each slot's group position (its committed offset, `None`
    /// when the group has none) and where its messages landed.
    committed: Vec<Option<i64>>,
    landings: Vec<Landings>,
    sink: Sink,
    window: VecDeque<InFlight>,
    checkpoint: Option<Checkpoint>,
    target: &'a Target,
    options: &'a ReplayOptions,
    spans: Option<Spans>,
    progress: &'a (dyn Fn(ReplayProgress) + Send + Sync),
    sent: u64,
    bytes: u64,
    total: u64,
    failure: Option<ArchiveError>,
    finished: bool,
    last_progress: Instant,
    last_checkpoint: Instant,
}

impl<'a> Run<'a> {
    pub fn new(
        messages: &'a [Message],
        slots: &'a [usize],
        sink: Sink,
        checkpoint: Option<Checkpoint>,
        target: &'a Target,
        options: &'a ReplayOptions,
        progress: &'a (dyn Fn(ReplayProgress) + Send + Sync),
    ) -> Run<'a> {
        let slot_count = slots.iter().max().map_or(0, |highest| highest + 1);
        let mut slot_message = vec![usize::MAX; slot_count];
        for (index, &slot) in slots.iter().enumerate() {
            if slot_message[slot] == usize::MAX {
                slot_message[slot] = index;
            }
        }
        let slot_key = |slot: usize| {
            let message = &messages[slot_message[slot]];
            (message.stream.clone(), message.partition)
        };
        let committed = (0..slot_count)
            .map(|slot| {
                options
                    .set_group_offsets
                    .as_ref()
                    .and_then(|group| group.committed.get(&slot_key(slot)).copied())
            })
            .collect();
        let landings = (0..slot_count)
            .map(|slot| {
                let (stream, partition) = slot_key(slot);
                checkpoint
                    .as_ref()
                    .and_then(|checkpoint| checkpoint.landings(&stream, partition))
                    .unwrap_or_default()
            })
            .collect();
        Run {
            messages,
            slots,
            slot_message,
            delivered: vec![None; slot_count],
            broken: vec![false; slot_count],
            committed,
            landings,
            sink,
            window: VecDeque::new(),
            checkpoint,
            target,
            options,
            spans: options
                .tracer
                .as_ref()
                .and_then(|tracer| Spans::new(tracer, target)),
            progress,
            sent: 0,
            bytes: 0,
            total: 0,
            failure: None,
            finished: false,
            last_progress: Instant::now(),
            last_checkpoint: Instant::now(),
        }
    }

    /// Sends the messages at `pending` (indexes, in order) and waits for every answer.
    pub async fn send(mut self, pending: &[usize], skipped: u64) -> Result<ReplayReport> {
        self.total = pending.len() as u64;
        self.report_progress();
        let mut rate = self.options.rate_per_second.map(RateLimit::new);
        let annotate = !matches!(self.target, Target::File { .. });
        for &index in pending {
            if let Some(rate) = &mut rate {
                rate.acquire().await;
            }
            let message = &self.messages[index];
            let partition = self.options.partitions.target(message.partition);
            let mut span = self
                .spans
                .as_mut()
                .map(|spans| spans.start(message, partition));
            let outgoing = Outgoing {
                message,
                headers: headers::outgoing(
                    message,
                    &self.options.drop_headers,
                    span.as_ref(),
                    annotate,
                ),
                partition,
            };
            let bytes = Sink::bytes(self.target, &outgoing);
            match self.sink.send(outgoing).await {
                Ok(delivery) => self.window.push_back(InFlight {
                    index,
                    bytes,
                    span,
                    delivery,
                }),
                Err(error) => {
                    if let Some(span) = &mut span {
                        span.error(&error);
                    }
                    self.fail(index, &error);
                    break;
                }
            }
            self.settle_ready();
            while self.window.len() >= self.sink.window() {
                self.settle_front().await;
            }
            if self.failure.is_some() {
                break;
            }
            self.tick()?;
        }
        while !self.window.is_empty() {
            self.settle_front().await;
            self.tick()?;
        }
        self.finished = true;
        let saved = self.save();
        self.report_progress();
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        saved?;
        let mut group_offsets = Vec::new();
        if let Some(group) = &self.options.set_group_offsets {
            let positions = groups::translate(&self.landings);
            self.sink
                .set_group_offsets(&group.group, &positions)
                .await?;
            group_offsets = positions.into_iter().collect();
        }
        Ok(ReplayReport {
            sent: self.sent,
            bytes: self.bytes,
            skipped,
            group_offsets,
            ..ReplayReport::default()
        })
    }

    /// Settles the answers at the front of the window that have come.
    fn settle_ready(&mut self) {
        while let Some(front) = self.window.front_mut() {
            let Some(answer) = (&mut front.delivery).now_or_never() else {
                return;
            };
            if let Some(entry) = self.window.pop_front() {
                self.settle(entry, answer);
            }
        }
    }

    /// Waits for the answer at the front of the window and settles it. The entry leaves the
    /// window only once answered: a replay dropped while waiting still finds it there.
    async fn settle_front(&mut self) {
        let Some(front) = self.window.front_mut() else {
            return;
        };
        let answer = (&mut front.delivery).await;
        if let Some(entry) = self.window.pop_front() {
            self.settle(entry, answer);
        }
    }

    fn settle(&mut self, entry: InFlight, answer: std::result::Result<Delivered, String>) {
        let message = &self.messages[entry.index];
        let slot = self.slots[entry.index];
        match answer {
            Ok(delivered) => {
                self.sent += 1;
                self.bytes += entry.bytes;
                if !self.broken[slot] {
                    self.delivered[slot] = Some(message.offset);
                }
                // A JetStream stream has one sequence: partition 0.
                if self.options.set_group_offsets.is_some()
                    && let Some(offset) = delivered.offset
                {
                    let partition = delivered.partition.unwrap_or(0);
                    self.landings[slot].delivered(
                        self.committed[slot],
                        Landing {
                            source_offset: message.offset,
                            partition,
                            offset,
                        },
                    );
                }
                if let Some(mut span) = entry.span {
                    if let Some(partition) = delivered.partition {
                        span.partition(partition);
                    }
                    if let Some(offset) = delivered.offset {
                        span.offset(offset);
                    }
                    span.end();
                }
            }
            Err(error) => {
                if let Some(mut span) = entry.span {
                    span.error(&error);
                    span.end();
                }
                self.fail(entry.index, &error);
            }
        }
    }

    /// Stops the replay at its first refusal (keeping the first error) and freezes the
    /// position of the refused message's partition.
    fn fail(&mut self, index: usize, error: &str) {
        self.broken[self.slots[index]] = true;
        if self.failure.is_none() {
            self.failure = Some(sink::refused(self.target, &self.messages[index], error));
        }
    }

    /// Reports progress and writes the checkpoint when they are due.
    fn tick(&mut self) -> Result<()> {
        let now = Instant::now();
        if now.duration_since(self.last_progress) >= PROGRESS_EVERY {
            self.report_progress();
        }
        if self.checkpoint.is_some() && now.duration_since(self.last_checkpoint) >= CHECKPOINT_EVERY
        {
            self.save()?;
        }
        Ok(())
    }

    fn report_progress(&mut self) {
        self.last_progress = Instant::now();
        (self.progress)(ReplayProgress {
            sent: self.sent,
            total: self.total,
            bytes: self.bytes,
        });
    }

    /// Makes what the target holds durable, then writes the checkpoint.
    fn save(&mut self) -> Result<()> {
        self.last_checkpoint = Instant::now();
        let file_length = self.sink.sync()?;
        if let Some(checkpoint) = &mut self.checkpoint {
            for (slot, offset) in self.delivered.iter().enumerate() {
                if let Some(offset) = *offset {
                    let message = &self.messages[self.slot_message[slot]];
                    checkpoint.record(&message.stream, message.partition, offset);
                }
            }
            if self.options.set_group_offsets.is_some() {
                for (slot, landings) in self.landings.iter().enumerate() {
                    let message = &self.messages[self.slot_message[slot]];
                    checkpoint.record_landings(&message.stream, message.partition, *landings);
                }
            }
            checkpoint.file_length = file_length;
            checkpoint.save()?;
        }
        Ok(())
    }
}

/// A replay dropped midway (its future cancelled): settle what has its answer, freeze the
/// partitions whose answers are missing, and write the checkpoint.
impl Drop for Run<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.sink.settle_blocking();
        // A NATS answer is a tokio timer: polled only where a runtime is (a runtime shutting
        // down may drop its tasks outside of it); unpolled answers count as missing.
        let can_poll = tokio::runtime::Handle::try_current().is_ok();
        let window = std::mem::take(&mut self.window);
        for mut entry in window {
            let answer = can_poll
                .then(|| (&mut entry.delivery).now_or_never())
                .flatten();
            match answer {
                Some(answer) => self.settle(entry, answer),
                None => self.broken[self.slots[entry.index]] = true,
            }
        }
        if let Err(error) = self.save() {
            tracing::warn!(%error, "replay stopped: the checkpoint could not be written");
        }
    }
}
