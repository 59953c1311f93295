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
    let migrations = &source.migrations;
    let mut files_by_version = VersionIndex::new(migrations);
    // First pass, from the newest row back: each row looked up once. The first
    // row met of a file is its newest, which decides its state (older ones are
    // dropped); a row whose file is gone moves to `missing`. The newest applied
    // version is followed on the way (of equal ones the last recorded: the first
    // met). Versions compare as the source's layout orders them (byte-wise for
    // native files); repeatable files have no place in that order.
    let mut history: Vec<Option<HistoryRow>> = history.into_iter().map(Some).collect();
    let mut newest_row: Vec<Option<usize>> = vec![None; migrations.len()];
    let mut missing: Vec<HistoryRow> = Vec::new();
    let mut newest_applied: Option<Newest> = None;
    for j in (0..history.len()).rev() {
        let Some(r) = &history[j] else {
            continue;
        };
        let file = files_by_version.find(&r.version);
        let ordered = file.is_none_or(|i| !migrations[i].repeatable);
        let newer = r.success
            && ordered
            && newest_applied.is_none_or(|n| {
                source
                    .compare(&r.version, n.version(migrations, &missing))
                    .is_gt()
            });
        match file {
            Some(i) => {
                if newer {
                    newest_applied = Some(Newest::File(i));
                }
                if newest_row[i].is_none() {
                    newest_row[i] = Some(j);
                } else {
                    history[j] = None;
                }
            }
            None => {
                if newer {
                    newest_applied = Some(Newest::Missing(missing.len()));
                }
                missing.extend(history[j].take());
            }
        }
    }
    let newest_applied = newest_applied.map(|n| n.version(migrations, &missing));
    // Second pass, from the last file back: each state made from its row, moved
    // out of `history`. A history recorded in the files' order empties from its
    // end, and gives that room back as the states take theirs: a run over many
    // applied files does not hold both whole.
    let mut files: Vec<(FileState, bool)> = Vec::with_capacity(migrations.len());
    for (i, m) in migrations.iter().enumerate().rev() {
        let row = newest_row[i].and_then(|j| history[j].take());
        let state = match row {
            Some(r) => state_of(r, m),
            None => FileState::Pending {
                previous_failure: None,
            },
        };
        let out_of_order = matches!(state, FileState::Pending { .. })
            && !m.repeatable
            && newest_applied.is_some_and(|n| source.compare(&m.version, n).is_lt());
        files.push((state, out_of_order));
        while history.last().is_some_and(Option::is_none) {
            history.pop();
        }
        if history.capacity() - history.len() >= RELEASE_ROWS {
            history.shrink_to_fit();
        }
    }
    drop(history);
    files.reverse();
    // In the order they were recorded.
    missing.reverse();
    Reconciled { files, missing }
}

/// How many emptied rows at the end of the history [`reconcile_rows`] lets
/// accumulate before it gives their room back (about 40 KB).
const RELEASE_ROWS: usize = 256;

/// The file's state that its newest history row gives.
fn state_of(r: HistoryRow, m: &Migration) -> FileState {
    if r.success {
        if r.checksum.as_ref().is_some_and(|c| c.matches(&m.checksum)) {
            FileState::Applied(r)
        } else if m.repeatable {
            // Changed since its last run: it runs again.
            FileState::Pending {
                previous_failure: None,
            }
        } else {
            FileState::Drifted(r)
        }
    } else if !r.transactional {
        FileState::Failed(r)
    } else {
        FileState::Pending {
            previous_failure: Some(r),
        }
    }
}

/// Where the newest applied version of a [`reconcile_rows`] is: a file's, or a
/// missing row's.
#[derive(Clone, Copy)]
enum Newest {
    File(usize),
    Missing(usize),
}

impl Newest {
    /// The version it names, among `migrations` or `missing`.
    fn version<'a>(self, migrations: &'a [Migration], missing: &'a [HistoryRow]) -> &'a str {
        match self {
            Newest::File(i) => &migrations[i].version,
            Newest::Missing(k) => &missing[k].version,
        }
    }
}

/// The files of a source by version, for looking history rows up: the files
/// next to the last one found are looked at first (a history recorded in the
/// files' order, read forwards or backwards, finds each there at once).
/// Versions are distinct: they are the files' names (paths, for layouts that
/// read subdirectories).
struct VersionIndex<'a> {
    migrations: &'a [Migration],
    /// Indices into `migrations`, by version (byte-wise); `None` when
    /// `migrations` is in that order already (native files without repeatable ones).
    sorted: Option<Vec<usize>>,
    /// The last file found, whose neighbours are looked at first.
    last: Option<usize>,
}

impl<'a> VersionIndex<'a> {
    fn new(migrations: &'a [Migration]) -> Self {
        let bytes = |i: usize| migrations[i].version.as_bytes();
        let sorted = if migrations.is_sorted_by(|a, b| a.version.as_bytes() <= b.version.as_bytes())
        {
            None
        } else {
            let mut sorted: Vec<usize> = (0..migrations.len()).collect();
            sorted.sort_unstable_by(|&a, &b| bytes(a).cmp(bytes(b)));
            Some(sorted)
        };
        VersionIndex {
            migrations,
            sorted,
            last: None,
        }
    }

    /// The file with this version.
    fn find(&mut self, version: &str) -> Option<usize> {
        let ms = self.migrations;
        let is = |i: usize| ms.get(i).is_some_and(|m| *m.version == *version);
        let near = self.last.and_then(|last| {
            let before = last.checked_sub(1).filter(|&i| is(i));
            before.or(Some(last + 1).filter(|&i| is(i)))
        });
        let found = if near.is_some() {
            near
        } else {
            let key = version.as_bytes();
            match &self.sorted {
                None => ms.binary_search_by(|m| m.version.as_bytes().cmp(key)).ok(),
                Some(sorted) => sorted
                    .binary_search_by(|&i| ms[i].version.as_bytes().cmp(key))
                    .ok()
                    .map(|k| sorted[k]),
            }
        };
        if found.is_some() {
            self.last = found;
        }
        found
    }
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
                        short(&row.checksum.as_ref().map_or_else(|| "none".to_string(), ToString::to_string)),
                        short(&m.checksum.hex()),
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
