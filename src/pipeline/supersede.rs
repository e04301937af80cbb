//! Removing what an earlier version of a log object left behind.
//!
//! A log object overwritten under the same key has a new ETag, so it is processed again
//! and its outputs overwrite those of the same names. Partitions only the earlier version
//! had would keep its records, so once the new marker exists (the first [`Step`]), the
//! earlier versions' markers are found by listing `{STATE_PREFIX}processed/{bucket}/{key}@`
//! (ListObjectsV2, or one Query when markers live in the detection table), each one's
//! `outputs` that the new version did not write are deleted, and then that marker itself.
//! Only keys under `CURATED_PREFIX` and `REJECTED_PREFIX` are ever deleted, whatever a
//! marker says.
//!
//! What a reader sees in between: from the first completed upload of the new version until
//! this step ends, partitions both versions wrote hold the new records, partitions only the
//! old one wrote still hold the old ones; no object is ever partly written. If the run fails
//! before its marker exists (say the second of several uploads fails to complete), the
//! outputs completed so far stay visible with no marker; the retry writes the same keys
//! again, so it converges on exactly the new version's records.
//!
//! [`Step`]: super::ledger::Step

use std::collections::HashSet;

use serde::Deserialize;
use tracing::{info, warn};

use super::{ObjectReport, Pipeline, ProcessError};
use crate::event::ObjectRef;
use crate::ports::ObjectStore;

/// The part of an earlier marker this step reads.
#[derive(Deserialize)]
struct EarlierMarker {
    #[serde(default)]
    object: String,
    #[serde(default)]
    outputs: Vec<EarlierOutput>,
}

#[derive(Deserialize)]
struct EarlierOutput {
    object: String,
}

impl<S: ObjectStore> Pipeline<S> {
    /// Deletes the outputs of earlier versions of `object` that `report` did not rewrite,
    /// and their markers. Idempotent: a retry finds less to do.
    pub(super) async fn supersede(
        &self,
        object: &ObjectRef,
        marker: &ObjectRef,
        report: &ObjectReport,
    ) -> Result<(), ProcessError> {
        let prefix = ObjectRef {
            bucket: marker.bucket.clone(),
            key: self.marker_prefix(object),
        };
        let keep: HashSet<&str> = report.outputs.iter().map(|o| o.object.as_str()).collect();
        for key in self.markers().marker_versions(&prefix).await? {
            // Another key's markers share the prefix when its key continues with '@'.
            let version = &key[prefix.key.len().min(key.len())..];
            if key == marker.key || version.contains(['@', '/']) {
                continue;
            }
            let earlier = ObjectRef {
                bucket: marker.bucket.clone(),
                key,
            };
            let Some((body, _)) = self.markers().get_marker(&earlier).await? else {
                continue;
            };
            let Ok(found) = serde_json::from_slice::<EarlierMarker>(&body) else {
                warn!(marker = %earlier, "unreadable earlier marker: left alone");
                continue;
            };
            if found.object != report.object {
                continue;
            }
            let mut removed = Vec::new();
            for output in found.outputs {
                if keep.contains(output.object.as_str()) {
                    continue;
                }
                let Some(stale) = self.own_output(&output.object) else {
                    warn!(marker = %earlier, output = %output.object, "not an output location: left alone");
                    continue;
                };
                self.store.delete(&stale).await?;
                removed.push(output.object);
            }
            // Before the marker goes: a retry after a failure here finds it and marks again.
            let locations: Vec<&str> = removed.iter().map(String::as_str).collect();
            crate::lake::mark_dirty(
                self.markers(),
                &self.config,
                &report.object,
                &locations,
                (self.clock)(),
            )
            .await?;
            let deleted = removed.len();
            self.markers().delete_marker(&earlier).await?;
            info!(object = %object, earlier = %earlier, deleted, "outputs of an earlier version removed");
        }
        Ok(())
    }

    /// `s3://bucket/key` as an object, when it lies under the curated or rejected prefix.
    fn own_output(&self, location: &str) -> Option<ObjectRef> {
        let object = ObjectRef::from_location(location)?;
        let config = &self.config;
        let key = &object.key;
        (key.starts_with(&config.curated_prefix) || key.starts_with(&config.rejected_prefix))
            .then_some(object)
    }
}
