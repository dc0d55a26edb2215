//! The server confines itself once its ports are bound and its files are read: it gives up root
//! ([`drop_privileges`]), then [`confine`]s itself with Landlock (which files and ports it may
//! still use) and a seccomp allow-list (which system calls), with `PR_SET_NO_NEW_PRIVS`.
//!
//! A bug that makes the server open a path outside the users' roots, connect to a port it has no
//! business with, or run a program then fails with `EACCES`/`EPERM` instead of succeeding.
//! docs/reliability.md lists the rules and what each one stops.
//!
//! Both must be applied while the process has one thread: Landlock restricts the calling thread
//! and the threads it starts afterwards (before ABI 8, not the others), so [`confine`] refuses to
//! run once a second thread exists, and the caller starts its runtime afterwards.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};

use crate::config::{Config, SourcePort, StorageKind};

/// Why the server could not confine itself (a start-up error: it does not serve unconfined
/// unless told to with `--no-sandbox`).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Another thread was started before the sandbox: it would escape Landlock.
    #[error("the sandbox must be applied while the process has one thread ({0} are running)")]
    Threads(usize),
    /// Landlock refused the ruleset. (The errors below are not marked as sources: their own
    /// text already ends with their cause, which a chain would print twice.)
    #[error("Landlock: {0}")]
    Landlock(landlock::RulesetError),
    /// The seccomp filter could not be installed.
    #[error("seccomp: {0}")]
    Seccomp(seccompiler::Error),
    /// The seccomp filter could not be built.
    #[error("seccomp: {0}")]
    SeccompRules(seccompiler::BackendError),
    /// `run_as` names no user, or the switch failed.
    #[error("run_as {user:?}: {reason}")]
    RunAs {
        /// The user asked for.
        user: String,
        /// What went wrong.
        reason: String,
    },
}

/// What the server may still touch once confined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Directories the server reads and writes beneath (the users' roots, local storage only).
    pub writable: Vec<PathBuf>,
    /// Files and directories it may read (configuration, users file, certificates; for S3, the
    /// system's CA certificates and resolver files).
    pub readable: Vec<PathBuf>,
    /// Local ports it may bind (passive ports; 0 for an ephemeral port; active source ports).
    pub bind: Vec<RangeInclusive<u16>>,
    /// Remote ports it may connect to (active-mode data connections, the S3 endpoint).
    pub connect: Vec<RangeInclusive<u16>>,
}

/// Files read at run time by anything that resolves a host name or checks a TLS certificate
/// (the S3 client): read-only, and skipped when missing.
const SYSTEM_FILES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/ssl",
    "/etc/pki",
    "/etc/ca-certificates",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
];

/// The local time zone, for the dates of the transfer log and the vsftpd-format log.
const TIME_ZONE_FILES: &[&str] = &["/etc/localtime", "/usr/share/zoneinfo"];

/// What `std::thread::available_parallelism` reads to honour a container's CPU quota (without
/// them it counts the CPUs the process may run on).
const CPU_QUOTA_FILES: &[&str] = &["/proc/self/cgroup", "/proc/self/mountinfo", "/sys/fs/cgroup"];

/// The directories that the symbolic links directly in `dir` point into (`/etc/ssl/certs` links to
/// certificates kept elsewhere), and `dir`'s own target when it is a link.
fn link_targets(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut push = |p: PathBuf| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    if let Ok(real) = std::fs::canonicalize(dir) {
        if real != dir {
            push(real);
        }
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(false);
        if let Some(parent) = is_link.then(|| std::fs::canonicalize(entry.path()).ok()).flatten().and_then(|t| {
            let parent = if t.is_dir() { Some(t.as_path()) } else { t.parent() };
            parent.map(Path::to_path_buf)
        }) {
            push(parent);
        }
    }
    out
}

