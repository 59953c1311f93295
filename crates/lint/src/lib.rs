//! kubemigrate's migration linter.
//!
//! [`lint_source`] reads each migration file the way the engine will run it (with
//! `kubemigrate-sql`'s [`Script`]: variables set, `\i`/`\ir` includes read, `\if`
//! branches chosen), so it lints the statements *as they will be sent*. It gives
//! squawk each file's real transaction mode: a file kubemigrate wraps in a
//! transaction is linted between a `BEGIN` and a `COMMIT`, a
//! `-- kubemigrate:no-transaction` file and a file with its own `BEGIN`/`COMMIT` as
//! they are. Each finding is mapped back to the file (the included file, when the
//! statement comes from one), line and column as written, through variable
//! interpolation, then judged by a [`Policy`]: per rule `deny`, `warn` or `off`,
//! the PostgreSQL version, and inline `-- kubemigrate:lint-ignore RULE reason`
//! comments.
//!
//! The rules are squawk's ([`squawk_linter`]), plus the few squawk lacks; see
//! [`rules::catalogue`]. [`trace`] runs the files on a throwaway server and reports
//! the locks each statement takes.
//!
//! ```no_run
//! use kubemigrate_lint::{Policy, lint_source};
//! use kubemigrate_sql::{script::Variables, source::Source};
//!
//! let vars = Variables::new();
//! let source = Source::read_dir("migrations".as_ref(), &vars).unwrap();
//! let report = lint_source(&source, &vars, &Policy::default(), None).unwrap();
//! for finding in report.findings() {
//!     println!("{finding}");
//! }
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use kubemigrate_sql::script::{ScriptError, Variables};
use kubemigrate_sql::source::{Migration, Source, printable_path};
use serde::Serialize;
use squawk_linter::Version;

mod ignore;
mod prepare;
pub mod rules;
pub mod trace;

pub use ignore::IGNORE_DIRECTIVE;
pub use rules::{RuleInfo, catalogue};

/// How a rule's findings count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Not checked.
    Off,
    /// Reported; does not fail the lint.
    Warn,
    /// Reported; fails the lint (and stops `validate`, `render`, `apply`).
    Deny,
}

impl Level {
    /// `off`, `warn` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Warn => "warn",
            Level::Deny => "deny",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "off" => Ok(Level::Off),
            "warn" => Ok(Level::Warn),
            "deny" => Ok(Level::Deny),
            other => Err(format!("{other:?} is not deny, warn or off")),
        }
    }
}

/// Why a lint could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LintError {
    /// A file cannot be read as the engine would run it (the same errors as
    /// `sql migrate`).
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// A file the directory's read only hashed turned out to have nothing to run
    /// (see [`kubemigrate_sql::source::SourceOptions::defer_lex`]).
    #[error(transparent)]
    Source(#[from] kubemigrate_sql::source::SourceError),
    /// A policy names a rule that does not exist.
    #[error("unknown lint rule `{rule}`{}", suggestion(.rule))]
    UnknownRule {
        /// The name given.
        rule: String,
    },
    /// A PostgreSQL version that cannot be read.
    #[error("{version:?} is not a PostgreSQL version (give the major version, e.g. 16, or 15.4)")]
    BadVersion {
        /// The text given.
        version: String,
    },
    /// A `-- kubemigrate:lint-ignore` comment that cannot be used.
    #[error("{}:{line}: {message}", printable_path(.path))]
    Ignore {
        /// The file holding the comment.
        path: PathBuf,
        /// Its line.
        line: u32,
        /// What is wrong with it.
        message: String,
    },
}

/// "; did you mean `x`?" for a misspelt rule id.
pub(crate) fn suggestion(rule: &str) -> String {
    match closest(rule, &rules::ids()) {
        Some(best) => format!("; did you mean `{best}`?"),
        None => "; `kubemigrate sql lint --list-rules` lists them".to_string(),
    }
}

/// The candidate nearest to `word` by edit distance, if it is near enough.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min()
        .map(|(_, c)| c)
}

/// What to check and how strictly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    levels: BTreeMap<String, Level>,
    postgres_version: Option<String>,
    sets_lock_timeout: bool,
}

