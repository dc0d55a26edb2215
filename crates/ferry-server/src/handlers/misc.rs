//! SYST, FEAT, OPTS, HELP, NOOP and STAT without arguments.

use std::sync::atomic::Ordering;

use ferry_proto::command::spec::Feat;
use ferry_proto::command::{OptsCommand, Verb, VERBS};
use ferry_proto::listing::Facts;
use ferry_proto::{Reply, ReplyCode};

use crate::datachan::DataSetup;
use crate::replies::{self, DataStatus, Status};
use crate::session::state::Cx;
use crate::session::state::{Auth, Pending, Repr, TlsState};

pub(crate) fn syst() -> Reply {
    replies::syst()
}

/// FEAT (RFC 2389): the `FEAT` lines of the command rows, as this server and session offer them.
pub(crate) fn feat(cx: &Cx<'_>) -> Reply {
    let tls = !matches!(cx.tls, TlsState::Unavailable);
    // Object stores set modification times themselves, and cannot write at offsets.
    let local = cx.config.storage.kind == crate::config::StorageKind::Local;
    let mut lines: Vec<String> = Verb::ALL
        .iter()
        .filter_map(|v| match v.spec().feat {
            Feat::None => None,
            Feat::Always(line) => Some(line.to_string()),
            Feat::WithTls(line) => tls.then(|| line.to_string()),
            Feat::WithLocalStorage(line) => local.then(|| line.to_string()),
            Feat::MlstFacts => Some(cx.xfer.facts.feat_line()),
            Feat::HashAlgorithms => Some(ferry_proto::command::HashAlg::feat_line(cx.xfer.hash)),
        })
        .collect();
    lines.sort();
    replies::feat(lines)
}

pub(crate) fn opts(cx: &mut Cx<'_>, o: OptsCommand) -> Reply {
    match o {
        OptsCommand::Utf8(on) => replies::utf8(on),
        OptsCommand::Mlst(names) => {
            cx.xfer.facts = Facts::from_names(&names);
            replies::mlst_opts(&cx.xfer.facts.enabled_names())
        }
        OptsCommand::Hash(None) => replies::hash_algorithm(cx.xfer.hash),
        OptsCommand::Hash(Some(Ok(alg))) => {
            cx.xfer.hash = alg;
            replies::hash_algorithm(alg)
        }
        OptsCommand::Hash(Some(Err(name))) => replies::hash_algorithm_unknown(&name),
        OptsCommand::Other(x) => replies::opts_unknown(&x),
    }
}

/// HELP, and HELP verb: the list and the syntax come from the command rows.
pub(crate) fn help(cmd: Option<&str>) -> Reply {
    match cmd {
        None => replies::help(VERBS),
        Some(c) => match Verb::lookup(c) {
            Some(v) => replies::help_syntax(v.spec().syntax),
            None => replies::unknown_command(ReplyCode::NOT_IMPLEMENTED, &c.to_ascii_uppercase()),
        },
    }
}

pub(crate) fn noop() -> Reply {
    replies::noop()
}

/// STAT without an argument: the running transfer's progress, or the session's state.
pub(crate) fn stat(auth: &Auth, cx: &Cx<'_>) -> Reply {
    if let Some(t) = cx.running.as_ref() {
        let n = t.progress.load(Ordering::Relaxed);
        return replies::stat_transfer(t.info.verb, &t.info.path, n, t.started.elapsed().as_secs_f64());
    }
    let account = auth.account();
    let data = match &cx.xfer.data {
        None => DataStatus::None,
        Some(DataSetup::Active(a)) => DataStatus::Active(*a),
        Some(passive) => DataStatus::Passive(passive.passive_port().unwrap_or(0)),
    };
    replies::stat(&Status {
        peer: cx.conn.peer,
        user: account.map(|a| (a.user.name.as_str(), a.user.anonymous)),
        ascii: cx.xfer.repr == Repr::Ascii,
        cwd: account.map(|a| &a.cwd),
        data,
        rest: account.and_then(|a| match a.pending {
            Pending::Rest(n) => Some(n),
            _ => None,
        }),
        secs: cx.conn.since.elapsed().as_secs(),
    })
}
