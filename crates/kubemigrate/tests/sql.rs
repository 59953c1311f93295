//! `kubemigrate sql …` end to end against a real PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use common::{Db, Dir};

fn migrate(db: &Db, dir: &Dir) -> common::Run {
    db.km(&["sql", "migrate", "--dir", &dir.arg()])
}

#[test]
fn files_run_in_byte_order_and_the_width_warning_names_them() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("2_b.sql", "INSERT INTO log VALUES ('2_b');"),
        ("10_a.sql", "INSERT INTO log VALUES ('10_a');"),
        ("1_create.sql", "CREATE TABLE log (name text);"),
        ("README.md", "not a migration"),
    ]);
    // Byte order: "10_a" < "1_create" < "2_b"; 10_a runs before the table exists.
    let run = migrate(&db, &dir).expect(3);
    assert!(run.stderr.contains("10_a.sql"), "{}", run.stderr);
    let dir = Dir::new(&[
        ("0_create.sql", "CREATE TABLE log (n serial, name text);"),
        ("2_b.sql", "INSERT INTO log (name) VALUES ('2_b');"),
        ("10_a.sql", "INSERT INTO log (name) VALUES ('10_a');"),
    ]);
    let db = Db::new();
    let run = migrate(&db, &dir).expect(0);
    assert!(
        run.stderr
            .contains("warning: 10_a.sql runs before 2_b.sql although its number is larger"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.sql("SELECT string_agg(name, ',' ORDER BY n) FROM log"),
        "10_a,2_b"
    );
    assert_eq!(
        db.history(),
        [
            "0_create.sql|sql|true|",
            "10_a.sql|sql|true|",
            "2_b.sql|sql|true|"
        ]
    );
}

#[test]
fn applied_files_are_skipped_and_new_ones_applied() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("001_t.sql", "CREATE TABLE t (id int);"),
        ("002_rows.sql", "INSERT INTO t VALUES (1), (2);"),
    ]);
    let run = migrate(&db, &dir).expect(0);
    assert!(
        run.stdout.contains("2 to apply, 0 already applied"),
        "{}",
        run.stdout
    );
    let run = migrate(&db, &dir).expect(0);
    assert!(
        run.stdout.contains("0 to apply, 2 already applied"),
        "{}",
        run.stdout
    );
    assert_eq!(db.sql("SELECT count(*) FROM t"), "2");
    dir.write("003_more.sql", "INSERT INTO t VALUES (3);");
    let run = db
        .km(&["sql", "migrate", "--dir", &dir.arg(), "-o", "json"])
        .expect(0);
    let doc = run.json();
    let statuses: Vec<_> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}={}",
                f["version"].as_str().unwrap(),
                f["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            "001_t.sql=skipped",
            "002_rows.sql=skipped",
            "003_more.sql=applied"
        ]
    );
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["exit_code"], 0);
    let f = &doc["files"][2];
    assert_eq!(f["checksum"].as_str().unwrap().len(), 64);
    assert!(f["duration_ms"].is_u64());
    assert_eq!(db.sql("SELECT count(*) FROM t"), "3");
    // Progress went to stderr, so stdout is only the document.
    assert!(
        run.stderr.contains("applied 003_more.sql"),
        "{}",
        run.stderr
    );
}

