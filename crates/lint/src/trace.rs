//! The locks each statement takes: [`trace_source`] runs the files on a database
//! (a throwaway one: this changes it), one statement at a time, and reads
//! `pg_locks` for the runner's backend from a second connection.
//!
//! # How the locks are observed
//! - A statement that can run in a transaction runs in one on the runner's
//!   connection: the file's own transaction for a file kubemigrate wraps (so a lock
//!   is held from the statement that takes it to the file's `COMMIT`, as in a real
//!   run), the file's own `BEGIN` … `COMMIT` for a file that has them, and a
//!   `BEGIN` … `COMMIT` around the single statement otherwise (a no-transaction
//!   file: the statement would commit on its own at once). After the statement and
//!   before the transaction ends, the observer reads the runner's relation locks
//!   from `pg_locks`: the locks not held before the statement are the ones it took.
//! - A statement PostgreSQL refuses in a transaction block (SQLSTATE 25001:
//!   `CREATE INDEX CONCURRENTLY`, `VACUUM`, …) runs on its own while the observer
//!   holds a snapshot open (`REPEATABLE READ`). A concurrent index build waits for
//!   that snapshot to end while it holds its lock, so the observer, polling
//!   `pg_locks` every few milliseconds, sees the lock; then it ends its
//!   transaction and the statement completes. A statement that never waits may
//!   end between two polls: then its locks are not seen, and the trace says so.
//!
//! Locks on system catalogs are left out. A relation created by the runner's open
//! transaction is invisible to the observer; the runner names it itself, and it is
//! marked `new` (nobody else can be blocked by it).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kubemigrate_sql::lexer;
use kubemigrate_sql::script::{Item, Script, ScriptError, Variables};
use kubemigrate_sql::source::{Migration, Source};
use serde::Serialize;
use tokio_postgres::Client;

use crate::TxMode;

/// Why a trace stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// A file cannot be read as the engine would run it.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// A statement failed: the migration would fail the same way.
    #[error("{file}:{line}:{column}: {message} (statement {statement} of {version})")]
    Statement {
        /// The migration.
        version: String,
        /// The file holding the statement.
        file: String,
        /// Its line.
        line: u32,
        /// Its column.
        column: u32,
        /// Its number in the migration.
        statement: usize,
        /// The server's message.
        message: String,
    },
    /// The runner's or the observer's connection failed.
    #[error("{context}: {message}")]
    Database {
        /// What was being done.
        context: String,
        /// The error.
        message: String,
    },
}

fn db(context: &str) -> impl FnOnce(tokio_postgres::Error) -> TraceError + '_ {
    move |e| TraceError::Database {
        context: context.to_string(),
        message: describe(&e),
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} (SQLSTATE {})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

/// A lock a statement took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockTaken {
    /// The relation, schema-qualified unless in `public`.
    pub relation: String,
    /// `table`, `index`, `sequence`, `view`, `materialized view`, … .
    pub kind: String,
    /// PostgreSQL's name of the mode (`AccessExclusiveLock`).
    pub mode: String,
    /// Whether it blocks `SELECT` on the relation (only ACCESS EXCLUSIVE does).
    pub blocks_reads: bool,
    /// Whether it blocks `INSERT`, `UPDATE`, `DELETE` (SHARE and stronger).
    pub blocks_writes: bool,
    /// The relation was created by this transaction: nobody else can see it yet,
    /// so the lock blocks nobody.
    pub new: bool,
    /// From the start of the statement that took it to the end of the transaction
    /// that held it (milliseconds); for a statement run outside a transaction, its
    /// duration.
    pub held_ms: u64,
}

