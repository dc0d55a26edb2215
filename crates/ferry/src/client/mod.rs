//! The `ferry` client commands: ls, get, put, mirror, rm, mkdir, rmdir, mv, cat, stat, copy, shell.

mod copy;
mod files;
mod mirror;
mod shell;
mod verify;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use ferry_client::tls::TlsMode;
use ferry_client::trace::{Trace, TraceFormat};
use ferry_client::{Client, ConnectOptions, DataMode, FtpUrl};
use indicatif::{ProgressBar, ProgressStyle};
use verify::Verify;

/// The help heading of the client options. They may come before or after a client subcommand
/// (`main` adds them to each client subcommand; [`Common::merged`] joins the two).
const CLIENT_OPTIONS: &str = "Client options";

/// Options shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Active mode: the server connects back (EPRT, then PORT).
    #[arg(long, help_heading = CLIENT_OPTIONS)]
    pub active: bool,
    /// TYPE A: ASCII transfers with line-ending conversion.
    #[arg(long, help_heading = CLIENT_OPTIONS)]
    pub ascii: bool,
    /// Print nothing but errors.
    #[arg(long, short, help_heading = CLIENT_OPTIONS)]
    pub quiet: bool,
    /// Trace both connections on stderr: `--trace` (a ladder) or `--trace=json` (JSON lines).
    #[arg(long, help_heading = CLIENT_OPTIONS, num_args = 0..=1, require_equals = true, default_missing_value = "text", value_name = "FORMAT")]
    pub trace: Option<String>,
    /// Also draw the session as one self-contained HTML page (an SVG ladder) into FILE, written
    /// when the command ends (whether it succeeded or not).
    #[arg(long, help_heading = CLIENT_OPTIONS, value_name = "FILE")]
    pub trace_html: Option<std::path::PathBuf>,
    /// Seconds to wait for the server before giving up.
    #[arg(long, help_heading = CLIENT_OPTIONS, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Explicit FTPS: AUTH TLS, then protected data connections; fail if the server refuses.
    /// (`ftps://` URLs use implicit FTPS.)
    #[arg(long, help_heading = CLIENT_OPTIONS)]
    pub tls: bool,
    /// Trust this CA certificate (PEM) besides the system roots.
    #[arg(long, help_heading = CLIENT_OPTIONS, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// Do not verify the server's certificate (dangerous: anyone in the middle can read everything).
    #[arg(long, help_heading = CLIENT_OPTIONS)]
    pub insecure: bool,
    /// Use PASV/PORT only, never EPSV/EPRT (like curl's --disable-epsv --disable-eprt).
    #[arg(long, help_heading = CLIENT_OPTIONS)]
    pub disable_epsv: bool,
    /// Connect to this address instead of the URL host's; the URL's host name is still the one
    /// sent in HOST (virtual hosts, RFC 7151) and checked against the TLS certificate (like
    /// curl's --connect-to).
    #[arg(long, help_heading = CLIENT_OPTIONS, value_name = "ADDR")]
    pub connect_to: Option<std::net::IpAddr>,
}

impl Common {
    /// The options given before the subcommand (`before`) joined with those given after it (in
    /// `after`, the subcommand's matches): a flag set on either side is set; a value given after
    /// the subcommand wins.
    pub fn merged(before: Self, after: Option<&clap::ArgMatches>) -> Result<Self> {
        use clap::FromArgMatches as _;
        let Some(m) = after else { return Ok(before) };
        let a = Self::from_arg_matches(m)?;
        let given = |id: &str| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        Ok(Self {
            active: before.active || a.active,
            ascii: before.ascii || a.ascii,
            quiet: before.quiet || a.quiet,
            trace: if given("trace") { a.trace } else { before.trace },
            trace_html: a.trace_html.or(before.trace_html),
            timeout: if given("timeout") { a.timeout } else { before.timeout },
            tls: before.tls || a.tls,
            cacert: a.cacert.or(before.cacert),
            insecure: before.insecure || a.insecure,
            disable_epsv: before.disable_epsv || a.disable_epsv,
            connect_to: a.connect_to.or(before.connect_to),
        })
    }
}

