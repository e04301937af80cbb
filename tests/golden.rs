//! Golden tests: each log fixture in `tests/fixtures/` goes through `decode_reader` and a
//! `Curator`, and the curated and rejected NDJSON must match the checked-in
//! `<fixture>.curated.ndjson` and `<fixture>.rejected.ndjson` byte for byte.
//!
//! After an intended change to the output, rewrite the expected files and review the diff:
//!
//! ```sh
//! BUCKETLOG_BLESS=1 cargo test --test golden
//! git diff tests/fixtures
//! ```
//!
//! The fixtures themselves are made by `tests/fixtures/make_fixtures.py`; `tests/fixtures/README.md`
//! says what each line is for.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use bucketlog::curate::{CollectingSink, CurationStats, Curator};
use bucketlog::input::decode_reader;
use serde_json::Value;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn blessing() -> bool {
    std::env::var_os("BUCKETLOG_BLESS").is_some_and(|v| v == "1")
}

/// Runs one fixture through the pipeline the CLI and the Lambda use, reading it through
/// `reader` so tests can choose how the bytes arrive.
fn curate_from(name: &str, reader: impl Read) -> (CurationStats, CollectingSink) {
    // The file name only, so the output does not depend on where the repository lives.
    let curator = Curator::new(CollectingSink::default(), Some(name.to_string()));
    let (curator, _summary) = decode_reader(reader, curator).expect("fixture decodes");
    (curator.stats(), curator.into_sink())
}

fn curate(name: &str) -> (CurationStats, CollectingSink) {
    curate_from(name, &read_fixture(name)[..])
}

/// The fixture's text after decompression, independently of the crate's own decoder.
fn decompressed(name: &str) -> Vec<u8> {
    let raw = read_fixture(name);
    if !name.ends_with(".gz") {
        return raw;
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .expect("fixture is valid gzip");
    out
}

/// Line numbers (1-based) of the fixture's lines, split here without the crate's framer:
/// `(number, is_blank)` where blank means only spaces, tabs and carriage returns.
fn numbered_lines(text: &[u8]) -> Vec<(u64, bool)> {
    let mut parts: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    if parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let blank = line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'));
            (i as u64 + 1, blank)
        })
        .collect()
}

fn ndjson(bytes: &[u8]) -> Vec<Value> {
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "NDJSON must end with a newline"
    );
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(l)))
        })
        .collect()
}

/// Compares `actual` with the checked-in expected file, or rewrites it when blessing.
fn check_golden(fixture: &str, kind: &str, actual: &[u8]) {
    let path = fixture_path(&format!("{fixture}.{kind}.ndjson"));
    if blessing() {
        std::fs::write(&path, actual).expect("writing golden file");
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}\n(run `BUCKETLOG_BLESS=1 cargo test --test golden` to create it)",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let expected_lines: Vec<&[u8]> = expected.split(|&b| b == b'\n').collect();
    let actual_lines: Vec<&[u8]> = actual.split(|&b| b == b'\n').collect();
    let first_difference = expected_lines
        .iter()
        .zip(&actual_lines)
        .position(|(e, a)| e != a)
        .unwrap_or(expected_lines.len().min(actual_lines.len()));
    let show = |lines: &[&[u8]]| {
        lines
            .get(first_difference)
            .map_or("<none>".to_string(), |l| {
                String::from_utf8_lossy(l).into_owned()
            })
    };
    panic!(
        "{} differs from the output at NDJSON line {} ({} expected lines, {} actual)\n\
         expected: {}\n\
         actual:   {}\n\
         If the change is intended, run `BUCKETLOG_BLESS=1 cargo test --test golden` and review `git diff`.",
        path.display(),
        first_difference + 1,
        expected_lines.len().saturating_sub(1),
        actual_lines.len().saturating_sub(1),
        show(&expected_lines),
        show(&actual_lines),
    );
}

