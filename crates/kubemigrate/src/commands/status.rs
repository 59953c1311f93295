//! `kubemigrate status`: the plan's Jobs in the cluster, newest run first.

use kubemigrate_cluster::{job_state, plan_selector, runs_newest_first};
use kubemigrate_contract::k8s;

use crate::apply::report::print_json;
use crate::args::cluster::{ClusterArgs, cluster_failure};
use crate::exit::{CommandResult, Exit};
use crate::reporter::Reporter;

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
    if reporter.json() {
        let doc = serde_json::json!({
            "command": "status",
            "ok": true,
            "exit_code": 0,
            "namespace": ns,
            "runs": runs.iter().map(|(id, jobs)| serde_json::json!({
                "run_id": id,
                "jobs": jobs.iter().map(|j| serde_json::json!({
                    "target": label(j, k8s::TARGET),
                    "job_name": j.metadata.name,
                    "state": job_state(j),
                    "created": j.metadata.creation_timestamp.as_ref().map(|t| format!("{:?}", t.0)),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        print_json(&doc);
        return Ok(Exit::Ok);
    }
    if runs.is_empty() {
        reporter.line(&format!(
            "no Jobs of plan {} in namespace {ns}",
            loaded.plan.metadata.name
        ));
    }
    for (id, jobs) in &runs {
        reporter.line(&format!("run {id}:"));
        for j in jobs {
            reporter.line(&format!(
                "  {:<16} {:<40} {}",
                label(j, k8s::TARGET),
                j.metadata.name.as_deref().unwrap_or(""),
                job_state(j)
            ));
        }
    }
    Ok(Exit::Ok)
}
