//! The soak test: many concurrent clients from one address, for a while, mixing logins, listings,
//! uploads, downloads, aborts and abrupt disconnects against one `ferry serve`; every byte checked,
//! the server's memory sampled throughout (`make soak`; `make check` runs a short one).
//!
//! Each client logs in and loops until the round ends, picking one step at a time: download a
//! seeded file and compare it with what was written; list a 200-entry directory; upload a file of
//! its own, download it back, compare, delete it; start a download of a large file and `ABOR` it;
//! cut an upload by closing both connections without a word, then log in again; log out and in.
//! A round ends, the clients quit, the server idles for a few seconds, and its RSS is read. The
//! verdict: no error at all, the RSS after the last round within 10% of the RSS after the first
//! (no creep), and back near its idle size after each burst.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use ferry_testkit::{random_bytes, rss_kib};

use crate::ftp::{one_line, Ctrl};

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent clients.
    pub clients: usize,
    /// Seconds per round.
    pub secs: u64,
    /// Rounds (memory is read after each).
    pub rounds: usize,
    /// The `ferry` binary.
    pub ferry: PathBuf,
    /// Where to write the JSON results.
    pub json: Option<PathBuf>,
}

/// Seeded files: name and content.
struct Dataset {
    files: Vec<(String, Vec<u8>)>,
    big: Vec<u8>,
    listing: usize,
}

fn seed(root: &Path) -> Result<Dataset> {
    let mut files = Vec::new();
    for i in 0..16u64 {
        let data = random_bytes(1024 << (i % 10), i + 1);
        let name = format!("f{i}.bin");
        std::fs::write(root.join(&name), &data)?;
        files.push((name, data));
    }
    let big = random_bytes(8 << 20, 99);
    std::fs::write(root.join("big.bin"), &big)?;
    std::fs::create_dir_all(root.join("dir"))?;
    let listing = 200;
    for i in 0..listing {
        std::fs::write(root.join(format!("dir/entry-{i:03}")), b"x")?;
    }
    std::fs::create_dir_all(root.join("up"))?;
    Ok(Dataset { files, big, listing })
}

/// Counts of what the clients did.
#[derive(Debug, Default)]
struct Tally {
    steps: AtomicU64,
    aborts: AtomicU64,
    cut: AtomicU64,
    logins: AtomicU64,
    /// Connections refused before their greeting (421: the per-address limit on connections not
    /// logged in yet); the client waits a little and tries again, as clients do.
    refused: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, e: &anyhow::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        if first.len() < 10 {
            first.push(format!("{e:#}"));
        }
    }
}

/// Runs the soak; fails if any client saw an error or the memory crept.
pub fn run(opts: Options) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("ferry-soak-").tempdir()?;
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root)?;
    let data = Arc::new(seed(&root)?);
    let mut server = std::process::Command::new(&opts.ferry)
        .args(["serve", "--listen", "127.0.0.1:0", "--user", "soak:soak", "--root"])
        .arg(&root)
        .args(["--max-sessions", "20000", "--idle-timeout", "600", "--data-timeout", "30"])
        // A passive range, as a production server has: its ports are bound with SO_REUSEADDR, so
        // the TIME_WAIT that thousands of downloads a minute leave behind (the server closes them)
        // does not block them. Without a range, port-0 binds draw on the ephemeral range, which
        // those TIME_WAITs exhaust within a minute at this rate (425 for every PASV/EPSV).
        .args(["--passive-ports", "20000-32000"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("server.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", opts.ferry.display()))?;
    crate::cleanup::register(server.id());
    let pid = server.id();
    let addr = read_addr(&mut server)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = rt.block_on(soak(addr, pid, data, &opts));
    let _ = server.kill();
    let _ = server.wait();
    crate::cleanup::unregister(pid);
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    if log.contains("panicked") {
        bail!("the server panicked:\n{log}");
    }
    if result.is_err() {
        // What the server said about the failures, for the report.
        // (Aborted downloads of big.bin fail by design: the client closes after its first bytes.)
        let notable = |l: &&str| {
            l.contains("WARN") || l.contains("ERROR") || (l.contains("transfer failed") && !l.contains("path=/big.bin"))
        };
        for line in log.lines().filter(notable).take(20) {
            eprintln!("soak: server: {line}");
        }
    }
    result
}

