//! Fan-out: one `sql migrate`, `sql status` or `exec` over many databases (one
//! database per tenant), a few at a time, with one result per database
//! (docs/fan-out.md).
//!
//! Each database is an independent run of the engine's migrator
//! ([`migrator::migrate`], [`migrator::status`]), or of the command in the engine's
//! session ([`CommandSession`]), with its own connection, lock and history, so a
//! second run over the same list applies nothing anywhere. At most
//! `concurrency` runs are in flight: their futures are created one by one as others
//! end ([`StreamExt::buffer_unordered`]), so memory stays flat in the number of
//! databases; a finished run keeps only its [`DbResult`] (counts, and for a failure
//! its error and last lines), never its event log or file report.

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kubemigrate_sql::connect::{ConnectOptions, Secret};
use kubemigrate_sql::events::{Event, FileStatus};
use kubemigrate_sql::migrator::{self, CommandSession, MigrateError, MigrateOptions};
use kubemigrate_sql::source::Source;
use serde::Serialize;

use crate::exit::{Exit, Failure};
use crate::output::{Reporter, human};

/// What a failed database does to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The other databases still migrate.
    #[default]
    Continue,
    /// No new database starts; those running finish.
    Stop,
}

/// One database of the list.
pub struct Entry {
    /// How reports name it: its database name, or `host:port/name` when two
    /// entries share a name.
    pub label: String,
    /// Where it was given: `FILE:LINE` or `--database-url #N` (or the plan's field).
    pub place: String,
    /// Its connection settings.
    pub options: ConnectOptions,
    /// The entry as given (may hold a password), for `--failed-list`.
    given: Secret,
}

impl Entry {
    /// An entry; its label is set by [`label`].
    pub fn new(options: ConnectOptions, place: String, given: &str) -> Entry {
        Entry {
            label: String::new(),
            place,
            options,
            given: Secret::new(given),
        }
    }
}

/// Names the entries: by database name, else by `host:port/name` where names
/// repeat, else by place.
pub fn label(mut entries: Vec<Entry>) -> Vec<Entry> {
    use std::collections::HashMap;
    let full = |e: &Entry| format!("{}:{}/{}", e.options.host, e.options.port, e.options.dbname);
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut fulls: HashMap<String, usize> = HashMap::new();
    for e in &entries {
        *names.entry(e.options.dbname.clone()).or_default() += 1;
        *fulls.entry(full(e)).or_default() += 1;
    }
    for e in &mut entries {
        let f = full(e);
        e.label = if names.get(&e.options.dbname) == Some(&1) {
            e.options.dbname.clone()
        } else if fulls.get(&f) == Some(&1) {
            f
        } else {
            format!("{f} ({})", e.place)
        };
    }
    entries
}

/// How the databases are run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How many at once (at least 1).
    pub concurrency: u32,
    /// What a failure does to the others.
    pub on_failure: OnFailure,
}

/// What runs on each database: the engine's migrator, or its status.
pub enum Job<'a> {
    /// `sql migrate` (or a plan's SQL target).
    Migrate {
        /// The files.
        source: &'a Source,
        /// The engine's options.
        options: &'a MigrateOptions,
    },
    /// `sql status`.
    Status {
        /// The files.
        source: &'a Source,
        /// The history table and `strict`.
        options: &'a MigrateOptions,
    },
    /// `exec` (or a plan's command target): the command, once per database, with
    /// that database's variables, recorded in its history.
    Exec {
        /// The command and its arguments.
        command: &'a [String],
        /// Whether it runs under the database's migration lock.
        lock: bool,
        /// The history table.
        options: &'a MigrateOptions,
    },
}

/// How one database ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbState {
    /// Files were applied.
    Applied,
    /// Nothing to do: every file was applied before.
    UpToDate,
    /// `status` (or a dry run): files are pending.
    Pending,
    /// The run failed (SQL, connection, lock timeout, a state that needs a person).
    Failed,
    /// Not run: an earlier database failed with `onFailure: stop`.
    NotRun,
    /// `exec`: the command exited 0 (what it did is its own to say).
    Ran,
}

