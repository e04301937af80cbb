//! Alerts: 403 spikes, unusual requesters and addresses, anonymous access to private
//! buckets, scanner user agents and legacy TLS. Pure: the detector counts records with
//! bounded memory, the baseline logic merges what was seen into what is known, and the
//! pipeline does the I/O (reading and conditionally writing the baseline, delivering).
//!
//! Every alert has a stable [`Alert::alert_id`], derived only from what it is about, so a
//! re-delivered log object (or two objects seeing the same new requester) produces the
//! same ID and a subscriber can drop the repeat.

pub mod allow;
pub mod baseline;
pub mod baseline_cache;
pub mod detect;
pub mod heavy;
pub mod known;
pub mod pages;
pub mod shared;

use serde::Serialize;

use allow::{Cidr, Pattern};

/// The kinds of alert, with the names used in documents and the `AlertType` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertType {
    /// Many 403 responses for one bucket in a minute, or for one requester or address
    /// over a sliding window.
    ForbiddenSpike,
    /// A requester not seen before on this bucket.
    NewRequester,
    /// A remote address not seen before on this bucket.
    NewRemoteIp,
    /// A successful anonymous request on a bucket configured as private.
    AnonymousAccess,
    /// A request from a known scanner's user agent.
    ScannerUserAgent,
    /// A request over TLS older than 1.2.
    LegacyTls,
}

impl AlertType {
    /// Every type, in a stable order.
    pub const ALL: [AlertType; 6] = [
        AlertType::ForbiddenSpike,
        AlertType::NewRequester,
        AlertType::NewRemoteIp,
        AlertType::AnonymousAccess,
        AlertType::ScannerUserAgent,
        AlertType::LegacyTls,
    ];

    /// The name used in documents, logs and the `AlertType` dimension.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertType::ForbiddenSpike => "forbidden_spike",
            AlertType::NewRequester => "new_requester",
            AlertType::NewRemoteIp => "new_remote_ip",
            AlertType::AnonymousAccess => "anonymous_access",
            AlertType::ScannerUserAgent => "scanner_user_agent",
            AlertType::LegacyTls => "legacy_tls",
        }
    }

    /// The type with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// What an alert is about: a requester or a remote address (or a whole bucket when absent).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Subject {
    /// `requester` or `remote_ip`.
    pub kind: SubjectKind,
    /// The requester ARN or ID, or the address.
    pub value: String,
}

/// Which field identifies a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// The requester field.
    Requester,
    /// The remote IP field.
    RemoteIp,
}

impl SubjectKind {
    /// The name used in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Requester => "requester",
            SubjectKind::RemoteIp => "remote_ip",
        }
    }
}

/// One request an alert points at, so a responder can look it up.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Sample {
    /// The S3 request ID.
    pub request_id: Option<String>,
    /// The object key, as logged (cut to 256 bytes).
    pub key: Option<String>,
    /// The record's time, RFC 3339.
    pub time: String,
}

/// How many samples an alert carries.
pub const MAX_SAMPLES: usize = 5;

/// A subject and how many matching requests it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectCount {
    /// `requester` or `remote_ip`.
    pub kind: SubjectKind,
    /// The requester or address.
    pub value: String,
    /// Matching requests (a lower bound when the counters overflowed).
    pub count: u64,
}

/// One alert document, as written under `ALERTS_PREFIX`, logged and published to SNS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Stable ID: the same situation always gets the same ID.
    pub alert_id: String,
    /// What kind of alert.
    #[serde(rename = "type")]
    pub alert_type: AlertType,
    /// The source bucket.
    pub bucket: String,
    /// Start of the window, RFC 3339 (the records' own event time).
    pub window_start: String,
    /// The same, in Unix seconds: the `Alerts` metric's timestamp.
    #[serde(skip)]
    pub window_start_unix: i64,
    /// End of the window (exclusive), RFC 3339.
    pub window_end: String,
    /// The requester or address, when the alert is about one.
    pub subject: Option<Subject>,
    /// Matching requests in the window.
    pub count: u64,
    /// All requests in the window (for the same subject, when there is one); an upper
    /// bound when the counters overflowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The threshold that was reached, as configured.
    pub threshold: String,
    /// A sentence for humans.
    pub summary: String,
    /// The subjects with most matching requests, for alerts about a whole bucket.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_subjects: Vec<SubjectCount>,
    /// A few matching requests.
    pub samples: Vec<Sample>,
    /// The log object the alert was found in.
    pub source_object: String,
    /// When it was raised (RFC 3339), for alerts found on the shared detection state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<String>,
    /// Seconds from the end of its window to when it was raised: how late the log
    /// objects that completed the window arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection_delay_seconds: Option<i64>,
    /// Where the address the alert is about is, and whose network it is on; its fields
    /// are omitted when unknown (no database, no match, or not about an address).
    #[serde(flatten)]
    pub client: Option<AlertClient>,
}

