//! What the benchmark reads from `/proc`: a server's process tree, its CPU time and memory, and
//! the CPU time of the load generator (this process) and of the client programs it waits for.

use std::time::Duration;

use rustix::time::{clock_gettime, ClockId};

/// Clock ticks per second of the `/proc/*/stat` CPU fields (`CLK_TCK`, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU time of this whole process (all threads): the load generator's cost.
pub fn self_cpu() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The fields of `/proc/PID/stat` after the command name (field 3, the state, is index 0).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect())
}

/// The parent of `pid`.
fn ppid(pid: u32) -> Option<u32> {
    stat_fields(pid)?.first().map(|&p| p as u32)
}

/// CPU seconds (user + system) of the children this process has waited for: the client programs
/// (curl, lftp, `ferry get`) the benchmark ran. Tick resolution (10 ms).
pub fn waited_children_cpu() -> f64 {
    // After the state: ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
    // stime cutime cstime, so utime is index 10, stime 11, cutime 12, cstime 13.
    stat_fields(std::process::id()).map(|f| (f[12] + f[13]) as f64 / TICKS).unwrap_or(0.0)
}

/// Every process in the tree rooted at `root`, `root` first.
pub fn tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if let Some(pp) = ppid(pid) {
                    parents.push((pid, pp));
                }
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// CPU seconds of a server: the CPU time of every live process of its tree, plus what its
/// processes' exited (and reaped) children used.
///
/// `/proc/PID/stat` counts in 10 ms ticks, truncated per process, so 50 session processes that
/// each used 5 ms would add up to nothing; the per-thread `schedstat` run times (nanoseconds) are
/// used instead where they are larger (they miss threads that already exited, which the ticks
/// include). Reaped children count in ticks.
pub fn tree_cpu(root: u32) -> f64 {
    tree(root)
        .into_iter()
        .filter_map(|pid| {
            let f = stat_fields(pid)?;
            let ticks = (f[10] + f[11]) as f64 / TICKS;
            let children = (f[12] + f[13]) as f64 / TICKS;
            Some(ticks.max(run_time(pid)) + children)
        })
        .sum()
}

/// Seconds on CPU of the live threads of `pid` (first field of each `/proc/PID/task/*/schedstat`).
fn run_time(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        .sum();
    ns as f64 / 1e9
}

/// Memory of a process tree, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Resident set size, summed (pages shared between processes count once per process).
    pub rss_kib: u64,
    /// Proportional set size, summed (shared pages divided among their users); 0 when
    /// `/proc/PID/smaps_rollup` cannot be read.
    pub pss_kib: u64,
    /// Processes counted.
    pub processes: usize,
}

/// RSS and PSS summed over the tree rooted at `root`.
pub fn tree_memory(root: u32) -> Memory {
    let mut m = Memory::default();
    for pid in tree(root) {
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            // No smaps_rollup (older kernel, or not allowed): RSS from status.
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                m.rss_kib += field_kib(&status, "VmRSS:");
                m.processes += 1;
            }
            continue;
        };
        m.rss_kib += field_kib(&rollup, "Rss:");
        m.pss_kib += field_kib(&rollup, "Pss:");
        m.processes += 1;
    }
    m
}

fn field_kib(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The soft limit on open files of `pid` (from `/proc/PID/limits`).
pub fn open_files_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Open file descriptors summed over the tree rooted at `root`.
pub fn tree_fds(root: u32) -> usize {
    tree(root).into_iter().filter_map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok()).map(|d| d.count()).sum()
}
