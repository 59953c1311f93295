//! The `kubemigrate` command line: runs database migrations safely and says exactly
//! what happened. Argument parsing and reporting live here; the work is done by the
//! `kubemigrate-sql` engine.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod apply;
mod args;
mod commands;
mod exit;
mod fanout;
mod output;
mod signals;

use exit::Exit;
use output::{Format, Reporter};

/// Run PostgreSQL migrations once, never twice, never concurrently, and say exactly
/// what happened.
#[derive(Debug, Parser)]
#[command(name = "kubemigrate", version, propagate_version = true)]
#[command(after_help = "Examples:
  kubemigrate demo                                        # try it on a throwaway PostgreSQL
  kubemigrate sql migrate --dir ./migrations --database-url postgres://app@db/app
  kubemigrate sql status --dir ./migrations -o json
  kubemigrate sql lint --dir ./migrations --format github  # unsafe DDL, as CI annotations
  kubemigrate wait-for-db --timeout 2m
  kubemigrate exec --lock -- npm run migrate
  kubemigrate validate -f plan.yaml
  kubemigrate render -f plan.yaml | kubectl apply -f -
  kubemigrate apply -f plan.yaml --local                  # run the plan on this machine

Exit codes: 0 ok, 1 unexpected error, 2 bad usage or input, 3 a migration's SQL
failed, 4 needs a person (drift, out of order, failed no-transaction file), 5 lock
timeout, 6 cannot connect, 7 files pending (sql status), 8 a target failed with a
code of its own (apply), 9 apply timed out, 10 the Kubernetes API refused, 11 a
denied lint rule fired (sql lint; validate, render, apply), 130
interrupted (SIGINT), 143 terminated (SIGTERM, apply --local). See
docs/exit-codes.md.")]
struct Cli {
    /// Output format: human lines, or one JSON document on stdout (progress goes to stderr).
    #[arg(long, short = 'o', global = true, value_enum, default_value = "human")]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Plain-SQL migrations: migrate, status, baseline, adopt, repair, lint.
    #[command(subcommand)]
    Sql(SqlCommand),
    WaitForDb(commands::wait_for_db::Args),
    Exec(commands::exec::Args),
    Demo(commands::demo::Args),
    Validate(commands::validate::Args),
    Render(commands::render::Args),
    Apply(commands::apply::Args),
    #[cfg(feature = "cluster")]
    Status(commands::status::Args),
    #[cfg(feature = "cluster")]
    Logs(commands::logs::Args),
    #[cfg(feature = "cluster")]
    Cleanup(commands::cleanup::Args),
    Schema(commands::schema::Args),
    #[command(subcommand)]
    Import(commands::import::Command),
    InstallRunner(commands::install_runner::Args),
    /// The watchdog of `apply --local` (internal): ends the run's process groups
    /// when kubemigrate dies without doing so.
    #[command(name = "watch-children", hide = true)]
    WatchChildren,
}