/// Every non-blank line of the fixture is exactly one curated or rejected record, blank
/// lines are neither, and the stats agree.
fn check_accounting(name: &str, stats: CurationStats, sink: &CollectingSink) {
    let lines = numbered_lines(&decompressed(name));
    let curated = ndjson(&sink.curated);
    let rejected = ndjson(&sink.rejected);

    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for record in curated.iter().chain(&rejected) {
        assert_eq!(record["source_object"], name, "{record}");
        let line = record["source_line"]
            .as_u64()
            .unwrap_or_else(|| panic!("no source_line: {record}"));
        *seen.entry(line).or_default() += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(
        doubled.is_empty(),
        "{name}: lines output twice: {doubled:?}"
    );
    let non_blank: Vec<u64> = lines
        .iter()
        .filter(|(_, blank)| !blank)
        .map(|&(n, _)| n)
        .collect();
    let output: Vec<u64> = seen.keys().copied().collect();
    assert_eq!(output, non_blank, "{name}: curated+rejected line numbers");

    let blank = lines.iter().filter(|(_, blank)| *blank).count() as u64;
    assert_eq!(
        stats,
        CurationStats {
            lines: lines.len() as u64,
            records: curated.len() as u64,
            rejected: rejected.len() as u64,
            blank,
        },
        "{name}: stats"
    );
}

macro_rules! golden {
    ($test:ident, $fixture:literal) => {
        #[test]
        fn $test() {
            let (stats, sink) = curate($fixture);
            check_golden($fixture, "curated", &sink.curated);
            check_golden($fixture, "rejected", &sink.rejected);
            check_accounting($fixture, stats, &sink);
        }
    };
}

golden!(aws_log, "aws.log");
golden!(providers_log, "providers.log");
golden!(quirks_log, "quirks.log");
golden!(aws_log_gz, "aws.log.gz");
golden!(shapes_log, "shapes.log");
golden!(json_log, "json.log");

/// A reader that hands out a few bytes per call, so lines and gzip members straddle reads.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
    calls: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        let n = (1 + (self.calls * 7919) % self.step)
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn output_does_not_depend_on_how_the_bytes_arrive() {
    for name in ["aws.log", "quirks.log", "aws.log.gz", "json.log"] {
        let (whole_stats, whole) = curate(name);
        let data = read_fixture(name);
        for step in [1, 2, 13, 4096] {
            let reader = Trickle {
                data: &data,
                step,
                calls: 0,
            };
            let (stats, sink) = curate_from(name, reader);
            assert_eq!(stats, whole_stats, "{name} step {step}");
            assert_eq!(sink, whole, "{name} step {step}");
        }
    }
}

#[test]
fn gzip_fixture_has_two_members_and_matches_the_plain_file() {
    let plain = read_fixture("aws.log");
    let gz = read_fixture("aws.log.gz");
    // A single-member decoder stops after the first member, mid-file.
    let mut first_member = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut first_member)
        .unwrap();
    assert!(
        first_member.len() < plain.len(),
        "expected two gzip members"
    );
    assert!(
        !first_member.ends_with(b"\n"),
        "the members should split a line"
    );
    assert_eq!(decompressed("aws.log.gz"), plain);

    let (plain_stats, plain_sink) = curate("aws.log");
    let (gz_stats, gz_sink) = curate("aws.log.gz");
    assert_eq!(gz_stats, plain_stats);
    let rename = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec()).unwrap().replace(
            r#""source_object":"aws.log.gz""#,
            r#""source_object":"aws.log""#,
        )
    };
    assert_eq!(
        rename(&gz_sink.curated),
        String::from_utf8(plain_sink.curated).unwrap()
    );
    assert_eq!(
        rename(&gz_sink.rejected),
        String::from_utf8(plain_sink.rejected).unwrap()
    );
}

#[test]
fn a_line_over_the_length_limit_is_rejected_and_the_next_line_survives() {
    let aws = read_fixture("aws.log");
    let first_line = aws.split(|&b| b == b'\n').next().unwrap();
    let mut input = Vec::new();
    // A referer far longer than the 1 MiB line limit.
    input.extend_from_slice(first_line);
    input.extend(std::iter::repeat_n(b'r', 1 << 20));
    input.push(b'\n');
    input.extend_from_slice(first_line);
    input.push(b'\n');
    let (stats, sink) = curate_from("long.log", &input[..]);
    assert_eq!((stats.lines, stats.records, stats.rejected), (2, 1, 1));
    let rejected = ndjson(&sink.rejected);
    assert_eq!(rejected[0]["error_kind"], "line_too_long");
    assert_eq!(rejected[0]["truncated"], true);
    assert_eq!(rejected[0]["source_line"], 1);
    assert_eq!(ndjson(&sink.curated)[0]["source_line"], 2);
}

