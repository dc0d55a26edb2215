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
//! - **`upload.verify`** hooks are synchronous: an upload's bytes are complete and durable under a
//!   hidden name ([`crate::storage::Upload::stage`]) when the hook runs, and it decides whether
//!   they are published (226) or moved to `quarantine` (550). A command accepts by exiting 0
//!   (its last line of output is the reason when it does not; the file is also its stdin); a
//!   webhook by answering 2xx (4xx: rejected, its body the reason). No answer in `timeout_secs`,
//!   or a failing webhook, rejects too (451): nothing unverified is published.

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
    /// An upload is complete but not yet published: the hook decides (synchronous).
    #[serde(rename = "upload.verify")]
    UploadVerify,
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
    /// `upload.verify` hooks: the directory rejected uploads are moved to (required for them).
    #[serde(default)]
    pub quarantine: Option<PathBuf>,
}

impl HookConfig {
    /// Whether this is an `upload.verify` hook.
    pub fn verifies(&self) -> bool {
        self.events.contains(&HookEvent::UploadVerify)
    }

    /// What is wrong with this entry, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.command.is_some() == self.url.is_some() {
            return Err("each [[hooks]] entry needs exactly one of command and url".into());
        }
        if self.verifies() {
            if self.events.len() > 1 {
                return Err("a hook with \"upload.verify\" has no other events (it is synchronous)".into());
            }
            if self.quarantine.is_none() {
                return Err("a hook with \"upload.verify\" needs quarantine = DIR for rejected uploads".into());
            }
        }
        Ok(())
    }
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
    /// `upload.verify`: where the bytes are on the server's filesystem (a hidden name until they
    /// are accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
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
            path: path.map(str::to_owned),
            from: from.map(str::to_owned),
            bytes,
            ..Self::new(event, who, local)
        })
    }

    /// The payload of an `upload.verify` hook: the upload of `path` (in the user's view) by
    /// `who`, whose `bytes` are at `local_path`.
    pub fn verify(who: &crate::events::Who<'_>, path: &str, bytes: u64, local_path: &std::path::Path) -> Self {
        Payload {
            path: Some(path.to_owned()),
            bytes: Some(bytes),
            local_path: Some(local_path.display().to_string()),
            ..Self::new(HookEvent::UploadVerify, who, true)
        }
    }

    /// `event` by `who`, nothing else known yet; the root only with `local` storage.
    fn new(event: HookEvent, who: &crate::events::Who<'_>, local: bool) -> Self {
        Payload {
            event,
            user: who.user.unwrap_or_default().to_owned(),
            ip: who.ip.to_canonical().to_string(),
            path: None,
            from: None,
            root: who.root.filter(|_| local).map(|r| r.display().to_string()),
            bytes: None,
            local_path: None,
        }
    }

    /// The `FERRY_*` environment of a command hook.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let event = match self.event {
            HookEvent::Upload => "upload",
            HookEvent::Delete => "delete",
            HookEvent::Rename => "rename",
            HookEvent::Login => "login",
            HookEvent::UploadVerify => "upload.verify",
        };
        env.insert("FERRY_EVENT".into(), event.into());
        env.insert("FERRY_USER".into(), self.user.clone());
        env.insert("FERRY_IP".into(), self.ip.clone());
        for (key, value) in [("FERRY_PATH", &self.path), ("FERRY_FROM", &self.from), ("FERRY_ROOT", &self.root)] {
            if let Some(v) = value {
                env.insert(key.into(), v.clone());
            }
        }
        if let Some(local) = &self.local_path {
            env.insert("FERRY_LOCAL_PATH".into(), local.clone());
        } else if let (Some(root), Some(path)) = (&self.root, &self.path) {
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
    /// A request the server waits for (`upload.verify`): run at once, beside the others, with
    /// `FERRY_LOCAL_PATH` as stdin, and answer with a [`RunReply`] of this id.
    #[serde(default)]
    pub reply_id: Option<u64>,
}

/// The runner's answer to a request with a `reply_id`: one line of JSON on its stdout.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunReply {
    /// The request's `reply_id`.
    pub id: u64,
    /// The exit code; `None` when the command could not run, was killed by a signal, or ran out
    /// of time.
    pub status: Option<i32>,
    /// The last line the command printed (stdout, else stderr), or why it did not run.
    pub said: String,
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
    /// The `upload.verify` hooks, when there are any.
    verifiers: Option<std::sync::Arc<Verifiers>>,
}

/// The runner process's pipes, handed over by the program that started it.
#[derive(Debug)]
pub struct RunnerInput {
    /// Requests go here.
    pub stdin: std::process::ChildStdin,
    /// Replies to requests with a `reply_id` come from here.
    pub stdout: std::process::ChildStdout,
}

