//! Reading a file's own directives: `-- kubemigrate:no-transaction` and
//! `-- kubemigrate:repeatable`, dbmate's `-- migrate:up`/`-- migrate:down`
//! sections, goose's annotations, sqlx's and postgres-migrations' comments.

use std::path::Path;

use super::{Layout, Section, malformed};
use crate::source::{SourceError, printable};

/// What a file's own comments say (see [`Layout::rules`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules {
    /// Runs without a wrapping transaction.
    pub no_transaction: bool,
    /// Runs again whenever it changed.
    pub repeatable: bool,
    /// Not a migration at all (`-- postgres-migrations ignore`).
    pub ignore: bool,
    /// Only these lines run (dbmate and goose: the "up" section).
    pub section: Option<Section>,
}

/// The native directive that makes a file repeatable.
pub const REPEATABLE_DIRECTIVE: &str = "kubemigrate:repeatable";

impl Layout {
    /// Reads a file's directives and sections from its text (`text` is the whole
    /// file for dbmate and goose, the first 64 KiB otherwise).
    ///
    /// # Errors
    /// The file breaks its tool's rules (no `-- migrate:up`, a `-- +goose Down`
    /// before `Up`, a `StatementBegin` without `StatementEnd`…): one line naming the
    /// file and the line.
    pub fn rules(self, path: &Path, text: &str) -> Result<Rules, SourceError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Rules {
            no_transaction: crate::source::has_no_transaction_directive(text),
            repeatable: self == Layout::Native && leading_directive(text, REPEATABLE_DIRECTIVE),
            ..Rules::default()
        };
        match self {
            Layout::Dbmate => dbmate_rules(path, text, &mut rules)?,
            Layout::Goose => goose_rules(path, text, &mut rules)?,
            Layout::Sqlx if text.starts_with("-- no-transaction") => {
                rules.no_transaction = true;
            }
            Layout::PostgresMigrations => {
                if text.contains("-- postgres-migrations disable-transaction") {
                    rules.no_transaction = true;
                }
                if text.contains("-- postgres-migrations ignore") {
                    rules.ignore = true;
                }
            }
            _ => {}
        }
        Ok(rules)
    }

    /// Whether [`Layout::rules`] needs the whole file.
    pub fn reads_whole_file(self) -> bool {
        matches!(self, Layout::Dbmate | Layout::Goose)
    }
}

/// True when one of the leading comment lines is `-- <directive>`.
pub(crate) fn leading_directive(sql: &str, directive: &str) -> bool {
    for line in sql.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            return false;
        };
        if comment.trim() == directive {
            return true;
        }
    }
    false
}

/// dbmate's rule on the order of its markers.
const DBMATE_UP_AFTER_DOWN: &str =
    "dbmate requires '-- migrate:up' to appear before '-- migrate:down'";

/// goose's rule on its statement blocks.
const GOOSE_BLOCK_NOT_ENDED: &str = "'-- +goose StatementBegin' without '-- +goose StatementEnd'";

/// A line that is neither blank nor only a `--` comment.
fn is_statement_line(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with("--")
}

