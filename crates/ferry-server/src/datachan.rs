//! Data-connection setup: passive listeners from the port range, active connections out, and
//! the checks that stop data-channel theft and FTP bounce (RFC 2577 section 3 and 4).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::config::{Config, PortRange, SourcePort};
use crate::proxy::ProxyTrust;
use crate::replies::ActiveRefusal;

/// How the next data connection will be made.
#[derive(Debug)]
pub enum DataSetup {
    /// `PASV`/`EPSV`: the client connects to this listener.
    Passive(PassiveListener),
    /// `PASV`/`EPSV` under `PROT P`: the connection is accepted, and its TLS handshake run, as
    /// soon as the client makes it, whether or not the transfer command has come yet.
    PassiveTls(EarlyTls),
    /// `PORT`/`EPRT`: the server connects to this address.
    Active(SocketAddr),
}

impl DataSetup {
    /// The passive port, if this is passive mode.
    pub fn passive_port(&self) -> Option<u16> {
        match self {
            Self::Passive(l) => l.local_addr().ok().map(|a| a.port()),
            Self::PassiveTls(e) => Some(e.port),
            Self::Active(_) => None,
        }
    }
}

/// A protected data connection being accepted ahead of its transfer command.
///
/// Some clients (asyncio's, aioftp) connect and complete the TLS handshake before they send
/// `RETR`/`STOR`/`LIST`; others send the command, wait for the 150 and only then start TLS. One task
/// serves both orders: it accepts the client's connection (the peer checks of [`DataPlan`]), waits
/// for the client's first bytes without a time limit (a client of the second kind sends its
/// `ClientHello` only after the 150), then runs the handshake within its timeout. It is aborted
/// when dropped (a new `PASV`, `ABOR`, the end of the session).
#[derive(Debug)]
pub struct EarlyTls {
    port: u16,
    /// Shared with the handshake task: the transfer's direction, once its command has come.
    direction: Arc<std::sync::OnceLock<bool>>,
    accepted: Option<tokio::sync::oneshot::Receiver<()>>,
    task: tokio::task::JoinHandle<Result<DataTlsStream, crate::transfer::TransferError>>,
}

/// A protected data connection.
pub type DataTlsStream = tokio_rustls::server::TlsStream<TcpStream>;

impl EarlyTls {
    /// Starts accepting on `listener` for the client at `control_peer` (any address with
    /// `allow_any_peer`), with TLS as `tls` says.
    pub fn start(
        listener: PassiveListener,
        control_peer: IpAddr,
        allow_any_peer: bool,
        tls: crate::transfer::DataTls,
    ) -> io::Result<Self> {
        let port = listener.local_addr()?.port();
        let direction = tls.direction.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let stream = accept_client(listener, control_peer, allow_any_peer)
                .await
                .map_err(crate::transfer::TransferError::Connect)?;
            let _ = tx.send(());
            // The client of the usual order sends its ClientHello after the 150: wait for it
            // without the handshake's time limit (the transfer's own timeout bounds the wait).
            stream.readable().await.map_err(crate::transfer::TransferError::Data)?;
            crate::transfer::accept_data_tls(stream, &tls).await
        });
        Ok(Self { port, direction, accepted: Some(rx), task })
    }

    /// Gives the transfer's direction (`true`: a download) to a handshake not begun yet, so that
    /// an upload's sends no TLS 1.3 ticket. Call as the transfer starts, before its 150.
    pub fn set_direction(&self, download: bool) {
        let _ = self.direction.set(download);
    }

    /// Waits until the client has connected.
    pub async fn accepted(&mut self) -> io::Result<()> {
        match self.accepted.take() {
            Some(rx) => rx.await.map_err(|_| io::Error::other("the data connection was not accepted")),
            None => Ok(()),
        }
    }

    /// Waits for the handshake's end: the protected stream, or why not.
    pub async fn finish(mut self) -> Result<DataTlsStream, crate::transfer::TransferError> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(crate::transfer::TransferError::Connect(io::Error::other(e))),
        }
    }
}

