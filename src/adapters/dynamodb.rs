//! The shared detection state in one DynamoDB table, through `aws-sdk-dynamodb`.
//!
//! The table has a string partition key `pk`, a number sort key `sk` and the TTL
//! attribute `expires` (Unix seconds). Items:
//! - `p#{bucket}` / `minute × 1000 + page`: pages of per-minute counts, the bucket's
//!   and its subjects', laid out as [`crate::alerts::pages`] says;
//! - `e#forbidden_spike#{bucket}#{kind}#{subject}` / 0: the subject's (or the bucket's)
//!   current alert episode: `alert_id`, `first`, `last`, `claimer`, `count`, `sent`;
//! - `s#{bucket}#{kind}#{subject}` / 0: a requester or address first seen by `by`;
//! - `l#{bucket}` / 0: when learning started (`started`).
//!
//! Counts are only ever changed with `ADD`, never read-modify-written. Each part of an
//! object's counts is one conditional `UpdateItem` of a page that also adds the part's
//! token to the page's `a` set, refused when the set holds it: a part added before is
//! skipped, so an object's counts are added once even after a failure halfway, without
//! transactions (which bill twice). Parts are formed from the sorted updates, so a retry
//! forms the same parts.
//!
//! Up to version `f58b228` counts were items per (series, minute) (`c#…`, `b#…`) written
//! in transactions with `applied#…` items; those are no longer read and expire by TTL.
//!
//! Throttling is retried by the SDK's standard retry strategy (see [`retry_config`]);
//! what still fails is an error, so the pipeline's step stays pending and Lambda retries.
//! A missing table is an error that names it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use futures::future::try_join_all;

use crate::alerts::known::KnownSightings;
use crate::alerts::pages::{
    FIRST_PAGES, PAGE_ROOM, PAGES_PER_MINUTE, PagePart, PageRange, first_page, forbidden_attribute,
    minute_of, plan_parts, plan_reads, slot, sort_key, total_attribute,
};
use crate::ports::{
    ClaimOutcome, CountQuery, CountUpdate, DetectionState, EpisodeClaim, MinuteCounts, StateError,
    StateErrorKind,
};

/// DynamoDB calls in flight at once per object.
pub const CONCURRENCY: usize = 8;
/// Page ranges read at once per object: a range's answer can be a megabyte of pages,
/// so fewer than [`CONCURRENCY`] keeps a 128 MB function's memory safe (an object
/// usually needs two: its subjects' minutes and its bucket's).
const READ_CONCURRENCY: usize = 2;
/// Keys per `BatchGetItem` call.
const BATCH_GET: usize = 100;
/// Attempts for a step that DynamoDB refused without a final answer: a page write
/// refused for neither of its conditions, keys a batch read left unprocessed.
const WRITE_ATTEMPTS: u32 = 8;
/// Default lifetime of count pages and episodes: longer than the latest
/// deliveries seen (nine days).
pub const DEFAULT_COUNT_TTL_DAYS: i64 = 10;
/// Default lifetime of a first sighting after its last refresh.
pub const DEFAULT_SEEN_TTL_DAYS: i64 = 90;

/// The retry policy the function gives its DynamoDB client: the SDK's standard strategy
/// (exponential backoff with jitter, throttling errors such as
/// `ProvisionedThroughputExceededException` and `ThrottlingException` included), with
/// more attempts than the default three.
pub fn retry_config() -> aws_sdk_dynamodb::config::retry::RetryConfig {
    aws_sdk_dynamodb::config::retry::RetryConfig::standard()
        .with_max_attempts(6)
        .with_initial_backoff(Duration::from_millis(50))
}

/// A [`DetectionState`] in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDetectionState {
    client: Client,
    table: String,
    count_ttl: i64,
    seen_ttl: i64,
    /// Sightings found known by this process, shared by clones (a warm function's).
    known: Arc<std::sync::Mutex<KnownSightings>>,
    /// Estimated bytes a count page may take ([`PAGE_ROOM`]; smaller in tests).
    page_room: u64,
    /// Pages a part may start at ([`FIRST_PAGES`]; 1 in tests that fill pages).
    first_pages: i64,
    /// DynamoDB calls sent (retries by the SDK not included), shared by clones.
    calls: Arc<AtomicU64>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// DynamoDB's error codes for a request refused for capacity, which the SDK's retries
