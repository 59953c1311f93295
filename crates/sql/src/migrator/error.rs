//! What can go wrong in a run, and how each failure is worded and classed.

use super::*;

/// A statement of a migration file that PostgreSQL rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFailure {
    /// The file name.
    pub version: String,
    /// The file's path as given.
    pub path: String,
    /// The 1-based statement number within the file.
    pub statement: usize,
    /// 1-based line of the error position in the file.
    pub line: u32,
    /// 1-based column (in characters) of the error position.
    pub column: u32,
    /// The text of that line.
    pub line_text: String,
    /// Whether `line`/`column` are PostgreSQL's error position (else: the statement's start).
    pub exact: bool,
    /// SQLSTATE.
    pub code: String,
    /// The server's message.
    pub message: String,
    /// The server's DETAIL.
    pub detail: Option<String>,
    /// The server's HINT.
    pub hint: Option<String>,
    /// The server's CONTEXT (e.g. the line inside a function body).
    pub context: Option<String>,
}

impl std::fmt::Display for SqlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {} (SQLSTATE {}, statement {})",
            self.path, self.line, self.column, self.message, self.code, self.statement
        )
    }
}

impl SqlFailure {
    /// The lines that follow the one-line message: the file's line with a caret under
    /// the error position, then DETAIL, HINT and CONTEXT.
    pub fn excerpt(&self) -> Vec<String> {
        let gutter = self.line.to_string();
        let mut out = vec![format!("{gutter} | {}", self.line_text)];
        if self.exact {
            let pad: String = self
                .line_text
                .chars()
                .take(self.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push(format!("{} | {pad}^", " ".repeat(gutter.len())));
        }
        for (label, value) in [
            ("DETAIL", &self.detail),
            ("HINT", &self.hint),
            ("CONTEXT", &self.context),
        ] {
            if let Some(v) = value {
                out.push(format!("{label}: {}", v.replace('\n', " / ")));
            }
        }
        out
    }
}

/// Something a person must resolve before migrations can go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file name.
    pub version: String,
    /// What is wrong and how to fix it, one line.
    pub message: String,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The directory or a file could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A file cannot be read or run as written (found while it runs).
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The database cannot be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The migration lock could not be taken or was lost.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// States that need a person.
    #[error("{}", problems_line(.0))]
    NeedsPerson(Vec<Problem>),
    /// A migration's SQL failed.
    #[error("{0}")]
    Sql(Box<SqlFailure>),
    /// A database error outside a migration's statements.
    #[error("{context}: {message}")]
    Database {
        /// What the engine was doing.
        context: String,
        /// The error.
        message: String,
        /// True when the connection was lost.
        connection_lost: bool,
    },
    /// A bad argument (e.g. a `--version` that is not a file of the directory).
    #[error("{0}")]
    Usage(String),
    /// The history table is not one kubemigrate can use: another kind of relation,
    /// or a row it cannot have written.
    #[error("{context}: {error}")]
    History {
        /// What the engine was doing.
        context: String,
        /// What is wrong with the table.
        error: HistoryError,
    },
    /// A migration dropped the history table (`DROP SCHEMA public CASCADE` in a
    /// restored dump, say).
    #[error("{}", history_dropped_line(.path, .table, *.rolled_back))]
    HistoryDropped {
        /// The file, as given.
        path: String,
        /// The file's name (its version).
        version: String,
        /// `schema.table`.
        table: String,
        /// True when the file ran in kubemigrate's transaction, which was rolled
        /// back; false when its statements stayed applied.
        rolled_back: bool,
    },
}

pub(super) fn history_dropped_line(path: &str, table: &str, rolled_back: bool) -> String {
    let schema = table.split('.').next().unwrap_or(table);
    if rolled_back {
        format!(
            "{path}: the file dropped the history table {table} (it was rolled back: nothing of it is applied); \
             keep the history out of the migrations' reach: move the table to a schema of its own \
             (CREATE SCHEMA kubemigrate; ALTER TABLE {table} SET SCHEMA kubemigrate) and give every command \
             --history-schema kubemigrate"
        )
    } else {
        format!(
            "{path}: the file dropped the history table {table}, so the files applied before it are no \
             longer recorded; its statements stayed applied. Before any other run, restore the table, or \
             record what is applied with `kubemigrate sql baseline`, and keep the history out of the \
             migrations' reach with --history-schema (a schema other than {schema}, on every command)"
        )
    }
}

