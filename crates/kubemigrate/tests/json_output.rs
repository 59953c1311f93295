//! The JSON documents of `-o json` (docs/json-output.md), as snapshots: one per
//! command and outcome, with the fields that change from run to run redacted
//! (durations, timestamps, run ids, ports, temporary paths, database names). A
//! field renamed, dropped or added shows up as a snapshot difference.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use serde_json::Value;

use common::{Db, Dir, km};

/// Keys whose values differ on every run.
const VOLATILE: &[&str] = &["duration_ms", "applied_at", "run_id", "created"];

/// The document on stdout with its volatile parts replaced by markers.
fn redacted(stdout: &str, dbs: &[&Db], dirs: &[&std::path::Path]) -> String {
    let mut doc: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{stdout}"));
    let mut replace: Vec<(String, &str)> = dirs
        .iter()
        .map(|d| (d.display().to_string(), "[dir]"))
        .collect();
    for (i, db) in dbs.iter().enumerate() {
        replace.push((db.name.clone(), if i == 0 { "[db]" } else { "[db2]" }));
    }
    replace.push((format!(":{}/", common::pg().port()), ":[port]/"));
    if let Some(id) = doc.get("run_id").and_then(Value::as_str) {
        replace.push((id.to_string(), "[run_id]"));
    }
    walk(&mut doc, &replace);
    serde_json::to_string_pretty(&doc).unwrap()
}

fn walk(v: &mut Value, replace: &[(String, &str)]) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if VOLATILE.contains(&k.as_str()) && !x.is_null() {
                    *x = Value::String(format!("[{k}]"));
                } else {
                    walk(x, replace);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| walk(x, replace)),
        Value::String(s) => {
            for (from, to) in replace {
                *s = s.replace(from.as_str(), to);
            }
            *s = without_elapsed(&without_timestamps(s));
        }
        _ => {}
    }
}

/// `text` with each RFC 3339 UTC timestamp (`2026-12-04T04:25:55.968Z`) replaced
/// by `[timestamp]`.
fn without_timestamps(text: &str) -> String {
    let bytes = text.as_bytes();
    let shape = |i: usize| -> Option<usize> {
        let digits = |a: usize, n: usize| {
            bytes
                .get(a..a + n)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        };
        let at = |a: usize, c: u8| bytes.get(a) == Some(&c);
        let ok = digits(i, 4)
            && at(i + 4, b'-')
            && digits(i + 5, 2)
            && at(i + 7, b'-')
            && digits(i + 8, 2)
            && at(i + 10, b'T');
        if !ok {
            return None;
        }
        let end = (i + 11..bytes.len())
            .find(|&j| !(bytes[j].is_ascii_digit() || b":.".contains(&bytes[j])))?;
        at(end, b'Z').then_some(end + 1)
    };
    let mut out = String::new();
    let mut i = 0;
    while i < text.len() {
        if let Some(end) = shape(i) {
            out.push_str("[timestamp]");
            i = end;
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `text` with each elapsed time written as one word (`258ms`, `1.2s`) replaced by
/// `[elapsed]`.
fn without_elapsed(text: &str) -> String {
    let elapsed = |word: &str| {
        let number = word
            .strip_suffix("ms")
            .or_else(|| word.strip_suffix('s'))
            .unwrap_or("");
        !number.is_empty()
            && number.starts_with(|c: char| c.is_ascii_digit())
            && number.chars().all(|c| c.is_ascii_digit() || c == '.')
    };
    text.split(' ')
        .map(|w| if elapsed(w) { "[elapsed]" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

fn files() -> Dir {
    Dir::new(&[
        ("001_table.sql", "CREATE TABLE t (id int PRIMARY KEY);\n"),
        ("002_rows.sql", "INSERT INTO t VALUES (1), (2);\n"),
    ])
}

#[test]
fn sql_migrate_status_and_a_failure_as_json() {
    let db = Db::new();
    let dir = files();
    let run = db
        .km(&["sql", "migrate", "--dir", &dir.arg(), "-o", "json"])
        .expect(0);
    insta::assert_snapshot!(
        "sql_migrate_applied",
        redacted(&run.stdout, &[&db], &[dir.path()])
    );

    dir.write(
        "003_bad.sql",
        "INSERT INTO t VALUES (3);\nINSERT INTO t VALUES (1);\n",
    );
    dir.write("004_after.sql", "SELECT 1;\n");
    let run = db
        .km(&["sql", "migrate", "--dir", &dir.arg(), "-o", "json"])
        .expect(3);
    insta::assert_snapshot!(
        "sql_migrate_failed",
        redacted(&run.stdout, &[&db], &[dir.path()])
    );

    let run = db
        .km(&["sql", "status", "--dir", &dir.arg(), "-o", "json"])
        .expect(7);
    insta::assert_snapshot!(
        "sql_status_pending",
        redacted(&run.stdout, &[&db], &[dir.path()])
    );
}

#[test]
fn a_usage_error_is_one_document_with_the_error() {
    let dir = files();
    let run = km(
        &[
            "sql",
            "migrate",
            "--dir",
            &dir.arg(),
            "--database-url",
            "mysql://x@y/z",
            "-o",
            "json",
        ],
        &[],
    )
    .expect(2);
    insta::assert_snapshot!("usage_error", redacted(&run.stdout, &[], &[dir.path()]));
}

#[test]
fn validate_and_apply_local_as_json() {
    let db = Db::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("app")).unwrap();
    std::fs::write(
        root.path().join("app/V1__init.sql"),
        "CREATE TABLE a (id int);\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join("broken")).unwrap();
    std::fs::write(
        root.path().join("broken/V1__bad.sql"),
        "INSERT INTO missing_table VALUES (1);\n",
    )
    .unwrap();
    let plan = root.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "apiVersion: kubemigrate.io/v1alpha1
kind: MigrationPlan
metadata: {name: shop}
spec:
  targets:
    - name: app
      database: {host: app-db, name: app, user: app, password: {fromEnv: UNUSED}}
      sql: {localDir: app}
    - name: broken
      database: {host: b-db, name: b, user: app, password: {fromEnv: UNUSED}}
      sql: {localDir: broken}
    - name: after
      dependsOn: [broken]
      database: {host: c-db, name: c, user: app, password: {fromEnv: UNUSED}}
      sql: {localDir: app}
",
    )
    .unwrap();
    let file = plan.display().to_string();

    let run = km(&["validate", "-f", &file, "-o", "json"], &[]).expect(0);
    insta::assert_snapshot!("validate", redacted(&run.stdout, &[], &[root.path()]));

    let other = Db::new();
    let dbs = [
        format!("app={}", db.url),
        format!("broken={}", other.url),
        format!("after={}", db.url),
    ];
    let mut args = vec!["apply", "-f", &file, "--local", "-o", "json"];
    for d in &dbs {
        args.extend(["--db", d.as_str()]);
    }
    // A runner's own exit code (3: a migration's SQL failed) is apply's.
    let run = km(&args, &[]).expect(3);
    insta::assert_snapshot!(
        "apply_local_failed",
        redacted(&run.stdout, &[&db, &other], &[root.path()])
    );
}
