//! CWD, CDUP, PWD, MKD, RMD, SMNT, the listings (LIST, NLST, MLSD, MLST) and STAT with a path.

use std::time::SystemTime;

use ferry_proto::command::ListArgs;
use ferry_proto::listing::{self, EntryKind, MlsxRole};
use ferry_proto::{Reply, VirtualPath};
use futures_util::StreamExt;

use super::Answer;
use crate::auth::{Permission, Permissions};
use crate::events::{Event, FsOp};
use crate::replies::{self, Opening};
use crate::session::state::Cx;
use crate::session::state::{Account, Running};
use crate::storage::{Metadata, Pages, StorageError};
use crate::transfer::Job;

pub(crate) async fn cwd(a: &mut Account, arg: &str) -> Answer {
    let path = a.resolve(arg)?;
    match a.storage.metadata(&path).await {
        Ok(m) if m.is_dir() => {
            a.cwd = path;
            Ok(replies::directory_changed(&a.cwd, false))
        }
        Ok(_) => Err(replies::not_a_directory(arg)),
        Err(e) => Err(replies::storage_error(&e, arg)),
    }
}

pub(crate) fn cdup(a: &mut Account) -> Reply {
    a.cwd = a.cwd.parent();
    replies::directory_changed(&a.cwd, true)
}

pub(crate) fn pwd(a: &Account) -> Reply {
    replies::pwd(&a.cwd)
}

pub(crate) async fn mkd(a: &Account, cx: &Cx<'_>, arg: &str) -> Answer {
    let path = a.resolve(arg)?;
    a.storage.create_dir(&path).await.map_err(|e| replies::storage_error(&e, arg))?;
    cx.shared.events.emit(&Event::Fs(a.who(cx.conn), FsOp::Mkdir(&path.to_string())));
    Ok(replies::created(&path))
}

pub(crate) async fn rmd(a: &Account, cx: &Cx<'_>, arg: &str) -> Answer {
    let path = a.resolve(arg)?;
    match a.storage.symlink_metadata(&path).await {
        Ok(m) if !m.is_dir() => return Err(replies::not_a_directory(arg)),
        Err(e) => return Err(replies::storage_error(&e, arg)),
        Ok(_) => {}
    }
    a.storage.remove_dir(&path).await.map_err(|e| replies::storage_error(&e, arg))?;
    cx.shared.events.emit(&Event::Fs(a.who(cx.conn), FsOp::Rmdir(&path.to_string())));
    Ok(replies::directory_removed())
}

pub(crate) fn smnt() -> Reply {
    replies::smnt()
}

/// Which listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    List,
    Nlst,
    Mlsd,
}

/// The MLSx `perm=` fact (RFC 3659 section 7.5.5) from the user's permissions.
pub(crate) fn perm_fact(kind: &EntryKind, p: Permissions) -> String {
    let mut s = String::new();
    let mut add = |ok: bool, c: char| {
        if ok {
            s.push(c)
        }
    };
    if *kind == EntryKind::Dir {
        add(p.has(Permission::Write), 'c');
        add(p.has(Permission::Delete), 'd');
        add(true, 'e');
        add(p.has(Permission::Rename), 'f');
        add(p.has(Permission::List), 'l');
        add(p.has(Permission::Mkdir), 'm');
        add(p.has(Permission::Delete), 'p');
    } else {
        add(p.has(Permission::Write), 'a');
        add(p.has(Permission::Delete), 'd');
        add(p.has(Permission::Rename), 'f');
        add(p.has(Permission::Read), 'r');
        add(p.has(Permission::Write), 'w');
    }
    s
}

