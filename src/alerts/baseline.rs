//! The per-bucket baseline of known requesters and addresses, kept as a JSON object under
//! `{STATE_PREFIX}baseline/{bucket}.json`. Pure: the pipeline reads it, asks which
//! sightings are new, merges the sightings in, and writes it back with `If-Match` on the
//! ETag it read (retrying on conflict, re-merging into the newer version), so concurrent
//! invocations never lose each other's updates.
//!
//! The baseline learns during the first `ALERT_LEARNING_HOURS` of event time after the
//! first record it saw, and alerts on nothing new during that time. Its size is bounded:
//! each list keeps at most `ALERT_BASELINE_MAX_ENTRIES`, evicting the least recently seen.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::detect::{BucketSightings, Seen};
use super::{
    Alert, AlertSettings, AlertType, Subject, SubjectCount, SubjectKind, alert_id, rfc3339,
};

/// New subjects reported one alert each per log object and kind; the rest are reported
/// together in one summary alert, so an address spray cannot flood the topic.
pub const MAX_INDIVIDUAL_ALERTS: usize = 10;

/// Who has been seen on one bucket, with when they were last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version.
    pub version: u32,
    /// The source bucket.
    pub bucket: String,
    /// Event time (Unix seconds) of the first record this baseline learned from.
    pub learning_started: i64,
    /// Requester → last seen (Unix seconds, event time).
    pub requesters: BTreeMap<String, i64>,
    /// Address → last seen.
    pub remote_ips: BTreeMap<String, i64>,
}

/// The address in canonical text (`2001:DB8::1` and `2001:db8:0::1` are one address).
pub fn canonical_ip(address: &str) -> String {
    address
        .parse::<IpAddr>()
        .map_or_else(|_| address.to_string(), |ip| ip.to_string())
}

impl Baseline {
    /// An empty baseline starting to learn at `learning_started`.
    pub fn new(bucket: &str, learning_started: i64) -> Self {
        Self {
            version: 1,
            bucket: bucket.to_string(),
            learning_started,
            requesters: BTreeMap::new(),
            remote_ips: BTreeMap::new(),
        }
    }

    /// The event time at which learning ends and new subjects start to alert.
    pub fn learning_until(&self, settings: &AlertSettings) -> i64 {
        self.learning_started + settings.learning_hours * 3600
    }

