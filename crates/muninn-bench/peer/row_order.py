"""What the row order of a block is worth in bytes: the spans of a data directory the benchmark
kept, written by DuckDB (zstd, row groups of 65,536 rows) in two orders, each with its bytes a
span and its largest columns:

- `trace`: by trace id, then start (how Muninn's format 2 orders a block's rows);
- `origin`: a trace whose root span links to one other trace (a consumer in a new trace) is
  put beside the trace it links to, then by trace id and start, so that the event id, message
  id and linked ids its spans repeat from the producer's lie next to them;
- `origin+column`: the same with that trace id stored as an `origin_trace_id` column, which
  a reader would need to find a trace's row group by statistics.

Both files are written by the same writer, so the difference between them is the order's.

    cargo run --release -p muninn-bench -- --spans 3000000 --workload random --count-days 0 \
        --queries 1 --query-kinds lineage --ui-visits 0 --seed 11 --keep-data --data-dir /tmp/kept
    python3 -m venv /tmp/duckdb && /tmp/duckdb/bin/pip install duckdb
    /tmp/duckdb/bin/python crates/muninn-bench/peer/row_order.py /tmp/kept
"""

import glob
import os
import sys
import tempfile

import duckdb


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: row_order.py DATA_DIR (a data directory muninn-bench kept)")
    files = glob.glob(os.path.join(sys.argv[1], "blocks", "**", "spans.parquet"), recursive=True)
    if not files:
        sys.exit(f"no spans.parquet under {sys.argv[1]}/blocks: run the benchmark with --keep-data")
    con = duckdb.connect()
    con.execute("create table s as select * from read_parquet(?, union_by_name = true)", [files])
    n_spans = con.execute("select count(*) from s").fetchone()[0]
    con.execute(
        """create table origin as
           select trace_id,
                  coalesce(min(link_trace_ids[1]) filter (where parent_span_id is null
                                                           and len(link_trace_ids) = 1),
                           trace_id) as origin
           from s group by trace_id"""
    )
    print(f"{n_spans:,} spans in {len(files)} files")
    with tempfile.TemporaryDirectory() as out:
        for name, columns, order in [
            ("trace", "s.*", "s.trace_id, s.start_time"),
            ("origin", "s.*", "origin.origin, s.trace_id, s.start_time"),
            # What a reader would need to find a trace's row group by its origin: the origin
            # stored beside each row (sorted, so nearly free).
            (
                "origin+column",
                "s.*, origin.origin as origin_trace_id",
                "origin.origin, s.trace_id, s.start_time",
            ),
        ]:
            path = os.path.join(out, f"{name}.parquet")
            con.execute(
                f"""copy (select {columns} from s join origin using (trace_id) order by {order})
                    to '{path}' (format parquet, compression zstd, row_group_size 65536)"""
            )
            columns = con.execute(
                """select path_in_schema, sum(total_compressed_size) from parquet_metadata(?)
                   group by 1 order by 2 desc limit 8""",
                [path],
            ).fetchall()
            listed = ", ".join(f"{column} {size / n_spans:.2f}" for column, size in columns)
            print(f"{name}: {os.path.getsize(path) / n_spans:.1f} B/span; {listed}")


if __name__ == "__main__":
    main()
