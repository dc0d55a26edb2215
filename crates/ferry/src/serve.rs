//! `ferry serve`: configuration from file and flags, the default users file, signals.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_server::auth::users_file::UsersFile;
use ferry_server::auth::{Permissions, UserDb};
use ferry_server::config::{PortRange, StorageKind};
use ferry_server::proxy::IpNet;
use ferry_server::tls::TlsPolicy;
use ferry_server::{Config, Server};
use tokio_util::sync::CancellationToken;

/// The users file used when none is configured.
const DEFAULT_USERS_FILE: &str = "ferry-users.toml";

/// Flags of `ferry serve`. Each overrides the config file's value.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML; see ferry.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (repeatable). Default: 0.0.0.0:2121 and [::]:2121.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Directory to serve. Default: ./ftp-root (created if missing).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Add a user rooted at --root with all permissions (repeatable; for tests and quick starts).
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// Users file (TOML, argon2id hashes; manage with `ferry user`).
    #[arg(long = "users", value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// Allow read-only anonymous logins (USER anonymous or ftp, any password).
    #[arg(long)]
    anonymous: bool,
    /// Port range for passive data connections.
    #[arg(long, value_name = "LOW-HIGH")]
    passive_ports: Option<PortRange>,
    /// IPv4 address announced in PASV replies (behind NAT).
    #[arg(long, value_name = "IP")]
    passive_address: Option<Ipv4Addr>,
    /// Seconds without a command before a session is closed.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Seconds allowed from connecting to logging in.
    #[arg(long, value_name = "SECS")]
    login_timeout: Option<u64>,
    /// Seconds to wait for a data connection or for progress on it.
    #[arg(long, value_name = "SECS")]
    data_timeout: Option<u64>,
    /// Sessions at once, in all.
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// Sessions at once from one IP address, logged in or not (0: no limit, the default).
    #[arg(long, value_name = "N")]
    max_sessions_per_ip: Option<usize>,
    /// Connections from one IP address that have not logged in yet: START:RATE:FULL (from START
    /// on, refuse RATE% of new ones, rising to all at FULL) or N. Default 64:30:256.
    #[arg(long, value_name = "SPEC")]
    max_startups_per_ip: Option<ferry_server::config::MaxStartups>,
    /// Do not fsync uploads before answering 226 (faster, less durable).
    #[arg(long)]
    no_fsync: bool,
    /// TLS certificate chain (PEM) for FTPS.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for FTPS.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// TLS policy on the explicit listeners: off, optional (default with a certificate), required.
    #[arg(long, value_name = "POLICY")]
    tls_policy: Option<String>,
    /// Implicit-FTPS listen address (repeatable; conventionally port 990).
    #[arg(long = "implicit-tls-listen", value_name = "ADDR:PORT")]
    implicit_tls_listen: Vec<SocketAddr>,
    /// Load balancer address or CIDR range whose connections start with a PROXY v1/v2 header
    /// (repeatable; replaces proxy_protocol.trusted).
    #[arg(long = "proxy-trusted", value_name = "ADDR[/BITS]")]
    proxy_trusted: Vec<IpNet>,
}

fn build_config(args: &ServeArgs) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Config::from_toml(&text).with_context(|| format!("invalid configuration in {}", path.display()))?
        }
        None => Config::default(),
    };
    if !args.listen.is_empty() {
        config.listen = args.listen.clone();
    }
    if let Some(root) = &args.root {
        config.root = root.clone();
    }
    if let Some(f) = &args.users_file {
        config.users_file = Some(f.clone());
    }
    config.anonymous |= args.anonymous;
    if let Some(p) = args.passive_ports {
        config.passive.ports = Some(p);
    }
    if let Some(a) = args.passive_address {
        config.passive.address = Some(a.into());
    }
    let l = &mut config.limits;
    if let Some(v) = args.idle_timeout {
        l.idle_timeout_secs = v;
    }
    if let Some(v) = args.login_timeout {
        l.login_timeout_secs = v;
    }
    if let Some(v) = args.data_timeout {
        l.data_timeout_secs = v;
    }
    if let Some(v) = args.max_sessions {
        l.max_sessions = v;
    }
    if let Some(v) = args.max_sessions_per_ip {
        l.max_sessions_per_ip = v;
    }
    if let Some(v) = args.max_startups_per_ip {
        l.max_startups_per_ip = v;
    }
    if args.no_fsync {
        config.fsync = false;
    }
    if let Some(c) = &args.tls_cert {
        config.tls.cert = Some(c.clone());
    }
    if let Some(k) = &args.tls_key {
        config.tls.key = Some(k.clone());
    }
    if let Some(p) = &args.tls_policy {
        config.tls.policy = Some(match p.as_str() {
            "off" => TlsPolicy::Off,
            "optional" => TlsPolicy::Optional,
            "required" => TlsPolicy::Required,
            other => bail!("--tls-policy {other:?}: expected off, optional or required"),
        });
    }
    if !args.implicit_tls_listen.is_empty() {
        config.tls.implicit_listen = args.implicit_tls_listen.clone();
    }
    if !args.proxy_trusted.is_empty() {
        config.proxy_protocol.trusted = args.proxy_trusted.clone();
    }
    config.validate().context("invalid configuration")?;
    Ok(config)
}

/// What to tell the person who started the server about logging in.
enum LoginHint {
    Created { file: PathBuf, password: String },
    File(PathBuf),
    Flags,
}

