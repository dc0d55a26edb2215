//! `ftp://[user[:password]@]host[:port]/path` URLs (RFC 1738 section 3.2), with IPv6 `[::1]`.

use std::fmt;

/// A parsed FTP URL.
#[derive(Clone, PartialEq, Eq)]
pub struct FtpUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (21 by default).
    pub port: u16,
    /// User name, percent-decoded.
    pub user: Option<String>,
    /// Password, percent-decoded.
    pub password: Option<String>,
    /// Path, percent-decoded; `/` when absent. A trailing `/` marks a directory.
    pub path: String,
    /// `ftps://`: implicit TLS (default port 990).
    pub implicit_tls: bool,
}

impl fmt::Debug for FtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .field("path", &self.path)
            .finish()
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(pub String);

fn decode(s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| UrlError(format!("bad percent escape in {s:?}")))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError(format!("bad percent escape in {s:?}")))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError(format!("{s:?} is not UTF-8 once decoded")))
}

impl FtpUrl {
    /// Parses an `ftp://` URL.
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let (rest, implicit_tls) = match (s.strip_prefix("ftp://"), s.strip_prefix("ftps://")) {
            (Some(r), _) => (r, false),
            (_, Some(r)) => (r, true),
            _ => {
                return Err(UrlError(format!("{s:?}: expected ftp://[user[:password]@]host[:port]/path (or ftps://)")))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((a, b)) => (Some(decode(a)?), Some(decode(b)?)),
                None => (Some(decode(u)?), None),
            },
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| UrlError(format!("{s:?}: unclosed [ in host")))?;
            let host = &v6[..end];
            host.parse::<std::net::Ipv6Addr>().map_err(|_| UrlError(format!("{host:?} is not an IPv6 address")))?;
            let port = match &v6[end + 1..] {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| UrlError(format!("{s:?}: junk after ]")))?),
            };
            (host.to_string(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(UrlError(format!("{s:?}: no host")));
        }
        let port = match port {
            None | Some("") if implicit_tls => 990,
            None | Some("") => 21,
            Some(p) => p.parse().map_err(|_| UrlError(format!("{p:?} is not a port number")))?,
        };
        // ";type=i" / ";type=a" (RFC 1738) is accepted and dropped.
        let path = path.split(";type=").next().unwrap_or("/");
        Ok(Self { host, port, user, password, path: decode(path)?, implicit_tls })
    }

    /// `host:port` for connecting (brackets around IPv6).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the path names a directory (ends with `/`).
    pub fn is_dir(&self) -> bool {
        self.path.ends_with('/')
    }

    /// The same URL with another path.
    pub fn with_path(&self, path: &str) -> Self {
        Self { path: path.to_string(), ..self.clone() }
    }
}

impl fmt::Display for FtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", if self.implicit_tls { "ftps://" } else { "ftp://" })?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let u = FtpUrl::parse("ftp://alice:p%40ss@example.com:2121/dir/a%20b.txt").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("example.com", 2121));
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.path, "/dir/a b.txt");
        let u = FtpUrl::parse("ftp://[::1]:21/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.is_dir()), ("::1", 21, true));
        assert_eq!(u.authority(), "[::1]:21");
        let u = FtpUrl::parse("ftp://host").unwrap();
        assert_eq!((u.port, u.path.as_str(), u.user), (21, "/", None));
        assert_eq!(FtpUrl::parse("ftp://h/f;type=i").unwrap().path, "/f");
        let s = FtpUrl::parse("ftps://h/x").unwrap();
        assert!(s.implicit_tls && s.port == 990);
        assert!(!FtpUrl::parse("ftp://h/x").unwrap().implicit_tls);
        assert!(!format!("{:?}", FtpUrl::parse("ftp://a:secret@h/").unwrap()).contains("secret"));
        for bad in ["http://h/", "ftp:///x", "ftp://h:99999/", "ftp://[::1/", "ftp://h/%zz"] {
            assert!(FtpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
