//! End to end on a real single-node cluster (`scripts/kube-up --kubelet`): the
//! control plane of `cluster.rs` with a real kubelet, containerd and runc, a bridge
//! network, CoreDNS, and images built here (`scripts/build-images`). The Jobs'
//! pods pull nothing: they run `localhost/kubemigrate:dev` (the static runner),
//! copy it into their shared volume, wait for PostgreSQL and migrate, as a
//! non-root user on a read-only root file system, in namespaces that enforce Pod
//! Security "restricted". PostgreSQL runs on this machine, on the bridge's gateway
//! address, and pods find it by a Service name through the cluster DNS.
//!
//! Needs root (containerd, network, cgroups), as `scripts/test` in CI runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::kube::{Kube, Namespace, real_node};
use common::{Run, km, km_command, psql, wait_until};
use kubemigrate_localpg::{LocalPostgres, Options};

fn node() -> &'static Kube {
    assert!(
        is_root(),
        "the end-to-end suite needs root (containerd, network, cgroups): run it as root, \
         or leave it out with `cargo test -- --skip e2e` (see docs/testing.md)"
    );
    real_node()
}

fn is_root() -> bool {
    // /proc/self/status: "Uid: real effective saved fs".
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false)
}

fn host_ip() -> Ipv4Addr {
    node().host_ip.expect("the real node's KUBE_HOST_IP")
}

/// The PostgreSQL the pods reach, on the bridge's gateway address.
fn pg() -> &'static LocalPostgres {
    static PG: OnceLock<LocalPostgres> = OnceLock::new();
    PG.get_or_init(|| {
        LocalPostgres::start_with(Options {
            also_listen_on: Some(host_ip()),
            ..Options::default()
        })
        .expect("start PostgreSQL on the node's network")
    })
}

/// A namespace enforcing Pod Security "restricted", where the name `db` is a
/// Service whose endpoint is this machine.
fn namespace() -> Namespace {
    let k = node();
    let ns = k.namespace(&[
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("pod-security.kubernetes.io/enforce-version", "latest"),
    ]);
    k.service(&ns.name, "db", host_ip());
    ns
}

/// A database of its own on [`pg`].
fn database(name: &str) -> String {
    let db = format!("{name}_{}", std::process::id());
    psql(&pg().url("postgres"), &format!("CREATE DATABASE {db}"));
    db
}

struct Plan {
    dir: tempfile::TempDir,
    ns: Namespace,
}

