//! JSON forms the route modules share: serde helpers for whole numbers and capped lists,
//! the consistency level, the rerank, and the conversions between JSON and proto of filters, point
//! ids and payloads.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use vectron_model::convert::{point_id_from_pb, struct_from_pb, struct_to_pb};
use vectron_model::request::Consistency;
use vectron_model::rerank::{Choice, Rerank};
use vectron_model::status::WireError;
use vectron_model::{Filter, PointId, ValidationError};
use vectron_proto::v1 as pb;

use super::extract::ApiError;

/// JSON has one kind of number: a whole number written `10.0` is the integer 10 (JSON
/// Schema reads it so), and integer fields take it.
pub(crate) fn whole_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = u32;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an integer in 0..=4294967295")
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u32, E> {
            u32::try_from(n).map_err(|_| E::custom(format!("{n} is out of range 0..=4294967295")))
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u32, E> {
            u32::try_from(n).map_err(|_| E::custom(format!("{n} is out of range 0..=4294967295")))
        }

        fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<u32, E> {
            vectron_model::types::whole_u64(x)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| E::custom(format!("{x} is not an integer in 0..=4294967295")))
        }
    }
    d.deserialize_any(V)
}

/// A JSON list of at most `N` items, refused at item `N + 1`, before the rest of a
/// large body is turned into items (a 16 MiB list of ids would be ~8M of them).
pub(crate) fn at_most<'de, T: Deserialize<'de>, const N: usize, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    struct Capped<T, const N: usize>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Capped<T, N> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {N} items")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N));
            while let Some(item) = seq.next_element()? {
                if items.len() == N {
                    return Err(serde::de::Error::custom(format!("more than {N} items in one request")));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    d.deserialize_seq(Capped::<T, N>(std::marker::PhantomData))
}

/// [`at_most`] for optional lists.
pub(crate) fn at_most_opt<'de, T: Deserialize<'de>, const N: usize, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(bound = "T: Deserialize<'de>")]
    struct Capped<T, const N: usize>(#[serde(deserialize_with = "at_most::<T, N, _>")] Vec<T>);
    Option::<Capped<T, N>>::deserialize(d).map(|c| c.map(|c| c.0))
}

/// [`whole_u32`] for optional fields.
pub(crate) fn whole_u32_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_u32")] u32);
    Option::<Whole>::deserialize(d).map(|w| w.map(|w| w.0))
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConsistencyJson {
    Linearizable,
    #[default]
    Leader,
    Any,
}

impl From<ConsistencyJson> for Consistency {
    fn from(c: ConsistencyJson) -> Consistency {
        match c {
            ConsistencyJson::Linearizable => Consistency::Linearizable,
            ConsistencyJson::Leader => Consistency::Leader,
            ConsistencyJson::Any => Consistency::Any,
        }
    }
}

/// How a search's hits are re-ordered (a search's `rerank`, a collection's
/// `default_rerank`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerankJson {
    /// rule, mmr, cross_encoder, feedback; "none" turns a collection's default off.
    /// Absent: the collection's default strategy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(pattern = "^(|none|rule|mmr|cross_encoder|feedback)$")]
    pub strategy: String,
    /// The text the query stands for (BM25 and keywords, the cross-encoder's query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 8192)]
    pub query_text: Option<String>,
    /// The strategy's parameters (see the README); over the collection default's.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Hits given to the reranker (at most 1,000); 0 or absent: 4 × top_k.
    #[serde(default, deserialize_with = "whole_u32", skip_serializing_if = "is_zero")]
    #[schema(maximum = 1000)]
    pub candidates: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RerankJson {
    pub(crate) fn into_model(self) -> Result<Rerank, ApiError> {
        Rerank {
            choice: Choice::from_name(&self.strategy).map_err(model_err)?,
            query_text: self.query_text,
            params: self.params,
            candidates: (self.candidates > 0).then_some(self.candidates as usize),
        }
        .checked()
        .map_err(model_err)
    }

    pub(crate) fn to_pb(&self) -> pb::Rerank {
        pb::Rerank {
            strategy: self.strategy.clone(),
            query_text: self.query_text.clone(),
            params: (!self.params.is_empty()).then(|| struct_to_pb(&self.params)),
            candidates: self.candidates,
        }
    }

    pub(crate) fn from_pb(r: &pb::Rerank) -> Result<RerankJson, ApiError> {
        Ok(RerankJson {
            strategy: r.strategy.clone(),
            query_text: r.query_text.clone(),
            params: payload_json(r.params.as_ref())?.unwrap_or_default(),
            candidates: r.candidates,
        })
    }
}

pub(crate) fn yes() -> bool {
    true
}

pub(crate) fn model_err(e: ValidationError) -> ApiError {
    ApiError(WireError::from(&e))
}

/// A JSON filter, parsed and validated (absent or `null`: none).
pub(crate) fn filter_json(v: Option<&Value>) -> Result<Option<Filter>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Filter::from_json(v).map(Some).map_err(model_err),
    }
}

pub(crate) fn id_json(id: Option<&pb::PointId>) -> Result<PointId, ApiError> {
    point_id_from_pb(id).map_err(model_err)
}

pub(crate) fn payload_json(s: Option<&pb::Struct>) -> Result<Option<Map<String, Value>>, ApiError> {
    s.map(struct_from_pb).transpose().map_err(model_err)
}

/// A point id from a URL segment: digits are a numeric id, anything else a string id.
pub(crate) fn path_id(raw: &str) -> PointId {
    raw.parse::<u64>().map(PointId::Num).unwrap_or_else(|_| PointId::Str(raw.to_owned()))
}
