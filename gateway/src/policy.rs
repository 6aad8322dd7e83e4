//! What each public route and gRPC method needs before the gateway reads its body: the
//! scope it requires and on what (a collection named in the path, any collection, or
//! the whole cluster), and the largest body (or, for gRPC, message) it accepts.
//!
//! The auth layer ([`crate::auth`]) checks this table before a byte of the body is read:
//! a caller whose scope is too low for the operation, or (HTTP routes naming the
//! collection in the path) who may not act on that collection, is refused at once, so
//! a forbidden 32 MiB upsert costs nothing but the refusal. Where the collection is only
//! named in the body (gRPC messages, `POST /v1/collections`, feedback), a caller whose
//! scope suffices but whose credential is limited to other collections has the body
//! (held to the route's limit) read before [`crate::api::Api`] refuses it.
//!
//! The gRPC method names here are also the metrics labels: a path that is not one of
//! them is counted as `unknown` (label values come from this closed set only).

use http::Method;

use vectron_auth::keys::Scope;

/// On what a scope is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The collection named in the path.
    Collection(String),
    /// Some collection, named in the body (checked again once it is parsed).
    AnyCollection,
    /// The whole cluster (credentials limited to collections never get it).
    Cluster,
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone (health checks; log-in, whose body carries the credentials).
    Public,
    Scope(Scope, Target),
}

/// The HTTP routes anyone may call: health checks, and log-in, refresh and log-out
/// (whose bodies carry the credentials). The auth layer admits them without
/// credentials; the OpenAPI document declares no 401/403 for them.
pub const PUBLIC_HTTP_ROUTES: &[&str] = &["/v1/system/health", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout"];

/// The gRPC methods anyone may call: the standard health service, and log-in, refresh
/// and log-out (whose messages carry the credentials).
const PUBLIC_GRPC_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/vectron.v1.AuthService/Login",
    "/vectron.v1.AuthService/Refresh",
    "/vectron.v1.AuthService/Logout",
];

/// The body limit of the request's route, put in its extensions by the auth layer and
/// read by the body extractor.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Bodies of routes that carry little: account routes, feedback, routes without a body.
pub const SMALL_BODY_BYTES: usize = 16 << 10;
/// A collection's configuration.
pub const CONFIG_BODY_BYTES: usize = 64 << 10;
/// One search, a scroll, a count (a vector and a filter).
pub const SEARCH_BODY_BYTES: usize = 4 << 20;
/// A batch of searches, or a list of ids to get or delete.
pub const BATCH_BODY_BYTES: usize = 16 << 20;
/// The default largest upsert body (`gateway.max_upsert_bytes`).
pub const DEFAULT_UPSERT_BYTES: usize = 32 << 20;

/// The limits that can be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest upsert body (HTTP) or message (gRPC).
    pub upsert: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits { upsert: DEFAULT_UPSERT_BYTES }
    }
}

/// What a request needs and how much body it may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub requirement: Requirement,
    /// Largest body (HTTP) or message (gRPC, each message of a stream).
    pub max_body: usize,
}

fn needs(scope: Scope, target: Target, max_body: usize) -> Policy {
    Policy { requirement: Requirement::Scope(scope, target), max_body }
}

