//! Medians, ratios, the printed tables and the JSON document.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::dataset::Sizes;
use crate::workloads::Measure;

/// One measurement, with where it came from.
#[derive(Debug, Clone)]
pub struct Sample {
    pub run: usize,
    /// The server's name, "limit" for the raw TCP copy and the small-file floor, or
    /// "CLIENT @ SERVER" for client rows.
    pub subject: String,
    pub m: Measure,
}

/// A failed (workload, subject) pair.
#[derive(Debug, Clone)]
pub struct Failure {
    pub run: usize,
    pub workload: String,
    pub subject: String,
    pub error: String,
}

/// The median of each metric for each subject.
#[derive(Debug, Clone, Copy)]
pub struct Median {
    pub value: f64,
    pub elapsed: f64,
    pub gen_cpu: f64,
    pub server_cpu: f64,
    pub runs: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians keyed by (metric, subject).
pub fn medians(samples: &[Sample]) -> BTreeMap<(String, String), Median> {
    let mut groups: BTreeMap<(String, String), Vec<&Measure>> = BTreeMap::new();
    for s in samples {
        groups.entry((s.m.metric.to_string(), s.subject.clone())).or_default().push(&s.m);
    }
    groups
        .into_iter()
        .map(|(k, ms)| {
            let med = Median {
                value: median(ms.iter().map(|m| m.value).collect()),
                elapsed: median(ms.iter().map(|m| m.elapsed).collect()),
                gen_cpu: median(ms.iter().map(|m| m.gen_cpu).collect()),
                server_cpu: median(ms.iter().map(|m| m.server_cpu).collect()),
                runs: ms.len(),
            };
            (k, med)
        })
        .collect()
}

/// A row of the server table.
struct Row {
    metric: &'static str,
    label: String,
    higher_better: bool,
}

fn rows(sizes: &Sizes) -> Vec<Row> {
    let big = human(sizes.big);
    let small = format!("{} x {}", sizes.small_files, human(sizes.small_size as u64));
    let r = |metric, label: String, higher_better| Row { metric, label, higher_better };
    let mut rows = vec![
        r("retr", format!("RETR {big}, MiB/s"), true),
        r("stor", format!("STOR {big}, MiB/s"), true),
        r("small_retr", format!("{} x {} RETR, files/s", sizes.small_files, human(sizes.small_size as u64)), true),
        r("small_stor", format!("{} x {} STOR, files/s", sizes.small_files, human(sizes.small_size as u64)), true),
        r("list", format!("LIST {} entries, s", sizes.list_entries), false),
        r("nlst", format!("NLST {} entries, s", sizes.list_entries), false),
        r("mlsd", format!("MLSD {} entries, s", sizes.list_entries), false),
        r("list_changed", format!("LIST {}, dir just changed, s", sizes.list_entries), false),
        r("nlst_changed", format!("NLST {}, dir just changed, s", sizes.list_entries), false),
        r("mlsd_changed", format!("MLSD {}, dir just changed, s", sizes.list_entries), false),
        r("connect", "connect+login+QUIT, /s".into(), true),
        r("login_concurrent", format!("{} logins 32 at once, /s", sizes.idle_sessions), true),
        r("idle_pss", format!("idle session ({} open), PSS KiB", sizes.idle_sessions), false),
        r("idle_rss", format!("idle session ({} open), RSS KiB", sizes.idle_sessions), false),
        r("hold_pss", format!("idle session ({} open), PSS KiB", sizes.hold_sessions), false),
        r("hold_ok", format!("sessions held of {} opened", sizes.hold_sessions), true),
        r("hold_login", format!("{} logins 32 at once, /s", sizes.hold_sessions), true),
        r("concurrent", format!("{} x {} RETR at once, MiB/s", sizes.concurrent, human(sizes.mid)), true),
        r("raw", format!("TCP limit: sendfile -> recv {big}, MiB/s"), true),
        r(
            "busy_files",
            format!("{} busy sessions, 4 KiB RETR+STOR for {} s, files/s", sizes.busy.sessions, sizes.busy.secs),
            true,
        ),
        r("busy_p99", "the same, p99 of one file (EPSV to 226), ms".into(), false),
        r("busy_rss", "the same, server RSS at the end, MiB".into(), false),
        r("busy_failed", "the same, sessions failed or refused".into(), false),
        r(
            "login_distinct",
            format!("{} first logins of distinct accounts, 32 at once, /s", sizes.logins.distinct),
            true,
        ),
        r("login_failed_rss", format!("RSS after {} wrong passwords, KiB", sizes.logins.failed), false),
        r("login_idle_rss", "the same, 7 s later, KiB".into(), false),
        r("hash_uploaded", format!("HASH of a {big} file uploaded through the server, ms"), false),
        r("hash_placed", format!("HASH of a {big} file never hashed, MiB/s (limit: read + SHA-256 here)"), true),
    ];
    // The FTPS rows go before the HASH rows.
    let at = rows.len() - 2;
    rows.splice(at..at, crate::ftps::report_rows(&big, &small).into_iter().map(|(m, label)| r(m, label, true)));
    rows
}

/// "1 GiB", "20 MiB", "4 KiB".
pub fn human(n: u64) -> String {
    for (unit, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{} {name}", n / unit);
        }
    }
    format!("{n} B")
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// The Ferry column a metric is compared with: the no-fsync instance for uploads and the busy
/// sessions' mix (the peers do not fsync), the default one otherwise.
fn ferry_for(metric: &str, meds: &BTreeMap<(String, String), Median>) -> Option<(&'static str, f64)> {
    let ftps_stor = metric.starts_with("ftps") && metric.ends_with("_stor");
    if matches!(metric, "stor" | "small_stor") || metric.starts_with("busy_") || ftps_stor {
        if let Some(m) = meds.get(&(metric.to_string(), "ferry-nofsync".to_string())) {
            return Some(("ferry-nofsync", m.value));
        }
    }
    meds.get(&(metric.to_string(), "ferry".to_string())).map(|m| ("ferry", m.value))
}

/// Ferry's advantage over `other`: >1 means Ferry is better (rates: Ferry / other; times and
/// memory: other / Ferry).
fn advantage(ferry: f64, other: f64, higher_better: bool) -> f64 {
    if higher_better {
        ferry / other
    } else {
        other / ferry
    }
}

/// The server table, the CPU table, the client table and the target checks, as text.
pub fn render(samples: &[Sample], failures: &[Failure], sizes: &Sizes, servers: &[&str]) -> (String, Value) {
    let meds = medians(samples);
    let get = |metric: &str, subject: &str| meds.get(&(metric.to_string(), subject.to_string())).copied();
    let peers: Vec<&str> = servers.iter().copied().filter(|s| !s.starts_with("ferry")).collect();
    let mut cols: Vec<&str> = servers.to_vec();
    cols.push("limit");
    let mut out = String::new();

    // Server table.
    let mut header = vec!["metric (median)".to_string()];
    header.extend(cols.iter().map(|c| c.to_string()));
    header.extend(peers.iter().map(|p| format!("F/{p}")));
    header.push("F/limit".into());
    let mut table = vec![header];
    let mut ratio_json = Vec::new();
    for row in rows(sizes) {
        let mut line = vec![row.label.clone()];
        let mut any = false;
        for c in &cols {
            let v = get(row.metric, c).map(|m| m.value).unwrap_or(f64::NAN);
            any |= !v.is_nan();
            line.push(fmt_value(v));
        }
        if !any {
            continue;
        }
        let ferry = ferry_for(row.metric, &meds);
        for p in peers.iter().copied().chain(["limit"]) {
            let cell = match (ferry, get(row.metric, p)) {
                (Some((fname, f)), Some(o)) => {
                    let a = advantage(f, o.value, row.higher_better);
                    ratio_json.push(json!({ "metric": row.metric, "ferry": fname, "other": p, "advantage": a }));
                    if a.is_finite() {
                        format!("{a:.2}x")
                    } else {
                        "inf".into()
                    }
                }
                _ => "-".into(),
            };
            line.push(cell);
        }
        table.push(line);
    }
    let _ = writeln!(out, "Server side (medians; ratio columns: Ferry's advantage, >1 = Ferry better; rates are");
    let _ = writeln!(
        out,
        "Ferry/peer, times and memory peer/Ferry; STOR and busy ratios use ferry-nofsync, as no peer fsyncs):\n"
    );
    out.push_str(&format_table(&table));

    // CPU table.
    let mut cpu = vec![{
        let mut h = vec!["CPU s (median): load generator / server".to_string()];
        h.extend(cols.iter().map(|c| c.to_string()));
        h
    }];
    for row in rows(sizes) {
        if matches!(row.metric, "idle_rss" | "login_concurrent") {
            continue;
        }
        let mut line = vec![row.label.clone()];
        let mut any = false;
        for c in &cols {
            line.push(match get(row.metric, c) {
                Some(m) => {
                    any = true;
                    format!("{:.2}/{:.2} ({:.0}%)", m.gen_cpu, m.server_cpu, 100.0 * m.gen_cpu / m.elapsed)
                }
                None => "-".into(),
            });
        }
        if any {
            cpu.push(line);
        }
    }
    let _ = writeln!(out, "\nCPU seconds over each timed part (generator = this process, all threads, with its");
    let _ = writeln!(out, "share of wall time; server = all its processes):\n");
    out.push_str(&format_table(&cpu));

    // Client table.
    let mut client = vec![vec![
        "client side (median)".to_string(),
        "server".into(),
        "ferry".into(),
        "other".into(),
        "ferry/other".into(),
        "CPU s ferry/other".into(),
    ]];
    for (metric, ferry_tool, other_tool, unit) in [
        ("client_get", "ferry get", "curl", "MiB/s"),
        ("client_mirror", "ferry mirror --parallel 8", "lftp mirror --parallel=8", "files/s"),
    ] {
        for server in servers.iter().filter(|s| !s.ends_with("nofsync")) {
            let f = get(metric, &format!("{ferry_tool} @ {server}"));
            let o = get(metric, &format!("{other_tool} @ {server}"));
            if f.is_none() && o.is_none() {
                continue;
            }
            let v = |m: Option<Median>| m.map(|m| m.value).unwrap_or(f64::NAN);
            let label = match metric {
                "client_get" => format!("get {} ({unit}): {ferry_tool} vs {other_tool}", human(sizes.big)),
                _ => format!("mirror {} files ({unit}): ferry vs lftp", sizes.tree_files),
            };
            let ratio = v(f) / v(o);
            ratio_json.push(json!({ "metric": metric, "ferry": ferry_tool, "other": other_tool, "server": server, "advantage": ratio }));
            client.push(vec![
                label,
                server.to_string(),
                fmt_value(v(f)),
                fmt_value(v(o)),
                if ratio.is_nan() { "-".into() } else { format!("{ratio:.2}x") },
                format!(
                    "{:.2}/{:.2}",
                    f.map(|m| m.gen_cpu).unwrap_or(f64::NAN),
                    o.map(|m| m.gen_cpu).unwrap_or(f64::NAN)
                ),
            ]);
        }
    }
    if client.len() > 1 {
        let _ = writeln!(out, "\nClient side (each pair against the same server):\n");
        out.push_str(&format_table(&client));
    }

    // The clients people use, reading and writing the big file, against every server.
    let mut header = vec!["clients people use (median)".to_string()];
    header.extend(servers.iter().map(|s| s.to_string()));
    header.extend(["F/best peer".to_string(), "F/limit".to_string()]);
    let mut people = vec![header];
    for (metric, tools, limit) in [
        ("reader_retr", &["curl", "lftp", "wget"][..], ("raw", "limit")),
        ("writer_stor", &["curl", "lftp"][..], ("stor_durable", "limit")),
    ] {
        for tool in tools {
            let value = |server: &str| get(metric, &format!("{tool} @ {server}")).map(|m| m.value);
            if servers.iter().all(|s| value(s).is_none()) {
                continue;
            }
            let verb = if metric == "reader_retr" { "RETR" } else { "STOR" };
            let mut line = vec![format!("{verb} {} by {tool}, MiB/s", human(sizes.big))];
            line.extend(servers.iter().map(|s| fmt_value(value(s).unwrap_or(f64::NAN))));
            let ferry = value("ferry");
            let best = peers.iter().filter_map(|p| value(p)).fold(f64::NAN, f64::max);
            let lim = get(limit.0, limit.1).map(|m| m.value);
            let ratio = |a: Option<f64>, b: f64| match a {
                Some(a) if b.is_finite() && b > 0.0 => format!("{:.2}x", a / b),
                _ => "-".into(),
            };
            line.push(ratio(ferry, best));
            line.push(ratio(ferry, lim.unwrap_or(f64::NAN)));
            ratio_json.push(json!({ "metric": metric, "client": tool, "ferry_vs_best_peer": ferry.map(|f| f / best), "ferry_vs_limit": ferry.zip(lim).map(|(f, l)| f / l) }));
            people.push(line);
        }
    }
    // Durable uploads against the disk's own durable write, on the same filesystem and run.
    for (metric, floor, label) in [
        ("stor", "stor_durable", format!("STOR {} (built-in writer, fsync) vs write+fsync, MiB/s", human(sizes.big))),
        (
            "small_stor",
            "small_stor_durable",
            format!(
                "{} x {} STOR (fsync) vs write+fsync+rename+dir fsync, files/s",
                sizes.small_files,
                human(sizes.small_size as u64)
            ),
        ),
    ] {
        let (Some(f), Some(l)) = (get(metric, "ferry"), get(floor, "limit")) else { continue };
        let mut line = vec![label];
        line.extend(servers.iter().map(|s| if *s == "ferry" { fmt_value(f.value) } else { "-".into() }));
        line.push("-".into());
        line.push(format!("{:.2}x", f.value / l.value));
        ratio_json.push(json!({ "metric": metric, "ferry_vs_durable_floor": f.value / l.value, "floor": l.value }));
        people.push(line);
    }
    if people.len() > 1 {
        let _ = writeln!(out, "\nThe clients people use, and durable writes against the disk's own (limit: raw TCP for readers, write+fsync for writers):\n");
        out.push_str(&format_table(&people));
    }

    // Targets.
    let targets = targets(&meds, &peers, servers, sizes, failures);
    if !targets.is_empty() {
        let _ = writeln!(out, "\nTargets (issue 5):\n");
        for (name, met, detail) in &targets {
            let _ = writeln!(out, "  [{}] {name}: {detail}", if *met { "met" } else { "MISSED" });
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailures:");
        for f in failures {
            let _ = writeln!(out, "  run {} {} {}: {}", f.run + 1, f.workload, f.subject, f.error);
        }
    }

    let med_json: Vec<Value> = meds
        .iter()
        .map(|((metric, subject), m)| {
            json!({ "metric": metric, "subject": subject, "value": m.value, "elapsed_s": m.elapsed,
                    "generator_cpu_s": m.gen_cpu, "server_cpu_s": m.server_cpu, "runs": m.runs })
        })
        .collect();
    let target_json: Vec<Value> =
        targets.iter().map(|(n, met, d)| json!({ "target": n, "met": met, "detail": d })).collect();
    (out, json!({ "medians": med_json, "ratios": ratio_json, "targets": target_json }))
}

type Meds = BTreeMap<(String, String), Median>;

fn targets(
    meds: &Meds,
    peers: &[&str],
    servers: &[&str],
    sizes: &Sizes,
    failures: &[Failure],
) -> Vec<(String, bool, String)> {
    let v = |metric: &str, s: &str| meds.get(&(metric.to_string(), s.to_string())).map(|m| m.value);
    let mut out = Vec::new();
    // Best peer: highest rate or lowest time/memory.
    let best = |metric: &str, higher: bool| -> Option<(String, f64)> {
        peers.iter().filter_map(|p| v(metric, p).map(|x| (p.to_string(), x))).reduce(|a, b| {
            if (higher && b.1 > a.1) || (!higher && b.1 < a.1) {
                b
            } else {
                a
            }
        })
    };
    if let (Some(f), Some(l)) = (v("retr", "ferry"), v("raw", "limit")) {
        out.push((
            "RETR >= 0.95x raw TCP limit".into(),
            f >= 0.95 * l,
            format!("{f:.0} vs {l:.0} MiB/s = {:.2}x", f / l),
        ));
    }
    if let (Some(f), Some(p)) = (v("retr", "ferry"), v("retr", "vsftpd")) {
        out.push(("RETR >= 1.1x vsftpd".into(), f >= 1.1 * p, format!("{f:.0} vs {p:.0} MiB/s = {:.2}x", f / p)));
    }
    for (metric, name, higher, factor) in [
        ("stor", "STOR (no fsync) >= 1.1x best peer", true, 1.1),
        ("small_retr", "small-file RETR >= 2x best peer", true, 2.0),
        ("small_stor", "small-file STOR (no fsync) >= 2x best peer", true, 2.0),
        ("list", "LIST >= 2x best peer", false, 2.0),
        ("list_changed", "LIST >= 2x best peer, directory just changed", false, 2.0),
        ("idle_pss", "idle session PSS < best peer", false, 1.0),
    ] {
        let ferry = if matches!(metric, "stor" | "small_stor") && servers.contains(&"ferry-nofsync") {
            "ferry-nofsync"
        } else {
            "ferry"
        };
        if let (Some(f), Some((p, x))) = (v(metric, ferry), best(metric, higher)) {
            let a = advantage(f, x, higher);
            let met = if factor == 1.0 { a > 1.0 } else { a >= factor };
            let mut detail = format!("{ferry} {f:.4} vs {p} {x:.4} = {a:.2}x");
            // The small-file floor says whether the target is possible at all on this machine.
            if let Some(l) = v(metric, "limit").filter(|_| metric.starts_with("small")) {
                let _ = write!(detail, "; floor {l:.0} files/s: ferry {:.2}x, {p} {:.2}x of it", f / l, x / l);
                if factor * x > l {
                    let _ = write!(detail, " ({factor}x {p} is above the floor: not reachable here)");
                }
            }
            out.push((name.into(), met, detail));
        }
    }
    // FTPS (issue 19): ahead of every peer on each measurement (uploads: Ferry without fsync,
    // as no peer fsyncs).
    for (metric, _) in crate::ftps::report_rows("", "") {
        let ferry =
            if metric.ends_with("_stor") && v(metric, "ferry-nofsync").is_some() { "ferry-nofsync" } else { "ferry" };
        if let (Some(f), Some((p, x))) = (v(metric, ferry), best(metric, true)) {
            out.push((format!("{metric} > best peer"), f > x, format!("{ferry} {f:.1} vs {p} {x:.1} = {:.2}x", f / x)));
        }
    }
    let held = format!("hold {} logged-in sessions", sizes.hold_sessions);
    if let Some(f) = failures.iter().find(|f| f.workload == "hold" && f.subject == "ferry") {
        out.push((held, false, f.error.clone()));
    } else if let (Some(ok), Some(f)) = (v("hold_ok", "ferry"), v("hold_pss", "ferry")) {
        let all = ok >= sizes.hold_sessions as f64;
        out.push((held, all, format!("ferry held {ok:.0} (median), {f:.1} KiB PSS per held session")));
    }
    if let Some(f) = v("idle_pss", "ferry") {
        out.push((
            "idle session PSS < 4 KiB (pyftpdlib, landscape)".into(),
            f < 4.0,
            format!("ferry {f:.1} KiB per session"),
        ));
    }
    for (metric, ft, ot, factor, name) in [
        ("client_get", "ferry get", "curl", 1.0, "ferry get >= curl"),
        ("client_mirror", "ferry mirror --parallel 8", "lftp mirror --parallel=8", 1.5, "ferry mirror >= 1.5x lftp"),
    ] {
        for s in servers.iter().filter(|s| !s.ends_with("nofsync")) {
            if let (Some(f), Some(o)) = (v(metric, &format!("{ft} @ {s}")), v(metric, &format!("{ot} @ {s}"))) {
                out.push((
                    format!("{name} (server {s})"),
                    f >= factor * o,
                    format!("{f:.1} vs {o:.1} = {:.2}x", f / o),
                ));
            }
        }
    }
    out
}

/// Left-aligned first column, right-aligned others, two spaces apart.
fn format_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        for (i, c) in r.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "{c:<w$}", w = widths[0]);
            } else {
                let _ = write!(out, "  {c:>w$}", w = widths[i]);
            }
        }
        out.push('\n');
        if n == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (cols.saturating_sub(1));
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}
