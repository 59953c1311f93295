//! Host names to addresses, without the C library.
//!
//! kubemigrate is built as a static executable so that it runs in any Linux image
//! (see docs/runner.md). A static glibc cannot load its NSS modules, so
//! `getaddrinfo` is of no use there: this module resolves names itself, the way
//! glibc does with `hosts: files dns`:
//! 1. an IP address literal is used as it is;
//! 2. the hosts file (`/etc/hosts`): every address of a line that names the host,
//!    names compared without regard to case;
//! 3. `localhost` (when the hosts file does not name it): `127.0.0.1` and `::1`;
//! 4. DNS, as `/etc/resolv.conf` says: its `nameserver`s (at most 3), its
//!    `search` (or `domain`) list and its `ndots`, `timeout` and `attempts`
//!    options. See [`search_names`] for the order in which names are tried.
//!
//! DNS goes over UDP, with A and AAAA queries sent together; a query without a
//! reply is sent again after 1 s, 2 s, 4 s, … within each attempt's `timeout`, so
//! that one lost datagram does not cost the whole timeout (glibc waits it out). A
//! reply with the truncation bit set is asked again over TCP. Replies must echo the random query
//! id and the question, else they are ignored. CNAME chains are followed within the
//! answer section. IPv4 addresses come before IPv6 ones.
//!
//! # Caveats
//! - There is no fallback to the system's `getaddrinfo`, not even when
//!   `/etc/resolv.conf` is missing (then, as in glibc, the name server is
//!   `127.0.0.1`). Names that only NSS modules know (LDAP, mDNS, `myhostname`)
//!   do not resolve. This keeps the behaviour the same in every image.
//! - The domain of the machine's own host name is not used as a default search
//!   list, and `LOCALDOMAIN` and `RES_OPTIONS` are not read.
//! - A whole lookup is bounded by [`Resolver::with_limit`] (default
//!   [`DEFAULT_LIMIT`]).
//!
//! # Usage
//! ```no_run
//! # async fn f() -> Result<(), kubemigrate_sql::resolve::ResolveError> {
//! use kubemigrate_sql::resolve::Resolver;
//! let addrs = Resolver::system().lookup("db.example.com", 5432).await?;
//! # let _ = addrs; Ok(()) }
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the hosts file is.
pub const HOSTS_PATH: &str = "/etc/hosts";
/// Where the resolver configuration is.
pub const RESOLV_CONF_PATH: &str = "/etc/resolv.conf";
/// The longest a whole lookup may take, unless [`Resolver::with_limit`] says otherwise.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(30);
/// At most this many name servers are used, as in glibc (`MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;

mod conf;
mod wire;

use conf::parse_ip;
pub use conf::{ResolvConf, hosts_lookup, search_names};
use wire::*;

