//! Other tools' layouts (`--layout`), repeatable files, and the error of a directory
//! with no migration for its layout, end to end against a real PostgreSQL.
//!
//! Each directory is written as the real tool accepts it (names, markers,
//! directives, down parts that must not run).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use common::{Db, Dir};

/// A directory with files in subfolders.
fn tree(files: &[(&str, &str)]) -> Dir {
    let d = Dir::new(&[]);
    for (name, body) in files {
        let path = d.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    d
}

fn migrate(db: &Db, dir: &Dir, layout: &str) -> common::Run {
    db.km(&["sql", "migrate", "--dir", &dir.arg(), "--layout", layout])
}

/// The status as JSON: (layout, [(version, status)]).
fn status(db: &Db, dir: &Dir, layout: &str) -> (String, Vec<(String, String)>) {
    let run = db.km(&[
        "sql",
        "status",
        "--dir",
        &dir.arg(),
        "--layout",
        layout,
        "-o",
        "json",
    ]);
    let doc = run.json();
    let files = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["version"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (doc["layout"].as_str().unwrap_or("").to_string(), files)
}

/// Applies, checks that a rerun applies nothing and that status names the layout.
fn apply_twice(db: &Db, dir: &Dir, layout: &str) {
    migrate(db, dir, layout).expect(0);
    let run = migrate(db, dir, layout).expect(0);
    assert!(run.stdout.contains("0 to apply"), "{}", run.stdout);
    let (l, files) = status(db, dir, layout);
    assert_eq!(l, layout);
    assert!(files.iter().all(|(_, s)| s == "applied"), "{files:?}");
}

#[test]
fn flyway_versions_run_in_version_order_and_repeatables_last() {
    let db = Db::new();
    let dir = tree(&[
        ("V1__create.sql", "CREATE TABLE log (n serial, name text);"),
        ("V1.10__ten.sql", "INSERT INTO log (name) VALUES ('1.10');"),
        ("V1.9__nine.sql", "INSERT INTO log (name) VALUES ('1.9');"),
        ("sub/V2__two.sql", "INSERT INTO log (name) VALUES ('2');"),
        ("U1.9__undo.sql", "DROP TABLE log;"),
        (
            "R__view.sql",
            "CREATE OR REPLACE VIEW v AS SELECT count(*) AS c FROM log;",
        ),
        ("notes.sql", "DROP TABLE log;"),
        (
            "V3__index.sql",
            "CREATE INDEX CONCURRENTLY log_name ON log (name);",
        ),
        ("V3__index.sql.conf", "executeInTransaction=false\n"),
    ]);
    let run = migrate(&db, &dir, "flyway").expect(0);
    assert!(
        run.stderr
            .contains("U1.9__undo.sql is recognised and not run"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.sql("SELECT string_agg(name, ',' ORDER BY n) FROM log"),
        "1.9,1.10,2"
    );
    assert_eq!(db.sql("SELECT c FROM v"), "3");
    let (layout, files) = status(&db, &dir, "flyway");
    assert_eq!(layout, "flyway");
    let names: Vec<&str> = files.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        names,
        [
            "V1__create.sql",
            "V1.9__nine.sql",
            "V1.10__ten.sql",
            "sub/V2__two.sql",
            "V3__index.sql",
            "R__view.sql"
        ]
    );
    assert_eq!(
        db.sql("SELECT transactional FROM kubemigrate_history WHERE version = 'V3__index.sql'"),
        "f"
    );
    // A changed repeatable file runs again, and only it.
    dir.write(
        "R__view.sql",
        "CREATE OR REPLACE VIEW v AS SELECT count(*) + 100 AS c FROM log;",
    );
    let (_, files) = status(&db, &dir, "flyway");
    assert_eq!(files[5].1, "pending");
    let run = migrate(&db, &dir, "flyway").expect(0);
    assert!(run.stdout.contains("1 to apply"), "{}", run.stdout);
    assert_eq!(db.sql("SELECT c FROM v"), "103");
    assert_eq!(
        db.sql("SELECT count(*) FROM kubemigrate_history WHERE version = 'R__view.sql'"),
        "1"
    );
    apply_twice(&db, &dir, "flyway");
}

#[test]
fn golang_migrate_runs_up_files_in_numeric_order() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("1_create.up.sql", "CREATE TABLE t (n int);"),
        ("1_create.down.sql", "DROP TABLE t;"),
        ("2_rows.up.sql", "INSERT INTO t VALUES (2);"),
        ("2_rows.down.sql", "DELETE FROM t;"),
        ("10_more.up.sql", "INSERT INTO t VALUES (10);"),
        ("10_more.down.sql", "DELETE FROM t;"),
    ]);
    apply_twice(&db, &dir, "golang-migrate");
    assert_eq!(
        db.sql("SELECT string_agg(n::text, ',' ORDER BY n) FROM t"),
        "2,10"
    );
}

