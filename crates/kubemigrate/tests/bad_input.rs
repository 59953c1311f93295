//! The bad-input corpus: every case gives one clear line naming file, line and what is
//! wrong, a documented exit code, and never a panic. No database is needed: bad input
//! is found before kubemigrate connects (the URL points at a closed port). Most cases
//! run `sql migrate --dry-run`; plan cases run `validate` or `render`, connection
//! cases `wait-for-db`. Each command runs under a deadline: a hang is a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::os::unix::fs::symlink;

use common::Dir;

const NOWHERE: &str = "postgres://nobody@127.0.0.1:1/nothing?connect_timeout=1";

struct Case {
    name: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    setup: fn(&Dir),
    /// Added to `sql migrate --dir DIR --dry-run`.
    args: Vec<&'static str>,
    /// Instead of `sql migrate`: the whole command line, `{DIR}` replaced by the
    /// case's directory.
    command: Option<Vec<&'static str>>,
}

fn case(name: &'static str, files: &[(&'static str, &str)]) -> Case {
    Case {
        name,
        files: files
            .iter()
            .map(|(n, b)| (*n, b.as_bytes().to_vec()))
            .collect(),
        setup: |_| {},
        args: vec![],
        command: None,
    }
}

/// A case read with `--layout NAME`.
fn layout(name: &'static str, what: &'static str, files: &[(&'static str, &str)]) -> Case {
    Case {
        args: vec!["--layout", name],
        ..case(what, files)
    }
}

/// A case that runs `command` (with `{DIR}` for the case's directory).
fn command(name: &'static str, files: &[(&'static str, &str)], command: &[&'static str]) -> Case {
    Case {
        command: Some(command.to_vec()),
        ..case(name, files)
    }
}

/// A plan with one SQL target, its files in `sql/`, and `database` as its database.
fn plan(database: &str, sql: &str) -> String {
    format!(
        "apiVersion: kubemigrate.io/v1alpha1\nkind: MigrationPlan\nmetadata:\n  name: shop\nspec:\n  targets:\n    - name: a\n      database:\n{database}      sql: {{{sql}}}\n"
    )
}

const DATABASE: &str =
    "        host: db\n        name: a\n        user: app\n        password: {fromEnv: P}\n";

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn corpus() -> Vec<Case> {
    let mut cases = vec![
        case(
            "unterminated quote",
            &[("001.sql", "SELECT 1;\nSELECT 'abc;\n")],
        ),
        case(
            "unterminated E'' quote",
            &[("001.sql", "SELECT E'abc\\';\n")],
        ),
        case(
            "unterminated dollar quote",
            &[(
                "001.sql",
                "CREATE FUNCTION f() RETURNS int AS $body$\nSELECT 1;\n",
            )],
        ),
        case(
            "unterminated comment",
            &[("001.sql", "SELECT 1; /* outer /* inner */\nSELECT 2;\n")],
        ),
        case(
            "unterminated quoted identifier",
            &[("001.sql", "SELECT \"abc FROM t;\n")],
        ),
        case(
            "COPY without \\.",
            &[("001.sql", "COPY t FROM stdin;\n1\n2\n")],
        ),
        case(
            "text after COPY FROM stdin",
            &[("001.sql", "COPY t FROM stdin; SELECT 1;\n1\n\\.\n")],
        ),
        case(
            "meta-command inside a statement",
            &[("001.sql", "SELECT 1\n\\set x 1\n;\n")],
        ),
        case("empty file", &[("001.sql", "")]),
        case(
            "only comments",
            &[("001.sql", "-- nothing here\n/* or here */\n")],
        ),
        case(
            "undefined variable",
            &[("001.sql", "SELECT 1;\nSELECT * FROM :tbl;\n")],
        ),
        case("\\connect", &[("001.sql", "\\connect other\n")]),
        case("\\gexec", &[("001.sql", "SELECT 'select 1'\n\\gexec\n")]),
        case("\\! shell", &[("001.sql", "\\! rm -rf /\n")]),
        case(
            "\\if without \\endif",
            &[("001.sql", "\\if true\nSELECT 1;\n")],
        ),
        case(
            "\\endif without \\if",
            &[("001.sql", "SELECT 1;\n\\endif\n")],
        ),
        case("\\else without \\if", &[("001.sql", "\\else\n")]),
        case(
            "a second \\else",
            &[("001.sql", "\\if true\nSELECT 1;\n\\else\n\\else\n\\endif\n")],
        ),
        case(
            "\\elif after \\else",
            &[(
                "001.sql",
                "\\if true\nSELECT 1;\n\\else\n\\elif false\n\\endif\n",
            )],
        ),
        case(
            "\\if on a non-boolean",
            &[("001.sql", "\\if perhaps\nSELECT 1;\n\\endif\n")],
        ),
        case("\\set without a name", &[("001.sql", "\\set\n")]),
        case("\\unset of two names", &[("001.sql", "\\unset a b\n")]),
        case("\\copy … TO", &[("001.sql", "\\copy t TO 'out.csv'\n")]),
        case(
            "\\copy from a missing file",
            &[("001.sql", "\\copy t FROM 'missing.csv'\n")],
        ),
        case(
            "include of a missing file",
            &[("001.sql", "\\i nothere.sql\n")],
        ),
        case(
            "include cycle",
            &[("001.sql", "\\ir a.inc\n"), ("a.inc", "\\ir 001.sql\n")],
        ),
        case("include outside the directory", &[("001.sql", "\\i /\n")]),
        case(
            "names that differ only in case",
            &[("001_a.sql", "SELECT 1;"), ("001_A.sql", "SELECT 1;")],
        ),
        case(
            "a name that is not *.sql (warning only)",
            &[("001.SQL", "SELECT 1;"), ("002.sql", "SELECT 1;")],
        ),
        case(
            "mixed-width numbers (warning only)",
            &[("10_a.sql", "SELECT 1;"), ("9_b.sql", "SELECT 1;")],
        ),
        case("empty directory", &[]),
        case(
            "a dbmate file read as native",
            &[(
                "1_a.sql",
                "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n",
            )],
        ),
        layout(
            "flyway",
            "a Flyway name with a bad version",
            &[("V1.a__x.sql", "SELECT 1;")],
        ),
        layout(
            "flyway",
            "two Flyway files with one version",
            &[("V1__a.sql", "SELECT 1;"), ("V1.0__b.sql", "SELECT 1;")],
        ),
        layout(
            "golang-migrate",
            "a golang-migrate name without a title",
            &[("1.up.sql", "SELECT 1;")],
        ),
        layout(
            "dbmate",
            "a dbmate file without -- migrate:up",
            &[("1_a.sql", "SELECT 1;\n")],
        ),
        layout(
            "dbmate",
            "a dbmate down block before the up block",
            &[(
                "1_a.sql",
                "-- migrate:down\nSELECT 2;\n-- migrate:up\nSELECT 1;\n",
            )],
        ),
        layout(
            "dbmate",
            "a dbmate option it does not know",
            &[("1_a.sql", "-- migrate:up transaction:maybe\nSELECT 1;\n")],
        ),
        layout(
            "goose",
            "a goose file without -- +goose Up",
            &[("1_a.sql", "-- +goose Down\nSELECT 1;\n")],
        ),
        layout(
            "goose",
            "a goose StatementBegin without StatementEnd",
            &[(
                "1_a.sql",
                "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n",
            )],
        ),
        layout(
            "goose",
            "goose ENVSUB",
            &[("1_a.sql", "-- +goose ENVSUB ON\n-- +goose Up\nSELECT 1;\n")],
        ),
        layout(
            "goose",
            "a goose migration written in Go",
            &[("2_b.go", "package migrations\n")],
        ),
        layout(
            "sqlx",
            "a sqlx name without a version",
            &[("init.sql", "SELECT 1;")],
        ),
        layout(
            "postgres-migrations",
            "a postgres-migrations name without an id",
            &[("create.sql", "SELECT 1;")],
        ),
        layout(
            "postgres-migrations",
            "a postgres-migrations file in JavaScript",
            &[("1-a.js", "module.exports = {}\n")],
        ),
        layout(
            "supabase",
            "a Supabase project without migrations",
            &[("seed.sql", "SELECT 1;")],
        ),
        layout("nope", "an unknown layout", &[("1_a.sql", "SELECT 1;")]),
    ];
    cases.push(layout(
        "diesel",
        "an empty diesel up.sql",
        &[("2024-01-01-000000_a/up.sql", "-- nothing\n")],
    ));
    cases.push(layout(
        "diesel",
        "a diesel folder without a version",
        &[("create_users/up.sql", "SELECT 1;\n")],
    ));
    cases.push(layout(
        "diesel",
        "a diesel migration in Rust",
        &[("2024-01-01-000000_a/up.rs", "fn up() {}\n")],
    ));
    let bytes = |name: &'static str, body: Vec<u8>| Case {
        files: vec![("001.sql", body)],
        ..case(name, &[])
    };
    let with_setup = |name: &'static str, files: &[(&'static str, &str)], setup: fn(&Dir)| Case {
        setup,
        ..case(name, files)
    };
    cases.push(bytes(
        "not UTF-8",
        b"SELECT 1;\nSELECT '\xff\xfe';\n".to_vec(),
    ));
    cases.push(bytes("NUL byte", b"SELECT 1;\nSELECT '\0';\n".to_vec()));
    let mut huge = b"SELECT '".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 20 << 20));
    cases.push(bytes("a huge single line (20 MiB, unterminated)", huge));
    // Issue 13, defect 8: limits that the docs state.
    let mut statement = b"SELECT '".to_vec();
    statement.extend(std::iter::repeat_n(b'x', 257 << 20));
    statement.extend_from_slice(b"';\n");
    cases.push(bytes("a terminated statement over 256 MiB", statement));
    let mut copy = b"COPY t FROM stdin;\n".to_vec();
    copy.extend(std::iter::repeat_n(b'x', 257 << 20));
    copy.extend_from_slice(b"\n\\.\n");
    cases.push(bytes("a COPY data line over 256 MiB", copy));
    cases.push(with_setup("a directory where a file should be", &[], |d| {
        std::fs::create_dir(d.path().join("001.sql")).unwrap()
    }));
    cases.push(with_setup("unreadable file (dangling symlink)", &[], |d| {
        symlink(d.path().join("gone.sql.orig"), d.path().join("001.sql")).unwrap()
    }));
    cases.push(with_setup("symlink loop", &[], |d| {
        symlink(d.path().join("b.sql"), d.path().join("a.sql")).unwrap();
        symlink(d.path().join("a.sql"), d.path().join("b.sql")).unwrap();
    }));
    // Issue 13, defect 4: a FIFO reached through \i, \ir or \copy hung the commands.
    cases.push(with_setup(
        "\\i of a FIFO",
        &[("001.sql", "\\i lib/f.sql\n")],
        |d| {
            std::fs::create_dir(d.path().join("lib")).unwrap();
            mkfifo(&d.path().join("lib/f.sql"));
        },
    ));
    cases.push(with_setup(
        "\\ir of a FIFO",
        &[("001.sql", "\\ir lib/f.sql\n")],
        |d| {
            std::fs::create_dir(d.path().join("lib")).unwrap();
            mkfifo(&d.path().join("lib/f.sql"));
        },
    ));
    cases.push(with_setup(
        "\\copy from a FIFO",
        &[("001.sql", "\\copy t FROM 'data.csv'\n")],
        |d| mkfifo(&d.path().join("data.csv")),
    ));
    cases.push(with_setup("a FIFO named *.sql", &[], |d| {
        mkfifo(&d.path().join("001.sql"))
    }));
    // Issue 13, messages: names printed raw.
    cases.push(case(
        "a file name with a line break",
        &[("001\nx.sql", "SELECT 1;")],
    ));
    cases.push(case(
        "a file name with a terminal escape",
        &[("001_\u{1b}[31mred.sql", "SELECT 1;")],
    ));
    for (name, args) in [
        ("--set without =", vec!["--set", "novalue"]),
        (
            "--lock-timeout that is not a duration",
            vec!["--lock-timeout", "soon"],
        ),
        (
            "--statement-lock-timeout that is not a duration",
            vec!["--statement-lock-timeout", "5 parsecs"],
        ),
        (
            "a URL that is not postgres://",
            vec!["--database-url", "mysql://root@db/app"],
        ),
        (
            "an unknown sslmode",
            vec!["--database-url", "postgres://a@b/c?sslmode=sometimes"],
        ),
        (
            "a port that is not a number",
            vec!["--database-url", "postgres://a@b:http/c"],
        ),
        ("an unknown flag", vec!["--alow-drift"]),
        // Issue 13, messages and defects 6 and 8.
        ("an empty --history-table", vec!["--history-table", ""]),
        ("an empty --history-schema", vec!["--history-schema", ""]),
        (
            "a --history-table over 63 bytes",
            vec![
                "--history-table",
                "h123456789012345678901234567890123456789012345678901234567890123",
            ],
        ),
        ("an empty --database-url", vec!["--database-url", ""]),
        ("a --set name no file can use", vec!["--set", "1a=x"]),
        ("a negative --lock-timeout", vec!["--lock-timeout", "-5s"]),
        (
            "a negative --statement-lock-timeout",
            vec!["--statement-lock-timeout", "-5s"],
        ),
        (
            "a host name longer than DNS allows",
            vec!["--database-url", LONG_HOST_URL],
        ),
    ] {
        let mut c = case(name, &[("001.sql", "SELECT 1;")]);
        c.args = args;
        cases.push(c);
    }
    // Connections (issue 13, messages).
    cases.push(command(
        "an sslmode that is not libpq's (wait-for-db)",
        &[],
        &[
            "wait-for-db",
            "--database-url",
            "postgres://u@h/d?sslmode=maybe",
        ],
    ));
    cases.push(command(
        "port 0 in a URL (wait-for-db)",
        &[],
        &["wait-for-db", "--database-url", "postgres://u@h:0/d"],
    ));
    cases.push(command(
        "a negative wait-for-db --timeout",
        &[],
        &["wait-for-db", "--timeout", "-5s"],
    ));
    // Plans (issue 13: YAML tabs, ports, hosts, files outside the plan's directory).
    let plan_case = |name: &'static str, text: String, verb: &'static str, setup: fn(&Dir)| Case {
        files: vec![
            ("plan.yaml", text.into_bytes()),
            ("sql/001.sql", b"SELECT 1;\n".to_vec()),
        ],
        setup,
        command: Some(vec![verb, "-f", "{DIR}/plan.yaml"]),
        ..case(name, &[])
    };
    cases.push(plan_case(
        "plan: a tab indenting the line after a value",
        plan(
            &DATABASE.replace("        name: a", "\t\tname: a"),
            "localDir: sql",
        ),
        "validate",
        |_| {},
    ));
    cases.push(plan_case(
        "plan: port 0",
        plan(
            &DATABASE.replace("host: db\n", "host: db\n        port: 0\n"),
            "localDir: sql",
        ),
        "validate",
        |_| {},
    ));
    cases.push(plan_case(
        "plan: a quoted port",
        plan(
            &DATABASE.replace("host: db\n", "host: db\n        port: '5432'\n"),
            "localDir: sql",
        ),
        "validate",
        |_| {},
    ));
    cases.push(plan_case(
        "plan: a host name longer than DNS allows",
        plan(
            &DATABASE.replace("host: db", &format!("host: {}", "h".repeat(300))),
            "localDir: sql",
        ),
        "validate",
        |_| {},
    ));
    cases.push(plan_case(
        "plan: localDir outside the plan's directory",
        plan(DATABASE, "localDir: ../.."),
        "validate",
        |_| {},
    ));
    cases.push(plan_case(
        "plan: localDir is an absolute path elsewhere",
        plan(DATABASE, "localDir: /etc"),
        "validate",
        |_| {},
    ));
    cases.push(plan_case(
        "render: a link in localDir to /etc/passwd",
        plan(DATABASE, "localDir: sql"),
        "render",
        |d| symlink("/etc/passwd", d.path().join("sql/passwd.sql")).unwrap(),
    ));
    cases.push(plan_case(
        "render: a link in localDir that loops back",
        plan(DATABASE, "localDir: sql"),
        "render",
        |d| symlink(".", d.path().join("sql/again")).unwrap(),
    ));
    // sql lint: bad ignore comments, policies and formats (issue 17).
    let lint = &["sql", "lint", "--dir", "{DIR}"];
    cases.push(command(
        "lint: an ignore comment without a reason",
        &[(
            "001.sql",
            "-- kubemigrate:lint-ignore ban-drop-table\nDROP TABLE t;\n",
        )],
        lint,
    ));
    cases.push(command(
        "lint: an ignore comment naming an unknown rule",
        &[(
            "001.sql",
            "DROP TABLE t; -- kubemigrate:lint-ignore ban-drop-tables gone\n",
        )],
        lint,
    ));
    cases.push(command(
        "lint: a misspelt lint directive",
        &[(
            "001.sql",
            "-- kubemigrate:lint-ignor ban-drop-table gone\nDROP TABLE t;\n",
        )],
        lint,
    ));
    cases.push(command(
        "lint: a file that does not split",
        &[("001.sql", "SELECT 'abc;\n")],
        lint,
    ));
    cases.push(command(
        "lint: --rule naming an unknown rule",
        &[("001.sql", "SELECT 1;\n")],
        &[
            "sql",
            "lint",
            "--dir",
            "{DIR}",
            "--rule",
            "ban-drop-tabel=warn",
        ],
    ));
    cases.push(command(
        "lint: --rule with an unknown level",
        &[("001.sql", "SELECT 1;\n")],
        &[
            "sql",
            "lint",
            "--dir",
            "{DIR}",
            "--rule",
            "ban-drop-table=error",
        ],
    ));
    cases.push(command(
        "lint: --postgres-version that is no version",
        &[("001.sql", "SELECT 1;\n")],
        &[
            "sql",
            "lint",
            "--dir",
            "{DIR}",
            "--postgres-version",
            "sixteen",
        ],
    ));
    cases.push(command(
        "lint: -o json with --format sarif",
        &[("001.sql", "SELECT 1;\n")],
        &[
            "sql", "lint", "--dir", "{DIR}", "-o", "json", "--format", "sarif",
        ],
    ));
    cases.push(command(
        "lint: a denied rule fires",
        &[("001.sql", "CREATE INDEX i ON t (a);\n")],
        lint,
    ));
    cases.push(plan_case(
        "plan: an unknown rule in lint.rules",
        plan(DATABASE, "localDir: sql").replace(
            "      sql:",
            "      lint: {rules: {ban-drop-colum: warn}}\n      sql:",
        ),
        "validate",
        |_| {},
    ));
    cases.push(plan_case(
        "plan: lint.postgresVersion that is no version",
        plan(DATABASE, "localDir: sql")
            .replace("spec:\n", "spec:\n  lint: {postgresVersion: latest}\n"),
        "validate",
        |_| {},
    ));
    cases.push(plan_case(
        "plan: a level that is not deny, warn or off",
        plan(DATABASE, "localDir: sql").replace(
            "spec:\n",
            "spec:\n  lint: {rules: {ban-drop-table: error}}\n",
        ),
        "validate",
        |_| {},
    ));
    cases.push(plan_case(
        "plan: a denied lint rule in a localDir file",
        plan(DATABASE, "localDir: sql"),
        "validate",
        |d| std::fs::write(d.path().join("sql/002.sql"), "DROP TABLE t;\n").unwrap(),
    ));
    cases
}

