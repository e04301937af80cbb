//! AWS's structured delivery: server access log records as JSON objects, the way S3
//! writes them to CloudWatch Logs (and from there to S3 or Firehose), read onto the same
//! [`LogRecord`] as a text line so that they become the same curated record, metrics and
//! alerts. Pure: one line of text in, a record or a reason out.
//!
//! The mapping, field by field (AWS's name → the curated field):
//!
//! | JSON | curated | notes |
//! |---|---|---|
//! | `bucket_owner_id` | `bucket_owner` | |
//! | `bucket_name` | `bucket` | from `bucket_arn` (`arn:aws:s3:::name`) when missing |
//! | `request_time` | `time` | ISO 8601 with milliseconds and `Z` (or an offset); the curated `time` has one-second resolution, as for text lines |
//! | `remote_ip`, `requester`, `request_id`, `operation`, `request_uri` | same | |
//! | `key_name` | `key` and `key_decoded` | the key itself: it is not URL-encoded in this format, so it is not decoded |
//! | `http_status` | `http_status` | an integer (a string of digits is accepted) |
//! | `error_code`, `version_id`, `host_id`, `signature_version`, `cipher_suite`, `authentication_type`, `host_header`, `tls_version`, `access_point_arn`, `source_region`, `user_agent` | same | |
//! | `bytes_sent`, `object_size` | same | integers |
//! | `total_time` (or `total_time_ms`) | `total_time_ms` | |
//! | `turn_around_time` (or `turnaround_time`, `turn_around_time_ms`) | `turn_around_time_ms` | |
//! | `referrer` (or `referer`) | `referer` | |
//! | `acl_required` | `acl_required` | `true`/`false`, or `"Yes"`/`"-"` as in the text format |
//!
//! `null` is `null`, never `-`. Every other field (`schema_version_id`, `bucket_arn`, and
//! whatever AWS adds later) is kept in `extra_json_fields`, by name: a string as itself,
//! anything else as its JSON text. A known field whose value has the wrong type is `null`
//! and its JSON text goes to `unparsed_fields`, so the record is kept and nothing is lost.
//! A line that starts with `{` but has no readable `request_time` is rejected with the
//! reason. One that is not a JSON object at all is handed to the text parser (a provider's
//! owner ID may start with `{`), and rejected as `invalid_json` only if that refuses it too.

use serde_json::{Map, Value};

use crate::access_log::{Field, LogRecord, LogTime};

/// Why a JSON line is not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonReject {
    /// The line is not one JSON object.
    #[error("invalid_json: not one JSON object (at byte column {column})")]
    NotAnObject {
        /// The 1-based byte column where reading stopped (1 when not known).
        column: usize,
    },
    /// The object has no `request_time`.
    #[error("missing_field in field `time`: the JSON record has no request_time")]
    MissingTime,
    /// `request_time` is not an ISO 8601 UTC time.
    #[error("invalid_time in field `time`: request_time is not an ISO 8601 time")]
    InvalidTime,
}

impl JsonReject {
    /// The stable code, as for text lines' rejections.
    pub fn code(&self) -> &'static str {
        match self {
            JsonReject::NotAnObject { .. } => "invalid_json",
            JsonReject::MissingTime => "missing_field",
            JsonReject::InvalidTime => "invalid_time",
        }
    }

    /// The curated field that failed, when one did.
    pub fn field(&self) -> Option<Field> {
        match self {
            JsonReject::NotAnObject { .. } => None,
            JsonReject::MissingTime | JsonReject::InvalidTime => Some(Field::Time),
        }
    }

    /// The 1-based byte column of the failure, when known.
    pub fn column(&self) -> Option<usize> {
        match self {
            JsonReject::NotAnObject { column } => Some(*column),
            _ => None,
        }
    }
}

/// True when a line is a JSON record rather than a text record: its first byte that is
/// not a space or a tab is `{` (a text record starts with the bucket owner's ID).
pub fn looks_like_json(line: &[u8]) -> bool {
    line.iter().find(|b| !matches!(b, b' ' | b'\t')) == Some(&b'{')
}

