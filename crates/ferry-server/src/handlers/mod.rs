//! Command handlers, grouped by area. [`dispatch`] is the one `match` from command to handler.

mod auth;
mod dirs;
mod files;
mod misc;
mod transfer;

use std::sync::Arc;

use ferry_proto::{Command, Reply, VirtualPath};

use crate::auth::Permission;
use crate::replies;
use crate::session::{Flow, Session};
use crate::storage::Storage;

/// Runs one command that passed the policy check.
pub(crate) async fn dispatch(s: &mut Session, cmd: Command) -> Flow {
    use Command as C;
    // REST applies to the next transfer command only.
    let keeps_rest = matches!(
        cmd,
        C::Rest(_)
            | C::Retr(_)
            | C::Stor(_)
            | C::Appe(_)
            | C::Type(_)
            | C::Pasv
            | C::Epsv(_)
            | C::Port(_)
            | C::Eprt(_)
            | C::Noop
            | C::Stat(None)
    );
    if !keeps_rest {
        s.rest = None;
    }
    if !matches!(cmd, C::Rnto(_)) && !matches!(cmd, C::Rnfr(_)) {
        s.rnfr = None;
    }
    let reply = match cmd {
        C::User(name) => auth::user(s, name),
        C::Pass(pw) => return auth::pass(s, pw.0).await,
        C::Acct(_) => auth::acct(s),
        C::Rein => auth::rein(s),
        C::Quit => return auth::quit(s),
        C::Host(_) => auth::host(s),
        C::Auth(m) => return auth::auth(s, &m),
        C::Pbsz(_) => auth::pbsz(s),
        C::Prot(level) => auth::prot(s, level),
        C::Ccc => auth::ccc(s),
        C::Cwd(p) => dirs::cwd(s, &p).await,
        C::Cdup => dirs::cdup(s).await,
        C::Pwd => dirs::pwd(s),
        C::Mkd(p) => dirs::mkd(s, &p).await,
        C::Rmd(p) => dirs::rmd(s, &p).await,
        C::List(a) => dirs::list(s, a.as_deref(), dirs::ListKind::List).await,
        C::Nlst(a) => dirs::list(s, a.as_deref(), dirs::ListKind::Nlst).await,
        C::Mlsd(a) => dirs::list(s, a.as_deref(), dirs::ListKind::Mlsd).await,
        C::Mlst(a) => dirs::mlst(s, a.as_deref()).await,
        C::Smnt(_) => dirs::smnt(),
        C::Dele(p) => files::dele(s, &p).await,
        C::Rnfr(p) => files::rnfr(s, &p).await,
        C::Rnto(p) => files::rnto(s, &p).await,
        C::Size(p) => files::size(s, &p).await,
        C::Mdtm(p) => files::mdtm(s, &p).await,
        C::Mfmt(t, p) => files::mfmt(s, t, &p).await,
        C::Site(sc) => files::site(s, sc).await,
        C::Port(a) => transfer::port(s, a),
        C::Eprt(a) => transfer::eprt(s, a),
        C::Pasv => transfer::pasv(s).await,
        C::Epsv(a) => transfer::epsv(s, a).await,
        C::Type(t) => transfer::type_(s, t),
        C::Stru(st) => transfer::stru(st),
        C::Mode(m) => transfer::mode(m),
        C::Rest(n) => transfer::rest(s, n),
        C::Allo(_) => transfer::allo(),
        C::Retr(p) => transfer::retr(s, &p).await,
        C::Stor(p) => transfer::store(s, Some(&p), transfer::StoreKind::Stor).await,
        C::Appe(p) => transfer::store(s, Some(&p), transfer::StoreKind::Appe).await,
        C::Stou(p) => transfer::store(s, p.as_deref(), transfer::StoreKind::Stou).await,
        C::Abor => transfer::abor(s),
        C::Syst => misc::syst(),
        C::Feat => misc::feat(s),
        C::Opts(o) => misc::opts(s, o),
        C::Help(c) => misc::help(c.as_deref()),
        C::Noop => misc::noop(),
        C::Stat(None) => misc::stat(s),
        C::Stat(Some(p)) => dirs::stat_path(s, &p).await,
    };
    if let Some(reply) = reply {
        s.reply(reply);
    }
    Flow::Continue
}

/// A handler's result: a reply now, or `None` when a transfer started (its replies come later).
pub(crate) type Answer = Option<Reply>;

impl Session {
    /// The logged-in user's storage.
    pub(crate) fn store(&self) -> Result<Arc<dyn Storage>, Reply> {
        self.storage.clone().ok_or_else(replies::not_logged_in)
    }

    /// Resolves a client path against the working directory.
    pub(crate) fn resolve(&self, arg: &str) -> Result<VirtualPath, Reply> {
        self.cwd.join(arg).map_err(|_| replies::bad_path())
    }

    /// Checks a permission.
    pub(crate) fn require(&self, p: Permission) -> Result<(), Reply> {
        match &self.user {
            Some(u) if u.permissions.has(p) => Ok(()),
            _ => Err(replies::permission_denied()),
        }
    }
}

/// Unwraps a `Result<T, Reply>` inside a handler returning [`Answer`].
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(reply) => return Some(reply),
        }
    };
}
pub(crate) use tri;
