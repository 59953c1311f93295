//! The bad-input corpus: every case gives one clear line naming file, line and what is
//! wrong, a documented exit code, and never a panic. No database is needed: bad input
//! is found before kubemigrate connects (the URL points at a closed port).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::symlink;

use common::Dir;

const NOWHERE: &str = "postgres://nobody@127.0.0.1:1/nothing?connect_timeout=1";

struct Case {
    name: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    setup: fn(&Dir),
    args: Vec<&'static str>,
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
    }
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
        case("empty directory (nothing to do)", &[]),
    ];
    cases.push(Case {
        name: "not UTF-8",
        files: vec![("001.sql", b"SELECT 1;\nSELECT '\xff\xfe';\n".to_vec())],
        setup: |_| {},
        args: vec![],
    });
    cases.push(Case {
        name: "NUL byte",
        files: vec![("001.sql", b"SELECT 1;\nSELECT '\0';\n".to_vec())],
        setup: |_| {},
        args: vec![],
    });
    let mut huge = b"SELECT '".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 20 << 20));
    cases.push(Case {
        name: "a huge single line (20 MiB, unterminated)",
        files: vec![("001.sql", huge)],
        setup: |_| {},
        args: vec![],
    });
    cases.push(Case {
        name: "a directory where a file should be",
        files: vec![],
        setup: |d| std::fs::create_dir(d.path().join("001.sql")).unwrap(),
        args: vec![],
    });
    cases.push(Case {
        name: "unreadable file (dangling symlink)",
        files: vec![],
        setup: |d| symlink(d.path().join("gone.sql.orig"), d.path().join("001.sql")).unwrap(),
        args: vec![],
    });
    cases.push(Case {
        name: "symlink loop",
        files: vec![],
        setup: |d| {
            symlink(d.path().join("b.sql"), d.path().join("a.sql")).unwrap();
            symlink(d.path().join("a.sql"), d.path().join("b.sql")).unwrap();
        },
        args: vec![],
    });
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
    ] {
        let mut c = case(name, &[("001.sql", "SELECT 1;")]);
        c.args = args;
        cases.push(c);
    }
    cases
}

#[test]
fn every_bad_input_gets_one_clear_line_and_a_documented_exit_code() {
    let mut table = String::new();
    for c in corpus() {
        let dir = Dir::new(&[]);
        for (name, body) in &c.files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        (c.setup)(&dir);
        let d = dir.arg();
        let mut args = vec!["sql", "migrate", "--dir", d.as_str(), "--dry-run"];
        args.extend(c.args.iter().copied());
        let env = if c.args.contains(&"--database-url") {
            vec![]
        } else {
            vec![("DATABASE_URL", NOWHERE)]
        };
        let run = common::km(&args, &env);
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