#[test]
fn dbmate_runs_the_up_block_only_and_honours_transaction_false() {
    let db = Db::new();
    let dir = Dir::new(&[
        (
            "20240101000000_create.sql",
            "-- migrate:up\nCREATE TABLE t (n int);\n\n-- migrate:down\nDROP TABLE t;\n",
        ),
        (
            "20240102000000_index.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_n ON t (n);\n\n-- migrate:down\nDROP INDEX t_n;\n",
        ),
        (
            "20240103000000_empty.sql",
            "-- migrate:up\n\n-- migrate:down\n",
        ),
    ]);
    apply_twice(&db, &dir, "dbmate");
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_indexes WHERE indexname = 't_n'"),
        "1"
    );
    assert_eq!(
        db.sql("SELECT transactional FROM kubemigrate_history WHERE version LIKE '%index.sql'"),
        "f"
    );
    // A file without its up block is refused, naming the file and the line.
    dir.write("20240104000000_bad.sql", "CREATE TABLE u (n int);\n");
    let run = migrate(&db, &dir, "dbmate").expect(2);
    assert!(
        run.stderr.contains(
            "20240104000000_bad.sql:1: dbmate does not support statements defined outside"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn goose_runs_the_up_part_with_statement_blocks_and_no_transaction() {
    let db = Db::new();
    let dir = Dir::new(&[
        (
            "00001_create.sql",
            "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE t (n int);\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$;\n-- +goose StatementEnd\n\n-- +goose Down\nDROP TABLE t;\n",
        ),
        (
            "00002_index.sql",
            "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY t_n ON t (n);\n-- +goose Down\nDROP INDEX t_n;\n",
        ),
    ]);
    apply_twice(&db, &dir, "goose");
    assert_eq!(db.sql("SELECT f()"), "1");
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_indexes WHERE indexname = 't_n'"),
        "1"
    );
}

#[test]
fn sqlx_simple_and_reversible_files_and_no_transaction() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("20240101000000_create.sql", "CREATE TABLE t (n int);"),
        ("20240102000000_rows.up.sql", "INSERT INTO t VALUES (1);"),
        ("20240102000000_rows.down.sql", "DELETE FROM t;"),
        (
            "20240103000000_index.sql",
            "-- no-transaction\nCREATE INDEX CONCURRENTLY t_n ON t (n);",
        ),
        ("20240104000000_empty.sql", "-- Add migration script here\n"),
    ]);
    apply_twice(&db, &dir, "sqlx");
    assert_eq!(db.sql("SELECT count(*) FROM t"), "1");
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_indexes WHERE indexname = 't_n'"),
        "1"
    );
}

#[test]
fn diesel_folders_run_their_up_sql() {
    let db = Db::new();
    let dir = tree(&[
        (
            "00000000000000_diesel_initial_setup/up.sql",
            "CREATE FUNCTION diesel_manage_updated_at(_tbl regclass) RETURNS VOID AS $$\nBEGIN\n  PERFORM 1;\nEND;\n$$ LANGUAGE plpgsql;",
        ),
        (
            "00000000000000_diesel_initial_setup/down.sql",
            "DROP FUNCTION diesel_manage_updated_at(regclass);",
        ),
        (
            "2024-01-02-000000_create_posts/up.sql",
            "CREATE TABLE posts (id int);",
        ),
        (
            "2024-01-02-000000_create_posts/down.sql",
            "DROP TABLE posts;",
        ),
        (
            "2024-01-03-000000_index/up.sql",
            "CREATE INDEX CONCURRENTLY posts_id ON posts (id);",
        ),
        (
            "2024-01-03-000000_index/metadata.toml",
            "run_in_transaction = false\n",
        ),
    ]);
    // Native reads no file here: the error names the folders and the layout.
    let run = db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(2);
    assert!(
        run.stderr.contains(
            "no migration for layout native; found 3 folders with up.sql: use --layout diesel"
        ),
        "{}",
        run.stderr
    );
    apply_twice(&db, &dir, "diesel");
    assert_eq!(db.history()[1], "2024-01-02-000000_create_posts|sql|true|");
    // diesel refuses an empty migration, and so does the layout.
    std::fs::create_dir(dir.path().join("2024-01-04-000000_empty")).unwrap();
    dir.write("2024-01-04-000000_empty/up.sql", "-- nothing\n");
    let run = migrate(&db, &dir, "diesel").expect(2);
    assert!(
        run.stderr.contains("has no SQL statements"),
        "{}",
        run.stderr
    );
}

