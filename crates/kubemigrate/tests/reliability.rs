//! Regression tests for the defects found by trying to break kubemigrate as a hostile
//! user would: each test is named after what it guards, against a real PostgreSQL.
//!
//! See: issue 13 ("Reliability: the defects found by trying to break it, and the
//! classes behind them").
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Db, Dir, Run, km, km_command, wait_until};

/// Waits for a started kubemigrate, killing it after `limit` (a hang is a failure).
fn finish_within(mut child: Child, limit: Duration) -> Run {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Run::from_output(child.wait_with_output().unwrap());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?} (killed)\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs kubemigrate against `db`, failing the test if it takes longer than `limit`.
fn km_within(db: &Db, args: &[&str], limit: Duration) -> Run {
    let child = km_command(args, &[("DATABASE_URL", db.url.as_str())])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish_within(child, limit)
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A role of this test only (roles are shared by the server's databases).
fn role(db: &Db, suffix: &str) -> String {
    let name = format!("{}_{suffix}", db.name);
    db.sql(&format!("CREATE ROLE {name} NOLOGIN"));
    name
}

// Defect 2: history writes ran under the file's session state.
#[test]
fn a_no_transaction_file_that_changes_role_or_session_state_applies_and_is_recorded() {
    let db = Db::new();
    let owner = role(&db, "owner");
    db.sql(&format!(
        "CREATE TABLE t (a int, b int, c int); ALTER TABLE t OWNER TO {owner}; \
         GRANT CREATE ON SCHEMA public TO {owner}"
    ));
    let dir = Dir::new(&[
        (
            "001_role.sql",
            &format!(
                "-- kubemigrate:no-transaction\nSET ROLE {owner};\nCREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n"
            ),
        ),
        (
            "002_authorization.sql",
            &format!(
                "-- kubemigrate:no-transaction\nSET SESSION AUTHORIZATION {owner};\nCREATE INDEX CONCURRENTLY t_b_idx ON t (b);\n"
            ),
        ),
        (
            "003_read_only.sql",
            "-- kubemigrate:no-transaction\nSET default_transaction_read_only = on;\nSELECT 1;\n",
        ),
        (
            "004_own_transaction.sql",
            &format!(
                "BEGIN;\nSET SESSION AUTHORIZATION {owner};\nCREATE INDEX t_c_idx ON t (c);\nCOMMIT;\nSET default_transaction_read_only = on;\n"
            ),
        ),
    ]);
    let d = dir.arg();
    db.km(&["sql", "migrate", "--dir", &d]).expect(0);
    assert_eq!(
        db.history(),
        [
            "001_role.sql|sql|true|",
            "002_authorization.sql|sql|true|",
            "003_read_only.sql|sql|true|",
            "004_own_transaction.sql|sql|true|",
        ]
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass AND indisvalid"),
        "3"
    );
    let again = db.km(&["sql", "migrate", "--dir", &d]).expect(0);
    assert!(
        again.stdout.contains("0 applied, 4 already applied"),
        "{}",
        again.stdout
    );
}

// Defect 2: the record must say what really happened (here: statement 2 ran and
// failed, under another role).
#[test]
fn a_failed_no_transaction_file_under_another_role_records_the_statement_that_failed() {
    let db = Db::new();
    let reader = role(&db, "reader");
    let dir = Dir::new(&[(
        "001.sql",
        &format!("-- kubemigrate:no-transaction\nSET ROLE {reader};\nSELECT 1/0;\n"),
    )]);
    let d = dir.arg();
    let run = db.km(&["sql", "migrate", "--dir", &d]).expect(3);
    assert!(run.stderr.contains("division by zero"), "{}", run.stderr);
    assert_eq!(db.history(), ["001.sql|sql|false|2"]);
    assert!(
        db.sql("SELECT error FROM kubemigrate_history")
            .contains("division by zero")
    );
    let run = db.km(&["sql", "migrate", "--dir", &d]).expect(4);
    assert!(
        run.stderr.contains("failed at statement 2"),
        "{}",
        run.stderr
    );
}

// Defect 3: a transaction-control statement produced by a variable.
#[test]
fn a_transaction_control_statement_from_a_variable_makes_the_file_run_as_written() {
    let db = Db::new();
    db.sql("CREATE TABLE t1 (v int)");
    let dir = Dir::new(&[(
        "001.sql",
        "\\set c COMMIT\nINSERT INTO t1 VALUES (3);\nINSERT INTO t1 VALUES (4);\n:c;\nSELECT 1/0;\n",
    )]);
    let d = dir.arg();
    let dry = db
        .km(&["sql", "migrate", "--dir", &d, "--dry-run"])
        .expect(0);
    assert!(
        dry.stdout
            .contains("as written: it controls its own transaction"),
        "{}",
        dry.stdout
    );
    let run = db.km(&["sql", "migrate", "--dir", &d]).expect(3);
    assert!(run.stdout.contains("(as written"), "{}", run.stdout);
    // The file committed 3 and 4; it must never run again by itself.
    db.km(&["sql", "migrate", "--dir", &d]).expect(4);
    assert_eq!(
        db.sql("SELECT string_agg(v::text, ',' ORDER BY v) FROM t1"),
        "3,4"
    );
    assert_eq!(db.sql("SELECT transactional FROM kubemigrate_history"), "f");

    // A value that holds several statements, COMMIT among them, counts too.
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "\\set c 'SELECT 1; COMMIT'\nCREATE TABLE t2 (v int);\n:c;\n",
    )]);
    let d = dir.arg();
    let dry = db
        .km(&["sql", "migrate", "--dir", &d, "--dry-run"])
        .expect(0);
    assert!(dry.stdout.contains("as written"), "{}", dry.stdout);
    // Also through --set.
    let dir = Dir::new(&[("001.sql", "CREATE TABLE t3 (v int);\n:end_it;\n")]);
    let d = dir.arg();
    let dry = db
        .km(&[
            "sql",
            "migrate",
            "--dir",
            &d,
            "--dry-run",
            "--set",
            "end_it=END",
        ])
        .expect(0);
    assert!(dry.stdout.contains("as written"), "{}", dry.stdout);
}

