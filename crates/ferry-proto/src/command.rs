//! Commands: the typed form of every line a client sends (RFC 959 section 4.1 and the extensions
//! named on each variant). [`Command::parse`] turns a line into a command with typed arguments;
//! `Display` writes it back in wire form (without CRLF), which is what the client sends.

use std::fmt;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::SystemTime;

use crate::addr::{self, EpsvArg};
use crate::listing;
use crate::reply::ReplyCode;

/// A password: its `Debug` form never shows it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

/// Format control for `TYPE A` and `TYPE E` (RFC 959 section 3.1.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatControl {
    /// `N`: non-print (the default).
    NonPrint,
    /// `T`: Telnet format effectors.
    Telnet,
    /// `C`: ASA carriage control.
    Asa,
}

/// The representation type set by `TYPE` (RFC 959 section 3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// `A [N|T|C]`: ASCII, line endings converted to CRLF on the wire.
    Ascii(FormatControl),
    /// `E [N|T|C]`: EBCDIC.
    Ebcdic(FormatControl),
    /// `I`: image (binary), byte-exact.
    Image,
    /// `L n`: local byte size `n`; `L 8` is the same as `I`.
    Local(u8),
}

/// The file structure set by `STRU` (RFC 959 section 3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// `F`: file (no record structure).
    File,
    /// `R`: record structure.
    Record,
    /// `P`: page structure.
    Page,
}

/// The transfer mode set by `MODE` (RFC 959 section 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// `S`: stream.
    Stream,
    /// `B`: block.
    Block,
    /// `C`: compressed.
    Compressed,
    /// `Z`: deflate (draft-preston-ftpext-deflate).
    Deflate,
}

/// The data-channel protection level set by `PROT` (RFC 2228 section 3, RFC 4217 section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtLevel {
    /// `C`: clear.
    Clear,
    /// `S`: safe (integrity only).
    Safe,
    /// `E`: confidential.
    Confidential,
    /// `P`: private (integrity and confidentiality; TLS).
    Private,
}

/// `SITE` subcommands (RFC 959 section 4.1.3 leaves them to the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteCommand {
    /// `SITE HELP [cmd]`.
    Help(Option<String>),
    /// `SITE CHMOD mode path`: set Unix permission bits (octal).
    Chmod {
        /// The permission bits, at most `0o7777`.
        mode: u32,
        /// The path.
        path: String,
    },
    /// Any other subcommand, kept verbatim so the server can answer it.
    Other(String),
}

/// `OPTS` arguments (RFC 2389 section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptsCommand {
    /// `OPTS UTF8 ON|OFF` (RFC 2640 and common practice).
    Utf8(bool),
    /// `OPTS MLST fact;fact;...` (RFC 3659 section 7.9); facts in lower case.
    Mlst(Vec<String>),
    /// Anything else, verbatim.
    Other(String),
}

/// One command with its typed arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
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

/// The verbs [`Command::parse`] knows, for `HELP`.
pub const VERBS: &[&str] = &[
    "ABOR", "ACCT", "ALLO", "APPE", "AUTH", "CCC", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT", "HELP", "HOST",
    "LIST", "MDTM", "MFMT", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP", "OPTS", "PASS", "PASV", "PBSZ", "PORT",
    "PROT", "PWD", "QUIT", "REIN", "REST", "RETR", "RMD", "RNFR", "RNTO", "SITE", "SIZE", "SMNT", "STAT", "STOR",
    "STOU", "STRU", "SYST", "TYPE", "USER", "XCUP", "XCWD", "XMKD", "XPWD", "XRMD",
];

fn bad(verb: &'static str, why: &'static str) -> ParseError {
    ParseError::BadArgument { verb, why }
}

