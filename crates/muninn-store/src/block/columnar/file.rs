//! An opened `spans.parquet` of v1 or v2: its footer and the bloom filters id look-ups
//! consult, kept in memory, and the reads every version answers (spans by selection, a
//! search's trace starts, operations), each as one [`Read`] of the file and a decoder.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use muninn_model::{Span, TraceId};
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::bloom_filter::Sbbf;
use parquet::schema::types::ColumnDescPtr;
use tokio::sync::OnceCell;

use super::filter::{self, Filter};
use super::predicate::{self, Ids16, Leaves, Predicate};
use super::read::{ParquetFile, Read, candidates};
use super::{
    COLUMN_DURATION, COLUMN_EVENT_ID, COLUMN_EVENT_ID_TEXT, COLUMN_KIND, COLUMN_LINK_SPAN_IDS,
    COLUMN_LINK_TRACE_IDS, COLUMN_LINKS, COLUMN_NAME, COLUMN_PARENT_SPAN_ID, COLUMN_SERVICE,
    COLUMN_SPAN_ID, COLUMN_START_TIME, COLUMN_TRACE_ID, decode,
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

/// `event_ids` split into the 16 bytes of those that are UUIDs in canonical text and the
/// others, as v2 stores them.
pub(super) fn split_event_ids<'a>(
    event_ids: impl IntoIterator<Item = &'a str>,
) -> (Vec<[u8; 16]>, HashSet<String>) {
    let mut uuids = Vec::new();
    let mut texts = HashSet::new();
    for event_id in event_ids {
        match canonical_uuid(event_id) {
            Some(bytes) => uuids.push(bytes),
            None => {
                texts.insert(event_id.to_string());
            }
        }
    }
    (uuids, texts)
}

/// A trace look-up's bloom filter probes in one file, before their blocks are read.
#[derive(Default)]
struct TraceProbe {
    /// Row groups to read whatever the probes say.
    kept: Vec<usize>,
    /// Per probe, its row group and the trace id's hash.
    row_groups: Vec<(usize, u64)>,
    /// Per probe, the 32 bytes of the file it reads.
    ranges: Vec<Range<u64>>,
}

impl TraceProbe {
    /// The row groups to read, sorted, given the blocks the probes read (in their order).
    fn finish(mut self, blocks: &[impl AsRef<[u8]>]) -> Vec<usize> {
        for ((row_group_idx, hash), block) in self.row_groups.iter().zip(blocks) {
            if filter::block_may_hold(block.as_ref(), *hash) {
                self.kept.push(*row_group_idx);
            }
        }
        self.kept.sort_unstable();
        self.kept.dedup();
        self.kept
    }
}

