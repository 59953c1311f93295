//! The migrator: reconciles a [`Source`] with the history and applies what is pending.
//!
//! Every command (`sql migrate`, `status`, `baseline`, `repair`) goes through this
//! module; the binary only parses arguments and reports.
//!
//! A run of [`migrate`]:
//! 1. splits every pending file into statements (a file that does not lex stops the
//!    run before anything touches the database);
//! 2. opens the migration connection and takes the [lock](crate::lock) on a second one;
//! 3. creates the history table if needed, reads it, and [`reconcile`]s it with the files;
//! 4. refuses states that need a person (drift, out of order, a failed
//!    no-transaction file, and with `strict` a missing file);
//! 5. applies pending files in order: a transactional file runs between `BEGIN` and
//!    `COMMIT` with its history row; a `-- kubemigrate:no-transaction` file runs
//!    statement by statement, its row written first and finished last;
//! 6. releases the lock, on every path.

use kubemigrate_contract::Exit;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::Client;
use tokio_postgres::error::{DbError, ErrorPosition};

use crate::connect::{ConnectError, ConnectOptions, Connection};
use crate::events::{Event, FileReport, FileStatus, MissingReport, Report};
use crate::history::{HistoryError, HistoryRow, HistoryTable, NewRow, RowKind};
use crate::lock::{LockError, MigrationLock};
use crate::script::{Item, Location, Script, ScriptError, Variables, unmap_offset};
use crate::source::{Migration, Source, SourceError};

/// Settings shared by the commands that change the database.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Where the history lives.
    pub history: HistoryTable,
    /// Recorded in `applied_by`.
    pub applied_by: String,
    /// Apply even when applied files changed.
    pub allow_drift: bool,
    /// Apply pending files that sort before the newest applied one.
    pub allow_out_of_order: bool,
    /// A history row whose file is gone is an error, not a warning.
    pub strict: bool,
    /// List what would run and change nothing (takes no lock, creates no table).
    pub dry_run: bool,
    /// How long to wait for the migration lock.
    pub lock_timeout: Duration,
    /// PostgreSQL's `lock_timeout` for the migrations' statements.
    pub statement_lock_timeout: Option<Duration>,
    /// psql variables (`--set NAME=VALUE`).
    pub variables: Variables,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            history: HistoryTable::default(),
            applied_by: String::new(),
            allow_drift: false,
            allow_out_of_order: false,
            strict: false,
            dry_run: false,
            lock_timeout: Duration::from_secs(600),
            statement_lock_timeout: None,
            variables: Variables::new(),
        }
    }
}

/// A statement of a migration file that PostgreSQL rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFailure {
    /// The file name.
    pub version: String,
    /// The file's path as given.
    pub path: String,
    /// The 1-based statement number within the file.
    pub statement: usize,
    /// 1-based line of the error position in the file.
    pub line: u32,
    /// 1-based column (in characters) of the error position.
    pub column: u32,
    /// The text of that line.
    pub line_text: String,
    /// Whether `line`/`column` are PostgreSQL's error position (else: the statement's start).
    pub exact: bool,
    /// SQLSTATE.
    pub code: String,
    /// The server's message.
    pub message: String,
    /// The server's DETAIL.
    pub detail: Option<String>,
    /// The server's HINT.
    pub hint: Option<String>,
    /// The server's CONTEXT (e.g. the line inside a function body).
    pub context: Option<String>,
}

impl std::fmt::Display for SqlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {} (SQLSTATE {}, statement {})",
            self.path, self.line, self.column, self.message, self.code, self.statement
        )
    }
}

impl SqlFailure {
    /// The lines that follow the one-line message: the file's line with a caret under
    /// the error position, then DETAIL, HINT and CONTEXT.
    pub fn excerpt(&self) -> Vec<String> {
        let gutter = self.line.to_string();
        let mut out = vec![format!("{gutter} | {}", self.line_text)];
        if self.exact {
            let pad: String = self
                .line_text
                .chars()
                .take(self.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push(format!("{} | {pad}^", " ".repeat(gutter.len())));
        }
        for (label, value) in [
            ("DETAIL", &self.detail),
            ("HINT", &self.hint),
            ("CONTEXT", &self.context),
        ] {
            if let Some(v) = value {
                out.push(format!("{label}: {}", v.replace('\n', " / ")));
            }
        }
        out
    }
}

/// Something a person must resolve before migrations can go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file name.
    pub version: String,
    /// What is wrong and how to fix it, one line.
    pub message: String,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The directory or a file could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A file cannot be read or run as written (found while it runs).
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The database cannot be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The migration lock could not be taken or was lost.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// States that need a person.
    #[error("{}", problems_line(.0))]
    NeedsPerson(Vec<Problem>),
    /// A migration's SQL failed.
    #[error("{0}")]
    Sql(Box<SqlFailure>),
    /// A database error outside a migration's statements.
    #[error("{context}: {message}")]
    Database {
        /// What the engine was doing.
        context: String,
        /// The error.
        message: String,
        /// True when the connection was lost.
        connection_lost: bool,
    },
    /// A bad argument (e.g. a `--version` that is not a file of the directory).
    #[error("{0}")]
    Usage(String),
    /// The history table is not one kubemigrate can use: another kind of relation,
    /// or a row it cannot have written.
    #[error("{context}: {error}")]
    History {
        /// What the engine was doing.
        context: String,
        /// What is wrong with the table.
        error: HistoryError,
    },
    /// A migration dropped the history table (`DROP SCHEMA public CASCADE` in a
    /// restored dump, say).
    #[error("{}", history_dropped_line(.path, .table, *.rolled_back))]
    HistoryDropped {
        /// The file, as given.
        path: String,
        /// The file's name (its version).
        version: String,
        /// `schema.table`.
        table: String,
        /// True when the file ran in kubemigrate's transaction, which was rolled
        /// back; false when its statements stayed applied.
        rolled_back: bool,
    },
}

fn history_dropped_line(path: &str, table: &str, rolled_back: bool) -> String {
    let schema = table.split('.').next().unwrap_or(table);
    if rolled_back {
        format!(
            "{path}: the file dropped the history table {table} (it was rolled back: nothing of it is applied); \
             keep the history out of the migrations' reach: move the table to a schema of its own \
             (CREATE SCHEMA kubemigrate; ALTER TABLE {table} SET SCHEMA kubemigrate) and give every command \
             --history-schema kubemigrate"
        )
    } else {
        format!(
            "{path}: the file dropped the history table {table}, so the files applied before it are no \
             longer recorded; its statements stayed applied. Before any other run, restore the table, or \
             record what is applied with `kubemigrate sql baseline`, and keep the history out of the \
             migrations' reach with --history-schema (a schema other than {schema}, on every command)"
        )
    }
}

