//! The HTTP routes the console needs to manage accounts, under `/v1/auth`: log in,
//! refresh and log out (the only ones that take no credentials: the body holds them),
//! who am I, change my password, API keys, and (admins) users.
//!
//! Each route forwards to the auth service's gRPC API with the caller's own credential
//! (`authorization` or `x-api-key`), so the auth service decides what the caller may do
//! there, as it does for direct gRPC clients; a login carries the client's address
//! (`x-forwarded-for`: the peer, or behind a trusted load balancer the client it names)
//! so failed logins are throttled per client, not per gateway.
//! A gateway running without auth answers these routes NOT_FOUND.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vectron_auth::service::{API_KEY_HEADER, FORWARDED_FOR_HEADER};
use vectron_auth::throttle::client_address;
use vectron_common::cluster_auth::ClusterChannel;
use vectron_model::status::{WireError, from_status};
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;
use vectron_proto::v1::auth_service_client::AuthServiceClient;

use super::extract::{ApiError, Body, ErrorReply, PathParams, QueryParams};
use crate::auth::{Access, Authenticator, Caller, Scope};

/// State of the account routes.
#[derive(Debug, Clone)]
pub struct Accounts {
    auth: Arc<Authenticator>,
    /// Load balancers in front of the gateway, whose `x-forwarded-for` is believed.
    trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

type Reply<T> = Result<Json<T>, ApiError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopeJson {
    Read,
    Write,
    Admin,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleJson {
    #[default]
    User,
    Admin,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginJson {
    pub username: String,
    pub password: String,
}

/// A login's or refresh's answer; times are seconds since the Unix epoch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenPairJson {
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_at: u64,
    pub refresh_expires_at: u64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshJson {
    pub refresh_token: String,
}

/// What the caller's credential allows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MeJson {
    pub principal: String,
    pub scope: ScopeJson,
    /// Absent: every collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collections: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordJson {
    pub old_password: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// An API key, without its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyJson {
    pub key_id: String,
    pub owner: String,
    pub scope: ScopeJson,
    /// Absent: every collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collections: Option<Vec<String>>,
    /// Absent: the gateway's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_sec: Option<u32>,
    pub created_at_ms: u64,
    pub revoked: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyJson {
    /// Absent: the caller (only admins create keys for others).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_.@-]{1,64}$")]
    pub owner: Option<String>,
    pub scope: ScopeJson,
    /// Absent or empty: every collection.
    #[serde(default)]
    #[schema(value_type = Vec<crate::http::schema::CollectionNameDoc>)]
    pub collections: Vec<String>,
    /// Admins only; at most the auth service's `max_key_rate_limit_per_sec`. Absent:
    /// the owner's limit alone.
    #[serde(default, deserialize_with = "crate::http::json::whole_u32_opt")]
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit_per_sec: Option<u32>,
}

/// A new key: `secret_key` is shown in this answer and never again.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedKeyJson {
    pub key: ApiKeyJson,
    pub secret_key: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeysJson {
    pub keys: Vec<ApiKeyJson>,
}

#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KeysQuery {
    /// Absent: the caller's keys; another user's name or `*` (every key): admins.
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserJson {
    pub username: String,
    pub role: RoleJson,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsersJson {
    pub users: Vec<UserJson>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserJson {
    #[schema(pattern = "^[A-Za-z0-9_.@-]{1,64}$")]
    pub username: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[serde(default)]
    pub role: RoleJson,
}

/// Absent fields stay as they are.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserJson {
    #[serde(default)]
    pub role: Option<RoleJson>,
    #[serde(default)]
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DoneJson {
    pub ok: bool,
}

fn scope_json(scope: Scope) -> ScopeJson {
    match scope {
        Scope::Read => ScopeJson::Read,
        Scope::Write => ScopeJson::Write,
        Scope::Admin => ScopeJson::Admin,
    }
}

fn scope_to_pb(scope: ScopeJson) -> pb::Scope {
    match scope {
        ScopeJson::Read => pb::Scope::Read,
        ScopeJson::Write => pb::Scope::Write,
        ScopeJson::Admin => pb::Scope::Admin,
    }
}

fn role_to_pb(role: RoleJson) -> pb::Role {
    match role {
        RoleJson::User => pb::Role::User,
        RoleJson::Admin => pb::Role::Admin,
    }
}

impl From<pb::TokenPair> for TokenPairJson {
    fn from(p: pb::TokenPair) -> Self {
        TokenPairJson {
            access_token: p.access_token,
            refresh_token: p.refresh_token,
            access_expires_at: p.access_expires_at,
            refresh_expires_at: p.refresh_expires_at,
        }
    }
}

impl From<pb::ApiKey> for ApiKeyJson {
    fn from(k: pb::ApiKey) -> Self {
        let scope = match k.scope() {
            pb::Scope::Admin => ScopeJson::Admin,
            pb::Scope::Write => ScopeJson::Write,
            pb::Scope::Read | pb::Scope::Unspecified => ScopeJson::Read,
        };
        ApiKeyJson {
            scope,
            key_id: k.key_id,
            owner: k.owner,
            collections: (!k.collections.is_empty()).then_some(k.collections),
            rate_limit_per_sec: (k.rate_limit_per_sec > 0).then_some(k.rate_limit_per_sec),
            created_at_ms: k.created_at_ms,
            revoked: k.revoked,
        }
    }
}

impl From<pb::User> for UserJson {
    fn from(u: pb::User) -> Self {
        let role = if u.role() == pb::Role::Admin { RoleJson::Admin } else { RoleJson::User };
        UserJson { role, username: u.username, created_at_ms: u.created_at_ms }
    }
}

fn failed(status: tonic::Status) -> ApiError {
    ApiError(from_status(&status))
}

/// `message` with the caller's credential headers, for the auth service to judge.
fn as_caller<T>(message: T, headers: &http::HeaderMap) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for name in [http::header::AUTHORIZATION.as_str(), API_KEY_HEADER] {
        if let Some(value) =
            headers.get(name).and_then(|v| tonic::metadata::AsciiMetadataValue::try_from(v.as_bytes()).ok())
        {
            request.metadata_mut().insert(name, value);
        }
    }
    request
}

/// `message` from an anonymous client at `client`.
fn from_client<T>(message: T, client: IpAddr) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(ip) = tonic::metadata::AsciiMetadataValue::try_from(client.to_string()) {
        request.metadata_mut().insert(FORWARDED_FOR_HEADER, ip);
    }
    request
}

impl Accounts {
    /// Account routes over `auth`; requests from `trusted_proxies` name their client in
    /// `x-forwarded-for`.
    pub fn new(auth: Arc<Authenticator>, trusted_proxies: Vec<ipnet::IpNet>) -> Accounts {
        Accounts { auth, trusted_proxies: Arc::new(trusted_proxies) }
    }

    /// The address a request comes from (for failed-login throttling).
    fn source(&self, peer: SocketAddr, headers: &http::HeaderMap) -> IpAddr {
        let forwarded = headers.get(FORWARDED_FOR_HEADER).and_then(|v| v.to_str().ok());
        client_address(peer.ip(), forwarded, &self.trusted_proxies)
    }

    fn client(&self) -> Result<AuthServiceClient<ClusterChannel>, ApiError> {
        self.auth.service_client().map_err(ApiError)
    }

    /// The routes with their OpenAPI description.
    pub fn routes() -> OpenApiRouter<Accounts> {
        OpenApiRouter::new()
            .routes(routes!(login))
            .routes(routes!(refresh))
            .routes(routes!(logout))
            .routes(routes!(me))
            .routes(routes!(change_password))
            .routes(routes!(list_keys, create_key))
            .routes(routes!(revoke_key))
            .routes(routes!(list_users, create_user))
            .routes(routes!(get_user, update_user, delete_user))
    }

    /// The routes, serving.
    pub fn router(self) -> Router {
        let (routes, _) = Accounts::routes().split_for_parts();
        routes.with_state(self)
    }
}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginJson,
    responses((status = 200, body = TokenPairJson), (status = 401, body = ErrorReply), (status = 429, body = ErrorReply)))]
async fn login(
    State(a): State<Accounts>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: http::HeaderMap,
    Body(b): Body<LoginJson>,
) -> Reply<TokenPairJson> {
    let request =
        from_client(pb::LoginRequest { username: b.username, password: b.password }, a.source(peer, &headers));
    Ok(Json(a.client()?.login(request).await.map_err(failed)?.into_inner().into()))
}

#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshJson,
    responses((status = 200, body = TokenPairJson), (status = 401, body = ErrorReply)))]
