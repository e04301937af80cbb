//! Lambda event envelopes → the log objects to process. Pure: JSON in, notices out.
//!
//! Accepted: S3 Batch Operations jobs ([`crate::batch_ops`]); CloudWatch Logs
//! subscription batches ([`crate::cwl`]); S3 notifications invoking the function
//! directly; the same wrapped in SQS (failures reported per message), in SNS, and in SNS
//! inside SQS; EventBridge
//! "Object Created" events. `s3:TestEvent` and non-create events become
//! [`Notice::Ignored`] with a reason. Keys in S3 notifications are form-URL-encoded
//! (`+` is a space) and are decoded here; EventBridge delivers keys as they are.
//! S3-compatible stores (Ceph RGW, MinIO) send the same record shape with their own
//! `eventSource` (`ceph:s3`), so records are read leniently rather than through
//! `aws_lambda_events`' strict `S3EventRecord`, which requires fields they omit.

use aws_lambda_events::sqs::SqsEvent;
use serde_json::Value;

/// One object in a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The bucket.
    pub bucket: String,
    /// The key, decoded (as S3's API expects it).
    pub key: String,
}

impl ObjectRef {
    /// Reads `s3://bucket/key`, the form [`Display`](std::fmt::Display) writes (reports
    /// and markers name outputs that way); `None` for anything else.
    pub fn from_location(location: &str) -> Option<Self> {
        let (bucket, key) = location.strip_prefix("s3://")?.split_once('/')?;
        Some(Self {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// A new object, as announced by an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    /// Where it is.
    pub object: ObjectRef,
    /// Its ETag as announced (without quotes), when the event carries one.
    pub etag: Option<String>,
    /// Its size, when the event carries it.
    pub size: Option<u64>,
    /// The event name, such as `ObjectCreated:Put`.
    pub event_name: String,
}

/// What one event record asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A new object to process.
    Created(CreatedObject),
    /// Nothing to do, and why (logged, never an error).
    Ignored {
        /// A short human-readable reason.
        reason: String,
    },
}

/// One SQS message and what it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsItem {
    /// The message ID, reported back in `batchItemFailures` when its work fails.
    pub message_id: String,
    /// The notices in its body, or why the body could not be read.
    pub notices: Result<Vec<Notice>, EventError>,
}

/// A whole invocation's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Direct S3, SNS or EventBridge: any failure fails the invocation, and Lambda retries.
    Direct(Vec<Notice>),
    /// An SQS batch: failures are reported per message, so only those are retried.
    Sqs(Vec<SqsItem>),
    /// A CloudWatch Logs subscription batch (see [`crate::cwl`]).
    Logs(crate::cwl::LogsMessage),
    /// An S3 Batch Operations job's tasks (see [`crate::batch_ops`]).
    BatchOperations(crate::batch_ops::BatchJob),
    /// A scheduled event (an EventBridge rule's `Scheduled Event`, or EventBridge
    /// Scheduler sending one): compact the lake's dirty partitions (see [`crate::lake`]).
    Compact,
}

/// An event that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The payload matches no envelope this function accepts.
    #[error("unrecognised event: {0}")]
    Unrecognised(String),
    /// A field the envelope needs is missing or has the wrong type.
    #[error("malformed {envelope} event: {problem}")]
    Malformed {
        /// Which envelope.
        envelope: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A message body or SNS message is not JSON.
    #[error("{envelope} message is not JSON: {error}")]
    NotJson {
        /// Which envelope.
        envelope: &'static str,
        /// The JSON error.
        error: String,
    },
}

