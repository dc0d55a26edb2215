//! Accounts in PostgreSQL (`[accounts] kind = "postgres"`), shared by every node of a cluster:
//! users and groups, quotas (reserved as uploads stream, so two nodes cannot both overrun one),
//! per-account session counts, bans and the login history. The schema is in
//! `crates/ferry-server/migrations/` and is applied by `ferry accounts migrate`.
//!
//! A login costs one query for the account (the password check runs on the hashing threads, and a
//! verified password is cached in memory keyed by its stored hash); the session claim is a second
//! round trip only for accounts with a session limit. When the database cannot be reached, logins
//! get 421 and sessions already logged in go on: their quota changes are applied when it is back.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres::NoTls;

use super::model::{parse_networks, parse_permissions, AccountRecord, AccountsConfig};
use super::{
    check_password, dummy_hash, is_current_hash, AccountLimits, AuthError, Authenticator, User, VerifiedCache,
};
use crate::bans::{Ban, BanStore};
use crate::limits::{Cluster, QuotaLedger, Released, Unavailable, Usage};

/// The schema's versions, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "accounts", include_str!("../../migrations/0001_accounts.sql"))];

/// How often a node tells the database its sessions and reservations are alive.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a session slot claimed with the login's account query waits for its session.
const PRE_CLAIM_TTL: Duration = Duration::from_secs(10);

/// The accounts database.
#[derive(Clone)]
pub struct PgAccounts {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// The server's root: account roots are resolved beneath it.
    base: PathBuf,
    /// This process, in the sessions, reservations and login history.
    node: String,
    verified: VerifiedCache,
    timeout: Duration,
    /// Session slots claimed by a login's account query (one round trip for both), by account,
    /// waiting for the session to take them ([`Cluster::claim_session`]); unused ones are given
    /// back after [`PRE_CLAIM_TTL`].
    claims: std::sync::Mutex<std::collections::HashMap<String, Vec<(std::time::Instant, i64)>>>,
}

impl std::fmt::Debug for PgAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAccounts").field("node", &self.inner.node).field("base", &self.inner.base).finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> Unavailable {
    Unavailable(e.to_string())
}

impl From<Unavailable> for AuthError {
    fn from(e: Unavailable) -> Self {
        AuthError::Unavailable(e.0)
    }
}

/// An account as `ferry user add` writes it: `None` leaves a value as it is (for a new user: unset).
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// The login name.
    pub name: String,
    /// A new password hash (required for a new user).
    pub password_hash: Option<String>,
    /// The group whose settings the user inherits.
    pub group: Option<String>,
    /// The root (relative to the server's root, or absolute inside it).
    pub root: Option<String>,
    /// Comma-separated permissions.
    pub permissions: Option<String>,
    /// Quota: bytes.
    pub quota_bytes: Option<u64>,
    /// Quota: files.
    pub quota_files: Option<u64>,
    /// Sessions at once, on all nodes.
    pub max_sessions: Option<u32>,
}

/// A group as `ferry group add` writes it (`None`: unset, members decide).
#[derive(Debug, Clone, Default)]
pub struct GroupUpdate {
    /// The group's name.
    pub name: String,
    /// The members' root.
    pub root: Option<String>,
    /// Comma-separated permissions.
    pub permissions: Option<String>,
    /// Quota of each member: bytes.
    pub quota_bytes: Option<u64>,
    /// Quota of each member: files.
    pub quota_files: Option<u64>,
    /// Sessions at once of each member.
    pub max_sessions: Option<u32>,
}

/// One line of `ferry user list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The login name.
    pub name: String,
    /// The group.
    pub group: Option<String>,
    /// The root as stored.
    pub root: Option<String>,
    /// Permissions in force (the group's when the user has none).
    pub permissions: Option<String>,
    /// The limits in force.
    pub limits: AccountLimits,
    /// Whether it may log in.
    pub enabled: bool,
    /// What it uses now.
    pub usage: Usage,
}

