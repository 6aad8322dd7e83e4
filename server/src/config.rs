//! Configuration of every `vectron` process, in layers: built-in defaults → a TOML
//! file (`--config FILE` or `VECTRON_CONFIG`) → environment (`VECTRON__SECTION__KEY`,
//! e.g. `VECTRON__WORKER__ZONE=b`) → command-line flags. Durations are written the
//! human way (`"500ms"`, `"5s"`, `"1m"`). `vectron.example.toml` at the repository root
//! lists every key with its default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use vectron_auth::service::AuthConfig;
use vectron_auth::setup::StoreLocation;
use vectron_auth::throttle::ThrottleConfig;
use vectron_auth::tokens::{SigningKey, TokenConfig};
use vectron_common::raft::timing::{GroupKind, LogCompaction};
use vectron_engine::store::Durability;
use vectron_reranker::cross_encoder::{ApiFormat, CrossEncoders, Endpoint};

/// Every section; each process reads the one(s) it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub placement: PlacementSection,
    pub worker: WorkerSection,
    pub gateway: GatewaySection,
    pub auth: AuthSection,
    pub reranker: RerankerSection,
    pub dev: DevSection,
    pub cluster: ClusterSection,
    pub tls: TlsSection,
}

/// TLS on every port ([`vectron_common::tls`]): mutual TLS between the processes of the
/// cluster, TLS for the gateway's clients. Off unless `cert_file` is given; then
/// `key_file` and `ca_file` are needed too. PEM files, as a cert-manager Secret holds
/// them (`tls.crt`, `tls.key`, `ca.crt`), checked for changes every `reload_interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// This process's certificate chain: served on its internal ports and presented on
    /// its calls to other processes (so it needs the serverAuth and clientAuth usages,
    /// and every name peers dial it by).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The CA that signs the cluster's certificates: the only one trusted inside.
    pub ca_file: Option<PathBuf>,
    /// The gateway's certificate for its clients (none: `cert_file`).
    pub public_cert_file: Option<PathBuf>,
    pub public_key_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            cert_file: None,
            key_file: None,
            ca_file: None,
            public_cert_file: None,
            public_key_file: None,
            reload_interval: Duration::from_secs(10),
        }
    }
}

impl TlsSection {
    /// The files, if TLS is configured; an error if only some are given.
    pub fn files(&self) -> Result<Option<vectron_common::tls::TlsFiles>> {
        let public = match (&self.public_cert_file, &self.public_key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => bail!("give tls.public_cert_file and tls.public_key_file together"),
        };
        match (&self.cert_file, &self.key_file, &self.ca_file) {
            (Some(cert), Some(key), Some(ca)) => Ok(Some(vectron_common::tls::TlsFiles {
                cert_file: cert.clone(),
                key_file: key.clone(),
                ca_file: ca.clone(),
                public,
            })),
            (None, None, None) if public.is_none() => Ok(None),
            _ => bail!(
                "TLS needs tls.cert_file, tls.key_file and tls.ca_file (--tls-cert-file, --tls-key-file, \
                 --tls-ca-file): the cluster's ports are mutual TLS, so every process presents a certificate \
                 and checks its peers' against the CA"
            ),
        }
    }
}

/// What the processes of one cluster share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// File holding the cluster secret (at least 32 bytes) every placement node, worker
    /// and gateway of the cluster is given; internal APIs refuse calls without it.
    pub secret_file: Option<PathBuf>,
    /// The secret itself (`VECTRON__CLUSTER__SECRET`); give this or `secret_file`.
    pub secret: Option<String>,
}

