//! Whether a command may run now: every pre-condition from its row in
//! [`ferry_proto::command::spec`], checked here and nowhere else.

use ferry_proto::command::spec::{Access, DuringTransfer, Keeps, Needs};
use ferry_proto::{Command, Reply};

use super::state::{Auth, Pending, TlsState};
use super::Session;
use crate::config::Config;
use crate::replies;
use crate::tls::TlsPolicy;

/// Checks everything `cmd` needs before its handler runs, in this order: login (530), permission
/// (550), then its one further need: a data connection (425) protected as policy requires (521),
/// no `EPSV ALL` (503), a pending `RNFR` (503) or a protected control connection (503).
pub(crate) fn check(s: &Session, cmd: &Command) -> Result<(), Reply> {
    let spec = cmd.spec();
    let account = s.auth.account();
    if spec.access == Access::LoggedIn && account.is_none() {
        return Err(replies::not_logged_in());
    }
    if let (Some(p), Some(a)) = (spec.permission, account) {
        if !a.user.permissions.has(p) {
            return Err(replies::permission_denied());
        }
    }
    match spec.needs {
        Needs::Nothing => Ok(()),
        Needs::DataConnection if s.xfer.data.is_none() => Err(replies::no_data_setup()),
        Needs::DataConnection if tls_required(&s.config, &s.tls, &s.auth) && s.tls.private_data().is_none() => {
            Err(replies::data_must_be_protected())
        }
        Needs::DataConnection => Ok(()),
        Needs::NoEpsvAll if s.xfer.epsv_all => Err(replies::epsv_all_in_effect()),
        Needs::NoEpsvAll => Ok(()),
        Needs::PendingRename => match account.map(|a| &a.pending) {
            Some(Pending::RenameFrom(_)) => Ok(()),
            _ => Err(replies::rnfr_first()),
        },
        Needs::ControlTls if s.tls.control_protected() => Ok(()),
        Needs::ControlTls => Err(replies::needs_tls(spec.name)),
    }
}

/// Whether `cmd`, arriving while a transfer runs, is served at once (else it waits its turn).
pub(crate) fn immediate(cmd: &Command) -> bool {
    match cmd.spec().during_transfer {
        DuringTransfer::Immediate => true,
        DuringTransfer::ImmediateWithoutArgument => cmd.to_string() == cmd.name(),
        DuringTransfer::Queue => false,
    }
}

/// What stays of a pending `REST`/`RNFR` when `cmd` runs.
pub(crate) fn keep_pending(pending: &mut Pending, cmd: &Command) {
    let keep = matches!(
        (cmd.spec().keeps, &*pending),
        (Keeps::Rest, Pending::Rest(_))
            | (Keeps::Rename, Pending::RenameFrom(_))
            | (Keeps::Range, Pending::Range(..))
            | (_, Pending::Nothing)
    );
    if !keep {
        *pending = Pending::Nothing;
    }
}

/// Whether this session must use TLS, for the control connection and for data: the server's
/// policy says so, or the account does.
pub(crate) fn tls_required(config: &Config, tls: &TlsState, auth: &Auth) -> bool {
    let server = tls.available() && config.tls.effective_policy() == TlsPolicy::Required;
    server || auth.account().is_some_and(|a| a.user.tls_required)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Command {
        Command::parse(line.as_bytes()).unwrap()
    }

    #[test]
    fn only_control_commands_interrupt_a_transfer() {
        assert!(immediate(&Command::Abor));
        assert!(immediate(&Command::Stat(None)));
        assert!(!immediate(&Command::Stat(Some("x".into()))));
        assert!(!immediate(&Command::Retr("x".into())));
        assert!(immediate(&parse("NOOP")));
        assert!(immediate(&parse("QUIT")));
    }

    #[test]
    fn pending_rest_and_rename_survive_only_their_commands() {
        let path = ferry_proto::VirtualPath::root();
        let mut p = Pending::Rest(5);
        keep_pending(&mut p, &parse("TYPE I"));
        keep_pending(&mut p, &parse("EPSV"));
        assert_eq!(p, Pending::Rest(5));
        keep_pending(&mut p, &parse("DELE x"));
        assert_eq!(p, Pending::Nothing);
        let mut p = Pending::RenameFrom(path.clone());
        keep_pending(&mut p, &parse("RNTO y"));
        assert_eq!(p, Pending::RenameFrom(path.clone()));
        keep_pending(&mut p, &parse("NOOP"));
        assert_eq!(p, Pending::Nothing);
        let mut p = Pending::Rest(5);
        keep_pending(&mut p, &parse("RNFR a"));
        assert_eq!(p, Pending::Nothing);
    }

    #[test]
    fn the_login_gate() {
        use ferry_proto::command::spec::Access;
        for line in ["USER a", "PASS b", "QUIT", "FEAT", "SYST", "HELP", "NOOP", "OPTS UTF8 ON", "AUTH TLS"] {
            assert_eq!(parse(line).spec().access, Access::Always, "{line}");
        }
        for line in ["RETR a", "LIST", "PASV", "EPSV", "PORT 1,2,3,4,5,6", "CWD /", "PWD", "STAT", "SITE HELP", "MLSD"]
        {
            assert_eq!(parse(line).spec().access, Access::LoggedIn, "{line}");
        }
    }
}
