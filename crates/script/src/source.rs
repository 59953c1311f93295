//! Migration sources: the `*.sql` files of a directory, in the order they run.
//!
//! In the native [`Layout`], a migration's *version* is its file name. Files run in
//! byte-wise order of their names, which is the order of the module's
//! `for f in /migrations/*.sql` loop under the C locale. Other layouts name, order
//! and split files as their tools do (see [`crate::layout`]). The checksum is the SHA-256 of the content with
//! CRLF line ends turned into LF and a leading byte-order mark dropped, so a
//! change of line endings alone is not drift.

use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::layout::Layout;
use crate::layout::{EntryKind, Section};
use crate::script::{Checksum, Script, ScriptError, Sha256Sum, Variables};

/// The directive that makes a file run without a wrapping transaction.
pub const NO_TRANSACTION_DIRECTIVE: &str = "kubemigrate:no-transaction";

/// `text` as it can be printed on one line of a terminal: control characters (a line
/// break, an escape sequence that would recolour or rewrite the terminal) are shown
/// escaped (`\n`, `\u{1b}`). Text without any is returned as it is.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A path for messages: see [`printable`].
pub fn printable_path(path: &Path) -> String {
    printable(&path.display().to_string()).into_owned()
}

/// One migration file, read and checksummed (its content is read again, as a
/// stream, when it runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The file name, e.g. `0001_create_users.sql`. This is the version recorded in
    /// the history; shared with the reports that name the file.
    pub version: std::sync::Arc<str>,
    /// The full path of the file.
    pub path: PathBuf,
    /// SHA-256 of the normalised content (and of what it includes).
    pub checksum: Sha256Sum,
    /// True when the leading comment lines hold `-- kubemigrate:no-transaction`.
    pub no_transaction: bool,
    /// True when the file has a top-level BEGIN/COMMIT/ROLLBACK of its own.
    pub controls_transaction: bool,
    /// How many statements it runs (with the variables given).
    pub statements: usize,
    /// Runs again, after the versioned files, whenever its checksum changed
    /// (`-- kubemigrate:repeatable`, Flyway's `R__` files).
    pub repeatable: bool,
    /// Only these lines of the file run (dbmate's and goose's "up" block).
    pub section: Option<Section>,
    /// Only hashed so far, not lexed (see [`SourceOptions::defer_lex`]): `statements`
    /// is 0 until [`Source::take_lexed`] takes in what [`Source::lex_deferred`]
    /// read. Its checksum and transaction mode are already what a full read gives.
    pub deferred: bool,
}

impl Migration {
    /// Whether the engine wraps the file in a transaction.
    pub fn transactional(&self) -> bool {
        !self.no_transaction && !self.controls_transaction
    }

    /// Opens the file to run it: its section only, `\i` relative to `dir`,
    /// includes kept inside `include_root` (else inside `dir`).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(
        &self,
        dir: &Path,
        include_root: Option<&Path>,
        vars: &Variables,
    ) -> Result<Script, ScriptError> {
        let script =
            Script::open_section(&self.path, dir, vars, crate::script::BLOCK, self.section)?;
        match include_root {
            Some(root) => script.with_include_root(root),
            None => Ok(script),
        }
    }

    /// The file's bytes, read once, and a [`Script`] over them (its section; `canonical_dir`
    /// made canonical by [`crate::script::canonical_root`], no include root): for a
    /// caller that wants the statements and the text.
    ///
    /// # Errors
    /// The file cannot be opened or read, or it is not a regular file.
    pub fn read_in(
        &self,
        canonical_dir: &Path,
        vars: &Variables,
    ) -> Result<(std::sync::Arc<[u8]>, Script), ScriptError> {
        Script::read_section_in(&self.path, canonical_dir, vars, self.section)
    }
}

/// Why a directory could not be read as a migration source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The directory cannot be listed.
    #[error("{}: cannot read migration directory: {cause}", printable_path(.path))]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A file cannot be read.
    #[error("{}: cannot read migration file: {cause}", printable_path(.path))]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A `*.sql` entry is a directory or another non-file.
    #[error(
        "{}: is not a regular file (migrations are the *.sql files directly in the directory)",
        printable_path(.path)
    )]
    NotAFile {
        /// The entry.
        path: PathBuf,
    },
    /// A file changed while the run read it: its checksum when lexed is not the
    /// one it was hashed with (see [`Source::lex_deferred`]).
    #[error(
        "{}: the file changed while kubemigrate read it; run again once nothing writes to the migration directory",
        printable_path(.path)
    )]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// A file name is not valid UTF-8, so it cannot be a version.
    #[error("{}: file name is not valid UTF-8", printable_path(.path))]
    NameNotUtf8 {
        /// The entry.
        path: PathBuf,
    },
    /// A file name holds a control character (a line break, an escape sequence): it
    /// cannot be a version, printed on one line or stored and shown safely.
    #[error(
        "{}: a file name with a control character (a line break, a terminal escape) cannot be a migration's version; rename the file",
        printable_path(.path)
    )]
    NameNotPrintable {
        /// The entry.
        path: PathBuf,
    },
    /// A file cannot be run as written (see [`ScriptError`]).
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// A file holds no statement.
    #[error(
        "{}: has no SQL statements (an empty migration is usually a mistake; add a comment and `SELECT 1;` to keep it)",
        printable_path(.path)
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A file breaks its tool's rules (a dbmate file without `-- migrate:up`, a
    /// malformed Flyway name…).
    #[error("{}{}: {}", printable_path(.path), if *.line > 0 { format!(":{line}") } else { String::new() }, printable(.message))]
    Layout {
        /// The file (or folder).
        path: PathBuf,
        /// 1-based line, 0 for the name itself.
        line: u32,
        /// What is wrong.
        message: String,
    },
    /// Two files of a layout have one version.
    #[error("{first} and {second} have the same version; the tool refuses them too: renumber one")]
    DuplicateVersion {
        /// The first file.
        first: String,
        /// The second file.
        second: String,
    },
    /// The directory holds no migration for its layout (and `--allow-empty` was not given).
    #[error("{}: no migration for layout {layout}{}", printable_path(.dir), found_words(.found, *.layout))]
    NoMigrations {
        /// The directory.
        dir: PathBuf,
        /// The layout used.
        layout: Layout,
        /// What the directory holds instead, and the layout that reads it.
        found: Vec<(String, Layout)>,
    },
    /// A native directory whose files belong to another tool: running them as
    /// native files would run their "down" parts too.
    #[error("{}: {what}: these are {layout} migrations; pass --layout {layout} (native would run every line of them, the down parts too)", printable_path(.path))]
    OtherTool {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        what: String,
        /// The layout that reads it.
        layout: Layout,
    },
    /// `--include-root` does not hold the migration directory.
    #[error("{}: the include root must hold the migration directory {}", printable_path(.root), printable_path(.dir))]
    IncludeRoot {
        /// The include root.
        root: PathBuf,
        /// The migration directory.
        dir: PathBuf,
    },
    /// Two names differ only in case.
    #[error(
        "{first} and {second}: file names differ only in case, so they collide on case-insensitive file systems and in review; rename one"
    )]
    CaseCollision {
        /// The first name.
        first: String,
        /// The second name.
        second: String,
    },
}

