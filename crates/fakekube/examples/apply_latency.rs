//! Measures `kubemigrate apply` against the fake API server: the time from the last
//! Job's `Complete` condition appearing to the process exiting, and the number of
//! API requests of a three-target run. Used by `bench/cluster`; prints one JSON line.
//!
//! ```text
//! cargo run --release -p kubemigrate-fakekube --example apply_latency -- BINARY [ROUNDS]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubemigrate_fakekube::{FakeCluster, Scenario, Scenarios};

const PLAN: &str = "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {name: bench, namespace: bench}
spec:
  targets:
    - name: a
      database: {host: db, name: a, user: app, password: {fromEnv: PW}}
      sql: {image: bench/a:1}
    - name: b
      dependsOn: [a]
      database: {host: db, name: b, user: app, password: {fromEnv: PW}}
      sql: {image: bench/b:1}
    - name: c
      database: {host: db, name: c, user: app, password: {fromEnv: PW}}
      command: {image: bench/app:1, command: [npm, run, migrate]}
";

fn complete(job: &k8s_openapi::api::batch::v1::Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let binary = args.next().expect("usage: apply_latency BINARY [ROUNDS]");
    let rounds: usize = args.next().map_or(15, |r| r.parse().expect("ROUNDS"));
    let mut latencies = Vec::new();
    let mut requests = Vec::new();
    let mut totals = Vec::new();
    for round in 0..rounds {
        let fake = FakeCluster::start(Scenarios::new(Scenario::success())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plan.yaml"), PLAN).unwrap();
        fake.write_kubeconfig(dir.path().join("kubeconfig"))
            .unwrap();
        let start = Instant::now();
        let mut child = Command::new(&binary)
            .args(["apply", "-f"])
            .arg(dir.path().join("plan.yaml"))
            .arg("--logs-dir")
            .arg(dir.path().join("logs"))
            .env("KUBECONFIG", dir.path().join("kubeconfig"))
            .env("PW", "x")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Watch the store directly (no HTTP) for the moment every Job is Complete.
        let mut all_complete: Option<Instant> = None;
        let exited = loop {
            if all_complete.is_none() {
                let jobs = fake.jobs();
                if jobs.len() == 3 && jobs.iter().all(complete) {
                    all_complete = Some(Instant::now());
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "round {round}: apply failed: {status}");
                break Instant::now();
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let done = all_complete.expect("apply exited before the Jobs completed");
        latencies.push(exited.duration_since(done).as_secs_f64() * 1000.0);
        totals.push(exited.duration_since(start).as_secs_f64() * 1000.0);
        requests.push(fake.requests().len());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (min, max) = (
        latencies.iter().copied().fold(f64::MAX, f64::min),
        latencies.iter().copied().fold(0.0, f64::max),
    );
    requests.sort_unstable();
    println!(
        "{{\"rounds\":{rounds},\"complete_to_exit_ms_median\":{:.1},\"complete_to_exit_ms_min\":{min:.1},\"complete_to_exit_ms_max\":{max:.1},\"run_ms_median\":{:.0},\"api_requests_median\":{},\"api_requests_min\":{},\"api_requests_max\":{}}}",
        median(&mut latencies),
        median(&mut totals),
        requests[requests.len() / 2],
        requests[0],
        requests[requests.len() - 1],
    );
}
