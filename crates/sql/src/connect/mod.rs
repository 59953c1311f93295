//! Where to connect, and how: connection options resolved from a URL and the
//! environment, TLS over rustls, and passwords kept out of every message.
//!
//! # Precedence
//! Each field is taken from the first source that sets it:
//! 1. the URL (`--database-url`, or `DATABASE_URL`);
//! 2. the libpq variables (`PGHOST`, `PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`,
//!    `PGSSLMODE`, `PGSSLROOTCERT`, `PGAPPNAME`, `PGOPTIONS`, `PGCONNECT_TIMEOUT`);
//! 3. the variables the Terraform module gives its control-plane job (`DB_HOST`,
//!    `DB_PORT`, `DB_DATABASE`, `DB_USER`, `DB_PASSWORD`; `DB_SCHEMA` is passed on to
//!    commands, not used to connect);
//! 4. defaults: host `localhost`, port 5432, user `postgres`, database = user,
//!    sslmode `prefer`, application_name `kubemigrate`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::resolve::ResolveError;

mod connection;
mod tls;
mod url;

pub use connection::{Connection, Notice, SERVER_KEEPALIVES};
pub use url::redact;
use url::{Partial, encode, parse_url};

/// A value that must never be printed: its `Debug` and `Display` show `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send it (the server, a child's env).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

pub use kubemigrate_contract::SslMode;
use kubemigrate_contract::env;

/// A connection setting that cannot be used (bad URL, bad port, bad sslmode).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The host name did not resolve (see [`crate::resolve`]).
    #[error("cannot connect to {target}: {cause}")]
    Resolve {
        /// The masked URL.
        target: String,
        /// The host name.
        host: String,
        /// The resolver's error; it names the host and what was tried.
        cause: Box<ResolveError>,
    },
    /// The TCP or Unix connection failed (refused, unreachable, reset).
    #[error("cannot connect to {target}: {cause}")]
    Io {
        /// The masked URL.
        target: String,
        /// The socket error.
        cause: std::io::Error,
    },
    /// The connection or login took longer than the connect timeout.
    #[error("cannot connect to {target}: no answer within {}s", .after.as_secs_f64().ceil())]
    Timeout {
        /// The masked URL.
        target: String,
        /// The timeout.
        after: Duration,
    },
    /// TLS could not be set up (bad root certificate file, handshake failure).
    #[error("cannot connect to {target}: TLS: {message}")]
    Tls {
        /// The masked URL.
        target: String,
        /// What failed.
        message: String,
    },
    /// The server refused the connection with an error (authentication, unknown database, starting up).
    #[error("cannot connect to {target}: {message} (SQLSTATE {code})")]
    Server {
        /// The masked URL.
        target: String,
        /// SQLSTATE.
        code: String,
        /// The server's message.
        message: String,
    },
    /// Any other client or protocol error.
    #[error("cannot connect to {target}: {message}")]
    Other {
        /// The masked URL.
        target: String,
        /// What failed.
        message: String,
    },
}

impl ConnectError {
    /// True when retrying cannot help: authentication failed, the database does not
    /// exist, or TLS is misconfigured.
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectError::Server { code, .. } => {
                matches!(code.as_str(), "28P01" | "28000" | "3D000" | "42501")
            }
            ConnectError::Tls { .. } => true,
            _ => false,
        }
    }
}

