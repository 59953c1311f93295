//! Layouts: how other migration tools name, order and split their files.
//!
//! A [`Layout`] is the seam between a directory and the engine: it lists the
//! migrations of a directory ([`Layout::list`]), orders versions
//! ([`Layout::compare`]) and reads each file's rules ([`Layout::rules`]): whether it
//! runs in a transaction, which lines of it are the "up" migration, whether it is
//! repeatable or ignored, and whether an empty file is allowed. The engine itself
//! knows nothing of the tools: it runs [`crate::source::Migration`]s in the order
//! the layout gave.
//!
//! The version recorded in kubemigrate's history is the name the tool gives the
//! migration: the file name (a path relative to the directory for Flyway's
//! subdirectories), or the folder name for diesel.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::source::{SourceError, printable};

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

/// What a file of the directory is to its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A migration that runs once.
    Versioned,
    /// A migration that runs again whenever it changed.
    Repeatable,
}

/// One migration found by [`Layout::list`].
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// What is recorded in the history.
    pub version: String,
    /// The file that runs.
    pub path: PathBuf,
    /// Versioned or repeatable (by name; a directive can make a file repeatable too).
    pub kind: EntryKind,
    /// A side file (Flyway's `.sql.conf`, diesel's `metadata.toml`) turns the
    /// transaction off.
    pub side_no_transaction: bool,
}

/// A directory's listing.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// The directory the files are in (Supabase: `supabase/migrations` below the one given).
    pub dir: PathBuf,
    /// The migrations, in run order.
    pub entries: Vec<Entry>,
    /// Things worth telling.
    pub warnings: Vec<String>,
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

/// What a file's own comments say (see [`Layout::rules`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules {
    /// Runs without a wrapping transaction.
    pub no_transaction: bool,
    /// Runs again whenever it changed.
    pub repeatable: bool,
    /// Not a migration at all (`-- postgres-migrations ignore`).
    pub ignore: bool,
    /// Only these lines run (dbmate and goose: the "up" section).
    pub section: Option<Section>,
}

/// The native directive that makes a file repeatable.
pub const REPEATABLE_DIRECTIVE: &str = "kubemigrate:repeatable";

fn name_of(path: &Path) -> Result<Option<String>, SourceError> {
    let Some(name) = path.file_name() else {
        return Ok(None);
    };
    match name.to_str() {
        Some(n) if n.chars().any(char::is_control) => Err(SourceError::NameNotPrintable {
            path: path.to_path_buf(),
        }),
        Some(n) => Ok(Some(n.to_string())),
        None if name.as_encoded_bytes().ends_with(b".sql") => Err(SourceError::NameNotUtf8 {
            path: path.to_path_buf(),
        }),
        None => Ok(None),
    }
}

