//! The requester baseline step: each bucket's baseline is read before the marker (to find
//! new subjects) and merged back after it with conditional writes, re-reading and
//! re-merging when another invocation wrote it in between.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use super::{Pipeline, ProcessError};
use crate::alerts::AlertSettings;
use crate::alerts::baseline::Baseline;
use crate::alerts::detect::BucketSightings;
use crate::event::ObjectRef;
use crate::ports::{ObjectStore, PutCondition, PutOutcome};

/// Conditional baseline writes are retried this many times when another invocation wrote
/// the baseline in between.
const BASELINE_ATTEMPTS: u32 = 12;

/// A baseline as read from the store (a new one when there is none), with the condition
/// that writes it back only if nobody else wrote it meanwhile.
pub(super) struct StoredBaseline {
    pub(super) baseline: Baseline,
    condition: PutCondition,
    /// Written even if the sightings change nothing: it is new, or replaces an unreadable
    /// one (either way its learning start must be stored).
    fresh: bool,
}

impl<S: ObjectStore> Pipeline<S> {
    /// Where source `bucket`'s requester baseline lives in `output_bucket` (read and
    /// written for every log object when there is no detection table).
    pub fn baseline_ref(&self, output_bucket: &str, bucket: &str) -> ObjectRef {
        ObjectRef {
            bucket: output_bucket.to_string(),
            key: format!("{}baseline/{}.json", self.config.state_prefix, bucket),
        }
    }

    pub(super) async fn read_baseline(
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
                fresh: true,
            },
            Some((bytes, etag)) => {
                let condition = etag.map_or(PutCondition::None, PutCondition::IfMatch);
                match Baseline::from_json(&bytes) {
                    Ok(baseline) => StoredBaseline {
                        baseline,
                        condition,
                        fresh: false,
                    },
                    Err(e) => {
                        warn!(baseline = %at, error = %e, "unreadable baseline: starting a new one (learning again)");
                        StoredBaseline {
                            baseline: fresh(),
                            condition,
                            fresh: true,
                        }
                    }
                }
            }
        })
    }

    /// Merges the sightings into each baseline with conditional writes, re-reading and
    /// re-merging when another invocation wrote in between. A baseline the sightings do
    /// not change (no new subject, no last-seen time a day newer: see
    /// [`crate::alerts::baseline::REFRESH_SECONDS`]) is not written: most log objects
    /// bring only known subjects, and each write is a billed PutObject.
    pub(super) async fn update_baselines(
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
                    fresh,
                } = current;
                if !baseline.absorb(sightings, settings) && !fresh {
                    break;
                }
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
}

/// A short, jittered pause before re-merging into a baseline someone else just wrote.
fn backoff(attempt: u32) -> Duration {
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 20);
    Duration::from_millis(u64::from(attempt.min(6)) * 25 + u64::from(jitter))
}
