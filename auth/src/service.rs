//! The `vectron.v1.AuthService` gRPC service over [`Users`], [`ApiKeys`] and [`Tokens`],
//! and [`serve`], which runs it on an already-bound listener until a shutdown future
//! resolves.
//!
//! Callers identify themselves with `authorization: Bearer <access token>` or
//! `x-api-key: vx_…` metadata. Users act with their current role's scope (admin →
//! admin, user → write); API keys with their own scope and collection limits, never
//! more than their owner's current role (a deleted owner's keys stop working, a demoted
//! admin's admin keys shrink to write).
//!
//! It is an internal service: with a cluster secret installed, every call must carry
//! the cluster token (the gateways do; see `vectron_common::cluster_auth`), and only
//! then is the `x-forwarded-for` client a caller names believed (or when the peer is in
//! `trusted_proxies`, empty by default). Failed log-ins are throttled per (user,
//! client), per client and per user ([`crate::throttle`]); failed `Authenticate` calls
//! per client.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};
use vectron_common::lifecycle::Health;
use vectron_model::status::{WireError, to_status};
use vectron_proto::v1 as pb;
use vectron_proto::v1::auth_service_server::{AuthService, AuthServiceServer};

use crate::error::AuthError;
use crate::keys::{Access, ApiKeyInfo, ApiKeys, KeySpec, Scope};
use crate::store::KvStore;
use crate::throttle::{Backoff, FailureThrottle, LoginThrottle, ThrottleConfig};
use crate::tokens::{TokenConfig, Tokens};
use crate::users::{Role, UserInfo, Users};

/// Metadata key of an API key credential.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Metadata key in which a trusted proxy (the gateway) names the client it logs in for,
/// so failed logins are throttled per client rather than per gateway.
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";

/// Service behaviour.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Anyone may create a (non-admin) user.
    pub open_signup: bool,
    pub login_throttle: ThrottleConfig,
    /// Failed `Authenticate` calls (unknown keys, bad tokens) per client before it is
    /// locked out.
    pub authenticate_throttle: Backoff,
    /// Peers whose `x-forwarded-for` is believed even without the cluster token (when
    /// no cluster secret is installed); anyone else is throttled by their own address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Most active API keys one user may own.
    pub max_keys_per_user: usize,
    /// Highest rate limit an admin may give a key.
    pub max_key_rate_limit_per_sec: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            open_signup: false,
            login_throttle: ThrottleConfig::default(),
            authenticate_throttle: Backoff {
                free_failures: 100,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
            },
            trusted_proxies: Vec::new(),
            max_keys_per_user: 100,
            max_key_rate_limit_per_sec: 100_000,
        }
    }
}

/// The auth service.
#[derive(Debug, Clone)]
pub struct AuthGrpc {
    users: Users,
    keys: ApiKeys,
    tokens: Tokens,
    throttle: Arc<LoginThrottle>,
    authenticate_failures: Arc<FailureThrottle<IpAddr>>,
    config: AuthConfig,
}

/// Who is calling, and with what rights.
#[derive(Debug, Clone)]
struct Caller {
    access: Access,
    /// Presented an API key (not a logged-in session).
    by_key: bool,
}

impl Caller {
    fn is_admin(&self) -> bool {
        self.access.permits(Scope::Admin, None)
    }

    /// Keys are managed from a logged-in session, or with an admin key (automation): a
    /// narrower key may not mint keys that outlive it, nor revoke its owner's others.
    fn may_manage_keys(&self) -> Result<(), Status> {
        if self.by_key && !self.is_admin() {
            return Err(denied("API keys are managed from a logged-in session (or with an admin key)"));
        }
        Ok(())
    }

    fn name(&self) -> &str {
        &self.access.principal
    }
}

fn err(e: AuthError) -> Status {
    e.to_status()
}

fn throttled(message: &str, wait: Duration) -> Status {
    to_status(&WireError::new(pb::ErrorCode::ResourceExhausted, message, true).with_retry_after(wait))
}

