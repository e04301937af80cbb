//! The side effects of one log object: its alerts (documents, log lines, SNS), its
//! metrics, and the baseline update. What they are is worked out before the marker is
//! written ([`Pipeline::prepare_effects`]); each is carried out once, after it
//! ([`Pipeline::run_step`], driven by the ledger).

use tracing::warn;

use super::baselines::StoredBaseline;
use super::detection::SharedInput;
use super::ledger::Step;
use super::stream::Streamed;
use super::{Pipeline, ProcessError};
use crate::alerts::detect::BucketSightings;
use crate::alerts::{Alert, AlertType};
use crate::event::ObjectRef;
use crate::metrics::{MetricBatches, alert_datums};
use crate::ports::{ObjectStore, PutCondition};

/// What one log object's side effects will do, kept between the steps.
pub(super) struct SideEffects {
    /// Alerts to log and notify.
    pub(super) alerts: Vec<Alert>,
    /// Metrics to publish, the `Alerts` metric included, produced in batches.
    pub(super) metrics: MetricBatches,
    sightings: Vec<BucketSightings>,
    baselines: Vec<StoredBaseline>,
    pub(super) output_bucket: String,
    /// What the shared detection steps need, when there is a shared state.
    pub(super) shared: Option<SharedInput>,
    /// In a backfill: alerts whose window ended before this are recorded, not sent.
    pub(super) notify_cutoff: Option<i64>,
}

impl<S: ObjectStore> Pipeline<S> {
    /// Turns what streaming counted into alerts (checking new subjects against each
    /// bucket's baseline) and metric datums, and writes the alert document, which a retry
    /// overwrites.
    pub(super) async fn prepare_effects(
        &self,
        object: &ObjectRef,
        output_bucket: &str,
        streamed: Streamed,
        etag: &str,
        now: i64,
    ) -> Result<SideEffects, ProcessError> {
        let location = object.to_string();
        let counts = self
            .detection
            .as_ref()
            .map(|_| streamed.detector.shared_counts());
        let findings = streamed.detector.finish();
        let mut alerts = findings.alerts;
        let mut baselines = Vec::new();
        // With a shared state, 403 spikes and newcomers are found on it after the marker;
        // the S3 baseline is neither read nor written.
        let (sightings, shared) = match counts {
            Some(counts) => {
                alerts.retain(|a| a.alert_type != AlertType::ForbiddenSpike);
                let shared = SharedInput {
                    counts,
                    sightings: findings.sightings,
                    claimer: format!("{location}@{etag}"),
                };
                (Vec::new(), Some(shared))
            }
            None => (findings.sightings, None),
        };
        for sightings in &sightings {
            let stored = self.read_baseline(output_bucket, sightings).await?;
            alerts.extend(stored.baseline.new_subject_alerts(
                sightings,
                &self.config.alerts,
                &location,
            ));
            baselines.push(stored);
        }
        if findings.untracked_records > 0 {
            warn!(object = %location, records = findings.untracked_records, "records from too many source buckets were not checked for alerts");
        }
        for alert in &mut alerts {
            alert.add_client_context(&self.lookups);
        }
        self.write_alert_document(object, output_bucket, &alerts)
            .await?;
        let metrics = self.metric_batches(object, streamed.metrics, &alerts, now);
        Ok(SideEffects {
            alerts,
            metrics,
            sightings,
            baselines,
            output_bucket: output_bucket.to_string(),
            shared,
            notify_cutoff: None,
        })
    }