fn problems_line(problems: &[Problem]) -> String {
    match problems {
        [one] => format!("{}: {}", one.version, one.message),
        many => format!(
            "{} files need attention: {}",
            many.len(),
            many.iter()
                .map(|p| p.version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl MigrateError {
    /// The exit code this error ends a command with: 2 bad input, 3 SQL failed, 4
    /// needs a person, 5 lock timeout, 6 connection, 1 anything else.
    pub fn exit(&self) -> Exit {
        match self {
            MigrateError::Source(_) | MigrateError::Script(_) | MigrateError::Usage(_) => {
                Exit::Usage
            }
            MigrateError::Connect(_) => Exit::Connection,
            MigrateError::Lock(LockError::Timeout { .. }) => Exit::LockTimeout,
            MigrateError::Lock(_) => Exit::Connection,
            MigrateError::NeedsPerson(_) => Exit::NeedsPerson,
            MigrateError::Sql(_) => Exit::SqlFailed,
            MigrateError::Database {
                connection_lost: true,
                ..
            } => Exit::Connection,
            MigrateError::Database { .. } => Exit::Internal,
            MigrateError::History { .. } => Exit::NeedsPerson,
            MigrateError::HistoryDropped { .. } => Exit::Usage,
        }
    }

    fn database(context: impl Into<String>, e: &tokio_postgres::Error) -> MigrateError {
        MigrateError::Database {
            context: context.into(),
            message: describe(e),
            connection_lost: is_connection_error(e),
        }
    }

    /// A history error: a database error in `context`, or the table's own problem.
    fn history(context: impl Into<String>, e: HistoryError) -> MigrateError {
        match e {
            HistoryError::Db(e) => MigrateError::database(context, &e),
            error => MigrateError::History {
                context: context.into(),
                error,
            },
        }
    }
}

/// Whether a history write failed because the table (or its schema) is gone: an
/// unknown relation or schema, or a prepared statement whose table was dropped.
fn history_gone(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let code = db.code();
        *code == tokio_postgres::error::SqlState::UNDEFINED_TABLE
            || *code == tokio_postgres::error::SqlState::INVALID_SCHEMA_NAME
            || (code.code() == "XX000" && db.message().starts_with("cache lookup failed"))
    })
}

/// True when an error means the connection is gone (closed socket, server shutdown).
pub fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        None => {
            // An I/O error somewhere in the chain.
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                if s.downcast_ref::<std::io::Error>().is_some() {
                    return true;
                }
                source = s.source();
            }
            false
        }
    }
}

/// A one-line description of a database error: the server's message and SQLSTATE,
/// or the client's error.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None if e.is_closed() => "the server closed the connection".to_string(),
        None => e.to_string(),
    }
}

/// A run's report, and its error if it failed. The report is complete either way:
/// after a failure, files that did not run are `not_run`.
#[derive(Debug)]
pub struct Outcome {
    /// What happened, file by file.
    pub report: Report,
    /// Why the run failed, if it did.
    pub error: Option<MigrateError>,
}

/// What the history says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Applied (or baselined) with the same checksum.
    Applied(HistoryRow),
    /// Applied, but the file changed since.
    Drifted(HistoryRow),
    /// Not applied. A failed attempt of a transactional file left nothing behind, so
    /// it is pending again; its row is kept in `previous_failure` until the retry.
    Pending {
        /// The recorded failure of an earlier attempt.
        previous_failure: Option<HistoryRow>,
    },
    /// A no-transaction file that failed or was interrupted: part of it may be applied.
    Failed(HistoryRow),
}

/// The files and the history, matched up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// One state per file of the source, in order, and whether a pending file is out of order.
    pub files: Vec<(FileState, bool)>,
    /// History rows whose files are gone.
    pub missing: Vec<HistoryRow>,
}

/// Matches files with history rows. Pure: no I/O.
pub fn reconcile(source: &Source, history: &[HistoryRow]) -> Reconciled {
    let newest_applied = history
        .iter()
        .filter(|r| r.success)
        .map(|r| r.version.as_str())
        .max_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    // The newest row of each version (later rows replace earlier ones).
    let by_version: std::collections::HashMap<&str, &HistoryRow> =
        history.iter().map(|r| (r.version.as_str(), r)).collect();
    let versions: std::collections::HashSet<&str> = source
        .migrations
        .iter()
        .map(|m| m.version.as_str())
        .collect();
    let files = source
        .migrations
        .iter()
        .map(|m| {
            let row = by_version.get(m.version.as_str()).copied();
            let state = match row {
                Some(r) if r.success => {
                    if r.checksum.as_deref() == Some(m.checksum.as_str()) {
                        FileState::Applied(r.clone())
                    } else {
                        FileState::Drifted(r.clone())
                    }
                }
                Some(r) if !r.transactional => FileState::Failed(r.clone()),
                Some(r) => FileState::Pending {
                    previous_failure: Some(r.clone()),
                },
                None => FileState::Pending {
                    previous_failure: None,
                },
            };
            let out_of_order = matches!(state, FileState::Pending { .. })
                && newest_applied.is_some_and(|n| m.version.as_bytes() < n.as_bytes());
            (state, out_of_order)
        })
        .collect();
    let missing = history
        .iter()
        .filter(|r| !versions.contains(r.version.as_str()))
        .cloned()
        .collect();
    Reconciled { files, missing }
}

impl Reconciled {
    /// The problems that stop a run, given the options.
    pub fn problems(&self, source: &Source, options: &MigrateOptions) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (m, (state, out_of_order)) in source.migrations.iter().zip(&self.files) {
            match state {
                FileState::Drifted(row) if !options.allow_drift => problems.push(Problem {
                    version: m.version.clone(),
                    message: format!(
                        "changed since it was applied on {} (checksum {} recorded, {} now); restore the file, \
                         or accept the edit with `kubemigrate sql repair --dir {} --version {} --accept-checksum`, \
                         or pass --allow-drift",
                        row.applied_at,
                        short(row.checksum.as_deref().unwrap_or("none")),
                        short(&m.checksum),
                        source.dir.display(),
                        m.version
                    ),
                }),
                FileState::Failed(row) => problems.push(Problem {
                    version: m.version.clone(),
                    message: failed_message(&source.dir, m, row),
                }),
                FileState::Pending { .. } if *out_of_order && !options.allow_out_of_order => {
                    problems.push(Problem {
                        version: m.version.clone(),
                        message: "is pending but sorts before files already applied; rename it to sort last, \
                                  or pass --allow-out-of-order to apply it anyway"
                            .to_string(),
                    })
                }
                _ => {}
            }
        }
        if options.strict {
            for row in &self.missing {
                problems.push(Problem {
                    version: row.version.clone(),
                    message: "is recorded in the history but its file is gone (--strict)"
                        .to_string(),
                });
            }
        }
        problems
    }
}

