//! The requester baseline step: each bucket's baseline is read before the marker (to find
//! new subjects) and merged back after it with conditional writes, re-reading and
//! re-merging when another invocation wrote it in between. A warm function keeps the
//! baselines it last read or wrote parsed, and parses a read again only when its ETag
//! says another invocation wrote since ([`crate::alerts::baseline_cache`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use super::{Pipeline, ProcessError};
use crate::alerts::AlertSettings;
use crate::alerts::baseline::Baseline;
use crate::alerts::baseline_cache::BaselineCache;
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
    /// Its size in the store, in bytes (what [`BaselineCache`] counts).
    bytes: usize,
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
        let Some((bytes, etag)) = self.store.get_small(&at).await? else {
            return Ok(StoredBaseline {
                baseline: fresh(),
                condition: PutCondition::IfAbsent,
                fresh: true,
                bytes: 0,
            });
        };
        let size = bytes.len();
        let cached = etag
            .as_ref()
            .and_then(|etag| self.cached_baselines().take(&at.to_string(), etag));
        let (baseline, fresh) = match cached.map_or_else(|| Baseline::from_json(&bytes), Ok) {
            Ok(baseline) => (baseline, false),
            Err(e) => {
                warn!(baseline = %at, error = %e, "unreadable baseline: starting a new one (learning again)");
                (fresh(), true)
            }
        };
        Ok(StoredBaseline {
            baseline,
            // Without an ETag the write cannot be conditional (nor the parse skipped).
            condition: etag.map_or(PutCondition::None, PutCondition::IfMatch),
            fresh,
            bytes: size,
        })
    }

    /// The warm function's parsed baselines; a panic elsewhere while holding them leaves
    /// nothing half-changed (each call takes or keeps whole entries), so a poisoned lock
    /// is used as it is.
    fn cached_baselines(&self) -> std::sync::MutexGuard<'_, BaselineCache> {
        self.baseline_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many baseline reads this pipeline served without parsing (the ETag was the one
    /// it last read or wrote), for tests and benchmarks.
    pub fn baseline_cache_hits(&self) -> u64 {
        self.cached_baselines().hits()
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
                    bytes,
                } = current;
                if !fresh && !baseline.may_change(sightings, settings) {
                    // Still exactly the stored version: kept as it was read.
                    if let PutCondition::IfMatch(etag) = &condition {
                        self.cached_baselines()
                            .keep(&at.to_string(), etag, bytes, baseline);
                    }
                    break;
                }
                // Absorbing moves unwritten times in memory too, so a baseline that is
                // then not written is not kept.
                if !baseline.absorb(sightings, settings) && !fresh {
                    break;
                }
                let json = baseline.to_json();
                let size = json.len();
                match self
                    .store
                    .put(&at, json, "application/json", condition)
                    .await?
                {
                    PutOutcome::Written { etag } => {
                        if let Some(etag) = etag {
                            self.cached_baselines()
                                .keep(&at.to_string(), &etag, size, baseline);
                        }
                        break;
                    }
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
