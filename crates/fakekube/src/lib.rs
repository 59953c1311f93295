//! A fake Kubernetes API server on loopback, for kubemigrate's tests.
//!
//! No cluster can run where kubemigrate is tested, and a mocked client would not
//! exercise what breaks in practice: kubeconfig loading, watch streams, chunked
//! logs, `Status` errors. [`FakeCluster`] speaks plain HTTP/1.1 on `127.0.0.1`, so
//! the real kube-rs client (in a test or in the `kubemigrate` binary, through the
//! kubeconfig it writes) talks to it as to an API server, and a simulated job
//! controller, scheduler and kubelet move each Job's pods through the phases of a
//! scripted [`Scenario`].
//!
//! ```no_run
//! use kubemigrate_fakekube::{FakeCluster, Scenario, Scenarios};
//!
//! let cluster = FakeCluster::start(
//!     Scenarios::new(Scenario::success())
//!         .target("orders", Scenario::fail_then_retry(3, u32::MAX))
//!         .forbid("create", "secrets"),
//! )?;
//! let kubeconfig = std::env::temp_dir().join("fake-kubeconfig");
//! cluster.write_kubeconfig(&kubeconfig)?;
//! // run `kubemigrate apply` with KUBECONFIG=<kubeconfig>, then:
//! let jobs = cluster.requests().iter().filter(|r| r.verb == "create").count();
//! # let _ = jobs;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Scenarios
//!
//! A Job's scenario is chosen when it is created: the one registered with
//! [`Scenarios::target`] for the value of its `kubemigrate.io/target` label, else for
//! the longest registered prefix of its name, else the default. The controller
//! creates one pod at a time; the pod is scheduled to `fake-node-1`, its init
//! containers run one after the other, then its main containers. Each step is a
//! write seen by watches (delays in [`Timing`], tens of milliseconds by default):
//!
//! - pod: `Pending` with `PodScheduled`, then `initContainerStatuses` and
//!   `containerStatuses` waiting `PodInitializing` (`ContainerCreating` without init
//!   containers), each container running with `startedAt`, then terminated with its
//!   `exitCode`, `reason` (`Completed`, `Error`, `OOMKilled`) and `finishedAt`; phase
//!   `Running`, then `Succeeded` or `Failed`; conditions `PodReadyToStartContainers`,
//!   `Initialized`, `Ready`, `ContainersReady`, `PodScheduled`.
//! - Job: `startTime`, `active`, `ready`, `failed`, `succeeded`, `terminating`,
//!   `uncountedTerminatedPods`; `SuccessCriteriaMet` before `Complete` (with
//!   `completionTime`), `FailureTarget` before `Failed`, as Kubernetes ≥ 1.31.
//! - events (core/v1): `SuccessfulCreate`, `Completed`, `BackoffLimitExceeded`,
//!   `DeadlineExceeded`, `PodFailurePolicy` from `job-controller`; `Scheduled`,
//!   `FailedScheduling` from `default-scheduler`; `Pulling`, `Pulled`, `Created`,
//!   `Started`, `Failed`, `BackOff` from `kubelet`, repeated ones counted.
//!
//! The scenarios are listed at [`Scenario`]. A Job's `backoffLimit`,
//! `podFailurePolicy` (exit-code rules), `activeDeadlineSeconds` and
//! `ttlSecondsAfterFinished` are honoured in real time; retries wait
//! [`Timing::retry_ms`] instead of the 10 s back-off. [`Scenarios::forbid`] makes
//! every request of a verb on a resource a 403 worded as RBAC words it.
//!
//! # The API
//!
//! - core/v1 `configmaps`, `secrets`, `pods`, `events`, batch/v1 `jobs`: get, list
//!   and watch (label selectors, field selectors with each kind's supported fields),
//!   create, delete; the `status` subresource of Jobs and pods (get). Jobs get the API server's defaults, `spec.selector` and the
//!   `controller-uid`/`job-name` labels; `DELETE` honours `propagationPolicy` from
//!   the query or the `DeleteOptions` body (`Orphan` by default, as batch/v1 does).
//! - `PATCH` with `application/apply-patch+yaml` (server-side apply) on ConfigMaps and
//!   Secrets: `fieldManager` required; creates the object or replaces its data,
//!   labels and annotations; one `managedFields` entry. On Jobs: creates a missing
//!   one, leaves an existing one as it is (its template is immutable).
//! - `pods/{name}/log` with `container`, `follow`, `tailLines`: the kubelet's
//!   `is waiting to start: …` errors, an empty body before scheduling, a chunked
//!   stream that ends when the container terminates.
//! - watches: `resourceVersion` (events after it; unset or `0`: the current objects
//!   as `ADDED` first), `allowWatchBookmarks`, `sendInitialEvents`, `timeoutSeconds`.
//! - `/version`, `/healthz`; anything else is a 404 `Status`. Errors are `Status`
//!   objects with the API server's reasons and messages (`NotFound`,
//!   `AlreadyExists`, `Forbidden`, `Invalid`, `BadRequest`, `Unauthorized` for a
//!   wrong token).
//!
//! # What is not faithful
//!
//! - One node, one pod at a time (`parallelism` and `completions` above 1, indexed
//!   Jobs and `suspend` are ignored); main containers run one after the other.
//! - No admission, no quotas, little validation (a Job needs containers and a
//!   `restartPolicy` of `Never` or `OnFailure`); no update (`PUT`), no merge or JSON
//!   patches, no apply on other kinds, no field-manager conflicts, no
//!   `resourceVersion` preconditions.
//! - The whole history is kept: a watch never gets `410 Gone`. Lists ignore `limit`
//!   and never return `continue`. No protobuf, no table output, no discovery
//!   documents beyond `/version`.
//! - Event `firstTimestamp`/`lastTimestamp` have second precision and events are
//!   core/v1 only (not `events.k8s.io`). Pod deletion is graceful in two writes
//!   (a `deletionTimestamp`, then gone) without the containers being killed first.
//! - Orphaned pods stop where they are: their controller task ends with the Job. A
//!   pod deleted through the API ends its Job's task too (no replacement pod).
//! - Every container pulls its image (`Pulling`, `Pulled`), even one already on the
//!   node; a failed pull stays in `ImagePullBackOff` (no return to `ErrImagePull`);
//!   messages name the image as written (no `docker.io/library/` expansion).
//! - The scheduler and kubelet events are core/v1 events with `source.component`;
//!   a real scheduler writes `events.k8s.io` events whose core/v1 view has no
//!   `firstTimestamp`.
//! - Paths outside `/api` and `/apis` answer a `Status` where the API server answers
//!   a plain-text `404 page not found`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use tokio::sync::oneshot;

