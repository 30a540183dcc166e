//! A local directory as an object store. Writes go to a temporary file first and are renamed
//! into place, so a reader never sees half an object and a crash leaves no partial object.
//! Temporary and lock files carry a `~` in their names, which no key the archive writes
//! contains (see [`crate::names`]); listings leave them out.

mod lock;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectMeta, ObjectStore, PutCondition, StoreError, TemporaryObject};
use lock::{LOCK_WAIT, LockFile, lock_path};
use walk::{walk, walk_temporary};

/// An object store rooted at a directory (created on first write).
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LocalStore {
    /// A store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty()
            || key
                .split('/')
                .any(|part| part == ".." || part == "." || part.is_empty() || part.contains('\0'))
        {
            return Err(StoreError::Other {
                key: key.to_owned(),
                message: "invalid object key".into(),
            });
        }
        Ok(self.root.join(key))
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn check_root(&self) -> Result<(), StoreError> {
        let problem = match tokio::fs::metadata(&self.root).await {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => "is not a directory".to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let from = std::env::current_dir()
                    .map(|d| format!(" (a relative root is read from {})", d.display()))
                    .unwrap_or_default();
                format!("the archive root does not exist{from}")
            }
            Err(e) => e.to_string(),
        };
        Err(StoreError::Other {
            key: self.url(),
            message: problem,
        })
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        let k = key.to_owned();
        blocking(move || {
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| StoreError::io(&k, e))
        })
        .await
    }

    async fn get_stream(&self, key: &str) -> Result<super::ObjectReader, StoreError> {
        let path = self.path(key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StoreError::io(key, e))?;
        // Each read of a `tokio::fs::File` is a hop to the blocking pool and back: read 1 MiB
        // at a time, so the small reads of a decompressor are served from memory.
        Ok(Box::new(tokio::io::BufReader::with_capacity(1 << 20, file)))
    }

    async fn get_with_etag(&self, key: &str) -> Result<(Bytes, String), StoreError> {
        let body = self.get(key).await?;
        let etag = etag_of(&body);
        Ok((body, etag))
    }

    async fn put_if(
        &self,
        key: &str,
        body: Bytes,
        condition: PutCondition,
    ) -> Result<String, StoreError> {
        let path = self.path(key)?;
        let k = key.to_owned();
        let root = self.root.clone();
        blocking(move || {
            // Compare-and-swap under an exclusive lock on the key, so two processes cannot both
            // win; the kernel releases it however this process ends.
            let lock = lock_path(&root, &k);
            if let Some(dir) = lock.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::io(&k, e))?;
            }
            let _guard =
                LockFile::acquire(&lock, &k, LOCK_WAIT).map_err(|message| StoreError::Other {
                    key: k.clone(),
                    message,
                })?;
            let current = match std::fs::read(&path) {
                Ok(b) => Some(etag_of(&b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(StoreError::io(&k, e)),
            };
            let ok = match &condition {
                PutCondition::None => true,
                PutCondition::IfAbsent => current.is_none(),
                PutCondition::IfMatch(tag) => current.as_deref() == Some(tag.as_str()),
            };
            if !ok {
                return Err(StoreError::Conflict(k));
            }
            write_atomic(&path, &body).map_err(|e| StoreError::io(&k, e))?;
            Ok(etag_of(&body))
        })
        .await
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let k = key.to_owned();
        blocking(move || write_atomic(&path, &body).map_err(|e| StoreError::io(&k, e))).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        blocking(move || {
            // Start at the deepest folder the prefix names completely.
            let dir_part = match prefix.rfind('/') {
                Some(i) => &prefix[..i],
                None => "",
            };
            let mut out = Vec::new();
            walk(&root, &root.join(dir_part), &mut out).map_err(|e| StoreError::io(&prefix, e))?;
            out.retain(|m| m.key.starts_with(&prefix));
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn promote(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (from_path, to_path) = (self.path(from)?, self.path(to)?);
        let k = from.to_owned();
        blocking(move || {
            if let Some(dir) = to_path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::io(&k, e))?;
            }
            // rename(2) is atomic: readers see the old name or the new one.
            std::fs::rename(&from_path, &to_path).map_err(|e| StoreError::io(&k, e))
        })
        .await
    }

    async fn list_temporary(&self, prefix: &str) -> Result<Vec<TemporaryObject>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        blocking(move || {
            let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
            let mut out = Vec::new();
            walk_temporary(&root, &root.join(dir_part), &mut out)
                .map_err(|e| StoreError::io(&prefix, e))?;
            out.retain(|t| t.key.starts_with(&prefix));
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let k = key.to_owned();
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&k, e)),
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Other {
            key: String::new(),
            message: format!("I/O task failed: {e}"),
        })?
}

/// The entity tag of a local object: the MD5 of its bytes, quoted as S3 writes it.
fn etag_of(body: &[u8]) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        "~tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
