//! The PROXY protocol on the server side: which peers must send a header (the trusted load
//! balancers), and reading that header off a socket without touching the bytes behind it.
//!
//! The header format itself is [`ferry_proto::proxy`]. The accept loop reads the header of a
//! control connection from a trusted address before the greeting (`server.rs`); passive data
//! connections from a trusted address are read in [`crate::datachan`].

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ferry_proto::proxy::{self, Header, Parse};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

/// An address or a CIDR range, `ADDR` or `ADDR/BITS` (an IPv4-mapped IPv6 range is kept as the
/// IPv4 range it stands for, as peer addresses are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IpNet {
    addr: IpAddr,
    bits: u8,
}

impl IpNet {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(u32::from(ip), self.bits) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(u128::from(ip), self.bits) == u128::from(net),
            _ => false,
        }
    }
}

/// `x` with all but its first `bits` bits cleared.
fn mask_v4(x: u32, bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        x & (u32::MAX << (32 - u32::from(bits)))
    }
}

/// `x` with all but its first `bits` bits cleared.
fn mask_v6(x: u128, bits: u8) -> u128 {
    if bits == 0 {
        0
    } else {
        x & (u128::MAX << (128 - u32::from(bits)))
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{s:?}: expected an IP address or ADDR/BITS"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max && b.bytes().all(|c| c.is_ascii_digit()) => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        let (addr, bits) = match addr {
            IpAddr::V6(v6) if bits >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), bits - 96),
                None => (addr, bits),
            },
            _ => (addr, bits),
        };
        let net = Self { addr, bits };
        let masked = match addr {
            IpAddr::V4(a) => IpAddr::V4(mask_v4(u32::from(a), bits).into()),
            IpAddr::V6(a) => IpAddr::V6(mask_v6(u128::from(a), bits).into()),
        };
        if masked != addr {
            return Err(format!("{s:?}: bits are set beyond the /{bits} prefix (did you mean {masked}/{bits}?)"));
        }
        Ok(net)
    }
}

impl TryFrom<String> for IpNet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map_err(|e| format!("proxy_protocol.trusted: {e}"))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.bits == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.bits)
        }
    }
}

/// The load balancers whose connections start with a PROXY header, and how long the header may
/// take. Built only when the trusted list is not empty.
#[derive(Debug)]
pub(crate) struct ProxyTrust {
    nets: Vec<IpNet>,
    header_timeout: Duration,
}

/// Why no usable header was read from a trusted peer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    /// Nothing complete within the timeout.
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    /// The peer closed the connection after this many bytes.
    #[error("connection closed after {0} bytes of a PROXY header")]
    Closed(usize),
    /// The bytes are not a valid header.
    #[error("invalid PROXY header: {0}")]
    Invalid(proxy::Invalid),
    /// A socket error.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

impl ProxyTrust {
    /// The trust list of a configuration; `None` when PROXY protocol is off (empty list).
    pub fn from_config(c: &crate::config::ProxyProtocolConfig) -> Option<Self> {
        if c.trusted.is_empty() {
            return None;
        }
        Some(Self { nets: c.trusted.clone(), header_timeout: Duration::from_secs(c.header_timeout_secs) })
    }

    /// Whether connections from `ip` must start with a PROXY header.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// Reads one header within the timeout, byte-exact: nothing after it is consumed.
    pub async fn read_header<R: AsyncRead + Unpin>(&self, stream: &mut R) -> Result<Header, HeaderError> {
        match tokio::time::timeout(self.header_timeout, read_header(stream)).await {
            Ok(r) => r,
            Err(_) => Err(HeaderError::Timeout(self.header_timeout)),
        }
    }
}