fn read_addr(server: &mut std::process::Child) -> Result<SocketAddr> {
    use std::io::BufRead as _;
    let out = server.stdout.take().context("server stdout")?;
    let mut lines = std::io::BufReader::new(out).lines();
    let addr = loop {
        let line = lines.next().context("the server exited before listening")??;
        if let Some(a) = line.strip_prefix("listening on ") {
            break a.parse()?;
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Ok(addr)
}

async fn soak(addr: SocketAddr, pid: u32, data: Arc<Dataset>, opts: &Options) -> Result<()> {
    // One login so the password is verified (and cached) before the crowd arrives.
    Ctrl::login(addr, "soak", "soak").await?.quit().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(idle));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    println!(
        "soak: {} clients x {} s x {} rounds against {addr}; server idle RSS {} KiB",
        opts.clients, opts.secs, opts.rounds, idle
    );
    let tally = Arc::new(Tally::default());
    let mut after = Vec::new();
    for round in 0..opts.rounds {
        let started = Instant::now();
        let end = started + Duration::from_secs(opts.secs);
        let mut clients = tokio::task::JoinSet::new();
        for id in 0..opts.clients {
            let (data, tally) = (data.clone(), tally.clone());
            // Arrivals spread over two seconds, as a crowd's do.
            let delay = Duration::from_millis((id as u64 * 2000) / opts.clients.max(1) as u64);
            clients.spawn(async move {
                tokio::time::sleep(delay).await;
                client(addr, id, round, end, &data, &tally).await;
            });
        }
        while clients.join_next().await.is_some() {}
        let busy = started.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = rss_kib(pid);
        after.push(rss);
        println!(
            "soak: round {} done in {:.1} s; so far {} steps, {} MiB checked, {} aborts, {} cut uploads, {} logins ({} refused at first), {} errors; RSS after {} KiB (peak so far {} KiB)",
            round + 1,
            busy.as_secs_f64(),
            tally.steps.load(Ordering::Relaxed),
            CHECKED.load(Ordering::Relaxed) >> 20,
            tally.aborts.load(Ordering::Relaxed),
            tally.cut.load(Ordering::Relaxed),
            tally.logins.load(Ordering::Relaxed),
            tally.refused.load(Ordering::Relaxed),
            tally.errors.load(Ordering::Relaxed),
            rss,
            peak.load(Ordering::Relaxed),
        );
    }
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let errors = tally.errors.load(Ordering::Relaxed);
    let first_after = after.first().copied().unwrap_or(idle);
    let last_after = after.last().copied().unwrap_or(idle);
    let json = serde_json::json!({
        "clients": opts.clients, "secs": opts.secs, "rounds": opts.rounds,
        "steps": tally.steps.load(Ordering::Relaxed),
        "bytes_checked": CHECKED.load(Ordering::Relaxed),
        "aborts": tally.aborts.load(Ordering::Relaxed),
        "cut_uploads": tally.cut.load(Ordering::Relaxed),
        "logins": tally.logins.load(Ordering::Relaxed),
        "refused_at_greeting": tally.refused.load(Ordering::Relaxed),
        "errors": errors,
        "rss_idle_kib": idle, "rss_peak_kib": peak.load(Ordering::Relaxed), "rss_after_rounds_kib": after,
    });
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    if errors > 0 {
        let first = tally.first_errors.lock().unwrap_or_else(|p| p.into_inner()).join("\n  ");
        bail!("{errors} errors; the first:\n  {first}");
    }
    // No creep: the last round leaves the server as the first did (10%, and 1 MiB of slack for
    // the runtime's own bookkeeping).
    if last_after > first_after + first_after / 10 + 1024 {
        bail!("RSS crept from {first_after} KiB after the first round to {last_after} KiB after the last");
    }
    // Back near idle after a burst: within 16 MiB or half the idle size, whichever is larger.
    let near = idle + (idle / 2).max(16 * 1024);
    if last_after > near {
        bail!("RSS stayed at {last_after} KiB after the clients left (idle {idle} KiB)");
    }
    println!(
        "soak: no errors; RSS idle {idle} KiB, peak {} KiB, after rounds {after:?} KiB",
        peak.load(Ordering::Relaxed)
    );
    Ok(())
}

/// One client's round: log in, take steps until `end`, quit.
async fn client(addr: SocketAddr, id: usize, round: usize, end: Instant, data: &Dataset, tally: &Tally) {
    let mut rng = (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (round as u64 + 1);
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut ctrl: Option<Ctrl> = None;
    let mut step_no = 0u64;
    while Instant::now() < end {
        let c = match ctrl.as_mut() {
            Some(c) => c,
            None => match Ctrl::login(addr, "soak", "soak").await {
                Ok(c) => {
                    tally.logins.fetch_add(1, Ordering::Relaxed);
                    ctrl.insert(c)
                }
                Err(e) if format!("{e:#}").starts_with("greeting: 421") => {
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => {
                    tally.error(&e.context(format!("client {id}: login")));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        step_no += 1;
        let pick = next(100);
        let name = format!("up/c{id}-r{round}-{step_no}.bin");
        let what = match pick {
            0..=24 => "download",
            25..=39 => "listing",
            40..=64 => "upload round trip",
            65..=74 => "abort",
            _ => "other",
        };
        let outcome = match pick {
            0..=24 => {
                let (file, want) = &data.files[next(data.files.len() as u64) as usize];
                fetch(c, &format!("RETR {file}"), &mut buf).await.and_then(|got| same(&got, want, file))
            }
            25..=39 => {
                let verb = ["NLST dir", "LIST dir", "MLSD dir"][next(3) as usize];
                fetch(c, verb, &mut buf).await.and_then(|got| {
                    let lines = got.iter().filter(|&&b| b == b'\n').count();
                    if lines == data.listing {
                        Ok(())
                    } else {
                        bail!("{verb}: {lines} lines, {} expected", data.listing)
                    }
                })
            }
            40..=64 => {
                let body = random_bytes(1024 + next(256 * 1024) as usize, rng_seed(id, round, step_no));
                round_trip(c, &name, &body, &mut buf).await
            }
            65..=74 => abort(c, &data.big, &mut buf).await.map(|()| {
                tally.aborts.fetch_add(1, Ordering::Relaxed);
            }),
            75..=79 => {
                // Abrupt: both connections closed in the middle of an upload, nothing said.
                if let Some(c) = ctrl.take() {
                    cut_upload(c, &name).await;
                    tally.cut.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            80..=84 => {
                if let Some(c) = ctrl.take() {
                    if let Err(e) = c.quit().await {
                        tally.error(&e.context(format!("client {id}: QUIT")));
                    }
                }
                Ok(())
            }
            _ => simple(c, next(4)).await,
        };
        match outcome {
            Ok(()) => {
                tally.steps.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tally.error(&e.context(format!("client {id}, step {step_no} ({what})")));
                ctrl = None;
            }
        }
    }
    if let Some(c) = ctrl {
        if let Err(e) = c.quit().await {
            tally.error(&e.context(format!("client {id}: final QUIT")));
        }
    }
}

fn rng_seed(id: usize, round: usize, step: u64) -> u64 {
    ((id as u64) << 40) ^ ((round as u64) << 32) ^ step
}

fn same(got: &[u8], want: &[u8], what: &str) -> Result<()> {
    if got != want {
        bail!("{what}: {} bytes, {} expected, or different bytes", got.len(), want.len());
    }
    CHECKED.fetch_add(got.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// Bytes compared with what they should be, over all clients.
static CHECKED: AtomicU64 = AtomicU64::new(0);

/// A download command's data, whole.
async fn fetch(c: &mut Ctrl, command: &str, buf: &mut [u8]) -> Result<Vec<u8>> {
    let mut data = c.open_data().await?;
    let (l, r) = (data.local_addr().ok(), data.peer_addr().ok());
    c.send(command).await?;
    let receive = async move {
        let mut got = Vec::new();
        loop {
            let n = data.read(buf).await.with_context(|| format!("data connection {l:?} -> {r:?}"))?;
            if n == 0 {
                return Ok::<_, anyhow::Error>(got);
            }
            got.extend_from_slice(&buf[..n]);
        }
    };
    let (got, ()) = tokio::try_join!(receive, c.transfer_replies(command))?;
    Ok(got)
}

/// Upload `body` as `name`, download it back, compare, delete it.
async fn round_trip(c: &mut Ctrl, name: &str, body: &[u8], buf: &mut [u8]) -> Result<()> {
    c.upload(name, body, body.len() as u64).await?;
    let got = fetch(c, &format!("RETR {name}"), buf).await?;
    same(&got, body, name)?;
    c.expect(&format!("DELE {name}"), 250).await?;
    Ok(())
}

/// A download of the large file, aborted after its first bytes: 426 then 226; or, when the
/// transfer ended (the client's close of the data connection ended it first, or it completed)
/// before ABOR was read, its own reply (426 or 226) then 225; and the session goes on.
async fn abort(c: &mut Ctrl, big: &[u8], buf: &mut [u8]) -> Result<()> {
    let mut data = c.open_data().await?;
    c.send("RETR big.bin").await?;
    let r = c.reply().await?;
    if r.code.0 != 150 {
        bail!("RETR big.bin: {}", one_line(&r));
    }
    let n = data.read(buf).await.context("data connection")?;
    if n == 0 || buf[..n] != big[..n] {
        bail!("RETR big.bin: the first {n} bytes differ");
    }
    CHECKED.fetch_add(n as u64, Ordering::Relaxed);
    c.send("ABOR").await?;
    drop(data);
    let first = c.reply().await?;
    let second = c.reply().await?;
    match (first.code.0, second.code.0) {
        (426, 226) | (426, 225) | (226, 226) | (226, 225) => {}
        _ => bail!("ABOR: {} then {}", one_line(&first), one_line(&second)),
    }
    c.expect("NOOP", 200).await?;
    Ok(())
}

/// Starts an upload, sends part of it, and closes both connections without a word.
async fn cut_upload(mut c: Ctrl, name: &str) {
    let Ok(mut data) = c.open_data().await else { return };
    if c.send(&format!("STOR {name}")).await.is_err() {
        return;
    }
    let _ = data.write_all(&random_bytes(100_000, 7)).await;
    drop(data);
    drop(c);
}

/// A command that needs no data connection.
async fn simple(c: &mut Ctrl, which: u64) -> Result<()> {
    match which {
        0 => c.expect("SIZE f3.bin", 213).await.map(drop),
        1 => c.expect("MDTM f3.bin", 213).await.map(drop),
        2 => c.expect("CWD dir", 250).await.and(c.expect("CDUP", 200).await).map(drop),
        _ => c.expect("PWD", 257).await.map(drop),
    }
}
