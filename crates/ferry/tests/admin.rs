//! End-to-end: the admin interface.
//!
//! - `/metrics` in the Prometheus format, scraped by a real Prometheus (Debian's package, started
//!   on loopback by the test) and queried through its HTTP API.
//! - `/livez`, `/readyz` (503 with reasons while draining).
//! - The sessions API and `ferry who` / `ferry kick` over the unix socket; mutating calls on the
//!   TCP listener need the bearer token.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{user_cmd, Ctrl, Ferry};

const TOKEN: &str = "s3cret-admin-token";

/// A server with the admin listener on 127.0.0.1:0, the unix socket and a token, configured in
/// `dir/ferry.toml`.
fn start(dir: &Path) -> Ferry {
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(
        dir.join("ferry.toml"),
        format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\nsocket = {:?}\ntoken_file = {:?}\n\n[limits]\nfailed_login_delay_ms = 10\n",
            dir.join("admin.sock"),
            dir.join("token")
        ),
    )
    .unwrap();
    Ferry::start(&["--config", dir.join("ferry.toml").to_str().unwrap()])
}

/// A plain HTTP/1.1 request; the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: 0\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.split_whitespace().nth(1).unwrap().parse().unwrap(), body.to_owned())
}

fn ferry_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// STOR over EPSV, answered 226.
fn upload(c: &mut Ctrl, name: &str, body: &[u8]) {
    assert_eq!(c.upload(&format!("STOR {name}"), body).code.0, 226);
}

#[test]
fn metrics_health_and_the_sessions_api() {
    let dir = tempfile::tempdir().unwrap();
    let f = start(dir.path());
    let admin = f.admin.expect("the admin address is printed");
    assert_eq!(http(admin, "GET", "/livez", None), (200, "ok\n".to_owned()));
    let (code, body) = http(admin, "GET", "/readyz", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"ready\":true"), "{body}");

    let mut c = f.login();
    c.ok("TYPE I", 200);
    upload(&mut c, "m.bin", &[7u8; 12_345]);
    let mut bad = Ctrl::greeted(f.addr);
    bad.ok("USER alice", 331);
    bad.ok("PASS wrong", 530);
    let (code, metrics) = http(admin, "GET", "/metrics", None);
    assert_eq!(code, 200);
    for line in [
        "ferry_logins_total{result=\"ok\"} 1",
        "ferry_logins_total{result=\"failed\"} 1",
        "ferry_transfers_total{direction=\"upload\",result=\"complete\"} 1",
        "ferry_transfer_bytes_total{direction=\"upload\"} 12345",
        "ferry_sessions 2",
        "ferry_connections_total 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing:\n{metrics}");
    }

    // The sessions, over HTTP and through `ferry who` on the unix socket.
    let (code, sessions) = http(admin, "GET", "/api/v1/sessions", None);
    assert_eq!(code, 200);
    let list: Vec<serde_json::Value> = serde_json::from_str(&sessions).unwrap();
    assert_eq!(list.len(), 2, "{sessions}");
    let alice = list.iter().find(|s| s["state"] == "idle" && s["user"] == "alice").unwrap();
    let id = alice["id"].as_u64().unwrap();
    let config = dir.path().join("ferry.toml");
    let (ok, who) = ferry_cli(&["who", "--config", config.to_str().unwrap()]);
    assert!(ok, "{who}");
    let row = who.lines().find(|l| l.trim_start().starts_with(&format!("{id} "))).unwrap_or_else(|| panic!("{who}"));
    assert!(row.contains("alice") && row.contains("127.0.0.1:") && row.contains("idle"), "{row}");

    // Kicking: refused on TCP without the token, done with it and through `ferry kick`.
    assert_eq!(http(admin, "DELETE", &format!("/api/v1/sessions/{id}"), None).0, 401);
    assert_eq!(http(admin, "DELETE", &format!("/api/v1/sessions/{id}"), Some("wrong-token")).0, 401);
    c.ok("NOOP", 200);
    let (ok, said) = ferry_cli(&["kick", &id.to_string(), "--socket", dir.path().join("admin.sock").to_str().unwrap()]);
    assert!(ok, "{said}");
    let r = c.read();
    assert_eq!((r.code.0, r.lines[0].as_str()), (421, "Disconnected by the administrator."));
    assert!(c.try_read().is_none(), "the connection is closed");
    let (code, _) = http(admin, "DELETE", "/api/v1/sessions/999999", Some(TOKEN));
    assert_eq!(code, 404);
    let list: Vec<serde_json::Value> = serde_json::from_str(&http(admin, "GET", "/api/v1/sessions", None).1).unwrap();
    let other = list[0]["id"].as_u64().unwrap();
    assert_eq!(http(admin, "DELETE", &format!("/api/v1/sessions/{other}"), Some(TOKEN)).0, 200);
    assert_eq!(bad.read().code.0, 421);
    let socket_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("admin.sock")).unwrap().permissions(),
    );
    assert_eq!(socket_mode & 0o777, 0o600, "the admin socket is the owner's only");
}