    /// `{ALERTS_PREFIX}…/{log name}.ndjson`, one alert a line, when there are alerts.
    pub(super) async fn write_alert_document(
        &self,
        object: &ObjectRef,
        output_bucket: &str,
        alerts: &[Alert],
    ) -> Result<(), ProcessError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut body = Vec::new();
        for alert in alerts {
            body.extend(serde_json::to_vec(alert).unwrap_or_default());
            body.push(b'\n');
        }
        let alerts_object = ObjectRef {
            bucket: output_bucket.to_string(),
            key: self.alerts_key(object),
        };
        self.store
            .put(
                &alerts_object,
                body,
                "application/x-ndjson",
                PutCondition::None,
            )
            .await?;
        Ok(())
    }

    /// The object's metric datums plus one `Alerts` datum per alert.
    fn metric_batches(
        &self,
        object: &ObjectRef,
        metrics: crate::metrics::MetricsAggregator,
        alerts: &[Alert],
        now: i64,
    ) -> MetricBatches {
        let location = object.to_string();
        let mut datums = metrics.into_batches(&object.bucket, now);
        if datums.skipped_old_minutes > 0 {
            warn!(object = %location, minutes = datums.skipped_old_minutes, "metrics older than two weeks skipped: CloudWatch would refuse them");
        }
        if datums.dropped_records > 0 {
            warn!(object = %location, records = datums.dropped_records, "records beyond the metric series limit were not counted");
        }
        datums.extend(alert_datums(
            alerts.iter().map(|a| {
                (
                    a.bucket.as_str(),
                    a.alert_type.as_str(),
                    a.window_start_unix,
                )
            }),
            now,
        ));
        datums
    }

    /// Carries out one side effect.
    pub(super) async fn run_step(
        &self,
        step: Step,
        object: &ObjectRef,
        effects: &mut SideEffects,
    ) -> Result<(), ProcessError> {
        match (step, &self.detection, &effects.shared) {
            (Step::Count, Some(state), Some(input)) => {
                self.add_shared_counts(state.as_ref(), object, input).await
            }
            (Step::Count, _, _) => Ok(()),
            (Step::Notify, Some(state), Some(input)) => {
                self.notify_shared(
                    state.as_ref(),
                    object,
                    input,
                    &effects.alerts,
                    &effects.output_bucket,
                    effects.notify_cutoff,
                )
                .await
            }
            (Step::Notify, _, _) => {
                self.notify(object, &effects.alerts, effects.notify_cutoff)
                    .await
            }
            (Step::Metrics, _, _) => effects
                .metrics
                .for_each(|batch| async move { self.metrics.publish(&batch).await })
                .await
                .map_err(|source| ProcessError::Publish {
                    object: object.clone(),
                    source,
                }),
            // Run by the ledger, which holds the report listing this version's outputs.
            (Step::Supersede, _, _) => Ok(()),
            (Step::Baseline, _, _) => {
                self.update_baselines(
                    object,
                    &effects.output_bucket,
                    &effects.sightings,
                    effects.baselines.drain(..),
                )
                .await
            }
        }
    }

    /// Logs each alert as a WARN line and sends them to the topic, if there is one.
    /// In a backfill, `cutoff` is the time before which an alert's window must not have
    /// ended for it to be sent; older ones are only logged.
    pub(super) async fn notify(
        &self,
        object: &ObjectRef,
        alerts: &[Alert],
        cutoff: Option<i64>,
    ) -> Result<(), ProcessError> {
        let mut current = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let window_end =
                crate::json_record::parse_iso8601(&alert.window_end).map(|t| t.unix_seconds());
            let notified = match (cutoff, window_end) {
                (Some(cutoff), Some(end)) => end >= cutoff,
                _ => true,
            };
            warn!(
                alert_id = %alert.alert_id,
                alert_type = alert.alert_type.as_str(),
                bucket = %alert.bucket,
                subject = alert.subject.as_ref().map(|s| s.value.as_str()),
                count = alert.count,
                window_start = %alert.window_start,
                window_end = %alert.window_end,
                source_object = %alert.source_object,
                notified,
                "alert: {}{}",
                alert.summary,
                if notified { "" } else { " (backfill, older than ALERT_BACKFILL_MAX_AGE_HOURS: recorded, not sent)" }
            );
            if notified {
                current.push(alert.clone());
            }
        }
        match &self.notifier {
            Some(notifier) if !current.is_empty() => {
                notifier
                    .notify(&current)
                    .await
                    .map_err(|source| ProcessError::Publish {
                        object: object.clone(),
                        source,
                    })
            }
            _ => Ok(()),
        }
    }
}
