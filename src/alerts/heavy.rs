//! Misra–Gries heavy-hitter counting: a fixed number of counters, whatever the number of
//! distinct keys. An attacker spraying requests from a million addresses costs the same
//! memory as one from a single address.
//!
//! Every kept count is a lower bound of the true count, and the true count of any key
//! (kept or not) is at most its kept count plus [`HeavyHitters::max_undercount`]. Alerts
//! are decided on the lower bounds, so the bound never invents an alert.

use hashbrown::HashMap;

/// A bounded map from keys to approximate counts, with a payload kept per key.
///
/// The map is hashbrown's with its default hasher (foldhash, seeded per process): keys are
/// attacker-chosen, but the map never holds more than `capacity` of them, so a collision
/// attack can at worst slow a bounded table, and one lookup per record costs a fraction
/// of SipHash's two (BENCHMARKS.md, "The handler's cost per GiB").
#[derive(Debug, Clone)]
pub struct HeavyHitters<V> {
    capacity: usize,
    entries: HashMap<String, Counted<V>>,
    /// How many times every counter was decremented at once: the largest undercount.
    decrements: u64,
}

/// A kept key's count and payload.
#[derive(Debug, Clone)]
pub struct Counted<V> {
    /// A lower bound of how many times the key was counted.
    pub count: u64,
    /// Data the caller keeps with the key (first and last time, samples, ...).
    pub value: V,
}

impl<V: Default> HeavyHitters<V> {
    /// An empty counter set holding at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            decrements: 0,
        }
    }

    /// Counts `key` once and returns its payload to update, or `None` when the key was
    /// not kept (the counters were full and all of them were decremented instead).
    pub fn add(&mut self, key: &str) -> Option<&mut V> {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            // Full: decrement every counter and drop those reaching zero. Each such step
            // consumes `capacity + 1` counts, so the total work stays linear in the input.
            self.decrements += 1;
            self.entries.retain(|_, c| {
                c.count -= 1;
                c.count > 0
            });
            return None;
        }
        let counted = self.entries.entry_ref(key).or_insert_with(|| Counted {
            count: 0,
            value: V::default(),
        });
        counted.count += 1;
        Some(&mut counted.value)
    }

    /// The kept count of `key` (a lower bound), or 0.
    pub fn count(&self, key: &str) -> u64 {
        self.entries.get(key).map_or(0, |c| c.count)
    }

    /// The largest amount by which any count may fall short of the truth.
    pub fn max_undercount(&self) -> u64 {
        self.decrements
    }

    /// An upper bound of the true count of `key`.
    pub fn upper_bound(&self, key: &str) -> u64 {
        self.count(key) + self.decrements
    }

    /// The kept keys with their counts and payloads, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Counted<V>)> {
        self.entries.iter().map(|(k, c)| (k.as_ref(), c))
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `n` keys with the highest counts, highest first (ties by key, for stable output).
    pub fn top(&self, n: usize) -> Vec<(&str, &Counted<V>)> {
        let mut all: Vec<_> = self.iter().collect();
        all.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_while_under_capacity() {
        let mut h: HeavyHitters<()> = HeavyHitters::new(4);
        for k in ["a", "b", "a", "c", "a"] {
            h.add(k);
        }
        assert_eq!(h.count("a"), 3);
        assert_eq!(h.count("b"), 1);
        assert_eq!(h.max_undercount(), 0);
    }

    #[test]
    fn a_heavy_key_survives_a_spray_of_distinct_keys_with_bounded_memory() {
        let mut h: HeavyHitters<()> = HeavyHitters::new(64);
        let mut true_heavy = 0;
        for i in 0..100_000u32 {
            if i % 10 == 0 {
                h.add("attacker");
                true_heavy += 1;
            } else {
                h.add(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
            }
            assert!(h.len() <= 64);
        }
        let kept = h.count("attacker");
        assert!(kept <= true_heavy, "counts are lower bounds");
        assert!(h.upper_bound("attacker") >= true_heavy, "bound holds");
        // Error is at most N / (capacity + 1).
        assert!(true_heavy - kept <= 100_000 / 65, "{kept} of {true_heavy}");
    }

    #[test]
    fn top_orders_by_count_then_key() {
        let mut h: HeavyHitters<()> = HeavyHitters::new(8);
        for k in ["b", "a", "c", "c", "b"] {
            h.add(k);
        }
        let top: Vec<&str> = h.top(2).into_iter().map(|(k, _)| k).collect();
        assert_eq!(top, ["b", "c"]);
    }
}
