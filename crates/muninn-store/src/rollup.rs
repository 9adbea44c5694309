//! Roll-ups kept as data arrives: per minute × (service, stream, broker, event type, schema,
//! action, modified) the number of sampled spans, the number of events seen (from unsampled
//! counts) and the first and last time. Lineage, catalog and throughput read only these.
//! Per lineage edge they also keep a counter that only grows, for `/metrics`. For producer
//! keys that name a schema, each cell also remembers who sent its earliest span (trace and span
//! id, instance, version), so a type's schemas name who sent each first without reading spans.

use std::collections::BTreeMap;

/// Roll-up maps are hashed on every span at ingest: a fast non-cryptographic hasher (keys are
/// not attacker-chosen in a way that matters here: a flood of distinct keys is bounded by the
/// validation limits and costs memory either way).
type HashMap<K, V> = ahash::AHashMap<K, V>;

use muninn_model::{
    Action, AttributeValue, Broker, EventCount, NANOS_PER_SECOND, RollupKey, Span, SpanId, Text,
    TraceId,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One roll-up cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupCell {
    /// Spans received for this key in this minute (sampled).
    pub spans: u64,
    /// Events counted by the services themselves (unsampled), from `/api/v1/counts`.
    pub seen: u64,
    pub first_unix_nanos: i64,
    pub last_unix_nanos: i64,
}

impl RollupCell {
    fn merge(&mut self, other: &RollupCell) {
        self.spans += other.spans;
        self.seen += other.seen;
        self.first_unix_nanos = self.first_unix_nanos.min(other.first_unix_nanos);
        self.last_unix_nanos = self.last_unix_nanos.max(other.last_unix_nanos);
    }
}

/// Who sent the earliest span of a cell (producer keys that name a schema only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstSpan {
    pub at_unix_nanos: i64,
    #[serde(serialize_with = "trace_hex", deserialize_with = "trace_from_hex")]
    pub trace_id: TraceId,
    #[serde(serialize_with = "span_hex", deserialize_with = "span_from_hex")]
    pub span_id: SpanId,
    /// `service.instance.id`, else `host.name`, of the span's resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// `service.version` of the span's resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl FirstSpan {
    /// Who sent `span`: its ids, time, and the instance and version of its resource.
    pub fn of(span: &Span) -> FirstSpan {
        FirstSpan::sent(
            span.start_unix_nanos,
            span.trace_id,
            span.span_id,
            &span.resource,
        )
    }

    /// Who sent the span that started at `at` with these ids, from its resource's attributes.
    pub fn sent(
        at: i64,
        trace_id: TraceId,
        span_id: SpanId,
        resource: &[(Text, AttributeValue)],
    ) -> FirstSpan {
        let resource = |name: &str| {
            resource
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| match value {
                    AttributeValue::String(text) => text.to_string(),
                    AttributeValue::Int(number) => number.to_string(),
                    AttributeValue::Float(number) => number.to_string(),
                    AttributeValue::Bool(flag) => flag.to_string(),
                })
        };
        FirstSpan {
            at_unix_nanos: at,
            trace_id,
            span_id,
            instance: resource("service.instance.id").or_else(|| resource("host.name")),
            version: resource("service.version"),
        }
    }

    fn order(&self) -> (i64, TraceId, SpanId) {
        (self.at_unix_nanos, self.trace_id, self.span_id)
    }

    /// Keeps the earlier of `self` and `other`.
    fn keep_earlier(slot: &mut Option<FirstSpan>, other: Option<&FirstSpan>) {
        if let Some(other) = other
            && slot
                .as_ref()
                .is_none_or(|current| other.order() < current.order())
        {
            *slot = Some(other.clone());
        }
    }
}

fn trace_hex<S: Serializer>(id: &TraceId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&id.to_hex())
}

fn trace_from_hex<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TraceId, D::Error> {
    let text = String::deserialize(deserializer)?;
    TraceId::from_hex(&text).map_err(serde::de::Error::custom)
}

fn span_hex<S: Serializer>(id: &SpanId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&id.to_hex())
}

