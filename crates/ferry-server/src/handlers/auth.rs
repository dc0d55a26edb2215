//! USER, PASS, ACCT, REIN, QUIT, HOST and the RFC 2228 security commands.

use ferry_proto::command::ProtLevel;
use ferry_proto::{Reply, ReplyCode as C};

use super::Answer;
use crate::replies::{self, r};
use crate::session::{Flow, Login, Session};
use crate::tls::TlsPolicy;

pub(super) fn user(s: &mut Session, name: String) -> Answer {
    if policy(s) == TlsPolicy::Required && !s.control_tls {
        return Some(r(C::NOT_LOGGED_IN, "TLS required: send AUTH TLS before USER."));
    }
    // USER while logged in starts a new login (RFC 959 section 4.1.1).
    if s.login == Login::Done {
        let failed = s.failed_logins;
        s.reset();
        s.failed_logins = failed;
    }
    let text = if s.shared.auth.is_anonymous(&name) {
        "Anonymous login okay, send your e-mail address as password.".to_string()
    } else {
        let shown: String = name.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect();
        format!("Password required for {shown}.")
    };
    s.login = Login::NeedPassword(name);
    Some(r(C::NEED_PASSWORD, text))
}

pub(super) async fn pass(s: &mut Session, password: String) -> Flow {
    let name = match &s.login {
        Login::NeedPassword(n) => n.clone(),
        Login::Done => {
            s.reply(r(C::LOGGED_IN, "Already logged in."));
            return Flow::Continue;
        }
        Login::Fresh => {
            s.reply(r(C::BAD_SEQUENCE, "Login with USER first."));
            return Flow::Continue;
        }
    };
    let auth = s.shared.auth.clone();
    match auth.authenticate(&name, &password).await {
        Ok(user) if user.tls_required && !s.control_tls => {
            tracing::warn!(user = %user.name, "login refused: the account requires TLS");
            s.login = Login::Fresh;
            s.reply(r(C::NOT_LOGGED_IN, "This account requires TLS: send AUTH TLS first."));
            Flow::Continue
        }
        Ok(user) => {
            let limits = s.shared.limit_state.clone();
            let Some(slot) = limits.claim_account(&user.name, user.limits.max_sessions) else {
                tracing::warn!(user = %user.name, "login refused: too many sessions for the account");
                s.login = Login::Fresh;
                s.reply(r(C::NOT_LOGGED_IN, "Too many sessions for this account; try again later."));
                return Flow::Continue;
            };
            match s.shared.storage_for(&user) {
                Ok(storage) => {
                    limits.login_succeeded(s.peer.ip());
                    let quota = user.limits.quota_bytes.is_some() || user.limits.quota_files.is_some();
                    if quota && s.shared.config.storage.kind != crate::config::StorageKind::Local {
                        // Usage is measured by walking the root directory, which an object store
                        // does not have: quotas are not enforced there (docs/s3.md).
                        tracing::warn!(user = %user.name, "quota not enforced on S3 storage");
                    } else if quota {
                        s.usage = Some(limits.usage(&user.name, &user.root).await);
                    }
                    tracing::info!(user = %user.name, anonymous = user.anonymous, "logged in");
                    s.account_slot = Some(slot);
                    s.storage = Some(storage);
                    s.user = Some(user);
                    s.login = Login::Done;
                    s.reply(r(C::LOGGED_IN, "Login successful."));
                    Flow::Continue
                }
                Err(e) => {
                    tracing::error!(user = %user.name, root = %user.root.display(), error = %e, "cannot open the user's root");
                    s.login = Login::Fresh;
                    s.reply(r(C::NOT_LOGGED_IN, "Home directory unavailable."));
                    Flow::Continue
                }
            }
        }
        Err(e) => {
            s.failed_logins += 1;
            s.login = Login::Fresh;
            tracing::warn!(user = %name, failures = s.failed_logins, reason = %e, "failed login");
            let limits = &s.shared.config.limits;
            let verdict = s.shared.limit_state.login_failed(s.peer.ip(), limits);
            let max = limits.max_login_failures;
            tokio::time::sleep(verdict.delay).await;
            s.reply(replies::login_incorrect());
            if verdict.banned {
                s.reply(r(C::SERVICE_NOT_AVAILABLE, "Too many failed logins from your address; closing connection."));
                return Flow::Close;
            }
            if s.failed_logins >= max {
                s.reply(r(C::SERVICE_NOT_AVAILABLE, "Too many failed logins; closing connection."));
                return Flow::Close;
            }
            Flow::Continue
        }
    }
}

