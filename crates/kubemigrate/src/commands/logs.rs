//! `kubemigrate logs`: the logs of the newest run's pods.

use kubemigrate_cluster::{ClusterError, plan_selector, runs_newest_first};
use kubemigrate_contract::k8s;

use crate::args::cluster::{ClusterArgs, cluster_failure};
use crate::exit::{CommandResult, Exit};
use crate::output::Reporter;

/// Print the logs of the newest run's pods, every container, prefixed with the
/// target, pod and container.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kubemigrate logs -f plan.yaml
  kubemigrate logs -f plan.yaml --target supabase --follow")]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Only this target.
    #[arg(long, value_name = "TARGET")]
    target: Option<String>,
    /// Keep printing until the containers end.
    #[arg(long)]
    follow: bool,
}

/// Runs the command.
pub async fn run(args: Args, reporter: Reporter) -> CommandResult {
    let (loaded, ns, cluster) = args.cluster.open().await?;
    if let Some(t) = &args.target {
        crate::apply::session::check_targets(&loaded, "--target", std::iter::once(t))?;
    }
    let jobs = cluster
        .list_jobs(&ns, &plan_selector(loaded.plan.metadata.name.as_str()))
        .await
        .map_err(cluster_failure)?;
    let Some((run_id, jobs)) = runs_newest_first(jobs).into_iter().next() else {
        reporter.line(&format!(
            "no Jobs of plan {} in namespace {ns}",
            loaded.plan.metadata.name
        ));
        return Ok(Exit::Ok);
    };
    reporter.line(&format!("run {run_id}"));
    for job in jobs {
        let target = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k8s::TARGET))
            .cloned()
            .unwrap_or_default();
        if args.target.as_ref().is_some_and(|t| *t != target) {
            continue;
        }
        let name = job.metadata.name.clone().unwrap_or_default();
        let pods = cluster
            .list_pods(&ns, &format!("{}={name}", k8s::JOB_NAME))
            .await
            .map_err(cluster_failure)?;
        for pod in pods {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            for c in kubemigrate_cluster::diagnose::started_containers(&pod) {
                let prefix = format!("{target}/{pod_name}/{c}");
                let mut print = |line: String| reporter.line(&format!("{prefix} | {line}"));
                match cluster
                    .container_log(&ns, &pod_name, &c, args.follow, &mut print)
                    .await
                {
                    Ok(()) => {}
                    // A missing permission fails every read: say it once, exit 10.
                    Err(e @ ClusterError::Forbidden { .. }) => return Err(cluster_failure(e)),
                    // One log that cannot be read (its node is gone, say): the others
                    // may still be.
                    Err(e) => reporter.warn(&e.to_string()),
                }
            }
        }
    }
    Ok(Exit::Ok)
}
