//! The simulated job controller, scheduler and kubelet: one task per Job, driving its
//! pods through the phases of its [`Scenario`] with the API server's own writes, so
//! that watches see the whole lifecycle.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Event, EventSource, HostIP, ObjectReference, Pod, PodCondition, PodIP,
    PodStatus, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::{Value, json};
use tokio::time::sleep;

use crate::scenario::{Scenario, Timing, default_logs};
use crate::store::{ApiError, Gone, Kind, Shared, now};

/// The one node pods are scheduled to.
pub const NODE: &str = "fake-node-1";
const NODE_IP: &str = "10.0.0.11";
const WARNING: &str = "Warning";
const NORMAL: &str = "Normal";
const KUBELET: &str = "kubelet";
const SCHEDULER: &str = "default-scheduler";
const JOB_CONTROLLER: &str = "job-controller";
const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
const WAITING_LINE: &str = "waiting for postgres at db:5432: connection refused";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn maybe_sleep(d: Option<Duration>) {
    match d {
        Some(d) => sleep(d).await,
        None => std::future::pending().await,
    }
}

/// What the API server and the job controller set on a new Job: name, uid, defaults,
/// the generated selector and the pod template's labels.
pub(crate) fn prepare_job(job: &mut Job, name: &str, uid: &str) -> Result<(), ApiError> {
    let invalid = |cause: &str| ApiError::invalid(Kind::Job, name, cause);
    job.metadata.name = Some(name.into());
    job.metadata.uid = Some(uid.into());
    let Some(spec) = job.spec.as_mut() else {
        return Err(invalid("spec.template.spec.containers: Required value"));
    };
    let Some(pod) = spec.template.spec.as_mut() else {
        return Err(invalid("spec.template.spec.containers: Required value"));
    };
    if pod.containers.is_empty() {
        return Err(invalid("spec.template.spec.containers: Required value"));
    }
    match pod.restart_policy.as_deref() {
        Some("Never" | "OnFailure") => {}
        None => {
            return Err(invalid(
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ));
        }
        Some(other) => {
            return Err(invalid(&format!(
                "spec.template.spec.restartPolicy: Unsupported value: \"{other}\": supported values: \"OnFailure\", \"Never\""
            )));
        }
    }
    pod.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    pod.scheduler_name.get_or_insert_with(|| SCHEDULER.into());
    pod.security_context.get_or_insert_with(Default::default);
    pod.termination_grace_period_seconds.get_or_insert(30);
    let containers = pod.init_containers.iter_mut().flatten();
    for c in containers.chain(pod.containers.iter_mut()) {
        c.termination_message_path
            .get_or_insert_with(|| "/dev/termination-log".into());
        c.termination_message_policy
            .get_or_insert_with(|| "File".into());
        let image = c.image.as_deref().unwrap_or_default();
        let tag = image
            .rsplit('/')
            .next()
            .and_then(|last| last.split_once(':'));
        let latest = tag.is_none_or(|(_, t)| t == "latest") && !image.contains('@');
        let policy = if latest { "Always" } else { "IfNotPresent" };
        c.image_pull_policy.get_or_insert_with(|| policy.into());
    }
    spec.completions.get_or_insert(1);
    spec.parallelism.get_or_insert(1);
    spec.backoff_limit.get_or_insert(6);
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    let replacement = if spec.pod_failure_policy.is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    spec.pod_replacement_policy
        .get_or_insert_with(|| replacement.into());
    let controller_uid = [(
        "batch.kubernetes.io/controller-uid".to_string(),
        uid.to_string(),
    )];
    spec.selector = Some(LabelSelector {
        match_labels: Some(controller_uid.clone().into()),
        match_expressions: None,
    });
    let template_meta = spec.template.metadata.get_or_insert_with(Default::default);
    let had_labels = template_meta.labels.as_ref().is_some_and(|l| !l.is_empty());
    let labels = template_meta.labels.get_or_insert_with(Default::default);
    labels.extend(controller_uid);
    labels.insert("controller-uid".into(), uid.into());
    labels.insert("batch.kubernetes.io/job-name".into(), name.into());
    labels.insert("job-name".into(), name.into());
    // Defaulting aliases the Job's empty labels to the template's map, which the
    // generated labels are then added to: a real Job shows them too.
    if had_labels && job.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
        job.metadata.labels = Some(labels.clone());
    }
    job.status = Some(JobStatus::default());
    Ok(())
}

