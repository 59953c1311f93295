//! The migration lock: a PostgreSQL session advisory lock on a dedicated connection.
//!
//! One migrator per database and history table runs at a time. The lock is taken
//! by polling `pg_try_advisory_lock` (never the blocking `pg_advisory_lock`: a
//! session waiting on it would deadlock with `CREATE INDEX CONCURRENTLY`, which
//! waits for every other transaction, the waiter's included). Its key is derived
//! from the database name, history schema and history table, so two history
//! tables in one database have two locks.
//!
//! # Caveats
//! The lock lives as long as its connection. If the connection drops (network,
//! server restart), PostgreSQL releases the lock; [`MigrationLock::check`] notices
//! that before each file, so a runner never goes on without it.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;

use crate::connect::{ConnectError, ConnectOptions, Connection};
use crate::history::HistoryTable;

/// Who holds the lock, from `pg_locks` and `pg_stat_activity`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockHolder {
    /// Backend process id.
    pub pid: i32,
    /// The holder's `application_name`.
    pub application_name: String,
    /// Client address, if over TCP.
    pub client_addr: Option<String>,
    /// When the holder's session started (RFC 3339 UTC).
    pub since: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        let app = if self.application_name.is_empty() {
            "no application_name"
        } else {
            &self.application_name
        };
        write!(f, ", application_name {app}")?;
        match &self.client_addr {
            Some(a) => write!(f, ", client {a}")?,
            None => write!(f, ", local socket")?,
        }
        if let Some(s) = &self.since {
            write!(f, ", connected since {s}")?;
        }
        Ok(())
    }
}

/// Why the lock could not be taken or kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The lock's connection could not be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The lock's connection was refused for the number of connections (SQLSTATE
    /// 53300): the first one worked, the second did not.
    #[error(
        "{cause}; kubemigrate needs two connections (one runs the files, one holds the migration lock): \
         allow the role at least 2 (ALTER ROLE … CONNECTION LIMIT 2), or free a connection"
    )]
    SecondConnection {
        /// The refusal.
        cause: ConnectError,
    },
    /// Another session held the lock for the whole timeout.
    #[error("timed out after {waited} waiting for the migration lock{}", holder_suffix(.holder))]
    Timeout {
        /// How long it waited, human-readable.
        waited: String,
        /// The holder when it gave up.
        holder: Option<LockHolder>,
    },
    /// The lock's connection failed while the lock was held.
    #[error("lost the connection that holds the migration lock: {0}")]
    Lost(String),
    /// The lock's connection failed while waiting for the lock (a server restart):
    /// nothing was run.
    #[error("lost the connection while waiting for the migration lock (nothing was run): {0}")]
    WaitLost(String),
}

fn holder_suffix(holder: &Option<LockHolder>) -> String {
    match holder {
        Some(h) => format!(" (held by {h})"),
        None => String::new(),
    }
}

/// The advisory lock key for a database and history table.
pub fn lock_key(database: &str, history: &HistoryTable) -> i64 {
    let mut h = Sha256::new();
    for part in ["kubemigrate", database, &history.schema, &history.table] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// A held migration lock. Release it with [`MigrationLock::release`]; dropping it
/// closes its connection, which releases it too.
#[derive(Debug)]
pub struct MigrationLock {
    conn: Connection,
    key: i64,
    waited: Option<Duration>,
    /// When the lock was last confirmed.
    checked: std::sync::Mutex<Instant>,
}

/// The `pg_locks` query of [`MigrationLock::check`]. Its parameters are typed in the
/// call, so it is parsed, bound and run in one round trip (no prepare before).
const CHECK_SQL: &str = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
     AND pid = pg_backend_pid() AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)";

/// Polling backoff: the first retry after 50 ms, doubling up to 1 s.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(1);
/// How often a waiter reports the holder again when it has not changed.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// SQLSTATE `too_many_connections`: the server (or the role's `CONNECTION LIMIT`)
/// refuses another connection.
pub(crate) const TOO_MANY_CONNECTIONS: &str = "53300";

impl MigrationLock {
    /// Opens the lock's dedicated connection (for [`MigrationLock::acquire_on`]), so
    /// that a caller can open it while it opens its other one.
    ///
    /// # Errors
    /// [`LockError::Connect`], or [`LockError::SecondConnection`] when the server
    /// refuses it for the number of connections.
    pub async fn connect(options: &ConnectOptions) -> Result<Connection, LockError> {
        options.connect().await.map_err(|cause| match &cause {
            ConnectError::Server { code, .. } if code == TOO_MANY_CONNECTIONS => {
                LockError::SecondConnection { cause }
            }
            _ => LockError::Connect(cause),
        })
    }

