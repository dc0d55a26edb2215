//! Hooks: on a completed upload, a deletion, a rename or a login, run a command or POST a webhook.
//! An event sink like the logs, but asynchronous: each hook has a bounded queue and a worker, so
//! a slow or dead receiver never holds up a session (when its queue is full, the event is dropped
//! and the drop logged).
//!
//! - **Commands** run through `ferry hook-runner`, a helper process the server starts before it
//!   confines itself (the sandbox refuses `execve` to the server itself). The server writes one
//!   JSON request per line to the runner's stdin; the runner runs `sh -c COMMAND` with the event
//!   in `FERRY_*` variables, one at a time, for at most `timeout_secs`.
//! - **Webhooks** are POSTed as JSON with `X-Ferry-Signature: sha256=HEX`, the HMAC-SHA256 of the
//!   body under the secret in `secret_file`; a failure (no answer, or not 2xx) is retried
//!   `retries` times with doubling pauses from 1 s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::events::{Direction, Event, FsOp};

/// Events in a hook's queue at most; beyond, new ones are dropped.
const QUEUE: usize = 1024;

/// What a hook reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HookEvent {
    /// An upload completed (226), under its final name.
    Upload,
    /// DELE.
    Delete,
    /// RNFR + RNTO.
    Rename,
    /// A successful login.
    Login,
}

/// One `[[hooks]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// The events it runs on.
    pub events: Vec<HookEvent>,
    /// A shell command (`sh -c`), with the event in `FERRY_*` variables.
    #[serde(default)]
    pub command: Option<String>,
    /// A URL to POST the event to, as JSON.
    #[serde(default)]
    pub url: Option<String>,
    /// The file holding the webhook's HMAC secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Retries of a failed webhook.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Longest a command may run, or a webhook wait for its answer.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_retries() -> u32 {
    3
}

fn default_timeout() -> u64 {
    30
}

/// The event as hooks see it: the webhook's JSON body, the command's `FERRY_*` variables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Payload {
    /// `upload`, `delete`, `rename`, `login`.
    pub event: HookEvent,
    /// The user.
    pub user: String,
    /// The client's address.
    pub ip: String,
    /// The path in the user's view (uploads, deletions; a rename's new name).
    pub path: Option<String>,
    /// A rename's old name.
    pub from: Option<String>,
    /// The user's root on the server's filesystem (local storage), to find the file.
    pub root: Option<String>,
    /// Bytes uploaded, or the deleted file's size.
    pub bytes: Option<u64>,
}

impl Payload {
    /// The payload of `event`, when it is one hooks see; `local`: the storage is the local
    /// filesystem (the root is given only then).
    pub fn of(event: &Event<'_>, local: bool) -> Option<Self> {
        let (who, event, path, from, bytes) = match event {
            Event::Transfer(who, t) if t.direction == Direction::Upload && t.error.is_none() => {
                (who, HookEvent::Upload, Some(t.path), None, Some(t.bytes))
            }
            Event::Fs(who, FsOp::Delete(p, size)) => (who, HookEvent::Delete, Some(*p), None, Some(*size)),
            Event::Fs(who, FsOp::Rename(from, to)) => (who, HookEvent::Rename, Some(*to), Some(*from), None),
            Event::LoginOk(who) => (who, HookEvent::Login, None, None, None),
            _ => return None,
        };
        Some(Payload {
            event,
            user: who.user.unwrap_or_default().to_owned(),
            ip: who.ip.to_canonical().to_string(),
            path: path.map(str::to_owned),
            from: from.map(str::to_owned),
            root: who.root.filter(|_| local).map(|r| r.display().to_string()),
            bytes,
        })
    }

