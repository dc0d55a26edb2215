//! ls, get, put, rm, mkdir, rmdir, mv, cat, stat.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use ferry_client::client::StoreHow;
use ferry_client::digest::{HashingReader, HashingWriter, LocalDigest};
use ferry_client::{ClientError, FtpUrl, RemoteEntry};
use ferry_proto::command::SegmentOp;
use ferry_proto::listing::EntryKind;
use tokio::io::AsyncWriteExt;

use super::verify::Verify;
use super::Ctx;

fn kind_name(k: &EntryKind) -> &'static str {
    match k {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink(_) => "link",
    }
}

fn unix_secs(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs())
}

/// `ferry ls`.
pub async fn ls(ctx: &Ctx, url: &FtpUrl, long: bool, json: bool) -> Result<()> {
    let mut c = ctx.connect(url).await?;
    let mut entries = c.list(&url.path).await?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    if json {
        let v: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name,
                    "type": kind_name(&e.kind),
                    "size": e.size,
                    "modified": unix_secs(e.modified),
                    "modified_utc": e.modified.map(ferry_proto::listing::format_timeval),
                    "mode": e.mode.map(|m| format!("{m:o}")),
                    "target": match &e.kind { EntryKind::Symlink(t) => t.clone(), _ => None },
                })
            })
            .collect();
        out = serde_json::to_string_pretty(&v)?;
        out.push('\n');
    } else {
        for e in &entries {
            if long {
                out.push_str(&long_line(e));
                out.push('\n');
            } else {
                out.push_str(&e.name);
                if e.kind == EntryKind::Dir {
                    out.push('/');
                }
                out.push('\n');
            }
        }
    }
    print!("{out}");
    c.quit().await;
    Ok(())
}

/// `YYYY-MM-DD HH:MM` (UTC), as `ls -l --time-style=long-iso` prints it; the MLSD fact
/// (`20261206183557.836`, RFC 3659 section 2.3) cut to the minute.
pub fn short_time(t: SystemTime) -> String {
    let v = ferry_proto::listing::format_timeval(t);
    match (v.get(0..4), v.get(4..6), v.get(6..8), v.get(8..10), v.get(10..12)) {
        (Some(y), Some(mo), Some(d), Some(h), Some(mi)) => format!("{y}-{mo}-{d} {h}:{mi}"),
        _ => v,
    }
}

/// One entry of a long listing (`ferry ls --long`, the shell's `ls`): type, size, time, name.
pub fn long_line(e: &RemoteEntry) -> String {
    let t = e.modified.map_or_else(|| "-".into(), short_time);
    let size = e.size.map_or_else(|| "-".into(), |s| s.to_string());
    format!("{:<4} {:>14} {:<16} {}", kind_name(&e.kind), size, t, e.name)
}

fn remote_name(url: &FtpUrl) -> Result<String> {
    match url.path.trim_end_matches('/').rsplit('/').next() {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => bail!("{url}: no file name in the URL"),
    }
}

/// The local path for a download.
fn local_target(url: &FtpUrl, dest: Option<&str>) -> Result<PathBuf> {
    let name = remote_name(url)?;
    Ok(match dest {
        None => PathBuf::from(name),
        Some(d) if Path::new(d).is_dir() || d.ends_with('/') => Path::new(d).join(name),
        Some(d) => PathBuf::from(d),
    })
}

/// How `get` and `put` transfer: resume or not, over how many connections, checked how.
#[derive(Debug, Clone, Copy)]
pub struct How {
    /// `-c`: continue a partial transfer.
    pub resume: bool,
    /// `--segments N`: N connections at once.
    pub segments: u32,
    /// `--verify`.
    pub verify: Verify,
}

