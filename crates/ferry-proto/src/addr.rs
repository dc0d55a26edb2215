//! Data-connection addresses: `PORT`/`227` (RFC 959) and `EPRT`/`EPSV`/`229` (RFC 2428).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

/// Errors from the address parsers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// The argument is not of the form the command requires.
    #[error("malformed address argument")]
    Malformed,
    /// `EPRT` named a network protocol other than 1 (IPv4) or 2 (IPv6).
    #[error("network protocol {0} not supported")]
    UnknownProtocol(u32),
}

/// Parses the `PORT` argument `h1,h2,h3,h4,p1,p2`: the port is `p1 * 256 + p2` (RFC 959 section 4.1.2).
pub fn parse_port(arg: &str) -> Result<SocketAddrV4, AddrError> {
    let mut n = [0u8; 6];
    let mut parts = arg.trim().split(',');
    for slot in &mut n {
        let part = parts.next().ok_or(AddrError::Malformed)?.trim();
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddrError::Malformed);
        }
        *slot = part.parse().map_err(|_| AddrError::Malformed)?;
    }
    if parts.next().is_some() {
        return Err(AddrError::Malformed);
    }
    Ok(SocketAddrV4::new(Ipv4Addr::new(n[0], n[1], n[2], n[3]), u16::from(n[4]) * 256 + u16::from(n[5])))
}

/// Formats an address as `h1,h2,h3,h4,p1,p2`, for `PORT` and inside the `227` reply.
pub fn format_port(addr: SocketAddrV4) -> String {
    let [a, b, c, d] = addr.ip().octets();
    let p = addr.port();
    format!("{a},{b},{c},{d},{},{}", p >> 8, p & 0xff)
}

/// Finds the `h1,h2,h3,h4,p1,p2` address in a `227` reply text, such as
/// `Entering Passive Mode (192,168,120,240,232,151).` (the parentheses are optional in practice).
pub fn parse_pasv_reply(text: &str) -> Result<SocketAddrV4, AddrError> {
    // Take the first run of digits and commas that parses as six numbers.
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b',' || bytes[i] == b' ') {
                i += 1;
            }
            if let Ok(addr) = parse_port(text[start..i].trim_end_matches([',', ' '])) {
                return Ok(addr);
            }
        }
        i += 1;
    }
    Err(AddrError::Malformed)
}

/// RFC 2428 network protocol numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetProto {
    /// 1: IPv4.
    V4,
    /// 2: IPv6.
    V6,
}

impl NetProto {
    /// The protocol of an IP address (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The RFC 2428 number.
    pub fn number(self) -> u32 {
        match self {
            Self::V4 => 1,
            Self::V6 => 2,
        }
    }
}

/// Parses the `EPRT` argument `<d>proto<d>addr<d>port<d>` (RFC 2428 section 2), where `<d>` is any
/// printable ASCII character (usually `|`).
pub fn parse_eprt(arg: &str) -> Result<SocketAddr, AddrError> {
    let arg = arg.trim();
    let d = arg.chars().next().ok_or(AddrError::Malformed)?;
    if !(33..=126).contains(&(d as u32)) || d.is_ascii_digit() {
        return Err(AddrError::Malformed);
    }
    let fields: Vec<&str> = arg.split(d).collect();
    // "", proto, addr, port, ""
    if fields.len() != 5 || !fields[0].is_empty() || !fields[4].is_empty() {
        return Err(AddrError::Malformed);
    }
    let proto: u32 = parse_small(fields[1])?;
    let port: u16 = parse_small(fields[3])?;
    let ip: IpAddr = match proto {
        1 => IpAddr::V4(fields[2].parse::<Ipv4Addr>().map_err(|_| AddrError::Malformed)?),
        2 => IpAddr::V6(fields[2].parse::<Ipv6Addr>().map_err(|_| AddrError::Malformed)?),
        other => return Err(AddrError::UnknownProtocol(other)),
    };
    Ok(SocketAddr::new(ip, port))
}

fn parse_small<T: std::str::FromStr>(s: &str) -> Result<T, AddrError> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::Malformed);
    }
    s.parse().map_err(|_| AddrError::Malformed)
}

/// Formats an `EPRT` argument with the `|` delimiter.
pub fn format_eprt(addr: SocketAddr) -> String {
    let proto = NetProto::of(addr.ip()).number();
    format!("|{proto}|{}|{}|", addr.ip().to_canonical(), addr.port())
}