/// The entries a listing argument names: a directory's children, one file, or wildcard matches.
async fn entries(
    a: &Account,
    path: &VirtualPath,
    arg: &str,
    show_hidden: bool,
) -> Result<(bool, Vec<(String, Metadata)>), Reply> {
    let store = &a.storage;
    match store.metadata(path).await {
        Ok(m) if m.is_dir() => {
            let mut list = store.list(path).await.map_err(|e| replies::storage_error(&e, arg))?;
            if !show_hidden {
                list.retain(|(n, _)| !n.starts_with('.'));
            }
            list.sort_by(|a, b| a.0.cmp(&b.0));
            Ok((true, list))
        }
        Ok(_) => {
            let m = store.symlink_metadata(path).await.map_err(|e| replies::storage_error(&e, arg))?;
            Ok((false, vec![(path.file_name().unwrap_or("/").to_string(), m)]))
        }
        Err(StorageError::NotFound) if path.file_name().is_some_and(|n| n.contains(['*', '?'])) => {
            let pattern = path.file_name().unwrap_or_default();
            let parent = path.parent();
            let mut list = store.list(&parent).await.map_err(|e| replies::storage_error(&e, arg))?;
            list.retain(|(n, _)| {
                ferry_proto::path::glob_match(pattern, n)
                    && (show_hidden || !n.starts_with('.') || pattern.starts_with('.'))
            });
            list.sort_by(|a, b| a.0.cmp(&b.0));
            Ok((false, list))
        }
        Err(e) => Err(replies::storage_error(&e, arg)),
    }
}

/// How one listing formats its entries.
#[derive(Debug, Clone, Copy)]
struct Format {
    kind: ListKind,
    facts: ferry_proto::listing::Facts,
    perms: Permissions,
    show_hidden: bool,
    now: SystemTime,
}

impl Format {
    /// Appends the lines for `entries` to `out`.
    fn page(&self, entries: Vec<(String, Metadata)>, out: &mut String) {
        // perm= depends only on the kind: computed once per page, not per entry.
        let (dir_perm, file_perm) = match self.kind {
            ListKind::Mlsd => (perm_fact(&EntryKind::Dir, self.perms), perm_fact(&EntryKind::File, self.perms)),
            _ => Default::default(),
        };
        for (name, m) in entries {
            if !self.show_hidden && name.starts_with('.') {
                continue;
            }
            match self.kind {
                ListKind::List => listing::format_list_line(&m.into_entry(name), self.now, out),
                ListKind::Nlst => {
                    out.push_str(&name);
                    out.push_str("\r\n");
                }
                ListKind::Mlsd => {
                    let e = m.into_entry(name);
                    let perm = if e.kind == EntryKind::Dir { &dir_perm } else { &file_perm };
                    listing::format_mlsx_facts(&e, MlsxRole::Entry, self.facts, perm, out);
                    out.push_str("\r\n");
                }
            }
        }
    }
}

/// The listing of a directory, page by page as the storage reads it; `None` when `path` is not a
/// directory (a file, a pattern). The first page is read here, so an unreadable directory gets
/// its 550 before any data connection is opened.
async fn dir_pages(a: &Account, path: &VirtualPath, arg: &str, format: Format) -> Result<Option<Job>, Reply> {
    let store = &a.storage;
    if !store.metadata(path).await.is_ok_and(|m| m.is_dir()) {
        return Ok(None);
    }
    let err = |e: StorageError| replies::storage_error(&e, arg);
    if format.kind == ListKind::Nlst {
        // NLST needs names only: no stat per entry where the storage can avoid it.
        let pages = store.names_pages(path).await.map_err(err)?;
        let show_hidden = format.show_hidden;
        let text = move |names: Vec<String>| {
            let mut text = String::with_capacity(names.iter().map(|n| n.len() + 2).sum());
            for n in names.iter().filter(|n| show_hidden || !n.starts_with('.')) {
                text.push_str(n);
                text.push_str("\r\n");
            }
            text.into_bytes()
        };
        return send_pages(pages, text).await.map(Some).map_err(err);
    }
    let pages = store.list_pages(path).await.map_err(err)?;
    let text = move |entries: Vec<(String, Metadata)>| {
        let mut text = String::with_capacity(entries.len() * 64);
        format.page(entries, &mut text);
        text.into_bytes()
    };
    send_pages(pages, text).await.map(Some).map_err(err)
}

