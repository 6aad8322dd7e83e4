//! What an auth process does before it serves: open its store (etcd, or the embedded
//! store), load its signing keys, and make sure there is someone to log in as.
//!
//! - [`open_store`]: etcd under a prefix, or the embedded RocksDB store.
//! - [`signing_key_or_create`]: `vectron dev`'s signing secret, generated once and kept
//!   (mode 0600) so tokens survive restarts; production reads a mounted secret with
//!   [`SigningKey::from_file`](crate::tokens::SigningKey::from_file).
//! - [`admin_key_file`]: `vectron dev`'s admin API key, created on first start and
//!   stored (mode 0600) for the operator and the examples.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vectron_common::secret_file;

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

/// The signing key kept at `path`, created with a random 256-bit secret if absent.
pub fn signing_key_or_create(kid: &str, path: &Path) -> Result<SigningKey> {
    let secret = secret_file::read_or_create(path).map_err(|reason| AuthError::StoreUnavailable { reason })?;
    SigningKey::new(kid, &secret)
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
    let keys = ApiKeys::new(store);
    let created = keys.create(spec).await?;
    let written = secret_file::write_private(path, format!("{}\n", created.key).as_bytes())
        .map_err(|reason| AuthError::StoreUnavailable { reason })?;
    if !written {
        // Another process wrote the file first: keep its key, leave no unknown admin key.
        keys.revoke(&created.info.key_id).await?;
        let key = std::fs::read_to_string(path).map_err(|e| io_error("reading", path, e))?;
        return Ok((key.trim().to_owned(), false));
    }
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
        assert_eq!(first.len(), 65, "256 bits, hex, newline");
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
