//! The JetStream recorder's sampler of consumers: every `group_positions_every`, the ack floor
//! of every durable consumer (the recorder's own left out) on every recorded stream, as the
//! group position "next stream sequence to consume" on partition 0, of which the ones that
//! moved are written to the archive (`groups.rs`). A failed sample is logged and counted.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Context;
use futures::TryStreamExt as _;

use crate::archive::Archive;
use crate::groups::GroupPosition;
use crate::layout::check_stream_name;
use crate::message::SourceBroker;
use crate::recorder::RecorderStats;

/// What to sample: the streams matching `patterns`, every durable but `own_durable`.
pub(crate) struct ConsumerSampler {
    pub jetstream: Context,
    pub patterns: Vec<String>,
    pub own_durable: String,
}

impl ConsumerSampler {
    async fn sample(&self) -> Result<Vec<GroupPosition>, String> {
        let names: Vec<String> = self
            .jetstream
            .stream_names()
            .try_collect()
            .await
            .map_err(|error| format!("listing the streams: {error}"))?;
        let time_ms = muninn_model::now_unix_nanos() / 1_000_000;
        let mut positions = Vec::new();
        for name in names {
            let recorded = self
                .patterns
                .iter()
                .any(|pattern| crate::nats::matches(pattern, &name));
            if !recorded || check_stream_name(&name).is_err() {
                continue;
            }
            let stream = self
                .jetstream
                .get_stream(&name)
                .await
                .map_err(|error| format!("stream {name}: {error}"))?;
            let consumers: Vec<async_nats::jetstream::consumer::Info> = stream
                .consumers()
                .try_collect()
                .await
                .map_err(|error| format!("consumers of stream {name}: {error}"))?;
            for consumer in consumers {
                let Some(durable) = consumer.config.durable_name.clone() else {
                    continue;
                };
                if durable == self.own_durable {
                    continue;
                }
                positions.push(GroupPosition {
                    time_ms,
                    broker: SourceBroker::Nats,
                    group: durable,
                    stream: name.clone(),
                    partition: 0,
                    offset: consumer.ack_floor.stream_sequence as i64 + 1,
                });
            }
        }
        Ok(positions)
    }
}

/// Samples every `every` until the recorder aborts the task.
pub(crate) async fn sample_consumers(
    archive: Archive,
    sampler: ConsumerSampler,
    every: Duration,
    stats: Arc<RecorderStats>,
) {
    let sampler = Arc::new(sampler);
    crate::groups::record_samples(archive, every, stats, "nats", move || {
        let sampler = sampler.clone();
        async move { sampler.sample().await }
    })
    .await
}
