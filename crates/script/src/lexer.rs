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

use std::fmt;

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
    Splitter {
        bytes: input.as_bytes(),
        chunks: Vec::new(),
        line: 1,
        line_pos: 0,
    }
    .run()
    .map_err(|(kind, offset)| {
        let (line, column) = line_col(input, offset);
        LexError { kind, line, column }
    })
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
    Splitter {
        bytes: piece.as_bytes(),
        chunks: Vec::new(),
        line: 1,
        line_pos: 0,
    }
    .run_prefix()
    .map_err(|(kind, offset)| {
        let (line, column) = line_col(piece, offset);
        LexError { kind, line, column }
    })
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
    let bytes = sql.as_bytes();
    let len = bytes.len();
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        // Skip whitespace and comments.
        loop {
            match bytes.get(i) {
                Some(&b) if is_space(b) => i += 1,
                Some(b'-') if bytes.get(i + 1) == Some(&b'-') => i = skip_line_comment(bytes, i),
                Some(b'/') if bytes.get(i + 1) == Some(&b'*') => {
                    match skip_block_comment(bytes, i) {
                        Some(end) => i = end,
                        None => return out,
                    }
                }
                _ => break,
            }
        }
        match bytes.get(i) {
            Some(&b) if is_ident_start(b) => {}
            _ => break,
        }
        let start = i;
        i += 1;
        while i < len && is_ident_cont(bytes[i]) {
            i += 1;
        }
        if string_prefix_len(bytes, start, i).is_some() {
            break;
        }
        match sql.get(start..i) {
            Some(word) => out.push(word.to_ascii_uppercase()),
            None => break,
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Byte classes.

const C_SPACE: u8 = 1; // PostgreSQL whitespace: space \t \n \r \f \v
const C_IDSTART: u8 = 2; // letters, `_`, non-ASCII
const C_IDCONT: u8 = 4; // letters, digits, `_`, `$`, non-ASCII
const C_NUMCONT: u8 = 8; // letters, digits, `_`, `.`
const C_DOLQCONT: u8 = 16; // letters, digits, `_`, non-ASCII

static CLASS: [u8; 256] = build_classes();

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0usize;
    while i < 256 {
        let b = i as u8;
        let mut c = 0u8;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            c |= C_SPACE;
        }
        let letter = b.is_ascii_alphabetic() || b == b'_' || b >= 0x80;
        if letter {
            c |= C_IDSTART | C_IDCONT | C_DOLQCONT;
        }
        if b.is_ascii_digit() {
            c |= C_IDCONT | C_DOLQCONT | C_NUMCONT;
        }
        if b == b'$' {
            c |= C_IDCONT;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b == b'.' {
            c |= C_NUMCONT;
        }
        t[i] = c;
        i += 1;
    }
    t
}

#[inline]
fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

#[inline]
fn is_space(b: u8) -> bool {
    class(b) & C_SPACE != 0
}

#[inline]
fn is_ident_start(b: u8) -> bool {
    class(b) & C_IDSTART != 0
}

#[inline]
fn is_ident_cont(b: u8) -> bool {
    class(b) & C_IDCONT != 0
}

/// Horizontal whitespace for the purpose of "rest of the line" checks.
#[inline]
fn is_hspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

fn count_newlines(bytes: &[u8]) -> u32 {
    saturating_u32(bytes.iter().filter(|&&b| b == b'\n').count())
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------
// Low-level scanners. Each takes the byte slice and a position and returns
// the position just past the construct, or `None` when it is unterminated.

/// Skips a `--` comment starting at `i`; returns the position of the line
/// break that ends it (or the end of input). The line break is not consumed.
#[inline]
fn skip_line_comment(bytes: &[u8], i: usize) -> usize {
    let rest = bytes.get(i..).unwrap_or(&[]);
    match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
        Some(p) => i + p,
        None => bytes.len(),
    }
}

/// Skips a (nesting) `/* … */` comment whose `/*` is at `i`.
fn skip_block_comment(bytes: &[u8], i: usize) -> Option<usize> {
    let len = bytes.len();
    let mut depth = 1u32;
    let mut j = i + 2;
    while j < len {
        match bytes[j] {
            b'*' if bytes.get(j + 1) == Some(&b'/') => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return Some(j);
                }
            }
            b'/' if bytes.get(j + 1) == Some(&b'*') => {
                depth = depth.saturating_add(1);
                j += 2;
            }
            _ => j += 1,
        }
    }
    None
}

/// Scans a standard string (`''` escapes a quote, backslash is plain) whose
/// body starts at `i` (just after the opening quote).
#[inline]
fn scan_standard_string(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let rest = bytes.get(i..)?;
        let p = rest.iter().position(|&b| b == b'\'')?;
        i += p + 1;
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
        } else {
            return Some(i);
        }
    }
}

/// Scans an escape string (`\` escapes the next byte, `''` escapes a quote)
/// whose body starts at `i`. Follows PostgreSQL's string continuation rule:
/// `E'a'` followed by whitespace containing a line break and another `'…'`
/// continues the same (escape) string.
fn scan_escape_string(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let rest = bytes.get(i..)?;
        let p = rest.iter().position(|&b| b == b'\'' || b == b'\\')?;
        i += p;
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        i += 1;
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            continue;
        }
        match string_continuation(bytes, i) {
            Some(next) => i = next,
            None => return Some(i),
        }
    }
}

/// PostgreSQL's `quotecontinue`: after a string's closing quote at `i - 1`,
/// horizontal whitespace and `--` comments, a line break, then any
/// whitespace or comment lines, then `'`. Returns the position after that
/// `'` when the string continues.
fn string_continuation(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match bytes.get(i)? {
            b' ' | b'\t' | 0x0c => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_line_comment(bytes, i),
            b'\n' | b'\r' => break,
            _ => return None,
        }
    }
    loop {
        match bytes.get(i)? {
            &b if is_space(b) => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = skip_line_comment(bytes, i);
                // The comment must be followed by a line break.
                bytes.get(i)?;
            }
            b'\'' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// Scans a quoted identifier (`""` escapes a quote) whose body starts at `i`.
#[inline]
fn scan_quoted_ident(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let rest = bytes.get(i..)?;
        let p = rest.iter().position(|&b| b == b'"')?;
        i += p + 1;
        if bytes.get(i) == Some(&b'"') {
            i += 1;
        } else {
            return Some(i);
        }
    }
}

