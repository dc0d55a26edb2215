//! The data directory every server serves (the same directory for all of them, so the page cache
//! holds one copy): made once per size profile and reused while its parameters match.
//!
//! ```text
//! big.bin          the RETR / TCP-limit / client-get file (1 GiB)
//! mid.bin          the file 50 concurrent clients download (20 MiB)
//! small/f0000..    4 KiB files downloaded one after another on one control connection
//! list/e00000..    the directory listed by LIST, NLST and MLSD (10,000 empty files)
//! tree/d00/f000..  the tree mirrored by `ferry mirror` and `lftp mirror` (2000 files, 1-8 KiB)
//! upload/NAME/     each server's upload directory, owned by the peers' session user
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// How big everything is.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub big: u64,
    pub mid: u64,
    pub concurrent: usize,
    pub small_files: usize,
    pub small_size: usize,
    pub list_entries: usize,
    pub tree_files: usize,
    pub connects: usize,
    pub idle_sessions: usize,
    pub hold_sessions: usize,
    pub logins: LoginSizes,
    pub busy: BusySizes,
}

/// The busy-sessions workload: sessions each downloading and uploading small files at once.
#[derive(Debug, Clone, Copy)]
pub struct BusySizes {
    /// Sessions logged in and working at once.
    pub sessions: usize,
    /// How long they work, seconds.
    pub secs: u64,
}

/// The login workload: first logins of distinct accounts, then a burst of wrong passwords.
#[derive(Debug, Clone, Copy)]
pub struct LoginSizes {
    /// Accounts logging in once each (at most `servers::LOGIN_USERS`).
    pub distinct: usize,
    /// Wrong passwords in the burst.
    pub failed: usize,
}

impl Sizes {
    /// The sizes the issue names.
    pub const FULL: Sizes = Sizes {
        big: 1 << 30,
        mid: 20 << 20,
        concurrent: 50,
        small_files: 1000,
        small_size: 4096,
        list_entries: 10_000,
        tree_files: 2000,
        connects: 500,
        idle_sessions: 1000,
        hold_sessions: 10_000,
        logins: LoginSizes { distinct: 1000, failed: 10_000 },
        busy: BusySizes { sessions: 2000, secs: 60 },
    };

    /// Tiny sizes for the smoke run (`--quick`).
    pub const QUICK: Sizes = Sizes {
        big: 32 << 20,
        mid: 2 << 20,
        concurrent: 8,
        small_files: 50,
        small_size: 4096,
        list_entries: 1000,
        tree_files: 100,
        connects: 30,
        idle_sessions: 50,
        hold_sessions: 200,
        logins: LoginSizes { distinct: 40, failed: 200 },
        busy: BusySizes { sessions: 50, secs: 3 },
    };

    /// What the data set depends on (not the session counts).
    fn signature(&self) -> String {
        format!(
            "big {} mid {} small {}x{} list {} tree {}\nformat 1\n",
            self.big, self.mid, self.small_files, self.small_size, self.list_entries, self.tree_files
        )
    }
}

/// A deterministic byte stream (xorshift64*), so data is not trivially compressible.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise(seed | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn write_file(path: &Path, len: u64, seed: u64) -> Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut noise = Noise::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        noise.fill(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

/// Makes (or reuses) the data directory for `sizes` under `base`; returns its path.
pub fn prepare(base: &Path, sizes: &Sizes) -> Result<PathBuf> {
    let root = base.join(if sizes.big >= 1 << 30 { "data-full" } else { "data-quick" });
    let marker = root.join(".complete");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(sizes.signature().as_str()) {
        return Ok(root);
    }
    eprintln!("bench: creating the data set in {} ...", root.display());
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    std::fs::create_dir_all(&root)?;
    write_file(&root.join("big.bin"), sizes.big, 1)?;
    write_file(&root.join("mid.bin"), sizes.mid, 2)?;
    let small = root.join("small");
    std::fs::create_dir(&small)?;
    for i in 0..sizes.small_files {
        write_file(&small.join(format!("f{i:04}")), sizes.small_size as u64, 1000 + i as u64)?;
    }
    let list = root.join("list");
    std::fs::create_dir(&list)?;
    for i in 0..sizes.list_entries {
        std::fs::File::create(list.join(format!("e{i:05}")))?;
    }
    let tree = root.join("tree");
    std::fs::create_dir(&tree)?;
    let per_dir = 100;
    for i in 0..sizes.tree_files {
        let d = tree.join(format!("d{:02}", i / per_dir));
        if i % per_dir == 0 {
            std::fs::create_dir(&d)?;
        }
        let len = 1024 + (i as u64 * 2654435761) % 7168;
        write_file(&d.join(format!("f{:03}", i % per_dir)), len, 100_000 + i as u64)?;
    }
    std::fs::create_dir(root.join("upload"))?;
    std::fs::write(&marker, sizes.signature())?;
    Ok(root)
}

/// Reads a file once so that every server finds it in the page cache.
pub fn warm(path: &Path) -> Result<()> {
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut std::io::sink())?;
    Ok(())
}
