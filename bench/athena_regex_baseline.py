#!/usr/bin/env python3
r"""The baseline most users write today: AWS's Athena regex + json.dumps, one line at a time.

Usage: athena_regex_baseline.py LOGFILE [LOGFILE...]   (plain or gzip, told by magic bytes)

For every line it applies the RegexSerDe `input.regex` from AWS's documentation and writes
`json.dumps` of a dict {column name: captured text} to stdout (NDJSON). Lines the regex does
not match are counted and skipped (Athena would return a row of NULLs for them). A summary
(lines, matched, seconds, lines/s) goes to stderr.

It does strictly less work than `bucketlog parse`: no URL-decoding of the key, no split of
the request line, no integer conversion ("-" stays "-", numbers stay strings), no timestamp
normalisation, no requester / user-agent classification, no per-line provenance.

Source of the regex and column names
------------------------------------
Amazon S3 User Guide, "Using Amazon S3 access logs to identify requests", section
"Querying access logs for requests using Amazon Athena", the
`CREATE EXTERNAL TABLE s3_access_logs_db.mybucket_logs` example (26 columns, the version
with `accesspointarn` and `aclrequired`):
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-s3-access-logs-to-identify-requests.html
as published in the awsdocs/amazon-s3-userguide repository,
doc_source/using-s3-access-logs-to-identify-requests.md at commit
b048f895f8f2a0aa97d4545bf04133f20ee6f639.

In the DDL the regex is a Hive SQL string literal, verbatim:

  '([^ ]*) ([^ ]*) \\[(.*?)\\] ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) (\"[^\"]*\"|-) (-|[0-9]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) (\"[^\"]*\"|-) ([^ ]*)(?: ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*))?.*$'

Once the literal's escaping is removed (`\\` -> `\`, `\"` -> `"`), the Java regex is
ATHENA_REGEX below, character for character (checked at import against DDL_LITERAL).
Hive's RegexSerDe uses Matcher.matches(), i.e. the whole line must match: re.fullmatch.
"""

import gzip
import json
import re
import sys
import time

ATHENA_REGEX = (
    r'([^ ]*) ([^ ]*) \[(.*?)\] ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ("[^"]*"|-) '
    r'(-|[0-9]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ("[^"]*"|-) ([^ ]*)'
    r'(?: ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*))?.*$'
)

# The SQL string literal exactly as it appears in AWS's DDL (between the single quotes).
DDL_LITERAL = (
    r'([^ ]*) ([^ ]*) \\[(.*?)\\] ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) (\"[^\"]*\"|-) '
    r'(-|[0-9]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) (\"[^\"]*\"|-) ([^ ]*)'
    r'(?: ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*) ([^ ]*))?.*$'
)
assert DDL_LITERAL.replace('\\\\', '\\').replace('\\"', '"') == ATHENA_REGEX

# The table's columns, in order: one per capture group.
COLUMNS = (
    "bucketowner", "bucket_name", "requestdatetime", "remoteip", "requester",
    "requestid", "operation", "key", "request_uri", "httpstatus", "errorcode",
    "bytessent", "objectsize", "totaltime", "turnaroundtime", "referrer",
    "useragent", "versionid", "hostid", "sigv", "ciphersuite", "authtype",
    "endpoint", "tlsversion", "accesspointarn", "aclrequired",
)

PATTERN = re.compile(ATHENA_REGEX)
assert PATTERN.groups == len(COLUMNS)


def open_log(path):
    """Text stream over a plain or gzip file, told apart by the gzip magic bytes."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, "r", encoding="utf-8", errors="replace", newline="")


def main(argv):
    if len(argv) < 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out = sys.stdout
    fullmatch = PATTERN.fullmatch
    dumps = json.dumps
    lines = matched = 0
    started = time.perf_counter()
    for path in argv[1:]:
        with open_log(path) as f:
            for line in f:
                lines += 1
                m = fullmatch(line.rstrip("\r\n"))
                if m is None:
                    continue
                matched += 1
                out.write(dumps(dict(zip(COLUMNS, m.groups()))))
                out.write("\n")
    out.flush()
    seconds = time.perf_counter() - started
    rate = lines / seconds if seconds > 0 else float("inf")
    print(
        f"athena_regex_baseline: lines={lines} matched={matched} "
        f"seconds={seconds:.3f} lines_per_s={rate:.0f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