fn found_words(found: &[(String, Layout)], layout: Layout) -> String {
    if found.is_empty() {
        return "; the directory is empty (pass --allow-empty if that is meant)".to_string();
    }
    let what: Vec<&str> = found.iter().map(|(w, _)| w.as_str()).collect();
    let mut hint: Vec<String> = found
        .iter()
        .map(|(_, l)| *l)
        .filter(|l| *l != layout)
        .map(|l| format!("--layout {l}"))
        .collect();
    hint.dedup();
    let hint = if hint.is_empty() {
        "check the names against the layout (see docs/adopting.md), or pass --allow-empty"
            .to_string()
    } else {
        format!("use {}", hint.join(" or "))
    };
    format!("; found {}: {hint}", what.join(", "))
}

/// How to read a directory: [`Source::read`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceOptions {
    /// How the files are named, ordered and split.
    pub layout: Layout,
    /// A directory with no migration is fine (else it is an error).
    pub allow_empty: bool,
    /// Where `\i` and `\ir` may reach (default: the migration directory). It must
    /// hold the migration directory; included files are still checksummed.
    pub include_root: Option<PathBuf>,
    /// Only hash the native files whose lexing could tell nothing but their
    /// statement count and whether they lex (see [`Migration::deferred`]): a run
    /// that finds them applied with the same checksum needs nothing else of them.
    /// Whoever runs, plans or lists their statements lexes them first
    /// ([`Source::lex_deferred`], then [`Source::take_lexed`]).
    pub defer_lex: bool,
}

/// A warning found while reading a source; the run goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceWarning(pub String);

impl fmt::Display for SourceWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The migrations of one directory, in run order.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The directory.
    pub dir: PathBuf,
    /// The files, in run order: versioned files as the layout orders them, then
    /// repeatable ones.
    pub migrations: Vec<Migration>,
    /// Things worth telling the user (numeric prefixes that sort against their numbers).
    pub warnings: Vec<SourceWarning>,
    /// How the files were named, ordered and split.
    pub layout: Layout,
    /// Where includes may reach, when wider than `dir` (`--include-root`).
    pub include_root: Option<PathBuf>,
}