/// `ferry get`.
pub async fn get(ctx: &Ctx, url: &FtpUrl, dest: Option<&str>, how: How) -> Result<()> {
    let How { resume, segments, verify } = how;
    let local = local_target(url, dest)?;
    let mut c = ctx.connect(url).await?;
    let size = if ctx.common.ascii { None } else { c.size(&url.path).await? };
    if segments > 1 {
        let Some(size) = size else { bail!("--segments needs the file size (SIZE) in binary mode") };
        segmented(ctx, url, &local, size, segments).await?;
        if let Some(plan) = verify.digest_for(&c) {
            let digest = super::verify::hash_file(&local, &plan.algorithms()).await?;
            super::verify::check(ctx, &mut c, &url.path, &digest, &local.display().to_string()).await?;
        }
        c.quit().await;
        return Ok(());
    }
    let offset = if resume { std::fs::metadata(&local).map(|m| m.len()).unwrap_or(0) } else { 0 };
    if resume && Some(offset) == size {
        ctx.say(format!("{}: already complete ({offset} bytes)", local.display()));
        c.quit().await;
        return Ok(());
    }
    if let Some(s) = size {
        if offset > s {
            bail!("{}: local file ({offset} bytes) is larger than the remote one ({s} bytes)", local.display());
        }
    }
    // A fresh download goes to DEST.ferry-part and replaces DEST only when it is complete, so a
    // failure (a missing remote file, a cut connection) never destroys what DEST held. A resumed
    // one appends to DEST itself.
    let part = if offset > 0 { local.clone() } else { part_path(&local) };
    let mut file = if offset > 0 {
        tokio::fs::OpenOptions::new().append(true).open(&part).await
    } else {
        tokio::fs::File::create(&part).await
    }
    .with_context(|| format!("opening {}", part.display()))?;
    if offset > 0 {
        ctx.say(resumed(&local.display().to_string(), offset, size));
    }
    let mut digest = verify.digest_for(&c);
    if let Some(d) = &mut digest {
        // The part already here is read once, so the digest covers the whole file.
        let mut head = tokio::fs::File::open(&part).await.map_err(ClientError::Local)?;
        super::verify::hash_prefix(&mut head, offset, d).await.map_err(ClientError::Local)?;
    }
    let bar = ctx.bar(size, &remote_name(url)?);
    bar.set_position(offset);
    let result = match &mut digest {
        Some(d) => c.retr(&url.path, offset, &mut HashingWriter::new(&mut file, d), &mut |n| bar.inc(n)).await,
        None => c.retr(&url.path, offset, &mut file, &mut |n| bar.inc(n)).await,
    };
    bar.finish_and_clear();
    let got = match result {
        Ok(n) => n,
        Err(e) => {
            if offset == 0 {
                let _ = std::fs::remove_file(&part);
            }
            return Err(e.into());
        }
    };
    file.flush().await?;
    drop(file);
    if let Some(s) = size {
        let final_len = std::fs::metadata(&part)?.len();
        if final_len != s {
            return Err(
                ClientError::Verify(format!("{}: {final_len} bytes, the server says {s}", part.display())).into()
            );
        }
    }
    if part != local {
        std::fs::rename(&part, &local)
            .with_context(|| format!("renaming {} to {}", part.display(), local.display()))?;
    }
    ctx.say(format!("{} -> {} ({} bytes)", url.path, local.display(), got + offset));
    if let Some(d) = &digest {
        super::verify::check(ctx, &mut c, &url.path, d, &local.display().to_string()).await?;
    }
    c.quit().await;
    Ok(())
}

