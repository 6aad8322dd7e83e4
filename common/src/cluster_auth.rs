//! Authentication of the internal APIs (placement, worker, Raft transport) with a
//! secret every process of one cluster shares.
//!
//! A process installs the secret once at start ([`install`]); from then on every
//! internal call it makes carries a token derived from it (the hex SHA-256 of the secret,
//! in `x-vectron-cluster-token`; channels from [`crate::raft::network::PeerChannels`]
//! attach it), and its internal servers refuse calls without the same token
//! ([`check`]) as UNAUTHENTICATED. A node of an in-process test cluster carries its own
//! [`ClusterToken`] instead (in its `NodeNetwork`), so one process can hold nodes of
//! different clusters. Without a secret installed nothing is attached or
//! checked (a warning says so at start). The token travels in the clear: use a private
//! network (or a mesh with mTLS) between the processes.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};
use vectron_proto::v1::ErrorCode;

use vectron_model::status::{WireError, to_status};

/// Metadata key of the cluster token.
pub const CLUSTER_TOKEN_HEADER: &str = "x-vectron-cluster-token";

/// Shortest accepted cluster secret.
pub const MIN_SECRET_BYTES: usize = 32;

static TOKEN: OnceLock<AsciiMetadataValue> = OnceLock::new();

/// The token a secret gives.
fn token_of(secret: &[u8]) -> AsciiMetadataValue {
    let mut v = AsciiMetadataValue::try_from(hex::encode(Sha256::digest(secret))).expect("hex is ASCII");
    v.set_sensitive(true);
    v
}

/// Installs this process's cluster secret (once; a second, different one is refused).
pub fn install(secret: &[u8]) -> Result<(), String> {
    let token = ClusterToken::from_secret(secret)?.0.expect("a secret gives a token");
    let installed = TOKEN.get_or_init(|| token.clone());
    if installed.as_bytes().ct_eq(token.as_bytes()).into() {
        Ok(())
    } else {
        Err("a different cluster secret is already installed in this process".into())
    }
}

/// Whether a secret is installed.
pub fn installed() -> bool {
    TOKEN.get().is_some()
}

/// The token a node presents and expects: none (nothing attached or checked), or the
/// token of a cluster secret.
#[derive(Debug, Clone, Default)]
pub struct ClusterToken(Option<AsciiMetadataValue>);

impl ClusterToken {
    /// The token of `secret` (at least [`MIN_SECRET_BYTES`]).
    pub fn from_secret(secret: &[u8]) -> Result<ClusterToken, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the cluster secret is {} bytes; at least {MIN_SECRET_BYTES} are required",
                secret.len()
            ));
        }
        Ok(ClusterToken(Some(token_of(secret))))
    }

    /// The process's installed token (none when no secret is installed).
    pub fn installed() -> ClusterToken {
        ClusterToken(TOKEN.get().cloned())
    }

    /// The server side: refuses a call without this token (when there is one).
    pub fn check(&self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.0 else { return Ok(request) };
        let presented = request.metadata().get(CLUSTER_TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if presented.ct_eq(token.as_bytes()).into() {
            Ok(request)
        } else {
            Err(to_status(&WireError::new(
                ErrorCode::Unauthenticated,
                "internal API: missing or wrong cluster token (is every process given the same cluster secret?)",
                false,
            )))
        }
    }

    /// [`ClusterToken::check`] as a server's interceptor.
    pub fn checker(self) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
        move |request| self.check(request)
    }
}

/// Attaches a token (and the current trace context) to every call through a channel.
#[derive(Debug, Clone, Default)]
pub struct AttachToken(ClusterToken);

impl AttachToken {
    /// The process's installed token.
    pub fn installed() -> AttachToken {
        AttachToken(ClusterToken::installed())
    }

    pub fn of(token: ClusterToken) -> AttachToken {
        AttachToken(token)
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0.0 {
            request.metadata_mut().insert(CLUSTER_TOKEN_HEADER, token.clone());
        }
        crate::telemetry::inject(request.metadata_mut());
        Ok(request)
    }
}

/// A channel to another process of the cluster (calls carry the token, and go through
/// the node's test faults when it has any).
pub type ClusterChannel = InterceptedService<crate::faults::FaultyChannel, AttachToken>;

/// The server side: refuses a call without the installed token (when one is installed).
pub fn check(request: Request<()>) -> Result<Request<()>, Status> {
    ClusterToken::installed().check(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The token is process-wide, so install/check are exercised in one test.
    #[test]
    fn calls_need_the_installed_token() {
        assert!(install(b"short").is_err());
        let secret = [7u8; 32];
        install(&secret).unwrap();
        install(&secret).unwrap();
        assert!(install(&[8u8; 32]).is_err(), "another secret is refused");
        let mut attached = AttachToken::installed().call(Request::new(())).unwrap();
        assert!(check(Request::new(())).is_err(), "no token");
        let mut wrong = Request::new(());
        wrong.metadata_mut().insert(CLUSTER_TOKEN_HEADER, token_of(&[8u8; 32]));
        let e = check(wrong).unwrap_err();
        assert_eq!(vectron_model::status::from_status(&e).code, ErrorCode::Unauthenticated);
        assert!(check(std::mem::replace(&mut attached, Request::new(()))).is_ok());
    }

    #[test]
    fn a_nodes_own_token_is_attached_and_checked() {
        let a = ClusterToken::from_secret(&[1u8; 32]).unwrap();
        let b = ClusterToken::from_secret(&[2u8; 32]).unwrap();
        assert!(ClusterToken::from_secret(b"short").is_err());
        let from_a = AttachToken::of(a.clone()).call(Request::new(())).unwrap();
        assert!(b.check(from_a).is_err(), "another cluster's token");
        let from_a = AttachToken::of(a.clone()).call(Request::new(())).unwrap();
        assert!(a.clone().checker()(from_a).is_ok());
        assert!(a.check(Request::new(())).is_err(), "no token");
        assert!(ClusterToken::default().check(Request::new(())).is_ok(), "no secret: nothing checked");
    }
}
