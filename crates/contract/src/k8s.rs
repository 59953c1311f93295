//! What kubemigrate's Kubernetes objects are named and labelled with, shared by the
//! renderer, the cluster client, the local runner and the reports.

/// `app.kubernetes.io/managed-by`: `kubemigrate` on everything it renders.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`].
pub const MANAGER: &str = "kubemigrate";
/// `app.kubernetes.io/component`: `migrations`.
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// The value of [`COMPONENT`].
pub const COMPONENT_VALUE: &str = "migrations";
/// `app.kubernetes.io/name`.
pub const NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`.
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/part-of`.
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// The plan's name.
pub const PLAN: &str = "kubemigrate.io/plan";
/// The run's id (a Job's name ends with it).
pub const RUN_ID: &str = "kubemigrate.io/run-id";
/// The target's name.
pub const TARGET: &str = "kubemigrate.io/target";
/// Label key prefixes a plan's own labels may not use.
pub const RESERVED_LABEL_PREFIXES: &[&str] = &["app.kubernetes.io/", "kubemigrate.io/"];
/// The label the Job controller puts on a Job's pods.
pub const JOB_NAME: &str = "job-name";
/// Label keys (or prefixes, ending in `/`) the Job controller sets on pods; a plan
/// label with one of them would hide the pods from their Job's watchers.
pub const JOB_CONTROLLER_LABELS: &[&str] = &[JOB_NAME, "controller-uid", "batch.kubernetes.io/"];

/// The field manager of kubemigrate's server-side applies.
pub const FIELD_MANAGER: &str = "kubemigrate";

/// The init container that waits for the database (`kubemigrate wait-for-db`).
pub const WAIT_FOR_POSTGRES: &str = "wait-for-postgres";
/// The init container that copies the runner into the pod's shared volume.
pub const INSTALL_RUNNER: &str = "install-runner";
/// The container that migrates.
pub const RUN_MIGRATIONS: &str = "run-migrations";

/// The label selector of a plan's Jobs.
pub fn plan_selector(plan: &str) -> String {
    format!("{MANAGED_BY}={MANAGER},{PLAN}={plan}")
}