    /// Polls `pg_try_advisory_lock` on `conn`, the lock's dedicated connection that
    /// [`MigrationLock::connect`] opened with the same `options`, until it succeeds
    /// or `timeout` passes. `on_wait` is called when the lock is found taken,
    /// whenever the holder changes, and every 10 s while waiting.
    ///
    /// # Errors
    /// [`LockError::Timeout`] when the lock stays taken, [`LockError::WaitLost`] when
    /// the connection breaks while waiting.
    pub async fn acquire_on(
        conn: Connection,
        options: &ConnectOptions,
        history: &HistoryTable,
        timeout: Duration,
        on_wait: &mut dyn FnMut(Option<&LockHolder>, Duration),
    ) -> Result<MigrationLock, LockError> {
        let key = lock_key(&options.dbname, history);
        let start = Instant::now();
        let mut delay = FIRST_RETRY;
        let mut last_holder: Option<LockHolder> = None;
        let mut last_report: Option<Instant> = None;
        loop {
            let got: bool = conn
                .client
                .query_typed_one("SELECT pg_try_advisory_lock($1)", &[(&key, Type::INT8)])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| LockError::WaitLost(crate::migrator::describe(&e)))?;
            if got {
                let waited = last_report.map(|_| start.elapsed());
                return Ok(MigrationLock {
                    conn,
                    key,
                    waited,
                    checked: std::sync::Mutex::new(Instant::now()),
                });
            }
            let holder = holder(&conn, key).await;
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(LockError::Timeout {
                    waited: format!("{}s", timeout.as_secs_f64()),
                    holder,
                });
            }
            let changed = holder.as_ref().map(|h| h.pid) != last_holder.as_ref().map(|h| h.pid);
            if changed || last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
                on_wait(holder.as_ref(), waited);
                last_report = Some(Instant::now());
            }
            last_holder = holder;
            tokio::time::sleep(delay.min(timeout.saturating_sub(waited))).await;
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    /// How long it waited for another holder; `None` when the lock was free.
    pub fn waited(&self) -> Option<Duration> {
        self.waited
    }

    /// The lock's key.
    pub fn key(&self) -> i64 {
        self.key
    }

    /// The lock's connection. Its session only ever runs kubemigrate's own
    /// statements, never a migration's, so it is where the history is written
    /// outside a file's own transaction: a file cannot change its role, its settings
    /// or its transaction state.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.conn.client
    }

    /// Confirms the lock is still held by this session.
    ///
    /// # Errors
    /// [`LockError::Lost`] when the connection is gone or the lock is not held.
    pub async fn check(&self) -> Result<(), LockError> {
        let (classid, objid) = split_key(self.key);
        let held: bool = self
            .conn
            .client
            .query_typed_one(CHECK_SQL, &[(&classid, Type::INT8), (&objid, Type::INT8)])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| LockError::Lost(e.to_string()))?;
        if !held {
            return Err(LockError::Lost(
                "the session no longer holds the advisory lock".into(),
            ));
        }
        if let Ok(mut at) = self.checked.lock() {
            *at = Instant::now();
        }
        Ok(())
    }

    /// [`MigrationLock::check`], unless the lock was confirmed less than `every` ago.
    ///
    /// # Caveats
    /// Between checks a lost lock goes unnoticed for up to `every`. For files that
    /// run in a transaction the history's unique index still stops a second runner
    /// from recording (and so from committing) a file twice.
    ///
    /// # Errors
    /// As [`MigrationLock::check`].
    pub async fn check_every(&self, every: Duration) -> Result<(), LockError> {
        let recent = self
            .checked
            .lock()
            .map(|at| at.elapsed() < every)
            .unwrap_or(false);
        if recent {
            return Ok(());
        }
        self.check().await
    }

    /// Releases the lock and closes its connection. Errors are ignored: a closed
    /// connection has released the lock already.
    pub async fn release(self) {
        let _ = self
            .conn
            .client
            .query_typed_one("SELECT pg_advisory_unlock($1)", &[(&self.key, Type::INT8)])
            .await;
    }
}

/// `pg_locks` shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits).
fn split_key(key: i64) -> (i64, i64) {
    let k = key as u64;
    ((k >> 32) as i64, (k & 0xffff_ffff) as i64)
}

async fn holder(conn: &Connection, key: i64) -> Option<LockHolder> {
    let (classid, objid) = split_key(key);
    let row = conn
        .client
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), host(a.client_addr), \
             to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = \
             (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1 LIMIT 1",
            &[&classid, &objid],
        )
        .await
        .ok()??;
    Some(LockHolder {
        pid: row.try_get(0).ok()?,
        application_name: row.try_get(1).ok()?,
        client_addr: row.try_get(2).ok()?,
        since: row.try_get(3).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_database_schema_and_table() {
        let h = HistoryTable::default();
        let k = lock_key("app", &h);
        assert_eq!(k, lock_key("app", &h));
        assert_ne!(k, lock_key("other", &h));
        let other_table = HistoryTable {
            table: "hist2".into(),
            ..HistoryTable::default()
        };
        assert_ne!(k, lock_key("app", &other_table));
        // No ambiguity from concatenation.
        let a = HistoryTable {
            schema: "ab".into(),
            table: "c".into(),
        };
        let b = HistoryTable {
            schema: "a".into(),
            table: "bc".into(),
        };
        assert_ne!(lock_key("d", &a), lock_key("d", &b));
    }

    #[test]
    fn split_key_matches_pg_locks_layout() {
        assert_eq!(split_key(-1), (0xffff_ffff, 0xffff_ffff));
        assert_eq!(split_key(0x1_0000_0002), (1, 2));
    }
}
