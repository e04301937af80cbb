//! A scheduled invocation: compact the lake's dirty partitions in `OUTPUT_BUCKET`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tracing::{error, info};

use super::{HandlerError, InvocationContext, Pipeline};
use crate::lake::Compactor;
use crate::ports::ObjectStore;

/// Time kept back from the invocation's deadline: no partition is started with less left,
/// so the one in progress can finish (its files are replaced or left as they were).
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(120);

impl<S: ObjectStore> Pipeline<S> {
    /// The lake's compactor for the curated records in `bucket`, over this pipeline's
    /// store and wherever it writes its dirty marks (the detection table with
    /// `MARKERS`), so the compaction clears the marks the processing writes.
    pub fn compactor(&self, bucket: impl Into<String>) -> Compactor<'_, S> {
        Compactor::new(&self.store, bucket, &self.config).with_marks(self.markers.as_deref())
    }

    /// Compacts every settled dirty partition, stopping before the deadline; fails
    /// (so the failure shows in the function's errors) when any partition failed.
    pub(super) async fn handle_compaction(
        &self,
        context: &InvocationContext,
    ) -> Result<Value, HandlerError> {
        let bucket = self
            .config
            .output_bucket
            .as_deref()
            .ok_or(HandlerError::NoLakeBucket)?;
        let deadline = context.deadline_ms.map(|ms| {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let left = Duration::from_millis(ms.saturating_sub(now_ms));
            Instant::now() + left.saturating_sub(DEADLINE_MARGIN)
        });
        let settle = self.config.lake.settle_minutes * 60;
        let report = self
            .compactor(bucket)
            .run((self.clock)(), settle, deadline)
            .await
            .map_err(HandlerError::CompactionList)?;
        info!(
            compacted = report.compacted.len(),
            settling = report.settling,
            deferred = report.deferred,
            failed = report.failed.len(),
            "lake compaction run"
        );
        if let Some((partition, e)) = report.failed.first() {
            error!(partition = %partition, error = %e, "lake compaction failed");
            return Err(HandlerError::Compaction {
                failed: report.failed.len(),
                first: format!("{partition}: {e}"),
            });
        }
        Ok(serde_json::json!({ "compaction": report }))
    }
}
