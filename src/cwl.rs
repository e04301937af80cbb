//! CloudWatch Logs subscription batches: the `{"awslogs":{"data":…}}` envelope a
//! subscription filter invokes the function with, when S3 delivers access logs to a log
//! group (AWS's structured delivery, see [`crate::json_record`]). Pure: the envelope in,
//! a batch of log events out.
//!
//! `data` is base64 of gzip of one JSON document: `messageType` (`DATA_MESSAGE`, or
//! `CONTROL_MESSAGE` when CloudWatch Logs checks that the destination is reachable),
//! `logGroup`, `logStream` and `logEvents` (`id`, `timestamp`, `message`). Each message is
//! one access log record: a JSON record, or a text line if someone sends those.
//!
//! A batch has no log bucket, so it is given a name of its own, from its log group, log
//! stream and first event ID ([`LogBatch::object_ref`]): a batch delivered twice has the
//! same name and the same content hash, so its outputs overwrite and its marker makes the
//! second delivery a duplicate.

use std::io::Read;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::access_log::LogTime;
use crate::event::{EventError, ObjectRef};
use crate::logkey::Fnv1a;

/// The most a batch may decompress to. CloudWatch Logs sends at most about 1 MB of events
/// per invocation; anything far larger is not a subscription batch and is refused rather
/// than held in memory.
pub const MAX_BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// The folder under which batches are named, in the output bucket.
pub const BATCH_PREFIX: &str = "cloudwatch-logs/";

/// What one subscription invocation carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogsMessage {
    /// CloudWatch Logs checking the destination: nothing to do.
    Control,
    /// Log events to process.
    Data(LogBatch),
}

/// One batch of log events from one log stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogBatch {
    /// The log group.
    pub log_group: String,
    /// The log stream.
    pub log_stream: String,
    /// The events, in the order CloudWatch Logs sent them.
    pub log_events: Vec<LogEvent>,
}

/// One log event: one access log record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogEvent {
    /// CloudWatch Logs' event ID, unique within the log group.
    pub id: String,
    /// Ingestion timestamp, milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The record.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    message_type: String,
}

/// True when a payload is a CloudWatch Logs subscription envelope.
pub fn is_logs_envelope(payload: &Value) -> bool {
    payload["awslogs"]["data"].is_string()
}

/// Decodes a subscription envelope's `awslogs.data`.
pub fn decode_logs_envelope(payload: &Value) -> Result<LogsMessage, EventError> {
    let malformed = |problem: String| EventError::Malformed {
        envelope: "CloudWatch Logs",
        problem,
    };
    let data = payload["awslogs"]["data"]
        .as_str()
        .ok_or_else(|| malformed("awslogs.data is not a string".into()))?;
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| malformed(format!("awslogs.data is not base64: {e}")))?;
    let mut json = Vec::new();
    flate2::read::MultiGzDecoder::new(&compressed[..])
        .take(MAX_BATCH_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| malformed(format!("awslogs.data is not gzip: {e}")))?;
    if json.len() as u64 > MAX_BATCH_BYTES {
        return Err(malformed(format!(
            "awslogs.data decompresses to more than {MAX_BATCH_BYTES} bytes"
        )));
    }
    let envelope: Envelope = serde_json::from_slice(&json)
        .map_err(|e| malformed(format!("awslogs.data is not a log batch: {e}")))?;
    match envelope.message_type.as_str() {
        "CONTROL_MESSAGE" => Ok(LogsMessage::Control),
        "DATA_MESSAGE" => serde_json::from_slice(&json)
            .map(LogsMessage::Data)
            .map_err(|e| malformed(format!("awslogs.data is not a log batch: {e}"))),
        other => Err(malformed(format!("unknown messageType {other:?}"))),
    }
}

impl LogBatch {
    /// The batch as a log object's bytes: one line per event (a trailing newline inside a
    /// message is the record's own line end, not a blank line).
    pub fn body(&self) -> Vec<u8> {
        let size = self.log_events.iter().map(|e| e.message.len() + 1).sum();
        let mut body = Vec::with_capacity(size);
        for event in &self.log_events {
            let message = event.message.strip_suffix('\n').unwrap_or(&event.message);
            let message = message.strip_suffix('\r').unwrap_or(message);
            body.extend_from_slice(message.as_bytes());
            body.push(b'\n');
        }
        body
    }

