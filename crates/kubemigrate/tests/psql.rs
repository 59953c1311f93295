//! psql syntax in migration files: variables, includes, conditionals, \copy, files
//! with their own transactions, and a pg_dump applied as one migration.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::process::Command;

use common::{Db, Dir};

fn migrate(db: &Db, dir: &Dir, extra: &[&str]) -> common::Run {
    let d = dir.arg();
    let mut args = vec!["sql", "migrate", "--dir", d.as_str()];
    args.extend_from_slice(extra);
    db.km(&args)
}

#[test]
fn variables_from_the_command_line_and_set_are_interpolated_outside_quotes() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "\\set greeting 'it''s :not interpolated here'\n\
         CREATE TABLE :\"tbl\" (id int, note text, lit text);\n\
         INSERT INTO :\"tbl\" SELECT g, :'greeting', ':tbl' FROM generate_series(1, :n) g;\n\
         DO $$ BEGIN PERFORM ':tbl'; END $$;\n",
    )]);
    migrate(&db, &dir, &["--set", "tbl=My Table", "-v", "n=3"]).expect(0);
    assert_eq!(
        db.sql("SELECT count(*) || '|' || min(note) || '|' || min(lit) FROM \"My Table\""),
        "3|it's :not interpolated here|:tbl"
    );
}

#[test]
fn an_undefined_variable_names_file_and_line() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "SELECT 1;\nSELECT :nope;\n")]);
    let run = migrate(&db, &dir, &[]).expect(2);
    let path = dir.file("001.sql").display().to_string();
    assert!(
        run.stderr
            .contains(&format!("error: {path}:2: variable :nope is not set")),
        "{}",
        run.stderr
    );
    // Nothing ran: files are read through before the database is touched.
    assert_eq!(
        db.sql("SELECT to_regclass('kubemigrate_history') IS NULL"),
        "t"
    );
}

#[test]
fn includes_run_in_place_and_count_toward_the_checksum() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "\\i lib/a.sql\nINSERT INTO t VALUES (2);\n")]);
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    dir.write("lib/a.sql", "CREATE TABLE t (id int);\n\\ir b.sql\n");
    dir.write("lib/b.sql", "INSERT INTO t VALUES (1);\n");
    migrate(&db, &dir, &[]).expect(0);
    assert_eq!(
        db.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t"),
        "1,2"
    );
    // Only files directly in the directory are migrations.
    assert_eq!(db.history(), ["001.sql|sql|true|"]);
    dir.write("lib/b.sql", "INSERT INTO t VALUES (10);\n");
    let run = migrate(&db, &dir, &[]).expect(4);
    assert!(
        run.stderr.contains("001.sql: changed since it was applied"),
        "{}",
        run.stderr
    );
}

#[test]
fn include_cycles_and_escapes_are_refused() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "\\ir x.inc\n")]);
    dir.write("x.inc", "SELECT 1;\n\\ir y.inc\n");
    dir.write("y.inc", "\\ir x.inc\n");
    let run = migrate(&db, &dir, &[]).expect(2);
    assert!(
        run.stderr
            .contains("y.inc:1: include cycle: x.inc is already being read"),
        "{}",
        run.stderr
    );
    dir.write("001.sql", "\\i ../outside.sql\n");
    std::fs::write(
        dir.path().parent().unwrap().join("outside.sql"),
        "SELECT 1;",
    )
    .ok();
    let run = migrate(&db, &dir, &[]).expect(2);
    assert!(
        run.stderr
            .contains("001.sql:1: cannot include ../outside.sql"),
        "{}",
        run.stderr
    );
}

#[test]
fn conditionals_echo_and_copy_in_skipped_branches() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "CREATE TABLE t (v text);\n\
         \\if :seed\n\
         COPY t FROM stdin;\nseeded\n\\.\n\
         \\elif false\n\
         INSERT INTO t VALUES ('elif');\n\
         \\else\n\
         \\echo not seeding :seed\n\
         INSERT INTO t VALUES ('else');\n\
         \\endif\n",
    )]);
    let run = migrate(&db, &dir, &["--set", "seed=off"]).expect(0);
    assert!(
        run.stdout.contains("  001.sql: not seeding off"),
        "{}",
        run.stdout
    );
    assert_eq!(db.sql("SELECT string_agg(v, ',') FROM t"), "else");
    let db = Db::new();
    migrate(&db, &dir, &["--set", "seed=yes"]).expect(0);
    assert_eq!(db.sql("SELECT string_agg(v, ',') FROM t"), "seeded");
    let db = Db::new();
    let run = migrate(&db, &dir, &["--set", "seed=maybe"]).expect(2);
    assert!(
        run.stderr
            .contains("001.sql:2: \\if: \"maybe\" is not a boolean"),
        "{}",
        run.stderr
    );
}

