//! One row per command: its names, its `HELP` syntax, its `FEAT` line, and the rules a server
//! applies before running it (login, permission, data connection, what it may do during a
//! transfer, what pending `REST`/`RNFR` it keeps); and the parser of its argument. A line goes from
//! bytes to a checked-ready [`Command`] in this file: [`Command::parse`] finds the verb by name
//! ([`Verb::lookup`]) and parses its argument ([`Verb::parse_args`]).
//!
//! [`Verb::spec`] and [`Verb::parse_args`] are exhaustive matches: a new [`Verb`] does not compile
//! until its row and its parser are written. [`VERBS`] (for `HELP`), `FEAT` and the server's
//! policy are derived from the rows and never listed a second time.

use crate::addr::{self, EpsvArg};
use crate::listing;

use super::args::{bad, parse_u64};
use super::{
    Command, OptsCommand, ParseError, Password, ProtLevel, SiteCommand, Structure, TransferMode, TransferType, Verb,
};

/// Whether a command needs a login (RFC 959 section 5.4 lists what may come before `USER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Before and after login.
    Always,
    /// Only after login (530 before).
    LoggedIn,
}

/// What a command may do while a transfer runs (RFC 959 section 4.1.3: `ABOR`, `STAT` and `QUIT`
/// are served during a transfer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuringTransfer {
    /// Served at once.
    Immediate,
    /// Served at once without an argument (a status request); queued with one.
    ImmediateWithoutArgument,
    /// Served after the transfer ends.
    Queue,
}

/// Which pending state a command leaves in place. `REST` must be followed by the transfer it
/// restarts and `RNTO` must follow `RNFR` (RFC 959 section 4.1.3); every other command clears them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keeps {
    /// Clears a pending `REST` offset and a pending `RNFR` name.
    Nothing,
    /// Keeps a pending `REST` offset (the transfer commands, and what may come between `REST` and
    /// them: data-connection setup, `TYPE`, `NOOP`, `STAT`); clears `RNFR`.
    Rest,
    /// Keeps a pending `RNFR` name (`RNFR`, `RNTO`); clears `REST`.
    Rename,
    /// Keeps a pending `RANG` range (`RANG`, `HASH`, which uses it up).
    Range,
}

/// The one pre-condition a command has beyond login and permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing more.
    Nothing,
    /// A data connection set up with `PORT`/`EPRT`/`PASV`/`EPSV` (425 without), protected when
    /// the server's policy requires it (521).
    DataConnection,
    /// Not after `EPSV ALL` (RFC 2428 section 4: 503).
    NoEpsvAll,
    /// A preceding `RNFR` (503 without).
    PendingRename,
    /// A protected control connection (`AUTH TLS` first; 503 without).
    ControlTls,
}

/// What a user may do: the permission a command needs. The MLSx `perm` fact (RFC 3659 section
/// 7.5.5) shows them with its letters; users files name them in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "lowercase"))]
pub enum Permission {
    /// Listing a directory or describing a file: LIST, NLST, MLSD, MLST, STAT path (`l`, `e`).
    List,
    /// Reading a file: RETR, SIZE, MDTM (`r`).
    Read,
    /// Writing a file: STOR, STOU, APPE, MFMT, SITE CHMOD (`w`, `a`, `c`).
    Write,
    /// Deleting a file or directory: DELE, RMD (`d`, `p`).
    Delete,
    /// Renaming: RNFR/RNTO (`f`).
    Rename,
    /// Creating a directory: MKD (`m`).
    Mkdir,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 6] = [Self::List, Self::Read, Self::Write, Self::Delete, Self::Rename, Self::Mkdir];

    /// The name users files and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
            Self::Rename => "rename",
            Self::Mkdir => "mkdir",
        }
    }

    /// The permission of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// When a command appears in the `FEAT` reply (RFC 2389).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feat {
    /// Not listed.
    None,
    /// Always listed, with this text.
    Always(&'static str),
    /// Listed when the server offers TLS.
    WithTls(&'static str),
    /// Listed with local storage (which can set modification times and write at offsets).
    WithLocalStorage(&'static str),
    /// The `MLST` line with the facts of the session (RFC 3659 section 7.8).
    MlstFacts,
    /// The `HASH` line: every algorithm, `*` after the session's (draft-bryan-ftpext-hash-02).
    HashAlgorithms,
}

/// A command's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The verb on the wire.
    pub name: &'static str,
    /// Other names for it (RFC 775's `X` verbs).
    pub aliases: &'static [&'static str],
    /// The `HELP verb` syntax line.
    pub syntax: &'static str,
    /// Login needed or not.
    pub access: Access,
    /// The permission needed, if any.
    pub permission: Option<Permission>,
    /// The pre-condition beyond login and permission.
    pub needs: Needs,
    /// What it may do during a transfer.
    pub during_transfer: DuringTransfer,
    /// The pending state it keeps.
    pub keeps: Keeps,
    /// Its `FEAT` line.
    pub feat: Feat,
}

