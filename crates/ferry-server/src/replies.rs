//! Every reply the server sends, each text once, grouped by area; and the one mapping each from
//! a parse error, a storage error and a transfer's outcome to a reply.
//!
//! Nothing outside this module builds a [`Reply`]: `clippy.toml` disallows `Reply::new` and
//! `Reply::multi` elsewhere, and `Reply` cannot be built field by field outside `ferry-proto`.
#![allow(clippy::disallowed_methods, reason = "the one module that builds replies")]

use std::fmt::Display;
use std::net::{SocketAddr, SocketAddrV4};

use ferry_proto::addr::{self, NetProto};
use ferry_proto::command::TransferType;
use ferry_proto::{ParseError, Reply, ReplyCode as C, VirtualPath};

use crate::storage::StorageError;
use crate::transfer::TransferError;

fn r(code: C, text: impl Into<String>) -> Reply {
    Reply::new(code, text)
}

// ---- Connection and session -------------------------------------------------------------------

/// 220: the greeting.
pub fn greeting(banner: &str) -> Reply {
    r(C::SERVICE_READY, banner)
}

/// Why a connection is refused before its greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_sessions` reached.
    TooManyUsers,
    /// `max_sessions_per_ip` reached.
    TooManyFromAddress,
    /// `max_startups_per_ip`: too many connections from the address have not logged in.
    TooManyStartups,
    /// The address is banned after failed logins.
    Banned,
    /// The process or the system is out of file descriptors.
    OutOfDescriptors,
}

impl Refusal {
    /// Why, for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooManyUsers => "Too many users connected; try again later.",
            Self::TooManyFromAddress => "Too many connections from your address; try again later.",
            Self::TooManyStartups => "Too many connections from your address have not logged in; try again later.",
            Self::Banned => "Too many failed logins from your address; try again later.",
            Self::OutOfDescriptors => "Server out of resources; try again later.",
        }
    }
}

/// 421 when a connection limit is reached.
pub fn refused(why: Refusal) -> Reply {
    r(C::SERVICE_NOT_AVAILABLE, why.as_str())
}

/// 500 (and close) for a PROXY protocol header from an address not in
/// `proxy_protocol.trusted`: it would let anyone claim any client address.
pub fn proxy_header_refused() -> Reply {
    r(C::SYNTAX_ERROR, "PROXY header not accepted from this address.")
}

/// 500 for a line longer than `limits.max_line`.
pub fn line_too_long() -> Reply {
    r(C::SYNTAX_ERROR, "Command line too long.")
}

/// 421 (and close) when a client pipelines more commands than are queued during a transfer.
pub fn too_many_queued() -> Reply {
    r(C::SERVICE_NOT_AVAILABLE, "Too many commands queued.")
}

/// 421 (and close) after the idle timeout.
pub fn idle_timeout() -> Reply {
    r(C::SERVICE_NOT_AVAILABLE, "Timeout: closing control connection.")
}

/// 421 (and close) when no login came within the login timeout.
pub fn login_timeout() -> Reply {
    r(C::SERVICE_NOT_AVAILABLE, "Login timeout.")
}

/// 421 (and close) to idle sessions when the server stops.
pub fn shutting_down() -> Reply {
    r(C::SERVICE_NOT_AVAILABLE, "Server shutting down.")
}

/// 421 to a session the administrator disconnected.
pub fn kicked() -> Reply {
    r(C::SERVICE_NOT_AVAILABLE, "Disconnected by the administrator.")
}

/// 221 on QUIT.
pub fn goodbye() -> Reply {
    r(C::CLOSING_CONTROL, "Goodbye.")
}

/// 500 for an unknown verb; 502 for `HELP` of one.
pub fn unknown_command(code: C, verb: &str) -> Reply {
    r(code, format!("Unknown command {}.", verb.chars().take(16).collect::<String>()))
}

/// The reply for a line that is not a command (RFC 959 section 4.2: 500, 501; RFC 2428: 522).
pub fn parse_error(e: &ParseError) -> Reply {
    match e {
        ParseError::UnknownNetProto => network_protocol_not_supported(None),
        ParseError::Unknown(v) => unknown_command(e.reply_code(), v),
        ParseError::Empty => r(e.reply_code(), "Syntax error, command unrecognized."),
        _ => r(e.reply_code(), format!("Syntax error in parameters: {e}.")),
    }
}

/// 451 for an internal failure (the details are logged, not sent).
pub fn local_error() -> Reply {
    r(C::LOCAL_ERROR, "Local error in processing.")
}

// ---- Policy: what a command needs before it runs ---------------------------------------------

/// 530 for commands before login.
pub fn not_logged_in() -> Reply {
    r(C::NOT_LOGGED_IN, "Please login with USER and PASS.")
}

