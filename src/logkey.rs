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

/// S3's limit on the length of a key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A short, stable hash of `text` (48 bits of FNV-1a, 12 hex digits): the same text gives
/// the same hash on every machine and every release, so names built with it stay
/// deterministic and a retry overwrites.
pub fn short_hash(text: &str) -> String {
    let mut hash = Fnv1a::default();
    hash.write(text.as_bytes());
    format!("{:012x}", hash.finish() >> 16)
}

/// 64-bit FNV-1a, fed piece by piece: a hash that is the same on every machine and every
/// release (unlike `std`'s), for names and versions that must stay deterministic.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Feeds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash of everything fed so far.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// The file name a log object's outputs share: its own file name, a dot and a hash of its
/// full location (`s3://bucket/key`), such as `access.log.3f9a0c21b7de`. Two objects with
/// one file name (`raw/teamA/access.log`, `raw/teamB/access.log`) so never share an
/// output, and a retry of the same object overwrites its own. When the result would be
/// longer than `room` bytes, the file name is cut (on a character boundary) to make room;
/// the hash keeps it unique. The flag says whether that happened.
pub fn output_name(location: &str, name: &str, room: usize) -> (String, bool) {
    let hash = short_hash(location);
    let fits = name.len() + 1 + hash.len() <= room;
    let keep = if fits {
        name.len()
    } else {
        floor_char_boundary(name, room.saturating_sub(1 + hash.len()))
    };
    (format!("{}.{hash}", &name[..keep]), !fits)
}

/// `text` itself when it is at most `room` bytes long; otherwise its start (on a character
/// boundary), `~` and [`short_hash`] of the whole, in at most `room` bytes (at least the
/// hash), so a derived key that must embed a long one stays within S3's limit.
pub fn shorten(text: &str, room: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= room {
        return std::borrow::Cow::Borrowed(text);
    }
    let hash = short_hash(text);
    let keep = floor_char_boundary(text, room.saturating_sub(1 + hash.len()));
    std::borrow::Cow::Owned(format!("{}~{hash}", &text[..keep]))
}

/// The largest character boundary of `text` at or below `at`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
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

    #[test]
    fn output_names_differ_by_location_and_keep_the_file_name() {
        let (a, cut_a) = output_name("s3://logs/raw/teamA/access.log", "access.log", 200);
        let (b, _) = output_name("s3://logs/raw/teamB/access.log", "access.log", 200);
        assert_ne!(a, b);
        assert!(
            a.starts_with("access.log.") && a.len() == "access.log.".len() + 12,
            "{a}"
        );
        assert!(!cut_a);
        // Deterministic: the same object always gets the same name.
        assert_eq!(
            a,
            output_name("s3://logs/raw/teamA/access.log", "access.log", 200).0
        );
        // The same key in another log bucket is another object.
        assert_ne!(
            a,
            output_name("s3://other/raw/teamA/access.log", "access.log", 200).0
        );
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary_and_keep_the_hash() {
        let name = "é".repeat(100); // 200 bytes
        let (short, cut) = output_name("s3://b/raw/x", &name, 50);
        assert!(cut);
        assert!(short.len() <= 50, "{}", short.len());
        assert!(short.starts_with("éé"));
        assert!(short.ends_with(&short_hash("s3://b/raw/x")));
        // Even with no room, the hash stays (the key is then the caller's to fit).
        assert_eq!(
            output_name("s3://b/k", "name", 0).0,
            format!(".{}", short_hash("s3://b/k"))
        );
    }

    #[test]
    fn shorten_keeps_short_text_and_hashes_long_text() {
        assert_eq!(shorten("raw/a.log", 100), "raw/a.log");
        let long = "raw/".to_string() + &"x".repeat(1_000);
        let short = shorten(&long, 100);
        assert_eq!(short.len(), 100);
        assert!(short.ends_with(&format!("~{}", short_hash(&long))));
        assert_ne!(shorten(&(long.clone() + "y"), 100), short);
    }

    #[test]
    fn the_hash_is_stable() {
        // Pinned: outputs already written are named with it, so it must never change.
        assert_eq!(short_hash(""), "cbf29ce48422");
    }
}