fn denied(message: &str) -> Status {
    to_status(&WireError::new(pb::ErrorCode::PermissionDenied, message, false))
}

fn invalid(message: &str) -> Status {
    to_status(&WireError::new(pb::ErrorCode::InvalidArgument, message, false))
}

fn role_scope(role: Role) -> Scope {
    match role {
        Role::Admin => Scope::Admin,
        Role::User => Scope::Write,
    }
}

fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Admin => pb::Role::Admin,
        Role::User => pb::Role::User,
    }
}

fn role_from_pb(raw: i32) -> Result<Role, Status> {
    match pb::Role::try_from(raw) {
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::User) | Ok(pb::Role::Unspecified) => Ok(Role::User),
        Err(_) => Err(invalid("unknown role")),
    }
}

fn scope_to_pb(scope: Scope) -> pb::Scope {
    match scope {
        Scope::Read => pb::Scope::Read,
        Scope::Write => pb::Scope::Write,
        Scope::Admin => pb::Scope::Admin,
    }
}

fn scope_from_pb(raw: i32) -> Result<Scope, Status> {
    match pb::Scope::try_from(raw) {
        Ok(pb::Scope::Read) => Ok(Scope::Read),
        Ok(pb::Scope::Write) => Ok(Scope::Write),
        Ok(pb::Scope::Admin) => Ok(Scope::Admin),
        Ok(pb::Scope::Unspecified) => Err(invalid("scope is required")),
        Err(_) => Err(invalid("unknown scope")),
    }
}

fn user_to_pb(u: &UserInfo) -> pb::User {
    pb::User { username: u.username.clone(), role: role_to_pb(u.role) as i32, created_at_ms: u.created_at_ms }
}

fn key_to_pb(k: &ApiKeyInfo) -> pb::ApiKey {
    pb::ApiKey {
        key_id: k.key_id.clone(),
        owner: k.owner.clone(),
        scope: scope_to_pb(k.scope) as i32,
        collections: k.collections.clone().unwrap_or_default(),
        rate_limit_per_sec: k.rate_limit_per_sec.unwrap_or(0),
        created_at_ms: k.created_at_ms,
        revoked: k.revoked,
    }
}

fn pair_to_pb(p: crate::tokens::TokenPair) -> pb::TokenPair {
    pb::TokenPair {
        access_token: p.access_token,
        refresh_token: p.refresh_token,
        access_expires_at: p.access_expires_at,
        refresh_expires_at: p.refresh_expires_at,
    }
}

impl AuthGrpc {
    pub fn new(store: Arc<dyn KvStore>, tokens: TokenConfig, config: AuthConfig) -> AuthGrpc {
        AuthGrpc {
            users: Users::new(store.clone()),
            keys: ApiKeys::new(store.clone()),
            tokens: Tokens::new(store, tokens),
            throttle: Arc::new(LoginThrottle::new(config.login_throttle)),
            authenticate_failures: Arc::new(FailureThrottle::new(config.authenticate_throttle)),
            config,
        }
    }

    /// The client a request comes from: the peer, or whom a gateway forwards for. The
    /// forwarded address is believed from callers holding the cluster token (every call
    /// does when a cluster secret is installed: the server refuses the others) or from
    /// `trusted_proxies`.
    fn source<T>(&self, req: &Request<T>) -> Option<IpAddr> {
        let forwarded = req.metadata().get(FORWARDED_FOR_HEADER).and_then(|v| v.to_str().ok());
        let peer = req.remote_addr()?.ip();
        if vectron_common::cluster_auth::installed() {
            return Some(crate::throttle::forwarded_address(forwarded).unwrap_or(peer));
        }
        Some(crate::throttle::client_address(peer, forwarded, &self.config.trusted_proxies))
    }

