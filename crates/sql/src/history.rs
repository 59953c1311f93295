//! The history table: one row per migration file (applied, baselined or failed) and
//! one per migration command run by `kubemigrate exec`.
//!
//! The table is created on first use:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `id` | `bigint` identity | insertion order |
//! | `version` | `text` | the file name, or the command line for `command` rows |
//! | `kind` | `text` | `sql`, `baseline` or `command` |
//! | `checksum` | `text` | SHA-256 of the file (see [`crate::source::checksum`]) |
//! | `applied_at` | `timestamptz` | when the row was written |
//! | `execution_ms` | `bigint` | how long the file or command ran |
//! | `applied_by` | `text` | `--applied-by`, default the pod name (`HOSTNAME`) |
//! | `success` | `boolean` | false for a failure or an interrupted no-transaction file |
//! | `error` | `text` | the error of a failure |
//! | `statement` | `integer` | 1-based number of the failed (or running) statement |
//! | `exit_code` | `integer` | exit code of a command |
//! | `transactional` | `boolean` | whether the file ran inside a transaction |
//!
//! A partial unique index on `version` (where `kind <> 'command'`) makes a second row
//! for the same file impossible. All values are bind parameters; the table's name is
//! quoted as an identifier. Names are checked with [`check_name`] so that PostgreSQL
//! never shortens one, and the index's name is derived so that it always fits
//! ([`HistoryTable::index_name`]).

use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient, Row, ToStatement};

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1`); a longer one is cut
/// to this many bytes, with only a NOTICE.
pub const MAX_IDENTIFIER: usize = 63;

/// Checks a schema or table name for the history: not empty, no NUL, at most
/// [`MAX_IDENTIFIER`] bytes (PostgreSQL would silently cut a longer one, and two long
/// names could then name one table, under two different migration locks).
///
/// # Errors
/// A one-line reason, without the name (the caller names the flag).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.contains('\0') {
        return Err("the name holds a NUL character".into());
    }
    if name.len() > MAX_IDENTIFIER {
        return Err(format!(
            "the name is {} bytes; PostgreSQL names are at most {MAX_IDENTIFIER} bytes (a longer one would be cut short)",
            name.len()
        ));
    }
    Ok(())
}

/// Why the history could not be read or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The server refused a statement, or the connection failed.
    #[error("{}", describe_db(.0))]
    Db(#[from] tokio_postgres::Error),
    /// A relation of that name exists but is not an ordinary table (a view, a foreign
    /// table…), so kubemigrate did not create it.
    #[error(
        "{table} is {kind}, not the table kubemigrate keeps its history in; give another --history-table (or --history-schema)"
    )]
    NotATable {
        /// `schema.table`.
        table: String,
        /// What it is, e.g. "a foreign table".
        kind: &'static str,
    },
    /// A row that kubemigrate cannot have written (a NULL, or a column of another
    /// type): the table was edited by hand or is not kubemigrate's.
    #[error(
        "{table} holds a row kubemigrate cannot read (id {id}, version {version}): {problem}; fix the row by hand, or give another --history-table"
    )]
    BadRow {
        /// `schema.table`.
        table: String,
        /// The row's id, or `?` when it cannot be read.
        id: String,
        /// The row's version, or `?` when it cannot be read.
        version: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl HistoryError {
    /// The database error inside, if this is one.
    pub fn as_db(&self) -> Option<&tokio_postgres::Error> {
        match self {
            HistoryError::Db(e) => Some(e),
            _ => None,
        }
    }
}

fn describe_db(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Where the history lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryTable {
    /// Schema name (default `public`).
    pub schema: String,
    /// Table name (default `kubemigrate_history`).
    pub table: String,
}

/// The default history table name.
pub const DEFAULT_TABLE: &str = "kubemigrate_history";
/// The default history schema.
pub const DEFAULT_SCHEMA: &str = "public";

impl Default for HistoryTable {
    fn default() -> Self {
        HistoryTable {
            schema: DEFAULT_SCHEMA.to_string(),
            table: DEFAULT_TABLE.to_string(),
        }
    }
}

/// What a history row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// A migration file that ran.
    Sql,
    /// A file recorded by `sql baseline` without running.
    Baseline,
    /// A command run by `kubemigrate exec`.
    Command,
}

impl RowKind {
    fn as_str(self) -> &'static str {
        match self {
            RowKind::Sql => "sql",
            RowKind::Baseline => "baseline",
            RowKind::Command => "command",
        }
    }
    fn parse(s: &str) -> RowKind {
        match s {
            "baseline" => RowKind::Baseline,
            "command" => RowKind::Command,
            _ => RowKind::Sql,
        }
    }
}

/// One row of the history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryRow {
    /// Row id (insertion order).
    pub id: i64,
    /// File name or command line.
    pub version: String,
    /// What the row records.
    pub kind: RowKind,
    /// Checksum of the file when it was applied.
    pub checksum: Option<RecordedChecksum>,
    /// When.
    pub applied_at: Timestamp,
    /// Duration in milliseconds.
    pub execution_ms: i64,
    /// Who applied it.
    ///
    /// Shared: the rows a [`HistoryTable::load`] reads share one string for
    /// equal names in a row, most often all of them (one runner's pod name).
    #[serde(serialize_with = "crate::events::shared_str")]
    pub applied_by: std::sync::Arc<str>,
    /// Whether it succeeded.
    pub success: bool,
    /// The error of a failure.
    pub error: Option<String>,
    /// The failed (or, for an interrupted file, the last started) statement, 1-based.
    pub statement: Option<i32>,
    /// A command's exit code.
    pub exit_code: Option<i32>,
    /// Whether the file ran in a transaction.
    pub transactional: bool,
}

/// A row to insert.
#[derive(Debug, Clone)]
pub struct NewRow<'a> {
    /// File name or command line.
    pub version: &'a str,
    /// What the row records.
    pub kind: RowKind,
    /// The file's checksum.
    pub checksum: Option<crate::script::Hex>,
    /// Duration in milliseconds.
    pub execution_ms: i64,
    /// Who.
    pub applied_by: &'a str,
    /// Whether it succeeded.
    pub success: bool,
    /// Error text of a failure.
    pub error: Option<&'a str>,
    /// Statement number.
    pub statement: Option<i32>,
    /// Exit code of a command.
    pub exit_code: Option<i32>,
    /// Whether the file ran in a transaction.
    pub transactional: bool,
}

/// Quotes an SQL identifier: `a"b` becomes `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `applied_at` is read as the server sends it (8 bytes) and written out only when
/// shown ([`Timestamp`]): the server's `to_char` of every row took half the time of
/// reading 10,000 rows.
const COLUMNS: &str = "id, version, kind, checksum, applied_at, \
    execution_ms, applied_by, success, error, statement, exit_code, transactional";

