//! The parts a session is made of, each typed so that an impossible state cannot be written:
//! a login is [`Auth`] (no account without a login, no login without an account), the control
//! connection's protection is [`TlsState`], a pending `REST` or `RNFR` is one [`Pending`], and a
//! running transfer is [`Running`].

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferry_proto::listing::Facts;
use ferry_proto::{Reply, VirtualPath};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::{Permission, User};
use crate::datachan::DataSetup;
use crate::limits::{AccountSlot, QuotaLedger};
use crate::replies;
use crate::server::Shared;
use crate::storage::Storage;
use crate::tls::SessionTls;
use crate::transfer::TransferEvent;

/// The control connection: who is at either end, since when, and how many logins failed on it.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The session's id (the log's `session{id}`, the admin API's).
    pub id: u64,
    /// The client (from a PROXY header when a trusted balancer relays).
    pub peer: SocketAddr,
    /// This end of the control connection.
    pub local: SocketAddr,
    /// When it was accepted, or last went back to the just-connected state (`REIN`, `USER`
    /// while logged in): the login timeout and `STAT`'s session time count from here.
    pub since: Instant,
    /// Failed logins on this connection since it opened (or since `REIN`).
    pub failed_logins: u32,
    /// This connection's place in the server's connection limits; released on drop.
    pub admission: crate::server::Admission,
    /// The virtual host `HOST` (or the TLS server name) selected (RFC 7151); the default host when
    /// `None`.
    pub host: Option<Arc<crate::hosts::VirtualHost>>,
    /// The server name the client's TLS handshake asked for (SNI), when it named one of the
    /// virtual hosts: a later `HOST` must agree with it.
    pub tls_host: Option<Arc<crate::hosts::VirtualHost>>,
}

/// Where the login stands.
pub(crate) enum Auth {
    /// Nothing yet (or after `REIN`).
    Fresh,
    /// `USER` given, waiting for `PASS`.
    NeedPassword(String),
    /// Logged in.
    LoggedIn(Box<Account>),
}

impl Auth {
    /// Who the session is, for an event: the client's address and the user as far as known (the
    /// `USER` name before the password).
    pub fn who(&self, conn: &Conn) -> crate::events::Who<'_> {
        let (user, anonymous) = match self {
            Self::Fresh => (None, false),
            Self::NeedPassword(name) => (Some(name.as_str()), false),
            Self::LoggedIn(a) => (Some(a.user.name.as_str()), a.user.anonymous),
        };
        let root = self.account().map(|a| a.user.root.as_path());
        crate::events::Who { id: conn.id, ip: conn.peer.ip(), user, anonymous, root }
    }

    /// The account, when logged in.
    pub fn account(&self) -> Option<&Account> {
        match self {
            Self::LoggedIn(a) => Some(a),
            _ => None,
        }
    }

    /// The account, when logged in.
    pub fn account_mut(&mut self) -> Option<&mut Account> {
        match self {
            Self::LoggedIn(a) => Some(a),
            _ => None,
        }
    }
}

/// A logged-in account: the user, their view of the storage, where they are in it, and what they
/// have pending.
pub(crate) struct Account {
    /// Who.
    pub user: User,
    /// Their storage, rooted at their root.
    pub storage: Arc<dyn Storage>,
    /// Their quota ledger, when they have a quota.
    pub usage: Option<Arc<dyn QuotaLedger>>,
    /// The working directory.
    pub cwd: VirtualPath,
    /// A `REST` offset or an `RNFR` name waiting for its command.
    pub pending: Pending,
    /// This session's place in the account's session limit; released on drop.
    _slot: AccountSlot,
}

