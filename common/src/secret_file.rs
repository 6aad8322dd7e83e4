//! Files holding secrets (signing keys, the cluster secret, `vectron dev`'s admin key):
//! written owner-only (mode 0600) under a temporary name first, so a crash never leaves
//! half a secret, and never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn fail(action: &str, path: &Path, e: std::io::Error) -> String {
    format!("{action} {}: {e}", path.display())
}

/// Writes `contents` to a new owner-only file at `path`. Returns false, writing nothing,
/// if `path` exists.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<bool, String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail("creating", dir, e))?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail("creating", &tmp, e))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(|e| fail("writing", &tmp, e))?;
    // A hard link fails if `path` exists (a rename would replace it).
    let linked = match std::fs::hard_link(&tmp, path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(fail("creating", path, e)),
    };
    std::fs::remove_file(&tmp).map_err(|e| fail("removing", &tmp, e))?;
    Ok(linked)
}

/// Reads a secret file (one trailing newline ignored).
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| fail("cannot read secret file", path, e))?;
    let secret = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    Ok(secret.strip_suffix(b"\r").unwrap_or(secret).to_vec())
}

/// The secret in the file at `path`, created (random 256 bits, as hex) if absent.
pub fn read_or_create(path: &Path) -> Result<Vec<u8>, String> {
    if !path.exists() {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        write_private(path, format!("{}\n", hex::encode(secret)).as_bytes())?;
    }
    read(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secrets_are_created_private_once_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cluster.secret");
        let first = read_or_create(&path).unwrap();
        assert_eq!(first.len(), 64, "256 bits, hex");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_or_create(&path).unwrap(), first, "kept");
        assert!(!write_private(&path, b"other").unwrap(), "never overwritten");
        assert_eq!(read(&path).unwrap(), first);
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 1, "no temporary left");
    }
}
