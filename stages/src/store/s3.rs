//! S3 as an object store (aws-sdk-s3): streaming reads, multipart writes above a threshold
//! (aborted on failure), paginated listing, deletes, conditional writes (`If-None-Match: *`,
//! `If-Match: <etag>`) and optional SSE-KMS. URLs: `s3://bucket/prefix`.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use bytes::Bytes;
use tokio::sync::OnceCell;

use super::{ObjectMeta, ObjectReader, ObjectStore, PutCondition, StoreError, TemporaryObject};
use crate::aws::{AwsSettings, describe, sdk_config};

/// Objects at or above this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// The size of each uploaded part (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Server-side encryption settings for writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encryption {
    /// `aws:kms`, `aws:kms:dsse` or `AES256`; none = the bucket default.
    pub sse: Option<String>,
    /// The KMS key for `aws:kms`.
    pub kms_key_id: Option<String>,
}

/// An S3 bucket and key prefix.
#[derive(Debug)]
pub struct S3Store {
    bucket: String,
    prefix: String,
    settings: AwsSettings,
    encryption: Encryption,
    client: OnceCell<Client>,
}

impl S3Store {
    /// A store for `s3://bucket/prefix`; the client is created on first use.
    pub fn new(
        url: &str,
        settings: AwsSettings,
        encryption: Encryption,
    ) -> Result<S3Store, super::UrlError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| super::UrlError::Scheme {
                url: url.to_owned(),
                scheme: url.split_once("://").map_or("", |(s, _)| s).to_owned(),
            })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(super::UrlError::NoBucket(url.to_owned()));
        }
        let prefix = prefix.trim_matches('/');
        Ok(S3Store {
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            settings,
            encryption,
            client: OnceCell::new(),
        })
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let shared = sdk_config(&self.settings).await;
                let conf = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(self.settings.custom_endpoint("S3"))
                    .build();
                Client::from_conf(conf)
            })
            .await
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn err<E>(&self, key: &str, e: &aws_sdk_s3::error::SdkError<E, HttpResponse>) -> StoreError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let message = describe(e);
        let status = e.raw_response().map(|r| r.status().as_u16());
        if message.starts_with("NoSuchBucket") {
            // Also a 404, but not a missing object: nothing under this root can be read.
            StoreError::Other {
                key: format!("s3://{}", self.bucket),
                message: format!("the bucket does not exist ({message})"),
            }
        } else if status == Some(404) || message.starts_with("NoSuchKey") {
            StoreError::NotFound(self.key_url(key))
        } else if status == Some(412)
            || status == Some(409)
            || message.starts_with("PreconditionFailed")
            || message.starts_with("ConditionalRequestConflict")
        {
            StoreError::Conflict(self.key_url(key))
        } else {
            StoreError::Other {
                key: self.key_url(key),
                message,
            }
        }
    }

    fn key_url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full(key))
    }

    async fn get_object(
        &self,
        key: &str,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StoreError> {
        self.client()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| self.err(key, &e))
    }

    async fn put_multipart(&self, key: &str, body: Bytes) -> Result<String, StoreError> {
        let client = self.client().await;
        let full = self.full(key);
        let mut create = client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full);
        if let Some(sse) = &self.encryption.sse {
            create = create.server_side_encryption(ServerSideEncryption::from(sse.as_str()));
        }
        if let Some(kms) = &self.encryption.kms_key_id {
            create = create.ssekms_key_id(kms);
        }
        let upload = create.send().await.map_err(|e| self.err(key, &e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let result = async {
            let mut parts = Vec::new();
            for (i, chunk) in body.chunks(PART_SIZE).enumerate() {
                let n = i as i32 + 1;
                let part = client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .part_number(n)
                    .body(ByteStream::from(body.slice_ref(chunk)))
                    .send()
                    .await
                    .map_err(|e| self.err(key, &e))?;
                crate::fault::hit("mid_multipart");
                parts.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                );
            }
            let done = client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.err(key, &e))?;
            Ok(done.e_tag().unwrap_or_default().to_owned())
        }
        .await;
        if result.is_err() {
            // Leave no invisible half-upload behind (it would be billed until a lifecycle rule).
            let _ = client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
    }

    async fn check_root(&self) -> Result<(), StoreError> {
        // HeadBucket answers without a body, so its errors carry no code: the status says it.
        let result = self
            .client()
            .await
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await;
        let Err(e) = result else {
            return Ok(());
        };
        let message = match e.raw_response().map(|r| r.status().as_u16()) {
            Some(404) => "the bucket does not exist (NoSuchBucket)".to_owned(),
            Some(403) => {
                "access to the bucket is denied (AccessDenied): check the credentials and the bucket policy".to_owned()
            }
            _ => describe(&e),
        };
        Err(StoreError::Other {
            key: format!("s3://{}", self.bucket),
            message,
        })
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        Ok(self.get_with_etag(key).await?.0)
    }

    async fn get_with_etag(&self, key: &str) -> Result<(Bytes, String), StoreError> {
        let out = self.get_object(key).await?;
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let body = out.body.collect().await.map_err(|e| StoreError::Other {
            key: self.key_url(key),
            message: format!("reading the body: {e}"),
        })?;
        Ok((body.into_bytes(), etag))
    }

    async fn get_stream(&self, key: &str) -> Result<ObjectReader, StoreError> {
        let out = self.get_object(key).await?;
        Ok(Box::new(out.body.into_async_read()))
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        if body.len() >= MULTIPART_THRESHOLD {
            return self.put_multipart(key, body).await.map(|_| ());
        }
        self.put_if(key, body, PutCondition::None).await.map(|_| ())
    }

    async fn put_if(
        &self,
        key: &str,
        body: Bytes,
        condition: PutCondition,
    ) -> Result<String, StoreError> {
        let mut req = self
            .client()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .body(ByteStream::from(body));
        match &condition {
            PutCondition::None => {}
            PutCondition::IfAbsent => req = req.if_none_match("*"),
            PutCondition::IfMatch(etag) => req = req.if_match(etag),
        }
        if let Some(sse) = &self.encryption.sse {
            req = req.server_side_encryption(ServerSideEncryption::from(sse.as_str()));
        }
        if let Some(kms) = &self.encryption.kms_key_id {
            req = req.ssekms_key_id(kms);
        }
        let out = req.send().await.map_err(|e| self.err(key, &e))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let client = self.client().await;
        let mut pages = client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full(prefix))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.err(prefix, &e))?;
            for obj in page.contents() {
                let Some(key) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                out.push(ObjectMeta {
                    key: key.to_owned(),
                    size: obj.size().unwrap_or(0).max(0) as u64,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn list_temporary(&self, prefix: &str) -> Result<Vec<TemporaryObject>, StoreError> {
        let client = self.client().await;
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(self.full(prefix))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| self.err(prefix, &e))?;
            for upload in page.uploads() {
                let Some(key) = upload.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                out.push(TemporaryObject {
                    key: key.to_owned(),
                    size: 0,
                    since: upload
                        .initiated()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn promote(&self, from: &str, to: &str) -> Result<(), StoreError> {
        // A server-side copy (atomic for readers: the object appears whole), then the staged
        // copy goes. Objects stay below CopyObject's 5 GB (the archive sink limits `max_bytes`).
        let source = format!("{}/{}", self.bucket, percent_encode(&self.full(from)));
        let mut req = self
            .client()
            .await
            .copy_object()
            .bucket(&self.bucket)
            .key(self.full(to))
            .copy_source(source);
        if let Some(sse) = &self.encryption.sse {
            req = req.server_side_encryption(ServerSideEncryption::from(sse.as_str()));
        }
        if let Some(kms) = &self.encryption.kms_key_id {
            req = req.ssekms_key_id(kms);
        }
        req.send().await.map_err(|e| self.err(from, &e))?;
        self.delete(from).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client()
            .await
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| self.err(key, &e))?;
        Ok(())
    }
}

/// Percent-encodes a key for `x-amz-copy-source` (everything but unreserved characters and `/`).
fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
