//! Where a command goes and as whom: `--url`, `--api-key` and `--ca-file` (or
//! `VECTRON_URL`, `VECTRON_API_KEY`, `VECTRON_CA_FILE`), else the profile's
//! (`--profile`, `VECTRON_PROFILE`, or the one `vectron login` saved last), else the
//! local gateway without credentials.
//!
//! Profiles live in `$XDG_CONFIG_HOME/vectron/config.toml` (`~/.config/vectron/…`),
//! written owner-only (0600, in a 0700 folder) since they hold credentials: an API key,
//! or a user's access and refresh tokens — the access token is refreshed (and the
//! profile rewritten) when it has less than a minute left. Changes are made under the
//! file's lock (`config.toml.lock`): of several `vectron`s started at once one
//! refreshes and the others use its token (a refresh token used twice ends the
//! session), and a log-in never undoes another's change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use serde::{Deserialize, Serialize};
use vectron_sdk::Client;

use crate::output::Format;
use crate::{Exit, Failure, files};

/// The gateway a command goes to without `--url` or a profile.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8081";

/// The profile `vectron login` writes without `--profile`.
pub const DEFAULT_PROFILE: &str = "default";

/// Where a command goes, as whom, and how it prints.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The gateway's gRPC address [default: the profile's, else http://127.0.0.1:8081].
    #[arg(long, global = true, env = "VECTRON_URL")]
    pub url: Option<String>,
    /// An API key (vx_…) [default: the profile's credential].
    #[arg(long, global = true, env = "VECTRON_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The CA certificate (PEM) an https:// gateway's certificate is signed by.
    #[arg(long, global = true, env = "VECTRON_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The profile to use [default: the one `vectron login` saved last].
    #[arg(long, global = true, env = "VECTRON_PROFILE")]
    pub profile: Option<String>,
    /// Output: aligned tables for people, JSON for scripts.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// One saved gateway and credential.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Who logged in (with the tokens below).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<u64>,
}

impl Profile {
    /// Keeps a log-in's tokens (dropping an API key the profile had).
    pub fn set_tokens(&mut self, username: Option<String>, pair: &vectron_proto::v1::TokenPair) {
        self.api_key = None;
        if username.is_some() {
            self.username = username;
        }
        self.access_token = Some(pair.access_token.clone());
        self.access_expires_at = Some(pair.access_expires_at);
        self.refresh_token = Some(pair.refresh_token.clone());
        self.refresh_expires_at = Some(pair.refresh_expires_at);
    }

    /// Forgets every credential.
    pub fn clear_credentials(&mut self) {
        *self = Profile { url: self.url.take(), ca_file: self.ca_file.take(), ..Profile::default() };
    }
}

/// The config file: profiles by name, and the current one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// The config file's path: `$XDG_CONFIG_HOME/vectron/config.toml`, else
/// `$HOME/.config/vectron/config.toml`.
pub fn config_path() -> Result<PathBuf, Failure> {
    Ok(files::base_dir("XDG_CONFIG_HOME", ".config")?.join("config.toml"))
}

impl Profiles {
    /// The file at `path`; none yet is no profiles.
    pub fn load(path: &Path) -> Result<Profiles, Failure> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| Failure::invalid(format!("{}: not a profiles file: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Profiles::default()),
            Err(e) => Err(Failure::new(Exit::Failed, format!("{}: {e}", path.display()))),
        }
    }

    /// Writes the file owner-only, whole or not at all.
    pub fn save(&self, path: &Path) -> Result<(), Failure> {
        let text = toml::to_string_pretty(self).map_err(|e| Failure::new(Exit::Failed, e.to_string()))?;
        files::write_private(path, text.as_bytes())
    }

    /// Reads the file, applies `change` and writes it back, holding its lock (taken off
    /// the async threads): of two `vectron`s at once, neither loses the other's change.
    pub async fn update<T>(path: &Path, change: impl FnOnce(&mut Profiles) -> T) -> Result<T, Failure> {
        let _lock = lock(path).await?;
        let mut profiles = Profiles::load(path)?;
        let out = change(&mut profiles);
        profiles.save(path)?;
        Ok(out)
    }

    /// The name of the profile `asked` for, else the current one, else the default.
    pub fn name(&self, asked: Option<&str>) -> String {
        asked.map(str::to_owned).or_else(|| self.current.clone()).unwrap_or_else(|| DEFAULT_PROFILE.to_owned())
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Waits for the profiles file's lock (see [`files::lock`]).
async fn lock(path: &Path) -> Result<std::fs::File, Failure> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || files::lock(&path))
        .await
        .map_err(|e| Failure::new(Exit::Failed, e.to_string()))?
}

/// The access token of `profile` if it has more than the margin left.
fn fresh_token(profile: &Profile, now: u64) -> Option<&str> {
    match (&profile.access_token, profile.access_expires_at) {
        (Some(token), Some(expires)) if expires > now + REFRESH_MARGIN_SECS => Some(token),
        _ => None,
    }
}

/// An access token with less than this left is refreshed first.
const REFRESH_MARGIN_SECS: u64 = 60;

