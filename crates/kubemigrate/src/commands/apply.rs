//! `kubemigrate apply --local`: run a plan's targets on this machine, in dependsOn
//! order, with the Jobs' own commands and environment.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use kubemigrate_plan::{Credential, FieldPath, LoadedPlan, SslMode};
use kubemigrate_render::TargetJob;
use kubemigrate_sql::connect::{self, ConnectOptions};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::apply::children::{Children, signal_name};
use crate::apply::local::{LocalRunner, TargetPaths};
use crate::apply::report::{failure_details, print_events, print_json, summary_table};
use crate::apply::{ApplyEvent, Status, TargetResult, job_name, run_jobs};
use crate::commands::plan::{self, PlanArgs};
use crate::exit::{CommandResult, Exit, Failure};
use crate::reporter::{Reporter, duration};

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
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration, allow_hyphen_values = true, conflicts_with = "local")]
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

/// Lints the plan's localDir targets before anything is applied, or says that
/// `--skip-lint` skipped it.
///
/// # Errors
/// Exit 11 when a denied rule fired, 2 when a target's files cannot be read.
pub(crate) fn lint_before_apply(
    loaded: &LoadedPlan,
    skip: bool,
    reporter: Reporter,
) -> Result<(), Failure> {
    if skip {
        reporter.warn(
            "lint skipped (--skip-lint): the SQL files were not checked for unsafe statements",
        );
        return Ok(());
    }
    super::sql_lint::lint_plan(loaded)
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
    let d = super::parse_duration(s)?;
    if d.is_zero() || d > Duration::from_secs(86_400) {
        return Err("must be above zero and at most 24h".into());
    }
    Ok(d)
}

pub(crate) fn usage(message: String) -> Failure {
    Failure::new(Exit::Usage, anyhow!(message))
}

/// Checks that every name given to a flag is a target of the plan.
pub(crate) fn check_targets<'a>(
    loaded: &LoadedPlan,
    flag: &str,
    names: impl Iterator<Item = &'a String>,
) -> Result<(), Failure> {
    let known: Vec<&str> = loaded
        .plan
        .spec
        .targets
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    for name in names {
        if !known.contains(&name.as_str()) {
            let hint = kubemigrate_plan::did_you_mean(name, &known)
                .map(|s| format!("; did you mean {s:?}?"))
                .unwrap_or_else(|| format!("; the targets are: {}", known.join(", ")));
            return Err(usage(format!(
                "{flag}: the plan has no target {name:?}{hint}"
            )));
        }
    }
    Ok(())
}

/// Applies `--only`: disables the enabled targets it does not name and returns
/// their names (reported as not selected; they count as done for dependsOn).
///
/// # Errors
/// Exit 2 when `--only` names no target of the plan, or nothing is left to run.
pub(crate) fn select_targets(
    loaded: &mut LoadedPlan,
    only: &[String],
) -> Result<Vec<String>, Failure> {
    check_targets(loaded, "--only", only.iter())?;
    let mut not_selected = Vec::new();
    for t in &mut loaded.plan.spec.targets {
        if t.enabled && !only.is_empty() && !only.iter().any(|o| o == t.name.as_str()) {
            t.enabled = false;
            not_selected.push(t.name.to_string());
        }
    }
    if loaded.plan.spec.targets.iter().all(|t| !t.enabled) {
        return Err(usage("no enabled target to run".into()));
    }
    Ok(not_selected)
}

/// Replaces a target's database with the one a `--db` URL names.
fn override_database(loaded: &mut LoadedPlan, target: &str, url: &str) -> Result<(), Failure> {
    // ConnectOptions' errors never echo URL parts that could be the password.
    let o = ConnectOptions::resolve(Some(url), |_| None)
        .map_err(|e| usage(format!("--db {target}=…: {e}")))?;
    let Some(t) = loaded
        .plan
        .spec
        .targets
        .iter_mut()
        .find(|t| t.name.as_str() == target)
    else {
        return Ok(());
    };
    let db = &mut t.database;
    db.host = o.host.clone();
    db.port = o.port;
    db.name = o.dbname.clone();
    db.user = Credential::Literal(o.user.clone());
    db.password = Credential::Literal(
        o.password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default(),
    );
    // libpq's default (prefer) stays unset, so no PGSSLMODE reaches the Job's
    // containers: node-postgres would read `prefer` as "TLS required".
    db.ssl_mode = match o.ssl_mode {
        connect::SslMode::Prefer => None,
        connect::SslMode::Disable => Some(SslMode::Disable),
        connect::SslMode::Require => Some(SslMode::Require),
        connect::SslMode::VerifyCa => Some(SslMode::VerifyCa),
        connect::SslMode::VerifyFull => Some(SslMode::VerifyFull),
    };
    Ok(())
}

