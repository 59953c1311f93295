//! Running a rendered plan: the order of the targets ([`run_jobs`]), how each
//! ended ([`TargetResult`], with a typed [`Reason`]), and the events the output
//! layer shows while it runs ([`ApplyEvent`]). Where a target runs is a
//! [`TargetRunner`]: this machine ([`local::LocalRunner`]) or a cluster
//! (`cluster::ClusterRunner`); [`session`] is the run around them that `apply` and
//! `demo` share.

pub mod children;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod local;
pub mod session;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
#[cfg(feature = "cluster")]
use kubemigrate_cluster::Diagnosis;
use kubemigrate_render::TargetJob;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::exit::Exit;

/// How a target ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every container exited 0.
    Succeeded,
    /// A container failed, or the target ran out of time.
    Failed,
    /// Not run: a target it depends on did not succeed.
    Skipped,
    /// Not run: `enabled: false` in the plan, or left out by `--only`.
    NotSelected,
    /// Stopped by SIGINT or SIGTERM (`apply --local`) before it finished.
    Interrupted,
}

impl Status {
    /// The word the summary prints.
    pub fn word(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::NotSelected => "not selected",
            Status::Interrupted => "interrupted",
        }
    }
}

/// Why a target did not succeed, or was not run: the fields that the output layer
/// turns into words (`output::human::reason`) and codes (`reason_code` in JSON).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    not(feature = "cluster"),
    expect(
        dead_code,
        reason = "JobFailed, TimedOut, JobDeleted and Cluster come from a cluster"
    )
)]
pub enum Reason {
    /// Left out by `--only`.
    NotSelected,
    /// A target it depends on did not succeed.
    DependencyFailed {
        /// That target.
        dependency: String,
    },
    /// Its dependsOn could never be met (a cycle, which validation refuses).
    NeverStarted,
    /// The run was stopped by a signal before this target started.
    NotStarted {
        /// `SIGINT` or `SIGTERM`.
        signal: &'static str,
    },
    /// The run was stopped by a signal before this container started.
    StoppedBefore {
        /// `SIGINT` or `SIGTERM`.
        signal: &'static str,
        /// The container.
        container: String,
    },
    /// The run was stopped by a signal while this container ran.
    StoppedWhile {
        /// `SIGINT` or `SIGTERM`.
        signal: &'static str,
        /// The container.
        container: String,
    },
    /// Stopped by a signal, and its output had not ended after SIGKILL.
    OutputDidNotEnd {
        /// `SIGINT` or `SIGTERM`.
        signal: &'static str,
    },
    /// A container could not run (no command, a program that cannot start, an
    /// environment that cannot be built).
    ContainerNotRun {
        /// What went wrong, naming the container.
        message: String,
    },
    /// A container exited non-zero.
    ContainerExited {
        /// The container.
        container: String,
        /// Its exit code.
        code: i32,
    },
    /// A container was killed by a signal.
    ContainerKilled {
        /// The container.
        container: String,
    },
    /// The rendered Job has no pod template.
    NoPodTemplate,
    /// A local run went past the plan's timeout.
    LocalDeadline {
        /// The plan's timeout.
        timeout: Duration,
        /// The time given on top for the processes to report.
        grace: Duration,
    },
    /// The Job failed: its condition.
    JobFailed {
        /// `BackoffLimitExceeded`, `DeadlineExceeded`, `PodFailurePolicy`…
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// Waiting for the Job took longer than `--timeout`; the Job goes on.
    TimedOut {
        /// How long kubemigrate waited.
        after: Duration,
        /// The Job.
        job: String,
        /// Its namespace.
        namespace: String,
    },
    /// A problem that cannot heal lasted longer than `--fail-fast-after`.
    #[cfg(feature = "cluster")]
    CannotHeal {
        /// The problem.
        problem: Diagnosis,
        /// How long it lasted.
        after: Duration,
    },
    /// The Job was deleted while kubemigrate waited for it.
    JobDeleted {
        /// The Job.
        job: String,
        /// Its namespace.
        namespace: String,
    },
    /// The Kubernetes API refused or could not be reached.
    Cluster {
        /// The API server's message.
        message: String,
    },
}

impl Reason {
    /// A stable name for programs: `dependency_failed`, `job_failed`, ….
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NotSelected => "not_selected",
            Reason::DependencyFailed { .. } => "dependency_failed",
            Reason::NeverStarted => "never_started",
            Reason::NotStarted { .. } => "not_started",
            Reason::StoppedBefore { .. } => "stopped_before_start",
            Reason::StoppedWhile { .. } => "stopped",
            Reason::OutputDidNotEnd { .. } => "output_did_not_end",
            Reason::ContainerNotRun { .. } => "container_not_run",
            Reason::ContainerExited { .. } => "container_exited",
            Reason::ContainerKilled { .. } => "container_killed",
            Reason::NoPodTemplate => "no_pod_template",
            Reason::LocalDeadline { .. } => "deadline_exceeded",
            Reason::JobFailed { .. } => "job_failed",
            Reason::TimedOut { .. } => "timed_out",
            #[cfg(feature = "cluster")]
            Reason::CannotHeal { .. } => "cannot_heal",
            Reason::JobDeleted { .. } => "job_deleted",
            Reason::Cluster { .. } => "cluster_error",
        }
    }
}

