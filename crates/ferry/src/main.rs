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
    /// Manage a users file (argon2id password hashes).
    #[command(subcommand)]
    User(user::UserCmd),
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

/// Man pages (`ferry.1`, `ferry-serve.1`, ...) and completions for bash, zsh and fish.
fn generate_assets(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(Cli::command(), &man)?;
    for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "ferry", &completions)?;
    }
    println!("man pages in {}, completions in {}", man.display(), completions.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Serve(args) => serve::run(*args),
        Cmd::User(cmd) => user::run(cmd),
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
        Cmd::Client(cmd) => client::run(cmd, cli.common),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            std::process::ExitCode::from(client::exit_code(&e))
        }
    }
}
