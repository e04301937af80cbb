//! `bucketlog compact`: the lake compaction the scheduled function runs, here, over the
//! outputs of local replays (every bucket folder under `--out`) or over S3.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bucketlog::adapters::aws_pipeline;
use bucketlog::adapters::local::LocalStore;
use bucketlog::lake::{CompactionReport, Compactor};
use bucketlog::pipeline::system_now;
use bucketlog::ports::ObjectStore;

use super::handler_setup;

/// What one `bucketlog compact` does.
pub struct CompactPlan {
    /// Outputs of local replays, one sub-folder per bucket.
    pub out: PathBuf,
    /// Only this bucket.
    pub bucket: Option<String>,
    /// Overrides `LAKE_SETTLE_MINUTES`.
    pub settle_minutes: Option<i64>,
    /// Use S3 (or `AWS_ENDPOINT_URL`).
    pub s3: bool,
}

/// Compacts the dirty partitions of every bucket the plan names.
pub fn compact(plan: CompactPlan) -> Result<()> {
    let (mut config, runtime, use_s3) = handler_setup(plan.s3)?;
    // Compaction reads curated records and looks nothing up: a GEOIP_DB or ASN_DB left in
    // the environment must not be opened (or copied from S3) for it.
    (config.geoip_db, config.asn_db) = (None, None);
    let settle = plan.settle_minutes.unwrap_or(config.lake.settle_minutes);
    if settle < 0 {
        bail!("--settle-minutes must be 0 or more");
    }
    runtime.block_on(async {
        let mut failed = 0;
        if use_s3 {
            let Some(bucket) = plan.bucket.clone().or_else(|| config.output_bucket.clone()) else {
                bail!("compacting S3 needs --bucket (or OUTPUT_BUCKET)");
            };
            let pipeline = aws_pipeline(config).await?;
            failed += compact_bucket(pipeline.compactor(bucket.as_str()), &bucket, settle).await?;
        } else {
            let store = LocalStore::new(&plan.out);
            let buckets = match plan.bucket.clone() {
                Some(bucket) => vec![bucket],
                None => local_buckets(&plan.out)?,
            };
            for bucket in buckets {
                let compactor = Compactor::new(&store, bucket.as_str(), &config);
                failed += compact_bucket(compactor, &bucket, settle).await?;
            }
            eprintln!(
                "bucketlog: lake written under {}/<bucket>/{}",
                plan.out.display(),
                config.lake.prefix
            );
        }
        if failed > 0 {
            bail!("{failed} partition(s) failed to compact; they stay dirty");
        }
        Ok(())
    })
}

/// The bucket folders under `out`.
fn local_buckets(out: &Path) -> Result<Vec<String>> {
    let mut buckets = Vec::new();
    let entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(buckets),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", out.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", out.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            buckets.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    buckets.sort();
    Ok(buckets)
}

/// Compacts one bucket and prints what happened; returns how many partitions failed.
async fn compact_bucket<S: ObjectStore>(
    compactor: Compactor<'_, S>,
    bucket: &str,
    settle_minutes: i64,
) -> Result<usize> {
    let report = compactor
        .run(system_now(), settle_minutes * 60, None)
        .await
        .with_context(|| format!("cannot list the dirty partitions of {bucket}"))?;
    print_report(bucket, &report);
    Ok(report.failed.len())
}

fn print_report(bucket: &str, report: &CompactionReport) {
    if report.compacted.is_empty() && report.failed.is_empty() && report.settling == 0 {
        return;
    }
    println!("== {bucket}");
    for p in &report.compacted {
        println!(
            "compacted {}: {} curated objects ({} bytes) -> {} rows in {} file(s), {} bytes{}",
            p.partition,
            p.sources,
            p.source_bytes,
            p.rows,
            p.files,
            p.bytes,
            if p.still_dirty {
                " (written to meanwhile: stays dirty)"
            } else {
                ""
            }
        );
    }
    if report.settling > 0 {
        println!(
            "{} partition(s) still settling (see --settle-minutes)",
            report.settling
        );
    }
    for (partition, error) in &report.failed {
        println!("FAILED {partition}: {error}");
    }
}
