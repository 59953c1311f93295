//! Applying the pending files, under the lock: the plan, each file's events and
//! report row, and the retries of a file that met a lock timeout.

use super::*;

/// Reports each file's state, refuses states that need a person, then applies the
/// pending files in order under `session`; without a session (a dry run) it only
/// says what would run.
pub(super) async fn plan_and_run(
    conn: &mut Connection,
    session: Option<Session<'_>>,
    source: &Source,
    rec: Reconciled,
    options: &MigrateOptions,
    events: &mut dyn FnMut(Event),
    report: &mut Report,
) -> Result<(), MigrateError> {
    report.missing = missing_report(&rec.missing);
    let problems = rec.problems(source, options);
    // The pending files, each with whether a failed attempt of it is on record.
    let pending: Vec<(usize, bool)> = rec
        .files
        .iter()
        .enumerate()
        .filter_map(|(i, (state, _))| match state {
            FileState::Pending { previous_failure } => Some((i, previous_failure.is_some())),
            _ => None,
        })
        .collect();
    // One row per file of `source.migrations`, in the same order, before anything
    // can fail: the rows of files that do not run say why. Each is made from its
    // file's state, which nothing needs after: in its place (the states' vector
    // holds the rows), so that a run over many files does not hold both.
    report.files = rec
        .files
        .into_iter()
        .enumerate()
        .map(|(i, (state, ooo))| {
            let mut s = state_report(&source.migrations[i], &state, ooo);
            if s.status == FileStatus::Applied || s.status == FileStatus::Baselined {
                s.status = FileStatus::Skipped;
            } else if s.status == FileStatus::Pending && !options.dry_run {
                s.status = FileStatus::NotRun;
            } else if s.status == FileStatus::Drifted && options.allow_drift {
                s.status = FileStatus::Skipped;
            }
            s
        })
        .collect();
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
    if !problems.is_empty() {
        return Err(MigrateError::NeedsPerson(problems));
    }
    events(Event::Planned {
        applied: report.files.len() - pending.len(),
        pending: pending.len(),
    });
    let Some(session) = session else {
        for &(i, _) in &pending {
            let m = &source.migrations[i];
            events(Event::WouldApply {
                version: m.version.to_string(),
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
    // A run that stops before its last file waits for the commits that did not
    // wait for the disk (see `Flush`) with `flush_wal`.
    let mut unflushed = false;
    let outcome = apply_pending(
        &runner,
        &session,
        source,
        options,
        &pending,
        &mut unflushed,
        events,
        report,
    )
    .await;
    if outcome.is_err() && unflushed {
        runner.flush_wal().await;
    }
    outcome
}

/// Applies `pending` in order (see [`plan_and_run`]): each file's index in
/// `source.migrations`, and whether a failed attempt of it is on record;
/// `unflushed` is set once a file committed without waiting for the disk.
#[allow(
    clippy::too_many_arguments,
    reason = "the loop of plan_and_run, moved out so that its early returns pass one place"
)]
async fn apply_pending(
    runner: &Runner<'_>,
    session: &Session<'_>,
    source: &Source,
    options: &MigrateOptions,
    pending: &[(usize, bool)],
    unflushed: &mut bool,
    events: &mut dyn FnMut(Event),
    report: &mut Report,
) -> Result<(), MigrateError> {
    // Every file but the last commits without waiting for the disk; the last
    // one's commit waits for theirs too (see `Flush`).
    let last = pending.last().map(|&(i, _)| i);
    for &(i, previous_failure) in pending {
        let m = &source.migrations[i];
        let flush = if Some(i) == last {
            Flush::Now
        } else {
            Flush::Later
        };
        runner.drain_own_notices("restoring the session between files", events);
        // Confirmed at least every 250 ms: one round trip per file would cost more than
        // a small file takes to run.
        if m.transactional() {
            session.lock.check_every(Duration::from_millis(250)).await?;
        } else {
            session.lock.check().await?;
        }
        events(Event::FileStarted {
            version: m.version.to_string(),
            transactional: m.transactional(),
            controls_transaction: m.controls_transaction,
        });
        let t0 = Instant::now();
        let mut attempt = 0;
        let result = loop {
            let result = runner
                .run_file(source, m, previous_failure || attempt > 0, flush, events)
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
                        version: m.version.to_string(),
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
                *unflushed |= flush == Flush::Later && m.transactional();
                f.status = FileStatus::Applied;
                events(Event::FileApplied {
                    version: m.version.to_string(),
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
                    version: m.version.to_string(),
                    duration,
                });
                return Err(e);
            }
        }
    }
    Ok(())
}

/// SQLSTATE `lock_not_available`: `lock_timeout` ran out (or a NOWAIT lock).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// How long to wait before retry `attempt` (1, 2, …) of a file that met a lock
/// timeout: 1 s, doubling, at most 30 s.
pub(super) fn retry_wait(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}