/// Downloads one file over `n` connections, each with its own byte range.
async fn segmented(ctx: &Ctx, url: &FtpUrl, local: &Path, size: u64, n: u32) -> Result<()> {
    let file = std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(local)?;
    file.set_len(size)?;
    drop(file);
    let bar = ctx.bar(Some(size), &remote_name(url)?);
    let chunk = size.div_ceil(u64::from(n)).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut start = 0;
    while start < size {
        let len = chunk.min(size - start);
        let (ctx, url, local, bar) = (ctx.clone(), url.clone(), local.to_path_buf(), bar.clone());
        tasks.spawn(async move {
            let mut c = ctx.connect(&url).await?;
            let mut f = tokio::fs::OpenOptions::new().write(true).open(&local).await?;
            use tokio::io::AsyncSeekExt;
            f.seek(std::io::SeekFrom::Start(start)).await?;
            c.retr_range(&url.path, start, len, &mut f, &mut |k| bar.inc(k)).await?;
            f.flush().await?;
            c.quit().await;
            anyhow::Ok(())
        });
        start += len;
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    bar.finish_and_clear();
    let got = std::fs::metadata(local)?.len();
    if got != size {
        return Err(ClientError::Verify(format!("{}: {got} bytes, expected {size}", local.display())).into());
    }
    ctx.say(format!("{} -> {} ({size} bytes, {n} segments)", url.path, local.display()));
    Ok(())
}

/// `ferry put`.
pub async fn put(ctx: &Ctx, files: &[String], target: &FtpUrl, how: How) -> Result<()> {
    let How { resume, verify, .. } = how;
    let mut c = ctx.connect(target).await?;
    let into_dir = files.len() > 1 || target.is_dir();
    for f in files {
        let local = Path::new(f);
        let name = local.file_name().and_then(|n| n.to_str()).with_context(|| format!("{f}: not a file name"))?;
        let remote =
            if into_dir { format!("{}/{name}", target.path.trim_end_matches('/')) } else { target.path.clone() };
        let len = std::fs::metadata(local).map_err(ClientError::Local).with_context(|| format!("reading {f}"))?.len();
        let offset = if resume { c.size(&remote).await?.unwrap_or(0) } else { 0 };
        if how.segments > 1 && !resume {
            if c.feature_line("SITE SEGMENT").is_some() {
                put_segmented(ctx, target, Path::new(f), &remote, len, how.segments).await?;
                if let Some(plan) = verify.digest_for(&c) {
                    let digest = super::verify::hash_file(local, &plan.algorithms()).await?;
                    super::verify::check(ctx, &mut c, &remote, &digest, &remote).await?;
                }
                continue;
            }
            ctx.say(format!("{remote}: the server has no SITE SEGMENT; uploading over one connection"));
        }
        if resume && offset == len {
            ctx.say(format!("{remote}: already complete ({len} bytes)"));
            continue;
        }
        if offset > len {
            bail!("{remote}: the remote file ({offset} bytes) is larger than {f} ({len} bytes)");
        }
        if offset > 0 {
            ctx.say(resumed(&remote, offset, Some(len)));
        }
        let mut file =
            tokio::fs::File::open(local).await.map_err(ClientError::Local).with_context(|| format!("opening {f}"))?;
        use tokio::io::AsyncSeekExt;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let how = if offset == 0 {
            StoreHow::Replace
        } else if c.has_feature("REST") {
            StoreHow::At(offset)
        } else {
            StoreHow::Append
        };
        let mut digest = verify.digest_for(&c);
        if let Some(d) = &mut digest {
            // The part the server has is read once here, so the digest covers the whole file.
            file.seek(std::io::SeekFrom::Start(0)).await?;
            super::verify::hash_prefix(&mut file, offset, d).await.map_err(ClientError::Local)?;
        }
        let mut no_digest = LocalDigest::default();
        let mut source = HashingReader::new(&mut file, digest.as_mut().unwrap_or(&mut no_digest));
        let bar = ctx.bar(Some(len), name);
        bar.set_position(offset);
        let r = c.stor(&remote, how, &mut source, &mut |n| bar.inc(n)).await;
        let r = match r {
            // A server that refuses REST+STOR may still append (the refusal comes before any
            // byte is read).
            Err(ClientError::Reply { code, .. }) if matches!(how, StoreHow::At(_)) && (500..=504).contains(&code) => {
                c.stor(&remote, StoreHow::Append, &mut source, &mut |n| bar.inc(n)).await
            }
            r => r,
        };
        r?;
        bar.finish_and_clear();
        if !ctx.common.ascii {
            if let Some(s) = c.size(&remote).await? {
                if s != len {
                    return Err(
                        ClientError::Verify(format!("{remote}: the server has {s} bytes, {f} has {len}")).into()
                    );
                }
            }
        }
        ctx.say(format!("{f} -> {remote} ({len} bytes)"));
        if let Some(d) = &digest {
            super::verify::check(ctx, &mut c, &remote, d, &remote).await?;
        }
    }
    c.quit().await;
    Ok(())
}

/// `put --segments N` on a server with `SITE SEGMENT` (a Ferry extension): `SITE SEGMENT BEGIN
/// <size> <path>`, then N connections each send `REST <offset>` + `STOR <path>` for one range,
/// then `SITE SEGMENT END <path>`, which publishes the file when every byte arrived. A `451 ...
/// missing A-B,...` (inclusive ranges) is answered by sending those ranges again, then END again;
/// what cannot be completed is abandoned with `SITE SEGMENT ABORT`.
async fn put_segmented(ctx: &Ctx, url: &FtpUrl, local: &Path, remote: &str, size: u64, n: u32) -> Result<()> {
    let mut c = ctx.connect(url).await?;
    let begin = segment_cmd(SegmentOp::Begin { size, path: remote.to_string() });
    c.expect(begin, 200).await?;
    let bar = ctx.bar(Some(size), remote);
    let chunk = size.div_ceil(u64::from(n)).max(1);
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < size {
        let len = chunk.min(size - start);
        ranges.push((start, len));
        start += len;
    }
    let sent = send_segments(ctx, url, local, remote, &ranges, &bar).await;
    // Whatever failed shows up as missing at END; each round sends those ranges again, over
    // this one connection.
    let mut result = Ok(());
    for _round in 0..4 {
        let end = c.command(segment_cmd(SegmentOp::End(remote.to_string()))).await?;
        match end.code.0 {
            250 => {
                result = Ok(());
                break;
            }
            451 => match missing_ranges(&end.text()) {
                Some(missing) if !missing.is_empty() => {
                    ctx.say(format!("{remote}: the server misses {} range(s); sending them again", missing.len()));
                    for (start, len) in missing {
                        let mut f = tokio::fs::File::open(local).await.map_err(ClientError::Local)?;
                        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
                        f.seek(std::io::SeekFrom::Start(start)).await.map_err(ClientError::Local)?;
                        c.stor(remote, StoreHow::At(start), &mut f.take(len), &mut |_| {}).await?;
                    }
                    result = Err(ClientError::Verify(format!("{remote}: {}", end.text())));
                }
                _ => {
                    result = Err(ClientError::Verify(format!("{remote}: {}", end.text())));
                    break;
                }
            },
            code => {
                result = Err(ClientError::Reply { cmd: format!("SITE SEGMENT END {remote}"), code, text: end.text() });
                break;
            }
        }
    }
    bar.finish_and_clear();
    if let Err(e) = result {
        let _ = c.command(segment_cmd(SegmentOp::Abort(remote.to_string()))).await;
        // The first segment's own error says more than "missing" does.
        sent?;
        return Err(e.into());
    }
    c.quit().await;
    ctx.say(format!("{} -> {remote} ({size} bytes, {n} segments)", local.display()));
    Ok(())
}

/// `SITE SEGMENT <op>`.
fn segment_cmd(op: SegmentOp) -> ferry_proto::Command {
    ferry_proto::Command::Site(ferry_proto::command::SiteCommand::Segment(op))
}

/// Sends each `(offset, len)` range of `local` over its own connection, all at once.
async fn send_segments(
    ctx: &Ctx,
    url: &FtpUrl,
    local: &Path,
    remote: &str,
    ranges: &[(u64, u64)],
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for &(start, len) in ranges {
        let (ctx, url, local, remote, bar) =
            (ctx.clone(), url.clone(), local.to_path_buf(), remote.to_string(), bar.clone());
        tasks.spawn(async move {
            let mut c = ctx.connect(&url).await?;
            let mut f = tokio::fs::File::open(&local).await.map_err(ClientError::Local)?;
            use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
            f.seek(std::io::SeekFrom::Start(start)).await.map_err(ClientError::Local)?;
            c.stor(&remote, StoreHow::At(start), &mut f.take(len), &mut |k| bar.inc(k)).await?;
            c.quit().await;
            anyhow::Ok(())
        });
    }
    let mut first_error = Ok(());
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r.map_err(anyhow::Error::from).and_then(|r| r) {
            first_error = first_error.and(Err(e));
        }
    }
    first_error
}