fn failed_message(dir: &std::path::Path, m: &Migration, row: &HistoryRow) -> String {
    let at = row
        .statement
        .map(|s| format!(" at statement {s}"))
        .unwrap_or_default();
    let what = match &row.error {
        Some(e) => format!("failed{at} on {} ({e})", row.applied_at),
        None => format!("was interrupted{at} on {}", row.applied_at),
    };
    format!(
        "{what}; it runs without a transaction, so the statements before it stayed applied. \
         Finish or undo them by hand, then run `kubemigrate sql repair --dir {d} --version {v}` to run the file \
         again, or add --mark-applied to record it as applied",
        d = dir.display(),
        v = m.version
    )
}

fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}

/// Reads the history without the lock and matches it with the files (`sql status`).
///
/// # Errors
/// Connection and database errors.
pub async fn status(
    connect: &ConnectOptions,
    source: &Source,
    history: &HistoryTable,
    events: &mut dyn FnMut(Event),
) -> Result<(Report, Reconciled), MigrateError> {
    let started = Instant::now();
    let conn = open(connect, events).await?;
    let rows = history
        .load(&conn.client)
        .await
        .map_err(|e| MigrateError::history("reading the history", e))?;
    let rec = reconcile(source, &rows);
    let mut report = base_report(connect, history, false);
    report.files = source
        .migrations
        .iter()
        .zip(&rec.files)
        .map(|(m, (state, ooo))| state_report(m, state, *ooo))
        .collect();
    report.missing = missing_report(&rec.missing);
    report.duration_ms = millis(started.elapsed());
    Ok((report, rec))
}

fn base_report(connect: &ConnectOptions, history: &HistoryTable, dry_run: bool) -> Report {
    Report {
        database: connect.masked_url(),
        history_table: history.display_name(),
        dry_run,
        ..Report::default()
    }
}

fn missing_report(rows: &[HistoryRow]) -> Vec<MissingReport> {
    rows.iter()
        .map(|r| MissingReport {
            version: r.version.clone(),
            applied_at: r.applied_at.clone(),
            success: r.success,
        })
        .collect()
}

fn state_report(m: &Migration, state: &FileState, out_of_order: bool) -> FileReport {
    let mut f = file_report(m, FileStatus::Pending);
    f.out_of_order = out_of_order;
    match state {
        FileState::Applied(row) => {
            f.status = if row.kind == RowKind::Baseline {
                FileStatus::Baselined
            } else {
                FileStatus::Applied
            };
            f.applied_at = Some(row.applied_at.clone());
            f.duration_ms = u64::try_from(row.execution_ms).ok();
        }
        FileState::Drifted(row) => {
            f.status = FileStatus::Drifted;
            f.applied_at = Some(row.applied_at.clone());
            f.recorded_checksum = row.checksum.clone();
        }
        FileState::Failed(row) => {
            f.status = FileStatus::Failed;
            f.applied_at = Some(row.applied_at.clone());
            f.error = Some(
                row.error
                    .clone()
                    .unwrap_or_else(|| "interrupted".to_string()),
            );
            f.statement = row.statement;
        }
        FileState::Pending {
            previous_failure: Some(row),
        } => {
            f.error = Some(format!(
                "last attempt on {} failed: {}",
                row.applied_at,
                row.error.as_deref().unwrap_or("interrupted")
            ));
        }
        FileState::Pending {
            previous_failure: None,
        } => {}
    }
    f
}

