//! Statement lexer for migration files.
//!
//! Migration files are what `psql` accepts: `pg_dump` output and hand-written
//! DDL. [`split`] cuts such a file into [`Chunk`]s (SQL statements, psql
//! meta-commands, `COPY … FROM stdin` data and blank material) so that the
//! engine can send statements to PostgreSQL one at a time. It never splits on
//! a `;` that is inside a quoted string, a quoted identifier, a dollar quote,
//! a comment, parentheses, or a `BEGIN ATOMIC … END` routine body.
//!
//! Lexing follows PostgreSQL's and psql's rules with
//! `standard_conforming_strings = on`. The scanner works on bytes; every
//! delimiter it looks for is ASCII, so every offset it produces is a char
//! boundary of the input.
//!
//! The pieces: `scan` holds the byte classes and the scanners of single tokens
//! (strings, identifiers, dollar quotes, comments), `statement` finds where one
//! statement ends, and `splitter` walks an input from chunk to chunk.

mod scan;
mod splitter;
mod statement;

use std::fmt;

use scan::{
    count_newlines, dollar_tag_end, is_ident_cont, is_ident_start, saturating_u32,
    scan_dollar_body, scan_escape_string, scan_quoted_ident, scan_standard_string, skip_blank,
    skip_block_comment, skip_line_comment, string_prefix_len,
};
use splitter::Splitter;
use statement::Fail;
pub use statement::send_meta_at;

/// What a chunk of a migration file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// One SQL statement: from its first token through its terminating `;`,
    /// or to the end of its last token when the input ends without a `;`.
    Sql,
    /// A psql meta-command: from the backslash to the end of its line (line break excluded).
    Meta,
    /// The data of `COPY … FROM stdin`: from the start of the line after the COPY
    /// statement's line through the `\.` line, including that line's line break (if any).
    CopyData,
    /// Only whitespace and comments.
    Blank,
}

/// A contiguous piece of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// What this piece is.
    pub kind: ChunkKind,
    /// Byte offset of the first byte of the chunk.
    pub start: usize,
    /// Byte offset just past the last byte of the chunk (exclusive).
    pub end: usize,
    /// 1-based line number of `start`.
    pub line: u32,
}

impl Chunk {
    /// The text of this chunk within `input`, which must be the string that was
    /// passed to [`split`]. Returns `""` if the offsets do not fit `input`.
    pub fn text<'a>(&self, input: &'a str) -> &'a str {
        input.get(self.start..self.end).unwrap_or("")
    }
}

/// Why [`split`] failed, and where the offending construct started.
///
/// For the `Unterminated*` kinds the position is where the unterminated
/// construct starts (for `UnterminatedCopy`: the start of the `COPY`
/// statement). For [`LexErrorKind::MetaCommandInStatement`] it is the
/// backslash, and for [`LexErrorKind::TextAfterCopyStatement`] the first
/// offending character after the `;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// What went wrong.
    pub kind: LexErrorKind,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in chars.
    pub column: u32,
}

/// The kinds of [`LexError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LexErrorKind {
    /// A `'…'` string (also `E'…'`, `U&'…'`, `B'…'`, `X'…'`, `N'…'`) without its closing quote.
    UnterminatedQuote,
    /// A `"…"` quoted identifier (also `U&"…"`) without its closing quote.
    UnterminatedIdentifier,
    /// A dollar quote without its closing tag.
    UnterminatedDollarQuote {
        /// The opening tag as written, e.g. `"$fn$"` or `"$$"`.
        tag: String,
    },
    /// A `/* …` comment (comments nest) without its closing `*/`.
    UnterminatedComment,
    /// `COPY … FROM stdin` without a `\.` line after it.
    UnterminatedCopy,
    /// A psql backslash command at the start of a line while an SQL statement is unfinished.
    MetaCommandInStatement,
    /// Non-blank text after `COPY … FROM stdin;` on the same line.
    TextAfterCopyStatement,
}

