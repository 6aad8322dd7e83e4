//! A controllable network for in-process clusters: [`Faults`] is a table of the links
//! between named nodes that are cut (every call fails at once, as a refused
//! connection does) or slowed (every call waits first), and [`FaultyChannel`] is the
//! channel every internal call goes through, consulting the table of the node that
//! owns it. Outside tests no table is set and a call goes straight through.
//!
//! A link is directed: `from` is the calling node's name, `to` the address it calls.
//! A partition cuts both directions between two sets of nodes; isolating a node cuts
//! every link to and from it.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::RwLock;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::Service;

/// The faults of one test network.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    table: Arc<RwLock<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    /// Node name → the address it serves on.
    addresses: HashMap<String, String>,
    /// Cut links, (from name, to address).
    cut: HashSet<(String, String)>,
    /// Slowed links, (from name, to address) → delay per call.
    slow: HashMap<(String, String), Duration>,
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Drop,
    Delay(Duration),
}

/// Why a call on a cut link failed.
#[derive(Debug, thiserror::Error)]
#[error("the link from {from} to {to} is cut")]
pub struct LinkCut {
    pub from: String,
    pub to: String,
}

impl Faults {
    /// Names the node serving at `address` (links are cut by name).
    pub fn name(&self, node: &str, address: &str) {
        self.table.write().addresses.insert(node.to_owned(), address.to_owned());
    }

    fn address(&self, node: &str) -> String {
        self.table.read().addresses.get(node).cloned().unwrap_or_else(|| node.to_owned())
    }

    /// Cuts the link from `from` to `to` (one direction).
    pub fn cut(&self, from: &str, to: &str) {
        let to = self.address(to);
        self.table.write().cut.insert((from.to_owned(), to));
    }

    /// Cuts both directions between every node of `a` and every node of `b`.
    pub fn partition(&self, a: &[&str], b: &[&str]) {
        for x in a {
            for y in b {
                self.cut(x, y);
                self.cut(y, x);
            }
        }
    }

    /// Cuts every link to and from `node`.
    pub fn isolate(&self, node: &str) {
        let others: Vec<String> = self.table.read().addresses.keys().filter(|n| *n != node).cloned().collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        self.partition(&[node], &others);
    }

    /// Slows every call from `from` to `to` by `delay`.
    pub fn slow(&self, from: &str, to: &str, delay: Duration) {
        let to = self.address(to);
        self.table.write().slow.insert((from.to_owned(), to), delay);
    }

    /// Removes every fault.
    pub fn heal(&self) {
        let mut t = self.table.write();
        t.cut.clear();
        t.slow.clear();
    }

    /// What happens to a call from `from` to the address `to`.
    pub fn fate(&self, from: &str, to: &str) -> Fate {
        let t = self.table.read();
        let link = (from.to_owned(), to.to_owned());
        if t.cut.contains(&link) {
            Fate::Drop
        } else if let Some(d) = t.slow.get(&link) {
            Fate::Delay(*d)
        } else {
            Fate::Deliver
        }
    }
}

/// A node's view of a test network: its name, the fault table, and the cluster token
/// it presents and expects (instead of the process's installed one).
#[derive(Debug, Clone)]
pub struct NodeNetwork {
    pub name: String,
    pub faults: Faults,
    pub token: crate::cluster_auth::ClusterToken,
}

/// A channel to one address, through the owning node's faults when there are any.
#[derive(Debug, Clone)]
pub struct FaultyChannel {
    channel: Channel,
    /// The owning node's network and the address called (behind an `Arc`: clients
    /// hold channels by value, and most have no faults).
    link: Option<Arc<(NodeNetwork, String)>>,
}

impl FaultyChannel {
    /// A channel without faults.
    pub fn plain(channel: Channel) -> FaultyChannel {
        FaultyChannel { channel, link: None }
    }

    /// A channel from `network`'s node to `address`.
    pub fn on(channel: Channel, network: Option<&NodeNetwork>, address: &str) -> FaultyChannel {
        FaultyChannel { channel, link: network.map(|n| Arc::new((n.clone(), address.to_owned()))) }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Delivered =
    futures::future::MapErr<tonic::transport::channel::ResponseFuture, fn(tonic::transport::Error) -> BoxError>;
type Faulted = Pin<Box<dyn std::future::Future<Output = Result<http::Response<Body>, BoxError>> + Send>>;

fn boxed(e: tonic::transport::Error) -> BoxError {
    e.into()
}

impl Service<http::Request<Body>> for FaultyChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    /// A delivered call is the channel's own future (no allocation on the production
    /// path); only a faulted one is boxed.
    type Future = futures::future::Either<Delivered, Faulted>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Service::poll_ready(&mut self.channel, cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let fate = self.link.as_ref().map_or(Fate::Deliver, |link| link.0.faults.fate(&link.0.name, &link.1));
        match fate {
            Fate::Deliver => {
                let call = Service::call(&mut self.channel, request);
                futures::future::Either::Left(futures::TryFutureExt::map_err(call, boxed as fn(_) -> _))
            }
            Fate::Drop => {
                let link = self.link.as_ref().expect("a fate other than Deliver has a link");
                let cut = LinkCut { from: link.0.name.clone(), to: link.1.clone() };
                futures::future::Either::Right(Box::pin(async move { Err(cut.into()) }))
            }
            Fate::Delay(delay) => {
                let mut channel = self.channel.clone();
                futures::future::Either::Right(Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    futures::future::poll_fn(|cx| Service::poll_ready(&mut channel, cx)).await?;
                    Service::call(&mut channel, request).await.map_err(Into::into)
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_isolation_cut_both_ways_and_heal_restores() {
        let f = Faults::default();
        for (n, a) in [("p1", "127.0.0.1:1"), ("w1", "127.0.0.1:2"), ("w2", "127.0.0.1:3")] {
            f.name(n, a);
        }
        assert_eq!(f.fate("w1", "127.0.0.1:3"), Fate::Deliver);
        f.partition(&["w1"], &["w2"]);
        assert_eq!(f.fate("w1", "127.0.0.1:3"), Fate::Drop);
        assert_eq!(f.fate("w2", "127.0.0.1:2"), Fate::Drop);
        assert_eq!(f.fate("w1", "127.0.0.1:1"), Fate::Deliver, "only the partitioned link");
        f.heal();
        f.isolate("p1");
        assert_eq!((f.fate("w1", "127.0.0.1:1"), f.fate("p1", "127.0.0.1:3")), (Fate::Drop, Fate::Drop));
        assert_eq!(f.fate("w1", "127.0.0.1:3"), Fate::Deliver);
        f.heal();
        f.slow("w1", "w2", Duration::from_millis(30));
        assert_eq!(f.fate("w1", "127.0.0.1:3"), Fate::Delay(Duration::from_millis(30)));
    }
}
