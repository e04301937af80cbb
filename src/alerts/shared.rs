//! Detection on counts shared by every invocation: what one log object adds to the
//! detection state ([`ObjectCounts`]), how the state's keys are named, and the pure
//! evaluation of 403 windows on the merged per-minute counts read back from it.
//!
//! S3 spreads one minute of a bucket's traffic (and one attacker's requests) over many
//! small log objects that arrive late, out of order and sometimes twice, so per-object
//! windows miss attacks. Each object adds its counts per (bucket, subject kind, subject,
//! minute) and per (bucket, minute); then every window touching a minute in which the
//! object saw a 403 is evaluated on the merged counts, with the same rules as before:
//! - a subject fires when, in a sliding window of `ALERT_SUBJECT_403_WINDOW_MINUTES`, it
//!   has at least `ALERT_SUBJECT_403_MIN` 403s and they are at least
//!   `ALERT_SUBJECT_403_SHARE` of its requests;
//! - a bucket fires in a minute with at least `ALERT_BUCKET_403_MIN` 403s making at least
//!   `ALERT_BUCKET_403_SHARE` of its requests.
//!
//! Which subjects an object writes is bounded: every (minute, subject) with a 403 in the
//! object's counters (at most [`super::detect::FORBIDDEN_COUNTERS`] per kind), plus the
//! [`TOTALS_WRITTEN`] busiest (minute, subject) request counters per kind, so that a busy
//! client's successful requests in objects where it had no 403 still lower its share.
//! A client outside both sets in an object is under-counted there (its share can only
//! look higher): the residual risk of a false alert for a client that is busy only in
//! objects crowded by more than [`TOTALS_WRITTEN`] busier (minute, subject) pairs.

use std::collections::BTreeMap;

use super::{
    Alert, AlertSettings, AlertType, MAX_SAMPLES, Sample, Subject, SubjectCount, SubjectKind,
    alert_id, rfc3339,
};
use crate::ports::{CountQuery, CountUpdate, MinuteCounts};

/// Busiest (minute, subject) request counters written per kind, besides those with 403s.
pub const TOTALS_WRITTEN: usize = 256;
/// Subjects per kind whose windows are read back and evaluated per object: those with the
/// most 403s in it.
pub const SUBJECTS_EVALUATED: usize = 256;
/// Subjects longer than this are stored by a hash; alerts keep the original.
pub const MAX_STORED_SUBJECT: usize = 128;
/// Subjects named in an alert about a whole bucket.
const TOP_SUBJECTS: usize = 5;

/// How a subject appears in a state key: itself, or `h:` and a hash when it is long.
pub fn subject_key(subject: &str) -> String {
    if subject.len() <= MAX_STORED_SUBJECT && !subject.contains(char::is_control) {
        subject.to_string()
    } else {
        format!("h:{}", alert_id(&[subject]))
    }
}

/// The series of one subject's counts: `c#{bucket}#{kind}#{subject}`.
pub fn subject_series(bucket: &str, kind: SubjectKind, subject: &str) -> String {
    format!("c#{bucket}#{}#{}", kind.as_str(), subject_key(subject))
}

/// The series of a bucket's counts: `b#{bucket}`.
pub fn bucket_series(bucket: &str) -> String {
    format!("b#{bucket}")
}

/// The episode of 403 spikes of one subject (or of the whole bucket when `None`).
pub fn episode_key(bucket: &str, subject: Option<(SubjectKind, &str)>) -> String {
    match subject {
        Some((kind, value)) => format!(
            "e#forbidden_spike#{bucket}#{}#{}",
            kind.as_str(),
            subject_key(value)
        ),
        None => format!("e#forbidden_spike#{bucket}#bucket"),
    }
}

/// The first-seen record of a requester or address on a bucket.
pub fn seen_key(bucket: &str, kind: SubjectKind, subject: &str) -> String {
    format!("s#{bucket}#{}#{}", kind.as_str(), subject_key(subject))
}

