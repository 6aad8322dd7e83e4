//! What the gateway uses to enforce auth: [`AuthClient`] asks the auth service (over its
//! gRPC API, with the cluster token) what a credential may do and caches positive
//! answers for a short TTL, so a revoked key, a deleted or demoted owner or a changed
//! password takes effect within that TTL; [`RateLimits`] holds one token bucket per user
//! (the default limit, covering every key the user owns and their tokens) and one per
//! API key that has a limit of its own (which narrows, never widens, its owner's).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use vectron_common::cluster_auth::{AttachToken, ClusterChannel};
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
    fn user_bucket(&self) -> String {
        format!("user:{}", self.access.principal)
    }

    fn key_bucket(&self) -> Option<String> {
        self.key_id.as_ref().map(|k| format!("key:{k}"))
    }
}

/// Most cached grants; past it, expired ones are dropped, then all.
const MAX_CACHED: usize = 50_000;

/// Credential fingerprint (SHA-256) → the grant and until when it may be reused.
type GrantCache = HashMap<[u8; 32], (Grant, Instant)>;

/// A caching client of the auth service.
#[derive(Debug, Clone)]
pub struct AuthClient {
    client: AuthServiceClient<ClusterChannel>,
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
        let channel = tonic::service::interceptor::InterceptedService::new(
            vectron_common::faults::FaultyChannel::plain(channel),
            AttachToken::installed(),
        );
        AuthClient { client: AuthServiceClient::new(channel), ttl, cache: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// The auth service's own API (for calls made on a caller's behalf).
    pub fn service(&self) -> AuthServiceClient<ClusterChannel> {
        self.client.clone()
    }

    /// What `credential` may do, presented by `client` (named to the auth service, which
    /// throttles failures per client). Failures are not cached.
    pub async fn authenticate(&self, credential: &Credential, client: Option<IpAddr>) -> Result<Grant, WireError> {
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
        let mut request = tonic::Request::new(pb::AuthenticateRequest { credential: Some(cred) });
        if let Some(ip) = client.and_then(|ip| tonic::metadata::AsciiMetadataValue::try_from(ip.to_string()).ok()) {
            request.metadata_mut().insert(crate::service::FORWARDED_FOR_HEADER, ip);
        }
        let reply = self.client.clone().authenticate(request).await.map_err(|s| from_status(&s))?.into_inner();
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

/// Why [`RateLimits::take`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limited {
    /// Out of tokens: `bucket` (`user:…` or `key:…`) has one again after `wait`.
    Wait { bucket: String, wait: Duration },
    /// More requests at once than `bucket` ever holds (its limit per second): waiting
    /// cannot help; send fewer at a time.
    TooMany { bucket: String, limit: u32, asked: u32 },
}

impl Limited {
    /// As the error the caller sees (RESOURCE_EXHAUSTED; with `retry-after` when waiting
    /// helps).
    pub fn to_wire(&self) -> WireError {
        match self {
            Limited::Wait { bucket, wait } => {
                WireError::new(pb::ErrorCode::ResourceExhausted, format!("rate limit of {bucket} exceeded"), true)
                    .with_retry_after(*wait)
            }
            Limited::TooMany { bucket, limit, asked } => WireError::new(
                pb::ErrorCode::ResourceExhausted,
                format!("{asked} requests at once exceed the rate limit of {bucket} ({limit} per second)"),
                false,
            ),
        }
    }
}

type Limiter = (NonZeroU32, Arc<DefaultDirectRateLimiter>);

/// Token buckets (see the module docs): `limit` requests per second, bursts up to
/// `limit`. A request takes a token from its user's bucket (when there is a default
/// limit) and from its key's (when the key has a limit of its own); a batch takes one
/// per search.
#[derive(Debug)]
pub struct RateLimits {
    /// The limit of every user (`None`: unlimited).
    default_per_sec: Option<NonZeroU32>,
    limiters: Mutex<HashMap<String, Limiter>>,
}

/// Most tracked buckets; past it, full ones are dropped, then all.
const MAX_BUCKETS: usize = 100_000;

impl RateLimits {
    pub fn new(default_per_sec: Option<NonZeroU32>) -> RateLimits {
        RateLimits { default_per_sec, limiters: Mutex::new(HashMap::new()) }
    }

    fn limiter(&self, bucket: &str, limit: NonZeroU32) -> Arc<DefaultDirectRateLimiter> {
        let mut limiters = self.limiters.lock();
        if limiters.len() >= MAX_BUCKETS && !limiters.contains_key(bucket) {
            // A bucket with its whole burst available holds no information.
            limiters.retain(|_, (limit, l)| l.check_n(*limit).is_err());
            if limiters.len() >= MAX_BUCKETS {
                limiters.clear();
            }
        }
        let entry = limiters
            .entry(bucket.to_owned())
            .or_insert_with(|| (limit, Arc::new(RateLimiter::direct(Quota::per_second(limit)))));
        // A changed limit takes effect with a fresh bucket.
        if entry.0 != limit {
            *entry = (limit, Arc::new(RateLimiter::direct(Quota::per_second(limit))));
        }
        entry.1.clone()
    }

    fn take_from(&self, bucket: String, limit: NonZeroU32, n: NonZeroU32) -> Result<(), Limited> {
        match self.limiter(&bucket, limit).check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                Err(Limited::Wait { bucket, wait: not_until.wait_time_from(DefaultClock::default().now()) })
            }
            Err(_) => Err(Limited::TooMany { bucket, limit: limit.get(), asked: n.get() }),
        }
    }

    /// Takes one token for `grant`.
    pub fn check(&self, grant: &Grant) -> Result<(), Limited> {
        self.take(grant, 1)
    }

    /// The buckets a grant draws from, narrowest first: the key's own (a leaked key
    /// refused by its own limit then costs its owner nothing), then the user's.
    fn buckets(&self, grant: &Grant) -> impl Iterator<Item = (String, NonZeroU32)> {
        let key = grant.key_bucket().zip(grant.rate_limit_per_sec.and_then(NonZeroU32::new));
        let user = self.default_per_sec.map(|limit| (grant.user_bucket(), limit));
        key.into_iter().chain(user)
    }

    /// Takes `n` tokens for `grant` (a batch of `n` requests); `n = 0` takes none.
    pub fn take(&self, grant: &Grant, n: u32) -> Result<(), Limited> {
        let Some(n) = NonZeroU32::new(n) else { return Ok(()) };
        for (bucket, limit) in self.buckets(grant) {
            self.take_from(bucket, limit, n)?;
        }
        Ok(())
    }

    /// Takes the rest of a batch of `total` requests whose admission took one token: a
    /// batch larger than a bucket ever holds is refused as such (waiting cannot help).
    pub fn take_rest_of_batch(&self, grant: &Grant, total: u32) -> Result<(), Limited> {
        for (bucket, limit) in self.buckets(grant) {
            if total > limit.get() {
                return Err(Limited::TooMany { bucket, limit: limit.get(), asked: total });
            }
        }
        self.take(grant, total.saturating_sub(1))
    }
}
