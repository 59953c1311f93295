//! Lock and statement timeouts for the migrations' statements, and the retry of a
//! transactional file that met a lock timeout, against real PostgreSQL: another
//! session holds a conflicting lock for a while.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Db, Dir, pg, wait_until};

/// A session that holds ACCESS EXCLUSIVE on `t` for `seconds`, started and
/// holding it when this returns.
fn hold_lock(db: &Db, seconds: f64) -> Child {
    let child = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &db.url, "-c"])
        .arg(format!(
            "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({seconds}); COMMIT;"
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || db.sql(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 't' AND l.mode = 'AccessExclusiveLock' AND l.granted"
        ) == "1"),
        "the lock was never taken"
    );
    child
}

#[test]
fn a_file_that_meets_a_lock_timeout_is_rolled_back_and_retried_until_it_applies() {
    let _ = pg();
    let db = Db::new();
    db.sql("CREATE TABLE t (id int)");
    let dir = Dir::new(&[(
        "001_add.sql",
        "INSERT INTO t VALUES (1);\nALTER TABLE t ADD COLUMN c int;\n",
    )]);
    let mut holder = hold_lock(&db, 2.5);
    let run = db
        .km(&[
            "sql",
            "migrate",
            "--dir",
            &dir.arg(),
            "--statement-lock-timeout",
            "300ms",
            "--lock-retries",
            "5",
        ])
        .expect(0);
    holder.wait().unwrap();
    let out = &run.stdout;
    assert!(
        out.contains(
            "001_add.sql was rolled back: canceling statement due to lock timeout (SQLSTATE 55P03); retry 1 of 5 in 1.00s"
        ),
        "{out}"
    );
    assert!(out.contains("applied 001_add.sql"), "{out}");
    // Applied once: the failed attempts were rolled back whole.
    assert_eq!(db.sql("SELECT count(*) FROM t"), "1");
    assert_eq!(db.history(), ["001_add.sql|sql|true|"]);
}

#[test]
fn without_retries_a_lock_timeout_fails_the_file_and_with_too_few_it_fails_after_them() {
    let db = Db::new();
    db.sql("CREATE TABLE t (id int)");
    let dir = Dir::new(&[("001_add.sql", "ALTER TABLE t ADD COLUMN c int;\n")]);
    let mut holder = hold_lock(&db, 4.0);
    let run = db
        .km(&[
            "sql",
            "migrate",
            "--dir",
            &dir.arg(),
            "--statement-lock-timeout",
            "200ms",
            "--lock-retries",
            "1",
        ])
        .expect(3);
    holder.wait().unwrap();
    assert!(
        run.stdout.contains("retry 1 of 1 in 1.00s"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("SQLSTATE 55P03"), "{}", run.stderr);
    // The failed attempt is recorded; the next run applies the file.
    assert_eq!(
        db.sql("SELECT count(*) FROM kubemigrate_history WHERE NOT success"),
        "1"
    );
    db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
}

#[test]
fn a_statement_timeout_fails_a_slow_statement_and_is_not_retried() {
    let db = Db::new();
    let dir = Dir::new(&[("001_slow.sql", "SELECT pg_sleep(3);\n")]);
    let run = db
        .km(&[
            "sql",
            "migrate",
            "--dir",
            &dir.arg(),
            "--statement-timeout",
            "200ms",
            "--lock-retries",
            "3",
        ])
        .expect(3);
    assert!(
        run.stderr
            .contains("canceling statement due to statement timeout (SQLSTATE 57014"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("retry"), "{}", run.stdout);
}

#[test]
fn a_file_that_sets_its_own_lock_timeout_wins() {
    let db = Db::new();
    db.sql("CREATE TABLE t (id int)");
    let dir = Dir::new(&[(
        "001_add.sql",
        "SET lock_timeout = '10s';\nALTER TABLE t ADD COLUMN c int;\n",
    )]);
    let mut holder = hold_lock(&db, 1.5);
    db.km(&[
        "sql",
        "migrate",
        "--dir",
        &dir.arg(),
        "--statement-lock-timeout",
        "100ms",
    ])
    .expect(0);
    holder.wait().unwrap();
}
