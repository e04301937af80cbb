//! Counting what alerts need while records stream past, in memory that does not grow with
//! the number of distinct requesters or addresses, then turning the counts into alerts.
//!
//! AWS's own traffic (an `aws-internal` user agent, or an `svc:…` / `AmazonS3` / AWS
//! service requester) is left out of every count: it is not an attacker, and replication
//! or inventory bursts would otherwise look like spikes and new requesters.

use std::collections::BTreeMap;

use super::heavy::HeavyHitters;
use super::rfc3339;
use super::{
    Alert, AlertSettings, AlertType, MAX_SAMPLES, Sample, Subject, SubjectCount, SubjectKind,
    alert_id,
};
use crate::access_log::Rfc3339;
use crate::enrich::{Enriched, RequesterType, UserAgentFamily};
use crate::geo::ClientNetwork;
use crate::slots::OrderedSlots;

/// Counters for 403s per (minute, subject), per subject kind and bucket.
pub const FORBIDDEN_COUNTERS: usize = 1024;
/// Counters for all requests per (minute, subject), for the 403 share.
pub const TOTAL_COUNTERS: usize = 4096;
/// Counters for the distinct requesters, and separately addresses, seen per bucket.
pub const SEEN_COUNTERS: usize = 2048;
/// Source buckets tracked per log object (S3 writes one source bucket per object).
pub const MAX_BUCKETS: usize = 4;
/// Minutes tracked per bucket for the per-bucket spike: a day, far more than one log
/// object spans. Records in further minutes are not counted for it.
pub const MAX_MINUTES: usize = 24 * 60;
/// Samples kept per minute for the per-bucket spike.
const SAMPLES_PER_MINUTE: usize = 3;
/// Subjects named in an alert about a whole bucket.
const TOP_SUBJECTS: usize = 5;
/// Samples kept per (minute, subject) 403 counter.
const SAMPLES_PER_COUNTER: usize = 2;
/// Longest key kept in a sample.
const MAX_SAMPLE_KEY: usize = 256;

/// True for AWS's own traffic, which no alert counts.
pub fn is_internal(record: &Enriched<'_>) -> bool {
    record.requester_type == RequesterType::AwsService
        || record.user_agent_family == Some(UserAgentFamily::AwsInternal)
}

/// True for TLS versions older than 1.2 (`TLSv1`, `TLSv1.1`, SSL).
pub fn is_legacy_tls(version: &str) -> bool {
    matches!(version, "TLSv1" | "TLSv1.0" | "TLSv1.1") || version.starts_with("SSL")
}

fn sample(record: &Enriched<'_>) -> Sample {
    let r = &record.record;
    Sample {
        request_id: r.request_id.map(str::to_string),
        key: r.key.map(|k| cut(k, MAX_SAMPLE_KEY).to_string()),
        time: r.time.rfc3339().as_str().to_string(),
    }
}

