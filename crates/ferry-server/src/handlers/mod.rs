//! Command handlers, grouped by area. [`dispatch`] is the one `match` from command to handler; it
//! runs after [`crate::session::policy::check`], so a handler of a command that needs a login is
//! handed the [`Account`] itself.

mod auth;
mod dirs;
mod files;
mod misc;
mod transfer;

use ferry_proto::{Command, Reply};

use crate::replies;
use crate::session::state::{Account, Auth, Running};
use crate::session::Session;

/// What a command does besides replying at once.
pub(crate) enum Act {
    /// Reply and go on.
    Reply(Reply),
    /// A transfer started; the session replies as it runs (150, then 226 or why not).
    Transfer(Box<Running>),
    /// Nothing now: the reply comes when the running transfer ends (`ABOR`, `QUIT` during one).
    Later,
    /// Reply and close the control connection.
    Close(Vec<Reply>),
    /// Reply (234), then run the TLS handshake on the control connection; data connections are
    /// protected from the start when `private_data` (`AUTH SSL`).
    StartTls {
        /// The 234.
        reply: Reply,
        /// `PROT P` from the start.
        private_data: bool,
    },
}

impl From<Reply> for Act {
    fn from(r: Reply) -> Self {
        Self::Reply(r)
    }
}

impl From<Running> for Act {
    fn from(r: Running) -> Self {
        Self::Transfer(Box::new(r))
    }
}

/// A handler's result: what to do, or the reply that says why not.
pub(crate) type Handled = Result<Act, Reply>;

/// A reply either way (`Err` for the early returns of `?`).
pub(crate) type Answer = Result<Reply, Reply>;

/// The account of a command that needs a login: the policy checked that there is one.
fn account(auth: &mut Auth) -> Result<&mut Account, Reply> {
    auth.account_mut().ok_or_else(replies::not_logged_in)
}

/// Runs one command that passed the policy check.
pub(crate) async fn dispatch(s: &mut Session, cmd: Command) -> Handled {
    use Command as C;
    let (auth, mut cx) = s.split();
    let cx = &mut cx;
    Ok(match cmd {
        C::User(name) => auth::user(auth, cx, name)?.into(),
        C::Pass(pw) => auth::pass(auth, cx, pw.0).await,
        C::Acct(_) => auth::acct(auth).into(),
        C::Rein => auth::rein(auth, cx).into(),
        C::Quit => auth::quit(cx),
        C::Host(_) => auth::host().into(),
        C::Auth(m) => auth::auth(cx, &m),
        C::Pbsz(_) => auth::pbsz().into(),
        C::Prot(level) => auth::prot(auth, cx, level).into(),
        C::Ccc => auth::ccc().into(),
        C::Syst => misc::syst().into(),
        C::Feat => misc::feat(cx).into(),
        C::Opts(o) => misc::opts(cx, o).into(),
        C::Help(c) => misc::help(c.as_deref()).into(),
        C::Noop => misc::noop().into(),
        C::Stat(None) => misc::stat(auth, cx).into(),
        C::Stat(Some(p)) => dirs::stat_path(account(auth)?, &p).await?.into(),
        C::Cwd(p) => dirs::cwd(account(auth)?, &p).await?.into(),
        C::Cdup => dirs::cdup(account(auth)?).into(),
        C::Pwd => dirs::pwd(account(auth)?).into(),
        C::Mkd(p) => dirs::mkd(account(auth)?, &p).await?.into(),
        C::Rmd(p) => dirs::rmd(account(auth)?, &p).await?.into(),
        C::Smnt(_) => dirs::smnt().into(),
        C::List(a) => dirs::list(account(auth)?, cx, a.as_deref(), dirs::ListKind::List).await?.into(),
        C::Nlst(a) => dirs::list(account(auth)?, cx, a.as_deref(), dirs::ListKind::Nlst).await?.into(),
        C::Mlsd(a) => dirs::list(account(auth)?, cx, a.as_deref(), dirs::ListKind::Mlsd).await?.into(),
        C::Mlst(a) => dirs::mlst(account(auth)?, cx, a.as_deref()).await?.into(),
        C::Dele(p) => files::dele(account(auth)?, &p).await?.into(),
        C::Rnfr(p) => files::rnfr(account(auth)?, &p).await?.into(),
        C::Rnto(p) => files::rnto(account(auth)?, &p).await?.into(),
        C::Size(p) => files::size(account(auth)?, &p).await?.into(),
        C::Mdtm(p) => files::mdtm(account(auth)?, &p).await?.into(),
        C::Mfmt(t, p) => files::mfmt(account(auth)?, t, &p).await?.into(),
        C::Site(sc) => files::site(account(auth)?, sc).await?.into(),
        C::Port(a) => transfer::port(account(auth)?, cx, a).into(),
        C::Eprt(a) => transfer::eprt(account(auth)?, cx, a).into(),
        C::Pasv => transfer::pasv(cx).await?.into(),
        C::Epsv(a) => transfer::epsv(cx, a).await?.into(),
        C::Type(t) => transfer::type_(cx, t).into(),
        C::Stru(st) => transfer::stru(st).into(),
        C::Mode(m) => transfer::mode(m).into(),
        C::Rest(n) => transfer::rest(account(auth)?, n).into(),
        C::Allo(_) => transfer::allo().into(),
        C::Retr(p) => transfer::retr(account(auth)?, cx, &p).await?.into(),
        C::Stor(p) => transfer::store(account(auth)?, cx, transfer::StoreKind::Stor(&p)).await?.into(),
        C::Appe(p) => transfer::store(account(auth)?, cx, transfer::StoreKind::Appe(&p)).await?.into(),
        C::Stou(p) => transfer::store(account(auth)?, cx, transfer::StoreKind::Stou(p.as_deref())).await?.into(),
        C::Abor => transfer::abor(cx),
    })
}
