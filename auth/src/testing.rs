//! Test support (this crate's tests, and others' with the `testing` feature): a real etcd
//! process on loopback ports with a temporary data dir.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::store::EtcdStore;

/// A port nothing listens on right now (bound once, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind a loopback port")
}

/// An etcd server for one test; killed when dropped.
pub struct EtcdProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl EtcdProcess {
    /// Starts etcd and waits until it answers. Panics with a hint if etcd is missing.
    pub async fn must_start() -> EtcdProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut etcd = EtcdProcess { child: None, dir, client_port: free_port(), peer_port: free_port() };
        // A port found free can be taken (another test's outgoing connection) before
        // etcd binds it: then etcd exits at once, and other ports are tried.
        for _ in 0..5 {
            if etcd.spawn_and_wait().await {
                return etcd;
            }
            (etcd.client_port, etcd.peer_port) = (free_port(), free_port());
        }
        etcd.must_spawn().await;
        etcd
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Kills etcd (SIGKILL) and starts it again on the same data and ports.
    pub async fn must_restart(&mut self) {
        self.kill();
        self.must_spawn().await;
    }

    async fn must_spawn(&mut self) {
        if !self.spawn_and_wait().await {
            let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
            panic!("etcd exited at start on {}; its log:\n{log}", self.endpoint());
        }
    }

    /// Starts etcd and waits until it answers (true), or until it exits (false: its
    /// ports were taken); panics if it neither answers nor exits within 20 s.
    async fn spawn_and_wait(&mut self) -> bool {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("etcd log file");
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd must be installed (scripts/setup.sh installs Debian's etcd-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(store) = EtcdStore::connect(std::slice::from_ref(&client), "/probe/").await {
                use crate::store::KvStore;
                if store.get("ready").await.is_ok() {
                    return true;
                }
            }
            if let Some(child) = self.child.as_mut()
                && child.try_wait().is_ok_and(|exited| exited.is_some())
            {
                self.child = None;
                return false;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
                panic!("etcd did not answer on {client} within 20 s; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