impl HistoryTable {
    /// `"schema"."table"`, quoted.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }

    /// `schema.table` for messages.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// The name of the unique index on `version`: `<table>_version_key`, or, when
    /// that is longer than PostgreSQL keeps, the table's name cut short with a hash
    /// of the whole name, so it always fits and is never the table's own name.
    pub fn index_name(&self) -> String {
        const SUFFIX: &str = "_version_key";
        let plain = format!("{}{SUFFIX}", self.table);
        if plain.len() <= MAX_IDENTIFIER {
            return plain;
        }
        let hash: String = Sha256::digest(self.table.as_bytes())[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let room = MAX_IDENTIFIER - SUFFIX.len() - hash.len() - 1;
        let mut cut = room.min(self.table.len());
        while !self.table.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}_{hash}{SUFFIX}", &self.table[..cut])
    }

    /// Whether the table exists.
    ///
    /// # Errors
    /// Database errors; [`HistoryError::NotATable`] when the name is taken by a view,
    /// a foreign table or another kind of relation.
    pub async fn exists(&self, client: &impl GenericClient) -> Result<bool, HistoryError> {
        // to_regclass of an unknown name is NULL: no row.
        // Typed parameters: parsed, bound and run in one round trip.
        let Some(row) = client
            .query_typed_opt(
                "SELECT c.relkind::text FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)",
                &[(&self.qualified(), Type::TEXT)],
            )
            .await?
        else {
            return Ok(false);
        };
        let kind: String = row.try_get(0)?;
        match kind.as_str() {
            "r" | "p" => Ok(true),
            other => Err(HistoryError::NotATable {
                table: self.display_name(),
                kind: match other {
                    "v" => "a view",
                    "m" => "a materialized view",
                    "f" => "a foreign table",
                    "S" => "a sequence",
                    "i" | "I" => "an index",
                    "c" => "a composite type",
                    _ => "not a table",
                },
            }),
        }
    }

