//! The object store the archive lives in, behind one small trait.
//!
//! Keys are `/`-separated paths relative to the store's root URL. Implementations: a local
//! directory ([`local::LocalStore`], for `file://` URLs and plain paths); S3 comes with archival.

pub mod local;
pub mod s3;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

/// A condition on a write (compare-and-swap for checkpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// Always write.
    None,
    /// Only if the object does not exist (`If-None-Match: *`).
    IfAbsent,
    /// Only if the object still has this entity tag (`If-Match`).
    IfMatch(String),
}

/// How to reach a store: AWS settings and encryption for `s3://` URLs (ignored for local ones).
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Region, profile, endpoint.
    pub aws: crate::aws::AwsSettings,
    /// Server-side encryption of written objects.
    pub encryption: s3::Encryption,
}

/// A streaming reader over an object's bytes.
pub type ObjectReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// An object reader that stops once `stop` is cancelled: every read after that (and a read
/// waiting for bytes at that moment) fails at once, without polling the object's stream again.
///
/// Object bodies are read on blocking threads through `SyncIoBridge`, which runs the async read
/// on the runtime's drivers (the S3 client's download-throughput timer among them). A reader
/// still reading when its runtime shuts down panics there ("A Tokio 1.x context was found, but
/// it is being shutdown"); stopping readers through this, before the runtime ends, is orderly.
pub fn stop_reading_on(
    reader: ObjectReader,
    stop: tokio_util::sync::CancellationToken,
) -> ObjectReader {
    Box::new(StoppableReader {
        inner: reader,
        stopped: Box::pin(stop.cancelled_owned()),
    })
}

struct StoppableReader {
    inner: ObjectReader,
    stopped: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl tokio::io::AsyncRead for StoppableReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        // Checked first, and registered for a wake-up, so a read waiting on the stream ends
        // as soon as the reader is told to stop.
        if std::future::Future::poll(self.stopped.as_mut(), cx).is_ready() {
            // Not `Interrupted`: readers retry those.
            return std::task::Poll::Ready(Err(std::io::Error::other(
                "the read was stopped (the run is ending)",
            )));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key relative to the store root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// Something an interrupted write left behind (see [`ObjectStore::list_temporary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryObject {
    /// Its key relative to the store root.
    pub key: String,
    /// Size in bytes (0 when the store does not say).
    pub size: u64,
    /// When it was started (a file's modification time, an upload's initiation time).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// What can go wrong talking to a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("{0}: no such object")]
    NotFound(String),
    /// A conditional write lost: the object exists (`IfAbsent`) or changed (`IfMatch`).
    #[error("{0}: changed by someone else (conditional write failed)")]
    Conflict(String),
    /// Any other failure, with the store's message.
    #[error("{key}: {message}")]
    Other {
        /// The key or prefix involved.
        key: String,
        /// What failed.
        message: String,
    },
}

impl StoreError {
    /// Wraps an I/O error for `key`.
    pub fn io(key: &str, err: std::io::Error) -> StoreError {
        if err.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound(key.to_owned())
        } else {
            StoreError::Other {
                key: key.to_owned(),
                message: err.to_string(),
            }
        }
    }
}

/// An object store: whole-object get and put, listing, delete.
#[async_trait]
pub trait ObjectStore: Send + Sync + Debug {
    /// The store's root as a URL, for messages.
    fn url(&self) -> String;

    /// Fails, naming the root, when the store's root does not exist (a local directory that is
    /// not there, an S3 bucket that does not exist or cannot be read), so a reader given a
    /// mistyped root reports it instead of finding nothing. Writers create the root.
    async fn check_root(&self) -> Result<(), StoreError>;

    /// Reads a whole object.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;

    /// Opens an object for streaming reads (large objects are never held in memory whole).
    async fn get_stream(&self, key: &str) -> Result<ObjectReader, StoreError>;

    /// Writes a whole object atomically: readers see the old object or the new one, never a part.
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError>;

    /// Reads a whole object and its entity tag (for a later [`PutCondition::IfMatch`]).
    async fn get_with_etag(&self, key: &str) -> Result<(Bytes, String), StoreError>;

    /// Writes an object only if the condition holds; returns the new entity tag, or
    /// [`StoreError::Conflict`] when another writer got there first.
    async fn put_if(
        &self,
        key: &str,
        body: Bytes,
        condition: PutCondition,
    ) -> Result<String, StoreError>;

    /// Lists every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;

