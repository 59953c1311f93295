//! The fake driven by the real kube-rs client, through a written kubeconfig.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Config};
use kubemigrate_fakekube::{FakeCluster, Scenario, Scenarios, Timing};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(20);

async fn client(cluster: &FakeCluster) -> Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&path).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    assert_eq!(
        config.cluster_url.to_string(),
        format!("{}/", cluster.url())
    );
    Client::try_from(config).unwrap()
}

/// A Job shaped as kubemigrate renders one: two init containers, `run-migrations`,
/// a FailJob rule on exit code 4.
fn job(name: &str, target: &str, backoff_limit: i32) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"kubemigrate.io/target": target}},
        "spec": {
            "backoffLimit": backoff_limit,
            "podFailurePolicy": {"rules": [{
                "action": "FailJob",
                "onExitCodes": {"containerName": "run-migrations", "operator": "In", "values": [4]},
            }]},
            "template": {
                "metadata": {"labels": {"kubemigrate.io/target": target}},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [
                        {"name": "wait-for-postgres", "image": "kubemigrate/runner:1.0"},
                        {"name": "install-runner", "image": "kubemigrate/runner:1.0"},
                    ],
                    "containers": [{"name": "run-migrations", "image": "shop/orders:1.0"}],
                },
            },
        },
    }))
    .unwrap()
}

fn summary(j: &Job) -> String {
    let s = j.status.clone().unwrap_or_default();
    let uncounted = s.uncounted_terminated_pods.unwrap_or_default();
    let n = |v: Option<Vec<String>>| v.map_or(0, |v| v.len());
    let conditions: Vec<String> = s
        .conditions
        .iter()
        .flatten()
        .map(|c| format!("{}:{}", c.type_, c.reason.clone().unwrap_or_default()))
        .collect();
    format!(
        "active={} ready={} failed={} succeeded={} uncounted={} [{}]",
        s.active.unwrap_or(0),
        s.ready.unwrap_or(0),
        s.failed.unwrap_or(0),
        s.succeeded.unwrap_or(0),
        n(uncounted.succeeded) + n(uncounted.failed),
        conditions.join(",")
    )
}

fn finished(j: &Job) -> bool {
    j.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

/// Watches the Job (started before it is created), creates it, and returns the
/// distinct consecutive status summaries until `done`.
async fn job_statuses(
    client: &Client,
    job: Job,
    done: impl Fn(&Job) -> bool,
) -> (Vec<String>, Job) {
    let api: Api<Job> = Api::default_namespaced(client.clone());
    let name = job.metadata.name.clone().unwrap();
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api.clone(), cfg).boxed();
    loop {
        match stream.try_next().await.unwrap().unwrap() {
            watcher::Event::InitDone => break,
            watcher::Event::Init => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    api.create(&PostParams::default(), &job).await.unwrap();
    let mut seen: Vec<String> = Vec::new();
    let run = async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            if let watcher::Event::Apply(j) = ev {
                let s = summary(&j);
                if seen.last() != Some(&s) {
                    seen.push(s);
                }
                if done(&j) {
                    return j;
                }
            }
        }
        panic!("the watch ended");
    };
    let last = tokio::time::timeout(TIMEOUT, run).await.unwrap();
    (seen, last)
}

fn pods_of(cluster: &FakeCluster, job: &str) -> Vec<Pod> {
    cluster
        .pods()
        .into_iter()
        .filter(|p| {
            p.metadata.labels.as_ref().and_then(|l| l.get("job-name")) == Some(&job.to_string())
        })
        .collect()
}

