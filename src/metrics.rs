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

use std::collections::{BTreeMap, HashMap};

use crate::access_log::LogRecord;
use crate::outputs::UNKNOWN_BUCKET;
use crate::slots::OrderedSlots;

/// CloudWatch rejects data points older than two weeks; older minutes are skipped.
pub const MAX_AGE_SECONDS: i64 = 14 * 24 * 3600;

/// CloudWatch accepts at most 150 distinct values in one datum's `Values` array.
pub const MAX_VALUES_PER_DATUM: usize = 150;

/// CloudWatch accepts at most 1,000 datums in one `PutMetricData` call.
pub const MAX_DATUMS_PER_CALL: usize = 1000;

/// How many (bucket, minute) series one log object may open before further minutes are
/// only counted as dropped (with a WARN line; the records themselves are still curated):
/// 20,000 is two weeks of one bucket, CloudWatch's own limit, or 4,000 buckets over five
/// minutes, far beyond any real object. It keeps the aggregator under about 6 MiB for a
/// hostile one.
pub const MAX_SERIES: usize = 20_000;

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
    /// Quantised total time in ms → occurrences, hashed (one probe per record, where a
    /// B-tree took a search); sorted when the datums are built.
    total_time: hashbrown::HashMap<u64, u64>,
}

/// Counts one log object's records per source bucket and minute.
#[derive(Debug, Default, Clone)]
pub struct MetricsAggregator {
    /// Source bucket names; series are keyed by index, so a record costs no allocation.
    buckets: Vec<String>,
    /// Each name's index in `buckets`: an object spread over thousands of buckets must not
    /// cost a scan of them per record.
    bucket_index: HashMap<String, u32>,
    /// The previous record's bucket index.
    last_bucket: u32,
    /// Each (bucket index, minute) series' counts, in the order datums are built; records
    /// come in time order, so most find their series without a search.
    minutes: OrderedSlots<(u32, i64), MinuteStats>,
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

/// Up to this many buckets, a record's bucket is found by comparing names, not hashing.
const FEW_BUCKETS: usize = 8;

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
        // One log object's records name one bucket or a few: compare with the previous
        // record's, then with a few names, before hashing.
        let index = match self.buckets.get(self.last_bucket as usize) {
            Some(name) if name == bucket => Some(self.last_bucket),
            _ if self.buckets.len() <= FEW_BUCKETS => self
                .buckets
                .iter()
                .position(|name| name == bucket)
                .map(|i| i as u32),
            _ => self.bucket_index.get(bucket).copied(),
        };
        let index = match index {
            Some(i) => i,
            None if self.minutes.len() >= MAX_SERIES => {
                self.dropped_records += 1;
                return;
            }
            None => {
                let i = self.buckets.len() as u32;
                self.buckets.push(bucket.to_string());
                self.bucket_index.insert(bucket.to_string(), i);
                i
            }
        };
        self.last_bucket = index;
        let Some(stats) = self.minutes.get_or_open((index, minute), MAX_SERIES) else {
            self.dropped_records += 1;
            return;
        };
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

    /// The datums for everything observed, all at once (see [`Self::into_batches`] for
    /// publishing them in bounded memory). `log_bucket` is the `Bucket` dimension for
    /// `RejectedLines` (a rejected line has no bucket of its own); `now` is Unix seconds.
    pub fn datums(&self, log_bucket: &str, now: i64) -> MetricReport {
        let mut datums = Vec::new();
        let mut series = self.minutes.iter();
        while self.push_series(&mut series, usize::MAX, now, &mut datums) {}
        self.push_object_datums(log_bucket, now, &mut datums);
        MetricReport {
            datums,
            skipped_old_minutes: self.skipped_old_minutes(now),
            dropped_records: self.dropped_records,
        }
    }

    /// The same datums as [`Self::datums`], to be produced a few series at a time: an
    /// object spread over thousands of buckets has tens of thousands of series, and
    /// building all their datums at once cost more memory than everything else.
    pub fn into_batches(self, log_bucket: &str, now: i64) -> MetricBatches {
        MetricBatches {
            skipped_old_minutes: self.skipped_old_minutes(now),
            dropped_records: self.dropped_records,
            datum_count: self.datum_count(now),
            aggregator: self,
            log_bucket: log_bucket.to_string(),
            now,
            extra: Vec::new(),
        }
    }

    /// The minute the per-object datums are stamped with: the newest record's, or now's.
    fn object_minute(&self, now: i64) -> i64 {
        self.newest_record.map_or(now, |t| t.div_euclid(60) * 60)
    }

