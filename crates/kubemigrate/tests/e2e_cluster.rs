//! End to end against a real cluster: `apply`, `status`, `logs`, `cleanup` on the
//! example of docs/cluster.md. Ignored unless `KUBEMIGRATE_E2E_KUBECONFIG` names a
//! kubeconfig (with kind: see docs/testing.md#end-to-end-on-a-real-cluster); no
//! cluster can run on the machines that run the other tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::km;

fn kubeconfig() -> String {
    std::env::var("KUBEMIGRATE_E2E_KUBECONFIG")
        .expect("set KUBEMIGRATE_E2E_KUBECONFIG to a cluster's kubeconfig")
}

/// A plan whose one target runs SQL files shipped in a ConfigMap against the
/// PostgreSQL that docs/testing.md deploys in the cluster (service `postgres`).
fn plan(dir: &std::path::Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    std::fs::write(dir.join("sql/V1__t.sql"), "CREATE TABLE e2e (id int);\n").unwrap();
    let file = dir.join("plan.yaml");
    let runner = std::env::var("KUBEMIGRATE_E2E_RUNNER_IMAGE")
        .unwrap_or_else(|_| "kubemigrate-runner:e2e".into());
    std::fs::write(
        &file,
        format!(
            "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {{name: e2e, namespace: kubemigrate-e2e}}
spec:
  runnerImage: {runner}
  timeout: 5m
  targets:
    - name: app
      database: {{host: postgres, name: postgres, sslMode: disable, user: postgres, password: {{fromEnv: E2E_PG_PASSWORD}}}}
      sql: {{localDir: sql}}
"
        ),
    )
    .unwrap();
    file
}

#[test]
#[ignore = "needs a real cluster: set KUBEMIGRATE_E2E_KUBECONFIG (see docs/testing.md)"]
fn apply_status_logs_cleanup_on_a_real_cluster() {
    let kc = kubeconfig();
    let dir = tempfile::tempdir().unwrap();
    let file = plan(dir.path()).display().to_string();
    let env = [("KUBECONFIG", kc.as_str()), ("E2E_PG_PASSWORD", "postgres")];
    let logs = dir.path().join("logs").display().to_string();
    let run = km(
        &["apply", "-f", &file, "--logs-dir", &logs, "-o", "json"],
        &env,
    )
    .expect(0);
    let json = run.json();
    assert_eq!(json["targets"][0]["status"], "succeeded");
    let status = km(&["status", "-f", &file, "-o", "json"], &env)
        .expect(0)
        .json();
    assert_eq!(status["runs"][0]["jobs"][0]["state"], "succeeded");
    let logs_out = km(&["logs", "-f", &file], &env).expect(0);
    assert!(
        logs_out.stdout.contains("applied V1__t.sql"),
        "{}",
        logs_out.stdout
    );
    km(&["cleanup", "-f", &file], &env).expect(0);
    let status = km(&["status", "-f", &file, "-o", "json"], &env)
        .expect(0)
        .json();
    assert!(status["runs"].as_array().unwrap().is_empty());
}
