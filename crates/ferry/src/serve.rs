//! `ferry serve`: configuration from file and flags, the default users file, signals.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_server::auth::model::AccountsKind;
use ferry_server::auth::postgres::PgAccounts;
use ferry_server::auth::users_file::UsersFile;
use ferry_server::auth::{Permissions, Swappable, UserDb};
use ferry_server::config::{PortRange, StorageKind};
use ferry_server::events::{LogFile, LogFormat};
use ferry_server::proxy::IpNet;
use ferry_server::tls::TlsPolicy;
use ferry_server::{Config, Server};
use tokio_util::sync::CancellationToken;

/// The users file used when none is configured.
pub(crate) const DEFAULT_USERS_FILE: &str = "ferry-users.toml";

/// Flags of `ferry serve`. Each overrides the config file's value.
#[derive(Debug, Clone, Args)]
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
    /// Started as root: switch to this user after binding the ports (process.run_as).
    #[arg(long, value_name = "USER")]
    run_as: Option<String>,
    /// Do not confine the server with Landlock and seccomp (process.sandbox = false).
    #[arg(long)]
    no_sandbox: bool,
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
    if let Some(user) = &args.run_as {
        config.process.run_as = Some(user.clone());
    }
    if args.no_sandbox {
        config.process.sandbox = false;
    }
    config.validate().context("invalid configuration")?;
    Ok(config)
}

/// What to tell the person who started the server about logging in.
enum LoginHint {
    Created {
        file: PathBuf,
        password: String,
    },
    File(PathBuf),
    Flags,
    /// An accounts store (PostgreSQL, LDAP, HTTP): what it is.
    Store(String),
}

impl LoginHint {
    /// The users file, when there is one.
    fn file(&self) -> Option<&PathBuf> {
        match self {
            LoginHint::Created { file, .. } | LoginHint::File(file) => Some(file),
            LoginHint::Flags | LoginHint::Store(_) => None,
        }
    }
}

/// The users of `--user` and `--anonymous`: what the users file's users are added to.
fn base_users(args: &ServeArgs, config: &Config) -> Result<UserDb> {
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
    Ok(db)
}

/// The users of `--user` and `--anonymous`, and those of the users file on top: returns both
/// (the first is what a reload of the file starts from).
fn build_users(args: &ServeArgs, config: &Config) -> Result<(UserDb, UserDb, LoginHint)> {
    let mut db = base_users(args, config)?;
    let root = &config.root;
    let base = db.clone();
    let hint = if config.accounts.kind != AccountsKind::File {
        LoginHint::Store(store_name(config))
    } else if let Some(file) = &config.users_file {
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
    Ok((db, base, hint))
}

/// What the accounts store is, for the start-up message (no password).
fn store_name(config: &Config) -> String {
    let url = config.accounts.url.as_deref().unwrap_or_default();
    let shown = match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => url.to_string(),
    };
    format!("{:?} accounts at {shown}", config.accounts.kind).to_lowercase()
}

/// The accounts store of `[accounts]` (none for the users file), and the cluster state it
/// shares (PostgreSQL).
pub(crate) struct Store {
    pub auth: Arc<dyn ferry_server::auth::Authenticator>,
    pub cluster: Option<Arc<dyn ferry_server::limits::Cluster>>,
    pub postgres: Option<PgAccounts>,
}

/// Opens the accounts store of `config` (connections are made at first use).
pub(crate) fn open_store(config: &Config) -> Result<Option<Store>> {
    let base = config.root.clone();
    let a = &config.accounts;
    Ok(Some(match a.kind {
        AccountsKind::File => return Ok(None),
        AccountsKind::Postgres => {
            let pg = PgAccounts::new(a, base).map_err(anyhow::Error::msg)?;
            Store { auth: Arc::new(pg.clone()), cluster: Some(Arc::new(pg.clone())), postgres: Some(pg) }
        }
        AccountsKind::Ldap => Store {
            auth: Arc::new(ferry_server::auth::ldap::LdapAccounts::new(a, base).map_err(anyhow::Error::msg)?),
            cluster: None,
            postgres: None,
        },
        AccountsKind::Http => Store {
            auth: Arc::new(ferry_server::auth::http::HttpAccounts::new(a, base).map_err(anyhow::Error::msg)?),
            cluster: None,
            postgres: None,
        },
    }))
}

