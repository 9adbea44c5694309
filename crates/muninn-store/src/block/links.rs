//! Look-ups of many ids at once in one block, for journeys and traces that continue across
//! trace boundaries: the spans carrying any of a set of event ids, and the spans that link to
//! any of a set of traces. The second reads the `link_trace_ids` column through its bloom
//! filters; blocks written before that column existed are read through their `links` JSON text
//! instead, every row group of them (slower, and only until retention drops them).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, FixedSizeBinaryArray, ListArray, RecordBatch, StringArray,
};
use arrow::error::ArrowError;
use futures::TryStreamExt;
use muninn_model::{Span, TraceId};
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, RowFilter};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::bloom_filter::Sbbf;
use parquet::schema::types::ColumnPath;

use super::{BlockHandle, v1};
use crate::error::StoreError;

/// What a many-id look-up is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ManyLookup<'a> {
    /// Spans whose event id is one of these.
    Events(&'a HashSet<String>),
    /// Spans with a link to a span of one of these traces.
    LinkedTo(&'a HashSet<TraceId>),
}

/// The Parquet leaf of `link_trace_ids` (a list of 16-byte ids), for the writer's settings.
pub(crate) fn link_leaf_path() -> ColumnPath {
    ColumnPath::new(vec![
        v1::COLUMN_LINK_TRACE_IDS.to_string(),
        "list".to_string(),
        "item".to_string(),
    ])
}

/// How one block answers link look-ups, loaded once per block.
pub(crate) struct LinkFilters {
    /// The `link_trace_ids` leaf, absent in blocks written before it existed.
    leaf_idx: Option<usize>,
    /// The `links` JSON column, read instead when there is no leaf.
    links_json_idx: usize,
    /// Per row group, the leaf's bloom filter (`None`: none stored, read the row group).
    blooms: Vec<Option<Sbbf>>,
}

fn predicate_error(message: &str) -> ArrowError {
    ArrowError::InvalidArgumentError(message.to_string())
}

impl BlockHandle {
    async fn link_filters(
        &self,
        store: &Arc<dyn ObjectStore>,
    ) -> Result<Arc<LinkFilters>, StoreError> {
        self.link_filters
            .get_or_try_init(|| async {
                let filters = self.filters(store).await?;
                let path = self.spans_path();
                let parquet_error = |error: parquet::errors::ParquetError| {
                    StoreError::corrupt(format!("{path}: {error}"))
                };
                let schema = filters.metadata.parquet_schema();
                let leaf_idx = schema.columns().iter().position(|column| {
                    column.path().parts().first().map(String::as_str)
                        == Some(v1::COLUMN_LINK_TRACE_IDS)
                });
                let links_json_idx = schema
                    .columns()
                    .iter()
                    .position(|column| column.name() == "links")
                    .ok_or_else(|| StoreError::corrupt(format!("{path}: no column \"links\"")))?;
                let n_row_groups = filters.metadata.metadata().num_row_groups();
                let mut blooms = Vec::with_capacity(n_row_groups);
                if let Some(leaf_idx) = leaf_idx {
                    let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
                        self.reader(store),
                        filters.metadata.clone(),
                    );
                    for row_group_idx in 0..n_row_groups {
                        blooms.push(
                            builder
                                .get_row_group_column_bloom_filter(row_group_idx, leaf_idx)
                                .await
                                .map_err(parquet_error)?,
                        );
                    }
                } else {
                    blooms.resize_with(n_row_groups, || None);
                }
                Ok(Arc::new(LinkFilters {
                    leaf_idx,
                    links_json_idx,
                    blooms,
                }))
            })
            .await
            .cloned()
    }

    /// Every span in this block that matches the look-up.
    pub(crate) async fn lookup_many(
        &self,
        store: &Arc<dyn ObjectStore>,
        lookup: ManyLookup<'_>,
    ) -> Result<Vec<Span>, StoreError> {
        if self.meta.n_spans == 0 {
            return Ok(Vec::new());
        }
        let filters = self.filters(store).await?;
        let (candidates, column_idx, predicate): (Vec<usize>, usize, RowPredicate) = match lookup {
            ManyLookup::Events(ids) => {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let candidates = filters
                    .event_id
                    .iter()
                    .enumerate()
                    .filter(|(_, bloom)| match bloom {
                        None => true,
                        Some(bloom) => ids.iter().any(|id| bloom.check(id.as_str())),
                    })
                    .map(|(row_group_idx, _)| row_group_idx)
                    .collect();
                let ids = ids.clone();
                (
                    candidates,
                    filters.event_column_idx,
                    Box::new(move |batch: RecordBatch| {
                        let column = batch
                            .column(0)
                            .as_any()
                            .downcast_ref::<StringArray>()
                            .ok_or_else(|| predicate_error("event_id is not text"))?;
                        Ok(column
                            .iter()
                            .map(|value| Some(value.is_some_and(|id| ids.contains(id))))
                            .collect())
                    }),
                )
            }
            ManyLookup::LinkedTo(targets) => {
                if targets.is_empty() {
                    return Ok(Vec::new());
                }
                let links = self.link_filters(store).await?;
                let candidates = links
                    .blooms
                    .iter()
                    .enumerate()
                    .filter(|(_, bloom)| match bloom {
                        None => true,
                        Some(bloom) => targets.iter().any(|target| bloom.check(&target.0[..])),
                    })
                    .map(|(row_group_idx, _)| row_group_idx)
                    .collect();
                match links.leaf_idx {
                    Some(leaf_idx) => {
                        let targets: HashSet<[u8; 16]> =
                            targets.iter().map(|target| target.0).collect();
                        (
                            candidates,
                            leaf_idx,
                            Box::new(move |batch: RecordBatch| linked_rows(&batch, &targets)),
                        )
                    }
                    None => {
                        // `links` JSON as `links_to_json` writes it: `"trace_id":"<hex>"`.
                        let needles: Vec<String> = targets
                            .iter()
                            .map(|target| format!("\"trace_id\":\"{}\"", target.to_hex()))
                            .collect();
                        (
                            candidates,
                            links.links_json_idx,
                            Box::new(move |batch: RecordBatch| {
                                let column = batch
                                    .column(0)
                                    .as_any()
                                    .downcast_ref::<StringArray>()
                                    .ok_or_else(|| predicate_error("links is not text"))?;
                                Ok(column
                                    .iter()
                                    .map(|value| {
                                        Some(value.is_some_and(|text| {
                                            needles.iter().any(|needle| text.contains(needle))
                                        }))
                                    })
                                    .collect())
                            }),
                        )
                    }
                }
            }
        };
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.spans_path();
        let parquet_error =
            |error: parquet::errors::ParquetError| StoreError::corrupt(format!("{path}: {error}"));
        let mask = ProjectionMask::leaves(filters.metadata.parquet_schema(), [column_idx]);
        let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.reader(store),
            filters.metadata.clone(),
        )
        .with_row_groups(candidates)
        .with_row_filter(RowFilter::new(vec![Box::new(ArrowPredicateFn::new(
            mask, predicate,
        ))]))
        .build()
        .map_err(parquet_error)?;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(parquet_error)?;
        let mut spans = Vec::new();
        for batch in &batches {
            spans.extend(v1::decode(batch)?);
        }
        Ok(spans)
    }
}

