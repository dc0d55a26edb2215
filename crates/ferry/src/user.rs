//! `ferry user add|del|passwd|list --users FILE`.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ferry_server::auth::users_file::UsersFile;
use ferry_server::auth::Permission;

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
    /// The user's root directory (default: the server's root).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Comma-separated permissions: list, read, write, delete, rename, mkdir (default: all).
    #[arg(long, value_delimiter = ',')]
    perms: Option<Vec<String>>,
    /// Quota: bytes under the user's root (uploads beyond get 552 and are undone).
    #[arg(long, value_name = "BYTES")]
    quota_bytes: Option<u64>,
    /// Quota: files under the user's root.
    #[arg(long, value_name = "N")]
    quota_files: Option<u64>,
    /// Sessions of this user logged in at once.
    #[arg(long, value_name = "N")]
    max_sessions: Option<u32>,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
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

fn load_or_new(path: &Path) -> Result<UsersFile> {
    if path.exists() {
        Ok(UsersFile::load(path)?)
    } else {
        Ok(UsersFile::default())
    }
}

/// Runs a user subcommand.
pub fn run(cmd: UserCmd) -> Result<()> {
    match cmd {
        UserCmd::Add(a) => {
            let perms = a.perms.as_deref().map(parse_perms).transpose()?;
            let mut file = load_or_new(&a.file.users)?;
            let pw = read_password(a.password_stdin)?;
            file.set_user(&a.name, &pw, a.root, perms)?;
            if let Some(u) = file.users.iter_mut().find(|u| u.name == a.name) {
                u.quota_bytes = a.quota_bytes.or(u.quota_bytes);
                u.quota_files = a.quota_files.or(u.quota_files);
                u.max_sessions = a.max_sessions.or(u.max_sessions);
            }
            file.save(&a.file.users)?;
            println!("user {} saved in {}", a.name, a.file.users.display());
            println!("{RUNNING_SERVER}");
        }
        UserCmd::Del(a) => {
            let mut file = UsersFile::load(&a.file.users)?;
            if !file.remove_user(&a.name) {
                bail!("no user {:?} in {}", a.name, a.file.users.display());
            }
            file.save(&a.file.users)?;
            println!("user {} removed", a.name);
            println!("{RUNNING_SERVER}");
        }
        UserCmd::Passwd(a) => {
            let mut file = UsersFile::load(&a.file.users)?;
            if !file.users.iter().any(|u| u.name == a.name) {
                bail!("no user {:?} in {}", a.name, a.file.users.display());
            }
            let pw = read_password(a.password_stdin)?;
            file.set_user(&a.name, &pw, None, None)?;
            file.save(&a.file.users)?;
            println!("password of {} changed", a.name);
            println!("{RUNNING_SERVER}");
        }
        UserCmd::List(f) => {
            let file = UsersFile::load(&f.users).with_context(|| format!("reading {}", f.users.display()))?;
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
