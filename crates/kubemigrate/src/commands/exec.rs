//! `kubemigrate exec`: run a migration command (db-migrate, `npm run migrate`, …)
//! with the connection exported, optionally under the migration lock, and record it.

use std::process::Stdio;
use std::time::Instant;

use anyhow::Context as _;
use kubemigrate_sql::connect::ConnectOptions;
use kubemigrate_sql::migrator::{CommandSession, MigrateOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::args::db::{Databases, HistoryArgs, ManyConnArgs, RunArgs};
use crate::exit::{CommandResult, Exit, Failure};
use crate::fanout;
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
  kubemigrate exec --lock -- npx db-migrate up --env prod
  kubemigrate exec --lock --database-url-file tenants.txt --concurrency 8 -- npm run migrate

With several databases (--database-url repeated, --database-url-file, --databases,
--database-query), the command runs once per database with that database's
variables, under that database's lock, --concurrency at a time; its output is
prefixed with the database, the summary counts the databases (ran, failed) and the
exit code is the first failed database's. See docs/fan-out.md.")]
pub struct Args {
    /// Hold the migration lock for the command's whole run.
    #[arg(long)]
    lock: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    conn: ManyConnArgs,
    #[command(flatten)]
    history: HistoryArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let options = args.run.migrate_options(&args.history);
    let conn_opts = match args.conn.databases().await? {
        Databases::One(conn) => conn,
        Databases::Many(entries) => {
            let job = fanout::Job::Exec {
                command: &args.command,
                lock: args.lock,
                options: &options,
            };
            return Ok(fanout::finish("exec", &entries, &job, &args.conn, reporter).await);
        }
    };
    let session = CommandSession::open(&conn_opts, &options, args.lock, &mut |e| reporter.event(e))
        .await
        .map_err(Failure::from_engine)?;
    let exit = in_session(
        session,
        &args.command,
        &conn_opts,
        &options,
        &mut |said| match said {
            Said::Line(line) => reporter.line(&line),
            Said::Warning(text) => reporter.warn(&text),
        },
        None,
    )
    .await?;
    reporter.finish_bare("exec", exit, None);
    Ok(exit)
}

/// What running a command has to say: a line of progress (or of the command's
/// output, when it is captured), or a warning.
pub enum Said {
    /// A line.
    Line(String),
    /// A warning.
    Warning(String),
}

/// Runs `command` in an open session (its lock held, if it took one), records the
/// run in the history, closes the session and returns the command's exit code
/// (`Exit::Child`). With `captured`, the command's stdout and stderr come to
/// `say` line by line (its stdin is empty) instead of going to ours.
///
/// # Errors
/// The command cannot be started (127 not found, 126 not executable) or waited for.
pub async fn in_session(
    session: CommandSession,
    command: &[String],
    conn: &ConnectOptions,
    options: &MigrateOptions,
    say: &mut (dyn FnMut(Said) + Send),
    captured: Option<Captured>,
) -> Result<Exit, Failure> {
    let password = conn.password.as_ref().map(|p| p.expose().to_string());
    let line = command_line(command, password.as_deref());
    say(Said::Line(format!("running {line}")));
    let result = run_child(command, conn, say, captured).await;
    if let Ok((exit, elapsed)) = &result {
        let code = i32::from(exit.code());
        if let Err(e) = session.record(&line, code, *elapsed).await {
            say(Said::Warning(format!(
                "could not record the command in {}: {e}",
                options.history.display_name(),
            )));
        }
        say(Said::Line(format!(
            "{line} exited with {code} after {}",
            duration(*elapsed)
        )));
    }
    session.close().await;
    result.map(|(exit, _)| exit)
}

/// The command's output comes back as lines (a fan-out, where many commands run
/// at once and each line is prefixed with its database).
#[derive(Debug, Clone, Copy)]
pub struct Captured;

async fn run_child(
    command: &[String],
    conn: &ConnectOptions,
    say: &mut (dyn FnMut(Said) + Send),
    captured: Option<Captured>,
) -> Result<(Exit, std::time::Duration), Failure> {
    let (program, rest) = command.split_first().ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            anyhow::anyhow!("exec: no command given after --"),
        )
    })?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest);
    if captured.is_some() {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    } else {
        cmd.stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
    }
    // env_vars() leaves PGSSLMODE out at libpq's default (node-postgres reads
    // `prefer` as "TLS required"): drop an inherited one too.
    cmd.env_remove(kubemigrate_contract::env::PGSSLMODE);
    for (key, value) in conn.env_vars() {
        cmd.env(key, value.expose());
    }
    let mut signals = crate::signals::Signals::new()
        .map_err(|e| Failure::new(Exit::Internal, anyhow::anyhow!(e)))?;
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
    let mut out = child.stdout.take().map(Pipe::new);
    let mut err = child.stderr.take().map(Pipe::new);
    let mut status = None;
    // After the command exited: the rest of its output, for at most a second (a
    // process it started in the background may hold the pipes open).
    let mut drained_by = None;
    // Until the command has exited and both pipes are at their end.
    while status.is_none() || out.is_some() || err.is_some() {
        tokio::select! {
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                drained_by = Some(Box::pin(tokio::time::sleep(std::time::Duration::from_secs(1))));
            }
            () = at(&mut drained_by) => {
                out = None;
                err = None;
            }
            line = next_line(&mut out) => match line {
                Some(line) => say(Said::Line(line)),
                None => out = None,
            },
            line = next_line(&mut err) => match line {
                Some(line) => say(Said::Line(line)),
                None => err = None,
            },
            caught = signals.recv() => forward(pid, caught.number),
        }
    }
    let status = status
        .unwrap_or_else(|| Err(std::io::Error::other("no exit status")))
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

