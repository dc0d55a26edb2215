//! `ferry mirror`: recursive, both directions, parallel, skipping files whose size and
//! modification time already match.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use ferry_client::client::StoreHow;
use ferry_client::digest::{self, Algorithm, HashingReader, HashingWriter};
use ferry_client::{Client, FtpUrl};
use ferry_proto::listing::EntryKind;
use tokio::io::AsyncWriteExt;

use super::verify::Verify;
use super::Ctx;

/// Mirror options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub parallel: usize,
    pub delete: bool,
    pub dry_run: bool,
    /// Check each transferred file's digest.
    pub verify: Verify,
    /// How a file on both sides is found up to date.
    pub compare: Compare,
}

/// How `mirror` decides that a file on both sides is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Size and modification time (the default).
    SizeAndTime,
    /// Size, then the SHA-256 of both sides (`--checksum`), where the server offers HASH.
    Digest,
}

/// The files of `candidates` (relative names, on both sides with the same size) whose digests
/// differ, found with HASH; `None` when the server offers no SHA-256 HASH (the caller compares
/// size and time then).
async fn differing_by_digest(
    ctx: &Ctx,
    c: &mut Client,
    root: &str,
    dir: &Path,
    candidates: &[String],
) -> Result<Option<BTreeSet<String>>> {
    if !c.feature_line("HASH").is_some_and(|l| digest::parse_hash_feat(l).0.contains(&Algorithm::Sha256)) {
        ctx.say("mirror --checksum: the server offers no HASH SHA-256; comparing size and time");
        return Ok(None);
    }
    let mut differ = BTreeSet::new();
    for rel in candidates {
        let local = super::verify::hash_file(&dir.join(rel), &[Algorithm::Sha256]).await?;
        let remote = c.remote_digest(&join_remote(root, rel), &[Algorithm::Sha256]).await?;
        if remote.map(|r| r.hex) != local.hex(Algorithm::Sha256) {
            differ.insert(rel.clone());
        }
    }
    Ok(Some(differ))
}

/// What to transfer: every file of `from` that `to` lacks or holds in another version.
async fn plan(
    ctx: &Ctx,
    c: &mut Client,
    (from, to): (&Tree, &Tree),
    (root, dir): (&str, &Path),
    compare: Compare,
    exact: bool,
) -> Result<Vec<(String, Option<u64>)>> {
    let differ = match compare {
        Compare::SizeAndTime => None,
        Compare::Digest => {
            let same_size: Vec<String> = from
                .files
                .iter()
                .filter(|(rel, info)| to.files.get(*rel).is_some_and(|o| o.size == info.size))
                .map(|(rel, _)| rel.clone())
                .collect();
            differing_by_digest(ctx, c, root, dir, &same_size).await?
        }
    };
    Ok(from
        .files
        .iter()
        .filter(|(rel, info)| match (to.files.get(*rel), &differ) {
            (None, _) => true,
            (Some(o), Some(differ)) => o.size != info.size || differ.contains(*rel),
            (Some(o), None) => !same(o, info, exact),
        })
        .map(|(rel, info)| (rel.clone(), info.size))
        .collect())
}