fn to_i64(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn to_u64(v: Option<i64>) -> Option<u64> {
    v.map(|v| v.max(0) as u64)
}

/// How many columns [`ACCOUNT_COLUMNS`] has.
const ACCOUNT_COLUMN_COUNT: usize = 15;
/// The account's columns, the group's filling in what the user leaves unset.
const ACCOUNT_COLUMNS: &str = "u.name, u.password_hash, u.group_name, COALESCE(u.root, g.root), \
     COALESCE(u.permissions, g.permissions), COALESCE(u.tls_required, g.tls_required, false), u.enabled, \
     (u.expires_at IS NOT NULL AND u.expires_at <= now()), u.allow_from, \
     COALESCE(u.max_sessions, g.max_sessions), COALESCE(u.download_bps, g.download_bps), \
     COALESCE(u.upload_bps, g.upload_bps), COALESCE(u.quota_bytes, g.quota_bytes), \
     COALESCE(u.quota_files, g.quota_files), COALESCE(u.allow_fxp, g.allow_fxp, false)";

impl PgAccounts {
    /// A pool of at most `config.pool_size` connections to `config.url`; nothing is connected yet
    /// (needs no runtime; connections are opened by the first use).
    pub fn new(config: &AccountsConfig, base: PathBuf) -> Result<Self, String> {
        let url = config.url.as_deref().ok_or("accounts.url: missing")?;
        let mut pg: tokio_postgres::Config = url.parse().map_err(|e| format!("accounts.url: {e}"))?;
        pg.connect_timeout(config.timeout());
        pg.application_name("ferry");
        let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match (&config.ca_file, pg.get_ssl_mode()) {
            (None, SslMode::Disable | SslMode::Prefer) => {
                if !super::model::is_loopback_url(url) {
                    tracing::warn!(
                        "accounts: the PostgreSQL connection is not encrypted (account rows, password hashes \
                         included, cross the network in clear); set accounts.ca_file or sslmode=require"
                    );
                }
                Manager::from_config(pg, NoTls, recycling)
            }
            (ca_file, _) => {
                // TLS only: never a silent fall-back to a plain connection.
                pg.ssl_mode(SslMode::Require);
                let tls = super::client_tls(ca_file.as_deref(), "accounts.ca_file")?;
                Manager::from_config(pg, tokio_postgres_rustls::MakeRustlsConnect::new(tls), recycling)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.timeout()))
            .create_timeout(Some(config.timeout()))
            .recycle_timeout(Some(config.timeout()))
            .build()
            .map_err(|e| format!("accounts: {e}"))?;
        let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "ferry".into());
        let node = format!("{host}-{}-{:08x}", std::process::id(), rand::random::<u32>());
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                base,
                node,
                verified: VerifiedCache::new(),
                timeout: config.timeout(),
                claims: std::sync::Mutex::default(),
            }),
        })
    }

    /// This process's name in the database.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Unavailable> {
        self.inner.pool.get().await.map_err(unavailable)
    }

    /// Runs a query with the login timeout.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Unavailable> {
        match tokio::time::timeout(self.inner.timeout, f).await {
            Ok(r) => r.map_err(unavailable),
            Err(_) => Err(Unavailable("the database did not answer in time".into())),
        }
    }

    /// Applies the migrations not applied yet, in one transaction (several nodes may run this at
    /// once: they take turns); the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i32>, String> {
        let mut client = self.client().await.map_err(|e| e.0)?;
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(hashtext('ferry_schema'));
             CREATE TABLE IF NOT EXISTS ferry_schema (
                 version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(|e| e.to_string())?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM ferry_schema", &[])
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut done = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(sql).await.map_err(|e| format!("migration {version} ({name}): {e}"))?;
            tx.execute("INSERT INTO ferry_schema (version, name) VALUES ($1, $2)", &[version, name])
                .await
                .map_err(|e| e.to_string())?;
            done.push(*version);
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(done)
    }

    /// The schema version in the database (0: none yet).
    pub async fn schema_version(&self) -> Result<i32, Unavailable> {
        let client = self.client().await?;
        let exists: bool =
            self.bounded(client.query_one("SELECT to_regclass('ferry_schema') IS NOT NULL", &[])).await?.get(0);
        if !exists {
            return Ok(0);
        }
        let row = self.bounded(client.query_one("SELECT COALESCE(MAX(version), 0) FROM ferry_schema", &[])).await?;
        Ok(row.get(0))
    }

    /// Checks at start-up that the schema is the one this version needs: an error when it is
    /// older (run `ferry accounts migrate`); a database that cannot be reached is only logged
    /// (logins get 421 until it can).
    pub async fn check_schema(&self) -> Result<(), String> {
        let want = MIGRATIONS.last().map_or(0, |m| m.0);
        match self.schema_version().await {
            Ok(v) if v >= want => Ok(()),
            Ok(v) => Err(format!(
                "the accounts database has schema version {v}, this Ferry needs {want}: run `ferry accounts migrate --config FILE`"
            )),
            Err(e) => {
                tracing::error!(error = %e, "accounts database unreachable at start-up; logins get 421 until it is back");
                Ok(())
            }
        }
    }

    /// The account (password hash and record) and, in the same statement (one round trip), a
    /// session slot when the account has a session limit: `Some(id)` claimed, `None` not claimed
    /// (no limit, disabled, or already full: the session's own claim then decides).
    async fn account(
        &self,
        name: &str,
        claim: bool,
    ) -> Result<Option<(String, AccountRecord, Option<i64>)>, Unavailable> {
        let client = self.client().await?;
        let slot = if claim {
            "CASE WHEN u.enabled AND COALESCE(u.max_sessions, g.max_sessions) IS NOT NULL \
             THEN ferry_claim_session(u.name, $2, COALESCE(u.max_sessions, g.max_sessions)) END"
        } else {
            "CAST(NULL AS bigint)"
        };
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, {slot} FROM ferry_users u LEFT JOIN ferry_groups g ON g.name = u.group_name \
             WHERE u.name = $1"
        );
        let stmt = self.bounded(client.prepare_cached(&sql)).await?;
        let row = if claim {
            self.bounded(client.query_opt(&stmt, &[&name, &self.inner.node])).await?
        } else {
            self.bounded(client.query_opt(&stmt, &[&name])).await?
        };
        Ok(row.map(|r| {
            let hash: String = r.get(1);
            (hash, record_of(&r), r.get::<_, Option<i64>>(ACCOUNT_COLUMN_COUNT))
        }))
    }

    /// Keeps a slot claimed at login for the session to take.
    fn keep_claim(&self, name: &str, id: i64) {
        let mut claims = self.inner.claims.lock().unwrap_or_else(|p| p.into_inner());
        claims.entry(name.to_string()).or_default().push((std::time::Instant::now(), id));
    }

    /// A slot claimed at login for `name`, if one is waiting.
    fn take_claim(&self, name: &str) -> Option<i64> {
        let mut claims = self.inner.claims.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = claims.get_mut(name)?;
        let id = waiting.pop().map(|(_, id)| id);
        if waiting.is_empty() {
            claims.remove(name);
        }
        id
    }

    /// Gives back the slots claimed at login that no session took in time (a login refused
    /// after the password check: TLS required, root unavailable).
    fn expire_claims(&self) {
        let stale: Vec<i64> = {
            let mut claims = self.inner.claims.lock().unwrap_or_else(|p| p.into_inner());
            let mut stale = Vec::new();
            claims.retain(|_, waiting| {
                waiting.retain(|(at, id)| {
                    let keep = at.elapsed() < PRE_CLAIM_TTL;
                    if !keep {
                        stale.push(*id);
                    }
                    keep
                });
                !waiting.is_empty()
            });
            stale
        };
        for id in stale {
            drop(PgSlot::new(self, id));
        }
    }

    fn record_login(&self, name: &str, from: IpAddr, ok: bool, reason: Option<&'static str>) {
        let (me, name) = (self.clone(), name.to_string());
        tokio::spawn(async move {
            let Ok(client) = me.client().await else { return };
            let r = me
                .bounded(client.execute(
                    "INSERT INTO ferry_logins (account, ip, node, ok, reason) VALUES ($1, $2, $3, $4, $5)",
                    &[&name, &from, &me.inner.node, &ok, &reason],
                ))
                .await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "login not recorded in the history");
            }
        });
    }

    /// Replaces an imported (bcrypt, SHA-crypt) or older argon2 hash by an argon2id one, now
    /// that the password is known to be right.
    fn rehash(&self, name: &str, password: &str, old: &str) {
        let (me, name, password, old) = (self.clone(), name.to_string(), password.to_string(), old.to_string());
        tokio::spawn(async move {
            let Ok(Ok(new)) = tokio::task::spawn_blocking(move || super::hash_password(&password)).await else {
                return;
            };
            let Ok(client) = me.client().await else { return };
            let r = me
                .bounded(client.execute(
                    "UPDATE ferry_users SET password_hash = $2, updated_at = now() WHERE name = $1 AND password_hash = $3",
                    &[&name, &new, &old],
                ))
                .await;
            match r {
                Ok(1) => tracing::info!(user = %name, "imported password hash replaced by argon2id"),
                Ok(_) => {}
                Err(e) => tracing::warn!(user = %name, error = %e, "password hash not upgraded"),
            }
        });
    }

    /// Adds a user or changes one (`None` fields stay as they are).
    pub async fn upsert_user(&self, u: &UserUpdate) -> Result<(), String> {
        let client = self.client().await.map_err(|e| e.0)?;
        let exists = client
            .query_opt("SELECT 1 FROM ferry_users WHERE name = $1", &[&u.name])
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if !exists && u.password_hash.is_none() {
            return Err(format!("no user {:?}", u.name));
        }
        let (qb, qf, ms) = (to_i64(u.quota_bytes), to_i64(u.quota_files), u.max_sessions.map(|m| m as i32));
        let r = client
            .execute(
                "INSERT INTO ferry_users AS u (name, password_hash, group_name, root, permissions, quota_bytes, quota_files, max_sessions)
                 VALUES ($1, COALESCE($2, ''), $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (name) DO UPDATE SET
                     password_hash = COALESCE($2, u.password_hash), group_name = COALESCE($3, u.group_name),
                     root = COALESCE($4, u.root), permissions = COALESCE($5, u.permissions),
                     quota_bytes = COALESCE($6, u.quota_bytes), quota_files = COALESCE($7, u.quota_files),
                     max_sessions = COALESCE($8, u.max_sessions), updated_at = now()",
                &[&u.name, &u.password_hash, &u.group, &u.root, &u.permissions, &qb, &qf, &ms],
            )
            .await;
        r.map(|_| ()).map_err(|e| match e.as_db_error() {
            Some(db) if db.code() == &tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION => {
                format!("no group {:?} (create it with `ferry group add`)", u.group.as_deref().unwrap_or_default())
            }
            _ => e.to_string(),
        })
    }

    /// Removes a user (and its usage); false when there was none.
    pub async fn delete_user(&self, name: &str) -> Result<bool, String> {
        let client = self.client().await.map_err(|e| e.0)?;
        let n = client.execute("DELETE FROM ferry_users WHERE name = $1", &[&name]).await.map_err(|e| e.to_string())?;
        client.execute("DELETE FROM ferry_usage WHERE account = $1", &[&name]).await.map_err(|e| e.to_string())?;
        Ok(n > 0)
    }

    /// Adds a group or changes one.
    pub async fn upsert_group(&self, g: &GroupUpdate) -> Result<(), String> {
        let client = self.client().await.map_err(|e| e.0)?;
        let (qb, qf, ms) = (to_i64(g.quota_bytes), to_i64(g.quota_files), g.max_sessions.map(|m| m as i32));
        client
            .execute(
                "INSERT INTO ferry_groups AS g (name, root, permissions, quota_bytes, quota_files, max_sessions)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name) DO UPDATE SET
                     root = COALESCE($2, g.root), permissions = COALESCE($3, g.permissions),
                     quota_bytes = COALESCE($4, g.quota_bytes), quota_files = COALESCE($5, g.quota_files),
                     max_sessions = COALESCE($6, g.max_sessions)",
                &[&g.name, &g.root, &g.permissions, &qb, &qf, &ms],
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Removes a group (its members keep their own settings); false when there was none.
    pub async fn delete_group(&self, name: &str) -> Result<bool, String> {
        let client = self.client().await.map_err(|e| e.0)?;
        let n =
            client.execute("DELETE FROM ferry_groups WHERE name = $1", &[&name]).await.map_err(|e| e.to_string())?;
        Ok(n > 0)
    }

    /// Every user, with the settings in force and what it uses.
    pub async fn list(&self) -> Result<Vec<Listing>, String> {
        let client = self.client().await.map_err(|e| e.0)?;
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, COALESCE(s.bytes, 0), COALESCE(s.files, 0) FROM ferry_users u
             LEFT JOIN ferry_groups g ON g.name = u.group_name LEFT JOIN ferry_usage s ON s.account = u.name ORDER BY u.name"
        );
        let rows = client.query(&sql, &[]).await.map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|r| {
                let rec = record_of(r);
                Listing {
                    name: rec.name.clone(),
                    group: r.get(2),
                    root: rec.root.clone(),
                    permissions: r.get(4),
                    limits: rec.limits,
                    enabled: rec.enabled,
                    usage: Usage { bytes: r.get::<_, i64>(15).max(0) as u64, files: r.get::<_, i64>(16).max(0) as u64 },
                }
            })
            .collect())
    }

    /// The stored root of a user (for `ferry accounts recount`); `None` when there is no such user.
    pub async fn root_of(&self, name: &str) -> Result<Option<PathBuf>, String> {
        let found = self.account(name, false).await.map_err(|e| e.0)?;
        Ok(found.map(|(_, r, _)| super::model::resolve_root(&self.inner.base, r.root.as_deref()).unwrap_or_default()))
    }

    /// Sets what an account uses (`ferry accounts recount`, from a walk of its storage).
    pub async fn set_usage(&self, name: &str, usage: Usage) -> Result<(), String> {
        let client = self.client().await.map_err(|e| e.0)?;
        let (b, f) = (to_i64(Some(usage.bytes)), to_i64(Some(usage.files)));
        client
            .execute(
                "INSERT INTO ferry_usage (account, bytes, files) VALUES ($1, $2, $3)
                 ON CONFLICT (account) DO UPDATE SET bytes = $2, files = $3, updated_at = now()",
                &[&name, &b, &f],
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Keeps this node's sessions and reservations alive in the database and clears what dead
    /// nodes left (every [`HEARTBEAT`], until the process ends).
    fn heartbeat(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                me.expire_claims();
                let Ok(client) = me.client().await else { continue };
                let r = me
                    .bounded(client.batch_execute(&format!(
                        "UPDATE ferry_sessions SET seen_at = now() WHERE node = '{node}';
                         UPDATE ferry_reservations SET seen_at = now() WHERE node = '{node}';
                         DELETE FROM ferry_sessions WHERE seen_at < now() - interval '5 minutes';
                         DELETE FROM ferry_reservations WHERE seen_at < now() - interval '1 hour';
                         DELETE FROM ferry_settled WHERE at < now() - interval '1 day';
                         DELETE FROM ferry_bans WHERE until < now() - interval '30 days'",
                        node = me.inner.node.replace('\'', "''")
                    )))
                    .await;
                if let Err(e) = r {
                    tracing::debug!(error = %e, "accounts heartbeat failed");
                }
            }
        });
    }
}

