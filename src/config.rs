//! The function's configuration: read once from environment variables at cold start and
//! validated, with errors that name the variable. Pure: it takes a lookup function, so
//! tests pass a map and the binaries pass `std::env::var`.

use std::time::Duration;

use crate::alerts::AlertSettings;
use crate::geo::DatabaseLocation;

/// How curated and rejected output is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputCompression {
    /// `.ndjson.gz`, gzip level 1 (about 7:1), for readers that take only gzip (`zcat`,
    /// Python's `gzip`, Spark or Hive without a zstd codec).
    Gzip,
    /// Plain `.ndjson`.
    None,
    /// `.ndjson.zst`, zstd level 1: the default. About 13:1, so half gzip's bytes, which
    /// is what storing and scanning the output costs, for less CPU than gzip's level 1
    /// (BENCHMARKS.md, "Cost model"). Athena (engine v3), DuckDB, Arrow, `zstd -d` and the
    /// lake's compaction read it.
    Zstd,
}

impl OutputCompression {
    /// The file-name suffix for this compression.
    pub fn suffix(self) -> &'static str {
        match self {
            OutputCompression::Gzip => ".ndjson.gz",
            OutputCompression::None => ".ndjson",
            OutputCompression::Zstd => ".ndjson.zst",
        }
    }

    /// The `Content-Type` written with each output object.
    pub fn content_type(self) -> &'static str {
        match self {
            OutputCompression::Gzip => "application/gzip",
            OutputCompression::None => "application/x-ndjson",
            OutputCompression::Zstd => "application/zstd",
        }
    }
}

/// Where metrics go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsMode {
    /// `PutMetricData` calls (the default).
    Api,
    /// CloudWatch Embedded Metric Format lines on stdout, which Lambda sends to CloudWatch
    /// Logs and CloudWatch turns into the same metrics (no API calls).
    Emf,
    /// No metrics.
    Off,
}

/// How long a claim on a processed object's remaining side effects lasts, in seconds, when
/// there is no Lambda deadline to tie it to (the command line): the longest a Lambda
/// invocation can run. In Lambda the lease lasts until the invocation's deadline plus
/// [`crate::pipeline::ledger::LEASE_MARGIN_SECONDS`]; `STATE_LEASE_SECONDS` overrides both.
pub const DEFAULT_LEASE_SECONDS: i64 = 900;

/// Timeouts on every AWS SDK client (S3, CloudWatch, SNS, and any added later), so that an
/// endpoint that never answers gives an error naming the object well before the
/// function's own timeout. Applied by [`crate::adapters::with_timeouts`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SdkTimeouts {
    /// Opening a connection (`SDK_CONNECT_TIMEOUT_SECONDS`, default 5).
    pub connect: Duration,
    /// One request until its response head arrives, and the longest a streamed body may
    /// move no byte (`SDK_READ_TIMEOUT_SECONDS`, default 20).
    pub read: Duration,
    /// One attempt of one call, retries aside (`SDK_ATTEMPT_TIMEOUT_SECONDS`, default 30).
    pub attempt: Duration,
    /// One call with all its retries (`SDK_OPERATION_TIMEOUT_SECONDS`, default 60). Like
    /// the attempt timeout it ends when the response head arrives, so a GetObject body
    /// streams for as long as it keeps moving.
    pub operation: Duration,
}

impl Default for SdkTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(20),
            attempt: Duration::from_secs(30),
            operation: Duration::from_secs(60),
        }
    }
}