fn span_from_hex<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SpanId, D::Error> {
    let text = String::deserialize(deserializer)?;
    SpanId::from_hex(&text).map_err(serde::de::Error::custom)
}

/// One cell of a delta: its sums, and for producer keys naming a schema, who sent its earliest
/// span (`None` there means the cell's spans came without it: from blocks written before it
/// was kept).
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaCell {
    pub cell: RollupCell,
    /// Boxed: most cells (every count) have none, and a batch of counts is millions of cells.
    pub first_span: Option<Box<FirstSpan>>,
}

impl DeltaCell {
    fn merge(&mut self, other: &DeltaCell) {
        self.cell.merge(&other.cell);
        if let Some(other) = &other.first_span
            && self
                .first_span
                .as_ref()
                .is_none_or(|current| other.order() < current.order())
        {
            self.first_span = Some(other.clone());
        }
    }
}

/// Whether cells of `key` remember who sent their first span.
fn keeps_first_span(key: &RollupKey) -> bool {
    key.action == Action::Produced && !key.schema.is_empty()
}

/// A lineage edge: a roll-up key without its schema and `modified` flag. A minute's count for
/// an edge is `max(spans, seen)` of the cells of its keys in that minute, as in lineage and
/// throughput (muninn-query's `edges.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupEdge {
    pub service: Text,
    pub action: Action,
    pub stream: Text,
    pub broker: Broker,
    pub event_type: Text,
}

impl From<&RollupKey> for RollupEdge {
    fn from(key: &RollupKey) -> RollupEdge {
        RollupEdge {
            service: key.service.clone(),
            action: key.action,
            stream: key.stream.clone(),
            broker: key.broker,
            event_type: key.event_type.clone(),
        }
    }
}

/// One edge's sums over its keys in one minute.
#[derive(Debug, Default, Clone, Copy)]
struct EdgeMinute {
    spans: u64,
    seen: u64,
}

impl EdgeMinute {
    fn count(self) -> u64 {
        self.spans.max(self.seen)
    }
}

/// Roll-up cells of one batch or one flush, keyed by (minute in unix seconds, key).
pub type RollupDelta = HashMap<(i64, RollupKey), DeltaCell>;

pub(crate) fn minute_of(unix_nanos: i64) -> i64 {
    unix_nanos.div_euclid(60 * NANOS_PER_SECOND) * 60
}

/// The roll-up contribution of a batch. Only producer and consumer spans that name a stream
/// count; request spans carry no event.
pub fn batch_delta(spans: &[Span], counts: &[EventCount]) -> RollupDelta {
    // Group with borrowed keys first: a batch has many spans but few distinct keys.
    type BorrowedKey<'a> = (
        i64,
        &'a str,
        &'a str,
        muninn_model::Broker,
        &'a str,
        &'a str,
        muninn_model::Action,
        bool,
    );
    let mut borrowed: HashMap<BorrowedKey<'_>, (RollupCell, Option<&Span>)> = HashMap::new();
    for span in spans {
        let (Some(action), Some(stream)) = (span.action(), span.event.stream.as_deref()) else {
            continue;
        };
        let key = (
            minute_of(span.start_unix_nanos),
            span.service.as_str(),
            stream,
            span.event.broker.unwrap_or(muninn_model::Broker::Other),
            span.event.event_type.as_deref().unwrap_or_default(),
            span.event.schema.as_deref().unwrap_or_default(),
            action,
            span.event.modified,
        );
        let at = span.start_unix_nanos;
        let cell = RollupCell {
            spans: 1,
            seen: 0,
            first_unix_nanos: at,
            last_unix_nanos: at,
        };
        let first = (action == Action::Produced && !key.5.is_empty()).then_some(span);
        borrowed
            .entry(key)
            .and_modify(|(existing, earliest)| {
                existing.merge(&cell);
                if let (Some(span), Some(current)) = (first, earliest.as_mut()) {
                    let order = |span: &Span| (span.start_unix_nanos, span.trace_id, span.span_id);
                    if order(span) < order(current) {
                        *current = span;
                    }
                }
            })
            .or_insert((cell, first));
    }
    let mut delta = RollupDelta::with_capacity(borrowed.len() + counts.len());
    // A batch spread over many minutes has a cell per minute of each key: each key is built
    // once, and its copies share nothing on the heap (texts of up to 24 bytes are inline).
    let mut keys: HashMap<_, RollupKey> = HashMap::new();
    for ((minute, service, stream, broker, event_type, schema, action, modified), (cell, first)) in
        borrowed
    {
        let key = keys
            .entry((
                service, stream, broker, event_type, schema, action, modified,
            ))
            .or_insert_with(|| RollupKey {
                service: service.into(),
                stream: stream.into(),
                broker,
                event_type: event_type.into(),
                schema: schema.into(),
                action,
                modified,
            })
            .clone();
        let cell = DeltaCell {
            cell,
            first_span: first.map(|span| Box::new(FirstSpan::of(span))),
        };
        merge_into(&mut delta, minute, key, &cell);
    }
    for count in counts {
        let minute = count.minute_unix_seconds.div_euclid(60) * 60;
        let key = RollupKey {
            service: count.service.as_str().into(),
            stream: count.stream.as_str().into(),
            broker: count.broker,
            event_type: count.event_type.as_str().into(),
            schema: Text::default(),
            action: count.action,
            modified: false,
        };
        let at = minute * NANOS_PER_SECOND;
        let cell = DeltaCell {
            cell: RollupCell {
                spans: 0,
                seen: count.count,
                first_unix_nanos: at,
                last_unix_nanos: at,
            },
            first_span: None,
        };
        merge_into(&mut delta, minute, key, &cell);
    }
    delta
}

