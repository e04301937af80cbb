//! The idempotency markers in the detection table (with `DETECTION_TABLE`, unless
//! `MARKERS=bucket`), through `aws-sdk-dynamodb`: the same documents the ledger writes
//! to S3, as items.
//!
//! A marker `{STATE_PREFIX}processed/{bucket}/{key}@{etag}` in output bucket `out` is the
//! item `pk = m#{out}/{STATE_PREFIX}processed/{bucket}/{key}@`, `sk` = a 63-bit FNV-1a
//! hash of `{etag}`, with attributes `e` (`{etag}` itself, checked on every read), `b`
//! (the marker's body), `v` (a version tag, new on every write: what S3's ETag is to the
//! ledger's conditional writes) and, with `MARKER_TTL_DAYS`, `expires`. Every version of
//! one log object's marker shares the partition key, so finding them is one Query. The
//! key is not repeated in the item: an item of up to 1 KB is billed one write unit.
//!
//! Per log object that is one strongly consistent GetItem, two PutItems and one Query, a
//! unit or two each: about $0.0000015 at on-demand prices, where S3 bills $0.0000154 for
//! the GetObject, two PutObjects and the ListObjectsV2 (BENCHMARKS.md, "Requests per log
//! object").
//!
//! The lake's dirty mark `{STATE_PREFIX}lake/dirty/{partition}` is the item
//! `pk = d#{out}/{STATE_PREFIX}lake/dirty/`, `sk` = the same hash of `{partition}`, with
//! `e` (`{partition}`), `b` and `v` as above and no expiry (a mark stays until a
//! compaction clears it). Every partition's mark of one output bucket shares the
//! partition key, so the compaction reads them all with one Query and clears each with a
//! DeleteItem conditional on its version tag. One PutItem of one write unit per
//! partition written, where S3 bills a PutObject at ten times the price; all of a
//! bucket's marks on one partition key take DynamoDB's 1,000 writes a second per key,
//! about a thousand log objects a second.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::event::ObjectRef;
use crate::lake::partition::DIRTY_DIR;
use crate::logkey::Fnv1a;
use crate::ports::{
    DirtyMarkRead, MarkerStore, PutCondition, PutOutcome, StoreError, StoreErrorKind,
};

/// The markers in one DynamoDB table (the detection table).
#[derive(Debug, Clone)]
pub struct DynamoMarkers {
    client: Client,
    table: String,
    /// Seconds a marker lives after its last write; `None`: until deleted.
    ttl: Option<i64>,
    /// DynamoDB calls sent (retries by the SDK not included), shared by clones.
    calls: Arc<AtomicU64>,
}

/// An item's key: its partition and sort key, and the name the sort key hashes (a
/// marker's version, `{etag}`, or a dirty mark's partition path), which the item keeps
/// in `e` and every read checks.
struct ItemKey {
    pk: String,
    sk: i64,
    name: String,
}

impl ItemKey {
    /// A marker's key, split at its last `@`: every version of one log object shares
    /// the partition.
    fn marker(marker: &ObjectRef) -> Self {
        let (object, version) = marker.key.rsplit_once('@').unwrap_or((&marker.key, ""));
        Self::new(
            Self::marker_partition(&marker.bucket, &format!("{object}@")),
            version,
        )
    }

    /// A dirty mark's key, split after `lake/dirty/`: every mark of one output bucket
    /// shares the partition.
    fn dirty(mark: &ObjectRef) -> Self {
        let split = mark
            .key
            .rfind(DIRTY_DIR)
            .map_or(0, |at| at + DIRTY_DIR.len());
        let (folder, name) = mark.key.split_at(split);
        Self::new(Self::dirty_partition(&mark.bucket, folder), name)
    }

    fn new(pk: String, name: &str) -> Self {
        Self {
            pk,
            sk: version_sort_key(name),
            name: name.to_string(),
        }
    }

