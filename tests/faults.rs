//! The pipeline when things go wrong on the wire, through the real SDK, with a
//! fault-injecting proxy (`support::fault_proxy`) between it and moto: a lost response to
//! the marker write, an invocation killed during its side effects, endpoints that never
//! answer or stall mid-body, a log object overwritten with new content, and an upload
//! completion that fails part-way.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_s3::config::{Credentials, Region};
use bucketlog::adapters::cloudwatch::CloudWatchMetrics;
use bucketlog::adapters::dynamodb_markers::DynamoMarkers;
use bucketlog::adapters::s3::S3Store;
use bucketlog::adapters::with_timeouts;
use bucketlog::config::Config;
use bucketlog::generate::{GenerateOptions, write_log};
use bucketlog::pipeline::{InvocationContext, Pipeline, system_now};
use bucketlog::ports::MarkerStore;
use serde_json::Value;
use support::fault_proxy::{Fault, FaultProxy, Rule};
use support::moto;
use support::pipeline::processed;
use support::s3::*;

const LOG_NAME: &str = "2026-11-20-14-05-12-5A1B2C3D4E5F6789";

/// How long any one pipeline run may take before the test calls it hung.
const HANG_GUARD: Duration = Duration::from_secs(90);

/// `n` generated lines over the last `span_seconds` before an hour ago, and one line that
/// is not a record. Recent, because CloudWatch takes no data older than two weeks, so
/// older records publish no metrics (and a test waiting for a metrics call waits forever).
fn sample_log(n: u64, seed: u64, span_seconds: u64) -> Vec<u8> {
    let mut log = Vec::new();
    write_log(
        &mut log,
        GenerateOptions {
            seed,
            span_seconds,
            start_unix_seconds: system_now() - 3600 - span_seconds as i64,
        },
        n,
    )
    .unwrap();
    log.extend_from_slice(b"not an access log line\n");
    log
}

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

/// The shared AWS configuration for `endpoint`, with the function's timeouts from
/// `config` applied as the Lambda function applies them.
async fn shared_config(endpoint: &str, config: &Config, attempts: u32) -> aws_config::SdkConfig {
    let plain = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
        .load()
        .await;
    with_timeouts(&plain, &config.sdk_timeouts)
}

async fn s3_store(shared: &aws_config::SdkConfig) -> S3Store {
    S3Store::new(aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(true)
            .build(),
    ))
}

/// A fresh bucket on the shared moto server, and a direct client to look into it.
async fn bucket(prefix: &str) -> (aws_sdk_s3::Client, String) {
    let server = moto::shared();
    let direct = client(&server.endpoint).await;
    let bucket = moto::unique_bucket(prefix);
    create_bucket(&direct, &bucket).await;
    (direct, bucket)
}

/// A pipeline whose S3 traffic goes through a proxy with `rules`.
async fn through_proxy(
    config: Config,
    rules: Vec<Rule>,
    attempts: u32,
) -> (Pipeline<S3Store>, FaultProxy) {
    let proxy = FaultProxy::start(&moto::shared().endpoint, rules).await;
    let shared = shared_config(&proxy.endpoint, &config, attempts).await;
    (Pipeline::new(s3_store(&shared).await, config), proxy)
}

async fn markers(c: &aws_sdk_s3::Client, bucket: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for (key, _) in list(c, bucket, "state/processed/").await {
        found.push(serde_json::from_slice(&get(c, bucket, &key).await).unwrap());
    }
    found
}

async fn curated(c: &aws_sdk_s3::Client, bucket: &str) -> Vec<Value> {
    let mut records = Vec::new();
    for (key, _) in list(c, bucket, "curated/").await {
        records.extend(ndjson(&get(c, bucket, &key).await));
    }
    records
}

fn lines_of(records: &[Value]) -> Vec<u64> {
    let mut lines: Vec<u64> = records
        .iter()
        .map(|r| r["source_line"].as_u64().unwrap())
        .collect();
    lines.sort();
    lines
}

async fn guarded<T>(run: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, run)
        .await
        .expect("the pipeline hung: no SDK timeout fired")
}