impl fmt::Display for LexErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LexErrorKind::UnterminatedQuote => f.write_str("unterminated quoted string"),
            LexErrorKind::UnterminatedIdentifier => f.write_str("unterminated quoted identifier"),
            LexErrorKind::UnterminatedDollarQuote { tag } => {
                write!(f, "unterminated dollar quote {tag}")
            }
            LexErrorKind::UnterminatedComment => f.write_str("unterminated /* comment"),
            LexErrorKind::UnterminatedCopy => {
                f.write_str("copy from stdin without a terminating \\. line")
            }
            LexErrorKind::MetaCommandInStatement => {
                f.write_str("psql meta-command inside an unfinished sql statement")
            }
            LexErrorKind::TextAfterCopyStatement => {
                f.write_str("unexpected text after copy from stdin statement on the same line")
            }
        }
    }
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = match self.kind {
            LexErrorKind::MetaCommandInStatement | LexErrorKind::TextAfterCopyStatement => "at",
            _ => "starting at",
        };
        write!(
            f,
            "{} {at} line {}, column {}",
            self.kind, self.line, self.column
        )
    }
}

impl std::error::Error for LexError {}

/// Splits `input` into chunks that cover it exactly, in order, with no gaps or overlaps.
///
/// Statements end at a `;` outside quotes, comments, dollar quotes and
/// parentheses (and outside a `BEGIN ATOMIC … END` body of
/// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, as psql does). A backslash that
/// appears where no statement is in progress starts a psql meta-command that
/// runs to the end of its line. `COPY … FROM stdin` statements are followed by
/// a [`ChunkKind::CopyData`] chunk. Empty input gives an empty `Vec`; no chunk
/// is ever empty and two [`ChunkKind::Blank`] chunks are never adjacent.
pub fn split(input: &str) -> Result<Vec<Chunk>, LexError> {
    Splitter::new(input)
        .run()
        .map_err(|fail| lex_error(input, fail))
}

/// The complete chunks at the start of a piece of a longer input, for reading a file
/// in blocks. See [`split_prefix`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prefix {
    /// Complete chunks, covering `input[..consumed]`, with `line` counted from the
    /// start of the piece.
    pub chunks: Vec<Chunk>,
    /// How many bytes the chunks cover. The rest must be passed again, with more input.
    pub consumed: usize,
    /// The last chunk is a `COPY … FROM stdin` statement (then the rest of its line as
    /// a Blank chunk): its data starts at `consumed` and runs through a `\.` line.
    pub copy_data_follows: bool,
}

/// Splits the complete chunks off the start of `piece`, the beginning of an input
/// whose end has not been read yet.
///
/// A statement is complete at its terminating `;`, a meta-command at its line break;
/// blank material is left for the next call when nothing follows it. Parse errors
/// that more input could cure (an unterminated quote, comment or statement) end the
/// prefix instead. When `copy_data_follows` is set the caller reads the data itself
/// up to the `\.` line and goes on after it. When the whole input has been read, pass
/// the remainder to [`split`], which reports what is still unterminated.
///
/// # Errors
/// Errors that more input cannot cure: a meta-command inside a statement, text after
/// `COPY … FROM stdin;` on its line.
pub fn split_prefix(piece: &str) -> Result<Prefix, LexError> {
    Splitter::new(piece)
        .run_prefix()
        .map_err(|fail| lex_error(piece, fail))
}

/// A scanner's failure as a [`LexError`] at its line and column of `input`.
fn lex_error(input: &str, (kind, offset): Fail) -> LexError {
    let (line, column) = line_col(input, offset);
    LexError { kind, line, column }
}

