//! What a Job, its pods and their events say, read as small pure functions: is the
//! Job done, and if not, is something wrong that a person should hear about now
//! (an image that cannot be pulled, a missing Secret, a pod that cannot be
//! scheduled, an out-of-memory kill)?

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};

/// How a Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminal {
    /// Condition `Complete` is true.
    Complete,
    /// Condition `Failed` (or, earlier, `FailureTarget`) is true.
    Failed {
        /// The condition's reason: `BackoffLimitExceeded`, `DeadlineExceeded`,
        /// `PodFailurePolicy`…
        reason: String,
        /// The condition's message.
        message: String,
    },
}

/// Whether the Job has ended, from its conditions.
///
/// # Caveats
/// Since Kubernetes 1.31 `Complete` and `Failed` are added only once every pod has
/// terminated; `FailureTarget` comes first and already means failure, so it counts.
/// `SuccessCriteriaMet` is not taken as success: a Job is done when it says so.
pub fn job_terminal(job: &Job) -> Option<Terminal> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let is = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if is("Complete").is_some() {
        return Some(Terminal::Complete);
    }
    is("Failed")
        .or_else(|| is("FailureTarget"))
        .map(|c| Terminal::Failed {
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        })
}

/// Something wrong, seen in a pod's status or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// A container's image cannot be pulled (`ErrImagePull`, `ImagePullBackOff`).
    /// Pull failures never count toward backoffLimit: the Job would wait until its
    /// deadline.
    ImagePull {
        /// The container.
        container: String,
        /// The image.
        image: String,
        /// The kubelet's message.
        message: String,
    },
    /// A container cannot be created from its configuration: a missing ConfigMap,
    /// Secret or key (`CreateContainerConfigError`).
    ContainerConfig {
        /// The container.
        container: String,
        /// The kubelet's message (`secret "x" not found`).
        message: String,
    },
    /// The scheduler cannot place the pod (`FailedScheduling`).
    Unschedulable {
        /// The scheduler's message (`0/3 nodes are available: 3 Insufficient cpu.`).
        message: String,
    },
    /// A container was killed for using more memory than its limit.
    OomKilled {
        /// The container.
        container: String,
        /// Its memory limit, if set.
        limit: Option<String>,
    },
    /// A container's log could not be read (a missing `pods/log` permission, a
    /// broken stream); the run goes on.
    LogUnavailable {
        /// The container.
        container: String,
        /// Why.
        message: String,
    },
    /// The Job controller cannot create the Job's pods (`FailedCreate`): admission
    /// refused them (a ResourceQuota, a LimitRange, Pod Security) or the API server
    /// did. Nothing runs until the cause goes.
    PodsNotCreated {
        /// The controller's message, which holds the API server's reason.
        message: String,
    },
    /// A container exited non-zero (the pod may be retried).
    ContainerFailed {
        /// The container.
        container: String,
        /// Its exit code.
        exit_code: i32,
        /// The kubelet's reason (`Error`).
        reason: String,
    },
}

impl Diagnosis {
    /// Whether waiting cannot heal it: an image that does not exist or cannot be
    /// pulled, a missing Secret or ConfigMap. Such a target fails after a short
    /// grace period instead of at the Job's deadline.
    pub fn cannot_heal(&self) -> bool {
        matches!(
            self,
            Diagnosis::ImagePull { .. }
                | Diagnosis::ContainerConfig { .. }
                | Diagnosis::PodsNotCreated { .. }
        )
    }