#[derive(Debug, Subcommand)]
enum SqlCommand {
    Migrate(commands::sql::migrate::Args),
    Status(commands::sql::status::Args),
    Baseline(commands::sql::baseline::Args),
    Adopt(commands::sql::adopt::Args),
    Repair(commands::sql::repair::Args),
    Lint(commands::sql::lint::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let reporter = Reporter::new(cli.output);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Internal.code());
        }
    };
    let name = match &cli.command {
        Command::Sql(SqlCommand::Migrate(_)) => "sql migrate",
        Command::Sql(SqlCommand::Status(_)) => "sql status",
        Command::Sql(SqlCommand::Baseline(_)) => "sql baseline",
        Command::Sql(SqlCommand::Adopt(_)) => "sql adopt",
        Command::Sql(SqlCommand::Repair(_)) => "sql repair",
        Command::Sql(SqlCommand::Lint(_)) => "sql lint",
        Command::WaitForDb(_) => "wait-for-db",
        Command::Exec(_) => "exec",
        Command::Demo(_) => "demo",
        Command::Validate(_) => "validate",
        Command::Render(_) => "render",
        Command::Apply(_) => "apply",
        #[cfg(feature = "cluster")]
        Command::Status(_) => "status",
        #[cfg(feature = "cluster")]
        Command::Logs(_) => "logs",
        #[cfg(feature = "cluster")]
        Command::Cleanup(_) => "cleanup",
        Command::Schema(_) => "schema",
        Command::Import(c) => c.name(),
        Command::InstallRunner(_) => "install-runner",
        Command::WatchChildren => apply::children::WATCHDOG_COMMAND,
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sql(SqlCommand::Migrate(a)) => {
                until_signal(
                    commands::sql::migrate::run(a, reporter),
                    reporter,
                    ROLLED_BACK,
                )
                .await
            }
            Command::Sql(SqlCommand::Status(a)) => {
                until_signal(commands::sql::status::run(a, reporter), reporter, "").await
            }
            Command::Sql(SqlCommand::Baseline(a)) => {
                until_signal(
                    commands::sql::baseline::run(a, reporter),
                    reporter,
                    RECORDED,
                )
                .await
            }
            Command::Sql(SqlCommand::Adopt(a)) => {
                until_signal(commands::sql::adopt::run(a, reporter), reporter, RECORDED).await
            }
            Command::Sql(SqlCommand::Repair(a)) => {
                until_signal(commands::sql::repair::run(a, reporter), reporter, RECORDED).await
            }
            Command::Sql(SqlCommand::Lint(a)) => {
                until_signal(commands::sql::lint::run(a, reporter), reporter, "").await
            }
            Command::WaitForDb(a) => {
                until_signal(commands::wait_for_db::run(a, reporter), reporter, "").await
            }
            Command::Exec(a) => commands::exec::run(a, reporter).await,
            Command::Demo(a) => commands::demo::run(a, reporter).await,
            Command::Validate(a) => commands::validate::run(a, reporter).await,
            Command::Render(a) => commands::render::run(a, reporter).await,
            Command::Apply(a) => commands::apply::run(a, reporter).await,
            #[cfg(feature = "cluster")]
            Command::Status(a) => commands::status::run(a, reporter).await,
            #[cfg(feature = "cluster")]
            Command::Logs(a) => commands::logs::run(a, reporter).await,
            #[cfg(feature = "cluster")]
            Command::Cleanup(a) => commands::cleanup::run(a, reporter).await,
            Command::Schema(a) => commands::schema::run(a, reporter).await,
            Command::Import(c) => commands::import::run(c, reporter),
            Command::InstallRunner(a) => commands::install_runner::run(a, reporter),
            Command::WatchChildren => {
                apply::children::watch_children();
                Ok(Exit::Ok)
            }
        }
    });
    let exit = match result {
        Ok(exit) => exit,
        Err(failure) => {
            reporter.finish_bare(name, failure.exit, Some(&failure));
            failure.exit
        }
    };
    // The command has ended and said so: the runtime's idle threads are not waited
    // for (nor is a file read that a failed run left behind).
    runtime.shutdown_background();
    ExitCode::from(exit.code())
}

/// Runs a command that talks to a database until it ends, or until SIGTERM or
/// SIGINT arrives: then the command stops where it is and its connections close,
/// and the server rolls back the transaction of the file being applied (within a
/// second, mid-statement too: the engine sets client_connection_check_interval)
/// and releases the migration lock. In a pod kubemigrate is process 1, which
/// ignores SIGTERM unless it handles it: without this, a deleted pod's runner
/// would go on until its grace period ended in SIGKILL.
async fn until_signal(
    work: impl std::future::Future<Output = exit::CommandResult>,
    reporter: Reporter,
    then: &str,
) -> exit::CommandResult {
    let Ok(mut signals) = signals::Signals::new() else {
        return work.await;
    };
    let caught = tokio::select! {
        result = work => return result,
        caught = signals.recv() => caught,
    };
    reporter.warn(&format!("stopped by {}{then}", caught.name));
    Ok(caught.exit)
}

/// What [`until_signal`] adds for `sql migrate`.
const ROLLED_BACK: &str = ": the file being applied is rolled back, unless it runs without a \
     transaction (then `sql status` shows it as interrupted); the lock is released";

/// What [`until_signal`] adds for `sql baseline` and `sql repair`.
const RECORDED: &str = ": what was not yet recorded is rolled back; the lock is released";

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
