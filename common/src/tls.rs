//! TLS on every port (rustls, ring): what a process presents and whom it trusts, loaded
//! from PEM files and reloaded when they change (a Kubernetes Secret or cert-manager
//! renewal swaps them in place).
//!
//! Two kinds of port:
//! - **internal** (placement, worker with the Raft transport, auth, reranker): mutual
//!   TLS. A server asks every caller for a certificate signed by the cluster CA
//!   (`ca_file`), and a caller checks the server's against it. The process's own
//!   certificate (`cert_file`, `key_file`) serves both ends, so it needs the
//!   `serverAuth` and `clientAuth` usages and every name peers dial it by (the
//!   advertised host: a DNS name or an IP address).
//! - **public** (the gateway's gRPC and HTTP): TLS without client certificates — the
//!   callers authenticate with API keys and tokens. The certificate is
//!   `public_cert_file` / `public_key_file`, or else the internal one.
//!
//! One [`Tls`] per process, [`install`]ed at start as the cluster secret is: the accept
//! loops ([`crate::net::incoming`]) and the outgoing connections ([`Connector`]) take the
//! current configuration on every new connection, so a reload applies to new
//! connections while open ones keep theirs.
//!
//! [`generate`] makes a CA and a certificate signed by it (for `vectron dev --tls` and
//! tests).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

/// Where a process's certificates are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This process's certificate chain (PEM), for its internal ports and its calls.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The CA that signs the cluster's internal certificates.
    pub ca_file: PathBuf,
    /// The gateway's public certificate and key (none: the internal ones).
    pub public: Option<(PathBuf, PathBuf)>,
}

/// Which side of the cluster a port faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Inside the cluster: callers present a certificate the cluster CA signed.
    Internal,
    /// Clients: no client certificate asked for.
    Public,
}

/// Why certificates could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

fn fail(what: &str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError(format!("{what} {}: {e}", path.display()))
}

/// The configurations built from one reading of the files.
struct Loaded {
    internal: Arc<ServerConfig>,
    public: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    /// Of the files' contents: a reload that reads the same bytes changes nothing.
    fingerprint: [u8; 32],
}

/// A process's TLS configuration, reloadable.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<Loaded>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| fail("cannot read", path, e))
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| fail("in", path, e))?;
    if certs.is_empty() {
        return Err(fail("no certificate in", path, "expected PEM `CERTIFICATE` blocks"));
    }
    Ok(certs)
}

fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| fail("no private key in", path, e))
}

