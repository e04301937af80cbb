//! The function's work, over the ports: an event in, each log object streamed through the
//! parser into partitioned outputs, an idempotency marker, and a report out.
//!
//! Nothing lost, nothing doubled:
//! - every line read becomes a curated record or a rejected one (see [`crate::curate`]);
//! - output keys derive from the log object only, so a retry overwrites;
//! - no output becomes visible before the whole object has been read: multipart uploads
//!   are completed only at the end, and aborted on any failure;
//! - a marker `{STATE_PREFIX}processed/{bucket}/{key}@{etag}` is created with
//!   `If-None-Match: *` once the outputs are complete. A duplicate event finds it and does
//!   nothing; of two concurrent duplicates, only the one that creates the marker reports
//!   the object as processed (and, once metrics and alerts exist, publishes them).
//! - a failure returns an error naming the bucket and key, so Lambda (or SQS) retries.
//!   A log object that vanished before it was read (NoSuchKey) is logged and skipped.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::config::Config;
use crate::curate::{CurationStats, Curator};
use crate::event::{CreatedObject, EventError, Invocation, Notice, ObjectRef, parse_invocation};
use crate::input::{DecodeError, ObjectDecoder};
use crate::logkey::parse_log_key;
use crate::outputs::{OutputChunk, OutputPlan, OutputRouter, partition_safe};
use crate::ports::{ObjectStore, PutCondition, PutOutcome, StoreError, UploadedPart};

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
    /// Milliseconds spent.
    pub duration_ms: u64,
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
}

impl<S: ObjectStore> Pipeline<S> {
    /// A pipeline over `store` with a validated configuration.
    pub fn new(store: S, config: Config) -> Self {
        Self { store, config }
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
        if self.store.exists(&marker).await? {
            info!(object = %location, etag = %etag, "duplicate event: already processed");
            return Ok(ObjectOutcome::Duplicate {
                object: location,
                etag,
            });
        }

        let plan = self.output_plan(object);
        let mut uploads = Uploads::new(
            &self.store,
            output_bucket,
            config.output_compression.content_type(),
        );
        let streamed = self.stream(object, body, plan, &mut uploads).await;
        let stats = match streamed {
            Ok(stats) => stats,
            Err(e) => {
                uploads.abort_all().await;
                return Err(e);
            }
        };
        if let Err(e) = uploads.complete_all().await {
            uploads.abort_all().await;
            return Err(e.into());
        }

        let report = ObjectReport {
            object: location.clone(),
            etag: etag.clone(),
            lines: stats.0.lines,
            records: stats.0.records,
            rejected: stats.0.rejected,
            blank: stats.0.blank,
            bytes: stats.1,
            outputs: uploads.written.clone(),
            marker: marker.to_string(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let marker_body = serde_json::to_vec(&report).unwrap_or_default();
        match self
            .store
            .put(
                &marker,
                marker_body,
                "application/json",
                PutCondition::IfAbsent,
            )
            .await?
        {
            PutOutcome::PreconditionFailed => {
                info!(object = %location, etag = %etag, "a concurrent invocation processed this object first");
                Ok(ObjectOutcome::Duplicate {
                    object: location,
                    etag,
                })
            }
            PutOutcome::Written { .. } => {
                info!(
                    object = %location,
                    records = report.records,
                    rejected = report.rejected,
                    blank = report.blank,
                    bytes = report.bytes,
                    outputs = report.outputs.len(),
                    duration_ms = report.duration_ms,
                    "log object processed"
                );
                Ok(ObjectOutcome::Processed(report))
            }
        }
    }

    /// Output names for one log object (see [`crate::outputs`]).
    fn output_plan(&self, object: &ObjectRef) -> OutputPlan {
        let config = &self.config;
        let key = parse_log_key(&object.key);
        let source_bucket = key
            .source
            .map(|s| s.bucket.to_string())
            .unwrap_or_else(|| object.bucket.clone());
        let (dt, hour) = key
            .delivered
            .clone()
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let suffix = config.output_compression.suffix();
        OutputPlan {
            curated_prefix: config.curated_prefix.clone(),
            rejected_key: format!(
                "{}bucket={}/dt={dt}/hour={hour}/{}{suffix}",
                config.rejected_prefix,
                partition_safe(&source_bucket),
                key.name
            ),
            name: key.name.to_string(),
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
    ) -> Result<(CurationStats, u64), ProcessError> {
        let curator = Curator::new(OutputRouter::new(plan), Some(object.to_string()));
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
                        let router = curator.sink_mut();
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
        let chunks = curator.into_sink().finish().map_err(encode_error)?;
        for chunk in chunks {
            uploads.accept(chunk, true).await?;
        }
        Ok((stats, summary.input_bytes))
    }
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