fn file_report(m: &Migration, status: FileStatus) -> FileReport {
    FileReport {
        version: m.version.clone(),
        status,
        checksum: m.checksum.clone(),
        recorded_checksum: None,
        duration_ms: None,
        applied_at: None,
        transactional: m.transactional(),
        out_of_order: false,
        error: None,
        statement: None,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Applies the pending files of `source` (see the [module docs](self)).
///
/// # Errors
/// Returned inside the [`Outcome`], with a report of what happened before.
///
/// # Caveats
/// A no-transaction file that fails halfway stays half applied; its history row
/// says so, and later runs refuse until `sql repair`.
pub async fn migrate(
    connect: &ConnectOptions,
    source: &Source,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
) -> Outcome {
    let started = Instant::now();
    let mut report = base_report(connect, &options.history, options.dry_run);
    report.files = source
        .migrations
        .iter()
        .map(|m| file_report(m, FileStatus::NotRun))
        .collect();
    let result = migrate_inner(connect, source, options, events, &mut report).await;
    report.duration_ms = millis(started.elapsed());
    Outcome {
        report,
        error: result.err(),
    }
}

async fn migrate_inner(
    connect: &ConnectOptions,
    source: &Source,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
    report: &mut Report,
) -> Result<(), MigrateError> {
    for w in &source.warnings {
        events(Event::Warning {
            message: w.to_string(),
        });
    }
    let mut conn = open(connect, events).await?;

    if options.dry_run {
        let rows = options
            .history
            .load(&conn.client)
            .await
            .map_err(|e| MigrateError::history("reading the history", e))?;
        let rec = reconcile(source, &rows);
        return plan_and_run(&mut conn, None, source, &rec, options, events, report).await;
    }

    // PostgreSQL 14+: notice within a second that this runner died (kill -9, lost
    // node) and roll its transaction back, instead of finishing a long statement
    // for a client that is gone. Older servers lack the setting; that is fine.
    let check_interval = conn.client.batch_execute(CHECK_INTERVAL).await.is_ok();
    let lock = with_lock(connect, options, events).await?;
    // From here on the lock is released on every path.
    let result = async {
        options.history.ensure(&conn.client).await.map_err(|e| {
            MigrateError::history(
                format!(
                    "creating the history table {}",
                    options.history.display_name()
                ),
                e,
            )
        })?;
        // Read the history only now, under the lock: a runner that waited for another
        // one sees everything it applied.
        let rows = options
            .history
            .load(&conn.client)
            .await
            .map_err(|e| MigrateError::history("reading the history", e))?;
        let rec = reconcile(source, &rows);
        let session = Session {
            lock: &lock,
            check_interval,
        };
        plan_and_run(
            &mut conn,
            Some(session),
            source,
            &rec,
            options,
            events,
            report,
        )
        .await
    }
    .await;
    lock.release().await;
    result
}

/// `SET` for PostgreSQL 14+: notice within a second that this runner died (kill -9,
/// lost node) and roll its transaction back, instead of finishing a long statement
/// for a client that is gone.
const CHECK_INTERVAL: &str = "SET client_connection_check_interval = 1000";

/// What a run that changes the database holds: the lock, and whether the server
/// took [`CHECK_INTERVAL`].
#[derive(Clone, Copy)]
struct Session<'a> {
    lock: &'a MigrationLock,
    check_interval: bool,
}

async fn plan_and_run(
    conn: &mut Connection,
    session: Option<Session<'_>>,
    source: &Source,
    rec: &Reconciled,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
    report: &mut Report,
) -> Result<(), MigrateError> {
    report.missing = missing_report(&rec.missing);
    // `report.files` was built from `source.migrations`, in the same order.
    let files = source.migrations.iter().zip(&rec.files);
    for ((m, (state, ooo)), f) in files.zip(report.files.iter_mut()) {
        let mut s = state_report(m, state, *ooo);
        if s.status == FileStatus::Applied || s.status == FileStatus::Baselined {
            s.status = FileStatus::Skipped;
        } else if s.status == FileStatus::Pending && !options.dry_run {
            s.status = FileStatus::NotRun;
        } else if s.status == FileStatus::Drifted && options.allow_drift {
            s.status = FileStatus::Skipped;
        }
        *f = s;
    }
    for row in &rec.missing {
        if !options.strict {
            events(Event::Warning {
                message: format!(
                    "{} is recorded in {} ({} {}) but its file is not in {}",
                    row.version,
                    options.history.display_name(),
                    if row.success {
                        "applied"
                    } else {
                        "failed attempt on"
                    },
                    row.applied_at,
                    source.dir.display()
                ),
            });
        }
    }
    let problems = rec.problems(source, options);
    if !problems.is_empty() {
        return Err(MigrateError::NeedsPerson(problems));
    }
    let pending: Vec<usize> = rec
        .files
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| matches!(s, FileState::Pending { .. }))
        .map(|(i, _)| i)
        .collect();
    events(Event::Planned {
        applied: rec.files.len() - pending.len(),
        pending: pending.len(),
    });
    let Some(session) = session else {
        for &i in &pending {
            let m = &source.migrations[i];
            events(Event::WouldApply {
                version: m.version.clone(),
                transactional: m.transactional(),
                controls_transaction: m.controls_transaction,
                statements: m.statements,
            });
        }
        return Ok(());
    };
    let runner = Runner::new(conn, session.lock.client(), options, session.check_interval).await?;
    runner.drain_own_notices(
        &format!("preparing {}", options.history.display_name()),
        events,
    );
    for &i in &pending {
        let m = &source.migrations[i];
        runner.drain_own_notices("restoring the session between files", events);
        // Confirmed at least every 250 ms: one round trip per file would cost more than
        // a small file takes to run.
        if m.transactional() {
            session.lock.check_every(Duration::from_millis(250)).await?;
        } else {
            session.lock.check().await?;
        }
        let previous_failure = matches!(
            &rec.files[i].0,
            FileState::Pending {
                previous_failure: Some(_)
            }
        );
        events(Event::FileStarted {
            version: m.version.clone(),
            transactional: m.transactional(),
            controls_transaction: m.controls_transaction,
        });
        let t0 = Instant::now();
        let result = runner.run_file(source, m, previous_failure, events).await;
        let duration = t0.elapsed();
        let f = &mut report.files[i];
        f.duration_ms = Some(millis(duration));
        match result {
            Ok(()) => {
                f.status = FileStatus::Applied;
                events(Event::FileApplied {
                    version: m.version.clone(),
                    duration,
                });
            }
            Err(e) => {
                f.status = FileStatus::Failed;
                f.error = Some(e.to_string());
                if let MigrateError::Sql(s) = &e {
                    f.statement = i32::try_from(s.statement).ok();
                }
                events(Event::FileFailed {
                    version: m.version.clone(),
                    duration,
                });
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Runs files on the migration connection, and writes the history.
///
/// Where the history is written: a transactional file's row goes into the file's own
/// transaction, on the migration connection, after the session is restored (so the
/// file and its row commit together). Every other history write (the progress row
/// of a file that runs without kubemigrate's transaction, and the row of a failed
/// attempt) goes to `keeper`, the lock's connection, whose session never runs a
/// migration's statement: a file's `SET ROLE`, `SET SESSION AUTHORIZATION`,
/// `SET default_transaction_read_only`, open transaction or broken protocol state
/// cannot reach it.
struct Runner<'a> {
    client: &'a Client,
    /// The lock's connection: see above.
    keeper: &'a Client,
    /// Only drained between statements, by the one task that runs them.
    notices: std::sync::Mutex<&'a mut tokio::sync::mpsc::UnboundedReceiver<crate::connect::Notice>>,
    options: &'a MigrateOptions,
    insert: tokio_postgres::Statement,
    /// Restores the session after a file (a file may `SET` anything, as pg_dump
    /// output does): what psql's fresh session per file gives.
    reset: String,
}

/// How a file runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Inside a transaction with its history row.
    Transaction,
    /// Statement by statement; its row is written first and finished last.
    NoTransaction,
    /// As written: the file has its own BEGIN/COMMIT.
    OwnTransaction,
}

/// The history row of a file run outside a wrapping transaction.
struct Progress {
    id: i64,
    /// The statement that is running (or ran last); 0 before the first.
    statement: i32,
}

/// How long a write of a failure row may wait for a row lock of the failed file's
/// transaction (that transaction is rolled back first; this only bounds the wait if
/// the server has not finished that yet).
const FAILURE_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '10s'";

impl<'a> Runner<'a> {
    async fn new(
        conn: &'a mut Connection,
        keeper: &'a Client,
        options: &'a MigrateOptions,
        check_interval: bool,
    ) -> Result<Runner<'a>, MigrateError> {
        let Connection { client, notices } = conn;
        let insert = client
            .prepare(&options.history.insert_sql())
            .await
            .map_err(|e| MigrateError::database("preparing the history insert", &e))?;
        let mut reset = String::from("RESET ALL; RESET SESSION AUTHORIZATION;");
        reset.push_str(crate::connect::SERVER_KEEPALIVES);
        reset.push(';');
        if check_interval {
            reset.push_str(CHECK_INTERVAL);
            reset.push(';');
        }
        if let Some(timeout) = options.statement_lock_timeout {
            // A number of milliseconds: no user text goes into this SQL.
            reset.push_str(&format!(
                "SET lock_timeout = {};",
                timeout.as_millis().max(1)
            ));
        }
        client
            .batch_execute(&reset)
            .await
            .map_err(|e| MigrateError::database("setting up the session", &e))?;
        Ok(Runner {
            client,
            keeper,
            notices: std::sync::Mutex::new(notices),
            options,
            insert,
            reset,
        })
    }

    fn client(&self) -> &Client {
        self.client
    }

    fn row<'r>(&self, m: &'r Migration, success: bool, mode: Mode) -> NewRow<'r>
    where
        'a: 'r,
    {
        NewRow {
            version: &m.version,
            kind: RowKind::Sql,
            checksum: Some(&m.checksum),
            execution_ms: 0,
            applied_by: &self.options.applied_by,
            success,
            error: None,
            statement: None,
            exit_code: None,
            transactional: mode == Mode::Transaction,
        }
    }

    /// The error of a failed history write: the file dropped the history table, the
    /// lock's connection is gone, or another database error.
    fn history_write_error(
        &self,
        m: &Migration,
        mode: Mode,
        what: String,
        e: &tokio_postgres::Error,
    ) -> MigrateError {
        if history_gone(e) {
            return MigrateError::HistoryDropped {
                path: m.path.display().to_string(),
                version: m.version.clone(),
                table: self.options.history.display_name(),
                rolled_back: mode == Mode::Transaction,
            };
        }
        MigrateError::database(what, e)
    }

    /// An error of a write on the lock's connection: a lost connection is a lost lock.
    fn keeper_error(
        &self,
        m: &Migration,
        mode: Mode,
        what: String,
        e: &tokio_postgres::Error,
    ) -> MigrateError {
        if is_connection_error(e) {
            return MigrateError::Lock(LockError::Lost(describe(e)));
        }
        self.history_write_error(m, mode, what, e)
    }

    async fn run_file(
        &self,
        source: &Source,
        m: &Migration,
        previous_failure: bool,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        let history = &self.options.history;
        let mode = if m.controls_transaction {
            Mode::OwnTransaction
        } else if m.no_transaction {
            Mode::NoTransaction
        } else {
            Mode::Transaction
        };
        let t0 = Instant::now();
        let db = |what: String| move |e: tokio_postgres::Error| MigrateError::database(what, &e);
        let mut progress = None;
        if mode == Mode::Transaction {
            self.client()
                .batch_execute("BEGIN")
                .await
                .map_err(db("starting a transaction".into()))?;
            if previous_failure {
                // A failed attempt of a transactional file left nothing behind but its
                // row; it goes in the same transaction as the retry's own row.
                history
                    .delete_failed(self.client(), &m.version)
                    .await
                    .map_err(db(format!("clearing the failed attempt of {}", m.version)))?;
            }
        } else {
            // Outside a wrapping transaction the row is written first, so an
            // interrupted run leaves a record of where it stopped.
            let what = || format!("recording the start of {}", m.version);
            if previous_failure {
                history
                    .delete_failed(self.keeper, &m.version)
                    .await
                    .map_err(|e| self.keeper_error(m, mode, what(), &e))?;
            }
            let id = history
                .insert(self.keeper, &self.row(m, false, mode))
                .await
                .map_err(|e| self.keeper_error(m, mode, what(), &e))?;
            progress = Some(Progress { id, statement: 0 });
        }
        let result = self
            .run_statements(source, m, mode, &mut progress, events)
            .await;
        let result = match result {
            Ok(()) => {
                self.finish_file(m, mode, progress.as_ref(), t0, events)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            if e.exit() == Exit::Connection {
                // The server rolls back what was open; a no-transaction file's row
                // says which statement was running.
                return result;
            }
            // End the transaction (ours, or the file's own). Sent also when the
            // connection's replies are out of step (see `copy_in`): the server runs it.
            let _ = self.client().batch_execute("ROLLBACK").await;
            if !matches!(
                e,
                MigrateError::HistoryDropped {
                    rolled_back: false,
                    ..
                }
            ) {
                self.record_failure(m, mode, progress.as_ref(), t0, e, events)
                    .await;
            }
        }
        result
    }

    /// Records a failed attempt, on the lock's connection. A failure to record is a
    /// warning: the run's error says what happened either way.
    async fn record_failure(
        &self,
        m: &Migration,
        mode: Mode,
        progress: Option<&Progress>,
        t0: Instant,
        e: &MigrateError,
        events: &mut dyn FnMut(Event),
    ) {
        let history = &self.options.history;
        let message = e.to_string();
        // Only a statement that ran and failed is named: a failure between
        // statements (recording progress, reading the file) is not one.
        let statement = match e {
            MigrateError::Sql(s) => i32::try_from(s.statement).ok(),
            _ => None,
        };
        let ms = i64::try_from(t0.elapsed().as_millis()).unwrap_or(i64::MAX);
        let written = async {
            match progress {
                Some(p) => history
                    .finish(self.keeper, p.id, false, ms, Some(&message), statement)
                    .await
                    .map(drop),
                None => {
                    let mut row = self.row(m, false, mode);
                    row.execution_ms = ms;
                    row.error = Some(&message);
                    row.statement = statement;
                    self.keeper.batch_execute("BEGIN").await?;
                    let result = async {
                        self.keeper.batch_execute(FAILURE_LOCK_TIMEOUT).await?;
                        history.delete_failed(self.keeper, &m.version).await?;
                        history.insert(self.keeper, &row).await?;
                        self.keeper.batch_execute("COMMIT").await
                    }
                    .await;
                    if result.is_err() {
                        let _ = self.keeper.batch_execute("ROLLBACK").await;
                    }
                    result
                }
            }
        }
        .await;
        if let Err(err) = written {
            events(Event::Warning {
                message: format!(
                    "could not record the failure of {} in {}: {}",
                    m.version,
                    history.display_name(),
                    describe(&err)
                ),
            });
        }
    }

    /// Records a file that ran to its end, and restores the session.
    async fn finish_file(
        &self,
        m: &Migration,
        mode: Mode,
        progress: Option<&Progress>,
        t0: Instant,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        let history = &self.options.history;
        let ms = i64::try_from(t0.elapsed().as_millis()).unwrap_or(i64::MAX);
        let db = |what: String| move |e: tokio_postgres::Error| MigrateError::database(what, &e);
        if mode == Mode::OwnTransaction {
            self.check_no_open_transaction(m, events).await?;
        }
        // Restore the session first, so the history is written as ourselves even if
        // the file switched roles (SET ROLE), then record: sent together, one round trip.
        let reset = async {
            self.client()
                .batch_execute(&self.reset)
                .await
                .map_err(db("restoring the session after the file".into()))
        };
        match progress {
            None => {
                let mut row = self.row(m, true, mode);
                row.execution_ms = ms;
                let record = async {
                    history
                        .insert_with(self.client(), &self.insert, &row)
                        .await
                        .map_err(|e| {
                            self.history_write_error(
                                m,
                                mode,
                                format!("recording {} in the history", m.version),
                                &e,
                            )
                        })
                };
                tokio::try_join!(reset, record)?;
                self.client()
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| commit_error(m, e))
            }
            Some(p) => {
                let record = async {
                    match history
                        .finish(self.keeper, p.id, true, ms, None, None)
                        .await
                    {
                        Ok(0) => Err(MigrateError::HistoryDropped {
                            path: m.path.display().to_string(),
                            version: m.version.clone(),
                            table: history.display_name(),
                            rolled_back: false,
                        }),
                        Ok(_) => Ok(()),
                        Err(e) => Err(self.keeper_error(
                            m,
                            mode,
                            format!("recording {} as applied", m.version),
                            &e,
                        )),
                    }
                };
                tokio::try_join!(reset, record).map(drop)
            }
        }
    }

    /// A file that controls its own transaction must not leave one open: psql would
    /// roll it back at exit, so its last statements would silently not apply.
    async fn check_no_open_transaction(
        &self,
        m: &Migration,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        // Show what the file's last statements said before listening for our own notice.
        self.drain_notices(m, events);
        self.client()
            .batch_execute("ROLLBACK")
            .await
            .map_err(|e| MigrateError::database("ending the file's transaction", &e))?;
        // 25P01 no_active_sql_transaction: "there is no transaction in progress".
        let open = !self.take_notices().iter().any(|n| n.code == "25P01");
        if open {
            return Err(MigrateError::Usage(format!(
                "{}: the file began a transaction and did not end it; it was rolled back. \
                 End the file with COMMIT;",
                m.path.display()
            )));
        }
        Ok(())
    }

    async fn run_statements(
        &self,
        source: &Source,
        m: &Migration,
        mode: Mode,
        progress: &mut Option<Progress>,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        let history = &self.options.history;
        let mut script = Script::open(&m.path, &source.dir, &self.options.variables)?;
        let mut number = 0usize;
        while let Some(item) = script.next_item()? {
            let (text, at) = match &item {
                Item::Echo(text) => {
                    events(Event::Echo {
                        version: m.version.clone(),
                        text: text.clone(),
                    });
                    continue;
                }
                Item::Sql { text, at, .. } | Item::Copy { text, at } => (text, at),
            };
            number += 1;
            if let Some(p) = progress.as_mut() {
                let statement = i32::try_from(number).unwrap_or(i32::MAX);
                if mode == Mode::NoTransaction {
                    history
                        .set_statement(self.keeper, p.id, statement)
                        .await
                        .map_err(|e| {
                            self.keeper_error(
                                m,
                                mode,
                                format!(
                                    "recording the progress of {} before statement {statement}",
                                    m.version
                                ),
                                &e,
                            )
                        })?;
                }
                p.statement = statement;
            }
            let result = match &item {
                Item::Copy { .. } => self.copy_in(text, &mut script).await,
                _ => self
                    .client()
                    .batch_execute(text)
                    .await
                    .map_err(CopyError::Db),
            };
            self.drain_notices(m, events);
            match result {
                Ok(()) => {}
                Err(CopyError::Script(e)) => return Err(e.into()),
                Err(CopyError::Db(e)) => return Err(statement_error(m, number, &item, at, e)),
            }
        }
        let summary = script.finish();
        if summary.checksum != m.checksum {
            return Err(MigrateError::Usage(format!(
                "{}: the file (or a file it includes) changed while kubemigrate was running; run again",
                m.path.display()
            )));
        }
        Ok(())
    }

    /// Streams a COPY's data from the script.
    ///
    /// # Caveats
    /// When the server refuses the COPY before its data starts (an unknown table, no
    /// permission), tokio-postgres 0.7 has sent `Bind, Execute, Sync` and then sends
    /// `CopyFail, Sync`: the second `Sync` brings a `ReadyForQuery` that no request
    /// waits for, so every later reply on this connection goes to the request after
    /// the one it answers. The run stops at this failure anyway; its row is written
    /// on the lock's connection, which is not affected, and nothing else is sent
    /// here but a `ROLLBACK`, which the server runs whatever the client makes of
    /// its reply.
    async fn copy_in(&self, statement: &str, script: &mut Script) -> Result<(), CopyError> {
        let sink = self
            .client()
            .copy_in::<_, Bytes>(statement)
            .await
            .map_err(CopyError::Db)?;
        futures_util::pin_mut!(sink);
        // Dropping the sink before `finish` aborts the COPY (CopyFail).
        while let Some(block) = script.copy_block().map_err(CopyError::Script)? {
            sink.feed(Bytes::from(block)).await.map_err(CopyError::Db)?;
        }
        sink.finish().await.map(drop).map_err(CopyError::Db)
    }

    fn drain_notices(&self, m: &Migration, events: &mut dyn FnMut(Event)) {
        for notice in self.take_notices() {
            events(Event::Notice {
                version: m.version.clone(),
                message: notice.text,
            });
        }
    }

    /// Notices that kubemigrate's own statements caused (creating the history table,
    /// restoring the session), said as such, so none is shown as a file's.
    fn drain_own_notices(&self, during: &str, events: &mut dyn FnMut(Event)) {
        for notice in self.take_notices() {
            events(Event::Warning {
                message: format!("the server said, while {during}: {}", notice.text),
            });
        }
    }

    fn take_notices(&self) -> Vec<crate::connect::Notice> {
        let mut out = Vec::new();
        if let Ok(mut rx) = self.notices.try_lock() {
            while let Ok(notice) = rx.try_recv() {
                out.push(notice);
            }
        }
        out
    }
}

