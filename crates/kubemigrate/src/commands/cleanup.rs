//! `kubemigrate cleanup`: delete the plan's finished Jobs.

use kubemigrate_cluster::{diagnose::job_terminal, plan_selector};

use crate::args::cluster::{ClusterArgs, cluster_failure};
use crate::exit::{CommandResult, Exit};
use crate::output::Reporter;

/// Delete the plan's finished Jobs (succeeded or failed) and their pods. Running
/// Jobs are left alone.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  kubemigrate cleanup -f plan.yaml")]
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
    let mut deleted = 0;
    for job in jobs.iter().filter(|j| job_terminal(j).is_some()) {
        let name = job.metadata.name.clone().unwrap_or_default();
        cluster
            .delete_job(&ns, &name)
            .await
            .map_err(cluster_failure)?;
        reporter.line(&format!("deleted Job {name}"));
        deleted += 1;
    }
    let running = jobs.len() - deleted;
    reporter.line(&format!(
        "{deleted} finished Job{} deleted, {running} still running left alone",
        if deleted == 1 { "" } else { "s" }
    ));
    Ok(Exit::Ok)
}
