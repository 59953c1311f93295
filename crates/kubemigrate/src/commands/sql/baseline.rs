//! `kubemigrate sql baseline`: adopt a database migrated another way.

use kubemigrate_sql::migrator;

use crate::args::db::{ConnArgs, DirArgs, HistoryArgs, RunArgs};
use crate::exit::{CommandResult, Failure};
use crate::output::Reporter;
use crate::output::sql::SqlRun;

/// Record every file up to and including --version as applied, without running it.
///
/// Use it once on a database whose schema already holds what those files create
/// (migrated by psql, Flyway or by hand). Files after --version stay pending.
#[derive(Debug, clap::Args)]
#[command(disable_version_flag = true)]
#[command(after_help = "Example:
  kubemigrate sql baseline --dir ./migrations --version 0042_add_orders.sql")]
pub struct Args {
    #[command(flatten)]
    dir: DirArgs,
    /// The last file to record (a file name from --dir).
    #[arg(long, value_name = "FILE")]
    version: String,
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    history: HistoryArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let (source, conn, options) =
        super::one_database(&args.dir, &args.conn, &args.history, &args.run)?;
    let outcome = migrator::baseline(&conn, &source, &options, &args.version, &mut |e| {
        reporter.event(e)
    })
    .await;
    let (exit, failure) = Failure::of_run(outcome.error);
    let run = SqlRun {
        report: &outcome.report,
        summary: failure.is_none(),
    };
    reporter.finish("sql baseline", Some(&run), exit, failure.as_ref());
    Ok(exit)
}
