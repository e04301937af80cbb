//! The compactor: over the [`ObjectStore`] port, dirty partitions' curated objects in,
//! their Parquet files out. See [`crate::lake`] for the guarantees.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;
use tracing::{info, warn};

use super::partition::{DIRTY_DIR, DirtyMark, Manifest, ManifestFile, ManifestSource, Partition};
use super::sort::{LineSorter, RunFactory, SortError, SortLimits, SortedLines};
use super::writer::{LakeLimits, LakeOutput, LakeWriter};
use crate::config::Config;
use crate::curate::LineHandler;
use crate::event::ObjectRef;
use crate::input::{DecodeError, ObjectDecoder};
use crate::lines::Line;
use crate::ports::{
    DirtyMarkRead, MarkerStore, ObjectStore, PutCondition, StoreError, UploadedPart,
};

/// The longest curated line the compactor reads: far beyond any record of a 1 MiB log
/// line, escaping and enrichment included.
const MAX_CURATED_LINE: usize = 64 * 1024 * 1024;

/// How long after a compaction a missing source is taken as superseded (its partition is
/// rebuilt without it) rather than expired (its rows are kept): 7 days.
pub const REBUILD_WINDOW_SECONDS: i64 = 7 * 86_400;

/// The tag [`ObjectStore::tag`] sets on compacted curated objects (`LAKE_TAG_COMPACTED`).
pub const COMPACTED_TAG: (&str, &str) = ("bucketlog-compacted", "true");

/// A partition could not be compacted; its dirty marker stays, so the next run tries
/// again, and its previous lake files stay as they were.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// Reading or writing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A curated object's bytes could not be decoded.
    #[error("cannot decode {object}: {source}")]
    Decode {
        /// The curated object.
        object: ObjectRef,
        /// What went wrong.
        source: DecodeError,
    },
    /// A curated line is not a record the lake can hold.
    #[error("{object} line {line}: {problem}")]
    Record {
        /// The curated object.
        object: ObjectRef,
        /// The 1-based line.
        line: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// A curated object listed at the start was gone when it was read: the partition is
    /// changing (a newer version of a log object replaced it), so it stays dirty.
    #[error("{object} disappeared during compaction")]
    SourceGone {
        /// The curated object.
        object: ObjectRef,
    },
    /// Sorting or encoding failed.
    #[error("partition {partition}: {problem}")]
    Build {
        /// `bucket=B/dt=D/hour=H/`.
        partition: String,
        /// What went wrong.
        problem: String,
    },
    /// The new files do not hold exactly the partition's records: nothing was replaced.
    #[error(
        "partition {partition}: the new files hold {written} rows, but its curated objects hold {expected}; the previous files are kept"
    )]
    RowCount {
        /// `bucket=B/dt=D/hour=H/`.
        partition: String,
        /// Records read.
        expected: u64,
        /// Rows in the new files' footers.
        written: u64,
    },
}

/// What happened to one dirty partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    /// `bucket=B/dt=D/hour=H/`.
    pub partition: String,
    /// Curated objects read.
    pub sources: usize,
    /// Rows written (equal to the records read).
    pub rows: u64,
    /// Lake files now in the partition.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Curated bytes read (as stored, compressed or not).
    pub source_bytes: u64,
    /// Sorted runs spilled to temporary files (0 when the partition fit the buffer).
    pub sort_runs: usize,
    /// Only the curated objects new since the last compaction were added, because some
    /// earlier ones have expired (`LAKE_TAG_COMPACTED`).
    pub appended: bool,
    /// A write arrived during the compaction: the partition stays dirty for the next run.
    pub still_dirty: bool,
}

/// What became of one dirty partition's marks.
enum Marked {
    /// Its partition was compacted.
    Compacted(PartitionReport),
    /// Its partition was written to within the settle time.
    Settling,
}

/// One dirty mark as read, with the store that holds it (to clear it there).
type HeldMark<'m> = (&'m dyn MarkerStore, DirtyMarkRead);