    /// Creates the schema, table and index when they do not exist. Safe to call from
    /// several sessions at once: a concurrent creation is retried.
    ///
    /// # Errors
    /// Database errors, e.g. no permission to create the table.
    pub async fn ensure(&self, client: &Client) -> Result<(), HistoryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_create(client).await {
                Ok(()) => return Ok(()),
                Err(HistoryError::Db(e))
                    if attempt < 3
                        && e.code().is_some_and(|c| {
                            *c == SqlState::UNIQUE_VIOLATION
                                || *c == SqlState::DUPLICATE_TABLE
                                || *c == SqlState::DUPLICATE_OBJECT
                                || *c == SqlState::DUPLICATE_SCHEMA
                        }) => {}
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_create(&self, client: &Client) -> Result<(), HistoryError> {
        if self.exists(client).await? {
            return Ok(());
        }
        let schema_exists: bool = client
            .query_one(
                "SELECT pg_catalog.to_regnamespace($1) IS NOT NULL",
                &[&quote_ident(&self.schema)],
            )
            .await?
            .try_get(0)?;
        let table = self.qualified();
        let index = quote_ident(&self.index_name());
        let mut sql = String::from("BEGIN;\n");
        if !schema_exists {
            sql.push_str(&format!(
                "CREATE SCHEMA IF NOT EXISTS {};\n",
                quote_ident(&self.schema)
            ));
        }
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('sql', 'baseline', 'command')),
    checksum text,
    applied_at timestamptz NOT NULL DEFAULT now(),
    execution_ms bigint NOT NULL DEFAULT 0,
    applied_by text NOT NULL DEFAULT '',
    success boolean NOT NULL,
    error text,
    statement integer,
    exit_code integer,
    transactional boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} (version) WHERE kind <> 'command';
COMMIT;"
        ));
        match client.batch_execute(&sql).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Leave the session usable for the retry.
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e.into())
            }
        }
    }

    /// The rows of files (not commands), oldest first. An absent table is an empty history.
    ///
    /// # Errors
    /// Database errors; [`HistoryError::NotATable`] for a relation that is not a
    /// table; [`HistoryError::BadRow`] for a row with a NULL where kubemigrate always
    /// writes a value, or a column of another type.
    pub async fn load(&self, client: &impl GenericClient) -> Result<Vec<HistoryRow>, HistoryError> {
        if !self.exists(client).await? {
            return Ok(Vec::new());
        }
        self.load_existing(client).await
    }

    /// [`HistoryTable::load`] of a table known to exist (just made sure of by
    /// [`HistoryTable::ensure`]): one query, its rows read as they arrive.
    ///
    /// # Errors
    /// As [`HistoryTable::load`]; a table that is gone is a database error.
    pub async fn load_existing(
        &self,
        client: &impl GenericClient,
    ) -> Result<Vec<HistoryRow>, HistoryError> {
        use futures_util::TryStreamExt as _;
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE kind <> 'command' ORDER BY id",
            self.qualified()
        );
        // No parameters to prepare for: parsed and run in one round trip.
        let rows = client.query_typed_raw(&sql, NO_PARAMS).await?;
        futures_util::pin_mut!(rows);
        let mut out: Vec<HistoryRow> = Vec::new();
        while let Some(row) = rows.try_next().await? {
            let previous = out.last().map(|r| &r.applied_by);
            out.push(row_from(&row, self, previous)?);
        }
        // The rows are kept until the run reconciles them, at its peak of memory:
        // without the room the doubling left (up to as much again).
        out.shrink_to_fit();
        Ok(out)
    }

    /// The `INSERT … RETURNING id` statement behind [`HistoryTable::insert`], to prepare once
    /// and pass to [`HistoryTable::insert_with`].
    pub fn insert_sql(&self) -> String {
        format!(
            "INSERT INTO {} (version, kind, checksum, execution_ms, applied_by, success, error, statement, exit_code, transactional) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            self.qualified()
        )
    }

    /// Inserts a row and returns its id.
    ///
    /// # Errors
    /// Database errors (a second row for one file violates the unique index).
    pub async fn insert(
        &self,
        client: &impl GenericClient,
        row: &NewRow<'_>,
    ) -> Result<i64, tokio_postgres::Error> {
        self.insert_with(client, self.insert_sql().as_str(), row)
            .await
    }

    /// Inserts a row with a statement prepared from [`HistoryTable::insert_sql`].
    ///
    /// # Errors
    /// Database errors.
    pub async fn insert_with<T>(
        &self,
        client: &impl GenericClient,
        statement: &T,
        row: &NewRow<'_>,
    ) -> Result<i64, tokio_postgres::Error>
    where
        T: ?Sized + ToStatement + Sync + Send,
    {
        let checksum = row.checksum.as_ref().map(crate::script::Hex::as_str);
        client
            .query_one(
                statement,
                &[
                    &row.version,
                    &row.kind.as_str(),
                    &checksum,
                    &row.execution_ms,
                    &row.applied_by,
                    &row.success,
                    &row.error,
                    &row.statement,
                    &row.exit_code,
                    &row.transactional,
                ],
            )
            .await?
            .try_get(0)
    }

    /// Records which statement of an in-progress no-transaction file is running.
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_statement(
        &self,
        client: &impl GenericClient,
        id: i64,
        statement: i32,
    ) -> Result<(), tokio_postgres::Error> {
        self.change_rows(
            client,
            "UPDATE",
            "SET statement = $2 WHERE id = $1",
            &[&id, &statement],
        )
        .await
        .map(drop)
    }

    /// Finishes a row started with `success = false`; returns how many rows changed
    /// (0 when the row is gone).
    ///
    /// # Errors
    /// Database errors.
    pub async fn finish(
        &self,
        client: &impl GenericClient,
        id: i64,
        success: bool,
        execution_ms: i64,
        error: Option<&str>,
        statement: Option<i32>,
    ) -> Result<u64, tokio_postgres::Error> {
        self.change_rows(
            client,
            "UPDATE",
            "SET success = $2, execution_ms = $3, error = $4, statement = $5, applied_at = now() WHERE id = $1",
            &[&id, &success, &execution_ms, &error, &statement],
        )
        .await
    }

    /// Deletes the failed row of a file; returns how many rows went.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_failed(
        &self,
        client: &impl GenericClient,
        version: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        self.change_rows(
            client,
            "DELETE FROM",
            "WHERE version = $1 AND kind <> 'command' AND NOT success",
            &[&version],
        )
        .await
    }

    /// Marks a failed file as applied (after it was finished by hand) with this checksum.
    ///
    /// # Errors
    /// Database errors.
    pub async fn mark_applied(
        &self,
        client: &impl GenericClient,
        version: &str,
        checksum: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        self.change_rows(
            client,
            "UPDATE",
            "SET success = true, error = NULL, statement = NULL, checksum = $2 \
             WHERE version = $1 AND kind <> 'command' AND NOT success",
            &[&version, &checksum],
        )
        .await
    }

    /// Stores a new checksum for an applied file (accepting an edit of the file).
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_checksum(
        &self,
        client: &impl GenericClient,
        version: &str,
        checksum: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        self.change_rows(
            client,
            "UPDATE",
            "SET checksum = $2 WHERE version = $1 AND kind <> 'command' AND success",
            &[&version, &checksum],
        )
        .await
    }

    /// Deletes the row of a file whose migration file is gone.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_version(
        &self,
        client: &impl GenericClient,
        version: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        self.change_rows(
            client,
            "DELETE FROM",
            "WHERE version = $1 AND kind <> 'command'",
            &[&version],
        )
        .await
    }

    /// Runs `verb` (`UPDATE`, `DELETE FROM`) on this table, then `rest`, with these
    /// bind parameters; returns how many rows changed.
    async fn change_rows(
        &self,
        client: &impl GenericClient,
        verb: &str,
        rest: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let sql = format!("{verb} {} {rest}", self.qualified());
        client.execute(&sql, params).await
    }
}

