//! End-to-end: `--trace-html` and `ferry trace-view` pages, rendered by headless Chromium.
//!
//! The page is checked as a picture, through what the browser laid out: the columns (client,
//! server; client, server A, server B for a copy), every command arrow drawn from the client's
//! lifeline to the server's and every reply back, the EPSV/PASV port arithmetic, the data lane
//! with the port the reply named, spanning the rows from its opening to its close, the FXP lane
//! between the two servers. Screenshots go to `target/test-artifacts/trace-html*.png`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::browser::{Chromium, Page};
use common::{random_bytes, Ferry};
use serde_json::Value;

fn ferry(args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry")).args(args).current_dir(cwd).output().expect("ferry runs");
    assert!(out.status.success(), "ferry {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn url(f: &Ferry, path: &str) -> String {
    format!("ftp://alice:secret@{}{path}", f.addr)
}

/// What the browser drew: the columns' titles and lifeline x (on screen), and for every row
/// group its class, its label, its arrow's start and end x (on screen) and its y.
const PICTURE: &str = r#"JSON.stringify((() => {
  const x = el => { const r = el.getBoundingClientRect(); return r.left + r.width / 2; };
  const columns = [...document.querySelectorAll('svg.ladder g.column')].map(g => ({
    title: g.querySelector('text').textContent,
    x: x(g.querySelector('line.lifeline')),
  }));
  const rows = [...document.querySelectorAll('svg.ladder > g:not(.column):not(.lane)')].map(g => {
    const line = g.querySelector('line');
    const label = g.querySelector('text.label') || g.querySelectorAll('text')[1];
    const r = line ? line.getBoundingClientRect() : null;
    let from = null, to = null;
    if (line) {
      const m = line.getScreenCTM();
      const p = (a, b) => new DOMPoint(+line.getAttribute(a), +line.getAttribute(b)).matrixTransform(m);
      from = p('x1', 'y1').x; to = p('x2', 'y2').x;
    }
    return { class: g.getAttribute('class'), label: label ? label.textContent : '',
             time: g.querySelector('text.time').textContent, from, to,
             y: r ? r.top + r.height / 2 : g.getBoundingClientRect().top };
  });
  const lanes = [...document.querySelectorAll('svg.ladder g.lane')].map(g => ({
    class: g.getAttribute('class'),
    ports: [...g.querySelectorAll('text')].map(t => t.textContent),
    bars: [...g.querySelectorAll('rect')].map(r => { const b = r.getBoundingClientRect();
      return { x: b.left + b.width / 2, top: b.top, bottom: b.bottom }; }),
  }));
  const external = document.querySelectorAll('script, link, img, iframe, [src], [href]').length;
  return { columns, rows, lanes, external, html: document.documentElement.outerHTML };
})())"#;

struct Picture {
    columns: Vec<(String, f64)>,
    rows: Vec<Value>,
    lanes: Vec<Value>,
    html: String,
}

fn look(page: &mut Page, file: &Path) -> Picture {
    page.load(&format!("file://{}", file.display()));
    let v: Value = serde_json::from_str(page.eval(PICTURE).as_str().unwrap()).unwrap();
    assert_eq!(v["external"], 0, "the page loads nothing from outside");
    let columns = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["title"].as_str().unwrap().to_string(), c["x"].as_f64().unwrap()))
        .collect();
    Picture {
        columns,
        rows: v["rows"].as_array().unwrap().clone(),
        lanes: v["lanes"].as_array().unwrap().clone(),
        html: v["html"].as_str().unwrap().to_string(),
    }
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 2.5
}

impl Picture {
    fn rows_of(&self, class: &str) -> Vec<&Value> {
        self.rows.iter().filter(|r| r["class"].as_str().unwrap().split(' ').any(|c| c == class)).collect()
    }

    fn row(&self, class: &str, label_part: &str) -> &Value {
        self.rows_of(class)
            .into_iter()
            .find(|r| r["label"].as_str().unwrap().contains(label_part))
            .unwrap_or_else(|| panic!("no {class} row with {label_part:?}: {:#?}", self.rows))
    }

    /// Every command is an arrow from the client's lifeline to a server's, every reply one back,
    /// and the rows go down the page in time order.
    fn check_arrows(&self) {
        let client = self.columns[0].1;
        let servers: Vec<f64> = self.columns[1..].iter().map(|c| c.1).collect();
        let commands = self.rows_of("command");
        let replies = self.rows_of("reply");
        assert!(commands.len() >= 5 && replies.len() >= 5, "{:#?}", self.rows);
        for c in &commands {
            let (from, to) = (c["from"].as_f64().unwrap(), c["to"].as_f64().unwrap());
            assert!(near(from, client) && servers.iter().any(|s| near(to, *s)), "command {c}");
        }
        for r in &replies {
            let (from, to) = (r["from"].as_f64().unwrap(), r["to"].as_f64().unwrap());
            assert!(servers.iter().any(|s| near(from, *s)) && near(to, client), "reply {r}");
        }
        let ys: Vec<f64> = self.rows.iter().map(|r| r["y"].as_f64().unwrap()).collect();
        assert!(ys.windows(2).all(|w| w[1] > w[0]), "rows go down: {ys:?}");
        let times: Vec<f64> =
            self.rows.iter().map(|r| r["time"].as_str().unwrap().trim_end_matches('s').parse().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[1] >= w[0]), "time stamps in order: {times:?}");
        assert!(self.row("command", "PASS ****")["label"].is_string());
        assert!(!self.html.contains("secret"), "no password anywhere on the page");
    }

    /// The data connection opened after `port` was derived is a lane with that port at the
    /// server's end, from its opening row to its closing row, between client and server.
    fn check_lane(&self, port: u16, direction: &str) {
        let open = self.row("data-open", &format!(":{port} opened (passive)"));
        let close = self.row("data-close", direction);
        let lane = self
            .lanes
            .iter()
            .find(|l| l["ports"][1] == format!(":{port}"))
            .unwrap_or_else(|| panic!("no lane with port {port}: {:#?}", self.lanes));
        let (client, server) = (self.columns[0].1, self.columns[1].1);
        for bar in lane["bars"].as_array().unwrap() {
            let x = bar["x"].as_f64().unwrap();
            assert!(x > client && x < server, "the lane lies between the columns: {bar}");
            assert!(near(bar["top"].as_f64().unwrap(), open["y"].as_f64().unwrap()), "{bar} starts at {open}");
            assert!(near(bar["bottom"].as_f64().unwrap(), close["y"].as_f64().unwrap()), "{bar} ends at {close}");
        }
        let (from, to) = (close["from"].as_f64().unwrap(), close["to"].as_f64().unwrap());
        assert_eq!(to < from, direction == "S->C", "the bytes' arrow points {direction}: {close}");
        assert!(
            close["label"].as_str().unwrap().contains(" bytes in ")
                && close["label"].as_str().unwrap().contains("MiB/s")
        );
    }
}

