//! `vectron login|logout`, `vectron keys …` and `vectron users …`: the auth service
//! through the gateway, judged by the caller's own credential. Passwords are read from
//! `VECTRON_PASSWORD`, from stdin (`--password-stdin`, one per line), or at a prompt
//! that does not echo — never from the command line, where `ps` and shell history
//! would keep them.

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use vectron_proto::v1 as pb;

use crate::output::{Format, Table, confirm, emit, time_ms};
use crate::profile::{self, Profile, Profiles, Target, config_path, connect};
use crate::{Exit, Failure, Outcome};

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub target: Target,
    /// Log in as this user (else keep --api-key / VECTRON_API_KEY in the profile).
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Read the password from stdin's first line.
    #[arg(long)]
    pub password_stdin: bool,
    /// Read the API key to keep from stdin's first line (out of `ps` and shell history;
    /// `VECTRON_API_KEY` works too).
    #[arg(long, conflicts_with = "user")]
    pub api_key_stdin: bool,
}

/// A log-out names only the profile: the gateway and credential are the profile's.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The profile to log out of [default: the current one].
    #[arg(long, env = "VECTRON_PROFILE")]
    pub profile: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Secrets read so far from stdin's lines (`--password-stdin` may need two).
fn stdin_line(what: &str) -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        return Err(Failure::invalid(format!("no {what} on stdin")));
    }
    Ok(line)
}

/// A password: from `VECTRON_PASSWORD` (if `env`), stdin, or a prompt.
fn password(what: &str, from_stdin: bool, env: bool) -> Result<String, Failure> {
    if env && let Some(p) = std::env::var("VECTRON_PASSWORD").ok().filter(|p| !p.is_empty()) {
        return Ok(p);
    }
    if from_stdin {
        return stdin_line(what);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::invalid(format!("no terminal to ask for the {what}: use --password-stdin")));
    }
    rpassword::prompt_password(format!("{what}: ")).map_err(Failure::from)
}

/// Runs `vectron login`.
pub async fn login(a: LoginArgs) -> Outcome {
    let path = config_path()?;
    let profiles = Profiles::load(&path)?;
    let name = profiles.name(a.target.profile.as_deref());
    // A new profile goes to the current one's gateway unless told otherwise.
    let current = profiles.current.as_ref().and_then(|c| profiles.profiles.get(c));
    let base = profiles.profiles.get(&name).or(current).cloned().unwrap_or_default();
    let url = a.target.url.clone().or(base.url).unwrap_or_else(|| profile::DEFAULT_URL.to_owned());
    // Kept as an absolute path: later commands run from other folders.
    let ca_file = match a.target.ca_file.clone().or(base.ca_file) {
        Some(p) => Some(std::fs::canonicalize(&p).map_err(|e| Failure::invalid(format!("{}: {e}", p.display())))?),
        None => None,
    };
    let client = profile::open(&url, ca_file.as_deref()).await?;
    let mut saved = Profile { url: Some(url.clone()), ca_file, ..Profile::default() };
    let key = if a.api_key_stdin { Some(stdin_line("API key")?) } else { a.target.api_key.clone() };
    let who = match (&a.user, &key) {
        (Some(user), _) => {
            let pair = client.login(user, &password("password", a.password_stdin, true)?).await?;
            saved.set_tokens(Some(user.clone()), &pair);
            format!("user {user}")
        }
        (None, Some(key)) => {
            // A key that does not work is not worth keeping.
            client.clone().with_api_key(key)?.list_collections().await?;
            saved.api_key = Some(key.trim().to_owned());
            "an API key".to_owned()
        }
        (None, None) => {
            return Err(Failure::invalid("log in with --user NAME, or keep a key with --api-key-stdin or --api-key"));
        }
    };
    Profiles::update(&path, |profiles| {
        profiles.profiles.insert(name.clone(), saved);
        profiles.current = Some(name.clone());
    })
    .await?;
    let value = json!({"profile": name, "url": url, "as": who, "config": path});
    emit(a.target.output, &value, || {
        Table::fields(&[
            ("profile", name.clone()),
            ("url", url.clone()),
            ("as", who.clone()),
            ("saved in", path.display().to_string()),
        ])
    });
    Ok(())
}

