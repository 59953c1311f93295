//! The end of a file: recording it as applied (with the session restored and the
//! `COMMIT` sent together), or recording its failed attempt on the lock's connection.

use super::*;

impl Runner<'_> {
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
        flush: Flush,
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
        // In kubemigrate's transaction (no progress row), a file followed by another
        // commits without waiting for the disk (see `Flush`).
        let reset_sql = match (progress, flush) {
            (None, Flush::Later) => &self.reset_flush_later,
            _ => &self.reset,
        };
        let reset = async {
            self.client()
                .batch_execute(reset_sql)
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
                                Writer::Migration,
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
                        Ok(0) => Err(self.history_dropped(m, mode)),
                        Ok(_) => Ok(()),
                        Err(e) => Err(self.history_write_error(
                            m,
                            mode,
                            Writer::Keeper,
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
}