impl Plan {
    /// The plan for a server with `config`, whose accounts are rooted at `roots`, and which reads
    /// `files` again while it runs (the configuration file, the users file). For every file, its
    /// directory is readable, and the directory of what it links to: a certificate renewal or
    /// `ferry user add` replaces a file by renaming a new one over it, which a rule on the old
    /// file itself would not cover.
    pub fn new(config: &Config, roots: &[PathBuf], files: &[PathBuf]) -> Plan {
        let mut plan = Plan::default();
        if config.storage.kind == StorageKind::Local {
            plan.writable = roots.to_vec();
            plan.writable.sort();
            plan.writable.dedup();
        }
        let cert_files = [&config.tls.cert, &config.tls.key].into_iter().flatten();
        for file in files.iter().chain(cert_files) {
            for dir in [Some(file.clone()), std::fs::canonicalize(file).ok()].into_iter().flatten() {
                let parent = match dir.parent() {
                    Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
                    Some(p) => p.to_path_buf(),
                    None => dir.clone(),
                };
                if !plan.readable.contains(&parent) {
                    plan.readable.push(parent);
                }
            }
        }
        // Refusing connections when descriptors run out reopens a reserve descriptor.
        plan.readable.push(PathBuf::from("/dev/null"));
        plan.bind.push(0..=0);
        if let Some(p) = config.passive.ports {
            plan.bind.push(p.low..=p.high);
        }
        match config.active.source_port {
            SourcePort::Ephemeral => {}
            SourcePort::Fixed(p) => plan.bind.push(p..=p),
            SourcePort::ControlMinusOne => {
                let listeners = config.listen.iter().chain(&config.tls.implicit_listen);
                plan.bind.extend(listeners.map(|a| a.port().saturating_sub(1)).map(|p| p..=p));
            }
        }
        // Active mode connects only to unprivileged ports (RFC 2577; lower ones get 504).
        plan.connect.push(if config.active.allow_low_ports_unsafe { 1..=u16::MAX } else { 1024..=u16::MAX });
        plan.readable.extend(CPU_QUOTA_FILES.iter().chain(TIME_ZONE_FILES).map(PathBuf::from));
        // Log files are reopened by name after a rotation, and the ban state file is replaced by a
        // rename: their directories are writable (local, whatever the storage).
        for file in config.log.files().into_iter().chain(config.bans.state_file.clone()) {
            let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !plan.writable.iter().any(|w| w == parent) {
                plan.writable.push(parent.to_path_buf());
            }
        }
        // Rejected uploads are moved to the verify hooks' quarantine directories.
        for dir in config.hooks.iter().filter_map(|h| h.quarantine.clone()) {
            if !plan.writable.contains(&dir) {
                plan.writable.push(dir);
            }
        }
        let webhooks: Vec<&str> = config.hooks.iter().filter_map(|h| h.url.as_deref()).collect();
        let store = config.accounts.kind != crate::auth::model::AccountsKind::File;
        if let Some(port) = config.accounts.port().filter(|_| store) {
            // The accounts store (PostgreSQL, LDAP, the HTTP auth service).
            plan.connect.push(port..=port);
        }
        if config.storage.kind == StorageKind::S3 || !webhooks.is_empty() || store {
            let env = ["SSL_CERT_FILE", "SSL_CERT_DIR"].into_iter().filter_map(std::env::var_os).map(PathBuf::from);
            let system: Vec<PathBuf> = SYSTEM_FILES.iter().map(PathBuf::from).chain(env).collect();
            for path in &system {
                let certs = path.join("certs");
                for target in link_targets(path).into_iter().chain(link_targets(&certs)) {
                    if !system.iter().any(|s| target.starts_with(s)) && !plan.readable.contains(&target) {
                        plan.readable.push(target);
                    }
                }
            }
            plan.readable.extend(system);
            if config.storage.kind == StorageKind::S3 {
                plan.connect.push(url_port(config.storage.endpoint.as_deref()));
            }
            // Webhooks: their URLs' ports.
            plan.connect.extend(webhooks.into_iter().map(|url| url_port(Some(url))));
        }
        plan
    }
}

/// The port of an endpoint URL (S3, a webhook): the URL's, else its scheme's (AWS: 443).
fn url_port(endpoint: Option<&str>) -> RangeInclusive<u16> {
    let port = endpoint.and_then(|url| crate::config::url_host_port(url).1).unwrap_or(443);
    port..=port
}

impl From<landlock::RulesetError> for SandboxError {
    fn from(e: landlock::RulesetError) -> Self {
        SandboxError::Landlock(e)
    }
}

impl From<seccompiler::Error> for SandboxError {
    fn from(e: seccompiler::Error) -> Self {
        SandboxError::Seccomp(e)
    }
}

impl From<seccompiler::BackendError> for SandboxError {
    fn from(e: seccompiler::BackendError) -> Self {
        SandboxError::SeccompRules(e)
    }
}

/// What [`confine`] put in force, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Whether Landlock enforces every rule, some (an older kernel), or none.
    pub landlock: Enforced,
    /// The plan the rules came from.
    pub plan: Plan,
    /// System calls the seccomp filter allows.
    pub syscalls: usize,
}

