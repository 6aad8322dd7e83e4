//! Access control for both transports.
//!
//! [`AuthLayer`] is one tower layer for the tonic server and the axum router: it reads
//! `Authorization: Bearer <jwt>` or `x-api-key: <key>`, asks the auth service what the
//! credential may do (cached briefly by [`AuthClient`], so a revoked key stops working
//! within the cache TTL), takes a token from the caller's rate-limit buckets, checks the
//! scope the route or method needs ([`crate::policy`]) — all before the request's body
//! is read — and puts the resulting [`Access`] (and the caller's [`Quota`], for batches
//! that count once per search) in the request's extensions, with the body limit of the
//! route ([`BodyLimit`]). Failures are answered in the caller's protocol: a gRPC status,
//! or the JSON error body with 401/403/429 and `retry-after`. Only health checks and
//! log-in (whose bodies carry credentials) pass without credentials.
//!
//! The layer authenticates and pre-checks; each operation then checks the scope it needs
//! on the collection it names with [`require`] (in [`crate::api::Api`], so both
//! transports check the same way, also where the collection is only named in the body).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures::FutureExt;
use tonic::transport::Endpoint;
use tower::{Layer, Service};
use vectron_auth::client::{AuthClient, Credential, Grant, RateLimits};
use vectron_auth::service::{API_KEY_HEADER, FORWARDED_FOR_HEADER};
use vectron_auth::throttle::client_address;
use vectron_common::cluster_auth::ClusterChannel;
use vectron_model::status::WireError;
use vectron_proto::v1::ErrorCode;

pub use vectron_auth::keys::{Access, Scope};

use crate::http::extract::ApiError;
use crate::policy::{BodyLimit, BodyLimits, Policy, Requirement, Target};

/// How the gateway decides what a request may do.
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per gateway, behind an Arc")]
pub enum Authenticator {
    /// Every request gets full access (only when the operator turns auth off).
    Disabled,
    /// Credentials are checked by the auth service; rate limits per user and key.
    Service { client: AuthClient, limits: Arc<RateLimits> },
}

/// The access every request gets when auth is disabled.
pub fn unrestricted() -> Access {
    Access { principal: "anonymous".into(), scope: Scope::Admin, collections: None }
}

/// What a caller may still spend: a batch takes one token per search beyond the one its
/// request took when it was admitted.
#[derive(Debug, Clone)]
pub struct Quota {
    limits: Arc<RateLimits>,
    grant: Grant,
}

impl Quota {
    /// Takes the rest of a batch of `total` requests (the admission took one).
    pub fn take_rest_of_batch(&self, total: u32) -> Result<(), WireError> {
        self.limits.take_rest_of_batch(&self.grant, total).map_err(|l| l.to_wire())
    }
}

/// The client address a request came from, as the layer determined it.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub Option<IpAddr>);

impl Authenticator {
    /// Checks credentials with the auth service at `addresses` (balanced), reusing an
    /// accepted credential for `cache_ttl`; `rate_limit_per_sec` is every user's limit
    /// (`None`: unlimited; keys with a limit of their own are held to it too).
    pub fn service(
        addresses: &[String],
        cache_ttl: Duration,
        rate_limit_per_sec: Option<NonZeroU32>,
    ) -> Result<Self, String> {
        if addresses.is_empty() {
            return Err("no auth service address".into());
        }
        // One connection (HTTP/2 carries every call), to the addresses in turn: when it
        // breaks, the next one is made to the next auth service that answers. Plain TCP,
        // or mutual TLS with the process's certificate.
        let mut endpoints = addresses
            .iter()
            .map(|a| Endpoint::from_shared(format!("http://{a}")).map_err(|e| format!("auth address {a:?}: {e}")));
        let endpoint = endpoints.next().expect("an address")?;
        endpoints.try_for_each(|e| e.map(drop))?;
        // A frozen auth service (connection open, silent) is given up on as peers are,
        // so the next connection goes to another address.
        use vectron_common::raft::network::{PEER_PING_INTERVAL, PEER_PING_TIMEOUT};
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .http2_keep_alive_interval(PEER_PING_INTERVAL)
            .keep_alive_timeout(PEER_PING_TIMEOUT);
        let channel = endpoint.connect_with_connector_lazy(vectron_common::tls::Connector::new(addresses.to_vec()));
        Ok(Authenticator::Service {
            client: AuthClient::new(channel, cache_ttl),
            limits: Arc::new(RateLimits::new(rate_limit_per_sec)),
        })
    }

