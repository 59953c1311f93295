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

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::lexer::{self, ChunkKind, LexError};

/// psql variables: `--set NAME=VALUE` on the command line, `\set` in files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables(BTreeMap<String, String>);

impl Variables {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Parses `NAME=VALUE` (as given to `--set`).
    ///
    /// # Errors
    /// No `=`, or a name that a file could never use: it must start with a letter or
    /// `_`, then letters, digits and `_` (so `:1a` is never a variable).
    pub fn parse_assignment(text: &str) -> Result<(String, String), String> {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: expected NAME=VALUE"))?;
        if !usable_name(name) {
            return Err(format!(
                "{name:?}: a variable name starts with a letter or _, then letters, digits and _ \
                 (a file could never use :{name})"
            ));
        }
        Ok((name.to_string(), value.to_string()))
    }
}

/// A name `\set` takes: letters, digits and `_` (as before: a file that was applied
/// with such a `\set` must still read the same).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A name `:name` can refer to (what [`interpolate`] reads as one): it starts with a
/// letter or `_`. Required of `--set`, where a name no file can use is a mistake.
fn usable_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && valid_name(name)
}

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
        ScriptError {
            path: self.path.clone(),
            line: self.line,
            column: None,
            message: message.into(),
        }
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

/// A variable interpolation: `original` bytes at `start` in the file's statement text
/// became `replaced` bytes in the text sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit {
    /// Offset in the statement as written.
    pub start: usize,
    /// Length as written (`:name`).
    pub original: usize,
    /// Length as sent (the value).
    pub replaced: usize,
}

/// Maps a byte offset in an interpolated statement back to the statement as written.
pub fn unmap_offset(edits: &[Edit], offset: usize) -> usize {
    let mut shift: isize = 0;
    for e in edits {
        let new_start = e.start.saturating_add_signed(shift);
        if offset < new_start {
            break;
        }
        if offset < new_start + e.replaced {
            return e.start;
        }
        shift += e.replaced as isize - e.original as isize;
    }
    offset.saturating_add_signed(-shift)
}

/// What a first pass over a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// SHA-256 (hex) of the file and what it includes.
    pub checksum: String,
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
const COPY_LINE_TOO_LONG: &str =
    "a line of COPY data longer than 256 MiB (a missing line break, or a value too large to load)";
pub(crate) const BLOCK: usize = 256 * 1024;

/// A file read in blocks.
struct Reader {
    path: PathBuf,
    dir: PathBuf,
    /// The file, or (see [`Script::from_head`]) its first bytes, already read, and then
    /// the file.
    file: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Bytes before `start` are consumed.
    start: usize,
    /// Bytes of `buf` that are valid UTF-8 (the rest is an incomplete character).
    eof: bool,
    /// Line number at `start`.
    line: u32,
    /// Chunks split off but not taken yet, with absolute offsets into `buf`.
    pending: std::collections::VecDeque<(ChunkKind, usize, usize, u32)>,
    /// Set when the last pending chunk is a COPY statement whose data follows.
    copy_after_pending: bool,
    /// Reading COPY data: the position of the COPY statement, for errors.
    in_copy: Option<u32>,
    /// Whether the first bytes were looked at (BOM).
    started: bool,
    /// `\if` nesting of this file: (any branch taken so far, this branch active, line).
    conds: Vec<(bool, bool, u32)>,
    /// The data file of a running `\copy … FROM 'file'`.
    copy_file: Option<File>,
    /// For each open `\if`: whether its `\else` was seen.
    else_seen: Vec<bool>,
    /// Read size.
    block: usize,
    /// Only these lines run; the others are read (and checksummed) as blank.
    section: Option<crate::layout::Section>,
    /// Bytes of `buf` before this were checked against `section`.
    masked: usize,
    /// The line number at `masked`.
    masked_line: u32,
}

/// Feeds the checksum: CRLF as LF, across block boundaries.
pub(crate) struct Checksum {
    hasher: Sha256,
    cr_pending: bool,
}

impl Checksum {
    pub(crate) fn new() -> Self {
        Checksum {
            hasher: Sha256::new(),
            cr_pending: false,
        }
    }

    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        if self.cr_pending {
            self.cr_pending = false;
            if bytes.first() == Some(&b'\n') {
                // The CR was half of a CRLF: drop it.
            } else {
                self.hasher.update(b"\r");
            }
        }
        if bytes.last() == Some(&b'\r') {
            self.cr_pending = true;
            bytes = &bytes[..bytes.len() - 1];
        }
        let mut from = 0;
        for i in memchr::memchr_iter(b'\r', bytes) {
            if bytes.get(i + 1) == Some(&b'\n') {
                self.hasher.update(&bytes[from..i]);
                from = i + 1;
            }
        }
        self.hasher.update(&bytes[from..]);
    }

    pub(crate) fn finish(mut self) -> String {
        if self.cr_pending {
            self.hasher.update(b"\r");
        }
        let digest = self.hasher.finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why [`open_regular`] refused a path.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// It could not be opened.
    Io(std::io::Error),
    /// It is a directory.
    Directory,
    /// It is a FIFO, a socket or a device: reading it could wait forever or never end.
    NotRegular,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "cannot read: {e}"),
            OpenError::Directory => f.write_str("is a directory, not a file"),
            OpenError::NotRegular => {
                f.write_str("is not a regular file (a FIFO, socket or device is never read)")
            }
        }
    }
}

/// Opens a file for reading, and only a regular file (symbolic links followed).
///
/// The open itself does not wait: `O_NONBLOCK` makes opening a FIFO return at once
/// (a plain open would block until a writer comes), and the check is made on the
/// opened file, so it cannot be swapped between a check and the open. For a regular
/// file `O_NONBLOCK` changes nothing.
pub(crate) fn open_regular(path: &Path) -> Result<File, OpenError> {
    open_regular_len(path).map(|(file, _)| file)
}

