//! A WAL record's payload: one appended batch, written once by the appender and read back
//! only by recovery.
//!
//! In segments of format 2 (`MUNWAL02`) a payload starts with a byte naming its kind:
//! - `ROWS` (1), then the batch's spans and counts (postcard): batches the head holds as spans
//!   (under 8 spans) and counts alone;
//! - `COLUMNS` (2), then the length of the counts (u32 LE), the counts (postcard) and the
//!   columns the head holds as an Arrow IPC stream. Recovery reads them back as they were and
//!   takes the roll-up cells and id keys from them, without decoding a span or building a
//!   column.
//!
//! In segments of format 1 (`MUNWAL01`) every payload is a batch's spans and counts.

use muninn_model::{EventCount, Span};
use serde::{Deserialize, Serialize};

use super::head::HeadBatch;
use crate::block;
use crate::error::StoreError;
use crate::rollup::{self, RollupDelta};
use crate::wal::WalFormat;

/// A payload of spans and counts (postcard).
const ROWS: u8 = 1;
/// A payload of counts (postcard) and columns (Arrow IPC).
const COLUMNS: u8 = 2;

/// A batch's spans and counts, as written.
#[derive(Serialize)]
struct RowsRef<'a> {
    spans: &'a [Span],
    counts: &'a [EventCount],
}

/// A batch's spans and counts, as read back.
#[derive(Deserialize)]
struct Rows {
    spans: Vec<Span>,
    counts: Vec<EventCount>,
}

/// The payload of `batch`, in the kind the head holds it as.
pub(crate) fn encode(batch: &HeadBatch) -> Result<Vec<u8>, StoreError> {
    let encoding =
        |error: postcard::Error| StoreError::corrupt(format!("encoding a WAL record: {error}"));
    match (batch.columns(), batch.rows()) {
        (Some(columns), _) => {
            let counts = postcard::to_allocvec(&batch.counts).map_err(encoding)?;
            let counts_len = u32::try_from(counts.len())
                .map_err(|_| StoreError::corrupt("a WAL record's counts take over 4 GiB"))?;
            // The IPC stream takes about the columns' memory, and some 4 KB of schema.
            let capacity = 5 + counts.len() + columns.memory_bytes() as usize + 8192;
            let mut payload = Vec::with_capacity(capacity);
            payload.push(COLUMNS);
            payload.extend_from_slice(&counts_len.to_le_bytes());
            payload.extend_from_slice(&counts);
            columns.write_ipc(&mut payload)?;
            Ok(payload)
        }
        (None, spans) => {
            let spans = spans.unwrap_or_default();
            // About 300 bytes per span is typical: sized so the payload is not regrown.
            let capacity = 1 + spans.len() * 384 + batch.counts.len() * 96 + 64;
            let mut payload = Vec::with_capacity(capacity);
            payload.push(ROWS);
            let rows = RowsRef {
                spans,
                counts: &batch.counts,
            };
            postcard::to_extend(&rows, payload).map_err(encoding)
        }
    }
}

/// The head batch and roll-up cells of a payload of a segment of `format`.
pub(crate) fn decode(
    format: WalFormat,
    payload: &[u8],
) -> Result<(HeadBatch, RollupDelta), StoreError> {
    match format {
        WalFormat::V1 => rows(payload),
        WalFormat::V2 => match payload.split_first() {
            Some((&ROWS, rest)) => rows(rest),
            Some((&COLUMNS, rest)) => columns(rest),
            Some((kind, _)) => Err(StoreError::corrupt(format!(
                "a WAL record of kind {kind}: this build reads kinds {ROWS} (spans) and \
                 {COLUMNS} (columns)"
            ))),
            None => Err(StoreError::corrupt("an empty WAL record")),
        },
        // A damaged magic: the payload tells which it is, as far as it decodes.
        WalFormat::Unknown => decode(WalFormat::V2, payload).or_else(|_| rows(payload)),
    }
}

fn rows(payload: &[u8]) -> Result<(HeadBatch, RollupDelta), StoreError> {
    let Rows { spans, counts } = postcard::from_bytes(payload)
        .map_err(|error| StoreError::corrupt(format!("spans and counts: {error}")))?;
    let batch = HeadBatch::with_counts(spans, counts)?;
    let delta = batch.rollup_delta()?;
    Ok((batch, delta))
}

