//! USER, PASS, ACCT, REIN, QUIT, HOST and the RFC 2228 security commands: the transitions of
//! [`Auth`] and [`TlsState`].

use ferry_proto::command::ProtLevel;
use ferry_proto::Reply;

use super::{Act, Answer};
use crate::events::{Event, Who};
use crate::replies;
use crate::session::policy::tls_required;
use crate::session::state::Cx;
use crate::session::state::{Account, Auth, TlsState};
use crate::tls::TlsPolicy;

pub(crate) fn user(auth: &mut Auth, cx: &mut Cx<'_>, name: String) -> Answer {
    if tls_policy(cx) == TlsPolicy::Required && !cx.tls.control_protected() {
        return Err(replies::tls_required_before_user());
    }
    // USER while logged in starts a new login (RFC 959 section 4.1.1).
    if matches!(auth, Auth::LoggedIn(_)) {
        cx.reset(auth);
    }
    let anonymous = cx.shared.accounts.of(cx.conn.host.as_deref()).is_anonymous(&name);
    let reply = replies::need_password(&name, anonymous);
    *auth = Auth::NeedPassword(name);
    Ok(reply)
}

pub(crate) async fn pass(auth: &mut Auth, cx: &mut Cx<'_>, password: String) -> Act {
    let name = match auth {
        Auth::NeedPassword(n) => std::mem::take(n),
        Auth::LoggedIn(_) => return replies::already_logged_in().into(),
        Auth::Fresh => return replies::user_first().into(),
    };
    // Whatever happens next, the USER is used up.
    *auth = Auth::Fresh;
    let authenticator = cx.shared.accounts.of(cx.conn.host.as_deref());
    let user = match authenticator.authenticate(&name, &password, cx.conn.peer.ip()).await {
        Ok(user) => user,
        Err(crate::auth::AuthError::Unavailable(e)) => return store_unavailable(&name, &e),
        Err(e) => return failed_login(cx, &name, &e.to_string()).await,
    };
    if user.tls_required && !cx.tls.control_protected() {
        tracing::warn!(user = %user.name, "login refused: the account requires TLS");
        return replies::account_requires_tls().into();
    }
    let limits = cx.shared.limit_state.clone();
    let slot = match limits.claim_account(&user.name, user.limits.max_sessions).await {
        Ok(Some(slot)) => slot,
        Ok(None) => {
            tracing::warn!(user = %user.name, "login refused: too many sessions for the account");
            return replies::too_many_account_sessions().into();
        }
        Err(e) => return store_unavailable(&user.name, &e.0),
    };
    let storage = match cx.shared.storage_for(&user) {
        Ok(storage) => storage,
        Err(e) => {
            tracing::error!(user = %user.name, root = %user.root.display(), error = %e, "cannot open the user's root");
            return replies::home_unavailable().into();
        }
    };
    limits.login_succeeded(cx.conn.peer.ip());
    let quota = user.limits.quota_bytes.is_some() || user.limits.quota_files.is_some();
    let measurable = cx.config.storage.kind == crate::config::StorageKind::Local || limits.cluster.is_some();
    let usage = if quota && !measurable {
        // Without an accounts database, usage is measured by walking the root directory, which
        // an object store does not have: quotas need PostgreSQL accounts there (docs/accounts.md).
        tracing::warn!(user = %user.name, "quota not enforced on S3 storage without a database of accounts");
        None
    } else if quota {
        Some(limits.ledger(&user.name, &user.root, &user.limits).await)
    } else {
        None
    };
    cx.conn.admission.logged_in();
    // The session runs with the settings in force when it logged in (a reload since it connected).
    *cx.config = cx.shared.config();
    let account = Account::new(user, storage, usage, slot);
    cx.shared.events.emit(&Event::LoginOk(account.who(cx.conn)));
    *auth = Auth::LoggedIn(Box::new(account));
    replies::logged_in().into()
}

/// The accounts store cannot be reached: 421 and close (the password is not known to be wrong:
/// nothing is counted against the client).
fn store_unavailable(name: &str, error: &str) -> Act {
    tracing::error!(user = %name, error, "login refused: the accounts store is unavailable");
    Act::Close(vec![replies::accounts_unavailable()])
}