/// 550 for a missing permission.
pub fn permission_denied() -> Reply {
    r(C::FILE_UNAVAILABLE, "Permission denied.")
}

/// 425 when no data connection was set up.
pub fn no_data_setup() -> Reply {
    r(C::CANT_OPEN_DATA, "Use PORT/EPRT or PASV/EPSV first.")
}

/// 521 when policy requires protected data connections and `PROT P` was not sent.
pub fn data_must_be_protected() -> Reply {
    r(C::PROT_NOT_SUPPORTED, "Data connections must be protected: send PBSZ 0 and PROT P.")
}

/// 503 when EPSV ALL forbids other data-setup commands (RFC 2428 section 4).
pub fn epsv_all_in_effect() -> Reply {
    r(C::BAD_SEQUENCE, "EPSV ALL in effect; only EPSV may set up data connections.")
}

/// 503 for RNTO without RNFR.
pub fn rnfr_first() -> Reply {
    r(C::BAD_SEQUENCE, "RNFR required first.")
}

/// 503 for PBSZ, PROT and CCC on a clear control connection.
pub fn needs_tls(verb: &str) -> Reply {
    r(C::BAD_SEQUENCE, format!("{verb} needs AUTH TLS first."))
}

/// 501 for a path that cannot be a path.
pub fn bad_path() -> Reply {
    r(C::SYNTAX_ERROR_ARGS, "Invalid path.")
}

// ---- Login and TLS (USER, PASS, ACCT, REIN, HOST, AUTH, PBSZ, PROT, CCC) ----------------------

/// 530 to USER on a clear connection when policy requires TLS.
pub fn tls_required_before_user() -> Reply {
    r(C::NOT_LOGGED_IN, "TLS required: send AUTH TLS before USER.")
}

/// 331 after USER.
pub fn need_password(name: &str, anonymous: bool) -> Reply {
    if anonymous {
        return r(C::NEED_PASSWORD, "Anonymous login okay, send your e-mail address as password.");
    }
    let shown: String = name.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect();
    r(C::NEED_PASSWORD, format!("Password required for {shown}."))
}

/// 230 for PASS when already logged in.
pub fn already_logged_in() -> Reply {
    r(C::LOGGED_IN, "Already logged in.")
}

/// 503 for PASS without USER.
pub fn user_first() -> Reply {
    r(C::BAD_SEQUENCE, "Login with USER first.")
}

/// 530 for an account that may only log in over TLS, on a clear connection.
pub fn account_requires_tls() -> Reply {
    r(C::NOT_LOGGED_IN, "This account requires TLS: send AUTH TLS first.")
}

/// 530 when the account has its most sessions.
pub fn too_many_account_sessions() -> Reply {
    r(C::NOT_LOGGED_IN, "Too many sessions for this account; try again later.")
}

/// 421 when the accounts store (database, directory, auth service) cannot be reached at login.
pub fn accounts_unavailable() -> Reply {
    r(C::SERVICE_NOT_AVAILABLE, "Service not available: accounts cannot be checked now; try again later.")
}

/// 230 after a login.
pub fn logged_in() -> Reply {
    r(C::LOGGED_IN, "Login successful.")
}

/// 530 when the account's root cannot be opened.
pub fn home_unavailable() -> Reply {
    r(C::NOT_LOGGED_IN, "Home directory unavailable.")
}

/// 530 after a failed login.
pub fn login_incorrect() -> Reply {
    r(C::NOT_LOGGED_IN, "Login incorrect.")
}

/// 421 (and close) when a failed login bans the address.
pub fn banned_now() -> Reply {
    r(C::SERVICE_NOT_AVAILABLE, "Too many failed logins from your address; closing connection.")
}

/// 421 (and close) after `max_login_failures` on one connection.
pub fn too_many_failures() -> Reply {
    r(C::SERVICE_NOT_AVAILABLE, "Too many failed logins; closing connection.")
}

/// ACCT: 202 when logged in, 503 before.
pub fn acct(logged_in: bool) -> Reply {
    if logged_in {
        r(C::SUPERFLUOUS, "ACCT not needed.")
    } else {
        r(C::BAD_SEQUENCE, "Login with USER and PASS first; no account is needed.")
    }
}

/// 220 after REIN.
pub fn rein() -> Reply {
    r(C::SERVICE_READY, "Service ready for new user.")
}

/// 504 for HOST (RFC 7151).
/// 220 for HOST: the host's greeting.
pub fn host_accepted(banner: &str) -> Reply {
    r(C::SERVICE_READY, banner)
}

