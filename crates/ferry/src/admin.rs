//! `ferry who` and `ferry kick`: the running server's sessions, through its admin unix socket
//! (`[admin] socket`, mode 0600: whoever may open it may ask; no token needed).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Which server: its socket, or the config file that names it.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The admin socket (`[admin] socket`).
    #[arg(long, conflicts_with = "config")]
    socket: Option<PathBuf>,
    /// The server's config file, whose `[admin] socket` is used.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `ferry who`.
#[derive(Debug, clap::Args)]
pub struct WhoArgs {
    #[command(flatten)]
    target: Target,
    /// Print the server's JSON as it is.
    #[arg(long)]
    json: bool,
}

/// `ferry kick`.
#[derive(Debug, clap::Args)]
pub struct KickArgs {
    /// The session id (first column of `ferry who`).
    id: u64,
    #[command(flatten)]
    target: Target,
}

impl Target {
    fn socket(&self) -> Result<PathBuf> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        let Some(file) = &self.config else {
            bail!("which server? pass --socket PATH, or --config FILE whose [admin] socket names it");
        };
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let config = ferry_server::Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        config.admin.socket.with_context(|| format!("{} has no [admin] socket", file.display()))
    }

    /// The sessions open now.
    fn sessions(&self) -> Result<Vec<ferry_server::admin::SessionView>> {
        let (status, body) = self.request("GET", "/api/v1/sessions")?;
        if status != 200 {
            bail!("the server answered {status}: {body}");
        }
        serde_json::from_str(&body).context("parsing the sessions")
    }

    /// One HTTP request over the socket: the status code and the body.
    fn request(&self, method: &str, path: &str) -> Result<(u16, String)> {
        let socket = self.socket()?;
        let mut stream = UnixStream::connect(&socket).with_context(|| {
            format!("connecting to {} (is the server running with [admin] socket?)", socket.display())
        })?;
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").context("a malformed answer from the server")?;
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).context("no status in the answer")?;
        Ok((status, body.to_owned()))
    }
}

/// `ferry top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    #[command(flatten)]
    target: Target,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Stop after this many refreshes (default: until interrupted).
    #[arg(long)]
    iterations: Option<u64>,
}

/// The sessions, refreshed like `top`: the busiest first, with totals.
pub fn top(args: TopArgs) -> Result<()> {
    let mut n = 0u64;
    loop {
        let mut sessions = args.target.sessions()?;
        sessions.sort_by_key(|s| std::cmp::Reverse(s.transfer.as_ref().map_or(0, |t| t.rate_bps)));
        let moving = sessions.iter().filter(|s| s.transfer.is_some()).count();
        let rate: u64 = sessions.iter().filter_map(|s| s.transfer.as_ref()).map(|t| t.rate_bps).sum();
        // Clear the screen and go home, as top does.
        print!("\x1b[2J\x1b[H");
        println!(
            "ferry top: {} sessions, {moving} transferring, {:.1} MiB/s   (every {} s; Ctrl-C quits)\n",
            sessions.len(),
            rate as f64 / 1_048_576.0,
            args.interval
        );
        print_sessions(&sessions);
        std::io::Write::flush(&mut std::io::stdout())?;
        n += 1;
        if args.iterations.is_some_and(|max| n >= max) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs_f64(args.interval.max(0.1)));
    }
}

/// Lists the sessions: one line each, or the JSON.
pub fn who(args: WhoArgs) -> Result<()> {
    if args.json {
        let (status, body) = args.target.request("GET", "/api/v1/sessions")?;
        if status != 200 {
            bail!("the server answered {status}: {body}");
        }
        println!("{body}");
        return Ok(());
    }
    print_sessions(&args.target.sessions()?);
    Ok(())
}