#[derive(Debug, Clone)]
struct FileInfo {
    size: Option<u64>,
    modified: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct Tree {
    dirs: BTreeSet<String>,
    files: BTreeMap<String, FileInfo>,
}

fn join_remote(root: &str, rel: &str) -> String {
    let root = root.trim_end_matches('/');
    if rel.is_empty() {
        if root.is_empty() {
            "/".into()
        } else {
            root.into()
        }
    } else {
        format!("{root}/{rel}")
    }
}

fn join_rel(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

async fn remote_tree(c: &mut Client, root: &str, missing_ok: bool) -> Result<Tree> {
    let mut tree = Tree::default();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let list = match c.list(&join_remote(root, &rel)).await {
            Ok(l) => l,
            Err(ferry_client::ClientError::NotFound { .. }) if missing_ok && rel.is_empty() => return Ok(tree),
            Err(e) => return Err(e.into()),
        };
        for e in list {
            if e.name == "." || e.name == ".." || e.name.contains('/') {
                continue;
            }
            let r = join_rel(&rel, &e.name);
            match e.kind {
                EntryKind::Dir => {
                    tree.dirs.insert(r.clone());
                    stack.push(r);
                }
                EntryKind::File => {
                    tree.files.insert(r, FileInfo { size: e.size, modified: e.modified });
                }
                EntryKind::Symlink(_) => {}
            }
        }
    }
    Ok(tree)
}

fn local_tree(root: &Path) -> Result<Tree> {
    let mut tree = Tree::default();
    if !root.exists() {
        return Ok(tree);
    }
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(&rel) };
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            let r = join_rel(&rel, &name);
            let ft = entry.file_type()?;
            if ft.is_dir() {
                tree.dirs.insert(r.clone());
                stack.push(r);
            } else if ft.is_file() {
                let m = entry.metadata()?;
                tree.files.insert(r, FileInfo { size: Some(m.len()), modified: m.modified().ok() });
            }
        }
    }
    Ok(tree)
}

/// Whether two files are the same for mirroring: equal sizes and modification times (to the
/// second; to the minute, or the day for old entries, when the server only has LIST).
fn same(a: &FileInfo, b: &FileInfo, exact_times: bool) -> bool {
    if a.size != b.size {
        return false;
    }
    let (Some(ta), Some(tb)) = (a.modified, b.modified) else { return false };
    let diff = match ta.duration_since(tb) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    let tolerance = if exact_times { Duration::from_secs(1) } else { Duration::from_secs(24 * 3600) };
    diff < tolerance
}

type Queue = Arc<Mutex<VecDeque<(String, Option<u64>)>>>;

async fn run_workers<F, Fut>(ctx: &Ctx, url: &FtpUrl, queue: Queue, parallel: usize, work: F) -> Result<(u64, u64)>
where
    F: Fn(Client, String, Option<u64>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(Client, u64)>> + Send,
{
    let n = parallel.min(queue.lock().map(|q| q.len()).unwrap_or(0)).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (ctx, url, queue, work) = (ctx.clone(), url.clone(), queue.clone(), work.clone());
        tasks.spawn(async move {
            let mut client = ctx.connect(&url).await?;
            let (mut files, mut bytes) = (0u64, 0u64);
            loop {
                let job = queue.lock().map_err(|_| anyhow::anyhow!("poisoned queue"))?.pop_front();
                let Some((rel, size)) = job else { break };
                let (c, b) = work(client, rel, size).await?;
                client = c;
                files += 1;
                bytes += b;
            }
            client.quit().await;
            anyhow::Ok((files, bytes))
        });
    }
    let (mut files, mut bytes) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (f, b) = r??;
        files += f;
        bytes += b;
    }
    Ok((files, bytes))
}

