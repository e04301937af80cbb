//! The pipeline against a real S3-compatible server (moto on 127.0.0.1) through the real
//! `aws-sdk-s3` client: every envelope, encoded keys, gzip, rejects, the recursion guard,
//! duplicates, a missing object, and failures that must leave nothing claiming success.
//! The large-object test has its own file, so its memory reading is not disturbed.

mod support;

use std::io::Write;

use bucketlog::adapters::s3::S3Store;
use bucketlog::config::Config;
use bucketlog::pipeline::Pipeline;
use serde_json::{Value, json};
use support::moto;
use support::pipeline::{Fixture, fixture, outputs, processed, sample_log};
use support::s3::*;

const LOG_NAME: &str = "2026-11-20-14-05-12-5A1B2C3D4E5F6789";

fn gzip(data: &[u8], members: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let step = data.len().div_ceil(members.max(1));
    for piece in data.chunks(step.max(1)) {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(piece).unwrap();
        out.extend(enc.finish().unwrap());
    }
    out
}

/// Reads every curated record and every rejected line back from the bucket.
async fn read_outputs(f: &Fixture) -> (Vec<Value>, Vec<Value>) {
    let records = |all: Vec<(String, Value)>| all.into_iter().map(|(_, r)| r).collect();
    (
        records(outputs(f, "curated/").await),
        records(outputs(f, "rejected/").await),
    )
}

#[tokio::test]
async fn direct_event_writes_partitioned_records_rejects_and_a_marker() {
    let f = fixture("logs", Config::default()).await;
    let key = format!("raw/{LOG_NAME}");
    put(&f.client, &f.bucket, &key, sample_log(200, 1)).await;

    let response = f.pipeline.handle(&s3_event(&f.bucket, &key)).await.unwrap();
    let report = processed(&response);
    assert_eq!(report.len(), 1, "{response}");
    assert_eq!(
        (
            report[0]["records"].as_u64(),
            report[0]["rejected"].as_u64(),
            report[0]["blank"].as_u64()
        ),
        (Some(200), Some(1), Some(1))
    );

    let (curated, rejected) = read_outputs(&f).await;
    assert_eq!(curated.len(), 200);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["source_line"], 202);
    assert_eq!(rejected[0]["raw"], "not an access log line");
    assert_eq!(
        rejected[0]["source_object"],
        format!("s3://{}/{key}", f.bucket)
    );
    // Every line number 1..=200 appears exactly once among the curated records.
    let mut lines: Vec<u64> = curated
        .iter()
        .map(|r| r["source_line"].as_u64().unwrap())
        .collect();
    lines.sort();
    assert_eq!(lines, (1..=200).collect::<Vec<_>>());
    // Each record sits in the partition of its own event time and bucket.
    for (key, _) in list(&f.client, &f.bucket, "curated/").await {
        // `{log name}.{12 hex digits of the raw key's hash}.ndjson.zst` (the default).
        let name = key.rsplit('/').next().unwrap();
        let hash = name
            .strip_prefix(&format!("{LOG_NAME}."))
            .and_then(|rest| rest.strip_suffix(".ndjson.zst"))
            .unwrap_or_default();
        assert!(
            hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
        for record in ndjson(&get(&f.client, &f.bucket, &key).await) {
            let time = record["time"].as_str().unwrap();
            let expected = format!(
                "curated/bucket={}/dt={}/hour={}/",
                record["bucket"].as_str().unwrap(),
                &time[..10],
                &time[11..13]
            );
            assert!(key.starts_with(&expected), "{key} holds a record at {time}");
        }
    }
    let markers = list(&f.client, &f.bucket, "state/processed/").await;
    assert_eq!(markers.len(), 1);
    assert!(markers[0].0.contains(&key), "{markers:?}");
}