/// An account row (in [`ACCOUNT_COLUMNS`] order) as a record. A value the database holds but
/// Ferry cannot read (a misspelt permission, a bad address range) grants nothing.
fn record_of(r: &tokio_postgres::Row) -> AccountRecord {
    let name: String = r.get(0);
    let permissions = match r.get::<_, Option<String>>(4) {
        None => super::Permissions::all(),
        Some(p) => parse_permissions(&p).unwrap_or_else(|| {
            tracing::error!(user = %name, permissions = %p, "unknown permission in the accounts database: none granted");
            super::Permissions::default()
        }),
    };
    let (allow_from, bad_networks) = match r.get::<_, Option<String>>(8) {
        None => (Vec::new(), false),
        Some(list) => match parse_networks(&list) {
            Ok(n) => (n, false),
            Err(bad) => {
                tracing::error!(user = %name, network = %bad, "bad allow_from in the accounts database: login refused");
                (Vec::new(), true)
            }
        },
    };
    AccountRecord {
        root: r.get(3),
        permissions,
        limits: AccountLimits {
            max_sessions: r.get::<_, Option<i32>>(9).map(|v| v.max(0) as u32),
            download_bps: to_u64(r.get(10)),
            upload_bps: to_u64(r.get(11)),
            quota_bytes: to_u64(r.get(12)),
            quota_files: to_u64(r.get(13)),
            allow_fxp: r.get(14),
        },
        tls_required: r.get(5),
        enabled: r.get::<_, bool>(6) && !bad_networks,
        expired: r.get(7),
        allow_from,
        name,
    }
}