#[tokio::test]
async fn success_is_seen_through_a_watch_with_logs_and_events() {
    let timing = Timing {
        line_ms: 40,
        ..Timing::default()
    };
    let cluster = FakeCluster::start(Scenarios::new(Scenario::success()).timing(timing)).unwrap();
    let client = client(&cluster).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());

    // Follow run-migrations' log as soon as the container runs, as kubemigrate does.
    let follower = {
        let pods = pods.clone();
        tokio::spawn(async move {
            let cfg = watcher::Config::default().labels("batch.kubernetes.io/job-name=orders-1");
            let mut stream = watcher(pods.clone(), cfg).boxed();
            let mut states = Vec::new();
            let name = loop {
                let ev = stream.try_next().await.unwrap().unwrap();
                let (watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev else {
                    continue;
                };
                let status = p.status.clone().unwrap_or_default();
                let main = status.container_statuses.iter().flatten().next().cloned();
                let state = main.and_then(|c| c.state).unwrap_or_default();
                if let Some(w) = &state.waiting {
                    states.push(w.reason.clone().unwrap());
                }
                if state.running.is_some() || state.terminated.is_some() {
                    break p.metadata.name.unwrap();
                }
            };
            let lp = LogParams {
                container: Some("run-migrations".into()),
                follow: true,
                ..LogParams::default()
            };
            let lines: Vec<String> = pods
                .log_stream(&name, &lp)
                .await
                .unwrap()
                .lines()
                .try_collect()
                .await
                .unwrap();
            (name, states, lines)
        })
    };

    let (seen, job) = job_statuses(&client, job("orders-1", "orders", 2), finished).await;
    assert_eq!(
        seen,
        [
            "active=0 ready=0 failed=0 succeeded=0 uncounted=0 []",
            "active=1 ready=0 failed=0 succeeded=0 uncounted=0 []",
            "active=1 ready=1 failed=0 succeeded=0 uncounted=0 []",
            "active=0 ready=0 failed=0 succeeded=0 uncounted=1 []",
            "active=0 ready=0 failed=0 succeeded=1 uncounted=0 [SuccessCriteriaMet:CompletionsReached]",
            "active=0 ready=0 failed=0 succeeded=1 uncounted=0 [SuccessCriteriaMet:CompletionsReached,Complete:CompletionsReached]",
        ]
    );
    let status = job.status.unwrap();
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let spec = job.spec.unwrap();
    let uid = job.metadata.uid.unwrap();
    assert_eq!(
        spec.selector.unwrap().match_labels.unwrap()["batch.kubernetes.io/controller-uid"],
        uid
    );
    let labels = spec.template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels["job-name"], "orders-1");
    assert_eq!(labels["controller-uid"], uid);

    let (pod, states, lines) = tokio::time::timeout(TIMEOUT, follower)
        .await
        .unwrap()
        .unwrap();
    assert!(states.iter().all(|s| s == "PodInitializing"), "{states:?}");
    assert_eq!(
        lines,
        [
            "applying 0001_create_orders.sql",
            "applied 1 migration in 12ms"
        ]
    );

    let p = pods.get(&pod).await.unwrap();
    let status = p.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let init = status.init_container_statuses.unwrap();
    assert_eq!(init.len(), 2);
    for c in init
        .iter()
        .chain(status.container_statuses.iter().flatten())
    {
        let t = c.state.clone().unwrap().terminated.unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
        assert!(t.started_at.is_some() && t.finished_at.is_some());
    }

    let events: Api<Event> = Api::default_namespaced(client.clone());
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=Pod,involvedObject.name={pod}"
    ));
    let reasons: Vec<String> = events
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.reason.unwrap())
        .collect();
    for r in ["Scheduled", "Pulling", "Pulled", "Created", "Started"] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }
    let lp = ListParams::default().fields("involvedObject.name=orders-1");
    let job_events: Vec<String> = events
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.message.unwrap())
        .collect();
    assert_eq!(
        job_events,
        [format!("Created pod: {pod}"), "Job completed".into()]
    );

    let verbs: Vec<String> = cluster.requests().into_iter().map(|r| r.verb).collect();
    assert!(verbs.iter().any(|v| v == "watch") && verbs.iter().any(|v| v == "create"));
}

