//! The golden data directories of the block formats, one per version or variant of one in the
//! field, under `tests/golden/`:
//! - `v1-without-link-trace-ids/`: blocks written before v1 gained its `link_trace_ids` column
//!   (links are found through their JSON text). Never regenerated: no writer produces it any
//!   more, and it is what older Muninns left on disk.
//! - `v1-with-link-trace-ids/`: blocks as the current writer writes them (links are found
//!   through the column's bloom filters), as the v1 writer (`format_version = 1`) writes them.
//! - `v2/`: blocks of format v2 as first written: one data page per column chunk, page
//!   statistics for every column, zstd on every column. Never regenerated.
//! - `v2-paged/`: blocks of format v2 with pages of at most 4,096 rows, page statistics (the
//!   column index) for `trace_id` alone, and no compression on the columns zstd gained nothing
//!   on. Never regenerated.
//! - `v2-plain-links/`: blocks of format v2 with `links` plain instead of dictionary-encoded,
//!   otherwise as `v2-paged/`. Same schema; readers read all three. Never regenerated.
//! - `v2-link-ids/`: blocks of format v2 as `v2-plain-links/` with a `link_span_ids` column
//!   (links without attributes are held as ids, `links` JSON otherwise) and statistics only on
//!   the columns whose range prunes anything. Never regenerated.
//! - `v2-dictionary-attributes/`: blocks of format v2 as the default writer writes them: as
//!   `v2-link-ids/`, with `attributes` a dictionary in the file's Arrow schema too (the Parquet
//!   column was dictionary-encoded already; the writer now hands it the distinct texts once).
//! - `v2-wal-columns/`: as `v2-dictionary-attributes/`, with a WAL segment of format 2
//!   (`MUNWAL02`), whose record holds the batch as the head's columns (Arrow IPC). The WALs of
//!   every other directory are of format 1 (`MUNWAL01`: spans and counts).
//!
//! All hold the same data: two blocks of one flush in two hourly partitions (2026-11-20 10:00
//! and 11:00 UTC), roll-up cells from spans and counts, and a WAL segment with data that was
//! never flushed. Every later Muninn must open each of them, find exactly this data, and answer
//! every question of `golden_queries.rs` alike, before and after the WAL is flushed.
//!
//! `v1-with-link-trace-ids/` and `v2-wal-columns/` are rewritten only by
//! `MUNINN_WRITE_GOLDEN_BLOCKS=1 cargo test -p muninn-store --test store write_golden`
//! (not by `UPDATE_GOLDEN`, which refreshes the server's API documents). Rewrite it only to
//! repair it: a change to what the writer puts on disk is a new variant or format version with a
//! directory of its own, and the committed directories stay. Without the variable the generator
//! test still runs: it writes the data set to a temporary directory, checks it like the
//! committed ones, and checks that its Parquet files are laid out like the committed ones
//! (schema, column order, compression, encodings, dictionaries, bloom filters, statistics),
//! and that its WAL segment has the committed one's format and kinds of record.

use std::fs::File;
use std::path::{Path, PathBuf};

use muninn_model::{Action, EventCount, NANOS_PER_MINUTE, Span};
use muninn_store::{BLOCK_FORMAT_VERSION, Store};
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::golden_queries::assert_answers;
use crate::support::{
    RollupTotals, as_looked_up, at, config, copy_dir, count, event, event_id, event_trace,
    files_under, rich_span, rollup_totals, trace, trace_id, wal_segments,
};

/// The variable that lets the generator test rewrite `v1-with-link-trace-ids/`.
const WRITE_VARIABLE: &str = "MUNINN_WRITE_GOLDEN_BLOCKS";

/// A format version (or variant of one) in the field and its committed directory.
struct Variant {
    dir_name: &'static str,
    format_version: u32,
    has_link_trace_ids: bool,
}

const WITHOUT_LINK_TRACE_IDS: Variant = Variant {
    dir_name: "v1-without-link-trace-ids",
    format_version: 1,
    has_link_trace_ids: false,
};

