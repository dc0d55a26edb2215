//! End-to-end: virtual hosts (RFC 7151 `HOST`, `[[host]]` sections). Each host has its own root
//! and greeting, and may have its own users; `HOST` comes before `USER`; without it a client gets
//! the default host.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use common::{user_cmd, Ctrl, Ferry};

/// Two host roots, `dir/a` holding `on-a.txt` and `dir/b` holding `on-b.txt`.
fn host_roots(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    for (root, file) in [(&a, "on-a.txt"), (&b, "on-b.txt")] {
        std::fs::create_dir_all(root).unwrap();
        std::fs::write(root.join(file), "x").unwrap();
    }
    (a, b)
}

/// The names `NLST` shows after logging in as `user` on `host` (or on the default host).
fn listing(f: &Ferry, host: Option<&str>, user: &str, password: &str) -> Vec<String> {
    let mut c = Ctrl::greeted(f.addr);
    if let Some(h) = host {
        c.ok(&format!("HOST {h}"), 220);
    }
    c.ok(&format!("USER {user}"), 331);
    c.ok(&format!("PASS {password}"), 230);
    let mut names: Vec<String> = String::from_utf8(c.download("NLST")).unwrap().lines().map(str::to_owned).collect();
    names.sort();
    names
}

#[test]
fn each_host_has_its_root_greeting_and_users() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = host_roots(dir.path());
    let b_users = dir.path().join("b-users.toml");
    user_cmd(&["add", "bob"], &b_users, Some("bob-pw"));
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[[host]]\nname = \"a.example\"\naliases = [\"www.a.example\"]\nroot = {a:?}\nbanner = \"Welcome to A\"\n\n\
             [[host]]\nname = \"b.example\"\nroot = {b:?}\nusers = {b_users:?}\n"
        ),
    )
    .unwrap();
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    std::fs::write(f.root.join("default.txt"), "default").unwrap();
    // a.example: its root and its greeting; alice (--user) is rooted there.
    let mut c = Ctrl::greeted(f.addr);
    let feat = c.ok("FEAT", 211).lines.join("\n");
    assert!(feat.contains("\nHOST\n"), "{feat}");
    assert_eq!(c.ok("HOST a.example", 220).lines[0], "Welcome to A");
    drop(c);
    assert_eq!(listing(&f, Some("a.example"), "alice", "secret"), ["on-a.txt"]);
    assert_eq!(listing(&f, Some("WWW.A.EXAMPLE."), "alice", "secret"), ["on-a.txt"], "an alias, any case");
    // b.example: its own users file; bob exists only there.
    assert_eq!(listing(&f, Some("b.example"), "bob", "bob-pw"), ["on-b.txt"]);
    let mut c = Ctrl::greeted(f.addr);
    c.ok("HOST a.example", 220);
    c.ok("USER bob", 331);
    c.ok("PASS bob-pw", 530);
    // No HOST: the default host, as before.
    assert_eq!(listing(&f, None, "alice", "secret"), ["default.txt"]);
    // An unknown name: 504, and the session can still choose another.
    let mut c = Ctrl::greeted(f.addr);
    c.ok("HOST nope.example", 504);
    c.ok("HOST b.example", 220);
    // After USER: 503 (RFC 7151 section 3.2); REIN forgets the host.
    c.ok("USER bob", 331);
    c.ok("HOST a.example", 503);
    c.ok("PASS bob-pw", 230);
    c.ok("HOST a.example", 503);
    c.ok("REIN", 220);
    c.ok("USER bob", 331);
    c.ok("PASS bob-pw", 530);
}

#[test]
fn a_server_without_hosts_accepts_any_name() {
    let f = Ferry::start(&[]);
    let mut c = Ctrl::greeted(f.addr);
    c.ok("HOST ftp.anything.example", 220);
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
}

#[test]
fn a_host_root_that_does_not_exist_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferry.toml");
    std::fs::write(&config, "[[host]]\nname = \"a.example\"\nroot = \"/nonexistent/ferry-host\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--user", "u:p", "--config", config.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("host a.example: root /nonexistent/ferry-host is not an existing directory"), "{err}");
}

/// The certificate (PEM) `openssl s_client -starttls ftp` is served, with `sni` as its server name.
fn served_with_openssl(addr: std::net::SocketAddr, sni: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string(), "-starttls", "ftp"]);
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = text.find("-----BEGIN CERTIFICATE-----").unwrap_or_else(|| panic!("no certificate: {text}"));
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    text[start..end].to_owned()
}

