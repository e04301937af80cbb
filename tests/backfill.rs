//! Backfills against moto's S3 and SNS through the real SDKs: S3 Batch Operations jobs of
//! both schemas answered task by task, backfill mode keeping old alerts off the topic,
//! and `bucketlog backfill` stopped halfway and run again, locally and over S3.

mod support;

use std::path::PathBuf;
use std::process::Command;

use bucketlog::access_log::LogTime;
use bucketlog::adapters::s3::S3Store;
use bucketlog::config::Config;
use bucketlog::pipeline::{Pipeline, system_now};
use serde_json::json;
use support::inbox::{self, AlertInbox};
use support::{moto, s3};

const OWNER: &str = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be";

/// `n` access log lines at `t`: 403s from one address when `denied`, 200s otherwise.
fn lines(bucket: &str, t: i64, n: usize, denied: bool) -> Vec<String> {
    let u = LogTime::from_unix_seconds(t).utc();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let when = format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        u.day,
        months[u.month as usize - 1],
        u.year,
        u.hour,
        u.minute,
        u.second
    );
    let (ip, status, error) = if denied {
        ("203.0.113.66", 403, "AccessDenied")
    } else {
        ("198.51.100.4", 200, "-")
    };
    (0..n)
        .map(|i| {
            format!(
                r#"{OWNER} {bucket} [{when}] {ip} - REQ{i:012} REST.GET.OBJECT secret/f{i}.txt "GET /{bucket}/secret/f{i}.txt HTTP/1.1" {status} {error} 243 - 5 - "-" "curl/8.5.0" -"#
            )
        })
        .collect()
}

/// A log object name S3 would write for time `t`.
fn log_name(t: i64, unique: &str) -> String {
    let u = LogTime::from_unix_seconds(t).utc();
    format!(
        "{:04}-{:02}-{:02}-{:02}-{:02}-{:02}-{unique}",
        u.year, u.month, u.day, u.hour, u.minute, u.second
    )
}

struct World {
    client: aws_sdk_s3::Client,
    bucket: String,
    inbox: AlertInbox,
}

impl World {
    async fn new(name: &str) -> World {
        let server = moto::shared();
        let client = s3::client(&server.endpoint).await;
        let bucket = moto::unique_bucket(name);
        s3::create_bucket(&client, &bucket).await;
        let sdk = inbox::sdk_config(&server.endpoint).await;
        let inbox = AlertInbox::create(&sdk, &bucket).await;
        World {
            client,
            bucket,
            inbox,
        }
    }

    fn pipeline(&self) -> Pipeline<S3Store> {
        let config = Config::from_lookup(|k| (k == "METRICS_MODE").then(|| "off".to_string()))
            .expect("config");
        Pipeline::new(S3Store::new(self.client.clone()), config)
            .with_notifier(self.inbox.notifier())
    }

    async fn put(&self, key: &str, lines: &[String]) {
        s3::put(
            &self.client,
            &self.bucket,
            key,
            (lines.join("\n") + "\n").into_bytes(),
        )
        .await;
    }
}