#[tokio::test]
async fn server_side_apply_creates_then_replaces() {
    let cluster = FakeCluster::start(Scenarios::default()).unwrap();
    let client = client(&cluster).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let pp = PatchParams::apply("kubemigrate").force();
    let cm = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-sql", "labels": {"a": "b"}}, "data": data});
    let first = cms
        .patch(
            "shop-sql",
            &pp,
            &Patch::Apply(cm(json!({"x": "1", "y": "2"}))),
        )
        .await
        .unwrap();
    let second = cms
        .patch("shop-sql", &pp, &Patch::Apply(cm(json!({"x": "3"}))))
        .await
        .unwrap();
    assert_eq!(first.metadata.uid, second.metadata.uid);
    assert_ne!(
        first.metadata.resource_version,
        second.metadata.resource_version
    );
    let got = cms.get("shop-sql").await.unwrap();
    assert_eq!(got.data.unwrap(), [("x".into(), "3".into())].into());
    let mf = got.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("kubemigrate"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let patches = cluster
        .requests()
        .into_iter()
        .filter(|r| r.verb == "patch")
        .collect::<Vec<_>>();
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[0].query_param("fieldManager").as_deref(),
        Some("kubemigrate")
    );
    assert_eq!(patches[0].query_param("force").as_deref(), Some("true"));

    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"DB_PASSWORD": "hunter2"}});
    let s = secrets.patch("creds", &pp, &Patch::Apply(s)).await.unwrap();
    assert_eq!(s.data.unwrap()["DB_PASSWORD"].0, b"hunter2");
    assert_eq!(s.type_.as_deref(), Some("Opaque"));

    // Applying a Job creates it (and runs it); applying it again changes nothing.
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let j = job("applied", "applied", 0);
    let created = jobs.patch("applied", &pp, &Patch::Apply(&j)).await.unwrap();
    let again = jobs.patch("applied", &pp, &Patch::Apply(&j)).await.unwrap();
    assert_eq!(created.metadata.uid, again.metadata.uid);
    let done = eventually(|| cluster.jobs().into_iter().find(finished)).await;
    assert_eq!(done.metadata.name.as_deref(), Some("applied"));

    // A Job inserted by the test runs too.
    let mut v = serde_json::to_value(job("inserted", "inserted", 0)).unwrap();
    v["metadata"]["namespace"] = json!("other");
    cluster.insert(v).unwrap();
    let done = eventually(|| {
        cluster
            .jobs()
            .into_iter()
            .find(|j| j.metadata.namespace.as_deref() == Some("other") && finished(j))
    })
    .await;
    assert_eq!(done.metadata.name.as_deref(), Some("inserted"));
}

#[tokio::test]
async fn errors_are_status_objects_worded_as_the_api_server() {
    let cluster = FakeCluster::start(
        Scenarios::default()
            .forbid("create", "jobs")
            .forbid("get", "pods/log"),
    )
    .unwrap();
    let client = client(&cluster).await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let err = |e: kube::Error| match e {
        kube::Error::Api(s) => *s,
        other => panic!("{other:?}"),
    };
    let e = err(jobs
        .create(&PostParams::default(), &job("x", "x", 0))
        .await
        .unwrap_err());
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "jobs.batch is forbidden: User \"system:serviceaccount:default:default\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"default\""
    );
    let e = err(jobs.get("nope").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "jobs.batch \"nope\" not found");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let e = err(pods.logs("p", &LogParams::default()).await.unwrap_err());
    assert_eq!(
        e.message,
        "pods \"p\" is forbidden: User \"system:serviceaccount:default:default\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"default\""
    );
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let e = err(cms.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "configmaps \"c\" already exists");
    let e = err(client
        .request::<serde_json::Value>(
            http::Request::get("/apis/nope/v1/things")
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap_err());
    assert_eq!(e.code, 404);
}

