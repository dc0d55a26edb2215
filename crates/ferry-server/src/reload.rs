//! Reloading the configuration file while the server runs.
//!
//! A reload reads everything first (the configuration, the users, the certificate) and swaps
//! nothing until all of it is read and valid; then it swaps all of it at once. Sessions keep the
//! settings they logged in with; new connections and new logins see the new ones.
//!
//! Not every setting can change in a running process: listeners are bound, the storage is open,
//! the sandbox's rules are fixed (roots, ports), log files and hooks are running. [`FIELDS`] is the
//! one table of which are which. A changed setting that needs a restart keeps its running value and
//! the reload report says so, by name.

use crate::config::Config;

/// What a reload did: the parts reloaded, those that failed (with why; then nothing was swapped),
/// and settings that changed but take effect only after a restart.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ReloadReport {
    /// What was reloaded ("users file ... (N accounts)", "TLS certificate and key").
    pub reloaded: Vec<String>,
    /// What could not be, and why.
    pub failed: Vec<String>,
    /// Settings changed in the file that a running server cannot apply (`listen`, `storage`, ...):
    /// they keep their running values until a restart.
    #[serde(default)]
    pub restart_needed: Vec<String>,
}

/// Runs a reload (the program that read the files knows how to read them again).
pub type Reloader = Box<dyn Fn() -> ReloadReport + Send + Sync>;

/// One setting (or group of settings): its name in `ferry.toml`, whether it differs between two
/// configurations, and, when a running server can apply it, how to copy it over.
struct Field {
    name: &'static str,
    differs: fn(&Config, &Config) -> bool,
    /// `None`: needs a restart.
    apply: Option<fn(&mut Config, &Config)>,
}

macro_rules! field {
    ($name:literal, $($path:ident).+, live) => {
        Field {
            name: $name,
            differs: |a, b| a.$($path).+ != b.$($path).+,
            apply: Some(|to, from| to.$($path).+ = from.$($path).+.clone()),
        }
    };
    ($name:literal, $($path:ident).+, restart) => {
        Field { name: $name, differs: |a, b| a.$($path).+ != b.$($path).+, apply: None }
    };
}

/// Every setting, and whether a reload applies it.
const FIELDS: &[Field] = &[
    field!("banner", banner, live),
    field!("anonymous", anonymous, live),
    field!("fsync", fsync, live),
    field!("limits", limits, live),
    field!("passive.address", passive.address, live),
    field!("passive.allow_any_peer_unsafe", passive.allow_any_peer_unsafe, live),
    field!("active.allow_third_party_unsafe", active.allow_third_party_unsafe, live),
    field!("active.allow_low_ports_unsafe", active.allow_low_ports_unsafe, live),
    field!("tls.policy", tls.policy, live),
    field!("tls.cert", tls.cert, live),
    field!("tls.key", tls.key, live),
    field!("tls.allow_data_without_reuse_unsafe", tls.allow_data_without_reuse_unsafe, live),
    field!("tls.handshake_timeout_secs", tls.handshake_timeout_secs, live),
    // Bound sockets and the sandbox's port rules.
    field!("listen", listen, restart),
    field!("tls.implicit_listen", tls.implicit_listen, restart),
    field!("passive.ports", passive.ports, restart),
    field!("active.source_port", active.source_port, restart),
    field!("admin", admin, restart),
    // Open storage and the sandbox's directory rules.
    field!("root", root, restart),
    field!("anonymous_root", anonymous_root, restart),
    field!("users_file", users_file, restart),
    field!("storage", storage, restart),
    field!("process", process, restart),
    // Running parts.
    field!("log", log, restart),
    field!("bans", bans, restart),
    field!("hooks", hooks, restart),
    field!("accounts", accounts, restart),
    field!("proxy_protocol", proxy_protocol, restart),
    field!("host", hosts, restart),
];

/// A new configuration compared with the running one.
#[derive(Debug)]
pub struct Staged {
    /// The running configuration with every setting a reload can apply taken from the new one.
    pub config: Config,
    /// The settings that changed and are applied.
    pub changed: Vec<&'static str>,
    /// The settings that changed and need a restart (they keep their running values).
    pub restart_needed: Vec<&'static str>,
}

/// Compares `new` with `running`: what a reload applies, and what waits for a restart.
pub fn stage(running: &Config, new: &Config) -> Staged {
    let mut config = running.clone();
    let (mut changed, mut restart_needed) = (Vec::new(), Vec::new());
    for f in FIELDS.iter().filter(|f| (f.differs)(running, new)) {
        match f.apply {
            Some(apply) => {
                apply(&mut config, new);
                changed.push(f.name);
            }
            None => restart_needed.push(f.name),
        }
    }
    // Turning TLS on or off changes the listeners' offer and needs a certificate loaded at start.
    if running.tls.cert.is_some() != new.tls.cert.is_some() {
        config.tls = running.tls.clone();
        changed.retain(|n| !n.starts_with("tls."));
        restart_needed.push("tls (turned on or off)");
    }
    Staged { config, changed, restart_needed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    #[test]
    fn nothing_changed_nothing_staged() {
        let c = parse("");
        let s = stage(&c, &c.clone());
        assert!(s.changed.is_empty() && s.restart_needed.is_empty());
        assert_eq!(s.config, c);
    }

    #[test]
    fn live_settings_are_applied_restart_ones_kept() {
        let old = parse("banner = \"old\"\nlisten = [\"127.0.0.1:2121\"]\n");
        let new = parse(
            "banner = \"new\"\nlisten = [\"127.0.0.1:2222\"]\n[limits]\nidle_timeout_secs = 7\n[passive]\nports = \"40000-40010\"\n",
        );
        let s = stage(&old, &new);
        assert_eq!(s.changed, ["banner", "limits"]);
        assert_eq!(s.restart_needed, ["listen", "passive.ports"]);
        assert_eq!(s.config.banner, "new");
        assert_eq!(s.config.limits.idle_timeout_secs, 7);
        assert_eq!(s.config.listen, old.listen);
        assert_eq!(s.config.passive.ports, None);
    }

    #[test]
    fn turning_tls_on_needs_a_restart() {
        let old = parse("");
        let new = parse("[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n");
        let s = stage(&old, &new);
        assert!(s.changed.is_empty(), "{:?}", s.changed);
        assert_eq!(s.restart_needed, ["tls (turned on or off)"]);
        assert_eq!(s.config.tls, old.tls);
    }

    /// Does not compile when `Config` gains a setting: give it a row in [`FIELDS`] (live or
    /// restart), then name it here.
    #[allow(dead_code, reason = "a compile-time check, never called")]
    fn every_setting_has_a_row(c: Config) {
        let Config {
            listen: _,
            root: _,
            users_file: _,
            anonymous: _,
            anonymous_root: _,
            banner: _,
            fsync: _,
            passive: _,
            active: _,
            limits: _,
            tls: _,
            proxy_protocol: _,
            storage: _,
            process: _,
            log: _,
            admin: _,
            bans: _,
            hooks: _,
            hosts: _,
            accounts: _,
        } = c;
    }

    #[test]
    fn each_row_names_a_real_setting_once() {
        let mut names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a setting has two rows");
        let text = include_str!("../../../ferry.example.toml");
        for f in FIELDS {
            let key = f.name.rsplit('.').next().unwrap();
            assert!(text.contains(key), "{} is not in ferry.example.toml", f.name);
        }
    }
}
