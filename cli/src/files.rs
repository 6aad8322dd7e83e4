//! The CLI's own files: where they live (the XDG base directories) and how they are
//! written — whole or not at all (a temporary file of this process, synced, renamed
//! over the old one), owner-only, in owner-only folders — and the lock beside a file
//! that `vectron`s running at once take to read, change and write it in turn.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Exit, Failure};

/// `$VAR/vectron`, else `$HOME/<fallback>/vectron` (e.g. `XDG_CONFIG_HOME`, `.config`).
pub fn base_dir(var: &str, fallback: &str) -> Result<PathBuf, Failure> {
    if let Some(dir) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir).join("vectron"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Failure::invalid(format!("neither {var} nor HOME is set: nowhere to keep the CLI's files")))?;
    Ok(PathBuf::from(home).join(fallback).join("vectron"))
}

/// Writes `bytes` to `path`, owner-only (0600), replacing the file whole: a reader (or
/// another `vectron` at the same time) sees the old file or the new one, never a mix.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let failed = |e: std::io::Error| Failure::new(Exit::Failed, format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(failed)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        // A leftover of an earlier run keeps the mode it was made with: set it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(failed)
}

/// Waits for, and holds until dropped, the exclusive lock of `path` (an advisory lock
/// on `<path>.lock`, released when the process exits, however it exits).
pub fn lock(path: &Path) -> Result<std::fs::File, Failure> {
    let failed = |e: std::io::Error| Failure::new(Exit::Failed, format!("locking {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(failed)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path.with_file_name(format!("{name}.lock")))
        .map_err(failed)?;
    file.lock().map_err(failed)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_replaced_whole_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("b.json");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        let left: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
    }

    #[test]
    fn the_lock_is_held_by_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let held = lock(&path).unwrap();
        let other = std::fs::File::options().write(true).open(dir.path().join("c.toml.lock")).unwrap();
        assert!(other.try_lock().is_err(), "held");
        drop(held);
        assert!(other.try_lock().is_ok(), "released when dropped");
    }
}
