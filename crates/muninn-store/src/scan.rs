//! Search over stored spans, for the trace-search APIs (Jaeger, Zipkin): the most recent
//! traces with a span that matches a time range, pushed-down column predicates (service,
//! name, duration) and an optional filter on whole spans; and the distinct (service, name,
//! kind) seen in a time range.
//!
//! Memory (the head and heads being flushed) is read from a snapshot of its span batches;
//! blocks are read newest first, only those whose time range overlaps the query, and the scan
//! stops as soon as no older block can change the answer. Whole traces are then fetched with
//! `Store::spans_by_trace_id` by the caller.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use futures::StreamExt;
use muninn_model::{Span, SpanKind, TraceId};

use crate::block::{SpanFields, SpanSelection};
use crate::engine::{Lookup, Store, read_blocks};

/// What a trace search looks for. A span matches when it starts in
/// `[from_unix_nanos, to_unix_nanos)` and every predicate that is set holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanQuery {
    pub from_unix_nanos: i64,
    pub to_unix_nanos: i64,
    /// Exactly this service.
    pub service: Option<String>,
    /// Exactly this span name.
    pub name: Option<String>,
    /// Duration at least this (inclusive).
    pub min_duration_nanos: Option<i64>,
    /// Duration at most this (inclusive).
    pub max_duration_nanos: Option<i64>,
    /// At most this many traces are returned.
    pub max_traces: usize,
}

impl SpanQuery {
    /// Every span in `[from, to)`, at most `max_traces` traces.
    pub fn new(from_unix_nanos: i64, to_unix_nanos: i64, max_traces: usize) -> Self {
        SpanQuery {
            from_unix_nanos,
            to_unix_nanos,
            service: None,
            name: None,
            min_duration_nanos: None,
            max_duration_nanos: None,
            max_traces,
        }
    }

    pub(crate) fn matches_columns(&self, span: &Span) -> bool {
        span.start_unix_nanos >= self.from_unix_nanos
            && span.start_unix_nanos < self.to_unix_nanos
            && self
                .service
                .as_ref()
                .is_none_or(|service| span.service == service)
            && self.name.as_ref().is_none_or(|name| span.name == name)
            && self
                .min_duration_nanos
                .is_none_or(|min| span.duration_nanos >= min)
            && self
                .max_duration_nanos
                .is_none_or(|max| span.duration_nanos <= max)
    }
}

/// A filter on whole spans, applied after the column predicates (tags, for instance).
pub type SpanFilter<'a> = &'a (dyn Fn(&Span) -> bool + Send + Sync);

/// One trace found: its id and the start of its most recent matching span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHit {
    pub trace_id: TraceId,
    pub latest_start_unix_nanos: i64,
}

/// The traces found, most recent first (ties by trace id), and the blocks that could not be
/// read (the answer may miss traces from them).
#[derive(Debug, Default)]
pub struct TraceSearch {
    pub traces: Vec<TraceHit>,
    pub unreadable_blocks: Vec<String>,
}

/// A (service, span name, kind) seen in the stored spans.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
}

/// The operations seen in a time range, sorted, and the blocks that could not be read.
#[derive(Debug, Default)]
pub struct OperationCatalog {
    pub operations: Vec<Operation>,
    pub unreadable_blocks: Vec<String>,
}

/// What a block search gives: whole spans when the caller filters them further, or only the
/// trace id and start time of each matching row.
enum ScannedRows {
    Spans(Vec<Span>),
    Starts(Vec<(TraceId, i64)>),
}

/// The most recent start per trace; keeps the answer's invariants in one place.
#[derive(Default)]
struct Hits {
    latest: HashMap<TraceId, i64>,
}

impl Hits {
    fn add(&mut self, trace_id: TraceId, start: i64) {
        self.latest
            .entry(trace_id)
            .and_modify(|latest| *latest = (*latest).max(start))
            .or_insert(start);
    }

