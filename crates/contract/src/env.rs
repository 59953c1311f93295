//! The environment variables of a runner's connection: what kubemigrate reads, what
//! it sets in a Job's containers and for `exec`'s command, and what a local run
//! keeps this machine from lending a target.

/// A libpq connection URL (`postgres://user@host:port/db`).
pub const DATABASE_URL: &str = "DATABASE_URL";

/// The names of a fan-out target's databases (spaces, commas or lines apart), on
/// the server of the connection variables: `sql migrate --databases`.
pub const DATABASES: &str = "KUBEMIGRATE_DATABASES";

/// The query listing a fan-out target's databases: `sql migrate --database-query`.
pub const DATABASE_QUERY: &str = "KUBEMIGRATE_DATABASE_QUERY";

/// A fan-out target's databases as connection URLs, one a line, each with its own
/// credentials (from a Secret): `sql migrate --database-urls`.
pub const DATABASE_URLS: &str = "KUBEMIGRATE_DATABASE_URLS";

/// The Terraform module's variables, which kubemigrate reads and sets: host, port,
/// database, schema, user, password.
pub const DB_VARS: &[&str] = &[
    DB_HOST,
    DB_PORT,
    DB_DATABASE,
    DB_SCHEMA,
    DB_USER,
    DB_PASSWORD,
];

/// The module's host.
pub const DB_HOST: &str = "DB_HOST";
/// The module's port.
pub const DB_PORT: &str = "DB_PORT";
/// The module's database.
pub const DB_DATABASE: &str = "DB_DATABASE";
/// The module's schema (db-migrate reads it; kubemigrate passes it on).
pub const DB_SCHEMA: &str = "DB_SCHEMA";
/// The module's user.
pub const DB_USER: &str = "DB_USER";
/// The module's password.
pub const DB_PASSWORD: &str = "DB_PASSWORD";

/// libpq's variables that kubemigrate reads and sets (for `exec`'s command, and in
/// a Job's containers).
pub const PG_VARS: &[&str] = &[
    PGHOST,
    PGPORT,
    PGDATABASE,
    PGUSER,
    PGPASSWORD,
    PGSSLMODE,
    PGSSLROOTCERT,
    PGAPPNAME,
];

/// libpq's host.
pub const PGHOST: &str = "PGHOST";
/// libpq's port.
pub const PGPORT: &str = "PGPORT";
/// libpq's database.
pub const PGDATABASE: &str = "PGDATABASE";
/// libpq's user.
pub const PGUSER: &str = "PGUSER";
/// libpq's password.
pub const PGPASSWORD: &str = "PGPASSWORD";
/// libpq's sslmode.
pub const PGSSLMODE: &str = "PGSSLMODE";
/// libpq's root certificate file.
pub const PGSSLROOTCERT: &str = "PGSSLROOTCERT";
/// libpq's application_name.
pub const PGAPPNAME: &str = "PGAPPNAME";
/// libpq's server options sent at connection start (`-c search_path=app,public`).
pub const PGOPTIONS: &str = "PGOPTIONS";
/// libpq's connect timeout, in seconds.
pub const PGCONNECT_TIMEOUT: &str = "PGCONNECT_TIMEOUT";

/// libpq variables that kubemigrate does not set, but that a libpq program run by a
/// target (psql, a driver) would read; kubemigrate itself reads
/// [`PGCONNECT_TIMEOUT`].
pub const PG_OTHER_VARS: &[&str] = &[
    PGCONNECT_TIMEOUT,
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGHOSTADDR",
    "PGPASSFILE",
    PGOPTIONS,
    "PGSSLCERT",
    "PGSSLKEY",
    "PGTARGETSESSIONATTRS",
];

/// What kubemigrate sets from a target's `database`: a plan's `env` may not set
/// them.
pub fn reserved() -> impl Iterator<Item = &'static str> {
    std::iter::once(DATABASE_URL)
        .chain(PG_VARS.iter().copied())
        .chain(DB_VARS.iter().copied())
}

/// What a local run never takes from this machine's environment for a target:
/// everything that could point it at another database.
pub fn scrubbed() -> impl Iterator<Item = &'static str> {
    reserved()
        .chain(PG_OTHER_VARS.iter().copied())
        .chain(FANOUT_VARS.iter().copied())
}

/// The variables of a fan-out target's runner: its databases, and the index
/// Kubernetes gives each pod of an Indexed Job (the runner's shard).
pub const FANOUT_VARS: &[&str] = &[DATABASES, DATABASE_QUERY, JOB_COMPLETION_INDEX];

/// The index of a pod in an Indexed Job, set by Kubernetes.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_listed_once() {
        let all: Vec<&str> = scrubbed().collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(all.len(), unique.len());
        assert!(reserved().any(|v| v == PGAPPNAME));
        assert!(reserved().any(|v| v == PGSSLROOTCERT));
        assert!(!reserved().any(|v| v == "PGOPTIONS"));
        assert!(!reserved().any(|v| v == PGCONNECT_TIMEOUT));
        assert!(scrubbed().any(|v| v == PGCONNECT_TIMEOUT));
    }
}
