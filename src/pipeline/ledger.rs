//! What runs once, after the marker: the idempotency marker
//! `{STATE_PREFIX}processed/{bucket}/{key}@{etag}`, its lease, and the ledger of side
//! effects still pending.
//!
//! - A marker is created with `If-None-Match: *` once the outputs are complete. A
//!   duplicate event finds it and does nothing.
//! - The marker lists the [`Step`]s still pending and carries a lease. When they all
//!   succeed the marker is rewritten with nothing pending; when one fails, the marker keeps
//!   the failed and later steps pending, the lease is released, and the error goes back to
//!   Lambda, whose retry finds the marker and runs just those steps.
//! - An invocation that dies mid-way leaves its lease to expire; a retry after that takes
//!   the marker over with `If-Match`.

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{ObjectReport, Pipeline, ProcessError, SideEffects};
use crate::event::ObjectRef;
use crate::ports::{ObjectStore, PutCondition, PutOutcome};

/// The side effects run after the marker exists, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Adding the object's counts to the shared detection state (nothing without one).
    Count,
    /// Alert log lines and SNS notifications.
    Notify,
    /// Metrics (CloudWatch API or EMF).
    Metrics,
    /// Merging the requesters and addresses seen into the baseline.
    Baseline,
}

/// Every step, in the order a new marker lists them.
pub(super) const ALL_STEPS: [Step; 4] = [Step::Count, Step::Notify, Step::Metrics, Step::Baseline];

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
pub(super) enum Claim {
    /// No marker yet: create it.
    New,
    /// A marker whose lease expired with steps pending: take it over.
    TakeOver { etag: String, pending: Vec<Step> },
}

/// A marker this invocation owns, with the steps it still has to run.
pub(super) struct OwnedMarker {
    /// The marker's own ETag, for the `If-Match` rewrites.
    etag: String,
    status: MarkerStatus,
}

impl<S: ObjectStore> Pipeline<S> {
    /// `{STATE_PREFIX}processed/{bucket}/{key}@{etag}` in the output bucket.
    pub(super) fn marker_ref(
        &self,
        output_bucket: &str,
        object: &ObjectRef,
        etag: &str,
    ) -> ObjectRef {
        let prefix = format!("{}processed/{}/", self.config.state_prefix, object.bucket);
        // A raw key near S3's limit would make the marker's too long (issue 14): it is then
        // cut and hashed, which keeps it unique and deterministic.
        let room = crate::logkey::MAX_KEY_BYTES.saturating_sub(prefix.len() + 1 + etag.len());
        let key = crate::logkey::shorten(&object.key, room);
        ObjectRef {
            bucket: output_bucket.to_string(),
            key: format!("{prefix}{key}@{etag}"),
        }
    }

    /// Reads the marker: `None` when the object was already processed (or another
    /// invocation holds a live lease on its pending steps), otherwise how to claim it.
    pub(super) async fn read_claim(
        &self,
        marker: &ObjectRef,
        now: i64,
    ) -> Result<Option<Claim>, ProcessError> {
        let Some((body, marker_etag)) = self.store.get_small(marker).await? else {
            return Ok(Some(Claim::New));
        };
        let status: MarkerStatus = serde_json::from_slice(&body).unwrap_or_else(|e| {
            warn!(marker = %marker, error = %e, "unreadable marker: treated as done");
            MarkerStatus::default()
        });
        match marker_etag {
            Some(etag) if !status.pending.is_empty() && status.lease_until <= now => {
                info!(marker = %marker, pending = ?status.pending, "taking over side effects left pending");
                Ok(Some(Claim::TakeOver {
                    etag,
                    pending: status.pending,
                }))
            }
            _ => {
                info!(marker = %marker, pending = ?status.pending, "duplicate event: already processed");
                Ok(None)
            }
        }
    }

    /// Writes the marker that claims the side effects; `None` when a concurrent invocation
    /// claimed them first.
    pub(super) async fn create_marker(
        &self,
        marker: &ObjectRef,
        report: &ObjectReport,
        claim: Claim,
        now: i64,
    ) -> Result<Option<OwnedMarker>, ProcessError> {
        let (condition, pending) = match claim {
            Claim::New => (PutCondition::IfAbsent, ALL_STEPS.to_vec()),
            Claim::TakeOver { etag, pending } => (PutCondition::IfMatch(etag), pending),
        };
        let status = MarkerStatus {
            pending,
            lease_until: now + self.config.lease_seconds,
        };
        Ok(self
            .write_marker(marker, report, &status, condition)
            .await?
            .map(|etag| OwnedMarker { etag, status }))
    }

    /// Runs each pending step once, in order. On a failure the marker keeps that step and
    /// the later ones pending with the lease released, and the error is returned; when all
    /// succeed the marker is rewritten with nothing pending.
    pub(super) async fn run_steps(
        &self,
        object: &ObjectRef,
        marker: &ObjectRef,
        report: &ObjectReport,
        mut owned: OwnedMarker,
        effects: &mut SideEffects,
    ) -> Result<(), ProcessError> {
        while let Some(&step) = owned.status.pending.first() {
            if let Err(e) = self.run_step(step, object, effects).await {
                // Release the lease so that the retry runs the remaining steps at once.
                owned.status.lease_until = 0;
                let released = self
                    .write_marker(
                        marker,
                        report,
                        &owned.status,
                        PutCondition::IfMatch(owned.etag),
                    )
                    .await;
                if let Err(release_error) = released {
                    warn!(marker = %marker, error = %release_error, "could not release the lease; a retry waits for it to expire");
                }
                return Err(e);
            }
            owned.status.pending.remove(0);
        }
        owned.status.lease_until = 0;
        let done = self
            .write_marker(
                marker,
                report,
                &owned.status,
                PutCondition::IfMatch(owned.etag),
            )
            .await;
        if !matches!(done, Ok(Some(_))) {
            warn!(marker = %marker, "could not mark the side effects done; only a duplicate arriving after the lease expires would repeat them");
        }
        Ok(())
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
}
