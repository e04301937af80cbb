#!/usr/bin/env python3
"""One simulated day of S3 access-log delivery, curated and compacted, then queried.

    .venv/bin/python bench/lake_day.py --bin target/release/bucketlog [--objects-per-hour 100]

- Delivery: for each hour of one day, OBJECTS_PER_HOUR log objects (one per front-end
  host flush), each `bucketlog gen` output covering a random 5-minute window of that hour
  with LINES lines (one source bucket, as S3 writes one log object per source bucket), named as S3 names them.
- Curated: every object through the handler (`bucketlog replay`, local folders, metrics
  off), so one curated object per log object per source-bucket partition.
- Lake: `bucketlog compact --settle-minutes 0`, under /usr/bin/time for CPU and peak RSS.
- Queries: three typical DuckDB queries over the curated NDJSON and over the lake, run
  alternately, best of three each, in one process.

Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import duckdb

DAY_START = 1_763_596_800  # 2025-11-20T00:00:00Z
LOG_BUCKET = "bench-logs"


def sizes(root, suffixes):
    count = total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(suffixes):
                count += 1
                total += os.path.getsize(os.path.join(folder, name))
    return count, total


def deliver(binary, store, hours, objects_per_hour, lines, seed):
    rng = random.Random(seed)
    raw = os.path.join(store, LOG_BUCKET, "raw")
    os.makedirs(raw, exist_ok=True)
    records = []
    for hour in range(hours):
        for n in range(objects_per_hour):
            start = DAY_START + hour * 3600 + rng.randrange(0, 3600 - 300)
            flushed = time.gmtime(start + 300 + rng.randrange(0, 60))
            name = time.strftime("%Y-%m-%d-%H-%M-%S-", flushed) + f"{hour:02}{n:04}BENCH{seed:04}"
            subprocess.run(
                [binary, "gen", "-n", str(lines), "--seed", str(seed * 100_000 + hour * 1000 + n),
                 "--start-unix", str(start), "--span-seconds", "300", "--shape", "buckets:1", "-o",
                 os.path.join(raw, name)],
                check=True)
            records.append({
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2025-11-20T00:05:13.045Z", "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AROAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "10.0.0.1"},
                "responseElements": {},
                "s3": {"s3SchemaVersion": "1.0", "configurationId": "raw",
                       "bucket": {"name": LOG_BUCKET, "arn": f"arn:aws:s3:::{LOG_BUCKET}"},
                       "object": {"key": f"raw/{name}", "size": 1, "eTag": "x",
                                  "sequencer": "1"}}})
    return records


def timed(command, env):
    """Runs `command` under /usr/bin/time; returns (cpu seconds, peak RSS MiB)."""
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", report.name] + command,
                       check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        user, system, rss_kib = report.read().split()[-3:]
    return float(user) + float(system), int(rss_kib) / 1024


QUERIES = {
    "top requesters (day)": """
        SELECT requester, count(*) AS requests FROM {t}
        GROUP BY requester ORDER BY requests DESC, requester LIMIT 10""",
    "403s by IP, one hour": """
        SELECT remote_ip, count(*) AS forbidden FROM {t}
        WHERE dt = '2025-11-20' AND hour = 13 AND http_status = 403
        GROUP BY remote_ip ORDER BY forbidden DESC, remote_ip LIMIT 10""",
    "bytes by key prefix (day)": """
        SELECT split_part(key_decoded, '/', 1) AS prefix, sum(bytes_sent) AS bytes FROM {t}
        GROUP BY prefix ORDER BY bytes DESC, prefix LIMIT 10""",
}


def query_times(out_bucket, threads):
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    curated = os.path.join(out_bucket, "curated", "**", "*.ndjson.gz")
    lake = os.path.join(out_bucket, "lake", "**", "*.parquet")
    sources = {
        "ndjson": f"read_json('{curated}', format = 'newline_delimited', hive_partitioning = true)",
        "lake": f"read_parquet('{lake}', hive_partitioning = true)",
    }
    results = {}
    for name, sql in QUERIES.items():
        best = {}
        answers = {}
        for _ in range(3):
            for source, table in sources.items():
                started = time.perf_counter()
                answers[source] = con.execute(sql.format(t=table)).fetchall()
                elapsed = time.perf_counter() - started
                best[source] = min(best.get(source, elapsed), elapsed)
        if sorted(map(str, answers["ndjson"])) != sorted(map(str, answers["lake"])):
            sys.exit(f"{name}: the lake and the NDJSON disagree")
        results[name] = best
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/bucketlog")
    parser.add_argument("--objects-per-hour", type=int, default=120)
    parser.add_argument("--lines", type=int, default=400)
    parser.add_argument("--hours", type=int, default=24,
                        help="hours of the day delivered (1 with many objects: one big partition)")
    parser.add_argument("--no-queries", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="bucketlog-lake-day-")
    if args.keep:
        shutil.rmtree(work, ignore_errors=True)
    store, out = os.path.join(work, "store"), os.path.join(work, "out")
    binary = os.path.abspath(args.bin)
    records = deliver(binary, store, args.hours, args.objects_per_hour, args.lines, args.seed)
    # One replay per delivered hour. The local detection state (a JSON file rewritten
    # after every object) grows with the day, which would make one replay of the whole
    # day quadratic; it plays no part in the lake, so each hour starts without it.
    # gzip, as when BENCHMARKS.md's table was measured (zstd became the default later).
    env = dict(os.environ, METRICS_MODE="off", LOG_LEVEL="warn", OUTPUT_COMPRESSION="gzip")
    replay_cpu = replay_rss = 0
    per_hour = args.objects_per_hour
    for start in range(0, len(records), per_hour):
        event = os.path.join(work, "hour.json")
        with open(event, "w") as f:
            json.dump({"Records": records[start:start + per_hour]}, f)
        shutil.rmtree(os.path.join(out, "_detection"), ignore_errors=True)
        cpu, rss = timed(
            [binary, "replay", event, "--store", store, "--out", out,
             "--metrics", os.path.join(work, "metrics.ndjson")], env)
        replay_cpu += cpu
        replay_rss = max(replay_rss, rss)
    compact_cpu, compact_rss = timed(
        [binary, "compact", "--out", out, "--settle-minutes", "0"], env)

    raw_objects, raw_bytes = sizes(os.path.join(store, LOG_BUCKET, "raw"), ("",))
    bucket = os.path.join(out, LOG_BUCKET)
    curated_objects, curated_bytes = sizes(os.path.join(bucket, "curated"), (".ndjson.gz",))
    lake_objects, lake_bytes = sizes(os.path.join(bucket, "lake"), (".parquet",))
    gib = raw_bytes / 2**30
    print(f"| | objects | bytes | vs raw |")
    print(f"|---|---|---|---|")
    print(f"| raw logs | {raw_objects:,} | {raw_bytes:,} | 100% |")
    print(f"| curated NDJSON (gzip) | {curated_objects:,} | {curated_bytes:,} | "
          f"{100 * curated_bytes / raw_bytes:.1f}% |")
    print(f"| lake (Parquet, zstd) | {lake_objects:,} | {lake_bytes:,} | "
          f"{100 * lake_bytes / raw_bytes:.1f}% |")
    print()
    print(f"objects: {100 * (1 - lake_objects / raw_objects):.2f}% fewer than raw")
    print(f"replay (the handler, for reference): {replay_cpu:.1f} CPU-s, peak RSS {replay_rss:.0f} MiB")
    print(f"compaction: {compact_cpu:.2f} CPU-s = {compact_cpu / gib:.1f} CPU-s per GiB of raw logs, "
          f"peak RSS {compact_rss:.0f} MiB")
    print()
    for threads in () if args.no_queries else (1, 2):
        print(f"DuckDB {duckdb.__version__}, {threads} thread(s), best of 3:")
        print("| query | NDJSON s | lake s | speed-up |")
        print("|---|---|---|---|")
        for name, best in query_times(bucket, threads).items():
            print(f"| {name} | {best['ndjson']:.3f} | {best['lake']:.3f} | "
                  f"{best['ndjson'] / best['lake']:.0f}× |")
        print()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