/// How many of a failed database's last log lines its result keeps.
const LAST_LINES: usize = 5;

/// One database's result: all that is kept of its run.
#[derive(Debug, Serialize)]
pub struct DbResult {
    /// Its label.
    pub database: String,
    /// Its masked URL.
    pub url: String,
    /// Where it was given.
    pub place: String,
    /// How it ended.
    pub result: DbState,
    /// Its exit code, as a run over it alone would have ended.
    pub exit_code: u8,
    /// The exit code's name.
    pub outcome: &'static str,
    /// Files this run applied.
    pub applied: usize,
    /// Files pending (`status`, dry run) or not run after a failure.
    pub pending: usize,
    /// The file that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The error, one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Lines under the error (the failed line of SQL and its caret).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
    /// A failed database's last log lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub last_lines: Vec<String>,
    /// Wall time of its run.
    pub duration_ms: u64,
    #[serde(skip)]
    exit: Exit,
}

impl DbResult {
    fn new(entry: &Entry, result: DbState, exit: Exit) -> DbResult {
        DbResult {
            database: entry.label.clone(),
            url: entry.options.masked_url(),
            place: entry.place.clone(),
            result,
            exit_code: exit.code(),
            outcome: exit.name(),
            applied: 0,
            pending: 0,
            file: None,
            error: None,
            detail: Vec::new(),
            last_lines: Vec::new(),
            duration_ms: 0,
            exit,
        }
    }

    fn failed(mut self, failure: Failure) -> DbResult {
        self.result = DbState::Failed;
        self.exit = failure.exit;
        self.exit_code = failure.exit.code();
        self.outcome = failure.exit.name();
        self.error = Some(format!("{:#}", failure.error));
        self.detail = failure.detail;
        self
    }
}