/// Sets `slot` to `text`, reusing the string it holds.
fn refill(slot: &mut Option<String>, text: Option<&str>) {
    match (slot.as_mut(), text) {
        (Some(buf), Some(text)) => {
            buf.clear();
            buf.push_str(text);
        }
        (None, Some(text)) => *slot = Some(text.to_string()),
        (_, None) => *slot = None,
    }
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// When a subject was first and last seen in this object, and one request of theirs.
#[derive(Debug, Clone)]
pub struct Seen {
    /// First event time (Unix seconds).
    pub first: i64,
    /// Last event time.
    pub last: i64,
    /// Their first request.
    pub sample: Sample,
}

/// [`Seen`] while counting: the first request's time is held inline (the record's own
/// formatted time, so no formatting and no allocation) and becomes a `String` only for
/// the subjects kept at the end, not for the many of a spray that lose their counter.
#[derive(Debug, Clone, Default)]
struct Sighting {
    first: i64,
    last: i64,
    /// When the first request was made; `None` until one is taken.
    sampled_at: Option<Rfc3339>,
    request_id: Option<String>,
    key: Option<String>,
}

impl Sighting {
    /// Counts one request of the subject at `time`.
    fn add(&mut self, record: &Enriched<'_>, time: i64) {
        if self.sampled_at.is_some() {
            self.first = self.first.min(time);
            self.last = self.last.max(time);
            return;
        }
        let r = &record.record;
        self.first = time;
        self.last = time;
        self.sampled_at = Some(r.time.rfc3339());
        refill(&mut self.request_id, r.request_id);
        refill(&mut self.key, r.key.map(|k| cut(k, MAX_SAMPLE_KEY)));
    }

    fn into_seen(self) -> Seen {
        Seen {
            first: self.first,
            last: self.last,
            sample: Sample {
                request_id: self.request_id,
                key: self.key,
                time: self
                    .sampled_at
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
            },
        }
    }
}

impl super::heavy::Recycle for Sighting {
    /// Keeps the sample's strings for the next subject's first request.
    fn recycle(&mut self) {
        self.sampled_at = None;
    }
}

#[derive(Debug, Clone, Default)]
struct MinuteCount {
    total: u64,
    forbidden: u64,
    samples: Vec<Sample>,
}

/// A signal counted per bucket: anonymous access, scanners, legacy TLS.
#[derive(Debug, Clone)]
struct Aggregate {
    count: u64,
    first: i64,
    last: i64,
    subjects: HeavyHitters<Option<SubjectKind>>,
    samples: Vec<Sample>,
}

impl Aggregate {
    fn new() -> Self {
        Self {
            count: 0,
            first: i64::MAX,
            last: i64::MIN,
            subjects: HeavyHitters::new(64),
            samples: Vec::new(),
        }
    }

    fn add(&mut self, record: &Enriched<'_>, kind: SubjectKind, subject: &str) {
        let time = record.record.time.unix_seconds();
        self.count += 1;
        self.first = self.first.min(time);
        self.last = self.last.max(time);
        if let Some(k) = self.subjects.add(subject) {
            *k = Some(kind);
        }
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(sample(record));
        }
    }
}

/// 403 counts for one subject kind: per (minute, subject) key, written `minute subject`.
#[derive(Debug, Clone)]
struct SubjectCounters {
    forbidden: HeavyHitters<Vec<Sample>>,
    totals: HeavyHitters<()>,
    seen: HeavyHitters<Sighting>,
}

impl SubjectCounters {
    fn new() -> Self {
        Self {
            forbidden: HeavyHitters::new(FORBIDDEN_COUNTERS),
            totals: HeavyHitters::new(TOTAL_COUNTERS),
            seen: HeavyHitters::new(SEEN_COUNTERS),
        }
    }
}

#[derive(Debug, Clone)]
struct BucketCounters {
    name: String,
    private: bool,
    /// Per-minute counts, for at most [`MAX_MINUTES`] minutes.
    minutes: OrderedSlots<i64, MinuteCount>,
    by_kind: [SubjectCounters; 2],
    anonymous: Aggregate,
    scanner: Aggregate,
    legacy_tls: Aggregate,
}

/// Everything one log object's records showed, ready to compare with the baseline.
#[derive(Debug, Clone)]
pub struct BucketSightings {
    /// The source bucket.
    pub bucket: String,
    /// Requesters seen (non-anonymous, not AWS's own), with when and one request.
    pub requesters: Vec<(String, Seen)>,
    /// Remote addresses seen.
    pub remote_ips: Vec<(String, Seen)>,
    /// The earliest event time among them.
    pub earliest: i64,
    /// True when there were more distinct subjects than counters, so some were not kept.
    pub overflowed: bool,
}

/// What [`Detector::finish`] found.
#[derive(Debug, Clone)]
pub struct Findings {
    /// Alerts that need no baseline (403 spikes, anonymous access, scanners, legacy TLS).
    pub alerts: Vec<Alert>,
    /// Who was seen, per bucket, for the new-requester and new-address alerts.
    pub sightings: Vec<BucketSightings>,
    /// Records from buckets beyond [`MAX_BUCKETS`], not counted.
    pub untracked_records: u64,
}

/// Counts one log object's records for the alerts.
#[derive(Debug)]
pub struct Detector {
    settings: AlertSettings,
    source_object: String,
    buckets: Vec<BucketCounters>,
    untracked_records: u64,
    /// `minute subject` keys are built here: the minute's text is kept and only rewritten
    /// when the minute changes (records come in time order), then the subject appended.
    scratch: String,
    /// The minute whose text starts `scratch`, and that text's length.
    scratch_minute: Option<(i64, usize)>,
}