// Defect 4: a FIFO reached through \i, \ir or \copy hung every command.
#[test]
fn a_fifo_reached_through_an_include_or_a_copy_is_refused_at_once() {
    let db = Db::new();
    for (body, fifo) in [
        ("\\ir lib/f.sql\n", "lib/f.sql"),
        ("\\i lib/f.sql\n", "lib/f.sql"),
        (
            "CREATE TABLE t (v int);\n\\copy t FROM 'data/f.csv'\n",
            "data/f.csv",
        ),
    ] {
        let dir = Dir::new(&[("001.sql", body)]);
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        mkfifo(&dir.file(fifo));
        let d = dir.arg();
        for args in [
            vec!["sql", "status", "--dir", d.as_str()],
            vec!["sql", "migrate", "--dir", d.as_str()],
        ] {
            let run = km_within(&db, &args, Duration::from_secs(20)).expect(2);
            assert!(
                run.stderr.contains("is not a regular file"),
                "{body}: {}",
                run.stderr
            );
        }
    }
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_tables WHERE tablename = 't'"),
        "0"
    );
}

// Defect 5: the failure row of a failed COPY was lost in about 1 run of 4.
#[test]
fn the_failure_row_of_a_failed_copy_is_always_written() {
    for round in 0..8 {
        let db = Db::new();
        let dir = Dir::new(&[
            ("001_ok.sql", "CREATE TABLE t (v int);\n"),
            ("002_copy.sql", "COPY nosuch FROM stdin;\n1\n2\n\\.\n"),
        ]);
        let d = dir.arg();
        let run = db.km(&["sql", "migrate", "--dir", &d]).expect(3);
        assert!(
            run.stderr.contains("\"nosuch\" does not exist"),
            "{}",
            run.stderr
        );
        assert_eq!(
            db.history(),
            ["001_ok.sql|sql|true|", "002_copy.sql|sql|false|1"],
            "round {round}"
        );
    }
    // Bad data in the middle of the stream, in a no-transaction file and in a
    // transactional file whose earlier failure is being retried.
    for round in 0..4 {
        let db = Db::new();
        let dir = Dir::new(&[
            ("001_ok.sql", "CREATE TABLE t (v int);\n"),
            (
                "002_copy.sql",
                "-- kubemigrate:no-transaction\nCOPY t FROM stdin;\n1\nnot a number\n\\.\n",
            ),
        ]);
        let d = dir.arg();
        db.km(&["sql", "migrate", "--dir", &d]).expect(3);
        assert_eq!(
            db.history(),
            ["001_ok.sql|sql|true|", "002_copy.sql|sql|false|1"],
            "round {round}"
        );
        let dir = Dir::new(&[
            ("001_ok.sql", "CREATE TABLE t (v int);\n"),
            ("002_copy.sql", "COPY nosuch FROM stdin;\n1\n\\.\n"),
        ]);
        let d = dir.arg();
        let db = Db::new();
        db.km(&["sql", "migrate", "--dir", &d]).expect(3);
        db.km(&["sql", "migrate", "--dir", &d]).expect(3);
        assert_eq!(
            db.history(),
            ["001_ok.sql|sql|true|", "002_copy.sql|sql|false|1"],
            "round {round}"
        );
    }
}

