//! The [`Runner`]: the session that runs files on the migration connection, and
//! one file's run from its first history write to its rollback and failure row.
//! The two ways a file's statements run are in `pipeline` (in kubemigrate's
//! transaction) and `statements` (statement by statement); the end of a file is in
//! `finish`.

use super::*;

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
    pub(super) keeper: &'a Client,
    /// Only drained between statements, by the one task that runs them.
    notices: std::sync::Mutex<&'a mut tokio::sync::mpsc::UnboundedReceiver<crate::connect::Notice>>,
    pub(super) options: &'a MigrateOptions,
    /// The migration directory, canonical (for the scripts' includes), once resolved.
    root: std::sync::OnceLock<std::path::PathBuf>,
    pub(super) insert: tokio_postgres::Statement,
    /// Restores the session after a file (a file may `SET` anything, as pg_dump
    /// output does): what psql's fresh session per file gives.
    pub(super) reset: String,
    /// [`Self::reset`], then `SET LOCAL synchronous_commit = off`: the end of a
    /// transactional file whose commit a later one flushes ([`Flush::Later`]).
    pub(super) reset_flush_later: String,
}

/// When a transactional file's `COMMIT` waits for its WAL to reach the disk.
///
/// The WAL is one stream, flushed in order: a commit that waits for its own
/// record waits for every record before it, the earlier files' commits included.
/// So only the run's last commit needs to wait; the files before it are each still
/// one atomic commit with their history row, and on disk before the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flush {
    /// As the server's `synchronous_commit` says (on by default): the run's last
    /// file, which flushes the commits before it too.
    Now,
    /// Not waited for (`SET LOCAL synchronous_commit = off`, this transaction
    /// only): a file followed by another. The WAL writer flushes it within
    /// 3 x `wal_writer_delay` (600 ms by default) on its own; a later commit, the
    /// failure row of a failed file, or [`Runner::flush_wal`] waits for it.
    Later,
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

/// The connection a history write goes to (see [`Runner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writer {
    /// The migration connection: a transactional file's row, in its transaction.
    Migration,
    /// The lock's connection (`keeper`): every other write.
    Keeper,
}

/// The history row of a file run outside a wrapping transaction.
pub(super) struct Progress {
    /// The row's id.
    pub(super) id: i64,
    /// The statement that is running (or ran last); 0 before the first.
    pub(super) statement: i32,
}

/// How long a write of a failure row may wait for a row lock of the failed file's
/// transaction (that transaction is rolled back first; this only bounds the wait if
/// the server has not finished that yet).
pub(super) const FAILURE_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '10s'";

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
        let reset_flush_later = format!("{reset}SET LOCAL synchronous_commit = off;");
        Ok(Runner {
            client,
            keeper,
            notices: std::sync::Mutex::new(notices),
            options,
            root: std::sync::OnceLock::new(),
            insert,
            reset,
            reset_flush_later,
        })
    }

    /// Waits until every commit of this run is on disk (a run that stops early
    /// after a [`Flush::Later`] commit): a transaction with an id, committed on the
    /// lock's connection with the server's `synchronous_commit`, waits for the WAL
    /// up to its own record, which is after theirs.
    ///
    /// # Errors
    /// None: it is best effort. When it fails, the connection is gone and the run's
    /// own error says so; the server's WAL writer still flushes those commits.
    pub(super) async fn flush_wal(&self) {
        let _ = self
            .keeper
            .batch_execute("BEGIN; SELECT pg_catalog.txid_current(); COMMIT")
            .await;
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
            checksum: Some(m.checksum.hex()),
            execution_ms: 0,
            applied_by: &self.options.applied_by,
            success,
            error: None,
            statement: None,
            exit_code: None,
            transactional: mode == Mode::Transaction,
        }
    }

    /// The file dropped the history table: its row cannot be written (nor, outside
    /// kubemigrate's transaction, its run undone).
    pub(super) fn history_dropped(&self, m: &Migration, mode: Mode) -> MigrateError {
        MigrateError::HistoryDropped {
            path: m.path.display().to_string(),
            version: m.version.to_string(),
            table: self.options.history.display_name(),
            rolled_back: mode == Mode::Transaction,
        }
    }

    /// The error of a failed history write on `writer`: on the lock's connection a
    /// lost connection is a lost lock; then the file dropped the history table, or
    /// another database error.
    pub(super) fn history_write_error(
        &self,
        m: &Migration,
        mode: Mode,
        writer: Writer,
        what: String,
        e: &tokio_postgres::Error,
    ) -> MigrateError {
        if writer == Writer::Keeper && is_connection_error(e) {
            return MigrateError::Lock(LockError::Lost(describe(e)));
        }
        if history_gone(e) {
            return self.history_dropped(m, mode);
        }
        MigrateError::database(what, e)
    }

    pub(super) async fn run_file(
        &self,
        source: &Source,
        m: &Migration,
        previous_failure: bool,
        flush: Flush,
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
                    .map_err(|e| self.history_write_error(m, mode, Writer::Keeper, what(), &e))?;
            } else if previous_failure {
                history
                    .delete_failed(self.keeper, &m.version)
                    .await
                    .map_err(|e| self.history_write_error(m, mode, Writer::Keeper, what(), &e))?;
            }
            let id = history
                .insert(self.keeper, &self.row(m, false, mode))
                .await
                .map_err(|e| self.history_write_error(m, mode, Writer::Keeper, what(), &e))?;
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
                self.finish_file(m, mode, progress.as_ref(), flush, t0, events)
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
                version: m.version.to_string(),
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

impl CopyError {
    /// The file's error: the script's, or the refused statement's (its number and
    /// place in the file).
    pub(super) fn into_error(
        self,
        m: &Migration,
        number: usize,
        item: &Item,
        at: &Location,
    ) -> MigrateError {
        match self {
            CopyError::Script(e) => e.into(),
            CopyError::Db(e) => statement_error(m, number, item, at, e),
        }
    }
}
