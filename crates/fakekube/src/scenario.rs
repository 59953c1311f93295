//! What the simulated job controller and kubelet do with each Job.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;

/// The label whose value picks a Job's scenario (see [`Scenarios::target`]).
pub const TARGET_LABEL: &str = "kubemigrate.io/target";

/// Log lines per container name. A container missing from the map prints nothing.
pub type Logs = BTreeMap<String, Vec<String>>;

/// What happens to the pods of one Job.
///
/// Containers run in the order of the pod spec: init containers one after the other,
/// then the main containers. The failure of a scenario applies to `run-migrations`
/// (or the first main container when there is none of that name) unless it says
/// otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Every container exits 0 after printing its lines: the Job completes.
    Success {
        /// Lines per container.
        logs: Logs,
    },
    /// `run-migrations` exits `exit_code` (reason `Error`) in the first `attempts`
    /// pods and 0 in the next one. The controller replaces each failed pod until the
    /// Job's `backoffLimit` is exceeded (`FailureTarget`, then `Failed` with reason
    /// `BackoffLimitExceeded`). `u32::MAX` attempts: every pod fails.
    FailThenRetry {
        /// The exit code of the failing pods.
        exit_code: i32,
        /// How many pods fail before one succeeds.
        attempts: u32,
        /// Lines per container, printed by every pod.
        logs: Logs,
    },
    /// `run-migrations` exits `exit_code` in every pod. A `FailJob` rule of the Job's
    /// `podFailurePolicy` that matches fails the Job at once (reason
    /// `PodFailurePolicy`); without one the pod counts toward `backoffLimit`.
    PodFailurePolicy {
        /// The exit code of `run-migrations`.
        exit_code: i32,
        /// Lines per container.
        logs: Logs,
    },
    /// The first container (in run order) whose image is `image`, else the main
    /// container, never pulls: `ErrImagePull`, then `ImagePullBackOff`, with
    /// `Failed` and `BackOff` events repeated. The Job stays active (kubernetes#66756)
    /// until its `activeDeadlineSeconds`, if any.
    ImagePullBackOff {
        /// The image reported as not found.
        image: String,
    },
    /// The pod is never scheduled: `PodScheduled=False` (`Unschedulable`) and a
    /// `FailedScheduling` event with `message`.
    FailedScheduling {
        /// For example `0/3 nodes are available: 3 Insufficient cpu.`.
        message: String,
    },
    /// The first container in run order waits with `CreateContainerConfigError` and
    /// `message`; a `Failed` event says `Error: <message>`.
    CreateContainerConfigError {
        /// For example `secret "shop-migration-db-credentials" not found`.
        message: String,
    },
    /// `run-migrations` is killed: reason `OOMKilled`, exit code 137, in every pod,
    /// retried as [`Scenario::FailThenRetry`].
    OomKilled {
        /// Lines per container.
        logs: Logs,
    },
    /// `wait-for-postgres` (or the first init container) keeps running and prints
    /// `line` every [`Timing::repeat_ms`], until `deadline_after_ms` (then as
    /// [`Scenario::DeadlineExceeded`]), the Job's `activeDeadlineSeconds`, or forever.
    DatabaseNeverReady {
        /// The line printed again and again.
        line: String,
        /// A deadline shorter than the Job's, in milliseconds after its start.
        deadline_after_ms: Option<u64>,
    },
    /// `run-migrations` runs (prints its lines, then hangs) until `after_ms` after the
    /// Job started: the Job fails with reason `DeadlineExceeded` and its pods are
    /// deleted, as `activeDeadlineSeconds` does.
    DeadlineExceeded {
        /// Milliseconds after the Job's start.
        after_ms: u64,
    },
    /// `wait-for-postgres` waits (prints a line every [`Timing::repeat_ms`]) and the
    /// Job is deleted, with its pods (propagation `Background`), `after_ms` after its
    /// start: as a person running `kubectl delete job` would.
    DeletedWhileWaiting {
        /// Milliseconds after the Job's start.
        after_ms: u64,
    },
}

impl Scenario {
    /// [`Scenario::Success`] with [`default_logs`].
    pub fn success() -> Self {
        Self::Success {
            logs: default_logs(),
        }
    }

    /// [`Scenario::FailThenRetry`] with [`failure_logs`].
    pub fn fail_then_retry(exit_code: i32, attempts: u32) -> Self {
        Self::FailThenRetry {
            exit_code,
            attempts,
            logs: failure_logs(),
        }
    }

    /// [`Scenario::PodFailurePolicy`] with [`failure_logs`].
    pub fn pod_failure_policy(exit_code: i32) -> Self {
        Self::PodFailurePolicy {
            exit_code,
            logs: failure_logs(),
        }
    }

