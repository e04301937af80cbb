//! The function's work, over the ports: an event in, each log object streamed through the
//! parser into partitioned outputs, an idempotency marker, and a report out.
//!
//! Nothing lost, nothing doubled:
//! - every line read becomes a curated record or a rejected one (see [`crate::curate`]);
//! - output keys derive from the log object only, so a retry overwrites;
//! - no output becomes visible before the whole object has been read: multipart uploads
//!   are completed only at the end, and aborted on any failure;
//! - a marker `{STATE_PREFIX}processed/{bucket}/{key}@{etag}` is created with
//!   `If-None-Match: *` once the outputs (and the alert documents) are complete. A
//!   duplicate event finds it and does nothing; of two concurrent duplicates, only the one
//!   that creates the marker reports the object as processed and goes on;
//! - the side effects that cannot be overwritten (SNS notifications and alert log lines,
//!   metrics, the requester baseline) run only after the marker exists, in that order.
//!   The marker lists those still pending and carries a lease. When they all succeed the
//!   marker is rewritten with nothing pending; when one fails, the marker keeps the failed
//!   and later steps pending, the lease is released, and the error goes back to Lambda,
//!   whose retry finds the marker and runs just those steps. An invocation that dies
//!   mid-way leaves its lease to expire ([`crate::config::DEFAULT_LEASE_SECONDS`]), after
//!   which a retry takes over; only then can a step that had finished be repeated;
//! - a failure returns an error naming the bucket and key, so Lambda (or SQS) retries.
//!   A log object that vanished before it was read (NoSuchKey) is logged and skipped.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use crate::alerts::baseline::Baseline;
use crate::alerts::detect::{BucketSightings, Detector};
use crate::alerts::{Alert, AlertSettings};
use crate::config::Config;
use crate::curate::{CurationSink, CurationStats, Curator, Rejected};
use crate::enrich::Enriched;
use crate::event::{CreatedObject, EventError, Invocation, Notice, ObjectRef, parse_invocation};
use crate::input::{DecodeError, ObjectDecoder};
use crate::logkey::parse_log_key;
use crate::metrics::{MetricsAggregator, alert_datums};
use crate::outputs::{OutputChunk, OutputPlan, OutputRouter, partition_safe};
use crate::ports::{
    AlertNotifier, MetricsSink, NoMetrics, ObjectStore, PublishError, PutCondition, PutOutcome,
    StoreError, UploadedPart,
};

/// Conditional baseline writes are retried this many times when another invocation wrote
/// the baseline in between.
const BASELINE_ATTEMPTS: u32 = 12;

/// Input is pushed to the decoder in slices of at most this many bytes, so that one slice
/// (even of highly compressed gzip) produces at most a part or two of output.
const PUSH_SLICE: usize = 64 * 1024;

/// Processing one log object failed; the message names the object.
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
    /// The marker that records this object as processed.
    pub marker: String,
    /// Alerts raised.
    pub alerts: u64,
    /// Metric datums published.
    pub metric_datums: u64,
    /// Milliseconds spent.
    pub duration_ms: u64,
}

/// The side effects run after the marker exists, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Alert log lines and SNS notifications.
    Notify,
    /// Metrics (CloudWatch API or EMF).
    Metrics,
    /// Merging the requesters and addresses seen into the baseline.
    Baseline,
}

const ALL_STEPS: [Step; 3] = [Step::Notify, Step::Metrics, Step::Baseline];

/// What a marker says about the side effects: those still to run, and until when the
/// invocation that wrote it owns them (Unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerStatus {
    /// Steps not yet done; markers from before side effects existed have none.
    #[serde(default)]
    pub pending: Vec<Step>,
    /// The lease: until then, another invocation leaves the pending steps alone.
    #[serde(default)]
    pub lease_until: i64,
}

#[derive(Serialize)]
struct MarkerBody<'a> {
    #[serde(flatten)]
    report: &'a ObjectReport,
    #[serde(flatten)]
    status: &'a MarkerStatus,
}

/// How this invocation came to own the object's side effects.
enum Claim {
    /// No marker yet: create it.
    New,
    /// A marker whose lease expired with steps pending: take it over.
    TakeOver { etag: String, pending: Vec<Step> },
}

