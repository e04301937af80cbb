//! How the shared per-minute counts are laid out in the DynamoDB table: in pages, one
//! item holding many subjects' counters, instead of one item per (subject, minute).
//!
//! DynamoDB bills a write by the size of the item it changes, in 1 KB units, not by how
//! many counters it adds to. S3's small log objects bring nearly one new (subject,
//! minute) per record, so one item per counter cost one transactional write (2 units)
//! per record: about $2.9 per GiB of logs, more than AWS's own delivery of the logs.
//! A page holds every subject's counters of one bucket and minute as attributes
//! (`f{member}` for 403s, `t{member}` for requests), so an object adds all of its
//! subjects of a minute in one `UpdateItem` that costs the page's size: a few units.
//!
//! Layout (partition key `pk`, numeric sort key `sk`):
//! `p#{bucket}` / `minute × 1000 + page`: the bucket's own counters (the empty member:
//! attributes `f` and `t`) and its subjects', members `r` and a hash of the requester,
//! `i` and an IPv4 address's bytes, `j` and a hash of any other remote IP field (see
//! [`slot`]): short names, as every write of a page pays for every name in it. The
//! bucket's counters share its subjects' page, so an object writes once per minute,
//! and the windows read for its subjects cover the bucket's minutes too.
//!
//! Counted once without transactions: each page write adds its part's token to the
//! page's string set `a` under the condition that the set does not hold it yet, so a
//! retried part is refused by the page that took it. A page is full when the bytes its
//! writes were estimated to add (`z`, an upper bound of its real growth) would pass
//! [`PAGE_ROOM`]; a part that does not fit goes to the minute's next page. A part tries
//! pages in order from its [`first_page`], which its token picks (the first by writing,
//! later ones by a strongly consistent read of the minute's pages), and pages only
//! fill, so a retried part meets the page that took it before any page after it.
//! Readers sum a member over every page of a minute.
//!
//! Why each part starts on a page of its own: DynamoDB bills an `UpdateItem` by the
//! item's whole size, so when every object of a minute added to one page, each paid for
//! all the counters written before it (about 4 KB per write for 1 KB of its own, and a
//! busy bucket's writes would each have paid up to [`PAGE_ROOM`]). Spread over
//! [`FIRST_PAGES`] first pages, an object's write mostly pays for its own bytes; the
//! readers, which read every page of a minute in one query billed by the bytes summed,
//! pay a little more for the names and keys the pages repeat.
//!
//! This module is pure: it forms the parts and names the keys; the adapter
//! ([`crate::adapters::dynamodb`]) sends them.

use std::collections::{BTreeMap, HashMap};

use super::alert_id;
use crate::ports::CountUpdate;

/// Estimated bytes a page may take before writes go to the minute's next page; under
/// DynamoDB's item limit (400 KB) with room for the keys, `z`, `a` and `expires`.
pub const PAGE_ROOM: u64 = 350_000;
/// Pages one minute of one bucket may have: its sort keys are `minute × 1000 + page`.
pub const PAGES_PER_MINUTE: i64 = 1_000;
/// Counters added by one write, so that its update expression stays under DynamoDB's
/// limits for one expression: 4 KB of text (200 actions take about 2 KB) and 300
/// operators (203 actions, even if each counted as one).
pub const PART_COUNTERS: usize = 200;
/// The most bytes DynamoDB stores for one number (38 significant digits).
const NUMBER_BYTES: u64 = 21;
/// Pages a part may start at: half of a minute's, leaving the rest for parts that find
/// their pages full.
pub const FIRST_PAGES: i64 = PAGES_PER_MINUTE / 2;

/// Where one series' counts live: the page partition and the member within each page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// The pages' partition key: `p#{bucket}`.
    pub partition: String,
    /// The member's name within a page, after the `f`/`t` of its attributes.
    pub member: String,
}

