//! A local folder as an object store: `{root}/{bucket}/{key}`. It lets `bucketlog replay`
//! run the real handler with no AWS account and no network.
//!
//! Reads look in the write root first and then in an optional read-only root, so sample
//! data shipped in the repository is read in place while outputs land in a git-ignored
//! folder. Writes are atomic (temporary file, then rename). Conditional writes are atomic
//! within one process only; this store is for local replays and tests, not for several
//! processes sharing a folder. ETags are derived from size and modification time.
//!
//! File reads and writes are plain blocking calls on the calling task: they hit the page
//! cache and take microseconds, where `tokio::fs` would hand every 256 KiB chunk to a
//! blocking thread and back (BENCHMARKS.md, "The handler's cost per GiB").

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use std::io::Read;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::sync::Mutex;

use crate::event::ObjectRef;
use crate::ports::{
    ChunkStream, ObjectBody, ObjectStore, PutCondition, PutOutcome, StoreError, StoreErrorKind,
    UploadedPart,
};

/// Chunk size for reading files.
const READ_CHUNK: usize = 256 * 1024;

/// An object store over local folders.
#[derive(Debug)]
pub struct LocalStore {
    write_root: PathBuf,
    read_root: Option<PathBuf>,
    /// Serialises conditional writes so check-and-write is atomic within this process.
    write_lock: Mutex<()>,
    next_upload: AtomicU64,
}

impl LocalStore {
    /// A store that reads and writes under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            write_root: root.into(),
            read_root: None,
            write_lock: Mutex::new(()),
            next_upload: AtomicU64::new(1),
        }
    }

    /// A store that writes under `write_root` and also reads from `read_root`.
    pub fn layered(write_root: impl Into<PathBuf>, read_root: impl Into<PathBuf>) -> Self {
        Self {
            read_root: Some(read_root.into()),
            ..Self::new(write_root)
        }
    }

    /// Where outputs are written.
    pub fn write_root(&self) -> &Path {
        &self.write_root
    }

    fn relative(object: &ObjectRef, operation: &'static str) -> Result<PathBuf, StoreError> {
        let path = Path::new(&object.bucket).join(&object.key);
        let safe = !object.bucket.is_empty()
            && !object.key.is_empty()
            && path.components().all(|c| matches!(c, Component::Normal(_)));
        if safe {
            Ok(path)
        } else {
            Err(error(
                operation,
                object,
                StoreErrorKind::Other,
                "bucket and key must be relative paths without `..`".into(),
            ))
        }
    }

    /// The file to read for `object`: the write root's copy if any, else the read root's.
    async fn find(
        &self,
        object: &ObjectRef,
        operation: &'static str,
    ) -> Result<Option<PathBuf>, StoreError> {
        let relative = Self::relative(object, operation)?;
        let roots = std::iter::once(&self.write_root).chain(self.read_root.as_ref());
        for root in roots {
            let path = root.join(&relative);
            match tokio::fs::metadata(&path).await {
                Ok(meta) if meta.is_file() => return Ok(Some(path)),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(operation, object, e)),
            }
        }
        Ok(None)
    }

    async fn etag_of(path: &Path) -> Option<String> {
        let meta = tokio::fs::metadata(path).await.ok()?;
        let modified = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(format!("{:x}-{:x}", meta.len(), modified.as_nanos()))
    }

    /// The file for `object` and a temporary name beside it (its folder created), to
    /// write and then rename over it, so a reader never sees a partial file.
    async fn write_paths(
        &self,
        object: &ObjectRef,
        operation: &'static str,
    ) -> Result<(PathBuf, PathBuf), StoreError> {
        let path = self.write_root.join(Self::relative(object, operation)?);
        let parent = path.parent().unwrap_or(&self.write_root).to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| io_error(operation, object, e))?;
        let temp = parent.join(format!(
            ".bucketlog-tmp-{}-{}",
            std::process::id(),
            self.next_upload.fetch_add(1, Ordering::Relaxed)
        ));
        Ok((path, temp))
    }

    async fn write_atomically(
        &self,
        object: &ObjectRef,
        operation: &'static str,
        body: &[u8],
    ) -> Result<PathBuf, StoreError> {
        let (path, temp) = self.write_paths(object, operation).await?;
        std::fs::write(&temp, body).map_err(|e| io_error(operation, object, e))?;
        std::fs::rename(&temp, &path).map_err(|e| io_error(operation, object, e))?;
        Ok(path)
    }

    fn upload_dir(&self, upload_id: &str) -> PathBuf {
        self.write_root.join(".uploads").join(upload_id)
    }
}