/// The curation sink the pipeline uses: routes records to outputs and counts them for
/// metrics and alerts on the way.
struct ObservingSink {
    router: OutputRouter,
    metrics: MetricsAggregator,
    detector: Detector,
}

impl CurationSink for ObservingSink {
    fn curated(&mut self, record: &Enriched<'_>, json: &[u8]) {
        self.metrics.observe(&record.record);
        self.detector.observe(record);
        self.router.curated(record, json);
    }

    fn rejected(&mut self, rejected: &Rejected<'_>, json: &[u8]) {
        self.metrics.observe_rejected();
        self.router.rejected(rejected, json);
    }
}

/// What streaming one object produced.
struct Streamed {
    stats: CurationStats,
    bytes: u64,
    metrics: MetricsAggregator,
    detector: Detector,
}

/// A baseline as read from the store (a new one when there is none), with the condition
/// that writes it back only if nobody else wrote it meanwhile.
struct StoredBaseline {
    baseline: Baseline,
    condition: PutCondition,
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

/// The handler's logic, generic over the object store.
pub struct Pipeline<S> {
    store: S,
    config: Config,
    metrics: Box<dyn MetricsSink>,
    notifier: Option<Box<dyn AlertNotifier>>,
    clock: fn() -> i64,
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
            clock: system_now,
        }
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