impl Source {
    /// Opens a migration of this source to run it (see [`Migration::open`]).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(&self, m: &Migration, vars: &Variables) -> Result<Script, ScriptError> {
        m.open(&self.dir, self.include_root.as_deref(), vars)
    }

    /// Orders two versions as this source's layout runs them.
    pub fn compare(&self, a: &str, b: &str) -> std::cmp::Ordering {
        self.layout.compare(a, b)
    }

    /// Reads a directory with these options: [`Source::read_dir`] for the native
    /// layout, else the files of the layout (see [`crate::layout`]).
    ///
    /// # Errors
    /// As [`Source::read_dir`]; a file that breaks its tool's rules; a directory
    /// with no migration for its layout (unless `allow_empty`), naming what it holds.
    pub fn read(
        dir: &Path,
        vars: &Variables,
        options: &SourceOptions,
    ) -> Result<Source, SourceError> {
        if let Some(root) = &options.include_root {
            let (r, d) = (root.canonicalize(), dir.canonicalize());
            match (r, d) {
                (Ok(r), Ok(d)) if d.starts_with(&r) => {}
                (Err(cause), _) => {
                    return Err(SourceError::Dir {
                        path: root.clone(),
                        cause,
                    });
                }
                _ => {
                    return Err(SourceError::IncludeRoot {
                        root: root.clone(),
                        dir: dir.to_path_buf(),
                    });
                }
            }
        }
        let mut source = if options.layout == Layout::Native {
            Self::read_native(
                dir,
                vars,
                options.include_root.as_deref(),
                options.defer_lex,
            )?
        } else {
            Self::read_layout(dir, vars, options)?
        };
        source.include_root.clone_from(&options.include_root);
        if source.migrations.is_empty() {
            if !options.allow_empty {
                return Err(SourceError::NoMigrations {
                    dir: dir.to_path_buf(),
                    layout: options.layout,
                    found: crate::layout::survey(dir),
                });
            }
            source.warnings.push(SourceWarning(format!(
                "{} holds no migration for layout {}: nothing to do",
                dir.display(),
                options.layout
            )));
        }
        Ok(source)
    }

    fn read_layout(
        dir: &Path,
        vars: &Variables,
        options: &SourceOptions,
    ) -> Result<Source, SourceError> {
        let layout = options.layout;
        let listing = layout.list(dir)?;
        let mut migrations = Vec::with_capacity(listing.entries.len());
        for entry in listing.entries {
            let text = if layout.reads_whole_file() {
                let bytes = std::fs::read(&entry.path).map_err(|cause| SourceError::File {
                    path: entry.path.clone(),
                    cause,
                })?;
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                read_head(&entry.path)?
            };
            let rules = layout.rules(&entry.path, &text)?;
            if rules.ignore {
                continue;
            }
            let summary = summarize(
                &entry.path,
                &listing.dir,
                options.include_root.as_deref(),
                vars,
                rules.section,
            )?;
            if summary.written == 0 && !layout.allows_empty() {
                return Err(SourceError::Empty { path: entry.path });
            }
            migrations.push(Migration {
                version: entry.version.into(),
                path: entry.path,
                checksum: summary.checksum,
                no_transaction: rules.no_transaction || entry.side_no_transaction,
                controls_transaction: summary.controls_transaction,
                statements: summary.statements,
                repeatable: entry.kind == EntryKind::Repeatable || rules.repeatable,
                section: rules.section,
                deferred: false,
            });
        }
        Ok(Source {
            dir: listing.dir,
            migrations,
            warnings: listing.warnings.into_iter().map(SourceWarning).collect(),
            layout,
            include_root: None,
        })
    }

    /// Reads every `*.sql` file directly in `dir` (not in subdirectories; symlinks to
    /// files are followed) as a [`Script`] with these variables: checks that it can
    /// run as written and computes its checksum. Other names are ignored (with a
    /// warning for names such as `x.SQL` or `x.sql.bak`).
    ///
    /// # Errors
    /// The directory or a file cannot be read, a `*.sql` entry is not a file, a file
    /// is not UTF-8, does not lex, or uses something the engine cannot run.
    pub fn read_dir(dir: &Path, vars: &Variables) -> Result<Source, SourceError> {
        let mut source = Self::read_native(dir, vars, None, false)?;
        if source.migrations.is_empty() {
            source.warnings.push(SourceWarning(format!(
                "{} holds no *.sql files: nothing to migrate",
                dir.display()
            )));
        }
        Ok(source)
    }

    fn read_native(
        dir: &Path,
        vars: &Variables,
        include_root: Option<&Path>,
        defer: bool,
    ) -> Result<Source, SourceError> {
        let dir_err = |cause| SourceError::Dir {
            path: dir.to_path_buf(),
            cause,
        };
        let mut entries = Vec::new();
        let mut warnings = Vec::new();
        // Listed with the names as the kernel gives them, borrowed: each entry
        // costs its name (shared with the reports) and its path, the path no
        // larger than it is (a file's path is held as long as the run).
        use std::os::unix::ffi::OsStrExt as _;
        let prefix = dir.as_os_str().as_encoded_bytes();
        let separator = usize::from(!prefix.is_empty() && !prefix.ends_with(b"/"));
        let path_of = |bytes: &[u8]| {
            let mut path = PathBuf::with_capacity(prefix.len() + separator + bytes.len());
            path.push(dir);
            path.push(std::ffi::OsStr::from_bytes(bytes));
            path
        };
        for entry in list_dir(dir).map_err(dir_err)? {
            let entry = entry.map_err(|e| dir_err(e.into()))?;
            let bytes = entry.file_name().to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(bytes) else {
                if bytes.ends_with(b".sql") {
                    return Err(SourceError::NameNotUtf8 {
                        path: path_of(bytes),
                    });
                }
                continue;
            };
            if !name.ends_with(".sql") || name.starts_with('.') {
                let lower = name.to_ascii_lowercase();
                if lower.ends_with(".sql") || lower.contains(".sql.") || lower.ends_with(".psql") {
                    warnings.push(SourceWarning(format!(
                        "{} is ignored: only files named *.sql (lower case) run",
                        printable(name)
                    )));
                }
                continue;
            }
            let path = path_of(bytes);
            if name.chars().any(char::is_control) {
                return Err(SourceError::NameNotPrintable { path });
            }
            let name: std::sync::Arc<str> = std::sync::Arc::from(name);
            entries.push((name, path));
        }
        // Names in a directory are distinct: no order among equals to keep.
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        warnings.sort_by(|a, b| a.0.cmp(&b.0));
        // Names that differ only in case are refused. Distinct names of ASCII with
        // no upper-case letter cannot be such: each is its own lower case.
        let plain = |n: &str| n.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase());
        if !entries.iter().all(|(n, _)| plain(n)) {
            let mut lower: Vec<(String, &str)> = entries
                .iter()
                .map(|(n, _)| (n.to_lowercase(), &**n))
                .collect();
            lower.sort();
            if let Some(w) = lower.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(SourceError::CaseCollision {
                    first: w[0].1.to_string(),
                    second: w[1].1.to_string(),
                });
            }
        }
        // The files' entries become their migrations before the files are read:
        // the read fills them in, so the names and paths are not held twice.
        let mut migrations: Vec<Migration> = entries
            .into_iter()
            .map(|(version, path)| Migration {
                version,
                path,
                checksum: Sha256Sum::default(),
                no_transaction: false,
                controls_transaction: false,
                statements: 0,
                repeatable: false,
                section: None,
                deferred: false,
            })
            .collect();
        read_migrations(&mut migrations, dir, include_root, vars, defer)?;
        warnings.extend(numeric_order_warnings(&migrations));
        // Repeatable files run after every versioned one (the sort is stable;
        // when there are none, nothing is moved and no room is taken to sort).
        if !migrations.is_sorted_by_key(|m| m.repeatable) {
            migrations.sort_by_key(|m| m.repeatable);
        }
        Ok(Source {
            dir: dir.to_path_buf(),
            migrations,
            warnings,
            layout: Layout::Native,
            include_root: None,
        })
    }

    /// The migration with this version, if any.
    pub fn get(&self, version: &str) -> Option<&Migration> {
        self.migrations.iter().find(|m| *m.version == *version)
    }

    /// Lexes the files that were only hashed, as a read without
    /// [`SourceOptions::defer_lex`] would have, for [`Source::take_lexed`]: the
    /// hashed files from the `from`-th on, on at most `threads` threads. Once
    /// `stop` is set no other file is started: the result then holds the first
    /// ones only ([`Lexed::len`]), and a later call can go on from there.
    ///
    /// # Errors
    /// What [`Source::read`] reports for such a file, and [`SourceError::Changed`]
    /// when a file's checksum is not the one it was hashed with.
    pub fn lex_deferred(
        &self,
        vars: &Variables,
        from: usize,
        threads: usize,
        stop: Option<&std::sync::atomic::AtomicBool>,
    ) -> Result<Lexed, SourceError> {
        let deferred: Vec<&Migration> = self
            .migrations
            .iter()
            .filter(|m| m.deferred)
            .skip(from)
            .collect();
        let paths: Vec<&Path> = deferred.iter().map(|m| m.path.as_path()).collect();
        let include_root = self.include_root.as_deref();
        let limits = ReadLimits { threads, stop };
        let reads = read_files(&paths, &self.dir, include_root, vars, false, limits)?;
        let mut lexed = Vec::with_capacity(reads.len());
        for (m, read) in deferred.iter().zip(reads) {
            if read.checksum != m.checksum {
                return Err(SourceError::Changed {
                    path: m.path.clone(),
                });
            }
            lexed.push((read.statements, read.controls_transaction));
        }
        Ok(Lexed(lexed))
    }

    /// Takes in what [`Source::lex_deferred`] learnt, for the first files still
    /// hashed only: afterwards their statement counts are known, and they are no
    /// longer deferred. Batches are taken in the order they were lexed in.
    pub fn take_lexed(&mut self, lexed: Lexed) {
        let deferred = self.migrations.iter_mut().filter(|m| m.deferred);
        for (m, (statements, controls_transaction)) in deferred.zip(lexed.0) {
            m.statements = statements;
            m.controls_transaction = controls_transaction;
            m.deferred = false;
        }
    }

    /// How many files are only hashed (see [`SourceOptions::defer_lex`]).
    pub fn deferred(&self) -> usize {
        self.migrations.iter().filter(|m| m.deferred).count()
    }
}