/// A row for a command that needs a login, queues during a transfer, keeps nothing pending and has
/// no `FEAT` line; the builder methods below change one rule each.
const fn row(name: &'static str, syntax: &'static str) -> Spec {
    Spec {
        name,
        aliases: &[],
        syntax,
        access: Access::LoggedIn,
        permission: None,
        needs: Needs::Nothing,
        during_transfer: DuringTransfer::Queue,
        keeps: Keeps::Nothing,
        feat: Feat::None,
    }
}

impl Spec {
    const fn aliases(self, aliases: &'static [&'static str]) -> Self {
        Self { aliases, ..self }
    }
    const fn before_login(self) -> Self {
        Self { access: Access::Always, ..self }
    }
    const fn op(self, p: Permission) -> Self {
        Self { permission: Some(p), ..self }
    }
    const fn needs(self, needs: Needs) -> Self {
        Self { needs, ..self }
    }
    const fn data(self) -> Self {
        self.needs(Needs::DataConnection)
    }
    const fn immediate(self) -> Self {
        Self { during_transfer: DuringTransfer::Immediate, ..self }
    }
    const fn status_request(self) -> Self {
        Self { during_transfer: DuringTransfer::ImmediateWithoutArgument, ..self }
    }
    const fn keeps(self, keeps: Keeps) -> Self {
        Self { keeps, ..self }
    }
    const fn keeps_rest(self) -> Self {
        self.keeps(Keeps::Rest)
    }
    const fn feat(self, feat: Feat) -> Self {
        Self { feat, ..self }
    }
}