impl Drop for EarlyTls {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything needed to open a data connection, owned by the transfer task.
#[derive(Debug)]
pub struct DataPlan {
    /// The setup chosen by the client.
    pub setup: DataSetup,
    /// The control connection's peer: the only address a passive connection is accepted from.
    pub control_peer: IpAddr,
    /// The control connection's local address: active connections come from its IP.
    pub control_local: SocketAddr,
    /// Accept passive connections from any address.
    pub allow_any_peer: bool,
    /// Active source port policy.
    pub source_port: SourcePort,
    /// How long to wait for the connection.
    pub timeout: Duration,
}

/// A passive listener, and the load balancers whose connections to it must start with a PROXY
/// header (set by the session after `PASV`/`EPSV` when PROXY protocol is on).
#[derive(Debug)]
pub struct PassiveListener {
    listener: TcpListener,
    proxy: Option<Arc<ProxyTrust>>,
}

impl PassiveListener {
    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Connections from these balancers must carry a PROXY header, whose source address is then
    /// checked instead of the balancer's.
    pub(crate) fn expect_proxy_from(&mut self, trust: Arc<ProxyTrust>) {
        self.proxy = Some(trust);
    }
}

/// Passive listeners bound now, in the whole process (`ferry_passive_ports_in_use`).
static PASSIVE_IN_USE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Passive listeners bound now (each holds a port of the passive range until its data
/// connection is accepted, or the session moves on).
pub fn passive_ports_in_use() -> i64 {
    PASSIVE_IN_USE.load(std::sync::atomic::Ordering::Relaxed)
}

impl From<TcpListener> for PassiveListener {
    fn from(listener: TcpListener) -> Self {
        PASSIVE_IN_USE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self { listener, proxy: None }
    }
}

impl Drop for PassiveListener {
    fn drop(&mut self) {
        PASSIVE_IN_USE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Binds a passive listener on `ip`, in `range` when given.
pub async fn bind_passive(ip: IpAddr, range: Option<PortRange>) -> io::Result<PassiveListener> {
    let Some(range) = range else {
        return TcpListener::bind(SocketAddr::new(ip, 0)).await.map(PassiveListener::from);
    };
    let span = u32::from(range.high - range.low) + 1;
    let start = rand::random::<u32>() % span;
    // Walk the whole range from a random start; stop at the first free port.
    let attempts = span.min(1000);
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free passive port");
    for i in 0..attempts {
        let port = range.low + ((start + i) % span) as u16;
        let socket = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        // Data connections the server closes leave TIME_WAIT behind on their port; without this
        // a small range would run dry for minutes.
        socket.set_reuseaddr(true)?;
        match socket.bind(SocketAddr::new(ip, port)).and_then(|()| socket.listen(16)) {
            Ok(l) => return Ok(l.into()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether an address given by `PORT`/`EPRT` may be connected to.
/// `account_fxp`: the account may use third-party addresses (FXP).
pub fn active_target_allowed(
    target: SocketAddr,
    control_peer: IpAddr,
    config: &Config,
    account_fxp: bool,
) -> Result<(), ActiveRefusal> {
    let third_party_ok = config.active.allow_third_party_unsafe || account_fxp;
    if target.ip().to_canonical() != control_peer.to_canonical() && !third_party_ok {
        return Err(ActiveRefusal::ThirdParty);
    }
    if target.port() < 1024 && !config.active.allow_low_ports_unsafe {
        return Err(ActiveRefusal::LowPort);
    }
    Ok(())
}

impl DataPlan {
    /// Opens the data connection (accepting or connecting) within the timeout.
    pub async fn open(self) -> io::Result<DataConnection> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.open_inner()).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "data connection timed out")),
        }
    }

    async fn open_inner(self) -> io::Result<DataConnection> {
        let stream = match self.setup {
            DataSetup::Passive(listener) => accept_client(listener, self.control_peer, self.allow_any_peer).await?,
            DataSetup::PassiveTls(mut early) => {
                early.accepted().await?;
                return Ok(DataConnection::Tls(early));
            }
            DataSetup::Active(target) => {
                let local_ip = self.control_local.ip();
                let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                let port = match self.source_port {
                    SourcePort::Ephemeral => 0,
                    SourcePort::ControlMinusOne => self.control_local.port().saturating_sub(1),
                    SourcePort::Fixed(p) => p,
                };
                let bind_ip = if local_ip.to_canonical().is_ipv4() == target.is_ipv4() {
                    local_ip.to_canonical()
                } else if target.is_ipv4() {
                    IpAddr::from([0, 0, 0, 0])
                } else {
                    IpAddr::from([0u16; 8])
                };
                if port != 0 {
                    socket.set_reuseaddr(true)?;
                }
                if let Err(e) = socket.bind(SocketAddr::new(bind_ip, port)) {
                    if port == 0 {
                        return Err(e);
                    }
                    // The fixed source port is not ours to bind (privileges, in use): fall back.
                    tracing::debug!(port, error = %e, "active source port unavailable, using an ephemeral port");
                    let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                    socket.bind(SocketAddr::new(bind_ip, 0))?;
                    socket.connect(target).await?
                } else {
                    socket.connect(target).await?
                }
            }
        };
        stream.set_nodelay(true)?;
        Ok(DataConnection::Tcp(stream))
    }
}

/// An open data connection: plain TCP (TLS, if any, is still to come), or a protected one whose
/// handshake began when the client connected.
#[derive(Debug)]
pub enum DataConnection {
    /// TCP.
    Tcp(TcpStream),
    /// Accepted early; [`EarlyTls::finish`] gives the protected stream.
    Tls(EarlyTls),
}

/// The two ends of a data connection, as far as known (for the live view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataEnds {
    /// This server's port.
    pub local_port: u16,
    /// The client's address and port (not known yet for an early TLS connection).
    pub peer: Option<SocketAddr>,
}

impl DataConnection {
    /// Its ends.
    pub fn ends(&self) -> DataEnds {
        match self {
            DataConnection::Tcp(s) => {
                DataEnds { local_port: s.local_addr().map(|a| a.port()).unwrap_or(0), peer: s.peer_addr().ok() }
            }
            DataConnection::Tls(early) => DataEnds { local_port: early.port, peer: None },
        }
    }
}

/// Accepts the client's data connection on a passive listener: from the control connection's
/// client (its address in a trusted balancer's PROXY header), or from anyone with
/// `allow_any_peer`. Anyone else's connection is closed, and the wait goes on for the client.
async fn accept_client(listener: PassiveListener, control_peer: IpAddr, allow_any_peer: bool) -> io::Result<TcpStream> {
    let proxy = listener.proxy.clone();
    let stream = loop {
        let (mut stream, from) = listener.listener.accept().await?;
        let mut client = from.ip().to_canonical();
        if let Some(trust) = proxy.as_ref().filter(|t| t.trusts(client)) {
            // Relayed by a load balancer: its header names the client. The header is read
            // even with allow_any_peer, or it would be taken as file data.
            use ferry_proto::proxy::{Addresses, Header};
            match trust.read_header(&mut stream).await {
                Ok(Header { addresses: Addresses::Proxied { source, .. }, .. }) => {
                    client = source.ip().to_canonical();
                }
                Ok(h) => {
                    tracing::warn!(%from, addresses = ?h.addresses, "refused passive data connection: PROXY header without a client address");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(%from, error = %e, "refused passive data connection from a trusted balancer");
                    continue;
                }
            }
        }
        if allow_any_peer || client == control_peer.to_canonical() {
            tracing::debug!(%from, "data connection accepted");
            break stream;
        }
        // Someone else raced the client to the port: refuse, keep waiting for the client.
        tracing::warn!(%from, %client, expected = %control_peer, "refused passive data connection from a foreign address");
        drop(stream);
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(c: DataConnection) -> TcpStream {
        match c {
            DataConnection::Tcp(s) => s,
            DataConnection::Tls(_) => panic!("a plain connection was expected"),
        }
    }

    #[tokio::test]
    async fn passive_range_is_respected() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let l = bind_passive(ip, Some(PortRange { low: 40000, high: 40100 })).await.unwrap();
        let port = l.local_addr().unwrap().port();
        assert!((40000..=40100).contains(&port));
    }

    #[tokio::test]
    async fn passive_refuses_foreign_peer_then_accepts_client() {
        let l = bind_passive("127.0.0.1".parse().unwrap(), None).await.unwrap();
        let addr = l.local_addr().unwrap();
        let plan = DataPlan {
            setup: DataSetup::Passive(l),
            control_peer: "127.0.0.1".parse().unwrap(),
            control_local: "127.0.0.1:21".parse().unwrap(),
            allow_any_peer: false,
            source_port: SourcePort::Ephemeral,
            timeout: Duration::from_secs(5),
        };
        let task = tokio::spawn(plan.open());
        // A thief from 127.0.0.2 connects first.
        let thief = TcpSocket::new_v4().unwrap();
        thief.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let thief = thief.connect(addr).await.unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let server_side = tcp(task.await.unwrap().unwrap());
        assert_eq!(server_side.peer_addr().unwrap(), client.local_addr().unwrap());
        drop(thief);
    }

    #[tokio::test]
    async fn passive_through_a_balancer_checks_the_proxy_header() {
        use ferry_proto::proxy::{encode, Addresses, Version};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let config =
            crate::config::ProxyProtocolConfig { trusted: vec!["127.0.0.3".parse().unwrap()], header_timeout_secs: 5 };
        let trust = Arc::new(ProxyTrust::from_config(&config).unwrap());
        let mut l = bind_passive("127.0.0.1".parse().unwrap(), None).await.unwrap();
        l.expect_proxy_from(trust);
        let addr = l.local_addr().unwrap();
        let plan = DataPlan {
            setup: DataSetup::Passive(l),
            control_peer: "127.0.0.5".parse().unwrap(),
            control_local: "127.0.0.1:21".parse().unwrap(),
            allow_any_peer: false,
            source_port: SourcePort::Ephemeral,
            timeout: Duration::from_secs(5),
        };
        let task = tokio::spawn(plan.open());
        let from = |ip: &str| {
            let s = TcpSocket::new_v4().unwrap();
            s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
            s.connect(addr)
        };
        let header = |client: &str| {
            encode(Version::V2, &Addresses::Proxied { source: client.parse().unwrap(), destination: addr })
        };
        // Through the balancer for someone else, then through the balancer without a header:
        // both refused, in turn; then the client's, through the balancer, is accepted.
        let mut thief = from("127.0.0.3").await.unwrap();
        thief.write_all(&header("127.0.0.9:4000")).await.unwrap();
        let mut headerless = from("127.0.0.3").await.unwrap();
        headerless.write_all(b"data without a header").await.unwrap();
        let mut client = from("127.0.0.3").await.unwrap();
        client.write_all(&header("127.0.0.5:4000")).await.unwrap();
        client.write_all(b"file bytes").await.unwrap();
        let mut server_side = tcp(task.await.unwrap().unwrap());
        assert_eq!(server_side.peer_addr().unwrap(), client.local_addr().unwrap());
        let mut got = [0u8; 10];
        server_side.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"file bytes", "the header is not part of the data");
        for mut refused in [thief, headerless] {
            let mut buf = [0u8; 1];
            assert!(matches!(refused.read(&mut buf).await, Ok(0) | Err(_)), "closed");
        }
    }

    #[test]
    fn bounce_is_refused() {
        let c = Config::default();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(active_target_allowed("127.0.0.1:5000".parse().unwrap(), peer, &c, false).is_ok());
        assert!(active_target_allowed("127.0.0.2:5000".parse().unwrap(), peer, &c, false).is_err());
        assert!(active_target_allowed("127.0.0.2:5000".parse().unwrap(), peer, &c, true).is_ok(), "FXP account");
        assert!(active_target_allowed("127.0.0.2:25".parse().unwrap(), peer, &c, true).is_err());
        assert!(active_target_allowed("127.0.0.1:25".parse().unwrap(), peer, &c, false).is_err());
        assert!(active_target_allowed("[::ffff:127.0.0.1]:5000".parse().unwrap(), peer, &c, false).is_ok());
    }
}