#[async_trait]
impl Authenticator for PgAccounts {
    fn is_anonymous(&self, _name: &str) -> bool {
        false
    }

    async fn authenticate(&self, name: &str, password: &str, from: IpAddr) -> Result<User, AuthError> {
        let found = self.account(name, true).await?;
        // A slot claimed with the account is given back (dropped) unless the login succeeds.
        let claim = found.as_ref().and_then(|(_, _, c)| *c).map(|id| PgSlot::new(self, id));
        let hash = found.as_ref().map(|(h, _, _)| h.as_str());
        let ok = check_password(&self.inner.verified, name, password, hash, dummy_hash(), from).await?;
        let record = match found {
            Some((hash, record, _)) if ok => {
                if !is_current_hash(&hash) {
                    self.rehash(name, password, &hash);
                }
                record
            }
            _ => {
                self.record_login(name, from, false, Some("invalid credentials"));
                return Err(AuthError::InvalidCredentials);
            }
        };
        let admitted = record.admit(&self.inner.base, from);
        match &admitted {
            Ok(_) => {
                self.record_login(name, from, true, None);
                if let Some(slot) = claim {
                    self.keep_claim(name, slot.keep());
                }
            }
            Err(AuthError::Refused(why)) => self.record_login(name, from, false, Some(why)),
            Err(_) => {}
        }
        admitted
    }