/// One statement's trace.
#[derive(Debug, Clone, Serialize)]
pub struct StatementTrace {
    /// Its number in the migration, from 1.
    pub statement: usize,
    /// The file holding it (the migration or an included file).
    pub file: PathBuf,
    /// Its line.
    pub line: u32,
    /// Its column.
    pub column: u32,
    /// Its first line, as sent.
    pub text: String,
    /// How long it ran (milliseconds).
    pub duration_ms: u64,
    /// How its locks were observed: `transaction` (in the file's transaction, or
    /// one around it) or `concurrent` (it cannot run in a transaction block; see
    /// the module docs).
    pub observed: &'static str,
    /// The locks it took.
    pub locks: Vec<LockTaken>,
    /// A remark (a concurrent statement that ended before it could be seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One file's trace.
#[derive(Debug, Clone, Serialize)]
pub struct FileTrace {
    /// The file name.
    pub version: String,
    /// How kubemigrate runs it.
    pub mode: TxMode,
    /// Its statements.
    pub statements: Vec<StatementTrace>,
    /// How long it ran (milliseconds).
    pub duration_ms: u64,
}

/// What a trace found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TraceReport {
    /// The files run, in order.
    pub files: Vec<FileTrace>,
}

/// A relation lock as `pg_locks` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Held {
    oid: u32,
    mode: String,
}

/// Runs the files of `source` (those in `only`, when given) on the database that
/// `runner` and `observer` are connected to, and reports each statement's locks.
///
/// # Errors
/// A file that cannot be read, a statement that fails (the migration would fail
/// too), a connection error.
pub async fn trace_source(
    runner: &Client,
    observer: &Client,
    source: &Source,
    vars: &Variables,
    only: Option<&HashSet<String>>,
    progress: &mut dyn FnMut(&FileTrace),
) -> Result<TraceReport, TraceError> {
    let pid: i32 = runner
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(db("reading the runner's backend pid"))?
        .get(0);
    let mut report = TraceReport::default();
    for m in &source.migrations {
        if only.is_some_and(|o| !o.contains(&*m.version)) {
            continue;
        }
        let file = trace_file(runner, observer, pid, source, m, vars).await?;
        progress(&file);
        report.files.push(file);
        // A fresh session for the next file, as the engine gives it.
        runner
            .batch_execute("RESET ALL; RESET SESSION AUTHORIZATION")
            .await
            .map_err(db("resetting the session"))?;
    }
    Ok(report)
}

/// Locks open in the runner's transaction: (lock, statement index, taken at).
type Open = Vec<(Held, usize, Instant)>;

