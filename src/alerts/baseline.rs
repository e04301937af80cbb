//! The per-bucket baseline of known requesters and addresses, kept as a JSON object under
//! `{STATE_PREFIX}baseline/{bucket}.json`. Pure: the pipeline reads it, asks which
//! sightings are new, merges the sightings in, and writes it back with `If-Match` on the
//! ETag it read (retrying on conflict, re-merging into the newer version), so concurrent
//! invocations never lose each other's updates.
//!
//! The baseline learns during the first `ALERT_LEARNING_HOURS` of event time after the
//! first record it saw, and alerts on nothing new during that time. Its size is bounded:
//! each list keeps at most `ALERT_BASELINE_MAX_ENTRIES`, evicting the least recently seen.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::detect::{BucketSightings, SEEN_COUNTERS, Seen};
use super::{
    Alert, AlertSettings, AlertType, Subject, SubjectCount, SubjectKind, alert_id, rfc3339,
};

/// New subjects reported one alert each per log object and kind; the rest are reported
/// together in one summary alert, so an address spray cannot flood the topic.
pub const MAX_INDIVIDUAL_ALERTS: usize = 10;

/// How far a known subject's last-seen time must move before the baseline is written
/// for it alone: a day. Most log objects bring only subjects the baseline already knows;
/// each would otherwise cost a PutObject (the baseline's write) for times that only
/// decide which subjects are evicted first, once a list passes
/// `ALERT_BASELINE_MAX_ENTRIES`. So a stored last-seen time may lag by up to a day, and is
/// exact again whenever the baseline is written for any reason (a new subject, or another
/// subject's day). With an hour, a bucket's steady traffic still wrote its baseline for
/// four objects in ten (BENCHMARKS.md, "Requests per log object").
///
/// A list close enough to its bound that one object's new subjects (at most
/// [`SEEN_COUNTERS`]) could make it evict is written on any move, so near eviction the
/// subjects being seen carry exact times: a lagging time could evict a subject seen
/// hours ago before one seen earlier, and report it as new when it comes back. What
/// remains: a subject last seen while its list was smaller, and not since, may carry a
/// time up to a day early, so eviction can take it before subjects seen up to a day
/// before it.
pub const REFRESH_SECONDS: i64 = 86_400;

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
    #[serde(deserialize_with = "subject_map")]
    pub requesters: BTreeMap<String, i64>,
    /// Address → last seen.
    #[serde(deserialize_with = "subject_map")]
    pub remote_ips: BTreeMap<String, i64>,
}

/// Reads a stored subject → last-seen map, as a map insert would (a repeated subject keeps
/// its last time), in one pass. Without a detection table every log object reads its
/// bucket's baseline, up to twice `ALERT_BASELINE_MAX_ENTRIES` subjects, and inserting them
/// one by one searched the tree each time, comparing long shared prefixes (`arn:aws:iam::`):
/// two thirds of reading it. The entries are collected and the tree built at once: the
/// stored keys come sorted, which the sort confirms in one pass, and the tree is built
/// bottom-up with one comparison per key (BENCHMARKS.md, "Small objects").
fn subject_map<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, i64>, D::Error> {
    struct Entries;
    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = Vec<(String, i64)>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of subjects to times")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    // `collect` sorts stably and keeps the last of equal keys, as inserting would.
    Ok(deserializer.deserialize_map(Entries)?.into_iter().collect())
}

/// The address in canonical text (`2001:DB8::1` and `2001:db8:0::1` are one address);
/// text that is not an address is kept as it is.
pub fn canonical_ip(address: &str) -> Cow<'_, str> {
    match address.parse::<IpAddr>() {
        Ok(ip) => canonical_text(address, ip),
        Err(_) => Cow::Borrowed(address),
    }
}

