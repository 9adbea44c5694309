//! Archive file format v1: one Parquet file holds a run of consecutive messages of one
//! partition, one row per message with payload, key and headers side by side. What this file
//! writes is what DuckDB and Spark read (`docs/archive.md` lists the columns): a change here
//! is a format change.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, RecordBatch,
    StringBuilder, StructBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{
    DataType, Field, Fields, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit,
    TimestampMillisecondType,
};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{ArchiveError, Result};
use crate::message::{Header, Message, SourceBroker, TimestampType};

/// The version in every file's key-value metadata (`muninn.archive.format`) and path.
pub const ARCHIVE_FORMAT_VERSION: u32 = 1;

const ROW_GROUP_ROWS: usize = 16_384;
const ZSTD_LEVEL: i32 = 1;

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

fn headers_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(header_fields()), false))
}

/// The columns, in order.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("broker", DataType::Utf8, false),
        Field::new("stream", DataType::Utf8, false),
        Field::new("subject", DataType::Utf8, true),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("timestamp_type", DataType::Utf8, false),
        Field::new("key", DataType::Binary, true),
        Field::new("headers", DataType::List(headers_item()), false),
        Field::new("payload", DataType::Binary, true),
        Field::new("event_id", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("event_schema", DataType::Utf8, true),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
    ]))
});

fn parquet_error(error: parquet::errors::ParquetError) -> ArchiveError {
    ArchiveError::corrupt(format!("writing parquet: {error}"))
}

/// Encodes `messages` (one partition, ascending offsets) as one Parquet file.
pub fn encode(messages: &[Message]) -> Result<Vec<u8>> {
    let capacity = messages.iter().map(Message::size_bytes).sum::<usize>() / 2;
    let mut writer = FileWriter::new(messages.len(), capacity)?;
    writer.write(messages)?;
    writer.finish()
}

/// One archive file written in pieces (compaction merges files through it without holding all
/// their messages): the same settings, row groups and bloom filters as [`encode`] of the same
/// messages at once.
pub struct FileWriter {
    writer: ArrowWriter<Vec<u8>>,
}

impl FileWriter {
    /// A file of `n_messages` in all (which sizes the bloom filters), `capacity` bytes
    /// reserved for its output.
    pub fn new(n_messages: usize, capacity: usize) -> Result<FileWriter> {
        let writer = ArrowWriter::try_new(
            Vec::with_capacity(capacity),
            SCHEMA.clone(),
            Some(properties(n_messages)?),
        )
        .map_err(parquet_error)?;
        Ok(FileWriter { writer })
    }

    /// Appends `messages` (ascending offsets, after those written before).
    pub fn write(&mut self, messages: &[Message]) -> Result<()> {
        for chunk in messages.chunks(ROW_GROUP_ROWS) {
            self.writer
                .write(&to_batch(chunk)?)
                .map_err(parquet_error)?;
        }
        Ok(())
    }

    /// The file's bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        self.writer.into_inner().map_err(parquet_error)
    }
}

fn properties(n_messages: usize) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(parquet_error)?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!(
            "muninn {} (archive format v{ARCHIVE_FORMAT_VERSION})",
            env!("CARGO_PKG_VERSION")
        ))
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            "muninn.archive.format".to_owned(),
            ARCHIVE_FORMAT_VERSION.to_string(),
        )]));
    for column in ["key", "payload", "event_id", "trace_id", "span_id"] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    // Min/max of opaque bytes helps no reader and costs a comparison per value.
    for column in ["key", "payload"] {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
    }
    let per_row_group = (n_messages.min(ROW_GROUP_ROWS) as u64 * 5 / 4).max(64);
    for column in ["event_id", "trace_id"] {
        builder = builder
            .set_column_bloom_filter_enabled(ColumnPath::from(column), true)
            .set_column_bloom_filter_max_ndv(ColumnPath::from(column), per_row_group);
    }
    Ok(builder.build())
}