const WITH_LINK_TRACE_IDS: Variant = Variant {
    dir_name: "v1-with-link-trace-ids",
    format_version: 1,
    has_link_trace_ids: true,
};

const V2: Variant = Variant {
    dir_name: "v2",
    format_version: 2,
    has_link_trace_ids: true,
};

const V2_PAGED: Variant = Variant {
    dir_name: "v2-paged",
    format_version: 2,
    has_link_trace_ids: true,
};

/// Format 2 as written in early December 2026: `links` plain, without a dictionary.
const V2_PLAIN_LINKS: Variant = Variant {
    dir_name: "v2-plain-links",
    format_version: 2,
    has_link_trace_ids: true,
};

/// Format 2 as written from then until mid-December 2026: links without attributes as ids,
/// lean statistics.
const V2_LINK_IDS: Variant = Variant {
    dir_name: "v2-link-ids",
    format_version: 2,
    has_link_trace_ids: true,
};

/// Format 2 as written from then until December 7, 2026: `attributes` a dictionary in the
/// Arrow schema as well.
const V2_DICTIONARY_ATTRIBUTES: Variant = Variant {
    dir_name: "v2-dictionary-attributes",
    format_version: 2,
    has_link_trace_ids: true,
};

/// Format 2 as written since, with the WAL's records holding columns.
const V2_WAL_COLUMNS: Variant = Variant {
    dir_name: "v2-wal-columns",
    format_version: 2,
    has_link_trace_ids: true,
};

impl Variant {
    fn dir(&self) -> PathBuf {
        golden_dir(self.dir_name)
    }
}

/// `tests/golden/<dir_name>`.
pub fn golden_dir(dir_name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(dir_name)
}

fn minute_seconds(rfc3339: &str) -> i64 {
    at(rfc3339) / 1_000_000_000
}

/// Flushed: traces 1–4 at 10:51–10:54 and a rich span in trace 1 at 10:45 (hour 10), traces
/// 5–8 at 11:01–11:04 (hour 11); counts at 10:30.
fn flushed() -> (Vec<Span>, Vec<EventCount>) {
    let mut spans = Vec::new();
    for trace_number in 1..=4 {
        spans.extend(event_trace(
            trace_number,
            at("2026-11-20T10:50:00Z") + trace_number as i64 * NANOS_PER_MINUTE,
        ));
    }
    spans.push(rich_span(1, at("2026-11-20T10:45:00.123456789Z")));
    for trace_number in 5..=8 {
        spans.extend(event_trace(
            trace_number,
            at("2026-11-20T11:00:00Z") + (trace_number as i64 - 4) * NANOS_PER_MINUTE,
        ));
    }
    let counts = vec![
        count(
            "checkout",
            Action::Produced,
            minute_seconds("2026-11-20T10:30:00Z"),
            40,
        ),
        count(
            "billing",
            Action::Consumed,
            minute_seconds("2026-11-20T10:30:00Z"),
            38,
        ),
    ];
    (spans, counts)
}

/// Only in the WAL: traces 9–12 at 11:11–11:14, a rich span in trace 9 at 11:20, the producer
/// span of trace 1 delivered a second time, and a count at 11:10.
fn unflushed() -> (Vec<Span>, Vec<EventCount>) {
    let mut spans = Vec::new();
    for trace_number in 9..=12 {
        spans.extend(event_trace(
            trace_number,
            at("2026-11-20T11:10:00Z") + (trace_number as i64 - 8) * NANOS_PER_MINUTE,
        ));
    }
    spans.push(rich_span(9, at("2026-11-20T11:20:00Z")));
    spans.push(flushed().0[0].clone());
    let counts = vec![count(
        "checkout",
        Action::Produced,
        minute_seconds("2026-11-20T11:10:00Z"),
        25,
    )];
    (spans, counts)
}

