//! The arguments of the commands that talk to a database: the connection, the
//! migration directory and its variables, the history table, the lock.

use std::path::PathBuf;
use std::time::Duration;

use kubemigrate_sql::connect::ConnectOptions;
use kubemigrate_sql::history::HistoryTable;
use kubemigrate_sql::migrator::MigrateOptions;
use kubemigrate_sql::script::Variables;
use kubemigrate_sql::source::{Layout, Source, SourceError, SourceOptions};

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
    #[arg(long, default_value = "10m", value_parser = kubemigrate_plan::parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub lock_timeout: Duration,
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

    /// [`DirArgs::source`] for a caller that lexes every file itself (the lint): a
    /// file whose lexing could tell nothing but its statement count is only hashed
    /// (see [`SourceOptions::defer_lex`]), so it is lexed once, not twice.
    pub fn source_lexed_later(&self) -> Result<Source, Failure> {
        let options = SourceOptions {
            defer_lex: true,
            ..self.source_options()
        };
        self.read_source_with(&self.variables(), &options)
    }

    /// The databases of `conn`, and the files read for them: with one database, with
    /// psql's automatic variables of its connection (`:DBNAME`, `:USER`, `:HOST`,
    /// `:PORT`); with several, read once, without them. The source and the
    /// variables, and the databases.
    ///
    /// # Errors
    /// A file that cannot be read as written (exit 2), then a bad database list or
    /// URL (reported after the files, as they are checked first).
    pub async fn read_for(
        &self,
        conn: &ManyConnArgs,
    ) -> Result<(Source, Variables, Databases), Failure> {
        self.read_with(conn.databases().await)
    }

    /// [`DirArgs::read_for`] with the databases already resolved.
    ///
    /// # Errors
    /// As [`DirArgs::read_for`].
    pub fn read_with(
        &self,
        databases: Result<Databases, Failure>,
    ) -> Result<(Source, Variables, Databases), Failure> {
        let one = match &databases {
            Ok(Databases::One(c)) => Some(c),
            _ => None,
        };
        let variables = self.variables_with(one);
        let source = self.read_source(&variables)?;
        Ok((source, variables, databases?))
    }

    /// What reads the directory for one database, on another thread, with `vars`
    /// (psql's automatic variables of that database: see
    /// [`DirArgs::variables_with`]). A read that fails is a usage error (exit 2),
    /// as for [`DirArgs::source_with`].
    pub fn reader(
        &self,
        vars: Variables,
    ) -> impl FnOnce() -> Result<Source, SourceError> + Send + 'static {
        let dir = self.dir.clone();
        // `migrate_reading` lexes the files only hashed unless they are all applied.
        let options = SourceOptions {
            defer_lex: true,
            ..self.source_options()
        };
        move || Source::read(&dir, &vars, &options)
    }

    /// How the directory is read: its layout, empty or not, where includes may reach.
    fn source_options(&self) -> SourceOptions {
        SourceOptions {
            layout: self.layout,
            allow_empty: self.allow_empty,
            include_root: self.include_root.clone(),
            defer_lex: false,
        }
    }

    /// The directory read with `vars`; a failure is a usage error (exit 2).
    fn read_source(&self, vars: &Variables) -> Result<Source, Failure> {
        self.read_source_with(vars, &self.source_options())
    }

    /// [`DirArgs::read_source`] with `options`.
    fn read_source_with(
        &self,
        vars: &Variables,
        options: &SourceOptions,
    ) -> Result<Source, Failure> {
        Source::read(&self.dir, vars, options).map_err(|e| Failure::new(Exit::Usage, e))
    }

    /// [`DirArgs::source`] with psql's automatic variables of this connection (see
    /// [`DirArgs::variables_with`]).
    pub fn source_with(&self, conn: Option<&ConnectOptions>) -> Result<Source, Failure> {
        self.read_source(&self.variables_with(conn))
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a failed unwrap is the failure the test reports"
    )]

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