impl Account {
    /// Who the account is, for an event.
    pub fn who(&self, conn: &Conn) -> crate::events::Who<'_> {
        crate::events::Who {
            id: conn.id,
            ip: conn.peer.ip(),
            user: Some(&self.user.name),
            anonymous: self.user.anonymous,
            root: Some(&self.user.root),
        }
    }

    /// An account just logged in, at its root.
    pub fn new(user: User, storage: Arc<dyn Storage>, usage: Option<Arc<dyn QuotaLedger>>, slot: AccountSlot) -> Self {
        Self { user, storage, usage, cwd: VirtualPath::root(), pending: Pending::Nothing, _slot: slot }
    }

    /// Resolves a client path against the working directory. The names of uploads' temporary
    /// files are nobody's to touch: any command naming one gets 553.
    pub fn resolve(&self, arg: &str) -> Result<VirtualPath, Reply> {
        let path = self.cwd.join(arg).map_err(|_| replies::bad_path())?;
        if path.components().any(|c| c.starts_with(crate::storage::TEMP_PREFIX)) {
            return Err(replies::name_not_allowed(arg));
        }
        Ok(path)
    }

    /// Checks a permission (for the commands whose permission depends on their argument; the
    /// others are checked by the policy).
    pub fn require(&self, p: Permission) -> Result<(), Reply> {
        if self.user.permissions.has(p) {
            Ok(())
        } else {
            Err(replies::permission_denied())
        }
    }

    /// Takes a pending `REST` offset (0 when none).
    pub fn take_rest(&mut self) -> u64 {
        match std::mem::replace(&mut self.pending, Pending::Nothing) {
            Pending::Rest(n) => n,
            other => {
                self.pending = other;
                0
            }
        }
    }
}

/// A `REST` or an `RNFR` waiting for the command it prepares. At most one is ever pending: each
/// command keeps one kind and clears the other ([`ferry_proto::command::spec::Keeps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    /// Nothing.
    Nothing,
    /// `REST n` (n > 0) for the next `RETR`/`STOR`/`APPE`.
    Rest(u64),
    /// `RNFR path` for the next `RNTO`.
    RenameFrom(VirtualPath),
    /// `RANG start end` for the next `HASH`.
    Range(u64, u64),
}

/// TLS on this session.
pub(crate) enum TlsState {
    /// The server offers no TLS (no certificate, or the policy is off).
    Unavailable,
    /// TLS is offered; the control connection is still in the clear.
    Offered,
    /// The control connection is protected; data connections too when `private_data` (`PROT P`).
    Protected {
        /// This session's configurations (its own session cache and ticket key), made when its
        /// control connection's handshake began, so a plain session costs none.
        configs: SessionTls,
        /// `PROT P` (or implicit FTPS, or `AUTH SSL`).
        private_data: bool,
    },
}

impl TlsState {
    /// For a new connection to this server.
    pub fn for_new_session(shared: &Shared, config: &crate::config::Config) -> Self {
        match &shared.tls {
            Some(_) if config.tls.effective_policy() != crate::tls::TlsPolicy::Off => Self::Offered,
            _ => Self::Unavailable,
        }
    }

    /// Whether TLS is offered on this session (whether or not it is in use yet).
    pub fn available(&self) -> bool {
        !matches!(self, Self::Unavailable)
    }

    /// Whether the control connection is protected.
    pub fn control_protected(&self) -> bool {
        matches!(self, Self::Protected { .. })
    }

    /// The configurations for protected data connections (`PROT P` in force).
    pub fn private_data(&self) -> Option<&SessionTls> {
        match self {
            Self::Protected { configs, private_data: true } => Some(configs),
            _ => None,
        }
    }

    /// After a TLS handshake on the control connection with `configs`.
    pub fn protect(&mut self, configs: SessionTls, private_data: bool) {
        *self = Self::Protected { configs, private_data };
    }

    /// After `REIN`: TLS cannot be undone (RFC 4217 section 13), `PROT` goes back to clear.
    pub fn rein(&mut self) {
        if let Self::Protected { private_data, .. } = self {
            *private_data = false;
        }
    }
}

