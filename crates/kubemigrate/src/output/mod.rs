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

    /// The whole JSON document (envelope included, pretty, keys sorted at every
    /// level), written straight from the typed result, for results too large to go
    /// through a `serde_json::Value` quickly (`sql lint` over thousands of files).
    /// `None`: [`Reporter::finish`] builds it through a `Value`, as for every other
    /// result. Debug builds (the tests) check that both give the same bytes.
    fn json_document(&self, _envelope: &Envelope<'_>) -> Option<Vec<u8>> {
        None
    }
}

/// The fields [`Reporter::finish`] adds to every JSON document.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// The command, e.g. `sql lint`.
    pub command: &'a str,
    /// Whether the exit code is 0.
    pub ok: bool,
    /// The exit code.
    pub exit_code: u8,
    /// The exit code's name.
    pub outcome: &'static str,
    /// The error, when the command failed.
    pub error: Option<String>,
}

/// The JSON document through a `serde_json::Value`: the result's fields and the
/// envelope's, keys sorted at every level (serde_json's maps are sorted).
fn value_document<O: Output>(outcome: Option<&O>, envelope: &Envelope<'_>) -> Vec<u8> {
    let mut doc = match outcome.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    doc.insert("command".into(), envelope.command.into());
    doc.insert("ok".into(), envelope.ok.into());
    doc.insert("exit_code".into(), envelope.exit_code.into());
    doc.insert("outcome".into(), envelope.outcome.into());
    if let Some(error) = &envelope.error {
        doc.insert("error".into(), error.as_str().into());
    }
    serde_json::to_vec_pretty(&serde_json::Value::Object(doc)).unwrap_or_default()
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
        let envelope = Envelope {
            command,
            ok: exit.code() == 0,
            exit_code: exit.code(),
            outcome: exit.name(),
            error: failure.map(|f| format!("{:#}", f.error)),
        };
        let text = match outcome.and_then(|o| o.json_document(&envelope)) {
            Some(fast) => {
                debug_assert!(
                    fast == value_document(outcome, &envelope),
                    "{command}: the JSON document written straight differs from the sorted one"
                );
                fast
            }
            None => value_document(outcome, &envelope),
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&text);
        let _ = out.write_all(b"\n");
    }

    /// [`Reporter::finish`] for a command whose result is only its exit code.
    pub fn finish_bare(&self, command: &str, exit: Exit, failure: Option<&Failure>) {
        self.finish::<Nothing>(command, None, exit, failure);
    }
}
