//! Exit codes, documented in docs/exit-codes.md. Keep the two in step.

use kubemigrate_sql::migrator::{ErrorClass, MigrateError};

/// How a run of kubemigrate ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked (0).
    Ok,
    /// An unexpected error: a bug, an unexpected server error (1).
    Internal,
    /// Bad usage or input: a bad flag, an unreadable or unsplittable file (2).
    Usage,
    /// A migration's SQL failed; its transaction was rolled back (3).
    SqlFailed,
    /// A state that needs a person: drift, out of order, a failed no-transaction file (4).
    NeedsPerson,
    /// The migration lock stayed taken for all of `--lock-timeout` (5).
    LockTimeout,
    /// Cannot connect to the database, the connection was lost, or `wait-for-db` timed out (6).
    Connection,
    /// `sql status`: files are pending (7).
    Pending,
    /// `apply`: a target failed in a way that has no code of its own above (its
    /// command failed, or it ran out of time) (8).
    TargetFailed,
    /// `apply`: waiting for a target timed out (`--timeout`); its Job may go on (9).
    TimedOut,
    /// `apply`: the Kubernetes API refused (a missing RBAC permission) or could not
    /// be reached (10).
    Cluster,
    /// `sql lint` (and `validate`, `render`, `apply` before they go on): a denied
    /// lint rule fired (11).
    LintDenied,
    /// Interrupted by Ctrl-C, SIGINT (130).
    Interrupted,
    /// Stopped by SIGTERM (143): a runner in a pod being deleted, `apply --local`.
    Terminated,
    /// `exec`: the command's own exit code (128 + N when signal N ended it).
    Child(u8),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Internal => 1,
            Exit::Usage => 2,
            Exit::SqlFailed => 3,
            Exit::NeedsPerson => 4,
            Exit::LockTimeout => 5,
            Exit::Connection => 6,
            Exit::Pending => 7,
            Exit::TargetFailed => 8,
            Exit::TimedOut => 9,
            Exit::Cluster => 10,
            Exit::LintDenied => 11,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
            Exit::Child(code) => code,
        }
    }

    /// The exit code for an engine error.
    pub fn of(error: &MigrateError) -> Exit {
        match error.class() {
            ErrorClass::Input => Exit::Usage,
            ErrorClass::Sql => Exit::SqlFailed,
            ErrorClass::NeedsPerson => Exit::NeedsPerson,
            ErrorClass::LockTimeout => Exit::LockTimeout,
            ErrorClass::Connection => Exit::Connection,
            ErrorClass::Internal => Exit::Internal,
        }
    }

    /// The name used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Internal => "internal",
            Exit::Usage => "usage",
            Exit::SqlFailed => "sql_failed",
            Exit::NeedsPerson => "needs_person",
            Exit::LockTimeout => "lock_timeout",
            Exit::Connection => "connection",
            Exit::Pending => "pending",
            Exit::TargetFailed => "target_failed",
            Exit::TimedOut => "timed_out",
            Exit::Cluster => "cluster_error",
            Exit::LintDenied => "lint_denied",
            Exit::Interrupted => "interrupted",
            Exit::Terminated => "terminated",
            Exit::Child(0) => "ok",
            Exit::Child(_) => "command_failed",
        }
    }
}

/// A failed command: its exit code, the one-line error, and lines that add detail
/// (the quoted SQL line of a failed statement).
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub exit: Exit,
    /// The error, with context.
    pub error: anyhow::Error,
    /// Extra lines printed under the error.
    pub detail: Vec<String>,
}

impl Failure {
    /// A failure with an exit code and no detail lines.
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            exit,
            error: error.into(),
            detail: Vec::new(),
        }
    }

    /// The exit code of a run that may have failed, and its failure.
    pub fn of_run(error: Option<MigrateError>) -> (Exit, Option<Failure>) {
        match error {
            None => (Exit::Ok, None),
            Some(e) => {
                let f = Failure::from_engine(e);
                (f.exit, Some(f))
            }
        }
    }

    /// A failure from an engine error.
    pub fn from_engine(error: MigrateError) -> Failure {
        let exit = Exit::of(&error);
        let detail = match &error {
            MigrateError::Sql(s) => s.excerpt(),
            MigrateError::NeedsPerson(problems) if problems.len() > 1 => problems
                .iter()
                .map(|p| format!("{}: {}", p.version, p.message))
                .collect(),
            _ => Vec::new(),
        };
        Failure {
            exit,
            error: error.into(),
            detail,
        }
    }
}

/// What a command returns.
pub type CommandResult = Result<Exit, Failure>;
