//! Access control for both transports.
//!
//! [`AuthLayer`] is one tower layer for the tonic server and the axum router: it reads
//! `Authorization: Bearer <jwt>` or `x-api-key: <key>`, asks the auth service what the
//! credential may do (cached briefly by [`AuthClient`], so a revoked key stops working
//! within the cache TTL), takes a token from the caller's rate-limit bucket, and puts
//! the resulting [`Access`] in the request's extensions. Failures are answered in the
//! caller's protocol: a gRPC status, or the JSON error body with 401/403/429 and
//! `retry-after`. Only health checks and log-in (whose bodies carry credentials) pass
//! without credentials.
//!
//! The layer authenticates; each operation then checks the scope it needs on the
//! collection it names with [`require`] (in [`crate::api::Api`], so both transports
//! check the same way).

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::response::IntoResponse;
use bytes::Bytes;
use tonic::transport::{Channel, Endpoint};
use tower::{Layer, Service};
use vectron_auth::client::{AuthClient, Credential, RateLimits};
use vectron_auth::service::API_KEY_HEADER;
use vectron_model::status::WireError;
use vectron_proto::v1::ErrorCode;

pub use vectron_auth::keys::{Access, Scope};

use crate::http::ApiError;

/// Paths anyone may call: health checks (and the account routes whose bodies carry the
/// credentials, [`crate::accounts::PUBLIC_PATHS`]).
const PUBLIC_PATHS: &[&str] = &["/v1/system/health", "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"];

fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path) || crate::accounts::PUBLIC_PATHS.contains(&path)
}

/// How the gateway decides what a request may do.
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per gateway, behind an Arc")]
pub enum Authenticator {
    /// Every request gets full access (only when the operator turns auth off).
    Disabled,
    /// Credentials are checked by the auth service; rate limits per key or user.
    Service { client: AuthClient, limits: RateLimits },
}

/// The access every request gets when auth is disabled.
pub fn unrestricted() -> Access {
    Access { principal: "anonymous".into(), scope: Scope::Admin, collections: None }
}

impl Authenticator {
    /// Checks credentials with the auth service at `addresses` (balanced), reusing an
    /// accepted credential for `cache_ttl`; `rate_limit_per_sec` is the limit of users
    /// and keys without their own (`None`: unlimited).
    pub fn service(
        addresses: &[String],
        cache_ttl: Duration,
        rate_limit_per_sec: Option<NonZeroU32>,
    ) -> Result<Self, String> {
        if addresses.is_empty() {
            return Err("no auth service address".into());
        }
        let endpoints = addresses
            .iter()
            .map(|a| {
                Endpoint::from_shared(format!("http://{a}"))
                    .map(|e| e.connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(10)))
                    .map_err(|e| format!("auth address {a:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Authenticator::Service {
            client: AuthClient::new(Channel::balance_list(endpoints.into_iter()), cache_ttl),
            limits: RateLimits::new(rate_limit_per_sec),
        })
    }

    /// The auth service, when there is one.
    pub fn service_client(&self) -> Option<vectron_proto::v1::auth_service_client::AuthServiceClient<Channel>> {
        match self {
            Authenticator::Disabled => None,
            Authenticator::Service { client, .. } => Some(client.service()),
        }
    }

    /// What the request with these headers may do.
    pub async fn admit(&self, headers: &http::HeaderMap) -> Result<Access, WireError> {
        let (client, limits) = match self {
            Authenticator::Disabled => return Ok(unrestricted()),
            Authenticator::Service { client, limits } => (client, limits),
        };
        let credential = credential(headers)?;
        let grant = client.authenticate(&credential).await?;
        if let Err(wait) = limits.check(&grant) {
            return Err(WireError::new(
                ErrorCode::ResourceExhausted,
                format!("rate limit of {} exceeded", grant.limit_key()),
                true,
            )
            .with_retry_after(wait));
        }
        Ok(grant.access)
    }
}

fn unauthenticated(message: &str) -> WireError {
    WireError::new(ErrorCode::Unauthenticated, message, false)
}

/// The credential in `Authorization: Bearer …` or the API key header.
fn credential(headers: &http::HeaderMap) -> Result<Credential, WireError> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| unauthenticated("the authorization header is not text"))?;
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(unauthenticated("the authorization header must be `Bearer <token>`"));
        }
        return Ok(Credential::Bearer(token.trim().to_owned()));
    }
    if let Some(value) = headers.get(API_KEY_HEADER) {
        let key = value.to_str().map_err(|_| unauthenticated("the API key header is not text"))?;
        return Ok(Credential::ApiKey(key.trim().to_owned()));
    }
    Err(unauthenticated(&format!("credentials required: `Authorization: Bearer <token>` or `{API_KEY_HEADER}: <key>`")))
}

