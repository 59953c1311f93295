//! `kubemigrate apply --local` against real databases: ordering, parallel targets,
//! skipped dependents, exit codes, a database that never comes up.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Db, km};

/// A plan in `dir` with targets `a` (SQL in `a/`), `b` (dependsOn a, SQL in `b/`),
/// `c` (independent, a command). Hosts are placeholders: `--db` points them at the
/// test databases.
fn plan(dir: &Path, timeout: &str, a_sql: &str, c_command: &str) {
    for (name, sql) in [("a", a_sql), ("b", "CREATE TABLE b_table (id int);\n")] {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("V1__init.sql"), sql).unwrap();
    }
    std::fs::write(
        dir.join("plan.yaml"),
        format!(
            "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {{name: shop}}
spec:
  timeout: {timeout}
  targets:
    - name: a
      database: {{host: a-db, name: a, user: app, password: {{fromEnv: UNUSED}}}}
      sql: {{localDir: a}}
    - name: b
      dependsOn: [a]
      database: {{host: b-db, name: b, user: app, password: {{fromEnv: UNUSED}}}}
      sql: {{localDir: b}}
    - name: c
      database: {{host: c-db, name: c, schema: app_schema, user: app, password: {{fromEnv: UNUSED}}}}
      command:
        image: shop/app:1
        command: [sh, -c, '{c_command}']
"
        ),
    )
    .unwrap();
}

fn apply(dir: &Path, dbs: &[(&str, &str)], extra: &[&str]) -> common::Run {
    let file = dir.join("plan.yaml").display().to_string();
    let mut args = vec!["apply", "-f", file.as_str(), "--local"];
    let pairs: Vec<String> = dbs.iter().map(|(t, u)| format!("{t}={u}")).collect();
    for p in &pairs {
        args.push("--db");
        args.push(p);
    }
    args.extend_from_slice(extra);
    km(&args, &[])
}

#[test]
fn targets_run_in_order_and_each_migrates_its_database() {
    let (a, b, c) = (Db::new(), Db::new(), Db::new());
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        "1m",
        "CREATE TABLE a_table (id int);\n",
        "test \"$NODE_ENV\" = production && test \"$DB_SCHEMA\" = app_schema && psql -X -q -v ON_ERROR_STOP=1 -c \"CREATE TABLE c_table (id int)\"",
    );
    let run = apply(
        dir.path(),
        &[("a", &a.url), ("b", &b.url), ("c", &c.url)],
        &["--run-id", "t1"],
    )
    .expect(0);
    assert_eq!(a.history(), ["V1__init.sql|sql|true|"]);
    assert_eq!(b.history(), ["V1__init.sql|sql|true|"]);
    assert_eq!(c.sql("SELECT count(*) FROM c_table"), "0");
    assert_eq!(c.history().len(), 1, "the command is recorded");
    let out = &run.stdout;
    assert!(
        out.contains("applying plan shop on this machine (run t1): a, b, c"),
        "{out}"
    );
    // b starts only after a has finished.
    let a_done = out.find("a | succeeded").unwrap();
    let b_start = out.find("b | started").unwrap();
    assert!(a_done < b_start, "{out}");
    assert!(out.contains("a | [wait-for-postgres] database"), "{out}");
    assert!(
        out.contains("TARGET  STATUS        DURATION  DETAIL"),
        "{out}"
    );
    assert!(out.contains("3 succeeded, 0 failed, 0 skipped"), "{out}");
    // A second run applies nothing and says so.
    let again = apply(
        dir.path(),
        &[("a", &a.url), ("b", &b.url), ("c", &c.url)],
        &[],
    )
    .expect(8);
    // ... except the command, which is not idempotent here: CREATE TABLE fails.
    assert!(
        again.stdout.contains("0 applied, 1 already applied"),
        "{}",
        again.stdout
    );
    assert_eq!(a.history().len(), 1);
}

