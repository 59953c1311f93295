//! Exit codes, documented in docs/exit-codes.md; that page and this file change
//! together.

/// How a kubemigrate command ended: its process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success (0).
    Ok,
    /// An unexpected error: a bug, or a server error outside the migrations (1).
    Internal,
    /// Bad usage or input, found before anything changed (2).
    Usage,
    /// A migration's SQL failed (3).
    SqlFailed,
    /// Drift, out of order, a failed no-transaction file: a person must decide (4).
    NeedsPerson,
    /// Another migrator held the lock for all of `--lock-timeout` (5).
    LockTimeout,
    /// Cannot connect, or the connection was lost (6).
    Connection,
    /// `sql status`: files are pending (7).
    Pending,
    /// `apply`: a target failed with no code above (its command failed, or it ran
    /// out of time) (8).
    TargetFailed,
    /// `apply`: waiting for a target timed out (`--timeout`); its Job may go on (9).
    TimedOut,
    /// The Kubernetes API refused (a missing RBAC permission) or could not be
    /// reached (10).
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

    /// The name in JSON output (`outcome`).
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

    /// The codes a runner in a Job exits with that mean something of their own,
    /// read back from a failed container: 2 to 6.
    pub fn of_runner(code: i32) -> Option<Exit> {
        Some(match code {
            2 => Exit::Usage,
            3 => Exit::SqlFailed,
            4 => Exit::NeedsPerson,
            5 => Exit::LockTimeout,
            6 => Exit::Connection,
            _ => return None,
        })
    }

    /// What a runner's code means, for reports of a failed container: `a
    /// migration's SQL failed`. `None` for codes that are not a runner's.
    pub fn runner_meaning(code: i32) -> Option<&'static str> {
        Some(match Exit::of_runner(code)? {
            Exit::Usage => "bad usage or input",
            Exit::SqlFailed => "a migration's SQL failed",
            Exit::NeedsPerson => {
                "needs a person: drift, out of order, or a failed no-transaction file"
            }
            Exit::LockTimeout => "timed out waiting for the migration lock",
            _ => "cannot connect to the database",
        })
    }
}

/// The runner's codes that no retry can change (bad input, a state that needs a
/// person): a Job's pod failure policy fails the Job at once on them.
pub const FINAL_RUNNER_CODES: &[Exit] = &[Exit::Usage, Exit::NeedsPerson];

/// `wait-for-db`'s code for a database that refuses for good (no such database, a
/// wrong password): final too.
pub const FINAL_WAIT_CODES: &[Exit] = &[Exit::Usage];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_codes_round_trip_and_others_mean_nothing() {
        for code in 2..=6 {
            let exit = Exit::of_runner(code).map(Exit::code);
            assert_eq!(exit.map(i32::from), Some(code));
            assert!(Exit::runner_meaning(code).is_some());
        }
        for code in [0, 1, 7, 8, 127, 137] {
            assert_eq!(Exit::of_runner(code), None);
            assert_eq!(Exit::runner_meaning(code), None);
        }
        assert_eq!(Exit::Child(0).name(), "ok");
        assert_eq!(Exit::Child(3).code(), 3);
    }
}