/// The page slot of a count series (`c#{bucket}#{kind}#{subject}` or `b#{bucket}`, as
/// [`super::shared`] names them); `None` for anything else.
pub fn slot(series: &str) -> Option<Slot> {
    if let Some(bucket) = series.strip_prefix("b#") {
        return Some(Slot {
            partition: format!("p#{bucket}"),
            member: String::new(),
        });
    }
    let rest = series.strip_prefix("c#")?;
    let (bucket, rest) = rest.split_once('#')?;
    let (kind, subject) = rest.split_once('#')?;
    let member = match kind {
        "requester" => format!("r{}", hashed(subject)),
        "remote_ip" => ip_member(subject),
        _ => return None,
    };
    Some(Slot {
        partition: format!("p#{bucket}"),
        member,
    })
}

/// Bytes of SHA-256 a hashed member keeps: 72 bits, 12 characters of base64url. Finding
/// a subject that lands on another's member takes about 2⁷² tries; two subjects of a
/// page sharing one by chance, about one in 10¹⁴ for a page of 10,000.
const HASHED_BYTES: usize = 9;

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A subject's name in a page when its text is long: requester ARNs run to 60
/// characters, and every write of a page pays for every name in it.
fn hashed(subject: &str) -> String {
    use sha2::Digest;
    base64url(&sha2::Sha256::digest(subject.as_bytes())[..HASHED_BYTES])
}

/// An address's member: `i` and an IPv4 address's four bytes in base64url (6
/// characters); `j` and the hash of anything else (an IPv6 address in its canonical
/// form, or a field that is not an address).
fn ip_member(subject: &str) -> String {
    match subject.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => format!("i{}", base64url(&a.octets())),
        Ok(std::net::IpAddr::V6(a)) => format!("j{}", hashed(&a.to_string())),
        Err(_) => format!("j{}", hashed(subject)),
    }
}

/// A member's 403 counter attribute.
pub fn forbidden_attribute(member: &str) -> String {
    format!("f{member}")
}

/// A member's request counter attribute.
pub fn total_attribute(member: &str) -> String {
    format!("t{member}")
}

/// The sort key of a minute's page.
pub fn sort_key(minute: i64, page: i64) -> i64 {
    minute * PAGES_PER_MINUTE + page
}

/// The page of its minute a part tries first: picked by its token among the first
/// `spread` pages (1 puts every part on page 0), the same on every retry. Two parts of a
/// minute sharing it only share a page, as all parts once did.
pub fn first_page(token: &str, spread: i64) -> i64 {
    let mut hash = crate::logkey::Fnv1a::default();
    hash.write(token.as_bytes());
    (hash.finish() % spread.clamp(1, PAGES_PER_MINUTE) as u64) as i64
}

/// The minute a page's sort key belongs to.
pub fn minute_of(sort_key: i64) -> i64 {
    sort_key.div_euclid(PAGES_PER_MINUTE)
}

/// One write of an object's counts: counters of one partition and minute, added once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePart {
    /// The pages' partition key.
    pub partition: String,
    /// The minute (Unix seconds).
    pub minute: i64,
    /// Names this part for the pages' `a` set: the object, partition, minute and part.
    pub token: String,
    /// (attribute, amount) to add, at most [`PART_COUNTERS`].
    pub counters: Vec<(String, u64)>,
    /// An upper bound of the bytes this part adds to a page.
    pub bytes: u64,
    /// The count updates it carries, for reporting.
    pub updates: u64,
}

/// The bytes a counter can add to a page: its name and the largest number.
fn counter_bytes(attribute: &str) -> u64 {
    attribute.len() as u64 + NUMBER_BYTES
}

