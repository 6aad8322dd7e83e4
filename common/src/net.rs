//! Server-side sockets: every server (gRPC and HTTP) takes an already-bound listener
//! (tests bind port 0) and serves it through [`incoming`]: the accepted connections,
//! with Nagle's algorithm off (small request/answer exchanges otherwise wait for the
//! peer's delayed ACK, ~40 ms per call on Linux), and over TLS when the process has it
//! ([`crate::tls`]): internal ports ask callers for a cluster certificate, public ones
//! do not. Handshakes run beside the accept loop, each within [`HANDSHAKE_WITHIN`] and at
//! most [`MAX_HANDSHAKES`] at once, so a slow or silent client holds up no one else.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::tls::{Port, delegate_io};

/// Longest a client may take over its TLS handshake.
pub const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// An accepted connection.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

delegate_io!(Conn);

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.tcp().peer_addr().ok()
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo { local_addr: self.tcp().local_addr().ok(), remote_addr: self.remote_addr() }
    }
}

/// The connections of a listener, ready to serve (handshakes done). Dropping it closes
/// the listener.
#[derive(Debug)]
pub struct Incoming {
    ready: mpsc::Receiver<Conn>,
    local_addr: io::Result<SocketAddr>,
}

/// The accepted connections of `listener`, a port of kind `port`: with `TCP_NODELAY`,
/// and through a TLS handshake when TLS is installed.
pub fn incoming(listener: TcpListener, port: Port) -> Incoming {
    let local_addr = listener.local_addr();
    let (tx, ready) = mpsc::channel(64);
    tokio::spawn(accept(listener, port, tx));
    Incoming { ready, local_addr }
}

/// TLS handshakes one listener runs at once.
const MAX_HANDSHAKES: usize = 1024;

async fn accept(listener: TcpListener, port: Port, tx: mpsc::Sender<Conn>) {
    let handshakes = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            // Nobody serves the connections any more: let the port go.
            _ = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        let Some(tls) = crate::tls::installed() else {
            if tx.send(Conn::Plain(tcp)).await.is_err() {
                return;
            }
            continue;
        };
        // Handshakes at once are bounded: silent clients cannot pile up without limit
        // (the accept loop waits for a slot instead).
        let Ok(slot) = handshakes.clone().acquire_owned().await else { return };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server(port));
        let tx = tx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    // A server that stopped taking connections lets them go.
                    let _ = tokio::time::timeout(HANDSHAKE_WITHIN, tx.send(Conn::Tls(Box::new(stream)))).await;
                }
                // A client without the CA, a peer without a certificate, a plain-text
                // client: refused at the handshake.
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake refused: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake not done within {HANDSHAKE_WITHIN:?}"),
            }
        });
    }
}

impl Incoming {
    /// The next connection (`None` once the accept loop is gone).
    pub async fn next(&mut self) -> Option<Conn> {
        self.ready.recv().await
    }

    /// The listener's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.local_addr {
            Ok(a) => Ok(*a),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

impl futures::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Conn>>> {
        self.ready.poll_recv(cx).map(|c| c.map(Ok))
    }
}