/// did not get through.
pub(crate) fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded"
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn key(pk: &str, sk: i64) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), n(sk))])
}

impl DynamoDetectionState {
    /// The state in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            count_ttl: DEFAULT_COUNT_TTL_DAYS * 86_400,
            seen_ttl: DEFAULT_SEEN_TTL_DAYS * 86_400,
            page_room: PAGE_ROOM,
            first_pages: FIRST_PAGES,
            known: Arc::default(),
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A client from the shared AWS configuration (honours `AWS_ENDPOINT_URL`), with
    /// [`retry_config`].
    pub fn from_shared(shared: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        let config = aws_sdk_dynamodb::config::Builder::from(shared)
            .retry_config(retry_config())
            .build();
        Self::new(Client::from_conf(config), table)
    }

    /// Keeps counts, episodes and applied items `count_days` and first sightings
    /// `seen_days` after they were last written.
    pub fn with_ttl_days(mut self, count_days: i64, seen_days: i64) -> Self {
        self.count_ttl = count_days * 86_400;
        self.seen_ttl = seen_days * 86_400;
        self
    }

    /// Lets a count page take `bytes` (estimated) before writes go to the next page:
    /// small values let tests fill pages with a few writes.
    pub fn with_page_room(mut self, bytes: u64) -> Self {
        self.page_room = bytes;
        self
    }

    /// Lets parts start only at the first `spread` pages of their minute (1: every part
    /// at page 0), so tests can make objects share pages and fill them.
    pub fn with_first_pages(mut self, spread: i64) -> Self {
        self.first_pages = spread;
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// How many DynamoDB calls this state (and its clones) sent so far, for measuring
    /// the work per log object.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn sent(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn error<E>(&self, operation: &'static str, e: &SdkError<E>) -> StateError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = e.code().unwrap_or_default();
        let kind = match code {
            "ResourceNotFoundException" => StateErrorKind::Missing,
            code if is_throttling(code) => StateErrorKind::Throttled,
            _ => StateErrorKind::Other,
        };
        let message = if kind == StateErrorKind::Missing {
            format!(
                "the DynamoDB table {} does not exist (create it as docs/deploy.md says, or fix DETECTION_TABLE): {}",
                self.table,
                DisplayErrorContext(e)
            )
        } else {
            DisplayErrorContext(e).to_string()
        };
        StateError {
            operation,
            table: self.table.clone(),
            kind,
            message,
        }
    }

    fn invalid(&self, operation: &'static str, message: String) -> StateError {
        StateError {
            operation,
            table: self.table.clone(),
            kind: StateErrorKind::Other,
            message,
        }
    }

    /// The conditional page write of a part, without its key: add the counters, `z` and
    /// the token, unless the page holds the token or has no room for the part.
    fn page_write(
        &self,
        part: &PagePart,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let mut expression = String::from("ADD #z :z, #a :a");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .condition_expression(
                "NOT contains(#a, :tok) AND (attribute_not_exists(#z) OR #z <= :room)",
            )
            .expression_attribute_names("#z", "z")
            .expression_attribute_names("#a", "a")
            .expression_attribute_values(":z", n(part.bytes))
            .expression_attribute_values(":a", AttributeValue::Ss(vec![part.token.clone()]))
            .expression_attribute_values(":tok", s(&part.token))
            .expression_attribute_values(":room", n(self.page_room.saturating_sub(part.bytes)))
            .expression_attribute_values(":e", n(now() + self.count_ttl))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (i, (attribute, amount)) in part.counters.iter().enumerate() {
            expression.push_str(&format!(", #{i} :{i}"));
            request = request
                .expression_attribute_names(format!("#{i}"), attribute)
                .expression_attribute_values(format!(":{i}"), n(amount));
        }
        expression.push_str(" SET expires = :e");
        request.update_expression(expression)
    }

