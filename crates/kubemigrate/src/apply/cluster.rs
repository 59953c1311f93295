//! Runs a target's Job on a cluster: creates it, follows it with
//! `kubemigrate-cluster`, saves every container's log under the logs directory, and
//! turns the outcome into a [`TargetResult`].

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use kubemigrate_cluster::{Cluster, ClusterEvent, FollowOptions, JobOutcome};
use kubemigrate_render::TargetJob;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::{ApplyEvent, Problem, Reason, Status, TargetResult, TargetRunner, job_name};
use crate::exit::Exit;
use kubemigrate_contract::k8s;

/// Runs Jobs on a cluster.
pub struct ClusterRunner {
    /// The cluster.
    pub cluster: Cluster,
    /// How to follow each Job.
    pub follow: FollowOptions,
    /// How long to wait for each target before giving up on it (the Job goes on).
    pub timeout: Duration,
    /// Where each target's logs go: `<dir>/<target>/<pod>.<container>.log`.
    pub logs_dir: PathBuf,
    /// Targets whose `run-migrations` exit codes are kubemigrate's (native SQL).
    pub runner_codes: BTreeMap<String, bool>,
}

impl ClusterRunner {
    async fn run_job(&self, job: &TargetJob, events: UnboundedSender<ApplyEvent>) -> TargetResult {
        let name = job_name(job);
        let ns = job
            .job
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut result = TargetResult {
            log_dir: Some(self.logs_dir.join(&job.target).display().to_string()),
            ..TargetResult::new(job.target.clone(), name.clone(), Status::Failed)
        };
        if let Err(e) = self.cluster.create_job(&job.job).await {
            return result.with(Reason::Cluster {
                message: e.to_string(),
            });
        }
        let (tx, mut rx) = unbounded_channel::<ClusterEvent>();
        let target = job.target.clone();
        let dir = self.logs_dir.join(&job.target);
        let forward = async {
            let mut files: BTreeMap<(String, String), tokio::fs::File> = BTreeMap::new();
            // A log that cannot be saved is said once; the run goes on.
            let mut unsaved = false;
            let say_unsaved = |e: std::io::Error, unsaved: &mut bool| {
                if !std::mem::replace(unsaved, true) {
                    let _ = events.send(ApplyEvent::Problem {
                        target: target.clone(),
                        problem: Problem::LogsNotSaved {
                            dir: dir.display().to_string(),
                            error: e.to_string(),
                        },
                    });
                }
            };
            if let Err(e) = tokio::fs::create_dir_all(&dir).await {
                say_unsaved(e, &mut unsaved);
            }
            while let Some(ev) = rx.recv().await {
                match ev {
                    ClusterEvent::ContainerStarted { container, .. } => {
                        let _ = events.send(ApplyEvent::Container {
                            target: target.clone(),
                            container,
                        });
                    }
                    ClusterEvent::Log {
                        pod,
                        container,
                        line,
                    } => {
                        let key = (pod.clone(), container.clone());
                        if !files.contains_key(&key) && !unsaved {
                            let path = dir.join(format!("{pod}.{container}.log"));
                            match tokio::fs::File::create(&path).await {
                                Ok(f) => {
                                    files.insert(key.clone(), f);
                                }
                                Err(e) => say_unsaved(e, &mut unsaved),
                            }
                        }
                        if let Some(f) = files.get_mut(&key)
                            && let Err(e) = f.write_all(format!("{line}\n").as_bytes()).await
                        {
                            say_unsaved(e, &mut unsaved);
                        }
                        let _ = events.send(ApplyEvent::Log {
                            target: target.clone(),
                            container,
                            line,
                        });
                    }
                    ClusterEvent::Problem { diagnosis, .. } => {
                        let _ = events.send(ApplyEvent::Problem {
                            target: target.clone(),
                            problem: Problem::Cluster(diagnosis),
                        });
                    }
                    ClusterEvent::StillWaitingForDatabase { last_line } => {
                        let _ = events.send(ApplyEvent::Problem {
                            target: target.clone(),
                            problem: Problem::StillWaiting { last_line },
                        });
                    }
                }
            }
            for f in files.values_mut() {
                let _ = f.flush().await;
            }
        };
        let follow = tokio::time::timeout(
            self.timeout,
            self.cluster.follow_job(&ns, &name, &self.follow, tx),
        );
        let (outcome, ()) = tokio::join!(follow, forward);
        match outcome {
            Err(_) => {
                result.reason = Some(Reason::TimedOut {
                    after: self.timeout,
                    job: name,
                    namespace: ns,
                });
            }
            Ok(JobOutcome::Complete) => result.status = Status::Succeeded,
            Ok(JobOutcome::Failed {
                reason,
                message,
                container,
                exit_code,
                last_lines,
            }) => {
                let ours = match container.as_deref() {
                    Some(k8s::RUN_MIGRATIONS) => {
                        self.runner_codes.get(&job.target).copied().unwrap_or(false)
                    }
                    Some(_) => true,
                    None => false,
                };
                result.meaning = exit_code.and_then(Exit::runner_meaning).filter(|_| ours);
                result.reason = Some(Reason::JobFailed { reason, message });
                result.container = container;
                result.exit_code = exit_code;
                result.last_lines = last_lines;
            }
            Ok(JobOutcome::CannotHeal(d)) => {
                result.reason = Some(Reason::CannotHeal {
                    problem: d,
                    after: self.follow.fail_fast_after,
                });
            }
            Ok(JobOutcome::Deleted) => {
                result.reason = Some(Reason::JobDeleted {
                    job: name,
                    namespace: ns,
                });
            }
            Ok(JobOutcome::Error(e)) => {
                result.reason = Some(Reason::Cluster {
                    message: e.to_string(),
                });
            }
        }
        result
    }
}

impl TargetRunner for ClusterRunner {
    fn run<'a>(
        &'a self,
        job: &'a TargetJob,
        events: UnboundedSender<ApplyEvent>,
    ) -> Pin<Box<dyn Future<Output = TargetResult> + 'a>> {
        Box::pin(self.run_job(job, events))
    }
}