#[test]
fn backslash_copy_reads_a_data_file_or_the_lines_that_follow() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "CREATE TABLE t (id int, name text);\n\
         \\copy t (id, name) FROM 'data/t.csv' WITH (FORMAT csv, HEADER true)\n\
         \\copy t FROM stdin\n3\tthree\n\\.\n\
         INSERT INTO t VALUES (4, 'four');\n",
    )]);
    std::fs::create_dir(dir.path().join("data")).unwrap();
    dir.write("data/t.csv", "id,name\n1,one\n2,\"t,wo\"\n");
    migrate(&db, &dir, &[]).expect(0);
    assert_eq!(
        db.sql("SELECT string_agg(id || '=' || name, ';' ORDER BY id) FROM t"),
        "1=one;2=t,wo;3=three;4=four"
    );
}

#[test]
fn other_meta_commands_are_refused_by_name() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "SELECT 1;\n\n\\connect other\n")]);
    let run = migrate(&db, &dir, &[]).expect(2);
    assert!(
        run.stderr
            .contains("001.sql:3: psql meta-command \\connect is not supported in migrations"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_file_with_its_own_transactions_runs_as_written() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "BEGIN;\nCREATE TABLE a ();\nCOMMIT;\nBEGIN;\nCREATE TABLE b ();\nROLLBACK;\nCREATE TABLE c ();\n",
    )]);
    let run = migrate(&db, &dir, &[]).expect(0);
    assert!(
        run.stdout
            .contains("applying 001.sql (as written: it controls its own transaction)"),
        "{}",
        run.stdout
    );
    assert_eq!(db.sql("SELECT to_regclass('a') IS NOT NULL AND to_regclass('b') IS NULL AND to_regclass('c') IS NOT NULL"), "t");
    assert_eq!(
        db.sql("SELECT success::text || transactional::text FROM kubemigrate_history"),
        "truefalse"
    );
    // A file that leaves its transaction open would lose its work at psql's exit: refused.
    dir.write("002.sql", "BEGIN;\nCREATE TABLE d ();\n");
    let run = migrate(&db, &dir, &[]).expect(2);
    assert!(
        run.stderr
            .contains("the file began a transaction and did not end it"),
        "{}",
        run.stderr
    );
    assert_eq!(db.sql("SELECT to_regclass('d') IS NULL"), "t");
}

#[test]
fn the_first_failing_statement_stops_the_file_and_names_an_included_file() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "CREATE TABLE t ();\n\\ir inc.sql\nCREATE TABLE never ();\n",
    )]);
    dir.write("inc.sql", "-- included\nSELECT * FROM\n  missing_table;\n");
    let run = migrate(&db, &dir, &[]).expect(3);
    let inc = dir.file("inc.sql").display().to_string();
    assert!(
        run.stderr.contains(&format!(
            "error: {inc}:3:3: relation \"missing_table\" does not exist"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("3 |   missing_table;"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.sql("SELECT to_regclass('t') IS NULL AND to_regclass('never') IS NULL"),
        "t"
    );
}

#[test]
fn interpolated_statements_still_point_at_the_file() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "SELECT :'long_value', nope;\n")]);
    let run = migrate(
        &db,
        &dir,
        &["--set", "long_value=0123456789012345678901234567890"],
    )
    .expect(3);
    assert!(
        run.stderr
            .contains("001.sql:1:23: column \"nope\" does not exist"),
        "{}",
        run.stderr
    );
}

