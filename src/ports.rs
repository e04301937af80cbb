//! The ports: the small traits the pipeline needs from the outside world. Adapters in
//! [`crate::adapters`] implement them for S3 and for a local folder.

use async_trait::async_trait;
use bytes::Bytes;

use crate::event::ObjectRef;

/// Why a store operation failed, in the terms the pipeline acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The bucket or key does not exist.
    NotFound,
    /// The credentials are not allowed to do this.
    AccessDenied,
    /// The store asked us to slow down, and retries did not help.
    Throttled,
    /// The store could not be reached or answered with a server error.
    Unavailable,
    /// Anything else.
    Other,
}

impl std::fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreErrorKind::NotFound => "not found",
            StoreErrorKind::AccessDenied => "access denied",
            StoreErrorKind::Throttled => "throttled",
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Other => "error",
        })
    }
}

/// A failed store operation, naming the operation and the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {object} failed ({kind}): {message}")]
pub struct StoreError {
    /// The operation, such as `GetObject`.
    pub operation: &'static str,
    /// The object it was about.
    pub object: ObjectRef,
    /// The kind of failure.
    pub kind: StoreErrorKind,
    /// The store's own words.
    pub message: String,
}

/// A condition on a write, for idempotency markers and shared state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// Always write.
    None,
    /// Only create: fail if the key exists (`If-None-Match: *`).
    IfAbsent,
    /// Only replace this exact version (`If-Match: etag`).
    IfMatch(String),
}

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was written; its new ETag when the store returned one.
    Written {
        /// The ETag, without quotes.
        etag: Option<String>,
    },
    /// The condition did not hold (HTTP 412), and nothing was written.
    PreconditionFailed,
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// 1-based part number.
    pub number: i32,
    /// The part's ETag, as the store returned it.
    pub etag: String,
}

/// An object being read: its metadata and its bytes, chunk by chunk.
pub struct ObjectBody {
    /// The object's ETag, without quotes.
    pub etag: Option<String>,
    /// Its size in bytes, when known.
    pub size: Option<u64>,
    /// The bytes.
    pub chunks: Box<dyn ChunkStream>,
}

/// The bytes of an object, as they arrive.
#[async_trait]
pub trait ChunkStream: Send {
    /// The next chunk, or `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError>;
}

/// The bytes of an object already in memory (a CloudWatch Logs batch), as one chunk.
pub struct OneChunk(Option<Bytes>);

impl OneChunk {
    /// A stream that yields `bytes` once.
    pub fn new(bytes: Bytes) -> Self {
        Self(Some(bytes))
    }
}

#[async_trait]
impl ChunkStream for OneChunk {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.0.take())
    }
}

