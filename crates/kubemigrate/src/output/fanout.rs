//! Fan-out results for people and programs: the summary of a run over many
//! databases ([`Fanout`]), and the grouped line `apply` prints for a target whose
//! runners reported per database ([`grouped`]).

use serde::Serialize;

use super::{Output, Reporter, human};
use crate::fanout::{DbLine, DbState, Fanout};

impl DbState {
    /// The words of the summary line.
    pub fn words(self) -> &'static str {
        match self {
            DbState::Applied => "applied",
            DbState::UpToDate => "up to date",
            DbState::Pending => "pending",
            DbState::Failed => "failed",
            DbState::NotRun => "not run",
            DbState::Ran => "ran",
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `97 up to date, 2 applied, 1 failed: tenant_17 (exit 3): V0042__x.sql:3: …`:
/// a target's databases as `apply` read them from its runners' logs, the failed
/// ones named (the first 5).
pub fn grouped(lines: &[DbLine]) -> String {
    let mut parts = Vec::new();
    for state in DbState::ALL {
        let n = lines.iter().filter(|l| l.result == state).count();
        if n > 0 {
            parts.push(format!("{n} {}", state.words()));
        }
    }
    let mut text = format!(
        "{} database{}: {}",
        lines.len(),
        plural(lines.len()),
        parts.join(", ")
    );
    let failed: Vec<&DbLine> = lines
        .iter()
        .filter(|l| l.result == DbState::Failed)
        .collect();
    for (i, l) in failed.iter().take(5).enumerate() {
        text.push_str(if i == 0 { ": " } else { "; " });
        text.push_str(&format!("{} {}", l.database, l.detail));
    }
    if failed.len() > 5 {
        text.push_str(&format!("; and {} more", failed.len() - 5));
    }
    text
}

impl Fanout {
    /// The summary line: `100 databases: 97 up to date, 2 applied, 1 failed`.
    pub fn counts_line(&self) -> String {
        let mut parts = Vec::new();
        for state in DbState::ALL {
            let n = self.count(state);
            if n > 0 {
                let words = match state {
                    DbState::Pending if self.dry_run => "would apply",
                    other => other.words(),
                };
                parts.push(format!("{n} {words}"));
            }
        }
        format!(
            "{} database{}: {} in {} (concurrency {})",
            self.results.len(),
            if self.results.len() == 1 { "" } else { "s" },
            parts.join(", "),
            human::duration(self.took),
            self.settings.concurrency
        )
    }
}

impl Serialize for Fanout {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        #[derive(Serialize)]
        struct Counts {
            up_to_date: usize,
            applied: usize,
            pending: usize,
            failed: usize,
            not_run: usize,
            ran: usize,
        }
        let mut st = s.serialize_struct("Fanout", 5)?;
        st.serialize_field("databases", &self.results)?;
        st.serialize_field(
            "counts",
            &Counts {
                up_to_date: self.count(DbState::UpToDate),
                applied: self.count(DbState::Applied),
                pending: self.count(DbState::Pending),
                failed: self.count(DbState::Failed),
                not_run: self.count(DbState::NotRun),
                ran: self.count(DbState::Ran),
            },
        )?;
        st.serialize_field("concurrency", &self.settings.concurrency)?;
        st.serialize_field("on_failure", &self.settings.on_failure)?;
        st.serialize_field(
            "duration_ms",
            &u64::try_from(self.took.as_millis()).unwrap_or(u64::MAX),
        )?;
        st.end()
    }
}

impl Output for Fanout {
    fn human(&self, reporter: Reporter) {
        for line in self.summary_lines() {
            reporter.line(&line);
        }
    }
}

impl Fanout {
    /// The human summary: the counts, then each failed database with its error,
    /// the failed line and its last log lines, then the pending ones.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut out = vec![self.counts_line()];
        for r in self.results.iter().filter(|r| r.result == DbState::Failed) {
            out.push(format!(
                "  failed: {}: {}",
                r.database,
                r.error.as_deref().unwrap_or("failed")
            ));
            for d in &r.detail {
                out.push(format!("      {d}"));
            }
            if !r.last_lines.is_empty() {
                out.push("    its last lines:".into());
                for l in &r.last_lines {
                    out.push(format!("      {l}"));
                }
            }
        }
        for r in self.results.iter().filter(|r| r.result == DbState::Pending) {
            out.push(format!(
                "  pending: {}: {} file{}",
                r.database,
                r.pending,
                if r.pending == 1 { "" } else { "s" }
            ));
        }
        let not_run: Vec<&str> = self
            .results
            .iter()
            .filter(|r| r.result == DbState::NotRun)
            .map(|r| r.database.as_str())
            .collect();
        if !not_run.is_empty() {
            let why = match self.signalled {
                Some(caught) => format!("stopped by {}", caught.name),
                None => "--on-failure stop".to_string(),
            };
            out.push(format!("  not run ({why}): {}", not_run.join(", ")));
        }
        out
    }
}