/// Finds the end of a dollar-quoted body that starts at `i`, closed by `tag`.
fn scan_dollar_body(bytes: &[u8], mut i: usize, tag: &[u8]) -> Option<usize> {
    loop {
        let rest = bytes.get(i..)?;
        let p = rest.iter().position(|&b| b == b'$')?;
        i += p;
        if bytes[i..].starts_with(tag) {
            return Some(i + tag.len());
        }
        i += 1;
    }
}

/// If the `$` at `i` opens a dollar quote, returns the end of its tag
/// (just past the tag's closing `$`).
#[inline]
fn dollar_tag_end(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes.get(i + 1) {
        Some(b'$') => Some(i + 2),
        Some(&b) if is_ident_start(b) => {
            let mut j = i + 2;
            while j < bytes.len() && class(bytes[j]) & C_DOLQCONT != 0 {
                j += 1;
            }
            (bytes.get(j) == Some(&b'$')).then_some(j + 1)
        }
        _ => None,
    }
}

/// If the word `bytes[start..end]` is a string or identifier prefix (`E'`,
/// `B'`, `X'`, `N'`, `U&'`, `U&"`), returns `(is_escape_string, quote_pos)`.
#[inline]
fn string_prefix_len(bytes: &[u8], start: usize, end: usize) -> Option<(bool, usize)> {
    if end != start + 1 {
        return None;
    }
    match (bytes[start], bytes.get(end)) {
        (b'e' | b'E', Some(b'\'')) => Some((true, end)),
        (b'b' | b'B' | b'x' | b'X' | b'n' | b'N', Some(b'\'')) => Some((false, end)),
        (b'u' | b'U', Some(b'&')) => match bytes.get(end + 1) {
            Some(b'\'' | b'"') => Some((false, end + 1)),
            _ => None,
        },
        _ => None,
    }
}

/// True when the byte at `i` is the first non-whitespace byte of its line.
fn is_line_leading(bytes: &[u8], i: usize) -> bool {
    let mut j = i;
    while j > 0 {
        let b = bytes[j - 1];
        if b == b'\n' {
            return true;
        }
        if !is_hspace(b) {
            return false;
        }
        j -= 1;
    }
    true
}

fn eq_word(word: &[u8], kw: &[u8]) -> bool {
    word.eq_ignore_ascii_case(kw)
}

// ---------------------------------------------------------------------------
// Statement scanning.

type Fail = (LexErrorKind, usize);

/// How a statement ended.
struct StatementEnd {
    /// End offset of the Sql chunk.
    end: usize,
    /// Whether it ended with a `;` (otherwise: end of input).
    terminated: bool,
    /// Whether it is `COPY … FROM STDIN`.
    copy_from_stdin: bool,
    /// Where a `\g` or `\gset` that ends it starts (the chunk then runs to the end
    /// of that line).
    gset_at: Option<usize>,
}

/// Whether `bytes[i..]` is psql's `\g` or `\gset` (then a space, a line break or
/// the end): the meta-commands that end a statement and send it.
fn is_send_meta(bytes: &[u8], i: usize) -> bool {
    let rest = &bytes[i..];
    let word = if rest.starts_with(b"\\gset") {
        5
    } else if rest.starts_with(b"\\g") {
        2
    } else {
        return false;
    };
    rest.get(word).is_none_or(|&b| is_space(b))
}

/// Where the `\g` or `\gset` that ends a statement starts, if one does (the
/// statement as [`split`] gives it: the meta-command is part of its chunk).
pub fn send_meta_at(statement: &str) -> Option<usize> {
    scan_statement(statement.as_bytes(), 0).ok()?.gset_at
}

/// Per-statement state, mirroring psql's lexer state.
struct Statement {
    paren_depth: u32,
    /// psql's `begin_depth`: inside `BEGIN [ATOMIC] … END` of a routine body.
    begin_depth: u32,
    /// psql's `identifier_count`: bare words seen so far.
    word_count: u32,
    /// psql's `identifiers`: first letters of CREATE/OR/REPLACE/FUNCTION/PROCEDURE
    /// among the first four words.
    letters: [u8; 4],
    seen_token: bool,
    is_copy: bool,
    from_pending: bool,
    copy_from_stdin: bool,
    last_end: usize,
}

impl Statement {
    fn new(start: usize) -> Self {
        Statement {
            paren_depth: 0,
            begin_depth: 0,
            word_count: 0,
            letters: [0; 4],
            seen_token: false,
            is_copy: false,
            from_pending: false,
            copy_from_stdin: false,
            last_end: start,
        }
    }

    /// Any token that is not a bare word.
    #[inline]
    fn token(&mut self, end: usize) {
        self.seen_token = true;
        self.from_pending = false;
        self.last_end = end;
    }