#[tokio::test]
async fn gzip_with_two_members_gives_the_same_records_as_plain() {
    let f = fixture("logs", Config::default()).await;
    let log = sample_log(300, 2);
    put(
        &f.client,
        &f.bucket,
        "raw/plain/2026-11-20-14-00-00-AAAA",
        log.clone(),
    )
    .await;
    put(
        &f.client,
        &f.bucket,
        "raw/gz/2026-11-20-14-00-00-AAAA",
        gzip(&log, 2),
    )
    .await;
    f.pipeline
        .handle(&s3_event(&f.bucket, "raw/plain/2026-11-20-14-00-00-AAAA"))
        .await
        .unwrap();
    let (plain, _) = read_outputs(&f).await;
    // Same file name, but output names carry a hash of the whole key (issue 14), so the
    // gzip object's outputs sit next to the plain one's: compare its own records.
    f.pipeline
        .handle(&s3_event(&f.bucket, "raw/gz/2026-11-20-14-00-00-AAAA"))
        .await
        .unwrap();
    let (all, all_rejected) = read_outputs(&f).await;
    let gz_source = format!("s3://{}/raw/gz/2026-11-20-14-00-00-AAAA", f.bucket);
    let from_gz = |records: Vec<Value>| -> Vec<Value> {
        records
            .into_iter()
            .filter(|r| r["source_object"] == gz_source.as_str())
            .collect()
    };
    assert_eq!(all.len(), 2 * plain.len(), "both objects' records are kept");
    assert_eq!(all_rejected.len(), 2);
    let (gz, rejected) = (from_gz(all), from_gz(all_rejected));
    let strip = |records: Vec<Value>| -> Vec<Value> {
        let mut records: Vec<Value> = records
            .into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("source_object");
                r
            })
            .collect();
        records.sort_by_key(|r| r["source_line"].as_u64());
        records
    };
    assert_eq!(strip(plain), strip(gz));
    assert_eq!(rejected.len(), 1);
}

#[tokio::test]
async fn key_with_space_and_plus_is_decoded_before_reading() {
    let f = fixture("logs", Config::default()).await;
    let key = format!("raw/team logs+more/{LOG_NAME}");
    put(&f.client, &f.bucket, &key, sample_log(10, 3)).await;
    let event = s3_event(&f.bucket, &key);
    assert!(
        event.to_string().contains("team+logs%2Bmore"),
        "the event carries the encoded key"
    );
    let response = f.pipeline.handle(&event).await.unwrap();
    assert_eq!(processed(&response)[0]["records"], 10, "{response}");
}

#[tokio::test]
async fn every_envelope_reaches_the_same_processing() {
    let f = fixture("logs", Config::default()).await;
    let keys: Vec<String> = (0..4)
        .map(|i| format!("raw/env{i}/2026-11-20-14-00-0{i}-ENV"))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        put(&f.client, &f.bucket, key, sample_log(5, 10 + i as u64)).await;
    }
    let s3_body = |key: &str| s3_event(&f.bucket, key).to_string();
    let events = [
        sqs_event(&[("m1", s3_body(&keys[0]))]),
        sns_event(s3_body(&keys[1])),
        sqs_event(&[("m2", sns_notification(s3_body(&keys[2])).to_string())]),
        eventbridge_event(&f.bucket, &keys[3]),
    ];
    for (event, key) in events.iter().zip(&keys) {
        let response = f.pipeline.handle(event).await.unwrap();
        let done = processed(&response);
        assert_eq!(done.len(), 1, "{response}");
        assert_eq!(done[0]["object"], format!("s3://{}/{key}", f.bucket));
        assert_eq!(done[0]["records"], 5);
        if event["Records"][0]["eventSource"] == "aws:sqs" {
            assert_eq!(response["batchItemFailures"], json!([]));
        }
    }
}