const LONG_HOST_URL: &str = "postgres://u@hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh/d";

#[test]
fn every_bad_input_gets_one_clear_line_and_a_documented_exit_code() {
    let mut table = String::new();
    for c in corpus() {
        let dir = Dir::new(&[]);
        for (name, body) in &c.files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        (c.setup)(&dir);
        let d = dir.arg();
        let args: Vec<String> = match &c.command {
            Some(command) => command.iter().map(|a| a.replace("{DIR}", &d)).collect(),
            None => ["sql", "migrate", "--dir", d.as_str(), "--dry-run"]
                .iter()
                .chain(c.args.iter())
                .map(|a| (*a).to_string())
                .collect(),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = if args.contains(&"--database-url") {
            vec![("P", "pw")]
        } else {
            vec![("DATABASE_URL", NOWHERE), ("P", "pw")]
        };
        let run = within(&args, &env, c.name);
        assert!(
            !run.stderr.contains("panicked"),
            "{}: {}",
            c.name,
            run.stderr
        );
        // The dry run connects last; every case must fail (or warn) before that, so a
        // "cannot connect" line means bad input slipped through.
        let line = run
            .stderr
            .lines()
            .find(|l| l.starts_with("error:") || l.starts_with("warning:"))
            .unwrap_or("")
            .replace(&d, "[DIR]");
        let line = line.chars().take(200).collect::<String>();
        table.push_str(&format!("{:<48} exit {}  {}\n", c.name, run.code, line));
    }
    assert!(corpus().len() >= 30);
    insta::assert_snapshot!(table);
}

/// Runs kubemigrate, failing the case if it is still running after 120 s.
fn within(args: &[&str], env: &[(&str, &str)], name: &str) -> common::Run {
    let mut child = common::km_command(args, env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{name}: still running after 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    common::Run::from_output(child.wait_with_output().unwrap())
}