    /// The name the batch's outputs and marker derive from, in `output_bucket`:
    /// `cloudwatch-logs/{log group}/{log stream}/{first event's time}-{first event ID}`.
    /// The time (`YYYY-mm-DD-HH-MM-SS`, as S3 names its log objects) puts the batch's
    /// rejected lines and alert documents in the partition of its first event.
    pub fn object_ref(&self, output_bucket: &str) -> ObjectRef {
        let (first_id, first_ms) = self
            .log_events
            .first()
            .map_or(("empty", 0), |e| (e.id.as_str(), e.timestamp));
        let t = LogTime::from_unix_seconds(first_ms.div_euclid(1000)).utc();
        let group = self.log_group.trim_start_matches('/');
        ObjectRef {
            bucket: output_bucket.to_string(),
            key: format!(
                "{BATCH_PREFIX}{group}/{}/{:04}-{:02}-{:02}-{:02}-{:02}-{:02}-{first_id}",
                self.log_stream, t.year, t.month, t.day, t.hour, t.minute, t.second
            ),
        }
    }

    /// A stable hash of the batch's events, standing in for an ETag: a re-delivered batch
    /// has the same one, a different batch under the same name (which CloudWatch Logs
    /// does not send) a different one.
    pub fn content_tag(&self) -> String {
        let mut hash = Fnv1a::default();
        for event in &self.log_events {
            hash.write(event.id.as_bytes());
            hash.write(&[0]);
            hash.write(event.message.as_bytes());
            hash.write(&[0]);
        }
        format!("cwl-{:016x}-{}", hash.finish(), self.log_events.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A subscription envelope around `document`.
    pub(crate) fn envelope(document: &Value) -> Value {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(document.to_string().as_bytes()).unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        serde_json::json!({ "awslogs": { "data": data } })
    }

    fn data_message() -> Value {
        serde_json::json!({
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "/aws/s3/access-logs",
            "logStream": "amzn-s3-demo-bucket1",
            "subscriptionFilters": ["bucketlog"],
            "logEvents": [
                {"id": "3819", "timestamp": 1_782_909_296_789_i64, "message": "{\"a\":1}"},
                {"id": "3820", "timestamp": 1_782_909_297_000_i64, "message": "{\"b\":2}\n"}
            ]
        })
    }

    #[test]
    fn data_messages_become_batches_named_by_group_stream_and_first_event() {
        let payload = envelope(&data_message());
        assert!(is_logs_envelope(&payload));
        let LogsMessage::Data(batch) = decode_logs_envelope(&payload).unwrap() else {
            panic!("not data");
        };
        assert_eq!(batch.log_events.len(), 2);
        assert_eq!(batch.body(), b"{\"a\":1}\n{\"b\":2}\n");
        let object = batch.object_ref("logs");
        assert_eq!(object.bucket, "logs");
        assert_eq!(
            object.key,
            "cloudwatch-logs/aws/s3/access-logs/amzn-s3-demo-bucket1/2026-07-01-12-34-56-3819"
        );
        let again = decode_logs_envelope(&payload).unwrap();
        assert_eq!(
            again,
            LogsMessage::Data(batch.clone()),
            "a re-delivery is the same"
        );
        let mut other = batch.clone();
        other.log_events[1].message = "{\"b\":3}".into();
        assert_ne!(other.content_tag(), batch.content_tag());
    }

    #[test]
    fn control_messages_are_nothing_to_do() {
        let payload = envelope(&serde_json::json!({
            "messageType": "CONTROL_MESSAGE",
            "owner": "CloudwatchLogs",
            "logGroup": "",
            "logStream": "",
            "subscriptionFilters": [],
            "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination Lambda function."}]
        }));
        assert_eq!(
            decode_logs_envelope(&payload).unwrap(),
            LogsMessage::Control
        );
    }

    #[test]
    fn broken_envelopes_are_errors_that_say_what_is_wrong() {
        let text = |v: Value| decode_logs_envelope(&v).unwrap_err().to_string();
        assert!(text(serde_json::json!({"awslogs": {"data": "!!"}})).contains("not base64"));
        assert!(text(serde_json::json!({"awslogs": {"data": "aGVsbG8="}})).contains("not gzip"));
        assert!(
            text(envelope(
                &serde_json::json!({"messageType": "DATA_MESSAGE"})
            ))
            .contains("not a log batch")
        );
        assert!(
            text(envelope(&serde_json::json!({"messageType": "OTHER"})))
                .contains("unknown messageType")
        );
    }
}