/// Defect 3: the marker PUT takes effect, its response is lost, the SDK retries and gets
/// 412. The attempt must see its own marker and run the side effects.
#[tokio::test]
async fn a_lost_marker_response_is_recognised_and_the_side_effects_run() {
    let (direct, bucket) = bucket("lost").await;
    let key = format!("raw/{LOG_NAME}");
    put(&direct, &bucket, &key, sample_log(50, 1, 600)).await;
    let rules = vec![Rule::once("PUT", "/state/processed/", Fault::DropResponse)];
    let (pipeline, proxy) = through_proxy(config(&[]), rules, 3).await;

    let response = guarded(pipeline.handle(&s3_event(&bucket, &key)))
        .await
        .unwrap();

    assert_eq!(proxy.faults(), 1, "the marker's response was dropped");
    let retried = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "PUT" && s.target.contains("/state/processed/"))
        .count();
    assert!(retried >= 2, "the SDK retried the marker write");
    assert_eq!(processed(&response).len(), 1, "{response}");
    let markers = markers(&direct, &bucket).await;
    assert_eq!(markers.len(), 1);
    assert_eq!(
        markers[0]["pending"],
        serde_json::json!([]),
        "{}",
        markers[0]
    );
    assert_eq!(markers[0]["lease_until"], 0);
    assert!(
        !list(&direct, &bucket, "state/baseline/").await.is_empty(),
        "the baseline step ran"
    );
}

/// Defect 3 with the markers in the detection table (`MARKERS`): the claim's PutItem
/// takes effect, its response is lost, the SDK retries and meets
/// ConditionalCheckFailed. The attempt must read its own marker back and run the side
/// effects, as with S3's 412.
#[tokio::test]
async fn a_lost_marker_item_response_is_recognised_and_the_side_effects_run() {
    let (direct, bucket) = bucket("lostitem").await;
    let key = format!("raw/{LOG_NAME}");
    put(&direct, &bucket, &key, sample_log(50, 1, 600)).await;
    let server = moto::shared();
    let table = format!("{bucket}-state");
    let plain = shared_config(&server.endpoint, &config(&[]), 1).await;
    support::dynamodb::create_table(&aws_sdk_dynamodb::Client::new(&plain), &table).await;
    let put_item = "#DynamoDB_20120810.PutItem";
    let rules = vec![Rule::once("POST", put_item, Fault::DropResponse)];
    let proxy = FaultProxy::start(&server.endpoint, rules).await;
    let shared = shared_config(&proxy.endpoint, &config(&[]), 3).await;
    let markers = DynamoMarkers::new(aws_sdk_dynamodb::Client::new(&shared), &table);
    let pipeline = Pipeline::new(s3_store(&shared).await, config(&[]))
        .with_marker_store(Box::new(markers.clone()));

    let response = guarded(pipeline.handle(&s3_event(&bucket, &key)))
        .await
        .unwrap();

    assert_eq!(proxy.faults(), 1, "the claim's response was dropped");
    let puts = proxy
        .seen()
        .iter()
        .filter(|s| s.target.ends_with(put_item))
        .count();
    assert!(
        puts >= 3,
        "the claim, the SDK's retry of it, the rewrite: {puts}"
    );
    assert_eq!(processed(&response).len(), 1, "{response}");
    let location = processed(&response)[0]["marker"].as_str().unwrap();
    let marker_key = location
        .strip_prefix(&format!("dynamodb://{table}/{bucket}/"))
        .unwrap_or_else(|| panic!("{location}"));
    let marker = bucketlog::event::ObjectRef {
        bucket: bucket.clone(),
        key: marker_key.to_string(),
    };
    let (body, _) = markers
        .get_marker(&marker)
        .await
        .unwrap()
        .expect("the marker");
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["pending"], serde_json::json!([]), "{status}");
    assert_eq!(status["lease_until"], 0);
    assert!(list(&direct, &bucket, "state/processed/").await.is_empty());
    assert!(
        !list(&direct, &bucket, "state/baseline/").await.is_empty(),
        "the baseline step ran"
    );
}

fn an_hour_later() -> i64 {
    system_now() + 3600
}