impl DbState {
    /// The word of a result line (and of JSON).
    pub fn code(self) -> &'static str {
        match self {
            DbState::Applied => "applied",
            DbState::UpToDate => "up_to_date",
            DbState::Pending => "pending",
            DbState::Failed => "failed",
            DbState::NotRun => "not_run",
            DbState::Ran => "ran",
        }
    }

    /// Every state, in the order summaries count them.
    pub const ALL: [DbState; 6] = [
        DbState::UpToDate,
        DbState::Applied,
        DbState::Ran,
        DbState::Pending,
        DbState::Failed,
        DbState::NotRun,
    ];

    fn of_code(code: &str) -> Option<DbState> {
        DbState::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// What separates a database's name from its result in a result line.
const RESULT_MARK: &str = "] result: ";

impl DbResult {
    /// The line printed when a database ends, which `apply` reads back from the
    /// runner's log (locally, and from every pod of an Indexed Job):
    /// `[tenant_17] result: failed (exit 3): V0042__x.sql:3:1: …`,
    /// `[tenant_1] result: applied (2 files)`, `[tenant_2] result: up_to_date`.
    pub fn result_line(&self) -> String {
        let detail = match self.result {
            DbState::Applied => format!(" ({} file{})", self.applied, plural(self.applied)),
            DbState::Pending => format!(" ({} file{})", self.pending, plural(self.pending)),
            DbState::Failed => format!(
                " (exit {}): {}",
                self.exit_code,
                self.error.as_deref().unwrap_or("failed")
            ),
            DbState::UpToDate | DbState::NotRun | DbState::Ran => String::new(),
        };
        format!(
            "[{}{RESULT_MARK}{}{detail}",
            self.database,
            self.result.code()
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A database's result read back from a runner's log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbLine {
    /// The database.
    pub database: String,
    /// How it ended.
    pub result: DbState,
    /// What follows: the file count, or the exit code and error.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl DbLine {
    /// Reads a [`DbResult::result_line`]; `None` for any other line.
    pub fn parse(line: &str) -> Option<DbLine> {
        let rest = line.strip_prefix('[')?;
        let (database, rest) = rest.split_once(RESULT_MARK)?;
        let (code, detail) = match rest.split_once(' ') {
            Some((code, detail)) => (code, detail.trim()),
            None => (rest, ""),
        };
        Some(DbLine {
            database: database.to_string(),
            result: DbState::of_code(code)?,
            detail: detail.to_string(),
        })
    }
}

/// A running database's log: its lines, prefixed with its label, and the last few
/// kept for its result.
struct Log<'a> {
    label: &'a str,
    reporter: Reporter,
    /// Warnings printed once for all databases (the source's).
    shared_warnings: &'a [String],
    last: VecDeque<String>,
}

impl Log<'_> {
    fn event(&mut self, event: Event) {
        let line = match &event {
            Event::Warning { message } => {
                if self.shared_warnings.contains(message) {
                    return;
                }
                self.reporter.warn(&format!("[{}] {message}", self.label));
                format!("warning: {message}")
            }
            other => match human::event(other) {
                Some(line) => {
                    self.reporter.line(&format!("[{}] {line}", self.label));
                    line
                }
                None => return,
            },
        };
        self.keep(line);
    }

    /// A line of the database's own (a command's output, `exec`'s progress).
    fn say(&mut self, said: crate::commands::exec::Said) {
        use crate::commands::exec::Said;
        let line = match said {
            Said::Line(line) => {
                self.reporter.line(&format!("[{}] {line}", self.label));
                line
            }
            Said::Warning(text) => {
                self.reporter.warn(&format!("[{}] {text}", self.label));
                format!("warning: {text}")
            }
        };
        self.keep(line);
    }

    fn keep(&mut self, line: String) {
        if self.last.len() == LAST_LINES {
            self.last.pop_front();
        }
        self.last.push_back(line);
    }
}

/// Runs `job` over every entry, `settings.concurrency` at a time, and returns the
/// results in the entries' order.
pub async fn run(
    entries: &[Entry],
    job: &Job<'_>,
    settings: Settings,
    reporter: Reporter,
) -> Fanout {
    let started = Instant::now();
    let shared_warnings: Vec<String> = match job {
        Job::Migrate { source, .. } | Job::Status { source, .. } => {
            source.warnings.iter().map(ToString::to_string).collect()
        }
        Job::Exec { .. } => Vec::new(),
    };
    for w in &shared_warnings {
        reporter.warn(w);
    }
    let stopped = Cell::new(false);
    let concurrency = usize::try_from(settings.concurrency.max(1)).unwrap_or(1);
    let mut results: Vec<Option<DbResult>> = entries.iter().map(|_| None).collect();
    let mut runs = futures_util::stream::iter(entries.iter().enumerate())
        .map(|(i, entry)| {
            let stopped = &stopped;
            let shared_warnings = &shared_warnings;
            async move {
                if stopped.get() {
                    let result = DbResult::new(entry, DbState::NotRun, Exit::Ok);
                    reporter.line(&result.result_line());
                    return (i, result);
                }
                let mut log = Log {
                    label: &entry.label,
                    reporter,
                    shared_warnings,
                    last: VecDeque::new(),
                };
                let begun = Instant::now();
                let mut result = run_one(entry, job, &mut log, stopped).await;
                reporter.line(&result.result_line());
                result.duration_ms = u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
                if result.result == DbState::Failed {
                    result.last_lines = log.last.into_iter().collect();
                    if settings.on_failure == OnFailure::Stop {
                        stopped.set(true);
                    }
                }
                (i, result)
            }
        })
        .buffer_unordered(concurrency);
    // `exec`'s commands get SIGTERM and SIGINT passed on by their own handlers
    // and are waited for (their runs recorded, their locks released); here a signal
    // only stops new databases from starting. (`sql` commands are stopped whole by
    // main's handler instead: dropping a run closes its connections.)
    let mut signals = matches!(job, Job::Exec { .. })
        .then(crate::signals::Signals::new)
        .and_then(Result::ok);
    let mut signalled = None;
    loop {
        tokio::select! {
            next = runs.next() => match next {
                Some((i, result)) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(result);
                    }
                }
                None => break,
            },
            caught = crate::signals::Signals::recv_some(&mut signals) => {
                if signalled.is_none() {
                    reporter.warn(&format!(
                        "stopped by {}: the running commands got it too; no other database starts",
                        caught.name
                    ));
                }
                signalled = Some(caught);
                stopped.set(true);
            }
        }
    }
    drop(runs);
    Fanout {
        // Every index was filled: the stream yields each entry's future once.
        results: results.into_iter().flatten().collect(),
        settings,
        dry_run: matches!(job, Job::Migrate { options, .. } if options.dry_run),
        took: started.elapsed(),
        signalled,
    }
}