/// A rerun first only hashes the files that lexing could not change (see
/// docs/sql-engine.md); once one of them is pending, every such file is lexed before
/// the lock is taken: one that does not lex still stops the run, nothing applied.
#[test]
fn a_rerun_with_a_pending_file_that_does_not_lex_applies_nothing() {
    let db = Db::new();
    let dir = Dir::new(&[("001_t.sql", "CREATE TABLE t (id int);\n")]);
    migrate(&db, &dir).expect(0);
    dir.write("002_u.sql", "CREATE TABLE u (id int);\n");
    dir.write("003_v.sql", "INSERT INTO u VALUES ('unterminated);\n");
    let run = migrate(&db, &dir).expect(2);
    assert!(run.stderr.contains("003_v.sql"), "{}", run.stderr);
    assert_eq!(db.sql("SELECT to_regclass('u') IS NULL"), "t");
    assert_eq!(db.history(), ["001_t.sql|sql|true|"]);
    // Fixed, the rerun applies both; the next one finds nothing to do.
    dir.write("003_v.sql", "INSERT INTO u VALUES (1);\n");
    migrate(&db, &dir).expect(0);
    let run = migrate(&db, &dir).expect(0);
    assert!(
        run.stdout.contains("0 to apply, 3 already applied"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_changed_file_is_drift_unless_allowed_or_accepted() {
    let db = Db::new();
    let dir = Dir::new(&[("001_t.sql", "CREATE TABLE t (id int);\n")]);
    migrate(&db, &dir).expect(0);
    dir.write("001_t.sql", "CREATE TABLE t (id bigint);\n");
    dir.write("002_u.sql", "CREATE TABLE u (id int);\n");
    let run = migrate(&db, &dir).expect(4);
    assert!(
        run.stderr
            .contains("error: 001_t.sql: changed since it was applied"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.sql("SELECT to_regclass('u') IS NULL"),
        "t",
        "nothing runs when drift is found"
    );
    db.km(&["sql", "status", "--dir", &dir.arg()]).expect(4);
    migrate(&db, &dir).expect(4);
    db.km(&["sql", "migrate", "--dir", &dir.arg(), "--allow-drift"])
        .expect(0);
    assert_eq!(db.sql("SELECT to_regclass('u') IS NOT NULL"), "t");
    db.km(&[
        "sql",
        "repair",
        "--dir",
        &dir.arg(),
        "--version",
        "001_t.sql",
        "--accept-checksum",
    ])
    .expect(0);
    db.km(&["sql", "status", "--dir", &dir.arg()]).expect(0);
}

#[test]
fn line_endings_alone_are_not_drift() {
    let db = Db::new();
    let dir = Dir::new(&[("001_t.sql", "CREATE TABLE t (\n  id int\n);\n")]);
    migrate(&db, &dir).expect(0);
    dir.write(
        "001_t.sql",
        "\u{feff}CREATE TABLE t (\r\n  id int\r\n);\r\n",
    );
    let run = migrate(&db, &dir).expect(0);
    assert!(
        run.stdout.contains("0 to apply, 1 already applied"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_pending_file_before_applied_ones_is_out_of_order() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("001_a.sql", "CREATE TABLE a ();"),
        ("003_c.sql", "CREATE TABLE c ();"),
    ]);
    migrate(&db, &dir).expect(0);
    dir.write("002_b.sql", "CREATE TABLE b ();");
    let run = migrate(&db, &dir).expect(4);
    assert!(
        run.stderr
            .contains("002_b.sql: is pending but sorts before files already applied"),
        "{}",
        run.stderr
    );
    let status = db
        .km(&["sql", "status", "--dir", &dir.arg(), "-o", "json"])
        .expect(4);
    assert_eq!(status.json()["files"][1]["out_of_order"], true);
    db.km(&[
        "sql",
        "migrate",
        "--dir",
        &dir.arg(),
        "--allow-out-of-order",
    ])
    .expect(0);
    assert_eq!(db.sql("SELECT to_regclass('b') IS NOT NULL"), "t");
}

#[test]
fn a_failed_transactional_file_leaves_nothing_and_names_file_line_and_column() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("001_ok.sql", "CREATE TABLE ok ();"),
        (
            "002_bad.sql",
            "-- a comment\nCREATE TABLE half (id int);\n\nINSERT INTO half\n  VALUES (1, 'é', nope);\n",
        ),
        ("003_later.sql", "CREATE TABLE later ();"),
    ]);
    let run = migrate(&db, &dir).expect(3);
    let path = dir.file("002_bad.sql").display().to_string();
    assert!(
        run.stderr.contains(&format!(
            "error: {path}:5:19: column \"nope\" does not exist (SQLSTATE 42703, statement 2)"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("5 |   VALUES (1, 'é', nope);"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("  |                   ^"),
        "{}",
        run.stderr
    );
    // Rolled back: the file's first statement left nothing; the next file did not run.
    assert_eq!(
        db.sql("SELECT to_regclass('half') IS NULL AND to_regclass('later') IS NULL"),
        "t"
    );
    assert_eq!(
        db.history(),
        ["001_ok.sql|sql|true|", "002_bad.sql|sql|false|2"]
    );
    // Fixed, it runs again without any repair: a failed transaction changed nothing.
    dir.write(
        "002_bad.sql",
        "CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\n",
    );
    migrate(&db, &dir).expect(0);
    assert_eq!(
        db.history(),
        [
            "001_ok.sql|sql|true|",
            "002_bad.sql|sql|true|",
            "003_later.sql|sql|true|"
        ]
    );
}

#[test]
fn a_syntax_error_points_at_the_token() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "SELECT 1;\nCREATE TABEL t (id int);\n")]);
    let run = migrate(&db, &dir).expect(3);
    assert!(
        run.stderr
            .contains("001.sql:2:8: syntax error at or near \"TABEL\""),
        "{}",
        run.stderr
    );
}

