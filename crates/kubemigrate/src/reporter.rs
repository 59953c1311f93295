//! Reporters: turn engine events and reports into output.
//!
//! Human output goes to stdout, warnings and errors to stderr. With `-o json` the
//! only thing on stdout is the final JSON document; progress lines move to stderr,
//! so a program can read stdout and a person can still follow the log.

use std::io::Write;
use std::time::Duration;

use kubemigrate_sql::events::{Event, FileStatus, Report};

use crate::exit::{Exit, Failure};

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people (also accepted as `text`).
    #[value(alias = "text")]
    Human,
    /// One JSON document on stdout at the end.
    Json,
}

/// Prints events and reports.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    format: Format,
}

/// `1.234s`, `12ms`.
pub fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

impl Reporter {
    /// A reporter for this format.
    pub fn new(format: Format) -> Reporter {
        Reporter { format }
    }

    /// Whether the final output is JSON.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// A progress line: stdout for humans, stderr when stdout carries JSON.
    pub fn line(&self, text: &str) {
        if self.json() {
            eprintln!("{text}");
        } else {
            let mut out = std::io::stdout().lock();
            // A closed stdout (`| head`) must not turn into a panic.
            let _ = writeln!(out, "{text}");
        }
    }

    /// A warning, on stderr.
    pub fn warn(&self, text: &str) {
        eprintln!("warning: {text}");
    }

    /// Reports one engine event.
    pub fn event(&self, event: Event) {
        match event {
            Event::Connected { target } => self.line(&format!("connected to {target}")),
            Event::LockWaiting { holder, waited } => {
                let who = holder.map_or_else(|| "another session".to_string(), |h| h.to_string());
                self.line(&format!(
                    "waiting for the migration lock, held by {who} (waited {})",
                    duration(waited)
                ));
            }
            Event::LockAcquired { waited } => {
                self.line(&format!(
                    "got the migration lock after waiting {}",
                    duration(waited)
                ));
            }
            Event::Warning { message } => self.warn(&message),
            Event::Planned { applied, pending } => {
                self.line(&format!("{pending} to apply, {applied} already applied"));
            }
            Event::WouldApply {
                version,
                transactional,
                controls_transaction,
                statements,
            } => self.line(&format!(
                "would apply {version} ({statements} statement{}, {})",
                if statements == 1 { "" } else { "s" },
                if controls_transaction {
                    "as written: it controls its own transaction"
                } else if transactional {
                    "in a transaction"
                } else {
                    "no transaction"
                }
            )),
            Event::FileStarted {
                version,
                transactional,
                controls_transaction,
            } => {
                let how = if controls_transaction {
                    " (as written: it controls its own transaction)"
                } else if transactional {
                    ""
                } else {
                    " (no transaction)"
                };
                self.line(&format!("applying {version}{how}"));
            }
            Event::Echo { version, text } => self.line(&format!("  {version}: {text}")),
            Event::Notice { version, message } => self.line(&format!("  {version}: {message}")),
            Event::FileApplied {
                version,
                duration: d,
            } => {
                self.line(&format!("applied {version} in {}", duration(d)));
            }
            Event::FileFailed {
                version,
                duration: d,
            } => {
                self.line(&format!("failed {version} after {}", duration(d)));
            }
            Event::FileBaselined { version } => self.line(&format!("baselined {version}")),
            _ => {}
        }
    }

    /// Prints an error (stderr, always human).
    pub fn error(&self, failure: &Failure) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {:#}", failure.error);
        for line in &failure.detail {
            let _ = writeln!(err, "  {line}");
        }
    }

    /// Prints the end of a run: a summary line for humans, or the JSON document.
    pub fn finish(
        &self,
        command: &str,
        report: Option<&Report>,
        exit: Exit,
        failure: Option<&Failure>,
    ) {
        if let Some(f) = failure {
            self.error(f);
        }
        if self.json() {
            let mut doc = match report.map(serde_json::to_value) {
                Some(Ok(serde_json::Value::Object(map))) => map,
                _ => serde_json::Map::new(),
            };
            doc.insert("command".into(), command.into());
            doc.insert("ok".into(), (exit.code() == 0).into());
            doc.insert("exit_code".into(), exit.code().into());
            doc.insert("outcome".into(), exit.name().into());
            if let Some(f) = failure {
                doc.insert("error".into(), format!("{:#}", f.error).into());
            }
            let text =
                serde_json::to_string_pretty(&serde_json::Value::Object(doc)).unwrap_or_default();
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }

    /// The human summary of a migrate or baseline report.
    pub fn summary(&self, report: &Report) {
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
                    FileStatus::Pending if report.dry_run => "would apply",
                    other => other.as_str(),
                };
                parts.push(format!("{n} {label}"));
            }
        }
        let what = if report.dry_run { "dry run: " } else { "" };
        self.line(&format!(
            "{what}{} in {}",
            parts.join(", "),
            duration(Duration::from_millis(report.duration_ms))
        ));
    }
}