/// The server side of one certificate: `client_ca` asks callers for a certificate it
/// signed.
fn server_config(
    (cert_path, cert): (&Path, &[u8]),
    (key_path, key): (&Path, &[u8]),
    client_ca: Option<&RootCertStore>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?;
    let builder = match client_ca {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider())
                .build()
                .map_err(|e| TlsError(format!("the client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certificates(cert_path, cert)?, private_key(key_path, key)?)
        .map_err(|e| fail("the certificate and key of", cert_path, e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

impl Tls {
    /// Reads `files`; an error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let loaded = Tls::read_files(&files)?;
        Ok(Tls { files, current: RwLock::new(Arc::new(loaded)) })
    }

    fn read_files(files: &TlsFiles) -> Result<Loaded, TlsError> {
        let (cert, key, ca) = (read(&files.cert_file)?, read(&files.key_file)?, read(&files.ca_file)?);
        let public = match &files.public {
            Some((c, k)) => Some((read(c)?, read(k)?)),
            None => None,
        };
        let mut hash = Sha256::new();
        for part in [&cert, &key, &ca].into_iter().chain(public.iter().flat_map(|(c, k)| [c, k])) {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        let mut roots = RootCertStore::empty();
        for ca_cert in certificates(&files.ca_file, &ca)? {
            roots.add(ca_cert).map_err(|e| fail("a CA certificate in", &files.ca_file, e))?;
        }
        let own = (files.cert_file.as_path(), cert.as_slice());
        let own_key = (files.key_file.as_path(), key.as_slice());
        let internal = server_config(own, own_key, Some(&roots), &[b"h2"])?;
        // HTTP/1.1 too on the public side: the HTTP API and the console's browsers.
        let public = match (&files.public, &public) {
            (Some((cp, kp)), Some((c, k))) => server_config((cp, c), (kp, k), None, &[b"h2", b"http/1.1"])?,
            _ => server_config(own, own_key, None, &[b"h2", b"http/1.1"])?,
        };
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certificates(&files.cert_file, &cert)?, private_key(&files.key_file, &key)?)
            .map_err(|e| fail("the certificate and key of", &files.cert_file, e))?;
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Loaded { internal, public, client: Arc::new(client), fingerprint: hash.finalize().into() })
    }

    /// Reads the files again; returns whether what they hold changed. On an error the
    /// configuration in use stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let loaded = Tls::read_files(&self.files)?;
        let mut current = self.current.write();
        if current.fingerprint == loaded.fingerprint {
            return Ok(false);
        }
        *current = Arc::new(loaded);
        Ok(true)
    }

    /// The server configuration new connections on a `port` get.
    pub fn server(&self, port: Port) -> Arc<ServerConfig> {
        let current = self.current.read();
        match port {
            Port::Internal => current.internal.clone(),
            Port::Public => current.public.clone(),
        }
    }

    /// The configuration of a new call to an internal port.
    pub fn client(&self) -> Arc<ClientConfig> {
        self.current.read().client.clone()
    }
}

static INSTALLED: OnceLock<Tls> = OnceLock::new();

/// Makes `tls` the process's: every port serves TLS from now on and every internal call
/// is made over it. Checks the files every `reload_every` (in the background, on the
/// current tokio runtime) and takes what changed. Fails if a configuration is installed
/// already.
pub fn install(tls: Tls, reload_every: Duration) -> Result<(), String> {
    let files = tls.files.clone();
    INSTALLED.set(tls).map_err(|_| "TLS is installed already in this process".to_owned())?;
    tracing::info!(cert = %files.cert_file.display(), ca = %files.ca_file.display(), "TLS on every port");
    // Reading and parsing the files is cheap, but not in a tight loop.
    let reload_every = reload_every.max(Duration::from_millis(100));
    tokio::spawn(async move {
        let tls = INSTALLED.get().expect("installed above");
        loop {
            tokio::time::sleep(reload_every).await;
            match tokio::task::block_in_place(|| tls.reload()) {
                Ok(true) => tracing::info!(cert = %files.cert_file.display(), "TLS certificates reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!("TLS certificates not reloaded, the ones in use stay: {e}"),
            }
        }
    });
    Ok(())
}

/// The process's TLS configuration, if one is installed.
pub fn installed() -> Option<&'static Tls> {
    INSTALLED.get()
}

// ---- outgoing connections ----

/// The host part of `host:port` (an IPv6 address without its brackets).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// The time a [`Connector`] spreads over its addresses per connection, and the least
/// each gets (TCP connect and TLS handshake).
const CONNECT_EACH: Duration = Duration::from_secs(2);
const MIN_CONNECT_EACH: Duration = Duration::from_millis(500);

/// A connection made by [`Connector`].
#[derive(Debug)]
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Connects a tonic channel to internal ports: over TLS with the process's certificate
/// when TLS is installed (the configuration of the moment, so reloads apply), else plain
/// TCP; with TCP_NODELAY. With several addresses, each new connection tries them in turn
/// from where the last one succeeded, so a channel fails over when its peer goes away.
#[derive(Debug, Clone)]
pub struct Connector {
    addresses: Arc<[String]>,
    next: Arc<AtomicUsize>,
}

impl Connector {
    /// A connector to `addresses` (`host:port` each; at least one), starting at a random
    /// one so that many callers spread over them.
    pub fn new(addresses: Vec<String>) -> Connector {
        assert!(!addresses.is_empty(), "a connector needs an address");
        let start = rand::random::<u32>() as usize % addresses.len();
        Connector { addresses: addresses.into(), next: Arc::new(AtomicUsize::new(start)) }
    }

    async fn connect(addresses: Arc<[String]>, next: Arc<AtomicUsize>) -> io::Result<TokioIo<ClientStream>> {
        let first = next.load(Ordering::Relaxed);
        let mut last_error = None;
        // Each address gets its share of the time (a dropped SYN must not use up the
        // channel's whole connect timeout on one address), and the next connection
        // starts past one that failed.
        let each = CONNECT_EACH / addresses.len().max(1) as u32;
        for i in 0..addresses.len() {
            let at = (first + i) % addresses.len();
            let attempt = tokio::time::timeout(each.max(MIN_CONNECT_EACH), Connector::connect_one(&addresses[at]));
            match attempt.await {
                Ok(Ok(stream)) => {
                    next.store(at, Ordering::Relaxed);
                    return Ok(TokioIo::new(stream));
                }
                Ok(Err(e)) => last_error = Some(e),
                Err(_) => {
                    last_error = Some(io::Error::new(io::ErrorKind::TimedOut, format!("{}: no answer", addresses[at])))
                }
            }
            next.store((at + 1) % addresses.len(), Ordering::Relaxed);
        }
        Err(last_error.expect("at least one address"))
    }

    async fn connect_one(addr: &str) -> io::Result<ClientStream> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let Some(tls) = installed() else { return Ok(ClientStream::Plain(tcp)) };
        let name = ServerName::try_from(host_of(addr).to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: not a host name: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls.client()).connect(name, tcp).await?;
        Ok(ClientStream::Tls(Box::new(stream)))
    }
}

impl tower::Service<http::Uri> for Connector {
    type Response = TokioIo<ClientStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<ClientStream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        Box::pin(Connector::connect(self.addresses.clone(), self.next.clone()))
    }
}

/// `AsyncRead` and `AsyncWrite` for an enum of a plain and a TLS stream (both `Unpin`):
/// each call goes to the one inside.
macro_rules! delegate_io {
    ($ty:ident) => {
        impl ::tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $ty::Plain(s) => ::tokio::io::AsyncRead::poll_read(::std::pin::Pin::new(s), cx, buf),
                    $ty::Tls(s) => ::tokio::io::AsyncRead::poll_read(::std::pin::Pin::new(s.as_mut()), cx, buf),
                }
            }
        }

        impl ::tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                match self.get_mut() {
                    $ty::Plain(s) => ::tokio::io::AsyncWrite::poll_write(::std::pin::Pin::new(s), cx, buf),
                    $ty::Tls(s) => ::tokio::io::AsyncWrite::poll_write(::std::pin::Pin::new(s.as_mut()), cx, buf),
                }
            }

            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                match self.get_mut() {
                    $ty::Plain(s) => ::tokio::io::AsyncWrite::poll_write_vectored(::std::pin::Pin::new(s), cx, bufs),
                    $ty::Tls(s) => {
                        ::tokio::io::AsyncWrite::poll_write_vectored(::std::pin::Pin::new(s.as_mut()), cx, bufs)
                    }
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    $ty::Plain(s) => ::tokio::io::AsyncWrite::is_write_vectored(s),
                    $ty::Tls(s) => ::tokio::io::AsyncWrite::is_write_vectored(s),
                }
            }

            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $ty::Plain(s) => ::tokio::io::AsyncWrite::poll_flush(::std::pin::Pin::new(s), cx),
                    $ty::Tls(s) => ::tokio::io::AsyncWrite::poll_flush(::std::pin::Pin::new(s.as_mut()), cx),
                }
            }

            fn poll_shutdown(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $ty::Plain(s) => ::tokio::io::AsyncWrite::poll_shutdown(::std::pin::Pin::new(s), cx),
                    $ty::Tls(s) => ::tokio::io::AsyncWrite::poll_shutdown(::std::pin::Pin::new(s.as_mut()), cx),
                }
            }
        }
    };
}

