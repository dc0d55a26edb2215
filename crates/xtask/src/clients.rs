//! The client side: `ferry get` against `curl` for the big file, and `ferry mirror --parallel 8`
//! against `lftp mirror --parallel=8` for the tree, each against the same server. The programs run
//! as child processes (in their own process group, registered for cleanup) with a time limit;
//! their CPU time is what this process's waited-for children used.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::cleanup;
use crate::dataset::Sizes;
use crate::procstat;
use crate::servers::Server;
use crate::workloads::Measure;

const MIB: f64 = 1024.0 * 1024.0;

/// Which client program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    FerryGet,
    Curl,
    FerryMirror,
    Lftp,
    Wget,
}

/// The clients people use, as plain readers and writers of one big file (`readers` workload).
pub const READERS: [Tool; 3] = [Tool::Curl, Tool::Lftp, Tool::Wget];
/// The same, uploading (wget cannot).
pub const WRITERS: [Tool; 2] = [Tool::Curl, Tool::Lftp];

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::FerryGet => "ferry get",
            Tool::Curl => "curl",
            Tool::FerryMirror => "ferry mirror --parallel 8",
            Tool::Lftp => "lftp mirror --parallel=8",
            Tool::Wget => "wget",
        }
    }

    /// Whether the program is installed.
    pub fn available(self, ferry: &Path) -> bool {
        match self {
            Tool::FerryGet | Tool::FerryMirror => ferry.is_file(),
            Tool::Curl => which("curl"),
            Tool::Lftp => which("lftp"),
            Tool::Wget => which("wget"),
        }
    }
}

fn which(name: &str) -> bool {
    std::env::var("PATH").unwrap_or_default().split(':').any(|d| Path::new(d).join(name).is_file())
}

/// Runs `cmd` to its end within `limit` (its stderr goes to `log`); returns (wall seconds, CPU
/// seconds).
pub(crate) async fn run(mut cmd: tokio::process::Command, limit: Duration, log: &Path) -> Result<(f64, f64)> {
    let err = std::fs::File::create(log)?;
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(err).process_group(0);
    let cpu0 = procstat::waited_children_cpu();
    let t0 = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id().unwrap_or(0);
    cleanup::register(pid);
    let status = tokio::time::timeout(limit, child.wait()).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let status = match status {
        Ok(r) => r,
        Err(_) => {
            // Not reaped yet, so the PID is still this child's.
            cleanup::kill_tree(pid);
            let _ = child.wait().await;
            cleanup::unregister(pid);
            bail!("{cmd:?} did not finish within {} s", limit.as_secs());
        }
    };
    cleanup::unregister(pid);
    let status = status?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        bail!("{cmd:?} failed ({status}): {}", text.trim());
    }
    Ok((elapsed, procstat::waited_children_cpu() - cpu0))
}

/// Downloads the big file from `server` with `tool` into `scratch`: MiB/s.
pub async fn get(tool: Tool, server: &Server, ferry: &Path, scratch: &Path, sizes: &Sizes) -> Result<Measure> {
    let dir = fresh(scratch, "get")?;
    let dest = dir.join("big.bin");
    let url = format!("{}/big.bin", server.url_base());
    let cmd = match tool {
        Tool::FerryGet => {
            let mut c = tokio::process::Command::new(ferry);
            c.args(["get", "--quiet", &url]).arg(&dest);
            c
        }
        Tool::Curl => {
            let mut c = tokio::process::Command::new("curl");
            c.args(["-sS", "--fail", "-o"]).arg(&dest).arg(&url);
            c
        }
        _ => bail!("{} is not a download tool", tool.name()),
    };
    let srv0 = procstat::tree_cpu(server.pid());
    let (e, cpu) = run(cmd, Duration::from_secs(120), &scratch.join("get.log")).await?;
    let srv = procstat::tree_cpu(server.pid()) - srv0;
    let got = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    std::fs::remove_dir_all(&dir)?;
    if got != sizes.big {
        bail!("{}: {got} bytes downloaded, expected {}", tool.name(), sizes.big);
    }
    Ok(Measure {
        metric: "client_get",
        value: sizes.big as f64 / MIB / e,
        elapsed: e,
        gen_cpu: cpu,
        server_cpu: srv,
        extra: json!({ "client": tool.name(), "server": server.kind.name() }),
    })
}

/// The lftp script that logs in to `server` and runs `then`.
fn lftp_script(server: &Server, then: &str) -> String {
    let login = if server.user == "anonymous" { String::new() } else { format!("-u {},{} ", server.user, server.pass) };
    format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set xfer:clobber yes; open {login}-p {} {}; {then}",
        server.addr.port(),
        server.addr.ip()
    )
}

/// The short name of a reader or writer.
pub fn short(tool: Tool) -> &'static str {
    match tool {
        Tool::Lftp => "lftp",
        other => other.name(),
    }
}