/// The ranges of a `451 ... missing 0-99,200-299.` reply as `(offset, len)`; the reply's ranges
/// are inclusive. `None` when the text names none.
fn missing_ranges(text: &str) -> Option<Vec<(u64, u64)>> {
    let list = text.rsplit_once("missing ")?.1.trim_end_matches('.');
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty() && *p != "...") {
        let (a, b) = part.split_once('-')?;
        let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
        if b < a {
            return None;
        }
        out.push((a, b - a + 1));
    }
    Some(out)
}

/// What `get -c` and `put -c` say before they send the rest.
fn resumed(name: &str, offset: u64, size: Option<u64>) -> String {
    match size {
        Some(s) => format!("{name}: resuming at byte {offset} of {s} ({} to go)", s - offset.min(s)),
        None => format!("{name}: resuming at byte {offset}"),
    }
}

/// Commands that take paths and answer OK or not.
#[derive(Debug, Clone, Copy)]
pub enum Simple {
    Rm,
    Mkdir,
    Rmdir,
}

/// `ferry rm|mkdir|rmdir`.
pub async fn simple(ctx: &Ctx, urls: &[String], what: Simple) -> Result<()> {
    for u in urls {
        let url = super::url(u)?;
        let mut c = ctx.connect(&url).await?;
        match what {
            Simple::Rm => c.delete(&url.path).await?,
            Simple::Mkdir => c.mkdir(url.path.trim_end_matches('/')).await?,
            Simple::Rmdir => c.rmdir(url.path.trim_end_matches('/')).await?,
        }
        c.quit().await;
    }
    Ok(())
}