/// The users of a running server: `--user`/`--anonymous` and the users file on top. The file is
/// reread when it changes (checked every second) and on SIGHUP; the new set replaces the old one at
/// once, or, when the file is invalid, the old one stays and the error is logged.
struct UsersReload {
    live: Arc<Swappable>,
    /// The accounts store the command line's users are layered on, when there is one.
    store: Option<Arc<dyn ferry_server::auth::Authenticator>>,
    /// `--user` and `--anonymous`, which the file's users are added to (rebuilt by a reload of
    /// the configuration, which may turn anonymous logins on or off).
    base: std::sync::Mutex<UserDb>,
    file: Option<PathBuf>,
    root: PathBuf,
}

impl UsersReload {
    /// Reads the users file on top of `base`, without using the result yet.
    fn read(&self, base: &UserDb) -> Result<UserDb> {
        let mut db = base.clone();
        if let Some(file) = &self.file {
            load_users(file)?.add_to(&mut db, &self.root);
        }
        db.forget_verified();
        Ok(db)
    }

    /// New logins see `db` from now on; `base` is what later changes of the file start from.
    fn install(&self, base: UserDb, db: UserDb) -> usize {
        *self.base.lock().unwrap_or_else(|p| p.into_inner()) = base;
        let n = db.len();
        self.live.replace(layered(db, self.store.clone()));
        n
    }

    /// Rereads the file (it changed); the number of accounts now.
    fn reload(&self) -> Result<usize> {
        let base = self.base.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let db = self.read(&base)?;
        Ok(self.install(base, db))
    }

    /// What identifies a version of the file: modification time, length, inode.
    fn stamp(&self) -> Option<(std::time::SystemTime, u64, u64)> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(self.file.as_ref()?).ok()?;
        Some((m.modified().ok()?, m.len(), m.ino()))
    }

    /// Reloads whenever the file changes (`ferry user add` and friends, an editor, a deployment).
    async fn watch(self: Arc<Self>) {
        let Some(file) = self.file.clone() else { return };
        let mut seen = self.stamp();
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let now = self.stamp();
            if now == seen {
                continue;
            }
            // Once per version of the file: a half-written file is tried again when its writer
            // finishes (which changes the stamp), a wrong one is logged once.
            seen = now;
            match self.reload() {
                Ok(n) => tracing::info!(file = %file.display(), accounts = n, "users file changed: reloaded"),
                Err(e) => {
                    tracing::error!(file = %file.display(), "users file changed but not reloaded (keeping the old users): {e:#}")
                }
            }
        }
    }
}

/// The command line's users, in front of the store when there is one.
fn layered(
    db: UserDb,
    store: Option<Arc<dyn ferry_server::auth::Authenticator>>,
) -> Arc<dyn ferry_server::auth::Authenticator> {
    match store {
        Some(store) => Arc::new(ferry_server::auth::Layered { local: db, store }),
        None => Arc::new(db),
    }
}

/// A `[[host]]` with its users, and the roots they use (for the sandbox).
struct HostUsers {
    config: ferry_server::hosts::HostConfig,
    users: UserDb,
    roots: Vec<PathBuf>,
}

impl HostUsers {
    fn host(self) -> ferry_server::hosts::VirtualHost {
        ferry_server::hosts::VirtualHost { config: self.config, auth: Arc::new(self.users) }
    }
}