/// The argument of `EPSV` (RFC 2428 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: the same protocol as the control connection.
    Default,
    /// A network protocol number; only 1 and 2 are known, others get `522`.
    Proto(u32),
    /// `EPSV ALL`: from now on only `EPSV` may set up data connections.
    All,
}

impl EpsvArg {
    /// Parses the optional argument.
    pub fn parse(arg: Option<&str>) -> Result<Self, AddrError> {
        match arg.map(str::trim) {
            None | Some("") => Ok(Self::Default),
            Some(a) if a.eq_ignore_ascii_case("ALL") => Ok(Self::All),
            Some(a) => parse_small(a).map(Self::Proto),
        }
    }
}

impl fmt::Display for EpsvArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => Ok(()),
            Self::Proto(n) => write!(f, "{n}"),
            Self::All => f.write_str("ALL"),
        }
    }
}

/// Formats the `229` reply's address part, `(|||port|)`.
pub fn format_epsv(port: u16) -> String {
    format!("(|||{port}|)")
}

/// Finds the port in a `229` reply text such as `Entering Extended Passive Mode (|||59543|)`.
pub fn parse_epsv_reply(text: &str) -> Result<u16, AddrError> {
    let open = text.find('(').ok_or(AddrError::Malformed)?;
    let close = text[open..].find(')').ok_or(AddrError::Malformed)? + open;
    let inner = &text[open + 1..close];
    let d = inner.chars().next().ok_or(AddrError::Malformed)?;
    let fields: Vec<&str> = inner.split(d).collect();
    if fields.len() != 5 || !fields[1].is_empty() || !fields[2].is_empty() {
        return Err(AddrError::Malformed);
    }
    parse_small(fields[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_from_the_seeds() {
        // 227 Entering Passive Mode (192,168,120,240,232,151): port 232*256+151 = 59543.
        let a = parse_port("192,168,120,240,232,151").unwrap();
        assert_eq!(a, "192.168.120.240:59543".parse().unwrap());
        assert_eq!(format_port(a), "192,168,120,240,232,151");
        assert_eq!(parse_pasv_reply("Entering Passive Mode (192,168,120,240,232,151).").unwrap(), a);
        assert_eq!(parse_pasv_reply("Entering Passive Mode 192,168,120,240,232,151").unwrap(), a);
    }

    #[test]
    fn port_rejects_malformed() {
        for bad in [
            "",
            "1,2,3,4,5",
            "1,2,3,4,5,6,7",
            "256,1,1,1,1,1",
            "1,2,3,4,5,-6",
            "a,b,c,d,e,f",
            "1,2,3,4,5,0006",
            "1,,3,4,5,6",
        ] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn eprt_forms() {
        assert_eq!(parse_eprt("|1|132.235.1.2|6275|").unwrap(), "132.235.1.2:6275".parse().unwrap());
        assert_eq!(
            parse_eprt("|2|1080::8:800:200C:417A|5282|").unwrap(),
            "[1080::8:800:200C:417A]:5282".parse().unwrap()
        );
        assert_eq!(parse_eprt("!1!10.0.0.1!21!").unwrap(), "10.0.0.1:21".parse().unwrap());
        assert_eq!(parse_eprt("|3|x|1|"), Err(AddrError::UnknownProtocol(3)));
        for bad in ["", "|1|1.2.3.4|99999|", "|1|::1|5|", "|2|1.2.3.4|5|", "|1|1.2.3.4|5", "1|1.2.3.4|5|"] {
            assert!(parse_eprt(bad).is_err(), "{bad}");
        }
        let a: SocketAddr = "[::1]:4000".parse().unwrap();
        assert_eq!(parse_eprt(&format_eprt(a)).unwrap(), a);
    }

    #[test]
    fn epsv() {
        assert_eq!(EpsvArg::parse(None).unwrap(), EpsvArg::Default);
        assert_eq!(EpsvArg::parse(Some("all")).unwrap(), EpsvArg::All);
        assert_eq!(EpsvArg::parse(Some("2")).unwrap(), EpsvArg::Proto(2));
        assert!(EpsvArg::parse(Some("x")).is_err());
        assert_eq!(format_epsv(59543), "(|||59543|)");
        assert_eq!(parse_epsv_reply("Entering Extended Passive Mode (|||59543|)").unwrap(), 59543);
        assert!(parse_epsv_reply("Entering (|1|2|3|)").is_err());
    }
}
