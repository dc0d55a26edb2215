//! PROXY protocol headers, versions 1 (text) and 2 (binary), as HAProxy's `proxy-protocol.txt`
//! specifies them: a load balancer that relays a TCP connection sends one header before the
//! client's first byte, naming the client's address (the source) and the address the client
//! connected to (the destination).
//!
//! [`parse`] looks at the bytes received so far and says whether they hold a complete header, a
//! valid beginning of one ([`Parse::Incomplete`], with how many more bytes the header needs at
//! least) or something else. Reading exactly `needed` bytes at a time never reads past the
//! header, so a receiver can take the header off a socket without buffering the stream behind it
//! (for FTP that matters: the next bytes belong to the command stream or a TLS handshake).
//!
//! What is accepted (section numbers of `proxy-protocol.txt`):
//! - v1 (2.1): `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n`, at most 107 bytes with the CRLF;
//!   exactly one space between fields, no leading zeros in ports, a lone CR or LF is refused.
//!   `PROXY UNKNOWN ...\r\n` ignores the rest of the line and gives [`Addresses::Unknown`].
//! - v2 (2.2): the 12-byte signature, version 2, command LOCAL or PROXY, the address block whose
//!   length is in bytes 15-16. TCP over IPv4 (`0x11`) and IPv6 (`0x21`) give addresses. The other
//!   defined families (AF_UNSPEC, UDP, AF_UNIX) give [`Addresses::Unknown`]: the specification
//!   lets a receiver fall back to "no address" for combinations it does not implement. Undefined
//!   version, command, family or transport values are invalid. TLVs after the addresses are
//!   skipped, not checked. LOCAL ignores the address block (and its family), as the
//!   specification says.
//!
//! [`encode`] writes headers (for tests, and for anything that relays connections itself).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every v2 header starts with (section 2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v1 header, CRLF included (section 2.1).
pub const V1_MAX_LEN: usize = 107;

/// The fixed part of a v2 header: signature, version and command, family, address length.
pub const V2_FIXED_LEN: usize = 16;

/// The v1 prefix.
const V1_PREFIX: &[u8] = b"PROXY ";

/// The shortest complete headers: `PROXY UNKNOWN\r\n` and the fixed v2 part.
const MIN_LEN: usize = 15;

/// The protocol version of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text format.
    V1,
    /// The binary format.
    V2,
}

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addresses {
    /// A relayed TCP connection: the client's address and the address it connected to.
    Proxied {
        /// The client (layer 3 and 4 source).
        source: SocketAddr,
        /// What the client connected to (layer 3 and 4 destination).
        destination: SocketAddr,
    },
    /// v2 `LOCAL`: the balancer's own connection, such as a health check (section 2.2).
    Local,
    /// v1 `UNKNOWN`, or v2 `PROXY` with a family or transport other than TCP over IPv4/IPv6: the
    /// header is valid but names no usable address.
    Unknown,
}

/// A complete, valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Its format.
    pub version: Version,
    /// Its length in bytes: the connection's own data starts at this offset.
    pub len: usize,
    /// What it says.
    pub addresses: Addresses,
}

/// Why bytes are not a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Starts with neither `PROXY ` nor the v2 signature.
    #[error("not a PROXY protocol header")]
    NotProxy,
    /// A v1 line without CRLF in its first 107 bytes.
    #[error("PROXY v1 line longer than 107 bytes")]
    V1TooLong,
    /// A v1 line that does not match the format.
    #[error("malformed PROXY v1 line")]
    V1Malformed,
    /// A v2 header with a version other than 2.
    #[error("PROXY v2 header with version {0}")]
    V2Version(u8),
    /// A v2 command other than LOCAL (0) and PROXY (1).
    #[error("PROXY v2 header with command {0}")]
    V2Command(u8),
    /// A v2 family/transport byte with an undefined family (above 3) or transport (above 2).
    #[error("PROXY v2 header with family/transport byte {0:#04x}")]
    V2Family(u8),
    /// A v2 address block shorter than its family's addresses.
    #[error("PROXY v2 address block of {len} bytes is too short for family/transport {family:#04x}")]
    V2AddressTooShort {
        /// The family/transport byte.
        family: u8,
        /// The announced length.
        len: u16,
    },
}

/// The result of [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// A valid beginning: the header has at least `needed` more bytes (always at least 1), so
    /// reading exactly that many never reads past it.
    Incomplete {
        /// A lower bound of the bytes still missing.
        needed: usize,
    },
    /// Not a valid header (decided as soon as the offending byte is there).
    Invalid(Invalid),
    /// A complete header; `buf[header.len..]` is the connection's own data.
    Parsed(Header),
}

/// Parses the header at the start of `buf` (the bytes received so far on a connection).
pub fn parse(buf: &[u8]) -> Parse {
    if buf.is_empty() {
        return Parse::Incomplete { needed: MIN_LEN };
    }
    if starts_compatible(buf, V1_PREFIX) {
        parse_v1(buf)
    } else if starts_compatible(buf, &V2_SIGNATURE) {
        parse_v2(buf)
    } else {
        Parse::Invalid(Invalid::NotProxy)
    }
}

