//! AWS's structured delivery for tests: access log text lines rewritten as the JSON
//! records S3 writes to CloudWatch Logs (field names from AWS's "Log format in CloudWatch
//! Logs"), and CloudWatch Logs subscription envelopes around them.

use std::io::Write;

use base64::Engine;
use bucketlog::access_log::parse_line;
use bucketlog::keys::decode_logged_key;
use serde_json::{Value, json};

/// One text record as AWS's JSON record: `null` where the text has `-`, the key as the
/// real key (this format does not URL-encode it), the time with milliseconds.
pub fn json_record(line: &str) -> String {
    let r = parse_line(line).unwrap_or_else(|e| panic!("not a record ({e}): {line}"));
    let path = r
        .request_uri
        .and_then(|uri| uri.split(' ').nth(1))
        .map(|p| p.split('?').next().unwrap_or(p));
    let key = r
        .key
        .map(|k| decode_logged_key(k, r.operation, r.bucket, path).into_owned());
    json!({
        "schema_version_id": "V_1_0",
        "bucket_arn": r.bucket.map(|b| format!("arn:aws:s3:::{b}")),
        "bucket_name": r.bucket,
        "request_time": r.time.rfc3339().as_str().replace('Z', ".000Z"),
        "bucket_owner_id": r.bucket_owner,
        "remote_ip": r.remote_ip,
        "requester": r.requester,
        "request_id": r.request_id,
        "operation": r.operation,
        "key_name": key,
        "request_uri": r.request_uri,
        "http_status": r.http_status,
        "error_code": r.error_code,
        "bytes_sent": r.bytes_sent,
        "object_size": r.object_size,
        "total_time": r.total_time_ms,
        "turn_around_time": r.turn_around_time_ms,
        "referrer": r.referer,
        "user_agent": r.user_agent,
        "version_id": r.version_id,
        "host_id": r.host_id,
        "signature_version": r.signature_version,
        "cipher_suite": r.cipher_suite,
        "authentication_type": r.authentication_type,
        "host_header": r.host_header,
        "tls_version": r.tls_version,
        "access_point_arn": r.access_point_arn,
        "acl_required": r.acl_required,
        "source_region": r.source_region,
    })
    .to_string()
}

/// A subscription invocation: `{"awslogs":{"data": base64(gzip(batch))}}` with one event
/// per message, IDs `{first_id}`, `{first_id + 1}`, ... and timestamps from `at_ms`.
pub fn envelope(
    group: &str,
    stream: &str,
    first_id: u64,
    at_ms: i64,
    messages: &[String],
) -> Value {
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": (first_id + i as u64).to_string(), "timestamp": at_ms, "message": m}))
        .collect();
    wrap(&json!({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": ["bucketlog"],
        "logEvents": events,
    }))
}

/// The check CloudWatch Logs sends when a subscription is created.
pub fn control_envelope() -> Value {
    wrap(&json!({
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 0, "message": "CWL CONTROL MESSAGE: Checking health of destination Lambda function."}],
    }))
}

fn wrap(document: &Value) -> Value {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(document.to_string().as_bytes()).expect("gzip");
    let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"));
    json!({ "awslogs": { "data": data } })
}