/// What one compaction run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactionReport {
    /// The partitions compacted.
    pub compacted: Vec<PartitionReport>,
    /// Dirty partitions left for a later run because their last write is recent.
    pub settling: usize,
    /// Dirty partitions left because the invocation's time ran short.
    pub deferred: usize,
    /// Partitions that failed, with the error (they stay dirty).
    pub failed: Vec<(String, String)>,
}

/// Compacts dirty partitions of one bucket's curated records into the lake.
pub struct Compactor<'a, S> {
    store: &'a S,
    /// Where the processing function writes its dirty marks when not in `store` (the
    /// detection table, `MARKERS`); `store`'s own are read as well.
    marks: Option<&'a dyn MarkerStore>,
    bucket: String,
    config: &'a Config,
    limits: LakeLimits,
    sort: SortLimits,
    runs: fn() -> RunFactory,
}

impl<'a, S: ObjectStore> Compactor<'a, S> {
    /// A compactor for the curated records in `bucket`, writing runs to temporary files.
    pub fn new(store: &'a S, bucket: impl Into<String>, config: &'a Config) -> Self {
        Self {
            store,
            marks: None,
            bucket: bucket.into(),
            config,
            limits: LakeLimits::default(),
            sort: SortLimits {
                buffer_bytes: 64 * 1024 * 1024,
            },
            runs: temp_runs,
        }
    }

    /// Also reads and clears the dirty marks in `marks` (the detection table), besides
    /// those in the store: marks written before the switch, or by a function still on
    /// `MARKERS=bucket`, stay in S3 until a compaction clears them.
    pub fn with_marks(mut self, marks: Option<&'a dyn MarkerStore>) -> Self {
        self.marks = marks;
        self
    }

    /// Uses other sizes (tests cut files, parts and sort runs small).
    pub fn with_limits(mut self, limits: LakeLimits, sort: SortLimits) -> Self {
        self.limits = limits;
        self.sort = sort;
        self
    }

    fn at(&self, key: impl Into<String>) -> ObjectRef {
        ObjectRef {
            bucket: self.bucket.clone(),
            key: key.into(),
        }
    }

