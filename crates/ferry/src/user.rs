//! `ferry user add|del|passwd|list`, on a users file (`--users FILE`) or on the accounts store
//! a configuration names (`--config FILE`: its `users_file`, or its PostgreSQL database);
//! `ferry group` and `ferry accounts` for PostgreSQL.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ferry_server::auth::model::AccountsKind;
use ferry_server::auth::postgres::{GroupUpdate, PgAccounts, UserUpdate};
use ferry_server::auth::users_file::UsersFile;
use ferry_server::auth::Permission;
use ferry_server::Config;

/// User management commands.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user (or replace an existing user's password, root and permissions).
    Add(AddArgs),
    /// Remove a user.
    Del(NameArgs),
    /// Change a user's password.
    Passwd(PasswdArgs),
    /// List the users.
    List(FileArg),
}

#[derive(Debug, Args)]
pub struct FileArg {
    /// The users file.
    #[arg(long, default_value = "ferry-users.toml")]
    users: PathBuf,
    /// The server's configuration: its accounts store (`[accounts]`: the users file it names, or
    /// PostgreSQL) instead of --users.
    #[arg(long, value_name = "FILE", conflicts_with = "users")]
    config: Option<PathBuf>,
}

/// Where the accounts are.
enum Target {
    File(PathBuf),
    Postgres { db: PgAccounts, config: Box<Config> },
}

/// Reads a configuration file as `ferry serve --config` does.
fn read_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_toml(&text).with_context(|| format!("invalid configuration in {}", path.display()))?;
    config.validate().with_context(|| format!("invalid configuration in {}", path.display()))?;
    Ok(config)
}

/// The PostgreSQL accounts of a configuration.
fn postgres(config: &Config, path: &Path) -> Result<PgAccounts> {
    if config.accounts.kind != AccountsKind::Postgres {
        bail!("{}: [accounts] kind is not \"postgres\"", path.display());
    }
    PgAccounts::new(&config.accounts, config.root.clone()).map_err(anyhow::Error::msg)
}

impl FileArg {
    fn target(&self) -> Result<Target> {
        let Some(path) = &self.config else { return Ok(Target::File(self.users.clone())) };
        let config = read_config(path)?;
        match config.accounts.kind {
            AccountsKind::File => Ok(Target::File(
                config.users_file.clone().unwrap_or_else(|| PathBuf::from(crate::serve::DEFAULT_USERS_FILE)),
            )),
            AccountsKind::Postgres => Ok(Target::Postgres { db: postgres(&config, path)?, config: Box::new(config) }),
            kind => {
                bail!("{}: accounts of kind {kind:?} are managed in the directory or service itself", path.display())
            }
        }
    }
}

/// Runs a future to its end (the CLI has no runtime of its own).
fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f))
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// The login name.
    name: String,
    #[command(flatten)]
    file: FileArg,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The login name.
    name: String,
    #[command(flatten)]
    file: FileArg,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The login name.
    name: String,
    #[command(flatten)]
    file: FileArg,
    #[command(flatten)]
    settings: Settings,
    /// The group whose settings the user inherits (PostgreSQL).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

/// Group management (PostgreSQL accounts).
#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Add a group or change one: settings its members inherit unless they have their own.
    Add(GroupArgs),
    /// Remove a group (its members keep their own settings).
    Del(GroupName),
}

#[derive(Debug, Args)]
pub struct GroupName {
    /// The group's name.
    name: String,
    /// The server's configuration (its `[accounts]` must be PostgreSQL).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    group: GroupName,
    #[command(flatten)]
    settings: Settings,
}

/// What `ferry user add` and `ferry group add` set (a group's settings apply to each member that
/// has none of its own).
#[derive(Debug, Args)]
pub struct Settings {
    /// The root directory (default: the server's root).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Comma-separated permissions: list, read, write, delete, rename, mkdir (default: all).
    #[arg(long, value_delimiter = ',')]
    perms: Option<Vec<String>>,
    /// Quota: bytes under the root (uploads beyond get 552 and are undone).
    #[arg(long, value_name = "BYTES")]
    quota_bytes: Option<u64>,
    /// Quota: files under the root.
    #[arg(long, value_name = "N")]
    quota_files: Option<u64>,
    /// Sessions logged in at once (on all nodes, with PostgreSQL).
    #[arg(long, value_name = "N")]
    max_sessions: Option<u32>,
}

