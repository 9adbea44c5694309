//! The record batches v1 and v2 write: one row per span, every column built the same way but
//! event ids, which each version stores as its [`EventIdLayout`] says.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, DictionaryArray, FixedSizeBinaryBuilder, Int32Array, Int32Builder,
    Int64Builder, ListBuilder, RecordBatch, StringArray, StringBuilder, StringDictionaryBuilder,
    TimestampNanosecondBuilder,
};
use arrow::datatypes::{Field, Int32Type, SchemaRef};
use arrow::error::ArrowError;
use muninn_model::{Broker, Link, Span, SpanKind, StatusCode};
use parquet::schema::types::ColumnPath;

use super::EventIdLayout;
use super::file::canonical_uuid;
use super::json::{JsonCache, links_to_json};
use crate::error::StoreError;

/// The item field of a list of ids `width` bytes long.
fn id_list_item(width: i32) -> Arc<Field> {
    Arc::new(Field::new(
        "item",
        arrow::datatypes::DataType::FixedSizeBinary(width),
        false,
    ))
}

/// The Parquet leaf of a list column, for the writers' settings.
fn list_leaf_path(column: &str) -> ColumnPath {
    ColumnPath::new(vec![
        column.to_string(),
        "list".to_string(),
        "item".to_string(),
    ])
}

/// The item field of `link_trace_ids`, a list of 16-byte ids.
pub(in crate::block) fn link_trace_id_item() -> Arc<Field> {
    id_list_item(16)
}

/// The Parquet leaf of `link_trace_ids`.
pub(in crate::block) fn link_trace_ids_leaf_path() -> ColumnPath {
    list_leaf_path(super::COLUMN_LINK_TRACE_IDS)
}

/// The item field of `link_span_ids`, a list of 8-byte ids.
pub(in crate::block) fn link_span_id_item() -> Arc<Field> {
    id_list_item(8)
}

/// The Parquet leaf of `link_span_ids`.
pub(in crate::block) fn link_span_ids_leaf_path() -> ColumnPath {
    list_leaf_path(super::COLUMN_LINK_SPAN_IDS)
}

/// Whether `link_trace_ids` and `link_span_ids` hold `links` whole: no link has attributes and
/// the linked trace ids are distinct and ascending (so the distinct, sorted `link_trace_ids`
/// are the links' own trace ids, in their order).
fn links_as_columns(links: &[Link]) -> bool {
    links.iter().all(|link| link.attributes.is_empty())
        && links
            .windows(2)
            .all(|pair| pair[0].trace_id.0 < pair[1].trace_id.0)
}