/// What happened to one target.
#[derive(Debug, Clone)]
pub struct TargetResult {
    /// The target's name.
    pub target: String,
    /// Its Job's name (what runs it in a cluster).
    pub job: String,
    /// How it ended.
    pub status: Status,
    /// Why, when it did not succeed.
    pub reason: Option<Reason>,
    /// The failed container.
    pub container: Option<String>,
    /// The failed container's exit code.
    pub exit_code: Option<i32>,
    /// What that code means, when the container is kubemigrate's runner (a
    /// command's or psql's own codes have no meaning here).
    pub meaning: Option<&'static str>,
    /// How long it ran.
    pub duration: Duration,
    /// The last lines the failed container printed.
    pub last_lines: Vec<String>,
    /// Where its containers' logs were saved (cluster runs).
    pub log_dir: Option<String>,
}

impl TargetResult {
    /// A result with nothing to say beyond its status.
    pub fn new(target: impl Into<String>, job: impl Into<String>, status: Status) -> Self {
        TargetResult {
            target: target.into(),
            job: job.into(),
            status,
            reason: None,
            container: None,
            exit_code: None,
            meaning: None,
            duration: Duration::ZERO,
            last_lines: Vec::new(),
            log_dir: None,
        }
    }

    /// A result that did not succeed, and why.
    pub fn with(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// A target left out by `--only`.
    pub fn not_selected(target: impl Into<String>) -> Self {
        TargetResult::new(target, "", Status::NotSelected).with(Reason::NotSelected)
    }

    /// Its failed container's exit code as one of the runner's codes (2–6), when
    /// it is kubemigrate's runner.
    pub fn runner_exit(&self) -> Option<Exit> {
        self.exit_code
            .filter(|_| self.meaning.is_some())
            .and_then(Exit::of_runner)
    }
}

/// Something wrong that a person should hear about while a target runs.
#[derive(Debug, Clone)]
#[cfg_attr(
    not(feature = "cluster"),
    expect(
        dead_code,
        reason = "StillWaiting and LogsNotSaved come from a cluster's Jobs"
    )
)]
pub enum Problem {
    /// A problem seen in the cluster: an image that cannot be pulled, a pod that
    /// cannot be scheduled, pods the controller cannot create…
    #[cfg(feature = "cluster")]
    Cluster(Diagnosis),
    /// `wait-for-postgres` is still waiting; its last line.
    StillWaiting {
        /// The last line it printed.
        last_line: String,
    },
    /// The logs cannot be saved; the run goes on.
    LogsNotSaved {
        /// Where they were to go.
        dir: String,
        /// Why not.
        error: String,
    },
}

/// What the executor and runners report while a plan runs.
#[derive(Debug, Clone)]
pub enum ApplyEvent {
    /// A target started.
    Started {
        /// The target.
        target: String,
    },
    /// A container started.
    Container {
        /// The target.
        target: String,
        /// The container.
        container: String,
    },
    /// A line a container printed.
    Log {
        /// The target.
        target: String,
        /// The container.
        container: String,
        /// The line, without its newline.
        line: String,
    },
    /// Something wrong that a person should hear about now (an image that cannot
    /// be pulled, a pod that cannot be scheduled…); the target may still succeed.
    #[cfg_attr(
        not(feature = "cluster"),
        expect(dead_code, reason = "only cluster runs see problems")
    )]
    Problem {
        /// The target.
        target: String,
        /// What is wrong.
        problem: Problem,
    },
    /// A target ended (also for skipped targets).
    Finished(TargetResult),
}

/// Runs one target's Job somewhere and says how it ended.
pub trait TargetRunner {
    /// Runs `job`, reporting its containers and log lines on `events`.
    fn run<'a>(
        &'a self,
        job: &'a TargetJob,
        events: UnboundedSender<ApplyEvent>,
    ) -> Pin<Box<dyn Future<Output = TargetResult> + 'a>>;
}

