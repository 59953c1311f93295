//! `kubemigrate demo`: the example plan (the Terraform module's three targets) run
//! with `apply --local` on a throwaway PostgreSQL, twice.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, anyhow};
use kubemigrate_localpg::LocalPostgres;
use kubemigrate_plan::LoadedPlan;
use kubemigrate_sql::connect::ConnectOptions;

use crate::apply::session::Outcome;
use crate::args::plan::{self, PlanArgs};
use crate::commands::apply::local::{LocalOptions, run_local};
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Reporter;
use crate::output::apply::{DemoReport, DemoRun, TargetJson, summary};

/// Run the example plan on a throwaway PostgreSQL: kubemigrate's main job, with no
/// cluster.
///
/// Starts a PostgreSQL from this machine's binaries (as an unprivileged user when
/// run as root), creates the plan's databases (for the example: arc_saas with
/// schema tenant_management, postgres, components_v2), and runs the plan with
/// `apply --local`: the control plane's db-migrate project under the migration
/// lock, and the Supabase and Components-V2 SQL files with kubemigrate's engine.
/// Then it runs the plan again to show that nothing runs twice, and removes the
/// server. A target whose files live in an image (`sql.image`) or a `command`
/// target runs from the directory named after it next to the plan. Node packages
/// of such a directory are installed with `npm ci` when `node_modules` is missing.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate demo                      # from the repository's root
  kubemigrate demo --keep               # leave the databases up; Ctrl-C removes them
  kubemigrate demo -f my/plan.yaml")]
pub struct Args {
    /// The plan (default: the example, from the repository's root).
    #[arg(
        long = "filename",
        short = 'f',
        value_name = "FILE",
        default_value = "examples/ananta/plan.yaml"
    )]
    file: PathBuf,
    /// Keep PostgreSQL running at the end and print the databases' URLs; Ctrl-C
    /// stops and removes it.
    #[arg(long)]
    keep: bool,
}

fn internal(e: anyhow::Error) -> Failure {
    Failure::new(Exit::Internal, e)
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    if !args.file.exists() {
        return Err(Failure::new(
            Exit::Usage,
            anyhow!(
                "{} not found: run the demo from the repository's root, or give a plan with -f",
                args.file.display()
            ),
        ));
    }
    let loaded = plan::load(&PlanArgs {
        file: args.file.clone(),
    })?;
    let local_dirs = local_dirs(&loaded);
    for (target, dir) in &local_dirs {
        install_node_packages(target, dir, reporter)?;
    }

    reporter.line("starting a throwaway PostgreSQL…");
    let pg = tokio::task::spawn_blocking(LocalPostgres::start)
        .await
        .context("starting PostgreSQL")
        .map_err(internal)?
        .context(
            "starting a local PostgreSQL (install PostgreSQL's server: Debian's postgresql package)",
        )
        .map_err(|e| Failure::new(Exit::Connection, e))?;
    let mut db = Vec::new();
    for t in loaded.plan.spec.targets.iter().filter(|t| t.enabled) {
        create_database(&pg, &t.database.name, t.database.schema.as_deref()).await?;
        db.push((t.name.to_string(), pg.url(&t.database.name)));
    }
    let options = LocalOptions {
        db,
        local_dir: local_dirs
            .iter()
            .map(|(t, d)| (t.clone(), d.display().to_string()))
            .collect(),
        only: Vec::new(),
        run_id: None,
    };
    let mut runs: Vec<Outcome> = Vec::new();
    for round in [
        "first run: every migration applies",
        "second run: nothing runs twice",
    ] {
        reporter.line(&format!("\n== kubemigrate apply --local ({round})"));
        let run = run_local(loaded.clone(), &options, reporter).await?;
        summary(&run, reporter);
        if let Some(f) = run.interruption_failure() {
            reporter.error(&f);
        }
        let exit = run.exit;
        runs.push(run);
        if exit != Exit::Ok {
            break;
        }
    }
    let exit = runs.last().map_or(Exit::Internal, |r| r.exit);
    let report = DemoReport {
        runs: runs
            .iter()
            .map(|r| DemoRun {
                run_id: &r.run_id,
                exit_code: r.exit.code(),
                targets: r.results.iter().map(TargetJson::of).collect(),
            })
            .collect(),
    };
    reporter.finish("demo", Some(&report), exit, None);
    if args.keep {
        reporter.line("\nPostgreSQL keeps running (Ctrl-C stops and removes it):");
        for t in loaded.plan.spec.targets.iter().filter(|t| t.enabled) {
            // The URL with the password masked; the password is printed once, apart.
            let masked = ConnectOptions::resolve(Some(&pg.url(&t.database.name)), |_| None)
                .map(|o| o.masked_url())
                .unwrap_or_default();
            reporter.line(&format!("  {:<14} {masked}", t.name));
        }
        reporter.line(&format!("  password: {}", pg.password()));
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(pg);
    reporter.line("\ndone; the throwaway PostgreSQL is gone.");
    Ok(exit)
}

/// The directory named after each `sql.image` or `command` target next to the plan.
fn local_dirs(loaded: &LoadedPlan) -> Vec<(String, PathBuf)> {
    loaded
        .plan
        .spec
        .targets
        .iter()
        .filter(|t| {
            t.enabled && (t.command.is_some() || t.sql.as_ref().is_some_and(|s| s.image.is_some()))
        })
        .filter_map(|t| {
            let dir = loaded.resolve_path(Path::new(t.name.as_str()));
            dir.is_dir().then(|| (t.name.to_string(), dir))
        })
        .collect()
}

/// `npm ci` in a target's directory when it has a package-lock.json and no
/// node_modules.
fn install_node_packages(target: &str, dir: &Path, reporter: Reporter) -> Result<(), Failure> {
    if !dir.join("package-lock.json").is_file() || dir.join("node_modules").is_dir() {
        return Ok(());
    }
    reporter.line(&format!(
        "installing the Node packages of {target} (npm ci in {})…",
        dir.display()
    ));
    let out = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Failure::new(
                Exit::Usage,
                anyhow!(
                    "cannot run npm ({e}): target {target} runs a Node.js migration tool; \
                     install Node.js and npm (Debian: apt-get install nodejs npm)"
                ),
            )
        })?;
    if !out.status.success() {
        let mut f = Failure::new(
            Exit::Internal,
            anyhow!("npm ci failed in {} ({})", dir.display(), out.status),
        );
        f.detail = String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .take(10)
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(f);
    }
    Ok(())
}

/// Creates `name` (and `schema` in it) unless it exists. Identifiers cannot be bind
/// parameters: they are quoted as PostgreSQL quotes them.
async fn create_database(
    pg: &LocalPostgres,
    name: &str,
    schema: Option<&str>,
) -> Result<(), Failure> {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let connect = |db: &str| {
        let url = pg.url(db);
        async move {
            let o =
                ConnectOptions::resolve(Some(&url), |_| None).map_err(|e| internal(e.into()))?;
            o.connect()
                .await
                .map_err(|e| Failure::new(Exit::Connection, e))
        }
    };
    let admin = connect("postgres").await?;
    let exists = admin
        .client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(|e| internal(e.into()))?
        .is_some();
    if !exists {
        admin
            .client
            .batch_execute(&format!("CREATE DATABASE {}", quote(name)))
            .await
            .with_context(|| format!("creating the database {name}"))
            .map_err(internal)?;
    }
    if let Some(schema) = schema {
        let conn = connect(name).await?;
        conn.client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)))
            .await
            .with_context(|| format!("creating the schema {schema} in {name}"))
            .map_err(internal)?;
    }
    Ok(())
}