/// The way to the hook runner: requests out, replies back to whoever waits for them.
#[derive(Debug)]
struct Runner {
    requests: mpsc::Sender<String>,
    waiting: std::sync::Mutex<std::collections::HashMap<u64, tokio::sync::oneshot::Sender<RunReply>>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Runner {
    /// Runs `request` and waits for its reply (`None`: the runner is gone).
    async fn call(&self, mut request: RunRequest) -> Option<RunReply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        request.reply_id = Some(id);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let mut line = serde_json::to_string(&request).unwrap_or_default();
        line.push('\n');
        if self.requests.send(line).await.is_err() {
            self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            return None;
        }
        rx.await.ok()
    }

    /// Hands each reply to its caller.
    async fn read_replies(self: std::sync::Arc<Self>, stdout: std::process::ChildStdout) {
        use tokio::io::AsyncBufReadExt as _;
        let Ok(stdout) = tokio::process::ChildStdout::from_std(stdout) else { return };
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(reply) = serde_json::from_str::<RunReply>(&line) else { continue };
            if let Some(tx) = self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&reply.id) {
                let _ = tx.send(reply);
            }
        }
        // The runner is gone: whoever waits gets no answer (and rejects).
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// What the `upload.verify` hooks decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every hook accepted: publish.
    Accepted,
    /// A hook rejected the upload: quarantine it in `quarantine`, answer 550 with `reason`.
    Rejected {
        /// Why (the hook's last line of output, or the webhook's answer).
        reason: String,
        /// Where the file goes.
        quarantine: PathBuf,
    },
    /// A hook could not decide (timed out, did not run, the webhook failed): quarantine, 451.
    Undecided {
        /// Why.
        reason: String,
        /// Where the file goes.
        quarantine: PathBuf,
    },
}

/// One `upload.verify` hook.
#[derive(Debug)]
struct Verifier {
    target: VerifyTarget,
    timeout: Duration,
    quarantine: PathBuf,
}

#[derive(Debug)]
enum VerifyTarget {
    Command { command: String, runner: std::sync::Arc<Runner> },
    Webhook { client: reqwest::Client, url: String, secret: Option<Vec<u8>> },
}

/// The `upload.verify` hooks, asked in order; the first that does not accept decides.
#[derive(Debug)]
pub struct Verifiers(Vec<Verifier>);

impl Verifiers {
    /// Asks every hook about the upload in `payload`.
    pub async fn check(&self, payload: &Payload) -> Verdict {
        for v in &self.0 {
            let quarantine = v.quarantine.clone();
            let verdict = match &v.target {
                VerifyTarget::Command { command, runner } => {
                    let request = RunRequest {
                        command: command.clone(),
                        env: payload.env(),
                        timeout_secs: v.timeout.as_secs(),
                        reply_id: None,
                    };
                    match runner.call(request).await {
                        Some(RunReply { status: Some(0), .. }) => continue,
                        Some(RunReply { status: Some(code), said, .. }) => {
                            let reason =
                                if said.is_empty() { format!("the verify hook exited with {code}") } else { said };
                            Verdict::Rejected { reason, quarantine }
                        }
                        Some(RunReply { status: None, said, .. }) => Verdict::Undecided { reason: said, quarantine },
                        None => Verdict::Undecided { reason: "the hook runner is gone".into(), quarantine },
                    }
                }
                VerifyTarget::Webhook { client, url, secret } => {
                    let body = serde_json::to_vec(payload).unwrap_or_default();
                    let mut request = client.post(url).header("content-type", "application/json").body(body.clone());
                    if let Some(secret) = secret {
                        request = request.header("x-ferry-signature", signature(secret, &body));
                    }
                    match request.send().await {
                        Ok(r) if r.status().is_success() => continue,
                        Ok(r) if r.status().is_client_error() => {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            let reason =
                                last_line(&text).unwrap_or_else(|| format!("the verify webhook answered {status}"));
                            Verdict::Rejected { reason, quarantine }
                        }
                        Ok(r) => Verdict::Undecided {
                            reason: format!("the verify webhook answered {}", r.status()),
                            quarantine,
                        },
                        Err(e) => Verdict::Undecided { reason: format!("the verify webhook failed: {e}"), quarantine },
                    }
                }
            };
            return verdict;
        }
        Verdict::Accepted
    }
}

/// The last non-empty line of `text`, at most 200 characters (what a reply can carry).
fn last_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    Some(line.chars().filter(|c| !c.is_control()).take(200).collect())
}