/// A dictionary-encoded text column's type.
pub(in crate::block) fn dictionary_utf8() -> arrow::datatypes::DataType {
    use arrow::datatypes::DataType;
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Event ids as a layout stores them: one text column (v1), or 16-byte UUIDs and the text of
/// other ids (v2).
enum EventIdBuilder {
    Text(StringBuilder),
    UuidOrText {
        uuids: FixedSizeBinaryBuilder,
        texts: StringBuilder,
    },
}

impl EventIdBuilder {
    fn new(layout: EventIdLayout, n_rows: usize) -> Self {
        match layout {
            EventIdLayout::Text => EventIdBuilder::Text(text_builder(n_rows, 36)),
            EventIdLayout::UuidOrText => EventIdBuilder::UuidOrText {
                uuids: FixedSizeBinaryBuilder::with_capacity(n_rows, 16),
                texts: text_builder(n_rows, 0),
            },
        }
    }

    fn append(&mut self, event_id: Option<&str>) -> Result<(), ArrowError> {
        match self {
            EventIdBuilder::Text(texts) => texts.append_option(event_id),
            EventIdBuilder::UuidOrText { uuids, texts } => {
                match event_id.map(|text| (text, canonical_uuid(text))) {
                    Some((_, Some(bytes))) => {
                        uuids.append_value(bytes)?;
                        texts.append_null();
                    }
                    Some((text, None)) => {
                        uuids.append_null();
                        texts.append_value(text);
                    }
                    None => {
                        uuids.append_null();
                        texts.append_null();
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Vec<ArrayRef> {
        match self {
            EventIdBuilder::Text(mut texts) => vec![Arc::new(texts.finish())],
            EventIdBuilder::UuidOrText {
                mut uuids,
                mut texts,
            } => vec![Arc::new(uuids.finish()), Arc::new(texts.finish())],
        }
    }
}

/// A text builder for `n_rows` rows of about `bytes_a_row` bytes. Sized by the batch rather than
/// arrow's default (1,024 rows and bytes): the head keeps each request's columns as they were
/// built, and a small request's columns would otherwise hold kilobytes they never use.
fn text_builder(n_rows: usize, bytes_a_row: usize) -> StringBuilder {
    StringBuilder::with_capacity(n_rows, n_rows * bytes_a_row)
}

/// A dictionary builder for `n_rows` rows of few distinct texts, sized as `text_builder` is.
fn dictionary_builder(n_rows: usize) -> StringDictionaryBuilder<Int32Type> {
    StringDictionaryBuilder::with_capacity(n_rows, n_rows.min(16), n_rows.min(16) * 16)
}

/// Where a span's row goes in a block: by trace id, then start time, then span id. Integer keys
/// compare without a call to memcmp (ids are big-endian, so the order is their bytes' order).
pub(in crate::block) fn row_order(span: &Span) -> (u128, i64, u64) {
    (
        u128::from_be_bytes(span.trace_id.0),
        span.start_unix_nanos,
        u64::from_be_bytes(span.span_id.0),
    )
}

/// Status codes in the order of their dictionary keys.
const STATUS_CODES: [StatusCode; 2] = [StatusCode::Ok, StatusCode::Error];

/// The dictionary key of `value`: its place in `all`.
fn key_of<T: PartialEq + Copy>(all: &[T], value: T) -> i32 {
    all.iter()
        .position(|candidate| *candidate == value)
        .unwrap_or(0) as i32
}

/// A dictionary column of an enum's names, its keys built without hashing a name a row (the
/// Parquet writer builds its own dictionary of the values used, so the file is the same as
/// with a dictionary of only those).
fn enum_dictionary<const N: usize>(
    keys: Int32Array,
    names: [&'static str; N],
) -> Result<ArrayRef, StoreError> {
    DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(names.to_vec())))
        .map(|array| Arc::new(array) as ArrayRef)
        .map_err(|error| StoreError::corrupt(format!("building a block: {error}")))
}

/// A JSON text column of `field`'s type from the keys `texts` gave: a dictionary of the
/// distinct texts, cast to plain text where the schema says so (v1's `attributes`).
fn text_column(
    keys: Int32Array,
    texts: JsonCache<'_>,
    field: &Field,
) -> Result<ArrayRef, StoreError> {
    let error = |error: ArrowError| StoreError::corrupt(format!("building a block: {error}"));
    let dictionary: ArrayRef = Arc::new(
        DictionaryArray::<Int32Type>::try_new(keys, Arc::new(texts.finish())).map_err(error)?,
    );
    if dictionary.data_type() == field.data_type() {
        return Ok(dictionary);
    }
    arrow::compute::cast(&dictionary, field.data_type()).map_err(error)
}

/// Builds one record batch of `schema` from spans, in the order given, with event ids as
/// `layout` stores them. Where `schema` has `link_span_ids` (v2 since December 2026), links
/// that those columns hold whole are stored there and not as JSON.
pub(in crate::block) fn encode_batch<'a>(
    spans: &[&'a Span],
    arrow_schema: &SchemaRef,
    layout: EventIdLayout,
) -> Result<RecordBatch, StoreError> {
    let n_rows = spans.len();
    let mut attribute_texts = JsonCache::<'a>::default();
    let mut resource_texts = JsonCache::<'a>::default();
    let mut trace_id = FixedSizeBinaryBuilder::with_capacity(n_rows, 16);
    let mut span_id = FixedSizeBinaryBuilder::with_capacity(n_rows, 8);
    let mut parent_span_id = FixedSizeBinaryBuilder::with_capacity(n_rows, 8);
    let mut start_time = TimestampNanosecondBuilder::with_capacity(n_rows).with_timezone("UTC");
    let mut duration = Int64Builder::with_capacity(n_rows);
    let mut service = dictionary_builder(n_rows);
    let mut name = dictionary_builder(n_rows);
    let mut kind = Int32Builder::with_capacity(n_rows);
    let mut status_code = Int32Builder::with_capacity(n_rows);
    let mut status_message = text_builder(n_rows, 0);
    let mut event_id = EventIdBuilder::new(layout, n_rows);
    let mut event_type = dictionary_builder(n_rows);
    let mut schema = dictionary_builder(n_rows);
    let mut stream = dictionary_builder(n_rows);
    let mut broker = Int32Builder::with_capacity(n_rows);
    let mut modified = BooleanBuilder::with_capacity(n_rows);
    let mut partition = Int32Builder::with_capacity(n_rows);
    let mut offset = Int64Builder::with_capacity(n_rows);
    let mut message_id = text_builder(n_rows, 36);
    // Keys into each column's distinct texts: `attributes` is a dictionary column in v2 and
    // plain text in v1, `resource` a dictionary column in both.
    let mut attribute_keys = Int32Builder::with_capacity(n_rows);
    let mut resource_keys = Int32Builder::with_capacity(n_rows);
    let mut links = text_builder(n_rows, 0);
    // Few spans have links: their ids' room grows as they come.
    let mut link_trace_ids =
        ListBuilder::with_capacity(FixedSizeBinaryBuilder::with_capacity(0, 16), n_rows)
            .with_field(link_trace_id_item());
    let mut link_span_ids = arrow_schema
        .field_with_name(super::COLUMN_LINK_SPAN_IDS)
        .is_ok()
        .then(|| {
            ListBuilder::with_capacity(FixedSizeBinaryBuilder::with_capacity(0, 8), n_rows)
                .with_field(link_span_id_item())
        });
    let arrow_error =
        |error: arrow::error::ArrowError| StoreError::corrupt(format!("building a block: {error}"));
    for span in spans {
        trace_id
            .append_value(span.trace_id.0)
            .map_err(arrow_error)?;
        span_id.append_value(span.span_id.0).map_err(arrow_error)?;
        match &span.parent_span_id {
            Some(parent) => parent_span_id.append_value(parent.0).map_err(arrow_error)?,
            None => parent_span_id.append_null(),
        }
        start_time.append_value(span.start_unix_nanos);
        duration.append_value(span.duration_nanos);
        service.append_value(&span.service);
        name.append_value(&span.name);
        kind.append_value(key_of(&SpanKind::ALL, span.kind));
        status_code.append_value(key_of(&STATUS_CODES, span.status.code));
        status_message.append_option(span.status.message.as_deref());
        let event = &span.event;
        event_id
            .append(event.event_id.as_deref())
            .map_err(arrow_error)?;
        event_type.append_option(event.event_type.as_deref());
        schema.append_option(event.schema.as_deref());
        stream.append_option(event.stream.as_deref());
        broker.append_option(event.broker.map(|broker| key_of(&Broker::ALL, broker)));
        modified.append_value(event.modified);
        partition.append_option(event.partition);
        offset.append_option(event.offset);
        message_id.append_option(event.message_id.as_deref());
        attribute_keys.append_value(attribute_texts.key(&span.attributes));
        resource_keys.append_value(resource_texts.key(&span.resource));
        if span.links.is_empty() {
            links.append_null();
            link_trace_ids.append_null();
            if let Some(link_span_ids) = link_span_ids.as_mut() {
                link_span_ids.append_null();
            }
        } else if let Some(link_span_ids) = link_span_ids
            .as_mut()
            .filter(|_| links_as_columns(&span.links))
        {
            links.append_null();
            for link in &span.links {
                link_trace_ids
                    .values()
                    .append_value(link.trace_id.0)
                    .map_err(arrow_error)?;
                link_span_ids
                    .values()
                    .append_value(link.span_id.0)
                    .map_err(arrow_error)?;
            }
            link_trace_ids.append(true);
            link_span_ids.append(true);
        } else {
            links.append_option(links_to_json(&span.links));
            if let Some(link_span_ids) = link_span_ids.as_mut() {
                link_span_ids.append_null();
            }
            let mut distinct: Vec<[u8; 16]> =
                span.links.iter().map(|link| link.trace_id.0).collect();
            distinct.sort_unstable();
            distinct.dedup();
            for linked in distinct {
                link_trace_ids
                    .values()
                    .append_value(linked)
                    .map_err(arrow_error)?;
            }
            link_trace_ids.append(true);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent_span_id.finish()),
        Arc::new(start_time.finish()),
        Arc::new(duration.finish()),
        Arc::new(service.finish()),
        Arc::new(name.finish()),
        enum_dictionary(kind.finish(), SpanKind::ALL.map(SpanKind::as_str))?,
        enum_dictionary(status_code.finish(), STATUS_CODES.map(StatusCode::as_str))?,
        Arc::new(status_message.finish()),
    ];
    let mut columns = columns;
    columns.extend(event_id.finish());
    columns.extend::<[ArrayRef; 12]>([
        Arc::new(event_type.finish()),
        Arc::new(schema.finish()),
        Arc::new(stream.finish()),
        enum_dictionary(broker.finish(), Broker::ALL.map(Broker::as_str))?,
        Arc::new(modified.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(message_id.finish()),
        text_column(
            attribute_keys.finish(),
            attribute_texts,
            arrow_schema
                .field_with_name("attributes")
                .map_err(arrow_error)?,
        )?,
        text_column(
            resource_keys.finish(),
            resource_texts,
            arrow_schema
                .field_with_name("resource")
                .map_err(arrow_error)?,
        )?,
        Arc::new(links.finish()),
        Arc::new(link_trace_ids.finish()),
    ]);
    if let Some(mut link_span_ids) = link_span_ids {
        columns.push(Arc::new(link_span_ids.finish()));
    }
    RecordBatch::try_new(arrow_schema.clone(), columns).map_err(arrow_error)
}
