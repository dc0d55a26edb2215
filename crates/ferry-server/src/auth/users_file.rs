//! The users file: TOML, one `[[users]]` table per account, argon2id hashes.
//!
//! ```toml
//! [[users]]
//! name = "alice"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! root = "/srv/ftp/alice"                  # optional; default: the server's root
//! permissions = ["list", "read", "write"]  # optional; default: all six
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{hash_password, AuthError, Permission, Permissions, UserDb};

/// One account in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// Login name.
    pub name: String,
    /// argon2id PHC hash string.
    pub password_hash: String,
    /// Root directory; the server's root when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Permissions; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
    /// `required`: this account logs in only over TLS and transfers only on protected data
    /// connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::TlsPolicy>,
    /// Sessions logged in at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// Download rate limit, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_bps: Option<u64>,
    /// Upload rate limit, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_bps: Option<u64>,
    /// Quota: bytes under the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// Quota: files under the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_files: Option<u64>,
    /// Allow FXP (PORT/EPRT to another host) for this account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_fxp: bool,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// The accounts.
    #[serde(default)]
    pub users: Vec<UserRecord>,
}

/// Errors reading or writing a users file.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    /// The file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error (in the message, not a separate cause, so it is said once).
        error: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Hashing failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl UsersFile {
    /// Reads and validates a users file.
    pub fn load(path: &Path) -> Result<Self, UsersFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| UsersFileError::Io { path: path.into(), error })?;
        Self::parse(&text, path)
    }

    /// Parses and validates the text of a users file; errors name `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, UsersFileError> {
        let file: Self =
            toml::from_str(text).map_err(|e| UsersFileError::Invalid { path: path.into(), message: e.to_string() })?;
        let mut seen = std::collections::HashSet::new();
        for u in &file.users {
            if u.name.is_empty() || u.name.chars().any(|c| c.is_control() || c == ' ') {
                return Err(UsersFileError::Invalid {
                    path: path.into(),
                    message: format!("users.name {:?} is not a valid login name", u.name),
                });
            }
            if !seen.insert(u.name.clone()) {
                return Err(UsersFileError::Invalid {
                    path: path.into(),
                    message: format!("user {:?} appears twice", u.name),
                });
            }
            if argon2::PasswordHash::new(&u.password_hash).is_err() {
                return Err(UsersFileError::Invalid {
                    path: path.into(),
                    message: format!(
                        "users.password_hash of {:?} is not a PHC hash string (use `ferry user passwd`)",
                        u.name
                    ),
                });
            }
        }
        Ok(file)
    }

    /// The text [`UsersFile::save`] writes (`path` names the file in an error).
    pub fn to_text(&self, path: &Path) -> Result<String, UsersFileError> {
        toml::to_string_pretty(self).map_err(|e| UsersFileError::Invalid { path: path.into(), message: e.to_string() })
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), UsersFileError> {
        let io = |error| UsersFileError::Io { path: path.into(), error };
        let text = self.to_text(path)?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("users")));
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(b"# Ferry users file: manage with `ferry user add|del|passwd|list --users FILE`.\n")
                .map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Adds a user, or replaces the password of an existing one.
    pub fn set_user(
        &mut self,
        name: &str,
        password: &str,
        root: Option<PathBuf>,
        permissions: Option<Vec<Permission>>,
    ) -> Result<(), UsersFileError> {
        let password_hash = hash_password(password)?;
        match self.users.iter_mut().find(|u| u.name == name) {
            Some(u) => {
                u.password_hash = password_hash;
                if root.is_some() {
                    u.root = root;
                }
                if permissions.is_some() {
                    u.permissions = permissions;
                }
            }
            None => self.users.push(UserRecord {
                name: name.into(),
                password_hash,
                root,
                permissions,
                tls: None,
                max_sessions: None,
                download_bps: None,
                upload_bps: None,
                quota_bytes: None,
                quota_files: None,
                allow_fxp: false,
            }),
        }
        Ok(())
    }

    /// Removes a user; whether it existed.
    pub fn remove_user(&mut self, name: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        self.users.len() != before
    }

    /// Adds the accounts to a user database. Relative roots are taken from `default_root`'s
    /// directory's point of view: relative to the current directory, like every other path.
    pub fn add_to(&self, db: &mut UserDb, default_root: &Path) {
        for u in &self.users {
            let perms = u.permissions.as_deref().map(Permissions::from_list).unwrap_or_else(Permissions::all);
            let root = u.root.clone().unwrap_or_else(|| default_root.to_path_buf());
            db.add_hashed(&u.name, u.password_hash.clone(), root, perms);
            db.set_limits(
                &u.name,
                super::AccountLimits {
                    max_sessions: u.max_sessions,
                    download_bps: u.download_bps,
                    upload_bps: u.upload_bps,
                    quota_bytes: u.quota_bytes,
                    quota_files: u.quota_files,
                    allow_fxp: u.allow_fxp,
                },
            );
            if u.tls == Some(crate::tls::TlsPolicy::Required) {
                db.require_tls(&u.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticator;

    #[tokio::test]
    async fn round_trip_and_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut f = UsersFile::default();
        f.set_user("alice", "pw1", Some("/srv/alice".into()), Some(vec![Permission::List, Permission::Read])).unwrap();
        f.set_user("bob", "pw2", None, None).unwrap();
        f.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("pw1") && text.contains("$argon2id$"));
        let loaded = UsersFile::load(&path).unwrap();
        assert_eq!(loaded, f);
        let mut db = UserDb::new();
        loaded.add_to(&mut db, Path::new("/default"));
        let a = db.authenticate("alice", "pw1", std::net::Ipv4Addr::LOCALHOST.into()).await.unwrap();
        assert!(!a.permissions.has(Permission::Write));
        assert_eq!(
            db.authenticate("bob", "pw2", std::net::Ipv4Addr::LOCALHOST.into()).await.unwrap().root,
            PathBuf::from("/default")
        );
        let mut loaded = loaded;
        assert!(loaded.remove_user("bob"));
        assert!(!loaded.remove_user("bob"));
    }

    #[test]
    fn invalid_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.toml");
        std::fs::write(&path, "[[users]]\nname = \"a\"\npassword = \"x\"\n").unwrap();
        let e = UsersFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("password"), "{e}");
        std::fs::write(&path, "[[users]]\nname = \"a\"\npassword_hash = \"plain\"\n").unwrap();
        let e = UsersFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("password_hash"), "{e}");
        std::fs::write(&path, "[[users]]\nname = \"a\"\npassword_hash = \"plain\"\npermissions = [\"fly\"]\n").unwrap();
        assert!(UsersFile::load(&path).is_err());
    }
}
