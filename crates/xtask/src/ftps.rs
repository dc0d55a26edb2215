//! The FTPS workload: every server with explicit FTPS required (AUTH TLS, PROT P, data
//! connections resuming the control connection's session), the same certificate (ECDSA P-256)
//! and the same cipher suite (AES-128-GCM), in TLS 1.3 and in TLS 1.2. Measured for each
//! version: RETR and STOR of the big file by the built-in client and by curl (MiB/s, and the
//! server's CPU seconds over it, which for 1 GiB is its CPU per GiB), connect + AUTH TLS + login +
//! QUIT per second (full handshakes: no session cache), and small-file RETR per second on one
//! session (a resumed TLS handshake per data connection).
//!
//! A TLS 1.3 client may spend a ticket per resumption (rustls, which the built-in client uses,
//! does), so the small-file row needs a server that sends a ticket on each download's data
//! connection: OpenSSL's servers do, and Ferry does since 7bc5d2b. (curl fetching many files in
//! one session is not used for it: curl 7.88 at times waits a second before it connects a data
//! connection, whatever the server.)

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;

use crate::clients;
use crate::dataset::{Noise, Sizes};
use crate::ftp::{Ctrl, DATA_BUF};
use crate::procstat;
use crate::servers::{Kind, Server};
use crate::tls::{self, Version};
use crate::workloads::{self, measure, median3, timed, Measure, Target, MIB};

/// The metric names of one TLS version.
struct Names {
    retr: &'static str,
    stor: &'static str,
    curl_retr: &'static str,
    curl_stor: &'static str,
    login: &'static str,
    small: &'static str,
}

/// The report's rows for the FTPS workload, both versions, in order: each metric with its label
/// (`big`: the big file's size, `small`: "N x SIZE"). Every one is a rate: higher is better.
pub fn report_rows(big: &str, small: &str) -> Vec<(&'static str, String)> {
    Version::ALL
        .into_iter()
        .flat_map(|v| {
            let (n, p) = (names(v), format!("FTPS TLS {}", v.number()));
            [
                (n.retr, format!("{p}: RETR {big} (built-in), MiB/s")),
                (n.curl_retr, format!("{p}: RETR {big} by curl, MiB/s")),
                (n.stor, format!("{p}: STOR {big} (built-in), MiB/s")),
                (n.curl_stor, format!("{p}: STOR {big} by curl, MiB/s")),
                (n.login, format!("{p}: connect+AUTH TLS+login+QUIT, /s")),
                (n.small, format!("{p}: {small} RETR (resumed TLS each), files/s")),
            ]
        })
        .collect()
}

const fn names(v: Version) -> Names {
    match v {
        Version::Tls13 => Names {
            retr: "ftps13_retr",
            stor: "ftps13_stor",
            curl_retr: "ftps13_curl_retr",
            curl_stor: "ftps13_curl_stor",
            login: "ftps13_login",
            small: "ftps13_small",
        },
        Version::Tls12 => Names {
            retr: "ftps12_retr",
            stor: "ftps12_stor",
            curl_retr: "ftps12_curl_retr",
            curl_stor: "ftps12_curl_stor",
            login: "ftps12_login",
            small: "ftps12_small",
        },
    }
}

/// What one FTPS run needs besides the server: the certificate to trust, the big file (curl
/// uploads it), a scratch directory for logs, the sizes.
pub struct Inputs<'a> {
    pub cert: &'a Path,
    pub big: &'a Path,
    pub scratch: &'a Path,
    pub sizes: &'a Sizes,
}

/// Every FTPS measurement of `v` against `server` (started with TLS required).
pub async fn run(server: &Server, t: &Target, v: Version, i: &Inputs<'_>) -> Result<Vec<Measure>> {
    let (cert, sizes) = (i.cert, i.sizes);
    // A session cache per control connection, as each client process has: ProFTPD refuses a
    // data connection that resumes a session other than its control connection's, and a
    // control connection may itself resume an earlier one.
    let session = || tls::Client::new(v, cert, true);
    let n = names(v);
    if server.kind == Kind::FerryNoFsync {
        // Only the uploads, for the STOR ratios.
        return Ok(vec![stor(t, v, cert, &n, sizes).await?, curl_stor(server, v, &n, i).await?]);
    }
    let mut out = vec![retr(t, &session()?, v, &n, sizes).await?];
    out.push(stor(t, v, cert, &n, sizes).await?);
    out.push(curl_retr(server, v, &n, i).await?);
    out.push(curl_stor(server, v, &n, i).await?);
    out.push(logins(t, &tls::Client::new(v, cert, false)?, &n, sizes).await?);
    out.push(small(t, &session()?, &n, sizes).await?);
    Ok(out)
}

/// RETR of the big file three times on one session: the median MiB/s. Checks what was
/// negotiated on the control connection.
async fn retr(t: &Target, client: &tls::Client, v: Version, n: &Names, sizes: &Sizes) -> Result<Measure> {
    let mut c = Ctrl::login_tls(t.addr, t.user, t.pass, client).await?;
    let conn = c.tls_connection();
    let negotiated = conn.map(tls::describe).unwrap_or_default();
    if conn.and_then(|t| t.protocol_version()) != Some(v.protocol()) {
        bail!("asked for TLS {}, negotiated {negotiated}", v.number());
    }
    let mut m = workloads::big_retr(&mut c, t.pid, n.retr, sizes).await?;
    c.quit().await?;
    m.extra["tls"] = json!(negotiated);
    Ok(m)
}

