//! What the cluster commands (`status`, `logs`, `cleanup`) share: the plan, the
//! context and namespace, and the connection.

use anyhow::anyhow;
use k8s_openapi::api::batch::v1::Job;
use kubemigrate_cluster::{Cluster, ClusterError, plan_selector};
use kubemigrate_plan::LoadedPlan;

use crate::args::plan::{self, PlanArgs};
use crate::exit::{Exit, Failure};

/// The plan and where its Jobs are.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// The kubeconfig context (default: the current one).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the plan's).
    #[arg(long, short = 'n', value_name = "NAME")]
    pub namespace: Option<String>,
}

/// A cluster error as a failure (exit 10).
pub fn cluster_failure(e: ClusterError) -> Failure {
    Failure::new(Exit::Cluster, anyhow!(e))
}

impl ClusterArgs {
    /// Loads the plan and connects; returns the plan, the namespace and the cluster.
    ///
    /// # Errors
    /// Exit 2 for a bad plan, 10 when the cluster cannot be reached.
    pub async fn open(&self) -> Result<(LoadedPlan, String, Cluster), Failure> {
        let loaded = plan::load(&self.plan)?;
        let ns = self
            .namespace
            .clone()
            .unwrap_or_else(|| loaded.plan.metadata.namespace.to_string());
        let cluster = Cluster::connect(self.context.as_deref())
            .await
            .map_err(cluster_failure)?;
        Ok((loaded, ns, cluster))
    }

    /// As [`ClusterArgs::open`], and lists the plan's Jobs in the namespace (by
    /// the plan's label), in the order the API server gives them.
    ///
    /// # Errors
    /// As [`ClusterArgs::open`]; exit 10 when the Jobs cannot be listed.
    pub async fn open_jobs(&self) -> Result<(LoadedPlan, String, Cluster, Vec<Job>), Failure> {
        let (loaded, ns, cluster) = self.open().await?;
        let jobs = cluster
            .list_jobs(&ns, &plan_selector(loaded.plan.metadata.name.as_str()))
            .await
            .map_err(cluster_failure)?;
        Ok((loaded, ns, cluster, jobs))
    }
}