/// Defect 4: an invocation killed during its side effects leaves them pending under its
/// lease. A retry within the lease must fail (naming the object and the lease), in SQS
/// mode by reporting the message as failed; a retry after the lease takes over.
#[tokio::test]
async fn steps_pending_under_a_live_lease_fail_the_retry_until_the_lease_ends() {
    let (direct, bucket) = bucket("killed").await;
    let key = format!("raw/{LOG_NAME}");
    put(&direct, &bucket, &key, sample_log(50, 2, 600)).await;
    let event = s3_event(&bucket, &key);
    let server = moto::shared();

    // The first invocation's metrics call never returns; it is killed once its marker exists.
    let proxy = FaultProxy::start(
        &server.endpoint,
        vec![Rule::always("POST", "PutMetricData", Fault::Hang)],
    )
    .await;
    let cw_shared = shared_config(&proxy.endpoint, &Config::default(), 1).await;
    let first = Arc::new(
        Pipeline::new(S3Store::new(direct.clone()), Config::default()).with_metrics(Box::new(
            CloudWatchMetrics::from_shared(&cw_shared, "Test/Killed".into()),
        )),
    );
    let deadline_ms = (system_now() as u64 + 300) * 1000;
    let running = {
        let (first, event) = (Arc::clone(&first), event.clone());
        tokio::spawn(async move {
            let context = InvocationContext {
                request_id: Some("first".into()),
                deadline_ms: Some(deadline_ms),
                ..Default::default()
            };
            first.handle_in(&event, &context).await
        })
    };
    let mut waited = 0;
    while proxy.faults() == 0 {
        assert!(
            waited < 600,
            "the first invocation never reached its metrics"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());
    let left = markers(&direct, &bucket).await;
    assert_eq!(left.len(), 1);
    assert!(
        left[0]["pending"].as_array().unwrap().len() >= 2,
        "{}",
        left[0]
    );
    assert_eq!(left[0]["lease_until"], (deadline_ms / 1000) as i64 + 30);

    let retry = Pipeline::new(S3Store::new(direct.clone()), Config::default());
    let err = retry.handle(&event).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("s3://{bucket}/{key}")) && err.contains("lease"),
        "{err}"
    );
    let batch = sqs_event(&[("m1", event.to_string())]);
    let response = retry.handle(&batch).await.unwrap();
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([{"itemIdentifier": "m1"}])
    );

    let after_lease =
        Pipeline::new(S3Store::new(direct.clone()), Config::default()).with_clock(an_hour_later);
    let response = after_lease.handle(&event).await.unwrap();
    assert_eq!(processed(&response).len(), 1, "{response}");
    assert_eq!(
        markers(&direct, &bucket).await[0]["pending"],
        serde_json::json!([])
    );
    let again = retry.handle(&event).await.unwrap();
    assert_eq!(again["objects"][0]["outcome"], "duplicate", "{again}");
}

/// Short timeouts, so a silent endpoint fails fast.
fn impatient() -> Config {
    config(&[
        ("SDK_CONNECT_TIMEOUT_SECONDS", "1"),
        ("SDK_READ_TIMEOUT_SECONDS", "1"),
        ("SDK_ATTEMPT_TIMEOUT_SECONDS", "1"),
        ("SDK_OPERATION_TIMEOUT_SECONDS", "2"),
    ])
}

/// Runs a log object through a proxy where `rule` never answers, with short timeouts,
/// and returns the error (which must come well before the hang guard), the key, the
/// bucket and the number of curated objects, after checking that the proxy stalled a
/// call and that no marker claims the object was processed.
async fn silent_endpoint_error(prefix: &str, rule: Rule) -> (String, String, String, usize) {
    let (direct, bucket) = bucket(prefix).await;
    let key = format!("raw/{LOG_NAME}");
    put(&direct, &bucket, &key, sample_log(20, 3, 600)).await;
    let (pipeline, proxy) = through_proxy(impatient(), vec![rule], 3).await;
    let err = guarded(pipeline.handle(&s3_event(&bucket, &key)))
        .await
        .unwrap_err()
        .to_string();
    assert!(proxy.faults() >= 1);
    assert!(markers(&direct, &bucket).await.is_empty());
    let curated = list(&direct, &bucket, "curated/").await.len();
    (err, key, bucket, curated)
}

/// Defect 5: GetObject never answered.
#[tokio::test]
async fn a_silent_get_object_fails_naming_the_object() {
    let rule = Rule::always("GET", "/raw/", Fault::Hang);
    let (err, key, bucket, curated) = silent_endpoint_error("silent", rule).await;
    assert!(
        err.contains("GetObject") && err.contains(&format!("s3://{bucket}/{key}")),
        "{err}"
    );
    assert_eq!(curated, 0, "nothing was read, so nothing was written");
}

/// Defect 5: the marker PUT never answered.
#[tokio::test]
async fn a_silent_marker_write_fails_naming_the_object() {
    let rule = Rule::always("PUT", "/state/processed/", Fault::Hang);
    let (err, key, _, _) = silent_endpoint_error("silent-marker", rule).await;
    assert!(err.contains("PutObject") && err.contains(&key), "{err}");
}

/// Defect 5: the operation timeout is for small calls; a body that pauses for longer
/// than it (but less than the read timeout) still streams whole.
#[tokio::test]
async fn a_body_pausing_past_the_operation_timeout_still_streams_whole() {
    let (direct, bucket) = bucket("slow-body").await;
    let key = format!("raw/{LOG_NAME}");
    put(&direct, &bucket, &key, sample_log(300, 5, 600)).await;
    let settings = config(&[
        ("SDK_READ_TIMEOUT_SECONDS", "8"),
        ("SDK_ATTEMPT_TIMEOUT_SECONDS", "1"),
        ("SDK_OPERATION_TIMEOUT_SECONDS", "1"),
    ]);
    let pause = Fault::StallBody {
        after: 4096,
        pause: Duration::from_secs(3),
    };
    let (pipeline, proxy) =
        through_proxy(settings, vec![Rule::once("GET", "/raw/", pause)], 3).await;

    let response = guarded(pipeline.handle(&s3_event(&bucket, &key)))
        .await
        .unwrap();
    assert_eq!(proxy.faults(), 1);
    assert_eq!(processed(&response)[0]["records"], 300, "{response}");
    assert_eq!(lines_of(&curated(&direct, &bucket).await).len(), 300);
}