// Defect 6: a history table name of 63 characters or more got no unique index.
#[test]
fn a_long_history_table_name_gets_its_unique_index_and_no_stray_notice() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "SELECT 1;\n")]);
    let d = dir.arg();
    for len in [52, 63] {
        let table = format!("h{}", "x".repeat(len - 1));
        let run = db
            .km(&["sql", "migrate", "--dir", &d, "--history-table", &table])
            .expect(0);
        assert!(
            !run.stdout.contains("NOTICE") && !run.stderr.contains("NOTICE"),
            "{}{}",
            run.stdout,
            run.stderr
        );
        assert_eq!(
            db.sql(&format!(
                "SELECT count(*) FROM pg_index i WHERE i.indrelid = 'public.{table}'::regclass \
                 AND i.indisunique AND NOT i.indisprimary"
            )),
            "1",
            "{table}"
        );
    }
    let long = "h".repeat(64);
    let run = db
        .km(&["sql", "migrate", "--dir", &d, "--history-table", &long])
        .expect(2);
    assert!(run.stderr.contains("at most 63 bytes"), "{}", run.stderr);
    let run = db
        .km(&["sql", "migrate", "--dir", &d, "--history-schema", &long])
        .expect(2);
    assert!(run.stderr.contains("at most 63 bytes"), "{}", run.stderr);
}

// Defect 9: a migration that drops the history table.
#[test]
fn a_migration_that_drops_the_history_table_is_named_with_the_fix() {
    for (name, body) in [
        (
            "002_restore.sql",
            "DROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\nCREATE TABLE b (id int);\n",
        ),
        (
            "002_restore.sql",
            "BEGIN;\nDROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\nCREATE TABLE b (id int);\nCOMMIT;\n",
        ),
        (
            "002_restore.sql",
            "-- kubemigrate:no-transaction\nDROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\nCREATE TABLE b (id int);\n",
        ),
    ] {
        let db = Db::new();
        let dir = Dir::new(&[
            ("001.sql", "CREATE TABLE a (id int);\n"),
            (name, body),
            ("003.sql", "CREATE TABLE c (id int);\n"),
        ]);
        let d = dir.arg();
        let run = db.km(&["sql", "migrate", "--dir", &d]).expect(2);
        let error = run
            .stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default();
        assert!(
            error.contains("002_restore.sql")
                && error.contains("dropped the history table public.kubemigrate_history")
                && error.contains("--history-schema"),
            "{body}\n{}",
            run.stderr
        );
        assert_eq!(
            run.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1
        );

        // With the history in a schema of its own, the same files apply.
        let db = Db::new();
        db.km(&[
            "sql",
            "migrate",
            "--dir",
            &d,
            "--history-schema",
            "kubemigrate",
        ])
        .expect(0);
        assert_eq!(
            db.sql("SELECT count(*) FROM kubemigrate.kubemigrate_history WHERE success"),
            "3"
        );
    }
}

