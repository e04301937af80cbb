//! Detection on the state shared by every invocation (when a [`DetectionState`] is set):
//! the `Count` step adds what this object counted, once; the `Notify` step then evaluates
//! every window touching the minutes it changed on the merged counts, finds first
//! sightings, and notifies only what this object claimed.
//!
//! One attack gives one alert: a firing episode of one (type, bucket, subject) is claimed
//! with one conditional write on its episode item. Firing windows that overlap the
//! stored episode (starts within one window, or adjacent minutes for the bucket rule)
//! join it: its window and count are extended in the table, and nobody is notified again.
//! The claim records the claiming object, so that object's retry (after a failure
//! between the claim and SNS) still notifies, until the notification is recorded as sent.

use tracing::info;

use super::{Pipeline, ProcessError};
use crate::alerts::baseline::{Baseline, normalise};
use crate::alerts::detect::BucketSightings;
use crate::alerts::shared::{
    Detection, ObjectCounts, bucket_alert, bucket_firing, episode_key, seen_key, subject_alert,
    subject_firing,
};
use crate::alerts::{Alert, AlertType, SubjectKind};
use crate::event::ObjectRef;
use crate::metrics::alert_datums;
use crate::ports::{
    ClaimOutcome, CountQuery, CountUpdate, DetectionState, EpisodeClaim, ObjectStore, StateError,
};

/// What the shared steps need from one object, kept between the steps.
pub(super) struct SharedInput {
    /// What the object adds, per source bucket.
    pub(super) counts: Vec<ObjectCounts>,
    /// Who it saw, per source bucket.
    pub(super) sightings: Vec<BucketSightings>,
    /// `s3://bucket/key@etag`: the apply ID of its counts and the claimer of its alerts.
    pub(super) claimer: String,
}

/// An alert this object is to send, with the episode to mark as sent afterwards.
pub(super) struct ToSend {
    pub(super) alert: Alert,
    pub(super) episode: Option<String>,
}

fn state_error(object: &ObjectRef) -> impl Fn(StateError) -> ProcessError + '_ {
    move |source| ProcessError::State {
        object: object.clone(),
        source,
    }
}

impl<S: ObjectStore> Pipeline<S> {
    /// The `Notify` step with a shared state: finds what this object claims, then writes
    /// the alert document, logs a WARN line, publishes to SNS and the `Alerts` metric for
    /// it (and for the object's own alerts, such as scanners), and records the episodes
    /// as sent. A failure before that last write leaves the claims to this object's retry.
    pub(super) async fn notify_shared(
        &self,
        state: &dyn DetectionState,
        object: &ObjectRef,
        input: &SharedInput,
        own: &[Alert],
        output_bucket: &str,
        cutoff: Option<i64>,
    ) -> Result<(), ProcessError> {
        let now = (self.clock)();
        let to_send = self.shared_alerts(state, object, input, now).await?;
        if to_send.is_empty() {
            return self.notify(object, own, cutoff).await;
        }
        let mut all = own.to_vec();
        all.extend(to_send.iter().map(|t| {
            let mut alert = t.alert.clone();
            alert.add_client_context(&self.lookups);
            alert
        }));
        self.write_alert_document(object, output_bucket, &all)
            .await?;
        self.notify(object, &all, cutoff).await?;
        let datums = alert_datums(
            to_send.iter().map(|t| {
                (
                    t.alert.bucket.as_str(),
                    t.alert.alert_type.as_str(),
                    t.alert.window_start_unix,
                )
            }),
            now,
        );
        self.metrics
            .publish(&datums)
            .await
            .map_err(|source| ProcessError::Publish {
                object: object.clone(),
                source,
            })?;
        for episode in to_send.iter().filter_map(|t| t.episode.as_deref()) {
            state
                .mark_sent(episode)
                .await
                .map_err(state_error(object))?;
        }
        Ok(())
    }

    /// The `Count` step: adds the object's counts once.
    pub(super) async fn add_shared_counts(
        &self,
        state: &dyn DetectionState,
        object: &ObjectRef,
        input: &SharedInput,
    ) -> Result<(), ProcessError> {
        let mut updates: Vec<CountUpdate> = input.counts.iter().flat_map(|c| c.updates()).collect();
        updates.sort();
        let added = state
            .add_counts(&input.claimer, &updates)
            .await
            .map_err(state_error(object))?;
        info!(object = %object, updates = updates.len(), added, "counts added to the detection state");
        Ok(())
    }