/// What [`Source::lex_deferred`] learnt of the files a read only hashed, in their order.
#[derive(Debug, Default)]
pub struct Lexed(Vec<(usize, bool)>);

impl Lexed {
    /// How many files were lexed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no file was lexed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How [`read_files`] may read: on at most `threads` threads, starting no file
/// once `stop` is set.
#[derive(Clone, Copy)]
struct ReadLimits<'a> {
    threads: usize,
    stop: Option<&'a std::sync::atomic::AtomicBool>,
}

/// Reads a file through once (see [`Script::summarize`]).
fn summarize(
    path: &Path,
    dir: &Path,
    include_root: Option<&Path>,
    vars: &Variables,
    section: Option<Section>,
) -> Result<crate::script::Summary, ScriptError> {
    let script = Script::open_section(path, dir, vars, crate::script::BLOCK, section)?;
    let script = match include_root {
        Some(root) => script.with_include_root(root)?,
        None => script,
    };
    script.summarize_rest()
}

/// A native file that is another tool's: a dbmate or goose marker line before any
/// statement (the leading comment lines).
fn other_tool(head: &str) -> Option<(&'static str, Layout)> {
    let head = head.strip_prefix('\u{feff}').unwrap_or(head);
    for line in head.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if !t.starts_with("--") {
            return None;
        }
        if t.strip_prefix("--")
            .is_some_and(|r| r.trim_start().starts_with("migrate:up"))
        {
            return Some(("a '-- migrate:up' line", Layout::Dbmate));
        }
        if t.eq_ignore_ascii_case("-- +goose up") {
            return Some(("a '-- +goose Up' line", Layout::Goose));
        }
    }
    None
}

/// How many bytes at the start of a file are searched for directives.
const HEAD: u64 = 64 * 1024;

