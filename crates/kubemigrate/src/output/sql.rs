//! The `sql` commands' results: the run report (its fields in the JSON document),
//! and its summary or table for people.

use kubemigrate_sql::events::Report;
use serde::Serialize;

use super::{Output, Reporter, human};

/// `sql migrate`'s and `sql baseline`'s result.
#[derive(Debug)]
pub struct SqlRun<'a> {
    /// The engine's report.
    pub report: &'a Report,
    /// Whether people get the summary line (`sql baseline` prints none when it
    /// failed).
    pub summary: bool,
}

impl Serialize for SqlRun<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.report.serialize(s)
    }
}

impl Output for SqlRun<'_> {
    fn human(&self, reporter: Reporter) {
        if self.summary {
            reporter.line(&human::run_summary(self.report));
        }
    }
}

/// `sql status`'s result: the table for people.
#[derive(Debug)]
pub struct SqlStatus<'a>(pub &'a Report);

impl Serialize for SqlStatus<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Output for SqlStatus<'_> {
    fn human(&self, reporter: Reporter) {
        for line in human::status_table(self.0) {
            reporter.line(&line);
        }
    }
}
