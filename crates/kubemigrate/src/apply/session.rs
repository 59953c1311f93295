//! The run that `apply` (on this machine or on a cluster) and `demo` share: the
//! targets `--only` selects, the run id, the rendered objects, the targets run in
//! dependsOn order with their progress shown as they go, and one [`Outcome`].
//! Where the targets run is the caller's [`TargetRunner`].

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use kubemigrate_plan::LoadedPlan;
use kubemigrate_render::Rendered;

use super::{ApplyEvent, Reason, Status, TargetResult, TargetRunner, run_jobs};
use crate::args::plan;
use crate::exit::{Exit, Failure};
use crate::output::{Reporter, live};

/// A plan ready to run: its targets selected, its objects rendered.
pub struct Session {
    /// The plan, with the targets `--only` left out disabled.
    pub loaded: LoadedPlan,
    /// Its objects, with the run id in the Jobs' names.
    pub rendered: Rendered,
    /// The run id.
    pub run_id: String,
    /// The enabled targets `--only` left out.
    pub not_selected: Vec<String>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
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

impl Outcome {
    /// The failure an interrupted run ends with.
    pub fn interruption_failure(&self) -> Option<Failure> {
        self.interruption
            .as_ref()
            .map(|line| Failure::new(self.exit, anyhow!("{line}")))
    }
}

/// What a caller puts around the run of the targets (to forward signals, say).
pub type Supervise<'a> = Box<
    dyn FnOnce(
            Pin<Box<dyn Future<Output = Vec<TargetResult>> + 'a>>,
        ) -> Pin<Box<dyn Future<Output = Vec<TargetResult>> + 'a>>
        + 'a,
>;

impl Session {
    /// Selects the targets (`only`), picks the run id (`run_id`, else a random
    /// one) and renders the plan.
    ///
    /// # Errors
    /// Exit 2 for an `--only` that names no target or leaves none, or a plan that
    /// does not render.
    pub fn prepare(
        mut loaded: LoadedPlan,
        only: &[String],
        run_id: Option<&str>,
    ) -> Result<Session, Failure> {
        let not_selected = select_targets(&mut loaded, only)?;
        let run_id = plan::run_id_or_random(run_id)?;
        let (_, rendered) = plan::render(&loaded, run_id.clone(), None, false)?;
        Ok(Session {
            loaded,
            rendered,
            run_id,
            not_selected,
        })
    }

    /// The names of the targets that run, in plan order.
    pub fn targets(&self) -> Vec<String> {
        self.rendered
            .jobs
            .iter()
            .map(|j| j.target.clone())
            .collect()
    }

    /// Runs the targets with `runner`, in dependsOn order, showing each event as
    /// it comes; `supervise` wraps the run (pass `Box::new(|run| run)` for none).
    pub async fn run<'a>(
        &'a self,
        runner: &'a dyn TargetRunner,
        reporter: Reporter,
        supervise: Supervise<'a>,
    ) -> Outcome {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ApplyEvent>();
        let started = Instant::now();
        let (mut results, ()) = tokio::join!(
            supervise(Box::pin(run_jobs(&self.rendered.jobs, runner, tx))),
            live::print_events(rx, reporter, self.targets())
        );
        results.extend(self.not_selected.iter().map(TargetResult::not_selected));
        Outcome {
            exit: exit_of(&results),
            results,
            run_id: self.run_id.clone(),
            duration: started.elapsed(),
            interruption: None,
        }
    }
}

/// 0 when nothing failed; 10 when the cluster refused; 9 when waiting timed out;
/// else the first failed target's runner code when it is one of kubemigrate's
/// (2–6), else 8.
pub fn exit_of(results: &[TargetResult]) -> Exit {
    let Some(failed) = results.iter().find(|r| r.status == Status::Failed) else {
        return Exit::Ok;
    };
    if results
        .iter()
        .any(|r| matches!(r.reason, Some(Reason::Cluster { .. })))
    {
        return Exit::Cluster;
    }
    if matches!(failed.reason, Some(Reason::TimedOut { .. })) {
        return Exit::TimedOut;
    }
    // A command's or psql's own code means nothing to kubemigrate.
    failed.runner_exit().unwrap_or(Exit::TargetFailed)
}

/// Exit 2 with `message`.
pub fn usage(message: String) -> Failure {
    Failure::new(Exit::Usage, anyhow!(message))
}

/// Checks that every name given to a flag is a target of the plan.
///
/// # Errors
/// Exit 2 naming the first unknown target, with the closest name or the list.
pub fn check_targets<'a>(
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
pub fn select_targets(loaded: &mut LoadedPlan, only: &[String]) -> Result<Vec<String>, Failure> {
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