/// Reads an invocation payload.
pub fn parse_invocation(payload: &Value) -> Result<Invocation, EventError> {
    if payload["detail-type"] == "Scheduled Event" {
        return Ok(Invocation::Compact);
    }
    if crate::batch_ops::is_batch_job(payload) {
        return crate::batch_ops::parse_batch_job(payload).map(Invocation::BatchOperations);
    }
    if crate::cwl::is_logs_envelope(payload) {
        return crate::cwl::decode_logs_envelope(payload).map(Invocation::Logs);
    }
    if is_sqs_batch(payload) {
        let batch: SqsEvent =
            serde_json::from_value(payload.clone()).map_err(|e| EventError::Malformed {
                envelope: "SQS",
                problem: e.to_string(),
            })?;
        let items = batch
            .records
            .into_iter()
            .enumerate()
            .map(|(i, message)| SqsItem {
                message_id: message.message_id.unwrap_or_else(|| format!("#{i}")),
                notices: match message.body {
                    Some(body) => notices_from_text("SQS", &body),
                    None => Err(EventError::Malformed {
                        envelope: "SQS",
                        problem: "message has no body".into(),
                    }),
                },
            })
            .collect();
        return Ok(Invocation::Sqs(items));
    }
    notices_from_value(payload).map(Invocation::Direct)
}

fn is_sqs_batch(payload: &Value) -> bool {
    payload["Records"]
        .as_array()
        .and_then(|records| records.first())
        .is_some_and(|r| r["eventSource"] == "aws:sqs")
}

fn notices_from_text(envelope: &'static str, text: &str) -> Result<Vec<Notice>, EventError> {
    let value: Value = serde_json::from_str(text).map_err(|e| EventError::NotJson {
        envelope,
        error: e.to_string(),
    })?;
    notices_from_value(&value)
}

/// Reads any non-SQS envelope: S3 records, SNS records, an SNS notification body,
/// an EventBridge event, or the S3 test event.
fn notices_from_value(value: &Value) -> Result<Vec<Notice>, EventError> {
    if value["Event"] == "s3:TestEvent" {
        return Ok(vec![Notice::Ignored {
            reason: "s3:TestEvent".into(),
        }]);
    }
    if value.get("detail-type").is_some() && value.get("source").is_some() {
        return eventbridge_notice(value).map(|n| vec![n]);
    }
    if value["Type"] == "Notification" {
        let message = value["Message"]
            .as_str()
            .ok_or_else(|| EventError::Malformed {
                envelope: "SNS",
                problem: "notification has no Message string".into(),
            })?;
        return notices_from_text("SNS", message);
    }
    let Some(records) = value["Records"].as_array() else {
        return Err(EventError::Unrecognised(summarise(value)));
    };
    let mut notices = Vec::new();
    for record in records {
        if record["EventSource"] == "aws:sns" {
            let message =
                record["Sns"]["Message"]
                    .as_str()
                    .ok_or_else(|| EventError::Malformed {
                        envelope: "SNS",
                        problem: "record has no Sns.Message string".into(),
                    })?;
            notices.extend(notices_from_text("SNS", message)?);
        } else if record.get("s3").is_some() {
            notices.push(s3_record_notice(record)?);
        } else {
            return Err(EventError::Unrecognised(summarise(record)));
        }
    }
    Ok(notices)
}

fn s3_record_notice(record: &Value) -> Result<Notice, EventError> {
    let malformed = |problem: &str| EventError::Malformed {
        envelope: "S3",
        problem: problem.into(),
    };
    let event_name = record["eventName"].as_str().unwrap_or("").to_string();
    let event_name = event_name
        .strip_prefix("s3:")
        .unwrap_or(&event_name)
        .to_string();
    if !event_name.starts_with("ObjectCreated:") {
        return Ok(Notice::Ignored {
            reason: format!("event {event_name:?} is not an object creation"),
        });
    }
    let bucket = record["s3"]["bucket"]["name"]
        .as_str()
        .ok_or_else(|| malformed("record has no s3.bucket.name"))?;
    let raw_key = record["s3"]["object"]["key"]
        .as_str()
        .ok_or_else(|| malformed("record has no s3.object.key"))?;
    let key = decode_event_key(raw_key)
        .ok_or_else(|| malformed(&format!("key {raw_key:?} does not decode to UTF-8")))?;
    Ok(Notice::Created(CreatedObject {
        object: ObjectRef {
            bucket: bucket.to_string(),
            key,
        },
        etag: record["s3"]["object"]["eTag"].as_str().map(unquote_etag),
        size: record["s3"]["object"]["size"].as_u64(),
        event_name,
    }))
}

