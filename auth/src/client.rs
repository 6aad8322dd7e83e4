//! What the gateway uses to enforce auth: [`AuthClient`] asks the auth service (over its
//! gRPC API) what a credential may do and caches positive answers for a short TTL, so a
//! revoked key stops working within that TTL; [`RateLimits`] holds one token bucket per
//! API key (its own limit) or user (the default limit).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use vectron_model::status::{WireError, from_status};
use vectron_proto::v1 as pb;
use vectron_proto::v1::auth_service_client::AuthServiceClient;

use crate::keys::{Access, Scope};

/// A credential as presented by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Bearer(String),
    ApiKey(String),
}

/// What the auth service granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub access: Access,
    /// The key's own limit; `None`: the gateway's default.
    pub rate_limit_per_sec: Option<u32>,
    /// Set for API keys.
    pub key_id: Option<String>,
}

impl Grant {
    /// Whom the rate limit counts against: the key, or the user.
    pub fn limit_key(&self) -> String {
        match &self.key_id {
            Some(k) => format!("key:{k}"),
            None => format!("user:{}", self.access.principal),
        }
    }
}

/// Most cached grants; past it, expired ones are dropped, then all.
const MAX_CACHED: usize = 50_000;

/// Credential fingerprint (SHA-256) → the grant and until when it may be reused.
type GrantCache = HashMap<[u8; 32], (Grant, Instant)>;

/// A caching client of the auth service.
#[derive(Debug, Clone)]
pub struct AuthClient {
    client: AuthServiceClient<Channel>,
    ttl: Duration,
    cache: Arc<Mutex<GrantCache>>,
}

fn scope_from_pb(raw: i32) -> Option<Scope> {
    match pb::Scope::try_from(raw).ok()? {
        pb::Scope::Read => Some(Scope::Read),
        pb::Scope::Write => Some(Scope::Write),
        pb::Scope::Admin => Some(Scope::Admin),
        pb::Scope::Unspecified => None,
    }
}

impl AuthClient {
    /// `ttl`: how long a positive answer is reused (and so how long a revoked key may
    /// still pass).
    pub fn new(channel: Channel, ttl: Duration) -> AuthClient {
        AuthClient { client: AuthServiceClient::new(channel), ttl, cache: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// The auth service's own API (for calls made on a caller's behalf).
    pub fn service(&self) -> AuthServiceClient<Channel> {
        self.client.clone()
    }

    /// What `credential` may do. Failures are not cached.
    pub async fn authenticate(&self, credential: &Credential) -> Result<Grant, WireError> {
        let (raw, cred) = match credential {
            Credential::Bearer(t) => (t, pb::authenticate_request::Credential::BearerToken(t.clone())),
            Credential::ApiKey(k) => (k, pb::authenticate_request::Credential::ApiKey(k.clone())),
        };
        let fingerprint: [u8; 32] = Sha256::digest(raw.as_bytes()).into();
        let now = Instant::now();
        if let Some((grant, until)) = self.cache.lock().get(&fingerprint)
            && *until > now
        {
            return Ok(grant.clone());
        }
        let reply = self
            .client
            .clone()
            .authenticate(pb::AuthenticateRequest { credential: Some(cred) })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        let scope = scope_from_pb(reply.scope)
            .ok_or_else(|| WireError::new(pb::ErrorCode::Internal, "auth service granted no scope", false))?;
        let grant = Grant {
            access: Access {
                principal: reply.principal,
                scope,
                collections: if reply.collections.is_empty() { None } else { Some(reply.collections) },
            },
            rate_limit_per_sec: (reply.rate_limit_per_sec > 0).then_some(reply.rate_limit_per_sec),
            key_id: (!reply.key_id.is_empty()).then_some(reply.key_id),
        };
        // Never cache past a token's own expiry.
        let mut until = now + self.ttl;
        if reply.expires_at > 0 {
            let unix_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let left = Duration::from_secs(reply.expires_at).saturating_sub(unix_now);
            until = until.min(now + left);
        }
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, u)| *u > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(fingerprint, (grant.clone(), until));
        Ok(grant)
    }
}

/// Token buckets per key or user: `limit` requests per second, bursts up to `limit`.
#[derive(Debug)]
pub struct RateLimits {
    /// The limit of keys and users without one of their own (`None`: unlimited).
    default_per_sec: Option<NonZeroU32>,
    limiters: Mutex<HashMap<String, (NonZeroU32, Arc<DefaultDirectRateLimiter>)>>,
}

impl RateLimits {
    pub fn new(default_per_sec: Option<NonZeroU32>) -> RateLimits {
        RateLimits { default_per_sec, limiters: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `grant`; when there is none, says how long to wait.
    pub fn check(&self, grant: &Grant) -> Result<(), Duration> {
        let Some(limit) = grant.rate_limit_per_sec.and_then(NonZeroU32::new).or(self.default_per_sec) else {
            return Ok(());
        };
        let limiter = {
            let mut limiters = self.limiters.lock();
            let entry = limiters
                .entry(grant.limit_key())
                .or_insert_with(|| (limit, Arc::new(RateLimiter::direct(Quota::per_second(limit)))));
            // A changed limit takes effect with a fresh bucket.
            if entry.0 != limit {
                *entry = (limit, Arc::new(RateLimiter::direct(Quota::per_second(limit))));
            }
            entry.1.clone()
        };
        limiter.check().map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}
