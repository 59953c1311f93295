//! A session for a migration tool that kubemigrate runs (`exec`): connected, the
//! history table there, under the migration lock when asked, and the tool's run
//! recorded in the history, as the engine's own runs are.

use super::*;

/// What [`CommandSession::open`] holds until [`CommandSession::close`]: the
/// connection that records, and the lock when one was asked for.
#[derive(Debug)]
pub struct CommandSession {
    conn: Connection,
    lock: Option<MigrationLock>,
    history: HistoryTable,
    applied_by: String,
}

impl CommandSession {
    /// Connects, creates the history table if it is missing and, with `lock`, takes
    /// the migration lock (waiting up to `options.lock_timeout`), reporting each step
    /// on `events`.
    ///
    /// # Errors
    /// Cannot connect, cannot create the history table, or the lock stayed taken.
    ///
    /// # Caveats
    /// Call [`CommandSession::close`] to release the lock at once. Dropped instead,
    /// the lock goes when its connection closes.
    pub async fn open(
        connect: &ConnectOptions,
        options: &MigrateOptions,
        lock: bool,
        events: &mut dyn FnMut(Event),
    ) -> Result<CommandSession, MigrateError> {
        let conn = open(connect, events).await?;
        options
            .history
            .ensure(&conn.client)
            .await
            .map_err(|e| MigrateError::history("creating the history table", e))?;
        let lock = if lock {
            Some(with_lock(connect, options, events).await?)
        } else {
            None
        };
        Ok(CommandSession {
            conn,
            lock,
            history: options.history.clone(),
            applied_by: options.applied_by.clone(),
        })
    }

    /// Records one run of the tool: its command line (no password in it), exit code
    /// and duration, as a `command` row.
    ///
    /// # Errors
    /// The insert failed (the session is still usable and the lock still held).
    pub async fn record(
        &self,
        command_line: &str,
        exit_code: i32,
        elapsed: Duration,
    ) -> Result<(), MigrateError> {
        let row = NewRow {
            version: command_line,
            kind: RowKind::Command,
            checksum: None,
            execution_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            applied_by: &self.applied_by,
            success: exit_code == 0,
            error: None,
            statement: None,
            exit_code: Some(exit_code),
            transactional: false,
        };
        self.history
            .insert(&self.conn.client, &row)
            .await
            .map(|_| ())
            .map_err(|e| MigrateError::database(format!("recording {command_line}"), &e))
    }

    /// Releases the lock, if held, and closes the session.
    pub async fn close(self) {
        if let Some(lock) = self.lock {
            lock.release().await;
        }
    }
}
