//! psql and libpq compatibility found missing by adopting real directories (issue
//! 15, part 5): the URL's `options` and `PGOPTIONS`, `application_name`, psql's
//! automatic `:DBNAME`, `:USER`, `:HOST`, `:PORT`, and `\gset`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use common::{Db, Dir};

#[test]
fn url_options_and_pgoptions_set_the_search_path_for_every_file() {
    let db = Db::new();
    db.sql("CREATE SCHEMA storage");
    let dir = Dir::new(&[
        ("1_t.sql", "CREATE TABLE objects (id int);"),
        // A file that sets its own search_path does not leak into the next one.
        (
            "2_other.sql",
            "SET search_path = public; CREATE TABLE p (id int);",
        ),
        ("3_u.sql", "CREATE TABLE buckets (id int);"),
    ]);
    let url = format!("{}?options=-c%20search_path%3Dstorage%2Cpublic", db.url);
    common::km(
        &["sql", "migrate", "--dir", &dir.arg()],
        &[("DATABASE_URL", url.as_str())],
    )
    .expect(0);
    assert_eq!(
        db.sql("SELECT string_agg(table_schema || '.' || table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_name IN ('objects', 'p', 'buckets')"),
        "storage.buckets,storage.objects,public.p"
    );
    // The history stays where --history-schema says (public), whatever the search path.
    assert_eq!(
        db.sql("SELECT count(*) FROM public.kubemigrate_history"),
        "3"
    );
    // PGOPTIONS, as libpq reads it; and application_name from the URL.
    let db = Db::new();
    db.sql("CREATE SCHEMA auth");
    let dir = Dir::new(&[(
        "1_t.sql",
        "CREATE TABLE users (id int);\nCREATE TABLE app AS SELECT current_setting('application_name') AS name;",
    )]);
    let url = format!("{}?application_name=adopter", db.url);
    common::km(
        &["sql", "migrate", "--dir", &dir.arg()],
        &[
            ("DATABASE_URL", url.as_str()),
            ("PGOPTIONS", "-c search_path=auth,public"),
        ],
    )
    .expect(0);
    assert_eq!(db.sql("SELECT to_regclass('auth.users') IS NOT NULL"), "t");
    assert_eq!(db.sql("SELECT name FROM auth.app"), "adopter");
}

#[test]
fn psql_automatic_variables_are_set() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "1_grant.sql",
        "CREATE TABLE info AS SELECT :'DBNAME'::text AS db, :'USER'::text AS usr, :'PORT'::int AS port, :'HOST'::text <> '' AS has_host;\n\
         COMMENT ON DATABASE :\"DBNAME\" IS 'adopted';",
    )]);
    db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
    let port = db
        .url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        db.sql("SELECT db || ',' || usr || ',' || port || ',' || has_host FROM info"),
        format!("{},postgres,{port},true", db.name)
    );
    assert_eq!(
        db.sql(&format!(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{}'",
            db.name
        )),
        "adopted"
    );
}

#[test]
fn gset_sets_variables_from_a_query_for_the_rest_of_the_file() {
    let db = Db::new();
    let dir = Dir::new(&[(
        "1_gset.sql",
        "SELECT current_database() AS db, 40 + 2 AS answer \\gset\n\
         SELECT 'storage' AS schema, NULL AS gone\n\\gset cfg_\n\
         SELECT count(*) > 0 AS has_roles FROM pg_roles WHERE rolname = 'postgres' \\gset\n\
         CREATE TABLE t AS SELECT :'db'::text AS db, :answer AS answer, :'cfg_schema'::text AS schema;\n\
         \\if :has_roles\n\
         CREATE TABLE roles_seen (ok bool);\n\
         \\endif\n",
    )]);
    db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
    assert_eq!(
        db.sql("SELECT db || ',' || answer || ',' || schema FROM t"),
        format!("{},42,storage", db.name)
    );
    assert_eq!(db.sql("SELECT to_regclass('roles_seen') IS NOT NULL"), "t");
    // A query that returns no row: psql's words, the file rolled back.
    let dir = Dir::new(&[(
        "1_none.sql",
        "CREATE TABLE u (id int);\nSELECT 1 AS x WHERE false \\gset\nSELECT :x;\n",
    )]);
    let db = Db::new();
    let run = db.km(&["sql", "migrate", "--dir", &dir.arg()]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("1_none.sql:2: \\gset: no rows returned"),
        "{}",
        run.stderr
    );
    assert_eq!(db.sql("SELECT to_regclass('u') IS NULL"), "t");
    // \gset after a ; is refused before anything runs.
    let dir = Dir::new(&[("1_semi.sql", "SELECT 1 AS x;\n\\gset\n")]);
    let run = db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(2);
    assert!(
        run.stderr
            .contains("\\gset after a statement that already ended with ;"),
        "{}",
        run.stderr
    );
}
