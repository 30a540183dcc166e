//! Writing generated files below one folder, and only there: each path must be relative and
//! plain (no `..`, no root), the folders on the way must resolve inside the output folder (a
//! symbolic link pointing elsewhere is refused), an existing file is replaced only when asked,
//! and a symbolic link or folder in a file's place never. Every check runs before the first
//! write, so a refusal writes nothing.

use std::path::{Component, Path, PathBuf};

use flux_stages::sql::text::GeneratedFile;

/// Why nothing (or not everything) was written.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// A check failed before anything was written.
    Refused(String),
    /// Writing failed.
    Io(String),
}

/// Writes `files` below `out` (created if missing); returns the paths written.
pub(crate) fn write(
    out: &Path,
    files: &[GeneratedFile],
    force: bool,
) -> Result<Vec<PathBuf>, WriteError> {
    let io = |what: &Path, e: std::io::Error| WriteError::Io(format!("{}: {e}", what.display()));
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let root = out.canonicalize().map_err(|e| io(out, e))?;
    let mut targets = Vec::new();
    let mut existing = Vec::new();
    for file in files {
        let rel = Path::new(file.path());
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(WriteError::Refused(format!(
                "{}: not a plain relative path; nothing was written",
                file.path()
            )));
        }
        let target = root.join(rel);
        // The folders on the way, as they resolve now (a link could lead out of `out`).
        let mut dir = root.clone();
        for part in rel.parent().into_iter().flat_map(Path::components) {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    let resolved = dir.canonicalize().map_err(|e| io(&dir, e))?;
                    if !resolved.starts_with(&root) {
                        return Err(WriteError::Refused(format!(
                            "{} is a link out of --out ({}); nothing was written",
                            dir.display(),
                            resolved.display()
                        )));
                    }
                }
                Ok(m) if !m.is_dir() => {
                    return Err(WriteError::Refused(format!(
                        "{} is not a folder; nothing was written",
                        dir.display()
                    )));
                }
                _ => {}
            }
        }
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.is_file() => existing.push(target.clone()),
            Ok(_) => {
                return Err(WriteError::Refused(format!(
                    "{} exists and is not a plain file (a link or a folder); nothing was written",
                    target.display()
                )));
            }
            Err(_) => {}
        }
        targets.push((target, file.text()));
    }
    if !existing.is_empty() && !force {
        return Err(WriteError::Refused(format!(
            "{} exist(s) already: {}; --force replaces them (nothing was written)",
            existing.len(),
            existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut written = Vec::new();
    for (target, text) in targets {
        let dir = target.parent().unwrap_or(&root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        // Written beside the target and renamed over it: a reader never sees half a file.
        let tmp = dir.join(format!(".~flux-ddl-{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
        written.push(target);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> GeneratedFile {
        GeneratedFile::Json {
            path: path.into(),
            value: serde_json::json!({"a": 1}),
        }
    }

    #[test]
    fn writes_below_out_and_refuses_to_overwrite_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sql");
        let files = [file("drill/a.json"), file("b.json")];
        assert_eq!(write(&out, &files, false).unwrap().len(), 2);
        std::fs::write(out.join("b.json"), "mine").unwrap();
        let err = write(&out, &files, false).unwrap_err();
        assert!(
            matches!(&err, WriteError::Refused(m) if m.contains("--force")),
            "{err:?}"
        );
        assert_eq!(std::fs::read_to_string(out.join("b.json")).unwrap(), "mine");
        write(&out, &files, true).unwrap();
        assert!(
            std::fs::read_to_string(out.join("b.json"))
                .unwrap()
                .contains("\"a\"")
        );
    }

    #[test]
    fn never_writes_outside_out() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sql");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        for bad in ["../x.json", "/etc/x.json"] {
            assert!(matches!(
                write(&out, &[file(bad)], true),
                Err(WriteError::Refused(_))
            ));
        }
        std::os::unix::fs::symlink(&elsewhere, out.join("drill")).unwrap();
        let err = write(&out, &[file("drill/a.json")], true).unwrap_err();
        assert!(
            matches!(&err, WriteError::Refused(m) if m.contains("link out of")),
            "{err:?}"
        );
        std::os::unix::fs::symlink(elsewhere.join("t"), out.join("b.json")).unwrap();
        assert!(matches!(
            write(&out, &[file("b.json")], true),
            Err(WriteError::Refused(_))
        ));
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }
}
