//! The accept loop: listeners, connection limits checked before the greeting, graceful shutdown.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::auth::{Authenticator, User};
use crate::config::Config;
use crate::config::StorageKind;
use crate::proxy::{HeaderError, ProxyTrust};
use crate::replies::{self, Refusal};
use crate::storage::local::LocalStorage;
use crate::storage::s3::S3Storage;
use crate::storage::Storage;

/// State shared by all sessions.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration in force (a reload replaces it; sessions keep a snapshot).
    config: Current,
    /// Who may log in: the default host's users and the virtual hosts'.
    pub accounts: Accounts,
    /// TLS, when a certificate is configured.
    pub tls: Option<crate::tls::Tls>,
    /// Cancelled when the server stops: idle sessions close, transfers finish first.
    pub shutdown: CancellationToken,
    /// Bans, account sessions, quota usage.
    pub limit_state: Arc<crate::limits::LimitState>,
    /// The trusted load balancers, when PROXY protocol is on.
    pub proxy: Option<Arc<ProxyTrust>>,
    /// The reserve descriptor for refusing connections when descriptors run out.
    pub(crate) fds: crate::fds::Descriptors,
    /// Where events go: the log, the transfer log, the vsftpd-format log.
    pub events: crate::events::Events,
    /// What `POST /api/v1/reload` runs (set by the program that owns the files).
    pub(crate) reloader: ReloadSlot,
    /// Open root directories, shared by the sessions rooted there.
    roots: Mutex<HashMap<std::path::PathBuf, std::sync::Weak<dyn Storage>>>,
    /// Connections open now, in all and per address, and the next session id.
    conns: Connections,
}

/// The accounts of the default host and of each virtual host (`[[host]]`).
#[derive(Debug)]
pub(crate) struct Accounts {
    /// The default host's users (no `HOST`, or a server without virtual hosts).
    pub default: Arc<dyn Authenticator>,
    /// The virtual hosts.
    pub hosts: crate::hosts::Hosts,
    /// Why the accounts store cannot be reached, when it cannot (probed every second, for
    /// `/readyz`).
    pub unreachable: Mutex<Option<String>>,
}