    /// Checks a bearer token or API key against the user it acts for, as that user is now.
    async fn grant(&self, bearer: Option<&str>, api_key: Option<&str>) -> Result<(Access, pb::AccessGrant), AuthError> {
        if let Some(token) = bearer {
            let (claims, user) = self.tokens.verify_access_current(token).await?;
            let access = Access { principal: user.username.clone(), scope: role_scope(user.role), collections: None };
            let grant = pb::AccessGrant {
                principal: claims.sub,
                scope: scope_to_pb(access.scope) as i32,
                collections: vec![],
                rate_limit_per_sec: 0,
                key_id: String::new(),
                expires_at: claims.exp,
            };
            return Ok((access, grant));
        }
        if let Some(key) = api_key {
            let info = self.keys.validate(key).await?;
            let owner = match self.users.get(&info.owner).await {
                Ok(owner) => owner,
                Err(AuthError::UserNotFound { .. } | AuthError::InvalidArgument { .. }) => {
                    return Err(AuthError::Unauthenticated);
                }
                Err(e) => return Err(e),
            };
            let access = Access::from(&info).capped_at(role_scope(owner.role));
            let grant = pb::AccessGrant {
                principal: info.owner.clone(),
                scope: scope_to_pb(access.scope) as i32,
                collections: info.collections.clone().unwrap_or_default(),
                rate_limit_per_sec: info.rate_limit_per_sec.unwrap_or(0),
                key_id: info.key_id,
                expires_at: 0,
            };
            return Ok((access, grant));
        }
        Err(AuthError::Unauthenticated)
    }

    /// The caller of a request, from its metadata.
    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let md = req.metadata();
        let bearer = md
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        let api_key = md.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
        let (access, _) = self.grant(bearer, api_key).await.map_err(err)?;
        Ok(Caller { access, by_key: bearer.is_none() })
    }

    async fn admin<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let caller = self.caller(req).await?;
        if !caller.is_admin() {
            return Err(denied("admin only"));
        }
        Ok(caller)
    }
}

