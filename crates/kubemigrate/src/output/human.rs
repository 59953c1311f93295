//! Words for people: what each engine event, run report, target result and problem
//! says in human output. The JSON document carries the same fields; a few of these
//! words appear in it too (a target's `reason`), so a program and a person read the
//! same explanation.

use std::time::Duration;

use kubemigrate_sql::events::{Event, FileStatus, Report};

use crate::apply::{Problem, Reason, Status, TargetResult};

/// `1.23s`, `12ms`.
pub fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// The line an engine event prints, if any (warnings go to stderr apart).
pub fn event(event: &Event) -> Option<String> {
    Some(match event {
        Event::Connected { target } => format!("connected to {target}"),
        Event::LockWaiting { holder, waited } => {
            let who = holder
                .as_ref()
                .map_or_else(|| "another session".to_string(), ToString::to_string);
            format!(
                "waiting for the migration lock, held by {who} (waited {})",
                duration(*waited)
            )
        }
        Event::LockAcquired { waited } => {
            format!("got the migration lock after waiting {}", duration(*waited))
        }
        Event::Planned { applied, pending } => {
            format!("{pending} to apply, {applied} already applied")
        }
        Event::WouldApply {
            version,
            transactional,
            controls_transaction,
            statements,
        } => format!(
            "would apply {version} ({statements} statement{}, {})",
            if *statements == 1 { "" } else { "s" },
            if *controls_transaction {
                "as written: it controls its own transaction"
            } else if *transactional {
                "in a transaction"
            } else {
                "no transaction"
            }
        ),
        Event::FileStarted {
            version,
            transactional,
            controls_transaction,
        } => {
            let how = if *controls_transaction {
                " (as written: it controls its own transaction)"
            } else if *transactional {
                ""
            } else {
                " (no transaction)"
            };
            format!("applying {version}{how}")
        }
        Event::Echo { version, text } => format!("  {version}: {text}"),
        Event::Notice { version, message } => format!("  {version}: {message}"),
        Event::FileApplied {
            version,
            duration: d,
        } => format!("applied {version} in {}", duration(*d)),
        Event::FileFailed {
            version,
            duration: d,
        } => format!("failed {version} after {}", duration(*d)),
        Event::FileBaselined { version } => format!("baselined {version}"),
        Event::LockRetry {
            version,
            attempt,
            of,
            wait,
            message,
        } => format!(
            "{version} was rolled back: {message} (SQLSTATE 55P03); retry {attempt} of {of} in {}",
            duration(*wait)
        ),
        _ => return None,
    })
}

/// The last line of `sql migrate` and `sql baseline`: the files by outcome.
pub fn run_summary(report: &Report) -> String {
    let mut parts = Vec::new();
    for status in [
        FileStatus::Applied,
        FileStatus::Baselined,
        FileStatus::Skipped,
        FileStatus::Drifted,
        FileStatus::Pending,
        FileStatus::Failed,
        FileStatus::NotRun,
    ] {
        let n = report.count(status);
        if n > 0 || status == FileStatus::Applied {
            let label = match status {
                FileStatus::Skipped => "already applied",
                FileStatus::NotRun => "not run",
                // `sql adopt --dry-run` never applies: its pending files stay pending.
                FileStatus::Pending
                    if report.dry_run && report.count(FileStatus::Baselined) == 0 =>
                {
                    "would apply"
                }
                other => other.as_str(),
            };
            parts.push(format!("{n} {label}"));
        }
    }
    let what = if report.dry_run { "dry run: " } else { "" };
    format!(
        "{what}{} in {}",
        parts.join(", "),
        duration(Duration::from_millis(report.duration_ms))
    )
}

