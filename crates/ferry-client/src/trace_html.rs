//! `--trace-html` and `ferry trace-view`: a traced session as one self-contained HTML page whose
//! inline SVG draws it the way the seeds' figures (and RFC 959's) do: the client and each server
//! as a column with its lifeline; every command and reply on the control connection as an arrow
//! with its time; how each data port was derived (`227 (h1,h2,h3,h4,p1,p2) -> port p1*256+p2`);
//! each data connection as a lane of its own between the two columns, with its ports, and an
//! arrow for its bytes, their direction and rate. A `copy` has two servers, `A` and `B`: three
//! columns, and a server-to-server (FXP) transfer is a lane between A and B.
//!
//! The input is the events [`crate::trace::Trace`] records (what `--trace=json` writes, one per
//! line); nothing outside the page is loaded.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

const ROW: f64 = 22.0;
const TOP: f64 = 70.0;
const LEFT: f64 = 200.0;
/// The space between two columns: narrower with three.
fn gap(columns: usize) -> f64 {
    if columns > 2 {
        520.0
    } else {
        640.0
    }
}

/// Roughly the characters of 12 px monospace that fit in `gap`.
fn label_chars(gap: f64) -> usize {
    (gap / 7.6) as usize
}

/// The page for `events`, titled `title`.
pub fn render(events: &[Value], title: &str) -> String {
    let ladder = Ladder::new(events);
    let svg = ladder.svg();
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<h1>{t}</h1>\n<p class=\"summary\">{summary}</p>\n{svg}\n</body>\n</html>\n",
        t = esc(title),
        summary = esc(&ladder.summary()),
    );
    page
}

