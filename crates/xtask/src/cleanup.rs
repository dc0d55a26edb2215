//! Every process the benchmark starts is registered here, in its own process group, so that it can
//! be stopped by its own PID whatever happens: at the end, on an error (the owners' `Drop`), and on
//! SIGINT/SIGTERM/SIGHUP (a watcher thread kills what is registered, then exits).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, kill_process_group, Pid, Signal};

use crate::procstat;

/// PIDs of the process-group leaders we started and have not reaped yet.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Scratch directories to remove on exit.
static SCRATCH: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

/// Filesystems to unmount on exit: (mount point, image file).
static MOUNTS: Mutex<Vec<(std::path::PathBuf, std::path::PathBuf)>> = Mutex::new(Vec::new());

/// Unmounts `mountpoint` and removes `image` when the benchmark ends, however it ends.
pub fn unmount_on_exit(mountpoint: std::path::PathBuf, image: std::path::PathBuf) {
    MOUNTS.lock().unwrap_or_else(|p| p.into_inner()).push((mountpoint, image));
}

/// Removes `dir` (recursively) when the benchmark ends, however it ends.
pub fn remove_on_exit(dir: std::path::PathBuf) {
    SCRATCH.lock().unwrap_or_else(|p| p.into_inner()).push(dir);
}

/// Remembers a started process (the leader of its own process group).
pub fn register(pid: u32) {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
}

/// Forgets a process after it was reaped.
pub fn unregister(pid: u32) {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner()).retain(|&p| p != pid);
}

/// Sends SIGKILL to `pid`'s process group and to every process below it (a session process that
/// left the group would otherwise survive). `pid` must still be ours: running or a zombie not yet
/// reaped, so the number cannot have been reused.
pub fn kill_tree(pid: u32) {
    let tree = procstat::tree(pid);
    if let Some(p) = Pid::from_raw(pid as i32) {
        let _ = kill_process_group(p, Signal::KILL);
    }
    for d in tree {
        if let Some(p) = Pid::from_raw(d as i32) {
            let _ = kill_process(p, Signal::KILL);
        }
    }
}

/// Asks `pid` to stop (SIGTERM), waits up to `grace` for it to exit (without reaping it), then
/// kills whatever is left of its tree.
pub fn terminate(pid: u32, grace: Duration) {
    if let Some(p) = Pid::from_raw(pid as i32) {
        let _ = kill_process(p, Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !exited(pid) {
        std::thread::sleep(Duration::from_millis(10));
    }
    kill_tree(pid);
}

/// Whether `pid` has exited (a zombie, or gone).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rfind(')').and_then(|i| s[i + 1..].split_whitespace().next()).is_none_or(|st| st == "Z"),
        Err(_) => true,
    }
}

/// Kills everything registered, unmounts the upload filesystem and removes the scratch
/// directories (at exit, and on signals).
pub fn kill_all() {
    let pids = RUNNING.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for pid in pids {
        kill_tree(pid);
    }
    for (mountpoint, image) in MOUNTS.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        crate::uploadfs::unmount(&mountpoint, &image);
    }
    for dir in SCRATCH.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Starts the thread that turns SIGINT, SIGTERM and SIGHUP into "kill what we started, exit 130".
pub fn watch_signals() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
            else {
                return;
            };
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
            };
            eprintln!("\nbench: {name}: stopping the servers and exiting");
            kill_all();
            std::process::exit(130);
        });
    })?;
    Ok(())
}
