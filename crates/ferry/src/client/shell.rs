//! `ferry shell`: an interactive session like the classic `ftp` program, with line editing,
//! history and remote path completion.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _, Result};
use ferry_client::client::StoreHow;
use ferry_client::{Client, FtpUrl};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::{Editor, Helper, Highlighter, Hinter, Validator};
use tokio::io::AsyncWriteExt;

use super::Ctx;

const HELP: &str = "\
commands:
  ls [path]            list (long format)        cd path        change remote directory
  pwd                  remote directory          lcd path       change local directory
  get remote [local]   download                  put local [remote]   upload
  mget pattern...      download matching files   mput pattern...      upload matching local files
  mkdir path  rmdir path  rm path  mv from to    ascii | binary       transfer type
  help                 this text                 bye | quit | exit    leave";

/// Completes remote names from the current directory's listing.
#[derive(Helper, Highlighter, Hinter, Validator)]
struct Names {
    names: Arc<Mutex<Vec<String>>>,
}

impl Completer for Names {
    type Candidate = Pair;
    fn complete(&self, line: &str, pos: usize, _: &rustyline::Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos].rfind(' ').map(|i| i + 1).unwrap_or(0);
        let word = &line[start..pos];
        if start == 0 {
            let cmds = [
                "ls", "cd", "pwd", "lcd", "get", "put", "mget", "mput", "mkdir", "rmdir", "rm", "mv", "ascii",
                "binary", "help", "bye",
            ];
            let v = cmds
                .iter()
                .filter(|c| c.starts_with(word))
                .map(|c| Pair { display: c.to_string(), replacement: format!("{c} ") })
                .collect();
            return Ok((0, v));
        }
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let v = names
            .into_iter()
            .filter(|n| n.starts_with(word))
            .map(|n| Pair { display: n.clone(), replacement: n })
            .collect();
        Ok((start, v))
    }
}

/// Splits a line into words; double quotes group words with spaces.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Runs the shell until `bye` or end of input.
pub fn run(ctx: &Ctx, rt: &tokio::runtime::Runtime, url: &FtpUrl) -> Result<()> {
    let mut client = rt.block_on(ctx.connect(url))?;
    if url.path != "/" {
        rt.block_on(client.cwd(&url.path))?;
    }
    let names = Arc::new(Mutex::new(Vec::new()));
    let mut ed: Editor<Names, rustyline::history::DefaultHistory> = Editor::new()?;
    ed.set_helper(Some(Names { names: names.clone() }));
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ferry_history"));
    if let Some(h) = &history {
        let _ = ed.load_history(h);
    }
    println!("connected to {}; type help for commands", url.authority());
    loop {
        if let Ok(list) = rt.block_on(client.nlst(None)) {
            if let Ok(mut n) = names.lock() {
                *n = list.into_iter().map(|p| p.rsplit('/').next().unwrap_or(&p).to_string()).collect();
            }
        }
        let line = match ed.readline("ferry> ") {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let w = words(&line);
        if w.is_empty() {
            continue;
        }
        let _ = ed.add_history_entry(line.as_str());
        if matches!(w[0].as_str(), "bye" | "quit" | "exit") {
            break;
        }
        if let Err(e) = rt.block_on(command(ctx, &mut client, &w)) {
            eprintln!("error: {e:#}");
        }
    }
    if let Some(h) = &history {
        let _ = ed.save_history(h);
    }
    rt.block_on(client.quit());
    Ok(())
}

async fn command(ctx: &Ctx, c: &mut Client, w: &[String]) -> Result<()> {
    let arg = |i: usize| -> Result<&str> {
        w.get(i).map(String::as_str).ok_or_else(|| anyhow::anyhow!("{}: missing argument (see help)", w[0]))
    };
    match w[0].as_str() {
        "help" | "?" => println!("{HELP}"),
        "ls" | "dir" => {
            let path = w.get(1).cloned().unwrap_or_else(|| ".".into());
            let mut list = c.list(&path).await?;
            list.sort_by(|a, b| a.name.cmp(&b.name));
            for e in list {
                println!("{}", super::files::long_line(&e));
            }
        }
        "cd" => c.cwd(arg(1)?).await?,
        "pwd" => println!("{}", c.pwd().await?),
        "lcd" => {
            let dir = arg(1)?;
            std::env::set_current_dir(dir).with_context(|| format!("lcd {dir}"))?;
            println!("local directory: {}", std::env::current_dir()?.display());
        }
        "lpwd" => println!("{}", std::env::current_dir()?.display()),
        "get" => {
            let remote = arg(1)?;
            let local = w.get(2).cloned().unwrap_or_else(|| remote.rsplit('/').next().unwrap_or(remote).to_string());
            get(ctx, c, remote, Path::new(&local)).await?;
        }
        "put" => {
            let local = arg(1)?;
            let remote = w.get(2).cloned().unwrap_or_else(|| {
                Path::new(local).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            });
            put(ctx, c, Path::new(local), &remote).await?;
        }
        "mget" => {
            let names = c.nlst(None).await?;
            for pattern in &w[1..] {
                for n in names.iter().filter(|n| ferry_proto::path::glob_match(pattern, n)) {
                    get(ctx, c, n, Path::new(n)).await?;
                }
            }
        }
        "mput" => {
            for pattern in &w[1..] {
                let mut matched: Vec<String> = std::fs::read_dir(".")
                    .with_context(|| format!("reading the local directory {}", local_dir()))?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| ferry_proto::path::glob_match(pattern, n))
                    .collect();
                matched.sort();
                for n in matched {
                    put(ctx, c, Path::new(&n), &n).await?;
                }
            }
        }
        "mkdir" => c.mkdir(arg(1)?).await?,
        "rmdir" => c.rmdir(arg(1)?).await?,
        "rm" | "delete" => c.delete(arg(1)?).await?,
        "mv" | "rename" => c.rename(arg(1)?, arg(2)?).await?,
        "ascii" => c.set_ascii(true).await?,
        "binary" | "bin" => c.set_ascii(false).await?,
        other => bail!("unknown command {other:?}; type help"),
    }
    Ok(())
}

