//! `kubemigrate apply` (and `status`, `logs`, `cleanup`) against the fake API server
//! of `kubemigrate-fakekube`: real HTTP on loopback, a kubeconfig pointing at it,
//! Jobs, pods and events shaped as a cluster returns them, and a scenario per
//! target. Each test drives the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Run, km};
use kubemigrate_fakekube::{FakeCluster, Scenario, Scenarios};

const PASSWORD: &str = "s3cret-Qz7";

struct Env {
    fake: FakeCluster,
    dir: tempfile::TempDir,
}

impl Env {
    /// A plan with `a` (SQL shipped in a ConfigMap), `b` (dependsOn a, SQL in an
    /// image) and `c` (a command), on the fake cluster running `scenarios`.
    fn new(scenarios: Scenarios) -> Env {
        let fake = FakeCluster::start(scenarios).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sql")).unwrap();
        std::fs::write(
            dir.path().join("sql/V1__a.sql"),
            "CREATE TABLE a (id int);\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("plan.yaml"),
            "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {name: shop, namespace: shop}
spec:
  timeout: 1m
  backoffLimit: 2
  targets:
    - name: a
      database: {host: db, name: a, user: app, password: {fromEnv: PW}}
      sql: {localDir: sql}
    - name: b
      dependsOn: [a]
      database: {host: db, name: b, user: app, password: {fromEnv: PW}}
      sql: {image: shop/b-migrations:1}
    - name: c
      database: {host: db, name: c, user: app, password: {fromEnv: PW}}
      command: {image: shop/app:1, command: [npm, run, migrate]}
",
        )
        .unwrap();
        fake.write_kubeconfig(dir.path().join("kubeconfig"))
            .unwrap();
        Env { fake, dir }
    }

    /// How many pods the fake created for target `target`'s Job of run r1.
    fn pods_of(&self, target: &str) -> usize {
        let prefix = format!("{target}-migrations-r1");
        self.fake
            .pods()
            .iter()
            .filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .unwrap_or("")
                    .starts_with(&prefix)
            })
            .count()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn km(&self, args: &[&str]) -> Run {
        let plan = self.path("plan.yaml");
        let logs = self.path("logs");
        let kubeconfig = self.path("kubeconfig");
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["-f", &plan]);
        if args[0] == "apply" {
            all.extend_from_slice(&["--logs-dir", &logs, "--run-id", "r1"]);
        }
        let run = km(&all, &[("KUBECONFIG", &kubeconfig), ("PW", PASSWORD)]);
        assert!(
            !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
            "a password was printed"
        );
        run
    }
}

fn line_index(out: &str, needle: &str) -> usize {
    out.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{out}"))
}

#[test]
fn three_targets_in_order_with_logs_streamed_and_kept() {
    let env = Env::new(Scenarios::new(Scenario::success()));
    let run = env.km(&["apply"]).expect(0);
    let out = &run.stdout;
    // Logs stream live, prefixed with the target; init containers are named.
    assert!(
        out.contains("a | [wait-for-postgres] postgres is ready"),
        "{out}"
    );
    assert!(out.contains("a | applying 0001_create_orders.sql"), "{out}");
    // b waits for a; c does not.
    assert!(
        line_index(out, "a | succeeded") < line_index(out, "b | started"),
        "{out}"
    );
    assert!(
        line_index(out, "c | started") < line_index(out, "a | succeeded"),
        "{out}"
    );
    assert!(out.contains("3 succeeded, 0 failed, 0 skipped"), "{out}");
    assert!(
        out.contains("  list_jobs: kubectl get jobs -n shop -l app.kubernetes.io/component=migrations,kubemigrate.io/plan=shop"),
        "{out}"
    );
    // Every container's log is kept on disk.
    let dir = PathBuf::from(env.path("logs")).join("r1/a");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let main = files
        .iter()
        .find(|f| f.ends_with(".run-migrations.log"))
        .unwrap();
    let text = std::fs::read_to_string(dir.join(main)).unwrap();
    assert_eq!(
        text,
        "applying 0001_create_orders.sql\napplied 1 migration in 12ms\n"
    );
    assert!(
        files.iter().any(|f| f.ends_with(".wait-for-postgres.log")),
        "{files:?}"
    );
    // Watches, never polling: no GET of a single Job; the objects were applied
    // server-side.
    let requests = env.fake.requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.verb == "get" && r.path.contains("/jobs/")),
        "{requests:?}"
    );
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.method == "PATCH" && r.query.contains("fieldManager=kubemigrate"))
            .count(),
        3,
        "ConfigMap, Secret, SQL ConfigMap"
    );
    assert_eq!(env.fake.jobs().len(), 3);
}