    /// Reads a stored baseline.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The stored form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The alerts for subjects in `sightings` that this baseline has not seen, first seen
    /// after learning ended, and not allowlisted.
    pub fn new_subject_alerts(
        &self,
        sightings: &BucketSightings,
        settings: &AlertSettings,
        source_object: &str,
    ) -> Vec<Alert> {
        let learned_by = self.learning_until(settings);
        let mut alerts = Vec::new();
        let kinds = [
            (
                AlertType::NewRequester,
                SubjectKind::Requester,
                &sightings.requesters,
                &self.requesters,
            ),
            (
                AlertType::NewRemoteIp,
                SubjectKind::RemoteIp,
                &sightings.remote_ips,
                &self.remote_ips,
            ),
        ];
        for (alert_type, kind, seen, known) in kinds {
            if !settings.enabled(alert_type) {
                continue;
            }
            let new: Vec<(String, &Seen)> = seen
                .iter()
                .map(|(subject, s)| (normalise(kind, subject), s))
                .filter(|(subject, s)| {
                    s.first >= learned_by
                        && !known.contains_key(subject)
                        && !allowed(settings, kind, subject)
                })
                .collect();
            let (individual, rest) = new.split_at(new.len().min(MAX_INDIVIDUAL_ALERTS));
            for (subject, s) in individual {
                alerts.push(Alert {
                    // The same new subject gets the same ID from any log object, so two
                    // objects that both see it first page once.
                    alert_id: alert_id(&[alert_type.as_str(), &sightings.bucket, subject]),
                    alert_type,
                    bucket: sightings.bucket.clone(),
                    window_start: rfc3339(s.first),
                    window_start_unix: s.first,
                    window_end: rfc3339(s.last + 1),
                    subject: Some(Subject {
                        kind,
                        value: subject.clone(),
                    }),
                    count: 1,
                    total: None,
                    threshold: format!(
                        "not seen on this bucket before (learning ended {})",
                        rfc3339(learned_by)
                    ),
                    summary: format!(
                        "new {} {subject} on bucket {} at {}",
                        kind.as_str(),
                        sightings.bucket,
                        rfc3339(s.first)
                    ),
                    top_subjects: Vec::new(),
                    samples: vec![s.sample.clone()],
                    source_object: source_object.to_string(),
                    detected_at: None,
                    detection_delay_seconds: None,
                    client: None,
                });
            }
            if !rest.is_empty() {
                let first = rest.iter().map(|(_, s)| s.first).min().unwrap_or(0);
                let last = rest.iter().map(|(_, s)| s.last).max().unwrap_or(first);
                alerts.push(Alert {
                    alert_id: alert_id(&[
                        alert_type.as_str(),
                        &sightings.bucket,
                        "many",
                        &rfc3339(first),
                        source_object,
                    ]),
                    alert_type,
                    bucket: sightings.bucket.clone(),
                    window_start: rfc3339(first),
                    window_start_unix: first,
                    window_end: rfc3339(last + 1),
                    subject: None,
                    count: rest.len() as u64,
                    total: None,
                    threshold: format!(
                        "more than {MAX_INDIVIDUAL_ALERTS} new {}s in one log object",
                        kind.as_str()
                    ),
                    summary: format!(
                        "{} more new {}s on bucket {}{}",
                        rest.len(),
                        kind.as_str(),
                        sightings.bucket,
                        if sightings.overflowed {
                            " (and more not counted: the counters overflowed)"
                        } else {
                            ""
                        }
                    ),
                    top_subjects: rest
                        .iter()
                        .take(5)
                        .map(|(subject, _)| SubjectCount {
                            kind,
                            value: subject.clone(),
                            count: 1,
                        })
                        .collect(),
                    samples: rest.iter().take(5).map(|(_, s)| s.sample.clone()).collect(),
                    source_object: source_object.to_string(),
                    detected_at: None,
                    detection_delay_seconds: None,
                    client: None,
                });
            }
        }
        alerts
    }

    /// Merges `sightings` in: new subjects are added, known ones get their last-seen time
    /// moved forward, allowlisted ones are not stored, and each list is then cut to
    /// `baseline_max_entries` by evicting the least recently seen.
    pub fn absorb(&mut self, sightings: &BucketSightings, settings: &AlertSettings) {
        let lists = [
            (
                SubjectKind::Requester,
                &sightings.requesters,
                &mut self.requesters,
            ),
            (
                SubjectKind::RemoteIp,
                &sightings.remote_ips,
                &mut self.remote_ips,
            ),
        ];
        for (kind, seen, known) in lists {
            for (subject, s) in seen {
                let subject = normalise(kind, subject);
                if allowed(settings, kind, &subject) {
                    continue;
                }
                let last = known.entry(subject).or_insert(s.last);
                *last = (*last).max(s.last);
            }
            evict_least_recent(known, settings.baseline_max_entries);
        }
    }
}

/// The subject as stored: addresses in canonical text.
pub(crate) fn normalise(kind: SubjectKind, subject: &str) -> String {
    match kind {
        SubjectKind::Requester => subject.to_string(),
        SubjectKind::RemoteIp => canonical_ip(subject),
    }
}

fn allowed(settings: &AlertSettings, kind: SubjectKind, subject: &str) -> bool {
    match kind {
        SubjectKind::Requester => settings.requester_allowed(subject),
        SubjectKind::RemoteIp => settings.address_allowed(subject),
    }
}