    /// The `FERRY_*` environment of a command hook.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let event = match self.event {
            HookEvent::Upload => "upload",
            HookEvent::Delete => "delete",
            HookEvent::Rename => "rename",
            HookEvent::Login => "login",
        };
        env.insert("FERRY_EVENT".into(), event.into());
        env.insert("FERRY_USER".into(), self.user.clone());
        env.insert("FERRY_IP".into(), self.ip.clone());
        for (key, value) in [("FERRY_PATH", &self.path), ("FERRY_FROM", &self.from), ("FERRY_ROOT", &self.root)] {
            if let Some(v) = value {
                env.insert(key.into(), v.clone());
            }
        }
        if let (Some(root), Some(path)) = (&self.root, &self.path) {
            env.insert("FERRY_LOCAL_PATH".into(), format!("{}{path}", root.trim_end_matches('/')));
        }
        if let Some(b) = self.bytes {
            env.insert("FERRY_BYTES".into(), b.to_string());
        }
        env
    }
}

/// A request to the runner: one line of JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunRequest {
    /// `sh -c` this.
    pub command: String,
    /// With these variables.
    pub env: BTreeMap<String, String>,
    /// For at most this long.
    pub timeout_secs: u64,
}

/// Where a hook's events go.
#[derive(Debug)]
enum Target {
    /// Lines to the runner's stdin.
    Command(String),
    /// POSTs.
    Webhook { url: String, secret: Option<Vec<u8>>, retries: u32 },
}

/// One configured hook: its events, its queue.
#[derive(Debug)]
struct Hook {
    events: Vec<HookEvent>,
    queue: mpsc::Sender<Payload>,
    /// A drop was logged; quiet until the queue has room again.
    dropping: AtomicBool,
}

/// The hooks sink.
#[derive(Debug, Default)]
pub struct Hooks {
    hooks: Vec<Hook>,
    /// Local storage: payloads carry the user's root.
    local: bool,
}

/// The runner process's stdin, handed over by the program that started it.
pub type RunnerInput = std::process::ChildStdin;

impl Hooks {
    /// Starts a worker per hook (call inside the runtime). `runner`: the hook runner's stdin, needed
    /// when any hook has a command.
    pub fn start(configs: &[HookConfig], runner: Option<RunnerInput>, local: bool) -> std::io::Result<Self> {
        let runner = runner.map(|stdin| {
            let (tx, rx) = mpsc::channel::<String>(QUEUE);
            tokio::spawn(feed_runner(stdin, rx));
            tx
        });
        let mut hooks = Vec::new();
        for config in configs {
            let target = match (&config.command, &config.url) {
                (Some(c), None) => Target::Command(c.clone()),
                (None, Some(u)) => {
                    let secret = config
                        .secret_file
                        .as_ref()
                        .map(|f| {
                            std::fs::read(f).map(|s| s.trim_ascii().to_vec()).map_err(|e| {
                                std::io::Error::new(e.kind(), format!("hook secret_file {}: {e}", f.display()))
                            })
                        })
                        .transpose()?;
                    Target::Webhook { url: u.clone(), secret, retries: config.retries }
                }
                _ => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "each [[hooks]] entry needs exactly one of command and url",
                    ))
                }
            };
            let (tx, rx) = mpsc::channel(QUEUE);
            let timeout = Duration::from_secs(config.timeout_secs.max(1));
            match target {
                Target::Command(command) => {
                    let Some(runner) = runner.clone() else {
                        return Err(std::io::Error::other("command hooks need the hook runner"));
                    };
                    tokio::spawn(command_worker(rx, command, timeout, runner));
                }
                Target::Webhook { url, secret, retries } => {
                    tokio::spawn(webhook_worker(rx, url, secret, retries, timeout));
                }
            }
            hooks.push(Hook { events: config.events.clone(), queue: tx, dropping: AtomicBool::new(false) });
        }
        Ok(Self { hooks, local })
    }

    /// Queues `event` for every hook that wants it; never waits.
    pub fn record(&self, event: &Event<'_>) {
        if self.hooks.is_empty() {
            return;
        }
        let Some(payload) = Payload::of(event, self.local) else { return };
        for hook in self.hooks.iter().filter(|h| h.events.contains(&payload.event)) {
            match hook.queue.try_send(payload.clone()) {
                Ok(()) => hook.dropping.store(false, Ordering::Relaxed),
                Err(_) => {
                    if !hook.dropping.swap(true, Ordering::Relaxed) {
                        tracing::warn!(event = ?payload.event, "a hook's queue is full: events dropped until it drains");
                    }
                }
            }
        }
    }
}

