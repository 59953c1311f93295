//! Reading a migration file the way psql runs it, as a stream.
//!
//! A [`Script`] reads a file in blocks and yields [`Item`]s: SQL statements (with
//! psql variables interpolated), `COPY … FROM stdin` statements whose data the caller
//! then pulls block by block with [`Script::copy_block`], and `\echo` text. It handles
//! the psql meta-commands that make sense in a migration:
//!
//! - `\set NAME [value …]`, `\unset NAME`, and `:NAME`, `:'NAME'`, `:"NAME"` in SQL;
//! - `\i FILE` (relative to the migration directory) and `\ir FILE` (relative to the
//!   including file), with cycle detection; included files stay inside the directory;
//! - `\if`, `\elif`, `\else`, `\endif` on a variable or a literal boolean;
//! - `\echo`, `\copy … FROM 'file'|stdin`, and `\restrict`/`\unrestrict` (written by
//!   recent pg_dump; they only matter to psql itself);
//! - `QUERY \gset [PREFIX]` and `QUERY \g`, which end a query: the engine runs a
//!   `\gset` query and sets variables from its row ([`Script::set_variable`]).
//!
//! Any other meta-command is an error naming it, the file and the line. Nothing is
//! ever held whole in memory: COPY data streams through, and a statement is kept only
//! until it is complete.
//!
//! The checksum covers the bytes of the file and of every file it includes, in the
//! order read, with CRLF read as LF and a leading byte-order mark dropped.
//!
//! The pieces: `reader` reads one file in blocks and splits it into chunks,
//! `checksum` is the checksum's line-end rule, `variables` holds the variables and
//! their interpolation, `meta` the backslash meta-commands (`\set`, `\i`, `\copy`…),
//! `conditional` the `\if` branches, and `statement` how a statement is made ready to
//! send; this module ties them into a [`Script`].

mod checksum;
mod conditional;
mod meta;
mod reader;
mod statement;
pub(crate) use statement::is_transaction_control;
mod variables;

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::lexer::ChunkKind;

pub(crate) use checksum::Checksum;
pub use checksum::{Hex, Sha256Sum};
pub use conditional::parse_bool;
use reader::Reader;
pub(crate) use reader::{OpenError, open_regular, open_regular_len, open_regular_len_at};
pub use variables::{Edit, Variables, interpolate, unmap_offset};

/// Where something is in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (the migration, or a file it includes).
    pub path: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// The text of the line before `column` (for quoting the line in errors).
    pub prefix: String,
}

impl Location {
    /// An error at this location's line.
    pub fn error(&self, message: impl Into<String>) -> ScriptError {
        ScriptError::at_line(&self.path, self.line, message)
    }
}

/// Why a script cannot be read or run as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScriptError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line (0 when the file cannot be opened).
    pub line: u32,
    /// 1-based column, when known.
    pub column: Option<u32>,
    /// What is wrong, one line.
    pub message: String,
}

impl ScriptError {
    /// An error at `line` of `path` (0: the file as a whole), without a column.
    fn at_line(path: &Path, line: u32, message: impl Into<String>) -> ScriptError {
        ScriptError {
            path: path.to_path_buf(),
            line,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ScriptError {
    /// One line: the path and the message (which may quote names from the file)
    /// with control characters escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::source::printable_path(&self.path))?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(c) = self.column {
            write!(f, ":{c}")?;
        }
        write!(f, ": {}", crate::source::printable(&self.message))
    }
}

/// One thing to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An SQL statement, variables interpolated.
    Sql {
        /// The statement as sent.
        text: String,
        /// Where it starts.
        at: Location,
        /// Interpolations, for mapping positions in `text` back to the file.
        edits: Vec<Edit>,
        /// The statement as written, when interpolation changed it.
        original: Option<String>,
        /// Ended by `\gset [PREFIX]`: run it, and set a variable named PREFIX plus
        /// the column name from each column of its one row (`Some("")` without a
        /// prefix).
        gset: Option<String>,
    },
    /// `COPY … FROM STDIN`: send `text`, then the blocks of [`Script::copy_block`].
    Copy {
        /// The COPY statement as sent.
        text: String,
        /// Where it starts.
        at: Location,
    },
    /// `\echo` output.
    Echo(String),
}

/// What a first pass over a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// SHA-256 of the file and what it includes.
    pub checksum: Sha256Sum,
    /// Statements it would run (COPY included).
    pub statements: usize,
    /// It has a top-level BEGIN/START TRANSACTION/COMMIT/END/ROLLBACK/ABORT.
    pub controls_transaction: bool,
    /// Statements and meta-commands written in it, in every branch: 0 for an empty
    /// file or one with only comments.
    pub written: usize,
}

/// The statement-sized buffer never grows much beyond this: a longer statement (as
/// written, or as sent after interpolation), or a longer line of COPY data, is an error.
pub const MAX_STATEMENT: usize = 256 * 1024 * 1024;
pub(crate) const BLOCK: usize = 256 * 1024;

