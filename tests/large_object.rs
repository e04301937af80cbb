//! A large log object streams through the pipeline against the S3 emulator with bounded
//! memory. In its own test binary so that no other test's allocations share the process.

mod support;

use bucketlog::config::Config;
use bucketlog::generate::GenerateOptions;
use support::pipeline::{fixture, processed};
use support::s3::*;

const LOG_NAME: &str = "2026-11-20-14-05-12-5A1B2C3D4E5F6789";

/// Peak resident memory of this process so far, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak so the next reading covers only what follows (Linux ≥ 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::test]
async fn large_object_streams_with_bounded_memory() {
    let f = fixture("large", Config::default()).await;
    let key = format!("raw/{LOG_NAME}");
    // ~200 MB of log, generated and uploaded in 16 MiB parts so the test itself stays small.
    let target: u64 = if std::env::var_os("BUCKETLOG_QUICK").is_some() {
        20 << 20
    } else {
        200 << 20
    };
    let upload = f
        .client
        .create_multipart_upload()
        .bucket(&f.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap().to_string();
    let mut generator = bucketlog::generate::Generator::new(
        GenerateOptions {
            span_seconds: 3600,
            ..Default::default()
        },
        target / 560,
    );
    let (mut written, mut lines, mut part_number, mut parts) = (0u64, 0u64, 1, Vec::new());
    while written < target {
        let mut part = Vec::with_capacity(16 << 20);
        while part.len() < 16 << 20 && written + (part.len() as u64) < target {
            generator.next_record().write_line(&mut part).unwrap();
            part.push(b'\n');
            lines += 1;
        }
        written += part.len() as u64;
        let done = f
            .client
            .upload_part()
            .bucket(&f.bucket)
            .key(&key)
            .upload_id(&upload_id)
            .part_number(part_number)
            .body(part.into())
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(part_number)
                .e_tag(done.e_tag().unwrap())
                .build(),
        );
        part_number += 1;
    }
    f.client
        .complete_multipart_upload()
        .bucket(&f.bucket)
        .key(&key)
        .upload_id(&upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();

    reset_peak_rss();
    let before = peak_rss_kib();
    let response = f.pipeline.handle(&s3_event(&f.bucket, &key)).await.unwrap();
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;

    let done = processed(&response);
    assert_eq!(done[0]["records"].as_u64(), Some(lines), "{response}");
    assert_eq!(done[0]["bytes"].as_u64(), Some(written));
    let outputs: u64 = done[0]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["records"].as_u64().unwrap())
        .sum();
    assert_eq!(outputs, lines);
    assert!(
        grown_mib < 96,
        "processing {} MiB grew peak memory by {grown_mib} MiB",
        written >> 20
    );
    eprintln!(
        "large object: {} MiB, {lines} lines, peak memory grew {grown_mib} MiB",
        written >> 20
    );
}