/// Whether `path` is the console's (`/console` or below): its static files, public.
/// The auth layer asks this of the request path too, since axum gives a request routed
/// into a nested service no matched template.
pub fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// The policy of an HTTP request: `template` is the route it matched (`None`: no
/// route), `param` reads a path parameter.
pub fn http(
    method: &Method,
    template: Option<&str>,
    param: impl Fn(&str) -> Option<String>,
    limits: BodyLimits,
) -> Policy {
    use Scope::{Admin, Read, Write};
    let small = |scope, target| needs(scope, target, SMALL_BODY_BYTES);
    // A `{name}` that does not decode (not UTF-8) is held to the strictest target; the
    // route then refuses the path itself.
    let named = || param("name").map(Target::Collection).unwrap_or(Target::Cluster);
    let Some(template) = template else {
        // No such route: answered 404 to whoever may call the API at all.
        return small(Read, Target::AnyCollection);
    };
    // The console's files are public: the app asks its user for credentials itself.
    if PUBLIC_HTTP_ROUTES.contains(&template) || is_console(template) {
        return Policy { requirement: Requirement::Public, max_body: SMALL_BODY_BYTES };
    }
    if template.starts_with("/v1/auth/") {
        // The auth service judges what the caller may do with accounts.
        return small(Read, Target::AnyCollection);
    }
    if template.starts_with("/v1/admin/") || template.starts_with("/v1/alerts") || template == "/metrics" {
        return small(Admin, Target::Cluster);
    }
    let point_route = template.strip_prefix("/v1/collections/{name}");
    match (method, template, point_route) {
        (&Method::GET, "/v1/collections" | "/v1/openapi.json", _) => small(Read, Target::AnyCollection),
        (&Method::POST, "/v1/collections", _) => needs(Admin, Target::AnyCollection, CONFIG_BODY_BYTES),
        (&Method::POST, "/v1/feedback", _) => small(Write, Target::AnyCollection),
        (&Method::GET, _, Some("" | "/status" | "/points/{id}" | "/feedback/stats")) => small(Read, named()),
        (&Method::DELETE, _, Some("")) => small(Admin, named()),
        (&Method::DELETE, _, Some("/points/{id}")) => small(Write, named()),
        (&Method::POST, _, Some("/points")) => needs(Write, named(), limits.upsert),
        (&Method::POST, _, Some("/points/delete")) => needs(Write, named(), BATCH_BODY_BYTES),
        (&Method::POST, _, Some("/points/search/batch" | "/points/get")) => needs(Read, named(), BATCH_BODY_BYTES),
        (&Method::POST, _, Some("/points/search" | "/points/scroll" | "/points/count")) => {
            needs(Read, named(), SEARCH_BODY_BYTES)
        }
        // A known path with a method it does not take: answered 405.
        _ => small(Read, Target::AnyCollection),
    }
}

/// The public gRPC service's path prefix.
const GRPC_SERVICE: &str = "/vectron.v1.VectronService/";

/// Every method of `vectron.v1.VectronService` (its path, which is also its metrics
/// label) and what it needs (each names its collection in its message).
const GRPC_METHODS: &[(&str, Scope)] = &[
    ("/vectron.v1.VectronService/CreateCollection", Scope::Admin),
    ("/vectron.v1.VectronService/GetCollection", Scope::Read),
    ("/vectron.v1.VectronService/GetCollectionStatus", Scope::Read),
    ("/vectron.v1.VectronService/ListCollections", Scope::Read),
    ("/vectron.v1.VectronService/DeleteCollection", Scope::Admin),
    ("/vectron.v1.VectronService/Upsert", Scope::Write),
    ("/vectron.v1.VectronService/Get", Scope::Read),
    ("/vectron.v1.VectronService/Delete", Scope::Write),
    ("/vectron.v1.VectronService/Scroll", Scope::Read),
    ("/vectron.v1.VectronService/Count", Scope::Read),
    ("/vectron.v1.VectronService/Search", Scope::Read),
    ("/vectron.v1.VectronService/SearchBatch", Scope::Read),
    ("/vectron.v1.VectronService/SearchStream", Scope::Read),
    ("/vectron.v1.VectronService/SubmitFeedback", Scope::Write),
    ("/vectron.v1.VectronService/GetFeedbackStats", Scope::Read),
    // The account methods: any credential gets through; the auth service decides what
    // it may do (as for the HTTP account routes).
    ("/vectron.v1.AuthService/CreateUser", Scope::Read),
    ("/vectron.v1.AuthService/GetUser", Scope::Read),
    ("/vectron.v1.AuthService/ListUsers", Scope::Read),
    ("/vectron.v1.AuthService/UpdateUser", Scope::Read),
    ("/vectron.v1.AuthService/DeleteUser", Scope::Read),
    ("/vectron.v1.AuthService/ChangePassword", Scope::Read),
    ("/vectron.v1.AuthService/CreateApiKey", Scope::Read),
    ("/vectron.v1.AuthService/ListApiKeys", Scope::Read),
    ("/vectron.v1.AuthService/RevokeApiKey", Scope::Read),
    ("/vectron.v1.AuthService/Authenticate", Scope::Read),
    // The cluster's operations: admins of the whole cluster.
    ("/vectron.v1.AdminService/GetClusterStatus", Scope::Admin),
    ("/vectron.v1.AdminService/ListWorkers", Scope::Admin),
    ("/vectron.v1.AdminService/DrainWorker", Scope::Admin),
    ("/vectron.v1.AdminService/RemoveWorker", Scope::Admin),
    ("/vectron.v1.AdminService/ListAlerts", Scope::Admin),
    ("/vectron.v1.AdminService/ResolveAlert", Scope::Admin),
];

/// The admin service's path prefix: its methods need their scope on the whole cluster.
const GRPC_ADMIN_SERVICE: &str = "/vectron.v1.AdminService/";