pub(super) fn problems_line(problems: &[Problem]) -> String {
    match problems {
        [one] => format!("{}: {}", one.version, one.message),
        many => format!(
            "{} files need attention: {}",
            many.len(),
            many.iter()
                .map(|p| p.version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl MigrateError {
    /// The exit code this error ends a command with: 2 bad input, 3 SQL failed, 4
    /// needs a person, 5 lock timeout, 6 connection, 1 anything else.
    pub fn exit(&self) -> Exit {
        match self {
            MigrateError::Source(_) | MigrateError::Script(_) | MigrateError::Usage(_) => {
                Exit::Usage
            }
            MigrateError::Connect(_) => Exit::Connection,
            MigrateError::Lock(LockError::Timeout { .. }) => Exit::LockTimeout,
            MigrateError::Lock(_) => Exit::Connection,
            MigrateError::NeedsPerson(_) => Exit::NeedsPerson,
            MigrateError::Sql(_) => Exit::SqlFailed,
            MigrateError::Database {
                connection_lost: true,
                ..
            } => Exit::Connection,
            MigrateError::Database { .. } => Exit::Internal,
            MigrateError::History { .. } => Exit::NeedsPerson,
            MigrateError::HistoryDropped { .. } => Exit::Usage,
        }
    }

    pub(super) fn database(context: impl Into<String>, e: &tokio_postgres::Error) -> MigrateError {
        MigrateError::Database {
            context: context.into(),
            message: describe(e),
            connection_lost: is_connection_error(e),
        }
    }

    /// A history error: a database error in `context`, or the table's own problem.
    pub(super) fn history(context: impl Into<String>, e: HistoryError) -> MigrateError {
        match e {
            HistoryError::Db(e) => MigrateError::database(context, &e),
            error => MigrateError::History {
                context: context.into(),
                error,
            },
        }
    }
}

/// Whether a history write failed because the table (or its schema) is gone: an
/// unknown relation or schema, or a prepared statement whose table was dropped.
pub(super) fn history_gone(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let code = db.code();
        *code == tokio_postgres::error::SqlState::UNDEFINED_TABLE
            || *code == tokio_postgres::error::SqlState::INVALID_SCHEMA_NAME
            || (code.code() == "XX000" && db.message().starts_with("cache lookup failed"))
    })
}

/// True when an error means the connection is gone (closed socket, server shutdown).
pub fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        None => {
            // An I/O error somewhere in the chain.
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                if s.downcast_ref::<std::io::Error>().is_some() {
                    return true;
                }
                source = s.source();
            }
            false
        }
    }
}

/// A one-line description of a database error: the server's message and SQLSTATE,
/// or the client's error.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None if e.is_closed() => "the server closed the connection".to_string(),
        None => e.to_string(),
    }
}

pub(super) fn commit_error(m: &Migration, e: tokio_postgres::Error) -> MigrateError {
    match e.as_db_error() {
        // A deferred constraint fails at COMMIT: report it against the file.
        Some(db) if !is_connection_error(&e) => MigrateError::Sql(Box::new(SqlFailure {
            version: m.version.to_string(),
            path: m.path.display().to_string(),
            statement: m.statements,
            line: 1,
            column: 1,
            line_text: String::new(),
            exact: false,
            code: db.code().code().to_string(),
            message: format!("at COMMIT: {}", db.message()),
            detail: db.detail().map(str::to_string),
            hint: db.hint().map(str::to_string),
            context: db.where_().map(str::to_string),
        })),
        _ => MigrateError::database(format!("committing {}", m.version), &e),
    }
}

/// Turns a statement's error into a [`MigrateError`] that names the file, line and column.
pub(super) fn statement_error(
    m: &Migration,
    number: usize,
    item: &Item,
    at: &Location,
    e: tokio_postgres::Error,
) -> MigrateError {
    let context = || format!("running {} (statement {number})", m.version);
    if is_connection_error(&e) {
        return MigrateError::database(context(), &e);
    }
    let Some(db) = e.as_db_error() else {
        return MigrateError::database(context(), &e);
    };
    MigrateError::Sql(Box::new(sql_failure(m, number, item, at, db)))
}

pub(super) fn sql_failure(
    m: &Migration,
    number: usize,
    item: &Item,
    at: &Location,
    db: &DbError,
) -> SqlFailure {
    let (sent, edits, original) = match item {
        Item::Sql {
            text,
            edits,
            original,
            ..
        } => (text.as_str(), edits.as_slice(), original.as_deref()),
        Item::Copy { text, .. } => (text.as_str(), &[][..], None),
        Item::Echo(_) => ("", &[][..], None),
    };
    let written = original.unwrap_or(sent);
    // PostgreSQL's position counts characters from 1 in the statement as sent.
    let (offset, exact) = match db.position() {
        Some(ErrorPosition::Original(p)) => {
            let chars = (*p as usize).saturating_sub(1);
            let sent_offset = sent
                .char_indices()
                .nth(chars)
                .map_or(sent.len(), |(o, _)| o);
            (unmap_offset(edits, sent_offset).min(written.len()), true)
        }
        _ => (0, false),
    };
    let offset = (0..=offset)
        .rev()
        .find(|&o| written.is_char_boundary(o))
        .unwrap_or(0);
    let before = &written[..offset];
    let newlines = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let rest_of_line = written[line_start..].split('\n').next().unwrap_or("");
    let (column, line_text) = if newlines == 0 {
        let col = at.column as usize + before.chars().count();
        (col, format!("{}{}", at.prefix, rest_of_line))
    } else {
        (
            before[line_start..].chars().count() + 1,
            rest_of_line.to_string(),
        )
    };
    let code = db.code().code().to_string();
    let hint = match db.hint() {
        Some(h) => Some(h.to_string()),
        // "cannot run inside a transaction block"
        None if code == "25001" && m.transactional() => Some(format!(
            "put `-- {}` in the first comment lines of the file to run it without a transaction",
            crate::source::NO_TRANSACTION_DIRECTIVE
        )),
        None => None,
    };
    SqlFailure {
        version: m.version.to_string(),
        path: at.path.display().to_string(),
        statement: number,
        line: at
            .line
            .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX)),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        line_text: line_text.trim_end_matches('\r').to_string(),
        exact,
        code,
        message: db.message().to_string(),
        detail: db.detail().map(str::to_string),
        hint,
        context: db.where_().map(str::to_string),
    }
}

/// A file whose text (or an included file's) changed between its checksum and its run.
pub(super) fn changed_while_running(m: &Migration) -> MigrateError {
    MigrateError::Usage(format!(
        "{}: the file (or a file it includes) changed while kubemigrate was running; run again",
        m.path.display()
    ))
}
