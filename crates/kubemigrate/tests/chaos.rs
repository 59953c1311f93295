//! Fault injection: `sql migrate` killed with SIGKILL at 50 pseudo-random moments over a
//! corpus of transactional and no-transaction files. After each kill the database holds
//! no half-applied transactional file and the history matches the schema; a person's
//! repair of an interrupted no-transaction file and a rerun finish the job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::time::{Duration, Instant};

use common::{Db, Dir};

const FILES: usize = 24;

fn corpus() -> Dir {
    let dir = Dir::new(&[]);
    for i in 0..FILES {
        let name = format!("{i:03}.sql");
        let body = if i % 4 == 3 {
            format!(
                "-- kubemigrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t{p}_id ON t{p} (id);\nSELECT pg_sleep(0.01);\n",
                p = i - 1
            )
        } else {
            format!(
                "CREATE TABLE t{i} (id int);\nINSERT INTO t{i} VALUES (1), (2);\nSELECT pg_sleep(0.01);\n"
            )
        };
        dir.write(&name, &body);
    }
    dir
}

/// Checks the invariants; returns the versions of interrupted no-transaction files.
fn check(db: &Db) -> Vec<String> {
    let rows = if db.sql("SELECT to_regclass('kubemigrate_history') IS NOT NULL") == "t" {
        db.history()
    } else {
        Vec::new()
    };
    // Every table t<N> with its row count, and every valid index, in two queries.
    let tables = db.sql(
        "SELECT string_agg(relname || '=' || (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I', relname), false, true, '')))[1]::text, ',') \
         FROM pg_class WHERE relkind = 'r' AND relname ~ '^t[0-9]+$'",
    );
    let valid = db.sql(
        "SELECT string_agg(c.relname, ',') FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indisvalid AND c.relname ~ '^t[0-9]+_id$'",
    );
    let count_of = |table: &str| {
        tables
            .split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{table}=")))
            .unwrap_or("-1")
            .to_string()
    };
    let mut interrupted = Vec::new();
    for i in 0..FILES {
        let version = format!("{i:03}.sql");
        let row = rows.iter().find(|r| r.starts_with(&format!("{version}|")));
        let success = row.is_some_and(|r| r.contains("|true|"));
        if i % 4 == 3 {
            let index = format!("t{}_id", i - 1);
            if success {
                assert!(
                    valid.split(',').any(|v| v == index),
                    "{version} is recorded but {index} is not valid"
                );
            } else if row.is_some() {
                interrupted.push(version);
            }
        } else {
            let table = format!("t{i}");
            if success {
                assert_eq!(
                    count_of(&table),
                    "2",
                    "{version} is recorded but {table} is not whole"
                );
            } else {
                assert_eq!(
                    count_of(&table),
                    "-1",
                    "{version} is not recorded but {table} exists: half applied"
                );
                assert!(row.is_none(), "a transactional file left a row: {row:?}");
            }
        }
    }
    interrupted
}

#[test]
fn fifty_kills_never_leave_a_half_applied_file_and_a_rerun_finishes() {
    let dir = corpus();
    // The moments spread over one whole run, as long as a run takes here and now: a
    // fixed span would miss the runs of a faster engine or hit only the start-up of a
    // loaded machine's. 10 % more, so that some kills land after a finished run.
    let span_ms = {
        let db = Db::new();
        let start = Instant::now();
        db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
        u64::try_from(start.elapsed().as_millis()).unwrap().max(50) * 11 / 10
    };
    // A fixed seed keeps the sequence of moments reproducible.
    let mut seed: u64 = 0x5eed_1234_abcd_0042;
    let mut kills_inside_files = 0;
    for round in 0..50 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis((seed >> 33) % span_ms);
        let db = Db::new();
        let mut child = db.spawn(&["sql", "migrate", "--dir", &dir.arg()]);
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        child.wait().unwrap();
        // The server rolls back the dead runner's transaction as soon as it notices.
        assert!(common::wait_until(Duration::from_secs(15), || {
            db.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'kubemigrate'") == "0"
        }));
        let interrupted = check(&db);
        if !finished && db.sql("SELECT to_regclass('kubemigrate_history') IS NOT NULL") == "t" {
            kills_inside_files += 1;
        }
        for version in &interrupted {
            // What a person does: look, drop the invalid index the killed build left,
            // clear the record.
            let run = db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(4);
            assert!(
                run.stderr.contains(&format!("{version}: was interrupted")),
                "round {round}: {run:?}"
            );
            db.sql("DO $$ DECLARE r record; BEGIN FOR r IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid LOOP EXECUTE format('DROP INDEX %I', r.relname); END LOOP; END $$");
            db.km(&["sql", "repair", "--dir", &dir.arg(), "--version", version])
                .expect(0);
        }
        db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
        assert!(check(&db).is_empty());
        assert_eq!(
            db.sql("SELECT count(*) FROM kubemigrate_history WHERE success"),
            FILES.to_string()
        );
    }
    eprintln!("{kills_inside_files} of 50 kills hit a run in progress (moments over {span_ms} ms)");
    // The moments must actually hit runs in progress, not only before or after them.
    assert!(
        kills_inside_files >= 20,
        "only {kills_inside_files} kills hit a run in progress (moments spread over {span_ms} ms)"
    );
}