/// Why a statement did not run: the server refused it, or the file could not be read.
enum CopyError {
    Db(tokio_postgres::Error),
    Script(ScriptError),
}

fn commit_error(m: &Migration, e: tokio_postgres::Error) -> MigrateError {
    match e.as_db_error() {
        // A deferred constraint fails at COMMIT: report it against the file.
        Some(db) if !is_connection_error(&e) => MigrateError::Sql(Box::new(SqlFailure {
            version: m.version.clone(),
            path: m.path.display().to_string(),
            statement: m.statements,
            line: 1,
            column: 1,
            line_text: String::new(),
            exact: false,
            code: db.code().code().to_string(),
            message: format!("at COMMIT: {}", db.message()),
            detail: db.detail().map(str::to_string),
            hint: db.hint().map(str::to_string),
            context: db.where_().map(str::to_string),
        })),
        _ => MigrateError::database(format!("committing {}", m.version), &e),
    }
}

/// Turns a statement's error into a [`MigrateError`] that names the file, line and column.
fn statement_error(
    m: &Migration,
    number: usize,
    item: &Item,
    at: &Location,
    e: tokio_postgres::Error,
) -> MigrateError {
    let context = || format!("running {} (statement {number})", m.version);
    if is_connection_error(&e) {
        return MigrateError::database(context(), &e);
    }
    let Some(db) = e.as_db_error() else {
        return MigrateError::database(context(), &e);
    };
    MigrateError::Sql(Box::new(sql_failure(m, number, item, at, db)))
}