/// Writes the golden data set into an empty `data_dir`, blocks in `format_version`.
async fn generate(data_dir: &Path, format_version: u32) {
    let mut config = config(data_dir);
    config.block.format_version = format_version;
    let store = Store::open(config).await.unwrap();
    let (spans, counts) = flushed();
    store.append(spans, counts).await.unwrap();
    store.flush().await.unwrap();
    let (spans, counts) = unflushed();
    store.append(spans, counts).await.unwrap();
    drop(store);
}

/// The `spans.parquet` files of a data directory, sorted by partition.
fn spans_files(data_dir: &Path) -> Vec<PathBuf> {
    files_under(data_dir)
        .into_iter()
        .filter(|file| file.ends_with("spans.parquet"))
        .map(|file| data_dir.join(file))
        .collect()
}

/// How a `spans.parquet` file is laid out, as text: what the writer's settings decide, and
/// nothing that changes from one run or one Muninn version to the next (block ids, `created_by`).
fn layout(spans_file: &Path) -> Vec<String> {
    let reader = SerializedFileReader::new(File::open(spans_file).unwrap()).unwrap();
    let metadata = reader.metadata();
    let file = metadata.file_metadata();
    let mut schema = Vec::new();
    parquet::schema::printer::print_schema(&mut schema, file.schema());
    let mut lines: Vec<String> = String::from_utf8(schema)
        .unwrap()
        .lines()
        .map(|line| format!("schema {line}"))
        .collect();
    for key_value in file.key_value_metadata().into_iter().flatten() {
        lines.push(format!(
            "key-value {}={}",
            key_value.key,
            key_value.value.as_deref().unwrap_or_default()
        ));
    }
    for (row_group_idx, row_group) in metadata.row_groups().iter().enumerate() {
        lines.push(format!(
            "row group {row_group_idx}: {} rows",
            row_group.num_rows()
        ));
        for column in row_group.columns() {
            // The values' encodings, which the writer's settings decide. `RLE` alone is left
            // out: it names the encoding of definition and repetition levels, which parquet
            // 59 listed for every column and parquet 60 lists only where levels are written
            // (the pages are the same).
            let encodings: Vec<String> = column
                .encodings()
                .map(|encoding| encoding.to_string())
                .filter(|encoding| encoding != "RLE")
                .collect();
            lines.push(format!(
                "  {}: {} {:?}{}{}{}{}{}",
                column.column_path(),
                column.compression(),
                encodings,
                if column.dictionary_page_offset().is_some() {
                    " dictionary"
                } else {
                    ""
                },
                if column.bloom_filter_offset().is_some() {
                    " bloom"
                } else {
                    ""
                },
                if column.statistics().is_some() {
                    " statistics"
                } else {
                    ""
                },
                if column.column_index_offset().is_some() {
                    " column-index"
                } else {
                    ""
                },
                if column.offset_index_offset().is_some() {
                    " offset-index"
                } else {
                    ""
                },
            ));
        }
    }
    lines
}

/// How a data directory's WAL segment is laid out, as text: its magic, and the first byte of
/// each record's payload (its kind, in format 2).
fn wal_layout(data_dir: &Path) -> Vec<String> {
    let segments = wal_segments(data_dir);
    assert_eq!(segments.len(), 1, "{}", data_dir.display());
    let bytes = std::fs::read(&segments[0]).unwrap();
    let mut lines = vec![format!("magic {}", String::from_utf8_lossy(&bytes[..8]))];
    let mut position = 8;
    while position + 16 <= bytes.len() {
        let length = u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap());
        let payload = position + 16;
        lines.push(format!("record of kind {}", bytes[payload]));
        position = payload + length as usize;
    }
    lines
}

fn has_link_trace_ids(spans_file: &Path) -> bool {
    layout(spans_file)
        .iter()
        .any(|line| line.contains("link_trace_ids"))
}

