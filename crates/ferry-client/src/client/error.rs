//! What can go wrong, as [`ClientError`] (with the `ferry` exit code of each), and the errors
//! made from a server's replies.

use std::io;

use ferry_proto::Reply;

/// Client errors; [`ClientError::exit_code`] maps them to the `ferry` exit codes.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The control connection could not be opened.
    #[error("cannot connect to {addr}: {error}")]
    Connect {
        /// What was dialled.
        addr: String,
        /// Why it failed.
        error: io::Error,
    },
    /// The server refused the login.
    #[error("login refused: {0}")]
    Login(String),
    /// The server said 550 (or 450) for a path.
    #[error("{}", not_found_message(path, text))]
    NotFound {
        /// The path.
        path: String,
        /// The server's reply text.
        text: String,
    },
    /// Any other unexpected reply.
    #[error("{cmd}: server replied {code} {text}")]
    Reply {
        /// The command (password masked).
        cmd: String,
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// The data connection failed.
    #[error("data connection: {0}")]
    Data(io::Error),
    /// The control connection failed.
    #[error("control connection: {0}")]
    Io(io::Error),
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A local file operation failed.
    #[error("{0}")]
    Local(io::Error),
    /// TLS could not be set up (handshake, certificate).
    #[error("TLS: {0}")]
    Tls(String),
    /// `--tls` was asked and the server refused `AUTH TLS` (RFC 4217 section 4): it offers no
    /// explicit FTPS. A refusal, not a connection failure.
    #[error("the server refused AUTH TLS ({code} {text}): it offers no explicit FTPS")]
    TlsRefused {
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// A transfer did not produce the expected result.
    #[error("verification failed: {0}")]
    Verify(String),
}

impl ClientError {
    /// The process exit code for this error (documented in the README).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Connect { .. } | Self::Io(_) | Self::Tls(_) => 3,
            Self::Login(_) => 4,
            Self::NotFound { .. } => 5,
            Self::Data(_) | Self::Verify(_) | Self::Local(_) => 6,
            Self::Reply { .. } | Self::Protocol(_) | Self::TlsRefused { .. } => 7,
        }
    }
}

/// A result with [`ClientError`].
pub type Result<T> = std::result::Result<T, ClientError>;

/// The error for a transfer command the server refused.
pub(super) fn transfer_refused(shown: &str, path: &str, r: &Reply) -> ClientError {
    match r.code.0 {
        550 | 450 => ClientError::NotFound { path: path.into(), text: r.text() },
        _ => reply_error(shown, r),
    }
}

/// `path: text`, without the path twice when the server's text starts with it already.
fn not_found_message(path: &str, text: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    if text.starts_with(path) || (!name.is_empty() && text.starts_with(name)) {
        text.to_string()
    } else {
        format!("{path}: {text}")
    }
}

/// The error for a reply other than the one expected.
pub(super) fn reply_error(cmd: &str, r: &Reply) -> ClientError {
    ClientError::Reply { cmd: cmd.to_string(), code: r.code.0, text: r.text() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn not_found_names_the_path_once() {
        assert_eq!(super::not_found_message("nope.txt", "nope.txt: No such file."), "nope.txt: No such file.");
        assert_eq!(super::not_found_message("/d/nope.txt", "nope.txt: No such file."), "nope.txt: No such file.");
        assert_eq!(super::not_found_message("nope.txt", "Failed to open file."), "nope.txt: Failed to open file.");
    }
}
