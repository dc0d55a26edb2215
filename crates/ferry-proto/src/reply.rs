//! Replies: numeric codes, text, and the single- and multi-line wire formats (RFC 959 section 4.2).

use std::fmt;

/// A three-digit FTP reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(pub u16);

#[allow(missing_docs, reason = "the names say what the codes mean; the comments cite the RFC")]
impl ReplyCode {
    // RFC 959 section 4.2.2 unless noted.
    pub const RESTART_MARKER: Self = Self(110);
    pub const READY_IN: Self = Self(120);
    pub const ALREADY_OPEN: Self = Self(125);
    pub const FILE_STATUS_OK: Self = Self(150);
    pub const OK: Self = Self(200);
    pub const SUPERFLUOUS: Self = Self(202);
    pub const SYSTEM_STATUS: Self = Self(211);
    pub const DIRECTORY_STATUS: Self = Self(212);
    pub const FILE_STATUS: Self = Self(213);
    pub const HELP: Self = Self(214);
    pub const SYSTEM_TYPE: Self = Self(215);
    pub const SERVICE_READY: Self = Self(220);
    pub const CLOSING_CONTROL: Self = Self(221);
    pub const DATA_OPEN_NO_TRANSFER: Self = Self(225);
    pub const CLOSING_DATA: Self = Self(226);
    pub const ENTERING_PASSIVE: Self = Self(227);
    /// RFC 2428 section 3.
    pub const ENTERING_EXTENDED_PASSIVE: Self = Self(229);
    pub const LOGGED_IN: Self = Self(230);
    /// RFC 2228: security data exchange complete.
    pub const AUTH_OK: Self = Self(234);
    pub const FILE_ACTION_OK: Self = Self(250);
    pub const PATH_CREATED: Self = Self(257);
    pub const NEED_PASSWORD: Self = Self(331);
    pub const NEED_ACCOUNT: Self = Self(332);
    pub const PENDING_FURTHER_INFO: Self = Self(350);
    pub const SERVICE_NOT_AVAILABLE: Self = Self(421);
    pub const CANT_OPEN_DATA: Self = Self(425);
    pub const TRANSFER_ABORTED: Self = Self(426);
    pub const FILE_BUSY: Self = Self(450);
    pub const LOCAL_ERROR: Self = Self(451);
    pub const INSUFFICIENT_STORAGE: Self = Self(452);
    pub const SYNTAX_ERROR: Self = Self(500);
    pub const SYNTAX_ERROR_ARGS: Self = Self(501);
    pub const NOT_IMPLEMENTED: Self = Self(502);
    pub const BAD_SEQUENCE: Self = Self(503);
    pub const PARAM_NOT_IMPLEMENTED: Self = Self(504);
    /// RFC 4217: the data-protection level is not supported by the security policy.
    pub const PROT_NOT_SUPPORTED: Self = Self(521);
    /// RFC 2428 section 2: network protocol not supported.
    pub const NETWORK_PROTOCOL_NOT_SUPPORTED: Self = Self(522);
    pub const NOT_LOGGED_IN: Self = Self(530);
    /// RFC 2228: request denied for policy reasons.
    pub const POLICY_DENIED: Self = Self(534);
    /// RFC 2228: requested PROT level not supported by mechanism.
    pub const PROT_LEVEL_NOT_SUPPORTED: Self = Self(536);
    pub const FILE_UNAVAILABLE: Self = Self(550);
    pub const PAGE_TYPE_UNKNOWN: Self = Self(551);
    pub const EXCEEDED_STORAGE: Self = Self(552);
    pub const BAD_FILE_NAME: Self = Self(553);
    /// RFC 3659 section 5.5: restart position not valid.
    pub const INVALID_REST: Self = Self(554);

    /// Whether the code is a positive preliminary reply (1yz).
    pub fn is_preliminary(self) -> bool {
        (100..200).contains(&self.0)
    }
    /// Whether the code is a positive completion reply (2yz).
    pub fn is_completion(self) -> bool {
        (200..300).contains(&self.0)
    }
    /// Whether the code is a positive intermediate reply (3yz).
    pub fn is_intermediate(self) -> bool {
        (300..400).contains(&self.0)
    }
    /// Whether the code is a transient (4yz) or permanent (5yz) negative reply.
    pub fn is_negative(self) -> bool {
        self.0 >= 400
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

/// A reply: a code and one or more lines of text.
///
/// Built only with [`Reply::new`] and [`Reply::multi`] (or parsed): `non_exhaustive` keeps other
/// crates from writing one field by field, so a lint on those two functions finds every reply a
/// server builds outside its replies module.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The reply code.
    pub code: ReplyCode,
    /// The text lines; never empty. The first and last carry the code on the wire.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: ReplyCode, text: impl Into<String>) -> Self {
        Self { code, lines: vec![text.into()] }
    }

    /// A multi-line reply: `first` after `code-`, `middle` lines indented by one space, `last`
    /// after `code `.
    pub fn multi(code: ReplyCode, first: impl Into<String>, middle: Vec<String>, last: impl Into<String>) -> Self {
        let mut lines = Vec::with_capacity(middle.len() + 2);
        lines.push(first.into());
        lines.extend(middle);
        lines.push(last.into());
        Self { code, lines }
    }

