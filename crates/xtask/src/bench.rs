//! `xtask bench`: build Ferry, start every server, run the workloads with the server order
//! rotating from run to run, print the medians and write the JSON.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::clients::{self, Tool};
use crate::dataset::{self, Sizes};
use crate::report::{self, Failure, Sample};
use crate::servers::{self, Kind, Server};
use crate::workloads::{self, Measure, Target};

/// The workloads, in the order each run goes through them.
pub const WORKLOADS: [&str; 16] = [
    "raw",
    "retr",
    "stor",
    "small",
    "list",
    "connect",
    "concurrent",
    "idle",
    "hold",
    "logins",
    "busy",
    "hash",
    "clients",
    "ftps",
    "get",
    "mirror",
];

/// Halves of a workload that `--only` also accepts (for profiling one of them).
const PARTS: [(&str, &str); 2] = [("small-retr", "small"), ("small-stor", "small")];

/// What `bench` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub runs: usize,
    pub only: Vec<String>,
    pub servers: Vec<String>,
    pub json: Option<PathBuf>,
    pub no_install: bool,
    pub no_build: bool,
    /// Upload to the shared filesystem, not a fresh one.
    pub shared_upload_fs: bool,
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(|p| p.parent()).unwrap_or(manifest).to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Raises the open-files limit to the hard limit (and the hard limit to 1,048,576 when root), so
/// the idle-sessions workload and the servers (which inherit it) are not capped at 1024.
fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    let mut hard = cur.maximum;
    if is_root() {
        let want = Some(1 << 20);
        if setrlimit(Resource::Nofile, Rlimit { current: want, maximum: want }).is_ok() {
            hard = want;
        }
    }
    let _ = setrlimit(Resource::Nofile, Rlimit { current: hard, maximum: hard });
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "memory": std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| m.lines().next().map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))),
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The commit benchmarked, and whether the work tree had changes.
fn git_state(root: &Path) -> serde_json::Value {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let changed: Vec<String> =
        out(&["status", "--porcelain", "--untracked-files=no"]).lines().map(String::from).collect();
    json!({ "head": out(&["rev-parse", "HEAD"]), "modified_files": changed })
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Builds `ferry` in release mode; its path.
pub fn build_release_ferry() -> Result<PathBuf> {
    let root = workspace_root();
    eprintln!("xtask: cargo build --release -p ferry");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo).args(["build", "--release", "-p", "ferry"]).current_dir(&root).status()?;
    if !status.success() {
        bail!("cargo build --release -p ferry failed");
    }
    Ok(target_dir(&root).join("release/ferry"))
}

