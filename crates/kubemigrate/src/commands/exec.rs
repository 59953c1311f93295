//! `kubemigrate exec`: run a migration command (db-migrate, `npm run migrate`, …)
//! with the connection exported, optionally under the migration lock, and record it.

use std::process::Stdio;
use std::time::Instant;

use anyhow::Context as _;
use kubemigrate_sql::migrator::CommandSession;
use tokio::signal::unix::{SignalKind, signal};

use crate::args::db::{ConnArgs, HistoryArgs, RunArgs};
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{Reporter, duration};

/// Run a migration command with the connection exported to it, and record the run.
///
/// The command gets DATABASE_URL, the libpq variables (PGHOST, PGPORT, PGDATABASE,
/// PGUSER, PGPASSWORD, PGSSLMODE, PGSSLROOTCERT, PGAPPNAME) and the module's DB_*
/// variables. With
/// --lock it runs under the same advisory lock as `sql migrate`, so it never runs
/// next to another migrator. The run (command line, exit code, duration) is recorded
/// in the history table. SIGTERM and SIGINT are passed on to the command; kubemigrate
/// exits with the command's exit code (128 + N when signal N ended it).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate exec --lock -- npm run migrate
  kubemigrate exec --lock -- npx db-migrate up --env prod")]
pub struct Args {
    /// Hold the migration lock for the command's whole run.
    #[arg(long)]
    lock: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    history: HistoryArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let conn_opts = args.conn.options()?;
    let options = args.run.migrate_options(&args.history);
    let session = CommandSession::open(&conn_opts, &options, args.lock, &mut |e| reporter.event(e))
        .await
        .map_err(Failure::from_engine)?;
    let result = run_child(&args.command, &conn_opts, reporter).await;
    if let Ok((exit, elapsed)) = &result {
        let password = conn_opts.password.as_ref().map(|p| p.expose().to_string());
        let line = command_line(&args.command, password.as_deref());
        let code = i32::from(exit.code());
        if let Err(e) = session.record(&line, code, *elapsed).await {
            reporter.warn(&format!(
                "could not record the command in {}: {e}",
                options.history.display_name(),
            ));
        }
        reporter.line(&format!(
            "{line} exited with {code} after {}",
            duration(*elapsed)
        ));
    }
    session.close().await;
    let (exit, _) = result?;
    reporter.finish_bare("exec", exit, None);
    Ok(exit)
}

async fn run_child(
    command: &[String],
    conn: &kubemigrate_sql::connect::ConnectOptions,
    reporter: Reporter,
) -> Result<(Exit, std::time::Duration), Failure> {
    let (program, rest) = command.split_first().ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            anyhow::anyhow!("exec: no command given after --"),
        )
    })?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    // env_vars() leaves PGSSLMODE out at libpq's default (node-postgres reads
    // `prefer` as "TLS required"): drop an inherited one too.
    cmd.env_remove(kubemigrate_contract::env::PGSSLMODE);
    for (key, value) in conn.env_vars() {
        cmd.env(key, value.expose());
    }
    let mut terminate = signal(SignalKind::terminate())
        .context("installing the SIGTERM handler")
        .map_err(|e| Failure::new(Exit::Internal, e))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .context("installing the SIGINT handler")
        .map_err(|e| Failure::new(Exit::Internal, e))?;
    reporter.line(&format!(
        "running {}",
        command_line(command, conn.password.as_ref().map(|p| p.expose()))
    ));
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        let exit = match e.kind() {
            std::io::ErrorKind::NotFound => Exit::Child(127),
            std::io::ErrorKind::PermissionDenied => Exit::Child(126),
            _ => Exit::Internal,
        };
        Failure::new(
            exit,
            anyhow::Error::new(e).context(format!("cannot run {program}")),
        )
    })?;
    let pid = child.id();
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = terminate.recv() => forward(pid, libc::SIGTERM),
            _ = interrupt.recv() => forward(pid, libc::SIGINT),
        }
    }
    .context("waiting for the command")
    .map_err(|e| Failure::new(Exit::Internal, e))?;
    let code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => u8::try_from(c & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(255),
        (None, None) => 1,
    };
    Ok((Exit::Child(code), started.elapsed()))
}

/// Sends `sig` to the child.
#[allow(unsafe_code)]
fn forward(pid: Option<u32>, sig: libc::c_int) {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; the pid is
    // our own child's, which we have not reaped yet (wait() has not returned).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The command line as recorded and printed: arguments quoted when needed, and the
/// database password, should it appear in an argument, masked.
pub fn command_line(command: &[String], password: Option<&str>) -> String {
    command
        .iter()
        .map(|arg| {
            let arg = match password {
                Some(p) => kubemigrate_sql::connect::redact(arg, p),
                None => arg.clone(),
            };
            if !arg.is_empty()
                && arg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,*".contains(&b))
            {
                arg
            } else {
                format!("'{}'", arg.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_and_masks() {
        let url = ["psql", "postgres://app:p%40ss@db/app"].map(String::from);
        assert_eq!(
            command_line(&url, Some("p@ss")),
            "psql postgres://app:****@db/app"
        );
        let cmd = ["npm", "run", "migrate", "--", "--pw=s3cret", "it's"].map(String::from);
        assert_eq!(
            command_line(&cmd, Some("s3cret")),
            "npm run migrate -- --pw=**** 'it'\\''s'"
        );
    }
}
