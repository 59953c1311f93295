//! `kubemigrate sql lint --trace`: run the files on a throwaway local PostgreSQL,
//! one statement at a time, and report the locks each statement takes.

use std::collections::HashSet;
use std::io::Write;
use std::process::Command;

use anyhow::{Context, anyhow};
use kubemigrate_lint::trace::{FileTrace, TraceReport};
use kubemigrate_localpg::LocalPostgres;
use kubemigrate_sql::connect::{ConnectOptions, Connection};
use kubemigrate_sql::script::{Item, Script};
use kubemigrate_sql::source::Source;

use crate::args::db::{ConnArgs, DirArgs, HistoryArgs};
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::{Format, Output, Reporter};

/// The database the trace runs in, on the throwaway server.
const TRACE_DB: &str = "kubemigrate_trace";

/// Runs the trace (see `sql lint --help`).
pub async fn run(
    conn: &ConnArgs,
    history: &HistoryArgs,
    dir: &DirArgs,
    source: &Source,
    reporter: Reporter,
) -> CommandResult {
    let from = match conn.database_url.as_deref() {
        Some(url) if !url.trim().is_empty() => Some(conn.options()?),
        _ => None,
    };
    let only: Option<HashSet<String>> = match &from {
        Some(_) => Some(pending(conn, history, source).await?),
        None => None,
    };
    reporter.line("starting a throwaway PostgreSQL…");
    let pg = LocalPostgres::start().map_err(|e| {
        Failure::new(
            Exit::Internal,
            anyhow!(e).context(
                "--trace needs PostgreSQL's server binaries (initdb, postgres) on this machine",
            ),
        )
    })?;
    let admin = connect(&pg.url("postgres")).await?;
    admin
        .client
        .batch_execute(&format!("CREATE DATABASE {TRACE_DB} TEMPLATE template0"))
        .await
        .map_err(|e| internal(e, "creating the trace database"))?;
    let url = pg.url(TRACE_DB);
    if let Some(from) = &from {
        reporter.line(&format!(
            "copying the schema of {} (pg_dump --schema-only)…",
            from.masked_url()
        ));
        copy_schema(&pg, from, &url).await?;
    }
    let runner = connect(&url).await?;
    let observer = connect(&url).await?;
    let vars = dir.variables();
    let json = reporter.json();
    let mut progress = |f: &FileTrace| {
        if !json {
            print_file(f);
        }
    };
    let result = kubemigrate_lint::trace::trace_source(
        &runner.client,
        &observer.client,
        source,
        &vars,
        only.as_ref(),
        &mut progress,
    )
    .await;
    drop(pg);
    let (report, failure) = match result {
        Ok(r) => (r, None),
        Err(e @ kubemigrate_lint::trace::TraceError::Statement { .. }) => (
            TraceReport::default(),
            Some(Failure::new(Exit::SqlFailed, e)),
        ),
        Err(e @ kubemigrate_lint::trace::TraceError::Script(_)) => {
            (TraceReport::default(), Some(Failure::new(Exit::Usage, e)))
        }
        Err(e) => (
            TraceReport::default(),
            Some(Failure::new(Exit::Internal, e)),
        ),
    };
    let exit = failure.as_ref().map_or(Exit::Ok, |f| f.exit);
    if json {
        let result = TraceJson {
            schema_from: from.as_ref().map(ConnectOptions::masked_url),
            files: &report.files,
        };
        Reporter::new(Format::Json).finish(
            "sql lint --trace",
            Some(&result),
            exit,
            failure.as_ref(),
        );
    } else if let Some(f) = &failure {
        reporter.error(f);
    } else {
        let statements: usize = report.files.iter().map(|f| f.statements.len()).sum();
        reporter.line(&format!(
            "traced {} file{} ({statements} statement{}); the throwaway PostgreSQL is gone",
            report.files.len(),
            if report.files.len() == 1 { "" } else { "s" },
            if statements == 1 { "" } else { "s" },
        ));
    }
    Ok(exit)
}

/// `sql lint --trace`'s result in the JSON document.
#[derive(Debug, serde::Serialize)]
struct TraceJson<'a> {
    schema_from: Option<String>,
    files: &'a [FileTrace],
}

impl Output for TraceJson<'_> {}

