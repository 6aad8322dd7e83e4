//! Plain data types: ids, distances, points, shard configuration and the validation
//! limits that protect a shard from bad input.

use serde::{Deserialize, Serialize};

use crate::error::{Result, ValidationError};
use crate::payload::Payload;

/// Identifies a shard (and its Raft group). Prefixes every key the shard writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShardId(pub u64);

/// A point's id as clients see it: an unsigned integer or a string. In JSON a whole
/// number written with a fraction (`7.0`) is the integer it equals, as JSON Schema reads
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum PointId {
    Num(u64),
    Str(String),
}

impl<'de> Deserialize<'de> for PointId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Id;
        impl serde::de::Visitor<'_> for Id {
            type Value = PointId;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a point id: an unsigned integer or a string")
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<PointId, E> {
                Ok(PointId::Num(n))
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<PointId, E> {
                u64::try_from(n).map(PointId::Num).map_err(|_| E::custom("a numeric point id cannot be negative"))
            }

            fn visit_f64<E: serde::de::Error>(self, x: f64) -> std::result::Result<PointId, E> {
                whole_u64(x).map(PointId::Num).ok_or_else(|| E::custom("a numeric point id is a whole number ≥ 0"))
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<PointId, E> {
                Ok(PointId::Str(s.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, s: String) -> std::result::Result<PointId, E> {
                Ok(PointId::Str(s))
            }
        }
        d.deserialize_any(Id)
    }
}

/// 2^53: every whole number below it is held exactly by an f64; 2^53 itself may be a
/// rounded 2^53 + 1.
pub const MAX_EXACT_WHOLE_F64: f64 = 9_007_199_254_740_992.0;

/// `x` as an integer, when it is one written with a fraction (`7.0` → 7; JSON has one
/// kind of number) below ±2^53. JSON is parsed exactly (serde_json's
/// `float_roundtrip`); past 2^53 the float is only the nearest to what the client wrote
/// (`9007199254740993.0` would be …992, another point), so larger whole numbers must be
/// written as integers.
pub fn whole_f64(x: f64) -> Option<f64> {
    (x.fract() == 0.0 && x.abs() < MAX_EXACT_WHOLE_F64).then_some(x)
}

/// [`whole_f64`], unsigned.
pub fn whole_u64(x: f64) -> Option<u64> {
    whole_f64(x).filter(|r| *r >= 0.0).map(|r| r as u64)
}

/// Longest string id, in characters (so every id a client's JSON Schema tooling calls
/// valid is).
pub const MAX_STRING_ID_CHARS: usize = 256;
/// Longest string id, in bytes (256 characters of up to 4 bytes).
pub const MAX_STRING_ID_BYTES: usize = 4 * MAX_STRING_ID_CHARS;

impl PointId {
    /// Checks the id against the limits (a non-empty string of at most 256 characters).
    pub fn validate(&self) -> Result<()> {
        match self {
            PointId::Num(_) => Ok(()),
            PointId::Str(s) if s.is_empty() => {
                Err(ValidationError::InvalidPointId { reason: "string id is empty".into() })
            }
            PointId::Str(s) if s.chars().count() > MAX_STRING_ID_CHARS => Err(ValidationError::InvalidPointId {
                reason: format!("string id is {} characters, the limit is {MAX_STRING_ID_CHARS}", s.chars().count()),
            }),
            PointId::Str(_) => Ok(()),
        }
    }

    /// Order-preserving binary form used in storage keys: numbers sort before strings,
    /// numbers by value, strings bytewise.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            PointId::Num(n) => {
                let mut k = Vec::with_capacity(9);
                k.push(0);
                k.extend_from_slice(&n.to_be_bytes());
                k
            }
            PointId::Str(s) => {
                let mut k = Vec::with_capacity(1 + s.len());
                k.push(1);
                k.extend_from_slice(s.as_bytes());
                k
            }
        }
    }

    /// Inverse of [`PointId::encode`]; the error says what is wrong with `bytes`.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, &'static str> {
        match bytes.split_first() {
            Some((0, rest)) => {
                let arr: [u8; 8] = rest.try_into().map_err(|_| "numeric id is not 8 bytes")?;
                Ok(PointId::Num(u64::from_be_bytes(arr)))
            }
            Some((1, rest)) => {
                let s = std::str::from_utf8(rest).map_err(|_| "string id is not UTF-8")?;
                Ok(PointId::Str(s.to_owned()))
            }
            _ => Err("unknown id tag"),
        }
    }
}

impl From<u64> for PointId {
    fn from(n: u64) -> Self {
        PointId::Num(n)
    }
}

impl From<&str> for PointId {
    fn from(s: &str) -> Self {
        PointId::Str(s.to_owned())
    }
}

impl std::fmt::Display for PointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// How two vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// Cosine similarity. Vectors are normalised on write, so it is computed as a dot
    /// product.
    Cosine,
    /// Euclidean (L2) distance.
    Euclid,
    /// Inner product.
    Dot,
}

impl Distance {
    /// Turns the index's internal distance (lower is closer) into the score clients see:
    /// similarity for cosine and dot (higher is closer), distance for euclid.
    pub fn score(self, internal: f32) -> f32 {
        match self {
            Distance::Cosine => 1.0 - internal,
            Distance::Dot => -internal,
            Distance::Euclid => internal.max(0.0).sqrt(),
        }
    }

    /// Whether `score` is at least as good as `threshold` under this distance.
    pub fn passes_threshold(self, score: f32, threshold: f32) -> bool {
        match self {
            Distance::Cosine | Distance::Dot => score >= threshold,
            Distance::Euclid => score <= threshold,
        }
    }
}

