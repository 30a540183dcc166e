//! Listing: the objects below a folder, and the temporary files left there by writes that did
//! not finish.

use std::path::Path;

use crate::store::{ObjectMeta, TemporaryObject};

pub(super) fn walk(root: &Path, dir: &Path, out: &mut Vec<ObjectMeta>) -> std::io::Result<()> {
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
///
/// [`write_atomic`]: super::write_atomic
/// [`LOCK_DIR`]: super::lock
pub(super) fn walk_temporary(
    root: &Path,
    dir: &Path,
    out: &mut Vec<TemporaryObject>,
) -> std::io::Result<()> {
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