/// No bind parameters.
const NO_PARAMS: [(&(dyn ToSql + Sync), Type); 0] = [];

/// The names of the columns [`COLUMNS`] selects, for messages.
const COLUMN_NAMES: [&str; 12] = [
    "id",
    "version",
    "kind",
    "checksum",
    "applied_at",
    "execution_ms",
    "applied_by",
    "success",
    "error",
    "statement",
    "exit_code",
    "transactional",
];

/// Reads a row, naming the row and the column when one cannot be read (a NULL where
/// kubemigrate always writes a value, a column of another type). Its `applied_by`
/// is `previous`, shared, when equal to it.
fn row_from(
    r: &Row,
    table: &HistoryTable,
    previous: Option<&std::sync::Arc<str>>,
) -> Result<HistoryRow, HistoryError> {
    let id: Option<i64> = r.try_get(0).ok().flatten();
    let version: Option<&str> = r.try_get(1).ok().flatten();
    let bad = |column: usize, problem: String| HistoryError::BadRow {
        table: table.display_name(),
        id: id.map_or_else(|| "?".to_string(), |i| i.to_string()),
        version: version.unwrap_or("?").to_string(),
        problem: format!("`{}` {problem}", COLUMN_NAMES[column]),
    };
    // Columns kubemigrate never leaves NULL.
    fn required<'a, T: tokio_postgres::types::FromSql<'a>>(
        r: &'a Row,
        i: usize,
        bad: &dyn Fn(usize, String) -> HistoryError,
    ) -> Result<T, HistoryError> {
        match r.try_get::<_, Option<T>>(i) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(bad(i, "is NULL".into())),
            Err(e) => Err(bad(i, type_problem(&e))),
        }
    }
    fn optional<'a, T: tokio_postgres::types::FromSql<'a>>(
        r: &'a Row,
        i: usize,
        bad: &dyn Fn(usize, String) -> HistoryError,
    ) -> Result<Option<T>, HistoryError> {
        r.try_get::<_, Option<T>>(i)
            .map_err(|e| bad(i, type_problem(&e)))
    }
    Ok(HistoryRow {
        id: required(r, 0, &bad)?,
        version: required(r, 1, &bad)?,
        kind: RowKind::parse(required(r, 2, &bad)?),
        checksum: optional(r, 3, &bad)?,
        applied_at: required(r, 4, &bad)?,
        execution_ms: required(r, 5, &bad)?,
        applied_by: {
            let by: &str = required(r, 6, &bad)?;
            match previous {
                Some(p) if **p == *by => std::sync::Arc::clone(p),
                _ => by.into(),
            }
        },
        success: required(r, 7, &bad)?,
        error: optional(r, 8, &bad)?,
        statement: optional(r, 9, &bad)?,
        exit_code: optional(r, 10, &bad)?,
        transactional: required(r, 11, &bad)?,
    })
}