async fn refresh(
    State(a): State<Accounts>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: http::HeaderMap,
    Body(b): Body<RefreshJson>,
) -> Reply<TokenPairJson> {
    let request = from_client(pb::RefreshRequest { refresh_token: b.refresh_token }, a.source(peer, &headers));
    Ok(Json(a.client()?.refresh(request).await.map_err(failed)?.into_inner().into()))
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshJson,
    responses((status = 200, body = DoneJson), (status = 401, body = ErrorReply)))]
async fn logout(
    State(a): State<Accounts>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: http::HeaderMap,
    Body(b): Body<RefreshJson>,
) -> Reply<DoneJson> {
    let request = from_client(pb::LogoutRequest { refresh_token: b.refresh_token }, a.source(peer, &headers));
    a.client()?.logout(request).await.map_err(failed)?;
    Ok(Json(DoneJson { ok: true }))
}

#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", responses((status = 200, body = MeJson)))]
async fn me(Caller(access): Caller) -> Json<MeJson> {
    let Access { principal, scope, collections } = access;
    Json(MeJson { principal, scope: scope_json(scope), collections })
}

/// Changes the caller's password (a logged-in session only; throttled like log-ins).
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth", request_body = PasswordJson,
    responses((status = 200, body = DoneJson), (status = 400, body = ErrorReply), (status = 401, body = ErrorReply)))]