#[test]
fn readyz_says_503_while_draining() {
    let dir = tempfile::tempdir().unwrap();
    let f = start(dir.path());
    let admin = f.admin.unwrap();
    // A transfer in progress keeps the server draining (the grace period) after SIGTERM.
    let mut c = f.login();
    c.ok("TYPE I", 200);
    let mut data = c.epsv_connect();
    c.ok("STOR slow.bin", 150);
    data.write_all(b"part").unwrap();
    assert!(Command::new("kill").args(["-TERM", &f.pid().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let (code, body) = loop {
        let (code, body) = http(admin, "GET", "/readyz", None);
        if code == 503 || Instant::now() > deadline {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    assert_eq!(http(admin, "GET", "/livez", None).0, 200, "alive while draining");
    drop(data);
    assert_eq!(c.read().code.0, 226);
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Prometheus, stopped on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_metrics() {
    let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].into_iter().find(|p| Path::new(p).exists());
    let binary = binary.expect("Prometheus is not installed: run scripts/install-test-deps.sh");
    let dir = tempfile::tempdir().unwrap();
    let f = start(dir.path());
    let admin = f.admin.unwrap();
    let mut c = f.login();
    c.ok("TYPE I", 200);
    upload(&mut c, "p.bin", b"scraped");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ferry\n    static_configs:\n      - targets: ['{admin}']\n"),
    )
    .unwrap();
    let port = free_port();
    let web = format!("127.0.0.1:{port}");
    let _prom = Prometheus(
        Command::new(binary)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus starts"),
    );
    let web: SocketAddr = web.parse().unwrap();
    // Ask Prometheus (not Ferry) until its scrape has landed.
    let query = "/api/v1/query?query=ferry_transfers_total%7Bdirection%3D%22upload%22%7D";
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let answer = TcpStream::connect(web).ok().map(|_| http(web, "GET", query, None));
        if let Some((200, body)) = &answer {
            if body.contains("\"result\":[{") {
                break body.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never had the series: {answer:?}\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let sample = &v["data"]["result"][0];
    assert_eq!(sample["metric"]["job"], "ferry");
    assert_eq!(sample["metric"]["result"], "complete");
    assert_eq!(sample["value"][1], "1", "{answer}");
    // And the target is up, scraped without errors.
    let (_, targets) = http(web, "GET", "/api/v1/targets", None);
    assert!(targets.contains("\"health\":\"up\""), "{targets}");
    // Every query of the sample Grafana dashboard is valid PromQL over series Prometheus has.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/grafana-ferry.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().replace("$job", "ferry"))
        })
        .collect();
    assert!(exprs.len() >= 8);
    for expr in exprs {
        let query: String = expr
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let (code, body) = http(web, "GET", &format!("/api/v1/query?query={query}"), None);
        assert_eq!(code, 200, "{expr}: {body}");
        assert!(body.contains("\"status\":\"success\""), "{expr}: {body}");
        // Each series it names exists in what Prometheus scraped.
        for name in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("ferry_")) {
            let series = name.trim_end_matches("_bucket");
            let (_, found) =
                http(web, "GET", &format!("/api/v1/series?match%5B%5D={series}%7Bjob%3D%22ferry%22%7D"), None);
            let found = if series.ends_with("_seconds") {
                http(web, "GET", &format!("/api/v1/series?match%5B%5D={series}_count"), None).1
            } else {
                found
            };
            assert!(found.contains("\"__name__\""), "{name} (in {expr}) is not a series Prometheus has: {found}");
        }
    }
}

/// A control connection from `source` (another loopback address); the first reply.
fn greeting_from(source: &str, addr: SocketAddr) -> (u16, Ctrl) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut c = Ctrl::connect_stream(stream);
    let code = c.read().code.0;
    (code, c)
}

/// Two wrong passwords from `source`.
fn fail_twice(source: &str, addr: SocketAddr) {
    let (code, mut c) = greeting_from(source, addr);
    assert_eq!(code, 220);
    for _ in 0..2 {
        c.ok("USER alice", 331);
        c.send("PASS wrong");
        if c.read().code.0 != 530 {
            break;
        }
    }
}

#[test]
fn bans_persist_grow_spare_the_allow_list_and_ignore_probes() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let state = dir.path().join("state").join("bans.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nsocket = {socket:?}\n\n[limits]\nfailed_login_delay_ms = 10\nban_after_failures = 2\nban_secs = 2\n\n\
             [bans]\nallow = [\"127.0.0.3\"]\nstate_file = {state:?}\n\n[log]\nformat = \"json\"\nfile = {:?}\n",
            dir.path().join("ferry.log")
        ),
    )
    .unwrap();
    let sock = socket.to_str().unwrap();
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    // Load-balancer probes: connect and close, or QUIT, before USER: never counted.
    for _ in 0..10 {
        let (code, mut c) = greeting_from("127.0.0.4", f.addr);
        assert_eq!(code, 220);
        c.ok("QUIT", 221);
        drop(greeting_from("127.0.0.4", f.addr));
    }
    assert_eq!(greeting_from("127.0.0.4", f.addr).0, 220, "probes are not failures");
    // Two failures ban; the allow-listed address is never banned.
    fail_twice("127.0.0.2", f.addr);
    assert_eq!(greeting_from("127.0.0.2", f.addr).0, 421, "banned after two failures");
    let (ok, list) = ferry_cli(&["bans", "--socket", sock]);
    fail_twice("127.0.0.3", f.addr);
    fail_twice("127.0.0.3", f.addr);
    assert_eq!(greeting_from("127.0.0.3", f.addr).0, 220, "the allow-list is never banned");
    assert!(ok && list.contains("127.0.0.2") && !list.contains("127.0.0.3"), "{list}");
    // Lifted by the administrator: forgiven.
    let (ok, said) = ferry_cli(&["unban", "127.0.0.2", "--socket", sock]);
    assert!(ok, "{said}");
    assert_eq!(greeting_from("127.0.0.2", f.addr).0, 220);
    // Banned again, the ban runs out (2 s), banned once more: a repeat offender waits twice as long.
    fail_twice("127.0.0.2", f.addr);
    assert_eq!(greeting_from("127.0.0.2", f.addr).0, 421);
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(greeting_from("127.0.0.2", f.addr).0, 220, "the ban ran out");
    fail_twice("127.0.0.2", f.addr);
    let bans: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let left = bans[0]["until"].as_u64().unwrap().saturating_sub(now);
    assert_eq!(bans[0]["count"], 2, "{bans:?}");
    assert!((3..=4).contains(&left), "a repeat offender's ban is longer: {left} s");
    // The administrator's ban, refused for the allow-list.
    let (ok, said) = ferry_cli(&["ban", "127.0.0.5", "--secs", "300", "--socket", sock]);
    assert!(ok && said.contains("127.0.0.5 banned for"), "{said}");
    let (ok, said) = ferry_cli(&["ban", "127.0.0.3", "--socket", sock]);
    assert!(!ok && said.contains("never banned"), "{said}");
    // The events are in the JSON log (a reload request's too).
    let (ok, said) = ferry_cli(&["reload", "--socket", sock]);
    assert!(ok && said.contains("reloaded configuration") && said.contains("(no setting changed)"), "{said}");
    let log = std::fs::read_to_string(dir.path().join("ferry.log")).unwrap();
    assert!(log.contains("\"event\":\"config.reload\",\"by\":\"reload request\""), "{log}");
    assert!(log.contains("\"event\":\"ban.add\",\"ip\":\"127.0.0.2\""), "{log}");
    assert!(log.contains("\"event\":\"ban.remove\",\"ip\":\"127.0.0.2\""), "{log}");
    // A restart keeps them.
    drop(f);
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    assert_eq!(greeting_from("127.0.0.5", f.addr).0, 421, "the ban survived the restart");
    assert_eq!(greeting_from("127.0.0.4", f.addr).0, 220);
}