impl ClusterSection {
    /// The configured secret, if any.
    pub fn secret(&self) -> Result<Option<Vec<u8>>> {
        match (&self.secret_file, &self.secret) {
            (Some(path), None) => Ok(Some(vectron_common::secret_file::read(path).map_err(anyhow::Error::msg)?)),
            (None, Some(s)) => Ok(Some(s.as_bytes().to_vec())),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => bail!("give cluster.secret_file or cluster.secret, not both"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementSection {
    /// This node's id (must appear in `initial_members`).
    pub node_id: u64,
    /// The node's ordinal in a StatefulSet (the pod-index label): when set, the node id
    /// is `node_ordinal + 1` whatever `node_id` says, so pod `…-0` is node 1.
    pub node_ordinal: Option<u64>,
    /// Address to listen on (Raft and the placement API).
    pub listen: SocketAddr,
    /// The ops port: `GET /metrics`, `/livez`, `/readyz` over plain HTTP without
    /// credentials, for scrapers and probes (keep it off the clients' network); none by
    /// default.
    pub metrics: Option<SocketAddr>,
    /// Address other nodes reach this one at (defaults to `listen`).
    pub advertise: Option<String>,
    /// Every member as `id=host:port`; this node alone when empty.
    pub initial_members: Vec<String>,
    pub data_dir: PathBuf,
    /// A worker silent this long is marked down.
    #[serde(with = "humantime_serde")]
    pub down_after: Duration,
    /// A worker down this long has its replicas replaced elsewhere.
    #[serde(with = "humantime_serde")]
    pub replace_after: Duration,
    pub durability: Durability,
}

impl Default for PlacementSection {
    fn default() -> Self {
        PlacementSection {
            node_id: 1,
            node_ordinal: None,
            listen: "127.0.0.1:6001".parse().expect("valid address"),
            metrics: None,
            advertise: None,
            initial_members: Vec::new(),
            data_dir: "./data/placement".into(),
            down_after: Duration::from_secs(5),
            replace_after: Duration::from_secs(60),
            durability: Durability::Process,
        }
    }
}

impl PlacementSection {
    /// This node's id: `node_ordinal + 1` when an ordinal is set, else `node_id`.
    pub fn id(&self) -> u64 {
        self.node_ordinal.map_or(self.node_id, |o| o.saturating_add(1))
    }

    /// The members by id (this node alone when none are configured).
    pub fn members(&self) -> Result<BTreeMap<u64, String>> {
        let advertise = self.advertise.clone().unwrap_or_else(|| self.listen.to_string());
        if self.initial_members.is_empty() {
            return Ok(BTreeMap::from([(self.id(), advertise)]));
        }
        let mut members = BTreeMap::new();
        for m in &self.initial_members {
            let (id, addr) = m.split_once('=').with_context(|| format!("member {m:?} is not id=host:port"))?;
            let id: u64 = id.trim().parse().with_context(|| format!("member id in {m:?}"))?;
            if id == 0 {
                bail!("member ids start at 1");
            }
            members.insert(id, addr.trim().to_owned());
        }
        if !members.contains_key(&self.id()) {
            bail!("node id {} is not among the initial members", self.id());
        }
        Ok(members)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSection {
    /// Address to listen on (Raft and the worker API).
    pub listen: SocketAddr,
    /// The ops port: `GET /metrics`, `/livez`, `/readyz` over plain HTTP without
    /// credentials, for scrapers and probes (keep it off the clients' network); none by
    /// default.
    pub metrics: Option<SocketAddr>,
    pub advertise: Option<String>,
    /// Placement driver addresses.
    pub placement: Vec<String>,
    pub data_dir: PathBuf,
    /// Failure-domain label; replicas of a shard go to distinct zones when possible.
    pub zone: String,
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    pub durability: Durability,
    /// A shard group snapshots (and may drop its log) after this many entries.
    pub snapshot_after_entries: u64,
    /// Entries kept behind a snapshot for replicas that lag a little; replicas further
    /// behind are sent the shard's data.
    pub log_entries_kept: u64,
    /// How often shards with unsaved writes save their graph file in the background: a
    /// worker killed without a clean stop re-inserts at most this much of writes at
    /// its next start.
    #[serde(with = "humantime_serde")]
    pub graph_save_interval: Duration,
}

impl Default for WorkerSection {
    fn default() -> Self {
        WorkerSection {
            listen: "127.0.0.1:9090".parse().expect("valid address"),
            metrics: None,
            advertise: None,
            placement: vec!["127.0.0.1:6001".into()],
            data_dir: "./data/worker".into(),
            zone: String::new(),
            heartbeat: Duration::from_secs(1),
            durability: Durability::Process,
            snapshot_after_entries: LogCompaction::default_for(GroupKind::Shard).snapshot_after,
            log_entries_kept: LogCompaction::default_for(GroupKind::Shard).keep,
            graph_save_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySection {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub placement: Vec<String>,
    /// Default read deadline (a search past it answers partial).
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Budget of a write, retries and leader changes included.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Auth service addresses; every request except health checks needs credentials
    /// it accepts.
    pub auth: Vec<String>,
    /// Serve without checking credentials (tests and trusted networks only); the gateway
    /// refuses to start with neither `auth` nor this.
    pub no_auth: bool,
    /// How long an accepted credential is reused without asking the auth service (a
    /// revoked key works at most this much longer).
    #[serde(with = "humantime_serde")]
    pub auth_cache_ttl: Duration,
    /// Requests per second per user or API key without a limit of its own (0: no
    /// limit; keys created with a limit keep theirs).
    pub rate_limit_per_sec: u32,
    /// Networks of load balancers in front of the gateway, whose `x-forwarded-for` names
    /// the client (for failed-login throttling).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Largest upsert body (HTTP) or message (gRPC), in bytes; other routes have fixed
    /// limits of their own.
    pub max_upsert_bytes: usize,
    /// The reranker service's address (`host:port`); without one, searches that ask for
    /// a rerank are answered in vector order with `reranked: false`.
    pub reranker: Option<String>,
    /// Longest wait for the reranker in one search (its own deadline may cut it
    /// shorter); past it the vector order is served.
    #[serde(with = "humantime_serde")]
    pub rerank_timeout: Duration,
    /// Memory the search cache may take, in bytes (0: no cache, no coalescing). A cached
    /// answer is served only while every shard it came from is unchanged.
    pub search_cache_bytes: u64,
    /// Longest a search answer is served from the cache.
    #[serde(with = "humantime_serde")]
    pub search_cache_ttl: Duration,
    /// On SIGTERM, how long the gateway reports not ready while it goes on serving (so
    /// load balancers stop sending it requests) before it stops accepting and finishes
    /// what is in flight.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// A port serving `GET /metrics` without credentials, for scrapers (keep it off the
    /// clients' network); none by default (the API port's `/metrics` needs an admin).
    pub metrics: Option<SocketAddr>,
    /// The management console's built files (`console/dist`, made by `npm run build`),
    /// served at `/console`; none by default (`/console` then answers 404).
    pub console_dir: Option<PathBuf>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            http: "127.0.0.1:8080".parse().expect("valid address"),
            grpc: "127.0.0.1:8081".parse().expect("valid address"),
            placement: vec!["127.0.0.1:6001".into()],
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(15),
            auth: Vec::new(),
            no_auth: false,
            auth_cache_ttl: Duration::from_secs(2),
            rate_limit_per_sec: 0,
            trusted_proxies: Vec::new(),
            max_upsert_bytes: vectron_gateway::policy::DEFAULT_UPSERT_BYTES,
            reranker: None,
            rerank_timeout: Duration::from_secs(1),
            search_cache_bytes: 64 << 20,
            search_cache_ttl: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            metrics: None,
            console_dir: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RerankerSection {
    pub listen: SocketAddr,
    /// The ops port: `GET /metrics`, `/livez`, `/readyz` over plain HTTP without
    /// credentials, for scrapers and probes (keep it off the clients' network); none by
    /// default.
    pub metrics: Option<SocketAddr>,
    /// External reranking endpoints the `cross_encoder` strategy may call, by name (a
    /// request names one; `default` when it names none).
    pub cross_encoders: BTreeMap<String, CrossEncoderSection>,
    /// On SIGTERM, how long to report not ready while still serving, before closing.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
}

impl Default for RerankerSection {
    fn default() -> Self {
        RerankerSection {
            listen: "127.0.0.1:50051".parse().expect("valid address"),
            metrics: None,
            cross_encoders: BTreeMap::new(),
            drain_delay: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossEncoderSection {
    /// The rerank route's full URL (`http://…/rerank`).
    pub url: String,
    /// `tei` (text-embeddings-inference: `{query, texts}`) or `cohere` (`{query,
    /// documents}`).
    #[serde(default)]
    pub format: ApiFormat,
    /// Sent as `model` (cohere format).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default = "default_cross_encoder_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_cross_encoder_batch")]
    pub batch_size: usize,
}

fn default_cross_encoder_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_cross_encoder_batch() -> usize {
    32
}

impl RerankerSection {
    /// The configured endpoints, checked.
    pub fn cross_encoders(&self) -> Result<CrossEncoders> {
        let endpoints = self
            .cross_encoders
            .iter()
            .map(|(name, e)| {
                let endpoint = Endpoint {
                    url: e.url.clone(),
                    format: e.format,
                    model: e.model.clone(),
                    timeout: e.timeout,
                    batch_size: e.batch_size,
                };
                (name.clone(), endpoint)
            })
            .collect();
        CrossEncoders::new(endpoints).map_err(anyhow::Error::msg)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    pub listen: SocketAddr,
    /// The ops port: `GET /metrics`, `/livez`, `/readyz` over plain HTTP without
    /// credentials, for scrapers and probes (keep it off the clients' network); none by
    /// default.
    pub metrics: Option<SocketAddr>,
    /// On SIGTERM, how long to report not ready while still serving, before closing.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// etcd endpoints; when empty, the embedded store under `data_dir` (then only one
    /// auth process may serve these records).
    pub etcd: Vec<String>,
    /// Every key lives under it (several deployments can share one etcd).
    pub etcd_prefix: String,
    pub data_dir: PathBuf,
    /// File holding the JWT signing secret (at least 32 bytes), e.g. a mounted secret.
    pub signing_key_file: Option<PathBuf>,
    /// The secret itself, for environments that pass secrets as variables
    /// (`VECTRON__AUTH__SIGNING_SECRET`); give this or `signing_key_file`.
    pub signing_secret: Option<String>,
    /// Key id written in tokens (`kid`); change it with the secret when rotating.
    pub signing_key_id: String,
    /// Earlier keys still accepted for tokens they signed, as `id=path`.
    pub previous_signing_keys: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// Anyone may create a (non-admin) user.
    pub open_signup: bool,
    /// Created on first start (no users yet).
    pub admin_user: String,
    /// The first admin's password (`VECTRON__AUTH__ADMIN_PASSWORD`); when unset, one is
    /// generated and printed once.
    pub admin_password: Option<String>,
    /// When set and the file is missing: create an admin API key for `admin_user` and
    /// store it there (mode 0600); `vectron dev` uses `<data>/admin.key`.
    pub admin_key_file: Option<PathBuf>,
    /// Without a cluster secret, peers whose `x-forwarded-for` names the client (with
    /// one, every caller holds the cluster token and is believed). Empty by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Failed logins of one user from one client before lock-outs begin.
    pub login_free_failures: u32,
    /// The first lock-out; each further failure doubles it, up to `login_max_lockout`.
    #[serde(with = "humantime_serde")]
    pub login_lockout: Duration,
    #[serde(with = "humantime_serde")]
    pub login_max_lockout: Duration,
    /// Failed logins from one client (any users) before it is locked out.
    pub login_source_free_failures: u32,
    /// The per-user ceiling: this many failures (from any client) at once hold off the
    /// user's log-ins from clients that never logged in as the user before…
    pub login_user_burst: u32,
    /// …then one more per this interval (the longest a third party can hold the user off).
    #[serde(with = "humantime_serde")]
    pub login_user_refill: Duration,
    /// Active API keys one user may own.
    pub max_keys_per_user: usize,
    /// Highest rate limit an admin may give a key.
    pub max_key_rate_limit_per_sec: u32,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            listen: "127.0.0.1:8090".parse().expect("valid address"),
            metrics: None,
            drain_delay: Duration::ZERO,
            etcd: Vec::new(),
            etcd_prefix: vectron_auth::store::DEFAULT_PREFIX.to_owned(),
            data_dir: "./data/auth".into(),
            signing_key_file: None,
            signing_secret: None,
            signing_key_id: "k1".into(),
            previous_signing_keys: Vec::new(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            open_signup: false,
            admin_user: "admin".into(),
            admin_password: None,
            admin_key_file: None,
            trusted_proxies: Vec::new(),
            login_free_failures: 5,
            login_lockout: Duration::from_secs(1),
            login_max_lockout: Duration::from_secs(15 * 60),
            login_source_free_failures: 20,
            login_user_burst: 20,
            login_user_refill: Duration::from_secs(30),
            max_keys_per_user: 100,
            max_key_rate_limit_per_sec: 100_000,
        }
    }
}

impl AuthSection {
    /// Where the records live.
    pub fn store_location(&self) -> StoreLocation {
        if self.etcd.is_empty() {
            StoreLocation::Embedded { path: self.data_dir.join("store") }
        } else {
            StoreLocation::Etcd { endpoints: self.etcd.clone(), prefix: self.etcd_prefix.clone() }
        }
    }

    /// The signing keys: the current one, and earlier ones still accepted.
    pub fn token_config(&self) -> Result<TokenConfig> {
        let kid = &self.signing_key_id;
        let current = match (&self.signing_key_file, &self.signing_secret) {
            (Some(path), None) => SigningKey::from_file(kid, path)?,
            (None, Some(secret)) => SigningKey::new(kid, secret.as_bytes())?,
            (Some(_), Some(_)) => bail!("give auth.signing_key_file or auth.signing_secret, not both"),
            (None, None) => bail!(
                "the auth service needs a JWT signing secret of at least 32 bytes: auth.signing_key_file \
                 (--signing-key-file) or VECTRON__AUTH__SIGNING_SECRET"
            ),
        };
        let mut previous = Vec::new();
        for entry in &self.previous_signing_keys {
            let (id, path) =
                entry.split_once('=').with_context(|| format!("previous signing key {entry:?} is not id=path"))?;
            if id == kid {
                bail!("previous signing key {id:?} has the current key's id");
            }
            previous.push(SigningKey::from_file(id, Path::new(path))?);
        }
        let mut tokens = TokenConfig::new(current);
        tokens.access_ttl = self.access_ttl;
        tokens.refresh_ttl = self.refresh_ttl;
        tokens.previous_keys = previous;
        Ok(tokens)
    }

    pub fn service_config(&self) -> AuthConfig {
        AuthConfig {
            open_signup: self.open_signup,
            login_throttle: ThrottleConfig {
                free_failures: self.login_free_failures,
                base_delay: self.login_lockout,
                max_delay: self.login_max_lockout,
                source_free_failures: self.login_source_free_failures,
                user_burst: self.login_user_burst,
                user_refill: self.login_user_refill,
                ..ThrottleConfig::default()
            },
            trusted_proxies: self.trusted_proxies.clone(),
            max_keys_per_user: self.max_keys_per_user,
            max_key_rate_limit_per_sec: self.max_key_rate_limit_per_sec,
            ..AuthConfig::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevSection {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub placement_listen: SocketAddr,
    pub worker_listen: SocketAddr,
    pub auth_listen: SocketAddr,
    pub reranker_listen: SocketAddr,
    /// Serve without credentials (by default dev runs an auth service and creates an
    /// admin API key on first start).
    pub no_auth: bool,
    /// The console's built files, served at `/console` (as `gateway.console_dir`).
    pub console_dir: Option<PathBuf>,
    /// TLS on every port with certificates made for this machine under
    /// `<data_dir>/tls` on first start (`ca.crt` is what clients trust), unless `[tls]`
    /// names files.
    pub tls: bool,
}

impl Default for DevSection {
    fn default() -> Self {
        DevSection {
            data_dir: "./data".into(),
            http: "127.0.0.1:8080".parse().expect("valid address"),
            grpc: "127.0.0.1:8081".parse().expect("valid address"),
            placement_listen: "127.0.0.1:6001".parse().expect("valid address"),
            worker_listen: "127.0.0.1:9090".parse().expect("valid address"),
            auth_listen: "127.0.0.1:8090".parse().expect("valid address"),
            reranker_listen: "127.0.0.1:50051".parse().expect("valid address"),
            no_auth: false,
            console_dir: None,
            tls: false,
        }
    }
}

impl Config {
    /// Loads the layers: defaults, `file` (if given), `VECTRON__…` environment, then
    /// `flags` (a partial config holding only what was given on the command line).
    pub fn load(file: Option<&Path>, flags: serde_json::Value) -> Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("VECTRON__").split("__")).merge(Serialized::defaults(flags));
        let config: Config = figment.extract().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types cannot: members, non-empty address lists, sane durations.
    pub fn validate(&self) -> Result<()> {
        self.placement.members()?;
        if self.worker.placement.is_empty() || self.gateway.placement.is_empty() {
            bail!("placement address lists must not be empty");
        }
        // (worker.heartbeat must also be well under placement.down_after, but the two
        // are read by different processes, so each checks only its own.)
        if self.worker.heartbeat.is_zero() {
            bail!("worker.heartbeat must be positive");
        }
        if self.worker.snapshot_after_entries == 0 {
            bail!("worker.snapshot_after_entries must be positive");
        }
        if self.placement.replace_after < self.placement.down_after {
            bail!("placement.replace_after must be at least placement.down_after");
        }
        if self.gateway.read_timeout.is_zero() || self.gateway.write_timeout.is_zero() {
            bail!("gateway timeouts must be positive");
        }
        if self.auth.access_ttl.is_zero() || self.auth.refresh_ttl < self.auth.access_ttl {
            bail!("auth.access_ttl must be positive and at most auth.refresh_ttl");
        }
        if self.auth.login_max_lockout < self.auth.login_lockout {
            bail!("auth.login_max_lockout must be at least auth.login_lockout");
        }
        if self.auth.login_user_burst == 0 || self.auth.login_user_refill.is_zero() {
            bail!("auth.login_user_burst and auth.login_user_refill must be positive");
        }
        if self.gateway.max_upsert_bytes < 1024 {
            bail!("gateway.max_upsert_bytes must be at least 1024");
        }
        if self.gateway.rerank_timeout.is_zero() {
            bail!("gateway.rerank_timeout must be positive");
        }
        self.reranker.cross_encoders()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_example_file_load_and_agree() {
        let defaults = Config::load(None, serde_json::json!({})).unwrap();
        assert_eq!(defaults, Config::default());
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectron.example.toml");
        let loaded = Config::load(Some(&example), serde_json::json!({})).unwrap();
        assert_eq!(loaded, Config::default(), "the example lists the defaults");
    }

    #[test]
    fn layers_override_in_order_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.toml");
        std::fs::write(&file, "[worker]\nzone = \"a\"\nheartbeat = \"300ms\"\n[placement]\ndown_after = \"2s\"\n")
            .unwrap();
        let c = Config::load(Some(&file), serde_json::json!({"worker": {"zone": "b"}})).unwrap();
        assert_eq!(c.worker.zone, "b", "flags win over the file");
        assert_eq!(c.worker.heartbeat, Duration::from_millis(300));
        assert_eq!(c.placement.down_after, Duration::from_secs(2));
        std::fs::write(&file, "[worker]\nzoen = \"a\"\n").unwrap();
        assert!(Config::load(Some(&file), serde_json::json!({})).is_err(), "unknown keys are refused");
        std::fs::write(&file, "[placement]\ndown_after = \"soon\"\n").unwrap();
        assert!(Config::load(Some(&file), serde_json::json!({})).is_err(), "bad durations are refused");
        let bad_members = serde_json::json!({"placement": {"node_id": 4, "initial_members": ["1=a:1", "2=b:2"]}});
        assert!(Config::load(None, bad_members).is_err(), "a node must be among the members");
        assert!(Config::load(Some(&dir.path().join("missing.toml")), serde_json::json!({})).is_err());
    }
}
