//! Roll-up aggregation: the unique (service, action, stream, broker, event type) edges of the
//! lineage with their counts, and throughput series. A minute's count for one edge is the
//! larger of the spans received and the events the service counted itself, so exact unsampled
//! counts win when a service sends them and spans count otherwise.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use muninn_model::{Action, Broker, NANOS_PER_SECOND, format_rfc3339_nanos};
use muninn_store::{RollupEdge, Rollups, Store};
use serde::Serialize;

use crate::pattern::NamePattern;

/// `[from, to)` in unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from_unix_nanos: i64,
    pub to_unix_nanos: i64,
}

/// Optional filters; `None` matches everything. Names are patterns (`order.*`), so one filter
/// can select a whole domain; a name without wildcards matches only itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub event_type: Option<NamePattern>,
    pub service: Option<NamePattern>,
    pub stream: Option<NamePattern>,
    pub action: Option<Action>,
}

impl Filter {
    /// Whether `edge` passes every filter.
    pub(crate) fn matches(&self, edge: &EdgeKey) -> bool {
        self.matches_apart_from_service(edge)
            && self
                .service
                .as_ref()
                .is_none_or(|service| service.matches(&edge.service))
    }

    /// Whether `edge` passes the event type, stream and action filters.
    fn matches_apart_from_service(&self, edge: &EdgeKey) -> bool {
        self.event_type
            .as_ref()
            .is_none_or(|event_type| event_type.matches(&edge.event_type))
            && self
                .stream
                .as_ref()
                .is_none_or(|stream| stream.matches(&edge.stream))
            && self.action.is_none_or(|action| edge.action == action)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct EdgeKey {
    pub service: String,
    pub action: Action,
    pub stream: String,
    pub broker: Broker,
    pub event_type: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct EdgeTotals {
    pub count: u64,
    pub modifies: bool,
    pub schemas: BTreeSet<String>,
    pub first_unix_nanos: i64,
    pub last_unix_nanos: i64,
}

#[derive(Default, Clone, Copy)]
struct MinuteCell {
    spans: u64,
    seen: u64,
}

impl MinuteCell {
    fn count(self) -> u64 {
        self.spans.max(self.seen)
    }
}

/// Aggregates roll-up cells in `range` into edges, then into `fold(minute, edge, count)`.
fn scan_edges(
    store: &Store,
    range: TimeRange,
    mut per_minute: impl FnMut(i64, &EdgeKey, u64),
    mut per_cell: impl FnMut(&EdgeKey, &muninn_model::RollupKey, &muninn_store::RollupCell),
) {
    store.with_rollups(|rollups| {
        let mut current_minute = None;
        let mut minute_cells: HashMap<EdgeKey, MinuteCell> = HashMap::new();
        let mut finish = |minute: i64, cells: &mut HashMap<EdgeKey, MinuteCell>| {
            for (edge, cell) in cells.drain() {
                per_minute(minute, &edge, cell.count());
            }
        };
        rollups.scan(
            range.from_unix_nanos,
            range.to_unix_nanos,
            |minute, key, cell| {
                if current_minute != Some(minute) {
                    if let Some(previous) = current_minute {
                        finish(previous, &mut minute_cells);
                    }
                    current_minute = Some(minute);
                }
                let edge = EdgeKey {
                    service: key.service.to_string(),
                    action: key.action,
                    stream: key.stream.to_string(),
                    broker: key.broker,
                    event_type: key.event_type.to_string(),
                };
                per_cell(&edge, key, cell);
                let entry = minute_cells.entry(edge).or_default();
                entry.spans += cell.spans;
                entry.seen += cell.seen;
            },
        );
        if let Some(previous) = current_minute {
            finish(previous, &mut minute_cells);
        }
    });
}

/// Every edge in `range` with totals, unfiltered. A range covering every minute held (the
/// default "everything retained") reads the roll-ups' per-edge and per-key totals instead of
/// every cell: a week of a large fleet's counts is millions of cells.
pub(crate) fn edge_totals(store: &Store, range: TimeRange) -> BTreeMap<EdgeKey, EdgeTotals> {
    store
        .with_rollups(|rollups| retained_edge_totals(rollups, range))
        .unwrap_or_else(|| scanned_edge_totals(store, range))
}

impl From<&RollupEdge> for EdgeKey {
    fn from(edge: &RollupEdge) -> EdgeKey {
        EdgeKey {
            service: edge.service.to_string(),
            action: edge.action,
            stream: edge.stream.to_string(),
            broker: edge.broker,
            event_type: edge.event_type.to_string(),
        }
    }
}

/// Every edge's totals over everything retained, when `range` covers every minute held (the
/// minutes a scan of `range` would visit: those it overlaps); `None` otherwise.
fn retained_edge_totals(
    rollups: &Rollups,
    range: TimeRange,
) -> Option<BTreeMap<EdgeKey, EdgeTotals>> {
    let minute_of = |unix_nanos: i64| unix_nanos.div_euclid(60 * NANOS_PER_SECOND) * 60;
    let mut totals: BTreeMap<EdgeKey, EdgeTotals> = BTreeMap::new();
    let Some((first, last)) = rollups.minutes_held() else {
        return Some(totals);
    };
    if range.from_unix_nanos >= range.to_unix_nanos
        || minute_of(range.from_unix_nanos) > first
        || minute_of(range.to_unix_nanos - 1) < last
    {
        return None;
    }
    rollups.retained_edges(|edge, count| {
        totals.insert(
            EdgeKey::from(edge),
            EdgeTotals {
                count,
                first_unix_nanos: i64::MAX,
                last_unix_nanos: i64::MIN,
                ..EdgeTotals::default()
            },
        );
    });
    rollups.keys(|key, total| {
        let edge = EdgeKey::from(&RollupEdge::from(key));
        if let Some(entry) = totals.get_mut(&edge) {
            entry.modifies |= key.modified;
            if !key.schema.is_empty() {
                entry.schemas.insert(key.schema.to_string());
            }
            entry.first_unix_nanos = entry.first_unix_nanos.min(total.first_unix_nanos);
            entry.last_unix_nanos = entry.last_unix_nanos.max(total.last_unix_nanos);
        }
    });
    Some(totals)
}

/// Every edge in `range` with totals, from its cells.
fn scanned_edge_totals(store: &Store, range: TimeRange) -> BTreeMap<EdgeKey, EdgeTotals> {
    let mut totals: BTreeMap<EdgeKey, EdgeTotals> = BTreeMap::new();
    let mut details: HashMap<EdgeKey, EdgeTotals> = HashMap::new();
    scan_edges(
        store,
        range,
        |_, edge, count| {
            totals.entry(edge.clone()).or_default().count += count;
        },
        |edge, key, cell| {
            let entry = details.entry(edge.clone()).or_insert_with(|| EdgeTotals {
                first_unix_nanos: i64::MAX,
                last_unix_nanos: i64::MIN,
                ..EdgeTotals::default()
            });
            entry.modifies |= key.modified;
            if !key.schema.is_empty() {
                entry.schemas.insert(key.schema.to_string());
            }
            entry.first_unix_nanos = entry.first_unix_nanos.min(cell.first_unix_nanos);
            entry.last_unix_nanos = entry.last_unix_nanos.max(cell.last_unix_nanos);
        },
    );
    for (edge, total) in &mut totals {
        if let Some(detail) = details.remove(edge) {
            total.modifies = detail.modifies;
            total.schemas = detail.schemas;
            total.first_unix_nanos = detail.first_unix_nanos;
            total.last_unix_nanos = detail.last_unix_nanos;
        }
    }
    totals
}

/// One lineage edge: a service producing to or consuming from a stream, per event type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineageEdge {
    pub service: String,
    pub action: &'static str,
    pub stream: String,
    pub broker: &'static str,
    pub event_type: String,
    pub count: u64,
    /// A consumer that changed the payload at least once.
    pub modifies: bool,
    pub first_seen: String,
    pub last_seen: String,
}

/// The lineage in a time range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lineage {
    pub from: String,
    pub to: String,
    pub edges: Vec<LineageEdge>,
}

/// The lineage edges in `range`. With a service filter, the matching services' own edges and
/// the edges of their streams (one hop up- and downstream: the producers and consumers of what
/// they produce and consume) are kept, so a team's diagram shows who it talks to.
pub fn lineage(store: &Store, range: TimeRange, filter: &Filter) -> Lineage {
    let totals = edge_totals(store, range);
    let service_streams: Option<BTreeSet<(Broker, String, String)>> =
        filter.service.as_ref().map(|_| {
            totals
                .keys()
                .filter(|edge| filter.matches(edge))
                .map(|edge| {
                    (
                        edge.broker,
                        edge.stream.to_string(),
                        edge.event_type.to_string(),
                    )
                })
                .collect()
        });
    let edges = totals
        .iter()
        .filter(|(edge, _)| filter.matches_apart_from_service(edge))
        .filter(|(edge, _)| match (&filter.service, &service_streams) {
            (Some(service), Some(streams)) => {
                service.matches(&edge.service)
                    || streams.contains(&(
                        edge.broker,
                        edge.stream.to_string(),
                        edge.event_type.to_string(),
                    ))
            }
            _ => true,
        })
        .map(|(edge, total)| LineageEdge {
            service: edge.service.to_string(),
            action: edge.action.as_str(),
            stream: edge.stream.to_string(),
            broker: edge.broker.as_str(),
            event_type: edge.event_type.to_string(),
            count: total.count,
            modifies: total.modifies,
            first_seen: format_rfc3339_nanos(total.first_unix_nanos),
            last_seen: format_rfc3339_nanos(total.last_unix_nanos),
        })
        .collect();
    Lineage {
        from: format_rfc3339_nanos(range.from_unix_nanos),
        to: format_rfc3339_nanos(range.to_unix_nanos),
        edges,
    }
}

/// One throughput point: the start of a step and the events counted in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Point {
    pub time: i64,
    pub count: u64,
}

