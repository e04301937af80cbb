//! An [`ObjectStore`] held in memory: the handler benchmark (`bench/handler.rs`) measures
//! the pipeline's own CPU on it, with no filesystem or network in the way, and tests can
//! use it where a real store's behaviour is not the point.
//!
//! It keeps S3's semantics where the pipeline relies on them: conditional writes
//! (`If-None-Match: *`, `If-Match`), multipart uploads that appear only when completed,
//! and a new ETag on every write. Objects are served in chunks of [`READ_CHUNK`] bytes,
//! like the local store's reads, sharing the stored bytes rather than copying them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::event::ObjectRef;
use crate::ports::{
    ChunkStream, ObjectBody, ObjectStore, PutCondition, PutOutcome, StoreError, StoreErrorKind,
    UploadedPart,
};

/// How many bytes each chunk of a read holds: the local store's read size.
pub const READ_CHUNK: usize = 256 * 1024;

/// One stored object.
#[derive(Debug, Clone)]
struct Stored {
    /// Empty for an object assembled from discarded parts (see
    /// [`MemoryStore::discarding_parts`]).
    bytes: Bytes,
    /// The object's size, which `bytes` may not hold.
    size: u64,
    etag: String,
}

/// One multipart upload in progress.
#[derive(Debug)]
struct Upload {
    object: ObjectRef,
    /// Each part's bytes (none kept when parts are discarded) and size.
    parts: BTreeMap<i32, (Vec<u8>, u64)>,
}

/// Objects and uploads, keyed by bucket and key.
#[derive(Debug, Default)]
struct Contents {
    objects: BTreeMap<(String, String), Stored>,
    uploads: HashMap<String, Upload>,
}

/// An object store in memory (see the module documentation).
#[derive(Debug, Default)]
pub struct MemoryStore {
    contents: Mutex<Contents>,
    next_id: AtomicU64,
    discard_parts: bool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that, like S3 seen from the function, takes multipart upload parts
    /// away: it counts their bytes and drops them. Objects completed from them have their
    /// size but no bytes. The handler benchmark uses it so that what it measures is the
    /// function's work, not a store holding every output in memory (page faults for
    /// hundreds of MiB, and a copy to assemble each object).
    pub fn discarding_parts() -> Self {
        Self {
            discard_parts: true,
            ..Self::default()
        }
    }

    /// Stores `bytes` at `object` (as a log delivery would), returning its ETag.
    pub fn insert(&self, object: &ObjectRef, bytes: impl Into<Bytes>) -> String {
        let bytes: Bytes = bytes.into();
        let etag = self.next_etag();
        self.lock().objects.insert(
            key_of(object),
            Stored {
                size: bytes.len() as u64,
                bytes,
                etag: etag.clone(),
            },
        );
        etag
    }

    /// The bytes stored at `object`, if any.
    pub fn bytes(&self, object: &ObjectRef) -> Option<Bytes> {
        self.lock()
            .objects
            .get(&key_of(object))
            .map(|s| s.bytes.clone())
    }

    /// Every stored object as `(bucket, key, size)`, in key order.
    pub fn objects(&self) -> Vec<(String, String, u64)> {
        self.lock()
            .objects
            .iter()
            .map(|((b, k), s)| (b.clone(), k.clone(), s.size))
            .collect()
    }