/// Runs `vectron logout`: ends the session (if it was a log-in) and forgets the credential.
pub async fn logout(a: LogoutArgs) -> Outcome {
    let path = config_path()?;
    let profiles = Profiles::load(&path)?;
    let name = profiles.name(a.profile.as_deref());
    let Some(saved) = profiles.profiles.get(&name).cloned() else {
        return Err(Failure::new(Exit::NotFound, format!("no profile {name:?} in {}", path.display())));
    };
    if let Some(refresh) = saved.refresh_token.clone() {
        let url = saved.url.clone().unwrap_or_else(|| profile::DEFAULT_URL.to_owned());
        let ended = match profile::open(&url, saved.ca_file.as_deref()).await {
            Ok(client) => client.logout(&refresh).await.map_err(Failure::from),
            Err(e) => Err(e),
        };
        if let Err(e) = ended {
            eprintln!("warning: the session was not ended on the server ({e}); its tokens expire by themselves");
        }
    }
    Profiles::update(&path, |profiles| {
        if let Some(p) = profiles.profiles.get_mut(&name) {
            p.clear_credentials();
        }
    })
    .await?;
    emit(a.output, &json!({"profile": name, "logged_out": true}), || Table::fields(&[("logged out", name.clone())]));
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    Read,
    Write,
    Admin,
}