/// [`open_regular`], and the file's length when it was opened (from the same `fstat`).
pub(crate) fn open_regular_len(path: &Path) -> Result<(File, u64), OpenError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(OpenError::Io)?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if meta.is_dir() {
        return Err(OpenError::Directory);
    }
    if !meta.is_file() {
        return Err(OpenError::NotRegular);
    }
    Ok((file, meta.len()))
}

impl Reader {
    fn open(path: &Path, block: usize) -> Result<Reader, ScriptError> {
        let file = open_regular(path).map_err(|e| ScriptError {
            path: path.to_path_buf(),
            line: 0,
            column: None,
            message: e.to_string(),
        })?;
        Ok(Reader::new(path, Box::new(file), block))
    }

    fn new(path: &Path, file: Box<dyn Read + Send>, block: usize) -> Reader {
        Reader {
            path: path.to_path_buf(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            file,
            buf: Vec::with_capacity(BLOCK),
            start: 0,
            eof: false,
            line: 1,
            pending: Default::default(),
            copy_after_pending: false,
            in_copy: None,
            started: false,
            conds: Vec::new(),
            copy_file: None,
            else_seen: Vec::new(),
            block,
            section: None,
            masked: 0,
            masked_line: 1,
        }
    }

    /// Blanks the bytes outside `section` that were read (and checksummed) since the
    /// last call: every byte but line breaks becomes a space, so lines and columns
    /// stay where they are in the file.
    fn mask(&mut self) {
        let Some(section) = self.section else {
            return;
        };
        if !self.started {
            return;
        }
        let mut line = self.masked_line;
        let mut inside = section.contains(line);
        for b in &mut self.buf[self.masked..] {
            if *b == b'\n' {
                line = line.saturating_add(1);
                inside = section.contains(line);
            } else if !inside {
                *b = b' ';
            }
        }
        self.masked_line = line;
        self.masked = self.buf.len();
    }

    fn err(&self, line: u32, message: impl Into<String>) -> ScriptError {
        ScriptError {
            path: self.path.clone(),
            line,
            column: None,
            message: message.into(),
        }
    }

    /// Reads at least `want` more bytes (or to the end). Keeps the unconsumed bytes
    /// and the text of the current line before them.
    fn fill(&mut self, want: usize, sum: &mut Checksum) -> Result<(), ScriptError> {
        if self.eof {
            return Ok(());
        }
        if self.pending.is_empty() && self.start > 0 {
            // Keep up to 4 KiB of the current line before `start`, for error quotes.
            let line_start = self.buf[..self.start]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let keep = line_start.max(self.start.saturating_sub(4096));
            self.buf.drain(..keep);
            self.start -= keep;
            self.masked = self.masked.saturating_sub(keep);
        }
        let target = self.buf.len() + want;
        while self.buf.len() < target && !self.eof {
            let old = self.buf.len();
            let chunk = self.block.max(want.min(8 * self.block));
            // `read_to_end` on a `Take` reads up to `chunk` bytes without zero-filling
            // the buffer first; fewer bytes than asked means the end of the file.
            let n = match (&mut self.file)
                .take(chunk as u64)
                .read_to_end(&mut self.buf)
            {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(self.err(self.line, format!("cannot read: {e}")));
                }
            };
            if n < chunk {
                self.eof = true;
            }
            if !self.started && (self.buf.len() >= 3 || self.eof) {
                self.started = true;
                if self.buf.starts_with(b"\xEF\xBB\xBF") {
                    self.buf.drain(..3);
                }
                sum.update(&self.buf[..]);
            } else if self.started {
                sum.update(&self.buf[old..]);
            }
        }
        self.mask();
        Ok(())
    }

