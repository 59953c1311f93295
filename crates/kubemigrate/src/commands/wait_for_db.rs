//! `kubemigrate wait-for-db`: wait until the database accepts connections.

use std::time::{Duration, Instant};

use kubemigrate_sql::wait::{WaitError, wait_for_db};

use crate::args::db::ConnArgs;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{Reporter, duration};

/// Wait until a connection opens and `SELECT 1` succeeds, then exit 0.
///
/// Polls fast (first retry after 50 ms, backoff capped at 200 ms) so it goes on
/// within a fraction of a second of the server accepting connections. Fails at once
/// on what waiting cannot fix (authentication failed, database does not exist, TLS),
/// and after --timeout with the last error. Use it as the init container of a Job.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate wait-for-db --timeout 2m
  PGHOST=db PGUSER=app PGPASSWORD=… kubemigrate wait-for-db")]
pub struct Args {
    /// Give up after this long (e.g. 30s, 5m).
    #[arg(long, default_value = "5m", value_parser = crate::args::db::parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    timeout: Duration,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let conn = args.conn.options()?;
    let start = Instant::now();
    let mut last: Option<String> = None;
    let result = wait_for_db(&conn, args.timeout, &mut |e| {
        // Say so once per distinct error, not on every poll.
        let text = e.to_string();
        if last.as_deref() != Some(&text) {
            reporter.line(&format!("waiting for the database: {text}"));
            last = Some(text);
        }
    })
    .await;
    match result {
        Ok(attempts) => {
            reporter.line(&format!(
                "database {} is ready after {} ({attempts} attempt{})",
                conn.masked_url(),
                duration(start.elapsed()),
                if attempts == 1 { "" } else { "s" }
            ));
            reporter.finish_bare("wait-for-db", Exit::Ok, None);
            Ok(Exit::Ok)
        }
        Err(e) => {
            let f = match e {
                WaitError::Permanent(e) => Failure::new(
                    Exit::Connection,
                    anyhow::Error::new(e).context("not retrying"),
                ),
                e => Failure::new(Exit::Connection, e),
            };
            reporter.finish_bare("wait-for-db", f.exit, Some(&f));
            Ok(f.exit)
        }
    }
}