pub(crate) fn merge_into(delta: &mut RollupDelta, minute: i64, key: RollupKey, cell: &DeltaCell) {
    delta
        .entry((minute, key))
        .and_modify(|existing| existing.merge(cell))
        .or_insert_with(|| cell.clone());
}

/// Adds `from` into `into`, moving its keys (no key is cloned: this runs for every append on
/// the WAL thread, under the head's lock).
pub fn merge_delta(into: &mut RollupDelta, from: RollupDelta) {
    if into.is_empty() {
        *into = from;
        return;
    }
    for (minute_key, cell) in from {
        match into.entry(minute_key) {
            std::collections::hash_map::Entry::Occupied(mut existing) => {
                existing.get_mut().merge(&cell)
            }
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(cell);
            }
        }
    }
}

/// All roll-ups in memory: keys are interned, cells ordered by minute so that a time range is
/// one range scan, and each key's totals over everything retained kept as cells come and go,
/// so that questions over the whole retention (a type's consumers and schemas) read the keys
/// only.
#[derive(Debug, Default)]
pub struct Rollups {
    keys: Vec<RollupKey>,
    key_index: HashMap<RollupKey, u32>,
    cells: BTreeMap<(i64, u32), RollupCell>,
    /// Per key (same index): the sums of its retained cells, and its first and last time in
    /// them (after retention drops minutes, the first of its earliest cell left).
    totals: Vec<RollupCell>,
    /// Per key (same index): the index of its edge in `edges`.
    key_edge: Vec<u32>,
    edges: Vec<RollupEdge>,
    edge_index: HashMap<RollupEdge, u32>,
    /// Per (minute, edge): the sums of the edge's cells in that minute, so that applying a cell
    /// knows by how much the minute's `max(spans, seen)` grew.
    edge_minutes: BTreeMap<(i64, u32), EdgeMinute>,
    /// Per edge (same index): events counted since `reset_counters`, growing by every increase
    /// of a minute's `max(spans, seen)`; retention never lowers it.
    counted: Vec<u64>,
    /// Per edge (same index): its lineage count over everything retained (the sum of its
    /// minutes' `max(spans, seen)`), so whole-retention questions read edges, not cells.
    retained: Vec<u64>,
    /// Per (key, minute) of producer keys naming a schema whose cell has spans: who sent the
    /// cell's earliest span (`None`: not known, the cell came from an older block).
    first_spans: BTreeMap<(u32, i64), Option<FirstSpan>>,
}

