//! Inline ignores: `-- kubemigrate:lint-ignore RULE[,RULE…] reason`.
//!
//! A comment on a line of its own applies to the next statement of the same file;
//! a comment on a statement's line (after its `;`, or inside it) applies to that
//! statement. The reason is required, and every rule named must exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kubemigrate_sql::lexer::{self, ChunkKind};

use crate::{LintError, rules, suggestion};

/// The directive that silences rules for one statement.
pub const IGNORE_DIRECTIVE: &str = "kubemigrate:lint-ignore";
/// What every lint directive starts with (a misspelt one is an error, not a no-op).
pub(crate) const DIRECTIVE_PREFIX: &str = "kubemigrate:lint-";

/// One ignore comment.
#[derive(Debug, Clone)]
pub(crate) struct IgnoreComment {
    pub path: PathBuf,
    pub line: u32,
    pub column: u32,
    pub rules: Vec<String>,
    pub line_text: String,
    /// The first line of the statement it applies to; `None` when that statement is
    /// not sent (a skipped `\if` branch): such a comment is never "unused".
    target: Option<u32>,
    used: bool,
}

/// The ignore comments of the files a migration's statements come from.
#[derive(Debug, Default)]
pub(crate) struct Ignores {
    list: Vec<IgnoreComment>,
}

impl Ignores {
    /// Reads the comments of each file, given the first line of each statement sent
    /// from it; `(path, bytes)` is a file already read (the migration itself), the
    /// others (its includes) are read here.
    pub(crate) fn read(
        statements: &HashMap<PathBuf, Vec<u32>>,
        (known, known_bytes): (&Path, &[u8]),
    ) -> Result<Ignores, LintError> {
        let mut list = Vec::new();
        let mut files: Vec<_> = statements.iter().collect();
        files.sort();
        for (path, lines) in files {
            // The engine read the file a moment ago; if it cannot be read now, or is
            // not UTF-8, the engine reports that when it runs.
            let read;
            let text = if path == known {
                match std::str::from_utf8(known_bytes) {
                    Ok(text) => text,
                    Err(_) => continue,
                }
            } else {
                match std::fs::read_to_string(path) {
                    Ok(text) => {
                        read = text;
                        read.as_str()
                    }
                    Err(_) => continue,
                }
            };
            if !text.contains(DIRECTIVE_PREFIX) {
                continue;
            }
            list.extend(read_file(path, text, lines)?);
        }
        Ok(Ignores { list })
    }

    /// Whether a comment silences `rule` for the statement that starts at
    /// `path:line`; marks that comment used.
    pub(crate) fn silences(&mut self, path: &Path, line: u32, rule: &str) -> bool {
        let mut hit = false;
        for c in &mut self.list {
            if c.target == Some(line) && c.path == path && c.rules.iter().any(|r| r == rule) {
                c.used = true;
                hit = true;
            }
        }
        hit
    }

    /// The comments that silenced nothing.
    pub(crate) fn unused(&self) -> impl Iterator<Item = &IgnoreComment> {
        self.list.iter().filter(|c| !c.used && c.target.is_some())
    }
}

fn read_file(path: &Path, text: &str, sent_lines: &[u32]) -> Result<Vec<IgnoreComment>, LintError> {
    let Ok(chunks) = lexer::split(text) else {
        return Ok(Vec::new());
    };
    // (first line, last line) of each statement as written.
    let statements: Vec<(u32, u32)> = chunks
        .iter()
        .filter(|c| c.kind == ChunkKind::Sql)
        .map(|c| {
            let lines = u32::try_from(c.text(text).matches('\n').count()).unwrap_or(u32::MAX);
            (c.line, c.line.saturating_add(lines))
        })
        .collect();
    let mut out = Vec::new();
    for c in &chunks {
        let body = c.text(text);
        let candidates = match c.kind {
            ChunkKind::Blank => blank_comments(body),
            ChunkKind::Sql => statement_comments(body),
            _ => continue,
        };
        for p in candidates {
            let comment = body[p + 2..].split('\n').next().unwrap_or("");
            let directive = comment.trim();
            if !directive.starts_with(DIRECTIVE_PREFIX) {
                continue;
            }
            let abs = c.start + p;
            let line = c.line + u32::try_from(body[..p].matches('\n').count()).unwrap_or(u32::MAX);
            let line_start = text[..abs].rfind('\n').map_or(0, |n| n + 1);
            let column =
                u32::try_from(text[line_start..abs].chars().count() + 1).unwrap_or(u32::MAX);
            let line_text = text[line_start..]
                .split('\n')
                .next()
                .unwrap_or("")
                .trim_end_matches('\r')
                .to_string();
            let err = |message: String| LintError::Ignore {
                path: path.to_path_buf(),
                line,
                message,
            };
            let rules = parse_directive(directive).map_err(err)?;
            // The statement that holds this line, else the next one.
            let target = statements
                .iter()
                .rev()
                .find(|(first, last)| *first <= line && line <= *last)
                .or_else(|| statements.iter().find(|(first, _)| *first > line))
                .map(|(first, _)| *first)
                .filter(|first| sent_lines.contains(first));
            out.push(IgnoreComment {
                path: path.to_path_buf(),
                line,
                column,
                rules,
                line_text,
                target,
                used: false,
            });
        }
    }
    Ok(out)
}

