//! `~/.netrc` credentials (the format ftp, curl and lftp read).

use std::path::Path;

/// Credentials for a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Login name.
    pub login: String,
    /// Password, if given.
    pub password: Option<String>,
}

/// Finds the entry for `host` (or the `default` entry) in netrc text.
pub fn lookup_in(text: &str, host: &str) -> Option<Credentials> {
    let mut tokens = text.split_whitespace();
    let mut found: Option<Credentials> = None;
    let mut default: Option<Credentials> = None;
    let mut current: Option<(bool, bool, Credentials)> = None; // (is_match, is_default, creds)
    let finish =
        |cur: Option<(bool, bool, Credentials)>, found: &mut Option<Credentials>, default: &mut Option<Credentials>| {
            if let Some((m, d, c)) = cur {
                if m && found.is_none() {
                    *found = Some(c);
                } else if d && default.is_none() {
                    *default = Some(c);
                }
            }
        };
    while let Some(t) = tokens.next() {
        match t {
            "machine" => {
                finish(current.take(), &mut found, &mut default);
                let m = tokens.next().unwrap_or("");
                current =
                    Some((m.eq_ignore_ascii_case(host), false, Credentials { login: String::new(), password: None }));
            }
            "default" => {
                finish(current.take(), &mut found, &mut default);
                current = Some((false, true, Credentials { login: String::new(), password: None }));
            }
            "login" => {
                if let (Some((_, _, c)), Some(v)) = (current.as_mut(), tokens.next()) {
                    c.login = v.to_string();
                }
            }
            "password" => {
                if let (Some((_, _, c)), Some(v)) = (current.as_mut(), tokens.next()) {
                    c.password = Some(v.to_string());
                }
            }
            "account" | "port" => {
                tokens.next();
            }
            "macdef" => {
                // Macro definitions run to an empty line; rare in practice, skipped as a token.
                tokens.next();
            }
            _ => {}
        }
    }
    finish(current, &mut found, &mut default);
    found.or(default).filter(|c| !c.login.is_empty())
}

/// Reads `$NETRC` or `~/.netrc` and looks `host` up.
pub fn lookup(host: &str) -> Option<Credentials> {
    let path = std::env::var_os("NETRC")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".netrc")))?;
    let text = std::fs::read_to_string(path).ok()?;
    lookup_in(&text, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_machine_then_default() {
        let text = "machine a.example login alice password s3cret\n\
                    machine b.example\n  login bob\n  password pw\n\
                    default login anonymous password me@x";
        assert_eq!(
            lookup_in(text, "b.example"),
            Some(Credentials { login: "bob".into(), password: Some("pw".into()) })
        );
        assert_eq!(lookup_in(text, "A.EXAMPLE").unwrap().login, "alice");
        assert_eq!(lookup_in(text, "c.example").unwrap().login, "anonymous");
        assert_eq!(lookup_in("machine x login y", "z"), None);
    }
}
