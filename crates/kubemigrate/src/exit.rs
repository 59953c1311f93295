//! Failures and what a command returns. The exit codes themselves are the
//! contract's ([`kubemigrate_contract::Exit`]), documented in docs/exit-codes.md.

pub use kubemigrate_contract::Exit;
use kubemigrate_sql::migrator::MigrateError;

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
        let exit = error.exit();
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
