//! The lexer's byte-level pieces: byte classes (what PostgreSQL counts as
//! whitespace, identifier and number characters) and the low-level scanners
//! that skip one quoted string, identifier, dollar quote or comment.
//!
//! Each scanner takes the byte slice and a position and returns the position
//! just past the construct, or `None` when it is unterminated.

pub(super) const C_SPACE: u8 = 1; // PostgreSQL whitespace: space \t \n \r \f \v
pub(super) const C_IDSTART: u8 = 2; // letters, `_`, non-ASCII
const C_IDCONT: u8 = 4; // letters, digits, `_`, `$`, non-ASCII
pub(super) const C_NUMCONT: u8 = 8; // letters, digits, `_`, `.`
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
pub(super) fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

#[inline]
pub(super) fn is_space(b: u8) -> bool {
    class(b) & C_SPACE != 0
}

#[inline]
pub(super) fn is_ident_start(b: u8) -> bool {
    class(b) & C_IDSTART != 0
}

#[inline]
pub(super) fn is_ident_cont(b: u8) -> bool {
    class(b) & C_IDCONT != 0
}

/// Horizontal whitespace for the purpose of "rest of the line" checks.
#[inline]
pub(super) fn is_hspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

pub(super) fn count_newlines(bytes: &[u8]) -> u32 {
    saturating_u32(bytes.iter().filter(|&&b| b == b'\n').count())
}

pub(super) fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Skips a `--` comment starting at `i`; returns the position of the line
/// break that ends it (or the end of input). The line break is not consumed.
#[inline]
pub(super) fn skip_line_comment(bytes: &[u8], i: usize) -> usize {
    let rest = bytes.get(i..).unwrap_or(&[]);
    match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
        Some(p) => i + p,
        None => bytes.len(),
    }
}

/// Skips a (nesting) `/* … */` comment whose `/*` is at `i`.
pub(super) fn skip_block_comment(bytes: &[u8], i: usize) -> Option<usize> {
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

/// Skips blank material from `i`: whitespace, `--` comments and (nesting) `/* … */`
/// comments. Returns where something else starts (or the end of input), or, as
/// `Err`, the position of a `/*` comment that is unterminated.
#[inline]
pub(super) fn skip_blank(bytes: &[u8], mut i: usize) -> Result<usize, usize> {
    while let Some(&b) = bytes.get(i) {
        match b {
            _ if is_space(b) => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_line_comment(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i).ok_or(i)?,
            _ => break,
        }
    }
    Ok(i)
}

/// Scans a body that starts at `i` (just after its opening `quote`) and ends at
/// its closing `quote`, where a doubled quote stands for the quote itself.
#[inline]
fn scan_doubled(bytes: &[u8], mut i: usize, quote: u8) -> Option<usize> {
    loop {
        let rest = bytes.get(i..)?;
        let p = rest.iter().position(|&b| b == quote)?;
        i += p + 1;
        if bytes.get(i) == Some(&quote) {
            i += 1;
        } else {
            return Some(i);
        }
    }
}

/// Scans a standard string (`''` escapes a quote, backslash is plain) whose
/// body starts at `i` (just after the opening quote).
#[inline]
pub(super) fn scan_standard_string(bytes: &[u8], i: usize) -> Option<usize> {
    scan_doubled(bytes, i, b'\'')
}

/// Scans an escape string (`\` escapes the next byte, `''` escapes a quote)
/// whose body starts at `i`. Follows PostgreSQL's string continuation rule:
/// `E'a'` followed by whitespace containing a line break and another `'…'`
/// continues the same (escape) string.
pub(super) fn scan_escape_string(bytes: &[u8], mut i: usize) -> Option<usize> {
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
pub(super) fn scan_quoted_ident(bytes: &[u8], i: usize) -> Option<usize> {
    scan_doubled(bytes, i, b'"')
}

/// Finds the end of a dollar-quoted body that starts at `i`, closed by `tag`.
pub(super) fn scan_dollar_body(bytes: &[u8], mut i: usize, tag: &[u8]) -> Option<usize> {
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
pub(super) fn dollar_tag_end(bytes: &[u8], i: usize) -> Option<usize> {
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
pub(super) fn string_prefix_len(bytes: &[u8], start: usize, end: usize) -> Option<(bool, usize)> {
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

/// Where the line that runs from `i` ends, before its line break (`\n`, or the
/// `\r\n` pair), or `None` when no line break follows.
pub(super) fn end_of_line(bytes: &[u8], i: usize) -> Option<usize> {
    let p = bytes.get(i..)?.iter().position(|&b| b == b'\n')?;
    let end = i + p;
    Some(if end > i && bytes[end - 1] == b'\r' {
        end - 1
    } else {
        end
    })
}
