//! Per-minute metric aggregation: parsed records in, CloudWatch-shaped data out. Pure: no
//! SDK types, no clock (the caller passes "now"), so it is tested from tables.
//!
//! Every datum is stamped with the minute of the records' own event time, never with the
//! time of processing, because log delivery lags by minutes to hours. The only dimension
//! is `Bucket` (the source bucket), plus `AlertType` on `Alerts`: requesters, IPs and keys
//! are never dimensions, since CloudWatch bills every distinct series.
//!
//! [`emf_lines`] renders the same datums in CloudWatch Embedded Metric Format, for
//! `METRICS_MODE=emf`.

use std::collections::BTreeMap;

use crate::access_log::LogRecord;
use crate::outputs::UNKNOWN_BUCKET;

/// CloudWatch rejects data points older than two weeks; older minutes are skipped.
pub const MAX_AGE_SECONDS: i64 = 14 * 24 * 3600;

/// CloudWatch accepts at most 150 distinct values in one datum's `Values` array.
pub const MAX_VALUES_PER_DATUM: usize = 150;

/// CloudWatch accepts at most 1,000 datums in one `PutMetricData` call.
pub const MAX_DATUMS_PER_CALL: usize = 1000;

/// How many (bucket, minute) series one log object may open before further minutes are
/// only counted as dropped: 100,000 is 69 days of one bucket, far beyond any real object,
/// and it keeps memory bounded for a hostile one.
pub const MAX_SERIES: usize = 100_000;

/// The unit CloudWatch records with a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of requests or lines.
    Count,
    /// Bytes.
    Bytes,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
}

/// The value of one datum.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// One value: a count or sum over the minute.
    Value(f64),
    /// Distinct values with how often each occurred, so that CloudWatch computes averages
    /// and percentiles over the real distribution (at most [`MAX_VALUES_PER_DATUM`]).
    Distribution {
        /// The distinct values.
        values: Vec<f64>,
        /// How many times each value occurred.
        counts: Vec<f64>,
    },
}

impl Unit {
    /// CloudWatch's name for the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// One metric data point for one minute.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDatum {
    /// The metric name, such as `Requests`.
    pub name: &'static str,
    /// The dimensions as (name, value): `Bucket`, and `AlertType` on `Alerts`.
    pub dimensions: Vec<(&'static str, String)>,
    /// Unix seconds at the start of the minute.
    pub timestamp: i64,
    /// The unit.
    pub unit: Unit,
    /// The value.
    pub value: MetricValue,
}

#[derive(Debug, Default, Clone)]
struct MinuteStats {
    requests: u64,
    errors_4xx: u64,
    errors_5xx: u64,
    forbidden: u64,
    not_found: u64,
    anonymous: u64,
    bytes_sent: u64,
    /// Quantised total time in ms → occurrences.
    total_time: BTreeMap<u64, u64>,
}

/// Counts one log object's records per source bucket and minute.
#[derive(Debug, Default, Clone)]
pub struct MetricsAggregator {
    /// Source bucket names; series are keyed by index, so a record costs no allocation.
    buckets: Vec<String>,
    minutes: BTreeMap<(u32, i64), MinuteStats>,
    newest_record: Option<i64>,
    rejected: u64,
    dropped_records: u64,
}

/// What [`MetricsAggregator::datums`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricReport {
    /// The datums, in a stable order.
    pub datums: Vec<MetricDatum>,
    /// Minutes skipped because CloudWatch would reject them as older than two weeks.
    pub skipped_old_minutes: usize,
    /// Records not counted because [`MAX_SERIES`] was reached.
    pub dropped_records: u64,
}

/// Keeps two significant digits (`1234` → `1200`), so that the number of distinct values
/// per minute stays small (about 90 per decade) while averages stay within 10 %.
pub fn quantise_ms(ms: u64) -> u64 {
    let mut scale = 1;
    let mut v = ms;
    while v >= 100 {
        v /= 10;
        scale *= 10;
    }
    v * scale
}