/// Refuses unless `access` allows `needed` on `collection` (`None`: cluster-wide).
pub fn require(access: &Access, needed: Scope, collection: Option<&str>) -> Result<(), WireError> {
    if access.permits(needed, collection) {
        return Ok(());
    }
    let what = match collection {
        Some(c) => format!("collection {c:?}"),
        None => "the whole cluster".to_owned(),
    };
    Err(WireError::new(
        ErrorCode::PermissionDenied,
        format!("{} may not {} on {what}", access.principal, scope_name(needed)),
        false,
    ))
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => "read",
        Scope::Write => "write",
        Scope::Admin => "administer",
    }
}

/// The [`Access`] the layer admitted a request with (refused when there is none, so a
/// route the layer does not cover fails closed).
pub fn access_of(extensions: &http::Extensions) -> Result<Access, WireError> {
    extensions.get::<Access>().cloned().ok_or_else(|| unauthenticated("the request was not authenticated"))
}

/// An axum extractor for the request's [`Access`].
#[derive(Debug, Clone)]
pub struct Caller(pub Access);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        access_of(&parts.extensions).map(Caller).map_err(ApiError)
    }
}

/// An axum extractor admitting only callers with admin scope over the whole cluster
/// (for the admin and metrics endpoints).
#[derive(Debug, Clone)]
pub struct Administrator(pub Access);

impl<S: Send + Sync> FromRequestParts<S> for Administrator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let access = access_of(&parts.extensions).map_err(ApiError)?;
        require(&access, Scope::Admin, None).map_err(ApiError)?;
        Ok(Administrator(access))
    }
}

/// The layer (see the module docs).
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>) -> AuthLayer {
        AuthLayer { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, auth: self.auth.clone() }
    }
}

/// The authenticating service; answers with an axum body whatever the inner body is, so
/// one type serves tonic and axum.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// `e` in the caller's protocol.
fn refusal(e: WireError, grpc: bool) -> http::Response<axum::body::Body> {
    if grpc { e.to_status().into_http() } else { ApiError(e).into_response() }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = http::Response<axum::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            if !is_public(req.uri().path()) {
                match auth.admit(req.headers()).await {
                    Ok(access) => {
                        req.extensions_mut().insert(access);
                    }
                    Err(e) => return Ok(refusal(e, is_grpc(&req))),
                }
            }
            inner.call(req).await.map(|r| r.map(axum::body::Body::new))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn credentials_are_read_from_either_header() {
        assert_eq!(credential(&headers(&[("authorization", "Bearer abc")])).unwrap(), Credential::Bearer("abc".into()));
        assert_eq!(
            credential(&headers(&[("authorization", "bearer  abc ")])).unwrap(),
            Credential::Bearer("abc".into())
        );
        assert_eq!(credential(&headers(&[("x-api-key", "vk_1")])).unwrap(), Credential::ApiKey("vk_1".into()));
        for bad in [&[][..], &[("authorization", "Basic dTpw")], &[("authorization", "Bearer ")]] {
            assert_eq!(credential(&headers(bad)).unwrap_err().code, ErrorCode::Unauthenticated, "{bad:?}");
        }
    }

    #[test]
    fn scopes_and_collection_limits_are_enforced() {
        let read_a = Access { principal: "u".into(), scope: Scope::Read, collections: Some(vec!["a".into()]) };
        assert!(require(&read_a, Scope::Read, Some("a")).is_ok());
        assert_eq!(require(&read_a, Scope::Write, Some("a")).unwrap_err().code, ErrorCode::PermissionDenied);
        assert_eq!(require(&read_a, Scope::Read, Some("b")).unwrap_err().code, ErrorCode::PermissionDenied);
        assert_eq!(require(&read_a, Scope::Read, None).unwrap_err().code, ErrorCode::PermissionDenied);
        assert!(require(&unrestricted(), Scope::Admin, None).is_ok());
    }
}