    async fn health(&self) -> Result<(), String> {
        let client = self.client().await.map_err(|e| e.0)?;
        self.bounded(client.simple_query("SELECT 1")).await.map(|_| ()).map_err(|e| e.0)
    }
}

/// A session counted in `ferry_sessions`; the row goes when this is dropped.
#[derive(Debug)]
struct PgSlot {
    accounts: PgAccounts,
    /// `None` once kept ([`PgSlot::keep`]).
    id: Option<i64>,
}

impl Released for PgSlot {}

impl PgSlot {
    fn new(accounts: &PgAccounts, id: i64) -> Self {
        Self { accounts: accounts.clone(), id: Some(id) }
    }

    /// The slot's id, kept: dropping this handle no longer gives it back.
    fn keep(mut self) -> i64 {
        self.id.take().unwrap_or_default()
    }
}

impl Drop for PgSlot {
    fn drop(&mut self) {
        let (me, Some(id)) = (self.accounts.clone(), self.id) else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        rt.spawn(async move {
            for attempt in 0..5u32 {
                if let Ok(client) = me.client().await {
                    if me.bounded(client.execute("DELETE FROM ferry_sessions WHERE id = $1", &[&id])).await.is_ok() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            }
            // Not deleted: the heartbeat stops refreshing it, and it stops counting in 30 s.
        });
    }
}

/// An account's quota in the database.
#[derive(Debug)]
struct PgLedger {
    accounts: PgAccounts,
    account: String,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
}

#[async_trait]
impl QuotaLedger for PgLedger {
    async fn usage(&self) -> Result<Usage, Unavailable> {
        let client = self.accounts.client().await?;
        let row = self
            .accounts
            .bounded(client.query_opt("SELECT bytes, files FROM ferry_usage WHERE account = $1", &[&self.account]))
            .await?;
        Ok(row.map_or_else(Usage::default, |r| Usage {
            bytes: r.get::<_, i64>(0).max(0) as u64,
            files: r.get::<_, i64>(1).max(0) as u64,
        }))
    }