#[test]
fn ferry_reload_rereads_the_users_file_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    user_cmd(&["add", "bob"], &users, Some("pw-bob"));
    let socket = dir.path().join("admin.sock");
    std::fs::write(dir.path().join("ferry.toml"), format!("[admin]\nsocket = {socket:?}\n")).unwrap();
    let f = Ferry::start(&[
        "--config",
        dir.path().join("ferry.toml").to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
    ]);
    let (ok, said) = ferry_cli(&["reload", "--socket", socket.to_str().unwrap()]);
    assert!(ok, "{said}");
    assert!(said.contains("reloaded users file") && said.contains("(2 accounts)"), "alice from --user, bob: {said}");
    assert!(f.stderr().contains("reload request: reloaded configuration"), "{}", f.stderr());
    // A broken file: the command fails and says why; the users stay.
    std::fs::write(&users, "[broken").unwrap();
    let (ok, said) = ferry_cli(&["reload", "--socket", socket.to_str().unwrap()]);
    assert!(!ok && said.contains("users not reloaded") && said.contains("nothing was changed"), "{said}");
    let mut c = Ctrl::greeted(f.addr);
    c.ok("USER bob", 331);
    c.ok("PASS pw-bob", 230);
}

/// The greeting's text on a new connection.
fn banner(addr: SocketAddr) -> String {
    let mut c = Ctrl::connect(addr);
    let r = c.read();
    assert_eq!(r.code.0, 220);
    r.lines.join(" ")
}

