//! The gateway's cache of search answers, and the coalescing of identical searches in
//! flight.
//!
//! An answer is kept under (collection, routing epoch, the request's encoding) with the
//! data version of every shard it came from (each shard reports its leader's Raft term
//! and applied index with its hits, read before it searched). It is served only while
//! it is provably current:
//! - the gateway's own writes to the collection bump the collection's generation, and an
//!   answer cached under an older generation is never served (no round trip needed);
//! - before a cached answer is served, every shard's leader is asked for its current
//!   version (`GetShardVersion`, answered from memory under the leader's lease): any write
//!   applied since — through this gateway or any other — changes a version, and the
//!   answer is dropped and searched again. A leader change changes the term, so a new
//!   leader that has not applied every committed write yet cannot pass for the old one;
//! - entries older than the TTL are not served either.
//!
//! Linearizable and `any` reads bypass the cache, and so do searches the feedback model
//! reranks (its answers change with the model, not the data), partial answers and
//! answers whose rerank was skipped (neither is stored). Identical searches arriving while one
//! is in flight wait for it instead of running again; each then checks the shard
//! versions as a cache hit does, so it never gets an answer older than a write
//! acknowledged before it arrived. The cache is bounded by the memory its answers take
//! (their encoded size), evicting the least recently used.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use prost::Message;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};
use tokio::sync::watch;
use vectron_proto::internal as pi;
use vectron_proto::v1 as pb;

use crate::error::GatewayError;

/// How much the cache keeps, and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCacheConfig {
    /// Memory the cached answers may take, in bytes; 0 turns the cache (and
    /// coalescing) off.
    pub max_bytes: u64,
    /// Longest an answer is served from the cache.
    pub ttl: Duration,
}

impl Default for SearchCacheConfig {
    fn default() -> Self {
        SearchCacheConfig { max_bytes: 64 << 20, ttl: Duration::from_secs(30) }
    }
}

/// The data version of each shard an answer came from.
pub type Versions = Vec<(u64, pi::ShardVersion)>;

/// A search answer and the shard versions it reflects.
#[derive(Debug, Clone)]
pub struct Answer {
    pub response: pb::SearchResponse,
    pub versions: Versions,
}

impl Answer {
    /// Whether the answer may be kept: complete, and reranked if a rerank was asked for.
    fn keepable(&self) -> bool {
        !self.response.partial && self.response.rerank_skipped.is_empty()
    }
}

/// A cache key: collection, epoch and the request's encoding, in one byte string.
pub type Key = Vec<u8>;

#[derive(Debug)]
struct Entry {
    answer: Arc<Answer>,
    generation: u64,
    stored: Instant,
    bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct ByBytes;

impl Weighter<Key, Arc<Entry>> for ByBytes {
    fn weight(&self, _: &Key, entry: &Arc<Entry>) -> u64 {
        entry.bytes
    }
}

/// Counts evictions.
#[derive(Debug, Clone)]
struct CountEvictions(IntCounter);

impl Lifecycle<Key, Arc<Entry>> for CountEvictions {
    type RequestState = ();

    fn begin_request(&self) {}

    fn on_evict(&self, _: &mut (), _: Key, _: Arc<Entry>) {
        self.0.inc();
    }
}

type Entries = Cache<Key, Arc<Entry>, ByBytes, DefaultHashBuilder, CountEvictions>;

/// What a search in flight tells those waiting for it: its answer once it has one.
type Landing = Option<Result<Arc<Answer>, GatewayError>>;

/// What a search finds in flight under its key.
pub enum Flight<'a> {
    /// Nothing: it runs, and lands its ticket with its answer for those who came since.
    Lead(Ticket<'a>),
    /// An identical search runs: [`SearchCache::follow`] it.
    Follow(watch::Receiver<Landing>),
}

/// The running search's place in flight. Dropped without landing (its caller went
/// away), it leaves, and those waiting on it search themselves.
pub struct Ticket<'a> {
    cache: &'a SearchCache,
    key: Key,
    id: u64,
    landing: watch::Sender<Landing>,
}

impl Ticket<'_> {
    /// Hands `answer` to the searches waiting for this one.
    pub fn land(self, answer: &Result<Arc<Answer>, GatewayError>) {
        let _ = self.landing.send(Some(answer.clone()));
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.cache.in_flight.lock();
        if in_flight.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            in_flight.remove(&self.key);
        }
    }
}

/// The cache, its searches in flight, and the collections' write generations.
pub struct SearchCache {
    config: SearchCacheConfig,
    entries: Option<Entries>,
    in_flight: Mutex<HashMap<Key, (u64, watch::Receiver<Landing>)>>,
    next_flight: std::sync::atomic::AtomicU64,
    generations: Mutex<HashMap<String, u64>>,
    outcomes: IntCounterVec,
    bytes: IntGauge,
    count: IntGauge,
}

impl std::fmt::Debug for SearchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchCache").field("config", &self.config).finish()
    }
}

