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
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::sync::mpsc;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client};

use crate::resolve::{self, ResolveError, Resolver};

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

#[derive(Default)]
struct Partial {
    host: Option<String>,
    port: Option<String>,
    dbname: Option<String>,
    user: Option<String>,
    password: Option<String>,
    ssl_mode: Option<String>,
    ssl_root_cert: Option<String>,
    application_name: Option<String>,
    options: Option<String>,
    schema: Option<String>,
    connect_timeout: Option<String>,
}

impl Partial {
    fn or(self, other: Partial) -> Partial {
        Partial {
            host: self.host.or(other.host),
            port: self.port.or(other.port),
            dbname: self.dbname.or(other.dbname),
            user: self.user.or(other.user),
            password: self.password.or(other.password),
            ssl_mode: self.ssl_mode.or(other.ssl_mode),
            ssl_root_cert: self.ssl_root_cert.or(other.ssl_root_cert),
            application_name: self.application_name.or(other.application_name),
            options: self.options.or(other.options),
            schema: self.schema.or(other.schema),
            connect_timeout: self.connect_timeout.or(other.connect_timeout),
        }
    }
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

    /// Opens a connection and drives it on a background task.
    ///
    /// Server notices (`RAISE NOTICE`) arrive on the returned receiver.
    ///
    /// # Errors
    /// See [`ConnectError`]; [`ConnectError::is_permanent`] tells whether a retry can help.
    pub async fn connect(&self) -> Result<Connection, ConnectError> {
        // As libpq: 0 waits as long as it takes, and less than 2 s counts as 2 s.
        if self.connect_timeout.is_zero() {
            return self.connect_inner().await;
        }
        let after = self.connect_timeout.max(Duration::from_secs(2));
        match tokio::time::timeout(after, self.connect_inner()).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout {
                target: self.masked_url(),
                after,
            }),
        }
    }

    async fn connect_inner(&self) -> Result<Connection, ConnectError> {
        let target = self.masked_url();
        let mut config = tokio_postgres::Config::new();
        config
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name);
        if let Some(options) = &self.options {
            config.options(options);
        }
        config.ssl_mode(match self.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        if let Some(pw) = &self.password {
            config.password(pw.expose());
        }
        if self.host.starts_with('/') {
            let path = format!("{}/.s.PGSQL.{}", self.host, self.port);
            let stream = tokio::net::UnixStream::connect(&path)
                .await
                .map_err(|cause| ConnectError::Io {
                    target: target.clone(),
                    cause,
                })?;
            // TLS over a Unix socket is pointless; libpq skips it too.
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, conn) = config
                .connect_raw(stream, tokio_postgres::NoTls)
                .await
                .map_err(|e| classify(&target, e))?;
            return Ok(spawn(client, conn));
        }
        let addrs = Resolver::system()
            .with_limit(resolve_limit(self.connect_timeout))
            .lookup(&self.host, self.port)
            .await
            .map_err(|cause| ConnectError::Resolve {
                target: target.clone(),
                host: self.host.clone(),
                cause: Box::new(cause),
            })?;
        let mut last_io = None;
        for addr in addrs {
            let stream = match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => s,
                Err(e) => {
                    last_io = Some(e);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            keep_alive(&stream);
            return match self.tls_config(&target)? {
                None => {
                    let (client, conn) = config
                        .connect_raw(stream, tokio_postgres::NoTls)
                        .await
                        .map_err(|e| classify(&target, e))?;
                    Ok(keep_alive_server(spawn(client, conn)).await)
                }
                Some(tls) => {
                    let mut make = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
                    let connector = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<
                        tokio::net::TcpStream,
                    >>::make_tls_connect(&mut make, &self.host)
                    .map_err(|e| ConnectError::Tls {
                        target: target.clone(),
                        message: e.to_string(),
                    })?;
                    let (client, conn) = config
                        .connect_raw(stream, connector)
                        .await
                        .map_err(|e| classify(&target, e))?;
                    Ok(keep_alive_server(spawn(client, conn)).await)
                }
            };
        }
        Err(ConnectError::Io {
            target,
            cause: last_io
                .unwrap_or_else(|| std::io::Error::other("the host name has no addresses")),
        })
    }

    fn tls_config(&self, target: &str) -> Result<Option<rustls::ClientConfig>, ConnectError> {
        let tls_err = |message: String| ConnectError::Tls {
            target: target.to_string(),
            message,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(e.to_string()))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.ssl_mode {
            SslMode::Disable => return Ok(None),
            SslMode::Allow | SslMode::Prefer | SslMode::Require => {
                Arc::new(NoVerify(provider.signature_verification_algorithms))
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let mut roots = rustls::RootCertStore::empty();
                match &self.ssl_root_cert {
                    Some(path) => {
                        let certs = CertificateDer::pem_file_iter(path)
                            .map_err(|e| tls_err(format!("reading {}: {e}", path.display())))?;
                        for cert in certs {
                            let cert = cert
                                .map_err(|e| tls_err(format!("reading {}: {e}", path.display())))?;
                            roots
                                .add(cert)
                                .map_err(|e| tls_err(format!("{}: {e}", path.display())))?;
                        }
                    }
                    None => {
                        for cert in rustls_native_certs::load_native_certs().certs {
                            let _ = roots.add(cert);
                        }
                    }
                }
                if roots.is_empty() {
                    return Err(tls_err(
                        "no trusted root certificates: set sslrootcert or PGSSLROOTCERT".into(),
                    ));
                }
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| tls_err(e.to_string()))?;
                if self.ssl_mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(IgnoreHostName(webpki))
                }
            }
        };
        Ok(Some(
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth(),
        ))
    }
}

