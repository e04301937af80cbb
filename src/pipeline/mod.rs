//! The function's work, over the ports: an event in, each log object streamed through the
//! parser into partitioned outputs, an idempotency marker, and a report out.
//!
//! Nothing lost, nothing doubled:
//! - every line read becomes a curated record or a rejected one (see [`crate::curate`]);
//! - output keys derive from the log object only, so a retry overwrites;
//! - no output becomes visible before the whole object has been read: multipart uploads
//!   are completed only at the end, and aborted on any failure;
//! - a marker `{STATE_PREFIX}processed/{bucket}/{key}@{etag}` (in the output bucket, or
//!   the detection table: `MARKERS`) is created with
//!   `If-None-Match: *` once the outputs (and the alert documents) are complete. A
//!   duplicate event finds it and does nothing; of two concurrent duplicates, only the one
//!   that creates the marker reports the object as processed and goes on;
//! - the side effects that cannot be overwritten (SNS notifications and alert log lines,
//!   metrics, the requester baseline) run only after the marker exists, in that order,
//!   after the outputs of an earlier version of the object are removed (`supersede`).
//!   The marker lists those still pending, carries a lease and names the attempt that
//!   holds it; see [`ledger`] for the lost responses, leases and retries;
//! - a failure returns an error naming the bucket and key, so Lambda (or SQS) retries.
//!   A log object that vanished before it was read (NoSuchKey) is logged and skipped.

//!
//! Where things are:
//! - [`Pipeline::process`] (here): an announced object becomes records, outputs, a marker
//!   and side effects, in that order;
//! - `backfill`: S3 Batch Operations tasks and `bucketlog backfill`, old alerts kept quiet;
//! - `source`: what a unit of work is (a log object, a CloudWatch Logs batch), opened;
//! - `stream`: bytes → decoder → curator → output chunks, counting for metrics and alerts;
//! - `uploads`: multipart uploads completed only at the end;
//! - `naming`: output keys, derived from the log object alone;
//! - [`ledger`]: the marker, its lease and the pending steps: what runs once;
//! - `effects`: the side effects themselves (alerts, metrics, baseline);
//! - `baselines`: the requester baseline read and conditional merge;
//! - `supersede`: removing what an earlier version of the object left behind.

mod backfill;
mod baselines;
mod compaction;
mod detection;
mod effects;
pub mod ledger;
mod naming;
mod source;
mod stream;
mod supersede;
mod uploads;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::config::Config;
use crate::cwl::LogsMessage;
use crate::event::{CreatedObject, EventError, Invocation, Notice, ObjectRef, parse_invocation};
use crate::input::DecodeError;
use crate::ports::{
    AlertNotifier, DetectionState, MarkerStore, MetricsSink, NoMetrics, ObjectStore, PublishError,
    StateError, StoreError,
};

pub use backfill::failure_code;
use effects::SideEffects;
use ledger::Attempt;
pub use ledger::{MarkerStatus, Step};
pub use source::RecordSource;
use uploads::Uploads;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Reading or writing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object's bytes could not be decoded (corrupt gzip).
    #[error("cannot decode {object}: {source}")]
    Decode {
        /// The log object.
        object: ObjectRef,
        /// What went wrong.
        source: DecodeError,
    },
    /// Encoding output failed.
    #[error("cannot encode output for {object}: {source}")]
    Encode {
        /// The log object.
        object: ObjectRef,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Publishing metrics or alerts failed.
    #[error("publishing for {object} failed: {source}")]
    Publish {
        /// The log object.
        object: ObjectRef,
        /// What went wrong.
        source: PublishError,
    },
    /// The shared detection state failed (DynamoDB or the local state file).
    #[error("detection state for {object}: {source}")]
    State {
        /// The log object.
        object: ObjectRef,
        /// What went wrong.
        source: StateError,
    },
    /// Side effects are pending under another invocation's live lease (boxed: it is
    /// large and rare).
    #[error(transparent)]
    LeaseHeld(Box<ledger::LeaseHeld>),
    /// The baseline kept changing under us.
    #[error("the baseline {baseline} changed {attempts} times while {object} was merged into it")]
    BaselineContention {
        /// The log object.
        object: ObjectRef,
        /// The baseline object.
        baseline: ObjectRef,
        /// How many conditional writes were refused.
        attempts: u32,
    },
}