/// The entries of a directory: (name, path, is a directory), sorted by name.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, SourceError> {
    let dir_err = |cause| SourceError::Dir {
        path: dir.to_path_buf(),
        cause,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let entry = entry.map_err(dir_err)?;
        let path = entry.path();
        let Some(name) = name_of(&path)? else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        out.push((name, path, is_dir));
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

fn malformed(path: &Path, line: u32, message: impl Into<String>) -> SourceError {
    SourceError::Layout {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

impl Layout {
    /// Lists the migrations of `dir` in run order. Native listing is done by the
    /// caller (see [`crate::source::Source::read`]); this covers the other layouts.
    pub(crate) fn list(self, dir: &Path) -> Result<Listing, SourceError> {
        let mut listing = Listing {
            dir: dir.to_path_buf(),
            ..Listing::default()
        };
        match self {
            Layout::Native => {}
            Layout::Flyway => self.list_flyway(dir, "", &mut listing)?,
            Layout::Diesel => {
                for (name, path, is_dir) in entries(dir)? {
                    if !is_dir {
                        continue;
                    }
                    let up = path.join("up.sql");
                    if !up.is_file() {
                        if path.join("up.rs").exists() {
                            return Err(malformed(
                                &path,
                                0,
                                "a diesel migration written in Rust (up.rs) cannot be run by kubemigrate",
                            ));
                        }
                        listing.warnings.push(format!(
                            "{}/ is ignored: a diesel migration folder holds up.sql",
                            printable(&name)
                        ));
                        continue;
                    }
                    if self.version_parts(&name).is_none() {
                        return Err(malformed(
                            &path,
                            0,
                            "a diesel migration folder is named <version>_<name>, the version digits and dashes (e.g. 2024-01-31-120000_create_users)",
                        ));
                    }
                    let side_no_transaction = read_small(&path.join("metadata.toml"))
                        .is_some_and(|t| toml_false(&t, "run_in_transaction"));
                    listing.entries.push(Entry {
                        version: name,
                        path: up,
                        kind: EntryKind::Versioned,
                        side_no_transaction,
                    });
                }
            }
            Layout::Supabase => {
                let nested = dir.join("supabase").join("migrations");
                let dir = if nested.is_dir() {
                    nested
                } else {
                    dir.to_path_buf()
                };
                listing.dir.clone_from(&dir);
                self.list_flat(&dir, &mut listing)?;
            }
            _ => self.list_flat(dir, &mut listing)?,
        }
        let layout = self;
        listing.entries.sort_by(|a, b| match (a.kind, b.kind) {
            (EntryKind::Versioned, EntryKind::Versioned) => layout.compare(&a.version, &b.version),
            (EntryKind::Versioned, EntryKind::Repeatable) => Ordering::Less,
            (EntryKind::Repeatable, EntryKind::Versioned) => Ordering::Greater,
            (EntryKind::Repeatable, EntryKind::Repeatable) => {
                a.version.as_bytes().cmp(b.version.as_bytes())
            }
        });
        // Two files with one version: the tools refuse them too.
        for w in listing.entries.windows(2) {
            if w[0].kind == EntryKind::Versioned
                && w[1].kind == EntryKind::Versioned
                && let (Some(x), Some(y)) = (
                    self.version_parts(&w[0].version),
                    self.version_parts(&w[1].version),
                )
                && compare_parts(&x, &y) == Ordering::Equal
            {
                return Err(SourceError::DuplicateVersion {
                    first: w[0].version.clone(),
                    second: w[1].version.clone(),
                });
            }
        }
        Ok(listing)
    }

    /// Flyway: recursive, `V`, `R`, `U`, `B` prefixes, `__` separator.
    fn list_flyway(
        self,
        dir: &Path,
        prefix: &str,
        listing: &mut Listing,
    ) -> Result<(), SourceError> {
        for (name, path, is_dir) in entries(dir)? {
            let rel = format!("{prefix}{name}");
            if is_dir {
                self.list_flyway(&path, &format!("{rel}/"), listing)?;
                continue;
            }
            if !name.ends_with(".sql") {
                continue;
            }
            let stem = &name[..name.len() - 4];
            let kind = match stem.chars().next() {
                Some('R') if stem.starts_with("R__") && stem.len() > 3 => EntryKind::Repeatable,
                Some('V') => EntryKind::Versioned,
                Some('U' | 'B') if stem.contains("__") => {
                    listing.warnings.push(format!(
                        "{} is recognised and not run: Flyway {} migrations are not applied by kubemigrate",
                        printable(&rel),
                        if stem.starts_with('U') { "undo" } else { "baseline" }
                    ));
                    continue;
                }
                _ => {
                    listing.warnings.push(format!(
                        "{} is ignored: Flyway runs V<version>__<description>.sql and R__<description>.sql",
                        printable(&rel)
                    ));
                    continue;
                }
            };
            if kind == EntryKind::Versioned {
                let valid = stem[1..]
                    .split_once("__")
                    .is_some_and(|(v, _)| flyway_version(v).is_some());
                if !valid {
                    return Err(malformed(
                        &path,
                        0,
                        "not a Flyway versioned migration name: V<version>__<description>.sql, the version numbers separated by . or _ (e.g. V1.2__add_users.sql)",
                    ));
                }
            }
            let conf = read_small(&path.with_file_name(format!("{name}.conf")));
            let side_no_transaction = conf.is_some_and(|t| toml_false(&t, "executeInTransaction"));
            listing.entries.push(Entry {
                version: rel,
                path,
                kind,
                side_no_transaction,
            });
        }
        Ok(())
    }

    /// The layouts whose migrations are the `.sql` files directly in the directory.
    fn list_flat(self, dir: &Path, listing: &mut Listing) -> Result<(), SourceError> {
        for (name, path, is_dir) in entries(dir)? {
            if is_dir {
                continue;
            }
            if self == Layout::Goose && name.ends_with(".go") && leading_number(&name).is_some() {
                return Err(malformed(
                    &path,
                    0,
                    "a goose migration written in Go cannot be run by kubemigrate; rewrite it as SQL or run it with goose",
                ));
            }
            if self == Layout::PostgresMigrations
                && name.ends_with(".js")
                && leading_number(&name).is_some()
            {
                return Err(malformed(
                    &path,
                    0,
                    "a postgres-migrations migration written in JavaScript cannot be run by kubemigrate",
                ));
            }
            if !name.ends_with(".sql") {
                continue;
            }
            let ignored = |why: &str| format!("{} is ignored: {why}", printable(&name));
            let down = name.ends_with(".down.sql");
            let up = name.ends_with(".up.sql");
            match self {
                Layout::GolangMigrate => {
                    if down {
                        continue;
                    }
                    if !up {
                        listing.warnings.push(ignored(
                            "golang-migrate runs <version>_<title>.up.sql files",
                        ));
                        continue;
                    }
                    if !matches!(leading_number(&name), Some((_, rest)) if rest.starts_with('_')) {
                        return Err(malformed(
                            &path,
                            0,
                            "not a golang-migrate name: <version>_<title>.up.sql, the version an integer",
                        ));
                    }
                }
                Layout::Sqlx => {
                    if down {
                        continue;
                    }
                    if !matches!(leading_number(&name), Some((_, rest)) if rest.starts_with('_')) {
                        return Err(malformed(
                            &path,
                            0,
                            "not a sqlx migration name: <version>_<description>.sql (or .up.sql), the version an integer",
                        ));
                    }
                }
                Layout::Dbmate => {
                    if leading_number(&name).is_none() {
                        listing.warnings.push(ignored(
                            "dbmate runs files whose names start with their version digits",
                        ));
                        continue;
                    }
                }
                Layout::Goose | Layout::Supabase => {
                    if !matches!(leading_number(&name), Some((_, rest)) if rest.starts_with('_')) {
                        listing.warnings.push(ignored(if self == Layout::Goose {
                            "goose runs <version>_<name>.sql files"
                        } else {
                            "Supabase runs <timestamp>_<name>.sql files"
                        }));
                        continue;
                    }
                }
                Layout::PostgresMigrations => {
                    // As the tool reads names: `^(\d+)[-_]?(.*)\.sql$`.
                    if leading_number(&name).is_none() {
                        return Err(malformed(
                            &path,
                            0,
                            "not a postgres-migrations name: <id>-<name>.sql, the id an integer",
                        ));
                    }
                }
                Layout::Native | Layout::Flyway | Layout::Diesel => {}
            }
            listing.entries.push(Entry {
                version: name,
                path,
                kind: EntryKind::Versioned,
                side_no_transaction: false,
            });
        }
        Ok(())
    }

    /// Reads a file's directives and sections from its text (`text` is the whole
    /// file for dbmate and goose, the first 64 KiB otherwise).
    ///
    /// # Errors
    /// The file breaks its tool's rules (no `-- migrate:up`, a `-- +goose Down`
    /// before `Up`, a `StatementBegin` without `StatementEnd`…): one line naming the
    /// file and the line.
    pub fn rules(self, path: &Path, text: &str) -> Result<Rules, SourceError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Rules {
            no_transaction: crate::source::has_no_transaction_directive(text),
            repeatable: self == Layout::Native && leading_directive(text, REPEATABLE_DIRECTIVE),
            ..Rules::default()
        };
        match self {
            Layout::Dbmate => dbmate_rules(path, text, &mut rules)?,
            Layout::Goose => goose_rules(path, text, &mut rules)?,
            Layout::Sqlx if text.starts_with("-- no-transaction") => {
                rules.no_transaction = true;
            }
            Layout::PostgresMigrations => {
                if text.contains("-- postgres-migrations disable-transaction") {
                    rules.no_transaction = true;
                }
                if text.contains("-- postgres-migrations ignore") {
                    rules.ignore = true;
                }
            }
            _ => {}
        }
        Ok(rules)
    }

    /// Whether [`Layout::rules`] needs the whole file.
    pub fn reads_whole_file(self) -> bool {
        matches!(self, Layout::Dbmate | Layout::Goose)
    }
}

/// True when one of the leading comment lines is `-- <directive>`.
fn leading_directive(sql: &str, directive: &str) -> bool {
    for line in sql.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            return false;
        };
        if comment.trim() == directive {
            return true;
        }
    }
    false
}

