//! The NATS target (feature `nats`): JetStream publishes to one subject, in order, with up to
//! [`WINDOW`] acknowledgements awaited at once. Before the first publish, a JetStream stream
//! must capture the subject (or one is created, named after the subject, when asked) and every
//! message must fit the server's `max_payload`.
//!
//! What NATS keeps of a message: the payload bytes (an absent payload becomes an empty one),
//! no key (NATS has none), and headers as async-nats 0.51's `HeaderMap` holds them: a hash
//! map from name to the list of that name's values, written to the wire in the map's
//! iteration order. The values of one name keep their order and duplicates; the order
//! *between* different names is the map's (hash) order, not the archived one, and a consumer
//! parsing into a `HeaderMap` loses it again anyway (the NATS recorder archives names sorted
//! for that reason). Names are compared exactly (case kept). Headers NATS cannot carry byte
//! for byte (null or non-UTF-8 values, line breaks, white space at either end, names that are
//! not printable ASCII or hold `:`) are refused before anything is sent.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, context::GetStreamByNameErrorKind, stream};
use bytes::Bytes;

use super::headers::position;
use super::sink::{Delivered, Delivery, Needs, Outgoing};
use crate::error::{ArchiveError, ArchiveErrorKind, Result};

/// Publishes awaiting their acknowledgement at once; below async-nats's own limit (5,000),
/// past which a publish would wait for a permit held by an acknowledgement not yet awaited.
pub(crate) const WINDOW: usize = 1024;

pub(crate) struct NatsSink {
    jetstream: jetstream::Context,
    subject: String,
}

fn broker_error(
    context: String,
    error: impl std::error::Error + Send + Sync + 'static,
) -> ArchiveError {
    ArchiveError::with_source(ArchiveErrorKind::Broker, context, error)
}

impl NatsSink {
    pub async fn open(url: &str, subject: &str, needs: &Needs) -> Result<NatsSink> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|error| broker_error(format!("nats: cannot connect to {url}"), error))?;
        let max_payload = client.server_info().max_payload;
        if let Some((position, size)) = &needs.largest
            && *size > max_payload
        {
            return Err(ArchiveError::invalid(format!(
                "nats: message {position} takes {size} bytes with its headers, more than the \
                 {max_payload} bytes {url} accepts (its max_payload)"
            )));
        }
        let jetstream = jetstream::new(client);
        match jetstream.stream_by_subject(subject).await {
            Ok(_) => {}
            Err(error) if matches!(error.kind(), GetStreamByNameErrorKind::NotFound) => {
                if !needs.create {
                    return Err(ArchiveError::new(
                        ArchiveErrorKind::NotFound,
                        format!(
                            "subject {subject} is captured by no JetStream stream on {url}; \
                             create one or pass --create"
                        ),
                    ));
                }
                let name = subject.replace('.', "_");
                jetstream
                    .create_stream(stream::Config {
                        name: name.clone(),
                        subjects: vec![subject.to_owned()],
                        ..Default::default()
                    })
                    .await
                    .map_err(|error| {
                        broker_error(
                            format!("nats: creating stream {name} for subject {subject} on {url}"),
                            error,
                        )
                    })?;
                tracing::info!(stream = name, subject, "nats: created the replay stream");
            }
            Err(error) => {
                return Err(broker_error(
                    format!("nats: finding the JetStream stream of subject {subject} on {url}"),
                    error,
                ));
            }
        }
        Ok(NatsSink {
            jetstream,
            subject: subject.to_owned(),
        })
    }

    /// Creates durable consumer `group` on the subject's stream, starting at the translated
    /// sequence (the position of partition 0: a stream has one sequence). An existing
    /// consumer of that name is refused, never moved.
    pub async fn set_group_offsets(
        &self,
        group: &str,
        positions: &std::collections::BTreeMap<i32, i64>,
    ) -> Result<()> {
        let Some(&start) = positions.get(&0) else {
            return Ok(());
        };
        let subject = &self.subject;
        self.check_group_free(group)
            .await?
            .create_consumer(pull::Config {
                durable_name: Some(group.to_owned()),
                filter_subject: subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: u64::try_from(start.max(1)).unwrap_or(1),
                },
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .map_err(|error| {
                broker_error(
                    format!("nats: creating consumer {group} on {subject}"),
                    error,
                )
            })?;
        Ok(())
    }

    /// The subject's stream, after checking it has no consumer named `group` (checked before
    /// the first message is sent, and again before the consumer is created).
    pub async fn check_group_free(&self, group: &str) -> Result<stream::Stream> {
        let subject = &self.subject;
        let name = self
            .jetstream
            .stream_by_subject(subject.as_str())
            .await
            .map_err(|error| broker_error(format!("nats: the stream of {subject}"), error))?;
        let stream = self
            .jetstream
            .get_stream(&name)
            .await
            .map_err(|error| broker_error(format!("nats: the stream of {subject}"), error))?;
        if stream.consumer_info(group).await.is_ok() {
            return Err(ArchiveError::invalid(format!(
                "set group offsets {group}: stream {name} (of {subject}) has a consumer {group} \
                 already; delete it first (a consumer's start is fixed when it is created)"
            )));
        }
        Ok(stream)
    }

    pub async fn send(&mut self, outgoing: Outgoing<'_>) -> std::result::Result<Delivery, String> {
        let message = outgoing.message;
        let mut headers = HeaderMap::new();
        for header in &outgoing.headers {
            // Checked before the replay started (`headers::nats_refusal`); still never panic.
            let name: HeaderName = header
                .name
                .parse()
                .map_err(|_| format!("{}: header name {:?}", position(message), header.name))?;
            let value = std::str::from_utf8(header.value.as_deref().unwrap_or_default())
                .ok()
                .and_then(|value| value.parse::<HeaderValue>().ok())
                .ok_or_else(|| format!("{}: header {:?}", position(message), header.name))?;
            headers.append(name, value);
        }
        let payload = Bytes::copy_from_slice(message.payload.as_deref().unwrap_or_default());
        let acknowledgement = self
            .jetstream
            .publish_with_headers(self.subject.clone(), headers, payload)
            .await
            .map_err(|error| error.to_string())?;
        Ok(Box::pin(async move {
            let ack = acknowledgement.await.map_err(|error| error.to_string())?;
            Ok(Delivered {
                partition: None,
                offset: Some(i64::try_from(ack.sequence).unwrap_or(i64::MAX)),
            })
        }))
    }
}
