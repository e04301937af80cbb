//! A pipeline over the real S3 client, pointed at the shared emulator, with a fresh bucket.
#![allow(dead_code)]

use bucketlog::adapters::s3::S3Store;
use bucketlog::config::Config;
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