    async fn reserve(&self, id: u64, need: u64, want: u64) -> Result<u64, Unavailable> {
        let client = self.accounts.client().await?;
        let quota = to_i64(Some(self.quota_bytes.unwrap_or(u64::MAX)));
        let (id, need, want) = (id as i64, to_i64(Some(need)), to_i64(Some(want)));
        let row = self
            .accounts
            .bounded(client.query_one(
                "SELECT ferry_reserve($1, $2, $3, $4, $5, $6)",
                &[&self.accounts.inner.node, &id, &self.account, &quota, &need, &want],
            ))
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn confirm(&self, id: u64) -> Result<bool, Unavailable> {
        let client = self.accounts.client().await?;
        let row = self
            .accounts
            .bounded(client.query_one(
                "SELECT ferry_confirm($1, $2, $3)",
                &[&self.accounts.inner.node, &(id as i64), &self.account],
            ))
            .await?;
        Ok(row.get(0))
    }

    async fn settle(&self, id: u64, bytes: i64, files: i64) -> Result<(), Unavailable> {
        let client = self.accounts.client().await?;
        self.accounts
            .bounded(client.query_one(
                "SELECT ferry_settle($1, $2, $3, $4, $5)",
                &[&self.accounts.inner.node, &(id as i64), &self.account, &bytes, &files],
            ))
            .await
            .map(|_| ())
    }

    fn quota_bytes(&self) -> Option<u64> {
        self.quota_bytes
    }

    fn quota_files(&self) -> Option<u64> {
        self.quota_files
    }
}

/// The bans in `ferry_bans`.
#[derive(Debug)]
struct PgBans(PgAccounts);

#[async_trait]
impl BanStore for PgBans {
    async fn put(&self, ban: &Ban) -> Result<(), Unavailable> {
        let client = self.0.client().await?;
        let (until, count) = (ban.until as f64, ban.count as i32);
        self.0
            .bounded(client.execute(
                "INSERT INTO ferry_bans (ip, until, count, node) VALUES ($1, to_timestamp($2), $3, $4)
                 ON CONFLICT (ip) DO UPDATE SET until = EXCLUDED.until, count = EXCLUDED.count, node = EXCLUDED.node",
                &[&ban.ip, &until, &count, &self.0.inner.node],
            ))
            .await
            .map(|_| ())
    }