/// The byte ranges of `sql` that are code: outside quoted strings, quoted
/// identifiers, dollar quotes and comments. Unterminated constructs run to the end.
/// Used to interpolate psql variables where psql does.
pub fn code_spans(sql: &str) -> Vec<(usize, usize)> {
    let bytes = sql.as_bytes();
    let len = bytes.len();
    let mut spans = Vec::new();
    let mut code_start = 0;
    let mut i = 0;
    let cut = |spans: &mut Vec<(usize, usize)>, from: usize, to: usize| {
        if to > from {
            spans.push((from, to));
        }
    };
    while i < len {
        let b = bytes[i];
        let skip_to = if is_ident_start(b) {
            let word_start = i;
            let mut j = i + 1;
            while j < len && is_ident_cont(bytes[j]) {
                j += 1;
            }
            match string_prefix_len(bytes, word_start, j) {
                Some((escape, quote)) if bytes.get(j).is_some_and(|&n| n == b'\'' || n == b'&') => {
                    let end = if bytes[quote] == b'"' {
                        scan_quoted_ident(bytes, quote + 1)
                    } else if escape {
                        scan_escape_string(bytes, quote + 1)
                    } else {
                        scan_standard_string(bytes, quote + 1)
                    };
                    Some((word_start, end.unwrap_or(len)))
                }
                _ => {
                    i = j;
                    None
                }
            }
        } else {
            match b {
                b'\'' => Some((i, scan_standard_string(bytes, i + 1).unwrap_or(len))),
                b'"' => Some((i, scan_quoted_ident(bytes, i + 1).unwrap_or(len))),
                b'$' => match dollar_tag_end(bytes, i) {
                    Some(tag_end) => Some((
                        i,
                        scan_dollar_body(bytes, tag_end, &bytes[i..tag_end]).unwrap_or(len),
                    )),
                    None => {
                        i += 1;
                        None
                    }
                },
                b'-' if bytes.get(i + 1) == Some(&b'-') => Some((i, skip_line_comment(bytes, i))),
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    Some((i, skip_block_comment(bytes, i).unwrap_or(len)))
                }
                _ => {
                    i += 1;
                    None
                }
            }
        };
        if let Some((from, to)) = skip_to {
            cut(&mut spans, code_start, from);
            code_start = to;
            i = to;
        }
    }
    cut(&mut spans, code_start, len);
    spans
}

/// 1-based (line, column) of a byte offset; column counted in chars. Offsets past the end clamp
/// to the end, and an offset inside a multi-byte char counts as that char's position.
pub fn line_col(input: &str, byte_offset: usize) -> (u32, u32) {
    let mut offset = byte_offset.min(input.len());
    while offset > 0 && !input.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &input.as_bytes()[..offset];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line = count_newlines(&before[..line_start]).saturating_add(1);
    let chars = before[line_start..]
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count();
    (line, saturating_u32(chars).saturating_add(1))
}

/// The first `n` keywords of an SQL statement, upper-cased, skipping leading comments and whitespace,
/// stopping at the first token that is not a bare word (e.g. `["CREATE","INDEX","CONCURRENTLY"]`).
///
/// Comments between the words are skipped too. A string prefix such as the `E`
/// of `E'…'` is not a bare word.
pub fn leading_keywords(sql: &str, n: usize) -> Vec<String> {
    leading_words(sql)
        .take(n)
        .map(str::to_ascii_uppercase)
        .collect()
}

/// The bare words an SQL statement starts with, as written (compare them with
/// `eq_ignore_ascii_case`): the words of [`leading_keywords`], without copying them.
pub fn leading_words(sql: &str) -> LeadingWords<'_> {
    LeadingWords { sql, at: 0 }
}

/// The iterator of [`leading_words`].
#[derive(Debug, Clone)]
pub struct LeadingWords<'a> {
    sql: &'a str,
    /// Where the next word may start; past the end once a token that is not a bare
    /// word was met.
    at: usize,
}

impl<'a> Iterator for LeadingWords<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.sql.as_bytes();
        let len = bytes.len();
        // Skip whitespace and comments.
        let start = skip_blank(bytes, self.at).ok()?;
        self.at = len + 1;
        if !bytes.get(start).is_some_and(|&b| is_ident_start(b)) {
            return None;
        }
        let mut end = start + 1;
        while end < len && is_ident_cont(bytes[end]) {
            end += 1;
        }
        if string_prefix_len(bytes, start, end).is_some() {
            return None;
        }
        let word = self.sql.get(start..end)?;
        self.at = end;
        Some(word)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]
mod tests;
