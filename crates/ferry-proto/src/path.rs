//! Virtual paths: what a client names, resolved inside the user's root (RFC 959 section 3.1.1).
//!
//! A [`VirtualPath`] is always absolute and normalized: it starts with `/`, has no `.` or `..`
//! components, no empty components and no NUL. `..` at the root stays at the root, exactly as
//! `cd ..` does in `/` on Unix, so no sequence of components can climb out of the user's root.
//! (Symbolic links are the storage layer's business: it opens paths beneath the root only.)

use std::fmt;

/// Why a client's path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path contains a NUL byte.
    #[error("path contains a NUL byte")]
    Nul,
    /// The path is longer than [`MAX_PATH`].
    #[error("path too long")]
    TooLong,
}

/// The longest path accepted, in bytes.
pub const MAX_PATH: usize = 4096;

/// An absolute, normalized path inside a virtual root.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualPath(String);

impl VirtualPath {
    /// The root, `/`.
    pub fn root() -> Self {
        Self("/".to_string())
    }

    /// Resolves `arg` (absolute, or relative to `self`) to a new normalized path.
    pub fn join(&self, arg: &str) -> Result<Self, PathError> {
        if arg.contains('\0') {
            return Err(PathError::Nul);
        }
        if arg.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        let mut parts: Vec<&str> = if arg.starts_with('/') { Vec::new() } else { self.components().collect() };
        for c in arg.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        let mut s = String::with_capacity(arg.len() + self.0.len() + 1);
        for p in &parts {
            s.push('/');
            s.push_str(p);
        }
        if s.is_empty() {
            s.push('/');
        }
        if s.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        Ok(Self(s))
    }

    /// Parses an absolute path (relative paths are taken from the root).
    pub fn parse(arg: &str) -> Result<Self, PathError> {
        Self::root().join(arg)
    }

    /// The path as a string, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The components, without separators; none for the root.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The path relative to the root (`"."` for the root itself), for opening beneath a root directory.
    pub fn relative(&self) -> &str {
        if self.is_root() {
            "."
        } else {
            &self.0[1..]
        }
    }

    /// The parent directory (the root's parent is the root).
    pub fn parent(&self) -> Self {
        match self.0.rfind('/') {
            Some(0) | None => Self::root(),
            Some(i) => Self(self.0[..i].to_string()),
        }
    }

    /// The last component, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.components().last()
    }

    /// The path quoted as in a `257` reply: in double quotes, embedded quotes doubled
    /// (RFC 959 appendix II).
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0.replace('"', "\"\""))
    }
}

impl Default for VirtualPath {
    fn default() -> Self {
        Self::root()
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Shell-style `*` and `?` matching of one name, as in `NLST *.txt` or `mget *.log`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        // A `*` in the pattern is a wildcard even where the name has a `*` too.
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> VirtualPath {
        VirtualPath::parse(s).unwrap()
    }

    #[test]
    fn resolves() {
        let cwd = p("/home/user");
        assert_eq!(cwd.join("docs").unwrap().as_str(), "/home/user/docs");
        assert_eq!(cwd.join("../x").unwrap().as_str(), "/home/x");
        assert_eq!(cwd.join("/etc/passwd").unwrap().as_str(), "/etc/passwd");
        assert_eq!(cwd.join("../../../../etc").unwrap().as_str(), "/etc");
        assert_eq!(cwd.join("./a//b/./").unwrap().as_str(), "/home/user/a/b");
        assert_eq!(cwd.join("").unwrap(), cwd);
        assert_eq!(p("/").join("..").unwrap().as_str(), "/");
        assert_eq!(p("/a b/c").relative(), "a b/c");
        assert_eq!(p("/").relative(), ".");
        assert_eq!(p("/a/b").parent().as_str(), "/a");
        assert_eq!(p("/a").parent().as_str(), "/");
        assert_eq!(p("/a/b").file_name(), Some("b"));
        assert!(p("/x").join("a\0b").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.gz"));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", "b"));
        // Found by the glob_match fuzz target: a `*` in the name took the pattern's `*` as a
        // literal, and the rest of the name then matched nothing.
        assert!(glob_match("*", "* "));
        assert!(glob_match("a*", "a*b"));
        assert!(glob_match("*b", "**b"));
    }

    #[test]
    fn quoting() {
        assert_eq!(p("/say \"hi\"").quoted(), "\"/say \"\"hi\"\"\"");
    }

    proptest! {
        #[test]
        fn never_escapes(cwd in "(/|[a-z.]{1,3}){0,8}", arg in "(/|\\.\\.|\\.|[a-z]{1,3}|\\\\){0,12}") {
            let base = VirtualPath::parse(&cwd).unwrap();
            let r = base.join(&arg).unwrap();
            prop_assert!(r.as_str().starts_with('/'));
            prop_assert!(r.components().all(|c| c != ".." && c != "." && !c.is_empty()));
            prop_assert!(!r.relative().starts_with('/'));
            // Normalized paths are fixed points.
            prop_assert_eq!(VirtualPath::parse(r.as_str()).unwrap(), r.clone());
        }
    }
}
