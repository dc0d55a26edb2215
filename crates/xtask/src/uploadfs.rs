//! A fresh filesystem for the uploads of each benchmark invocation.
//!
//! Small-file STOR rates on a long-lived ext4 filesystem depend more on its history than on the
//! server: after files were deleted in the last few minutes, ext4's inode allocator scans past
//! recently freed inodes (`recently_deleted()`), and how much it scans depends on which block
//! group each server's upload directory landed in (docs/performance.md, problem 2). So, when run
//! as root, the benchmark makes a new ext4 filesystem in an image file next to its data, mounts
//! it (loop device) on the data directory's `upload/`, and every server's uploads start from the
//! same, empty allocator state. It is unmounted and the image removed at exit, however the
//! benchmark ends. Without root, or where loop devices are missing, the uploads stay on the
//! shared filesystem and the benchmark says so.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Makes and mounts the filesystem on `upload` (an empty directory); `size` bytes, sparse.
/// Returns a description for the report.
pub fn mount_fresh(upload: &Path, bench_dir: &Path, size: u64) -> Result<String> {
    let upload = upload.canonicalize()?;
    if mounted(&upload) {
        // Left over from a benchmark that was killed with SIGKILL.
        run(Command::new("umount").arg("-l").arg(&upload))?;
    }
    let image = bench_dir.join("upload-fs.img");
    let _ = std::fs::remove_file(&image);
    std::fs::File::create(&image)?.set_len(size)?;
    crate::cleanup::unmount_on_exit(upload.clone(), image.clone());
    // Inode tables and journal written now, not by a background thread during the run.
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0", "-N", "262144"])
        .args(["-E", "lazy_itable_init=0,lazy_journal_init=0"])
        .arg(&image))?;
    run(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&upload))?;
    // Direct I/O between the loop device and its image: otherwise every page written is cached
    // twice and copied once more by a kernel worker, which competes with the server for the CPU.
    let dio = match mount_source(&upload) {
        Some(dev) if dev.starts_with("/dev/loop") => {
            run(Command::new("losetup").arg("--direct-io=on").arg(&dev)).is_ok()
        }
        _ => false,
    };
    Ok(format!(
        "fresh ext4 ({} GiB image, loop device{}) mounted on {}",
        size >> 30,
        if dio { ", direct I/O" } else { ", buffered: direct I/O refused" },
        upload.display()
    ))
}

/// Unmounts `mountpoint` and removes `image` (at exit).
pub fn unmount(mountpoint: &Path, image: &Path) {
    if mounted(mountpoint) {
        let _ = Command::new("umount").arg(mountpoint).status();
        if mounted(mountpoint) {
            let _ = Command::new("umount").arg("-l").arg(mountpoint).status();
        }
    }
    let _ = std::fs::remove_file(image);
}

/// What is mounted on `p` (the last mount there), from /proc/self/mounts.
fn mount_source(p: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().rev().find_map(|l| {
        let mut f = l.split_whitespace();
        let (dev, mp) = (f.next()?, f.next()?);
        (Path::new(mp) == p).then(|| dev.to_string())
    })
}

fn mounted(p: &Path) -> bool {
    mount_source(p).is_some()
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