/// `ferry mv`.
pub async fn mv(ctx: &Ctx, url: &FtpUrl, to: &str) -> Result<()> {
    let to_path = if to.starts_with("ftp://") {
        let t = super::url(to)?;
        if (t.host.as_str(), t.port) != (url.host.as_str(), url.port) {
            return Err(super::Usage("mv renames on one server; use `ferry copy` between servers".into()).into());
        }
        t.path
    } else {
        to.to_string()
    };
    let mut c = ctx.connect(url).await?;
    c.rename(&url.path, &to_path).await?;
    c.quit().await;
    Ok(())
}

/// `ferry cat`.
pub async fn cat(ctx: &Ctx, url: &FtpUrl) -> Result<()> {
    let mut c = ctx.connect(url).await?;
    let mut out = tokio::io::stdout();
    c.retr(&url.path, 0, &mut out, &mut |_| {}).await?;
    out.flush().await?;
    c.quit().await;
    Ok(())
}

/// `ferry stat`.
pub async fn stat(ctx: &Ctx, url: &FtpUrl) -> Result<()> {
    let mut c = ctx.connect(url).await?;
    if c.has_feature("MLST") {
        let r = c.command(ferry_proto::Command::Mlst(Some(url.path.clone()))).await?;
        if r.code.0 == 250 && r.lines.len() >= 3 {
            let line = r.lines[1].trim();
            if let Some((e, _)) = ferry_proto::listing::parse::parse_mlsx_line(line) {
                print_entry(url, &e);
                c.quit().await;
                return Ok(());
            }
        }
        if r.code.0 == 550 {
            return Err(ClientError::NotFound { path: url.path.clone(), text: r.text() }.into());
        }
    }
    let size = c.size(&url.path).await?;
    let mtime = c.mdtm(&url.path).await?;
    if size.is_none() && mtime.is_none() {
        if c.is_dir(&url.path).await? {
            println!("path: {}", url.path);
            println!("type: dir");
            c.quit().await;
            return Ok(());
        }
        return Err(ClientError::NotFound { path: url.path.clone(), text: "no such file".into() }.into());
    }
    println!("path: {}", url.path);
    println!("type: file");
    println!("size: {}", size.map(|s| s.to_string()).unwrap_or_else(|| "-".into()));
    println!("modified: {}", mtime.map(ferry_proto::listing::format_timeval).unwrap_or_else(|| "-".into()));
    c.quit().await;
    Ok(())
}

fn print_entry(url: &FtpUrl, e: &RemoteEntry) {
    println!("path: {}", url.path);
    println!("type: {}", kind_name(&e.kind));
    if let Some(s) = e.size {
        println!("size: {s}");
    }
    if let Some(t) = e.modified {
        println!("modified: {}", ferry_proto::listing::format_timeval(t));
    }
    if let Some(m) = e.mode {
        println!("mode: {m:o}");
    }
}

/// Where a fresh download of `local` is written until it is complete: `NAME.ferry-part` beside
/// it (a failure never destroys what `local` held).
pub(crate) fn part_path(local: &std::path::Path) -> std::path::PathBuf {
    let mut name = local.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".ferry-part");
    local.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ranges_are_inclusive() {
        let text = "Segmented upload of /f incomplete: missing 0-99,200-299.";
        assert_eq!(missing_ranges(text), Some(vec![(0, 100), (200, 100)]));
        assert_eq!(missing_ranges("incomplete: missing 5-5,..."), Some(vec![(5, 1)]));
        assert_eq!(missing_ranges("no list here"), None);
        assert_eq!(missing_ranges("missing 9-3."), None);
    }

    #[test]
    fn short_times() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_796_582_157_836);
        assert_eq!(short_time(t), "2026-12-06 18:35");
    }
}