    /// What tells two reports of the same problem apart: the description, without
    /// what changes from one attempt to the next (the controller names each pod it
    /// failed to create: `pods "job-x7k2p" is forbidden: …`).
    pub fn dedup_key(&self) -> String {
        match self {
            Diagnosis::PodsNotCreated { message } => {
                let mut parts = message.splitn(3, '"');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(before), Some(_name), Some(after)) => format!("{before}{after}"),
                    _ => message.clone(),
                }
            }
            other => other.describe(),
        }
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            Diagnosis::ImagePull {
                container,
                image,
                message,
            } => format!("{container}: cannot pull image {image}: {message}"),
            Diagnosis::ContainerConfig { container, message } => {
                format!("{container}: cannot be created: {message}")
            }
            Diagnosis::Unschedulable { message } => format!("cannot be scheduled: {message}"),
            Diagnosis::OomKilled { container, limit } => match limit {
                Some(l) => format!("{container} was killed: out of memory (limit {l})"),
                None => format!("{container} was killed: out of memory"),
            },
            Diagnosis::LogUnavailable { container, message } => {
                format!("{container}: its log cannot be read: {message}")
            }
            Diagnosis::PodsNotCreated { message } => {
                format!("its pods cannot be created: {message}")
            }
            Diagnosis::ContainerFailed {
                container,
                exit_code,
                reason,
            } => format!("{container} exited {exit_code} ({reason})"),
        }
    }
}

fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    pod.status.iter().flat_map(|s| {
        s.init_container_statuses
            .iter()
            .flatten()
            .chain(s.container_statuses.iter().flatten())
    })
}

/// What is wrong with a pod now, from its status.
pub fn diagnose_pod(pod: &Pod) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    let limit_of = |container: &str| -> Option<String> {
        let spec = pod.spec.as_ref()?;
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == container)?
            .resources
            .as_ref()?
            .limits
            .as_ref()?
            .get("memory")
            .map(|q| q.0.clone())
    };
    for cs in statuses(pod) {
        let state = cs.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or("");
            let message = w.message.clone().unwrap_or_default();
            match reason {
                "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => {
                    out.push(Diagnosis::ImagePull {
                        container: cs.name.clone(),
                        image: cs.image.clone(),
                        message: if message.is_empty() {
                            reason.to_string()
                        } else {
                            message
                        },
                    });
                }
                // CreateContainerError is often transient (a runtime hiccup): not
                // reported as a configuration problem.
                "CreateContainerConfigError" => {
                    out.push(Diagnosis::ContainerConfig {
                        container: cs.name.clone(),
                        message,
                    });
                }
                _ => {}
            }
        }
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            if t.reason.as_deref() == Some("OOMKilled") {
                out.push(Diagnosis::OomKilled {
                    container: cs.name.clone(),
                    limit: limit_of(&cs.name),
                });
            } else if t.exit_code != 0 {
                out.push(Diagnosis::ContainerFailed {
                    container: cs.name.clone(),
                    exit_code: t.exit_code,
                    reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
                });
            }
        }
    }
    if let Some(c) = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
        && c.reason.as_deref() == Some("Unschedulable")
    {
        out.push(Diagnosis::Unschedulable {
            message: c.message.clone().unwrap_or_default(),
        });
    }
    out
}

/// What a Warning event about a pod or a Job says, when it names a problem.
pub fn diagnose_event(event: &Event) -> Option<Diagnosis> {
    if event.type_.as_deref() != Some("Warning") {
        return None;
    }
    let message = event.message.clone().unwrap_or_default();
    let kind = event.involved_object.kind.as_deref();
    match (kind, event.reason.as_deref()?) {
        (Some("Pod"), "FailedScheduling") => Some(Diagnosis::Unschedulable { message }),
        (Some("Job"), "FailedCreate") => Some(Diagnosis::PodsNotCreated { message }),
        _ => None,
    }
}

