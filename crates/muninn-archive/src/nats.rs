//! The NATS JetStream recorder: one durable pull consumer per stream, the streams named or
//! matched by patterns with `*` (`orders*`) against the server's stream names, listed again
//! every 10 s so that new streams are picked up. Consumers use `AckPolicy::All`, and a stream is
//! acked up to the last message of a file only once that file is durable.
//!
//! The archive, not the consumer, decides where a stream resumes, and the [`Recorder`] skips
//! whatever is at or before the last message it has of a stream, so each stream's reader hands
//! messages on in stream-sequence order. JetStream does not always deliver in that order: a
//! message delivered to a recorder that crashed, or lost with a connection, comes again only
//! after `ack_wait`, behind later ones. So when a delivery skips sequences after the last one
//! handed on (or the consumer has delivered past the archive when a reader starts), the
//! messages between are read from the stream itself (`STREAM.MSG.GET`, the next message from a
//! sequence), and their redelivery later is skipped, or acked when already archived (a stream
//! with deleted messages costs one such request per gap). One recorder per stream and archive:
//! two would both write the stream's files.
//!
//! Headers: async-nats 0.51 parses a message's headers into a `HashMap<HeaderName,
//! Vec<HeaderValue>>`. The values of one name keep their order on the wire, repeats included;
//! the order between names is lost (hash order, different from message to message). The archive
//! keeps every value of every header, the names sorted bytewise and each name's values in their
//! order on the wire, and the values as async-nats reads them: UTF-8, surrounding white space
//! trimmed. Messages read from the stream to fill a gap have their header block parsed here the
//! same way (async-nats's own parser of stored messages keeps only the last value of a name).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use async_nats::Subject;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::response::Response;
use async_nats::jetstream::{self, ErrorCode};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::archive::Archive;
use crate::error::{ArchiveError, Result};
use crate::layout::check_stream_name;
use crate::message::{Message, SourceBroker, TimestampType};
use crate::nats_stored::{StoredMessageRequest, StoredMessageResponse, headers, unix_ms};
use crate::recorder::{AbortOnDrop, Committed, Recorder, RecorderOptions, RecorderStats};

/// How often the server's streams are listed again, for patterns to pick up new streams.
const LIST_EVERY: Duration = Duration::from_secs(10);
/// The first wait after a failure; it doubles up to `RecorderOptions::max_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Messages asked for by one pull request.
const PULL_BATCH: usize = 1000;

/// Where and what to record.
#[derive(Debug, Clone)]
pub struct NatsSource {
    /// `nats://host:port`.
    pub url: String,
    /// JetStream stream names, or patterns where `*` stands for any characters (`orders*`).
    pub streams: Vec<String>,
    /// The name of the durable consumer the recorder creates (and owns) on each stream.
    pub durable: String,
}