// Defect 8: limits the docs state.
#[test]
fn statements_and_copy_lines_over_256_mib_are_refused_before_anything_runs() {
    let db = Db::new();
    let big = 257 << 20;
    let dir = Dir::new(&[]);
    let mut statement = b"SELECT '".to_vec();
    statement.extend(std::iter::repeat_n(b'x', big));
    statement.extend_from_slice(b"';\n");
    std::fs::write(dir.file("001.sql"), &statement).unwrap();
    drop(statement);
    let d = dir.arg();
    let run = km_within(
        &db,
        &["sql", "migrate", "--dir", &d],
        Duration::from_secs(120),
    )
    .expect(2);
    assert!(
        run.stderr
            .contains("001.sql:1: a statement longer than 256 MiB"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(dir.file("001.sql")).unwrap();

    let mut copy = b"CREATE TABLE t (v text);\nCOPY t FROM stdin;\n".to_vec();
    copy.extend(std::iter::repeat_n(b'x', big));
    copy.extend_from_slice(b"\n\\.\n");
    std::fs::write(dir.file("001.sql"), &copy).unwrap();
    drop(copy);
    let run = km_within(
        &db,
        &["sql", "migrate", "--dir", &d],
        Duration::from_secs(120),
    )
    .expect(2);
    assert!(
        run.stderr
            .contains("001.sql:3: a line of COPY data longer than 256 MiB"),
        "{}",
        run.stderr
    );
    assert!(
        !db.sql("SELECT to_regclass('kubemigrate_history')::text")
            .contains("kubemigrate")
    );
}

#[test]
fn host_names_longer_than_dns_allows_are_refused() {
    let host = "h".repeat(300);
    let url = format!("postgres://u@{host}/db");
    let dir = Dir::new(&[("001.sql", "SELECT 1;\n")]);
    let run = km(
        &["sql", "status", "--dir", &dir.arg(), "--database-url", &url],
        &[],
    )
    .expect(2);
    assert!(run.stderr.contains("at most 253"), "{}", run.stderr);
    let run = km(&["wait-for-db", "--timeout", "1s"], &[("PGHOST", &host)]).expect(2);
    assert!(run.stderr.contains("at most 253"), "{}", run.stderr);
}

// Message: a foreign table or a NULL in the history ("error deserializing column 7").
#[test]
fn a_history_table_kubemigrate_cannot_read_is_named_with_its_row_and_column() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "SELECT 1;\n"), ("002.sql", "SELECT 2;\n")]);
    let d = dir.arg();
    db.km(&["sql", "migrate", "--dir", &d]).expect(0);
    db.sql(
        "ALTER TABLE kubemigrate_history ALTER success DROP NOT NULL; \
         UPDATE kubemigrate_history SET success = NULL WHERE version = '002.sql'",
    );
    for command in ["status", "migrate"] {
        let run = db.km(&["sql", command, "--dir", &d]).expect(4);
        let error = run.stderr.lines().next().unwrap_or_default();
        assert!(
            error.starts_with("error: reading the history: public.kubemigrate_history holds a row")
                && error.contains("version 002.sql")
                && error.contains("`success` is NULL"),
            "{}",
            run.stderr
        );
    }

    let db = Db::new();
    db.sql("CREATE VIEW kubemigrate_history AS SELECT 1 AS id");
    let run = db.km(&["sql", "status", "--dir", &d]).expect(4);
    assert!(
        run.stderr
            .contains("public.kubemigrate_history is a view, not the table"),
        "{}",
        run.stderr
    );
    let run = db.km(&["sql", "migrate", "--dir", &d]).expect(4);
    assert!(run.stderr.contains("is a view"), "{}", run.stderr);

    let db = Db::new();
    if db.sql("SELECT count(*) FROM pg_available_extensions WHERE name = 'file_fdw'") == "1" {
        db.sql(
            "CREATE EXTENSION file_fdw; CREATE SERVER files FOREIGN DATA WRAPPER file_fdw; \
             CREATE FOREIGN TABLE kubemigrate_history (id bigint, version text, kind text, \
             checksum text, applied_at timestamptz, execution_ms bigint, applied_by text, \
             success text) SERVER files OPTIONS (filename '/dev/null')",
        );
        let run = db.km(&["sql", "status", "--dir", &d]).expect(4);
        assert!(run.stderr.contains("is a foreign table"), "{}", run.stderr);
    }
}

/// A plan with one SQL target whose files are in `local_dir` (as written in the plan).
fn sql_plan(dir: &std::path::Path, local_dir: &str, extra: &str) -> String {
    let file = dir.join("plan.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {{name: shop}}
spec:
  targets:
    - name: a
      database: {{host: db, name: a, user: app, password: {{fromEnv: UNUSED}}}}
      sql: {{localDir: '{local_dir}'{extra}}}
"
        ),
    )
    .unwrap();
    file.display().to_string()
}