impl Hooks {
    /// Starts a worker per hook (call inside the runtime). `runner`: the hook runner's stdin, needed
    /// when any hook has a command.
    pub fn start(configs: &[HookConfig], runner: Option<RunnerInput>, local: bool) -> std::io::Result<Self> {
        let runner = runner.map(|RunnerInput { stdin, stdout }| {
            let (tx, rx) = mpsc::channel::<String>(QUEUE);
            tokio::spawn(feed_runner(stdin, rx));
            let runner = std::sync::Arc::new(Runner {
                requests: tx,
                waiting: std::sync::Mutex::new(std::collections::HashMap::new()),
                next_id: std::sync::atomic::AtomicU64::new(1),
            });
            tokio::spawn(runner.clone().read_replies(stdout));
            runner
        });
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        let mut hooks = Vec::new();
        let mut verifiers = Vec::new();
        for config in configs {
            config.check().map_err(invalid)?;
            let timeout = Duration::from_secs(config.timeout_secs.max(1));
            if let Some(quarantine) = config.quarantine.clone().filter(|_| config.verifies()) {
                if !local {
                    return Err(invalid("upload.verify hooks need local storage (the hook reads the file)".into()));
                }
                let target = match (&config.command, &config.url) {
                    (Some(command), _) => {
                        let runner = runner
                            .clone()
                            .ok_or_else(|| std::io::Error::other("command hooks need the hook runner"))?;
                        VerifyTarget::Command { command: command.clone(), runner }
                    }
                    (None, url) => VerifyTarget::Webhook {
                        client: reqwest::Client::builder().timeout(timeout).build().map_err(std::io::Error::other)?,
                        url: url.clone().unwrap_or_default(),
                        secret: read_secret(config)?,
                    },
                };
                verifiers.push(Verifier { target, timeout, quarantine });
                continue;
            }
            let target = match (&config.command, &config.url) {
                (Some(c), None) => Target::Command(c.clone()),
                (None, Some(u)) => {
                    Target::Webhook { url: u.clone(), secret: read_secret(config)?, retries: config.retries }
                }
                _ => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "each [[hooks]] entry needs exactly one of command and url",
                    ))
                }
            };
            let (tx, rx) = mpsc::channel(QUEUE);
            match target {
                Target::Command(command) => {
                    let Some(runner) = runner.clone() else {
                        return Err(std::io::Error::other("command hooks need the hook runner"));
                    };
                    tokio::spawn(command_worker(rx, command, timeout, runner.requests.clone()));
                }
                Target::Webhook { url, secret, retries } => {
                    tokio::spawn(webhook_worker(rx, url, secret, retries, timeout));
                }
            }
            hooks.push(Hook { events: config.events.clone(), queue: tx, dropping: AtomicBool::new(false) });
        }
        let verifiers = (!verifiers.is_empty()).then(|| std::sync::Arc::new(Verifiers(verifiers)));
        Ok(Self { hooks, local, verifiers })
    }

    /// The `upload.verify` hooks, when any are configured.
    pub fn verifiers(&self) -> Option<std::sync::Arc<Verifiers>> {
        self.verifiers.clone()
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
async fn feed_runner(stdin: std::process::ChildStdin, mut rx: mpsc::Receiver<String>) {
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
        let request = RunRequest {
            command: command.clone(),
            env: payload.env(),
            timeout_secs: timeout.as_secs(),
            reply_id: None,
        };
        let mut line = serde_json::to_string(&request).unwrap_or_default();
        line.push('\n');
        if runner.send(line).await.is_err() {
            return;
        }
    }
}

/// A webhook's secret, from its `secret_file`.
fn read_secret(config: &HookConfig) -> std::io::Result<Option<Vec<u8>>> {
    config
        .secret_file
        .as_ref()
        .map(|f| {
            std::fs::read(f)
                .map(|s| s.trim_ascii().to_vec())
                .map_err(|e| std::io::Error::new(e.kind(), format!("hook secret_file {}: {e}", f.display())))
        })
        .transpose()
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
/// runs each with `sh -c`: the asynchronous ones one at a time, those the server waits for
/// (`reply_id`) at once, each answered with a [`RunReply`] line on stdout. Ends when stdin closes
/// (the server is gone).
pub fn run_runner() -> std::io::Result<()> {
    use std::io::BufRead as _;
    let replies = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let Ok(request) = serde_json::from_str::<RunRequest>(&line) else {
            eprintln!("ferry hook-runner: not a request: {line}");
            continue;
        };
        match request.reply_id {
            None => {
                let (status, said) = run_one(&request);
                if status != Some(0) {
                    let event = request.env.get("FERRY_EVENT").map_or("?", String::as_str);
                    eprintln!("ferry hook-runner: hook for {event}: {said}");
                }
            }
            Some(id) => {
                let replies = replies.clone();
                std::thread::spawn(move || {
                    use std::io::Write as _;
                    let (status, said) = run_one(&request);
                    let line = serde_json::to_string(&RunReply { id, status, said }).unwrap_or_default();
                    let mut out = replies.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
                });
            }
        }
    }
    Ok(())
}