/// 504 for HOST with a name no virtual host has (RFC 7151 section 3.2).
pub fn unknown_host(name: &str) -> Reply {
    r(C::PARAM_NOT_IMPLEMENTED, format!("Unknown host {:?}.", name.chars().take(64).collect::<String>()))
}

/// 504 for HOST naming another host than the TLS handshake's server name (RFC 7151 section 3.2).
pub fn host_not_tls_name(name: &str, sni: &str) -> Reply {
    let name: String = name.chars().take(64).collect();
    r(C::PARAM_NOT_IMPLEMENTED, format!("HOST {name:?} does not match the TLS server name {sni:?}."))
}

/// 503 for HOST after USER or a login (RFC 7151 section 3.2).
pub fn host_after_user() -> Reply {
    r(C::BAD_SEQUENCE, "HOST must come before USER.")
}

/// 504 for AUTH on a server without TLS.
pub fn tls_not_configured() -> Reply {
    r(C::PARAM_NOT_IMPLEMENTED, "TLS is not configured on this server.")
}

/// 503 for AUTH on a protected connection.
pub fn already_tls() -> Reply {
    r(C::BAD_SEQUENCE, "Already using TLS.")
}

/// 234 before the TLS handshake (RFC 4217 section 4).
pub fn auth_ok(mechanism: &str) -> Reply {
    r(C::AUTH_OK, format!("AUTH {mechanism} successful; start the TLS handshake."))
}

/// 504 for an AUTH mechanism other than TLS.
pub fn unknown_mechanism() -> Reply {
    r(C::PARAM_NOT_IMPLEMENTED, "Unknown security mechanism; use AUTH TLS.")
}

/// 200 for PBSZ (RFC 4217 section 8: always 0 for TLS).
pub fn pbsz_ok() -> Reply {
    r(C::OK, "PBSZ=0")
}

/// 200 for PROT P or PROT C.
pub fn prot_set(private: bool) -> Reply {
    r(C::OK, if private { "Protection level set to Private." } else { "Protection level set to Clear." })
}

/// 534 for PROT C when policy requires protected data.
pub fn prot_clear_refused() -> Reply {
    r(C::POLICY_DENIED, "Policy requires protected data connections (PROT P).")
}

/// 536 for PROT S and PROT E.
pub fn prot_unsupported() -> Reply {
    r(C::PROT_LEVEL_NOT_SUPPORTED, "Only PROT C and PROT P are supported.")
}

/// 534 for CCC: a clear control channel after AUTH would expose commands again.
pub fn ccc_refused() -> Reply {
    r(C::POLICY_DENIED, "CCC refused by policy: the control connection stays protected.")
}

// ---- Data connections and transfer parameters ------------------------------------------------

/// Why an active-mode target is refused (RFC 2577 section 3: FTP bounce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveRefusal {
    /// Not the client's own address.
    ThirdParty,
    /// A privileged port.
    LowPort,
}

/// 504 for a PORT/EPRT target that is refused.
pub fn active_refused(why: ActiveRefusal) -> Reply {
    r(
        C::PARAM_NOT_IMPLEMENTED,
        match why {
            ActiveRefusal::ThirdParty => "Active data connections go only to the address the client connects from.",
            ActiveRefusal::LowPort => "Active data connections to ports below 1024 are refused.",
        },
    )
}

/// 200 for an accepted PORT/EPRT.
pub fn active_ok(verb: &str) -> Reply {
    r(C::OK, format!("{verb} command successful."))
}

/// 522 (RFC 2428 section 2): the protocol this connection can use, or both when none was given.
pub fn network_protocol_not_supported(use_instead: Option<NetProto>) -> Reply {
    let list = match use_instead {
        Some(p) => p.number().to_string(),
        None => "1,2".to_string(),
    };
    r(C::NETWORK_PROTOCOL_NOT_SUPPORTED, format!("Network protocol not supported, use ({list})."))
}

/// 425 when no passive port can be bound.
pub fn no_passive_port() -> Reply {
    r(C::CANT_OPEN_DATA, "No passive port available; try again later.")
}

/// 425 for PASV on an IPv6 control connection.
pub fn pasv_ipv4_only() -> Reply {
    r(C::CANT_OPEN_DATA, "PASV is IPv4 only; use EPSV over IPv6.")
}

/// 227 (RFC 959).
pub fn passive(at: SocketAddrV4) -> Reply {
    r(C::ENTERING_PASSIVE, format!("Entering Passive Mode ({}).", addr::format_port(at)))
}

/// 229 (RFC 2428 section 3).
pub fn extended_passive(port: u16) -> Reply {
    r(C::ENTERING_EXTENDED_PASSIVE, format!("Entering Extended Passive Mode {}.", addr::format_epsv(port)))
}