impl Detector {
    /// A detector for the records of `source_object` (`s3://bucket/key`).
    pub fn new(settings: AlertSettings, source_object: String) -> Self {
        Self {
            settings,
            source_object,
            buckets: Vec::new(),
            untracked_records: 0,
            scratch: String::new(),
            scratch_minute: None,
        }
    }

    fn bucket_index(&mut self, name: &str) -> Option<usize> {
        if let Some(last) = self.buckets.last()
            && last.name == name
        {
            return Some(self.buckets.len() - 1);
        }
        if let Some(i) = self.buckets.iter().position(|b| b.name == name) {
            return Some(i);
        }
        if self.buckets.len() >= MAX_BUCKETS {
            return None;
        }
        self.buckets.push(BucketCounters {
            name: name.to_string(),
            private: self.settings.is_private(name),
            minutes: OrderedSlots::default(),
            by_kind: [SubjectCounters::new(), SubjectCounters::new()],
            anonymous: Aggregate::new(),
            scanner: Aggregate::new(),
            legacy_tls: Aggregate::new(),
        });
        Some(self.buckets.len() - 1)
    }

    /// Counts one curated record.
    pub fn observe(&mut self, record: &Enriched<'_>) {
        if is_internal(record) {
            return;
        }
        let r = &record.record;
        let Some(b) = self.bucket_index(r.bucket.unwrap_or(crate::outputs::UNKNOWN_BUCKET)) else {
            self.untracked_records += 1;
            return;
        };
        let bucket = &mut self.buckets[b];
        let time = r.time.unix_seconds();
        let minute = time.div_euclid(60) * 60;
        let forbidden = r.http_status == Some(403);

        // Minutes past MAX_MINUTES are left out of the per-bucket spike only.
        if let Some(m) = bucket.minutes.get_or_open(minute, MAX_MINUTES) {
            m.total += 1;
            if forbidden {
                m.forbidden += 1;
                if m.samples.len() < SAMPLES_PER_MINUTE {
                    m.samples.push(sample(record));
                }
            }
        }

        // Indexed like `by_kind`: requester, then remote IP.
        for (i, subject) in [r.requester, r.remote_ip].into_iter().enumerate() {
            let Some(subject) = subject else { continue };
            let counters = &mut bucket.by_kind[i];
            let prefix_len = match self.scratch_minute {
                Some((m, len)) if m == minute => len,
                _ => {
                    self.scratch.clear();
                    push_minute_key(&mut self.scratch, minute, "");
                    let len = self.scratch.len();
                    self.scratch_minute = Some((minute, len));
                    len
                }
            };
            self.scratch.truncate(prefix_len);
            self.scratch.push_str(subject);
            counters.totals.add(&self.scratch);
            if forbidden
                && let Some(samples) = counters.forbidden.add(&self.scratch)
                && samples.len() < SAMPLES_PER_COUNTER
            {
                samples.push(sample(record));
            }
            // Novelty only: an allowed network's addresses still count toward 403 spikes.
            let novelty_allowed = i == 1
                && self
                    .settings
                    .asn_allowed(record.client.as_ref().and_then(ClientNetwork::asn));
            if novelty_allowed {
                continue;
            }
            if let Some(seen) = counters.seen.add(subject) {
                seen.add(record, time);
            }
        }

        let ip = r.remote_ip.unwrap_or("-");
        let success = matches!(r.http_status, Some(200..=299));
        if bucket.private && r.requester.is_none() && success {
            bucket.anonymous.add(record, SubjectKind::RemoteIp, ip);
        }
        if record.user_agent_family == Some(UserAgentFamily::Scanner) {
            bucket.scanner.add(record, SubjectKind::RemoteIp, ip);
        }
        if r.tls_version.is_some_and(is_legacy_tls) {
            match r.requester {
                Some(requester) => bucket
                    .legacy_tls
                    .add(record, SubjectKind::Requester, requester),
                None => bucket.legacy_tls.add(record, SubjectKind::RemoteIp, ip),
            }
        }
    }