    /// A bare word (identifier or keyword).
    #[inline]
    fn word(&mut self, word: &[u8], end: usize) {
        if !self.seen_token && eq_word(word, b"copy") {
            self.is_copy = true;
        }
        if self.is_copy {
            if self.paren_depth == 0 {
                if self.from_pending && eq_word(word, b"stdin") {
                    self.copy_from_stdin = true;
                }
                self.from_pending = eq_word(word, b"from");
            } else {
                self.from_pending = false;
            }
        }
        self.seen_token = true;
        self.last_end = end;

        // psql's heuristic for SQL-standard routine bodies
        // (`CREATE [OR REPLACE] FUNCTION|PROCEDURE … BEGIN ATOMIC … END`).
        if let Some(slot) = self.letters.get_mut(self.word_count as usize) {
            let letter = match word.len() {
                2 if eq_word(word, b"or") => b'o',
                6 if eq_word(word, b"create") => b'c',
                7 if eq_word(word, b"replace") => b'r',
                8 if eq_word(word, b"function") => b'f',
                9 if eq_word(word, b"procedure") => b'p',
                _ => 0,
            };
            if letter != 0 {
                *slot = letter;
            }
        }
        self.word_count = self.word_count.saturating_add(1);
        if self.letters[0] == b'c' && self.paren_depth == 0 {
            let l = self.letters;
            let routine = matches!(l[1], b'f' | b'p')
                || (l[1] == b'o' && l[2] == b'r' && matches!(l[3], b'f' | b'p'));
            if routine {
                match word.len() {
                    5 if eq_word(word, b"begin") => {
                        self.begin_depth = self.begin_depth.saturating_add(1);
                    }
                    4 if self.begin_depth >= 1 && eq_word(word, b"case") => {
                        self.begin_depth = self.begin_depth.saturating_add(1);
                    }
                    3 if eq_word(word, b"end") => {
                        self.begin_depth = self.begin_depth.saturating_sub(1);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Scans one SQL statement whose first token starts at `start`.
fn scan_statement(bytes: &[u8], start: usize) -> Result<StatementEnd, Fail> {
    let len = bytes.len();
    let mut st = Statement::new(start);
    let mut i = start;
    while i < len {
        let b = bytes[i];
        let c = class(b);
        if c & C_SPACE != 0 {
            i += 1;
            while i < len && is_space(bytes[i]) {
                i += 1;
            }
            continue;
        }
        if c & C_IDSTART != 0 {
            let word_start = i;
            i += 1;
            while i < len && is_ident_cont(bytes[i]) {
                i += 1;
            }
            if bytes.get(i).is_some_and(|&n| n == b'\'' || n == b'&')
                && let Some((escape, quote)) = string_prefix_len(bytes, word_start, i)
            {
                i = if bytes[quote] == b'"' {
                    scan_quoted_ident(bytes, quote + 1)
                        .ok_or((LexErrorKind::UnterminatedIdentifier, word_start))?
                } else if escape {
                    scan_escape_string(bytes, quote + 1)
                        .ok_or((LexErrorKind::UnterminatedQuote, word_start))?
                } else {
                    scan_standard_string(bytes, quote + 1)
                        .ok_or((LexErrorKind::UnterminatedQuote, word_start))?
                };
                st.token(i);
                continue;
            }
            st.word(&bytes[word_start..i], i);
            continue;
        }
        match b {
            b';' => {
                if st.paren_depth == 0 && st.begin_depth == 0 {
                    return Ok(StatementEnd {
                        end: i + 1,
                        terminated: true,
                        copy_from_stdin: st.copy_from_stdin,
                        gset_at: None,
                    });
                }
                i += 1;
                st.token(i);
            }
            b'0'..=b'9' => {
                i += 1;
                while i < len && class(bytes[i]) & C_NUMCONT != 0 {
                    i += 1;
                }
                st.token(i);
            }
            b'\'' => {
                i = scan_standard_string(bytes, i + 1)
                    .ok_or((LexErrorKind::UnterminatedQuote, i))?;
                st.token(i);
            }
            b'"' => {
                i = scan_quoted_ident(bytes, i + 1)
                    .ok_or((LexErrorKind::UnterminatedIdentifier, i))?;
                st.token(i);
            }
            b'$' => {
                if let Some(tag_end) = dollar_tag_end(bytes, i) {
                    let tag = &bytes[i..tag_end];
                    match scan_dollar_body(bytes, tag_end, tag) {
                        Some(end) => i = end,
                        None => {
                            let tag = String::from_utf8_lossy(tag).into_owned();
                            return Err((LexErrorKind::UnterminatedDollarQuote { tag }, i));
                        }
                    }
                } else {
                    // A parameter (`$1`) or a lone `$`.
                    i += 1;
                    while i < len && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                st.token(i);
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = skip_line_comment(bytes, i);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(bytes, i).ok_or((LexErrorKind::UnterminatedComment, i))?;
            }
            b'(' => {
                st.paren_depth = st.paren_depth.saturating_add(1);
                i += 1;
                st.token(i);
            }
            b')' => {
                st.paren_depth = st.paren_depth.saturating_sub(1);
                i += 1;
                st.token(i);
            }
            b'\\' => {
                if is_send_meta(bytes, i) {
                    // `SELECT … \gset [prefix]`: the statement ends here; the
                    // meta-command runs to the end of its line, in the same chunk.
                    let (end, terminated) = match bytes[i..].iter().position(|&b| b == b'\n') {
                        Some(p) if p > 0 && bytes[i + p - 1] == b'\r' => (i + p - 1, true),
                        Some(p) => (i + p, true),
                        None => (len, false),
                    };
                    return Ok(StatementEnd {
                        end,
                        terminated,
                        copy_from_stdin: false,
                        gset_at: Some(i),
                    });
                }
                if is_line_leading(bytes, i) {
                    return Err((LexErrorKind::MetaCommandInStatement, i));
                }
                i += 1;
                st.token(i);
            }
            _ => {
                i += 1;
                st.token(i);
            }
        }
    }
    Ok(StatementEnd {
        end: st.last_end,
        terminated: false,
        copy_from_stdin: st.copy_from_stdin,
        gset_at: None,
    })
}

/// After `COPY … FROM stdin;` ending at `stmt_end`: skips horizontal space and `--`
/// comments to the line break and returns the position after it, where data starts;
/// `None` when the line break is not in `bytes` yet.
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

// ---------------------------------------------------------------------------
// The splitter.

struct Splitter<'a> {
    bytes: &'a [u8],
    chunks: Vec<Chunk>,
    /// Line number of `line_pos`.
    line: u32,
    line_pos: usize,
}

impl Splitter<'_> {
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

    fn run(mut self) -> Result<Vec<Chunk>, Fail> {
        let bytes = self.bytes;
        let len = bytes.len();
        let mut blank_start = 0;
        let mut i = 0;
        while i < len {
            let b = bytes[i];
            if is_space(b) {
                i += 1;
                continue;
            }
            match b {
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    i = skip_line_comment(bytes, i);
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    i = skip_block_comment(bytes, i)
                        .ok_or((LexErrorKind::UnterminatedComment, i))?;
                }
                b'\\' => {
                    self.push(ChunkKind::Blank, blank_start, i);
                    let line_end = bytes[i..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(len, |p| i + p);
                    let end = if line_end < len && line_end > i && bytes[line_end - 1] == b'\r' {
                        line_end - 1
                    } else {
                        line_end
                    };
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

    /// Handles what follows `COPY … FROM stdin;` (whose statement starts at
    /// `stmt_start` and ends at `stmt_end`): the rest of the line as a Blank
    /// chunk, then the data through the `\.` line. Returns the end of the data.
    /// [`split_prefix`]: like [`Splitter::run`], but stops before the first unit
    /// that more input could change.
    fn run_prefix(mut self) -> Result<Prefix, Fail> {
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
            let b = bytes[i];
            if is_space(b) {
                i += 1;
                continue;
            }
            match b {
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    i = skip_line_comment(bytes, i);
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => match skip_block_comment(bytes, i) {
                    Some(end) => i = end,
                    None => return Ok(done(self, blank_start, false)),
                },
                b'\\' => {
                    let Some(p) = bytes[i..].iter().position(|&b| b == b'\n') else {
                        return Ok(done(self, blank_start, false));
                    };
                    let line_end = i + p;
                    let end = if line_end > i && bytes[line_end - 1] == b'\r' {
                        line_end - 1
                    } else {
                        line_end
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

    fn copy_data(&mut self, stmt_start: usize, stmt_end: usize) -> Result<usize, Fail> {
        let bytes = self.bytes;
        let len = bytes.len();
        let mut i = stmt_end;
        // Horizontal whitespace and `--` comments; a comment ends at a CR too,
        // and psql runs whatever follows that CR as SQL after the COPY.
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
            None => return Err((LexErrorKind::UnterminatedCopy, stmt_start)),
            Some(b'\n') => {}
            Some(_) => return Err((LexErrorKind::TextAfterCopyStatement, i)),
        }
        let data_start = i + 1;
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure the test reports"
)]
mod tests {
    use super::*;
    use ChunkKind::{Blank, CopyData, Meta, Sql};
    use proptest::prelude::*;

    /// All chunks as (kind, text).
    fn chunks(input: &str) -> Vec<(ChunkKind, &str)> {
        split(input)
            .unwrap_or_else(|e| panic!("split failed: {e} for {input:?}"))
            .iter()
            .map(|c| (c.kind, c.text(input)))
            .collect()
    }

    /// Texts of the Sql chunks only.
    fn stmts(input: &str) -> Vec<&str> {
        chunks(input)
            .into_iter()
            .filter(|(k, _)| *k == Sql)
            .map(|(_, t)| t)
            .collect()
    }

    /// (kind, line, column) of the error.
    fn err(input: &str) -> (LexErrorKind, u32, u32) {
        let e = split(input).expect_err(input);
        (e.kind, e.line, e.column)
    }

    // --- statements -------------------------------------------------------

    #[test]
    fn empty_input_gives_no_chunks() {
        assert!(split("").unwrap().is_empty());
    }

    #[test]
    fn blank_input_is_one_blank_chunk() {
        let input = "  \n-- c\n/* x */\r\n\t";
        assert_eq!(chunks(input), vec![(Blank, input)]);
    }

    #[test]
    fn simple_statements() {
        assert_eq!(
            chunks("select 1;\nselect 2;\n"),
            vec![
                (Sql, "select 1;"),
                (Blank, "\n"),
                (Sql, "select 2;"),
                (Blank, "\n"),
            ]
        );
        assert_eq!(
            chunks("  -- lead\nselect 1;select 2;"),
            vec![
                (Blank, "  -- lead\n"),
                (Sql, "select 1;"),
                (Sql, "select 2;"),
            ]
        );
    }

    #[test]
    fn empty_statement() {
        assert_eq!(stmts(";;select 1;"), vec![";", ";", "select 1;"]);
    }

    #[test]
    fn final_statement_without_semicolon() {
        assert_eq!(
            chunks("select 1;\nselect 2 -- tail ;\n/* c */\n"),
            vec![
                (Sql, "select 1;"),
                (Blank, "\n"),
                (Sql, "select 2"),
                (Blank, " -- tail ;\n/* c */\n"),
            ]
        );
        assert_eq!(chunks("select 'x'"), vec![(Sql, "select 'x'")]);
    }

    #[test]
    fn semicolon_in_standard_string() {
        assert_eq!(
            stmts("select 'a;b', 'it''s;';select 2;"),
            vec!["select 'a;b', 'it''s;';", "select 2;"]
        );
        // standard_conforming_strings: a backslash does not escape the quote.
        assert_eq!(
            stmts(r"select 'a\';select 2;"),
            vec![r"select 'a\';", "select 2;"]
        );
        // B'', X'', N'' are standard strings.
        assert_eq!(
            stmts("select b'1;', X'F;', n'x;';select 2;"),
            vec!["select b'1;', X'F;', n'x;';", "select 2;"]
        );
    }

    #[test]
    fn semicolon_in_escape_string() {
        assert_eq!(
            stmts(r"select E'it\'s; fine', e'\\';select 2;"),
            vec![r"select E'it\'s; fine', e'\\';", "select 2;"]
        );
        assert_eq!(
            stmts(r"select E'a''b;\';'; x;"),
            vec![r"select E'a''b;\';';", "x;"]
        );
        // A word that merely ends in `e` is not an escape-string prefix.
        assert_eq!(stmts(r"select xe'a\';x;"), vec![r"select xe'a\';", "x;"]);
    }

    #[test]
    fn escape_string_continuation() {
        // `E'a'` <newline> `'…'` continues the escape string, so `\'` escapes.
        let input = "select E'a' -- c\n  '\\';x';\nselect 2;";
        assert_eq!(
            stmts(input),
            vec!["select E'a' -- c\n  '\\';x';", "select 2;"]
        );
        // Without a line break it is not a continuation: `'\'` is a standard string.
        assert_eq!(
            stmts("select E'a' '\\';select 2;"),
            vec!["select E'a' '\\';", "select 2;"]
        );
    }

    #[test]
    fn semicolon_in_quoted_identifier() {
        assert_eq!(
            stmts(r#"select "a;""b" from "t;";select 2;"#),
            vec![r#"select "a;""b" from "t;";"#, "select 2;"]
        );
        assert_eq!(
            stmts(r#"select U&'d;0061', U&"a;b", u&'\';x;"#),
            vec![r#"select U&'d;0061', U&"a;b", u&'\';"#, "x;"]
        );
    }

    #[test]
    fn dollar_quotes() {
        let body = "create function f() returns int language plpgsql as $$\n\
                    begin\n  perform 1; perform 'x'';';\n  return 1;\nend;\n$$;";
        assert_eq!(
            stmts(&format!("{body}\nselect 2;")),
            vec![body, "select 2;"]
        );

        let tagged = "do $fn$ begin; $$ ; $$; $f$ ; $Fn$; end $fn$;";
        assert_eq!(
            stmts(&format!("{tagged}select 2;")),
            vec![tagged, "select 2;"]
        );

        let nested = "create function g() returns text as $outer$\n\
                      begin execute $inner$ select ';' ; $inner$; return $$;$$; end;\n\
                      $outer$ language plpgsql;";
        assert_eq!(
            stmts(&format!("{nested}\nselect 3;")),
            vec![nested, "select 3;"]
        );

        // Quotes inside a dollar quote are plain characters.
        assert_eq!(
            stmts("select $q$ ' \" /* -- $q$; select 2;"),
            vec!["select $q$ ' \" /* -- $q$;", "select 2;"]
        );
        // Non-ASCII tag.
        assert_eq!(
            stmts("select $é$ ; $é$; select 2;"),
            vec!["select $é$ ; $é$;", "select 2;"]
        );
    }

    #[test]
    fn params_and_identifiers_are_not_dollar_quotes() {
        assert_eq!(
            stmts("select $1, a$b, $2 from t$$ where x = $3;select 2;"),
            vec!["select $1, a$b, $2 from t$$ where x = $3;", "select 2;"]
        );
        assert_eq!(
            stmts("select a$$b;select $1$;"),
            vec!["select a$$b;", "select $1$;"]
        );
        // A `$tag` without a closing `$` is not a dollar quote.
        assert_eq!(
            stmts("select $ab; select 2;"),
            vec!["select $ab;", "select 2;"]
        );
        // A digit cannot start a tag.
        assert_eq!(
            stmts("select $1a$;select 2;"),
            vec!["select $1a$;", "select 2;"]
        );
    }

    #[test]
    fn comments() {
        assert_eq!(
            stmts("select 1 -- ; not the end\n, 2;select 3;"),
            vec!["select 1 -- ; not the end\n, 2;", "select 3;"]
        );
        assert_eq!(
            stmts("select /* ; /* nested ; */ still ; */ 1;select 2;"),
            vec!["select /* ; /* nested ; */ still ; */ 1;", "select 2;"]
        );
        // `--` comment ends at a bare CR too.
        assert_eq!(
            stmts("select 1 -- c\r;select 2;"),
            vec!["select 1 -- c\r;", "select 2;"]
        );
        // Quotes inside comments do not open strings.
        assert_eq!(
            stmts("select 1 /* ' \" $$ */; -- '\nselect 2;"),
            vec!["select 1 /* ' \" $$ */;", "select 2;"]
        );
        // Comments between statements are Blank.
        assert_eq!(
            chunks("select 1; /* a /* b */ c */ -- d\nselect 2;"),
            vec![
                (Sql, "select 1;"),
                (Blank, " /* a /* b */ c */ -- d\n"),
                (Sql, "select 2;"),
            ]
        );
        // `*/*` and `/**/` inside a statement.
        assert_eq!(stmts("select 2*/**/3;x;"), vec!["select 2*/**/3;", "x;"]);
    }

    #[test]
    fn semicolon_in_parentheses() {
        let rule = "create rule r as on insert to t do also (insert into a values (1); \
                    insert into b values (2));";
        assert_eq!(
            stmts(&format!("{rule}\nselect 1;")),
            vec![rule, "select 1;"]
        );
        // Unbalanced `)` does not go negative.
        assert_eq!(
            stmts("select 1);select (2;);"),
            vec!["select 1);", "select (2;);"]
        );
        // Parentheses inside strings do not count.
        assert_eq!(
            stmts("select '(';select 2;"),
            vec!["select '(';", "select 2;"]
        );
    }

    #[test]
    fn begin_atomic_routine_body() {
        let f = "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql\n\
                 BEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n\
                 END;";
        assert_eq!(stmts(&format!("{f}\nselect 2;")), vec![f, "select 2;"]);

        let p = "create or replace procedure p() begin atomic insert into t values (1); end;";
        assert_eq!(stmts(&format!("{p}select 2;")), vec![p, "select 2;"]);

        // A comment between CREATE and OR REPLACE does not matter.
        let q = "create /* x */ or replace function q() returns int begin atomic select 1; end;";
        assert_eq!(stmts(&format!("{q}select 2;")), vec![q, "select 2;"]);

        // Transaction BEGIN/END are ordinary statements.
        assert_eq!(
            stmts("begin; select 1; end;"),
            vec!["begin;", "select 1;", "end;"]
        );
        // Not a routine: CREATE TABLE with a column named begin.
        assert_eq!(
            stmts("create table t (begin int);select 2;"),
            vec!["create table t (begin int);", "select 2;"]
        );
        // A routine with a dollar-quoted body: `;` after `$$` ends it.
        assert_eq!(
            stmts(
                "create function f() returns int as $$ begin return 1; end $$ language plpgsql;x;"
            ),
            vec![
                "create function f() returns int as $$ begin return 1; end $$ language plpgsql;",
                "x;"
            ]
        );
    }

    // --- COPY -------------------------------------------------------------

    #[test]
    fn copy_from_stdin() {
        assert_eq!(
            chunks("COPY t (a,b) FROM stdin;\n1\t2\n3\t';\n\\.\nselect 1;\n"),
            vec![
                (Sql, "COPY t (a,b) FROM stdin;"),
                (Blank, "\n"),
                (CopyData, "1\t2\n3\t';\n\\.\n"),
                (Sql, "select 1;"),
                (Blank, "\n"),
            ]
        );
    }

    #[test]
    fn copy_from_stdin_crlf() {
        assert_eq!(
            chunks("COPY t FROM stdin;\r\n1\r\n2\r\n\\.\r\nselect 1;\r\n"),
            vec![
                (Sql, "COPY t FROM stdin;"),
                (Blank, "\r\n"),
                (CopyData, "1\r\n2\r\n\\.\r\n"),
                (Sql, "select 1;"),
                (Blank, "\r\n"),
            ]
        );
    }

    #[test]
    fn copy_from_stdin_csv() {
        assert_eq!(
            chunks("copy t from STDIN with (format csv);\n\"a;\",'b\n\\.\n"),
            vec![
                (Sql, "copy t from STDIN with (format csv);"),
                (Blank, "\n"),
                (CopyData, "\"a;\",'b\n\\.\n"),
            ]
        );
    }

    #[test]
    fn copy_from_stdin_variants() {
        // Comment after the `;` on the COPY line; `\.` at EOF without newline.
        assert_eq!(
            chunks("COPY t FROM /* c */ stdin; -- data\n1\n\\."),
            vec![
                (Sql, "COPY t FROM /* c */ stdin;"),
                (Blank, " -- data\n"),
                (CopyData, "1\n\\."),
            ]
        );
        // No data rows.
        assert_eq!(
            chunks("COPY t FROM stdin;\n\\.\n"),
            vec![
                (Sql, "COPY t FROM stdin;"),
                (Blank, "\n"),
                (CopyData, "\\.\n"),
            ]
        );
        // Only a line that is exactly `\.` ends the data.
        assert_eq!(
            chunks("COPY t FROM stdin;\n\\.x\n \\.\n\\.\n"),
            vec![
                (Sql, "COPY t FROM stdin;"),
                (Blank, "\n"),
                (CopyData, "\\.x\n \\.\n\\.\n"),
            ]
        );
        // Multi-line COPY statement: data starts after the line of the `;`.
        assert_eq!(
            chunks("COPY t\n  FROM stdin;\n1\n\\.\n"),
            vec![
                (Sql, "COPY t\n  FROM stdin;"),
                (Blank, "\n"),
                (CopyData, "1\n\\.\n"),
            ]
        );
    }

    #[test]
    fn copy_without_stdin_data() {
        assert_eq!(
            chunks("COPY t TO stdout;\nselect 1;"),
            vec![
                (Sql, "COPY t TO stdout;"),
                (Blank, "\n"),
                (Sql, "select 1;")
            ]
        );
        assert_eq!(
            stmts("COPY t FROM '/tmp/stdin';\nselect 1;"),
            vec!["COPY t FROM '/tmp/stdin';", "select 1;"]
        );
        assert_eq!(
            stmts("copy (select a from stdin) to stdout;\nselect 1;"),
            vec!["copy (select a from stdin) to stdout;", "select 1;"]
        );
        // COPY must be the first word.
        assert_eq!(
            stmts("select copy from stdin;\nselect 1;"),
            vec!["select copy from stdin;", "select 1;"]
        );
    }

    // --- meta-commands ----------------------------------------------------

    #[test]
    fn meta_commands() {
        assert_eq!(
            chunks("\\set x 1\nselect :x;\n  \\echo 'a;b'\r\n\\q"),
            vec![
                (Meta, "\\set x 1"),
                (Blank, "\n"),
                (Sql, "select :x;"),
                (Blank, "\n  "),
                (Meta, "\\echo 'a;b'"),
                (Blank, "\r\n"),
                (Meta, "\\q"),
            ]
        );
        // After a finished statement on the same line.
        assert_eq!(
            chunks("select 1; \\gset\n"),
            vec![
                (Sql, "select 1;"),
                (Blank, " "),
                (Meta, "\\gset"),
                (Blank, "\n"),
            ]
        );
    }

    // --- errors -----------------------------------------------------------

    #[test]
    fn error_unterminated_quote() {
        assert_eq!(
            err("select 1;\nselect 'abc;\n"),
            (LexErrorKind::UnterminatedQuote, 2, 8)
        );
        assert_eq!(
            err("select E'a\\'"),
            (LexErrorKind::UnterminatedQuote, 1, 8)
        );
        assert_eq!(
            err("select 'é', U&'x"),
            (LexErrorKind::UnterminatedQuote, 1, 13)
        );
        assert_eq!(err("'"), (LexErrorKind::UnterminatedQuote, 1, 1));
    }

    #[test]
    fn error_unterminated_identifier() {
        assert_eq!(
            err("select 1;\n\n  select \"a\"\"b;"),
            (LexErrorKind::UnterminatedIdentifier, 3, 10)
        );
        assert_eq!(
            err("select u&\"x"),
            (LexErrorKind::UnterminatedIdentifier, 1, 8)
        );
    }

    #[test]
    fn error_unterminated_dollar_quote() {
        assert_eq!(
            err("select 1;\n  do $fn$ begin; end $f$;"),
            (
                LexErrorKind::UnterminatedDollarQuote { tag: "$fn$".into() },
                2,
                6
            )
        );
        assert_eq!(
            err("select $$x$;"),
            (
                LexErrorKind::UnterminatedDollarQuote { tag: "$$".into() },
                1,
                8
            )
        );
        // Tags are case-sensitive.
        assert_eq!(
            err("select $a$ x $A$;"),
            (
                LexErrorKind::UnterminatedDollarQuote { tag: "$a$".into() },
                1,
                8
            )
        );
    }

    #[test]
    fn error_unterminated_comment() {
        assert_eq!(err("/* /* */"), (LexErrorKind::UnterminatedComment, 1, 1));
        assert_eq!(
            err("select 1;\nselect 1 /* x */ /* y"),
            (LexErrorKind::UnterminatedComment, 2, 18)
        );
        assert_eq!(
            err("select 1; /*/"),
            (LexErrorKind::UnterminatedComment, 1, 11)
        );
    }

    #[test]
    fn error_unterminated_copy() {
        assert_eq!(
            err("select 1;\nCOPY t FROM stdin;\n1\n2\n"),
            (LexErrorKind::UnterminatedCopy, 2, 1)
        );
        assert_eq!(
            err("COPY t FROM stdin;"),
            (LexErrorKind::UnterminatedCopy, 1, 1)
        );
        assert_eq!(
            err("COPY t FROM stdin; -- c"),
            (LexErrorKind::UnterminatedCopy, 1, 1)
        );
        // No `;`: the statement runs to EOF.
        assert_eq!(
            err("  COPY t FROM stdin"),
            (LexErrorKind::UnterminatedCopy, 1, 3)
        );
        // `\.` must be alone on its line.
        assert_eq!(
            err("COPY t FROM stdin;\n1\n \\.\n\\.  \n"),
            (LexErrorKind::UnterminatedCopy, 1, 1)
        );
    }

    #[test]
    fn error_meta_command_in_statement() {
        assert_eq!(
            err("select 1\n  \\gexec\n"),
            (LexErrorKind::MetaCommandInStatement, 2, 3)
        );
        assert_eq!(
            err("select 1;\nselect\n\\x\n;"),
            (LexErrorKind::MetaCommandInStatement, 3, 1)
        );
    }

    #[test]
    fn gset_and_g_end_a_statement_with_their_line() {
        let sql = "select 1 as x \\gset p_\nselect 2\n\\g\nselect 3 \\gexec_not;";
        let chunks = split(sql).unwrap();
        let texts: Vec<&str> = chunks
            .iter()
            .filter(|c| c.kind == ChunkKind::Sql)
            .map(|c| c.text(sql))
            .collect();
        assert_eq!(
            texts,
            [
                "select 1 as x \\gset p_",
                "select 2\n\\g",
                "select 3 \\gexec_not;"
            ]
        );
        assert_eq!(send_meta_at(texts[0]), Some(14));
        assert_eq!(send_meta_at(texts[1]), Some(9));
        assert_eq!(send_meta_at(texts[2]), None);
        // Inside a string it is text.
        assert_eq!(send_meta_at("select '\\gset' \\g"), Some(15));
    }

    #[test]
    fn error_text_after_copy_statement() {
        assert_eq!(
            err("COPY t FROM stdin; 1\t2\n\\.\n"),
            (LexErrorKind::TextAfterCopyStatement, 1, 20)
        );
        assert_eq!(
            err("-- é\nCOPY t FROM stdin;\tselect 1;\n\\.\n"),
            (LexErrorKind::TextAfterCopyStatement, 2, 20)
        );
        assert_eq!(
            err("COPY t FROM stdin;/* c */\n\\.\n"),
            (LexErrorKind::TextAfterCopyStatement, 1, 19)
        );
    }

    #[test]
    fn error_text_after_cr_ended_comment_on_copy_line() {
        // A `--` comment ends at a bare CR; what follows is SQL for psql.
        assert_eq!(
            err("COPY t FROM stdin; --\r'\n\\.\n"),
            (LexErrorKind::TextAfterCopyStatement, 1, 23)
        );
        assert_eq!(
            chunks("COPY t FROM stdin; -- a\r -- b\r\n\\.\n"),
            vec![
                (Sql, "COPY t FROM stdin;"),
                (Blank, " -- a\r -- b\r\n"),
                (CopyData, "\\.\n"),
            ]
        );
    }

    #[test]
    fn error_display() {
        let e = split("select 'x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unterminated quoted string starting at line 1, column 8"
        );
        let e = split("select\n\\x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "psql meta-command inside an unfinished sql statement at line 2, column 1"
        );
    }

    // --- positions --------------------------------------------------------

    #[test]
    fn chunk_line_numbers() {
        let input = "-- head\n\nselect 1;\nselect\n2;\\set a b\n\nCOPY t FROM stdin;\n1\n\\.\nx";
        let got: Vec<(ChunkKind, u32)> = split(input)
            .unwrap()
            .iter()
            .map(|c| (c.kind, c.line))
            .collect();
        assert_eq!(
            got,
            vec![
                (Blank, 1),
                (Sql, 3),
                (Blank, 3),
                (Sql, 4),
                (Meta, 5),
                (Blank, 5),
                (Sql, 7),
                (Blank, 7),
                (CopyData, 8),
                (Sql, 10),
            ]
        );
    }

    #[test]
    fn line_col_multibyte() {
        let s = "aé\nñb";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 1), (1, 2));
        assert_eq!(line_col(s, 2), (1, 2)); // inside `é`
        assert_eq!(line_col(s, 3), (1, 3)); // the `\n`
        assert_eq!(line_col(s, 4), (2, 1));
        assert_eq!(line_col(s, 6), (2, 2));
        assert_eq!(line_col(s, 7), (2, 3));
        assert_eq!(line_col(s, 100), (2, 3)); // clamped
        assert_eq!(line_col("", 5), (1, 1));
        assert_eq!(line_col("🦀🦀x", 8), (1, 3));
    }

    #[test]
    fn chunk_text_out_of_range_is_empty() {
        let c = Chunk {
            kind: Sql,
            start: 2,
            end: 10,
            line: 1,
        };
        assert_eq!(c.text("abc"), "");
        assert_eq!(Chunk { end: 3, ..c }.text("abc"), "c");
    }

    // --- leading_keywords -------------------------------------------------

    #[test]
    fn leading_keywords_basic() {
        assert_eq!(
            leading_keywords("/* c */ create index concurrently i on t (a);", 3),
            vec!["CREATE", "INDEX", "CONCURRENTLY"]
        );
        assert_eq!(
            leading_keywords("-- x\n  Alter /* y */ TABLE -- z\n t", 5),
            vec!["ALTER", "TABLE", "T"]
        );
        assert_eq!(leading_keywords("create index", 1), vec!["CREATE"]);
        assert_eq!(leading_keywords("create index", 0), Vec::<String>::new());
        assert_eq!(leading_keywords("select(1)", 3), vec!["SELECT"]);
        assert_eq!(leading_keywords("vacuum;", 3), vec!["VACUUM"]);
        assert_eq!(leading_keywords("", 3), Vec::<String>::new());
        assert_eq!(
            leading_keywords("select a$b c", 3),
            vec!["SELECT", "A$B", "C"]
        );
    }

    #[test]
    fn leading_keywords_stops_at_non_words() {
        assert_eq!(leading_keywords("E'x' select", 3), Vec::<String>::new());
        assert_eq!(leading_keywords("select E'x' from", 3), vec!["SELECT"]);
        assert_eq!(leading_keywords("select u&\"x\" from", 3), vec!["SELECT"]);
        assert_eq!(leading_keywords("select \"x\" from", 3), vec!["SELECT"]);
        assert_eq!(leading_keywords("select 1 from", 3), vec!["SELECT"]);
        assert_eq!(leading_keywords("(select 1)", 3), Vec::<String>::new());
        assert_eq!(leading_keywords("select /* open", 3), vec!["SELECT"]);
        // `e` not followed by a quote is a word.
        assert_eq!(leading_keywords("e x", 3), vec!["E", "X"]);
    }

    // --- properties -------------------------------------------------------

    const FRAGMENTS: &[&str] = &[
        "'",
        "\"",
        "$$",
        "$a$",
        "$A$",
        "$1",
        "$",
        ";",
        "--",
        "/*",
        "*/",
        "\n",
        "\r\n",
        "\r",
        "\\",
        "\\.",
        "\\.\n",
        "\\set x 1",
        "COPY t FROM stdin;",
        "copy t (a) from STDIN;",
        "copy t to stdout;",
        "(",
        ")",
        "E'",
        "e'",
        "U&'",
        "U&\"",
        "''",
        "\\'",
        "begin atomic",
        "begin",
        "end",
        "case",
        "create function f()",
        "create or replace procedure p()",
        "select",
        "from",
        "stdin",
        "x",
        "a$b",
        "1",
        "1e",
        " ",
        "  ",
        "\t",
        "é",
        "ñ",
        "🦀",
        "-",
        "/",
        "*",
    ];

    fn fragments() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|v| v.concat())
    }

    fn check_invariants(input: &str) -> Result<(), TestCaseError> {
        // Never panic, whatever the offsets.
        let _ = leading_keywords(input, 4);
        for off in [0, input.len() / 2, input.len(), input.len() + 3] {
            let _ = line_col(input, off);
        }
        match split(input) {
            Ok(chunks) => {
                prop_assert_eq!(chunks.is_empty(), input.is_empty());
                let mut pos = 0;
                let mut joined = String::new();
                for (n, c) in chunks.iter().enumerate() {
                    prop_assert_eq!(c.start, pos, "gap/overlap at chunk {}", n);
                    prop_assert!(c.end > c.start, "empty chunk {}", n);
                    prop_assert!(input.is_char_boundary(c.start));
                    prop_assert!(input.is_char_boundary(c.end));
                    let newlines = input.as_bytes()[..c.start]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count();
                    prop_assert_eq!(c.line as usize, newlines + 1);
                    let text = c.text(input);
                    joined.push_str(text);
                    pos = c.end;
                    match c.kind {
                        Meta => {
                            prop_assert!(text.starts_with('\\'));
                            prop_assert!(!text.contains('\n'));
                        }
                        CopyData => {
                            let last = text.trim_end_matches('\n').trim_end_matches('\r');
                            prop_assert!(last == "\\." || last.ends_with("\n\\."));
                        }
                        Blank => {
                            // Blank material re-splits to itself.
                            prop_assert_eq!(
                                split(text).map(|v| v.iter().map(|c| c.kind).collect::<Vec<_>>()),
                                Ok(vec![Blank])
                            );
                        }
                        Sql => {
                            // A statement not followed by COPY data re-splits to itself.
                            let is_copy_in = chunks.get(n + 2).is_some_and(|c| c.kind == CopyData);
                            if !is_copy_in {
                                let again = split(text).map(|v| {
                                    v.iter()
                                        .map(|c| (c.kind, c.start, c.end))
                                        .collect::<Vec<_>>()
                                });
                                prop_assert_eq!(again, Ok(vec![(Sql, 0, text.len())]));
                            }
                        }
                    }
                }
                prop_assert_eq!(pos, input.len());
                prop_assert_eq!(joined.as_str(), input);
                for w in chunks.windows(2) {
                    prop_assert!(
                        !(w[0].kind == Blank && w[1].kind == Blank),
                        "adjacent blanks"
                    );
                }
            }
            Err(e) => {
                let lines: Vec<&str> = input.split('\n').collect();
                prop_assert!(e.line >= 1 && e.line as usize <= lines.len());
                let line = lines[e.line as usize - 1];
                prop_assert!(e.column >= 1 && e.column as usize <= line.chars().count() + 1);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn prop_fragments_split_is_lossless(input in fragments()) {
            check_invariants(&input)?;
        }

        #[test]
        fn prop_any_string_split_is_lossless(input in any::<String>()) {
            check_invariants(&input)?;
        }

        #[test]
        fn prop_sqlish_chars_split_is_lossless(input in "[-a-c$;'\"()/*\\\\.\n\r \téE&U]{0,60}") {
            check_invariants(&input)?;
        }
    }

    /// Rough throughput check; run with `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore = "throughput check, prints only"]
    fn throughput() {
        let unit = "-- comment\nCREATE TABLE t (a int, b text DEFAULT 'x;y');\n\
                    CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql;\n\
                    COPY t (a, b) FROM stdin;\n1\tone\n2\ttwo\n\\.\n";
        let input = unit.repeat(200_000);
        let start = std::time::Instant::now();
        let n = split(&input).unwrap().len();
        let secs = start.elapsed().as_secs_f64();
        let mb = input.len() as f64 / 1e6;
        println!(
            "{n} chunks, {mb:.1} MB in {secs:.3}s = {:.1} MB/s",
            mb / secs
        );
    }
}
