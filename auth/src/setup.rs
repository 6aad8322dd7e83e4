//! What an auth process does before it serves: open its store (etcd, or the embedded
//! store), load its signing keys, and make sure there is someone to log in as.
//!
//! - [`open_store`]: etcd under a prefix, or the embedded RocksDB store.
//! - [`signing_key_or_create`]: `vectron dev`'s signing secret, generated once and kept
//!   (mode 0600) so tokens survive restarts; production reads a mounted secret with
//!   [`SigningKey::from_file`](crate::tokens::SigningKey::from_file).
//! - [`admin_key_file`]: `vectron dev`'s admin API key, created on first start and
//!   stored (mode 0600) for the operator and the examples.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::RngCore;

use crate::error::{AuthError, Result};
use crate::keys::{ApiKeys, KeySpec, Scope};
use crate::store::{EmbeddedStore, EtcdStore, KvStore};
use crate::tokens::SigningKey;

/// Where auth records live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// etcd at `endpoints`, every key under `prefix` (clusters: any number of auth
    /// processes share it).
    Etcd { endpoints: Vec<String>, prefix: String },
    /// A RocksDB directory owned by this one process (`vectron dev`, single-instance
    /// deployments).
    Embedded { path: PathBuf },
}

/// Opens the store at `location`.
pub async fn open_store(location: &StoreLocation) -> Result<Arc<dyn KvStore>> {
    Ok(match location {
        StoreLocation::Etcd { endpoints, prefix } => Arc::new(EtcdStore::connect(endpoints, prefix).await?),
        StoreLocation::Embedded { path } => {
            std::fs::create_dir_all(path).map_err(|e| io_error("creating", path, e))?;
            Arc::new(EmbeddedStore::open(path)?)
        }
    })
}

fn io_error(action: &str, path: &Path, e: std::io::Error) -> AuthError {
    AuthError::StoreUnavailable { reason: format!("{action} {}: {e}", path.display()) }
}

/// Writes `contents` to a new file at `path` readable by its owner only; fails if the
/// file exists. Written to a temporary name first, so a crash never leaves half a secret.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_error("creating", &tmp, e))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(|e| io_error("writing", &tmp, e))?;
    // A hard link fails if `path` exists (rename would replace it).
    std::fs::hard_link(&tmp, path).map_err(|e| io_error("creating", path, e))?;
    std::fs::remove_file(&tmp).map_err(|e| io_error("removing", &tmp, e))
}

/// The signing key kept at `path`, created with a random 256-bit secret if absent.
pub fn signing_key_or_create(kid: &str, path: &Path) -> Result<SigningKey> {
    if !path.exists() {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        write_private(path, hex::encode(secret).as_bytes())?;
    }
    SigningKey::from_file(kid, path)
}

/// The admin API key kept at `path`. When the file is missing, creates an admin key for
/// `owner` (who must exist), stores it there (mode 0600) and returns it as `(key, true)`;
/// otherwise returns the stored key as `(key, false)`.
pub async fn admin_key_file(store: Arc<dyn KvStore>, owner: &str, path: &Path) -> Result<(String, bool)> {
    if path.exists() {
        let key = std::fs::read_to_string(path).map_err(|e| io_error("reading", path, e))?;
        return Ok((key.trim().to_owned(), false));
    }
    let spec = KeySpec { owner: owner.to_owned(), scope: Scope::Admin, collections: None, rate_limit_per_sec: None };
    let created = ApiKeys::new(store).create(spec).await?;
    write_private(path, format!("{}\n", created.key).as_bytes())?;
    Ok((created.key, true))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::service::bootstrap_admin;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_signing_secret_is_created_private_once_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth/jwt.secret");
        signing_key_or_create("k1", &path).unwrap();
        let first = std::fs::read(&path).unwrap();
        assert_eq!(first.len(), 64, "256 bits, hex");
        assert_eq!(mode(&path), 0o600);
        signing_key_or_create("k1", &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first, "an existing secret is never replaced");
        std::fs::write(&path, "short").unwrap();
        assert!(signing_key_or_create("k1", &path).is_err(), "a short secret is refused");
    }

    #[tokio::test]
    async fn the_admin_key_is_created_on_first_start_only_and_works() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&StoreLocation::Embedded { path: dir.path().join("store") }).await.unwrap();
        bootstrap_admin(store.clone(), "admin", Some("a long enough password")).await.unwrap();
        let path = dir.path().join("admin.key");
        let (key, created) = admin_key_file(store.clone(), "admin", &path).await.unwrap();
        assert!(created);
        assert_eq!(mode(&path), 0o600);
        let info = ApiKeys::new(store.clone()).validate(&key).await.unwrap();
        assert_eq!((info.owner.as_str(), info.scope), ("admin", Scope::Admin));
        let (again, created) = admin_key_file(store.clone(), "admin", &path).await.unwrap();
        assert_eq!((again.as_str(), created), (key.as_str(), false), "the stored key is reused");
        assert_eq!(ApiKeys::new(store).list(None).await.unwrap().len(), 1, "no second key");
    }
}
