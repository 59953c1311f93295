//! Shows a run: a line per target event and per log line (prefixed with the
//! target's name), then a summary table, or one JSON document at the end. Progress
//! goes to stdout for people and to stderr when stdout carries JSON.

use std::io::Write as _;

use tokio::sync::mpsc::UnboundedReceiver;

use super::{ApplyEvent, Status, TargetResult};
use crate::reporter::{Reporter, duration};

/// Prints events until the run ends (every sender dropped).
pub async fn print_events(mut rx: UnboundedReceiver<ApplyEvent>, reporter: Reporter, width: usize) {
    while let Some(event) = rx.recv().await {
        match event {
            ApplyEvent::Started { target } => {
                reporter.line(&format!("{target:<width$} | started"));
            }
            ApplyEvent::Container { target, container } => {
                reporter.line(&format!("{target:<width$} | -- {container}"));
            }
            ApplyEvent::Log {
                target,
                container,
                line,
            } => {
                // The init containers' lines say which container they come from.
                if container == "run-migrations" {
                    reporter.line(&format!("{target:<width$} | {line}"));
                } else {
                    reporter.line(&format!("{target:<width$} | [{container}] {line}"));
                }
            }
            ApplyEvent::Problem { target, text } => {
                reporter.line(&format!("{target:<width$} | problem: {text}"));
            }
            ApplyEvent::Finished(r) => {
                let mut text = format!("{:<width$} | {}", r.target, r.status.word());
                if r.status != Status::Skipped {
                    text.push_str(&format!(" in {}", duration(r.duration)));
                }
                if let Some(reason) = &r.reason {
                    text.push_str(&format!(": {reason}"));
                }
                reporter.line(&text);
            }
        }
    }
}

/// The summary table, one line per target.
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
                r.reason.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_string(),
        );
    }
    lines
}

/// Prints the failed targets' last log lines under the table.
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

/// Writes a JSON document on stdout (a closed pipe is not an error).
pub fn print_json(doc: &serde_json::Value) {
    let text = serde_json::to_string_pretty(doc).unwrap_or_default();
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn result(target: &str, status: Status, reason: Option<&str>) -> TargetResult {
        TargetResult {
            reason: reason.map(Into::into),
            container: Some("run-migrations".into()),
            duration: Duration::from_millis(1500),
            last_lines: vec!["ERROR: boom".into()],
            ..TargetResult::new(target, format!("{target}-migrations-x"), status)
        }
    }

    #[test]
    fn the_table_lines_up_and_skipped_targets_have_no_duration() {
        let lines = summary_table(&[
            result(
                "control-plane",
                Status::Failed,
                Some("run-migrations exited 3"),
            ),
            result(
                "supabase",
                Status::Skipped,
                Some("control-plane did not succeed"),
            ),
        ]);
        assert_eq!(
            lines,
            [
                "TARGET         STATUS        DURATION  DETAIL",
                "control-plane  failed           1.50s  run-migrations exited 3",
                "supabase       skipped              -  control-plane did not succeed",
            ]
        );
        assert_eq!(
            failure_details(&[result("a", Status::Failed, None)]),
            ["last lines of a/run-migrations:", "  ERROR: boom"]
        );
    }
}
