//! Misra–Gries heavy-hitter counting: a fixed number of counters, whatever the number of
//! distinct keys. An attacker spraying requests from a million addresses costs the same
//! memory as one from a single address.
//!
//! Every kept count is a lower bound of the true count, and the true count of any key
//! (kept or not) is at most its kept count plus [`HeavyHitters::max_undercount`]. Alerts
//! are decided on the lower bounds, so the bound never invents an alert.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

/// Room a new slot's key buffer starts with: the `minute subject` key of any IPv4 or IPv6
/// address (at most 50 bytes) fits, so a slot reused for another address never
/// reallocates; a longer key (a requester's ARN) grows it once, and the slot keeps that.
const KEY_CAPACITY: usize = 64;

/// A bounded map from keys to approximate counts, with a payload kept per key.
///
/// Keys live in a fixed set of slots, found through a hash table of slot numbers (foldhash,
/// seeded per process). A slot freed when its count reaches zero keeps its key's buffer
/// for the next key, so once the counters are full, counting allocates nothing: a spray
/// of distinct addresses reuses the same `capacity` strings. Keys are attacker-chosen, but
/// the table never holds more than `capacity` of them, so a collision attack can at worst
/// slow a bounded table (BENCHMARKS.md, "The handler's cost per GiB").
#[derive(Debug, Clone)]
pub struct HeavyHitters<V> {
    capacity: usize,
    hasher: DefaultHashBuilder,
    /// Indices into `slots` of the kept keys.
    table: HashTable<u32>,
    slots: Vec<Slot<V>>,
    /// Slots whose key was dropped, for reuse.
    free: Vec<u32>,
    /// How many times every counter was decremented at once: the largest undercount.
    decrements: u64,
}

/// One key's place: its text, hash and count (a count of zero marks a free slot).
#[derive(Debug, Clone)]
struct Slot<V> {
    key: String,
    hash: u64,
    counted: Counted<V>,
}

/// A payload that can be made fresh for a reused slot, keeping what it owns for reuse.
pub trait Recycle: Default {
    /// Makes the payload equal to a new one; by default by replacing it.
    fn recycle(&mut self) {
        *self = Self::default();
    }
}

impl Recycle for () {}

impl<T> Recycle for Option<T> {}

impl<T> Recycle for Vec<T> {
    fn recycle(&mut self) {
        self.clear();
    }
}

/// A kept key's count and payload.
#[derive(Debug, Clone)]
pub struct Counted<V> {
    /// A lower bound of how many times the key was counted.
    pub count: u64,
    /// Data the caller keeps with the key (first and last time, samples, ...).
    pub value: V,
}