/// What a local run is given besides the plan.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// `--db TARGET=URL`.
    pub db: Vec<(String, String)>,
    /// `--local-dir TARGET=PATH`.
    pub local_dir: Vec<(String, String)>,
    /// `--only`.
    pub only: Vec<String>,
    /// `--run-id`.
    pub run_id: Option<String>,
}

/// The end of a local run.
pub struct LocalRun {
    /// One result per target, in plan order (not-selected targets last).
    pub results: Vec<TargetResult>,
    /// The run's exit code.
    pub exit: Exit,
    /// The run id.
    pub run_id: String,
    /// How long it took.
    pub duration: Duration,
    /// When SIGINT or SIGTERM stopped the run: the error line that says so.
    pub interruption: Option<String>,
}

impl LocalRun {
    /// Prints the interruption's error line, if the run was interrupted.
    pub fn report_interruption(&self, reporter: Reporter) {
        if let Some(line) = &self.interruption {
            reporter.error(&Failure::new(self.exit, anyhow!("{line}")));
        }
    }
}

/// How long an interrupted run waits for its processes after forwarding the signal,
/// before it sends SIGKILL (as `docker stop` waits 10 s).
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    if !args.local {
        #[cfg(feature = "cluster")]
        return super::apply_cluster::run(args, reporter).await;
        #[cfg(not(feature = "cluster"))]
        return Err(usage(
            "this build of kubemigrate (the static runner) cannot reach a cluster: use --local, \
             or the full kubemigrate binary"
                .into(),
        ));
    }
    let loaded = plan::load(&args.plan)?;
    lint_before_apply(&loaded, args.skip_lint, reporter)?;
    let db = args
        .db
        .iter()
        .map(|d| parse_db(d).map_err(|e| usage(format!("--db: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let options = LocalOptions {
        db,
        local_dir: args.local_dir,
        only: args.only,
        run_id: args.run_id,
    };
    let run = run_local(loaded.clone(), &options, reporter).await?;
    let p = &loaded.plan;
    if reporter.json() {
        let doc = serde_json::json!({
            "command": "apply",
            "ok": run.exit == Exit::Ok,
            "exit_code": run.exit.code(),
            "outcome": run.exit.name(),
            "plan": p.metadata.name.as_str(),
            "namespace": p.metadata.namespace.as_str(),
            "run_id": run.run_id,
            "local": true,
            "duration_ms": u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX),
            "targets": run.results,
        });
        let mut doc = doc;
        if let (Some(line), Some(map)) = (&run.interruption, doc.as_object_mut()) {
            map.insert("error".into(), line.clone().into());
        }
        run.report_interruption(reporter);
        print_json(&doc);
    } else {
        print_summary(&run, reporter);
        run.report_interruption(reporter);
    }
    Ok(run.exit)
}

/// The summary table, the failed targets' last lines, and a count.
pub fn print_summary(run: &LocalRun, reporter: Reporter) {
    let results = &run.results;
    reporter.line("");
    for line in summary_table(results) {
        reporter.line(&line);
    }
    for line in failure_details(results) {
        reporter.line(&line);
    }
    let failed = results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .count();
    let ok = results
        .iter()
        .filter(|r| r.status == Status::Succeeded)
        .count();
    let skipped = results
        .iter()
        .filter(|r| r.status == Status::Skipped)
        .count();
    let interrupted = results
        .iter()
        .filter(|r| r.status == Status::Interrupted)
        .count();
    let interrupted = if interrupted > 0 {
        format!(", {interrupted} interrupted")
    } else {
        String::new()
    };
    reporter.line(&format!(
        "{ok} succeeded, {failed} failed, {skipped} skipped{interrupted} in {}",
        duration(run.duration)
    ));
}

/// Runs `run` (the targets) to its end, unless SIGINT or SIGTERM comes first: then
/// the signal goes to every running container's process group, no other target
/// starts, and the run gets [`INTERRUPT_GRACE`] to end; a second signal, or the end
/// of the grace, sends SIGKILL. Returns the run's results.
async fn supervise(
    run: impl Future<Output = Vec<TargetResult>>,
    children: &Children,
    signals: &mut (Signal, Signal),
    jobs: &[TargetJob],
) -> Vec<TargetResult> {
    tokio::pin!(run);
    let (sigint, sigterm) = signals;
    let sig = tokio::select! {
        results = &mut run => return results,
        _ = sigint.recv() => libc::SIGINT,
        _ = sigterm.recv() => libc::SIGTERM,
    };
    let name = signal_name(sig);
    let running = children.interrupt(sig);
    // On stderr, whatever the output format: the run's own lines may be JSON.
    if running.is_empty() {
        eprintln!("{name}: stopping; no target is running, and none will start");
    } else {
        eprintln!(
            "{name}: stopping the running targets ({}): {name} sent to their processes; \
             SIGKILL in {}, or at a second signal",
            running.join(", "),
            humantime::format_duration(INTERRUPT_GRACE)
        );
    }
    let grace = tokio::time::sleep(INTERRUPT_GRACE);
    tokio::pin!(grace);
    tokio::select! {
        results = &mut run => return results,
        () = &mut grace => {}
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    let killed = children.signal_all(libc::SIGKILL);
    if !killed.is_empty() {
        eprintln!("SIGKILL: {} did not stop", killed.join(", "));
    }
    // Killed processes close their pipes at once; a process of another group that
    // holds one open must not keep this run from ending.
    match tokio::time::timeout(Duration::from_secs(5), &mut run).await {
        Ok(results) => results,
        Err(_) => jobs
            .iter()
            .map(|job| TargetResult {
                reason: Some(format!("stopped by {name}; its output did not end")),
                ..TargetResult::new(job.target.clone(), job_name(job), Status::Interrupted)
            })
            .collect(),
    }
}

/// The error line of an interrupted run: what was stopped, what never started.
fn interruption_line(sig: libc::c_int, results: &[TargetResult]) -> String {
    let stopped: Vec<String> = results
        .iter()
        .filter(|r| r.status == Status::Interrupted)
        .map(|r| match &r.container {
            Some(c) => format!("{} ({c})", r.target),
            None => r.target.clone(),
        })
        .collect();
    let unstarted: Vec<&str> = results
        .iter()
        .filter(|r| {
            r.status == Status::Skipped
                && r.reason
                    .as_deref()
                    .is_some_and(|why| why.starts_with("not started"))
        })
        .map(|r| r.target.as_str())
        .collect();
    let mut line = format!("interrupted by {}", signal_name(sig));
    if stopped.is_empty() {
        line.push_str(": no target was running");
    } else {
        line.push_str(&format!(
            ": stopped before it finished: {}",
            stopped.join(", ")
        ));
    }
    if !unstarted.is_empty() {
        line.push_str(&format!("; not started: {}", unstarted.join(", ")));
    }
    line.push_str(
        "; a file that ran in a transaction was rolled back, others are recorded as \
         interrupted: check with `kubemigrate sql status`",
    );
    line
}

/// Runs a plan's enabled targets on this machine, printing their progress.
///
/// # Errors
/// Exit 2 for a flag naming an unknown target, a target whose files are in an
/// image without `--local-dir`, or a plan that does not render; 1 when this
/// executable cannot be found. A target that fails is a result, not an error.
pub async fn run_local(
    mut loaded: LoadedPlan,
    args: &LocalOptions,
    reporter: Reporter,
) -> Result<LocalRun, Failure> {
    check_targets(&loaded, "--db", args.db.iter().map(|(t, _)| t))?;
    check_targets(
        &loaded,
        "--local-dir",
        args.local_dir.iter().map(|(t, _)| t),
    )?;
    for (target, url) in &args.db {
        override_database(&mut loaded, target, url)?;
    }
    let not_selected = select_targets(&mut loaded, &args.only)?;

    // Where each target's image paths are here.
    let local_dirs: BTreeMap<&str, PathBuf> = args
        .local_dir
        .iter()
        .map(|(t, p)| (t.as_str(), PathBuf::from(p)))
        .collect();
    let mut paths = BTreeMap::new();
    for (i, t) in loaded.plan.spec.targets.iter().enumerate() {
        if !t.enabled {
            continue;
        }
        let given = local_dirs.get(t.name.as_str());
        let p = match (&t.sql, &t.command) {
            (Some(sql), _) => {
                let local = match (&sql.local_dir, given) {
                    (_, Some(dir)) => dir.clone(),
                    (Some(dir), None) => loaded.resolve_path(dir),
                    (None, None) => {
                        let path = FieldPath::of(&["spec", "targets"]).index(i).key("sql");
                        return Err(plan::invalid(
                            &loaded.file,
                            &[loaded.error_at(
                                path,
                                format!(
                                    "the files of target {} are in the image {}; give their local copy with --local-dir {}=PATH",
                                    t.name,
                                    sql.image.as_deref().unwrap_or("?"),
                                    t.name
                                ),
                            )],
                        ));
                    }
                };
                if !local.is_dir() {
                    return Err(usage(format!(
                        "target {}: {} is not a directory",
                        t.name,
                        local.display()
                    )));
                }
                let image_dir = match &sql.local_dir {
                    Some(_) => "/migrations".to_string(),
                    None => sql.dir.clone().unwrap_or_else(|| "/migrations".into()),
                };
                TargetPaths {
                    mounts: vec![(image_dir, local)],
                    workdir: None,
                    runner_codes: t.runs_native_engine(),
                }
            }
            (None, _) => TargetPaths {
                mounts: Vec::new(),
                workdir: Some(given.cloned().unwrap_or_else(|| loaded.base_dir.clone())),
                runner_codes: false,
            },
        };
        paths.insert(t.name.to_string(), p);
    }

    let run_id = plan::run_id_or_random(args.run_id.as_deref())?;
    let (_, rendered) = plan::render(&loaded, run_id.clone(), None, false)?;
    let binary = std::env::current_exe().map_err(|e| {
        Failure::new(
            Exit::Internal,
            anyhow!("cannot find this executable to run the Jobs' kubemigrate commands: {e}"),
        )
    })?;
    // Installed before any process starts, so no signal is lost in between; from
    // here on SIGINT and SIGTERM stop the run's processes instead of this one.
    let install = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| {
            Failure::new(
                Exit::Internal,
                anyhow!("installing the {name} handler: {e}"),
            )
        })
    };
    let mut signals = (
        install(SignalKind::interrupt(), "SIGINT")?,
        install(SignalKind::terminate(), "SIGTERM")?,
    );
    let (children, watchdog_problem) = Children::with_watchdog(&binary);
    if let Some(problem) = watchdog_problem {
        reporter.warn(&problem);
    }
    let timeout = loaded.plan.spec.timeout.value();
    let runner = LocalRunner::new(&rendered, binary, paths, timeout, children);

    let p = &loaded.plan;
    let names: Vec<&str> = rendered.jobs.iter().map(|j| j.target.as_str()).collect();
    reporter.line(&format!(
        "applying plan {} on this machine (run {run_id}): {}",
        p.metadata.name,
        names.join(", ")
    ));
    let names: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ApplyEvent>();
    let started = std::time::Instant::now();
    let (mut results, ()) = tokio::join!(
        supervise(
            run_jobs(&rendered.jobs, &runner, tx),
            runner.children(),
            &mut signals,
            &rendered.jobs,
        ),
        print_events(rx, reporter, names)
    );
    // What a timed-out or interrupted target left behind in its group.
    runner.children().signal_all(libc::SIGKILL);
    for name in not_selected {
        results.push(TargetResult::not_selected(name));
    }
    let interrupted = runner.children().interrupted();
    let exit = match interrupted {
        Some(libc::SIGTERM) => Exit::Terminated,
        Some(_) => Exit::Interrupted,
        None => exit_of(&results),
    };
    Ok(LocalRun {
        exit,
        interruption: interrupted.map(|sig| interruption_line(sig, &results)),
        results,
        run_id,
        duration: started.elapsed(),
    })
}

/// 0 when nothing failed; else the first failed target's runner code when it is
/// one of kubemigrate's (2–6), else 8.
pub(crate) fn exit_of(results: &[TargetResult]) -> Exit {
    let Some(failed) = results.iter().find(|r| r.status == Status::Failed) else {
        return Exit::Ok;
    };
    if results.iter().any(|r| r.cluster_error) {
        return Exit::Cluster;
    }
    if failed.timed_out {
        return Exit::TimedOut;
    }
    // A command's or psql's own code means nothing to kubemigrate.
    match failed.exit_code.filter(|_| failed.meaning.is_some()) {
        Some(2) => Exit::Usage,
        Some(3) => Exit::SqlFailed,
        Some(4) => Exit::NeedsPerson,
        Some(5) => Exit::LockTimeout,
        Some(6) => Exit::Connection,
        _ => Exit::TargetFailed,
    }
}
