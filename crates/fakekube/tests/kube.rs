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