/// How `sql migrate` and `sql status` reach their databases: one, as [`ConnArgs`],
/// or many (the flag repeated, or a file of URLs), run side by side.
#[derive(Clone, clap::Args)]
#[command(next_help_heading = "Connection")]
pub struct ManyConnArgs {
    /// postgres://user:password@host:port/dbname?sslmode=…; repeat the flag to run
    /// over several databases (see --concurrency).
    ///
    /// Each setting comes from the URL if it has it, else from the libpq variables
    /// (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE, PGSSLROOTCERT,
    /// PGAPPNAME, PGCONNECT_TIMEOUT), else from DB_HOST, DB_PORT, DB_DATABASE, DB_USER,
    /// DB_PASSWORD, else the defaults (localhost, 5432, user postgres, database = user,
    /// sslmode prefer). So PGPASSWORD fills in a URL without a password.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Vec<String>,
    /// Run over every database of this file: one URL a line (blank lines and lines
    /// starting with `#` are skipped). Settings a URL lacks come from the variables,
    /// as for --database-url.
    #[arg(long, value_name = "FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Run over the databases of these URLs, one a line (blank lines and lines
    /// starting with `#` skipped), each with its own credentials: as
    /// --database-url-file, from a variable (a plan's `urlsFromSecret` sets it from
    /// a Secret's key).
    #[arg(
        long,
        env = "KUBEMIGRATE_DATABASE_URLS",
        hide_env_values = true,
        value_name = "URLS"
    )]
    pub database_urls: Option<String>,
    /// Run over these databases of the server that --database-url (or the
    /// variables) name: database names separated by spaces, commas or lines (e.g.
    /// `--databases "$(cat tenants.txt)"`).
    #[arg(
        long,
        env = "KUBEMIGRATE_DATABASES",
        hide_env_values = true,
        value_name = "NAMES"
    )]
    pub databases: Option<String>,
    /// Run over the databases this query lists, run in the --database-url database:
    /// one column, the name (`SELECT datname FROM pg_database WHERE datname LIKE
    /// 'tenant_%'`), or columns named `name` and optionally `host` and `port`.
    #[arg(
        long,
        env = "KUBEMIGRATE_DATABASE_QUERY",
        hide_env_values = true,
        value_name = "SQL"
    )]
    pub database_query: Option<String>,
    /// Split the databases into N shards (the `i`-th database, in list order, or in
    /// name order for a query, is in shard `i mod N`) and run the one of
    /// --shard-index only, one database at a time: each pod of an Indexed Job runs
    /// its shard. Without an index, every shard runs, --concurrency at a time.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub shards: Option<u32>,
    /// The shard to run (0-based), with --shards [default: $JOB_COMPLETION_INDEX,
    /// the index Kubernetes gives each pod of an Indexed Job].
    #[arg(long, env = "JOB_COMPLETION_INDEX", value_name = "I")]
    pub shard_index: Option<u32>,
    /// With several databases: how many are migrated at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// With several databases: what a failed database does to the others.
    /// `continue` migrates every other one; `stop` starts no new one.
    #[arg(long, value_enum, default_value = "continue", value_name = "WHAT")]
    pub on_failure: crate::fanout::OnFailure,
    /// With several databases: write the entries of the databases that did not end
    /// well (failed, or not run after a stop) to FILE, one a line, as given (URLs,
    /// or names with --databases and --database-query); rerun only those with
    /// --database-url-file FILE (or --databases "$(cat FILE)"). Written with mode
    /// 0600 (the URLs may hold passwords); removed when every database ended well.
    #[arg(long, value_name = "FILE")]
    pub failed_list: Option<PathBuf>,
}

impl std::fmt::Debug for ManyConnArgs {
    /// The URLs may hold passwords: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManyConnArgs")
            .field("database_url", &self.database_url.len())
            .field("database_url_file", &self.database_url_file)
            .field(
                "database_urls",
                &self.database_urls.as_ref().map(|_| "****"),
            )
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// The databases `sql migrate` or `sql status` runs over.
pub enum Databases {
    /// One database, reported as before.
    One(ConnectOptions),
    /// Several (or a file of them): each run on its own, reported per database.
    Many(Vec<crate::fanout::Entry>),
}

impl ManyConnArgs {
    /// Resolves the databases: each URL's settings, filled in from the variables.
    ///
    /// # Errors
    /// Exit 2 for an empty URL, a URL that does not parse (named by its place: the
    /// flag's position, or the file's line; never the URL, which may hold a
    /// password), an unreadable or empty file, and --failed-list with one database.
    pub async fn databases(&self) -> Result<Databases, Failure> {
        let usage = |msg: String| Failure::new(Exit::Usage, anyhow::anyhow!(msg));
        let many = match (&self.databases, &self.database_query) {
            (Some(_), Some(_)) => {
                return Err(usage(
                    "give either --databases or --database-query, not both".into(),
                ));
            }
            (Some(names), None) => Some(self.named(names)?),
            (None, Some(query)) => Some(self.queried(query).await?),
            (None, None) => None,
        };
        let entries = match many {
            Some(entries) => entries,
            None => match self.listed()? {
                Databases::One(one) => {
                    if self.shards.is_some() {
                        return Err(usage("--shards needs several databases".into()));
                    }
                    return Ok(Databases::One(one));
                }
                Databases::Many(entries) => entries,
            },
        };
        if let (Some(n), Some(i)) = (self.shards, self.shard_index)
            && i >= n
        {
            return Err(usage(format!(
                "--shard-index {i} (or JOB_COMPLETION_INDEX) is not below --shards {n}"
            )));
        }
        Ok(Databases::Many(self.shard(crate::fanout::label(entries))))
    }