/// The columns `SpanFields::Outline` reads (those a file has: `event_id_text` is v2's), and
/// `link_trace_ids` with `link_span_ids` in files that have the latter (links are held there).
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
    /// The same filters read whole and kept in memory, when the store's budget for them had
    /// room as the block was warmed ([`SpansFile::keep_trace_filters`]): a look-up then
    /// checks them without a read of the file.
    pub(super) trace_blooms: OnceCell<Vec<Option<Sbbf>>>,
    /// Per row group, the smallest and largest `trace_id` (rows are sorted by it, so row
    /// groups hold disjoint ranges); `None`: no statistics, read the row group.
    trace_id_ranges: Vec<Option<(Vec<u8>, Vec<u8>)>>,
    /// The event id columns and their bloom filters.
    pub(super) event_ids: EventIds,
    /// Where links are found, loaded when the block is warmed or on the first link look-up.
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
        let top_name = |column: &ColumnDescPtr| column.path().parts().first().cloned();
        let has_link_span_ids = file
            .schema()
            .columns()
            .iter()
            .any(|column| top_name(column).as_deref() == Some(COLUMN_LINK_SPAN_IDS));
        let outline = file
            .schema()
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, column)| {
                let name = top_name(column).unwrap_or_default();
                OUTLINE_COLUMNS.contains(&name.as_str())
                    || (has_link_span_ids
                        && [COLUMN_LINK_TRACE_IDS, COLUMN_LINK_SPAN_IDS].contains(&name.as_str()))
            })
            .map(|(leaf, _)| leaf)
            .collect();
        Ok(SpansFile {
            file,
            leaves,
            trace_id_filters,
            trace_blooms: OnceCell::new(),
            trace_id_ranges,
            event_ids,
            links: OnceCell::new(),
            outline,
        })
    }

    /// The bytes keeping this file's `trace_id` filters in memory would take: their bitsets,
    /// where they are probed in the file now (0 once they are kept, or when there are none).
    pub(crate) fn trace_filter_bytes_in_file(&self) -> u64 {
        if self.trace_blooms.initialized() {
            return 0;
        }
        self.trace_id_filters
            .iter()
            .flatten()
            .map(|filter| match filter {
                Filter::InFile { n_blocks, .. } => n_blocks * filter::BLOCK_BYTES,
                Filter::InMemory(_) => 0,
            })
            .sum()
    }

    /// Reads the `trace_id` filters whole and keeps them in memory (folded where their false
    /// positives stay under 1%), so that trace look-ups check them without reading the file.
    pub(crate) async fn keep_trace_filters(&self) -> Result<(), StoreError> {
        self.trace_blooms
            .get_or_try_init(|| async {
                let blooms = self.file.blooms(self.leaves.trace_id).await?;
                Ok::<_, StoreError>(
                    blooms
                        .into_iter()
                        .map(|bloom| bloom.map(|bloom| filter::folded(bloom, filter::FOLDED_FPP)))
                        .collect(),
                )
            })
            .await
            .map(drop)
    }

    /// Loads the bloom filters of `link_trace_ids` if they are not loaded yet.
    pub(crate) async fn load_links(&self) -> Result<(), StoreError> {
        self.links().await.map(drop)
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

    /// What deciding which row groups may hold one of `traces` takes: the row groups decided
    /// already (no bloom filter, or one in memory that may hold a trace), and the 32-byte
    /// blocks of the filters in the file to probe, only for row groups whose range of trace
    /// ids holds a trace (rows are sorted by trace id, so at most one a trace in this file).
    fn trace_probe(&self, traces: &[TraceId]) -> TraceProbe {
        let mut probe = TraceProbe::default();
        let kept = self.trace_blooms.get();
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
                if let Some(kept) = kept {
                    if kept
                        .get(row_group_idx)
                        .and_then(Option::as_ref)
                        .is_none_or(|bloom| bloom.check(id))
                    {
                        probe.kept.push(row_group_idx);
                    }
                    continue;
                }
                match filter {
                    None => probe.kept.push(row_group_idx),
                    Some(Filter::InMemory(bloom)) => {
                        if bloom.check(id) {
                            probe.kept.push(row_group_idx);
                        }
                    }
                    Some(Filter::InFile {
                        bitset_offset,
                        n_blocks,
                    }) => {
                        let hash = filter::hash(id);
                        probe.row_groups.push((row_group_idx, hash));
                        probe
                            .ranges
                            .push(filter::block_range(*bitset_offset, *n_blocks, hash));
                    }
                }
            }
        }
        probe
    }

    /// The row groups that may hold one of `traces`: within the row group's range of trace
    /// ids and passed by its bloom filter, probed in the file (one read of 32 bytes a row group
    /// and trace in range, all in one request).
    async fn trace_row_groups(&self, traces: &[TraceId]) -> Result<Vec<usize>, StoreError> {
        let probe = self.trace_probe(traces);
        let blocks = self.file.read_ranges(probe.ranges.clone()).await?;
        Ok(probe.finish(&blocks))
    }

    /// The row groups that may hold what `selection` selects, decided without an async read
    /// of this file: bloom filters in memory are checked, and those in the file are probed
    /// with `read` (given every range at once, on the calling thread). `None` where that is not
    /// enough (a search, links not loaded yet, or `read` failed): the file's own read path
    /// decides then, and reports its errors.
    pub(crate) fn row_groups_now(
        &self,
        selection: &SpanSelection,
        read: impl FnOnce(&[Range<u64>]) -> std::io::Result<Vec<Vec<u8>>>,
    ) -> Option<Vec<usize>> {
        let traces: Vec<TraceId> = match selection {
            SpanSelection::Trace(trace_id) => vec![*trace_id],
            SpanSelection::Traces(traces) => traces.iter().copied().collect(),
            SpanSelection::Event(event_id) => {
                let event_ids = HashSet::from([event_id.to_string()]);
                return Some(self.event_row_groups(&event_ids));
            }
            SpanSelection::Events(event_ids) => return Some(self.event_row_groups(event_ids)),
            SpanSelection::LinkingTo(targets) => {
                return match self.links.get()? {
                    Links::TraceIds { blooms, .. } => Some(candidates(blooms, |bloom| {
                        targets.iter().any(|target| bloom.check(&target.0[..]))
                    })),
                    Links::Text { .. } => None,
                };
            }
            SpanSelection::Matching(_) => return None,
        };
        let probe = self.trace_probe(&traces);
        if probe.ranges.is_empty() {
            return Some(probe.finish(&[] as &[Vec<u8>]));
        }
        let blocks = read(&probe.ranges).ok()?;
        (blocks.len() == probe.ranges.len()).then(|| probe.finish(&blocks))
    }

    /// The row groups that may hold one of `event_ids`.
    fn event_row_groups(&self, event_ids: &HashSet<String>) -> Vec<usize> {
        match &self.event_ids {
            EventIds::Text { blooms } => candidates(blooms, |bloom| {
                event_ids
                    .iter()
                    .any(|event_id| bloom.check(event_id.as_str()))
            }),
            EventIds::UuidOrText {
                uuid_blooms,
                text_blooms,
                ..
            } => {
                let (uuids, texts) = split_event_ids(event_ids.iter().map(String::as_str));
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
                row_groups
            }
        }
    }

    /// The row filter keeping the spans that carry one of `event_ids`.
    fn event_predicate(&self, event_ids: Arc<HashSet<String>>) -> Predicate {
        let leaf = self.leaves.event_id;
        match &self.event_ids {
            EventIds::Text { .. } => match event_ids.iter().next() {
                Some(only) if event_ids.len() == 1 => {
                    predicate::equals(leaf, StringArray::new_scalar(only.as_str()))
                }
                _ => predicate::text_in(leaf, event_ids),
            },
            EventIds::UuidOrText { text_leaf, .. } => {
                let (uuids, texts) = split_event_ids(event_ids.iter().map(String::as_str));
                match (uuids.as_slice(), texts.is_empty()) {
                    ([only], true) => predicate::id_in(leaf, Ids16::new([*only]), "event_id"),
                    _ => predicate::uuid_or_text_in(leaf, *text_leaf, uuids, texts),
                }
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
        known_row_groups: Option<Vec<usize>>,
    ) -> Result<Vec<Span>, StoreError> {
        let leaves = &self.leaves;
        let mut traces_sought: Option<Vec<TraceId>> = None;
        let (row_groups, predicate): (Option<Vec<usize>>, Predicate) = match selection {
            SpanSelection::Trace(trace_id) => {
                traces_sought = Some(vec![trace_id]);
                let row_groups = match known_row_groups {
                    Some(row_groups) => row_groups,
                    None => self.trace_row_groups(&[trace_id]).await?,
                };
                (
                    Some(row_groups),
                    predicate::id_in(leaves.trace_id, Ids16::new([trace_id.0]), "trace_id"),
                )
            }
            SpanSelection::Traces(traces) => {
                let sought: Vec<TraceId> = traces.iter().copied().collect();
                let row_groups = match known_row_groups {
                    Some(row_groups) => row_groups,
                    None => self.trace_row_groups(&sought).await?,
                };
                traces_sought = Some(sought);
                (
                    Some(row_groups),
                    predicate::trace_id_in(leaves.trace_id, &traces),
                )
            }
            SpanSelection::Event(event_id) => {
                let event_ids = Arc::new(HashSet::from([event_id.to_string()]));
                let row_groups =
                    known_row_groups.unwrap_or_else(|| self.event_row_groups(&event_ids));
                (Some(row_groups), self.event_predicate(event_ids))
            }
            SpanSelection::Events(event_ids) => {
                let row_groups =
                    known_row_groups.unwrap_or_else(|| self.event_row_groups(&event_ids));
                (Some(row_groups), self.event_predicate(event_ids))
            }
            SpanSelection::LinkingTo(targets) => match self.links().await? {
                Links::TraceIds { leaf, blooms } => (
                    Some(known_row_groups.unwrap_or_else(|| {
                        candidates(blooms, |bloom| {
                            targets.iter().any(|target| bloom.check(&target.0[..]))
                        })
                    })),
                    predicate::links_to(*leaf, &targets),
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

    /// Rows `rows` of one row group as a single record batch of every column, in file order;
    /// only the pages holding them are read and decoded.
    pub(crate) async fn row_group_rows(
        &self,
        row_group: usize,
        rows: Range<usize>,
    ) -> Result<RecordBatch, StoreError> {
        let n_rows = self.file.row_group_len(row_group);
        let rows = rows.start.min(n_rows)..rows.end.min(n_rows);
        let mut selectors = vec![
            RowSelector::skip(rows.start),
            RowSelector::select(rows.len()),
        ];
        if rows.end < n_rows {
            selectors.push(RowSelector::skip(n_rows - rows.end));
        }
        let batches = self
            .file
            .read(Read {
                row_groups: Some(vec![row_group]),
                selection: Some(RowSelection::from(selectors)),
                predicate: None,
                projection: None,
            })
            .await?;
        let schema = match batches.first() {
            Some(batch) => batch.schema(),
            None => {
                return Err(self
                    .file
                    .error(format!("row group {row_group} has no rows {rows:?}")));
            }
        };
        arrow::compute::concat_batches(&schema, &batches).map_err(|error| self.file.error(error))
    }

    /// How many rows one row group has.
    pub(crate) fn row_group_len(&self, row_group: usize) -> usize {
        self.file.row_group_len(row_group)
    }

    /// How many row groups the file has.
    pub(crate) fn n_row_groups(&self) -> usize {
        self.trace_id_filters.len()
    }

    /// The spans of rows `rows` of one row group, in file order.
    pub(crate) async fn row_group_spans(
        &self,
        row_group: usize,
        rows: Range<usize>,
    ) -> Result<Vec<Span>, StoreError> {
        decode::spans(
            &self.row_group_rows(row_group, rows).await?,
            SpanFields::All,
        )
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
#[path = "file_tests.rs"]
mod tests;
