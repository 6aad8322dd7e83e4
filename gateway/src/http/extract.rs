//! The HTTP side's leaf, which every route module uses and which uses none of them: the
//! JSON error answer ([`ApiError`], [`ErrorReply`]), the extractors that read a body
//! only up to the route's [`BodyLimit`] and turn every rejection into a typed
//! INVALID_ARGUMENT ([`Body`], [`PathParams`], [`QueryParams`]), and the middleware
//! that gives the router's own refusals (405) the same JSON form ([`json_errors`]).
//!
//! Errors are `{"error": {"code": "DIMENSION_MISMATCH", "message": …, "retryable":
//! false}}` with the HTTP status of `vectron_model::status::http_status` and
//! `retry-after` when the server knows.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vectron_model::status::{WireError, http_status};
use vectron_proto::v1::ErrorCode;

use crate::policy::BodyLimit;

/// A JSON error answer.
#[derive(Debug)]
pub struct ApiError(pub WireError);

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        ApiError(e)
    }
}

impl From<crate::error::GatewayError> for ApiError {
    fn from(e: crate::error::GatewayError) -> Self {
        ApiError(e.to_wire())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(http_status(e.code)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = serde_json::json!({
            "code": e.code.as_str_name(),
            "message": e.message,
            "retryable": e.retryable,
        });
        if let Some(l) = &e.leader {
            error["leader"] = serde_json::json!({"id": l.id, "address": l.address});
        }
        let mut response = (status, Json(serde_json::json!({ "error": error }))).into_response();
        if let Some(after) = e.retry_after {
            let secs = after.as_secs_f64().ceil() as u64;
            response.headers_mut().insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError(WireError::new(ErrorCode::InvalidArgument, message, false))
}

pub(crate) type Reply<T> = Result<Json<T>, ApiError>;

/// A JSON body, read only up to the route's [`BodyLimit`] (413 PAYLOAD_TOO_LARGE past
/// it, refused from `content-length` before anything is read when it says so), whose
/// rejection (malformed JSON, wrong types, wrong content type) is a typed
/// INVALID_ARGUMENT error.
#[derive(Debug)]
pub struct Body<T>(pub T);

pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError(WireError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body exceeds this route's limit of {limit} bytes"),
        false,
    ))
}

pub(crate) fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(ct) = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body's bytes, at most `limit` of them (`declared`, the content-length, sizes the
/// buffer once instead of doubling it as chunks arrive).
pub(crate) async fn read_limited(
    body: axum::body::Body,
    limit: usize,
    declared: Option<u64>,
) -> Result<bytes::Bytes, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::with_capacity(declared.map_or(0, |n| n.min(limit as u64) as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| invalid(format!("unreadable body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(crate::policy::SMALL_BODY_BYTES, |l| l.0);
        if !is_json(req.headers()) {
            return Err(invalid("expected content-type: application/json"));
        }
        let declared =
            req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let bytes = read_limited(req.into_body(), limit, declared).await?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => invalid(format!("invalid JSON body: {e}")),
                Category::Syntax | Category::Eof | Category::Io => invalid(format!("malformed JSON: {e}")),
            }
        })
    }
}

/// Path parameters whose rejection (a worker id that is not a number, say) is a typed
/// INVALID_ARGUMENT error.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathParams(v)),
            Err(e) => Err(invalid(format!("invalid path: {}", e.body_text()))),
        }
    }
}

/// Query parameters whose rejection is a typed INVALID_ARGUMENT error.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(e) => Err(invalid(format!("invalid query: {}", e.body_text()))),
        }
    }
}

/// Turns the router's own bodiless refusals (405 for a method a route does not take)
/// into the JSON error every other answer uses.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && !is_json(response.headers()) {
        let allow = response.headers().get(http::header::ALLOW).cloned();
        let mut refused =
            ApiError(WireError::new(ErrorCode::MethodNotAllowed, format!("{path} does not take {method}"), false))
                .into_response();
        if let Some(allow) = allow {
            refused.headers_mut().insert(http::header::ALLOW, allow);
        }
        return refused;
    }
    response
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorReply {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The stable `ErrorCode` name, e.g. `DIMENSION_MISMATCH`.
    pub code: String,
    pub message: String,
    /// Whether sending the same request again may succeed.
    pub retryable: bool,
}