/// Everything needed to open a connection. Build it with [`ConnectOptions::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Host name, IP address, or a Unix socket directory (starting with `/`).
    pub host: String,
    /// TCP port (also names the Unix socket file).
    pub port: u16,
    /// Database name.
    pub dbname: String,
    /// User name.
    pub user: String,
    /// Password, if any.
    pub password: Option<Secret>,
    /// TLS mode.
    pub ssl_mode: SslMode,
    /// PEM file of trusted roots for verify-ca / verify-full (else the system's roots).
    pub ssl_root_cert: Option<PathBuf>,
    /// `application_name`, shown in `pg_stat_activity`.
    pub application_name: String,
    /// Server options sent at connection start, as libpq's `options` (URL
    /// parameter) or `PGOPTIONS`: e.g. `-c search_path=storage,public`. They are the
    /// session's defaults, so they hold for every file (`RESET ALL` between files
    /// returns to them).
    pub options: Option<String>,
    /// The schema the application uses (`DB_SCHEMA`), passed on to commands; the SQL
    /// engine does not change `search_path`.
    pub schema: Option<String>,
    /// How long one connection attempt may take, login included.
    pub connect_timeout: Duration,
}

/// The default `application_name`.
pub const DEFAULT_APPLICATION_NAME: &str = "kubemigrate";

/// The longest host name DNS allows.
pub const MAX_HOST_NAME: usize = 253;

/// A host name fits DNS (at most 253 bytes), and a Unix socket directory leaves room
/// for the socket's name in the 107 bytes a socket path may have. The host is not
/// repeated: from a URL without `@` it could be a password.
fn check_host(host: &str, port: u16) -> Result<(), ConfigError> {
    if host.starts_with('/') {
        let path = format!("{host}/.s.PGSQL.{port}").len();
        if path > 107 {
            return Err(ConfigError(format!(
                "the socket directory is {} bytes; with the socket's name ({path} bytes) it must fit in 107",
                host.len()
            )));
        }
    } else if host.len() > MAX_HOST_NAME {
        return Err(ConfigError(format!(
            "the host name is {} bytes; a host name is at most {MAX_HOST_NAME}",
            host.len()
        )));
    }
    Ok(())
}

