//! `kubemigrate apply --local`: each Job's containers run on this machine as
//! processes, with the Jobs' own commands and environment; SIGINT and SIGTERM go
//! to every running container.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use crate::signals::Signals;
use anyhow::anyhow;
use kubemigrate_plan::{Credential, FieldPath, LoadedPlan, SslMode};
use kubemigrate_render::TargetJob;
use kubemigrate_sql::connect::ConnectOptions;

use super::Args;
use crate::apply::children::{Children, signal_name};
use crate::apply::local::{LocalRunner, TargetPaths};
use crate::apply::session::{Outcome, Session, check_targets, usage};
use crate::apply::{Reason, Status, TargetResult, job_name};
use crate::args::plan;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Reporter;
use crate::output::apply::{ApplyReport, TargetJson, millis};

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

/// How long an interrupted run waits for its processes after forwarding the signal,
/// before it sends SIGKILL (as `docker stop` waits 10 s).
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

/// Runs `apply --local`.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let loaded = plan::load(&args.plan)?;
    super::lint_before_apply(&loaded, args.skip_lint, reporter)?;
    let db = args
        .db
        .iter()
        .map(|d| super::parse_db(d).map_err(|e| usage(format!("--db: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let options = LocalOptions {
        db,
        local_dir: args.local_dir,
        only: args.only,
        run_id: args.run_id,
    };
    let outcome = run_local(loaded.clone(), &options, reporter).await?;
    let p = &loaded.plan;
    let report = ApplyReport {
        plan: p.metadata.name.as_str(),
        namespace: p.metadata.namespace.as_str(),
        run_id: &outcome.run_id,
        local: Some(true),
        wait: None,
        duration_ms: Some(millis(outcome.duration)),
        targets: outcome.results.iter().map(TargetJson::of).collect(),
        migration_jobs_summary: None,
        helpful_commands: None,
        outcome: Some(&outcome),
    };
    let failure = outcome.interruption_failure();
    reporter.finish("apply", Some(&report), outcome.exit, failure.as_ref());
    Ok(outcome.exit)
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
    db.ssl_mode = (o.ssl_mode != SslMode::Prefer).then_some(o.ssl_mode);
    Ok(())
}

/// Runs `run` (the targets) to its end, unless SIGINT or SIGTERM comes first: then
/// the signal goes to every running container's process group, no other target
/// starts, and the run gets [`INTERRUPT_GRACE`] to end; a second signal, or the end
/// of the grace, sends SIGKILL. Returns the run's results.
async fn supervise(
    run: impl Future<Output = Vec<TargetResult>>,
    children: &Children,
    signals: &mut Signals,
    jobs: &[TargetJob],
) -> Vec<TargetResult> {
    tokio::pin!(run);
    let sig = tokio::select! {
        results = &mut run => return results,
        caught = signals.recv() => caught.number,
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
            kubemigrate_plan::format_duration(INTERRUPT_GRACE)
        );
    }
    let grace = tokio::time::sleep(INTERRUPT_GRACE);
    tokio::pin!(grace);
    tokio::select! {
        results = &mut run => return results,
        () = &mut grace => {}
        _ = signals.recv() => {}
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
            .map(|job| {
                TargetResult::new(job.target.clone(), job_name(job), Status::Interrupted)
                    .with(Reason::OutputDidNotEnd { signal: name })
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
        .filter(|r| matches!(r.reason, Some(Reason::NotStarted { .. })))
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
) -> Result<Outcome, Failure> {
    check_targets(&loaded, "--db", args.db.iter().map(|(t, _)| t))?;
    check_targets(
        &loaded,
        "--local-dir",
        args.local_dir.iter().map(|(t, _)| t),
    )?;
    for (target, url) in &args.db {
        override_database(&mut loaded, target, url)?;
    }
    let session = Session::prepare(loaded, &args.only, args.run_id.as_deref())?;
    let loaded = &session.loaded;

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

    let binary = std::env::current_exe().map_err(|e| {
        Failure::new(
            Exit::Internal,
            anyhow!("cannot find this executable to run the Jobs' kubemigrate commands: {e}"),
        )
    })?;
    // Installed before any process starts, so no signal is lost in between; from
    // here on SIGINT and SIGTERM stop the run's processes instead of this one.
    let mut signals = Signals::new().map_err(|e| Failure::new(Exit::Internal, anyhow!(e)))?;
    let (children, watchdog_problem) = Children::with_watchdog(&binary);
    if let Some(problem) = watchdog_problem {
        reporter.warn(&problem);
    }
    let timeout = loaded.plan.spec.timeout.value();
    let runner = LocalRunner::new(&session.rendered, binary, paths, timeout, children);

    reporter.line(&format!(
        "applying plan {} on this machine (run {}): {}",
        loaded.plan.metadata.name,
        session.run_id,
        session.targets().join(", ")
    ));
    let jobs = &session.rendered.jobs;
    let children = runner.children();
    let mut outcome = session
        .run(
            &runner,
            reporter,
            Box::new(|run| Box::pin(supervise(run, children, &mut signals, jobs))),
        )
        .await;
    // What a timed-out or interrupted target left behind in its group.
    children.signal_all(libc::SIGKILL);
    if let Some(sig) = children.interrupted() {
        outcome.exit = if sig == libc::SIGTERM {
            Exit::Terminated
        } else {
            Exit::Interrupted
        };
        outcome.interruption = Some(interruption_line(sig, &outcome.results));
    }
    Ok(outcome)
}
