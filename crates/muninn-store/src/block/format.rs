//! What generic block code knows of format versions, and all it knows: which versions this
//! build reads, how the version it writes encodes spans, and what an opened `spans.parquet`
//! answers. Each version is a module of its own (`v1/`) that alone knows its schema, encoding
//! and read path.
//!
//! Versions are an enum, not a trait object: the reads are async, and matching on a closed set
//! keeps their futures `Send` without boxing. A new version adds a module, a `FormatVersion`
//! and a `SpansFile` variant, and the compiler lists every match that must route to it.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use muninn_model::{Span, TraceId};

use super::columnar;
use super::reader::ObjectReader;
use super::{BlockMeta, BlockWriteOptions, v1, v2};
use crate::error::{StoreError, StoreErrorKind};
use crate::scan::SpanQuery;

/// A block format version this build reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormatVersion {
    V1,
    V2,
}

impl FormatVersion {
    /// Every version this build reads.
    const READ: [FormatVersion; 2] = [FormatVersion::V1, FormatVersion::V2];

    /// The version new blocks are written in unless a store is told otherwise
    /// (`StoreConfig::block_format`).
    pub(crate) const WRITTEN: FormatVersion = FormatVersion::V2;

    /// The version's number in `meta.json`.
    pub(crate) const fn number(self) -> u32 {
        match self {
            FormatVersion::V1 => 1,
            FormatVersion::V2 => 2,
        }
    }

    /// The version of the block `meta` describes, or an error naming `block` (its directory
    /// or meta file) and the versions this build reads.
    pub(crate) fn of(meta: &BlockMeta, block: impl fmt::Display) -> Result<Self, StoreError> {
        Self::READ
            .into_iter()
            .find(|version| version.number() == meta.format_version)
            .ok_or_else(|| {
                let read: Vec<String> = Self::READ
                    .iter()
                    .map(|version| version.number().to_string())
                    .collect();
                StoreError::corrupt(format!(
                    "{block}: block format version {} is not one this muninn reads (it reads {}); \
                     open this data directory with the muninn that wrote it, or a later one",
                    meta.format_version,
                    read.join(", ")
                ))
            })
    }

    /// The version a store is configured to write, or an error naming the setting and the
    /// versions this build writes.
    pub(crate) fn writable(number: u32) -> Result<Self, StoreError> {
        Self::READ
            .into_iter()
            .find(|version| version.number() == number)
            .ok_or_else(|| {
                StoreError::new(StoreErrorKind::Config, format!(
                    "block format_version {number} is not one this muninn writes (it writes 1 or 2)"
                ))
            })
    }

    /// A writer that takes spans a row group at a time, already in order (compaction), sized
    /// for row groups like `sample`; `None` for v1, which writes whole files only.
    pub(crate) fn spans_writer(
        self,
        sample: &[&Span],
        options: &BlockWriteOptions,
    ) -> Option<Result<v2::SpansWriter, StoreError>> {
        match self {
            FormatVersion::V1 => None,
            FormatVersion::V2 => Some(v2::SpansWriter::new(sample, options)),
        }
    }

    /// Encodes spans, in any order, as a `spans.parquet` of this version, its rows sorted by
    /// trace id, then start time, then span id.
    pub(crate) fn encode(
        self,
        spans: &[&Span],
        options: &BlockWriteOptions,
    ) -> Result<Vec<u8>, StoreError> {
        match self {
            FormatVersion::V1 => {
                let mut sorted = spans.to_vec();
                sorted.sort_unstable_by_key(|span| columnar::row_order(span));
                v1::encode_file(&sorted, options)
            }
            FormatVersion::V2 => v2::encode_file(spans, options),
        }
    }

    /// Encodes batches of the head's columns (`v2::head_columns`), rows in any order, as a
    /// `spans.parquet` of this version: v2 writes the columns as they are, v1 from their spans.
    pub(crate) fn encode_columns(
        self,
        batches: &[arrow::array::RecordBatch],
        options: &BlockWriteOptions,
    ) -> Result<Vec<u8>, StoreError> {
        match self {
            FormatVersion::V1 => {
                let spans = columnar::spans_of(batches)?;
                let refs: Vec<&Span> = spans.iter().collect();
                self.encode(&refs, options)
            }
            FormatVersion::V2 => v2::encode_columns(batches, options),
        }
    }
}

/// Which of a span's fields a look-up reads from blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanFields {
    /// Every field.
    All,
    /// Where the span sits among traces and events, and nothing else: trace id, span id,
    /// parent span id, start time, service, name, kind, event id and links. Every other field
    /// is left empty (duration 0, status ok without a message, no attributes or resource, the
    /// event's other fields absent). A look-up that follows ids across traces reads a third of
    /// the columns this way, and none of the large ones (attributes, message ids). Spans still
    /// in memory come back whole.
    Outline,
}

/// The spans of a block a read is for. Owned and cheap to clone (sets are shared), so that
/// each block's read can run as its own task and keep its own reference in its row filter.
#[derive(Debug, Clone)]
pub(crate) enum SpanSelection {
    /// The spans of one trace.
    Trace(TraceId),
    /// The spans carrying one event id.
    Event(Arc<str>),
    /// The spans of any of these traces.
    Traces(Arc<HashSet<TraceId>>),
    /// The spans carrying any of these event ids.
    Events(Arc<HashSet<String>>),
    /// The spans with a link to a span of one of these traces. A format may answer with more
    /// (a text match); the caller checks the links of what it gets.
    LinkingTo(Arc<HashSet<TraceId>>),
    /// The spans that match a search's time range and column predicates.
    Matching(Arc<SpanQuery>),
}

impl SpanSelection {
    /// Whether the selection names no ids at all, and so selects nothing.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            SpanSelection::Traces(ids) | SpanSelection::LinkingTo(ids) => ids.is_empty(),
            SpanSelection::Events(ids) => ids.is_empty(),
            SpanSelection::Trace(_) | SpanSelection::Event(_) | SpanSelection::Matching(_) => false,
        }
    }
}

/// A block's `spans.parquet`, opened in the version its meta names: v1 and v2 share one read
/// path (`columnar/`), configured by how the version stores event ids.
pub(crate) type SpansFile = columnar::SpansFile;

/// Opens a block's `spans.parquet` in the version its meta names.
pub(crate) async fn open_spans_file(
    meta: &BlockMeta,
    reader: ObjectReader,
) -> Result<SpansFile, StoreError> {
    match FormatVersion::of(meta, reader.path())? {
        FormatVersion::V1 => v1::open(reader).await,
        FormatVersion::V2 => v2::open(reader).await,
    }
}