    /// The valid UTF-8 text from `start`, and whether bytes after it were cut off
    /// (an incomplete character at the end of the buffer).
    fn text(&self) -> Result<&str, ScriptError> {
        let bytes = &self.buf[self.start..];
        match std::str::from_utf8(bytes) {
            Ok(t) => Ok(t),
            Err(e) if e.error_len().is_none() && !self.eof => {
                // An incomplete character at the end: more input completes it.
                Ok(std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""))
            }
            Err(e) => {
                let upto = e.valid_up_to();
                let line = self.line + count_lines(&bytes[..upto]);
                Err(self.err(line, "file is not valid UTF-8"))
            }
        }
    }

    fn check_nul(&self, text: &str) -> Result<(), ScriptError> {
        if let Some(p) = text.find('\0') {
            let line = self.line + count_lines(&text.as_bytes()[..p]);
            return Err(self.err(line, "file contains a NUL byte"));
        }
        Ok(())
    }

    /// Splits complete chunks into `pending`. Returns false at the end of the file.
    fn refill_chunks(&mut self, sum: &mut Checksum) -> Result<bool, ScriptError> {
        let mut want = self.block;
        loop {
            if self.start >= self.buf.len() && self.eof {
                return Ok(false);
            }
            let text = self.text()?;
            self.check_nul(text)?;
            let text_len = text.len();
            let prefix = lexer::split_prefix(text).map_err(|e| self.lex_err(e))?;
            if !prefix.chunks.is_empty() {
                for c in &prefix.chunks {
                    self.check_size(c)?;
                    self.pending.push_back((
                        c.kind,
                        self.start + c.start,
                        self.start + c.end,
                        self.line + c.line - 1,
                    ));
                }
                self.copy_after_pending = prefix.copy_data_follows;
                if self.copy_after_pending {
                    self.drop_trailing_blank();
                }
                return Ok(true);
            }
            if self.eof && text_len == self.buf.len() - self.start {
                // Everything is here and no unit is complete: the strict splitter
                // reports what is unterminated, or gives the last statement without `;`.
                let chunks = lexer::split(text).map_err(|e| self.lex_err(e))?;
                if chunks.is_empty() {
                    self.start = self.buf.len();
                    return Ok(false);
                }
                for c in chunks {
                    if c.kind == ChunkKind::CopyData {
                        // Data read by copy_block; the strict split checked its `\.`.
                        self.copy_after_pending = true;
                        self.drop_trailing_blank();
                        break;
                    }
                    self.check_size(&c)?;
                    self.pending.push_back((
                        c.kind,
                        self.start + c.start,
                        self.start + c.end,
                        self.line + c.line - 1,
                    ));
                }
                return Ok(true);
            }
            if self.buf.len() - self.start > MAX_STATEMENT {
                return Err(self.err(
                    self.line,
                    statement_too_long("an unterminated quote or comment?"),
                ));
            }
            self.fill(want, sum)?;
            // Read more each time, so a long statement is not split over and over.
            want = (want * 2).min(64 * self.block);
        }
    }

    /// A complete statement (or meta-command) may be at most [`MAX_STATEMENT`] bytes.
    /// The buffer is checked before each read, but a read may complete a longer one.
    fn check_size(&self, c: &lexer::Chunk) -> Result<(), ScriptError> {
        if matches!(c.kind, ChunkKind::Sql | ChunkKind::Meta) && c.end - c.start > MAX_STATEMENT {
            return Err(self.err(self.line + c.line - 1, statement_too_long("split it")));
        }
        Ok(())
    }

    /// The rest of a COPY statement's line is skipped by `next_chunk`, not returned.
    fn drop_trailing_blank(&mut self) {
        while self.pending.back().is_some_and(|c| c.0 == ChunkKind::Blank) {
            self.pending.pop_back();
        }
    }

    /// Skips to the line after the current position: COPY data starts there.
    fn start_copy(&mut self, line: u32) {
        let rest = &self.buf[self.start..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        self.line += count_lines(&rest[..nl]);
        self.start += nl;
        self.in_copy = Some(line);
    }

    fn lex_err(&self, e: LexError) -> ScriptError {
        let mut column = e.column;
        if e.line == 1 {
            // The text passed to the lexer may start in the middle of a line.
            let line_start = self.buf[..self.start]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let before = String::from_utf8_lossy(&self.buf[line_start..self.start])
                .chars()
                .count();
            column = column.saturating_add(u32::try_from(before).unwrap_or(u32::MAX));
        }
        let mut message = e.kind.to_string();
        if e.kind == lexer::LexErrorKind::MetaCommandInStatement {
            // Name the command: the first word of that line after the backslash.
            let rest = &self.buf[self.start..];
            let line = rest
                .split(|&b| b == b'\n')
                .nth(e.line.saturating_sub(1) as usize)
                .unwrap_or(&[]);
            let word: String = String::from_utf8_lossy(line)
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            message = format!(
                "psql meta-command {word} inside an unfinished SQL statement (end the statement with ; or \\gset first; \\gexec is not supported)"
            );
        }
        let mut err = self.err(self.line + e.line - 1, message);
        err.column = Some(column);
        err
    }

    /// The next chunk: (kind, text, location). Advances `start` past it.
    fn next_chunk(
        &mut self,
        sum: &mut Checksum,
    ) -> Result<Option<(ChunkKind, String, Location)>, ScriptError> {
        loop {
            if let Some((kind, s, e, line)) = self.pending.pop_front() {
                let line_start = self.buf[..s]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let prefix = String::from_utf8_lossy(&self.buf[line_start..s]).into_owned();
                let column = u32::try_from(prefix.chars().count())
                    .unwrap_or(u32::MAX)
                    .saturating_add(1);
                let text = String::from_utf8_lossy(&self.buf[s..e]).into_owned();
                self.line = line + count_lines(&self.buf[s..e]);
                self.start = e;
                if self.pending.is_empty() && self.copy_after_pending {
                    self.copy_after_pending = false;
                    self.start_copy(line);
                }
                return Ok(Some((
                    kind,
                    text,
                    Location {
                        path: self.path.clone(),
                        line,
                        column,
                        prefix,
                    },
                )));
            }
            if self.in_copy.is_some() {
                return Ok(None);
            }
            if !self.refill_chunks(sum)? {
                return Ok(None);
            }
        }
    }

    /// The next block of COPY data (whole lines), or `None` after the `\.` line.
    fn copy_block(&mut self, sum: &mut Checksum) -> Result<Option<Vec<u8>>, ScriptError> {
        let Some(copy_line) = self.in_copy else {
            return Ok(None);
        };
        // Bytes after `start` known to hold no line break, so a long line is searched once.
        let mut scanned = 0;
        loop {
            let rest = &self.buf[self.start..];
            // Look for the `\.` line in at most one block; send whole lines before it.
            let window = &rest[..rest.len().min(self.block + 3)];
            let terminator = memchr::memmem::find_iter(window, b"\\.")
                .find(|&p| (p == 0 || rest[p - 1] == b'\n') && self.ends_line(&rest[p + 2..]));
            match terminator {
                Some(0) => {
                    let after = &rest[2..];
                    let len = 2 + if after.starts_with(b"\r\n") {
                        2
                    } else {
                        usize::from(!after.is_empty())
                    };
                    self.line += count_lines(&rest[..len]);
                    self.start += len;
                    self.in_copy = None;
                    return Ok(None);
                }
                Some(p) => return self.take_data(p).map(Some),
                None => {}
            }
            let head = &rest[..rest.len().min(self.block)];
            let line_end = memchr::memrchr(b'\n', head).or_else(|| {
                memchr::memchr(b'\n', &rest[scanned.min(rest.len())..]).map(|p| p + scanned)
            });
            if let Some(nl) = line_end {
                if nl >= MAX_STATEMENT {
                    return Err(self.err(self.line, COPY_LINE_TOO_LONG));
                }
                return self.take_data(nl + 1).map(Some);
            }
            scanned = rest.len();
            if self.eof {
                return Err(self.err(
                    copy_line,
                    "COPY … FROM stdin without a terminating \\. line",
                ));
            }
            if rest.len() > MAX_STATEMENT {
                return Err(self.err(self.line, COPY_LINE_TOO_LONG));
            }
            // One block at a time, as always: how much is read before an include
            // decides the order in which the checksum sees the bytes (a contract).
            let block = self.block;
            self.fill(block, sum)?;
        }
    }

    /// Whether the bytes after a `\.` end its line: a line break, or the end of the file.
    fn ends_line(&self, after: &[u8]) -> bool {
        after.starts_with(b"\n")
            || after.starts_with(b"\r\n")
            || (self.eof && (after.is_empty() || after == b"\r"))
    }

    /// The next `len` bytes of COPY data (whole lines), checked to be UTF-8.
    fn take_data(&mut self, len: usize) -> Result<Vec<u8>, ScriptError> {
        let block = self.buf[self.start..self.start + len].to_vec();
        if let Err(e) = std::str::from_utf8(&block) {
            let line = self.line + count_lines(&block[..e.valid_up_to()]);
            return Err(self.err(line, "file is not valid UTF-8"));
        }
        self.line += count_lines(&block);
        self.start += len;
        Ok(block)
    }
}

