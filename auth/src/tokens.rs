//! JWT access and refresh tokens (HS256).
//!
//! - Signing keys have ids (`kid` in the header) so they can rotate: tokens are signed
//!   with the current key and verified with whichever key their `kid` names. A secret
//!   shorter than 32 bytes is refused when the keyring is built.
//! - Access tokens are short-lived and verified without any store access.
//! - Refresh tokens rotate: each refresh consumes the token (compare-and-set
//!   active → used at `refresh/<family>/<jti>`) and issues a new pair in the same family.
//!   Presenting a used token again means it leaked: the whole family is revoked. Logout
//!   revokes the family too.
//! - Both carry the user's token epoch (`ep`): a password change or reset draws a new
//!   one, so every token issued before is refused — refresh tokens at once, access
//!   tokens by [`Tokens::verify_access_current`], which the auth service's
//!   `Authenticate` uses (and which also reads the user's current role, so a demotion
//!   takes effect at once).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};

use crate::error::{AuthError, Result};
use crate::store::KvStore;
use crate::users::{Role, UserInfo, Users};
use crate::{decode_record, now_ms};

/// Shortest accepted signing secret.
pub const MIN_SECRET_BYTES: usize = 32;

/// One HMAC signing key.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn new(kid: &str, secret: &[u8]) -> Result<SigningKey> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::InvalidArgument {
                reason: format!(
                    "JWT signing secret {kid:?} is {} bytes; at least {MIN_SECRET_BYTES} are required",
                    secret.len()
                ),
            });
        }
        if kid.is_empty() {
            return Err(AuthError::InvalidArgument { reason: "JWT key id is empty".into() });
        }
        Ok(SigningKey { kid: kid.to_owned(), secret: secret.to_vec() })
    }

    /// Reads the secret from a file (a mounted Kubernetes secret, say); one trailing
    /// newline is ignored.
    pub fn from_file(kid: &str, path: &std::path::Path) -> Result<SigningKey> {
        let secret = vectron_common::secret_file::read(path).map_err(|reason| AuthError::InvalidArgument { reason })?;
        SigningKey::new(kid, &secret)
    }
}

/// How tokens are made.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub issuer: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Signs new tokens.
    pub current_key: SigningKey,
    /// Still accepted for verification (tokens signed before a rotation).
    pub previous_keys: Vec<SigningKey>,
}

impl TokenConfig {
    pub fn new(current_key: SigningKey) -> TokenConfig {
        TokenConfig {
            issuer: "vectron".into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            current_key,
            previous_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
    pub typ: TokenType,
    /// Refresh family: every token rotated from one login.
    pub fam: String,
    /// The user's token epoch when this was issued.
    #[serde(default)]
    pub ep: u64,
}

/// The two tokens a login or refresh returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds since the epoch.
    pub access_expires_at: u64,
    pub refresh_expires_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RefreshState {
    Active,
    Used,
    Revoked,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefreshRecord {
    username: String,
    state: RefreshState,
    expires_at: u64,
}

fn refresh_key(fam: &str, jti: &str) -> String {
    format!("refresh/{fam}/{jti}")
}

fn new_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Issues, verifies and rotates tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    store: Arc<dyn KvStore>,
    users: Users,
    config: TokenConfig,
}

impl Tokens {
    pub fn new(store: Arc<dyn KvStore>, config: TokenConfig) -> Tokens {
        Tokens { users: Users::new(store.clone()), store, config }
    }

    /// Checks a password and starts a new refresh family.
    pub async fn login(&self, username: &str, password: &str) -> Result<TokenPair> {
        let user = self.users.authenticate(username, password).await?;
        self.issue(&user, &new_id()).await
    }

    async fn issue(&self, user: &UserInfo, fam: &str) -> Result<TokenPair> {
        let (username, role) = (user.username.as_str(), user.role);
        let now = now_ms() / 1000;
        let claims = |typ, ttl: Duration| Claims {
            sub: username.to_owned(),
            role,
            iss: self.config.issuer.clone(),
            iat: now,
            exp: now + ttl.as_secs(),
            jti: new_id(),
            typ,
            fam: fam.to_owned(),
            ep: user.token_epoch,
        };
        let access = claims(TokenType::Access, self.config.access_ttl);
        let refresh = claims(TokenType::Refresh, self.config.refresh_ttl);
        let record =
            RefreshRecord { username: username.to_owned(), state: RefreshState::Active, expires_at: refresh.exp };
        let bytes = serde_json::to_vec(&record).expect("refresh record serialises");
        if self.store.create(&refresh_key(fam, &refresh.jti), bytes).await?.is_none() {
            return Err(AuthError::Conflict { key: refresh_key(fam, &refresh.jti) });
        }
        Ok(TokenPair {
            access_token: self.sign(&access)?,
            refresh_token: self.sign(&refresh)?,
            access_expires_at: access.exp,
            refresh_expires_at: refresh.exp,
        })
    }

    fn sign(&self, claims: &Claims) -> Result<String> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.config.current_key.kid.clone());
        encode(&header, claims, &EncodingKey::from_secret(&self.config.current_key.secret))
            .map_err(|e| AuthError::InvalidArgument { reason: format!("cannot sign token: {e}") })
    }

