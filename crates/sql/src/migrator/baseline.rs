//! `sql baseline`: recording files as applied without running them.

use super::*;

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

pub(super) async fn baseline_inner(
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
            .map_err(|e| MigrateError::history("creating the history table", e))?;
        let rows = history
            .load(&conn.client)
            .await
            .map_err(|e| MigrateError::history("reading the history", e))?;
        let rec = reconcile(source, &rows);
        // In the layout's order (byte-wise for native files).
        let chosen = source
            .migrations
            .iter()
            .map(|m| !m.repeatable && source.compare(&m.version, version).is_le());
        let to_record = files_to_record(source, &rec, chosen, "the history", report)?;
        record_baselined(&conn.client, options, to_record, "the baseline", events).await
    }
    .await;
    lock.release().await;
    result
}

/// Sorts the files that `chosen` picks (one flag a file, in the source's order) for
/// recording as applied without running them: a pending one is to be recorded
/// (reported `baselined`), one with a failed attempt in `history` (the history as
/// the message names it) needs a person, any other is `skipped`. Every file's
/// report row goes onto `report`.
///
/// # Errors
/// [`MigrateError::NeedsPerson`], naming each file with a failed attempt.
pub(super) fn files_to_record<'s>(
    source: &'s Source,
    rec: &Reconciled,
    chosen: impl IntoIterator<Item = bool>,
    history: &str,
    report: &mut Report,
) -> Result<Vec<&'s Migration>, MigrateError> {
    let mut problems = Vec::new();
    let mut to_record = Vec::new();
    for ((m, (state, ooo)), chosen) in source.migrations.iter().zip(&rec.files).zip(chosen) {
        let mut f = state_report(m, state, *ooo);
        f.out_of_order = false;
        if chosen {
            match state {
                FileState::Pending {
                    previous_failure: None,
                } => {
                    f.status = FileStatus::Baselined;
                    to_record.push(m);
                }
                FileState::Pending {
                    previous_failure: Some(_),
                }
                | FileState::Failed(_) => problems.push(Problem {
                    version: m.version.to_string(),
                    message: format!(
                        "has a failed attempt in {history}; run `kubemigrate sql repair --dir {} --version {}` first",
                        source.dir.display(),
                        m.version
                    ),
                }),
                _ => f.status = FileStatus::Skipped,
            }
        }
        report.files.push(f);
    }
    if !problems.is_empty() {
        return Err(MigrateError::NeedsPerson(problems));
    }
    Ok(to_record)
}

/// Records `files` as applied without running them (rows of kind `baseline`, with
/// today's checksums) in one transaction, reporting each; `what` names the whole in
/// the error of its `COMMIT` (`the baseline`, `the adoption`).
///
/// # Errors
/// Database errors; nothing is recorded then.
pub(super) async fn record_baselined(
    client: &Client,
    options: &MigrateOptions,
    files: Vec<&Migration>,
    what: &str,
    events: &mut dyn FnMut(Event),
) -> Result<(), MigrateError> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| MigrateError::database("starting a transaction", &e))?;
    for m in files {
        let row = NewRow {
            version: &m.version,
            kind: RowKind::Baseline,
            checksum: Some(m.checksum.hex()),
            execution_ms: 0,
            applied_by: &options.applied_by,
            success: true,
            error: None,
            statement: None,
            exit_code: None,
            transactional: m.transactional(),
        };
        options
            .history
            .insert(client, &row)
            .await
            .map_err(|e| MigrateError::database(format!("recording {}", m.version), &e))?;
        events(Event::FileBaselined {
            version: m.version.to_string(),
        });
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| MigrateError::database(format!("committing {what}"), &e))
}