/// STOR of the big file's size from memory, three times, each on a session of its own (a
/// TLS 1.3 client that spends each ticket once has the control connection's for it: ProFTPD
/// sends none on an upload's data connection): the median MiB/s (size checked).
async fn stor(t: &Target, v: Version, cert: &Path, n: &Names, sizes: &Sizes) -> Result<Measure> {
    let (dir, local) = t.upload_dir(n.stor)?;
    let mut chunk = vec![0u8; DATA_BUF];
    Noise::new(13).fill(&mut chunk);
    let mut reps = Vec::new();
    for i in 0..3 {
        let mut c = Ctrl::login_tls(t.addr, t.user, t.pass, &tls::Client::new(v, cert, true)?).await?;
        rustix::fs::sync();
        let path = format!("{dir}/up{i}.bin");
        let file = local.join(format!("up{i}.bin"));
        let (e, settled, g, s) = workloads::timed_upload(t, &mut c, &path, &chunk, sizes.big, &file).await?;
        let got = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if got != sizes.big {
            bail!("STOR {path} over TLS: the file has {got} bytes, expected {}", sizes.big);
        }
        std::fs::remove_file(file)?;
        let extra = json!({ "bytes": sizes.big, "digest_after_226_ms": settled });
        reps.push(measure(n.stor, sizes.big as f64 / MIB / e, (e, g, s), extra));
        c.quit().await?;
    }
    Ok(median3(reps))
}

/// curl downloading the big file to /dev/null over explicit FTPS: MiB/s.
async fn curl_retr(server: &Server, v: Version, n: &Names, i: &Inputs<'_>) -> Result<Measure> {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "--fail", "-o", "/dev/null"])
        .args(v.curl_args(i.cert))
        .arg(format!("{}/big.bin", server.url_base()));
    let srv0 = procstat::tree_cpu(server.pid());
    let (e, cpu) = clients::run(cmd, Duration::from_secs(120), &i.scratch.join("ftps-reader.log")).await?;
    let srv = procstat::tree_cpu(server.pid()) - srv0;
    Ok(measure(n.curl_retr, i.sizes.big as f64 / MIB / e, (e, cpu, srv), json!({ "client": "curl" })))
}

/// curl uploading the big file (in the page cache) over explicit FTPS: MiB/s, size checked.
async fn curl_stor(server: &Server, v: Version, n: &Names, i: &Inputs<'_>) -> Result<Measure> {
    let sizes = i.sizes;
    let name = format!("{}.bin", n.curl_stor);
    let local = server.upload_local.join(&name);
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "--fail"]).args(v.curl_args(i.cert)).arg("-T").arg(i.big).arg(format!(
        "{}{}/{name}",
        server.url_base(),
        server.upload
    ));
    rustix::fs::sync();
    let srv0 = procstat::tree_cpu(server.pid());
    let (e, cpu) = clients::run(cmd, Duration::from_secs(180), &i.scratch.join("ftps-writer.log")).await?;
    let settled = workloads::digest_settled(server.kind.keeps_digests(), &local).await;
    let srv = procstat::tree_cpu(server.pid()) - srv0;
    let got = std::fs::metadata(&local).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&local);
    if got != sizes.big {
        bail!("curl STOR over TLS: {got} bytes stored, expected {}", sizes.big);
    }
    let extra = json!({ "client": "curl", "digest_after_226_ms": settled });
    Ok(measure(n.curl_stor, sizes.big as f64 / MIB / e, (e, cpu, srv), extra))
}

/// Connect + AUTH TLS (a full handshake: `client` keeps no sessions) + USER/PASS + QUIT, one
/// after another, for `sizes.connects` sessions or 10 s: sessions per second.
async fn logins(t: &Target, client: &tls::Client, n: &Names, sizes: &Sizes) -> Result<Measure> {
    let limit = Duration::from_secs(10);
    let (done, e, g, s) = timed(t.pid, async {
        let start = Instant::now();
        let mut done = 0usize;
        while done < sizes.connects && start.elapsed() < limit {
            let mut c = Ctrl::connect_tls(t.addr, client).await?;
            c.log_in(t.user, t.pass).await?;
            c.quit().await?;
            done += 1;
        }
        Ok(done)
    })
    .await?;
    Ok(measure(n.login, done as f64 / e, (e, g, s), json!({ "sessions": done })))
}

/// The small files downloaded one after another on one session by the built-in client, each
/// data connection a resumed TLS handshake: files per second.
async fn small(t: &Target, client: &tls::Client, n: &Names, sizes: &Sizes) -> Result<Measure> {
    let mut c = Ctrl::login_tls(t.addr, t.user, t.pass, client).await?;
    let m = workloads::small_retr(&mut c, t.pid, n.small, sizes).await?;
    c.quit().await?;
    Ok(m)
}