/// A line that is neither blank nor only a `--` comment.
fn is_statement_line(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with("--")
}

/// dbmate: `-- migrate:up [transaction:false]` then optionally `-- migrate:down`.
fn dbmate_rules(path: &Path, text: &str, rules: &mut Rules) -> Result<(), SourceError> {
    let marker = |line: &str, word: &str| -> Option<String> {
        let rest = line.strip_prefix("--")?.trim_start();
        let rest = rest.strip_prefix(word)?;
        (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim().to_string())
    };
    let mut up: Option<(u32, String)> = None;
    let mut down: Option<u32> = None;
    for (i, line) in text.lines().enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if let Some(options) = marker(line, "migrate:up") {
            if up.is_some() {
                return Err(malformed(
                    path,
                    n,
                    "a second '-- migrate:up' (dbmate allows one up block)",
                ));
            }
            if down.is_some() {
                return Err(malformed(
                    path,
                    n,
                    "dbmate requires '-- migrate:up' to appear before '-- migrate:down'",
                ));
            }
            up = Some((n, options));
        } else if marker(line, "migrate:down").is_some() {
            if up.is_none() {
                return Err(malformed(
                    path,
                    n,
                    "dbmate requires '-- migrate:up' to appear before '-- migrate:down'",
                ));
            }
            if down.is_some() {
                return Err(malformed(
                    path,
                    n,
                    "a second '-- migrate:down' (dbmate allows one down block)",
                ));
            }
            down = Some(n);
        } else if up.is_none() && is_statement_line(line) {
            return Err(malformed(
                path,
                n,
                "dbmate does not support statements defined outside of the '-- migrate:up' or '-- migrate:down' blocks",
            ));
        }
    }
    let Some((line, options)) = up else {
        return Err(malformed(
            path,
            1,
            "dbmate requires each migration to define an up block with '-- migrate:up'",
        ));
    };
    for option in options.split_whitespace() {
        match option.split_once(':') {
            Some(("transaction", "false")) => rules.no_transaction = true,
            Some(("transaction", "true")) => {}
            _ => {
                return Err(malformed(
                    path,
                    line,
                    format!(
                        "unknown dbmate option {:?} (dbmate knows transaction:false)",
                        printable(option)
                    ),
                ));
            }
        }
    }
    rules.section = Some(Section {
        first_line: line + 1,
        end_line: down,
    });
    Ok(())
}