/// `ip`'s canonical text, borrowing `address` (the text it was parsed from) when that
/// already is: nearly always, so a log object's thousands of addresses are not each
/// formatted and allocated again. Every text the IPv4 parser accepts is canonical (it
/// rejects leading zeros); an IPv6 text is compared with its canonical form, written on
/// the stack.
fn canonical_text(address: &str, ip: IpAddr) -> Cow<'_, str> {
    match ip {
        IpAddr::V4(_) => Cow::Borrowed(address),
        IpAddr::V6(v6) => {
            let mut text = InlineText::new();
            if write!(text, "{v6}").is_ok() && text.as_str() == address {
                Cow::Borrowed(address)
            } else {
                Cow::Owned(v6.to_string())
            }
        }
    }
}

/// Room for any address's text (an IPv6 address with an embedded IPv4 one is 45 bytes).
struct InlineText {
    bytes: [u8; 48],
    len: usize,
}

impl InlineText {
    fn new() -> Self {
        Self {
            bytes: [0; 48],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for InlineText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
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
            let new: Vec<(Cow<'_, str>, &Seen)> = seen
                .iter()
                .filter(|(_, s)| s.first >= learned_by)
                .filter_map(|(subject, s)| Some((stored_subject(settings, kind, subject)?, s)))
                .filter(|(subject, _)| !known.contains_key(subject.as_ref()))
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
                        value: subject.to_string(),
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
                            value: subject.to_string(),
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
    ///
    /// Returns whether the stored baseline needs writing: a subject was added (or evicted),
    /// or a known subject's last-seen time moved by at least [`REFRESH_SECONDS`]. Last-seen
    /// times only order eviction, so the times of an object that brought nothing else
    /// new may go unwritten (S3 bills every write; see [`REFRESH_SECONDS`]).
    #[must_use = "a baseline that changed must be written back"]
    pub fn absorb(&mut self, sightings: &BucketSightings, settings: &AlertSettings) -> bool {
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
        let mut changed = false;
        for (kind, seen, known) in lists {
            let refresh = refresh_seconds(known.len(), settings);
            for (subject, s) in seen {
                let Some(subject) = stored_subject(settings, kind, subject) else {
                    continue;
                };
                match known.get_mut(subject.as_ref()) {
                    Some(last) => {
                        changed |= s.last >= last.saturating_add(refresh);
                        *last = (*last).max(s.last);
                    }
                    None => {
                        known.insert(subject.into_owned(), s.last);
                        changed = true;
                    }
                }
            }
            changed |= evict_least_recent(known, settings.baseline_max_entries);
        }
        changed
    }

    /// Whether [`Baseline::absorb`] may change what is stored. False means that absorbing
    /// would only move last-seen times that are not written, so the baseline as read is
    /// still exactly the stored one and a warm function may keep it
    /// ([`super::baseline_cache`]); the copy `absorb` leaves in memory it may not keep.
    /// Reads only. Never false when `absorb` would return true.
    pub fn may_change(&self, sightings: &BucketSightings, settings: &AlertSettings) -> bool {
        let lists = [
            (
                SubjectKind::Requester,
                &sightings.requesters,
                &self.requesters,
            ),
            (
                SubjectKind::RemoteIp,
                &sightings.remote_ips,
                &self.remote_ips,
            ),
        ];
        lists.into_iter().any(|(kind, seen, known)| {
            let refresh = refresh_seconds(known.len(), settings);
            known.len() > settings.baseline_max_entries
                || seen.iter().any(|(subject, s)| {
                    stored_subject(settings, kind, subject).is_some_and(|subject| {
                        known
                            .get(subject.as_ref())
                            .is_none_or(|last| s.last >= last.saturating_add(refresh))
                    })
                })
        })
    }
}

/// How far a known subject's last-seen time must move before the baseline is written for
/// it: [`REFRESH_SECONDS`], or one second close to the bound, where the next object may
/// evict and the times must then be exact.
fn refresh_seconds(known: usize, settings: &AlertSettings) -> i64 {
    if known + SEEN_COUNTERS > settings.baseline_max_entries {
        1
    } else {
        REFRESH_SECONDS
    }
}

/// The subject as stored: addresses in canonical text.
pub(crate) fn normalise(kind: SubjectKind, subject: &str) -> Cow<'_, str> {
    match kind {
        SubjectKind::Requester => Cow::Borrowed(subject),
        SubjectKind::RemoteIp => canonical_ip(subject),
    }
}

/// The subject as stored, or `None` when it is never stored nor reported as new: it is
/// allowlisted, or is an address that does not parse. An address is parsed once for both.
fn stored_subject<'a>(
    settings: &AlertSettings,
    kind: SubjectKind,
    subject: &'a str,
) -> Option<Cow<'a, str>> {
    match kind {
        SubjectKind::Requester => {
            (!settings.requester_allowed(subject)).then_some(Cow::Borrowed(subject))
        }
        SubjectKind::RemoteIp => {
            let ip = subject.parse::<IpAddr>().ok()?;
            (!settings.ip_allowed(ip)).then(|| canonical_text(subject, ip))
        }
    }
}

