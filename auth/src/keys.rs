//! API keys: `vx_<key id>_<secret>`. The secret is shown once, at creation; the store
//! keeps only its SHA-256 (a 256-bit random secret needs no slow hash), compared in
//! constant time. Keys carry scopes (read ⊂ write ⊂ admin), optionally limited to named
//! collections, and an optional rate limit. Records live at `keys/<key id>`.
//!
//! A key acts for its owner and never grants more than the owner holds now: the auth
//! service checks, on every validation, that the owner still exists and caps the key's
//! scope at the owner's current role (see `service`).

use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{AuthError, Result};
use crate::store::KvStore;
use crate::{decode_record, now_ms};

/// What a credential allows. Each level includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    key_id: String,
    owner: String,
    /// Hex SHA-256 of the secret part.
    secret_sha256: String,
    scope: Scope,
    /// `None`: every collection.
    collections: Option<Vec<String>>,
    /// Requests per second allowed to this key; `None`: the gateway's default.
    rate_limit_per_sec: Option<u32>,
    created_at_ms: u64,
    revoked: bool,
}

/// An API key as shown to callers: no secret, no hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub key_id: String,
    pub owner: String,
    pub scope: Scope,
    pub collections: Option<Vec<String>>,
    pub rate_limit_per_sec: Option<u32>,
    pub created_at_ms: u64,
    pub revoked: bool,
}

impl From<&KeyRecord> for ApiKeyInfo {
    fn from(r: &KeyRecord) -> Self {
        ApiKeyInfo {
            key_id: r.key_id.clone(),
            owner: r.owner.clone(),
            scope: r.scope,
            collections: r.collections.clone(),
            rate_limit_per_sec: r.rate_limit_per_sec,
            created_at_ms: r.created_at_ms,
            revoked: r.revoked,
        }
    }
}

/// A freshly created key: the only time its secret exists outside the client.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub info: ApiKeyInfo,
    /// The whole key to present: `vx_<key id>_<secret>`.
    pub key: String,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub owner: String,
    pub scope: Scope,
    pub collections: Option<Vec<String>>,
    pub rate_limit_per_sec: Option<u32>,
}

const KEY_PREFIX: &str = "vx_";

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The API keys.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    store: Arc<dyn KvStore>,
}

fn key(key_id: &str) -> String {
    format!("keys/{key_id}")
}

impl ApiKeys {
    pub fn new(store: Arc<dyn KvStore>) -> ApiKeys {
        ApiKeys { store }
    }

    /// Creates a key and returns it with its secret (shown once).
    pub async fn create(&self, spec: KeySpec) -> Result<NewApiKey> {
        crate::users::validate_username(&spec.owner)?;
        if let Some(cs) = &spec.collections {
            if cs.is_empty() {
                return Err(AuthError::InvalidArgument {
                    reason: "a key's collection list is absent or non-empty".into(),
                });
            }
            for c in cs {
                vectron_model::convert::validate_collection_name(c)
                    .map_err(|e| AuthError::InvalidArgument { reason: e.to_string() })?;
            }
        }
        if spec.rate_limit_per_sec == Some(0) {
            return Err(AuthError::InvalidArgument { reason: "rate limit must be positive".into() });
        }
        loop {
            let key_id = random_hex(8);
            let secret = random_hex(32);
            let record = KeyRecord {
                key_id: key_id.clone(),
                owner: spec.owner.clone(),
                secret_sha256: sha256_hex(&secret),
                scope: spec.scope,
                collections: spec.collections.clone(),
                rate_limit_per_sec: spec.rate_limit_per_sec,
                created_at_ms: now_ms(),
                revoked: false,
            };
            let bytes = serde_json::to_vec(&record).expect("key record serialises");
            // A key id collision (1 in 2^64) just draws again.
            if self.store.create(&key(&key_id), bytes).await?.is_some() {
                return Ok(NewApiKey {
                    info: ApiKeyInfo::from(&record),
                    key: format!("{KEY_PREFIX}{key_id}_{secret}"),
                });
            }
        }
    }