async fn change_password(
    State(a): State<Accounts>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: http::HeaderMap,
    Body(b): Body<PasswordJson>,
) -> Reply<DoneJson> {
    let message = pb::ChangePasswordRequest { old_password: b.old_password, new_password: b.new_password };
    // Checking the old password is throttled like a log-in: per client.
    let mut request = as_caller(message, &headers);
    if let Ok(ip) = tonic::metadata::AsciiMetadataValue::try_from(a.source(peer, &headers).to_string()) {
        request.metadata_mut().insert(FORWARDED_FOR_HEADER, ip);
    }
    a.client()?.change_password(request).await.map_err(failed)?;
    Ok(Json(DoneJson { ok: true }))
}

#[utoipa::path(get, path = "/v1/auth/keys", tag = "auth", params(KeysQuery),
    responses((status = 200, body = KeysJson), (status = 403, body = ErrorReply)))]
async fn list_keys(
    State(a): State<Accounts>,
    headers: http::HeaderMap,
    QueryParams(q): QueryParams<KeysQuery>,
) -> Reply<KeysJson> {
    let message = pb::ListApiKeysRequest { owner: q.owner.unwrap_or_default() };
    let keys = a.client()?.list_api_keys(as_caller(message, &headers)).await.map_err(failed)?.into_inner().keys;
    Ok(Json(KeysJson { keys: keys.into_iter().map(ApiKeyJson::from).collect() }))
}

#[utoipa::path(post, path = "/v1/auth/keys", tag = "auth", request_body = NewKeyJson,
    responses((status = 200, body = CreatedKeyJson), (status = 403, body = ErrorReply), (status = 404, body = ErrorReply)))]
async fn create_key(
    State(a): State<Accounts>,
    headers: http::HeaderMap,
    Body(b): Body<NewKeyJson>,
) -> Reply<CreatedKeyJson> {
    if b.owner.as_deref() == Some("") {
        return Err(ApiError(WireError::new(ErrorCode::InvalidArgument, "owner, when given, names a user", false)));
    }
    if b.rate_limit_per_sec == Some(0) {
        return Err(ApiError(WireError::new(ErrorCode::InvalidArgument, "rate_limit_per_sec must be positive", false)));
    }
    let message = pb::CreateApiKeyRequest {
        owner: b.owner.unwrap_or_default(),
        scope: scope_to_pb(b.scope) as i32,
        collections: b.collections,
        rate_limit_per_sec: b.rate_limit_per_sec.unwrap_or(0),
    };
    let created = a.client()?.create_api_key(as_caller(message, &headers)).await.map_err(failed)?.into_inner();
    let key =
        created.key.ok_or_else(|| ApiError(WireError::new(ErrorCode::Internal, "no key in the answer", false)))?;
    Ok(Json(CreatedKeyJson { key: key.into(), secret_key: created.secret_key }))
}