/// Runs the benchmark.
pub fn run(opts: Options) -> Result<()> {
    let started = Instant::now();
    let root = workspace_root();
    let target = target_dir(&root);
    for w in &opts.only {
        if !WORKLOADS.contains(&w.as_str()) && !PARTS.iter().any(|(p, _)| p == w) {
            bail!("unknown workload {w:?}; workloads: {} (and small-retr, small-stor)", WORKLOADS.join(","));
        }
    }
    let wanted = |w: &str| {
        opts.only.is_empty() || opts.only.iter().any(|o| o == w || PARTS.iter().any(|(p, whole)| p == o && *whole == w))
    };
    let part = |p: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == "small" || o == p);

    if !opts.no_install {
        let script = root.join("scripts/install-bench-deps.sh");
        eprintln!("bench: {}", script.display());
        match Command::new("bash").arg(&script).status() {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("bench: warning: {} exited with {s}; running with what is installed", script.display()),
            Err(e) => eprintln!("bench: warning: cannot run {}: {e}", script.display()),
        }
    }
    let ferry = if opts.no_build { target.join("release/ferry") } else { build_release_ferry()? };
    if !ferry.is_file() {
        bail!("{} not found (build it or drop --no-build)", ferry.display());
    }
    let fd_limit = raise_fd_limit();
    let sizes = if opts.quick { Sizes::QUICK } else { Sizes::FULL };
    let bench_dir = target.join("bench");
    std::fs::create_dir_all(&bench_dir)?;
    let data = dataset::prepare(&bench_dir, &sizes)?;
    dataset::warm(&data.join("big.bin"))?;
    dataset::warm(&data.join("mid.bin"))?;
    // Where the client programs write: tmpfs when there is one, so that the client rows measure
    // the clients, not ext4 creating (and the next run deleting) thousands of files.
    let shm = Path::new("/dev/shm");
    let scratch =
        if shm.is_dir() { shm.join(format!("ferry-bench-{}", std::process::id())) } else { bench_dir.join("scratch") };
    std::fs::create_dir_all(&scratch)?;
    crate::cleanup::remove_on_exit(scratch.clone());
    let owner = if is_root() { servers::server_user() } else { None };
    // Uploads on a filesystem of their own, made for this invocation (see uploadfs.rs).
    let upload_fs = if opts.shared_upload_fs {
        "the shared filesystem (--shared-upload-fs)".to_string()
    } else if !is_root() {
        "the shared filesystem (not root: no fresh filesystem for uploads)".to_string()
    } else {
        let size = (sizes.big * 8).max(1 << 30) + (4 << 30);
        match crate::uploadfs::mount_fresh(&data.join("upload"), &bench_dir, size) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("bench: warning: no fresh filesystem for uploads ({e:#}); using the shared one");
                "the shared filesystem (making a fresh one failed)".to_string()
            }
        }
    };
    eprintln!("bench: uploads on {upload_fs}");

    // Which servers.
    let asked = |k: Kind| {
        let name = if k == Kind::FerryNoFsync { "ferry" } else { k.name() };
        opts.servers.is_empty() || opts.servers.iter().any(|s| s == name)
    };
    let mut kinds = Vec::new();
    for k in [Kind::Ferry, Kind::FerryNoFsync, Kind::Vsftpd, Kind::PureFtpd, Kind::ProFtpd, Kind::Floor] {
        // The floor is the small-file workload's limit, run like the TCP limit whatever --servers says.
        if k == Kind::Floor {
            if wanted("small") {
                kinds.push(k);
            }
            continue;
        }
        if !asked(k) || (k == Kind::FerryNoFsync && !wanted("stor") && !wanted("busy") && !part("small-stor")) {
            continue;
        }
        if k.binary(&ferry).is_none() {
            eprintln!("bench: {} is not installed; skipped (scripts/install-bench-deps.sh installs it)", k.name());
            continue;
        }
        if !matches!(k, Kind::Ferry | Kind::FerryNoFsync) && owner.is_none() {
            eprintln!("bench: {} needs root (it chroots and drops privileges); skipped", k.name());
            continue;
        }
        kinds.push(k);
    }
    let mut running: Vec<Server> = Vec::new();
    for k in kinds {
        let bin = k.binary(&ferry).context("binary vanished")?;
        match Server::start(k, &bin, &data, owner.as_ref(), None) {
            Ok(s) => {
                eprintln!("bench: {} on {} (pid {}): {}", k.name(), s.addr, s.pid(), s.version);
                running.push(s);
            }
            Err(e) => eprintln!("bench: warning: {e:#}; skipped"),
        }
    }
    // The FTPS workload's instances: each server again, with TLS required and one certificate.
    let cert_dir = tempfile::Builder::new().prefix("ferry-bench-cert-").tempdir()?;
    let certificate = if wanted("ftps") { Some(crate::tls::Certificate::make(&ferry, cert_dir.path())?) } else { None };
    if let Some(cert) = &certificate {
        // Ferry twice, as for plain STOR: with its fsync (every row) and without (the STOR rows'
        // ratios: no peer fsyncs).
        let mut kinds: Vec<Kind> = running
            .iter()
            .map(|s| s.kind)
            .filter(|k| matches!(k, Kind::Ferry | Kind::Vsftpd | Kind::PureFtpd | Kind::ProFtpd))
            .collect();
        if kinds.contains(&Kind::Ferry) {
            kinds.insert(1, Kind::FerryNoFsync);
        }
        for k in kinds {
            let bin = k.binary(&ferry).context("binary vanished")?;
            match Server::start(k, &bin, &data, owner.as_ref(), Some(cert)) {
                Ok(s) => {
                    eprintln!("bench: {} with FTPS on {} (pid {}): {}", k.name(), s.addr, s.pid(), s.version);
                    running.push(s);
                }
                Err(e) => eprintln!("bench: warning: {} with FTPS: {e:#}; skipped", k.name()),
            }
        }
    }
    if running.is_empty() {
        bail!("no server could be started");
    }
    let mut names: Vec<&str> =
        running.iter().filter(|s| s.kind != Kind::Floor && !s.tls).map(|s| s.kind.name()).collect();
    if running.iter().any(|s| s.tls && s.kind == Kind::FerryNoFsync) && !names.contains(&"ferry-nofsync") {
        names.insert(1.min(names.len()), "ferry-nofsync");
    }
    let load_before = loadavg();
    eprintln!("bench: load average {load_before}; {} run(s); open-files limit {fd_limit}", opts.runs);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let limit = if opts.quick { Duration::from_secs(30) } else { Duration::from_secs(300) };
    let mut samples: Vec<Sample> = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    let mut record = |run: usize, workload: &str, subject: String, r: Result<Vec<Measure>>| match r {
        Ok(ms) => {
            for m in ms {
                eprintln!(
                    "  run {} {:<17} {:<34} {:>10}  (gen cpu {:.2} s, server cpu {:.2} s, {:.2} s)",
                    run + 1,
                    m.metric,
                    subject,
                    format!("{:.4}", m.value).trim_end_matches('0').trim_end_matches('.'),
                    m.gen_cpu,
                    m.server_cpu,
                    m.elapsed
                );
                samples.push(Sample { run, subject: subject.clone(), m });
            }
        }
        Err(e) => {
            eprintln!("  run {} {workload} {subject}: FAILED: {e:#}", run + 1);
            failures.push(Failure { run, workload: workload.into(), subject, error: format!("{e:#}") });
        }
    };
    for run in 0..opts.runs {
        for (wi, &w) in WORKLOADS.iter().enumerate() {
            if !wanted(w) {
                continue;
            }
            match w {
                "raw" => {
                    let r = rt.block_on(bounded(limit, workloads::raw_tcp(&data.join("big.bin"), &sizes)));
                    record(run, w, "limit".into(), r);
                }
                "clients" => {
                    // curl, lftp and wget reading the big file from every server, curl and lftp
                    // writing it, the order rotating from run to run; then the durable-write floor
                    // on the upload filesystem.
                    let scratch = data.join("clients-scratch");
                    std::fs::create_dir_all(&scratch)?;
                    let mut order: Vec<&Server> =
                        running.iter().filter(|s| !matches!(s.kind, Kind::Floor) && !s.tls).collect();
                    if !order.is_empty() {
                        let n = order.len();
                        order.rotate_left((run + wi) % n);
                    }
                    for s in &order {
                        for tool in clients::READERS.iter().filter(|t| t.available(&ferry)) {
                            let r = rt.block_on(bounded(limit, async {
                                clients::retr_with(*tool, s, &scratch, &sizes).await.map(|m| vec![m])
                            }));
                            record(run, w, format!("{} @ {}", clients::short(*tool), s.kind.name()), r);
                        }
                        for tool in clients::WRITERS.iter().filter(|t| t.available(&ferry)) {
                            let big = data.join("big.bin");
                            let r = rt.block_on(bounded(limit, async {
                                clients::stor_with(*tool, s, &big, &scratch, &sizes).await.map(|m| vec![m])
                            }));
                            record(run, w, format!("{} @ {}", clients::short(*tool), s.kind.name()), r);
                        }
                    }
                    if let Some(s) = running.first() {
                        let floor =
                            workloads::durable_floor(&s.upload_local, sizes.big, sizes.small_files, sizes.small_size);
                        record(run, w, "limit".into(), floor);
                    }
                }
                "ftps" => {
                    // Every server with FTPS required, TLS 1.3 then 1.2, the order rotating.
                    let Some(cert) = &certificate else { continue };
                    let mut order: Vec<&Server> = running.iter().filter(|s| s.tls).collect();
                    if !order.is_empty() {
                        let n = order.len();
                        order.rotate_left((run + wi) % n);
                    }
                    let inputs = crate::ftps::Inputs {
                        cert: &cert.cert,
                        big: &data.join("big.bin"),
                        scratch: &scratch,
                        sizes: &sizes,
                    };
                    for s in order {
                        for v in crate::tls::Version::ALL {
                            let t = Target::of(s, owner.as_ref(), run);
                            let r = rt.block_on(bounded(limit, crate::ftps::run(s, &t, v, &inputs)));
                            record(run, w, s.kind.name().into(), r);
                        }
                    }
                }
                "hash" => {
                    // Ferry only (no peer answers HASH), then the floor: the same file read and
                    // hashed by this process.
                    for s in running.iter().filter(|s| s.kind == Kind::Ferry && !s.tls) {
                        let t = Target::of(s, owner.as_ref(), run);
                        let r = rt.block_on(bounded(limit, workloads::hash(&t, &sizes)));
                        record(run, w, s.kind.name().into(), r);
                    }
                    record(run, w, "limit".into(), workloads::hash_floor(&data.join("big.bin")));
                }
                "get" | "mirror" => {
                    let tools = if w == "get" { [Tool::FerryGet, Tool::Curl] } else { [Tool::FerryMirror, Tool::Lftp] };
                    // Against Ferry and vsftpd (the fastest peer), whichever are running.
                    for s in running.iter().filter(|s| matches!(s.kind, Kind::Ferry | Kind::Vsftpd) && !s.tls) {
                        for i in 0..tools.len() {
                            let tool = tools[(i + run) % tools.len()];
                            if !tool.available(&ferry) {
                                continue;
                            }
                            let subject = format!("{} @ {}", tool.name(), s.kind.name());
                            let fut = async {
                                if w == "get" {
                                    clients::get(tool, s, &ferry, &scratch, &sizes).await
                                } else {
                                    clients::mirror(tool, s, &ferry, &scratch, &sizes).await
                                }
                            };
                            let r = rt.block_on(bounded(limit, async { fut.await.map(|m| vec![m]) }));
                            record(run, w, subject, r);
                        }
                    }
                }
                _ => {
                    let mut order: Vec<&Server> = running
                        .iter()
                        .filter(|s| !s.tls)
                        .filter(|s| s.kind != Kind::FerryNoFsync || matches!(w, "stor" | "small" | "busy"))
                        .filter(|s| s.kind != Kind::Floor || w == "small")
                        // 10,000 sessions: Ferry only (a process-per-session peer would need
                        // 10,000-20,000 processes).
                        .filter(|s| s.kind == Kind::Ferry || !matches!(w, "hold" | "logins"))
                        .collect();
                    if !order.is_empty() {
                        let n = order.len();
                        order.rotate_left((run + wi) % n);
                    }
                    for s in order {
                        // Memory per session is measured on a fresh instance: a server that has
                        // run the other workloads has free heap that new sessions would reuse.
                        let fresh = if matches!(w, "idle" | "hold" | "logins") {
                            let bin = s.kind.binary(&ferry).context("binary vanished")?;
                            match Server::start(s.kind, &bin, &data, owner.as_ref(), None) {
                                Ok(f) => Some(f),
                                Err(e) => {
                                    record(run, w, s.kind.name().into(), Err(e));
                                    continue;
                                }
                            }
                        } else {
                            None
                        };
                        let t = Target::of(fresh.as_ref().unwrap_or(s), owner.as_ref(), run);
                        let r = rt.block_on(bounded(limit, async {
                            match w {
                                "retr" => workloads::retr(&t, &sizes).await,
                                "stor" => workloads::stor(&t, &sizes).await,
                                "small" => workloads::small(&t, &sizes, part("small-retr"), part("small-stor")).await,
                                "list" => workloads::listing(&t, &sizes).await,
                                "connect" => workloads::connect(&t, &sizes).await,
                                "concurrent" => workloads::concurrent(&t, &sizes).await,
                                "idle" => workloads::idle(&t, &sizes).await,
                                "hold" => workloads::hold_many(&t, &sizes).await,
                                "logins" => workloads::logins(&t, &sizes).await,
                                "busy" => workloads::busy(&t, &sizes).await,
                                _ => unreachable!("workload {w}"),
                            }
                        }));
                        let subject = if s.kind == Kind::Floor { "limit" } else { s.kind.name() };
                        record(run, w, subject.into(), r);
                        if let Some(mut f) = fresh {
                            f.stop();
                        }
                    }
                }
            }
        }
    }
    let load_after = loadavg();
    let server_info: Vec<serde_json::Value> = running
        .iter()
        .map(|s| {
            json!({
                "name": s.kind.name(), "ftps": s.tls, "greeting": s.version, "durability": s.kind.durability(),
                "login": if s.user == "anonymous" { "anonymous".to_string() } else { format!("{}:{}", s.user, s.pass) },
                "open_files_limit": crate::procstat::open_files_limit(s.pid()),
            })
        })
        .collect();
    for s in &mut running {
        s.stop();
    }
    for s in &running {
        if let Ok(entries) = std::fs::read_dir(&s.upload_local) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    drop(running);
    rt.shutdown_timeout(Duration::from_secs(2));

    let (text, summary) = report::render(&samples, &failures, &sizes, &names);
    println!("\n{text}");
    println!("Durability of uploads at 226:");
    for s in server_info.iter().filter(|s| s["ftps"] == false) {
        println!("  {}: {}", s["name"].as_str().unwrap_or(""), s["durability"].as_str().unwrap_or(""));
    }
    println!("Uploads on {upload_fs}.");
    println!("Load average before/after: {load_before} / {load_after}; took {:.0} s", started.elapsed().as_secs_f64());

    let doc = json!({
        "date": now_utc(),
        "machine": machine(),
        "git": git_state(&root),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "quick": opts.quick,
        "runs": opts.runs,
        "sizes": format!("{sizes:?}"),
        "open_files_limit": fd_limit,
        "uploads_on": upload_fs,
        "servers": server_info,
        "summary": summary,
        "samples": samples.iter().map(|s| json!({
            "run": s.run, "subject": s.subject, "metric": s.m.metric, "value": s.m.value,
            "elapsed_s": s.m.elapsed, "generator_cpu_s": s.m.gen_cpu, "server_cpu_s": s.m.server_cpu, "extra": s.m.extra,
        })).collect::<Vec<_>>(),
        "failures": failures.iter().map(|f| json!({ "run": f.run, "workload": f.workload, "subject": f.subject, "error": f.error })).collect::<Vec<_>>(),
    });
    let json_path = opts.json.clone().unwrap_or_else(|| bench_dir.join("results.json"));
    if let Some(dir) = json_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc)?)?;
    println!("JSON: {}", json_path.display());
    if samples.is_empty() {
        bail!("no workload succeeded");
    }
    Ok(())
}

/// Bounds a workload in time.
async fn bounded<T>(limit: Duration, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => bail!("timed out after {} s", limit.as_secs()),
    }
}
