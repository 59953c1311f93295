//! `kubemigrate sql status`: what is applied, pending, drifted, missing, failed.

use kubemigrate_sql::events::FileStatus;
use kubemigrate_sql::migrator::{self, MigrateError};

use crate::args::db::{Databases, DirArgs, HistoryArgs, ManyConnArgs};
use crate::exit::{CommandResult, Exit, Failure};
use crate::fanout;
use crate::output::Reporter;
use crate::output::sql::SqlStatus;

/// Show applied, pending, drifted, failed and missing files.
///
/// Each file's state: applied, baselined, pending, drifted (changed since it was
/// applied), failed; and history rows whose file is missing.
///
/// Exit code 0 when nothing is pending, 7 when files are pending, 4 when something
/// needs a person (drift, a failed no-transaction file, a pending file out of order).
/// Takes no lock and changes nothing.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate sql status --dir ./migrations
  kubemigrate sql status -d ./migrations -o json | jq '.files[] | select(.status != \"applied\")'
  kubemigrate sql status -d ./migrations --database-url-file tenants.txt -o json

With several databases (the flag repeated, or a file), one line per database that
is pending or needs a person, and the counts; the exit code is the worst of theirs.")]
pub struct Args {
    #[command(flatten)]
    dir: DirArgs,
    /// Count history rows whose file is gone as a problem (exit 4).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    conn: ManyConnArgs,
    #[command(flatten)]
    history: HistoryArgs,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let (source, _, databases) = args.dir.read_for(&args.conn).await?;
    let options = kubemigrate_sql::migrator::MigrateOptions {
        history: args.history.table(),
        strict: args.strict,
        ..Default::default()
    };
    let conn = match databases {
        Databases::One(conn) => conn,
        Databases::Many(entries) => {
            let job = fanout::Job::Status {
                source: &source,
                options: &options,
            };
            return Ok(fanout::finish("sql status", &entries, &job, &args.conn, reporter).await);
        }
    };
    for w in &source.warnings {
        reporter.warn(&w.0);
    }
    let (report, rec) = match migrator::status(&conn, &source, &options.history, &mut |e| {
        reporter.event(e)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => {
            let f = Failure::from_engine(e);
            reporter.finish_bare("sql status", f.exit, Some(&f));
            return Ok(f.exit);
        }
    };
    let problems = rec.problems(&source, &options);
    let (exit, failure) = if !problems.is_empty() {
        let f = Failure::from_engine(MigrateError::NeedsPerson(problems));
        (f.exit, Some(f))
    } else if report.count(FileStatus::Pending) > 0 {
        (Exit::Pending, None)
    } else {
        (Exit::Ok, None)
    };
    reporter.finish(
        "sql status",
        Some(&SqlStatus(&report)),
        exit,
        failure.as_ref(),
    );
    Ok(exit)
}
