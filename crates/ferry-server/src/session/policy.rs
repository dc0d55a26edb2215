//! Which commands a session may run when: a pure, exhaustive match, so adding a command forces a
//! decision here.

use ferry_proto::Command;

/// When a command may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Before and after login.
    Always,
    /// Only after login (530 before).
    LoggedIn,
}

/// What to do with a command that arrives while a transfer is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuringTransfer {
    /// Served at once (RFC 959 section 4.1.3: ABOR, STAT, QUIT; and NOOP).
    Immediate,
    /// Served after the transfer ends.
    Queue,
}

/// The access rule for a command.
pub fn access(cmd: &Command) -> Access {
    use Command as C;
    match cmd {
        C::User(_)
        | C::Pass(_)
        | C::Acct(_)
        | C::Quit
        | C::Rein
        | C::Feat
        | C::Syst
        | C::Help(_)
        | C::Noop
        | C::Opts(_)
        | C::Host(_)
        | C::Auth(_)
        | C::Pbsz(_)
        | C::Prot(_)
        | C::Ccc => Access::Always,
        C::Cwd(_)
        | C::Cdup
        | C::Smnt(_)
        | C::Port(_)
        | C::Pasv
        | C::Type(_)
        | C::Stru(_)
        | C::Mode(_)
        | C::Retr(_)
        | C::Stor(_)
        | C::Stou(_)
        | C::Appe(_)
        | C::Allo(_)
        | C::Rest(_)
        | C::Rnfr(_)
        | C::Rnto(_)
        | C::Abor
        | C::Dele(_)
        | C::Rmd(_)
        | C::Mkd(_)
        | C::Pwd
        | C::List(_)
        | C::Nlst(_)
        | C::Site(_)
        | C::Stat(_)
        | C::Eprt(_)
        | C::Epsv(_)
        | C::Size(_)
        | C::Mdtm(_)
        | C::Mlst(_)
        | C::Mlsd(_)
        | C::Mfmt(..) => Access::LoggedIn,
    }
}

/// The rule for a command arriving during a transfer.
pub fn during_transfer(cmd: &Command) -> DuringTransfer {
    match cmd {
        Command::Abor | Command::Stat(None) | Command::Noop | Command::Quit => DuringTransfer::Immediate,
        _ => DuringTransfer::Queue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_gate() {
        for line in ["USER a", "PASS b", "QUIT", "FEAT", "SYST", "HELP", "NOOP", "OPTS UTF8 ON", "AUTH TLS"] {
            assert_eq!(access(&Command::parse(line.as_bytes()).unwrap()), Access::Always, "{line}");
        }
        for line in ["RETR a", "LIST", "PASV", "EPSV", "PORT 1,2,3,4,5,6", "CWD /", "PWD", "STAT", "SITE HELP", "MLSD"]
        {
            assert_eq!(access(&Command::parse(line.as_bytes()).unwrap()), Access::LoggedIn, "{line}");
        }
    }

    #[test]
    fn only_control_commands_interrupt_a_transfer() {
        assert_eq!(during_transfer(&Command::Abor), DuringTransfer::Immediate);
        assert_eq!(during_transfer(&Command::Stat(None)), DuringTransfer::Immediate);
        assert_eq!(during_transfer(&Command::Stat(Some("x".into()))), DuringTransfer::Queue);
        assert_eq!(during_transfer(&Command::Retr("x".into())), DuringTransfer::Queue);
    }
}
