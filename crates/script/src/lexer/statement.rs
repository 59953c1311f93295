//! Statement scanning: where one SQL statement ends, following psql's lexer
//! state (parentheses, `BEGIN ATOMIC … END` routine bodies, `COPY … FROM stdin`,
//! and the `\g`/`\gset` meta-commands that end a statement and send it).

use super::LexErrorKind;
use super::scan::{
    C_IDSTART, C_NUMCONT, C_SPACE, class, dollar_tag_end, end_of_line, is_hspace, is_ident_cont,
    is_space, scan_dollar_body, scan_escape_string, scan_quoted_ident, scan_standard_string,
    skip_block_comment, skip_line_comment, string_prefix_len,
};

pub(super) type Fail = (LexErrorKind, usize);

/// How a statement ended.
pub(super) struct StatementEnd {
    /// End offset of the Sql chunk.
    pub(super) end: usize,
    /// Whether it ended with a `;` (otherwise: end of input).
    pub(super) terminated: bool,
    /// Whether it is `COPY … FROM STDIN`.
    pub(super) copy_from_stdin: bool,
    /// Where a `\g` or `\gset` that ends it starts (the chunk then runs to the end
    /// of that line).
    pub(super) gset_at: Option<usize>,
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
/// statement as [`split`](super::split) gives it: the meta-command is part of its chunk).
pub fn send_meta_at(statement: &str) -> Option<usize> {
    scan_statement(statement.as_bytes(), 0).ok()?.gset_at
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
pub(super) fn scan_statement(bytes: &[u8], start: usize) -> Result<StatementEnd, Fail> {
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
                    let (end, terminated) = match end_of_line(bytes, i) {
                        Some(end) => (end, true),
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