/// One subject's counts in one log object.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectMinutes {
    /// `requester` or `remote_ip`.
    pub kind: SubjectKind,
    /// The requester or address, as logged.
    pub value: String,
    /// Minute → (403s, requests), lower bounds when the object's counters overflowed.
    pub minutes: BTreeMap<i64, (u64, u64)>,
    /// A few of its 403 requests.
    pub samples: Vec<Sample>,
}

impl SubjectMinutes {
    /// Its 403s in this object.
    pub fn forbidden(&self) -> u64 {
        self.minutes.values().map(|(f, _)| f).sum()
    }
}

/// What one log object adds to the shared counts of one source bucket. Bounded by the
/// detector's counters, whatever the object's size.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectCounts {
    /// The source bucket.
    pub bucket: String,
    /// Minute → (403s, requests, samples of its 403s), for the per-bucket rule.
    pub minutes: BTreeMap<i64, (u64, u64, Vec<Sample>)>,
    /// The subjects written, with 403s first in each kind.
    pub subjects: Vec<SubjectMinutes>,
}

impl ObjectCounts {
    /// The updates to add, sorted, so a retry forms the same ones in the same order.
    pub fn updates(&self) -> Vec<CountUpdate> {
        let mut out = Vec::new();
        let bucket = bucket_series(&self.bucket);
        for (&minute, (forbidden, total, _)) in &self.minutes {
            out.push(CountUpdate {
                series: bucket.clone(),
                minute,
                forbidden: *forbidden,
                total: *total,
            });
        }
        for s in &self.subjects {
            let series = subject_series(&self.bucket, s.kind, &s.value);
            for (&minute, &(forbidden, total)) in &s.minutes {
                out.push(CountUpdate {
                    series: series.clone(),
                    minute,
                    forbidden,
                    total,
                });
            }
        }
        out.retain(|u| u.forbidden > 0 || u.total > 0);
        out.sort();
        // The same subject under two spellings that hash alike is merged, never sent twice
        // (one page write may not name an attribute twice).
        out.dedup_by(|b, a| {
            let same = a.series == b.series && a.minute == b.minute;
            if same {
                a.forbidden += b.forbidden;
                a.total += b.total;
            }
            same
        });
        out
    }

    /// The subjects to evaluate: those with the most 403s here, per kind.
    pub fn candidates(&self) -> Vec<&SubjectMinutes> {
        let mut out = Vec::new();
        for kind in [SubjectKind::Requester, SubjectKind::RemoteIp] {
            let mut of_kind: Vec<&SubjectMinutes> = self
                .subjects
                .iter()
                .filter(|s| s.kind == kind && s.forbidden() > 0)
                .collect();
            of_kind.sort_by(|a, b| {
                b.forbidden()
                    .cmp(&a.forbidden())
                    .then(a.value.cmp(&b.value))
            });
            of_kind.truncate(SUBJECTS_EVALUATED);
            out.extend(of_kind);
        }
        out
    }

    /// The read that covers every window touching this subject's 403 minutes.
    pub fn subject_query(&self, s: &SubjectMinutes, settings: &AlertSettings) -> CountQuery {
        let reach = (settings.subject_403_window_minutes - 1) * 60;
        let forbidden = s.minutes.iter().filter(|(_, (f, _))| *f > 0);
        let first = forbidden.clone().map(|(m, _)| *m).min().unwrap_or(0);
        let last = forbidden.map(|(m, _)| *m).max().unwrap_or(first);
        CountQuery {
            series: subject_series(&self.bucket, s.kind, &s.value),
            from: first - reach,
            to: last + reach,
        }
    }

    /// The read of the bucket's minutes in which this object saw 403s.
    pub fn bucket_query(&self) -> Option<CountQuery> {
        let mut forbidden = self.minutes.iter().filter(|(_, (f, _, _))| *f > 0);
        let first = *forbidden.next()?.0;
        let last = forbidden.next_back().map_or(first, |(m, _)| *m);
        Some(CountQuery {
            series: bucket_series(&self.bucket),
            from: first,
            to: last,
        })
    }
}