/// goose: `-- +goose Up`, `-- +goose Down`, `StatementBegin`/`StatementEnd`,
/// `NO TRANSACTION`.
fn goose_rules(path: &Path, text: &str, rules: &mut Rules) -> Result<(), SourceError> {
    let mut up: Option<u32> = None;
    let mut down: Option<u32> = None;
    let mut open_block: Option<u32> = None;
    for (i, line) in text.lines().enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let t = line.trim();
        let Some(annotation) = t.strip_prefix("-- +goose") else {
            if up.is_none() && down.is_none() && is_statement_line(line) {
                return Err(malformed(
                    path,
                    n,
                    "a statement before '-- +goose Up': goose requires the file to start with its Up annotation",
                ));
            }
            continue;
        };
        match annotation.trim().to_ascii_lowercase().as_str() {
            "up" => {
                if up.is_some() {
                    return Err(malformed(path, n, "a second '-- +goose Up'"));
                }
                if down.is_some() {
                    return Err(malformed(path, n, "'-- +goose Up' after '-- +goose Down'"));
                }
                up = Some(n);
            }
            "down" => {
                if let Some(b) = open_block {
                    return Err(malformed(
                        path,
                        b,
                        "'-- +goose StatementBegin' without '-- +goose StatementEnd'",
                    ));
                }
                if down.is_some() {
                    return Err(malformed(path, n, "a second '-- +goose Down'"));
                }
                down = Some(n);
            }
            "statementbegin" => {
                if open_block.is_some() {
                    return Err(malformed(
                        path,
                        n,
                        "'-- +goose StatementBegin' inside another StatementBegin block",
                    ));
                }
                open_block = Some(n);
            }
            "statementend" => {
                if open_block.take().is_none() {
                    return Err(malformed(
                        path,
                        n,
                        "'-- +goose StatementEnd' without '-- +goose StatementBegin'",
                    ));
                }
            }
            "no transaction" => rules.no_transaction = true,
            other if other.starts_with("envsub") => {
                return Err(malformed(
                    path,
                    n,
                    "'-- +goose ENVSUB' is not supported: kubemigrate does not substitute environment variables (use psql variables with --set)",
                ));
            }
            _ => {
                return Err(malformed(
                    path,
                    n,
                    format!(
                        "unknown goose annotation {:?} (goose knows Up, Down, StatementBegin, StatementEnd, NO TRANSACTION)",
                        printable(t)
                    ),
                ));
            }
        }
    }
    if let Some(b) = open_block {
        return Err(malformed(
            path,
            b,
            "'-- +goose StatementBegin' without '-- +goose StatementEnd'",
        ));
    }
    let Some(line) = up else {
        return Err(malformed(
            path,
            1,
            "no '-- +goose Up' annotation: goose requires one before the migration's statements",
        ));
    };
    rules.section = Some(Section {
        first_line: line + 1,
        end_line: down,
    });
    Ok(())
}