/// Runs `job` on one database. `stopped` (a signal, or a failure with `onFailure:
/// stop`) is checked again before a command starts: a database still connecting
/// when it was set does not start its command.
async fn run_one(
    entry: &Entry,
    job: &Job<'_>,
    log: &mut Log<'_>,
    stopped: &Cell<bool>,
) -> DbResult {
    let result = DbResult::new(entry, DbState::UpToDate, Exit::Ok);
    match job {
        Job::Exec {
            command,
            lock,
            options,
        } => {
            let mut result = result;
            result.result = DbState::Ran;
            let session =
                match CommandSession::open(&entry.options, options, *lock, &mut |e| log.event(e))
                    .await
                {
                    Ok(s) => s,
                    Err(e) => return result.failed(Failure::from_engine(e)),
                };
            // No await between this check and the command's start.
            if stopped.get() {
                session.close().await;
                return DbResult::new(entry, DbState::NotRun, Exit::Ok);
            }
            let ran = crate::commands::exec::in_session(
                session,
                command,
                &entry.options,
                options,
                &mut |said| log.say(said),
                Some(crate::commands::exec::Captured),
            )
            .await;
            match ran {
                Ok(Exit::Child(0)) => result,
                Ok(exit) => result.failed(Failure::new(
                    exit,
                    anyhow::anyhow!("the command exited with {}", exit.code()),
                )),
                Err(failure) => result.failed(failure),
            }
        }
        Job::Migrate { source, options } => {
            let outcome =
                migrator::migrate(&entry.options, source, options, &mut |e| log.event(e)).await;
            let mut result = result;
            let report = &outcome.report;
            result.applied = report.count(FileStatus::Applied);
            result.pending = report.count(FileStatus::Pending) + report.count(FileStatus::NotRun);
            result.file = report
                .files
                .iter()
                .find(|f| f.status == FileStatus::Failed)
                .map(|f| f.version.to_string());
            match outcome.error {
                Some(e) => result.failed(Failure::from_engine(e)),
                None if options.dry_run && result.pending > 0 => {
                    result.result = DbState::Pending;
                    result
                }
                None if result.applied > 0 => {
                    result.result = DbState::Applied;
                    result
                }
                None => result,
            }
        }
        Job::Status { source, options } => {
            let (report, rec) =
                match migrator::status(&entry.options, source, &options.history, &mut |e| {
                    log.event(e)
                })
                .await
                {
                    Ok(r) => r,
                    Err(e) => return result.failed(Failure::from_engine(e)),
                };
            let mut result = result;
            result.pending = report.count(FileStatus::Pending);
            let problems = rec.problems(source, options);
            if !problems.is_empty() {
                result.file = problems.first().map(|p| p.version.clone());
                return result.failed(Failure::from_engine(MigrateError::NeedsPerson(problems)));
            }
            if result.pending > 0 {
                result.result = DbState::Pending;
                result.exit = Exit::Pending;
                result.exit_code = Exit::Pending.code();
                result.outcome = Exit::Pending.name();
            }
            result
        }
    }
}