impl MetricsAggregator {
    /// Counts one curated record.
    pub fn observe(&mut self, record: &LogRecord<'_>) {
        let time = record.time.unix_seconds();
        self.newest_record = Some(self.newest_record.map_or(time, |t| t.max(time)));
        let minute = time.div_euclid(60) * 60;
        let bucket = record.bucket.unwrap_or(UNKNOWN_BUCKET);
        let index = match self.buckets.iter().rposition(|b| b == bucket) {
            Some(i) => i,
            None if self.minutes.len() >= MAX_SERIES => {
                self.dropped_records += 1;
                return;
            }
            None => {
                self.buckets.push(bucket.to_string());
                self.buckets.len() - 1
            }
        };
        let key = (index as u32, minute);
        if self.minutes.len() >= MAX_SERIES && !self.minutes.contains_key(&key) {
            self.dropped_records += 1;
            return;
        }
        let stats = self.minutes.entry(key).or_default();
        stats.requests += 1;
        match record.http_status {
            Some(403) => {
                stats.errors_4xx += 1;
                stats.forbidden += 1;
            }
            Some(404) => {
                stats.errors_4xx += 1;
                stats.not_found += 1;
            }
            Some(400..=499) => stats.errors_4xx += 1,
            Some(500..=599) => stats.errors_5xx += 1,
            _ => {}
        }
        if record.requester.is_none() {
            stats.anonymous += 1;
        }
        stats.bytes_sent += record.bytes_sent.unwrap_or(0);
        if let Some(ms) = record.total_time_ms {
            *stats.total_time.entry(quantise_ms(ms)).or_default() += 1;
        }
    }

    /// Counts one rejected line.
    pub fn observe_rejected(&mut self) {
        self.rejected += 1;
    }

    /// The datums for everything observed. `log_bucket` is the `Bucket` dimension for
    /// `RejectedLines` (a rejected line has no bucket of its own); `now` is Unix seconds.
    pub fn datums(&self, log_bucket: &str, now: i64) -> MetricReport {
        let mut datums = Vec::new();
        let mut skipped_old_minutes = 0;
        let too_old = |minute: i64| now - minute > MAX_AGE_SECONDS;
        for ((index, minute), stats) in &self.minutes {
            let bucket = &self.buckets[*index as usize];
            if too_old(*minute) {
                skipped_old_minutes += 1;
                continue;
            }
            let mut push = |name, unit, value: u64| {
                datums.push(MetricDatum {
                    name,
                    dimensions: vec![("Bucket", bucket.clone())],
                    timestamp: *minute,
                    unit,
                    value: MetricValue::Value(value as f64),
                });
            };
            push("Requests", Unit::Count, stats.requests);
            push("Errors4xx", Unit::Count, stats.errors_4xx);
            push("Errors5xx", Unit::Count, stats.errors_5xx);
            push("Forbidden403", Unit::Count, stats.forbidden);
            push("NotFound404", Unit::Count, stats.not_found);
            push("AnonymousRequests", Unit::Count, stats.anonymous);
            push("BytesSent", Unit::Bytes, stats.bytes_sent);
            let pairs: Vec<(u64, u64)> = stats.total_time.iter().map(|(v, c)| (*v, *c)).collect();
            for chunk in pairs.chunks(MAX_VALUES_PER_DATUM) {
                datums.push(MetricDatum {
                    name: "TotalTimeMs",
                    dimensions: vec![("Bucket", bucket.clone())],
                    timestamp: *minute,
                    unit: Unit::Milliseconds,
                    value: MetricValue::Distribution {
                        values: chunk.iter().map(|(v, _)| *v as f64).collect(),
                        counts: chunk.iter().map(|(_, c)| *c as f64).collect(),
                    },
                });
            }
        }
        let stamp = self.newest_record.map_or(now, |t| t.div_euclid(60) * 60);
        if !too_old(stamp) {
            datums.push(MetricDatum {
                name: "RejectedLines",
                dimensions: vec![("Bucket", log_bucket.to_string())],
                timestamp: stamp,
                unit: Unit::Count,
                value: MetricValue::Value(self.rejected as f64),
            });
            if let Some(newest) = self.newest_record {
                for bucket in &self.buckets {
                    datums.push(MetricDatum {
                        name: "DeliveryDelaySeconds",
                        dimensions: vec![("Bucket", bucket.clone())],
                        timestamp: stamp,
                        unit: Unit::Seconds,
                        value: MetricValue::Value((now - newest).max(0) as f64),
                    });
                }
            }
        } else {
            skipped_old_minutes += 1;
        }
        MetricReport {
            datums,
            skipped_old_minutes,
            dropped_records: self.dropped_records,
        }
    }
}

