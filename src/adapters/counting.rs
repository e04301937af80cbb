//! An [`ObjectStore`] that counts the S3 requests made through it, by API call, and
//! passes every call on to the store it wraps. S3 bills requests per call whatever their
//! size, so for the small log objects S3 delivers, the requests made per object are a
//! larger part of the bill than the function's CPU (BENCHMARKS.md, "Cost model"). The
//! request tests and the cost model count them with this.
//!
//! One port call is counted as one request, which is what the S3 adapter sends, with two
//! exceptions it cannot see: the SDK's retries, and a listing longer than 1,000 keys
//! (one request per page; the marker listings never come near that).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::event::ObjectRef;
use crate::ports::{ObjectBody, ObjectStore, PutCondition, PutOutcome, StoreError, UploadedPart};

/// How S3 Standard prices a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PriceClass {
    /// PUT, COPY, POST and LIST requests: the dearer class ($0.005 per 1,000 in us-east-1).
    PutCopyPostList,
    /// GET and the other requests ($0.0004 per 1,000 in us-east-1).
    GetAndOther,
    /// DELETE and abandoning a multipart upload: free.
    Free,
}

/// The price class of an S3 API call, by its name as [`CountingStore`] records it.
pub fn price_class(api: &str) -> PriceClass {
    match api {
        "GetObject" => PriceClass::GetAndOther,
        "DeleteObject" | "AbortMultipartUpload" => PriceClass::Free,
        _ => PriceClass::PutCopyPostList,
    }
}

/// How many of `made` fall in one price class: of a store's counts, or of the
/// difference between two readings of them.
pub fn in_class(made: &RequestsByPrefix, class: PriceClass) -> u64 {
    made.iter()
        .filter(|((api, _), _)| price_class(api) == class)
        .map(|(_, n)| n)
        .sum()
}

/// Requests made, by S3 API call name.
pub type RequestCounts = BTreeMap<&'static str, u64>;

/// Requests made, by S3 API call name and the first two levels of the key (`state/baseline/`,
/// `curated/bucket=b/`, `raw/`), which tell what the request was for.
pub type RequestsByPrefix = BTreeMap<(&'static str, String), u64>;

/// Wraps a store and counts the requests made through it (see the module documentation).
/// Clones share the counts.
#[derive(Debug, Clone)]
pub struct CountingStore<S> {
    inner: S,
    counts: Arc<Mutex<RequestsByPrefix>>,
}

/// The key up to and including its second `/`, or its only one (`raw/`); the whole key
/// when it has none.
fn key_prefix(key: &str) -> String {
    let slashes: Vec<usize> = key.match_indices('/').take(2).map(|(i, _)| i).collect();
    let end = slashes.last().map_or(key.len(), |i| i + 1);
    key[..end].to_string()
}

impl<S> CountingStore<S> {
    /// Counts the requests made to `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    /// The store being counted.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The requests made so far, by API call.
    pub fn counts(&self) -> RequestCounts {
        let mut counts = RequestCounts::new();
        for ((api, _), n) in self.by_prefix() {
            *counts.entry(api).or_insert(0) += n;
        }
        counts
    }

    /// The requests made so far, by API call and key prefix.
    pub fn by_prefix(&self) -> RequestsByPrefix {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn count(&self, api: &'static str, object: &ObjectRef) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((api, key_prefix(&object.key)))
            .or_insert(0) += 1;
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for CountingStore<S> {
    async fn open(&self, object: &ObjectRef) -> Result<Option<ObjectBody>, StoreError> {
        self.count("GetObject", object);
        self.inner.open(object).await
    }

    async fn get_small(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        self.count("GetObject", object);
        self.inner.get_small(object).await
    }

    async fn put(
        &self,
        object: &ObjectRef,
        body: Vec<u8>,
        content_type: &str,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        self.count("PutObject", object);
        self.inner.put(object, body, content_type, condition).await
    }

    async fn list(&self, prefix: &ObjectRef) -> Result<Vec<String>, StoreError> {
        self.count("ListObjectsV2", prefix);
        self.inner.list(prefix).await
    }

    async fn delete(&self, object: &ObjectRef) -> Result<(), StoreError> {
        self.count("DeleteObject", object);
        self.inner.delete(object).await
    }

    async fn delete_if_match(&self, object: &ObjectRef, etag: &str) -> Result<bool, StoreError> {
        self.count("DeleteObject", object);
        self.inner.delete_if_match(object, etag).await
    }

    async fn copy(&self, from: &ObjectRef, to: &ObjectRef) -> Result<(), StoreError> {
        self.count("CopyObject", to);
        self.inner.copy(from, to).await
    }

    async fn tag(&self, object: &ObjectRef, key: &str, value: &str) -> Result<(), StoreError> {
        self.count("PutObjectTagging", object);
        self.inner.tag(object, key, value).await
    }

    async fn start_upload(
        &self,
        object: &ObjectRef,
        content_type: &str,
    ) -> Result<String, StoreError> {
        self.count("CreateMultipartUpload", object);
        self.inner.start_upload(object, content_type).await
    }

    async fn upload_part(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        self.count("UploadPart", object);
        self.inner
            .upload_part(object, upload_id, number, body)
            .await
    }

    async fn complete_upload(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        self.count("CompleteMultipartUpload", object);
        self.inner.complete_upload(object, upload_id, parts).await
    }

    async fn abort_upload(&self, object: &ObjectRef, upload_id: &str) -> Result<(), StoreError> {
        self.count("AbortMultipartUpload", object);
        self.inner.abort_upload(object, upload_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryStore;

    #[test]
    fn prefixes_keep_two_levels() {
        assert_eq!(key_prefix("state/baseline/b.json"), "state/baseline/");
        assert_eq!(
            key_prefix("curated/bucket=b/dt=x/hour=01/n"),
            "curated/bucket=b/"
        );
        assert_eq!(key_prefix("raw/2026-11-20-14"), "raw/");
        assert_eq!(key_prefix("k"), "k");
    }

    #[tokio::test]
    async fn counts_each_call_by_api_and_price_class() {
        let store = CountingStore::new(MemoryStore::new());
        let at = |key: &str| ObjectRef {
            bucket: "b".into(),
            key: key.into(),
        };
        store
            .put(&at("k"), b"x".to_vec(), "text/plain", PutCondition::None)
            .await
            .unwrap();
        assert!(store.get_small(&at("k")).await.unwrap().is_some());
        assert!(store.get_small(&at("gone")).await.unwrap().is_none());
        assert_eq!(store.list(&at("")).await.unwrap(), ["k"]);
        store.delete(&at("k")).await.unwrap();
        let counts = store.counts();
        assert_eq!(counts["PutObject"], 1);
        assert_eq!(
            counts["GetObject"], 2,
            "a GET that finds nothing is billed too"
        );
        assert_eq!(counts["ListObjectsV2"], 1);
        assert_eq!(counts["DeleteObject"], 1);
        assert_eq!(store.by_prefix()[&("GetObject", "k".to_string())], 1);
        let made = store.by_prefix();
        assert_eq!(in_class(&made, PriceClass::PutCopyPostList), 2);
        assert_eq!(in_class(&made, PriceClass::GetAndOther), 2);
        assert_eq!(in_class(&made, PriceClass::Free), 1);
        assert!(
            store.inner().bytes(&at("k")).is_none(),
            "the delete reached the store"
        );
    }
}