/// 200 for EPSV ALL.
pub fn epsv_all_ok() -> Reply {
    r(C::OK, "EPSV ALL ok; only EPSV will be accepted.")
}

/// TYPE: 200 for A and I, 504 for the rest.
pub fn type_set(t: TransferType, ascii: Option<bool>) -> Reply {
    match ascii {
        Some(true) => r(C::OK, "Switching to ASCII mode."),
        Some(false) => r(C::OK, "Switching to Binary mode."),
        None => r(C::PARAM_NOT_IMPLEMENTED, format!("TYPE {t} not implemented; use A or I.")),
    }
}

/// STRU: 200 for F, 504 for R and P.
pub fn stru(file: bool) -> Reply {
    if file {
        r(C::OK, "Structure set to F.")
    } else {
        r(C::PARAM_NOT_IMPLEMENTED, "Only STRU F is supported.")
    }
}

/// MODE: 200 for S, 504 for the rest.
pub fn mode(stream: bool) -> Reply {
    if stream {
        r(C::OK, "Mode set to S.")
    } else {
        r(C::PARAM_NOT_IMPLEMENTED, "Only MODE S is supported.")
    }
}

/// 350 for REST.
pub fn rest(n: u64) -> Reply {
    r(C::PENDING_FURTHER_INFO, format!("Restarting at {n}. Send STOR or RETR to initiate transfer."))
}

/// 554 for a REST offset past the end of the file (RFC 3659 section 5.5).
pub fn rest_beyond_end(offset: u64, size: u64) -> Reply {
    r(C::INVALID_REST, format!("Restart offset {offset} is beyond the end of the file ({size} bytes)."))
}

/// 502 for REST + STOR on storage that cannot write at an offset.
pub fn rest_stor_unsupported() -> Reply {
    r(C::NOT_IMPLEMENTED, "REST STOR is not supported by this storage.")
}

/// 202 for ALLO.
pub fn allo() -> Reply {
    r(C::SUPERFLUOUS, "ALLO not needed; storage is allocated as data arrives.")
}

/// 225 for ABOR with no transfer running.
pub fn nothing_to_abort() -> Reply {
    r(C::DATA_OPEN_NO_TRANSFER, "No transfer to abort.")
}

/// 226 answering ABOR after the transfer's own reply.
pub fn abor_ok() -> Reply {
    r(C::CLOSING_DATA, "ABOR command successful.")
}

// ---- Transfers: the 150 when the data connection opens, the reply when it ends ---------------

/// What a transfer's 150 and 226 say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// RETR of `shown` (the client's argument): `bytes` to send.
    Download {
        /// `TYPE A`.
        ascii: bool,
        /// The path as the client wrote it.
        shown: String,
        /// Bytes from the restart offset to the end.
        bytes: u64,
    },
    /// STOR/APPE of `shown`.
    Upload {
        /// `TYPE A`.
        ascii: bool,
        /// The path as the client wrote it.
        shown: String,
    },
    /// HASH or an X digest verb: no data connection; the answer comes when the digest is done.
    Digest,
    /// STOU: the name chosen.
    Unique {
        /// The file name.
        name: String,
    },
    /// LIST, NLST, MLSD.
    Listing,
}

fn mode_name(ascii: bool) -> &'static str {
    if ascii {
        "ASCII"
    } else {
        "BINARY"
    }
}

/// 150 when the data connection opens.
pub fn opening(o: &Opening) -> Reply {
    let text = match o {
        Opening::Download { ascii, shown, bytes } => {
            format!("Opening {} mode data connection for {shown} ({bytes} bytes).", mode_name(*ascii))
        }
        Opening::Upload { ascii, shown } => format!("Opening {} mode data connection for {shown}.", mode_name(*ascii)),
        Opening::Unique { name } => format!("FILE: {name}"),
        Opening::Listing => "Here comes the directory listing.".to_string(),
        // A digest opens no data connection.
        Opening::Digest => "Computing the digest.".to_string(),
    };
    r(C::FILE_STATUS_OK, text)
}

