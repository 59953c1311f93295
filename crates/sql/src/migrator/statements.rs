//! The path of a file that runs without kubemigrate's transaction (no-transaction,
//! or its own `BEGIN`/`COMMIT`): statement by statement, a no-transaction file's
//! progress recorded on the lock's connection before each.

use super::*;

impl Runner<'_> {
    /// Runs a file's statements one at a time, outside kubemigrate's transaction;
    /// before each, a no-transaction file's row records which statement runs.
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
                        version: m.version.to_string(),
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
                            self.history_write_error(
                                m,
                                mode,
                                Writer::Keeper,
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
            result.map_err(|e| e.into_error(m, number, &item, at))?;
        }
        let summary = script.finish();
        if summary.checksum != m.checksum {
            return Err(changed_while_running(m));
        }
        Ok(())
    }
}
