//! An opened `spans.parquet` of v1 or v2: its footer and the bloom filters id look-ups
//! consult, kept in memory, and the reads every version answers (spans by selection, a
//! search's trace starts, operations), each as one [`Read`] of the file and a decoder.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{FixedSizeBinaryArray, RecordBatch, StringArray};
use muninn_model::{Span, TraceId};
use parquet::bloom_filter::Sbbf;
use tokio::sync::OnceCell;

use super::filter::{self, Filter};
use super::predicate::{self, Leaves, Predicate};
use super::read::{ParquetFile, Read, candidates};
use super::{
    COLUMN_DURATION, COLUMN_EVENT_ID, COLUMN_EVENT_ID_TEXT, COLUMN_KIND, COLUMN_LINK_TRACE_IDS,
    COLUMN_LINKS, COLUMN_NAME, COLUMN_PARENT_SPAN_ID, COLUMN_SERVICE, COLUMN_SPAN_ID,
    COLUMN_START_TIME, COLUMN_TRACE_ID, decode,
};
use crate::block::format::{SpanFields, SpanSelection};
use crate::block::reader::ObjectReader;
use crate::error::StoreError;
use crate::scan::{Operation, SpanQuery};

/// How a version stores event ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventIdLayout {
    /// v1: `event_id` is text.
    Text,
    /// v2: `event_id` holds the 16 bytes of ids that are UUIDs in canonical text (lowercase,
    /// hyphenated), `event_id_text` every other id as text.
    UuidOrText,
}

/// The 16 bytes of `event_id` when it is a UUID in its canonical text (36 characters,
/// lowercase hex, hyphens at 8, 13, 18 and 23), the only form that turns back into the same
/// text; `None` for any other id.
pub(crate) fn canonical_uuid(event_id: &str) -> Option<[u8; 16]> {
    let text = event_id.as_bytes();
    if text.len() != 36 {
        return None;
    }
    let mut bytes = [0u8; 16];
    let mut nibbles = 0usize;
    for (position, &character) in text.iter().enumerate() {
        if matches!(position, 8 | 13 | 18 | 23) {
            if character != b'-' {
                return None;
            }
            continue;
        }
        let value = match character {
            b'0'..=b'9' => character - b'0',
            b'a'..=b'f' => character - b'a' + 10,
            _ => return None,
        };
        bytes[nibbles / 2] |= if nibbles.is_multiple_of(2) {
            value << 4
        } else {
            value
        };
        nibbles += 1;
    }
    Some(bytes)
}

/// The columns `SpanFields::Outline` reads (those a file has: `event_id_text` is v2's).
const OUTLINE_COLUMNS: [&str; 10] = [
    COLUMN_TRACE_ID,
    COLUMN_SPAN_ID,
    COLUMN_PARENT_SPAN_ID,
    COLUMN_START_TIME,
    COLUMN_SERVICE,
    COLUMN_NAME,
    COLUMN_KIND,
    COLUMN_EVENT_ID,
    COLUMN_EVENT_ID_TEXT,
    COLUMN_LINKS,
];

/// Where event ids are found in an opened file.
pub(super) enum EventIds {
    Text {
        blooms: Vec<Option<Sbbf>>,
    },
    UuidOrText {
        text_leaf: usize,
        uuid_blooms: Vec<Option<Sbbf>>,
        text_blooms: Vec<Option<Sbbf>>,
    },
}

/// A `spans.parquet` of v1 or v2, opened: its footer and the bloom filters id look-ups consult, kept in
/// memory so that a look-up reads only the row groups that may hold its ids.
pub(crate) struct SpansFile {
    pub(super) file: ParquetFile,
    leaves: Leaves,
    /// Per row group, the bloom filter of `trace_id`, probed in the file (`None`: none stored,
    /// read the row group).
    pub(super) trace_id_filters: Vec<Option<Filter>>,
    /// Per row group, the smallest and largest `trace_id` (rows are sorted by it, so row
    /// groups hold disjoint ranges); `None`: no statistics, read the row group.
    trace_id_ranges: Vec<Option<(Vec<u8>, Vec<u8>)>>,
    /// The event id columns and their bloom filters.
    pub(super) event_ids: EventIds,
    /// Where links are found, loaded on the first link look-up.
    pub(super) links: OnceCell<Links>,
    /// The leaf columns of `SpanFields::Outline`, in file order.
    outline: Vec<usize>,
}