/// The client context an alert about an address carries, from `GEOIP_DB` and `ASN_DB`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AlertClient {
    /// ISO 3166-1 alpha-2 country.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_country: Option<String>,
    /// The city's English name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_city: Option<String>,
    /// The autonomous system number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_asn: Option<u32>,
    /// The autonomous system's organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_as_org: Option<String>,
}

impl Alert {
    /// Adds what `lookups` know of the alert's address to the alert and its summary
    /// (`… 203.0.113.9 (DE, AS3320 Deutsche Telekom AG) …`). Alerts not about an address,
    /// or about one the databases do not know, are left as they are.
    pub fn add_client_context(&mut self, lookups: &crate::geo::ClientLookups) {
        let Some(subject) = self
            .subject
            .as_ref()
            .filter(|s| s.kind == SubjectKind::RemoteIp)
        else {
            return;
        };
        let Some(network) = lookups.lookup_text(&subject.value) else {
            return;
        };
        if let Some(at) = self.summary.find(subject.value.as_str()) {
            let end = at + subject.value.len();
            self.summary
                .insert_str(end, &format!(" ({})", network.describe()));
        }
        self.client = Some(AlertClient {
            client_country: network.country().map(String::from),
            client_city: network.city().map(String::from),
            client_asn: network.asn(),
            client_as_org: network.as_org().map(String::from),
        });
    }
}

/// A stable 64-bit FNV-1a digest of the parts, as 16 hex digits. Not `DefaultHasher`,
/// whose output may change between Rust releases.
pub fn alert_id(parts: &[&str]) -> String {
    let mut hash = crate::logkey::Fnv1a::default();
    for part in parts {
        hash.write(part.as_bytes());
        hash.write(&[0x1f]);
    }
    format!("{:016x}", hash.finish())
}

/// Unix seconds as RFC 3339 text, as alert windows are written.
pub(crate) fn rfc3339(unix_seconds: i64) -> String {
    crate::access_log::LogTime::from_unix_seconds(unix_seconds)
        .rfc3339()
        .as_str()
        .to_string()
}

/// Every alert threshold and list, read from `ALERT_*` environment variables.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Alert types switched off (`ALERT_DISABLE`, comma-separated names).
    pub disabled: Vec<AlertType>,
    /// 403s in one minute on one bucket that make a spike (`ALERT_BUCKET_403_MIN`).
    pub bucket_403_min: u64,
    /// Share of that minute's requests that must be 403s (`ALERT_BUCKET_403_SHARE`).
    pub bucket_403_share: f64,
    /// 403s for one requester or address within the window (`ALERT_SUBJECT_403_MIN`).
    pub subject_403_min: u64,
    /// Share of that subject's requests in the window that must be 403s
    /// (`ALERT_SUBJECT_403_SHARE`).
    pub subject_403_share: f64,
    /// The sliding window, in minutes (`ALERT_SUBJECT_403_WINDOW_MINUTES`).
    pub subject_403_window_minutes: i64,
    /// Hours of event time, from the first record a bucket's baseline saw, during which
    /// new requesters and addresses are learned without alerting (`ALERT_LEARNING_HOURS`).
    pub learning_hours: i64,
    /// In a backfill (S3 Batch Operations, `bucketlog backfill`), alerts whose window
    /// ended more than this many hours before now are recorded (alert document, WARN
    /// line, metric) and update the detection state and baseline, but are not sent to the
    /// topic, so that replaying a year of logs pages no one
    /// (`ALERT_BACKFILL_MAX_AGE_HOURS`). Live events always notify, however late.
    pub backfill_max_age_hours: i64,
    /// Most requesters, and separately addresses, a baseline keeps per bucket
    /// (`ALERT_BASELINE_MAX_ENTRIES`); the least recently seen are evicted.
    pub baseline_max_entries: usize,
    /// Requesters never reported as new (`ALERT_ALLOW_REQUESTERS`, comma-separated
    /// patterns with `*`).
    pub allow_requesters: Vec<Pattern>,
    /// Addresses never reported as new (`ALERT_ALLOW_CIDRS`, comma-separated).
    pub allow_cidrs: Vec<Cidr>,
    /// Autonomous systems whose addresses are never reported as new
    /// (`ALERT_ALLOW_ASNS`, comma-separated numbers, `AS` prefix optional): a CDN's or
    /// your own cloud's. Needs `ASN_DB`.
    pub allow_asns: Vec<u32>,
    /// Buckets on which successful anonymous requests alert (`ALERT_PRIVATE_BUCKETS`,
    /// comma-separated names or patterns; empty means none).
    pub private_buckets: Vec<Pattern>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            disabled: Vec::new(),
            bucket_403_min: 50,
            bucket_403_share: 0.2,
            subject_403_min: 40,
            subject_403_share: 0.5,
            subject_403_window_minutes: 6,
            learning_hours: 168,
            backfill_max_age_hours: 24,
            baseline_max_entries: 5000,
            allow_requesters: Vec::new(),
            allow_cidrs: Vec::new(),
            allow_asns: Vec::new(),
            private_buckets: Vec::new(),
        }
    }
}

