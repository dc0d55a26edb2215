//! The server workloads, run by the load generator against one server at a time, and the raw TCP
//! limit. Each returns [`Measure`]s: the metric's value, the wall time of the timed part, the load
//! generator's CPU time (this process, all threads) and the server's (its whole process tree)
//! over that part.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::dataset::{Noise, Sizes};
use crate::ftp::{Ctrl, DATA_BUF};
use crate::procstat;
use crate::servers::{Owner, Server};

pub(crate) const MIB: f64 = 1024.0 * 1024.0;

/// One measured value.
#[derive(Debug, Clone)]
pub struct Measure {
    pub metric: &'static str,
    pub value: f64,
    pub elapsed: f64,
    pub gen_cpu: f64,
    pub server_cpu: f64,
    pub extra: Value,
}

/// What a workload needs to know about the server it runs against.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub user: &'static str,
    pub pass: &'static str,
    pub pid: u32,
    pub upload: String,
    pub upload_local: PathBuf,
    pub owner: Option<Owner>,
    /// The run (upload directories are per run: see [`Target::upload_dir`]).
    pub run: usize,
    /// The server keeps uploads' digests ([`digest_settled`]).
    pub keeps_digests: bool,
}

impl Target {
    pub fn of(s: &Server, owner: Option<&Owner>, run: usize) -> Self {
        Target {
            addr: s.addr,
            user: s.user,
            pass: s.pass,
            pid: s.pid(),
            upload: s.upload.clone(),
            upload_local: s.upload_local.clone(),
            owner: owner.cloned(),
            run,
            keeps_digests: s.kind.keeps_digests(),
        }
    }

    /// The directory every server serves (the upload directory is `upload/NAME` in it).
    fn data_root(&self) -> PathBuf {
        self.upload_local.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default()
    }

    async fn login(&self) -> Result<Ctrl> {
        Ctrl::login(self.addr, self.user, self.pass).await
    }

    /// A fresh, empty directory `name-RUN` inside the upload directory, owned by the session user.
    /// Uploaded small files stay until the benchmark ends: deleting thousands of files and creating
    /// thousands more right away makes ext4's inode allocator scan for inodes that were not
    /// recently deleted (`recently_deleted()`), which then dominates every server's upload time.
    pub(crate) fn upload_dir(&self, name: &str) -> Result<(String, PathBuf)> {
        let name = format!("{name}-{}", self.run);
        let local = self.upload_local.join(&name);
        if local.exists() {
            std::fs::remove_dir_all(&local)?;
        }
        std::fs::create_dir_all(&local)?;
        if let Some(o) = &self.owner {
            std::os::unix::fs::chown(&local, Some(o.uid), Some(o.gid))?;
        }
        Ok((format!("{}/{name}", self.upload), local))
    }
}

/// Runs `f`, measuring wall time, this process's CPU time and `pid`'s tree CPU time.
pub(crate) async fn timed<T, F: Future<Output = Result<T>>>(pid: u32, f: F) -> Result<(T, f64, f64, f64)> {
    let (cpu0, srv0, t0) = (procstat::self_cpu(), procstat::tree_cpu(pid), Instant::now());
    let out = f.await?;
    let elapsed = t0.elapsed().as_secs_f64();
    let gen = (procstat::self_cpu() - cpu0).as_secs_f64();
    let srv = procstat::tree_cpu(pid) - srv0;
    Ok((out, elapsed, gen, srv))
}

pub(crate) fn measure(metric: &'static str, value: f64, t: (f64, f64, f64), extra: Value) -> Measure {
    Measure { metric, value, elapsed: t.0, gen_cpu: t.1, server_cpu: t.2, extra }
}

/// The extended attribute in which Ferry keeps a file's SHA-256.
const DIGEST_XATTR: &str = "user.ferry.hash.sha-256";