    /// Adds one part to the first page, from its [`first_page`] on, that has room or
    /// took it before; `false` when a page took it before.
    async fn add_part(&self, part: &PagePart) -> Result<bool, StateError> {
        const OP: &str = "UpdateItem";
        let request = self.page_write(part);
        let mut page = first_page(&part.token, self.first_pages);
        let mut races = 0;
        while page < PAGES_PER_MINUTE {
            self.sent();
            let result = request
                .clone()
                .key("pk", s(&part.partition))
                .key("sk", n(sort_key(part.minute, page)))
                .send()
                .await;
            let e = match result {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let Some(failed) = e.as_service_error().and_then(|s| match s {
                UpdateItemError::ConditionalCheckFailedException(c) => Some(c),
                _ => None,
            }) else {
                return Err(self.error(OP, &e));
            };
            let old = failed.item().cloned().unwrap_or_default();
            if took(&old, part) {
                return Ok(false);
            }
            if self.full_for(&old, part) {
                // Full: find the next page by reading the minute's later pages (a
                // twentieth of what refused writes to each of them would cost).
                match self.next_page(part, page).await? {
                    Some(next) => page = next,
                    None => return Ok(false),
                }
            } else {
                // Neither reason held in the item returned: retry the same page.
                races += 1;
                if races >= WRITE_ATTEMPTS {
                    return Err(self.invalid(OP, format!(
                        "page {} of {} at minute {} refused the part {} without holding it or being full",
                        page, part.partition, part.minute, part.token
                    )));
                }
                tokio::time::sleep(backoff(races)).await;
            }
        }
        Err(self.invalid(
            OP,
            format!(
                "all {PAGES_PER_MINUTE} pages of {} at minute {} are full",
                part.partition, part.minute
            ),
        ))
    }

    /// Whether a page (as read) has no room left for `part`.
    fn full_for(&self, page: &HashMap<String, AttributeValue>, part: &PagePart) -> bool {
        number(page, "z").is_some_and(|z| z > self.page_room.saturating_sub(part.bytes) as i64)
    }

    /// One answer (at most 1 MB) of a strongly consistent query of `partition`'s pages
    /// with sort keys in `range`: their tokens and `z` only when `placement`, else whole.
    async fn query_pages(
        &self,
        partition: &str,
        range: (i64, i64),
        placement: bool,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<aws_sdk_dynamodb::operation::query::QueryOutput, StateError> {
        self.sent();
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p AND sk BETWEEN :a AND :b")
            .expression_attribute_values(":p", s(partition))
            .expression_attribute_values(":a", n(range.0))
            .expression_attribute_values(":b", n(range.1))
            .consistent_read(true)
            .set_exclusive_start_key(start);
        if placement {
            query = query
                .projection_expression("sk, #z, #a")
                .expression_attribute_names("#z", "z")
                .expression_attribute_names("#a", "a");
        }
        query.send().await.map_err(|e| self.error("Query", &e))
    }

    /// The first page of the part's minute after `full` that holds its token (`None`)
    /// or has room for it, read strongly consistent, tokens and `z` only; the page after
    /// the last when every one is full.
    async fn next_page(&self, part: &PagePart, full: i64) -> Result<Option<i64>, StateError> {
        let mut start = None;
        let mut next = full + 1;
        loop {
            let range = (
                sort_key(part.minute, full + 1),
                sort_key(part.minute, PAGES_PER_MINUTE - 1),
            );
            let out = self
                .query_pages(&part.partition, range, true, start)
                .await?;
            for item in out.items() {
                let page = number(item, "sk").unwrap_or_default() - sort_key(part.minute, 0);
                if took(item, part) {
                    return Ok(None);
                }
                if !self.full_for(item, part) {
                    return Ok(Some(page));
                }
                next = page + 1;
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(Some(next)),
            }
        }
    }

    /// Reads one range of pages: the counters each [`Wanted`] of its partition names,
    /// per page (a minute with several pages gives several).
    async fn read_range(
        &self,
        range: &PageRange,
        wanted: &HashMap<&str, Vec<Wanted>>,
    ) -> Result<Vec<(usize, MinuteCounts)>, StateError> {
        let mut out = Vec::new();
        let Some(members) = wanted.get(range.partition.as_str()) else {
            return Ok(out);
        };
        let (low, high) = range.sort_keys();
        let mut start = None;
        loop {
            let page = self
                .query_pages(&range.partition, (low, high), false, start)
                .await?;
            for item in page.items() {
                let minute = minute_of(number(item, "sk").unwrap_or_default());
                for w in members {
                    if minute < w.from || minute > w.to {
                        continue;
                    }
                    let forbidden = number(item, &w.forbidden);
                    let total = number(item, &w.total);
                    if forbidden.is_none() && total.is_none() {
                        continue;
                    }
                    out.push((
                        w.query,
                        MinuteCounts {
                            minute,
                            forbidden: forbidden.unwrap_or_default().max(0) as u64,
                            total: total.unwrap_or_default().max(0) as u64,
                        },
                    ));
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Reads the episode back after a successful claim: only the claimer still recorded
    /// notifies. DynamoDB's conditional writes are atomic, so this only ever disagrees on
    /// an emulator that does not serialise them (moto under concurrent requests).
    async fn confirm(&self, claim: &EpisodeClaim) -> Result<ClaimOutcome, StateError> {
        self.sent();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(&claim.episode, 0)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", &e))?;
        let item = out.item().cloned().unwrap_or_default();
        if text(&item, "claimer") == Some(claim.claimer.as_str()) {
            Ok(ClaimOutcome::Claimed)
        } else {
            Ok(ClaimOutcome::Joined {
                alert_id: text(&item, "alert_id").unwrap_or_default().to_string(),
            })
        }
    }

    /// Extends a joined episode where the claim reaches beyond it; best effort.
    async fn extend(&self, claim: &EpisodeClaim, old: &HashMap<String, AttributeValue>) {
        let changes = [
            (
                "last",
                claim.last_start,
                number(old, "last").is_some_and(|v| v < claim.last_start),
                "#a < :v",
            ),
            (
                "first",
                claim.first_start,
                number(old, "first").is_some_and(|v| v > claim.first_start),
                "#a > :v",
            ),
            (
                "count",
                claim.count as i64,
                number(old, "count").unwrap_or(0) < claim.count as i64,
                "#a < :v",
            ),
        ];
        for (attribute, value, needed, condition) in changes {
            if !needed {
                continue;
            }
            self.sent();
            let _ = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(&claim.episode, 0)))
                .update_expression("SET #a = :v")
                .condition_expression(condition)
                .expression_attribute_names("#a", attribute)
                .expression_attribute_values(":v", n(value))
                .send()
                .await;
        }
    }

    /// The sightings this process already knows ([`KnownSightings`]).
    fn remembered(&self) -> std::sync::MutexGuard<'_, KnownSightings> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Which keys are known and fresh, and whether `claimer` saw each first: those this
    /// process learnt within the hour, then a batch read of the rest. Keys left out need
    /// a first-sighting write: missing, or expiring within half the TTL.
    async fn unknown_or_stale(
        &self,
        keys: &[String],
        claimer: &str,
    ) -> Result<HashMap<String, bool>, StateError> {
        let refresh_before = now() + self.seen_ttl / 2;
        let mut known: HashMap<String, bool> = HashMap::new();
        let unique: Vec<&String> = {
            let mut remembered = self.remembered();
            keys.iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|k| match remembered.answer(claimer, k, now()) {
                    Some(first_by_me) => {
                        known.insert(k.to_string(), first_by_me);
                        false
                    }
                    None => true,
                })
                .collect()
        };
        for group in unique.chunks(BATCH_GET) {
            let mut wanted: Vec<HashMap<String, AttributeValue>> =
                group.iter().map(|k| key(k, 0)).collect();
            let mut attempt = 0;
            while !wanted.is_empty() {
                attempt += 1;
                // Eventually consistent (half the read units): a sighting read stale is
                // written again, and the write's `if_not_exists` keeps the first one.
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut wanted)))
                    .consistent_read(false)
                    .build()
                    .map_err(|e| self.invalid("BatchGetItem", e.to_string()))?;
                self.sent();
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| self.error("BatchGetItem", &e))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let fresh = number(item, "expires").is_some_and(|e| e > refresh_before);
                    if let (Some(pk), Some(by), true) = (text(item, "pk"), text(item, "by"), fresh)
                    {
                        known.insert(pk.to_string(), by == claimer);
                        self.remembered().remember(pk, by, now());
                    }
                }
                if let Some(rest) = out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    if attempt >= WRITE_ATTEMPTS {
                        return Err(self.invalid(
                            "BatchGetItem",
                            "keys left unprocessed after retries".into(),
                        ));
                    }
                    wanted = rest.keys().to_vec();
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Ok(known)
    }