/// The users of each `[[host]]`: its own users file, or the server's (`default_file`); those
/// without a root of their own, and `--user`/`--anonymous`, rooted at the host's root.
fn build_hosts(args: &ServeArgs, config: &Config, default_file: Option<&PathBuf>) -> Result<Vec<HostUsers>> {
    let mut out = Vec::new();
    for host in &config.hosts {
        match std::fs::metadata(&host.root) {
            Ok(m) if m.is_dir() => {}
            _ => bail!("host {}: root {} is not an existing directory", host.name, host.root.display()),
        }
        let rooted = Config { root: host.root.clone(), anonymous_root: None, ..config.clone() };
        let mut users = base_users(args, &rooted)?;
        if let Some(file) = host.users.as_ref().or(default_file) {
            load_users(file).with_context(|| format!("host {}", host.name))?.add_to(&mut users, &host.root);
        }
        let roots = users.roots();
        out.push(HostUsers { config: host.clone(), users, roots });
    }
    Ok(out)
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
/// every root (uploads where the filesystem has O_TMPFILE leave none).
fn sweep_temporaries(roots: &[PathBuf]) {
    let mut roots = roots.to_vec();
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
///
/// The order matters: read every file and bind every port (as root, for port 21), give up root
/// (`run_as`), confine the process (Landlock, seccomp) while it has one thread, and only then start
/// the runtime's threads, which inherit the confinement.
pub fn run(args: ServeArgs) -> Result<()> {
    let config = build_config(&args)?;
    let main_log = config.log.file.as_deref().map(LogFile::open).transpose()?.map(Arc::new);
    init_logging(config.log.format, main_log.clone());
    if rustix::process::geteuid().is_root() && config.process.run_as.is_none() {
        tracing::warn!(
            "running as root: set run_as = \"ferry\" in [process] (or --run-as ferry) to switch to an \
             unprivileged user after binding the ports, or run as that user with CAP_NET_BIND_SERVICE \
             (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE)"
        );
    }
    raise_fd_limit();
    if config.process.hash_threads > 0 {
        ferry_server::auth::set_hash_threads(config.process.hash_threads);
    }
    let serving = match config.storage.kind {
        StorageKind::Local => {
            check_root(&config)?;
            config.root.display().to_string()
        }
        StorageKind::S3 => ferry_server::storage::s3::S3Storage::describe(&config.storage),
    };
    let (db, base, hint) = build_users(&args, &config)?;
    let store = open_store(&config)?;
    let postgres = store.as_ref().and_then(|s| s.postgres.clone());
    let mut roots = db.roots();
    roots.push(config.root.clone());
    let hosts = build_hosts(&args, &config, hint.file())?;
    for h in &hosts {
        roots.push(h.config.root.clone());
        roots.extend(h.roots.iter().cloned());
    }
    let users = Arc::new(Swappable::new(layered(db, store.as_ref().map(|s| s.auth.clone()))));
    let reload = Arc::new(UsersReload {
        live: users.clone(),
        store: store.as_ref().map(|s| s.auth.clone()),
        base: std::sync::Mutex::new(base),
        file: hint.file().cloned(),
        root: config.root.clone(),
    });
    for dir in config.hooks.iter().filter_map(|h| h.quarantine.as_ref()) {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the quarantine directory {}", dir.display()))?;
    }
    let host_files = hosts.iter().filter_map(|h| h.config.users.clone());
    let reread: Vec<PathBuf> = args.config.iter().chain(hint.file()).cloned().chain(host_files).collect();
    let hosts: Vec<ferry_server::hosts::VirtualHost> = hosts.into_iter().map(|h| h.host()).collect();
    let plan = ferry_server::sandbox::Plan::new(&config, &roots, &reread);
    let (process, local) = (config.process.clone(), config.storage.kind == StorageKind::Local);
    let hook_commands = config.hooks.iter().any(|h| h.command.is_some());
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let bound = Server::prepare_with(config, users, inherited_listeners()?)?.with_hosts(hosts);
    let bound = match store.and_then(|s| s.cluster) {
        Some(cluster) => bound.with_cluster(cluster),
        None => bound,
    };
    if let Some(user) = &process.run_as {
        ferry_server::sandbox::drop_privileges(user)?;
        tracing::info!(user, "switched to user");
    }
    // The hook runner: a process of its own, started before the sandbox (which refuses exec).
    let bound = match start_hook_runner(hook_commands)? {
        Some(runner) => bound.with_hook_runner(runner),
        None => bound,
    };
    // systemd's notification socket, connected before the sandbox closes the filesystem.
    let notify = Arc::new(Notify::connect());
    if process.sandbox {
        let report = ferry_server::sandbox::confine(&plan)
            .context("confining the server (--no-sandbox turns the sandbox off)")?;
        match report.landlock {
            ferry_server::sandbox::Enforced::Not => tracing::warn!("sandbox: {report}"),
            _ => tracing::info!("sandbox: {report}"),
        }
    } else {
        tracing::warn!("sandbox off (--no-sandbox): the server is not confined");
    }
    // jemalloc's purging thread, started now so that it is confined like every other thread.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(error = %e, "no jemalloc background thread");
    }
    if local {
        sweep_temporaries(&roots);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        // Blocking-pool threads (file I/O, fsync, argon2) that a burst started end a second after
        // it, and their stacks and allocator caches with them (docs/reliability.md).
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if let Some(pg) = postgres {
            pg.check_schema().await.map_err(anyhow::Error::msg)?;
        }
        let server = bound.start().await?;
        // Handlers first: a signal sent as soon as the address is printed must stop cleanly.
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate())?;
        let int = signal(SignalKind::interrupt())?;
        let hup = signal(SignalKind::hangup())?;
        let usr1 = signal(SignalKind::user_defined1())?;
        let stop = CancellationToken::new();
        tokio::spawn(wait_for_signal(stop.clone(), term, int, notify.clone()));
        let reloader =
            Arc::new(Reload { handle: server.handle(), args, users: reload.clone(), notify: notify.clone() });
        let api = reloader.clone();
        server.handle().set_reloader(Box::new(move || api.run("reload request")));
        tokio::spawn(reload_on_sighup(hup, reloader));
        tokio::spawn(reopen_on_sigusr1(server.handle(), main_log, usr1));
        tokio::spawn(reload.watch());
        let addrs = server.local_addrs();
        print_banner(&addrs, &server.implicit_tls_addrs(), server.admin_addr(), &serving, &hint)?;
        notify.send("READY=1");
        server.run(stop).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn print_banner(
    addrs: &[SocketAddr],
    implicit: &[SocketAddr],
    admin: Option<SocketAddr>,
    serving: &str,
    hint: &LoginHint,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if let Some(a) = admin {
        writeln!(out, "admin listening on {a}")?;
    }
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
        LoginHint::Store(store) => writeln!(out, "users from {store} (manage with `ferry user --config FILE`)")?,
    }
    out.flush()?;
    Ok(())
}

/// SIGHUP: rereads the configuration file, the users file and the TLS certificate and key, and
/// swaps them all at once, or none when any is wrong; the log line says what was reloaded.
async fn reload_on_sighup(mut hup: tokio::signal::unix::Signal, reload: Arc<Reload>) {
    while hup.recv().await.is_some() {
        reload.run("SIGHUP");
    }
}

/// What SIGHUP and `POST /api/v1/reload` (`ferry reload`) reread: the configuration file (with the
/// command line's flags on top, as at start), the users file and the TLS certificate and key.
/// Everything is read and checked first; then all of it is swapped, or, when anything is wrong,
/// nothing (each failure says why).
struct Reload {
    handle: ferry_server::ServerHandle,
    args: ServeArgs,
    users: Arc<UsersReload>,
    notify: Arc<Notify>,
}

impl Reload {
    /// Reloads; what was reloaded, what failed (each with why), what needs a restart.
    fn run(&self, by: &str) -> ferry_server::ReloadReport {
        self.notify.reloading();
        let report = self.read_and_swap();
        self.handle.record_reload(&report, by);
        self.notify.send("READY=1");
        report
    }

    fn read_and_swap(&self) -> ferry_server::ReloadReport {
        let mut report = ferry_server::ReloadReport::default();
        let running = self.handle.config();
        let staged = match &self.args.config {
            Some(file) => match build_config(&self.args) {
                Ok(new) => Some((file, ferry_server::reload::stage(&running, &new))),
                Err(e) => {
                    report.failed.push(format!("{e:#}"));
                    None
                }
            },
            None => None,
        };
        let config = staged.as_ref().map_or_else(|| (*running).clone(), |(_, s)| s.config.clone());
        let users = base_users(&self.args, &config).and_then(|base| {
            let db = self.users.read(&base)?;
            Ok((base, db))
        });
        let users = users.map_err(|e| report.failed.push(format!("users not reloaded: {e:#}"))).ok();
        let certificate = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) if self.handle.has_tls() => {
                ferry_server::tls::Tls::prepare(cert, key, &config.hosts)
                    .map_err(|e| report.failed.push(format!("TLS certificate not reloaded: {e}")))
                    .ok()
            }
            _ => None,
        };
        if !report.failed.is_empty() {
            report.failed.push("nothing was changed: the server runs as before".to_owned());
            return report;
        }
        let tls = certificate.is_some();
        self.handle.apply(config, certificate);
        if let Some((file, staged)) = staged {
            let changed =
                if staged.changed.is_empty() { "no setting changed".to_owned() } else { staged.changed.join(", ") };
            report.reloaded.push(format!("configuration {} ({changed})", file.display()));
            report.restart_needed = staged.restart_needed.iter().map(|s| s.to_string()).collect();
        }
        if let Some((base, db)) = users {
            let n = self.users.install(base, db);
            match &self.users.file {
                Some(file) => report.reloaded.push(format!("users file {} ({n} accounts)", file.display())),
                None => report.reloaded.push(format!("users from the command line ({n} accounts)")),
            }
        }
        if tls {
            report.reloaded.push("TLS certificate and key".to_owned());
        }
        report
    }
}