/// A whole invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The payload is not an event this function understands.
    #[error(transparent)]
    Event(#[from] EventError),
    /// A CloudWatch Logs batch arrived but `OUTPUT_BUCKET` is not set: such a batch
    /// has no log bucket to write next to.
    #[error(
        "a CloudWatch Logs batch from {log_group} / {log_stream} has no log bucket to write to: set OUTPUT_BUCKET"
    )]
    NoOutputBucket {
        /// The batch's log group.
        log_group: String,
        /// The batch's log stream.
        log_stream: String,
    },
    /// A scheduled compaction needs `OUTPUT_BUCKET`: the bucket whose curated records
    /// become the lake.
    #[error("a scheduled compaction has no bucket to compact: set OUTPUT_BUCKET")]
    NoLakeBucket,
    /// Listing the dirty partitions failed.
    #[error("compaction could not list its dirty partitions: {0}")]
    CompactionList(StoreError),
    /// Some partitions could not be compacted (they stay dirty for the next run).
    #[error("{failed} lake partitions failed to compact; first: {first}")]
    Compaction {
        /// How many failed.
        failed: usize,
        /// The first partition and its error.
        first: String,
    },
    /// At least one object failed (direct, SNS and EventBridge invocations).
    #[error("{failed} of {total} log objects failed; first: {first}")]
    Objects {
        /// How many failed.
        failed: usize,
        /// How many there were.
        total: usize,
        /// The first failure.
        first: ProcessError,
    },
}

/// What happened to one announced object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ObjectOutcome {
    /// Processed now.
    Processed(ObjectReport),
    /// Already processed (its marker exists): nothing done.
    Duplicate {
        /// `s3://bucket/key`.
        object: String,
        /// The version that was processed before.
        etag: String,
    },
    /// Gone before it could be read.
    Missing {
        /// `s3://bucket/key`.
        object: String,
    },
    /// Not a raw log object, such as the function's own output.
    Skipped {
        /// `s3://bucket/key`.
        object: String,
        /// Why.
        reason: String,
    },
}

/// The summary of one processed log object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectReport {
    /// `s3://bucket/key` of the log object.
    pub object: String,
    /// Its ETag.
    pub etag: String,
    /// Lines read (including blank ones).
    pub lines: u64,
    /// Curated records written.
    pub records: u64,
    /// Rejected lines written.
    pub rejected: u64,
    /// Blank lines skipped.
    pub blank: u64,
    /// Bytes read (compressed size).
    pub bytes: u64,
    /// The output objects written.
    pub outputs: Vec<OutputObject>,
    /// The marker that records this object as processed: `s3://…`, or
    /// `dynamodb://{table}/{bucket}/{key}` with the markers in the table. Empty, and left
    /// out, in the marker's own body.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub marker: String,
    /// Alerts raised.
    pub alerts: u64,
    /// Metric datums published.
    pub metric_datums: u64,
    /// Milliseconds spent.
    pub duration_ms: u64,
}

/// Seconds since the Unix epoch, from the system clock.
pub fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One output object and how many records (or rejected lines) it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputObject {
    /// `s3://bucket/key`.
    pub object: String,
    /// Lines in it.
    pub records: u64,
}

/// What the runtime tells one invocation: its request ID and deadline. They make the
/// marker's attempt ID and its lease; the command line has neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationContext {
    /// The Lambda request ID.
    pub request_id: Option<String>,
    /// When Lambda stops the invocation, in milliseconds since the Unix epoch.
    pub deadline_ms: Option<u64>,
    /// A backfill (S3 Batch Operations, `bucketlog backfill`): old alerts are recorded,
    /// not sent (see `ALERT_BACKFILL_MAX_AGE_HOURS`).
    pub backfill: bool,
}

