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

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::Client;
use tokio_postgres::error::{DbError, ErrorPosition};

use crate::connect::{ConnectError, ConnectOptions, Connection};
use crate::events::{Event, FileReport, FileStatus, MissingReport, Report};
use crate::history::{HistoryRow, HistoryTable, NewRow, RowKind};
use crate::lexer::{self, ChunkKind, LexError};
use crate::lock::{LockError, MigrationLock};
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
        }
    }
}

/// What kind of failure an error is; the binary maps each to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input: unreadable files, a file that does not lex, a bad argument.
    Input,
    /// A migration's SQL failed.
    Sql,
    /// A state a person must resolve: drift, out of order, a failed no-transaction file.
    NeedsPerson,
    /// The migration lock stayed taken for the whole timeout.
    LockTimeout,
    /// The database cannot be reached, or the connection was lost.
    Connection,
    /// Anything else (a bug, an unexpected server error).
    Internal,
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
    /// A file does not split into statements.
    #[error("{path}:{}:{}: {}", .error.line, .error.column, .error.kind)]
    Lex {
        /// The file.
        path: String,
        /// Where and why.
        error: LexError,
    },
    /// A psql meta-command that the engine does not run.
    #[error(
        "{path}:{line}: psql meta-command {command} is not supported; only SQL statements and COPY … FROM stdin data can run"
    )]
    MetaCommand {
        /// The file.
        path: String,
        /// 1-based line.
        line: u32,
        /// The command, e.g. `\set`.
        command: String,
    },
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
    /// The class of the error, for exit codes.
    pub fn class(&self) -> ErrorClass {
        match self {
            MigrateError::Source(_)
            | MigrateError::Lex { .. }
            | MigrateError::MetaCommand { .. }
            | MigrateError::Usage(_) => ErrorClass::Input,
            MigrateError::Connect(_) => ErrorClass::Connection,
            MigrateError::Lock(LockError::Timeout { .. }) => ErrorClass::LockTimeout,
            MigrateError::Lock(_) => ErrorClass::Connection,
            MigrateError::NeedsPerson(_) => ErrorClass::NeedsPerson,
            MigrateError::Sql(_) => ErrorClass::Sql,
            MigrateError::Database {
                connection_lost: true,
                ..
            } => ErrorClass::Connection,
            MigrateError::Database { .. } => ErrorClass::Internal,
        }
    }

    fn database(context: impl Into<String>, e: &tokio_postgres::Error) -> MigrateError {
        MigrateError::Database {
            context: context.into(),
            message: describe(e),
            connection_lost: is_connection_error(e),
        }
    }
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
    let files = source
        .migrations
        .iter()
        .map(|m| {
            let row = history.iter().rev().find(|r| r.version == m.version);
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
        .filter(|r| source.get(&r.version).is_none())
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

/// One step of a file: a statement, or a `COPY … FROM stdin` with its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Sql {
        start: usize,
        end: usize,
    },
    Copy {
        start: usize,
        end: usize,
        data_start: usize,
        data_end: usize,
    },
}

/// Splits a file into steps.
fn plan_steps(m: &Migration) -> Result<Vec<Step>, MigrateError> {
    let chunks = lexer::split(&m.sql).map_err(|error| MigrateError::Lex {
        path: m.path.display().to_string(),
        error,
    })?;
    let mut steps: Vec<Step> = Vec::new();
    for c in &chunks {
        match c.kind {
            ChunkKind::Blank => {}
            ChunkKind::Sql => steps.push(Step::Sql {
                start: c.start,
                end: c.end,
            }),
            ChunkKind::CopyData => {
                let data_end = copy_data_end(c.text(&m.sql)) + c.start;
                match steps.pop() {
                    Some(Step::Sql { start, end }) => steps.push(Step::Copy {
                        start,
                        end,
                        data_start: c.start,
                        data_end,
                    }),
                    // The lexer emits CopyData only right after its COPY statement.
                    other => {
                        steps.extend(other);
                    }
                }
            }
            ChunkKind::Meta => {
                let text = c.text(&m.sql);
                let command = text.split_whitespace().next().unwrap_or(text).to_string();
                return Err(MigrateError::MetaCommand {
                    path: m.path.display().to_string(),
                    line: c.line,
                    command,
                });
            }
        }
    }
    Ok(steps)
}

