//! `sql adopt --from TOOL`: reading another tool's history table and recording the
//! same files as applied in kubemigrate's, so that kubemigrate goes on where the
//! tool stopped without running anything twice.

use super::*;
use crate::source::Layout;

/// A migration tool whose history `sql adopt` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tool {
    /// Flyway's `flyway_schema_history`.
    Flyway,
    /// golang-migrate's `schema_migrations` (one row: version and dirty flag).
    GolangMigrate,
    /// dbmate's `schema_migrations` (one row per applied version).
    Dbmate,
    /// goose's `goose_db_version`.
    Goose,
    /// sqlx's `_sqlx_migrations`.
    Sqlx,
    /// diesel's `__diesel_schema_migrations`.
    Diesel,
    /// postgres-migrations' `migrations`.
    PostgresMigrations,
    /// Supabase's `supabase_migrations.schema_migrations`.
    Supabase,
}

impl Tool {
    /// Every tool.
    pub const ALL: [Tool; 8] = [
        Tool::Flyway,
        Tool::GolangMigrate,
        Tool::Dbmate,
        Tool::Goose,
        Tool::Sqlx,
        Tool::Diesel,
        Tool::PostgresMigrations,
        Tool::Supabase,
    ];

    /// The layout of the tool's files.
    pub fn layout(self) -> Layout {
        match self {
            Tool::Flyway => Layout::Flyway,
            Tool::GolangMigrate => Layout::GolangMigrate,
            Tool::Dbmate => Layout::Dbmate,
            Tool::Goose => Layout::Goose,
            Tool::Sqlx => Layout::Sqlx,
            Tool::Diesel => Layout::Diesel,
            Tool::PostgresMigrations => Layout::PostgresMigrations,
            Tool::Supabase => Layout::Supabase,
        }
    }

    /// The name `--from` takes (the layout's name).
    pub fn name(self) -> &'static str {
        self.layout().name()
    }

    /// The tool of this name.
    ///
    /// # Errors
    /// An unknown name; the message lists the known ones.
    pub fn parse(name: &str) -> Result<Tool, String> {
        Tool::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown tool {name:?}; known tools: {}",
                    Tool::ALL.map(Tool::name).join(", ")
                )
            })
    }

    /// The tool's history table, as its default configuration names it (found on
    /// the search path unless schema-qualified).
    pub fn default_table(self) -> &'static str {
        match self {
            Tool::Flyway => "flyway_schema_history",
            Tool::GolangMigrate | Tool::Dbmate => "schema_migrations",
            Tool::Goose => "goose_db_version",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::PostgresMigrations => "migrations",
            Tool::Supabase => "supabase_migrations.schema_migrations",
        }
    }
}

/// What a tool's history says is applied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ToolHistory {
    /// Versions recorded as applied, as the tool writes them.
    pub applied: Vec<String>,
    /// golang-migrate: everything up to this version is applied. Flyway: a baseline.
    pub up_to: Option<String>,
}

