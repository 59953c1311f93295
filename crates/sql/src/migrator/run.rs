//! Applying the pending files: each in its transaction with its history row, or
//! statement by statement, under the lock.

use super::*;

pub(super) async fn plan_and_run(
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
    if pending.is_empty() {
        // Nothing to run: the session needs no setting up.
        return Ok(());
    }
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
        let mut attempt = 0;
        let result = loop {
            let result = runner
                .run_file(source, m, previous_failure || attempt > 0, events)
                .await;
            // A lock timeout rolled a transactional file back whole: waiting and
            // running it again is safe.
            match &result {
                Err(MigrateError::Sql(s))
                    if s.code == LOCK_NOT_AVAILABLE
                        && m.transactional()
                        && attempt < options.lock_retries =>
                {
                    attempt += 1;
                    let wait = retry_wait(attempt);
                    events(Event::LockRetry {
                        version: m.version.clone(),
                        attempt,
                        of: options.lock_retries,
                        wait,
                        message: s.message.clone(),
                    });
                    tokio::time::sleep(wait).await;
                }
                _ => break result,
            }
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
pub(super) struct Runner<'a> {
    client: &'a Client,
    /// The lock's connection: see above.
    keeper: &'a Client,
    /// Only drained between statements, by the one task that runs them.
    notices: std::sync::Mutex<&'a mut tokio::sync::mpsc::UnboundedReceiver<crate::connect::Notice>>,
    options: &'a MigrateOptions,
    /// The migration directory, canonical (for the scripts' includes), once resolved.
    root: std::sync::OnceLock<std::path::PathBuf>,
    insert: tokio_postgres::Statement,
    /// Restores the session after a file (a file may `SET` anything, as pg_dump
    /// output does): what psql's fresh session per file gives.
    reset: String,
}

/// How a file runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Inside a transaction with its history row.
    Transaction,
    /// Statement by statement; its row is written first and finished last.
    NoTransaction,
    /// As written: the file has its own BEGIN/COMMIT.
    OwnTransaction,
}

/// The history row of a file run outside a wrapping transaction.
pub(super) struct Progress {
    id: i64,
    /// The statement that is running (or ran last); 0 before the first.
    statement: i32,
}

/// How long a write of a failure row may wait for a row lock of the failed file's
/// transaction (that transaction is rolled back first; this only bounds the wait if
/// the server has not finished that yet).
pub(super) const FAILURE_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '10s'";

