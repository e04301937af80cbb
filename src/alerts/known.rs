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

/// The most sightings remembered per generation; two generations are kept, so at most
/// twice this many (keys of at most about 200 bytes: a few MiB at worst).
pub const KNOWN_CAPACITY: usize = 8_192;
/// How long an answer is trusted, in seconds.
pub const KNOWN_MAX_AGE: i64 = 3_600;

/// Remembered answers: sighting key → (who saw it first, when it was learnt here). When
/// the current generation is full it becomes the previous one and the oldest is
/// dropped, so memory stays bounded and recently used keys survive.
#[derive(Debug, Default)]
pub struct KnownSightings {
    current: HashMap<String, (String, i64)>,
    previous: HashMap<String, (String, i64)>,
}

impl KnownSightings {
    /// Who saw `key` first, when that was learnt here less than [`KNOWN_MAX_AGE`] before
    /// `now`; the entry moves to the current generation.
    pub fn get(&mut self, key: &str, now: i64) -> Option<String> {
        let fresh = |(_, at): &(String, i64)| now - *at < KNOWN_MAX_AGE && *at <= now;
        if let Some(entry) = self.current.get(key) {
            return fresh(entry).then(|| entry.0.clone());
        }
        let entry = self.previous.remove(key).filter(fresh)?;
        let by = entry.0.clone();
        self.insert(key.to_string(), entry);
        Some(by)
    }

    /// Remembers that `key` is known, first seen by `by`, as learnt at `now`.
    pub fn remember(&mut self, key: &str, by: &str, now: i64) {
        self.insert(key.to_string(), (by.to_string(), now));
    }

    /// Keys remembered (both generations).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, key: String, entry: (String, i64)) {
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
        assert_eq!(k.get("s#b#remote_ip#1.2.3.4", 100), None);
        k.remember("s#b#remote_ip#1.2.3.4", "s3://l/a@e", 100);
        assert_eq!(
            k.get("s#b#remote_ip#1.2.3.4", 100 + KNOWN_MAX_AGE - 1)
                .as_deref(),
            Some("s3://l/a@e")
        );
        assert_eq!(k.get("s#b#remote_ip#1.2.3.4", 100 + KNOWN_MAX_AGE), None);
        assert_eq!(
            k.get("s#b#remote_ip#1.2.3.4", 99),
            None,
            "a clock gone back"
        );
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
        assert_eq!(k.get("kept", 1).as_deref(), Some("a"));
        for i in 0..3 * KNOWN_CAPACITY {
            k.remember(&format!("spray{i}"), "a", 0);
            assert!(k.len() <= 2 * KNOWN_CAPACITY);
        }
        assert_eq!(k.get("k5", 1), None, "an unused old key is dropped");
    }
}
