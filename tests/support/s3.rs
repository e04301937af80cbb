//! S3 helpers for integration tests: a real `aws-sdk-s3` client pointed at the emulator,
//! and builders for the events the function receives.
#![allow(dead_code)]

use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};

/// A path-style client for `endpoint` with dummy credentials.
pub async fn client(endpoint: &str) -> Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    )
}

/// Creates a bucket.
pub async fn create_bucket(client: &Client, bucket: &str) {
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
}

/// Writes an object.
pub async fn put(client: &Client, bucket: &str, key: &str, body: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("put object");
}

/// Uploads `lines` as the log object `raw/<name>` and returns the S3 event announcing it.
pub async fn put_log(client: &Client, bucket: &str, name: &str, lines: &[String]) -> Value {
    let key = format!("raw/{name}");
    let mut body = lines.join("\n");
    body.push('\n');
    put(client, bucket, &key, body.into_bytes()).await;
    s3_event(bucket, &key)
}

/// Every alert document line stored under `alerts/` in `bucket`.
pub async fn stored_alerts(client: &Client, bucket: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for (key, _) in list(client, bucket, "alerts/").await {
        all.extend(ndjson(&get(client, bucket, &key).await));
    }
    all
}

/// Reads an object whole.
pub async fn get(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get s3://{bucket}/{key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("read body")
        .into_bytes()
        .to_vec()
}

/// Every key under `prefix` with its ETag, sorted.
pub async fn list(client: &Client, bucket: &str, prefix: &str) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.expect("list").contents() {
            keys.push((
                object.key().unwrap_or_default().to_string(),
                object.e_tag().unwrap_or_default().to_string(),
            ));
        }
    }
    keys.sort();
    keys
}

/// Multipart uploads still in progress in `bucket`.
pub async fn open_uploads(client: &Client, bucket: &str) -> usize {
    client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list uploads")
        .uploads()
        .len()
}

/// Decompresses gzip or zstd (or returns plain bytes as they are) and splits into JSON
/// lines.
pub fn ndjson(bytes: &[u8]) -> Vec<Value> {
    use bucketlog::input::{Compression, detect_compression};
    use std::io::Read;
    let mut text = String::new();
    match detect_compression(bytes) {
        Some(Compression::Gzip) => {
            flate2::read::MultiGzDecoder::new(bytes)
                .read_to_string(&mut text)
                .expect("gunzip");
        }
        Some(Compression::Zstd) => {
            let plain = zstd::stream::decode_all(bytes).expect("zstd -d");
            text = String::from_utf8(plain).expect("utf-8");
        }
        _ => text = String::from_utf8(bytes.to_vec()).expect("utf-8"),
    }
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Form-URL-encodes a key the way S3 event notifications do (space → `+`).
pub fn encode_event_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One S3 notification record for a created object.
pub fn s3_record(bucket: &str, key: &str) -> Value {
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-20T14:05:13.045Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AROAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "10.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "raw",
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": encode_event_key(key), "size": 1, "eTag": "x", "sequencer": "1"}}
    })
}

/// A direct S3 notification event.
pub fn s3_event(bucket: &str, key: &str) -> Value {
    json!({ "Records": [s3_record(bucket, key)] })
}

/// An SQS batch whose messages carry the given bodies.
pub fn sqs_event(bodies: &[(&str, String)]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": "r", "body": body, "attributes": {},
                   "messageAttributes": {}, "eventSource": "aws:sqs",
                   "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"})
        })
        .collect();
    json!({ "Records": records })
}

/// An SNS notification body (as SNS delivers it to SQS) carrying `message`.
pub fn sns_notification(message: String) -> Value {
    json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
           "Message": message, "Timestamp": "2026-11-20T14:05:13.100Z", "SignatureVersion": "1",
           "Signature": "s", "SigningCertUrl": "u", "UnsubscribeUrl": "u"})
}

/// An SNS event invoking the function directly.
pub fn sns_event(message: String) -> Value {
    json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                        "EventSubscriptionArn": "arn", "Sns": sns_notification(message)}]})
}

/// An EventBridge "Object Created" event.
pub fn eventbridge_event(bucket: &str, key: &str) -> Value {
    json!({"version": "0", "id": "e", "detail-type": "Object Created", "source": "aws.s3",
           "account": "123456789012", "time": "2026-11-20T18:00:01Z", "region": "us-east-1",
           "resources": [format!("arn:aws:s3:::{bucket}")],
           "detail": {"version": "0", "bucket": {"name": bucket},
                      "object": {"key": key, "size": 1, "etag": "x"}, "reason": "PutObject"}})
}

/// Every NDJSON line of every file under a local folder (outputs of a local run).
pub fn ndjson_under(dir: &std::path::Path) -> Vec<Value> {
    let mut records = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                records.extend(ndjson(&std::fs::read(&path).expect("read output")));
            }
        }
    }
    records
}
