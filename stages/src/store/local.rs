//! A local directory as an object store. Writes go to a temporary file first and are renamed
//! into place, so a reader never sees half an object and a crash leaves no partial object.
//! Temporary and lock files carry a `~` in their names, which no key the archive writes
//! contains (see [`crate::names`]); listings leave them out.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectMeta, ObjectStore, PutCondition, StoreError, TemporaryObject};

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
        Ok(Box::new(file))
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

/// How long a conditional write waits for another writer's lock on the same object.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The folder of lock files, under the root: its name carries a `~`, so it is never listed
/// and no key can name it.
const LOCK_DIR: &str = "~flux-locks";

/// The lock file of a key: `<root>/~flux-locks/<md5 of the key>` (one flat folder, outside
/// every listing).
fn lock_path(root: &Path, key: &str) -> PathBuf {
    use md5::{Digest, Md5};
    let digest: String = Md5::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    root.join(LOCK_DIR).join(digest)
}

/// An exclusive lock on an object: an advisory lock (`flock`) on its lock file, which the
/// kernel releases when the holder exits in any way (SIGKILL included), so a lock can never be
/// left behind. A holder that is alive but stopped (SIGSTOP, a frozen VM) keeps it; waiters
/// then give up after `wait` with a message naming the holder. The lock file stays (removing
/// it would let two processes lock two different files of one name); it records its last
/// holder (pid, host, time) for that message.
struct LockFile(std::fs::File);

impl LockFile {
    fn acquire(path: &Path, key: &str, wait: std::time::Duration) -> Result<LockFile, String> {
        let describe = |e: std::io::Error| format!("lock file {}: {e}", path.display());
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(describe)?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if std::time::Instant::now() > deadline {
                        let recorded = std::fs::read_to_string(path).unwrap_or_default();
                        let holders = lock_holders(&file);
                        let who = match (holders.as_slice(), recorded.trim()) {
                            ([], "") => "another process".to_owned(),
                            ([], last) => format!("another process (last recorded holder: {last})"),
                            (pids, last) => format!(
                                "pid {}{}",
                                pids.iter()
                                    .map(u32::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", pid "),
                                if last.is_empty() {
                                    String::new()
                                } else {
                                    format!(" (last recorded holder: {last})")
                                }
                            ),
                        };
                        return Err(format!(
                            "the lock on {key} ({}) is still held after {}s by {who} (a process that is stopped or hung; it is released the moment that process exits)",
                            path.display(),
                            wait.as_secs(),
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(describe(e)),
            }
        }
        // Record the holder, for the message a waiter gives.
        use std::io::{Seek, Write};
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(
            file,
            "pid {} on host {} since {}",
            std::process::id(),
            host.trim(),
            crate::record::format_ts(&chrono::Utc::now())
        );
        Ok(LockFile(file))
    }
}

/// The processes holding an advisory lock on `file`, from `/proc/locks` (Linux; empty
/// elsewhere or when it cannot be read).
fn lock_holders(file: &std::fs::File) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else {
        return Vec::new();
    };
    let inode = meta.ino().to_string();
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let mut pids: Vec<u32> = locks
        .lines()
        .filter_map(|line| {
            // `1: FLOCK  ADVISORY  WRITE 17142 fe:00:5496949 0 EOF`
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dev_inode = fields.get(5)?;
            (dev_inode.rsplit(':').next() == Some(inode.as_str()))
                .then(|| fields.get(4)?.parse().ok())
                .flatten()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
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

fn walk(root: &Path, dir: &Path, out: &mut Vec<ObjectMeta>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        // Temporary and lock files; every other name is listed (legal names may start with
        // a dot).
        if crate::names::is_reserved_file_name(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(root, &path, out)?;
        } else if ty.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let key = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(ObjectMeta {
                key,
                size: entry.metadata()?.len(),
            });
        }
    }
    Ok(())
}

/// The temporary files (`~tmp-…`, see [`write_atomic`]) below `dir`; lock files are not
/// temporary (they live in [`LOCK_DIR`], which is skipped).
fn walk_temporary(root: &Path, dir: &Path, out: &mut Vec<TemporaryObject>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ty = entry.file_type()?;
        if ty.is_dir() && !crate::names::is_reserved_file_name(&name) {
            walk_temporary(root, &entry.path(), out)?;
        } else if ty.is_file() && name.starts_with("~tmp-") {
            let path = entry.path();
            let meta = entry.metadata()?;
            let key = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(TemporaryObject {
                key,
                size: meta.len(),
                since: meta
                    .modified()
                    .ok()
                    .map(chrono::DateTime::<chrono::Utc>::from),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
