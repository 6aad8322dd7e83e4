//! Separate hosts on one machine, for partition tests: each host is a network namespace
//! with one interface on a bridge the test creates (10.x.y.0/24; the test process itself
//! reaches every host through the bridge at `.1`). [`Network::isolate`] cuts one host off
//! from all the others with blackhole routes on both sides: its packets to them and
//! theirs to it are dropped while every process keeps running, as in a real network
//! partition; [`Network::heal`] removes the routes. Everything is deleted on drop.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and `ip` from iproute2.

use std::process::Command;

/// One host: a network namespace and its address on the bridge.
#[derive(Debug, Clone)]
pub struct Host {
    pub netns: String,
    pub ip: String,
}

/// A bridge and its hosts.
#[derive(Debug)]
pub struct Network {
    bridge: String,
    pub hosts: Vec<Host>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Network {
    /// Creates `hosts` hosts on a fresh bridge; panics (saying why) if this machine does
    /// not allow it.
    pub fn create(hosts: usize) -> Network {
        assert!(hosts <= 200, "at most 200 hosts");
        let pid = std::process::id();
        let tag = format!("vx{pid}");
        let subnet = format!("10.{}.{}", 100 + pid % 150, (pid / 150) % 250);
        let network = Network {
            bridge: format!("{tag}b"),
            hosts: (0..hosts)
                .map(|i| Host { netns: format!("{tag}-{i}"), ip: format!("{subnet}.{}", 10 + i) })
                .collect(),
        };
        network.remove(); // leftovers of an earlier process with the same pid
        let set_up = || -> Result<(), String> {
            ip(&["link", "add", &network.bridge, "type", "bridge"])?;
            ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &network.bridge])?;
            ip(&["link", "set", &network.bridge, "up"])?;
            for (i, h) in network.hosts.iter().enumerate() {
                let veth = format!("{tag}h{i}");
                ip(&["netns", "add", &h.netns])?;
                ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &h.netns])?;
                ip(&["link", "set", &veth, "master", &network.bridge])?;
                ip(&["link", "set", &veth, "up"])?;
                ip(&["-n", &h.netns, "addr", "add", &format!("{}/24", h.ip), "dev", "eth0"])?;
                ip(&["-n", &h.netns, "link", "set", "eth0", "up"])?;
                ip(&["-n", &h.netns, "link", "set", "lo", "up"])?;
            }
            Ok(())
        };
        if let Err(e) = set_up() {
            network.remove();
            panic!("cannot create the test network (needs root and iproute2): {e}");
        }
        network
    }

    /// Cuts host `i` off from every other host (not from the test process).
    pub fn isolate(&self, i: usize) {
        self.routes(i, "add");
    }

    /// Undoes [`Network::isolate`].
    pub fn heal(&self, i: usize) {
        self.routes(i, "del");
    }

    fn routes(&self, i: usize, verb: &str) {
        let cut = &self.hosts[i];
        for (j, other) in self.hosts.iter().enumerate().filter(|(j, _)| *j != i) {
            for (on, to) in [(cut, other), (other, cut)] {
                let dest = format!("{}/32", to.ip);
                ip(&["-n", &on.netns, "route", verb, "blackhole", &dest])
                    .unwrap_or_else(|e| panic!("host {i} ↔ host {j}: {e}"));
            }
        }
    }

    fn remove(&self) {
        for h in &self.hosts {
            let _ = ip(&["netns", "del", &h.netns]); // takes its end of the veth pair along
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove();
    }
}
