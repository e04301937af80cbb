//! The detection-state table as the template declares it (`pk` string, `sk` number, TTL
//! on `expires`), created in moto for a test.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};

/// Creates `table` on demand with TTL, as `template.yaml`'s `DetectionTable`.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) {
    let attribute = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("sk", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("create table");
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("enable TTL");
}

/// The count pages as `src/adapters/dynamodb.rs` writes them, kept in memory and sized by
/// DynamoDB's documented rules, so a test can bill each call as DynamoDB would (moto
/// reports no consumed capacity). It follows the adapter's rules: a part goes to the
/// first page of its minute that holds its token or has room; a refused conditional
/// write is billed like a write.
#[derive(Debug)]
pub struct PageModel {
    /// (partition, sort key) → page.
    pub pages: std::collections::HashMap<(String, i64), ModelPage>,
    /// The room the adapter was given ([`bucketlog::alerts::pages::PAGE_ROOM`] unless a
    /// test lowers it).
    pub room: u64,
    /// The pages a part may start at ([`bucketlog::alerts::pages::FIRST_PAGES`] unless a
    /// test makes every part start at page 0).
    pub first_pages: i64,
}

/// One page item: its counters, its `a` tokens and its `z` estimate.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ModelPage {
    pub counters: std::collections::BTreeMap<String, u64>,
    pub tokens: std::collections::BTreeSet<String>,
    pub z: u64,
}

/// DynamoDB's size of a number: one byte per two significant digits, plus one.
fn number_bytes(value: u64) -> u64 {
    let digits = value.to_string().trim_end_matches('0').len().max(1) as u64;
    digits.div_ceil(2) + 1
}

impl ModelPage {
    /// The item's size in bytes by DynamoDB's rules: each attribute's name and value,
    /// the keys, `z`, `a` and a ten-digit `expires` included.
    pub fn bytes(&self, partition: &str, sort_key: i64) -> u64 {
        let keys = 2 + partition.len() as u64 + 2 + number_bytes(sort_key as u64);
        let counters: u64 = self
            .counters
            .iter()
            .map(|(name, v)| name.len() as u64 + number_bytes(*v))
            .sum();
        let tokens: u64 = self.tokens.iter().map(|t| t.len() as u64).sum();
        keys + counters + 1 + tokens + 1 + number_bytes(self.z) + 7 + 6
    }
}

/// Write units of an item write: its larger size, in 1 KB units, at least one.
pub fn write_units(bytes: u64) -> u64 {
    bytes.div_ceil(1024).max(1)
}

impl Default for PageModel {
    fn default() -> Self {
        Self::new()
    }
}

impl PageModel {
    /// A model of pages with the adapter's default room.
    pub fn new() -> Self {
        Self::with_room(bucketlog::alerts::pages::PAGE_ROOM)
    }

    /// A model of pages that take `room` estimated bytes.
    pub fn with_room(room: u64) -> Self {
        Self {
            pages: Default::default(),
            room,
            first_pages: bucketlog::alerts::pages::FIRST_PAGES,
        }
    }

    /// The same model with parts starting at the first `spread` pages of their minute.
    pub fn with_first_pages(mut self, spread: i64) -> Self {
        self.first_pages = spread;
        self
    }

    /// Adds an object's counts as the adapter would; returns the write and read units
    /// billed. A part tries its first page; when that is full, the adapter reads the
    /// minute's later pages (strongly consistent, their sizes summed in 4 KB units) to
    /// find the page that took the part or has room, and writes there.
    pub fn add(&mut self, apply_id: &str, updates: &[bucketlog::ports::CountUpdate]) -> (u64, u64) {
        use bucketlog::alerts::pages::{first_page, plan_parts, sort_key};
        let (mut wru, mut rru) = (0, 0);
        for part in plan_parts(apply_id, updates).expect("count series") {
            let room = self.room.saturating_sub(part.bytes);
            let mut page = first_page(&part.token, self.first_pages);
            let mut searched = false;
            loop {
                let sk = sort_key(part.minute, page);
                let item = self.pages.entry((part.partition.clone(), sk)).or_default();
                let before = item.bytes(&part.partition, sk);
                let took = item.tokens.contains(&part.token);
                if took || item.z > room {
                    if !searched {
                        // The write to the first page, refused.
                        wru += write_units(before);
                    }
                    if took {
                        break;
                    }
                    if !searched {
                        searched = true;
                        rru += self.query_units(
                            &part.partition,
                            sort_key(part.minute, page + 1),
                            sort_key(part.minute + 60, 0) - 1,
                        );
                    }
                    page += 1;
                    continue;
                }
                for (name, amount) in &part.counters {
                    *item.counters.entry(name.clone()).or_default() += amount;
                }
                item.tokens.insert(part.token.clone());
                item.z += part.bytes;
                wru += write_units(item.bytes(&part.partition, sk).max(before));
                break;
            }
        }
        (wru, rru)
    }

    /// Read units, strongly consistent, of the page queries the adapter makes for
    /// `queries`: each range's items summed, in 4 KB units, at least one per query.
    pub fn read_units(&self, queries: &[bucketlog::ports::CountQuery]) -> u64 {
        use bucketlog::alerts::pages::{plan_reads, slot};
        let slots: Vec<_> = queries
            .iter()
            .map(|q| slot(&q.series).expect("count series"))
            .collect();
        let reads = plan_reads(slots.iter().zip(queries).map(|(s, q)| (s, q.from, q.to)));
        reads
            .iter()
            .map(|range| {
                let (low, high) = range.sort_keys();
                self.query_units(&range.partition, low, high)
            })
            .sum()
    }

    /// Read units of one strongly consistent query of `partition`'s pages with sort keys
    /// in `low..=high`: their sizes summed, in 4 KB units, at least one.
    fn query_units(&self, partition: &str, low: i64, high: i64) -> u64 {
        let bytes: u64 = self
            .pages
            .iter()
            .filter(|((p, sk), _)| p == partition && (low..=high).contains(sk))
            .map(|((p, sk), page)| page.bytes(p, *sk))
            .sum();
        bytes.div_ceil(4096).max(1)
    }
}