/// The accounts database (PostgreSQL).
#[derive(Debug, Subcommand)]
pub enum AccountsCmd {
    /// Create or update the database schema (safe to run again, and from several nodes).
    Migrate(ConfigArg),
    /// Rebuild what a user uses (bytes, files) from a walk of their root.
    Recount(RecountArgs),
    /// Copy the users of a users file into the database (their hashes as they are).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The server's configuration (its `[accounts]` must be PostgreSQL).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Args)]
pub struct RecountArgs {
    /// The login name.
    name: String,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The users file to copy.
    #[arg(long, value_name = "FILE")]
    users: PathBuf,
    #[command(flatten)]
    config: ConfigArg,
}

fn parse_perms(list: &[String]) -> Result<Vec<Permission>> {
    list.iter()
        .map(|p| match Permission::from_name(p.trim()) {
            Some(p) => Ok(p),
            None => {
                let names: Vec<&str> = Permission::ALL.iter().map(|p| p.name()).collect();
                bail!("--perms: unknown permission {:?} (use {})", p.trim(), names.join(", "))
            }
        })
        .collect()
}

/// What the user-management commands say about a server already running on the file.
const RUNNING_SERVER: &str =
    "a running `ferry serve` using this file picks the change up within a second (it watches the file); no restart needed";

fn read_password(from_stdin: bool) -> Result<String> {
    let pw = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let a = rpassword::prompt_password("Password: ")?;
        let b = rpassword::prompt_password("Again: ")?;
        if a != b {
            bail!("the passwords do not match");
        }
        a
    };
    if pw.is_empty() {
        bail!("the password is empty");
    }
    Ok(pw)
}

/// A root as stored in the database: checked to be inside the server's root (and created there
/// when missing, on local storage).
fn db_root(config: &Config, root: Option<&Path>) -> Result<Option<String>> {
    let Some(root) = root else { return Ok(None) };
    let text = root.to_str().context("--root: not UTF-8")?.to_string();
    let Some(resolved) = ferry_server::auth::model::resolve_root(&config.root, Some(&text)) else {
        bail!(
            "--root {}: must be inside the server's root {} (relative to it, or absolute)",
            text,
            config.root.display()
        );
    };
    if config.storage.kind == ferry_server::config::StorageKind::Local {
        std::fs::create_dir_all(&resolved).with_context(|| format!("creating {}", resolved.display()))?;
    }
    Ok(Some(text))
}

fn perms_text(perms: Option<&[String]>) -> Result<Option<String>> {
    let Some(list) = perms else { return Ok(None) };
    let parsed = parse_perms(list)?;
    Ok(Some(parsed.iter().map(|p| p.name()).collect::<Vec<_>>().join(",")))
}

const RUNNING_NODES: &str = "every node using this database sees the change at the next login; no restart needed";

