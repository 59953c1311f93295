//! `kubemigrate apply`, `status`, `logs` and `cleanup` against the real Kubernetes
//! control plane (`scripts/kube-up`: etcd, kube-apiserver, kube-controller-manager
//! and kube-scheduler of the pinned release, kwok playing the node's kubelet).
//! Each test drives the real binary in a namespace of its own; each pod's scenario
//! comes from the plan's labels (see `tools/kube/kwok-stages.yaml`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::kube::{Kube, Namespace, kube};
use common::{Run, km, km_command, wait_until};

const PASSWORD: &str = "s3cret-Qz7";

/// How a test's plan differs from the default one.
#[derive(Default)]
struct PlanOptions {
    /// `(target, scenario)`: see tools/kube/kwok-stages.yaml.
    scenarios: Vec<(&'static str, &'static str)>,
    /// The plan's timeout (its Jobs' activeDeadlineSeconds). Default 2m.
    timeout: Option<&'static str>,
    /// The plan's backoffLimit. Default 1.
    backoff_limit: Option<u32>,
    /// The plan's ttlSecondsAfterFinished.
    ttl: Option<u32>,
    /// Extra lines for target c (indented as its fields).
    c_extra: &'static str,
}

struct Env {
    kube: &'static Kube,
    ns: Namespace,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Env {
    /// A plan with `a` (SQL shipped in a ConfigMap), `b` (dependsOn a, SQL in an
    /// image) and `c` (a command) in a fresh namespace.
    fn new(scenarios: &[(&'static str, &'static str)]) -> Env {
        Env::with(PlanOptions {
            scenarios: scenarios.to_vec(),
            ..Default::default()
        })
    }

    fn with(o: PlanOptions) -> Env {
        Env::in_namespace(kube(), kube().namespace(&[]), o)
    }

    fn in_namespace(kube: &'static Kube, ns: Namespace, o: PlanOptions) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sql")).unwrap();
        std::fs::write(
            dir.path().join("sql/V1__a.sql"),
            "CREATE TABLE a (id int);\n",
        )
        .unwrap();
        let labels: String = o
            .scenarios
            .iter()
            .map(|(t, s)| format!("    sim.kubemigrate.test/{t}: {s}\n"))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("  labels:\n{labels}")
        };
        let ttl = o
            .ttl
            .map(|t| format!("  ttlSecondsAfterFinished: {t}\n"))
            .unwrap_or_default();
        std::fs::write(
            dir.path().join("plan.yaml"),
            format!(
                "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {{name: shop, namespace: {ns}}}
spec:
  timeout: {timeout}
  backoffLimit: {backoff}
{ttl}{labels}  targets:
    - name: a
      database: {{host: db, name: a, user: app, password: {{fromEnv: PW}}}}
      sql: {{localDir: sql}}
    - name: b
      dependsOn: [a]
      database: {{host: db, name: b, user: app, password: {{fromEnv: PW}}}}
      sql: {{image: shop/b-migrations:1}}
    - name: c
      database: {{host: db, name: c, user: app, password: {{fromEnv: PW}}}}
      command: {{image: shop/app:1, command: [npm, run, migrate]}}
{c_extra}",
                ns = ns.name,
                timeout = o.timeout.unwrap_or("2m"),
                backoff = o.backoff_limit.unwrap_or(1),
                c_extra = o.c_extra,
            ),
        )
        .unwrap();
        ns.set_log(
            "wait-for-postgres",
            &["waiting for postgres at db:5432", "postgres is ready"],
        );
        ns.set_log("install-runner", &["installed /kubemigrate/kubemigrate"]);
        ns.set_log(
            "run-migrations",
            &[
                "applying 0001_create_orders.sql",
                "applied 1 migration in 12ms",
            ],
        );
        Env {
            kube,
            kubeconfig: kube.kubeconfig.clone(),
            ns,
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The arguments every command gets: the plan, and for `apply` the logs
    /// directory and run id `r1`.
    fn args<'a>(&'a self, args: &[&'a str], plan: &'a str, logs: &'a str) -> Vec<&'a str> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["-f", plan]);
        if args[0] == "apply" {
            all.extend_from_slice(&["--logs-dir", logs, "--run-id", "r1"]);
        }
        all
    }

    fn km(&self, args: &[&str]) -> Run {
        let plan = self.path("plan.yaml");
        let logs = self.path("logs");
        let kc = self.kubeconfig.display().to_string();
        let run = km(
            &self.args(args, &plan, &logs),
            &[("KUBECONFIG", &kc), ("PW", PASSWORD)],
        );
        assert!(
            !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
            "a password was printed"
        );
        run
    }

    /// Starts a command; its stdout is read line by line.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        let plan = self.path("plan.yaml");
        let logs = self.path("logs");
        let kc = self.kubeconfig.display().to_string();
        km_command(
            &self.args(args, &plan, &logs),
            &[("KUBECONFIG", &kc), ("PW", PASSWORD)],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    }

    /// The names of objects of a kind in the namespace.
    fn names(&self, kind: &str) -> Vec<String> {
        self.kube
            .ok(&["get", kind, "-n", &self.ns.name, "-o", "name"])
            .lines()
            .map(|l| l.rsplit('/').next().unwrap_or(l).to_string())
            .collect()
    }

    /// How many pods the controller made for target `target`'s Job of run r1.
    fn pods_of(&self, target: &str) -> usize {
        self.kube
            .ok(&[
                "get",
                "pods",
                "-n",
                &self.ns.name,
                "-l",
                &format!("job-name={target}-migrations-r1"),
                "-o",
                "name",
            ])
            .lines()
            .count()
    }

    /// The API server's audit records of requests in this namespace.
    fn requests(&self) -> Vec<serde_json::Value> {
        self.kube
            .audit()
            .into_iter()
            .filter(|r| r["objectRef"]["namespace"] == self.ns.name.as_str())
            .collect()
    }
}

fn line_index(out: &str, needle: &str) -> usize {
    out.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{out}"))
}

#[test]
fn three_targets_in_order_with_logs_streamed_and_kept() {
    let env = Env::new(&[]);
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
        out.contains(&format!("  list_jobs: kubectl get jobs -n {} -l app.kubernetes.io/component=migrations,kubemigrate.io/plan=shop", env.ns.name)),
        "{out}"
    );
    // Every container's log is kept on disk, whole.
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
    // Watches, never polling: no GET of a single Job; the ConfigMaps and the
    // Secret were applied server-side by field manager kubemigrate.
    let requests = env.requests();
    assert!(
        !requests.iter().any(|r| r["verb"] == "get"
            && r["objectRef"]["resource"] == "jobs"
            && r["objectRef"]["name"].is_string()),
        "a Job was polled"
    );
    let applies = requests
        .iter()
        .filter(|r| {
            r["verb"] == "patch"
                && r["requestURI"]
                    .as_str()
                    .is_some_and(|u| u.contains("fieldManager=kubemigrate"))
        })
        .count();
    assert_eq!(applies, 3, "ConfigMap, Secret, SQL ConfigMap");
    assert_eq!(env.names("jobs").len(), 3);
}