    /// The text of all lines joined by newlines.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Appends the wire form to `out`.
    ///
    /// CR and LF inside a line (from a file name, say) are replaced so that they can never end the
    /// reply early: LF by NUL as RFC 2640 section 3.1 says for path names, a lone CR kept as it is
    /// unless followed by LF.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let code = self.code.to_string();
        let n = self.lines.len();
        for (i, line) in self.lines.iter().enumerate() {
            if i == 0 {
                out.extend_from_slice(code.as_bytes());
                out.push(if n == 1 { b' ' } else { b'-' });
            } else if i == n - 1 {
                out.extend_from_slice(code.as_bytes());
                out.push(b' ');
            } else if !line.starts_with(' ') {
                // Middle lines never start with a digit so no parser mistakes them for the end.
                out.push(b' ');
            }
            push_sanitized(out, line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

fn push_sanitized(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(if b == b'\n' || b == b'\r' { 0 } else { b });
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.encode()))
    }
}

/// Errors from [`ReplyParser`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line did not start with a three-digit code where one was required.
    #[error("malformed reply line: {0:?}")]
    Malformed(String),
    /// A reply grew beyond the parser's limit.
    #[error("reply too long")]
    TooLong,
}

/// Incremental parser for replies as a client reads them (RFC 959 section 4.2).
///
/// A multi-line reply starts with `xyz-` and ends at the first line that starts with the same
/// `xyz ` code; lines in between may be anything.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    open: Option<(ReplyCode, Vec<String>)>,
}

/// The longest reply (all lines together) a [`ReplyParser`] accepts.
pub const MAX_REPLY_BYTES: usize = 1 << 20;

impl ReplyParser {
    /// A new parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes read from the control connection.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Returns the next complete reply, `Ok(None)` when more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        loop {
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_REPLY_BYTES {
                    return Err(ReplyError::TooLong);
                }
                return Ok(None);
            };
            let mut raw: Vec<u8> = self.buf.drain(..=nl).collect();
            raw.pop();
            if raw.last() == Some(&b'\r') {
                raw.pop();
            }
            let line = String::from_utf8_lossy(&raw).into_owned();
            let code = parse_code(&line);
            match self.open.take() {
                None => {
                    let Some(code) = code else {
                        return Err(ReplyError::Malformed(line));
                    };
                    let sep = line.as_bytes().get(3).copied().unwrap_or(b' ');
                    let text = line.get(4..).unwrap_or("").to_string();
                    if sep == b'-' {
                        self.open = Some((code, vec![text]));
                    } else {
                        return Ok(Some(Reply { code, lines: vec![text] }));
                    }
                }
                Some((open, mut lines)) => {
                    let total: usize = lines.iter().map(|l| l.len() + 1).sum();
                    if total > MAX_REPLY_BYTES {
                        return Err(ReplyError::TooLong);
                    }
                    if code == Some(open) && line.as_bytes().get(3).is_none_or(|&b| b == b' ') {
                        lines.push(line.get(4..).unwrap_or("").to_string());
                        return Ok(Some(Reply { code: open, lines }));
                    }
                    lines.push(line.strip_prefix(' ').unwrap_or(&line).to_string());
                    self.open = Some((open, lines));
                }
            }
        }
    }
}

fn parse_code(line: &str) -> Option<ReplyCode> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !(b'1'..=b'5').contains(&b[0]) {
        return None;
    }
    if b.len() > 3 && b[3] != b' ' && b[3] != b'-' {
        return None;
    }
    line[..3].parse().ok().map(ReplyCode)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests of the encoder build replies")]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        assert_eq!(Reply::new(ReplyCode::SYSTEM_TYPE, "UNIX Type: L8").encode(), b"215 UNIX Type: L8\r\n");
    }

    #[test]
    fn multi_line_format() {
        let r = Reply::multi(ReplyCode::SYSTEM_STATUS, "Features:", vec!["EPSV".into(), "211 x".into()], "End");
        assert_eq!(r.encode(), b"211-Features:\r\n EPSV\r\n 211 x\r\n211 End\r\n");
    }

    #[test]
    fn newline_in_text_cannot_end_reply() {
        let r = Reply::new(ReplyCode::FILE_UNAVAILABLE, "a\r\n230 fake");
        assert_eq!(r.encode(), b"550 a\x00\x00230 fake\r\n");
    }

    #[test]
    fn parse_round_trip_any_split() {
        let r = Reply::multi(ReplyCode::SYSTEM_STATUS, "Features:", vec!["EPSV".into(), "MDTM".into()], "End");
        let wire = [r.encode(), Reply::new(ReplyCode(226), "ok").encode()].concat();
        for cut in 0..wire.len() {
            let mut p = ReplyParser::new();
            p.feed(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(x) = p.next_reply().unwrap() {
                got.push(x);
            }
            p.feed(&wire[cut..]);
            while let Some(x) = p.next_reply().unwrap() {
                got.push(x);
            }
            assert_eq!(got.len(), 2, "cut {cut}");
            assert_eq!(got[0].lines, vec!["Features:", "EPSV", "MDTM", "End"]);
            assert_eq!(got[1].code, ReplyCode(226));
        }
    }

    #[test]
    fn middle_lines_with_other_codes() {
        let mut p = ReplyParser::new();
        p.feed(b"230-Welcome\r\n230-still\r\n220 other\r\n230 done\r\n");
        let r = p.next_reply().unwrap().unwrap();
        assert_eq!(r.code, ReplyCode::LOGGED_IN);
        assert_eq!(r.lines.len(), 4);
    }

    #[test]
    fn bare_code_and_malformed() {
        let mut p = ReplyParser::new();
        p.feed(b"200\r\nhello\r\n");
        assert_eq!(p.next_reply().unwrap().unwrap().code, ReplyCode::OK);
        assert!(p.next_reply().is_err());
    }
}