/// Where a file's spans record the traces they link to.
pub(super) enum Links {
    /// `link_trace_ids`, with its bloom filter per row group.
    TraceIds {
        leaf: usize,
        blooms: Vec<Option<Sbbf>>,
    },
    /// Only the `links` JSON text (blocks written before `link_trace_ids`).
    Text { leaf: usize },
}

impl SpansFile {
    /// Reads the footer and the bloom filters of trace and event ids.
    pub(crate) async fn open(
        reader: ObjectReader,
        layout: EventIdLayout,
    ) -> Result<Self, StoreError> {
        let file = ParquetFile::open(reader).await?;
        let leaves = Leaves {
            trace_id: file.leaf(COLUMN_TRACE_ID)?,
            event_id: file.leaf(COLUMN_EVENT_ID)?,
            start_time: file.leaf(COLUMN_START_TIME)?,
            duration: file.leaf(COLUMN_DURATION)?,
            service: file.leaf(COLUMN_SERVICE)?,
            name: file.leaf(COLUMN_NAME)?,
            kind: file.leaf(COLUMN_KIND)?,
        };
        let trace_id_filters = file.filters_in_file(leaves.trace_id).await?;
        let trace_id_ranges = file.byte_ranges(leaves.trace_id);
        let event_ids = match layout {
            EventIdLayout::Text => EventIds::Text {
                blooms: file.blooms(leaves.event_id).await?,
            },
            EventIdLayout::UuidOrText => {
                let text_leaf = file.leaf(COLUMN_EVENT_ID_TEXT)?;
                EventIds::UuidOrText {
                    text_leaf,
                    uuid_blooms: file.blooms(leaves.event_id).await?,
                    text_blooms: file.blooms(text_leaf).await?,
                }
            }
        };
        let outline = file
            .schema()
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, column)| OUTLINE_COLUMNS.contains(&column.name()))
            .map(|(leaf, _)| leaf)
            .collect();
        Ok(SpansFile {
            file,
            leaves,
            trace_id_filters,
            trace_id_ranges,
            event_ids,
            links: OnceCell::new(),
            outline,
        })
    }

    async fn links(&self) -> Result<&Links, StoreError> {
        self.links
            .get_or_try_init(|| async {
                let link_trace_ids = self.file.schema().columns().iter().position(|column| {
                    column.path().parts().first().map(String::as_str) == Some(COLUMN_LINK_TRACE_IDS)
                });
                Ok(match link_trace_ids {
                    Some(leaf) => Links::TraceIds {
                        leaf,
                        blooms: self.file.blooms(leaf).await?,
                    },
                    None => Links::Text {
                        leaf: self.file.leaf(COLUMN_LINKS)?,
                    },
                })
            })
            .await
    }

    /// The row groups that may hold one of `traces`: within the row group's range of trace
    /// ids and passed by its bloom filter, probed in the file (one read of 32 bytes a row group
    /// and trace in range, all in one request).
    async fn trace_row_groups(&self, traces: &[TraceId]) -> Result<Vec<usize>, StoreError> {
        let mut kept = Vec::new();
        let mut probes: Vec<(usize, u64, Range<u64>)> = Vec::new();
        for (row_group_idx, filter) in self.trace_id_filters.iter().enumerate() {
            let range = self
                .trace_id_ranges
                .get(row_group_idx)
                .and_then(Option::as_ref);
            for trace_id in traces {
                let id = &trace_id.0[..];
                if !range.is_none_or(|(min, max)| min.as_slice() <= id && id <= max.as_slice()) {
                    continue;
                }
                match filter {
                    None => kept.push(row_group_idx),
                    Some(Filter::InMemory(bloom)) => {
                        if bloom.check(id) {
                            kept.push(row_group_idx);
                        }
                    }
                    Some(Filter::InFile {
                        bitset_offset,
                        n_blocks,
                    }) => {
                        let hash = filter::hash(id);
                        let block = filter::block_range(*bitset_offset, *n_blocks, hash);
                        probes.push((row_group_idx, hash, block));
                    }
                }
            }
        }
        let ranges = probes.iter().map(|(_, _, range)| range.clone()).collect();
        let blocks = self.file.read_ranges(ranges).await?;
        for ((row_group_idx, hash, _), block) in probes.iter().zip(&blocks) {
            if filter::block_may_hold(block, *hash) {
                kept.push(*row_group_idx);
            }
        }
        kept.sort_unstable();
        kept.dedup();
        Ok(kept)
    }

    /// The row groups that may hold one of `event_ids`, and the row filter keeping their spans.
    fn event_read(&self, event_ids: Arc<HashSet<String>>) -> (Option<Vec<usize>>, Predicate) {
        let leaf = self.leaves.event_id;
        match &self.event_ids {
            EventIds::Text { blooms } => {
                let row_groups = candidates(blooms, |bloom| {
                    event_ids
                        .iter()
                        .any(|event_id| bloom.check(event_id.as_str()))
                });
                let predicate = match event_ids.iter().next() {
                    Some(only) if event_ids.len() == 1 => {
                        predicate::equals(leaf, StringArray::new_scalar(only.as_str()))
                    }
                    _ => predicate::text_in(leaf, event_ids),
                };
                (Some(row_groups), predicate)
            }
            EventIds::UuidOrText {
                text_leaf,
                uuid_blooms,
                text_blooms,
            } => {
                let mut uuids = Vec::new();
                let mut texts = HashSet::new();
                for event_id in event_ids.iter() {
                    match canonical_uuid(event_id) {
                        Some(bytes) => uuids.push(bytes),
                        None => {
                            texts.insert(event_id.clone());
                        }
                    }
                }
                let mut row_groups: Vec<usize> = candidates(uuid_blooms, |bloom| {
                    uuids.iter().any(|bytes| bloom.check(&bytes[..]))
                });
                if !texts.is_empty() {
                    row_groups.extend(candidates(text_blooms, |bloom| {
                        texts.iter().any(|text| bloom.check(text.as_str()))
                    }));
                    row_groups.sort_unstable();
                    row_groups.dedup();
                }
                let predicate = match (uuids.as_slice(), texts.is_empty()) {
                    ([only], true) => {
                        predicate::equals(leaf, FixedSizeBinaryArray::new_scalar(*only))
                    }
                    _ => predicate::uuid_or_text_in(leaf, *text_leaf, uuids, texts),
                };
                (Some(row_groups), predicate)
            }
        }
    }

    /// Every span of the file that `selection` selects: the row groups that may hold its ids
    /// (by their bloom filters; all row groups for a search), filtered on the id or searched
    /// columns before the rest is decoded.
    pub(crate) async fn spans(
        &self,
        selection: SpanSelection,
        fields: SpanFields,
    ) -> Result<Vec<Span>, StoreError> {
        let leaves = &self.leaves;
        let mut traces_sought: Option<Vec<TraceId>> = None;
        let (row_groups, predicate): (Option<Vec<usize>>, Predicate) = match selection {
            SpanSelection::Trace(trace_id) => {
                traces_sought = Some(vec![trace_id]);
                (
                    Some(self.trace_row_groups(&[trace_id]).await?),
                    predicate::equals(
                        leaves.trace_id,
                        FixedSizeBinaryArray::new_scalar(trace_id.0),
                    ),
                )
            }
            SpanSelection::Event(event_id) => {
                self.event_read(Arc::new(HashSet::from([event_id.to_string()])))
            }
            SpanSelection::Traces(traces) => {
                let sought: Vec<TraceId> = traces.iter().copied().collect();
                let row_groups = self.trace_row_groups(&sought).await?;
                traces_sought = Some(sought);
                (
                    Some(row_groups),
                    predicate::trace_id_in(leaves.trace_id, traces),
                )
            }
            SpanSelection::Events(event_ids) => self.event_read(event_ids),
            SpanSelection::LinkingTo(targets) => match self.links().await? {
                Links::TraceIds { leaf, blooms } => (
                    Some(candidates(blooms, |bloom| {
                        targets.iter().any(|target| bloom.check(&target.0[..]))
                    })),
                    predicate::links_to(*leaf, targets.clone()),
                ),
                Links::Text { leaf } => (None, predicate::links_text_mentions(*leaf, &targets)),
            },
            SpanSelection::Matching(query) => (None, predicate::search(leaves, &query)),
        };
        // Rows are sorted by trace id within a row group, so a trace's rows sit on the few
        // pages whose range of trace ids holds it; the others are not decoded at all.
        let selection = match (&traces_sought, &row_groups) {
            (Some(traces), Some(row_groups)) => {
                self.file
                    .pages_holding(leaves.trace_id, row_groups, |min, max| {
                        traces
                            .iter()
                            .any(|trace_id| min <= &trace_id.0[..] && &trace_id.0[..] <= max)
                    })
            }
            _ => None,
        };
        let batches = self
            .file
            .read(Read {
                row_groups,
                selection,
                predicate: Some(predicate),
                projection: match fields {
                    SpanFields::All => None,
                    SpanFields::Outline => Some(self.outline.clone()),
                },
            })
            .await?;
        let mut spans = Vec::new();
        for batch in &batches {
            spans.extend(decode::spans(batch, fields)?);
        }
        Ok(spans)
    }

    /// One row group as a single record batch of every column, in file order.
    pub(crate) async fn row_group_batch(
        &self,
        row_group: usize,
    ) -> Result<RecordBatch, StoreError> {
        let batches = self
            .file
            .read(Read {
                row_groups: Some(vec![row_group]),
                selection: None,
                predicate: None,
                projection: None,
            })
            .await?;
        let schema = match batches.first() {
            Some(batch) => batch.schema(),
            None => return Err(self.file.error(format!("row group {row_group} is empty"))),
        };
        arrow::compute::concat_batches(&schema, &batches).map_err(|error| self.file.error(error))
    }

    /// How many row groups the file has.
    pub(crate) fn n_row_groups(&self) -> usize {
        self.trace_id_filters.len()
    }

    /// Every span of one row group, in file order.
    pub(crate) async fn row_group_spans(&self, row_group: usize) -> Result<Vec<Span>, StoreError> {
        decode::spans(&self.row_group_batch(row_group).await?, SpanFields::All)
    }

    /// The trace id and start of every span that matches `query`, reading only those two
    /// columns (and the searched ones) of the file.
    pub(crate) async fn trace_starts(
        &self,
        query: &SpanQuery,
    ) -> Result<Vec<(TraceId, i64)>, StoreError> {
        let batches = self
            .file
            .read(Read {
                row_groups: None,
                selection: None,
                predicate: Some(predicate::search(&self.leaves, query)),
                projection: Some(vec![self.leaves.trace_id, self.leaves.start_time]),
            })
            .await?;
        let mut starts = Vec::new();
        for batch in &batches {
            starts.extend(decode::trace_starts(batch).map_err(|error| self.file.error(error))?);
        }
        Ok(starts)
    }

    /// The distinct (service, name, kind) of the file's spans, sorted, reading only those
    /// three (dictionary) columns.
    pub(crate) async fn operations(&self) -> Result<Vec<Operation>, StoreError> {
        let batches = self
            .file
            .read(Read {
                row_groups: None,
                selection: None,
                predicate: None,
                projection: Some(vec![
                    self.leaves.service,
                    self.leaves.name,
                    self.leaves.kind,
                ]),
            })
            .await?;
        decode::operations(&batches)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use muninn_model::{Link, SpanId, SpanKind, Status};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

    use super::*;
    use crate::block::{BlockWriteOptions, FormatVersion};

    fn span(trace_byte: u8, links: Vec<Link>) -> Span {
        Span {
            trace_id: TraceId([trace_byte; 16]),
            span_id: SpanId([trace_byte; 8]),
            parent_span_id: None,
            name: "work".into(),
            kind: SpanKind::Consumer,
            service: "joiner".into(),
            resource: Vec::new(),
            start_unix_nanos: 1_000,
            duration_nanos: 10,
            status: Status::default(),
            attributes: Vec::new(),
            links,
            event: Default::default(),
        }
    }

    /// The layouts of the versions this build writes, with their writers.
    fn versions() -> [(FormatVersion, EventIdLayout); 2] {
        [
            (FormatVersion::V1, EventIdLayout::Text),
            (FormatVersion::V2, EventIdLayout::UuidOrText),
        ]
    }

    async fn file_of(spans: &[Span], version: FormatVersion, layout: EventIdLayout) -> SpansFile {
        let refs: Vec<&Span> = spans.iter().collect();
        let bytes = version.encode(&refs, &Default::default()).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("test/spans.parquet");
        let size = bytes.len() as u64;
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
        SpansFile::open(ObjectReader::new(store, path, size), layout)
            .await
            .unwrap()
    }

    fn linking_to(trace_byte: u8) -> Arc<HashSet<TraceId>> {
        Arc::new(HashSet::from([TraceId([trace_byte; 16])]))
    }

    /// A block's rows are sorted by trace id, start time and span id however its spans
    /// arrived: v2 puts columns built in arrival order in order, v1 sorts the spans; both
    /// write the file of the sorted spans byte for byte, over several row groups.
    #[test]
    fn the_file_is_the_same_whatever_order_the_spans_arrived_in() {
        use muninn_model::AttributeValue;
        let mut sorted = Vec::new();
        for trace_byte in 1..=9u8 {
            for span_byte in 0..4u8 {
                let link = Link {
                    trace_id: TraceId([trace_byte.wrapping_mul(7); 16]),
                    span_id: SpanId([span_byte; 8]),
                    attributes: Vec::new(),
                };
                let mut span = span(
                    trace_byte,
                    if span_byte == 2 {
                        vec![link]
                    } else {
                        Vec::new()
                    },
                );
                span.span_id = SpanId([trace_byte, span_byte, 0, 0, 0, 0, 0, 1]);
                span.start_unix_nanos = 1_000 + i64::from(span_byte % 3);
                span.attributes = vec![(
                    "tier".to_string(),
                    AttributeValue::String(format!("t{}", span_byte % 2)),
                )];
                span.event.event_id = Some(if trace_byte % 3 == 0 {
                    format!("order-{trace_byte}")
                } else {
                    format!("8c4d6f0e-1b2a-4c3d-9e8f-{trace_byte:06x}{span_byte:06x}")
                });
                sorted.push(span);
            }
        }
        // Arrived interleaved: every third span, then the next, then the rest, reversed.
        let mut arrived: Vec<&Span> = (0..3)
            .flat_map(|phase| sorted.iter().skip(phase).step_by(3))
            .collect();
        arrived.reverse();
        let sorted_refs: Vec<&Span> = sorted.iter().collect();
        let options = BlockWriteOptions {
            row_group_rows: 10,
            page_rows: 4,
            ..Default::default()
        };
        for (version, _) in versions() {
            let from_sorted = version.encode(&sorted_refs, &options).unwrap();
            let from_arrived = version.encode(&arrived, &options).unwrap();
            assert!(
                from_sorted == from_arrived,
                "{version:?} wrote a different file for the same spans in another order"
            );
        }
    }

    #[tokio::test]
    async fn a_file_without_links_answers_link_lookups_from_its_bloom_filters_alone() {
        for (version, layout) in versions() {
            let file = file_of(&[span(1, Vec::new()), span(2, Vec::new())], version, layout).await;
            let Links::TraceIds { blooms, .. } = file.links().await.unwrap() else {
                panic!("the {version:?} writer writes link_trace_ids");
            };
            assert!(
                blooms.iter().all(Option::is_some),
                "a row group without links still has a (rejecting) bloom filter, so it is not read"
            );
            let found = file
                .spans(SpanSelection::LinkingTo(linking_to(1)), SpanFields::All)
                .await
                .unwrap();
            assert!(found.is_empty());
        }
    }

    #[tokio::test]
    async fn spans_linking_to_a_trace_are_found_and_others_are_not() {
        let link = |trace_byte: u8| Link {
            trace_id: TraceId([trace_byte; 16]),
            span_id: SpanId([trace_byte; 8]),
            attributes: Vec::new(),
        };
        let spans = [
            span(1, vec![link(7), link(8)]),
            span(2, Vec::new()),
            span(3, vec![link(8)]),
        ];
        for (version, layout) in versions() {
            let file = file_of(&spans, version, layout).await;
            let found = file
                .spans(SpanSelection::LinkingTo(linking_to(8)), SpanFields::All)
                .await
                .unwrap();
            let found: Vec<TraceId> = found.iter().map(|span| span.trace_id).collect();
            assert_eq!(
                found,
                vec![TraceId([1; 16]), TraceId([3; 16])],
                "{version:?}"
            );
        }
    }

    /// Event ids come back exactly as sent in every version, whether v2 keeps them as 16 bytes
    /// (a UUID in canonical text) or as text (anything else, including a UUID in capitals or
    /// without hyphens), and are found alone and in sets that mix both kinds.
    #[tokio::test]
    async fn event_ids_of_every_kind_come_back_as_sent_and_are_found() {
        let event_ids = [
            Some("0f8fad5b-d9cb-469f-a165-70867728950e"),
            Some("0F8FAD5B-D9CB-469F-A165-70867728950E"),
            Some("0f8fad5bd9cb469fa16570867728950e"),
            Some("evt-0001"),
            Some(""),
            None,
            Some("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
        ];
        let spans: Vec<Span> = event_ids
            .iter()
            .enumerate()
            .map(|(index, event_id)| {
                let mut span = span(index as u8 + 1, Vec::new());
                span.event.event_id = event_id.map(str::to_string);
                span
            })
            .collect();
        let owned = |ids: &[&str]| -> Arc<HashSet<String>> {
            Arc::new(ids.iter().map(|id| id.to_string()).collect())
        };
        for (version, layout) in versions() {
            let file = file_of(&spans, version, layout).await;
            let everything = file
                .spans(
                    SpanSelection::Traces(Arc::new(
                        spans.iter().map(|span| span.trace_id).collect(),
                    )),
                    SpanFields::All,
                )
                .await
                .unwrap();
            assert_eq!(everything, spans, "{version:?} round trip");
            for (index, event_id) in event_ids.iter().enumerate() {
                let Some(event_id) = event_id else { continue };
                let found = file
                    .spans(SpanSelection::Event(Arc::from(*event_id)), SpanFields::All)
                    .await
                    .unwrap();
                assert_eq!(
                    found,
                    vec![spans[index].clone()],
                    "{version:?} {event_id:?}"
                );
            }
            let mixed = file
                .spans(
                    SpanSelection::Events(owned(&[
                        "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                        "evt-0001",
                        "0F8FAD5B-D9CB-469F-A165-70867728950E",
                        "not-stored",
                        "00000000-0000-4000-8000-000000000000",
                    ])),
                    SpanFields::All,
                )
                .await
                .unwrap();
            let mixed: Vec<Option<String>> =
                mixed.into_iter().map(|span| span.event.event_id).collect();
            assert_eq!(
                mixed,
                vec![
                    Some("0F8FAD5B-D9CB-469F-A165-70867728950E".to_string()),
                    Some("evt-0001".to_string()),
                    Some("7c9e6679-7425-40de-944b-e07fc1f90ae7".to_string()),
                ],
                "{version:?} mixed set"
            );
        }
    }

    /// An outline read gives back a span's place among traces and events exactly as stored,
    /// and leaves every other field empty rather than guessing it; a read of all fields gives
    /// the span back whole.
    #[tokio::test]
    async fn an_outline_read_keeps_ids_times_service_kind_event_id_and_links_only() {
        use muninn_model::{AttributeValue, Broker, EventColumns, StatusCode};
        let spans: Vec<Span> = (1..=4u8)
            .map(|trace_byte| {
                let mut span = span(
                    trace_byte,
                    vec![Link {
                        trace_id: TraceId([9; 16]),
                        span_id: SpanId([trace_byte; 8]),
                        attributes: Vec::new(),
                    }],
                );
                span.parent_span_id = Some(SpanId([7; 8]));
                span.start_unix_nanos = 5_000 + i64::from(trace_byte);
                span.duration_nanos = 250;
                span.status = Status {
                    code: StatusCode::Error,
                    message: Some("timed out".into()),
                };
                span.attributes = vec![("retry".into(), AttributeValue::Bool(true))];
                span.resource = vec![("host".into(), AttributeValue::String("a".into()))];
                span.event = EventColumns {
                    event_id: Some(format!("7c9e6679-7425-40de-944b-e07fc1f90ae{trace_byte}")),
                    event_type: Some("order.placed".into()),
                    schema: Some("v2".into()),
                    stream: Some("orders".into()),
                    broker: Some(Broker::Kafka),
                    modified: true,
                    partition: Some(3),
                    offset: Some(42),
                    message_id: Some("m-1".into()),
                };
                span
            })
            .collect();
        let outline: Vec<Span> = spans
            .iter()
            .map(|whole| Span {
                trace_id: whole.trace_id,
                span_id: whole.span_id,
                parent_span_id: whole.parent_span_id,
                name: whole.name.clone(),
                kind: whole.kind,
                service: whole.service.clone(),
                resource: Vec::new(),
                start_unix_nanos: whole.start_unix_nanos,
                duration_nanos: 0,
                status: Status::default(),
                attributes: Vec::new(),
                links: whole.links.clone(),
                event: EventColumns {
                    event_id: whole.event.event_id.clone(),
                    ..Default::default()
                },
            })
            .collect();
        let traces: Arc<HashSet<TraceId>> =
            Arc::new(spans.iter().map(|span| span.trace_id).collect());
        for (version, layout) in versions() {
            let file = file_of(&spans, version, layout).await;
            let read = |selection: SpanSelection, fields: SpanFields| {
                let file = &file;
                async move { file.spans(selection, fields).await.unwrap() }
            };
            let whole = read(SpanSelection::Traces(traces.clone()), SpanFields::All).await;
            assert_eq!(whole, spans, "{version:?} all fields");
            let outlined = read(SpanSelection::Traces(traces.clone()), SpanFields::Outline).await;
            assert_eq!(outlined, outline, "{version:?} outline by trace ids");
            let linking = read(
                SpanSelection::LinkingTo(Arc::new(HashSet::from([TraceId([9; 16])]))),
                SpanFields::Outline,
            )
            .await;
            assert_eq!(linking, outline, "{version:?} outline by link");
            let event_ids = spans
                .iter()
                .filter_map(|span| span.event.event_id.clone())
                .collect();
            let by_event = read(
                SpanSelection::Events(Arc::new(event_ids)),
                SpanFields::Outline,
            )
            .await;
            assert_eq!(by_event, outline, "{version:?} outline by event id");
        }
    }

    /// A trace look-up decodes only the pages whose range of trace ids holds the trace (v2
    /// writes a column index for `trace_id`), and still finds every span of it, including a
    /// trace whose spans straddle two pages.
    #[tokio::test]
    async fn a_trace_look_up_reads_only_the_pages_that_can_hold_the_trace() {
        let mut spans = Vec::new();
        for trace_byte in 1..=12u8 {
            for span_byte in 0..3u8 {
                let mut span = span(trace_byte, Vec::new());
                span.span_id = SpanId([trace_byte, span_byte, 0, 0, 0, 0, 0, 1]);
                span.start_unix_nanos = 1_000 + i64::from(span_byte);
                spans.push(span);
            }
        }
        let options = BlockWriteOptions {
            row_group_rows: 18,
            page_rows: 4,
            ..Default::default()
        };
        let refs: Vec<&Span> = spans.iter().collect();
        let bytes = FormatVersion::V2.encode(&refs, &options).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("test/spans.parquet");
        let size = bytes.len() as u64;
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
        let file = SpansFile::open(
            ObjectReader::new(store, path, size),
            EventIdLayout::UuidOrText,
        )
        .await
        .unwrap();

        // Trace 5: rows 12..15 of row group 0, on the pages of rows 12..16 only.
        let trace = TraceId([5; 16]);
        let row_groups = file.trace_row_groups(&[trace]).await.unwrap();
        assert_eq!(row_groups, vec![0]);
        let selection = file
            .file
            .pages_holding(file.leaves.trace_id, &row_groups, |min, max| {
                min <= &trace.0[..] && &trace.0[..] <= max
            })
            .expect("v2 writes a column index for trace_id");
        assert_eq!(
            selection.row_count(),
            4,
            "one page of four rows: {selection:?}"
        );

        for trace_byte in 1..=12u8 {
            let found = file
                .spans(
                    SpanSelection::Trace(TraceId([trace_byte; 16])),
                    SpanFields::All,
                )
                .await
                .unwrap();
            let expected: Vec<Span> = spans
                .iter()
                .filter(|span| span.trace_id.0[0] == trace_byte)
                .cloned()
                .collect();
            assert_eq!(found, expected, "trace {trace_byte}");
        }
    }

    #[test]
    fn only_the_canonical_text_of_a_uuid_is_kept_as_bytes() {
        let bytes = canonical_uuid("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
        assert_eq!(bytes[0], 0x0f);
        assert_eq!(bytes[15], 0x0e);
        for not_canonical in [
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5bd9cb469fa16570867728950e",
            "{0f8fad5b-d9cb-469f-a165-70867728950e}",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5b_d9cb-469f-a165-70867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950g",
        ] {
            assert_eq!(canonical_uuid(not_canonical), None, "{not_canonical}");
        }
    }
}