#[tonic::async_trait]
impl AuthService for AuthGrpc {
    async fn login(&self, req: Request<pb::LoginRequest>) -> Result<Response<pb::TokenPair>, Status> {
        let source = self.source(&req);
        let pb::LoginRequest { username, password } = req.into_inner();
        // A name no user can have fails like a wrong password, without being tracked
        // (a 5 MiB "username" must not become a key of the throttle's tables).
        let tracked = if crate::users::validate_username(&username).is_ok() { username.as_str() } else { "" };
        if let Some(wait) = self.throttle.check(tracked, source) {
            return Err(throttled("too many failed logins; try again later", wait));
        }
        if tracked.is_empty() {
            self.throttle.failure(tracked, source);
            return Err(err(AuthError::Unauthenticated));
        }
        match self.tokens.login(&username, &password).await {
            Ok(pair) => {
                self.throttle.success(&username, source);
                Ok(Response::new(pair_to_pb(pair)))
            }
            Err(AuthError::Unauthenticated) => {
                self.throttle.failure(&username, source);
                Err(err(AuthError::Unauthenticated))
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn refresh(&self, req: Request<pb::RefreshRequest>) -> Result<Response<pb::TokenPair>, Status> {
        let pair = self.tokens.refresh(&req.into_inner().refresh_token).await.map_err(err)?;
        Ok(Response::new(pair_to_pb(pair)))
    }

    async fn logout(&self, req: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        self.tokens.logout(&req.into_inner().refresh_token).await.map_err(err)?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> Result<Response<pb::User>, Status> {
        let caller = match self.caller(&req).await {
            Ok(c) => Some(c),
            Err(_) if self.config.open_signup => None,
            Err(e) => return Err(e),
        };
        let r = req.into_inner();
        let role = role_from_pb(r.role)?;
        match &caller {
            Some(c) if c.is_admin() => {}
            None if role == Role::User => {}
            None => return Err(denied("open sign-up creates users, not admins")),
            Some(_) => return Err(denied("admin only")),
        }
        let user = self.users.create(&r.username, &r.password, role).await.map_err(err)?;
        Ok(Response::new(user_to_pb(&user)))
    }

    async fn get_user(&self, req: Request<pb::GetUserRequest>) -> Result<Response<pb::User>, Status> {
        let caller = self.caller(&req).await?;
        let username = req.into_inner().username;
        if caller.name() != username && !caller.is_admin() {
            return Err(denied("only admins read other users"));
        }
        Ok(Response::new(user_to_pb(&self.users.get(&username).await.map_err(err)?)))
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> Result<Response<pb::ListUsersResponse>, Status> {
        self.admin(&req).await?;
        let users = self.users.list().await.map_err(err)?;
        Ok(Response::new(pb::ListUsersResponse { users: users.iter().map(user_to_pb).collect() }))
    }

    async fn update_user(&self, req: Request<pb::UpdateUserRequest>) -> Result<Response<pb::User>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        if let Some(password) = &r.new_password {
            self.users.set_password(&r.username, password).await.map_err(err)?;
        }
        let user = match r.role {
            Some(raw) => self.users.set_role(&r.username, role_from_pb(raw)?).await,
            None => self.users.get(&r.username).await,
        }
        .map_err(err)?;
        Ok(Response::new(user_to_pb(&user)))
    }

    async fn delete_user(
        &self,
        req: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let caller = self.admin(&req).await?;
        let username = req.into_inner().username;
        if caller.name() == username {
            return Err(invalid("admins cannot delete themselves"));
        }
        self.users.get(&username).await.map_err(err)?;
        // Keys first: if this stops half-way the user still exists and the call can be
        // repeated. Their tokens end with the record (they are checked against it).
        let revoked = self.keys.revoke_all_of(&username).await.map_err(err)?;
        self.users.delete(&username).await.map_err(err)?;
        tracing::info!(user = %username, keys_revoked = revoked, by = %caller.name(), "user deleted");
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    async fn change_password(
        &self,
        req: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let caller = self.caller(&req).await?;
        if caller.by_key {
            return Err(denied("a password is changed from a logged-in session, not with an API key"));
        }
        // Checking the old password is a log-in attempt: throttled like one.
        let source = self.source(&req);
        if let Some(wait) = self.throttle.check(caller.name(), source) {
            return Err(throttled("too many failed password checks; try again later", wait));
        }
        let r = req.into_inner();
        match self.users.change_password(caller.name(), &r.old_password, &r.new_password).await {
            Ok(()) => self.throttle.success(caller.name(), source),
            Err(AuthError::Unauthenticated) => {
                self.throttle.failure(caller.name(), source);
                return Err(err(AuthError::Unauthenticated));
            }
            Err(e) => return Err(err(e)),
        }
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let caller = self.caller(&req).await?;
        caller.may_manage_keys()?;
        let r = req.into_inner();
        let scope = scope_from_pb(r.scope)?;
        let owner = if r.owner.is_empty() { caller.name().to_owned() } else { r.owner };
        if !caller.is_admin() {
            if owner != caller.name() {
                return Err(denied("only admins create keys for others"));
            }
            if caller.access.collections.is_some() || caller.access.scope < scope {
                return Err(denied("a key cannot grant more than its creator has"));
            }
            if r.rate_limit_per_sec != 0 {
                return Err(denied("only admins set a key's rate limit"));
            }
        }
        let max_rate = self.config.max_key_rate_limit_per_sec;
        if r.rate_limit_per_sec > max_rate {
            return Err(invalid(&format!("a key's rate limit must be at most {max_rate} per second")));
        }
        // The owner must exist (a key acts for its owner).
        self.users.get(&owner).await.map_err(err)?;
        let active = self.keys.list(Some(&owner)).await.map_err(err)?.iter().filter(|k| !k.revoked).count();
        if active >= self.config.max_keys_per_user {
            return Err(to_status(&WireError::new(
                pb::ErrorCode::ResourceExhausted,
                format!(
                    "{owner} has {active} active API keys, the most allowed ({}); revoke one first",
                    self.config.max_keys_per_user
                ),
                false,
            )));
        }
        let spec = KeySpec {
            owner,
            scope,
            collections: if r.collections.is_empty() { None } else { Some(r.collections) },
            rate_limit_per_sec: if r.rate_limit_per_sec == 0 { None } else { Some(r.rate_limit_per_sec) },
        };
        let created = self.keys.create(spec).await.map_err(err)?;
        Ok(Response::new(pb::CreateApiKeyResponse { key: Some(key_to_pb(&created.info)), secret_key: created.key }))
    }

    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let caller = self.caller(&req).await?;
        let owner = req.into_inner().owner;
        let filter = match owner.as_str() {
            "" => Some(caller.name().to_owned()),
            "*" if caller.is_admin() => None,
            o if o == caller.name() || caller.is_admin() => Some(o.to_owned()),
            _ => return Err(denied("only admins list other users' keys")),
        };
        let keys = self.keys.list(filter.as_deref()).await.map_err(err)?;
        Ok(Response::new(pb::ListApiKeysResponse { keys: keys.iter().map(key_to_pb).collect() }))
    }

    async fn revoke_api_key(&self, req: Request<pb::RevokeApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let caller = self.caller(&req).await?;
        caller.may_manage_keys()?;
        let key_id = req.into_inner().key_id;
        let key = self.keys.get(&key_id).await.map_err(err)?;
        if key.owner != caller.name() && !caller.is_admin() {
            // Do not reveal whether someone else's key exists.
            return Err(err(AuthError::KeyNotFound { key_id }));
        }
        Ok(Response::new(key_to_pb(&self.keys.revoke(&key_id).await.map_err(err)?)))
    }

    async fn authenticate(&self, req: Request<pb::AuthenticateRequest>) -> Result<Response<pb::AccessGrant>, Status> {
        use pb::authenticate_request::Credential;
        let source = self.source(&req).map(crate::throttle::throttle_key);
        if let Some(wait) = source.and_then(|s| self.authenticate_failures.locked_for(&s)) {
            return Err(throttled("too many failed authentications from this client; try again later", wait));
        }
        let (bearer, key) = match req.into_inner().credential {
            Some(Credential::BearerToken(t)) => (Some(t), None),
            Some(Credential::ApiKey(k)) => (None, Some(k)),
            None => (None, None),
        };
        match self.grant(bearer.as_deref(), key.as_deref()).await {
            Ok((_, grant)) => Ok(Response::new(grant)),
            // An expired token was genuine: only wrong credentials count as guesses.
            Err(AuthError::Unauthenticated) => {
                if let Some(s) = source {
                    self.authenticate_failures.fail(&s);
                }
                Err(err(AuthError::Unauthenticated))
            }
            Err(e) => Err(err(e)),
        }
    }
}

/// Largest request the auth service decodes (credentials and account records are small).
pub const MAX_MESSAGE_BYTES: usize = 64 << 10;

/// Serves the auth service on `listener` until `shutdown` resolves; with a cluster
/// secret installed, only to callers presenting the cluster token; `health` to anyone.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: AuthGrpc,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let auth = AuthServiceServer::new(service).max_decoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .layer(vectron_common::telemetry::grpc_server_spans())
        .add_service(health.service())
        .add_service(InterceptedService::new(auth, vectron_common::cluster_auth::check))
        .serve_with_incoming_shutdown(
            vectron_common::net::incoming(listener, vectron_common::tls::Port::Internal),
            shutdown,
        )
        .await
}

/// On first start (no users at all) creates the admin `username`, with `password` or a
/// generated one, which is returned so the caller can show it once.
pub async fn bootstrap_admin(
    store: Arc<dyn KvStore>,
    username: &str,
    password: Option<&str>,
) -> Result<Option<String>, AuthError> {
    let users = Users::new(store);
    if !users.list().await?.is_empty() {
        return Ok(None);
    }
    let password = match password {
        Some(p) => p.to_owned(),
        None => {
            use rand::RngCore;
            let mut b = [0u8; 18];
            rand::rng().fill_bytes(&mut b);
            hex::encode(b)
        }
    };
    match users.create(username, &password, Role::Admin).await {
        Ok(_) => Ok(Some(password)),
        // Another instance bootstrapped at the same moment.
        Err(AuthError::UserExists { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
