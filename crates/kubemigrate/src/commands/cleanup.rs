//! `kubemigrate cleanup`: delete the plan's finished Jobs.

use kubemigrate_cluster::diagnose::job_terminal;

use crate::args::cluster::{ClusterArgs, cluster_failure};
use crate::exit::{CommandResult, Exit};
use crate::output::{Output, Reporter};

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
    let (_, ns, cluster, jobs) = args.cluster.open_jobs().await?;
    let mut deleted = Vec::new();
    for job in jobs.iter().filter(|j| job_terminal(j).is_some()) {
        let name = job.metadata.name.clone().unwrap_or_default();
        cluster
            .delete_job(&ns, &name)
            .await
            .map_err(cluster_failure)?;
        reporter.line(&format!("deleted Job {name}"));
        deleted.push(name);
    }
    let result = Cleanup {
        namespace: ns,
        running: jobs.len() - deleted.len(),
        deleted,
    };
    reporter.finish("cleanup", Some(&result), Exit::Ok, None);
    Ok(Exit::Ok)
}

/// `cleanup`'s result.
#[derive(Debug, serde::Serialize)]
struct Cleanup {
    namespace: String,
    /// The finished Jobs deleted.
    deleted: Vec<String>,
    /// How many Jobs of the plan still run (left alone).
    running: usize,
}

impl Output for Cleanup {
    fn human(&self, reporter: Reporter) {
        let n = self.deleted.len();
        reporter.line(&format!(
            "{n} finished Job{} deleted, {} still running left alone",
            if n == 1 { "" } else { "s" },
            self.running
        ));
    }
}