/// `Alerts` datums: one per (bucket, type, minute) and one per (type, minute) for alarms
/// across all buckets. Each alert is `(bucket, type, event time)`; minutes CloudWatch
/// would reject are skipped.
pub fn alert_datums<'a>(
    alerts: impl IntoIterator<Item = (&'a str, &'static str, i64)>,
    now: i64,
) -> Vec<MetricDatum> {
    let mut per_bucket: BTreeMap<(&str, &'static str, i64), u64> = BTreeMap::new();
    let mut per_type: BTreeMap<(&'static str, i64), u64> = BTreeMap::new();
    for (bucket, alert_type, time) in alerts {
        let minute = time.div_euclid(60) * 60;
        if now - minute > MAX_AGE_SECONDS {
            continue;
        }
        *per_bucket.entry((bucket, alert_type, minute)).or_default() += 1;
        *per_type.entry((alert_type, minute)).or_default() += 1;
    }
    let datum = |dimensions, timestamp, count: u64| MetricDatum {
        name: "Alerts",
        dimensions,
        timestamp,
        unit: Unit::Count,
        value: MetricValue::Value(count as f64),
    };
    let mut datums: Vec<MetricDatum> = per_bucket
        .into_iter()
        .map(|((bucket, t, minute), n)| {
            datum(
                vec![("Bucket", bucket.to_string()), ("AlertType", t.to_string())],
                minute,
                n,
            )
        })
        .collect();
    datums.extend(
        per_type
            .into_iter()
            .map(|((t, minute), n)| datum(vec![("AlertType", t.to_string())], minute, n)),
    );
    datums
}

/// EMF has no `Counts`: a distribution is written as repeated values, and minutes with
/// more requests than this are scaled down to about this many representative values
/// (averages and percentiles stay within a value's share; use `Requests` for counts).
pub const EMF_MAX_VALUES_PER_MINUTE: u64 = 1000;

/// EMF accepts at most 100 values per metric in one document.
const EMF_MAX_VALUES_PER_METRIC: usize = 100;

/// Renders datums as CloudWatch Embedded Metric Format documents, one JSON object per
/// line: one document per (dimensions, minute), more when a metric has over 100 values.
pub fn emf_lines(namespace: &str, datums: &[MetricDatum]) -> Vec<String> {
    // Group by (dimensions, minute), keeping first-seen order.
    type Group<'d> = (
        &'d [(&'static str, String)],
        i64,
        Vec<(&'d MetricDatum, Vec<f64>)>,
    );
    let mut groups: Vec<Group<'_>> = Vec::new();
    for d in datums {
        let values = match &d.value {
            MetricValue::Value(v) => vec![*v],
            MetricValue::Distribution { values, counts } => emf_values(values, counts),
        };
        match groups
            .iter_mut()
            .find(|(dims, ts, _)| *dims == d.dimensions.as_slice() && *ts == d.timestamp)
        {
            Some(group) => match group.2.iter_mut().find(|(m, _)| m.name == d.name) {
                Some((_, existing)) => existing.extend(values),
                None => group.2.push((d, values)),
            },
            None => groups.push((&d.dimensions, d.timestamp, vec![(d, values)])),
        }
    }
    let mut lines = Vec::new();
    for (dimensions, timestamp, metrics) in groups {
        let documents = metrics
            .iter()
            .map(|(_, v)| v.len().div_ceil(EMF_MAX_VALUES_PER_METRIC))
            .max()
            .unwrap_or(0);
        for part in 0..documents {
            let mut definitions = Vec::new();
            let mut doc = serde_json::Map::new();
            for (name, value) in dimensions {
                doc.insert((*name).to_string(), serde_json::Value::from(value.clone()));
            }
            for (datum, values) in &metrics {
                let chunk: Vec<f64> = values
                    .chunks(EMF_MAX_VALUES_PER_METRIC)
                    .nth(part)
                    .map(<[f64]>::to_vec)
                    .unwrap_or_default();
                if chunk.is_empty() {
                    continue;
                }
                definitions
                    .push(serde_json::json!({"Name": datum.name, "Unit": datum.unit.as_str()}));
                let value = if chunk.len() == 1 {
                    serde_json::json!(chunk[0])
                } else {
                    serde_json::json!(chunk)
                };
                doc.insert(datum.name.to_string(), value);
            }
            let names: Vec<&str> = dimensions.iter().map(|(n, _)| *n).collect();
            doc.insert(
                "_aws".into(),
                serde_json::json!({
                    "Timestamp": timestamp * 1000,
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": [names],
                        "Metrics": definitions,
                    }]
                }),
            );
            lines.push(serde_json::Value::Object(doc).to_string());
        }
    }
    lines
}