/// One JSON record, parsed: the object the mapped [`LogRecord`] borrows from.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonRecord {
    fields: Map<String, Value>,
}

/// What a JSON record holds beyond the [`LogRecord`] fields, rendered by the curated record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonLeftovers {
    /// Known fields whose value had the wrong type: the curated name and the JSON text.
    pub unparsed: Vec<(&'static str, String)>,
    /// Fields this version does not map, by their JSON name: a string as itself,
    /// anything else as its JSON text.
    pub unknown: Vec<(String, String)>,
}

/// Parses one line as a JSON object.
pub fn parse_json_record(line: &str) -> Result<JsonRecord, JsonReject> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(fields)) => Ok(JsonRecord { fields }),
        Ok(_) => Err(JsonReject::NotAnObject { column: 1 }),
        Err(e) => Err(JsonReject::NotAnObject {
            column: column_of(line, e.line(), e.column()),
        }),
    }
}

/// serde_json's (line, column) as a byte column of the one line (a JSON record cannot
/// hold a raw newline, but a `\r` or the framer's line may still count as one).
fn column_of(text: &str, line: usize, column: usize) -> usize {
    let before: usize = text
        .split('\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (before + column).max(1)
}

/// Which curated field a JSON name fills, and how to read its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Text(Field),
    Number(Field),
    Flag,
    Time,
    BucketArn,
}

/// The JSON names this version maps (see the module docs), with their aliases.
fn slot(name: &str) -> Option<Slot> {
    use Field as F;
    Some(match name {
        "bucket_owner_id" | "bucket_owner" => Slot::Text(F::BucketOwner),
        "bucket_name" | "bucket" => Slot::Text(F::Bucket),
        "request_time" => Slot::Time,
        "remote_ip" => Slot::Text(F::RemoteIp),
        "requester" => Slot::Text(F::Requester),
        "request_id" => Slot::Text(F::RequestId),
        "operation" => Slot::Text(F::Operation),
        "key_name" | "key" => Slot::Text(F::Key),
        "request_uri" => Slot::Text(F::RequestUri),
        "http_status" => Slot::Number(F::HttpStatus),
        "error_code" => Slot::Text(F::ErrorCode),
        "bytes_sent" => Slot::Number(F::BytesSent),
        "object_size" => Slot::Number(F::ObjectSize),
        "total_time" | "total_time_ms" => Slot::Number(F::TotalTime),
        "turn_around_time" | "turnaround_time" | "turn_around_time_ms" => {
            Slot::Number(F::TurnAroundTime)
        }
        "referrer" | "referer" => Slot::Text(F::Referer),
        "user_agent" => Slot::Text(F::UserAgent),
        "version_id" => Slot::Text(F::VersionId),
        "host_id" => Slot::Text(F::HostId),
        "signature_version" => Slot::Text(F::SignatureVersion),
        "cipher_suite" => Slot::Text(F::CipherSuite),
        "authentication_type" => Slot::Text(F::AuthenticationType),
        "host_header" => Slot::Text(F::HostHeader),
        "tls_version" => Slot::Text(F::TlsVersion),
        "access_point_arn" => Slot::Text(F::AccessPointArn),
        "acl_required" => Slot::Flag,
        "source_region" => Slot::Text(F::SourceRegion),
        "bucket_arn" => Slot::BucketArn,
        _ => return None,
    })
}

