//! A multi-process Vectron cluster on loopback for tests: placement nodes, workers and a
//! gateway, each a real `vectron` process with its own data directory under one temp
//! dir, on free ports. Processes can be SIGKILLed and restarted on their data; every
//! process is killed when the [`Cluster`] is dropped. Each process's log goes to
//! `<dir>/<name>.log`; [`Cluster::logs`] prints their tails when a test fails.
//!
//! With [`ClusterSpec::isolated_hosts`], every process runs on a host of its own (a
//! network namespace, see [`crate::netns`]) instead of on loopback, so that the network
//! between them can be cut.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{Host, Network};

/// Where the `vectron` binary is: next to the test executable's `deps/` folder
/// (cargo builds it for `cargo test --workspace`, as vectron-server has tests), or
/// `VECTRON_BIN`.
pub fn vectron_bin() -> PathBuf {
    if let Ok(p) = std::env::var("VECTRON_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("vectron");
    assert!(bin.exists(), "{} is missing: build it with `cargo build -p vectron-server`", bin.display());
    bin
}

/// Ports handed out come from here: below Linux's ephemeral range (32768-60999), so an
/// outgoing connection never takes one before its server binds it.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port that is free now and was not handed out before in this process.
/// Tests run in parallel and their processes bind the ports later, so a port the OS
/// picks (bind to 0, release) could be picked again for another test in between; a
/// process-wide counter never gives one twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(PORTS.end - PORTS.start);
    // Start somewhere else in each test binary (their leftovers may linger briefly).
    let start = std::process::id() % span;
    for _ in 0..span {
        let port = PORTS.start + ((start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {PORTS:?}");
}

/// One process of the cluster.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub addr: String,
    program: PathBuf,
    args: Vec<String>,
    /// The whole environment (and PATH) it starts with, as a container does; `None`: the
    /// test's own.
    env: Option<Vec<(String, String)>>,
    /// The network namespace it runs in (none: the machine's own network).
    netns: Option<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Starts `vectron ARGS` as `name` (reached at `addr`), logging to `<dir>/<name>.log`.
    pub fn start(name: &str, addr: &str, args: Vec<String>, dir: &Path) -> Node {
        Node::start_in(None, name, addr, args, dir)
    }

    /// [`Node::start`] inside network namespace `netns`, when given.
    pub fn start_in(netns: Option<&str>, name: &str, addr: &str, args: Vec<String>, dir: &Path) -> Node {
        let mut node = Node {
            name: name.into(),
            addr: addr.into(),
            program: vectron_bin(),
            args,
            env: None,
            netns: netns.map(str::to_owned),
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        node.spawn();
        node
    }

    /// Starts `program ARGS` with the environment `env` only (and the test's PATH and
    /// log filter), as `name` (reached at `addr`), logging to `<dir>/<name>.log` — as a
    /// container starts, with nothing of the test's environment.
    pub fn start_program(
        name: &str,
        addr: &str,
        program: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
        dir: &Path,
    ) -> Node {
        let mut node = Node {
            name: name.into(),
            addr: addr.into(),
            program: program.to_owned(),
            args,
            env: Some(env),
            netns: None,
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        node.spawn();
        node
    }

    /// The last `lines` lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open log");
        let err = log.try_clone().expect("clone log");
        // `ip netns exec` enters the namespace and execs vectron (same pid).
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        if let Some(env) = &self.env {
            command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
            if let Some(path) = std::env::var_os("PATH") {
                command.env("PATH", path);
            }
        }
        let child = command
            .args(&self.args)
            .env("RUST_LOG", std::env::var("VECTRON_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()))
            // An error a process exits with is one line in its log, not a backtrace that
            // pushes it out of the tail a failing test shows (panics keep theirs).
            .env("RUST_LIB_BACKTRACE", "0")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn vectron");
        self.child = Some(child);
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILLs the process (no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM, as Kubernetes does, and waits up to `grace` for
    /// it to exit; past that it is SIGKILLed (as Kubernetes would) and `None` returned.
    /// Returns the exit status and how long the stop took.
    pub fn terminate(&mut self, grace: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let started = Instant::now();
        self.send_term();
        self.wait_exit(started, grace)
    }

    /// Sends SIGTERM; the process stops in its own time.
    pub fn send_term(&self) {
        self.signal("-TERM");
    }

    /// Waits until `grace` after `started` for the process to exit; past that it is
    /// SIGKILLed and `None` returned. Returns the exit status and the time since `started`.
    pub fn wait_exit(&mut self, started: Instant, grace: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let mut child = self.child.take().expect("the process runs");
        while started.elapsed() < grace {
            if let Some(status) = child.try_wait().expect("wait for the process") {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Whether the process has exited by itself (it was started and not stopped since).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Starts the process again (after [`Node::terminate`] or [`Node::kill`]).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        self.spawn();
    }

    /// Freezes the process (SIGSTOP): alive but silent, as if cut off by a partition.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let pid = self.child.as_ref().expect("the process runs").id().to_string();
        let ok = Command::new("kill").args([which, &pid]).status().is_ok_and(|s| s.success());
        assert!(ok, "kill {which} {pid}");
    }

    /// Starts the process again on the same data and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `vectron dev` process (every service in one, auth on) on free loopback ports, its
/// data under `<dir>/data`. Addresses are `host:port`.
#[derive(Debug)]
pub struct DevProcess {
    pub node: Node,
    pub http: String,
    pub grpc: String,
    pub auth: String,
    pub reranker: String,
    pub worker: String,
    pub data: PathBuf,
}

impl DevProcess {
    pub fn start(dir: &Path) -> DevProcess {
        DevProcess::start_with(dir, &[])
    }

    /// [`DevProcess::start`] with more flags (e.g. `--config FILE`).
    pub fn start_with(dir: &Path, extra: &[String]) -> DevProcess {
        let port = || format!("127.0.0.1:{}", free_port());
        let (http, grpc, placement, worker, auth, reranker) = (port(), port(), port(), port(), port(), port());
        let data = dir.join("data");
        let args = ["dev", "--data-dir", &data.display().to_string(), "--http", &http, "--grpc", &grpc]
            .into_iter()
            .chain(["--placement", &placement, "--worker", &worker, "--auth", &auth, "--reranker", &reranker])
            .map(String::from)
            .chain(extra.iter().cloned())
            .collect();
        let node = Node::start("dev", &grpc, args, dir);
        DevProcess { node, http, grpc, auth, reranker, worker, data }
    }
}

/// Knobs of a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub placement_nodes: usize,
    pub workers: usize,
    /// Seconds a worker may be down before its replicas are replaced.
    pub replace_after_secs: f64,
    pub down_after_secs: f64,
    /// Extra flags for every worker.
    pub worker_args: Vec<String>,
    /// Extra flags for every placement node.
    pub placement_args: Vec<String>,
    /// Worker `i` is labelled `zones[i % zones.len()]` (none when empty).
    pub zones: Vec<String>,
    /// Every process on a host of its own (see the module docs); needs root.
    pub isolated_hosts: bool,
    /// Runs a `vectron reranker` process the gateway calls (loopback only).
    pub reranker: bool,
    /// TLS on every port: one CA, and one certificate for 127.0.0.1 every process
    /// presents (see [`Cluster::tls`]; loopback only).
    pub tls: bool,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            placement_nodes: 1,
            workers: 3,
            replace_after_secs: 600.0,
            down_after_secs: 3.0,
            worker_args: Vec::new(),
            placement_args: Vec::new(),
            zones: Vec::new(),
            isolated_hosts: false,
            reranker: false,
            tls: false,
        }
    }
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub placement: Vec<Node>,
    pub workers: Vec<Node>,
    pub gateway: Node,
    pub http: String,
    pub grpc: String,
    /// The reranker process, with [`ClusterSpec::reranker`].
    pub reranker: Option<Node>,
    /// Every gateway's flags but its addresses.
    gateway_flags: Vec<String>,
    worker_args: Vec<String>,
    zones: Vec<String>,
    /// With [`ClusterSpec::tls`]: the CA and the certificate every process presents.
    pub tls: Option<vectron_common::tls::TlsFiles>,
    /// The hosts with [`ClusterSpec::isolated_hosts`]: placement nodes first, then the
    /// gateway, then one per worker. Declared last: dropped after the processes.
    pub network: Option<Network>,
}

/// Ports on an isolated host (each process has its host to itself).
const HOST_PLACEMENT_PORT: u16 = 7000;
const HOST_WORKER_PORT: u16 = 9090;
const HOST_HTTP_PORT: u16 = 8080;
const HOST_GRPC_PORT: u16 = 8081;

/// Where a process listens: `port` on its own host, or a free loopback port.
fn listen_address(host: Option<&Host>, port: u16) -> String {
    match host {
        Some(h) => format!("{}:{port}", h.ip),
        None => format!("127.0.0.1:{}", free_port()),
    }
}

fn netns_of(host: Option<&Host>) -> Option<&str> {
    host.map(|h| h.netns.as_str())
}

impl Cluster {
    /// Starts the placement nodes, workers and gateway (not waiting for them).
    pub fn start(spec: ClusterSpec) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        // Every process gets the cluster secret: the internal APIs are authenticated.
        let secret = dir.path().join("cluster.secret");
        std::fs::write(&secret, "a test cluster's shared secret, 32+ bytes\n").expect("write the cluster secret");
        let mut secret_flag = vec!["--cluster-secret-file".to_owned(), secret.display().to_string()];
        let tls = spec.tls.then(|| {
            assert!(!spec.isolated_hosts, "TLS test clusters run on loopback");
            let files = vectron_common::tls::generate(&dir.path().join("tls"), &["127.0.0.1", "localhost"])
                .expect("test certificates");
            let flags = [("--tls-cert-file", &files.cert_file), ("--tls-key-file", &files.key_file)];
            for (flag, path) in flags.into_iter().chain([("--tls-ca-file", &files.ca_file)]) {
                secret_flag.extend([flag.to_owned(), path.display().to_string()]);
            }
            files
        });
        let network = spec.isolated_hosts.then(|| Network::create(spec.placement_nodes + 1 + spec.workers));
        let host = |i: usize| network.as_ref().map(|n| &n.hosts[i]);
        let placement_addrs: Vec<String> =
            (0..spec.placement_nodes).map(|i| listen_address(host(i), HOST_PLACEMENT_PORT)).collect();
        let members: Vec<String> = placement_addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
        let mut placement = Vec::new();
        for (i, addr) in placement_addrs.iter().enumerate() {
            let name = format!("placement-{}", i + 1);
            let args = vec![
                "placement".into(),
                "--node-id".into(),
                (i + 1).to_string(),
                "--listen".into(),
                addr.clone(),
                "--initial-members".into(),
                members.join(","),
                "--data-dir".into(),
                dir.path().join(&name).display().to_string(),
                "--down-after".into(),
                format!("{}ms", (spec.down_after_secs * 1000.0) as u64),
                "--replace-after".into(),
                format!("{}ms", (spec.replace_after_secs * 1000.0) as u64),
            ];
            let args = args.into_iter().chain(secret_flag.iter().cloned()).chain(spec.placement_args.clone()).collect();
            placement.push(Node::start_in(netns_of(host(i)), &name, addr, args, dir.path()));
        }
        let placement_list = placement_addrs.join(",");
        let gateway_host = host(spec.placement_nodes);
        let (http, grpc) = (listen_address(gateway_host, HOST_HTTP_PORT), listen_address(gateway_host, HOST_GRPC_PORT));
        let reranker = spec.reranker.then(|| {
            assert!(network.is_none(), "the reranker process runs on loopback only");
            let addr = listen_address(None, 0);
            let args = ["reranker", "--listen", &addr].into_iter().map(String::from);
            Node::start("reranker", &addr, args.chain(secret_flag.iter().cloned()).collect(), dir.path())
        });
        // Access control has its own tests (gateway/tests/auth.rs).
        let mut gateway_flags = vec!["--placement".into(), placement_list.clone(), "--no-auth".into()];
        if let Some(r) = &reranker {
            gateway_flags.extend(["--reranker".into(), r.addr.clone()]);
        }
        gateway_flags.extend(secret_flag.iter().cloned());
        let args = gateway_args(&http, &grpc, &gateway_flags);
        let gateway = Node::start_in(netns_of(gateway_host), "gateway", &grpc, args, dir.path());
        let worker_args = spec.worker_args.into_iter().chain(secret_flag).collect();
        let zones = spec.zones;
        let mut cluster = Cluster {
            dir,
            placement,
            workers: Vec::new(),
            gateway,
            http,
            grpc,
            reranker,
            gateway_flags,
            worker_args,
            zones,
            network,
            tls,
        };
        for _ in 0..spec.workers {
            cluster.add_worker();
        }
        cluster
    }

    /// Starts another gateway of the cluster on free loopback ports, named `name`.
    pub fn start_gateway(&self, name: &str) -> GatewayProcess {
        self.start_gateway_with(name, &[])
    }

    /// [`Cluster::start_gateway`] with `extra` flags.
    pub fn start_gateway_with(&self, name: &str, extra: &[&str]) -> GatewayProcess {
        assert!(self.network.is_none(), "extra gateways run on loopback only");
        let (http, grpc) = (listen_address(None, 0), listen_address(None, 0));
        let flags: Vec<String> =
            self.gateway_flags.iter().cloned().chain(extra.iter().map(|f| f.to_string())).collect();
        let node = Node::start(name, &grpc, gateway_args(&http, &grpc, &flags), self.dir.path());
        GatewayProcess { node, http, grpc }
    }

    fn placement_list(&self) -> String {
        self.placement.iter().map(|p| p.addr.clone()).collect::<Vec<_>>().join(",")
    }

    /// Starts one more worker; returns its index in `workers`.
    pub fn add_worker(&mut self) -> usize {
        self.add_worker_with(&[])
    }

    /// [`Cluster::add_worker`] with `extra` flags for this worker alone.
    pub fn add_worker_with(&mut self, extra: &[String]) -> usize {
        let i = self.workers.len();
        let name = format!("worker-{}", i + 1);
        let host = self.network.as_ref().map(|n| {
            n.hosts.get(self.worker_host(i)).cloned().expect("isolated hosts: no host left for another worker")
        });
        let addr = listen_address(host.as_ref(), HOST_WORKER_PORT);
        let mut args = self.worker_args(i, &addr);
        args.extend(extra.iter().cloned());
        self.workers.push(Node::start_in(netns_of(host.as_ref()), &name, &addr, args, self.dir.path()));
        i
    }

    /// The index in `network.hosts` of worker `i`'s host.
    pub fn worker_host(&self, i: usize) -> usize {
        self.placement.len() + 1 + i
    }

    /// Kills worker `i` and starts it again on its data at a new address (a rescheduled
    /// pod); returns the new address.
    pub fn move_worker(&mut self, i: usize) -> String {
        assert!(self.network.is_none(), "move_worker runs on loopback only");
        let addr = format!("127.0.0.1:{}", free_port());
        let args = self.worker_args(i, &addr);
        let w = &mut self.workers[i];
        w.kill();
        w.addr = addr.clone();
        w.args = args;
        w.spawn();
        addr
    }

    /// The flags of worker `i` listening at `addr`.
    fn worker_args(&self, i: usize, addr: &str) -> Vec<String> {
        let name = format!("worker-{}", i + 1);
        let mut args = vec![
            "worker".into(),
            "--listen".into(),
            addr.to_owned(),
            "--placement".into(),
            self.placement_list(),
            "--data-dir".into(),
            self.dir.path().join(name).display().to_string(),
            "--heartbeat".into(),
            "300ms".into(),
        ];
        args.extend(self.worker_args.iter().cloned());
        if !self.zones.is_empty() {
            args.extend(["--zone".to_owned(), self.zones[i % self.zones.len()].clone()]);
        }
        args
    }

    /// The index of the worker listening at `addr`.
    pub fn worker_at(&self, addr: &str) -> Option<usize> {
        self.workers.iter().position(|w| w.addr == addr)
    }

    pub fn grpc_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.grpc)
    }

    /// The last `lines` lines of every process's log (for failure messages).
    pub fn logs(&self, lines: usize) -> String {
        let mut out = String::new();
        let nodes = self.placement.iter().chain(&self.workers).chain([&self.gateway]).chain(&self.reranker);
        for n in nodes {
            out.push_str(&format!("---- {} ----\n{}\n", n.name, n.log_tail(lines)));
        }
        out
    }
}

/// A gateway process beside the cluster's first ([`Cluster::start_gateway`]).
#[derive(Debug)]
pub struct GatewayProcess {
    pub node: Node,
    pub http: String,
    pub grpc: String,
}

/// A gateway's command line: its addresses, then `flags`.
fn gateway_args(http: &str, grpc: &str, flags: &[String]) -> Vec<String> {
    let addresses = ["gateway", "--http", http, "--grpc", grpc].into_iter().map(String::from);
    addresses.chain(flags.iter().cloned()).collect()
}

/// What `addr`'s gRPC health service says of `service` (`None`: no answer within
/// `timeout`), as a probe asks it: no credentials (a certificate over TLS).
pub async fn health_status(
    addr: &str,
    service: &str,
    timeout: Duration,
) -> Option<tonic_health::pb::health_check_response::ServingStatus> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let check = async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).ok()?;
        // Over TLS when the test process installed it (vectron_common::tls).
        let connector = vectron_common::tls::Connector::new(vec![addr.to_owned()]);
        let channel = endpoint.connect_timeout(timeout).connect_with_connector(connector).await.ok()?;
        let answer = HealthClient::new(channel).check(HealthCheckRequest { service: service.into() }).await.ok()?;
        tonic_health::pb::health_check_response::ServingStatus::try_from(answer.into_inner().status).ok()
    };
    tokio::time::timeout(timeout, check).await.ok().flatten()
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