/// The handler's logic, generic over the object store.
pub struct Pipeline<S> {
    store: S,
    config: Config,
    metrics: Box<dyn MetricsSink>,
    notifier: Option<Box<dyn AlertNotifier>>,
    detection: Option<Box<dyn DetectionState>>,
    /// Where markers live when not in `store` (`MARKERS`, see [`MarkerStore`]).
    markers: Option<Box<dyn MarkerStore>>,
    clock: fn() -> i64,
    batch_output_bucket: Option<String>,
    /// The client databases every record's address is looked up in.
    lookups: std::sync::Arc<crate::geo::ClientLookups>,
    /// Baselines this warm function last read or wrote, parsed
    /// ([`crate::alerts::baseline_cache`]).
    baseline_cache: std::sync::Mutex<crate::alerts::baseline_cache::BaselineCache>,
}

impl<S: ObjectStore> Pipeline<S> {
    /// A pipeline over `store` with a validated configuration; metrics go nowhere and
    /// alerts to no topic until [`Pipeline::with_metrics`] and [`Pipeline::with_notifier`].
    pub fn new(store: S, config: Config) -> Self {
        Self {
            store,
            config,
            metrics: Box::new(NoMetrics),
            notifier: None,
            detection: None,
            markers: None,
            clock: system_now,
            batch_output_bucket: None,
            lookups: std::sync::Arc::new(crate::geo::ClientLookups::none()),
            baseline_cache: std::sync::Mutex::default(),
        }
    }

    /// Looks every record's and every alert's address up in these databases
    /// (`GEOIP_DB`, `ASN_DB`, opened at start-up).
    pub fn with_client_lookups(mut self, lookups: crate::geo::ClientLookups) -> Self {
        self.lookups = std::sync::Arc::new(lookups);
        self
    }

    /// Publishes metrics to `sink`.
    pub fn with_metrics(mut self, sink: Box<dyn MetricsSink>) -> Self {
        self.metrics = sink;
        self
    }