/// Creates a Job as the API server does (see [`prepare_job`]; `generateName` is
/// honoured) and starts its controller task on the current runtime.
pub(crate) fn create_job(sh: &Arc<Shared>, ns: &str, v: Value) -> Result<Value, ApiError> {
    let mut job: Job =
        serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let created = sh.write(|s| {
        let name = match (&job.metadata.name, &job.metadata.generate_name) {
            (Some(n), _) if !n.is_empty() => n.clone(),
            (_, Some(g)) if !g.is_empty() => format!("{g}{}", s.suffix()),
            _ => String::new(),
        };
        let uid = s.uid();
        prepare_job(&mut job, &name, &uid)?;
        let v = serde_json::to_value(&job).map_err(|e| ApiError::bad_request(e.to_string()))?;
        s.create(Kind::Job, ns, v)
    })?;
    let name = created["metadata"]["name"].as_str().unwrap_or_default();
    spawn_job(sh.clone(), ns.to_string(), name.to_string());
    Ok(created)
}

/// How a Job is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// The Job now, its pods after.
    Background,
    /// Its pods, then the Job (which shows a deletionTimestamp meanwhile).
    Foreground,
    /// The Job only (the default for batch/v1 Jobs).
    Orphan,
}

/// Deletes a Job. Returns the Job as it is after the call and whether it is gone.
pub(crate) fn delete_job(
    sh: &Arc<Shared>,
    ns: &str,
    name: &str,
    propagation: Propagation,
) -> Option<(Value, bool)> {
    let step = ms(sh.scenarios.timings().step_ms);
    let result = sh.write(|s| {
        let uid = s.get(Kind::Job, ns, name)?["metadata"]["uid"].clone();
        let pods: Vec<String> = s
            .list(Kind::Pod, Some(ns))
            .into_iter()
            .filter(|p| {
                p["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|r| r["uid"] == uid))
            })
            .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
            .collect();
        let out = if propagation == Propagation::Foreground {
            let mut job = s.get(Kind::Job, ns, name)?.clone();
            job["metadata"]["deletionTimestamp"] = serde_json::to_value(now()).ok()?;
            job["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            job["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
            (s.update(Kind::Job, ns, job).ok()?, false)
        } else {
            (s.delete(Kind::Job, ns, name)?, true)
        };
        Some((out, pods))
    });
    let (out, pods) = result?;
    let (sh, ns, name) = (sh.clone(), ns.to_string(), name.to_string());
    tokio::spawn(async move {
        sleep(step).await;
        for pod in pods {
            if propagation == Propagation::Orphan {
                let _ =
                    sh.modify::<Pod>(Kind::Pod, &ns, &pod, |p| p.metadata.owner_references = None);
            } else {
                delete_pod(&sh, &ns, &pod, step).await;
            }
        }
        if propagation == Propagation::Foreground {
            sh.write(|s| s.delete(Kind::Job, &ns, &name));
        }
    });
    Some(out)
}

/// Deletes a pod gracefully: a deletionTimestamp first, then the removal.
pub(crate) async fn delete_pod(sh: &Shared, ns: &str, name: &str, step: Duration) {
    sh.write(|s| {
        if let Some(mut p) = s.get(Kind::Pod, ns, name).cloned()
            && p["metadata"]["deletionTimestamp"].is_null()
        {
            p["metadata"]["deletionTimestamp"] = serde_json::to_value(now()).unwrap_or_default();
            p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
            let _ = s.update(Kind::Pod, ns, p);
        }
    });
    sleep(step).await;
    sh.write(|s| s.delete(Kind::Pod, ns, name));
}

/// Starts the controller task of a new Job.
pub(crate) fn spawn_job(sh: Arc<Shared>, ns: String, name: String) {
    tokio::spawn(async move {
        let _ = run(sh, ns, name).await;
    });
}

async fn run(sh: Arc<Shared>, ns: String, name: String) -> Result<(), Gone> {
    let job: Job = sh.get(Kind::Job, &ns, &name).ok_or(Gone)?;
    let scenario = sh.scenarios.for_job(&job).clone();
    let t = sh.scenarios.timings().clone();
    let spec = job.spec.clone().unwrap_or_default();
    let spec_deadline = spec
        .active_deadline_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
    let scenario_deadline = match scenario {
        Scenario::DeadlineExceeded { after_ms } => Some(ms(after_ms)),
        Scenario::DatabaseNeverReady {
            deadline_after_ms, ..
        } => deadline_after_ms.map(ms),
        _ => None,
    };
    let deadline = match (spec_deadline, scenario_deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let delete_after = match scenario {
        Scenario::DeletedWhileWaiting { after_ms } => Some(ms(after_ms)),
        _ => None,
    };
    let sim = Sim {
        sh: sh.clone(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        ns,
        job: name,
        scenario,
        t,
        spec,
    };
    let job_ref = sim.job_ref();
    tokio::select! {
        r = sim.attempts(&job_ref) => r?,
        () = maybe_sleep(deadline) => sim.fail_deadline(&job_ref).await?,
        () = maybe_sleep(delete_after) => {
            delete_job(&sh, &sim.ns, &sim.job, Propagation::Background);
            return Ok(());
        }
    }
    if let Some(ttl) = sim.spec.ttl_seconds_after_finished {
        sleep(Duration::from_secs(u64::try_from(ttl).unwrap_or(0))).await;
        sim.alive()?;
        delete_job(&sh, &sim.ns, &sim.job, Propagation::Background);
    }
    Ok(())
}

/// How a container behaves.
enum Behaviour {
    Exit {
        code: i32,
        reason: &'static str,
    },
    /// Runs until deleted, printing `repeat` (if any) every `repeat_ms`.
    Hang {
        repeat: Option<String>,
    },
    ImagePull {
        image: String,
    },
    ConfigError {
        message: String,
    },
}

enum Outcome {
    Succeeded,
    Failed { container: String, exit_code: i32 },
}

enum Action {
    FailJob(usize),
    Ignore,
    Count,
}

struct Sim {
    sh: Arc<Shared>,
    ns: String,
    job: String,
    uid: String,
    scenario: Scenario,
    t: Timing,
    spec: JobSpec,
}

fn condition(type_: &str, reason: &str, message: &str) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now()),
        last_transition_time: Some(now()),
    }
}

const POD_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// Sets a pod condition; its lastTransitionTime changes only with its status.
fn set_cond(
    pod: &mut Pod,
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
) {
    let conds = pod
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let status = if status { "True" } else { "False" };
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(now());
            }
            c.status = status.into();
            c.reason = reason.map(String::from);
            c.message = message;
        }
        None => conds.push(PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.map(String::from),
            message,
            last_transition_time: Some(now()),
            ..Default::default()
        }),
    }
    conds.sort_by_key(|c| POD_CONDITIONS.iter().position(|t| *t == c.type_));
}