fn sql_failure(
    m: &Migration,
    number: usize,
    item: &Item,
    at: &Location,
    db: &DbError,
) -> SqlFailure {
    let (sent, edits, original) = match item {
        Item::Sql {
            text,
            edits,
            original,
            ..
        } => (text.as_str(), edits.as_slice(), original.as_deref()),
        Item::Copy { text, .. } => (text.as_str(), &[][..], None),
        Item::Echo(_) => ("", &[][..], None),
    };
    let written = original.unwrap_or(sent);
    // PostgreSQL's position counts characters from 1 in the statement as sent.
    let (offset, exact) = match db.position() {
        Some(ErrorPosition::Original(p)) => {
            let chars = (*p as usize).saturating_sub(1);
            let sent_offset = sent
                .char_indices()
                .nth(chars)
                .map_or(sent.len(), |(o, _)| o);
            (unmap_offset(edits, sent_offset).min(written.len()), true)
        }
        _ => (0, false),
    };
    let offset = (0..=offset)
        .rev()
        .find(|&o| written.is_char_boundary(o))
        .unwrap_or(0);
    let before = &written[..offset];
    let newlines = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let rest_of_line = written[line_start..].split('\n').next().unwrap_or("");
    let (column, line_text) = if newlines == 0 {
        let col = at.column as usize + before.chars().count();
        (col, format!("{}{}", at.prefix, rest_of_line))
    } else {
        (
            before[line_start..].chars().count() + 1,
            rest_of_line.to_string(),
        )
    };
    let code = db.code().code().to_string();
    let hint = match db.hint() {
        Some(h) => Some(h.to_string()),
        // "cannot run inside a transaction block"
        None if code == "25001" && m.transactional() => Some(format!(
            "put `-- {}` in the first comment lines of the file to run it without a transaction",
            crate::source::NO_TRANSACTION_DIRECTIVE
        )),
        None => None,
    };
    SqlFailure {
        version: m.version.clone(),
        path: at.path.display().to_string(),
        statement: number,
        line: at
            .line
            .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX)),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        line_text: line_text.trim_end_matches('\r').to_string(),
        exact,
        code,
        message: db.message().to_string(),
        detail: db.detail().map(str::to_string),
        hint,
        context: db.where_().map(str::to_string),
    }
}

