//! The progress of an `apply` run: a line per target event and per log line,
//! prefixed with the target's name, and on a terminal a live view of every target
//! under them. Progress goes to stdout for people and to stderr when stdout
//! carries JSON.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use super::Reporter;
use super::human::{self, duration};
use crate::apply::{ApplyEvent, Status};

/// How one target is doing, for the live view.
struct Row {
    target: String,
    state: String,
    started: Option<Instant>,
    took: Option<Duration>,
}

/// The progress of a run. On a terminal (human output, `NO_COLOR` unset, `TERM`
/// not `dumb`), target names are coloured and a live view, one line per target
/// with its state and elapsed time, stays under the scrolling log lines, redrawn
/// every second. Elsewhere (CI logs, pipes), plain lines.
struct View {
    reporter: Reporter,
    live: bool,
    width: usize,
    rows: Vec<Row>,
    drawn: usize,
}

/// Colours for target names (no red: that reads as an error).
const COLOURS: &[u8] = &[36, 33, 35, 32, 34, 96];

impl View {
    fn new(reporter: Reporter, targets: &[String]) -> View {
        let live = !reporter.json()
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none()
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        View {
            reporter,
            live,
            width: targets.iter().map(String::len).max().unwrap_or(0),
            rows: targets
                .iter()
                .map(|t| Row {
                    target: t.clone(),
                    state: "waiting".into(),
                    started: None,
                    took: None,
                })
                .collect(),
            drawn: 0,
        }
    }

    fn prefix(&self, target: &str) -> String {
        let width = self.width;
        let padded = format!("{target:<width$}");
        match self.rows.iter().position(|r| r.target == target) {
            Some(i) if self.live => {
                format!("\x1b[{}m{padded}\x1b[0m", COLOURS[i % COLOURS.len()])
            }
            _ => padded,
        }
    }

    fn row(&mut self, target: &str) -> Option<&mut Row> {
        self.rows.iter_mut().find(|r| r.target == target)
    }

    fn say(&mut self, target: &str, text: &str) {
        self.erase();
        let line = format!("{} | {text}", self.prefix(target));
        self.reporter.line(&line);
        self.draw();
    }

    fn erase(&mut self) {
        if self.live && self.drawn > 0 {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn);
            let _ = out.flush();
            self.drawn = 0;
        }
    }

    fn draw(&mut self) {
        if !self.live {
            return;
        }
        let width = self.width;
        let mut out = std::io::stdout().lock();
        for r in &self.rows {
            let elapsed = match (r.took, r.started) {
                (Some(d), _) => duration(d),
                (None, Some(s)) => format!("{}s", s.elapsed().as_secs()),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "  \x1b[1m{:<width$}\x1b[0m  {:<12} {elapsed}",
                r.target, r.state
            );
        }
        let _ = out.flush();
        self.drawn = self.rows.len();
    }
}

/// Prints events until the run ends (every sender dropped). `targets` are the
/// run's targets in plan order.
pub async fn print_events(
    mut rx: UnboundedReceiver<ApplyEvent>,
    reporter: Reporter,
    targets: Vec<String>,
) {
    let mut view = View::new(reporter, &targets);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let event = tokio::select! {
            event = rx.recv() => match event {
                Some(e) => e,
                None => break,
            },
            _ = tick.tick() => {
                view.erase();
                view.draw();
                continue;
            }
        };
        match event {
            ApplyEvent::Started { target } => {
                if let Some(r) = view.row(&target) {
                    r.state = "running".into();
                    r.started = Some(Instant::now());
                }
                view.say(&target, "started");
            }
            ApplyEvent::Container { target, container } => {
                if let Some(r) = view.row(&target) {
                    r.state = container.clone();
                }
                view.say(&target, &format!("-- {container}"));
            }
            ApplyEvent::Log {
                target,
                container,
                line,
            } => {
                // The init containers' lines say which container they come from.
                if container == kubemigrate_contract::k8s::RUN_MIGRATIONS {
                    view.say(&target, &line);
                } else {
                    view.say(&target, &format!("[{container}] {line}"));
                }
            }
            ApplyEvent::Problem { target, problem } => {
                view.say(&target, &format!("problem: {}", human::problem(&problem)));
            }
            ApplyEvent::Finished(r) => {
                let mut text = r.status.word().to_string();
                if r.status != Status::Skipped {
                    text.push_str(&format!(" in {}", duration(r.duration)));
                }
                if let Some(reason) = human::reason(&r) {
                    text.push_str(&format!(": {reason}"));
                }
                if let Some(row) = view.row(&r.target) {
                    row.state = r.status.word().into();
                    row.took = Some(r.duration);
                }
                view.say(&r.target, &text);
            }
        }
    }
    // The summary table follows: the live view has done its job.
    view.erase();
}
