//! The migrator: reconciles a [`Source`] with the history and applies what is pending.
//!
//! Every command (`sql migrate`, `status`, `baseline`, `repair`) goes through this
//! module; the binary only parses arguments and reports.
//!
//! A run of [`migrate`] (of [`migrate_reading`], with the files read while step 2
//! connects and reads the history):
//! 1. takes the files read: a file that does not lex stops the run before anything
//!    touches the database;
//! 2. opens the migration connection, reads the history without a lock and
//!    [`reconcile`]s it with the files: a run that finds every file applied as it is
//!    ends here, without the lock (see [`Reconciled::up_to_date`]);
//! 3. takes the [lock](crate::lock) on a second connection, creates the history
//!    table if needed, and reads and reconciles it again, under the lock;
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
use crate::source::{Lexed, Migration, Source, SourceError};

mod adopt;
mod baseline;
mod command;
mod error;
mod finish;
mod gset;
mod pipeline;
mod reconcile;
mod repair;
mod report;
mod run;
mod runner;
mod statements;

pub use adopt::{Tool, adopt};
pub use baseline::baseline;
use baseline::{files_to_record, record_baselined};
pub use command::CommandSession;
use error::*;
pub use error::{MigrateError, Problem, SqlFailure, describe, is_connection_error};
pub use reconcile::{FileState, Reconciled, reconcile, reconcile_rows};
pub use repair::{RepairAction, repair};
pub use report::status;

use pipeline::*;
use report::*;
use run::*;
use runner::*;

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
    /// PostgreSQL's `statement_timeout` for the migrations' statements.
    pub statement_timeout: Option<Duration>,
    /// How many times a transactional file that failed on a lock timeout (SQLSTATE
    /// 55P03) is rolled back and run again, after 1 s, 2 s, 4 s… (at most 30 s).
    pub lock_retries: u32,
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
            statement_timeout: None,
            lock_retries: 0,
            variables: Variables::new(),
        }
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
    source_warnings(source, events);
    let settled = open_session(connect, options, events)
        .await
        .map(|opened| settle(opened, source, options));
    finish_run(connect, source, settled, options, events, started).await
}

/// The rest of a run once its files are read and its session opened (or not):
/// runs [`run_opened`] and reports every file, those that did not run as `not_run`.
async fn finish_run(
    connect: &ConnectOptions,
    source: &Source,
    opened: Result<Settled, MigrateError>,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
    started: Instant,
) -> Outcome {
    let mut report = source_report(connect, &options.history, options.dry_run, source);
    // `plan_and_run` fills `report.files` once the history is reconciled (and
    // freed); a run that ended before that reports every file as not run. Built
    // here, before the history is read, the rows would sit beside the history's
    // rows at the run's peak of memory.
    let result = match opened {
        Ok(opened) => run_opened(opened, connect, source, options, events, &mut report).await,
        Err(e) => Err(e),
    };
    if report.files.len() != source.migrations.len() {
        report.files = source
            .migrations
            .iter()
            .map(|m| file_report(m, FileStatus::NotRun))
            .collect();
    }
    report.duration_ms = millis(started.elapsed());
    Outcome {
        report,
        error: result.err(),
    }
}

