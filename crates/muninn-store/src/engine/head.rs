//! The head: spans and roll-up cells acknowledged (in the WAL) but not yet in blocks. The WAL
//! thread fills the live head; a flush freezes it (the WAL rotates at the same moment, so a
//! frozen head covers exactly the segments before the new one) and writes it to blocks.
//!
//! Each appended batch is held as the columns the flush writes (`block::HeadColumns`), built
//! by the appender: a span's row there takes about half the memory of the decoded `Span`, the
//! flush sorts and writes the columns without building them again, and a look-up decodes only
//! the rows it selects.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use muninn_model::{EventCount, Span, TraceId};

use arrow::array::RecordBatch;
use muninn_model::SpanKind;

use crate::block::{self, HeadColumns, SpanSelection};
use crate::error::StoreError;
use crate::rollup::{self, RollupDelta};
use crate::scan::{Operation, SpanFilter, SpanQuery};

/// Hashes ids into the keys of `HeadBatch` (per process: keys are never stored).
static KEYS: LazyLock<ahash::RandomState> = LazyLock::new(ahash::RandomState::new);

fn trace_key(trace_id: &TraceId) -> u64 {
    KEYS.hash_one(trace_id.0)
}

fn event_key(event_id: &str) -> u64 {
    KEYS.hash_one(event_id)
}

/// How many spans a batch must hold to be kept as columns. Below it the columns' fixed cost
/// (some 5 KB for the arrays of one batch, whatever its size: the test
/// `small_batches_stay_spans_and_large_ones_take_less_as_columns`) is more than the spans' own
/// memory, so a small batch stays as its spans and the flush builds its columns.
const COLUMNS_FROM_SPANS: usize = 8;

/// An appended batch's spans: as the columns the flush writes, or (small batches) as spans.
#[derive(Debug)]
enum HeldSpans {
    Columns(HeadColumns),
    Rows { spans: Vec<Span>, bytes: u64 },
}

/// One appended batch of spans, with the keys of its trace and event ids sorted, so that a
/// look-up searches only the batches that may hold its ids rather than every span in memory
/// (up to a million under full ingest, most of them cache misses).
#[derive(Debug)]
pub(crate) struct HeadBatch {
    held: HeldSpans,
    trace_keys: Vec<u64>,
    event_keys: Vec<u64>,
    /// The WAL record it came with (set when it enters the head), and the record's counts:
    /// what a query node mirroring this head asks for (`Store::head_since`).
    pub seq: u64,
    pub counts: Vec<EventCount>,
}

impl HeadBatch {
    /// A batch of spans alone.
    #[cfg(test)]
    pub(crate) fn new(spans: Vec<Span>) -> Self {
        HeadBatch::with_counts(spans, Vec::new()).expect("spans a test builds make columns")
    }

    /// A batch of `spans` held as columns (`true`) or as spans, whatever their number.
    #[cfg(test)]
    fn held_as(spans: Vec<Span>, as_columns: bool) -> Self {
        let mut batch = HeadBatch::new(spans.clone());
        batch.held = if as_columns {
            HeldSpans::Columns(block::head_columns(&spans).unwrap())
        } else {
            let bytes = spans.iter().map(|span| span.memory_bytes() as u64).sum();
            HeldSpans::Rows { spans, bytes }
        };
        batch
    }

    /// A WAL record's spans and counts. Fails only where Arrow cannot hold the spans (more
    /// than 2 GiB of one column's text in one record).
    pub(crate) fn with_counts(
        spans: Vec<Span>,
        counts: Vec<EventCount>,
    ) -> Result<Self, StoreError> {
        let mut trace_keys: Vec<u64> = spans.iter().map(|span| trace_key(&span.trace_id)).collect();
        trace_keys.sort_unstable();
        trace_keys.dedup();
        // Sized for every span, so that the keys never take more than 16 bytes a span.
        let mut event_keys: Vec<u64> = Vec::with_capacity(spans.len());
        event_keys.extend(
            spans
                .iter()
                .filter_map(|span| span.event.event_id.as_deref().map(event_key)),
        );
        event_keys.sort_unstable();
        event_keys.dedup();
        let held = if spans.len() >= COLUMNS_FROM_SPANS {
            HeldSpans::Columns(block::head_columns(&spans)?)
        } else {
            let bytes = spans.iter().map(|span| span.memory_bytes() as u64).sum();
            HeldSpans::Rows { spans, bytes }
        };
        Ok(HeadBatch {
            held,
            trace_keys,
            event_keys,
            seq: 0,
            counts,
        })
    }