/// Opens a copy of a golden data set and checks that it holds exactly the data above and
/// answers every question alike, before and after its WAL is flushed into new blocks.
async fn check(golden: &Path, variant: &Variant) {
    let has_link_column = variant.has_link_trace_ids;
    let spans_files = spans_files(golden);
    assert_eq!(spans_files.len(), 2);
    for spans_file in &spans_files {
        assert_eq!(
            has_link_trace_ids(spans_file),
            has_link_column,
            "{} is not of the variant it stands for",
            spans_file.display()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    copy_dir(golden, dir.path());
    assert_eq!(
        wal_segments(dir.path()).len(),
        1,
        "the golden directory has one WAL segment"
    );
    let store = Store::open(config(dir.path())).await.unwrap();

    let blocks = store.blocks();
    let partitions: Vec<i64> = blocks
        .iter()
        .map(|meta| meta.partition_unix_seconds)
        .collect();
    assert_eq!(
        partitions,
        vec![
            minute_seconds("2026-11-20T10:00:00Z"),
            minute_seconds("2026-11-20T11:00:00Z")
        ]
    );
    assert_eq!(
        blocks.iter().map(|meta| meta.n_spans).collect::<Vec<_>>(),
        vec![13, 12]
    );
    assert!(
        blocks
            .iter()
            .all(|meta| meta.format_version == variant.format_version && meta.flush_n_blocks == 2)
    );
    assert_eq!(blocks[0].flush_id, blocks[1].flush_id);
    assert_eq!(store.stats().head_spans, 14, "the WAL segment is replayed");
    assert_eq!(
        rollup_totals(&store),
        RollupTotals {
            spans: 27,
            seen: 103
        }
    );
    assert_golden_data(&store).await;
    let name = golden.file_name().unwrap().to_string_lossy().into_owned();
    assert_answers(&store, &name).await;

    // The copy keeps working: flushing the replayed data and reopening changes nothing visible.
    // Two blocks: the redelivered span of trace 1 belongs to hour 10, the rest to hour 11.
    assert_eq!(store.flush().await.unwrap().n_blocks, 2);
    drop(store);
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(
        (store.stats().block_spans, store.stats().head_spans),
        (39, 0)
    );
    assert_eq!(
        rollup_totals(&store),
        RollupTotals {
            spans: 27,
            seen: 103
        }
    );
    assert_golden_data(&store).await;
    assert_answers(&store, &format!("{name}, flushed and reopened")).await;
}

/// Every span comes back from its trace field for field, and from its event.
async fn assert_golden_data(store: &Store) {
    let all: Vec<Span> = [flushed().0, unflushed().0].concat();
    for trace_number in 1..=12 {
        let expected = as_looked_up(
            all.iter()
                .filter(|span| span.trace_id == trace_id(trace_number))
                .cloned(),
        );
        let expected_len = if trace_number == 1 || trace_number == 9 {
            4
        } else {
            3
        };
        assert_eq!(expected.len(), expected_len);
        assert_eq!(
            trace(store, trace_id(trace_number)).await,
            expected,
            "trace {trace_number}"
        );
        let expected_event = as_looked_up(
            all.iter()
                .filter(|span| span.event.event_id.as_deref() == Some(&*event_id(trace_number)))
                .cloned(),
        );
        assert_eq!(
            event(store, &event_id(trace_number)).await,
            expected_event,
            "event {trace_number}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v1_without_link_trace_ids_opens_and_answers_every_query() {
    check(&WITHOUT_LINK_TRACE_IDS.dir(), &WITHOUT_LINK_TRACE_IDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v1_with_link_trace_ids_opens_and_answers_every_query() {
    check(&WITH_LINK_TRACE_IDS.dir(), &WITH_LINK_TRACE_IDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v2_opens_and_answers_every_query() {
    check(&V2.dir(), &V2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v2_paged_opens_and_answers_every_query() {
    check(&V2_PAGED.dir(), &V2_PAGED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v2_plain_links_opens_and_answers_every_query() {
    check(&V2_PLAIN_LINKS.dir(), &V2_PLAIN_LINKS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v2_link_ids_opens_and_answers_every_query() {
    check(&V2_LINK_IDS.dir(), &V2_LINK_IDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v2_dictionary_attributes_opens_and_answers_every_query() {
    check(&V2_DICTIONARY_ATTRIBUTES.dir(), &V2_DICTIONARY_ATTRIBUTES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_v2_wal_columns_opens_and_answers_every_query() {
    check(&V2_WAL_COLUMNS.dir(), &V2_WAL_COLUMNS).await;
}

/// Writes the data set with the writer of `variant`'s format version and checks it like the
/// committed directory, whose layout it must match; rewrites that directory with
/// `MUNINN_WRITE_GOLDEN_BLOCKS=1`.
async fn write_golden(variant: &Variant) {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), variant.format_version).await;
    for file in files_under(dir.path()) {
        let bytes = std::fs::metadata(dir.path().join(&file)).unwrap().len();
        assert!(
            bytes < 16 * 1024,
            "{} is {bytes} bytes; golden files should stay small",
            file.display()
        );
    }
    check(dir.path(), variant).await;
    let golden = variant.dir();
    if std::env::var_os(WRITE_VARIABLE).is_some_and(|value| value == "1") {
        if golden.exists() {
            std::fs::remove_dir_all(&golden).unwrap();
        }
        copy_dir(dir.path(), &golden);
        eprintln!("wrote {}:", golden.display());
        for file in files_under(&golden) {
            eprintln!("  {}", file.display());
        }
        return;
    }
    let fresh: Vec<Vec<String>> = spans_files(dir.path())
        .iter()
        .map(|file| layout(file))
        .collect();
    let committed: Vec<Vec<String>> = spans_files(&golden)
        .iter()
        .map(|file| layout(file))
        .collect();
    assert_eq!(
        fresh,
        committed,
        "the writer lays out spans.parquet differently from {}; if that is intended, it is a \
         new variant or format version with a golden directory of its own",
        golden.display()
    );
    // The WAL does not depend on the block format: it is compared for the default's directory,
    // the one written last.
    if variant.dir_name != V2_WAL_COLUMNS.dir_name {
        return;
    }
    assert_eq!(
        wal_layout(dir.path()),
        wal_layout(&golden),
        "the WAL is written differently from {}'s; if that is intended, it is a new variant \
         with a golden directory of its own",
        golden.display()
    );
}

/// The v1 writer (still selectable, `format_version = 1`) writes what
/// `v1-with-link-trace-ids/` holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_golden_v1_with_link_trace_ids() {
    write_golden(&WITH_LINK_TRACE_IDS).await;
}

/// The default writer writes what `v2-wal-columns/` holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_golden_v2_wal_columns() {
    assert_eq!(BLOCK_FORMAT_VERSION, V2_WAL_COLUMNS.format_version);
    write_golden(&V2_WAL_COLUMNS).await;
}

/// A block of a format version this build does not read stops `Store::open` with an error that
/// names the block and the versions this build reads, rather than being skipped or misread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_of_an_unknown_format_version_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&WITH_LINK_TRACE_IDS.dir(), dir.path());
    let meta_file = files_under(dir.path())
        .into_iter()
        .find(|file| file.ends_with("meta.json"))
        .unwrap();
    let meta_path = dir.path().join(&meta_file);
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["format_version"] = 99.into();
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();

    let Err(error) = Store::open(config(dir.path())).await else {
        panic!("a block of format version 99 was opened");
    };
    assert_eq!(error.kind, muninn_store::StoreErrorKind::Corrupt);
    let block_dir = meta_file.parent().unwrap().to_string_lossy().into_owned();
    assert!(
        error.message.contains(&format!("{block_dir}/meta.json"))
            && error
                .message
                .contains("block format version 99 is not one this muninn reads (it reads 1, 2)"),
        "{}",
        error.message
    );
}
