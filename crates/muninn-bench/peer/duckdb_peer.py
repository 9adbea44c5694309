"""The DuckDB peer of Muninn's bytes at rest: the same spans written by DuckDB as one Parquet
file, zstd, sorted by trace id, with every column as a naive dump keeps it (event ids as the
UUID text they were sent as, links as JSON). Run on a data directory the benchmark kept:

    cargo run --release -p muninn-bench -- --spans 10000000 --keep-data --data-dir /tmp/bench-data
    python3 -m venv /tmp/duckdb && /tmp/duckdb/bin/pip install duckdb
    /tmp/duckdb/bin/python crates/muninn-bench/peer/duckdb_peer.py /tmp/bench-data

It prints DuckDB's bytes per span beside Muninn's (the spans.parquet files and the whole
blocks/ directory of the same data).
"""

import glob
import os
import sys

import duckdb


def main() -> None:
    data_dir = sys.argv[1]
    files = glob.glob(os.path.join(data_dir, "blocks", "**", "spans.parquet"), recursive=True)
    if not files:
        sys.exit(f"no spans.parquet under {data_dir}/blocks")
    blocks_bytes = sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(os.path.join(data_dir, "blocks"))
        for name in names
    )
    spans_bytes = sum(os.path.getsize(path) for path in files)
    out = os.path.join(data_dir, "duckdb-peer.parquet")
    connection = duckdb.connect()
    columns = [row[0] for row in connection.sql(
        f"describe select * from read_parquet({files!r}, union_by_name = true)"
    ).fetchall()]
    # Event ids back to the text they were sent as (format 2 keeps UUIDs as 16 bytes).
    event_id = (
        "coalesce(lower(regexp_replace(hex(event_id), "
        "'(.{8})(.{4})(.{4})(.{4})(.{12})', '\\1-\\2-\\3-\\4-\\5')), event_id_text)"
        if "event_id_text" in columns
        else "event_id"
    )
    # Links back to JSON text where format 2 keeps them as ids (`link_span_ids`).
    links = (
        "coalesce(links, to_json(list_transform(link_span_ids, lambda s, i: "
        "{'trace_id': lower(hex(link_trace_ids[i])), 'span_id': lower(hex(s)), 'attributes': {}})))"
        if "link_span_ids" in columns
        else "links"
    )
    rewritten = {"event_id": f"{event_id} as event_id", "links": f"{links} as links"}
    select = ", ".join(
        rewritten.get(column, f'"{column}"')
        for column in columns
        if column not in ("event_id_text", "link_span_ids")
    )
    connection.sql(
        f"copy (select {select} from read_parquet({files!r}, union_by_name = true) "
        f"order by trace_id) to '{out}' (format parquet, compression zstd)"
    )
    n_spans = connection.execute(f"select count(*) from '{out}'").fetchall()[0][0]
    peer_bytes = os.path.getsize(out)
    print(f"spans: {n_spans:,}")
    print(f"duckdb {duckdb.__version__}, zstd, sorted by trace id: {peer_bytes / n_spans:.1f} B/span")
    print(f"muninn spans.parquet files: {spans_bytes / n_spans:.1f} B/span; "
          f"blocks/ in all: {blocks_bytes / n_spans:.1f} B/span")
    os.remove(out)


if __name__ == "__main__":
    main()