    /// [`Scenario::OomKilled`] with [`default_logs`].
    pub fn oom_killed() -> Self {
        Self::OomKilled {
            logs: default_logs(),
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Self::success()
    }
}

fn logs(entries: &[(&str, &[&str])]) -> Logs {
    entries
        .iter()
        .map(|(c, lines)| (c.to_string(), lines.iter().map(|l| l.to_string()).collect()))
        .collect()
}

/// The lines of a successful run: one or two per container of a rendered Job.
pub fn default_logs() -> Logs {
    logs(&[
        (
            "wait-for-postgres",
            &["waiting for postgres at db:5432", "postgres is ready"],
        ),
        ("install-runner", &["installed /runner/kubemigrate"]),
        (
            "run-migrations",
            &[
                "applying 0001_create_orders.sql",
                "applied 1 migration in 12ms",
            ],
        ),
    ])
}

/// The lines of a failed run: `run-migrations` ends with an error line.
pub fn failure_logs() -> Logs {
    let mut l = default_logs();
    l.insert(
        "run-migrations".into(),
        vec![
            "applying 0002_add_total.sql".into(),
            "error: 0002_add_total.sql: column \"total\" of relation \"orders\" already exists"
                .into(),
        ],
    );
    l
}

/// The simulated delays, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Between two steps of a pod's or a Job's lifecycle (scheduling, starting a
    /// container, a status update).
    pub step_ms: u64,
    /// Between two log lines of a container.
    pub line_ms: u64,
    /// Before a failed pod is replaced (stands for the 10 s, 20 s, … back-off).
    pub retry_ms: u64,
    /// The period of what repeats: a waiting database's line, image pull back-off
    /// events.
    pub repeat_ms: u64,
    /// Between two `BOOKMARK` events of a watch that allows them.
    pub bookmark_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            step_ms: 20,
            line_ms: 5,
            retry_ms: 30,
            repeat_ms: 50,
            bookmark_ms: 1000,
        }
    }
}

/// A request that the server refuses with 403 Forbidden, as RBAC would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forbidden {
    /// The verb: `create`, `get`, `list`, `watch`, `patch`, `update`, `delete`.
    pub verb: String,
    /// The resource: `jobs`, `pods`, `pods/log`, `configmaps`, `secrets`, `events`.
    pub resource: String,
}

/// The whole server's script: a scenario per target, a default, forbidden requests
/// and timing.
///
/// A Job's scenario is the one registered for the value of its
/// `kubemigrate.io/target` label, else for the longest registered name that
/// prefixes the Job's name, else the default.
#[derive(Clone, Debug, Default)]
pub struct Scenarios {
    default: Scenario,
    targets: BTreeMap<String, Scenario>,
    forbidden: Vec<Forbidden>,
    timing: Timing,
}

impl Scenarios {
    /// Every Job runs `default`.
    pub fn new(default: Scenario) -> Self {
        Self {
            default,
            ..Self::default()
        }
    }

    /// Jobs labelled `kubemigrate.io/target: <target>`, or whose name starts with
    /// `target`, run `scenario`.
    pub fn target(mut self, target: impl Into<String>, scenario: Scenario) -> Self {
        self.targets.insert(target.into(), scenario);
        self
    }

    /// Every request with `verb` on `resource` gets 403 Forbidden.
    pub fn forbid(mut self, verb: impl Into<String>, resource: impl Into<String>) -> Self {
        self.forbidden.push(Forbidden {
            verb: verb.into(),
            resource: resource.into(),
        });
        self
    }

    /// Replaces the delays.
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The delays.
    pub fn timings(&self) -> &Timing {
        &self.timing
    }

    /// Whether `verb` on `resource` is forbidden.
    pub fn is_forbidden(&self, verb: &str, resource: &str) -> bool {
        self.forbidden
            .iter()
            .any(|f| f.verb == verb && f.resource == resource)
    }

    /// The scenario for `job`.
    pub fn for_job(&self, job: &Job) -> &Scenario {
        let target = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(TARGET_LABEL));
        if let Some(s) = target.and_then(|t| self.targets.get(t)) {
            return s;
        }
        let name = job.metadata.name.as_deref().unwrap_or_default();
        self.targets
            .iter()
            .filter(|(prefix, _)| name.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(&self.default, |(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn job(name: &str, target: Option<&str>) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: target.map(|t| [(TARGET_LABEL.to_string(), t.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn label_wins_over_prefix_and_longest_prefix_wins() {
        let s = Scenarios::new(Scenario::success())
            .target("orders", Scenario::oom_killed())
            .target("shop", Scenario::pod_failure_policy(4))
            .target("shop-migrate-users", Scenario::fail_then_retry(3, 1));
        assert_eq!(
            s.for_job(&job("shop-migrate-users-1", Some("orders"))),
            &Scenario::oom_killed()
        );
        assert_eq!(
            s.for_job(&job("shop-migrate-users-1", None)),
            &Scenario::fail_then_retry(3, 1)
        );
        assert_eq!(
            s.for_job(&job("shop-migrate-x", Some("unknown"))),
            &Scenario::pod_failure_policy(4)
        );
        assert_eq!(s.for_job(&job("other", None)), &Scenario::success());
    }
}
