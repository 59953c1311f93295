//! `sql repair`: changing one file's record after a person has looked.

use super::*;

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
                h.mark_applied(&conn.client, version, &m.checksum.hex())
                    .await
            }
            (RepairAction::AcceptChecksum, Some(m)) => {
                h.set_checksum(&conn.client, version, &m.checksum.hex())
                    .await
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