impl JsonRecord {
    /// The record, read onto a [`LogRecord`], and what did not fit it.
    pub fn to_log_record(&self) -> Result<(LogRecord<'_>, JsonLeftovers), JsonReject> {
        let time = match self.fields.get("request_time") {
            None | Some(Value::Null) => return Err(JsonReject::MissingTime),
            Some(Value::String(s)) => parse_iso8601(s).ok_or(JsonReject::InvalidTime)?,
            Some(_) => return Err(JsonReject::InvalidTime),
        };
        let mut record = empty_record(time);
        let mut leftovers = JsonLeftovers::default();
        let mut bucket_arn = None;
        for (name, value) in &self.fields {
            match slot(name) {
                Some(Slot::Time) => {}
                Some(Slot::BucketArn) => {
                    bucket_arn = value.as_str();
                    leftovers.unknown.push((name.clone(), as_text(value)));
                }
                Some(Slot::Text(field)) => match value {
                    Value::Null => {}
                    Value::String(s) => set_text(&mut record, field, s),
                    other => leftovers.unparsed.push((field.name(), other.to_string())),
                },
                Some(Slot::Number(field)) => match number(value) {
                    Ok(n) if set_number(&mut record, field, n) => {}
                    Ok(None) => {}
                    _ => leftovers.unparsed.push((field.name(), as_text(value))),
                },
                Some(Slot::Flag) => match value {
                    Value::Null => {}
                    Value::Bool(b) => record.acl_required = Some(*b),
                    Value::String(s) if s == "Yes" => record.acl_required = Some(true),
                    Value::String(s) if s == "-" => record.acl_required = Some(false),
                    other => leftovers
                        .unparsed
                        .push((Field::AclRequired.name(), as_text(other))),
                },
                None => leftovers.unknown.push((name.clone(), as_text(value))),
            }
        }
        if record.bucket.is_none() {
            record.bucket = bucket_arn.and_then(|arn| arn.strip_prefix("arn:aws:s3:::"));
        }
        Ok((record, leftovers))
    }
}

/// A string as itself, anything else as its JSON text.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `Ok(None)` for null, `Ok(Some(n))` for a non-negative integer (or a string of
/// digits), `Err` for anything else.
fn number(value: &Value) -> Result<Option<u64>, ()> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or(()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|_| ())
        }
        _ => Err(()),
    }
}

/// A record with every field empty, at `time`.
fn empty_record(time: LogTime) -> LogRecord<'static> {
    LogRecord {
        bucket_owner: None,
        bucket: None,
        time,
        remote_ip: None,
        requester: None,
        request_id: None,
        operation: None,
        key: None,
        request_uri: None,
        http_status: None,
        error_code: None,
        bytes_sent: None,
        object_size: None,
        total_time_ms: None,
        turn_around_time_ms: None,
        referer: None,
        user_agent: None,
        version_id: None,
        host_id: None,
        signature_version: None,
        cipher_suite: None,
        authentication_type: None,
        host_header: None,
        tls_version: None,
        access_point_arn: None,
        acl_required: None,
        acl_required_unparsed: None,
        source_region: None,
        extra: "",
    }
}

fn set_text<'a>(record: &mut LogRecord<'a>, field: Field, value: &'a str) {
    let slot = match field {
        Field::BucketOwner => &mut record.bucket_owner,
        Field::Bucket => &mut record.bucket,
        Field::RemoteIp => &mut record.remote_ip,
        Field::Requester => &mut record.requester,
        Field::RequestId => &mut record.request_id,
        Field::Operation => &mut record.operation,
        Field::Key => &mut record.key,
        Field::RequestUri => &mut record.request_uri,
        Field::ErrorCode => &mut record.error_code,
        Field::Referer => &mut record.referer,
        Field::UserAgent => &mut record.user_agent,
        Field::VersionId => &mut record.version_id,
        Field::HostId => &mut record.host_id,
        Field::SignatureVersion => &mut record.signature_version,
        Field::CipherSuite => &mut record.cipher_suite,
        Field::AuthenticationType => &mut record.authentication_type,
        Field::HostHeader => &mut record.host_header,
        Field::TlsVersion => &mut record.tls_version,
        Field::AccessPointArn => &mut record.access_point_arn,
        Field::SourceRegion => &mut record.source_region,
        _ => return,
    };
    *slot = Some(value);
}

/// Sets a numeric field; false when the value does not fit it (an HTTP status over 65535).
fn set_number(record: &mut LogRecord<'_>, field: Field, value: Option<u64>) -> bool {
    let Some(value) = value else {
        return false;
    };
    match field {
        Field::HttpStatus => match u16::try_from(value) {
            Ok(status) => record.http_status = Some(status),
            Err(_) => return false,
        },
        Field::BytesSent => record.bytes_sent = Some(value),
        Field::ObjectSize => record.object_size = Some(value),
        Field::TotalTime => record.total_time_ms = Some(value),
        Field::TurnAroundTime => record.turn_around_time_ms = Some(value),
        _ => return false,
    }
    true
}