/// The first 64 KiB of a file, as text, for the leading comment lines.
fn read_head(path: &Path) -> Result<String, SourceError> {
    use std::io::Read;
    let mut head = Vec::new();
    let file = crate::script::open_regular(path).map_err(|e| match e {
        crate::script::OpenError::Io(cause) => SourceError::File {
            path: path.to_path_buf(),
            cause,
        },
        _ => SourceError::NotAFile {
            path: path.to_path_buf(),
        },
    })?;
    file.take(HEAD)
        .read_to_end(&mut head)
        .map_err(|cause| SourceError::File {
            path: path.to_path_buf(),
            cause,
        })?;
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Reads the native files of `migrations`, in parallel when there are many, each
/// once: one open, one read of its head (the whole of a small file), the rest as
/// the [`Script`] streams it; and fills in what each read learnt. On errors, the
/// error of the first file that has one (the one a file-by-file read would stop at).
fn read_migrations(
    migrations: &mut [Migration],
    dir: &Path,
    include_root: Option<&Path>,
    vars: &Variables,
    defer: bool,
) -> Result<(), SourceError> {
    let paths: Vec<&Path> = migrations.iter().map(|m| m.path.as_path()).collect();
    let limits = ReadLimits {
        threads: 8,
        stop: None,
    };
    let reads = read_files(&paths, dir, include_root, vars, defer, limits)?;
    drop(paths);
    // `read_files` returns one read per path, in order, or an error.
    for (m, read) in migrations.iter_mut().zip(reads) {
        read.fill(m);
    }
    Ok(())
}

/// [`read_migration`] of each of `paths`, entries of `dir`, in their order: in
/// parallel when there are many; on errors, the error of the first file that has
/// one. Once `limits.stop` is set no other file is started: the result then holds
/// the first files only.
fn read_files(
    paths: &[&Path],
    dir: &Path,
    include_root: Option<&Path>,
    vars: &Variables,
    defer: bool,
    limits: ReadLimits<'_>,
) -> Result<Vec<FileRead>, SourceError> {
    use std::sync::atomic::Ordering::Relaxed;
    let stopped = || limits.stop.is_some_and(|stop| stop.load(Relaxed));
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    // Includes are checked against the canonical directory: resolved once, not per file.
    let root = crate::script::canonical_root(dir)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(limits.threads)
        .min(paths.len().div_ceil(64));
    let dir = open_dir(dir);
    let read = |path: &Path| read_migration(path, dir.as_ref(), &root, include_root, vars, defer);
    if threads <= 1 {
        return paths
            .iter()
            .take_while(|_| !stopped())
            .map(|path| read(path))
            .collect();
    }
    // Each thread takes the next file not taken yet (files differ in size, so
    // fixed shares would leave one thread idle while the other reads), and stops
    // at its first error; files are taken in order and every taken file is read,
    // so every file before the first failing one is read, and that error is the
    // one reported. Each read goes to its file's place: no list per thread, and
    // no merging of them, beside the files at the read's peak of memory.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let reads: Vec<std::sync::OnceLock<FileRead>> =
        paths.iter().map(|_| std::sync::OnceLock::new()).collect();
    let first_error: std::sync::Mutex<Option<(usize, SourceError)>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (read, next, failed, stopped) = (&read, &next, &failed, &stopped);
                let (reads, first_error) = (&reads, &first_error);
                s.spawn(move || {
                    while !failed.load(Relaxed) && !stopped() {
                        let i = next.fetch_add(1, Relaxed);
                        let Some(path) = paths.get(i) else {
                            break;
                        };
                        match read(path) {
                            // Each index is taken once: its place is empty.
                            Ok(done) => drop(reads[i].set(done)),
                            Err(e) => {
                                failed.store(true, Relaxed);
                                let mut first = first_error
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                                if first.as_ref().is_none_or(|(j, _)| i < *j) {
                                    *first = Some((i, e));
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    });
    let first_error = first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    // Files are taken in order and every taken file is read: the reads fill the
    // first places (all of them unless `stop` ended the read early).
    Ok(reads
        .into_iter()
        .map_while(std::sync::OnceLock::into_inner)
        .collect())
}

/// What reading one native file learnt: a [`Migration`] but for its name and path.
#[derive(Debug)]
struct FileRead {
    checksum: Sha256Sum,
    no_transaction: bool,
    controls_transaction: bool,
    statements: usize,
    repeatable: bool,
    deferred: bool,
}

impl FileRead {
    /// Fills in `m`, the migration of the file read, with what the read learnt.
    fn fill(self, m: &mut Migration) {
        m.checksum = self.checksum;
        m.no_transaction = self.no_transaction;
        m.controls_transaction = self.controls_transaction;
        m.statements = self.statements;
        m.repeatable = self.repeatable;
        m.deferred = self.deferred;
    }
}

/// The entries of `dir`, `.` and `..` among them, as `opendir(3)` lists them.
fn list_dir(dir: &Path) -> std::io::Result<rustix::fs::Dir> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(dir, flags, Mode::empty())?;
    Ok(rustix::fs::Dir::new(fd)?)
}

/// `dir` open, for opening its entries by name ([`read_migration`]); `None` when it
/// cannot be opened, and they are opened by their paths.
fn open_dir(dir: &Path) -> Option<std::fs::File> {
    std::fs::File::open(dir).ok()
}

/// Reads one native migration file: its directives, checksum and statements; with
/// `defer`, a small file that [`hash_only`] allows is only hashed. `dir`, when
/// given, is the open directory `path` is an entry of: the file is opened by its
/// name in it.
fn read_migration(
    path: &Path,
    dir: Option<&std::fs::File>,
    root: &Path,
    include_root: Option<&Path>,
    vars: &Variables,
    defer: bool,
) -> Result<FileRead, SourceError> {
    use std::io::Read;
    let opened = match (dir, path.file_name()) {
        (Some(dir), Some(name)) => crate::script::open_regular_len_at(dir, name),
        _ => crate::script::open_regular_len(path),
    };
    let (mut file, len) = opened.map_err(|e| match e {
        crate::script::OpenError::Io(cause) => SourceError::File {
            path: path.to_path_buf(),
            cause,
        },
        _ => SourceError::NotAFile {
            path: path.to_path_buf(),
        },
    })?;
    // The first 64 KiB (a smaller file whole, in one read when it did not grow since
    // it was opened): the leading comment lines are in there.
    let want = usize::try_from(HEAD.min(len.saturating_add(1))).unwrap_or(0);
    let whole = usize::try_from(len.min(HEAD)).unwrap_or(0);
    let mut head = vec![0; want];
    let mut got = 0;
    while got < want {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(cause) => {
                return Err(SourceError::File {
                    path: path.to_path_buf(),
                    cause,
                });
            }
        }
        if got >= whole {
            break;
        }
    }
    head.truncate(got);
    // The head as text for the directives (a copy only when it is not UTF-8, or
    // ends inside a character: the script reports such a file on its own).
    let (rules, hashed) = {
        let text = String::from_utf8_lossy(&head);
        if let Some((what, layout)) = other_tool(&text) {
            return Err(SourceError::OtherTool {
                path: path.to_path_buf(),
                what: what.to_string(),
                layout,
            });
        }
        let rules = Layout::Native.rules(path, &text)?;
        // The whole file is in `head` (it is smaller than the head and did not
        // grow), it is UTF-8, and lexing it could change nothing but its statement
        // count: its checksum is the hash of its text.
        let whole_file = len < HEAD && u64::try_from(got).is_ok_and(|got| got == len);
        let hashed = match &text {
            std::borrow::Cow::Borrowed(text) if defer && whole_file && hash_only(text) => {
                Some(sum_of_text(text))
            }
            _ => None,
        };
        (rules, hashed)
    };
    if let Some(checksum) = hashed {
        return Ok(FileRead {
            checksum,
            no_transaction: rules.no_transaction,
            controls_transaction: false,
            statements: 0,
            repeatable: rules.repeatable,
            deferred: true,
        });
    }
    let script = Script::from_head(path, head, file, root, vars);
    let script = match include_root {
        Some(include_root) => script.with_include_root(include_root)?,
        None => script,
    };
    let summary = script.summarize_rest()?;
    if summary.written == 0 {
        return Err(SourceError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(FileRead {
        checksum: summary.checksum,
        no_transaction: rules.no_transaction,
        controls_transaction: summary.controls_transaction,
        statements: summary.statements,
        repeatable: rules.repeatable,
        deferred: false,
    })
}

/// The words that start a top-level transaction-control statement (see
/// `is_transaction_control` in the script's statements): a file without any is
/// not lexed to find out.
const TRANSACTION_WORDS: [&[u8]; 6] =
    [b"begin", b"start", b"commit", b"end", b"rollback", b"abort"];

/// Whether lexing `text` could tell nothing but its statement count: it has no psql
/// meta-command (no `\` anywhere), no variable to interpolate (no `:` before a name,
/// a quote or `{`, except in `::`), and none of its statements is transaction
/// control (`BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`),
/// judged as a full read judges it, on the lexer's statements (a function body's
/// `BEGIN … END` is quoted; a file with no such word anywhere is not lexed). Then
/// its checksum is the hash of its text (nothing is included), and it does not
/// control its transaction; only its statement count, and whether it lexes at all,
/// are left to [`Source::lex_deferred`] (a file lexed here that the lexer refuses is
/// left to a full read, which reports it). The meta-command and variable tests look
/// at every byte after the leading comment lines, in comments and quotes too: they
/// err towards a full read, never the other way.
fn hash_only(text: &str) -> bool {
    // The leading comment lines (where the directives are) are comments for sure:
    // nothing before them can open a quote.
    let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    while let Some(line) = rest.split_inclusive('\n').next()
        && (line.trim().is_empty() || line.trim_start().starts_with("--"))
        && line.ends_with('\n')
    {
        rest = &rest[line.len()..];
    }
    let bytes = rest.as_bytes();
    if memchr::memchr(b'\\', bytes).is_some() {
        return false;
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    let mut from = 0;
    while let Some(at) = memchr::memchr(b':', &bytes[from..]) {
        let i = from + at;
        match bytes.get(i + 1) {
            Some(b':') => from = i + 2,
            Some(&next) if word(next) || matches!(next, b'\'' | b'"' | b'{') => return false,
            _ => from = i + 1,
        }
    }
    // Most files hold no word that may start transaction control: no need to lex.
    let mut i = 0;
    let mut transaction_word = false;
    while let Some(&b) = bytes.get(i) {
        if !word(b) {
            i += 1;
            continue;
        }
        let start = i;
        while bytes.get(i).is_some_and(|&b| word(b)) {
            i += 1;
        }
        let w = &bytes[start..i];
        if TRANSACTION_WORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) {
            transaction_word = true;
            break;
        }
    }
    if !transaction_word {
        return true;
    }
    match crate::lexer::split(rest) {
        Ok(chunks) => !chunks.iter().any(|c| {
            c.kind == crate::lexer::ChunkKind::Sql
                && crate::script::is_transaction_control(c.text(rest))
        }),
        Err(_) => false,
    }
}

/// SHA-256 (lower-case hex) of `sql` with CRLF turned into LF and a leading BOM dropped:
/// what a [`Script`] computes for a file with this content and no includes.
pub fn checksum(sql: &str) -> String {
    sum_of_text(sql).to_string()
}

/// [`checksum`], as its bytes.
pub fn sum_of_text(sql: &str) -> Sha256Sum {
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(sql);
    let mut sum = Checksum::new();
    sum.update(sql.as_bytes());
    sum.finish()
}

/// True when one of the leading lines (blank lines and `--` comments before the first
/// other line) is `-- kubemigrate:no-transaction`.
pub fn has_no_transaction_directive(sql: &str) -> bool {
    crate::layout::leading_directive(sql, NO_TRANSACTION_DIRECTIVE)
}

/// Warns when names with numeric prefixes of different widths sort against their numbers,
/// e.g. `10_a.sql` before `2_b.sql`.
fn numeric_order_warnings(migrations: &[Migration]) -> Vec<SourceWarning> {
    let mut warnings = Vec::new();
    let mut max: Option<(u128, usize, &str)> = None;
    for m in migrations {
        let digits = m.version.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            continue;
        }
        let Ok(n) = m.version[..digits].parse::<u128>() else {
            continue;
        };
        if let Some((max_n, max_width, max_name)) = max
            && n < max_n
            && digits != max_width
        {
            warnings.push(SourceWarning(format!(
                "{max_name} runs before {} although its number is larger: file names sort \
                     byte-wise; pad the numbers to one width (e.g. {:0width$}_…)",
                m.version,
                n,
                width = max_width.max(digits)
            )));
            continue;
        }
        if max.is_none_or(|(max_n, _, _)| n >= max_n) {
            max = Some((n, digits, &m.version));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a failed unwrap is the failure the test reports"
    )]
    use super::*;

    fn m(name: &str) -> Migration {
        Migration {
            deferred: false,
            version: name.into(),
            path: PathBuf::from(name),
            checksum: sum_of_text("select 1;"),
            no_transaction: false,
            controls_transaction: false,
            statements: 1,
            repeatable: false,
            section: None,
        }
    }

    #[test]
    fn crlf_and_bom_do_not_change_the_checksum() {
        let lf = checksum("create table t (id int);\nselect 1;\n");
        assert_eq!(lf, checksum("create table t (id int);\r\nselect 1;\r\n"));
        assert_eq!(
            lf,
            checksum("\u{feff}create table t (id int);\r\nselect 1;\n")
        );
        assert_ne!(lf, checksum("create table t (id int);\nselect 2;\n"));
        // A lone CR is content, not a line end.
        assert_ne!(checksum("a\rb"), checksum("ab"));
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn only_text_that_lexing_could_not_change_is_hashed_only() {
        for plain in [
            "CREATE TABLE t (id int);\n",
            "select 1::int, '12'::text; -- a cast is not a variable\n",
            "create index i on t (a); /* comment */ insert into t values ('x');",
            "CREATE TABLE ending (id int); -- words that hold a keyword are fine",
            "",
            "-- kubemigrate:no-transaction\n\n  -- begin: why\ncreate index concurrently i on t (a);",
            // Transaction words in quotes and comments start no statement.
            "create function f() returns int language plpgsql as $$ begin return 1; end $$;",
            "create function g() returns int language plpgsql as $body$\nbegin\n  return 2;\nend\n$body$;",
            "select 'commit', \"end\"; -- begin\n/* rollback /* nested */ abort */ select 1;",
            // An SQL-standard body's BEGIN ATOMIC … END is not transaction control.
            "create function f() returns int language sql begin atomic select 1; end;",
        ] {
            assert!(hash_only(plain), "{plain:?}");
        }
        for lexed in [
            "\\i other.sql\n",
            "select E'a\\nb';",
            "select :v;",
            "select :'v';",
            "select :\"v\";",
            "select :{?v};",
            "select :1;",
            "BEGIN;\ncreate table t (id int);\nCOMMIT;",
            "start transaction;",
            "create table t (id int); end;",
            "rollback;",
            "Abort;",
            "-- kubemigrate:no-transaction\nselect :v;",
            "-- a comment\nbegin;",
            "create table t (id int); /* done */ commit;",
            "select 'a'; begin;",
            "select $q$ $$ $q$; end;",
        ] {
            assert!(!hash_only(lexed), "{lexed:?}");
        }
    }

    /// Pieces of SQL whose concatenations try `hash_only` on transaction words in
    /// and out of quotes and comments.
    const HASH_ONLY_PIECES: &[&str] = &[
        "begin",
        "BEGIN;",
        "begin atomic",
        "commit;",
        "end",
        "end;",
        "start transaction;",
        "rollback",
        "abort;",
        "select 1",
        ";",
        "\n",
        " ",
        "'",
        "''",
        "\"",
        "$$",
        "$a$",
        "$1",
        "--",
        "/*",
        "*/",
        "e'",
        "x",
        "create function f() as ",
        "(",
        ")",
        "é",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// What `hash_only` lets through, a full read agrees on: it controls no
        /// transaction, and its checksum is the hash of its text.
        #[test]
        fn what_is_hashed_only_a_full_read_agrees_with(
            text in proptest::strategy::Strategy::prop_map(proptest::collection::vec(proptest::sample::select(HASH_ONLY_PIECES), 0..24), |v| v.concat())
        ) {
            if hash_only(&text) {
                let dir = std::env::temp_dir().join(format!(
                    "km-hash-only-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join("t.sql");
                std::fs::write(&path, &text).unwrap();
                // A text the lexer refuses cannot run: its read fails later, when
                // it is lexed; nothing to compare.
                if let Ok(summary) = Script::summarize(&path, &dir, &Variables::new()) {
                    proptest::prop_assert!(!summary.controls_transaction, "{text:?}");
                    proptest::prop_assert_eq!(summary.checksum.to_string(), checksum(&text));
                }
            }
        }
    }

    #[test]
    fn a_deferred_read_hashes_as_a_full_read_and_lexing_later_fills_in_the_rest() {
        let dir = std::env::temp_dir().join(format!("km-source-defer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let files = [
            (
                "001.sql",
                "create table a (id int);\ncreate index a_i on a (id);\n",
            ),
            (
                "002.sql",
                "\u{feff}create table b (id int);\r\ninsert into b values (1);\r\n",
            ),
            (
                "003.sql",
                "-- kubemigrate:no-transaction\ncreate index concurrently b_i on b (id);\n",
            ),
            ("004.sql", "begin;\ncreate table c (id int);\ncommit;\n"),
            ("005.sql", "select :'v' as v;\n"),
            (
                "006.sql",
                "-- kubemigrate:repeatable\ncreate or replace view v as select 1 as x;\n",
            ),
        ];
        for (name, body) in files {
            std::fs::write(dir.join(name), body).unwrap();
        }
        let mut vars = Variables::new();
        vars.set("v", "x");
        let options = |defer_lex| SourceOptions {
            defer_lex,
            ..SourceOptions::default()
        };
        let full = Source::read(&dir, &vars, &options(false)).unwrap();
        let hashed = Source::read(&dir, &vars, &options(true)).unwrap();
        assert!(full.migrations.iter().all(|m| !m.deferred));
        let deferred: Vec<&str> = hashed
            .migrations
            .iter()
            .filter(|m| m.deferred)
            .map(|m| &*m.version)
            .collect();
        assert_eq!(deferred, ["001.sql", "002.sql", "003.sql", "006.sql"]);
        // What a no-op run reports of a file is known without lexing it.
        for (f, h) in full.migrations.iter().zip(&hashed.migrations) {
            assert_eq!(
                (&f.version, &f.checksum, f.transactional(), f.repeatable),
                (&h.version, &h.checksum, h.transactional(), h.repeatable)
            );
        }
        let lexed = hashed.lex_deferred(&vars, 0, 2, None).unwrap();
        assert_eq!(lexed.len(), hashed.deferred());
        let mut lexed_source = hashed.clone();
        lexed_source.take_lexed(lexed);
        assert_eq!(lexed_source.migrations, full.migrations);
        assert_eq!(lexed_source.deferred(), 0);
        // Stopped before the first file, then gone on with from where it stopped;
        // and in two batches of one and the rest, taken in order.
        let stop = std::sync::atomic::AtomicBool::new(true);
        let none = hashed.lex_deferred(&vars, 0, 1, Some(&stop)).unwrap();
        assert!(none.is_empty());
        let rest = hashed.lex_deferred(&vars, none.len(), 2, None).unwrap();
        let mut lexed_source = hashed.clone();
        lexed_source.take_lexed(none);
        lexed_source.take_lexed(rest);
        assert_eq!(lexed_source.migrations, full.migrations);
        let mut one = hashed.lex_deferred(&vars, 0, 1, None).unwrap();
        one.0.truncate(1);
        let rest = hashed.lex_deferred(&vars, 1, 1, None).unwrap();
        assert_eq!(rest.len(), hashed.deferred() - 1);
        let mut lexed_source = hashed.clone();
        lexed_source.take_lexed(one);
        assert_eq!(lexed_source.deferred(), hashed.deferred() - 1);
        lexed_source.take_lexed(rest);
        assert_eq!(lexed_source.migrations, full.migrations);
        // A file that changed since it was hashed, and one that does not lex.
        std::fs::write(dir.join("002.sql"), "create table b2 (id int);\n").unwrap();
        let err = hashed.lex_deferred(&vars, 0, 1, None).unwrap_err();
        assert!(
            matches!(&err, SourceError::Changed { path } if path.ends_with("002.sql")),
            "{err}"
        );
        // One with nothing to run is hashed only, and refused once lexed.
        std::fs::write(dir.join("002.sql"), "-- only a comment\n").unwrap();
        let hashed = Source::read(&dir, &vars, &options(true)).unwrap();
        assert!(hashed.migrations[1].deferred);
        let err = hashed.lex_deferred(&vars, 0, 2, None).unwrap_err();
        assert!(
            matches!(&err, SourceError::Empty { path } if path.ends_with("002.sql")),
            "{err}"
        );
        // One the lexer refuses: hashed only, and refused once lexed, unless a
        // transaction word in it had it lexed by the read itself.
        std::fs::write(dir.join("001.sql"), "select 'unterminated;\n").unwrap();
        let hashed = Source::read(&dir, &vars, &options(true)).unwrap();
        assert!(hashed.migrations[0].deferred);
        let err = hashed.lex_deferred(&vars, 0, 2, None).unwrap_err();
        assert!(err.to_string().contains("001.sql"), "{err}");
        std::fs::write(dir.join("001.sql"), "select 'unterminated; commit;\n").unwrap();
        for defer in [true, false] {
            let err = Source::read(&dir, &vars, &options(defer)).unwrap_err();
            assert!(err.to_string().contains("001.sql"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn directive_only_in_leading_comments() {
        assert!(has_no_transaction_directive(
            "-- add an index\n\n--   kubemigrate:no-transaction\ncreate index concurrently i on t (a);"
        ));
        assert!(!has_no_transaction_directive(
            "select 1;\n-- kubemigrate:no-transaction\n"
        ));
        assert!(!has_no_transaction_directive(
            "-- kubemigrate:no-transactions\n"
        ));
    }

    #[test]
    fn warns_when_numbers_of_different_widths_sort_against_their_numbers() {
        let w = numeric_order_warnings(&[m("10_a.sql"), m("2_b.sql")]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].0.starts_with("10_a.sql runs before 2_b.sql"),
            "{}",
            w[0]
        );
        assert!(numeric_order_warnings(&[m("01_a.sql"), m("02_b.sql"), m("10_c.sql")]).is_empty());
        assert!(numeric_order_warnings(&[m("1_a.sql"), m("2_b.sql"), m("init.sql")]).is_empty());
    }

    #[test]
    fn reads_sql_files_in_byte_order_and_rejects_non_utf8() {
        let dir = std::env::temp_dir().join(format!("km-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in [
            ("b.sql", "select 2;"),
            ("C.sql", "select 1;"),
            ("a.txt", "x"),
            ("a.sql", "-- kubemigrate:no-transaction\nvacuum;"),
        ] {
            std::fs::write(dir.join(name), body).unwrap();
        }
        std::fs::create_dir_all(dir.join("sub.d")).unwrap();
        let vars = Variables::new();
        let s = Source::read_dir(&dir, &vars).unwrap();
        let names: Vec<_> = s.migrations.iter().map(|m| &*m.version).collect();
        assert_eq!(names, ["C.sql", "a.sql", "b.sql"]);
        assert_eq!(s.migrations[0].path, dir.join("C.sql"));
        assert!(s.migrations[1].no_transaction);
        // A name that is not UTF-8: ignored unless it ends in `.sql`, then refused.
        {
            use std::os::unix::ffi::OsStrExt as _;
            let name = |b: &[u8]| dir.join(std::ffi::OsStr::from_bytes(b));
            std::fs::write(name(b"\xff.txt"), "x").unwrap();
            assert_eq!(Source::read_dir(&dir, &vars).unwrap().migrations.len(), 3);
            std::fs::write(name(b"\xff.sql"), "select 1;").unwrap();
            let err = Source::read_dir(&dir, &vars).unwrap_err();
            assert!(
                matches!(&err, SourceError::NameNotUtf8 { path } if *path == name(b"\xff.sql")),
                "{err}"
            );
            std::fs::remove_file(name(b"\xff.sql")).unwrap();
            std::fs::remove_file(name(b"\xff.txt")).unwrap();
        }
        std::fs::write(dir.join("e.sql"), b"select 1;\n\xff").unwrap();
        let err = Source::read_dir(&dir, &vars).unwrap_err().to_string();
        assert!(err.ends_with("e.sql:2: file is not valid UTF-8"), "{err}");
        std::fs::remove_file(dir.join("e.sql")).unwrap();
        std::fs::create_dir_all(dir.join("d.sql")).unwrap();
        let err = Source::read_dir(&dir, &vars).unwrap_err();
        assert!(matches!(err, SourceError::NotAFile { .. }), "{err}");
        std::fs::remove_dir(dir.join("d.sql")).unwrap();
        std::fs::write(dir.join("d.SQL"), "select 1;").unwrap();
        let s = Source::read_dir(&dir, &vars).unwrap();
        assert_eq!(
            s.warnings[0].0,
            "d.SQL is ignored: only files named *.sql (lower case) run"
        );
        std::fs::write(dir.join("c.sql"), "select 1;").unwrap();
        let err = Source::read_dir(&dir, &vars).unwrap_err().to_string();
        assert_eq!(
            err,
            "C.sql and c.sql: file names differ only in case, so they collide on case-insensitive file systems and in review; rename one"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn many_files_read_in_parallel_as_one_by_one_and_the_first_error_in_order_wins() {
        let dir = std::env::temp_dir().join(format!("km-source-many-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("lib/x.sql"), "select 'included';\n").unwrap();
        let big = "-- padding\n".repeat(7000) + "-- kubemigrate:no-transaction\nselect 1;\n";
        for i in 0..300 {
            let body = match i % 6 {
                0 => format!("create table t{i} (id int);\n"),
                1 => format!("\u{feff}select {i};\r\nselect 2;\r\n"),
                2 => format!("\\ir lib/x.sql\nselect {i};\n"),
                3 => format!(
                    "-- kubemigrate:no-transaction\ncreate index concurrently i{i} on t (a);\n"
                ),
                4 => format!("begin;\nselect {i};\ncommit;\n"),
                _ => format!("{big}-- {i}\n"),
            };
            std::fs::write(dir.join(format!("{i:04}.sql")), body).unwrap();
        }
        let vars = Variables::new();
        let s = Source::read_dir(&dir, &vars).unwrap();
        assert_eq!(s.migrations.len(), 300);
        for (i, m) in s.migrations.iter().enumerate() {
            assert_eq!(*m.version, format!("{i:04}.sql"));
            let one = Script::summarize(&m.path, &dir, &vars).unwrap();
            let text = std::fs::read(&m.path).unwrap();
            let head = &text[..text.len().min(64 * 1024)];
            assert_eq!(m.checksum, one.checksum, "{}", m.version);
            assert_eq!(m.statements, one.statements, "{}", m.version);
            assert_eq!(m.controls_transaction, one.controls_transaction);
            assert_eq!(
                m.no_transaction,
                has_no_transaction_directive(&String::from_utf8_lossy(head)),
                "{}",
                m.version
            );
        }
        // The directive past the first 64 KiB does not count.
        assert!(!s.migrations[5].no_transaction);
        assert!(s.migrations[3].no_transaction);
        // Errors in two files, in two threads' shares: the first one in order is reported.
        std::fs::write(dir.join("0250.sql"), "select 'unterminated;\n").unwrap();
        std::fs::write(dir.join("0120.sql"), "-- only a comment\n").unwrap();
        let err = Source::read_dir(&dir, &vars).unwrap_err();
        assert!(
            matches!(&err, SourceError::Empty { path } if path.ends_with("0120.sql")),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