    /// A WAL record's columns and counts, as recovery reads them back: the keys come from
    /// the columns' ids, so no span is decoded.
    pub(crate) fn from_columns(
        columns: HeadColumns,
        counts: Vec<EventCount>,
    ) -> Result<Self, StoreError> {
        let mut trace_keys = Vec::with_capacity(columns.len());
        columns.for_each_trace_id(|trace_id| trace_keys.push(trace_key(trace_id)))?;
        trace_keys.sort_unstable();
        trace_keys.dedup();
        let mut event_keys = Vec::with_capacity(columns.len());
        columns.for_each_event_id(|event_id| event_keys.push(event_key(event_id)))?;
        event_keys.sort_unstable();
        event_keys.dedup();
        Ok(HeadBatch {
            held: HeldSpans::Columns(columns),
            trace_keys,
            event_keys,
            seq: 0,
            counts,
        })
    }

    /// The batch's roll-up cells: its spans' (read from the columns when it is held as
    /// columns) and its counts'.
    pub(crate) fn rollup_delta(&self) -> Result<RollupDelta, StoreError> {
        match &self.held {
            HeldSpans::Rows { spans, .. } => Ok(rollup::batch_delta(spans, &self.counts)),
            HeldSpans::Columns(columns) => {
                let mut delta = columns.rollup_delta()?;
                if !self.counts.is_empty() {
                    rollup::merge_delta(&mut delta, rollup::batch_delta(&[], &self.counts));
                }
                Ok(delta)
            }
        }
    }

    /// The columns the batch is held as, unless it is held as spans.
    pub(crate) fn columns(&self) -> Option<&HeadColumns> {
        match &self.held {
            HeldSpans::Columns(columns) => Some(columns),
            HeldSpans::Rows { .. } => None,
        }
    }

    /// The spans the batch is held as, unless it is held as columns.
    pub(crate) fn rows(&self) -> Option<&[Span]> {
        match &self.held {
            HeldSpans::Columns(_) => None,
            HeldSpans::Rows { spans, .. } => Some(spans),
        }
    }

    /// How many spans the batch holds.
    pub(crate) fn n_spans(&self) -> usize {
        match &self.held {
            HeldSpans::Columns(columns) => columns.len(),
            HeldSpans::Rows { spans, .. } => spans.len(),
        }
    }

    /// The memory the keys hold, counted with the spans' against the memory bound.
    pub(crate) fn key_bytes(&self) -> u64 {
        ((self.trace_keys.capacity() + self.event_keys.capacity()) * size_of::<u64>()) as u64
    }

    /// The memory the batch holds against the memory bound: its columns (or spans) and keys.
    pub(crate) fn memory_bytes(&self) -> u64 {
        let held = match &self.held {
            HeldSpans::Columns(columns) => columns.memory_bytes(),
            HeldSpans::Rows { bytes, .. } => *bytes,
        };
        held + self.key_bytes()
    }

    /// Every span of the batch, in the order they arrived.
    pub(crate) fn spans(&self) -> Result<Vec<Span>, StoreError> {
        match &self.held {
            HeldSpans::Columns(columns) => columns.spans(),
            HeldSpans::Rows { spans, .. } => Ok(spans.clone()),
        }
    }

    /// The spans `selection` selects that `matches` (which holds for every span the selection
    /// selects, and may hold for others).
    pub(crate) fn select(
        &self,
        selection: &SpanSelection,
        matches: impl Fn(&Span) -> bool,
    ) -> Result<Vec<Span>, StoreError> {
        match &self.held {
            HeldSpans::Columns(columns) => {
                let mut found = columns.select(selection)?;
                found.retain(|span| matches(span));
                Ok(found)
            }
            HeldSpans::Rows { spans, .. } => {
                Ok(spans.iter().filter(|span| matches(span)).cloned().collect())
            }
        }
    }