// Defect 7: render shipped files from outside the plan's directory.
#[test]
fn render_refuses_files_from_outside_the_plans_directory() {
    let top = tempfile::tempdir().unwrap();
    let plan_dir = top.path().join("plan");
    std::fs::create_dir_all(plan_dir.join("sql")).unwrap();
    std::fs::write(plan_dir.join("sql/001.sql"), "SELECT 1;\n").unwrap();
    let env = [("UNUSED", "pw")];

    // A symbolic link inside localDir to a file outside the plan's directory.
    std::os::unix::fs::symlink("/etc/passwd", plan_dir.join("sql/passwd.sql")).unwrap();
    let file = sql_plan(&plan_dir, "sql", "");
    let run = km(&["render", "-f", &file], &env).expect(2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(!run.stderr.contains("root:"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("passwd.sql leads to /etc/passwd, outside the plan's directory"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        2
    );
    std::fs::remove_file(plan_dir.join("sql/passwd.sql")).unwrap();

    // localDir itself outside: relative with .., and absolute.
    let outside = top.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("001.sql"), "SELECT 1;\n").unwrap();
    for local_dir in ["../outside".to_string(), outside.display().to_string()] {
        let file = sql_plan(&plan_dir, &local_dir, "");
        for command in ["validate", "render"] {
            let run = km(&[command, "-f", &file], &env).expect(2);
            assert!(
                run.stderr.contains("outside the plan's directory")
                    && run.stderr.contains("spec.targets[0].sql.localDir"),
                "{command} {local_dir}: {}",
                run.stderr
            );
        }
        // Unless the plan opts in.
        let file = sql_plan(&plan_dir, &local_dir, ", allowOutsidePlanDir: true");
        let run = km(&["render", "-f", &file], &env).expect(0);
        assert!(run.stdout.contains("SELECT 1;"), "{}", run.stdout);
    }

    // A symbolic link that loops back is an error, not an endless walk.
    std::os::unix::fs::symlink(".", plan_dir.join("sql/again")).unwrap();
    let file = sql_plan(&plan_dir, "sql", "");
    let run = km(&["render", "-f", &file], &env).expect(2);
    assert!(run.stderr.contains("(a loop)"), "{}", run.stderr);
}

/// Processes whose environment holds `needle` (the children of a local run get
/// `DB_DATABASE=<name>` from the Job), other than this test's.
fn processes_with_env(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(env) = std::fs::read(entry.path().join("environ"))
            && env.split(|&b| b == 0).any(|var| var == needle.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// A local run of one SQL target `a` whose file sleeps, started in a process group
/// of its own (so the test can signal that group).
fn start_sleeping_run(db: &Db, dir: &std::path::Path, url: &str, timeout: &str) -> Child {
    use std::os::unix::process::CommandExt as _;
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("a/001_sleep.sql"), "SELECT pg_sleep(8);\n").unwrap();
    let file = dir.join("plan.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {{name: shop}}
spec:
  timeout: {timeout}
  targets:
    - name: a
      database: {{host: a-db, name: {}, user: app, password: {{fromEnv: UNUSED}}}}
      sql: {{localDir: a}}
",
            db.name
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    let db_arg = format!("a={url}");
    km_command(
        &["apply", "-f", &file, "--local", "--db", &db_arg],
        &[("UNUSED", "x")],
    )
    .process_group(0)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn sleeping_backends(db: &Db) -> String {
    db.sql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE '%pg_sleep(8)%' \
         AND pid <> pg_backend_pid()",
        db.name
    ))
}

fn signal(target: &str, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, "--", target])
        .status()
        .unwrap();
    assert!(status.success());
}

// Defect 1: interrupting `apply --local` left the migration running.
#[test]
fn interrupting_apply_local_stops_every_child_reports_the_targets_and_exits_130_or_143() {
    for (sig, code) in [("-INT", 130), ("-TERM", 143)] {
        let db = Db::new();
        let dir = tempfile::tempdir().unwrap();
        let child = start_sleeping_run(&db, dir.path(), &db.url, "1m");
        let pid = child.id();
        assert!(
            wait_until(Duration::from_secs(20), || sleeping_backends(&db) == "1"),
            "the file never started"
        );
        // As a terminal does for Ctrl-C: the whole foreground process group.
        let started = Instant::now();
        signal(&format!("-{pid}"), sig);
        let run = finish_within(child, Duration::from_secs(20));
        assert_eq!(run.code, code, "{sig}\n{}\n{}", run.stdout, run.stderr);
        assert!(started.elapsed() < Duration::from_secs(12), "{sig}");
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with("a ") && l.contains("interrupted")),
            "{sig}\n{}",
            run.stdout
        );
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with("error: interrupted")
                    && l.contains(&sig[1..])
                    && l.contains(" a")),
            "{sig}\n{}",
            run.stderr
        );
        // Nothing of the run is left: no process, no session still sleeping, and
        // the file is not applied.
        let needle = format!("DB_DATABASE={}", db.name);
        assert!(
            wait_until(Duration::from_secs(5), || processes_with_env(&needle)
                .is_empty()),
            "{sig}: left behind: {:?}",
            processes_with_env(&needle)
        );
        assert!(
            wait_until(Duration::from_secs(5), || sleeping_backends(&db) == "0"),
            "{sig}: the file still runs"
        );
        assert!(
            !db.history().iter().any(|r| r.contains("|true|")),
            "{:?}",
            db.history()
        );
    }
}

// Defect 1: a SIGKILLed `apply --local` left its children running.
#[test]
fn a_sigkilled_apply_local_leaves_no_child_behind() {
    // While the file runs.
    let db = Db::new();
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_sleeping_run(&db, dir.path(), &db.url, "1m");
    assert!(
        wait_until(Duration::from_secs(20), || sleeping_backends(&db) == "1"),
        "the file never started"
    );
    signal(&child.id().to_string(), "-KILL");
    child.wait().unwrap();
    let needle = format!("DB_DATABASE={}", db.name);
    assert!(
        wait_until(Duration::from_secs(10), || processes_with_env(&needle)
            .is_empty()),
        "left behind: {:?}",
        processes_with_env(&needle)
    );
    assert!(
        wait_until(Duration::from_secs(5), || sleeping_backends(&db) == "0"),
        "the file still runs"
    );

    // While wait-for-db waits for a database that never comes up.
    let db = Db::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://app:pw@127.0.0.1:1/{}?connect_timeout=1",
        db.name
    );
    let mut child = start_sleeping_run(&db, dir.path(), &url, "1m");
    let needle = format!("DB_DATABASE={}", db.name);
    // The wait-for-db child and this run's own process.
    assert!(
        wait_until(Duration::from_secs(20), || processes_with_env(&needle)
            .len()
            == 1),
        "wait-for-db never started"
    );
    std::thread::sleep(Duration::from_millis(500));
    signal(&child.id().to_string(), "-KILL");
    child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || processes_with_env(&needle)
            .is_empty()),
        "left behind: {:?}",
        processes_with_env(&needle)
    );
}