/// How much of the Landlock ruleset the running kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    /// Every rule.
    Fully,
    /// What this kernel knows (older kernels lack network rules, truncation, ...).
    Partially,
    /// None: the kernel has no Landlock (built without it, or not enabled at boot).
    Not,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |paths: &[PathBuf]| paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        let ports = |r: &[RangeInclusive<u16>]| {
            r.iter()
                .map(
                    |r| if r.start() == r.end() { r.start().to_string() } else { format!("{}-{}", r.start(), r.end()) },
                )
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.landlock {
            Enforced::Fully => f.write_str("Landlock fully enforced")?,
            Enforced::Partially => f.write_str("Landlock partially enforced (an older kernel)")?,
            Enforced::Not => f.write_str("Landlock not available in this kernel")?,
        }
        let writable = if self.plan.writable.is_empty() { "nothing".to_owned() } else { list(&self.plan.writable) };
        write!(
            f,
            ": read-write beneath {writable}; read-only {}; bind TCP ports {}; connect to TCP ports {}; \
             seccomp allow-list of {} system calls; no new privileges",
            list(&self.plan.readable),
            ports(&self.plan.bind),
            ports(&self.plan.connect),
            self.syscalls
        )
    }
}

/// Confines the process: Landlock rules from `plan`, then the seccomp allow-list, both with
/// `PR_SET_NO_NEW_PRIVS`. Call it once, from the only thread. Where the kernel lacks Landlock (or
/// some of its rules), the rest still applies and the report says so.
pub fn confine(plan: &Plan) -> Result<Report, SandboxError> {
    let threads = thread_count();
    if threads > 1 {
        return Err(SandboxError::Threads(threads));
    }
    let landlock = landlock(plan)?;
    let syscalls = seccomp()?;
    Ok(Report { landlock, plan: plan.clone(), syscalls })
}

/// Threads in this process, from `/proc/self/status` (1 where it cannot be read).
fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(1)
}

/// The newest Landlock ABI this code was written for; older kernels get what they support.
const LANDLOCK_ABI: ABI = ABI::V6;

fn landlock(plan: &Plan) -> Result<Enforced, SandboxError> {
    let all = AccessFs::from_all(LANDLOCK_ABI);
    let read = AccessFs::from_read(LANDLOCK_ABI);
    let net = AccessNet::BindTcp | AccessNet::ConnectTcp;
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)?
        .handle_access(net)?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)?
        .create()?;
    for dir in &plan.writable {
        // A root that cannot be opened now fails at login, as it would without the sandbox.
        if let Ok(fd) = PathFd::new(dir) {
            ruleset = ruleset.add_rule(PathBeneath::new(fd, all))?;
        }
    }
    for path in &plan.readable {
        if let Ok(fd) = PathFd::new(path) {
            // A file gets the rights a file can have; a directory, reading beneath it.
            let access = if Path::new(path).is_dir() { read } else { read & AccessFs::from_file(LANDLOCK_ABI) };
            ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
        }
    }
    for (ranges, access) in [(&plan.bind, AccessNet::BindTcp), (&plan.connect, AccessNet::ConnectTcp)] {
        for range in ranges {
            for port in range.clone() {
                ruleset = ruleset.add_rule(NetPort::new(port, access))?;
            }
        }
    }
    let status = ruleset.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partially,
        _ => Enforced::Not,
    })
}

/// Every system call the server makes, found by tracing it through the whole test suite
/// (`strace -f -c`: plain and TLS sessions, passive and active data connections, sendfile and
/// splice transfers, uploads through `O_TMPFILE`, S3 storage, reload, shutdown), plus their older
/// or newer equivalents. Anything else (`execve`, `ptrace`, `mount`, `bpf`, `setuid`, ...) fails
/// with `EPERM`.
macro_rules! allowed {
    ($($name:ident),* $(,)?) => { &[$((stringify!($name), libc::$name)),*] };
}