/// Records until `shutdown` resolves, then writes what is buffered and acks it.
pub async fn record_nats(
    archive: Archive,
    source: NatsSource,
    options: RecorderOptions,
    stats: Arc<RecorderStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    check_source(&source)?;
    tokio::pin!(shutdown);
    let client = tokio::select! {
        () = &mut shutdown => return Ok(()),
        client = connect(&source.url, &options, &stats) => client,
    };
    tracing::info!(url = %source.url, durable = %source.durable, streams = ?source.streams, archive = archive.description(), "recording from nats");

    let _sampler = options.group_positions_every.map(|every| {
        AbortOnDrop(tokio::spawn(crate::nats_groups::sample_consumers(
            archive.clone(),
            crate::nats_groups::ConsumerSampler {
                jetstream: jetstream::new(client.clone()),
                patterns: source.streams.clone(),
                own_durable: source.durable.clone(),
            },
            every,
            stats.clone(),
        )))
    });
    let (sender, mut deliveries) = mpsc::channel(PULL_BATCH);
    let mut readers = Readers::new(
        Reader {
            jetstream: jetstream::new(client.clone()),
            archive: archive.clone(),
            durable: source.durable.clone(),
            options: options.clone(),
            stats: stats.clone(),
            sender,
        },
        source.streams.clone(),
    );
    let mut recorder = Recorder::new(archive, options.clone(), stats.clone());
    let mut acks = Acks::default();
    let mut tick = tokio::time::interval(
        Duration::from_millis(250)
            .min(options.max_file_age)
            .max(Duration::from_millis(1)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let listing = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(listing);
    let mut listing_backoff = Backoff::new(options.max_backoff);
    loop {
        let committed = tokio::select! {
            () = &mut shutdown => break,
            () = &mut listing => {
                let next = match readers.update().await {
                    Ok(()) => {
                        if listing_backoff.succeeded() {
                            stats.recovered();
                        }
                        LIST_EVERY
                    }
                    Err(error) => broker_failed(&stats, &mut listing_backoff, &error),
                };
                listing.as_mut().reset(tokio::time::Instant::now() + next);
                Vec::new()
            }
            _ = tick.tick() => recorder.commit_due().await,
            Some(delivery) = deliveries.recv() => {
                acks.receive(delivery, &mut recorder, &client, &stats).await
            }
        };
        acks.committed(&client, &committed).await;
    }
    drop(readers);
    let committed = recorder.commit_all().await;
    acks.committed(&client, &committed).await;
    if let Err(error) = client.flush().await {
        tracing::warn!(%error, "nats: the last acks may not have reached the server; their messages come again and are skipped as archived");
    }
    Ok(())
}

fn check_source(source: &NatsSource) -> Result<()> {
    if let Err(error) = source.url.parse::<async_nats::ServerAddr>() {
        return Err(ArchiveError::invalid(format!(
            "nats: url {:?}: {error}; use nats://HOST:PORT",
            source.url
        )));
    }
    if source.streams.is_empty() {
        return Err(ArchiveError::invalid(
            "nats: streams is empty: give JetStream stream names or patterns with * (orders, orders-*)",
        ));
    }
    for entry in &source.streams {
        if entry.is_empty() || !entry.bytes().all(|byte| is_name_byte(byte) || byte == b'*') {
            return Err(ArchiveError::invalid(format!(
                "nats: streams: {entry:?} is neither a stream name nor a pattern: use A-Z, a-z, \
                 0-9, '_' and '-', and * for any characters"
            )));
        }
    }
    if source.durable.is_empty() || !source.durable.bytes().all(is_name_byte) {
        return Err(ArchiveError::invalid(format!(
            "nats: durable {:?}: give the durable consumer's name, of A-Z, a-z, 0-9, '_' and '-'",
            source.durable
        )));
    }
    Ok(())
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Whether `name` matches `pattern`, where `*` stands for any characters (none included).
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(mut rest) = name.strip_prefix(parts.next().unwrap_or_default()) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Waits that double from [`FIRST_BACKOFF`] up to a bound while something keeps failing.
struct Backoff {
    next: Duration,
    max: Duration,
    failing: bool,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff {
            next: FIRST_BACKOFF,
            max,
            failing: false,
        }
    }

    /// How long to wait before the next attempt.
    fn failed(&mut self) -> Duration {
        let wait = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        self.failing = true;
        wait
    }

    /// Starts again from the first wait; true if this ends a run of failures.
    fn succeeded(&mut self) -> bool {
        self.next = FIRST_BACKOFF;
        std::mem::take(&mut self.failing)
    }
}

/// Counts and logs a broker failure; returns how long to wait before trying again.
fn broker_failed(stats: &RecorderStats, backoff: &mut Backoff, error: &str) -> Duration {
    let wait = backoff.failed();
    stats.broker_errors.fetch_add(1, Ordering::Relaxed);
    stats.failed(format!("nats: {error}"));
    tracing::warn!(%error, retry_in = ?wait, "nats broker error");
    wait
}

async fn connect(
    url: &str,
    options: &RecorderOptions,
    stats: &RecorderStats,
) -> async_nats::Client {
    let mut backoff = Backoff::new(options.max_backoff);
    loop {
        match async_nats::ConnectOptions::new()
            .name("muninn archive recorder")
            .connect(url)
            .await
        {
            Ok(client) => {
                if backoff.succeeded() {
                    stats.recovered();
                }
                return client;
            }
            Err(error) => {
                let wait = broker_failed(
                    stats,
                    &mut backoff,
                    &format!("connecting to {url}: {error}"),
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Publishes `+ACK` on a delivery's reply subject: with `AckPolicy::All`, the message and every
/// one before it. Not waited on: a lost ack only means messages come again, to be skipped.
async fn ack(client: &async_nats::Client, reply: Subject) {
    if let Err(error) = client.publish(reply, Bytes::from_static(b"+ACK")).await {
        tracing::warn!(%error, "nats: ack failed; the messages come again and are skipped as archived");
    }
}

/// One message of a stream handed from its reader to the recording loop.
struct Delivery {
    stream: String,
    sequence: u64,
    /// The subject that acks this delivery; none for a message read from the stream directly.
    reply: Option<Subject>,
    /// None for a redelivery of a message already handed on.
    message: Option<Message>,
}

/// Per stream, what the recording loop needs to ack: the last sequence durable in the archive,
/// and the reply subjects of the deliveries after it (the buffered messages).
#[derive(Default)]
struct Acks {
    streams: HashMap<String, StreamAcks>,
}

#[derive(Default)]
struct StreamAcks {
    durable: u64,
    replies: BTreeMap<u64, Subject>,
}

impl Acks {
    /// Takes a delivery: acks it at once if its file is durable already, else keeps its reply
    /// subject and offers the message to the recorder.
    async fn receive(
        &mut self,
        delivery: Delivery,
        recorder: &mut Recorder,
        client: &async_nats::Client,
        stats: &RecorderStats,
    ) -> Vec<Committed> {
        let stream = self.streams.entry(delivery.stream).or_default();
        if delivery.sequence <= stream.durable {
            stats.duplicates_skipped.fetch_add(1, Ordering::Relaxed);
            if let Some(reply) = delivery.reply {
                ack(client, reply).await;
            }
            return Vec::new();
        }
        if let Some(reply) = delivery.reply {
            stream.replies.insert(delivery.sequence, reply);
        }
        match delivery.message {
            Some(message) => recorder.offer(message).await,
            None => Vec::new(),
        }
    }

    /// Acks, per stream that became durable up to a sequence, the last delivery at or before
    /// it, which acks all before it too.
    async fn committed(&mut self, client: &async_nats::Client, committed: &[Committed]) {
        for position in committed {
            let durable = u64::try_from(position.next_offset - 1).unwrap_or(0);
            let stream = self.streams.entry(position.stream.clone()).or_default();
            stream.durable = stream.durable.max(durable);
            let after = stream.replies.split_off(&(durable + 1));
            let done = std::mem::replace(&mut stream.replies, after);
            if let Some((_, reply)) = done.into_iter().next_back() {
                ack(client, reply).await;
            }
        }
    }
}

/// The readers of the streams that match the patterns, started and stopped as streams come
/// and go.
struct Readers {
    template: Reader,
    patterns: Vec<String>,
    running: HashMap<String, AbortHandle>,
    /// Dropped with `Readers`, which aborts every reader.
    tasks: JoinSet<()>,
    /// Streams named (not matched) that the server does not have, warned about once.
    missing: HashSet<String>,
    /// Streams whose names the archive cannot take, warned about once.
    refused: HashSet<String>,
}

impl Readers {
    fn new(template: Reader, patterns: Vec<String>) -> Readers {
        Readers {
            template,
            patterns,
            running: HashMap::new(),
            tasks: JoinSet::new(),
            missing: HashSet::new(),
            refused: HashSet::new(),
        }
    }

    /// Lists the server's streams; starts a reader for each new match, stops those of streams
    /// that are gone (their buffered messages are still written).
    async fn update(&mut self) -> Result<(), String> {
        let names: Vec<String> = self
            .template
            .jetstream
            .stream_names()
            .try_collect()
            .await
            .map_err(|error| format!("listing the streams: {error}"))?;
        let names: HashSet<String> = names
            .into_iter()
            .filter(|name| self.patterns.iter().any(|pattern| matches(pattern, name)))
            .collect();
        for pattern in self
            .patterns
            .iter()
            .filter(|pattern| !pattern.contains('*'))
        {
            if names.contains(pattern) {
                self.missing.remove(pattern);
            } else if self.missing.insert(pattern.clone()) {
                tracing::warn!(stream = %pattern, "nats: no such stream (yet); it is recorded once it exists");
            }
        }
        self.running.retain(|name, reader| {
            let keep = names.contains(name);
            if !keep {
                reader.abort();
                tracing::info!(stream = %name, "nats: the stream is gone; stopped reading it");
            }
            keep
        });
        while self.tasks.try_join_next().is_some() {}
        for name in names {
            if self.running.contains_key(&name) {
                continue;
            }
            if let Err(error) = check_stream_name(&name) {
                if self.refused.insert(name.clone()) {
                    tracing::warn!(stream = %name, %error, "nats: not recording a stream whose name the archive cannot take");
                }
                continue;
            }
            tracing::info!(stream = %name, durable = %self.template.durable, "nats: reading stream");
            let reader = self.tasks.spawn(self.template.clone().run(name.clone()));
            self.running.insert(name, reader);
        }
        Ok(())
    }
}

/// Reads one stream through its durable consumer and hands its messages on in order.
#[derive(Clone)]
struct Reader {
    jetstream: jetstream::Context,
    archive: Archive,
    durable: String,
    options: RecorderOptions,
    stats: Arc<RecorderStats>,
    sender: mpsc::Sender<Delivery>,
}

/// Where a reader is in its stream.
struct Position {
    /// The last sequence in the archive when the reader started.
    archived: u64,
    /// The last sequence handed on (or archived).
    forwarded: u64,
}

/// Why a reader stopped reading for now.
enum Stop {
    /// The recording loop is gone.
    Closed,
    /// The server failed or refused something: try again after a while.
    Broker(String),
}

impl Reader {
    /// Reads until aborted, starting again (with backoff) after every broker error.
    async fn run(self, stream: String) {
        let archived = self.archived(&stream).await;
        let mut position = Position {
            archived,
            forwarded: archived,
        };
        let mut backoff = Backoff::new(self.options.max_backoff);
        loop {
            let Err(stop) = self.read(&stream, &mut position, &mut backoff).await;
            match stop {
                Stop::Closed => return,
                Stop::Broker(error) => {
                    let wait = broker_failed(
                        &self.stats,
                        &mut backoff,
                        &format!("stream {stream}: {error}"),
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The stream's last sequence in the archive, 0 if none; retried while the store fails.
    async fn archived(&self, stream: &str) -> u64 {
        let mut backoff = Backoff::new(self.options.max_backoff);
        loop {
            match self.archive.last_offset(stream, 0).await {
                Ok(last) => {
                    if backoff.succeeded() {
                        self.stats.recovered();
                    }
                    return last.map_or(0, |last| u64::try_from(last).unwrap_or(0));
                }
                Err(error) => {
                    let wait = backoff.failed();
                    self.stats
                        .object_store_errors
                        .fetch_add(1, Ordering::Relaxed);
                    self.stats.failed(error.to_string());
                    tracing::warn!(%stream, %error, retry_in = ?wait, "nats: cannot read the archive's position");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn read(
        &self,
        name: &str,
        position: &mut Position,
        backoff: &mut Backoff,
    ) -> Result<Infallible, Stop> {
        let stream = self
            .jetstream
            .get_stream_no_info(name)
            .await
            .map_err(|error| Stop::Broker(format!("getting the stream: {error}")))?;
        let consumer = self.consumer(&stream, position.forwarded + 1).await?;
        let delivered = consumer.cached_info().delivered.stream_sequence;
        if delivered > position.forwarded {
            // Delivered before (to a recorder that crashed, say) and not archived: read them
            // now rather than wait for their redelivery.
            self.fill(name, position, delivered + 1).await?;
        }
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .expires(Duration::from_secs(30))
            .heartbeat(Duration::from_secs(10))
            .messages()
            .await
            .map_err(|error| {
                Stop::Broker(format!("pulling from consumer {}: {error}", self.durable))
            })?;
        while let Some(received) = messages.next().await {
            let received = received
                .map_err(|error| Stop::Broker(format!("consumer {}: {error}", self.durable)))?;
            if backoff.succeeded() {
                self.stats.recovered();
            }
            let (sequence, timestamp_ms) = match received.info() {
                Ok(info) => (
                    info.stream_sequence,
                    unix_ms(SystemTime::from(info.published)),
                ),
                Err(error) => {
                    return Err(Stop::Broker(format!(
                        "a delivery without JetStream metadata ({error})"
                    )));
                }
            };
            let reply = received.message.reply.clone();
            if sequence <= position.archived {
                // Archived by a recorder before this one, whose ack did not arrive.
                self.stats
                    .duplicates_skipped
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = reply {
                    ack(&self.jetstream.client(), reply).await;
                }
                continue;
            }
            if sequence > position.forwarded + 1 {
                self.fill(name, position, sequence).await?;
            }
            let message = (sequence > position.forwarded).then(|| {
                let message = &received.message;
                Message::from_broker(
                    SourceBroker::Nats,
                    name.to_owned(),
                    Some(message.subject.to_string()),
                    0,
                    i64::try_from(sequence).unwrap_or(i64::MAX),
                    timestamp_ms,
                    TimestampType::LogAppendTime,
                    None,
                    headers(message.headers.as_ref()),
                    Some(message.payload.to_vec()),
                )
            });
            self.send(name, sequence, reply, message).await?;
            position.forwarded = position.forwarded.max(sequence);
        }
        Err(Stop::Broker(format!(
            "the messages of consumer {} ended",
            self.durable
        )))
    }

    /// The durable consumer, created to start at `start` if it does not exist. One that exists
    /// must ack all and filter nothing; a shorter `ack_wait` or a limit on pending acks is raised.
    async fn consumer(
        &self,
        stream: &jetstream::stream::Stream<()>,
        start: u64,
    ) -> Result<PullConsumer, Stop> {
        let wanted = pull::Config {
            durable_name: Some(self.durable.clone()),
            description: Some(
                "muninn archive recorder: acked once the archive holds the messages".to_owned(),
            ),
            deliver_policy: if start <= 1 {
                DeliverPolicy::All
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                }
            },
            ack_policy: AckPolicy::All,
            // A message waits for its file at most `max_file_age`, then for the write.
            ack_wait: self.options.max_file_age * 2 + Duration::from_secs(30),
            // A whole file's messages are unacked until it is written.
            max_ack_pending: -1,
            ..pull::Config::default()
        };
        let consumer: PullConsumer = stream
            .get_or_create_consumer(&self.durable, wanted.clone())
            .await
            .map_err(|error| {
                Stop::Broker(format!(
                    "getting or creating consumer {}: {error}",
                    self.durable
                ))
            })?;
        let config = &consumer.cached_info().config;
        if config.ack_policy != AckPolicy::All
            || !config.filter_subject.is_empty()
            || !config.filter_subjects.is_empty()
        {
            return Err(Stop::Broker(format!(
                "consumer {} exists with ack policy {:?} and filter {:?}; the recorder needs ack \
                 policy all and no filter: delete the consumer or give another durable name",
                self.durable, config.ack_policy, config.filter_subject
            )));
        }
        if config.ack_wait < wanted.ack_wait || config.max_ack_pending > 0 {
            let updated = pull::Config {
                deliver_policy: config.deliver_policy,
                ..wanted
            };
            match stream.create_consumer(updated).await {
                Ok(consumer) => return Ok(consumer),
                Err(error) => tracing::warn!(
                    consumer = %self.durable,
                    %error,
                    "nats: cannot raise the consumer's ack_wait and max_ack_pending; messages may come again before they are archived, to be skipped"
                ),
            }
        }
        Ok(consumer)
    }

    /// Hands on the stream's messages after `position.forwarded` and before `before`, read from
    /// the stream itself.
    async fn fill(&self, name: &str, position: &mut Position, before: u64) -> Result<(), Stop> {
        while position.forwarded + 1 < before {
            let request = StoredMessageRequest {
                seq: position.forwarded + 1,
                next_by_subj: ">",
            };
            let response: Response<StoredMessageResponse> = self
                .jetstream
                .request(format!("STREAM.MSG.GET.{name}"), &request)
                .await
                .map_err(|error| {
                    Stop::Broker(format!(
                        "reading the message after {} from the stream: {error}",
                        position.forwarded
                    ))
                })?;
            let stored = match response {
                Response::Ok(StoredMessageResponse { message }) => message,
                Response::Err { error } if error.error_code() == ErrorCode::NO_MESSAGE_FOUND => {
                    return Ok(());
                }
                Response::Err { error } => {
                    return Err(Stop::Broker(format!(
                        "reading the message after {} from the stream: {error}",
                        position.forwarded
                    )));
                }
            };
            let sequence = stored.seq;
            if sequence >= before {
                return Ok(());
            }
            let message = stored
                .into_message(name)
                .map_err(|error| Stop::Broker(format!("message {sequence}: {error}")))?;
            self.send(name, sequence, None, Some(message)).await?;
            position.forwarded = sequence;
        }
        Ok(())
    }

    async fn send(
        &self,
        stream: &str,
        sequence: u64,
        reply: Option<Subject>,
        message: Option<Message>,
    ) -> Result<(), Stop> {
        self.sender
            .send(Delivery {
                stream: stream.to_owned(),
                sequence,
                reply,
                message,
            })
            .await
            .map_err(|_| Stop::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_with_any_characters_for_each_star() {
        for (pattern, name, expected) in [
            ("orders", "orders", true),
            ("orders", "orders2", false),
            ("orders*", "orders", true),
            ("orders*", "orders-eu", true),
            ("orders*", "order", false),
            ("*-eu", "orders-eu", true),
            ("*-eu", "orders-us", false),
            ("o*s-*", "orders-eu", true),
            ("a*b*a", "aba", true),
            ("a*b*a", "ab", false),
            ("*", "anything", true),
        ] {
            assert_eq!(matches(pattern, name), expected, "{pattern} {name}");
        }
    }

    #[test]
    fn an_empty_stream_list_or_durable_is_refused_by_name() {
        let source = NatsSource {
            url: "nats://127.0.0.1:4222".to_owned(),
            streams: Vec::new(),
            durable: "archive".to_owned(),
        };
        let error = check_source(&source).unwrap_err();
        assert!(error.message.contains("streams"), "{error}");
        let error = check_source(&NatsSource {
            streams: vec!["orders.eu".to_owned()],
            ..source.clone()
        })
        .unwrap_err();
        assert!(error.message.contains("orders.eu"), "{error}");
        let error = check_source(&NatsSource {
            streams: vec!["orders*".to_owned()],
            durable: String::new(),
            ..source
        })
        .unwrap_err();
        assert!(error.message.contains("durable"), "{error}");
    }
}