/// Client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    /// List a remote directory.
    Ls {
        /// ftp://[user[:password]@]host[:port]/path
        url: String,
        /// Long format: type, size, modification time, name.
        #[arg(long, short)]
        long: bool,
        /// JSON output.
        #[arg(long, conflicts_with = "long")]
        json: bool,
    },
    /// Download a file.
    Get {
        /// The remote file.
        url: String,
        /// Local file or directory (default: the remote name in the current directory).
        dest: Option<String>,
        /// Resume a partial download (REST), then check the final size.
        #[arg(long, short = 'c')]
        r#continue: bool,
        /// Download over N connections at once (REST ranges), like lftp's pget.
        #[arg(long, default_value_t = 1)]
        segments: u32,
        /// Then compare the server's digest (HASH, else XSHA256/XMD5) with the one computed here.
        #[arg(long)]
        verify: bool,
    },
    /// Upload files (the last argument is the remote file or directory URL).
    Put {
        /// Local files, then the URL.
        #[arg(required = true, num_args = 2..)]
        args: Vec<String>,
        /// Resume a partial upload (REST+STOR, or APPE), then check the final size.
        #[arg(long, short = 'c')]
        r#continue: bool,
        /// Upload over N connections at once (Ferry's SITE SEGMENT; one stream elsewhere).
        #[arg(long, default_value_t = 1)]
        segments: u32,
        /// Then compare the server's digest (HASH, else XSHA256/XMD5) with the one computed here.
        #[arg(long)]
        verify: bool,
    },
    /// Mirror a remote tree into a local directory (or, with --reverse, a local tree to a URL).
    Mirror {
        /// URL then DIR (or DIR then URL with --reverse).
        #[arg(num_args = 2)]
        args: Vec<String>,
        /// Upload DIR to URL.
        #[arg(long)]
        reverse: bool,
        /// Connections at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Delete files on the target that the source does not have.
        #[arg(long)]
        delete: bool,
        /// Show what would be done, do nothing.
        #[arg(long)]
        dry_run: bool,
        /// Check each file transferred against the server's digest (like get --verify).
        #[arg(long)]
        verify: bool,
        /// Compare files by digest (HASH) instead of size and time, where the server offers HASH.
        #[arg(long)]
        checksum: bool,
    },
    /// Delete remote files.
    Rm {
        /// Remote files.
        #[arg(required = true)]
        urls: Vec<String>,
    },
    /// Create remote directories.
    Mkdir {
        /// Remote directories.
        #[arg(required = true)]
        urls: Vec<String>,
    },
    /// Remove empty remote directories.
    Rmdir {
        /// Remote directories.
        #[arg(required = true)]
        urls: Vec<String>,
    },
    /// Rename a remote file: `ferry mv ftp://host/a /b` (the new name is a path on the same server).
    Mv {
        /// The remote file.
        url: String,
        /// Its new path (or URL on the same server).
        to: String,
    },
    /// Write a remote file to standard output.
    Cat {
        /// The remote file.
        url: String,
    },
    /// Show a remote file's facts (MLST, or SIZE and MDTM).
    Stat {
        /// The remote path.
        url: String,
    },
    /// Copy between servers: server-to-server (FXP) when both allow it, else through this client.
    Copy {
        /// Source URL.
        from: String,
        /// Destination URL.
        to: String,
        /// Then compare the two servers' digests of the file (HASH, else XSHA256/XMD5).
        #[arg(long)]
        verify: bool,
    },
    /// An interactive session (ls, cd, lcd, get, put, mget, mput, pwd, bye, help).
    Shell {
        /// The server (and starting directory).
        url: String,
    },
}