const ALLOWED: &[(&str, libc::c_long)] = allowed!(
    // Memory and threads (clone is checked separately).
    SYS_brk,
    SYS_mmap,
    SYS_munmap,
    SYS_mremap,
    SYS_madvise,
    SYS_membarrier,
    SYS_futex,
    SYS_set_robust_list,
    SYS_get_robust_list,
    SYS_set_tid_address,
    SYS_rseq,
    SYS_sched_yield,
    SYS_sched_getaffinity,
    SYS_getcpu,
    SYS_exit,
    SYS_exit_group,
    SYS_restart_syscall,
    // Signals (Landlock's signal scope keeps them inside the process).
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_sigaltstack,
    SYS_tgkill,
    SYS_kill,
    // Identity and time.
    SYS_getpid,
    SYS_gettid,
    SYS_getuid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getegid,
    SYS_getrandom,
    SYS_clock_gettime,
    SYS_clock_getres,
    SYS_clock_nanosleep,
    SYS_nanosleep,
    SYS_gettimeofday,
    SYS_uname,
    SYS_prlimit64,
    SYS_getrusage,
    SYS_sysinfo,
    // Descriptors, events.
    SYS_read,
    SYS_readv,
    SYS_pread64,
    SYS_preadv,
    SYS_write,
    SYS_writev,
    SYS_pwrite64,
    SYS_pwritev,
    SYS_close,
    SYS_dup,
    SYS_dup3,
    SYS_fcntl,
    SYS_lseek,
    SYS_pipe2,
    SYS_eventfd2,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_ppoll,
    SYS_pselect6,
    // Files (Landlock decides which).
    SYS_openat,
    SYS_openat2,
    SYS_newfstatat,
    SYS_fstat,
    SYS_statx,
    SYS_fstatfs,
    SYS_statfs,
    SYS_getdents64,
    SYS_getcwd,
    SYS_readlinkat,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_mkdirat,
    SYS_unlinkat,
    SYS_renameat,
    SYS_renameat2,
    SYS_linkat,
    SYS_fsync,
    SYS_fdatasync,
    SYS_ftruncate,
    SYS_fallocate,
    SYS_fadvise64,
    SYS_utimensat,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_sendfile,
    SYS_splice,
    SYS_tee,
    SYS_copy_file_range,
    // Digests kept with files (user.ferry.hash.*), on open descriptors only.
    SYS_fgetxattr,
    SYS_fsetxattr,
    // Sockets (Landlock decides which ports; socket() is checked separately).
    SYS_socketpair,
    SYS_bind,
    SYS_listen,
    SYS_accept4,
    SYS_connect,
    SYS_getsockname,
    SYS_getpeername,
    SYS_setsockopt,
    SYS_getsockopt,
    SYS_sendto,
    SYS_recvfrom,
    SYS_sendmsg,
    SYS_recvmsg,
    SYS_sendmmsg,
    SYS_recvmmsg,
    SYS_shutdown,
);

/// The x86-64 names that other architectures only have in their `*at` or `p*` forms.
#[cfg(target_arch = "x86_64")]
const ALLOWED_LEGACY: &[(&str, libc::c_long)] = allowed!(
    SYS_open,
    SYS_stat,
    SYS_lstat,
    SYS_access,
    SYS_readlink,
    SYS_poll,
    SYS_epoll_wait,
    SYS_dup2,
    SYS_pipe,
    SYS_accept,
    SYS_mkdir,
    SYS_rmdir,
    SYS_unlink,
    SYS_rename,
    SYS_link,
    SYS_time,
    SYS_arch_prctl,
);
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_LEGACY: &[(&str, libc::c_long)] = &[];

fn seccomp() -> Result<usize, SandboxError> {
    let eq = |arg: u8, value: u64| SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, value);
    let masked = |arg: u8, mask: u64, value: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(mask), value)
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED.iter().chain(ALLOWED_LEGACY).map(|&(_, nr)| (nr, Vec::new())).collect();
    // Threads only: no fork. clone3's flags are in memory a filter cannot read, so the first
    // filter below answers it ENOSYS, and glibc falls back to clone, whose flags are checked here.
    // (Where two filters return errors, the later filter's wins: this one allows clone3 so that
    // the first's ENOSYS stands.)
    rules.insert(libc::SYS_clone3, Vec::new());
    let thread = libc::CLONE_THREAD as u64;
    rules.insert(libc::SYS_clone, vec![SeccompRule::new(vec![masked(0, thread, thread)?])?]);
    // No executable memory: nothing in the server generates code.
    let exec = libc::PROT_EXEC as u64;
    rules.insert(libc::SYS_mmap, vec![SeccompRule::new(vec![masked(2, exec, 0)?])?]);
    rules.insert(libc::SYS_mprotect, vec![SeccompRule::new(vec![masked(2, exec, 0)?])?]);
    // IP and TCP, Unix sockets and netlink (the resolver asks which addresses are configured).
    let domains = [libc::AF_INET, libc::AF_INET6, libc::AF_UNIX, libc::AF_NETLINK];
    let socket = domains.iter().map(|&d| SeccompRule::new(vec![eq(0, d as u64)?])).collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_socket, socket);
    // Non-blocking mode, readable bytes, close-on-exec, the terminal check of the log writer.
    let requests = [libc::FIONBIO, libc::FIONREAD, libc::FIOCLEX, libc::FIONCLEX, libc::TCGETS, libc::TIOCGWINSZ];
    #[allow(clippy::unnecessary_cast, reason = "the request type is u64 with glibc, i32 with musl")]
    let ioctl = requests.iter().map(|&r| SeccompRule::new(vec![eq(1, r as u64)?])).collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl);
    // Thread names, and the names malloc gives its mappings.
    const PR_SET_VMA: u64 = 0x5356_4d41;
    let prctl = [libc::PR_SET_NAME as u64, libc::PR_GET_NAME as u64, PR_SET_VMA]
        .iter()
        .map(|&o| SeccompRule::new(vec![eq(0, o)?]))
        .collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_prctl, prctl);
    let count = rules.len();
    let arch = seccompiler::TargetArch::try_from(std::env::consts::ARCH)?;
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let allow_list = SeccompFilter::new(rules, eperm, SeccompAction::Allow, arch)?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    for filter in [clone3, allow_list] {
        let program: seccompiler::BpfProgram = filter.try_into()?;
        seccompiler::apply_filter_all_threads(&program)?;
    }
    Ok(count)
}