impl Accounts {
    /// Probes the default accounts store every second and records whether it answers.
    fn watch(shared: &Arc<Shared>) {
        let weak = Arc::downgrade(shared);
        tokio::spawn(async move {
            loop {
                let Some(shared) = weak.upgrade() else { return };
                let auth = shared.accounts.default.clone();
                let now = auth.health().await.err();
                {
                    let mut seen = shared.accounts.unreachable.lock().unwrap_or_else(|p| p.into_inner());
                    match (&*seen, &now) {
                        (None, Some(e)) => {
                            tracing::error!(error = %e, "the accounts store is unreachable: logins get 421")
                        }
                        (Some(_), None) => tracing::info!("the accounts store answers again"),
                        _ => {}
                    }
                    *seen = now;
                }
                drop(shared);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// The users of `host` (the default host's when `None`).
    pub fn of(&self, host: Option<&crate::hosts::VirtualHost>) -> Arc<dyn Authenticator> {
        host.map_or_else(|| self.default.clone(), |h| h.auth.clone())
    }
}

/// The server's connection counts (the limits of [`Admission`]) and session ids.
#[derive(Debug)]
struct Connections {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, PerIp>>,
    next_id: AtomicU64,
}

/// The sessions of one client address.
#[derive(Debug, Default, Clone, Copy)]
struct PerIp {
    /// All of them.
    sessions: usize,
    /// Those not logged in (yet, or again after REIN).
    startups: u32,
}

/// The configuration in force: replaced whole by a reload. A session takes a snapshot when it
/// connects and again when it logs in, and keeps it (running sessions keep their settings).
#[derive(Debug)]
struct Current(std::sync::RwLock<Arc<Config>>);

impl Shared {
    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The storage a user sees.
    ///
    /// Sessions rooted in the same directory share one handle on it (one file descriptor, not one
    /// per session), so many idle sessions fit in the descriptor limit.
    pub fn storage_for(&self, user: &User) -> io::Result<Arc<dyn Storage>> {
        let mut roots = self.roots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = roots.get(&user.root).and_then(std::sync::Weak::upgrade) {
            return Ok(s);
        }
        let config = self.config();
        let storage: Arc<dyn Storage> = match config.storage.kind {
            StorageKind::Local => {
                Arc::new(LocalStorage::open(&user.root)?.with_upload_digests(config.storage.upload_digests))
            }
            StorageKind::S3 => {
                Arc::new(S3Storage::open(&config.storage, &crate::storage::s3::user_prefix(&config.root, &user.root))?)
            }
        };
        if roots.len() > 1024 {
            roots.retain(|_, w| w.strong_count() > 0);
        }
        roots.insert(user.root.clone(), Arc::downgrade(&storage));
        Ok(storage)
    }

    /// Counts a new connection from `ip`; the reason when a limit is reached.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let mut admission = self.admit_unattributed()?;
        admission.attribute(ip)?;
        Ok(admission)
    }

    /// Counts a new connection in the total only: its client is not known yet (a PROXY header is
    /// still to come). [`Admission::attribute`] counts it for the client's address.
    fn admit_unattributed(self: &Arc<Self>) -> Result<Admission, Refusal> {
        let _per_ip = self.conns.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.conns.total.load(Ordering::Relaxed) >= self.config().limits.max_sessions {
            return Err(Refusal::TooManyUsers);
        }
        self.conns.total.fetch_add(1, Ordering::Relaxed);
        Ok(Admission { shared: self.clone(), ip: None, logged_in: false })
    }

    /// Sessions now.
    pub fn sessions(&self) -> usize {
        self.conns.total.load(Ordering::Relaxed)
    }
}

/// A counted connection; uncounted when dropped. It is held by its session, which reports its
/// logins so that the limit on connections that have not logged in counts the right ones.
#[derive(Debug)]
pub(crate) struct Admission {
    shared: Arc<Shared>,
    /// The client address it counts for; `None` while a PROXY header is awaited.
    ip: Option<IpAddr>,
    /// Whether the session is logged in (then it no longer counts as a startup).
    logged_in: bool,
}

impl Admission {
    /// Counts the connection for the client's address: refused while the address is banned, has
    /// its most sessions, or too many of its connections have not logged in yet.
    fn attribute(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        if self.shared.limit_state.is_banned(ip) {
            return Err(Refusal::Banned);
        }
        let config = self.shared.config();
        let limits = &config.limits;
        let mut per_ip = self.shared.conns.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = per_ip.entry(ip).or_default();
        if limits.max_sessions_per_ip > 0 && n.sessions >= limits.max_sessions_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        if !limits.max_startups_per_ip.admits(n.startups, rand::random_range(0..100)) {
            return Err(Refusal::TooManyStartups);
        }
        n.sessions += 1;
        n.startups += 1;
        self.ip = Some(ip);
        Ok(())
    }

    /// The session logged in: it stops counting as a connection that has not.
    pub(crate) fn logged_in(&mut self) {
        self.set_logged_in(true);
    }

    /// The session went back to the just-connected state (REIN, USER while logged in).
    pub(crate) fn logged_out(&mut self) {
        self.set_logged_in(false);
    }

    fn set_logged_in(&mut self, now: bool) {
        if self.logged_in == now {
            return;
        }
        self.logged_in = now;
        let Some(ip) = self.ip else { return };
        let mut per_ip = self.shared.conns.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&ip) {
            n.startups = if now { n.startups.saturating_sub(1) } else { n.startups + 1 };
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_ip = self.shared.conns.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ip) = self.ip {
            if let Some(n) = per_ip.get_mut(&ip) {
                n.sessions = n.sessions.saturating_sub(1);
                if !self.logged_in {
                    n.startups = n.startups.saturating_sub(1);
                }
                if n.sessions == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        self.shared.conns.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where the reloader is kept.
pub(crate) struct ReloadSlot(pub(crate) Mutex<Option<crate::reload::Reloader>>);

impl std::fmt::Debug for ReloadSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReloadSlot")
    }
}

/// A bound FTP server, ready to run.
#[derive(Debug)]
pub struct Server {
    /// Listeners, each with whether it is implicit FTPS.
    listeners: Vec<(TcpListener, bool)>,
    shared: Arc<Shared>,
    /// The admin HTTP listener's address, when configured.
    admin_addr: Option<SocketAddr>,
}

/// A handle on a running server, for operations from outside (signals).
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.shared.config()
    }

    /// Applies a reload whose parts were all read and checked: the configuration ([`crate::reload::stage`]),
    /// and the certificate when TLS is on ([`crate::tls::Tls::prepare`]). New connections and new
    /// logins see them; running sessions keep theirs.
    pub fn apply(&self, config: Config, certificate: Option<crate::tls::Prepared>) {
        if let (Some(tls), Some(prepared)) = (&self.shared.tls, certificate) {
            tls.install(prepared);
            self.shared.events.metrics.certificate_expires(tls.not_after());
        }
        *self.shared.config.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// Whether TLS is on (a certificate was loaded at start).
    pub fn has_tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// Sets what a reload request (`POST /api/v1/reload`) runs.
    pub fn set_reloader(&self, reloader: crate::reload::Reloader) {
        *self.shared.reloader.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(reloader);
    }

    /// Records a reload: a `config.reload` event (logs, metrics).
    pub fn record_reload(&self, report: &crate::reload::ReloadReport, by: &str) {
        self.shared.events.emit(&crate::events::Event::Reloaded(report, by));
    }

    /// Reopens the log files under their names (`SIGUSR1`, after logrotate moved them).
    pub fn reopen_logs(&self) -> io::Result<()> {
        self.shared.events.reopen()
    }
}

/// A server whose listeners are bound and whose certificates are loaded, not yet started: what
/// exists between binding port 21 as root and serving, when the process gives up root and
/// confines itself ([`crate::sandbox`]). Needs no async runtime.
#[derive(Debug)]
pub struct Bound {
    config: Config,
    auth: Arc<dyn Authenticator>,
    /// The virtual hosts, with their users.
    hosts: crate::hosts::Hosts,
    tls: Option<crate::tls::Tls>,
    /// Listeners, each with whether it is implicit FTPS.
    listeners: Vec<(std::net::TcpListener, bool)>,
    /// The log files, opened.
    events: crate::events::Events,
    /// The admin listeners, bound.
    admin: crate::admin::Admin,
    /// The bans, read from their state file.
    bans: crate::bans::Bans,
    /// The hook runner's input, when command hooks are configured.
    runner: Option<crate::hooks::RunnerInput>,
    /// Where session counts, quotas and bans are shared with other nodes, when they are.
    cluster: Option<Arc<dyn crate::limits::Cluster>>,
}

impl Bound {
    /// The virtual hosts of `[[host]]`, each with its users (read by the program that owns the
    /// users files).
    pub fn with_hosts(mut self, hosts: Vec<crate::hosts::VirtualHost>) -> Self {
        self.hosts = crate::hosts::Hosts::new(hosts);
        self
    }

    /// Shares session counts, quotas and bans with the other nodes through `cluster` (the
    /// accounts database).
    pub fn with_cluster(mut self, cluster: Arc<dyn crate::limits::Cluster>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Hands over the hook runner's pipes (`ferry hook-runner`), which command hooks need.
    pub fn with_hook_runner(mut self, runner: crate::hooks::RunnerInput) -> Self {
        self.runner = Some(runner);
        self
    }

    /// The bound addresses of the explicit (plain FTP) listeners.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter(|(_, i)| !i).filter_map(|(l, _)| l.local_addr().ok()).collect()
    }

    /// Registers the listeners with the runtime and, with S3 storage, checks that the bucket can
    /// be reached (at start-up, not at the first login).
    pub async fn start(self) -> io::Result<Server> {
        let Bound { config, auth, hosts, tls, listeners, events, admin, bans, runner, cluster } = self;
        if config.storage.kind == StorageKind::S3 {
            S3Storage::open(&config.storage, "")?.check().await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "storage: cannot reach bucket {:?}: {e}",
                        config.storage.bucket.as_deref().unwrap_or_default()
                    ),
                )
            })?;
        }
        let listeners =
            listeners.into_iter().map(|(l, i)| Ok((TcpListener::from_std(l)?, i))).collect::<io::Result<_>>()?;
        let local = config.storage.kind == StorageKind::Local;
        let _ = events.hooks.set(crate::hooks::Hooks::start(&config.hooks, runner, local)?);
        let proxy = ProxyTrust::from_config(&config.proxy_protocol).map(Arc::new);
        let shared = Arc::new(Shared {
            config: Current(std::sync::RwLock::new(Arc::new(config))),
            accounts: Accounts { default: auth, hosts, unreachable: Mutex::new(None) },
            tls,
            shutdown: CancellationToken::new(),
            limit_state: Arc::new(crate::limits::LimitState::new(bans, cluster.clone())),
            proxy,
            fds: crate::fds::Descriptors::new(),
            events,
            reloader: ReloadSlot(Mutex::new(None)),
            roots: Mutex::new(HashMap::new()),
            conns: Connections {
                total: AtomicUsize::new(0),
                per_ip: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            },
        });
        if let Some(t) = &shared.tls {
            shared.events.metrics.certificate_expires(t.not_after());
        }
        if shared.config().accounts.kind != crate::auth::model::AccountsKind::File {
            Accounts::watch(&shared);
        }
        if let Some(cluster) = &cluster {
            cluster.start();
            shared.limit_state.bans.share(cluster.bans());
        }
        let config = shared.config();
        let storage = &config.storage;
        if storage.kind == StorageKind::S3 && storage.abandoned_upload_secs > 0 {
            let after = Duration::from_secs(storage.abandoned_upload_secs);
            let sweeper = crate::storage::s3_sweep::Sweeper::new(storage, after)?;
            sweeper.spawn(crate::storage::s3_sweep::interval(after), shared.shutdown.clone());
        }
        let admin_addr = admin.local_addr();
        admin.spawn(shared.clone())?;
        Ok(Server { listeners, shared, admin_addr })
    }

    /// The admin HTTP listener's address, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr()
    }
}

