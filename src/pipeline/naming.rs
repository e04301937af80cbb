//! Where one log object's outputs go: the partition and file name its rejected lines and
//! alert documents use, and the plan the output router follows. Every name derives from
//! the log object alone, so a retry overwrites rather than duplicates, and every name is
//! unique to the log object (its file name and a hash of its full key, see
//! [`crate::logkey::output_name`]), so two objects never share an output.

use tracing::warn;

use super::Pipeline;
use crate::event::ObjectRef;
use crate::logkey::{MAX_KEY_BYTES, output_name, parse_log_key};
use crate::outputs::{MAX_PARTITION_PATH, OutputPlan, partition_safe};
use crate::ports::ObjectStore;

/// The longest suffix an output key ends with (`OUTPUT_COMPRESSION=zstd`'s), so a name
/// fits S3's key limit whatever the compression.
const LONGEST_SUFFIX: &str = ".ndjson.zst";

impl<S: ObjectStore> Pipeline<S> {
    /// `{ALERTS_PREFIX}bucket=…/dt=…/hour=…/{name}.ndjson`: one object per log object,
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
            self.output_name(object, key.name),
        )
    }

    /// The log object's file name and key hash, cut so that the longest output key stays
    /// within S3's 1,024-byte limit; a cut is logged.
    fn output_name(&self, object: &ObjectRef, name: &str) -> String {
        let config = &self.config;
        let longest_prefix = [
            &config.curated_prefix,
            &config.rejected_prefix,
            &config.alerts_prefix,
        ]
        .iter()
        .map(|p| p.len())
        .max()
        .unwrap_or(0);
        let room = MAX_KEY_BYTES
            .saturating_sub(longest_prefix + MAX_PARTITION_PATH + LONGEST_SUFFIX.len());
        let location = object.to_string();
        let (output, cut) = output_name(&location, name, room);
        if cut {
            warn!(
                object = %location,
                name = %output,
                "log object's name too long for S3 output keys: output names shortened (a hash of the full key keeps them unique)"
            );
        }
        output
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
