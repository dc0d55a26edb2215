//! Prometheus metrics: a sink of [`crate::events::Event`], encoded in the text format for
//! `GET /metrics`. Names follow the Prometheus naming guide with the `ferry_` prefix; no label
//! carries a user name or a path, so the number of series stays fixed.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::events::{Channel, Direction, Event, FsOp};

/// Which way, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "label values are lower case on the wire")]
enum Dir {
    download,
    upload,
    listing,
}

impl From<Direction> for Dir {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Download => Dir::download,
            Direction::Upload => Dir::upload,
            Direction::Listing => Dir::listing,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirLabel {
    direction: Dir,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    direction: Dir,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserLabels {
    user: String,
    direction: Dir,
}

/// Per-user series, opt-in and bounded: the first `max` users get their own, the others share
/// `user="_other"`, so a server with many accounts cannot grow its series without end.
#[derive(Debug)]
struct PerUser {
    max: usize,
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
    bytes: Family<UserLabels, Counter>,
    transfers: Family<UserLabels, Counter>,
}

impl PerUser {
    fn label(&self, user: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(user) {
            return user.to_owned();
        }
        if seen.len() < self.max {
            seen.insert(user.to_owned());
            return user.to_owned();
        }
        "_other".to_owned()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TlsLabels {
    connection: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

/// Transfer counters and histograms, by direction.
#[derive(Debug)]
struct Transfers {
    ended: Family<TransferLabels, Counter>,
    bytes: Family<DirLabel, Counter>,
    size: Family<DirLabel, Histogram, fn() -> Histogram>,
    duration: Family<DirLabel, Histogram, fn() -> Histogram>,
    running: Gauge,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Counter,
    sessions: Gauge,
    logins: Family<ResultLabel, Counter>,
    transfers: Transfers,
    fs: Family<OpLabel, Counter>,
    bans: Counter,
    tls: TlsMetrics,
    passive: Passive,
    reloads: Reloads,
    per_user: Option<PerUser>,
}

impl Metrics {
    /// When PASV/EPSV last found no free port (Unix seconds; 0: never).
    pub fn last_passive_exhaustion(&self) -> u64 {
        self.passive.last_exhausted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// TLS: handshakes by result, the certificate's expiry.
#[derive(Debug)]
struct TlsMetrics {
    handshakes: Family<TlsLabels, Counter>,
    cert_expiry: Gauge,
}

/// Passive ports: bound now, how often none was free, and when last.
#[derive(Debug)]
pub(crate) struct Passive {
    in_use: Gauge,
    exhausted: Counter,
    /// When PASV/EPSV last found no port (Unix seconds; 0: never), for `/readyz`.
    pub(crate) last_exhausted: std::sync::atomic::AtomicU64,
}

/// Reloads by result, and when the last good one happened.
#[derive(Debug)]
struct Reloads {
    count: Family<ResultLabel, Counter>,
    last_ok: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(0)
    }
}

fn size_histogram() -> Histogram {
    // 1 KiB to 16 GiB, by factors of 4.
    Histogram::new(exponential_buckets(1024.0, 4.0, 13))
}

fn duration_histogram() -> Histogram {
    // 1 ms to about 4.5 hours, by factors of 4.
    Histogram::new(exponential_buckets(0.001, 4.0, 12))
}

impl Metrics {
    /// The registry with every metric, at zero; per-user series for at most `per_user` users
    /// (0: none).
    pub fn new(per_user: usize) -> Self {
        let mut registry = Registry::with_prefix("ferry");
        let connections = Counter::default();
        registry.register("connections", "Control connections accepted (past the limits)", connections.clone());
        let sessions = Gauge::default();
        registry.register("sessions", "Sessions open now", sessions.clone());
        let logins = Family::<ResultLabel, Counter>::default();
        registry.register("logins", "Login attempts, by result (ok, failed)", logins.clone());
        let transfers = Transfers {
            ended: Family::default(),
            bytes: Family::default(),
            size: Family::new_with_constructor(size_histogram as fn() -> Histogram),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            running: Gauge::default(),
        };
        registry.register("transfers", "Transfers ended, by direction and result", transfers.ended.clone());
        registry.register("transfer_bytes", "Bytes moved on data connections, by direction", transfers.bytes.clone());
        registry.register("transfer_size_bytes", "Size of ended transfers", transfers.size.clone());
        registry.register("transfer_duration_seconds", "Duration of ended transfers", transfers.duration.clone());
        registry.register("transfers_running", "Transfers running now", transfers.running.clone());
        let fs = Family::<OpLabel, Counter>::default();
        registry.register("fs_operations", "Changes to the file tree, by operation", fs.clone());
        let bans = Counter::default();
        registry.register("bans", "Addresses banned (after failed logins, or by the administrator)", bans.clone());
        let tls = Family::<TlsLabels, Counter>::default();
        registry.register("tls_handshakes", "TLS handshakes, by connection (control, data) and result", tls.clone());
        let passive_in_use = Gauge::default();
        registry.register(
            "passive_ports_in_use",
            "Passive listeners bound now (each holds a port until its data connection comes)",
            passive_in_use.clone(),
        );
        let passive_exhausted = Counter::default();
        registry.register(
            "passive_port_exhausted",
            "PASV/EPSV answered 425: no free port in the passive range (or no descriptor)",
            passive_exhausted.clone(),
        );
        let cert_expiry = Gauge::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the served TLS certificate expires (Unix time; 0 without TLS)",
            cert_expiry.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register("reloads", "Reloads (SIGHUP, users file changes), by result", reloads.clone());
        let reload_time = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "reload_last_success_timestamp_seconds",
            "When the last successful reload happened (Unix time)",
            reload_time.clone(),
        );
        let per_user = (per_user > 0).then(|| {
            let p = PerUser {
                max: per_user,
                seen: std::sync::Mutex::default(),
                bytes: Family::default(),
                transfers: Family::default(),
            };
            registry.register("user_transfer_bytes", "Bytes moved, by user (bounded) and direction", p.bytes.clone());
            registry.register(
                "user_transfers",
                "Transfers ended, by user (bounded) and direction",
                p.transfers.clone(),
            );
            p
        });
        // Pre-create the series people alert on, so that they exist at zero.
        for result in ["ok", "failed"] {
            let _ = logins.get_or_create(&ResultLabel { result });
            for connection in ["control", "data"] {
                let _ = tls.get_or_create(&TlsLabels { connection, result });
            }
            let _ = reloads.get_or_create(&ResultLabel { result });
        }
        Self {
            registry,
            connections,
            sessions,
            logins,
            transfers,
            fs,
            bans,
            tls: TlsMetrics { handshakes: tls, cert_expiry },
            passive: Passive {
                in_use: passive_in_use,
                exhausted: passive_exhausted,
                last_exhausted: std::sync::atomic::AtomicU64::new(0),
            },
            reloads: Reloads { count: reloads, last_ok: reload_time },
            per_user,
        }
    }

    /// Counts `event`.
    pub fn record(&self, event: &Event<'_>) {
        match event {
            Event::Connected(_) => {
                self.connections.inc();
                self.sessions.inc();
            }
            Event::Closed(..) => {
                self.sessions.dec();
            }
            Event::LoginOk(_) => {
                self.logins.get_or_create(&ResultLabel { result: "ok" }).inc();
            }
            Event::LoginFailed(..) => {
                self.logins.get_or_create(&ResultLabel { result: "failed" }).inc();
            }
            Event::TransferStarted(..) => {
                self.transfers.running.inc();
            }
            Event::Banned(..) => {
                self.bans.inc();
            }
            Event::Reloaded(report, _) => self.reloaded(report.failed.is_empty()),
            Event::TlsHandshake(_, channel, ok) => {
                let connection = match channel {
                    Channel::Control => "control",
                    Channel::Data => "data",
                };
                let result = if *ok { "ok" } else { "failed" };
                self.tls.handshakes.get_or_create(&TlsLabels { connection, result }).inc();
            }
            Event::NoPassivePort(_) => {
                self.passive.exhausted.inc();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                self.passive.last_exhausted.store(now.as_secs(), std::sync::atomic::Ordering::Relaxed);
            }
            Event::Command(..) | Event::Reply(..) | Event::DataOpened(..) | Event::Unbanned(_) => {}
            Event::Transfer(who, t) => {
                let t_ = &self.transfers;
                t_.running.dec();
                let direction = Dir::from(t.direction);
                let result = if t.error.is_none() { "complete" } else { "failed" };
                t_.ended.get_or_create(&TransferLabels { direction, result }).inc();
                t_.bytes.get_or_create(&DirLabel { direction }).inc_by(t.bytes);
                t_.size.get_or_create(&DirLabel { direction }).observe(t.bytes as f64);
                t_.duration.get_or_create(&DirLabel { direction }).observe(t.elapsed.as_secs_f64());
                if let (Some(p), Some(user)) = (&self.per_user, who.user) {
                    let labels = UserLabels { user: p.label(user), direction };
                    p.bytes.get_or_create(&labels).inc_by(t.bytes);
                    p.transfers.get_or_create(&labels).inc();
                }
            }
            Event::Fs(_, op) => {
                let op = match op {
                    FsOp::Mkdir(_) => "mkdir",
                    FsOp::Rmdir(_) => "rmdir",
                    FsOp::Delete(..) => "delete",
                    FsOp::Rename(..) => "rename",
                };
                self.fs.get_or_create(&OpLabel { op }).inc();
            }
        }
    }

    /// The served certificate's end of validity (Unix seconds).
    pub fn certificate_expires(&self, at: i64) {
        self.tls.cert_expiry.set(at);
    }

    /// Counts a reload.
    pub fn reloaded(&self, ok: bool) {
        self.reloads.count.get_or_create(&ResultLabel { result: if ok { "ok" } else { "failed" } }).inc();
        if ok {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            self.reloads.last_ok.set(now.as_secs_f64());
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        self.passive.in_use.set(crate::datachan::passive_ports_in_use());
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::events::{Transfer, Who};

    #[test]
    fn events_become_series() {
        let m = Metrics::new(1);
        let who = Who { id: 1, ip: "127.0.0.1".parse().unwrap(), user: Some("alice"), anonymous: false, root: None };
        m.record(&Event::Connected(who));
        m.record(&Event::LoginFailed(who, "bad"));
        m.record(&Event::LoginOk(who));
        let t = Transfer {
            verb: "RETR",
            direction: Direction::Download,
            path: "/f",
            bytes: 5000,
            elapsed: Duration::from_millis(20),
            ascii: false,
            protected: false,
            error: None,
        };
        m.record(&Event::Transfer(who, t));
        let text = m.encode();
        for line in [
            "ferry_connections_total 1",
            "ferry_sessions 1",
            "ferry_logins_total{result=\"ok\"} 1",
            "ferry_logins_total{result=\"failed\"} 1",
            "ferry_transfers_total{direction=\"download\",result=\"complete\"} 1",
            "ferry_transfer_bytes_total{direction=\"download\"} 5000",
            "ferry_transfer_size_bytes_count{direction=\"download\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        assert!(text.contains("ferry_user_transfer_bytes_total{user=\"alice\",direction=\"download\"} 5000"), "{text}");
        // Beyond the bound, users share one series.
        let bob = Who { user: Some("bob"), ..who };
        m.record(&Event::Transfer(bob, t));
        let text = m.encode();
        assert!(text.contains("ferry_user_transfers_total{user=\"_other\",direction=\"download\"} 1"), "{text}");
        assert!(!text.contains("bob"));
        let plain = Metrics::new(0);
        plain.record(&Event::Transfer(who, t));
        assert!(!plain.encode().contains("alice"), "no user names in labels unless asked");
    }
}