// Message: `apply --local` with `timeout: 2s` said "after the plan's timeout (7.00s)".
#[test]
fn a_local_target_past_the_plans_timeout_names_the_plans_timeout() {
    let db = Db::new();
    let dir = tempfile::tempdir().unwrap();
    let child = start_sleeping_run(&db, dir.path(), &db.url, "2s");
    let run = finish_within(child, Duration::from_secs(30));
    assert_eq!(run.code, 8, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("DeadlineExceeded: still running after the plan's timeout of 2s"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("timeout (7.00s)"), "{}", run.stdout);
    let needle = format!("DB_DATABASE={}", db.name);
    assert!(
        wait_until(Duration::from_secs(5), || processes_with_env(&needle)
            .is_empty()),
        "left behind: {:?}",
        processes_with_env(&needle)
    );
}

fn plan_with_database(dir: &std::path::Path, database: &str) -> String {
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    std::fs::write(dir.join("sql/001.sql"), "SELECT 1;\n").unwrap();
    let file = dir.join("plan.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: kubemigrate.io/v1alpha1\nkind: MigrationPlan\nmetadata:\n  name: shop\nspec:\n  targets:\n    - name: a\n      database:\n{database}      sql: {{localDir: sql}}\n"
        ),
    )
    .unwrap();
    file.display().to_string()
}

fn first_error(run: &Run) -> String {
    run.stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_string()
}

// Messages: a tab in YAML indentation was reported on the wrong line; `user:\tu` was
// refused although YAML 1.2 allows it.
#[test]
fn yaml_tabs_are_reported_where_they_are_and_allowed_where_yaml_allows_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = plan_with_database(
        dir.path(),
        "        host: db\n\t\tname: a\n        user: app\n        password: {fromEnv: P}\n",
    );
    let run = km(&["validate", "-f", &file], &[]).expect(2);
    assert!(
        first_error(&run)
            .contains("plan.yaml:10:1: (document): invalid YAML: a tab in the indentation"),
        "{}",
        run.stderr
    );
    let file = plan_with_database(
        dir.path(),
        "        host: db\n        name: a\n        user:\tapp\n        password: {fromEnv: P}\n",
    );
    km(&["validate", "-f", &file], &[]).expect(0);
}

// Messages: port 0 was refused by a message that says "0 to 65535"; the sslmode list
// left out `allow`.
#[test]
fn port_and_sslmode_messages_name_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for port in ["0", "'5432'", "70000"] {
        let file = plan_with_database(
            dir.path(),
            &format!(
                "        host: db\n        port: {port}\n        name: a\n        user: app\n        password: {{fromEnv: P}}\n"
            ),
        );
        let run = km(&["validate", "-f", &file], &[]).expect(2);
        let error = first_error(&run);
        assert!(error.contains("from 1 to 65535"), "{port}: {error}");
        assert!(!error.contains("0 to 65535"), "{port}: {error}");
    }
    let run = km(
        &[
            "wait-for-db",
            "--database-url",
            "postgres://u@h/d?sslmode=maybe",
        ],
        &[],
    )
    .expect(2);
    assert!(
        first_error(&run)
            .contains("not one of disable, allow, prefer, require, verify-ca, verify-full"),
        "{}",
        run.stderr
    );
}

// Message: a role with CONNECTION LIMIT 1 failed with "connected to X" then "too
// many connections"; a migrator needs two connections.
#[test]
fn a_role_limited_to_one_connection_is_told_that_a_migrator_needs_two() {
    let db = Db::new();
    let role = format!("{}_one", db.name);
    db.sql(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'pw' CONNECTION LIMIT 1; GRANT ALL ON SCHEMA public TO {role}"
    ));
    let url = format!(
        "postgres://{role}:pw@127.0.0.1:{}/{}",
        common::pg().port(),
        db.name
    );
    let dir = Dir::new(&[("001.sql", "SELECT 1;\n")]);
    let run = km(
        &[
            "sql",
            "migrate",
            "--dir",
            &dir.arg(),
            "--database-url",
            &url,
        ],
        &[],
    )
    .expect(6);
    let error = first_error(&run);
    assert!(
        error.contains("(SQLSTATE 53300)")
            && error.contains("kubemigrate needs two connections")
            && error.contains("CONNECTION LIMIT 2"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(":pw@"), "{}", run.stderr);
}