    /// Checks signature, issuer, expiry and type.
    fn verify(&self, token: &str, typ: TokenType) -> Result<Claims> {
        let header = decode_header(token).map_err(|_| AuthError::Unauthenticated)?;
        let kid = header.kid.ok_or(AuthError::Unauthenticated)?;
        let key = std::iter::once(&self.config.current_key)
            .chain(&self.config.previous_keys)
            .find(|k| k.kid == kid)
            .ok_or(AuthError::Unauthenticated)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.config.issuer]);
        validation.leeway = 0;
        let data = decode::<Claims>(token, &DecodingKey::from_secret(&key.secret), &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => AuthError::TokenExpired,
            _ => AuthError::Unauthenticated,
        })?;
        if data.claims.typ != typ {
            return Err(AuthError::Unauthenticated);
        }
        Ok(data.claims)
    }

    /// Verifies an access token's signature, issuer, expiry and type (no store access).
    pub fn verify_access(&self, token: &str) -> Result<Claims> {
        self.verify(token, TokenType::Access)
    }

    /// Verifies an access token and that its user still exists in the same token epoch;
    /// returns the user as they are now (their current role decides what they may do).
    pub async fn verify_access_current(&self, token: &str) -> Result<(Claims, UserInfo)> {
        let claims = self.verify_access(token)?;
        let user = self.current_user(&claims).await?;
        Ok((claims, user))
    }

    /// The user `claims` were issued to, if they still exist in the same token epoch.
    async fn current_user(&self, claims: &Claims) -> Result<UserInfo> {
        match self.users.get(&claims.sub).await {
            Ok(user) if user.token_epoch == claims.ep => Ok(user),
            Ok(_) | Err(AuthError::UserNotFound { .. }) | Err(AuthError::InvalidArgument { .. }) => {
                Err(AuthError::Unauthenticated)
            }
            Err(e) => Err(e),
        }
    }

    /// Consumes a refresh token and returns a new pair. A used or revoked token is
    /// refused; a used one also revokes its whole family.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let claims = self.verify(refresh_token, TokenType::Refresh)?;
        let key = refresh_key(&claims.fam, &claims.jti);
        let Some(stored) = self.store.get(&key).await? else {
            return Err(AuthError::Unauthenticated);
        };
        let mut record: RefreshRecord = decode_record(&key, &stored.value)?;
        match record.state {
            RefreshState::Active => {}
            RefreshState::Used => {
                tracing::warn!(user = %record.username, family = %claims.fam, "refresh token reused; revoking its family");
                self.revoke_family(&claims.fam).await?;
                return Err(AuthError::Unauthenticated);
            }
            RefreshState::Revoked => return Err(AuthError::Unauthenticated),
        }
        record.state = RefreshState::Used;
        let bytes = serde_json::to_vec(&record).expect("refresh record serialises");
        if self.store.update(&key, stored.version, bytes).await?.is_none() {
            // Someone else consumed it at the same moment: only one may win.
            return Err(AuthError::Unauthenticated);
        }
        // The user may have been deleted, changed role or password since the last refresh.
        let user = match self.current_user(&claims).await {
            Ok(user) => user,
            Err(AuthError::Unauthenticated) => {
                self.revoke_family(&claims.fam).await?;
                return Err(AuthError::Unauthenticated);
            }
            Err(e) => return Err(e),
        };
        self.issue(&user, &claims.fam).await
    }

    /// Logs out: revokes the refresh token's family.
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        let claims = self.verify(refresh_token, TokenType::Refresh)?;
        self.revoke_family(&claims.fam).await
    }

    async fn revoke_family(&self, fam: &str) -> Result<()> {
        for (key, stored) in self.store.list(&format!("refresh/{fam}/")).await? {
            let mut record: RefreshRecord = decode_record(&key, &stored.value)?;
            if record.state == RefreshState::Revoked {
                continue;
            }
            record.state = RefreshState::Revoked;
            let bytes = serde_json::to_vec(&record).expect("refresh record serialises");
            // A concurrent change (another revoke or a refresh) leaves it used or
            // revoked; either way it cannot be refreshed again.
            self.store.update(&key, stored.version, bytes).await?;
        }
        Ok(())
    }
}