fn run_postgres(cmd: UserCmd, db: &PgAccounts, config: &Config) -> Result<()> {
    match cmd {
        UserCmd::Add(a) => {
            let set = &a.settings;
            let perms = perms_text(set.perms.as_deref())?;
            let root = db_root(config, set.root.as_deref())?;
            let pw = read_password(a.password_stdin)?;
            let hash = ferry_server::auth::hash_password(&pw)?;
            let update = UserUpdate {
                name: a.name.clone(),
                password_hash: Some(hash),
                group: a.group,
                root,
                permissions: perms,
                quota_bytes: set.quota_bytes,
                quota_files: set.quota_files,
                max_sessions: set.max_sessions,
            };
            block_on(db.upsert_user(&update))?.map_err(anyhow::Error::msg)?;
            println!("user {} saved in the accounts database", a.name);
            println!("{RUNNING_NODES}");
        }
        UserCmd::Del(a) => {
            if !block_on(db.delete_user(&a.name))?.map_err(anyhow::Error::msg)? {
                bail!("no user {:?} in the accounts database", a.name);
            }
            println!("user {} removed", a.name);
        }
        UserCmd::Passwd(a) => {
            let pw = read_password(a.password_stdin)?;
            let hash = ferry_server::auth::hash_password(&pw)?;
            let update = UserUpdate { name: a.name.clone(), password_hash: Some(hash), ..UserUpdate::default() };
            // Only an existing user: a password alone does not make one.
            let exists = block_on(db.root_of(&a.name))?.map_err(anyhow::Error::msg)?.is_some();
            if !exists {
                bail!("no user {:?} in the accounts database", a.name);
            }
            block_on(db.upsert_user(&update))?.map_err(anyhow::Error::msg)?;
            println!("password of {} changed", a.name);
        }
        UserCmd::List(_) => {
            for u in block_on(db.list())?.map_err(anyhow::Error::msg)? {
                let limit = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
                println!(
                    "{}\t{}\t{}\tgroup {}\tquota bytes {}\tquota files {}\tmax sessions {}\tused {} bytes, {} files{}",
                    u.name,
                    u.root.as_deref().unwrap_or("(server root)"),
                    u.permissions.as_deref().unwrap_or("all"),
                    u.group.as_deref().unwrap_or("-"),
                    limit(u.limits.quota_bytes),
                    limit(u.limits.quota_files),
                    limit(u.limits.max_sessions.map(u64::from)),
                    u.usage.bytes,
                    u.usage.files,
                    if u.enabled { "" } else { "\tdisabled" },
                );
            }
        }
    }
    Ok(())
}

/// Runs a group subcommand.
pub fn run_group(cmd: GroupCmd) -> Result<()> {
    match cmd {
        GroupCmd::Add(a) => {
            let config = read_config(&a.group.config)?;
            let db = postgres(&config, &a.group.config)?;
            let set = &a.settings;
            let update = GroupUpdate {
                name: a.group.name.clone(),
                root: db_root(&config, set.root.as_deref())?,
                permissions: perms_text(set.perms.as_deref())?,
                quota_bytes: set.quota_bytes,
                quota_files: set.quota_files,
                max_sessions: set.max_sessions,
            };
            block_on(db.upsert_group(&update))?.map_err(anyhow::Error::msg)?;
            println!("group {} saved", a.group.name);
        }
        GroupCmd::Del(a) => {
            let config = read_config(&a.config)?;
            let db = postgres(&config, &a.config)?;
            if !block_on(db.delete_group(&a.name))?.map_err(anyhow::Error::msg)? {
                bail!("no group {:?}", a.name);
            }
            println!("group {} removed", a.name);
        }
    }
    Ok(())
}

/// Runs an accounts subcommand.
pub fn run_accounts(cmd: AccountsCmd) -> Result<()> {
    match cmd {
        AccountsCmd::Migrate(a) => {
            let config = read_config(&a.config)?;
            let db = postgres(&config, &a.config)?;
            let done = block_on(db.migrate())?.map_err(anyhow::Error::msg)?;
            let version = block_on(db.schema_version())?.map_err(|e| anyhow::anyhow!(e.0))?;
            match done.as_slice() {
                [] => println!("schema already at version {version}"),
                done => println!("applied migration(s) {done:?}; schema at version {version}"),
            }
        }
        AccountsCmd::Recount(a) => {
            let config = read_config(&a.config.config)?;
            let db = postgres(&config, &a.config.config)?;
            let Some(root) = block_on(db.root_of(&a.name))?.map_err(anyhow::Error::msg)? else {
                bail!("no user {:?} in the accounts database", a.name);
            };
            let usage = match config.storage.kind {
                ferry_server::config::StorageKind::Local => ferry_server::limits::measure(&root),
                ferry_server::config::StorageKind::S3 => {
                    let prefix = ferry_server::storage::s3::user_prefix(&config.root, &root);
                    let storage = ferry_server::storage::s3::S3Storage::open(&config.storage, &prefix)?;
                    block_on(ferry_server::storage::measure(&storage))??
                }
            };
            block_on(db.set_usage(&a.name, usage))?.map_err(anyhow::Error::msg)?;
            println!("{} uses {} bytes in {} files", a.name, usage.bytes, usage.files);
        }
        AccountsCmd::Import(a) => {
            let config = read_config(&a.config.config)?;
            let db = postgres(&config, &a.config.config)?;
            let file = UsersFile::load(&a.users)?;
            for u in &file.users {
                let update = UserUpdate {
                    name: u.name.clone(),
                    password_hash: Some(u.password_hash.clone()),
                    group: None,
                    root: u.root.as_ref().and_then(|r| r.to_str()).map(str::to_string),
                    permissions: u
                        .permissions
                        .as_ref()
                        .map(|p| p.iter().map(|p| p.name()).collect::<Vec<_>>().join(",")),
                    quota_bytes: u.quota_bytes,
                    quota_files: u.quota_files,
                    max_sessions: u.max_sessions,
                };
                block_on(db.upsert_user(&update))?.map_err(|e| anyhow::anyhow!("user {}: {e}", u.name))?;
            }
            println!("imported {} user(s) from {}", file.users.len(), a.users.display());
        }
    }
    Ok(())
}