/// [`migrate`] while the files are still being read: `read` runs on a blocking
/// thread while the run connects and reads the history, so a rerun with nothing to
/// apply waits for the slower of the two, not for both.
///
/// Nothing is written to the database, and the lock is not taken, before `read`
/// has returned the files. A file that cannot be read stops the run as soon as that
/// is known, also while the connection is still being opened.
///
/// Files `read` only hashed ([`SourceOptions::defer_lex`](crate::source::SourceOptions::defer_lex))
/// are then lexed, with `options.variables`, while the history is on its way; a
/// file that does not lex ends the run as above. A history that has every file
/// applied with its checksum stops that lexing and the run ends there: a file
/// hashed to the checksum recorded when it ran has the bytes it had then, when
/// it was lexed and ran. Any other run waits for the lexing before it goes on.
///
/// # Errors
/// `Err` is `read`'s error: the run did not start and wrote nothing. A failure of
/// the run itself is inside the [`Outcome`], as for [`migrate`].
///
/// # Caveats
/// The files' warnings (see [`Source::warnings`]) reach `events` after
/// [`Event::Connected`], where [`migrate`] sends them before it. A panic in `read`
/// is resumed on the caller's thread.
pub async fn migrate_reading<F>(
    connect: &ConnectOptions,
    read: F,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
) -> Result<Outcome, SourceError>
where
    F: FnOnce() -> Result<Source, SourceError> + Send + 'static,
{
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let started = Instant::now();
    let reading = tokio::task::spawn_blocking(read);
    let stop = Arc::new(AtomicBool::new(false));
    let (source, opened, mut lexing, lexed) = {
        let session = open_session(connect, options, events);
        tokio::pin!(session, reading);
        // The files first. One that cannot be read ends the run at once, also
        // while the connection is still being opened (dropped with its future).
        let mut opened = None;
        let source = loop {
            tokio::select! {
                biased;
                read = &mut reading => break Arc::new(joined(read)?),
                done = &mut session, if opened.is_none() => opened = Some(done),
            }
        };
        // Files only hashed are lexed while the history is on its way, and
        // reported at once if one does not lex; on one thread, as the history's
        // rows need the other core. The history stops it (below).
        let mut lexing = {
            let (source, stop) = (Arc::clone(&source), Arc::clone(&stop));
            let vars = options.variables.clone();
            Box::pin(async move {
                if source.deferred() == 0 {
                    return Ok(Lexed::default());
                }
                let lex = move || source.lex_deferred(&vars, 0, 1, Some(&stop));
                joined(tokio::task::spawn_blocking(lex).await)
            })
        };
        let mut lexed = None;
        let opened = match opened {
            Some(opened) => opened,
            None => loop {
                tokio::select! {
                    biased;
                    done = &mut lexing, if lexed.is_none() => lexed = Some(done?),
                    opened = &mut session => break opened,
                }
            },
        };
        (source, opened, lexing, lexed)
    };
    // The history is here: the lexing on one thread stops either way, and leaves
    // the core (and its memory) to the reconciliation.
    stop.store(true, Ordering::Relaxed);
    let settled = opened.map(|opened| settle(opened, &source, options));
    let batches = if matches!(&settled, Ok(Settled::Ends(_, rec)) if !rec.any_pending()) {
        // Every file is applied with its checksum: the bytes it had when it was
        // lexed and ran, so lexing it again is not needed. An error the lexing
        // meets from here on is not reported (one it met before the history
        // arrived was). Waited for only so that its thread ends.
        if lexed.is_none() {
            let _ = (&mut lexing).await;
        }
        Vec::new()
    } else {
        // Anything else lexes every hashed file before it goes on: from where
        // the lexing stopped, now on every core.
        let first = match lexed {
            Some(lexed) => lexed,
            None => (&mut lexing).await?,
        };
        let from = first.len();
        let mut batches = vec![first];
        if from < source.deferred() {
            let (source, vars) = (Arc::clone(&source), options.variables.clone());
            let lex = move || source.lex_deferred(&vars, from, 8, None);
            batches.push(joined(tokio::task::spawn_blocking(lex).await)?);
        }
        batches
    };
    // The lexing tasks have ended (or never started): their shares of the source
    // are gone, so this does not copy it.
    drop(lexing);
    let mut source = Arc::try_unwrap(source).unwrap_or_else(|shared| (*shared).clone());
    for lexed in batches {
        source.take_lexed(lexed);
    }
    source_warnings(&source, events);
    Ok(finish_run(connect, &source, settled, options, events, started).await)
}

/// What [`migrate_reading`]'s blocking tasks returned.
fn joined<T>(
    read: Result<Result<T, SourceError>, tokio::task::JoinError>,
) -> Result<T, SourceError> {
    match read {
        Ok(read) => read,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels a blocking task, and this
            // future runs on that runtime: it is not polled after a shutdown.
            Err(e) => Err(SourceError::Dir {
                path: std::path::PathBuf::new(),
                cause: std::io::Error::other(e),
            }),
        },
    }
}

/// Sends the source's warnings.
fn source_warnings(source: &Source, events: &mut dyn FnMut(Event)) {
    for w in &source.warnings {
        events(Event::Warning {
            message: w.to_string(),
        });
    }
}

/// The context of an error while the history table is made sure of.
fn creating_table(options: &MigrateOptions) -> String {
    format!(
        "creating the history table {}",
        options.history.display_name()
    )
}

