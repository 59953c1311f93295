//! The splitter: walks an input from chunk to chunk (blank material, psql
//! meta-commands, statements, `COPY … FROM stdin` data), for [`split`](super::split)
//! over a whole input and [`split_prefix`](super::split_prefix) over the start of one.

use super::scan::{count_newlines, end_of_line, is_hspace, skip_blank, skip_line_comment};
use super::statement::{Fail, scan_statement};
use super::{Chunk, ChunkKind, LexErrorKind, Prefix};

/// Cuts an input into [`Chunk`]s, counting lines as it goes.
pub(super) struct Splitter<'a> {
    bytes: &'a [u8],
    chunks: Vec<Chunk>,
    /// Line number of `line_pos`.
    line: u32,
    line_pos: usize,
}

impl<'a> Splitter<'a> {
    /// A splitter at the start of `input`.
    pub(super) fn new(input: &'a str) -> Self {
        Splitter {
            bytes: input.as_bytes(),
            chunks: Vec::new(),
            line: 1,
            line_pos: 0,
        }
    }

    fn push(&mut self, kind: ChunkKind, start: usize, end: usize) {
        if start >= end {
            return;
        }
        if start > self.line_pos {
            let counted = count_newlines(&self.bytes[self.line_pos..start]);
            self.line = self.line.saturating_add(counted);
            self.line_pos = start;
        }
        self.chunks.push(Chunk {
            kind,
            start,
            end,
            line: self.line,
        });
    }

    /// [`split`](super::split): the whole input.
    pub(super) fn run(mut self) -> Result<Vec<Chunk>, Fail> {
        let bytes = self.bytes;
        let len = bytes.len();
        let mut blank_start = 0;
        let mut i = 0;
        while i < len {
            i = skip_blank(bytes, i).map_err(|at| (LexErrorKind::UnterminatedComment, at))?;
            let Some(&b) = bytes.get(i) else {
                break;
            };
            match b {
                b'\\' => {
                    self.push(ChunkKind::Blank, blank_start, i);
                    let end = end_of_line(bytes, i).unwrap_or(len);
                    self.push(ChunkKind::Meta, i, end);
                    blank_start = end;
                    i = end;
                }
                _ => {
                    self.push(ChunkKind::Blank, blank_start, i);
                    let stmt = scan_statement(bytes, i)?;
                    self.push(ChunkKind::Sql, i, stmt.end);
                    if stmt.copy_from_stdin {
                        if !stmt.terminated {
                            return Err((LexErrorKind::UnterminatedCopy, i));
                        }
                        let data_end = self.copy_data(i, stmt.end)?;
                        blank_start = data_end;
                        i = data_end;
                    } else {
                        blank_start = stmt.end;
                        i = stmt.end;
                    }
                }
            }
        }
        self.push(ChunkKind::Blank, blank_start, len);
        Ok(self.chunks)
    }

    /// [`split_prefix`](super::split_prefix): like [`Splitter::run`], but stops
    /// before the first unit that more input could change.
    pub(super) fn run_prefix(mut self) -> Result<Prefix, Fail> {
        let bytes = self.bytes;
        let len = bytes.len();
        let mut blank_start = 0;
        let mut i = 0;
        let done = |s: Self, consumed: usize, copy_data_follows: bool| Prefix {
            chunks: s.chunks,
            consumed,
            copy_data_follows,
        };
        while i < len {
            let Ok(end) = skip_blank(bytes, i) else {
                return Ok(done(self, blank_start, false));
            };
            i = end;
            let Some(&b) = bytes.get(i) else {
                break;
            };
            match b {
                b'\\' => {
                    let Some(end) = end_of_line(bytes, i) else {
                        return Ok(done(self, blank_start, false));
                    };
                    self.push(ChunkKind::Blank, blank_start, i);
                    self.push(ChunkKind::Meta, i, end);
                    // `\copy … from stdin` is followed by data, not SQL: stop here.
                    if bytes.len() >= i + 5 && bytes[i..i + 5].eq_ignore_ascii_case(b"\\copy") {
                        return Ok(done(self, end, false));
                    }
                    blank_start = end;
                    i = end;
                }
                _ => {
                    let stmt = match scan_statement(bytes, i) {
                        Ok(stmt) if stmt.terminated => stmt,
                        Ok(_) => return Ok(done(self, blank_start, false)),
                        Err((
                            LexErrorKind::UnterminatedQuote
                            | LexErrorKind::UnterminatedIdentifier
                            | LexErrorKind::UnterminatedDollarQuote { .. }
                            | LexErrorKind::UnterminatedComment,
                            _,
                        )) => return Ok(done(self, blank_start, false)),
                        Err(e) => return Err(e),
                    };
                    if stmt.copy_from_stdin {
                        // The rest of the COPY line must be here to know where data starts.
                        let Some(data_start) = copy_line_end(bytes, stmt.end)? else {
                            return Ok(done(self, blank_start, false));
                        };
                        self.push(ChunkKind::Blank, blank_start, i);
                        self.push(ChunkKind::Sql, i, stmt.end);
                        self.push(ChunkKind::Blank, stmt.end, data_start);
                        return Ok(done(self, data_start, true));
                    }
                    self.push(ChunkKind::Blank, blank_start, i);
                    self.push(ChunkKind::Sql, i, stmt.end);
                    blank_start = stmt.end;
                    i = stmt.end;
                }
            }
        }
        Ok(done(self, blank_start, false))
    }

    /// Handles what follows `COPY … FROM stdin;` (whose statement starts at
    /// `stmt_start` and ends at `stmt_end`): the rest of the line as a Blank
    /// chunk, then the data through the `\.` line. Returns the end of the data.
    fn copy_data(&mut self, stmt_start: usize, stmt_end: usize) -> Result<usize, Fail> {
        let bytes = self.bytes;
        let len = bytes.len();
        let Some(data_start) = copy_line_end(bytes, stmt_end)? else {
            return Err((LexErrorKind::UnterminatedCopy, stmt_start));
        };
        self.push(ChunkKind::Blank, stmt_end, data_start);
        let mut line_start = data_start;
        while line_start < len {
            let nl = bytes[line_start..].iter().position(|&b| b == b'\n');
            let line_end = nl.map_or(len, |p| line_start + p);
            let line = &bytes[line_start..line_end];
            if line == b"\\." || line == b"\\.\r" {
                let end = nl.map_or(len, |_| line_end + 1);
                self.push(ChunkKind::CopyData, data_start, end);
                return Ok(end);
            }
            line_start = line_end + 1;
        }
        Err((LexErrorKind::UnterminatedCopy, stmt_start))
    }
}

/// After `COPY … FROM stdin;` ending at `stmt_end`: skips horizontal space and `--`
/// comments to the line break and returns the position after it, where data starts;
/// `None` when the line break is not in `bytes` yet. A comment ends at a CR too,
/// and psql runs whatever follows that CR as SQL after the COPY: an error here.
fn copy_line_end(bytes: &[u8], stmt_end: usize) -> Result<Option<usize>, Fail> {
    let len = bytes.len();
    let mut i = stmt_end;
    loop {
        while i < len && is_hspace(bytes[i]) {
            i += 1;
        }
        if bytes.get(i) == Some(&b'-') && bytes.get(i + 1) == Some(&b'-') {
            i = skip_line_comment(bytes, i);
        } else {
            break;
        }
    }
    match bytes.get(i) {
        None => Ok(None),
        Some(b'\n') => Ok(Some(i + 1)),
        Some(_) => Err((LexErrorKind::TextAfterCopyStatement, i)),
    }
}
