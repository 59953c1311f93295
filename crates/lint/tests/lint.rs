//! The linter on small directories: transaction modes, positions through
//! variables and includes, policy, ignores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

use kubemigrate_lint::{Level, LintError, Policy, Report, lint_source};
use kubemigrate_sql::script::Variables;
use kubemigrate_sql::source::Source;

fn lint_with(
    files: &[(&str, &str)],
    vars: &[(&str, &str)],
    policy: &Policy,
) -> Result<Report, LintError> {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let mut v = Variables::new();
    for (k, val) in vars {
        v.set(*k, *val);
    }
    let source = Source::read_dir(dir.path(), &v).unwrap();
    let mut report = lint_source(&source, &v, policy, None)?;
    for f in &mut report.files {
        for finding in &mut f.findings {
            finding.file = finding.file.strip_prefix(dir.path()).unwrap().to_path_buf();
        }
    }
    Ok(report)
}

fn lint(files: &[(&str, &str)]) -> Report {
    let mut p = Policy::new();
    p.set_kubemigrate_sets_lock_timeout(true);
    lint_with(files, &[], &p).unwrap()
}

fn found(r: &Report) -> Vec<String> {
    r.findings()
        .map(|f| format!("{}:{}:{} {}", f.file.display(), f.line, f.column, f.rule))
        .collect()
}

#[test]
fn concurrently_is_judged_by_the_files_real_transaction_mode() {
    let r = lint(&[
        ("1.sql", "CREATE INDEX CONCURRENTLY i ON t (a);\n"),
        (
            "2.sql",
            "-- kubemigrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\n",
        ),
        ("3.sql", "CREATE INDEX i ON t (a);\n"),
        (
            "4.sql",
            "-- kubemigrate:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);\n",
        ),
    ]);
    assert_eq!(
        found(&r),
        [
            // squawk also says it is not idempotent: CONCURRENTLY never runs in a
            // transaction, so a failure leaves it half done.
            "1.sql:1:1 prefer-robust-stmts",
            "1.sql:1:14 ban-concurrent-index-creation-in-transaction",
            "3.sql:1:1 require-concurrent-index-creation",
            "4.sql:2:1 prefer-robust-stmts",
        ]
    );
}

#[test]
fn positions_map_back_through_variables_and_includes() {
    let r = lint_with(
        &[
            ("1.sql", "\\set tbl orders\nSELECT 1;\n  ALTER TABLE :tbl ADD COLUMN :col int NOT NULL;\n\\ir lib/x.sql\n"),
            ("lib/x.sql", "\n\nALTER TABLE t RENAME TO u;\n"),
        ],
        &[("col", "a_very_long_column_name")],
        &{
            let mut p = Policy::new();
            p.set_kubemigrate_sets_lock_timeout(true);
            p
        },
    )
    .unwrap();
    assert_eq!(
        found(&r),
        [
            "1.sql:3:20 adding-required-field",
            "lib/x.sql:3:15 renaming-table"
        ]
    );
}

#[test]
fn lock_timeout_is_required_unless_kubemigrate_sets_it() {
    let files = [
        ("1.sql", "ALTER TABLE t ADD COLUMN a int;\n"),
        (
            "2.sql",
            "SET lock_timeout = '2s';\nALTER TABLE t ADD COLUMN b int;\n",
        ),
    ];
    let r = lint_with(&files, &[], &Policy::new()).unwrap();
    assert_eq!(found(&r), ["1.sql:1:1 require-lock-timeout"]);
    assert!(found(&lint(&files)).is_empty());
}