fn internal(e: impl std::fmt::Display, what: &str) -> Failure {
    Failure::new(Exit::Internal, anyhow!("{what}: {e}"))
}

async fn connect(url: &str) -> Result<Connection, Failure> {
    let options = ConnectOptions::resolve(Some(url), |_| None)
        .map_err(|e| internal(e, "the throwaway server's URL"))?;
    options
        .connect()
        .await
        .map_err(|e| Failure::new(Exit::Connection, anyhow!(e)))
}

async fn pending(
    conn: &ConnArgs,
    history: &HistoryArgs,
    source: &Source,
) -> Result<HashSet<String>, Failure> {
    let options = conn.options()?;
    let (report, _) =
        kubemigrate_sql::migrator::status(&options, source, &history.table(), &mut |e| {
            if let kubemigrate_sql::events::Event::Warning { message } = e {
                eprintln!("warning: {message}");
            }
        })
        .await
        .map_err(Failure::from_engine)?;
    Ok(report
        .files
        .into_iter()
        .filter(|f| f.status == kubemigrate_sql::events::FileStatus::Pending)
        .map(|f| f.version.to_string())
        .collect())
}

/// `pg_dump --schema-only` of `from`, applied to the trace database.
async fn copy_schema(pg: &LocalPostgres, from: &ConnectOptions, to: &str) -> Result<(), Failure> {
    let tmp = tempfile::tempdir().map_err(|e| internal(e, "creating a temporary directory"))?;
    let dump = tmp.path().join("schema.sql");
    let mut cmd = Command::new(pg.bin_dir().join("pg_dump"));
    cmd.args([
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-publications",
        "--no-subscriptions",
        "--file",
    ])
    .arg(&dump)
    .env("PGHOST", &from.host)
    .env("PGPORT", from.port.to_string())
    .env("PGUSER", &from.user)
    .env("PGDATABASE", &from.dbname)
    .env("PGSSLMODE", from.ssl_mode.as_str())
    .env_remove("PGPASSWORD");
    if let Some(pw) = &from.password {
        cmd.env("PGPASSWORD", pw.expose());
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", pg.bin_dir().join("pg_dump").display()))
        .map_err(|e| Failure::new(Exit::Internal, e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Failure::new(
            Exit::Connection,
            anyhow!(
                "pg_dump --schema-only of {} failed: {}",
                from.masked_url(),
                err.lines().next().unwrap_or("").trim()
            ),
        ));
    }
    let conn = connect(to).await?;
    let vars = kubemigrate_sql::script::Variables::new();
    let mut script = Script::open(&dump, tmp.path(), &vars)
        .map_err(|e| internal(e, "reading the schema dump"))?;
    while let Some(item) = script
        .next_item()
        .map_err(|e| internal(e, "reading the schema dump"))?
    {
        let (Item::Sql { text, .. } | Item::Copy { text, .. }) = item else {
            continue;
        };
        conn.client.batch_execute(&text).await.map_err(|e| {
            Failure::new(
                Exit::Internal,
                anyhow!(
                    "applying the schema of {} to the throwaway server: {}",
                    from.masked_url(),
                    kubemigrate_sql::migrator::describe(&e)
                ),
            )
        })?;
    }
    Ok(())
}

/// One file's statements and their locks, for people.
fn print_file(f: &FileTrace) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{} ({}) in {}ms",
        f.version,
        f.mode.describe(),
        f.duration_ms
    );
    for s in &f.statements {
        let _ = writeln!(
            out,
            "  {}:{}:{} statement {}: {}  ({}ms)",
            s.file.display(),
            s.line,
            s.column,
            s.statement,
            s.text,
            s.duration_ms
        );
        if s.locks.is_empty() {
            let _ = writeln!(
                out,
                "    no locks on tables or indexes{}",
                s.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
        }
        for l in &s.locks {
            let blocks = match (l.blocks_reads, l.blocks_writes) {
                _ if l.new => "blocks nobody (new)".to_string(),
                (true, _) => "blocks reads and writes".to_string(),
                (false, true) => "blocks writes".to_string(),
                (false, false) => "blocks neither reads nor writes".to_string(),
            };
            let _ = writeln!(
                out,
                "    {} {} {}: {blocks}; held {}ms",
                l.kind, l.relation, l.mode, l.held_ms
            );
        }
    }
}
