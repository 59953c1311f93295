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
//! quoted as an identifier.

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient, Row, ToStatement};

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
    pub checksum: Option<String>,
    /// When, as RFC 3339 UTC.
    pub applied_at: String,
    /// Duration in milliseconds.
    pub execution_ms: i64,
    /// Who applied it.
    pub applied_by: String,
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
    pub checksum: Option<&'a str>,
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

const COLUMNS: &str = "id, version, kind, checksum, \
    to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
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

    /// Whether the table exists.
    ///
    /// # Errors
    /// Database errors.
    pub async fn exists(&self, client: &impl GenericClient) -> Result<bool, tokio_postgres::Error> {
        let row = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.qualified()])
            .await?;
        row.try_get(0)
    }

    /// Creates the schema, table and index when they do not exist. Safe to call from
    /// several sessions at once: a concurrent creation is retried.
    ///
    /// # Errors
    /// Database errors, e.g. no permission to create the table.
    pub async fn ensure(&self, client: &Client) -> Result<(), tokio_postgres::Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_create(client).await {
                Ok(()) => return Ok(()),
                Err(e)
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

    async fn try_create(&self, client: &Client) -> Result<(), tokio_postgres::Error> {
        if self.exists(client).await? {
            return Ok(());
        }
        let schema_exists: bool = client
            .query_one(
                "SELECT to_regnamespace($1) IS NOT NULL",
                &[&quote_ident(&self.schema)],
            )
            .await?
            .try_get(0)?;
        let table = self.qualified();
        let index = quote_ident(&format!("{}_version_key", self.table));
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
                Err(e)
            }
        }
    }

    /// The rows of files (not commands), oldest first. An absent table is an empty history.
    ///
    /// # Errors
    /// Database errors.
    pub async fn load(
        &self,
        client: &impl GenericClient,
    ) -> Result<Vec<HistoryRow>, tokio_postgres::Error> {
        if !self.exists(client).await? {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE kind <> 'command' ORDER BY id",
            self.qualified()
        );
        client
            .query(&sql, &[])
            .await?
            .iter()
            .map(row_from)
            .collect()
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
        client
            .query_one(
                statement,
                &[
                    &row.version,
                    &row.kind.as_str(),
                    &row.checksum,
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
        let sql = format!(
            "UPDATE {} SET statement = $2 WHERE id = $1",
            self.qualified()
        );
        client.execute(&sql, &[&id, &statement]).await.map(drop)
    }

    /// Finishes a row started with `success = false`.
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
    ) -> Result<(), tokio_postgres::Error> {
        let sql = format!(
            "UPDATE {} SET success = $2, execution_ms = $3, error = $4, statement = $5, applied_at = now() WHERE id = $1",
            self.qualified()
        );
        client
            .execute(&sql, &[&id, &success, &execution_ms, &error, &statement])
            .await
            .map(drop)
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
        let sql = format!(
            "DELETE FROM {} WHERE version = $1 AND kind <> 'command' AND NOT success",
            self.qualified()
        );
        client.execute(&sql, &[&version]).await
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
        let sql = format!(
            "UPDATE {} SET success = true, error = NULL, statement = NULL, checksum = $2 \
             WHERE version = $1 AND kind <> 'command' AND NOT success",
            self.qualified()
        );
        client.execute(&sql, &[&version, &checksum]).await
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
        let sql = format!(
            "UPDATE {} SET checksum = $2 WHERE version = $1 AND kind <> 'command' AND success",
            self.qualified()
        );
        client.execute(&sql, &[&version, &checksum]).await
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
        let sql = format!(
            "DELETE FROM {} WHERE version = $1 AND kind <> 'command'",
            self.qualified()
        );
        client.execute(&sql, &[&version]).await
    }
}

fn row_from(r: &Row) -> Result<HistoryRow, tokio_postgres::Error> {
    Ok(HistoryRow {
        id: r.try_get(0)?,
        version: r.try_get(1)?,
        kind: RowKind::parse(r.try_get(2)?),
        checksum: r.try_get(3)?,
        applied_at: r.try_get(4)?,
        execution_ms: r.try_get(5)?,
        applied_by: r.try_get(6)?,
        success: r.try_get(7)?,
        error: r.try_get(8)?,
        statement: r.try_get(9)?,
        exit_code: r.try_get(10)?,
        transactional: r.try_get(11)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        let t = HistoryTable {
            schema: "my schema".into(),
            table: "hist".into(),
        };
        assert_eq!(t.qualified(), "\"my schema\".\"hist\"");
    }
}