impl ConnectOptions {
    /// Resolves options from a URL (if any) and the environment, as described in the
    /// [module docs](self). `env` looks up a variable (pass `|k| std::env::var(k).ok()`).
    ///
    /// # Errors
    /// A malformed URL, a port that is not a number, an unknown sslmode.
    pub fn resolve(
        url: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let from_url = match url.filter(|u| !u.is_empty()) {
            Some(u) => parse_url(u)?,
            None => Partial::default(),
        };
        let from_pg = Partial {
            host: get(env::PGHOST),
            port: get(env::PGPORT),
            dbname: get(env::PGDATABASE),
            user: get(env::PGUSER),
            password: get(env::PGPASSWORD),
            ssl_mode: get(env::PGSSLMODE),
            ssl_root_cert: get(env::PGSSLROOTCERT),
            application_name: get(env::PGAPPNAME),
            options: get(env::PGOPTIONS),
            schema: None,
            connect_timeout: get(env::PGCONNECT_TIMEOUT),
        };
        let from_db = Partial {
            host: get(env::DB_HOST),
            port: get(env::DB_PORT),
            dbname: get(env::DB_DATABASE),
            user: get(env::DB_USER),
            password: get(env::DB_PASSWORD),
            schema: get(env::DB_SCHEMA),
            ..Partial::default()
        };
        let p = from_url.or(from_pg).or(from_db);
        let port = match p.port {
            Some(s) => s.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                // The value is not echoed: from a URL without `@` it could be a password.
                ConfigError("the port must be a number from 1 to 65535".to_string())
            })?,
            None => 5432,
        };
        let host = p.host.unwrap_or_else(|| "localhost".to_string());
        check_host(&host, port)?;
        let user = p.user.unwrap_or_else(|| "postgres".to_string());
        let connect_timeout = match p.connect_timeout {
            Some(s) => Duration::from_secs(s.parse::<u64>().map_err(|_| {
                ConfigError(format!("connect_timeout {s:?} is not a number of seconds"))
            })?),
            None => Duration::from_secs(10),
        };
        Ok(ConnectOptions {
            host,
            port,
            dbname: p.dbname.unwrap_or_else(|| user.clone()),
            user,
            password: p.password.map(Secret),
            // `allow` works as `prefer`.
            ssl_mode: p
                .ssl_mode
                .as_deref()
                .unwrap_or("prefer")
                .parse::<SslMode>()
                .map_err(|e| ConfigError(e.to_string()))?
                .effective(),
            ssl_root_cert: p.ssl_root_cert.map(PathBuf::from),
            application_name: p
                .application_name
                .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_string()),
            options: p.options,
            schema: p.schema,
            connect_timeout,
        })
    }

    /// The connection as a URL with the password shown as `****`: safe to print.
    pub fn masked_url(&self) -> String {
        self.url(false)
    }

    /// The connection as a URL with the real password, for a child process's
    /// `DATABASE_URL`. Never print it.
    pub fn url_with_password(&self) -> Secret {
        Secret(self.url(true))
    }

    fn url(&self, reveal: bool) -> String {
        let mut s = format!("postgres://{}", encode(&self.user));
        if let Some(pw) = &self.password {
            s.push(':');
            s.push_str(&if reveal {
                encode(pw.expose())
            } else {
                "****".into()
            });
        }
        s.push('@');
        if self.host.starts_with('/') {
            s.push_str(&format!(
                ":{}/{}?host={}",
                self.port,
                encode(&self.dbname),
                encode(&self.host)
            ));
        } else if self.host.contains(':') {
            s.push_str(&format!(
                "[{}]:{}/{}",
                self.host,
                self.port,
                encode(&self.dbname)
            ));
        } else {
            s.push_str(&format!(
                "{}:{}/{}",
                self.host,
                self.port,
                encode(&self.dbname)
            ));
        }
        if self.ssl_mode != SslMode::Prefer {
            s.push(if s.contains('?') { '&' } else { '?' });
            s.push_str("sslmode=");
            s.push_str(self.ssl_mode.as_str());
        }
        if let Some(options) = &self.options {
            s.push(if s.contains('?') { '&' } else { '?' });
            s.push_str("options=");
            s.push_str(&encode(options));
        }
        s
    }

    /// The environment a migration command gets: `DATABASE_URL`, the libpq
    /// variables and the module's `DB_*` variables. Values include the password.
    ///
    /// `PGSSLMODE` (like `sslmode` in the URL) is left out when it is libpq's default,
    /// `prefer`: node-postgres reads `prefer` as "TLS required" and would fail on a
    /// server without TLS, where libpq and the Terraform module's Jobs went on in
    /// plain text.
    pub fn env_vars(&self) -> Vec<(&'static str, Secret)> {
        let mut vars = vec![
            (env::DATABASE_URL, self.url_with_password()),
            (env::PGHOST, Secret::new(&self.host)),
            (env::PGPORT, Secret::new(self.port.to_string())),
            (env::PGDATABASE, Secret::new(&self.dbname)),
            (env::PGUSER, Secret::new(&self.user)),
            (env::PGAPPNAME, Secret::new(&self.application_name)),
            (env::DB_HOST, Secret::new(&self.host)),
            (env::DB_PORT, Secret::new(self.port.to_string())),
            (env::DB_DATABASE, Secret::new(&self.dbname)),
            (env::DB_USER, Secret::new(&self.user)),
        ];
        if let Some(pw) = &self.password {
            vars.push((env::PGPASSWORD, pw.clone()));
            vars.push((env::DB_PASSWORD, pw.clone()));
        }
        if self.ssl_mode != SslMode::Prefer {
            vars.push((env::PGSSLMODE, Secret::new(self.ssl_mode.as_str())));
        }
        if let Some(cert) = &self.ssl_root_cert {
            vars.push((env::PGSSLROOTCERT, Secret::new(cert.display().to_string())));
        }
        if let Some(schema) = &self.schema {
            vars.push((env::DB_SCHEMA, Secret::new(schema)));
        }
        vars
    }
}

#[cfg(test)]
mod tests;