    /// The partition of a log object's markers, from their shared prefix (ending in `@`).
    fn marker_partition(bucket: &str, prefix: &str) -> String {
        format!("m#{bucket}/{prefix}")
    }

    /// The partition of an output bucket's dirty marks, from their folder.
    fn dirty_partition(bucket: &str, folder: &str) -> String {
        format!("d#{bucket}/{folder}")
    }

    fn attributes(&self) -> [(String, AttributeValue); 2] {
        [
            ("pk".to_string(), AttributeValue::S(self.pk.clone())),
            ("sk".to_string(), AttributeValue::N(self.sk.to_string())),
        ]
    }
}

/// The sort key of one version: FNV-1a of its ETag, cut to 63 bits so it is a
/// non-negative number. Two ETags of one key sharing it would make the later one's
/// marker unreadable (the `e` check) and its claim fail, never a wrong answer.
fn version_sort_key(version: &str) -> i64 {
    let mut hash = Fnv1a::default();
    hash.write(version.as_bytes());
    (hash.finish() >> 1) as i64
}

/// A version tag no other write has: the clock, the process and a counter, hashed.
fn new_version_tag(body: &[u8]) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hash = Fnv1a::default();
    hash.write(&nanos.to_le_bytes());
    hash.write(&std::process::id().to_le_bytes());
    hash.write(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hash.write(body);
    format!("{:016x}{:08x}", hash.finish(), nanos as u32)
}

impl DynamoMarkers {
    /// Markers in `table`, through `client`, kept until deleted.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            ttl: None,
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A client from the shared AWS configuration (honours `AWS_ENDPOINT_URL`), with the
    /// detection state's retry policy.
    pub fn from_shared(shared: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        let config = aws_sdk_dynamodb::config::Builder::from(shared)
            .retry_config(super::dynamodb::retry_config())
            .build();
        Self::new(Client::from_conf(config), table)
    }

    /// Lets markers expire `days` after their last write (`MARKER_TTL_DAYS`); `None`
    /// keeps them until deleted.
    pub fn with_ttl_days(mut self, days: Option<i64>) -> Self {
        self.ttl = days.map(|d| d * 86_400);
        self
    }

    /// How many DynamoDB calls these markers (and their clones) sent so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn sent(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Every item of partition `pk`, read strongly consistent, page by page (only the
    /// `projection` attributes when given); errors name `on`.
    async fn query_partition(
        &self,
        pk: &str,
        projection: Option<&str>,
        on: &ObjectRef,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            self.sent();
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
                .set_projection_expression(projection.map(str::to_string))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.error("Query", on, &e))?;
            start = page.last_evaluated_key;
            items.extend(page.items.unwrap_or_default());
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// A PutItem of `key`'s item with the name its sort key hashes (`e`), `body` (`b`)
    /// and `version` (`v`); the caller adds expiry and conditions.
    fn put_request(
        &self,
        key: &ItemKey,
        body: Vec<u8>,
        version: &str,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key.attributes().into_iter().collect()))
            .item("e", AttributeValue::S(key.name.clone()))
            .item("b", AttributeValue::B(Blob::new(body)))
            .item("v", AttributeValue::S(version.to_string()))
    }

    /// Deletes `key`'s item under `condition`, which may name the item's own `e` (`:e`)
    /// and, when given, its version tag (`#v = :v`); `false` when the condition refused
    /// it. Errors name `on`.
    async fn delete_if(
        &self,
        on: &ObjectRef,
        key: &ItemKey,
        condition: &str,
        version: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.sent();
        let mut request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key.attributes().into_iter().collect()))
            .condition_expression(condition)
            .expression_attribute_values(":e", AttributeValue::S(key.name.clone()));
        if let Some(version) = version {
            request = request
                .expression_attribute_names("#v", "v")
                .expression_attribute_values(":v", AttributeValue::S(version.to_string()));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(self.error("DeleteItem", on, &e)),
        }
    }

    fn error<E>(&self, operation: &'static str, marker: &ObjectRef, e: &SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let kind = match e.code().unwrap_or_default() {
            // Not `NotFound`: that would read as "no such marker".
            "ResourceNotFoundException" => StoreErrorKind::Other,
            "AccessDeniedException" => StoreErrorKind::AccessDenied,
            code if super::dynamodb::is_throttling(code) => StoreErrorKind::Throttled,
            _ => match e {
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                    StoreErrorKind::Unavailable
                }
                _ => StoreErrorKind::Other,
            },
        };
        StoreError {
            operation,
            object: marker.clone(),
            kind,
            message: format!(
                "in the DynamoDB table {}, which holds the idempotency markers and the \
                 lake's dirty marks (the function needs dynamodb:GetItem, PutItem, Query \
                 and DeleteItem on it, the compaction Query and DeleteItem; \
                 MARKERS=bucket keeps them in S3): {}",
                self.table,
                DisplayErrorContext(e)
            ),
        }
    }
}