/// Validated settings for processing log objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where outputs go; `None` means the bucket each log object came from.
    pub output_bucket: Option<String>,
    /// Where raw access logs arrive; only keys under it are processed.
    pub raw_prefix: String,
    /// Curated NDJSON, partitioned for Athena.
    pub curated_prefix: String,
    /// Rejected lines with their reasons.
    pub rejected_prefix: String,
    /// Alert documents.
    pub alerts_prefix: String,
    /// Processed-object markers and other state.
    pub state_prefix: String,
    /// The Parquet lake and its compaction (`LAKE_*`).
    pub lake: LakeSettings,
    /// Output compression.
    pub output_compression: OutputCompression,
    /// Log level for the function's own logs (`info` by default).
    pub log_level: String,
    /// CloudWatch namespace (`METRICS_NAMESPACE`, default `S3AccessLogs`).
    pub metrics_namespace: String,
    /// Where metrics go (`METRICS_MODE`: `api`, `emf` or `off`).
    pub metrics_mode: MetricsMode,
    /// SNS topic for alerts (`ALERT_TOPIC_ARN`); alerts are still written to S3, logged
    /// and counted without it.
    pub alert_topic_arn: Option<String>,
    /// Alert thresholds and lists (`ALERT_*`).
    pub alerts: AlertSettings,
    /// A fixed lease in seconds (`STATE_LEASE_SECONDS`); `None` ties it to the invocation's
    /// deadline (see [`DEFAULT_LEASE_SECONDS`]).
    pub lease_seconds: Option<i64>,
    /// Timeouts for every SDK client (`SDK_*_TIMEOUT_SECONDS`).
    pub sdk_timeouts: SdkTimeouts,
    /// The DynamoDB table holding the detection state shared by every invocation
    /// (`DETECTION_TABLE`). Without it, 403 spikes and newcomers are detected within each
    /// log object only, against the S3 baseline, and a WARN line says so at cold start.
    pub detection_table: Option<String>,
    /// Days counts, alert episodes and applied items live after their last write
    /// (`DETECTION_TTL_DAYS`, default 10: longer than the latest deliveries, nine days).
    pub detection_ttl_days: i64,
    /// Days a requester or address stays known after it was last seen
    /// (`DETECTION_SEEN_TTL_DAYS`, default 90): forgetting is by TTL.
    pub detection_seen_ttl_days: i64,
    /// The idempotency markers and the lake's dirty marks live in the detection table
    /// rather than under `{STATE_PREFIX}processed/` and `{STATE_PREFIX}lake/dirty/` in the
    /// output bucket (`MARKERS`: `table`, `bucket`, or `auto`, the default: the table when
    /// `DETECTION_TABLE` is set). A tenth of the requests' cost; switching makes objects
    /// processed before the switch unknown to duplicates that arrive after it, while the
    /// compaction reads dirty marks in both places (docs/deploy.md).
    pub markers_in_table: bool,
    /// Days a marker in the table lives after its last write (`MARKER_TTL_DAYS`; unset or
    /// 0: until deleted). Markers must outlive the raw logs a backfill could replay, as
    /// the bucket's lifecycle rule keeps S3 markers as long as the raw logs.
    pub marker_ttl_days: Option<i64>,
    /// The City or Country database for `client_country` and `client_city` (`GEOIP_DB`).
    pub geoip_db: Option<DatabaseLocation>,
    /// The ASN database for `client_asn` and `client_as_org` (`ASN_DB`).
    pub asn_db: Option<DatabaseLocation>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            output_bucket: None,
            raw_prefix: "raw/".into(),
            curated_prefix: "curated/".into(),
            rejected_prefix: "rejected/".into(),
            alerts_prefix: "alerts/".into(),
            state_prefix: "state/".into(),
            lake: LakeSettings::default(),
            output_compression: OutputCompression::Zstd,
            log_level: "info".into(),
            metrics_namespace: "S3AccessLogs".into(),
            metrics_mode: MetricsMode::Api,
            alert_topic_arn: None,
            alerts: AlertSettings::default(),
            lease_seconds: None,
            sdk_timeouts: SdkTimeouts::default(),
            detection_table: None,
            detection_ttl_days: 10,
            detection_seen_ttl_days: 90,
            markers_in_table: false,
            marker_ttl_days: None,
            geoip_db: None,
            asn_db: None,
        }
    }
}

/// A configuration that cannot be used, naming the variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A variable has a value outside what it accepts.
    #[error("{variable}={value:?} is not valid: {reason}")]
    Invalid {
        /// The environment variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        reason: String,
    },
    /// Two prefixes overlap, so the function could read its own output (a recursive
    /// trigger that burns money) or mix outputs.
    #[error(
        "{first}={first_value:?} and {second}={second_value:?} overlap: one is a prefix of the \
         other, so the function could process its own output; give them disjoint prefixes"
    )]
    Overlap {
        /// One variable.
        first: &'static str,
        /// Its value.
        first_value: String,
        /// The other variable.
        second: &'static str,
        /// Its value.
        second_value: String,
    },
}