/// A file's checksum as the history records it: kubemigrate's own (SHA-256 as 64
/// lower-case hex digits) kept as its 32 bytes, anything else (a checksum another
/// tool wrote, adopted with its history) as written. Shown, and serialized, as
/// written: a history of 10,000 rows holds no 10,000 strings of 64 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordedChecksum {
    /// 64 lower-case hex digits, as the checksum they spell.
    Sha256(crate::script::Sha256Sum),
    /// Any other text.
    Other(Box<str>),
}

impl RecordedChecksum {
    /// The checksum written as `text`.
    pub fn parse(text: &str) -> RecordedChecksum {
        match crate::script::Sha256Sum::from_hex(text) {
            Some(sum) => RecordedChecksum::Sha256(sum),
            None => RecordedChecksum::Other(text.into()),
        }
    }

    /// Whether this is `checksum`, a file's.
    pub fn matches(&self, checksum: &crate::script::Sha256Sum) -> bool {
        match self {
            RecordedChecksum::Sha256(sum) => sum == checksum,
            RecordedChecksum::Other(text) => **text == *checksum.hex(),
        }
    }
}

impl std::fmt::Display for RecordedChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordedChecksum::Other(text) => f.write_str(text),
            RecordedChecksum::Sha256(sum) => sum.fmt(f),
        }
    }
}