    /// Records `key` as seen, first by `claimer` unless someone was first; true when
    /// `claimer` was.
    async fn sight(&self, pk: &str, claimer: &str) -> Result<bool, StateError> {
        self.sent();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, 0)))
            .update_expression("SET #by = if_not_exists(#by, :me), expires = :e")
            .expression_attribute_names("#by", "by")
            .expression_attribute_values(":me", s(claimer))
            .expression_attribute_values(":e", n(now() + self.seen_ttl))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.error("UpdateItem", &e))?;
        let by = out.attributes().and_then(|a| text(a, "by"));
        if let Some(by) = by {
            self.remembered().remember(pk, by, now());
        }
        Ok(by == Some(claimer))
    }
}

impl DynamoDetectionState {
    /// A sighting's answer: what the batch read knew, or the write's.
    async fn sighting(
        &self,
        key: &str,
        claimer: &str,
        known: Option<bool>,
    ) -> Result<bool, StateError> {
        match known {
            Some(first_by_me) => Ok(first_by_me),
            None => self.sight(key, claimer).await,
        }
    }
}

/// One query's counters to pick from the pages read: their attribute names, built once
/// for every page they are looked up in.
struct Wanted {
    /// The query's position in `read_counts`' answer.
    query: usize,
    /// Its member's 403 and request counter attributes.
    forbidden: String,
    total: String,
    /// Its minutes, inclusive.
    from: i64,
    to: i64,
}

