//! Uploading one log object's outputs: multipart uploads that become visible only when
//! the whole object has been read ([`Uploads::complete_all`]), and are aborted on failure.

use tracing::warn;

use super::OutputObject;
use crate::event::ObjectRef;
use crate::outputs::OutputChunk;
use crate::ports::{ObjectStore, PutCondition, StoreError, UploadedPart};

/// Tracks the uploads of one log object's outputs.
pub(super) struct Uploads<'s, S> {
    store: &'s S,
    bucket: String,
    content_type: &'static str,
    open: Vec<OpenUpload>,
    /// Finished outputs.
    pub(super) written: Vec<OutputObject>,
}

struct OpenUpload {
    object: ObjectRef,
    upload_id: String,
    parts: Vec<UploadedPart>,
    /// Record count once the last part is in; the upload is then ready to complete.
    finished_records: Option<u64>,
}

impl<'s, S: ObjectStore> Uploads<'s, S> {
    pub(super) fn new(store: &'s S, bucket: String, content_type: &'static str) -> Self {
        Self {
            store,
            bucket,
            content_type,
            open: Vec::new(),
            written: Vec::new(),
        }
    }

    fn object(&self, key: String) -> ObjectRef {
        ObjectRef {
            bucket: self.bucket.clone(),
            key,
        }
    }

    async fn upload_index(&mut self, key: &str) -> Result<usize, StoreError> {
        if let Some(i) = self.open.iter().position(|u| u.object.key == key) {
            return Ok(i);
        }
        let object = self.object(key.to_string());
        let upload_id = self.store.start_upload(&object, self.content_type).await?;
        self.open.push(OpenUpload {
            object,
            upload_id,
            parts: Vec::new(),
            finished_records: None,
        });
        Ok(self.open.len() - 1)
    }

    async fn add_part(&mut self, i: usize, bytes: Vec<u8>) -> Result<(), StoreError> {
        let upload = &mut self.open[i];
        let number = upload.parts.len() as i32 + 1;
        let part = self
            .store
            .upload_part(&upload.object, &upload.upload_id, number, bytes)
            .await?;
        upload.parts.push(part);
        Ok(())
    }

    /// Takes one chunk. `at_end` says the whole input has been read, so a small output
    /// can be written with one PUT instead of a multipart upload.
    pub(super) async fn accept(
        &mut self,
        chunk: OutputChunk,
        at_end: bool,
    ) -> Result<(), StoreError> {
        match chunk {
            OutputChunk::Part { key, bytes } => {
                let i = self.upload_index(&key).await?;
                self.add_part(i, bytes).await
            }
            OutputChunk::Last {
                key,
                bytes,
                records,
            } => {
                let started = self.open.iter().any(|u| u.object.key == key);
                if at_end && !started {
                    let object = self.object(key);
                    self.store
                        .put(&object, bytes, self.content_type, PutCondition::None)
                        .await?;
                    self.written.push(OutputObject {
                        object: object.to_string(),
                        records,
                    });
                    return Ok(());
                }
                // Mid-stream (an evicted partition) or already multipart: upload the rest
                // as the last part, and complete only once the whole input is read.
                let i = self.upload_index(&key).await?;
                if !bytes.is_empty() || self.open[i].parts.is_empty() {
                    self.add_part(i, bytes).await?;
                }
                self.open[i].finished_records = Some(records);
                Ok(())
            }
        }
    }

    pub(super) async fn complete_all(&mut self) -> Result<(), StoreError> {
        while let Some(upload) = self.open.first() {
            let records = upload.finished_records.unwrap_or(0);
            self.store
                .complete_upload(&upload.object, &upload.upload_id, upload.parts.clone())
                .await?;
            let done = self.open.remove(0);
            self.written.push(OutputObject {
                object: done.object.to_string(),
                records,
            });
        }
        Ok(())
    }

    pub(super) async fn abort_all(&mut self) {
        for upload in self.open.drain(..) {
            if let Err(e) = self
                .store
                .abort_upload(&upload.object, &upload.upload_id)
                .await
            {
                warn!(error = %e, "could not abort an upload; the bucket's lifecycle rule will");
            }
        }
    }
}
