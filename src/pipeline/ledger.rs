//! What runs once, after the marker: the idempotency marker
//! `{STATE_PREFIX}processed/{bucket}/{key}@{etag}`, its lease, and the ledger of side
//! effects still pending.
//!
//! The marker is an object in the output bucket, or an item of the detection table when
//! the pipeline has a [`crate::ports::MarkerStore`] (`MARKERS`); the protocol below is
//! the same on both, the item's version tag standing in for the ETag.
//!
//! - A marker is created with `If-None-Match: *` once the outputs are complete. A
//!   duplicate event finds it and does nothing.
//! - The marker lists the [`Step`]s still pending, carries a lease, and names the attempt
//!   that holds it (`invocation`: the Lambda request ID when there is one, plus the
//!   process, the clock and a counter, so every attempt's is its own). When every step
//!   succeeds the marker is rewritten with nothing pending; when one fails, the marker
//!   keeps the failed and later steps pending, the lease is released, and the error goes
//!   back to Lambda, whose retry finds the marker and runs just those steps.
//! - A conditional write answered with 412 is read back: if the marker names this
//!   attempt, the write took effect and only its response was lost (the SDK's retry then
//!   met our own marker), so this attempt owns it and goes on.
//! - The lease lasts until the invocation's deadline (from the Lambda context) plus
//!   [`LEASE_MARGIN_SECONDS`]: past that, the holder cannot be running. Without a deadline
//!   (the command line) it lasts [`crate::config::DEFAULT_LEASE_SECONDS`];
//!   `STATE_LEASE_SECONDS` overrides both.
//! - An attempt that finds steps pending under another attempt's live lease fails with
//!   [`LeaseHeld`], naming the object and when the lease ends, so the
//!   platform retries later (in SQS mode the message goes into `batchItemFailures`). It
//!   never reports success for steps it has not seen done.
//! - An attempt that dies mid-way leaves its lease to expire; a retry after that takes
//!   the marker over with `If-Match`. Only then can a step that had finished be repeated.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{InvocationContext, ObjectReport, Pipeline, ProcessError, SideEffects};
use crate::event::ObjectRef;
use crate::ports::{MarkerStore, ObjectStore, PutCondition, PutOutcome};

/// Seconds a lease outlasts the invocation's deadline, for clock skew between hosts.
pub const LEASE_MARGIN_SECONDS: i64 = 30;

/// How many times a 412 on the marker is read back and the claim retried.
const CLAIM_ROUNDS: usize = 3;

/// Side effects are pending under another invocation's live lease: that invocation was
/// killed or is still running. Retryable: after the lease ends a retry takes over.
#[derive(Debug, thiserror::Error)]
#[error(
    "{object}: side effects {pending:?} are pending under another invocation's lease on \
     {marker} until {}; retry after then",
    crate::alerts::rfc3339(*.lease_until)
)]
pub struct LeaseHeld {
    /// The log object.
    pub object: ObjectRef,
    /// Its marker.
    pub marker: ObjectRef,
    /// The steps still pending.
    pub pending: Vec<Step>,
    /// When the lease ends (Unix seconds).
    pub lease_until: i64,
}

/// The side effects run after the marker exists, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Deleting the outputs of an earlier version of the object that this one did not
    /// rewrite, and that version's marker (see `supersede`).
    Supersede,
    /// Adding the object's counts to the shared detection state (nothing without one).
    Count,
    /// Alert log lines and SNS notifications.
    Notify,
    /// Metrics (CloudWatch API or EMF).
    Metrics,
    /// Merging the requesters and addresses seen into the baseline.
    Baseline,
}

/// Bytes kept for `{etag}` after a shortened key in a marker: an S3 ETag is 32 hex digits,
/// plus `-N` for multipart uploads.
const ETAG_ROOM: usize = 48;

/// Every step, in the order a new marker lists them.
pub(super) const ALL_STEPS: [Step; 5] = [
    Step::Supersede,
    Step::Count,
    Step::Notify,
    Step::Metrics,
    Step::Baseline,
];

/// What a marker says about the side effects: those still to run, until when the
/// attempt that wrote it owns them (Unix seconds), and which attempt that is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerStatus {
    /// Steps not yet done; markers from before side effects existed have none.
    #[serde(default)]
    pub pending: Vec<Step>,
    /// The lease: until then, another attempt leaves the pending steps alone.
    #[serde(default)]
    pub lease_until: i64,
    /// The attempt that wrote the marker; empty in markers from before it was recorded.
    #[serde(default)]
    pub invocation: String,
}