fn evict_least_recent(known: &mut BTreeMap<String, i64>, max: usize) {
    if known.len() <= max {
        return;
    }
    let mut by_age: Vec<(i64, String)> = known.iter().map(|(k, t)| (*t, k.clone())).collect();
    by_age.sort();
    for (_, subject) in by_age.into_iter().take(known.len() - max) {
        known.remove(&subject);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Sample;

    fn seen(first: i64) -> Seen {
        Seen {
            first,
            last: first + 10,
            sample: Sample {
                request_id: Some("R".into()),
                key: None,
                time: rfc3339(first),
            },
        }
    }

    fn sightings(requesters: &[(&str, i64)], ips: &[(&str, i64)]) -> BucketSightings {
        BucketSightings {
            bucket: "b".into(),
            requesters: requesters
                .iter()
                .map(|(s, t)| (s.to_string(), seen(*t)))
                .collect(),
            remote_ips: ips.iter().map(|(s, t)| (s.to_string(), seen(*t))).collect(),
            earliest: 0,
            overflowed: false,
        }
    }

    const H: i64 = 3600;

    #[test]
    fn nothing_is_new_during_learning_and_known_subjects_never_are() {
        let settings = AlertSettings {
            learning_hours: 2,
            ..AlertSettings::default()
        };
        let mut base = Baseline::new("b", 0);
        let early = sightings(&[("alice", H)], &[("192.0.2.1", H)]);
        assert!(base.new_subject_alerts(&early, &settings, "o").is_empty());
        base.absorb(&early, &settings);
        let later = sightings(
            &[("alice", 3 * H), ("mallory", 3 * H)],
            &[("192.0.2.1", 3 * H)],
        );
        let alerts = base.new_subject_alerts(&later, &settings, "o");
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].alert_type, AlertType::NewRequester);
        assert_eq!(alerts[0].subject.as_ref().unwrap().value, "mallory");
        // Same subject from another object: same ID.
        let again = base.new_subject_alerts(&later, &settings, "other-object");
        assert_eq!(again[0].alert_id, alerts[0].alert_id);
    }

    #[test]
    fn allowlists_and_canonical_addresses() {
        let settings = AlertSettings {
            learning_hours: 0,
            allow_cidrs: vec![crate::alerts::allow::Cidr::parse("10.0.0.0/8").unwrap()],
            allow_requesters: vec![crate::alerts::allow::Pattern::new(
                "arn:aws:iam::1:role/ci-*",
            )],
            ..AlertSettings::default()
        };
        let mut base = Baseline::new("b", 0);
        base.absorb(&sightings(&[], &[("2001:db8::1", 1)]), &settings);
        let s = sightings(
            &[("arn:aws:iam::1:role/ci-deploy", H)],
            &[("10.1.2.3", H), ("2001:DB8:0::1", H)],
        );
        assert!(base.new_subject_alerts(&s, &settings, "o").is_empty());
        base.absorb(&s, &settings);
        assert!(
            base.requesters.is_empty(),
            "allowlisted subjects are not stored"
        );
    }

    #[test]
    fn a_spray_gives_ten_alerts_and_one_summary() {
        let settings = AlertSettings {
            learning_hours: 0,
            ..AlertSettings::default()
        };
        let ips: Vec<String> = (0..50).map(|i| format!("198.51.100.{i}")).collect();
        let pairs: Vec<(&str, i64)> = ips.iter().map(|ip| (ip.as_str(), H)).collect();
        let alerts =
            Baseline::new("b", 0).new_subject_alerts(&sightings(&[], &pairs), &settings, "o");
        assert_eq!(alerts.len(), MAX_INDIVIDUAL_ALERTS + 1);
        assert_eq!(alerts.last().unwrap().count, 40);
    }

    #[test]
    fn size_is_bounded_by_evicting_the_least_recently_seen() {
        let settings = AlertSettings {
            baseline_max_entries: 2,
            ..AlertSettings::default()
        };
        let mut base = Baseline::new("b", 0);
        base.absorb(
            &sightings(&[("old", 1), ("mid", 2 * H), ("new", 3 * H)], &[]),
            &settings,
        );
        assert_eq!(base.requesters.keys().collect::<Vec<_>>(), ["mid", "new"]);
        let round_trip = Baseline::from_json(&base.to_json()).unwrap();
        assert_eq!(round_trip, base);
    }
}