impl Verb {
    /// This verb's row.
    pub const fn spec(self) -> Spec {
        use Permission as P;
        use Verb as V;
        match self {
            // Access control (RFC 959 section 4.1.1).
            V::User => row("USER", "USER <sp> username").before_login(),
            V::Pass => row("PASS", "PASS <sp> password").before_login(),
            V::Acct => row("ACCT", "ACCT <sp> account-information").before_login(),
            V::Cwd => row("CWD", "CWD <sp> pathname").aliases(&["XCWD"]).feat(Feat::Always("TVFS")),
            V::Cdup => row("CDUP", "CDUP (no arguments)").aliases(&["XCUP"]),
            V::Smnt => row("SMNT", "SMNT <sp> pathname"),
            V::Rein => row("REIN", "REIN (no arguments)").before_login(),
            V::Quit => row("QUIT", "QUIT (no arguments)").before_login().immediate(),
            // Transfer parameters (RFC 959 section 4.1.2, RFC 2428, RFC 3659).
            V::Port => row("PORT", "PORT <sp> h1,h2,h3,h4,p1,p2").needs(Needs::NoEpsvAll).keeps_rest(),
            V::Pasv => {
                row("PASV", "PASV (no arguments)").needs(Needs::NoEpsvAll).keeps_rest().feat(Feat::Always("PASV"))
            }
            V::Eprt => row("EPRT", "EPRT <sp> |proto|address|port|")
                .needs(Needs::NoEpsvAll)
                .keeps_rest()
                .feat(Feat::Always("EPRT")),
            V::Epsv => row("EPSV", "EPSV [<sp> 1|2|ALL]").keeps_rest().feat(Feat::Always("EPSV")),
            V::Type => row("TYPE", "TYPE <sp> A|I|L 8").keeps_rest(),
            V::Stru => row("STRU", "STRU <sp> F"),
            V::Mode => row("MODE", "MODE <sp> S"),
            V::Rest => row("REST", "REST <sp> byte-offset").keeps_rest().feat(Feat::Always("REST STREAM")),
            V::Allo => row("ALLO", "ALLO <sp> size [<sp> R <sp> record-size]"),
            // Service commands (RFC 959 section 4.1.3).
            V::Retr => row("RETR", "RETR <sp> pathname").op(P::Read).data().keeps_rest(),
            V::Stor => row("STOR", "STOR <sp> pathname").op(P::Write).data().keeps_rest(),
            V::Stou => row("STOU", "STOU [<sp> pathname]").op(P::Write).data(),
            V::Appe => row("APPE", "APPE <sp> pathname").op(P::Write).data().keeps_rest(),
            V::Rnfr => row("RNFR", "RNFR <sp> pathname").op(P::Rename).keeps(Keeps::Rename),
            V::Rnto => row("RNTO", "RNTO <sp> pathname").op(P::Rename).needs(Needs::PendingRename).keeps(Keeps::Rename),
            V::Abor => row("ABOR", "ABOR (no arguments)").immediate(),
            V::Dele => row("DELE", "DELE <sp> pathname").op(P::Delete),
            V::Rmd => row("RMD", "RMD <sp> pathname").aliases(&["XRMD"]).op(P::Delete),
            V::Mkd => row("MKD", "MKD <sp> pathname").aliases(&["XMKD"]).op(P::Mkdir),
            V::Pwd => row("PWD", "PWD (no arguments)").aliases(&["XPWD"]),
            V::List => row("LIST", "LIST [<sp> pathname]").op(P::List).data(),
            V::Nlst => row("NLST", "NLST [<sp> pathname]").op(P::List).data(),
            V::Site => row("SITE", "SITE <sp> CHMOD|HELP|SEGMENT ...").feat(Feat::WithLocalStorage("SITE SEGMENT")),
            V::Syst => row("SYST", "SYST (no arguments)").before_login(),
            V::Stat => row("STAT", "STAT [<sp> pathname]").status_request().keeps_rest(),
            V::Help => row("HELP", "HELP [<sp> command]").before_login(),
            V::Noop => row("NOOP", "NOOP (no arguments)").before_login().immediate().keeps_rest(),
            // Extensions (RFC 2389, RFC 3659, RFC 7151, draft-somers-ftp-mfxx).
            V::Feat => row("FEAT", "FEAT (no arguments)").before_login(),
            V::Opts => row("OPTS", "OPTS <sp> UTF8 ON | MLST facts").before_login().feat(Feat::Always("UTF8")),
            V::Size => row("SIZE", "SIZE <sp> pathname").op(P::Read).feat(Feat::Always("SIZE")),
            V::Mdtm => row("MDTM", "MDTM <sp> pathname").op(P::Read).feat(Feat::Always("MDTM")),
            V::Mlst => row("MLST", "MLST [<sp> pathname]").op(P::List).feat(Feat::MlstFacts),
            V::Mlsd => row("MLSD", "MLSD [<sp> pathname]").op(P::List).data(),
            V::Mfmt => {
                row("MFMT", "MFMT <sp> YYYYMMDDHHMMSS <sp> pathname").op(P::Write).feat(Feat::WithLocalStorage("MFMT"))
            }
            V::Host => row("HOST", "HOST <sp> hostname").before_login().feat(Feat::Always("HOST")),
            V::Hash => row("HASH", "HASH <sp> pathname").op(P::Read).keeps(Keeps::Range).feat(Feat::HashAlgorithms),
            V::Rang => row("RANG", "RANG <sp> start <sp> end").keeps(Keeps::Range).feat(Feat::Always("RANG")),
            V::Xsha1 => row("XSHA1", "XSHA1 <sp> pathname").op(P::Read),
            V::Xsha256 => row("XSHA256", "XSHA256 <sp> pathname").op(P::Read),
            V::Xsha512 => row("XSHA512", "XSHA512 <sp> pathname").op(P::Read),
            V::Xmd5 => row("XMD5", "XMD5 <sp> pathname").op(P::Read),
            V::Xcrc => row("XCRC", "XCRC <sp> pathname").op(P::Read),
            // Security (RFC 2228, RFC 4217).
            V::Auth => row("AUTH", "AUTH <sp> TLS").before_login().feat(Feat::WithTls("AUTH TLS")),
            V::Pbsz => row("PBSZ", "PBSZ <sp> 0").before_login().needs(Needs::ControlTls).feat(Feat::WithTls("PBSZ")),
            V::Prot => row("PROT", "PROT <sp> C|P").before_login().needs(Needs::ControlTls).feat(Feat::WithTls("PROT")),
            V::Ccc => row("CCC", "CCC (no arguments)").before_login().needs(Needs::ControlTls),
        }
    }

    /// The verb for a name or alias, any case; `None` when no command has that name.
    pub fn lookup(name: &str) -> Option<Self> {
        if name.len() > 8 || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let mut key = [0u8; 8];
        for (k, b) in key.iter_mut().zip(name.bytes()) {
            *k = b.to_ascii_uppercase();
        }
        let key = &key[..name.len()];
        NAMES.binary_search_by(|(n, _)| n.as_bytes().cmp(key)).ok().map(|i| NAMES[i].1)
    }
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
        let (name, arg) = match line.find(' ') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        let verb = Verb::lookup(name).ok_or_else(|| ParseError::Unknown(printable(name)))?;
        // An argument of only spaces counts as none.
        verb.parse_args(arg.filter(|a| !a.trim().is_empty()))
    }
}

