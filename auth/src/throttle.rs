//! Throttling of failed credentials.
//!
//! Log-in ([`LoginThrottle`]) is throttled three ways, each answering with how long to
//! wait:
//! - per **(user, source)**: after `free_failures` failures, each further one locks that
//!   pair out for a doubling delay up to `max_delay`. This stops one client guessing one
//!   account's password; a success clears the pair.
//! - per **source** (every user): after `source_free_failures` failures, doubling
//!   delays likewise. This stops one client spraying one password over many accounts.
//! - per **user** (every source), a ceiling on failures: a bucket of `user_burst`
//!   failures refilled by one every `user_refill`. An empty bucket refuses log-ins to
//!   that user only until the next refill (so a third party, even from many sources,
//!   can slow an account down to one guess per `user_refill` but never lock it out for
//!   longer than that), and never refuses a source that logged in as that user before
//!   (within `known_source_ttl`): the owner's own machines keep working while someone
//!   else is guessing.
//!
//! Failed `Authenticate` calls (bad keys or tokens) are throttled per source with
//! [`FailureThrottle`] alone.
//!
//! Every table is bounded (`MAX_TRACKED`); idle entries are dropped first.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Where a request comes from: the `peer`, or, when the peer is a trusted proxy, the
/// address its `x-forwarded-for` value names as the client. Each proxy appends the
/// address it was reached from, so the value is read from the right: past the trusted
/// proxies, the first address is the client. What stands further left was sent by the
/// client itself and proves nothing (a client cannot escape its throttle by naming
/// another address).
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &[ipnet::IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for entry in forwarded_for.unwrap_or_default().rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else { break };
        client = ip;
        if !trusted(&ip) {
            break;
        }
    }
    client
}

/// The address throttles count a client by: IPv4 as is, IPv6 by its /64 (one host
/// commonly holds a whole /64, so counting /128s would give it 2^64 fresh starts).
pub fn throttle_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
    }
}

/// The left-most address of an `x-forwarded-for` value: the client, when whoever set
/// the header is believed whole (a gateway holding the cluster token sets just one).
pub fn forwarded_address(forwarded_for: Option<&str>) -> Option<IpAddr> {
    forwarded_for.and_then(|v| v.split(',').next()).and_then(|a| a.trim().parse().ok())
}