/// Everything a command needs to open connections.
#[derive(Clone)]
pub struct Ctx {
    pub common: Common,
    pub trace: Option<Arc<Trace>>,
    /// One TLS configuration for every connection of this command, so that data connections (and
    /// parallel connections) can resume sessions.
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl Ctx {
    fn new(common: Common) -> Result<Self> {
        let out: Option<(TraceFormat, Box<dyn std::io::Write + Send>)> = match common.trace.as_deref() {
            None => None,
            Some("text") => Some((TraceFormat::Text, Box::new(std::io::stderr()))),
            Some("json") => Some((TraceFormat::Json, Box::new(std::io::stderr()))),
            Some(other) => return Err(Usage(format!("--trace={other}: expected text or json")).into()),
        };
        let record = common.trace_html.is_some();
        let trace = (out.is_some() || record).then(|| Arc::new(Trace::with_outputs(out, record)));
        let tls_config = Some(ferry_client::tls::client_config(common.cacert.as_deref(), common.insecure)?);
        Ok(Self { common, trace, tls_config })
    }

    /// The same context, its trace lines marked as `party`'s (`A`, `B`: the servers of a copy).
    pub fn party(&self, party: &str) -> Self {
        Self { trace: self.trace.as_ref().map(|t| t.for_party(party)), ..self.clone() }
    }

    /// Writes `--trace-html FILE`, if asked for.
    fn write_trace_html(&self, title: &str) -> Result<()> {
        let (Some(path), Some(trace)) = (&self.common.trace_html, &self.trace) else { return Ok(()) };
        let page = ferry_client::trace_html::render(&trace.events(), title);
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Whether to draw progress bars.
    pub fn progress_enabled(&self) -> bool {
        !self.common.quiet && self.trace.is_none() && std::io::stderr().is_terminal()
    }

    /// Opens a logged-in connection for a URL: credentials from the URL, then ~/.netrc, then a
    /// prompt (when a user but no password is known and stdin is a terminal), else anonymous.
    pub async fn connect(&self, url: &FtpUrl) -> Result<Client> {
        let (user, password) = credentials(url)?;
        let opts = ConnectOptions {
            host: url.host.clone(),
            port: url.port,
            user,
            password,
            mode: if self.common.active { DataMode::Active } else { DataMode::Passive },
            timeout: Duration::from_secs(self.common.timeout),
            trace: self.trace.clone(),
            tls: if url.implicit_tls {
                TlsMode::Implicit
            } else if self.common.tls {
                TlsMode::Explicit
            } else {
                TlsMode::Off
            },
            tls_config: self.tls_config.clone(),
            disable_extended: self.common.disable_epsv,
            connect_to: self.common.connect_to,
        };
        let mut c = Client::connect(&opts).await?;
        if self.common.ascii {
            c.set_ascii(true).await?;
        }
        Ok(c)
    }

    /// A byte progress bar (hidden unless stderr is a terminal).
    pub fn bar(&self, len: Option<u64>, name: &str) -> ProgressBar {
        if !self.progress_enabled() {
            return ProgressBar::hidden();
        }
        let bar = match len {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        };
        let style = ProgressStyle::with_template(
            "{msg:30!} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(name.to_string());
        bar
    }

    /// Prints a line unless --quiet.
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.common.quiet {
            eprintln!("{}", text.as_ref());
        }
    }
}

fn credentials(url: &FtpUrl) -> Result<(String, String)> {
    if let (Some(u), Some(p)) = (&url.user, &url.password) {
        return Ok((u.clone(), p.clone()));
    }
    if let Some(c) = ferry_client::netrc::lookup(&url.host) {
        if url.user.as_ref().is_none_or(|u| *u == c.login) {
            if let Some(p) = c.password {
                return Ok((c.login, p));
            }
        }
    }
    match &url.user {
        None => Ok(("anonymous".into(), "ferry@".into())),
        Some(u) if u == "anonymous" || u == "ftp" => Ok((u.clone(), "ferry@".into())),
        Some(u) => {
            if !std::io::stdin().is_terminal() {
                bail!("no password for {u}@{}: put it in the URL or ~/.netrc", url.host);
            }
            let p = rpassword::prompt_password(format!("Password for {u}@{}: ", url.host))?;
            Ok((u.clone(), p))
        }
    }
}

/// A command line that cannot work: exit 2, like clap's own usage errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The exit code for an error (the table in README.md): a [`Usage`] error is 2, a
/// [`ferry_client::ClientError`] has its own, anything else is 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Usage>().is_some() {
        return 2;
    }
    e.downcast_ref::<ferry_client::ClientError>().map_or(1, ferry_client::ClientError::exit_code)
}

