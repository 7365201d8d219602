//! gRPC transports: TLS over TCP between node and master, Unix sockets for
//! the local admin tools (`masterctl`, `agentctl`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::connections::{Admission, ConnectionTable};
use crate::tls::PeerIdentity;

/// Where a master is: host (name or IP) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterAddress {
    /// Host name or IP, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A master URL that is not `[https://]host[:port]`.
#[derive(Debug, thiserror::Error)]
#[error("invalid master address {0:?}: expected https://HOST[:PORT]")]
pub struct BadMasterAddress(String);

impl MasterAddress {
    /// Parses `https://host:port`, `host:port` or `host` (port 8140).
    pub fn parse(text: &str) -> Result<Self, BadMasterAddress> {
        let bad = || BadMasterAddress(text.to_string());
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("https://{text}")
        };
        let uri: Uri = with_scheme.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("https") {
            return Err(bad());
        }
        let host = uri.host().ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port: uri.port_u16().unwrap_or(crate::DEFAULT_MASTER_PORT),
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for MasterAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://{}", self.authority())
    }
}

/// The masters a node may talk to, in the order it tries them: one, or
/// several serving one fleet (`https://a:8140,https://b:8140`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterAddresses(Vec<MasterAddress>);

impl MasterAddresses {
    /// Parses one address or several separated by commas; an empty one
    /// or a bad one is an error naming it.
    pub fn parse(text: &str) -> Result<Self, BadMasterAddress> {
        let masters = text
            .split(',')
            .map(|one| MasterAddress::parse(one.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(masters))
    }

    /// Each master, in order.
    pub fn all(&self) -> &[MasterAddress] {
        &self.0
    }

    /// The masters in the order a node tries them now: from a place
    /// `start` picks (a node's own, so that nodes spread over the
    /// masters), round the list.
    pub fn from(&self, start: usize) -> impl Iterator<Item = &MasterAddress> {
        let n = self.0.len();
        (0..n).map(move |i| &self.0[(start + i) % n])
    }
}

impl From<MasterAddress> for MasterAddresses {
    fn from(one: MasterAddress) -> Self {
        Self(vec![one])
    }
}

impl std::fmt::Display for MasterAddresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, master) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{master}")?;
        }
        Ok(())
    }
}

/// Opens an HTTP/2 channel to the master over TLS with `config`.
pub async fn tls_channel(
    master: &MasterAddress,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    tls_channel_from(master, config, timeout, None).await
}

/// [`tls_channel`] from the local address `source` when one is given (a
/// load tool simulating nodes on 127.0.0.0/8 gives each its own).
pub async fn tls_channel_from(
    master: &MasterAddress,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
    source: Option<std::net::IpAddr>,
) -> Result<Channel, tonic::transport::Error> {
    let connector = TlsConnector::from(config);
    let authority = master.authority();
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))?
        .connect_timeout(timeout)
        .timeout(timeout)
        // A master that went away is noticed on a quiet watch stream too.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let master = master.clone();
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (connector, master) = (connector.clone(), master.clone());
            async move {
                Ok::<_, io::Error>(TokioIo::new(
                    connect_tls_from(&connector, &master, source).await?,
                ))
            }
        }))
        .await
}

/// One TLS connection to the master (TCP without Nagle's delay).
async fn connect_tls(
    connector: &TlsConnector,
    master: &MasterAddress,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    connect_tls_from(connector, master, None).await
}

/// [`connect_tls`] from the local address `source`, when one is given.
async fn connect_tls_from(
    connector: &TlsConnector,
    master: &MasterAddress,
    source: Option<std::net::IpAddr>,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = ServerName::try_from(master.host.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let tcp = match source {
        None => TcpStream::connect(master.authority()).await?,
        Some(source) => {
            let to: SocketAddr = master.authority().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}: a source address needs the master as an IP address",
                        master
                    ),
                )
            })?;
            let socket = match source {
                std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.bind(SocketAddr::new(source, 0))?;
            socket.connect(to).await?
        }
    };
    // Small gRPC frames: without this, Nagle + delayed ACKs add ~40 ms per call.
    tcp.set_nodelay(true)?;
    connector.connect(name, tcp).await
}

/// Whether the master accepts the client certificate in `config`: a TLS
/// 1.3 client learns of a refused certificate only from an alert on its
/// first read, which an HTTP/2 channel loses as "connection closed". This
/// connects once and reads: the server's first bytes mean accepted; a
/// TLS error is returned as the error's text ("received fatal alert:
/// CertificateRevoked"). `Ok` also when the link itself fails (that is
/// not a refusal).
pub async fn probe_client_certificate(
    master: &MasterAddress,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let attempt = async {
        let mut tls = connect_tls(&TlsConnector::from(config), master)
            .await
            .ok()?;
        let mut first = [0u8; 1];
        tls.read(&mut first).await.err()
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Some(e)) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            Err(e.to_string())
        }
        _ => Ok(()),
    }
}

/// Opens a channel over a Unix socket.
pub async fn unix_channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}

