//! Amazon S3, or any S3-compatible endpoint, through `aws-sdk-s3`. Thin: each method is one
//! SDK call plus error translation into [`StoreError`].

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use bytes::Bytes;

use crate::event::ObjectRef;
use crate::ports::{
    ChunkStream, ObjectBody, ObjectStore, PutCondition, PutOutcome, StoreError, StoreErrorKind,
    UploadedPart,
};

/// An [`ObjectStore`] backed by an S3 client.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
}

impl S3Store {
    /// Wraps a configured client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A client from the standard AWS environment (credentials, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`), with path-style addressing when `S3_FORCE_PATH_STYLE=true`
    /// (what local emulators and several S3-compatible stores need).
    pub async fn from_env() -> Self {
        Self::from_shared(&aws_config::load_from_env().await)
    }

    /// Like [`S3Store::from_env`], from an already loaded shared configuration.
    pub fn from_shared(shared: &aws_config::SdkConfig) -> Self {
        let path_style = std::env::var("S3_FORCE_PATH_STYLE")
            .is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let config = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(path_style)
            .build();
        Self::new(Client::from_conf(config))
    }
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

/// Translates an SDK error into a [`StoreError`] naming the operation and object.
/// CopyObject's `x-amz-copy-source`: the bucket and the key, URL-encoded except `/`.
fn copy_source(from: &ObjectRef) -> String {
    let mut out = format!("{}/", from.bucket);
    for b in from.key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn store_error<E>(operation: &'static str, object: &ObjectRef, err: &SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code();
    let kind = match (code, status) {
        (Some("NoSuchKey" | "NotFound" | "NoSuchBucket" | "NoSuchUpload"), _) | (_, Some(404)) => {
            StoreErrorKind::NotFound
        }
        (
            Some("AccessDenied" | "Forbidden" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"),
            _,
        )
        | (_, Some(403)) => StoreErrorKind::AccessDenied,
        (Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded"), _)
        | (_, Some(429 | 503)) => StoreErrorKind::Throttled,
        (_, Some(500..=599)) => StoreErrorKind::Unavailable,
        _ if matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
        ) =>
        {
            StoreErrorKind::Unavailable
        }
        _ => StoreErrorKind::Other,
    };
    StoreError {
        operation,
        object: object.clone(),
        kind,
        message: DisplayErrorContext(err).to_string(),
    }
}

fn is_precondition_failed<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.code() == Some("PreconditionFailed")
        || err.raw_response().map(|r| r.status().as_u16()) == Some(412)
}

struct S3Chunks {
    body: ByteStream,
    object: ObjectRef,
}

#[async_trait]
impl ChunkStream for S3Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        match self.body.next().await {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(bytes)),
            Some(Err(e)) => Err(StoreError {
                operation: "GetObject",
                object: self.object.clone(),
                kind: StoreErrorKind::Unavailable,
                message: format!("reading the body failed: {}", DisplayErrorContext(&e)),
            }),
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn open(&self, object: &ObjectRef) -> Result<Option<ObjectBody>, StoreError> {
        let result = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(ObjectBody {
                etag: out.e_tag().map(unquote),
                size: out.content_length().and_then(|n| u64::try_from(n).ok()),
                chunks: Box::new(S3Chunks {
                    body: out.body,
                    object: object.clone(),
                }),
            })),
            Err(e) => match store_error("GetObject", object, &e) {
                StoreError {
                    kind: StoreErrorKind::NotFound,
                    ..
                } if e.code() != Some("NoSuchBucket") => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn get_small(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        let Some(mut body) = self.open(object).await? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = body.chunks.next_chunk().await? {
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some((bytes, body.etag)))
    }

    async fn put(
        &self,
        object: &ObjectRef,
        body: Vec<u8>,
        content_type: &str,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        request = match condition {
            PutCondition::None => request,
            PutCondition::IfAbsent => request.if_none_match("*"),
            PutCondition::IfMatch(etag) => request.if_match(format!("\"{etag}\"")),
        };
        match request.send().await {
            Ok(out) => Ok(PutOutcome::Written {
                etag: out.e_tag().map(unquote),
            }),
            Err(e) if is_precondition_failed(&e) => Ok(PutOutcome::PreconditionFailed),
            Err(e) => Err(store_error("PutObject", object, &e)),
        }
    }

    async fn list(&self, prefix: &ObjectRef) -> Result<Vec<String>, StoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&prefix.bucket)
            .prefix(&prefix.key)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_error("ListObjectsV2", prefix, &e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        Ok(keys)
    }

    async fn delete(&self, object: &ObjectRef) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("DeleteObject", object, &e))
    }

    async fn delete_if_match(&self, object: &ObjectRef, etag: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .if_match(format!("\"{etag}\""))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_precondition_failed(&e) => Ok(false),
            Err(e) => match store_error("DeleteObject", object, &e) {
                StoreError {
                    kind: StoreErrorKind::NotFound,
                    ..
                } if e.code() != Some("NoSuchBucket") => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn copy(&self, from: &ObjectRef, to: &ObjectRef) -> Result<(), StoreError> {
        self.client
            .copy_object()
            .bucket(&to.bucket)
            .key(&to.key)
            .copy_source(copy_source(from))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("CopyObject", from, &e))
    }

    async fn tag(&self, object: &ObjectRef, key: &str, value: &str) -> Result<(), StoreError> {
        let invalid = |e: aws_sdk_s3::error::BuildError| StoreError {
            operation: "PutObjectTagging",
            object: object.clone(),
            kind: StoreErrorKind::Other,
            message: e.to_string(),
        };
        let tag = Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(invalid)?;
        let tagging = Tagging::builder().tag_set(tag).build().map_err(invalid)?;
        self.client
            .put_object_tagging()
            .bucket(&object.bucket)
            .key(&object.key)
            .tagging(tagging)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("PutObjectTagging", object, &e))
    }

    async fn start_upload(
        &self,
        object: &ObjectRef,
        content_type: &str,
    ) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&object.bucket)
            .key(&object.key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| store_error("CreateMultipartUpload", object, &e))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| StoreError {
                operation: "CreateMultipartUpload",
                object: object.clone(),
                kind: StoreErrorKind::Other,
                message: "the response has no upload ID".into(),
            })
    }

    async fn upload_part(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        let out = self
            .client
            .upload_part()
            .bucket(&object.bucket)
            .key(&object.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| store_error("UploadPart", object, &e))?;
        Ok(UploadedPart {
            number,
            etag: out.e_tag().unwrap_or_default().to_string(),
        })
    }

    async fn complete_upload(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        let parts = parts
            .into_iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .e_tag(p.etag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&object.bucket)
            .key(&object.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("CompleteMultipartUpload", object, &e))
    }

    async fn abort_upload(&self, object: &ObjectRef, upload_id: &str) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(&object.bucket)
            .key(&object.key)
            .upload_id(upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("AbortMultipartUpload", object, &e))
    }
}
