//! `vectron.v1.AuthService` through the gateway: log-in and tokens, users, API keys.
//! The auth service judges each call by the client's own credential.

use vectron_proto::v1 as pb;

use crate::{Client, Result};

impl Client {
    /// Logs `username` in: an access token (for [`Client::with_bearer_token`]) and a
    /// refresh token.
    pub async fn login(&self, username: &str, password: &str) -> Result<pb::TokenPair> {
        let r = pb::LoginRequest { username: username.to_owned(), password: password.to_owned() };
        self.call_on(
            &self.accounts,
            |mut a| {
                let r = r.clone();
                async move { a.login(r).await }
            },
            false,
        )
        .await
    }

    /// Trades a refresh token for a new pair (the old one is used up).
    pub async fn refresh(&self, refresh_token: &str) -> Result<pb::TokenPair> {
        let r = pb::RefreshRequest { refresh_token: refresh_token.to_owned() };
        self.call_on(
            &self.accounts,
            |mut a| {
                let r = r.clone();
                async move { a.refresh(r).await }
            },
            false,
        )
        .await
    }

    /// Ends the session a refresh token belongs to.
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        let r = pb::LogoutRequest { refresh_token: refresh_token.to_owned() };
        self.call_on(
            &self.accounts,
            |mut a| {
                let r = r.clone();
                async move { a.logout(r).await }
            },
            true,
        )
        .await?;
        Ok(())
    }

    pub async fn create_user(&self, username: &str, password: &str, role: pb::Role) -> Result<pb::User> {
        let r =
            pb::CreateUserRequest { username: username.to_owned(), password: password.to_owned(), role: role.into() };
        self.call_on(
            &self.accounts,
            |mut a| {
                let r = r.clone();
                async move { a.create_user(r).await }
            },
            false,
        )
        .await
    }

    pub async fn get_user(&self, username: &str) -> Result<pb::User> {
        let r = pb::GetUserRequest { username: username.to_owned() };
        self.call_on(
            &self.accounts,
            |mut a| {
                let r = r.clone();
                async move { a.get_user(r).await }
            },
            true,
        )
        .await
    }

    pub async fn list_users(&self) -> Result<Vec<pb::User>> {
        let out = self
            .call_on(&self.accounts, |mut a| async move { a.list_users(pb::ListUsersRequest {}).await }, true)
            .await?;
        Ok(out.users)
    }

    /// Changes a user's role and/or resets their password (admins).
    pub async fn update_user(
        &self,
        username: &str,
        role: Option<pb::Role>,
        new_password: Option<&str>,
    ) -> Result<pb::User> {
        let r = pb::UpdateUserRequest {
            username: username.to_owned(),
            role: role.map(Into::into),
            new_password: new_password.map(str::to_owned),
        };
        self.call_on(
            &self.accounts,
            |mut a| {
                let r = r.clone();
                async move { a.update_user(r).await }
            },
            true,
        )
        .await
    }

    pub async fn delete_user(&self, username: &str) -> Result<()> {
        let r = pb::DeleteUserRequest { username: username.to_owned() };
        self.call_on(
            &self.accounts,
            |mut a| {
                let r = r.clone();
                async move { a.delete_user(r).await }
            },
            false,
        )
        .await?;
        Ok(())
    }

    /// Changes the caller's own password.
    pub async fn change_password(&self, old_password: &str, new_password: &str) -> Result<()> {
        let r =
            pb::ChangePasswordRequest { old_password: old_password.to_owned(), new_password: new_password.to_owned() };
        self.call_on(
            &self.accounts,
            |mut a| {
                let r = r.clone();
                async move { a.change_password(r).await }
            },
            false,
        )
        .await?;
        Ok(())
    }

    /// Creates an API key; its secret is in the answer and nowhere else, ever.
    pub async fn create_api_key(&self, request: pb::CreateApiKeyRequest) -> Result<pb::CreateApiKeyResponse> {
        self.call_on(
            &self.accounts,
            |mut a| {
                let r = request.clone();
                async move { a.create_api_key(r).await }
            },
            false,
        )
        .await
    }

    /// The keys of `owner` (empty: the caller; `*`: everyone's, for admins).
    pub async fn list_api_keys(&self, owner: &str) -> Result<Vec<pb::ApiKey>> {
        let r = pb::ListApiKeysRequest { owner: owner.to_owned() };
        let out = self
            .call_on(
                &self.accounts,
                |mut a| {
                    let r = r.clone();
                    async move { a.list_api_keys(r).await }
                },
                true,
            )
            .await?;
        Ok(out.keys)
    }

    pub async fn revoke_api_key(&self, key_id: &str) -> Result<pb::ApiKey> {
        let r = pb::RevokeApiKeyRequest { key_id: key_id.to_owned() };
        self.call_on(
            &self.accounts,
            |mut a| {
                let r = r.clone();
                async move { a.revoke_api_key(r).await }
            },
            true,
        )
        .await
    }
}
