//! The output layer. Commands report progress as events (the engine's
//! [`Event`]s, `apply`'s [`crate::apply::ApplyEvent`]s) and end with a typed
//! result, an [`Output`]; this module turns both into output, in one of two
//! formats, and nowhere else does a command decide how to print:
//!
//! - human ([`human`]): progress lines on stdout, warnings and errors on stderr, a
//!   summary at the end; `apply`'s live view on a terminal ([`live`]);
//! - JSON: progress lines move to stderr, and stdout carries one document at the
//!   end, the envelope `{command, ok, exit_code, outcome, error}` with the
//!   result's own fields (docs/json-output.md).

use std::io::Write;

use kubemigrate_sql::events::Event;
use serde::Serialize;

use crate::exit::{Exit, Failure};

pub mod apply;
pub mod fanout;
pub mod human;
pub mod live;
pub mod sql;

pub use human::duration;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people (also accepted as `text`).
    #[value(alias = "text")]
    Human,
    /// One JSON document on stdout at the end.
    Json,
}

/// What a command ends with besides its exit code: the fields it adds to the JSON
/// document, and what it prints for people.
pub trait Output: Serialize {
    /// Prints the summary for people (human output only).
    fn human(&self, _reporter: Reporter) {}
}

/// A result with nothing to add to the exit code.
#[derive(Debug, Serialize)]
pub struct Nothing {}

impl Output for Nothing {}

/// Prints progress, warnings, errors and results in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    format: Format,
}

impl Reporter {
    /// A reporter for this format.
    pub fn new(format: Format) -> Reporter {
        Reporter { format }
    }

    /// Whether stdout carries the JSON document (progress then goes to stderr).
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// A progress line: stdout for people, stderr when stdout carries JSON.
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

    /// Reports one engine event, in words.
    pub fn event(&self, event: Event) {
        match event {
            Event::Warning { message } => self.warn(&message),
            other => {
                if let Some(line) = human::event(&other) {
                    self.line(&line);
                }
            }
        }
    }

    /// Prints an error on stderr, with its detail lines.
    pub fn error(&self, failure: &Failure) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {:#}", failure.error);
        for line in &failure.detail {
            let _ = writeln!(err, "  {line}");
        }
    }

    /// Ends a command: for people, the result's summary and then the error; with
    /// `-o json`, the error on stderr and the one document on stdout.
    pub fn finish<O: Output>(
        &self,
        command: &str,
        outcome: Option<&O>,
        exit: Exit,
        failure: Option<&Failure>,
    ) {
        if !self.json() {
            if let Some(o) = outcome {
                o.human(*self);
            }
            if let Some(f) = failure {
                self.error(f);
            }
            return;
        }
        if let Some(f) = failure {
            self.error(f);
        }
        let mut doc = match outcome.map(serde_json::to_value) {
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

    /// [`Reporter::finish`] for a command whose result is only its exit code.
    pub fn finish_bare(&self, command: &str, exit: Exit, failure: Option<&Failure>) {
        self.finish::<Nothing>(command, None, exit, failure);
    }
}