#[derive(Serialize)]
struct MarkerBody<'a> {
    #[serde(flatten)]
    report: &'a ObjectReport,
    #[serde(flatten)]
    status: &'a MarkerStatus,
}

/// One attempt at one object: who it is, what time it started, and its lease.
pub(super) struct Attempt {
    /// Unique to this attempt, written into the markers it writes.
    pub(super) id: String,
    /// Unix seconds when it started.
    pub(super) now: i64,
    /// Until when its claim on the side effects lasts.
    pub(super) lease_until: i64,
}

impl Attempt {
    /// A fresh attempt: the Lambda request ID (when known), the process, the clock and a
    /// counter make an ID no other attempt has, even a retry with the same request ID.
    pub(super) fn new(context: &InvocationContext, now: i64, lease_override: Option<i64>) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!(
            "{}:{:x}-{nanos:x}-{n:x}",
            context.request_id.as_deref().unwrap_or("local"),
            std::process::id()
        );
        let lease_until = match (lease_override, context.deadline_ms) {
            (Some(seconds), _) => now + seconds,
            (None, Some(deadline_ms)) => {
                i64::try_from(deadline_ms / 1000).unwrap_or(i64::MAX - LEASE_MARGIN_SECONDS)
                    + LEASE_MARGIN_SECONDS
            }
            (None, None) => now + crate::config::DEFAULT_LEASE_SECONDS,
        };
        Attempt {
            id,
            now,
            lease_until,
        }
    }
}

/// How this attempt can come to own the object's side effects.
pub(super) enum Claim {
    /// No marker yet: create it.
    New,
    /// A marker whose lease expired with steps pending: take it over.
    TakeOver { etag: String, pending: Vec<Step> },
}

/// A marker this attempt owns, with the steps it still has to run.
pub(super) struct OwnedMarker {
    /// The marker's own ETag, for the `If-Match` rewrites.
    etag: String,
    status: MarkerStatus,
}

/// A marker as read back: its status and ETag.
struct FoundMarker {
    status: MarkerStatus,
    etag: Option<String>,
}

impl<S: ObjectStore> Pipeline<S> {
    /// `{STATE_PREFIX}processed/{bucket}/{key}@{etag}` in the output bucket.
    pub(super) fn marker_ref(
        &self,
        output_bucket: &str,
        object: &ObjectRef,
        etag: &str,
    ) -> ObjectRef {
        ObjectRef {
            bucket: output_bucket.to_string(),
            key: format!("{}{etag}", self.marker_prefix(object)),
        }
    }

    /// `{STATE_PREFIX}processed/{bucket}/{key}@`: what every version's marker starts with.
    /// A raw key near S3's limit would make the marker's too long (issue 14): it is then
    /// cut and hashed, which keeps it unique and deterministic, with room left for the
    /// ETag so that every version shares the prefix.
    pub(super) fn marker_prefix(&self, object: &ObjectRef) -> String {
        let prefix = format!("{}processed/{}/", self.config.state_prefix, object.bucket);
        let room = crate::logkey::MAX_KEY_BYTES.saturating_sub(prefix.len() + 1 + ETAG_ROOM);
        let key = crate::logkey::shorten(&object.key, room);
        format!("{prefix}{key}@")
    }

    /// Reads the marker: `None` when the object was already processed, otherwise how to
    /// claim it; an error when another attempt holds a live lease on pending steps.
    pub(super) async fn read_claim(
        &self,
        object: &ObjectRef,
        marker: &ObjectRef,
        attempt: &Attempt,
    ) -> Result<Option<Claim>, ProcessError> {
        match self.read_marker(marker).await? {
            None => Ok(Some(Claim::New)),
            Some(found) => self.judge(object, marker, found, attempt),
        }
    }

    /// What a marker written by another attempt leaves to this one.
    fn judge(
        &self,
        object: &ObjectRef,
        marker: &ObjectRef,
        found: FoundMarker,
        attempt: &Attempt,
    ) -> Result<Option<Claim>, ProcessError> {
        let FoundMarker { status, etag } = found;
        if status.pending.is_empty() {
            info!(marker = %marker, "duplicate event: already processed");
            return Ok(None);
        }
        match etag {
            Some(etag) if status.lease_until <= attempt.now => {
                info!(marker = %marker, pending = ?status.pending, "taking over side effects left pending");
                Ok(Some(Claim::TakeOver {
                    etag,
                    pending: status.pending,
                }))
            }
            _ => {
                warn!(marker = %marker, pending = ?status.pending, holder = %status.invocation, lease_until = status.lease_until, "side effects pending under another attempt's lease");
                Err(ProcessError::LeaseHeld(Box::new(LeaseHeld {
                    object: object.clone(),
                    marker: marker.clone(),
                    pending: status.pending,
                    lease_until: status.lease_until,
                })))
            }
        }
    }

