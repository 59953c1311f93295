//! Events a run produces as it goes, and the report it ends with.
//!
//! The engine produces [`Event`]s; a reporter in the binary consumes them (human
//! lines, or nothing but the final JSON [`Report`]). The engine never prints.

use std::time::Duration;

use crate::lock::LockHolder;

/// Something that happened during a run, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A connection was opened (the URL is masked).
    Connected {
        /// The masked URL.
        target: String,
    },
    /// A transactional file met a lock timeout (SQLSTATE 55P03) and was rolled
    /// back; it runs again after `wait`.
    LockRetry {
        /// The file.
        version: String,
        /// Which retry comes next (1 for the first).
        attempt: u32,
        /// How many retries the run allows.
        of: u32,
        /// The wait before it.
        wait: Duration,
        /// The server's message.
        message: String,
    },
    /// The migration lock is held by another session; sent when the wait starts,
    /// when the holder changes, and every 10 s.
    LockWaiting {
        /// Who holds it, when PostgreSQL says.
        holder: Option<LockHolder>,
        /// How long this runner has waited so far.
        waited: Duration,
    },
    /// The migration lock was taken after waiting for another holder.
    LockAcquired {
        /// How long it took.
        waited: Duration,
    },
    /// Something the user should know; the run goes on.
    Warning {
        /// The message.
        message: String,
    },
    /// What the run found: how many files are applied and pending.
    Planned {
        /// Files already applied.
        applied: usize,
        /// Files to apply.
        pending: usize,
    },
    /// A file would run (dry run).
    WouldApply {
        /// The file name.
        version: String,
        /// Whether it would run in a transaction of the engine's.
        transactional: bool,
        /// Whether it would run as written, having its own BEGIN/COMMIT.
        controls_transaction: bool,
        /// How many statements it holds.
        statements: usize,
    },
    /// A file started.
    FileStarted {
        /// The file name.
        version: String,
        /// Whether it runs in a transaction of the engine's.
        transactional: bool,
        /// Whether it runs as written because it has its own BEGIN/COMMIT.
        controls_transaction: bool,
    },
    /// `\echo` in a file.
    Echo {
        /// The file name.
        version: String,
        /// The text.
        text: String,
    },
    /// The server sent a notice (`RAISE NOTICE`, a warning) while a file ran.
    Notice {
        /// The file name.
        version: String,
        /// `SEVERITY: message`.
        message: String,
    },
    /// A file was applied and recorded.
    FileApplied {
        /// The file name.
        version: String,
        /// How long it took.
        duration: Duration,
    },
    /// A file failed; nothing after it runs.
    FileFailed {
        /// The file name.
        version: String,
        /// How long it ran.
        duration: Duration,
    },
    /// A file was recorded as applied without running (`sql baseline`).
    FileBaselined {
        /// The file name.
        version: String,
    },
}

/// What happened to (or what is known about) one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// `migrate`: applied by this run. `status`: applied (recorded as successful).
    Applied,
    /// `migrate`: already applied before this run, so skipped.
    Skipped,
    /// Not applied yet (`status`, `--dry-run`).
    Pending,
    /// Applied, but the file changed since (checksum differs).
    Drifted,
    /// Failed: by this run, or recorded as failed (a no-transaction file that needs repair).
    Failed,
    /// `migrate`: not run because an earlier file failed or the run stopped.
    NotRun,
    /// Recorded by `sql baseline` (by this run, or earlier for `status`).
    Baselined,
}

impl FileStatus {
    /// The status as written in JSON and in human output.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Applied => "applied",
            FileStatus::Skipped => "skipped",
            FileStatus::Pending => "pending",
            FileStatus::Drifted => "drifted",
            FileStatus::Failed => "failed",
            FileStatus::NotRun => "not_run",
            FileStatus::Baselined => "baselined",
        }
    }
}

/// One file in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileReport {
    /// The file name.
    #[serde(serialize_with = "shared_str")]
    pub version: std::sync::Arc<str>,
    /// What happened to it.
    pub status: FileStatus,
    /// The file's checksum (SHA-256; serialized as hex).
    pub checksum: crate::script::Sha256Sum,
    /// The checksum recorded in the history, when it differs from the file's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_checksum: Option<String>,
    /// How long it ran: in this run for files this run ran, else as recorded when it
    /// was applied (none for pending, drifted and recorded-failed files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// When it was applied, from the history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<crate::history::Timestamp>,
    /// Whether it runs in a transaction.
    pub transactional: bool,
    /// A pending file that sorts before the newest applied one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub out_of_order: bool,
    /// A repeatable file: runs again whenever it changed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeatable: bool,
    /// The error of a failure (for a pending file: of its last, rolled back, attempt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failed statement (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<i32>,
}

/// A history row whose file is gone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingReport {
    /// The file name.
    pub version: String,
    /// When it was applied.
    pub applied_at: crate::history::Timestamp,
    /// Whether it had succeeded.
    pub success: bool,
}

/// The outcome of a run, for people and programs (`-o json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Default)]
pub struct Report {
    /// The masked database URL.
    pub database: String,
    /// `schema.table` of the history.
    pub history_table: String,
    /// True for `--dry-run`.
    pub dry_run: bool,
    /// The layout the files were read with (`native`, `flyway`, …).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub layout: String,
    /// The order they run in, in words.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub order: String,
    /// One entry per file, in run order.
    pub files: Vec<FileReport>,
    /// History rows whose files are gone.
    pub missing: Vec<MissingReport>,
    /// Wall time of the run in milliseconds.
    pub duration_ms: u64,
}

impl Report {
    /// How many files have this status.
    pub fn count(&self, status: FileStatus) -> usize {
        self.files.iter().filter(|f| f.status == status).count()
    }
}

/// Serializes a shared string as the string it holds.
pub(crate) fn shared_str<S: serde::Serializer>(
    s: &std::sync::Arc<str>,
    to: S,
) -> Result<S::Ok, S::Error> {
    to.serialize_str(s)
}