/// A wrong name or password: delay, count, maybe ban, maybe close.
async fn failed_login(cx: &mut Cx<'_>, name: &str, reason: &str) -> Act {
    cx.conn.failed_logins += 1;
    let who = Who { id: cx.conn.id, ip: cx.conn.peer.ip(), user: Some(name), anonymous: false, root: None };
    cx.shared.events.emit(&Event::LoginFailed(who, reason));
    let limits = &cx.config.limits;
    let verdict = cx.shared.limit_state.login_failed(cx.conn.peer.ip(), limits);
    tokio::time::sleep(verdict.delay).await;
    if let Some(ban) = &verdict.ban {
        cx.shared.events.emit(&Event::Banned(ban, "failed logins"));
    }
    if verdict.ban.is_some() {
        return Act::Close(vec![replies::login_incorrect(), replies::banned_now()]);
    }
    if cx.conn.failed_logins >= limits.max_login_failures {
        return Act::Close(vec![replies::login_incorrect(), replies::too_many_failures()]);
    }
    replies::login_incorrect().into()
}

pub(crate) fn acct(auth: &Auth) -> Reply {
    replies::acct(matches!(auth, Auth::LoggedIn(_)))
}

pub(crate) fn rein(auth: &mut Auth, cx: &mut Cx<'_>) -> Reply {
    cx.reset(auth);
    // RFC 7151 section 3.3: after REIN, as if HOST had not been sent (the TLS server name stays).
    cx.conn.host = cx.conn.tls_host.clone();
    cx.conn.failed_logins = 0;
    replies::rein()
}

pub(crate) fn quit(cx: &mut Cx<'_>) -> Act {
    if let Some(t) = cx.running.as_mut() {
        // RFC 959: the transfer finishes, its reply is sent, then the connection closes.
        t.then.quit = true;
        return Act::Later;
    }
    Act::Close(vec![replies::goodbye()])
}

/// HOST (RFC 7151): selects a virtual host, before USER.
pub(crate) fn host(auth: &Auth, cx: &mut Cx<'_>, name: &str) -> Answer {
    if !matches!(auth, Auth::Fresh) {
        return Err(replies::host_after_user());
    }
    let hosts = &cx.shared.accounts.hosts;
    if !hosts.any() {
        // One host: every name is it.
        return Ok(replies::host_accepted(&cx.config.banner));
    }
    let host = hosts.find(name).ok_or_else(|| replies::unknown_host(name))?;
    if let Some(sni) = cx.conn.tls_host.as_ref().filter(|sni| !std::sync::Arc::ptr_eq(sni, &host)) {
        return Err(replies::host_not_tls_name(name, &sni.config.name));
    }
    let banner = host.config.banner.clone().unwrap_or_else(|| cx.config.banner.clone());
    tracing::debug!(host = %host.config.name, "virtual host selected");
    cx.conn.host = Some(host);
    Ok(replies::host_accepted(&banner))
}

fn tls_policy(cx: &Cx<'_>) -> TlsPolicy {
    match cx.tls {
        TlsState::Unavailable => TlsPolicy::Off,
        _ => cx.config.tls.effective_policy(),
    }
}

/// AUTH TLS / AUTH SSL (RFC 4217 section 4).
pub(crate) fn auth(cx: &mut Cx<'_>, mechanism: &str) -> Act {
    match cx.tls {
        TlsState::Unavailable => replies::tls_not_configured().into(),
        TlsState::Protected { .. } => replies::already_tls().into(),
        // The old AUTH SSL / TLS-P drafts also protect data connections.
        TlsState::Offered if matches!(mechanism, "TLS" | "TLS-C" | "SSL" | "TLS-P") => {
            Act::StartTls { reply: replies::auth_ok(mechanism), private_data: matches!(mechanism, "SSL" | "TLS-P") }
        }
        TlsState::Offered => replies::unknown_mechanism().into(),
    }
}

/// PBSZ (RFC 4217 section 8): always 0 for TLS.
pub(crate) fn pbsz() -> Reply {
    replies::pbsz_ok()
}

/// PROT (RFC 4217 section 9).
pub(crate) fn prot(auth: &Auth, cx: &mut Cx<'_>, level: ProtLevel) -> Reply {
    let required = tls_required(cx.config, cx.tls, auth);
    let TlsState::Protected { private_data, .. } = cx.tls else {
        // The policy let PROT through only on a protected control connection.
        return replies::needs_tls("PROT");
    };
    match level {
        ProtLevel::Private => {
            *private_data = true;
            replies::prot_set(true)
        }
        ProtLevel::Clear if required => replies::prot_clear_refused(),
        ProtLevel::Clear => {
            *private_data = false;
            replies::prot_set(false)
        }
        ProtLevel::Safe | ProtLevel::Confidential => replies::prot_unsupported(),
    }
}

/// CCC (RFC 4217 section 12.3): refused; a clear control channel after AUTH would expose commands
/// again.
pub(crate) fn ccc() -> Reply {
    replies::ccc_refused()
}