/// Where a search's answer came from, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served from the cache (its shards' versions checked).
    Hit,
    /// Searched (nothing cached, or the cached answer was stale).
    Miss,
    /// A cached answer whose shards had changed: dropped (then searched: a miss too).
    Stale,
    /// Waited for an identical search in flight.
    Coalesced,
    /// Not cacheable (consistency, cache off).
    Bypass,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
            Outcome::Coalesced => "coalesced",
            Outcome::Bypass => "bypass",
        }
    }
}

impl SearchCache {
    pub fn new(config: SearchCacheConfig, registry: &Registry) -> SearchCache {
        let evictions =
            IntCounter::new("vectron_search_cache_evictions_total", "Answers evicted from the search cache (memory)")
                .expect("valid metric");
        let outcomes = IntCounterVec::new(
            Opts::new("vectron_search_cache_total", "Searches by where their answer came from"),
            &["outcome"],
        )
        .expect("valid metric");
        let bytes = IntGauge::new("vectron_search_cache_bytes", "Memory the cached search answers take (encoded size)")
            .expect("valid metric");
        let count = IntGauge::new("vectron_search_cache_entries", "Search answers cached").expect("valid metric");
        registry.register(Box::new(evictions.clone())).expect("unique metric");
        registry.register(Box::new(outcomes.clone())).expect("unique metric");
        registry.register(Box::new(bytes.clone())).expect("unique metric");
        registry.register(Box::new(count.clone())).expect("unique metric");
        let entries = (config.max_bytes > 0).then(|| {
            // An estimate for the cache's own tables: answers of ~4 KiB.
            let estimated = (config.max_bytes / 4096).clamp(16, 1 << 20) as usize;
            Cache::with(estimated, config.max_bytes, ByBytes, DefaultHashBuilder::default(), CountEvictions(evictions))
        });
        SearchCache {
            config,
            entries,
            in_flight: Mutex::new(HashMap::new()),
            next_flight: std::sync::atomic::AtomicU64::new(1),
            generations: Mutex::new(HashMap::new()),
            outcomes,
            bytes,
            count,
        }
    }

    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The key of `request` (its collection named in it) at routing `epoch`. The
    /// request's own deadline is not part of it.
    pub fn key(epoch: u64, mut request: pb::SearchRequest) -> Key {
        request.timeout_ms = 0;
        let mut key = Vec::with_capacity(8 + request.encoded_len());
        key.extend_from_slice(&epoch.to_be_bytes());
        request.encode(&mut key).expect("a Vec grows");
        key
    }

    /// The collection's write generation (bumped by every write this gateway routes).
    pub fn generation(&self, collection: &str) -> u64 {
        self.generations.lock().get(collection).copied().unwrap_or(0)
    }

    /// A write to `collection` was answered (applied, or possibly applied): answers
    /// cached before it are not served again.
    pub fn wrote(&self, collection: &str) {
        if self.enabled() {
            *self.generations.lock().entry(collection.to_owned()).or_insert(0) += 1;
        }
    }

    /// The answer cached under `key` at `generation` and within its TTL (its shard
    /// versions still to be checked), if any.
    pub fn lookup(&self, key: &Key, generation: u64) -> Option<Arc<Answer>> {
        let entry = self.entries.as_ref()?.get(key)?;
        (entry.generation == generation && entry.stored.elapsed() < self.config.ttl).then(|| entry.answer.clone())
    }

    /// Keeps `answer` under `key` if it may be kept and no write of this gateway came
    /// since `generation` was read.
    pub fn store(&self, key: Key, collection: &str, generation: u64, answer: Arc<Answer>) {
        let Some(entries) = &self.entries else { return };
        if !answer.keepable() || self.generation(collection) != generation {
            return;
        }
        let bytes = (answer.response.encoded_len() + key.len() + 24 * answer.versions.len() + 128) as u64;
        entries.insert(key, Arc::new(Entry { answer, generation, stored: Instant::now(), bytes }));
        self.bytes.set(entries.weight() as i64);
        self.count.set(entries.len() as i64);
    }

    /// Drops the answer cached under `key`.
    pub fn forget(&self, key: &Key) {
        if let Some(entries) = &self.entries {
            entries.remove(key);
            self.bytes.set(entries.weight() as i64);
            self.count.set(entries.len() as i64);
        }
    }