#[tokio::test]
async fn deleting_a_job_ends_its_watch_in_a_deletion_and_removes_its_pods() {
    let s = Scenario::DatabaseNeverReady {
        line: "waiting for postgres".into(),
        deadline_after_ms: None,
    };
    let cluster = FakeCluster::start(Scenarios::new(s)).unwrap();
    let client = client(&cluster).await;
    let api: Api<Job> = Api::default_namespaced(client.clone());
    let (seen, _) = job_statuses(&client, job("stuck", "stuck", 1), |j| {
        j.status.as_ref().and_then(|s| s.active) == Some(1)
    })
    .await;
    assert_eq!(
        seen.last().unwrap(),
        "active=1 ready=0 failed=0 succeeded=0 uncounted=0 []"
    );

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let waiting = |p: &Pod| {
        let s = p.status.clone().unwrap_or_default();
        let init = s.init_container_statuses.unwrap_or_default();
        init.first()
            .and_then(|c| c.state.clone()?.running)
            .is_some()
    };
    let pod = tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Some(p) = pods_of(&cluster, "stuck").into_iter().find(waiting) {
                return p.metadata.name.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let lp = LogParams {
        container: Some("wait-for-postgres".into()),
        follow: true,
        ..Default::default()
    };
    let mut lines = pods.log_stream(&pod, &lp).await.unwrap().lines();
    for _ in 0..2 {
        assert_eq!(
            lines.try_next().await.unwrap().unwrap(),
            "waiting for postgres"
        );
    }
    // The main container waits for the init container.
    let e = match pods
        .logs(
            &pod,
            &LogParams {
                container: Some("run-migrations".into()),
                ..Default::default()
            },
        )
        .await
    {
        Err(kube::Error::Api(s)) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        format!(
            "container \"run-migrations\" in pod \"{pod}\" is waiting to start: PodInitializing"
        )
    );

    let mut stream = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=stuck"),
    )
    .boxed();
    // The watcher lists when first polled: let it see the Job first.
    while !matches!(
        stream.try_next().await.unwrap(),
        Some(watcher::Event::InitDone)
    ) {}
    api.delete("stuck", &DeleteParams::background())
        .await
        .unwrap();
    let deleted = tokio::time::timeout(TIMEOUT, async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            if let watcher::Event::Delete(j) = ev {
                return j;
            }
        }
        panic!("the watch ended");
    })
    .await
    .unwrap();
    assert_eq!(deleted.metadata.name.as_deref(), Some("stuck"));
    tokio::time::timeout(TIMEOUT, async {
        while !pods_of(&cluster, "stuck").is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let deletes = cluster
        .requests()
        .into_iter()
        .filter(|r| r.verb == "delete")
        .count();
    assert_eq!(deletes, 1);
}

// One test per scenario: the Job's statuses as a watch sees them, and what the pods
// and events show.

fn fast() -> Timing {
    Timing {
        step_ms: 5,
        line_ms: 1,
        retry_ms: 10,
        repeat_ms: 20,
        bookmark_ms: 1000,
    }
}

async fn start(scenario: Scenario) -> (FakeCluster, Client) {
    let cluster = FakeCluster::start(
        Scenarios::new(Scenario::success())
            .target("orders", scenario)
            .timing(fast()),
    )
    .unwrap();
    let client = client(&cluster).await;
    (cluster, client)
}

/// Polls the cluster until `f` returns something.
async fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> T {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Some(t) = f() {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap()
}

fn main_state(p: &Pod) -> k8s_openapi::api::core::v1::ContainerState {
    let s = p.status.clone().unwrap_or_default();
    let c = s.container_statuses.unwrap_or_default();
    c.first().and_then(|c| c.state.clone()).unwrap_or_default()
}

fn events_of(cluster: &FakeCluster, name: &str) -> Vec<(String, String, String)> {
    cluster
        .objects("Event")
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("type"), s("reason"), s("message"))
        })
        .collect()
}

fn condition_message(j: &Job, type_: &str) -> String {
    let s = j.status.clone().unwrap();
    let c = s.conditions.unwrap().into_iter().find(|c| c.type_ == type_);
    c.unwrap().message.unwrap()
}

#[tokio::test]
async fn fail_then_retry_until_the_backoff_limit() {
    let (cluster, client) = start(Scenario::fail_then_retry(3, u32::MAX)).await;
    let (seen, job) = job_statuses(&client, job("orders-2", "orders", 1), finished).await;
    assert_eq!(
        seen,
        [
            "active=0 ready=0 failed=0 succeeded=0 uncounted=0 []",
            "active=1 ready=0 failed=0 succeeded=0 uncounted=0 []",
            "active=1 ready=1 failed=0 succeeded=0 uncounted=0 []",
            "active=0 ready=0 failed=0 succeeded=0 uncounted=1 []",
            "active=0 ready=0 failed=1 succeeded=0 uncounted=0 []",
            "active=1 ready=0 failed=1 succeeded=0 uncounted=0 []",
            "active=1 ready=1 failed=1 succeeded=0 uncounted=0 []",
            "active=0 ready=0 failed=1 succeeded=0 uncounted=1 []",
            "active=0 ready=0 failed=2 succeeded=0 uncounted=0 []",
            "active=0 ready=0 failed=2 succeeded=0 uncounted=0 [FailureTarget:BackoffLimitExceeded]",
            "active=0 ready=0 failed=2 succeeded=0 uncounted=0 [FailureTarget:BackoffLimitExceeded,Failed:BackoffLimitExceeded]",
        ]
    );
    assert_eq!(
        condition_message(&job, "Failed"),
        "Job has reached the specified backoff limit"
    );
    let pods = pods_of(&cluster, "orders-2");
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert_eq!(p.status.clone().unwrap().phase.as_deref(), Some("Failed"));
        let t = main_state(p).terminated.unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    }
    // Failed pods keep their logs.
    let api: Api<Pod> = Api::default_namespaced(client);
    let name = pods[0].metadata.name.clone().unwrap();
    let lp = LogParams {
        container: Some("run-migrations".into()),
        ..Default::default()
    };
    let log = api.logs(&name, &lp).await.unwrap();
    assert!(log.ends_with("already exists\n"), "{log}");
}