impl Config {
    /// Reads and validates the configuration through `lookup` (usually `std::env::var`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Config::default();
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string());
        let prefix = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let value = get(name).unwrap_or_else(|| default.to_string());
            normalise_prefix(name, &value)
        };
        let output_bucket = match get("OUTPUT_BUCKET").filter(|v| !v.is_empty()) {
            Some(bucket) if !is_plausible_bucket(&bucket) => {
                return Err(ConfigError::Invalid {
                    variable: "OUTPUT_BUCKET",
                    value: bucket,
                    reason: "a bucket name: 3 to 63 characters, no '/' or spaces".into(),
                });
            }
            other => other,
        };
        let output_compression = match get("OUTPUT_COMPRESSION").as_deref() {
            None | Some("") | Some("zstd") => OutputCompression::Zstd,
            Some("gzip") => OutputCompression::Gzip,
            Some("none") => OutputCompression::None,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    variable: "OUTPUT_COMPRESSION",
                    value: other.into(),
                    reason: "`gzip`, `zstd` or `none`".into(),
                });
            }
        };
        let log_level = match get("LOG_LEVEL").map(|l| l.to_ascii_lowercase()) {
            None => defaults.log_level,
            Some(l) if l.is_empty() => "info".into(),
            Some(l) if ["trace", "debug", "info", "warn", "error"].contains(&l.as_str()) => l,
            Some(l) => {
                return Err(ConfigError::Invalid {
                    variable: "LOG_LEVEL",
                    value: l,
                    reason: "one of trace, debug, info, warn, error".into(),
                });
            }
        };
        let invalid = |variable: &'static str, value: String, reason: &str| ConfigError::Invalid {
            variable,
            value,
            reason: reason.into(),
        };
        let metrics_namespace = match get("METRICS_NAMESPACE").filter(|v| !v.is_empty()) {
            None => defaults.metrics_namespace,
            Some(ns)
                if ns.starts_with("AWS/") || ns.len() > 255 || ns.contains(char::is_control) =>
            {
                return Err(invalid(
                    "METRICS_NAMESPACE",
                    ns,
                    "1 to 255 characters, not starting with `AWS/`",
                ));
            }
            Some(ns) => ns,
        };
        let metrics_mode = match get("METRICS_MODE")
            .map(|m| m.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("api") => MetricsMode::Api,
            Some("emf") => MetricsMode::Emf,
            Some("off") => MetricsMode::Off,
            Some(other) => {
                return Err(invalid(
                    "METRICS_MODE",
                    other.into(),
                    "`api`, `emf` or `off`",
                ));
            }
        };
        let alert_topic_arn = match get("ALERT_TOPIC_ARN").filter(|v| !v.is_empty()) {
            Some(arn) if !arn.starts_with("arn:") || arn.split(':').count() != 6 => {
                return Err(invalid(
                    "ALERT_TOPIC_ARN",
                    arn,
                    "an SNS topic ARN, arn:PARTITION:sns:REGION:ACCOUNT:NAME",
                ));
            }
            other => other,
        };
        let alerts = AlertSettings::from_lookup(&lookup)
            .map_err(|(variable, value, reason)| invalid(variable, value, reason))?;
        let lease_seconds = match get("STATE_LEASE_SECONDS").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (0..=86_400).contains(&n) => Some(n),
                _ => {
                    return Err(invalid(
                        "STATE_LEASE_SECONDS",
                        v,
                        "seconds, from 0 to 86400",
                    ));
                }
            },
        };
        let detection_table = match get("DETECTION_TABLE").filter(|v| !v.is_empty()) {
            Some(t)
                if t.len() < 3
                    || t.len() > 255
                    || !t
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) =>
            {
                return Err(invalid(
                    "DETECTION_TABLE",
                    t,
                    "a DynamoDB table name: 3 to 255 of a-z, A-Z, 0-9, _ - .",
                ));
            }
            other => other,
        };
        let days = |name: &'static str, default: i64| -> Result<i64, ConfigError> {
            match get(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if (1..=3660).contains(&n) => Ok(n),
                    _ => Err(invalid(name, v, "days, from 1 to 3660")),
                },
            }
        };
        let detection_ttl_days = days("DETECTION_TTL_DAYS", defaults.detection_ttl_days)?;
        let detection_seen_ttl_days =
            days("DETECTION_SEEN_TTL_DAYS", defaults.detection_seen_ttl_days)?;
        let markers_in_table = match get("MARKERS").map(|m| m.to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("auto") => detection_table.is_some(),
            Some("bucket") => false,
            Some("table") if detection_table.is_some() => true,
            Some("table") => {
                return Err(invalid(
                    "MARKERS",
                    "table".into(),
                    "markers in the table need DETECTION_TABLE",
                ));
            }
            Some(other) => {
                return Err(invalid(
                    "MARKERS",
                    other.into(),
                    "`auto`, `table` or `bucket`",
                ));
            }
        };
        let marker_ttl_days = match get("MARKER_TTL_DAYS").filter(|v| !v.is_empty() && v != "0") {
            None => None,
            Some(_) => Some(days("MARKER_TTL_DAYS", 0)?),
        };
        let sdk_timeouts = sdk_timeouts(&get)?;
        let geoip_db = DatabaseLocation::from_setting(get("GEOIP_DB"));
        let asn_db = DatabaseLocation::from_setting(get("ASN_DB"));
        if asn_db.is_none() && !alerts.allow_asns.is_empty() {
            return Err(invalid(
                "ALERT_ALLOW_ASNS",
                get("ALERT_ALLOW_ASNS").unwrap_or_default(),
                "it needs ASN_DB, the database that tells an address's ASN",
            ));
        }
        let config = Config {
            geoip_db,
            asn_db,
            detection_table,
            detection_ttl_days,
            detection_seen_ttl_days,
            markers_in_table,
            marker_ttl_days,
            sdk_timeouts,
            metrics_namespace,
            metrics_mode,
            alert_topic_arn,
            alerts,
            lease_seconds,
            output_bucket,
            raw_prefix: prefix("RAW_PREFIX", &defaults.raw_prefix)?,
            curated_prefix: prefix("CURATED_PREFIX", &defaults.curated_prefix)?,
            rejected_prefix: prefix("REJECTED_PREFIX", &defaults.rejected_prefix)?,
            alerts_prefix: prefix("ALERTS_PREFIX", &defaults.alerts_prefix)?,
            state_prefix: prefix("STATE_PREFIX", &defaults.state_prefix)?,
            lake: lake_settings(&get)?,
            output_compression,
            log_level,
        };
        config.check_disjoint()?;
        Ok(config)
    }

    /// The prefixes the function writes to, with their variable names.
    pub fn output_prefixes(&self) -> [(&'static str, &str); 5] {
        [
            ("CURATED_PREFIX", &self.curated_prefix),
            ("REJECTED_PREFIX", &self.rejected_prefix),
            ("ALERTS_PREFIX", &self.alerts_prefix),
            ("STATE_PREFIX", &self.state_prefix),
            ("LAKE_PREFIX", &self.lake.prefix),
        ]
    }

    /// Refuses any two prefixes (raw or output) where one is a prefix of the other.
    fn check_disjoint(&self) -> Result<(), ConfigError> {
        let mut all = vec![("RAW_PREFIX", self.raw_prefix.as_str())];
        all.extend(self.output_prefixes());
        for (i, (first, a)) in all.iter().enumerate() {
            for (second, b) in &all[i + 1..] {
                if a.starts_with(b) || b.starts_with(a) {
                    return Err(ConfigError::Overlap {
                        first,
                        first_value: a.to_string(),
                        second,
                        second_value: b.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// True when `key` lies under one of the function's own output prefixes.
    pub fn is_own_output(&self, key: &str) -> bool {
        self.output_prefixes()
            .iter()
            .any(|(_, prefix)| key.starts_with(prefix))
    }
}

/// Where the Parquet lake goes and when a partition is compacted (see [`crate::lake`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeSettings {
    /// `LAKE_PREFIX` (default `lake/`): `{prefix}bucket=B/dt=D/hour=H/part-NNNNN.parquet`.
    pub prefix: String,
    /// `LAKE_SETTLE_MINUTES` (default 15): a dirty partition is compacted only once its
    /// last curated write is this old, so one compaction covers a burst of deliveries.
    pub settle_minutes: i64,
    /// `LAKE_TAG_COMPACTED` (`true` or `false`, default `false`): tag each curated
    /// object `bucketlog-compacted=true` once it is in the lake, for a lifecycle rule that
    /// expires only compacted objects (the template's `CuratedExpireDays`). With it on
    /// (and, without it, more than a week after the last compaction), a partition whose
    /// compacted sources are gone is not rebuilt without them: see
    /// [`crate::lake::compact::REBUILD_WINDOW_SECONDS`].
    pub tag_compacted: bool,
}

impl Default for LakeSettings {
    fn default() -> Self {
        Self {
            prefix: "lake/".into(),
            settle_minutes: 15,
            tag_compacted: false,
        }
    }
}

/// Reads the `LAKE_*` variables.
fn lake_settings(get: &impl Fn(&str) -> Option<String>) -> Result<LakeSettings, ConfigError> {
    let defaults = LakeSettings::default();
    let invalid = |variable: &'static str, value: String, reason: &str| ConfigError::Invalid {
        variable,
        value,
        reason: reason.into(),
    };
    let prefix = match get("LAKE_PREFIX") {
        Some(v) => normalise_prefix("LAKE_PREFIX", &v)?,
        None => defaults.prefix,
    };
    let settle_minutes = match get("LAKE_SETTLE_MINUTES").filter(|v| !v.is_empty()) {
        None => defaults.settle_minutes,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (0..=1440).contains(&n) => n,
            _ => return Err(invalid("LAKE_SETTLE_MINUTES", v, "minutes, from 0 to 1440")),
        },
    };
    let tag_compacted = match get("LAKE_TAG_COMPACTED").as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid(
                "LAKE_TAG_COMPACTED",
                other.into(),
                "`true` or `false`",
            ));
        }
    };
    Ok(LakeSettings {
        prefix,
        settle_minutes,
        tag_compacted,
    })
}