#[test]
fn json_report_carries_the_modules_outputs() {
    let env = Env::new(Scenarios::new(Scenario::success()));
    let json = env.km(&["apply", "-o", "json"]).expect(0).json();
    assert_eq!(json["ok"], true);
    assert_eq!(
        json["migration_jobs_summary"]["b"]["job_name"],
        "b-migrations-r1"
    );
    assert_eq!(json["migration_jobs_summary"]["b"]["namespace"], "shop");
    assert_eq!(json["migration_jobs_summary"]["b"]["status"], "succeeded");
    assert_eq!(
        json["helpful_commands"]["a_logs"],
        "kubectl logs -n shop -l job-name=a-migrations-r1 --all-containers --prefix"
    );
    assert_eq!(
        json["helpful_commands"]["c_describe"],
        "kubectl describe job c-migrations-r1 -n shop"
    );
    let t = &json["targets"][0];
    assert_eq!(t["status"], "succeeded");
    assert!(
        t["log_path"].as_str().unwrap().ends_with("logs/r1/a"),
        "{t}"
    );
    assert!(t["duration_ms"].as_u64().is_some());
}

#[test]
fn a_sql_failure_retried_until_the_backoff_limit_fails_with_its_code() {
    let env = Env::new(
        Scenarios::new(Scenario::success()).target("a", Scenario::fail_then_retry(3, u32::MAX)),
    );
    let run = env.km(&["apply"]).expect(3);
    let out = &run.stdout;
    assert!(out.contains("BackoffLimitExceeded"), "{out}");
    assert!(
        out.contains("run-migrations exited 3 (a migration's SQL failed)"),
        "{out}"
    );
    assert!(
        out.contains("b did not succeed") || out.contains("a did not succeed"),
        "{out}"
    );
    // The last lines are those of the last failed pod, not of all three.
    let last = &out[line_index(out, "last lines of a/run-migrations:")..];
    assert_eq!(last.matches("already exists").count(), 1, "{out}");
    // backoffLimit 2: three pods.
    let pods_of_a = env.pods_of("a");
    assert_eq!(pods_of_a, 3);
}

#[test]
fn the_pod_failure_policy_fails_at_once_on_needs_a_person() {
    let env =
        Env::new(Scenarios::new(Scenario::success()).target("a", Scenario::pod_failure_policy(4)));
    let run = env.km(&["apply"]).expect(4);
    assert!(run.stdout.contains("PodFailurePolicy"), "{}", run.stdout);
    let pods_of_a = env.pods_of("a");
    assert_eq!(pods_of_a, 1, "no retry");
}

#[test]
fn an_image_that_cannot_be_pulled_fails_after_the_grace_period() {
    let env = Env::new(Scenarios::new(Scenario::success()).target(
        "b",
        Scenario::ImagePullBackOff {
            image: "shop/b-migrations:1".into(),
        },
    ));
    let start = Instant::now();
    let run = env.km(&["apply", "--fail-fast-after", "1s"]).expect(8);
    assert!(start.elapsed() < Duration::from_secs(30));
    let out = &run.stdout;
    assert!(
        out.contains("b | problem: run-migrations: cannot pull image shop/b-migrations:1"),
        "{out}"
    );
    assert!(out.contains("it cannot heal by itself"), "{out}");
}