#[test]
fn a_failed_target_skips_its_dependents_and_sets_the_exit_code() {
    let (a, b, c) = (Db::new(), Db::new(), Db::new());
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        "1m",
        "CREATE TABLE a_table (id int);\nSELECT 1/0;\n",
        "true",
    );
    let run = apply(
        dir.path(),
        &[("a", &a.url), ("b", &b.url), ("c", &c.url)],
        &["-o", "json"],
    )
    .expect(3);
    let json = run.json();
    let targets = json["targets"].as_array().unwrap();
    let status = |i: usize| targets[i]["status"].as_str().unwrap();
    assert_eq!(
        (status(0), status(1), status(2)),
        ("failed", "skipped", "succeeded")
    );
    assert_eq!(targets[0]["container"], "run-migrations");
    assert_eq!(targets[0]["exit_code"], 3);
    assert_eq!(targets[0]["exit_meaning"], "a migration's SQL failed");
    assert!(
        targets[0]["last_lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("division by zero")),
        "{json}"
    );
    assert_eq!(targets[1]["reason"], "a did not succeed");
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["outcome"], "sql_failed");
    assert_eq!(
        a.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'a_table'"),
        "0"
    );
    assert_eq!(
        b.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'b_table'"),
        "0"
    );
}

#[test]
fn a_database_that_never_comes_up_fails_within_the_timeout() {
    let c = Db::new();
    let dir = tempfile::tempdir().unwrap();
    plan(dir.path(), "3s", "SELECT 1;\n", "true");
    let start = Instant::now();
    let run = apply(
        dir.path(),
        &[
            ("a", "postgres://app:pw@127.0.0.1:1/a?connect_timeout=1"),
            ("c", &c.url),
        ],
        &["--only", "a,c"],
    )
    .expect(6);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(
        run.stdout
            .contains("wait-for-postgres exited 6 (cannot connect to the database)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("not selected"), "{}", run.stdout);
    // The password of the --db URL is never printed.
    assert!(!run.stdout.contains(":pw@") && !run.stderr.contains(":pw@"));
}

#[test]
fn a_failed_command_exits_8_and_bad_flags_exit_2() {
    let (a, b, c) = (Db::new(), Db::new(), Db::new());
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        "1m",
        "SELECT 1;\n",
        "echo about to fail; exit 42",
    );
    let run = apply(
        dir.path(),
        &[("a", &a.url), ("b", &b.url), ("c", &c.url)],
        &[],
    )
    .expect(8);
    assert!(
        run.stdout.contains("run-migrations exited 42\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("  about to fail"), "{}", run.stdout);

    // A --db without TARGET= is refused without repeating the URL's password.
    let file = dir.path().join("plan.yaml").display().to_string();
    let run = km(
        &[
            "apply",
            "-f",
            &file,
            "--local",
            "--db",
            "postgres://u:hunter2@h/db?sslmode=require",
        ],
        &[],
    )
    .expect(2);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    assert!(
        run.stderr.contains("--db: expected TARGET=URL"),
        "{}",
        run.stderr
    );
    let run = apply(dir.path(), &[("x", &a.url)], &[]).expect(2);
    assert!(
        run.stderr.contains("--db: the plan has no target \"x\""),
        "{}",
        run.stderr
    );
    let run = apply(dir.path(), &[], &["--only", "bb"]).expect(2);
    assert!(
        run.stderr.contains("the targets are: a, b, c"),
        "{}",
        run.stderr
    );
    // --db is for local runs only.
    let run = km(&["apply", "-f", &file, "--db", "a=postgres://x@y/z"], &[]).expect(2);
    assert!(run.stderr.contains("--local"), "{}", run.stderr);
    // Without --local it is a cluster run: no cluster configuration, exit 10.
    let run = km(
        &["apply", "-f", &file],
        &[
            ("UNUSED", "pw"),
            ("KUBECONFIG", "/nonexistent/kubeconfig"),
            ("HOME", "/nonexistent"),
        ],
    )
    .expect(10);
    assert!(
        run.stderr.contains("cannot load the cluster configuration"),
        "{}",
        run.stderr
    );
}
