//! The HTTP/JSON API under `/v1` (axum). Every route turns its JSON into the request
//! [`Api`] takes — the same code the gRPC service runs — and turns the answer back into
//! JSON. Payloads and filters are plain JSON (the filter language of
//! `vectron_model::filter`). Malformed JSON is a 400 INVALID_ARGUMENT.
//!
//! Layout, one module per resource over a leaf:
//! - [`extract`]: the error answer and the body/parameter extractors (the leaf);
//! - `json`, `schema`: JSON helpers the routes share, and documentation-only schemas;
//! - `collections`, `points`, `search`, `feedback`: the data routes;
//! - [`admin`]: health, cluster views, workers, alerts and `/metrics`;
//! - [`accounts`]: log-in, tokens, keys and users (calls to the auth service);
//! - [`console`]: the management console's static files at `/console`;
//! - this module: the router and the OpenAPI document of all of them.

pub mod accounts;
pub mod admin;
mod collections;
pub mod console;
pub mod extract;
mod feedback;
mod json;
mod points;
mod schema;
mod search;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use vectron_model::status::WireError;
use vectron_proto::v1::ErrorCode;

pub use extract::{ApiError, Body, ErrorReply, PathParams, QueryParams, json_errors};

use self::accounts::Accounts;
use self::admin::Admin;
use self::schema::{
    ConditionDoc, ExistsDoc, FilterDoc, HasIdDoc, IsNullDoc, KeyRefDoc, MatchAnyDoc, MatchConditionDoc, MatchDoc,
    MatchOneDoc, MatchValueDoc, PointIdDoc, RangeConditionDoc, RangeDoc,
};
use crate::api::Api;
use crate::auth::Caller;

async fn not_found() -> ApiError {
    ApiError(WireError::new(ErrorCode::NotFound, "no such route", false))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vectron HTTP API",
        description = "Vectron's public HTTP/JSON API; the gRPC service vectron.v1.VectronService offers the same operations."
    ),
    // The filter language is recursive: its schemas are listed here, not collected.
    components(schemas(
        FilterDoc, ConditionDoc, MatchConditionDoc, RangeConditionDoc, MatchDoc, MatchOneDoc, MatchAnyDoc,
        MatchValueDoc, RangeDoc, ExistsDoc, IsNullDoc, KeyRefDoc, HasIdDoc, PointIdDoc
    ))
)]
struct ApiDoc;

/// The data routes, with their OpenAPI description (built from the same handlers, so
/// the two cannot drift).
fn data_routes() -> OpenApiRouter<Api> {
    let r = OpenApiRouter::with_openapi(ApiDoc::openapi());
    feedback::routes(search::routes(points::routes(collections::routes(r))))
}

/// The OpenAPI document of every HTTP route (data, admin and accounts), each operation
/// declaring the error answers it can give ([`declare_errors`]).
pub fn openapi(admin: &Admin) -> Value {
    let (_, mut doc) = data_routes().split_for_parts();
    let (_, admin_doc) = admin.clone().routes().split_for_parts();
    let (_, accounts_doc) = Accounts::routes().split_for_parts();
    doc.merge(admin_doc);
    doc.merge(accounts_doc);
    let mut doc = serde_json::to_value(doc).expect("the OpenAPI document serialises");
    declare_errors(&mut doc);
    // JSON Schema bounds are numbers: the largest id as the exact integer, not the f64
    // utoipa writes (2^64, which would admit ids past u64::MAX).
    if let Some(num) = doc.pointer_mut("/components/schemas/PointId/oneOf/0") {
        num["maximum"] = Value::from(u64::MAX);
    }
    // At least one bound (utoipa 5.5 writes its `min_properties` as `maxProperties`).
    if let Some(range) = doc.pointer_mut("/components/schemas/Range").and_then(Value::as_object_mut) {
        range.insert("minProperties".into(), Value::from(1));
    }
    doc
}

/// Adds to every operation the error answers any request can get, with the error
/// schema: 400 (malformed), 413 (body too large) and 429 (rate limited) everywhere they
/// apply, 401/403 on every route that needs credentials, 404 where the path names
/// something, 503 where the cluster must answer. Answers a handler declares itself are
/// kept.
fn declare_errors(doc: &mut Value) {
    let error = |description: &str| {
        serde_json::json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorReply"}}},
        })
    };
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let public = crate::policy::PUBLIC_HTTP_ROUTES.contains(&path.as_str());
        let Some(item) = item.as_object_mut() else { continue };
        for operation in item.values_mut() {
            let has_body = operation.get("requestBody").is_some();
            let has_params = path.contains('{');
            let mut answers = vec![
                ("400", "The request is malformed (bad JSON, bad parameters, invalid values)."),
                ("429", "A rate limit or throttle was hit; `retry-after` says when to try again."),
            ];
            if !public {
                answers.push(("401", "No, or an invalid, expired or revoked credential."));
                answers.push(("403", "The credential does not allow this on this collection or cluster."));
                answers.push(("503", "A service or shard leader could not be reached in time; retry."));
            }
            if has_params || !public {
                answers.push(("404", "What the request names (collection, point, user, key, route) does not exist."));
            }
            if has_body {
                answers.push(("413", "The request body exceeds this route's limit."));
            }
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            for (code, description) in answers {
                responses.entry(code).or_insert_with(|| error(description));
            }
        }
    }
}