impl From<ScopeArg> for pb::Scope {
    fn from(s: ScopeArg) -> pb::Scope {
        match s {
            ScopeArg::Read => pb::Scope::Read,
            ScopeArg::Write => pb::Scope::Write,
            ScopeArg::Admin => pb::Scope::Admin,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Your API keys (admins: anyone's, or everyone's with --all).
    List {
        #[arg(long, conflicts_with = "all")]
        owner: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Creates an API key; its secret is printed this once.
    Create {
        #[arg(long, value_enum, default_value_t = ScopeArg::Read)]
        scope: ScopeArg,
        /// Only these collections (comma-separated) [default: every collection].
        #[arg(long, value_delimiter = ',')]
        collections: Vec<String>,
        /// For another user (admins).
        #[arg(long)]
        owner: Option<String>,
        /// Requests per second [default: the gateway's].
        #[arg(long)]
        rate_limit: Option<u32>,
    },
    /// Revokes an API key (by its id).
    Revoke { key_id: String },
}

fn scope_name(raw: i32) -> String {
    pb::Scope::try_from(raw)
        .map_or_else(|_| raw.to_string(), |s| s.as_str_name().trim_start_matches("SCOPE_").to_lowercase())
}

fn key_json(k: &pb::ApiKey) -> Value {
    json!({"key_id": k.key_id, "owner": k.owner, "scope": scope_name(k.scope), "collections": k.collections,
           "rate_limit_per_sec": k.rate_limit_per_sec, "created_at_ms": k.created_at_ms, "revoked": k.revoked})
}

fn keys_table(keys: &[pb::ApiKey]) -> Table {
    let mut t = Table::new(&["key id", "owner", "scope", "collections", "created", "revoked"]);
    for k in keys {
        let collections = if k.collections.is_empty() { "*".to_owned() } else { k.collections.join(",") };
        t.row(vec![
            k.key_id.clone(),
            k.owner.clone(),
            scope_name(k.scope),
            collections,
            time_ms(k.created_at_ms),
            k.revoked.to_string(),
        ]);
    }
    t
}

/// Runs a `vectron keys` command.
pub async fn keys(target: Target, command: KeysCommand) -> Outcome {
    let client = connect(&target).await?;
    match command {
        KeysCommand::List { owner, all } => {
            let owner = if all { "*".to_owned() } else { owner.unwrap_or_default() };
            let keys = client.list_api_keys(&owner).await?;
            let value = json!({"keys": keys.iter().map(key_json).collect::<Vec<_>>()});
            emit(target.output, &value, || keys_table(&keys));
        }
        KeysCommand::Create { scope, collections, owner, rate_limit } => {
            let request = pb::CreateApiKeyRequest {
                owner: owner.unwrap_or_default(),
                scope: pb::Scope::from(scope).into(),
                collections,
                rate_limit_per_sec: rate_limit.unwrap_or(0),
            };
            let created = client.create_api_key(request).await?;
            let key = created.key.unwrap_or_default();
            let mut value = key_json(&key);
            value["secret_key"] = json!(created.secret_key);
            emit(target.output, &value, || {
                Table::fields(&[
                    ("key id", key.key_id.clone()),
                    ("scope", scope_name(key.scope)),
                    ("secret key", created.secret_key.clone()),
                ])
            });
            if target.output == Format::Table {
                eprintln!("The secret key is shown this once: keep it now.");
            }
        }
        KeysCommand::Revoke { key_id } => {
            let key = client.revoke_api_key(&key_id).await?;
            emit(target.output, &key_json(&key), || keys_table(std::slice::from_ref(&key)));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    User,
    Admin,
}

impl From<RoleArg> for pb::Role {
    fn from(r: RoleArg) -> pb::Role {
        match r {
            RoleArg::User => pb::Role::User,
            RoleArg::Admin => pb::Role::Admin,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Every user (admins).
    List,
    /// Creates a user (admins); the password is asked for.
    Create {
        username: String,
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
        /// Read the password from stdin's first line.
        #[arg(long)]
        password_stdin: bool,
    },
    /// A user (yourself, or anyone for admins).
    Get { username: String },
    /// Changes a user's role, or resets their password (admins).
    Update {
        username: String,
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Set a new password (asked for).
        #[arg(long)]
        reset_password: bool,
        #[arg(long, requires = "reset_password")]
        password_stdin: bool,
    },
    /// Deletes a user (admins).
    Delete {
        username: String,
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Changes your own password (the old one, then the new one).
    Passwd {
        /// Read the old and the new password from stdin's first two lines.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn role_name(raw: i32) -> String {
    pb::Role::try_from(raw)
        .map_or_else(|_| raw.to_string(), |r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
}

fn user_json(u: &pb::User) -> Value {
    json!({"username": u.username, "role": role_name(u.role), "created_at_ms": u.created_at_ms})
}

fn users_table(users: &[pb::User]) -> Table {
    let mut t = Table::new(&["username", "role", "created"]);
    for u in users {
        t.row(vec![u.username.clone(), role_name(u.role), time_ms(u.created_at_ms)]);
    }
    t
}

/// Runs a `vectron users` command.
pub async fn users(target: Target, command: UsersCommand) -> Outcome {
    let client = connect(&target).await?;
    let one = |u: pb::User| {
        emit(target.output, &user_json(&u), || users_table(std::slice::from_ref(&u)));
    };
    match command {
        UsersCommand::List => {
            let users = client.list_users().await?;
            emit(target.output, &json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}), || {
                users_table(&users)
            });
        }
        UsersCommand::Create { username, role, password_stdin } => {
            let secret = password(&format!("{username}'s password"), password_stdin, false)?;
            one(client.create_user(&username, &secret, role.into()).await?);
        }
        UsersCommand::Get { username } => one(client.get_user(&username).await?),
        UsersCommand::Update { username, role, reset_password, password_stdin } => {
            if role.is_none() && !reset_password {
                return Err(Failure::invalid("nothing to change: give --role or --reset-password"));
            }
            let secret = if reset_password {
                Some(password(&format!("{username}'s new password"), password_stdin, false)?)
            } else {
                None
            };
            one(client.update_user(&username, role.map(Into::into), secret.as_deref()).await?);
        }
        UsersCommand::Delete { username, yes } => {
            if !yes {
                confirm(&format!("Delete user {username:?}?"))?;
            }
            client.delete_user(&username).await?;
            emit(target.output, &json!({"deleted": username}), || Table::fields(&[("deleted", username.clone())]));
        }
        UsersCommand::Passwd { password_stdin } => {
            let old = password("current password", password_stdin, false)?;
            let new = password("new password", password_stdin, false)?;
            client.change_password(&old, &new).await?;
            emit(target.output, &json!({"password_changed": true}), || {
                Table::fields(&[("password", "changed".into())])
            });
        }
    }
    Ok(())
}
