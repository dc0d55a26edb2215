//! The typed arguments of commands, with their parsers and wire forms: `TYPE`, `STRU`, `MODE`,
//! `PROT`, `SITE`, `OPTS`, the password of `PASS`, and the options of `LIST`/`NLST`.

use std::fmt;

use super::ParseError;

/// A password: its `Debug` form never shows it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

/// What every log and trace shows instead of a password.
pub const MASK: &str = "****";

/// A control line as it may be logged: `PASS` lines lose their argument (`PASS ****`); every
/// other line is returned as it is. The one place a password is masked, for the server's log,
/// the client's trace and the benchmark's.
pub fn redact(line: &str) -> std::borrow::Cow<'_, str> {
    let verb = line.trim_start().split(' ').next().unwrap_or("");
    if verb.eq_ignore_ascii_case("PASS") {
        std::borrow::Cow::Owned(format!("PASS {MASK}"))
    } else {
        std::borrow::Cow::Borrowed(line)
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
    /// `SITE SEGMENT BEGIN|END|ABORT ...`: a segmented upload (a Ferry extension; see
    /// docs/segmented-upload.md).
    Segment(SegmentOp),
    /// Any other subcommand, kept verbatim so the server can answer it.
    Other(String),
}

/// A step of a segmented upload: several connections write disjoint ranges of one new version
/// of a file (`REST offset` + `STOR path`), which replaces the file only at `END`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentOp {
    /// `SITE SEGMENT BEGIN size path`: the new version will be `size` bytes.
    Begin {
        /// Its size.
        size: u64,
        /// The file.
        path: String,
    },
    /// `SITE SEGMENT END path`: every byte arrived; publish it.
    End(String),
    /// `SITE SEGMENT ABORT path`: forget it.
    Abort(String),
}

/// A digest algorithm of `HASH` (draft-bryan-ftpext-hash-02 section 3.1: the names registered
/// with IANA's "Hash Function Textual Names", plus CRC32 as servers answer it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// `SHA-1`.
    Sha1,
    /// `SHA-256` (the default).
    Sha256,
    /// `SHA-512`.
    Sha512,
    /// `MD5`.
    Md5,
    /// `CRC32`.
    Crc32,
}

impl HashAlg {
    /// Every algorithm, in the order `FEAT` lists them.
    pub const ALL: [HashAlg; 5] = [Self::Sha1, Self::Sha256, Self::Sha512, Self::Md5, Self::Crc32];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
            Self::Sha512 => "SHA-512",
            Self::Md5 => "MD5",
            Self::Crc32 => "CRC32",
        }
    }

    /// The algorithm of a name, any case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The `FEAT` line: every algorithm, `*` after the selected one.
    pub fn feat_line(selected: Self) -> String {
        let names: Vec<String> = Self::ALL
            .iter()
            .map(|a| if *a == selected { format!("{}*", a.name()) } else { a.name().to_string() })
            .collect();
        format!("HASH {}", names.join(";"))
    }
}

/// `OPTS` arguments (RFC 2389 section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptsCommand {
    /// `OPTS UTF8 ON|OFF` (RFC 2640 and common practice).
    Utf8(bool),
    /// `OPTS MLST fact;fact;...` (RFC 3659 section 7.9); facts in lower case.
    Mlst(Vec<String>),
    /// `OPTS HASH [alg]` (draft-bryan-ftpext-hash-02 section 3.2): ask for (`None`) or select
    /// the algorithm; `Err` keeps a name no algorithm has (504).
    Hash(Option<Result<HashAlg, String>>),
    /// Anything else, verbatim.
    Other(String),
}

/// The argument of `LIST`/`NLST` (or `STAT path`) split into `ls`-style options and a path:
/// `-la dir` is the options `la` and the path `dir`. Options come first and start with `-`; the
/// rest is the path, spaces included. RFC 959 gives only a path; clients (and users typing at
/// them) add the options of `ls`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListArgs<'a> {
    /// The option letters, without dashes, in order (`"la"`).
    pub flags: String,
    /// The path, if one is given.
    pub path: Option<&'a str>,
}

impl<'a> ListArgs<'a> {
    /// Splits a `LIST`/`NLST` argument.
    pub fn parse(arg: Option<&'a str>) -> Self {
        let mut flags = String::new();
        let mut rest = arg.unwrap_or("").trim_start();
        while let Some(opt) = rest.strip_prefix('-') {
            let end = opt.find(' ').unwrap_or(opt.len());
            flags.push_str(&opt[..end]);
            rest = opt[end..].trim_start();
        }
        Self { flags, path: Some(rest).filter(|r| !r.is_empty()) }
    }