    /// The `--shard-index`-th of `--shards` shards, or every entry.
    fn shard(&self, entries: Vec<crate::fanout::Entry>) -> Vec<crate::fanout::Entry> {
        match (self.shards, self.shard_index) {
            (Some(n), Some(i)) => entries
                .into_iter()
                .enumerate()
                .filter(|(j, _)| u32::try_from(*j).is_ok_and(|j| j % n == i))
                .map(|(_, e)| e)
                .collect(),
            _ => entries,
        }
    }

    /// Whether one shard runs (then its databases run one at a time).
    pub fn in_shard(&self) -> bool {
        self.shards.is_some() && self.shard_index.is_some()
    }

    /// The connection --databases and --database-query start from.
    fn base(&self) -> Result<ConnectOptions, Failure> {
        if self.database_url.len() > 1
            || self.database_url_file.is_some()
            || self.database_urls.is_some()
        {
            return Err(Failure::new(
                Exit::Usage,
                anyhow::anyhow!(
                    "--databases and --database-query take one --database-url (the server), not several"
                ),
            ));
        }
        ConnArgs {
            database_url: self.database_url.first().cloned(),
        }
        .options()
    }

    fn named(&self, names: &str) -> Result<Vec<crate::fanout::Entry>, Failure> {
        let base = self.base()?;
        let names: Vec<&str> = names
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err(Failure::new(
                Exit::Usage,
                anyhow::anyhow!("--databases: no database name in it"),
            ));
        }
        Ok(names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut options = base.clone();
                options.dbname = (*name).to_string();
                crate::fanout::Entry::new(options, format!("--databases #{}", i + 1), name)
            })
            .collect())
    }

    /// Runs the query in the base database and reads its rows as text (the simple
    /// query protocol), sorted by host, port and name so that every pod of a Job
    /// shards the same list the same way.
    async fn queried(&self, query: &str) -> Result<Vec<crate::fanout::Entry>, Failure> {
        use tokio_postgres::SimpleQueryMessage;
        let base = self.base()?;
        let usage = |msg: String| Failure::new(Exit::Usage, anyhow::anyhow!(msg));
        let conn = base.connect().await.map_err(|e| {
            Failure::from_engine(kubemigrate_sql::migrator::MigrateError::Connect(e))
        })?;
        let messages = conn.client.simple_query(query).await.map_err(|e| {
            usage(format!(
                "--database-query: {}",
                kubemigrate_sql::migrator::describe(&e)
            ))
        })?;
        let mut rows = Vec::new();
        for m in messages {
            if let SimpleQueryMessage::Row(row) = m {
                let columns = row.columns();
                let col = |name: &str| columns.iter().position(|c| c.name() == name);
                let (name, host, port) = if columns.len() == 1 {
                    (Some(0), None, None)
                } else {
                    (col("name"), col("host"), col("port"))
                };
                let Some(name) = name else {
                    return Err(usage(
                        "--database-query: give one column (the name), or columns named name, host, port"
                            .into(),
                    ));
                };
                let get = |i: Option<usize>| i.and_then(|i| row.get(i)).map(str::to_string);
                let Some(dbname) = get(Some(name)).filter(|n| !n.is_empty()) else {
                    return Err(usage(format!(
                        "--database-query: row {} has no database name",
                        rows.len() + 1
                    )));
                };
                let mut options = base.clone();
                options.dbname = dbname;
                if let Some(h) = get(host).filter(|h| !h.is_empty()) {
                    options.host = h;
                }
                if let Some(p) = get(port) {
                    options.port = p.trim().parse().map_err(|_| {
                        usage(format!(
                            "--database-query: row {}: port {p:?} is not a port number",
                            rows.len() + 1
                        ))
                    })?;
                }
                rows.push(options);
            }
        }
        drop(conn);
        if rows.is_empty() {
            return Err(usage(
                "--database-query: the query listed no database".into(),
            ));
        }
        rows.sort_by(|a, b| (&a.host, a.port, &a.dbname).cmp(&(&b.host, b.port, &b.dbname)));
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, options)| {
                let given = options.dbname.clone();
                crate::fanout::Entry::new(
                    options,
                    format!("--database-query row {}", i + 1),
                    &given,
                )
            })
            .collect())
    }

    /// The databases of --database-url (repeated) and --database-url-file.
    fn listed(&self) -> Result<Databases, Failure> {
        let usage = |msg: String| Failure::new(Exit::Usage, anyhow::anyhow!(msg));
        let flag_given = database_url_flag_given();
        if self.database_url_file.is_some() && self.database_urls.is_some() {
            return Err(usage(
                "give either --database-url-file or --database-urls (KUBEMIGRATE_DATABASE_URLS), not both"
                    .into(),
            ));
        }
        if let Some(path) = &self.database_url_file {
            if flag_given {
                return Err(usage(
                    "give either --database-url or --database-url-file, not both".into(),
                ));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("--database-url-file {}: {e}", path.display())))?;
            let file = path.display().to_string();
            return url_lines(
                &text,
                &format!("{file}:"),
                &format!("--database-url-file {file}"),
            )
            .map(Databases::Many);
        }
        if let Some(text) = &self.database_urls {
            if flag_given {
                return Err(usage(
                    "give either --database-url or --database-urls (KUBEMIGRATE_DATABASE_URLS), not both"
                        .into(),
                ));
            }
            return url_lines(
                text,
                "--database-urls line ",
                "--database-urls (KUBEMIGRATE_DATABASE_URLS)",
            )
            .map(Databases::Many);
        }
        if self.database_url.len() <= 1 {
            if self.failed_list.is_some() {
                return Err(usage(
                    "--failed-list needs several databases (--database-url repeated, or --database-url-file)"
                        .into(),
                ));
            }
            let one = ConnArgs {
                database_url: self.database_url.first().cloned(),
            };
            return one.options().map(Databases::One);
        }
        let mut entries = Vec::new();
        for (n, url) in self.database_url.iter().enumerate() {
            let place = format!("--database-url #{}", n + 1);
            if url.trim().is_empty() {
                return Err(usage(format!(
                    "{place}: the URL is empty (an unset shell variable?)"
                )));
            }
            let options =
                resolve_url(url).map_err(|e| usage(format!("{place}: {}", redacted(&e, url))))?;
            entries.push(crate::fanout::Entry::new(options, place, url));
        }
        Ok(Databases::Many(entries))
    }
}

