//! Backfills: S3 Batch Operations jobs (see [`crate::batch_ops`]) and the command line's
//! `bucketlog backfill` run existing log objects through the same curation path, marked
//! as a backfill so that old alerts are recorded but not sent
//! (`ALERT_BACKFILL_MAX_AGE_HOURS`). Markers make a re-run skip what was done.

use serde_json::Value;
use tracing::warn;

use super::{InvocationContext, ObjectOutcome, Pipeline, ProcessError};
use crate::batch_ops::{BatchJob, BatchTask, ResultCode, TaskResult};
use crate::event::{CreatedObject, ObjectRef};
use crate::ports::{ObjectStore, StoreErrorKind};

impl<S: ObjectStore> Pipeline<S> {
    /// Answers a Batch Operations invocation: every task is processed as a backfill
    /// ([`Pipeline::backfill_object`]) and answered on its own, so one failure never hides
    /// another task's result.
    pub(super) async fn handle_batch_job(
        &self,
        job: &BatchJob,
        context: &InvocationContext,
    ) -> Value {
        let mut results = Vec::with_capacity(job.tasks.len());
        for task in &job.tasks {
            results.push(self.run_task(task, context).await);
        }
        job.response(&results)
    }

    async fn run_task(&self, task: &BatchTask, context: &InvocationContext) -> TaskResult {
        let (code, summary) = match &task.object {
            Err(why) => (ResultCode::PermanentFailure, why.clone()),
            Ok(object) => match self.backfill_object(object, context).await {
                Ok(outcome) => task_outcome(&outcome),
                Err(e) => {
                    warn!(task_id = %task.task_id, error = %e, "Batch Operations task failed");
                    (failure_code(&e), e.to_string())
                }
            },
        };
        TaskResult {
            task_id: task.task_id.clone(),
            code,
            summary,
        }
    }

    /// Processes one existing log object as a backfill (`context.backfill` is set here).
    pub async fn backfill_object(
        &self,
        object: &ObjectRef,
        context: &InvocationContext,
    ) -> Result<ObjectOutcome, ProcessError> {
        let created = CreatedObject {
            object: object.clone(),
            etag: None,
            size: None,
            event_name: "Backfill".into(),
        };
        let context = InvocationContext {
            backfill: true,
            ..context.clone()
        };
        self.process(&created, &context).await
    }
}

/// A task's result from what processing its object did.
fn task_outcome(outcome: &ObjectOutcome) -> (ResultCode, String) {
    match outcome {
        ObjectOutcome::Processed(r) => (
            ResultCode::Succeeded,
            format!(
                "processed: {} records, {} rejected, {} alerts",
                r.records, r.rejected, r.alerts
            ),
        ),
        ObjectOutcome::Duplicate { etag, .. } => (
            ResultCode::Succeeded,
            format!("already processed (ETag {etag})"),
        ),
        ObjectOutcome::Skipped { reason, .. } => {
            (ResultCode::Succeeded, format!("skipped: {reason}"))
        }
        ObjectOutcome::Missing { .. } => (
            ResultCode::PermanentFailure,
            "NoSuchKey: the object is gone".into(),
        ),
    }
}

/// Whether Batch Operations should retry a failed task: yes for throttling, server
/// errors and anything that may pass (a held lease, a failed publish); no for corrupt
/// input and access denied, which a retry cannot change.
pub fn failure_code(error: &ProcessError) -> ResultCode {
    match error {
        ProcessError::Store(e) => match e.kind {
            StoreErrorKind::AccessDenied | StoreErrorKind::NotFound => ResultCode::PermanentFailure,
            StoreErrorKind::Throttled | StoreErrorKind::Unavailable | StoreErrorKind::Other => {
                ResultCode::TemporaryFailure
            }
        },
        ProcessError::Decode { .. } => ResultCode::PermanentFailure,
        ProcessError::Encode { .. }
        | ProcessError::Publish { .. }
        | ProcessError::State { .. }
        | ProcessError::LeaseHeld(_)
        | ProcessError::BaselineContention { .. } => ResultCode::TemporaryFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::DecodeError;
    use crate::ports::StoreError;

    fn object() -> ObjectRef {
        ObjectRef {
            bucket: "b".into(),
            key: "raw/k".into(),
        }
    }

    fn store(kind: StoreErrorKind) -> ProcessError {
        ProcessError::Store(StoreError {
            operation: "GetObject",
            object: object(),
            kind,
            message: "m".into(),
        })
    }

    #[test]
    fn throttling_and_server_errors_are_retried_corrupt_input_and_denials_are_not() {
        use ResultCode::*;
        assert_eq!(
            failure_code(&store(StoreErrorKind::Throttled)),
            TemporaryFailure
        );
        assert_eq!(
            failure_code(&store(StoreErrorKind::Unavailable)),
            TemporaryFailure
        );
        assert_eq!(
            failure_code(&store(StoreErrorKind::AccessDenied)),
            PermanentFailure
        );
        let corrupt = ProcessError::Decode {
            object: object(),
            source: DecodeError::CorruptGzip {
                offset: 10,
                source: std::io::Error::other("bad"),
            },
        };
        assert_eq!(failure_code(&corrupt), PermanentFailure);
    }

    #[test]
    fn a_gone_object_is_a_permanent_failure_and_a_done_one_succeeds() {
        let missing = ObjectOutcome::Missing {
            object: "s3://b/raw/k".into(),
        };
        assert_eq!(task_outcome(&missing).0, ResultCode::PermanentFailure);
        let duplicate = ObjectOutcome::Duplicate {
            object: "s3://b/raw/k".into(),
            etag: "e".into(),
        };
        assert_eq!(
            task_outcome(&duplicate),
            (ResultCode::Succeeded, "already processed (ETag e)".into())
        );
    }
}