#[tokio::test]
async fn sqs_batch_reports_only_the_failed_message() {
    let f = fixture("logs", Config::default()).await;
    let good = format!("raw/{LOG_NAME}");
    put(&f.client, &f.bucket, &good, sample_log(5, 4)).await;
    // A corrupt gzip object fails; its message alone must be retried.
    let mut corrupt = gzip(&sample_log(50, 5), 1);
    let mid = corrupt.len() / 2;
    corrupt.truncate(mid);
    put(
        &f.client,
        &f.bucket,
        "raw/2026-11-20-14-00-00-BROKEN",
        corrupt,
    )
    .await;
    let event = sqs_event(&[
        ("ok", s3_event(&f.bucket, &good).to_string()),
        (
            "bad",
            s3_event(&f.bucket, "raw/2026-11-20-14-00-00-BROKEN").to_string(),
        ),
        ("junk", "this is not json".to_string()),
    ]);
    let response = f.pipeline.handle(&event).await.unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "bad"}, {"itemIdentifier": "junk"}])
    );
    assert_eq!(processed(&response).len(), 1);
}

#[tokio::test]
async fn duplicate_event_changes_nothing_and_the_marker_stays() {
    let f = fixture("logs", Config::default()).await;
    let key = format!("raw/{LOG_NAME}");
    put(&f.client, &f.bucket, &key, sample_log(50, 6)).await;
    let event = s3_event(&f.bucket, &key);
    f.pipeline.handle(&event).await.unwrap();
    let before = list(&f.client, &f.bucket, "").await;

    let again = f.pipeline.handle(&event).await.unwrap();
    assert_eq!(again["objects"][0]["outcome"], "duplicate", "{again}");
    assert_eq!(
        list(&f.client, &f.bucket, "").await,
        before,
        "no object was written or rewritten"
    );
}

#[tokio::test]
async fn concurrent_duplicates_process_once() {
    let f = fixture("logs", Config::default()).await;
    let key = format!("raw/{LOG_NAME}");
    put(&f.client, &f.bucket, &key, sample_log(100, 7)).await;
    let event = s3_event(&f.bucket, &key);
    let (a, b) = tokio::join!(f.pipeline.handle(&event), f.pipeline.handle(&event));
    // The loser either finds the winner done (`duplicate`) or finds its side effects still
    // pending under the winner's lease, and then fails so that it is retried: it must not
    // report success for steps it has not seen done.
    let mut processed_count = 0;
    for outcome in [a, b] {
        match outcome {
            Ok(r) if r["objects"][0]["outcome"] == "processed" => processed_count += 1,
            Ok(r) => assert_eq!(r["objects"][0]["outcome"], "duplicate", "{r}"),
            Err(e) => assert!(e.to_string().contains("lease"), "{e}"),
        }
    }
    assert_eq!(processed_count, 1);
    let (curated, _) = read_outputs(&f).await;
    assert_eq!(curated.len(), 100);
    let retried = f.pipeline.handle(&event).await.unwrap();
    assert_eq!(retried["objects"][0]["outcome"], "duplicate", "{retried}");
}

#[tokio::test]
async fn missing_object_is_skipped_without_error() {
    let f = fixture("logs", Config::default()).await;
    let response = f
        .pipeline
        .handle(&s3_event(&f.bucket, "raw/2026-11-20-14-00-00-GONE"))
        .await
        .unwrap();
    assert_eq!(response["objects"][0]["outcome"], "missing");
    assert!(list(&f.client, &f.bucket, "").await.is_empty());
}

#[tokio::test]
async fn own_outputs_and_keys_outside_the_raw_prefix_never_trigger_processing() {
    let f = fixture("logs", Config::default()).await;
    let own = format!("curated/bucket=b/dt=2026-11-20/hour=14/{LOG_NAME}.ndjson.gz");
    put(&f.client, &f.bucket, &own, sample_log(5, 8)).await;
    put(&f.client, &f.bucket, "elsewhere/x", sample_log(5, 8)).await;
    for key in [own.as_str(), "elsewhere/x", "state/processed/x"] {
        let response = f.pipeline.handle(&s3_event(&f.bucket, key)).await.unwrap();
        assert_eq!(
            response["objects"][0]["outcome"], "skipped",
            "{key}: {response}"
        );
    }
    assert_eq!(
        list(&f.client, &f.bucket, "").await.len(),
        2,
        "nothing new was written"
    );
}