/// The results of a fan-out, in the list's order.
#[derive(Debug)]
pub struct Fanout {
    /// One per database.
    pub results: Vec<DbResult>,
    /// The concurrency and what a failure did.
    pub settings: Settings,
    /// A dry run: pending files are what it would apply.
    pub dry_run: bool,
    /// The wall time of the whole fan-out.
    pub took: Duration,
    /// The signal that stopped it (`exec`: no database started after it).
    pub signalled: Option<crate::signals::Caught>,
}

impl Fanout {
    /// The worst of the databases' exit codes: a failure's (the first failed
    /// database's, in list order) over "pending" (7) over success; 143 or 130 when
    /// a signal stopped it.
    pub fn exit(&self) -> Exit {
        if let Some(caught) = self.signalled {
            return caught.exit;
        }
        let rank = |e: Exit| match e {
            Exit::Ok => 0,
            Exit::Pending => 1,
            _ => 2,
        };
        let mut worst = Exit::Ok;
        for r in &self.results {
            if rank(r.exit) > rank(worst) {
                worst = r.exit;
            }
        }
        worst
    }

    /// How many databases ended in `state`.
    pub fn count(&self, state: DbState) -> usize {
        self.results.iter().filter(|r| r.result == state).count()
    }

    /// The failure the command ends with, naming the databases that failed.
    pub fn failure(&self) -> Option<Failure> {
        let failed: Vec<&str> = self
            .results
            .iter()
            .filter(|r| r.result == DbState::Failed)
            .map(|r| r.database.as_str())
            .collect();
        if let Some(crate::signals::Caught { exit, name, .. }) = self.signalled {
            let not_run = self.count(DbState::NotRun);
            return Some(Failure::new(
                exit,
                anyhow::anyhow!(
                    "stopped by {name}: {} of {} databases failed, {not_run} not run",
                    failed.len(),
                    self.results.len()
                ),
            ));
        }
        if failed.is_empty() {
            return None;
        }
        let shown = failed
            .iter()
            .take(10)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if failed.len() > 10 {
            format!(" and {} more", failed.len() - 10)
        } else {
            String::new()
        };
        Some(Failure::new(
            self.exit(),
            anyhow::anyhow!(
                "{} of {} databases failed: {shown}{more}",
                failed.len(),
                self.results.len()
            ),
        ))
    }

    /// Writes the entries that did not end well to `path` (mode 0600), or removes
    /// it when every database ended well.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_failed_list(
        &self,
        entries: &[Entry],
        path: &std::path::Path,
    ) -> Result<usize, Failure> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let bad: Vec<&Entry> = entries
            .iter()
            .zip(&self.results)
            .filter(|(_, r)| matches!(r.result, DbState::Failed | DbState::NotRun))
            .map(|(e, _)| e)
            .collect();
        let err = |e: std::io::Error| {
            Failure::new(
                Exit::Internal,
                anyhow::anyhow!("--failed-list {}: {e}", path.display()),
            )
        };
        if bad.is_empty() {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(e)),
                _ => Ok(0),
            };
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        for e in &bad {
            writeln!(file, "{}", e.given.expose()).map_err(err)?;
        }
        Ok(bad.len())
    }
}

