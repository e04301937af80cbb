//! `bucketlog replay` on the sample events of AWS's structured delivery, as a user runs it:
//! locally on the shipped folders, and through the real SDK against moto's S3. Each run
//! prints every response; a second run finds every unit of work already done.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::{moto, s3};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

const EVENTS: [&str; 3] = [
    "events/cloudwatch-logs-subscription.json",
    "events/cloudwatch-logs-control.json",
    "events/s3-put-json-records.json",
];

/// Runs `bucketlog replay` on [`EVENTS`] with `args` and `envs`; returns its stdout.
fn replay(args: &[&str], envs: &[(&str, &str)]) -> String {
    replay_files(&EVENTS, args, envs)
}

/// Runs `bucketlog replay` on `events` with `args` and `envs`; returns its stdout.
fn replay_files(events: &[&str], args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bucketlog"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("replay")
        .args(events.iter().map(|e| repo(e)))
        .args(args)
        .env_remove("OUTPUT_BUCKET")
        .envs(envs.iter().copied())
        .env("METRICS_MODE", "off");
    succeeded(&mut command)
}

/// Runs `command`, which must succeed; returns its stdout.
fn succeeded(command: &mut Command) -> String {
    let output = command.output().expect("run bucketlog");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The outcome of every unit of work in the printed responses, in order.
fn outcomes(stdout: &str) -> Vec<String> {
    let mut found = Vec::new();
    for block in stdout.split("== ").skip(1) {
        let json = &block[block.find('{').expect("a response")..];
        let response: Value = serde_json::from_str(json.trim()).expect("JSON response");
        for object in response["objects"].as_array().expect("objects") {
            found.push(format!(
                "{} {}",
                object["outcome"].as_str().unwrap_or_default(),
                object["records"].as_u64().unwrap_or(0)
            ));
        }
    }
    found
}

#[test]
fn local_replay_curates_batches_and_json_objects_once() {
    let out = std::env::temp_dir().join(format!("bucketlog-replay-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.to_string_lossy().to_string();
    let metrics = out.join("metrics.ndjson").to_string_lossy().to_string();
    let args = [
        "--store",
        "events/store",
        "--out",
        &out_arg,
        "--metrics",
        &metrics,
    ];
    let first = replay(&args, &[]);
    assert_eq!(outcomes(&first), ["processed 5", "processed 3"], "{first}");
    assert!(first.contains("CONTROL_MESSAGE"), "{first}");
    // The batch goes to a `cloudwatch-logs` folder (no OUTPUT_BUCKET locally), the log
    // object's outputs next to it.
    let batch = s3::ndjson_under(&out.join("cloudwatch-logs/curated"));
    assert_eq!(batch.len(), 5);
    assert!(batch.iter().all(|r| r["bucket"] == "bucketlog-demo-assets"));
    let keys: Vec<&str> = batch
        .iter()
        .filter_map(|r| r["key_decoded"].as_str())
        .collect();
    assert!(keys.contains(&"uploads/caf\u{e9} menu.png"), "{keys:?}");
    let objects = s3::ndjson_under(&out.join("bucketlog-sample-logs/curated"));
    let from_json: Vec<&Value> = objects
        .iter()
        .filter(|r| {
            r["source_object"]
                .as_str()
                .is_some_and(|s| s.contains("/raw/json/"))
        })
        .collect();
    assert_eq!(from_json.len(), 3);
    assert_eq!(
        from_json.iter().filter(|r| r["http_status"] == 403).count(),
        2
    );

    let second = replay(&args, &[]);
    assert_eq!(
        outcomes(&second),
        ["duplicate 0", "duplicate 0"],
        "{second}"
    );
    assert_eq!(
        s3::ndjson_under(&out.join("cloudwatch-logs/curated")).len(),
        5
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test]
async fn replay_over_moto_writes_batches_to_output_bucket() {
    let server = moto::shared();
    let client = s3::client(&server.endpoint).await;
    let bucket = moto::unique_bucket("replay-cwl");
    s3::create_bucket(&client, &bucket).await;
    // The S3 event names its own bucket; give it the object it announces.
    let log = std::fs::read(repo(
        "events/store/bucketlog-sample-logs/raw/json/2026-11-20-18-05-00-JS0N000000000001",
    ))
    .unwrap();
    s3::create_bucket(&client, "bucketlog-sample-logs").await;
    s3::put(
        &client,
        "bucketlog-sample-logs",
        "raw/json/2026-11-20-18-05-00-JS0N000000000001",
        log,
    )
    .await;
    let envs = [
        ("AWS_ENDPOINT_URL", server.endpoint.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("OUTPUT_BUCKET", bucket.as_str()),
    ];
    let run = || replay(&[], &envs);
    let first = run();
    assert_eq!(outcomes(&first), ["processed 5", "processed 3"], "{first}");
    let curated = s3::list(&client, &bucket, "curated/").await;
    let mut records = 0;
    for (key, _) in &curated {
        records += s3::ndjson(&s3::get(&client, &bucket, key).await).len();
    }
    assert_eq!(
        records, 8,
        "the batch and the JSON log object, both in OUTPUT_BUCKET"
    );
    let stored = s3::list(&client, &bucket, "").await;
    let second = run();
    assert_eq!(
        outcomes(&second),
        ["duplicate 0", "duplicate 0"],
        "{second}"
    );
    assert_eq!(s3::list(&client, &bucket, "").await, stored);

    // `bucketlog compact` against the same endpoint (AWS_ENDPOINT_URL: S3, OUTPUT_BUCKET:
    // the bucket) builds the lake of their one partition, equal to the curated records.
    let compacted = compact_with(&["--settle-minutes", "0"], &envs);
    assert_eq!(
        compacted.matches("compacted bucket=").count(),
        1,
        "{compacted}"
    );
    assert!(compacted.contains("2 curated objects"), "{compacted}");
    let dir = std::env::temp_dir().join(format!("bucketlog-cli-s3-lake-{}", std::process::id()));
    let summary = support::lake::readback_s3(&client, &bucket, &dir).await;
    assert_eq!(summary["rows"], 8, "{summary}");
}

#[test]
fn local_replay_answers_a_batch_operations_job_task_by_task_and_again_idempotently() {
    let out = std::env::temp_dir().join(format!("bucketlog-replay-bops-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.to_string_lossy().to_string();
    let metrics = out.join("metrics.ndjson").to_string_lossy().to_string();
    let args = ["--out", &out_arg, "--metrics", &metrics];
    let job = ["events/batch-operations-backfill.json"];
    let results = |stdout: &str| -> Vec<(String, String)> {
        let json = &stdout[stdout.find('{').expect("a response")..];
        let response: Value = serde_json::from_str(json.trim()).expect("JSON response");
        assert_eq!(response["invocationSchemaVersion"], "2.0");
        assert_eq!(response["treatMissingKeysAs"], "PermanentFailure");
        support::pipeline::task_results(&response)
    };
    let first = results(&replay_files(&job, &args, &[]));
    assert_eq!(
        first,
        [
            (
                "Succeeded".into(),
                "processed: 60 records, 0 rejected, 0 alerts".into()
            ),
            (
                "Succeeded".into(),
                "processed: 40 records, 0 rejected, 1 alerts".into()
            ),
            (
                "PermanentFailure".into(),
                "NoSuchKey: the object is gone".into()
            ),
        ]
    );
    // The October object's 45 403s from one address: recorded in alerts/, as a backfill.
    let alerts = s3::ndjson_under(
        &out.join("bucketlog-sample-logs/alerts/bucket=bucketlog-sample-logs/dt=2026-10-01"),
    );
    assert!(
        alerts.iter().any(|a| a["type"] == "forbidden_spike"),
        "{alerts:#?}"
    );
    let second = results(&replay_files(&job, &args, &[]));
    assert!(
        second[..2]
            .iter()
            .all(|(code, text)| code == "Succeeded" && text.starts_with("already processed")),
        "{second:?}"
    );
    assert_eq!(second[2].0, "PermanentFailure");
    let _ = std::fs::remove_dir_all(&out);
}

/// Runs `bucketlog compact` on local folders with `args`; returns its stdout.
fn compact(args: &[&str]) -> String {
    compact_with(args, &[])
}

/// Runs `bucketlog compact` with `args` and only `envs` set of the AWS settings.
fn compact_with(args: &[&str], envs: &[(&str, &str)]) -> String {
    succeeded(
        Command::new(env!("CARGO_BIN_EXE_bucketlog"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("compact")
            .args(args)
            .env_remove("OUTPUT_BUCKET")
            .env_remove("AWS_ENDPOINT_URL")
            .envs(envs.iter().copied()),
    )
}

/// Replays every sample event in `events/` into a fresh folder named after `label`, with
/// `envs` set; returns the folder (its `store/` holds the outputs).
fn replay_all_samples(label: &str, envs: &[(&str, &str)]) -> PathBuf {
    let out = std::env::temp_dir().join(format!("bucketlog-cli-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let metrics = out.join("metrics.ndjson");
    let mut events: Vec<String> = std::fs::read_dir(repo("events"))
        .expect("events/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.display().to_string())
        .collect();
    events.sort();
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    replay_files(
        &events,
        &[
            "--out",
            out.join("store").to_str().expect("utf-8 path"),
            "--metrics",
            metrics.to_str().expect("utf-8"),
        ],
        envs,
    );
    out
}

/// The README's second local command: after a replay of every sample event,
/// `bucketlog compact --settle-minutes 0` turns each replayed bucket's curated records
/// into the lake, which pyarrow and DuckDB read back equal to them; a second run finds
/// nothing dirty.
#[test]
fn compact_after_replay_builds_the_lake_of_every_replayed_bucket() {
    let out = replay_all_samples("compact", &[]);
    let out_arg = out.join("store");
    let out_text = out_arg.to_str().expect("utf-8 path");
    let first = compact(&["--out", out_text, "--settle-minutes", "0"]);
    assert!(first.matches("compacted bucket=").count() >= 10, "{first}");
    let mut rows = 0;
    for bucket in ["bucketlog-sample-logs", "cloudwatch-logs"] {
        let root = out_arg.join(bucket);
        let summary = support::lake::readback(&root.join("lake"), &root.join("curated"));
        rows += summary["rows"].as_u64().expect("rows");
    }
    assert!(rows > 500, "{rows} rows");
    let second = compact(&["--out", out_text, "--settle-minutes", "0"]);
    assert!(!second.contains("compacted"), "{second}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Every file under `dir`, recursively.
fn files_in(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// `OUTPUT_COMPRESSION=zstd` end to end on the sample events: every curated output is a
/// `.ndjson.zst`, DuckDB reads each with its own decompression (the readback checks),
/// and the compaction reads them into a lake equal to them.
#[test]
fn zstd_outputs_are_read_by_duckdb_and_compacted_into_the_lake() {
    let out = replay_all_samples("zstd", &[("OUTPUT_COMPRESSION", "zstd")]);
    let root = out.join("store").join("bucketlog-sample-logs");
    let curated = files_in(&root.join("curated"));
    assert!(curated.len() >= 10, "{curated:?}");
    for path in &curated {
        let name = path.display().to_string();
        assert!(name.ends_with(".ndjson.zst"), "{name}");
        let bytes = std::fs::read(path).expect("read output");
        assert!(
            bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            "{name} is not zstd"
        );
    }
    let out_text = out.join("store");
    let first = compact(&[
        "--out",
        out_text.to_str().expect("utf-8"),
        "--settle-minutes",
        "0",
    ]);
    assert!(first.matches("compacted bucket=").count() >= 10, "{first}");
    let summary = support::lake::readback(&root.join("lake"), &root.join("curated"));
    assert!(summary["rows"].as_u64().expect("rows") > 500, "{summary}");
    let _ = std::fs::remove_dir_all(&out);
}