/// The policy of a gRPC call to `path`, and its metrics label (`unknown` for any path
/// that is not a method of the gateway).
pub fn grpc(path: &str, limits: BodyLimits) -> (Policy, &'static str) {
    if let Some(&public) = PUBLIC_GRPC_METHODS.iter().find(|p| **p == path) {
        return (Policy { requirement: Requirement::Public, max_body: SMALL_BODY_BYTES }, public);
    }
    let Some(&(label, scope)) = GRPC_METHODS.iter().find(|(p, _)| *p == path) else {
        // Unknown methods are answered UNIMPLEMENTED to authenticated callers.
        return (needs(Scope::Read, Target::AnyCollection, SMALL_BODY_BYTES), "unknown");
    };
    let max_body = match label.strip_prefix(GRPC_SERVICE).unwrap_or(label) {
        "Upsert" => limits.upsert,
        "SearchBatch" | "Get" | "Delete" => BATCH_BODY_BYTES,
        "Search" | "SearchStream" | "Scroll" | "Count" => SEARCH_BODY_BYTES,
        "CreateCollection" => CONFIG_BODY_BYTES,
        _ => SMALL_BODY_BYTES,
    };
    let target = if label.starts_with(GRPC_ADMIN_SERVICE) { Target::Cluster } else { Target::AnyCollection };
    (needs(scope, target, max_body), label)
}

/// The largest message any gRPC method accepts (the service's own decoding limit).
pub fn grpc_max_message(limits: BodyLimits) -> usize {
    limits.upsert.max(BATCH_BODY_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_routes_name_their_collection_and_unknown_ones_need_credentials() {
        let limits = BodyLimits::default();
        let param = |name: &str| (name == "name").then(|| "docs".to_owned());
        let docs = || Target::Collection("docs".into());
        let cases = [
            (Method::POST, Some("/v1/collections/{name}/points"), Requirement::Scope(Scope::Write, docs())),
            (Method::POST, Some("/v1/collections/{name}/points/search"), Requirement::Scope(Scope::Read, docs())),
            (Method::DELETE, Some("/v1/collections/{name}"), Requirement::Scope(Scope::Admin, docs())),
            (Method::DELETE, Some("/v1/collections/{name}/points/{id}"), Requirement::Scope(Scope::Write, docs())),
            (Method::GET, Some("/v1/admin/workers"), Requirement::Scope(Scope::Admin, Target::Cluster)),
            (Method::GET, Some("/metrics"), Requirement::Scope(Scope::Admin, Target::Cluster)),
            (Method::POST, Some("/v1/auth/login"), Requirement::Public),
            (Method::GET, Some("/v1/system/health"), Requirement::Public),
            (Method::POST, Some("/v1/auth/keys"), Requirement::Scope(Scope::Read, Target::AnyCollection)),
            (
                Method::PUT,
                Some("/v1/collections/{name}/points"),
                Requirement::Scope(Scope::Read, Target::AnyCollection),
            ),
            (Method::GET, None, Requirement::Scope(Scope::Read, Target::AnyCollection)),
        ];
        for (method, template, expected) in cases {
            assert_eq!(http(&method, template, param, limits).requirement, expected, "{method} {template:?}");
        }
        assert_eq!(http(&Method::POST, Some("/v1/collections/{name}/points"), param, limits).max_body, limits.upsert);
        assert_eq!(http(&Method::POST, Some("/v1/auth/login"), param, limits).max_body, SMALL_BODY_BYTES);
    }

    #[test]
    fn grpc_labels_come_from_a_closed_set() {
        let limits = BodyLimits { upsert: 1 << 20 };
        let (policy, label) = grpc("/vectron.v1.VectronService/Upsert", limits);
        assert_eq!(
            (policy.requirement, policy.max_body, label),
            (Requirement::Scope(Scope::Write, Target::AnyCollection), 1 << 20, "/vectron.v1.VectronService/Upsert")
        );
        assert_eq!(grpc("/grpc.health.v1.Health/Check", limits).0.requirement, Requirement::Public);
        // The cluster's operations need ADMIN on the whole cluster, never on a collection.
        assert_eq!(
            grpc("/vectron.v1.AdminService/DrainWorker", limits).0.requirement,
            Requirement::Scope(Scope::Admin, Target::Cluster)
        );
        for junk in ["/vectron.v1.VectronService/Nope", "/x/y", "", "/vectron.v1.VectronService/"] {
            assert_eq!(grpc(junk, limits).1, "unknown", "{junk}");
        }
    }
}
