//! Per-key counts that records find without a search most of the time: records come in
//! time order, so a record's minute (or bucket and minute) is nearly always the previous
//! record's. The metrics and the 403 detector both count this way.

use std::collections::BTreeMap;
use std::ops::RangeBounds;

/// Values keyed by `K`, iterated in key order, bounded in number, and found through the
/// previous lookup's key before the ordered index is searched.
#[derive(Debug, Clone)]
pub struct OrderedSlots<K, V> {
    /// Each key's place in `values`, in key order.
    places: BTreeMap<K, u32>,
    /// The values, in the order their keys were first looked up.
    values: Vec<V>,
    /// The previous lookup's key and place.
    last: Option<(K, u32)>,
}

impl<K, V> Default for OrderedSlots<K, V> {
    fn default() -> Self {
        Self {
            places: BTreeMap::new(),
            values: Vec::new(),
            last: None,
        }
    }
}

impl<K: Ord + Copy, V: Default> OrderedSlots<K, V> {
    /// The value of `key`, opened as `V::default()` if new; `None` for a new key once
    /// `limit` keys are open.
    pub fn get_or_open(&mut self, key: K, limit: usize) -> Option<&mut V> {
        let place = match self.last {
            Some((last, place)) if last == key => place,
            _ => {
                let place = match self.places.get(&key) {
                    Some(&place) => place,
                    None if self.places.len() >= limit => return None,
                    None => {
                        let place = self.values.len() as u32;
                        self.values.push(V::default());
                        self.places.insert(key, place);
                        place
                    }
                };
                self.last = Some((key, place));
                place
            }
        };
        self.values.get_mut(place as usize)
    }

    /// The keys and their values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (K, &V)> {
        self.range(..)
    }

    /// The keys in `range` and their values, in key order.
    pub fn range(&self, range: impl RangeBounds<K>) -> impl Iterator<Item = (K, &V)> {
        self.places
            .range(range)
            .filter_map(|(&key, &place)| Some((key, self.values.get(place as usize)?)))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = K> {
        self.places.keys().copied()
    }

    /// How many keys are open.
    pub fn len(&self) -> usize {
        self.places.len()
    }

    /// True when no key is open.
    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_on_their_key_whatever_the_order_and_iterate_in_key_order() {
        let mut slots: OrderedSlots<i64, u32> = OrderedSlots::default();
        for key in [120, 120, 60, 120, 180, 60, 60] {
            if let Some(count) = slots.get_or_open(key, 10) {
                *count += 1;
            }
        }
        let all: Vec<(i64, u32)> = slots.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(all, [(60, 3), (120, 3), (180, 1)]);
        let middle: Vec<i64> = slots.range(100..200).map(|(k, _)| k).collect();
        assert_eq!(middle, [120, 180]);
        assert_eq!(slots.keys().next(), Some(60));
    }

    #[test]
    fn a_new_key_past_the_limit_is_refused_but_open_keys_still_count() {
        let mut slots: OrderedSlots<i64, u32> = OrderedSlots::default();
        assert!(slots.get_or_open(1, 2).is_some());
        assert!(slots.get_or_open(2, 2).is_some());
        assert!(slots.get_or_open(3, 2).is_none());
        assert!(slots.get_or_open(1, 2).is_some());
        assert_eq!(slots.len(), 2);
    }
}