    /// Multipart uploads neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.lock().uploads.len()
    }

    fn next_etag(&self) -> String {
        format!("mem-{:x}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The contents; a panic while the lock was held (only a bug in this file could
    /// cause one) leaves them usable, as every change below is a single insert or remove.
    fn lock(&self) -> std::sync::MutexGuard<'_, Contents> {
        self.contents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn key_of(object: &ObjectRef) -> (String, String) {
    (object.bucket.clone(), object.key.clone())
}

fn not_found(operation: &'static str, object: &ObjectRef, message: &str) -> StoreError {
    StoreError {
        operation,
        object: object.clone(),
        kind: StoreErrorKind::NotFound,
        message: message.into(),
    }
}

/// Serves stored bytes [`READ_CHUNK`] at a time, without copying them.
struct SharedChunks {
    bytes: Bytes,
}

#[async_trait]
impl ChunkStream for SharedChunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let n = self.bytes.len().min(READ_CHUNK);
        Ok(Some(self.bytes.split_to(n)))
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn open(&self, object: &ObjectRef) -> Result<Option<ObjectBody>, StoreError> {
        let stored = self.lock().objects.get(&key_of(object)).cloned();
        Ok(stored.map(|s| ObjectBody {
            etag: Some(s.etag),
            size: Some(s.bytes.len() as u64),
            chunks: Box::new(SharedChunks { bytes: s.bytes }),
        }))
    }

    async fn get_small(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        let stored = self.lock().objects.get(&key_of(object)).cloned();
        Ok(stored.map(|s| (s.bytes.to_vec(), Some(s.etag))))
    }

    async fn put(
        &self,
        object: &ObjectRef,
        body: Vec<u8>,
        _content_type: &str,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        let etag = self.next_etag();
        let mut contents = self.lock();
        let key = key_of(object);
        let current = contents.objects.get(&key).map(|s| s.etag.as_str());
        let allowed = match (&condition, current) {
            (PutCondition::None, _) => true,
            (PutCondition::IfAbsent, existing) => existing.is_none(),
            (PutCondition::IfMatch(want), Some(have)) => want == have,
            (PutCondition::IfMatch(_), None) => false,
        };
        if !allowed {
            return Ok(PutOutcome::PreconditionFailed);
        }
        contents.objects.insert(
            key,
            Stored {
                size: body.len() as u64,
                bytes: Bytes::from(body),
                etag: etag.clone(),
            },
        );
        Ok(PutOutcome::Written { etag: Some(etag) })
    }

    async fn list(&self, prefix: &ObjectRef) -> Result<Vec<String>, StoreError> {
        let contents = self.lock();
        let start = (prefix.bucket.clone(), prefix.key.clone());
        Ok(contents
            .objects
            .range(start..)
            .take_while(|((b, k), _)| *b == prefix.bucket && k.starts_with(&prefix.key))
            .map(|((_, k), _)| k.clone())
            .collect())
    }

    async fn delete(&self, object: &ObjectRef) -> Result<(), StoreError> {
        self.lock().objects.remove(&key_of(object));
        Ok(())
    }

    async fn delete_if_match(&self, object: &ObjectRef, etag: &str) -> Result<bool, StoreError> {
        let mut contents = self.lock();
        let key = key_of(object);
        match contents.objects.get(&key) {
            Some(s) if s.etag == etag => {
                contents.objects.remove(&key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn copy(&self, from: &ObjectRef, to: &ObjectRef) -> Result<(), StoreError> {
        let etag = self.next_etag();
        let mut contents = self.lock();
        let (bytes, size) = contents
            .objects
            .get(&key_of(from))
            .map(|s| (s.bytes.clone(), s.size))
            .ok_or_else(|| not_found("CopyObject", from, "no such key"))?;
        contents
            .objects
            .insert(key_of(to), Stored { bytes, size, etag });
        Ok(())
    }

    async fn tag(&self, object: &ObjectRef, _key: &str, _value: &str) -> Result<(), StoreError> {
        if self.lock().objects.contains_key(&key_of(object)) {
            Ok(())
        } else {
            Err(not_found("PutObjectTagging", object, "no such key"))
        }
    }

    async fn start_upload(
        &self,
        object: &ObjectRef,
        _content_type: &str,
    ) -> Result<String, StoreError> {
        let id = format!("upload-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        self.lock().uploads.insert(
            id.clone(),
            Upload {
                object: object.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        let mut contents = self.lock();
        let upload = contents
            .uploads
            .get_mut(upload_id)
            .filter(|u| u.object == *object)
            .ok_or_else(|| not_found("UploadPart", object, "no such upload"))?;
        let size = body.len() as u64;
        let body = if self.discard_parts { Vec::new() } else { body };
        upload.parts.insert(number, (body, size));
        Ok(UploadedPart {
            number,
            etag: format!("{upload_id}-{number}"),
        })
    }

    async fn complete_upload(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        let etag = self.next_etag();
        let mut contents = self.lock();
        let mut upload = contents
            .uploads
            .remove(upload_id)
            .filter(|u| u.object == *object)
            .ok_or_else(|| not_found("CompleteMultipartUpload", object, "no such upload"))?;
        let kept = parts
            .iter()
            .filter_map(|p| upload.parts.get(&p.number))
            .map(|(body, _)| body.len())
            .sum();
        let mut bytes = Vec::with_capacity(kept);
        let mut size = 0;
        for part in &parts {
            let (body, part_size) = upload.parts.remove(&part.number).ok_or_else(|| {
                not_found(
                    "CompleteMultipartUpload",
                    object,
                    "a listed part is missing",
                )
            })?;
            bytes.extend_from_slice(&body);
            size += part_size;
        }
        contents.objects.insert(
            key_of(object),
            Stored {
                bytes: Bytes::from(bytes),
                size,
                etag,
            },
        );
        Ok(())
    }

    async fn abort_upload(&self, _object: &ObjectRef, upload_id: &str) -> Result<(), StoreError> {
        self.lock().uploads.remove(upload_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(key: &str) -> ObjectRef {
        ObjectRef {
            bucket: "b".into(),
            key: key.into(),
        }
    }

    async fn read_all(store: &MemoryStore, object: &ObjectRef) -> Option<Vec<u8>> {
        let mut body = store.open(object).await.ok()??;
        let mut out = Vec::new();
        while let Some(chunk) = body.chunks.next_chunk().await.ok()? {
            assert!(chunk.len() <= READ_CHUNK);
            out.extend_from_slice(&chunk);
        }
        Some(out)
    }

    #[tokio::test]
    async fn reads_back_in_chunks_what_was_stored() {
        let store = MemoryStore::new();
        let bytes: Vec<u8> = (0..READ_CHUNK * 2 + 7).map(|i| i as u8).collect();
        store.insert(&at("raw/a"), bytes.clone());
        assert_eq!(read_all(&store, &at("raw/a")).await, Some(bytes));
        assert!(store.open(&at("raw/none")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn conditional_writes_follow_s3() {
        let store = MemoryStore::new();
        let m = at("state/m");
        let first = store
            .put(&m, b"1".to_vec(), "text/plain", PutCondition::IfAbsent)
            .await
            .unwrap();
        let PutOutcome::Written { etag: Some(etag) } = first else {
            panic!("first create must write: {first:?}")
        };
        let again = store
            .put(&m, b"2".to_vec(), "text/plain", PutCondition::IfAbsent)
            .await
            .unwrap();
        assert_eq!(again, PutOutcome::PreconditionFailed);
        let stale = store
            .put(&m, b"3".to_vec(), "", PutCondition::IfMatch("old".into()))
            .await
            .unwrap();
        assert_eq!(stale, PutOutcome::PreconditionFailed);
        let current = store
            .put(&m, b"4".to_vec(), "", PutCondition::IfMatch(etag.clone()))
            .await
            .unwrap();
        assert!(matches!(current, PutOutcome::Written { .. }));
        assert_eq!(store.bytes(&m).as_deref(), Some(&b"4"[..]));
        assert!(!store.delete_if_match(&m, &etag).await.unwrap());
    }

    /// Starts an upload of `o` and sends "world" as part 2, then "hello " as part 1; gives
    /// the upload ID and the parts in order, ready to complete.
    async fn upload_hello_world(store: &MemoryStore, o: &ObjectRef) -> (String, Vec<UploadedPart>) {
        let id = store.start_upload(o, "").await.unwrap();
        let p2 = store
            .upload_part(o, &id, 2, b"world".to_vec())
            .await
            .unwrap();
        let p1 = store
            .upload_part(o, &id, 1, b"hello ".to_vec())
            .await
            .unwrap();
        (id, vec![p1, p2])
    }

    #[tokio::test]
    async fn an_upload_appears_only_when_completed_in_part_order() {
        let store = MemoryStore::new();
        let o = at("curated/x.ndjson.gz");
        let (id, parts) = upload_hello_world(&store, &o).await;
        assert!(store.bytes(&o).is_none());
        store.complete_upload(&o, &id, parts).await.unwrap();
        assert_eq!(store.bytes(&o).as_deref(), Some(&b"hello world"[..]));
        assert_eq!(store.open_uploads(), 0);
        let aborted = store.start_upload(&o, "").await.unwrap();
        store.abort_upload(&o, &aborted).await.unwrap();
        assert_eq!(store.open_uploads(), 0);
    }

    #[tokio::test]
    async fn a_discarding_store_keeps_an_uploads_size_but_not_its_bytes() {
        let store = MemoryStore::discarding_parts();
        let o = at("curated/x.ndjson.gz");
        let (id, parts) = upload_hello_world(&store, &o).await;
        store.complete_upload(&o, &id, parts).await.unwrap();
        assert_eq!(store.bytes(&o).as_deref(), Some(&b""[..]));
        let sizes: Vec<u64> = store.objects().iter().map(|(_, _, size)| *size).collect();
        assert_eq!(sizes, [11]);
        // Whole objects written at once are kept: markers and state are read back.
        let m = at("state/m");
        store.insert(&m, "kept");
        assert_eq!(store.bytes(&m).as_deref(), Some(&b"kept"[..]));
    }

    #[tokio::test]
    async fn lists_by_prefix_within_one_bucket() {
        let store = MemoryStore::new();
        store.insert(&at("state/a@1"), "x");
        store.insert(&at("state/a@2"), "x");
        store.insert(&at("state/b@1"), "x");
        let other = ObjectRef {
            bucket: "c".into(),
            key: "state/a@3".into(),
        };
        store.insert(&other, "x");
        assert_eq!(
            store.list(&at("state/a@")).await.unwrap(),
            vec!["state/a@1".to_string(), "state/a@2".to_string()]
        );
    }
}