    async fn read_marker(&self, marker: &ObjectRef) -> Result<Option<FoundMarker>, ProcessError> {
        let Some((body, etag)) = self.markers().get_marker(marker).await? else {
            return Ok(None);
        };
        let status = serde_json::from_slice(&body).unwrap_or_else(|e| {
            warn!(marker = %marker, error = %e, "unreadable marker: treated as done");
            MarkerStatus::default()
        });
        Ok(Some(FoundMarker { status, etag }))
    }

    /// Writes the marker that claims the side effects. A 412 is read back: our own marker
    /// (a lost response) is ours; another attempt's is judged as on arrival. `None` when
    /// another attempt finished the object first.
    pub(super) async fn create_marker(
        &self,
        object: &ObjectRef,
        marker: &ObjectRef,
        report: &ObjectReport,
        mut claim: Claim,
        attempt: &Attempt,
    ) -> Result<Option<OwnedMarker>, ProcessError> {
        for _ in 0..CLAIM_ROUNDS {
            let (condition, pending) = match claim {
                Claim::New => (PutCondition::IfAbsent, ALL_STEPS.to_vec()),
                Claim::TakeOver { etag, pending } => (PutCondition::IfMatch(etag), pending),
            };
            let status = MarkerStatus {
                pending,
                lease_until: attempt.lease_until,
                invocation: attempt.id.clone(),
            };
            if let Some(etag) = self
                .write_marker(marker, report, &status, condition)
                .await?
            {
                return Ok(Some(OwnedMarker { etag, status }));
            }
            match self.read_marker(marker).await? {
                None => claim = Claim::New,
                Some(found) if found.status.invocation == attempt.id => {
                    info!(marker = %marker, "the marker write took effect though its response was lost: ours");
                    return Ok(Some(OwnedMarker {
                        etag: found.etag.unwrap_or_default(),
                        status: found.status,
                    }));
                }
                Some(found) => match self.judge(object, marker, found, attempt)? {
                    None => return Ok(None),
                    Some(next) => claim = next,
                },
            }
        }
        Err(ProcessError::LeaseHeld(Box::new(LeaseHeld {
            object: object.clone(),
            marker: marker.clone(),
            pending: ALL_STEPS.to_vec(),
            lease_until: attempt.now,
        })))
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
            let done = match step {
                Step::Supersede => self.supersede(object, marker, report).await,
                other => self.run_step(other, object, effects).await,
            };
            if let Err(e) = done {
                // Release the lease so that the retry runs the remaining steps at once.
                owned.status.lease_until = 0;
                if let Err(release_error) = self.rewrite_owned(marker, report, &owned).await {
                    warn!(marker = %marker, error = %release_error, "could not release the lease; a retry waits for it to expire");
                }
                return Err(e);
            }
            owned.status.pending.remove(0);
        }
        owned.status.lease_until = 0;
        if !matches!(self.rewrite_owned(marker, report, &owned).await, Ok(true)) {
            warn!(marker = %marker, "could not mark the side effects done; only a duplicate arriving after the lease expires would repeat them");
        }
        Ok(())
    }

    /// Rewrites a marker this attempt owns with `If-Match`; true when the marker now says
    /// what `owned` says (a 412 whose read-back shows our own write counts).
    async fn rewrite_owned(
        &self,
        marker: &ObjectRef,
        report: &ObjectReport,
        owned: &OwnedMarker,
    ) -> Result<bool, ProcessError> {
        let condition = PutCondition::IfMatch(owned.etag.clone());
        if self
            .write_marker(marker, report, &owned.status, condition)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        Ok(self
            .read_marker(marker)
            .await?
            .is_some_and(|found| found.status == owned.status))
    }

    /// Writes the marker; `None` when the condition failed.
    async fn write_marker(
        &self,
        marker: &ObjectRef,
        report: &ObjectReport,
        status: &MarkerStatus,
        condition: PutCondition,
    ) -> Result<Option<String>, ProcessError> {
        let body = serde_json::to_vec(&MarkerBody { report, status }).unwrap_or_default();
        match self.markers().put_marker(marker, body, condition).await? {
            PutOutcome::PreconditionFailed => Ok(None),
            PutOutcome::Written { etag } => Ok(Some(etag.unwrap_or_default())),
        }
    }

    /// Where the markers live (`MARKERS`): the table's store, or the output bucket's.
    pub(super) fn markers(&self) -> &dyn MarkerStore {
        match &self.markers {
            Some(markers) => markers.as_ref(),
            None => &self.store,
        }
    }
}