/// A run connected, with the history as read before any lock.
struct Opened {
    conn: Connection,
    /// The history's file rows; `None` when there is no table yet (created by
    /// [`run_opened`], under the lock, once the files are known to be good).
    rows: Option<Vec<HistoryRow>>,
}

/// Connects and reads the history, without the lock: what a run does before it
/// needs its files. Writes nothing.
async fn open_session(
    connect: &ConnectOptions,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
) -> Result<Opened, MigrateError> {
    let conn = connect.connect().await?;
    events(Event::Connected {
        target: connect.masked_url(),
    });
    let rows = match options.history.exists(&conn.client).await {
        Ok(false) => None,
        Ok(true) => Some(
            options
                .history
                .load_existing(&conn.client)
                .await
                .map_err(|e| MigrateError::history("reading the history", e))?,
        ),
        Err(e) if options.dry_run => return Err(MigrateError::history("reading the history", e)),
        Err(e) => return Err(MigrateError::history(creating_table(options), e)),
    };
    Ok(Opened { conn, rows })
}

/// Where the history read before any lock leaves a run.
enum Settled {
    /// The run ends on this reconciliation, without the lock: a dry run, or one
    /// that finds nothing to do.
    Ends(Connection, Reconciled),
    /// The run takes the lock (and reads the history again under it).
    Locks(Connection),
}

/// Reconciles the files with the history an [`open_session`] read: a run that
/// finds every file applied as it is, and nothing that needs a person, ends there,
/// without the lock. The history was read in one statement, a consistent
/// snapshot, so ending on it is what a run that finished just before any
/// concurrent change would report, and a lock taken now would find at least as
/// much applied.
fn settle(opened: Opened, source: &Source, options: &MigrateOptions) -> Settled {
    let Opened { conn, rows } = opened;
    if options.dry_run {
        return Settled::Ends(conn, reconcile_rows(source, rows.unwrap_or_default()));
    }
    if let Some(rows) = rows {
        let rec = reconcile_rows(source, rows);
        if rec.up_to_date(source, options) {
            return Settled::Ends(conn, rec);
        }
    }
    Settled::Locks(conn)
}

/// Finishes a run as [`settle`] left it: reports the reconciliation it ended on,
/// or opens the lock's connection, takes the lock, reads the history again under
/// it (a runner that waited for another one sees everything it applied) and
/// applies what is pending; the lock is released on every path.
async fn run_opened(
    settled: Settled,
    connect: &ConnectOptions,
    source: &Source,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
    report: &mut Report,
) -> Result<(), MigrateError> {
    let mut conn = match settled {
        Settled::Ends(mut conn, rec) => {
            return plan_and_run(&mut conn, None, source, rec, options, events, report).await;
        }
        Settled::Locks(conn) => conn,
    };

    // PostgreSQL 14+: notice within a second that this runner died (kill -9, lost
    // node) and roll its transaction back, instead of finishing a long statement
    // for a client that is gone. Older servers lack the setting; that is fine.
    // Sent while the lock is taken: one round trip less.
    let (check_interval, lock) = tokio::join!(
        conn.client.batch_execute(CHECK_INTERVAL),
        with_lock(connect, options, events)
    );
    let check_interval = check_interval.is_ok();
    let lock = lock?;
    // From here on the lock is released on every path.
    let result = async {
        options
            .history
            .ensure(&conn.client)
            .await
            .map_err(|e| MigrateError::history(creating_table(options), e))?;
        // Read the history again, under the lock.
        let rows = options
            .history
            .load_existing(&conn.client)
            .await
            .map_err(|e| MigrateError::history("reading the history", e))?;
        let rec = reconcile_rows(source, rows);
        let session = Session {
            lock: &lock,
            check_interval,
        };
        plan_and_run(
            &mut conn,
            Some(session),
            source,
            rec,
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

/// Opens the lock's connection and takes the lock, saying so when it had to wait.
async fn with_lock(
    connect: &ConnectOptions,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
) -> Result<MigrationLock, MigrateError> {
    let lock_conn = MigrationLock::connect(connect).await?;
    with_lock_on(lock_conn, connect, options, events).await
}

/// [`with_lock`] on a connection already opened by [`MigrationLock::connect`].
async fn with_lock_on(
    lock_conn: Connection,
    connect: &ConnectOptions,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
) -> Result<MigrationLock, MigrateError> {
    let lock = MigrationLock::acquire_on(
        lock_conn,
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

#[cfg(test)]
mod tests;
