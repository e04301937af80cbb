#!/usr/bin/env python3
"""Reads a bucketlog Parquet lake back with two independent readers, pyarrow and DuckDB,
and compares every row and every column with the curated NDJSON it was built from.

    lake_readback.py --lake DIR --curated DIR

DIR are local copies of LAKE_PREFIX and CURATED_PREFIX (`bucket=B/dt=D/hour=H/...`).
For every partition the expected rows are the partition's curated records in time order,
ties in key order then line order: exactly the order the compactor promises. Checks the
Parquet types, zstd, dictionary encoding and column statistics too. The curated objects
may be plain, gzip or zstd (OUTPUT_COMPRESSION); DuckDB must read each of them as well,
with its own decompression, to the same number of records. Prints a JSON summary on
success; exits 1 with the first difference otherwise.
"""

import argparse
import datetime
import gzip
import json
import os
import re
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

# SCHEMA.md's curated fields, in order, with the Parquet (Arrow) type each must have.
COLUMNS = {
    "bucket_owner": "string", "bucket": "string", "time": "timestamp[ms, tz=+00:00]",
    "remote_ip": "string", "requester": "string", "request_id": "string",
    "operation": "string", "key": "string", "request_uri": "string",
    "http_status": "int32", "error_code": "string", "bytes_sent": "int64",
    "object_size": "int64", "total_time_ms": "int64", "turn_around_time_ms": "int64",
    "referer": "string", "user_agent": "string", "version_id": "string",
    "host_id": "string", "signature_version": "string", "cipher_suite": "string",
    "authentication_type": "string", "host_header": "string", "tls_version": "string",
    "access_point_arn": "string", "acl_required": "bool", "source_region": "string",
    "extra_fields": "list<element: string not null>",
    "unparsed_fields": "map<string, string>",
    "key_decoded": "string", "request_method": "string", "request_path": "string",
    "request_query": "string", "http_version": "string", "status_class": "string",
    "requester_type": "string", "requester_account_id": "string",
    "user_agent_family": "string", "source_line": "int64", "source_object": "string",
    "utf8_lossy": "bool", "endpoint_region": "string",
    "client_country": "string", "client_city": "string", "client_asn": "int64",
    "client_as_org": "string", "user_agent_name": "string", "user_agent_version": "string",
    "user_agent_os": "string", "user_agent_device": "string",
    "extra_json_fields": "map<string, string>",
}
MAPS = {"unparsed_fields", "extra_json_fields"}


def fail(message):
    print(f"lake_readback: {message}", file=sys.stderr)
    sys.exit(1)


def files_under(root, suffixes):
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(suffixes):
                rel = os.path.relpath(folder, root)
                found.setdefault(rel, []).append(os.path.join(folder, name))
    return {k: sorted(v) for k, v in found.items()}


def epoch_ms(text):
    t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp()) * 1000


def expected_rows(paths):
    rows = []
    for path in paths:  # key order
        for line in read_text(path).splitlines():
            if line:
                rows.append(json.loads(line))
    rows.sort(key=lambda r: r["time"])  # stable: ties keep key and line order
    return [normalise_json(r) for r in rows]


def read_text(path):
    """A curated object's text: gzip by Python, zstd by Arrow's codec, plain as it is."""
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            return f.read().decode("utf-8")
    if path.endswith(".zst"):
        with pa.CompressedInputStream(pa.OSFile(path), "zstd") as f:
            return f.read().decode("utf-8")
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def duckdb_record_count(con, paths):
    """How many records DuckDB's own JSON reader finds in the curated objects."""
    query = "SELECT count(*) FROM read_json_objects(?, format = 'newline_delimited')"
    return con.execute(query, [paths]).fetchone()[0]


def normalise_json(record):
    unknown = set(record) - set(COLUMNS)
    if unknown:
        fail(f"curated fields missing from the lake schema: {sorted(unknown)}")
    out = {}
    for name in COLUMNS:
        value = record.get(name)
        if name == "time":
            value = epoch_ms(value)
        elif name in MAPS and value is not None:
            value = sorted(value.items())
        out[name] = value
    return out


