//! Rendered Kubernetes manifests run as real processes on loopback, the way a cluster
//! would run them, so that a manifest change that would break a real cluster breaks a
//! test.
//!
//! [`Manifests::render`] runs `kubectl kustomize` on an overlay. [`Kube::start`] then
//! plays the kubelet and the controllers for every StatefulSet and Deployment:
//! - each pod gets a loopback address of its own (its pod IP) and a directory holding
//!   its volumes (the ConfigMap's files, the Secrets the test supplies, a PVC or emptyDir
//!   per claim);
//! - its container runs exactly as specified — the image's entrypoint (`vectron`, or
//!   the command's program on this machine's PATH, e.g. `etcd`), the args after `$(VAR)`
//!   expansion, the env (literals, the downward API: pod name, namespace, IP, the
//!   pod-index label, a zone label as PodTopologyLabels would copy it) — with three
//!   translations a pod network and mount namespace would make: the headless Services'
//!   DNS names of pods become those pods' addresses, a ClusterIP Service's names become
//!   the address of a proxy that forwards to its ready pods (as kube-proxy does), `0.0.0.0`
//!   is the pod's own address, and mount paths are the pod's directories;
//! - readiness probes (gRPC health, HTTP GET) are polled; a Service proxy forwards only
//!   to ready pods, and a pod being stopped is taken out first (as the endpoints
//!   controller does);
//! - [`Kube::rolling_restart`] replaces a workload's pods as its controller would: a
//!   StatefulSet from the highest ordinal down, each pod stopped (SIGTERM, the grace
//!   period, then SIGKILL) and started again on its volumes, the next only once it is
//!   ready; a Deployment by surging one new pod, waiting until it is ready, then stopping
//!   an old one.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde_json::Value;

use tonic_health::pb::health_check_response::ServingStatus;

use crate::cluster::{Node, health_status};

/// The objects an overlay renders to.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub objects: Vec<Value>,
}

impl Manifests {
    /// `kubectl kustomize DIR`, parsed.
    pub fn render(dir: &Path) -> Manifests {
        let out = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(dir)
            .output()
            .expect("kubectl (with kustomize v5) renders the manifests; see scripts/k8s-check.sh");
        assert!(out.status.success(), "kubectl kustomize {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).expect("UTF-8 manifests");
        let objects = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|doc| serde::Deserialize::deserialize(doc).expect("a YAML document"))
            .filter(|v: &Value| !v.is_null())
            .collect();
        Manifests { objects }
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the manifests"))
    }
}

/// A workload as its controller sees it.
#[derive(Debug, Clone)]
struct Workload {
    kind: String,
    name: String,
    replicas: usize,
    /// The pod template.
    template: Value,
    /// The claims each pod of a StatefulSet gets.
    claims: Vec<String>,
    grace: Duration,
}

/// One running (or stopped) pod.
#[derive(Debug)]
pub struct Pod {
    pub name: String,
    pub workload: String,
    pub ip: Ipv4Addr,
    pub node: Node,
    /// Labels the Services select it by.
    labels: BTreeMap<String, String>,
    /// Container port numbers by name.
    ports: BTreeMap<String, u16>,
    readiness: Option<Value>,
    ready: bool,
    /// How often its container was restarted after exiting by itself.
    pub restarts: u32,
    exited_at: Option<Instant>,
}

impl Pod {
    /// `ip:port` of the container port `port` (a name or a number).
    pub fn addr(&self, port: &str) -> String {
        let n = self.ports.get(port).copied().or_else(|| port.parse().ok()).expect("a container port");
        format!("{}:{n}", self.ip)
    }
}

/// A ClusterIP Service: a proxy on its own loopback address forwarding each connection
/// to a ready pod it selects.
#[derive(Debug)]
struct Service {
    ip: Ipv4Addr,
    selector: BTreeMap<String, String>,
    /// (service port, target port name or number).
    ports: Vec<(u16, String)>,
    /// Ready backends per service port.
    backends: Arc<RwLock<HashMap<u16, Vec<SocketAddr>>>>,
}