/// A pipe of the command's output, read as lines.
struct Pipe<R> {
    reader: BufReader<R>,
    /// The line read so far: kept when a `select!` drops a read halfway.
    line: Vec<u8>,
}

/// A line longer than this is passed on in pieces of this size.
const MAX_LINE: usize = 64 * 1024;

impl<R: tokio::io::AsyncRead + Unpin> Pipe<R> {
    fn new(r: R) -> Pipe<R> {
        Pipe {
            reader: BufReader::new(r),
            line: Vec::new(),
        }
    }

    /// The next line, without its `\n` (or `\r\n`), bytes that are not UTF-8
    /// replaced; `None` at the end (or on a read error). Cancel safe: bytes are
    /// taken from the reader only together with their copy into `line`.
    async fn next_line(&mut self) -> Option<String> {
        loop {
            let Ok(chunk) = self.reader.fill_buf().await else {
                return self.take_rest();
            };
            if chunk.is_empty() {
                return self.take_rest();
            }
            let room = chunk.len().min(MAX_LINE.saturating_sub(self.line.len()));
            let (used, ends) = match chunk[..room].iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (room, false),
            };
            self.line.extend_from_slice(&chunk[..used]);
            self.reader.consume(used);
            if ends || self.line.len() >= MAX_LINE {
                return Some(self.take());
            }
        }
    }

    fn take(&mut self) -> String {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    fn take_rest(&mut self) -> Option<String> {
        (!self.line.is_empty()).then(|| self.take())
    }
}

/// The next line of a pipe (see [`Pipe::next_line`]). Never ready for a pipe
/// already closed (`None`), so `select!` waits on the others.
async fn next_line<R: tokio::io::AsyncRead + Unpin>(pipe: &mut Option<Pipe<R>>) -> Option<String> {
    match pipe {
        Some(p) => p.next_line().await,
        None => std::future::pending().await,
    }
}

/// When `sleep` ends; never, without one.
async fn at(sleep: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match sleep {
        Some(s) => s.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Sends `sig` to the child.
#[allow(
    unsafe_code,
    reason = "kill(2) on our own child; the SAFETY comment below says why it is sound"
)]
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
            // With NUL allowed shlex cannot fail (and an argument never holds one).
            shlex::Quoter::new()
                .allow_nul(true)
                .quote(&arg)
                .map_or_else(|_| arg.clone(), |quoted| quoted.into_owned())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_lines_survive_bytes_that_are_not_utf8_and_very_long_lines() {
        let mut input = b"one\r\ntw\xffo\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend(b"\nlast");
        let mut pipe = Pipe::new(&input[..]);
        let mut lines = Vec::new();
        while let Some(line) = pipe.next_line().await {
            lines.push(line);
        }
        assert_eq!(
            lines.len(),
            5,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(lines[0], "one");
        assert_eq!(lines[1], "tw\u{fffd}o");
        assert_eq!(lines[2].len(), MAX_LINE);
        assert_eq!(lines[3], "x".repeat(10));
        assert_eq!(lines[4], "last");
    }

    #[test]
    fn command_line_quotes_and_masks() {
        let url = ["psql", "postgres://app:p%40ss@db/app"].map(String::from);
        assert_eq!(
            command_line(&url, Some("p@ss")),
            "psql 'postgres://app:****@db/app'"
        );
        let cmd = [
            "npm",
            "run",
            "migrate",
            "--",
            "--pw=s3cret",
            "it's",
            "a b",
            "",
            "$HOME",
        ]
        .map(String::from);
        let line = command_line(&cmd, Some("s3cret"));
        assert!(!line.contains("s3cret"), "{line}");
        // A shell splits the line back into the arguments, the password masked.
        assert_eq!(
            shlex::split(&line).unwrap(),
            [
                "npm",
                "run",
                "migrate",
                "--",
                "--pw=****",
                "it's",
                "a b",
                "",
                "$HOME"
            ]
        );
        assert_eq!(
            command_line(&["sh", "-c", "exit 3"].map(String::from), None),
            "sh -c 'exit 3'"
        );
    }
}
