//! What a log object's key tells: its file name, when it was delivered, and (in AWS's
//! date-partitioned format) the source account, region and bucket. Both AWS formats:
//!
//! - `[prefix]YYYY-mm-DD-HH-MM-SS-UniqueString`
//! - `[prefix][SourceAccountId]/[SourceRegion]/[SourceBucket]/YYYY/MM/DD/YYYY-mm-DD-HH-MM-SS-UniqueString`
//!
//! Other providers use the first form; anything else is still processed, it just tells less.

/// The parts of a log object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObjectKey<'a> {
    /// The last path segment: the log file's name, reused for output names.
    pub name: &'a str,
    /// `(YYYY-MM-DD, HH)` from the name's timestamp, when it has one.
    pub delivered: Option<(String, String)>,
    /// Source account, region and bucket, from the date-partitioned format.
    pub source: Option<LogSource<'a>>,
}

/// Where the logged requests went, from a date-partitioned key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSource<'a> {
    /// The 12-digit account that owns the source bucket.
    pub account_id: &'a str,
    /// The source bucket's Region.
    pub region: &'a str,
    /// The source bucket.
    pub bucket: &'a str,
}

/// Reads a log object key.
pub fn parse_log_key(key: &str) -> LogObjectKey<'_> {
    let segments: Vec<&str> = key.split('/').collect();
    let name = segments.last().copied().unwrap_or(key);
    let delivered = delivery_time(name);
    let source = match segments.as_slice() {
        [.., account, region, bucket, year, month, day, _name]
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && all_digits(year, 4)
                && all_digits(month, 2)
                && all_digits(day, 2)
                && !region.is_empty()
                && !bucket.is_empty() =>
        {
            Some(LogSource {
                account_id: account,
                region,
                bucket,
            })
        }
        _ => None,
    };
    LogObjectKey {
        name,
        delivered,
        source,
    }
}

fn all_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-mm-DD-HH-...` at the start of a name → `("YYYY-mm-DD", "HH")`.
fn delivery_time(name: &str) -> Option<(String, String)> {
    let b = name.as_bytes();
    let shape_ok = b.len() >= 13
        && [4, 7, 10].iter().all(|&i| b[i] == b'-')
        && [0..4, 5..7, 8..10, 11..13]
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit));
    shape_ok.then(|| (name[..10].to_string(), name[11..13].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_format() {
        let k = parse_log_key("raw/2026-11-20-14-05-12-5A1B2C3D4E5F6789");
        assert_eq!(k.name, "2026-11-20-14-05-12-5A1B2C3D4E5F6789");
        assert_eq!(k.delivered, Some(("2026-11-20".into(), "14".into())));
        assert_eq!(k.source, None);
    }

    #[test]
    fn date_partitioned_format() {
        let k = parse_log_key(
            "raw/123456789012/eu-west-1/my-assets/2026/11/20/2026-11-20-14-05-12-5A1B",
        );
        assert_eq!(k.name, "2026-11-20-14-05-12-5A1B");
        assert_eq!(
            k.source,
            Some(LogSource {
                account_id: "123456789012",
                region: "eu-west-1",
                bucket: "my-assets"
            })
        );
    }

    #[test]
    fn other_names_still_have_a_name() {
        let k = parse_log_key("raw/ovh/access.log");
        assert_eq!((k.name, k.delivered, k.source), ("access.log", None, None));
        assert_eq!(parse_log_key("plain").name, "plain");
    }
}
