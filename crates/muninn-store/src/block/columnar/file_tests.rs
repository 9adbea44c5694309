//! Tests of an opened `spans.parquet` (`file.rs`): look-ups by trace, event and link on files
//! of both versions, outline reads, and the pages a trace look-up selects.

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
        resource: muninn_model::empty_resource(),
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
                "tier".into(),
                AttributeValue::String(format!("t{}", span_byte % 2).into()),
            )];
            span.event.event_id = Some(if trace_byte % 3 == 0 {
                format!("order-{trace_byte}").into()
            } else {
                format!("8c4d6f0e-1b2a-4c3d-9e8f-{trace_byte:06x}{span_byte:06x}").into()
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
        // As the flush writes them: the head's batches (each with its own dictionaries of
        // services, names and attributes, repeating each other's values) joined.
        let batches: Vec<RecordBatch> = arrived
            .chunks(5)
            .map(|chunk| {
                let owned: Vec<Span> = chunk.iter().map(|span| (*span).clone()).collect();
                crate::block::v2::head_columns(&owned).unwrap().into_batch()
            })
            .collect();
        let from_head = version.encode_columns(&batches, &options).unwrap();
        assert!(
            from_sorted == from_head,
            "{version:?} wrote a different file from the head's batches"
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
            .spans(
                SpanSelection::LinkingTo(linking_to(1)),
                SpanFields::All,
                None,
            )
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
            .spans(
                SpanSelection::LinkingTo(linking_to(8)),
                SpanFields::All,
                None,
            )
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

/// v2 keeps links without attributes whose trace ids are distinct and ascending as ids
/// (`link_trace_ids` and `link_span_ids`, `links` null) and every other list of links as
/// JSON; either way they come back as sent, in whole and outline reads, and are found by
/// the traces they link to. v1 keeps them all as JSON.
#[tokio::test]
async fn links_come_back_as_sent_whether_kept_as_ids_or_as_json() {
    use arrow::array::{Array, ListArray, StringArray};
    use muninn_model::AttributeValue;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let link = |trace_byte: u8, span_byte: u8| Link {
        trace_id: TraceId([trace_byte; 16]),
        span_id: SpanId([span_byte; 8]),
        attributes: Vec::new(),
    };
    let mut with_attributes = link(8, 3);
    with_attributes.attributes =
        vec![("link.reason".into(), AttributeValue::String("batch".into()))];
    let spans = [
        span(1, vec![link(7, 1), link(8, 2)]),
        span(2, vec![link(8, 1), link(7, 2)]),
        span(3, vec![link(7, 1), link(7, 2)]),
        span(4, vec![with_attributes]),
        span(5, Vec::new()),
    ];
    // Per span: whether v2 keeps its links as ids (and not as JSON).
    let as_ids = [true, false, false, false, false];
    let traces: Arc<HashSet<TraceId>> = Arc::new(spans.iter().map(|span| span.trace_id).collect());
    for (version, layout) in versions() {
        let file = file_of(&spans, version, layout).await;
        for fields in [SpanFields::All, SpanFields::Outline] {
            let read = file
                .spans(SpanSelection::Traces(traces.clone()), fields, None)
                .await
                .unwrap();
            let links: Vec<Vec<Link>> = read.into_iter().map(|span| span.links).collect();
            let sent: Vec<Vec<Link>> = spans.iter().map(|span| span.links.clone()).collect();
            assert_eq!(links, sent, "{version:?} {fields:?}");
        }
        let linking = file
            .spans(
                SpanSelection::LinkingTo(linking_to(8)),
                SpanFields::Outline,
                None,
            )
            .await
            .unwrap();
        let linking: Vec<TraceId> = linking.iter().map(|span| span.trace_id).collect();
        assert_eq!(
            linking,
            vec![TraceId([1; 16]), TraceId([2; 16]), TraceId([4; 16])],
            "{version:?}"
        );
    }
    let refs: Vec<&Span> = spans.iter().collect();
    let bytes = FormatVersion::V2
        .encode(&refs, &Default::default())
        .unwrap();
    let batch = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let json = batch
        .column_by_name(COLUMN_LINKS)
        .and_then(|column| column.as_any().downcast_ref::<StringArray>())
        .unwrap();
    let span_ids = batch
        .column_by_name(super::COLUMN_LINK_SPAN_IDS)
        .and_then(|column| column.as_any().downcast_ref::<ListArray>())
        .unwrap();
    for (row, kept_as_ids) in as_ids.into_iter().enumerate() {
        let has_links = !spans[row].links.is_empty();
        assert_eq!(
            span_ids.is_valid(row),
            kept_as_ids,
            "row {row}: link_span_ids"
        );
        assert_eq!(
            json.is_valid(row),
            has_links && !kept_as_ids,
            "row {row}: links JSON"
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
            span.event.event_id = event_id.map(Into::into);
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
                SpanSelection::Traces(Arc::new(spans.iter().map(|span| span.trace_id).collect())),
                SpanFields::All,
                None,
            )
            .await
            .unwrap();
        assert_eq!(everything, spans, "{version:?} round trip");
        for (index, event_id) in event_ids.iter().enumerate() {
            let Some(event_id) = event_id else { continue };
            let found = file
                .spans(
                    SpanSelection::Event(Arc::from(*event_id)),
                    SpanFields::All,
                    None,
                )
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
                None,
            )
            .await
            .unwrap();
        let mixed: Vec<Option<muninn_model::Text>> =
            mixed.into_iter().map(|span| span.event.event_id).collect();
        assert_eq!(
            mixed,
            vec![
                Some("0F8FAD5B-D9CB-469F-A165-70867728950E".into()),
                Some("evt-0001".into()),
                Some("7c9e6679-7425-40de-944b-e07fc1f90ae7".into()),
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
            span.resource = vec![("host".into(), AttributeValue::String("a".into()))].into();
            span.event = EventColumns {
                event_id: Some(format!("7c9e6679-7425-40de-944b-e07fc1f90ae{trace_byte}").into()),
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
            resource: muninn_model::empty_resource(),
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
    let traces: Arc<HashSet<TraceId>> = Arc::new(spans.iter().map(|span| span.trace_id).collect());
    for (version, layout) in versions() {
        let file = file_of(&spans, version, layout).await;
        let read = |selection: SpanSelection, fields: SpanFields| {
            let file = &file;
            async move { file.spans(selection, fields, None).await.unwrap() }
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
            .filter_map(|span| span.event.event_id.as_deref().map(str::to_string))
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
                None,
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

/// The `n`th of the traces the trace id filter tests look up and never store.
fn absent_trace(n: u32) -> TraceId {
    TraceId(
        u128::from(n)
            .wrapping_mul(0xd6e8_feb8_6659_fd93_1234)
            .to_le_bytes(),
    )
}

/// The trace id filters probed in the file answer as the filters read whole do: every stored
/// trace is found, and a trace that is not stored passes exactly where Parquet's own check of
/// the same filter lets it through.
#[tokio::test]
async fn trace_id_filters_probed_in_the_file_answer_as_the_whole_filters_do() {
    let spans: Vec<Span> = (0u32..2_000)
        .map(|n| {
            let mut span = span(0, Vec::new());
            span.trace_id = TraceId(
                u128::from(n)
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c)
                    .to_be_bytes(),
            );
            span.span_id = SpanId(u64::from(n).to_be_bytes());
            span
        })
        .collect();
    for (version, layout) in versions() {
        let file = file_of(&spans, version, layout).await;
        assert!(
            file.trace_id_filters
                .iter()
                .all(|filter| matches!(filter, Some(Filter::InFile { .. }))),
            "{version:?}: our writer gives every filter's length"
        );
        let whole = file.file.blooms(file.leaves.trace_id).await.unwrap();
        for stored in &spans {
            assert_eq!(
                file.trace_row_groups(&[stored.trace_id]).await.unwrap(),
                vec![0],
                "{version:?}"
            );
        }
        let mut passed = 0;
        for n in 0u32..5_000 {
            let absent = absent_trace(n);
            let expected = whole[0].as_ref().unwrap().check(&absent.0[..])
                && file.trace_id_ranges[0].as_ref().is_none_or(|(min, max)| {
                    min.as_slice() <= &absent.0[..] && &absent.0[..] <= max.as_slice()
                });
            let probed = !file.trace_row_groups(&[absent]).await.unwrap().is_empty();
            assert_eq!(probed, expected, "{version:?}, absent trace {n}");
            passed += usize::from(probed);
        }
        assert!(
            passed < 500,
            "{version:?}: {passed} of 5,000 absent traces passed"
        );

        // Kept in memory (folded while false positives stay under 1%), the filters still find
        // every stored trace and let few absent ones through.
        let in_file = file.index_bytes().trace_id_filters;
        file.keep_trace_filters().await.unwrap();
        assert!(
            file.index_bytes().trace_id_filters > in_file + 1_000,
            "{version:?}"
        );
        assert_eq!(file.trace_filter_bytes_in_file(), 0);
        for stored in &spans {
            assert_eq!(
                file.trace_row_groups(&[stored.trace_id]).await.unwrap(),
                vec![0],
                "{version:?}, kept"
            );
        }
        let mut passed_kept = 0;
        for n in 0u32..5_000 {
            let probed = file.trace_row_groups(&[absent_trace(n)]).await.unwrap();
            passed_kept += usize::from(!probed.is_empty());
        }
        assert!(
            passed_kept < 150,
            "{version:?}: {passed_kept} of 5,000 absent traces passed the kept filters"
        );
    }
}

/// What a look-up decides before reading (`row_groups_now`: bloom filters in memory checked,
/// those in the file probed through a read of the file's bytes) is what the file's own read
/// path decides: the same spans come back for every kind of id look-up, on both versions,
/// and a trace's look-up reads one of the file's row groups, not all of them.
#[tokio::test]
async fn row_groups_decided_before_reading_find_what_the_read_path_finds() {
    let mut spans = Vec::new();
    for trace_byte in 1..=40u8 {
        let links = if trace_byte % 5 == 0 {
            vec![Link {
                trace_id: TraceId([trace_byte - 1; 16]),
                span_id: SpanId([trace_byte - 1; 8]),
                attributes: Vec::new(),
            }]
        } else {
            Vec::new()
        };
        let mut span = span(trace_byte, links);
        span.event.event_id = Some(if trace_byte % 2 == 0 {
            format!("7c9e6679-7425-40de-944b-e07fc1f90a{trace_byte:02x}").into()
        } else {
            format!("evt-{trace_byte}").into()
        });
        spans.push(span);
    }
    let options = BlockWriteOptions {
        row_group_rows: 8,
        page_rows: 4,
        ..Default::default()
    };
    for (version, layout) in versions() {
        let refs: Vec<&Span> = spans.iter().collect();
        let bytes = version.encode(&refs, &options).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("test/spans.parquet");
        store
            .put(&path, PutPayload::from(bytes.clone()))
            .await
            .unwrap();
        let file = SpansFile::open(ObjectReader::new(store, path, bytes.len() as u64), layout)
            .await
            .unwrap();
        assert_eq!(file.n_row_groups(), 5, "{version:?}");
        let read_bytes = |ranges: &[Range<u64>]| -> std::io::Result<Vec<Vec<u8>>> {
            Ok(ranges
                .iter()
                .map(|range| bytes[range.start as usize..range.end as usize].to_vec())
                .collect())
        };
        // Links are loaded by the first link look-up; until then the read path decides.
        let linking = SpanSelection::LinkingTo(linking_to(9));
        assert_eq!(file.row_groups_now(&linking, read_bytes), None);
        file.spans(linking, SpanFields::Outline, None)
            .await
            .unwrap();

        let selections = [
            SpanSelection::Trace(TraceId([17; 16])),
            SpanSelection::Trace(TraceId([200; 16])),
            SpanSelection::Traces(Arc::new(HashSet::from([
                TraceId([3; 16]),
                TraceId([33; 16]),
                TraceId([201; 16]),
            ]))),
            SpanSelection::Event(Arc::from("evt-7")),
            SpanSelection::Event(Arc::from("7c9e6679-7425-40de-944b-e07fc1f90a0c")),
            SpanSelection::Events(Arc::new(HashSet::from([
                "evt-21".to_string(),
                "7c9e6679-7425-40de-944b-e07fc1f90a1e".to_string(),
                "evt-none".to_string(),
            ]))),
            SpanSelection::LinkingTo(linking_to(24)),
            SpanSelection::LinkingTo(linking_to(2)),
        ];
        for selection in selections {
            let decided = file
                .row_groups_now(&selection, read_bytes)
                .unwrap_or_else(|| panic!("{version:?} {selection:?} decided"));
            assert!(decided.len() <= 2, "{version:?} {selection:?}: {decided:?}");
            let with = file
                .spans(selection.clone(), SpanFields::All, Some(decided))
                .await
                .unwrap();
            let without = file
                .spans(selection.clone(), SpanFields::All, None)
                .await
                .unwrap();
            assert_eq!(with, without, "{version:?} {selection:?}");
        }
        let one_trace = SpanSelection::Trace(TraceId([17; 16]));
        assert_eq!(
            file.row_groups_now(&one_trace, read_bytes),
            Some(vec![2]),
            "{version:?}: trace 17 is row 16 of 40, in the third row group"
        );
        let found = file
            .spans(one_trace.clone(), SpanFields::All, Some(vec![2]))
            .await
            .unwrap();
        assert_eq!(found, vec![spans[16].clone()], "{version:?}");
        // A probe that cannot be read leaves the decision to the read path.
        let failing = |_: &[Range<u64>]| -> std::io::Result<Vec<Vec<u8>>> {
            Err(std::io::Error::other("gone"))
        };
        assert_eq!(file.row_groups_now(&one_trace, failing), None);
    }
}
