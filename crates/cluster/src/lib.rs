//! kubemigrate on a cluster: applies the objects `kubemigrate-render` builds, with
//! kube-rs, creates each target's Job, and follows it to its end through watches
//! (never polling): the Job's conditions, its pods' statuses, their events, and
//! every container's log, streamed as soon as the container starts.
//!
//! The binary orders the targets and reports; this crate produces
//! [`ClusterEvent`]s and a [`JobOutcome`] per Job.

pub mod diagnose;
mod follow;

use follow::read_lines;

pub use follow::{ClusterEvent, DRAIN, DRAIN_QUIET, FollowOptions, JobOutcome, POD_STATUS_GRACE};

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Client, Config};

pub use diagnose::{Diagnosis, Terminal};

use kubemigrate_contract::k8s;
pub use kubemigrate_contract::k8s::{FIELD_MANAGER, plan_selector};

/// Why talking to the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No kubeconfig, no in-cluster service account, or a broken configuration.
    #[error("cannot load the cluster configuration: {0}")]
    Config(String),
    /// The API server refused: the message names the verb, resource and user
    /// (`jobs.batch is forbidden: User "…" cannot create resource "jobs" …`).
    #[error("{message}")]
    Forbidden {
        /// The server's message.
        message: String,
    },
    /// Any other API error, with the server's message and code.
    #[error("{what}: {message} ({code})")]
    Api {
        /// What kubemigrate was doing.
        what: String,
        /// The server's message.
        message: String,
        /// The HTTP status code.
        code: u16,
    },
    /// The connection to the API server failed.
    #[error("{what}: {source}")]
    Transport {
        /// What kubemigrate was doing.
        what: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
}

impl ClusterError {
    fn of(what: impl Into<String>, e: kube::Error) -> ClusterError {
        match e {
            kube::Error::Api(status) if status.code == 403 => ClusterError::Forbidden {
                message: status.message.clone(),
            },
            kube::Error::Api(status) => ClusterError::Api {
                what: what.into(),
                message: status.message.clone(),
                code: status.code,
            },
            other => ClusterError::Transport {
                what: what.into(),
                source: Box::new(other),
            },
        }
    }
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    default_namespace: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("default_namespace", &self.default_namespace)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects as kubectl does: KUBECONFIG (or ~/.kube/config) and its current
    /// context, or `context`; else the in-cluster service account.
    ///
    /// # Errors
    /// [`ClusterError::Config`] when no configuration can be loaded.
    pub async fn connect(context: Option<&str>) -> Result<Cluster, ClusterError> {
        let config = match context {
            Some(ctx) => Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                context: Some(ctx.to_string()),
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::Config(e.to_string()))?,
            None => Config::infer()
                .await
                .map_err(|e| ClusterError::Config(e.to_string()))?,
        };
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))?;
        Ok(Cluster {
            client,
            default_namespace,
        })
    }

    /// The namespace of the kubeconfig's context.
    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    /// Server-side applies a ConfigMap (field manager `kubemigrate`, forced).
    ///
    /// # Errors
    /// The API server refused or could not be reached.
    pub async fn apply_config_map(&self, cm: &ConfigMap) -> Result<(), ClusterError> {
        let (ns, name) = ns_name(&cm.metadata);
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(cm),
        )
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::of(format!("applying ConfigMap {ns}/{name}"), e))
    }

    /// Server-side applies a Secret (field manager `kubemigrate`, forced).
    ///
    /// # Errors
    /// The API server refused or could not be reached. The message never holds
    /// the Secret's values.
    pub async fn apply_secret(&self, secret: &Secret) -> Result<(), ClusterError> {
        let (ns, name) = ns_name(&secret.metadata);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(secret),
        )
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::of(format!("applying Secret {ns}/{name}"), e))
    }

    /// Creates a Job (a Job's template cannot change: every run is a new Job).
    ///
    /// # Errors
    /// The API server refused (`AlreadyExists` for a reused run id) or could not
    /// be reached.
    pub async fn create_job(&self, job: &Job) -> Result<(), ClusterError> {
        let (ns, name) = ns_name(&job.metadata);
        let api: Api<Job> = Api::namespaced(self.client.clone(), &ns);
        api.create(&PostParams::default(), job)
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::of(format!("creating Job {ns}/{name}"), e))
    }

    /// Deletes a Job and, in the background, its pods.
    ///
    /// # Errors
    /// The API server refused or could not be reached.
    pub async fn delete_job(&self, ns: &str, name: &str) -> Result<(), ClusterError> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        api.delete(name, &dp)
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::of(format!("deleting Job {ns}/{name}"), e))
    }

    /// Lists the Jobs matching a label selector.
    ///
    /// # Errors
    /// The API server refused or could not be reached.
    pub async fn list_jobs(&self, ns: &str, selector: &str) -> Result<Vec<Job>, ClusterError> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        api.list(&kube::api::ListParams::default().labels(selector))
            .await
            .map(|l| l.items)
            .map_err(|e| ClusterError::of(format!("listing Jobs in {ns}"), e))
    }

    /// Lists the pods matching a label selector.
    ///
    /// # Errors
    /// The API server refused or could not be reached.
    pub async fn list_pods(&self, ns: &str, selector: &str) -> Result<Vec<Pod>, ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        api.list(&kube::api::ListParams::default().labels(selector))
            .await
            .map(|l| l.items)
            .map_err(|e| ClusterError::of(format!("listing pods in {ns}"), e))
    }

    /// Sends a container's log, line by line, to `lines`; with `follow`, until the
    /// container ends.
    ///
    /// # Errors
    /// The API server refused (a container that has not started) or could not be
    /// reached.
    pub async fn container_log(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        follow: bool,
        lines: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let params = LogParams {
            container: Some(container.to_string()),
            follow,
            ..Default::default()
        };
        let stream = api
            .log_stream(pod, &params)
            .await
            .map_err(|e| ClusterError::of(format!("reading the log of {pod}/{container}"), e))?;
        let mut stream = Box::pin(stream);
        let mut each = |l: String| {
            lines(l);
            true
        };
        read_lines(&mut stream, &mut each)
            .await
            .map_err(|e| ClusterError::Api {
                what: format!("reading the log of {pod}/{container}"),
                message: e.to_string(),
                code: 0,
            })
    }
}

fn ns_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The Jobs of a plan grouped by run id, newest run first.
pub fn runs_newest_first(jobs: Vec<Job>) -> Vec<(String, Vec<Job>)> {
    let mut runs: BTreeMap<String, (String, Vec<Job>)> = BTreeMap::new();
    for j in jobs {
        let run = j
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k8s::RUN_ID))
            .cloned()
            .unwrap_or_default();
        let created = j
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| format!("{:?}", t.0))
            .unwrap_or_default();
        let entry = runs
            .entry(run)
            .or_insert_with(|| (created.clone(), Vec::new()));
        if created > entry.0 {
            entry.0 = created;
        }
        entry.1.push(j);
    }
    let mut out: Vec<(String, String, Vec<Job>)> =
        runs.into_iter().map(|(id, (t, j))| (t, id, j)).collect();
    out.sort_by(|a, b| b.0.cmp(&a.0));
    out.into_iter().map(|(_, id, j)| (id, j)).collect()
}

/// A Job's state in words: `succeeded`, `failed (BackoffLimitExceeded)`, `running`.
pub fn job_state(job: &Job) -> String {
    match diagnose::job_terminal(job) {
        Some(Terminal::Complete) => "succeeded".into(),
        Some(Terminal::Failed { reason, .. }) => format!("failed ({reason})"),
        None => "running".into(),
    }
}