    /// Compacts every dirty partition whose last write is at least the settle time old
    /// (`settle_seconds`), until `deadline`; a partition that fails is reported and left
    /// dirty, and the others go on.
    pub async fn run(
        &self,
        now: i64,
        settle_seconds: i64,
        deadline: Option<Instant>,
    ) -> Result<CompactionReport, StoreError> {
        let mut report = CompactionReport::default();
        for (partition, marks) in self.dirty_partitions().await? {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                report.deferred += 1;
                continue;
            }
            match self
                .compact_marked(&partition, &marks, now, settle_seconds)
                .await
            {
                Ok(Marked::Compacted(done)) => report.compacted.push(done),
                Ok(Marked::Settling) => report.settling += 1,
                Err(e) => {
                    warn!(partition = %partition.path(), error = %e, "partition not compacted: it stays dirty");
                    report.failed.push((partition.path(), e.to_string()));
                }
            }
        }
        Ok(report)
    }

    /// The dirty marks in the store and in `marks`, by partition, in the partitions'
    /// order: a partition marked in both is compacted once and cleared in both.
    async fn dirty_partitions(&self) -> Result<BTreeMap<Partition, Vec<HeldMark<'a>>>, StoreError> {
        let prefix = self.at(format!("{}{DIRTY_DIR}", self.config.state_prefix));
        let store: &'a dyn MarkerStore = self.store;
        let mut partitions: BTreeMap<Partition, Vec<HeldMark<'a>>> = BTreeMap::new();
        for holder in std::iter::once(store).chain(self.marks) {
            for mark in holder.dirty_marks(&prefix).await? {
                match mark
                    .key
                    .strip_prefix(&prefix.key)
                    .and_then(Partition::from_path)
                {
                    Some(partition) => partitions
                        .entry(partition)
                        .or_default()
                        .push((holder, mark)),
                    None => warn!(marker = %mark.key, "not a dirty marker: left alone"),
                }
            }
        }
        Ok(partitions)
    }

    /// Compacts a partition unless its last write (the latest of its marks) is still
    /// settling, then clears each mark that no write changed meanwhile.
    async fn compact_marked(
        &self,
        partition: &Partition,
        marks: &[HeldMark<'a>],
        now: i64,
        settle_seconds: i64,
    ) -> Result<Marked, LakeError> {
        let last_write = marks
            .iter()
            .map(|(_, m)| serde_json::from_slice::<DirtyMark>(&m.body).map_or(0, |d| d.last_write))
            .max()
            .unwrap_or(0);
        if now - last_write < settle_seconds {
            return Ok(Marked::Settling);
        }
        let mut done = self.compact(partition, now).await?;
        let mut cleaned = true;
        for (holder, mark) in marks {
            cleaned &= match &mark.version {
                Some(version) => {
                    holder
                        .clear_dirty_mark(&self.at(mark.key.clone()), version)
                        .await?
                }
                None => false,
            };
        }
        done.still_dirty = !cleaned;
        Ok(Marked::Compacted(done))
    }

    /// Rebuilds one partition's lake files from its curated objects: read and sort them,
    /// write the new files aside, check their row counts, then put them in place of the
    /// old ones and record the manifest.
    pub async fn compact(
        &self,
        partition: &Partition,
        now: i64,
    ) -> Result<PartitionReport, LakeError> {
        let started = Instant::now();
        let mut sources = self.list_sources(partition).await?;
        let previous = self.read_manifest(partition).await?;
        let appended = self.keep_expired(&previous, &mut sources, now);
        let mut sorter = LineSorter::new(self.sort, (self.runs)());
        let (read, source_bytes) = self.read_sources(&sources, &mut sorter).await?;
        let expected = sorter.lines();
        let sort_runs = sorter.runs();
        let sorted = sorter
            .finish()
            .map_err(|e| self.build_error(partition, e))?;
        let first_file = match (&previous, appended) {
            (Some(previous), true) => previous.files.len(),
            _ => 0,
        };
        let staged = self.write_staged(partition, sorted, first_file).await?;
        let written: u64 = staged.iter().map(|f| f.rows).sum();
        if written != expected {
            self.delete_all(&staged).await;
            return Err(LakeError::RowCount {
                partition: partition.path(),
                expected,
                written,
            });
        }
        let files = self.publish(partition, staged, first_file).await?;
        let carried = previous.filter(|_| appended);
        let manifest = self
            .record(partition, now, files, read, carried, &sources)
            .await?;
        let report = PartitionReport {
            partition: partition.path(),
            sources: sources.len(),
            rows: manifest.rows,
            files: manifest.files.len(),
            bytes: manifest.files.iter().map(|f| f.bytes).sum(),
            source_bytes,
            sort_runs,
            appended,
            still_dirty: false,
        };
        info!(
            partition = %report.partition,
            sources = report.sources,
            rows = report.rows,
            files = report.files,
            bytes = report.bytes,
            source_bytes,
            sort_runs,
            appended,
            duration_ms = started.elapsed().as_millis() as u64,
            "partition compacted"
        );
        Ok(report)
    }

    /// Writes the manifest of the files now in place (after the `carried` manifest's
    /// files and sources, when the previous files were kept) and tags the sources read
    /// when `LAKE_TAG_COMPACTED` asks for it.
    async fn record(
        &self,
        partition: &Partition,
        now: i64,
        mut files: Vec<ManifestFile>,
        mut read: Vec<ManifestSource>,
        carried: Option<Manifest>,
        sources: &[String],
    ) -> Result<Manifest, LakeError> {
        if let Some(previous) = carried {
            files.splice(0..0, previous.files);
            read.splice(0..0, previous.sources);
        }
        let manifest = Manifest {
            partition: partition.path(),
            compacted_at: now,
            rows: files.iter().map(|f| f.rows).sum(),
            files,
            sources: read,
        };
        self.write_manifest(partition, &manifest).await?;
        if self.config.lake.tag_compacted {
            for source in sources {
                let (key, value) = COMPACTED_TAG;
                self.store.tag(&self.at(source.clone()), key, value).await?;
            }
        }
        Ok(manifest)
    }

    fn build_error(&self, partition: &Partition, e: impl std::fmt::Display) -> LakeError {
        LakeError::Build {
            partition: partition.path(),
            problem: e.to_string(),
        }
    }

    /// The partition's curated objects, in key order (the order their records keep on
    /// equal times).
    async fn list_sources(&self, partition: &Partition) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{}{}", self.config.curated_prefix, partition.path());
        let mut keys: Vec<String> = self
            .store
            .list(&self.at(prefix))
            .await?
            .into_iter()
            .filter(|k| {
                [".ndjson.gz", ".ndjson.zst", ".ndjson"]
                    .iter()
                    .any(|s| k.ends_with(s))
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn read_manifest(&self, partition: &Partition) -> Result<Option<Manifest>, StoreError> {
        let manifest = self.at(partition.manifest_key(&self.config.state_prefix));
        let Some((body, _)) = self.store.get_small(&manifest).await? else {
            return Ok(None);
        };
        match serde_json::from_slice(&body) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                warn!(manifest = %manifest, error = %e, "unreadable lake manifest: the partition is rebuilt");
                Ok(None)
            }
        }
    }

    /// Curated objects can expire after they are compacted: with `LAKE_TAG_COMPACTED`
    /// (the template's `CuratedExpireDays`), or by a plain retention rule long after. When
    /// some of the previous manifest's sources are gone, a rebuild would drop their rows,
    /// so the previous files are kept and only the sources not in them are read (into
    /// additional files). Returns whether that is the case.
    ///
    /// A source can also be gone because a newer version of its log object moved its
    /// records elsewhere (`supersede`); then the rebuild is right, and it is what happens
    /// when expiry is not configured and the previous compaction is recent (within
    /// [`REBUILD_WINDOW_SECONDS`]): superseding follows the overwrite within minutes.
    fn keep_expired(
        &self,
        previous: &Option<Manifest>,
        sources: &mut Vec<String>,
        now: i64,
    ) -> bool {
        let expiring = |p: &&Manifest| {
            self.config.lake.tag_compacted || now - p.compacted_at > REBUILD_WINDOW_SECONDS
        };
        let Some(previous) = previous.as_ref().filter(expiring) else {
            return false;
        };
        let present: BTreeSet<&str> = sources.iter().map(String::as_str).collect();
        let compacted: BTreeSet<&str> = previous.sources.iter().map(|s| s.key.as_str()).collect();
        if compacted.iter().all(|k| present.contains(k)) {
            return false;
        }
        sources.retain(|k| !compacted.contains(k.as_str()));
        true
    }

    /// Reads every source into the sorter; returns what each held and the bytes read.
    async fn read_sources(
        &self,
        sources: &[String],
        sorter: &mut LineSorter,
    ) -> Result<(Vec<ManifestSource>, u64), LakeError> {
        let mut read = Vec::with_capacity(sources.len());
        let mut bytes = 0;
        for key in sources {
            let object = self.at(key.clone());
            let Some(mut body) = self.store.open(&object).await? else {
                return Err(LakeError::SourceGone { object });
            };
            let before = sorter.lines();
            let mut decoder = ObjectDecoder::with_max_line_len(
                Feed {
                    sorter: &mut *sorter,
                    failure: None,
                },
                MAX_CURATED_LINE,
            );
            while let Some(chunk) = body.chunks.next_chunk().await? {
                bytes += chunk.len() as u64;
                decoder.push(&chunk).map_err(|source| LakeError::Decode {
                    object: object.clone(),
                    source,
                })?;
                if let Some(failure) = decoder.handler_mut().and_then(|f| f.failure.take()) {
                    return Err(failure.into_error(object));
                }
            }
            let (feed, _) = decoder.finish().map_err(|source| LakeError::Decode {
                object: object.clone(),
                source,
            })?;
            if let Some(failure) = feed.failure {
                return Err(failure.into_error(object));
            }
            read.push(ManifestSource {
                key: key.clone(),
                etag: body.etag,
                rows: sorter.lines() - before,
            });
        }
        Ok((read, bytes))
    }

    /// Writes the sorted rows as files under the staging prefix, numbered from
    /// `first_file`; on failure, removes what it wrote.
    async fn write_staged(
        &self,
        partition: &Partition,
        mut sorted: SortedLines,
        first_file: usize,
    ) -> Result<Vec<ManifestFile>, LakeError> {
        let staging = format!(
            "{}{}/",
            partition.staging_prefix(&self.config.state_prefix),
            unique_token()
        );
        let mut writer =
            LakeWriter::new(self.limits).map_err(|e| self.build_error(partition, e))?;
        let mut upload = StagedUpload::default();
        let mut staged = Vec::new();
        let result: Result<(), LakeError> = async {
            loop {
                let line = sorted
                    .next_line()
                    .map_err(|e| self.build_error(partition, SortError::Io(e)))?;
                match line {
                    Some(line) => writer
                        .push(line)
                        .map_err(|e| self.build_error(partition, e))?,
                    None => {
                        writer
                            .finish()
                            .map_err(|e| self.build_error(partition, e))?;
                    }
                }
                let done = line.is_none();
                let outputs: Vec<LakeOutput> = writer.take_ready().collect();
                for output in outputs {
                    let key = format!(
                        "{staging}{}",
                        super::partition::file_name(first_file + staged.len())
                    );
                    if let Some(file) = upload.take(self.store, self.at(key), output).await? {
                        staged.push(file);
                    }
                }
                if done {
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(e) = result {
            upload.abort(self.store).await;
            self.delete_all(&staged).await;
            return Err(e);
        }
        Ok(staged)
    }

    /// Puts the staged files in place (each copy replaces one file whole), removes the
    /// partition's other files, then the staged copies; returns the files as placed.
    async fn publish(
        &self,
        partition: &Partition,
        staged: Vec<ManifestFile>,
        first_file: usize,
    ) -> Result<Vec<ManifestFile>, LakeError> {
        let lake = partition.lake_prefix(&self.config.lake.prefix);
        let mut placed = Vec::with_capacity(staged.len());
        for (i, file) in staged.iter().enumerate() {
            let key = format!("{lake}{}", super::partition::file_name(first_file + i));
            self.store
                .copy(&self.at(file.key.clone()), &self.at(key.clone()))
                .await?;
            placed.push(ManifestFile {
                key,
                rows: file.rows,
                bytes: file.bytes,
            });
        }
        let keep: BTreeSet<&str> = placed.iter().map(|f| f.key.as_str()).collect();
        let carried = |key: &str| {
            first_file > 0
                && key
                    .strip_prefix(&lake)
                    .and_then(|name| name.strip_prefix("part-"))
                    .and_then(|rest| rest.strip_suffix(".parquet"))
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| n < first_file)
        };
        for key in self.store.list(&self.at(lake.clone())).await? {
            if !keep.contains(key.as_str()) && !carried(&key) {
                self.store.delete(&self.at(key)).await?;
            }
        }
        self.delete_all(&staged).await;
        Ok(placed)
    }

    async fn write_manifest(
        &self,
        partition: &Partition,
        manifest: &Manifest,
    ) -> Result<(), LakeError> {
        let body =
            serde_json::to_vec_pretty(manifest).map_err(|e| self.build_error(partition, e))?;
        let key = self.at(partition.manifest_key(&self.config.state_prefix));
        self.store
            .put(&key, body, "application/json", PutCondition::None)
            .await?;
        Ok(())
    }

    /// Best-effort removal of staged files (a leftover is harmless: nothing reads the
    /// staging prefix, and the template's lifecycle rule expires it).
    async fn delete_all(&self, files: &[ManifestFile]) {
        for file in files {
            if let Err(e) = self.store.delete(&self.at(file.key.clone())).await {
                warn!(object = %file.key, error = %e, "staged lake file left behind");
            }
        }
    }
}

/// The multipart upload of the file being staged.
#[derive(Default)]
struct StagedUpload {
    current: Option<(ObjectRef, String, Vec<UploadedPart>, u64)>,
}

impl StagedUpload {
    /// Uploads one output; at a file's end, completes it and returns the file.
    async fn take<S: ObjectStore>(
        &mut self,
        store: &S,
        key: ObjectRef,
        output: LakeOutput,
    ) -> Result<Option<ManifestFile>, StoreError> {
        if self.current.is_none() {
            let id = store.start_upload(&key, PARQUET_CONTENT_TYPE).await?;
            self.current = Some((key, id, Vec::new(), 0));
        }
        let Some((object, id, parts, bytes)) = self.current.as_mut() else {
            return Ok(None);
        };
        let (body, rows) = match output {
            LakeOutput::Part(body) => (body, None),
            LakeOutput::FileEnd { tail, rows } => (tail, Some(rows)),
        };
        *bytes += body.len() as u64;
        let number = parts.len() as i32 + 1;
        parts.push(store.upload_part(object, id, number, body).await?);
        let Some(rows) = rows else {
            return Ok(None);
        };
        let Some((object, id, parts, bytes)) = self.current.take() else {
            return Ok(None);
        };
        store.complete_upload(&object, &id, parts).await?;
        Ok(Some(ManifestFile {
            key: object.key,
            rows,
            bytes,
        }))
    }

    async fn abort<S: ObjectStore>(&mut self, store: &S) {
        if let Some((object, id, _, _)) = self.current.take()
            && let Err(e) = store.abort_upload(&object, &id).await
        {
            warn!(object = %object, error = %e, "abandoned lake upload not aborted");
        }
    }
}

/// The Content-Type of lake files.
const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Feeds a curated object's lines to the sorter, keeping the first failure.
struct Feed<'s> {
    sorter: &'s mut LineSorter,
    failure: Option<LineFailure>,
}

/// Why a line could not be sorted.
struct LineFailure {
    line: u64,
    problem: String,
}

impl LineFailure {
    fn into_error(self, object: ObjectRef) -> LakeError {
        LakeError::Record {
            object,
            line: self.line,
            problem: self.problem,
        }
    }
}

impl LineHandler for Feed<'_> {
    fn line(&mut self, line: Line<'_>) {
        if self.failure.is_some() || line.bytes.is_empty() {
            return;
        }
        if line.truncated {
            self.failure = Some(LineFailure {
                line: line.number,
                problem: format!("longer than {MAX_CURATED_LINE} bytes"),
            });
            return;
        }
        if let Err(e) = self.sorter.push(line.bytes, line.number) {
            self.failure = Some(LineFailure {
                line: line.number,
                problem: match e {
                    SortError::NoTime { .. } => "not a curated record: no `time` field".into(),
                    SortError::Io(e) => format!("sort run: {e}"),
                },
            });
        }
    }
}