#[async_trait]
impl MarkerStore for DynamoMarkers {
    async fn get_marker(
        &self,
        marker: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        self.sent();
        let key = ItemKey::marker(marker);
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.attributes().into_iter().collect()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", marker, &e))?;
        let Some(item) = answer.item else {
            return Ok(None);
        };
        if item.get("e").and_then(|e| e.as_s().ok()) != Some(&key.name) {
            return Ok(None);
        }
        let body = match item.get("b").and_then(|b| b.as_b().ok()) {
            Some(blob) => blob.as_ref().to_vec(),
            None => Vec::new(),
        };
        let version = item.get("v").and_then(|v| v.as_s().ok()).cloned();
        Ok(Some((body, version)))
    }

    async fn put_marker(
        &self,
        marker: &ObjectRef,
        body: Vec<u8>,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        self.sent();
        let key = ItemKey::marker(marker);
        let version = new_version_tag(&body);
        let mut request = self.put_request(&key, body, &version);
        if let Some(ttl) = self.ttl {
            let expires = crate::pipeline::system_now() + ttl;
            request = request.item("expires", AttributeValue::N(expires.to_string()));
        }
        request = match condition {
            PutCondition::None => request,
            PutCondition::IfAbsent => request.condition_expression("attribute_not_exists(pk)"),
            PutCondition::IfMatch(expected) => request
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "v")
                .expression_attribute_values(":v", AttributeValue::S(expected)),
        };
        match request.send().await {
            Ok(_) => Ok(PutOutcome::Written {
                etag: Some(version),
            }),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Ok(PutOutcome::PreconditionFailed)
            }
            Err(e) => Err(self.error("PutItem", marker, &e)),
        }
    }

    async fn marker_versions(&self, prefix: &ObjectRef) -> Result<Vec<String>, StoreError> {
        let pk = ItemKey::marker_partition(&prefix.bucket, &prefix.key);
        let items = self.query_partition(&pk, Some("e"), prefix).await?;
        Ok(items
            .iter()
            .filter_map(|item| item.get("e")?.as_s().ok())
            .map(|version| format!("{}{version}", prefix.key))
            .collect())
    }

    async fn delete_marker(&self, marker: &ObjectRef) -> Result<(), StoreError> {
        let key = ItemKey::marker(marker);
        // Refused: another key's item under a colliding sort key, not this marker's to
        // delete.
        self.delete_if(marker, &key, "attribute_not_exists(pk) OR e = :e", None)
            .await
            .map(|_| ())
    }

    /// `dynamodb://{table}/{output bucket}/{marker key}`.
    fn location(&self, marker: &ObjectRef) -> String {
        format!("dynamodb://{}/{}/{}", self.table, marker.bucket, marker.key)
    }

    /// An unconditional write but for the partition path: two partitions whose paths
    /// hash alike (about one chance in 10¹⁸ per pair) fail here rather than one mark
    /// replacing the other's.
    async fn put_dirty_mark(&self, mark: &ObjectRef, body: Vec<u8>) -> Result<(), StoreError> {
        self.sent();
        let key = ItemKey::dirty(mark);
        let version = new_version_tag(key.name.as_bytes());
        let result = self
            .put_request(&key, body, &version)
            .condition_expression("attribute_not_exists(pk) OR e = :e")
            .expression_attribute_values(":e", AttributeValue::S(key.name.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Err(StoreError {
                operation: "PutItem",
                object: mark.clone(),
                kind: StoreErrorKind::Other,
                message: format!(
                    "in the DynamoDB table {}: another partition's dirty mark has the same \
                     sort key {} (MARKERS=bucket keeps the marks in S3)",
                    self.table, key.sk
                ),
            }),
            Err(e) => Err(self.error("PutItem", mark, &e)),
        }
    }

    async fn dirty_marks(&self, prefix: &ObjectRef) -> Result<Vec<DirtyMarkRead>, StoreError> {
        let pk = ItemKey::dirty_partition(&prefix.bucket, &prefix.key);
        let mut marks: Vec<DirtyMarkRead> = self
            .query_partition(&pk, None, prefix)
            .await?
            .into_iter()
            .filter_map(|item| {
                let name = item.get("e")?.as_s().ok()?;
                Some(DirtyMarkRead {
                    key: format!("{}{name}", prefix.key),
                    body: item
                        .get("b")
                        .and_then(|b| b.as_b().ok())
                        .map(|b| b.as_ref().to_vec())
                        .unwrap_or_default(),
                    version: item.get("v").and_then(|v| v.as_s().ok()).cloned(),
                })
            })
            .collect();
        marks.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(marks)
    }

    async fn clear_dirty_mark(&self, mark: &ObjectRef, version: &str) -> Result<bool, StoreError> {
        let key = ItemKey::dirty(mark);
        self.delete_if(mark, &key, "#v = :v AND e = :e", Some(version))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(key: &str) -> ObjectRef {
        ObjectRef {
            bucket: "out".into(),
            key: key.into(),
        }
    }

    #[test]
    fn every_version_of_one_object_shares_a_partition_and_versions_differ() {
        let a = ItemKey::marker(&marker("state/processed/src/raw/a@etag1"));
        let b = ItemKey::marker(&marker("state/processed/src/raw/a@etag2"));
        let other = ItemKey::marker(&marker("state/processed/src/raw/a@b@etag1"));
        assert_eq!(a.pk, "m#out/state/processed/src/raw/a@");
        assert_eq!(a.pk, b.pk);
        assert_ne!(a.sk, b.sk);
        assert!(a.sk >= 0 && b.sk >= 0);
        // A key that itself holds '@' is its own partition.
        assert_eq!(other.pk, "m#out/state/processed/src/raw/a@b@");
    }

    #[test]
    fn every_dirty_mark_of_one_output_bucket_shares_a_partition() {
        let a = ItemKey::dirty(&marker(
            "state/lake/dirty/bucket=logs/dt=2026-11-20/hour=14",
        ));
        let b = ItemKey::dirty(&marker(
            "state/lake/dirty/bucket=logs/dt=2026-11-20/hour=15",
        ));
        assert_eq!(a.pk, "d#out/state/lake/dirty/");
        assert_eq!(
            (a.pk.as_str(), a.name.as_str()),
            (b.pk.as_str(), "bucket=logs/dt=2026-11-20/hour=14")
        );
        assert_ne!(a.sk, b.sk);
        assert!(a.sk >= 0 && b.sk >= 0);
        let other = ItemKey::dirty(&ObjectRef {
            bucket: "out2".into(),
            key: "state/lake/dirty/bucket=logs/dt=2026-11-20/hour=14".into(),
        });
        assert_eq!(
            (other.pk.as_str(), other.sk),
            ("d#out2/state/lake/dirty/", a.sk)
        );
    }

    #[test]
    fn version_tags_are_new_on_every_write() {
        assert_ne!(new_version_tag(b"same"), new_version_tag(b"same"));
    }
}