fn set_status(pod: &mut Pod, init: bool, cs: ContainerStatus) {
    let st = pod.status.get_or_insert_with(Default::default);
    let list = if init {
        &mut st.init_container_statuses
    } else {
        &mut st.container_statuses
    };
    let list = list.get_or_insert_with(Vec::new);
    match list.iter_mut().find(|c| c.name == cs.name) {
        Some(c) => *c = cs,
        None => list.push(cs),
    }
}

fn status(name: &str, image: &str, state: ContainerState) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        image: image.into(),
        last_state: Some(ContainerState::default()),
        state: Some(state),
        started: Some(false),
        ..Default::default()
    }
}

fn waiting(name: &str, image: &str, reason: &str, message: Option<String>) -> ContainerStatus {
    let state = ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    };
    status(name, image, state)
}

impl Sim {
    async fn step(&self) {
        sleep(ms(self.t.step_ms)).await;
    }

    fn job_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(self.job.clone()),
            namespace: Some(self.ns.clone()),
            uid: Some(self.uid.clone()),
            ..Default::default()
        }
    }

    /// The Job still exists and is not being deleted.
    fn alive(&self) -> Result<(), Gone> {
        let ok = self.sh.read(|s| {
            s.get(Kind::Job, &self.ns, &self.job)
                .is_some_and(|j| j["metadata"]["deletionTimestamp"].is_null())
        });
        if ok { Ok(()) } else { Err(Gone) }
    }

    fn job_status(&self, f: impl FnOnce(&mut JobStatus)) -> Result<(), Gone> {
        self.sh.modify::<Job>(Kind::Job, &self.ns, &self.job, |j| {
            f(j.status.get_or_insert_with(Default::default));
        })
    }

    fn pod(&self, pod: &str, f: impl FnOnce(&mut Pod)) -> Result<(), Gone> {
        self.alive()?;
        self.sh.modify::<Pod>(Kind::Pod, &self.ns, pod, f)
    }

    /// Records an event, or counts it again when the same one exists.
    fn event(
        &self,
        on: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) -> Result<(), Gone> {
        self.alive()?;
        let existing = self.sh.read(|s| {
            s.list(Kind::Event, Some(&self.ns))
                .into_iter()
                .find(|e| {
                    e["involvedObject"]["uid"].as_str() == on.uid.as_deref()
                        && e["involvedObject"]["fieldPath"].as_str() == on.field_path.as_deref()
                        && e["reason"] == reason
                        && e["message"] == message
                })
                .and_then(|e| e["metadata"]["name"].as_str().map(String::from))
        });
        if let Some(name) = existing {
            return self.sh.modify::<Event>(Kind::Event, &self.ns, &name, |e| {
                e.count = Some(e.count.unwrap_or(1) + 1);
                e.last_timestamp = Some(now());
            });
        }
        let host = (component == KUBELET).then(|| NODE.to_string());
        let event = Event {
            metadata: ObjectMeta::default(),
            involved_object: on.clone(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some(component.into()),
                host: host.clone(),
            }),
            first_timestamp: Some(now()),
            last_timestamp: Some(now()),
            count: Some(1),
            reporting_component: Some(component.into()),
            reporting_instance: Some(host.unwrap_or_default()),
            ..Default::default()
        };
        let mut v = serde_json::to_value(event).map_err(|_| Gone)?;
        self.sh.write(|s| {
            let involved = on.name.as_deref().unwrap_or_default();
            v["metadata"]["name"] = json!(format!("{involved}.{}", s.event_suffix()));
            s.create(Kind::Event, &self.ns, v)
                .map(|_| ())
                .map_err(|_| Gone)
        })
    }

    /// Pods until one succeeds or the Job fails.
    async fn attempts(&self, job_ref: &ObjectReference) -> Result<(), Gone> {
        let backoff_limit = self.spec.backoff_limit.unwrap_or(6);
        let mut failed = 0;
        for attempt in 0.. {
            let pod = self.create_pod(job_ref).await?;
            let outcome = self.run_pod(&pod, attempt).await?;
            // Counted in uncountedTerminatedPods first, then its finalizer goes.
            let uid = self.sh.read(|s| {
                s.get(Kind::Pod, &self.ns, &pod)
                    .and_then(|p| p["metadata"]["uid"].as_str().map(String::from))
            });
            let succeeded = matches!(outcome, Outcome::Succeeded);
            self.job_status(|s| {
                s.active = Some(0);
                s.ready = Some(0);
                let u = s
                    .uncounted_terminated_pods
                    .get_or_insert_with(Default::default);
                let uids = Some(uid.into_iter().collect());
                if succeeded {
                    u.succeeded = uids;
                } else {
                    u.failed = uids;
                }
            })?;
            self.pod(&pod, |p| {
                if let Some(f) = p.metadata.finalizers.as_mut() {
                    f.retain(|f| f != TRACKING_FINALIZER);
                }
            })?;
            let Outcome::Failed {
                container,
                exit_code,
            } = outcome
            else {
                return self.succeed(job_ref).await;
            };
            match self.policy_action(&container, exit_code) {
                Action::FailJob(i) => {
                    let message = format!(
                        "Container {container} for pod {}/{pod} failed with exit code {exit_code} matching FailJob rule at index {i}",
                        self.ns
                    );
                    return self
                        .fail(job_ref, "PodFailurePolicy", &message, failed + 1)
                        .await;
                }
                Action::Ignore => {}
                Action::Count => failed += 1,
            }
            self.job_status(|s| {
                s.failed = (failed > 0).then_some(failed);
                s.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
            })?;
            if failed > backoff_limit {
                let message = "Job has reached the specified backoff limit";
                return self
                    .fail(job_ref, "BackoffLimitExceeded", message, failed)
                    .await;
            }
            sleep(ms(self.t.retry_ms)).await;
        }
        Ok(())
    }

    /// The first rule of the Job's podFailurePolicy that matches, as the controller
    /// evaluates it for a failed container.
    fn policy_action(&self, container: &str, exit_code: i32) -> Action {
        let rules = self.spec.pod_failure_policy.iter().flat_map(|p| &p.rules);
        for (i, rule) in rules.enumerate() {
            let Some(req) = &rule.on_exit_codes else {
                continue;
            };
            if req
                .container_name
                .as_deref()
                .is_some_and(|c| c != container)
            {
                continue;
            }
            let listed = req.values.contains(&exit_code);
            let matched = match req.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed && exit_code != 0,
                _ => false,
            };
            if matched {
                return match rule.action.as_str() {
                    "FailJob" => Action::FailJob(i),
                    "Ignore" => Action::Ignore,
                    _ => Action::Count,
                };
            }
        }
        Action::Count
    }

    async fn create_pod(&self, job_ref: &ObjectReference) -> Result<String, Gone> {
        self.alive()?;
        let job: Job = self.sh.get(Kind::Job, &self.ns, &self.job).ok_or(Gone)?;
        let template = job.spec.unwrap_or_default().template;
        let meta = template.metadata.unwrap_or_default();
        let mut spec = template.spec.unwrap_or_default();
        spec.service_account_name
            .get_or_insert_with(|| "default".into());
        spec.enable_service_links.get_or_insert(true);
        spec.priority.get_or_insert(0);
        spec.preemption_policy
            .get_or_insert_with(|| "PreemptLowerPriority".into());
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(300),
                value: None,
            });
        }
        let all = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        let any_resources = all.into_iter().any(|c| {
            c.resources
                .as_ref()
                .is_some_and(|r| r.requests.is_some() || r.limits.is_some())
        });
        let pod = Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", self.job)),
                labels: meta.labels,
                annotations: meta.annotations,
                finalizers: Some(vec![TRACKING_FINALIZER.into()]),
                owner_references: Some(vec![OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    name: self.job.clone(),
                    uid: self.uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(spec),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                qos_class: Some(
                    if any_resources {
                        "Burstable"
                    } else {
                        "BestEffort"
                    }
                    .into(),
                ),
                ..Default::default()
            }),
        };
        let v = serde_json::to_value(pod).map_err(|_| Gone)?;
        let created = self
            .sh
            .write(|s| s.create(Kind::Pod, &self.ns, v))
            .map_err(|_| Gone)?;
        let name = created["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.event(
            job_ref,
            NORMAL,
            "SuccessfulCreate",
            &format!("Created pod: {name}"),
            JOB_CONTROLLER,
        )?;
        self.job_status(|s| {
            s.start_time.get_or_insert_with(now);
            s.active = Some(1);
            s.ready = Some(0);
            s.terminating = Some(0);
            s.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
        })?;
        Ok(name)
    }

    /// Loops until the Job or the pod goes away.
    async fn forever(&self, pod: &str) -> Result<Outcome, Gone> {
        loop {
            sleep(ms(self.t.repeat_ms)).await;
            self.alive()?;
            self.sh
                .read(|s| s.get(Kind::Pod, &self.ns, pod).map(|_| ()))
                .ok_or(Gone)?;
        }
    }

    async fn run_pod(&self, pod: &str, attempt: u32) -> Result<Outcome, Gone> {
        let p: Pod = self.sh.get(Kind::Pod, &self.ns, pod).ok_or(Gone)?;
        let pod_ref = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.into()),
            namespace: Some(self.ns.clone()),
            uid: p.metadata.uid.clone(),
            ..Default::default()
        };
        let spec = p.spec.unwrap_or_default();
        let image = |c: &k8s_openapi::api::core::v1::Container| {
            (c.name.clone(), c.image.clone().unwrap_or_default())
        };
        let inits: Vec<(String, String)> =
            spec.init_containers.iter().flatten().map(image).collect();
        let mains: Vec<(String, String)> = spec.containers.iter().map(image).collect();
        self.step().await;
        if let Scenario::FailedScheduling { message } = &self.scenario {
            self.pod(pod, |p| {
                set_cond(
                    p,
                    "PodScheduled",
                    false,
                    Some("Unschedulable"),
                    Some(message.clone()),
                )
            })?;
            self.event(&pod_ref, WARNING, "FailedScheduling", message, SCHEDULER)?;
            return self.forever(pod).await;
        }
        self.pod(pod, |p| {
            p.spec.get_or_insert_with(Default::default).node_name = Some(NODE.into());
            set_cond(p, "PodScheduled", true, None, None);
        })?;
        let assigned = format!("Successfully assigned {}/{pod} to {NODE}", self.ns);
        self.event(&pod_ref, NORMAL, "Scheduled", &assigned, SCHEDULER)?;
        self.step().await;
        let names = |l: &[(String, String)]| {
            l.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.pod(pod, |p| {
            let st = p.status.get_or_insert_with(Default::default);
            st.host_ip = Some(NODE_IP.into());
            st.host_ips = Some(vec![HostIP { ip: NODE_IP.into() }]);
            st.start_time = Some(now());
            for (c, image) in &inits {
                set_status(p, true, waiting(c, image, "PodInitializing", None));
            }
            let reason = if inits.is_empty() {
                "ContainerCreating"
            } else {
                "PodInitializing"
            };
            for (c, image) in &mains {
                set_status(p, false, waiting(c, image, reason, None));
            }
            set_cond(p, "PodReadyToStartContainers", false, None, None);
            if inits.is_empty() {
                set_cond(p, "Initialized", true, None, None);
            } else {
                let msg = format!("containers with incomplete status: [{}]", names(&inits));
                set_cond(
                    p,
                    "Initialized",
                    false,
                    Some("ContainersNotInitialized"),
                    Some(msg),
                );
            }
            let msg = format!("containers with unready status: [{}]", names(&mains));
            set_cond(
                p,
                "Ready",
                false,
                Some("ContainersNotReady"),
                Some(msg.clone()),
            );
            set_cond(
                p,
                "ContainersReady",
                false,
                Some("ContainersNotReady"),
                Some(msg),
            );
        })?;
        self.step().await;
        self.pod(pod, |p| {
            set_cond(p, "PodReadyToStartContainers", true, None, None);
            let st = p.status.get_or_insert_with(Default::default);
            st.pod_ip = Some("10.244.0.17".into());
            st.pod_ips = Some(vec![PodIP {
                ip: "10.244.0.17".into(),
            }]);
        })?;

        // Which container each scenario is about.
        let main = mains
            .iter()
            .find(|(n, _)| n == "run-migrations")
            .or(mains.first())
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        let in_order = || inits.iter().chain(&mains);
        let first = in_order()
            .next()
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        let waiter = inits
            .iter()
            .find(|(n, _)| n == "wait-for-postgres")
            .or(inits.first())
            .map_or(main.clone(), |(n, _)| n.clone());
        let behaviour = |c: &str| -> Behaviour {
            let exit = |code, reason| Behaviour::Exit { code, reason };
            match &self.scenario {
                Scenario::ImagePullBackOff { image } => {
                    let target = in_order()
                        .find(|(_, i)| i == image)
                        .map_or(main.as_str(), |(n, _)| n);
                    if c == target {
                        return Behaviour::ImagePull {
                            image: image.clone(),
                        };
                    }
                }
                Scenario::CreateContainerConfigError { message } if c == first => {
                    return Behaviour::ConfigError {
                        message: message.clone(),
                    };
                }
                Scenario::DatabaseNeverReady { line, .. } if c == waiter => {
                    return Behaviour::Hang {
                        repeat: Some(line.clone()),
                    };
                }
                Scenario::DeletedWhileWaiting { .. } if c == waiter => {
                    return Behaviour::Hang {
                        repeat: Some(WAITING_LINE.into()),
                    };
                }
                _ => {}
            }
            if c != main {
                return exit(0, "Completed");
            }
            match &self.scenario {
                Scenario::FailThenRetry {
                    exit_code,
                    attempts,
                    ..
                } if attempt < *attempts => exit(*exit_code, "Error"),
                Scenario::PodFailurePolicy { exit_code, .. } => exit(*exit_code, "Error"),
                Scenario::OomKilled { .. } => exit(137, "OOMKilled"),
                Scenario::DeadlineExceeded { .. } => Behaviour::Hang { repeat: None },
                _ => exit(0, "Completed"),
            }
        };

        let mut outcome = Outcome::Succeeded;
        for (c, image) in &inits {
            let code = self
                .run_container(pod, &pod_ref, c, image, true, behaviour(c))
                .await?;
            if code != 0 {
                outcome = Outcome::Failed {
                    container: c.clone(),
                    exit_code: code,
                };
                break;
            }
        }
        if matches!(outcome, Outcome::Succeeded) {
            if !inits.is_empty() {
                self.pod(pod, |p| set_cond(p, "Initialized", true, None, None))?;
            }
            for (c, image) in &mains {
                let code = self
                    .run_container(pod, &pod_ref, c, image, false, behaviour(c))
                    .await?;
                if code != 0 && matches!(outcome, Outcome::Succeeded) {
                    outcome = Outcome::Failed {
                        container: c.clone(),
                        exit_code: code,
                    };
                }
            }
        }
        let succeeded = matches!(outcome, Outcome::Succeeded);
        self.pod(pod, |p| {
            let reason = if succeeded {
                "PodCompleted"
            } else {
                "PodFailed"
            };
            set_cond(p, "PodReadyToStartContainers", false, None, None);
            set_cond(p, "Ready", false, Some(reason), None);
            set_cond(p, "ContainersReady", false, Some(reason), None);
            let phase = if succeeded { "Succeeded" } else { "Failed" };
            p.status.get_or_insert_with(Default::default).phase = Some(phase.into());
        })?;
        Ok(outcome)
    }

    /// Runs one container; returns its exit code, or never when it hangs.
    async fn run_container(
        &self,
        pod: &str,
        pod_ref: &ObjectReference,
        c: &str,
        image: &str,
        init: bool,
        behaviour: Behaviour,
    ) -> Result<i32, Gone> {
        let list = if init { "initContainers" } else { "containers" };
        let on = ObjectReference {
            field_path: Some(format!("spec.{list}{{{c}}}")),
            ..pod_ref.clone()
        };
        let repeat = ms(self.t.repeat_ms);
        match behaviour {
            Behaviour::ImagePull { image } => {
                self.event(
                    &on,
                    NORMAL,
                    "Pulling",
                    &format!("Pulling image \"{image}\""),
                    KUBELET,
                )?;
                self.step().await;
                let err = format!(
                    "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
                );
                self.pod(pod, |p| {
                    set_status(
                        p,
                        init,
                        waiting(c, &image, "ErrImagePull", Some(err.clone())),
                    )
                })?;
                let failed = format!("Failed to pull image \"{image}\": {err}");
                self.event(&on, WARNING, "Failed", &failed, KUBELET)?;
                self.event(&on, WARNING, "Failed", "Error: ErrImagePull", KUBELET)?;
                self.step().await;
                let back_off = format!("Back-off pulling image \"{image}\"");
                self.pod(pod, |p| {
                    set_status(
                        p,
                        init,
                        waiting(c, &image, "ImagePullBackOff", Some(back_off.clone())),
                    );
                })?;
                loop {
                    self.event(&on, NORMAL, "BackOff", &back_off, KUBELET)?;
                    self.event(&on, WARNING, "Failed", "Error: ImagePullBackOff", KUBELET)?;
                    sleep(repeat).await;
                }
            }
            Behaviour::ConfigError { message } => {
                let present = format!("Container image \"{image}\" already present on machine");
                self.event(&on, NORMAL, "Pulled", &present, KUBELET)?;
                self.step().await;
                let reason = "CreateContainerConfigError";
                self.pod(pod, |p| {
                    set_status(p, init, waiting(c, image, reason, Some(message.clone())))
                })?;
                loop {
                    self.event(
                        &on,
                        WARNING,
                        "Failed",
                        &format!("Error: {message}"),
                        KUBELET,
                    )?;
                    sleep(repeat).await;
                }
            }
            Behaviour::Exit { .. } | Behaviour::Hang { .. } => {}
        }
        self.event(
            &on,
            NORMAL,
            "Pulling",
            &format!("Pulling image \"{image}\""),
            KUBELET,
        )?;
        self.step().await;
        let pulled = format!(
            "Successfully pulled image \"{image}\" in 812ms (812ms including waiting). Image size: 10485760 bytes."
        );
        self.event(&on, NORMAL, "Pulled", &pulled, KUBELET)?;
        self.event(
            &on,
            NORMAL,
            "Created",
            &format!("Created container: {c}"),
            KUBELET,
        )?;
        let (container_id, image_id) = self
            .sh
            .write(|s| (format!("containerd://{}", s.hex_id()), s.hex_id()));
        let image_id = format!("{image}@sha256:{image_id}");
        let started = now();
        self.sh.log_state(&self.ns, pod, c, false);
        let base = |state: ContainerState, ready: bool, is_started: bool| ContainerStatus {
            container_id: Some(container_id.clone()),
            image_id: image_id.clone(),
            ready,
            started: Some(is_started),
            ..status(c, image, state)
        };
        let running = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started.clone()),
            }),
            ..Default::default()
        };
        self.pod(pod, |p| {
            set_status(p, init, base(running, !init, true));
            if !init {
                set_cond(p, "ContainersReady", true, None, None);
                set_cond(p, "Ready", true, None, None);
                p.status.get_or_insert_with(Default::default).phase = Some("Running".into());
            }
        })?;
        if !init {
            self.job_status(|s| s.ready = Some(1))?;
        }
        self.event(
            &on,
            NORMAL,
            "Started",
            &format!("Started container {c}"),
            KUBELET,
        )?;
        let (code, reason) = match behaviour {
            Behaviour::Exit { code, reason } => (code, reason),
            Behaviour::Hang { repeat: line } => {
                for l in self.lines(c, line.is_some()) {
                    sleep(ms(self.t.line_ms)).await;
                    self.sh.push_log(&self.ns, pod, c, &l)?;
                }
                loop {
                    sleep(repeat).await;
                    self.alive()?;
                    match &line {
                        Some(l) => self.sh.push_log(&self.ns, pod, c, l)?,
                        None => self
                            .sh
                            .read(|s| s.get(Kind::Pod, &self.ns, pod).map(|_| ()))
                            .ok_or(Gone)?,
                    }
                }
            }
            Behaviour::ImagePull { .. } | Behaviour::ConfigError { .. } => return Err(Gone),
        };
        for l in self.lines(c, false) {
            sleep(ms(self.t.line_ms)).await;
            self.sh.push_log(&self.ns, pod, c, &l)?;
        }
        self.step().await;
        let terminated = ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.into()),
                started_at: Some(started),
                finished_at: Some(now()),
                container_id: Some(container_id.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.pod(pod, |p| {
            set_status(p, init, base(terminated, init && code == 0, false));
            if !init {
                set_cond(p, "ContainersReady", false, Some("PodCompleted"), None);
                set_cond(p, "Ready", false, Some("PodCompleted"), None);
            }
        })?;
        self.sh.log_state(&self.ns, pod, c, true);
        Ok(code)
    }

    /// The scenario's lines for a container (none for one that repeats a line).
    fn lines(&self, c: &str, repeats: bool) -> Vec<String> {
        if repeats {
            return Vec::new();
        }
        let logs = match &self.scenario {
            Scenario::Success { logs }
            | Scenario::FailThenRetry { logs, .. }
            | Scenario::PodFailurePolicy { logs, .. }
            | Scenario::OomKilled { logs } => logs.clone(),
            _ => default_logs(),
        };
        logs.get(c).cloned().unwrap_or_default()
    }

    async fn succeed(&self, job_ref: &ObjectReference) -> Result<(), Gone> {
        let reason = "CompletionsReached";
        let message = "Reached expected number of succeeded pods";
        self.job_status(|s| {
            s.active = Some(0);
            s.ready = Some(0);
            s.succeeded = Some(1);
            s.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
            s.conditions.get_or_insert_with(Vec::new).push(condition(
                "SuccessCriteriaMet",
                reason,
                message,
            ));
        })?;
        self.step().await;
        self.job_status(|s| {
            s.completion_time = Some(now());
            s.conditions
                .get_or_insert_with(Vec::new)
                .push(condition("Complete", reason, message));
        })?;
        self.event(
            job_ref,
            NORMAL,
            "Completed",
            "Job completed",
            JOB_CONTROLLER,
        )
    }

    async fn fail(
        &self,
        job_ref: &ObjectReference,
        reason: &str,
        message: &str,
        failed: i32,
    ) -> Result<(), Gone> {
        self.job_status(|s| {
            s.active = Some(0);
            s.ready = Some(0);
            s.failed = Some(failed);
            s.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
            s.conditions.get_or_insert_with(Vec::new).push(condition(
                "FailureTarget",
                reason,
                message,
            ));
        })?;
        self.event(job_ref, WARNING, reason, message, JOB_CONTROLLER)?;
        self.step().await;
        self.job_status(|s| {
            s.conditions
                .get_or_insert_with(Vec::new)
                .push(condition("Failed", reason, message));
        })
    }

    /// activeDeadlineSeconds: the active pods are deleted, then the Job fails.
    async fn fail_deadline(&self, job_ref: &ObjectReference) -> Result<(), Gone> {
        let reason = "DeadlineExceeded";
        let message = "Job was active longer than specified deadline";
        let active: Vec<String> = self.sh.read(|s| {
            s.list(Kind::Pod, Some(&self.ns))
                .into_iter()
                .filter(|p| {
                    p["metadata"]["ownerReferences"][0]["uid"] == self.uid.as_str()
                        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                })
                .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
                .collect()
        });
        let n = i32::try_from(active.len()).unwrap_or(i32::MAX);
        let failed = self
            .sh
            .get::<Job>(Kind::Job, &self.ns, &self.job)
            .and_then(|j| j.status?.failed)
            .unwrap_or(0);
        self.job_status(|s| {
            s.active = Some(0);
            s.ready = Some(0);
            s.terminating = Some(n);
            s.conditions.get_or_insert_with(Vec::new).push(condition(
                "FailureTarget",
                reason,
                message,
            ));
        })?;
        self.event(job_ref, WARNING, reason, message, JOB_CONTROLLER)?;
        for pod in &active {
            delete_pod(&self.sh, &self.ns, pod, ms(self.t.step_ms)).await;
            let deleted = format!("Deleted pod: {pod}");
            self.event(
                job_ref,
                NORMAL,
                "SuccessfulDelete",
                &deleted,
                JOB_CONTROLLER,
            )?;
        }
        self.job_status(|s| {
            s.terminating = Some(0);
            s.failed = Some(failed + n).filter(|f| *f > 0);
            s.conditions
                .get_or_insert_with(Vec::new)
                .push(condition("Failed", reason, message));
        })
    }
}