/// Finds the one curated record of a fixture that came from `line`.
fn curated_line(records: &[Value], line: u64) -> &Value {
    let mut found = records.iter().filter(|r| r["source_line"] == line);
    let record = found
        .next()
        .unwrap_or_else(|| panic!("no curated record for line {line}"));
    assert!(found.next().is_none());
    record
}

fn rejected_kinds(name: &str) -> Vec<(u64, String, Option<String>)> {
    ndjson(&curate(name).1.rejected)
        .iter()
        .map(|r| {
            (
                r["source_line"].as_u64().unwrap(),
                r["error_kind"].as_str().unwrap().to_string(),
                r["field"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Hand-checked values that must hold whatever the golden files say, so that a careless
/// re-bless cannot hide a regression in the things that matter most.
#[test]
fn spot_checks_aws() {
    let records = ndjson(&curate("aws.log").1.curated);
    assert_eq!(records.len(), 27);

    // Pre-2017, 18 fields: everything after version_id is null, not missing.
    let r = curated_line(&records, 1);
    assert_eq!(r["time"], "2016-03-14T21:42:07Z");
    assert_eq!(r["host_id"], Value::Null);
    assert_eq!(r["acl_required"], Value::Null);
    assert_eq!(r["requester_type"], "canonical_user");
    assert_eq!(r["user_agent_family"], "aws-sdk");

    // 25 fields: the access point ARN, and no aclRequired yet.
    let r = curated_line(&records, 4);
    assert_eq!(
        r["access_point_arn"],
        "arn:aws:s3:us-west-1:123456789012:accesspoint/example-ap"
    );
    assert_eq!(r["acl_required"], Value::Null);
    assert_eq!(r["requester_type"], "assumed_role");
    assert_eq!(r["requester_account_id"], "123456789012");

    // 26 fields, `-` aclRequired is false; a trailing space does not matter.
    assert_eq!(curated_line(&records, 6)["acl_required"], false);
    assert_eq!(curated_line(&records, 7)["acl_required"], true);
    assert_eq!(
        curated_line(&records, 7)["error_code"],
        "NoSuchBucketPolicy"
    );

    // 27 and 29 fields.
    let r = curated_line(&records, 9);
    assert_eq!(r["source_region"], "us-east-1");
    assert_eq!(r["key_decoded"], "photos/2024/beach day.jpg");
    assert_eq!(r["request_query"], "versionId=3HL4kqtJlcpXroDTDmJ");
    assert!(r.get("extra_fields").is_none());
    let r = curated_line(&records, 10);
    assert_eq!(r["source_region"], "us-west-2");
    assert_eq!(
        r["extra_fields"],
        serde_json::json!(["BucketOwnerEnforced", "\"future field\""])
    );

    // Key decoding: %20, %2B, UTF-8 escapes; a literal `+` stays a plus.
    assert_eq!(
        curated_line(&records, 11)["key_decoded"],
        "uploads/café menu+2024.txt"
    );
    assert_eq!(
        curated_line(&records, 12)["key_decoded"],
        "中文/😀+smile.png"
    );

    // Service requesters, and the CloudFront OAI kept whole.
    assert_eq!(curated_line(&records, 13)["requester_type"], "aws_service");
    let r = curated_line(&records, 14);
    assert_eq!(
        (&r["requester"], &r["remote_ip"]),
        (&"AmazonS3".into(), &Value::Null)
    );
    assert_eq!(r["http_status"], Value::Null);
    assert_eq!(r["request_method"], Value::Null);
    assert_eq!(
        curated_line(&records, 15)["operation"],
        "S3.COMPUTE.OBJECT.CHECKSUM"
    );
    assert_eq!(
        curated_line(&records, 15)["requester_type"],
        "federated_user"
    );
    let r = curated_line(&records, 16);
    assert_eq!(
        r["requester"],
        "arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2QWRUHAPOMQZL"
    );
    assert_eq!(r["request_id"], "4D5E6F7081920314");
    assert_eq!(r["operation"], "REST.GET.OBJECT");
    assert_eq!(r["requester_type"], "aws_service");
    assert_eq!(r["requester_account_id"], Value::Null);

    // Anonymous, IPv6.
    let r = curated_line(&records, 17);
    assert_eq!(r["requester"], Value::Null);
    assert_eq!(r["requester_type"], "anonymous");
    assert_eq!(r["status_class"], "4xx");
    assert_eq!(
        curated_line(&records, 20)["remote_ip"],
        "2001:db8:85a3::8a2e:370:7334"
    );

    // Offsets are converted to UTC.
    assert_eq!(curated_line(&records, 21)["time"], "2024-01-01T03:15:00Z");
    assert_eq!(curated_line(&records, 22)["time"], "2024-02-29T20:30:00Z");
    assert_eq!(curated_line(&records, 23)["time"], "2024-12-31T19:59:59Z");
    assert_eq!(curated_line(&records, 24)["time"], "2025-03-01T11:30:00Z");

    // Quotes inside a user agent, and a referer of a few KB.
    assert_eq!(
        curated_line(&records, 25)["user_agent"],
        r#"Go-http-client/1.1 (app="sync";v="2")"#
    );
    let referer = curated_line(&records, 26)["referer"].as_str().unwrap();
    assert!(referer.len() > 2500 && referer.ends_with("&page=2"));
    assert_eq!(curated_line(&records, 27)["user_agent_family"], "scanner");
}

#[test]
fn spot_checks_providers() {
    let records = ndjson(&curate("providers.log").1.curated);
    assert_eq!(records.len(), 10);
    for line in 1..=5 {
        let r = curated_line(&records, line);
        assert_eq!(r["requester"], "1542319462669586:user-5hwhM25pPT6f");
        assert_eq!(r["requester_type"], "other");
        assert_eq!(r["host_header"], "my-bucket.s3.training.perf.cloud.ovh.net");
        assert_eq!(r["acl_required"], Value::Null);
    }
    assert_eq!(curated_line(&records, 1)["bytes_sent"], Value::Null);
    assert_eq!(curated_line(&records, 1)["object_size"], 200);
    assert_eq!(curated_line(&records, 4)["total_time_ms"], 2320);

    // Storj's example is one field short of the AWS layout (no referer), so it parses
    // positionally: the user agent lands in `referer`. Documented, not guessed at.
    let r = curated_line(&records, 6);
    assert_eq!(r["operation"], "GetObject");
    assert_eq!(r["requester"], "user-id");
    assert_eq!(r["referer"], "curl/7.68.0");
    assert_eq!(r["user_agent"], Value::Null);

    // Ceph RGW: bare `-` for quoted fields, dotted request IDs, +0100.
    let r = curated_line(&records, 7);
    assert_eq!(r["bucket_owner"], Value::Null);
    assert_eq!(r["requester"], "tenant1$alice");
    assert_eq!(
        r["request_id"],
        "tx000001f2e3d4c5b6a7980-0067d1512e-5e1f-zone.us-east"
    );
    assert_eq!(r["time"], "2025-03-12T07:15:02Z");
    assert_eq!(
        (&r["referer"], &r["user_agent"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(r["user_agent_family"], Value::Null);
    assert_eq!(r["key_decoded"], "videos/clip 1.mp4");

    assert_eq!(curated_line(&records, 9)["operation"], "REST.S3_GET_OBJECT");
    assert_eq!(
        curated_line(&records, 9)["key_decoded"],
        "docs/manual v2.pdf"
    );
}

#[test]
fn spot_checks_quirks() {
    let (stats, sink) = curate("quirks.log");
    assert_eq!(stats.blank, 2);
    let records = ndjson(&sink.curated);

    assert_eq!(curated_line(&records, 1)["key"], "k.txt");
    assert_eq!(curated_line(&records, 3)["key"], "trailing.txt");
    // A Latin-1 byte: curated with U+FFFD and flagged.
    let r = curated_line(&records, 5);
    assert_eq!(r["user_agent"], "Caf\u{FFFD}Browser/1.0");
    assert_eq!(r["utf8_lossy"], true);
    assert!(curated_line(&records, 1).get("utf8_lossy").is_none());
    // A leap second becomes the next second in UTC.
    assert_eq!(curated_line(&records, 17)["time"], "2015-07-01T00:00:00Z");
    // The all-dash record.
    let r = curated_line(&records, 18);
    for field in [
        "bucket_owner",
        "bucket",
        "remote_ip",
        "requester",
        "key",
        "user_agent",
    ] {
        assert_eq!(r[field], Value::Null, "{field}");
    }
    assert_eq!(r["requester_type"], "anonymous");
    // Status 000 has no status class.
    assert_eq!(curated_line(&records, 19)["http_status"], 0);
    assert_eq!(curated_line(&records, 19)["status_class"], Value::Null);
    // Escaping.
    assert_eq!(
        curated_line(&records, 20)["key_decoded"],
        "q\"uote\nline\\slash.txt"
    );
    assert_eq!(
        curated_line(&records, 21)["user_agent"],
        "Win\\Agent\tv1\u{0}\rend"
    );
    // An unknown acl_required value keeps the record and the value.
    let r = curated_line(&records, 15);
    assert_eq!(r["acl_required"], Value::Null);
    assert_eq!(
        r["unparsed_fields"],
        serde_json::json!({"acl_required": "Maybe"})
    );
    // `" ` inside a quoted field ends it (the format has no escaping).
    let r = curated_line(&records, 22);
    assert_eq!(r["user_agent"], "Mozilla/5.0 \"Evil");
    assert_eq!(r["version_id"], "Agent\"");

    let rejected = rejected_kinds("quirks.log");
    let expected: Vec<(u64, &str, Option<&str>)> = vec![
        (6, "invalid_time", Some("time")),
        (7, "missing_field", Some("time")),
        (8, "invalid_time", Some("time")),
        // An S3 event pasted into a log: read as a JSON record (AWS's structured delivery),
        // which has no request_time.
        (9, "missing_field", Some("time")),
        (10, "missing_field", Some("http_status")),
        (11, "invalid_time", Some("time")),
        (12, "unterminated_bracket", Some("time")),
        (13, "unterminated_quote", Some("user_agent")),
        (14, "invalid_number", Some("bytes_sent")),
        (16, "invalid_number", Some("http_status")),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(l, k, f)| (l, k.to_string(), f.map(str::to_string)))
        .collect();
    assert_eq!(rejected, expected);
    // The binary garbage line keeps its exact bytes.
    let garbage = &ndjson(&sink.rejected)[0];
    assert!(garbage["raw_base64"].is_string());
}

/// quirks.log line 23. When the operation field is not operation-shaped (Storj writes
/// `GetObject`), the parser also tries reading the requester as several words up to an
/// operation-shaped token; an upper-case key such as `REPORT.PDF` looks like one. That
/// reading does not parse here, so the positional one must stand.
#[test]
fn operation_shaped_key_does_not_hijack_the_requester() {
    let (_, sink) = curate("quirks.log");
    let records = ndjson(&sink.curated);
    let r = curated_line(&records, 23);
    assert_eq!(r["requester"], "user-id");
    assert_eq!(r["request_id"], "ABC123");
    assert_eq!(r["operation"], "GetObject");
    assert_eq!(r["key"], "REPORT.PDF");
}

/// shapes.log: each key is decoded the way S3 encoded it for the line's operation, with
/// the request line deciding where it carries the key (SCHEMA.md, "Decoding the key").
#[test]
fn spot_checks_shapes() {
    let (stats, sink) = curate("shapes.log");
    assert_eq!(stats.rejected, 0, "every shape is a record");
    let records = ndjson(&sink.curated);
    let key = |line: u64| curated_line(&records, line)["key_decoded"].clone();
    let expected = [
        (1, "warehouse/events/dt_=2026-09-30/part-0001.parquet"),
        (2, "inbox/quarterly plan.docx"),
        (3, "notes/c++.md"),
        (4, "odd/foo-%Y"),
        (5, "odd/foo-%25Y"),
        (6, "odd/foo-%Y"),
        (7, "docs/getting started.html"),
        (8, "desktop/Screenshot 2026-09-30 at 17.45.12.png"),
        (9, "odd/foo-%25Y"),
        (10, "tmp/build log+1.txt"),
        (11, "archive/dt=2025-01-01/x.bin"),
        (12, "data/a.csv"),
        (13, "up/r.pdf"),
        (14, "odd/bad%FF.txt"),
    ];
    for (line, decoded) in expected {
        assert_eq!(key(line), decoded, "line {line}");
    }
    // Two spaces before the requester: no leading space, and it still classifies.
    let r = curated_line(&records, 12);
    assert_eq!(r["requester"], "arn:aws:iam::210987654321:user/ingest");
    assert_eq!(r["requester_type"], "iam_user");
    assert_eq!(r["requester_account_id"], "210987654321");
    assert_eq!(r["request_id"], "1A2B3C4D5E6F7012");
    // A value in acl_required that is not a flag: null, and kept as written.
    let r = curated_line(&records, 13);
    assert_eq!(r["access_point_arn"], "extra-a");
    assert_eq!(r["acl_required"], Value::Null);
    assert_eq!(
        r["unparsed_fields"],
        serde_json::json!({"acl_required": "extra-b"})
    );
    assert!(curated_line(&records, 12).get("unparsed_fields").is_none());
}

/// AWS's structured delivery, record by record (tests/fixtures/make_fixtures.py, `JSON`).
#[test]
fn spot_checks_json() {
    let (_, sink) = curate("json.log");
    let records = ndjson(&sink.curated);
    let full = curated_line(&records, 1);
    assert_eq!(full["bucket"], "json-bucket");
    assert_eq!(full["time"], "2026-10-01T09:00:00Z");
    assert_eq!(full["requester_type"], "iam_user");
    assert_eq!(full["requester_account_id"], "123456789012");
    assert_eq!(full["key"], "docs/a b.txt");
    assert_eq!(full["key_decoded"], "docs/a b.txt");
    assert_eq!(full["request_path"], "/json-bucket/docs/a%20b.txt");
    assert_eq!(
        (
            full["total_time_ms"].as_u64(),
            full["turn_around_time_ms"].as_u64()
        ),
        (Some(25), Some(9))
    );
    assert_eq!(full["endpoint_region"], "eu-west-1");
    assert_eq!(full["extra_json_fields"]["schema_version_id"], "V_1_0");
    assert_eq!(
        full["extra_json_fields"]["bucket_arn"],
        "arn:aws:s3:::json-bucket"
    );
    assert!(full.get("unparsed_fields").is_none());

    let anonymous = curated_line(&records, 2);
    assert_eq!(anonymous["requester"], Value::Null);
    assert_eq!(anonymous["requester_type"], "anonymous");
    assert_eq!(
        (
            anonymous["http_status"].as_u64(),
            anonymous["status_class"].as_str()
        ),
        (Some(403), Some("4xx"))
    );
    assert_eq!(anonymous["user_agent_family"], "browser");

    let escaped = curated_line(&records, 3);
    assert_eq!(escaped["key_decoded"], "q\"uo\\te\n\tcaf\u{e9} %41+");

    let future = curated_line(&records, 4);
    assert_eq!(future["extra_json_fields"]["new_field_2027"], "kept");
    assert_eq!(future["extra_json_fields"]["nested"], r#"{"a":[1,2]}"#);
    assert_eq!(future["http_status"], Value::Null);
    assert_eq!(future["bytes_sent"], 77);
    assert_eq!(
        future["unparsed_fields"],
        serde_json::json!({"acl_required": "Maybe", "http_status": "teapot"})
    );

    let lifecycle = curated_line(&records, 5);
    assert_eq!(lifecycle["time"], "2026-10-01T09:00:04Z", "+02:00 applied");
    assert_eq!(lifecycle["requester_type"], "aws_service");
    assert_eq!(lifecycle["acl_required"], true);
    assert_eq!(lifecycle["remote_ip"], Value::Null);

    let lossy = curated_line(&records, 10);
    assert_eq!(lossy["utf8_lossy"], true);
    assert_eq!(lossy["user_agent"], "Mozilla/5.0 (X) caf\u{fffd}");

    let kinds = rejected_kinds("json.log");
    let kinds: Vec<(u64, &str)> = kinds.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
    assert_eq!(
        kinds[..3],
        [
            (6, "invalid_json"),
            (7, "missing_field"),
            (8, "invalid_time")
        ]
    );
    assert_eq!(
        kinds.len(),
        4,
        "and the JSON array, which is no record at all"
    );
}
