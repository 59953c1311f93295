//! `kubemigrate sql …`: the engine's commands over a directory of migrations.

pub mod adopt;
pub mod baseline;
pub mod lint;
pub mod lint_trace;
pub mod migrate;
pub mod repair;
pub mod status;

use kubemigrate_sql::connect::ConnectOptions;
use kubemigrate_sql::migrator::MigrateOptions;
use kubemigrate_sql::source::Source;

use crate::args::db::{ConnArgs, DirArgs, HistoryArgs, RunArgs};
use crate::exit::Failure;

/// What a `sql` command on one database starts with: the files of `--dir`, read
/// with psql's `:DBNAME`, `:USER`, `:HOST` and `:PORT` of the connection; the
/// connection; the engine's options with the same variables.
///
/// # Errors
/// A file that cannot run as written is reported before a bad connection setting,
/// as the engine reads every file before it connects.
pub fn one_database(
    dir: &DirArgs,
    conn: &ConnArgs,
    history: &HistoryArgs,
    run: &RunArgs,
) -> Result<(Source, ConnectOptions, MigrateOptions), Failure> {
    let auto = conn.options().ok();
    let source = dir.source_with(auto.as_ref())?;
    let conn = conn.options()?;
    let mut options = run.migrate_options(history);
    options.variables = dir.variables_with(Some(&conn));
    Ok((source, conn, options))
}