    /// The auth service, for the account routes (calls carry the cluster token);
    /// NOT_FOUND on a gateway without auth: there are no accounts.
    pub fn service_client(
        &self,
    ) -> Result<vectron_proto::v1::auth_service_client::AuthServiceClient<ClusterChannel>, WireError> {
        match self {
            Authenticator::Disabled => Err(WireError::new(
                ErrorCode::NotFound,
                "this gateway runs without auth (--no-auth): there are no accounts",
                false,
            )),
            Authenticator::Service { client, .. } => Ok(client.service()),
        }
    }

    /// What the request with these headers, from `client`, may do, having taken one
    /// token from its rate limits.
    pub async fn admit(
        &self,
        headers: &http::HeaderMap,
        client: Option<IpAddr>,
    ) -> Result<(Access, Option<Quota>), WireError> {
        let (auth, limits) = match self {
            Authenticator::Disabled => return Ok((unrestricted(), None)),
            Authenticator::Service { client, limits } => (client, limits),
        };
        let credential = credential(headers)?;
        let grant = auth.authenticate(&credential, client).await?;
        limits.check(&grant).map_err(|l| l.to_wire())?;
        let access = grant.access.clone();
        Ok((access, Some(Quota { limits: limits.clone(), grant })))
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

/// Refuses unless `access` meets `requirement` (the pre-check, before the body).
pub fn meets(access: &Access, requirement: &Requirement) -> Result<(), WireError> {
    match requirement {
        Requirement::Public => Ok(()),
        Requirement::Scope(needed, Target::Collection(c)) => require(access, *needed, Some(c)),
        Requirement::Scope(needed, Target::Cluster) => require(access, *needed, None),
        Requirement::Scope(needed, Target::AnyCollection) if access.scope >= *needed => Ok(()),
        Requirement::Scope(needed, Target::AnyCollection) => Err(WireError::new(
            ErrorCode::PermissionDenied,
            format!("{} may not {} on any collection", access.principal, scope_name(*needed)),
            false,
        )),
    }
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

/// The protocol a layer serves: how it finds a request's policy and client.
pub trait Protocol: Clone + Send + Sync + 'static {
    /// Answers in gRPC (status in headers) rather than JSON.
    const GRPC: bool;
    /// What the request needs (the request is handed back).
    fn policy<B>(&self, req: http::Request<B>) -> (http::Request<B>, Policy);
    /// The address of the client: the peer, or whom a trusted load balancer names.
    fn client<B>(&self, req: &http::Request<B>) -> Option<IpAddr>;
}

/// The client address from the peer and, behind a trusted load balancer, its
/// `x-forwarded-for`.
fn forwarded_client(peer: Option<SocketAddr>, headers: &http::HeaderMap, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let forwarded = headers.get(FORWARDED_FOR_HEADER).and_then(|v| v.to_str().ok());
    peer.map(|p| client_address(p.ip(), forwarded, trusted))
}

/// The axum routes: the matched route's template and path parameters decide.
#[derive(Debug, Clone)]
pub struct HttpRoutes {
    pub limits: BodyLimits,
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

impl Protocol for HttpRoutes {
    const GRPC: bool = false;

    fn policy<B>(&self, req: http::Request<B>) -> (http::Request<B>, Policy) {
        let (mut parts, body) = req.into_parts();
        let template = parts.extensions.get::<MatchedPath>().map(|p| p.as_str().to_owned()).or_else(|| {
            // The console's nested file service leaves no matched template on its requests.
            crate::policy::is_console(parts.uri.path()).then(|| parts.uri.path().to_owned())
        });
        // Ready at once: it reads what the router stored in the extensions.
        let params = RawPathParams::from_request_parts(&mut parts, &()).now_or_never().and_then(Result::ok);
        let param = |name: &str| params.as_ref()?.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_owned());
        let policy = crate::policy::http(&parts.method, template.as_deref(), param, self.limits);
        (http::Request::from_parts(parts, body), policy)
    }

    fn client<B>(&self, req: &http::Request<B>) -> Option<IpAddr> {
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        forwarded_client(peer, req.headers(), &self.trusted_proxies)
    }
}

/// The tonic services: the method path decides.
#[derive(Debug, Clone)]
pub struct GrpcMethods {
    pub limits: BodyLimits,
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

impl Protocol for GrpcMethods {
    const GRPC: bool = true;

    fn policy<B>(&self, req: http::Request<B>) -> (http::Request<B>, Policy) {
        let policy = crate::policy::grpc(req.uri().path(), self.limits).0;
        (req, policy)
    }

    fn client<B>(&self, req: &http::Request<B>) -> Option<IpAddr> {
        let peer = req.extensions().get::<tonic::transport::server::TcpConnectInfo>().and_then(|c| c.remote_addr());
        forwarded_client(peer, req.headers(), &self.trusted_proxies)
    }
}

/// An axum extractor for the caller's [`Quota`] (none when auth is off).
#[derive(Debug, Clone)]
pub struct Spend(pub Option<Quota>);

impl<S: Send + Sync> FromRequestParts<S> for Spend {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Spend(parts.extensions.get::<Quota>().cloned()))
    }
}

/// The layer (see the module docs).
#[derive(Debug, Clone)]
pub struct AuthLayer<P> {
    auth: Arc<Authenticator>,
    protocol: P,
}

impl<P> AuthLayer<P> {
    pub fn new(auth: Arc<Authenticator>, protocol: P) -> AuthLayer<P> {
        AuthLayer { auth, protocol }
    }
}

impl<S, P: Clone> Layer<S> for AuthLayer<P> {
    type Service = AuthService<S, P>;