/// Counts over time for one (service, action, stream, broker, event type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    pub service: String,
    pub action: &'static str,
    pub stream: String,
    pub broker: &'static str,
    pub event_type: String,
    pub total: u64,
    /// `time` is unix seconds of the step start; every step in the range is present.
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Throughput {
    pub from: String,
    pub to: String,
    pub step_seconds: i64,
    pub series: Vec<Series>,
}

/// Why a throughput query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThroughputError {
    #[error("step: must be a whole number of minutes (60s, 5m, 1h), got {0}s")]
    Step(i64),
    #[error(
        "step: {n_points} points would be returned; the most is {max}; use a larger step or a shorter range"
    )]
    TooManyPoints { n_points: i64, max: i64 },
    #[error("from: must be before to")]
    EmptyRange,
}

const MAX_POINTS: i64 = 10_000;

/// Throughput series in `range`, one point per `step_seconds`.
pub fn throughput(
    store: &Store,
    range: TimeRange,
    step_seconds: i64,
    filter: &Filter,
) -> Result<Throughput, ThroughputError> {
    if step_seconds < 60 || step_seconds % 60 != 0 {
        return Err(ThroughputError::Step(step_seconds));
    }
    if range.from_unix_nanos >= range.to_unix_nanos {
        return Err(ThroughputError::EmptyRange);
    }
    let first_step = range
        .from_unix_nanos
        .div_euclid(NANOS_PER_SECOND)
        .div_euclid(step_seconds)
        * step_seconds;
    let last_step = (range.to_unix_nanos - 1)
        .div_euclid(NANOS_PER_SECOND)
        .div_euclid(step_seconds)
        * step_seconds;
    let n_points = (last_step - first_step) / step_seconds + 1;
    if n_points > MAX_POINTS {
        return Err(ThroughputError::TooManyPoints {
            n_points,
            max: MAX_POINTS,
        });
    }
    let mut by_edge: BTreeMap<EdgeKey, Vec<u64>> = BTreeMap::new();
    scan_edges(
        store,
        range,
        |minute, edge, count| {
            if !filter.matches(edge) {
                return;
            }
            let step_idx = ((minute.div_euclid(step_seconds) * step_seconds - first_step)
                / step_seconds) as usize;
            let points = by_edge
                .entry(edge.clone())
                .or_insert_with(|| vec![0; n_points as usize]);
            if let Some(point) = points.get_mut(step_idx) {
                *point += count;
            }
        },
        |_, _, _| {},
    );
    let series = by_edge
        .into_iter()
        .map(|(edge, counts)| Series {
            service: edge.service,
            action: edge.action.as_str(),
            stream: edge.stream,
            broker: edge.broker.as_str(),
            event_type: edge.event_type,
            total: counts.iter().sum(),
            points: counts
                .into_iter()
                .enumerate()
                .map(|(step_idx, count)| Point {
                    time: first_step + step_idx as i64 * step_seconds,
                    count,
                })
                .collect(),
        })
        .collect();
    Ok(Throughput {
        from: format_rfc3339_nanos(range.from_unix_nanos),
        to: format_rfc3339_nanos(range.to_unix_nanos),
        step_seconds,
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_model::{EventCount, Span, SpanId, SpanKind, TraceId};
    use muninn_store::StoreConfig;
    use rand::{Rng, SeedableRng};

    fn random_span(rng: &mut impl Rng, at: i64) -> Span {
        let services = ["checkout", "billing", "shipping"];
        let types = ["order.created", "order.paid"];
        let producer = rng.random_bool(0.5);
        Span {
            trace_id: TraceId(rng.random()),
            span_id: SpanId(rng.random()),
            parent_span_id: None,
            name: "orders".into(),
            kind: if producer {
                SpanKind::Producer
            } else {
                SpanKind::Consumer
            },
            service: services[rng.random_range(0..services.len())].into(),
            resource: muninn_model::empty_resource(),
            start_unix_nanos: at,
            duration_nanos: 1_000,
            status: muninn_model::Status::default(),
            attributes: Vec::new(),
            links: Vec::new(),
            event: muninn_model::EventColumns {
                event_id: Some(format!("{:x}", rng.random::<u64>()).into()),
                event_type: Some(types[rng.random_range(0..types.len())].into()),
                schema: Some(["", "v1", "v2"][rng.random_range(0..3)].into())
                    .filter(|schema: &muninn_model::Text| !schema.is_empty()),
                stream: Some("orders".into()),
                broker: Some(Broker::Kafka),
                modified: !producer && rng.random_bool(0.2),
                ..muninn_model::EventColumns::default()
            },
        }
    }

    fn random_count(rng: &mut impl Rng, minute: i64) -> EventCount {
        let services = ["checkout", "billing", "shipping"];
        EventCount {
            service: services[rng.random_range(0..services.len())].into(),
            event_type: "order.created".into(),
            stream: "orders".into(),
            broker: Broker::Kafka,
            action: if rng.random_bool(0.5) {
                Action::Produced
            } else {
                Action::Consumed
            },
            minute_unix_seconds: minute,
            count: rng.random_range(1..20),
        }
    }

    fn same(left: &BTreeMap<EdgeKey, EdgeTotals>, right: &BTreeMap<EdgeKey, EdgeTotals>) -> bool {
        left.len() == right.len()
            && left.iter().zip(right).all(|((a_edge, a), (b_edge, b))| {
                a_edge == b_edge
                    && (
                        a.count,
                        a.modifies,
                        &a.schemas,
                        a.first_unix_nanos,
                        a.last_unix_nanos,
                    ) == (
                        b.count,
                        b.modifies,
                        &b.schemas,
                        b.first_unix_nanos,
                        b.last_unix_nanos,
                    )
            })
    }

    /// Random spans and counts over five hours, some minutes with both, then retention drops
    /// the oldest hours: the totals over everything retained read from the roll-ups' totals are
    /// exactly what a scan of every cell finds, before and after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn whole_retention_totals_equal_a_scan_of_every_cell() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.retention = Some(std::time::Duration::from_secs(3 * 3600));
        let store = Store::open(config).await.unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let hour = 3600 * NANOS_PER_SECOND;
        let now = muninn_model::now_unix_nanos();
        for _ in 0..40 {
            let mut spans = Vec::new();
            let mut counts = Vec::new();
            for _ in 0..50 {
                let at = now - rng.random_range(0..5 * hour);
                if rng.random_bool(0.6) {
                    spans.push(random_span(&mut rng, at));
                } else {
                    counts.push(random_count(&mut rng, at / NANOS_PER_SECOND));
                }
            }
            store.append(spans, counts).await.unwrap();
        }
        let everything = TimeRange {
            from_unix_nanos: 0,
            to_unix_nanos: now + hour,
        };
        let check = |moment: &str| {
            let fast = store
                .with_rollups(|rollups| retained_edge_totals(rollups, everything))
                .expect("a range over every minute held reads the totals");
            let slow = scanned_edge_totals(&store, everything);
            assert!(!slow.is_empty(), "{moment}");
            assert!(same(&fast, &slow), "{moment}: {fast:?} != {slow:?}");
            slow.values().map(|totals| totals.count).sum::<u64>()
        };
        let before = check("before retention");
        store.enforce_retention(now).await.unwrap();
        let after = check("after retention dropped the oldest hours");
        assert!(
            after < before,
            "retention dropped cells: {after} < {before}"
        );
        // A range that leaves out a minute held is scanned.
        let recent = TimeRange {
            from_unix_nanos: now - hour,
            to_unix_nanos: now + hour,
        };
        assert!(
            store
                .with_rollups(|rollups| retained_edge_totals(rollups, recent))
                .is_none()
        );
    }
}