/// A side file's text, when it exists and is small.
fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 64 * 1024 {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// Whether `key = false` (or `key=false`) is set in a small key-value file.
fn toml_false(text: &str, key: &str) -> bool {
    text.lines().any(|line| {
        line.split_once('=').is_some_and(|(k, v)| {
            k.trim() == key && v.split('#').next().unwrap_or("").trim() == "false"
        })
    })
}

/// What a directory holds, for the error of a directory with no migration for its
/// layout: each finding in words, and the layout that would read it.
pub fn survey(dir: &Path) -> Vec<(String, Layout)> {
    let mut found = Vec::new();
    let Ok(list) = entries(dir) else {
        return found;
    };
    let count = |n: usize, what: &str| format!("{n} {what}");
    let folders_up = list
        .iter()
        .filter(|(_, p, d)| *d && p.join("up.sql").is_file())
        .count();
    if folders_up > 0 {
        found.push((count(folders_up, "folders with up.sql"), Layout::Diesel));
    }
    if dir.join("supabase").join("migrations").is_dir() {
        found.push(("a supabase/migrations folder".to_string(), Layout::Supabase));
    }
    let files: Vec<&(String, PathBuf, bool)> = list.iter().filter(|(_, _, d)| !*d).collect();
    let up = files
        .iter()
        .filter(|(n, _, _)| n.ends_with(".up.sql"))
        .count();
    if up > 0 {
        found.push((count(up, "*.up.sql files"), Layout::GolangMigrate));
    }
    let flyway = files
        .iter()
        .filter(|(n, _, _)| {
            n.ends_with(".sql")
                && (n.starts_with("R__") || Layout::Flyway.version_parts(n).is_some())
        })
        .count();
    if flyway > 0 {
        found.push((count(flyway, "Flyway V…__….sql files"), Layout::Flyway));
    }
    let (mut dbmate, mut goose) = (0, 0);
    for (name, path, _) in &files {
        if !name.ends_with(".sql") {
            continue;
        }
        let head = read_small(path).unwrap_or_default();
        if head
            .lines()
            .any(|l| l.trim_start().starts_with("-- migrate:up"))
        {
            dbmate += 1;
        } else if head
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case("-- +goose up"))
        {
            goose += 1;
        }
    }
    if dbmate > 0 {
        found.push((count(dbmate, "files with '-- migrate:up'"), Layout::Dbmate));
    }
    if goose > 0 {
        found.push((count(goose, "files with '-- +goose Up'"), Layout::Goose));
    }
    let sql = files.iter().filter(|(n, _, _)| n.ends_with(".sql")).count();
    if sql > 0 && found.is_empty() {
        found.push((count(sql, "*.sql files"), Layout::Native));
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a failed unwrap is the failure the test reports"
    )]
    use super::*;

    #[test]
    fn flyway_versions_compare_as_numbers() {
        let f = Layout::Flyway;
        assert_eq!(f.compare("V1.10__b.sql", "V1.9__a.sql"), Ordering::Greater);
        assert_eq!(f.compare("V2__b.sql", "V1_1__a.sql"), Ordering::Greater);
        assert_eq!(f.version_parts("V1_2__x.sql"), Some(vec![1, 2]));
        assert_eq!(f.version_parts("R__x.sql"), None);
        assert_eq!(compare_parts(&[1], &[1, 0]), Ordering::Equal);
    }

    #[test]
    fn numeric_layouts_ignore_width() {
        let p = Layout::PostgresMigrations;
        assert_eq!(p.compare("00010-a.sql", "0009-b.sql"), Ordering::Greater);
        assert_eq!(
            Layout::Native.compare("00010-a.sql", "0009-b.sql"),
            Ordering::Less
        );
        assert_eq!(
            Layout::Diesel.version_parts("2020-01-02-030405_x"),
            Some(vec![20200102030405])
        );
    }

    #[test]
    fn dbmate_sections_and_options() {
        let p = Path::new("1_a.sql");
        let r = Layout::Dbmate
            .rules(p, "-- migrate:up transaction:false\ncreate index concurrently i on t (a);\n\n-- migrate:down\ndrop index i;\n")
            .unwrap();
        assert!(r.no_transaction);
        assert_eq!(
            r.section,
            Some(Section {
                first_line: 2,
                end_line: Some(4)
            })
        );
        let e = Layout::Dbmate
            .rules(p, "create table t ();\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1_a.sql:1: dbmate does not support statements"),
            "{e}"
        );
        let e = Layout::Dbmate
            .rules(p, "-- migrate:down\n-- migrate:up\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":1: dbmate requires '-- migrate:up' to appear before"),
            "{e}"
        );
    }

    #[test]
    fn goose_annotations() {
        let p = Path::new("1_a.sql");
        let r = Layout::Goose
            .rules(p, "-- +goose NO TRANSACTION\n-- +goose Up\n-- +goose StatementBegin\nselect 1;\n-- +goose StatementEnd\n-- +goose Down\nselect 2;\n")
            .unwrap();
        assert!(r.no_transaction);
        assert_eq!(
            r.section,
            Some(Section {
                first_line: 3,
                end_line: Some(6)
            })
        );
        let e = Layout::Goose
            .rules(p, "-- +goose Up\n-- +goose StatementBegin\nselect 1;\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2: '-- +goose StatementBegin' without"), "{e}");
    }

    proptest::proptest! {
        /// Any text: rules are read or refused with a line inside the file, never a panic.
        #[test]
        fn rules_never_panic_and_name_a_line_of_the_file(text in "(-- migrate:(up|down)( transaction:false)?\n|-- \\+goose (Up|Down|StatementBegin|StatementEnd|NO TRANSACTION)\n|select 1;\n|\n|-- x\n){0,12}") {
            let lines = u32::try_from(text.lines().count()).unwrap();
            for layout in Layout::ALL {
                match layout.rules(Path::new("f.sql"), &text) {
                    Ok(r) => {
                        if let Some(s) = r.section {
                            proptest::prop_assert!(s.first_line >= 1);
                            proptest::prop_assert!(s.end_line.is_none_or(|e| e >= s.first_line));
                        }
                    }
                    Err(SourceError::Layout { line, .. }) => {
                        proptest::prop_assert!(line <= lines.max(1), "{layout}: line {line} of {lines}");
                    }
                    Err(e) => proptest::prop_assert!(false, "{e}"),
                }
            }
        }
    }

    #[test]
    fn a_section_runs_only_its_lines_and_the_checksum_covers_the_file() {
        use crate::script::{Item, Script, Variables};
        let dir = std::env::temp_dir().join(format!("km-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text =
            "\u{feff}-- migrate:up\r\nSELECT 'é';\nSELECT 2;\n-- migrate:down\nDROP TABLE x;\n";
        let path = dir.join("1_a.sql");
        std::fs::write(&path, text).unwrap();
        let rules = Layout::Dbmate.rules(&path, text).unwrap();
        for block in [1, 2, 3, 7, 4096] {
            let mut script =
                Script::open_section(&path, &dir, &Variables::new(), block, rules.section).unwrap();
            let mut sent = Vec::new();
            while let Some(item) = script.next_item().unwrap() {
                if let Item::Sql { text, at, .. } = item {
                    sent.push((text, at.line));
                }
            }
            assert_eq!(
                sent,
                [("SELECT 'é';".to_string(), 2), ("SELECT 2;".to_string(), 3)],
                "block {block}"
            );
            assert_eq!(script.finish().checksum, crate::source::checksum(text));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