/// Runs the Jobs in dependsOn order: a target starts when every target it depends
/// on has succeeded (targets that are not selected count as done), independent
/// targets run at the same time, and a target whose dependency did not succeed is
/// skipped. Returns one result per Job, in plan order.
pub async fn run_jobs(
    jobs: &[TargetJob],
    runner: &dyn TargetRunner,
    events: UnboundedSender<ApplyEvent>,
) -> Vec<TargetResult> {
    let in_run: BTreeMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.target.as_str(), i))
        .collect();
    let mut results: Vec<Option<TargetResult>> = vec![None; jobs.len()];
    let mut started = vec![false; jobs.len()];
    let mut running = FuturesUnordered::new();
    loop {
        // Start or skip what can be decided now, in plan order.
        let mut decided = false;
        for (i, job) in jobs.iter().enumerate() {
            if started[i] {
                continue;
            }
            let deps: Vec<usize> = job
                .depends_on
                .iter()
                .filter_map(|d| in_run.get(d.as_str()).copied())
                .collect();
            if let Some(&bad) = deps.iter().find(|&&d| {
                results[d]
                    .as_ref()
                    .is_some_and(|r| r.status != Status::Succeeded)
            }) {
                started[i] = true;
                let dep = &jobs[bad].target;
                let result = TargetResult::new(job.target.clone(), job_name(job), Status::Skipped)
                    .with(Reason::DependencyFailed {
                        dependency: dep.clone(),
                    });
                let _ = events.send(ApplyEvent::Finished(result.clone()));
                results[i] = Some(result);
                decided = true;
                continue;
            }
            if deps.iter().all(|&d| results[d].is_some()) {
                started[i] = true;
                let _ = events.send(ApplyEvent::Started {
                    target: job.target.clone(),
                });
                let tx = events.clone();
                running.push(async move {
                    let start = Instant::now();
                    let mut r = runner.run(job, tx).await;
                    r.duration = start.elapsed();
                    (i, r)
                });
            }
        }
        // A skip decided in this pass can decide (skip) a target listed before it:
        // pass again before waiting.
        if decided {
            continue;
        }
        match running.next().await {
            Some((i, result)) => {
                let _ = events.send(ApplyEvent::Finished(result.clone()));
                results[i] = Some(result);
            }
            None => break,
        }
    }
    // Every target is decided unless dependsOn had a cycle, which the plan's
    // validation refuses; say so rather than drop it.
    results
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| {
            r.unwrap_or_else(|| {
                TargetResult::new(job.target.clone(), job_name(job), Status::Failed)
                    .with(Reason::NeverStarted)
            })
        })
        .collect()
}

/// The name of a rendered Job.
pub fn job_name(job: &TargetJob) -> String {
    job.job.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Succeeds or fails by target name, and records the order of starts.
    struct Scripted {
        fail: &'static [&'static str],
        order: Mutex<Vec<String>>,
    }

    impl TargetRunner for Scripted {
        fn run<'a>(
            &'a self,
            job: &'a TargetJob,
            _events: UnboundedSender<ApplyEvent>,
        ) -> Pin<Box<dyn Future<Output = TargetResult> + 'a>> {
            Box::pin(async move {
                self.order.lock().unwrap().push(job.target.clone());
                tokio::task::yield_now().await;
                let failed = self.fail.contains(&job.target.as_str());
                let status = if failed {
                    Status::Failed
                } else {
                    Status::Succeeded
                };
                TargetResult::new(job.target.clone(), job_name(job), status)
            })
        }
    }

    fn job(name: &str, deps: &[&str]) -> TargetJob {
        TargetJob {
            target: name.into(),
            depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
            job: Default::default(),
        }
    }

    fn run(
        jobs: &[TargetJob],
        fail: &'static [&'static str],
    ) -> (Vec<(String, Status)>, Vec<String>) {
        let runner = Scripted {
            fail,
            order: Mutex::new(Vec::new()),
        };
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let results = rt.block_on(run_jobs(jobs, &runner, tx));
        (
            results.into_iter().map(|r| (r.target, r.status)).collect(),
            runner.order.into_inner().unwrap(),
        )
    }

    #[test]
    fn dependents_wait_and_are_skipped_after_a_failure() {
        let jobs = [
            job("c", &["a"]),
            job("a", &[]),
            job("b", &[]),
            job("d", &["c"]),
            job("e", &["b", "gone"]),
        ];
        let (results, order) = run(&jobs, &["a"]);
        assert_eq!(
            results,
            [
                ("c".into(), Status::Skipped),
                ("a".into(), Status::Failed),
                ("b".into(), Status::Succeeded),
                ("d".into(), Status::Skipped),
                ("e".into(), Status::Succeeded),
            ]
        );
        // c and d never ran; a and b started together, e after b ("gone" is not in
        // the run: a disabled target counts as done).
        assert_eq!(order, ["a", "b", "e"]);
        let (results, order) = run(&jobs, &[]);
        assert!(results.iter().all(|(_, s)| *s == Status::Succeeded));
        // a and b have no dependencies and start first; every other target starts
        // after what it depends on.
        let at = |t: &str| order.iter().position(|o| o == t).unwrap();
        assert_eq!(order.len(), 5);
        assert!(at("a") < 2 && at("b") < 2, "{order:?}");
        assert!(
            at("a") < at("c") && at("c") < at("d") && at("b") < at("e"),
            "{order:?}"
        );
    }
}
