//! `kubemigrate apply`: run a plan's targets in dependsOn order, on a cluster
//! ([`cluster`]) or on this machine with `--local` ([`local`]); the run around
//! them is `crate::apply::session`'s.

#[cfg(feature = "cluster")]
pub mod cluster;
pub mod local;

use std::path::PathBuf;
use std::time::Duration;

use crate::args::plan::{self, PlanArgs};
use crate::exit::CommandResult;
use crate::output::Reporter;

/// Run a plan: each enabled target's Job, in dependsOn order.
///
/// On a cluster (connecting as kubectl does: KUBECONFIG, the current context or
/// --context, else the in-cluster service account), kubemigrate server-side applies
/// the ConfigMaps and the Secret, creates each Job when the targets it depends on
/// have succeeded, and watches it and its pods: their logs stream live (and are
/// saved under --logs-dir), and problems (image pull, scheduling, a missing Secret,
/// OOM, a database that never comes up) are reported as they happen. A problem
/// that cannot heal fails the target after --fail-fast-after.
///
/// With --local each Job's containers run on this machine as processes: `wait-for-postgres` (kubemigrate
/// wait-for-db), then `run-migrations` (kubemigrate's engine over the target's
/// files, or its command under `exec --lock`), with the environment the Job gives
/// them (DB_*, and PG*/DATABASE_URL from exec). Independent targets run at the same
/// time; a target whose dependency failed is skipped. Each target has the plan's
/// timeout (plus 5 s to report); a failed target is not retried.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate apply -f plan.yaml --local
  kubemigrate apply -f plan.yaml --local --db orders=postgres://app@localhost:5432/orders
  kubemigrate apply -f examples/ananta/plan.yaml --local \\
      --local-dir supabase=examples/ananta/supabase \\
      --local-dir control-plane=examples/ananta/control-plane
  kubemigrate apply -f plan.yaml --local --only orders -o json
  kubemigrate apply -f plan.yaml --context staging --logs-dir ./logs
  kubemigrate apply -f plan.yaml --no-wait -o json | jq .helpful_commands

Exit codes: 0 every selected target succeeded; else the runner's code of the first
failed target (2 bad input, 3 SQL failed, 4 needs a person, 5 lock timeout, 6 cannot
connect), or 8 when it has none of these (its command failed, the Job failed
otherwise); 9 waiting timed out (--timeout); 10 the cluster refused or could not be
reached (a missing RBAC permission is named); 11 a denied lint rule fired in a
localDir target's files (nothing was applied; --skip-lint skips the lint); 130
interrupted.")]
pub struct Args {
    #[command(flatten)]
    pub(crate) plan: PlanArgs,
    /// Run on this machine instead of a cluster.
    #[arg(long)]
    pub(crate) local: bool,
    /// Do not lint the SQL files of localDir targets before applying (a denied rule
    /// otherwise stops the run, exit 11, before anything is applied).
    #[arg(long)]
    pub(crate) skip_lint: bool,
    /// The kubeconfig context (default: the current one).
    #[arg(long, value_name = "NAME", conflicts_with = "local")]
    pub(crate) context: Option<String>,
    /// Create the objects in this namespace instead of the plan's.
    #[arg(long, short = 'n', value_name = "NAME")]
    pub(crate) namespace: Option<String>,
    /// Create everything and return at once with the Jobs' names and kubectl
    /// commands (dependsOn is not waited for).
    #[arg(long, conflicts_with = "local")]
    pub(crate) no_wait: bool,
    /// How long to wait for each target (default: the plan's timeout plus 1m).
    #[arg(long, value_name = "DURATION", value_parser = crate::args::db::parse_duration, allow_hyphen_values = true, conflicts_with = "local")]
    pub(crate) timeout: Option<Duration>,
    /// Where to save every container's log (default ./kubemigrate-logs/<run id>/).
    #[arg(long, value_name = "DIR", conflicts_with = "local")]
    pub(crate) logs_dir: Option<PathBuf>,
    /// On Ctrl-C, delete the Jobs created by this run (propagation Background).
    #[arg(long, conflicts_with = "local")]
    pub(crate) delete_on_interrupt: bool,
    /// How long a problem that cannot heal (image not found, missing Secret) may
    /// last before its target fails.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_interval, allow_hyphen_values = true)]
    pub(crate) fail_fast_after: Duration,
    /// How often to repeat that `wait-for-postgres` is still waiting.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_interval, allow_hyphen_values = true, hide = true)]
    pub(crate) waiting_report_every: Duration,
    /// Connect target TARGET to URL instead of its plan's database (host, port,
    /// database, user, password, sslmode from the URL). Repeatable.
    // Parsed in `run`: clap would repeat a bad value, which may hold a password.
    #[arg(long = "db", value_name = "TARGET=URL", requires = "local")]
    pub(crate) db: Vec<String>,
    /// Where a target's files are on this machine: for an `sql.image` target, the
    /// directory that holds what the image has in `dir`; for a `command` target,
    /// the directory to run the command in (default: the plan's directory).
    /// Repeatable.
    #[arg(long = "local-dir", value_name = "TARGET=PATH", value_parser = parse_pair, requires = "local")]
    pub(crate) local_dir: Vec<(String, String)>,
    /// Run only these targets (comma-separated); the others count as done for
    /// dependsOn.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub(crate) only: Vec<String>,
    /// The run id, as `render --run-id` (names the Jobs in reports). Default: random.
    #[arg(long, value_name = "ID", value_parser = plan::parse_run_id)]
    pub(crate) run_id: Option<String>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not TARGET=VALUE")),
    }
}

/// `TARGET=URL` for `--db`. The URL may hold a password: no message repeats it.
fn parse_db(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((t, url))
            if !url.is_empty() && kubemigrate_plan::values::check_dns_label(t).is_ok() =>
        {
            Ok((t.to_string(), url.to_string()))
        }
        _ => Err(
            "expected TARGET=URL, e.g. orders=postgres://app@localhost/orders \
                  (the value is not repeated: it may hold a password)"
                .into(),
        ),
    }
}

/// A duration above zero and at most a day (hidden tuning flags).
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = crate::args::db::parse_duration(s)?;
    if d.is_zero() || d > Duration::from_secs(86_400) {
        return Err("must be above zero and at most 24h".into());
    }
    Ok(d)
}

/// Lints the plan's localDir targets before anything is applied, or says that
/// `--skip-lint` skipped it.
///
/// # Errors
/// Exit 11 when a denied rule fired, 2 when a target's files cannot be read.
pub(crate) fn lint_before_apply(
    loaded: &kubemigrate_plan::LoadedPlan,
    skip: bool,
    reporter: Reporter,
) -> Result<(), crate::exit::Failure> {
    if skip {
        reporter.warn(
            "lint skipped (--skip-lint): the SQL files were not checked for unsafe statements",
        );
        return Ok(());
    }
    crate::commands::sql::lint::lint_plan(loaded)
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    if args.local {
        return local::run(args, reporter).await;
    }
    #[cfg(feature = "cluster")]
    return cluster::run(args, reporter).await;
    #[cfg(not(feature = "cluster"))]
    return Err(crate::apply::session::usage(
        "this build of kubemigrate (the static runner) cannot reach a cluster: use --local, \
         or the full kubemigrate binary"
            .into(),
    ));
}
