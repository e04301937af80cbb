//! Where one unit of work's records come from: the small abstraction every source feeds
//! into the one curation path (`Pipeline::process_source`). A source says what the work
//! is called (the [`ObjectRef`] its outputs, marker and lineage derive from), opens its
//! bytes, and names its version (the ETag, or a content hash).
//!
//! - [`RecordSource::Object`]: a log object in a bucket, announced by an S3 event (or a
//!   Batch Operations task). Only objects under `RAW_PREFIX`, and not the function's own
//!   output, are read.
//! - [`RecordSource::Batch`]: a CloudWatch Logs subscription batch, carried in the event
//!   itself. It has no log bucket, so its outputs go to `OUTPUT_BUCKET`.

use bytes::Bytes;
use tracing::{info, warn};

use super::{ObjectOutcome, Pipeline, ProcessError};
use crate::cwl::LogBatch;
use crate::event::{CreatedObject, ObjectRef};
use crate::ports::{ObjectBody, ObjectStore, OneChunk};

/// One unit of work for the curation path.
#[derive(Debug, Clone, Copy)]
pub enum RecordSource<'e> {
    /// A log object in a bucket.
    Object(&'e CreatedObject),
    /// A CloudWatch Logs batch, to be written to `output_bucket`.
    Batch {
        /// The batch.
        batch: &'e LogBatch,
        /// Where its outputs and marker go (`OUTPUT_BUCKET`).
        output_bucket: &'e str,
    },
}

/// A source, opened: what the curation path needs to read and name it.
pub(super) struct Opened {
    /// The name outputs, marker and lineage derive from.
    pub(super) object: ObjectRef,
    /// Its bytes.
    pub(super) body: ObjectBody,
    /// Its version: the ETag, or the batch's content hash.
    pub(super) etag: String,
    /// Where outputs go.
    pub(super) output_bucket: String,
}

impl<S: ObjectStore> Pipeline<S> {
    /// Opens a source; `Err(outcome)` when there is nothing to read (not a raw log
    /// object, or gone).
    pub(super) async fn open_source(
        &self,
        source: RecordSource<'_>,
    ) -> Result<Result<Opened, ObjectOutcome>, ProcessError> {
        match source {
            RecordSource::Object(created) => self.open_object(created).await,
            RecordSource::Batch {
                batch,
                output_bucket,
            } => Ok(Ok(Opened {
                object: batch.object_ref(output_bucket),
                body: ObjectBody {
                    etag: None,
                    size: None,
                    chunks: Box::new(OneChunk::new(Bytes::from(batch.body()))),
                },
                etag: batch.content_tag(),
                output_bucket: output_bucket.to_string(),
            })),
        }
    }

    async fn open_object(
        &self,
        created: &CreatedObject,
    ) -> Result<Result<Opened, ObjectOutcome>, ProcessError> {
        let object = &created.object;
        if let Some(skipped) = self.skip(object) {
            return Ok(Err(skipped));
        }
        let Some(body) = self.store.open(object).await? else {
            warn!(object = %object, "log object is gone (NoSuchKey): skipped");
            return Ok(Err(ObjectOutcome::Missing {
                object: object.to_string(),
            }));
        };
        let etag = body
            .etag
            .clone()
            .or_else(|| created.etag.clone())
            .unwrap_or_else(|| "no-etag".into());
        let output_bucket = self
            .config
            .output_bucket
            .clone()
            .unwrap_or_else(|| object.bucket.clone());
        Ok(Ok(Opened {
            object: object.clone(),
            body,
            etag,
            output_bucket,
        }))
    }

    /// `Some` when the object is not a raw log this function should read: its own output,
    /// or anything outside `RAW_PREFIX`.
    fn skip(&self, object: &ObjectRef) -> Option<ObjectOutcome> {
        let config = &self.config;
        let location = object.to_string();
        if config.is_own_output(&object.key) {
            info!(object = %location, "skipped: the function's own output");
            return Some(ObjectOutcome::Skipped {
                object: location,
                reason: "under an output prefix".into(),
            });
        }
        if !object.key.starts_with(&config.raw_prefix) {
            info!(object = %location, raw_prefix = %config.raw_prefix, "skipped: outside RAW_PREFIX");
            return Some(ObjectOutcome::Skipped {
                object: location,
                reason: format!("not under RAW_PREFIX {:?}", config.raw_prefix),
            });
        }
        None
    }
}