/// Reads the tool's history table (`table`, a name PostgreSQL resolves on the
/// search path, or schema-qualified).
async fn read_tool_history(
    client: &Client,
    tool: Tool,
    table: &str,
) -> Result<ToolHistory, MigrateError> {
    let db = |what: &str| {
        let what = format!("reading {}'s history table {table} ({what})", tool.name());
        move |e: tokio_postgres::Error| MigrateError::database(what, &e)
    };
    // PostgreSQL resolves and quotes the name: the text of a regclass is a safe
    // identifier to put in SQL.
    let row = client
        .query_one("SELECT pg_catalog.to_regclass($1)::text", &[&table])
        .await
        .map_err(db("finding it"))?;
    let Some(name): Option<String> = row.get(0) else {
        return Err(MigrateError::Usage(format!(
            "{}'s history table {table} does not exist in this database; give its name with --tool-table (e.g. myschema.{})",
            tool.name(),
            tool.default_table().rsplit('.').next().unwrap_or(table)
        )));
    };
    let mut history = ToolHistory::default();
    let needs_person = |message: String| {
        MigrateError::NeedsPerson(vec![Problem {
            version: table.to_string(),
            message,
        }])
    };
    match tool {
        Tool::GolangMigrate => {
            let rows = client
                .query(&format!("SELECT version::text, dirty FROM {name}"), &[])
                .await
                .map_err(db("version, dirty"))?;
            if let Some(r) = rows.first() {
                let version: String = r.get(0);
                if r.get::<_, bool>(1) {
                    return Err(needs_person(format!(
                        "golang-migrate says: Dirty database version {version}. Fix and force version. \
                         (Finish or undo that migration by hand, run `migrate force VERSION`, then adopt again.)"
                    )));
                }
                history.up_to = Some(version);
            }
        }
        Tool::Flyway => {
            let rows = client
                .query(
                    &format!(
                        "SELECT version, description, type, success FROM {name} ORDER BY installed_rank"
                    ),
                    &[],
                )
                .await
                .map_err(db("version, description, type, success"))?;
            for r in rows {
                let version: Option<String> = r.get(0);
                let description: Option<String> = r.get(1);
                let kind: String = r.get(2);
                let success: bool = r.get(3);
                if !success {
                    return Err(needs_person(format!(
                        "Flyway says: Detected failed migration to version {} ({}). Please remove any half-completed changes then run repair to fix the schema history.",
                        version.as_deref().unwrap_or("repeatable"),
                        description.unwrap_or_default()
                    )));
                }
                match (kind.as_str(), version) {
                    ("BASELINE", Some(v)) => history.up_to = Some(v),
                    ("SQL" | "JDBC" | "SCRIPT", Some(v)) => history.applied.push(v),
                    // Repeatable rows (no version), the schema-creation marker, undos.
                    _ => {}
                }
            }
        }
        Tool::Goose => {
            let rows = client
                .query(
                    &format!("SELECT version_id::text, is_applied FROM {name} ORDER BY id"),
                    &[],
                )
                .await
                .map_err(db("version_id, is_applied"))?;
            // The newest row of a version says whether it is applied.
            let mut state: Vec<(String, bool)> = Vec::new();
            for r in rows {
                let v: String = r.get(0);
                let applied: bool = r.get(1);
                match state.iter_mut().find(|(x, _)| *x == v) {
                    Some(s) => s.1 = applied,
                    None => state.push((v, applied)),
                }
            }
            history.applied = state
                .into_iter()
                .filter(|(v, applied)| *applied && v != "0")
                .map(|(v, _)| v)
                .collect();
        }
        Tool::Sqlx => {
            let rows = client
                .query(
                    &format!("SELECT version::text, success FROM {name} ORDER BY version"),
                    &[],
                )
                .await
                .map_err(db("version, success"))?;
            for r in rows {
                let v: String = r.get(0);
                if !r.get::<_, bool>(1) {
                    return Err(needs_person(format!(
                        "sqlx says: migration {v} is partially applied; fix and remove row from `_sqlx_migrations` table"
                    )));
                }
                history.applied.push(v);
            }
        }
        Tool::Dbmate | Tool::Diesel | Tool::Supabase => {
            let rows = client
                .query(&format!("SELECT version::text FROM {name}"), &[])
                .await
                .map_err(db("version"))?;
            history.applied = rows.iter().map(|r| r.get(0)).collect();
        }
        Tool::PostgresMigrations => {
            let rows = client
                .query(&format!("SELECT id::text FROM {name}"), &[])
                .await
                .map_err(db("id"))?;
            // Id 0 is the tool's own table creation, not a file of the directory.
            history.applied = rows
                .iter()
                .map(|r| r.get::<_, String>(0))
                .filter(|v| v != "0")
                .collect();
        }
    }
    Ok(history)
}

/// The numeric parts of a version as the tool wrote it in its history.
fn tool_version_parts(tool: Tool, version: &str) -> Option<Vec<u128>> {
    let digits: String = version.chars().filter(|c| *c != '-').collect();
    match tool {
        Tool::Flyway => Layout::Flyway.version_parts(&format!("V{version}__x.sql")),
        _ => Layout::GolangMigrate
            .version_parts(&digits)
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit())),
    }
}

fn same_parts(a: &[u128], b: &[u128]) -> bool {
    let n = a.len().max(b.len());
    (0..n).all(|i| a.get(i).copied().unwrap_or(0) == b.get(i).copied().unwrap_or(0))
}

fn parts_le(a: &[u128], b: &[u128]) -> bool {
    let n = a.len().max(b.len());
    for i in 0..n {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x < y;
        }
    }
    true
}

/// Which files of the source the tool's history says are applied, and the tool's
/// versions that match no file. Pure.
pub(crate) fn applied_files(
    tool: Tool,
    source: &Source,
    history: &ToolHistory,
) -> (Vec<bool>, Vec<String>) {
    let layout = source.layout;
    let applied: Vec<(String, Option<Vec<u128>>)> = history
        .applied
        .iter()
        .map(|v| (v.clone(), tool_version_parts(tool, v)))
        .collect();
    let up_to = history
        .up_to
        .as_deref()
        .and_then(|v| tool_version_parts(tool, v));
    let mut matched = vec![false; applied.len()];
    let files = source
        .migrations
        .iter()
        .map(|m| {
            if m.repeatable {
                // Runs again once under kubemigrate: it is written to be re-run.
                return false;
            }
            let Some(parts) = layout.version_parts(&m.version) else {
                return false;
            };
            let mut hit = up_to.as_ref().is_some_and(|u| parts_le(&parts, u));
            for (i, (_, p)) in applied.iter().enumerate() {
                if p.as_ref().is_some_and(|p| same_parts(p, &parts)) {
                    matched[i] = true;
                    hit = true;
                }
            }
            hit
        })
        .collect();
    let unmatched = applied
        .into_iter()
        .zip(matched)
        .filter(|(_, m)| !m)
        .map(|((v, _), _)| v)
        .collect();
    (files, unmatched)
}