/// `RETR /big.bin` by `tool` (curl, lftp, wget) into `/dev/null`, as people run them: MiB/s.
pub async fn retr_with(tool: Tool, server: &Server, scratch: &Path, sizes: &Sizes) -> Result<Measure> {
    let url = format!("{}/big.bin", server.url_base());
    let cmd = match tool {
        Tool::Curl => {
            let mut c = tokio::process::Command::new("curl");
            c.args(["-sS", "--fail", "-o", "/dev/null", &url]);
            c
        }
        Tool::Lftp => {
            let mut c = tokio::process::Command::new("lftp");
            c.arg("-c").arg(lftp_script(server, "get /big.bin -o /dev/null"));
            c
        }
        Tool::Wget => {
            let mut c = tokio::process::Command::new("wget");
            c.args(["-q", "-O", "/dev/null", &url]);
            c
        }
        _ => bail!("{} is not a reader", tool.name()),
    };
    let srv0 = procstat::tree_cpu(server.pid());
    let (e, cpu) = run(cmd, Duration::from_secs(120), &scratch.join("reader.log")).await?;
    let srv = procstat::tree_cpu(server.pid()) - srv0;
    Ok(Measure {
        metric: "reader_retr",
        value: sizes.big as f64 / MIB / e,
        elapsed: e,
        gen_cpu: cpu,
        server_cpu: srv,
        extra: json!({ "client": short(tool), "server": server.kind.name() }),
    })
}

/// `STOR` of `source` (the big file, in the page cache) by `tool` (curl, lftp) into the server's
/// upload directory: MiB/s, the size checked.
pub async fn stor_with(tool: Tool, server: &Server, source: &Path, scratch: &Path, sizes: &Sizes) -> Result<Measure> {
    let name = format!("client-{}.bin", short(tool));
    let remote = format!("{}/{name}", server.upload);
    let local = server.upload_local.join(&name);
    let cmd = match tool {
        Tool::Curl => {
            let mut c = tokio::process::Command::new("curl");
            c.args(["-sS", "--fail", "-T"]).arg(source).arg(format!("{}{remote}", server.url_base()));
            c
        }
        Tool::Lftp => {
            let mut c = tokio::process::Command::new("lftp");
            c.arg("-c").arg(lftp_script(server, &format!("put {} -o {remote}", source.display())));
            c
        }
        _ => bail!("{} is not a writer", tool.name()),
    };
    rustix::fs::sync();
    let srv0 = procstat::tree_cpu(server.pid());
    let (e, cpu) = run(cmd, Duration::from_secs(180), &scratch.join("writer.log")).await?;
    let settled = crate::workloads::digest_settled(server.kind.keeps_digests(), &local).await;
    let srv = procstat::tree_cpu(server.pid()) - srv0;
    let got = std::fs::metadata(&local).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&local);
    if got != sizes.big {
        bail!("{}: {got} bytes stored, expected {}", tool.name(), sizes.big);
    }
    Ok(Measure {
        metric: "writer_stor",
        value: sizes.big as f64 / MIB / e,
        elapsed: e,
        gen_cpu: cpu,
        server_cpu: srv,
        extra: json!({ "client": short(tool), "server": server.kind.name(), "digest_after_226_ms": settled }),
    })
}

/// Mirrors the tree from `server` with `tool` into `scratch`: files/s.
pub async fn mirror(tool: Tool, server: &Server, ferry: &Path, scratch: &Path, sizes: &Sizes) -> Result<Measure> {
    let dir = fresh(scratch, "mirror")?;
    let dest = dir.join("tree");
    let cmd = match tool {
        Tool::FerryMirror => {
            let mut c = tokio::process::Command::new(ferry);
            c.args(["mirror", "--quiet", "--parallel", "8", &format!("{}/tree", server.url_base())]).arg(&dest);
            c
        }
        Tool::Lftp => {
            let mut c = tokio::process::Command::new("lftp");
            c.arg("-c").arg(lftp_script(server, &format!("mirror --parallel=8 /tree {}", dest.display())));
            c
        }
        _ => bail!("{} is not a mirror tool", tool.name()),
    };
    let srv0 = procstat::tree_cpu(server.pid());
    let (e, cpu) = run(cmd, Duration::from_secs(180), &scratch.join("mirror.log")).await?;
    let srv = procstat::tree_cpu(server.pid()) - srv0;
    let files = count_files(&dest);
    std::fs::remove_dir_all(&dir)?;
    if files != sizes.tree_files {
        bail!("{}: {files} files mirrored, expected {}", tool.name(), sizes.tree_files);
    }
    Ok(Measure {
        metric: "client_mirror",
        value: files as f64 / e,
        elapsed: e,
        gen_cpu: cpu,
        server_cpu: srv,
        extra: json!({ "client": tool.name(), "server": server.kind.name(), "files": files }),
    })
}

fn fresh(scratch: &Path, name: &str) -> Result<PathBuf> {
    let dir = scratch.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}