impl Command {
    /// Parses one line (without CRLF). The verb is case-insensitive; the argument is everything
    /// after the first space, kept verbatim (file names may contain spaces).
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
        if line.contains('\0') {
            // No FTP argument can hold a NUL (RFC 959 section 4.1.3; RFC 2640 section 3.1).
            return Err(ParseError::BadArgument { verb: "command", why: "NUL byte in the command line" });
        }
        let line = line.trim_start_matches(' ');
        if line.is_empty() {
            return Err(ParseError::Empty);
        }
        let (verb, arg) = match line.find(' ') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        if verb.len() > 4 || !verb.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ParseError::Unknown(printable(verb)));
        }
        let verb_uc = verb.to_ascii_uppercase();
        // An argument of only spaces counts as none.
        let arg = arg.filter(|a| !a.trim().is_empty());
        let need = |name: &'static str| -> Result<String, ParseError> {
            arg.map(str::to_string).ok_or(ParseError::MissingArgument(name))
        };
        let opt = || arg.map(str::to_string);
        Ok(match verb_uc.as_str() {
            "USER" => Self::User(need("USER")?),
            "PASS" => Self::Pass(Password(arg.unwrap_or("").to_string())),
            "ACCT" => Self::Acct(need("ACCT")?),
            "CWD" | "XCWD" => Self::Cwd(need("CWD")?),
            "CDUP" | "XCUP" => Self::Cdup,
            "SMNT" => Self::Smnt(need("SMNT")?),
            "REIN" => Self::Rein,
            "QUIT" => Self::Quit,
            "PORT" => {
                Self::Port(addr::parse_port(&need("PORT")?).map_err(|_| bad("PORT", "expected h1,h2,h3,h4,p1,p2"))?)
            }
            "PASV" => Self::Pasv,
            "TYPE" => Self::Type(parse_type(&need("TYPE")?)?),
            "STRU" => Self::Stru(match need("STRU")?.trim().to_ascii_uppercase().as_str() {
                "F" => Structure::File,
                "R" => Structure::Record,
                "P" => Structure::Page,
                _ => return Err(bad("STRU", "expected F, R or P")),
            }),
            "MODE" => Self::Mode(match need("MODE")?.trim().to_ascii_uppercase().as_str() {
                "S" => TransferMode::Stream,
                "B" => TransferMode::Block,
                "C" => TransferMode::Compressed,
                "Z" => TransferMode::Deflate,
                _ => return Err(bad("MODE", "expected S, B, C or Z")),
            }),
            "RETR" => Self::Retr(need("RETR")?),
            "STOR" => Self::Stor(need("STOR")?),
            "STOU" => Self::Stou(opt()),
            "APPE" => Self::Appe(need("APPE")?),
            "ALLO" => {
                let a = need("ALLO")?;
                let first = a.split_whitespace().next().unwrap_or("");
                Self::Allo(parse_u64(first).ok_or(bad("ALLO", "expected a byte count"))?)
            }
            "REST" => Self::Rest(parse_u64(need("REST")?.trim()).ok_or(bad("REST", "expected a byte offset"))?),
            "RNFR" => Self::Rnfr(need("RNFR")?),
            "RNTO" => Self::Rnto(need("RNTO")?),
            "ABOR" => Self::Abor,
            "DELE" => Self::Dele(need("DELE")?),
            "RMD" | "XRMD" => Self::Rmd(need("RMD")?),
            "MKD" | "XMKD" => Self::Mkd(need("MKD")?),
            "PWD" | "XPWD" => Self::Pwd,
            "LIST" => Self::List(opt()),
            "NLST" => Self::Nlst(opt()),
            "SITE" => Self::Site(parse_site(&need("SITE")?)?),
            "SYST" => Self::Syst,
            "STAT" => Self::Stat(opt()),
            "HELP" => Self::Help(opt().map(|s| s.trim().to_string())),
            "NOOP" => Self::Noop,
            "FEAT" => Self::Feat,
            "OPTS" => Self::Opts(parse_opts(&need("OPTS")?)),
            "EPRT" => Self::Eprt(addr::parse_eprt(&need("EPRT")?).map_err(|e| match e {
                addr::AddrError::UnknownProtocol(_) => ParseError::UnknownNetProto,
                addr::AddrError::Malformed => bad("EPRT", "expected |proto|address|port|"),
            })?),
            "EPSV" => Self::Epsv(EpsvArg::parse(arg).map_err(|_| bad("EPSV", "expected 1, 2 or ALL"))?),
            "SIZE" => Self::Size(need("SIZE")?),
            "MDTM" => Self::Mdtm(need("MDTM")?),
            "MLST" => Self::Mlst(opt()),
            "MLSD" => Self::Mlsd(opt()),
            "MFMT" => {
                let a = need("MFMT")?;
                let (t, p) = a.split_once(' ').ok_or(ParseError::MissingArgument("MFMT"))?;
                let t = listing::parse_timeval(t).ok_or(bad("MFMT", "expected YYYYMMDDHHMMSS[.sss] path"))?;
                if p.is_empty() {
                    return Err(ParseError::MissingArgument("MFMT"));
                }
                Self::Mfmt(t, p.to_string())
            }
            "HOST" => Self::Host(need("HOST")?.trim().to_string()),
            "AUTH" => Self::Auth(need("AUTH")?.trim().to_ascii_uppercase()),
            "PBSZ" => Self::Pbsz(parse_u64(need("PBSZ")?.trim()).ok_or(bad("PBSZ", "expected a number"))?),
            "PROT" => Self::Prot(match need("PROT")?.trim().to_ascii_uppercase().as_str() {
                "C" => ProtLevel::Clear,
                "S" => ProtLevel::Safe,
                "E" => ProtLevel::Confidential,
                "P" => ProtLevel::Private,
                _ => return Err(bad("PROT", "expected C, S, E or P")),
            }),
            "CCC" => Self::Ccc,
            _ => return Err(ParseError::Unknown(printable(verb))),
        })
    }

    /// The canonical verb, upper case (`XPWD` parses to `Pwd`, whose verb is `PWD`).
    pub fn verb(&self) -> &'static str {
        match self {
            Self::User(_) => "USER",
            Self::Pass(_) => "PASS",
            Self::Acct(_) => "ACCT",
            Self::Cwd(_) => "CWD",
            Self::Cdup => "CDUP",
            Self::Smnt(_) => "SMNT",
            Self::Rein => "REIN",
            Self::Quit => "QUIT",
            Self::Port(_) => "PORT",
            Self::Pasv => "PASV",
            Self::Type(_) => "TYPE",
            Self::Stru(_) => "STRU",
            Self::Mode(_) => "MODE",
            Self::Retr(_) => "RETR",
            Self::Stor(_) => "STOR",
            Self::Stou(_) => "STOU",
            Self::Appe(_) => "APPE",
            Self::Allo(_) => "ALLO",
            Self::Rest(_) => "REST",
            Self::Rnfr(_) => "RNFR",
            Self::Rnto(_) => "RNTO",
            Self::Abor => "ABOR",
            Self::Dele(_) => "DELE",
            Self::Rmd(_) => "RMD",
            Self::Mkd(_) => "MKD",
            Self::Pwd => "PWD",
            Self::List(_) => "LIST",
            Self::Nlst(_) => "NLST",
            Self::Site(_) => "SITE",
            Self::Syst => "SYST",
            Self::Stat(_) => "STAT",
            Self::Help(_) => "HELP",
            Self::Noop => "NOOP",
            Self::Feat => "FEAT",
            Self::Opts(_) => "OPTS",
            Self::Eprt(_) => "EPRT",
            Self::Epsv(_) => "EPSV",
            Self::Size(_) => "SIZE",
            Self::Mdtm(_) => "MDTM",
            Self::Mlst(_) => "MLST",
            Self::Mlsd(_) => "MLSD",
            Self::Mfmt(..) => "MFMT",
            Self::Host(_) => "HOST",
            Self::Auth(_) => "AUTH",
            Self::Pbsz(_) => "PBSZ",
            Self::Prot(_) => "PROT",
            Self::Ccc => "CCC",
        }
    }
}

