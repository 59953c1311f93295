//! `apply`'s and `demo`'s results: the summary table for people, and the targets
//! (with the Terraform module's outputs) in the JSON document.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Output, Reporter, human};
use crate::apply::session::Outcome;
use crate::apply::{Status, TargetResult};

/// A target's result in the JSON document.
#[derive(Debug, Serialize)]
pub struct TargetJson<'a> {
    /// The target.
    pub target: &'a str,
    /// Its Job.
    pub job: &'a str,
    /// How it ended.
    pub status: Status,
    /// Why, in words, when it did not succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, as a stable code (`job_failed`, `dependency_failed`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<&'static str>,
    /// The failed container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<&'a str>,
    /// Its exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What that code means, when the container is kubemigrate's runner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_meaning: Option<&'static str>,
    /// How long it ran.
    pub duration_ms: u64,
    /// The failed container's last lines.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub last_lines: &'a [String],
    /// Where its logs were saved (cluster runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_path: Option<&'a str>,
    /// A fan-out target's databases, by name, as its runners reported them.
    #[serde(skip_serializing_if = "<[crate::fanout::DbLine]>::is_empty")]
    pub databases: &'a [crate::fanout::DbLine],
}

impl<'a> TargetJson<'a> {
    /// The JSON view of a result.
    pub fn of(r: &'a TargetResult) -> TargetJson<'a> {
        TargetJson {
            target: &r.target,
            job: &r.job,
            status: r.status,
            reason: human::reason(r),
            reason_code: r.reason.as_ref().map(|x| x.code()),
            container: r.container.as_deref(),
            exit_code: r.exit_code,
            exit_meaning: r.meaning,
            duration_ms: millis(r.duration),
            last_lines: &r.last_lines,
            log_path: r.log_dir.as_deref(),
            databases: &r.databases,
        }
    }
}

/// Milliseconds, for JSON.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One Job in the module's `migration_jobs_summary` output.
#[derive(Debug, Serialize)]
pub struct JobSummary {
    /// The Job.
    pub job_name: String,
    /// Its namespace.
    pub namespace: String,
    /// `succeeded`, `failed`, … (`created` with `--no-wait`).
    pub status: String,
}

/// `apply`'s result, on this machine or on a cluster.
#[derive(Debug, Serialize)]
pub struct ApplyReport<'a> {
    /// The plan's name.
    pub plan: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// The run id.
    pub run_id: &'a str,
    /// A run on this machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<bool>,
    /// On a cluster: whether `apply` waited for the Jobs (not with `--no-wait`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
    /// How long the run took (on this machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Each target's result.
    pub targets: Vec<TargetJson<'a>>,
    /// The module's `migration_jobs_summary` output (on a cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_jobs_summary: Option<BTreeMap<String, JobSummary>>,
    /// The module's `helpful_commands` output (on a cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helpful_commands: Option<&'a BTreeMap<String, String>>,
    /// The run, for the summary table (none with `--no-wait`).
    #[serde(skip)]
    pub outcome: Option<&'a Outcome>,
}

impl Output for ApplyReport<'_> {
    fn human(&self, reporter: Reporter) {
        if let Some(o) = self.outcome {
            summary(o, reporter);
        }
        if self.outcome.is_none()
            && let Some(jobs) = &self.migration_jobs_summary
        {
            for (target, s) in jobs {
                reporter.line(&format!("{target}: Job {}", s.job_name));
            }
        }
        if let Some(commands) = self.helpful_commands {
            reporter.line("\nhelpful commands:");
            for (k, v) in commands {
                reporter.line(&format!("  {k}: {v}"));
            }
        }
    }
}

/// The summary table, the failed targets' last lines, and a count.
pub fn summary(outcome: &Outcome, reporter: Reporter) {
    reporter.line("");
    for line in human::summary_table(&outcome.results) {
        reporter.line(&line);
    }
    for r in outcome.results.iter().filter(|r| !r.databases.is_empty()) {
        reporter.line(&format!(
            "{}: {}",
            r.target,
            super::fanout::grouped(&r.databases)
        ));
    }
    for line in human::failure_details(&outcome.results) {
        reporter.line(&line);
    }
    reporter.line(&human::counts(&outcome.results, outcome.duration));
}

/// One run of `demo`.
#[derive(Debug, Serialize)]
pub struct DemoRun<'a> {
    /// The run id.
    pub run_id: &'a str,
    /// Its exit code.
    pub exit_code: u8,
    /// Each target's result.
    pub targets: Vec<TargetJson<'a>>,
}

/// `demo`'s result: its runs (the tables were printed as each ended).
#[derive(Debug, Serialize)]
pub struct DemoReport<'a> {
    /// The runs, first and second.
    pub runs: Vec<DemoRun<'a>>,
}

impl Output for DemoReport<'_> {}