impl Server {
    /// Validates `config`, loads its certificates and binds every listen address, without a
    /// runtime (see [`Bound`]). An IPv6 wildcard that the system cannot bind is skipped when
    /// another listener was bound (machines without IPv6); any other failure is an error.
    pub fn prepare(config: Config, auth: Arc<dyn Authenticator>) -> io::Result<Bound> {
        Self::prepare_with(config, auth, Vec::new())
    }

    /// [`Server::prepare`] with listeners handed over by the service manager (systemd socket
    /// activation), each with whether it is implicit FTPS. When there are any, `listen` and
    /// `tls.implicit_listen` are not bound: the inherited sockets replace them.
    pub fn prepare_with(
        config: Config,
        auth: Arc<dyn Authenticator>,
        inherited: Vec<(std::net::TcpListener, bool)>,
    ) -> io::Result<Bound> {
        config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = match (&config.tls.cert, &config.tls.key) {
            (Some(c), Some(k)) => Some(
                crate::tls::Tls::load(c, k, &config.hosts)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            _ => None,
        };
        let mut listeners = Vec::new();
        for (l, implicit) in inherited {
            l.set_nonblocking(true)?;
            listeners.push((l, implicit));
        }
        let bind = listeners.is_empty();
        for addr in config.tls.implicit_listen.iter().filter(|_| bind) {
            let l =
                bind_listener(*addr).map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            listeners.push((l, true));
        }
        for addr in config.listen.iter().filter(|_| bind) {
            match bind_listener(*addr) {
                Ok(l) => listeners.push((l, false)),
                Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() && config.listen.len() > 1 => {
                    tracing::warn!(%addr, error = %e, "IPv6 listener not available; continuing without it");
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))),
            }
        }
        let ladder = config.admin.listen.is_some() || config.admin.socket.is_some();
        let events = crate::events::Events::open(&config.log, ladder, config.admin.per_user_metrics)?;
        let admin = crate::admin::Admin::bind(&config.admin)?;
        let bans = crate::bans::Bans::load(&config.bans)?;
        Ok(Bound {
            config,
            auth,
            hosts: crate::hosts::Hosts::default(),
            tls,
            listeners,
            events,
            admin,
            bans,
            runner: None,
            cluster: None,
        })
    }

    /// [`Server::prepare`] and [`Bound::start`] in one step.
    pub async fn bind(config: Config, auth: Arc<dyn Authenticator>) -> io::Result<Self> {
        Self::prepare(config, auth)?.start().await
    }

    /// The bound addresses of the explicit (plain FTP) listeners, with the real port when 0 was
    /// asked for.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter(|(_, i)| !i).filter_map(|(l, _)| l.local_addr().ok()).collect()
    }

    /// The bound addresses of the implicit FTPS listeners.
    pub fn implicit_tls_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter(|(_, i)| *i).filter_map(|(l, _)| l.local_addr().ok()).collect()
    }

    /// The admin HTTP listener's address, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// A handle for reloading TLS while the server runs.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle { shared: self.shared.clone() }
    }

    /// Serves until `stop` is cancelled, then stops accepting, lets running transfers finish
    /// (for at most `limits.shutdown_grace_secs`) and returns.
    pub async fn run(self, stop: CancellationToken) -> io::Result<()> {
        let tracker = TaskTracker::new();
        let mut accepts = tokio::task::JoinSet::new();
        for (listener, implicit) in self.listeners {
            accepts.spawn(accept_loop(listener, implicit, self.shared.clone(), tracker.clone()));
        }
        stop.cancelled().await;
        tracing::info!(sessions = self.shared.sessions(), "shutting down: no new connections");
        accepts.abort_all();
        self.shared.shutdown.cancel();
        tracker.close();
        let grace = Duration::from_secs(self.shared.config().limits.shutdown_grace_secs);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(sessions = self.shared.sessions(), "shutdown grace period over; closing remaining sessions");
        }
        Ok(())
    }
}

fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // One listener per family: "[::]:21" does not also take IPv4.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

async fn accept_loop(listener: TcpListener, implicit: bool, shared: Arc<Shared>, tracker: TaskTracker) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) if crate::fds::exhausted(&e) => {
                shared.fds.refuse_one(&listener, &e).await;
                continue;
            }
            Err(e) => {
                // Anything else (ECONNABORTED, ENOBUFS, ...): back off instead of spinning.
                shared.fds.warn("accept failed", &e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The Telnet "Synch" before ABOR (RFC 959 section 4.1.3) sends a byte as TCP urgent data;
        // inline, it reaches the line splitter in order instead of vanishing from the stream.
        let _ = socket2::SockRef::from(&stream).set_out_of_band_inline(true);
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        if let Some(trust) = shared.proxy.as_ref().filter(|t| t.trusts(peer.ip())) {
            // A load balancer: the client's address (for the limits, too) comes in its header.
            match shared.admit_unattributed() {
                Ok(admission) => {
                    tracker.spawn(proxied(stream, peer, implicit, admission, trust.clone(), shared.clone()));
                }
                Err(why) => {
                    tracing::info!(balancer = %peer, why = why.as_str(), "connection refused by limits");
                    tracker.spawn(refuse(stream, why));
                }
            }
            continue;
        }
        match shared.admit(peer.ip()) {
            Ok(admission) => {
                let id = shared.conns.next_id.fetch_add(1, Ordering::Relaxed);
                let span = tracing::info_span!("session", id, %peer);
                let shared = shared.clone();
                tracker.spawn(crate::session::run(stream, peer, shared, implicit, admission, id).instrument(span));
            }
            Err(why) => {
                tracing::info!(%peer, why = why.as_str(), "connection refused by limits");
                tracker.spawn(refuse(stream, why));
            }
        }
    }
}