#[tokio::test]
async fn fail_then_retry_succeeds_within_the_backoff_limit() {
    let (cluster, client) = start(Scenario::fail_then_retry(3, 1)).await;
    let (seen, _) = job_statuses(&client, job("orders-3", "orders", 2), finished).await;
    assert_eq!(
        seen.last().unwrap(),
        "active=0 ready=0 failed=1 succeeded=1 uncounted=0 [SuccessCriteriaMet:CompletionsReached,Complete:CompletionsReached]"
    );
    assert_eq!(pods_of(&cluster, "orders-3").len(), 2);
}

#[tokio::test]
async fn pod_failure_policy_fails_the_job_at_once() {
    let (cluster, client) = start(Scenario::pod_failure_policy(4)).await;
    let (seen, job) = job_statuses(&client, job("orders-4", "orders", 6), finished).await;
    assert_eq!(
        &seen[3..],
        [
            "active=0 ready=0 failed=0 succeeded=0 uncounted=1 []",
            "active=0 ready=0 failed=1 succeeded=0 uncounted=0 [FailureTarget:PodFailurePolicy]",
            "active=0 ready=0 failed=1 succeeded=0 uncounted=0 [FailureTarget:PodFailurePolicy,Failed:PodFailurePolicy]",
        ]
    );
    let pods = pods_of(&cluster, "orders-4");
    assert_eq!(pods.len(), 1);
    let pod = pods[0].metadata.name.clone().unwrap();
    let message = format!(
        "Container run-migrations for pod default/{pod} failed with exit code 4 matching FailJob rule at index 0"
    );
    assert_eq!(condition_message(&job, "Failed"), message);
    assert!(events_of(&cluster, "orders-4").contains(&(
        "Warning".into(),
        "PodFailurePolicy".into(),
        message
    )));
}

#[tokio::test]
async fn an_exit_code_no_rule_matches_counts_toward_the_backoff_limit() {
    let (cluster, client) = start(Scenario::pod_failure_policy(5)).await;
    let (_, job) = job_statuses(&client, job("orders-5", "orders", 0), finished).await;
    assert_eq!(
        condition_message(&job, "FailureTarget"),
        "Job has reached the specified backoff limit"
    );
    assert_eq!(pods_of(&cluster, "orders-5").len(), 1);
}

#[tokio::test]
async fn image_pull_back_off_never_fails_the_job() {
    let image = "shop/orders:1.0";
    let (cluster, client) = start(Scenario::ImagePullBackOff {
        image: image.into(),
    })
    .await;
    let api: Api<Job> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &job("orders-6", "orders", 0))
        .await
        .unwrap();
    let waiting = eventually(|| {
        let p = pods_of(&cluster, "orders-6").pop()?;
        let w = main_state(&p).waiting?;
        (w.reason.as_deref() == Some("ImagePullBackOff")).then_some((p, w))
    })
    .await;
    let (pod, w) = waiting;
    assert_eq!(
        w.message.as_deref(),
        Some("Back-off pulling image \"shop/orders:1.0\"")
    );
    let name = pod.metadata.name.unwrap();
    // Repeated events are counted, as the kubelet's recorder does.
    let back_off = eventually(|| {
        cluster.objects("Event").into_iter().find(|e| {
            e["involvedObject"]["name"] == name.as_str()
                && e["reason"] == "BackOff"
                && e["count"].as_i64() > Some(2)
        })
    })
    .await;
    assert_eq!(back_off["type"], "Normal");
    assert_eq!(
        back_off["involvedObject"]["fieldPath"],
        "spec.containers{run-migrations}"
    );
    let events = events_of(&cluster, &name);
    let failed = events
        .iter()
        .find(|(t, r, m)| t == "Warning" && r == "Failed" && m.starts_with("Failed to pull image"))
        .unwrap();
    assert!(
        failed
            .2
            .starts_with(&format!("Failed to pull image \"{image}\": "))
            && failed.2.ends_with("not found"),
        "{failed:?}"
    );
    assert!(events.contains(&(
        "Warning".into(),
        "Failed".into(),
        "Error: ImagePullBackOff".into()
    )));
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let lp = LogParams {
        container: Some("run-migrations".into()),
        ..Default::default()
    };
    let e = match pods.logs(&name, &lp).await {
        Err(kube::Error::Api(s)) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        e.message,
        format!(
            "container \"run-migrations\" in pod \"{name}\" is waiting to start: trying and failing to pull image"
        )
    );
    let j = api.get("orders-6").await.unwrap();
    let s = j.status.unwrap();
    assert_eq!((s.active, s.failed, s.conditions), (Some(1), None, None));
}

