//! The tracer's counters in Prometheus form: event-seen counts by route and action, span
//! outcomes, queue gauges. Encoded at scrape time from the atomics the hot path already keeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::tracer::Inner;

/// Adapts a tracer to `prometheus-client`'s collector interface.
#[derive(Clone)]
pub(crate) struct TracerCollector(pub Arc<Inner>);

impl std::fmt::Debug for TracerCollector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TracerCollector")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Vec<(&str, &str)>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family =
        encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (labels, value) in series {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl prometheus_client::collector::Collector for TracerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let inner = &self.0;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut routes = inner.routes();
        routes.sort_by(|a, b| {
            (&a.event_type, &a.stream, a.broker.as_str()).cmp(&(
                &b.event_type,
                &b.stream,
                b.broker.as_str(),
            ))
        });
        let mut events = Vec::new();
        let guard = inner.count_lock.lock();
        for route in &routes {
            for (action, counter) in [("produced", &route.produced), ("consumed", &route.consumed)]
            {
                let value = counter.total();
                if value > 0 {
                    events.push((
                        vec![
                            ("service", inner.service.as_str()),
                            ("event_type", route.event_type.as_str()),
                            ("action", action),
                            ("broker", route.broker.as_str()),
                            ("stream", route.stream.as_str()),
                        ],
                        value,
                    ));
                }
            }
        }
        drop(guard);
        counter(
            &mut encoder,
            "muninn_sdk_events",
            "Events produced or consumed, sampled or not",
            &events,
        )?;
        let counters = &inner.counters;
        let service = ("service", inner.service.as_str());
        counter(
            &mut encoder,
            "muninn_sdk_spans_exported",
            "Spans the collector acknowledged",
            &[(vec![service], load(&counters.exported))],
        )?;
        counter(
            &mut encoder,
            "muninn_sdk_spans_dropped",
            "Spans dropped, by reason",
            &[
                (
                    vec![service, ("reason", "queue_full")],
                    load(&inner.queue.dropped_full),
                ),
                (
                    vec![service, ("reason", "export_failed")],
                    load(&counters.dropped_export_failed),
                ),
                (
                    vec![service, ("reason", "rejected")],
                    load(&counters.dropped_rejected),
                ),
                (
                    vec![service, ("reason", "shutdown")],
                    load(&counters.dropped_shutdown),
                ),
            ],
        )?;
        counter(
            &mut encoder,
            "muninn_sdk_export_failures",
            "Export requests that failed (each retry counts)",
            &[(vec![service], load(&counters.export_attempts_failed))],
        )?;
        counter(
            &mut encoder,
            "muninn_sdk_counts_dropped",
            "Events whose seen-counts could not be delivered",
            &[(vec![service], load(&counters.counts_dropped))],
        )?;
        counter(
            &mut encoder,
            "muninn_sdk_sampling_config_updates",
            "Sampling configs received from the collector",
            &[(vec![service], load(&counters.config_updates))],
        )?;
        gauge(
            &mut encoder,
            "muninn_sdk_queue_spans",
            "Spans waiting for export",
            inner.queue.len() as i64,
        )?;
        gauge(
            &mut encoder,
            "muninn_sdk_queue_bytes",
            "Estimated bytes of spans waiting for export",
            inner.queue.bytes() as i64,
        )?;
        Ok(())
    }
}

/// The tracer's metrics as Prometheus text (exposition format with `# EOF`).
pub(crate) fn encode(inner: &Arc<Inner>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(TracerCollector(inner.clone())));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}