/// A connection from a trusted load balancer: its PROXY header comes before anything else and
/// names the client, which the limits, the logs and the session then see instead of the balancer.
/// No header, an invalid one, LOCAL (a health check) or one without a TCP address: closed.
async fn proxied(
    mut stream: TcpStream,
    balancer: SocketAddr,
    implicit: bool,
    mut admission: Admission,
    trust: Arc<ProxyTrust>,
    shared: Arc<Shared>,
) {
    use ferry_proto::proxy::{Addresses, Header};
    let header = tokio::select! {
        h = trust.read_header(&mut stream) => h,
        () = shared.shutdown.cancelled() => return,
    };
    let client = match header {
        Ok(Header { addresses: Addresses::Proxied { source, destination }, version, .. }) => {
            let client = SocketAddr::new(source.ip().to_canonical(), source.port());
            tracing::debug!(%balancer, %client, %destination, ?version, "PROXY header");
            client
        }
        Ok(Header { addresses: Addresses::Local, .. }) => {
            tracing::debug!(%balancer, "PROXY LOCAL (a health check): closed");
            return;
        }
        Ok(Header { addresses: Addresses::Unknown, version, .. }) => {
            tracing::warn!(%balancer, ?version, "PROXY header without a TCP client address: closed");
            return;
        }
        Err(HeaderError::Closed(0)) => {
            tracing::debug!(%balancer, "closed before a PROXY header");
            return;
        }
        Err(e) => {
            tracing::warn!(%balancer, error = %e, "no valid PROXY header from a trusted address: closed");
            return;
        }
    };
    if let Err(why) = admission.attribute(client.ip()) {
        tracing::info!(peer = %client, via = %balancer, why = why.as_str(), "connection refused by limits");
        refuse(stream, why).await;
        return;
    }
    let id = shared.conns.next_id.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(parent: None, "session", id, peer = %client, via = %balancer);
    crate::session::run(stream, client, shared, implicit, admission, id).instrument(span).await;
}

async fn refuse(mut stream: TcpStream, why: Refusal) {
    let bytes = replies::refused(why).encode();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn s3_prefixes_from_roots() {
        let server = Path::new("/srv/ftp");
        assert_eq!(crate::storage::s3::user_prefix(server, Path::new("/srv/ftp")), "");
        assert_eq!(crate::storage::s3::user_prefix(server, Path::new("/srv/ftp/alice")), "alice");
        assert_eq!(crate::storage::s3::user_prefix(server, Path::new("/home/bob/")), "home/bob");
        assert_eq!(crate::storage::s3::user_prefix(server, Path::new("carol/../x")), "carol/x");
    }
}
