//! A runner stopped by SIGTERM, and a runner cut off from its server without a
//! word: in both, the file being applied is rolled back and the migration lock is
//! free again for the next runner, soon, not hours later.
//!
//! The cut-off test drops the runner's packets with iptables on the loopback
//! interface, so it needs root, as CI has.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Db, Dir, Run, wait_until};

/// 001 makes a sequence; 002 sleeps `seconds` on its first attempt only (a
/// sequence is not rolled back with the transaction), then inserts.
fn sleepy(seconds: u32) -> Dir {
    Dir::new(&[
        (
            "001_t.sql",
            "CREATE TABLE t (id int); CREATE SEQUENCE attempt;\n",
        ),
        (
            "002_slow.sql",
            &format!(
                "INSERT INTO t VALUES (2);\nSELECT pg_sleep(CASE WHEN nextval('attempt') = 1 THEN {seconds} ELSE 0 END);\n"
            ),
        ),
    ])
}

fn sleeping(db: &Db) -> bool {
    db.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND query LIKE '%pg_sleep%' AND state = 'active' AND pid <> pg_backend_pid()",
    ) == "1"
}

fn sessions(db: &Db) -> String {
    db.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'kubemigrate'",
    )
}

fn advisory_locks(db: &Db) -> String {
    db.sql(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
}

#[test]
fn sigterm_stops_a_runner_at_once_rolls_its_file_back_and_frees_the_lock() {
    let db = Db::new();
    let dir = sleepy(600);
    let child = db.spawn(&["sql", "migrate", "--dir", &dir.arg()]);
    assert!(wait_until(Duration::from_secs(30), || sleeping(&db)));
    let start = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let run = Run::from_output(child.wait_with_output().unwrap()).expect(143);
    assert!(start.elapsed() < Duration::from_secs(5), "not at once");
    assert!(
        run.stderr
            .contains("warning: stopped by SIGTERM: the file being applied is rolled back"),
        "{}",
        run.stderr
    );
    // The server notices the closed connections within a second.
    assert!(
        wait_until(Duration::from_secs(5), || sessions(&db) == "0"
            && advisory_locks(&db) == "0"),
        "a session or the lock outlived the runner"
    );
    assert_eq!(db.history(), ["001_t.sql|sql|true|"]);
    assert_eq!(db.sql("SELECT count(*) FROM t"), "0", "002 was rolled back");
    // The next runner applies 002, once.
    db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
    assert_eq!(db.sql("SELECT string_agg(id::text, ',') FROM t"), "2");
}

/// iptables rules that drop a TCP port's packets on the loopback interface, both
/// ways; deleted when dropped.
struct Blackhole(Vec<Vec<String>>);

impl Blackhole {
    fn ports(ports: &[String]) -> Blackhole {
        let mut rules = Vec::new();
        for port in ports {
            for dir in ["--sport", "--dport"] {
                let rule: Vec<String> = ["INPUT", "-i", "lo", "-p", "tcp", dir, port, "-j", "DROP"]
                    .iter()
                    .map(|s| (*s).to_string())
                    .collect();
                let ok = Command::new("iptables")
                    .arg("-I")
                    .args(&rule)
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "iptables -I {rule:?} failed (this test needs root)");
                rules.push(rule);
            }
        }
        Blackhole(rules)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        for rule in &self.0 {
            let _ = Command::new("iptables").arg("-D").args(rule).status();
        }
    }
}

#[test]
fn a_runner_cut_off_from_its_server_loses_the_lock_and_fails_within_a_minute() {
    let db = Db::new();
    let dir = sleepy(600);
    let child = db.spawn(&["sql", "migrate", "--dir", &dir.arg()]);
    assert!(wait_until(Duration::from_secs(30), || sleeping(&db)));
    // Both of the runner's connections (the lock's and the files') vanish: no
    // packet in either direction, no FIN, no RST.
    let ports: Vec<String> = db
        .sql(
            "SELECT client_port FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'kubemigrate'",
        )
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ports.len(), 2, "{ports:?}");
    let start = Instant::now();
    let blackhole = Blackhole::ports(&ports);
    // The server's keepalives give up on the runner: its sessions end, its
    // transaction is rolled back, its lock is free.
    let gone = wait_until(Duration::from_secs(60), || sessions(&db) == "0");
    assert!(
        gone,
        "the server kept the runner's sessions: {}",
        db.sql(
            "SELECT pid, state, wait_event, backend_start, left(query, 40), client_port \
             FROM pg_stat_activity WHERE datname = current_database()"
        )
    );
    assert_eq!(advisory_locks(&db), "0");
    let server_side = start.elapsed();
    // The runner's own keepalives give up on the server: it fails, exit 6.
    let run = Run::from_output(child.wait_with_output().unwrap()).expect(6);
    let client_side = start.elapsed();
    drop(blackhole);
    assert!(
        server_side < Duration::from_secs(60) && client_side < Duration::from_secs(60),
        "server {server_side:?}, client {client_side:?}"
    );
    assert!(run.stderr.contains("error:"), "{}", run.stderr);
    assert_eq!(db.history(), ["001_t.sql|sql|true|"]);
    db.km(&["sql", "migrate", "--dir", &dir.arg()]).expect(0);
    assert_eq!(db.sql("SELECT string_agg(id::text, ',') FROM t"), "2");
}