/// A notice or warning the server sent (`RAISE NOTICE`, "there is no transaction in progress").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// SQLSTATE.
    pub code: String,
    /// `SEVERITY: message`.
    pub text: String,
}

/// An open connection: the client, and the server's notices.
pub struct Connection {
    /// The client.
    pub client: Client,
    /// Notices the server sent, in order.
    pub notices: mpsc::UnboundedReceiver<Notice>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

/// The server's TCP keepalives for a session: a client gone without a FIN (its
/// node lost, its pod's network torn down) is found after 10 s of silence and 3
/// probes 5 s apart, and its session ends, rolling back and releasing the
/// migration lock, instead of after the system's default of two hours. Set on
/// every connection (as SQL, not as a startup option, which PgBouncer refuses),
/// and again after each file's `RESET ALL`. The server ignores them on a Unix
/// socket.
pub const SERVER_KEEPALIVES: &str =
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// Asks the server for [`SERVER_KEEPALIVES`]; a server that refuses (a pooler, say)
/// leaves the connection as it was.
async fn keep_alive_server(conn: Connection) -> Connection {
    let _ = conn.client.batch_execute(SERVER_KEEPALIVES).await;
    conn
}

/// TCP keepalives on a connection: a server (or a network) gone without a word is
/// noticed after 10 s of silence and 3 probes 5 s apart, and the read waiting for
/// it fails, instead of hanging for the system's default of two hours. Unsent data
/// gives up after as long (TCP_USER_TIMEOUT). Best effort: a socket that refuses
/// the options works as before.
fn keep_alive(stream: &tokio::net::TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    let _ = socket.set_tcp_keepalive(&keepalive);
    let _ = socket.set_tcp_user_timeout(Some(Duration::from_secs(25)));
}

fn spawn<S, T>(client: Client, mut conn: tokio_postgres::Connection<S, T>) -> Connection
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notice(n) = message {
                let _ = tx.send(Notice {
                    code: n.code().code().to_string(),
                    text: format!("{}: {}", n.severity(), n.message()),
                });
            }
        }
    });
    Connection {
        client,
        notices: rx,
    }
}

fn classify(target: &str, e: tokio_postgres::Error) -> ConnectError {
    if let Some(db) = e.as_db_error() {
        return ConnectError::Server {
            target: target.to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
        };
    }
    // The whole chain, each cause once ("error performing TLS handshake: server does
    // not support TLS").
    let mut text = e.to_string();
    let mut tls = text.contains("TLS");
    let mut io_kind = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            // rustls reports certificate problems inside an io::Error.
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                tls = true;
            } else if io_kind.is_none() {
                io_kind = Some(io.kind());
            }
        }
        if s.downcast_ref::<rustls::Error>().is_some() {
            tls = true;
        }
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    if tls {
        return ConnectError::Tls {
            target: target.to_string(),
            message: text,
        };
    }
    if let Some(kind) = io_kind {
        return ConnectError::Io {
            target: target.to_string(),
            cause: std::io::Error::new(kind, text),
        };
    }
    ConnectError::Other {
        target: target.to_string(),
        message: text,
    }
}

