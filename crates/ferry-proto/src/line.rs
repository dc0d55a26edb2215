//! The control connection's line splitter (RFC 959 section 4.1.3, RFC 854 Telnet).
//!
//! Commands arrive as Telnet lines ended by CRLF. [`LineSplitter`] turns a byte stream into lines:
//! it accepts a bare LF as well as CRLF (many clients and scripts send it), removes Telnet
//! negotiation and the `IAC IP IAC DM` "synch" that clients send before `ABOR`, un-doubles `IAC IAC`,
//! and never holds more than a fixed number of bytes, whatever the peer sends.

/// Telnet "interpret as command" (RFC 854).
const IAC: u8 = 255;
/// Telnet option negotiation verbs, each followed by one option byte.
const WILL: u8 = 251;
const WONT: u8 = 252;
const DO: u8 = 253;
const DONT: u8 = 254;
/// Telnet subnegotiation begin / end.
const SB: u8 = 250;
const SE: u8 = 240;

/// The default longest line accepted, in bytes (without the line ending).
pub const DEFAULT_MAX_LINE: usize = 4096;

/// One event from the splitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// A complete line, without its CR/LF.
    Line(Vec<u8>),
    /// The peer sent more than the maximum without ending the line; the rest of that line is
    /// discarded. Reported once per over-long line, as soon as the limit is crossed.
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    Data,
    Iac,
    Option,
    Sub,
    SubIac,
}

/// A bounded, incremental CRLF line splitter with Telnet IAC handling.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    telnet: Telnet,
    discarding: bool,
    ready: std::collections::VecDeque<LineEvent>,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl LineSplitter {
    /// A splitter that accepts lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { buf: Vec::new(), max, telnet: Telnet::Data, discarding: false, ready: std::collections::VecDeque::new() }
    }

    /// Feeds bytes read from the connection. Complete lines become available from [`Self::next_event`].
    pub fn feed(&mut self, data: &[u8]) {
        for &b in data {
            self.telnet = match self.telnet {
                Telnet::Data if b == IAC => Telnet::Iac,
                Telnet::Data => {
                    self.push(b);
                    Telnet::Data
                }
                Telnet::Iac => match b {
                    IAC => {
                        self.push(IAC);
                        Telnet::Data
                    }
                    WILL | WONT | DO | DONT => Telnet::Option,
                    SB => Telnet::Sub,
                    // IP, DM, AO, AYT, NOP, ...: single-byte Telnet commands, dropped.
                    _ => Telnet::Data,
                },
                Telnet::Option => Telnet::Data,
                Telnet::Sub | Telnet::SubIac if b == b'\n' => {
                    // FTP negotiates no Telnet option, so a subnegotiation has no business running
                    // into a line ending: a stray `IAC SB` must not swallow every command after it.
                    self.push(b);
                    Telnet::Data
                }
                Telnet::Sub if b == IAC => Telnet::SubIac,
                Telnet::Sub => Telnet::Sub,
                Telnet::SubIac if b == SE => Telnet::Data,
                Telnet::SubIac => Telnet::Sub,
            };
        }
    }

    fn push(&mut self, b: u8) {
        if b == b'\n' {
            if self.discarding {
                self.discarding = false;
                self.buf.clear();
            } else {
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                // The buffer may hold max + 1 bytes (room for the CR); without a CR that is one too many.
                self.ready.push_back(if line.len() > self.max { LineEvent::TooLong } else { LineEvent::Line(line) });
            }
            return;
        }
        if self.discarding {
            return;
        }
        // One extra byte is allowed for the CR of a CRLF ending.
        if self.buf.len() > self.max {
            self.discarding = true;
            self.buf = Vec::new();
            self.ready.push_back(LineEvent::TooLong);
            return;
        }
        self.buf.push(b);
    }

    /// The next complete line or error, if any.
    pub fn next_event(&mut self) -> Option<LineEvent> {
        self.ready.pop_front()
    }

    /// Bytes of an unfinished line held now (bounded by the maximum line length).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[&[u8]], max: usize) -> Vec<LineEvent> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in input {
            s.feed(chunk);
            while let Some(e) = s.next_event() {
                out.push(e);
            }
        }
        out
    }

    fn l(s: &str) -> LineEvent {
        LineEvent::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn crlf_and_bare_lf() {
        assert_eq!(lines(&[b"USER a\r\nPASS b\nNOOP\r\n"], 100), vec![l("USER a"), l("PASS b"), l("NOOP")]);
    }

    #[test]
    fn split_anywhere() {
        assert_eq!(lines(&[b"US", b"ER a\r", b"\nQU", b"IT\r\n"], 100), vec![l("USER a"), l("QUIT")]);
    }

    #[test]
    fn pipelined_commands_in_one_packet() {
        assert_eq!(lines(&[b"NOOP\r\nNOOP\r\nNOOP\r\n"], 100).len(), 3);
    }

    #[test]
    fn telnet_synch_before_abor_is_removed() {
        // IAC IP, IAC DM (the urgent "synch"), then ABOR, as RFC 959 section 4.1.3 describes.
        assert_eq!(lines(&[&[255, 244, 255, 242], b"ABOR\r\n"], 100), vec![l("ABOR")]);
    }

    #[test]
    fn telnet_negotiation_and_doubled_iac() {
        assert_eq!(
            lines(&[&[255, 251, 1], b"RETR a", &[255, 255], b"b\r\n"], 100),
            vec![LineEvent::Line(b"RETR a\xffb".to_vec())]
        );
        assert_eq!(lines(&[&[255, 250, 24, 1, 255, 240], b"NOOP\r\n"], 100), vec![l("NOOP")]);
    }

    #[test]
    fn a_subnegotiation_ends_with_the_line() {
        // IAC SB ... IAC SE is dropped; an unterminated IAC SB (found by the session fuzz
        // target: the commands after it went unanswered) ends at the line ending.
        assert_eq!(lines(&[&[255, 250, 1, 2, 255, 240], b"NOOP\r\n"], 100), vec![l("NOOP")]);
        assert_eq!(
            lines(&[&[253, 255, 250], b"\r\nNOOP\r\nQUIT\r\n"], 100),
            vec![LineEvent::Line(vec![253]), l("NOOP"), l("QUIT")]
        );
    }

    #[test]
    fn too_long_is_reported_once_and_recovers() {
        let long = vec![b'A'; 100];
        let got = lines(&[&long, &long, b"\r\nNOOP\r\n"], 10);
        assert_eq!(got, vec![LineEvent::TooLong, l("NOOP")]);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut s = LineSplitter::new(16);
        for _ in 0..1000 {
            s.feed(&[b'x'; 1024]);
            assert!(s.pending() <= 17);
        }
    }

    #[test]
    fn one_over_max_without_cr_is_too_long() {
        // The byte kept for a CR must not let an 11-byte line through a 10-byte limit.
        assert_eq!(lines(&[b"AAAAAAAAAAA\nNOOP\n"], 10), vec![LineEvent::TooLong, l("NOOP")]);
        assert_eq!(lines(&[b"AAAAAAAAAA\r\n"], 10), vec![l("AAAAAAAAAA")]);
    }

    #[test]
    fn exactly_max_is_accepted() {
        let line = "A".repeat(10);
        assert_eq!(lines(&[format!("{line}\r\n").as_bytes()], 10), vec![l(&line)]);
    }
}
