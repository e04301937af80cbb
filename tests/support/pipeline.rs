//! A pipeline over the real S3 client, pointed at the shared emulator, with a fresh bucket.
#![allow(dead_code)]

use bucketlog::adapters::s3::S3Store;
use bucketlog::config::Config;
use bucketlog::generate::{GenerateOptions, write_log};
use bucketlog::pipeline::Pipeline;
use serde_json::Value;

use super::{moto, s3};

/// A client, a fresh bucket, and a pipeline that reads and writes through them.
pub struct Fixture {
    /// The S3 client.
    pub client: aws_sdk_s3::Client,
    /// The test's own bucket.
    pub bucket: String,
    /// The pipeline under test.
    pub pipeline: Pipeline<S3Store>,
}

/// Creates a bucket named after `prefix` and a pipeline with `config`.
pub async fn fixture(prefix: &str, config: Config) -> Fixture {
    let server = moto::shared();
    let client = s3::client(&server.endpoint).await;
    let bucket = moto::unique_bucket(prefix);
    s3::create_bucket(&client, &bucket).await;
    let pipeline = Pipeline::new(S3Store::new(client.clone()), config);
    Fixture {
        client,
        bucket,
        pipeline,
    }
}

/// Each task's (`resultCode`, `resultString`) in a Batch Operations response, in order.
pub fn task_results(response: &Value) -> Vec<(String, String)> {
    response["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["resultCode"].as_str().unwrap_or_default().to_string(),
                r["resultString"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The objects a handler response reports as processed.
pub fn processed(response: &Value) -> Vec<&Value> {
    response["objects"]
        .as_array()
        .map(|objects| {
            objects
                .iter()
                .filter(|o| o["outcome"] == "processed")
                .collect()
        })
        .unwrap_or_default()
}

/// A log with `n` generated records over ten minutes, one blank line and one line that
/// must be rejected.
pub fn sample_log(n: u64, seed: u64) -> Vec<u8> {
    let mut log = Vec::new();
    write_log(
        &mut log,
        GenerateOptions {
            seed,
            span_seconds: 600,
            ..Default::default()
        },
        n,
    )
    .unwrap();
    log.extend_from_slice(b"\nnot an access log line\n");
    log
}

/// Every NDJSON line stored under `prefix` in the fixture's bucket, with its object key.
pub async fn outputs(f: &Fixture, prefix: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (key, _) in s3::list(&f.client, &f.bucket, prefix).await {
        for record in s3::ndjson(&s3::get(&f.client, &f.bucket, &key).await) {
            out.push((key.clone(), record));
        }
    }
    out
}
