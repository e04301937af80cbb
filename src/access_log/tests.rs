//! Table tests: one line per quirk, real sample lines from AWS's and the providers' documents.

use super::*;

/// AWS's documented example record (26 fields, before `source_region` existed).
const AWS_26: &str = r#"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be DOC-EXAMPLE-BUCKET1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /DOC-EXAMPLE-BUCKET1?versioning HTTP/1.1" 200 - 113 - 7 - "-" "S3Console/0.4" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader DOC-EXAMPLE-BUCKET1.s3.us-west-1.amazonaws.com TLSV1.2 arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP Yes"#;

/// OVHcloud's sample line from seed 001 (25 fields).
const OVH: &str = r#"1542319462669586:user-5hwhM25pPT6f my-bucket [10/Jan/2023:15:06:28 +0000] 109.190.254.61 1542319462669586:user-5hwhM25pPT6f tx46d5e8a45e5e4bb3975fc-0063bd7ef4 REST.PUT.LOGGING_STATUS - "PUT /?logging HTTP/1.0" 200 - - 200 113 0 "-" "aws-cli/1.24.10 Python/3.6.9 Linux/5.4.0-135-generic botocore/1.26.10" - - SigV4 - AuthHeader my-bucket.s3.training.perf.cloud.ovh.net - -"#;

/// Storj's documented example from seed 000, joined onto one line as delivered.
const STORJ: &str = r#"project-id bucket-name [29/Aug/2024:15:30:45 +0000] 192.168.1.100 user-id ABC123 GetObject myfile.pdf "GET /bucket-name/myfile.pdf HTTP/1.1" 200 - 1024 - - - "curl/7.68.0" - request-signature SigV4"#;

/// A Ceph RGW record: 25 fields, bare `-` for the quoted fields, a request ID with dots.
const CEPH: &str = r#"- photos [12/Mar/2025:08:15:02 +0000] 10.1.2.3 alice tx00000a1b2c3d4e5f60718-0067d14e46-3f2a1-default.zone-a REST.GET.OBJECT cats/tabby.jpg "GET /photos/cats/tabby.jpg HTTP/1.1" 200 - 52311 52311 14 - - - - - - - - - - -"#;

fn aws_with(replace: &str, with: &str) -> String {
    AWS_26.replacen(replace, with, 1)
}

macro_rules! parses {
    ($name:ident, $line:expr, |$r:ident| $check:block) => {
        #[test]
        fn $name() {
            let line: String = $line.into();
            let $r = parse_line(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            $check
        }
    };
}

macro_rules! rejects {
    ($name:ident, $line:expr, $kind:ident, $field:ident) => {
        #[test]
        fn $name() {
            let line: String = $line.into();
            let err = parse_line(&line).expect_err("line should be rejected");
            assert_eq!(
                (err.kind, err.field),
                (ParseErrorKind::$kind, Field::$field),
                "{err}"
            );
            assert!(err.column >= 1 && err.column <= line.len() + 1);
        }
    };
}

parses!(aws_documented_record, AWS_26, |r| {
    assert_eq!(r.bucket, Some("DOC-EXAMPLE-BUCKET1"));
    assert_eq!(r.time.to_string(), "2019-02-06T00:00:38Z");
    assert_eq!(r.operation, Some("REST.GET.VERSIONING"));
    assert_eq!(r.key, None);
    assert_eq!(
        r.request_uri,
        Some("GET /DOC-EXAMPLE-BUCKET1?versioning HTTP/1.1")
    );
    assert_eq!(r.http_status, Some(200));
    assert_eq!(r.bytes_sent, Some(113));
    assert_eq!(r.object_size, None);
    assert_eq!(r.total_time_ms, Some(7));
    assert_eq!(r.referer, None);
    assert_eq!(r.user_agent, Some("S3Console/0.4"));
    assert_eq!(r.tls_version, Some("TLSV1.2"));
    assert_eq!(
        r.access_point_arn,
        Some("arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP")
    );
    assert_eq!(r.acl_required, Some(true));
    assert_eq!(r.source_region, None);
    assert_eq!(r.extra_fields().count(), 0);
});
parses!(
    source_region_is_field_27,
    format!("{AWS_26} us-west-2"),
    |r| {
        assert_eq!(r.source_region, Some("us-west-2"));
        assert_eq!(r.extra_fields().count(), 0);
    }
);
parses!(
    unknown_trailing_fields_are_kept,
    format!("{AWS_26} us-west-2 new-1 \"quoted x\" -"),
    |r| {
        assert_eq!(
            r.extra_fields().collect::<Vec<_>>(),
            vec!["new-1", "\"quoted x\"", "-"]
        );
    }
);
/// The first 18 fields of [`AWS_26`]: how records looked before 2017.
fn aws_18() -> &'static str {
    &AWS_26[..AWS_26.find(" s9lzHY").unwrap_or(0)]
}