/// `yyyy-MM-ddTHH:mm:ss[.fraction](Z|±hh:mm|±hhmm)`, the fraction dropped; `None` if
/// malformed.
pub fn parse_iso8601(text: &str) -> Option<LogTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &b[19..];
    if let [b'.', tail @ ..] = rest {
        let digits = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &tail[digits..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, tail @ ..] => {
            let minutes = match tail {
                [b':', m1, m2] | [m1, m2] => two_digits(*m1, *m2)?,
                [] => 0,
                _ => return None,
            };
            let hours = two_digits(*h1, *h2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'+' { seconds } else { -seconds }
        }
        _ => return None,
    };
    let utc = LogTime::from_utc(i64::from(year), month, day, hour, minute, second)?;
    Some(LogTime::from_unix_seconds(utc.unix_seconds() - offset))
}

fn two_digits(a: u8, b: u8) -> Option<u32> {
    (a.is_ascii_digit() && b.is_ascii_digit())
        .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with every field of AWS's documented list.
    const FULL: &str = r#"{"schema_version_id":"V_1_0","bucket_arn":"arn:aws:s3:::amzn-s3-demo-bucket1","bucket_name":"amzn-s3-demo-bucket1","request_time":"2026-07-01T12:34:56.789Z","bucket_owner_id":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be","remote_ip":"192.0.2.3","requester":"arn:aws:iam::123456789012:user/alice","request_id":"3E57427F3EXAMPLE","operation":"REST.GET.OBJECT","key_name":"photos/a b+c.jpg","request_uri":"GET /amzn-s3-demo-bucket1/photos/a%20b%2Bc.jpg HTTP/1.1","http_status":200,"error_code":null,"bytes_sent":2662992,"object_size":3462992,"total_time":70,"turn_around_time":10,"referrer":null,"user_agent":"aws-cli/2.15.0 Python/3.11","version_id":null,"host_id":"s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234=","signature_version":"SigV4","cipher_suite":"ECDHE-RSA-AES128-GCM-SHA256","authentication_type":"AuthHeader","host_header":"amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com","tls_version":"TLSv1.3","access_point_arn":null,"acl_required":null,"source_region":"us-west-1"}"#;

    fn mapped(line: &str) -> Result<(LogRecord<'static>, JsonLeftovers), JsonReject> {
        let record = Box::leak(Box::new(parse_json_record(line)?));
        record.to_log_record()
    }

    #[test]
    fn every_documented_field_maps_onto_the_record() {
        let (r, left) = mapped(FULL).unwrap();
        assert_eq!(r.bucket, Some("amzn-s3-demo-bucket1"));
        assert_eq!(r.time.to_string(), "2026-07-01T12:34:56Z");
        assert_eq!(r.bucket_owner.map(str::len), Some(64));
        assert_eq!(r.remote_ip, Some("192.0.2.3"));
        assert_eq!(r.requester, Some("arn:aws:iam::123456789012:user/alice"));
        assert_eq!(r.request_id, Some("3E57427F3EXAMPLE"));
        assert_eq!(r.operation, Some("REST.GET.OBJECT"));
        assert_eq!(r.key, Some("photos/a b+c.jpg"));
        assert_eq!(
            r.request_uri,
            Some("GET /amzn-s3-demo-bucket1/photos/a%20b%2Bc.jpg HTTP/1.1")
        );
        assert_eq!(r.http_status, Some(200));
        assert_eq!(r.error_code, None);
        assert_eq!(
            (r.bytes_sent, r.object_size),
            (Some(2662992), Some(3462992))
        );
        assert_eq!(
            (r.total_time_ms, r.turn_around_time_ms),
            (Some(70), Some(10))
        );
        assert_eq!(r.referer, None);
        assert_eq!(r.user_agent, Some("aws-cli/2.15.0 Python/3.11"));
        assert_eq!(r.version_id, None);
        assert!(r.host_id.is_some_and(|h| h.ends_with("1234=")));
        assert_eq!(r.signature_version, Some("SigV4"));
        assert_eq!(r.cipher_suite, Some("ECDHE-RSA-AES128-GCM-SHA256"));
        assert_eq!(r.authentication_type, Some("AuthHeader"));
        assert_eq!(
            r.host_header,
            Some("amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com")
        );
        assert_eq!(r.tls_version, Some("TLSv1.3"));
        assert_eq!((r.access_point_arn, r.acl_required), (None, None));
        assert_eq!(r.source_region, Some("us-west-1"));
        assert!(left.unparsed.is_empty());
        let mut unknown = left.unknown.clone();
        unknown.sort();
        assert_eq!(
            unknown,
            [
                (
                    "bucket_arn".into(),
                    "arn:aws:s3:::amzn-s3-demo-bucket1".into()
                ),
                ("schema_version_id".to_string(), "V_1_0".to_string()),
            ]
        );
    }

    #[test]
    fn unknown_fields_are_kept_and_wrong_types_go_to_unparsed() {
        let line = r#"{"request_time":"2026-07-01T00:00:00Z","bucket_arn":"arn:aws:s3:::b","http_status":"teapot","bytes_sent":"42","acl_required":"Maybe","operation":7,"new_field":{"a":[1,2]},"flag":true}"#;
        let (r, left) = mapped(line).unwrap();
        assert_eq!(
            r.bucket,
            Some("b"),
            "from the ARN when bucket_name is missing"
        );
        assert_eq!(r.http_status, None);
        assert_eq!(r.bytes_sent, Some(42), "a string of digits is a number");
        assert_eq!((r.acl_required, r.operation), (None, None));
        let mut unparsed = left.unparsed.clone();
        unparsed.sort();
        assert_eq!(
            unparsed,
            [
                ("acl_required", "Maybe".to_string()),
                ("http_status", "teapot".into()),
                ("operation", "7".into()),
            ]
        );
        assert!(
            left.unknown
                .contains(&("new_field".into(), r#"{"a":[1,2]}"#.into()))
        );
        assert!(left.unknown.contains(&("flag".into(), "true".into())));
    }

    #[test]
    fn lines_that_are_not_records_say_why() {
        assert_eq!(
            mapped(r#"{"request_time": "#).unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(mapped("[1,2]").unwrap_err().code(), "invalid_json");
        assert_eq!(mapped(r#"{"a":1}"#).unwrap_err(), JsonReject::MissingTime);
        assert_eq!(
            mapped(r#"{"request_time":"yesterday"}"#).unwrap_err(),
            JsonReject::InvalidTime
        );
        assert_eq!(
            mapped(r#"{"request_time":"2026-02-30T00:00:00Z"}"#).unwrap_err(),
            JsonReject::InvalidTime
        );
    }

    #[test]
    fn iso8601_times_with_fractions_and_offsets() {
        let t = |s| parse_iso8601(s).map(|t| t.to_string());
        assert_eq!(
            t("2026-07-01T12:34:56.789Z").as_deref(),
            Some("2026-07-01T12:34:56Z")
        );
        assert_eq!(
            t("2026-07-01T12:34:56Z").as_deref(),
            Some("2026-07-01T12:34:56Z")
        );
        assert_eq!(
            t("2026-07-01T02:00:00+02:00").as_deref(),
            Some("2026-07-01T00:00:00Z")
        );
        assert_eq!(
            t("2026-07-01T00:00:00-0130").as_deref(),
            Some("2026-07-01T01:30:00Z")
        );
        assert_eq!(
            t("2026-12-31T23:59:59.999999Z").as_deref(),
            Some("2026-12-31T23:59:59Z")
        );
        for bad in [
            "2026-07-01",
            "2026-07-01T12:34:56",
            "2026-13-01T00:00:00Z",
            "2026-07-01T12:34:56.Z",
            "2026-07-01T24:00:00Z",
            "２０26-07-01T00:00:00Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn json_lines_are_told_from_text_lines() {
        assert!(looks_like_json(b"{\"a\":1}"));
        assert!(looks_like_json(b"  \t{"));
        assert!(!looks_like_json(
            b"79a5 bucket [06/Feb/2019:00:00:38 +0000] {"
        ));
        assert!(!looks_like_json(b""));
    }
}