/// Connects to `url` (over TLS for `https://`, trusting `ca_file` if given).
pub async fn open(url: &str, ca_file: Option<&Path>) -> Result<Client, Failure> {
    let unreachable = |e: vectron_sdk::Error| {
        let exit = if e.code == vectron_sdk::ErrorCode::InvalidArgument { Exit::Invalid } else { Exit::Unavailable };
        Failure::new(exit, format!("cannot reach the gateway at {url}: {}", e.message))
    };
    match ca_file {
        Some(ca) => {
            let pem = std::fs::read(ca).map_err(|e| Failure::invalid(format!("{}: {e}", ca.display())))?;
            Client::connect_with_ca(url, &pem).await.map_err(unreachable)
        }
        None => Client::connect(url).await.map_err(unreachable),
    }
}

/// The client `target` names, with its credential (refreshing a profile's access token
/// when it is about to expire).
pub async fn connect(target: &Target) -> Result<Client, Failure> {
    Ok(connect_to(target).await?.0)
}

/// [`connect`], and the gateway's URL.
pub async fn connect_to(target: &Target) -> Result<(Client, String), Failure> {
    let path = config_path()?;
    let profiles = Profiles::load(&path)?;
    let name = profiles.name(target.profile.as_deref());
    if target.profile.is_some() && !profiles.profiles.contains_key(&name) {
        return Err(Failure::new(
            Exit::NotFound,
            format!("no profile {name:?} in {}; save one with `vectron login --profile {name}`", path.display()),
        ));
    }
    let profile = profiles.profiles.get(&name).cloned().unwrap_or_default();
    let url = target.url.clone().or_else(|| profile.url.clone()).unwrap_or_else(|| DEFAULT_URL.to_owned());
    let ca_file = target.ca_file.clone().or_else(|| profile.ca_file.clone());
    let client = open(&url, ca_file.as_deref()).await?;
    // A URL given on the command line is another gateway: the profile's credential is
    // for its own.
    let same_gateway = target.url.is_none() || target.url == profile.url;
    if let Some(key) = target.api_key.as_deref().or(profile.api_key.as_deref().filter(|_| same_gateway)) {
        return Ok((client.with_api_key(key)?, url));
    }
    if !same_gateway {
        return Ok((client, url));
    }
    if let Some(token) = fresh_token(&profile, now_secs()) {
        return Ok((client.with_bearer_token(token)?, url));
    }
    if profile.refresh_token.is_none() {
        return Ok((client, url));
    }
    // A refresh token is good for one refresh (a second use ends the session): one
    // `vectron` at a time refreshes, and the others then take the token it saved.
    let _lock = lock(&path).await?;
    let mut profiles = Profiles::load(&path)?;
    let profile = profiles.profiles.get(&name).cloned().unwrap_or_default();
    let now = now_secs();
    if let Some(token) = fresh_token(&profile, now) {
        return Ok((client.with_bearer_token(token)?, url));
    }
    if let Some(refresh) = profile.refresh_token.as_deref()
        && profile.refresh_expires_at.is_none_or(|t| t > now)
    {
        let pair = client.refresh(refresh).await.map_err(|e| {
            let mut f = Failure::from(e);
            f.message = format!("{}; log in again with `vectron login --profile {name}`", f.message);
            f
        })?;
        let mut updated = profile.clone();
        updated.set_tokens(None, &pair);
        profiles.profiles.insert(name, updated);
        profiles.save(&path)?;
        return Ok((client.with_bearer_token(&pair.access_token)?, url));
    }
    Ok((client, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn profiles_are_saved_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectron").join("config.toml");
        assert_eq!(Profiles::load(&path).unwrap(), Profiles::default(), "no file yet: no profiles");
        let mut profiles = Profiles { current: Some("prod".into()), ..Profiles::default() };
        let profile =
            Profile { url: Some("https://db:8081".into()), api_key: Some("vx_1_2".into()), ..Profile::default() };
        profiles.profiles.insert("prod".into(), profile);
        profiles.save(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(Profiles::load(&path).unwrap(), profiles);
        assert_eq!(profiles.name(None), "prod");
        assert_eq!(profiles.name(Some("other")), "other");
        assert_eq!(Profiles::default().name(None), DEFAULT_PROFILE);

        // A log-in replaces the key; log-out keeps only where the gateway is.
        let mut p = profiles.profiles["prod"].clone();
        let pair = vectron_proto::v1::TokenPair {
            access_token: "a".into(),
            refresh_token: "r".into(),
            access_expires_at: 10,
            refresh_expires_at: 20,
        };
        p.set_tokens(Some("ann".into()), &pair);
        assert_eq!(
            (p.api_key.as_deref(), p.username.as_deref(), p.refresh_token.as_deref()),
            (None, Some("ann"), Some("r"))
        );
        p.clear_credentials();
        assert_eq!(p, Profile { url: Some("https://db:8081".into()), ..Profile::default() });

        std::fs::write(&path, "profiles = 3").unwrap();
        assert_eq!(Profiles::load(&path).unwrap_err().exit, Exit::Invalid);
    }
}