/// Ferry keeps an upload's SHA-256 with the file (for `HASH`), computed beside the upload: on
/// busy cores it is finished after the 226. When `keeps` (the server does that), waits until the
/// digest is on `file` (at most 30 s), so that the server CPU counted for an upload includes it
/// and the next measurement does not pay for it: the ms it took after the 226 (None for servers
/// that keep no digest, or when none came).
pub(crate) async fn digest_settled(keeps: bool, file: &Path) -> Option<f64> {
    if !keeps {
        return None;
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if rustix::fs::getxattr(file, DIGEST_XATTR, &mut [0u8; 256]).is_ok() {
            return Some(t0.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// `c.upload` of `size` bytes to `path` (`file` on the local filesystem), timed against the
/// server: the seconds to the 226, the ms the server's digest took after it
/// ([`digest_settled`]), and the generator's and the server's CPU up to that digest.
pub(crate) async fn timed_upload(
    t: &Target,
    c: &mut Ctrl,
    path: &str,
    chunk: &[u8],
    size: u64,
    file: &Path,
) -> Result<(f64, Option<f64>, f64, f64)> {
    let ((e, settled), _, g, s) = timed(t.pid, async {
        let t0 = Instant::now();
        c.upload(path, chunk, size).await?;
        Ok((t0.elapsed().as_secs_f64(), digest_settled(t.keeps_digests, file).await))
    })
    .await?;
    Ok((e, settled, g, s))
}

/// The median (by value) of three measurements.
pub(crate) fn median3(mut reps: Vec<Measure>) -> Measure {
    reps.sort_by(|a, b| a.value.total_cmp(&b.value));
    let all: Vec<f64> = reps.iter().map(|m| m.value).collect();
    let mut m = reps.swap_remove(reps.len() / 2);
    if let Value::Object(o) = &mut m.extra {
        o.insert("repetitions".into(), json!(all));
    }
    m
}

/// RETR of the big file, three times on one control connection: MiB/s from RETR to 226 (the
/// median of the three; a single 1 GiB copy over loopback takes under half a second and is at the
/// mercy of the scheduler).
pub async fn retr(t: &Target, sizes: &Sizes) -> Result<Vec<Measure>> {
    let mut c = t.login().await?;
    let m = big_retr(&mut c, t.pid, "retr", sizes).await?;
    c.quit().await?;
    Ok(vec![m])
}

/// `RETR /big.bin` three times on session `c` (timed against the server `pid`): the median MiB/s
/// as `metric`, the bytes checked.
pub(crate) async fn big_retr(c: &mut Ctrl, pid: u32, metric: &'static str, sizes: &Sizes) -> Result<Measure> {
    let mut buf = vec![0u8; DATA_BUF];
    let mut reps = Vec::new();
    for _ in 0..3 {
        let ((bytes, _), e, g, s) = timed(pid, c.download("RETR /big.bin", &mut buf)).await?;
        if bytes != sizes.big {
            bail!("{metric}: RETR /big.bin gave {bytes} bytes, expected {}", sizes.big);
        }
        reps.push(measure(metric, bytes as f64 / MIB / e, (e, g, s), json!({ "bytes": bytes })));
    }
    Ok(median3(reps))
}

/// STOR of the big file's size, from memory: MiB/s from STOR to 226.
pub async fn stor(t: &Target, sizes: &Sizes) -> Result<Vec<Measure>> {
    let (dir, local) = t.upload_dir("stor")?;
    // Start each upload with no dirty pages left by the previous one.
    rustix::fs::sync();
    let mut chunk = vec![0u8; DATA_BUF];
    Noise::new(7).fill(&mut chunk);
    let mut c = t.login().await?;
    let path = format!("{dir}/up.bin");
    let file = local.join("up.bin");
    let (e, settled, g, s) = timed_upload(t, &mut c, &path, &chunk, sizes.big, &file).await?;
    c.quit().await?;
    let got = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    if got != sizes.big {
        bail!("STOR {path}: the file has {got} bytes, expected {}", sizes.big);
    }
    std::fs::remove_file(&file)?;
    let extra = json!({ "bytes": sizes.big, "digest_after_226_ms": settled });
    Ok(vec![measure("stor", sizes.big as f64 / MIB / e, (e, g, s), extra)])
}

/// `HASH` (Ferry only; draft-bryan-ftpext-hash-02): of a file just uploaded through the server,
/// whose SHA-256 was kept as it streamed (ms), and of the download file, placed beside the server
/// and never hashed before (its kept digest removed first: MiB/s), with this process's own read +
/// SHA-256 of the same file as the floor.
pub async fn hash(t: &Target, sizes: &Sizes) -> Result<Vec<Measure>> {
    let (dir, local) = t.upload_dir("hash")?;
    let mut chunk = vec![0u8; DATA_BUF];
    Noise::new(11).fill(&mut chunk);
    let mut c = t.login().await?;
    let path = format!("{dir}/up.bin");
    c.upload(&path, &chunk, sizes.big).await?;
    let (_, e, g, s) = timed(t.pid, c.expect(&format!("HASH {path}"), 213)).await?;
    let uploaded = measure("hash_uploaded", e * 1000.0, (e, g, s), json!({ "bytes": sizes.big }));
    std::fs::remove_file(local.join("up.bin"))?;
    let placed = t.data_root().join("big.bin");
    // Never hashed: whatever an earlier run kept goes.
    let _ = rustix::fs::removexattr(&placed, DIGEST_XATTR);
    let (r, e, g, s) = timed(t.pid, c.expect("HASH /big.bin", 213)).await?;
    let size = std::fs::metadata(&placed)?.len();
    let hashed = measure("hash_placed", size as f64 / MIB / e, (e, g, s), json!({ "reply": crate::ftp::one_line(&r) }));
    c.quit().await?;
    Ok(vec![uploaded, hashed])
}

/// Logins on a fresh Ferry (Ferry only: the peers' accounts are system users): `distinct`
/// accounts log in once each, 32 at a time, every one a full argon2id check (nothing cached):
/// logins/s; then a burst of `failed` wrong passwords, 64 at a time: the server's RSS right after
/// and after 7 s idle (the hashing threads free their memory after 5 s).
pub async fn logins(t: &Target, sizes: &Sizes) -> Result<Vec<Measure>> {
    let n = sizes.logins.distinct.min(crate::servers::LOGIN_USERS);
    let addr = t.addr;
    let (ok, e, g, s) = timed(
        t.pid,
        sessions(n, 32, move |i| async move {
            let mut c = Ctrl::connect(addr).await?;
            c.log_in(&format!("login{i:04}"), "login").await?;
            c.quit().await
        }),
    )
    .await?;
    let distinct = measure("login_distinct", ok as f64 / e, (e, g, s), json!({ "accounts": ok }));
    let before = procstat::tree_memory(t.pid);
    let (refused, e, g, s) = timed(
        t.pid,
        sessions(sizes.logins.failed, 64, move |i| async move {
            let mut c = Ctrl::connect(addr).await?;
            c.expect(&format!("USER login{:04}", i % LOGIN_NAMES), 331).await?;
            c.expect("PASS wrong", 530).await?;
            c.quit().await
        }),
    )
    .await?;
    let after = procstat::tree_memory(t.pid);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let idle = procstat::tree_memory(t.pid);
    let extra = json!({ "failed": refused, "per_s": refused as f64 / e, "rss_before_kib": before.rss_kib, "rss_idle_kib": idle.rss_kib });
    let burst = measure("login_failed_rss", after.rss_kib as f64, (e, g, s), extra.clone());
    let rest = measure("login_idle_rss", idle.rss_kib as f64, (e, g, s), extra);
    Ok(vec![distinct, burst, rest])
}

/// Runs `session(i)` for `i` in `0..n`, `width` at a time; how many ran (all, or the error).
async fn sessions<F, Fut>(n: usize, width: usize, session: F) -> Result<usize>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(width));
    let mut tasks = Vec::new();
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let fut = session(i);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            fut.await
        }));
    }
    for task in &mut tasks {
        task.await??;
    }
    Ok(tasks.len())
}