#[test]
fn a_failed_no_transaction_file_needs_repair() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("001_t.sql", "CREATE TABLE t (id int, kind text);"),
        (
            "002_idx.sql",
            "-- kubemigrate:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);\nCREATE INDEX CONCURRENTLY t_kind ON t (nope);\n",
        ),
    ]);
    let run = migrate(&db, &dir).expect(3);
    assert!(
        run.stdout.contains("applying 002_idx.sql (no transaction)"),
        "{}",
        run.stdout
    );
    // The first statement stayed applied; the history says where it stopped.
    assert_eq!(db.sql("SELECT to_regclass('t_id') IS NOT NULL"), "t");
    assert_eq!(
        db.history(),
        ["001_t.sql|sql|true|", "002_idx.sql|sql|false|2"]
    );
    let run = migrate(&db, &dir).expect(4);
    assert!(
        run.stderr.contains("002_idx.sql: failed at statement 2"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "kubemigrate sql repair --dir {} --version 002_idx.sql",
            dir.arg()
        )),
        "{}",
        run.stderr
    );
    let status = db.km(&["sql", "status", "--dir", &dir.arg()]).expect(4);
    assert!(status.stdout.contains("failed"), "{}", status.stdout);
    // A person fixes the file and clears the record; the file runs again.
    dir.write(
        "002_idx.sql",
        "-- kubemigrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);\nCREATE INDEX CONCURRENTLY t_kind ON t (kind);\n",
    );
    let run = db
        .km(&[
            "sql",
            "repair",
            "--dir",
            &dir.arg(),
            "--version",
            "002_idx.sql",
        ])
        .expect(0);
    assert!(
        run.stdout
            .contains("cleared the failed record of 002_idx.sql"),
        "{}",
        run.stdout
    );
    db.km(&[
        "sql",
        "repair",
        "--dir",
        &dir.arg(),
        "--version",
        "002_idx.sql",
    ])
    .expect(2);
    migrate(&db, &dir).expect(0);
    assert_eq!(
        db.history(),
        ["001_t.sql|sql|true|", "002_idx.sql|sql|true|"]
    );
    assert_eq!(db.sql("SELECT to_regclass('t_kind') IS NOT NULL"), "t");
}

#[test]
fn repair_mark_applied_records_a_failed_file_as_done() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "-- kubemigrate:no-transaction\nCREATE TABLE a ();\nSELECT 1/0;\n",
    )]);
    migrate(&db, &dir).expect(3);
    db.km(&[
        "sql",
        "repair",
        "--dir",
        &dir.arg(),
        "--version",
        "001.sql",
        "--mark-applied",
    ])
    .expect(0);
    db.km(&["sql", "status", "--dir", &dir.arg()]).expect(0);
    migrate(&db, &dir).expect(0);
}

#[test]
fn dollar_quoted_bodies_full_of_semicolons_stay_whole() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001_fn.sql",
        r#"CREATE FUNCTION f(x int) RETURNS text LANGUAGE plpgsql AS $body$
DECLARE
    s text := 'a;b'; -- ; in a comment
BEGIN
    /* ; /* nested ; */ */
    s := s || $$;$$ || E'\';' || "quote"(x);
    RETURN s;
END;
$body$;
CREATE FUNCTION "quote"(x int) RETURNS text LANGUAGE sql AS $$ SELECT x::text || ';' $$;
SELECT 1; SELECT 2;"#,
    )]);
    migrate(&db, &dir).expect(0);
    assert_eq!(db.sql("SELECT f(7)"), "a;b;';7;");
}

