#!/usr/bin/env python3
"""The parser against DuckDB's single-thread CSV reader, side by side on one file.

    bench/duckdb_baseline.py [--lines N] [--runs R] [--bin target/release/bucketlog]

Generates one log with `bucketlog gen`, then, run after run and in turn:
  - `bucketlog parse -q LOG > /dev/null`: parse, enrich and render every record as NDJSON;
  - DuckDB (the version in scripts/requirements-test.txt), one thread:
    `COPY (SELECT * FROM read_csv(LOG, delim=' ', quote='"', header=false)) TO '/dev/null'
    (FORMAT json)`: split and type the columns and write them as NDJSON, no enrichment.
Each runs in its own process, pinned to one core when `taskset` is there. CPU time is the
process's user + system time (from wait4) for the parser, and DuckDB's own getrusage
around the query (so Python's start-up and the import are not counted against it).
The parser's time includes its one-off start (the user agent regexes, about 0.13 s of
CPU), which is why the default is a large file.
Prints a markdown table of medians and the ratio.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

DUCKDB_RUN = r"""
import resource, sys, duckdb
log = sys.argv[1]
con = duckdb.connect()
con.execute("SET threads TO 1")
con.execute("SET enable_progress_bar = false")
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
start = cpu()
# COPY answers with the number of rows it wrote.
rows = con.execute(
    "COPY (SELECT * FROM read_csv(?, delim=' ', quote='\"', escape='\"', header=false)) "
    "TO '/dev/null' (FORMAT json)",
    [log],
).fetchone()[0]
spent = cpu() - start
print(spent, rows)
"""


def pinned(cmd):
    return (["taskset", "-c", "1"] + cmd) if shutil.which("taskset") else cmd


def run_parser(binary, log):
    proc = subprocess.Popen(
        pinned([binary, "parse", "-q", log]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"bucketlog parse failed ({status})")
    return usage.ru_utime + usage.ru_stime


def run_duckdb(log, lines):
    out = subprocess.run(
        pinned([sys.executable, "-c", DUCKDB_RUN, log]),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip().splitlines()[-1].split()
    spent, rows = float(out[0]), int(out[1])
    if rows != lines:
        sys.exit(f"DuckDB read {rows} rows of {lines}: the comparison would be unfair")
    return spent


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default="target/release/bucketlog")
    args = ap.parse_args()
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "access.log")
        subprocess.run(
            [args.bin, "gen", "--lines", str(args.lines), "-o", log], check=True
        )
        size = os.path.getsize(log)
        parser, duck = [], []
        for _ in range(args.runs):
            parser.append(run_parser(args.bin, log))
            duck.append(run_duckdb(log, args.lines))
    p, d = statistics.median(parser), statistics.median(duck)
    print(
        f"{args.lines} lines, {size / 2**20:.1f} MiB, {args.runs} runs each, "
        f"interleaved; medians (all runs: parser {parser}, DuckDB {duck})\n"
    )
    print("| what | CPU s | lines per CPU-s | × parser |")
    print("|---|---:|---:|---:|")
    print(f"| `bucketlog parse -q` | {p:.3f} | {args.lines / p:,.0f} | 1.00× |")
    print(
        f"| DuckDB {duckdb.__version__}, one thread, read_csv → NDJSON "
        f"| {d:.3f} | {args.lines / d:,.0f} | {d / p:.2f}× |"
    )


if __name__ == "__main__":
    main()