impl Policy {
    /// The default policy: the rules on by default at their default level,
    /// PostgreSQL 15 (squawk's default), and kubemigrate not setting `lock_timeout`.
    pub fn new() -> Policy {
        Policy::default()
    }

    /// Sets a rule's level.
    ///
    /// # Errors
    /// [`LintError::UnknownRule`] when no rule has this id.
    pub fn set(&mut self, rule: &str, level: Level) -> Result<(), LintError> {
        if !rules::is_known(rule) {
            return Err(LintError::UnknownRule { rule: rule.into() });
        }
        self.levels.insert(rule.to_string(), level);
        Ok(())
    }

    /// The PostgreSQL version the migrations run on (`16`, `15.4`): some rules
    /// depend on it (a constant DEFAULT rewrites the table before 11 only).
    ///
    /// # Errors
    /// [`LintError::BadVersion`] when it is not `MAJOR[.MINOR[.PATCH]]`.
    pub fn set_postgres_version(&mut self, version: &str) -> Result<(), LintError> {
        parse_version(version)?;
        self.postgres_version = Some(version.to_string());
        Ok(())
    }

    /// The PostgreSQL version set, if any.
    pub fn postgres_version(&self) -> Option<&str> {
        self.postgres_version.as_deref()
    }

    /// Says that kubemigrate sets `lock_timeout` for every file of the run
    /// (`--statement-lock-timeout`): then a file need not set it, and
    /// `require-lock-timeout` is off.
    pub fn set_kubemigrate_sets_lock_timeout(&mut self, yes: bool) {
        self.sets_lock_timeout = yes;
    }

    /// The level of a rule under this policy.
    pub fn level(&self, rule: &str) -> Level {
        if rule == rules::REQUIRE_LOCK_TIMEOUT && self.sets_lock_timeout {
            return Level::Off;
        }
        self.levels
            .get(rule)
            .copied()
            .or_else(|| rules::rule(rule).map(|r| r.default))
            .unwrap_or(Level::Off)
    }

    /// This policy with `over`'s settings on top (a target's `lint:` over the
    /// plan's).
    pub fn overridden_by(&self, over: &Policy) -> Policy {
        let mut levels = self.levels.clone();
        levels.extend(over.levels.iter().map(|(k, v)| (k.clone(), *v)));
        Policy {
            levels,
            postgres_version: over
                .postgres_version
                .clone()
                .or_else(|| self.postgres_version.clone()),
            sets_lock_timeout: self.sets_lock_timeout || over.sets_lock_timeout,
        }
    }
}

fn parse_version(version: &str) -> Result<Version, LintError> {
    let bad = || LintError::BadVersion {
        version: version.to_string(),
    };
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    version.parse().map_err(|_| bad())
}

/// How kubemigrate runs a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxMode {
    /// In one transaction, with its history row (the default).
    Transaction,
    /// Statement by statement (`-- kubemigrate:no-transaction`).
    NoTransaction,
    /// As written: the file has its own `BEGIN`/`COMMIT`.
    AsWritten,
}

impl TxMode {
    /// The mode the engine gives this file.
    pub fn of(m: &Migration) -> TxMode {
        if m.controls_transaction {
            TxMode::AsWritten
        } else if m.no_transaction {
            TxMode::NoTransaction
        } else {
            TxMode::Transaction
        }
    }

    /// As `sql migrate` says it.
    pub fn describe(self) -> &'static str {
        match self {
            TxMode::Transaction => "in a transaction",
            TxMode::NoTransaction => "no transaction",
            TxMode::AsWritten => "as written: it controls its own transaction",
        }
    }
}

/// One problem found.
///
/// The fields are in alphabetical order: the order of the keys in the JSON
/// document, which `sql lint -o json` writes without sorting them again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// 1-based column, in characters.
    pub column: u32,
    /// The file that holds the statement: the migration, or a file it includes.
    pub file: PathBuf,
    /// `deny` or `warn`.
    pub level: Level,
    /// 1-based line in `file`.
    pub line: u32,
    /// The text of the line, for quoting.
    #[serde(skip)]
    pub line_text: String,
    /// What squawk (or kubemigrate) saw in this statement.
    pub message: String,
    /// The rule's id.
    pub rule: &'static str,
    /// What to write instead.
    pub safe: String,
    /// The statement's number in its migration, from 1 (0 for a comment).
    pub statement: usize,
    /// The migration (its file name).
    pub version: String,
    /// Why it is unsafe.
    pub why: String,
}