fn eventbridge_notice(event: &Value) -> Result<Notice, EventError> {
    let detail_type = event["detail-type"].as_str().unwrap_or("");
    if event["source"] != "aws.s3" || detail_type != "Object Created" {
        return Ok(Notice::Ignored {
            reason: format!(
                "EventBridge event {:?} from {:?} is not an S3 object creation",
                detail_type,
                event["source"].as_str().unwrap_or("")
            ),
        });
    }
    let malformed = |problem: &str| EventError::Malformed {
        envelope: "EventBridge",
        problem: problem.into(),
    };
    let detail = &event["detail"];
    let bucket = detail["bucket"]["name"]
        .as_str()
        .ok_or_else(|| malformed("detail has no bucket.name"))?;
    let key = detail["object"]["key"]
        .as_str()
        .ok_or_else(|| malformed("detail has no object.key"))?;
    Ok(Notice::Created(CreatedObject {
        object: ObjectRef {
            bucket: bucket.to_string(),
            key: key.to_string(),
        },
        etag: detail["object"]["etag"].as_str().map(unquote_etag),
        size: detail["object"]["size"].as_u64(),
        event_name: format!(
            "ObjectCreated:{}",
            detail["reason"].as_str().unwrap_or("EventBridge")
        ),
    }))
}

/// The latest time an event says it happened, in Unix seconds: S3 records' `eventTime`,
/// EventBridge's `time`, looked for through SQS and SNS envelopes (whose bodies are JSON
/// in strings). `None` when it names no time (CloudWatch Logs batches, Batch Operations
/// jobs). A local replay runs its clock from here, so an old sample is replayed as of when
/// it happened rather than as weeks-late data (see `bucketlog replay`).
pub fn latest_event_time(payload: &Value) -> Option<i64> {
    match payload {
        Value::Object(fields) => fields
            .iter()
            .filter_map(|(name, value)| match (name.as_str(), value) {
                ("eventTime" | "time", Value::String(text)) => {
                    crate::json_record::parse_iso8601(text).map(|t| t.unix_seconds())
                }
                _ => latest_event_time(value),
            })
            .max(),
        Value::Array(items) => items.iter().filter_map(latest_event_time).max(),
        Value::String(text) if text.trim_start().starts_with('{') => {
            serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|inner| latest_event_time(&inner))
        }
        _ => None,
    }
}

/// Decodes a key from an S3 notification: form-URL-encoded, so `+` is a space and
/// `%2B` a plus. `None` when the bytes it decodes to are not UTF-8.
pub fn decode_event_key(key: &str) -> Option<String> {
    let mut out = Vec::with_capacity(key.len());
    crate::keys::push_decoded(key.as_bytes(), crate::keys::Plus::Space, &mut out);
    String::from_utf8(out).ok()
}