/// Removes the `known.len() - max` least recently seen entries (ties by subject), finding
/// the cut without sorting or copying the whole list; true when it removed any (a
/// lowered `ALERT_BASELINE_MAX_ENTRIES` cuts a stored list even when nothing is new).
fn evict_least_recent(known: &mut BTreeMap<String, i64>, max: usize) -> bool {
    let excess = known.len().saturating_sub(max);
    if excess == 0 {
        return false;
    }
    let mut by_age: Vec<(i64, &str)> = known.iter().map(|(k, t)| (*t, k.as_str())).collect();
    let (_, &mut (cut_time, cut_subject), _) = by_age.select_nth_unstable(excess - 1);
    let cut_subject = cut_subject.to_string();
    known.retain(|subject, time| (*time, subject.as_str()) > (cut_time, cut_subject.as_str()));
    true
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
        assert!(base.absorb(&early, &settings), "new subjects are written");
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
        assert!(base.absorb(&sightings(&[], &[("2001:db8::1", 1)]), &settings));
        let s = sightings(
            &[("arn:aws:iam::1:role/ci-deploy", H)],
            &[("10.1.2.3", H), ("2001:DB8:0::1", H)],
        );
        assert!(base.new_subject_alerts(&s, &settings, "o").is_empty());
        assert!(
            !base.absorb(&s, &settings),
            "nothing to write: allowlisted, or known in another spelling"
        );
        assert!(
            base.requesters.is_empty(),
            "allowlisted subjects are not stored"
        );
        assert_eq!(base.remote_ips.keys().collect::<Vec<_>>(), ["2001:db8::1"]);
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
        assert!(base.absorb(
            &sightings(&[("old", 1), ("mid", 2 * H), ("new", 3 * H)], &[]),
            &settings,
        ));
        assert_eq!(base.requesters.keys().collect::<Vec<_>>(), ["mid", "new"]);
        let round_trip = Baseline::from_json(&base.to_json()).unwrap();
        assert_eq!(round_trip, base);
    }

    #[test]
    fn known_subjects_are_written_again_only_after_the_refresh_interval() {
        const R: i64 = REFRESH_SECONDS;
        let settings = AlertSettings::default();
        let mut base = Baseline::new("b", 0);
        assert!(base.absorb(&sightings(&[("alice", H)], &[("192.0.2.1", H)]), &settings));
        // `seen(t)` is last seen at t + 10: alice's time moves by R - 1, the address's by 60.
        let within = sightings(&[("alice", H + R - 11)], &[("192.0.2.1", H + 60)]);
        assert!(!base.absorb(&within, &settings));
        assert_eq!(
            base.requesters["alice"],
            H + R - 1,
            "the copy in memory still moves"
        );
        // R after the time the baseline holds (H + 70 since the last object).
        let a_refresh_on = sightings(&[], &[("192.0.2.1", H + 60 + R)]);
        assert!(base.absorb(&a_refresh_on, &settings));
        let older = sightings(&[("alice", 0)], &[]);
        assert!(
            !base.absorb(&older, &settings),
            "an older sighting moves nothing"
        );
        assert_eq!(base.requesters["alice"], H + R - 1);
        let lowered = AlertSettings {
            baseline_max_entries: 0,
            ..AlertSettings::default()
        };
        assert!(
            base.absorb(&older, &lowered),
            "a lowered bound cuts the stored lists"
        );
        assert!(base.requesters.is_empty() && base.remote_ips.is_empty());
    }

    #[test]
    fn near_the_bound_every_move_is_written() {
        let settings = AlertSettings {
            baseline_max_entries: SEEN_COUNTERS + 1,
            ..AlertSettings::default()
        };
        let mut base = Baseline::new("b", 0);
        assert!(base.absorb(&sightings(&[("alice", H)], &[]), &settings));
        // One entry: one object's new subjects could not make it evict yet.
        assert!(!base.absorb(&sightings(&[("alice", H + 1)], &[]), &settings));
        assert!(base.absorb(&sightings(&[("bob", H)], &[]), &settings));
        // Two entries: SEEN_COUNTERS new ones would pass the bound, so times are exact.
        assert!(base.absorb(&sightings(&[("alice", H + 2)], &[]), &settings));
        assert!(!base.absorb(&sightings(&[("alice", H + 2)], &[]), &settings));
    }

    #[test]
    fn canonical_text_is_borrowed_only_when_it_already_is_canonical() {
        let borrowed = |t: &str| matches!(canonical_ip(t), Cow::Borrowed(_));
        assert!(borrowed("192.0.2.1") && borrowed("2001:db8::1") && borrowed("::ffff:1.2.3.4"));
        assert_eq!(canonical_ip("2001:DB8:0::1"), "2001:db8::1");
        assert_eq!(canonical_ip("0:0:0:0:0:ffff:102:304"), "::ffff:1.2.3.4");
        // The borrowing relies on the IPv4 parser refusing anything but canonical text.
        assert!("01.2.3.4".parse::<IpAddr>().is_err() && "1.2.3".parse::<IpAddr>().is_err());
        assert_eq!(
            canonical_ip("01.2.3.4"),
            "01.2.3.4",
            "not an address: kept as is"
        );
    }

    proptest::proptest! {
        #[test]
        fn canonical_text_matches_the_formatted_address(bits: u128, v4: bool, upper: bool) {
            let ip = if v4 {
                IpAddr::from(std::net::Ipv4Addr::from(bits as u32))
            } else {
                IpAddr::from(std::net::Ipv6Addr::from(bits))
            };
            let canonical = ip.to_string();
            let written = if upper { canonical.to_uppercase() } else { canonical.clone() };
            proptest::prop_assert_eq!(canonical_ip(&written), canonical.as_str());
        }

        #[test]
        fn eviction_keeps_the_most_recent_like_a_full_sort(
            entries in proptest::collection::btree_map("[a-e]{1,3}", 0i64..6, 0..40),
            max in 0usize..45,
        ) {
            let mut known = entries.clone();
            let removed = evict_least_recent(&mut known, max);
            proptest::prop_assert_eq!(removed, entries.len() > max);
            let mut by_age: Vec<(i64, String)> =
                entries.iter().map(|(k, t)| (*t, k.clone())).collect();
            by_age.sort();
            let evicted = entries.len().saturating_sub(max);
            let expected: BTreeMap<String, i64> =
                by_age.into_iter().skip(evicted).map(|(t, k)| (k, t)).collect();
            proptest::prop_assert_eq!(known, expected);
        }
    }

    /// Stored last-seen times: `seen(t)` is last seen at `t + 10`, so these sit on, just
    /// before and just after the refresh thresholds of the times [`seen_time`] gives.
    fn known_time() -> impl proptest::strategy::Strategy<Value = i64> {
        proptest::sample::select(vec![9, 10, 11, 12, 10 + REFRESH_SECONDS])
    }

    /// Sighting times (`seen(t)` is last seen at `t + 10`).
    fn seen_time() -> impl proptest::strategy::Strategy<Value = i64> {
        proptest::sample::select(vec![
            0,
            1,
            2,
            REFRESH_SECONDS - 1,
            REFRESH_SECONDS,
            REFRESH_SECONDS + 1,
            2 * REFRESH_SECONDS,
        ])
    }

    proptest::proptest! {
        /// `may_change` is false only when `absorb` would not write, and, when no two
        /// sightings are one stored subject in two spellings, exactly when it would not.
        #[test]
        fn may_change_answers_as_absorb_would(
            known in proptest::collection::btree_map("[a-d]", known_time(), 0..5),
            known_ips in proptest::collection::btree_map(
                proptest::sample::select(vec!["192.0.2.1", "2001:db8::1", "10.0.0.1"]),
                known_time(),
                0..3,
            ),
            requesters in proptest::collection::vec(("[a-e]", seen_time()), 0..6),
            ips in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "192.0.2.1", "2001:db8::1", "2001:DB8:0::1", "10.0.0.1", "not-an-ip",
                    ]),
                    seen_time(),
                ),
                0..6,
            ),
            max in proptest::sample::select(vec![1usize, 3, 5, 10_000]),
        ) {
            let settings = AlertSettings {
                baseline_max_entries: max,
                allow_cidrs: vec![crate::alerts::allow::Cidr::parse("10.0.0.0/8").unwrap()],
                ..AlertSettings::default()
            };
            let mut base = Baseline::new("b", 0);
            base.requesters = known;
            base.remote_ips = known_ips.into_iter().map(|(k, t)| (k.to_string(), t)).collect();
            let requesters: Vec<(&str, i64)> =
                requesters.iter().map(|(k, t)| (k.as_str(), *t)).collect();
            let s = sightings(&requesters, &ips);
            let may = base.may_change(&s, &settings);
            let absorbed = base.clone().absorb(&s, &settings);
            proptest::prop_assert!(may || !absorbed, "absorb wrote what may_change ruled out");
            let stored = |kind, list: &[(String, Seen)]| -> Vec<String> {
                list.iter()
                    .filter_map(|(k, _)| stored_subject(&settings, kind, k).map(|c| c.into_owned()))
                    .collect()
            };
            let unique = |v: Vec<String>| {
                let n = v.len();
                v.into_iter().collect::<std::collections::BTreeSet<_>>().len() == n
            };
            if unique(stored(SubjectKind::Requester, &s.requesters))
                && unique(stored(SubjectKind::RemoteIp, &s.remote_ips))
            {
                proptest::prop_assert_eq!(may, absorbed);
            }
        }
    }

    proptest::proptest! {
        /// The stored maps are read as serde reads a map by inserting each entry, in any
        /// order and with repeated subjects (the last time wins).
        #[test]
        fn subject_maps_read_as_inserting_each_entry_would(
            entries in proptest::collection::vec(
                ("[a-c:]{0,3}", proptest::num::i64::ANY),
                0..40,
            ),
        ) {
            let object = |entries: &[(String, i64)]| {
                let fields: Vec<String> = entries
                    .iter()
                    .map(|(k, t)| format!("{}:{t}", serde_json::to_string(k).unwrap()))
                    .collect();
                format!("{{{}}}", fields.join(","))
            };
            let text = format!(
                r#"{{"version":1,"bucket":"b","learning_started":0,"requesters":{},"remote_ips":{}}}"#,
                object(&entries),
                object(&entries[entries.len() / 2..]),
            );
            let read = Baseline::from_json(text.as_bytes()).unwrap();
            let inserted = |entries: &[(String, i64)]| -> BTreeMap<String, i64> {
                serde_json::from_str(&object(entries)).unwrap()
            };
            proptest::prop_assert_eq!(&read.requesters, &inserted(&entries));
            proptest::prop_assert_eq!(&read.remote_ips, &inserted(&entries[entries.len() / 2..]));
            proptest::prop_assert_eq!(Baseline::from_json(&read.to_json()).unwrap(), read);
        }
    }
}