parses!(pre_2017_record_has_18_fields, aws_18(), |r| {
    assert_eq!(r.version_id, None);
    assert_eq!(r.host_id, None);
    assert_eq!(r.acl_required, None);
});
parses!(acl_required_dash_is_false, aws_with(" Yes", " -"), |r| {
    assert_eq!(r.acl_required, Some(false));
});
parses!(acl_required_yes_has_no_raw_value, AWS_26, |r| {
    assert_eq!(r.acl_required, Some(true));
    assert_eq!(r.acl_required_unparsed, None);
});
parses!(
    unknown_acl_flag_keeps_the_record_and_the_value,
    aws_with(" Yes", " Maybe"),
    |r| {
        assert_eq!(r.acl_required, None);
        assert_eq!(r.acl_required_unparsed, Some("Maybe"));
        assert_eq!(r.source_region, None);
    }
);
parses!(
    unknown_acl_flag_before_source_region,
    format!("{} us-east-2", aws_with(" Yes", " unknown")),
    |r| {
        assert_eq!(r.acl_required, None);
        assert_eq!(r.acl_required_unparsed, Some("unknown"));
        assert_eq!(r.source_region, Some("us-east-2"));
    }
);
/// Some writers put two spaces between the remote IP and the requester; the requester,
/// whatever its shape, is still read whole and the fields after it stay in place.
#[test]
fn two_spaces_before_the_requester_leave_it_whole() {
    const ORIGINAL: &str =
        "192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be";
    let cases = [
        (
            "arn:aws:iam::123456789012:user/ingest-bot",
            Some("arn:aws:iam::123456789012:user/ingest-bot"),
        ),
        ("-", None),
        (
            "arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2QWRUHAPOMQZL",
            Some("arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2QWRUHAPOMQZL"),
        ),
    ];
    for (written, requester) in cases {
        let line = aws_with(ORIGINAL, &format!("192.0.2.3  {written}"));
        let r = parse_line(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(r.remote_ip, Some("192.0.2.3"), "{line}");
        assert_eq!(r.requester, requester, "{line}");
        assert_eq!(r.request_id, Some("3E57427F3EXAMPLE"), "{line}");
        assert_eq!(r.operation, Some("REST.GET.VERSIONING"), "{line}");
        assert_eq!(r.acl_required, Some(true), "{line}");
    }
}
parses!(ovhcloud_sample_line, OVH, |r| {
    assert_eq!(r.requester, Some("1542319462669586:user-5hwhM25pPT6f"));
    assert_eq!(r.operation, Some("REST.PUT.LOGGING_STATUS"));
    assert_eq!(r.bytes_sent, None);
    assert_eq!(r.object_size, Some(200));
    assert_eq!(
        r.host_header,
        Some("my-bucket.s3.training.perf.cloud.ovh.net")
    );
    assert_eq!(r.access_point_arn, None);
    assert_eq!(r.acl_required, None);
});
parses!(storj_sample_line_parses_positionally, STORJ, |r| {
    assert_eq!(r.operation, Some("GetObject"));
    assert_eq!(r.requester, Some("user-id"));
    assert_eq!(r.key, Some("myfile.pdf"));
    assert_eq!(r.http_status, Some(200));
});
parses!(
    ceph_record_with_bare_dashes_and_dotted_request_id,
    CEPH,
    |r| {
        assert_eq!(r.bucket_owner, None);
        assert_eq!(
            r.request_id,
            Some("tx00000a1b2c3d4e5f60718-0067d14e46-3f2a1-default.zone-a")
        );
        assert_eq!(r.referer, None);
        assert_eq!(r.user_agent, None);
        assert_eq!(r.access_point_arn, None);
        assert_eq!(r.source_region, None);
    }
);
parses!(
    backblaze_operation,
    aws_with("REST.GET.VERSIONING", "REST.S3_GET_OBJECT"),
    |r| {
        assert_eq!(r.operation, Some("REST.S3_GET_OBJECT"));
    }
);
parses!(
    four_part_operation,
    aws_with("REST.GET.VERSIONING", "S3.COMPUTE.OBJECT.CHECKSUM"),
    |r| {
        assert_eq!(r.operation, Some("S3.COMPUTE.OBJECT.CHECKSUM"));
    }
);
parses!(
    cloudfront_oai_requester_with_spaces,
    aws_with(
        "192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be",
        "192.0.2.3 arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2QWRUHAPOMQZL"
    ),
    |r| {
        assert_eq!(
            r.requester,
            Some("arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2QWRUHAPOMQZL")
        );
        assert_eq!(r.request_id, Some("3E57427F3EXAMPLE"));
        assert_eq!(r.operation, Some("REST.GET.VERSIONING"));
        assert_eq!(r.http_status, Some(200));
    }
);
parses!(
    quoted_dash_is_null,
    aws_with("\"S3Console/0.4\"", "\"-\""),
    |r| {
        assert_eq!(r.user_agent, None);
    }
);
parses!(
    bare_dash_in_quoted_position_is_null,
    aws_with("\"S3Console/0.4\"", "-"),
    |r| {
        assert_eq!(r.user_agent, None);
        assert_eq!(r.version_id, None);
    }
);
parses!(
    empty_quoted_field_is_empty_string,
    aws_with("\"S3Console/0.4\"", "\"\""),
    |r| {
        assert_eq!(r.user_agent, Some(""));
    }
);
parses!(
    quoted_field_ends_at_quote_followed_by_space,
    aws_with("\"S3Console/0.4\"", "\"say \"hi\"there\""),
    |r| {
        assert_eq!(r.user_agent, Some("say \"hi\"there"));
        assert_eq!(r.version_id, None);
    }
);
parses!(
    quoted_field_with_spaces_and_brackets,
    aws_with("\"-\"", "\"https://x.example/a b?[c] d\""),
    |r| {
        assert_eq!(r.referer, Some("https://x.example/a b?[c] d"));
        assert_eq!(r.user_agent, Some("S3Console/0.4"));
    }
);
parses!(
    non_utc_offset_is_normalised,
    aws_with("+0000]", "-0500]"),
    |r| {
        assert_eq!(r.time.to_string(), "2019-02-06T05:00:38Z");
    }
);
parses!(
    trailing_space_and_cr_are_ignored,
    format!("{AWS_26} \r"),
    |r| {
        assert_eq!(r.acl_required, Some(true));
        assert_eq!(r.extra_fields().count(), 0);
    }
);
parses!(
    ipv6_remote_ip,
    aws_with("192.0.2.3", "2001:db8::8a2e:370:7334"),
    |r| {
        assert_eq!(r.remote_ip, Some("2001:db8::8a2e:370:7334"));
    }
);
parses!(
    very_long_referer,
    aws_with("\"-\"", &format!("\"{}\"", "r".repeat(50_000))),
    |r| {
        assert_eq!(r.referer.map(str::len), Some(50_000));
        assert_eq!(r.user_agent, Some("S3Console/0.4"));
    }
);
parses!(
    anonymous_requester_is_null,
    aws_with(
        "192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be",
        "192.0.2.3 -"
    ),
    |r| {
        assert_eq!(r.requester, None);
        assert_eq!(r.operation, Some("REST.GET.VERSIONING"));
    }
);

rejects!(
    empty_line_is_missing_bucket_owner,
    "",
    MissingField,
    BucketOwner
);
rejects!(
    seventeen_fields_are_too_few,
    aws_18().trim_end_matches(" -"),
    MissingField,
    VersionId
);
rejects!(bad_month, aws_with("Feb", "Fev"), InvalidTime, Time);
rejects!(
    time_without_brackets,
    aws_with("[06/Feb/2019:00:00:38 +0000]", "06/Feb/2019:00:00:38"),
    InvalidTime,
    Time
);
rejects!(
    unterminated_bracket,
    "o b [06/Feb/2019:00:00:38 +0000",
    UnterminatedBracket,
    Time
);
rejects!(
    unterminated_quote,
    aws_with("\"S3Console/0.4\" -", "\"S3Console/0.4 -"),
    UnterminatedQuote,
    UserAgent
);
rejects!(
    non_numeric_status,
    aws_with(" 200 ", " OK "),
    InvalidNumber,
    HttpStatus
);
rejects!(
    status_out_of_range,
    aws_with(" 200 ", " 20000 "),
    InvalidNumber,
    HttpStatus
);
rejects!(
    non_numeric_bytes,
    aws_with(" 113 ", " 1e3 "),
    InvalidNumber,
    BytesSent
);
rejects!(
    number_overflow,
    aws_with(" 113 ", " 99999999999999999999 "),
    InvalidNumber,
    BytesSent
);

#[test]
fn error_names_field_and_column() {
    let line = aws_with(" 200 ", " OK ");
    let err = parse_line(&line).expect_err("rejected");
    let expected_column = line.find(" OK ").map(|i| i + 2);
    assert_eq!(Some(err.column), expected_column);
    assert_eq!(
        err.to_string(),
        format!(
            "invalid_number in field `http_status` at byte column {}",
            err.column
        )
    );
}

#[test]
fn every_field_has_a_distinct_name() {
    let names: std::collections::HashSet<_> = Field::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(names.len(), Field::ALL.len());
}

#[test]
fn find_space_agrees_with_a_plain_search_at_every_position() {
    for len in 0..40 {
        for pos in 0..=len {
            let mut bytes = vec![b'x'; len];
            if pos < len {
                bytes[pos] = b' ';
            }
            for start in 0..=len {
                let expected = bytes[start..]
                    .iter()
                    .position(|&b| b == b' ')
                    .map_or(len, |p| start + p);
                assert_eq!(
                    find_space(&bytes, start),
                    expected,
                    "len {len} space {pos} start {start}"
                );
            }
        }
    }
    assert_eq!(find_space("é é".as_bytes(), 0), 2);
}

#[test]
fn operation_shape_matches_its_definition() {
    let by_definition = |token: &str| {
        let b = token.as_bytes();
        b.first().is_some_and(u8::is_ascii_uppercase)
            && b.contains(&b'.')
            && b.last() != Some(&b'.')
            && b.iter()
                .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'.' || c == b'_')
    };
    for token in [
        "",
        ".",
        "A",
        "A.",
        "A.B",
        "REST.GET.OBJECT",
        "REST.S3_GET_OBJECT",
        "S3.COMPUTE.OBJECT.CHECKSUM",
        "GetObject",
        "REPORT.PDF",
        "rest.get",
        "A.b",
        "A..B",
        "_A.B",
        "1A.B",
        "A.B-C",
        "A.B é",
        "Á.B",
    ] {
        assert_eq!(
            looks_like_operation(token),
            by_definition(token),
            "{token:?}"
        );
    }
    for b in 0..=255u8 {
        let token = format!("A.{}", char::from(b));
        assert_eq!(
            looks_like_operation(&token),
            by_definition(&token),
            "{token:?}"
        );
    }
}

#[test]
fn marked_space_search_matches_byte_search() {
    let line = format!("{}   x{}y z", "a".repeat(70), " ".repeat(3)) + &"b".repeat(130) + " c";
    let bytes = line.as_bytes();
    let mut spaces = vec![0u64; bytes.len().div_ceil(64)];
    for (i, &b) in bytes.iter().enumerate() {
        spaces[i / 64] |= u64::from(b == b' ') << (i % 64);
    }
    for start in 0..=bytes.len() {
        for len in [bytes.len(), bytes.len().saturating_sub(3), start] {
            let expected = find_space(&bytes[..len], start.min(len));
            assert_eq!(
                find_marked_space(&spaces, start.min(len), len),
                expected,
                "{start} {len}"
            );
        }
    }
}
