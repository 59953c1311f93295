//! `kubemigrate sql adopt --from TOOL`: continue where another migration tool stopped.

use kubemigrate_sql::migrator::{self, Tool};
use kubemigrate_sql::source::Layout;

use crate::args::db::{ConnArgs, DirArgs, HistoryArgs, RunArgs};
use crate::exit::{CommandResult, Failure};
use crate::output::Reporter;
use crate::output::sql::SqlRun;

/// Record the files another tool applied, so kubemigrate goes on where it stopped.
///
/// Reads TOOL's history table (Flyway's flyway_schema_history, golang-migrate's and
/// dbmate's schema_migrations, goose's goose_db_version, sqlx's _sqlx_migrations,
/// diesel's __diesel_schema_migrations, postgres-migrations' migrations, Supabase's
/// supabase_migrations.schema_migrations) and records each file of --dir that the
/// tool applied as applied in kubemigrate's history (status "baselined"), with
/// today's checksum, under the migration lock. Nothing runs. A dirty or failed
/// state in the tool's history is refused with the tool's own words (exit 4). The
/// directory is read with TOOL's layout unless --layout says otherwise. Repeatable
/// files (Flyway's R__) are not recorded: they run once more under kubemigrate.
/// The tool's table is left as it is.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate sql adopt --from dbmate --dir ./db/migrations --dry-run
  kubemigrate sql adopt --from golang-migrate --dir ./migrations
  kubemigrate sql adopt --from flyway --dir ./sql --tool-table app.flyway_schema_history
  kubemigrate sql migrate --layout dbmate --dir ./db/migrations   # then, from now on")]
pub struct Args {
    /// The tool whose history to read: flyway, golang-migrate, dbmate, goose, sqlx,
    /// diesel, postgres-migrations or supabase.
    #[arg(long, value_name = "TOOL", value_parser = Tool::parse)]
    from: Tool,
    /// The tool's history table, when not its default (schema-qualified or found
    /// on the search path), e.g. `app.flyway_schema_history`.
    #[arg(long, value_name = "TABLE")]
    tool_table: Option<String>,
    /// Show what would be recorded; change nothing (no lock, no history table).
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    history: HistoryArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Runs the command.
pub async fn run(mut args: Args, reporter: Reporter) -> CommandResult {
    if args.dir.layout == Layout::Native {
        args.dir.layout = args.from.layout();
    }
    let (source, conn, mut options) =
        super::one_database(&args.dir, &args.conn, &args.history, &args.run)?;
    for w in &source.warnings {
        reporter.warn(&w.0);
    }
    options.dry_run = args.dry_run;
    let outcome = migrator::adopt(
        &conn,
        &source,
        &options,
        args.from,
        args.tool_table.as_deref(),
        &mut |e| reporter.event(e),
    )
    .await;
    let (exit, failure) = Failure::of_run(outcome.error);
    let run = SqlRun {
        report: &outcome.report,
        summary: failure.is_none(),
    };
    reporter.finish("sql adopt", Some(&run), exit, failure.as_ref());
    Ok(exit)
}