fn to_batch(messages: &[Message]) -> Result<RecordBatch> {
    let n = messages.len();
    let mut broker = StringBuilder::with_capacity(n, n * 5);
    let mut stream = StringBuilder::with_capacity(n, n * 8);
    let mut subject = StringBuilder::new();
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut timestamp = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut timestamp_type = StringBuilder::with_capacity(n, n * 11);
    let mut key = BinaryBuilder::new();
    let payload_bytes = messages
        .iter()
        .map(|message| message.payload.as_ref().map_or(0, Vec::len))
        .sum();
    let mut payload = BinaryBuilder::with_capacity(n, payload_bytes);
    let mut headers =
        ListBuilder::new(StructBuilder::from_fields(header_fields(), 0)).with_field(headers_item());
    let mut event_id = StringBuilder::new();
    let mut event_type = StringBuilder::new();
    let mut event_schema = StringBuilder::new();
    let mut trace_id = StringBuilder::new();
    let mut span_id = StringBuilder::new();
    for message in messages {
        broker.append_value(message.broker.as_str());
        stream.append_value(&message.stream);
        subject.append_option(message.subject.as_deref());
        partition.append_value(message.partition);
        offset.append_value(message.offset);
        timestamp.append_value(message.timestamp_ms);
        timestamp_type.append_value(message.timestamp_type.as_str());
        key.append_option(message.key.as_deref());
        payload.append_option(message.payload.as_deref());
        let items = headers.values();
        for header in &message.headers {
            items
                .field_builder::<StringBuilder>(0)
                .expect("the name field is a string")
                .append_value(&header.name);
            items
                .field_builder::<BinaryBuilder>(1)
                .expect("the value field is binary")
                .append_option(header.value.as_deref());
            items.append(true);
        }
        headers.append(true);
        event_id.append_option(message.event_id.as_deref());
        event_type.append_option(message.event_type.as_deref());
        event_schema.append_option(message.event_schema.as_deref());
        trace_id.append_option(message.trace_id.as_deref());
        span_id.append_option(message.span_id.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(broker.finish()),
        Arc::new(stream.finish()),
        Arc::new(subject.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(timestamp.finish()),
        Arc::new(timestamp_type.finish()),
        Arc::new(key.finish()),
        Arc::new(headers.finish()),
        Arc::new(payload.finish()),
        Arc::new(event_id.finish()),
        Arc::new(event_type.finish()),
        Arc::new(event_schema.finish()),
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
    ];
    RecordBatch::try_new(SCHEMA.clone(), columns)
        .map_err(|error| ArchiveError::corrupt(format!("building an archive batch: {error}")))
}

/// Decodes a whole archive file; `name` is for error messages.
pub fn decode(name: &str, bytes: Bytes) -> Result<Vec<Message>> {
    let corrupt = |error: &dyn std::fmt::Display| {
        ArchiveError::corrupt(format!("archive file {name}: {error}"))
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| corrupt(&e))?;
    let version = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|pairs| {
            pairs
                .iter()
                .find(|pair| pair.key == "muninn.archive.format")
                .and_then(|pair| pair.value.clone())
        });
    if version.as_deref() != Some("1") {
        return Err(corrupt(&format!(
            "archive format {} is not one this build reads (it reads 1)",
            version.as_deref().unwrap_or("(none)")
        )));
    }
    let reader = builder.build().map_err(|e| corrupt(&e))?;
    let mut messages = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(&e))?;
        from_batch(&batch, &mut messages).map_err(|e| corrupt(&e))?;
    }
    Ok(messages)
}