/// The length of COPY data without its `\.` terminator line.
fn copy_data_end(data: &str) -> usize {
    let trimmed = data.strip_suffix('\n').unwrap_or(data);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    let without = trimmed.strip_suffix("\\.").unwrap_or(trimmed);
    without.len()
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
        .map_err(|e| MigrateError::database("reading the history", &e))?;
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
        transactional: !m.no_transaction,
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
    // Lex everything first: a file that does not split stops the run before any change.
    let steps = source
        .migrations
        .iter()
        .map(plan_steps)
        .collect::<Result<Vec<_>, _>>()?;

    let mut conn = open(connect, events).await?;

    if options.dry_run {
        let rows = options
            .history
            .load(&conn.client)
            .await
            .map_err(|e| MigrateError::database("reading the history", &e))?;
        let rec = reconcile(source, &rows);
        return plan_and_run(
            &mut conn, None, source, &steps, &rec, options, events, report,
        )
        .await;
    }

    // PostgreSQL 14+: notice within a second that this runner died (kill -9, lost
    // node) and roll its transaction back, instead of finishing a long statement
    // for a client that is gone. Older servers lack the setting; that is fine.
    let _ = conn
        .client
        .batch_execute("SET client_connection_check_interval = 1000")
        .await;
    let lock = with_lock(connect, options, events).await?;
    // From here on the lock is released on every path.
    let result = async {
        options.history.ensure(&conn.client).await.map_err(|e| {
            MigrateError::database(
                format!(
                    "creating the history table {}",
                    options.history.display_name()
                ),
                &e,
            )
        })?;
        // Read the history only now, under the lock: a runner that waited for another
        // one sees everything it applied.
        let rows = options
            .history
            .load(&conn.client)
            .await
            .map_err(|e| MigrateError::database("reading the history", &e))?;
        let rec = reconcile(source, &rows);
        if let Some(timeout) = options.statement_lock_timeout {
            let value = format!("{}ms", timeout.as_millis().max(1));
            conn.client
                .query_one("SELECT set_config('lock_timeout', $1, false)", &[&value])
                .await
                .map_err(|e| MigrateError::database("setting lock_timeout", &e))?;
        }
        plan_and_run(
            &mut conn,
            Some(&lock),
            source,
            &steps,
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

#[allow(clippy::too_many_arguments)]
async fn plan_and_run(
    conn: &mut Connection,
    lock: Option<&MigrationLock>,
    source: &Source,
    steps: &[Vec<Step>],
    rec: &Reconciled,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
    report: &mut Report,
) -> Result<(), MigrateError> {
    report.missing = missing_report(&rec.missing);
    for (m, (state, ooo)) in source.migrations.iter().zip(&rec.files) {
        let i = report.files.iter().position(|f| f.version == m.version);
        if let Some(f) = i.and_then(|i| report.files.get_mut(i)) {
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
    }
    for row in &rec.missing {
        if !options.strict {
            events(Event::Warning {
                message: format!(
                    "{} is recorded in {} (applied {}) but its file is not in {}",
                    row.version,
                    options.history.display_name(),
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
    let Some(lock) = lock else {
        for &i in &pending {
            let m = &source.migrations[i];
            events(Event::WouldApply {
                version: m.version.clone(),
                transactional: !m.no_transaction,
                statements: steps[i].len(),
            });
        }
        return Ok(());
    };
    let runner = Runner::new(conn, options).await?;
    for &i in &pending {
        let m = &source.migrations[i];
        lock.check().await?;
        let previous_failure = matches!(
            &rec.files[i].0,
            FileState::Pending {
                previous_failure: Some(_)
            }
        );
        events(Event::FileStarted {
            version: m.version.clone(),
            transactional: !m.no_transaction,
        });
        let t0 = Instant::now();
        let result = if m.no_transaction {
            runner.run_no_transaction(m, &steps[i], events).await
        } else {
            runner
                .run_transactional(m, &steps[i], previous_failure, events)
                .await
        };
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

/// Runs files on the migration connection.
struct Runner<'a> {
    client: &'a Client,
    /// Only drained between statements, by the one task that runs them.
    notices: std::sync::Mutex<&'a mut tokio::sync::mpsc::UnboundedReceiver<String>>,
    options: &'a MigrateOptions,
    insert: tokio_postgres::Statement,
}

impl<'a> Runner<'a> {
    async fn new(
        conn: &'a mut Connection,
        options: &'a MigrateOptions,
    ) -> Result<Runner<'a>, MigrateError> {
        let Connection { client, notices } = conn;
        let insert = client
            .prepare(&options.history.insert_sql())
            .await
            .map_err(|e| MigrateError::database("preparing the history insert", &e))?;
        Ok(Runner {
            client,
            notices: std::sync::Mutex::new(notices),
            options,
            insert,
        })
    }

    fn client(&self) -> &Client {
        self.client
    }

    async fn run_transactional(
        &self,
        m: &Migration,
        steps: &[Step],
        previous_failure: bool,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        let history = &self.options.history;
        let t0 = Instant::now();
        let result = async {
            self.client()
                .batch_execute("BEGIN")
                .await
                .map_err(|e| MigrateError::database("starting a transaction", &e))?;
            if previous_failure {
                history
                    .delete_failed(self.client(), &m.version)
                    .await
                    .map_err(|e| MigrateError::database("clearing the failed attempt", &e))?;
            }
            for (n, step) in steps.iter().enumerate() {
                self.run_step(m, n + 1, *step, events).await?;
            }
            let row = NewRow {
                version: &m.version,
                kind: RowKind::Sql,
                checksum: Some(&m.checksum),
                execution_ms: i64::try_from(t0.elapsed().as_millis()).unwrap_or(i64::MAX),
                applied_by: &self.options.applied_by,
                success: true,
                error: None,
                statement: None,
                exit_code: None,
                transactional: true,
            };
            history
                .insert_with(self.client(), &self.insert, &row)
                .await
                .map_err(|e| {
                    MigrateError::database(format!("recording {} in the history", m.version), &e)
                })?;
            self.client()
                .batch_execute("COMMIT")
                .await
                .map_err(|e| commit_error(m, steps.len(), e))
        }
        .await;
        if let Err(e) = &result {
            if e.class() == ErrorClass::Connection {
                return result;
            }
            // Best effort: the transaction is aborted; record the attempt for people to read.
            let _ = self.client().batch_execute("ROLLBACK").await;
            if let MigrateError::Sql(s) = e {
                let _ = history.delete_failed(self.client(), &m.version).await;
                let row = NewRow {
                    version: &m.version,
                    kind: RowKind::Sql,
                    checksum: Some(&m.checksum),
                    execution_ms: i64::try_from(t0.elapsed().as_millis()).unwrap_or(i64::MAX),
                    applied_by: &self.options.applied_by,
                    success: false,
                    error: Some(&s.to_string()),
                    statement: i32::try_from(s.statement).ok(),
                    exit_code: None,
                    transactional: true,
                };
                let _ = history.insert_with(self.client(), &self.insert, &row).await;
            }
        }
        result
    }

    async fn run_no_transaction(
        &self,
        m: &Migration,
        steps: &[Step],
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        let history = &self.options.history;
        let t0 = Instant::now();
        let row = NewRow {
            version: &m.version,
            kind: RowKind::Sql,
            checksum: Some(&m.checksum),
            execution_ms: 0,
            applied_by: &self.options.applied_by,
            success: false,
            error: None,
            statement: None,
            exit_code: None,
            transactional: false,
        };
        let id = history
            .insert_with(self.client(), &self.insert, &row)
            .await
            .map_err(|e| {
                MigrateError::database(format!("recording the start of {}", m.version), &e)
            })?;
        for (n, step) in steps.iter().enumerate() {
            let number = i32::try_from(n + 1).unwrap_or(i32::MAX);
            history
                .set_statement(self.client(), id, number)
                .await
                .map_err(|e| {
                    MigrateError::database(format!("recording progress of {}", m.version), &e)
                })?;
            if let Err(e) = self.run_step(m, n + 1, *step, events).await {
                if e.class() != ErrorClass::Connection {
                    let ms = i64::try_from(t0.elapsed().as_millis()).unwrap_or(i64::MAX);
                    let _ = history
                        .finish(
                            self.client(),
                            id,
                            false,
                            ms,
                            Some(&e.to_string()),
                            Some(number),
                        )
                        .await;
                }
                return Err(e);
            }
        }
        let ms = i64::try_from(t0.elapsed().as_millis()).unwrap_or(i64::MAX);
        history
            .finish(self.client(), id, true, ms, None, None)
            .await
            .map_err(|e| MigrateError::database(format!("recording {} as applied", m.version), &e))
    }

    async fn run_step(
        &self,
        m: &Migration,
        number: usize,
        step: Step,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        let (start, end) = match step {
            Step::Sql { start, end } | Step::Copy { start, end, .. } => (start, end),
        };
        let text = m.sql.get(start..end).unwrap_or("");
        let result = match step {
            Step::Sql { .. } => self.client().batch_execute(text).await,
            Step::Copy {
                data_start,
                data_end,
                ..
            } => {
                let data = m.sql.get(data_start..data_end).unwrap_or("");
                self.copy_in(text, data).await
            }
        };
        self.drain_notices(m, events);
        result.map_err(|e| statement_error(m, number, start, text, e))
    }

    async fn copy_in(&self, statement: &str, data: &str) -> Result<(), tokio_postgres::Error> {
        let sink = self.client().copy_in::<_, Bytes>(statement).await?;
        futures_util::pin_mut!(sink);
        // Send in pieces so one huge block does not become one huge message.
        for piece in data.as_bytes().chunks(64 * 1024) {
            sink.feed(Bytes::copy_from_slice(piece)).await?;
        }
        sink.finish().await.map(drop)
    }

    fn drain_notices(&self, m: &Migration, events: &mut dyn FnMut(Event)) {
        if let Ok(mut rx) = self.notices.try_lock() {
            while let Ok(message) = rx.try_recv() {
                events(Event::Notice {
                    version: m.version.clone(),
                    message,
                });
            }
        }
    }
}

fn commit_error(m: &Migration, statements: usize, e: tokio_postgres::Error) -> MigrateError {
    match e.as_db_error() {
        // A deferred constraint fails at COMMIT: report it against the file.
        Some(db) if !is_connection_error(&e) => MigrateError::Sql(Box::new(SqlFailure {
            version: m.version.clone(),
            path: m.path.display().to_string(),
            statement: statements,
            line: 1,
            column: 1,
            line_text: m.sql.lines().next().unwrap_or("").to_string(),
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
    start: usize,
    text: &str,
    e: tokio_postgres::Error,
) -> MigrateError {
    if is_connection_error(&e) {
        return MigrateError::database(format!("running {} (statement {number})", m.version), &e);
    }
    let Some(db) = e.as_db_error() else {
        return MigrateError::database(format!("running {} (statement {number})", m.version), &e);
    };
    MigrateError::Sql(Box::new(sql_failure(m, number, start, text, db)))
}

fn sql_failure(m: &Migration, number: usize, start: usize, text: &str, db: &DbError) -> SqlFailure {
    // PostgreSQL's position counts characters from 1 in the statement text as sent.
    let (offset, exact) = match db.position() {
        Some(ErrorPosition::Original(p)) => {
            let chars = (*p as usize).saturating_sub(1);
            match text.char_indices().nth(chars) {
                Some((o, _)) => (start + o, true),
                None => (start + text.len(), true),
            }
        }
        _ => (start + leading_trivia(text), false),
    };
    let (line, column) = lexer::line_col(&m.sql, offset);
    let line_text = m
        .sql
        .lines()
        .nth(line.saturating_sub(1) as usize)
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_string();
    let code = db.code().code().to_string();
    let hint = match db.hint() {
        Some(h) => Some(h.to_string()),
        // "cannot run inside a transaction block"
        None if code == "25001" && !m.no_transaction => Some(format!(
            "put `-- {}` in the first comment lines of the file to run it without a transaction",
            crate::source::NO_TRANSACTION_DIRECTIVE
        )),
        None => None,
    };
    SqlFailure {
        version: m.version.clone(),
        path: m.path.display().to_string(),
        statement: number,
        line,
        column,
        line_text,
        exact,
        code,
        message: db.message().to_string(),
        detail: db.detail().map(str::to_string),
        hint,
        context: db.where_().map(str::to_string),
    }
}

/// Bytes of whitespace before a statement's first token (statements start at a token,
/// so this is normally 0).
fn leading_trivia(text: &str) -> usize {
    text.len() - text.trim_start().len()
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
            .map_err(|e| MigrateError::database("creating the history table", &e))?;
        let rows = history
            .load(&conn.client)
            .await
            .map_err(|e| MigrateError::database("reading the history", &e))?;
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
                        message: "has a failed attempt in the history; run `kubemigrate sql repair` first".into(),
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
                transactional: !m.no_transaction,
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
                .map(|(n, b)| {
                    Migration::from_bytes(n.to_string(), PathBuf::from(n), b.as_bytes().to_vec())
                        .unwrap()
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

    #[test]
    fn copy_terminator_is_not_sent() {
        assert_eq!(copy_data_end("1\ta\n2\tb\n\\.\n"), "1\ta\n2\tb\n".len());
        assert_eq!(copy_data_end("1\ta\r\n\\.\r\n"), "1\ta\r\n".len());
        assert_eq!(copy_data_end("\\."), 0);
    }

    #[test]
    fn steps_pair_copy_with_its_data_and_reject_meta_commands() {
        let s = src(&[(
            "1.sql",
            "create table t (a int);\ncopy t from stdin;\n1\n\\.\nselect 1;\n",
        )]);
        let steps = plan_steps(&s.migrations[0]).unwrap();
        assert_eq!(steps.len(), 3);
        assert!(matches!(steps[1], Step::Copy { .. }));
        let s = src(&[("2.sql", "select 1;\n\\set x 1\n")]);
        let err = plan_steps(&s.migrations[0]).unwrap_err().to_string();
        assert_eq!(
            err,
            "2.sql:2: psql meta-command \\set is not supported; only SQL statements and COPY … FROM stdin data can run"
        );
    }
}