/// systemd's readiness protocol (`sd_notify(3)`, `Type=notify`): `READY=1` once the listeners
/// serve, `RELOADING=1` around a SIGHUP reload, `STOPPING=1` when draining starts. Nothing when
/// `NOTIFY_SOCKET` is unset (not started by systemd).
struct Notify(Option<std::os::unix::net::UnixDatagram>);

impl Notify {
    /// Connects to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
    fn connect() -> Self {
        use std::os::linux::net::SocketAddrExt as _;
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return Self(None) };
        let connected = std::os::unix::net::UnixDatagram::unbound().and_then(|sock| {
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
            match bytes.strip_prefix(b"@") {
                Some(name) => sock.connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name)?)?,
                None => sock.connect(&path)?,
            }
            Ok(sock)
        });
        match connected {
            Ok(sock) => Self(Some(sock)),
            Err(e) => {
                tracing::warn!(socket = ?path, error = %e, "cannot reach systemd's notification socket");
                Self(None)
            }
        }
    }

    fn send(&self, state: &str) {
        if let Some(sock) = &self.0 {
            if let Err(e) = sock.send(state.as_bytes()) {
                tracing::warn!(state, error = %e, "cannot notify systemd");
            }
        }
    }

    /// `RELOADING=1` with the monotonic time systemd asks for.
    fn reloading(&self) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }
}