/// A firing episode found on the merged counts: firing windows merged when their starts
/// are within one window of each other (single minutes for the bucket rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firing {
    /// Start of the first firing window.
    pub first_start: i64,
    /// Start of the last firing window.
    pub last_start: i64,
    /// The reported window: from the first firing window to the last minute with 403s.
    pub start: i64,
    /// Its end (exclusive).
    pub end: i64,
    /// Merged 403s in `[start, end)`.
    pub count: u64,
    /// Merged requests in `[start, end)`.
    pub total: u64,
}

fn share_reached(count: u64, total: u64, share: f64) -> bool {
    total > 0 && count as f64 >= share * total as f64
}

fn merge_episodes(starts: impl Iterator<Item = i64>, gap: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for start in starts {
        match out.last_mut() {
            Some(last) if start - last.1 <= gap => last.1 = start,
            _ => out.push((start, start)),
        }
    }
    out
}

fn sum(merged: &BTreeMap<i64, (u64, u64)>, from: i64, to: i64) -> (u64, u64) {
    merged
        .range(from..to)
        .fold((0, 0), |(f, t), (_, (mf, mt))| (f + mf, t + mt))
}

/// The subject's firing episodes among the windows that touch `changed` (minutes with a
/// 403 in this object), evaluated on the merged counts.
pub fn subject_firing(
    merged: &[MinuteCounts],
    changed: impl Iterator<Item = i64>,
    s: &AlertSettings,
) -> Vec<Firing> {
    let window = s.subject_403_window_minutes * 60;
    let merged: BTreeMap<i64, (u64, u64)> = merged
        .iter()
        .map(|m| (m.minute, (m.forbidden, m.total.max(m.forbidden))))
        .collect();
    let mut starts: Vec<i64> = changed
        .flat_map(|c| (0..s.subject_403_window_minutes).map(move |k| c - k * 60))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let firing = starts.into_iter().filter(|&start| {
        let (count, total) = sum(&merged, start, start + window);
        count >= s.subject_403_min && share_reached(count, total, s.subject_403_share)
    });
    merge_episodes(firing, window)
        .into_iter()
        .map(|(first_start, last_start)| {
            let reach = last_start + window;
            let start = merged
                .range(first_start..reach)
                .find(|(_, (f, _))| *f > 0)
                .map_or(first_start, |(m, _)| *m);
            let end = merged
                .range(first_start..reach)
                .rev()
                .find(|(_, (f, _))| *f > 0)
                .map_or(reach, |(m, _)| m + 60);
            let (count, total) = sum(&merged, start, end);
            Firing {
                first_start,
                last_start,
                start,
                end,
                count,
                total,
            }
        })
        .collect()
}

/// The bucket's firing minutes among `changed`, merged when adjacent, on merged counts.
pub fn bucket_firing(
    merged: &[MinuteCounts],
    changed: impl Iterator<Item = i64>,
    s: &AlertSettings,
) -> Vec<Firing> {
    let merged: BTreeMap<i64, (u64, u64)> = merged
        .iter()
        .map(|m| (m.minute, (m.forbidden, m.total.max(m.forbidden))))
        .collect();
    let mut minutes: Vec<i64> = changed
        .filter(|m| {
            let (f, t) = merged.get(m).copied().unwrap_or_default();
            f >= s.bucket_403_min && share_reached(f, t, s.bucket_403_share)
        })
        .collect();
    minutes.sort_unstable();
    minutes.dedup();
    merge_episodes(minutes.into_iter(), 60)
        .into_iter()
        .map(|(first_start, last_start)| {
            let (count, total) = sum(&merged, first_start, last_start + 60);
            Firing {
                first_start,
                last_start,
                start: first_start,
                end: last_start + 60,
                count,
                total,
            }
        })
        .collect()
}

