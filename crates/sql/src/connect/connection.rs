//! Opening a connection: the socket (TCP with keepalives, or a Unix socket), TLS
//! when asked, the login, and the background task that drives the connection and
//! passes the server's notices on.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client};

use super::*;
use crate::resolve::{self, Resolver};

impl ConnectOptions {
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
pub(super) fn resolve_limit(connect_timeout: Duration) -> Duration {
    if connect_timeout.is_zero() {
        return resolve::DEFAULT_LIMIT;
    }
    (connect_timeout.max(Duration::from_secs(2)) * 4 / 5).min(resolve::DEFAULT_LIMIT)
}