/// The reply when a transfer ends: 226, or why not (425, 426, 451, 522, 55x). `path` names the
/// file in a storage error.
pub fn transfer_done(o: &Opening, result: &Result<(), TransferError>, path: &str) -> Reply {
    match result {
        Ok(()) => match o {
            Opening::Unique { name } => r(C::CLOSING_DATA, format!("Transfer complete (unique file name: {name}).")),
            Opening::Listing => r(C::CLOSING_DATA, "Directory send OK."),
            _ => r(C::CLOSING_DATA, "Transfer complete."),
        },
        Err(TransferError::Connect(_)) => r(C::CANT_OPEN_DATA, "Can't open data connection."),
        Err(TransferError::Aborted | TransferError::Data(_)) => {
            r(C::TRANSFER_ABORTED, "Connection closed; transfer aborted.")
        }
        Err(TransferError::Storage(e)) => storage_error(e, path),
        Err(TransferError::NotResumed) => r(
            C::NETWORK_PROTOCOL_NOT_SUPPORTED,
            "Data connection refused: its TLS handshake did not resume this control connection's session.",
        ),
        Err(TransferError::Tls(_)) => r(C::CANT_OPEN_DATA, "TLS handshake on the data connection failed."),
        Err(TransferError::Rejected(why)) => r(C::FILE_UNAVAILABLE, format!("Upload rejected: {why}. Not stored.")),
        Err(TransferError::Unverified(why)) => {
            r(C::LOCAL_ERROR, format!("Upload could not be verified ({why}). Not stored."))
        }
    }
}

// ---- Files and directories -------------------------------------------------------------------

/// The reply for a storage error, naming the path the client gave.
pub fn storage_error(e: &StorageError, path: &str) -> Reply {
    match e {
        StorageError::NotFound => r(C::FILE_UNAVAILABLE, format!("{path}: No such file or directory.")),
        StorageError::AlreadyExists => r(C::FILE_UNAVAILABLE, format!("{path}: File exists.")),
        StorageError::PermissionDenied => r(C::FILE_UNAVAILABLE, format!("{path}: Permission denied.")),
        StorageError::NotADirectory => not_a_directory(path),
        StorageError::IsADirectory => r(C::FILE_UNAVAILABLE, format!("{path}: Is a directory.")),
        StorageError::NotEmpty => r(C::FILE_UNAVAILABLE, format!("{path}: Directory not empty.")),
        StorageError::InvalidName => name_not_allowed(path),
        StorageError::NoSpace => r(C::EXCEEDED_STORAGE, "Insufficient storage space."),
        StorageError::Unsupported => r(C::NOT_IMPLEMENTED, "Not supported by this storage."),
        StorageError::Refused(why) => r(C::FILE_UNAVAILABLE, format!("{path}: {why}.")),
        StorageError::Io(err) => {
            tracing::error!(%path, error = %err, "storage error");
            local_error()
        }
    }
}

/// 550 for a file where a directory is needed.
pub fn not_a_directory(path: &str) -> Reply {
    r(C::FILE_UNAVAILABLE, format!("{path}: Not a directory."))
}

/// 501 for MLSD of a file (RFC 3659 section 7.2: its argument must be a directory).
pub fn mlsd_not_a_directory(path: &str) -> Reply {
    let mut reply = not_a_directory(path);
    reply.code = C::SYNTAX_ERROR_ARGS;
    reply
}

/// 550 for a directory where a regular file is needed (RETR, SIZE).
pub fn not_a_regular_file(path: &str) -> Reply {
    r(C::FILE_UNAVAILABLE, format!("{path}: Not a regular file."))
}

/// 553 for a name the storage does not accept (and the names of its temporary files).
pub fn name_not_allowed(path: &str) -> Reply {
    r(C::BAD_FILE_NAME, format!("{path}: File name not allowed."))
}

/// 553 when STOU finds no free name.
pub fn no_unique_name() -> Reply {
    r(C::BAD_FILE_NAME, "Cannot find a unique file name.")
}

/// 552 for an upload over the account's file quota.
pub fn quota_files_exceeded(max: u64) -> Reply {
    r(C::EXCEEDED_STORAGE, format!("Quota exceeded: {max} files."))
}

/// 250 after CWD; 200 after CDUP (RFC 959 section 5.4).
pub fn directory_changed(cwd: &VirtualPath, cdup: bool) -> Reply {
    r(if cdup { C::OK } else { C::FILE_ACTION_OK }, format!("Directory changed to {cwd}."))
}

/// 257 for PWD.
pub fn pwd(cwd: &VirtualPath) -> Reply {
    r(C::PATH_CREATED, format!("{} is the current directory", cwd.quoted()))
}

/// 257 after MKD.
pub fn created(path: &VirtualPath) -> Reply {
    r(C::PATH_CREATED, format!("{} created.", path.quoted()))
}

/// 250 after RMD.
pub fn directory_removed() -> Reply {
    r(C::FILE_ACTION_OK, "Directory removed.")
}

/// 502 for SMNT.
pub fn smnt() -> Reply {
    r(C::NOT_IMPLEMENTED, "SMNT not implemented: one file system is served.")
}

/// 250 after DELE.
pub fn deleted() -> Reply {
    r(C::FILE_ACTION_OK, "File deleted.")
}

/// 350 after RNFR.
pub fn ready_for_rnto() -> Reply {
    r(C::PENDING_FURTHER_INFO, "Ready for RNTO.")
}