async fn trace_file(
    runner: &Client,
    observer: &Client,
    pid: i32,
    source: &Source,
    m: &Migration,
    vars: &Variables,
) -> Result<FileTrace, TraceError> {
    let mode = TxMode::of(m);
    let started = Instant::now();
    let mut script = Script::open(&m.path, &source.dir, vars)?;
    let mut statements: Vec<StatementTrace> = Vec::new();
    // Per statement: the locks it took, resolved when its transaction ends.
    let mut taken: Vec<Vec<(Held, Instant)>> = Vec::new();
    let mut held_ms: HashMap<(usize, Held), u64> = HashMap::new();
    let mut names: HashMap<u32, (String, String, bool)> = HashMap::new();
    let mut open: Open = Vec::new();
    let mut in_tx = false;
    if mode == TxMode::Transaction {
        runner.batch_execute("BEGIN").await.map_err(db("BEGIN"))?;
        in_tx = true;
    }
    while let Some(item) = script.next_item()? {
        let (text, at, is_copy) = match item {
            Item::Sql { text, at, .. } => (text, at, false),
            Item::Copy { text, at } => (text, at, true),
            Item::Echo(_) => continue,
        };
        let index = statements.len();
        let fail = |message: String| TraceError::Statement {
            version: m.version.to_string(),
            file: at.path.display().to_string(),
            line: at.line,
            column: at.column,
            statement: index + 1,
            message,
        };
        let mut st = StatementTrace {
            statement: index + 1,
            file: at.path.clone(),
            line: at.line,
            column: at.column,
            text: text
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .chars()
                .take(120)
                .collect(),
            duration_ms: 0,
            observed: "transaction",
            locks: Vec::new(),
            note: None,
        };
        taken.push(Vec::new());
        let control = is_transaction_control(&text);
        let t0 = Instant::now();
        if in_tx || control || mode == TxMode::Transaction {
            run(runner, &text, is_copy, &mut script)
                .await
                .map_err(|e| match e {
                    Ran::Db(e) => fail(describe(&e)),
                    Ran::Script(e) => TraceError::Script(e),
                })?;
        } else {
            // Alone, outside a transaction: put one around it to see its locks.
            runner.batch_execute("BEGIN").await.map_err(db("BEGIN"))?;
            match run(runner, &text, is_copy, &mut script).await {
                Ok(()) => {}
                Err(Ran::Db(e)) if e.code().is_some_and(|c| c.code() == "25001") => {
                    runner
                        .batch_execute("ROLLBACK")
                        .await
                        .map_err(db("ROLLBACK"))?;
                    st.observed = "concurrent";
                    let (seen, result) = run_concurrent(runner, observer, pid, &text).await?;
                    result.map_err(|e| fail(describe(&e)))?;
                    st.duration_ms = millis(t0.elapsed());
                    if seen.is_empty() {
                        st.note = Some("it ended before its locks could be observed".into());
                    }
                    resolve_names(observer, None, &seen, &mut names).await?;
                    for h in seen {
                        held_ms.insert((index, h.clone()), st.duration_ms);
                        taken[index].push((h, t0));
                    }
                    statements.push(st);
                    continue;
                }
                Err(Ran::Db(e)) => {
                    let _ = runner.batch_execute("ROLLBACK").await;
                    return Err(fail(describe(&e)));
                }
                Err(Ran::Script(e)) => {
                    let _ = runner.batch_execute("ROLLBACK").await;
                    return Err(e.into());
                }
            }
            // Observe, then end the transaction put around it.
            observe(
                runner, observer, pid, index, t0, &mut open, &mut taken, &mut names,
            )
            .await?;
            runner.batch_execute("COMMIT").await.map_err(db("COMMIT"))?;
            close(&mut open, &mut held_ms);
            st.duration_ms = millis(t0.elapsed());
            statements.push(st);
            continue;
        }
        st.duration_ms = millis(t0.elapsed());
        let now_in_tx = mode == TxMode::Transaction || in_transaction(observer, pid).await?;
        if now_in_tx {
            observe(
                runner, observer, pid, index, t0, &mut open, &mut taken, &mut names,
            )
            .await?;
        } else {
            close(&mut open, &mut held_ms);
        }
        in_tx = now_in_tx;
        statements.push(st);
    }
    if mode == TxMode::Transaction {
        runner
            .batch_execute("COMMIT")
            .await
            .map_err(|e| TraceError::Statement {
                version: m.version.to_string(),
                file: m.path.display().to_string(),
                line: 1,
                column: 1,
                statement: statements.len(),
                message: format!("at COMMIT: {}", describe(&e)),
            })?;
    } else if in_tx {
        let _ = runner.batch_execute("ROLLBACK").await;
    }
    close(&mut open, &mut held_ms);
    for (index, st) in statements.iter_mut().enumerate() {
        for (h, _) in &taken[index] {
            let Some((relation, kind, new)) = names.get(&h.oid).cloned() else {
                continue;
            };
            if relation.is_empty() {
                continue; // a system catalog
            }
            st.locks.push(LockTaken {
                relation,
                kind,
                blocks_reads: h.mode == "AccessExclusiveLock",
                blocks_writes: matches!(
                    h.mode.as_str(),
                    "ShareLock" | "ShareRowExclusiveLock" | "ExclusiveLock" | "AccessExclusiveLock"
                ),
                mode: h.mode.clone(),
                new,
                held_ms: held_ms
                    .get(&(index, h.clone()))
                    .copied()
                    .unwrap_or(st.duration_ms),
            });
        }
        st.locks
            .sort_by(|a, b| (&a.relation, &a.mode).cmp(&(&b.relation, &b.mode)));
    }
    Ok(FileTrace {
        version: m.version.to_string(),
        mode,
        statements,
        duration_ms: millis(started.elapsed()),
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn is_transaction_control(text: &str) -> bool {
    let kw = lexer::leading_keywords(text, 2);
    match kw.first().map(String::as_str) {
        Some("BEGIN") => kw.get(1).is_none_or(|k| k != "ATOMIC"),
        Some("START") => kw.get(1).is_some_and(|k| k == "TRANSACTION"),
        Some("COMMIT" | "END" | "ROLLBACK" | "ABORT" | "PREPARE") => true,
        _ => false,
    }
}

/// Why a statement did not run: the server refused it, or its COPY data could not
/// be read from the file.
enum Ran {
    Db(tokio_postgres::Error),
    Script(ScriptError),
}

/// Runs one statement (a COPY with its data).
async fn run(runner: &Client, text: &str, is_copy: bool, script: &mut Script) -> Result<(), Ran> {
    if !is_copy {
        return runner.batch_execute(text).await.map_err(Ran::Db);
    }
    use futures_util::SinkExt;
    let sink = runner
        .copy_in::<_, bytes::Bytes>(text)
        .await
        .map_err(Ran::Db)?;
    futures_util::pin_mut!(sink);
    // Dropping the sink before `finish` aborts the COPY.
    while let Some(block) = script.copy_block().map_err(Ran::Script)? {
        sink.feed(bytes::Bytes::from(block))
            .await
            .map_err(Ran::Db)?;
    }
    sink.finish().await.map(drop).map_err(Ran::Db)
}

/// Whether the runner's session is in a transaction now (its file's own BEGIN).
async fn in_transaction(observer: &Client, pid: i32) -> Result<bool, TraceError> {
    let row = observer
        .query_opt(
            "SELECT state FROM pg_catalog.pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .map_err(db("reading the runner's state"))?;
    let state: Option<String> = row.and_then(|r| r.get(0));
    Ok(state.is_some_and(|s| s.starts_with("idle in transaction")))
}

/// The runner's relation locks in this database: (oid, mode, granted).
async fn locks_of(observer: &Client, pid: i32) -> Result<Vec<(u32, String, bool)>, TraceError> {
    let rows = observer
        .query(
            "SELECT l.relation, l.mode, l.granted FROM pg_catalog.pg_locks l \
             WHERE l.pid = $1 AND l.locktype = 'relation' \
               AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())",
            &[&pid],
        )
        .await
        .map_err(db("reading pg_locks"))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, u32>(0),
                r.get::<_, String>(1),
                r.get::<_, bool>(2),
            )
        })
        .collect())
}

