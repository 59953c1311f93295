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

use super::{ApplyEvent, Status, TargetResult, TargetRunner, job_name};
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

/// Why a target's wait ended without the Job's own verdict.
pub const TIMED_OUT: &str = "timed out waiting";

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
            result.reason = Some(e.to_string());
            result.cluster_error = true;
            return result;
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
                        text: format!("cannot save logs under {}: {e}", dir.display()),
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
                            text: diagnosis.describe(),
                        });
                    }
                    ClusterEvent::StillWaitingForDatabase { last_line } => {
                        let _ = events.send(ApplyEvent::Problem {
                            target: target.clone(),
                            text: format!("wait-for-postgres is still waiting: {last_line}"),
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
                result.reason = Some(format!(
                    "{TIMED_OUT} after {} (the Job goes on: kubectl get job {name} -n {ns})",
                    crate::reporter::duration(self.timeout)
                ));
                result.timed_out = true;
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
                let detail = match (&container, exit_code) {
                    (Some(c), Some(code)) => format!(
                        "; {c} exited {code}{}",
                        result
                            .meaning
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default()
                    ),
                    _ => String::new(),
                };
                result.reason = Some(format!("{reason}: {message}{detail}"));
                result.container = container;
                result.exit_code = exit_code;
                result.last_lines = last_lines;
            }
            Ok(JobOutcome::CannotHeal(d)) => {
                result.reason = Some(format!(
                    "{} (for {}; it cannot heal by itself)",
                    d.describe(),
                    crate::reporter::duration(self.follow.fail_fast_after)
                ));
            }
            Ok(JobOutcome::Deleted) => {
                result.reason = Some(format!(
                    "the Job {ns}/{name} was deleted while kubemigrate waited for it"
                ));
            }
            Ok(JobOutcome::Error(e)) => {
                result.reason = Some(e.to_string());
                result.cluster_error = true;
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