/// 250 after RNTO.
pub fn renamed() -> Reply {
    r(C::FILE_ACTION_OK, "Rename successful.")
}

/// 213 for SIZE (RFC 3659 section 4).
pub fn size(bytes: u64) -> Reply {
    r(C::FILE_STATUS, bytes.to_string())
}

/// 213 for MDTM (RFC 3659 section 3).
pub fn mdtm(timeval: String) -> Reply {
    r(C::FILE_STATUS, timeval)
}

/// 213 for HASH (draft-bryan-ftpext-hash-02 section 3): the algorithm, the byte range hashed
/// (`0-size`), the digest in lower-case hex, the path.
pub fn hash(algorithm: &str, start: u64, end: u64, hex: &str, path: &str) -> Reply {
    r(C::FILE_STATUS, format!("{algorithm} {start}-{end} {hex} {path}"))
}

/// 350 for RANG: the next HASH covers this range.
pub fn range_set(start: u64, end: u64) -> Reply {
    r(C::PENDING_FURTHER_INFO, format!("Restarting at {start}. Ending at {end}."))
}

/// 426 for a digest stopped by ABOR.
pub fn digest_aborted() -> Reply {
    r(C::TRANSFER_ABORTED, "Digest aborted.")
}

/// 250 with a digest, for XSHA1/XSHA256/XSHA512/XMD5/XCRC.
pub fn xdigest(hex: &str) -> Reply {
    r(C::FILE_ACTION_OK, hex.to_string())
}

/// 200 for OPTS HASH: the algorithm in force.
pub fn hash_algorithm(alg: ferry_proto::command::HashAlg) -> Reply {
    r(C::OK, alg.name())
}

/// 504 for OPTS HASH with an algorithm this server does not have.
pub fn hash_algorithm_unknown(name: &str) -> Reply {
    let known: Vec<&str> = ferry_proto::command::HashAlg::ALL.iter().map(|a| a.name()).collect();
    r(C::PARAM_NOT_IMPLEMENTED, format!("Unknown algorithm {name:?}; known: {}.", known.join(", ")))
}

/// 550 for MDTM of a file whose time the storage does not know.
pub fn mtime_unknown(path: &str) -> Reply {
    r(C::FILE_UNAVAILABLE, format!("{path}: Modification time unknown."))
}

/// 502 for a command the storage cannot do (MFMT, SITE CHMOD on S3).
pub fn unsupported_by_storage(what: &str) -> Reply {
    r(C::NOT_IMPLEMENTED, format!("{what} is not supported by this storage."))
}

/// 213 after MFMT (draft-somers-ftp-mfxx).
pub fn mfmt(timeval: String, path: &str) -> Reply {
    r(C::FILE_STATUS, format!("Modify={timeval}; {path}"))
}

/// 250 for MLST (RFC 3659 section 7.2): the facts line of one entry.
pub fn mlst(path: &VirtualPath, facts: String) -> Reply {
    Reply::multi(C::FILE_ACTION_OK, format!("Listing {path}"), vec![facts], "End")
}

/// 212/213 for STAT path: `ls -l` lines (RFC 959 section 4.1.3).
pub fn stat_path(path: &VirtualPath, is_dir: bool, lines: Vec<String>) -> Reply {
    let code = if is_dir { C::DIRECTORY_STATUS } else { C::FILE_STATUS };
    Reply::multi(code, format!("Status of {path}:"), lines, "End of status.")
}

/// 214 for SITE HELP.
pub fn site_help() -> Reply {
    Reply::multi(
        C::HELP,
        "SITE commands recognized:",
        vec![
            "CHMOD <mode> <path>          set Unix permission bits (octal)".into(),
            "SEGMENT BEGIN <size> <path>  start a segmented upload (then REST+STOR segments)".into(),
            "SEGMENT END <path>           publish it once every byte arrived".into(),
            "SEGMENT ABORT <path>         abandon it".into(),
            "HELP                         this text".into(),
        ],
        "End of SITE help.",
    )
}

// ---- Segmented uploads (SITE SEGMENT) -----------------------------------------------------------

/// 200 for SITE SEGMENT BEGIN.
pub fn segmented_begun(size: u64, path: &str) -> Reply {
    r(
        C::OK,
        format!("Segmented upload of {size} bytes to {path} begun: send REST+STOR segments, then SITE SEGMENT END."),
    )
}

/// 250 for SITE SEGMENT END when every byte arrived.
pub fn segmented_complete(path: &str, size: u64) -> Reply {
    r(C::FILE_ACTION_OK, format!("Segmented upload of {path} complete ({size} bytes)."))
}