impl From<&str> for RecordedChecksum {
    fn from(text: &str) -> Self {
        RecordedChecksum::parse(text)
    }
}

impl serde::Serialize for RecordedChecksum {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Read from a `text` (or `varchar`) column.
impl<'a> tokio_postgres::types::FromSql<'a> for RecordedChecksum {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
        Ok(RecordedChecksum::parse(text))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::FromSql>::accepts(ty)
    }
}

/// A moment as PostgreSQL stores a `timestamptz`: microseconds since 2000-01-01
/// 00:00:00 UTC, `i64::MAX` and `i64::MIN` for ±infinity.
///
/// Shown, and serialized, as `2026-12-04T15:37:52.123Z`: UTC, milliseconds
/// truncated, as the server's `to_char(… AT TIME ZONE 'UTC',
/// 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')` writes it. Kept as the number until then: a
/// history of 10,000 rows and its report hold no 20,000 strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The moment `micros` microseconds after 2000-01-01 00:00:00 UTC.
    pub const fn from_pg_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since 2000-01-01 00:00:00 UTC.
    pub const fn pg_micros(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            i64::MAX => return f.write_str("infinity"),
            i64::MIN => return f.write_str("-infinity"),
            _ => {}
        }
        let millis = self.0.div_euclid(1000);
        let secs = millis.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let second = secs.rem_euclid(86_400);
        // Days from 1970-01-01 to 2000-01-01.
        let (year, month, day) = civil_from_days(days + 10_957);
        let (hour, minute, sec) = (second / 3600, second % 3600 / 60, second % 60);
        let milli = millis.rem_euclid(1000);
        if !(0..=9999).contains(&year) {
            return write!(
                f,
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{sec:02}.{milli:03}Z"
            );
        }
        // Digit by digit, without the formatting machinery: a report of 10,000
        // files writes 10,000 of them.
        let fields = [
            (year, 4),
            (month, 2),
            (day, 2),
            (hour, 2),
            (minute, 2),
            (sec, 2),
            (milli, 3),
        ];
        let mut text = [0u8; 24];
        let mut out = text.iter_mut();
        for ((value, width), after) in fields.into_iter().zip(*b"--T::.Z") {
            for place in (0..width).rev() {
                // 0 to 9: every field is in 0..10^width here.
                let digit = u8::try_from(value / 10_i64.pow(place) % 10).unwrap_or(0);
                if let Some(slot) = out.next() {
                    *slot = b'0' + digit;
                }
            }
            if let Some(slot) = out.next() {
                *slot = after;
            }
        }
        // ASCII digits and separators: always UTF-8.
        f.write_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Read from a `timestamptz` (or `timestamp`) in PostgreSQL's binary format.
