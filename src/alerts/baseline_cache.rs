//! Parsed baselines a warm function keeps between log objects, each with the ETag it was
//! read or written with. Pure.
//!
//! Without a detection table every log object reads its bucket's requester baseline from
//! the store, and a steady bucket's holds thousands of subjects: parsing it was about a
//! third of a small log object's instructions (BENCHMARKS.md, "Small objects"). The read
//! still happens, since its ETag is what says whether another invocation wrote the
//! baseline since; only when the ETag is the one this function last read or wrote is the
//! parse skipped. So the cache never changes which baseline an object is checked against.
//!
//! A baseline is taken out while one log object works on it and kept again after, so two
//! objects handled at once never share one (the second parses its own).

use std::collections::VecDeque;

use super::baseline::Baseline;

/// The most stored JSON the kept baselines may add up to: four full baselines of the
/// default `ALERT_BASELINE_MAX_ENTRIES` (about 450 KiB each), a few MiB once parsed. A
/// larger baseline is not kept, and is parsed for every object as before.
pub const BASELINE_CACHE_BYTES: usize = 2 << 20;

/// Parsed baselines by their place in the store, least recently kept first.
#[derive(Debug, Default)]
pub struct BaselineCache {
    entries: VecDeque<Kept>,
    /// Stored bytes of the kept baselines.
    bytes: usize,
    /// Reads served without parsing.
    hits: u64,
}

/// One kept baseline.
#[derive(Debug)]
struct Kept {
    at: String,
    etag: String,
    bytes: usize,
    baseline: Baseline,
}

impl BaselineCache {
    /// Takes out the baseline kept for `at` if it is the version with `etag`; a kept
    /// version with another ETag is outdated and dropped.
    pub fn take(&mut self, at: &str, etag: &str) -> Option<Baseline> {
        let position = self.entries.iter().position(|k| k.at == at)?;
        let kept = self.entries.remove(position)?;
        self.bytes -= kept.bytes;
        if kept.etag != etag {
            return None;
        }
        self.hits += 1;
        Some(kept.baseline)
    }

    /// Keeps `baseline`, stored at `at` as `bytes` bytes with `etag`, in place of any
    /// other version; the least recently kept go when the total passes
    /// [`BASELINE_CACHE_BYTES`].
    pub fn keep(&mut self, at: &str, etag: &str, bytes: usize, baseline: Baseline) {
        if let Some(position) = self.entries.iter().position(|k| k.at == at)
            && let Some(old) = self.entries.remove(position)
        {
            self.bytes -= old.bytes;
        }
        if bytes > BASELINE_CACHE_BYTES {
            return;
        }
        while self.bytes + bytes > BASELINE_CACHE_BYTES {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.bytes;
        }
        self.bytes += bytes;
        self.entries.push_back(Kept {
            at: at.to_string(),
            etag: etag.to_string(),
            bytes,
            baseline,
        });
    }

    /// How many reads were served from the cache, for tests and benchmarks.
    pub fn hits(&self) -> u64 {
        self.hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline(bucket: &str, started: i64) -> Baseline {
        Baseline::new(bucket, started)
    }

    #[test]
    fn a_kept_baseline_is_served_only_for_its_etag() {
        let mut cache = BaselineCache::default();
        cache.keep("s3://out/a.json", "e1", 100, baseline("a", 1));
        assert_eq!(cache.take("s3://out/a.json", "e1"), Some(baseline("a", 1)));
        assert_eq!(cache.hits(), 1);
        // Taken out: a second object working at once parses its own.
        assert_eq!(cache.take("s3://out/a.json", "e1"), None);

        cache.keep("s3://out/a.json", "e1", 100, baseline("a", 1));
        assert_eq!(cache.take("s3://out/a.json", "e2"), None, "another version");
        assert!(cache.entries.is_empty(), "the outdated version is dropped");
        assert_eq!(cache.take("s3://out/b.json", "e1"), None);
        assert_eq!(cache.hits(), 1);
    }

    #[test]
    fn keeping_a_version_replaces_the_last_and_the_total_stays_bounded() {
        let mut cache = BaselineCache::default();
        cache.keep("a", "e1", 10, baseline("a", 1));
        cache.keep("a", "e2", 20, baseline("a", 2));
        assert_eq!(cache.entries.len(), 1);
        assert_eq!(cache.take("a", "e1"), None);
        cache.keep("a", "e2", 20, baseline("a", 2));

        let quarter = BASELINE_CACHE_BYTES / 4;
        for name in ["b", "c", "d"] {
            cache.keep(name, "e", quarter, baseline(name, 3));
        }
        assert_eq!(cache.entries.len(), 4);
        // One more quarter: the least recently kept, "a", makes room.
        cache.keep("e", "e", quarter, baseline("e", 4));
        assert_eq!(cache.entries.len(), 4);
        assert_eq!(cache.take("a", "e2"), None);
        assert!(cache.take("b", "e").is_some());
        assert!(cache.take("e", "e").is_some());
        assert!(cache.bytes <= BASELINE_CACHE_BYTES);

        cache.keep("huge", "e", BASELINE_CACHE_BYTES + 1, baseline("h", 5));
        assert_eq!(cache.take("huge", "e"), None, "too large to keep");
        assert_eq!(cache.entries.len(), 2, "c and d are still kept");
    }
}
