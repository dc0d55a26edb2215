//! `ferry`: the Ferry FTP server and client in one binary.
//!
//! Exit codes: 0 success, 1 other errors, 2 usage, 3 connection, 4 login, 5 not found,
//! 6 transfer (data connection, local file, verification), 7 other server refusals.

mod admin;
mod cert;
mod client;
mod serve;
mod user;

use clap::{Parser, Subcommand};

/// Ferry: an FTP server and client.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    #[command(flatten)]
    common: client::Common,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the FTP server.
    Serve(Box<serve::ServeArgs>),
    /// Manage users: a users file (argon2id password hashes), or the PostgreSQL accounts a
    /// configuration names (--config FILE).
    #[command(subcommand)]
    User(user::UserCmd),
    /// Manage the groups of PostgreSQL accounts (settings their members inherit).
    #[command(subcommand)]
    Group(user::GroupCmd),
    /// The PostgreSQL accounts database: create its schema, recount a user's usage, import a
    /// users file.
    #[command(subcommand)]
    Accounts(user::AccountsCmd),
    /// Make TLS certificates for FTPS.
    #[command(subcommand)]
    Cert(cert::CertCmd),
    /// List the sessions of a running server (through its admin socket).
    Who(admin::WhoArgs),
    /// Watch the sessions of a running server, refreshed like top (through its admin socket).
    Top(admin::TopArgs),
    /// Disconnect a session of a running server (through its admin socket).
    Kick(admin::KickArgs),
    /// Ban an address on a running server (through its admin socket).
    Ban(admin::BanArgs),
    /// Lift a ban on a running server (through its admin socket).
    Unban(admin::UnbanArgs),
    /// List the bans of a running server (through its admin socket).
    Bans(admin::Target),
    /// Make a running server reread its users file and certificate (through its admin socket).
    Reload(admin::Target),
    /// Draw a trace written with `--trace=json` as one HTML page, on standard output.
    TraceView {
        /// The trace: JSON lines (other lines, such as messages, are skipped).
        file: std::path::PathBuf,
    },
    /// Run hook commands for a server (started by `ferry serve` itself).
    #[command(hide = true)]
    HookRunner,
    /// Write the man pages and shell completions into a directory (for packaging).
    #[command(hide = true)]
    GenerateAssets {
        /// Where: `man/` and `completions/` are created below it.
        dir: std::path::PathBuf,
    },
    #[command(flatten)]
    Client(client::ClientCmd),
}

/// jemalloc instead of glibc's malloc: with its background thread (`.cargo/config.toml` sets it
/// up) freed memory goes back to the system a second after a burst of transfers, and there are no
/// per-thread arenas that the blocking pool's threads would leave behind (docs/reliability.md has
/// the soak figures for both).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The command line as `--help` shows it. The client options are accepted before a client
/// subcommand (`ferry --trace get ...`, on the top-level command) and after it (`ferry get --trace
/// ...`, added to each client subcommand here), and only there: `serve`, `user`, `cert` and the
/// admin commands neither take nor list them. `serve`'s flags that the config file can also set
/// show the default that applies when neither sets them.
fn command() -> clap::Command {
    use clap::{Args as _, CommandFactory as _, Subcommand as _};
    let mut cmd = Cli::command();
    let client_cmds: Vec<String> = client::ClientCmd::augment_subcommands(clap::Command::new("x"))
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in client_cmds {
        cmd = cmd.mut_subcommand(name, client::Common::augment_args);
    }
    cmd.mut_subcommand("serve", show_server_defaults)
}

/// `serve`'s flags with the defaults of `ferry_server::config` (one source for the numbers).
fn show_server_defaults(c: clap::Command) -> clap::Command {
    let limits = ferry_server::config::Limits::default();
    let defaults = [
        ("idle_timeout", limits.idle_timeout_secs.to_string()),
        ("login_timeout", limits.login_timeout_secs.to_string()),
        ("data_timeout", limits.data_timeout_secs.to_string()),
        ("max_sessions", limits.max_sessions.to_string()),
        ("users_file", format!("{} when neither --user nor --anonymous is given", serve::DEFAULT_USERS_FILE)),
        ("passive_ports", "any free port".into()),
        ("passive_address", "the server's address on the control connection".into()),
        ("config", "none (the defaults shown here)".into()),
        ("run_as", "none (stay the user it was started as)".into()),
        ("tls_cert", "none (no FTPS)".into()),
        ("tls_key", "none".into()),
        ("implicit_tls_listen", "none".into()),
        ("proxy_trusted", "none (a PROXY header is refused)".into()),
    ];
    defaults.into_iter().fold(c, |c, (id, default)| {
        c.mut_arg(id, |a| {
            let help = a.get_help().map(ToString::to_string).unwrap_or_default();
            a.help(format!("{help} [default: {default}]"))
        })
    })
}

/// Man pages (`ferry.1`, `ferry-serve.1`, ...) and completions for bash, zsh and fish.
fn generate_assets(dir: &std::path::Path) -> anyhow::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(command(), &man)?;
    for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
        clap_complete::generate_to(shell, &mut command(), "ferry", &completions)?;
    }
    println!("man pages in {}, completions in {}", man.display(), completions.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    use clap::FromArgMatches as _;
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Cmd::Serve(args) => serve::run(*args),
        Cmd::User(cmd) => user::run(cmd),
        Cmd::Group(cmd) => user::run_group(cmd),
        Cmd::Accounts(cmd) => user::run_accounts(cmd),
        Cmd::Cert(cmd) => cert::run(cmd),
        Cmd::Who(args) => admin::who(args),
        Cmd::Kick(args) => admin::kick(args),
        Cmd::Top(args) => admin::top(args),
        Cmd::Ban(args) => admin::ban(args),
        Cmd::Unban(args) => admin::unban(args),
        Cmd::Bans(target) => admin::bans(target),
        Cmd::Reload(target) => admin::reload(target),
        Cmd::GenerateAssets { dir } => generate_assets(&dir),
        Cmd::TraceView { file } => client::trace_view(&file),
        Cmd::HookRunner => ferry_server::hooks::run_runner().map_err(Into::into),
        Cmd::Client(cmd) => {
            // The client options given after the subcommand join those given before it.
            let after = matches.subcommand().map(|(_, m)| m);
            client::Common::merged(cli.common, after).and_then(|common| client::run(cmd, common))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            std::process::ExitCode::from(client::exit_code(&e))
        }
    }
}
