//! One file read in blocks: its bytes fed to the checksum as they come (a leading
//! byte-order mark dropped, the lines outside a layout's section blanked), split
//! into chunks by the lexer, and its COPY data handed out whole lines at a time.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{BLOCK, Checksum, Location, MAX_STATEMENT, ScriptError};
use crate::lexer::{self, ChunkKind, LexError};

const COPY_LINE_TOO_LONG: &str =
    "a line of COPY data longer than 256 MiB (a missing line break, or a value too large to load)";

/// A file read in blocks.
pub(super) struct Reader {
    /// The file's path.
    pub(super) path: PathBuf,
    /// Its directory: what `\ir` and `\copy` are relative to.
    pub(super) dir: PathBuf,
    /// The file, or (see [`Script::from_head`](super::Script::from_head)) its first bytes, already read, and then
    /// the file.
    file: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Bytes before `start` are consumed.
    start: usize,
    /// Bytes of `buf` that are valid UTF-8 (the rest is an incomplete character).
    eof: bool,
    /// Line number at `start`.
    pub(super) line: u32,
    /// Chunks split off but not taken yet, with absolute offsets into `buf`.
    pending: VecDeque<(ChunkKind, usize, usize, u32)>,
    /// Set when the last pending chunk is a COPY statement whose data follows.
    copy_after_pending: bool,
    /// Reading COPY data: the position of the COPY statement, for errors.
    pub(super) in_copy: Option<u32>,
    /// Whether the first bytes were looked at (BOM).
    started: bool,
    /// `\if` nesting of this file: (any branch taken so far, this branch active, line).
    pub(super) conds: Vec<(bool, bool, u32)>,
    /// The data file of a running `\copy … FROM 'file'`.
    pub(super) copy_file: Option<File>,
    /// For each open `\if`: whether its `\else` was seen.
    pub(super) else_seen: Vec<bool>,
    /// Read size.
    pub(super) block: usize,
    /// Only these lines run; the others are read (and checksummed) as blank.
    pub(super) section: Option<crate::layout::Section>,
    /// Bytes of `buf` before this were checked against `section`.
    masked: usize,
    /// The line number at `masked`.
    masked_line: u32,
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
    regular_len(file)
}

/// [`open_regular_len`] of the entry `name` of the open directory `dir`: the kernel
/// looks up one name, not every component of the directory's path again.
pub(crate) fn open_regular_len_at(
    dir: &File,
    name: &std::ffi::OsStr,
) -> Result<(File, u64), OpenError> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd =
        rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| OpenError::Io(e.into()))?;
    regular_len(File::from(fd))
}

/// `file` and its length, if it is a regular file.
fn regular_len(file: File) -> Result<(File, u64), OpenError> {
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
    pub(super) fn open(path: &Path, block: usize) -> Result<Reader, ScriptError> {
        let file = open_regular(path).map_err(|e| ScriptError::at_line(path, 0, e.to_string()))?;
        Ok(Reader::new(path, Box::new(file), block, BLOCK))
    }

    /// A reader of `file`, read `block` bytes at a time into a buffer of
    /// `capacity` to begin with (it grows as needed: a small file read whole
    /// needs no more than its size).
    pub(super) fn new(
        path: &Path,
        file: Box<dyn Read + Send>,
        block: usize,
        capacity: usize,
    ) -> Reader {
        Reader {
            path: path.to_path_buf(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            file,
            buf: Vec::with_capacity(capacity),
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

    pub(super) fn err(&self, line: u32, message: impl Into<String>) -> ScriptError {
        ScriptError::at_line(&self.path, line, message)
    }

    /// Reads at least `want` more bytes (or to the end). Keeps the unconsumed bytes
    /// and the text of the current line before them.
    fn fill(&mut self, want: usize, sum: &mut Checksum) -> Result<(), ScriptError> {
        if self.eof {
            return Ok(());
        }
        if self.pending.is_empty() && self.start > 0 {
            // Keep up to 4 KiB of the current line before `start`, for error quotes.
            let keep = self
                .line_start(self.start)
                .max(self.start.saturating_sub(4096));
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
                    self.push_pending(c)?;
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
                    self.push_pending(&c)?;
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

    /// Queues a chunk the lexer split off the text from `start`, with offsets into
    /// `buf` and its line in the file, once its size is checked.
    fn push_pending(&mut self, c: &lexer::Chunk) -> Result<(), ScriptError> {
        self.check_size(c)?;
        self.pending.push_back((
            c.kind,
            self.start + c.start,
            self.start + c.end,
            self.line + c.line - 1,
        ));
        Ok(())
    }

    /// Where the line that holds byte `at` of `buf` starts.
    fn line_start(&self, at: usize) -> usize {
        self.buf[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
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

    /// A `\copy … FROM stdin` was read: its data follows in this file from the next
    /// line. What the lexer split after the `\copy` line was data, not SQL: it is
    /// dropped, and the file is split again after the data.
    pub(super) fn start_copy_meta(&mut self, line: u32) {
        self.pending.clear();
        self.copy_after_pending = false;
        self.start_copy(line);
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
            let line_start = self.line_start(self.start);
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
    pub(super) fn next_chunk(
        &mut self,
        sum: &mut Checksum,
    ) -> Result<Option<(ChunkKind, String, Location)>, ScriptError> {
        loop {
            if let Some((kind, s, e, line)) = self.pending.pop_front() {
                let line_start = self.line_start(s);
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
    pub(super) fn copy_block(
        &mut self,
        sum: &mut Checksum,
    ) -> Result<Option<Vec<u8>>, ScriptError> {
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

pub(super) fn statement_too_long(hint: &str) -> String {
    format!(
        "a statement longer than {} MiB ({hint})",
        MAX_STATEMENT >> 20
    )
}

pub(super) fn count_lines(bytes: &[u8]) -> u32 {
    u32::try_from(memchr::memchr_iter(b'\n', bytes).count()).unwrap_or(u32::MAX)
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
