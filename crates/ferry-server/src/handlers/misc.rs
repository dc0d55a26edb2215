//! SYST, FEAT, OPTS, HELP, NOOP and STAT without arguments.

use std::sync::atomic::Ordering;

use ferry_proto::command::{OptsCommand, VERBS};
use ferry_proto::listing::Facts;
use ferry_proto::{Reply, ReplyCode as C};

use super::Answer;
use crate::replies::r;
use crate::session::{Login, Session};

pub(super) fn syst() -> Answer {
    Some(r(C::SYSTEM_TYPE, "UNIX Type: L8"))
}

pub(super) fn feat(s: &mut Session) -> Answer {
    let mut lines: Vec<String> = ["EPRT", "EPSV", "MDTM", "MFMT", "PASV", "REST STREAM", "SIZE", "TVFS", "UTF8"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    if s.shared.config.storage.kind != crate::config::StorageKind::Local {
        // Object stores set modification times themselves.
        lines.retain(|l| l != "MFMT");
    }
    let at = lines.iter().position(|l| l.as_str() > "MLST").unwrap_or(lines.len());
    lines.insert(at, s.facts.feat_line());
    if s.tls.is_some() && s.shared.config.tls.effective_policy() != crate::tls::TlsPolicy::Off {
        lines.insert(0, "AUTH TLS".into());
        lines.insert(5, "PBSZ".into());
        lines.insert(6, "PROT".into());
    }
    Some(Reply::multi(C::SYSTEM_STATUS, "Extensions supported:", lines, "End"))
}

pub(super) fn opts(s: &mut Session, o: OptsCommand) -> Answer {
    Some(match o {
        OptsCommand::Utf8(true) => r(C::OK, "Always in UTF8 mode."),
        OptsCommand::Utf8(false) => r(C::PARAM_NOT_IMPLEMENTED, "UTF8 cannot be turned off; paths are UTF-8."),
        OptsCommand::Mlst(names) => {
            s.facts = Facts::from_names(&names);
            r(C::OK, format!("MLST OPTS {}", s.facts.enabled_names()))
        }
        OptsCommand::Other(x) => {
            r(C::SYNTAX_ERROR_ARGS, format!("Option not understood: {}", x.chars().take(40).collect::<String>()))
        }
    })
}

pub(super) fn help(cmd: Option<&str>) -> Answer {
    match cmd {
        None => {
            let mut lines = Vec::new();
            for chunk in VERBS.chunks(8) {
                lines
                    .push(chunk.iter().map(|v| format!("{v:<5}")).collect::<Vec<_>>().join(" ").trim_end().to_string());
            }
            Some(Reply::multi(C::HELP, "The following commands are recognized:", lines, "Help OK."))
        }
        Some(c) => {
            let up = c.to_ascii_uppercase();
            if VERBS.contains(&up.as_str()) {
                Some(r(C::HELP, format!("Syntax: {}", syntax(&up))))
            } else {
                Some(r(C::NOT_IMPLEMENTED, format!("Unknown command {}.", up.chars().take(16).collect::<String>())))
            }
        }
    }
}

fn syntax(verb: &str) -> &'static str {
    match verb {
        "USER" => "USER <sp> username",
        "PASS" => "PASS <sp> password",
        "CWD" | "XCWD" => "CWD <sp> pathname",
        "PORT" => "PORT <sp> h1,h2,h3,h4,p1,p2",
        "EPRT" => "EPRT <sp> |proto|address|port|",
        "EPSV" => "EPSV [<sp> 1|2|ALL]",
        "TYPE" => "TYPE <sp> A|I|L 8",
        "STRU" => "STRU <sp> F",
        "MODE" => "MODE <sp> S",
        "REST" => "REST <sp> byte-offset",
        "RETR" | "STOR" | "APPE" | "DELE" | "RMD" | "MKD" | "XMKD" | "XRMD" | "RNFR" | "RNTO" | "SIZE" | "MDTM" => {
            "<verb> <sp> pathname"
        }
        "LIST" | "NLST" | "MLSD" | "MLST" | "STAT" => "<verb> [<sp> pathname]",
        "MFMT" => "MFMT <sp> YYYYMMDDHHMMSS <sp> pathname",
        "SITE" => "SITE <sp> CHMOD|HELP ...",
        "OPTS" => "OPTS <sp> UTF8 ON | MLST facts",
        "HELP" => "HELP [<sp> command]",
        _ => "<verb> (no arguments)",
    }
}

pub(super) fn noop() -> Answer {
    Some(r(C::OK, "NOOP ok."))
}

pub(super) fn stat(s: &mut Session) -> Answer {
    if let Some(t) = &s.transfer {
        let n = t.progress.load(Ordering::Relaxed);
        return Some(r(
            C::FILE_STATUS,
            format!(
                "Status: {} {} in progress, {} bytes transferred in {:.1}s.",
                t.verb,
                t.path,
                n,
                t.started.elapsed().as_secs_f64()
            ),
        ));
    }
    let mut lines = vec![format!("Connected from {}", s.peer.ip())];
    match (&s.login, &s.user) {
        (Login::Done, Some(u)) => {
            lines.push(format!("Logged in as {}{}", u.name, if u.anonymous { " (anonymous)" } else { "" }))
        }
        _ => lines.push("Not logged in".into()),
    }
    lines.push(format!("TYPE: {}; STRUcture: File; MODE: Stream", if s.ascii { "ASCII" } else { "BINARY" }));
    lines.push(format!("Working directory: {}", s.cwd));
    lines.push(match &s.data {
        None => "No data connection set up".into(),
        Some(crate::datachan::DataSetup::Passive(l)) => {
            format!("Passive mode, listening on port {}", l.local_addr().map(|a| a.port()).unwrap_or(0))
        }
        Some(crate::datachan::DataSetup::Active(a)) => format!("Active mode, will connect to {a}"),
    });
    if let Some(n) = s.rest {
        lines.push(format!("Restart offset: {n}"));
    }
    lines.push(format!("Session time: {}s", s.connected_at.elapsed().as_secs()));
    Some(Reply::multi(C::SYSTEM_STATUS, "Ferry FTP server status:", lines, "End of status."))
}
