//! `kubemigrate sql status`: what is applied, pending, drifted, missing, failed.

use kubemigrate_sql::events::FileStatus;
use kubemigrate_sql::migrator::{self, MigrateError};

use crate::args::db::{ConnArgs, DirArgs, HistoryArgs};
use crate::exit::{CommandResult, Exit, Failure};
use crate::reporter::Reporter;

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
  kubemigrate sql status -d ./migrations -o json | jq '.files[] | select(.status != \"applied\")'")]
pub struct Args {
    #[command(flatten)]
    dir: DirArgs,
    /// Count history rows whose file is gone as a problem (exit 4).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    history: HistoryArgs,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let source = args.dir.source()?;
    let conn = args.conn.options()?;
    let options = kubemigrate_sql::migrator::MigrateOptions {
        history: args.history.table(),
        strict: args.strict,
        ..Default::default()
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
            reporter.finish("sql status", None, f.exit, Some(&f));
            return Ok(f.exit);
        }
    };
    if !reporter.json() {
        let width = report
            .files
            .iter()
            .map(|f| f.version.len())
            .chain(report.missing.iter().map(|m| m.version.len()))
            .max()
            .unwrap_or(7)
            .max(7);
        reporter.line(&format!(
            "{:<10} {:<width$}  APPLIED AT",
            "STATUS", "VERSION"
        ));
        for f in &report.files {
            let mut status = f.status.as_str().to_string();
            if f.out_of_order {
                status.push('*');
            }
            let mut line = format!(
                "{status:<10} {:<width$}  {}",
                f.version,
                f.applied_at.as_deref().unwrap_or("-")
            );
            if let Some(e) = &f.error {
                line.push_str(&format!("  ({e})"));
            }
            reporter.line(line.trim_end());
        }
        for m in &report.missing {
            reporter.line(&format!(
                "{:<10} {:<width$}  {}",
                "missing", m.version, m.applied_at
            ));
        }
        if report.files.iter().any(|f| f.out_of_order) {
            reporter.line("* pending, but sorts before files already applied");
        }
        reporter.line(&format!(
            "{} applied, {} pending, {} drifted, {} failed, {} missing",
            report.count(FileStatus::Applied) + report.count(FileStatus::Baselined),
            report.count(FileStatus::Pending),
            report.count(FileStatus::Drifted),
            report.count(FileStatus::Failed),
            report.missing.len()
        ));
    }
    let problems = rec.problems(&source, &options);
    let (exit, failure) = if !problems.is_empty() {
        let f = Failure::from_engine(MigrateError::NeedsPerson(problems));
        (f.exit, Some(f))
    } else if report.count(FileStatus::Pending) > 0 {
        (Exit::Pending, None)
    } else {
        (Exit::Ok, None)
    };
    reporter.finish("sql status", Some(&report), exit, failure.as_ref());
    Ok(exit)
}