/// When and how late an alert was raised, for its document.
#[derive(Debug, Clone, Copy)]
pub struct Detection<'a> {
    /// The log object that found it (`s3://bucket/key`).
    pub source: &'a str,
    /// Now (Unix seconds).
    pub now: i64,
}

impl Detection<'_> {
    fn stamp(&self, alert: &mut Alert, end: i64) {
        alert.detected_at = Some(rfc3339(self.now));
        alert.detection_delay_seconds = Some((self.now - end).max(0));
    }
}

/// The alert for a subject's firing episode on the merged counts.
pub fn subject_alert(
    bucket: &str,
    subject: &SubjectMinutes,
    f: &Firing,
    s: &AlertSettings,
    detection: Detection<'_>,
) -> Alert {
    let kind = subject.kind;
    let value = &subject.value;
    let window_start = rfc3339(f.start);
    let mut alert = Alert {
        alert_id: alert_id(&[
            "forbidden_spike",
            bucket,
            kind.as_str(),
            value,
            &rfc3339(f.first_start),
        ]),
        alert_type: AlertType::ForbiddenSpike,
        bucket: bucket.to_string(),
        window_start: window_start.clone(),
        window_start_unix: f.start,
        window_end: rfc3339(f.end),
        subject: Some(Subject {
            kind,
            value: value.clone(),
        }),
        count: f.count,
        total: Some(f.total),
        threshold: format!(
            "at least {} 403s and {:.0}% of the {}'s requests within {} minutes, across all log objects",
            s.subject_403_min,
            s.subject_403_share * 100.0,
            kind.as_str(),
            s.subject_403_window_minutes
        ),
        summary: format!(
            "{} {value} was denied (403) {} times on bucket {bucket} between {window_start} and {}",
            kind.as_str(),
            f.count,
            rfc3339(f.end)
        ),
        top_subjects: Vec::new(),
        samples: subject.samples.iter().take(MAX_SAMPLES).cloned().collect(),
        source_object: detection.source.to_string(),
        detected_at: None,
        detection_delay_seconds: None,
        client: None,
    };
    detection.stamp(&mut alert, f.end);
    alert
}