#[tokio::test]
async fn failed_scheduling_leaves_the_pod_pending() {
    let message = "0/3 nodes are available: 3 Insufficient cpu.";
    let (cluster, client) = start(Scenario::FailedScheduling {
        message: message.into(),
    })
    .await;
    let api: Api<Job> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &job("orders-7", "orders", 0))
        .await
        .unwrap();
    let pod = eventually(|| {
        let p = pods_of(&cluster, "orders-7").pop()?;
        let c = p.status.clone()?.conditions?.pop()?;
        (c.type_ == "PodScheduled").then_some((p, c))
    })
    .await;
    let (pod, c) = pod;
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
        ("False", Some("Unschedulable"), Some(message))
    );
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(pod.spec.unwrap().node_name.is_none());
    let name = pod.metadata.name.unwrap();
    let events = eventually(|| {
        let e = events_of(&cluster, &name);
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(
        events,
        [(
            "Warning".into(),
            "FailedScheduling".into(),
            message.to_string()
        )]
    );
    // An unscheduled pod has no logs yet: an empty body, not an error.
    let pods: Api<Pod> = Api::default_namespaced(client);
    let lp = LogParams {
        container: Some("run-migrations".into()),
        ..Default::default()
    };
    assert_eq!(pods.logs(&name, &lp).await.unwrap(), "");
}

#[tokio::test]
async fn create_container_config_error_waits_with_an_event() {
    let message = "secret \"shop-migration-db-credentials\" not found";
    let (cluster, client) = start(Scenario::CreateContainerConfigError {
        message: message.into(),
    })
    .await;
    let api: Api<Job> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &job("orders-8", "orders", 0))
        .await
        .unwrap();
    let w = eventually(|| {
        let p = pods_of(&cluster, "orders-8").pop()?;
        let init = p.status?.init_container_statuses?;
        let w = init.first()?.state.clone()?.waiting?;
        (w.reason.as_deref() == Some("CreateContainerConfigError")).then_some(w)
    })
    .await;
    assert_eq!(w.message.as_deref(), Some(message));
    let pod = pods_of(&cluster, "orders-8").pop().unwrap();
    let name = pod.metadata.name.unwrap();
    let events = eventually(|| {
        let e = events_of(&cluster, &name);
        e.iter().any(|(_, r, _)| r == "Failed").then_some(e)
    })
    .await;
    assert!(events.contains(&(
        "Warning".into(),
        "Failed".into(),
        format!("Error: {message}")
    )));
}

#[tokio::test]
async fn oom_killed_is_retried_as_any_failure() {
    let (cluster, client) = start(Scenario::oom_killed()).await;
    let (seen, _) = job_statuses(&client, job("orders-9", "orders", 1), finished).await;
    assert!(
        seen.last()
            .unwrap()
            .ends_with("Failed:BackoffLimitExceeded]")
    );
    let pods = pods_of(&cluster, "orders-9");
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let t = main_state(p).terminated.unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));
    }
}

