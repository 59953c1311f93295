//! `kubemigrate sql repair`: fix one file's record after a person has looked.

use kubemigrate_sql::migrator::{self, RepairAction};

use crate::args::db::{ConnArgs, DirArgs, HistoryArgs, RunArgs};
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Reporter;

/// Change the history record of one file, under the migration lock.
///
/// Without a flag it clears the record of a failed file, so the next `sql migrate` runs
/// it again. For a no-transaction file (or one with its own BEGIN/COMMIT) that stopped
/// halfway, first undo or finish its statements by hand; a failed transactional file
/// left nothing behind. With --mark-applied the failed file is recorded as applied
/// instead; with --accept-checksum an applied file that was edited keeps its new
/// content; with --forget the record of a file that is gone is deleted.
#[derive(Debug, clap::Args)]
#[command(disable_version_flag = true)]
#[command(after_help = "Examples:
  kubemigrate sql repair --dir ./migrations --version 0007_index.sql
  kubemigrate sql repair --dir ./migrations --version 0007_index.sql --mark-applied
  kubemigrate sql repair --dir ./migrations --version 0003_users.sql --accept-checksum")]
pub struct Args {
    #[command(flatten)]
    dir: DirArgs,
    /// The file whose record to change.
    #[arg(long, value_name = "FILE")]
    version: String,
    /// Record the failed file as applied instead of clearing its record.
    #[arg(long, conflicts_with_all = ["accept_checksum", "forget"])]
    mark_applied: bool,
    /// Store the current checksum of an applied file that was edited.
    #[arg(long, conflicts_with = "forget")]
    accept_checksum: bool,
    /// Delete the record of a file that is no longer in the directory.
    #[arg(long)]
    forget: bool,
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
    let action = if args.mark_applied {
        RepairAction::MarkApplied
    } else if args.accept_checksum {
        RepairAction::AcceptChecksum
    } else if args.forget {
        RepairAction::Forget
    } else {
        RepairAction::ClearFailure
    };
    match migrator::repair(&conn, &source, &options, &args.version, action, &mut |e| {
        reporter.event(e)
    })
    .await
    {
        Ok(summary) => {
            reporter.line(&summary);
            reporter.finish_bare("sql repair", Exit::Ok, None);
            Ok(Exit::Ok)
        }
        Err(e) => {
            let f = Failure::from_engine(e);
            reporter.finish_bare("sql repair", f.exit, Some(&f));
            Ok(f.exit)
        }
    }
}