// Message: a runner that was only waiting for the lock reported "lost the connection
// that holds the migration lock" after a server restart.
#[test]
fn a_runner_waiting_for_the_lock_says_it_was_waiting_when_the_server_restarts() {
    let mut pg = kubemigrate_localpg::LocalPostgres::start().unwrap();
    common::psql(&pg.url("postgres"), "CREATE DATABASE w");
    let url = pg.url("w");
    let holder_dir = Dir::new(&[("001.sql", "SELECT pg_sleep(30);\n")]);
    let waiter_dir = Dir::new(&[("001.sql", "SELECT pg_sleep(30);\n")]);
    let holder = km_command(
        &["sql", "migrate", "--dir", &holder_dir.arg()],
        &[("DATABASE_URL", url.as_str())],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The holder first: it has the lock once its file sleeps.
    assert!(
        wait_until(Duration::from_secs(20), || {
            common::psql(
                &pg.url("postgres"),
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'",
            ) == "1"
        }),
        "the holder never ran its file"
    );
    let waiter = km_command(
        &[
            "sql",
            "migrate",
            "--dir",
            &waiter_dir.arg(),
            "--lock-timeout",
            "1m",
        ],
        &[("DATABASE_URL", url.as_str())],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || {
            // The holder's two connections (one sleeping) and the waiter's two.
            common::psql(
                &pg.url("postgres"),
                "SELECT count(*) FILTER (WHERE query LIKE 'SELECT pg_sleep(30)%') || ',' || count(*) \
                 FROM pg_stat_activity WHERE datname = 'w'",
            ) == "1,4"
        }),
        "the second runner never waited"
    );
    pg.stop_fast().unwrap();
    let run = finish_within(waiter, Duration::from_secs(20));
    assert_eq!(run.code, 6, "{}\n{}", run.stdout, run.stderr);
    assert!(
        first_error(&run)
            .contains("lost the connection while waiting for the migration lock (nothing was run)"),
        "{}",
        run.stderr
    );
    finish_within(holder, Duration::from_secs(20));
    pg.restart().unwrap();
}

// Message: `--database-url ""` silently meant localhost:5432.
#[test]
fn an_empty_database_url_flag_is_refused_but_an_empty_variable_is_unset() {
    let dir = Dir::new(&[("001.sql", "SELECT 1;\n")]);
    let d = dir.arg();
    for flag in [vec!["--database-url", ""], vec!["--database-url="]] {
        let mut args = vec!["sql", "status", "--dir", d.as_str()];
        args.extend(flag);
        let run = km(&args, &[]).expect(2);
        assert!(
            first_error(&run).contains("--database-url: the URL is empty"),
            "{}",
            run.stderr
        );
    }
    // An empty DATABASE_URL counts as unset: PGHOST and friends apply.
    let db = Db::new();
    let run = km(
        &["sql", "status", "--dir", &d],
        &[
            ("DATABASE_URL", ""),
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &common::pg().port().to_string()),
            ("PGUSER", "postgres"),
            ("PGPASSWORD", common::pg().password()),
            ("PGDATABASE", &db.name),
        ],
    );
    assert_eq!(run.code, 7, "{}", run.stderr);
}

// Message: file names with a newline or terminal escapes were printed raw.
#[test]
fn file_names_with_control_characters_are_refused_and_never_printed_raw() {
    for name in ["001\nx.sql", "002_\u{1b}[31mred.sql"] {
        let dir = Dir::new(&[(name, "SELECT 1;\n"), ("000_ok.sql", "SELECT 1;\n")]);
        let run = km(
            &["sql", "migrate", "--dir", &dir.arg(), "--dry-run"],
            &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/x")],
        )
        .expect(2);
        assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{:?}", run.stderr);
        assert!(
            run.stderr.contains("a file name with a control character"),
            "{:?}",
            run.stderr
        );
        assert!(
            run.stderr.contains("001\\nx.sql") || run.stderr.contains("002_\\u{1b}[31mred.sql"),
            "{:?}",
            run.stderr
        );
    }
    // An ignored name is warned about escaped too, and an include's name in an error.
    let dir = Dir::new(&[
        ("001.SQL\u{1b}", "SELECT 1;\n"),
        ("002.sql", "\\i 'a\u{1b}b.sql'\n"),
    ]);
    let run = km(
        &["sql", "migrate", "--dir", &dir.arg(), "--dry-run"],
        &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/x")],
    )
    .expect(2);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    assert!(
        run.stderr.contains("cannot include a\\u{1b}b.sql"),
        "{:?}",
        run.stderr
    );
}