#[tokio::test]
async fn database_never_ready_until_the_deadline() {
    let (cluster, client) = start(Scenario::DatabaseNeverReady {
        line: "postgres at db:5432 is not ready".into(),
        deadline_after_ms: Some(300),
    })
    .await;
    let (seen, job) = job_statuses(&client, job("orders-10", "orders", 6), finished).await;
    assert_eq!(
        &seen[1..],
        [
            "active=1 ready=0 failed=0 succeeded=0 uncounted=0 []",
            "active=0 ready=0 failed=0 succeeded=0 uncounted=0 [FailureTarget:DeadlineExceeded]",
            "active=0 ready=0 failed=1 succeeded=0 uncounted=0 [FailureTarget:DeadlineExceeded,Failed:DeadlineExceeded]",
        ]
    );
    assert_eq!(
        condition_message(&job, "Failed"),
        "Job was active longer than specified deadline"
    );
    // The deadline deleted the pod.
    assert!(pods_of(&cluster, "orders-10").is_empty());
    let deleted = events_of(&cluster, "orders-10");
    assert!(deleted.iter().any(|(_, r, _)| r == "SuccessfulDelete"));
}

#[tokio::test]
async fn database_never_ready_prints_its_line_again_and_again() {
    let line = "postgres at db:5432 is not ready";
    let (cluster, client) = start(Scenario::DatabaseNeverReady {
        line: line.into(),
        deadline_after_ms: None,
    })
    .await;
    let api: Api<Job> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &job("orders-11", "orders", 0))
        .await
        .unwrap();
    let pod = eventually(|| {
        let p = pods_of(&cluster, "orders-11").pop()?;
        let init = p.status.clone()?.init_container_statuses?;
        init.first()?.state.clone()?.running.map(|_| p)
    })
    .await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let lp = LogParams {
        container: Some("wait-for-postgres".into()),
        follow: true,
        ..Default::default()
    };
    let lines: Vec<String> = pods
        .log_stream(&pod.metadata.name.unwrap(), &lp)
        .await
        .unwrap()
        .lines()
        .take(3)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(lines, [line; 3]);
}

#[tokio::test]
async fn deadline_exceeded_while_migrating() {
    let (cluster, client) = start(Scenario::DeadlineExceeded { after_ms: 800 }).await;
    let (seen, _) = job_statuses(&client, job("orders-12", "orders", 6), finished).await;
    assert_eq!(
        &seen[1..],
        [
            "active=1 ready=0 failed=0 succeeded=0 uncounted=0 []",
            "active=1 ready=1 failed=0 succeeded=0 uncounted=0 []",
            "active=0 ready=0 failed=0 succeeded=0 uncounted=0 [FailureTarget:DeadlineExceeded]",
            "active=0 ready=0 failed=1 succeeded=0 uncounted=0 [FailureTarget:DeadlineExceeded,Failed:DeadlineExceeded]",
        ]
    );
    assert!(pods_of(&cluster, "orders-12").is_empty());
}

#[tokio::test]
async fn deleted_while_waiting() {
    let (cluster, client) = start(Scenario::DeletedWhileWaiting { after_ms: 200 }).await;
    let api: Api<Job> = Api::default_namespaced(client.clone());
    let mut stream = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=orders-13"),
    )
    .boxed();
    while !matches!(
        stream.try_next().await.unwrap(),
        Some(watcher::Event::InitDone)
    ) {}
    api.create(&PostParams::default(), &job("orders-13", "orders", 0))
        .await
        .unwrap();
    let last = tokio::time::timeout(TIMEOUT, async {
        let mut last = None;
        while let Some(ev) = stream.try_next().await.unwrap() {
            match ev {
                watcher::Event::Apply(j) => last = Some(summary(&j)),
                watcher::Event::Delete(_) => return last,
                _ => {}
            }
        }
        panic!("the watch ended");
    })
    .await
    .unwrap();
    assert_eq!(
        last.as_deref(),
        Some("active=1 ready=0 failed=0 succeeded=0 uncounted=0 []")
    );
    eventually(|| pods_of(&cluster, "orders-13").is_empty().then_some(())).await;
}