/// pg_dump output of a database with data, sequences, functions, triggers, views and
/// indexes, applied as one migration, gives back the same pg_dump.
#[test]
fn a_pg_dump_applied_as_one_migration_round_trips() {
    let source = Db::new();
    let bin = common::pg().bin_dir().to_path_buf();
    let pgbench = Command::new(bin.join("pgbench"))
        .args(["-i", "-q", "-s", "1", "--foreign-keys", &source.url])
        .output()
        .unwrap();
    assert!(
        pgbench.status.success(),
        "{}",
        String::from_utf8_lossy(&pgbench.stderr)
    );
    source.sql(
        "CREATE SEQUENCE ticket_seq START 100;
         CREATE TABLE audit (id bigint PRIMARY KEY DEFAULT nextval('ticket_seq'), aid int, at timestamptz DEFAULT now(), note text);
         CREATE FUNCTION log_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit (aid, note) VALUES (NEW.aid, 'it''s; done'); RETURN NEW; END $$;
         CREATE TRIGGER accounts_audit AFTER UPDATE ON pgbench_accounts FOR EACH ROW EXECUTE FUNCTION log_update();
         UPDATE pgbench_accounts SET abalance = 7 WHERE aid <= 3;
         CREATE VIEW rich AS SELECT aid, abalance FROM pgbench_accounts WHERE abalance > 0;
         CREATE INDEX accounts_balance ON pgbench_accounts (abalance) WHERE abalance <> 0;
         CREATE TYPE mood AS ENUM ('ok', 'meh');
         CREATE TABLE notes (id serial PRIMARY KEY, m mood, body text, data jsonb);
         INSERT INTO notes (m, body, data) VALUES ('ok', E'tab\\there\\nnewline \\\\ backslash', '{\"a\": [1, 2]}'), ('meh', NULL, NULL);",
    );
    let dump = |db: &Db| {
        let out = Command::new(bin.join("pg_dump"))
            .args([
                "--format=plain",
                "--no-owner",
                "--exclude-table=kubemigrate_history",
                "-d",
                &db.url,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Recent pg_dump writes \restrict/\unrestrict lines with a random key.
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let dir = Dir::new(&[]);
    let out = Command::new(bin.join("pg_dump"))
        .args([
            "--format=plain",
            "--no-owner",
            "-d",
            &source.url,
            "-f",
            &dir.file("001_dump.sql").display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = Db::new();
    let run = migrate(&target, &dir, &[]).expect(0);
    assert!(
        run.stdout.contains("applied 001_dump.sql"),
        "{}",
        run.stdout
    );
    let (a, b) = (dump(&source), dump(&target));
    assert!(
        a.contains("COPY public.pgbench_accounts"),
        "the dump holds data"
    );
    assert_eq!(a, b);
    // The session was restored after the file: pg_dump's empty search_path is gone.
    assert_eq!(target.history(), ["001_dump.sql|sql|true|"]);
}

#[test]
fn a_server_stopped_mid_run_is_a_connection_failure_and_a_rerun_completes() {
    let mut pg = kubemigrate_localpg::LocalPostgres::start().unwrap();
    let url = pg.url("postgres");
    let dir = Dir::new(&[
        ("001.sql", "CREATE TABLE a ();"),
        ("002.sql", "CREATE TABLE b ();\nSELECT pg_sleep(30);\n"),
        ("003.sql", "CREATE TABLE c ();"),
    ]);
    let child = common::km_command(
        &["sql", "migrate", "--dir", &dir.arg()],
        &[("DATABASE_URL", url.as_str())],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    assert!(common::wait_until(
        std::time::Duration::from_secs(20),
        || {
            common::psql(
                &url,
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'",
            ) == "1"
        }
    ));
    pg.stop_fast().unwrap();
    let run = common::Run::from_output(child.wait_with_output().unwrap());
    assert_eq!(run.code, 6, "{run:?}");
    assert!(
        run.stderr
            .contains("error: running 002.sql (statement 2): "),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("terminating connection due to administrator command (SQLSTATE 57P01)"),
        "{run:?}"
    );
    pg.restart().unwrap();
    dir.write("002.sql", "CREATE TABLE b ();\n");
    let run = common::km(
        &["sql", "migrate", "--dir", &dir.arg()],
        &[("DATABASE_URL", url.as_str())],
    )
    .expect(0);
    assert!(
        run.stdout.contains("2 to apply, 1 already applied"),
        "{run:?}"
    );
}

#[test]
fn copy_statements_slices_and_skipped_inline_copy_data() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "CREATE TABLE :\"tbl\" (a int[]);\n\
         COPY :\"tbl\" FROM stdin;\n{1,2,3}\n\\.\n\
         CREATE VIEW firsts AS SELECT a[1:2] AS head FROM :\"tbl\";\n\
         \\if false\n\
         \\copy :\"tbl\" FROM stdin\nit's not SQL; \\set nothing\n\\.\n\
         \\endif\n",
    )]);
    migrate(&db, &dir, &["--set", "tbl=arrays"]).expect(0);
    assert_eq!(db.sql("SELECT head::text FROM firsts"), "{1,2}");
}

#[test]
fn the_history_is_written_as_kubemigrate_even_after_set_role() {
    let db = Db::new();
    db.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'km_reader') THEN CREATE ROLE km_reader; END IF; END $$");
    let dir = Dir::new(&[
        ("001.sql", "CREATE TABLE t (id int);\nSET ROLE km_reader;\n"),
        (
            "002.sql",
            "BEGIN;\nSELECT 1;\nCOMMIT;\nSET ROLE km_reader;\n",
        ),
        (
            "003.sql",
            "SELECT current_user = session_user OR current_user <> 'km_reader';\n",
        ),
    ]);
    migrate(&db, &dir, &[]).expect(0);
    assert_eq!(db.history().len(), 3);
}

#[test]
fn a_changed_copy_data_file_is_drift() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "CREATE TABLE t (v text);\n\\copy t FROM 'data.txt'\n",
    )]);
    dir.write("data.txt", "one\n");
    migrate(&db, &dir, &[]).expect(0);
    dir.write("data.txt", "one\ntwo\n");
    migrate(&db, &dir, &[]).expect(4);
}

#[test]
fn colons_that_name_nothing_stay_in_meta_command_arguments() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "001.sql",
        "\\set who world\n\\echo ratio 1 :2 at a : b, hello :who\nSELECT 1;\n",
    )]);
    let run = migrate(&db, &dir, &[]).expect(0);
    assert!(
        run.stdout
            .contains("  001.sql: ratio 1 :2 at a : b, hello world"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_file_whose_statements_are_all_in_a_skipped_branch_is_not_empty() {
    let db = Db::new();
    let dir = Dir::new(&[("001.sql", "\\if :seed\nCREATE TABLE seeded ();\n\\endif\n")]);
    migrate(&db, &dir, &["--set", "seed=false"]).expect(0);
    assert_eq!(db.history(), ["001.sql|sql|true|"]);
    assert_eq!(db.sql("SELECT to_regclass('seeded') IS NULL"), "t");
}