/// `sql baseline`: records every file up to and including `version` as applied,
/// without running it.
///
/// # Errors
/// `version` not in the directory, a failed file among those, connection, lock and
/// database errors.
pub async fn baseline(
    connect: &ConnectOptions,
    source: &Source,
    options: &MigrateOptions,
    version: &str,
    events: &mut dyn FnMut(Event),
) -> Outcome {
    let started = Instant::now();
    let mut report = base_report(connect, &options.history, false);
    let result = baseline_inner(connect, source, options, version, events, &mut report).await;
    report.duration_ms = millis(started.elapsed());
    Outcome {
        report,
        error: result.err(),
    }
}

async fn baseline_inner(
    connect: &ConnectOptions,
    source: &Source,
    options: &MigrateOptions,
    version: &str,
    events: &mut dyn FnMut(Event),
    report: &mut Report,
) -> Result<(), MigrateError> {
    if source.get(version).is_none() {
        return Err(MigrateError::Usage(format!(
            "--version {version}: no such file in {} (give the file name, e.g. 0001_init.sql)",
            source.dir.display()
        )));
    }
    let conn = open(connect, events).await?;
    let lock = with_lock(connect, options, events).await?;
    let result = async {
        let history = &options.history;
        history
            .ensure(&conn.client)
            .await
            .map_err(|e| MigrateError::history("creating the history table", e))?;
        let rows = history
            .load(&conn.client)
            .await
            .map_err(|e| MigrateError::history("reading the history", e))?;
        let rec = reconcile(source, &rows);
        let mut problems = Vec::new();
        let mut to_record = Vec::new();
        for (m, (state, ooo)) in source.migrations.iter().zip(&rec.files) {
            let mut f = state_report(m, state, *ooo);
            f.out_of_order = false;
            if m.version.as_bytes() <= version.as_bytes() {
                match state {
                    FileState::Pending { previous_failure: None } => {
                        f.status = FileStatus::Baselined;
                        to_record.push(m);
                    }
                    FileState::Pending { previous_failure: Some(_) } | FileState::Failed(_) => problems.push(Problem {
                        version: m.version.clone(),
                        message: format!(
                            "has a failed attempt in the history; run `kubemigrate sql repair --dir {} --version {}` first",
                            source.dir.display(),
                            m.version
                        ),
                    }),
                    _ => f.status = FileStatus::Skipped,
                }
            }
            report.files.push(f);
        }
        if !problems.is_empty() {
            return Err(MigrateError::NeedsPerson(problems));
        }
        conn.client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| MigrateError::database("starting a transaction", &e))?;
        for m in to_record {
            let row = NewRow {
                version: &m.version,
                kind: RowKind::Baseline,
                checksum: Some(&m.checksum),
                execution_ms: 0,
                applied_by: &options.applied_by,
                success: true,
                error: None,
                statement: None,
                exit_code: None,
                transactional: m.transactional(),
            };
            history
                .insert(&conn.client, &row)
                .await
                .map_err(|e| MigrateError::database(format!("recording {}", m.version), &e))?;
            events(Event::FileBaselined {
                version: m.version.clone(),
            });
        }
        conn.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| MigrateError::database("committing the baseline", &e))
    }
    .await;
    lock.release().await;
    result
}