/// Reading and writing objects: S3, an S3-compatible store, or a local folder.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Opens an object for streaming; `None` when it does not exist.
    async fn open(&self, object: &ObjectRef) -> Result<Option<ObjectBody>, StoreError>;

    /// Reads a small object whole, with its ETag; `None` when it does not exist.
    async fn get_small(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError>;

    /// Writes a whole object, subject to `condition`.
    async fn put(
        &self,
        object: &ObjectRef,
        body: Vec<u8>,
        content_type: &str,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError>;

    /// The keys in `prefix.bucket` that start with `prefix.key`, for finding the markers
    /// of every version of one log object (a handful, so they are returned at once).
    async fn list(&self, prefix: &ObjectRef) -> Result<Vec<String>, StoreError>;

    /// Deletes an object (no error when it is already gone).
    async fn delete(&self, object: &ObjectRef) -> Result<(), StoreError>;

    /// Deletes an object only while its ETag is still `etag` (`If-Match`, a conditional
    /// delete); `false` when it changed or is gone, and nothing was deleted. The lake's
    /// dirty markers rely on it: a write during a compaction keeps its partition dirty.
    async fn delete_if_match(&self, object: &ObjectRef, etag: &str) -> Result<bool, StoreError>;

    /// Copies `from` over `to` inside the store (CopyObject): `to` is replaced whole, so
    /// a reader sees the old object or the new one, never a mix.
    async fn copy(&self, from: &ObjectRef, to: &ObjectRef) -> Result<(), StoreError>;

    /// Sets one tag on an object (PutObjectTagging), replacing its tag set, so a
    /// lifecycle rule can tell the objects the lake already holds.
    async fn tag(&self, object: &ObjectRef, key: &str, value: &str) -> Result<(), StoreError>;

    /// Starts a multipart upload and returns its ID.
    async fn start_upload(
        &self,
        object: &ObjectRef,
        content_type: &str,
    ) -> Result<String, StoreError>;

    /// Uploads one part.
    async fn upload_part(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<UploadedPart, StoreError>;

    /// Completes an upload: the object appears, whole, only now.
    async fn complete_upload(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError>;

    /// Abandons an upload, freeing its parts.
    async fn abort_upload(&self, object: &ObjectRef, upload_id: &str) -> Result<(), StoreError>;
}

/// Where the function's small marks live (`MARKERS`): the idempotency markers and the
/// lake's dirty marks, in the output bucket through the [`ObjectStore`], or in the
/// detection table, where a mark's reads and writes cost a tenth of S3's requests
/// (README, "What it costs"). The protocols are the same on both: a version tag plays the
/// ETag's part in conditional writes and deletes.
#[async_trait]
pub trait MarkerStore: Send + Sync {
    /// The marker's body and version tag; `None` when it does not exist.
    async fn get_marker(
        &self,
        marker: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError>;

    /// Writes the marker subject to `condition` (on its version tag).
    async fn put_marker(
        &self,
        marker: &ObjectRef,
        body: Vec<u8>,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError>;

    /// The keys of every version's marker of one log object: `prefix.key` is the markers'
    /// shared prefix, ending in `@`. May include other keys that start with it.
    async fn marker_versions(&self, prefix: &ObjectRef) -> Result<Vec<String>, StoreError>;

    /// Deletes a marker (no error when it is already gone).
    async fn delete_marker(&self, marker: &ObjectRef) -> Result<(), StoreError>;

    /// Where the marker is, for the object's report and log lines.
    fn location(&self, marker: &ObjectRef) -> String;

    /// Writes a lake partition's dirty mark (`{STATE_PREFIX}lake/dirty/{partition}`),
    /// a new version on every write, so a compaction that read the previous one does not
    /// clear this one.
    async fn put_dirty_mark(&self, mark: &ObjectRef, body: Vec<u8>) -> Result<(), StoreError>;

    /// Every dirty mark under `prefix` (`{STATE_PREFIX}lake/dirty/`), with its body and
    /// version tag, in key order.
    async fn dirty_marks(&self, prefix: &ObjectRef) -> Result<Vec<DirtyMarkRead>, StoreError>;

    /// Deletes a dirty mark only while its version is still `version`; `false` when a
    /// write changed it (or it is gone) and nothing was deleted.
    async fn clear_dirty_mark(&self, mark: &ObjectRef, version: &str) -> Result<bool, StoreError>;
}

/// One dirty mark as read, for the compaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyMarkRead {
    /// Its key (`{STATE_PREFIX}lake/dirty/bucket=B/dt=D/hour=H`).
    pub key: String,
    /// Its body: when the partition was last written, and by which object.
    pub body: Vec<u8>,
    /// Its version tag (the ETag in S3); `None` when the store gave none, and it is then
    /// never cleared.
    pub version: Option<String>,
}

/// An object store keeps markers as small JSON objects, with their ETags for the
/// conditions: the output bucket's markers (`MARKERS=bucket`, and without a table).
#[async_trait]
impl<T: ObjectStore> MarkerStore for T {
    async fn get_marker(
        &self,
        marker: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        self.get_small(marker).await
    }

    async fn put_marker(
        &self,
        marker: &ObjectRef,
        body: Vec<u8>,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        self.put(marker, body, "application/json", condition).await
    }

    async fn marker_versions(&self, prefix: &ObjectRef) -> Result<Vec<String>, StoreError> {
        self.list(prefix).await
    }

    async fn delete_marker(&self, marker: &ObjectRef) -> Result<(), StoreError> {
        self.delete(marker).await
    }

    /// `s3://{bucket}/{key}`.
    fn location(&self, marker: &ObjectRef) -> String {
        marker.to_string()
    }

    async fn put_dirty_mark(&self, mark: &ObjectRef, body: Vec<u8>) -> Result<(), StoreError> {
        self.put(mark, body, "application/json", PutCondition::None)
            .await
            .map(|_| ())
    }

    /// One listing, then each mark read for its body and ETag; a mark deleted between
    /// the two is left out.
    async fn dirty_marks(&self, prefix: &ObjectRef) -> Result<Vec<DirtyMarkRead>, StoreError> {
        let mut keys = self.list(prefix).await?;
        keys.sort();
        let mut marks = Vec::with_capacity(keys.len());
        for key in keys {
            let mark = ObjectRef {
                bucket: prefix.bucket.clone(),
                key,
            };
            if let Some((body, version)) = self.get_small(&mark).await? {
                marks.push(DirtyMarkRead {
                    key: mark.key,
                    body,
                    version,
                });
            }
        }
        Ok(marks)
    }

    async fn clear_dirty_mark(&self, mark: &ObjectRef, version: &str) -> Result<bool, StoreError> {
        self.delete_if_match(mark, version).await
    }
}

/// Publishing failed; the message names the namespace or topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} to {target} failed: {message}")]
pub struct PublishError {
    /// The operation, such as `PutMetricData`.
    pub operation: &'static str,
    /// The namespace, topic or stream it was for.
    pub target: String,
    /// What went wrong.
    pub message: String,
}

/// Where metric datums go: CloudWatch's API, EMF log lines, or nowhere.
#[async_trait]
pub trait MetricsSink: Send + Sync {
    /// Publishes every datum, batching as the destination allows.
    async fn publish(&self, datums: &[crate::metrics::MetricDatum]) -> Result<(), PublishError>;
}

/// Where alerts are pushed to people: an SNS topic.
#[async_trait]
pub trait AlertNotifier: Send + Sync {
    /// Sends each alert once.
    async fn notify(&self, alerts: &[crate::alerts::Alert]) -> Result<(), PublishError>;
}

/// A [`MetricsSink`] that drops everything, for `METRICS_MODE=off` and tools that only
/// curate.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

#[async_trait]
impl MetricsSink for NoMetrics {
    async fn publish(&self, _datums: &[crate::metrics::MetricDatum]) -> Result<(), PublishError> {
        Ok(())
    }
}

/// Why a detection-state operation failed, in the terms the pipeline acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateErrorKind {
    /// The table (or local state file) does not exist.
    Missing,
    /// The store kept throttling after the retries.
    Throttled,
    /// Anything else (network, permissions, server errors).
    Other,
}

/// A failed detection-state operation, naming the operation and the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on {table} failed ({kind:?}): {message}")]
pub struct StateError {
    /// The operation, such as `TransactWriteItems`.
    pub operation: &'static str,
    /// The DynamoDB table or local state file.
    pub table: String,
    /// The kind of failure.
    pub kind: StateErrorKind,
    /// The store's own words.
    pub message: String,
}

/// Counts to add to one minute of one series (a subject or a whole bucket).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CountUpdate {
    /// The series key, from [`crate::alerts::shared`] (`c#…` or `b#…`).
    pub series: String,
    /// The minute (Unix seconds, a multiple of 60).
    pub minute: i64,
    /// 403 responses to add.
    pub forbidden: u64,
    /// All requests to add.
    pub total: u64,
}

/// The merged counts of one series for one minute, as every invocation added them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MinuteCounts {
    /// The minute (Unix seconds).
    pub minute: i64,
    /// 403 responses.
    pub forbidden: u64,
    /// All requests.
    pub total: u64,
}

/// A request to read one series over an inclusive range of minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountQuery {
    /// The series key.
    pub series: String,
    /// First minute (inclusive).
    pub from: i64,
    /// Last minute (inclusive).
    pub to: i64,
}