const STYLE: &str = "
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; background: #fff; }
h1 { font-size: 18px; margin: 0 0 4px; font-family: ui-monospace, monospace; }
.summary { margin: 0 0 12px; color: #555; }
svg text { font: 12px ui-monospace, 'DejaVu Sans Mono', monospace; fill: #222; }
svg .column text { font-weight: bold; font-size: 13px; }
svg .lifeline { stroke: #888; stroke-width: 1.5; }
svg .time { fill: #777; }
svg .command line { stroke: #1f5fbf; stroke-width: 1.4; }
svg .command text.label { fill: #1f5fbf; }
svg .reply line { stroke: #2e8b57; stroke-width: 1.4; }
svg .reply text.label { fill: #2e7d4f; }
svg .reply.error line { stroke: #c0392b; }
svg .reply.error text.label { fill: #c0392b; }
svg .connect line { stroke: #555; stroke-dasharray: 2 3; }
svg .port rect { fill: #fff7d6; stroke: #d4a017; }
svg .port text { fill: #7a5a00; }
svg .port text.time { fill: #777; }
svg .lane rect { fill: #e6d5f5; stroke: #8e44ad; }
svg .lane.fxp rect { fill: #fde2cf; stroke: #d35400; }
svg .lane text { fill: #6c3483; font-size: 11px; }
svg .data-open line { stroke: #8e44ad; stroke-dasharray: 5 3; }
svg .data-open text.label { fill: #6c3483; }
svg .data-close line { stroke: #8e44ad; stroke-width: 4; }
svg .data-close text.label { fill: #6c3483; font-weight: bold; }
svg .fxp line { stroke: #d35400; }
svg .fxp text.label { fill: #a04000; }
";

/// One column: the client or a server.
struct Column {
    title: String,
    address: String,
}

/// A data connection being drawn: where it starts and what it links.
struct Lane {
    open_row: usize,
    close_row: Option<usize>,
    /// The columns it joins (client and server, or server A and server B).
    ends: (usize, usize),
    /// The port labels at either end.
    ports: (String, String),
    slot: usize,
    fxp: bool,
}

struct Ladder<'a> {
    events: &'a [Value],
    columns: Vec<Column>,
    /// Party name -> column.
    parties: BTreeMap<String, usize>,
    lanes: BTreeMap<u64, Lane>,
    /// Control connections per party (a tag `#n` marks each when a party has more than one).
    sessions: BTreeMap<String, Vec<u64>>,
    gap: f64,
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn port_of(addr: &str) -> String {
    addr.rsplit_once(':').map_or_else(|| addr.to_string(), |(_, p)| format!(":{p}"))
}

impl<'a> Ladder<'a> {
    fn new(events: &'a [Value]) -> Self {
        let mut columns = vec![Column { title: "client".into(), address: String::new() }];
        let mut parties = BTreeMap::new();
        let mut sessions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for e in events {
            let party = text(e, "party");
            let next = columns.len();
            let col = *parties.entry(party.clone()).or_insert(next);
            if col == next {
                let title = if party.is_empty() { "server".to_string() } else { format!("server {party}") };
                columns.push(Column { title, address: String::new() });
            }
            if e["conn"] == "control" && e["event"] == "open" {
                if columns[0].address.is_empty() {
                    columns[0].address = text(e, "local");
                }
                if columns[col].address.is_empty() {
                    columns[col].address = text(e, "remote");
                }
            }
            if let Some(n) = e["session"].as_u64() {
                let list = sessions.entry(party).or_default();
                if !list.contains(&n) {
                    list.push(n);
                }
            }
        }
        if columns.len() == 1 {
            columns.push(Column { title: "server".into(), address: String::new() });
        }
        let gap = gap(columns.len());
        let mut ladder = Self { events, columns, parties, lanes: BTreeMap::new(), sessions, gap };
        ladder.find_lanes();
        ladder
    }

    fn column_of(&self, e: &Value) -> usize {
        self.parties.get(&text(e, "party")).copied().unwrap_or(1)
    }

    fn x(&self, col: usize) -> f64 {
        LEFT + self.gap * col as f64
    }

    /// Where a label about column `col` is centred: in the gap just left of it, clear of the
    /// lifelines an arrow to a farther server crosses.
    fn label_x(&self, col: usize) -> f64 {
        self.x(col) - self.gap / 2.0
    }

    fn y(row: usize) -> f64 {
        TOP + ROW * (row as f64 + 1.0)
    }

    fn find_lanes(&mut self) {
        let mut open_slots: Vec<u64> = Vec::new();
        for (row, e) in self.events.iter().enumerate() {
            let Some(id) = e["lane"].as_u64() else { continue };
            match (e["conn"].as_str(), e["event"].as_str()) {
                (Some(conn @ ("data" | "fxp")), Some("open")) => {
                    let slot =
                        (0..).find(|s| !open_slots.iter().any(|o| self.lanes.get(o).is_some_and(|l| l.slot == *s)));
                    let slot = slot.unwrap_or(0);
                    open_slots.push(id);
                    let lane = if conn == "fxp" {
                        let from = self.parties.get(&text(e, "from")).copied().unwrap_or(1);
                        let to = self.parties.get(&text(e, "to")).copied().unwrap_or(2);
                        let (a, b) = (from.min(to), from.max(to));
                        Lane {
                            open_row: row,
                            close_row: None,
                            ends: (a, b),
                            ports: (port_of(&text(e, "addr")), String::new()),
                            slot,
                            fxp: true,
                        }
                    } else {
                        Lane {
                            open_row: row,
                            close_row: None,
                            ends: (0, self.column_of(e)),
                            ports: (port_of(&text(e, "local")), port_of(&text(e, "remote"))),
                            slot,
                            fxp: false,
                        }
                    };
                    self.lanes.insert(id, lane);
                }
                (Some("data" | "fxp"), Some("close")) => {
                    if let Some(l) = self.lanes.get_mut(&id) {
                        l.close_row = Some(row);
                    }
                    open_slots.retain(|o| *o != id);
                }
                _ => {}
            }
        }
    }

    /// The x of a lane's bar at end `which` (0: left column, 1: right column).
    fn lane_x(&self, lane: &Lane, which: usize) -> f64 {
        let inset = 18.0 + 12.0 * (lane.slot % 6) as f64;
        if which == 0 {
            self.x(lane.ends.0) + inset
        } else {
            self.x(lane.ends.1) - inset
        }
    }

    fn summary(&self) -> String {
        let count =
            |conn: &str, event: &str| self.events.iter().filter(|e| e["conn"] == conn && e["event"] == event).count();
        let bytes: u64 = self.events.iter().filter(|e| e["event"] == "close").filter_map(|e| e["bytes"].as_u64()).sum();
        let secs = self.events.last().and_then(|e| e["t"].as_f64()).unwrap_or(0.0);
        format!(
            "{} control connection(s), {} commands, {} replies, {} data connection(s), {bytes} bytes, {secs:.3} s",
            self.sessions.values().map(Vec::len).sum::<usize>().max(count("control", "open")),
            count("control", "command"),
            count("control", "reply"),
            count("data", "open") + count("fxp", "open"),
        )
    }

    fn svg(&self) -> String {
        let rows = self.events.len();
        let width = self.x(self.columns.len() - 1) + LEFT;
        let height = Self::y(rows) + ROW;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"ladder\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"FTP session ladder\">\n\
             <defs><marker id=\"head\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"9\" markerHeight=\"9\" \
             markerUnits=\"userSpaceOnUse\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"context-stroke\"/></marker></defs>\n"
        );
        for (i, c) in self.columns.iter().enumerate() {
            let x = self.x(i);
            let _ = writeln!(
                s,
                "<g class=\"column\" data-column=\"{i}\"><text x=\"{x}\" y=\"24\" text-anchor=\"middle\">{}</text>\
                 <text x=\"{x}\" y=\"42\" text-anchor=\"middle\" class=\"address\">{}</text>\
                 <line class=\"lifeline\" x1=\"{x}\" y1=\"{TOP}\" x2=\"{x}\" y2=\"{height}\"/></g>",
                esc(&c.title),
                esc(&c.address),
            );
        }
        for (id, lane) in &self.lanes {
            let (y0, y1) = (Self::y(lane.open_row), Self::y(lane.close_row.unwrap_or(rows)));
            let class = if lane.fxp { "lane fxp" } else { "lane" };
            let _ = write!(s, "<g class=\"{class}\" data-lane=\"{id}\">");
            for which in [0, 1] {
                let x = self.lane_x(lane, which);
                let _ = write!(s, "<rect x=\"{}\" y=\"{y0}\" width=\"8\" height=\"{}\"/>", x - 4.0, (y1 - y0).max(4.0));
                let port = if which == 0 { &lane.ports.0 } else { &lane.ports.1 };
                let anchor = if which == 0 { "start" } else { "end" };
                let tx = if which == 0 { x + 7.0 } else { x - 7.0 };
                let _ = write!(
                    s,
                    "<text class=\"lane-port\" x=\"{tx}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                    y0 + 14.0,
                    esc(port)
                );
            }
            s.push_str("</g>\n");
        }
        for (row, e) in self.events.iter().enumerate() {
            self.row(&mut s, row, e);
        }
        s.push_str("</svg>");
        s
    }

    fn session_tag(&self, e: &Value) -> String {
        let several = self.sessions.get(&text(e, "party")).is_some_and(|s| s.len() > 1);
        match e["session"].as_u64() {
            Some(n) if several => format!("#{n} "),
            _ => String::new(),
        }
    }

    fn row(&self, s: &mut String, row: usize, e: &Value) {
        let y = Self::y(row);
        let col = self.column_of(e);
        let (cx, sx) = (self.x(0), self.x(col));
        let centre = self.label_x(col);
        let tag = self.session_tag(e);
        let time = format!("{:.3}s", e["t"].as_f64().unwrap_or(0.0));
        let party = esc(&text(e, "party"));
        let lane = e["lane"].as_u64().and_then(|id| self.lanes.get(&id));
        let (class, x1, x2, label) = match (e["conn"].as_str().unwrap_or(""), e["event"].as_str().unwrap_or("")) {
            ("control", "open") => {
                ("connect".to_string(), cx, sx, format!("{tag}connected {} -> {}", text(e, "local"), text(e, "remote")))
            }
            ("control", "command") => ("command".to_string(), cx, sx, format!("{tag}{}", text(e, "text"))),
            ("control", "reply") => {
                let body = text(e, "text");
                let mut lines = body.lines();
                let first = lines.next().unwrap_or("");
                let more = lines.count();
                let code = e["code"].as_u64().unwrap_or(0);
                let more = if more > 0 { format!(" (+{more} lines)") } else { String::new() };
                let class = if code >= 400 { "reply error" } else { "reply" };
                (class.to_string(), sx, cx, format!("{tag}{code} {first}{more}"))
            }
            ("data", "port") => {
                let how = text(e, "how");
                let mid = centre;
                let w = how.len() as f64 * 7.3 + 16.0;
                let _ = writeln!(
                    s,
                    "<g class=\"port\" data-port=\"{}\" data-party=\"{party}\"><text class=\"time\" x=\"8\" y=\"{y}\">{time}</text>\
                     <rect x=\"{}\" y=\"{}\" width=\"{w}\" height=\"18\" rx=\"3\"/>\
                     <text x=\"{mid}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
                    e["port"],
                    mid - w / 2.0,
                    y - 13.0,
                    y,
                    esc(&how)
                );
                return;
            }
            ("data", "open") => {
                let (a, b) = lane.map_or((cx, sx), |l| (self.lane_x(l, 0), self.lane_x(l, 1)));
                let label =
                    format!("{tag}data {} -> {} opened ({})", text(e, "local"), text(e, "remote"), text(e, "mode"));
                ("data-open".to_string(), a, b, label)
            }
            ("data", "close") => {
                let (a, b) = lane.map_or((cx, sx), |l| (self.lane_x(l, 0), self.lane_x(l, 1)));
                let up = e["direction"] == "C->S";
                let (from, to) = if up { (a, b) } else { (b, a) };
                let label = format!(
                    "{tag}{} {} bytes in {:.3} s ({}), closed by {}",
                    text(e, "direction"),
                    e["bytes"].as_u64().unwrap_or(0),
                    e["secs"].as_f64().unwrap_or(0.0),
                    rate(e),
                    text(e, "closed_by")
                );
                ("data-close".to_string(), from, to, label)
            }
            ("fxp", event) => {
                let (a, b) = lane.map_or((cx, sx), |l| (self.lane_x(l, 0), self.lane_x(l, 1)));
                let (from, to, label) = if event == "open" {
                    (b, a, format!("{} connects to {} at {}", text(e, "to"), text(e, "from"), text(e, "addr")))
                } else {
                    let bytes = e["bytes"].as_u64().unwrap_or(0);
                    (
                        a,
                        b,
                        format!(
                            "{} -> {}: {bytes} bytes in {:.3} s ({})",
                            text(e, "from"),
                            text(e, "to"),
                            e["secs"].as_f64().unwrap_or(0.0),
                            rate(e)
                        ),
                    )
                };
                let class = if event == "open" { "fxp data-open" } else { "fxp data-close" };
                (class.to_string(), from, to, label)
            }
            (conn, event) => ("other".to_string(), cx, sx, format!("{conn} {event}")),
        };
        let label = shorten(&label, label_chars(self.gap));
        let mid = if class.contains("fxp") { (x1 + x2) / 2.0 } else { centre };
        let marker = if class == "connect" { "" } else { " marker-end=\"url(#head)\"" };
        let lane_attr = e["lane"].as_u64().map(|l| format!(" data-lane=\"{l}\"")).unwrap_or_default();
        let _ = writeln!(
            s,
            "<g class=\"{class}\" data-party=\"{party}\"{lane_attr}><text class=\"time\" x=\"8\" y=\"{y}\">{time}</text>\
             <line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"{marker}/>\
             <text class=\"label\" x=\"{mid}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
            y - 4.0,
            esc(&label)
        );
    }
}

fn rate(e: &Value) -> String {
    let (bytes, secs) = (e["bytes"].as_f64().unwrap_or(0.0), e["secs"].as_f64().unwrap_or(0.0));
    if secs > 0.0 {
        format!("{:.1} MiB/s", bytes / secs / (1024.0 * 1024.0))
    } else {
        "- MiB/s".into()
    }
}

fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// Escapes text for HTML and XML (element text and attribute values alike).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_page_with_columns_arrows_and_lanes() {
        let events = vec![
            json!({"t": 0.0, "session": 1, "conn": "control", "event": "open", "local": "127.0.0.1:4000", "remote": "127.0.0.1:21"}),
            json!({"t": 0.01, "session": 1, "conn": "control", "event": "command", "text": "PASS ****"}),
            json!({"t": 0.02, "session": 1, "conn": "control", "event": "reply", "code": 227, "text": "Entering Passive Mode (127,0,0,1,195,80)."}),
            json!({"t": 0.02, "session": 1, "conn": "data", "event": "port", "how": "227 (127,0,0,1,195,80) -> port 195*256+80 = 50000", "port": 50000}),
            json!({"t": 0.03, "session": 1, "conn": "data", "event": "open", "lane": 1, "local": "127.0.0.1:4001", "remote": "127.0.0.1:50000", "mode": "passive"}),
            json!({"t": 0.05, "session": 1, "conn": "data", "event": "close", "lane": 1, "bytes": 1048576, "secs": 0.5, "closed_by": "server", "direction": "S->C"}),
            json!({"t": 0.06, "session": 1, "conn": "control", "event": "reply", "code": 550, "text": "<nope> & \"x\""}),
        ];
        let page = render(&events, "ferry <get>");
        assert!(page.contains("<title>ferry &lt;get&gt;</title>"));
        assert_eq!(page.matches("<g class=\"column\"").count(), 2);
        assert_eq!(page.matches("<g class=\"command\"").count(), 1);
        assert_eq!(page.matches("<g class=\"reply").count(), 2);
        assert!(page.contains("class=\"reply error\""));
        assert!(page.contains("&lt;nope&gt; &amp; &quot;x&quot;"));
        assert!(page.contains("195*256+80 = 50000"));
        assert!(page.contains("<g class=\"lane\" data-lane=\"1\">"));
        assert!(page.contains(">:50000</text>") && page.contains(">:4001</text>"));
        assert!(page.contains("S-&gt;C 1048576 bytes in 0.500 s (2.0 MiB/s), closed by server"));
        assert!(!page.contains("http://") || page.matches("http://").count() == 1, "only the SVG namespace");
    }
}