    /// What this object adds to the shared detection state, per source bucket: every
    /// bucket minute, every (minute, subject) with a 403, and the
    /// [`super::shared::TOTALS_WRITTEN`] busiest (minute, subject) request counters per
    /// kind. Bounded by the counters, whatever the object's size.
    pub fn shared_counts(&self) -> Vec<super::shared::ObjectCounts> {
        use super::shared::{ObjectCounts, SubjectMinutes, TOTALS_WRITTEN};
        let mut out = Vec::new();
        for bucket in &self.buckets {
            let minutes = bucket
                .minutes
                .iter()
                .map(|(m, c)| (m, (c.forbidden, c.total, c.samples.clone())))
                .collect();
            let mut subjects = Vec::new();
            for (i, kind) in [SubjectKind::Requester, SubjectKind::RemoteIp]
                .into_iter()
                .enumerate()
            {
                let counters = &bucket.by_kind[i];
                let mut by_subject: BTreeMap<&str, SubjectMinutes> = BTreeMap::new();
                let new = |subject: &str| SubjectMinutes {
                    kind,
                    value: subject.to_string(),
                    minutes: BTreeMap::new(),
                    samples: Vec::new(),
                };
                for (key, c) in counters.forbidden.iter() {
                    let Some((minute, subject)) = split_minute_key(key) else {
                        continue;
                    };
                    let s = by_subject.entry(subject).or_insert_with(|| new(subject));
                    let total = counters.totals.count(key).max(c.count);
                    s.minutes.insert(minute, (c.count, total));
                    for sample in &c.value {
                        if s.samples.len() < MAX_SAMPLES {
                            s.samples.push(sample.clone());
                        }
                    }
                }
                for (key, c) in counters.totals.top(TOTALS_WRITTEN) {
                    let Some((minute, subject)) = split_minute_key(key) else {
                        continue;
                    };
                    let s = by_subject.entry(subject).or_insert_with(|| new(subject));
                    s.minutes.entry(minute).or_insert((0, c.count));
                }
                subjects.extend(by_subject.into_values());
            }
            out.push(ObjectCounts {
                bucket: bucket.name.clone(),
                minutes,
                subjects,
            });
        }
        out
    }

    /// The alerts found and the subjects seen.
    pub fn finish(self) -> Findings {
        let Detector {
            settings,
            source_object,
            buckets,
            untracked_records,
            ..
        } = self;
        let mut alerts = Vec::new();
        let mut sightings = Vec::new();
        for bucket in buckets {
            alerts.extend(bucket_alerts(&bucket, &settings, &source_object));
            sightings.push(bucket.into_sightings());
        }
        Findings {
            alerts,
            sightings,
            untracked_records,
        }
    }
}

impl BucketCounters {
    /// Who was seen, moved out of the counters (which are done with) rather than copied.
    fn into_sightings(self) -> BucketSightings {
        let overflowed = self.by_kind.iter().any(|c| c.seen.max_undercount() > 0);
        let first_minute = self.minutes.keys().next();
        let [requesters, remote_ips] = self.by_kind.map(|c| sorted_sightings(c.seen));
        let earliest = requesters
            .iter()
            .chain(&remote_ips)
            .map(|(_, seen)| seen.first)
            .min()
            .or(first_minute)
            .unwrap_or(0);
        BucketSightings {
            bucket: self.name,
            requesters,
            remote_ips,
            earliest,
            overflowed,
        }
    }
}

/// The kept subjects, earliest first (ties by subject, for stable output).
fn sorted_sightings(seen: HeavyHitters<Sighting>) -> Vec<(String, Seen)> {
    let mut v: Vec<(String, Seen)> = seen
        .into_kept()
        .map(|(k, c)| (k, c.value.into_seen()))
        .collect();
    v.sort_by(|a, b| a.1.first.cmp(&b.1.first).then(a.0.cmp(&b.0)));
    v
}