/// Whether a page (as read) took `part` before: its `a` set holds the part's token.
fn took(page: &HashMap<String, AttributeValue>, part: &PagePart) -> bool {
    page.get("a")
        .and_then(|a| a.as_ss().ok())
        .is_some_and(|tokens| tokens.contains(&part.token))
}

/// A short, growing, jittered pause before asking again (unprocessed keys, a refused
/// page write that gave no reason).
fn backoff(attempt: u32) -> Duration {
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 25);
    Duration::from_millis((25u64 << attempt.min(6)) + u64::from(jitter))
}

#[async_trait]
impl DetectionState for DynamoDetectionState {
    async fn add_counts(&self, apply_id: &str, updates: &[CountUpdate]) -> Result<u64, StateError> {
        let parts = plan_parts(apply_id, updates).map_err(|e| self.invalid("UpdateItem", e))?;
        let mut added = 0;
        for group in parts.chunks(CONCURRENCY) {
            let calls = group.iter().map(|part| self.add_part(part));
            for (done, part) in try_join_all(calls).await?.into_iter().zip(group) {
                if done {
                    added += part.updates;
                }
            }
        }
        Ok(added)
    }

    async fn read_counts(
        &self,
        queries: &[CountQuery],
    ) -> Result<Vec<Vec<MinuteCounts>>, StateError> {
        let mut slots = Vec::with_capacity(queries.len());
        for q in queries {
            let slot = slot(&q.series).ok_or_else(|| {
                self.invalid("Query", format!("not a count series: {}", q.series))
            })?;
            slots.push(slot);
        }
        let mut wanted: HashMap<&str, Vec<Wanted>> = HashMap::new();
        for (query, (slot, q)) in slots.iter().zip(queries).enumerate() {
            wanted
                .entry(slot.partition.as_str())
                .or_default()
                .push(Wanted {
                    query,
                    forbidden: forbidden_attribute(&slot.member),
                    total: total_attribute(&slot.member),
                    from: q.from,
                    to: q.to,
                });
        }
        let ranges = plan_reads(
            slots
                .iter()
                .zip(queries)
                .map(|(slot, q)| (slot, q.from, q.to)),
        );
        let mut sums: Vec<BTreeMap<i64, MinuteCounts>> = vec![BTreeMap::new(); queries.len()];
        for group in ranges.chunks(READ_CONCURRENCY) {
            let calls = group.iter().map(|range| self.read_range(range, &wanted));
            for (query, counts) in try_join_all(calls).await?.into_iter().flatten() {
                let sum = sums[query].entry(counts.minute).or_insert(MinuteCounts {
                    minute: counts.minute,
                    ..MinuteCounts::default()
                });
                sum.forbidden += counts.forbidden;
                sum.total += counts.total;
            }
        }
        Ok(sums
            .into_iter()
            .map(|m| m.into_values().collect())
            .collect())
    }

