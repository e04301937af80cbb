//! Where one log object's outputs go: the partition and file name its rejected lines and
//! alert documents use, and the plan the output router follows. Every name derives from
//! the log object alone, so a retry overwrites rather than duplicates.

use super::Pipeline;
use crate::event::ObjectRef;
use crate::logkey::parse_log_key;
use crate::outputs::{OutputPlan, partition_safe};
use crate::ports::ObjectStore;

impl<S: ObjectStore> Pipeline<S> {
    /// `{ALERTS_PREFIX}bucket=…/dt=…/hour=…/{log name}.ndjson`: one object per log object,
    /// so a retry overwrites it.
    pub(super) fn alerts_key(&self, object: &ObjectRef) -> String {
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
    pub(super) fn output_plan(&self, object: &ObjectRef) -> OutputPlan {
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
}