#[tokio::test]
async fn corrupt_object_fails_naming_it_and_leaves_no_output_or_marker() {
    let f = fixture("logs", Config::default()).await;
    // Big enough that multipart uploads are under way when the corruption is reached.
    let log = sample_log(60_000, 9);
    let mut data = gzip(&log, 1);
    let cut = data.len() * 9 / 10;
    data.truncate(cut);
    let key = "raw/2026-11-20-14-00-00-TRUNCATED";
    put(&f.client, &f.bucket, key, data).await;
    let err = f
        .pipeline
        .handle(&s3_event(&f.bucket, key))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("s3://{}/{key}", f.bucket)), "{err}");
    assert_eq!(
        list(&f.client, &f.bucket, "").await.len(),
        1,
        "only the log object itself"
    );
    assert_eq!(
        open_uploads(&f.client, &f.bucket).await,
        0,
        "uploads were aborted"
    );
}

#[tokio::test]
async fn endpoint_down_is_a_clear_error_naming_bucket_and_key() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = client(&format!("http://127.0.0.1:{port}")).await;
    let pipeline = Pipeline::new(S3Store::new(dead), Config::default());
    let err = pipeline
        .handle(&s3_event("some-logs", "raw/x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3://some-logs/raw/x"), "{err}");
    assert!(
        err.contains("unavailable") || err.contains("dispatch"),
        "{err}"
    );
}

#[tokio::test]
async fn output_bucket_and_plain_output_are_honoured() {
    output_bucket_and_compression_are_honoured("none", ".ndjson").await;
}

#[tokio::test]
async fn output_bucket_and_zstd_output_are_honoured() {
    output_bucket_and_compression_are_honoured("zstd", ".ndjson.zst").await;
}

/// With `OUTPUT_BUCKET` and `OUTPUT_COMPRESSION` set, every curated record lands in the
/// output bucket, in objects with `suffix`, and nothing in the log bucket.
async fn output_bucket_and_compression_are_honoured(compression: &str, suffix: &str) {
    let server = moto::shared();
    let c = client(&server.endpoint).await;
    let out = moto::unique_bucket("curated");
    create_bucket(&c, &out).await;
    let config = Config::from_lookup(|name| match name {
        "OUTPUT_BUCKET" => Some(out.clone()),
        "OUTPUT_COMPRESSION" => Some(compression.into()),
        _ => None,
    })
    .unwrap();
    let f = fixture("logs", config).await;
    let key = format!("raw/{LOG_NAME}");
    put(&f.client, &f.bucket, &key, sample_log(20, 12)).await;
    f.pipeline.handle(&s3_event(&f.bucket, &key)).await.unwrap();
    let written = list(&c, &out, "curated/").await;
    assert!(
        !written.is_empty() && written.iter().all(|(k, _)| k.ends_with(suffix)),
        "{written:?}"
    );
    let records: usize = {
        let mut n = 0;
        for (k, _) in &written {
            n += ndjson(&get(&c, &out, k).await).len();
        }
        n
    };
    assert_eq!(records, 20);
    assert_eq!(
        list(&f.client, &f.bucket, "curated/").await.len(),
        0,
        "nothing in the log bucket"
    );
}

/// A config with `OUTPUT_BUCKET` set, as the template sets it.
fn config_with_output(bucket: &str) -> Config {
    Config::from_lookup(|name| (name == "OUTPUT_BUCKET").then(|| bucket.to_string()))
        .expect("valid config")
}