pub(super) fn acct(s: &mut Session) -> Answer {
    Some(match s.login {
        Login::Done => r(C::SUPERFLUOUS, "ACCT not needed."),
        _ => r(C::BAD_SEQUENCE, "Login with USER and PASS first; no account is needed."),
    })
}

pub(super) fn rein(s: &mut Session) -> Answer {
    s.reset();
    Some(r(C::SERVICE_READY, "Service ready for new user."))
}

pub(super) fn quit(s: &mut Session) -> Flow {
    if s.transfer.is_some() {
        // RFC 959: the transfer finishes, its reply is sent, then the connection closes.
        s.quit_pending = true;
        return Flow::Continue;
    }
    s.reply(replies::goodbye());
    Flow::Close
}

pub(super) fn host(s: &mut Session) -> Answer {
    let _ = s;
    Some(r(C::PARAM_NOT_IMPLEMENTED, "HOST: virtual hosts are not supported; one host is served."))
}

fn policy(s: &Session) -> TlsPolicy {
    if s.tls.is_none() {
        TlsPolicy::Off
    } else {
        s.shared.config.tls.effective_policy()
    }
}

/// Whether this session must use TLS for the control connection and for data.
pub(super) fn tls_required(s: &Session) -> bool {
    policy(s) == TlsPolicy::Required || s.user.as_ref().is_some_and(|u| u.tls_required)
}

/// AUTH TLS / AUTH SSL (RFC 4217 section 4).
pub(super) fn auth(s: &mut Session, mechanism: &str) -> Flow {
    let reply = if policy(s) == TlsPolicy::Off {
        Reply::new(C::PARAM_NOT_IMPLEMENTED, "TLS is not configured on this server.")
    } else if s.control_tls {
        Reply::new(C::BAD_SEQUENCE, "Already using TLS.")
    } else if matches!(mechanism, "TLS" | "TLS-C" | "SSL" | "TLS-P") {
        // The old AUTH SSL / TLS-P drafts also protect data connections.
        if matches!(mechanism, "SSL" | "TLS-P") {
            s.prot_private = true;
        }
        s.reply(Reply::new(C::AUTH_OK, format!("AUTH {mechanism} successful; start the TLS handshake.")));
        return Flow::StartTls;
    } else {
        Reply::new(C::PARAM_NOT_IMPLEMENTED, "Unknown security mechanism; use AUTH TLS.")
    };
    s.reply(reply);
    Flow::Continue
}

/// PBSZ (RFC 4217 section 8): always 0 for TLS.
pub(super) fn pbsz(s: &mut Session) -> Answer {
    if !s.control_tls {
        return Some(r(C::BAD_SEQUENCE, "PBSZ needs AUTH TLS first."));
    }
    s.pbsz = true;
    Some(r(C::OK, "PBSZ=0"))
}

/// PROT (RFC 4217 section 9).
pub(super) fn prot(s: &mut Session, level: ProtLevel) -> Answer {
    if !s.control_tls {
        return Some(r(C::BAD_SEQUENCE, "PROT needs AUTH TLS first."));
    }
    Some(match level {
        ProtLevel::Private => {
            s.prot_private = true;
            r(C::OK, "Protection level set to Private.")
        }
        ProtLevel::Clear if tls_required(s) => {
            r(C::POLICY_DENIED, "Policy requires protected data connections (PROT P).")
        }
        ProtLevel::Clear => {
            s.prot_private = false;
            r(C::OK, "Protection level set to Clear.")
        }
        _ => r(ReplyCodeExt::PROT_LEVEL_NOT_SUPPORTED, "Only PROT C and PROT P are supported."),
    })
}

/// CCC (RFC 4217 section 12.3): refused; a clear control channel after AUTH would expose commands
/// again.
pub(super) fn ccc(s: &mut Session) -> Answer {
    if !s.control_tls {
        return Some(r(C::BAD_SEQUENCE, "Not using TLS."));
    }
    Some(r(C::POLICY_DENIED, "CCC refused by policy: the control connection stays protected."))
}

struct ReplyCodeExt;
impl ReplyCodeExt {
    /// RFC 2228: requested PROT level not supported by mechanism.
    const PROT_LEVEL_NOT_SUPPORTED: C = C(536);
}