/// A plain blocking test: raw HTTP, as any other client (or a subprocess) sees it.
#[test]
fn raw_http_shapes() {
    use std::io::{BufRead, BufReader, Read, Write};
    let cluster = FakeCluster::start(Scenarios::default().timing(fast())).unwrap();
    let request = |path: &str| {
        let mut s = std::net::TcpStream::connect(cluster.addr()).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fake-token\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        s
    };
    let mut version = String::new();
    request("/version").read_to_string(&mut version).unwrap();
    assert!(version.starts_with("HTTP/1.1 200 OK\r\n"), "{version}");
    assert!(version.contains("\"gitVersion\":\"v1.33.1\""), "{version}");

    cluster
        .insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}}))
        .unwrap();
    let mut list = String::new();
    request("/api/v1/namespaces/default/configmaps")
        .read_to_string(&mut list)
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(list.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["kind"], "ConfigMapList");
    // Items of a list carry no apiVersion and kind, as the API server sends them.
    assert!(body["items"][0].get("kind").is_none());
    assert_eq!(body["items"][0]["metadata"]["name"], "a");

    let rv = body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watch = request(&format!(
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1"
    ));
    cluster
        .insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "default"}}))
        .unwrap();
    let mut reader = BufReader::new(watch);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        reader.read_line(&mut head).unwrap();
    }
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let events: Vec<serde_json::Value> = rest
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{rest}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["kind"], "ConfigMap");
    assert_eq!(events[0]["object"]["metadata"]["name"], "b");

    let mut unauthorized = String::new();
    let mut s = std::net::TcpStream::connect(cluster.addr()).unwrap();
    write!(
        s,
        "GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s.read_to_string(&mut unauthorized).unwrap();
    assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
    assert_eq!(cluster.requests().len(), 4);
}

#[tokio::test]
async fn deletion_propagation_ttl_status_and_streaming_lists() {
    let (cluster, client) = start(Scenario::success()).await;
    let api: Api<Job> = Api::default_namespaced(client.clone());

    // ttlSecondsAfterFinished: 0 deletes the finished Job, and its pods with it.
    let mut j = job("orders-14", "orders", 0);
    j.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(0);
    let (_, done) = job_statuses(&client, j, finished).await;
    assert!(finished(&done));
    eventually(|| pods_of(&cluster, "orders-14").is_empty().then_some(())).await;
    assert!(api.get_opt("orders-14").await.unwrap().is_none());

    // A watcher with streaming lists (sendInitialEvents, a BOOKMARK to end them).
    let stuck = Scenario::DatabaseNeverReady {
        line: "not yet".into(),
        deadline_after_ms: None,
    };
    let cluster = FakeCluster::start(Scenarios::new(stuck).timing(fast())).unwrap();
    let client = self::client(&cluster).await;
    let api: Api<Job> = Api::default_namespaced(client.clone());
    for name in ["fg", "orphan"] {
        api.create(&PostParams::default(), &job(name, name, 0))
            .await
            .unwrap();
    }
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut listed = Vec::new();
    loop {
        match stream.try_next().await.unwrap().unwrap() {
            watcher::Event::InitApply(j) => listed.push(j.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(listed, ["fg", "orphan"]);
    let requests = cluster.requests();
    let watch = requests.iter().rfind(|r| r.verb == "watch").unwrap();
    assert_eq!(
        watch.query_param("sendInitialEvents").as_deref(),
        Some("true")
    );

    eventually(|| (pods_of(&cluster, "fg").len() == 1).then_some(())).await;
    eventually(|| (pods_of(&cluster, "orphan").len() == 1).then_some(())).await;
    let status = api.get_status("fg").await.unwrap();
    assert_eq!(status.status.unwrap().active, Some(1));

    // Foreground: 202 with the Job marked for deletion, its pods first, then the Job.
    let marked = api
        .delete("fg", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(
        marked.metadata.finalizers.unwrap(),
        ["foregroundDeletion".to_string()]
    );
    eventually(|| pods_of(&cluster, "fg").is_empty().then_some(())).await;
    eventually(|| {
        cluster
            .jobs()
            .iter()
            .all(|j| j.metadata.name.as_deref() != Some("fg"))
            .then_some(())
    })
    .await;

    // No propagationPolicy: batch/v1 orphans the pods, which lose their owner.
    api.delete("orphan", &DeleteParams::default())
        .await
        .unwrap();
    let pod = eventually(|| {
        let p = pods_of(&cluster, "orphan").pop()?;
        p.metadata.owner_references.is_none().then_some(p)
    })
    .await;
    assert!(pod.metadata.deletion_timestamp.is_none());
}