/// The `\g` or `\gset [PREFIX]` that ends a statement: `None` for `\g` (send it,
/// as `;` does), the prefix for `\gset`.
fn send_meta(meta: &str, at: &Location) -> Result<Option<String>, ScriptError> {
    let mut words = meta.split_whitespace();
    let command = words.next().unwrap_or("");
    let args: Vec<&str> = words.collect();
    match (command, args.as_slice()) {
        ("\\g", []) => Ok(None),
        ("\\g", _) => Err(at.error(
            "\\g with a file or options is not supported in migrations (end the statement with ; or \\g alone)",
        )),
        ("\\gset", []) => Ok(Some(String::new())),
        ("\\gset", [prefix]) if valid_name(prefix) => Ok(Some((*prefix).to_string())),
        ("\\gset", _) => Err(at.error(
            "\\gset takes at most one argument, a prefix of letters, digits and _",
        )),
        _ => Err(at.error(format!("unexpected {command}"))),
    }
}

fn statement_too_long(hint: &str) -> String {
    format!(
        "a statement longer than {} MiB ({hint})",
        MAX_STATEMENT >> 20
    )
}

fn count_lines(bytes: &[u8]) -> u32 {
    u32::try_from(memchr::memchr_iter(b'\n', bytes).count()).unwrap_or(u32::MAX)
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

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

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Checksum")
    }
}

/// The migration directory as [`Script::open`] resolves it: canonical, so that
/// includes can be checked to stay inside it.
///
/// # Errors
/// The directory cannot be resolved.
pub fn canonical_root(root: &Path) -> Result<PathBuf, ScriptError> {
    root.canonicalize().map_err(|e| ScriptError {
        path: root.to_path_buf(),
        line: 0,
        column: None,
        message: format!("cannot read migration directory: {e}"),
    })
}

/// Keywords that make a statement top-level transaction control.
fn is_transaction_control(text: &str) -> bool {
    let kw = lexer::leading_keywords(text, 2);
    match kw.first().map(String::as_str) {
        Some("BEGIN") => kw.get(1).is_none_or(|k| k != "ATOMIC"),
        Some("START") => kw.get(1).is_some_and(|k| k == "TRANSACTION"),
        Some("COMMIT" | "END" | "ROLLBACK" | "ABORT") => true,
        _ => false,
    }
}