    async fn claim_episode(&self, claim: &EpisodeClaim) -> Result<ClaimOutcome, StateError> {
        self.sent();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&claim.episode, 0)))
            .update_expression(
                "SET alert_id = :id, #first = :fs, #last = :ls, claimer = :me, #count = :c, expires = :e REMOVE sent",
            )
            .condition_expression("attribute_not_exists(pk) OR #last < :lo OR #first > :hi")
            .expression_attribute_names("#first", "first")
            .expression_attribute_names("#last", "last")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":id", s(&claim.alert_id))
            .expression_attribute_values(":fs", n(claim.first_start))
            .expression_attribute_values(":ls", n(claim.last_start))
            .expression_attribute_values(":lo", n(claim.first_start - claim.gap))
            .expression_attribute_values(":hi", n(claim.last_start + claim.gap))
            .expression_attribute_values(":me", s(&claim.claimer))
            .expression_attribute_values(":c", n(claim.count))
            .expression_attribute_values(":e", n(now() + self.count_ttl))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let e = match result {
            Ok(_) => return self.confirm(claim).await,
            Err(e) => e,
        };
        let Some(failed) = e.as_service_error().and_then(|s| match s {
            UpdateItemError::ConditionalCheckFailedException(c) => Some(c),
            _ => None,
        }) else {
            return Err(self.error("UpdateItem", &e));
        };
        let old = failed.item().cloned().unwrap_or_default();
        let alert_id = text(&old, "alert_id").unwrap_or_default().to_string();
        if text(&old, "claimer") == Some(claim.claimer.as_str()) && !old.contains_key("sent") {
            return Ok(ClaimOutcome::Unsent { alert_id });
        }
        self.extend(claim, &old).await;
        Ok(ClaimOutcome::Joined { alert_id })
    }

    async fn mark_sent(&self, episode: &str) -> Result<(), StateError> {
        self.sent();
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(episode, 0)))
            .update_expression("SET sent = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| self.error("UpdateItem", &e))?;
        Ok(())
    }

    async fn first_sightings(
        &self,
        keys: &[String],
        claimer: &str,
    ) -> Result<Vec<bool>, StateError> {
        let known = self.unknown_or_stale(keys, claimer).await?;
        let mut out = Vec::with_capacity(keys.len());
        for group in keys.chunks(CONCURRENCY) {
            let mut calls = Vec::with_capacity(group.len());
            for k in group {
                calls.push(self.sighting(k, claimer, known.get(k).copied()));
            }
            out.extend(try_join_all(calls).await?);
        }
        Ok(out)
    }

    async fn learning_start(&self, bucket: &str, earliest: i64) -> Result<i64, StateError> {
        self.sent();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&format!("l#{bucket}"), 0)))
            .update_expression("SET started = if_not_exists(started, :s)")
            .expression_attribute_values(":s", n(earliest))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.error("UpdateItem", &e))?;
        Ok(out
            .attributes()
            .and_then(|a| number(a, "started"))
            .unwrap_or(earliest))
    }
}