fn printable(s: &str) -> String {
    s.chars().take(16).map(|c| if c.is_ascii_graphic() { c } else { '?' }).collect()
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_format(s: Option<&str>) -> Result<FormatControl, ParseError> {
    match s.map(str::to_ascii_uppercase).as_deref() {
        None | Some("N") => Ok(FormatControl::NonPrint),
        Some("T") => Ok(FormatControl::Telnet),
        Some("C") => Ok(FormatControl::Asa),
        _ => Err(bad("TYPE", "expected A [N|T|C], E [N|T|C], I or L n")),
    }
}

fn parse_type(arg: &str) -> Result<TransferType, ParseError> {
    let mut words = arg.split_whitespace();
    let first = words.next().unwrap_or("").to_ascii_uppercase();
    let second = words.next();
    if words.next().is_some() {
        return Err(bad("TYPE", "too many arguments"));
    }
    Ok(match first.as_str() {
        "A" => TransferType::Ascii(parse_format(second)?),
        "E" => TransferType::Ebcdic(parse_format(second)?),
        "I" if second.is_none() => TransferType::Image,
        "L" => {
            let n = second.and_then(|s| s.parse::<u8>().ok()).filter(|n| *n > 0);
            TransferType::Local(n.ok_or(bad("TYPE", "L needs a byte size"))?)
        }
        // "L8" without a space is common enough to accept.
        "L8" if second.is_none() => TransferType::Local(8),
        _ => return Err(bad("TYPE", "expected A [N|T|C], E [N|T|C], I or L n")),
    })
}

fn parse_site(arg: &str) -> Result<SiteCommand, ParseError> {
    let arg = arg.trim_start();
    let (sub, rest) = match arg.find(' ') {
        Some(i) => (&arg[..i], Some(&arg[i + 1..])),
        None => (arg, None),
    };
    let rest = rest.filter(|r| !r.trim().is_empty());
    Ok(match sub.to_ascii_uppercase().as_str() {
        "HELP" => SiteCommand::Help(rest.map(|r| r.trim().to_string())),
        "CHMOD" => {
            let r = rest.ok_or(ParseError::MissingArgument("SITE CHMOD"))?.trim_start();
            let (mode, path) = r.split_once(' ').ok_or(ParseError::MissingArgument("SITE CHMOD"))?;
            let mode = (!mode.is_empty() && mode.len() <= 5)
                .then(|| u32::from_str_radix(mode, 8).ok())
                .flatten()
                .filter(|m| *m <= 0o7777)
                .ok_or(bad("SITE CHMOD", "expected an octal mode such as 644"))?;
            if path.is_empty() {
                return Err(ParseError::MissingArgument("SITE CHMOD"));
            }
            SiteCommand::Chmod { mode, path: path.to_string() }
        }
        _ => SiteCommand::Other(arg.to_string()),
    })
}

fn parse_opts(arg: &str) -> OptsCommand {
    let arg = arg.trim();
    let (name, value) = match arg.find(' ') {
        Some(i) => (&arg[..i], arg[i + 1..].trim()),
        None => (arg, ""),
    };
    match name.to_ascii_uppercase().as_str() {
        "UTF8" | "UTF-8" if value.eq_ignore_ascii_case("ON") || value.is_empty() => OptsCommand::Utf8(true),
        "UTF8" | "UTF-8" if value.eq_ignore_ascii_case("OFF") => OptsCommand::Utf8(false),
        "MLST" => OptsCommand::Mlst(
            value.split(';').map(|f| f.trim().to_ascii_lowercase()).filter(|f| !f.is_empty()).collect(),
        ),
        _ => OptsCommand::Other(arg.to_string()),
    }
}

impl fmt::Display for FormatControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NonPrint => "N",
            Self::Telnet => "T",
            Self::Asa => "C",
        })
    }
}