fn columns(payload: &[u8]) -> Result<(HeadBatch, RollupDelta), StoreError> {
    let truncated = || StoreError::corrupt("a WAL record of columns ends inside its counts");
    let (length, rest) = payload.split_first_chunk::<4>().ok_or_else(truncated)?;
    let length = u32::from_le_bytes(*length) as usize;
    let (counts, ipc) = rest.split_at_checked(length).ok_or_else(truncated)?;
    let counts: Vec<EventCount> = postcard::from_bytes(counts)
        .map_err(|error| StoreError::corrupt(format!("counts: {error}")))?;
    // The record checked out against its CRC, so the bytes are the ones written; still, a
    // panic in the Arrow IPC reader (a record of a build with another schema, a CRC collision)
    // must cost this record, not the start.
    let read = std::panic::catch_unwind(|| {
        let columns = block::head_columns_from_ipc(ipc)?;
        let delta = columns.rollup_delta()?;
        Ok::<_, StoreError>((columns, delta))
    });
    let (columns, delta) = read.unwrap_or_else(|panic| {
        Err(StoreError::corrupt(format!(
            "the Arrow IPC reader failed on the columns: {}",
            crate::error::panic_message(panic.as_ref())
        )))
    })?;
    let batch = HeadBatch::from_columns(columns, counts)?;
    let mut delta = delta;
    if !batch.counts.is_empty() {
        rollup::merge_delta(&mut delta, rollup::batch_delta(&[], &batch.counts));
    }
    Ok((batch, delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    use muninn_model::{Action, Broker};

    use crate::engine::head::tests::fleet_spans;

    fn counts() -> Vec<EventCount> {
        vec![EventCount {
            service: "billing".into(),
            stream: "orders".into(),
            broker: Broker::Kafka,
            event_type: "OrderPlaced".into(),
            action: Action::Consumed,
            minute_unix_seconds: 1_700_000_040,
            count: 12,
        }]
    }

    /// Fleet spans spread over minutes, of each kind, with and without a schema, a stream, a
    /// broker or an event type, some modified: every way a span lands in a roll-up cell.
    fn varied_spans(n: usize) -> Vec<Span> {
        use muninn_model::{AttributeValue, SpanKind};
        let mut spans = fleet_spans(n, 0);
        for (idx, span) in spans.iter_mut().enumerate() {
            span.start_unix_nanos += (idx as i64 % 9) * 17 * muninn_model::NANOS_PER_SECOND;
            span.kind = [SpanKind::Producer, SpanKind::Consumer, SpanKind::Internal][idx % 3];
            span.event.schema = match idx % 4 {
                0 => Some(format!("orders-v{}", idx % 3).into()),
                1 => Some("".into()),
                _ => None,
            };
            span.event.stream = (idx % 10 != 4).then(|| format!("stream-{}", idx % 2).into());
            span.event.broker = [Some(Broker::Kafka), Some(Broker::Nats), None][idx % 3];
            span.event.event_type = (idx % 6 != 1).then(|| "OrderPlaced".into());
            span.event.modified = idx % 8 == 3;
            if idx % 5 == 2 {
                span.resource = muninn_model::new_resource(vec![
                    (
                        "service.instance.id".into(),
                        AttributeValue::String("pod-3".into()),
                    ),
                    ("service.version".into(), AttributeValue::Int(7)),
                ]);
            }
        }
        spans
    }

    /// The cells of a delta in a stable order, to compare.
    fn sorted(delta: RollupDelta) -> Vec<String> {
        let mut cells: Vec<String> = delta.into_iter().map(|cell| format!("{cell:?}")).collect();
        cells.sort();
        cells
    }

    #[test]
    fn a_batch_comes_back_from_its_record_with_its_spans_counts_and_roll_up_cells() {
        for n_spans in [0, 3, 500] {
            let spans = varied_spans(n_spans);
            let expected_delta = rollup::batch_delta(&spans, &counts());
            let batch = HeadBatch::with_counts(spans.clone(), counts()).unwrap();
            assert_eq!(batch.columns().is_some(), n_spans >= 8);
            let payload = encode(&batch).unwrap();
            let (read, delta) = decode(WalFormat::V2, &payload).unwrap();
            assert_eq!(read.spans().unwrap(), spans, "{n_spans} spans");
            assert_eq!(read.counts, counts());
            assert_eq!(sorted(delta), sorted(expected_delta), "{n_spans} spans");
            assert_eq!(read.columns().is_some(), n_spans >= 8);
            // Found by the same ids: the keys are the same.
            for span in spans.iter().step_by(7) {
                let keys = super::super::head::SelectionKeys::of(&block::SpanSelection::Trace(
                    span.trace_id,
                ));
                assert!(read.may_hold(&keys));
                if let Some(event_id) = &span.event.event_id {
                    let keys = super::super::head::SelectionKeys::of(&block::SpanSelection::Event(
                        event_id.to_string().into(),
                    ));
                    assert!(read.may_hold(&keys), "event {event_id}");
                }
            }
        }
    }

    #[test]
    fn a_record_of_format_1_is_its_spans_and_counts() {
        let spans = fleet_spans(20, 0);
        let payload = postcard::to_allocvec(&RowsRef {
            spans: &spans,
            counts: &counts(),
        })
        .unwrap();
        let (read, delta) = decode(WalFormat::V1, &payload).unwrap();
        assert_eq!(read.spans().unwrap(), spans);
        assert_eq!(
            sorted(delta),
            sorted(rollup::batch_delta(&spans, &counts()))
        );
        let (read, _) = decode(WalFormat::Unknown, &payload).unwrap();
        assert_eq!(read.n_spans(), 20, "a damaged magic reads either format");
    }

    #[test]
    fn a_damaged_or_unknown_record_is_an_error_that_says_what_it_found() {
        let batch = HeadBatch::with_counts(fleet_spans(50, 0), counts()).unwrap();
        let payload = encode(&batch).unwrap();
        let error = decode(WalFormat::V2, &[7, 1, 2]).unwrap_err().to_string();
        assert!(error.contains("kind 7"), "{error}");
        for cut in [1, 3, 40, payload.len() / 2, payload.len() - 1] {
            assert!(
                decode(WalFormat::V2, &payload[..cut]).is_err(),
                "cut at {cut} of {}",
                payload.len()
            );
        }
    }
}
