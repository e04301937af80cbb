//! `bucketlog backfill`: the log objects already in a bucket, between two delivery days,
//! either written as an S3 Batch Operations manifest or run through the handler here with
//! bounded concurrency. Each object is processed as a backfill (old alerts are recorded,
//! not sent); markers make a stopped run resumable: run it again and what was done is
//! reported as already processed.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bucketlog::adapters::aws_pipeline;
use bucketlog::batch_ops::{BackfillRange, manifest_line};
use bucketlog::event::ObjectRef;
use bucketlog::pipeline::{InvocationContext, ObjectOutcome, Pipeline};
use bucketlog::ports::ObjectStore;
use futures::StreamExt;

use super::{Folders, handler_setup, local_pipeline};

/// What one `bucketlog backfill` does.
pub struct BackfillPlan {
    /// The bucket holding the log objects.
    pub bucket: String,
    /// Which of its keys.
    pub range: BackfillRange,
    /// Write a manifest here instead of processing.
    pub manifest: Option<PathBuf>,
    /// Objects processed at once.
    pub concurrency: usize,
    /// Stop after this many objects.
    pub limit: Option<usize>,
}

/// How the objects of one run ended.
#[derive(Default)]
struct Tally {
    processed: usize,
    duplicate: usize,
    skipped: usize,
    missing: usize,
    failed: Vec<String>,
}

impl Tally {
    fn done(&self) -> usize {
        self.processed + self.duplicate + self.skipped + self.missing + self.failed.len()
    }
}

/// Runs `bucketlog backfill`.
pub fn backfill(plan: BackfillPlan, folders: Folders, s3: bool) -> Result<()> {
    let (config, runtime, use_s3) = handler_setup(s3)?;
    runtime.block_on(async {
        if use_s3 {
            let pipeline = aws_pipeline(config).await?;
            run(&plan, pipeline.store(), &pipeline).await
        } else {
            // Log objects are listed where they are (--store); outputs go under --out.
            let lister = bucketlog::adapters::local::LocalStore::new(&folders.store);
            let pipeline = local_pipeline(config, &folders)?;
            run(&plan, &lister, &pipeline).await
        }
    })
}

async fn run<L: ObjectStore, S: ObjectStore>(
    plan: &BackfillPlan,
    lister: &L,
    pipeline: &Pipeline<S>,
) -> Result<()> {
    let mut keys = list_keys(plan, lister).await?;
    if let Some(limit) = plan.limit {
        keys.truncate(limit);
    }
    if let Some(path) = &plan.manifest {
        return write_manifest(path, &plan.bucket, &keys);
    }
    let total = keys.len();
    eprintln!(
        "bucketlog backfill: {total} log objects in s3://{}/",
        plan.bucket
    );
    let context = InvocationContext::default();
    let mut results = futures::stream::iter(keys.into_iter().map(|key| {
        let object = ObjectRef {
            bucket: plan.bucket.clone(),
            key,
        };
        let context = &context;
        async move {
            let outcome = pipeline.backfill_object(&object, context).await;
            (object, outcome)
        }
    }))
    .buffer_unordered(plan.concurrency);
    let mut tally = Tally::default();
    let progress = Progress::new(total);
    while let Some((object, outcome)) = results.next().await {
        match outcome {
            Ok(ObjectOutcome::Processed(_)) => tally.processed += 1,
            Ok(ObjectOutcome::Duplicate { .. }) => tally.duplicate += 1,
            Ok(ObjectOutcome::Skipped { .. }) => tally.skipped += 1,
            Ok(ObjectOutcome::Missing { .. }) => tally.missing += 1,
            Err(e) => tally.failed.push(format!("{object}: {e}")),
        }
        progress.show(&tally);
    }
    progress.finish(&tally);
    if !tally.failed.is_empty() {
        let first: Vec<&str> = tally.failed.iter().take(5).map(String::as_str).collect();
        bail!(
            "{} of {total} log objects failed (run again to retry them); first: {}",
            tally.failed.len(),
            first.join("; ")
        );
    }
    Ok(())
}

/// The keys the plan covers, sorted, listing one day at a time when a range is given.
async fn list_keys<L: ObjectStore>(plan: &BackfillPlan, lister: &L) -> Result<Vec<String>> {
    let listings = plan.range.listings().map_err(anyhow::Error::msg)?;
    let mut keys = Vec::new();
    for prefix in listings {
        let at = ObjectRef {
            bucket: plan.bucket.clone(),
            key: prefix,
        };
        let found = lister
            .list(&at)
            .await
            .with_context(|| format!("cannot list {at}"))?;
        keys.extend(found.into_iter().filter(|k| plan.range.covers(k)));
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

fn write_manifest(path: &PathBuf, bucket: &str, keys: &[String]) -> Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    for key in keys {
        writeln!(out, "{}", manifest_line(bucket, key))?;
    }
    out.flush()?;
    eprintln!(
        "bucketlog backfill: manifest of {} log objects written to {} (docs/deploy.md, \"Backfill\", runs it)",
        keys.len(),
        path.display()
    );
    Ok(())
}

/// Progress on stderr: a bar redrawn in place on a terminal, a line every 100 objects
/// otherwise.
struct Progress {
    total: usize,
    terminal: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn line(&self, tally: &Tally) -> String {
        let done = tally.done();
        let width = 30;
        let filled = (done * width).checked_div(self.total).unwrap_or(width);
        format!(
            "[{}{}] {done}/{} objects: {} processed, {} already done, {} skipped, {} gone, {} failed",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.total,
            tally.processed,
            tally.duplicate,
            tally.skipped,
            tally.missing,
            tally.failed.len()
        )
    }

    fn show(&self, tally: &Tally) {
        if self.terminal {
            eprint!("\r{}", self.line(tally));
        } else if tally.done().is_multiple_of(100) {
            eprintln!("{}", self.line(tally));
        }
    }

    fn finish(&self, tally: &Tally) {
        if self.terminal {
            eprintln!();
        }
        eprintln!("bucketlog backfill: {}", self.line(tally));
    }
}