fn build_users(args: &ServeArgs, config: &Config) -> Result<(UserDb, LoginHint)> {
    let mut db = UserDb::new();
    let root = &config.root;
    for spec in &args.users {
        let Some((name, pw)) = spec.split_once(':') else {
            bail!("--user {spec:?}: expected NAME:PASSWORD");
        };
        if name.is_empty() || pw.is_empty() {
            bail!("--user {spec:?}: name and password must not be empty");
        }
        db.add_password(name, pw, root.clone(), Permissions::all())?;
    }
    if config.anonymous {
        db.allow_anonymous(config.anonymous_root.clone().unwrap_or_else(|| root.clone()));
    }
    let hint = if let Some(file) = &config.users_file {
        load_users(file)?.add_to(&mut db, root);
        LoginHint::File(file.clone())
    } else if !args.users.is_empty() || config.anonymous {
        LoginHint::Flags
    } else {
        let file = PathBuf::from(DEFAULT_USERS_FILE);
        if file.exists() {
            load_users(&file)?.add_to(&mut db, root);
            LoginHint::File(file)
        } else {
            let password = random_password();
            let mut users = UsersFile::default();
            users.set_user("ferry", &password, None, None)?;
            users.save(&file)?;
            users.add_to(&mut db, root);
            LoginHint::Created { file, password }
        }
    };
    Ok((db, hint))
}

/// Reads a users file; a missing one is an error that says how to create it.
fn load_users(file: &Path) -> Result<UsersFile> {
    if !file.exists() {
        bail!(
            "users file {} does not exist: create it with `ferry user add NAME --users {}`",
            file.display(),
            file.display()
        );
    }
    Ok(UsersFile::load(file)?)
}

/// The root directory to serve, checked: the default `./ftp-root` is created on first start; a
/// root that was asked for must exist and be a directory (a typo must not serve an empty tree).
fn check_root(config: &Config) -> Result<()> {
    let root = &config.root;
    if *root == Config::default().root {
        return std::fs::create_dir_all(root)
            .with_context(|| format!("creating the root directory {}", root.display()));
    }
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("root {} is not a directory: pass --root DIR with an existing directory", root.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "root {} does not exist: create it (mkdir -p) or pass --root with an existing directory",
                root.display()
            )
        }
        Err(e) => bail!("root {}: {e}", root.display()),
    }
}

/// Removes, in the background, the named temporaries of uploads that a crash interrupted, beneath
/// the server's root and every account's (uploads where the filesystem has O_TMPFILE leave none).
fn sweep_temporaries(config: &Config, db: &UserDb) {
    let mut roots = db.roots();
    roots.push(config.root.clone());
    roots.sort();
    roots.dedup();
    std::thread::spawn(move || {
        let removed: usize = roots
            .iter()
            .map(|r| ferry_server::storage::local::sweep_stale(r, std::time::Duration::from_secs(120)))
            .sum();
        if removed > 0 {
            tracing::info!(removed, "removed temporary files that interrupted uploads left");
        }
    });
}

/// Raises the soft open-files limit to the hard one: every session and transfer is a descriptor.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let raised = rustix::process::Rlimit { current: lim.maximum, maximum: lim.maximum };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
        }
    }
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..16).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    raise_fd_limit();
    let config = build_config(&args)?;
    let serving = match config.storage.kind {
        StorageKind::Local => {
            check_root(&config)?;
            config.root.display().to_string()
        }
        StorageKind::S3 => ferry_server::storage::s3::S3Storage::describe(&config.storage),
    };
    let (db, hint) = build_users(&args, &config)?;
    if config.storage.kind == StorageKind::Local {
        sweep_temporaries(&config, &db);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let server = Server::bind(config, Arc::new(db)).await?;
        // Handlers first: a signal sent as soon as the address is printed must stop cleanly.
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate())?;
        let int = signal(SignalKind::interrupt())?;
        let hup = signal(SignalKind::hangup())?;
        let stop = CancellationToken::new();
        tokio::spawn(wait_for_signal(stop.clone(), term, int));
        tokio::spawn(reload_on_sighup(server.handle(), hup));
        let addrs = server.local_addrs();
        print_banner(&addrs, &server.implicit_tls_addrs(), &serving, &hint)?;
        server.run(stop).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn print_banner(addrs: &[SocketAddr], implicit: &[SocketAddr], serving: &str, hint: &LoginHint) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for a in addrs {
        writeln!(out, "listening on {a}")?;
    }
    for a in implicit {
        writeln!(out, "listening (implicit FTPS) on {a}")?;
    }
    writeln!(out, "serving {serving}")?;
    let port = addrs.first().map(|a| a.port()).unwrap_or(2121);
    match hint {
        LoginHint::Created { file, password } => {
            writeln!(out, "created {} with user 'ferry' and password '{password}' (shown once; change it with `ferry user passwd ferry --users {}`)", file.display(), file.display())?;
            writeln!(out, "try: curl ftp://ferry:{password}@127.0.0.1:{port}/")?;
        }
        LoginHint::File(file) => writeln!(out, "users from {} (manage with `ferry user --help`)", file.display())?,
        LoginHint::Flags => writeln!(out, "users from --user/--anonymous")?,
    }
    out.flush()?;
    Ok(())
}

async fn reload_on_sighup(handle: ferry_server::ServerHandle, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        match handle.reload_tls() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the old certificate"),
        }
    }
}

async fn wait_for_signal(
    stop: CancellationToken,
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    stop.cancel();
}