/// The alerts that need no baseline, for one bucket: 403 spikes, anonymous access,
/// scanners, legacy TLS.
fn bucket_alerts(bucket: &BucketCounters, s: &AlertSettings, source: &str) -> Vec<Alert> {
    let mut alerts = Vec::new();
    if s.enabled(AlertType::ForbiddenSpike) {
        alerts.extend(bucket_spikes(bucket, s, source));
        for (i, kind) in [SubjectKind::Requester, SubjectKind::RemoteIp]
            .into_iter()
            .enumerate()
        {
            alerts.extend(subject_spikes(bucket, &bucket.by_kind[i], kind, s, source));
        }
    }
    let aggregates = [
        (
            AlertType::AnonymousAccess,
            &bucket.anonymous,
            "successful anonymous requests on a bucket configured as private",
            "ALERT_PRIVATE_BUCKETS lists the bucket",
        ),
        (
            AlertType::ScannerUserAgent,
            &bucket.scanner,
            "requests from a scanner's user agent",
            "any request",
        ),
        (
            AlertType::LegacyTls,
            &bucket.legacy_tls,
            "requests over TLS older than 1.2",
            "any request",
        ),
    ];
    for (alert_type, aggregate, what, threshold) in aggregates {
        if aggregate.count == 0 || !s.enabled(alert_type) {
            continue;
        }
        alerts.push(aggregate_alert(
            alert_type,
            &bucket.name,
            aggregate,
            what,
            threshold,
            source,
        ));
    }
    alerts
}

fn push_minute_key(out: &mut String, minute: i64, subject: &str) {
    use std::fmt::Write;
    let _ = write!(out, "{minute} {subject}");
}

fn split_minute_key(key: &str) -> Option<(i64, &str)> {
    let (minute, subject) = key.split_once(' ')?;
    Some((minute.parse().ok()?, subject))
}