fn print_sessions(sessions: &[ferry_server::admin::SessionView]) {
    println!("{:>6}  {:<16} {:<40} {:>8}  {:<12} TRANSFER", "ID", "USER", "ADDRESS", "SECS", "STATE");
    for s in sessions {
        let transfer = s.transfer.as_ref().map_or_else(String::new, |t| {
            let of = t.size.map_or_else(String::new, |n| format!("/{n}"));
            format!("{} {} {}{of} bytes, {} B/s", t.verb, t.path, t.bytes, t.rate_bps)
        });
        println!(
            "{:>6}  {:<16} {:<40} {:>8.0}  {:<12} {transfer}",
            s.id,
            s.user.as_deref().unwrap_or("-"),
            s.address,
            s.secs,
            s.state
        );
    }
}

/// `ferry ban`.
#[derive(Debug, clap::Args)]
pub struct BanArgs {
    /// The address to ban.
    ip: std::net::IpAddr,
    /// For how long, seconds (default: the server's `[limits] ban_secs`, longer for a repeat
    /// offender).
    #[arg(long)]
    secs: Option<u64>,
    #[command(flatten)]
    target: Target,
}

/// `ferry unban` and `ferry bans`.
#[derive(Debug, clap::Args)]
pub struct UnbanArgs {
    /// The address.
    ip: std::net::IpAddr,
    #[command(flatten)]
    target: Target,
}

/// Bans an address: its connections get 421 before the greeting.
pub fn ban(args: BanArgs) -> Result<()> {
    let query = args.secs.map(|s| format!("?secs={s}")).unwrap_or_default();
    let (status, body) = args.target.request("POST", &format!("/api/v1/bans/{}{query}", args.ip))?;
    match status {
        200 => {
            let ban: ferry_server::bans::Ban = serde_json::from_str(&body).context("parsing the ban")?;
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            println!("{} banned for {} s (ban number {})", ban.ip, ban.until.saturating_sub(now), ban.count);
            Ok(())
        }
        409 => bail!("{} is in [bans] allow: it is never banned", args.ip),
        _ => bail!("the server answered {status}: {body}"),
    }
}

/// Lifts a ban.
pub fn unban(args: UnbanArgs) -> Result<()> {
    let (status, body) = args.target.request("DELETE", &format!("/api/v1/bans/{}", args.ip))?;
    match status {
        200 => {
            println!("{} unbanned", args.ip);
            Ok(())
        }
        404 => bail!("{} is not banned", args.ip),
        _ => bail!("the server answered {status}: {body}"),
    }
}

/// Asks the server to reread its configuration, users file and certificate (as SIGHUP does); says
/// what it did.
pub fn reload(target: Target) -> Result<()> {
    let (status, body) = target.request("POST", "/api/v1/reload")?;
    let report: ferry_server::ReloadReport = match status {
        200 | 422 => serde_json::from_str(&body).context("parsing the reload report")?,
        _ => bail!("the server answered {status}: {body}"),
    };
    if report.reloaded.is_empty() && report.failed.is_empty() {
        println!("nothing to reload (no users file, no TLS certificate)");
    }
    for r in &report.reloaded {
        println!("reloaded {r}");
    }
    if !report.restart_needed.is_empty() {
        println!("changed but applied only after a restart: {}", report.restart_needed.join(", "));
    }
    if !report.failed.is_empty() {
        bail!("{}", report.failed.join("; "));
    }
    Ok(())
}

/// Lists the bans in force.
pub fn bans(target: Target) -> Result<()> {
    let (status, body) = target.request("GET", "/api/v1/bans")?;
    if status != 200 {
        bail!("the server answered {status}: {body}");
    }
    let list: Vec<ferry_server::bans::Ban> = serde_json::from_str(&body).context("parsing the bans")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    println!("{:<40} {:>10} {:>6}", "ADDRESS", "SECS LEFT", "COUNT");
    for b in list {
        println!("{:<40} {:>10} {:>6}", b.ip.to_string(), b.until.saturating_sub(now), b.count);
    }
    Ok(())
}

/// Disconnects a session.
pub fn kick(args: KickArgs) -> Result<()> {
    let (status, body) = args.target.request("DELETE", &format!("/api/v1/sessions/{}", args.id))?;
    match status {
        200 => {
            println!("session {} disconnected", args.id);
            Ok(())
        }
        404 => bail!("no session {}", args.id),
        _ => bail!("the server answered {status}: {body}"),
    }
}