/// Writes requests to the runner, one line each.
async fn feed_runner(stdin: RunnerInput, mut rx: mpsc::Receiver<String>) {
    use tokio::io::AsyncWriteExt as _;
    let Ok(mut stdin) = tokio::process::ChildStdin::from_std(stdin) else {
        tracing::error!("the hook runner's input cannot be used; command hooks are off");
        return;
    };
    while let Some(line) = rx.recv().await {
        if let Err(e) = stdin.write_all(line.as_bytes()).await {
            tracing::error!(error = %e, "the hook runner is gone; command hooks are off");
            return;
        }
    }
}

async fn command_worker(
    mut rx: mpsc::Receiver<Payload>,
    command: String,
    timeout: Duration,
    runner: mpsc::Sender<String>,
) {
    while let Some(payload) = rx.recv().await {
        let request = RunRequest { command: command.clone(), env: payload.env(), timeout_secs: timeout.as_secs() };
        let mut line = serde_json::to_string(&request).unwrap_or_default();
        line.push('\n');
        if runner.send(line).await.is_err() {
            return;
        }
    }
}

/// `sha256=HEX` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

async fn webhook_worker(
    mut rx: mpsc::Receiver<Payload>,
    url: String,
    secret: Option<Vec<u8>>,
    retries: u32,
    timeout: Duration,
) {
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%url, error = %e, "webhook client; this hook is off");
            return;
        }
    };
    while let Some(payload) = rx.recv().await {
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let mut pause = Duration::from_secs(1);
        for attempt in 0..=retries {
            let mut request = client.post(&url).header("content-type", "application/json").body(body.clone());
            if let Some(secret) = &secret {
                request = request.header("x-ferry-signature", signature(secret, &body));
            }
            let error = match request.send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => format!("answered {}", r.status()),
                Err(e) => e.to_string(),
            };
            if attempt == retries {
                tracing::warn!(%url, event = ?payload.event, error, "webhook failed; giving up on this event");
            } else {
                tracing::debug!(%url, attempt, error, "webhook failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
}

/// The hook runner (`ferry hook-runner`): reads [`RunRequest`]s from stdin, one per line, and
/// runs each with `sh -c`, one at a time; ends when stdin closes (the server is gone).
pub fn run_runner() -> std::io::Result<()> {
    use std::io::BufRead as _;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let Ok(request) = serde_json::from_str::<RunRequest>(&line) else {
            eprintln!("ferry hook-runner: not a request: {line}");
            continue;
        };
        let child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&request.command)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(&request.env)
            .stdin(std::process::Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ferry hook-runner: cannot run the hook: {e}");
                continue;
            }
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(request.timeout_secs.max(1));
        loop {
            match child.try_wait()? {
                Some(status) if !status.success() => {
                    eprintln!(
                        "ferry hook-runner: hook for {} exited with {status}",
                        request.env.get("FERRY_EVENT").map_or("?", String::as_str)
                    );
                    break;
                }
                Some(_) => break,
                None if std::time::Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    eprintln!("ferry hook-runner: hook killed after {} s", request.timeout_secs);
                    break;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn payloads_and_their_environment() {
        let root = std::path::Path::new("/srv/ftp/alice");
        let who = crate::events::Who {
            id: 1,
            ip: "::ffff:192.0.2.9".parse().unwrap(),
            user: Some("alice"),
            anonymous: false,
            root: Some(root),
        };
        let p = Payload::of(&Event::Fs(who, FsOp::Rename("/a.txt", "/b.txt")), true).unwrap();
        assert_eq!(
            (p.event, p.path.as_deref(), p.from.as_deref(), p.ip.as_str()),
            (HookEvent::Rename, Some("/b.txt"), Some("/a.txt"), "192.0.2.9")
        );
        let env = p.env();
        assert_eq!(env["FERRY_EVENT"], "rename");
        assert_eq!(env["FERRY_LOCAL_PATH"], "/srv/ftp/alice/b.txt");
        assert!(Payload::of(&Event::Fs(who, FsOp::Mkdir("/d")), true).is_none());
        assert!(Payload::of(&Event::LoginOk(who), false).unwrap().root.is_none(), "no root on S3");
    }
}