type RowPredicate =
    Box<dyn FnMut(RecordBatch) -> Result<BooleanArray, ArrowError> + Send + 'static>;

/// Rows whose `link_trace_ids` list holds one of `targets`.
fn linked_rows(
    batch: &RecordBatch,
    targets: &HashSet<[u8; 16]>,
) -> Result<BooleanArray, ArrowError> {
    let list = batch
        .column(0)
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(|| predicate_error("link_trace_ids is not a list"))?;
    let values = list
        .values()
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .ok_or_else(|| predicate_error("link_trace_ids does not hold 16-byte ids"))?;
    let offsets = list.value_offsets();
    Ok((0..list.len())
        .map(|row| {
            if list.is_null(row) {
                return Some(false);
            }
            let start = usize::try_from(offsets[row]).unwrap_or(0);
            let end = usize::try_from(offsets[row + 1]).unwrap_or(start);
            Some((start..end.min(values.len())).any(|value_idx| {
                <&[u8; 16]>::try_from(values.value(value_idx)).is_ok_and(|id| targets.contains(id))
            }))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use muninn_model::{Link, SpanId, SpanKind, Status};
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

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

    async fn block_of(spans: &[Span]) -> (Arc<dyn ObjectStore>, BlockHandle) {
        let refs: Vec<&Span> = spans.iter().collect();
        let bytes = super::super::encode_parquet(&refs, &Default::default()).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let meta = super::super::BlockMeta {
            format_version: 1,
            block_id: "test".into(),
            partition_unix_seconds: 0,
            min_time_unix_nanos: 0,
            max_time_unix_nanos: 0,
            n_spans: spans.len() as u64,
            spans_bytes: bytes.len() as u64,
            rollup_bytes: 0,
            flush_seq: 1,
            flush_id: "f".into(),
            flush_n_blocks: 1,
        };
        let handle = BlockHandle::new(meta);
        store
            .put(&handle.spans_path(), PutPayload::from(bytes))
            .await
            .unwrap();
        (store, handle)
    }

    #[tokio::test]
    async fn a_block_without_links_answers_link_lookups_from_its_bloom_filters_alone() {
        let (store, handle) = block_of(&[span(1, Vec::new()), span(2, Vec::new())]).await;
        let filters = handle.link_filters(&store).await.unwrap();
        assert!(filters.leaf_idx.is_some());
        assert!(
            filters.blooms.iter().all(Option::is_some),
            "a row group without links still has a (rejecting) bloom filter, so it is not read"
        );
        let targets = HashSet::from([TraceId([1; 16])]);
        let found = handle
            .lookup_many(&store, ManyLookup::LinkedTo(&targets))
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
        let (store, handle) = block_of(&spans).await;
        let targets = HashSet::from([TraceId([8; 16])]);
        let found = handle
            .lookup_many(&store, ManyLookup::LinkedTo(&targets))
            .await
            .unwrap();
        let found: Vec<TraceId> = found.iter().map(|span| span.trace_id).collect();
        assert_eq!(found, vec![TraceId([1; 16]), TraceId([3; 16])]);
    }
}