/// `kubemigrate:lint-ignore RULE[,RULE…] reason` → the rules.
fn parse_directive(directive: &str) -> Result<Vec<String>, String> {
    let Some(rest) = directive
        .strip_prefix(IGNORE_DIRECTIVE)
        .filter(|r| r.is_empty() || r.starts_with(char::is_whitespace))
    else {
        let word = directive.split_whitespace().next().unwrap_or(directive);
        return Err(format!(
            "unknown directive `{word}`; the lint directive is `-- {IGNORE_DIRECTIVE} RULE reason`"
        ));
    };
    let rest = rest.trim();
    let (names, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if names.is_empty() {
        return Err(format!(
            "`{IGNORE_DIRECTIVE}` names no rule; write `-- {IGNORE_DIRECTIVE} RULE reason`"
        ));
    }
    let mut rules_named = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !rules::is_known(name) {
            return Err(format!("unknown lint rule `{name}`{}", suggestion(name)));
        }
        rules_named.push(name.to_string());
    }
    if reason.trim().is_empty() {
        return Err(format!(
            "`{IGNORE_DIRECTIVE} {names}` needs a reason after the rule (why this statement is safe here)"
        ));
    }
    Ok(rules_named)
}

/// Offsets of `--` comments in blank material (only whitespace and comments).
fn blank_comments(body: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        if let Some(p) = line.find("--") {
            out.push(offset + p);
        }
        offset += line.len();
    }
    out
}

/// Offsets of `--` comments inside a statement: where code stops and a comment
/// starts (never inside a string, identifier or dollar-quoted body).
fn statement_comments(body: &str) -> Vec<usize> {
    let spans = lexer::code_spans(body);
    let mut out = Vec::new();
    for &(_, end) in &spans {
        if body[end..].starts_with("--") {
            out.push(end);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a failed unwrap is the failure the test reports"
    )]
    use super::*;

    #[test]
    fn directives_need_a_known_rule_and_a_reason() {
        assert_eq!(
            parse_directive(
                "kubemigrate:lint-ignore ban-drop-column the app stopped using it in 4.2"
            ),
            Ok(vec!["ban-drop-column".to_string()])
        );
        assert_eq!(
            parse_directive("kubemigrate:lint-ignore ban-drop-column,renaming-table why")
                .unwrap()
                .len(),
            2
        );
        let e = parse_directive("kubemigrate:lint-ignore ban-drop-column").unwrap_err();
        assert!(e.contains("needs a reason"), "{e}");
        let e = parse_directive("kubemigrate:lint-ignore ban-drop-colum reason").unwrap_err();
        assert!(e.contains("did you mean `ban-drop-column`"), "{e}");
        let e = parse_directive("kubemigrate:lint-ignore").unwrap_err();
        assert!(e.contains("names no rule"), "{e}");
        let e = parse_directive("kubemigrate:lint-ignores x y").unwrap_err();
        assert!(e.contains("unknown directive"), "{e}");
    }

    #[test]
    fn a_comment_applies_to_its_statement_or_the_next_one() {
        let text = "-- kubemigrate:lint-ignore ban-drop-table gone since 3.0\nDROP TABLE a;\n\
                    DROP TABLE b; -- kubemigrate:lint-ignore ban-drop-table also gone\n\
                    SELECT '-- kubemigrate:lint-ignore nope';\n\
                    ALTER TABLE c -- kubemigrate:lint-ignore ban-drop-column old\n  DROP COLUMN d;\n";
        let got = read_file(Path::new("f.sql"), text, &[2, 3, 4, 5]).unwrap();
        let targets: Vec<_> = got.iter().map(|c| (c.line, c.target)).collect();
        assert_eq!(targets, [(1, Some(2)), (3, Some(3)), (5, Some(5))]);
    }
}
