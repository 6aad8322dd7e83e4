//! User accounts: usernames, argon2 password hashes (never returned or logged), roles.
//! Records live at `users/<username>` in the [`KvStore`]; creation is create-if-absent,
//! so a username is taken exactly once even under concurrent registration.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use serde::{Deserialize, Serialize};

use crate::error::{AuthError, Result};
use crate::store::KvStore;
use crate::{decode_record, now_ms};

/// What a user may do everywhere (API keys narrow it further).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users, keys, collections and the cluster.
    Admin,
    /// Reads and writes data.
    User,
}

/// A user as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecord {
    username: String,
    /// PHC string (`$argon2id$…`), salt and parameters included.
    password_hash: String,
    role: Role,
    created_at_ms: u64,
    /// Tokens carry the epoch they were issued in and are refused once it changes: a
    /// password change or reset draws a new one. Random at creation, so a user deleted
    /// and created again under the same name does not inherit the old tokens.
    #[serde(default)]
    token_epoch: u64,
}

/// A user as shown to callers: no password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    pub role: Role,
    pub created_at_ms: u64,
    /// See `UserRecord::token_epoch`.
    pub token_epoch: u64,
}

impl From<&UserRecord> for UserInfo {
    fn from(r: &UserRecord) -> Self {
        UserInfo {
            username: r.username.clone(),
            role: r.role,
            created_at_ms: r.created_at_ms,
            token_epoch: r.token_epoch,
        }
    }
}

fn new_epoch() -> u64 {
    rand::random()
}

/// Password lengths, in characters (as JSON Schema's `minLength` counts them).
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Checks a username: 1–64 of `[A-Za-z0-9_.@-]`.
pub fn validate_username(username: &str) -> Result<()> {
    let ok = (1..=64).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidArgument { reason: "username must be 1-64 of A-Z a-z 0-9 _ . @ -".into() })
    }
}

fn validate_password(password: &str) -> Result<()> {
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(AuthError::InvalidArgument {
            reason: format!("password must be {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters"),
        })
    }
}

/// Hashes on a blocking thread: argon2 is deliberately slow.
async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AuthError::InvalidArgument { reason: format!("cannot hash password: {e}") })
    })
    .await
    .map_err(|e| AuthError::StoreUnavailable { reason: format!("hashing task failed: {e}") })?
}

/// Verifies on a blocking thread. `hash` of `None` still does the work (for an unknown
/// user), so response time does not reveal which usernames exist.
async fn verify_password(password: &str, hash: Option<String>) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| {
            DUMMY_HASH
                .get_or_init(|| {
                    Argon2::default().hash_password(b"not a real password").map(|h| h.to_string()).unwrap_or_default()
                })
                .clone()
        });
        let ok = PasswordHash::new(&hash).map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        ok.unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The user accounts.
#[derive(Debug, Clone)]
pub struct Users {
    store: Arc<dyn KvStore>,
}

fn key(username: &str) -> String {
    format!("users/{username}")
}

impl Users {
    pub fn new(store: Arc<dyn KvStore>) -> Users {
        Users { store }
    }

    /// Creates a user; fails with `UserExists` if the name is taken.
    pub async fn create(&self, username: &str, password: &str, role: Role) -> Result<UserInfo> {
        validate_username(username)?;
        validate_password(password)?;
        let record = UserRecord {
            username: username.to_owned(),
            password_hash: hash_password(password).await?,
            role,
            created_at_ms: now_ms(),
            token_epoch: new_epoch(),
        };
        let bytes = serde_json::to_vec(&record).expect("user record serialises");
        match self.store.create(&key(username), bytes).await? {
            Some(_) => Ok(UserInfo::from(&record)),
            None => Err(AuthError::UserExists { username: username.to_owned() }),
        }
    }

    async fn load(&self, username: &str) -> Result<Option<(UserRecord, u64)>> {
        validate_username(username)?;
        let k = key(username);
        match self.store.get(&k).await? {
            None => Ok(None),
            Some(v) => Ok(Some((decode_record(&k, &v.value)?, v.version))),
        }
    }

    pub async fn get(&self, username: &str) -> Result<UserInfo> {
        match self.load(username).await? {
            Some((r, _)) => Ok(UserInfo::from(&r)),
            None => Err(AuthError::UserNotFound { username: username.to_owned() }),
        }
    }

    pub async fn list(&self) -> Result<Vec<UserInfo>> {
        self.store
            .list("users/")
            .await?
            .iter()
            .map(|(k, v)| decode_record::<UserRecord>(k, &v.value).map(|r| UserInfo::from(&r)))
            .collect()
    }

    /// Checks a password. Unknown user and wrong password both give `Unauthenticated`.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<UserInfo> {
        let record = match validate_username(username) {
            Ok(()) => self.load(username).await?,
            Err(_) => None,
        };
        let hash = record.as_ref().map(|(r, _)| r.password_hash.clone());
        if verify_password(password, hash).await
            && let Some((r, _)) = record
        {
            return Ok(UserInfo::from(&r));
        }
        Err(AuthError::Unauthenticated)
    }

    /// Changes a password after checking the old one.
    pub async fn change_password(&self, username: &str, old: &str, new: &str) -> Result<()> {
        self.authenticate(username, old).await?;
        self.set_password(username, new).await
    }

    /// Sets a password without checking the old one (admins). Either way every token
    /// issued before stops working (a new token epoch).
    pub async fn set_password(&self, username: &str, new: &str) -> Result<()> {
        validate_password(new)?;
        let hash = hash_password(new).await?;
        let epoch = new_epoch();
        self.modify(username, |r| {
            r.password_hash = hash.clone();
            r.token_epoch = epoch;
        })
        .await
        .map(|_| ())
    }

    pub async fn set_role(&self, username: &str, role: Role) -> Result<UserInfo> {
        self.modify(username, |r| r.role = role).await
    }

    pub async fn delete(&self, username: &str) -> Result<()> {
        loop {
            let Some((_, version)) = self.load(username).await? else {
                return Err(AuthError::UserNotFound { username: username.to_owned() });
            };
            if self.store.delete(&key(username), version).await? {
                return Ok(());
            }
        }
    }

    /// Read-modify-write with compare-and-set, retried on concurrent changes.
    async fn modify(&self, username: &str, change: impl Fn(&mut UserRecord)) -> Result<UserInfo> {
        loop {
            let Some((mut record, version)) = self.load(username).await? else {
                return Err(AuthError::UserNotFound { username: username.to_owned() });
            };
            change(&mut record);
            let bytes = serde_json::to_vec(&record).expect("user record serialises");
            if self.store.update(&key(username), version, bytes).await?.is_some() {
                return Ok(UserInfo::from(&record));
            }
        }
    }
}