mod scenario;
mod select;
mod server;
mod sim;
mod store;

pub use scenario::{
    Forbidden, Logs, Scenario, Scenarios, TARGET_LABEL, Timing, default_logs, failure_logs,
};
pub use sim::NODE;
pub use store::{FAKE_USER, RequestRecord};

use store::{Kind, Shared};

/// A running fake API server. Dropping it stops the server.
pub struct FakeCluster {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeCluster {
    /// Starts a server on `127.0.0.1` (a free port) on a thread of its own with its
    /// own tokio runtime, so that it serves blocking tests, async tests and
    /// subprocesses alike. The socket listens when this returns.
    ///
    /// # Errors
    ///
    /// When the socket cannot be bound or the runtime cannot be built.
    pub fn start(scenarios: Scenarios) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let shared = Arc::new(Shared::new(scenarios));
        let (tx, rx) = oneshot::channel();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fakekube-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                        server::serve(listener, sh, rx).await;
                    }
                });
            })?;
        Ok(Self {
            addr,
            shared,
            runtime: handle,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig with one cluster, user and context, all named `fake`; the
    /// context is current and its namespace is `default`.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}
contexts:
- name: fake
  context:
    cluster: fake
    namespace: default
    user: fake
current-context: fake
preferences: {{}}
users:
- name: fake
  user:
    token: {token}
",
            url = self.url(),
            token = server::TOKEN,
        )
    }

    /// Writes [`FakeCluster::kubeconfig_yaml`] to `path`.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.read(|s| s.requests.clone())
    }

    /// The stored objects of a kind (`ConfigMap`, `Secret`, `Pod`, `Event`, `Job`)
    /// in every namespace, as the API server would return them.
    pub fn objects(&self, kind: &str) -> Vec<Value> {
        let Some(kind) = [
            Kind::ConfigMap,
            Kind::Secret,
            Kind::Pod,
            Kind::Event,
            Kind::Job,
        ]
        .into_iter()
        .find(|k| k.kind() == kind) else {
            return Vec::new();
        };
        self.shared
            .read(|s| s.list(kind, None).into_iter().cloned().collect())
    }

    /// The Jobs, in every namespace.
    pub fn jobs(&self) -> Vec<Job> {
        typed(self.objects("Job"))
    }

    /// The pods, in every namespace.
    pub fn pods(&self) -> Vec<Pod> {
        typed(self.objects("Pod"))
    }

    /// Stores an object as if a client had created it (a Job created this way runs
    /// its scenario too).
    ///
    /// # Errors
    ///
    /// The API server's `Status` when the object is refused (unknown kind,
    /// already exists, invalid).
    pub fn insert(&self, object: Value) -> Result<Value, Value> {
        let kind = [
            Kind::ConfigMap,
            Kind::Secret,
            Kind::Pod,
            Kind::Event,
            Kind::Job,
        ]
        .into_iter()
        .find(|k| object["kind"] == k.kind() && object["apiVersion"] == k.api_version())
        .ok_or_else(|| store::ApiError::not_found_path().to_json())?;
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        if kind == Kind::Job {
            // The controller task runs on the server's runtime.
            let _guard = self.runtime.enter();
            return sim::create_job(&self.shared, &ns, object).map_err(|e| e.to_json());
        }
        self.shared
            .write(|s| s.create(kind, &ns, object))
            .map_err(|e| e.to_json())
    }
}

fn typed<T: serde::de::DeserializeOwned>(values: Vec<Value>) -> Vec<T> {
    values
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
