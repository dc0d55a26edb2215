//! USER, PASS, ACCT, REIN, QUIT, HOST and the RFC 2228 security commands.

use std::time::Duration;

use ferry_proto::{Reply, ReplyCode as C};

use super::Answer;
use crate::replies::{self, r};
use crate::session::{Flow, Login, Session};

pub(super) fn user(s: &mut Session, name: String) -> Answer {
    // USER while logged in starts a new login (RFC 959 section 4.1.1).
    if s.login == Login::Done {
        let failed = s.failed_logins;
        s.reset();
        s.failed_logins = failed;
    }
    let text = if s.shared.auth.is_anonymous(&name) {
        "Anonymous login okay, send your e-mail address as password.".to_string()
    } else {
        format!("Password required for {name}.")
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
        Ok(user) => match s.shared.storage_for(&user) {
            Ok(storage) => {
                tracing::info!(user = %user.name, anonymous = user.anonymous, "logged in");
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
        },
        Err(e) => {
            s.failed_logins += 1;
            s.login = Login::Fresh;
            tracing::warn!(user = %name, failures = s.failed_logins, reason = %e, "failed login");
            let limits = &s.shared.config.limits;
            let delay = Duration::from_millis(limits.failed_login_delay_ms);
            let max = limits.max_login_failures;
            tokio::time::sleep(delay).await;
            if s.failed_logins >= max {
                s.reply(replies::login_incorrect());
                s.reply(r(C::SERVICE_NOT_AVAILABLE, "Too many failed logins; closing connection."));
                return Flow::Close;
            }
            s.reply(replies::login_incorrect());
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

pub(super) fn security(s: &mut Session) -> Answer {
    let _ = s;
    Some(Reply::new(C::PARAM_NOT_IMPLEMENTED, "TLS is not configured on this server."))
}
