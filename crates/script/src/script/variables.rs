//! psql variables and their interpolation: `:name`, `:'name'` and `:"name"` in SQL,
//! and the edits that map positions in the statement sent back to the file.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::lexer;

/// psql variables: `--set NAME=VALUE` on the command line, `\set` in files.
///
/// Cloning is cheap (the map is shared until one of the copies changes): every
/// file read starts from a copy of the command line's variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables(Arc<BTreeMap<String, String>>);

impl Variables {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        Arc::make_mut(&mut self.0).insert(name.into(), value.into());
    }

    /// Unsets a variable.
    pub(super) fn unset(&mut self, name: &str) {
        if self.0.contains_key(name) {
            Arc::make_mut(&mut self.0).remove(name);
        }
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
pub(super) fn valid_name(name: &str) -> bool {
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

/// Interpolates `:name`, `:'name'` and `:"name"` outside quotes, comments and dollar
/// quotes. `::` is a cast. Returns the new text and the edits made.
///
/// # Errors
/// `(offset, name)` of an undefined variable.
pub fn interpolate(sql: &str, vars: &Variables) -> Result<(String, Vec<Edit>), (usize, String)> {
    Ok(interpolate_changes(sql, vars)?.unwrap_or_else(|| (sql.to_string(), Vec::new())))
}

/// A statement as sent, and the edits that made it from the text as written.
pub(crate) type Interpolated = (String, Vec<Edit>);

/// [`interpolate`], with `None` for a statement that stays as written (the
/// caller keeps its text: no copy).
///
/// # Errors
/// As [`interpolate`].
pub(crate) fn interpolate_changes(
    sql: &str,
    vars: &Variables,
) -> Result<Option<Interpolated>, (usize, String)> {
    // Without a colon there is nothing to interpolate: no need to lex.
    if memchr::memchr(b':', sql.as_bytes()).is_none() {
        return Ok(None);
    }
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
        return Ok(None);
    }
    out.push_str(&sql[copied..]);
    Ok(Some((out, edits)))
}

/// Quotes a literal as psql's `:'name'` does (PQescapeLiteral).
pub(super) fn quote_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!(" E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}