fn error(
    operation: &'static str,
    object: &ObjectRef,
    kind: StoreErrorKind,
    message: String,
) -> StoreError {
    StoreError {
        operation,
        object: object.clone(),
        kind,
        message,
    }
}

/// The keys (paths under `bucket_root`, with `/`) starting with `prefix`, walking from
/// `start`, the folder the prefix's last `/` names. Temporary files are left out.
fn keys_under(bucket_root: &Path, start: PathBuf, prefix: &str) -> std::io::Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut folders = vec![start];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let Ok(relative) = path.strip_prefix(bucket_root) else {
                continue;
            };
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if entry.file_type()?.is_dir() {
                if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                    folders.push(path);
                }
            } else if key.starts_with(prefix)
                && !entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".bucketlog-tmp-")
            {
                keys.push(key);
            }
        }
    }
    keys.sort();
    Ok(keys)
}

/// Opens a file in the system's temporary folder (`/tmp` on Lambda, `TMPDIR` elsewhere)
/// for scratch space (output spills, the lake's sort runs), removed from the folder as
/// soon as it is open, so nothing is left behind even when the process dies (on Unix).
pub fn anonymous_temp_file(label: &str) -> std::io::Result<std::fs::File> {
    let dir = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut attempt = 0;
    loop {
        let path = dir.join(format!(
            "bucketlog-{label}-{}-{nanos}-{attempt}",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                let _ = std::fs::remove_file(&path);
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot create a temporary file in {}: {e}", dir.display()),
                ));
            }
        }
    }
}

fn io_error(operation: &'static str, object: &ObjectRef, e: std::io::Error) -> StoreError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => StoreErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => StoreErrorKind::AccessDenied,
        _ => StoreErrorKind::Other,
    };
    error(operation, object, kind, e.to_string())
}

/// Reads a file [`READ_CHUNK`] at a time into one reused buffer: once the previous
/// chunk has been dropped, `reserve` takes its memory back instead of allocating.
struct FileChunks {
    file: std::fs::File,
    buf: BytesMut,
    object: ObjectRef,
}