impl Plan {
    /// A plan in a fresh namespace; `targets` is its YAML list of targets (each
    /// database's password from `PW`).
    fn new(spec: &str, targets: &str) -> Plan {
        let ns = namespace();
        let dir = tempfile::tempdir().unwrap();
        let runner = node().runner_image.clone().unwrap();
        std::fs::write(
            dir.path().join("plan.yaml"),
            format!(
                "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {{name: e2e, namespace: {ns}}}
spec:
  runnerImage: {runner}
{spec}  targets:
{targets}",
                ns = ns.name
            ),
        )
        .unwrap();
        Plan { dir, ns }
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The binary with this plan's arguments (`-f`, and for `apply` the logs
    /// directory), the kubeconfig and the password in its environment.
    fn command(&self, args: &[&str]) -> std::process::Command {
        let plan = self.path("plan.yaml");
        let logs = self.path("logs");
        let mut all = args.to_vec();
        all.extend(["-f", &plan]);
        if args[0] == "apply" {
            all.extend(["--logs-dir", &logs]);
        }
        let kubeconfig = node().kubeconfig.display().to_string();
        km_command(
            &all,
            &[("KUBECONFIG", &kubeconfig), ("PW", pg().password())],
        )
    }

    fn km(&self, args: &[&str]) -> Run {
        let run = Run::from_output(self.command(args).output().unwrap());
        assert!(
            !run.stdout.contains(pg().password()) && !run.stderr.contains(pg().password()),
            "a password was printed"
        );
        if run.stdout.contains("DNS failed") || run.stderr.contains("DNS failed") {
            // A pod got no answer from the cluster DNS: CoreDNS's own log of its
            // queries says whether they reached it. (Once caused by the bridge's
            // changing MAC address: see scripts/kube-node.sh.)
            eprintln!(
                "a pod's DNS lookup failed; the end of CoreDNS's log:\n{}",
                node().log_tail("coredns", 60)
            );
        }
        run
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn pods(&self) -> Vec<String> {
        node()
            .ok(&["get", "pods", "-n", &self.ns.name, "-o", "name"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A database target on the namespace's `db` Service.
fn target(name: &str, db: &str, port: u16, rest: &str) -> String {
    format!(
        "    - name: {name}
      database: {{host: db, port: {port}, name: {db}, sslMode: disable, user: postgres, password: {{fromEnv: PW}}}}
{rest}"
    )
}

fn history(db: &str) -> Vec<String> {
    psql(
        &pg().url(db),
        "SELECT version || '|' || success FROM kubemigrate_history ORDER BY id",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// The output with the padding after each target's name taken away
/// (`supabase      | x` becomes `supabase | x`).
fn squeeze(out: &str) -> String {
    out.lines()
        .map(|l| match l.split_once(" | ") {
            Some((target, rest)) => format!("{} | {rest}\n", target.trim_end()),
            None => format!("{l}\n"),
        })
        .collect()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn e2e_the_example_plan_runs_for_real_and_a_second_apply_applies_nothing() {
    let k = node();
    let ns = namespace();
    // The example plan's Services, all on this machine.
    for svc in [
        "postgres-service",
        "app-plane-supabase-db",
        "app-plane-components-v2-postgres",
    ] {
        k.service(&ns.name, svc, host_ip());
    }
    // Its databases (supabase's is `postgres`, which every server has).
    psql(&pg().url("postgres"), "DROP DATABASE IF EXISTS arc_saas");
    psql(
        &pg().url("postgres"),
        "DROP DATABASE IF EXISTS components_v2",
    );
    psql(&pg().url("postgres"), "CREATE DATABASE arc_saas");
    psql(&pg().url("postgres"), "CREATE DATABASE components_v2");
    psql(&pg().url("arc_saas"), "CREATE SCHEMA tenant_management");
    let dir = tempfile::tempdir().unwrap();
    let port = pg().port().to_string();
    let plan = std::fs::read_to_string(repo().join("examples/ananta/plan.yaml"))
        .unwrap()
        .replace(
            "namespace: ananta-platform",
            &format!("namespace: {}", ns.name),
        )
        .replace(
            "runnerImage: kubemigrate/kubemigrate:0.1.0",
            &format!("runnerImage: {}", k.runner_image.as_deref().unwrap()),
        )
        .replace(
            "image: ananta/tenant-management-service:1.0.0",
            "image: localhost/control-plane:dev",
        )
        .replace(
            "image: ananta/supabase-migrations:1.0.0",
            "image: localhost/supabase-migrations:dev",
        )
        .replace("port: 5432", &format!("port: {port}"))
        .replace("port: 27432", &format!("port: {port}"))
        .replace("port: 27010", &format!("port: {port}"));
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo().join("examples/ananta/components-v2"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let file = dir.path().join("plan.yaml").display().to_string();
    let logs = dir.path().join("logs").display().to_string();
    let password = pg().password().to_string();
    let kc = k.kubeconfig.display().to_string();
    let env = [
        ("KUBECONFIG", kc.as_str()),
        ("CONTROL_PLANE_DB_PASSWORD", password.as_str()),
        ("SUPABASE_DB_PASSWORD", password.as_str()),
        ("COMPONENTS_V2_DB_PASSWORD", password.as_str()),
    ];
    let run = km(
        &["apply", "-f", &file, "--logs-dir", &logs, "--run-id", "r1"],
        &env,
    )
    .expect(0);
    let out = &squeeze(&run.stdout);
    assert!(!out.contains(&password));
    // Every container's log, live, from real containers.
    assert!(
        out.contains(
            "supabase | [wait-for-postgres] database postgres://postgres:****@app-plane-supabase-db"
        ),
        "{out}"
    );
    assert!(out.contains("supabase | [install-runner] "), "{out}");
    assert!(out.contains("supabase | applied V005__seed.sql"), "{out}");
    assert!(
        out.contains("components-v2 | applied V005__component_search_idx.sql"),
        "{out}"
    );
    assert!(out.contains("control-plane | "), "{out}");
    assert!(out.contains("3 succeeded, 0 failed, 0 skipped"), "{out}");
    // components-v2 depends on control-plane.
    assert!(
        out.find("control-plane | succeeded").unwrap()
            < out.find("components-v2 | started").unwrap(),
        "{out}"
    );
    // Each SQL migration once, in the history; db-migrate's own table too.
    assert_eq!(history("postgres").len(), 5, "{:?}", history("postgres"));
    assert!(history("postgres").iter().all(|h| h.ends_with("|true")));
    assert_eq!(history("components_v2").len(), 5);
    let db_migrate = psql(
        &pg().url("arc_saas"),
        "SELECT count(*) FROM tenant_management.migrations",
    );
    assert_ne!(db_migrate, "0");
    // The logs were saved per container.
    let saved = std::fs::read_dir(dir.path().join("logs/r1/supabase"))
        .unwrap()
        .count();
    assert!(
        saved >= 3,
        "wait-for-postgres, install-runner, run-migrations"
    );
    // status, logs, cleanup.
    let status = km(&["status", "-f", &file, "-o", "json"], &env)
        .expect(0)
        .json();
    assert!(
        status["runs"][0]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "succeeded"),
        "{status}"
    );
    let logs_out = km(&["logs", "-f", &file, "--target", "components-v2"], &env).expect(0);
    assert!(
        logs_out.stdout.contains("applied V001__components.sql"),
        "{}",
        logs_out.stdout
    );
    // A second run: nothing applies twice.
    let again = km(
        &["apply", "-f", &file, "--logs-dir", &logs, "--run-id", "r2"],
        &env,
    )
    .expect(0);
    assert!(
        squeeze(&again.stdout).contains("components-v2 | 0 to apply, 5 already applied"),
        "{}",
        again.stdout
    );
    assert_eq!(history("components_v2").len(), 5);
    assert_eq!(
        psql(
            &pg().url("arc_saas"),
            "SELECT count(*) FROM tenant_management.migrations"
        ),
        db_migrate
    );
    km(&["cleanup", "-f", &file], &env).expect(0);
    assert!(
        wait_until(Duration::from_secs(60), || k
            .ok(&["get", "pods", "-n", &ns.name, "-o", "name"])
            .trim()
            .is_empty()),
        "pods left after cleanup"
    );
}

#[test]
fn e2e_the_init_container_waits_for_a_late_database_and_reports_one_that_never_comes() {
    // The server starts 20 s after the Job: its port is chosen now.
    let port = kubemigrate_localpg::free_port().unwrap();
    let plan = Plan::new(
        "  timeout: 3m\n",
        &target("late", "postgres", port, "      sql: {localDir: sql}\n"),
    );
    plan.write("sql/V1__t.sql", "CREATE TABLE late_table (id int);\n");
    let child = plan.spawn(&["apply"]);
    std::thread::sleep(Duration::from_secs(20));
    let late = LocalPostgres::start_with(Options {
        also_listen_on: Some(host_ip()),
        port: Some(port),
        password: Some(pg().password().to_string()),
        ..Options::default()
    })
    .unwrap();
    let run = Run::from_output(child.wait_with_output().unwrap()).expect(0);
    assert!(
        squeeze(&run.stdout).contains("late | [wait-for-postgres] waiting for the database"),
        "{}",
        run.stdout
    );
    assert!(
        squeeze(&run.stdout).contains("late | applied V1__t.sql"),
        "{}",
        run.stdout
    );
    psql(&late.url("postgres"), "SELECT count(*) FROM late_table");

    // Nothing ever listens on this port.
    let never = kubemigrate_localpg::free_port().unwrap();
    let plan = Plan::new(
        "  timeout: 12s\n  backoffLimit: 0\n",
        &target("never", "postgres", never, "      sql: {localDir: sql}\n"),
    );
    plan.write("sql/V1__t.sql", "SELECT 1;\n");
    let run = plan
        .km(&["apply", "--waiting-report-every", "3s"])
        .expect(8);
    let out = &squeeze(&run.stdout);
    assert!(
        out.contains(&format!(
            "never | problem: wait-for-postgres is still waiting: waiting for the database: \
             cannot connect to postgres://postgres:****@db:{never}/postgres?sslmode=disable: \
             Connection refused"
        )),
        "{out}"
    );
    // The Job's deadline (the plan's timeout) ends the wait; the kubelet stops the
    // init container with SIGTERM.
    assert!(out.contains("never | failed in"), "{out}");
    assert!(out.contains("DeadlineExceeded"), "{out}");
    assert!(out.contains("wait-for-postgres exited 143"), "{out}");
}

/// The pid, on this machine, of the runner migrating `db` inside a pod: the
/// process whose command line is `kubemigrate sql migrate` and whose environment
/// names the database.
fn runner_pid(db: &str) -> Option<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", "kubemigrate sql migrate"])
        .output()
        .ok()?;
    let wanted = format!("DB_DATABASE={db}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == wanted.as_bytes()))
                .unwrap_or(false)
        })
}

/// Waits until a session of `db` runs pg_sleep, the middle of migration 002.
fn wait_for_sleep(db: &str) {
    let sleeping = || {
        psql(
            &pg().url("postgres"),
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND query LIKE '%pg_sleep%' AND state = 'active'"
            ),
        ) == "1"
    };
    assert!(
        wait_until(Duration::from_secs(120), sleeping),
        "migration 002 never started"
    );
}

fn interrupted_plan(db: &str) -> Plan {
    let plan = Plan::new(
        "  timeout: 5m\n  backoffLimit: 2\n",
        &target("kill", db, pg().port(), "      sql: {localDir: sql}\n"),
    );
    // A sequence is not transactional: only the first attempt of 002 sleeps.
    plan.write(
        "sql/001_t.sql",
        "CREATE TABLE t (id int); CREATE SEQUENCE attempt;\n",
    );
    plan.write(
        "sql/002_slow.sql",
        "INSERT INTO t VALUES (2);\nSELECT pg_sleep(CASE WHEN nextval('attempt') = 1 THEN 600 ELSE 0 END);\n",
    );
    plan.write("sql/003_t.sql", "INSERT INTO t VALUES (3);\n");
    plan
}

fn assert_applied_once(db: &str) {
    assert_eq!(
        history(db),
        ["001_t.sql|true", "002_slow.sql|true", "003_t.sql|true"],
        "every file once"
    );
    assert_eq!(
        psql(
            &pg().url(db),
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM t"
        ),
        "2,3"
    );
}

#[test]
fn e2e_a_runner_killed_mid_migration_is_retried_by_a_new_pod_and_applies_each_file_once() {
    let db = database("killed");
    let plan = interrupted_plan(&db);
    let child = plan.spawn(&["apply"]);
    wait_for_sleep(&db);
    let pid = runner_pid(&db).expect("the runner's process");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let run = Run::from_output(child.wait_with_output().unwrap()).expect(0);
    assert!(
        squeeze(&run.stdout).contains("kill | succeeded"),
        "{}",
        run.stdout
    );
    assert_eq!(plan.pods().len(), 2, "a second pod after the kill");
    assert_applied_once(&db);
}

#[test]
fn e2e_a_deleted_pod_is_replaced_and_each_file_applies_once() {
    let db = database("deleted");
    let plan = interrupted_plan(&db);
    let child = plan.spawn(&["apply"]);
    wait_for_sleep(&db);
    let pod = plan.pods().pop().unwrap();
    node().ok(&["delete", &pod, "-n", &plan.ns.name, "--wait=false"]);
    let run = Run::from_output(child.wait_with_output().unwrap()).expect(0);
    let out = squeeze(&run.stdout);
    // The kubelet's SIGTERM stops the runner at once (exit 143), its transaction
    // rolled back and its lock released, not after the grace period's SIGKILL.
    assert!(out.contains("kill | warning: stopped by SIGTERM"), "{out}");
    assert!(out.contains("run-migrations exited 143"), "{out}");
    assert!(out.contains("kill | succeeded"), "{out}");
    assert_applied_once(&db);
}

#[test]
fn e2e_oom_kills_missing_images_and_missing_secret_keys_are_diagnosed_at_once() {
    // A command over a 48 MiB limit that allocates until it is killed.
    let db = database("failures");
    let plan = Plan::new(
        "  timeout: 3m\n  backoffLimit: 0\n",
        &(target(
            "hog",
            &db,
            pg().port(),
            "      command:
        image: localhost/control-plane:dev
        command: [node, -e, \"const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))\"]
      resources: {requests: {memory: 48Mi}, limits: {memory: 48Mi}}
",
        ) + &target(
            "pull",
            &db,
            pg().port(),
            "      command: {image: localhost/does-not-exist:1, command: [migrate]}\n",
        ) + &format!(
            "    - name: key
      database:
        host: db
        name: {db}
        user: postgres
        password: {{existingSecret: {{name: db-credentials, key: password}}}}
      sql: {{localDir: sql}}
"
        )),
    );
    plan.write("sql/V1__t.sql", "SELECT 1;\n");
    // The Secret exists, but not its key `password`.
    node().ok(&[
        "create",
        "secret",
        "generic",
        "db-credentials",
        "-n",
        &plan.ns.name,
        "--from-literal=username=postgres",
    ]);
    let start = Instant::now();
    let hog = plan.km(&["apply", "--only", "hog"]).expect(8);
    assert!(
        hog.stdout
            .contains("hog | problem: run-migrations was killed: out of memory (limit 48Mi)"),
        "{}",
        hog.stdout
    );
    let pull = plan
        .km(&["apply", "--only", "pull", "--fail-fast-after", "5s"])
        .expect(8);
    assert!(
        pull.stdout.contains(
            "pull | problem: run-migrations: cannot pull image localhost/does-not-exist:1"
        ),
        "{}",
        pull.stdout
    );
    let key = plan
        .km(&["apply", "--only", "key", "--fail-fast-after", "5s"])
        .expect(8);
    assert!(
        key.stdout.contains("couldn't find key password in Secret"),
        "{}",
        key.stdout
    );
    assert!(start.elapsed() < Duration::from_secs(150), "not at once");
}

#[test]
fn e2e_pods_run_restricted_with_a_read_only_root_file_system() {
    let db = database("probe");
    let plan = Plan::new(
        "  timeout: 3m\n  backoffLimit: 0\n",
        &target(
            "probe",
            &db,
            pg().port(),
            "      command:
        image: localhost/control-plane:dev
        command: [sh, -c, \"node -p 'process.getuid()'; echo x > /probe || echo root file system is read-only; echo x > /tmp/ok && echo tmp is writable\"]
",
        ),
    );
    let run = plan.km(&["apply"]).expect(0);
    let out = &squeeze(&run.stdout);
    assert!(out.contains("probe | 1000"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("probe | tmp is writable"), "{out}");
    let spec = node().ok(&[
        "get",
        "pods",
        "-n",
        &plan.ns.name,
        "-o",
        "jsonpath={.items[0].spec.containers[0].securityContext.readOnlyRootFilesystem}",
    ]);
    assert_eq!(spec, "true");
}

#[test]
fn e2e_a_command_target_over_three_tenants_runs_as_an_indexed_job_and_reports_each() {
    // The example's db-migrate project (`npm run migrate`) over three tenant
    // databases; the second already has a table of the same name, so its
    // db-migrate fails there, and there alone.
    let tenants: Vec<String> = (1..=3).map(|i| database(&format!("tenant_{i}"))).collect();
    psql(
        &pg().url(&tenants[1]),
        "CREATE SCHEMA tenant_management; CREATE TABLE tenant_management.tenants (taken int)",
    );
    let plan = Plan::new(
        "  timeout: 5m\n  backoffLimit: 1\n",
        &format!(
            "    - name: tenants
      database: {{host: db, port: {port}, name: postgres, schema: tenant_management, sslMode: disable, user: postgres, password: {{fromEnv: PW}}}}
      databases:
        list: [{list}]
        concurrency: 2
      command:
        image: localhost/control-plane:dev
        command: [npm, run, migrate]
      securityContext: {{readOnlyRootFilesystem: false}}
",
            port = pg().port(),
            list = tenants.join(", ")
        ),
    );
    // A command that fails is exit 8 (target_failed), its own code in the report.
    let run = plan.km(&["apply"]).expect(8);
    let out = &squeeze(&run.stdout);
    // One line for the target, each database by its result; the failed one with
    // its exit code and its last lines.
    assert!(
        out.contains(&format!(
            "tenants: 3 databases: 2 ran, 1 failed: {} (exit 1): the command exited with 1",
            tenants[1]
        )),
        "{out}"
    );
    assert!(out.contains("already exists"), "{out}");
    // The other two migrated, each of db-migrate's four migrations once (its own
    // table); the bad one recorded its failure and has no db-migrate rows.
    let migrations = |db: &str| {
        psql(
            &pg().url(db),
            "SELECT count(*) FROM tenant_management.migrations",
        )
    };
    assert_eq!(migrations(&tenants[0]), "4");
    assert_eq!(migrations(&tenants[2]), "4");
    let runs = |db: &str| {
        psql(
            &pg().url(db),
            "SELECT string_agg(kind || ' ' || success, ',' ORDER BY id) FROM kubemigrate_history",
        )
    };
    let errors = |db: &str| {
        psql(
            &pg().url(db),
            "SELECT string_agg(coalesce(error, '-'), ' | ' ORDER BY id) FROM kubemigrate_history",
        )
    };
    // Each good tenant ends recorded as done. An attempt before it may have failed
    // on a loaded machine (CI saw it once: the suite's pods start together) and its
    // index then ran again, as backoffLimit 1 per index allows (db-migrate's own
    // table above still holds each migration once).
    for db in [&tenants[0], &tenants[2]] {
        let history = runs(db);
        let ends_done = history
            .strip_suffix("command true")
            .is_some_and(|before| before.is_empty() || before == "command false,");
        assert!(ends_done, "{db}: {history}: {}\n{out}", errors(db));
        if history != "command true" {
            eprintln!("{db} ran twice; the first attempt: {}", errors(db));
        }
    }
    assert!(
        runs(&tenants[1]).ends_with("command false"),
        "{}",
        runs(&tenants[1])
    );
    // The Job as the controller ran it: Indexed, one index per database, the bad
    // index retried on its own (backoffLimit 1 per index) and failed, the others done.
    let job = node().ok(&[
        "get",
        "jobs",
        "-n",
        &plan.ns.name,
        "-o",
        "jsonpath={.items[0].spec.completionMode} {.items[0].spec.completions} {.items[0].spec.parallelism} {.items[0].status.completedIndexes} {.items[0].status.failedIndexes}",
    ]);
    assert_eq!(job.trim(), "Indexed 3 2 0,2 1", "{job}");
    // status reads each database's result back from the real pods' logs.
    let status = plan.km(&["status", "-o", "json"]).expect(0).json();
    let results: Vec<String> = status["runs"][0]["jobs"][0]["databases"]
        .as_array()
        .unwrap_or_else(|| panic!("{status}"))
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["database"].as_str().unwrap(),
                d["result"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            format!("{} ran", tenants[0]),
            format!("{} failed", tenants[1]),
            format!("{} ran", tenants[2])
        ],
        "{status}"
    );
}