    /// Adds one block's matching rows. Only its most recent rows can be in the answer: when
    /// the `4 × max_traces` latest of them already name `max_traces` traces, every older row
    /// starts before that many traces of this block alone, so it is left out.
    fn add_block(&mut self, mut starts: Vec<(TraceId, i64)>, max_traces: usize) {
        let keep = max_traces.saturating_mul(4);
        if max_traces > 0 && starts.len() > keep {
            starts.select_nth_unstable_by(keep - 1, |left, right| right.1.cmp(&left.1));
            let latest = &starts[..keep];
            let distinct: HashSet<TraceId> = latest.iter().map(|(trace_id, _)| *trace_id).collect();
            if distinct.len() >= max_traces {
                // The cut is at the oldest row kept; rows that tie with it are kept as well.
                let cut = latest
                    .iter()
                    .map(|(_, start)| *start)
                    .min()
                    .unwrap_or(i64::MIN);
                starts.retain(|(_, start)| *start >= cut);
            }
        }
        for (trace_id, start) in starts {
            self.add(trace_id, start);
        }
    }

    /// The start of the `n`-th most recent trace, when there are at least `n`.
    fn nth_latest(&self, n: usize) -> Option<i64> {
        if n == 0 || self.latest.len() < n {
            return None;
        }
        let mut starts: Vec<i64> = self.latest.values().copied().collect();
        let (_, nth, _) = starts.select_nth_unstable_by(n - 1, |left, right| right.cmp(left));
        Some(*nth)
    }

    fn into_sorted(self, limit: usize) -> Vec<TraceHit> {
        let mut traces: Vec<TraceHit> = self
            .latest
            .into_iter()
            .map(|(trace_id, latest_start_unix_nanos)| TraceHit {
                trace_id,
                latest_start_unix_nanos,
            })
            .collect();
        traces.sort_by(|left, right| {
            right
                .latest_start_unix_nanos
                .cmp(&left.latest_start_unix_nanos)
                .then(left.trace_id.cmp(&right.trace_id))
        });
        traces.truncate(limit);
        traces
    }
}