impl<'a> tokio_postgres::types::FromSql<'a> for Timestamp {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 8] = raw.try_into()?;
        Ok(Timestamp(i64::from_be_bytes(bytes)))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        use tokio_postgres::types::Type;
        matches!(*ty, Type::TIMESTAMPTZ | Type::TIMESTAMP)
    }
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`: 400-year eras of 146,097 days, years starting in March).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// "has type text, not boolean", from tokio-postgres's "error deserializing column 7:
/// cannot convert between the Rust type `bool` and the Postgres type `text`".
fn type_problem(e: &tokio_postgres::Error) -> String {
    let text = std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string);
    match text.rsplit_once("the Postgres type `") {
        Some((_, rest)) => format!(
            "has the type {}, not the one kubemigrate creates",
            rest.trim_end_matches('`')
        ),
        None => format!("cannot be read: {text}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
    use super::*;

    #[test]
    fn applied_at_is_written_as_the_servers_to_char_wrote_it() {
        // Microseconds since 2000-01-01 UTC (computed with Python's datetime).
        for (micros, text) in [
            (0, "2000-01-01T00:00:00.000Z"),
            (-1, "1999-12-31T23:59:59.999Z"),
            (5_142_896_789_123, "2000-02-29T12:34:56.789Z"),
            (3_160_857_600_000_999, "2100-03-01T00:00:00.000Z"),
            (849_713_872_123_456, "2026-12-04T15:37:52.123Z"),
            (-946_684_800_000_000, "1970-01-01T00:00:00.000Z"),
            (12_654_403_199_999_999, "2400-12-31T23:59:59.999Z"),
            (-63_113_904_000_000_000, "0000-01-01T00:00:00.000Z"),
            (252_455_615_999_999_999, "9999-12-31T23:59:59.999Z"),
            (252_455_616_000_000_000, "10000-01-01T00:00:00.000Z"),
            (i64::MAX, "infinity"),
            (i64::MIN, "-infinity"),
        ] {
            let at = Timestamp::from_pg_micros(micros);
            assert_eq!(at.to_string(), text, "{micros}");
            assert_eq!(at.pg_micros(), micros);
            // Serialized as shown.
            assert_eq!(serde_json::to_string(&at).unwrap(), format!("\"{text}\""));
        }
    }

    #[test]
    fn recorded_checksums_are_kept_as_bytes_or_as_written() {
        let sha = crate::source::checksum("create table t (id int);\n");
        let recorded = RecordedChecksum::parse(&sha);
        let RecordedChecksum::Sha256(file) = recorded.clone() else {
            panic!("{recorded:?} is not kept as bytes");
        };
        assert_eq!(file.to_string(), sha);
        assert_eq!(recorded.to_string(), sha);
        assert_eq!(
            serde_json::to_string(&recorded).unwrap(),
            format!("\"{sha}\"")
        );
        assert_eq!(serde_json::to_string(&file).unwrap(), format!("\"{sha}\""));
        assert!(recorded.matches(&file));
        let mut changed = *file.as_bytes();
        changed[31] ^= 1;
        assert!(!recorded.matches(&crate::script::Sha256Sum::from_bytes(changed)));
        // Not 64 lower-case hex digits: as written, and compared as written.
        for text in [
            sha.to_uppercase(),
            sha[..63].to_string(),
            "-1437582730".into(),
            String::new(),
        ] {
            let recorded = RecordedChecksum::parse(&text);
            assert_eq!(recorded, RecordedChecksum::Other(text.as_str().into()));
            assert_eq!(recorded.to_string(), text);
            assert!(!recorded.matches(&file));
        }
        assert!(RecordedChecksum::Other(sha.as_str().into()).matches(&file));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        let t = HistoryTable {
            schema: "my schema".into(),
            table: "hist".into(),
        };
        assert_eq!(t.qualified(), "\"my schema\".\"hist\"");
    }

    #[test]
    fn derived_index_names_always_fit_and_differ_from_the_table() {
        let named = |table: &str| HistoryTable {
            schema: "public".into(),
            table: table.into(),
        };
        // Names that fit keep the name every existing history table has.
        assert_eq!(
            named(DEFAULT_TABLE).index_name(),
            "kubemigrate_history_version_key"
        );
        for len in [51, 52, 62, 63] {
            let table = "h".repeat(len);
            let index = named(&table).index_name();
            assert!(index.len() <= MAX_IDENTIFIER, "{len}: {index}");
            assert_ne!(index, table);
            assert!(index.ends_with("_version_key"), "{index}");
        }
        // Two long names with the same beginning get two indexes.
        let a = named(&format!("{}a", "x".repeat(62))).index_name();
        let b = named(&format!("{}b", "x".repeat(62))).index_name();
        assert_ne!(a, b);
        // Cut at a character boundary.
        let multibyte = named(&"é".repeat(31)).index_name();
        assert!(multibyte.len() <= MAX_IDENTIFIER, "{multibyte}");
    }

    #[test]
    fn names_postgresql_would_cut_or_cannot_hold_are_refused() {
        assert!(check_name("kubemigrate_history").is_ok());
        assert!(check_name(&"x".repeat(63)).is_ok());
        assert!(
            check_name(&"x".repeat(64))
                .unwrap_err()
                .contains("at most 63 bytes")
        );
        assert!(check_name("").unwrap_err().contains("empty"));
        assert!(check_name("a\0b").is_err());
    }
}
