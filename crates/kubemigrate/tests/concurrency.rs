//! Several runners at once, runners killed mid-file, the lock, `exec` and `wait-for-db`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Db, Dir, Run};

/// 30 files; each inserts its name into `applied`, whose primary key would reject a
/// second application of the same file.
fn corpus() -> Dir {
    let mut files = vec![(
        "000_init.sql".to_string(),
        "CREATE TABLE applied (file text PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());"
            .to_string(),
    )];
    for i in 1..30 {
        let name = format!("{i:03}_step.sql");
        files.push((name.clone(), format!("CREATE TABLE t{i} (id int);\nSELECT pg_sleep(0.01);\nINSERT INTO applied (file) VALUES ('{name}');\n")));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Dir::new(&refs)
}

/// The advisory locks in the database: held ones only, or waiting ones too.
fn advisory_locks(db: &Db, granted_only: bool) -> String {
    db.sql(&format!(
        "SELECT count(*) FROM pg_locks WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND locktype = 'advisory'{}",
        if granted_only { " AND granted" } else { "" }
    ))
}

/// Starts `exec --lock -- sleep SECS` and waits until it holds the migration lock.
fn hold_lock(db: &Db, secs: &str) -> Child {
    let holder = db.spawn(&["exec", "--lock", "--", "sleep", secs]);
    assert!(common::wait_until(Duration::from_secs(20), || {
        advisory_locks(db, true) == "1"
    }));
    holder
}

/// `sql migrate --dir DIR --lock-timeout TIMEOUT` against `db`.
fn migrate(db: &Db, dir: &Dir, lock_timeout: &str) -> Run {
    db.km(&[
        "sql",
        "migrate",
        "--dir",
        &dir.arg(),
        "--lock-timeout",
        lock_timeout,
    ])
}

/// Ends a [`hold_lock`] holder before its sleep is over.
fn release(mut holder: Child) {
    holder.kill().unwrap();
    holder.wait().unwrap();
}

fn concurrent_runners(n: usize) {
    let db = Db::new();
    let dir = corpus();
    let children: Vec<_> = (0..n)
        .map(|_| db.spawn(&["sql", "migrate", "--dir", &dir.arg()]))
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| Run::from_output(c.wait_with_output().unwrap()))
        .collect();
    for run in &runs {
        assert_eq!(run.code, 0, "{run:?}");
    }
    // Every file applied exactly once, by one runner.
    assert_eq!(
        db.sql("SELECT count(*), count(DISTINCT file) FROM applied"),
        "29|29"
    );
    assert_eq!(db.sql("SELECT count(*) FROM kubemigrate_history"), "30");
    let applied_lines: usize = runs
        .iter()
        .map(|r| {
            r.stdout.matches("\napplied ").count() + usize::from(r.stdout.starts_with("applied "))
        })
        .sum();
    assert_eq!(applied_lines, 30, "{runs:?}");
    // The others found nothing left to do (after the lock, or without it once
    // everything was applied).
    assert_eq!(
        runs.iter()
            .filter(|r| r.stdout.contains("0 to apply, 30 already applied"))
            .count(),
        n - 1
    );
    // No advisory lock is left behind.
    assert_eq!(advisory_locks(&db, false), "0");
}

#[test]
fn two_runners_at_once_apply_each_file_once() {
    concurrent_runners(2);
}

#[test]
fn eight_runners_at_once_apply_each_file_once() {
    concurrent_runners(8);
}

#[test]
fn a_runner_killed_inside_a_file_leaves_it_unrecorded_and_a_rerun_applies_it() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("001_a.sql", "CREATE TABLE a ();"),
        (
            "002_slow.sql",
            "CREATE TABLE slow ();\nSELECT pg_sleep(20);\nCREATE TABLE after_sleep ();\n",
        ),
    ]);
    let mut child = db.spawn(&["sql", "migrate", "--dir", &dir.arg()]);
    assert!(common::wait_until(Duration::from_secs(20), || {
        db.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(20)%' AND state = 'active'") == "1"
    }));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The server notices the dead client (client_connection_check_interval) and
    // rolls the file back; the lock's session ends with it.
    assert!(common::wait_until(Duration::from_secs(15), || {
        db.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(20)%'")
            == "0"
    }));
    assert_eq!(db.history(), ["001_a.sql|sql|true|"]);
    assert_eq!(db.sql("SELECT to_regclass('slow') IS NULL"), "t");
    dir.write(
        "002_slow.sql",
        "CREATE TABLE slow ();\nCREATE TABLE after_sleep ();\n",
    );
    let run = migrate(&db, &dir, "20s").expect(0);
    assert!(run.stdout.contains("applied 002_slow.sql"), "{run:?}");
    assert_eq!(
        db.history(),
        ["001_a.sql|sql|true|", "002_slow.sql|sql|true|"]
    );
}