fn load_or_new(path: &Path) -> Result<UsersFile> {
    if path.exists() {
        Ok(UsersFile::load(path)?)
    } else {
        Ok(UsersFile::default())
    }
}

/// Runs a user subcommand.
pub fn run(cmd: UserCmd) -> Result<()> {
    let file = match &cmd {
        UserCmd::Add(a) => &a.file,
        UserCmd::Del(a) => &a.file,
        UserCmd::Passwd(a) => &a.file,
        UserCmd::List(f) => f,
    };
    let users = match file.target()? {
        Target::Postgres { db, config } => return run_postgres(cmd, &db, &config),
        Target::File(users) => users,
    };
    run_file(cmd, &users)
}

fn run_file(cmd: UserCmd, users: &Path) -> Result<()> {
    match cmd {
        UserCmd::Add(a) => {
            if a.group.is_some() {
                bail!("--group: groups are kept in a PostgreSQL accounts database (--config FILE)");
            }
            let perms = a.settings.perms.as_deref().map(parse_perms).transpose()?;
            let mut file = load_or_new(users)?;
            let pw = read_password(a.password_stdin)?;
            file.set_user(&a.name, &pw, a.settings.root, perms)?;
            if let Some(u) = file.users.iter_mut().find(|u| u.name == a.name) {
                u.quota_bytes = a.settings.quota_bytes.or(u.quota_bytes);
                u.quota_files = a.settings.quota_files.or(u.quota_files);
                u.max_sessions = a.settings.max_sessions.or(u.max_sessions);
            }
            file.save(users)?;
            println!("user {} saved in {}", a.name, users.display());
            println!("{RUNNING_SERVER}");
        }
        UserCmd::Del(a) => {
            let mut file = UsersFile::load(users)?;
            if !file.remove_user(&a.name) {
                bail!("no user {:?} in {}", a.name, users.display());
            }
            file.save(users)?;
            println!("user {} removed", a.name);
            println!("{RUNNING_SERVER}");
        }
        UserCmd::Passwd(a) => {
            let mut file = UsersFile::load(users)?;
            if !file.users.iter().any(|u| u.name == a.name) {
                bail!("no user {:?} in {}", a.name, users.display());
            }
            let pw = read_password(a.password_stdin)?;
            file.set_user(&a.name, &pw, None, None)?;
            file.save(users)?;
            println!("password of {} changed", a.name);
            println!("{RUNNING_SERVER}");
        }
        UserCmd::List(_) => {
            let file = UsersFile::load(users).with_context(|| format!("reading {}", users.display()))?;
            for u in &file.users {
                let root = u.root.as_ref().map(|r| r.display().to_string()).unwrap_or_else(|| "(server root)".into());
                let perms = match &u.permissions {
                    None => "all".to_string(),
                    Some(p) => p.iter().map(|p| format!("{p:?}").to_lowercase()).collect::<Vec<_>>().join(","),
                };
                let limit = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
                println!(
                    "{}\t{}\t{}\tquota bytes {}\tquota files {}\tmax sessions {}",
                    u.name,
                    root,
                    perms,
                    limit(u.quota_bytes),
                    limit(u.quota_files),
                    limit(u.max_sessions.map(u64::from))
                );
            }
        }
    }
    Ok(())
}