/// Defect 5: a body that stops for longer than the read timeout fails naming the object.
#[tokio::test]
async fn a_body_stalled_past_the_read_timeout_fails_naming_the_object() {
    let (direct, bucket) = bucket("stalled-body").await;
    let key = format!("raw/{LOG_NAME}");
    put(&direct, &bucket, &key, sample_log(300, 6, 600)).await;
    let stall = Fault::StallBody {
        after: 4096,
        pause: Duration::from_secs(30),
    };
    let (pipeline, proxy) =
        through_proxy(impatient(), vec![Rule::always("GET", "/raw/", stall)], 3).await;

    let err = guarded(pipeline.handle(&s3_event(&bucket, &key)))
        .await
        .unwrap_err()
        .to_string();
    assert!(proxy.faults() >= 1);
    assert!(err.contains(&format!("s3://{bucket}/{key}")), "{err}");
    assert!(markers(&direct, &bucket).await.is_empty());
}

/// Defect 6: a log object overwritten with new content is processed again, and the
/// partitions only the old version used lose its records.
#[tokio::test]
async fn an_overwritten_log_object_leaves_only_the_new_records() {
    let (direct, bucket) = bucket("overwrite").await;
    let key = format!("raw/{LOG_NAME}");
    let pipeline = Pipeline::new(S3Store::new(direct.clone()), Config::default());

    put(&direct, &bucket, &key, sample_log(400, 7, 5 * 3600)).await;
    pipeline.handle(&s3_event(&bucket, &key)).await.unwrap();
    let old_outputs = list(&direct, &bucket, "curated/").await.len();

    put(&direct, &bucket, &key, sample_log(60, 8, 600)).await;
    let response = pipeline.handle(&s3_event(&bucket, &key)).await.unwrap();
    let report = processed(&response);
    assert_eq!(report.len(), 1, "{response}");
    let new_outputs = report[0]["outputs"].as_array().unwrap().len();
    assert!(
        new_outputs < old_outputs,
        "the old version must have used partitions the new one does not ({old_outputs} vs {new_outputs})"
    );

    let records = curated(&direct, &bucket).await;
    assert_eq!(lines_of(&records), (1..=60).collect::<Vec<_>>());
    let markers = markers(&direct, &bucket).await;
    assert_eq!(markers.len(), 1, "the old version's marker is gone");
    assert_eq!(markers[0]["etag"], report[0]["etag"]);
    assert_eq!(list(&direct, &bucket, "rejected/").await.len(), 1);
}

/// Defect 6: when the second of several output writes fails (here a small output's PUT;
/// a large one's CompleteMultipartUpload behaves the same), the output written before it
/// stays visible with no marker; the retry overwrites the same keys and ends exact.
#[tokio::test]
async fn a_failed_output_write_leaves_no_marker_and_the_retry_converges() {
    let (direct, bucket) = bucket("partial").await;
    let key = format!("raw/{LOG_NAME}");
    put(&direct, &bucket, &key, sample_log(300, 9, 3 * 3600)).await;
    let rule = Rule {
        skip: 1,
        ..Rule::once("PUT", "/curated/", Fault::Status(503))
    };
    let (pipeline, proxy) = through_proxy(Config::default(), vec![rule], 1).await;

    let err = pipeline
        .handle(&s3_event(&bucket, &key))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(proxy.faults(), 1);
    assert!(err.contains(&format!("s3://{bucket}/")), "{err}");
    assert!(markers(&direct, &bucket).await.is_empty());
    let visible = curated(&direct, &bucket).await;
    assert!(
        !visible.is_empty() && visible.len() < 300,
        "{} {err} {:?}",
        visible.len(),
        proxy.seen()
    );

    let response = pipeline.handle(&s3_event(&bucket, &key)).await.unwrap();
    assert_eq!(processed(&response).len(), 1, "{response}");
    assert_eq!(
        lines_of(&curated(&direct, &bucket).await),
        (1..=300).collect::<Vec<_>>()
    );
    assert_eq!(markers(&direct, &bucket).await.len(), 1);
}