/// 250 for SITE SEGMENT ABORT.
pub fn segmented_abandoned(path: &str) -> Reply {
    r(C::FILE_ACTION_OK, format!("Segmented upload of {path} abandoned."))
}

/// 451 for SITE SEGMENT END with ranges missing (the upload stays; send them and END again).
pub fn segments_missing(path: &str, missing: &[(u64, u64)]) -> Reply {
    let shown: Vec<String> = missing.iter().take(16).map(|(s, e)| format!("{s}-{}", e - 1)).collect();
    let more = if missing.len() > 16 { ",..." } else { "" };
    r(C::LOCAL_ERROR, format!("Segmented upload of {path} incomplete: missing {}{more}.", shown.join(",")))
}

/// 550 for SITE SEGMENT END/ABORT without a BEGIN.
pub fn no_segmented_upload(path: &str) -> Reply {
    r(C::FILE_UNAVAILABLE, format!("No segmented upload of {path} in progress."))
}

/// 450 for a second SITE SEGMENT BEGIN of the same file, or another upload command to it meanwhile.
pub fn segmented_in_progress(path: &str) -> Reply {
    r(C::FILE_BUSY, format!("A segmented upload of {path} is in progress."))
}

/// 504 for a segment sent in ASCII mode.
pub fn segments_need_binary() -> Reply {
    r(C::PARAM_NOT_IMPLEMENTED, "Segments of a segmented upload need TYPE I.")
}

/// 504 for SITE SEGMENT where uploads are verified (upload.verify hooks).
pub fn segments_with_verify() -> Reply {
    r(C::PARAM_NOT_IMPLEMENTED, "SITE SEGMENT is off: uploads here are verified by a hook before they appear.")
}

/// 200 after SITE CHMOD.
pub fn chmod_ok(mode: u32, path: &str) -> Reply {
    r(C::OK, format!("SITE CHMOD {mode:o} {path}: permissions changed."))
}

/// The planted bug's outcome (debug builds only; see `planted.rs`): 200 with what it did, or 550
/// with the system's error (`Permission denied`, `Operation not permitted` under the sandbox).
#[cfg(debug_assertions)]
pub fn planted_bug(outcome: std::io::Result<String>) -> Reply {
    match outcome {
        Ok(done) => r(C::OK, format!("TESTBUG: {done}.")),
        Err(e) => r(C::FILE_UNAVAILABLE, format!("TESTBUG: {e}.")),
    }
}

/// 504 for an unknown SITE command.
pub fn unknown_site(sub: &str) -> Reply {
    let sub: String = sub.chars().take(16).collect();
    r(C::PARAM_NOT_IMPLEMENTED, format!("Unknown SITE command {}; try SITE HELP.", sub.to_ascii_uppercase()))
}

// ---- Information (SYST, FEAT, OPTS, HELP, NOOP, STAT) ----------------------------------------

/// 215 for SYST, as every UNIX server answers (RFC 959 section 4.1.3; the seeds' session).
pub fn syst() -> Reply {
    r(C::SYSTEM_TYPE, "UNIX Type: L8")
}

/// 211 for FEAT (RFC 2389 section 3.2).
pub fn feat(lines: Vec<String>) -> Reply {
    Reply::multi(C::SYSTEM_STATUS, "Extensions supported:", lines, "End")
}

/// OPTS UTF8 ON (200) / OFF (504).
pub fn utf8(on: bool) -> Reply {
    if on {
        r(C::OK, "Always in UTF8 mode.")
    } else {
        r(C::PARAM_NOT_IMPLEMENTED, "UTF8 cannot be turned off; paths are UTF-8.")
    }
}

/// 200 for OPTS MLST (RFC 3659 section 7.9).
pub fn mlst_opts(enabled: &str) -> Reply {
    r(C::OK, format!("MLST OPTS {enabled}"))
}

/// 501 for an OPTS option not understood.
pub fn opts_unknown(option: &str) -> Reply {
    r(C::SYNTAX_ERROR_ARGS, format!("Option not understood: {}", option.chars().take(40).collect::<String>()))
}

/// 214 for HELP: the verbs, eight to a line.
pub fn help(verbs: &[&str]) -> Reply {
    let lines = verbs
        .chunks(8)
        .map(|chunk| chunk.iter().map(|v| format!("{v:<5}")).collect::<Vec<_>>().join(" ").trim_end().to_string())
        .collect();
    Reply::multi(C::HELP, "The following commands are recognized:", lines, "Help OK.")
}

/// 214 for HELP verb.
pub fn help_syntax(syntax: &str) -> Reply {
    r(C::HELP, format!("Syntax: {syntax}"))
}

/// 200 for NOOP.
pub fn noop() -> Reply {
    r(C::OK, "NOOP ok.")
}

