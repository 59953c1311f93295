//! `sql status`, and the report rows of every command.

use super::*;

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
    let mut report = source_report(connect, history, false, source);
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

pub(super) fn base_report(
    connect: &ConnectOptions,
    history: &HistoryTable,
    dry_run: bool,
) -> Report {
    Report {
        database: connect.masked_url(),
        history_table: history.display_name(),
        dry_run,
        ..Report::default()
    }
}

/// [`base_report`] of a command over `source`: with its layout and that layout's
/// order.
pub(super) fn source_report(
    connect: &ConnectOptions,
    history: &HistoryTable,
    dry_run: bool,
    source: &Source,
) -> Report {
    let mut report = base_report(connect, history, dry_run);
    report.layout = source.layout.name().to_string();
    report.order = source.layout.order().to_string();
    report
}

pub(super) fn missing_report(rows: &[HistoryRow]) -> Vec<MissingReport> {
    rows.iter()
        .map(|r| MissingReport {
            version: r.version.clone(),
            applied_at: r.applied_at,
            success: r.success,
        })
        .collect()
}

pub(super) fn state_report(m: &Migration, state: &FileState, out_of_order: bool) -> FileReport {
    let mut f = file_report(m, FileStatus::Pending);
    f.out_of_order = out_of_order;
    match state {
        FileState::Applied(row) => {
            f.status = if row.kind == RowKind::Baseline {
                FileStatus::Baselined
            } else {
                FileStatus::Applied
            };
            f.applied_at = Some(row.applied_at);
            f.duration_ms = u64::try_from(row.execution_ms).ok();
        }
        FileState::Drifted(row) => {
            f.status = FileStatus::Drifted;
            f.applied_at = Some(row.applied_at);
            f.recorded_checksum = row.checksum.as_ref().map(ToString::to_string);
        }
        FileState::Failed(row) => {
            f.status = FileStatus::Failed;
            f.applied_at = Some(row.applied_at);
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

pub(super) fn file_report(m: &Migration, status: FileStatus) -> FileReport {
    FileReport {
        version: m.version.clone(),
        status,
        checksum: m.checksum,
        recorded_checksum: None,
        duration_ms: None,
        applied_at: None,
        transactional: m.transactional(),
        out_of_order: false,
        repeatable: m.repeatable,
        error: None,
        statement: None,
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