#[async_trait]
impl ChunkStream for FileChunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        self.buf.clear();
        self.buf.reserve(READ_CHUNK);
        self.buf.resize(READ_CHUNK, 0);
        let n = loop {
            match self.file.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error("GetObject", &self.object, e)),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        self.buf.truncate(n);
        Ok(Some(self.buf.split().freeze()))
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn open(&self, object: &ObjectRef) -> Result<Option<ObjectBody>, StoreError> {
        let Some(path) = self.find(object, "GetObject").await? else {
            return Ok(None);
        };
        let file = std::fs::File::open(&path).map_err(|e| io_error("GetObject", object, e))?;
        let size = file.metadata().ok().map(|m| m.len());
        Ok(Some(ObjectBody {
            etag: Self::etag_of(&path).await,
            size,
            chunks: Box::new(FileChunks {
                file,
                buf: BytesMut::new(),
                object: object.clone(),
            }),
        }))
    }

    async fn get_small(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        let Some(path) = self.find(object, "GetObject").await? else {
            return Ok(None);
        };
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_error("GetObject", object, e))?;
        Ok(Some((bytes, Self::etag_of(&path).await)))
    }

    async fn put(
        &self,
        object: &ObjectRef,
        body: Vec<u8>,
        _content_type: &str,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        let _guard = self.write_lock.lock().await;
        let current = self.find(object, "PutObject").await?;
        let current_etag = match &current {
            Some(path) => Self::etag_of(path).await,
            None => None,
        };
        let allowed = match &condition {
            PutCondition::None => true,
            PutCondition::IfAbsent => current.is_none(),
            PutCondition::IfMatch(etag) => current_etag.as_deref() == Some(etag.as_str()),
        };
        if !allowed {
            return Ok(PutOutcome::PreconditionFailed);
        }
        let path = self.write_atomically(object, "PutObject", &body).await?;
        Ok(PutOutcome::Written {
            etag: Self::etag_of(&path).await,
        })
    }

    async fn list(&self, prefix: &ObjectRef) -> Result<Vec<String>, StoreError> {
        const OP: &str = "ListObjectsV2";
        Self::relative(prefix, OP)?;
        let bucket_root = self.write_root.join(&prefix.bucket);
        let dir = prefix.key.rsplit_once('/').map_or("", |(dir, _)| dir);
        let start = bucket_root.join(dir);
        let wanted = prefix.key.clone();
        tokio::task::spawn_blocking(move || keys_under(&bucket_root, start, &wanted))
            .await
            .map_err(|e| error(OP, prefix, StoreErrorKind::Other, e.to_string()))?
            .map_err(|e| io_error(OP, prefix, e))
    }

    async fn delete(&self, object: &ObjectRef) -> Result<(), StoreError> {
        let path = self
            .write_root
            .join(Self::relative(object, "DeleteObject")?);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("DeleteObject", object, e)),
        }
    }

    async fn delete_if_match(&self, object: &ObjectRef, etag: &str) -> Result<bool, StoreError> {
        let _guard = self.write_lock.lock().await;
        let path = self
            .write_root
            .join(Self::relative(object, "DeleteObject")?);
        if Self::etag_of(&path).await.as_deref() != Some(etag) {
            return Ok(false);
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("DeleteObject", object, e)),
        }
    }

    async fn copy(&self, from: &ObjectRef, to: &ObjectRef) -> Result<(), StoreError> {
        const OP: &str = "CopyObject";
        let Some(source) = self.find(from, OP).await? else {
            return Err(error(
                OP,
                from,
                StoreErrorKind::NotFound,
                "no such key".into(),
            ));
        };
        let (path, temp) = self.write_paths(to, OP).await?;
        tokio::fs::copy(&source, &temp)
            .await
            .map_err(|e| io_error(OP, from, e))?;
        tokio::fs::rename(&temp, &path)
            .await
            .map_err(|e| io_error(OP, to, e))
    }

    /// A folder has no tags and no lifecycle: nothing to record.
    async fn tag(&self, object: &ObjectRef, _key: &str, _value: &str) -> Result<(), StoreError> {
        Self::relative(object, "PutObjectTagging").map(|_| ())
    }

    async fn start_upload(
        &self,
        object: &ObjectRef,
        _content_type: &str,
    ) -> Result<String, StoreError> {
        Self::relative(object, "CreateMultipartUpload")?;
        let id = format!(
            "{}-{}",
            std::process::id(),
            self.next_upload.fetch_add(1, Ordering::Relaxed)
        );
        tokio::fs::create_dir_all(self.upload_dir(&id))
            .await
            .map_err(|e| io_error("CreateMultipartUpload", object, e))?;
        Ok(id)
    }

    async fn upload_part(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        let path = self.upload_dir(upload_id).join(format!("{number:05}"));
        let len = body.len();
        std::fs::write(&path, body).map_err(|e| io_error("UploadPart", object, e))?;
        Ok(UploadedPart {
            number,
            etag: format!("{len:x}"),
        })
    }

    async fn complete_upload(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        const OP: &str = "CompleteMultipartUpload";
        let dir = self.upload_dir(upload_id);
        let assembled = dir.join("assembled");
        let mut out = std::fs::File::create(&assembled).map_err(|e| io_error(OP, object, e))?;
        for part in &parts {
            let mut input = std::fs::File::open(dir.join(format!("{:05}", part.number)))
                .map_err(|e| io_error(OP, object, e))?;
            // File to file: the kernel copies (copy_file_range), not this process.
            std::io::copy(&mut input, &mut out).map_err(|e| io_error(OP, object, e))?;
        }
        drop(out);
        let path = self.write_root.join(Self::relative(object, OP)?);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error(OP, object, e))?;
        }
        tokio::fs::rename(&assembled, &path)
            .await
            .map_err(|e| io_error(OP, object, e))?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(())
    }

    async fn abort_upload(&self, object: &ObjectRef, upload_id: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_dir_all(self.upload_dir(upload_id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("AbortMultipartUpload", object, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn list_finds_every_key_under_a_prefix_and_nothing_else() {
        let root =
            std::env::temp_dir().join(format!("bucketlog-local-list-{}", std::process::id()));
        let store = LocalStore::new(&root);
        let at = |key: &str| ObjectRef {
            bucket: "b".into(),
            key: key.into(),
        };
        for key in [
            "state/p/raw/x@1",
            "state/p/raw/x@2",
            "state/p/raw/y@1",
            "state/q/raw/x@1",
        ] {
            store
                .put(
                    &at(key),
                    b"{}".to_vec(),
                    "application/json",
                    PutCondition::None,
                )
                .await
                .unwrap();
        }
        let keys = store.list(&at("state/p/raw/x@")).await.unwrap();
        assert_eq!(keys, ["state/p/raw/x@1", "state/p/raw/x@2"]);
        assert!(store.list(&at("nothing/here@")).await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&root);
    }
}