#[test]
fn postgres_migrations_ids_in_numeric_order_with_its_directives() {
    let db = Db::new();
    let dir = Dir::new(&[
        ("0001-create.sql", "CREATE TABLE log (n serial, id int);"),
        ("0009-nine.sql", "INSERT INTO log (id) VALUES (9);"),
        ("00010-ten.sql", "INSERT INTO log (id) VALUES (10);"),
        (
            "00011-index.sql",
            "-- postgres-migrations disable-transaction\nCREATE INDEX CONCURRENTLY log_id ON log (id);",
        ),
        (
            "00012-skip.sql",
            "-- postgres-migrations ignore\nDROP TABLE log;",
        ),
    ]);
    apply_twice(&db, &dir, "postgres-migrations");
    assert_eq!(
        db.sql("SELECT string_agg(id::text, ',' ORDER BY n) FROM log"),
        "9,10"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_indexes WHERE indexname = 'log_id'"),
        "1"
    );
}

#[test]
fn supabase_reads_supabase_migrations_below_the_project() {
    let db = Db::new();
    let dir = tree(&[
        (
            "supabase/migrations/20240101000000_create.sql",
            "CREATE TABLE t (n int);",
        ),
        (
            "supabase/migrations/20240102000000_rows.sql",
            "INSERT INTO t VALUES (1);",
        ),
        ("supabase/config.toml", "project_id = \"x\"\n"),
    ]);
    let run = db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(2);
    assert!(run.stderr.contains("--layout supabase"), "{}", run.stderr);
    apply_twice(&db, &dir, "supabase");
    assert_eq!(db.sql("SELECT count(*) FROM t"), "1");
}

#[test]
fn an_empty_directory_is_an_error_unless_allowed() {
    let db = Db::new();
    let dir = Dir::new(&[("README.md", "nothing here")]);
    let run = db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(2);
    assert!(
        run.stderr
            .contains("no migration for layout native; the directory is empty (pass --allow-empty"),
        "{}",
        run.stderr
    );
    let run = db
        .km(&["sql", "migrate", "--dir", &dir.arg(), "--allow-empty"])
        .expect(0);
    assert!(
        run.stderr
            .contains("holds no migration for layout native: nothing to do"),
        "{}",
        run.stderr
    );
    // *.up.sql files under the Flyway layout point to golang-migrate.
    let dir = Dir::new(&[("1_a.up.sql", "SELECT 1;"), ("1_a.down.sql", "SELECT 1;")]);
    let run = db
        .km(&["sql", "migrate", "--dir", &dir.arg(), "--layout", "flyway"])
        .expect(2);
    assert!(
        run.stderr
            .contains("found 1 *.up.sql files: use --layout golang-migrate"),
        "{}",
        run.stderr
    );
    // A dbmate file read as native would run its down block too: refused.
    let dir = Dir::new(&[(
        "1_a.sql",
        "-- migrate:up\nCREATE TABLE t ();\n-- migrate:down\nDROP TABLE t;\n",
    )]);
    let run = db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(2);
    assert!(
        run.stderr.contains("pass --layout dbmate"),
        "{}",
        run.stderr
    );
    let run = db
        .km(&["sql", "migrate", "--dir", &dir.arg(), "--layout", "nope"])
        .expect(2);
    assert!(
        run.stderr.contains("known layouts: native, flyway"),
        "{}",
        run.stderr
    );
}

#[test]
fn native_repeatable_files_run_after_the_others_when_changed() {
    let db = Db::new();
    let dir = Dir::new(&[
        (
            "0_views.sql",
            "-- kubemigrate:repeatable\nCREATE OR REPLACE VIEW v AS SELECT count(*) AS c FROM t;",
        ),
        ("1_t.sql", "CREATE TABLE t (n int);"),
    ]);
    // The view needs the table: it runs last although its name sorts first.
    db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
    dir.write("2_rows.sql", "INSERT INTO t VALUES (1);");
    let run = db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
    assert!(run.stdout.contains("1 to apply"), "{}", run.stdout);
    dir.write(
        "0_views.sql",
        "-- kubemigrate:repeatable\nCREATE OR REPLACE VIEW v AS SELECT count(*) AS c, 1 AS one FROM t;",
    );
    let run = db.km(&["sql", "status", "--dir", &dir.arg()]).expect(7);
    assert!(run.stdout.contains("layout native"), "{}", run.stdout);
    assert!(run.stdout.contains("(repeatable)"), "{}", run.stdout);
    db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
    assert_eq!(db.sql("SELECT c || ',' || one FROM v"), "1,1");
    assert_eq!(
        db.history(),
        [
            "1_t.sql|sql|true|",
            "2_rows.sql|sql|true|",
            "0_views.sql|sql|true|"
        ]
    );
    db.km(&["sql", "status", "--dir", &dir.arg()]).expect(0);
}