/// `sql status`'s table: a line per file and per missing row, a footnote, counts.
pub fn status_table(report: &Report) -> Vec<String> {
    let width = report
        .files
        .iter()
        .map(|f| f.version.len())
        .chain(report.missing.iter().map(|m| m.version.len()))
        .max()
        .unwrap_or(7)
        .max(7);
    let mut lines = vec![format!(
        "{:<10} {:<width$}  APPLIED AT",
        "STATUS", "VERSION"
    )];
    for f in &report.files {
        let mut status = f.status.as_str().to_string();
        if f.out_of_order {
            status.push('*');
        }
        let mut line = format!(
            "{status:<10} {:<width$}  {}",
            f.version,
            f.applied_at
                .map_or_else(|| "-".to_string(), |at| at.to_string())
        );
        if f.repeatable {
            line.push_str("  (repeatable)");
        }
        if let Some(e) = &f.error {
            line.push_str(&format!("  ({e})"));
        }
        lines.push(line.trim_end().to_string());
    }
    for m in &report.missing {
        lines.push(format!(
            "{:<10} {:<width$}  {}",
            "missing", m.version, m.applied_at
        ));
    }
    if report.files.iter().any(|f| f.out_of_order) {
        lines.push("* pending, but sorts before files already applied".into());
    }
    if !report.layout.is_empty() {
        lines.push(format!("layout {}: {}", report.layout, report.order));
    }
    lines.push(format!(
        "{} applied, {} pending, {} drifted, {} failed, {} missing",
        report.count(FileStatus::Applied) + report.count(FileStatus::Baselined),
        report.count(FileStatus::Pending),
        report.count(FileStatus::Drifted),
        report.count(FileStatus::Failed),
        report.missing.len()
    ));
    lines
}

/// Why a target did not succeed, in words: `run-migrations exited 3 (a
/// migration's SQL failed)`, `BackoffLimitExceeded: …; run-migrations exited 3`.
pub fn reason(result: &TargetResult) -> Option<String> {
    let exited = |c: &str, code: i32| {
        format!(
            "{c} exited {code}{}",
            result
                .meaning
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )
    };
    Some(match result.reason.as_ref()? {
        Reason::NotSelected => "not in --only".into(),
        Reason::DependencyFailed { dependency } => format!("{dependency} did not succeed"),
        Reason::NeverStarted => "never started: its dependsOn could not be met".into(),
        Reason::NotStarted { signal } => format!("not started: the run was stopped by {signal}"),
        Reason::StoppedBefore { signal, container } => {
            format!("stopped by {signal} before {container} started")
        }
        Reason::StoppedWhile { signal, container } => {
            format!("stopped by {signal} while {container} ran")
        }
        Reason::OutputDidNotEnd { signal } => {
            format!("stopped by {signal}; its output did not end")
        }
        Reason::ContainerNotRun { message } => message.clone(),
        Reason::ContainerExited { container, code } => exited(container, *code),
        Reason::ContainerKilled { container } => format!("{container} was killed by a signal"),
        Reason::NoPodTemplate => "the Job has no pod template".into(),
        Reason::LocalDeadline { timeout, grace } => format!(
            "DeadlineExceeded: still running after the plan's timeout of {} (and {} more for its processes to report)",
            kubemigrate_plan::format_duration(*timeout),
            kubemigrate_plan::format_duration(*grace)
        ),
        Reason::JobFailed { reason, message } => {
            let detail = match (&result.container, result.exit_code) {
                (Some(c), Some(code)) => format!("; {}", exited(c, code)),
                _ => String::new(),
            };
            format!("{reason}: {message}{detail}")
        }
        Reason::TimedOut {
            after,
            job,
            namespace,
        } => format!(
            "timed out waiting after {} (the Job goes on: kubectl get job {job} -n {namespace})",
            duration(*after)
        ),
        #[cfg(feature = "cluster")]
        Reason::CannotHeal { problem, after } => format!(
            "{} (for {}; it cannot heal by itself)",
            problem.describe(),
            duration(*after)
        ),
        Reason::JobDeleted { job, namespace } => {
            format!("the Job {namespace}/{job} was deleted while kubemigrate waited for it")
        }
        Reason::Cluster { message } => message.clone(),
    })
}

/// A problem seen while a target runs, in words.
pub fn problem(problem: &Problem) -> String {
    match problem {
        #[cfg(feature = "cluster")]
        Problem::Cluster(d) => d.describe(),
        Problem::StillWaiting { last_line } => {
            format!("wait-for-postgres is still waiting: {last_line}")
        }
        Problem::LogsNotSaved { dir, error } => format!("cannot save logs under {dir}: {error}"),
    }
}