/// The names the failed-login burst cycles through.
const LOGIN_NAMES: usize = 1000;

/// The durable-write floor on the upload filesystem: `size` bytes written from memory in 1 MiB
/// writes, then fsync (as `dd conv=fsync` does), MiB/s (metric `stor_durable`); and `n` files of
/// `small` bytes each written, fsynced, renamed into place and their directory fsynced (what a
/// durable STOR of a new name costs at least), files/s (metric `small_stor_durable`).
pub fn durable_floor(dir: &Path, size: u64, n: usize, small: usize) -> Result<Vec<Measure>> {
    use std::io::Write as _;
    let chunk = vec![0x5au8; DATA_BUF];
    rustix::fs::sync();
    let path = dir.join("floor.bin");
    let t0 = Instant::now();
    let cpu0 = procstat::self_cpu();
    let mut f = std::fs::File::create(&path)?;
    let mut left = size;
    while left > 0 {
        let k = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..k])?;
        left -= k as u64;
    }
    f.sync_all()?;
    let e = t0.elapsed().as_secs_f64();
    let g = (procstat::self_cpu() - cpu0).as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    let big =
        measure("stor_durable", size as f64 / MIB / e, (e, g, 0.0), json!({ "bytes": size, "how": "write + fsync" }));
    let sub = dir.join("floor-small");
    let _ = std::fs::remove_dir_all(&sub);
    std::fs::create_dir_all(&sub)?;
    let d = std::fs::File::open(&sub)?;
    let t0 = Instant::now();
    let cpu0 = procstat::self_cpu();
    for i in 0..n {
        let (tmp, name) = (sub.join(format!(".t{i}")), sub.join(format!("f{i:04}")));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&chunk[..small.min(chunk.len())])?;
        f.sync_all()?;
        std::fs::rename(&tmp, &name)?;
        d.sync_all()?;
    }
    let e = t0.elapsed().as_secs_f64();
    let g = (procstat::self_cpu() - cpu0).as_secs_f64();
    std::fs::remove_dir_all(&sub)?;
    let files = measure(
        "small_stor_durable",
        n as f64 / e,
        (e, g, 0.0),
        json!({ "files": n, "how": "write + fsync + rename + directory fsync" }),
    );
    Ok(vec![big, files])
}