impl Store {
    /// The most recent traces (at most `query.max_traces`) that hold a span matching `query`
    /// and, when given, `filter`. Reads memory, then the overlapping blocks newest first,
    /// stopping when no older block could hold a more recent match.
    pub async fn find_traces(
        &self,
        query: &SpanQuery,
        filter: Option<SpanFilter<'_>>,
    ) -> TraceSearch {
        let mut search = TraceSearch::default();
        if query.max_traces == 0 || query.from_unix_nanos >= query.to_unix_nanos {
            return search;
        }
        let snapshot = self.snapshot();
        let mut hits = Hits::default();
        let mut in_memory: Vec<(TraceId, i64)> = Vec::new();
        for batch in &snapshot.batches {
            match batch.trace_starts(query, filter) {
                Ok(found) => in_memory.extend(found),
                Err(error) => search.unreadable_blocks.push(format!("memory: {error}")),
            }
        }
        hits.add_block(in_memory, query.max_traces);
        let mut blocks: Vec<_> = snapshot
            .blocks
            .into_iter()
            .filter(|handle| {
                handle.meta.n_spans > 0
                    && handle.meta.max_time_unix_nanos >= query.from_unix_nanos
                    && handle.meta.min_time_unix_nanos < query.to_unix_nanos
            })
            .collect();
        blocks.sort_by(|left, right| {
            right
                .meta
                .max_time_unix_nanos
                .cmp(&left.meta.max_time_unix_nanos)
                .then(left.meta.block_id.cmp(&right.meta.block_id))
        });
        let object_store = &snapshot.object_store;
        // Once `max_traces` traces are known, a row that starts before the last of them cannot
        // change the answer (a trace's latest start only grows), so each block read from then
        // on asks only for rows from there: the row filter drops the rest before their trace
        // ids (and, with a filter, their other columns) are decoded.
        let floor = AtomicI64::new(hits.nth_latest(query.max_traces).unwrap_or(i64::MIN));
        let floor = &floor;
        let whole_spans = filter.is_some();
        let limit = crate::time_limit::TimeLimit::current();
        let limit = limit.as_ref();
        let mut results = futures::stream::iter(blocks)
            .map(|handle| {
                let mut query = query.clone();
                query.from_unix_nanos = query.from_unix_nanos.max(floor.load(Ordering::Relaxed));
                let object_store = object_store.clone();
                let block = handle.clone();
                // Each block is read by a task of its own, so decoding runs on every core.
                // With a filter on whole spans, the rows are decoded into spans for it;
                // otherwise only their trace ids and start times are read.
                let reading = crate::time_limit::spawn_within_limit(limit, || async move {
                    if whole_spans {
                        block
                            .spans(
                                &object_store,
                                SpanSelection::Matching(Arc::new(query)),
                                SpanFields::All,
                                None,
                            )
                            .await
                            .map(ScannedRows::Spans)
                    } else {
                        block
                            .trace_starts(&object_store, &query)
                            .await
                            .map(ScannedRows::Starts)
                    }
                });
                async move { (handle, reading.await) }
            })
            .buffered(2);
        while let Some((handle, result)) = results.next().await {
            // Every span of this block (and of every later one) starts before its max time.
            if hits
                .nth_latest(query.max_traces)
                .is_some_and(|nth| nth > handle.meta.max_time_unix_nanos)
            {
                break;
            }
            match result {
                Ok(ScannedRows::Spans(spans)) => {
                    let starts: Vec<(TraceId, i64)> = spans
                        .iter()
                        .filter(|span| filter.is_none_or(|filter| filter(span)))
                        .map(|span| (span.trace_id, span.start_unix_nanos))
                        .collect();
                    hits.add_block(starts, query.max_traces);
                }
                Ok(ScannedRows::Starts(starts)) => hits.add_block(starts, query.max_traces),
                Err(error) => {
                    if error.kind != crate::error::StoreErrorKind::TimedOut {
                        tracing::warn!(block = %handle.dir, %error, "block could not be searched");
                    }
                    search
                        .unreadable_blocks
                        .push(format!("{}: {error}", handle.dir));
                }
            }
            if let Some(nth) = hits.nth_latest(query.max_traces) {
                floor.store(nth, Ordering::Relaxed);
            }
        }
        search.traces = hits.into_sorted(query.max_traces);
        search.unreadable_blocks.extend(self.missing_nodes());
        search.unreadable_blocks.sort();
        search
    }

    /// The distinct (service, span name, kind) of the spans in memory that start in
    /// `[from, to)` and of the blocks whose time range overlaps it (a block covers at most
    /// one hour, so the range is honoured to the hour for stored spans).
    pub async fn operations(&self, from_unix_nanos: i64, to_unix_nanos: i64) -> OperationCatalog {
        let snapshot = self.snapshot();
        let mut operations: BTreeSet<Operation> = BTreeSet::new();
        let mut unreadable_memory = Vec::new();
        for batch in &snapshot.batches {
            match batch.operations(from_unix_nanos, to_unix_nanos) {
                Ok(found) => operations.extend(found),
                Err(error) => unreadable_memory.push(format!("memory: {error}")),
            }
        }
        let blocks: Vec<_> = snapshot
            .blocks
            .into_iter()
            .filter(|handle| {
                handle.meta.n_spans > 0
                    && handle.meta.max_time_unix_nanos >= from_unix_nanos
                    && handle.meta.min_time_unix_nanos < to_unix_nanos
            })
            .collect();
        let object_store = &snapshot.object_store;
        let blocks = blocks.into_iter().map(|handle| (handle, ())).collect();
        let (found, unreadable_blocks) = read_blocks(blocks, 4, |handle, ()| {
            let object_store = object_store.clone();
            async move { handle.operations(&object_store).await }
        })
        .await;
        for block_operations in found {
            operations.extend(block_operations.iter().cloned());
        }
        let mut unreadable_blocks = unreadable_blocks;
        unreadable_blocks.extend(unreadable_memory);
        OperationCatalog {
            operations: operations.into_iter().collect(),
            unreadable_blocks,
        }
    }
}

