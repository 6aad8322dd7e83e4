//! `vectron.v1.AuthService` on the gateway's gRPC port, for SDKs and CLIs that speak
//! only to the gateway: log in, refresh, log out, users, passwords and API keys.
//!
//! As the HTTP account routes do ([`crate::http::accounts`]), each call is forwarded to
//! the auth service with the caller's own credential (`authorization` or `x-api-key`),
//! so the auth service decides what the caller may do; log-ins, refreshes, log-outs and
//! password changes carry the client's address (the peer, or behind a trusted load
//! balancer the client its `x-forwarded-for` names) so failures are throttled per client.
//! Errors come back as the auth service answered them (their code in
//! `vectron-error-code`). `Authenticate` is the gateways' own question to the auth
//! service, not a client's: it is UNIMPLEMENTED here. A gateway without auth answers
//! NOT_FOUND: there are no accounts.

use std::net::IpAddr;
use std::sync::Arc;

use tonic::metadata::AsciiMetadataValue;
use tonic::{Request, Response, Status};
use vectron_auth::service::{API_KEY_HEADER, FORWARDED_FOR_HEADER};
use vectron_auth::throttle::client_address;
use vectron_common::cluster_auth::ClusterChannel;
use vectron_model::status::{WireError, to_status};
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;
use vectron_proto::v1::auth_service_client::AuthServiceClient;
use vectron_proto::v1::auth_service_server::AuthService;

use crate::auth::Authenticator;

/// The gateway's face of the auth service.
#[derive(Debug, Clone)]
pub struct AccountsGrpc {
    auth: Arc<Authenticator>,
    trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

type Reply<T> = Result<Response<T>, Status>;

impl AccountsGrpc {
    pub fn new(auth: Arc<Authenticator>, trusted_proxies: Arc<Vec<ipnet::IpNet>>) -> AccountsGrpc {
        AccountsGrpc { auth, trusted_proxies }
    }

    fn client(&self) -> Result<AuthServiceClient<ClusterChannel>, Status> {
        self.auth.service_client().map_err(|e| to_status(&e))
    }

    /// Where `request` comes from, as failed-login throttling counts clients.
    fn source<T>(&self, request: &Request<T>) -> Option<IpAddr> {
        let peer = request.remote_addr()?.ip();
        let forwarded = request.metadata().get(FORWARDED_FOR_HEADER).and_then(|v| v.to_str().ok());
        Some(client_address(peer, forwarded, &self.trusted_proxies))
    }

    /// `request`'s message for the auth service, with the caller's credential and, when
    /// `with_source`, the client's address.
    fn forward<T>(&self, request: Request<T>, with_source: bool) -> Request<T> {
        let source = with_source.then(|| self.source(&request)).flatten();
        let credentials: Vec<(&'static str, AsciiMetadataValue)> = ["authorization", API_KEY_HEADER]
            .into_iter()
            .filter_map(|name| request.metadata().get(name).map(|v| (name, v.clone())))
            .collect();
        let mut out = Request::new(request.into_inner());
        for (name, value) in credentials {
            out.metadata_mut().insert(name, value);
        }
        if let Some(ip) = source.and_then(|ip| AsciiMetadataValue::try_from(ip.to_string()).ok()) {
            out.metadata_mut().insert(FORWARDED_FOR_HEADER, ip);
        }
        out
    }
}

#[tonic::async_trait]
impl AuthService for AccountsGrpc {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Reply<pb::TokenPair> {
        self.client()?.login(self.forward(request, true)).await
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Reply<pb::TokenPair> {
        self.client()?.refresh(self.forward(request, true)).await
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        self.client()?.logout(self.forward(request, true)).await
    }

    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        self.client()?.create_user(self.forward(request, false)).await
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::User> {
        self.client()?.get_user(self.forward(request, false)).await
    }

    async fn list_users(&self, request: Request<pb::ListUsersRequest>) -> Reply<pb::ListUsersResponse> {
        self.client()?.list_users(self.forward(request, false)).await
    }

    async fn update_user(&self, request: Request<pb::UpdateUserRequest>) -> Reply<pb::User> {
        self.client()?.update_user(self.forward(request, false)).await
    }

    async fn delete_user(&self, request: Request<pb::DeleteUserRequest>) -> Reply<pb::DeleteUserResponse> {
        self.client()?.delete_user(self.forward(request, false)).await
    }

    async fn change_password(&self, request: Request<pb::ChangePasswordRequest>) -> Reply<pb::ChangePasswordResponse> {
        // Checking the old password is throttled like a log-in: per client.
        self.client()?.change_password(self.forward(request, true)).await
    }

    async fn create_api_key(&self, request: Request<pb::CreateApiKeyRequest>) -> Reply<pb::CreateApiKeyResponse> {
        self.client()?.create_api_key(self.forward(request, false)).await
    }

    async fn list_api_keys(&self, request: Request<pb::ListApiKeysRequest>) -> Reply<pb::ListApiKeysResponse> {
        self.client()?.list_api_keys(self.forward(request, false)).await
    }

    async fn revoke_api_key(&self, request: Request<pb::RevokeApiKeyRequest>) -> Reply<pb::ApiKey> {
        self.client()?.revoke_api_key(self.forward(request, false)).await
    }

    async fn authenticate(&self, _: Request<pb::AuthenticateRequest>) -> Reply<pb::AccessGrant> {
        Err(to_status(&WireError::new(
            ErrorCode::Unimplemented,
            "Authenticate is the gateways' own call to the auth service; clients send their credential with each \
             request instead",
            false,
        )))
    }
}