#[utoipa::path(delete, path = "/v1/auth/keys/{key_id}", tag = "auth", params(("key_id" = String, Path)),
    responses((status = 200, body = ApiKeyJson), (status = 404, body = ErrorReply)))]
async fn revoke_key(
    State(a): State<Accounts>,
    headers: http::HeaderMap,
    PathParams(key_id): PathParams<String>,
) -> Reply<ApiKeyJson> {
    let message = pb::RevokeApiKeyRequest { key_id };
    Ok(Json(a.client()?.revoke_api_key(as_caller(message, &headers)).await.map_err(failed)?.into_inner().into()))
}

#[utoipa::path(get, path = "/v1/auth/users", tag = "auth",
    responses((status = 200, body = UsersJson), (status = 403, body = ErrorReply)))]
async fn list_users(State(a): State<Accounts>, headers: http::HeaderMap) -> Reply<UsersJson> {
    let users =
        a.client()?.list_users(as_caller(pb::ListUsersRequest {}, &headers)).await.map_err(failed)?.into_inner().users;
    Ok(Json(UsersJson { users: users.into_iter().map(UserJson::from).collect() }))
}

#[utoipa::path(post, path = "/v1/auth/users", tag = "auth", request_body = NewUserJson,
    responses((status = 200, body = UserJson), (status = 403, body = ErrorReply), (status = 409, body = ErrorReply)))]
async fn create_user(
    State(a): State<Accounts>,
    headers: http::HeaderMap,
    Body(b): Body<NewUserJson>,
) -> Reply<UserJson> {
    let message = pb::CreateUserRequest { username: b.username, password: b.password, role: role_to_pb(b.role) as i32 };
    Ok(Json(a.client()?.create_user(as_caller(message, &headers)).await.map_err(failed)?.into_inner().into()))
}

#[utoipa::path(get, path = "/v1/auth/users/{username}", tag = "auth", params(("username" = String, Path, pattern = "^[A-Za-z0-9_.@-]{1,64}$")),
    responses((status = 200, body = UserJson), (status = 403, body = ErrorReply), (status = 404, body = ErrorReply)))]
async fn get_user(
    State(a): State<Accounts>,
    headers: http::HeaderMap,
    PathParams(username): PathParams<String>,
) -> Reply<UserJson> {
    let message = pb::GetUserRequest { username };
    Ok(Json(a.client()?.get_user(as_caller(message, &headers)).await.map_err(failed)?.into_inner().into()))
}

#[utoipa::path(patch, path = "/v1/auth/users/{username}", tag = "auth", params(("username" = String, Path, pattern = "^[A-Za-z0-9_.@-]{1,64}$")),
    request_body = UpdateUserJson,
    responses((status = 200, body = UserJson), (status = 403, body = ErrorReply), (status = 404, body = ErrorReply)))]
async fn update_user(
    State(a): State<Accounts>,
    headers: http::HeaderMap,
    PathParams(username): PathParams<String>,
    Body(b): Body<UpdateUserJson>,
) -> Reply<UserJson> {
    let message =
        pb::UpdateUserRequest { username, role: b.role.map(|r| role_to_pb(r) as i32), new_password: b.new_password };
    Ok(Json(a.client()?.update_user(as_caller(message, &headers)).await.map_err(failed)?.into_inner().into()))
}

#[utoipa::path(delete, path = "/v1/auth/users/{username}", tag = "auth", params(("username" = String, Path, pattern = "^[A-Za-z0-9_.@-]{1,64}$")),
    responses((status = 200, body = DoneJson), (status = 403, body = ErrorReply), (status = 404, body = ErrorReply)))]
async fn delete_user(
    State(a): State<Accounts>,
    headers: http::HeaderMap,
    PathParams(username): PathParams<String>,
) -> Reply<DoneJson> {
    let message = pb::DeleteUserRequest { username };
    a.client()?.delete_user(as_caller(message, &headers)).await.map_err(failed)?;
    Ok(Json(DoneJson { ok: true }))
}
