//! Shared helpers for the CLI tests: one throwaway PostgreSQL per test binary, a
//! fresh database per test, and a way to run the real `kubemigrate` binary.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kubemigrate_localpg::LocalPostgres;

pub mod kube;

/// The server shared by the tests of one binary. It is never dropped: the localpg
/// supervisor stops it and deletes its data when the test process exits.
pub fn pg() -> &'static LocalPostgres {
    static PG: OnceLock<LocalPostgres> = OnceLock::new();
    PG.get_or_init(|| LocalPostgres::start().expect("start a throwaway PostgreSQL"))
}

/// A database of its own for one test.
pub struct Db {
    pub name: String,
    pub url: String,
}

impl Db {
    pub fn new() -> Db {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        psql(&pg().url("postgres"), &format!("CREATE DATABASE {name}"));
        Db {
            url: pg().url(&name),
            name,
        }
    }

    /// Runs SQL with psql and returns its unaligned, tuples-only output.
    pub fn sql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// The rows of the history as `version|kind|success|statement` lines.
    pub fn history(&self) -> Vec<String> {
        let out = self.sql(
            "SELECT version || '|' || kind || '|' || success || '|' || coalesce(statement::text, '') \
             FROM kubemigrate_history ORDER BY id",
        );
        out.lines().map(str::to_string).collect()
    }

    /// Runs kubemigrate with this database as DATABASE_URL.
    pub fn km(&self, args: &[&str]) -> Run {
        km(args, &[("DATABASE_URL", self.url.as_str())])
    }

    /// Starts kubemigrate without waiting.
    pub fn spawn(&self, args: &[&str]) -> Child {
        km_command(args, &[("DATABASE_URL", self.url.as_str())])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed on {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

pub fn km_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubemigrate"));
    cmd.args(args).env("HOSTNAME", "test-runner");
    for var in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGPASSWORD",
        "PGSSLMODE",
        "PGAPPNAME",
        "DB_HOST",
        "DB_PORT",
        "DB_DATABASE",
        "DB_USER",
        "DB_PASSWORD",
        "DB_SCHEMA",
        "PGSSLROOTCERT",
        "PGCONNECT_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn km(args: &[&str], env: &[(&str, &str)]) -> Run {
    Run::from_output(km_command(args, env).output().unwrap())
}

/// A directory of migration files.
pub struct Dir {
    pub dir: tempfile::TempDir,
}

impl Dir {
    pub fn new(files: &[(&str, &str)]) -> Dir {
        let d = Dir {
            dir: tempfile::tempdir().unwrap(),
        };
        for (name, body) in files {
            d.write(name, body);
        }
        d
    }

    pub fn write(&self, name: &str, body: &str) {
        std::fs::write(self.dir.path().join(name), body).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn arg(&self) -> String {
        self.dir.path().display().to_string()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