/// Splits an object's updates into page writes. The same updates always form the same
/// parts with the same tokens, so a retry is recognised page by page.
pub fn plan_parts(apply_id: &str, updates: &[CountUpdate]) -> Result<Vec<PagePart>, String> {
    let mut by_page: BTreeMap<(String, i64), BTreeMap<String, (u64, u64)>> = BTreeMap::new();
    for u in updates {
        let slot = slot(&u.series).ok_or_else(|| format!("not a count series: {}", u.series))?;
        let counts = by_page
            .entry((slot.partition, u.minute))
            .or_default()
            .entry(slot.member)
            .or_default();
        counts.0 += u.forbidden;
        counts.1 += u.total;
    }
    let mut parts = Vec::new();
    for ((partition, minute), members) in by_page {
        let mut counters: Vec<(String, u64)> = Vec::new();
        let mut updates = 0;
        let mut index = 0;
        for (member, (forbidden, total)) in members {
            if counters.len() + 2 > PART_COUNTERS {
                parts.push(part(apply_id, &partition, minute, index, counters, updates));
                (counters, updates, index) = (Vec::new(), 0, index + 1);
            }
            if forbidden > 0 {
                counters.push((forbidden_attribute(&member), forbidden));
            }
            if total > 0 {
                counters.push((total_attribute(&member), total));
            }
            updates += 1;
        }
        if !counters.is_empty() {
            parts.push(part(apply_id, &partition, minute, index, counters, updates));
        }
    }
    Ok(parts)
}

fn part(
    apply_id: &str,
    partition: &str,
    minute: i64,
    index: usize,
    counters: Vec<(String, u64)>,
    updates: u64,
) -> PagePart {
    let token = alert_id(&[apply_id, partition, &minute.to_string(), &index.to_string()]);
    let bytes = counters.iter().map(|(a, _)| counter_bytes(a)).sum::<u64>() + token.len() as u64;
    PagePart {
        partition: partition.to_string(),
        minute,
        token,
        counters,
        bytes,
        updates,
    }
}

/// One read of pages: a partition over an inclusive range of minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRange {
    /// The pages' partition key.
    pub partition: String,
    /// First minute (inclusive).
    pub from: i64,
    /// Last minute (inclusive).
    pub to: i64,
}

impl PageRange {
    /// The sort keys it covers, for `sk BETWEEN`.
    pub fn sort_keys(&self) -> (i64, i64) {
        (
            sort_key(self.from, 0),
            sort_key(self.to, PAGES_PER_MINUTE - 1),
        )
    }
}