/// Runs `job` over the databases of a `sql` command, ends the command (summary, or
/// the JSON document) and returns its exit code; writes `--failed-list`.
pub async fn finish(
    command: &str,
    entries: &[Entry],
    job: &Job<'_>,
    args: &crate::args::db::ManyConnArgs,
    reporter: Reporter,
) -> Exit {
    let settings = Settings {
        // A pod of an Indexed Job runs its shard one database at a time: the
        // Job's parallelism is the concurrency.
        concurrency: if args.in_shard() { 1 } else { args.concurrency },
        on_failure: args.on_failure,
    };
    let fanout = run(entries, job, settings, reporter).await;
    let mut failure = fanout.failure();
    if let Some(path) = &args.failed_list {
        match fanout.write_failed_list(entries, path) {
            Ok(0) => {}
            Ok(n) => {
                let path = path.display();
                let s = if n == 1 { "" } else { "s" };
                reporter.line(&format!("wrote the {n} database{s} to rerun to {path}"));
            }
            Err(f) => {
                reporter.error(&f);
                failure.get_or_insert(f);
            }
        }
    }
    let exit = failure.as_ref().map_or(fanout.exit(), |f| f.exit);
    reporter.finish(command, Some(&fanout), exit, failure.as_ref());
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, state: DbState, exit: Exit) -> DbResult {
        let options = ConnectOptions::resolve(Some(&format!("postgres://u@h/{name}")), |_| None)
            .expect("a valid URL");
        let entry = Entry {
            label: name.into(),
            ..Entry::new(options, "test".into(), "")
        };
        DbResult::new(&entry, state, exit)
    }

    #[test]
    fn result_lines_read_back_as_what_they_say() {
        let mut failed = result("tenant_17", DbState::Failed, Exit::SqlFailed);
        failed.error = Some("V0042__x.sql:3:1: boom (SQLSTATE 42P07, statement 1)".into());
        let mut applied = result("tenant_1", DbState::Applied, Exit::Ok);
        applied.applied = 2;
        let lines: Vec<DbLine> = [
            failed,
            applied,
            result("tenant_2", DbState::UpToDate, Exit::Ok),
            result("tenant_3", DbState::NotRun, Exit::Ok),
        ]
        .iter()
        .map(|r| DbLine::parse(&r.result_line()).expect("a result line"))
        .collect();
        assert_eq!(lines[0].database, "tenant_17");
        assert_eq!(lines[0].result, DbState::Failed);
        assert_eq!(
            lines[0].detail,
            "(exit 3): V0042__x.sql:3:1: boom (SQLSTATE 42P07, statement 1)"
        );
        assert_eq!(lines[1].detail, "(2 files)");
        assert_eq!(lines[2].result, DbState::UpToDate);
        assert_eq!(
            crate::output::fanout::grouped(&lines),
            "4 databases: 1 up to date, 1 applied, 1 failed, 1 not run: tenant_17 (exit 3): \
             V0042__x.sql:3:1: boom (SQLSTATE 42P07, statement 1)"
        );
        // Other lines of a log are not results.
        for other in [
            "[tenant_1] applying V1.sql",
            "applied 2 files",
            "[tenant_1] result: exploded",
        ] {
            assert_eq!(DbLine::parse(other), None, "{other}");
        }
    }

    #[test]
    fn labels_are_names_unless_names_repeat() {
        let entry = |url: &str, place: &str| {
            Entry::new(
                ConnectOptions::resolve(Some(url), |_| None).expect("a valid URL"),
                place.into(),
                url,
            )
        };
        let labels: Vec<String> = label(vec![
            entry("postgres://u@a/t1", "1"),
            entry("postgres://u@a/t2", "2"),
            entry("postgres://u@b/t2", "3"),
            entry("postgres://u@c/t3", "4"),
            entry("postgres://u@c/t3", "5"),
        ])
        .into_iter()
        .map(|e| e.label)
        .collect();
        assert_eq!(
            labels,
            [
                "t1",
                "a:5432/t2",
                "b:5432/t2",
                "c:5432/t3 (4)",
                "c:5432/t3 (5)"
            ]
        );
    }

    #[test]
    fn the_worst_exit_is_a_failure_then_pending() {
        let fanout = |results: Vec<DbResult>| Fanout {
            results,
            settings: Settings {
                concurrency: 1,
                on_failure: OnFailure::Continue,
            },
            dry_run: false,
            took: Duration::ZERO,
            signalled: None,
        };
        let f = fanout(vec![
            result("a", DbState::Pending, Exit::Pending),
            result("b", DbState::Failed, Exit::LockTimeout),
            result("c", DbState::Failed, Exit::SqlFailed),
        ]);
        assert_eq!(f.exit(), Exit::LockTimeout);
        let f = fanout(vec![
            result("a", DbState::UpToDate, Exit::Ok),
            result("b", DbState::Pending, Exit::Pending),
        ]);
        assert_eq!(f.exit(), Exit::Pending);
        assert!(f.failure().is_none());
    }
}