    /// Sends alerts to `notifier` (an SNS topic) as well as to S3, the log and metrics.
    pub fn with_notifier(mut self, notifier: Box<dyn AlertNotifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Detects 403 spikes and newcomers on `state`, shared by every invocation, instead of
    /// within each log object (see `detection`): counts are added once per object, windows
    /// evaluated on the merged counts, and each alert claimed and notified once.
    pub fn with_detection_state(mut self, state: Box<dyn DetectionState>) -> Self {
        self.detection = Some(state);
        self
    }

    /// Keeps the idempotency markers in `markers` (the detection table) instead of the
    /// output bucket: same protocol, cheaper requests.
    pub fn with_marker_store(mut self, markers: Box<dyn MarkerStore>) -> Self {
        self.markers = Some(markers);
        self
    }

    /// Uses `clock` (Unix seconds) for "now": delivery delay, the two-week metric limit
    /// and leases. Tests pass a fixed clock.
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// Writes CloudWatch Logs batches to `bucket` when `OUTPUT_BUCKET` is not set. Only
    /// the command line's local replay uses this (its folder store has no account to
    /// misplace outputs in); the function itself requires `OUTPUT_BUCKET` for batches.
    pub fn with_batch_output_bucket(mut self, bucket: impl Into<String>) -> Self {
        self.batch_output_bucket = Some(bucket.into());
        self
    }

    /// The object store, for listing what a backfill covers.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one invocation payload and returns the response to send back: a summary
    /// for direct invocations, `{"batchItemFailures": [...]}` for SQS batches.
    pub async fn handle(&self, payload: &Value) -> Result<Value, HandlerError> {
        self.handle_in(payload, &InvocationContext::default()).await
    }

    /// [`Pipeline::handle`] within a Lambda invocation, whose request ID and deadline
    /// the markers' leases follow.
    pub async fn handle_in(
        &self,
        payload: &Value,
        context: &InvocationContext,
    ) -> Result<Value, HandlerError> {
        match parse_invocation(payload)? {
            Invocation::Direct(notices) => {
                let (outcomes, failures) = self.handle_notices(&notices, context).await;
                if let Some((first, failed)) = failures {
                    return Err(HandlerError::Objects {
                        failed,
                        total: notices.len(),
                        first,
                    });
                }
                let objects = serde_json::to_value(&outcomes).unwrap_or_default();
                Ok(serde_json::json!({ "objects": objects }))
            }
            Invocation::Logs(message) => self.handle_logs(message, context).await,
            Invocation::BatchOperations(job) => Ok(self.handle_batch_job(&job, context).await),
            Invocation::Compact => self.handle_compaction(context).await,
            Invocation::Sqs(items) => {
                let mut failed_ids = Vec::new();
                let mut outcomes = Vec::new();
                for item in items {
                    let failed = match &item.notices {
                        Ok(notices) => {
                            let (done, failures) = self.handle_notices(notices, context).await;
                            outcomes.extend(done);
                            failures.is_some()
                        }
                        Err(e) => {
                            warn!(message_id = %item.message_id, error = %e, "unreadable SQS message");
                            true
                        }
                    };
                    if failed {
                        failed_ids.push(item.message_id);
                    }
                }
                // Built by hand rather than serialised, so no failure can be dropped on
                // the way out: a message missing here would never be retried.
                let failures: Vec<Value> = failed_ids
                    .into_iter()
                    .map(|id| serde_json::json!({ "itemIdentifier": id }))
                    .collect();
                let objects = serde_json::to_value(&outcomes).unwrap_or_default();
                Ok(serde_json::json!({ "batchItemFailures": failures, "objects": objects }))
            }
        }
    }

    /// A CloudWatch Logs subscription batch: a control message is ignored; a data
    /// message is one source, written to `OUTPUT_BUCKET`.
    async fn handle_logs(
        &self,
        message: LogsMessage,
        context: &InvocationContext,
    ) -> Result<Value, HandlerError> {
        let LogsMessage::Data(batch) = message else {
            info!("CloudWatch Logs control message ignored");
            return Ok(serde_json::json!({ "objects": [], "ignored": "CONTROL_MESSAGE" }));
        };
        let configured = self.config.output_bucket.as_deref();
        let Some(output_bucket) = configured.or(self.batch_output_bucket.as_deref()) else {
            return Err(HandlerError::NoOutputBucket {
                log_group: batch.log_group,
                log_stream: batch.log_stream,
            });
        };
        let source = RecordSource::Batch {
            batch: &batch,
            output_bucket,
        };
        match self.process_source(source, context).await {
            Ok(outcome) => {
                let objects = serde_json::to_value([outcome]).unwrap_or_default();
                Ok(serde_json::json!({ "objects": objects }))
            }
            Err(first) => Err(HandlerError::Objects {
                failed: 1,
                total: 1,
                first,
            }),
        }
    }

    /// Processes every notice, returning the outcomes and the first failure with the
    /// number of failures.
    async fn handle_notices(
        &self,
        notices: &[Notice],
        context: &InvocationContext,
    ) -> (Vec<ObjectOutcome>, Option<(ProcessError, usize)>) {
        let mut outcomes = Vec::new();
        let mut first_failure = None;
        let mut failed = 0;
        for notice in notices {
            match notice {
                Notice::Ignored { reason } => info!(reason = %reason, "event ignored"),
                Notice::Created(created) => match self.process(created, context).await {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(e) => {
                        warn!(error = %e, "log object failed");
                        failed += 1;
                        first_failure.get_or_insert(e);
                    }
                },
            }
        }
        (outcomes, first_failure.map(|e| (e, failed)))
    }

    /// Processes one announced log object (see [`Pipeline::process_source`]).
    pub async fn process(
        &self,
        created: &CreatedObject,
        context: &InvocationContext,
    ) -> Result<ObjectOutcome, ProcessError> {
        self.process_source(RecordSource::Object(created), context)
            .await
    }

    /// Processes one source: open it (skipping what is not a raw log), stream it into
    /// the outputs, find its alerts, create the marker, then run each side effect once.
    pub async fn process_source(
        &self,
        source: RecordSource<'_>,
        context: &InvocationContext,
    ) -> Result<ObjectOutcome, ProcessError> {
        let started = Instant::now();
        let opened = match self.open_source(source).await? {
            Ok(opened) => opened,
            Err(outcome) => return Ok(outcome),
        };
        let (object, etag, output_bucket) = (&opened.object, &opened.etag, &opened.output_bucket);
        let location = object.to_string();
        let marker = self.marker_ref(output_bucket, object, etag);
        let now = (self.clock)();
        let attempt = Attempt::new(context, now, self.config.lease_seconds);
        let duplicate = || ObjectOutcome::Duplicate {
            object: location.clone(),
            etag: etag.clone(),
        };
        let Some(claim) = self.read_claim(object, &marker, &attempt).await? else {
            return Ok(duplicate());
        };

        let mut uploads = Uploads::new(
            &self.store,
            output_bucket.clone(),
            self.config.output_compression.content_type(),
        );
        let streamed = match self.stream_into(object, opened.body, &mut uploads).await {
            Ok(streamed) => streamed,
            Err(e) => {
                uploads.abort_all().await;
                return Err(e);
            }
        };
        let written: Vec<&str> = uploads.written.iter().map(|o| o.object.as_str()).collect();
        crate::lake::mark_dirty(self.markers(), &self.config, &location, &written, now).await?;
        let (stats, bytes) = (streamed.stats, streamed.bytes);
        let mut effects = self
            .prepare_effects(object, output_bucket, streamed, etag, now)
            .await?;
        effects.notify_cutoff = context
            .backfill
            .then(|| self.config.alerts.backfill_notify_cutoff(now));

        let mut report = ObjectReport {
            object: location.clone(),
            etag: etag.clone(),
            lines: stats.lines,
            records: stats.records,
            rejected: stats.rejected,
            blank: stats.blank,
            bytes,
            outputs: uploads.written.clone(),
            // Set once the steps ran: the marker's own body does not store its location
            // (it is read from there), which keeps a table marker within one write unit.
            marker: String::new(),
            alerts: effects.alerts.len() as u64,
            metric_datums: effects.metrics.datum_count as u64,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let Some(owned) = self
            .create_marker(object, &marker, &report, claim, &attempt)
            .await?
        else {
            info!(object = %location, etag = %etag, "a concurrent invocation processed this object first");
            return Ok(duplicate());
        };
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.run_steps(object, &marker, &report, owned, &mut effects)
            .await?;
        report.marker = self.markers().location(&marker);
        info!(
            object = %location,
            records = report.records,
            rejected = report.rejected,
            blank = report.blank,
            bytes = report.bytes,
            outputs = report.outputs.len(),
            alerts = report.alerts,
            metric_datums = report.metric_datums,
            duration_ms = report.duration_ms,
            "log object processed"
        );
        Ok(ObjectOutcome::Processed(report))
    }

    /// Streams the object into its outputs and completes the uploads; the caller aborts
    /// them on failure.
    async fn stream_into(
        &self,
        object: &ObjectRef,
        body: crate::ports::ObjectBody,
        uploads: &mut Uploads<'_, S>,
    ) -> Result<stream::Streamed, ProcessError> {
        let plan = self.output_plan(object);
        let streamed = self.stream(object, body, plan, uploads).await?;
        uploads.complete_all().await?;
        Ok(streamed)
    }
}