/// The public HTTP API: data routes, admin routes, account routes,
/// `GET /v1/openapi.json`, and the console's files from `console_dir`.
pub fn router(api: Api, admin: Admin, accounts: Accounts, console_dir: Option<&std::path::Path>) -> Router {
    let body_limits = api.config().body_limits;
    let doc = Arc::new(openapi(&admin));
    let (data, _) = data_routes().split_for_parts();
    let spec = Router::new().route("/v1/openapi.json", get(move |_: Caller| async move { Json(doc.as_ref().clone()) }));
    data.with_state(api)
        .merge(admin.router())
        .merge(accounts.router())
        .merge(spec)
        .merge(console::routes(console_dir))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_errors))
        // Bodies are read by `Body`, held to each route's own limit; this caps any other.
        .layer(DefaultBodyLimit::max(crate::policy::DEFAULT_UPSERT_BYTES.max(body_limits.upsert)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc() -> Value {
        let placement = vectron_common::placement_client::PlacementClient::new(vec!["127.0.0.1:1".into()]);
        let router = Arc::new(crate::routing::Router::new(placement, None));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let api = Api::new(router, Default::default(), metrics.registry(), None);
        let admin = Admin::new(api, metrics);
        openapi(&admin)
    }

    #[test]
    fn the_openapi_document_describes_every_route_and_body() {
        let doc = doc();
        let paths = doc["paths"].as_object().unwrap();
        let expected = [
            ("/v1/collections", vec!["get", "post"]),
            ("/v1/collections/{name}", vec!["get", "delete"]),
            ("/v1/collections/{name}/status", vec!["get"]),
            ("/v1/collections/{name}/points", vec!["post"]),
            ("/v1/collections/{name}/points/search", vec!["post"]),
            ("/v1/collections/{name}/points/search/batch", vec!["post"]),
            ("/v1/collections/{name}/points/get", vec!["post"]),
            ("/v1/collections/{name}/points/delete", vec!["post"]),
            ("/v1/collections/{name}/points/scroll", vec!["post"]),
            ("/v1/collections/{name}/points/count", vec!["post"]),
            ("/v1/collections/{name}/points/{id}", vec!["get", "delete"]),
            ("/v1/feedback", vec!["post"]),
            ("/v1/collections/{name}/feedback/stats", vec!["get"]),
            ("/v1/system/health", vec!["get"]),
            ("/v1/admin/stats", vec!["get"]),
            ("/v1/admin/workers", vec!["get"]),
            ("/v1/admin/workers/{id}/drain", vec!["post"]),
            ("/v1/admin/workers/{id}", vec!["delete"]),
            ("/v1/admin/collections", vec!["get"]),
            ("/v1/alerts", vec!["get"]),
            ("/v1/alerts/{id}/resolve", vec!["post"]),
            ("/metrics", vec!["get"]),
            ("/v1/auth/login", vec!["post"]),
            ("/v1/auth/refresh", vec!["post"]),
            ("/v1/auth/logout", vec!["post"]),
            ("/v1/auth/me", vec!["get"]),
            ("/v1/auth/password", vec!["post"]),
            ("/v1/auth/keys", vec!["get", "post"]),
            ("/v1/auth/keys/{key_id}", vec!["delete"]),
            ("/v1/auth/users", vec!["get", "post"]),
            ("/v1/auth/users/{username}", vec!["get", "patch", "delete"]),
        ];
        for (path, methods) in &expected {
            let item = paths.get(*path).unwrap_or_else(|| panic!("{path} is documented"));
            for m in methods {
                assert!(item.get(*m).is_some(), "{m} {path} is documented");
            }
        }
        assert_eq!(paths.len(), expected.len(), "no undocumented extras: {:?}", paths.keys().collect::<Vec<_>>());
        let search = &doc["components"]["schemas"]["SearchJson"];
        assert_eq!(search["required"], serde_json::json!(["vector"]), "{search}");
        for field in ["vector", "top_k", "filter", "ef", "consistency", "timeout_ms"] {
            assert!(search["properties"].get(field).is_some(), "SearchJson.{field}");
        }
        assert!(doc["components"]["schemas"].get("PointId").is_some());
        assert!(doc["components"]["schemas"].get("ErrorReply").is_some());
    }

    #[test]
    fn the_openapi_document_states_the_servers_own_constraints() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        // Ids: a plain integer (up to u64::MAX exactly) or a 1-256 character string.
        let id = &schemas["PointId"]["oneOf"];
        assert_eq!((&id[0]["type"], &id[0]["maximum"]), (&json!("integer"), &json!(u64::MAX)), "{id}");
        assert!(id[0].get("format").is_none(), "no int64 format: ids go past i64::MAX");
        assert_eq!((&id[1]["minLength"], &id[1]["maxLength"]), (&json!(1), &json!(256)), "{id}");
        let search = &schemas["SearchJson"]["properties"];
        assert_eq!((&search["top_k"]["minimum"], &search["top_k"]["maximum"]), (&json!(1), &json!(10000)));
        assert_eq!(search["vector"]["minItems"], json!(1));
        assert_eq!(schemas["CollectionJson"]["properties"]["name"]["pattern"], json!("^[a-zA-Z0-9_-]{1,64}$"));
        assert_eq!(schemas["Range"]["minProperties"], json!(1), "{}", schemas["Range"]);
        for name in ["Filter", "Condition", "MatchCondition", "HasIdCondition"] {
            assert!(schemas.get(name).is_some(), "the filter language's {name} is documented");
        }
        // Every operation declares its error answers with the error schema.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for code in ["400", "429"] {
                    let answer = &responses.get(code).unwrap_or_else(|| panic!("{method} {path} declares {code}"));
                    if path != "/v1/system/health" {
                        let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                        assert_eq!(schema, &json!("#/components/schemas/ErrorReply"), "{method} {path} {code}");
                    }
                }
                let public =
                    path == "/v1/system/health" || path.starts_with("/v1/auth/log") || path == "/v1/auth/refresh";
                assert!(public || responses.contains_key("401") && responses.contains_key("403"), "{method} {path}");
            }
        }
    }
}
