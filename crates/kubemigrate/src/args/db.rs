//! The arguments of the commands that talk to a database: the connection, the
//! migration directory and its variables, the history table, the lock.

use std::path::PathBuf;
use std::time::Duration;

use kubemigrate_sql::connect::ConnectOptions;
use kubemigrate_sql::history::HistoryTable;
use kubemigrate_sql::migrator::MigrateOptions;
use kubemigrate_sql::script::Variables;
use kubemigrate_sql::source::{Layout, Source, SourceOptions};

use crate::exit::{Exit, Failure};

/// How to reach the database.
#[derive(Clone, clap::Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnArgs {
    /// postgres://user:password@host:port/dbname?sslmode=…
    ///
    /// Each setting comes from the URL if it has it, else from the libpq variables
    /// (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE, PGSSLROOTCERT,
    /// PGAPPNAME, PGOPTIONS, PGCONNECT_TIMEOUT), else from DB_HOST, DB_PORT, DB_DATABASE, DB_USER,
    /// DB_PASSWORD, else the defaults (localhost, 5432, user postgres, database = user,
    /// sslmode prefer). So PGPASSWORD fills in a URL without a password.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
}

/// Whether `--database-url` is on the command line (before a `--`, after which
/// `exec`'s command begins). clap gives the flag and `DATABASE_URL` as one value.
fn database_url_flag_given() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| {
            a == "--database-url" || a.to_str().is_some_and(|s| s.starts_with("--database-url="))
        })
}

impl std::fmt::Debug for ConnArgs {
    /// The URL may hold the password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnArgs")
            .field("database_url", &self.database_url.as_ref().map(|_| "****"))
            .finish()
    }
}

impl ConnArgs {
    /// Resolves the connection settings.
    ///
    /// An empty `--database-url` is a mistake (`--database-url "$URL"` with `URL`
    /// unset), not a request for localhost:5432: exit 2. An empty `DATABASE_URL`
    /// variable counts as unset, as libpq's empty variables do.
    pub fn options(&self) -> Result<ConnectOptions, Failure> {
        if self
            .database_url
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
            && database_url_flag_given()
        {
            return Err(Failure::new(
                Exit::Usage,
                anyhow::anyhow!(
                    "--database-url: the URL is empty (an unset shell variable?); give postgres://…, \
                     or leave the flag out to use DATABASE_URL or the PG* variables"
                ),
            ));
        }
        ConnectOptions::resolve(self.database_url.as_deref(), |k| std::env::var(k).ok())
            .map_err(|e| Failure::new(Exit::Usage, anyhow::Error::new(e).context("--database-url")))
    }
}

/// Where the history lives.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "History")]
pub struct HistoryArgs {
    /// Schema of the history table (commands that write create it if missing).
    #[arg(long, default_value = kubemigrate_sql::history::DEFAULT_SCHEMA, value_name = "SCHEMA", value_parser = parse_history_name)]
    pub history_schema: String,
    /// Name of the history table.
    #[arg(long, default_value = kubemigrate_sql::history::DEFAULT_TABLE, value_name = "TABLE", value_parser = parse_history_name)]
    pub history_table: String,
}

/// A schema or table name PostgreSQL keeps as given (not empty, at most 63 bytes).
fn parse_history_name(text: &str) -> Result<String, String> {
    kubemigrate_sql::history::check_name(text)?;
    Ok(text.to_string())
}

impl HistoryArgs {
    /// The history table.
    pub fn table(&self) -> HistoryTable {
        HistoryTable {
            schema: self.history_schema.clone(),
            table: self.history_table.clone(),
        }
    }
}

/// Settings of commands that change the database: who they record, and how long
/// they wait for the migration lock.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "History and lock")]
pub struct RunArgs {
    /// Who applied the migrations, recorded in the history [default: $HOSTNAME, the pod name].
    #[arg(long, value_name = "NAME")]
    pub applied_by: Option<String>,
    /// Give up when another migrator holds the lock for this long (e.g. 30s, 10m).
    #[arg(long, default_value = "10m", value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub lock_timeout: Duration,
}

/// A duration such as `30s`, `10m` or `1h30m`. A negative one (`-5s`) is said to be
/// one: the flags that take a duration accept values that start with `-`, so clap
/// does not read `-5s` as an unknown flag.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim_start().starts_with('-') {
        return Err(format!(
            "{text:?} is negative; give a duration such as 30s, 10m or 1h30m"
        ));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}; give a duration such as 30s, 10m or 1h30m"))
}