/// How a pod stopped.
#[derive(Debug)]
pub struct Stop {
    pub pod: String,
    /// Its exit status and how long it took after SIGTERM; `None`: still running at the
    /// end of its grace period, SIGKILLed.
    pub exit: Option<(std::process::ExitStatus, Duration)>,
    /// The end of its log.
    pub log: String,
}

/// How long after SIGTERM a stopping pod still gets new connections from its Services.
const ENDPOINTS_LAG: Duration = Duration::from_secs(1);

/// The kubelet's back-off before it restarts a container that exited.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// What the test supplies that the manifests reference but do not contain.
#[derive(Debug, Clone, Default)]
pub struct Supplied {
    /// Secret name → key → value.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Zones the pods of a workload are spread over (pod `i` gets `zones[i % n]`), as a
    /// scheduler with topology spread and PodTopologyLabels would label them.
    pub zones: Vec<String>,
}

/// The manifests, running.
pub struct Kube {
    pub dir: tempfile::TempDir,
    manifests: Manifests,
    supplied: Supplied,
    workloads: Vec<Workload>,
    pub pods: BTreeMap<String, Pod>,
    services: BTreeMap<String, Service>,
    /// DNS name → address.
    names: Vec<(String, String)>,
    next_ip: u32,
    generation: u32,
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect())
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Replaces, in one pass over `text`, every occurrence of a `from` with its `to`
/// (longest first at each position), so a replacement is never replaced again.
fn translate(text: &str, table: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for (from, to) in table {
            if rest.starts_with(from.as_str()) {
                out.push_str(to);
                rest = &rest[from.len()..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `$(VAR)` in `s` from `env` (unknown ones stay, as Kubernetes leaves them).
fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = s.to_owned();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

impl Kube {
    /// Starts every StatefulSet and Deployment of `manifests` (a Deployment under an HPA
    /// with its `minReplicas`), with their Services. Does not wait for readiness.
    pub fn start(manifests: Manifests, supplied: Supplied) -> Kube {
        let mut kube = Kube {
            dir: tempfile::tempdir().expect("temp dir"),
            manifests,
            supplied,
            workloads: Vec::new(),
            pods: BTreeMap::new(),
            services: BTreeMap::new(),
            names: Vec::new(),
            next_ip: 1,
            generation: 0,
        };
        kube.plan();
        for w in kube.workloads.clone() {
            for i in 0..w.replicas {
                let name = match w.kind.as_str() {
                    "StatefulSet" => format!("{}-{i}", w.name),
                    _ => kube.new_pod_name(&w.name),
                };
                kube.create_pod(&w, &name, i);
            }
        }
        kube
    }

    fn alloc_ip(&mut self) -> Ipv4Addr {
        // 127.42.x.y: loopback, away from 127.0.0.1 where other tests listen.
        let n = self.next_ip;
        self.next_ip += 1;
        Ipv4Addr::new(127, 42, (n >> 8) as u8, (n & 0xff) as u8)
    }

    fn new_pod_name(&mut self, workload: &str) -> String {
        self.generation += 1;
        format!("{workload}-{:05x}", self.generation)
    }

    /// Reads the workloads and Services, allocates the Services' and the StatefulSet
    /// pods' addresses and the DNS names that reach them.
    fn plan(&mut self) {
        let hpa_min: BTreeMap<String, usize> = self
            .manifests
            .of_kind("HorizontalPodAutoscaler")
            .map(|h| {
                let target = h["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or_default().to_owned();
                (target, h["spec"]["minReplicas"].as_u64().unwrap_or(1) as usize)
            })
            .collect();
        let ns = |o: &Value| o["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
        let mut workloads = Vec::new();
        for o in self.manifests.of_kind("StatefulSet").chain(self.manifests.of_kind("Deployment")) {
            let name = o["metadata"]["name"].as_str().expect("a name").to_owned();
            let replicas =
                o["spec"]["replicas"].as_u64().map(|r| r as usize).or_else(|| hpa_min.get(&name).copied()).unwrap_or(1);
            let claims = o["spec"]["volumeClaimTemplates"]
                .as_array()
                .map(|c| c.iter().filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let template = o["spec"]["template"].clone();
            let grace = Duration::from_secs(template["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap_or(30));
            workloads.push(Workload {
                kind: o["kind"].as_str().unwrap().to_owned(),
                name,
                replicas,
                template,
                claims,
                grace,
            });
        }
        let mut names = Vec::new();
        let services: Vec<Value> = self.manifests.of_kind("Service").cloned().collect();
        for s in &services {
            let name = s["metadata"]["name"].as_str().expect("a name").to_owned();
            let namespace = ns(s);
            let forms = [
                format!("{name}.{namespace}.svc.cluster.local"),
                format!("{name}.{namespace}.svc"),
                format!("{name}.{namespace}"),
                name.clone(),
            ];
            if s["spec"]["clusterIP"] == "None" {
                // Headless: each StatefulSet pod governed by it has a name of its own.
                for w in workloads.iter().filter(|w| w.kind == "StatefulSet") {
                    let governs = self.manifests.get("StatefulSet", &w.name)["spec"]["serviceName"] == name.as_str();
                    if !governs {
                        continue;
                    }
                    for i in 0..w.replicas {
                        let ip = self.alloc_ip();
                        let pod = format!("{}-{i}", w.name);
                        for form in &forms[..3] {
                            names.push((format!("{pod}.{form}"), ip.to_string()));
                        }
                    }
                }
                continue;
            }
            let ip = self.alloc_ip();
            for form in forms {
                names.push((form, ip.to_string()));
            }
            let ports = s["spec"]["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let port = p["port"].as_u64().expect("a port") as u16;
                            let target = match &p["targetPort"] {
                                Value::String(t) => t.clone(),
                                Value::Number(n) => n.to_string(),
                                _ => port.to_string(),
                            };
                            (port, target)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let service = Service { ip, selector: labels_of(&s["spec"]["selector"]), ports, backends: Arc::default() };
            for (port, _) in &service.ports {
                spawn_proxy(SocketAddr::new(ip.into(), *port), *port, service.backends.clone());
            }
            self.services.insert(name, service);
        }
        // Longest names first: a pod's name contains its Service's.
        names.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        self.names = names;
        self.workloads = workloads;
    }

    /// The address a StatefulSet pod was given (by its headless Service's names).
    fn stateful_ip(&self, pod: &str) -> Option<Ipv4Addr> {
        self.names.iter().find(|(n, _)| n.starts_with(&format!("{pod}."))).and_then(|(_, ip)| ip.parse().ok())
    }

    fn create_pod(&mut self, w: &Workload, name: &str, ordinal: usize) {
        let ip = self.stateful_ip(name).unwrap_or_else(|| self.alloc_ip());
        let pod_dir = self.dir.path().join("pods").join(name);
        std::fs::create_dir_all(&pod_dir).expect("pod dir");
        let spec = &w.template["spec"];
        let containers = spec["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1, "{name}: one container per pod");
        let c = &containers[0];
        let namespace = self.manifests.get(&w.kind, &w.name)["metadata"]["namespace"].as_str().unwrap_or("default");
        let mut labels = labels_of(&w.template["metadata"]["labels"]);
        if w.kind == "StatefulSet" {
            labels.insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
            labels.insert("statefulset.kubernetes.io/pod-name".into(), name.to_owned());
        }
        if !self.supplied.zones.is_empty() {
            labels.insert(
                "topology.kubernetes.io/zone".into(),
                self.supplied.zones[ordinal % self.supplied.zones.len()].clone(),
            );
        }
        // Volumes: each mount path becomes a directory of the pod's.
        let mut paths: Vec<(String, String)> = Vec::new();
        let volumes: BTreeMap<String, Value> = spec["volumes"]
            .as_array()
            .map(|vs| vs.iter().map(|v| (v["name"].as_str().unwrap_or_default().to_owned(), v.clone())).collect())
            .unwrap_or_default();
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let (vname, mount) = (m["name"].as_str().unwrap(), m["mountPath"].as_str().unwrap());
            let host = pod_dir.join("volumes").join(vname);
            std::fs::create_dir_all(&host).expect("volume dir");
            if let Some(v) = volumes.get(vname) {
                if let Some(cm) = v["configMap"]["name"].as_str() {
                    let data = &self.manifests.get("ConfigMap", cm)["data"];
                    for (file, text) in data.as_object().into_iter().flatten() {
                        std::fs::write(host.join(file), text.as_str().unwrap_or_default()).expect("config file");
                    }
                } else if let Some(secret) = v["secret"]["secretName"].as_str() {
                    let data = self
                        .supplied
                        .secrets
                        .get(secret)
                        .unwrap_or_else(|| panic!("{name}: secret {secret} not supplied"));
                    for (key, value) in data {
                        std::fs::write(host.join(key), value).expect("secret file");
                    }
                }
            } else {
                assert!(w.claims.iter().any(|c| c == vname), "{name}: volume {vname} is neither a volume nor a claim");
            }
            paths.push((mount.to_owned(), host.display().to_string()));
        }
        paths.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        // Env: literals and the downward API.
        let mut env: Vec<(String, String)> = Vec::new();
        for e in c["env"].as_array().into_iter().flatten() {
            let key = e["name"].as_str().expect("env name").to_owned();
            let value = if let Some(v) = e["value"].as_str() {
                expand(v, &env)
            } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                match path {
                    "metadata.name" => name.to_owned(),
                    "metadata.namespace" => namespace.to_owned(),
                    "status.podIP" => ip.to_string(),
                    p if p.starts_with("metadata.labels['") => {
                        let label = &p["metadata.labels['".len()..p.len() - 2];
                        labels.get(label).cloned().unwrap_or_default()
                    }
                    other => panic!("{name}: env {key} from {other} is not emulated"),
                }
            } else {
                panic!("{name}: env {key}: only literals and fieldRefs are emulated: {e}")
            };
            env.push((key, value));
        }
        // The translations a pod network and mount namespace make.
        let mut table: Vec<(String, String)> = self.names.clone();
        table.push(("0.0.0.0".into(), ip.to_string()));
        table.extend(paths.iter().cloned());
        let args: Vec<String> = c["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| translate(&expand(a.as_str().expect("a string arg"), &env), &table))
            .collect();
        let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k, translate(&v, &table))).collect();
        // Mounted files may name hosts and paths too (vectron.toml).
        for (_, host) in &paths {
            for entry in std::fs::read_dir(host).into_iter().flatten().flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    std::fs::write(entry.path(), translate(&text, &self.names)).expect("translated file");
                }
            }
        }
        let program = match c["command"].as_array().and_then(|c| c.first()).and_then(Value::as_str) {
            None => crate::cluster::vectron_bin(),
            Some(p) => which(Path::new(p).file_name().and_then(|f| f.to_str()).expect("a program name")),
        };
        let ports: BTreeMap<String, u16> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), p["containerPort"].as_u64().unwrap() as u16))
            .collect();
        let node = Node::start_program(name, &ip.to_string(), &program, args, env, &pod_dir);
        let readiness = (!c["readinessProbe"].is_null()).then(|| c["readinessProbe"].clone());
        let pod = Pod {
            name: name.to_owned(),
            workload: w.name.clone(),
            ip,
            node,
            labels,
            ports,
            readiness,
            ready: false,
            restarts: 0,
            exited_at: None,
        };
        self.pods.insert(name.to_owned(), pod);
    }

    /// Polls every pod's readiness probe once and updates the Services' backends; a
    /// container that exited is started again (`restartPolicy: Always`, after a second's
    /// back-off), as the kubelet does.
    pub async fn probe(&mut self) {
        for pod in self.pods.values_mut() {
            if let Some(status) = pod.node.exited() {
                let at = pod.exited_at.get_or_insert_with(Instant::now);
                if at.elapsed() >= RESTART_BACKOFF {
                    eprintln!("{} exited ({status}); restarting it", pod.name);
                    pod.restarts += 1;
                    pod.exited_at = None;
                    pod.node.restart();
                }
            }
            pod.ready = match &pod.readiness {
                None => pod.node.pid().is_some(),
                Some(p) => pod.node.pid().is_some() && probe(p, pod.ip, &pod.ports).await,
            };
        }
        self.publish();
    }

    /// Sets every Service's backends to its ready pods.
    fn publish(&self) {
        for s in self.services.values() {
            let mut backends = HashMap::new();
            for (port, target) in &s.ports {
                let ready = self
                    .pods
                    .values()
                    .filter(|p| p.ready && selects(&s.selector, &p.labels))
                    .filter_map(|p| {
                        let n = p.ports.get(target).copied().or_else(|| target.parse().ok())?;
                        Some(SocketAddr::new(p.ip.into(), n))
                    })
                    .collect();
                backends.insert(*port, ready);
            }
            *s.backends.write() = backends;
        }
    }

    /// Waits until every pod is ready.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.probe().await;
            let waiting: Vec<&str> = self.pods.values().filter(|p| !p.ready).map(|p| p.name.as_str()).collect();
            if waiting.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "pods not ready after {timeout:?}: {waiting:?}\n{}", self.logs(30));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_pod_ready(&mut self, name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.probe().await;
            if self.pods[name].ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready after {timeout:?}\n{}",
                self.pods[name].node.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The address of Service `name`'s port `port`, as clients in the cluster dial it.
    pub fn service(&self, name: &str, port: u16) -> String {
        format!("{}:{port}", self.services.get(name).unwrap_or_else(|| panic!("no service {name}")).ip)
    }

    /// The pods of `workload`, by name.
    pub fn pods_of(&self, workload: &str) -> Vec<&Pod> {
        self.pods.values().filter(|p| p.workload == workload).collect()
    }

    /// Stops a pod as Kubernetes does: the kubelet sends SIGTERM while the endpoints
    /// controller takes the pod out of its Services, which reaches the proxies a moment
    /// later ([`ENDPOINTS_LAG`]; a drain delay must cover it); SIGKILL after the grace
    /// period.
    async fn stop_pod(&mut self, name: &str, grace: Duration) -> Stop {
        let started = Instant::now();
        self.pods[name].node.send_term();
        tokio::time::sleep(ENDPOINTS_LAG).await;
        self.pods.get_mut(name).expect("a pod").ready = false;
        self.publish();
        let pod = self.pods.get_mut(name).expect("a pod");
        let stopped = tokio::task::block_in_place(|| pod.node.wait_exit(started, grace));
        Stop { pod: name.to_owned(), exit: stopped, log: pod.node.log_tail(40) }
    }

    /// Replaces every pod of `workload` as its controller would (see the module docs);
    /// returns how each old pod stopped.
    pub async fn rolling_restart(&mut self, workload: &str, ready_within: Duration) -> Vec<Stop> {
        let w = self.workloads.iter().find(|w| w.name == workload).cloned().expect("a workload");
        let mut stops = Vec::new();
        let mut old: Vec<String> = self.pods_of(workload).iter().map(|p| p.name.clone()).collect();
        if w.kind == "StatefulSet" {
            old.sort_by_key(|n| std::cmp::Reverse(n.rsplit('-').next().and_then(|i| i.parse::<usize>().ok())));
            for name in old {
                stops.push(self.stop_pod(&name, w.grace).await);
                self.pods.get_mut(&name).expect("a pod").node.start_again();
                self.wait_pod_ready(&name, ready_within).await;
            }
        } else {
            for (i, name) in old.into_iter().enumerate() {
                let new = self.new_pod_name(workload);
                self.create_pod(&w, &new, i);
                self.wait_pod_ready(&new, ready_within).await;
                stops.push(self.stop_pod(&name, w.grace).await);
                self.pods.remove(&name);
            }
        }
        stops
    }

    /// Scales StatefulSet `workload` to `replicas`, as its controller does: new pods get
    /// the next ordinals (each with its own address and names under its headless
    /// Service, its claims fresh) and are started without waiting; a scale-down stops
    /// the highest ordinals first (their claims are kept, as with `whenScaled: Retain`).
    /// Returns how each removed pod stopped.
    pub async fn scale(&mut self, workload: &str, replicas: usize) -> Vec<Stop> {
        let at = self.workloads.iter().position(|w| w.name == workload).expect("a workload");
        let w = self.workloads[at].clone();
        assert_eq!(w.kind, "StatefulSet", "{workload}: only StatefulSets are scaled here (gateways follow their HPA)");
        let service =
            self.manifests.get("StatefulSet", workload)["spec"]["serviceName"].as_str().unwrap_or_default().to_owned();
        let namespace = self.manifests.get("StatefulSet", workload)["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let mut stops = Vec::new();
        for i in w.replicas..replicas {
            let pod = format!("{workload}-{i}");
            let ip = self.alloc_ip();
            for form in [
                format!("{service}.{namespace}.svc.cluster.local"),
                format!("{service}.{namespace}.svc"),
                format!("{service}.{namespace}"),
            ] {
                self.names.push((format!("{pod}.{form}"), ip.to_string()));
            }
            self.names.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
            self.create_pod(&w, &pod, i);
        }
        for i in (replicas..w.replicas).rev() {
            let pod = format!("{workload}-{i}");
            stops.push(self.stop_pod(&pod, w.grace).await);
            self.pods.remove(&pod);
        }
        self.workloads[at].replicas = replicas;
        stops
    }

    /// Waits until every pod of `workload` is ready.
    pub async fn wait_workload_ready(&mut self, workload: &str, timeout: Duration) {
        let names: Vec<String> = self.pods_of(workload).iter().map(|p| p.name.clone()).collect();
        for name in names {
            self.wait_pod_ready(&name, timeout).await;
        }
    }

    /// The last `lines` of every pod's log.
    pub fn logs(&self, lines: usize) -> String {
        self.pods.values().map(|p| format!("---- {} ----\n{}\n", p.name, p.node.log_tail(lines))).collect()
    }
}

/// Where `program` is on this machine's PATH.
fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

/// One readiness probe of a pod at `ip`.
async fn probe(p: &Value, ip: Ipv4Addr, ports: &BTreeMap<String, u16>) -> bool {
    let port_of = |v: &Value| match v {
        Value::Number(n) => n.as_u64().map(|n| n as u16),
        Value::String(s) => ports.get(s).copied(),
        _ => None,
    };
    let timeout = Duration::from_secs(p["timeoutSeconds"].as_u64().unwrap_or(1));
    if !p["grpc"].is_null() {
        let Some(port) = port_of(&p["grpc"]["port"]) else { return false };
        let service = p["grpc"]["service"].as_str().unwrap_or_default().to_owned();
        return health_status(&format!("{ip}:{port}"), &service, timeout).await == Some(ServingStatus::Serving);
    }
    if !p["httpGet"].is_null() {
        let Some(port) = port_of(&p["httpGet"]["port"]) else { return false };
        let path = p["httpGet"]["path"].as_str().unwrap_or("/");
        let client = reqwest::Client::builder().timeout(timeout).build().expect("a client");
        return client.get(format!("http://{ip}:{port}{path}")).send().await.is_ok_and(|r| r.status().is_success());
    }
    panic!("readiness probe {p} is not emulated")
}

/// A Service port: each accepted connection goes to one of its ready backends in turn
/// (closed at once when there is none), bytes copied both ways until either side closes.
fn spawn_proxy(listen: SocketAddr, port: u16, backends: Arc<RwLock<HashMap<u16, Vec<SocketAddr>>>>) {
    let listener =
        std::net::TcpListener::bind(listen).unwrap_or_else(|e| panic!("binding the service proxy {listen}: {e}"));
    listener.set_nonblocking(true).expect("non-blocking");
    tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
        let mut turn = 0usize;
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { continue };
            turn += 1;
            let target = backends.read().get(&port).and_then(|b| (!b.is_empty()).then(|| b[turn % b.len()]));
            let Some(target) = target else { continue };
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}