    fn layer(&self, inner: S) -> AuthService<S, P> {
        AuthService { inner, auth: self.auth.clone(), protocol: self.protocol.clone() }
    }
}

/// The authenticating service; answers with an axum body whatever the inner body is, so
/// one type serves tonic and axum.
#[derive(Debug, Clone)]
pub struct AuthService<S, P> {
    inner: S,
    auth: Arc<Authenticator>,
    protocol: P,
}

/// `e` in the caller's protocol.
fn refusal(e: WireError, grpc: bool) -> http::Response<axum::body::Body> {
    if grpc { e.to_status().into_http() } else { ApiError(e).into_response() }
}

impl<S, P, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S, P>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    P: Protocol,
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

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let protocol = self.protocol.clone();
        Box::pin(async move {
            let (mut req, policy) = protocol.policy(req);
            req.extensions_mut().insert(BodyLimit(policy.max_body));
            let client = protocol.client(&req);
            req.extensions_mut().insert(Client(client));
            if policy.requirement != Requirement::Public {
                let admitted = match auth.admit(req.headers(), client).await {
                    Ok(admitted) => admitted,
                    Err(e) => return Ok(refusal(e, P::GRPC)),
                };
                let (access, quota) = admitted;
                if let Err(e) = meets(&access, &policy.requirement) {
                    return Ok(refusal(e, P::GRPC));
                }
                req.extensions_mut().insert(access);
                if let Some(quota) = quota {
                    req.extensions_mut().insert(quota);
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