/// A distance by its name as the APIs write it: `cosine`, `euclid` or `dot` (for
/// command lines).
impl std::str::FromStr for Distance {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Distance, String> {
        match s {
            "cosine" => Ok(Distance::Cosine),
            "euclid" => Ok(Distance::Euclid),
            "dot" => Ok(Distance::Dot),
            other => Err(format!("{other:?} is not a distance: cosine, euclid or dot")),
        }
    }
}

/// HNSW build parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HnswParams {
    /// Links per node on upper layers; level 0 keeps `2 * m`.
    pub m: usize,
    /// Candidate list size while inserting; larger builds a better graph, slower.
    pub ef_construction: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams { m: 16, ef_construction: 200 }
    }
}

/// Kind of a payload field index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadIndexKind {
    /// Strings: value → bitmap of points.
    Keyword,
    /// Integers: ordered, for match and range.
    Integer,
    /// Numbers: ordered, for range.
    Float,
    /// Bools: value → bitmap of points.
    Bool,
}

/// One indexed payload field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadIndexSpec {
    /// Dotted path of the field.
    pub key: String,
    pub kind: PayloadIndexKind,
}

/// Everything a shard needs to know about its collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardConfig {
    pub dimension: usize,
    pub distance: Distance,
    #[serde(default)]
    pub hnsw: HnswParams,
    #[serde(default)]
    pub payload_indexes: Vec<PayloadIndexSpec>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub tuning: Tuning,
}

impl ShardConfig {
    pub fn new(dimension: usize, distance: Distance) -> Self {
        ShardConfig {
            dimension,
            distance,
            hnsw: HnswParams::default(),
            payload_indexes: Vec::new(),
            limits: Limits::default(),
            tuning: Tuning::default(),
        }
    }

    /// Rejects configurations the engine cannot serve.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(ValidationError::InvalidArgument { reason });
        if self.dimension == 0 || self.dimension > MAX_DIMENSION {
            return bad(format!("dimension must be in 1..={MAX_DIMENSION}, got {}", self.dimension));
        }
        if !(2..=128).contains(&self.hnsw.m) {
            return bad(format!("hnsw m must be in 2..=128, got {}", self.hnsw.m));
        }
        if !(1..=4096).contains(&self.hnsw.ef_construction) {
            return bad(format!("hnsw ef_construction must be in 1..=4096, got {}", self.hnsw.ef_construction));
        }
        // One index per (field, kind): a field may be indexed as several kinds.
        let mut seen = std::collections::HashSet::new();
        for spec in &self.payload_indexes {
            crate::key_path::validate_key(&spec.key)?;
            if !seen.insert((&spec.key, spec.kind)) {
                return bad(format!("payload field {:?} is indexed twice as {:?}", spec.key, spec.kind));
            }
        }
        Ok(())
    }
}

/// Largest supported vector dimension.
pub const MAX_DIMENSION: usize = 65_536;
/// Most searches in one batch request (each also counts against rate limits).
pub const MAX_SEARCH_BATCH: usize = 256;
/// Most ids in one get or delete request.
pub const MAX_IDS_PER_REQUEST: usize = 10_000;
/// Longest feedback query id, in bytes.
pub const MAX_QUERY_ID_BYTES: usize = 128;

/// Input limits of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest payload, as serialised JSON bytes.
    pub max_payload_bytes: usize,
    /// Deepest nesting of objects and arrays in a payload.
    pub max_payload_depth: usize,
    /// Most points in one upsert batch.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_payload_bytes: 64 * 1024, max_payload_depth: 32, max_batch: 10_000 }
    }
}

/// Knobs of the search planner and index maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tuning {
    /// Planner cost model: a filtered search scans its `c` candidates exactly when
    /// `c² ≤ factor · ef · live points`. Filtered HNSW costs about `ef / selectivity`
    /// graph steps and an exact scan `c` sequential distances; measured here, a step
    /// costs ~20 sequential distances (`vectron-bench engine --filter-selectivity`).
    pub exact_scan_cost_factor: f64,
    /// Rebuild the graph when this fraction of its nodes are tombstones.
    pub rebuild_deleted_fraction: f64,
    /// Save the graph file after this many applied writes since the last save (it is
    /// also saved on close); reopening replays only what came after.
    pub persist_every_writes: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { exact_scan_cost_factor: 20.0, rebuild_deleted_fraction: 0.25, persist_every_writes: 100_000 }
    }
}

/// A point to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub id: PointId,
    pub vector: Vec<f32>,
    #[serde(default)]
    pub payload: Option<Payload>,
}

/// A point read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: PointId,
    pub vector: Option<Vec<f32>>,
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredPoint {
    pub id: PointId,
    pub score: f32,
    pub vector: Option<Vec<f32>>,
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_written_as_floats_are_integer_ids() {
        let ids: Vec<PointId> = serde_json::from_str("[3954425628836190.0, 7, 54.0, \"a\"]").unwrap();
        assert_eq!(
            ids,
            vec![PointId::Num(3954425628836190), PointId::Num(7), PointId::Num(54), PointId::Str("a".into())]
        );
        for bad in
            ["[1.5]", "[-1]", "[-2.0]", "[18446744073709551616]", "[9007199254740993.0]", "[1e300]", "[null]", "[[]]"]
        {
            assert!(serde_json::from_str::<Vec<PointId>>(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::from_str::<PointId>("18446744073709551615").unwrap(), PointId::Num(u64::MAX));
    }
}