/// Reads the `SDK_*_TIMEOUT_SECONDS` variables: seconds, fractions allowed, above 0 and
/// at most 900; an attempt may not outlast its operation.
fn sdk_timeouts(get: &impl Fn(&str) -> Option<String>) -> Result<SdkTimeouts, ConfigError> {
    let defaults = SdkTimeouts::default();
    let seconds = |variable: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        let Some(value) = get(variable).filter(|v| !v.is_empty()) else {
            return Ok(default);
        };
        match value.parse::<f64>() {
            Ok(s) if s > 0.0 && s <= 900.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(ConfigError::Invalid {
                variable,
                value,
                reason: "seconds above 0 and at most 900, such as `5` or `2.5`".into(),
            }),
        }
    };
    let timeouts = SdkTimeouts {
        connect: seconds("SDK_CONNECT_TIMEOUT_SECONDS", defaults.connect)?,
        read: seconds("SDK_READ_TIMEOUT_SECONDS", defaults.read)?,
        attempt: seconds("SDK_ATTEMPT_TIMEOUT_SECONDS", defaults.attempt)?,
        operation: seconds("SDK_OPERATION_TIMEOUT_SECONDS", defaults.operation)?,
    };
    if timeouts.attempt > timeouts.operation {
        return Err(ConfigError::Invalid {
            variable: "SDK_ATTEMPT_TIMEOUT_SECONDS",
            value: timeouts.attempt.as_secs_f64().to_string(),
            reason: format!(
                "at most SDK_OPERATION_TIMEOUT_SECONDS ({})",
                timeouts.operation.as_secs_f64()
            ),
        });
    }
    Ok(timeouts)
}