fn from_batch(batch: &RecordBatch, out: &mut Vec<Message>) -> Result<(), String> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("column {name} is missing"))
    };
    let strings = |name: &str| {
        column(name).and_then(|c| {
            c.as_string_opt::<i32>()
                .ok_or_else(|| format!("column {name} is not a string"))
        })
    };
    let binaries = |name: &str| {
        column(name).and_then(|c| {
            c.as_binary_opt::<i32>()
                .ok_or_else(|| format!("column {name} is not binary"))
        })
    };
    let broker = strings("broker")?;
    let stream = strings("stream")?;
    let subject = strings("subject")?;
    let partition = column("partition")?
        .as_primitive_opt::<Int32Type>()
        .ok_or("column partition is not int32")?;
    let offset = column("offset")?
        .as_primitive_opt::<Int64Type>()
        .ok_or("column offset is not int64")?;
    let timestamp = column("timestamp")?
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or("column timestamp is not a millisecond timestamp")?;
    let timestamp_type = strings("timestamp_type")?;
    let key = binaries("key")?;
    let payload = binaries("payload")?;
    let headers = column("headers")?
        .as_list_opt::<i32>()
        .ok_or("column headers is not a list")?;
    let header_items = headers
        .values()
        .as_struct_opt()
        .ok_or("headers are not structs")?;
    let header_names = header_items
        .column(0)
        .as_string_opt::<i32>()
        .ok_or("header names are not strings")?;
    let header_values = header_items
        .column(1)
        .as_binary_opt::<i32>()
        .ok_or("header values are not binary")?;
    let event_id = strings("event_id")?;
    let event_type = strings("event_type")?;
    let event_schema = strings("event_schema")?;
    let trace_id = strings("trace_id")?;
    let span_id = strings("span_id")?;
    let text = |array: &arrow::array::StringArray, row: usize| {
        (!array.is_null(row)).then(|| array.value(row).to_owned())
    };
    let bytes = |array: &arrow::array::BinaryArray, row: usize| {
        (!array.is_null(row)).then(|| array.value(row).to_vec())
    };
    out.reserve(batch.num_rows());
    for row in 0..batch.num_rows() {
        let offsets = headers.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        out.push(Message {
            broker: SourceBroker::parse(broker.value(row))
                .ok_or_else(|| format!("unknown broker {:?}", broker.value(row)))?,
            stream: stream.value(row).to_owned(),
            subject: text(subject, row),
            partition: partition.value(row),
            offset: offset.value(row),
            timestamp_ms: timestamp.value(row),
            timestamp_type: TimestampType::parse(timestamp_type.value(row))
                .ok_or_else(|| format!("unknown timestamp type {:?}", timestamp_type.value(row)))?,
            key: bytes(key, row),
            headers: (start..end)
                .map(|item| Header {
                    name: header_names.value(item).to_owned(),
                    value: bytes(header_values, item),
                })
                .collect(),
            payload: bytes(payload, row),
            event_id: text(event_id, row),
            event_type: text(event_type, row),
            event_schema: text(event_schema, row),
            trace_id: text(trace_id, row),
            span_id: text(span_id, row),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(offset: i64) -> Message {
        Message::from_broker(
            SourceBroker::Kafka,
            "orders".into(),
            None,
            2,
            offset,
            1_700_000_000_000 + offset,
            TimestampType::CreateTime,
            (offset % 3 != 0).then(|| format!("key-{offset}").into_bytes()),
            vec![
                Header {
                    name: "b".into(),
                    value: Some(vec![0, 255, offset as u8]),
                },
                Header {
                    name: "n".into(),
                    value: None,
                },
                Header {
                    name: "b".into(),
                    value: Some(vec![]),
                },
            ],
            (offset % 5 != 0).then(|| vec![offset as u8; 300]),
        )
    }

    #[test]
    fn a_file_decodes_to_the_same_messages_byte_for_byte() {
        let messages: Vec<Message> = (0..40_000).map(sample).collect();
        let file = encode(&messages).unwrap();
        assert_eq!(decode("test", Bytes::from(file)).unwrap(), messages);
    }

    #[test]
    fn a_file_written_in_pieces_is_the_file_written_at_once() {
        let messages: Vec<Message> = (0..20_000).map(sample).collect();
        let mut writer = FileWriter::new(messages.len(), 0).unwrap();
        for piece in [&messages[..7], &messages[7..16_390], &messages[16_390..]] {
            writer.write(piece).unwrap();
        }
        let pieces = writer.finish().unwrap();
        assert_eq!(
            decode("pieces", Bytes::from(pieces.clone())).unwrap(),
            messages
        );
        let at_once = encode(&messages).unwrap();
        let row_groups = |file: Vec<u8>| {
            ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file))
                .unwrap()
                .metadata()
                .row_groups()
                .iter()
                .map(|group| group.num_rows())
                .collect::<Vec<_>>()
        };
        assert_eq!(row_groups(pieces), row_groups(at_once));
    }

    #[test]
    fn a_file_of_another_format_is_refused_by_name() {
        let error = decode("x.parquet", Bytes::from_static(b"PAR1 not really")).unwrap_err();
        assert!(error.message.contains("archive file x.parquet"), "{error}");
    }
}