    /// Deletes an object; deleting a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Makes the object at `from` (written earlier with [`ObjectStore::put`]) appear at `to`,
    /// whole (readers see no object or all of it), then removes `from`. Overwrites `to`.
    /// [`StoreError::NotFound`] when `from` does not exist (someone promoted it already).
    async fn promote(&self, from: &str, to: &str) -> Result<(), StoreError>;

    /// Lists what an interrupted write can leave behind under `prefix`, invisible to
    /// [`ObjectStore::list`]: temporary files (`~tmp-…`) in a local directory, incomplete
    /// multipart uploads on S3. `key` is the object's key (local: the temporary file's own
    /// path), `size` 0 where the store does not say.
    async fn list_temporary(&self, prefix: &str) -> Result<Vec<TemporaryObject>, StoreError> {
        let _ = prefix;
        Ok(Vec::new())
    }

    /// Reads an object, `None` when it does not exist.
    async fn get_opt(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.get(key).await {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A store URL that names no store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// An empty URL.
    #[error("the store URL is empty")]
    Empty,
    /// `file://` and nothing after it.
    #[error("{0:?} names no directory")]
    NoDirectory(String),
    /// `s3://` without a bucket.
    #[error("{0:?} names no bucket; write s3://bucket/prefix")]
    NoBucket(String),
    /// A scheme other than `s3://` and `file://`.
    #[error("{url:?}: unsupported URL scheme {scheme:?}; expected s3://, file:// or a plain path")]
    Scheme {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// A local path the operating system cannot resolve.
    #[error("{url:?}: {reason}")]
    Unresolvable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl From<UrlError> for String {
    fn from(e: UrlError) -> String {
        e.to_string()
    }
}

/// Opens the store a URL names: `s3://bucket/prefix`, `file:///abs/dir`, `file://./rel/dir`,
/// or a plain path.
pub fn open_with(url: &str, options: &StoreOptions) -> Result<Arc<dyn ObjectStore>, UrlError> {
    if url.starts_with("s3://") {
        return Ok(Arc::new(s3::S3Store::new(
            url,
            options.aws.clone(),
            options.encryption.clone(),
        )?));
    }
    open(url)
}

/// Opens a store with default options (see [`open_with`]).
pub fn open(url: &str) -> Result<Arc<dyn ObjectStore>, UrlError> {
    if url.starts_with("s3://") {
        return Ok(Arc::new(s3::S3Store::new(
            url,
            Default::default(),
            Default::default(),
        )?));
    }
    if let Some(rest) = url.strip_prefix("file://") {
        if rest.is_empty() {
            return Err(UrlError::NoDirectory(url.to_owned()));
        }
        return Ok(Arc::new(local::LocalStore::new(rest)));
    }

    if let Some((scheme, _)) = url.split_once("://") {
        return Err(UrlError::Scheme {
            url: url.to_owned(),
            scheme: scheme.to_owned(),
        });
    }
    if url.is_empty() {
        return Err(UrlError::Empty);
    }
    Ok(Arc::new(local::LocalStore::new(url)))
}

/// Checks a store URL without opening it (for compile-time validation).
pub fn check_url(url: &str) -> Result<(), UrlError> {
    open(url).map(|_| ())
}

/// Where a store URL leads, in one spelling per place: two URLs that reach the same objects
/// compare equal (`file://./a`, `./a` and `file:///abs/a`; `s3://b/p` and `s3://b/p/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreLocation {
    /// A local directory, resolved as the operating system does (see
    /// [`crate::local_path::resolve`]).
    Local(std::path::PathBuf),
    /// An S3 bucket and key prefix (no slashes around it), at an endpoint (`None`: AWS's, or
    /// the one the environment names).
    S3 {
        /// `aws.endpoint`, without a trailing slash.
        endpoint: Option<String>,
        /// The bucket.
        bucket: String,
        /// The prefix, without leading or trailing `/`.
        prefix: String,
    },
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Local(p) => write!(f, "file://{}", p.display()),
            StoreLocation::S3 { bucket, prefix, .. } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            StoreLocation::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Where `url` leads (see [`StoreLocation`]); `endpoint` is the stage's `aws.endpoint`.
pub fn locate(url: &str, endpoint: Option<&str>) -> Result<StoreLocation, UrlError> {
    check_url(url)?;
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        return Ok(StoreLocation::S3 {
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        });
    }
    let dir = url.strip_prefix("file://").unwrap_or(url);
    crate::local_path::resolve(std::path::Path::new(dir))
        .map(StoreLocation::Local)
        .map_err(|e| UrlError::Unresolvable {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}