/// A variable that does not hold what it should: (variable, value, what it should be).
pub type SettingError = (&'static str, String, &'static str);

impl AlertSettings {
    /// Reads the settings through `lookup`; unset or empty variables keep their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let mut s = Self::default();
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let list = |name: &str| -> Vec<String> {
            get(name)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        /// Sets `slot` from the variable `name` when it is set, if the value is valid.
        fn number<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            name: &'static str,
            slot: &mut T,
            valid: impl Fn(&T) -> bool,
            what: &'static str,
        ) -> Result<(), SettingError> {
            if let Some(v) = get(name) {
                match v.parse::<T>() {
                    Ok(n) if valid(&n) => *slot = n,
                    _ => return Err((name, v, what)),
                }
            }
            Ok(())
        }
        for name in list("ALERT_DISABLE") {
            match AlertType::from_name(&name) {
                Some(t) => s.disabled.push(t),
                None => {
                    return Err((
                        "ALERT_DISABLE",
                        name,
                        "alert type names: forbidden_spike, new_requester, new_remote_ip, \
                         anonymous_access, scanner_user_agent, legacy_tls",
                    ));
                }
            }
        }
        let positive = "a whole number of at least 1";
        let share = "a number from 0 to 1";
        let is_share = |v: &f64| (0.0..=1.0).contains(v);
        let at_least_one = |v: &u64| *v >= 1;
        number(
            &get,
            "ALERT_BUCKET_403_MIN",
            &mut s.bucket_403_min,
            at_least_one,
            positive,
        )?;
        number(
            &get,
            "ALERT_BUCKET_403_SHARE",
            &mut s.bucket_403_share,
            is_share,
            share,
        )?;
        number(
            &get,
            "ALERT_SUBJECT_403_MIN",
            &mut s.subject_403_min,
            at_least_one,
            positive,
        )?;
        number(
            &get,
            "ALERT_SUBJECT_403_SHARE",
            &mut s.subject_403_share,
            is_share,
            share,
        )?;
        number(
            &get,
            "ALERT_SUBJECT_403_WINDOW_MINUTES",
            &mut s.subject_403_window_minutes,
            |v: &i64| (1..=1440).contains(v),
            "minutes, from 1 to 1440",
        )?;
        number(
            &get,
            "ALERT_LEARNING_HOURS",
            &mut s.learning_hours,
            |v: &i64| (0..=24 * 366).contains(v),
            "hours, from 0 to 8784",
        )?;
        number(
            &get,
            "ALERT_BACKFILL_MAX_AGE_HOURS",
            &mut s.backfill_max_age_hours,
            |v: &i64| (0..=24 * 366).contains(v),
            "hours, from 0 to 8784",
        )?;
        number(
            &get,
            "ALERT_BASELINE_MAX_ENTRIES",
            &mut s.baseline_max_entries,
            |v: &usize| (1..=100_000).contains(v),
            "a whole number from 1 to 100000",
        )?;
        s.allow_requesters = list("ALERT_ALLOW_REQUESTERS")
            .iter()
            .map(|p| Pattern::new(p))
            .collect();
        for text in list("ALERT_ALLOW_CIDRS") {
            match Cidr::parse(&text) {
                Some(c) => s.allow_cidrs.push(c),
                None => {
                    return Err((
                        "ALERT_ALLOW_CIDRS",
                        text,
                        "CIDR ranges such as 10.0.0.0/8 or 2001:db8::/32",
                    ));
                }
            }
        }
        for text in list("ALERT_ALLOW_ASNS") {
            let digits = text
                .strip_prefix("AS")
                .or_else(|| text.strip_prefix("as"))
                .unwrap_or(&text);
            match digits.parse::<u32>() {
                Ok(asn) => s.allow_asns.push(asn),
                Err(_) => {
                    return Err((
                        "ALERT_ALLOW_ASNS",
                        text,
                        "autonomous system numbers such as 16509 or AS13335",
                    ));
                }
            }
        }
        s.private_buckets = list("ALERT_PRIVATE_BUCKETS")
            .iter()
            .map(|p| Pattern::new(p))
            .collect();
        Ok(s)
    }

    /// In a backfill at `now`, the time before which an alert's window must not have
    /// ended for it to be sent (see [`AlertSettings::backfill_max_age_hours`]).
    pub fn backfill_notify_cutoff(&self, now: i64) -> i64 {
        now - self.backfill_max_age_hours * 3600
    }

    /// True unless `ALERT_DISABLE` lists the type.
    pub fn enabled(&self, alert_type: AlertType) -> bool {
        !self.disabled.contains(&alert_type)
    }

    /// True when anonymous successful requests on `bucket` should alert.
    pub fn is_private(&self, bucket: &str) -> bool {
        self.private_buckets.iter().any(|p| p.matches(bucket))
    }

    /// True when the requester is allowlisted.
    pub fn requester_allowed(&self, requester: &str) -> bool {
        self.allow_requesters.iter().any(|p| p.matches(requester))
    }

    /// True when addresses of this autonomous system are never reported as new.
    pub fn asn_allowed(&self, asn: Option<u32>) -> bool {
        asn.is_some_and(|asn| self.allow_asns.contains(&asn))
    }

    /// True when the address is in an allowlisted network (`ALERT_ALLOW_CIDRS`).
    pub fn ip_allowed(&self, ip: std::net::IpAddr) -> bool {
        self.allow_cidrs.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<AlertSettings, SettingError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AlertSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.subject_403_min, s.subject_403_window_minutes), (40, 6));
        let s = settings(&[
            ("ALERT_SUBJECT_403_MIN", "10"),
            ("ALERT_DISABLE", "new_remote_ip, legacy_tls"),
            ("ALERT_ALLOW_CIDRS", "10.0.0.0/8"),
            ("ALERT_ALLOW_REQUESTERS", "arn:aws:iam::1:role/*"),
            ("ALERT_PRIVATE_BUCKETS", "secret-*"),
        ])
        .unwrap();
        assert_eq!(s.subject_403_min, 10);
        assert!(!s.enabled(AlertType::NewRemoteIp) && s.enabled(AlertType::NewRequester));
        let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
        assert!(s.ip_allowed(ip("10.9.9.9")) && !s.ip_allowed(ip("11.0.0.1")));
        assert!(s.requester_allowed("arn:aws:iam::1:role/x"));
        assert!(s.is_private("secret-data") && !s.is_private("public"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("ALERT_SUBJECT_403_SHARE", "1.5"),
            ("ALERT_BUCKET_403_MIN", "0"),
            ("ALERT_DISABLE", "everything"),
            ("ALERT_ALLOW_CIDRS", "10.0.0.0/99"),
            ("ALERT_ALLOW_ASNS", "AS-cdn"),
            ("ALERT_LEARNING_HOURS", "-1"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!((err.0, err.1.as_str()), (var, value));
        }
    }

    #[test]
    fn allowed_asns_take_an_optional_as_prefix() {
        let s = settings(&[("ALERT_ALLOW_ASNS", "16509, AS13335,as64500")]).unwrap();
        assert_eq!(s.allow_asns, [16509, 13335, 64500]);
        assert!(s.asn_allowed(Some(13335)) && !s.asn_allowed(Some(3320)));
        assert!(!s.asn_allowed(None));
    }

    #[test]
    fn alert_ids_are_stable_and_distinct() {
        assert_eq!(alert_id(&["a", "b"]), alert_id(&["a", "b"]));
        assert_ne!(alert_id(&["ab", ""]), alert_id(&["a", "b"]));
        assert_eq!(alert_id(&["forbidden_spike", "bucket"]).len(), 16);
        // Pinned: a change here would page everyone twice after an upgrade.
        assert_eq!(alert_id(&[]), "cbf29ce484222325");
        // IDs are stored (alert documents, episodes, count pages' tokens): pinned.
        assert_eq!(alert_id(&["forbidden_spike", "bucket"]), "565ee2b64903f8ef");
    }
}