impl Store {
    /// Every span of the given traces, from memory and blocks, each once, ordered by start
    /// time: one pass over memory and one filtered read per block, however many traces;
    /// `fields` says which fields are read from blocks.
    pub async fn spans_by_trace_ids(
        &self,
        traces: &HashSet<TraceId>,
        fields: SpanFields,
    ) -> Lookup {
        self.lookup(
            SpanSelection::Traces(Arc::new(traces.clone())),
            fields,
            |span| traces.contains(&span.trace_id),
        )
        .await
    }
}

/// What a scan reads, taken at one moment: the span batches in memory (head and heads being
/// flushed; cheap to take, they are shared) and the committed blocks.
pub(crate) struct Snapshot {
    pub batches: Vec<Arc<crate::engine::HeadBatch>>,
    pub blocks: Vec<Arc<crate::block::BlockHandle>>,
    pub object_store: Arc<dyn object_store::ObjectStore>,
    /// The blocks' bytes on local disk (their directory, or a remote store's local copies),
    /// for reads that need no object store call of their own (`engine/lookup.rs`).
    pub local_blocks: Option<Arc<dyn crate::fs::LocalReads>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StoreConfig;
    use muninn_model::{AttributeValue, EventColumns, SpanId, Status};

    const HOUR: i64 = 3_600_000_000_000;