/// Expands values × counts into repeated values, scaled down (largest remainder) when
/// there are more than [`EMF_MAX_VALUES_PER_MINUTE`].
fn emf_values(values: &[f64], counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    let scale = if total > EMF_MAX_VALUES_PER_MINUTE as f64 {
        EMF_MAX_VALUES_PER_MINUTE as f64 / total
    } else {
        1.0
    };
    let mut out = Vec::new();
    let mut carry = 0.0;
    for (v, c) in values.iter().zip(counts) {
        let exact = c * scale + carry;
        let n = exact.floor();
        carry = exact - n;
        for _ in 0..n as usize {
            out.push(*v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::parse_line;

    fn line(bucket: &str, time: &str, requester: &str, status: u16, bytes: u64, ms: u64) -> String {
        format!(
            r#"o {bucket} [{time} +0000] 192.0.2.1 {requester} R REST.GET.OBJECT k "GET /k HTTP/1.1" {status} - {bytes} 10 {ms} 1 "-" "curl/8" -"#
        )
    }

    fn value(report: &MetricReport, name: &str, bucket: &str, minute: i64) -> Option<f64> {
        report.datums.iter().find_map(|d| match &d.value {
            MetricValue::Value(v)
                if d.name == name && d.dimensions[0].1 == bucket && d.timestamp == minute =>
            {
                Some(*v)
            }
            _ => None,
        })
    }

    const T0: i64 = 1_795_183_200; // 2026-11-20T14:00:00Z

    #[test]
    fn counts_per_bucket_and_minute_of_event_time() {
        let mut m = MetricsAggregator::default();
        for text in [
            line("b", "20/Nov/2026:14:00:01", "-", 200, 100, 5),
            line("b", "20/Nov/2026:14:00:59", "alice", 403, 10, 5),
            line("b", "20/Nov/2026:14:01:00", "alice", 404, 10, 5),
            line("c", "20/Nov/2026:14:00:30", "bob", 503, 0, 5),
        ] {
            m.observe(&parse_line(&text).unwrap());
        }
        m.observe_rejected();
        let r = m.datums("logs", T0 + 3600);
        assert_eq!(value(&r, "Requests", "b", T0), Some(2.0));
        assert_eq!(value(&r, "Forbidden403", "b", T0), Some(1.0));
        assert_eq!(value(&r, "Errors4xx", "b", T0), Some(1.0));
        assert_eq!(value(&r, "AnonymousRequests", "b", T0), Some(1.0));
        assert_eq!(value(&r, "BytesSent", "b", T0), Some(110.0));
        assert_eq!(value(&r, "NotFound404", "b", T0 + 60), Some(1.0));
        assert_eq!(value(&r, "Errors5xx", "c", T0), Some(1.0));
        assert_eq!(value(&r, "RejectedLines", "logs", T0 + 60), Some(1.0));
        assert_eq!(
            value(&r, "DeliveryDelaySeconds", "b", T0 + 60),
            Some(3540.0)
        );
        assert_eq!(r.skipped_old_minutes, 0);
    }

    #[test]
    fn minutes_older_than_two_weeks_are_skipped() {
        let mut m = MetricsAggregator::default();
        m.observe(&parse_line(&line("b", "20/Nov/2026:14:00:01", "-", 200, 1, 1)).unwrap());
        let r = m.datums("logs", T0 + MAX_AGE_SECONDS + 120);
        assert!(r.datums.is_empty(), "{:?}", r.datums);
        assert_eq!(r.skipped_old_minutes, 2);
    }

    #[test]
    fn total_time_is_a_distribution_split_at_150_values() {
        let mut m = MetricsAggregator::default();
        for ms in 0..2000 {
            m.observe(&parse_line(&line("b", "20/Nov/2026:14:00:01", "-", 200, 1, ms)).unwrap());
        }
        let r = m.datums("logs", T0 + 60);
        let chunks: Vec<_> = r
            .datums
            .iter()
            .filter(|d| d.name == "TotalTimeMs")
            .collect();
        let (mut total_count, mut total_values) = (0.0, 0);
        for d in &chunks {
            let MetricValue::Distribution { values, counts } = &d.value else {
                panic!("distribution")
            };
            assert!(values.len() <= MAX_VALUES_PER_DATUM);
            total_values += values.len();
            total_count += counts.iter().sum::<f64>();
        }
        assert_eq!(total_count, 2000.0);
        assert_eq!(
            total_values,
            100 + 90 + 10,
            "0..99 exact, 100..999 by 10, 1000..1999 by 100"
        );
        assert_eq!(chunks.len(), 2);
    }

    #[test]
    fn emf_documents_carry_the_same_metrics_and_expand_distributions() {
        let mut m = MetricsAggregator::default();
        for ms in [5, 5, 5, 120] {
            m.observe(&parse_line(&line("b", "20/Nov/2026:14:00:01", "-", 200, 10, ms)).unwrap());
        }
        let datums = m.datums("logs", T0 + 60).datums;
        let lines = emf_lines("S3AccessLogs", &datums);
        let docs: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let main = docs
            .iter()
            .find(|d| d.get("Requests").is_some())
            .expect("a document with Requests");
        assert_eq!(main["Bucket"], "b");
        assert_eq!(main["Requests"], 4.0);
        assert_eq!(main["BytesSent"], 40.0);
        assert_eq!(
            main["TotalTimeMs"],
            serde_json::json!([5.0, 5.0, 5.0, 120.0])
        );
        assert_eq!(main["_aws"]["Timestamp"], T0 * 1000);
        let directive = &main["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "S3AccessLogs");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Bucket"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in [
            "Requests",
            "Errors4xx",
            "Forbidden403",
            "TotalTimeMs",
            "BytesSent",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
    }

    #[test]
    fn emf_splits_at_100_values_and_caps_busy_minutes() {
        let mut m = MetricsAggregator::default();
        for i in 0..5000u64 {
            m.observe(
                &parse_line(&line("b", "20/Nov/2026:14:00:01", "-", 200, 1, i % 250)).unwrap(),
            );
        }
        let lines = emf_lines("N", &m.datums("logs", T0 + 60).datums);
        let values: usize = lines
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter_map(|d| d.get("TotalTimeMs").cloned())
            .map(|v| v.as_array().map_or(1, Vec::len))
            .sum();
        assert!((990..=1000).contains(&values), "{values} values");
        for l in &lines {
            let d: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(a) = d.get("TotalTimeMs").and_then(|v| v.as_array()) {
                assert!(a.len() <= 100);
            }
        }
    }

    #[test]
    fn alert_datums_count_per_bucket_and_type_and_per_type() {
        let d = alert_datums(
            [
                ("b", "forbidden_spike", T0 + 5),
                ("b", "forbidden_spike", T0 + 50),
                ("c", "forbidden_spike", T0 + 5),
                ("c", "new_requester", T0 - MAX_AGE_SECONDS - 120),
            ],
            T0,
        );
        let find = |dims: &[(&str, &str)]| {
            d.iter()
                .find(|x| {
                    x.dimensions.len() == dims.len()
                        && x.dimensions
                            .iter()
                            .zip(dims)
                            .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
                })
                .map(|x| x.value.clone())
        };
        assert_eq!(
            find(&[("Bucket", "b"), ("AlertType", "forbidden_spike")]),
            Some(MetricValue::Value(2.0))
        );
        assert_eq!(
            find(&[("AlertType", "forbidden_spike")]),
            Some(MetricValue::Value(3.0))
        );
        assert_eq!(find(&[("AlertType", "new_requester")]), None, "too old");
    }

    #[test]
    fn quantisation_keeps_two_significant_digits() {
        for (ms, q) in [
            (0, 0),
            (7, 7),
            (99, 99),
            (100, 100),
            (1234, 1200),
            (98765, 98000),
        ] {
            assert_eq!(quantise_ms(ms), q);
        }
    }
}