impl fmt::Display for TransferType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ascii(FormatControl::NonPrint) => f.write_str("A"),
            Self::Ascii(c) => write!(f, "A {c}"),
            Self::Ebcdic(FormatControl::NonPrint) => f.write_str("E"),
            Self::Ebcdic(c) => write!(f, "E {c}"),
            Self::Image => f.write_str("I"),
            Self::Local(n) => write!(f, "L {n}"),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.verb();
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
            | Self::Auth(a) => write!(f, "{v} {a}"),
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
            Self::Stru(s) => write!(
                f,
                "STRU {}",
                match s {
                    Structure::File => "F",
                    Structure::Record => "R",
                    Structure::Page => "P",
                }
            ),
            Self::Mode(m) => write!(
                f,
                "MODE {}",
                match m {
                    TransferMode::Stream => "S",
                    TransferMode::Block => "B",
                    TransferMode::Compressed => "C",
                    TransferMode::Deflate => "Z",
                }
            ),
            Self::Allo(n) | Self::Rest(n) | Self::Pbsz(n) => write!(f, "{v} {n}"),
            Self::Site(SiteCommand::Help(None)) => f.write_str("SITE HELP"),
            Self::Site(SiteCommand::Help(Some(c))) => write!(f, "SITE HELP {c}"),
            Self::Site(SiteCommand::Chmod { mode, path }) => {
                write!(f, "SITE CHMOD {mode:o} {path}")
            }
            Self::Site(SiteCommand::Other(s)) => write!(f, "SITE {s}"),
            Self::Opts(OptsCommand::Utf8(on)) => {
                write!(f, "OPTS UTF8 {}", if *on { "ON" } else { "OFF" })
            }
            Self::Opts(OptsCommand::Mlst(facts)) => {
                f.write_str("OPTS MLST ")?;
                for fact in facts {
                    write!(f, "{fact};")?;
                }
                Ok(())
            }
            Self::Opts(OptsCommand::Other(s)) => write!(f, "OPTS {s}"),
            Self::Eprt(a) => write!(f, "EPRT {}", addr::format_eprt(*a)),
            Self::Epsv(EpsvArg::Default) => f.write_str("EPSV"),
            Self::Epsv(a) => write!(f, "EPSV {a}"),
            Self::Mfmt(t, p) => write!(f, "MFMT {} {p}", listing::format_timeval(*t)),
            Self::Prot(l) => write!(
                f,
                "PROT {}",
                match l {
                    ProtLevel::Clear => "C",
                    ProtLevel::Safe => "S",
                    ProtLevel::Confidential => "E",
                    ProtLevel::Private => "P",
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests;
