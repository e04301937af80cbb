//! Sightings a warm function already knows, so it does not read them again for every log
//! object. Pure.
//!
//! Each log object looks up every requester and address it saw among the first
//! sightings, and a steady bucket's objects bring the same few thousand subjects again
//! and again: one eventually consistent read each, most of the detection state's read
//! bill. A subject once found known stays known (its sighting is only forgotten 90 days
//! after its last refresh, and it is refreshed when it nears that), so remembering the
//! answer for an hour changes no alert: only answers that a subject is known are kept,
//! with who saw it first, never that a subject is unknown.

use std::collections::HashMap;

use crate::logkey::Fnv1a;

/// The most sightings remembered per generation; two generations are kept, so at most
/// twice this many (keys of at most about 200 bytes and 16 bytes more each: under 8 MiB
/// at worst, about 2 MiB for typical keys of 60 bytes).
pub const KNOWN_CAPACITY: usize = 8_192;
/// How long an answer is trusted, in seconds.
pub const KNOWN_MAX_AGE: i64 = 3_600;

/// Remembered answers: sighting key → (a fingerprint of who saw it first, when it was
/// learnt here). When the current generation is full it becomes the previous one and
/// the oldest is dropped, so memory stays bounded and recently used keys survive.
#[derive(Debug, Default)]
pub struct KnownSightings {
    current: HashMap<String, (u64, i64)>,
    previous: HashMap<String, (u64, i64)>,
}

/// Who saw a subject first, as 64 bits ([`Fnv1a`]): it is only compared with the
/// claimer asking, and the claimers' texts (`s3://bucket/key@etag`) are longer than the
/// keys.
fn fingerprint(claimer: &str) -> u64 {
    let mut hash = Fnv1a::default();
    hash.write(claimer.as_bytes());
    hash.finish()
}

impl KnownSightings {
    /// Whether `claimer` saw `key` first, when `key` was learnt to be known less than
    /// [`KNOWN_MAX_AGE`] before `now`; `None` when it must be read. The entry moves to
    /// the current generation.
    pub fn answer(&mut self, claimer: &str, key: &str, now: i64) -> Option<bool> {
        let fresh = |(_, at): &(u64, i64)| now - *at < KNOWN_MAX_AGE && *at <= now;
        let me = fingerprint(claimer);
        if let Some(entry) = self.current.get(key) {
            return fresh(entry).then_some(entry.0 == me);
        }
        let entry = self.previous.remove(key).filter(fresh)?;
        self.insert(key.to_string(), entry);
        Some(entry.0 == me)
    }

    /// Remembers that `key` is known, first seen by `by`, as learnt at `now`.
    pub fn remember(&mut self, key: &str, by: &str, now: i64) {
        self.insert(key.to_string(), (fingerprint(by), now));
    }

    /// Keys remembered (both generations).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, key: String, entry: (u64, i64)) {
        if self.current.len() >= KNOWN_CAPACITY && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_trusted_for_an_hour_with_who_saw_it_first() {
        let mut k = KnownSightings::default();
        let key = "s#b#remote_ip#1.2.3.4";
        assert_eq!(k.answer("s3://l/a@e", key, 100), None);
        k.remember(key, "s3://l/a@e", 100);
        let last = 100 + KNOWN_MAX_AGE - 1;
        assert_eq!(k.answer("s3://l/a@e", key, last), Some(true), "its finder");
        assert_eq!(
            k.answer("s3://l/b@e", key, last),
            Some(false),
            "anyone else"
        );
        assert_eq!(k.answer("s3://l/a@e", key, 100 + KNOWN_MAX_AGE), None);
        assert_eq!(k.answer("s3://l/a@e", key, 99), None, "a clock gone back");
    }

    #[test]
    fn memory_stays_bounded_and_recently_used_keys_survive_a_turnover() {
        let mut k = KnownSightings::default();
        k.remember("kept", "a", 0);
        for i in 0..KNOWN_CAPACITY - 1 {
            k.remember(&format!("k{i}"), "a", 0);
        }
        // Full: the next new key starts a generation; "kept" is used, so it moves over.
        k.remember("new", "a", 0);
        assert_eq!(k.answer("a", "kept", 1), Some(true));
        for i in 0..3 * KNOWN_CAPACITY {
            k.remember(&format!("spray{i}"), "a", 0);
            assert!(k.len() <= 2 * KNOWN_CAPACITY);
        }
        assert_eq!(k.answer("a", "k5", 1), None, "an unused old key is dropped");
    }
}
