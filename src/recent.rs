//! A fixed number of recent answers keyed by text: a log object's records repeat a few
//! values (user agents, `Host` headers, buckets) many times, so remembering the last few
//! answers turns most lookups into a string comparison (lengths first), with no hashing. Pure.

/// The answers for the last `N` keys remembered, the oldest replaced first. A replaced
/// entry keeps its key's buffer for the next key, so once full, remembering allocates
/// nothing (for keys no longer than those before), and memory never grows past `N` keys.
#[derive(Debug)]
pub struct RecentAnswers<V, const N: usize> {
    entries: Vec<(String, V)>,
    /// The entry replaced next, once all `N` are in use.
    next: usize,
}

impl<V, const N: usize> Default for RecentAnswers<V, N> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            next: 0,
        }
    }
}

impl<V, const N: usize> RecentAnswers<V, N> {
    /// The answer remembered for `key` that `fits`, if any.
    pub fn find(&self, key: &str, fits: impl Fn(&V) -> bool) -> Option<&V> {
        self.entries
            .iter()
            .find(|(k, v)| k == key && fits(v))
            .map(|(_, v)| v)
    }

    /// The answer remembered for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key, |_| true)
    }

    /// Remembers `value` for `key`, in place of the oldest answer when all `N` are used.
    pub fn remember(&mut self, key: &str, value: V) {
        if self.entries.len() < N {
            self.entries.push((key.to_string(), value));
            return;
        }
        let Some(entry) = self.entries.get_mut(self.next) else {
            return;
        };
        self.next = (self.next + 1) % N;
        entry.0.clear();
        entry.0.push_str(key);
        entry.1 = value;
    }

    /// How many answers are remembered (at most `N`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_answer_makes_room_and_matches_are_exact() {
        let mut recent: RecentAnswers<u32, 2> = RecentAnswers::default();
        assert!(recent.is_empty());
        recent.remember("a", 1);
        recent.remember("b", 2);
        assert_eq!((recent.get("a"), recent.get("b")), (Some(&1), Some(&2)));
        assert_eq!(recent.get("ab"), None);
        recent.remember("c", 3);
        assert_eq!(recent.get("a"), None, "the oldest went first");
        assert_eq!((recent.get("b"), recent.get("c")), (Some(&2), Some(&3)));
        recent.remember("d", 4);
        assert_eq!(recent.get("b"), None);
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.find("d", |v| *v == 4), Some(&4));
        assert_eq!(recent.find("d", |v| *v == 5), None);
    }
}