def normalise_read(row, time_ms, map_items):
    """One row as a reader returned it, in the shape `normalise_json` gives."""
    out = {}
    for name in COLUMNS:
        value = row[name]
        if name == "time":
            value = time_ms(value)
        elif name in MAPS and value is not None:
            value = sorted(map_items(value))
        out[name] = value
    return out


def normalise_arrow(row):
    # pyarrow: `time` a datetime, a map a list of (key, value) pairs.
    return normalise_read(row, lambda t: int(t.timestamp() * 1000), lambda m: m)


def normalise_duck(row):
    # DuckDB (queried with epoch_ms): `time` milliseconds, a map a dict.
    return normalise_read(row, lambda t: t, dict.items)


def check_encoding(path):
    meta = pq.ParquetFile(path).metadata
    if meta.num_row_groups == 0:
        fail(f"{path}: no row groups")
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            if column.compression != "ZSTD":
                fail(f"{path}: column {column.path_in_schema} is {column.compression}, not ZSTD")
            stats = column.statistics
            if stats is None or (stats.null_count != group.num_rows and not stats.has_min_max):
                fail(f"{path}: column {column.path_in_schema} has no min/max statistics")
        strings = [group.column(c) for c in range(group.num_columns)
                   if group.column(c).path_in_schema == "operation"]
        if strings and not any("DICTIONARY" in e for e in strings[0].encodings):
            fail(f"{path}: `operation` is not dictionary-encoded: {strings[0].encodings}")
    return meta.num_rows, meta.num_row_groups


def compare(partition, reader, got, want):
    if len(got) != len(want):
        fail(f"{partition}: {reader} reads {len(got)} rows, the curated records are {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            diff = {k: (g[k], w[k]) for k in COLUMNS if g[k] != w[k]}
            fail(f"{partition} row {i}: {reader} differs from the curated record: {diff}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", required=True)
    parser.add_argument("--curated", required=True)
    args = parser.parse_args()

    curated = files_under(args.curated, (".ndjson", ".ndjson.gz", ".ndjson.zst"))
    lake = files_under(args.lake, (".parquet",))
    extra = sorted(set(lake) - set(curated))
    if extra:
        fail(f"lake partitions without curated records: {extra}")
    con = duckdb.connect()
    con.execute("SET threads = 1")
    summary = {"partitions": 0, "rows": 0, "files": 0, "row_groups": 0}
    for partition in sorted(curated):
        want = expected_rows(curated[partition])
        read_by_duckdb = duckdb_record_count(con, curated[partition])
        if read_by_duckdb != len(want):
            fail(f"{partition}: DuckDB reads {read_by_duckdb} curated records, not {len(want)}")
        files = lake.get(partition, [])
        if want and not files:
            fail(f"{partition}: {len(want)} curated records, no lake files")
        for path in files:
            rows, groups = check_encoding(path)
            summary["row_groups"] += groups
        tables = [pq.read_table(path) for path in files]
        for t in tables:
            # pyarrow names a map's entries field in its type text: leave the name out.
            types = {f.name: re.sub(r" \('[^']*'\)", "", str(f.type)) for f in t.schema}
            if types != COLUMNS:
                diff = {k: (types.get(k), v) for k, v in COLUMNS.items() if types.get(k) != v}
                fail(f"{partition}: Parquet types differ from the schema: {diff}")
        arrow_rows = [normalise_arrow(r) for t in tables for r in t.to_pylist()]
        compare(partition, "pyarrow", arrow_rows, want)
        if files:
            columns = ", ".join(
                'epoch_ms("time") AS "time"' if c == "time" else f'"{c}"' for c in COLUMNS)
            query = (f"SELECT {columns} FROM read_parquet(?, filename = true, "
                     "file_row_number = true, hive_partitioning = false) "
                     "ORDER BY filename, file_row_number")
            cursor = con.execute(query, [files])
            names = [d[0] for d in cursor.description]
            duck_rows = [normalise_duck(dict(zip(names, r))) for r in cursor.fetchall()]
        else:
            duck_rows = []
        compare(partition, "duckdb", duck_rows, want)
        summary["partitions"] += 1
        summary["rows"] += len(want)
        summary["files"] += len(files)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