    /// Checks a presented key. Malformed, unknown, wrong-secret and revoked keys all
    /// give `Unauthenticated`.
    pub async fn validate(&self, presented: &str) -> Result<ApiKeyInfo> {
        let Some((key_id, secret)) = presented.strip_prefix(KEY_PREFIX).and_then(|rest| rest.split_once('_')) else {
            return Err(AuthError::Unauthenticated);
        };
        if key_id.len() != 16 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::Unauthenticated);
        }
        let Some(stored) = self.store.get(&key(key_id)).await? else {
            return Err(AuthError::Unauthenticated);
        };
        let record: KeyRecord = decode_record(&key(key_id), &stored.value)?;
        let matches: bool = sha256_hex(secret).as_bytes().ct_eq(record.secret_sha256.as_bytes()).into();
        if !matches || record.revoked {
            return Err(AuthError::Unauthenticated);
        }
        Ok(ApiKeyInfo::from(&record))
    }

    /// One key, without its secret.
    pub async fn get(&self, key_id: &str) -> Result<ApiKeyInfo> {
        match self.store.get(&key(key_id)).await? {
            Some(stored) => Ok(ApiKeyInfo::from(&decode_record::<KeyRecord>(&key(key_id), &stored.value)?)),
            None => Err(AuthError::KeyNotFound { key_id: key_id.to_owned() }),
        }
    }

    /// Keys, all or one owner's, without secrets.
    pub async fn list(&self, owner: Option<&str>) -> Result<Vec<ApiKeyInfo>> {
        let mut out = Vec::new();
        for (k, v) in self.store.list("keys/").await? {
            let r: KeyRecord = decode_record(&k, &v.value)?;
            if owner.is_none_or(|o| o == r.owner) {
                out.push(ApiKeyInfo::from(&r));
            }
        }
        Ok(out)
    }

    /// Revokes every key of `owner` (when the user is deleted); returns how many were
    /// still active.
    pub async fn revoke_all_of(&self, owner: &str) -> Result<usize> {
        let mut revoked = 0;
        for k in self.list(Some(owner)).await? {
            if !k.revoked {
                self.revoke(&k.key_id).await?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Revokes a key for good (idempotent).
    pub async fn revoke(&self, key_id: &str) -> Result<ApiKeyInfo> {
        loop {
            let Some(stored) = self.store.get(&key(key_id)).await? else {
                return Err(AuthError::KeyNotFound { key_id: key_id.to_owned() });
            };
            let mut record: KeyRecord = decode_record(&key(key_id), &stored.value)?;
            if record.revoked {
                return Ok(ApiKeyInfo::from(&record));
            }
            record.revoked = true;
            let bytes = serde_json::to_vec(&record).expect("key record serialises");
            if self.store.update(&key(key_id), stored.version, bytes).await?.is_some() {
                return Ok(ApiKeyInfo::from(&record));
            }
        }
    }
}

/// What an authenticated request may do: the gateway puts one in each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Who: a username (a key acts for its owner).
    pub principal: String,
    pub scope: Scope,
    /// `None`: every collection.
    pub collections: Option<Vec<String>>,
}

impl Access {
    /// Whether this access allows `needed` on `collection` (`None`: a cluster-wide
    /// operation, which a collection-limited credential never gets).
    pub fn permits(&self, needed: Scope, collection: Option<&str>) -> bool {
        if self.scope < needed {
            return false;
        }
        match (&self.collections, collection) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(allowed), Some(c)) => allowed.iter().any(|a| a == c),
        }
    }
}

impl Access {
    /// This access, granting at most `ceiling`.
    pub fn capped_at(mut self, ceiling: Scope) -> Access {
        self.scope = self.scope.min(ceiling);
        self
    }
}

impl From<&ApiKeyInfo> for Access {
    fn from(k: &ApiKeyInfo) -> Self {
        Access { principal: k.owner.clone(), scope: k.scope, collections: k.collections.clone() }
    }
}