/// A token no other call returns, in this process or (by the clock) another: the
/// staging folder of one compaction run, the nonce of one dirty-marker write.
fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Marks the lake partitions of `outputs` (`s3://bucket/key` of curated objects just
/// written or removed) dirty, one mark per partition in `marks` (the output bucket, or
/// the detection table), so the next compaction rebuilds them. Called after the outputs
/// are complete: a compaction that lists the partition after this sees them, and one
/// that listed it before sees the mark change.
pub async fn mark_dirty(
    marks: &dyn MarkerStore,
    config: &Config,
    by: &str,
    outputs: &[&str],
    now: i64,
) -> Result<usize, StoreError> {
    let mut partitions = BTreeSet::new();
    for location in outputs {
        let Some(ObjectRef { bucket, key }) = ObjectRef::from_location(location) else {
            continue;
        };
        if let Some(p) = Partition::of_curated_key(&config.curated_prefix, &key) {
            partitions.insert((bucket, p));
        }
    }
    for (bucket, partition) in &partitions {
        let mark = DirtyMark {
            partition: partition.path(),
            last_write: now,
            by: by.to_string(),
            nonce: unique_token(),
        };
        let body = serde_json::to_vec(&mark).unwrap_or_default();
        let at = ObjectRef {
            bucket: bucket.clone(),
            key: partition.dirty_key(&config.state_prefix),
        };
        marks.put_dirty_mark(&at, body).await?;
    }
    Ok(partitions.len())
}

/// Sorted runs in anonymous temporary files (`/tmp` on Lambda).
fn temp_runs() -> RunFactory {
    Box::new(|| {
        crate::adapters::local::anonymous_temp_file("lake-run")
            .map(|f| Box::new(f) as Box<dyn super::sort::RunFile>)
    })
}