impl Verb {
    /// Builds the command from its argument (`None` when the line has none). One arm per verb: the
    /// argument's parser and what a missing or malformed one is.
    pub fn parse_args(self, arg: Option<&str>) -> Result<Command, ParseError> {
        use Command as C;
        let name = self.spec().name;
        let need = || arg.map(str::to_string).ok_or(ParseError::MissingArgument(name));
        let opt = || arg.map(str::to_string);
        let number = |why| parse_u64(need()?.trim()).ok_or(bad(name, why));
        Ok(match self {
            Verb::User => C::User(need()?),
            Verb::Pass => C::Pass(Password(arg.unwrap_or("").to_string())),
            Verb::Acct => C::Acct(need()?),
            Verb::Cwd => C::Cwd(need()?),
            Verb::Cdup => C::Cdup,
            Verb::Smnt => C::Smnt(need()?),
            Verb::Rein => C::Rein,
            Verb::Quit => C::Quit,
            Verb::Port => C::Port(addr::parse_port(&need()?).map_err(|_| bad(name, "expected h1,h2,h3,h4,p1,p2"))?),
            Verb::Pasv => C::Pasv,
            Verb::Type => C::Type(TransferType::parse(&need()?)?),
            Verb::Stru => C::Stru(Structure::parse(&need()?)?),
            Verb::Mode => C::Mode(TransferMode::parse(&need()?)?),
            Verb::Retr => C::Retr(need()?),
            Verb::Stor => C::Stor(need()?),
            Verb::Stou => C::Stou(opt()),
            Verb::Appe => C::Appe(need()?),
            Verb::Allo => {
                let a = need()?;
                let first = a.split_whitespace().next().unwrap_or("");
                C::Allo(parse_u64(first).ok_or(bad(name, "expected a byte count"))?)
            }
            Verb::Rest => C::Rest(number("expected a byte offset")?),
            Verb::Rnfr => C::Rnfr(need()?),
            Verb::Rnto => C::Rnto(need()?),
            Verb::Abor => C::Abor,
            Verb::Dele => C::Dele(need()?),
            Verb::Rmd => C::Rmd(need()?),
            Verb::Mkd => C::Mkd(need()?),
            Verb::Pwd => C::Pwd,
            Verb::List => C::List(opt()),
            Verb::Nlst => C::Nlst(opt()),
            Verb::Site => C::Site(SiteCommand::parse(&need()?)?),
            Verb::Syst => C::Syst,
            Verb::Stat => C::Stat(opt()),
            Verb::Help => C::Help(opt().map(|s| s.trim().to_string())),
            Verb::Noop => C::Noop,
            Verb::Feat => C::Feat,
            Verb::Opts => C::Opts(OptsCommand::parse(&need()?)),
            Verb::Eprt => C::Eprt(addr::parse_eprt(&need()?).map_err(|e| match e {
                addr::AddrError::UnknownProtocol(_) => ParseError::UnknownNetProto,
                addr::AddrError::Malformed => bad(name, "expected |proto|address|port|"),
            })?),
            Verb::Epsv => C::Epsv(EpsvArg::parse(arg).map_err(|_| bad(name, "expected 1, 2 or ALL"))?),
            Verb::Size => C::Size(need()?),
            Verb::Mdtm => C::Mdtm(need()?),
            Verb::Mlst => C::Mlst(opt()),
            Verb::Mlsd => C::Mlsd(opt()),
            Verb::Mfmt => {
                let a = need()?;
                let (t, p) = a.split_once(' ').ok_or(ParseError::MissingArgument(name))?;
                let t = listing::parse_timeval(t).ok_or(bad(name, "expected YYYYMMDDHHMMSS[.sss] path"))?;
                if p.is_empty() {
                    return Err(ParseError::MissingArgument(name));
                }
                C::Mfmt(t, p.to_string())
            }
            Verb::Host => C::Host(need()?.trim().to_string()),
            Verb::Auth => C::Auth(need()?.trim().to_ascii_uppercase()),
            Verb::Pbsz => C::Pbsz(number("expected a number")?),
            Verb::Prot => C::Prot(ProtLevel::parse(&need()?)?),
            Verb::Ccc => C::Ccc,
            Verb::Hash => C::Hash(need()?),
            Verb::Rang => {
                let a = need()?;
                let mut it = a.split_whitespace().map(parse_u64);
                match (it.next(), it.next(), it.next()) {
                    (Some(Some(start)), Some(Some(end)), None) if start <= end => C::Rang(start, end),
                    _ => return Err(bad(name, "expected start <= end, two byte offsets")),
                }
            }
            Verb::Xsha1 => C::Xsha1(need()?),
            Verb::Xsha256 => C::Xsha256(need()?),
            Verb::Xsha512 => C::Xsha512(need()?),
            Verb::Xmd5 => C::Xmd5(need()?),
            Verb::Xcrc => C::Xcrc(need()?),
        })
    }
}