/// Reads `needed` bytes at most at a time until the header is complete: the parser's lower bound
/// guarantees that no read goes past it (v1 ends at its CRLF, v2 after the length in bytes 15-16).
async fn read_header<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Header, HeaderError> {
    let mut buf = Vec::with_capacity(proxy::V1_MAX_LEN + 1);
    loop {
        match proxy::parse(&buf) {
            Parse::Parsed(h) if h.len == buf.len() => return Ok(h),
            Parse::Parsed(h) => {
                // Cannot happen (the parser's bound is tested and fuzzed); the stream is off.
                return Err(HeaderError::Io(std::io::Error::other(format!(
                    "read {} bytes for a {}-byte header",
                    buf.len(),
                    h.len
                ))));
            }
            Parse::Invalid(e) => return Err(HeaderError::Invalid(e)),
            Parse::Incomplete { needed } => {
                let start = buf.len();
                buf.resize(start + needed, 0);
                let n = stream.read(&mut buf[start..]).await?;
                buf.truncate(start + n);
                if n == 0 {
                    return Err(HeaderError::Closed(start));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::proxy::{encode, Addresses, Version};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn nets() {
        assert!(net("10.0.0.5").contains("10.0.0.5".parse().unwrap()));
        assert!(!net("10.0.0.5").contains("10.0.0.6".parse().unwrap()));
        assert!(net("10.0.1.0/24").contains("10.0.1.200".parse().unwrap()));
        assert!(net("10.0.1.0/24").contains("::ffff:10.0.1.7".parse().unwrap()));
        assert!(!net("10.0.1.0/24").contains("10.0.2.1".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("192.0.2.1".parse().unwrap()));
        assert!(!net("0.0.0.0/0").contains("::1".parse().unwrap()));
        assert!(net("2001:db8::/32").contains("2001:db8:1::1".parse().unwrap()));
        assert!(net("::/0").contains("2001:db8:1::1".parse().unwrap()));
        assert_eq!(net("::ffff:10.0.0.0/104"), net("10.0.0.0/8"));
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("127.0.0.3").to_string(), "127.0.0.3");
        for bad in ["10.0.1.5/24", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+8", "example.com", "::1/129", ""] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
        let e = "10.0.1.5/24".parse::<IpNet>().unwrap_err();
        assert!(e.contains("10.0.1.0/24"), "{e}");
    }

    fn trust() -> ProxyTrust {
        ProxyTrust { nets: vec![net("127.0.0.3")], header_timeout: Duration::from_millis(500) }
    }

    #[tokio::test]
    async fn reads_the_header_and_nothing_more() {
        let header = encode(
            Version::V2,
            &Addresses::Proxied {
                source: "192.0.2.7:5000".parse().unwrap(),
                destination: "10.0.0.1:21".parse().unwrap(),
            },
        );
        for rest in [&b"USER a\r\n"[..], b""] {
            let mut wire = header.clone();
            wire.extend_from_slice(rest);
            let mut r = &wire[..];
            let h = trust().read_header(&mut r).await.unwrap();
            assert_eq!(h.len, header.len());
            assert_eq!(r, rest, "the bytes after the header are left unread");
        }
        // v1 arriving a byte at a time, with the client's data right behind.
        let (mut a, mut b) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for byte in b"PROXY TCP4 192.0.2.7 10.0.0.1 5000 21\r\nUSER a\r\n" {
                a.write_all(&[*byte]).await.unwrap();
            }
            a
        });
        let h = trust().read_header(&mut b).await.unwrap();
        assert_eq!(h.len, 39);
        let mut rest = [0u8; 8];
        b.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"USER a\r\n");
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn errors() {
        let mut r = &b"USER a\r\n"[..];
        assert!(matches!(trust().read_header(&mut r).await, Err(HeaderError::Invalid(_))));
        let mut r = &b"PROXY TCP4 1.2"[..];
        assert!(matches!(trust().read_header(&mut r).await, Err(HeaderError::Closed(14))));
        let (_a, mut b) = tokio::io::duplex(64);
        assert!(matches!(trust().read_header(&mut b).await, Err(HeaderError::Timeout(_))));
    }
}