impl fmt::Display for Finding {
    /// `file:line:col: deny[rule]: why`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}[{}]: {}",
            printable_path(&self.file),
            self.line,
            self.column,
            self.level.as_str(),
            self.rule,
            self.why
        )
    }
}

/// The lint of one migration.
///
/// The fields are in alphabetical order, as [`Finding`]'s.
#[derive(Debug, Clone, Serialize)]
pub struct FileLint {
    /// Bytes of the statements as they will be sent.
    #[serde(skip)]
    pub bytes: usize,
    /// What was found, in file order.
    pub findings: Vec<Finding>,
    /// Findings silenced by `-- kubemigrate:lint-ignore`.
    pub ignored: usize,
    /// How kubemigrate runs it.
    pub mode: TxMode,
    /// The file.
    pub path: PathBuf,
    /// Statements linted.
    pub statements: usize,
    /// The file name.
    pub version: String,
}

/// The lint of a directory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// One entry per file linted, in run order.
    pub files: Vec<FileLint>,
}

impl Report {
    /// Every finding, file by file.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.files.iter().flat_map(|f| f.findings.iter())
    }

    /// How many findings have this level.
    pub fn count(&self, level: Level) -> usize {
        self.findings().filter(|f| f.level == level).count()
    }

    /// True when a denied rule fired.
    pub fn denied(&self) -> bool {
        self.count(Level::Deny) > 0
    }

    /// Bytes of SQL linted.
    pub fn bytes(&self) -> usize {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// Lints the migrations of `source` (read with the same `vars`), or only those
/// whose version is in `only` (`--pending`).
///
/// # Errors
/// A file that cannot be read as the engine would run it, or a
/// `-- kubemigrate:lint-ignore` comment without a reason or naming an unknown rule.
pub fn lint_source(
    source: &Source,
    vars: &Variables,
    policy: &Policy,
    only: Option<&HashSet<String>>,
) -> Result<Report, LintError> {
    let linter = Prepared::new(policy)?;
    // Resolved once for all files (it costs a system call per path component).
    let root = kubemigrate_sql::script::canonical_root(&source.dir)?;
    let root = root.as_path();
    let files: Vec<&Migration> = source
        .migrations
        .iter()
        .filter(|m| only.is_none_or(|o| o.contains(&*m.version)))
        .collect();
    // Files are independent: lint them on every core, then keep the run order.
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 8)
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<FileLint, LintError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(m) = files.get(i) else { break };
                        let result = linter.lint_file(root, m, vars);
                        let failed = result.is_err();
                        done.push((i, result));
                        if failed {
                            // The others finish the files they took: every file
                            // before this one is linted, so the first error in
                            // run order is the one reported.
                            break;
                        }
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    if results.len() < files.len() && results.iter().all(|(_, r)| r.is_ok()) {
        // A worker panicked: lint what it left here, so the panic is not hidden.
        let have: HashSet<usize> = results.iter().map(|(i, _)| *i).collect();
        for (i, m) in files.iter().enumerate() {
            if !have.contains(&i) {
                results.push((i, linter.lint_file(root, m, vars)));
            }
        }
        results.sort_by_key(|(i, _)| *i);
    }
    let mut report = Report::default();
    for (_, result) in results {
        report.files.push(result?);
    }
    Ok(report)
}

/// Lints one migration of a directory.
///
/// # Errors
/// As [`lint_source`].
pub fn lint_migration(
    dir: &Path,
    m: &Migration,
    vars: &Variables,
    policy: &Policy,
) -> Result<FileLint, LintError> {
    let root = kubemigrate_sql::script::canonical_root(dir)?;
    Prepared::new(policy)?.lint_file(&root, m, vars)
}

use prepare::Prepared;