    /// Whether `-a` or `-A` asks for hidden entries.
    pub fn all(&self) -> bool {
        self.flags.contains(['a', 'A'])
    }
}

pub(super) fn bad(verb: &'static str, why: &'static str) -> ParseError {
    ParseError::BadArgument { verb, why }
}

/// A decimal number of at most 20 digits (`REST`, `ALLO`, `PBSZ`).
pub(super) fn parse_u64(s: &str) -> Option<u64> {
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

impl TransferType {
    /// Parses the argument of `TYPE`.
    pub fn parse(arg: &str) -> Result<Self, ParseError> {
        let mut words = arg.split_whitespace();
        let first = words.next().unwrap_or("").to_ascii_uppercase();
        let second = words.next();
        if words.next().is_some() {
            return Err(bad("TYPE", "too many arguments"));
        }
        Ok(match first.as_str() {
            "A" => Self::Ascii(parse_format(second)?),
            "E" => Self::Ebcdic(parse_format(second)?),
            "I" if second.is_none() => Self::Image,
            "L" => {
                let n = second.and_then(|s| s.parse::<u8>().ok()).filter(|n| *n > 0);
                Self::Local(n.ok_or(bad("TYPE", "L needs a byte size"))?)
            }
            // "L8" without a space is common enough to accept.
            "L8" if second.is_none() => Self::Local(8),
            _ => return Err(bad("TYPE", "expected A [N|T|C], E [N|T|C], I or L n")),
        })
    }
}

/// A one-letter argument (`STRU`, `MODE`, `PROT`): its values and their letters, in one table
/// that both parsing and display read.
trait Letter: Copy + PartialEq + 'static {
    /// The command, for the error.
    const VERB: &'static str;
    /// What is accepted, for the error.
    const EXPECTED: &'static str;
    /// Each value with its letter.
    const LETTERS: &'static [(char, Self)];

    fn parse_letter(arg: &str) -> Result<Self, ParseError> {
        let arg = arg.trim();
        let mut chars = arg.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else { return Err(bad(Self::VERB, Self::EXPECTED)) };
        Self::LETTERS
            .iter()
            .find(|(l, _)| l.eq_ignore_ascii_case(&c))
            .map(|(_, v)| *v)
            .ok_or(bad(Self::VERB, Self::EXPECTED))
    }

    fn letter(self) -> char {
        Self::LETTERS.iter().find(|(_, v)| *v == self).map_or('?', |(l, _)| *l)
    }
}

impl Letter for Structure {
    const VERB: &'static str = "STRU";
    const EXPECTED: &'static str = "expected F, R or P";
    const LETTERS: &'static [(char, Self)] = &[('F', Self::File), ('R', Self::Record), ('P', Self::Page)];
}

impl Letter for TransferMode {
    const VERB: &'static str = "MODE";
    const EXPECTED: &'static str = "expected S, B, C or Z";
    const LETTERS: &'static [(char, Self)] =
        &[('S', Self::Stream), ('B', Self::Block), ('C', Self::Compressed), ('Z', Self::Deflate)];
}

impl Letter for ProtLevel {
    const VERB: &'static str = "PROT";
    const EXPECTED: &'static str = "expected C, S, E or P";
    const LETTERS: &'static [(char, Self)] =
        &[('C', Self::Clear), ('S', Self::Safe), ('E', Self::Confidential), ('P', Self::Private)];
}

impl Structure {
    /// Parses the argument of `STRU`.
    pub fn parse(arg: &str) -> Result<Self, ParseError> {
        Self::parse_letter(arg)
    }
}

impl TransferMode {
    /// Parses the argument of `MODE`.
    pub fn parse(arg: &str) -> Result<Self, ParseError> {
        Self::parse_letter(arg)
    }
}

impl ProtLevel {
    /// Parses the argument of `PROT`.
    pub fn parse(arg: &str) -> Result<Self, ParseError> {
        Self::parse_letter(arg)
    }
}

impl SiteCommand {
    /// Parses the argument of `SITE`.
    pub fn parse(arg: &str) -> Result<Self, ParseError> {
        let arg = arg.trim_start();
        let (sub, rest) = match arg.find(' ') {
            Some(i) => (&arg[..i], Some(&arg[i + 1..])),
            None => (arg, None),
        };
        let rest = rest.filter(|r| !r.trim().is_empty());
        Ok(match sub.to_ascii_uppercase().as_str() {
            "HELP" => Self::Help(rest.map(|r| r.trim().to_string())),
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
                Self::Chmod { mode, path: path.to_string() }
            }
            "SEGMENT" => Self::Segment(SegmentOp::parse(rest.unwrap_or(""))?),
            _ => Self::Other(arg.to_string()),
        })
    }
}