#[tokio::test]
async fn cloudwatch_logs_batches_are_curated_once_and_control_messages_ignored() {
    let f = fixture("cwl", Config::default()).await;
    let pipeline = Pipeline::new(
        S3Store::new(f.client.clone()),
        config_with_output(&f.bucket),
    );
    let log = sample_log(40, 7);
    let lines: Vec<String> = String::from_utf8(log)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && *l != "not an access log line")
        .map(support::cwl::json_record)
        .chain(["{\"request_time\": 12}".to_string()])
        .collect();
    assert_eq!(lines.len(), 41);
    let batch = support::cwl::envelope(
        "/aws/s3/access-logs",
        "bucket-a",
        3800,
        1_795_190_000_000,
        &lines,
    );

    let first = pipeline.handle(&batch).await.unwrap();
    let report = processed(&first);
    assert_eq!(report.len(), 1, "{first}");
    assert_eq!(
        (
            report[0]["records"].as_u64(),
            report[0]["rejected"].as_u64()
        ),
        (Some(40), Some(1))
    );
    let name = "cloudwatch-logs/aws/s3/access-logs/bucket-a/2026-11-20-15-53-20-3800";
    assert_eq!(report[0]["object"], format!("s3://{}/{name}", f.bucket));
    let (curated, rejected) = read_outputs(&f).await;
    assert_eq!(curated.len(), 40);
    assert!(
        curated
            .iter()
            .all(|r| r["source_object"] == report[0]["object"])
    );
    assert!(
        curated
            .iter()
            .all(|r| r["extra_json_fields"]["schema_version_id"] == "V_1_0")
    );
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["error_kind"], "invalid_time");
    assert_eq!(rejected[0]["source_line"], 41);
    let stored = list(&f.client, &f.bucket, "").await;

    // CloudWatch Logs delivers at least once: the same batch again writes nothing new.
    let again = pipeline.handle(&batch).await.unwrap();
    assert_eq!(again["objects"][0]["outcome"], "duplicate", "{again}");
    assert_eq!(list(&f.client, &f.bucket, "").await, stored);

    let control = pipeline
        .handle(&support::cwl::control_envelope())
        .await
        .unwrap();
    assert_eq!(control["objects"], json!([]));
    assert_eq!(control["ignored"], "CONTROL_MESSAGE");
    assert_eq!(list(&f.client, &f.bucket, "").await, stored);
}

#[tokio::test]
async fn a_cloudwatch_logs_batch_without_output_bucket_is_a_clear_error() {
    let f = fixture("cwl-noout", Config::default()).await;
    let batch = support::cwl::envelope("/aws/s3/logs", "s", 1, 0, &["{}".to_string()]);
    let error = f.pipeline.handle(&batch).await.unwrap_err().to_string();
    assert!(error.contains("OUTPUT_BUCKET"), "{error}");
    assert!(error.contains("/aws/s3/logs"), "{error}");
    assert!(list(&f.client, &f.bucket, "").await.is_empty());
}

#[tokio::test]
async fn log_objects_of_json_records_plain_or_gzip_become_the_same_records() {
    let f = fixture("jsonobj", Config::default()).await;
    let lines: Vec<String> = String::from_utf8(sample_log(60, 3))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && *l != "not an access log line")
        .map(support::cwl::json_record)
        .collect();
    let body = (lines.join("\n") + "\n").into_bytes();
    let plain = "raw/2026-11-20-14-05-12-JSONPLAIN0000001";
    let zipped = "raw/2026-11-20-14-05-12-JSONGZIP00000001";
    put(&f.client, &f.bucket, plain, body.clone()).await;
    put(&f.client, &f.bucket, zipped, gzip(&body, 2)).await;
    for key in [plain, zipped] {
        let response = f.pipeline.handle(&s3_event(&f.bucket, key)).await.unwrap();
        let report = processed(&response);
        assert_eq!(report[0]["records"], 60, "{key}: {response}");
        assert_eq!(report[0]["rejected"], 0, "{key}");
    }
    let (curated, rejected) = read_outputs(&f).await;
    assert!(rejected.is_empty());
    let of = |key: &str| {
        let mut records: Vec<Value> = curated
            .iter()
            .filter(|r| r["source_object"] == format!("s3://{}/{key}", f.bucket))
            .cloned()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("source_object");
                r
            })
            .collect();
        records.sort_by_key(|r| r["source_line"].as_u64());
        records
    };
    assert_eq!(of(plain).len(), 60);
    assert_eq!(
        of(plain),
        of(zipped),
        "gzip is told from the content, not the name"
    );
}
