//! Throttling of failed logins, per username and per source address: after
//! `free_failures` failures, each further one locks that user (or address) out for a
//! doubling delay, up to `max_delay`. A successful login clears the user's record.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Where a request comes from: the `peer`, or, when the peer is a trusted proxy, the
/// left-most (original client's) address of its `x-forwarded-for` value.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &[ipnet::IpNet]) -> IpAddr {
    if !trusted_proxies.iter().any(|net| net.contains(&peer)) {
        return peer;
    }
    forwarded_for.and_then(|v| v.split(',').next()).and_then(|a| a.trim().parse().ok()).unwrap_or(peer)
}

#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// Failures allowed before the first lock-out.
    pub free_failures: u32,
    /// The first lock-out; each later one doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig { free_failures: 5, base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(15 * 60) }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Instant,
    last_failure: Instant,
}

/// Most tracked users or addresses; idle ones are dropped past it.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
struct Table<K> {
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Table { entries: Mutex::new(HashMap::new()) }
    }

    fn locked_for(&self, k: &K, now: Instant) -> Option<Duration> {
        self.entries.lock().get(k).and_then(|e| e.locked_until.checked_duration_since(now)).filter(|d| !d.is_zero())
    }

    fn fail(&self, k: &K, now: Instant, config: &ThrottleConfig) {
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_TRACKED {
            entries.retain(|_, e| now.duration_since(e.last_failure) < config.max_delay);
        }
        let e = entries.entry(k.clone()).or_insert(Entry { failures: 0, locked_until: now, last_failure: now });
        // A long quiet spell forgives old failures.
        if now.duration_since(e.last_failure) > config.max_delay {
            e.failures = 0;
        }
        e.failures += 1;
        e.last_failure = now;
        if e.failures > config.free_failures {
            let doublings = (e.failures - config.free_failures - 1).min(30);
            let delay = config.base_delay.saturating_mul(1u32 << doublings).min(config.max_delay);
            e.locked_until = now + delay;
        }
    }

    fn clear(&self, k: &K) {
        self.entries.lock().remove(k);
    }
}

/// Failed-login bookkeeping.
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    users: Table<String>,
    sources: Table<IpAddr>,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle { config, users: Table::new(), sources: Table::new() }
    }

    /// How long this user or address must still wait, if locked out.
    pub fn check(&self, username: &str, source: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let user = self.users.locked_for(&username.to_owned(), now);
        let source = source.and_then(|s| self.sources.locked_for(&s, now));
        user.into_iter().chain(source).max()
    }

    pub fn failure(&self, username: &str, source: Option<IpAddr>) {
        let now = Instant::now();
        self.users.fail(&username.to_owned(), now, &self.config);
        if let Some(s) = source {
            self.sources.fail(&s, now, &self.config);
        }
    }

    pub fn success(&self, username: &str) {
        self.users.clear(&username.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_free_failures_with_doubling_delays() {
        let t = LoginThrottle::new(ThrottleConfig {
            free_failures: 2,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(25),
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..2 {
            assert_eq!(t.check("u", Some(ip)), None);
            t.failure("u", Some(ip));
        }
        assert_eq!(t.check("u", Some(ip)), None, "two free failures");
        t.failure("u", Some(ip));
        let first = t.check("u", None).unwrap();
        assert!(first > Duration::from_secs(9) && first <= Duration::from_secs(10));
        t.failure("u", None);
        assert!(t.check("u", None).unwrap() > Duration::from_secs(19), "doubled");
        t.failure("u", None);
        assert!(t.check("u", None).unwrap() <= Duration::from_secs(25), "capped");
        // The address is locked for other usernames too.
        assert!(t.check("someone-else", Some(ip)).is_some());
        assert!(t.check("someone-else", Some("127.0.0.2".parse().unwrap())).is_none());
        t.success("u");
        assert!(t.check("u", None).is_none());
    }
}