/// A firing episode an invocation wants to own: one per (type, bucket, subject) at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeClaim {
    /// The episode key (`e#…`), one per alert type, bucket and subject.
    pub episode: String,
    /// The alert ID this claim would give the episode.
    pub alert_id: String,
    /// Start of the first firing window (Unix seconds).
    pub first_start: i64,
    /// Start of the last firing window.
    pub last_start: i64,
    /// Firing windows whose starts are at most this many seconds apart are one episode.
    pub gap: i64,
    /// Who claims: the log object and its ETag.
    pub claimer: String,
    /// The 403s counted in the window, kept up to date on the episode.
    pub count: u64,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This invocation started the episode: it notifies.
    Claimed,
    /// The episode was claimed by this same log object earlier, and its notification was
    /// not recorded as sent: notify again (a retry after a failure between claim and SNS).
    Unsent {
        /// The episode's alert ID.
        alert_id: String,
    },
    /// Another log object owns the episode (or it was already notified): nobody is
    /// notified again; the episode's window and count were extended.
    Joined {
        /// The episode's alert ID.
        alert_id: String,
    },
}

/// Detection state shared by every invocation and keyed by event time: per-minute counts,
/// alert episodes and first sightings. DynamoDB in the function, a local file for
/// `bucketlog replay`.
#[async_trait]
pub trait DetectionState: Send + Sync {
    /// Adds `updates` once for `apply_id` (the log object and its ETag), even when a
    /// previous attempt failed halfway: each part that was applied before is skipped.
    /// Returns how many updates were applied now.
    async fn add_counts(&self, apply_id: &str, updates: &[CountUpdate]) -> Result<u64, StateError>;

    /// The merged counts of each query's series, minutes in order (absent minutes left
    /// out), one result per query.
    async fn read_counts(
        &self,
        queries: &[CountQuery],
    ) -> Result<Vec<Vec<MinuteCounts>>, StateError>;

    /// Claims an episode with a conditional write, or joins the one it overlaps.
    async fn claim_episode(&self, claim: &EpisodeClaim) -> Result<ClaimOutcome, StateError>;

    /// Records that the claimer's notification for `episode` went out.
    async fn mark_sent(&self, episode: &str) -> Result<(), StateError>;

    /// Records each key as seen by `claimer` and refreshes its expiry; `true` for the keys
    /// this claimer saw first (a retry of the same claimer gets `true` again).
    async fn first_sightings(
        &self,
        keys: &[String],
        claimer: &str,
    ) -> Result<Vec<bool>, StateError>;

    /// The event time learning started for `bucket`: the first `earliest` ever offered.
    async fn learning_start(&self, bucket: &str, earliest: i64) -> Result<i64, StateError>;
}