/// The containers of a pod that have started (running or terminated): their logs
/// can be read. A pod that finishes fast is never seen Running, so terminated
/// counts too.
pub fn started_containers(pod: &Pod) -> Vec<String> {
    statuses(pod)
        .filter(|cs| {
            cs.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
        .map(|cs| cs.name.clone())
        .collect()
}

/// The exit code and container of the pod's failed container, if one failed.
pub fn failed_container(pod: &Pod) -> Option<(String, i32, String)> {
    statuses(pod).find_map(|cs| {
        let t = cs.state.as_ref()?.terminated.as_ref()?;
        (t.exit_code != 0).then(|| {
            (
                cs.name.clone(),
                t.exit_code,
                t.reason.clone().unwrap_or_else(|| "Error".into()),
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(json!({"status": {"conditions": conditions}})).unwrap()
    }

    #[test]
    fn failed_and_failure_target_end_a_job_complete_ends_it_well() {
        assert_eq!(job_terminal(&job(json!([]))), None);
        assert_eq!(
            job_terminal(&job(
                json!([{"type": "SuccessCriteriaMet", "status": "True"}])
            )),
            None
        );
        assert_eq!(
            job_terminal(&job(json!([{"type": "Complete", "status": "True"}]))),
            Some(Terminal::Complete)
        );
        assert_eq!(
            job_terminal(&job(json!([{"type": "FailureTarget", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]))),
            Some(Terminal::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "Job has reached the specified backoff limit".into()
            })
        );
        assert_eq!(
            job_terminal(&job(json!([{"type": "Failed", "status": "False"}]))),
            None
        );
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "spec": {"containers": [{"name": "run-migrations",
                "resources": {"limits": {"memory": "512Mi"}}}]},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn pod_statuses_say_what_is_wrong() {
        let p = pod(
            json!({"containerStatuses": [{"name": "run-migrations", "image": "shop/app:9",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"shop/app:9\""}}}]}),
        );
        let d = diagnose_pod(&p);
        assert_eq!(d.len(), 1);
        assert!(d[0].cannot_heal());
        assert_eq!(
            d[0].describe(),
            "run-migrations: cannot pull image shop/app:9: Back-off pulling image \"shop/app:9\""
        );
        let p = pod(
            json!({"containerStatuses": [{"name": "run-migrations", "image": "x",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}),
        );
        assert_eq!(
            diagnose_pod(&p)[0].describe(),
            "run-migrations was killed: out of memory (limit 512Mi)"
        );
        assert_eq!(started_containers(&p), ["run-migrations"]);
        assert_eq!(
            failed_container(&p),
            Some(("run-migrations".into(), 137, "OOMKilled".into()))
        );
        let p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}]}),
        );
        let d = diagnose_pod(&p);
        assert_eq!(
            d,
            [Diagnosis::Unschedulable {
                message: "0/3 nodes are available: 3 Insufficient cpu.".into()
            }]
        );
        assert!(!d[0].cannot_heal());
        assert!(started_containers(&p).is_empty());
    }

    fn event(kind: &str, reason: &str, message: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": kind, "name": "x"},
            "type": "Warning", "reason": reason, "message": message
        }))
        .unwrap()
    }

    #[test]
    fn events_of_pods_and_jobs_say_what_is_wrong() {
        let quota = "Error creating: pods \"x-abc\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=0, limited: pods=0";
        let d = diagnose_event(&event("Job", "FailedCreate", quota)).unwrap();
        assert!(d.cannot_heal());
        assert_eq!(d.describe(), format!("its pods cannot be created: {quota}"));
        // The next attempt names another pod: the same problem.
        let again = diagnose_event(&event(
            "Job",
            "FailedCreate",
            &quota.replace("x-abc", "x-def"),
        ))
        .unwrap();
        assert_ne!(again, d);
        assert_eq!(again.dedup_key(), d.dedup_key());
        assert_eq!(
            diagnose_event(&event("Pod", "FailedScheduling", "0/1 nodes are available")),
            Some(Diagnosis::Unschedulable {
                message: "0/1 nodes are available".into()
            })
        );
        // The same reasons about other kinds, and Normal events, are not problems.
        assert_eq!(diagnose_event(&event("Pod", "FailedCreate", quota)), None);
        let mut normal = event("Job", "FailedCreate", quota);
        normal.type_ = Some("Normal".into());
        assert_eq!(diagnose_event(&normal), None);
    }
}