#[test]
fn include_root_lets_files_include_a_wider_tree() {
    let db = Db::new();
    let dir = tree(&[
        ("common/t.sql", "CREATE TABLE t (n int);"),
        (
            "tenant/1_init.sql",
            "\\i ../common/t.sql\nINSERT INTO t VALUES (1);",
        ),
    ]);
    let tenant = dir.path().join("tenant").display().to_string();
    let run = db.km(&["sql", "migrate", "--dir", &tenant]).expect(2);
    assert!(
        run.stderr.contains("outside the migration directory"),
        "{}",
        run.stderr
    );
    db.km(&[
        "sql",
        "migrate",
        "--dir",
        &tenant,
        "--include-root",
        &dir.arg(),
    ])
    .expect(0);
    assert_eq!(db.sql("SELECT count(*) FROM t"), "1");
    // Still no further than the root, and an edit of the included file is drift.
    std::fs::write(
        dir.path().join("common/t.sql"),
        "CREATE TABLE t (n bigint);",
    )
    .unwrap();
    let run = db
        .km(&[
            "sql",
            "status",
            "--dir",
            &tenant,
            "--include-root",
            &dir.arg(),
        ])
        .expect(4);
    assert!(run.stdout.contains("drifted"), "{}", run.stdout);
    let tenant_root = dir.path().join("tenant").display().to_string();
    let run = db
        .km(&[
            "sql",
            "status",
            "--dir",
            &tenant,
            "--include-root",
            &tenant_root,
        ])
        .expect(2);
    assert!(
        run.stderr.contains("outside the migration directory"),
        "{}",
        run.stderr
    );
    std::fs::create_dir_all(dir.path().join("tenant/sub")).unwrap();
    std::fs::write(
        dir.path().join("tenant/sub/1_x.sql"),
        "\\i ../../common/t.sql\n",
    )
    .unwrap();
    let sub = dir.path().join("tenant/sub").display().to_string();
    let run = db
        .km(&[
            "sql",
            "status",
            "--dir",
            &sub,
            "--include-root",
            &tenant_root,
        ])
        .expect(2);
    assert!(
        run.stderr.contains("it is outside the include root"),
        "{}",
        run.stderr
    );
    // The include root must hold the directory.
    let other = Dir::new(&[]);
    let run = db
        .km(&[
            "sql",
            "status",
            "--dir",
            &tenant,
            "--include-root",
            &other.arg(),
        ])
        .expect(2);
    assert!(
        run.stderr
            .contains("the include root must hold the migration directory"),
        "{}",
        run.stderr
    );
}

#[test]
fn lint_reads_only_the_part_that_runs() {
    let dir = Dir::new(&[(
        "00001_users.sql",
        "-- +goose Up\nCREATE TABLE users (id int);\n-- +goose Down\nDROP TABLE users;\n",
    )]);
    let run = common::km(
        &["sql", "lint", "--dir", &dir.arg(), "--layout", "goose"],
        &[],
    );
    assert!(!run.stdout.contains("ban-drop-table"), "{}", run.stdout);
    assert!(!run.stderr.contains("ban-drop-table"), "{}", run.stderr);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // The same statement in the Up part is found, at its own line.
    dir.write(
        "00002_drop.sql",
        "-- +goose Up\nDROP TABLE users;\n-- +goose Down\nCREATE TABLE users (id int);\n",
    );
    let run = common::km(
        &["sql", "lint", "--dir", &dir.arg(), "--layout", "goose"],
        &[],
    );
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("00002_drop.sql:2:"), "{all}");
    assert!(all.contains("ban-drop-table"), "{all}");
}

/// A plan's `layout:` reaches the runner: `apply --local` runs the Job's own
/// command, `sql migrate --layout diesel`, on the target's folders.
#[test]
fn a_plan_layout_reaches_the_runner_of_apply_local() {
    let db = Db::new();
    let dir = tree(&[
        (
            "sql/2024-01-01-000000_users/up.sql",
            "CREATE TABLE users (id int);",
        ),
        ("sql/2024-01-01-000000_users/down.sql", "DROP TABLE users;"),
        (
            "sql/2024-01-02-000000_posts/up.sql",
            "CREATE TABLE posts (id int);",
        ),
        (
            "plan.yaml",
            "apiVersion: kubemigrate.io/v1alpha1\nkind: MigrationPlan\nmetadata: {name: shop}\nspec:\n  targets:\n    - name: a\n      database: {host: a-db, name: a, user: app, password: {fromEnv: UNUSED}}\n      sql: {localDir: sql, layout: diesel}\n",
        ),
    ]);
    let file = dir.path().join("plan.yaml").display().to_string();
    let target = format!("a={}", db.url);
    common::km(&["apply", "-f", &file, "--local", "--db", &target], &[]).expect(0);
    assert_eq!(
        db.history(),
        [
            "2024-01-01-000000_users|sql|true|",
            "2024-01-02-000000_posts|sql|true|"
        ]
    );
    assert_eq!(db.sql("SELECT to_regclass('users') IS NOT NULL"), "t");
}