    /// Minutes that will not be published: CloudWatch refuses data older than two weeks.
    fn skipped_old_minutes(&self, now: i64) -> usize {
        let old_series = self
            .minutes
            .keys()
            .filter(|(_, m)| too_old(*m, now))
            .count();
        let stamp = self.object_minute(now);
        old_series + usize::from(too_old(stamp, now))
    }

    /// How many datums [`Self::datums`] gives, without building them.
    fn datum_count(&self, now: i64) -> usize {
        let series: usize = self
            .minutes
            .iter()
            .filter(|((_, m), _)| !too_old(*m, now))
            .map(|(_, stats)| 7 + stats.total_time.len().div_ceil(MAX_VALUES_PER_DATUM))
            .sum();
        let stamp = self.object_minute(now);
        let object = if too_old(stamp, now) {
            0
        } else {
            1 + self.newest_record.map_or(0, |_| self.buckets.len())
        };
        series + object
    }

    /// Appends the datums of up to `limit` more (bucket, minute) series from `series`;
    /// false once `series` is exhausted.
    fn push_series<'a>(
        &self,
        series: &mut impl Iterator<Item = ((u32, i64), &'a MinuteStats)>,
        limit: usize,
        now: i64,
        datums: &mut Vec<MetricDatum>,
    ) -> bool {
        let mut taken = 0;
        while taken < limit {
            let Some(((index, minute), stats)) = series.next() else {
                return false;
            };
            if too_old(minute, now) {
                continue;
            }
            taken += 1;
            let bucket = &self.buckets[index as usize];
            let mut push = |name, unit, value: u64| {
                datums.push(MetricDatum {
                    name,
                    dimensions: vec![("Bucket", bucket.clone())],
                    timestamp: minute,
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
            let mut pairs: Vec<(u64, u64)> =
                stats.total_time.iter().map(|(v, c)| (*v, *c)).collect();
            pairs.sort_unstable();
            for chunk in pairs.chunks(MAX_VALUES_PER_DATUM) {
                datums.push(MetricDatum {
                    name: "TotalTimeMs",
                    dimensions: vec![("Bucket", bucket.clone())],
                    timestamp: minute,
                    unit: Unit::Milliseconds,
                    value: MetricValue::Distribution {
                        values: chunk.iter().map(|(v, _)| *v as f64).collect(),
                        counts: chunk.iter().map(|(_, c)| *c as f64).collect(),
                    },
                });
            }
        }
        true
    }

    /// Appends the per-object datums: `RejectedLines`, and `DeliveryDelaySeconds` per bucket.
    fn push_object_datums(&self, log_bucket: &str, now: i64, datums: &mut Vec<MetricDatum>) {
        let stamp = self.object_minute(now);
        if too_old(stamp, now) {
            return;
        }
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
    }
}

/// Whether CloudWatch would refuse a data point for `minute`.
fn too_old(minute: i64, now: i64) -> bool {
    now - minute > MAX_AGE_SECONDS
}

/// How many (bucket, minute) series go into one [`MetricBatches::for_each`] batch: about
/// 4,000 datums, a few hundred KiB, whatever the object's spread.
pub const SERIES_PER_BATCH: usize = 500;

/// One log object's metrics, kept until they are published and produced in batches of
/// [`SERIES_PER_BATCH`] series, so their memory does not grow with the number of series.
#[derive(Debug, Clone)]
pub struct MetricBatches {
    aggregator: MetricsAggregator,
    log_bucket: String,
    now: i64,
    /// Datums published after the series (the `Alerts` metric).
    extra: Vec<MetricDatum>,
    /// Minutes skipped because CloudWatch would reject them as older than two weeks.
    pub skipped_old_minutes: usize,
    /// Records not counted because [`MAX_SERIES`] was reached.
    pub dropped_records: u64,
    /// How many datums the batches hold in all, before `extra`.
    pub datum_count: usize,
}

impl MetricBatches {
    /// Adds datums to publish after the series, such as the `Alerts` metric.
    pub fn extend(&mut self, datums: Vec<MetricDatum>) {
        self.datum_count += datums.len();
        self.extra.extend(datums);
    }

    /// Calls `publish` with each batch in order, stopping at the first error. The last
    /// batch carries the per-object datums and the extra ones.
    pub async fn for_each<E, F, Fut>(&self, mut publish: F) -> Result<(), E>
    where
        F: FnMut(Vec<MetricDatum>) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let a = &self.aggregator;
        let mut series = a.minutes.iter();
        loop {
            let mut batch = Vec::new();
            let more = a.push_series(&mut series, SERIES_PER_BATCH, self.now, &mut batch);
            if !more {
                a.push_object_datums(&self.log_bucket, self.now, &mut batch);
                batch.extend(self.extra.iter().cloned());
            }
            if !batch.is_empty() {
                publish(batch).await?;
            }
            if !more {
                return Ok(());
            }
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
    // Indexed by (dimensions, minute): an object spread over thousands of buckets has
    // thousands of groups, and a linear search made this quadratic. Hashed with foldhash:
    // the keys are the function's own datums, and SipHash cost more than the rendering.
    let mut groups: Vec<Group<'_>> = Vec::new();
    type Dimensions<'d> = &'d [(&'static str, String)];
    let mut index: hashbrown::HashMap<(Dimensions<'_>, i64), usize> = hashbrown::HashMap::new();
    for d in datums {
        let values = match &d.value {
            MetricValue::Value(v) => vec![*v],
            MetricValue::Distribution { values, counts } => emf_values(values, counts),
        };
        let key = (d.dimensions.as_slice(), d.timestamp);
        match index.get(&key) {
            Some(&at) => {
                let group = &mut groups[at];
                match group.2.iter_mut().find(|(m, _)| m.name == d.name) {
                    Some((_, existing)) => existing.extend(values),
                    None => group.2.push((d, values)),
                }
            }
            None => {
                index.insert(key, groups.len());
                groups.push((&d.dimensions, d.timestamp, vec![(d, values)]));
            }
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
            let chunks: Vec<(&MetricDatum, &[f64])> = metrics
                .iter()
                .filter_map(|(datum, values)| {
                    let chunk = values.chunks(EMF_MAX_VALUES_PER_METRIC).nth(part)?;
                    Some((*datum, chunk))
                })
                .collect();
            let mut out = Vec::new();
            write_emf_document(&mut out, namespace, dimensions, timestamp, &chunks);
            // Written from strings, so valid UTF-8; moved, not copied.
            lines.push(
                String::from_utf8(out)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            );
        }
    }
    lines
}

/// A value of an EMF document's top level.
enum EmfMember<'d> {
    Dimension(&'d str),
    Metric(&'d [f64]),
    Aws,
}

/// Writes one EMF document as serde_json writes a `Value` of it: members in key order
/// (a later member replacing an earlier one of the same name), compact. Written directly
/// because building the `Value` cost more than the rest of publishing.
fn write_emf_document(
    out: &mut Vec<u8>,
    namespace: &str,
    dimensions: &[(&'static str, String)],
    timestamp: i64,
    metrics: &[(&MetricDatum, &[f64])],
) {
    let mut members: Vec<(&str, EmfMember<'_>)> = dimensions
        .iter()
        .map(|(name, value)| (*name, EmfMember::Dimension(value)))
        .chain(metrics.iter().map(|(d, v)| (d.name, EmfMember::Metric(v))))
        .chain([("_aws", EmfMember::Aws)])
        .collect();
    members.reverse();
    members.sort_by(|a, b| a.0.cmp(b.0));
    members.dedup_by(|later, earlier| later.0 == earlier.0);
    out.push(b'{');
    for (i, (name, member)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        emf_json(out, name);
        out.push(b':');
        match member {
            EmfMember::Dimension(value) => emf_json(out, value),
            EmfMember::Metric([one]) => emf_json(out, one),
            EmfMember::Metric(values) => emf_values_json(out, values),
            EmfMember::Aws => {
                out.extend_from_slice(b"{\"CloudWatchMetrics\":[{\"Dimensions\":[");
                let names: Vec<&str> = dimensions.iter().map(|(n, _)| *n).collect();
                emf_json(out, &names);
                out.extend_from_slice(b"],\"Metrics\":[");
                for (j, (datum, _)) in metrics.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"Name\":");
                    emf_json(out, datum.name);
                    out.extend_from_slice(b",\"Unit\":");
                    emf_json(out, datum.unit.as_str());
                    out.push(b'}');
                }
                out.extend_from_slice(b"],\"Namespace\":");
                emf_json(out, namespace);
                out.extend_from_slice(b"}],\"Timestamp\":");
                emf_json(out, &(timestamp * 1000));
                out.push(b'}');
            }
        }
    }
    out.push(b'}');
}

/// Appends `value` as serde_json writes it (strings escaped, floats as `1.0`).
fn emf_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing numbers, strings and arrays of them to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Appends `values` as serde_json writes an array of them. A distribution is written as
/// runs of one repeated value (see [`emf_values`]), so each run's value is formatted once
/// and its text copied for the repeats: the same bytes, without formatting every value.
fn emf_values_json(out: &mut Vec<u8>, values: &[f64]) {
    out.push(b'[');
    // The previous value and where its text lies in `out`.
    let mut previous: Option<(u64, std::ops::Range<usize>)> = None;
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match &previous {
            Some((bits, text)) if *bits == value.to_bits() => {
                out.extend_from_within(text.clone());
            }
            _ => {
                let start = out.len();
                emf_json(out, value);
                previous = Some((value.to_bits(), start..out.len()));
            }
        }
    }
    out.push(b']');
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
    fn batches_give_the_same_datums_as_all_at_once_with_bounded_batches() {
        let mut agg = MetricsAggregator::default();
        // 1,300 series: three buckets over many minutes, so there are several batches.
        for i in 0..1300i64 {
            // Back from 2026-11-20 14:00 one minute at a time (into 19 November).
            let minutes = 20 * 1440 + 14 * 60 - i;
            let (day, hour, minute) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
            let time = format!("{day:02}/Nov/2026:{hour:02}:{minute:02}:00");
            let text = line(&format!("b{}", i % 3), &time, "-", 403, 5, 7);
            agg.observe(&parse_line(&text).unwrap());
        }
        let now = T0 + 60;
        let all = agg.datums("logs", now);
        let extra = alert_datums([("b1", "forbidden_spike", T0)], now);
        let mut batches = agg.clone().into_batches("logs", now);
        batches.extend(extra.clone());
        assert_eq!(batches.datum_count, all.datums.len() + extra.len());
        assert_eq!(batches.skipped_old_minutes, all.skipped_old_minutes);
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result: Result<(), ()> = runtime.block_on(batches.for_each(|batch| {
            sizes.push(batch.len());
            seen.extend(batch);
            async { Ok(()) }
        }));
        assert!(result.is_ok());
        let mut expected = all.datums;
        expected.extend(extra);
        assert_eq!(seen, expected);
        assert_eq!(sizes.len(), 3, "{sizes:?}");
        assert!(
            sizes.iter().all(|n| *n <= SERIES_PER_BATCH * 8 + 8),
            "{sizes:?}"
        );
    }

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

    /// One EMF document built as a `serde_json::Value`, as `emf_lines` once did: the
    /// reference its direct writer must match byte for byte.
    fn emf_document_via_value(
        namespace: &str,
        dimensions: &[(&'static str, String)],
        timestamp: i64,
        metrics: &[(&MetricDatum, &[f64])],
    ) -> String {
        let mut doc = serde_json::Map::new();
        for (name, value) in dimensions {
            doc.insert((*name).to_string(), serde_json::Value::from(value.clone()));
        }
        let mut definitions = Vec::new();
        for (datum, values) in metrics {
            definitions.push(serde_json::json!({"Name": datum.name, "Unit": datum.unit.as_str()}));
            let value = match values {
                [one] => serde_json::json!(one),
                many => serde_json::json!(many),
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
        serde_json::Value::Object(doc).to_string()
    }

    #[test]
    fn emf_documents_are_written_byte_for_byte_as_serde_json_would() {
        let datum = |name, unit| MetricDatum {
            name,
            dimensions: Vec::new(),
            timestamp: T0,
            unit,
            value: MetricValue::Value(0.0),
        };
        let (requests, bytes, time, clash) = (
            datum("Requests", Unit::Count),
            datum("BytesSent", Unit::Bytes),
            datum("TotalTimeMs", Unit::Milliseconds),
            datum("Bucket", Unit::Count),
        );
        let dimensions = [
            ("Bucket", "logs \"quoted\" \u{e9}\u{1}".to_string()),
            ("AlertType", "NewRequester".to_string()),
        ];
        let cases: [&[(&MetricDatum, &[f64])]; 4] = [
            &[
                (&requests, &[4.0]),
                (&bytes, &[1e21]),
                (&time, &[0.5, 5.0, 120.0]),
            ],
            // Runs of a repeated value, as a distribution is expanded; -0.0 is not 0.0.
            &[(
                &time,
                &[
                    5.0,
                    5.0,
                    5.0,
                    0.0,
                    -0.0,
                    -0.0,
                    0.0,
                    1e21,
                    1e21,
                    f64::NAN,
                    f64::NAN,
                    2.5,
                ],
            )],
            &[(&time, &[])],
            // A metric named like a dimension replaces it, as a map insert would.
            &[(&clash, &[7.0]), (&requests, &[f64::MAX])],
        ];
        for metrics in cases {
            let mut out = Vec::new();
            write_emf_document(&mut out, "S3 \"Logs\"", &dimensions, T0, metrics);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                emf_document_via_value("S3 \"Logs\"", &dimensions, T0, metrics)
            );
        }
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