/// Runs one request: its exit code (`None`: did not run, killed, or out of time) and its last
/// line of output (or why it did not run).
fn run_one(request: &RunRequest) -> (Option<i32>, String) {
    use std::io::Read as _;
    // A verify hook reads the upload on its stdin as well as by its path.
    let stdin = match (request.reply_id, request.env.get("FERRY_LOCAL_PATH")) {
        (Some(_), Some(path)) => std::fs::File::open(path).map_or_else(|_| std::process::Stdio::null(), Into::into),
        _ => std::process::Stdio::null(),
    };
    use std::os::unix::process::CommandExt as _;
    let child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&request.command)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(&request.env)
        // A group of its own, so that a timeout kills what the shell started too.
        .process_group(0)
        .stdin(stdin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (None, format!("cannot run the hook: {e}")),
    };
    // Output is collected beside the wait (a full pipe must not stall the command).
    let collect = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.by_ref().take(64 * 1024).read_to_end(&mut text);
                let _ = std::io::copy(&mut p, &mut std::io::sink());
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = collect(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let err = collect(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let deadline = std::time::Instant::now() + Duration::from_secs(request.timeout_secs.max(1));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if std::time::Instant::now() > deadline => {
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("the hook was killed after {} s", request.timeout_secs));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(format!("waiting for the hook: {e}")),
        }
    };
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let said = last_line(&out).or_else(|| last_line(&err)).unwrap_or_default();
    match status {
        Ok(s) => match s.code() {
            Some(code) => (Some(code), said),
            None => (None, format!("the hook ended by {s}")),
        },
        Err(why) => (None, why),
    }
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

    /// alice, rooted at /srv/ftp/alice, from `ip`.
    fn alice(ip: &str) -> crate::events::Who<'static> {
        crate::events::Who {
            id: 1,
            ip: ip.parse().unwrap(),
            user: Some("alice"),
            anonymous: false,
            root: Some(std::path::Path::new("/srv/ftp/alice")),
        }
    }

    #[test]
    fn verify_hooks_are_checked() {
        let parse = |t: &str| crate::Config::from_toml(t).and_then(|c| c.validate().map(|()| c));
        let ok = "[[hooks]]\nevents = [\"upload.verify\"]\ncommand = \"true\"\nquarantine = \"/q\"\n";
        assert!(parse(ok).is_ok());
        let no_quarantine = "[[hooks]]\nevents = [\"upload.verify\"]\ncommand = \"true\"\n";
        assert!(parse(no_quarantine)
            .unwrap_err()
            .to_string()
            .contains("hooks[0]: a hook with \"upload.verify\" needs quarantine"));
        let mixed = "[[hooks]]\nevents = [\"upload.verify\", \"upload\"]\ncommand = \"true\"\nquarantine = \"/q\"\n";
        assert!(parse(mixed).unwrap_err().to_string().contains("no other events"));
        let both = "[[hooks]]\nevents = [\"upload\"]\ncommand = \"true\"\nurl = \"http://127.0.0.1:1/\"\n";
        assert!(parse(both).unwrap_err().to_string().contains("exactly one of command and url"));
        let s3 = format!("{ok}[storage]\nkind = \"s3\"\nbucket = \"b\"\n");
        assert!(parse(&s3).unwrap_err().to_string().contains("needs local storage"));
    }

    #[test]
    fn a_verify_payload_points_at_the_staged_bytes() {
        let who = alice("127.0.0.1");
        let staged = std::path::Path::new("/srv/ftp/alice/dir/.ferry-upload.a.txt.1.2");
        let env = Payload::verify(&who, "/dir/a.txt", 5, staged).env();
        assert_eq!(env["FERRY_EVENT"], "upload.verify");
        assert_eq!(env["FERRY_PATH"], "/dir/a.txt");
        assert_eq!(env["FERRY_LOCAL_PATH"], staged.to_str().unwrap());
        assert_eq!(env["FERRY_BYTES"], "5");
        assert_eq!(
            last_line("scanning\nstdin: Eicar-Test-Signature FOUND\n\n").as_deref(),
            Some("stdin: Eicar-Test-Signature FOUND")
        );
        assert_eq!(last_line("  \n"), None);
    }

    #[test]
    fn payloads_and_their_environment() {
        let who = alice("::ffff:192.0.2.9");
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
