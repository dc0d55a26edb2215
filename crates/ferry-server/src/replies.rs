//! Every fixed reply text, once; and the one mapping from storage errors to replies.

use ferry_proto::{Reply, ReplyCode as C};

use crate::storage::StorageError;

/// Shorthand for a one-line reply.
pub fn r(code: C, text: impl Into<String>) -> Reply {
    Reply::new(code, text)
}

/// 421 when a connection limit is reached.
pub fn too_many(why: &str) -> Reply {
    r(C::SERVICE_NOT_AVAILABLE, why)
}
/// 530 for commands before login.
pub fn not_logged_in() -> Reply {
    r(C::NOT_LOGGED_IN, "Please login with USER and PASS.")
}
/// 530 after a failed login.
pub fn login_incorrect() -> Reply {
    r(C::NOT_LOGGED_IN, "Login incorrect.")
}
/// 425 when no data connection was set up.
pub fn no_data_setup() -> Reply {
    r(C::CANT_OPEN_DATA, "Use PORT/EPRT or PASV/EPSV first.")
}
/// 425 when the data connection cannot be opened.
pub fn cant_open_data() -> Reply {
    r(C::CANT_OPEN_DATA, "Can't open data connection.")
}
/// 426 when a transfer was cut short.
pub fn transfer_aborted() -> Reply {
    r(C::TRANSFER_ABORTED, "Connection closed; transfer aborted.")
}
/// 226 answering ABOR after the transfer's own reply.
pub fn abor_ok() -> Reply {
    r(C::CLOSING_DATA, "ABOR command successful.")
}
/// 226 for a completed transfer.
pub fn transfer_complete() -> Reply {
    r(C::CLOSING_DATA, "Transfer complete.")
}
/// 550 for a missing permission.
pub fn permission_denied() -> Reply {
    r(C::FILE_UNAVAILABLE, "Permission denied.")
}
/// 501 for a path that cannot be a path.
pub fn bad_path() -> Reply {
    r(C::SYNTAX_ERROR_ARGS, "Invalid path.")
}
/// 503 when EPSV ALL forbids other data-setup commands (RFC 2428 section 4).
pub fn epsv_all_in_effect() -> Reply {
    r(C::BAD_SEQUENCE, "EPSV ALL in effect; only EPSV may set up data connections.")
}
/// 451 for an internal storage failure (the details are logged, not sent).
pub fn local_error() -> Reply {
    r(C::LOCAL_ERROR, "Local error in processing.")
}
/// 221 on QUIT.
pub fn goodbye() -> Reply {
    r(C::CLOSING_CONTROL, "Goodbye.")
}
/// 500 (and close) for a PROXY protocol header from an address not in
/// `proxy_protocol.trusted`: it would let anyone claim any client address.
pub fn proxy_header_refused() -> Reply {
    r(C::SYNTAX_ERROR, "PROXY header not accepted from this address.")
}

/// The reply for a storage error, naming the path the client gave.
pub fn storage_error(e: &StorageError, path: &str) -> Reply {
    match e {
        StorageError::NotFound => r(C::FILE_UNAVAILABLE, format!("{path}: No such file or directory.")),
        StorageError::AlreadyExists => r(C::FILE_UNAVAILABLE, format!("{path}: File exists.")),
        StorageError::PermissionDenied => r(C::FILE_UNAVAILABLE, format!("{path}: Permission denied.")),
        StorageError::NotADirectory => r(C::FILE_UNAVAILABLE, format!("{path}: Not a directory.")),
        StorageError::IsADirectory => r(C::FILE_UNAVAILABLE, format!("{path}: Is a directory.")),
        StorageError::NotEmpty => r(C::FILE_UNAVAILABLE, format!("{path}: Directory not empty.")),
        StorageError::InvalidName => r(C::BAD_FILE_NAME, format!("{path}: File name not allowed.")),
        StorageError::NoSpace => r(C::EXCEEDED_STORAGE, "Insufficient storage space."),
        StorageError::Unsupported => r(C::NOT_IMPLEMENTED, "Not supported by this storage."),
        StorageError::Refused(why) => r(C::FILE_UNAVAILABLE, format!("{path}: {why}.")),
        StorageError::Io(err) => {
            tracing::error!(%path, error = %err, "storage error");
            local_error()
        }
    }
}