/// The first certificate of a PEM file.
fn first_pem(file: &std::path::Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    text[text.find("-----BEGIN CERTIFICATE-----").unwrap()..end].to_owned()
}

#[test]
fn the_tls_server_name_and_host_choose_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = host_roots(dir.path());
    let (dc, dk) = common::cert_for(dir.path(), "default-", &["127.0.0.1"]);
    let (ac, ak) = common::cert_for(dir.path(), "a-", &["a.example", "127.0.0.1"]);
    let (bc, bk) = common::cert_for(dir.path(), "b-", &["b.example", "127.0.0.1"]);
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert = {dc:?}\nkey = {dk:?}\n\n\
             [[host]]\nname = \"a.example\"\nroot = {a:?}\ntls_cert = {ac:?}\ntls_key = {ak:?}\n\n\
             [[host]]\nname = \"b.example\"\nroot = {b:?}\ntls_cert = {bc:?}\ntls_key = {bk:?}\n"
        ),
    )
    .unwrap();
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    // OpenSSL's client: the SNI picks the host's certificate; no SNI gets the default.
    assert_eq!(served_with_openssl(f.addr, Some("b.example")), first_pem(&bc));
    assert_eq!(served_with_openssl(f.addr, Some("A.EXAMPLE")), first_pem(&ac));
    assert_eq!(served_with_openssl(f.addr, None), first_pem(&dc));
    assert_eq!(served_with_openssl(f.addr, Some("other.example")), first_pem(&dc));
    // HOST before AUTH (rustls sends no SNI for an IP): the host's certificate, which a client
    // trusting only that one accepts.
    let trusts_a = common::client_config(&ac);
    let mut c = Ctrl::greeted(f.addr);
    c.ok("HOST a.example", 220);
    c.auth_tls(&trusts_a);
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    // The SNI selects the host for the login too, and a HOST that disagrees is refused.
    let trusts_b = common::client_config(&bc);
    let mut conn = rustls::ClientConnection::new(trusts_b, "b.example".try_into().unwrap()).unwrap();
    let mut stream = std::net::TcpStream::connect(f.addr).unwrap();
    let mut greeting = [0u8; 512];
    let _ = std::io::Read::read(&mut stream, &mut greeting).unwrap();
    std::io::Write::write_all(&mut stream, b"AUTH TLS\r\n").unwrap();
    let mut reply = [0u8; 512];
    let n = std::io::Read::read(&mut stream, &mut reply).unwrap();
    assert!(reply[..n].starts_with(b"234"), "{}", String::from_utf8_lossy(&reply[..n]));
    while conn.is_handshaking() {
        conn.complete_io(&mut stream).unwrap();
    }
    let mut tls = rustls::Stream::new(&mut conn, &mut stream);
    let mut say = |line: &str| -> String {
        std::io::Write::write_all(&mut tls, format!("{line}\r\n").as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        let n = std::io::Read::read(&mut tls, &mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(say("HOST a.example").starts_with("504"), "HOST must agree with the SNI");
    assert!(say("USER alice").starts_with("331"));
    assert!(say("PASS secret").starts_with("230"));
    assert!(say("SIZE on-b.txt").starts_with("213 1"), "the SNI chose b.example's root");
}

#[test]
fn the_ferry_client_names_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = host_roots(dir.path());
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!("[[host]]\nname = \"a.example\"\nroot = {a:?}\n\n[[host]]\nname = \"b.example\"\nroot = {b:?}\n"),
    )
    .unwrap();
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    std::fs::write(f.root.join("default.txt"), "d").unwrap();
    let ls = |url: String| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["ls", "--connect-to", "127.0.0.1", "--trace", &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let port = f.addr.port();
    let (listing, trace) = ls(format!("ftp://alice:secret@b.example:{port}/"));
    assert_eq!(listing.trim(), "on-b.txt", "{trace}");
    assert!(trace.contains("C->S  HOST b.example") && trace.contains("S->C  220"), "{trace}");
    let (listing, _) = ls(format!("ftp://alice:secret@a.example:{port}/"));
    assert_eq!(listing.trim(), "on-a.txt");
    // A name the server does not know: 504, and the default host.
    let (listing, trace) = ls(format!("ftp://alice:secret@c.example:{port}/"));
    assert_eq!(listing.trim(), "default.txt");
    assert!(trace.contains("S->C  504"), "{trace}");
    // An address names no host: no HOST at all.
    let (listing, trace) = ls(format!("ftp://alice:secret@127.0.0.1:{port}/"));
    assert_eq!(listing.trim(), "default.txt");
    assert!(!trace.contains("C->S  HOST"), "{trace}");
}
