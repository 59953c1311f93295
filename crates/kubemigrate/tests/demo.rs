//! `kubemigrate demo` end to end: `npm ci` of the example db-migrate project (when
//! its node_modules is missing, as in a fresh clone), both runs of the example plan
//! on a throwaway PostgreSQL, and the history in each database afterwards (read
//! while `--keep` holds the server up).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::km_command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_demo_runs_the_example_plan_twice_and_nothing_runs_twice() {
    let mut child = km_command(&["demo", "--keep"], &[])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut out = String::new();
    let start = Instant::now();
    // Read until the demo says the server stays up.
    while let Some(Ok(line)) = lines.next() {
        out.push_str(&line);
        out.push('\n');
        if line.starts_with("  password: ") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "{out}");
    }
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("  password: "))
        .unwrap_or_else(|| {
            let _ = child.kill();
            let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
            panic!("the demo did not keep the server up:\n{out}\n{err}")
        })
        .to_string();
    let url = |target: &str| -> String {
        let kept = &out[out.find("PostgreSQL keeps running").unwrap()..];
        let masked = kept
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(target).map(str::trim))
            .unwrap();
        masked.replace("****", &password)
    };

    // Both runs, as the summaries say.
    let summaries: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("succeeded, ") && l.contains(" failed, "))
        .collect();
    assert_eq!(summaries.len(), 2, "{out}");
    assert!(
        summaries
            .iter()
            .all(|s| s.starts_with("3 succeeded, 0 failed, 0 skipped")),
        "{out}"
    );
    assert!(out.contains("supabase      | 5 applied in"), "{out}");
    assert!(
        out.contains("supabase      | 0 applied, 5 already applied"),
        "{out}"
    );
    assert!(
        out.contains("components-v2 | 0 applied, 5 already applied"),
        "{out}"
    );
    assert!(
        out.contains("control-plane | [INFO] No migrations to run"),
        "{out}"
    );
    // components-v2 depends on control-plane: it starts after it succeeded.
    let first_run = &out[..out.find("second run").unwrap()];
    assert!(
        first_run.find("control-plane | succeeded").unwrap()
            < first_run.find("components-v2 | started").unwrap(),
        "{out}"
    );

    // The history in each database.
    let q = |target: &str, sql: &str| common::psql(&url(target), sql);
    assert_eq!(
        q(
            "supabase",
            "SELECT string_agg(version, ',' ORDER BY id) FROM kubemigrate_history WHERE success"
        ),
        "V001__roles_and_auth.sql,V002__organizations_and_boms.sql,V003__row_level_security.sql,V004__bom_line_items_mpn_idx.sql,V005__seed.sql"
    );
    assert_eq!(
        q("components-v2", "SELECT count(*) FROM kubemigrate_history"),
        "5"
    );
    // The db-migrate project ran twice under the lock, both runs recorded; its own
    // table holds its four migrations, applied once.
    assert_eq!(
        q(
            "control-plane",
            "SELECT count(*) FROM kubemigrate_history WHERE kind = 'command' AND success"
        ),
        "2"
    );
    assert_eq!(
        q(
            "control-plane",
            "SELECT count(*) FROM tenant_management.migrations"
        ),
        "4"
    );
    assert_eq!(
        q(
            "control-plane",
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'tenant_management' AND table_name = 'tenants'"
        ),
        "1"
    );

    // Ctrl-C (SIGINT, sent with kill(1)) stops and removes it.
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", rest.join("\n"));
    assert!(
        rest.iter()
            .any(|l| l.contains("the throwaway PostgreSQL is gone")),
        "{rest:?}"
    );
}