/// The entries of a list of URLs, one a line (blank lines and `#` comments
/// skipped). Line N (1-based) is named `{line_prefix}N`; `source` names the list
/// when it holds no URL.
fn url_lines(
    text: &str,
    line_prefix: &str,
    source: &str,
) -> Result<Vec<crate::fanout::Entry>, Failure> {
    let usage = |msg: String| Failure::new(Exit::Usage, anyhow::anyhow!(msg));
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let url = line.trim();
        if url.is_empty() || url.starts_with('#') {
            continue;
        }
        let place = format!("{line_prefix}{}", n + 1);
        let options =
            resolve_url(url).map_err(|e| usage(format!("{place}: {}", redacted(&e, url))))?;
        entries.push(crate::fanout::Entry::new(options, place, url));
    }
    if entries.is_empty() {
        return Err(usage(format!(
            "{source}: no URL in it (one postgres://… a line)"
        )));
    }
    Ok(entries)
}

fn resolve_url(url: &str) -> Result<ConnectOptions, String> {
    ConnectOptions::resolve(Some(url), |k| std::env::var(k).ok()).map_err(|e| e.to_string())
}

/// An error about a URL with the URL's password, if any, masked.
fn redacted(error: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => kubemigrate_sql::connect::redact(error, p),
        None => error.to_string(),
    }
}