impl<V: Recycle> HeavyHitters<V> {
    /// An empty counter set holding at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            hasher: DefaultHashBuilder::default(),
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            decrements: 0,
        }
    }

    fn find(&self, key: &str, hash: u64) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(hash, |&s| slots[s as usize].key == key)
            .copied()
    }

    /// Counts `key` once and returns its payload to update, or `None` when the key was
    /// not kept (the counters were full and all of them were decremented instead).
    pub fn add(&mut self, key: &str) -> Option<&mut V> {
        let hash = self.hasher.hash_one(key);
        if let Some(s) = self.find(key, hash) {
            let counted = &mut self.slots[s as usize].counted;
            counted.count += 1;
            return Some(&mut counted.value);
        }
        if self.table.len() >= self.capacity {
            self.decrement_all();
            return None;
        }
        let s = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    key: String::with_capacity(KEY_CAPACITY),
                    hash: 0,
                    counted: Counted {
                        count: 0,
                        value: V::default(),
                    },
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[s as usize];
        slot.key.clear();
        slot.key.push_str(key);
        slot.hash = hash;
        slot.counted.count = 1;
        slot.counted.value.recycle();
        let slots = &self.slots;
        self.table
            .insert_unique(hash, s, |&s| slots[s as usize].hash);
        Some(&mut self.slots[s as usize].counted.value)
    }

    /// Full: decrements every counter and frees those reaching zero. Each such step
    /// consumes `capacity + 1` counts, so the total work stays linear in the input.
    ///
    /// The table is then rebuilt from the survivors rather than having each freed key
    /// found and removed: under a spray of distinct keys nearly every counter is at one
    /// and is freed, and refilling a cleared table costs less than those removals.
    fn decrement_all(&mut self) {
        self.decrements += 1;
        self.table.clear();
        for (s, slot) in self.slots.iter_mut().enumerate() {
            if slot.counted.count == 0 {
                continue;
            }
            slot.counted.count -= 1;
            if slot.counted.count == 0 {
                self.free.push(s as u32);
            }
        }
        let slots = &self.slots;
        for (s, slot) in slots.iter().enumerate() {
            if slot.counted.count > 0 {
                self.table
                    .insert_unique(slot.hash, s as u32, |&x| slots[x as usize].hash);
            }
        }
    }

    /// The kept count of `key` (a lower bound), or 0.
    pub fn count(&self, key: &str) -> u64 {
        self.find(key, self.hasher.hash_one(key))
            .map_or(0, |s| self.slots[s as usize].counted.count)
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
        self.slots
            .iter()
            .filter(|slot| slot.counted.count > 0)
            .map(|slot| (slot.key.as_str(), &slot.counted))
    }

    /// The kept keys with their counts and payloads, moved out rather than cloned (the
    /// counters are done with), in no particular order.
    pub fn into_kept(self) -> impl Iterator<Item = (String, Counted<V>)> {
        self.slots
            .into_iter()
            .filter(|slot| slot.counted.count > 0)
            .map(|slot| (slot.key, slot.counted))
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
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
            assert!(h.slots.len() <= 64, "freed slots are reused, not added to");
        }
        let kept = h.count("attacker");
        assert!(kept <= true_heavy, "counts are lower bounds");
        assert!(h.upper_bound("attacker") >= true_heavy, "bound holds");
        // Error is at most N / (capacity + 1).
        assert!(true_heavy - kept <= 100_000 / 65, "{kept} of {true_heavy}");
    }

    #[test]
    fn into_kept_moves_out_exactly_the_kept_keys() {
        let mut h: HeavyHitters<()> = HeavyHitters::new(2);
        for k in ["a", "b", "a", "c", "d", "a"] {
            h.add(k);
        }
        let mut iterated: Vec<(String, u64)> =
            h.iter().map(|(k, c)| (k.to_string(), c.count)).collect();
        let mut kept: Vec<(String, u64)> = h.into_kept().map(|(k, c)| (k, c.count)).collect();
        iterated.sort();
        kept.sort();
        assert_eq!(kept, iterated);
        // "c" found the counters full and freed "b"; "d" took the freed slot.
        assert_eq!(kept, [("a".to_string(), 2), ("d".to_string(), 1)]);
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

    proptest::proptest! {
        /// The slots give exactly the counts of Misra–Gries over a plain map: the same
        /// keys kept, the same counts, the same undercount, whatever the order of keys.
        #[test]
        fn counts_match_plain_misra_gries(
            keys in proptest::collection::vec(0u8..12, 0..400),
            capacity in 1usize..6,
        ) {
            let mut slots: HeavyHitters<()> = HeavyHitters::new(capacity);
            let mut plain: std::collections::HashMap<String, u64> = Default::default();
            let mut decrements = 0;
            for k in keys {
                let key = format!("subject-{k}");
                let kept = slots.add(&key).is_some();
                if plain.len() >= capacity && !plain.contains_key(&key) {
                    decrements += 1;
                    plain.retain(|_, c| {
                        *c -= 1;
                        *c > 0
                    });
                    proptest::prop_assert!(!kept);
                } else {
                    *plain.entry(key).or_default() += 1;
                    proptest::prop_assert!(kept);
                }
                let mut got: Vec<(String, u64)> =
                    slots.iter().map(|(k, c)| (k.to_string(), c.count)).collect();
                let mut want: Vec<(String, u64)> =
                    plain.iter().map(|(k, c)| (k.clone(), *c)).collect();
                got.sort();
                want.sort();
                proptest::prop_assert_eq!(got, want);
                proptest::prop_assert_eq!(slots.max_undercount(), decrements);
                proptest::prop_assert!(slots.slots.len() <= capacity);
            }
        }
    }

    #[test]
    fn a_reused_slot_starts_from_a_fresh_count_and_payload() {
        let mut h: HeavyHitters<Vec<u32>> = HeavyHitters::new(2);
        if let Some(v) = h.add("a") {
            v.push(1);
        }
        if let Some(v) = h.add("b") {
            v.push(2);
        }
        // Full: "c" decrements both to zero, freeing their slots.
        assert!(h.add("c").is_none());
        assert!(h.is_empty());
        assert_eq!(h.add("d").map(|v| v.clone()), Some(Vec::new()));
        assert_eq!(h.count("d"), 1);
        assert_eq!(h.count("a"), 0);
        assert_eq!(h.upper_bound("a"), 1);
        let kept: Vec<&str> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(kept, ["d"]);
    }
}
