//! The lock a conditional write holds on its key: an advisory lock on a lock file in a folder
//! of its own under the root, released by the kernel however its holder ends.

use std::path::{Path, PathBuf};

/// How long a conditional write waits for another writer's lock on the same object.
pub(super) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The folder of lock files, under the root: its name carries a `~`, so it is never listed
/// and no key can name it.
const LOCK_DIR: &str = "~flux-locks";

/// The lock file of a key: `<root>/~flux-locks/<md5 of the key>` (one flat folder, outside
/// every listing).
pub(super) fn lock_path(root: &Path, key: &str) -> PathBuf {
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
pub(super) struct LockFile(std::fs::File);

impl LockFile {
    pub(super) fn acquire(
        path: &Path,
        key: &str,
        wait: std::time::Duration,
    ) -> Result<LockFile, String> {
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