/// Whether a statement, as it will be sent, holds top-level transaction control.
/// An interpolated statement may hold several statements (a variable's value may
/// have a `;`): each counts.
fn sends_transaction_control(sent: &str, interpolated: bool) -> bool {
    if !interpolated {
        return is_transaction_control(sent);
    }
    match lexer::split(sent) {
        Ok(chunks) => chunks
            .iter()
            .filter(|c| c.kind == ChunkKind::Sql)
            .any(|c| is_transaction_control(c.text(sent))),
        // Text the lexer cannot split is sent as one statement, and the server
        // rejects it; its first word still decides.
        Err(_) => is_transaction_control(sent),
    }
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
        let mut reader = Reader::open(path, block.max(1))?;
        reader.section = section;
        let root = canonical_root(root)?;
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
        let file = Box::new(std::io::Cursor::new(head).chain(file));
        Script::with_reader(Reader::new(path, file, BLOCK), root.to_path_buf(), vars)
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
        self.root = root.canonicalize().map_err(|e| ScriptError {
            path: root.to_path_buf(),
            line: 0,
            column: None,
            message: format!("cannot read the include root: {e}"),
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
                self.vars.0.remove(name);
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

    fn active(&self) -> bool {
        self.stack
            .iter()
            .all(|r| r.conds.iter().all(|&(_, active, _)| active))
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
                    self.statements += 1;
                    let (text, gset) = match lexer::send_meta_at(&text) {
                        Some(p) => {
                            let gset = send_meta(&text[p..], &at)?;
                            self.gset_seen |= gset.is_some();
                            (text[..p].trim_end().to_string(), gset)
                        }
                        None => (text, None),
                    };
                    let mut interpolated = interpolate(&text, &self.vars);
                    // Without a database, what a \gset sets is unknown: any value will do.
                    let mut guesses = 0;
                    while let Err((_, name)) = &interpolated
                        && self.summarizing
                        && self.gset_seen
                        && guesses < 10_000
                    {
                        self.vars.set(name.clone(), "true");
                        guesses += 1;
                        interpolated = interpolate(&text, &self.vars);
                    }
                    let (sent, edits) = interpolated.map_err(|(offset, name)| {
                        let line = at.line + count_lines(&text.as_bytes()[..offset]);
                        ScriptError {
                            path: at.path.clone(),
                            line,
                            column: None,
                            message: format!(
                                "variable :{name} is not set (\\set it, or pass --set {name}=VALUE)"
                            ),
                        }
                    })?;
                    if sent.len() > MAX_STATEMENT {
                        return Err(at.error(statement_too_long(
                            "after its variables are set; split it, or use shorter values",
                        )));
                    }
                    // Decided on the statement as it will be sent: a variable may hold
                    // a COMMIT, or several statements with one among them.
                    if sends_transaction_control(&sent, !edits.is_empty()) {
                        self.controls_transaction = true;
                    }
                    if copy_follows {
                        self.skipping_copy = true;
                        return Ok(Some(Item::Copy { text: sent, at }));
                    }
                    let original = (!edits.is_empty()).then_some(text);
                    return Ok(Some(Item::Sql {
                        text: sent,
                        at,
                        edits,
                        original,
                        gset,
                    }));
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
            let n = file.read(&mut block).map_err(|e| ScriptError {
                path: reader.path.clone(),
                line: reader.line,
                column: None,
                message: format!("\\copy: cannot read the data file: {e}"),
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

    fn meta(&mut self, text: &str, at: &Location) -> Result<Option<Item>, ScriptError> {
        let err = |message: String| at.error(message);
        let (command, rest) = match text.find(|c: char| c.is_whitespace()) {
            Some(p) => (&text[..p], text[p..].trim()),
            None => (text, ""),
        };
        // Conditionals are followed even in inactive branches.
        match command {
            "\\if" | "\\elif" | "\\else" | "\\endif" => {
                return self.conditional(command, rest, at).map(|()| None);
            }
            _ => {}
        }
        if !self.active() {
            if command.eq_ignore_ascii_case("\\copy") && copy_source_is_stdin(rest) {
                // Its data follows in this file: skip it, as for a skipped COPY.
                if let Some(reader) = self.stack.last_mut() {
                    reader.pending.clear();
                    reader.copy_after_pending = false;
                    reader.start_copy(at.line);
                }
                self.skipping_copy = true;
                while self.copy_block()?.is_some() {}
            }
            return Ok(None);
        }
        match command {
            "\\set" => {
                let args = self.meta_args(rest, at)?;
                match args.split_first() {
                    None => {
                        return Err(err(
                            "\\set without a name: listing variables is not supported".into(),
                        ));
                    }
                    Some((name, values)) => {
                        if !valid_name(name) {
                            return Err(err(format!(
                                "\\set: {name:?} is not a valid variable name"
                            )));
                        }
                        let value = values.concat();
                        if value.len() > MAX_STATEMENT {
                            return Err(err(format!(
                                "\\set {name}: a value longer than {} MiB",
                                MAX_STATEMENT >> 20
                            )));
                        }
                        self.vars.set(name.clone(), value);
                    }
                }
                Ok(None)
            }
            "\\unset" => {
                let args = self.meta_args(rest, at)?;
                match args.as_slice() {
                    [name] => {
                        self.vars.0.remove(name);
                        Ok(None)
                    }
                    _ => Err(err("\\unset takes one variable name".into())),
                }
            }
            "\\echo" => {
                let args = self.meta_args(rest, at)?;
                Ok(Some(Item::Echo(args.join(" "))))
            }
            "\\i" | "\\include" | "\\ir" | "\\include_relative" => {
                let args = self.meta_args(rest, at)?;
                let [file] = args.as_slice() else {
                    return Err(err(format!("{command} takes one file name")));
                };
                let relative = matches!(command, "\\ir" | "\\include_relative");
                self.include(file, relative, at)?;
                Ok(None)
            }
            "\\copy" => self.copy_meta(rest, at).map(Some),
            "\\restrict" | "\\unrestrict" => Ok(None),
            "\\g" | "\\gset" => Err(err(format!(
                "{command} after a statement that already ended with ;: write the query without the ; (SELECT … {command})"
            ))),
            other => Err(err(format!(
                "psql meta-command {other} is not supported in migrations (supported: \\set, \\unset, \\echo, \\i, \\ir, \\include, \\include_relative, \\if, \\elif, \\else, \\endif, \\copy … from, \\restrict, \\unrestrict)"
            ))),
        }
    }

    /// Splits meta-command arguments as psql does: whitespace-separated, '…' quoted
    /// (with '' and backslash escapes), "…" kept as written, :var interpolated.
    fn meta_args(&self, rest: &str, at: &Location) -> Result<Vec<String>, ScriptError> {
        let err = |message: String| at.error(message);
        let mut args = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let Some(&c) = chars.peek() else { break };
            let mut arg = String::new();
            if c == '\'' {
                chars.next();
                loop {
                    match chars.next() {
                        None => {
                            return Err(err("unterminated quoted string in meta-command".into()));
                        }
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            arg.push('\'');
                        }
                        Some('\'') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => arg.push('\n'),
                            Some('t') => arg.push('\t'),
                            Some(o) => arg.push(o),
                            None => {
                                return Err(err(
                                    "unterminated quoted string in meta-command".into()
                                ));
                            }
                        },
                        Some(o) => arg.push(o),
                    }
                }
            } else if c == ':' && {
                // A variable only when a name (or a quote) follows: `1 :2` and `a : b` stay.
                let mut ahead = chars.clone();
                ahead.next();
                ahead
                    .peek()
                    .is_some_and(|&n| n.is_alphabetic() || n == '_' || n == '\'' || n == '"')
            } {
                chars.next();
                let quote = match chars.peek() {
                    Some('\'') | Some('"') => chars.next(),
                    _ => None,
                };
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' {
                        name.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if let Some(q) = quote
                    && chars.next() != Some(q)
                {
                    return Err(err(format!("bad variable reference :{q}{name}")));
                }
                let value = match self.vars.get(&name) {
                    Some(v) => v,
                    // Without a database, what a \gset sets is unknown.
                    None if self.summarizing && self.gset_seen => "true",
                    None => return Err(err(format!("variable :{name} is not set"))),
                };
                arg.push_str(value);
            } else {
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() {
                        break;
                    }
                    arg.push(n);
                    chars.next();
                }
            }
            args.push(arg);
        }
        Ok(args)
    }

    fn conditional(&mut self, command: &str, rest: &str, at: &Location) -> Result<(), ScriptError> {
        let err = |message: String| at.error(message);
        let outer_active = {
            let Some(reader) = self.stack.last() else {
                return Ok(());
            };
            let depth = reader.conds.len();
            let others = self.stack[..self.stack.len() - 1]
                .iter()
                .all(|r| r.conds.iter().all(|&(_, a, _)| a));
            others
                && reader.conds[..if command == "\\if" {
                    depth
                } else {
                    depth.saturating_sub(1)
                }]
                    .iter()
                    .all(|&(_, a, _)| a)
        };
        let value = |this: &Self| -> Result<bool, ScriptError> {
            let args = this.meta_args(rest, at)?;
            let [word] = args.as_slice() else {
                return Err(err(format!(
                    "{command} takes one boolean: true/false, on/off, yes/no, 1/0"
                )));
            };
            parse_bool(word).ok_or_else(|| {
                err(format!(
                    "{command}: {word:?} is not a boolean (true/false, on/off, yes/no, 1/0)"
                ))
            })
        };
        match command {
            "\\if" => {
                let v = if outer_active { value(self)? } else { false };
                if let Some(r) = self.stack.last_mut() {
                    r.conds.push((v, v, at.line));
                    r.else_seen.push(false);
                }
            }
            "\\elif" => {
                let Some(&(taken, _, line)) = self.stack.last().and_then(|r| r.conds.last()) else {
                    return Err(err("\\elif without \\if".into()));
                };
                if self
                    .stack
                    .last()
                    .is_some_and(|r| r.else_seen.last() == Some(&true))
                {
                    return Err(err("\\elif after \\else".into()));
                }
                let v = if outer_active && !taken {
                    value(self)?
                } else {
                    false
                };
                if let Some(c) = self.stack.last_mut().and_then(|r| r.conds.last_mut()) {
                    *c = (taken || v, v, line);
                }
            }
            "\\else" => {
                let Some(reader) = self.stack.last_mut() else {
                    return Ok(());
                };
                if reader.else_seen.last() == Some(&true) {
                    return Err(err("\\else after \\else".into()));
                }
                let Some(c) = reader.conds.last_mut() else {
                    return Err(err("\\else without \\if".into()));
                };
                *c = (true, !c.0, c.2);
                if let Some(e) = reader.else_seen.last_mut() {
                    *e = true;
                }
            }
            _ => {
                let Some(reader) = self.stack.last_mut() else {
                    return Ok(());
                };
                if reader.conds.pop().is_none() {
                    return Err(err("\\endif without \\if".into()));
                }
                reader.else_seen.pop();
            }
        }
        Ok(())
    }

    fn include(&mut self, file: &str, relative: bool, at: &Location) -> Result<(), ScriptError> {
        let err = |message: String| at.error(message);
        let base = if relative {
            self.stack.last().map(|r| r.dir.clone()).unwrap_or_default()
        } else {
            self.base.clone()
        };
        let path = base.join(file);
        let canonical = path
            .canonicalize()
            .map_err(|e| err(format!("cannot include {file}: {e}")))?;
        if !canonical.starts_with(&self.root) {
            let what = if self.root == self.base {
                "the migration directory"
            } else {
                "the include root"
            };
            return Err(err(format!(
                "cannot include {file}: it is outside {what} {}",
                self.root.display()
            )));
        }
        for r in &self.stack {
            if r.path.canonicalize().is_ok_and(|p| p == canonical) {
                return Err(err(format!("include cycle: {file} is already being read")));
            }
        }
        if self.stack.len() >= 32 {
            return Err(err("includes nested more than 32 deep".into()));
        }
        let block = self.stack.last().map_or(BLOCK, |r| r.block);
        let reader = Reader::open(&path, block)
            .map_err(|e| err(format!("cannot include {file}: {}", e.message)))?;
        self.stack.push(reader);
        Ok(())
    }

    /// `\copy table [(cols)] FROM 'file'|stdin [WITH …]`: becomes `COPY … FROM STDIN`
    /// with the data read from the file (relative to the migration's directory) or
    /// from the lines that follow.
    fn copy_meta(&mut self, rest: &str, at: &Location) -> Result<Item, ScriptError> {
        let err = |message: String| at.error(message);
        let lower = rest.to_ascii_lowercase();
        let from = find_word(&lower, "from").ok_or_else(|| {
            if find_word(&lower, "to").is_some() {
                err("\\copy … TO is not supported in migrations".into())
            } else {
                err("\\copy: expected \\copy table FROM 'file'".into())
            }
        })?;
        let target = rest[..from].trim();
        let after = rest[from + 4..].trim_start();
        let (source, options) = if let Some(q) = after.strip_prefix('\'') {
            let end = q
                .find('\'')
                .ok_or_else(|| err("\\copy: unterminated file name".into()))?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        let statement = format!("COPY {target} FROM STDIN {}", options.trim());
        self.statements += 1;
        self.skipping_copy = true;
        let Some(reader) = self.stack.last_mut() else {
            return Err(err("\\copy outside a file".into()));
        };
        match source.to_ascii_lowercase().as_str() {
            "stdin" => {
                // The data follows in this file, as for COPY … FROM stdin. What the lexer
                // split after this line was data, not SQL: split again from the next line.
                reader.pending.clear();
                reader.copy_after_pending = false;
                reader.start_copy(at.line);
            }
            "pstdin" | "program" => {
                return Err(err(format!(
                    "\\copy … FROM {source} is not supported in migrations"
                )));
            }
            _ => {
                let path = reader.dir.join(&source);
                let canonical = path
                    .canonicalize()
                    .map_err(|e| err(format!("\\copy: cannot read {source}: {e}")))?;
                if !canonical.starts_with(&self.root) {
                    return Err(err(format!(
                        "\\copy: {source} is outside the migration directory"
                    )));
                }
                let file = open_regular(&canonical).map_err(|e| match e {
                    OpenError::Io(e) => err(format!("\\copy: cannot read {source}: {e}")),
                    other => err(format!("\\copy: {source} {other}")),
                })?;
                reader.copy_file = Some(file);
            }
        }
        Ok(Item::Copy {
            text: statement,
            at: at.clone(),
        })
    }
}

/// Whether `\copy …` reads its data from the lines that follow (`FROM stdin`).
fn copy_source_is_stdin(rest: &str) -> bool {
    let lower = rest.to_ascii_lowercase();
    find_word(&lower, "from").is_some_and(|p| {
        lower[p + 4..]
            .split_whitespace()
            .next()
            .is_some_and(|w| w == "stdin")
    })
}

fn find_word(haystack: &str, word: &str) -> Option<usize> {
    let bytes = haystack.as_bytes();
    let mut from = 0;
    while let Some(p) = haystack[from..].find(word) {
        let s = from + p;
        let e = s + word.len();
        let before = s == 0 || bytes[s - 1].is_ascii_whitespace() || bytes[s - 1] == b')';
        let after = e == bytes.len() || bytes[e].is_ascii_whitespace() || bytes[e] == b'\'';
        if before && after {
            return Some(s);
        }
        from = e;
    }
    None
}

/// psql's booleans: true/false, on/off, yes/no, 1/0 (unique prefixes too).
pub fn parse_bool(word: &str) -> Option<bool> {
    let w = word.to_ascii_lowercase();
    if w.is_empty() {
        return None;
    }
    let is = |full: &str| full.starts_with(&w);
    if w == "1" || is("true") || is("yes") || (w.len() >= 2 && is("on")) {
        Some(true)
    } else if w == "0" || is("false") || is("no") || (w.len() >= 2 && is("off")) {
        Some(false)
    } else {
        None
    }
}

/// Interpolates `:name`, `:'name'` and `:"name"` outside quotes, comments and dollar
/// quotes. `::` is a cast. Returns the new text and the edits made.
///
/// # Errors
/// `(offset, name)` of an undefined variable.
pub fn interpolate(sql: &str, vars: &Variables) -> Result<(String, Vec<Edit>), (usize, String)> {
    let spans = lexer::code_spans(sql);
    let bytes = sql.as_bytes();
    let mut out = String::new();
    let mut edits = Vec::new();
    let mut copied = 0;
    for (s, e) in spans {
        let mut i = s;
        while i < e {
            if bytes[i] != b':' {
                i += 1;
                continue;
            }
            if bytes.get(i + 1) == Some(&b':') {
                i += 2;
                continue;
            }
            let (quote, name_start) = match bytes.get(i + 1) {
                Some(&q @ (b'\'' | b'"')) => (Some(q), i + 2),
                _ => (None, i + 1),
            };
            let mut j = name_start;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            // A name starts with a letter or `_`: `a[1:2]` is an array slice.
            let name_like = bytes
                .get(name_start)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_' || *b >= 0x80);
            if j == name_start || !name_like || (quote.is_some() && bytes.get(j) != quote.as_ref())
            {
                i += 1;
                continue;
            }
            let name = &sql[name_start..j];
            let end = if quote.is_some() { j + 1 } else { j };
            let value = vars.get(name).ok_or((i, name.to_string()))?;
            let replacement = match quote {
                None => value.to_string(),
                Some(b'\'') => quote_literal(value),
                Some(_) => format!("\"{}\"", value.replace('"', "\"\"")),
            };
            out.push_str(&sql[copied..i]);
            edits.push(Edit {
                start: i,
                original: end - i,
                replaced: replacement.len(),
            });
            out.push_str(&replacement);
            copied = end;
            i = end;
        }
    }
    if edits.is_empty() {
        return Ok((sql.to_string(), edits));
    }
    out.push_str(&sql[copied..]);
    Ok((out, edits))
}

/// Quotes a literal as psql's `:'name'` does (PQescapeLiteral).
fn quote_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!(" E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test code: a failed unwrap is the failure the test reports"
    )]
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        let mut v = Variables::new();
        for (k, val) in pairs {
            v.set(*k, *val);
        }
        v
    }

    #[test]
    fn interpolation_skips_quotes_comments_dollar_quotes_and_casts() {
        let v = vars(&[("t", "users"), ("n", "it's"), ("c", "Col\"x")]);
        let (out, edits) = interpolate(
            "select :'n', x::int, ':t', $$ :t $$, \"a:t\" from :t /* :t */ -- :t\nwhere :\"c\" = 1",
            &v,
        )
        .unwrap();
        assert_eq!(
            out,
            "select 'it''s', x::int, ':t', $$ :t $$, \"a:t\" from users /* :t */ -- :t\nwhere \"Col\"\"x\" = 1"
        );
        assert_eq!(edits.len(), 3);
        assert_eq!(interpolate("select :nope", &v), Err((7, "nope".into())));
        assert_eq!(quote_literal("a\\b"), " E'a\\\\b'");
    }

    #[test]
    fn offsets_map_back_through_interpolation() {
        let v = vars(&[("long", "0123456789")]);
        let sql = "select :long, nope";
        let (out, edits) = interpolate(sql, &v).unwrap();
        let at = out.find("nope").unwrap();
        assert_eq!(unmap_offset(&edits, at), sql.find("nope").unwrap());
        assert_eq!(unmap_offset(&edits, 3), 3);
        assert_eq!(
            unmap_offset(&edits, out.find('3').unwrap()),
            sql.find(':').unwrap()
        );
    }

    /// What the whole-input splitter says a text runs: statements, and COPY data
    /// without its terminator line.
    fn expected(text: &str) -> Result<Vec<String>, ()> {
        let chunks = lexer::split(text).map_err(|_| ())?;
        let mut out = Vec::new();
        for c in chunks {
            match c.kind {
                ChunkKind::Sql => out.push(c.text(text).to_string()),
                ChunkKind::CopyData => {
                    let data = c.text(text);
                    let data = data.strip_suffix('\n').unwrap_or(data);
                    let data = data.strip_suffix('\r').unwrap_or(data);
                    let data = data.strip_suffix("\\.").unwrap_or(data);
                    out.push(format!("DATA:{data}"));
                }
                ChunkKind::Meta => return Err(()),
                ChunkKind::Blank => {}
            }
        }
        Ok(out)
    }

    fn streamed(path: &Path, block: usize) -> Result<Vec<String>, ScriptError> {
        let dir = path.parent().unwrap();
        let mut script = Script::open_with_block(path, dir, &Variables::new(), block)?;
        let mut out = Vec::new();
        while let Some(item) = script.next_item()? {
            match item {
                Item::Sql { text, .. } => out.push(text),
                Item::Copy { text, .. } => {
                    out.push(text);
                    let mut data = Vec::new();
                    while let Some(b) = script.copy_block()? {
                        data.extend(b);
                    }
                    out.push(format!("DATA:{}", String::from_utf8(data).unwrap()));
                }
                Item::Echo(_) => {}
            }
        }
        Ok(out)
    }

    fn fragments() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let frag = prop::sample::select(vec![
            "select 1",
            ";",
            " ",
            "\n",
            "\r\n",
            "'",
            "''",
            "\"",
            "$$",
            "$a$",
            "E'\\'",
            "--",
            "/*",
            "*/",
            "(",
            ")",
            "copy t from stdin;\n",
            "1\t2\n",
            "\\.\n",
            "\\.",
            "begin atomic",
            "end",
            "é",
            "x",
        ]);
        prop::collection::vec(frag, 0..40).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(600))]
        #[test]
        fn streaming_in_any_block_size_runs_what_the_whole_file_split_gives(text in fragments(), block in 1usize..9) {
            let dir = std::env::temp_dir().join(format!("km-script-{}-{:?}", std::process::id(), std::thread::current().id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("t.sql");
            std::fs::write(&path, &text).unwrap();
            let want = expected(&text);
            let got = streamed(&path, block);
            match (&want, &got) {
                (Ok(w), Ok(g)) => proptest::prop_assert_eq!(w, g),
                (Err(()), Err(_)) => {}
                _ => proptest::prop_assert!(false, "whole: {:?}\nstreamed: {:?}", want, got),
            }
            let summary = Script::summarize(&path, &dir, &Variables::new());
            if let Ok(summary) = summary {
                proptest::prop_assert_eq!(summary.checksum, crate::source::checksum(&text));
            }
        }
    }

    #[test]
    fn set_names_must_be_usable_as_variables() {
        assert!(Variables::parse_assignment("env=prod").is_ok());
        assert!(Variables::parse_assignment("_x1=").is_ok());
        let e = Variables::parse_assignment("1a=x").unwrap_err();
        assert!(e.contains("could never use :1a"), "{e}");
        assert!(Variables::parse_assignment("a-b=x").is_err());
        assert!(Variables::parse_assignment("=x").is_err());
    }

    #[test]
    fn booleans_as_psql_reads_them() {
        for t in ["true", "t", "TRUE", "yes", "y", "on", "1"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "f", "no", "n", "off", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for x in ["o", "2", "", "maybe"] {
            assert_eq!(parse_bool(x), None, "{x}");
        }
    }

    #[test]
    fn checksum_matches_the_whole_file_rule_across_blocks() {
        let text = "a\r\nb\rc\r\n";
        let mut whole = Checksum::new();
        whole.update(text.as_bytes());
        for cut in 0..text.len() {
            let mut parts = Checksum::new();
            parts.update(&text.as_bytes()[..cut]);
            parts.update(&text.as_bytes()[cut..]);
            assert_eq!(
                parts.finish(),
                crate::source::checksum(text),
                "cut at {cut}"
            );
        }
        assert_eq!(whole.finish(), crate::source::checksum(text));
    }
}