/// `TYPE`: how file bytes are represented on the data connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repr {
    /// `TYPE A`: line endings converted to CRLF.
    Ascii,
    /// `TYPE I`: byte-exact.
    Binary,
}

/// The transfer parameters set before a transfer.
#[derive(Debug)]
pub(crate) struct Xfer {
    /// `TYPE`.
    pub repr: Repr,
    /// `OPTS MLST`: the facts MLSx lines carry.
    pub facts: Facts,
    /// The data connection set up by `PORT`/`EPRT`/`PASV`/`EPSV`, used by the next transfer.
    pub data: Option<DataSetup>,
    /// `EPSV ALL` was sent: only `EPSV` may set up data connections (RFC 2428 section 4).
    pub epsv_all: bool,
    /// `OPTS HASH`: the algorithm of `HASH`.
    pub hash: crate::digest::HashAlg,
}

impl Xfer {
    /// The parameters of a new session (and after `REIN`): `TYPE A`, the default representation
    /// type of RFC 959 sections 3.1.1.1 and 5.1. Clients that want bytes send `TYPE I` first.
    pub fn new() -> Self {
        Self {
            repr: Repr::Ascii,
            facts: Facts::default(),
            data: None,
            epsv_all: false,
            hash: crate::digest::HashAlg::Sha256,
        }
    }
}

/// What a running transfer is: for its replies, `STAT` and its log line.
#[derive(Debug)]
pub(crate) struct TransferInfo {
    /// The command.
    pub verb: &'static str,
    /// The path it works on.
    pub path: String,
    /// What its 150 and 226 say.
    pub opening: replies::Opening,
}

/// A transfer in progress.
pub(crate) struct Running {
    /// The transfer itself ([`crate::transfer::run`]), polled by the session's own task: no
    /// cross-thread wake-ups between the transfer and its 150 and 226 replies. `None` once done.
    /// (In a `Mutex` only to make the session `Sync`; it is reached through `get_mut`, never locked.)
    pub task: Option<Mutex<TransferTask>>,
    /// Its events: the data connection opened, the transfer ended.
    pub events: mpsc::Receiver<TransferEvent>,
    /// Cancelled by `ABOR`, or when the control connection goes.
    pub cancel: CancellationToken,
    /// Bytes moved so far (for `STAT`).
    pub progress: Arc<AtomicU64>,
    /// What it is.
    pub info: TransferInfo,
    /// When it started.
    pub started: Instant,
    /// What the client asked for while it ran.
    pub then: Then,
}

/// What the client asked for during a transfer, done when it ends (RFC 959 section 4.1.3).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Then {
    /// `ABOR`: a 226 follows the transfer's own reply.
    pub abort: bool,
    /// `QUIT`: the connection closes after the transfer's reply.
    pub quit: bool,
}

/// A transfer's future.
pub(crate) type TransferTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What a handler sees of the session besides the login: split from [`Session`] so that a
/// handler can hold the account and these at once.
pub(crate) struct Cx<'a> {
    /// Server-wide state.
    pub shared: &'a Arc<Shared>,
    /// The configuration this session runs with (taken when it connected; again at login).
    pub config: &'a mut Arc<crate::config::Config>,
    /// The control connection.
    pub conn: &'a mut Conn,
    /// TLS on this session.
    pub tls: &'a mut TlsState,
    /// Transfer parameters.
    pub xfer: &'a mut Xfer,
    /// The running transfer.
    pub running: &'a mut Option<Running>,
}

impl Cx<'_> {
    /// Back to the just-connected state (`REIN`; `USER` while logged in keeps `failed_logins`).
    /// The control connection's protection stays: TLS cannot be undone (RFC 4217 section 13).
    pub fn reset(&mut self, auth: &mut Auth) {
        *auth = Auth::Fresh;
        self.conn.since = Instant::now();
        self.conn.admission.logged_out();
        *self.xfer = Xfer::new();
        self.tls.rein();
    }
}
