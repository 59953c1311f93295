//! `kubemigrate sql lint` end to end: findings and exit codes, the output formats
//! (human, JSON, SARIF, GitHub annotations), policy flags and inline ignores,
//! `--pending` against a real database, the plan's `lint` policy in `validate`,
//! `render` and `apply --local`, and `--trace` against real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Db, Dir, km};

const UNSAFE: &[(&str, &str)] = &[
    (
        "0001_orders.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total numeric);\n",
    ),
    (
        "0002_index.sql",
        "SET lock_timeout = '5s';\nCREATE INDEX orders_user_idx ON orders (user_id);\n",
    ),
    (
        "0003_rename.sql",
        "SET lock_timeout = '5s';\nALTER TABLE orders RENAME COLUMN total TO amount;\n",
    ),
];

#[test]
fn lint_reports_file_line_column_rule_why_and_the_safe_pattern_and_exits_11() {
    let d = Dir::new(UNSAFE);
    let run = km(&["sql", "lint", "--dir", &d.arg()], &[]).expect(11);
    let dir = d.arg();
    assert!(
        run.stdout.contains(&format!(
            "{dir}/0002_index.sql:2:1: deny[require-concurrent-index-creation]: CREATE INDEX without CONCURRENTLY takes a SHARE lock"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("  2 | CREATE INDEX orders_user_idx ON orders (user_id);")
    );
    assert!(
        run.stdout
            .contains("  safe: CREATE INDEX CONCURRENTLY IF NOT EXISTS")
    );
    assert!(run.stdout.contains(&format!(
        "{dir}/0003_rename.sql:2:20: deny[renaming-column]"
    )));
    assert!(
        run.stdout
            .contains("linted 3 files (5 statements): 2 denied, 0 warnings, 0 ignored")
    );
    assert!(
        run.stderr.starts_with(&format!(
            "error: {dir}: 2 findings of denied lint rules in 0002_index.sql, 0003_rename.sql, \
             the first at {dir}/0002_index.sql:2:1 (require-concurrent-index-creation);"
        )),
        "{}",
        run.stderr
    );
    // Lowered to warnings: exit 0, still reported.
    let run = km(
        &[
            "sql",
            "lint",
            "--dir",
            &d.arg(),
            "--rule",
            "require-concurrent-index-creation=warn",
            "--rule",
            "renaming-column=off",
        ],
        &[],
    )
    .expect(0);
    assert!(
        run.stdout
            .contains("warn[require-concurrent-index-creation]")
    );
    assert!(!run.stdout.contains("renaming-column"));
}

#[test]
fn sarif_output_has_what_code_scanning_reads() {
    let d = Dir::new(UNSAFE);
    let run = km(
        &["sql", "lint", "--dir", &d.arg(), "--format", "sarif"],
        &[],
    )
    .expect(11);
    let doc = run.json();
    assert_eq!(doc["version"], "2.1.0");
    let run0 = &doc["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "kubemigrate");
    let rules: Vec<&str> = run0["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["renaming-column", "require-concurrent-index-creation"]
    );
    let results = run0["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let r = &results[0];
    assert_eq!(r["ruleId"], "require-concurrent-index-creation");
    assert_eq!(r["ruleIndex"], 1);
    assert_eq!(r["level"], "error");
    assert!(
        r["message"]["text"]
            .as_str()
            .unwrap()
            .contains("Safe pattern: CREATE INDEX CONCURRENTLY")
    );
    let loc = &r["locations"][0]["physicalLocation"];
    // An absolute --dir gives file:// URIs; a relative one (as in CI) relative paths.
    assert_eq!(
        loc["artifactLocation"]["uri"],
        format!("file://{}/0002_index.sql", d.arg())
    );
    let repo = Dir::new(&[]);
    std::fs::create_dir_all(repo.file("m")).unwrap();
    for (name, body) in UNSAFE {
        repo.write(&format!("m/{name}"), body);
    }
    let out = common::km_command(&["sql", "lint", "--dir", "./m", "--format", "sarif"], &[])
        .current_dir(repo.path())
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "m/0002_index.sql"
    );
    assert_eq!(loc["region"]["startLine"], 2);
    assert_eq!(loc["region"]["startColumn"], 1);
    for rule in run0["tool"]["driver"]["rules"].as_array().unwrap() {
        assert!(
            !rule["shortDescription"]["text"]
                .as_str()
                .unwrap()
                .is_empty()
        );
        assert!(!rule["help"]["text"].as_str().unwrap().is_empty());
    }
}

#[test]
fn github_output_is_one_workflow_annotation_per_finding() {
    let d = Dir::new(&[
        (
            "0001_a,b.sql",
            "SET lock_timeout = '5s';\nDROP TABLE old_sessions;\n",
        ),
        ("0002_b.sql", "ALTER TABLE orders ADD COLUMN note text;\n"),
    ]);
    let run = km(
        &["sql", "lint", "--dir", &d.arg(), "--format", "github"],
        &[],
    )
    .expect(11);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    // Commas and colons in properties are escaped, as GitHub requires.
    let file = format!("{}/0001_a%2Cb.sql", d.arg()).replace(':', "%3A");
    assert!(
        lines[0].starts_with(&format!(
            "::error file={file},line=2,col=1,title=kubemigrate lint%3A ban-drop-table::the running version"
        )),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(". Safe pattern: stop using the table"));
    assert!(lines[1].starts_with("::warning file="), "{}", lines[1]);
    assert!(lines[1].contains(",line=1,col=1,title=kubemigrate lint%3A require-lock-timeout::"));
    assert_eq!(
        lines[2],
        "linted 2 files (3 statements): 1 denied, 1 warning, 0 ignored"
    );
    // --statement-lock-timeout: kubemigrate sets lock_timeout, the files need not.
    let run = km(
        &[
            "sql",
            "lint",
            "--dir",
            &d.arg(),
            "--format",
            "github",
            "--statement-lock-timeout",
            "5s",
        ],
        &[],
    )
    .expect(11);
    assert!(!run.stdout.contains("require-lock-timeout"));
}

#[test]
fn json_output_and_inline_ignores() {
    let d = Dir::new(&[(
        "0001.sql",
        "SET lock_timeout = '5s';\n-- kubemigrate:lint-ignore ban-drop-table unused since 3.0, archived\nDROP TABLE old_sessions;\n",
    )]);
    let run = km(&["sql", "lint", "--dir", &d.arg(), "-o", "json"], &[]).expect(0);
    let doc = run.json();
    assert_eq!(doc["command"], "sql lint");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["ignored"], 1);
    assert_eq!(doc["files"][0]["mode"], "transaction");
    assert_eq!(doc["files"][0]["findings"].as_array().unwrap().len(), 0);
    d.write(
        "0002.sql",
        "-- kubemigrate:no-transaction\nCREATE INDEX CONCURRENTLY i ON orders (a);\n",
    );
    let run = km(
        &[
            "sql",
            "lint",
            "--dir",
            &d.arg(),
            "-o",
            "json",
            "--statement-lock-timeout",
            "1s",
        ],
        &[],
    )
    .expect(11);
    let doc = run.json();
    assert_eq!(doc["outcome"], "lint_denied");
    assert_eq!(doc["exit_code"], 11);
    let f = &doc["files"][1];
    assert_eq!(f["mode"], "no_transaction");
    let finding = &f["findings"][0];
    assert_eq!(finding["rule"], "prefer-robust-stmts");
    assert_eq!(finding["level"], "deny");
    assert_eq!(
        (finding["line"].as_u64(), finding["column"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(finding["why"].as_str().unwrap().contains("not idempotent"));
    assert!(finding["safe"].as_str().unwrap().contains("IF NOT EXISTS"));
    // An ignore without its reason is bad input.
    d.write(
        "0003.sql",
        "-- kubemigrate:lint-ignore ban-drop-table\nDROP TABLE t;\n",
    );
    let run = km(&["sql", "lint", "--dir", &d.arg()], &[]).expect(2);
    assert!(
        run.stderr
            .contains("0003.sql:1: `kubemigrate:lint-ignore ban-drop-table` needs a reason"),
        "{}",
        run.stderr
    );
}

#[test]
fn pending_lints_only_the_files_the_database_has_not_applied() {
    let db = Db::new();
    let d = Dir::new(&[
        (
            "0001_orders.sql",
            "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint);\n",
        ),
        (
            "0002_index.sql",
            "-- kubemigrate:lint-ignore require-concurrent-index-creation small table then\nCREATE INDEX orders_user_idx ON orders (user_id);\n",
        ),
    ]);
    db.km(&["sql", "migrate", "--dir", &d.arg()]).expect(0);
    // An applied file that the linter would refuse today, and a pending one.
    d.write("0002_index.sql", "-- kubemigrate:lint-ignore require-concurrent-index-creation small table then\nCREATE INDEX orders_user_idx ON orders (user_id);\nSELECT 1;\n");
    d.write(
        "0003_rename.sql",
        "SET lock_timeout = '1s';\nALTER TABLE orders RENAME COLUMN user_id TO customer_id;\n",
    );
    let history_before = db.history();
    let run = db
        .km(&["sql", "lint", "--dir", &d.arg(), "--pending", "-o", "json"])
        .expect(11);
    let doc = run.json();
    let files: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["version"].as_str().unwrap())
        .collect();
    // 0002 is drifted, not pending: it was applied, so it is not linted.
    assert_eq!(files, ["0003_rename.sql"]);
    assert_eq!(doc["files"][0]["findings"][0]["rule"], "renaming-column");
    // It read the history and changed nothing.
    assert_eq!(db.history(), history_before);
    // A database without a history: every file is pending, and no table is created.
    let fresh = Db::new();
    let run = fresh
        .km(&["sql", "lint", "--dir", &d.arg(), "--pending", "-o", "json"])
        .expect(11);
    assert_eq!(run.json()["files"].as_array().unwrap().len(), 3);
    assert_eq!(
        fresh.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'kubemigrate_history'"),
        "0"
    );
    // No database: exit 6.
    km(
        &[
            "sql",
            "lint",
            "--dir",
            &d.arg(),
            "--pending",
            "--database-url",
            "postgres://u@127.0.0.1:1/x?connect_timeout=1",
        ],
        &[],
    )
    .expect(6);
}

/// The locks of one statement in a trace document: (relation, mode, blocks reads,
/// blocks writes, new).
fn locks(
    doc: &serde_json::Value,
    version: &str,
    statement: usize,
) -> Vec<(String, String, bool, bool, bool)> {
    let file = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["version"] == version)
        .unwrap_or_else(|| panic!("no {version} in {doc:#}"));
    file["statements"][statement - 1]["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["relation"].as_str().unwrap().to_string(),
                l["mode"].as_str().unwrap().to_string(),
                l["blocks_reads"].as_bool().unwrap(),
                l["blocks_writes"].as_bool().unwrap(),
                l["new"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn lock(
    relation: &str,
    mode: &str,
    reads: bool,
    writes: bool,
    new: bool,
) -> (String, String, bool, bool, bool) {
    (relation.into(), mode.into(), reads, writes, new)
}

#[test]
fn trace_reports_the_locks_of_each_pending_statement_on_a_copy_of_the_schema() {
    let db = Db::new();
    let d = Dir::new(&[(
        "0001_orders.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total numeric);\n",
    )]);
    db.km(&["sql", "migrate", "--dir", &d.arg()]).expect(0);
    db.sql("INSERT INTO orders SELECT g, g % 7, g FROM generate_series(1, 500) g");
    d.write(
        "0002_index.sql",
        "CREATE INDEX orders_user_idx ON orders (user_id);\nALTER TABLE orders ADD COLUMN note text;\nCREATE TABLE refunds (id bigint PRIMARY KEY);\n",
    );
    d.write(
        "0003_cic.sql",
        "-- kubemigrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS orders_total_idx ON orders (total);\nALTER TABLE orders ALTER COLUMN note SET DEFAULT 'x';\n",
    );
    d.write(
        "0004_own.sql",
        "BEGIN;\nLOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE;\nCOMMIT;\nSELECT count(*) FROM orders;\n",
    );
    let run = db
        .km(&["sql", "lint", "--trace", "--dir", &d.arg(), "-o", "json"])
        .expect(0);
    let doc = run.json();
    assert_eq!(doc["command"], "sql lint --trace");
    let versions: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["version"].as_str().unwrap())
        .collect();
    // Only the pending files run; 0001 came with the schema.
    assert_eq!(versions, ["0002_index.sql", "0003_cic.sql", "0004_own.sql"]);
    let index = locks(&doc, "0002_index.sql", 1);
    assert!(
        index.contains(&lock("orders", "ShareLock", false, true, false)),
        "{index:?}"
    );
    assert!(
        index.contains(&lock(
            "orders_user_idx",
            "AccessExclusiveLock",
            true,
            true,
            true
        )),
        "{index:?}"
    );
    assert_eq!(
        locks(&doc, "0002_index.sql", 2),
        [lock("orders", "AccessExclusiveLock", true, true, false)]
    );
    assert!(
        locks(&doc, "0002_index.sql", 3).iter().all(|l| l.4),
        "a new table blocks nobody"
    );
    assert!(
        locks(&doc, "0003_cic.sql", 1).contains(&lock(
            "orders",
            "ShareUpdateExclusiveLock",
            false,
            false,
            false
        )),
        "{:?}",
        locks(&doc, "0003_cic.sql", 1)
    );
    assert_eq!(doc["files"][1]["statements"][0]["observed"], "concurrent");
    assert_eq!(
        locks(&doc, "0003_cic.sql", 2),
        [lock("orders", "AccessExclusiveLock", true, true, false)]
    );
    assert_eq!(
        locks(&doc, "0004_own.sql", 2),
        [lock("orders", "ShareRowExclusiveLock", false, true, false)]
    );
    // A read takes ACCESS SHARE on the table (and on the indexes the planner opens).
    let read = locks(&doc, "0004_own.sql", 4);
    assert!(
        read.contains(&lock("orders", "AccessShareLock", false, false, false)),
        "{read:?}"
    );
    assert!(read.iter().all(|l| l.1 == "AccessShareLock"), "{read:?}");
    // The lock taken in the file's transaction is held until its COMMIT: at least
    // as long as the statement itself took.
    let first = &doc["files"][0]["statements"][0];
    assert!(
        first["locks"][0]["held_ms"].as_u64().unwrap() >= first["duration_ms"].as_u64().unwrap()
    );
    // The database itself is untouched.
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'"),
        "1"
    );
    // Human output names the statement, the lock and what it blocks.
    let run = db
        .km(&["sql", "lint", "--trace", "--dir", &d.arg()])
        .expect(0);
    assert!(
        run.stdout
            .contains("statement 1: CREATE INDEX orders_user_idx ON orders (user_id);"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("table orders ShareLock: blocks writes; held "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("table orders AccessExclusiveLock: blocks reads and writes; held ")
    );
}

#[test]
fn trace_without_a_database_runs_every_file_on_an_empty_one() {
    let d = Dir::new(&[
        (
            "0001_orders.sql",
            "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric);\n",
        ),
        (
            "0002_index.sql",
            "CREATE INDEX orders_total_idx ON orders (total);\n",
        ),
        (
            "0003_bad.sql",
            "ALTER TABLE orders ALTER COLUMN nope SET NOT NULL;\n",
        ),
    ]);
    let run = km(
        &["sql", "lint", "--trace", "--dir", &d.arg(), "-o", "json"],
        &[],
    )
    .expect(3);
    let doc = run.json();
    assert_eq!(doc["ok"], false);
    assert!(
        run.stderr
            .contains("0003_bad.sql:1:1: column \"nope\" of relation \"orders\" does not exist"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(d.file("0003_bad.sql")).unwrap();
    // COPY data streams through, as in a run.
    d.write(
        "0004_data.sql",
        "COPY orders (id, total) FROM stdin;\n1\t10\n2\t20\n\\.\nSELECT 1;\n",
    );
    let doc = km(
        &["sql", "lint", "--trace", "--dir", &d.arg(), "-o", "json"],
        &[],
    )
    .expect(0)
    .json();
    assert_eq!(doc["files"].as_array().unwrap().len(), 3);
    assert!(locks(&doc, "0001_orders.sql", 1).iter().all(|l| l.4));
    assert_eq!(
        locks(&doc, "0004_data.sql", 1),
        [lock("orders", "RowExclusiveLock", false, false, false)]
    );
    assert!(locks(&doc, "0002_index.sql", 1).contains(&lock(
        "orders",
        "ShareLock",
        false,
        true,
        false
    )));
}

fn plan(lint: &str) -> String {
    format!(
        "apiVersion: kubemigrate.io/v1alpha1\nkind: MigrationPlan\nmetadata: {{name: shop}}\nspec:\n{lint}  targets:\n    - name: orders\n      database: {{host: 127.0.0.1, name: x, user: app, password: {{fromEnv: P}}}}\n      sql: {{localDir: ./sql}}\n"
    )
}

#[test]
fn plans_lint_their_local_sql_in_validate_render_and_apply() {
    let d = Dir::new(&[]);
    std::fs::create_dir_all(d.file("sql")).unwrap();
    d.write(
        "sql/0001.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY, note text);\n",
    );
    d.write("sql/0002.sql", "ALTER TABLE orders DROP COLUMN note;\n");
    let file = d.file("plan.yaml").display().to_string();
    d.write("plan.yaml", &plan(""));
    let env = [("P", "pw")];
    let run = km(&["validate", "-f", &file], &env).expect(11);
    assert!(
        run.stderr.contains("lint: target orders: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("sql/0002.sql:1:20: deny[ban-drop-column]"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("error: target orders: 1 finding of denied lint rules, the first at "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("sql/0002.sql:1:20 (ban-drop-column); use the safe pattern")
    );
    let run = km(&["render", "-f", &file, "--run-id", "r1"], &env).expect(11);
    assert!(
        run.stdout.is_empty(),
        "render printed objects: {}",
        run.stdout
    );
    // The plan lowers the rule: valid, and the finding is a warning.
    d.write(
        "plan.yaml",
        &plan("  lint: {rules: {ban-drop-column: warn}, postgresVersion: \"16\"}\n"),
    );
    let run = km(&["validate", "-f", &file], &env).expect(0);
    assert!(
        run.stderr.contains("warn[ban-drop-column]"),
        "{}",
        run.stderr
    );
    km(&["render", "-f", &file, "--run-id", "r1"], &env).expect(0);
    // A target's policy overrides the plan's.
    let text = plan("  lint: {rules: {ban-drop-column: warn}}\n").replace(
        "      sql:",
        "      lint: {rules: {ban-drop-column: deny}}\n      sql:",
    );
    d.write("plan.yaml", &text);
    km(&["validate", "-f", &file], &env).expect(11);
    // apply --local stops before anything runs; --skip-lint says it skipped.
    let db = Db::new();
    let target_url = format!("orders={}", db.url);
    let run = km(
        &["apply", "-f", &file, "--local", "--db", &target_url],
        &env,
    )
    .expect(11);
    assert!(
        run.stderr.contains("deny[ban-drop-column]"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
    let run = km(
        &[
            "apply",
            "-f",
            &file,
            "--local",
            "--db",
            &target_url,
            "--skip-lint",
        ],
        &env,
    )
    .expect(0);
    assert!(
        run.stderr.contains("warning: lint skipped (--skip-lint): the SQL files were not checked for unsafe statements"),
        "{}",
        run.stderr
    );
    assert_eq!(db.sql("SELECT count(*) FROM kubemigrate_history"), "2");
    // An unknown rule in the plan is an error at its line.
    d.write(
        "plan.yaml",
        &plan("  lint: {rules: {ban-drop-colum: warn}}\n"),
    );
    let run = km(&["validate", "-f", &file], &env).expect(2);
    assert!(
        run.stderr.contains("plan.yaml:5:34: spec.lint.rules.ban-drop-colum: unknown lint rule `ban-drop-colum`; did you mean `ban-drop-column`?"),
        "{}",
        run.stderr
    );
}