impl RunArgs {
    /// Engine options with these settings and defaults for the rest.
    pub fn migrate_options(&self, history: &HistoryArgs) -> MigrateOptions {
        MigrateOptions {
            history: history.table(),
            applied_by: self.applied_by.clone().unwrap_or_else(default_applied_by),
            lock_timeout: self.lock_timeout,
            ..MigrateOptions::default()
        }
    }
}

/// `$HOSTNAME` (the pod name in Kubernetes), else the kernel's host name.
pub fn default_applied_by() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The migration directory argument, and the psql variables its files use.
#[derive(Debug, Clone, clap::Args)]
pub struct DirArgs {
    /// Directory holding the migrations: with the native layout, the *.sql files
    /// directly in it, run in byte-wise order of their names.
    #[arg(long, short = 'd', value_name = "DIR")]
    pub dir: PathBuf,
    /// How the directory's files are named, ordered and split: native (the
    /// default), flyway, golang-migrate, dbmate, goose, sqlx, diesel,
    /// postgres-migrations or supabase (see docs/adopting.md). E.g.
    /// `--layout diesel` runs the up.sql of each <version>_<name>/ folder.
    #[arg(long, default_value = "native", value_name = "NAME", value_parser = parse_layout)]
    pub layout: Layout,
    /// A directory with no migration for its layout is fine (exit 0, nothing to
    /// do) instead of an error (exit 2).
    #[arg(long)]
    pub allow_empty: bool,
    /// Let `\i` and `\ir` include files anywhere below DIR (which must hold --dir),
    /// not only below --dir; `\i` paths stay relative to --dir. Included files are
    /// checksummed with the file that includes them.
    #[arg(long, value_name = "DIR")]
    pub include_root: Option<PathBuf>,
    /// Set a psql variable for the files (`:NAME`, `:'NAME'`, `:"NAME"`, `\if :NAME`);
    /// repeatable. A `\set` in a file overrides it from there on.
    #[arg(long = "set", short = 'v', value_name = "NAME=VALUE", value_parser = parse_variable)]
    pub set: Vec<(String, String)>,
}

pub(crate) fn parse_layout(text: &str) -> Result<Layout, String> {
    Layout::parse(text)
}

pub(crate) fn parse_variable(text: &str) -> Result<(String, String), String> {
    Variables::parse_assignment(text)
}

impl DirArgs {
    /// The variables given with --set.
    pub fn variables(&self) -> Variables {
        let mut vars = Variables::new();
        for (name, value) in &self.set {
            vars.set(name.clone(), value.clone());
        }
        vars
    }

    /// The variables with psql's automatic ones for this connection: `DBNAME`,
    /// `USER`, `HOST`, `PORT` (set as psql sets them when it connects); a --set of
    /// the same name wins.
    pub fn variables_with(&self, conn: Option<&ConnectOptions>) -> Variables {
        let mut vars = Variables::new();
        if let Some(c) = conn {
            vars.set("DBNAME", c.dbname.clone());
            vars.set("USER", c.user.clone());
            vars.set("HOST", c.host.clone());
            vars.set("PORT", c.port.to_string());
        }
        for (name, value) in &self.set {
            vars.set(name.clone(), value.clone());
        }
        vars
    }

    /// Reads the directory: every file is read through once, so a file that cannot
    /// run as written stops the command before it touches the database.
    pub fn source(&self) -> Result<Source, Failure> {
        self.source_with(None)
    }

    /// [`DirArgs::source`] with psql's automatic variables of this connection (see
    /// [`DirArgs::variables_with`]).
    pub fn source_with(&self, conn: Option<&ConnectOptions>) -> Result<Source, Failure> {
        let options = SourceOptions {
            layout: self.layout,
            allow_empty: self.allow_empty,
            include_root: self.include_root.clone(),
        };
        Source::read(&self.dir, &self.variables_with(conn), &options)
            .map_err(|e| Failure::new(Exit::Usage, e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The plan's `layout:` values are the names `--layout` takes: a rendered Job
    /// passes them on as they are.
    #[test]
    fn plan_layouts_are_engine_layouts() {
        use kubemigrate_plan::Layout as P;
        let plan = [
            P::Native,
            P::Flyway,
            P::GolangMigrate,
            P::Dbmate,
            P::Goose,
            P::Sqlx,
            P::Diesel,
            P::PostgresMigrations,
            P::Supabase,
        ];
        let engine = kubemigrate_sql::source::Layout::ALL;
        assert_eq!(plan.len(), engine.len());
        for (p, e) in plan.iter().zip(engine) {
            assert_eq!(super::parse_layout(p.name()).unwrap(), e);
            let yaml: P = serde_json::from_value(serde_json::json!(e.name())).unwrap();
            assert_eq!(yaml, *p);
        }
    }
}
