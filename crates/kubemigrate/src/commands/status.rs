//! `kubemigrate status`: the plan's Jobs in the cluster, newest run first.

use kubemigrate_cluster::{job_state, plan_selector, runs_newest_first};
use kubemigrate_contract::k8s;

use serde::Serialize;

use crate::args::cluster::{ClusterArgs, cluster_failure};
use crate::exit::{CommandResult, Exit};
use crate::output::{Output, Reporter};

/// Show the plan's Jobs in the cluster (found by label), newest run first, with
/// their state and reason.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate status -f plan.yaml
  kubemigrate status -f plan.yaml -o json | jq '.runs[0]'")]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let (loaded, ns, cluster) = args.cluster.open().await?;
    let jobs = cluster
        .list_jobs(&ns, &plan_selector(loaded.plan.metadata.name.as_str()))
        .await
        .map_err(cluster_failure)?;
    let runs = runs_newest_first(jobs);
    let label = |j: &k8s_openapi::api::batch::v1::Job, key: &str| {
        j.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let report = ClusterStatus {
        plan: loaded.plan.metadata.name.to_string(),
        namespace: ns,
        runs: runs
            .iter()
            .map(|(id, jobs)| RunStatus {
                run_id: id.clone(),
                jobs: jobs
                    .iter()
                    .map(|j| JobStatus {
                        target: label(j, k8s::TARGET),
                        job_name: j.metadata.name.clone().unwrap_or_default(),
                        state: job_state(j),
                        created: j
                            .metadata
                            .creation_timestamp
                            .as_ref()
                            .map(|t| format!("{:?}", t.0)),
                    })
                    .collect(),
            })
            .collect(),
    };
    reporter.finish("status", Some(&report), Exit::Ok, None);
    Ok(Exit::Ok)
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
            }
        }
    }
}