/// After a statement, in a transaction: the locks it took are those not held before.
#[expect(clippy::too_many_arguments, reason = "the state of one file's trace")]
async fn observe(
    runner: &Client,
    observer: &Client,
    pid: i32,
    index: usize,
    t0: Instant,
    open: &mut Open,
    taken: &mut [Vec<(Held, Instant)>],
    names: &mut HashMap<u32, (String, String, bool)>,
) -> Result<(), TraceError> {
    let now: Vec<Held> = locks_of(observer, pid)
        .await?
        .into_iter()
        .filter(|(_, _, granted)| *granted)
        .map(|(oid, mode, _)| Held { oid, mode })
        .collect();
    let mut fresh = Vec::new();
    for h in now {
        if !open.iter().any(|(o, _, _)| *o == h) {
            open.push((h.clone(), index, t0));
            fresh.push(h.clone());
            taken[index].push((h, t0));
        }
    }
    resolve_names(observer, Some(runner), &fresh, names).await
}

/// The locks open in a transaction that just ended: how long each was held.
fn close(open: &mut Open, held_ms: &mut HashMap<(usize, Held), u64>) {
    for (h, index, t0) in open.drain(..) {
        held_ms.insert((index, h), millis(t0.elapsed()));
    }
}

/// Names of relations: from the observer, else (created in the runner's open
/// transaction, invisible to others) from the runner itself. System catalogs get
/// an empty name.
async fn resolve_names(
    observer: &Client,
    runner: Option<&Client>,
    locks: &[Held],
    names: &mut HashMap<u32, (String, String, bool)>,
) -> Result<(), TraceError> {
    let wanted: Vec<u32> = locks
        .iter()
        .map(|h| h.oid)
        .filter(|o| !names.contains_key(o))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    const QUERY: &str = "SELECT c.oid, n.nspname, c.relname, c.relkind::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY($1)";
    let mut found: HashMap<u32, (String, String, bool)> = HashMap::new();
    for (client, new) in [(Some(observer), false), (runner, true)] {
        let Some(client) = client else { continue };
        let missing: Vec<u32> = wanted
            .iter()
            .copied()
            .filter(|o| !found.contains_key(o))
            .collect();
        if missing.is_empty() {
            break;
        }
        let rows = client
            .query(QUERY, &[&missing])
            .await
            .map_err(db("naming the locked relations"))?;
        for r in rows {
            let oid: u32 = r.get(0);
            let schema: String = r.get(1);
            let name: String = r.get(2);
            let kind: String = r.get(3);
            let system = schema == "pg_catalog"
                || schema == "information_schema"
                || schema.starts_with("pg_toast");
            let relation = if system {
                String::new()
            } else if schema == "public" {
                name
            } else {
                format!("{schema}.{name}")
            };
            found.insert(oid, (relation, relkind(&kind).to_string(), new));
        }
    }
    names.extend(found);
    Ok(())
}