#[test]
fn a_killed_no_transaction_file_is_recorded_as_interrupted() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001_nt.sql",
        "-- kubemigrate:no-transaction\nCREATE TABLE first ();\nSELECT pg_sleep(20);\nCREATE TABLE second ();\n",
    )]);
    let mut child = db.spawn(&["sql", "migrate", "--dir", &dir.arg()]);
    assert!(common::wait_until(Duration::from_secs(20), || {
        db.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(20)%' AND state = 'active'") == "1"
    }));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(db.history(), ["001_nt.sql|sql|false|2"]);
    let run = migrate(&db, &dir, "20s").expect(4);
    assert!(
        run.stderr
            .contains("001_nt.sql: was interrupted at statement 2"),
        "{run:?}"
    );
}

#[test]
fn a_runner_waits_for_the_lock_names_the_holder_and_gives_up_after_the_timeout() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "SELECT 1;")]);
    // Hold the lock with our own exec --lock.
    let holder = hold_lock(&db, "30");
    let started = Instant::now();
    let run = migrate(&db, &dir, "1s").expect(5);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        run.stdout
            .contains("waiting for the migration lock, held by pid "),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("application_name kubemigrate, client 127.0.0.1, connected since "),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("error: timed out after 1s waiting for the migration lock (held by pid "),
        "{run:?}"
    );
    release(holder);
    // Once the holder is gone, the lock is free again.
    assert!(common::wait_until(Duration::from_secs(10), || {
        advisory_locks(&db, false) == "0"
    }));
    migrate(&db, &dir, "5s").expect(0);
}

/// `sql migrate` reads its files while it connects and reads the history: a file
/// that cannot run still stops it before it writes anything (no history table) or
/// takes the lock, so at once, also while another runner holds the lock.
#[test]
fn a_bad_file_stops_migrate_before_any_write_and_without_waiting_for_a_held_lock() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("001.sql", "CREATE TABLE t (id int);"),
        ("002.sql", "-- nothing to run\n"),
    ]);
    let no_table = "SELECT to_regclass('kubemigrate_history') IS NULL AND to_regclass('t') IS NULL";
    let run = db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(2);
    assert!(run.stderr.contains("002.sql"), "{run:?}");
    assert_eq!(db.sql(no_table), "t");

    let holder = hold_lock(&db, "60");
    let started = Instant::now();
    let run = migrate(&db, &dir, "50s").expect(2);
    assert!(run.stderr.contains("002.sql"), "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited {:?} for the lock before reporting the file",
        started.elapsed()
    );
    // The holder's `exec` made the history table (for its own row): no file's row.
    assert_eq!(
        db.sql("SELECT to_regclass('t') IS NULL AND NOT EXISTS (SELECT FROM kubemigrate_history WHERE kind <> 'command')"),
        "t"
    );
    // It left no session behind: only the holder's lock and connection remain.
    assert!(common::wait_until(Duration::from_secs(10), || {
        advisory_locks(&db, false) == "1"
    }));
    release(holder);
    // With the file fixed, the same directory runs.
    std::fs::write(dir.dir.path().join("002.sql"), "CREATE TABLE u (id int);").unwrap();
    migrate(&db, &dir, "20s").expect(0);
    assert_eq!(
        db.sql("SELECT count(*) FROM kubemigrate_history WHERE kind <> 'command'"),
        "2"
    );
}

/// The files are read while the connection is being opened: a bad file is reported
/// at once, even when the server accepts the connection and never answers.
#[test]
fn a_bad_file_is_reported_at_once_while_the_server_does_not_answer() {
    // Listening, never accepting: the kernel completes the TCP handshake and the
    // startup message waits for a reply that never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = Dir::new(&[("001.sql", "-- nothing to run\n")]);
    let url = format!("postgres://app@127.0.0.1:{port}/app?connect_timeout=60");
    let started = Instant::now();
    let run = common::km(
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
    .expect(2);
    assert!(run.stderr.contains("001.sql"), "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited {:?} for the server before reporting the file",
        started.elapsed()
    );
    drop(silent);
}

/// A rerun that finds every file applied as it is ends on the history it read
/// without the lock: it neither waits for another runner's lock nor opens a
/// connection for it. One with anything to do (a new file, a changed one) still
/// waits for the lock.
#[test]
fn a_rerun_with_nothing_to_apply_ends_without_the_lock_and_one_with_work_waits_for_it() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "CREATE TABLE t (id int);")]);
    db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
    let holder = hold_lock(&db, "60");
    let run = migrate(&db, &dir, "2s").expect(0);
    assert!(
        !run.stdout.contains("waiting for the migration lock"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("0 to apply, 1 already applied"),
        "{run:?}"
    );
    // A file changed since it was applied: refused under the lock, so this run waits.
    std::fs::write(
        dir.dir.path().join("001.sql"),
        "CREATE TABLE t (id bigint);",
    )
    .unwrap();
    let run = migrate(&db, &dir, "1s").expect(5);
    assert!(
        run.stdout.contains("waiting for the migration lock"),
        "{run:?}"
    );
    std::fs::write(dir.dir.path().join("001.sql"), "CREATE TABLE t (id int);").unwrap();
    // A new file: waits too.
    std::fs::write(dir.dir.path().join("002.sql"), "CREATE TABLE u (id int);").unwrap();
    migrate(&db, &dir, "1s").expect(5);
    release(holder);
    let run = migrate(&db, &dir, "20s").expect(0);
    assert!(run.stdout.contains("applied 002.sql"), "{run:?}");
}