/// Runs of consecutive firing minutes, merged into episodes `[start, end)`.
fn episodes(firing: impl Iterator<Item = (i64, i64)>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (start, end) in firing {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

fn share_reached(count: u64, total: u64, share: f64) -> bool {
    total > 0 && count as f64 >= share * total as f64
}

fn bucket_spikes(bucket: &BucketCounters, s: &AlertSettings, source: &str) -> Vec<Alert> {
    let firing = bucket
        .minutes
        .iter()
        .filter(|(_, m)| {
            m.forbidden >= s.bucket_403_min
                && share_reached(m.forbidden, m.total, s.bucket_403_share)
        })
        .map(|(minute, _)| (minute, minute + 60));
    episodes(firing)
        .into_iter()
        .map(|(start, end)| {
            let in_window = bucket.minutes.range(start..end);
            let (mut count, mut total, mut samples) = (0, 0, Vec::new());
            for (_, m) in in_window {
                count += m.forbidden;
                total += m.total;
                for sample in &m.samples {
                    if samples.len() < MAX_SAMPLES {
                        samples.push(sample.clone());
                    }
                }
            }
            let mut top: BTreeMap<(SubjectKind, &str), u64> = BTreeMap::new();
            for (i, kind) in [SubjectKind::Requester, SubjectKind::RemoteIp]
                .into_iter()
                .enumerate()
            {
                for (key, c) in bucket.by_kind[i].forbidden.iter() {
                    if let Some((minute, subject)) = split_minute_key(key)
                        && (start..end).contains(&minute)
                    {
                        *top.entry((kind, subject)).or_default() += c.count;
                    }
                }
            }
            let mut top: Vec<SubjectCount> = top
                .into_iter()
                .map(|((kind, value), count)| SubjectCount {
                    kind,
                    value: value.to_string(),
                    count,
                })
                .collect();
            top.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
            top.truncate(TOP_SUBJECTS);
            let window_start = rfc3339(start);
            Alert {
                alert_id: alert_id(&["forbidden_spike", &bucket.name, "bucket", &window_start]),
                alert_type: AlertType::ForbiddenSpike,
                bucket: bucket.name.clone(),
                window_start,
                window_start_unix: start,
                window_end: rfc3339(end),
                subject: None,
                count,
                total: Some(total),
                threshold: format!(
                    "at least {} 403s and {:.0}% of requests in one minute on one bucket",
                    s.bucket_403_min,
                    s.bucket_403_share * 100.0
                ),
                summary: format!(
                    "{count} of {total} requests to bucket {} were denied (403) between {} and {}",
                    bucket.name,
                    rfc3339(start),
                    rfc3339(end)
                ),
                top_subjects: top,
                samples,
                source_object: source.to_string(),
                detected_at: None,
                detection_delay_seconds: None,
                client: None,
            }
        })
        .collect()
}

fn subject_spikes(
    bucket: &BucketCounters,
    counters: &SubjectCounters,
    kind: SubjectKind,
    s: &AlertSettings,
    source: &str,
) -> Vec<Alert> {
    // Group the (minute, subject) 403 counters by subject.
    let mut by_subject: BTreeMap<&str, BTreeMap<i64, (u64, &[Sample])>> = BTreeMap::new();
    for (key, c) in counters.forbidden.iter() {
        if let Some((minute, subject)) = split_minute_key(key) {
            by_subject
                .entry(subject)
                .or_default()
                .insert(minute, (c.count, c.value.as_slice()));
        }
    }
    let window = s.subject_403_window_minutes * 60;
    let mut key = String::new();
    let mut total_upper = |subject: &str, start: i64, end: i64| -> u64 {
        (start..end)
            .step_by(60)
            .map(|minute| {
                key.clear();
                push_minute_key(&mut key, minute, subject);
                counters.totals.upper_bound(&key)
            })
            .sum()
    };
    let mut alerts = Vec::new();
    for (subject, minutes) in &by_subject {
        let firing: Vec<(i64, i64)> = minutes
            .keys()
            .filter_map(|&start| {
                let end = start + window;
                let count: u64 = minutes.range(start..end).map(|(_, (c, _))| c).sum();
                let total = total_upper(subject, start, end).max(count);
                (count >= s.subject_403_min && share_reached(count, total, s.subject_403_share))
                    .then_some((start, end))
            })
            .collect();
        for (start, end) in episodes(firing.into_iter()) {
            // The episode ends at the last 403 minute inside it.
            let last = minutes
                .range(start..end)
                .next_back()
                .map_or(end, |(m, _)| m + 60);
            let count: u64 = minutes.range(start..last).map(|(_, (c, _))| c).sum();
            let total = total_upper(subject, start, last).max(count);
            let samples: Vec<Sample> = minutes
                .range(start..last)
                .flat_map(|(_, (_, samples))| samples.iter().cloned())
                .take(MAX_SAMPLES)
                .collect();
            let window_start = rfc3339(start);
            alerts.push(Alert {
                alert_id: alert_id(&[
                    "forbidden_spike",
                    &bucket.name,
                    kind.as_str(),
                    subject,
                    &window_start,
                ]),
                alert_type: AlertType::ForbiddenSpike,
                bucket: bucket.name.clone(),
                window_start,
                window_start_unix: start,
                window_end: rfc3339(last),
                subject: Some(Subject {
                    kind,
                    value: subject.to_string(),
                }),
                count,
                total: Some(total),
                threshold: format!(
                    "at least {} 403s and {:.0}% of the {}'s requests within {} minutes",
                    s.subject_403_min,
                    s.subject_403_share * 100.0,
                    kind.as_str(),
                    s.subject_403_window_minutes
                ),
                summary: format!(
                    "{} {subject} was denied (403) {count} times on bucket {} between {} and {}",
                    kind.as_str(),
                    bucket.name,
                    rfc3339(start),
                    rfc3339(last)
                ),
                top_subjects: Vec::new(),
                samples,
                source_object: source.to_string(),
                detected_at: None,
                detection_delay_seconds: None,
                client: None,
            });
        }
    }
    alerts
}

fn aggregate_alert(
    alert_type: AlertType,
    bucket: &str,
    a: &Aggregate,
    what: &str,
    threshold: &str,
    source: &str,
) -> Alert {
    let start = a.first.div_euclid(60) * 60;
    let end = a.last.div_euclid(60) * 60 + 60;
    let top_subjects = a
        .subjects
        .top(TOP_SUBJECTS)
        .into_iter()
        .map(|(value, c)| SubjectCount {
            kind: c.value.unwrap_or(SubjectKind::RemoteIp),
            value: value.to_string(),
            count: c.count,
        })
        .collect();
    let window_start = rfc3339(start);
    Alert {
        alert_id: alert_id(&[alert_type.as_str(), bucket, &window_start, source]),
        alert_type,
        bucket: bucket.to_string(),
        window_start: window_start.clone(),
        window_start_unix: start,
        window_end: rfc3339(end),
        subject: None,
        count: a.count,
        total: None,
        threshold: threshold.to_string(),
        summary: format!(
            "{} {what} on bucket {bucket} between {window_start} and {}",
            a.count,
            rfc3339(end)
        ),
        top_subjects,
        samples: a.samples.clone(),
        source_object: source.to_string(),
        detected_at: None,
        detection_delay_seconds: None,
        client: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::parse_line;
    use crate::enrich::Lineage;

    /// 2026-11-20T14:59:59Z.
    const T_59_59: i64 = 1_795_186_799;

    /// A log line at `14:MM:SS` on 2026-11-20.
    fn line(minute: u32, second: u32, ip: &str, requester: &str, status: u16, ua: &str) -> String {
        format!(
            r#"o b [20/Nov/2026:14:{minute:02}:{second:02} +0000] {ip} {requester} REQ{minute}{second} REST.GET.OBJECT k "GET /k HTTP/1.1" {status} - 10 10 5 1 "-" "{ua}" - HOST SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader b.s3.amazonaws.com TLSv1.2"#
        )
    }

    fn run(settings: AlertSettings, lines: &[String]) -> Findings {
        let mut d = Detector::new(settings, "s3://logs/raw/x".into());
        for (i, text) in lines.iter().enumerate() {
            let record = parse_line(text).unwrap();
            let lineage = Lineage {
                source_object: None,
                source_line: i as u64 + 1,
            };
            d.observe(&Enriched::new(record, lineage, false));
        }
        d.finish()
    }

    fn spikes(f: &Findings) -> Vec<&Alert> {
        f.alerts
            .iter()
            .filter(|a| a.alert_type == AlertType::ForbiddenSpike)
            .collect()
    }

    #[test]
    fn forty_403s_from_one_address_within_six_minutes_alert_once() {
        let mut lines = Vec::new();
        for i in 0..45 {
            lines.push(line(i / 10, i % 60, "203.0.113.9", "-", 403, "curl/8"));
        }
        for i in 0..200 {
            lines.push(line(i % 6, i % 60, "192.0.2.1", "alice", 200, "aws-cli/2"));
        }
        let f = run(AlertSettings::default(), &lines);
        let spikes = spikes(&f);
        assert_eq!(spikes.len(), 1, "{spikes:#?}");
        let a = spikes[0];
        let subject = a.subject.as_ref().unwrap();
        assert_eq!(
            (subject.kind, subject.value.as_str()),
            (SubjectKind::RemoteIp, "203.0.113.9")
        );
        assert_eq!(a.count, 45);
        assert_eq!(a.window_start, "2026-11-20T14:00:00Z");
        assert_eq!(a.window_end, "2026-11-20T14:05:00Z");
        assert!(!a.samples.is_empty() && a.samples.len() <= MAX_SAMPLES);
    }

    #[test]
    fn a_quiet_log_raises_nothing() {
        let mut lines = Vec::new();
        for i in 0..600 {
            let status = if i % 20 == 0 { 403 } else { 200 };
            lines.push(line(
                i % 10,
                i % 60,
                "192.0.2.1",
                "alice",
                status,
                "aws-cli/2",
            ));
        }
        assert!(run(AlertSettings::default(), &lines).alerts.is_empty());
    }

    #[test]
    fn the_share_keeps_a_busy_client_with_some_403s_quiet() {
        // 60 403s in 6 minutes, but among 1,000 requests of the same requester.
        let mut lines = Vec::new();
        for i in 0..1000 {
            let status = if i % 16 == 0 { 403 } else { 200 };
            lines.push(line(
                i % 6,
                i % 60,
                "192.0.2.1",
                "etl",
                status,
                "aws-sdk-java",
            ));
        }
        assert!(spikes(&run(AlertSettings::default(), &lines)).is_empty());
    }

    #[test]
    fn a_bucket_wide_spike_names_its_top_subjects() {
        let settings = AlertSettings {
            bucket_403_min: 30,
            ..AlertSettings::default()
        };
        let mut lines = Vec::new();
        for i in 0..60 {
            // 60 addresses, one 403 each, in one minute: no subject reaches 40.
            lines.push(line(
                3,
                i % 60,
                &format!("198.51.100.{i}"),
                "-",
                403,
                "curl/8",
            ));
        }
        let f = run(settings, &lines);
        let spikes = spikes(&f);
        assert_eq!(spikes.len(), 1, "{spikes:#?}");
        assert!(spikes[0].subject.is_none());
        assert_eq!(spikes[0].count, 60);
        assert_eq!(spikes[0].top_subjects.len(), 5);
    }

    #[test]
    fn aws_internal_traffic_is_not_counted() {
        let mut lines = Vec::new();
        for i in 0..100 {
            lines.push(line(
                0,
                i % 60,
                "203.0.113.9",
                "svc:logging.s3.amazonaws.com",
                403,
                "aws-internal/3",
            ));
            lines.push(line(
                0,
                i % 60,
                "203.0.113.8",
                "AmazonS3",
                403,
                "aws-internal/3",
            ));
        }
        let f = run(AlertSettings::default(), &lines);
        assert!(f.alerts.is_empty(), "{:#?}", f.alerts);
        assert!(
            f.sightings
                .iter()
                .all(|s| s.requesters.is_empty() && s.remote_ips.is_empty())
        );
    }

    #[test]
    fn scanners_legacy_tls_and_anonymous_reads_on_private_buckets() {
        let settings = AlertSettings {
            private_buckets: vec![super::super::allow::Pattern::new("b")],
            ..AlertSettings::default()
        };
        let tls = line(1, 0, "192.0.2.7", "bob", 200, "aws-cli/2").replace("TLSv1.2", "TLSv1.1");
        let lines = vec![
            line(0, 1, "203.0.113.5", "-", 404, "sqlmap/1.7"),
            line(0, 2, "203.0.113.6", "-", 200, "curl/8"),
            tls,
        ];
        let f = run(settings, &lines);
        let types: Vec<AlertType> = f.alerts.iter().map(|a| a.alert_type).collect();
        assert_eq!(
            types,
            [
                AlertType::AnonymousAccess,
                AlertType::ScannerUserAgent,
                AlertType::LegacyTls
            ]
        );
        assert_eq!(f.alerts[0].top_subjects[0].value, "203.0.113.6");
        assert_eq!(f.alerts[2].top_subjects[0].value, "bob");
    }

    #[test]
    fn a_subject_in_a_reused_counter_gets_its_own_first_request() {
        // SEEN_COUNTERS + 1 addresses once each: the last one finds the counters full, and
        // decrementing them frees every slot, which the next address then reuses.
        let mut lines: Vec<String> = (0..=SEEN_COUNTERS as u32)
            .map(|i| {
                line(
                    0,
                    0,
                    &format!("10.0.{}.{}", i >> 8, i & 255),
                    "-",
                    200,
                    "curl/8",
                )
            })
            .collect();
        lines.push(line(59, 59, "198.51.100.9", "-", 200, "curl/8"));
        let f = run(AlertSettings::default(), &lines);
        let ips = &f.sightings[0].remote_ips;
        assert_eq!(ips.len(), 1, "{ips:?}");
        let (ip, seen) = &ips[0];
        assert_eq!(ip, "198.51.100.9");
        assert_eq!(seen.sample.request_id.as_deref(), Some("REQ5959"));
        assert_eq!(seen.sample.time, "2026-11-20T14:59:59Z");
        assert_eq!((seen.first, seen.last), (T_59_59, T_59_59));
    }

    #[test]
    fn memory_is_bounded_under_an_address_spray() {
        let mut d = Detector::new(AlertSettings::default(), "o".into());
        for i in 0..50_000u32 {
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            let text = line((i / 1000) % 60, i % 60, &ip, "-", 403, "curl/8");
            d.observe(&Enriched::new(
                parse_line(&text).unwrap(),
                Lineage {
                    source_object: None,
                    source_line: 1,
                },
                false,
            ));
        }
        let b = &d.buckets[0];
        assert!(b.by_kind[1].forbidden.len() <= FORBIDDEN_COUNTERS);
        assert!(b.by_kind[1].totals.len() <= TOTAL_COUNTERS);
        assert!(b.by_kind[1].seen.len() <= SEEN_COUNTERS);
        let f = d.finish();
        assert!(f.sightings[0].overflowed);
        assert!(f.sightings[0].remote_ips.len() <= SEEN_COUNTERS);
    }
}