/// The page reads that cover `ranges` ((slot, from, to) per query): overlapping or
/// adjacent minute ranges of one partition are read once.
pub fn plan_reads<'a>(ranges: impl Iterator<Item = (&'a Slot, i64, i64)>) -> Vec<PageRange> {
    let mut by_partition: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for (slot, from, to) in ranges {
        by_partition
            .entry(slot.partition.as_str())
            .or_default()
            .push((from, to.max(from)));
    }
    let mut out = Vec::new();
    for (partition, mut spans) in by_partition {
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (from, to) in spans {
            match merged.last_mut() {
                Some(last) if from <= last.1 + 60 => last.1 = last.1.max(to),
                _ => merged.push((from, to)),
            }
        }
        out.extend(merged.into_iter().map(|(from, to)| PageRange {
            partition: partition.to_string(),
            from,
            to,
        }));
    }
    out.sort_by(|a, b| (&a.partition, a.from).cmp(&(&b.partition, b.from)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(series: &str, minute: i64, forbidden: u64, total: u64) -> CountUpdate {
        CountUpdate {
            series: series.into(),
            minute,
            forbidden,
            total,
        }
    }

    #[test]
    fn series_map_to_their_bucket_partition_and_a_short_member() {
        let s = slot("c#logs.example#remote_ip#203.0.113.9").unwrap();
        assert_eq!(
            (s.partition.as_str(), s.member.as_str()),
            ("p#logs.example", "iywBxCQ")
        );
        let v6 = slot("c#b#remote_ip#2001:db8::1").unwrap().member;
        assert_eq!((&v6[..1], v6.len()), ("j", 13));
        assert_eq!(slot("c#b#remote_ip#2001:DB8:0::1").unwrap().member, v6);
        let dash = slot("c#b#remote_ip#-").unwrap().member;
        assert!(dash.starts_with('j') && dash != v6);
        assert_ne!(
            slot("c#b#remote_ip#10.0.0.1").unwrap().member,
            slot("c#b#remote_ip#10.0.0.2").unwrap().member
        );
        let arn = "arn:aws:iam::123456789012:role/service-role/replication";
        let s = slot(&format!("c#b#requester#{arn}")).unwrap();
        assert_eq!((&s.member[..1], s.member.len()), ("r", 13));
        assert_eq!(
            s.member,
            format!("r{}", hashed(arn)),
            "the requester's own hash"
        );
        let hashed_with_hash = slot("c#b#requester#a#b").unwrap().member;
        assert_eq!(
            hashed_with_hash,
            format!("r{}", hashed("a#b")),
            "a # in the subject stays"
        );
        let s = slot("b#logs").unwrap();
        assert_eq!((s.partition.as_str(), s.member.as_str()), ("p#logs", ""));
        assert_eq!(slot("e#forbidden_spike#b#bucket"), None);
        assert_eq!(slot("c#b#user_agent#x"), None);
    }

    #[test]
    fn sort_keys_keep_pages_inside_their_minute() {
        let m = 1_764_000_000;
        assert_eq!(minute_of(sort_key(m, 0)), m);
        assert_eq!(minute_of(sort_key(m, PAGES_PER_MINUTE - 1)), m);
        assert_eq!(minute_of(sort_key(m + 60, 0)), m + 60);
        let r = PageRange {
            partition: "p#b".into(),
            from: m,
            to: m + 60,
        };
        assert_eq!(r.sort_keys(), (sort_key(m, 0), sort_key(m + 60, 999)));
    }

    #[test]
    fn a_part_starts_at_a_page_its_token_picks_among_the_first_pages() {
        let parts = plan_parts(
            "s3://l/k@e",
            &(0..40)
                .map(|m| update("b#b", m * 60, 0, 1))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let firsts: Vec<i64> = parts
            .iter()
            .map(|p| first_page(&p.token, FIRST_PAGES))
            .collect();
        assert!(firsts.iter().all(|&p| (0..FIRST_PAGES).contains(&p)));
        let distinct: std::collections::HashSet<i64> = firsts.iter().copied().collect();
        assert!(distinct.len() >= 36, "{firsts:?}");
        let again: Vec<i64> = parts
            .iter()
            .map(|p| first_page(&p.token, FIRST_PAGES))
            .collect();
        assert_eq!(again, firsts, "a retry starts where the first try did");
        assert!(parts.iter().all(|p| first_page(&p.token, 1) == 0));
        assert!(parts.iter().all(|p| first_page(&p.token, 0) == 0));
        assert!(
            parts
                .iter()
                .all(|p| first_page(&p.token, 10 * PAGES_PER_MINUTE) < PAGES_PER_MINUTE),
            "a page stays inside its minute"
        );
    }

    #[test]
    fn parts_group_a_minute_of_one_partition_and_are_the_same_on_a_retry() {
        let updates = vec![
            update("b#b", 0, 1, 5),
            update("c#b#remote_ip#1.1.1.1", 0, 1, 2),
            update("c#b#remote_ip#2.2.2.2", 0, 0, 3),
            update("c#b#requester#alice", 60, 0, 1),
        ];
        let parts = plan_parts("s3://l/k@e", &updates).unwrap();
        let shape: Vec<(&str, i64, usize, u64)> = parts
            .iter()
            .map(|p| (p.partition.as_str(), p.minute, p.counters.len(), p.updates))
            .collect();
        assert_eq!(shape, [("p#b", 0, 5, 3), ("p#b", 60, 1, 1)]);
        assert_eq!(
            parts[0].counters,
            [
                ("f".to_string(), 1),
                ("t".to_string(), 5),
                ("fiAQEBAQ".to_string(), 1),
                ("tiAQEBAQ".to_string(), 2),
                ("tiAgICAg".to_string(), 3)
            ]
        );
        let mut shuffled = updates.clone();
        shuffled.reverse();
        assert_eq!(plan_parts("s3://l/k@e", &shuffled).unwrap(), parts);
        let other = plan_parts("s3://l/k@f", &updates).unwrap();
        assert!(parts.iter().zip(&other).all(|(a, b)| a.token != b.token));
        let tokens: std::collections::HashSet<&str> =
            parts.iter().map(|p| p.token.as_str()).collect();
        assert_eq!(tokens.len(), parts.len());
        assert!(plan_parts("x", &[update("l#b", 0, 1, 1)]).is_err());
    }

    #[test]
    fn a_large_minute_splits_into_bounded_parts_whose_bytes_bound_their_counters() {
        let updates: Vec<CountUpdate> = (0..450)
            .map(|i| {
                update(
                    &format!("c#b#remote_ip#10.0.{}.{}", i / 256, i % 256),
                    0,
                    1,
                    1,
                )
            })
            .collect();
        let parts = plan_parts("o", &updates).unwrap();
        assert_eq!(parts.len(), 5);
        assert!(parts.iter().all(|p| p.counters.len() <= PART_COUNTERS));
        assert_eq!(parts.iter().map(|p| p.updates).sum::<u64>(), 450);
        for p in &parts {
            let names: u64 = p.counters.iter().map(|(a, _)| a.len() as u64).sum();
            assert!(p.bytes >= names + 21 * p.counters.len() as u64, "{p:?}");
        }
    }

    #[test]
    fn reads_merge_overlapping_and_adjacent_ranges_per_partition() {
        let a = slot("c#b#remote_ip#1.1.1.1").unwrap();
        let b = slot("c#b#requester#x").unwrap();
        let m = slot("b#b").unwrap();
        let reads =
            plan_reads([(&a, 0, 300), (&b, 360, 600), (&a, 1200, 1200), (&m, 0, 60)].into_iter());
        let spans: Vec<(&str, i64, i64)> = reads
            .iter()
            .map(|r| (r.partition.as_str(), r.from, r.to))
            .collect();
        assert_eq!(spans, [("p#b", 0, 600), ("p#b", 1200, 1200)]);
    }

    proptest::proptest! {
        /// Nothing lost, nothing doubled: the parts carry exactly the updates' sums per
        /// (partition, minute, member), in bounded parts with distinct tokens, whatever
        /// the order the updates come in.
        #[test]
        fn parts_carry_every_count_once(
            raw in proptest::collection::vec((0u8..3, 0u16..700, 0i64..4, 0u64..5, 1u64..9), 0..900),
            rotate in 0usize..900,
        ) {
            let updates: Vec<CountUpdate> = raw
                .iter()
                .map(|&(kind, who, minute, forbidden, total)| {
                    let series = match kind {
                        0 => "b#b".to_string(),
                        1 => format!("c#b#remote_ip#10.0.{}.{}", who / 256, who % 256),
                        _ => format!("c#b#requester#user-{who}"),
                    };
                    update(&series, minute * 60, forbidden, total)
                })
                .collect();
            let mut expected: BTreeMap<(String, i64, String), u64> = BTreeMap::new();
            for u in &updates {
                let s = slot(&u.series).unwrap();
                for (attribute, amount) in [
                    (forbidden_attribute(&s.member), u.forbidden),
                    (total_attribute(&s.member), u.total),
                ] {
                    if amount > 0 {
                        *expected.entry((s.partition.clone(), u.minute, attribute)).or_default() += amount;
                    }
                }
            }
            let parts = plan_parts("o@e", &updates).unwrap();
            let mut carried: BTreeMap<(String, i64, String), u64> = BTreeMap::new();
            for p in &parts {
                proptest::prop_assert!(p.counters.len() <= PART_COUNTERS);
                for (attribute, amount) in &p.counters {
                    let previous = carried.insert((p.partition.clone(), p.minute, attribute.clone()), *amount);
                    proptest::prop_assert!(previous.is_none(), "{attribute} in two parts");
                }
            }
            proptest::prop_assert_eq!(&carried, &expected);
            let tokens: std::collections::HashSet<&str> = parts.iter().map(|p| p.token.as_str()).collect();
            proptest::prop_assert_eq!(tokens.len(), parts.len());
            let mut turned = updates.clone();
            if !turned.is_empty() {
                let by = rotate % turned.len();
                turned.rotate_left(by);
            }
            proptest::prop_assert_eq!(plan_parts("o@e", &turned).unwrap(), parts);
        }
    }
}