/// Prefixes must be non-empty, relative, and end in `/` (added when missing, so `curated`
/// and `curated/` mean the same thing).
fn normalise_prefix(variable: &'static str, value: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        variable,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if value.is_empty() || value == "/" {
        return Err(invalid("a non-empty key prefix such as `raw/`"));
    }
    if value.starts_with('/') {
        return Err(invalid("a key prefix, without a leading '/'"));
    }
    if value.contains("//") || value.chars().any(char::is_control) {
        return Err(invalid("no empty path segments or control characters"));
    }
    Ok(if value.ends_with('/') {
        value.to_string()
    } else {
        format!("{value}/")
    })
}

fn is_plausible_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len()) && !name.contains('/') && !name.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = config(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.curated_prefix, "curated/");
        assert_eq!(c.output_compression, OutputCompression::Zstd);
    }

    #[test]
    fn missing_trailing_slash_is_added() {
        assert_eq!(
            config(&[("CURATED_PREFIX", "out/curated")])
                .unwrap()
                .curated_prefix,
            "out/curated/"
        );
    }

    #[test]
    fn raw_prefix_overlapping_an_output_is_refused_naming_both_variables() {
        let err =
            config(&[("RAW_PREFIX", "logs/"), ("CURATED_PREFIX", "logs/curated/")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("RAW_PREFIX") && text.contains("CURATED_PREFIX"),
            "{text}"
        );
    }

    #[test]
    fn lake_settings_are_read_and_bad_values_name_their_variable() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            Config::from_lookup(move |k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        let lake = vars(&[
            ("LAKE_PREFIX", "parquet"),
            ("LAKE_SETTLE_MINUTES", "0"),
            ("LAKE_TAG_COMPACTED", "true"),
        ])
        .unwrap()
        .lake;
        assert_eq!(
            lake,
            LakeSettings {
                prefix: "parquet/".into(),
                settle_minutes: 0,
                tag_compacted: true
            }
        );
        for (pairs, variable) in [
            (&[("LAKE_SETTLE_MINUTES", "-1")][..], "LAKE_SETTLE_MINUTES"),
            (&[("LAKE_TAG_COMPACTED", "yes")][..], "LAKE_TAG_COMPACTED"),
            (&[("LAKE_PREFIX", "curated/lake")][..], "LAKE_PREFIX"),
        ] {
            let err = vars(pairs).unwrap_err().to_string();
            assert!(err.contains(variable), "{err}");
        }
    }

    #[test]
    fn output_prefixes_must_not_overlap_each_other() {
        assert!(matches!(
            config(&[("STATE_PREFIX", "curated/state/")]),
            Err(ConfigError::Overlap { .. })
        ));
    }

    #[test]
    fn empty_prefix_is_refused() {
        let err = config(&[("RAW_PREFIX", "")]).unwrap_err();
        assert!(err.to_string().starts_with("RAW_PREFIX=\"\""), "{err}");
    }

    #[test]
    fn bad_compression_names_the_variable() {
        let err = config(&[("OUTPUT_COMPRESSION", "brotli")]).unwrap_err();
        assert!(err.to_string().contains("OUTPUT_COMPRESSION"));
        for (name, want) in [
            ("none", OutputCompression::None),
            ("zstd", OutputCompression::Zstd),
            ("gzip", OutputCompression::Gzip),
            ("", OutputCompression::Zstd),
        ] {
            let got = config(&[("OUTPUT_COMPRESSION", name)]).unwrap();
            assert_eq!(got.output_compression, want);
        }
        assert_eq!(OutputCompression::Zstd.suffix(), ".ndjson.zst");
        assert_eq!(OutputCompression::Gzip.suffix(), ".ndjson.gz");
    }

    #[test]
    fn bad_log_level_and_bucket_are_refused() {
        assert!(config(&[("LOG_LEVEL", "loud")]).is_err());
        assert!(config(&[("OUTPUT_BUCKET", "a/b")]).is_err());
        assert_eq!(
            config(&[("OUTPUT_BUCKET", "out-bucket")])
                .unwrap()
                .output_bucket
                .as_deref(),
            Some("out-bucket")
        );
    }

    #[test]
    fn metrics_and_alert_settings_are_read_and_checked() {
        let c = config(&[
            ("METRICS_MODE", "emf"),
            ("METRICS_NAMESPACE", "Team/S3"),
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:123456789012:alerts",
            ),
            ("ALERT_SUBJECT_403_MIN", "7"),
        ])
        .unwrap();
        assert_eq!(c.metrics_mode, MetricsMode::Emf);
        assert_eq!(c.metrics_namespace, "Team/S3");
        assert_eq!(c.alerts.subject_403_min, 7);
        for (var, value) in [
            ("METRICS_MODE", "statsd"),
            ("METRICS_NAMESPACE", "AWS/S3"),
            ("ALERT_TOPIC_ARN", "alerts"),
            ("ALERT_SUBJECT_403_MIN", "many"),
            ("STATE_LEASE_SECONDS", "-5"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn markers_follow_the_detection_table_unless_told() {
        let table = ("DETECTION_TABLE", "bucketlog-state");
        assert!(!config(&[]).unwrap().markers_in_table);
        assert!(config(&[table]).unwrap().markers_in_table);
        assert!(
            config(&[table, ("MARKERS", "Table")])
                .unwrap()
                .markers_in_table
        );
        assert!(
            !config(&[table, ("MARKERS", "bucket")])
                .unwrap()
                .markers_in_table
        );
        assert!(!config(&[("MARKERS", "auto")]).unwrap().markers_in_table);
        assert_eq!(config(&[]).unwrap().marker_ttl_days, None);
        assert_eq!(
            config(&[("MARKER_TTL_DAYS", "0")]).unwrap().marker_ttl_days,
            None
        );
        assert_eq!(
            config(&[("MARKER_TTL_DAYS", "30")])
                .unwrap()
                .marker_ttl_days,
            Some(30)
        );
        for vars in [
            &[("MARKERS", "table")][..],
            &[table, ("MARKERS", "dynamodb")],
            &[("MARKER_TTL_DAYS", "-1")],
        ] {
            let err = config(vars).unwrap_err().to_string();
            let variable = vars.last().map_or("", |(k, _)| *k);
            assert!(err.starts_with(variable), "{err}");
        }
    }

    #[test]
    fn sdk_timeouts_are_read_in_seconds_and_checked() {
        let c = config(&[
            ("SDK_CONNECT_TIMEOUT_SECONDS", "2.5"),
            ("SDK_OPERATION_TIMEOUT_SECONDS", "45"),
        ])
        .unwrap();
        assert_eq!(c.sdk_timeouts.connect, Duration::from_millis(2500));
        assert_eq!(c.sdk_timeouts.operation, Duration::from_secs(45));
        assert_eq!(c.sdk_timeouts.read, SdkTimeouts::default().read);
        for (var, value) in [
            ("SDK_READ_TIMEOUT_SECONDS", "0"),
            ("SDK_ATTEMPT_TIMEOUT_SECONDS", "soon"),
            ("SDK_OPERATION_TIMEOUT_SECONDS", "901"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert!(err.to_string().starts_with(var), "{err}");
        }
        let err = config(&[
            ("SDK_ATTEMPT_TIMEOUT_SECONDS", "50"),
            ("SDK_OPERATION_TIMEOUT_SECONDS", "40"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("SDK_OPERATION_TIMEOUT_SECONDS"),
            "{err}"
        );
    }

    #[test]
    fn the_lease_follows_the_deadline_unless_overridden() {
        assert_eq!(config(&[]).unwrap().lease_seconds, None);
        assert_eq!(
            config(&[("STATE_LEASE_SECONDS", "120")])
                .unwrap()
                .lease_seconds,
            Some(120)
        );
    }

    #[test]
    fn own_outputs_are_recognised() {
        let c = Config::default();
        assert!(c.is_own_output("curated/bucket=x/dt=2026-01-01/hour=00/a.ndjson.gz"));
        assert!(c.is_own_output("state/processed/x"));
        assert!(!c.is_own_output("raw/2026-01-01-00-00-00-ABC"));
    }
}