delegate_io!(ClientStream);
pub(crate) use delegate_io;

// ---- certificates for `vectron dev --tls` and tests ----

/// A certificate authority made by [`CertificateAuthority::new`]: signs certificates.
pub struct CertificateAuthority {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    /// The CA certificate (PEM).
    pub cert_pem: String,
}

impl CertificateAuthority {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Result<CertificateAuthority, TlsError> {
        let e = |e: rcgen::Error| TlsError(format!("making a CA: {e}"));
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().map_err(e)?;
        let cert_pem = params.self_signed(&key).map_err(e)?.pem();
        Ok(CertificateAuthority { params, key, cert_pem })
    }

    /// A certificate for `names` (DNS names or IP addresses), good for serving and for
    /// calling: (certificate PEM, private key PEM).
    pub fn issue(&self, names: &[&str]) -> Result<(String, String), TlsError> {
        let e = |e: rcgen::Error| TlsError(format!("making a certificate for {names:?}: {e}"));
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).map_err(e)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, names.first().copied().unwrap_or("vectron"));
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
        let key = rcgen::KeyPair::generate().map_err(e)?;
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(e)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Certificates for `names` under `dir` (`ca.crt`, `tls.crt`, `tls.key`, as a
/// cert-manager Secret names them), made with a new CA unless they exist: the files a
/// single-machine cluster (`vectron dev --tls`) uses for every port. The keys are
/// owner-only; the CA's key is not kept (nothing else is ever signed with it).
pub fn generate(dir: &Path, names: &[&str]) -> Result<TlsFiles, TlsError> {
    let files = TlsFiles {
        cert_file: dir.join("tls.crt"),
        key_file: dir.join("tls.key"),
        ca_file: dir.join("ca.crt"),
        public: None,
    };
    if files.cert_file.exists() && files.key_file.exists() && files.ca_file.exists() {
        return Ok(files);
    }
    let ca = CertificateAuthority::new("vectron dev CA")?;
    let (cert, key) = ca.issue(names)?;
    for path in [&files.cert_file, &files.key_file, &files.ca_file] {
        let _ = std::fs::remove_file(path);
    }
    crate::secret_file::write_private(&files.key_file, key.as_bytes()).map_err(TlsError)?;
    std::fs::write(&files.cert_file, cert).map_err(|e| fail("writing", &files.cert_file, e))?;
    std::fs::write(&files.ca_file, &ca.cert_pem).map_err(|e| fail("writing", &files.ca_file, e))?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn generated_files_load_and_are_kept_on_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path(), &["localhost", "127.0.0.1"]).unwrap();
        let tls = Tls::load(files.clone()).unwrap();
        assert_eq!(tls.server(Port::Internal).alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(tls.server(Port::Public).alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let ca = std::fs::read(&files.ca_file).unwrap();
        assert_eq!(generate(dir.path(), &["localhost"]).unwrap(), files);
        assert_eq!(std::fs::read(&files.ca_file).unwrap(), ca, "existing certificates are kept");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&files.key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_reload_takes_new_files_and_keeps_the_old_ones_when_the_new_are_bad() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path(), &["localhost"]).unwrap();
        let tls = Tls::load(files.clone()).unwrap();
        let before = tls.server(Port::Internal);
        assert!(!tls.reload().unwrap(), "the same bytes change nothing");
        assert!(Arc::ptr_eq(&before, &tls.server(Port::Internal)));

        let ca = CertificateAuthority::new("next CA").unwrap();
        let (cert, key) = ca.issue(&["localhost"]).unwrap();
        write(dir.path(), "tls.crt", &cert);
        write(dir.path(), "tls.key", &key);
        write(dir.path(), "ca.crt", &ca.cert_pem);
        assert!(tls.reload().unwrap());
        let after = tls.server(Port::Internal);
        assert!(!Arc::ptr_eq(&before, &after));

        write(dir.path(), "tls.key", "not a key");
        let e = tls.reload().unwrap_err().to_string();
        assert!(e.contains("tls.key"), "{e}");
        assert!(Arc::ptr_eq(&after, &tls.server(Port::Internal)), "a bad file keeps the configuration in use");
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = generate(dir.path(), &["localhost"]).unwrap();
        files.ca_file = write(dir.path(), "empty.crt", "");
        let e = Tls::load(files.clone()).unwrap_err().to_string();
        assert!(e.contains("no certificate in") && e.contains("empty.crt"), "{e}");
        files.ca_file = dir.path().join("missing.crt");
        let e = Tls::load(files).unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("missing.crt"), "{e}");
    }

    #[test]
    fn hosts_come_out_of_addresses() {
        assert_eq!(host_of("vectron-worker-0.vectron-worker:9090"), "vectron-worker-0.vectron-worker");
        assert_eq!(host_of("127.0.0.1:9090"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9090"), "::1");
    }
}
