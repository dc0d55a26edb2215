//! Commands: the typed form of every line a client sends (RFC 959 section 4.1 and the extensions
//! named on each variant). [`Command::parse`] turns a line into a command with typed arguments;
//! `Display` writes it back in wire form (without CRLF), which is what the client sends.
//!
//! Each command is a [`Command`] variant, a [`Verb`] (the same name without arguments), and in
//! [`spec`] a row (names, `HELP` syntax, `FEAT` line, the rules before running it) and an argument
//! parser ([`Verb::parse_args`]). All of them are exhaustive matches: adding a variant, the compiler
//! points at each place that still lacks it (see CONTRIBUTING.md, "Adding a command").

mod args;
pub mod spec;

use std::fmt;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::SystemTime;

pub use args::{
    redact, FormatControl, HashAlg, ListArgs, OptsCommand, Password, ProtLevel, SegmentOp, SiteCommand, Structure,
    TransferMode, TransferType, MASK,
};
pub use spec::{Spec, VERBS};

use crate::addr::{self, EpsvArg};
use crate::listing;
use crate::reply::ReplyCode;

/// Declares [`Command`] and [`Verb`] from one list, so that the two cannot drift apart, and
/// [`Verb::ALL`] and [`Command::verb`] with them.
macro_rules! commands {
    ($( $(#[$doc:meta])* $name:ident $( ( $($arg:ty),* ) )? , )*) => {
        /// One command with its typed arguments.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Command {
            $( $(#[$doc])* $name $( ( $($arg),* ) )?, )*
        }

        /// A command's name without its arguments: what [`spec`] has a row for.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Verb {
            $( $(#[$doc])* $name, )*
        }

        impl Verb {
            /// Every verb, in declaration order.
            pub const ALL: &'static [Verb] = &[ $( Verb::$name, )* ];
        }

        impl Command {
            /// The command's verb.
            pub fn verb(&self) -> Verb {
                match self {
                    $( Command::$name { .. } => Verb::$name, )*
                }
            }
        }
    };
}

commands! {
    /// `USER name`.
    User(String),
    /// `PASS password`.
    Pass(Password),
    /// `ACCT account`.
    Acct(String),
    /// `CWD path` (also `XCWD`, RFC 775).
    Cwd(String),
    /// `CDUP` (also `XCUP`).
    Cdup,
    /// `SMNT path`.
    Smnt(String),
    /// `REIN`: back to the just-connected state.
    Rein,
    /// `QUIT`.
    Quit,
    /// `PORT h1,h2,h3,h4,p1,p2`.
    Port(SocketAddrV4),
    /// `PASV`.
    Pasv,
    /// `TYPE`.
    Type(TransferType),
    /// `STRU`.
    Stru(Structure),
    /// `MODE`.
    Mode(TransferMode),
    /// `RETR path`.
    Retr(String),
    /// `STOR path`.
    Stor(String),
    /// `STOU [path]`: store under a unique name.
    Stou(Option<String>),
    /// `APPE path`.
    Appe(String),
    /// `ALLO size [R record-size]`.
    Allo(u64),
    /// `REST offset` (RFC 3659 section 5: stream-mode restart marker is a byte offset).
    Rest(u64),
    /// `RNFR path`.
    Rnfr(String),
    /// `RNTO path`.
    Rnto(String),
    /// `ABOR`.
    Abor,
    /// `DELE path`.
    Dele(String),
    /// `RMD path` (also `XRMD`).
    Rmd(String),
    /// `MKD path` (also `XMKD`).
    Mkd(String),
    /// `PWD` (also `XPWD`).
    Pwd,
    /// `LIST [options] [path]`.
    List(Option<String>),
    /// `NLST [options] [path]`.
    Nlst(Option<String>),
    /// `SITE ...`.
    Site(SiteCommand),
    /// `SYST`.
    Syst,
    /// `STAT [path]`.
    Stat(Option<String>),
    /// `HELP [command]`.
    Help(Option<String>),
    /// `NOOP`.
    Noop,
    /// `FEAT` (RFC 2389).
    Feat,
    /// `OPTS` (RFC 2389).
    Opts(OptsCommand),
    /// `EPRT |proto|addr|port|` (RFC 2428).
    Eprt(SocketAddr),
    /// `EPSV [1|2|ALL]` (RFC 2428).
    Epsv(EpsvArg),
    /// `SIZE path` (RFC 3659).
    Size(String),
    /// `MDTM path` (RFC 3659).
    Mdtm(String),
    /// `MLST [path]` (RFC 3659).
    Mlst(Option<String>),
    /// `MLSD [path]` (RFC 3659).
    Mlsd(Option<String>),
    /// `MFMT time path` (draft-somers-ftp-mfxx).
    Mfmt(SystemTime, String),
    /// `HOST name` (RFC 7151).
    Host(String),
    /// `AUTH mechanism` (RFC 2228, RFC 4217).
    Auth(String),
    /// `PBSZ size` (RFC 2228).
    Pbsz(u64),
    /// `PROT level` (RFC 2228).
    Prot(ProtLevel),
    /// `CCC` (RFC 2228): clear the control channel.
    Ccc,
    /// `HASH path` (draft-bryan-ftpext-hash-02): the file's digest.
    Hash(String),
    /// `RANG start end` (draft-bryan-ftpext-hash-02 section 4, draft-bryan-ftp-range): the next
    /// `HASH` covers bytes `start` to `end` (exclusive).
    Rang(u64, u64),
    /// `XSHA1 path`: the file's SHA-1 (ProFTPD's mod_digest, Serv-U).
    Xsha1(String),
    /// `XSHA256 path`.
    Xsha256(String),
    /// `XSHA512 path`.
    Xsha512(String),
    /// `XMD5 path`.
    Xmd5(String),
    /// `XCRC path`: the file's CRC-32.
    Xcrc(String),
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An empty line.
    #[error("empty command line")]
    Empty,
    /// The verb is unknown.
    #[error("unknown command {0:?}")]
    Unknown(String),
    /// The verb needs an argument and has none.
    #[error("{0} needs an argument")]
    MissingArgument(&'static str),
    /// The argument is malformed.
    #[error("{verb}: {why}")]
    BadArgument {
        /// The command.
        verb: &'static str,
        /// What is wrong, for the reply text.
        why: &'static str,
    },
    /// `EPRT` named a network protocol other than 1 or 2 (RFC 2428: reply 522).
    #[error("network protocol not supported")]
    UnknownNetProto,
    /// The line is not UTF-8 (RFC 2640).
    #[error("command is not valid UTF-8")]
    NotUtf8,
}

impl ParseError {
    /// The reply code the RFCs give for this error.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Self::Empty | Self::Unknown(_) => ReplyCode::SYNTAX_ERROR,
            Self::UnknownNetProto => ReplyCode::NETWORK_PROTOCOL_NOT_SUPPORTED,
            Self::MissingArgument(_) | Self::BadArgument { .. } | Self::NotUtf8 => ReplyCode::SYNTAX_ERROR_ARGS,
        }
    }
}

impl Command {
    /// The canonical verb name, upper case (`XPWD` parses to `Pwd`, whose name is `PWD`).
    pub fn name(&self) -> &'static str {
        self.verb().spec().name
    }

    /// The command's row: its rules and help (see [`spec`]).
    pub fn spec(&self) -> Spec {
        self.verb().spec()
    }

    /// The wire form as it may be logged: a password is masked ([`redact`]).
    pub fn redacted(&self) -> String {
        match self {
            Self::Pass(_) => format!("PASS {MASK}"),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.name();
        let opt = |f: &mut fmt::Formatter<'_>, a: &Option<String>| match a {
            Some(a) => write!(f, "{v} {a}"),
            None => f.write_str(v),
        };
        match self {
            Self::User(a)
            | Self::Acct(a)
            | Self::Cwd(a)
            | Self::Smnt(a)
            | Self::Retr(a)
            | Self::Stor(a)
            | Self::Appe(a)
            | Self::Rnfr(a)
            | Self::Rnto(a)
            | Self::Dele(a)
            | Self::Rmd(a)
            | Self::Mkd(a)
            | Self::Size(a)
            | Self::Mdtm(a)
            | Self::Host(a)
            | Self::Auth(a)
            | Self::Hash(a)
            | Self::Xsha1(a)
            | Self::Xsha256(a)
            | Self::Xsha512(a)
            | Self::Xmd5(a)
            | Self::Xcrc(a) => write!(f, "{v} {a}"),
            Self::Rang(a, b) => write!(f, "RANG {a} {b}"),
            Self::Pass(p) => write!(f, "PASS {}", p.0),
            Self::Stou(a)
            | Self::List(a)
            | Self::Nlst(a)
            | Self::Stat(a)
            | Self::Help(a)
            | Self::Mlst(a)
            | Self::Mlsd(a) => opt(f, a),
            Self::Cdup
            | Self::Rein
            | Self::Quit
            | Self::Pasv
            | Self::Abor
            | Self::Pwd
            | Self::Syst
            | Self::Noop
            | Self::Feat
            | Self::Ccc => f.write_str(v),
            Self::Port(a) => write!(f, "PORT {}", addr::format_port(*a)),
            Self::Type(t) => write!(f, "TYPE {t}"),
            Self::Stru(s) => write!(f, "STRU {s}"),
            Self::Mode(m) => write!(f, "MODE {m}"),
            Self::Allo(n) | Self::Rest(n) | Self::Pbsz(n) => write!(f, "{v} {n}"),
            Self::Site(s) => write!(f, "SITE {s}"),
            Self::Opts(o) => write!(f, "OPTS {o}"),
            Self::Eprt(a) => write!(f, "EPRT {}", addr::format_eprt(*a)),
            Self::Epsv(EpsvArg::Default) => f.write_str("EPSV"),
            Self::Epsv(a) => write!(f, "EPSV {a}"),
            Self::Mfmt(t, p) => write!(f, "MFMT {} {p}", listing::format_timeval(*t)),
            Self::Prot(l) => write!(f, "PROT {l}"),
        }
    }
}

#[cfg(test)]
mod tests;