/// Whether bytes begin like a PROXY header, for a server that does not expect one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detect {
    /// The bytes are a strict prefix of `PROXY ` or of the v2 signature: more are needed to tell.
    NeedMore,
    /// They start with `PROXY ` (v1) or with the v2 signature.
    Header(Version),
    /// They cannot be the start of a header.
    NotHeader,
}

/// Tells whether `buf` starts with a PROXY header's fixed prefix (`PROXY ` or the v2
/// signature), without validating the rest.
pub fn detect(buf: &[u8]) -> Detect {
    for (prefix, version) in [(V1_PREFIX, Version::V1), (&V2_SIGNATURE[..], Version::V2)] {
        if buf.starts_with(prefix) {
            return Detect::Header(version);
        }
        if !buf.is_empty() && prefix.starts_with(buf) {
            return Detect::NeedMore;
        }
    }
    if buf.is_empty() {
        Detect::NeedMore
    } else {
        Detect::NotHeader
    }
}

/// Whether `have` and `want` agree on their common length.
fn starts_compatible(have: &[u8], want: &[u8]) -> bool {
    let n = have.len().min(want.len());
    have[..n] == want[..n]
}

fn parse_v1(buf: &[u8]) -> Parse {
    // The protocol word, as far as it has arrived, must begin a known one.
    if buf.len() > V1_PREFIX.len() {
        let word = &buf[V1_PREFIX.len()..];
        let known = [&b"TCP4 "[..], b"TCP6 ", b"UNKNOWN ", b"UNKNOWN\r"];
        if !known.iter().any(|k| starts_compatible(word, k)) {
            return Parse::Invalid(Invalid::V1Malformed);
        }
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    for (i, &b) in window.iter().enumerate() {
        match b {
            b'\n' => return Parse::Invalid(Invalid::V1Malformed),
            b'\r' => {
                return match window.get(i + 1) {
                    Some(b'\n') => match parse_v1_line(&buf[..i]) {
                        Ok(addresses) => Parse::Parsed(Header { version: Version::V1, len: i + 2, addresses }),
                        Err(e) => Parse::Invalid(e),
                    },
                    Some(_) => Parse::Invalid(Invalid::V1Malformed),
                    None if i + 1 < V1_MAX_LEN => Parse::Incomplete { needed: 1 },
                    None => Parse::Invalid(Invalid::V1TooLong),
                };
            }
            _ => {}
        }
    }
    // No CR yet: the CRLF is still to come, and the line is at least as long as the shortest one
    // of its protocol.
    let shortest = if buf.starts_with(b"PROXY TCP4 ") {
        // "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"
        32
    } else if buf.starts_with(b"PROXY TCP6 ") {
        // "PROXY TCP6 :: :: 0 0\r\n"
        22
    } else {
        MIN_LEN
    };
    let needed = shortest.saturating_sub(buf.len()).max(2);
    if buf.len() + needed > V1_MAX_LEN {
        return Parse::Invalid(Invalid::V1TooLong);
    }
    Parse::Incomplete { needed }
}

/// Parses a complete v1 line without its CRLF.
fn parse_v1_line(line: &[u8]) -> Result<Addresses, Invalid> {
    let rest = line.strip_prefix(V1_PREFIX).ok_or(Invalid::V1Malformed)?;
    if rest == b"UNKNOWN" || rest.starts_with(b"UNKNOWN ") {
        // "The receiver must ignore anything presented before the CRLF is found."
        return Ok(Addresses::Unknown);
    }
    let text = std::str::from_utf8(rest).map_err(|_| Invalid::V1Malformed)?;
    let fields: Vec<&str> = text.split(' ').collect();
    let [proto, src, dst, sport, dport] = fields[..] else {
        return Err(Invalid::V1Malformed);
    };
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (v1_ipv4(src)?.into(), v1_ipv4(dst)?.into()),
        "TCP6" => (v1_ipv6(src)?.into(), v1_ipv6(dst)?.into()),
        _ => return Err(Invalid::V1Malformed),
    };
    Ok(Addresses::Proxied {
        source: SocketAddr::new(src, v1_port(sport)?),
        destination: SocketAddr::new(dst, v1_port(dport)?),
    })
}

/// Dotted decimal, no leading zeros (std's parser refuses them).
fn v1_ipv4(s: &str) -> Result<Ipv4Addr, Invalid> {
    s.parse().map_err(|_| Invalid::V1Malformed)
}

fn v1_ipv6(s: &str) -> Result<Ipv6Addr, Invalid> {
    s.parse().map_err(|_| Invalid::V1Malformed)
}