/// The floor of hashing a file: read it and compute its SHA-256 here (1 MiB reads), MiB/s.
pub fn hash_floor(file: &Path) -> Result<Vec<Measure>> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let t0 = Instant::now();
    let cpu0 = procstat::self_cpu();
    let mut f = std::fs::File::open(file)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    let _ = h.finalize();
    let e = t0.elapsed().as_secs_f64();
    let g = (procstat::self_cpu() - cpu0).as_secs_f64();
    Ok(vec![measure("hash_placed", total as f64 / MIB / e, (e, g, 0.0), json!({ "bytes": total }))])
}

/// The small files, downloaded then uploaded on one control connection: files/s each.
/// `retr`/`stor` choose the halves (both for the benchmark; one at a time for profiling).
pub async fn small(t: &Target, sizes: &Sizes, retr: bool, stor: bool) -> Result<Vec<Measure>> {
    let (dir, local) = t.upload_dir("small")?;
    let mut c = t.login().await?;
    let n = sizes.small_files;
    let mut out = Vec::new();
    if retr {
        out.push(small_retr(&mut c, t.pid, "small_retr", sizes).await?);
    }
    if stor {
        let mut chunk = vec![0u8; sizes.small_size];
        Noise::new(9).fill(&mut chunk);
        let ((), e, g, s) = timed(t.pid, async {
            for i in 0..n {
                c.upload(&format!("{dir}/s{i:04}"), &chunk, sizes.small_size as u64).await?;
            }
            Ok(())
        })
        .await?;
        let stored = std::fs::read_dir(&local)?.count();
        if stored != n {
            bail!("small STOR: {stored} files stored, expected {n}");
        }
        out.push(measure("small_stor", n as f64 / e, (e, g, s), json!({ "files": n })));
    }
    c.quit().await?;
    Ok(out)
}

/// `RETR` of each small file in turn on session `c` (timed against the server `pid`): files/s
/// as `metric`, the bytes checked.
pub(crate) async fn small_retr(c: &mut Ctrl, pid: u32, metric: &'static str, sizes: &Sizes) -> Result<Measure> {
    let n = sizes.small_files;
    let mut buf = vec![0u8; DATA_BUF];
    let (total, e, g, s) = timed(pid, async {
        let mut total = 0u64;
        for i in 0..n {
            total += c.download(&format!("RETR /small/f{i:04}"), &mut buf).await?.0;
        }
        Ok(total)
    })
    .await?;
    if total != (n * sizes.small_size) as u64 {
        bail!("{metric}: {total} bytes in all, expected {}", n * sizes.small_size);
    }
    Ok(measure(metric, n as f64 / e, (e, g, s), json!({ "files": n })))
}

