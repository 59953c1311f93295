//! Files against the history: each file's state, and the problems that stop a run.

use super::*;

/// What the history says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Applied (or baselined) with the same checksum.
    Applied(HistoryRow),
    /// Applied, but the file changed since.
    Drifted(HistoryRow),
    /// Not applied. A failed attempt of a transactional file left nothing behind, so
    /// it is pending again; its row is kept in `previous_failure` until the retry.
    Pending {
        /// The recorded failure of an earlier attempt.
        previous_failure: Option<HistoryRow>,
    },
    /// A no-transaction file that failed or was interrupted: part of it may be applied.
    Failed(HistoryRow),
}

/// The files and the history, matched up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// One state per file of the source, in order, and whether a pending file is out of order.
    pub files: Vec<(FileState, bool)>,
    /// History rows whose files are gone.
    pub missing: Vec<HistoryRow>,
}

/// Matches files with history rows. Pure: no I/O.
pub fn reconcile(source: &Source, history: &[HistoryRow]) -> Reconciled {
    reconcile_rows(source, history.to_vec())
}

/// [`reconcile`], keeping the rows it is given instead of copies of them.
pub fn reconcile_rows(source: &Source, history: Vec<HistoryRow>) -> Reconciled {
    let files_by_version: std::collections::HashMap<&str, usize> = source
        .migrations
        .iter()
        .enumerate()
        .map(|(i, m)| (&*m.version, i))
        .collect();
    // One pass over the rows, each looked up once: the file it belongs to, and the
    // newest applied version (of equal ones the last, as `max_by` gives). Versions
    // compare as the source's layout orders them (byte-wise for native files);
    // repeatable files have no place in that order. The newest row of each file
    // wins (later rows replace earlier ones); the others stay where they are and
    // are dropped with `history`.
    let file_of: Vec<Option<usize>> = history
        .iter()
        .map(|r| files_by_version.get(r.version.as_str()).copied())
        .collect();
    let mut newest_applied: Option<usize> = None;
    let mut newest_row = vec![None; source.migrations.len()];
    for (j, (r, file)) in history.iter().zip(&file_of).enumerate() {
        if let Some(i) = *file {
            newest_row[i] = Some(j);
        }
        let ordered = file.is_none_or(|i| !source.migrations[i].repeatable);
        if r.success
            && ordered
            && newest_applied
                .is_none_or(|n| source.compare(&r.version, &history[n].version).is_ge())
        {
            newest_applied = Some(j);
        }
    }
    let newest_applied = newest_applied.map(|n| history[n].version.clone());
    let mut history: Vec<Option<HistoryRow>> = history.into_iter().map(Some).collect();
    let files = source
        .migrations
        .iter()
        .zip(newest_row)
        .map(|(m, row)| {
            let row = row.and_then(|j| history[j].take());
            let state = match row {
                Some(r) if r.success => {
                    if r.checksum.as_deref() == Some(&*m.checksum) {
                        FileState::Applied(r)
                    } else if m.repeatable {
                        // Changed since its last run: it runs again.
                        FileState::Pending {
                            previous_failure: None,
                        }
                    } else {
                        FileState::Drifted(r)
                    }
                }
                Some(r) if !r.transactional => FileState::Failed(r),
                Some(r) => FileState::Pending {
                    previous_failure: Some(r),
                },
                None => FileState::Pending {
                    previous_failure: None,
                },
            };
            let out_of_order = matches!(state, FileState::Pending { .. })
                && !m.repeatable
                && newest_applied
                    .as_deref()
                    .is_some_and(|n| source.compare(&m.version, n).is_lt());
            (state, out_of_order)
        })
        .collect();
    // The rows whose files are gone, in the order they were recorded. Collected in
    // place, into the history's buffer: shrunk, or the whole history's room would
    // stay with the (usually no) rows kept.
    let mut missing: Vec<HistoryRow> = history
        .into_iter()
        .zip(file_of)
        .filter_map(|(r, file)| if file.is_none() { r } else { None })
        .collect();
    missing.shrink_to_fit();
    Reconciled { files, missing }
}

impl Reconciled {
    /// Whether some file is pending.
    pub fn any_pending(&self) -> bool {
        self.files
            .iter()
            .any(|(state, _)| matches!(state, FileState::Pending { .. }))
    }

    /// Nothing to apply and nothing that stops a run: every file is applied as it
    /// is (or drifted, with `allow_drift`), and no missing file counts as a problem.
    pub fn up_to_date(&self, source: &Source, options: &MigrateOptions) -> bool {
        !self.any_pending() && self.problems(source, options).is_empty()
    }

    /// The problems that stop a run, given the options.
    pub fn problems(&self, source: &Source, options: &MigrateOptions) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (m, (state, out_of_order)) in source.migrations.iter().zip(&self.files) {
            match state {
                FileState::Drifted(row) if !options.allow_drift => problems.push(Problem {
                    version: m.version.to_string(),
                    message: format!(
                        "changed since it was applied on {} (checksum {} recorded, {} now); restore the file, \
                         or accept the edit with `kubemigrate sql repair --dir {} --version {} --accept-checksum`, \
                         or pass --allow-drift",
                        row.applied_at,
                        short(row.checksum.as_deref().unwrap_or("none")),
                        short(&m.checksum),
                        source.dir.display(),
                        m.version
                    ),
                }),
                FileState::Failed(row) => problems.push(Problem {
                    version: m.version.to_string(),
                    message: failed_message(&source.dir, m, row),
                }),
                FileState::Pending { .. } if *out_of_order && !options.allow_out_of_order => {
                    problems.push(Problem {
                        version: m.version.to_string(),
                        message: "is pending but sorts before files already applied; rename it to sort last, \
                                  or pass --allow-out-of-order to apply it anyway"
                            .to_string(),
                    })
                }
                _ => {}
            }
        }
        if options.strict {
            for row in &self.missing {
                problems.push(Problem {
                    version: row.version.clone(),
                    message: "is recorded in the history but its file is gone (--strict)"
                        .to_string(),
                });
            }
        }
        problems
    }
}

pub(super) fn failed_message(dir: &std::path::Path, m: &Migration, row: &HistoryRow) -> String {
    let at = row
        .statement
        .map(|s| format!(" at statement {s}"))
        .unwrap_or_default();
    let what = match &row.error {
        Some(e) => format!("failed{at} on {} ({e})", row.applied_at),
        None => format!("was interrupted{at} on {}", row.applied_at),
    };
    format!(
        "{what}; it runs without a transaction, so the statements before it stayed applied. \
         Finish or undo them by hand, then run `kubemigrate sql repair --dir {d} --version {v}` to run the file \
         again, or add --mark-applied to record it as applied",
        d = dir.display(),
        v = m.version
    )
}

pub(super) fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}