/// How long resolving the host may take: most of the connect timeout, so that a
/// DNS failure is reported as such rather than as a connect timeout.
fn resolve_limit(connect_timeout: Duration) -> Duration {
    if connect_timeout.is_zero() {
        return resolve::DEFAULT_LIMIT;
    }
    (connect_timeout.max(Duration::from_secs(2)) * 4 / 5).min(resolve::DEFAULT_LIMIT)
}

/// Accepts any certificate (sslmode prefer/require do not verify, as in libpq),
/// while still checking that the handshake signatures are valid.
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// verify-ca: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct IgnoreHostName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Parses `postgres://user:password@host:port/dbname?param=value`.
fn parse_url(url: &str) -> Result<Partial, ConfigError> {
    let bad = |why: &str| ConfigError(format!("invalid database URL: {why}"));
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| bad("it must start with postgres:// or postgresql://"))?;
    // The user and password end at the last `@`, so a password may hold `/`, `?`
    // or `:` unescaped (an `@` in a query value must be written %40).
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let mut p = Partial::default();
    let hostport = match userinfo.map(|u| (u, authority)) {
        Some((userinfo, hostport)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, pw)) => (u, Some(pw)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                p.user = Some(decode(user).ok_or_else(|| bad("bad %-escape in the user name"))?);
            }
            if let Some(pw) = password {
                // Never echo the password, even in an error.
                p.password = Some(decode(pw).ok_or_else(|| bad("bad %-escape in the password"))?);
            }
            hostport
        }
        None => authority,
    };
    if hostport.contains(',') {
        return Err(bad("several hosts are not supported; give one"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the IPv6 address"))?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (hostport, None),
        }
    };
    if !host.is_empty() {
        p.host = Some(decode(host).ok_or_else(|| bad("bad %-escape in the host"))?);
    }
    p.port = port.filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(path) = path.filter(|s| !s.is_empty()) {
        p.dbname = Some(decode(path).ok_or_else(|| bad("bad %-escape in the database name"))?);
    }
    for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value =
            decode(value).ok_or_else(|| bad(&format!("bad %-escape in parameter {key}")))?;
        let slot = match key {
            "sslmode" => &mut p.ssl_mode,
            "sslrootcert" => &mut p.ssl_root_cert,
            "application_name" => &mut p.application_name,
            "options" => &mut p.options,
            "connect_timeout" => &mut p.connect_timeout,
            "host" => &mut p.host,
            "port" => &mut p.port,
            "user" => &mut p.user,
            "password" => &mut p.password,
            "dbname" => &mut p.dbname,
            other if other.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                return Err(bad(&format!("unsupported parameter {other:?}")));
            }
            _ => return Err(bad("an unsupported parameter")),
        };
        *slot = Some(value);
    }
    Ok(p)
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `text` with `password` replaced by `****`, as written and %-encoded (as in a URL),
/// so that a command line that carries the connection can be printed and recorded.
pub fn redact(text: &str, password: &str) -> String {
    if password.is_empty() {
        return text.to_string();
    }
    let encoded = encode(password);
    let mut out = text.replace(password, "****");
    for form in [encoded.clone(), encoded.to_ascii_lowercase()] {
        if form != password {
            out = out.replace(&form, "****");
        }
    }
    out
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn url_fields_and_params() {
        let o = ConnectOptions::resolve(
            Some("postgresql://app%40x:p%40ss%3Aword@db.example:6543/my%20db?sslmode=verify-full&application_name=job"),
            env(&[]),
        )
        .unwrap();
        assert_eq!(o.user, "app@x");
        assert_eq!(o.password.as_ref().unwrap().expose(), "p@ss:word");
        assert_eq!(
            (o.host.as_str(), o.port, o.dbname.as_str()),
            ("db.example", 6543, "my db")
        );
        assert_eq!(o.ssl_mode, SslMode::VerifyFull);
        assert_eq!(o.application_name, "job");
    }

    #[test]
    fn options_from_the_url_win_over_pgoptions_and_are_kept_in_the_url() {
        let e = env(&[("PGOPTIONS", "-c search_path=env")]);
        let o = ConnectOptions::resolve(
            Some("postgres://u@h/d?options=-c%20search_path%3Dstorage%2Cpublic"),
            &e,
        )
        .unwrap();
        assert_eq!(o.options.as_deref(), Some("-c search_path=storage,public"));
        assert_eq!(
            o.masked_url(),
            "postgres://u@h:5432/d?options=-c%20search_path%3Dstorage%2Cpublic"
        );
        let o = ConnectOptions::resolve(Some("postgres://u@h/d"), &e).unwrap();
        assert_eq!(o.options.as_deref(), Some("-c search_path=env"));
    }

    #[test]
    fn precedence_is_url_then_pg_then_db_then_defaults() {
        let e = env(&[
            ("PGHOST", "pghost"),
            ("PGPASSWORD", "pgpw"),
            ("DB_HOST", "dbhost"),
            ("DB_PORT", "27010"),
            ("DB_USER", "dbuser"),
            ("DB_SCHEMA", "tenant_management"),
        ]);
        let o = ConnectOptions::resolve(Some("postgres://urluser@/urldb"), &e).unwrap();
        assert_eq!(o.user, "urluser"); // URL wins over DB_USER
        assert_eq!(o.host, "pghost"); // PGHOST wins over DB_HOST
        assert_eq!(o.port, 27010); // only DB_PORT sets it
        assert_eq!(o.dbname, "urldb");
        assert_eq!(o.password.unwrap().expose(), "pgpw");
        assert_eq!(o.schema.as_deref(), Some("tenant_management"));
        let d = ConnectOptions::resolve(None, env(&[])).unwrap();
        assert_eq!(
            (d.host.as_str(), d.port, d.user.as_str()),
            ("localhost", 5432, "postgres")
        );
        assert_eq!(d.dbname, "postgres");
        assert_eq!(d.application_name, "kubemigrate");
        assert_eq!(d.ssl_mode, SslMode::Prefer);
    }

    #[test]
    fn masked_url_never_shows_the_password() {
        let o = ConnectOptions::resolve(
            Some("postgres://u:s3cr%2Ft@h:1/d?sslmode=require"),
            env(&[]),
        )
        .unwrap();
        assert_eq!(o.masked_url(), "postgres://u:****@h:1/d?sslmode=require");
        assert_eq!(
            o.url_with_password().expose(),
            "postgres://u:s3cr%2Ft@h:1/d?sslmode=require"
        );
        assert!(!format!("{o:?}").contains("s3cr"));
        let reparsed =
            ConnectOptions::resolve(Some(o.url_with_password().expose()), env(&[])).unwrap();
        assert_eq!(reparsed, o);
    }

    #[test]
    fn bad_urls_are_one_line_errors_without_the_password() {
        for (url, want) in [
            ("mysql://u:pw@h/d", "must start with postgres://"),
            ("postgres://u:pw@h:notaport/d", "the port must be a number"),
            // A forgotten host: the password would be read as the port.
            ("postgres://u:s3cretpw", "the port must be a number"),
            (
                "postgres://u:pw@h:0/d",
                "the port must be a number from 1 to 65535",
            ),
            ("postgres://u:ab?cdpw@h/d?x-y=1", "an unsupported parameter"),
            ("postgres://u:p%+1w@h/d", "bad %-escape in the password"),
            ("postgres://u:pw@h/d?sslmode=maybe", "sslmode \"maybe\""),
            (
                "postgres://u:pw@h/d?frobnicate=1",
                "unsupported parameter \"frobnicate\"",
            ),
            ("postgres://u:p%zzw@h/d", "bad %-escape in the password"),
            ("postgres://u:pw@a,b/d", "several hosts"),
        ] {
            let err = ConnectOptions::resolve(Some(url), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{url}: {err}");
            assert!(
                !err.contains("pw") || want.contains("pw"),
                "{url} leaked: {err}"
            );
        }
    }

    #[test]
    fn passwords_may_hold_slashes_question_marks_and_colons() {
        let o =
            ConnectOptions::resolve(Some("postgres://app:a/b?c:d@db:5433/app"), env(&[])).unwrap();
        assert_eq!(o.password.as_ref().map(Secret::expose), Some("a/b?c:d"));
        assert_eq!(
            (o.host.as_str(), o.port, o.dbname.as_str()),
            ("db", 5433, "app")
        );
        assert_eq!(o.masked_url(), "postgres://app:****@db:5433/app");
        assert_eq!(
            redact("x postgres://app:a%2Fb%3Fc%3Ad@db", "a/b?c:d"),
            "x postgres://app:****@db"
        );
        assert_eq!(redact("--pw=a/b?c:d", "a/b?c:d"), "--pw=****");
    }

    #[test]
    fn ipv6_and_unix_socket_hosts() {
        let o = ConnectOptions::resolve(Some("postgres://u@[::1]:5433/d"), env(&[])).unwrap();
        assert_eq!((o.host.as_str(), o.port), ("::1", 5433));
        assert_eq!(o.masked_url(), "postgres://u@[::1]:5433/d");
        let s = ConnectOptions::resolve(Some("postgres:///d?host=/var/run/postgresql"), env(&[]))
            .unwrap();
        assert_eq!(s.host, "/var/run/postgresql");
    }

    #[test]
    fn env_vars_carry_the_module_contract() {
        let o = ConnectOptions::resolve(
            Some("postgres://u:pw@h:5432/arc_saas"),
            env(&[("DB_SCHEMA", "tenant_management")]),
        )
        .unwrap();
        let vars: HashMap<&str, String> = o
            .env_vars()
            .into_iter()
            .map(|(k, v)| (k, v.expose().to_string()))
            .collect();
        assert_eq!(vars["DB_HOST"], "h");
        assert_eq!(vars["DB_DATABASE"], "arc_saas");
        assert_eq!(vars["DB_PASSWORD"], "pw");
        assert_eq!(vars["PGPASSWORD"], "pw");
        assert_eq!(vars["DB_SCHEMA"], "tenant_management");
        assert_eq!(vars["DATABASE_URL"], "postgres://u:pw@h:5432/arc_saas");
        // libpq's default is not passed on: node-postgres would read it as "TLS
        // required" (examples/ananta/control-plane failed so on a plain server).
        assert!(!vars.contains_key("PGSSLMODE"));
        let o =
            ConnectOptions::resolve(Some("postgres://u@h/db?sslmode=require"), env(&[])).unwrap();
        let vars: HashMap<&str, String> = o
            .env_vars()
            .into_iter()
            .map(|(k, v)| (k, v.expose().to_string()))
            .collect();
        assert_eq!(vars["PGSSLMODE"], "require");
        assert_eq!(
            vars["DATABASE_URL"],
            "postgres://u@h:5432/db?sslmode=require"
        );
    }

    #[test]
    fn resolving_gets_most_of_the_connect_timeout() {
        let s = Duration::from_secs;
        assert_eq!(resolve_limit(s(10)), s(8));
        assert_eq!(resolve_limit(s(1)), Duration::from_millis(1600));
        assert_eq!(resolve_limit(s(0)), resolve::DEFAULT_LIMIT);
        assert_eq!(resolve_limit(s(600)), resolve::DEFAULT_LIMIT);
    }

    #[tokio::test]
    async fn a_host_that_does_not_resolve_names_itself_once() {
        // `.invalid` never resolves (RFC 2606); the hosts file does not name it and
        // any DNS answers NXDOMAIN or fails. Either way the message names the host.
        let o = ConnectOptions::resolve(
            Some("postgres://u:hunter2@db.kubemigrate.invalid:5432/d?connect_timeout=2"),
            env(&[]),
        )
        .unwrap();
        let err = o.connect().await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConnectError::Resolve { .. }), "{text}");
        assert!(
            text.starts_with(
                "cannot connect to postgres://u:****@db.kubemigrate.invalid:5432/d: cannot resolve host \"db.kubemigrate.invalid\": not in /etc/hosts"
            ),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
}