#[test]
fn copy_from_stdin_data_is_loaded() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "CREATE TABLE t (id int, name text);\nCOPY t (id, name) FROM stdin;\n1\tone;\n2\t\\N\n\\.\nINSERT INTO t VALUES (3, 'three');\n",
    )]);
    migrate(&db, &dir).expect(0);
    assert_eq!(
        db.sql("SELECT string_agg(id || '=' || coalesce(name, 'null'), ',' ORDER BY id) FROM t"),
        "1=one;,2=null,3=three"
    );
}

#[test]
fn dry_run_lists_and_changes_nothing() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("001.sql", "CREATE TABLE a ();"),
        ("002.sql", "-- kubemigrate:no-transaction\nVACUUM;"),
    ]);
    let run = db
        .km(&["sql", "migrate", "--dir", &dir.arg(), "--dry-run"])
        .expect(0);
    assert!(
        run.stdout
            .contains("would apply 001.sql (1 statement, in a transaction)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("would apply 002.sql (1 statement, no transaction)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        db.sql("SELECT to_regclass('kubemigrate_history') IS NULL AND to_regclass('a') IS NULL"),
        "t"
    );
    let run = db
        .km(&[
            "sql",
            "migrate",
            "--dir",
            &dir.arg(),
            "--dry-run",
            "-o",
            "json",
        ])
        .expect(0);
    assert_eq!(run.json()["files"][0]["status"], "pending");
    assert_eq!(run.json()["dry_run"], true);
}

#[test]
fn status_exit_codes_and_baseline() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("001.sql", "CREATE TABLE a ();"),
        ("002.sql", "CREATE TABLE b ();"),
        ("003.sql", "CREATE TABLE c ();"),
    ]);
    let run = db.km(&["sql", "status", "--dir", &dir.arg()]).expect(7);
    assert!(
        run.stdout.contains("0 applied, 3 pending"),
        "{}",
        run.stdout
    );
    // The database was migrated another way up to 002.
    db.sql("CREATE TABLE a (); CREATE TABLE b ();");
    db.km(&[
        "sql",
        "baseline",
        "--dir",
        &dir.arg(),
        "--version",
        "nope.sql",
    ])
    .expect(2);
    let run = db
        .km(&[
            "sql",
            "baseline",
            "--dir",
            &dir.arg(),
            "--version",
            "002.sql",
        ])
        .expect(0);
    assert!(run.stdout.contains("baselined 002.sql"), "{}", run.stdout);
    let run = db
        .km(&["sql", "status", "--dir", &dir.arg(), "-o", "json"])
        .expect(7);
    let doc = run.json();
    assert_eq!(doc["files"][0]["status"], "baselined");
    assert_eq!(doc["files"][2]["status"], "pending");
    assert_eq!(doc["exit_code"], 7);
    migrate(&db, &dir).expect(0);
    db.km(&["sql", "status", "--dir", &dir.arg()]).expect(0);
    assert_eq!(
        db.history(),
        [
            "001.sql|baseline|true|",
            "002.sql|baseline|true|",
            "003.sql|sql|true|"
        ]
    );
}

#[test]
fn a_history_row_without_its_file_warns_or_fails_with_strict() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "SELECT 1;"), ("002.sql", "SELECT 2;")]);
    migrate(&db, &dir).expect(0);
    std::fs::remove_file(dir.file("001.sql")).unwrap();
    let run = migrate(&db, &dir).expect(0);
    assert!(
        run.stderr
            .contains("warning: 001.sql is recorded in public.kubemigrate_history"),
        "{}",
        run.stderr
    );
    let run = db
        .km(&["sql", "migrate", "--dir", &dir.arg(), "--strict"])
        .expect(4);
    assert!(
        run.stderr
            .contains("001.sql: is recorded in the history but its file is gone"),
        "{}",
        run.stderr
    );
    let run = db.km(&["sql", "status", "--dir", &dir.arg()]).expect(0);
    assert!(run.stdout.contains("missing"), "{}", run.stdout);
    let repair = |version: &str| {
        db.km(&[
            "sql",
            "repair",
            "--dir",
            &dir.arg(),
            "--version",
            version,
            "--forget",
        ])
    };
    let run = repair("002.sql").expect(2);
    assert!(
        run.stderr.contains("the file is still in"),
        "{}",
        run.stderr
    );
    repair("001.sql").expect(0);
    db.km(&["sql", "migrate", "--dir", &dir.arg(), "--strict"])
        .expect(0);
}