/// Switches to `user` (from `run_as`): its group, no supplementary groups, its user id, for good.
/// Call it after binding the ports and before [`confine`], from the only thread.
pub fn drop_privileges(user: &str) -> Result<(), SandboxError> {
    use nix::unistd::{setgid, setgroups, setuid, Uid, User};
    let fail = |reason: String| SandboxError::RunAs { user: user.to_owned(), reason };
    let account = User::from_name(user)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("no such user (create it, e.g. `useradd --system ferry`)".to_owned()))?;
    if !Uid::effective().is_root() {
        if Uid::effective() == account.uid {
            return Ok(());
        }
        return Err(fail("switching users needs root; start as root or leave run_as out".to_owned()));
    }
    setgroups(&[]).map_err(|e| fail(format!("setgroups: {e}")))?;
    setgid(account.gid).map_err(|e| fail(format!("setgid: {e}")))?;
    setuid(account.uid).map_err(|e| fail(format!("setuid: {e}")))?;
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err(fail("root could be regained after setuid".to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_ports() {
        assert_eq!(url_port(None), 443..=443);
        assert_eq!(url_port(Some("http://127.0.0.1:3900")), 3900..=3900);
        assert_eq!(url_port(Some("http://minio.local/")), 80..=80);
        assert_eq!(url_port(Some("https://s3.example.com")), 443..=443);
        assert_eq!(url_port(Some("http://[::1]:9000/bucket")), 9000..=9000);
        assert_eq!(url_port(Some("https://[::1]")), 443..=443);
    }

    #[test]
    fn the_plan_follows_the_configuration() {
        let mut config = Config::default();
        config.passive.ports = Some(crate::config::PortRange { low: 50000, high: 50010 });
        let roots = [PathBuf::from("/srv/b"), PathBuf::from("/srv/a"), PathBuf::from("/srv/a")];
        let plan = Plan::new(&config, &roots, &[PathBuf::from("/etc/ferry/users.toml")]);
        assert_eq!(plan.writable, [PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]);
        assert!(plan.readable.contains(&PathBuf::from("/etc/ferry")));
        assert!(plan.bind.contains(&(50000..=50010)) && plan.bind.contains(&(0..=0)));
        assert_eq!(plan.connect, [1024..=u16::MAX]);

        config.storage.kind = StorageKind::S3;
        config.storage.endpoint = Some("http://127.0.0.1:3900".into());
        let plan = Plan::new(&config, &roots, &[]);
        assert!(plan.writable.is_empty(), "S3 storage writes no file");
        assert!(plan.connect.contains(&(3900..=3900)));
        assert!(plan.readable.contains(&PathBuf::from("/etc/resolv.conf")));
    }

    #[test]
    fn the_report_names_every_rule() {
        let plan = Plan {
            writable: vec![PathBuf::from("/srv/ftp")],
            readable: vec![PathBuf::from("/etc/ferry")],
            bind: vec![0..=0, 50000..=50010],
            connect: vec![1024..=65535],
        };
        let text = Report { landlock: Enforced::Fully, plan, syscalls: 120 }.to_string();
        assert_eq!(
            text,
            "Landlock fully enforced: read-write beneath /srv/ftp; read-only /etc/ferry; bind TCP ports 0, \
             50000-50010; connect to TCP ports 1024-65535; seccomp allow-list of 120 system calls; no new privileges"
        );
    }
}
