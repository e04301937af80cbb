//! `bucketlog replay` on the sample events of AWS's structured delivery, as a user runs it:
//! locally on the shipped folders, and through the real SDK against moto's S3. Each run
//! prints every response; a second run finds every unit of work already done.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::scratch::Scratch;
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
        .env_remove("OUTPUT_COMPRESSION")
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
    let out = Scratch::new("replay-cli");
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
    // It looks nothing up, so a client database left in the environment is not opened.
    let mut compact_envs = envs.to_vec();
    compact_envs.push(("GEOIP_DB", "/nonexistent/GeoLite2-City.mmdb"));
    let compacted = compact_with(&["--settle-minutes", "0"], &compact_envs);
    assert_eq!(
        compacted.matches("compacted bucket=").count(),
        1,
        "{compacted}"
    );
    assert!(compacted.contains("2 curated objects"), "{compacted}");
    let dir = Scratch::new("cli-s3-lake");
    let summary = support::lake::readback_s3(&client, &bucket, &dir).await;
    assert_eq!(summary["rows"], 8, "{summary}");
}

#[test]
fn local_replay_answers_a_batch_operations_job_task_by_task_and_again_idempotently() {
    let out = Scratch::new("replay-bops");
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

/// Every sample event file in `events/`, in name order.
fn sample_events() -> Vec<PathBuf> {
    let mut events: Vec<PathBuf> = std::fs::read_dir(repo("events"))
        .expect("events/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    events.sort();
    events
}

/// Replays every sample event in `events/` into a fresh folder named after `label`, with
/// `envs` set; returns the folder (its `store/` holds the outputs).
fn replay_all_samples(label: &str, envs: &[(&str, &str)]) -> Scratch {
    let out = Scratch::new(&format!("cli-{label}"));
    let metrics = out.join("metrics.ndjson");
    let events: Vec<String> = sample_events()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
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

/// The README's first command, as a new user runs it weeks after the samples were
/// written: the replay runs as of the events' own time, so the sample buckets' request
/// metrics are written, not dropped as older than CloudWatch takes.
#[test]
fn replaying_the_samples_writes_their_metrics_however_old_they_are() {
    let out = Scratch::new("cli-emf");
    let metrics = out.join("metrics.emf.ndjson");
    let mut command = Command::new(env!("CARGO_BIN_EXE_bucketlog"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("replay")
        .args(sample_events())
        .arg("--out")
        .arg(out.join("store"))
        .arg("--metrics")
        .arg(&metrics)
        .env_remove("OUTPUT_BUCKET")
        .env_remove("OUTPUT_COMPRESSION")
        .env_remove("METRICS_MODE");
    succeeded(&mut command);
    let text = std::fs::read_to_string(&metrics).expect("the metrics file");
    let docs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("EMF JSON"))
        .collect();
    for bucket in ["example-data", "example-assets", "example-backups"] {
        let requests: f64 = docs
            .iter()
            .filter(|d| d["Bucket"] == bucket && d.get("AlertType").is_none())
            .filter_map(|d| d["Requests"].as_f64())
            .sum();
        assert!(requests > 0.0, "no Requests for {bucket}: {text}");
    }
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

/// Each `OUTPUT_COMPRESSION` end to end on the sample events: the default writes
/// `.ndjson.zst` objects, `gzip` writes `.ndjson.gz` ones, each starts with its format's
/// magic bytes, DuckDB reads each with its own decompression (the readback checks), and
/// the compaction reads them into a lake equal to them.
#[test]
fn default_zstd_and_gzip_outputs_are_read_by_duckdb_and_compacted_into_the_lake() {
    let zstd_magic: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
    let gzip_magic: &[u8] = &[0x1f, 0x8b];
    for (label, envs, suffix, magic) in [
        ("default", &[][..], ".ndjson.zst", zstd_magic),
        (
            "gzip",
            &[("OUTPUT_COMPRESSION", "gzip")][..],
            ".ndjson.gz",
            gzip_magic,
        ),
    ] {
        let out = replay_all_samples(label, envs);
        let root = out.join("store").join("bucketlog-sample-logs");
        let curated = files_in(&root.join("curated"));
        assert!(curated.len() >= 10, "{label}: {curated:?}");
        for path in &curated {
            let name = path.display().to_string();
            assert!(name.ends_with(suffix), "{label}: {name}");
            let bytes = std::fs::read(path).expect("read output");
            assert!(bytes.starts_with(magic), "{label}: {name} is not {suffix}");
        }
        let out_text = out.join("store");
        let first = compact(&[
            "--out",
            out_text.to_str().expect("utf-8"),
            "--settle-minutes",
            "0",
        ]);
        assert!(
            first.matches("compacted bucket=").count() >= 10,
            "{label}: {first}"
        );
        let summary = support::lake::readback(&root.join("lake"), &root.join("curated"));
        assert!(
            summary["rows"].as_u64().expect("rows") > 500,
            "{label}: {summary}"
        );
    }
}

/// One access-log line from `ip` with `user_agent`.
fn log_line(ip: &str, user_agent: &str) -> String {
    format!(
        "79a5 geo-bucket [20/Nov/2026:14:00:00 +0000] {ip} - REQ-{ip} REST.GET.OBJECT a.txt \
         \"GET /geo-bucket/a.txt HTTP/1.1\" 200 - 1 1 2 1 \"-\" \"{user_agent}\" - HOSTID SigV4 \
         ECDHE-RSA-AES128-GCM-SHA256 AuthHeader geo-bucket.s3.eu-west-1.amazonaws.com TLSv1.3 - -"
    )
}

/// Runs `bucketlog parse` on `log` with only `envs` of the client databases set; returns
/// the exit status, the curated records and stderr.
fn parse_with(log: &str, envs: &[(&str, &str)]) -> (bool, Vec<Value>, String) {
    let dir = Scratch::new("geo-log");
    let path = dir.join("access.log");
    std::fs::write(&path, log).expect("write log");
    let output = Command::new(env!("CARGO_BIN_EXE_bucketlog"))
        .arg("parse")
        .arg("-q")
        .arg(&path)
        .env_remove("GEOIP_DB")
        .env_remove("ASN_DB")
        .envs(envs.iter().copied())
        .output()
        .expect("run bucketlog parse");
    let records = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an NDJSON record"))
        .collect();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), records, stderr)
}

/// The client fields of a curated record: country, city, ASN, AS organisation.
fn client_fields(record: &Value) -> (Value, Value, Value, Value) {
    (
        record["client_country"].clone(),
        record["client_city"].clone(),
        record["client_asn"].clone(),
        record["client_as_org"].clone(),
    )
}

/// Issue 13 through `bucketlog parse`: both databases answer for IPv4 and IPv6 clients;
/// an address in no network, a network with no AS record and a `-` address give nulls; a
/// Country database gives no city; user agents are named by uap-core and the AWS rules.
#[test]
fn parse_adds_client_network_and_user_agent_fields_from_the_databases() {
    let chrome = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
                  (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    let cli = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64.amzn.2023 prompt/off";
    let log: String = [
        log_line("192.0.2.10", cli),
        log_line("198.51.100.7", chrome),
        log_line("203.0.113.9", "curl/8.5.0"),
        log_line("2001:db8:85a3::8a2e:370:7334", cli),
        log_line("10.1.2.3", cli),
        log_line("-", cli),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect();
    let city = support::geo::database("test-city.mmdb");
    let asn = support::geo::database("test-asn.mmdb");
    let (ok, records, stderr) = parse_with(&log, &[("GEOIP_DB", &city), ("ASN_DB", &asn)]);
    assert!(ok, "{stderr}");
    let got: Vec<_> = records.iter().map(client_fields).collect();
    let null = Value::Null;
    let v = |s: &str| Value::from(s);
    assert_eq!(
        got,
        [
            (
                v("DE"),
                v("Berlin"),
                Value::from(64500),
                v("Example Telecom")
            ),
            (
                v("US"),
                v("Seattle"),
                Value::from(4_200_000_001u64),
                v("Example Cloud")
            ),
            (v("JP"), null.clone(), null.clone(), null.clone()),
            (
                v("NL"),
                v("Amsterdam"),
                Value::from(64501),
                v("Example Six")
            ),
            (null.clone(), null.clone(), null.clone(), null.clone()),
            (null.clone(), null.clone(), null.clone(), null.clone()),
        ]
    );
    let agent = |r: &Value| {
        [
            "user_agent_name",
            "user_agent_version",
            "user_agent_os",
            "user_agent_device",
        ]
        .map(|f| r[f].as_str().map(String::from))
    };
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        agent(&records[0]),
        [some("aws-cli"), some("2.15.30"), some("Linux"), None]
    );
    assert_eq!(
        agent(&records[1]),
        [
            some("Mobile Safari"),
            some("17.4"),
            some("iOS"),
            some("iPhone")
        ]
    );
    assert_eq!(
        agent(&records[2]),
        [some("curl"), some("8.5.0"), None, None]
    );

    // A Country database: countries, no cities; without ASN_DB, no networks.
    let country = support::geo::database("test-country.mmdb");
    let (ok, records, stderr) = parse_with(&log, &[("GEOIP_DB", &country)]);
    assert!(ok, "{stderr}");
    assert_eq!(
        client_fields(&records[3]),
        (v("NL"), null.clone(), null.clone(), null.clone())
    );

    // No database: every client field is null, and the user agent is still named.
    let (ok, records, stderr) = parse_with(&log, &[]);
    assert!(ok, "{stderr}");
    assert!(
        records
            .iter()
            .all(|r| client_fields(r) == (null.clone(), null.clone(), null.clone(), null.clone()))
    );
    assert_eq!(records[1]["user_agent_name"], "Mobile Safari");
}

/// A database that is missing, is not a MaxMind DB, or is of the wrong kind stops
/// `bucketlog parse` before any record, with an error naming the variable.
#[test]
fn parse_refuses_unusable_databases_naming_the_variable() {
    let log = format!("{}\n", log_line("192.0.2.10", "curl/8.5.0"));
    let manifest = repo("Cargo.toml").display().to_string();
    let asn = support::geo::database("test-asn.mmdb");
    let cases = [
        (
            "GEOIP_DB",
            "/nonexistent/GeoLite2-City.mmdb".to_string(),
            "cannot read the database",
        ),
        ("ASN_DB", manifest, "not a MaxMind DB"),
        ("GEOIP_DB", asn, "database type is `GeoLite2-ASN`"),
        (
            "ASN_DB",
            "s3://geo-bucket/asn.mmdb".to_string(),
            "local files only",
        ),
    ];
    for (variable, value, why) in cases {
        let (ok, records, stderr) = parse_with(&log, &[(variable, &value)]);
        assert!(!ok, "{variable}={value} was accepted");
        assert!(records.is_empty(), "{variable}={value}: {records:?}");
        assert!(
            stderr.contains(&format!("{variable}={value}")) && stderr.contains(why),
            "{variable}={value}: {stderr}"
        );
    }
}

/// The sample events replayed with both databases: the curated records carry the
/// client fields (the samples' 198.51.100.4 is in the test data's US network), and the
/// lake compacted from them has the same values, as pyarrow and DuckDB read them.
#[test]
fn replay_with_databases_enriches_the_records_and_the_lake() {
    let city = support::geo::database("test-city.mmdb");
    let asn = support::geo::database("test-asn.mmdb");
    let out = replay_all_samples("geo", &[("GEOIP_DB", &city), ("ASN_DB", &asn)]);
    let root = out.join("store").join("bucketlog-sample-logs");
    let records = support::s3::ndjson_under(&root.join("curated"));
    let seattle: Vec<&Value> = records
        .iter()
        .filter(|r| r["remote_ip"] == "198.51.100.4")
        .collect();
    assert!(!seattle.is_empty());
    for record in &seattle {
        assert_eq!(
            client_fields(record),
            (
                Value::from("US"),
                Value::from("Seattle"),
                Value::from(4_200_000_001u64),
                Value::from("Example Cloud")
            )
        );
    }
    let tokyo = records
        .iter()
        .find(|r| r["remote_ip"] == "203.0.113.66")
        .expect("a sample record from 203.0.113.66");
    assert_eq!(tokyo["client_country"], "JP");
    assert_eq!(tokyo["client_asn"], Value::Null);
    let out_text = out.join("store");
    compact(&[
        "--out",
        out_text.to_str().expect("utf-8"),
        "--settle-minutes",
        "0",
    ]);
    let summary = support::lake::readback(&root.join("lake"), &root.join("curated"));
    assert!(summary["rows"].as_u64().expect("rows") > 500, "{summary}");
}
