//! `kubemigrate demo`: the engine end to end on a throwaway local PostgreSQL.

use anyhow::Context as _;
use kubemigrate_localpg::LocalPostgres;
use kubemigrate_sql::connect::ConnectOptions;
use kubemigrate_sql::migrator;
use kubemigrate_sql::source::Source;

use crate::exit::{CommandResult, Exit, Failure};
use crate::reporter::Reporter;

/// The example migrations, built into the binary.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "0001_create_users.sql",
        include_str!("../../../../examples/sql/0001_create_users.sql"),
    ),
    (
        "0002_orders.sql",
        include_str!("../../../../examples/sql/0002_orders.sql"),
    ),
    (
        "0003_orders_user_index.sql",
        include_str!("../../../../examples/sql/0003_orders_user_index.sql"),
    ),
    (
        "0004_seed_users.sql",
        include_str!("../../../../examples/sql/0004_seed_users.sql"),
    ),
];

/// Run the example migrations on a throwaway local PostgreSQL.
///
/// Runs `sql migrate`, then `sql migrate` again (nothing left to do), then `sql status`.
/// Needs PostgreSQL's server binaries (initdb, postgres) installed; the server and its
/// data are removed at the end.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  kubemigrate demo
  kubemigrate demo --dir ./migrations   # your own files instead of the examples")]
pub struct Args {
    /// Run these migrations instead of the built-in examples.
    #[arg(long, short = 'd', value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let internal = |e: anyhow::Error| Failure::new(Exit::Internal, e);
    let scratch = tempfile::tempdir()
        .context("creating a temporary directory")
        .map_err(internal)?;
    let dir = match args.dir {
        Some(d) => d,
        None => {
            for (name, body) in EXAMPLES {
                std::fs::write(scratch.path().join(name), body)
                    .with_context(|| format!("writing {name}"))
                    .map_err(internal)?;
            }
            scratch.path().to_path_buf()
        }
    };
    let source =
        Source::read_dir(&dir, &Default::default()).map_err(|e| Failure::new(Exit::Usage, e))?;
    reporter.line("starting a throwaway PostgreSQL…");
    let pg = tokio::task::spawn_blocking(LocalPostgres::start)
        .await
        .context("starting PostgreSQL")
        .map_err(internal)?
        .context(
            "starting a local PostgreSQL (install the postgresql package if initdb is missing)",
        )
        .map_err(|e| Failure::new(Exit::Connection, e))?;
    let url = pg.url("postgres");
    let conn = ConnectOptions::resolve(Some(&url), |_| None).map_err(|e| internal(e.into()))?;
    let options = migrator::MigrateOptions {
        applied_by: "kubemigrate-demo".into(),
        lock_timeout: std::time::Duration::from_secs(60),
        ..Default::default()
    };
    for round in ["first run", "second run: everything is applied already"] {
        reporter.line(&format!(
            "\n== sql migrate --dir {} ({round})",
            dir.display()
        ));
        let outcome = migrator::migrate(&conn, &source, &options, &mut |e| reporter.event(e)).await;
        reporter.summary(&outcome.report);
        if let Some(e) = outcome.error {
            return Err(Failure::from_engine(e));
        }
    }
    reporter.line("\n== sql status");
    let (report, _) = migrator::status(&conn, &source, &options.history, &mut |_| {})
        .await
        .map_err(Failure::from_engine)?;
    for f in &report.files {
        reporter.line(&format!("{:<10} {}", f.status.as_str(), f.version));
    }
    drop(pg);
    reporter.line("\ndone; the throwaway PostgreSQL is gone. Next: kubemigrate sql migrate --help");
    Ok(Exit::Ok)
}