/// `sql adopt`: records as applied (kind `baseline`) the files that `tool`'s history
/// table says are applied, under the lock, with today's checksums. With
/// `options.dry_run`, reports what it would record and changes nothing (no lock,
/// no table).
///
/// # Errors
/// Returned inside the [`Outcome`]: the tool's table is missing, the tool's history
/// is dirty or holds a failed migration (in the tool's words), kubemigrate's history
/// holds a failed attempt of one of the files, connection, lock and database errors.
pub async fn adopt(
    connect: &ConnectOptions,
    source: &Source,
    options: &MigrateOptions,
    tool: Tool,
    tool_table: Option<&str>,
    events: &mut dyn FnMut(Event),
) -> Outcome {
    let started = Instant::now();
    let mut report = source_report(connect, &options.history, options.dry_run, source);
    let table = tool_table.unwrap_or(tool.default_table());
    let result = adopt_inner(connect, source, options, tool, table, events, &mut report).await;
    report.duration_ms = millis(started.elapsed());
    Outcome {
        report,
        error: result.err(),
    }
}

async fn adopt_inner(
    connect: &ConnectOptions,
    source: &Source,
    options: &MigrateOptions,
    tool: Tool,
    table: &str,
    events: &mut dyn FnMut(Event),
    report: &mut Report,
) -> Result<(), MigrateError> {
    let conn = open(connect, events).await?;
    let lock = if options.dry_run {
        None
    } else {
        Some(with_lock(connect, options, events).await?)
    };
    let result = async {
        let history = &options.history;
        if !options.dry_run {
            history
                .ensure(&conn.client)
                .await
                .map_err(|e| MigrateError::history("creating the history table", e))?;
        }
        // Read under the lock: the tool's table and ours as they are now.
        let tool_history = read_tool_history(&conn.client, tool, table).await?;
        let rows = history
            .load(&conn.client)
            .await
            .map_err(|e| MigrateError::history("reading the history", e))?;
        let rec = reconcile(source, &rows);
        let (applied, unmatched) = applied_files(tool, source, &tool_history);
        for v in &unmatched {
            events(Event::Warning {
                message: format!(
                    "{} records version {v} as applied, but no file of {} has that version",
                    tool.name(),
                    source.dir.display()
                ),
            });
        }
        let to_record = files_to_record(source, &rec, applied, &history.display_name(), report)?;
        if options.dry_run {
            return Ok(());
        }
        record_baselined(&conn.client, options, to_record, "the adoption", events).await
    }
    .await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a failed unwrap is the failure the test reports"
    )]
    use super::*;
    use std::path::PathBuf;

    fn source(layout: Layout, names: &[&str]) -> Source {
        Source {
            dir: PathBuf::from("m"),
            migrations: names
                .iter()
                .map(|n| Migration {
                    deferred: false,
                    version: (*n).into(),
                    path: PathBuf::from(n),
                    checksum: crate::script::Sha256Sum::default(),
                    no_transaction: false,
                    controls_transaction: false,
                    statements: 1,
                    repeatable: n.starts_with("R__"),
                    section: None,
                })
                .collect(),
            warnings: vec![],
            layout,
            include_root: None,
        }
    }

    #[test]
    fn golang_migrate_applies_everything_up_to_its_version() {
        let s = source(
            Layout::GolangMigrate,
            &["1_a.up.sql", "2_b.up.sql", "10_c.up.sql"],
        );
        let h = ToolHistory {
            up_to: Some("2".into()),
            ..ToolHistory::default()
        };
        assert_eq!(
            applied_files(Tool::GolangMigrate, &s, &h).0,
            [true, true, false]
        );
    }

    #[test]
    fn flyway_versions_match_by_number_and_repeatables_run_again() {
        let s = source(
            Layout::Flyway,
            &["V1__a.sql", "V1.1__b.sql", "V2__c.sql", "R__v.sql"],
        );
        let h = ToolHistory {
            applied: vec!["1.0".into(), "1.1".into(), "7".into()],
            up_to: None,
        };
        let (files, unmatched) = applied_files(Tool::Flyway, &s, &h);
        assert_eq!(files, [true, true, false, false]);
        assert_eq!(unmatched, ["7"]);
    }

    #[test]
    fn diesel_versions_without_dashes_match_folders() {
        let s = source(
            Layout::Diesel,
            &[
                "00000000000000_diesel_initial_setup",
                "2024-01-02-000000_posts",
            ],
        );
        let h = ToolHistory {
            applied: vec!["00000000000000".into(), "20240102000000".into()],
            up_to: None,
        };
        assert_eq!(applied_files(Tool::Diesel, &s, &h).0, [true, true]);
    }
}