/// A migration file being read, with the files it includes.
#[derive(Debug)]
pub struct Script {
    stack: Vec<Reader>,
    /// Where includes must stay (canonical).
    root: PathBuf,
    /// What `\i` is relative to (canonical): the migration directory.
    base: PathBuf,
    vars: Variables,
    sum: Option<Checksum>,
    statements: usize,
    written: usize,
    controls_transaction: bool,
    skipping_copy: bool,
    /// Read without a database ([`Script::summarize_rest`]): after a `\gset`, a
    /// variable it would set is unknown, so an unset variable reads as `true`.
    summarizing: bool,
    /// A `\gset` was read.
    gset_seen: bool,
}

/// The migration directory as [`Script::open`] resolves it: canonical, so that
/// includes can be checked to stay inside it.
///
/// # Errors
/// The directory cannot be resolved.
pub fn canonical_root(root: &Path) -> Result<PathBuf, ScriptError> {
    root.canonicalize()
        .map_err(|e| ScriptError::at_line(root, 0, format!("cannot read migration directory: {e}")))
}

impl Script {
    /// Opens a migration file. `root` is the migration directory: includes must stay in it.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: &Path, root: &Path, vars: &Variables) -> Result<Script, ScriptError> {
        Self::open_with_block(path, root, vars, BLOCK)
    }

    /// [`Script::open`] with another read size (small sizes test block boundaries).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open_with_block(
        path: &Path,
        root: &Path,
        vars: &Variables,
        block: usize,
    ) -> Result<Script, ScriptError> {
        Self::open_section(path, root, vars, block, None)
    }

    /// [`Script::open_with_block`] that runs only the lines of `section` of the file
    /// (a dbmate or goose "up" block). The checksum still covers the whole file, and
    /// errors name the file's own line numbers.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open_section(
        path: &Path,
        root: &Path,
        vars: &Variables,
        block: usize,
        section: Option<crate::layout::Section>,
    ) -> Result<Script, ScriptError> {
        let root = canonical_root(root)?;
        let mut reader = Reader::open(path, block.max(1))?;
        reader.section = section;
        Ok(Script::with_reader(reader, root, vars))
    }

    /// [`Script::open`] with the migration directory already made canonical (by
    /// [`canonical_root`]): a caller that opens many files of one directory resolves
    /// it once.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open_in(path: &Path, root: &Path, vars: &Variables) -> Result<Script, ScriptError> {
        let reader = Reader::open(path, BLOCK)?;
        Ok(Script::with_reader(reader, root.to_path_buf(), vars))
    }

    /// The whole of the file at `path`, read at once, and a script over those bytes
    /// that runs `section` of them (for a caller that wants the file's text too: the
    /// lint reads its comments). `root` is canonical (see [`Script::open_in`]).
    ///
    /// # Errors
    /// The file cannot be opened or read, or it is not a regular file.
    pub fn read_section_in(
        path: &Path,
        root: &Path,
        vars: &Variables,
        section: Option<crate::layout::Section>,
    ) -> Result<(std::sync::Arc<[u8]>, Script), ScriptError> {
        let (mut file, len) =
            open_regular_len(path).map_err(|e| ScriptError::at_line(path, 0, e.to_string()))?;
        // The length is a capacity hint only: the file may change while it is read.
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut bytes)
            .map_err(|e| ScriptError::at_line(path, 0, format!("cannot read: {e}")))?;
        let bytes: std::sync::Arc<[u8]> = bytes.into();
        let mut reader = Reader::new(
            path,
            Box::new(std::io::Cursor::new(bytes.clone())),
            BLOCK,
            bytes.len().saturating_add(1).min(BLOCK),
        );
        reader.section = section;
        Ok((bytes, Script::with_reader(reader, root.to_path_buf(), vars)))
    }

    /// A script over a file of which the caller already read the first bytes, `head`
    /// (`file` is positioned right after them). It reads exactly what [`Script::open`]
    /// would, in the same blocks, so its checksum is the same. `root` is canonical
    /// (see [`Script::open_in`]).
    pub fn from_head(
        path: &Path,
        head: Vec<u8>,
        file: File,
        root: &Path,
        vars: &Variables,
    ) -> Script {
        // A head shorter than a block is most likely the whole file: a buffer of
        // its size (and one byte to see the end) is enough, rather than 256 KiB
        // reserved for each of thousands of small files (the buffer grows if the
        // file goes on).
        let capacity = head.len().saturating_add(1).min(BLOCK);
        let file = Box::new(std::io::Cursor::new(head).chain(file));
        Script::with_reader(
            Reader::new(path, file, BLOCK, capacity),
            root.to_path_buf(),
            vars,
        )
    }

    fn with_reader(reader: Reader, root: PathBuf, vars: &Variables) -> Script {
        Script {
            stack: vec![reader],
            base: root.clone(),
            root,
            vars: vars.clone(),
            sum: Some(Checksum::new()),
            statements: 0,
            written: 0,
            controls_transaction: false,
            skipping_copy: false,
            summarizing: false,
            gset_seen: false,
        }
    }

    /// Lets includes reach anywhere below `root` (which holds the migration
    /// directory), not only below the directory; `\i` stays relative to the
    /// directory.
    ///
    /// # Errors
    /// `root` cannot be resolved.
    pub fn with_include_root(mut self, root: &Path) -> Result<Script, ScriptError> {
        self.root = root.canonicalize().map_err(|e| {
            ScriptError::at_line(root, 0, format!("cannot read the include root: {e}"))
        })?;
        Ok(self)
    }

    /// Reads a whole file without running it: checks everything that can be checked
    /// without a database, and returns its checksum.
    ///
    /// # Errors
    /// Anything [`Script::next_item`] reports.
    pub fn summarize(path: &Path, root: &Path, vars: &Variables) -> Result<Summary, ScriptError> {
        Self::summarize_section(path, root, vars, None)
    }

    /// [`Script::summarize`] of the lines of `section` (see [`Script::open_section`]).
    ///
    /// # Errors
    /// Anything [`Script::next_item`] reports.
    pub fn summarize_section(
        path: &Path,
        root: &Path,
        vars: &Variables,
        section: Option<crate::layout::Section>,
    ) -> Result<Summary, ScriptError> {
        let script = Script::open_section(path, root, vars, BLOCK, section)?;
        script.summarize_rest()
    }

    /// Reads the rest of an opened script without running it (see [`Script::summarize`]).
    ///
    /// # Errors
    /// Anything [`Script::next_item`] reports.
    pub fn summarize_rest(mut self) -> Result<Summary, ScriptError> {
        let script = &mut self;
        script.summarizing = true;
        while let Some(item) = script.next_item()? {
            if let Item::Copy { .. } = item {
                while script.copy_block()?.is_some() {}
            }
        }
        Ok(self.finish())
    }

    /// Sets (or, with `None`, unsets) a variable from here on: what `\gset` does
    /// with the row its query returned.
    pub fn set_variable(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self.vars.set(name, v),
            None => {
                self.vars.unset(name);
            }
        }
    }

    /// The checksum, statement count and transaction control seen, once the script is read.
    pub fn finish(mut self) -> Summary {
        Summary {
            checksum: self.sum.take().map(Checksum::finish).unwrap_or_default(),
            statements: self.statements,
            controls_transaction: self.controls_transaction,
            written: self.written,
        }
    }

    /// The next thing to run, or `None` at the end.
    ///
    /// # Errors
    /// The file cannot be read, is not UTF-8, does not lex, uses an unknown
    /// meta-command or an undefined variable, or an include fails.
    pub fn next_item(&mut self) -> Result<Option<Item>, ScriptError> {
        if self.skipping_copy {
            while self.copy_block()?.is_some() {}
        }
        loop {
            let Some(reader) = self.stack.last_mut() else {
                return Ok(None);
            };
            let sum = self.sum.get_or_insert_with(Checksum::new);
            let Some((kind, text, at)) = reader.next_chunk(sum)? else {
                if let Some(&(_, _, line)) = reader.conds.last() {
                    return Err(reader.err(line, "\\if without \\endif in this file"));
                }
                self.stack.pop();
                continue;
            };
            let copy_follows = reader.in_copy.is_some();
            if matches!(kind, ChunkKind::Sql | ChunkKind::Meta) {
                self.written += 1;
            }
            match kind {
                ChunkKind::Blank | ChunkKind::CopyData => {}
                ChunkKind::Meta => {
                    if let Some(item) = self.meta(&text, &at)? {
                        return Ok(Some(item));
                    }
                }
                ChunkKind::Sql => {
                    if !self.active() {
                        if copy_follows {
                            while self.copy_block()?.is_some() {}
                        }
                        continue;
                    }
                    return self.statement(text, at, copy_follows).map(Some);
                }
            }
        }
    }

    /// The next block of data of the current COPY, or `None` at its end.
    ///
    /// # Errors
    /// Read errors, a COPY without its `\.` line.
    pub fn copy_block(&mut self) -> Result<Option<Vec<u8>>, ScriptError> {
        let Some(reader) = self.stack.last_mut() else {
            return Ok(None);
        };
        let sum = self.sum.get_or_insert_with(Checksum::new);
        if let Some(file) = reader.copy_file.as_mut() {
            let mut block = vec![0; reader.block];
            let n = file.read(&mut block).map_err(|e| {
                ScriptError::at_line(
                    &reader.path,
                    reader.line,
                    format!("\\copy: cannot read the data file: {e}"),
                )
            })?;
            if n == 0 {
                reader.copy_file = None;
                self.skipping_copy = false;
                return Ok(None);
            }
            block.truncate(n);
            // The data a migration loads is part of what it does: it counts toward the checksum.
            sum.update(&block);
            return Ok(Some(block));
        }
        let block = reader.copy_block(sum)?;
        if block.is_none() {
            self.skipping_copy = false;
        }
        Ok(block)
    }
}

#[cfg(test)]
mod tests;