impl Rollups {
    pub(crate) fn apply(&mut self, delta: &RollupDelta) {
        for ((minute, key), DeltaCell { cell, first_span }) in delta {
            let key_idx = match self.key_index.get(key) {
                Some(key_idx) => *key_idx,
                None => {
                    let key_idx = self.keys.len() as u32;
                    self.keys.push(key.clone());
                    self.key_index.insert(key.clone(), key_idx);
                    self.totals.push(RollupCell {
                        spans: 0,
                        seen: 0,
                        first_unix_nanos: i64::MAX,
                        last_unix_nanos: i64::MIN,
                    });
                    let edge = RollupEdge::from(key);
                    let edge_idx = match self.edge_index.get(&edge) {
                        Some(edge_idx) => *edge_idx,
                        None => {
                            let edge_idx = self.edges.len() as u32;
                            self.edges.push(edge.clone());
                            self.edge_index.insert(edge, edge_idx);
                            self.counted.push(0);
                            self.retained.push(0);
                            edge_idx
                        }
                    };
                    self.key_edge.push(edge_idx);
                    key_idx
                }
            };
            if let Some(total) = self.totals.get_mut(key_idx as usize) {
                total.merge(cell);
            }
            if cell.spans > 0 && keeps_first_span(key) {
                match self.first_spans.entry((key_idx, *minute)) {
                    std::collections::btree_map::Entry::Vacant(vacant) => {
                        vacant.insert(first_span.as_deref().cloned());
                    }
                    std::collections::btree_map::Entry::Occupied(mut occupied) => {
                        FirstSpan::keep_earlier(occupied.get_mut(), first_span.as_deref());
                    }
                }
            }
            if let Some(&edge_idx) = self.key_edge.get(key_idx as usize) {
                let sums = self.edge_minutes.entry((*minute, edge_idx)).or_default();
                let before = sums.count();
                sums.spans += cell.spans;
                sums.seen += cell.seen;
                let grown = sums.count() - before;
                if let Some(counted) = self.counted.get_mut(edge_idx as usize) {
                    *counted += grown;
                }
                if let Some(retained) = self.retained.get_mut(edge_idx as usize) {
                    *retained += grown;
                }
            }
            self.cells
                .entry((*minute, key_idx))
                .and_modify(|existing| existing.merge(cell))
                .or_insert(*cell);
        }
    }

    /// Drops every cell of a minute before `cutoff_minute` (unix seconds).
    pub(crate) fn drop_before(&mut self, cutoff_minute: i64) {
        let kept = self.cells.split_off(&(cutoff_minute, 0));
        let dropped = std::mem::replace(&mut self.cells, kept);
        // The counters keep what they counted: only the per-minute sums behind them go, and
        // with them their share of the retained counts.
        let kept_minutes = self.edge_minutes.split_off(&(cutoff_minute, 0));
        for ((_, edge_idx), sums) in std::mem::replace(&mut self.edge_minutes, kept_minutes) {
            if let Some(retained) = self.retained.get_mut(edge_idx as usize) {
                *retained = retained.saturating_sub(sums.count());
            }
        }
        self.first_spans
            .retain(|(_, minute), _| *minute >= cutoff_minute);
        let mut moved_first: HashMap<u32, ()> = HashMap::new();
        for ((_, key_idx), cell) in dropped {
            if let Some(total) = self.totals.get_mut(key_idx as usize) {
                total.spans = total.spans.saturating_sub(cell.spans);
                total.seen = total.seen.saturating_sub(cell.seen);
                if total.spans == 0 && total.seen == 0 {
                    // Gone: a key that comes back later starts afresh.
                    total.first_unix_nanos = i64::MAX;
                    total.last_unix_nanos = i64::MIN;
                    moved_first.remove(&key_idx);
                } else {
                    moved_first.insert(key_idx, ());
                }
            }
        }
        // A key with cells left is first seen in its earliest cell left: cells are in minute
        // order, so the first one met per key is it (usually in the next minutes).
        for ((_, key_idx), cell) in &self.cells {
            if moved_first.is_empty() {
                break;
            }
            if moved_first.remove(key_idx).is_some()
                && let Some(total) = self.totals.get_mut(*key_idx as usize)
            {
                total.first_unix_nanos = cell.first_unix_nanos;
            }
        }
    }