#[test]
fn a_custom_history_schema_and_table_are_created_and_used() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "SELECT 1;")]);
    let args = [
        "sql",
        "migrate",
        "--dir",
        &dir.arg(),
        "--history-schema",
        "ops",
        "--history-table",
        "Mig\"rations",
        "--applied-by",
        "me",
    ];
    db.km(&args).expect(0);
    assert_eq!(
        db.sql("SELECT version || ' by ' || applied_by FROM ops.\"Mig\"\"rations\""),
        "001.sql by me"
    );
    assert_eq!(
        db.sql("SELECT to_regclass('kubemigrate_history') IS NULL"),
        "t"
    );
}

#[test]
fn bad_input_is_a_usage_error_before_anything_runs() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("001.sql", "CREATE TABLE a ();"),
        ("002.sql", "SELECT 'unterminated;\n"),
    ]);
    let run = migrate(&db, &dir).expect(2);
    let path = dir.file("002.sql").display().to_string();
    assert!(
        run.stderr
            .contains(&format!("error: {path}:1:8: unterminated quoted string\n")),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.sql("SELECT to_regclass('kubemigrate_history') IS NULL"),
        "t"
    );
    let run = db
        .km(&["sql", "migrate", "--dir", "/nonexistent/dir"])
        .expect(2);
    assert!(run.stderr.contains("/nonexistent/dir"), "{}", run.stderr);
    let run = db
        .km(&[
            "sql",
            "migrate",
            "--dir",
            &dir.arg(),
            "--lock-timeout",
            "soon",
        ])
        .expect(2);
    assert!(run.stderr.contains("--lock-timeout"), "{}", run.stderr);
}

#[test]
fn the_password_never_appears_in_output() {
    let db = Db::new();
    let password = common::pg().password().to_string();
    let dir = Dir::new(&[("001.sql", "SELECT 1;"), ("002.sql", "SELECT nope;")]);
    let bad_url = db.url.replace(&password, &format!("{password}x"));
    let runs = [
        migrate(&db, &dir),
        db.km(&["sql", "migrate", "--dir", &dir.arg(), "-o", "json"]),
        db.km(&["sql", "status", "--dir", &dir.arg(), "-o", "json"]),
        db.km(&["wait-for-db", "--timeout", "2s"]),
        common::km(
            &[
                "sql",
                "status",
                "--dir",
                &dir.arg(),
                "--database-url",
                &bad_url,
            ],
            &[],
        ),
        common::km(
            &["wait-for-db", "--timeout", "2s", "--database-url", &bad_url],
            &[],
        ),
    ];
    for run in &runs {
        assert!(
            !run.stdout.contains(&password) && !run.stderr.contains(&password),
            "{run:?}"
        );
    }
    assert!(runs[0].stdout.contains(":****@127.0.0.1"), "{:?}", runs[0]);
    // A wrong password fails at once (it cannot get better by waiting).
    assert_eq!(runs[5].code, 6);
    assert!(
        runs[5].stderr.contains("password authentication failed"),
        "{:?}",
        runs[5]
    );
}