/// dbmate: `-- migrate:up [transaction:false]` then optionally `-- migrate:down`.
fn dbmate_rules(path: &Path, text: &str, rules: &mut Rules) -> Result<(), SourceError> {
    let marker = |line: &str, word: &str| -> Option<String> {
        let rest = line.strip_prefix("--")?.trim_start();
        let rest = rest.strip_prefix(word)?;
        (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim().to_string())
    };
    let mut up: Option<(u32, String)> = None;
    let mut down: Option<u32> = None;
    for (i, line) in text.lines().enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if let Some(options) = marker(line, "migrate:up") {
            if up.is_some() {
                return Err(malformed(
                    path,
                    n,
                    "a second '-- migrate:up' (dbmate allows one up block)",
                ));
            }
            if down.is_some() {
                return Err(malformed(path, n, DBMATE_UP_AFTER_DOWN));
            }
            up = Some((n, options));
        } else if marker(line, "migrate:down").is_some() {
            if up.is_none() {
                return Err(malformed(path, n, DBMATE_UP_AFTER_DOWN));
            }
            if down.is_some() {
                return Err(malformed(
                    path,
                    n,
                    "a second '-- migrate:down' (dbmate allows one down block)",
                ));
            }
            down = Some(n);
        } else if up.is_none() && is_statement_line(line) {
            return Err(malformed(
                path,
                n,
                "dbmate does not support statements defined outside of the '-- migrate:up' or '-- migrate:down' blocks",
            ));
        }
    }
    let Some((line, options)) = up else {
        return Err(malformed(
            path,
            1,
            "dbmate requires each migration to define an up block with '-- migrate:up'",
        ));
    };
    for option in options.split_whitespace() {
        match option.split_once(':') {
            Some(("transaction", "false")) => rules.no_transaction = true,
            Some(("transaction", "true")) => {}
            _ => {
                return Err(malformed(
                    path,
                    line,
                    format!(
                        "unknown dbmate option {:?} (dbmate knows transaction:false)",
                        printable(option)
                    ),
                ));
            }
        }
    }
    rules.section = Some(Section {
        first_line: line + 1,
        end_line: down,
    });
    Ok(())
}

/// goose: `-- +goose Up`, `-- +goose Down`, `StatementBegin`/`StatementEnd`,
/// `NO TRANSACTION`.
fn goose_rules(path: &Path, text: &str, rules: &mut Rules) -> Result<(), SourceError> {
    let mut up: Option<u32> = None;
    let mut down: Option<u32> = None;
    let mut open_block: Option<u32> = None;
    for (i, line) in text.lines().enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let t = line.trim();
        let Some(annotation) = t.strip_prefix("-- +goose") else {
            if up.is_none() && down.is_none() && is_statement_line(line) {
                return Err(malformed(
                    path,
                    n,
                    "a statement before '-- +goose Up': goose requires the file to start with its Up annotation",
                ));
            }
            continue;
        };
        match annotation.trim().to_ascii_lowercase().as_str() {
            "up" => {
                if up.is_some() {
                    return Err(malformed(path, n, "a second '-- +goose Up'"));
                }
                if down.is_some() {
                    return Err(malformed(path, n, "'-- +goose Up' after '-- +goose Down'"));
                }
                up = Some(n);
            }
            "down" => {
                if let Some(b) = open_block {
                    return Err(malformed(path, b, GOOSE_BLOCK_NOT_ENDED));
                }
                if down.is_some() {
                    return Err(malformed(path, n, "a second '-- +goose Down'"));
                }
                down = Some(n);
            }
            "statementbegin" => {
                if open_block.is_some() {
                    return Err(malformed(
                        path,
                        n,
                        "'-- +goose StatementBegin' inside another StatementBegin block",
                    ));
                }
                open_block = Some(n);
            }
            "statementend" => {
                if open_block.take().is_none() {
                    return Err(malformed(
                        path,
                        n,
                        "'-- +goose StatementEnd' without '-- +goose StatementBegin'",
                    ));
                }
            }
            "no transaction" => rules.no_transaction = true,
            other if other.starts_with("envsub") => {
                return Err(malformed(
                    path,
                    n,
                    "'-- +goose ENVSUB' is not supported: kubemigrate does not substitute environment variables (use psql variables with --set)",
                ));
            }
            _ => {
                return Err(malformed(
                    path,
                    n,
                    format!(
                        "unknown goose annotation {:?} (goose knows Up, Down, StatementBegin, StatementEnd, NO TRANSACTION)",
                        printable(t)
                    ),
                ));
            }
        }
    }
    if let Some(b) = open_block {
        return Err(malformed(path, b, GOOSE_BLOCK_NOT_ENDED));
    }
    let Some(line) = up else {
        return Err(malformed(
            path,
            1,
            "no '-- +goose Up' annotation: goose requires one before the migration's statements",
        ));
    };
    rules.section = Some(Section {
        first_line: line + 1,
        end_line: down,
    });
    Ok(())
}