/// The alert for a bucket's firing minutes on the merged counts; its top subjects and
/// samples are those of the object that raised it.
pub fn bucket_alert(
    counts: &ObjectCounts,
    f: &Firing,
    s: &AlertSettings,
    detection: Detection<'_>,
) -> Alert {
    let bucket = &counts.bucket;
    let mut top: Vec<SubjectCount> = counts
        .subjects
        .iter()
        .map(|sub| SubjectCount {
            kind: sub.kind,
            value: sub.value.clone(),
            count: sub.minutes.range(f.start..f.end).map(|(_, (c, _))| c).sum(),
        })
        .filter(|c| c.count > 0)
        .collect();
    top.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
    top.truncate(TOP_SUBJECTS);
    let samples = counts
        .minutes
        .range(f.start..f.end)
        .flat_map(|(_, (_, _, samples))| samples.iter().cloned())
        .take(MAX_SAMPLES)
        .collect();
    let window_start = rfc3339(f.start);
    let mut alert = Alert {
        alert_id: alert_id(&["forbidden_spike", bucket, "bucket", &window_start]),
        alert_type: AlertType::ForbiddenSpike,
        bucket: bucket.clone(),
        window_start: window_start.clone(),
        window_start_unix: f.start,
        window_end: rfc3339(f.end),
        subject: None,
        count: f.count,
        total: Some(f.total),
        threshold: format!(
            "at least {} 403s and {:.0}% of requests in one minute on one bucket, across all log objects",
            s.bucket_403_min,
            s.bucket_403_share * 100.0
        ),
        summary: format!(
            "{} of {} requests to bucket {bucket} were denied (403) between {window_start} and {}",
            f.count,
            f.total,
            rfc3339(f.end)
        ),
        top_subjects: top,
        samples,
        source_object: detection.source.to_string(),
        detected_at: None,
        detection_delay_seconds: None,
        client: None,
    };
    detection.stamp(&mut alert, f.end);
    alert
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(rows: &[(i64, u64, u64)]) -> Vec<MinuteCounts> {
        rows.iter()
            .map(|&(minute, forbidden, total)| MinuteCounts {
                minute,
                forbidden,
                total,
            })
            .collect()
    }

    #[test]
    fn a_window_fires_on_merged_counts_that_no_single_object_reaches() {
        let s = AlertSettings::default();
        // 45 403s over 5 minutes: each object saw 9 in its minute.
        let merged = counts(&[(0, 9, 9), (60, 9, 9), (120, 9, 9), (180, 9, 9), (240, 9, 9)]);
        let f = subject_firing(&merged, [120].into_iter(), &s);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].start, f[0].end, f[0].count, f[0].total),
            (0, 300, 45, 45)
        );
        // A busy client's share stays under 50%.
        let busy = counts(&[
            (0, 9, 30),
            (60, 9, 30),
            (120, 9, 30),
            (180, 9, 30),
            (240, 9, 30),
        ]);
        assert!(subject_firing(&busy, [120].into_iter(), &s).is_empty());
        // One short of the minimum.
        let short = counts(&[(0, 39, 39)]);
        assert!(subject_firing(&short, [0].into_iter(), &s).is_empty());
    }

    #[test]
    fn overlapping_windows_are_one_episode_and_far_ones_two() {
        let s = AlertSettings {
            subject_403_min: 10,
            ..AlertSettings::default()
        };
        let merged = counts(&[(0, 10, 10), (60, 10, 10), (3600, 10, 10)]);
        let f = subject_firing(&merged, [0, 60, 3600].into_iter(), &s);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!((f[0].start, f[0].end, f[0].count), (0, 120, 20));
        assert_eq!((f[1].start, f[1].end), (3600, 3660));
    }

    #[test]
    fn the_bucket_rule_merges_adjacent_minutes_only() {
        let s = AlertSettings::default();
        let merged = counts(&[(0, 60, 100), (60, 60, 100), (180, 60, 100), (240, 10, 100)]);
        let f = bucket_firing(&merged, [0, 60, 180, 240].into_iter(), &s);
        let spans: Vec<(i64, i64, u64)> = f.iter().map(|f| (f.start, f.end, f.count)).collect();
        assert_eq!(spans, [(0, 120, 120), (180, 240, 60)]);
    }

    #[test]
    fn long_subjects_are_stored_by_hash_and_updates_are_sorted_and_merged() {
        let long = "x".repeat(500);
        assert!(subject_series("b", SubjectKind::Requester, &long).len() < 64);
        assert_eq!(
            subject_series("b", SubjectKind::RemoteIp, "1.2.3.4"),
            "c#b#remote_ip#1.2.3.4"
        );
        let c = ObjectCounts {
            bucket: "b".into(),
            minutes: [(60, (1, 2, Vec::new())), (0, (0, 3, Vec::new()))].into(),
            subjects: vec![SubjectMinutes {
                kind: SubjectKind::RemoteIp,
                value: "1.2.3.4".into(),
                minutes: [(0, (0, 0)), (60, (1, 1))].into(),
                samples: Vec::new(),
            }],
        };
        let u = c.updates();
        let keys: Vec<(&str, i64)> = u.iter().map(|u| (u.series.as_str(), u.minute)).collect();
        assert_eq!(
            keys,
            [("b#b", 0), ("b#b", 60), ("c#b#remote_ip#1.2.3.4", 60)]
        );
        assert_eq!(c.bucket_query().map(|q| (q.from, q.to)), Some((60, 60)));
        let q = c.subject_query(&c.subjects[0], &AlertSettings::default());
        assert_eq!((q.from, q.to), (60 - 300, 60 + 300));
    }
}