/// The local working directory, for messages.
fn local_dir() -> String {
    std::env::current_dir().map_or_else(|_| ".".into(), |d| d.display().to_string())
}

async fn get(ctx: &Ctx, c: &mut Client, remote: &str, local: &Path) -> Result<()> {
    let size = c.size(remote).await?;
    // Into NAME.ferry-part, renamed over NAME only when complete: a missing remote file or a cut
    // connection never empties the local file.
    let part = super::files::part_path(local);
    let mut f = tokio::fs::File::create(&part).await.with_context(|| format!("creating {}", part.display()))?;
    let bar = ctx.bar(size, remote);
    let got = c.retr(remote, 0, &mut f, &mut |k| bar.inc(k)).await;
    bar.finish_and_clear();
    let n = match got {
        Ok(n) => n,
        Err(e) => {
            drop(f);
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e.into());
        }
    };
    f.flush().await?;
    drop(f);
    tokio::fs::rename(&part, local)
        .await
        .with_context(|| format!("renaming {} to {}", part.display(), local.display()))?;
    println!("{remote} -> {} ({n} bytes)", local.display());
    Ok(())
}

async fn put(ctx: &Ctx, c: &mut Client, local: &Path, remote: &str) -> Result<()> {
    let len = std::fs::metadata(local).with_context(|| format!("{}", local.display()))?.len();
    let mut f = tokio::fs::File::open(local).await.with_context(|| format!("opening {}", local.display()))?;
    let bar = ctx.bar(Some(len), remote);
    let n = c.stor(remote, StoreHow::Replace, &mut f, &mut |k| bar.inc(k)).await?;
    bar.finish_and_clear();
    println!("{} -> {remote} ({n} bytes)", local.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_with_quotes() {
        assert_eq!(super::words("get \"a b.txt\" out"), vec!["get", "a b.txt", "out"]);
        assert_eq!(super::words("  ls  "), vec!["ls"]);
        assert_eq!(super::words("put \"\""), vec!["put", ""]);
    }
}