    /// The trace id and start of every span that matches `query`'s columns and `filter`.
    pub(crate) fn trace_starts(
        &self,
        query: &SpanQuery,
        filter: Option<SpanFilter<'_>>,
    ) -> Result<Vec<(TraceId, i64)>, StoreError> {
        let starts = |spans: &[Span]| {
            spans
                .iter()
                .filter(|span| {
                    query.matches_columns(span) && filter.is_none_or(|filter| filter(span))
                })
                .map(|span| (span.trace_id, span.start_unix_nanos))
                .collect()
        };
        match &self.held {
            // The columns first, as a block's row filter does; whole spans only for a filter.
            HeldSpans::Columns(columns) => match filter {
                None => columns.trace_starts(query),
                Some(_) => Ok(starts(
                    &columns.select(&SpanSelection::Matching(Arc::new(query.clone())))?,
                )),
            },
            HeldSpans::Rows { spans, .. } => Ok(starts(spans)),
        }
    }

    /// The distinct operations of the spans that start in `[from, to)`.
    pub(crate) fn operations(&self, from: i64, to: i64) -> Result<Vec<Operation>, StoreError> {
        match &self.held {
            HeldSpans::Columns(columns) => columns.operations(from, to),
            HeldSpans::Rows { spans, .. } => {
                let distinct: HashSet<(&str, &str, SpanKind)> = spans
                    .iter()
                    .filter(|span| span.start_unix_nanos >= from && span.start_unix_nanos < to)
                    .map(|span| (span.service.as_str(), span.name.as_str(), span.kind))
                    .collect();
                Ok(distinct
                    .into_iter()
                    .map(|(service, name, kind)| Operation {
                        service: service.to_string(),
                        name: name.to_string(),
                        kind,
                    })
                    .collect())
            }
        }
    }

    /// The columns to write into each hourly partition among the spans `keep` keeps.
    pub(crate) fn by_partition(
        &self,
        keep: Option<&dyn Fn(&TraceId) -> bool>,
    ) -> Result<Vec<(i64, RecordBatch)>, StoreError> {
        match &self.held {
            HeldSpans::Columns(columns) => columns.by_partition(block::partition_of, keep),
            HeldSpans::Rows { spans, .. } => {
                let mut partitions: BTreeMap<i64, Vec<Span>> = BTreeMap::new();
                for span in spans {
                    if keep.is_none_or(|keep| keep(&span.trace_id)) {
                        partitions
                            .entry(block::partition_of(span.start_unix_nanos))
                            .or_default()
                            .push(span.clone());
                    }
                }
                partitions
                    .into_iter()
                    .map(|(partition, spans)| {
                        Ok((partition, block::head_columns(&spans)?.into_batch()))
                    })
                    .collect()
            }
        }
    }

    /// Whether the batch may hold a span the keys select (false only when it holds none).
    pub(crate) fn may_hold(&self, keys: &SelectionKeys) -> bool {
        let any_of =
            |wanted: &[u64], held: &[u64]| wanted.iter().any(|key| held.binary_search(key).is_ok());
        match keys {
            SelectionKeys::Traces(wanted) => any_of(wanted, &self.trace_keys),
            SelectionKeys::Events(wanted) => any_of(wanted, &self.event_keys),
            SelectionKeys::Any => true,
        }
    }
}

/// The keys of what a look-up selects, hashed once for all the batches it checks.
pub(crate) enum SelectionKeys {
    Traces(Vec<u64>),
    Events(Vec<u64>),
    /// Selections by links or columns are not keyed: every batch may hold them.
    Any,
}

impl SelectionKeys {
    pub(crate) fn of(selection: &SpanSelection) -> Self {
        match selection {
            SpanSelection::Trace(trace_id) => SelectionKeys::Traces(vec![trace_key(trace_id)]),
            SpanSelection::Traces(traces) => {
                SelectionKeys::Traces(traces.iter().map(trace_key).collect())
            }
            SpanSelection::Event(event_id) => SelectionKeys::Events(vec![event_key(event_id)]),
            SpanSelection::Events(event_ids) => SelectionKeys::Events(
                event_ids
                    .iter()
                    .map(|event_id| event_key(event_id))
                    .collect(),
            ),
            SpanSelection::LinkingTo(_) | SpanSelection::Matching(_) => SelectionKeys::Any,
        }
    }
}