/// LIST, NLST and (where FEAT offers MLST) MLSD of the big directory: the median of 3 listings
/// each, in seconds, twice: right after the directory's times were set to now before each
/// listing (`*_changed`: as if a file had just been added), then with the directory unchanged for
/// a few seconds (Ferry keeps the names of large unchanged directories; see
/// `crates/ferry-server/src/storage/dir_names.rs`). The peers do the same work in both.
pub async fn listing(t: &Target, sizes: &Sizes) -> Result<Vec<Measure>> {
    let mut c = t.login().await?;
    let mlsd = c.has_feature("MLST").await?;
    let mut buf = vec![0u8; DATA_BUF];
    let mut out = Vec::new();
    let dir = t.data_root().join("list");
    let cmds: &[(&'static str, &'static str, &str)] = &[
        ("list_changed", "list", "LIST /list"),
        ("nlst_changed", "nlst", "NLST /list"),
        ("mlsd_changed", "mlsd", "MLSD /list"),
    ];
    for changed in [true, false] {
        if !changed {
            // Longer than Ferry's quiet period (2 s) since the last change.
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
        for &(changed_metric, metric, cmd) in cmds {
            if metric == "mlsd" && !mlsd {
                continue;
            }
            let metric = if changed { changed_metric } else { metric };
            let mut reps = Vec::new();
            for _ in 0..3 {
                if changed {
                    touch_dir(&dir)?;
                }
                let ((bytes, lines), e, g, s) = timed(t.pid, c.download(cmd, &mut buf)).await?;
                if lines < sizes.list_entries as u64 {
                    bail!("{cmd}: {lines} lines, expected at least {}", sizes.list_entries);
                }
                reps.push(measure(metric, e, (e, g, s), json!({ "bytes": bytes, "lines": lines })));
            }
            reps.sort_by(|a, b| a.value.total_cmp(&b.value));
            out.push(reps.swap_remove(1));
        }
    }
    c.quit().await?;
    Ok(out)
}

/// Sets a directory's modification time to now (its change time follows), as adding or removing
/// an entry would.
fn touch_dir(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    f.set_times(std::fs::FileTimes::new().set_modified(std::time::SystemTime::now()))
        .with_context(|| format!("setting the times of {}", dir.display()))?;
    Ok(())
}

/// Connect, log in, QUIT, one after another: sessions per second (at most `connects`, 10 s).
pub async fn connect(t: &Target, sizes: &Sizes) -> Result<Vec<Measure>> {
    let limit = Duration::from_secs(10);
    let (done, e, g, s) = timed(t.pid, async {
        let start = Instant::now();
        let mut done = 0usize;
        while done < sizes.connects && start.elapsed() < limit {
            let mut c = Ctrl::connect(t.addr).await?;
            c.log_in(t.user, t.pass).await?;
            c.quit().await?;
            done += 1;
        }
        Ok(done)
    })
    .await?;
    Ok(vec![measure("connect", done as f64 / e, (e, g, s), json!({ "sessions": done }))])
}

/// Opens `idle_sessions` logged-in sessions and measures the server's memory (RSS and PSS summed
/// over its processes) before and after: KiB per session.
pub async fn idle(t: &Target, sizes: &Sizes) -> Result<Vec<Measure>> {
    hold(t, sizes.idle_sessions, ["idle_pss", "idle_rss", "login_concurrent"], true).await
}

/// The same with `hold_sessions` (10,000) sessions: how many the server holds (refused logins are
/// counted, not fatal), and the memory.
pub async fn hold_many(t: &Target, sizes: &Sizes) -> Result<Vec<Measure>> {
    hold(t, sizes.hold_sessions, ["hold_pss", "hold_ok", "hold_login"], false).await
}

async fn hold(t: &Target, n: usize, metrics: [&'static str; 3], strict: bool) -> Result<Vec<Measure>> {
    // One login first, so that a server that caches verified passwords (Ferry) does not count a
    // burst of concurrent first-time password hashes as session memory. (That burst is a finding
    // of its own: see docs/performance.md.)
    t.login().await?.quit().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = procstat::tree_memory(t.pid);
    let fds_before = procstat::tree_fds(t.pid);
    let procs_before = before.processes;
    let ((opened, open_secs), e, g, s) = timed(t.pid, async {
        let t0 = Instant::now();
        let opened = open_sessions(t, n).await?;
        Ok((opened, t0.elapsed().as_secs_f64()))
    })
    .await?;
    let Opened { sessions, refused: failed, first_error } = opened;
    if let (true, Some(e)) = (strict, &first_error) {
        bail!("{failed} of {n} sessions not opened: {e}");
    }
    // Let the servers settle (process-per-session servers finish forking).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = procstat::tree_memory(t.pid);
    let fds_after = procstat::tree_fds(t.pid);
    // Every session still answers (a sample of 20).
    let mut sessions = sessions;
    let sessions_len = sessions.len();
    for c in sessions.iter_mut().step_by((n / 20).max(1)) {
        c.expect("NOOP", 200).await?;
    }
    drop(sessions);
    // Wait (10 s at most) for the server's processes to go back to what they were.
    let deadline = Instant::now() + Duration::from_secs(10);
    while procstat::tree(t.pid).len() > procs_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = sessions_len;
    let per = |a: u64, b: u64| (a as f64 - b as f64) / held.max(1) as f64;
    let extra = json!({
        "sessions": n,
        "held": held,
        "refused": failed,
        "first_error": first_error,
        "open_secs": open_secs,
        "rss_before_kib": before.rss_kib, "rss_after_kib": after.rss_kib,
        "pss_before_kib": before.pss_kib, "pss_after_kib": after.pss_kib,
        "processes_before": before.processes, "processes_after": after.processes,
        "fds_before": fds_before, "fds_after": fds_after,
        "open_files_limit": procstat::open_files_limit(t.pid),
    });
    let pss = per(after.pss_kib, before.pss_kib);
    let rss = per(after.rss_kib, before.rss_kib);
    let second = if strict { rss } else { held as f64 };
    Ok(vec![
        measure(metrics[0], pss, (e, g, s), extra.clone()),
        measure(metrics[1], second, (e, g, s), extra),
        measure(metrics[2], n as f64 / open_secs, (e, g, s), json!({ "sessions": n, "concurrency": 32 })),
    ])
}

/// Sessions opened by [`open_sessions`], and the logins that failed.
struct Opened {
    sessions: Vec<Ctrl>,
    refused: usize,
    first_error: Option<String>,
}

/// Opens `n` logged-in sessions, 32 at a time; a login that fails is counted, not fatal.
async fn open_sessions(t: &Target, n: usize) -> Result<Opened> {
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (sem, addr, user, pass) = (sem.clone(), t.addr, t.user, t.pass);
        set.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            Ctrl::login(addr, user, pass).await
        });
    }
    let mut opened = Opened { sessions: Vec::with_capacity(n), refused: 0, first_error: None };
    while let Some(r) = set.join_next().await {
        match r.context("session task")? {
            Ok(c) => opened.sessions.push(c),
            Err(e) => {
                opened.refused += 1;
                opened.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    Ok(opened)
}

/// `busy.sessions` sessions (2,000) log in (32 at a time), then each, for `busy.secs` (60 s),
/// downloads a 4 KiB file and uploads one (over its own file), in turn, as fast as the server
/// answers. Files per second in all, the 99th percentile (and median) of one file's exchange
/// (EPSV to 226), the server's RSS (summed over its processes) at the end with every session
/// still open, and the errors (a session that fails stops; logins refused count too).
pub async fn busy(t: &Target, sizes: &Sizes) -> Result<Vec<Measure>> {
    let n = sizes.busy.sessions;
    let (dir, _local) = t.upload_dir("busy")?;
    let Opened { mut sessions, refused, first_error } = open_sessions(t, n).await?;
    let held = sessions.len();
    let secs = sizes.busy.secs;
    let small = (sizes.small_files, sizes.small_size);
    let ((lat, errors, err, alive), e, g, s) = timed(t.pid, async {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut set = tokio::task::JoinSet::new();
        for (i, mut c) in sessions.drain(..).enumerate() {
            let dir = dir.clone();
            set.spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                let chunk = vec![b'b'; small.1];
                let mut lat = Vec::new();
                let mut k = i;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    if k % 2 == 0 {
                        let f = (k / 2) % small.0;
                        let (got, _) = c.download(&format!("RETR /small/f{f:04}"), &mut buf).await?;
                        if got != small.1 as u64 {
                            bail!("busy RETR: {got} bytes, expected {}", small.1);
                        }
                    } else {
                        c.upload(&format!("{dir}/b{i:05}"), &chunk, small.1 as u64).await?;
                    }
                    lat.push(t0.elapsed().as_secs_f64());
                    k += 1;
                }
                Ok::<_, anyhow::Error>((lat, c))
            });
        }
        let (mut lat, mut errors, mut err, mut alive) = (Vec::new(), 0usize, None::<String>, Vec::new());
        while let Some(r) = set.join_next().await {
            match r.context("session task")? {
                Ok((l, c)) => {
                    lat.extend(l);
                    alive.push(c);
                }
                Err(e) => {
                    errors += 1;
                    err.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        Ok((lat, errors, err, alive))
    })
    .await?;
    let files = lat.len();
    // Measured with every session that survived still open.
    let mem = procstat::tree_memory(t.pid);
    drop(alive);
    let mut lat = lat;
    lat.sort_by(f64::total_cmp);
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0.0);
    let extra = json!({
        "sessions": n, "held": held, "refused": refused, "first_login_error": first_error,
        "errors": errors, "first_error": err, "files": files, "secs": e,
        "p50_ms": pct(0.50) * 1000.0, "p99_ms": pct(0.99) * 1000.0,
        "rss_kib": mem.rss_kib, "processes": mem.processes,
    });
    if held == 0 || files == 0 {
        bail!("busy: no session worked ({extra})");
    }
    Ok(vec![
        measure("busy_files", files as f64 / e, (e, g, s), extra.clone()),
        measure("busy_p99", pct(0.99) * 1000.0, (e, g, s), extra.clone()),
        measure("busy_rss", mem.rss_kib as f64 / 1024.0, (e, g, s), extra.clone()),
        measure("busy_failed", (errors + refused) as f64, (e, g, s), extra),
    ])
}

/// `concurrent` clients log in, then all download the mid-size file at once: aggregate MiB/s.
pub async fn concurrent(t: &Target, sizes: &Sizes) -> Result<Vec<Measure>> {
    let mut clients = Vec::new();
    for _ in 0..sizes.concurrent {
        clients.push(t.login().await?);
    }
    let ((total, clients), e, g, s) = timed(t.pid, async {
        let mut set = tokio::task::JoinSet::new();
        for mut c in clients {
            set.spawn(async move {
                let mut buf = vec![0u8; DATA_BUF];
                let (bytes, _) = c.download("RETR /mid.bin", &mut buf).await?;
                Ok::<_, anyhow::Error>((bytes, c))
            });
        }
        let (mut total, mut back) = (0u64, Vec::new());
        while let Some(r) = set.join_next().await {
            let (bytes, c) = r.context("client task")??;
            total += bytes;
            back.push(c);
        }
        Ok((total, back))
    })
    .await?;
    let expected = sizes.mid * sizes.concurrent as u64;
    if total != expected {
        bail!("concurrent RETR: {total} bytes in all, expected {expected}");
    }
    for c in clients {
        c.quit().await?;
    }
    Ok(vec![measure("concurrent", total as f64 / MIB / e, (e, g, s), json!({ "clients": sizes.concurrent }))])
}

/// The physical limit: the big file sent with `sendfile(2)` on a plain socket from a thread of
/// this process to a reader like the FTP data reader, over loopback, no FTP; the median of three
/// copies. The
/// "server CPU" is the sending thread's CPU time (the generator CPU includes it, so it is
/// subtracted).
pub async fn raw_tcp(big: &Path, sizes: &Sizes) -> Result<Vec<Measure>> {
    let mut reps = Vec::new();
    for _ in 0..3 {
        reps.push(raw_tcp_once(big, sizes).await?);
    }
    Ok(vec![median3(reps)])
}

async fn raw_tcp_once(big: &Path, sizes: &Sizes) -> Result<Measure> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let file = std::fs::File::open(big)?;
    let sender = std::thread::spawn(move || -> Result<f64> {
        let (sock, _) = listener.accept()?;
        // Not corked, 512 KiB per call (blocking): the fastest of corked/uncorked and 256 KiB-4 MiB
        // calls measured here with curl, lftp and this reader (docs/performance.md, issue 19).
        let cpu0 = thread_cpu();
        loop {
            let n = rustix::fs::sendfile(&sock, &file, None, 512 << 10)?;
            if n == 0 {
                break;
            }
        }
        drop(sock);
        Ok((thread_cpu() - cpu0).as_secs_f64())
    });
    let cpu0 = procstat::self_cpu();
    let t0 = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; DATA_BUF];
    let mut bytes = 0u64;
    loop {
        use tokio::io::AsyncReadExt;
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
    }
    let e = t0.elapsed().as_secs_f64();
    let cpu = (procstat::self_cpu() - cpu0).as_secs_f64();
    let sender_cpu = tokio::task::spawn_blocking(move || sender.join())
        .await?
        .map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
    if bytes != sizes.big {
        bail!("raw TCP: {bytes} bytes, expected {}", sizes.big);
    }
    Ok(measure("raw", bytes as f64 / MIB / e, (e, (cpu - sender_cpu).max(0.0), sender_cpu), json!({})))
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