#[test]
fn policy_levels_and_version() {
    let files = [(
        "1.sql",
        "ALTER TABLE t ADD COLUMN a timestamptz DEFAULT now();\nALTER TABLE t ADD COLUMN b int;\n",
    )];
    let mut p = Policy::new();
    p.set_kubemigrate_sets_lock_timeout(true);
    assert!(found(&lint_with(&files, &[], &p).unwrap()).is_empty());
    p.set_postgres_version("10").unwrap();
    let r = lint_with(&files, &[], &p).unwrap();
    assert_eq!(found(&r), ["1.sql:1:48 adding-field-with-default"]);
    assert!(r.denied());
    p.set("adding-field-with-default", Level::Warn).unwrap();
    p.set("prefer-bigint-over-int", Level::Deny).unwrap();
    let r = lint_with(&files, &[], &p).unwrap();
    assert_eq!(
        found(&r),
        [
            "1.sql:1:48 adding-field-with-default",
            "1.sql:2:28 prefer-bigint-over-int"
        ]
    );
    assert_eq!((r.count(Level::Warn), r.count(Level::Deny)), (1, 1));
    assert!(matches!(
        p.set("no-such-rule", Level::Deny),
        Err(LintError::UnknownRule { .. })
    ));
    assert!(p.set_postgres_version("sixteen").is_err());
    assert!(p.set_postgres_version("16.1.2.3").is_err());
}

#[test]
fn ignores_silence_one_statement_and_are_checked() {
    let r = lint(&[(
        "1.sql",
        "-- kubemigrate:lint-ignore ban-drop-table the app stopped reading it in 4.1\nDROP TABLE a;\nDROP TABLE b;\n-- kubemigrate:lint-ignore renaming-table nothing to rename here\nSELECT 1;\n",
    )]);
    assert_eq!(
        found(&r),
        ["1.sql:3:1 ban-drop-table", "1.sql:4:1 unused-ignore"]
    );
    assert_eq!(r.files[0].ignored, 1);
    let dir_err = |body: &str| {
        lint_with(&[("1.sql", body)], &[], &Policy::new())
            .unwrap_err()
            .to_string()
    };
    let e = dir_err("-- kubemigrate:lint-ignore ban-drop-table\nDROP TABLE a;\n");
    assert!(e.ends_with("1.sql:1: `kubemigrate:lint-ignore ban-drop-table` needs a reason after the rule (why this statement is safe here)"), "{e}");
    let e = dir_err("DROP TABLE a; -- kubemigrate:lint-ignore ban-drop-tables because\n");
    assert!(
        e.ends_with("1.sql:1: unknown lint rule `ban-drop-tables`; did you mean `ban-drop-table`?"),
        "{e}"
    );
}

#[test]
fn as_written_files_are_linted_with_their_own_transactions() {
    let r = lint(&[(
        "1.sql",
        "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (id);\nVACUUM t;\n",
    )]);
    assert!(found(&r).is_empty(), "{:?}", found(&r));
    let r = lint(&[
        ("1.sql", "VACUUM t;\n"),
        ("2.sql", "DROP INDEX CONCURRENTLY IF EXISTS i;\n"),
    ]);
    assert_eq!(
        found(&r),
        [
            "1.sql:1:1 no-transaction-required",
            "2.sql:1:1 no-transaction-required"
        ]
    );
}

#[test]
fn data_statements_are_left_out_only_while_no_rule_looks_at_them() {
    let files = [(
        "1.sql",
        "INSERT INTO t VALUES (1);\nUPDATE t SET a = 1, a = 2;\nDROP TABLE u;\nINSERT INTO t VALUES (2);\n",
    )];
    // Defaults: the DROP is found at its place, between the data statements.
    let r = lint(&files);
    assert_eq!(found(&r), ["1.sql:3:1 ban-drop-table"]);
    assert_eq!(r.files[0].statements, 4);
    // A rule that looks at UPDATE: every statement is parsed.
    let mut p = Policy::new();
    p.set_kubemigrate_sets_lock_timeout(true);
    p.set("ban-duplicate-column-assignments", Level::Deny)
        .unwrap();
    let r = lint_with(&files, &[], &p).unwrap();
    assert_eq!(
        found(&r),
        [
            "1.sql:2:14 ban-duplicate-column-assignments",
            "1.sql:2:21 ban-duplicate-column-assignments",
            "1.sql:3:1 ban-drop-table"
        ]
    );
}

