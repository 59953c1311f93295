//! Listing a directory as each tool names its migrations: which files (or
//! diesel folders) are migrations, which are recognised and skipped, what their
//! version is, and which side files turn the transaction off.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::{Layout, compare_parts, flyway_version, leading_number, malformed};
use crate::source::{SourceError, printable};

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

/// The name of a directory entry as text: `None` for a name that is not UTF-8
/// (an error when it ends in `.sql`), an error for one with a control character.
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
pub(super) fn entries(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, SourceError> {
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
                    if !version_then_underscore(&name) {
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
                    if !version_then_underscore(&name) {
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
                    if !version_then_underscore(&name) {
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
}

/// Whether a name is `<version>_…`: digits, then `_`.
fn version_then_underscore(name: &str) -> bool {
    leading_number(name).is_some_and(|(_, rest)| rest.starts_with('_'))
}

/// A side file's text, when it exists and is small.
pub(super) fn read_small(path: &Path) -> Option<String> {
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