impl SegmentOp {
    /// Parses what follows `SITE SEGMENT`.
    pub fn parse(arg: &str) -> Result<Self, ParseError> {
        const NAME: &str = "SITE SEGMENT";
        let usage = bad(NAME, "expected BEGIN <size> <path>, END <path> or ABORT <path>");
        let arg = arg.trim_start();
        let (op, rest) = arg.split_once(' ').ok_or(usage.clone())?;
        let rest = rest.trim_start();
        match op.to_ascii_uppercase().as_str() {
            "BEGIN" => {
                let (size, path) = rest.split_once(' ').ok_or(usage.clone())?;
                let size = parse_u64(size).ok_or(bad(NAME, "expected a size in bytes"))?;
                if path.is_empty() {
                    return Err(usage);
                }
                Ok(Self::Begin { size, path: path.to_string() })
            }
            "END" if !rest.is_empty() => Ok(Self::End(rest.to_string())),
            "ABORT" if !rest.is_empty() => Ok(Self::Abort(rest.to_string())),
            _ => Err(usage),
        }
    }
}

impl fmt::Display for SegmentOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Begin { size, path } => write!(f, "BEGIN {size} {path}"),
            Self::End(p) => write!(f, "END {p}"),
            Self::Abort(p) => write!(f, "ABORT {p}"),
        }
    }
}

impl OptsCommand {
    /// Parses the argument of `OPTS`; anything not understood is kept as [`OptsCommand::Other`].
    pub fn parse(arg: &str) -> Self {
        let arg = arg.trim();
        let (name, value) = match arg.find(' ') {
            Some(i) => (&arg[..i], arg[i + 1..].trim()),
            None => (arg, ""),
        };
        match name.to_ascii_uppercase().as_str() {
            "UTF8" | "UTF-8" if value.eq_ignore_ascii_case("ON") || value.is_empty() => Self::Utf8(true),
            "UTF8" | "UTF-8" if value.eq_ignore_ascii_case("OFF") => Self::Utf8(false),
            "MLST" => {
                Self::Mlst(value.split(';').map(|f| f.trim().to_ascii_lowercase()).filter(|f| !f.is_empty()).collect())
            }
            "HASH" if value.is_empty() => Self::Hash(None),
            "HASH" => Self::Hash(Some(HashAlg::from_name(value).ok_or_else(|| value.to_string()))),
            _ => Self::Other(arg.to_string()),
        }
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

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

impl fmt::Display for TransferMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

impl fmt::Display for ProtLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

impl fmt::Display for SiteCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Help(None) => f.write_str("HELP"),
            Self::Help(Some(c)) => write!(f, "HELP {c}"),
            Self::Chmod { mode, path } => write!(f, "CHMOD {mode:o} {path}"),
            Self::Segment(op) => write!(f, "SEGMENT {op}"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

impl fmt::Display for OptsCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Utf8(on) => write!(f, "UTF8 {}", if *on { "ON" } else { "OFF" }),
            Self::Mlst(facts) => {
                f.write_str("MLST ")?;
                for fact in facts {
                    write!(f, "{fact};")?;
                }
                Ok(())
            }
            Self::Hash(None) => f.write_str("HASH"),
            Self::Hash(Some(Ok(a))) => write!(f, "HASH {}", a.name()),
            Self::Hash(Some(Err(name))) => write!(f, "HASH {name}"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_args() {
        let split = |a| {
            let l = ListArgs::parse(a);
            (l.flags, l.path)
        };
        assert_eq!(split(None), (String::new(), None));
        assert_eq!(split(Some("-la")), ("la".into(), None));
        assert_eq!(split(Some("-l -a dir name")), ("la".into(), Some("dir name")));
        assert_eq!(split(Some("dir")), (String::new(), Some("dir")));
        assert!(ListArgs::parse(Some("-A x")).all());
        assert!(!ListArgs::parse(Some("-l x")).all());
    }

    #[test]
    fn passwords_are_masked_in_logged_lines() {
        assert_eq!(redact("PASS hunter2"), "PASS ****");
        assert_eq!(redact("pass hunter2"), "PASS ****");
        assert_eq!(redact("PASS"), "PASS ****");
        assert_eq!(redact("USER alice"), "USER alice");
        assert_eq!(redact("PASSX y"), "PASSX y");
    }
}
