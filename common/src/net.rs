//! Server-side sockets: every gRPC server takes an already-bound listener (tests bind
//! port 0) and serves it through [`incoming`], which turns Nagle's algorithm off on each
//! accepted connection. Small request/answer exchanges otherwise wait for the peer's
//! delayed ACK (~40 ms per call on Linux).

use tonic::transport::server::TcpIncoming;

/// The accepted connections of `listener`, with `TCP_NODELAY` set.
pub fn incoming(listener: tokio::net::TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}