    async fn delete(&self, ip: IpAddr) -> Result<(), Unavailable> {
        let client = self.0.client().await?;
        self.0.bounded(client.execute("DELETE FROM ferry_bans WHERE ip = $1", &[&ip])).await.map(|_| ())
    }

    async fn load(&self) -> Result<Vec<Ban>, Unavailable> {
        let client = self.0.client().await?;
        let rows =
            self.0
                .bounded(client.query(
                    "SELECT ip, extract(epoch from until)::bigint, count FROM ferry_bans WHERE until > now()",
                    &[],
                ))
                .await?;
        Ok(rows
            .iter()
            .map(|r| Ban {
                ip: r.get::<_, IpAddr>(0).to_canonical(),
                until: r.get::<_, i64>(1).max(0) as u64,
                count: r.get::<_, i32>(2).max(0) as u32,
            })
            .collect())
    }
}

#[async_trait]
impl Cluster for PgAccounts {
    async fn claim_session(&self, account: &str, max: u32) -> Result<Option<Box<dyn Released>>, Unavailable> {
        if let Some(id) = self.take_claim(account) {
            return Ok(Some(Box::new(PgSlot::new(self, id))));
        }
        let client = self.client().await?;
        let max = i32::try_from(max).unwrap_or(i32::MAX);
        let row = self
            .bounded(client.query_one("SELECT ferry_claim_session($1, $2, $3)", &[&account, &self.inner.node, &max]))
            .await?;
        Ok(row.get::<_, Option<i64>>(0).map(|id| Box::new(PgSlot::new(self, id)) as Box<dyn Released>))
    }

    fn ledger(&self, account: &str, quota_bytes: Option<u64>, quota_files: Option<u64>) -> Arc<dyn QuotaLedger> {
        Arc::new(PgLedger { accounts: self.clone(), account: account.to_string(), quota_bytes, quota_files })
    }

    fn bans(&self) -> Arc<dyn BanStore> {
        Arc::new(PgBans(self.clone()))
    }

    fn start(&self) {
        self.heartbeat();
    }
}