    fn span(trace: u8, span: u8, service: &str, name: &str, start: i64, duration: i64) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([span; 8]),
            parent_span_id: None,
            name: name.into(),
            kind: SpanKind::Server,
            service: service.into(),
            resource: muninn_model::empty_resource(),
            start_unix_nanos: start,
            duration_nanos: duration,
            status: Status::default(),
            attributes: vec![(
                "tier".into(),
                AttributeValue::String(format!("t{trace}").into()),
            )],
            links: Vec::new(),
            event: EventColumns::default(),
        }
    }

    /// Traces 1..=6, one hour apart, half in blocks and half in memory: the search finds the
    /// same traces either way, most recent first, with every predicate applied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn search_over_blocks_that_overlap_in_time_equals_a_search_of_every_span() {
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.retention = None;
        let store = Store::open(config).await.unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let now = muninn_model::now_unix_nanos();
        let base = now - HOUR / 2;
        let mut all = Vec::new();
        // Five blocks and memory, every one spread over the same half hour; traces have spans
        // in several of them, and many spans share a start (ties are broken by trace id).
        for part in 0..6 {
            let spans: Vec<Span> = (0..400)
                .map(|index| {
                    let mut one = span(0, 0, ["a", "b"][index % 2], "work", 0, 1000);
                    one.trace_id = TraceId([rng.random_range(0..120u8); 16]);
                    one.span_id = SpanId([part, (index / 256) as u8, index as u8, 0, 0, 0, 0, 1]);
                    one.start_unix_nanos = base + rng.random_range(0..40) * 1_000_000_000;
                    one
                })
                .collect();
            all.extend(spans.clone());
            store.append(spans, Vec::new()).await.unwrap();
            if part < 5 {
                store.flush().await.unwrap();
            }
        }
        for max_traces in [1, 3, 20, 200] {
            for service in [None, Some("a".to_owned())] {
                let query = SpanQuery {
                    service: service.clone(),
                    ..SpanQuery::new(base, now, max_traces)
                };
                let mut latest: HashMap<TraceId, i64> = HashMap::new();
                for one in all.iter().filter(|one| query.matches_columns(one)) {
                    let entry = latest.entry(one.trace_id).or_insert(i64::MIN);
                    *entry = (*entry).max(one.start_unix_nanos);
                }
                let mut expected: Vec<(i64, TraceId)> = latest
                    .into_iter()
                    .map(|(trace, start)| (start, trace))
                    .collect();
                expected.sort_by(|left, right| right.0.cmp(&left.0).then(left.1.cmp(&right.1)));
                expected.truncate(max_traces);
                let found: Vec<(i64, TraceId)> = store
                    .find_traces(&query, None)
                    .await
                    .traces
                    .iter()
                    .map(|hit| (hit.latest_start_unix_nanos, hit.trace_id))
                    .collect();
                assert_eq!(found, expected, "{max_traces} traces of {service:?}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn search_reads_memory_and_blocks_alike() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.retention = None;
        let store = Store::open(config).await.unwrap();
        let now = muninn_model::now_unix_nanos();
        let base = now - 10 * HOUR;
        let spans = |traces: std::ops::RangeInclusive<u8>| -> Vec<Span> {
            traces
                .map(|trace| {
                    let service = if trace % 2 == 0 { "even" } else { "odd" };
                    span(
                        trace,
                        trace,
                        service,
                        "work",
                        base + i64::from(trace) * HOUR,
                        i64::from(trace) * 1000,
                    )
                })
                .collect()
        };
        store.append(spans(1..=3), Vec::new()).await.unwrap();
        store.flush().await.unwrap();
        store.append(spans(4..=6), Vec::new()).await.unwrap();
        let ids = |search: TraceSearch| -> Vec<u8> {
            search.traces.iter().map(|hit| hit.trace_id.0[0]).collect()
        };
        let all = SpanQuery::new(base, now, 10);
        assert_eq!(ids(store.find_traces(&all, None).await), [6, 5, 4, 3, 2, 1]);
        let limited = SpanQuery {
            max_traces: 4,
            ..all.clone()
        };
        assert_eq!(ids(store.find_traces(&limited, None).await), [6, 5, 4, 3]);
        let odd = SpanQuery {
            service: Some("odd".into()),
            ..all.clone()
        };
        assert_eq!(ids(store.find_traces(&odd, None).await), [5, 3, 1]);
        let durations = SpanQuery {
            min_duration_nanos: Some(2000),
            max_duration_nanos: Some(5000),
            ..all.clone()
        };
        assert_eq!(ids(store.find_traces(&durations, None).await), [5, 4, 3, 2]);
        let window = SpanQuery::new(base + 2 * HOUR, base + 5 * HOUR, 10);
        assert_eq!(ids(store.find_traces(&window, None).await), [4, 3, 2]);
        let tier: SpanFilter<'_> = &|span: &Span| {
            span.attributes
                .iter()
                .any(|(_, value)| matches!(value, AttributeValue::String(text) if text == "t2" || text == "t5"))
        };
        assert_eq!(ids(store.find_traces(&all, Some(tier)).await), [5, 2]);
        let named = SpanQuery {
            name: Some("other".into()),
            ..all.clone()
        };
        assert!(store.find_traces(&named, None).await.traces.is_empty());

        // Whole traces by id, from a block and from memory at once.
        let wanted: HashSet<TraceId> = [TraceId([1; 16]), TraceId([5; 16]), TraceId([9; 16])]
            .into_iter()
            .collect();
        let lookup = store.spans_by_trace_ids(&wanted, SpanFields::All).await;
        let found: Vec<u8> = lookup.spans.iter().map(|span| span.trace_id.0[0]).collect();
        assert_eq!(found, [1, 5]);
        assert!(lookup.unreadable_blocks.is_empty());

        let catalog = store.operations(base, now).await;
        let services: Vec<&str> = catalog
            .operations
            .iter()
            .map(|operation| operation.service.as_str())
            .collect();
        assert_eq!(services, ["even", "odd"]);
        assert!(catalog.unreadable_blocks.is_empty());
        // Only the (hourly) blocks and memory that overlap the range count.
        let early = store.operations(base, base + HOUR + 1).await;
        assert_eq!(early.operations.len(), 1);
        assert_eq!(early.operations[0].service, "odd");
    }
}
