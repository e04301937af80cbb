//! Output keys against a real S3-compatible server (moto on 127.0.0.1) through the real
//! `aws-sdk-s3` client: two log objects with one file name keep all their records, a
//! retry overwrites its own outputs, and a raw key near S3's 1,024-byte limit still gives
//! outputs and a marker S3 accepts.

mod support;

use bucketlog::config::Config;
use support::pipeline::{Fixture, fixture, outputs, processed, sample_log as log};
use support::s3::*;

async fn process(f: &Fixture, key: &str) -> serde_json::Value {
    let response = f.pipeline.handle(&s3_event(&f.bucket, key)).await.unwrap();
    assert_eq!(processed(&response).len(), 1, "{response}");
    response
}

#[tokio::test]
async fn two_log_objects_with_one_file_name_keep_all_their_records() {
    let f = fixture("samename", Config::default()).await;
    // Same file name, same generated records (same seed): the worst case for a collision.
    for team in ["teamA", "teamB"] {
        put(
            &f.client,
            &f.bucket,
            &format!("raw/{team}/access.log"),
            log(200, 7),
        )
        .await;
    }
    for team in ["teamA", "teamB"] {
        process(&f, &format!("raw/{team}/access.log")).await;
    }
    let curated = outputs(&f, "curated/").await;
    assert_eq!(curated.len(), 400, "both objects' records remain");
    for team in ["teamA", "teamB"] {
        let source = format!("s3://{}/raw/{team}/access.log", f.bucket);
        let mut lines: Vec<u64> = curated
            .iter()
            .filter(|(_, r)| r["source_object"] == source.as_str())
            .map(|(_, r)| r["source_line"].as_u64().unwrap())
            .collect();
        lines.sort();
        assert_eq!(lines, (1..=200).collect::<Vec<_>>(), "{team}");
    }
    let rejected = outputs(&f, "rejected/").await;
    assert_eq!(rejected.len(), 2, "one rejected line from each object");
    // Names stay readable: the log's own file name is in every output key.
    for (key, _) in curated.iter().chain(&rejected) {
        assert!(key.contains("/access.log."), "{key}");
    }
}

#[tokio::test]
async fn a_retry_overwrites_its_own_outputs() {
    let f = fixture("retry", Config::default()).await;
    let key = "raw/teamA/access.log";
    put(&f.client, &f.bucket, key, log(150, 3)).await;
    process(&f, key).await;
    let first = list(&f.client, &f.bucket, "curated/").await;
    // Forget the marker, as if the first run had died just before writing it.
    for (marker, _) in list(&f.client, &f.bucket, "state/processed/").await {
        f.client
            .delete_object()
            .bucket(&f.bucket)
            .key(marker)
            .send()
            .await
            .unwrap();
    }
    process(&f, key).await;
    let second = list(&f.client, &f.bucket, "curated/").await;
    let names = |l: &[(String, String)]| l.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(names(&first), names(&second), "same keys, overwritten");
    assert_eq!(outputs(&f, "curated/").await.len(), 150);
}

#[tokio::test]
async fn a_key_near_the_limit_gives_outputs_and_a_marker_within_it() {
    let f = fixture("longkey", Config::default()).await;
    // ~1,000 bytes: deep folders and a long file name with multi-byte characters.
    let folders = "a-rather-long-folder-name/".repeat(25);
    let name = format!("{}-access.log", "é".repeat(163));
    let key = format!("raw/{folders}{name}");
    assert!((990..1024).contains(&key.len()), "{}", key.len());
    put(&f.client, &f.bucket, &key, log(100, 5)).await;
    let response = process(&f, &key).await;
    let report = &processed(&response)[0];
    assert_eq!(report["records"], 100);
    assert_eq!(report["rejected"], 1);
    let all = list(&f.client, &f.bucket, "").await;
    assert!(all.len() >= 4, "raw, outputs, rejects and marker: {all:?}");
    for (written, _) in &all {
        // moto accepts longer keys than S3; S3 refuses any key over 1,024 bytes.
        assert!(written.len() <= 1024, "{} bytes: {written}", written.len());
    }
    assert_eq!(outputs(&f, "curated/").await.len(), 100);
    let markers = list(&f.client, &f.bucket, "state/processed/").await;
    assert_eq!(markers.len(), 1);
    // A duplicate event finds the (shortened) marker and does nothing.
    let again = f.pipeline.handle(&s3_event(&f.bucket, &key)).await.unwrap();
    assert_eq!(again["objects"][0]["outcome"], "duplicate", "{again}");
}
