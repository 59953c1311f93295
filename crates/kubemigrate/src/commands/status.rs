//! `kubemigrate status`: the plan's Jobs in the cluster, newest run first, and
//! for a fan-out target's Indexed Job of the newest run, each database's result.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use kubemigrate_cluster::{Cluster, ClusterError, job_state, runs_newest_first};
use kubemigrate_contract::k8s;

use serde::Serialize;

use crate::args::cluster::{ClusterArgs, cluster_failure};
use crate::exit::{CommandResult, Exit, Failure};
use crate::fanout::DbLine;
use crate::output::{Output, Reporter};

/// Show the plan's Jobs in the cluster (found by label), newest run first, with
/// their state and reason. For a target over many databases (an Indexed Job),
/// each database's result in the newest run, read from the runners' logs while
/// the Job's pods exist (until ttlSecondsAfterFinished deletes them).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate status -f plan.yaml
  kubemigrate status -f plan.yaml -o json | jq '.runs[0]'
  kubemigrate status -f plan.yaml -o json | jq -r '.runs[0].jobs[].databases[]? | select(.result == \"failed\") | .database'")]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let (loaded, ns, cluster, jobs) = args.cluster.open_jobs().await?;
    let runs = runs_newest_first(jobs);
    let label = |j: &Job, key: &str| {
        j.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let mut report = ClusterStatus {
        plan: loaded.plan.metadata.name.to_string(),
        namespace: ns.clone(),
        runs: Vec::new(),
    };
    for (i, (id, jobs)) in runs.iter().enumerate() {
        let mut run = RunStatus {
            run_id: id.clone(),
            jobs: Vec::new(),
        };
        for j in jobs {
            let job_name = j.metadata.name.clone().unwrap_or_default();
            // Older runs' pods are usually gone; the newest run is the one asked about.
            let databases = if i == 0 && is_indexed(j) {
                databases(&cluster, &ns, &job_name, &reporter).await?
            } else {
                Vec::new()
            };
            run.jobs.push(JobStatus {
                target: label(j, k8s::TARGET),
                job_name,
                state: job_state(j),
                created: j
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| format!("{:?}", t.0)),
                databases,
            });
        }
        report.runs.push(run);
    }
    reporter.finish("status", Some(&report), Exit::Ok, None);
    Ok(Exit::Ok)
}

/// A fan-out target's Job: one index per shard of databases.
fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// Each database's result as the runners of `job` logged it (`[db] result: …`),
/// read from the `run-migrations` log of every pod still there, oldest pod first,
/// so that a retried index's later run wins; sorted by database.
///
/// # Errors
/// A missing permission (exit 10). A log that cannot be read (its node is gone,
/// its container never started) is skipped with a warning.
async fn databases(
    cluster: &Cluster,
    ns: &str,
    job: &str,
    reporter: &Reporter,
) -> Result<Vec<DbLine>, Failure> {
    let mut pods = cluster
        .list_pods(ns, &format!("{}={job}", k8s::JOB_NAME))
        .await
        .map_err(cluster_failure)?;
    pods.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let mut found = BTreeMap::new();
    for pod in &pods {
        let started = kubemigrate_cluster::diagnose::started_containers(pod);
        if !started.iter().any(|c| c == k8s::RUN_MIGRATIONS) {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut each = |line: String| {
            if let Some(db) = DbLine::parse(&line) {
                found.insert(db.database.clone(), db);
            }
        };
        match cluster
            .container_log(ns, &name, k8s::RUN_MIGRATIONS, false, &mut each)
            .await
        {
            Ok(()) => {}
            Err(e @ ClusterError::Forbidden { .. }) => return Err(cluster_failure(e)),
            Err(e) => reporter.warn(&e.to_string()),
        }
    }
    Ok(found.into_values().collect())
}

/// `status`'s result.
#[derive(Debug, Serialize)]
struct ClusterStatus {
    #[serde(skip)]
    plan: String,
    namespace: String,
    runs: Vec<RunStatus>,
}

/// One run of the plan in the cluster.
#[derive(Debug, Serialize)]
struct RunStatus {
    run_id: String,
    jobs: Vec<JobStatus>,
}

/// One Job of a run.
#[derive(Debug, Serialize)]
struct JobStatus {
    target: String,
    job_name: String,
    state: String,
    created: Option<String>,
    /// A fan-out target's databases, as its runners reported them (newest run only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    databases: Vec<DbLine>,
}

impl Output for ClusterStatus {
    fn human(&self, reporter: Reporter) {
        if self.runs.is_empty() {
            reporter.line(&format!(
                "no Jobs of plan {} in namespace {}",
                self.plan, self.namespace
            ));
        }
        for run in &self.runs {
            reporter.line(&format!("run {}:", run.run_id));
            for j in &run.jobs {
                reporter.line(&format!(
                    "  {:<16} {:<40} {}",
                    j.target, j.job_name, j.state
                ));
                if !j.databases.is_empty() {
                    reporter.line(&format!(
                        "    {}",
                        crate::output::fanout::grouped(&j.databases)
                    ));
                }
            }
        }
    }
}
