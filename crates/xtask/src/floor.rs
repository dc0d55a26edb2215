//! The small-file floor: the least work any FTP server must do to answer the small-file workload,
//! run as a server of its own (`xtask floor-server`), so that the benchmark can say how close each
//! real server comes to it.
//!
//! One blocking thread per control connection, no logging, no access checks beyond refusing `..`,
//! no authentication (any USER is logged in). Per file it makes only the system calls the exchange
//! itself needs: the EPSV listener (socket, bind, listen), the 229, the command read, `openat` and
//! `fstat` (RETR) or `openat` with `O_CREAT|O_TRUNC` (STOR), the 150, `accept`, one `sendfile` (or
//! `read`/`write` until EOF), the closes and the 226. Like the other servers it takes its passive
//! ports from a range of its own. It speaks just enough FTP for the load generator (USER, PASS,
//! TYPE, FEAT, EPSV, RETR, STOR, QUIT); a real server cannot do less per file, so its rate is the
//! limit the servers are compared with, as the TCP copy is for 1 GiB.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

/// Serves `root` on `listen` until killed; passive ports from `passive`.
pub fn serve(listen: SocketAddr, root: PathBuf, passive: (u16, u16)) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    let mut next_port = passive.0;
    loop {
        let (sock, _) = listener.accept()?;
        let root = root.clone();
        let first = next_port;
        // Sessions take turns through the range, so concurrent sessions rarely collide.
        next_port = if next_port >= passive.1.saturating_sub(64) { passive.0 } else { next_port + 64 };
        std::thread::spawn(move || {
            let _ = session(sock, &root, passive, first);
        });
    }
}

fn session(sock: TcpStream, root: &Path, passive: (u16, u16), mut next_port: u16) -> Result<()> {
    sock.set_nodelay(true)?;
    let mut out = sock.try_clone()?;
    let mut input = BufReader::new(sock);
    out.write_all(b"220 floor ready\r\n")?;
    let mut data: Option<TcpListener> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        match verb.to_ascii_uppercase().as_str() {
            "USER" | "PASS" => out.write_all(b"230 Logged in.\r\n")?,
            "TYPE" => out.write_all(b"200 Type set.\r\n")?,
            "FEAT" => out.write_all(b"211-Features:\r\n EPSV\r\n211 End\r\n")?,
            "QUIT" => {
                out.write_all(b"221 Bye.\r\n")?;
                return Ok(());
            }
            "EPSV" => {
                let (l, port) = bind_passive(passive, &mut next_port)?;
                data = Some(l);
                out.write_all(format!("229 Entering Extended Passive Mode (|||{port}|)\r\n").as_bytes())?;
            }
            "RETR" | "STOR" => {
                let Some(l) = data.take() else {
                    out.write_all(b"425 Use EPSV first.\r\n")?;
                    continue;
                };
                let Some(path) = resolve(root, arg) else {
                    out.write_all(b"550 Bad path.\r\n")?;
                    continue;
                };
                let done = if verb.eq_ignore_ascii_case("RETR") {
                    retr(&l, &path, &mut out)
                } else {
                    stor(&l, &path, &mut out)
                };
                out.write_all(if done.is_ok() { b"226 Done.\r\n" } else { b"451 Failed.\r\n" })?;
            }
            _ => out.write_all(b"502 Not implemented.\r\n")?,
        }
    }
}

/// The virtual path `arg` under `root`; `None` if it climbs.
fn resolve(root: &Path, arg: &str) -> Option<PathBuf> {
    let rel = Path::new(arg.trim_start_matches('/'));
    rel.components().all(|c| matches!(c, Component::Normal(_))).then(|| root.join(rel))
}

fn bind_passive(range: (u16, u16), next: &mut u16) -> Result<(TcpListener, u16)> {
    let span = range.1 - range.0 + 1;
    for _ in 0..span {
        let port = *next;
        *next = if *next >= range.1 { range.0 } else { *next + 1 };
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return Ok((l, port));
        }
    }
    anyhow::bail!("no free passive port in {}-{}", range.0, range.1)
}

fn retr(l: &TcpListener, path: &Path, out: &mut TcpStream) -> Result<()> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    out.write_all(b"150 Opening data connection.\r\n")?;
    let (data, _) = l.accept()?;
    let mut left = len;
    while left > 0 {
        let n = rustix::fs::sendfile(&data, &file, None, left.min(1 << 30) as usize)?;
        if n == 0 {
            break;
        }
        left -= n as u64;
    }
    data.shutdown(Shutdown::Write)?;
    Ok(())
}

fn stor(l: &TcpListener, path: &Path, out: &mut TcpStream) -> Result<()> {
    let mut file = std::fs::File::create(path)?;
    out.write_all(b"150 Opening data connection.\r\n")?;
    let (mut data, _) = l.accept()?;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = data.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        file.write_all(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_under_the_root() {
        let root = Path::new("/srv");
        assert_eq!(resolve(root, "/small/f0001"), Some(PathBuf::from("/srv/small/f0001")));
        assert_eq!(resolve(root, "upload/x"), Some(PathBuf::from("/srv/upload/x")));
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/a/../../b"), None);
        assert_eq!(resolve(root, "/"), Some(PathBuf::from("/srv/")));
    }

    #[test]
    fn serves_a_file_and_stores_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"hello floor").unwrap();
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let root = dir.path().to_path_buf();
        let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::thread::spawn(move || serve(addr, root, (free, free)));
        let ctrl = (0..100)
            .find_map(|_| {
                TcpStream::connect(addr).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                })
            })
            .unwrap();
        let mut w = ctrl.try_clone().unwrap();
        let mut r = BufReader::new(ctrl);
        let mut line = String::new();
        let mut next = |r: &mut BufReader<TcpStream>| {
            line.clear();
            r.read_line(&mut line).unwrap();
            line.clone()
        };
        assert!(next(&mut r).starts_with("220"));
        w.write_all(b"EPSV\r\n").unwrap();
        let l = next(&mut r);
        assert!(l.starts_with("229"), "{l}");
        let port = ferry_proto::addr::parse_epsv_reply(&l).unwrap();
        let mut d = TcpStream::connect(("127.0.0.1", port)).unwrap();
        w.write_all(b"RETR /f\r\n").unwrap();
        assert!(next(&mut r).starts_with("150"));
        let mut got = Vec::new();
        d.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hello floor");
        assert!(next(&mut r).starts_with("226"));
        w.write_all(b"EPSV\r\n").unwrap();
        let port = ferry_proto::addr::parse_epsv_reply(&next(&mut r)).unwrap();
        let mut d = TcpStream::connect(("127.0.0.1", port)).unwrap();
        w.write_all(b"STOR /g\r\n").unwrap();
        assert!(next(&mut r).starts_with("150"));
        d.write_all(b"stored").unwrap();
        drop(d);
        assert!(next(&mut r).starts_with("226"));
        assert_eq!(std::fs::read(dir.path().join("g")).unwrap(), b"stored");
        w.write_all(b"RETR /../x\r\n").unwrap();
        assert!(next(&mut r).starts_with("425"));
        w.write_all(b"QUIT\r\n").unwrap();
        assert!(next(&mut r).starts_with("221"));
    }
}
