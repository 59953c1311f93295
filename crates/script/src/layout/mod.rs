//! Layouts: how other migration tools name, order and split their files.
//!
//! A [`Layout`] is the seam between a directory and the engine: it lists the
//! migrations of a directory (`Layout::list`), orders versions
//! ([`Layout::compare`]) and reads each file's rules ([`Layout::rules`]): whether it
//! runs in a transaction, which lines of it are the "up" migration, whether it is
//! repeatable or ignored, and whether an empty file is allowed. The engine itself
//! knows nothing of the tools: it runs [`crate::source::Migration`]s in the order
//! the layout gave.
//!
//! The version recorded in kubemigrate's history is the name the tool gives the
//! migration: the file name (a path relative to the directory for Flyway's
//! subdirectories), or the folder name for diesel.
//!
//! The pieces: this module names the layouts and orders their versions; `list`
//! reads a directory as a tool names its files, `rules` reads the directives and
//! sections inside a file, and `survey` says what a directory holds when it has
//! no migration for its layout.

mod list;
mod rules;
mod survey;

use std::cmp::Ordering;
use std::fmt;
use std::path::Path;

use crate::source::{SourceError, printable};

pub(crate) use list::EntryKind;
pub(crate) use rules::leading_directive;
pub use rules::{REPEATABLE_DIRECTIVE, Rules};
pub use survey::survey;

/// How the files of a migration directory are named, ordered and split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum Layout {
    /// kubemigrate's own: every `*.sql` file directly in the directory, in byte-wise
    /// order of names; `-- kubemigrate:no-transaction` and `-- kubemigrate:repeatable`.
    #[default]
    Native,
    /// Flyway: `V<version>__<desc>.sql` in version order (`1.10` after `1.9`),
    /// `R__<desc>.sql` repeatable, `U`/`B` files recognised and not run.
    Flyway,
    /// golang-migrate: `<version>_<title>.up.sql` (and `.down.sql`, not run).
    GolangMigrate,
    /// dbmate: `<version>_<name>.sql` with `-- migrate:up` / `-- migrate:down`.
    Dbmate,
    /// goose: `<version>_<name>.sql` with `-- +goose Up` / `-- +goose Down`.
    Goose,
    /// sqlx: `<version>_<desc>.sql` or `.up.sql` / `.down.sql`; `-- no-transaction`.
    Sqlx,
    /// diesel: `<version>_<name>/up.sql` folders.
    Diesel,
    /// postgres-migrations: `<id>-<name>.sql`, the integer id before the first `-`.
    PostgresMigrations,
    /// Supabase: `supabase/migrations/<timestamp>_<name>.sql`.
    Supabase,
}

impl Layout {
    /// Every layout, native first.
    pub const ALL: [Layout; 9] = [
        Layout::Native,
        Layout::Flyway,
        Layout::GolangMigrate,
        Layout::Dbmate,
        Layout::Goose,
        Layout::Sqlx,
        Layout::Diesel,
        Layout::PostgresMigrations,
        Layout::Supabase,
    ];

    /// The name given to `--layout` and to the plan's `layout:`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Native => "native",
            Layout::Flyway => "flyway",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Dbmate => "dbmate",
            Layout::Goose => "goose",
            Layout::Sqlx => "sqlx",
            Layout::Diesel => "diesel",
            Layout::PostgresMigrations => "postgres-migrations",
            Layout::Supabase => "supabase",
        }
    }

    /// The layout of this name.
    ///
    /// # Errors
    /// An unknown name; the message lists the known ones.
    pub fn parse(name: &str) -> Result<Layout, String> {
        Layout::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown layout {:?}; known layouts: {}",
                    printable(name),
                    Layout::names()
                )
            })
    }

    /// The known names, comma-separated.
    pub fn names() -> String {
        Layout::ALL.map(Layout::name).join(", ")
    }

    /// The order the files run in, in words (for `sql status`).
    pub fn order(self) -> &'static str {
        match self {
            Layout::Native => "byte-wise order of file names; repeatable files last",
            Layout::Flyway => {
                "Flyway version order (1.10 after 1.9); repeatable R__ files last, by description"
            }
            Layout::Dbmate => "byte-wise order of file names, as dbmate",
            Layout::Diesel => "version order of the folder names (dashes ignored), as diesel",
            Layout::GolangMigrate
            | Layout::Goose
            | Layout::Sqlx
            | Layout::PostgresMigrations
            | Layout::Supabase => "numeric order of the versions",
        }
    }

    /// Whether a file that runs no statement is allowed (as the tool allows it).
    pub fn allows_empty(self) -> bool {
        !matches!(self, Layout::Native | Layout::Diesel)
    }

    /// The numeric parts of a version, as this layout orders it, or `None` when
    /// the name has none (a repeatable file, or a name of another layout).
    pub fn version_parts(self, name: &str) -> Option<Vec<u128>> {
        match self {
            Layout::Native => None,
            Layout::Flyway => {
                let file = name.rsplit('/').next().unwrap_or(name);
                let rest = file.strip_prefix(['V', 'U', 'B'])?;
                let (version, _) = rest.split_once("__")?;
                flyway_version(version)
            }
            Layout::Diesel => {
                let version: String = name
                    .split('_')
                    .next()
                    .unwrap_or("")
                    .chars()
                    .filter(|c| *c != '-')
                    .collect();
                leading_number(&version)
                    .filter(|(_, rest)| rest.is_empty())
                    .map(|(n, _)| vec![n])
            }
            Layout::GolangMigrate
            | Layout::Dbmate
            | Layout::Goose
            | Layout::Sqlx
            | Layout::PostgresMigrations
            | Layout::Supabase => leading_number(name).map(|(n, _)| vec![n]),
        }
    }

    /// Orders two versions (as recorded in the history) as this layout runs them:
    /// numerically by their version parts when both have them, else byte-wise.
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        if self == Layout::Dbmate {
            // dbmate runs its files in the order of their names.
            return a.as_bytes().cmp(b.as_bytes());
        }
        match (self.version_parts(a), self.version_parts(b)) {
            (Some(x), Some(y)) => {
                compare_parts(&x, &y).then_with(|| a.as_bytes().cmp(b.as_bytes()))
            }
            _ => a.as_bytes().cmp(b.as_bytes()),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Layout, String> {
        Layout::parse(s)
    }
}

/// Compares version parts numerically, missing parts as 0 (Flyway: `1` = `1.0`).
fn compare_parts(a: &[u128], b: &[u128]) -> Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

/// A Flyway version: numbers separated by `.` or `_`.
fn flyway_version(text: &str) -> Option<Vec<u128>> {
    if text.is_empty() {
        return None;
    }
    text.split(['.', '_'])
        .map(|p| {
            if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse().ok()
            } else {
                None
            }
        })
        .collect()
}

/// The number the text starts with, and the rest.
fn leading_number(text: &str) -> Option<(u128, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n = text[..digits].parse().ok()?;
    Some((n, &text[digits..]))
}

/// The lines of a file that hold its "up" migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// The first line of the migration (1-based).
    pub first_line: u32,
    /// The line where it stops (not included), or `None` for the end of the file.
    pub end_line: Option<u32>,
}

impl Section {
    /// Whether line `line` (1-based) is part of the migration.
    pub fn contains(&self, line: u32) -> bool {
        line >= self.first_line && self.end_line.is_none_or(|e| line < e)
    }
}

/// An error in a file (or folder) of a layout, at `line` (0 for the name itself).
fn malformed(path: &Path, line: u32, message: impl Into<String>) -> SourceError {
    SourceError::Layout {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests;