/// SQLSTATE `lock_not_available`: `lock_timeout` ran out (or a NOWAIT lock).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// How long to wait before retry `attempt` (1, 2, …) of a file that met a lock
/// timeout: 1 s, doubling, at most 30 s.
pub(super) fn retry_wait(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

impl<'a> Runner<'a> {
    pub(super) async fn new(
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
        // Numbers of milliseconds: no user text goes into this SQL. A file that
        // sets its own overrides them for its session.
        if let Some(timeout) = options.statement_lock_timeout {
            reset.push_str(&format!(
                "SET lock_timeout = {};",
                timeout.as_millis().max(1)
            ));
        }
        if let Some(timeout) = options.statement_timeout {
            reset.push_str(&format!(
                "SET statement_timeout = {};",
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
            root: std::sync::OnceLock::new(),
            insert,
            reset,
        })
    }

    pub(super) fn client(&self) -> &Client {
        self.client
    }

    pub(super) fn row<'r>(&self, m: &'r Migration, success: bool, mode: Mode) -> NewRow<'r>
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
    pub(super) fn history_write_error(
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
    pub(super) fn keeper_error(
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

    pub(super) async fn run_file(
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
        let mut begin = None;
        if mode == Mode::Transaction && !previous_failure && !m.repeatable {
            // Sent together with the file's first statements (see `run_pipelined`).
            begin = Some(Sent::send(self.client().batch_execute("BEGIN")).await);
        } else if mode == Mode::Transaction {
            self.client()
                .batch_execute("BEGIN")
                .await
                .map_err(db("starting a transaction".into()))?;
            if m.repeatable {
                // A repeatable file's earlier run (or failed attempt) is replaced by
                // this one, in the same transaction.
                history
                    .delete_version(self.client(), &m.version)
                    .await
                    .map_err(db(format!("replacing the earlier run of {}", m.version)))?;
            } else {
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
            if m.repeatable {
                history
                    .delete_version(self.keeper, &m.version)
                    .await
                    .map_err(|e| self.keeper_error(m, mode, what(), &e))?;
            } else if previous_failure {
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
        let result = match mode {
            Mode::Transaction => {
                match self.run_pipelined(source, m, begin, events).await {
                    Ok(result) => result,
                    // As when `BEGIN` was awaited alone: nothing to roll back or record.
                    Err(Begin(e)) => return Err(e),
                }
            }
            _ => {
                self.run_statements(source, m, mode, &mut progress, events)
                    .await
            }
        };
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
    pub(super) async fn record_failure(
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
    pub(super) async fn finish_file(
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
                // COMMIT goes with them: if the reset or the insert fails, the
                // transaction is aborted and the server ends it with a rollback
                // (the error below is the one reported; nothing is committed).
                let reset = Sent::send(reset).await;
                let record = Sent::send(record).await;
                let commit = Sent::send(self.client().batch_execute("COMMIT")).await;
                reset.reply().await?;
                record.reply().await?;
                commit.reply().await.map_err(|e| commit_error(m, e))
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
    pub(super) async fn check_no_open_transaction(
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

    pub(super) async fn run_statements(
        &self,
        source: &Source,
        m: &Migration,
        mode: Mode,
        progress: &mut Option<Progress>,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        let history = &self.options.history;
        let mut script = self.open_script(source, m)?;
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
                Item::Sql {
                    gset: Some(prefix), ..
                } => self.gset(text, prefix, at, &mut script).await,
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
            return Err(changed_while_running(m));
        }
        Ok(())
    }

    /// Opens a file's script, resolving the migration directory once per run.
    pub(super) fn open_script(
        &self,
        source: &Source,
        m: &Migration,
    ) -> Result<Script, MigrateError> {
        if m.section.is_some() || source.include_root.is_some() {
            // Another tool's up section, or includes reaching beyond the directory.
            return Ok(source.open(m, &self.options.variables)?);
        }
        let root = match self.root.get() {
            Some(root) => root,
            None => {
                let root = crate::script::canonical_root(&source.dir)?;
                self.root.get_or_init(|| root)
            }
        };
        Ok(Script::open_in(&m.path, root, &self.options.variables)?)
    }

    /// Runs a transactional file's statements inside the transaction that `begin`
    /// (already sent) opens, pipelined: each statement is sent without waiting for
    /// the reply of the one before, at most [`PIPELINE_STATEMENTS`] statements (or
    /// [`PIPELINE_BYTES`] of text) ahead; the replies are then read in order, the
    /// server's notices drained after each as before, and the first error is the
    /// file's, with its statement number and place. Inside the transaction this
    /// changes nothing the file sees: the server runs the statements one after the
    /// other, and after an error it refuses the ones already sent (the transaction
    /// is aborted) until the `ROLLBACK`. A COPY, and an `\echo` (so its event keeps
    /// its place among the notices), first wait for every reply.
    pub(super) async fn run_pipelined(
        &self,
        source: &Source,
        m: &Migration,
        begin: Option<Sent<'_, Result<(), tokio_postgres::Error>>>,
        events: &mut dyn FnMut(Event),
    ) -> Result<Result<(), MigrateError>, Begin> {
        // `BEGIN` outside a transaction block fails only when the session does (a
        // lost connection, a terminated backend): then nothing sent after it runs.
        if let Some(begin) = begin {
            begin
                .reply()
                .await
                .map_err(|e| Begin(MigrateError::database("starting a transaction", &e)))?;
        }
        Ok(self.run_pipelined_statements(source, m, events).await)
    }

    async fn run_pipelined_statements(
        &self,
        source: &Source,
        m: &Migration,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        let mut script = self.open_script(source, m)?;
        let mut number = 0usize;
        let mut pending: std::collections::VecDeque<PendingStatement<'_>> = Default::default();
        let mut bytes = 0usize;
        loop {
            let item = match script.next_item() {
                Ok(item) => item,
                Err(e) => {
                    // A statement already sent that failed comes first, as it would
                    // have stopped the file before this point was read.
                    self.await_pending(m, &mut pending, events).await?;
                    return Err(e.into());
                }
            };
            let Some(item) = item else { break };
            match item {
                Item::Echo(text) => {
                    self.await_pending(m, &mut pending, events).await?;
                    bytes = 0;
                    events(Event::Echo {
                        version: m.version.clone(),
                        text,
                    });
                }
                Item::Copy { ref text, ref at } => {
                    self.await_pending(m, &mut pending, events).await?;
                    bytes = 0;
                    number += 1;
                    let result = self.copy_in(text, &mut script).await;
                    self.drain_notices(m, events);
                    match result {
                        Ok(()) => {}
                        Err(CopyError::Script(e)) => return Err(e.into()),
                        Err(CopyError::Db(e)) => {
                            return Err(statement_error(m, number, &item, at, e));
                        }
                    }
                }
                Item::Sql {
                    ref text,
                    gset: Some(ref prefix),
                    ref at,
                    ..
                } => {
                    // Its row sets variables that the statements after it may use:
                    // it runs alone, once the statements before it are done.
                    self.await_pending(m, &mut pending, events).await?;
                    bytes = 0;
                    number += 1;
                    let result = self.gset(text, prefix, at, &mut script).await;
                    self.drain_notices(m, events);
                    match result {
                        Ok(()) => {}
                        Err(CopyError::Script(e)) => return Err(e.into()),
                        Err(CopyError::Db(e)) => {
                            return Err(statement_error(m, number, &item, at, e));
                        }
                    }
                }
                Item::Sql { ref text, .. } => {
                    number += 1;
                    bytes += text.len();
                    let client = self.client();
                    let sent = Sent::send(async move {
                        let result = match &item {
                            Item::Sql { text, .. } => client.batch_execute(text).await,
                            _ => Ok(()),
                        };
                        (result, item)
                    })
                    .await;
                    pending.push_back((number, sent));
                    if pending.len() >= PIPELINE_STATEMENTS || bytes >= PIPELINE_BYTES {
                        self.await_pending(m, &mut pending, events).await?;
                        bytes = 0;
                    }
                }
            }
        }
        self.await_pending(m, &mut pending, events).await?;
        let summary = script.finish();
        if summary.checksum != m.checksum {
            return Err(changed_while_running(m));
        }
        Ok(())
    }

    /// Reads the replies of the statements sent, in order, draining notices after
    /// each; stops at the first error. The requests left are dropped: the server
    /// refuses them (the transaction is aborted) and their replies are discarded.
    async fn await_pending(
        &self,
        m: &Migration,
        pending: &mut std::collections::VecDeque<PendingStatement<'_>>,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        while let Some((number, sent)) = pending.pop_front() {
            let (result, item) = sent.reply().await;
            self.drain_notices(m, events);
            if let Err(e) = result {
                pending.clear();
                let Item::Sql { at, .. } = &item else {
                    return Err(MigrateError::database(
                        format!("running {} (statement {number})", m.version),
                        &e,
                    ));
                };
                return Err(statement_error(m, number, &item, at, e));
            }
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
    pub(super) async fn copy_in(
        &self,
        statement: &str,
        script: &mut Script,
    ) -> Result<(), CopyError> {
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

    pub(super) fn drain_notices(&self, m: &Migration, events: &mut dyn FnMut(Event)) {
        for notice in self.take_notices() {
            events(Event::Notice {
                version: m.version.clone(),
                message: notice.text,
            });
        }
    }

    /// Notices that kubemigrate's own statements caused (creating the history table,
    /// restoring the session), said as such, so none is shown as a file's.
    pub(super) fn drain_own_notices(&self, during: &str, events: &mut dyn FnMut(Event)) {
        for notice in self.take_notices() {
            events(Event::Warning {
                message: format!("the server said, while {during}: {}", notice.text),
            });
        }
    }

    pub(super) fn take_notices(&self) -> Vec<crate::connect::Notice> {
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
pub(super) enum CopyError {
    Db(tokio_postgres::Error),
    Script(ScriptError),
}

/// `BEGIN` failed: the file did not start.
pub(super) struct Begin(MigrateError);

/// At most this many statements of a file are sent ahead of the replies read.
pub(super) const PIPELINE_STATEMENTS: usize = 256;
/// At most about this much statement text is sent ahead of the replies read.
pub(super) const PIPELINE_BYTES: usize = 1 << 20;

/// A statement sent and not yet answered: its number, and its request (which gives
/// back the statement, for the error's place).
type PendingStatement<'c> = (usize, Sent<'c, (Result<(), tokio_postgres::Error>, Item)>);

/// A request sent to the server whose reply is read later (pipelining).
///
/// tokio-postgres sends a request when its future is first polled and pairs
/// replies with requests in the order sent: polling each future once, in order,
/// sends the requests in that order without waiting for a reply.
pub(super) struct Sent<'c, T> {
    future: futures_util::future::BoxFuture<'c, T>,
    done: Option<T>,
}

impl<'c, T> Sent<'c, T> {
    /// Polls `future` once: its request goes out now.
    pub(super) async fn send(future: impl std::future::Future<Output = T> + Send + 'c) -> Self {
        let mut future: futures_util::future::BoxFuture<'c, T> = Box::pin(future);
        let done = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match future.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await;
        Sent { future, done }
    }

    /// The reply.
    pub(super) async fn reply(self) -> T {
        match self.done {
            Some(v) => v,
            None => self.future.await,
        }
    }
}

fn changed_while_running(m: &Migration) -> MigrateError {
    MigrateError::Usage(format!(
        "{}: the file (or a file it includes) changed while kubemigrate was running; run again",
        m.path.display()
    ))
}