    /// The alerts this object claims on the merged counts: 403 spikes and newcomers.
    pub(super) async fn shared_alerts(
        &self,
        state: &dyn DetectionState,
        object: &ObjectRef,
        input: &SharedInput,
        now: i64,
    ) -> Result<Vec<ToSend>, ProcessError> {
        let source = object.to_string();
        let detection = Detection {
            source: &source,
            now,
        };
        let mut candidates = Vec::new();
        if self.config.alerts.enabled(AlertType::ForbiddenSpike) {
            for counts in &input.counts {
                candidates.extend(self.spikes(state, object, input, counts, detection).await?);
            }
        }
        let mut out = Vec::new();
        for (alert, claim) in candidates {
            match state
                .claim_episode(&claim)
                .await
                .map_err(state_error(object))?
            {
                ClaimOutcome::Claimed => out.push(ToSend {
                    alert,
                    episode: Some(claim.episode),
                }),
                ClaimOutcome::Unsent { alert_id } => {
                    let mut alert = alert;
                    alert.alert_id = alert_id;
                    out.push(ToSend {
                        alert,
                        episode: Some(claim.episode),
                    });
                }
                ClaimOutcome::Joined { alert_id } => {
                    info!(object = %object, alert_id = %alert_id, count = alert.count, window_start = %alert.window_start, "window joins an alert already raised: not notified again");
                }
            }
        }
        for sightings in &input.sightings {
            for alert in self.newcomers(state, object, sightings, input, now).await? {
                out.push(ToSend {
                    alert,
                    episode: None,
                });
            }
        }
        Ok(out)
    }

    /// Firing 403 windows touching this object's minutes, each with its claim.
    async fn spikes(
        &self,
        state: &dyn DetectionState,
        object: &ObjectRef,
        input: &SharedInput,
        counts: &ObjectCounts,
        detection: Detection<'_>,
    ) -> Result<Vec<(Alert, EpisodeClaim)>, ProcessError> {
        let s = &self.config.alerts;
        let subjects = counts.candidates();
        let mut queries: Vec<CountQuery> = subjects
            .iter()
            .map(|c| counts.subject_query(c, s))
            .collect();
        let bucket_query = counts.bucket_query();
        queries.extend(bucket_query.clone());
        let merged = state
            .read_counts(&queries)
            .await
            .map_err(state_error(object))?;
        let claim =
            |alert: &Alert, episode: String, first: i64, last: i64, gap: i64| EpisodeClaim {
                episode,
                alert_id: alert.alert_id.clone(),
                first_start: first,
                last_start: last,
                gap,
                claimer: input.claimer.clone(),
                count: alert.count,
            };
        let mut out = Vec::new();
        for (subject, merged) in subjects.iter().zip(&merged) {
            let changed = subject
                .minutes
                .iter()
                .filter(|(_, (f, _))| *f > 0)
                .map(|(m, _)| *m);
            for f in subject_firing(merged, changed, s) {
                let alert = subject_alert(&counts.bucket, subject, &f, s, detection);
                let episode = episode_key(&counts.bucket, Some((subject.kind, &subject.value)));
                let gap = s.subject_403_window_minutes * 60;
                let c = claim(&alert, episode, f.first_start, f.last_start, gap);
                out.push((alert, c));
            }
        }
        if bucket_query.is_some()
            && let Some(merged) = merged.last()
        {
            let changed = counts
                .minutes
                .iter()
                .filter(|(_, (f, _, _))| *f > 0)
                .map(|(m, _)| *m);
            for f in bucket_firing(merged, changed, s) {
                let alert = bucket_alert(counts, &f, s, detection);
                let episode = episode_key(&counts.bucket, None);
                let c = claim(&alert, episode, f.first_start, f.last_start, 60);
                out.push((alert, c));
            }
        }
        Ok(out)
    }

    /// New requesters and addresses: those whose first-sighting write this object won,
    /// after learning, not allowlisted, at most ten alerts per object and kind.
    async fn newcomers(
        &self,
        state: &dyn DetectionState,
        object: &ObjectRef,
        sightings: &BucketSightings,
        input: &SharedInput,
        now: i64,
    ) -> Result<Vec<Alert>, ProcessError> {
        let s = &self.config.alerts;
        if !s.enabled(AlertType::NewRequester) && !s.enabled(AlertType::NewRemoteIp) {
            return Ok(Vec::new());
        }
        let kinds = [
            (SubjectKind::Requester, &sightings.requesters),
            (SubjectKind::RemoteIp, &sightings.remote_ips),
        ];
        let mut subjects = Vec::new();
        for (kind, seen) in kinds {
            for (subject, _) in seen.iter() {
                subjects.push((kind, normalise(kind, subject)));
            }
        }
        let keys: Vec<String> = subjects
            .iter()
            .map(|(kind, subject)| seen_key(&sightings.bucket, *kind, subject))
            .collect();
        let first = state
            .first_sightings(&keys, &input.claimer)
            .await
            .map_err(state_error(object))?;
        let started = state
            .learning_start(&sightings.bucket, sightings.earliest)
            .await
            .map_err(state_error(object))?;
        // Everyone this object did not see first counts as known.
        let mut known = Baseline::new(&sightings.bucket, started);
        for ((kind, subject), first) in subjects.into_iter().zip(first) {
            if !first {
                match kind {
                    SubjectKind::Requester => known.requesters.insert(subject.into_owned(), 0),
                    SubjectKind::RemoteIp => known.remote_ips.insert(subject.into_owned(), 0),
                };
            }
        }
        let mut alerts = known.new_subject_alerts(sightings, s, &object.to_string());
        for alert in &mut alerts {
            let end = alert.window_start_unix;
            alert.detected_at = Some(crate::alerts::rfc3339(now));
            alert.detection_delay_seconds = Some((now - end).max(0));
        }
        Ok(alerts)
    }
}