#[test]
fn the_statement_lock_timeout_stops_ddl_queueing_behind_a_long_transaction() {
    let db = Db::new();
    db.sql("CREATE TABLE busy (id int)");
    let mut holder = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            &db.url,
            "-c",
            "BEGIN; LOCK TABLE busy; SELECT pg_sleep(20); COMMIT;",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(common::wait_until(
        std::time::Duration::from_secs(10),
        || {
            db.sql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'busy' AND l.mode = 'AccessExclusiveLock' AND l.granted") == "1"
        }
    ));
    let dir = Dir::new(&[("001.sql", "ALTER TABLE busy ADD COLUMN x int;")]);
    let run = db
        .km(&[
            "sql",
            "migrate",
            "--dir",
            &dir.arg(),
            "--statement-lock-timeout",
            "200ms",
        ])
        .expect(3);
    assert!(
        run.stderr
            .contains("canceling statement due to lock timeout (SQLSTATE 55P03"),
        "{}",
        run.stderr
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn a_statement_that_cannot_run_in_a_transaction_gets_a_hint() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "CREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n",
    )]);
    let run = migrate(&db, &dir).expect(3);
    assert!(run.stderr.contains("SQLSTATE 25001"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("HINT: put `-- kubemigrate:no-transaction` in the first comment lines"),
        "{}",
        run.stderr
    );
    let status = db
        .km(&["sql", "status", "--dir", &dir.arg(), "-o", "json"])
        .expect(7);
    let error = status.json()["files"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("failed: ")
            && error.contains("CREATE INDEX CONCURRENTLY cannot run inside a transaction block"),
        "{error}"
    );
    // Following the hint is enough: the failed transactional attempt left nothing
    // behind, so the file runs again without a repair.
    dir.write(
        "001.sql",
        "-- kubemigrate:no-transaction\nCREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n",
    );
    migrate(&db, &dir).expect(0);
    assert_eq!(db.history(), ["001.sql|sql|true|"]);
}

/// A transactional file's statements are sent without waiting for each reply
/// (pipelined): the first failing statement is still the file's error, nothing after
/// it takes effect, notices and `\echo` keep their order, and a file longer than one
/// pipeline window (256 statements) fails at the right statement too.
#[test]
fn pipelined_statements_fail_at_the_first_error_and_keep_notices_and_echo_in_order() {
    let db = Db::new();
    let mut long = String::from("CREATE TABLE many (n int PRIMARY KEY);\n");
    for n in 1..=600 {
        // Statement 402 inserts n = 400 a second time.
        let v = if n == 401 { 400 } else { n };
        long.push_str(&format!("INSERT INTO many VALUES ({v});\n"));
    }
    let dir = Dir::new(&[
        (
            "001_ok.sql",
            "CREATE TABLE ok (id int);\n\
             DO $$ BEGIN RAISE NOTICE 'first notice'; END $$;\n\
             \\echo between the notices\n\
             DO $$ BEGIN RAISE NOTICE 'second notice'; END $$;\n\
             INSERT INTO ok VALUES (1);\n",
        ),
        ("002_many.sql", &long),
    ]);
    let run = migrate(&db, &dir).expect(3);
    let first = run
        .stdout
        .find("001_ok.sql: NOTICE: first notice")
        .expect(&run.stdout);
    let echo = run
        .stdout
        .find("001_ok.sql: between the notices")
        .expect(&run.stdout);
    let second = run
        .stdout
        .find("001_ok.sql: NOTICE: second notice")
        .expect(&run.stdout);
    assert!(first < echo && echo < second, "{}", run.stdout);
    let path = dir.file("002_many.sql").display().to_string();
    assert!(
        run.stderr.contains(&format!(
            "error: {path}:402:1: duplicate key value violates unique constraint \"many_pkey\""
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("statement 402)"), "{}", run.stderr);
    // The first file committed; the second left nothing, not even the rows after 400.
    assert_eq!(db.sql("SELECT count(*) FROM ok"), "1");
    assert_eq!(db.sql("SELECT to_regclass('many') IS NULL"), "t");
    assert_eq!(
        db.history(),
        ["001_ok.sql|sql|true|", "002_many.sql|sql|false|402"]
    );
    // Fixed, the file runs whole (three pipeline windows) and commits with its row.
    let fixed = long.replace(
        "VALUES (400);\nINSERT INTO many VALUES (400)",
        "VALUES (400);\nINSERT INTO many VALUES (401)",
    );
    let dir = Dir::new(&[
        (
            "001_ok.sql",
            &std::fs::read_to_string(dir.file("001_ok.sql")).unwrap(),
        ),
        ("002_many.sql", &fixed),
    ]);
    migrate(&db, &dir).expect(0);
    assert_eq!(db.sql("SELECT count(*), max(n) FROM many"), "600|600");
    assert_eq!(
        db.history(),
        ["001_ok.sql|sql|true|", "002_many.sql|sql|true|"]
    );
}