#[test]
fn json_report_carries_the_modules_outputs() {
    let env = Env::new(&[]);
    let json = env.km(&["apply", "-o", "json"]).expect(0).json();
    let ns = env.ns.name.as_str();
    assert_eq!(json["ok"], true);
    assert_eq!(
        json["migration_jobs_summary"]["b"]["job_name"],
        "b-migrations-r1"
    );
    assert_eq!(json["migration_jobs_summary"]["b"]["namespace"], ns);
    assert_eq!(json["migration_jobs_summary"]["b"]["status"], "succeeded");
    assert_eq!(
        json["helpful_commands"]["a_logs"],
        format!("kubectl logs -n {ns} -l job-name=a-migrations-r1 --all-containers --prefix")
    );
    assert_eq!(
        json["helpful_commands"]["c_describe"],
        format!("kubectl describe job c-migrations-r1 -n {ns}")
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
fn a_sql_failure_is_retried_with_new_pods_until_the_backoff_limit() {
    let env = Env::new(&[("a", "exit-3")]);
    env.ns.set_log(
        "run-migrations",
        &[
            "applying 0002_add_total.sql",
            "error: 0002_add_total.sql: column \"total\" of relation \"orders\" already exists",
        ],
    );
    let run = env.km(&["apply"]).expect(3);
    let out = &run.stdout;
    assert!(out.contains("BackoffLimitExceeded"), "{out}");
    assert!(
        out.contains("run-migrations exited 3 (a migration's SQL failed)"),
        "{out}"
    );
    assert!(out.contains("b | skipped: a did not succeed"), "{out}");
    // The last lines are those of the last failed pod, not of every pod.
    let last = &out[line_index(out, "last lines of a/run-migrations:")..];
    assert_eq!(last.matches("already exists").count(), 1, "{out}");
    // backoffLimit 1: the controller made a second pod after the first failed.
    assert_eq!(env.pods_of("a"), 2);
}

#[test]
fn the_pod_failure_policy_fails_at_once_on_needs_a_person() {
    let env = Env::new(&[("a", "exit-4")]);
    let run = env.km(&["apply"]).expect(4);
    assert!(run.stdout.contains("PodFailurePolicy"), "{}", run.stdout);
    assert_eq!(env.pods_of("a"), 1, "no retry");
}

#[test]
fn an_image_that_cannot_be_pulled_fails_after_the_grace_period() {
    let env = Env::new(&[("b", "image-pull")]);
    let start = Instant::now();
    let run = env.km(&["apply", "--fail-fast-after", "1s"]).expect(8);
    assert!(start.elapsed() < Duration::from_secs(60));
    let out = &run.stdout;
    assert!(
        out.contains("b | problem: run-migrations: cannot pull image shop/b-migrations:1"),
        "{out}"
    );
    assert!(out.contains("it cannot heal by itself"), "{out}");
}

#[test]
fn a_missing_secret_is_named_and_fails_fast() {
    let env = Env::new(&[("c", "config-error")]);
    let run = env.km(&["apply", "--fail-fast-after", "1s"]).expect(8);
    assert!(
        run.stdout
            .contains("secret \"shop-migration-db-credentials\" not found"),
        "{}",
        run.stdout
    );
}

#[test]
fn unschedulable_pods_are_reported_by_the_real_scheduler_and_waiting_times_out() {
    // The node has 8 CPUs.
    let env = Env::with(PlanOptions {
        c_extra: "      resources: {requests: {cpu: \"64\"}, limits: {cpu: \"64\"}}\n",
        ..Default::default()
    });
    let run = env.km(&["apply", "--timeout", "8s"]).expect(9);
    let out = &run.stdout;
    assert!(
        out.contains(
            "c | problem: cannot be scheduled: 0/1 nodes are available: 1 Insufficient cpu."
        ),
        "{out}"
    );
    assert!(out.contains("timed out waiting after 8.00s"), "{out}");
    // a and b were not held up by c.
    assert!(out.contains("2 succeeded, 1 failed"), "{out}");
}

#[test]
fn an_oom_kill_names_the_memory_limit() {
    let env = Env::with(PlanOptions {
        scenarios: vec![("a", "oom")],
        backoff_limit: Some(0),
        ..Default::default()
    });
    let run = env.km(&["apply"]).expect(8);
    assert!(
        run.stdout
            .contains("a | problem: run-migrations was killed: out of memory (limit 512Mi)"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_database_that_never_comes_up_is_reported_while_waiting_until_the_deadline() {
    let env = Env::with(PlanOptions {
        scenarios: vec![("c", "db-never")],
        timeout: Some("4s"),
        ..Default::default()
    });
    env.ns.set_log(
        "wait-for-postgres",
        &["waiting for the database: connection refused"],
    );
    let run = env
        .km(&["apply", "--only", "c", "--waiting-report-every", "300ms"])
        .expect(8);
    let out = &run.stdout;
    assert!(
        out.contains("c | problem: wait-for-postgres is still waiting: waiting for the database: connection refused"),
        "{out}"
    );
    // activeDeadlineSeconds, enforced by the real Job controller.
    assert!(out.contains("DeadlineExceeded"), "{out}");
}

#[test]
fn a_deleted_job_is_an_error_never_a_success() {
    let env = Env::new(&[("c", "hang")]);
    let child = env.spawn(&["apply", "--only", "c"]);
    let kube = env.kube;
    assert!(
        wait_until(Duration::from_secs(60), || env.pods_of("c") > 0
            && kube
                .ok(&[
                    "get",
                    "pods",
                    "-n",
                    &env.ns.name,
                    "-o",
                    "jsonpath={.items[*].status.phase}"
                ])
                .contains("Running")),
        "c never ran"
    );
    kube.ok(&[
        "delete",
        "job",
        "c-migrations-r1",
        "-n",
        &env.ns.name,
        "--cascade=background",
        "--wait=false",
    ]);
    let out = child.wait_with_output().unwrap();
    let run = Run::from_output(out).expect(8);
    assert!(
        run.stdout.contains(&format!(
            "the Job {}/c-migrations-r1 was deleted while kubemigrate waited for it",
            env.ns.name
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn no_wait_creates_everything_and_returns_at_once() {
    let env = Env::new(&[("a", "db-never"), ("b", "db-never"), ("c", "db-never")]);
    let start = Instant::now();
    let json = env
        .km(&["apply", "--no-wait", "-o", "json"])
        .expect(0)
        .json();
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(env.names("jobs").len(), 3);
    assert_eq!(json["migration_jobs_summary"]["a"]["status"], "created");
    assert!(json["helpful_commands"]["list_jobs"].is_string());
}

#[test]
fn status_logs_and_cleanup_find_the_plans_jobs_and_cleanup_leaves_no_pods() {
    let env = Env::new(&[]);
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
    // With -o json the lines move to stderr and stdout holds one document.
    let logs = env.km(&["logs", "--target", "a", "-o", "json"]).expect(0);
    assert!(
        logs.stderr.contains("| applying 0001_create_orders.sql"),
        "{}",
        logs.stderr
    );
    let doc = logs.json();
    assert_eq!(doc["run_id"], "r1", "{doc}");
    let read = doc["containers"].as_array().unwrap();
    assert!(
        !read.is_empty() && read.iter().all(|c| c.as_str().unwrap().starts_with("a/")),
        "{doc}"
    );
    assert_eq!(env.names("pods").len(), 3);
    let cleanup = env.km(&["cleanup"]).expect(0);
    assert!(
        cleanup.stdout.contains("3 finished Jobs deleted"),
        "{}",
        cleanup.stdout
    );
    assert!(env.names("jobs").is_empty());
    // The garbage collector deletes the pods of the deleted Jobs.
    assert!(
        wait_until(Duration::from_secs(60), || env.names("pods").is_empty()),
        "pods left behind: {:?}",
        env.names("pods")
    );
}

#[test]
fn on_a_terminal_a_live_view_sits_under_the_logs_and_elsewhere_plain_lines() {
    let env = Env::new(&[]);
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
        .env("KUBECONFIG", &env.kubeconfig)
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
fn ctrl_c_stops_waiting_and_can_delete_the_jobs_and_their_pods() {
    for delete in [false, true] {
        let env = Env::new(&[("a", "db-never"), ("c", "db-never")]);
        env.ns
            .set_log("wait-for-postgres", &["waiting for the database"]);
        let mut args = vec!["apply"];
        if delete {
            args.push("--delete-on-interrupt");
        }
        let mut child = env.spawn(&args);
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
        assert_eq!(env.names("jobs").len(), 2, "a and c; b waits for a");
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
            assert!(env.names("jobs").is_empty(), "the Jobs were deleted");
            assert!(
                wait_until(Duration::from_secs(60), || env.names("pods").is_empty()),
                "their pods too"
            );
        } else {
            assert!(
                rest.contains(&format!(
                    "follow them with: kubectl get jobs -n {}",
                    env.ns.name
                )),
                "{rest}"
            );
            assert_eq!(env.names("jobs").len(), 2, "the Jobs go on");
        }
    }
}

/// Writes a kubeconfig that authenticates with a ServiceAccount token from the
/// TokenRequest API (`kubectl create token`), not the admin's certificate.
fn service_account_kubeconfig(env: &Env, account: &str) -> PathBuf {
    let token = env.kube.ok(&[
        "create",
        "token",
        account,
        "-n",
        &env.ns.name,
        "--duration",
        "1h",
    ]);
    let file = env.dir.path().join(format!("{account}.kubeconfig"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: {}, certificate-authority: {}}}
users:
- name: u
  user: {{token: {}}}
contexts:
- name: c
  context: {{cluster: c, user: u, namespace: {}}}
current-context: c
",
            env.kube.api_url,
            env.kube.dir.join("pki/ca.crt").display(),
            token.trim(),
            env.ns.name
        ),
    )
    .unwrap();
    file
}

/// The Role of `render --rbac` in the namespace, as JSON.
fn role_json(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.kube.ok(&[
        "get",
        "role",
        "shop-kubemigrate",
        "-n",
        &env.ns.name,
        "-o",
        "json",
    ]))
    .unwrap()
}

/// Replaces the Role with one whose rule for `resource` lacks `verb`.
fn remove_verb(env: &Env, full: &serde_json::Value, resource: &str, verb: &str) {
    let mut role = full.clone();
    for rule in role["rules"].as_array_mut().unwrap() {
        if rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == resource)
        {
            rule["verbs"].as_array_mut().unwrap().retain(|v| v != verb);
        }
    }
    // A rule left without verbs is invalid: drop it.
    role["rules"]
        .as_array_mut()
        .unwrap()
        .retain(|r| !r["verbs"].as_array().unwrap().is_empty());
    role["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let out = env
        .kube
        .kubectl_in(&["replace", "-f", "-"], Some(&role.to_string()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rbac_role_is_exactly_enough_and_each_missing_verb_is_named() {
    let mut env = Env::new(&[]);
    let rbac = env.km(&["render", "--rbac"]).expect(0);
    env.kube.ok(&[
        "create",
        "serviceaccount",
        "kubemigrate",
        "-n",
        &env.ns.name,
    ]);
    env.kube.apply(&rbac.stdout);
    env.kubeconfig = service_account_kubeconfig(&env, "kubemigrate");
    // Everything works with exactly the printed Role.
    env.km(&["apply"]).expect(0);
    env.km(&["status"]).expect(0);
    let logs = env.km(&["logs", "--target", "a"]).expect(0);
    assert!(
        logs.stdout.contains("applying 0001_create_orders.sql"),
        "{}",
        logs.stdout
    );
    env.km(&["cleanup"]).expect(0);
    // Each command stops at once, naming what is missing, with one verb fewer.
    let full = role_json(&env);
    let sa = format!("system:serviceaccount:{}:kubemigrate", env.ns.name);
    for (command, resource, verb, group) in [
        ("apply", "jobs", "create", "batch"),
        ("status", "jobs", "list", "batch"),
        ("logs", "pods/log", "get", ""),
        ("cleanup", "jobs", "delete", "batch"),
    ] {
        env.kube.apply(&rbac.stdout);
        if command != "apply" {
            // Something to read and delete: a finished run.
            env.km(&["apply"]).expect(0);
        }
        remove_verb(&env, &full, resource, verb);
        let start = Instant::now();
        let run = env.km(&[command]).expect(10);
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{command} did not stop at once"
        );
        let text = format!("{}{}", run.stdout, run.stderr);
        let expected = format!(
            "User \"{sa}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" in the namespace \"{}\"",
            env.ns.name
        );
        assert!(text.contains(&expected), "{command}: {text}");
        // Put the full Role back and clear the Jobs for the next command.
        env.kube.apply(&rbac.stdout);
        env.kube
            .ok(&["delete", "jobs", "--all", "-n", &env.ns.name, "--wait=true"]);
    }
}

#[test]
fn rendered_objects_are_accepted_and_server_side_apply_twice_changes_nothing() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (plan, namespace) in [
        (root.join("examples/ananta/plan.yaml"), "ananta-platform"),
        (
            root.join("crates/render/tests/fixtures/everything.yaml"),
            "prod",
        ),
    ] {
        let k = kube();
        k.ok(&["create", "namespace", namespace]);
        let plan = plan.display().to_string();
        let rendered = km(&["render", "-f", &plan, "--redact", "--run-id", "r1"], &[]).expect(0);
        let apply = |what: &str| {
            let out = k.kubectl_in(
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=kubemigrate",
                    "-f",
                    "-",
                ],
                Some(&rendered.stdout),
            );
            assert!(
                out.status.success(),
                "{what} apply of {plan} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let versions = || {
            k.ok(&[
                "get",
                "configmaps,secrets,jobs",
                "-n",
                namespace,
                "-l",
                "app.kubernetes.io/managed-by=kubemigrate",
                "-o",
                "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion} {end}",
            ])
        };
        apply("first");
        let before = versions();
        assert!(before.contains("Job/"), "{before}");
        apply("second");
        // Jobs run and change their status; compare the objects we own.
        let strip = |s: &str| -> Vec<String> {
            s.split_whitespace()
                .filter(|o| !o.starts_with("Job/"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            strip(&versions()),
            strip(&before),
            "{plan}: the second apply changed something"
        );
    }
}

#[test]
fn a_restricted_namespace_admits_the_rendered_pods() {
    let k = kube();
    let ns = k.namespace(&[
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("pod-security.kubernetes.io/enforce-version", "latest"),
    ]);
    // The namespace does enforce: a pod that may run as root is refused.
    let refused = k.kubectl_in(
        &["apply", "-n", &ns.name, "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: root}\nspec:\n  containers: [{name: c, image: x}]\n"),
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("violates PodSecurity \"restricted:latest\""),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let env = Env::in_namespace(k, ns, PlanOptions::default());
    let run = env.km(&["apply"]).expect(0);
    assert!(run.stdout.contains("3 succeeded"), "{}", run.stdout);
}

#[test]
fn pods_refused_by_admission_are_diagnosed_at_once() {
    let k = kube();
    for (policy, expected) in [
        (
            "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: no-pods}\nspec: {hard: {pods: \"0\"}}\n",
            "exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0",
        ),
        (
            "apiVersion: v1\nkind: LimitRange\nmetadata: {name: small}\nspec:\n  limits: [{type: Container, max: {memory: 64Mi}}]\n",
            "maximum memory usage per Container is 64Mi, but limit is 512Mi",
        ),
    ] {
        let ns = k.namespace(&[]);
        let out = k.kubectl_in(&["apply", "-n", &ns.name, "-f", "-"], Some(policy));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = Env::in_namespace(k, ns, PlanOptions::default());
        let start = Instant::now();
        let run = env
            .km(&["apply", "--only", "c", "--fail-fast-after", "2s"])
            .expect(8);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "waited too long: {}",
            run.stdout
        );
        let out = &run.stdout;
        assert!(
            out.contains("c | problem: its pods cannot be created: "),
            "{out}"
        );
        assert!(out.contains(expected), "{out}");
        assert!(out.contains("it cannot heal by itself"), "{out}");
    }
}

#[test]
fn a_job_deleted_by_its_ttl_keeps_its_result_and_saved_logs() {
    let env = Env::with(PlanOptions {
        ttl: Some(0),
        ..Default::default()
    });
    let run = env.km(&["apply", "--only", "a"]).expect(0);
    assert!(run.stdout.contains("a | succeeded"), "{}", run.stdout);
    // The TTL controller deletes the finished Job, and the garbage collector its pod.
    assert!(
        wait_until(Duration::from_secs(60), || env.names("jobs").is_empty()
            && env.names("pods").is_empty()),
        "the Job was not deleted: {:?}",
        env.names("jobs")
    );
    let dir = PathBuf::from(env.path("logs")).join("r1/a");
    let saved: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        saved
            .iter()
            .any(|t| t.contains("applied 1 migration in 12ms")),
        "{saved:?}"
    );
}

#[test]
fn apply_follows_across_an_api_server_restart_and_410_gone() {
    // A control plane of its own: the restart would disturb the other tests.
    let k: &'static Kube = Box::leak(Box::new(Kube::start().unwrap()));
    let env = Env::in_namespace(
        k,
        k.namespace(&[]),
        PlanOptions {
            scenarios: vec![("a", "db-never")],
            ..Default::default()
        },
    );
    env.ns
        .set_log("wait-for-postgres", &["waiting for the database"]);
    let mut child = env.spawn(&["apply", "--only", "a"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    while !seen.contains("[wait-for-postgres] waiting for the database") {
        let line = lines.next().unwrap().unwrap();
        seen.push_str(&line);
        seen.push('\n');
    }
    let before = k.audit().len();
    k.restart("kube-apiserver", true);
    // The database comes up: the pod goes on, and so must apply's watches.
    k.ok(&[
        "label",
        "pods",
        "-n",
        &env.ns.name,
        "-l",
        "job-name=a-migrations-r1",
        "sim.kubemigrate.test/a=ok",
        "--overwrite",
    ]);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let rest = rest.join("\n");
    assert_eq!(status.code(), Some(0), "{seen}{rest}");
    assert!(rest.contains("a | succeeded"), "{rest}");
    // The watches resumed from resourceVersions of before the restart, which the
    // new API server no longer serves (410 Gone, sent in the watch stream: the
    // audit log shows a watch that ends at once), and the watcher listed afresh.
    let after: Vec<serde_json::Value> = k.audit().split_off(before);
    let of_jobs = |verb: &str| -> Vec<String> {
        after
            .iter()
            .filter(|r| {
                r["objectRef"]["namespace"] == env.ns.name.as_str()
                    && r["objectRef"]["resource"] == "jobs"
                    && r["verb"] == verb
                    && r["stage"] == "ResponseComplete"
            })
            .map(|r| r["requestURI"].as_str().unwrap().to_string())
            .collect()
    };
    let resumed = of_jobs("watch");
    let old = resumed
        .first()
        .and_then(|u| u.split("resourceVersion=").nth(1))
        .expect("a resumed watch of the Job")
        .to_string();
    assert!(
        !of_jobs("list").is_empty(),
        "no fresh list after the restart"
    );
    let raw = k.ok(&[
        "get",
        "--raw",
        &format!(
            "/apis/batch/v1/namespaces/{}/jobs?watch=true&timeoutSeconds=1&resourceVersion={old}",
            env.ns.name
        ),
    ]);
    assert!(
        raw.contains("\"code\":410"),
        "resourceVersion {old} is still served: {raw}"
    );
}

#[test]
fn a_fan_out_target_is_an_indexed_job_retried_per_index_and_reported_per_database() {
    // Index 1 of 3 fails (exit 3) in every attempt; indexes 0 and 2 succeed.
    let env = Env::new(&[("t", "index-1-exit-3")]);
    std::fs::write(
        env.dir.path().join("plan.yaml"),
        format!(
            "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {{name: saas, namespace: {ns}}}
spec:
  timeout: 2m
  backoffLimit: 1
  labels:
    sim.kubemigrate.test/t: index-1-exit-3
  targets:
    - name: t
      database: {{host: db, name: postgres, user: app, password: {{fromEnv: PW}}}}
      databases:
        list: [tenant_1, tenant_2, tenant_3]
        concurrency: 2
      sql: {{localDir: sql}}
",
            ns = env.ns.name
        ),
    )
    .unwrap();
    // Every pod of the namespace prints these lines (kwok serves one log per
    // container name): the report is read back from them.
    env.ns.set_log(
        "run-migrations",
        &[
            "[tenant_1] result: up_to_date",
            "[tenant_2] applying V1__a.sql",
            "[tenant_2] result: failed (exit 3): V1__a.sql:1:1: boom (SQLSTATE 42P07, statement 1)",
            "[tenant_3] result: applied (1 file)",
        ],
    );
    let run = env.km(&["apply"]).expect(3);
    let out = &run.stdout;
    assert!(out.contains("FailedIndexes"), "{out}");
    // Each database's last report, from the pods of every index (the JSON
    // document's targets[].databases is tested with apply --local).
    assert!(
        out.contains(
            "t: 3 databases: 1 up to date, 1 applied, 1 failed: tenant_2 (exit 3): V1__a.sql:1:1: boom"
        ),
        "{out}"
    );
    assert!(
        out.contains("run-migrations exited 3 (a migration's SQL failed)"),
        "{out}"
    );
    // The Job as the controller ran it: one pod per good index, and the bad index
    // retried on its own (backoffLimitPerIndex 1: two pods).
    let job = env.kube.ok(&[
        "get",
        "job",
        "-n",
        &env.ns.name,
        "t-migrations-r1",
        "-o",
        "jsonpath={.spec.completionMode} {.spec.completions} {.spec.parallelism} {.status.completedIndexes} {.status.failedIndexes}",
    ]);
    assert_eq!(job.trim(), "Indexed 3 2 0,2 1", "{job}");
    let per_index = |i: &str| {
        env.kube
            .ok(&[
                "get",
                "pods",
                "-n",
                &env.ns.name,
                "-l",
                &format!("job-name=t-migrations-r1,batch.kubernetes.io/job-completion-index={i}"),
                "-o",
                "name",
            ])
            .lines()
            .count()
    };
    assert_eq!((per_index("0"), per_index("1"), per_index("2")), (1, 2, 1));
    // status reads the same reports back from the pods, for people and programs.
    let status = env.km(&["status"]).expect(0);
    assert!(
        status.stdout.contains(
            "\n    3 databases: 1 up to date, 1 applied, 1 failed: tenant_2 (exit 3): V1__a.sql:1:1: boom"
        ),
        "{}",
        status.stdout
    );
    let json = env.km(&["status", "-o", "json"]).expect(0).json();
    let databases = &json["runs"][0]["jobs"][0]["databases"];
    let results: Vec<String> = databases
        .as_array()
        .unwrap_or_else(|| panic!("{json}"))
        .iter()
        .map(|d| format!("{} {}", d["database"], d["result"]))
        .collect();
    assert_eq!(
        results,
        [
            r#""tenant_1" "up_to_date""#,
            r#""tenant_2" "failed""#,
            r#""tenant_3" "applied""#
        ],
        "{json}"
    );
}