/// Doubling lock-outs after some free failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Failures allowed before the first lock-out.
    pub free_failures: u32,
    /// The first lock-out; each later one doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// How log-ins are throttled (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures of one user from one source before lock-outs begin.
    pub free_failures: u32,
    /// The first lock-out; each later one doubles it, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Failures from one source (any users) before it is locked out.
    pub source_free_failures: u32,
    /// The per-user ceiling: this many failures at once…
    pub user_burst: u32,
    /// …then one more every `user_refill`.
    pub user_refill: Duration,
    /// How long a source that logged in as a user stays exempt from that user's ceiling.
    pub known_source_ttl: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            free_failures: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            source_free_failures: 20,
            user_burst: 20,
            user_refill: Duration::from_secs(30),
            known_source_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl ThrottleConfig {
    fn pair(&self) -> Backoff {
        Backoff { free_failures: self.free_failures, base_delay: self.base_delay, max_delay: self.max_delay }
    }

    fn source(&self) -> Backoff {
        Backoff { free_failures: self.source_free_failures, ..self.pair() }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Instant,
    last_failure: Instant,
}

impl Entry {
    /// A quiet spell of `max_delay` after the last failure and after the last lock-out
    /// ended forgives the old failures (measured from the lock-out's end, or sitting out
    /// the longest lock-out would itself wipe the count).
    fn forgiven(&self, now: Instant, config: &Backoff) -> bool {
        let quiet_since = self.last_failure.max(self.locked_until);
        now.checked_duration_since(quiet_since).is_some_and(|d| d > config.max_delay)
    }
}

/// Most tracked keys per table; idle ones are dropped past it.
const MAX_TRACKED: usize = 100_000;

/// Failures per key with doubling lock-outs.
#[derive(Debug)]
pub struct FailureThrottle<K> {
    config: Backoff,
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K: Hash + Eq + Clone> FailureThrottle<K> {
    pub fn new(config: Backoff) -> Self {
        FailureThrottle { config, entries: Mutex::new(HashMap::new()) }
    }

    /// How long `k` must still wait, if locked out.
    pub fn locked_for(&self, k: &K) -> Option<Duration> {
        let now = Instant::now();
        self.entries.lock().get(k).and_then(|e| e.locked_until.checked_duration_since(now)).filter(|d| !d.is_zero())
    }

    pub fn fail(&self, k: &K) {
        let now = Instant::now();
        let config = &self.config;
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_TRACKED && !entries.contains_key(k) {
            // Forgotten first: entries a quiet spell has forgiven, then those not locked
            // out now; lock-outs in force are kept unless nothing else is left.
            entries.retain(|_, e| !e.forgiven(now, config));
            if entries.len() >= MAX_TRACKED {
                entries.retain(|_, e| e.locked_until > now);
            }
            if entries.len() >= MAX_TRACKED {
                entries.clear();
            }
        }
        let e = entries.entry(k.clone()).or_insert(Entry { failures: 0, locked_until: now, last_failure: now });
        if e.forgiven(now, config) {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures > config.free_failures {
            let doublings = (e.failures - config.free_failures - 1).min(30);
            let delay = config.base_delay.saturating_mul(1u32 << doublings).min(config.max_delay);
            e.locked_until = now + delay;
        }
    }

    pub fn clear(&self, k: &K) {
        self.entries.lock().remove(k);
    }
}

/// A bucket of failures per user (the ceiling).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Failed-login bookkeeping (see the module docs).
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    pairs: FailureThrottle<(String, Option<IpAddr>)>,
    sources: FailureThrottle<IpAddr>,
    ceilings: Mutex<HashMap<String, Bucket>>,
    /// (user, source) → when that source last logged in as the user.
    known: Mutex<HashMap<(String, IpAddr), Instant>>,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            config,
            pairs: FailureThrottle::new(config.pair()),
            sources: FailureThrottle::new(config.source()),
            ceilings: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
        }
    }

    fn is_known(&self, username: &str, source: Option<IpAddr>, now: Instant) -> bool {
        let Some(source) = source else { return false };
        self.known
            .lock()
            .get(&(username.to_owned(), source))
            .is_some_and(|at| now.duration_since(*at) < self.config.known_source_ttl)
    }

    /// The tokens `b` holds at `now`.
    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let burst = f64::from(self.config.user_burst.max(1));
        let refill = self.config.user_refill.as_secs_f64().max(1e-3);
        (b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() / refill).min(burst)
    }

    /// Refills `username`'s bucket to `now` (creating it full); returns it.
    fn refill<'a>(&self, buckets: &'a mut HashMap<String, Bucket>, username: &str, now: Instant) -> &'a mut Bucket {
        let burst = f64::from(self.config.user_burst.max(1));
        let tokens = buckets.get(username).map_or(burst, |b| self.refilled(b, now));
        let b = buckets.entry(username.to_owned()).or_insert(Bucket { tokens, updated: now });
        b.tokens = tokens;
        b.updated = now;
        b
    }

    /// How long this log-in must wait, if it may not be tried now.
    pub fn check(&self, username: &str, source: Option<IpAddr>) -> Option<Duration> {
        let source = source.map(throttle_key);
        let now = Instant::now();
        let pair = self.pairs.locked_for(&(username.to_owned(), source));
        let from_source = source.and_then(|s| self.sources.locked_for(&s));
        let ceiling = if self.is_known(username, source, now) {
            None
        } else {
            // Read only: a bucket exists once the user has a failure (an absent one is full).
            let buckets = self.ceilings.lock();
            buckets.get(username).and_then(|b| {
                let tokens = self.refilled(b, now);
                (tokens < 1.0).then(|| self.config.user_refill.mul_f64(1.0 - tokens))
            })
        };
        pair.into_iter().chain(from_source).chain(ceiling).max()
    }

    pub fn failure(&self, username: &str, source: Option<IpAddr>) {
        let source = source.map(throttle_key);
        let now = Instant::now();
        self.pairs.fail(&(username.to_owned(), source));
        if let Some(s) = source {
            self.sources.fail(&s);
        }
        let mut buckets = self.ceilings.lock();
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(username) {
            let burst = f64::from(self.config.user_burst.max(1));
            // Drop buckets that have refilled completely (they hold no information), then
            // those holding at least one token (nobody is held off by them).
            buckets.retain(|_, b| self.refilled(b, now) < burst);
            if buckets.len() >= MAX_TRACKED {
                buckets.retain(|_, b| self.refilled(b, now) < 1.0);
            }
            if buckets.len() >= MAX_TRACKED {
                buckets.clear();
            }
        }
        let b = self.refill(&mut buckets, username, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    pub fn success(&self, username: &str, source: Option<IpAddr>) {
        let source = source.map(throttle_key);
        self.pairs.clear(&(username.to_owned(), source));
        if let Some(source) = source {
            let now = Instant::now();
            let mut known = self.known.lock();
            if known.len() >= MAX_TRACKED {
                known.retain(|_, at| now.duration_since(*at) < self.config.known_source_ttl);
                if known.len() >= MAX_TRACKED {
                    known.clear();
                }
            }
            known.insert((username.to_owned(), source), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            free_failures: 2,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(25),
            source_free_failures: 4,
            user_burst: 100,
            ..ThrottleConfig::default()
        }
    }

    #[test]
    fn a_forwarded_client_is_read_from_the_right_past_trusted_proxies_only() {
        let nets: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "10.1.0.0/16".parse().unwrap()];
        let lb = "127.0.0.5".parse().unwrap();
        let outsider: IpAddr = "192.0.2.9".parse().unwrap();
        // What the client wrote itself (left) is not believed; the balancer's entry is.
        assert_eq!(client_address(lb, Some("1.2.3.4, 192.0.2.9"), &nets), outsider);
        // Two trusted hops: past both.
        assert_eq!(client_address(lb, Some("6.6.6.6, 192.0.2.9, 10.1.0.3"), &nets), outsider);
        assert_eq!(client_address(lb, Some("192.0.2.9"), &nets), outsider);
        // No header, or garbage: the peer.
        assert_eq!(client_address(lb, None, &nets), lb);
        assert_eq!(client_address(lb, Some("not an address"), &nets), lb);
        // An untrusted peer's header is ignored.
        assert_eq!(client_address(outsider, Some("10.1.0.3"), &nets), outsider);
    }

    #[test]
    fn a_user_and_source_pair_is_locked_out_with_doubling_delays() {
        let t = LoginThrottle::new(ThrottleConfig { source_free_failures: 100, ..config() });
        let a = ip("10.0.0.1");
        for _ in 0..2 {
            assert_eq!(t.check("u", a), None);
            t.failure("u", a);
        }
        assert_eq!(t.check("u", a), None, "two free failures");
        t.failure("u", a);
        let first = t.check("u", a).unwrap();
        assert!(first > Duration::from_secs(9) && first <= Duration::from_secs(10));
        t.failure("u", a);
        assert!(t.check("u", a).unwrap() > Duration::from_secs(19), "doubled");
        t.failure("u", a);
        assert!(t.check("u", a).unwrap() <= Duration::from_secs(25), "capped");
        // The pair is locked, not the user: the same user from elsewhere may try.
        assert_eq!(t.check("u", ip("10.0.0.2")), None);
        t.success("u", a);
        assert_eq!(t.check("u", a), None);
    }

    #[test]
    fn sitting_out_the_longest_lock_out_does_not_forgive_the_failures() {
        let max = Duration::from_millis(100);
        let t = FailureThrottle::new(Backoff { free_failures: 1, base_delay: max, max_delay: max });
        for _ in 0..3 {
            t.fail(&1u8);
        }
        std::thread::sleep(max + Duration::from_millis(20));
        assert_eq!(t.locked_for(&1), None, "the lock-out ended");
        t.fail(&1);
        assert!(t.locked_for(&1).is_some(), "the next failure locks again at once (the count stands)");
        // A real quiet spell (max_delay after the lock-out ended) does forgive.
        std::thread::sleep(2 * max + Duration::from_millis(40));
        t.fail(&1);
        assert_eq!(t.locked_for(&1), None, "forgiven: a free failure again");
    }

    #[test]
    fn asking_about_users_tracks_nothing_and_ipv6_counts_by_its_64() {
        let t = LoginThrottle::new(config());
        for i in 0..1000 {
            assert_eq!(t.check(&format!("nobody{i}"), ip("10.0.0.9")), None);
        }
        assert!(t.ceilings.lock().is_empty(), "checks alone create no buckets");
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert_eq!(throttle_key(a), throttle_key(b));
        for i in 0..5 {
            t.failure(&format!("u{i}"), Some(if i % 2 == 0 { a } else { b }));
        }
        assert!(t.check("x", Some("2001:db8::77".parse().unwrap())).is_some(), "one /64 is one client");
        assert_eq!(t.check("x", Some("2001:db9::1".parse().unwrap())), None);
    }

    #[test]
    fn a_source_spraying_many_users_is_locked_out_for_all_of_them() {
        let t = LoginThrottle::new(config());
        let a = ip("10.0.0.1");
        for user in ["u1", "u2", "u3", "u4", "u5"] {
            assert_eq!(t.check(user, a), None, "{user}");
            t.failure(user, a);
        }
        assert!(t.check("someone-else", a).is_some(), "the sprayer is locked out");
        assert_eq!(t.check("someone-else", ip("10.0.0.2")), None, "others are not");
    }

    #[test]
    fn the_per_user_ceiling_slows_a_distributed_guesser_but_never_the_owners_known_source() {
        let refill = Duration::from_millis(200);
        let t = LoginThrottle::new(ThrottleConfig { user_burst: 3, user_refill: refill, ..config() });
        let home = ip("192.0.2.1");
        t.success("victim", home);
        // Three guesses from three sources empty the bucket.
        for i in 0..3 {
            let s = ip(&format!("10.0.1.{i}"));
            assert_eq!(t.check("victim", s), None);
            t.failure("victim", s);
        }
        let wait = t.check("victim", ip("10.0.2.1")).expect("a new source waits");
        assert!(wait <= refill, "never longer than one refill: {wait:?}");
        assert_eq!(t.check("victim", home), None, "the owner's known source is exempt");
        std::thread::sleep(refill);
        assert_eq!(t.check("victim", ip("10.0.2.1")), None, "one more guess after a refill");
    }
}