#[test]
fn an_ignore_of_a_rule_the_policy_turns_off_is_not_unused() {
    let files = [(
        "1.sql",
        "-- kubemigrate:lint-ignore ban-drop-column kept for the default policy\nALTER TABLE t DROP COLUMN c;\n",
    )];
    let mut p = Policy::new();
    p.set_kubemigrate_sets_lock_timeout(true);
    p.set("ban-drop-column", Level::Off).unwrap();
    assert!(found(&lint_with(&files, &[], &p).unwrap()).is_empty());
    assert!(found(&lint(&files)).is_empty());
}

#[test]
fn routines_are_left_out_once_the_lock_timeout_rule_is_settled() {
    // A header squawk cannot parse, to see whether the statement was parsed.
    let bad_function = "CREATE FUNCTION f( RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n";
    let files = [
        // The first DDL of its file, with no timeout set: the rule fires on it.
        (
            "1.sql",
            "CREATE OR REPLACE FUNCTION g() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\nALTER TABLE t ADD COLUMN a int;\n".to_string(),
        ),
        // After `SET lock_timeout`: not parsed (its syntax error unseen).
        ("2.sql", format!("SET lock_timeout = '1s';\n{bad_function}")),
        // After a statement the rule was reported on: not parsed either.
        ("3.sql", format!("ALTER TABLE t ADD COLUMN b int;\n{bad_function}")),
        // An ignore comment in the file: parsed, and the ignore is used.
        (
            "4.sql",
            format!(
                "SET lock_timeout = '1s';\n-- kubemigrate:lint-ignore syntax-error squawk reads it wrong\n{bad_function}"
            ),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, b)| (*n, b.as_str())).collect();
    let r = lint_with(&files, &[], &Policy::new()).unwrap();
    assert_eq!(
        found(&r),
        [
            "1.sql:1:1 require-lock-timeout",
            "3.sql:1:1 require-lock-timeout"
        ]
    );
    assert_eq!(r.files[1].statements, 2);
    assert_eq!(r.files[3].ignored, 1);
    // A rule that is not a default: every statement is parsed.
    let mut p = Policy::new();
    p.set("prefer-text-field", Level::Warn).unwrap();
    let r = lint_with(&files, &[], &p).unwrap();
    assert_eq!(
        found(&r),
        [
            "1.sql:1:1 require-lock-timeout",
            "2.sql:2:31 syntax-error",
            "3.sql:1:1 require-lock-timeout",
            "3.sql:2:31 syntax-error"
        ]
    );
}

#[test]
fn files_read_only_hashed_are_lexed_by_the_lint() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| std::fs::write(dir.path().join(name), body).unwrap();
    write("1.sql", "ALTER TABLE t ADD COLUMN a int NOT NULL;\n");
    write(
        "2.sql",
        "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;\n",
    );
    let options = kubemigrate_sql::source::SourceOptions {
        defer_lex: true,
        ..Default::default()
    };
    let v = Variables::new();
    let source = Source::read(dir.path(), &v, &options).unwrap();
    assert!(source.migrations[0].deferred);
    assert!(!source.migrations[1].deferred);
    let mut p = Policy::new();
    p.set_kubemigrate_sets_lock_timeout(true);
    let r = lint_source(&source, &v, &p, None).unwrap();
    let rules: Vec<(&str, usize)> = r
        .files
        .iter()
        .flat_map(|f| f.findings.iter().map(move |x| (x.rule, f.statements)))
        .collect();
    assert_eq!(
        rules,
        [
            ("adding-required-field", 1),
            ("prefer-robust-stmts", 3),
            ("ban-concurrent-index-creation-in-transaction", 3)
        ]
    );
    // A file with nothing to run, only hashed by the read: refused by the lint.
    write("3.sql", "-- nothing here yet\n");
    let source = Source::read(dir.path(), &v, &options).unwrap();
    let err = lint_source(&source, &v, &p, None).unwrap_err();
    assert!(
        err.to_string().ends_with("3.sql: has no SQL statements (an empty migration is usually a mistake; add a comment and `SELECT 1;` to keep it)"),
        "{err}"
    );
}