#[test]
fn exec_lock_serialises_two_commands_and_records_them() {
    let db = Db::new();
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("log");
    let script = format!("echo start >> {0}; sleep 1; echo end >> {0}", log.display());
    let a = db.spawn(&["exec", "--lock", "--", "sh", "-c", &script]);
    let b = db.spawn(&["exec", "--lock", "--", "sh", "-c", &script]);
    for c in [a, b] {
        let run = Run::from_output(c.wait_with_output().unwrap());
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "start\nend\nstart\nend\n"
    );
    assert_eq!(
        db.sql("SELECT string_agg(kind || ':' || exit_code || ':' || success || ':' || (execution_ms >= 1000), ',') FROM kubemigrate_history"),
        "command:0:true:true,command:0:true:true"
    );
    assert_eq!(advisory_locks(&db, false), "0");
}

#[test]
fn exec_exports_the_connection_and_exits_with_the_commands_code() {
    let db = Db::new();
    let password = common::pg().password().to_string();
    // The command can use every exported form of the connection.
    let check = r#"psql -XAtq "$DATABASE_URL" -c 'select 1' && psql -XAtq -c 'select 2' && test "$DB_DATABASE" = "$PGDATABASE" && test -n "$DB_PASSWORD" && exit 7"#;
    let run = db.km(&["exec", "--", "sh", "-c", check]).expect(7);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| *l == "1" || *l == "2")
            .count(),
        2,
        "{run:?}"
    );
    assert!(!run.stdout.contains(&password) && !run.stderr.contains(&password));
    assert_eq!(
        db.sql(
            "SELECT exit_code || ':' || success FROM kubemigrate_history WHERE kind = 'command'"
        ),
        "7:false"
    );
    let run = db.km(&["exec", "--", "/nonexistent/migrate"]).expect(127);
    assert!(
        run.stderr.contains("cannot run /nonexistent/migrate"),
        "{run:?}"
    );
}

#[test]
fn exec_forwards_sigterm_to_the_command() {
    let db = Db::new();
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("got-term");
    let script = format!(
        "trap 'echo term > {}; exit 42' TERM; sleep 30 & wait",
        marker.display()
    );
    let child = db.spawn(&["exec", "--", "sh", "-c", &script]);
    assert!(common::wait_until(Duration::from_secs(20), || {
        db.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'kubemigrate'") == "1"
    }));
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let run = Run::from_output(child.wait_with_output().unwrap());
    assert_eq!(run.code, 42, "{run:?}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "term\n");
}

#[test]
fn wait_for_db_goes_on_once_a_late_server_starts() {
    let mut pg = kubemigrate_localpg::LocalPostgres::start().unwrap();
    let url = pg.url("postgres");
    pg.stop_fast().unwrap();
    let child = common::km_command(
        &["wait-for-db", "--timeout", "60s"],
        &[("DATABASE_URL", url.as_str())],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    pg.restart().unwrap();
    let run = Run::from_output(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("waiting for the database: cannot connect to"),
        "{run:?}"
    );
    assert!(run.stdout.contains("is ready after"), "{run:?}");
    // Nothing listens on the port once the server is stopped again: the timeout names the last error.
    pg.stop_fast().unwrap();
    let run = common::km(
        &["wait-for-db", "--timeout", "1s"],
        &[("DATABASE_URL", url.as_str())],
    )
    .expect(6);
    assert!(
        run.stderr.contains("did not accept connections within 1s"),
        "{run:?}"
    );
    assert!(run.stderr.contains("refused"), "{run:?}");
}

#[test]
fn wait_for_db_fails_at_once_when_the_database_does_not_exist() {
    let url = common::pg().url("no_such_db");
    let started = Instant::now();
    let run = common::km(
        &["wait-for-db", "--timeout", "60s"],
        &[("DATABASE_URL", url.as_str())],
    )
    .expect(6);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        run.stderr
            .contains("database \"no_such_db\" does not exist (SQLSTATE 3D000)"),
        "{run:?}"
    );
}

#[test]
fn wait_for_db_fails_at_once_when_tls_is_required_but_the_server_has_none() {
    let url = format!("{}?sslmode=require", common::pg().url("postgres"));
    let started = Instant::now();
    let run = common::km(
        &["wait-for-db", "--timeout", "60s"],
        &[("DATABASE_URL", url.as_str())],
    )
    .expect(6);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(run.stderr.contains("TLS"), "{run:?}");
    assert!(run.stderr.contains("not retrying"), "{run:?}");
}