/// The summary table of a run, one line per target.
pub fn summary_table(results: &[TargetResult]) -> Vec<String> {
    let width = results
        .iter()
        .map(|r| r.target.len())
        .max()
        .unwrap_or(0)
        .max("TARGET".len());
    let mut lines = vec![format!(
        "{:<width$}  {:<12}  {:>8}  DETAIL",
        "TARGET", "STATUS", "DURATION"
    )];
    for r in results {
        let took = match r.status {
            Status::Skipped | Status::NotSelected => "-".to_string(),
            _ => duration(r.duration),
        };
        lines.push(
            format!(
                "{:<width$}  {:<12}  {:>8}  {}",
                r.target,
                r.status.word(),
                took,
                reason(r).unwrap_or_default()
            )
            .trim_end()
            .to_string(),
        );
    }
    lines
}

/// The failed targets' last log lines, under the table.
pub fn failure_details(results: &[TargetResult]) -> Vec<String> {
    let mut out = Vec::new();
    for r in results.iter().filter(|r| !r.last_lines.is_empty()) {
        out.push(format!(
            "last lines of {}/{}:",
            r.target,
            r.container.as_deref().unwrap_or("?")
        ));
        out.extend(r.last_lines.iter().map(|l| format!("  {l}")));
    }
    out
}

/// The count line under the table.
pub fn counts(results: &[TargetResult], took: Duration) -> String {
    let n = |s: Status| results.iter().filter(|r| r.status == s).count();
    let interrupted = match n(Status::Interrupted) {
        0 => String::new(),
        k => format!(", {k} interrupted"),
    };
    format!(
        "{} succeeded, {} failed, {} skipped{interrupted} in {}",
        n(Status::Succeeded),
        n(Status::Failed),
        n(Status::Skipped),
        duration(took)
    )
}

/// The note `import terraform-vars` ends with: which environment variables to export
/// for the plan's passwords, and that the file's values were not copied.
pub fn password_note(file: &str, passwords: &[kubemigrate_import::Password]) -> Vec<String> {
    let mut lines = vec![
        "note: the plan reads the database passwords from the environment; export them before `kubemigrate render`:"
            .to_string(),
    ];
    for p in passwords {
        let how = if p.set {
            format!("set in {file}; its value is not copied")
        } else {
            format!("not set in {file}")
        };
        lines.push(format!(
            "  {:<27}the value of {} ({how})",
            p.env, p.variable
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(target: &str, status: Status, reason: Option<Reason>) -> TargetResult {
        TargetResult {
            reason,
            container: Some("run-migrations".into()),
            duration: Duration::from_millis(1500),
            last_lines: vec!["ERROR: boom".into()],
            ..TargetResult::new(target, format!("{target}-migrations-x"), status)
        }
    }

    #[test]
    fn the_table_lines_up_and_skipped_targets_have_no_duration() {
        let lines = summary_table(&[
            TargetResult {
                exit_code: Some(3),
                meaning: Some("a migration's SQL failed"),
                ..result(
                    "control-plane",
                    Status::Failed,
                    Some(Reason::ContainerExited {
                        container: "run-migrations".into(),
                        code: 3,
                    }),
                )
            },
            result(
                "supabase",
                Status::Skipped,
                Some(Reason::DependencyFailed {
                    dependency: "control-plane".into(),
                }),
            ),
        ]);
        assert_eq!(
            lines,
            [
                "TARGET         STATUS        DURATION  DETAIL",
                "control-plane  failed           1.50s  run-migrations exited 3 (a migration's SQL failed)",
                "supabase       skipped              -  control-plane did not succeed",
            ]
        );
        assert_eq!(
            failure_details(&[result("a", Status::Failed, None)]),
            ["last lines of a/run-migrations:", "  ERROR: boom"]
        );
    }

    #[test]
    fn a_failed_job_names_its_condition_and_the_failed_container() {
        let r = TargetResult {
            exit_code: Some(4),
            meaning: Some("needs a person: drift, out of order, or a failed no-transaction file"),
            ..result(
                "a",
                Status::Failed,
                Some(Reason::JobFailed {
                    reason: "PodFailurePolicy".into(),
                    message: "Container run-migrations for pod x failed".into(),
                }),
            )
        };
        assert_eq!(
            reason(&r).as_deref(),
            Some(
                "PodFailurePolicy: Container run-migrations for pod x failed; run-migrations exited 4 (needs a person: drift, out of order, or a failed no-transaction file)"
            )
        );
    }
}