/// Decimal 0 to 65535 without sign or leading zeros.
fn v1_port(s: &str) -> Result<u16, Invalid> {
    let digits_only = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (s.len() > 1 && s.starts_with('0')) {
        return Err(Invalid::V1Malformed);
    }
    s.parse().map_err(|_| Invalid::V1Malformed)
}

const CMD_LOCAL: u8 = 0;
const CMD_PROXY: u8 = 1;
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;

fn parse_v2(buf: &[u8]) -> Parse {
    let command = match buf.get(12) {
        None => return Parse::Incomplete { needed: V2_FIXED_LEN - buf.len() },
        Some(&vc) if vc >> 4 != 2 => return Parse::Invalid(Invalid::V2Version(vc >> 4)),
        Some(&vc) if vc & 0x0f > CMD_PROXY => return Parse::Invalid(Invalid::V2Command(vc & 0x0f)),
        Some(&vc) => vc & 0x0f,
    };
    let family = match buf.get(13) {
        None => return Parse::Incomplete { needed: V2_FIXED_LEN - buf.len() },
        Some(&f) => f,
    };
    // LOCAL ignores the family; PROXY must use a defined one.
    if command == CMD_PROXY && (family >> 4 > 3 || family & 0x0f > 2) {
        return Parse::Invalid(Invalid::V2Family(family));
    }
    if buf.len() < V2_FIXED_LEN {
        return Parse::Incomplete { needed: V2_FIXED_LEN - buf.len() };
    }
    let addr_len = u16::from_be_bytes([buf[14], buf[15]]);
    let need = match (command, family) {
        (CMD_PROXY, TCP4) => 12,
        (CMD_PROXY, TCP6) => 36,
        _ => 0,
    };
    if addr_len < need {
        return Parse::Invalid(Invalid::V2AddressTooShort { family, len: addr_len });
    }
    let len = V2_FIXED_LEN + usize::from(addr_len);
    if buf.len() < len {
        return Parse::Incomplete { needed: len - buf.len() };
    }
    let a = &buf[V2_FIXED_LEN..len];
    let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
    let addresses = match (command, family) {
        (CMD_LOCAL, _) => Addresses::Local,
        (_, TCP4) => {
            let ip = |i: usize| IpAddr::from([a[i], a[i + 1], a[i + 2], a[i + 3]]);
            Addresses::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        (_, TCP6) => {
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i..i + 16]);
                IpAddr::from(o)
            };
            Addresses::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        _ => Addresses::Unknown,
    };
    Parse::Parsed(Header { version: Version::V2, len, addresses })
}

/// Writes a header.
///
/// Addresses of different families are both written as IPv6 (an IPv4 address as its IPv4-mapped
/// form). v1 has no LOCAL command: [`Addresses::Local`] is written as `PROXY UNKNOWN\r\n`, as
/// [`Addresses::Unknown`] is; in v2, `Unknown` is a PROXY command with family AF_UNSPEC.
pub fn encode(version: Version, addresses: &Addresses) -> Vec<u8> {
    let pair = match *addresses {
        Addresses::Proxied { source, destination } => match (source.ip(), destination.ip()) {
            (IpAddr::V4(_), IpAddr::V4(_)) => Some((source, destination)),
            (s, d) => Some((
                SocketAddr::new(IpAddr::V6(as_v6(s)), source.port()),
                SocketAddr::new(IpAddr::V6(as_v6(d)), destination.port()),
            )),
        },
        Addresses::Local | Addresses::Unknown => None,
    };
    match version {
        Version::V1 => match pair {
            Some((s, d)) => {
                let proto = if s.is_ipv4() { "TCP4" } else { "TCP6" };
                format!("PROXY {proto} {} {} {} {}\r\n", s.ip(), d.ip(), s.port(), d.port()).into_bytes()
            }
            None => b"PROXY UNKNOWN\r\n".to_vec(),
        },
        Version::V2 => {
            let mut out = V2_SIGNATURE.to_vec();
            match (addresses, pair) {
                (Addresses::Local, _) => out.extend_from_slice(&[0x20, 0x00, 0, 0]),
                (_, None) => out.extend_from_slice(&[0x21, 0x00, 0, 0]),
                (_, Some((s, d))) => {
                    match (s.ip(), d.ip()) {
                        (IpAddr::V4(si), IpAddr::V4(di)) => {
                            out.extend_from_slice(&[0x21, TCP4, 0, 12]);
                            out.extend_from_slice(&si.octets());
                            out.extend_from_slice(&di.octets());
                        }
                        (si, di) => {
                            out.extend_from_slice(&[0x21, TCP6, 0, 36]);
                            out.extend_from_slice(&as_v6(si).octets());
                            out.extend_from_slice(&as_v6(di).octets());
                        }
                    }
                    out.extend_from_slice(&s.port().to_be_bytes());
                    out.extend_from_slice(&d.port().to_be_bytes());
                }
            }
            out
        }
    }
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

#[cfg(test)]
mod tests;