fn unquote_etag(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

fn summarise(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The Unix time of an RFC 3339 text, for the expectations below.
    fn unix(text: &str) -> i64 {
        crate::json_record::parse_iso8601(text)
            .map(|t| t.unix_seconds())
            .unwrap()
    }

    #[test]
    fn the_latest_event_time_is_found_in_every_envelope_that_carries_one() {
        let sample = |name: &str| -> Value {
            let path = format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        let put = unix("2026-11-20T14:05:13Z");
        assert_eq!(latest_event_time(&sample("s3-put")), Some(put));
        assert_eq!(
            latest_event_time(&sample("sns-s3")),
            Some(put),
            "JSON in SNS"
        );
        assert_eq!(
            latest_event_time(&sample("sqs-sns-s3")),
            Some(put),
            "SNS in SQS"
        );
        assert_eq!(
            latest_event_time(&sample("eventbridge-object-created")),
            Some(unix("2026-11-20T18:00:01Z"))
        );
        assert_eq!(
            latest_event_time(&sample("cloudwatch-logs-subscription")),
            None
        );
        assert_eq!(
            latest_event_time(&sample("batch-operations-backfill")),
            None
        );
        let two = json!({"Records": [
            {"eventTime": "2026-11-20T14:05:13Z"},
            {"eventTime": "2026-11-21T09:00:00.5+01:00"},
            {"eventTime": "not a time"},
        ]});
        assert_eq!(latest_event_time(&two), Some(unix("2026-11-21T08:00:00Z")));
    }

    fn s3_record(event: &str, key: &str) -> Value {
        json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-20T14:05:13.000Z", "eventName": event,
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"}, "requestParameters": {"sourceIPAddress": "192.0.2.1"},
            "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "logs",
                "bucket": {"name": "log-bucket", "arn": "arn:aws:s3:::log-bucket"},
                "object": {"key": key, "size": 1234, "eTag": "0123abcd", "sequencer": "0055AED6DCD90281E5"}}
        })
    }

    fn created(notices: &[Notice]) -> Vec<(String, String)> {
        notices
            .iter()
            .filter_map(|n| match n {
                Notice::Created(c) => Some((c.object.bucket.clone(), c.object.key.clone())),
                Notice::Ignored { .. } => None,
            })
            .collect()
    }

    #[test]
    fn direct_s3_event_decodes_form_encoded_key() {
        let event = json!({"Records": [s3_record("ObjectCreated:Put", "raw/my+logs%2Bmore/2026-11-20-14-05-12-ABC")]});
        let Invocation::Direct(notices) = parse_invocation(&event).unwrap() else {
            panic!("direct")
        };
        assert_eq!(
            created(&notices),
            vec![(
                "log-bucket".into(),
                "raw/my logs+more/2026-11-20-14-05-12-ABC".into()
            )]
        );
        let Notice::Created(c) = &notices[0] else {
            panic!()
        };
        assert_eq!((c.etag.as_deref(), c.size), (Some("0123abcd"), Some(1234)));
    }

    #[test]
    fn removal_events_are_ignored_with_a_reason() {
        let event = json!({"Records": [s3_record("ObjectRemoved:Delete", "raw/x")]});
        let Invocation::Direct(notices) = parse_invocation(&event).unwrap() else {
            panic!()
        };
        assert!(
            matches!(&notices[0], Notice::Ignored { reason } if reason.contains("ObjectRemoved"))
        );
    }

    #[test]
    fn test_event_is_ignored() {
        let event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-20T14:00:00.000Z", "Bucket": "log-bucket", "RequestId": "X", "HostId": "Y"});
        assert_eq!(
            parse_invocation(&event).unwrap(),
            Invocation::Direct(vec![Notice::Ignored {
                reason: "s3:TestEvent".into()
            }])
        );
    }

    #[test]
    fn sqs_batch_keeps_message_ids_and_isolates_bad_bodies() {
        let good = json!({"Records": [s3_record("ObjectCreated:Put", "raw/a")]}).to_string();
        let event = json!({"Records": [
            {"messageId": "m1", "receiptHandle": "r", "body": good, "eventSource": "aws:sqs", "awsRegion": "us-east-1", "attributes": {}, "messageAttributes": {}},
            {"messageId": "m2", "receiptHandle": "r", "body": "not json", "eventSource": "aws:sqs", "awsRegion": "us-east-1", "attributes": {}, "messageAttributes": {}}
        ]});
        let Invocation::Sqs(items) = parse_invocation(&event).unwrap() else {
            panic!("sqs")
        };
        assert_eq!(items[0].message_id, "m1");
        assert_eq!(
            created(items[0].notices.as_ref().unwrap()),
            vec![("log-bucket".into(), "raw/a".into())]
        );
        assert_eq!(items[1].message_id, "m2");
        assert!(matches!(items[1].notices, Err(EventError::NotJson { .. })));
    }

    #[test]
    fn sns_and_sns_inside_sqs() {
        let s3 = json!({"Records": [s3_record("ObjectCreated:CompleteMultipartUpload", "raw/b")]})
            .to_string();
        let sns = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn", "Sns": {"Type": "Notification", "MessageId": "x", "TopicArn": "t", "Message": s3.clone(), "Timestamp": "2026-11-20T14:05:13.000Z", "SignatureVersion": "1", "Signature": "s", "SigningCertUrl": "u", "UnsubscribeUrl": "u"}}]});
        let Invocation::Direct(notices) = parse_invocation(&sns).unwrap() else {
            panic!()
        };
        assert_eq!(
            created(&notices),
            vec![("log-bucket".into(), "raw/b".into())]
        );

        let notification =
            json!({"Type": "Notification", "MessageId": "x", "TopicArn": "t", "Message": s3})
                .to_string();
        let sqs = json!({"Records": [{"messageId": "m9", "body": notification, "eventSource": "aws:sqs"}]});
        let Invocation::Sqs(items) = parse_invocation(&sqs).unwrap() else {
            panic!()
        };
        assert_eq!(
            created(items[0].notices.as_ref().unwrap()),
            vec![("log-bucket".into(), "raw/b".into())]
        );
    }

    #[test]
    fn eventbridge_object_created() {
        let event = json!({"version": "0", "id": "e", "detail-type": "Object Created", "source": "aws.s3", "account": "123456789012", "time": "2026-11-20T14:05:13Z", "region": "us-east-1", "resources": ["arn:aws:s3:::log-bucket"],
            "detail": {"version": "0", "bucket": {"name": "log-bucket"}, "object": {"key": "raw/c d", "size": 5, "etag": "\"e1\""}, "request-id": "r", "requester": "123456789012", "reason": "PutObject"}});
        let Invocation::Direct(notices) = parse_invocation(&event).unwrap() else {
            panic!()
        };
        let Notice::Created(c) = &notices[0] else {
            panic!()
        };
        assert_eq!(
            (
                c.object.key.as_str(),
                c.etag.as_deref(),
                c.event_name.as_str()
            ),
            ("raw/c d", Some("e1"), "ObjectCreated:PutObject")
        );
    }

    #[test]
    fn a_location_reads_back_as_the_object_it_names() {
        let object = ObjectRef {
            bucket: "logs".into(),
            key: "curated/bucket=b/dt=2026-11-20/hour=14/a b.ndjson.gz".into(),
        };
        assert_eq!(ObjectRef::from_location(&object.to_string()), Some(object));
        assert_eq!(ObjectRef::from_location("/tmp/x.log"), None);
        assert_eq!(ObjectRef::from_location("s3://bucket-only"), None);
    }

    #[test]
    fn scheduled_events_from_a_rule_or_the_scheduler_compact_the_lake() {
        let rule = json!({"version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012", "time": "2026-11-20T15:00:00Z", "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/r"], "detail": {}});
        let scheduler =
            json!({"detail-type": "Scheduled Event", "source": "aws.scheduler", "detail": {}});
        for event in [rule, scheduler] {
            assert_eq!(parse_invocation(&event), Ok(Invocation::Compact), "{event}");
        }
        let other = json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {}});
        assert_ne!(parse_invocation(&other), Ok(Invocation::Compact));
    }

    #[test]
    fn eventbridge_deletion_is_ignored() {
        let event = json!({"detail-type": "Object Deleted", "source": "aws.s3", "detail": {}});
        let Invocation::Direct(notices) = parse_invocation(&event).unwrap() else {
            panic!()
        };
        assert!(matches!(notices[0], Notice::Ignored { .. }));
    }

    #[test]
    fn ceph_style_record_without_aws_only_fields_is_accepted() {
        let event = json!({"Records": [{"eventSource": "ceph:s3", "eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "logs"}, "object": {"key": "raw/x"}}}]});
        let Invocation::Direct(notices) = parse_invocation(&event).unwrap() else {
            panic!()
        };
        assert_eq!(created(&notices), vec![("logs".into(), "raw/x".into())]);
    }

    #[test]
    fn unknown_payload_is_an_error() {
        assert!(matches!(
            parse_invocation(&json!({"hello": "world"})),
            Err(EventError::Unrecognised(_))
        ));
        let missing_key = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}}]});
        assert!(matches!(
            parse_invocation(&missing_key),
            Err(EventError::Malformed { .. })
        ));
    }

    macro_rules! decodes {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(decode_event_key($input).as_deref(), $expected);
            }
        };
    }
    decodes!(plus_is_space, "noog+nork", Some("noog nork"));
    decodes!(encoded_plus_is_plus, "a%2Bb", Some("a+b"));
    decodes!(utf8_escapes, "caf%C3%A9", Some("café"));
    decodes!(equals_sign, "dt%3D2026-01-01", Some("dt=2026-01-01"));
    decodes!(lone_percent_kept, "100%", Some("100%"));
    decodes!(invalid_utf8_is_refused, "%FF", None);
}