    /// Visits every key with cells left, with its totals over everything retained.
    pub fn keys(&self, mut visit: impl FnMut(&RollupKey, &RollupCell)) {
        for (key, total) in self.keys.iter().zip(&self.totals) {
            if total.last_unix_nanos >= total.first_unix_nanos
                && (total.spans > 0 || total.seen > 0)
            {
                visit(key, total);
            }
        }
    }

    /// Who sent the earliest retained span of `key` (a producer key naming a schema): the
    /// minute (unix seconds) of the key's earliest retained cell with spans, and its first
    /// span when known (`None` for cells from blocks written before first spans were kept).
    pub fn first_span(&self, key: &RollupKey) -> Option<(i64, Option<&FirstSpan>)> {
        let key_idx = *self.key_index.get(key)?;
        self.first_spans
            .range((key_idx, i64::MIN)..=(key_idx, i64::MAX))
            .next()
            .map(|((_, minute), first)| (*minute, first.as_ref()))
    }

    /// The first and last minute (unix seconds) with cells, when there are any.
    pub fn minutes_held(&self) -> Option<(i64, i64)> {
        let first = self.cells.first_key_value()?.0.0;
        let last = self.cells.last_key_value()?.0.0;
        Some((first, last))
    }

    /// Visits every edge with cells left, with its lineage count over everything retained:
    /// the sum over its minutes of `max(spans, seen)` of its keys' cells in that minute.
    pub fn retained_edges(&self, mut visit: impl FnMut(&RollupEdge, u64)) {
        for (edge, retained) in self.edges.iter().zip(&self.retained) {
            if *retained > 0 {
                visit(edge, *retained);
            }
        }
    }

    /// Visits every cell whose minute lies in `[from_unix_nanos, to_unix_nanos)`, minute-ordered.
    pub fn scan(
        &self,
        from_unix_nanos: i64,
        to_unix_nanos: i64,
        mut visit: impl FnMut(i64, &RollupKey, &RollupCell),
    ) {
        let from_minute = minute_of(from_unix_nanos);
        let to_minute = minute_of(to_unix_nanos.saturating_sub(1)).saturating_add(60);
        if from_minute >= to_minute {
            return;
        }
        for ((minute, key_idx), cell) in self.cells.range((from_minute, 0)..(to_minute, 0)) {
            visit(*minute, &self.keys[*key_idx as usize], cell);
        }
    }

    /// Starts every edge's counter again from 0: the store calls this once recovery has
    /// applied what was there before, so the counters count what arrives while it is open.
    pub(crate) fn reset_counters(&mut self) {
        self.counted.iter_mut().for_each(|counted| *counted = 0);
    }

    /// Visits every edge seen since the store opened or retained when it opened (retention
    /// does not remove an edge from here), with the events counted for it since it opened:
    /// each applied cell adds by how much it raised `max(spans, seen)` of its edge's minute,
    /// whatever minute that is. So the counter never decreases, and its increase over a time
    /// is how much the edge's lineage count (the sum of its minutes' `max(spans, seen)`) grew
    /// from the data that arrived in that time.
    pub fn edge_counters(&self, mut visit: impl FnMut(&RollupEdge, u64)) {
        for (edge, counted) in self.edges.iter().zip(&self.counted) {
            visit(edge, *counted);
        }
    }