/// Opens the migration connection and says so.
async fn open(
    connect: &ConnectOptions,
    events: &mut dyn FnMut(Event),
) -> Result<Connection, MigrateError> {
    let conn = connect.connect().await?;
    events(Event::Connected {
        target: connect.masked_url(),
    });
    Ok(conn)
}

async fn with_lock(
    connect: &ConnectOptions,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
) -> Result<MigrationLock, MigrateError> {
    let lock = MigrationLock::acquire(
        connect,
        &options.history,
        options.lock_timeout,
        &mut |holder, waited| {
            events(Event::LockWaiting {
                holder: holder.cloned(),
                waited,
            })
        },
    )
    .await?;
    if let Some(waited) = lock.waited() {
        events(Event::LockAcquired { waited });
    }
    Ok(lock)
}

/// What `sql repair` does to a file's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairAction {
    /// Delete the failed record, so the file runs again.
    ClearFailure,
    /// Mark the failed record as applied (the rest was finished by hand).
    MarkApplied,
    /// Store the file's current checksum for an applied file that changed.
    AcceptChecksum,
    /// Delete the record of a file that is gone from the directory.
    Forget,
}

/// `sql repair`: changes one file's record, under the lock. Returns a one-line summary.
///
/// # Errors
/// Nothing to repair for that version, connection, lock and database errors.
pub async fn repair(
    connect: &ConnectOptions,
    source: &Source,
    options: &MigrateOptions,
    version: &str,
    action: RepairAction,
    events: &mut dyn FnMut(Event),
) -> Result<String, MigrateError> {
    let file = source.get(version);
    if file.is_none() && action != RepairAction::Forget {
        return Err(MigrateError::Usage(format!(
            "--version {version}: no such file in {}",
            source.dir.display()
        )));
    }
    if file.is_some() && action == RepairAction::Forget {
        return Err(MigrateError::Usage(format!(
            "--version {version}: the file is still in {}; --forget is for records whose file is gone \
             (forgetting it would run it again)",
            source.dir.display()
        )));
    }
    let conn = open(connect, events).await?;
    let lock = with_lock(connect, options, events).await?;
    let result = async {
        let h = &options.history;
        let changed = match (action, file) {
            (RepairAction::ClearFailure, _) => h.delete_failed(&conn.client, version).await,
            (RepairAction::MarkApplied, Some(m)) => {
                h.mark_applied(&conn.client, version, &m.checksum).await
            }
            (RepairAction::AcceptChecksum, Some(m)) => {
                h.set_checksum(&conn.client, version, &m.checksum).await
            }
            (RepairAction::Forget, _) => h.delete_version(&conn.client, version).await,
            (_, None) => Ok(0),
        }
        .map_err(|e| MigrateError::database("repairing the history", &e))?;
        if changed == 0 {
            let what = match action {
                RepairAction::ClearFailure | RepairAction::MarkApplied => "no failed record",
                RepairAction::AcceptChecksum => "no applied record",
                RepairAction::Forget => "no record",
            };
            return Err(MigrateError::Usage(format!(
                "--version {version}: {what} for this file in {}; nothing to repair",
                h.display_name()
            )));
        }
        Ok(match action {
            RepairAction::ClearFailure => {
                format!("cleared the failed record of {version}; the next migrate runs it again")
            }
            RepairAction::MarkApplied => format!("recorded {version} as applied"),
            RepairAction::AcceptChecksum => format!("accepted the current content of {version}"),
            RepairAction::Forget => format!("removed the record of {version}"),
        })
    }
    .await;
    lock.release().await;
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::PathBuf;

    fn src(files: &[(&str, &str)]) -> Source {
        Source {
            dir: PathBuf::from("m"),
            migrations: files
                .iter()
                .map(|(n, b)| Migration {
                    version: n.to_string(),
                    path: PathBuf::from(n),
                    checksum: crate::source::checksum(b),
                    no_transaction: false,
                    controls_transaction: false,
                    statements: 1,
                })
                .collect(),
            warnings: vec![],
        }
    }

    fn row(version: &str, checksum: &str, success: bool, transactional: bool) -> HistoryRow {
        HistoryRow {
            id: 1,
            version: version.into(),
            kind: RowKind::Sql,
            checksum: Some(checksum.into()),
            applied_at: "2026-01-01T00:00:00.000Z".into(),
            execution_ms: 1,
            applied_by: "t".into(),
            success,
            error: None,
            statement: Some(2),
            exit_code: None,
            transactional,
        }
    }

    #[test]
    fn reconcile_classifies_every_state() {
        let s = src(&[
            ("1.sql", "a;"),
            ("2.sql", "b;"),
            ("3.sql", "c;"),
            ("4.sql", "d;"),
            ("5.sql", "e;"),
        ]);
        let c = |i: usize| s.migrations[i].checksum.clone();
        let history = vec![
            row("1.sql", &c(0), true, true),
            row("2.sql", "old", true, true),
            row("4.sql", &c(3), false, false),
            row("5.sql", &c(4), false, true),
            row("9.sql", "x", true, true),
        ];
        let r = reconcile(&s, &history);
        assert!(matches!(r.files[0], (FileState::Applied(_), false)));
        assert!(matches!(r.files[1], (FileState::Drifted(_), false)));
        // 3.sql is pending and sorts before 9.sql, which is applied.
        assert!(matches!(
            r.files[2],
            (
                FileState::Pending {
                    previous_failure: None
                },
                true
            )
        ));
        assert!(matches!(r.files[3], (FileState::Failed(_), false)));
        assert!(matches!(
            r.files[4],
            (
                FileState::Pending {
                    previous_failure: Some(_)
                },
                true
            )
        ));
        assert_eq!(r.missing.len(), 1);
        let opts = MigrateOptions::default();
        let problems = r.problems(&s, &opts);
        let names: Vec<_> = problems.iter().map(|p| p.version.as_str()).collect();
        assert_eq!(names, ["2.sql", "3.sql", "4.sql", "5.sql"]);
        assert!(
            problems[2].message.contains("interrupted at statement 2"),
            "{}",
            problems[2].message
        );
        let lenient = MigrateOptions {
            allow_drift: true,
            allow_out_of_order: true,
            strict: true,
            ..MigrateOptions::default()
        };
        let names: Vec<_> = r
            .problems(&s, &lenient)
            .into_iter()
            .map(|p| p.version)
            .collect();
        assert_eq!(names, ["4.sql", "9.sql"]);
    }
}
