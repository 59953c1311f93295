//! `kubemigrate sql migrate`: apply pending migrations.

use std::time::Duration;

use kubemigrate_sql::migrator;

use crate::args::db::{Databases, DirArgs, HistoryArgs, ManyConnArgs, RunArgs};
use crate::exit::{CommandResult, Exit, Failure};
use crate::fanout;
use crate::output::Reporter;
use crate::output::sql::SqlRun;

/// Apply the pending *.sql files of a directory, each once, in order.
///
/// Each file runs in its own transaction together with its history row, so a file is
/// either applied and recorded or not at all. A file whose first comment lines hold
/// `-- kubemigrate:no-transaction` runs statement by statement (CREATE INDEX
/// CONCURRENTLY, ALTER TYPE … ADD VALUE). One migrator runs per database and history
/// table at a time; others wait for the lock, then find nothing left to do.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate sql migrate --dir ./migrations --database-url postgres://app@db:5432/app
  DATABASE_URL=postgres://app@db/app kubemigrate sql migrate -d /migrations -o json
  kubemigrate sql migrate -d ./migrations --dry-run
  kubemigrate sql migrate -d ./migrations --statement-lock-timeout 5s --lock-retries 3
  kubemigrate sql migrate -d ./migrations --database-url-file tenants.txt --concurrency 8
  kubemigrate sql migrate -d ./migrations --database-url postgres://db/t1 --database-url postgres://db/t2

With several databases (the flag repeated, or a file), each is migrated on its own
(its own lock and history), --concurrency at a time, logs prefixed with its name;
the summary counts them (up to date, applied, failed) and names each failure; the
exit code is the worst of theirs. See docs/fan-out.md.")]
pub struct Args {
    #[command(flatten)]
    dir: DirArgs,
    /// List what would run; change nothing (no lock, no history table).
    #[arg(long)]
    dry_run: bool,
    /// Go on when applied files changed since they were applied.
    #[arg(long)]
    allow_drift: bool,
    /// Apply pending files that sort before files already applied.
    #[arg(long)]
    allow_out_of_order: bool,
    /// Fail when the history holds a file that is gone from the directory.
    #[arg(long)]
    strict: bool,
    /// PostgreSQL lock_timeout for the migrations' statements, so DDL never queues
    /// forever behind a long transaction (e.g. 5s) [default: unset].
    #[arg(long, value_parser = parse_timeout, allow_hyphen_values = true, value_name = "DURATION")]
    statement_lock_timeout: Option<Duration>,
    /// PostgreSQL statement_timeout for the migrations' statements: a statement
    /// running longer fails (and its file with it) [default: unset].
    #[arg(long, value_parser = parse_timeout, allow_hyphen_values = true, value_name = "DURATION")]
    statement_timeout: Option<Duration>,
    /// Run a transactional file again, up to N times, when it fails on a lock
    /// timeout (SQLSTATE 55P03, see --statement-lock-timeout): it was rolled back
    /// whole, and retries wait 1s, 2s, 4s… (at most 30s) [default: 0].
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    lock_retries: u32,
    #[command(flatten)]
    conn: ManyConnArgs,
    #[command(flatten)]
    history: HistoryArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// A duration PostgreSQL's lock_timeout and statement_timeout can take: from 1 ms
/// to about 24 days (0 would turn the timeout off, the opposite of what the flags
/// are for).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = kubemigrate_plan::parse_duration(text).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(1) || d.as_millis() > i32::MAX as u128 {
        return Err("give a duration from 1ms to 596h (about 24 days)".into());
    }
    Ok(d)
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let databases = args.conn.databases().await;
    let mut options = args.run.migrate_options(&args.history);
    options.dry_run = args.dry_run;
    options.allow_drift = args.allow_drift;
    options.allow_out_of_order = args.allow_out_of_order;
    options.strict = args.strict;
    options.statement_lock_timeout = args.statement_lock_timeout;
    options.statement_timeout = args.statement_timeout;
    options.lock_retries = args.lock_retries;
    if let Ok(Databases::One(conn)) = &databases {
        // One database: its files are read while the run connects and reads the
        // history (a rerun with nothing to do waits for the slower of the two).
        let variables = args.dir.variables_with(Some(conn));
        options.variables = variables.clone();
        let read = args.dir.reader(variables);
        let outcome = migrator::migrate_reading(conn, read, &options, &mut |e| reporter.event(e))
            .await
            .map_err(|e| Failure::new(Exit::Usage, e))?;
        return Ok(finish(outcome, reporter));
    }
    let (source, variables, databases) = args.dir.read_with(databases)?;
    options.variables = variables;
    let conn = match databases {
        Databases::One(conn) => conn,
        Databases::Many(entries) => {
            let job = fanout::Job::Migrate {
                source: &source,
                options: &options,
            };
            return Ok(fanout::finish("sql migrate", &entries, &job, &args.conn, reporter).await);
        }
    };
    let outcome = migrator::migrate(&conn, &source, &options, &mut |e| reporter.event(e)).await;
    Ok(finish(outcome, reporter))
}

/// Reports a run on one database; its exit code.
fn finish(outcome: migrator::Outcome, reporter: Reporter) -> Exit {
    let (exit, failure) = Failure::of_run(outcome.error);
    let run = SqlRun {
        report: &outcome.report,
        summary: true,
    };
    reporter.finish("sql migrate", Some(&run), exit, failure.as_ref());
    // The process ends with this report: its rows (one per file, thousands for a
    // large directory) are left to the exit rather than freed one by one.
    std::mem::forget(outcome.report);
    exit
}