#[test]
fn ferry_reload_applies_the_configuration_file_all_at_once_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let config = dir.path().join("ferry.toml");
    let users = dir.path().join("users.toml");
    let write = |banner: &str, extra: &str| {
        std::fs::write(&config, format!("banner = {banner:?}\n{extra}[admin]\nsocket = {socket:?}\n")).unwrap();
    };
    write("first banner", "");
    user_cmd(&["add", "bob"], &users, Some("pw-bob"));
    let f = Ferry::start(&["--config", config.to_str().unwrap(), "--users", users.to_str().unwrap()]);
    let sock = socket.to_str().unwrap();
    assert!(banner(f.addr).contains("first banner"));
    // A session logged in before the reload keeps its settings (the 300 s idle timeout).
    let mut before = Ctrl::greeted(f.addr);
    before.ok("USER bob", 331);
    before.ok("PASS pw-bob", 230);
    // New banner and idle timeout (applied), a passive port range (needs a restart: the sandbox's
    // port rules are fixed at start).
    write("second banner", "[limits]\nidle_timeout_secs = 1\n[passive]\nports = \"40000-40010\"\n");
    let (ok, said) = ferry_cli(&["reload", "--socket", sock]);
    assert!(ok, "{said}");
    assert!(said.contains("reloaded configuration") && said.contains("banner, limits"), "{said}");
    assert!(said.contains("applied only after a restart: passive.ports"), "{said}");
    assert!(f.stderr().contains("after a restart (running values kept): passive.ports"), "{}", f.stderr());
    assert!(banner(f.addr).contains("second banner"), "new connections see the new banner");
    let mut after = Ctrl::greeted(f.addr);
    after.ok("USER bob", 331);
    after.ok("PASS pw-bob", 230);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(after.read().code.0, 421, "a new login runs with the new 1 s idle timeout");
    before.ok("NOOP", 200);
    // An invalid value: nothing changes, and the failure names the file and the setting.
    write("third banner", "[limits]\nmax_sessions = 0\n");
    let (ok, said) = ferry_cli(&["reload", "--socket", sock]);
    assert!(!ok && said.contains("ferry.toml") && said.contains("limits.max_sessions"), "{said}");
    assert!(banner(f.addr).contains("second banner"), "a failed reload changed the banner");
    // A valid configuration with a broken users file: neither is applied.
    write("fourth banner", "");
    std::fs::write(&users, "[broken").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let (ok, said) = ferry_cli(&["reload", "--socket", sock]);
    assert!(!ok && said.contains("users not reloaded"), "{said}");
    assert!(banner(f.addr).contains("second banner"), "half a reload was applied");
}