/// 213 for STAT during a transfer.
pub fn stat_transfer(verb: &str, path: &str, bytes: u64, secs: f64) -> Reply {
    r(C::FILE_STATUS, format!("Status: {verb} {path} in progress, {bytes} bytes transferred in {secs:.1}s."))
}

/// The session as STAT shows it.
#[derive(Debug)]
pub struct Status<'a> {
    /// The client's address.
    pub peer: SocketAddr,
    /// The user and whether anonymous, when logged in.
    pub user: Option<(&'a str, bool)>,
    /// `TYPE A`.
    pub ascii: bool,
    /// The working directory, when logged in.
    pub cwd: Option<&'a VirtualPath>,
    /// The data connection set up.
    pub data: DataStatus,
    /// A pending REST offset.
    pub rest: Option<u64>,
    /// Seconds since the connection opened.
    pub secs: u64,
}

/// The data connection as STAT shows it.
#[derive(Debug, Clone, Copy)]
pub enum DataStatus {
    /// Nothing set up.
    None,
    /// Listening on this port.
    Passive(u16),
    /// Will connect to this address.
    Active(SocketAddr),
}

/// 211 for STAT without an argument (RFC 959 section 4.1.3).
pub fn stat(s: &Status<'_>) -> Reply {
    let mut lines = vec![format!("Connected from {}", s.peer.ip())];
    lines.push(match s.user {
        Some((name, anonymous)) => format!("Logged in as {name}{}", if anonymous { " (anonymous)" } else { "" }),
        None => "Not logged in".into(),
    });
    lines.push(format!("TYPE: {}; STRUcture: File; MODE: Stream", mode_name(s.ascii)));
    lines.push(format!("Working directory: {}", Shown(s.cwd)));
    lines.push(match s.data {
        DataStatus::None => "No data connection set up".into(),
        DataStatus::Passive(port) => format!("Passive mode, listening on port {port}"),
        DataStatus::Active(a) => format!("Active mode, will connect to {a}"),
    });
    if let Some(n) = s.rest {
        lines.push(format!("Restart offset: {n}"));
    }
    lines.push(format!("Session time: {}s", s.secs));
    Reply::multi(C::SYSTEM_STATUS, "Ferry FTP server status:", lines, "End of status.")
}

/// A working directory for STAT: `/` before login.
struct Shown<'a>(Option<&'a VirtualPath>);

impl Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(p) => p.fmt(f),
            None => f.write_str("/"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_name_the_path_and_never_leak_io_text() {
        let e = StorageError::Io(std::io::Error::other("secret internals"));
        let reply = storage_error(&e, "f");
        assert_eq!(reply.code, C::LOCAL_ERROR);
        assert!(!reply.text().contains("secret"));
        assert_eq!(storage_error(&StorageError::NotFound, "a b").text(), "a b: No such file or directory.");
        assert_eq!(storage_error(&StorageError::NotADirectory, "x").code, C::FILE_UNAVAILABLE);
        assert_eq!(mlsd_not_a_directory("x").code, C::SYNTAX_ERROR_ARGS);
    }

    #[test]
    fn transfer_outcomes_map_to_rfc_codes() {
        let listing = Opening::Listing;
        assert_eq!(transfer_done(&listing, &Ok(()), "/").code, C::CLOSING_DATA);
        assert_eq!(transfer_done(&listing, &Err(TransferError::Aborted), "/").code, C::TRANSFER_ABORTED);
        let refused = Err(TransferError::Connect(std::io::ErrorKind::ConnectionRefused.into()));
        assert_eq!(transfer_done(&listing, &refused, "/").code, C::CANT_OPEN_DATA);
        let full = Err(TransferError::Storage(StorageError::NoSpace));
        assert_eq!(transfer_done(&listing, &full, "/f").code, C::EXCEEDED_STORAGE);
        let reuse = Err(TransferError::NotResumed);
        assert_eq!(transfer_done(&listing, &reuse, "/").code, C::NETWORK_PROTOCOL_NOT_SUPPORTED);
        let unique = Opening::Unique { name: "ftp1".into() };
        assert!(transfer_done(&unique, &Ok(()), "/ftp1").text().contains("ftp1"));
    }

    #[test]
    fn parse_errors_get_their_codes() {
        let unknown = ferry_proto::Command::parse(b"BOGUS").unwrap_err();
        assert_eq!(parse_error(&unknown).text(), "Unknown command BOGUS.");
        assert_eq!(parse_error(&unknown).code, C::SYNTAX_ERROR);
        let proto = ferry_proto::Command::parse(b"EPRT |3|x|1|").unwrap_err();
        assert_eq!(parse_error(&proto).text(), "Network protocol not supported, use (1,2).");
    }
}