#[test]
fn a_missing_secret_is_named_and_fails_fast() {
    let message = "secret \"shop-migration-db-credentials\" not found";
    let env = Env::new(Scenarios::new(Scenario::success()).target(
        "c",
        Scenario::CreateContainerConfigError {
            message: message.into(),
        },
    ));
    let run = env.km(&["apply", "--fail-fast-after", "1s"]).expect(8);
    assert!(run.stdout.contains(message), "{}", run.stdout);
}

#[test]
fn unschedulable_pods_are_reported_and_waiting_times_out() {
    let message = "0/3 nodes are available: 3 Insufficient cpu.";
    let env = Env::new(Scenarios::new(Scenario::success()).target(
        "c",
        Scenario::FailedScheduling {
            message: message.into(),
        },
    ));
    let run = env.km(&["apply", "--timeout", "3s"]).expect(9);
    let out = &run.stdout;
    assert!(
        out.contains(&format!("c | problem: cannot be scheduled: {message}")),
        "{out}"
    );
    assert!(out.contains("timed out waiting after 3.00s"), "{out}");
    // a and b were not held up by c.
    assert!(out.contains("2 succeeded, 1 failed"), "{out}");
}

#[test]
fn an_oom_kill_names_the_memory_limit() {
    let env = Env::new(Scenarios::new(Scenario::success()).target("a", Scenario::oom_killed()));
    let run = env.km(&["apply"]).expect(8);
    assert!(
        run.stdout
            .contains("a | problem: run-migrations was killed: out of memory (limit 512Mi)"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_database_that_never_comes_up_is_reported_while_waiting() {
    let env = Env::new(Scenarios::new(Scenario::success()).target(
        "c",
        Scenario::DatabaseNeverReady {
            line: "waiting for the database: connection refused".into(),
            deadline_after_ms: Some(2000),
        },
    ));
    let run = env
        .km(&["apply", "--waiting-report-every", "300ms"])
        .expect(8);
    let out = &run.stdout;
    assert!(
        out.contains("c | problem: wait-for-postgres is still waiting: waiting for the database: connection refused"),
        "{out}"
    );
    assert!(out.contains("DeadlineExceeded"), "{out}");
}

#[test]
fn a_deleted_job_is_an_error_never_a_success() {
    let env = Env::new(
        Scenarios::new(Scenario::success())
            .target("c", Scenario::DeletedWhileWaiting { after_ms: 500 }),
    );
    let run = env.km(&["apply"]).expect(8);
    assert!(
        run.stdout
            .contains("the Job shop/c-migrations-r1 was deleted while kubemigrate waited for it"),
        "{}",
        run.stdout
    );
}

#[test]
fn no_wait_creates_everything_and_returns_at_once() {
    let env = Env::new(Scenarios::new(Scenario::DatabaseNeverReady {
        line: "waiting".into(),
        deadline_after_ms: None,
    }));
    let start = Instant::now();
    let json = env
        .km(&["apply", "--no-wait", "-o", "json"])
        .expect(0)
        .json();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(env.fake.jobs().len(), 3);
    assert_eq!(json["migration_jobs_summary"]["a"]["status"], "created");
    assert!(json["helpful_commands"]["list_jobs"].is_string());
}

#[test]
fn a_forbidden_request_names_the_missing_permission() {
    let env = Env::new(Scenarios::new(Scenario::success()).forbid("create", "jobs"));
    let run = env.km(&["apply"]).expect(10);
    assert!(
        run.stdout.contains(
            "cannot create resource \"jobs\" in API group \"batch\" in the namespace \"shop\""
        ),
        "{}",
        run.stdout
    );
    let env = Env::new(Scenarios::new(Scenario::success()).forbid("patch", "secrets"));
    let run = env.km(&["apply"]).expect(10);
    assert!(
        run.stderr.contains("cannot patch resource \"secrets\""),
        "{}",
        run.stderr
    );
    assert!(env.fake.jobs().is_empty(), "no Job without its Secret");
}

#[test]
fn status_logs_and_cleanup_find_the_plans_jobs() {
    let env = Env::new(Scenarios::new(Scenario::success()));
    env.km(&["apply"]).expect(0);
    let status = env.km(&["status", "-o", "json"]).expect(0).json();
    let jobs = status["runs"][0]["jobs"].as_array().unwrap();
    assert_eq!(status["runs"][0]["run_id"], "r1");
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j["state"] == "succeeded"), "{status}");
    let logs = env.km(&["logs", "--target", "a"]).expect(0);
    assert!(
        logs.stdout.contains("| applying 0001_create_orders.sql"),
        "{}",
        logs.stdout
    );
    assert!(!logs.stdout.contains("b/"), "{}", logs.stdout);
    let cleanup = env.km(&["cleanup"]).expect(0);
    assert!(
        cleanup.stdout.contains("3 finished Jobs deleted"),
        "{}",
        cleanup.stdout
    );
    assert!(env.fake.jobs().is_empty());
}

#[test]
fn on_a_terminal_a_live_view_sits_under_the_logs_and_elsewhere_plain_lines() {
    let env = Env::new(Scenarios::new(Scenario::success()));
    // Plain lines in a pipe.
    let plain = env.km(&["apply"]).expect(0);
    assert!(!plain.stdout.contains('\x1b'), "{}", plain.stdout);
    // script(1) runs the binary on a pseudo-terminal.
    let cmd = format!(
        "{} apply -f {} --logs-dir {} --run-id r2",
        env!("CARGO_BIN_EXE_kubemigrate"),
        env.path("plan.yaml"),
        env.path("logs"),
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("KUBECONFIG", env.path("kubeconfig"))
        .env("PW", PASSWORD)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // Coloured target names, the view erased and redrawn, one line per target with
    // its state.
    assert!(text.contains("\x1b[36ma\x1b[0m | started"), "{text:?}");
    assert!(text.contains("\x1b[J"), "{text:?}");
    assert!(text.contains("\x1b[1mc\x1b[0m  running"), "{text:?}");
    assert!(text.contains("\x1b[1mb\x1b[0m  succeeded"), "{text:?}");
    assert!(!text.contains(PASSWORD));
}

#[test]
fn ctrl_c_stops_waiting_and_can_delete_the_jobs() {
    use std::io::{BufRead as _, BufReader};
    for delete in [false, true] {
        let env = Env::new(Scenarios::new(Scenario::DatabaseNeverReady {
            line: "waiting for the database".into(),
            deadline_after_ms: None,
        }));
        let plan = env.path("plan.yaml");
        let logs = env.path("logs");
        let mut args = vec!["apply", "-f", &plan, "--logs-dir", &logs, "--run-id", "r1"];
        if delete {
            args.push("--delete-on-interrupt");
        }
        let mut child = common::km_command(
            &args,
            &[("KUBECONFIG", &env.path("kubeconfig")), ("PW", PASSWORD)],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = String::new();
        // Wait until both independent Jobs run.
        while seen
            .matches("[wait-for-postgres] waiting for the database")
            .count()
            < 2
        {
            let line = lines.next().unwrap().unwrap();
            seen.push_str(&line);
            seen.push('\n');
        }
        assert_eq!(env.fake.jobs().len(), 2, "a and c; b waits for a");
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{}", rest.join("\n"));
        let rest = rest.join("\n");
        assert!(
            rest.contains("interrupted: kubemigrate stops waiting"),
            "{rest}"
        );
        if delete {
            assert!(rest.contains("deleted Job a-migrations-r1"), "{rest}");
            assert!(env.fake.jobs().is_empty(), "the Jobs were deleted");
        } else {
            assert!(
                rest.contains("follow them with: kubectl get jobs -n shop"),
                "{rest}"
            );
            assert_eq!(env.fake.jobs().len(), 2, "the Jobs go on");
        }
    }
}