/// Spans and roll-up cells not yet in blocks.
#[derive(Default)]
pub(crate) struct Head {
    /// Appended batches, shared with readers (a snapshot clones the `Arc`s, not the spans).
    pub batches: Vec<Arc<HeadBatch>>,
    pub n_spans: usize,
    /// The memory the batches hold (`HeadBatch::memory_bytes`).
    pub n_bytes: u64,
    pub delta: RollupDelta,
    pub first_append: Option<Instant>,
    /// The highest WAL sequence number in this head: a flush of it makes every segment up
    /// to this one deletable.
    pub last_seq: u64,
}

impl Head {
    /// Adds an acknowledged batch; `n_bytes` is the memory its spans and keys hold.
    pub(crate) fn insert(
        &mut self,
        seq: u64,
        mut spans: HeadBatch,
        n_bytes: u64,
        delta: RollupDelta,
    ) {
        self.n_spans += spans.n_spans();
        self.n_bytes += n_bytes;
        if spans.n_spans() > 0 || !spans.counts.is_empty() {
            spans.seq = seq;
            self.batches.push(Arc::new(spans));
        }
        rollup::merge_delta(&mut self.delta, delta);
        self.first_append.get_or_insert_with(Instant::now);
        self.last_seq = self.last_seq.max(seq);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.n_spans == 0 && self.delta.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashSet;

    use super::*;

    fn span(trace_byte: u8, event_id: Option<&str>) -> Span {
        let mut span = crate::engine::testing::event_span(trace_byte, 0);
        span.event.event_id = event_id.map(Into::into);
        span
    }

    fn held(batch: &HeadBatch, selection: &SpanSelection) -> bool {
        batch.may_hold(&SelectionKeys::of(selection))
    }

    /// A look-up skips a batch only when none of its spans has the id it wants; link and
    /// column searches read every batch.
    #[test]
    fn a_batch_is_searched_only_for_the_ids_it_holds() {
        let batch = HeadBatch::new(vec![
            span(1, Some("order-1")),
            span(2, None),
            span(2, Some("7c9e6679-7425-40de-944b-e07fc1f90ae7")),
        ]);
        assert_eq!(batch.n_spans(), 3);
        assert!(
            batch.key_bytes() >= 4 * 8,
            "two trace keys and two event keys"
        );
        let trace = |byte: u8| SpanSelection::Trace(TraceId([byte; 16]));
        assert!(held(&batch, &trace(1)));
        assert!(held(&batch, &trace(2)));
        assert!(!held(&batch, &trace(3)));
        let traces = |bytes: &[u8]| {
            SpanSelection::Traces(Arc::new(
                bytes.iter().map(|byte| TraceId([*byte; 16])).collect(),
            ))
        };
        assert!(held(&batch, &traces(&[9, 2])));
        assert!(!held(&batch, &traces(&[9, 8])));
        let event = |id: &str| SpanSelection::Event(Arc::from(id));
        assert!(held(&batch, &event("order-1")));
        assert!(held(&batch, &event("7c9e6679-7425-40de-944b-e07fc1f90ae7")));
        assert!(!held(&batch, &event("order-2")));
        assert!(!held(&batch, &event("")));
        let events = |ids: &[&str]| {
            SpanSelection::Events(Arc::new(
                ids.iter().map(|id| id.to_string()).collect::<HashSet<_>>(),
            ))
        };
        assert!(held(&batch, &events(&["nope", "order-1"])));
        assert!(!held(&batch, &events(&["nope", "order-2"])));
        assert!(held(
            &batch,
            &SpanSelection::LinkingTo(Arc::new(HashSet::from([TraceId([7; 16])])))
        ));
    }

    /// Spans like the benchmark's random workload: UUID event and message ids, five
    /// attributes, a resource, some links and errors, and parents.
    pub(crate) fn fleet_spans(n: usize, hour: i64) -> Vec<Span> {
        use muninn_model::{AttributeValue, Link, SpanId, StatusCode};
        let resource = muninn_model::new_resource(vec![(
            "host.name".into(),
            AttributeValue::String("node-7".into()),
        )]);
        (0..n)
            .map(|idx| {
                let mut span = crate::engine::testing::event_span((idx % 7) as u8, hour);
                span.span_id = SpanId((idx as u64 + 1).to_be_bytes());
                span.parent_span_id = (idx % 3 != 0).then(|| SpanId((idx as u64).to_be_bytes()));
                span.start_unix_nanos += idx as i64 * 1_000;
                span.resource = resource.clone();
                span.event.event_id = Some(match idx % 4 {
                    0 => format!("order-{}", idx / 4).into(),
                    _ => uuid::Uuid::from_u128(idx as u128 / 2 + 1)
                        .to_string()
                        .into(),
                });
                span.event.message_id =
                    Some(uuid::Uuid::from_u128(idx as u128 + 7).to_string().into());
                span.attributes = vec![
                    (
                        "cloud.region".into(),
                        AttributeValue::String("eu-west-1".into()),
                    ),
                    (
                        "client.version".into(),
                        AttributeValue::Int((idx % 5) as i64),
                    ),
                    ("retry".into(), AttributeValue::Bool(idx % 9 == 0)),
                    ("weight".into(), AttributeValue::Float(idx as f64 / 3.0)),
                    (
                        "partition".into(),
                        AttributeValue::String(format!("{}", idx % 12).into()),
                    ),
                ];
                if idx % 5 == 0 {
                    span.links = vec![Link {
                        trace_id: TraceId([(idx % 7) as u8 + 100; 16]),
                        span_id: SpanId([9; 8]),
                        attributes: Vec::new(),
                    }];
                }
                if idx % 11 == 0 {
                    span.status.code = StatusCode::Error;
                    span.status.message = Some("handler timed out".into());
                }
                if idx % 13 == 0 {
                    span.service = "billing".into();
                    span.name = "charge".into();
                }
                span
            })
            .collect()
    }

    /// What a look-up checks its spans with.
    type Matches = Box<dyn Fn(&Span) -> bool>;

    /// A batch kept as columns answers every read exactly as the same spans kept as spans do:
    /// look-ups by trace, event (UUID and text), several of either, links and searches, trace
    /// starts with and without a filter on whole spans, operations, and what the flush gets.
    #[test]
    fn columns_answer_as_the_spans_they_hold() {
        let spans = fleet_spans(200, 0);
        let rows = HeadBatch::held_as(spans.clone(), false);
        let columns = HeadBatch::held_as(spans.clone(), true);
        assert_eq!(columns.spans().unwrap(), spans, "every field comes back");
        let uuid_event = spans[1].event.event_id.clone().unwrap().to_string();
        let text_event = spans[4].event.event_id.clone().unwrap().to_string();
        let selections: Vec<(SpanSelection, Matches)> = vec![
            (
                SpanSelection::Trace(TraceId([3; 16])),
                Box::new(|span: &Span| span.trace_id == TraceId([3; 16])),
            ),
            (
                SpanSelection::Traces(Arc::new(HashSet::from([
                    TraceId([1; 16]),
                    TraceId([5; 16]),
                ]))),
                Box::new(|span: &Span| {
                    [TraceId([1; 16]), TraceId([5; 16])].contains(&span.trace_id)
                }),
            ),
            {
                let wanted = uuid_event.clone();
                (
                    SpanSelection::Event(Arc::from(uuid_event.as_str())),
                    Box::new(move |span: &Span| {
                        span.event.event_id.as_deref() == Some(wanted.as_str())
                    }),
                )
            },
            {
                let wanted = [uuid_event.clone(), text_event.clone()];
                (
                    SpanSelection::Events(Arc::new(HashSet::from(wanted.clone()))),
                    Box::new(move |span: &Span| {
                        span.event
                            .event_id
                            .as_deref()
                            .is_some_and(|id| wanted.iter().any(|w| w == id))
                    }),
                )
            },
            (
                SpanSelection::LinkingTo(Arc::new(HashSet::from([TraceId([102; 16])]))),
                Box::new(|span: &Span| {
                    span.links
                        .iter()
                        .any(|link| link.trace_id == TraceId([102; 16]))
                }),
            ),
        ];
        for (selection, matches) in &selections {
            let from_rows = rows.select(selection, matches).unwrap();
            assert!(!from_rows.is_empty(), "{selection:?} selects some spans");
            assert_eq!(
                columns.select(selection, matches).unwrap(),
                from_rows,
                "{selection:?}"
            );
        }
        let start = spans[0].start_unix_nanos;
        let mut query = SpanQuery::new(start + 50_000, start + 150_000, 10);
        query.service = Some("checkout".into());
        query.min_duration_nanos = Some(1_000);
        let errors = |span: &Span| span.status.code == muninn_model::StatusCode::Error;
        for filter in [None, Some(&errors as SpanFilter<'_>)] {
            let from_rows = rows.trace_starts(&query, filter).unwrap();
            assert!(!from_rows.is_empty());
            assert_eq!(columns.trace_starts(&query, filter).unwrap(), from_rows);
        }
        let sorted = |mut operations: Vec<Operation>| {
            operations.sort();
            operations
        };
        let operations = sorted(rows.operations(start, start + 100_000).unwrap());
        assert_eq!(operations.len(), 2, "{operations:?}");
        assert_eq!(
            sorted(columns.operations(start, start + 100_000).unwrap()),
            operations
        );
        assert_eq!(
            sorted(columns.operations(start + 14_000, start + 25_000).unwrap()),
            sorted(rows.operations(start + 14_000, start + 25_000).unwrap()),
        );
    }

    /// The flush gets each partition's kept rows, from either form.
    #[test]
    fn the_flush_gets_each_hours_kept_spans_from_either_form() {
        let mut spans = fleet_spans(40, 0);
        spans.extend(fleet_spans(30, 2));
        let keep = |trace_id: &TraceId| trace_id.0[0] != 2;
        for as_columns in [false, true] {
            let batch = HeadBatch::held_as(spans.clone(), as_columns);
            let parts = batch.by_partition(Some(&keep)).unwrap();
            assert_eq!(parts.len(), 2, "two hours");
            for (partition, rows) in &parts {
                let expected: Vec<Span> = spans
                    .iter()
                    .filter(|span| {
                        block::partition_of(span.start_unix_nanos) == *partition
                            && keep(&span.trace_id)
                    })
                    .cloned()
                    .collect();
                let got = block::head_columns(&expected).unwrap().into_batch();
                assert_eq!(rows.num_rows(), expected.len());
                assert_eq!(
                    rows.column(0),
                    got.column(0),
                    "the partition's trace ids, in order"
                );
            }
            let all = batch.by_partition(None).unwrap();
            assert_eq!(
                all.iter().map(|(_, rows)| rows.num_rows()).sum::<usize>(),
                70
            );
        }
    }

    /// Small batches stay spans, whose memory is less than the columns' fixed cost; a
    /// request-sized batch of the fleet's spans takes well under half as columns.
    #[test]
    fn small_batches_stay_spans_and_large_ones_take_less_as_columns() {
        let small = fleet_spans(COLUMNS_FROM_SPANS - 1, 0);
        let spans_bytes = |spans: &[Span]| {
            spans
                .iter()
                .map(|span| span.memory_bytes() as u64)
                .sum::<u64>()
        };
        let small_bytes = spans_bytes(&small);
        let batch = HeadBatch::new(small.clone());
        assert_eq!(batch.memory_bytes(), small_bytes + batch.key_bytes());
        let as_columns = block::head_columns(&small).unwrap().memory_bytes();
        assert!(
            as_columns > small_bytes,
            "{as_columns} bytes as columns, {small_bytes} as spans"
        );

        let large = fleet_spans(1_000, 0);
        let large_bytes = spans_bytes(&large);
        let batch = HeadBatch::new(large);
        assert!(
            batch.memory_bytes() * 2 < large_bytes,
            "{} bytes as columns, {large_bytes} as spans",
            batch.memory_bytes()
        );
    }
}