    /// Uses `clock` (Unix seconds) for "now": delivery delay, the two-week metric limit
    /// and leases. Tests pass a fixed clock.
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one invocation payload and returns the response to send back: a summary
    /// for direct invocations, `{"batchItemFailures": [...]}` for SQS batches.
    pub async fn handle(&self, payload: &Value) -> Result<Value, HandlerError> {
        match parse_invocation(payload)? {
            Invocation::Direct(notices) => {
                let (outcomes, failures) = self.handle_notices(&notices).await;
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
            Invocation::Sqs(items) => {
                let mut failed_ids = Vec::new();
                let mut outcomes = Vec::new();
                for item in items {
                    let failed = match &item.notices {
                        Ok(notices) => {
                            let (done, failures) = self.handle_notices(notices).await;
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

    /// Processes every notice, returning the outcomes and the first failure with the
    /// number of failures.
    async fn handle_notices(
        &self,
        notices: &[Notice],
    ) -> (Vec<ObjectOutcome>, Option<(ProcessError, usize)>) {
        let mut outcomes = Vec::new();
        let mut first_failure = None;
        let mut failed = 0;
        for notice in notices {
            match notice {
                Notice::Ignored { reason } => info!(reason = %reason, "event ignored"),
                Notice::Created(created) => match self.process(created).await {
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

    /// Processes one announced log object.
    pub async fn process(&self, created: &CreatedObject) -> Result<ObjectOutcome, ProcessError> {
        let started = Instant::now();
        let object = &created.object;
        let config = &self.config;
        let location = object.to_string();
        if config.is_own_output(&object.key) {
            info!(object = %location, "skipped: the function's own output");
            return Ok(ObjectOutcome::Skipped {
                object: location,
                reason: "under an output prefix".into(),
            });
        }
        if !object.key.starts_with(&config.raw_prefix) {
            info!(object = %location, raw_prefix = %config.raw_prefix, "skipped: outside RAW_PREFIX");
            return Ok(ObjectOutcome::Skipped {
                object: location,
                reason: format!("not under RAW_PREFIX {:?}", config.raw_prefix),
            });
        }
        let Some(body) = self.store.open(object).await? else {
            warn!(object = %location, "log object is gone (NoSuchKey): skipped");
            return Ok(ObjectOutcome::Missing { object: location });
        };
        let etag = body
            .etag
            .clone()
            .or_else(|| created.etag.clone())
            .unwrap_or_else(|| "no-etag".into());
        let output_bucket = config
            .output_bucket
            .clone()
            .unwrap_or_else(|| object.bucket.clone());
        let marker = ObjectRef {
            bucket: output_bucket.clone(),
            key: format!(
                "{}processed/{}/{}@{}",
                config.state_prefix, object.bucket, object.key, etag
            ),
        };
        let now = (self.clock)();
        let claim = match self.store.get_small(&marker).await? {
            None => Claim::New,
            Some((body, marker_etag)) => {
                let status: MarkerStatus = serde_json::from_slice(&body).unwrap_or_else(|e| {
                    warn!(marker = %marker, error = %e, "unreadable marker: treated as done");
                    MarkerStatus::default()
                });
                match marker_etag {
                    Some(marker_etag)
                        if !status.pending.is_empty() && status.lease_until <= now =>
                    {
                        info!(object = %location, pending = ?status.pending, "taking over side effects left pending");
                        Claim::TakeOver {
                            etag: marker_etag,
                            pending: status.pending,
                        }
                    }
                    _ => {
                        info!(object = %location, etag = %etag, pending = ?status.pending, "duplicate event: already processed");
                        return Ok(ObjectOutcome::Duplicate {
                            object: location,
                            etag,
                        });
                    }
                }
            }
        };

        let plan = self.output_plan(object);
        let mut uploads = Uploads::new(
            &self.store,
            output_bucket.clone(),
            config.output_compression.content_type(),
        );
        let streamed = match self.stream(object, body, plan, &mut uploads).await {
            Ok(streamed) => streamed,
            Err(e) => {
                uploads.abort_all().await;
                return Err(e);
            }
        };
        if let Err(e) = uploads.complete_all().await {
            uploads.abort_all().await;
            return Err(e.into());
        }

        // Alerts: those needing no state, then new subjects against each baseline.
        let findings = streamed.detector.finish();
        let mut alerts = findings.alerts;
        let mut baselines = Vec::new();
        for sightings in &findings.sightings {
            let stored = self.read_baseline(&output_bucket, sightings).await?;
            alerts.extend(
                stored
                    .baseline
                    .new_subject_alerts(sightings, &config.alerts, &location),
            );
            baselines.push(stored);
        }
        if findings.untracked_records > 0 {
            warn!(object = %location, records = findings.untracked_records, "records from too many source buckets were not checked for alerts");
        }
        if !alerts.is_empty() {
            let key = self.alerts_key(object);
            let mut body = Vec::new();
            for alert in &alerts {
                body.extend(serde_json::to_vec(alert).unwrap_or_default());
                body.push(b'\n');
            }
            let alerts_object = ObjectRef {
                bucket: output_bucket.clone(),
                key,
            };
            self.store
                .put(
                    &alerts_object,
                    body,
                    "application/x-ndjson",
                    PutCondition::None,
                )
                .await?;
        }

        let mut datums = streamed.metrics.datums(&object.bucket, now);
        if datums.skipped_old_minutes > 0 {
            warn!(object = %location, minutes = datums.skipped_old_minutes, "metrics older than two weeks skipped: CloudWatch would refuse them");
        }
        if datums.dropped_records > 0 {
            warn!(object = %location, records = datums.dropped_records, "records beyond the metric series limit were not counted");
        }
        datums.datums.extend(alert_datums(
            alerts.iter().map(|a| {
                (
                    a.bucket.as_str(),
                    a.alert_type.as_str(),
                    a.window_start_unix,
                )
            }),
            now,
        ));

        let mut report = ObjectReport {
            object: location.clone(),
            etag: etag.clone(),
            lines: streamed.stats.lines,
            records: streamed.stats.records,
            rejected: streamed.stats.rejected,
            blank: streamed.stats.blank,
            bytes: streamed.bytes,
            outputs: uploads.written.clone(),
            marker: marker.to_string(),
            alerts: alerts.len() as u64,
            metric_datums: datums.datums.len() as u64,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let (condition, pending) = match claim {
            Claim::New => (PutCondition::IfAbsent, ALL_STEPS.to_vec()),
            Claim::TakeOver { etag, pending } => (PutCondition::IfMatch(etag), pending),
        };
        let mut status = MarkerStatus {
            pending,
            lease_until: now + config.lease_seconds,
        };
        let marker_etag = match self
            .write_marker(&marker, &report, &status, condition)
            .await?
        {
            Some(etag) => etag,
            None => {
                info!(object = %location, etag = %etag, "a concurrent invocation processed this object first");
                return Ok(ObjectOutcome::Duplicate {
                    object: location,
                    etag,
                });
            }
        };

        // Side effects, each once.
        while let Some(&step) = status.pending.first() {
            let result = match step {
                Step::Notify => self.notify(object, &alerts).await,
                Step::Metrics => self
                    .metrics
                    .publish(&datums.datums)
                    .await
                    .map_err(|source| ProcessError::Publish {
                        object: object.clone(),
                        source,
                    }),
                Step::Baseline => {
                    self.update_baselines(
                        object,
                        &output_bucket,
                        &findings.sightings,
                        baselines.drain(..),
                    )
                    .await
                }
            };
            if let Err(e) = result {
                // Release the lease so that the retry runs the remaining steps at once.
                status.lease_until = 0;
                let released = self
                    .write_marker(
                        &marker,
                        &report,
                        &status,
                        PutCondition::IfMatch(marker_etag),
                    )
                    .await;
                if let Err(release_error) = released {
                    warn!(marker = %marker, error = %release_error, "could not release the lease; a retry waits for it to expire");
                }
                return Err(e);
            }
            status.pending.remove(0);
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        status.lease_until = 0;
        let done = self
            .write_marker(
                &marker,
                &report,
                &status,
                PutCondition::IfMatch(marker_etag),
            )
            .await;
        if !matches!(done, Ok(Some(_))) {
            warn!(marker = %marker, "could not mark the side effects done; only a duplicate arriving after the lease expires would repeat them");
        }
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

    /// Writes the marker; `None` when the condition failed (someone else owns it).
    async fn write_marker(
        &self,
        marker: &ObjectRef,
        report: &ObjectReport,
        status: &MarkerStatus,
        condition: PutCondition,
    ) -> Result<Option<String>, ProcessError> {
        let body = serde_json::to_vec(&MarkerBody { report, status }).unwrap_or_default();
        match self
            .store
            .put(marker, body, "application/json", condition)
            .await?
        {
            PutOutcome::PreconditionFailed => Ok(None),
            PutOutcome::Written { etag } => Ok(Some(etag.unwrap_or_default())),
        }
    }

    /// Logs each alert as a WARN line and sends them to the topic, if there is one.
    async fn notify(&self, object: &ObjectRef, alerts: &[Alert]) -> Result<(), ProcessError> {
        for alert in alerts {
            warn!(
                alert_id = %alert.alert_id,
                alert_type = alert.alert_type.as_str(),
                bucket = %alert.bucket,
                subject = alert.subject.as_ref().map(|s| s.value.as_str()),
                count = alert.count,
                window_start = %alert.window_start,
                window_end = %alert.window_end,
                source_object = %alert.source_object,
                "alert: {}", alert.summary
            );
        }
        match &self.notifier {
            Some(notifier) if !alerts.is_empty() => {
                notifier
                    .notify(alerts)
                    .await
                    .map_err(|source| ProcessError::Publish {
                        object: object.clone(),
                        source,
                    })
            }
            _ => Ok(()),
        }
    }

    fn baseline_ref(&self, output_bucket: &str, bucket: &str) -> ObjectRef {
        ObjectRef {
            bucket: output_bucket.to_string(),
            key: format!("{}baseline/{}.json", self.config.state_prefix, bucket),
        }
    }

    async fn read_baseline(
        &self,
        output_bucket: &str,
        sightings: &BucketSightings,
    ) -> Result<StoredBaseline, ProcessError> {
        let at = self.baseline_ref(output_bucket, &sightings.bucket);
        let fresh = || Baseline::new(&sightings.bucket, sightings.earliest);
        Ok(match self.store.get_small(&at).await? {
            None => StoredBaseline {
                baseline: fresh(),
                condition: PutCondition::IfAbsent,
            },
            Some((bytes, etag)) => StoredBaseline {
                baseline: Baseline::from_json(&bytes).unwrap_or_else(|e| {
                    warn!(baseline = %at, error = %e, "unreadable baseline: starting a new one (learning again)");
                    fresh()
                }),
                condition: etag.map_or(PutCondition::None, PutCondition::IfMatch),
            },
        })
    }

    /// Merges the sightings into each baseline with conditional writes, re-reading and
    /// re-merging when another invocation wrote in between.
    async fn update_baselines(
        &self,
        object: &ObjectRef,
        output_bucket: &str,
        sightings: &[BucketSightings],
        stored: impl Iterator<Item = StoredBaseline>,
    ) -> Result<(), ProcessError> {
        let settings: &AlertSettings = &self.config.alerts;
        for (sightings, mut current) in sightings.iter().zip(stored) {
            let at = self.baseline_ref(output_bucket, &sightings.bucket);
            let mut attempt = 0;
            loop {
                let StoredBaseline {
                    mut baseline,
                    condition,
                } = current;
                baseline.absorb(sightings, settings);
                match self
                    .store
                    .put(&at, baseline.to_json(), "application/json", condition)
                    .await?
                {
                    PutOutcome::Written { .. } => break,
                    PutOutcome::PreconditionFailed => {
                        attempt += 1;
                        if attempt >= BASELINE_ATTEMPTS {
                            return Err(ProcessError::BaselineContention {
                                object: object.clone(),
                                baseline: at,
                                attempts: attempt,
                            });
                        }
                        info!(baseline = %at, attempt, "baseline changed meanwhile: merging again");
                        tokio::time::sleep(backoff(attempt)).await;
                        current = self.read_baseline(output_bucket, sightings).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `{ALERTS_PREFIX}bucket=…/dt=…/hour=…/{log name}.ndjson`: one object per log object,
    /// so a retry overwrites it.
    fn alerts_key(&self, object: &ObjectRef) -> String {
        let (partition, name) = self.partition_of(object);
        format!("{}{partition}{name}.ndjson", self.config.alerts_prefix)
    }

    /// The `bucket=…/dt=…/hour=…/` partition and the file name for one log object's outputs.
    fn partition_of(&self, object: &ObjectRef) -> (String, String) {
        let key = parse_log_key(&object.key);
        let source_bucket = key
            .source
            .map(|s| s.bucket.to_string())
            .unwrap_or_else(|| object.bucket.clone());
        let (dt, hour) = key
            .delivered
            .clone()
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        (
            format!(
                "bucket={}/dt={dt}/hour={hour}/",
                partition_safe(&source_bucket)
            ),
            key.name.to_string(),
        )
    }

    /// Output names for one log object (see [`crate::outputs`]).
    fn output_plan(&self, object: &ObjectRef) -> OutputPlan {
        let config = &self.config;
        let (partition, name) = self.partition_of(object);
        let suffix = config.output_compression.suffix();
        OutputPlan {
            curated_prefix: config.curated_prefix.clone(),
            rejected_key: format!("{}{partition}{name}{suffix}", config.rejected_prefix),
            name,
            compression: config.output_compression,
        }
    }

    /// Streams the object through the parser into uploads; returns the line counts and
    /// the number of bytes read.
    async fn stream(
        &self,
        object: &ObjectRef,
        mut body: crate::ports::ObjectBody,
        plan: OutputPlan,
        uploads: &mut Uploads<'_, S>,
    ) -> Result<Streamed, ProcessError> {
        let sink = ObservingSink {
            router: OutputRouter::new(plan),
            metrics: MetricsAggregator::default(),
            detector: Detector::new(self.config.alerts.clone(), object.to_string()),
        };
        let curator = Curator::new(sink, Some(object.to_string()));
        let mut decoder = ObjectDecoder::new(curator);
        let decode_error = |source| ProcessError::Decode {
            object: object.clone(),
            source,
        };
        let encode_error = |source| ProcessError::Encode {
            object: object.clone(),
            source,
        };
        while let Some(chunk) = body.chunks.next_chunk().await? {
            for slice in chunk.chunks(PUSH_SLICE) {
                decoder.push(slice).map_err(decode_error)?;
                let ready: Vec<OutputChunk> = match decoder.handler_mut() {
                    Some(curator) => {
                        let router = &mut curator.sink_mut().router;
                        if let Some(e) = router.take_error() {
                            return Err(encode_error(e));
                        }
                        router.take_ready().collect()
                    }
                    None => Vec::new(),
                };
                for chunk in ready {
                    uploads.accept(chunk, false).await?;
                }
            }
        }
        let (curator, summary) = decoder.finish().map_err(decode_error)?;
        let stats = curator.stats();
        let sink = curator.into_sink();
        let chunks = sink.router.finish().map_err(encode_error)?;
        for chunk in chunks {
            uploads.accept(chunk, true).await?;
        }
        Ok(Streamed {
            stats,
            bytes: summary.input_bytes,
            metrics: sink.metrics,
            detector: sink.detector,
        })
    }
}

/// A short, jittered pause before re-merging into a baseline someone else just wrote.
fn backoff(attempt: u32) -> Duration {
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 20);
    Duration::from_millis(u64::from(attempt.min(6)) * 25 + u64::from(jitter))
}

/// Tracks the uploads of one log object's outputs.
struct Uploads<'s, S> {
    store: &'s S,
    bucket: String,
    content_type: &'static str,
    open: Vec<OpenUpload>,
    /// Finished outputs.
    written: Vec<OutputObject>,
}

struct OpenUpload {
    object: ObjectRef,
    upload_id: String,
    parts: Vec<UploadedPart>,
    /// Record count once the last part is in; the upload is then ready to complete.
    finished_records: Option<u64>,
}

impl<'s, S: ObjectStore> Uploads<'s, S> {
    fn new(store: &'s S, bucket: String, content_type: &'static str) -> Self {
        Self {
            store,
            bucket,
            content_type,
            open: Vec::new(),
            written: Vec::new(),
        }
    }

    fn object(&self, key: String) -> ObjectRef {
        ObjectRef {
            bucket: self.bucket.clone(),
            key,
        }
    }

    async fn upload_index(&mut self, key: &str) -> Result<usize, StoreError> {
        if let Some(i) = self.open.iter().position(|u| u.object.key == key) {
            return Ok(i);
        }
        let object = self.object(key.to_string());
        let upload_id = self.store.start_upload(&object, self.content_type).await?;
        self.open.push(OpenUpload {
            object,
            upload_id,
            parts: Vec::new(),
            finished_records: None,
        });
        Ok(self.open.len() - 1)
    }

    async fn add_part(&mut self, i: usize, bytes: Vec<u8>) -> Result<(), StoreError> {
        let upload = &mut self.open[i];
        let number = upload.parts.len() as i32 + 1;
        let part = self
            .store
            .upload_part(&upload.object, &upload.upload_id, number, bytes)
            .await?;
        upload.parts.push(part);
        Ok(())
    }

    /// Takes one chunk. `at_end` says the whole input has been read, so a small output
    /// can be written with one PUT instead of a multipart upload.
    async fn accept(&mut self, chunk: OutputChunk, at_end: bool) -> Result<(), StoreError> {
        match chunk {
            OutputChunk::Part { key, bytes } => {
                let i = self.upload_index(&key).await?;
                self.add_part(i, bytes).await
            }
            OutputChunk::Last {
                key,
                bytes,
                records,
            } => {
                let started = self.open.iter().any(|u| u.object.key == key);
                if at_end && !started {
                    let object = self.object(key);
                    self.store
                        .put(&object, bytes, self.content_type, PutCondition::None)
                        .await?;
                    self.written.push(OutputObject {
                        object: object.to_string(),
                        records,
                    });
                    return Ok(());
                }
                // Mid-stream (an evicted partition) or already multipart: upload the rest
                // as the last part, and complete only once the whole input is read.
                let i = self.upload_index(&key).await?;
                if !bytes.is_empty() || self.open[i].parts.is_empty() {
                    self.add_part(i, bytes).await?;
                }
                self.open[i].finished_records = Some(records);
                Ok(())
            }
        }
    }

    async fn complete_all(&mut self) -> Result<(), StoreError> {
        while let Some(upload) = self.open.first() {
            let records = upload.finished_records.unwrap_or(0);
            self.store
                .complete_upload(&upload.object, &upload.upload_id, upload.parts.clone())
                .await?;
            let done = self.open.remove(0);
            self.written.push(OutputObject {
                object: done.object.to_string(),
                records,
            });
        }
        Ok(())
    }

    async fn abort_all(&mut self) {
        for upload in self.open.drain(..) {
            if let Err(e) = self
                .store
                .abort_upload(&upload.object, &upload.upload_id)
                .await
            {
                warn!(error = %e, "could not abort an upload; the bucket's lifecycle rule will");
            }
        }
    }
}