/// Why a host name did not resolve. The messages name the host and what was tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The host is neither an IP address nor a name DNS can carry.
    #[error("cannot resolve host {host:?}: {reason}")]
    InvalidName {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The hosts file does not name the host, and DNS has no address for any of the
    /// names tried (NXDOMAIN, or no A or AAAA records).
    #[error(
        "cannot resolve host {host:?}: not in {}, and DNS ({}) has no address for {}",
        .hosts_file.display(), list(.servers), list(.names)
    )]
    NotFound {
        /// The host as given.
        host: String,
        /// The hosts file that was read.
        hosts_file: PathBuf,
        /// The names DNS was asked for, in order.
        names: Vec<String>,
        /// The name servers.
        servers: Vec<SocketAddr>,
    },
    /// DNS failed: a server did not answer, answered with an error, or could not be
    /// reached. Retrying later may help.
    #[error(
        "cannot resolve host {host:?}: not in {}, and DNS failed: {problem} (names tried: {})",
        .hosts_file.display(), list(.names)
    )]
    Dns {
        /// The host as given.
        host: String,
        /// The hosts file that was read.
        hosts_file: PathBuf,
        /// The names DNS was asked for before it failed, in order.
        names: Vec<String>,
        /// What failed.
        problem: DnsProblem,
    },
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What went wrong when asking DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsProblem {
    /// A server did not reply within the per-query timeout.
    Timeout {
        /// The server.
        server: SocketAddr,
        /// The timeout.
        after: Duration,
    },
    /// A server replied with an error code other than NXDOMAIN (SERVFAIL, REFUSED, …).
    ServerFailure {
        /// The server.
        server: SocketAddr,
        /// The DNS response code.
        rcode: u8,
    },
    /// Sending a query or receiving its reply failed (for example, connection refused).
    Network {
        /// The server.
        server: SocketAddr,
        /// The operating system's error.
        message: String,
    },
    /// A server's reply could not be read.
    BadReply {
        /// The server.
        server: SocketAddr,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The whole lookup took longer than the resolver's limit.
    GaveUp {
        /// The limit.
        after: Duration,
        /// The last problem before that, if any.
        last: Option<Box<DnsProblem>>,
    },
}

impl fmt::Display for DnsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsProblem::Timeout { server, after } => {
                write!(f, "{server} did not answer within {}", seconds(*after))
            }
            DnsProblem::ServerFailure { server, rcode } => {
                write!(f, "{server} answered {}", rcode_name(*rcode))
            }
            DnsProblem::Network { server, message } => write!(f, "{server}: {message}"),
            DnsProblem::BadReply { server, reason } => {
                write!(f, "{server} sent a reply that cannot be read: {reason}")
            }
            DnsProblem::GaveUp { after, last } => {
                write!(f, "no answer within {}", seconds(*after))?;
                match last {
                    Some(last) => write!(f, " (last: {last})"),
                    None => Ok(()),
                }
            }
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("response code {other}"),
    }
}

/// Resolves host names from a hosts file and a [`ResolvConf`].
#[derive(Debug, Clone)]
pub struct Resolver {
    hosts_path: PathBuf,
    conf: ResolvConf,
    limit: Duration,
}

impl Resolver {
    /// A resolver that reads the hosts file at `hosts_path` on each lookup and asks
    /// DNS as `conf` says.
    pub fn new(hosts_path: impl Into<PathBuf>, conf: ResolvConf) -> Resolver {
        Resolver {
            hosts_path: hosts_path.into(),
            conf,
            limit: DEFAULT_LIMIT,
        }
    }

    /// The machine's resolver: [`HOSTS_PATH`] and [`RESOLV_CONF_PATH`]. A missing or
    /// unreadable `resolv.conf` gives glibc's defaults ([`ResolvConf::default`]).
    pub fn system() -> Resolver {
        let conf = std::fs::read_to_string(RESOLV_CONF_PATH)
            .map(|text| ResolvConf::parse(&text))
            .unwrap_or_default();
        Resolver::new(HOSTS_PATH, conf)
    }

    /// Bounds the time a whole lookup may take (all names, servers and attempts).
    pub fn with_limit(mut self, limit: Duration) -> Resolver {
        self.limit = limit;
        self
    }

    /// The DNS settings in use.
    pub fn conf(&self) -> &ResolvConf {
        &self.conf
    }

    /// The hosts file in use.
    pub fn hosts_path(&self) -> &Path {
        &self.hosts_path
    }