/// The job that sends `pages` formatted by `text`. The first page is read here, so an error
/// reading the directory is answered before a data connection is opened.
async fn send_pages<T: Send + 'static>(
    mut pages: Pages<T>,
    text: impl Fn(Vec<T>) -> Vec<u8> + Send + 'static,
) -> Result<Job, StorageError> {
    let first = text(pages.next().await.transpose()?.unwrap_or_default());
    let rest = pages.map(move |p| p.map(&text));
    Ok(Job::SendPages(Box::pin(futures_util::stream::once(std::future::ready(Ok(first))).chain(rest))))
}

/// LIST, NLST and MLSD: a transfer of the listing.
pub(crate) async fn list(
    a: &mut Account,
    cx: &mut Cx<'_>,
    arg: Option<&str>,
    kind: ListKind,
) -> Result<Running, Reply> {
    let args = match kind {
        ListKind::Mlsd => ListArgs { flags: String::new(), path: arg.filter(|a| !a.trim().is_empty()) },
        _ => ListArgs::parse(arg),
    };
    let path = a.resolve(args.path.unwrap_or(""))?;
    let shown = args.path.unwrap_or(".");
    let format = Format {
        kind,
        facts: cx.xfer.facts,
        perms: a.user.permissions,
        show_hidden: kind == ListKind::Mlsd || args.all(),
        now: SystemTime::now(),
    };
    let job = match dir_pages(a, &path, shown, format).await? {
        Some(job) => job,
        None => {
            let (is_dir, list) = entries(a, &path, shown, format.show_hidden).await?;
            if kind == ListKind::Mlsd && !is_dir {
                return Err(replies::mlsd_not_a_directory(shown));
            }
            let mut text = String::with_capacity(list.len() * 64);
            // Entries of a file or a pattern were filtered already.
            Format { show_hidden: true, ..format }.page(list, &mut text);
            Job::SendBytes(text.into_bytes())
        }
    };
    let verb = match kind {
        ListKind::List => "LIST",
        ListKind::Nlst => "NLST",
        ListKind::Mlsd => "MLSD",
    };
    super::transfer::start(a, cx, job, verb, path.to_string(), Opening::Listing)
}

pub(crate) async fn mlst(a: &Account, cx: &Cx<'_>, arg: Option<&str>) -> Answer {
    let arg = arg.filter(|a| !a.trim().is_empty());
    let path = a.resolve(arg.unwrap_or(""))?;
    let m = a.storage.metadata(&path).await.map_err(|e| replies::storage_error(&e, arg.unwrap_or(".")))?;
    let e = m.entry(path.as_str());
    let mut line = String::new();
    let role = if arg.is_none() && m.is_dir() { MlsxRole::CurrentDir } else { MlsxRole::Entry };
    listing::format_mlsx_facts(&e, role, cx.xfer.facts, &perm_fact(&e.kind, a.user.permissions), &mut line);
    Ok(replies::mlst(&path, line))
}

/// STAT path: the listing on the control connection. Its permission depends on the argument
/// (STAT alone needs none), so it is checked here.
pub(crate) async fn stat_path(a: &Account, arg: &str) -> Answer {
    a.require(Permission::List)?;
    let args = ListArgs::parse(Some(arg));
    let path = a.resolve(args.path.unwrap_or(""))?;
    let (is_dir, list) = entries(a, &path, args.path.unwrap_or("."), args.all()).await?;
    let now = SystemTime::now();
    let mut lines = Vec::with_capacity(list.len());
    for (name, m) in &list {
        let mut line = String::new();
        listing::format_list_line(&m.entry(name.as_str()), now, &mut line);
        line.truncate(line.len() - 2);
        lines.push(line);
    }
    Ok(replies::stat_path(&path, is_dir, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_facts() {
        assert_eq!(perm_fact(&EntryKind::File, Permissions::all()), "adfrw");
        assert_eq!(perm_fact(&EntryKind::Dir, Permissions::all()), "cdeflmp");
        assert_eq!(perm_fact(&EntryKind::File, Permissions::read_only()), "r");
        assert_eq!(perm_fact(&EntryKind::Dir, Permissions::read_only()), "el");
    }
}