/// Remote URL -> local directory.
pub async fn download(ctx: &Ctx, url: &FtpUrl, dir: &Path, opts: Options) -> Result<()> {
    let mut c = ctx.connect(url).await?;
    let exact = c.has_feature("MLST");
    let remote = remote_tree(&mut c, &url.path, false).await?;
    let local = local_tree(dir)?;
    let todo = plan(ctx, &mut c, (&remote, &local), (&url.path, dir), opts.compare, exact).await?;
    c.quit().await;
    let extra_files: Vec<&String> = local.files.keys().filter(|f| !remote.files.contains_key(*f)).collect();
    let extra_dirs: Vec<&String> = local.dirs.iter().rev().filter(|d| !remote.dirs.contains(*d)).collect();
    let up_to_date = remote.files.len() - todo.len();
    if opts.dry_run {
        for d in remote.dirs.iter().filter(|d| !local.dirs.contains(*d)) {
            println!("mkdir {}", dir.join(d).display());
        }
        for (rel, _) in &todo {
            println!("get {} -> {}", join_remote(&url.path, rel), dir.join(rel).display());
        }
        if opts.delete {
            for f in &extra_files {
                println!("delete {}", dir.join(f).display());
            }
            for d in &extra_dirs {
                println!("rmdir {}", dir.join(d).display());
            }
        }
        println!("dry run: {} to download, {up_to_date} up to date", todo.len());
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for d in &remote.dirs {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let times: Arc<BTreeMap<String, FileInfo>> = Arc::new(remote.files.clone());
    let queue: Queue = Arc::new(Mutex::new(todo.into_iter().collect()));
    let (root, base) = (url.path.clone(), dir.to_path_buf());
    let (verify, worker_ctx) = (opts.verify, ctx.clone());
    let (files, bytes) = run_workers(ctx, url, queue, opts.parallel, move |mut c: Client, rel: String, size| {
        let (root, base, times, ctx) = (root.clone(), base.clone(), times.clone(), worker_ctx.clone());
        async move {
            let local = base.join(&rel);
            let remote_path = join_remote(&root, &rel);
            let known_mtime = times.get(&rel).and_then(|i| i.modified).filter(|_| exact);
            let mut digest = verify.digest_for(&c);
            if let Some(size) = size.filter(|&n| n <= SMALL_FILE) {
                // A small file is received into memory, then created, written and dated right
                // here: the client is one user's process on a one-thread runtime, and a write of a
                // few KiB to the page cache takes microseconds, less than a trip to the blocking
                // pool and back.
                let mut data = Vec::with_capacity(size as usize);
                let n = c.retr(&remote_path, 0, &mut data, &mut |_| {}).await?;
                if let Some(d) = &mut digest {
                    d.update(&data);
                    super::verify::check(&ctx, &mut c, &remote_path, d, &local.display().to_string()).await?;
                }
                let mtime = match known_mtime {
                    Some(t) => Some(t),
                    None => c.mdtm(&remote_path).await?,
                };
                let f = std::fs::File::create(&local).with_context(|| format!("creating {}", local.display()))?;
                (&f).write_all(&data).with_context(|| format!("writing {}", local.display()))?;
                if let Some(t) = mtime {
                    f.set_modified(t)?;
                }
                return Ok((c, n));
            }
            let mut f =
                tokio::fs::File::create(&local).await.with_context(|| format!("creating {}", local.display()))?;
            let n = match &mut digest {
                Some(d) => c.retr(&remote_path, 0, &mut HashingWriter::new(&mut f, d), &mut |_| {}).await?,
                None => c.retr(&remote_path, 0, &mut f, &mut |_| {}).await?,
            };
            f.flush().await?;
            if let Some(d) = &digest {
                super::verify::check(&ctx, &mut c, &remote_path, d, &local.display().to_string()).await?;
            }
            let mtime = match known_mtime {
                Some(t) => Some(t),
                None => c.mdtm(&remote_path).await?,
            };
            if let Some(t) = mtime {
                f.into_std().await.set_modified(t)?;
            }
            Ok((c, n))
        }
    })
    .await?;
    let mut deleted = 0;
    if opts.delete {
        for f in &extra_files {
            std::fs::remove_file(dir.join(f))?;
            deleted += 1;
        }
        for d in &extra_dirs {
            std::fs::remove_dir(dir.join(d))?;
            deleted += 1;
        }
    }
    ctx.say(format!("mirror: {files} files downloaded ({bytes} bytes), {up_to_date} up to date, {deleted} deleted"));
    Ok(())
}

/// Files up to this size are downloaded into memory and written in one go.
const SMALL_FILE: u64 = 1 << 20;

/// Local directory -> remote URL.
pub async fn upload(ctx: &Ctx, dir: &Path, url: &FtpUrl, opts: Options) -> Result<()> {
    let local = local_tree(dir)?;
    if !dir.is_dir() {
        anyhow::bail!("{}: not a directory", dir.display());
    }
    let mut c = ctx.connect(url).await?;
    let exact = c.has_feature("MLST");
    let can_set_time = c.has_feature("MFMT");
    let remote = remote_tree(&mut c, &url.path, true).await?;
    let todo = plan(ctx, &mut c, (&local, &remote), (&url.path, dir), opts.compare, exact && can_set_time).await?;
    let up_to_date = local.files.len() - todo.len();
    let extra_files: Vec<&String> = remote.files.keys().filter(|f| !local.files.contains_key(*f)).collect();
    let extra_dirs: Vec<&String> = remote.dirs.iter().rev().filter(|d| !local.dirs.contains(*d)).collect();
    let new_dirs: Vec<&String> = local.dirs.iter().filter(|d| !remote.dirs.contains(*d)).collect();
    if opts.dry_run {
        for d in &new_dirs {
            println!("mkdir {}", join_remote(&url.path, d));
        }
        for (rel, _) in &todo {
            println!("put {} -> {}", dir.join(rel).display(), join_remote(&url.path, rel));
        }
        if opts.delete {
            for f in &extra_files {
                println!("delete {}", join_remote(&url.path, f));
            }
            for d in &extra_dirs {
                println!("rmdir {}", join_remote(&url.path, d));
            }
        }
        println!("dry run: {} to upload, {up_to_date} up to date", todo.len());
        c.quit().await;
        return Ok(());
    }
    if c.cwd(&url.path).await.is_err() {
        c.mkdir(url.path.trim_end_matches('/')).await?;
    }
    for d in &new_dirs {
        c.mkdir(&join_remote(&url.path, d)).await?;
    }
    let times: Arc<BTreeMap<String, FileInfo>> = Arc::new(local.files.clone());
    let queue: Queue = Arc::new(Mutex::new(todo.into_iter().collect()));
    let (root, base) = (url.path.clone(), dir.to_path_buf());
    let (verify, worker_ctx) = (opts.verify, ctx.clone());
    let (files, bytes) = run_workers(ctx, url, queue, opts.parallel, move |mut c: Client, rel: String, _size| {
        let (root, base, times, ctx) = (root.clone(), base.clone(), times.clone(), worker_ctx.clone());
        async move {
            let local: PathBuf = base.join(&rel);
            let mut f = tokio::fs::File::open(&local).await.with_context(|| format!("opening {}", local.display()))?;
            let remote_path = join_remote(&root, &rel);
            let mut digest = verify.digest_for(&c);
            let n = match &mut digest {
                Some(d) => {
                    let n = c
                        .stor(&remote_path, StoreHow::Replace, &mut HashingReader::new(&mut f, d), &mut |_| {})
                        .await?;
                    super::verify::check(&ctx, &mut c, &remote_path, d, &remote_path).await?;
                    n
                }
                None => c.stor(&remote_path, StoreHow::Replace, &mut f, &mut |_| {}).await?,
            };
            if let Some(t) = times.get(&rel).and_then(|i| i.modified) {
                c.mfmt(&remote_path, t).await?;
            }
            Ok((c, n))
        }
    })
    .await?;
    let mut deleted = 0;
    if opts.delete {
        for f in &extra_files {
            c.delete(&join_remote(&url.path, f)).await?;
            deleted += 1;
        }
        for d in &extra_dirs {
            c.rmdir(&join_remote(&url.path, d)).await?;
            deleted += 1;
        }
    }
    c.quit().await;
    ctx.say(format!("mirror: {files} files uploaded ({bytes} bytes), {up_to_date} up to date, {deleted} deleted"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sameness() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let a = FileInfo { size: Some(5), modified: Some(t) };
        assert!(same(&a, &a.clone(), true));
        assert!(!same(&a, &FileInfo { size: Some(6), modified: Some(t) }, true));
        assert!(!same(&a, &FileInfo { size: Some(5), modified: Some(t + Duration::from_secs(2)) }, true));
        assert!(same(&a, &FileInfo { size: Some(5), modified: Some(t + Duration::from_secs(50)) }, false));
        assert!(!same(&a, &FileInfo { size: Some(5), modified: None }, false));
        assert_eq!(join_remote("/", ""), "/");
        assert_eq!(join_remote("/a/", "b/c"), "/a/b/c");
        assert_eq!(join_remote("/", "x"), "/x");
    }
}
