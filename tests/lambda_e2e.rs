//! End to end: the real `bucketlog-lambda` binary under cargo-lambda's runtime emulator
//! (`cargo lambda watch`), invoked with `cargo lambda invoke`, reading from and writing
//! to the S3 emulator. The emulator runs with `--only-lambda-apis` and the test starts the
//! already-built function binary itself, so no second cargo build runs inside the test.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::moto;
use support::s3::*;

/// Kills a child process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cargo_lambda() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/cargo-lambda");
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("cargo-lambda"))
        .find(|p| p.is_file());
    match found.or_else(|| venv.is_file().then_some(venv)) {
        Some(path) => path,
        None => panic!(
            "cargo-lambda is not installed: run `scripts/test`, which installs it into .venv/"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 60 s");
}

fn invoke(cargo_lambda: &PathBuf, port: u16, event: &Value) -> (bool, String) {
    let dir = support::scratch::Scratch::new("e2e-event");
    let file = dir.join("event.json");
    std::fs::write(&file, event.to_string()).unwrap();
    let output = Command::new(cargo_lambda)
        .args([
            "lambda",
            "invoke",
            "bucketlog-lambda",
            "--invoke-address",
            "127.0.0.1",
        ])
        .args([
            "--invoke-port",
            &port.to_string(),
            "--output-format",
            "json",
            "--data-file",
        ])
        .arg(&file)
        .output()
        .expect("run cargo lambda invoke");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_binary_processes_an_event_through_the_runtime_emulator() {
    let server = moto::shared();
    let s3 = client(&server.endpoint).await;
    let bucket = moto::unique_bucket("e2e");
    create_bucket(&s3, &bucket).await;
    let key = "raw/2026-11-20-14-05-12-E2E0000000000001";
    let log = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("events/store/bucketlog-sample-logs/raw/2026-11-20-14-05-12-5A1B2C3D4E5F6789"),
    )
    .unwrap();
    put(&s3, &bucket, key, log).await;
    // The client databases are S3 objects the function copies into its /tmp at start-up.
    for name in ["test-city.mmdb", "test-asn.mmdb"] {
        let bytes = std::fs::read(support::geo::database(name)).expect("test database");
        put(&s3, &bucket, &format!("geo/{name}"), bytes).await;
    }
    let scratch = support::scratch::Scratch::new(&format!("e2e-tmp-{bucket}"));

    let cargo_lambda = cargo_lambda();
    let port = free_port();
    let mut watch = Command::new(&cargo_lambda)
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(port.to_string())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cargo lambda watch");
    wait_for_port(port, "cargo lambda watch", &mut watch);
    let _watch = Running(watch);

    let function = Command::new(env!("CARGO_BIN_EXE_bucketlog-lambda"))
        // The emulator routes runtime calls by the function name in the path.
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt/bucketlog-lambda"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "bucketlog-lambda")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_ENDPOINT_URL", &server.endpoint)
        .env("S3_FORCE_PATH_STYLE", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("LOG_LEVEL", "info")
        .env("GEOIP_DB", format!("s3://{bucket}/geo/test-city.mmdb"))
        .env("ASN_DB", format!("s3://{bucket}/geo/test-asn.mmdb"))
        .env("TMPDIR", scratch.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bucketlog-lambda");
    let _function = Running(function);

    let (ok, text) = invoke(&cargo_lambda, port, &s3_event(&bucket, key));
    assert!(ok, "invoke failed: {text}");
    let start = text.find('{').unwrap_or(0);
    let response: Value =
        serde_json::from_str(text[start..].trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(response["objects"][0]["outcome"], "processed", "{response}");
    assert_eq!(response["objects"][0]["records"], 62, "{response}");
    assert_eq!(response["objects"][0]["rejected"], 1, "{response}");
    let mut curated = Vec::new();
    for (key, _) in list(&s3, &bucket, "curated/").await {
        curated.extend(ndjson(&get(&s3, &bucket, &key).await));
    }
    assert_eq!(curated.len(), 62);
    // The sample's IPv6 client is in the test data's NL network.
    let six = curated
        .iter()
        .find(|r| r["remote_ip"] == "2001:db8:f31b::6fdd")
        .expect("the sample's IPv6 record");
    assert_eq!(
        [
            &six["client_country"],
            &six["client_city"],
            &six["client_asn"],
            &six["client_as_org"]
        ],
        [
            &Value::from("NL"),
            &Value::from("Amsterdam"),
            &Value::from(64501),
            &Value::from("Example Six")
        ]
    );
    assert_eq!(list(&s3, &bucket, "state/processed/").await.len(), 1);

    // The same event again is a duplicate; an unknown payload is an error the runtime reports.
    let (ok, text) = invoke(&cargo_lambda, port, &s3_event(&bucket, key));
    assert!(ok && text.contains("duplicate"), "{text}");
    let (ok, text) = invoke(&cargo_lambda, port, &serde_json::json!({"hello": "world"}));
    assert!(!ok && text.contains("UnrecognisedEvent"), "{text}");
    // A CloudWatch Logs batch has no log bucket: without OUTPUT_BUCKET it is refused,
    // with the reason, before anything is written.
    let batch: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("events/cloudwatch-logs-subscription.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (ok, text) = invoke(&cargo_lambda, port, &batch);
    assert!(
        !ok && text.contains("OutputBucketRequired") && text.contains("OUTPUT_BUCKET"),
        "{text}"
    );
    // A scheduled event is a lake compaction, which needs OUTPUT_BUCKET too.
    let scheduled = serde_json::json!({
        "version": "0", "id": "c0ffee00-0000-0000-0000-000000000000",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-20T15:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/bucketlog-compact"],
        "detail": {}
    });
    let (ok, text) = invoke(&cargo_lambda, port, &scheduled);
    assert!(
        !ok && text.contains("OutputBucketRequired") && text.contains("scheduled compaction"),
        "{text}"
    );
    assert_eq!(list(&s3, &bucket, "state/processed/").await.len(), 1);
}

/// A client database the function cannot use stops it at start-up, before it asks the
/// runtime for an event, with an error naming the variable: never a column of nulls.
#[test]
fn lambda_binary_refuses_to_start_with_an_unusable_database() {
    let output = Command::new(env!("CARGO_BIN_EXE_bucketlog-lambda"))
        // Nothing listens here: the function must stop before it would call it.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", "bucketlog-lambda")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_REGION", "us-east-1")
        .env("ASN_DB", "/nonexistent/GeoLite2-ASN.mmdb")
        .output()
        .expect("run bucketlog-lambda");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ASN_DB=/nonexistent/GeoLite2-ASN.mmdb: cannot read the database"),
        "{stderr}"
    );
}