/// Starts `ferry hook-runner` (this binary) when command hooks are configured: it runs their
/// commands for the server, which cannot once confined. It runs as the server's user (started
/// after `run_as`), and ends when the server does (its stdin closes).
fn start_hook_runner(needed: bool) -> Result<Option<ferry_server::hooks::RunnerInput>> {
    if !needed {
        return Ok(None);
    }
    let exe = std::env::current_exe().context("finding this program for the hook runner")?;
    let mut child = std::process::Command::new(exe)
        .arg("hook-runner")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the hook runner")?;
    tracing::info!(pid = child.id(), "hook runner started");
    match (child.stdin.take(), child.stdout.take()) {
        (Some(stdin), Some(stdout)) => Ok(Some(ferry_server::hooks::RunnerInput { stdin, stdout })),
        _ => bail!("the hook runner's pipes"),
    }
}

/// Listening sockets passed by systemd (socket activation: `LISTEN_PID`, `LISTEN_FDS`,
/// `LISTEN_FDNAMES`), each with whether it is implicit FTPS (named `ftps` in the `.socket` unit's
/// `FileDescriptorName=`). Empty when not socket-activated.
fn inherited_listeners() -> Result<Vec<(std::net::TcpListener, bool)>> {
    let mut fds = listenfd::ListenFd::from_env();
    let names: Vec<String> =
        std::env::var("LISTEN_FDNAMES").map(|n| n.split(':').map(str::to_owned).collect()).unwrap_or_default();
    let mut listeners = Vec::new();
    for i in 0..fds.len() {
        let listener = fds
            .take_tcp_listener(i)
            .with_context(|| format!("socket activation: descriptor {} is not a TCP listener", i + 3))?;
        if let Some(l) = listener {
            let implicit = names.get(i).is_some_and(|n| n == "ftps");
            listeners.push((l, implicit));
        }
    }
    if !listeners.is_empty() {
        tracing::info!(count = listeners.len(), "socket activation: serving the listeners systemd passed");
    }
    Ok(listeners)
}

/// The main log: text or JSON lines (`[log] format`), on stderr or in `[log] file`; `RUST_LOG`
/// filters it (default `info`). With JSON, the server's events are written by its own sink
/// (`ferry_server::events`) and the other messages by `tracing`'s JSON formatter.
fn init_logging(format: LogFormat, file: Option<Arc<LogFile>>) {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let writer = match file {
        Some(f) => BoxMakeWriter::new(move || LogWriter(f.clone())),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `tracing`'s writer into the main log file: one `write` per formatted line.
struct LogWriter(Arc<LogFile>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_bytes(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SIGUSR1: reopens the log files (after logrotate moved them away).
async fn reopen_on_sigusr1(
    handle: ferry_server::ServerHandle,
    main_log: Option<Arc<LogFile>>,
    mut usr1: tokio::signal::unix::Signal,
) {
    while usr1.recv().await.is_some() {
        if let Some(f) = &main_log {
            if let Err(e) = f.reopen() {
                tracing::error!(error = %e, "SIGUSR1: cannot reopen the main log; writing to the old one");
            }
        }
        match handle.reopen_logs() {
            Ok(()) => tracing::info!("SIGUSR1: log files reopened"),
            Err(e) => tracing::error!(error = %e, "SIGUSR1: cannot reopen a log file; writing to the old one"),
        }
    }
}

/// SIGTERM or SIGINT: tells systemd the server is stopping (before the drain, so the message
/// cannot be lost to the exit), then starts the drain.
async fn wait_for_signal(
    stop: CancellationToken,
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
    notify: Arc<Notify>,
) {
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    notify.send("STOPPING=1");
    stop.cancel();
}
