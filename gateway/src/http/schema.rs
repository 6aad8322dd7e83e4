//! Documentation-only schemas: the OpenAPI shapes of what serde reads into the model's
//! own types (point ids, filters, distances, payload indexes, the two forms of a
//! delete), so the document states the server's constraints.

#![allow(dead_code, reason = "fields exist for the schema only")]

use utoipa::ToSchema;

/// A point id: an unsigned integer (any u64, so no `int64` format) or a string of
/// 1-256 characters.
#[derive(Debug)]
pub struct PointIdDoc;

impl utoipa::PartialSchema for PointIdDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let num = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(u64::MAX as f64))
            .description(Some("A numeric id."));
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(vectron_model::types::MAX_STRING_ID_CHARS))
            .description(Some("A string id."));
        OneOfBuilder::new()
            .item(num)
            .item(text)
            .description(Some("A point id: an unsigned integer or a string of 1-256 characters."))
            .into()
    }
}

/// A collection's name.
#[derive(Debug, ToSchema)]
#[schema(as = CollectionName, value_type = String, pattern = "^[a-zA-Z0-9_-]{1,64}$")]
pub struct CollectionNameDoc(#[allow(dead_code)] String);

impl ToSchema for PointIdDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "PointId".into()
    }
}

/// Which points a delete removes: exactly one of `ids` or `filter`.
#[derive(Debug, ToSchema)]
#[schema(as = DeleteRequest)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum DeleteDoc {
    ByIds(DeleteByIdsDoc),
    ByFilter(DeleteByFilterDoc),
}

#[derive(Debug, ToSchema)]
#[schema(as = DeleteByIds)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DeleteByIdsDoc {
    #[schema(value_type = Vec<PointIdDoc>, min_items = 1, max_items = 10000)]
    ids: Vec<PointIdDoc>,
    /// Answer only once applied (default true).
    wait: Option<bool>,
}

#[derive(Debug, ToSchema)]
#[schema(as = DeleteByFilter)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DeleteByFilterDoc {
    filter: FilterDoc,
    wait: Option<bool>,
}

/// A payload filter: every `must` condition holds, at least one `should` (if any), no
/// `must_not`. The empty filter matches every point. At most 1,024 conditions, nested at
/// most 16 deep.
#[derive(Debug, ToSchema)]
#[schema(as = Filter)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct FilterDoc {
    #[schema(no_recursion, nullable = false)]
    must: Option<Vec<ConditionDoc>>,
    #[schema(no_recursion, nullable = false)]
    should: Option<Vec<ConditionDoc>>,
    #[schema(no_recursion, nullable = false)]
    must_not: Option<Vec<ConditionDoc>>,
}

/// One test: a field's value, presence or nullness, the point's id, or a nested filter.
#[derive(Debug, ToSchema)]
#[schema(as = Condition)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ConditionDoc {
    Match(MatchConditionDoc),
    Range(RangeConditionDoc),
    Exists(ExistsDoc),
    IsNull(IsNullDoc),
    HasId(HasIdDoc),
    #[schema(no_recursion)]
    Filter(FilterDoc),
}

#[derive(Debug, ToSchema)]
#[schema(as = MatchCondition)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MatchConditionDoc {
    /// A dotted path into the payload (`a.b`; arrays are flattened, `a[]` says so).
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^.]+(\.[^.]+)*$")]
    key: String,
    #[serde(rename = "match")]
    matches: MatchDoc,
}

#[derive(Debug, ToSchema)]
#[schema(as = RangeCondition)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RangeConditionDoc {
    /// A dotted path into the payload (`a.b`; arrays are flattened, `a[]` says so).
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^.]+(\.[^.]+)*$")]
    key: String,
    range: RangeDoc,
}

/// Equality with one value, or with any of up to 1,024.
#[derive(Debug, ToSchema)]
#[schema(as = Match)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum MatchDoc {
    Value(MatchOneDoc),
    Any(MatchAnyDoc),
}

#[derive(Debug, ToSchema)]
#[schema(as = MatchValue)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MatchOneDoc {
    value: MatchValueDoc,
}

#[derive(Debug, ToSchema)]
#[schema(as = MatchAny)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MatchAnyDoc {
    #[schema(max_items = 1024)]
    any: Vec<MatchValueDoc>,
}

/// A keyword, an integer or a bool.
#[derive(Debug, ToSchema)]
#[schema(as = MatchOperand)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum MatchValueDoc {
    Bool(bool),
    Integer(i64),
    Keyword(String),
}

/// Numeric bounds; at least one.
#[derive(Debug, ToSchema)]
#[schema(as = Range)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RangeDoc {
    #[schema(nullable = false)]
    gt: Option<f64>,
    #[schema(nullable = false)]
    gte: Option<f64>,
    #[schema(nullable = false)]
    lt: Option<f64>,
    #[schema(nullable = false)]
    lte: Option<f64>,
}

#[derive(Debug, ToSchema)]
#[schema(as = ExistsCondition)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ExistsDoc {
    exists: KeyRefDoc,
}

#[derive(Debug, ToSchema)]
#[schema(as = IsNullCondition)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct IsNullDoc {
    is_null: KeyRefDoc,
}

#[derive(Debug, ToSchema)]
#[schema(as = KeyRef)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct KeyRefDoc {
    /// A dotted path into the payload (`a.b`; arrays are flattened, `a[]` says so).
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^.]+(\.[^.]+)*$")]
    key: String,
}

#[derive(Debug, ToSchema)]
#[schema(as = HasIdCondition)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct HasIdDoc {
    #[schema(value_type = Vec<PointIdDoc>, max_items = 10000)]
    has_id: Vec<PointIdDoc>,
}

/// How vectors are compared.
#[derive(Debug, ToSchema)]
#[schema(as = Distance)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum DistanceDoc {
    Cosine,
    Euclid,
    Dot,
}

/// A collection's default rerank: a search's `rerank`, with a strategy required.
#[derive(Debug, ToSchema)]
#[schema(as = DefaultRerank)]
#[allow(dead_code)]
pub struct DefaultRerankDoc {
    /// The strategy searches without a `rerank` of their own are reranked with.
    #[schema(pattern = "^(rule|mmr|cross_encoder|feedback)$")]
    strategy: String,
    #[schema(max_length = 8192)]
    query_text: Option<String>,
    /// The strategy's parameters (see the README); the reranker checks them when the
    /// collection is created.
    #[schema(value_type = Option<Object>)]
    params: Option<serde_json::Value>,
    /// Hits given to the reranker (at most 1,000); 0 or absent: 4 × top_k.
    #[schema(maximum = 1000)]
    candidates: Option<u32>,
}

/// An indexed payload field (each key once per collection).
#[derive(Debug, ToSchema)]
#[schema(as = PayloadIndex)]
#[allow(dead_code)]
pub struct PayloadIndexDoc {
    /// A dotted path of non-empty field names.
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^.]+(\.[^.]+)*$")]
    key: String,
    kind: PayloadIndexKindDoc,
}

/// What a payload index holds.
#[derive(Debug, ToSchema)]
#[schema(as = PayloadIndexKind)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum PayloadIndexKindDoc {
    Keyword,
    Integer,
    Float,
    Bool,
}

/// HNSW's `m`: 0 (the default, 16) or 2-128.
pub(crate) fn hnsw_m_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(0)))
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(2)).maximum(Some(128)))
            .description(Some("0 or absent: 16; otherwise 2-128."))
            .build(),
    )
}