    /// The search in flight under `key`, or a ticket to be it.
    pub fn flight(&self, key: &Key) -> Flight<'_> {
        let mut in_flight = self.in_flight.lock();
        if let Some((_, landing)) = in_flight.get(key) {
            return Flight::Follow(landing.clone());
        }
        let id = self.next_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (landing, waiting) = watch::channel(None);
        in_flight.insert(key.clone(), (id, waiting));
        Flight::Lead(Ticket { cache: self, key: key.clone(), id, landing })
    }

    /// The answer of the search followed (its shard versions still to be checked), or
    /// `None` when it gave up without one.
    pub async fn follow(mut landing: watch::Receiver<Landing>) -> Option<Result<Arc<Answer>, GatewayError>> {
        landing.wait_for(Option::is_some).await.ok().and_then(|l| l.clone())
    }

    pub fn count(&self, outcome: Outcome) {
        self.outcomes.with_label_values(&[outcome.label()]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(n: usize) -> Arc<Answer> {
        let hits = (0..n).map(|i| pb::ScoredPoint { score: i as f32, ..Default::default() }).collect();
        let version = pi::ShardVersion { term: 1, applied_index: 7 };
        Arc::new(Answer { response: pb::SearchResponse { hits, ..Default::default() }, versions: vec![(1, version)] })
    }

    fn request(top_k: u32) -> pb::SearchRequest {
        pb::SearchRequest { collection: "c".into(), vector: vec![1.0, 2.0], top_k, ..Default::default() }
    }

    #[test]
    fn an_answer_is_served_only_at_its_generation_and_within_its_ttl() {
        let registry = Registry::new();
        let cache =
            SearchCache::new(SearchCacheConfig { max_bytes: 1 << 20, ttl: Duration::from_millis(200) }, &registry);
        let key = SearchCache::key(3, request(10));
        assert_eq!(key, SearchCache::key(3, pb::SearchRequest { timeout_ms: 50, ..request(10) }), "deadlines aside");
        assert_ne!(key, SearchCache::key(4, request(10)), "another epoch");
        assert_ne!(key, SearchCache::key(3, request(11)));
        let g = cache.generation("c");
        cache.store(key.clone(), "c", g, answer(3));
        assert_eq!(cache.lookup(&key, g).unwrap().response.hits.len(), 3);
        // A write through this gateway: the answer is not served again.
        cache.wrote("c");
        assert!(cache.lookup(&key, cache.generation("c")).is_none());
        // Stored at a generation a write has passed meanwhile: not kept.
        cache.store(key.clone(), "c", g, answer(3));
        assert!(cache.lookup(&key, cache.generation("c")).is_none());
        let g = cache.generation("c");
        cache.store(key.clone(), "c", g, answer(3));
        assert!(cache.lookup(&key, g).is_some());
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.lookup(&key, g).is_none(), "past the TTL");
        // Partial or un-reranked answers are never kept.
        let partial = Answer { response: pb::SearchResponse { partial: true, ..Default::default() }, versions: vec![] };
        cache.store(key.clone(), "c", g, Arc::new(partial));
        let skipped = Answer {
            response: pb::SearchResponse { rerank_skipped: "down".into(), ..Default::default() },
            versions: vec![],
        };
        cache.store(key.clone(), "c", g, Arc::new(skipped));
        assert!(cache.lookup(&key, g).is_none());
    }

    #[test]
    fn the_cache_holds_what_its_memory_allows_and_counts_evictions() {
        let registry = Registry::new();
        let cache =
            SearchCache::new(SearchCacheConfig { max_bytes: 64 << 10, ttl: Duration::from_secs(60) }, &registry);
        for i in 0..200 {
            cache.store(SearchCache::key(1, request(i + 1)), "c", 0, answer(100));
        }
        let weight = cache.entries.as_ref().unwrap().weight();
        assert!(weight <= 64 << 10, "{weight}");
        let text = {
            let mut out = Vec::new();
            prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let evicted: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("vectron_search_cache_evictions_total "))
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(evicted > 100, "{text}");
        let off = SearchCache::new(SearchCacheConfig { max_bytes: 0, ..Default::default() }, &Registry::new());
        assert!(!off.enabled());
        off.store(SearchCache::key(1, request(1)), "c", 0, answer(1));
        assert!(off.lookup(&SearchCache::key(1, request(1)), 0).is_none());
    }

    #[tokio::test]
    async fn identical_searches_in_flight_wait_for_the_first_and_a_dropped_one_lets_them_go() {
        let cache = SearchCache::new(SearchCacheConfig::default(), &Registry::new());
        let key = SearchCache::key(1, request(5));
        let Flight::Lead(ticket) = cache.flight(&key) else { panic!("nothing in flight yet") };
        let Flight::Follow(waiting) = cache.flight(&key) else { panic!("the first is in flight") };
        let follower = tokio::spawn(SearchCache::follow(waiting));
        ticket.land(&Ok(answer(2)));
        assert_eq!(follower.await.unwrap().unwrap().unwrap().response.hits.len(), 2);
        // Landed: the next one leads again. A leader that goes away lets its followers go.
        let Flight::Lead(ticket) = cache.flight(&key) else { panic!("landed: a new flight") };
        let Flight::Follow(waiting) = cache.flight(&key) else { panic!() };
        drop(ticket);
        assert!(SearchCache::follow(waiting).await.is_none());
        assert!(matches!(cache.flight(&key), Flight::Lead(_)));
    }
}