/// A server-side TLS connection carrying its [`PeerIdentity`]. It ends (a
/// read fails) when its table closes it to make room, or when no RPC
/// started within the first-RPC deadline after its handshake.
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    identity: PeerIdentity,
    admission: Admission,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    first_rpc_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TlsConnection {
    fn new(
        stream: tokio_rustls::server::TlsStream<TcpStream>,
        remote: SocketAddr,
        admission: Admission,
    ) -> Self {
        let certs = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| Arc::new(c.iter().map(|c| c.clone().into_owned()).collect::<Vec<_>>()));
        if let Some(chain) = certs.as_ref().filter(|c| !c.is_empty()) {
            admission.authenticated(chain.clone());
        }
        let identity = PeerIdentity {
            remote,
            certs,
            activity: Some(admission.activity().clone()),
        };
        Self {
            stream,
            identity,
            closed: Box::pin(admission.closed().clone().cancelled_owned()),
            first_rpc_deadline: Some(Box::pin(tokio::time::sleep(
                admission.limits().first_rpc_timeout,
            ))),
            admission,
        }
    }

    /// Why the connection must end now, if it must.
    fn ended(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.closed.as_mut().poll(cx).is_ready() {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                self.admission.close_reason(),
            ));
        }
        if self.admission.activity().rpc_seen() {
            self.first_rpc_deadline = None;
        }
        let deadline = self.first_rpc_deadline.as_mut()?;
        deadline
            .as_mut()
            .poll(cx)
            .is_ready()
            .then(|| io::Error::new(io::ErrorKind::TimedOut, "no RPC after the TLS handshake"))
    }
}

impl Connected for TlsConnection {
    type ConnectInfo = PeerIdentity;
    fn connect_info(&self) -> PeerIdentity {
        self.identity.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(error) = self.ended(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepts TCP connections that `table` admits and completes TLS
/// handshakes concurrently (a slow or failed handshake never blocks the
/// others). The stream ends when the server drops it.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    table: Arc<ConnectionTable>,
) -> ReceiverStream<io::Result<TlsConnection>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let handshake_timeout = table.limits().handshake_timeout;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(admission) = table.admit(remote) else {
                refused_log(&table, remote);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp));
                let closed = admission.closed().clone();
                tokio::select! {
                    () = closed.cancelled() => {
                        tracing::debug!(%remote, "handshaking connection closed to admit another");
                    }
                    outcome = handshake => match outcome {
                        Ok(Ok(stream)) => {
                            let _ = tx.send(Ok(TlsConnection::new(stream, remote, admission))).await;
                        }
                        Ok(Err(e)) => tracing::info!(%remote, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    },
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Logs a refused connection, at most once per 1,024 refusals.
fn refused_log(table: &ConnectionTable, remote: SocketAddr) {
    let counts = table.counts();
    if counts.refused % 1024 == 1 {
        tracing::warn!(%remote, open = counts.open, refused = counts.refused, "connection refused: every place is taken by authenticated or busy connections");
    }
}

/// Records the start of every RPC on the connection it arrives on, so that
/// the connection is kept past its first-RPC deadline and counts as busy.
pub fn record_rpc<B>(
    request: tonic::codegen::http::Request<B>,
) -> tonic::codegen::http::Request<B> {
    if let Some(activity) = request
        .extensions()
        .get::<PeerIdentity>()
        .and_then(|p| p.activity.as_ref())
    {
        activity.record_rpc();
    }
    request
}

/// Binds a Unix socket that only its owner (root for the daemons) can use:
/// the parent directory is created 0700 if missing, a stale socket is
/// replaced, and the socket is made 0600.
pub fn bind_private_socket(path: &Path) -> io::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        if !parent.exists() {
            std::fs::create_dir_all(parent)?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another process is listening on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Checks that a Unix-socket peer is root or the daemon's own user; the
/// socket mode already says so, this is defence in depth.
pub fn check_local_peer(
    info: Option<&tonic::transport::server::UdsConnectInfo>,
) -> Result<(), tonic::Status> {
    let own = nix::unistd::geteuid().as_raw();
    match info.and_then(|i| i.peer_cred) {
        Some(cred) if cred.uid() == 0 || cred.uid() == own => Ok(()),
        Some(cred) => Err(tonic::Status::permission_denied(format!(
            "uid {} may not use this socket; run as root",
            cred.uid()
        ))),
        None => Err(tonic::Status::permission_denied(
            "cannot identify the peer of this socket",
        )),
    }
}

/// A path with a `.sock` socket below a runtime directory, for defaults.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_masters_are_tried_round_the_list_and_a_bad_one_is_named() {
        let masters = MasterAddresses::parse("https://10.0.1.5:8140, 10.0.2.5").unwrap();
        assert_eq!(
            masters.to_string(),
            "https://10.0.1.5:8140,https://10.0.2.5:8140"
        );
        let order: Vec<String> = masters.from(1).map(ToString::to_string).collect();
        assert_eq!(order, ["https://10.0.2.5:8140", "https://10.0.1.5:8140"]);
        let err = MasterAddresses::parse("https://a:8140,,ftp://b").unwrap_err();
        assert!(err.to_string().contains("\"\""), "{err}");
    }

    #[test]
    fn parses_master_addresses() {
        let cases = [
            ("https://master:9000", "master", 9000),
            ("master", "master", 8140),
            ("127.0.0.1:8141", "127.0.0.1", 8141),
            ("https://[::1]:8140", "::1", 8140),
        ];
        for (text, host, port) in cases {
            let parsed = MasterAddress::parse(text).unwrap();
            assert_eq!((parsed.host.as_str(), parsed.port), (host, port), "{text}");
        }
        assert!(MasterAddress::parse("http://master").is_err());
        assert!(MasterAddress::parse("https://").is_err());
    }
}