/// Parses a URL argument (a malformed one is a usage error).
pub fn url(s: &str) -> Result<FtpUrl> {
    FtpUrl::parse(s).map_err(|e| Usage(e.to_string()).into())
}

/// Runs a client command.
pub fn run(cmd: ClientCmd, common: Common) -> Result<()> {
    let ctx = Ctx::new(common)?;
    let title = std::env::args().skip(1).map(|a| redact_url(&a)).collect::<Vec<_>>().join(" ");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = match cmd {
        ClientCmd::Shell { url: u } => url(&u).and_then(|u| shell::run(&ctx, &runtime, &u)),
        other => runtime.block_on(dispatch(&ctx, other)),
    };
    // A failed session's picture is the most useful one: written either way.
    let written = ctx.write_trace_html(&format!("ferry {title}"));
    result.and(written)
}

/// `ferry trace-view FILE`: the page for a `--trace=json` trace, on stdout.
pub fn trace_view(file: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("event").is_some() && v.get("t").is_some())
        .collect();
    if events.is_empty() {
        bail!("{}: no trace events in it (write one with --trace=json 2> FILE)", file.display());
    }
    print!("{}", ferry_client::trace_html::render(&events, &format!("ferry trace-view {}", file.display())));
    Ok(())
}

/// An argument with a URL's password masked, for the page's title.
fn redact_url(arg: &str) -> String {
    match FtpUrl::parse(arg) {
        Ok(u) if u.password.is_some() => {
            let (scheme, rest) = arg.split_once("://").unwrap_or(("ftp", arg));
            let at = rest.rfind('@').unwrap_or(0);
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:****{}", &rest[at..])
        }
        _ => arg.to_string(),
    }
}

async fn dispatch(ctx: &Ctx, cmd: ClientCmd) -> Result<()> {
    match cmd {
        ClientCmd::Ls { url: u, long, json } => files::ls(ctx, &url(&u)?, long, json).await,
        ClientCmd::Get { url: u, dest, r#continue, segments, verify } => {
            let how = files::How { resume: r#continue, segments, verify: Verify::from_flag(verify, ctx)? };
            files::get(ctx, &url(&u)?, dest.as_deref(), how).await
        }
        ClientCmd::Put { mut args, r#continue, segments, verify } => {
            let target = url(&args.pop().unwrap_or_default())?;
            let how = files::How { resume: r#continue, segments, verify: Verify::from_flag(verify, ctx)? };
            files::put(ctx, &args, &target, how).await
        }
        ClientCmd::Mirror { args, reverse, parallel, delete, dry_run, verify, checksum } => {
            let compare = if checksum { mirror::Compare::Digest } else { mirror::Compare::SizeAndTime };
            let verify = Verify::from_flag(verify, ctx)?;
            let opts = mirror::Options { parallel: parallel.max(1), delete, dry_run, verify, compare };
            if reverse {
                mirror::upload(ctx, std::path::Path::new(&args[0]), &url(&args[1])?, opts).await
            } else {
                mirror::download(ctx, &url(&args[0])?, std::path::Path::new(&args[1]), opts).await
            }
        }
        ClientCmd::Rm { urls } => files::simple(ctx, &urls, files::Simple::Rm).await,
        ClientCmd::Mkdir { urls } => files::simple(ctx, &urls, files::Simple::Mkdir).await,
        ClientCmd::Rmdir { urls } => files::simple(ctx, &urls, files::Simple::Rmdir).await,
        ClientCmd::Mv { url: u, to } => files::mv(ctx, &url(&u)?, &to).await,
        ClientCmd::Cat { url: u } => files::cat(ctx, &url(&u)?).await,
        ClientCmd::Stat { url: u } => files::stat(ctx, &url(&u)?).await,
        ClientCmd::Copy { from, to, verify } => {
            copy::run(ctx, &url(&from)?, &url(&to)?, Verify::from_flag(verify, ctx)?).await
        }
        ClientCmd::Shell { .. } => unreachable!("handled in run"),
    }
}