fn printable(s: &str) -> String {
    s.chars().take(16).map(|c| if c.is_ascii_graphic() { c } else { '?' }).collect()
}

/// How many names and aliases there are.
const NAME_COUNT: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < Verb::ALL.len() {
        n += 1 + Verb::ALL[i].spec().aliases.len();
        i += 1;
    }
    n
};

/// Every name and alias with its verb, sorted by name: built at compile time from the rows.
const NAMES: [(&str, Verb); NAME_COUNT] = {
    let mut out = [("", Verb::Noop); NAME_COUNT];
    let mut n = 0;
    let mut i = 0;
    while i < Verb::ALL.len() {
        let v = Verb::ALL[i];
        let spec = v.spec();
        out[n] = (spec.name, v);
        n += 1;
        let mut a = 0;
        while a < spec.aliases.len() {
            out[n] = (spec.aliases[a], v);
            n += 1;
            a += 1;
        }
        i += 1;
    }
    // Insertion sort: a few dozen names, once, at compile time.
    let mut i = 1;
    while i < NAME_COUNT {
        let mut j = i;
        while j > 0 && str_less(out[j].0, out[j - 1].0) {
            let t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
            j -= 1;
        }
        i += 1;
    }
    out
};

const fn str_less(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

const VERB_NAMES: [&str; NAME_COUNT] = {
    let mut out = [""; NAME_COUNT];
    let mut i = 0;
    while i < NAME_COUNT {
        out[i] = NAMES[i].0;
        i += 1;
    }
    out
};

/// Every verb and alias [`crate::Command::parse`] knows, sorted, for `HELP`.
pub const VERBS: &[&str] = &VERB_NAMES;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_upper_case_and_found() {
        for w in NAMES.windows(2) {
            assert!(w[0].0 < w[1].0, "{} and {} out of order or repeated", w[0].0, w[1].0);
        }
        for (name, verb) in NAMES {
            assert_eq!(name, name.to_ascii_uppercase());
            assert_eq!(Verb::lookup(name), Some(verb), "{name}");
            assert_eq!(Verb::lookup(&name.to_ascii_lowercase()), Some(verb), "{name}");
        }
        assert_eq!(Verb::lookup("XYZ"), None);
        assert_eq!(Verb::lookup("RETRX"), None);
        assert_eq!(Verb::lookup(""), None);
    }

    #[test]
    fn every_syntax_line_starts_with_its_verb() {
        for v in Verb::ALL {
            let s = v.spec();
            assert!(s.syntax.starts_with(s.name), "{v:?}: {}", s.syntax);
        }
    }

    #[test]
    fn the_rfc_rules_hold() {
        // RFC 959 section 4.1.3: these interrupt a transfer.
        for v in [Verb::Abor, Verb::Quit, Verb::Noop] {
            assert_eq!(v.spec().during_transfer, DuringTransfer::Immediate, "{v:?}");
        }
        assert_eq!(Verb::Stat.spec().during_transfer, DuringTransfer::ImmediateWithoutArgument);
        // RFC 2389: FEAT before login; RFC 4217: AUTH before login.
        for v in [Verb::Feat, Verb::Auth, Verb::User, Verb::Pass, Verb::Quit] {
            assert_eq!(v.spec().access, Access::Always, "{v:?}");
        }
        for v in [Verb::Retr, Verb::Stor, Verb::Stou, Verb::Appe, Verb::List, Verb::Nlst, Verb::Mlsd] {
            assert_eq!(v.spec().needs, Needs::DataConnection, "{v:?}");
        }
        // RFC 2428 section 4: after EPSV ALL, only EPSV sets up data connections.
        for v in [Verb::Port, Verb::Eprt, Verb::Pasv] {
            assert_eq!(v.spec().needs, Needs::NoEpsvAll, "{v:?}");
        }
    }
}