// Message: `--set 1a=x` was accepted though `:1a` can never be referenced.
#[test]
fn a_set_name_no_file_can_use_is_refused() {
    let dir = Dir::new(&[("001.sql", "SELECT 1;\n")]);
    let run = km(
        &["sql", "status", "--dir", &dir.arg(), "--set", "1a=x"],
        &[],
    )
    .expect(2);
    assert!(
        first_error(&run).contains("a file could never use :1a"),
        "{}",
        run.stderr
    );
}

// Message: `--lock-timeout -5s` was reported as an unknown argument.
#[test]
fn a_negative_duration_is_called_negative() {
    let dir = Dir::new(&[("001.sql", "SELECT 1;\n")]);
    let d = dir.arg();
    for args in [
        vec![
            "sql",
            "migrate",
            "--dir",
            d.as_str(),
            "--lock-timeout",
            "-5s",
        ],
        vec![
            "sql",
            "migrate",
            "--dir",
            d.as_str(),
            "--statement-lock-timeout",
            "-5s",
        ],
        vec!["wait-for-db", "--timeout", "-5s"],
    ] {
        let run = km(&args, &[]).expect(2);
        assert!(
            first_error(&run).contains("\"-5s\" is negative"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

// Defect 1: an interrupt while wait-for-db waits stops it, and run-migrations never
// starts.
#[test]
fn interrupting_apply_local_during_wait_for_db_starts_nothing_else() {
    let db = Db::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://app:pw@127.0.0.1:1/{}?connect_timeout=1",
        db.name
    );
    let child = start_sleeping_run(&db, dir.path(), &url, "1m");
    let needle = format!("DB_DATABASE={}", db.name);
    assert!(
        wait_until(Duration::from_secs(20), || processes_with_env(&needle)
            .len()
            == 1),
        "wait-for-db never started"
    );
    signal(&format!("-{}", child.id()), "-INT");
    let run = finish_within(child, Duration::from_secs(20));
    assert_eq!(run.code, 130, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("stopped by SIGINT while wait-for-postgres ran"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("-- run-migrations"), "{}", run.stdout);
    assert!(processes_with_env(&needle).is_empty());
}

/// Every file but a run's last commits without waiting for the disk (docs/sql-engine.md,
/// "When a commit reaches the disk"): a crash of the server right after the run
/// must still find every file the run reported, with its history row.
#[test]
fn every_file_a_run_applied_survives_a_server_crash_right_after_it() {
    use kubemigrate_localpg::{LocalPostgres, Options};
    // A server of its own, durable (fsync and synchronous_commit on), whose WAL
    // writer waits 10 s between rounds: a commit that nobody waited for stays in
    // shared memory, and is lost by the crash below.
    let mut pg = LocalPostgres::start_with(Options {
        fast_unsafe: false,
        ..Options::default()
    })
    .unwrap();
    let admin = pg.url("postgres");
    common::psql(&admin, "ALTER SYSTEM SET wal_writer_delay = '10s'");
    common::psql(&admin, "SELECT pg_reload_conf()");
    common::psql(&admin, "CREATE DATABASE crash");
    let url = pg.url("crash");
    let dir = Dir::new(&[]);
    let write = |from: u32, to: u32| {
        for i in from..=to {
            dir.write(
                &format!("V{i:03}__t.sql"),
                &format!("CREATE TABLE t{i} (id int);\nINSERT INTO t{i} VALUES ({i});\n"),
            );
        }
    };
    let migrate = |code: i32| {
        km(
            &[
                "sql",
                "migrate",
                "--dir",
                &dir.arg(),
                "--database-url",
                &url,
            ],
            &[],
        )
        .expect(code)
    };
    let count = |pg: &LocalPostgres, sql: &str| common::psql(&pg.url("crash"), sql);
    write(1, 40);
    migrate(0);
    pg.stop_immediate().unwrap();
    pg.restart().unwrap();
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM kubemigrate_history WHERE success"
        ),
        "40",
        "{}",
        pg.log()
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM t40"), "1");
    // A run that ends with a failed file: the files it applied before are on disk too.
    write(41, 60);
    dir.write("V061__bad.sql", "SELECT 1 / 0;\n");
    migrate(3);
    pg.stop_immediate().unwrap();
    pg.restart().unwrap();
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FILTER (WHERE success) || ' ' || count(*) FILTER (WHERE NOT success) FROM kubemigrate_history"
        ),
        "60 1"
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM t60"), "1");
}
