//! Block format version 1: the only code that knows its Parquet schema, its encoding, and how
//! its files are read (bloom filters, row filters, projections). Generic block code reaches it
//! through `format.rs`: `encode_file` writes a `spans.parquet`, and an opened `SpansFile`
//! answers the reads every version answers.
//!
//! Two variants of v1 are in the field: blocks with the `link_trace_ids` column (and its bloom
//! filters), and blocks written before it was added in place, whose links are found through
//! their `links` JSON text, every row group read. Both have a golden data directory under
//! `tests/golden/`.
//!
//! `schema.rs` (columns), `json.rs` (attributes and links as text), `encode.rs` (spans to a
//! file, the writer's settings), `decode.rs` (batches to spans, search hits, operations),
//! `predicate.rs` (row filters), `read.rs` (the one read path every query goes through).

mod decode;
mod encode;
mod json;
mod predicate;
mod read;
mod schema;

use arrow::array::{FixedSizeBinaryArray, StringArray};
use muninn_model::{Span, TraceId};
use parquet::bloom_filter::Sbbf;
use tokio::sync::OnceCell;

pub(crate) use encode::encode_file;
use predicate::{Leaves, Predicate};
use read::{ParquetFile, Read, candidates};
use schema::{
    COLUMN_DURATION, COLUMN_EVENT_ID, COLUMN_KIND, COLUMN_LINK_TRACE_IDS, COLUMN_LINKS,
    COLUMN_NAME, COLUMN_SERVICE, COLUMN_START_TIME, COLUMN_TRACE_ID,
};

use crate::block::format::SpanSelection;
use crate::block::reader::ObjectReader;
use crate::error::StoreError;
use crate::scan::{Operation, SpanQuery};

/// A v1 `spans.parquet`, opened: its footer and the bloom filters id look-ups consult, kept in
/// memory so that a look-up reads only the row groups that may hold its ids.
pub(crate) struct SpansFile {
    file: ParquetFile,
    leaves: Leaves,
    /// Per row group, the bloom filter of `trace_id` (`None`: none stored, read the row group).
    trace_id_blooms: Vec<Option<Sbbf>>,
    /// Per row group, the smallest and largest `trace_id` (rows are sorted by it, so row
    /// groups hold disjoint ranges); `None`: no statistics, read the row group.
    trace_id_ranges: Vec<Option<(Vec<u8>, Vec<u8>)>>,
    /// Per row group, the bloom filter of `event_id`.
    event_id_blooms: Vec<Option<Sbbf>>,
    /// Where links are found, loaded on the first link look-up.
    links: OnceCell<Links>,
}

/// Where a file's spans record the traces they link to.
enum Links {
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
    pub(crate) async fn open(reader: ObjectReader) -> Result<Self, StoreError> {
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
        let trace_id_blooms = file.blooms(leaves.trace_id).await?;
        let trace_id_ranges = file.byte_ranges(leaves.trace_id);
        let event_id_blooms = file.blooms(leaves.event_id).await?;
        Ok(SpansFile {
            file,
            leaves,
            trace_id_blooms,
            trace_id_ranges,
            event_id_blooms,
            links: OnceCell::new(),
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
    /// ids and passed by its bloom filter.
    fn trace_row_groups<'t>(
        &self,
        traces: impl IntoIterator<Item = &'t TraceId> + Clone,
    ) -> Vec<usize> {
        (0..self.trace_id_blooms.len())
            .filter(|&row_group_idx| {
                let range = self
                    .trace_id_ranges
                    .get(row_group_idx)
                    .and_then(Option::as_ref);
                let bloom = self.trace_id_blooms[row_group_idx].as_ref();
                traces.clone().into_iter().any(|trace_id| {
                    let id = &trace_id.0[..];
                    range.is_none_or(|(min, max)| min.as_slice() <= id && id <= max.as_slice())
                        && bloom.is_none_or(|bloom| bloom.check(id))
                })
            })
            .collect()
    }

    /// Every span of the file that `selection` selects: the row groups that may hold its ids
    /// (by their bloom filters; all row groups for a search), filtered on the id or searched
    /// columns before the rest is decoded.
    pub(crate) async fn spans(&self, selection: SpanSelection) -> Result<Vec<Span>, StoreError> {
        let leaves = &self.leaves;
        let (row_groups, predicate): (Option<Vec<usize>>, Predicate) = match selection {
            SpanSelection::Trace(trace_id) => (
                Some(self.trace_row_groups(std::slice::from_ref(&trace_id))),
                predicate::equals(
                    leaves.trace_id,
                    FixedSizeBinaryArray::new_scalar(trace_id.0),
                ),
            ),
            SpanSelection::Event(event_id) => (
                Some(candidates(&self.event_id_blooms, |bloom| {
                    bloom.check(&*event_id)
                })),
                predicate::equals(leaves.event_id, StringArray::new_scalar(&*event_id)),
            ),
            SpanSelection::Traces(traces) => (
                Some(self.trace_row_groups(traces.iter())),
                predicate::trace_id_in(leaves.trace_id, traces),
            ),
            SpanSelection::Events(event_ids) => (
                Some(candidates(&self.event_id_blooms, |bloom| {
                    event_ids
                        .iter()
                        .any(|event_id| bloom.check(event_id.as_str()))
                })),
                predicate::text_in(leaves.event_id, event_ids),
            ),
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
        let batches = self
            .file
            .read(Read {
                row_groups,
                predicate: Some(predicate),
                projection: None,
            })
            .await?;
        let mut spans = Vec::new();
        for batch in &batches {
            spans.extend(decode::spans(batch)?);
        }
        Ok(spans)
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

    async fn file_of(spans: &[Span]) -> SpansFile {
        let refs: Vec<&Span> = spans.iter().collect();
        let bytes = encode_file(&refs, &Default::default()).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("test/spans.parquet");
        let size = bytes.len() as u64;
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
        SpansFile::open(ObjectReader::new(store, path, size))
            .await
            .unwrap()
    }

    fn linking_to(trace_byte: u8) -> Arc<HashSet<TraceId>> {
        Arc::new(HashSet::from([TraceId([trace_byte; 16])]))
    }

    #[tokio::test]
    async fn a_file_without_links_answers_link_lookups_from_its_bloom_filters_alone() {
        let file = file_of(&[span(1, Vec::new()), span(2, Vec::new())]).await;
        let Links::TraceIds { blooms, .. } = file.links().await.unwrap() else {
            panic!("the writer writes link_trace_ids");
        };
        assert!(
            blooms.iter().all(Option::is_some),
            "a row group without links still has a (rejecting) bloom filter, so it is not read"
        );
        let found = file
            .spans(SpanSelection::LinkingTo(linking_to(1)))
            .await
            .unwrap();
        assert!(found.is_empty());
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
        let file = file_of(&spans).await;
        let found = file
            .spans(SpanSelection::LinkingTo(linking_to(8)))
            .await
            .unwrap();
        let found: Vec<TraceId> = found.iter().map(|span| span.trace_id).collect();
        assert_eq!(found, vec![TraceId([1; 16]), TraceId([3; 16])]);
    }
}
