//! Local paths as the operating system resolves them, and the standard streams by their names.
//!
//! Used to decide where a `file` sink writes (through a symbolic link, never over it) and, at
//! `validate` time, whether two stages name the same file or archive directory: `./x`, `x`,
//! `d/../x` and a link to `x` are one file.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Symbolic links followed before giving up, as Linux does (`ELOOP`).
const MAX_LINKS: usize = 40;

/// One of the process's standard streams, named by a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StdStream {
    /// `-` (for writers), `/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`.
    Stdout,
    /// `/dev/stderr`, `/dev/fd/2`, `/proc/self/fd/2`.
    Stderr,
    /// `-` (for readers), `/dev/stdin`, `/dev/fd/0`, `/proc/self/fd/0`.
    Stdin,
}

impl StdStream {
    /// The stream a writer's `path` names, if any (`-` is standard output).
    pub fn for_writing(path: &str) -> Option<StdStream> {
        match path {
            "-" | "/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1" => Some(StdStream::Stdout),
            "/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2" => Some(StdStream::Stderr),
            "/dev/stdin" | "/dev/fd/0" | "/proc/self/fd/0" => Some(StdStream::Stdin),
            _ => None,
        }
    }

    /// The stream a reader's `path` names, if any (`-` is standard input).
    pub fn for_reading(path: &str) -> Option<StdStream> {
        match path {
            "-" => Some(StdStream::Stdin),
            other => StdStream::for_writing(other),
        }
    }

    /// Its usual name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            StdStream::Stdout => "standard output",
            StdStream::Stderr => "standard error",
            StdStream::Stdin => "standard input",
        }
    }
}

/// True for paths in the kernel's own file systems (`/dev`, `/proc`, `/sys`): files there are
/// written where they are, never created or replaced.
pub fn is_system_path(path: &Path) -> bool {
    let mut c = path.components();
    c.next() == Some(Component::RootDir)
        && matches!(c.next(), Some(Component::Normal(n)) if n == "dev" || n == "proc" || n == "sys")
}

/// `path` made absolute (relative to the working directory) with every symbolic link resolved
/// where it exists, a final link followed even when its target does not exist yet, and `.`/`..`
/// applied; the part that does not exist is kept as written. Two paths that open the same file
/// resolve to the same result.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    resolve_depth(path, 0)
}

fn resolve_depth(path: &Path, links: usize) -> io::Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    // `cur` is canonical (no links, `.` or `..`) as long as `exists`.
    let mut cur = PathBuf::new();
    let mut exists = true;
    let mut components = abs.components().peekable();
    while let Some(c) = components.next() {
        match c {
            Component::Prefix(_) | Component::RootDir => cur.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(name) => {
                cur.push(name);
                if !exists {
                    continue;
                }
                match std::fs::canonicalize(&cur) {
                    Ok(c) => cur = c,
                    Err(_) => match std::fs::read_link(&cur) {
                        // A link whose target does not exist (yet): where it points.
                        Ok(target) => {
                            if links >= MAX_LINKS {
                                return Err(io::Error::other("too many levels of symbolic links"));
                            }
                            let mut next = match cur.parent() {
                                Some(dir) if target.is_relative() => dir.join(target),
                                _ => target,
                            };
                            for rest in components.by_ref() {
                                next.push(rest.as_os_str());
                            }
                            return resolve_depth(&next, links + 1);
                        }
                        Err(_) => exists = false,
                    },
                }
            }
        }
    }
    Ok(cur)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_file_resolve_alike() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("x"), "").unwrap();
        std::os::unix::fs::symlink(d.join("x"), d.join("link")).unwrap();
        std::os::unix::fs::symlink("sub", d.join("sublink")).unwrap();
        let want = d.join("x");
        for p in ["x", "./x", "sub/../x", "link", "sublink/../x"] {
            assert_eq!(resolve(&d.join(p)).unwrap(), want, "{p}");
        }
        // Not existing yet: kept as written, below the resolved directory.
        assert_eq!(
            resolve(&d.join("sublink/new/../y.jsonl")).unwrap(),
            d.join("sub/y.jsonl")
        );
        // A dangling link resolves to where it points.
        std::os::unix::fs::symlink("sub/later.jsonl", d.join("dangling")).unwrap();
        assert_eq!(
            resolve(&d.join("dangling")).unwrap(),
            d.join("sub/later.jsonl")
        );
        // A loop is an error, not a hang.
        std::os::unix::fs::symlink("loop2", d.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", d.join("loop2")).unwrap();
        assert!(resolve(&d.join("loop1")).is_err());
    }

    #[test]
    fn standard_streams_and_system_paths_are_recognised() {
        assert_eq!(StdStream::for_writing("-"), Some(StdStream::Stdout));
        assert_eq!(StdStream::for_reading("-"), Some(StdStream::Stdin));
        assert_eq!(
            StdStream::for_writing("/dev/stdout"),
            Some(StdStream::Stdout)
        );
        assert_eq!(StdStream::for_writing("/dev/fd/2"), Some(StdStream::Stderr));
        assert_eq!(StdStream::for_writing("out.jsonl"), None);
        assert!(is_system_path(Path::new("/dev/null")));
        assert!(is_system_path(Path::new("/proc/self/fd/3")));
        assert!(!is_system_path(Path::new("/devices/x")));
        assert!(!is_system_path(Path::new("dev/null")));
    }
}