    /// Number of cells held.
    pub fn n_cells(&self) -> usize {
        self.cells.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_spans_share_cells_by_minute() {
        let count = EventCount {
            service: "billing".into(),
            event_type: "invoice.created".into(),
            stream: "invoices".into(),
            broker: Broker::Kafka,
            action: Action::Produced,
            minute_unix_seconds: 1_795_000_000,
            count: 7,
        };
        let delta = batch_delta(&[], &[count.clone(), count]);
        assert_eq!(delta.len(), 1);
        let ((minute, _), cell) = delta.iter().next().unwrap();
        assert_eq!(*minute, 1_794_999_960);
        assert_eq!(cell.cell.seen, 14);
        let mut rollups = Rollups::default();
        rollups.apply(&delta);
        let mut visited = 0;
        rollups.scan(
            1_794_999_960 * NANOS_PER_SECOND,
            1_795_000_000 * NANOS_PER_SECOND,
            |_, _, cell| visited += cell.seen,
        );
        assert_eq!(visited, 14);
        let mut totals = Vec::new();
        rollups.keys(|key, total| totals.push((key.service.to_string(), total.seen)));
        assert_eq!(totals, vec![("billing".to_owned(), 14)]);
        rollups.drop_before(1_795_000_020);
        assert_eq!(rollups.n_cells(), 0);
        let mut left = 0;
        rollups.keys(|_, _| left += 1);
        assert_eq!(
            left, 0,
            "a key whose cells are all dropped is gone from the totals"
        );
    }

    fn order_key(service: &str, action: Action, schema: &str, modified: bool) -> RollupKey {
        RollupKey {
            service: service.into(),
            stream: "orders".into(),
            broker: Broker::Kafka,
            event_type: "order.created".into(),
            schema: schema.into(),
            action,
            modified,
        }
    }

    fn one_cell(minute: i64, key: RollupKey, spans: u64, seen: u64) -> RollupDelta {
        let at = minute * NANOS_PER_SECOND;
        let cell = DeltaCell {
            cell: RollupCell {
                spans,
                seen,
                first_unix_nanos: at,
                last_unix_nanos: at,
            },
            first_span: None,
        };
        RollupDelta::from_iter([((minute, key), cell)])
    }

    fn counters(rollups: &Rollups) -> Vec<(String, Action, u64)> {
        let mut counters = Vec::new();
        rollups.edge_counters(|edge, counted| {
            counters.push((edge.service.to_string(), edge.action, counted))
        });
        counters.sort();
        counters
    }

    #[test]
    fn edge_counters_grow_with_each_minutes_max_of_spans_and_seen_and_never_go_down() {
        let (first_minute, second_minute) = (1_794_999_960, 1_795_000_020);
        let checkout = |schema, modified| order_key("checkout", Action::Produced, schema, modified);
        let billing = order_key("billing", Action::Consumed, "", false);
        let mut rollups = Rollups::default();
        // One edge, two keys (schemas, modified): their spans add up within the minute.
        rollups.apply(&one_cell(first_minute, checkout("v1", false), 3, 0));
        rollups.apply(&one_cell(first_minute, checkout("v2", true), 2, 0));
        assert_eq!(
            counters(&rollups),
            [("checkout".into(), Action::Produced, 5)]
        );
        // The service's own count: below the 5 spans it adds nothing, above them the difference.
        rollups.apply(&one_cell(first_minute, checkout("", false), 0, 4));
        assert_eq!(counters(&rollups)[0].2, 5);
        rollups.apply(&one_cell(first_minute, checkout("", false), 0, 4));
        assert_eq!(counters(&rollups)[0].2, 8);
        rollups.apply(&one_cell(second_minute, checkout("v2", false), 1, 0));
        rollups.apply(&one_cell(second_minute, billing.clone(), 0, 7));
        let expected = [
            ("billing".to_owned(), Action::Consumed, 7),
            ("checkout".to_owned(), Action::Produced, 9),
        ];
        assert_eq!(counters(&rollups), expected);
        // The same as lineage's count: the sum of each minute's max(spans, seen) per edge.
        let mut per_minute: BTreeMap<(i64, String), (u64, u64)> = BTreeMap::new();
        rollups.scan(0, i64::MAX, |minute, key, cell| {
            let sums = per_minute
                .entry((minute, key.service.to_string()))
                .or_default();
            sums.0 += cell.spans;
            sums.1 += cell.seen;
        });
        let checkout_lineage_count: u64 = per_minute
            .iter()
            .filter(|((_, service), _)| service == "checkout")
            .map(|(_, (spans, seen))| *spans.max(seen))
            .sum();
        assert_eq!(checkout_lineage_count, 9);

        // Retention drops the first minute: the totals go down, the counters do not.
        rollups.drop_before(second_minute);
        let mut checkout_spans_retained = 0;
        rollups.keys(|key, total| {
            if key.service == "checkout" {
                checkout_spans_retained += total.spans;
            }
        });
        assert_eq!(checkout_spans_retained, 1);
        assert_eq!(counters(&rollups), expected);
        rollups.drop_before(second_minute + 60);
        assert_eq!(
            counters(&rollups),
            expected,
            "an edge with nothing retained keeps its counter"
        );
        rollups.apply(&one_cell(second_minute + 60, billing, 1, 0));
        assert_eq!(counters(&rollups)[0].2, 8);

        // Reopening a store starts the counters again, edges kept (Prometheus sees a restart).
        rollups.reset_counters();
        assert_eq!(
            counters(&rollups),
            [
                ("billing".to_owned(), Action::Consumed, 0),
                ("checkout".to_owned(), Action::Produced, 0),
            ]
        );
    }

    fn producer_span(trace: u8, instance: &str, schema: &str, at: i64) -> Span {
        Span {
            trace_id: muninn_model::TraceId([trace; 16]),
            span_id: muninn_model::SpanId([trace; 8]),
            parent_span_id: None,
            name: "orders publish".into(),
            kind: muninn_model::SpanKind::Producer,
            service: "checkout".into(),
            resource: vec![
                (
                    "service.instance.id".into(),
                    AttributeValue::String(instance.into()),
                ),
                ("service.version".into(), AttributeValue::Int(7)),
            ]
            .into(),
            start_unix_nanos: at,
            duration_nanos: 1_000,
            status: muninn_model::Status::default(),
            attributes: Vec::new(),
            links: Vec::new(),
            event: muninn_model::EventColumns {
                event_type: Some("order.created".into()),
                schema: (!schema.is_empty()).then(|| schema.into()),
                stream: Some("orders".into()),
                broker: Some(Broker::Kafka),
                ..muninn_model::EventColumns::default()
            },
        }
    }

    #[test]
    fn each_schema_key_remembers_who_sent_its_earliest_retained_span() {
        let minute = 1_794_999_960;
        let at = |second: i64| (minute + second) * NANOS_PER_SECOND;
        let v2 = order_key("checkout", Action::Produced, "v2", false);
        let mut rollups = Rollups::default();
        // Within a batch the earliest wins, whatever the order spans came in.
        rollups.apply(&batch_delta(
            &[
                producer_span(3, "checkout-b", "v2", at(50)),
                producer_span(2, "checkout-a", "v2", at(20)),
            ],
            &[],
        ));
        // A later batch with an earlier span of the same minute replaces it; a later one not.
        rollups.apply(&batch_delta(
            &[producer_span(1, "checkout-c", "v2", at(10))],
            &[],
        ));
        rollups.apply(&batch_delta(
            &[producer_span(4, "checkout-d", "v2", at(30))],
            &[],
        ));
        // The next hour's spans, from another instance.
        rollups.apply(&batch_delta(
            &[producer_span(5, "checkout-e", "v2", at(3_600))],
            &[],
        ));
        let (found_minute, first) = rollups.first_span(&v2).unwrap();
        assert_eq!(found_minute, minute);
        let first = first.unwrap();
        assert_eq!(first.instance.as_deref(), Some("checkout-c"));
        assert_eq!(first.version.as_deref(), Some("7"));
        assert_eq!((first.at_unix_nanos, first.trace_id.0[0]), (at(10), 1));
        // Keys without a schema, and counts, keep no first span.
        rollups.apply(&batch_delta(
            &[producer_span(6, "checkout-f", "", at(0))],
            &[],
        ));
        assert_eq!(
            rollups.first_span(&order_key("checkout", Action::Produced, "", false)),
            None
        );
        // Once retention drops the first hour, the next retained cell's sender is the first.
        rollups.drop_before(minute + 3_600);
        let (found_minute, first) = rollups.first_span(&v2).unwrap();
        assert_eq!(found_minute, minute + 3_600);
        assert_eq!(first.unwrap().instance.as_deref(), Some("checkout-e"));
        // A cell from an older block (spans, no first span) says it does not know.
        let older = one_cell(minute + 7_200, v2.clone(), 4, 0);
        rollups.drop_before(minute + 7_200);
        rollups.apply(&older);
        assert_eq!(rollups.first_span(&v2), Some((minute + 7_200, None)));
    }
}