    /// The socket addresses of `host` with `port`; see [`Resolver::lookup_ip`].
    ///
    /// # Errors
    /// As [`Resolver::lookup_ip`].
    pub async fn lookup(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        let ips = self.lookup_ip(host).await?;
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    /// The addresses of `host`: an IP literal as it is, else from the hosts file,
    /// else loopback for `localhost`, else from DNS (IPv4 first). Never empty.
    ///
    /// # Errors
    /// [`ResolveError::InvalidName`] for a name DNS cannot carry;
    /// [`ResolveError::NotFound`] when no name tried has an address;
    /// [`ResolveError::Dns`] when DNS failed or the lookup passed its limit.
    pub async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if let Some(ip) = parse_ip(host) {
            return Ok(vec![ip]);
        }
        // An unreadable hosts file counts as empty, as in glibc.
        let hosts = tokio::fs::read_to_string(&self.hosts_path)
            .await
            .unwrap_or_default();
        let found = hosts_lookup(&hosts, host);
        if !found.is_empty() {
            return Ok(found);
        }
        if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.") {
            return Ok(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        let invalid = |reason| ResolveError::InvalidName {
            host: host.to_string(),
            reason,
        };
        DnsName::new(host.strip_suffix('.').unwrap_or(host)).map_err(invalid)?;
        // A search domain may make a name too long: that name is skipped.
        let names: Vec<DnsName> = search_names(host, &self.conf)
            .into_iter()
            .filter_map(|n| DnsName::new(&n).ok())
            .collect();
        let mut progress = Progress::default();
        let outcome =
            tokio::time::timeout(self.limit, search(&self.conf, &names, &mut progress)).await;
        let problem = match outcome {
            Ok(Ok(addrs)) => return Ok(addrs),
            Ok(Err(None)) => {
                return Err(ResolveError::NotFound {
                    host: host.to_string(),
                    hosts_file: self.hosts_path.clone(),
                    names: progress.tried,
                    servers: self.conf.nameservers.clone(),
                });
            }
            Ok(Err(Some(problem))) => problem,
            Err(_) => DnsProblem::GaveUp {
                after: self.limit,
                last: progress.last.map(Box::new),
            },
        };
        Err(ResolveError::Dns {
            host: host.to_string(),
            hosts_file: self.hosts_path.clone(),
            names: progress.tried,
            problem,
        })
    }
}

/// What a lookup has done so far; kept when the limit cuts it short.
#[derive(Debug, Default)]
struct Progress {
    tried: Vec<String>,
    last: Option<DnsProblem>,
}

/// Asks for each name in turn, as glibc's `res_search`: a name without addresses
/// (NXDOMAIN, or no records) or with a server failure moves on to the next; a
/// timeout or network error stops the search. `Err(None)`: no name has addresses.
async fn search(
    conf: &ResolvConf,
    names: &[DnsName],
    progress: &mut Progress,
) -> Result<Vec<IpAddr>, Option<DnsProblem>> {
    let mut server_failure = None;
    for name in names {
        progress.tried.push(name.0.clone());
        match lookup_name(conf, name, progress).await {
            Ok(addrs) if !addrs.is_empty() => return Ok(addrs),
            Ok(_) => {}
            Err(p @ (DnsProblem::ServerFailure { .. } | DnsProblem::BadReply { .. })) => {
                server_failure = Some(p)
            }
            Err(p) => return Err(Some(p)),
        }
    }
    Err(server_failure)
}

/// The A and AAAA addresses of one name, asked at the same time. Empty when the
/// name does not exist or has neither.
async fn lookup_name(
    conf: &ResolvConf,
    name: &DnsName,
    progress: &mut Progress,
) -> Result<Vec<IpAddr>, DnsProblem> {
    let (a, aaaa) = tokio::join!(
        query_all(conf, name, TYPE_A),
        query_all(conf, name, TYPE_AAAA)
    );
    match (a, aaaa) {
        (Ok(a), Ok(aaaa)) => Ok(a.addrs.into_iter().chain(aaaa.addrs).collect()),
        (Ok(answer), Err(problem)) | (Err(problem), Ok(answer)) => {
            if answer.addrs.is_empty() && !answer.nxdomain {
                progress.last = Some(problem.clone());
                Err(problem)
            } else {
                Ok(answer.addrs)
            }
        }
        (Err(problem), Err(_)) => {
            progress.last = Some(problem.clone());
            Err(problem)
        }
    }
}

#[cfg(test)]
mod tests;