#[tokio::test]
async fn batch_operations_jobs_of_both_schemas_are_answered_task_by_task() {
    let w = World::new("batchops").await;
    let t = system_now() - 3600;
    let spaced = format!("raw/team logs/{}", log_name(t, "AAA"));
    let plain = format!("raw/{}", log_name(t, "BBB"));
    w.put(&spaced, &lines(&w.bucket, t, 30, false)).await;
    w.put(&plain, &lines(&w.bucket, t, 20, false)).await;
    let pipeline = w.pipeline();

    // Schema 1.0: the bucket by ARN; the key URL-encoded, a space as `+`.
    let v1 = json!({
        "invocationSchemaVersion": "1.0",
        "invocationId": "inv-1",
        "job": {"id": "job-1"},
        "tasks": [{
            "taskId": "t-1",
            "s3Key": spaced.replace(' ', "+"),
            "s3VersionId": null,
            "s3BucketArn": format!("arn:aws:s3:::{}", w.bucket)
        }]
    });
    let response = pipeline.handle(&v1).await.unwrap();
    assert_eq!(response["invocationSchemaVersion"], "1.0");
    assert_eq!(response["invocationId"], "inv-1");
    assert_eq!(response["treatMissingKeysAs"], "PermanentFailure");
    assert_eq!(response["results"][0]["taskId"], "t-1");
    assert_eq!(
        support::pipeline::task_results(&response),
        [(
            "Succeeded".to_string(),
            "processed: 30 records, 0 rejected, 0 alerts".to_string()
        )]
    );

    // Schema 2.0: the bucket by name, user arguments; a done object, a new one, a gone
    // one, one outside RAW_PREFIX and a task without a key.
    let v2 = json!({
        "invocationSchemaVersion": "2.0",
        "invocationId": "inv-2",
        "job": {"id": "job-2", "userArguments": {"note": "backfill"}},
        "tasks": [
            {"taskId": "a", "s3Bucket": w.bucket, "s3Key": spaced.replace(' ', "%20")},
            {"taskId": "b", "s3Bucket": w.bucket, "s3Key": plain},
            {"taskId": "c", "s3Bucket": w.bucket, "s3Key": "raw/2026-01-01-00-00-00-GONE"},
            {"taskId": "d", "s3Bucket": w.bucket, "s3Key": "elsewhere/x"},
            {"taskId": "e", "s3Bucket": w.bucket}
        ]
    });
    let response = pipeline.handle(&v2).await.unwrap();
    assert_eq!(response["invocationSchemaVersion"], "2.0");
    let codes = support::pipeline::task_results(&response);
    let ids: Vec<&str> = response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["taskId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    assert_eq!(codes[0].0, "Succeeded");
    assert!(codes[0].1.starts_with("already processed"), "{codes:?}");
    assert_eq!(
        codes[1],
        (
            "Succeeded".into(),
            "processed: 20 records, 0 rejected, 0 alerts".into()
        )
    );
    assert_eq!(
        codes[2],
        (
            "PermanentFailure".into(),
            "NoSuchKey: the object is gone".into()
        )
    );
    assert_eq!(codes[3].0, "Succeeded");
    assert!(codes[3].1.starts_with("skipped"), "{codes:?}");
    assert_eq!(codes[4], ("PermanentFailure".into(), "no s3Key".into()));

    // Nothing doubled: 50 curated records, one marker per processed object.
    let mut records = 0;
    for (key, _) in s3::list(&w.client, &w.bucket, "curated/").await {
        records += s3::ndjson(&s3::get(&w.client, &w.bucket, &key).await).len();
    }
    assert_eq!(records, 50);
    assert_eq!(
        s3::list(&w.client, &w.bucket, "state/processed/")
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn a_backfill_records_old_alerts_without_sending_them_and_sends_recent_ones() {
    let w = World::new("backfill-quiet").await;
    let old = system_now() - 3 * 86_400;
    let recent = system_now() - 1800;
    let old_key = format!("raw/{}", log_name(old, "OLD"));
    let recent_key = format!("raw/{}", log_name(recent, "NEW"));
    w.put(&old_key, &lines(&w.bucket, old, 60, true)).await;
    w.put(&recent_key, &lines(&w.bucket, recent, 60, true))
        .await;
    let pipeline = w.pipeline();
    let job = |key: &str, id: &str| {
        json!({
            "invocationSchemaVersion": "2.0",
            "invocationId": id,
            "job": {"id": "job"},
            "tasks": [{"taskId": id, "s3Bucket": w.bucket, "s3Key": key}]
        })
    };
    let response = pipeline.handle(&job(&old_key, "old")).await.unwrap();
    assert_eq!(
        response["results"][0]["resultCode"], "Succeeded",
        "{response}"
    );
    assert!(
        w.inbox.drain().await.is_empty(),
        "a 3-day-old attack pages no one"
    );
    let stored = s3::stored_alerts(&w.client, &w.bucket).await;
    assert!(!stored.is_empty(), "but it is recorded");
    assert!(
        stored
            .iter()
            .all(|a| a["source_object"].as_str().unwrap().contains("OLD"))
    );

    pipeline.handle(&job(&recent_key, "new")).await.unwrap();
    let sent = w.inbox.drain().await;
    assert!(
        !sent.is_empty(),
        "a recent attack in a backfill is still sent"
    );
    assert!(
        sent.iter()
            .all(|a| a["source_object"].as_str().unwrap().contains("NEW"))
    );

    // The same old object announced live (a late delivery) is not a backfill: it notifies.
    let live_key = format!("raw/{}", log_name(old, "LIVE"));
    w.put(&live_key, &lines(&w.bucket, old, 60, true)).await;
    pipeline
        .handle(&s3::s3_event(&w.bucket, &live_key))
        .await
        .unwrap();
    let live = w.inbox.drain().await;
    assert!(!live.is_empty(), "live events notify however late");
}

/// Runs `bucketlog backfill` with `args` and `envs`; returns (success, stdout + stderr).
fn backfill(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bucketlog"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("backfill")
        .args(args)
        .env_remove("OUTPUT_BUCKET")
        .env_remove("AWS_ENDPOINT_URL")
        .envs(envs.iter().copied())
        .env("METRICS_MODE", "off")
        .output()
        .expect("run bucketlog backfill");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn bucketlog_backfill_over_a_folder_stops_halfway_and_resumes_processing_each_object_once() {
    let root = support::scratch::Scratch::new("backfill");
    let (store, out) = (root.join("store"), root.join("out"));
    let raw = store.join("logs/raw");
    std::fs::create_dir_all(&raw).unwrap();
    let day = 1_794_787_200; // 2026-11-16T00:00:00Z
    for d in 0..3 {
        for h in 0..2 {
            let t = day + d * 86_400 + h * 3600;
            let body = lines("logs", t, 10, false).join("\n") + "\n";
            std::fs::write(raw.join(log_name(t, &format!("H{h}"))), body).unwrap();
        }
    }
    std::fs::write(raw.join("notes.txt"), "not a log\n").unwrap();
    let paths = |p: &PathBuf| p.to_string_lossy().to_string();
    let (store_arg, out_arg, metrics) = (paths(&store), paths(&out), paths(&root.join("m.ndjson")));
    let common = [
        "--bucket",
        "logs",
        "--since",
        "2026-11-17",
        "--until",
        "2026-11-18",
        "--store",
        &store_arg,
        "--out",
        &out_arg,
        "--metrics",
        &metrics,
    ];

    let manifest = paths(&root.join("manifest.csv"));
    let (ok, text) = backfill(&[&common[..], &["--manifest", &manifest]].concat(), &[]);
    assert!(ok, "{text}");
    let csv = std::fs::read_to_string(&manifest).unwrap();
    assert_eq!(csv.lines().count(), 4, "two days of two objects: {csv}");
    assert!(
        csv.lines().all(|l| l.starts_with("logs,raw/2026-11-1")),
        "{csv}"
    );
    assert!(!out.exists(), "a manifest processes nothing");

    let (ok, text) = backfill(&[&common[..], &["--limit", "1"]].concat(), &[]);
    assert!(ok, "{text}");
    assert!(text.contains("1/1 objects: 1 processed"), "{text}");
    assert_eq!(s3::ndjson_under(&out.join("logs/curated")).len(), 10);

    let (ok, text) = backfill(&[&common[..], &["--concurrency", "3"]].concat(), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("4/4 objects: 3 processed, 1 already done"),
        "{text}"
    );
    assert_eq!(
        s3::ndjson_under(&out.join("logs/curated")).len(),
        40,
        "each object once"
    );
}

#[tokio::test]
async fn bucketlog_backfill_over_s3_resumes_and_answers_for_every_object() {
    let w = World::new("backfill-cli").await;
    let day = 1_794_787_200;
    for d in 0..2 {
        let t = day + d * 86_400 + 60;
        w.put(
            &format!("raw/{}", log_name(t, "X")),
            &lines(&w.bucket, t, 7, false),
        )
        .await;
    }
    let endpoint = moto::shared().endpoint.clone();
    let envs = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let args = [
        "--s3",
        "--bucket",
        &w.bucket,
        "--since",
        "2026-11-16",
        "--until",
        "2026-11-17",
    ];
    let (ok, text) = backfill(&[&args[..], &["--limit", "1"]].concat(), &envs);
    assert!(ok, "{text}");
    assert!(text.contains("1 processed"), "{text}");
    let (ok, text) = backfill(&args, &envs);
    assert!(ok, "{text}");
    assert!(
        text.contains("2/2 objects: 1 processed, 1 already done"),
        "{text}"
    );
    let mut records = 0;
    for (key, _) in s3::list(&w.client, &w.bucket, "curated/").await {
        records += s3::ndjson(&s3::get(&w.client, &w.bucket, &key).await).len();
    }
    assert_eq!(records, 14);
}