#[test]
fn ls_and_get_pages_draw_the_epsv_and_pasv_exchanges() {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        std::fs::write(f.path(&format!("file{i}.txt")), format!("file {i}\n")).unwrap();
    }
    std::fs::write(f.path("big.bin"), random_bytes(1_500_000, 3)).unwrap();
    let chromium = Chromium::start();
    let mut page = Page::open(&chromium.page());

    // ls over EPSV: --trace-html alone writes the page and nothing on stderr.
    let out = ferry(&["ls", "--trace-html", "ls.html", &url(&f, "/")], dir.path());
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let pic = look(&mut page, &dir.path().join("ls.html"));
    assert_eq!(pic.columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["client", "server"]);
    pic.check_arrows();
    let epsv = pic.row("command", "EPSV");
    let reply = pic.row("reply", "229 Entering Extended Passive Mode");
    let port: u16 =
        reply["label"].as_str().unwrap().split("(|||").nth(1).unwrap().split('|').next().unwrap().parse().unwrap();
    let derivation = pic.row("port", &format!("229 (|||{port}|) -> port {port} on 127.0.0.1"));
    assert!(epsv["y"].as_f64() < reply["y"].as_f64() && reply["y"].as_f64() < derivation["y"].as_f64());
    pic.check_lane(port, "S->C");
    pic.row("command", "MLSD");
    page.screenshot("trace-html.png");

    // get over PASV, traced as JSON and drawn by trace-view.
    let out = ferry(&["--disable-epsv", "--trace=json", "get", &url(&f, "/big.bin")], dir.path());
    std::fs::write(dir.path().join("get.jsonl"), &out.stderr).unwrap();
    let html = ferry(&["trace-view", "get.jsonl"], dir.path()).stdout;
    std::fs::write(dir.path().join("get.html"), html).unwrap();
    let pic = look(&mut page, &dir.path().join("get.html"));
    pic.check_arrows();
    let pasv = pic.row("reply", "227 Entering Passive Mode");
    let nums: Vec<u16> = pasv["label"]
        .as_str()
        .unwrap()
        .split('(')
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    let port = nums[4] * 256 + nums[5];
    pic.row("port", &format!("-> port {}*256+{} = {port}", nums[4], nums[5]));
    pic.check_lane(port, "S->C");
    assert!(pic.row("data-close", "S->C").to_string().contains("S->C 1500000 bytes"));
}

#[test]
fn a_copy_page_has_three_columns_and_the_fxp_lane_between_the_servers() {
    let a = Ferry::start(&[]);
    let b = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(a.path("x.bin"), random_bytes(700_000, 4)).unwrap();
    let out =
        ferry(&["--trace", "--trace-html", "copy.html", "copy", &url(&a, "/x.bin"), &url(&b, "/y.bin")], dir.path());
    // --trace says which server each line came from.
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(trace.contains("s] A  control  C->S  RETR /x.bin"), "{trace}");
    assert!(trace.contains("s] B  control  C->S  STOR /y.bin"), "{trace}");
    assert!(trace.contains("s] B  fxp      B connects to A at 127.0.0.1:"), "{trace}");
    let chromium = Chromium::start();
    let mut page = Page::open(&chromium.page());
    let pic = look(&mut page, &dir.path().join("copy.html"));
    assert_eq!(pic.columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["client", "server A", "server B"]);
    pic.check_arrows();
    let (xa, xb) = (pic.columns[1].1, pic.columns[2].1);
    let retr = pic.row("command", "RETR /x.bin");
    let stor = pic.row("command", "STOR /y.bin");
    assert!(near(retr["to"].as_f64().unwrap(), xa) && near(stor["to"].as_f64().unwrap(), xb), "{retr} {stor}");
    let fxp = pic.lanes.iter().find(|l| l["class"] == "lane fxp").unwrap_or_else(|| panic!("{:#?}", pic.lanes));
    for bar in fxp["bars"].as_array().unwrap() {
        let x = bar["x"].as_f64().unwrap();
        assert!(x > xa && x < xb, "the FXP lane lies between server A and server B: {bar}");
    }
    let moved = pic.row("data-close", "A -> B: 700000 bytes");
    assert!(moved["from"].as_f64() < moved["to"].as_f64(), "the bytes go from A to B: {moved}");
    page.screenshot("trace-html-copy.png");
}