#[test]
fn an_exhausted_passive_range_shows_in_metrics_and_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(dir.path().join("ferry.toml"), "[admin]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let range = format!("{port}-{port}");
    let f = Ferry::start(&["--config", dir.path().join("ferry.toml").to_str().unwrap(), "--passive-ports", &range]);
    let admin = f.admin.unwrap();
    let mut first = f.login();
    first.ok("EPSV", 229);
    let mut second = f.login();
    second.ok("EPSV", 425);
    let (_, metrics) = http(admin, "GET", "/metrics", None);
    assert!(metrics.lines().any(|l| l == "ferry_passive_port_exhausted_total 1"), "{metrics}");
    assert!(
        metrics.lines().any(|l| l == "ferry_passive_ports_in_use 1"),
        "the first session holds the port: {metrics}"
    );
    let (code, body) = http(admin, "GET", "/readyz", None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("passive ports exhausted"), "{body}");
    // The port is given back when its session ends.
    first.ok("QUIT", 221);
    let deadline = Instant::now() + Duration::from_secs(5);
    let freed = loop {
        let (_, metrics) = http(admin, "GET", "/metrics", None);
        if metrics.lines().any(|l| l == "ferry_passive_ports_in_use 0") || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(freed.lines().any(|l| l == "ferry_passive_ports_in_use 0"), "{freed}");
    second.ok("EPSV", 229);
}

#[test]
fn ferry_top_refreshes_with_totals() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    std::fs::write(dir.path().join("ferry.toml"), format!("[admin]\nsocket = {socket:?}\n")).unwrap();
    let f = Ferry::start(&["--config", dir.path().join("ferry.toml").to_str().unwrap()]);
    let _c = f.login();
    let (ok, out) = ferry_cli(&["top", "--socket", socket.to_str().unwrap(), "--iterations", "2", "--interval", "0.2"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("ferry top: 1 sessions, 0 transferring").count(), 2, "two refreshes:\n{out}");
    assert_eq!(out.matches("\x1b[2J").count(), 2, "the screen is cleared each time");
    assert!(out.lines().any(|l| l.contains("alice") && l.contains("idle")), "{out}");
}

#[test]
fn tls_metrics_certificate_expiry_and_handshakes() {
    let (_certs, cert, key) = common::make_cert();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ferry.toml"), "[admin]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let f = Ferry::start(&[
        "--config",
        dir.path().join("ferry.toml").to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let (_, metrics) = http(f.admin.unwrap(), "GET", "/metrics", None);
    let value: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferry_tls_certificate_expiry_timestamp_seconds "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    // The same date, read by openssl and converted by Python's ssl module.
    let end = Command::new("openssl").args(["x509", "-noout", "-enddate", "-in"]).arg(&cert).output().unwrap();
    let end = String::from_utf8(end.stdout).unwrap();
    let end = end.trim().strip_prefix("notAfter=").unwrap().to_owned();
    let py = Command::new("python3")
        .args(["-c", "import ssl,sys; print(ssl.cert_time_to_seconds(sys.argv[1]))", &end])
        .output()
        .unwrap();
    let expected: i64 = String::from_utf8(py.stdout).unwrap().trim().parse().unwrap_or_else(|_| panic!("{end}"));
    assert_eq!(value, expected, "notAfter={end}");

    // TLS handshakes: the control connection's, a data connection that resumed, one that did not.
    let config = common::client_config(&cert);
    std::fs::write(f.path("t.txt"), b"tls").unwrap();
    let mut c = common::protected_login(&f, &config);
    let data = c.epsv_connect();
    c.ok("RETR t.txt", 150);
    let mut d = common::tls_wrap(data, &config);
    let mut got = Vec::new();
    let _ = d.read_to_end(&mut got);
    assert_eq!(c.read().code.0, 226);
    let data = c.epsv_connect();
    c.ok("RETR t.txt", 150);
    let fresh = rustls::ClientConnection::new(common::client_config(&cert), "127.0.0.1".try_into().unwrap()).unwrap();
    let mut thief = rustls::StreamOwned::new(fresh, data);
    let _ = thief.read_to_end(&mut Vec::new());
    assert_eq!(c.read().code.0, 522);
    let (_, metrics) = http(f.admin.unwrap(), "GET", "/metrics", None);
    for line in [
        "ferry_tls_handshakes_total{connection=\"control\",result=\"ok\"} 1",
        "ferry_tls_handshakes_total{connection=\"data\",result=\"ok\"} 1",
        "ferry_tls_handshakes_total{connection=\"data\",result=\"failed\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing:\n{metrics}");
    }
}
