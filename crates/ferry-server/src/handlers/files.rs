//! DELE, RNFR/RNTO, SIZE, MDTM, MFMT and SITE.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_proto::command::SiteCommand;
use ferry_proto::listing;
use ferry_proto::{Reply, ReplyCode as C};

use super::{tri, Answer};
use crate::auth::Permission;
use crate::replies::{self, r};
use crate::session::Session;

pub(super) async fn dele(s: &mut Session, arg: &str) -> Answer {
    tri!(s.require(Permission::Delete));
    let path = tri!(s.resolve(arg));
    let store = tri!(s.store());
    let size = match &s.usage {
        Some(_) => store.symlink_metadata(&path).await.ok().map(|m| m.size),
        None => None,
    };
    Some(match store.remove_file(&path).await {
        Ok(()) => {
            if let (Some(usage), Some(size)) = (&s.usage, size) {
                let mut u = usage.lock().unwrap_or_else(|p| p.into_inner());
                u.bytes = u.bytes.saturating_sub(size);
                u.files = u.files.saturating_sub(1);
            }
            r(C::FILE_ACTION_OK, "File deleted.")
        }
        Err(e) => replies::storage_error(&e, arg),
    })
}

pub(super) async fn rnfr(s: &mut Session, arg: &str) -> Answer {
    tri!(s.require(Permission::Rename));
    let path = tri!(s.resolve(arg));
    let store = tri!(s.store());
    Some(match store.symlink_metadata(&path).await {
        Ok(_) if path.is_root() => replies::permission_denied(),
        Ok(_) => {
            s.rnfr = Some(path);
            r(C::PENDING_FURTHER_INFO, "Ready for RNTO.")
        }
        Err(e) => replies::storage_error(&e, arg),
    })
}

pub(super) async fn rnto(s: &mut Session, arg: &str) -> Answer {
    let Some(from) = s.rnfr.take() else {
        return Some(r(C::BAD_SEQUENCE, "RNFR required first."));
    };
    tri!(s.require(Permission::Rename));
    let to = tri!(s.resolve(arg));
    let store = tri!(s.store());
    Some(match store.rename(&from, &to).await {
        Ok(()) => r(C::FILE_ACTION_OK, "Rename successful."),
        Err(e) => replies::storage_error(&e, arg),
    })
}

pub(super) async fn size(s: &mut Session, arg: &str) -> Answer {
    tri!(s.require(Permission::Read));
    let path = tri!(s.resolve(arg));
    let store = tri!(s.store());
    Some(match store.metadata(&path).await {
        Ok(m) if m.is_dir() => r(C::FILE_UNAVAILABLE, format!("{arg}: Not a regular file.")),
        Ok(m) => r(C::FILE_STATUS, m.size.to_string()),
        Err(e) => replies::storage_error(&e, arg),
    })
}

/// Drops sub-second precision: MDTM answers `YYYYMMDDHHMMSS` exactly, which every client parses.
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

pub(super) async fn mdtm(s: &mut Session, arg: &str) -> Answer {
    tri!(s.require(Permission::Read));
    let path = tri!(s.resolve(arg));
    let store = tri!(s.store());
    Some(match store.metadata(&path).await {
        Ok(Metadata { modified: Some(t), .. }) => r(C::FILE_STATUS, listing::format_timeval(whole_seconds(t))),
        Ok(_) => r(C::FILE_UNAVAILABLE, format!("{arg}: Modification time unknown.")),
        Err(e) => replies::storage_error(&e, arg),
    })
}

use crate::storage::Metadata;

pub(super) async fn mfmt(s: &mut Session, time: SystemTime, arg: &str) -> Answer {
    tri!(s.require(Permission::Write));
    let path = tri!(s.resolve(arg));
    let store = tri!(s.store());
    if !store.capabilities().set_modified {
        return Some(r(C::NOT_IMPLEMENTED, "MFMT is not supported by this storage."));
    }
    Some(match store.set_modified(&path, time).await {
        Ok(()) => r(C::FILE_STATUS, format!("Modify={}; {arg}", listing::format_timeval(time))),
        Err(e) => replies::storage_error(&e, arg),
    })
}

pub(super) async fn site(s: &mut Session, cmd: SiteCommand) -> Answer {
    match cmd {
        SiteCommand::Help(_) => Some(Reply::multi(
            C::HELP,
            "SITE commands recognized:",
            vec![
                "CHMOD <mode> <path>   set Unix permission bits (octal)".into(),
                "HELP                  this text".into(),
            ],
            "End of SITE help.",
        )),
        SiteCommand::Chmod { mode, path: arg } => {
            tri!(s.require(Permission::Write));
            let path = tri!(s.resolve(&arg));
            let store = tri!(s.store());
            if !store.capabilities().chmod {
                return Some(r(C::NOT_IMPLEMENTED, "SITE CHMOD is not supported by this storage."));
            }
            Some(match store.set_mode(&path, mode).await {
                Ok(()) => r(C::OK, format!("SITE CHMOD {mode:o} {arg}: permissions changed.")),
                Err(e) => replies::storage_error(&e, &arg),
            })
        }
        SiteCommand::Other(x) => {
            let sub: String = x.split(' ').next().unwrap_or("").chars().take(16).collect();
            Some(r(
                C::PARAM_NOT_IMPLEMENTED,
                format!("Unknown SITE command {}; try SITE HELP.", sub.to_ascii_uppercase()),
            ))
        }
    }
}