fn relkind(kind: &str) -> &'static str {
    match kind {
        "r" => "table",
        "p" => "partitioned table",
        "i" => "index",
        "I" => "partitioned index",
        "S" => "sequence",
        "v" => "view",
        "m" => "materialized view",
        "t" => "TOAST table",
        "f" => "foreign table",
        "c" => "composite type",
        _ => "relation",
    }
}

/// Runs a statement that cannot run in a transaction block while the observer
/// holds a snapshot: returns the relation locks seen granted while it ran.
async fn run_concurrent(
    runner: &Client,
    observer: &Client,
    pid: i32,
    text: &str,
) -> Result<(Vec<Held>, Result<(), tokio_postgres::Error>), TraceError> {
    observer
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .await
        .map_err(db("opening the observer's snapshot"))?;
    let mut seen: Vec<Held> = Vec::new();
    let mut released = false;
    let statement = runner.batch_execute(text);
    futures_util::pin_mut!(statement);
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        tokio::select! {
            r = &mut statement => break r,
            () = tokio::time::sleep(Duration::from_millis(2)) => {
                if released {
                    continue;
                }
                let locks = locks_of(observer, pid).await?;
                for (oid, mode, granted) in &locks {
                    let h = Held { oid: *oid, mode: mode.clone() };
                    if *granted && !seen.contains(&h) {
                        seen.push(h);
                    }
                }
                let waiting = observer
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE pid = $1 AND NOT granted)",
                        &[&pid],
                    )
                    .await
                    .map_err(db("reading pg_locks"))?
                    .get::<_, bool>(0);
                if waiting || Instant::now() > deadline {
                    // It waits for our snapshot, holding its locks: seen. Let it go.
                    observer.batch_execute("COMMIT").await.map_err(db("COMMIT"))?;
                    released = true;
                }
            }
        }
    };
    if !released {
        observer
            .batch_execute("COMMIT")
            .await
            .map_err(db("COMMIT"))?;
    }
    Ok((seen, result))
}
