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
//! DNS goes over UDP, with A and AAAA queries sent together; a reply with the
//! truncation bit set is asked again over TCP. Replies must echo the random query
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

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Where the hosts file is.
pub const HOSTS_PATH: &str = "/etc/hosts";
/// Where the resolver configuration is.
pub const RESOLV_CONF_PATH: &str = "/etc/resolv.conf";
/// The longest a whole lookup may take, unless [`Resolver::with_limit`] says otherwise.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(30);
/// At most this many name servers are used, as in glibc (`MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;

/// How many CNAME records a chain may have before the answer counts as broken.
const MAX_CNAMES: usize = 16;
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;

/// The settings of `/etc/resolv.conf` that name resolution uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// The name servers, in order (at most [`MAX_NAMESERVERS`] from the file).
    pub nameservers: Vec<SocketAddr>,
    /// The search list, without trailing dots.
    pub search: Vec<String>,
    /// A name with at least this many dots is tried as it is before the search list.
    pub ndots: usize,
    /// How long to wait for one server's reply to one query.
    pub timeout: Duration,
    /// How many rounds over all name servers a query gets.
    pub attempts: u32,
}

impl Default for ResolvConf {
    /// glibc's defaults: name server 127.0.0.1, no search list, `ndots:1`,
    /// `timeout:5`, `attempts:2`.
    fn default() -> Self {
        ResolvConf {
            nameservers: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

impl ResolvConf {
    /// Parses the text of a `resolv.conf`, as glibc does.
    ///
    /// Lines starting with `#` or `;` are comments, and so is the rest of a line
    /// from a word that starts with one. `nameserver` takes an IPv4 or IPv6 address
    /// (a `%zone` suffix is dropped; unparsable addresses are skipped), at most
    /// [`MAX_NAMESERVERS`]. The last `search` or `domain` line sets the search list.
    /// `options` understands `ndots:N` (at most 15), `timeout:N` (seconds, 1 to 30)
    /// and `attempts:N` (1 to 5); other options are ignored. Without a usable
    /// `nameserver` line, the name server is `127.0.0.1`.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            ..ResolvConf::default()
        };
        for line in text.lines() {
            let mut words = line
                .split_ascii_whitespace()
                .take_while(|w| !w.starts_with('#') && !w.starts_with(';'));
            match words.next() {
                Some("nameserver") => {
                    let addr = words.next().and_then(parse_ip);
                    if let Some(ip) = addr
                        && conf.nameservers.len() < MAX_NAMESERVERS
                    {
                        conf.nameservers.push(SocketAddr::new(ip, 53));
                    }
                }
                Some("domain") => {
                    if let Some(domain) = words.next() {
                        conf.search = search_domain(domain).into_iter().collect();
                    }
                }
                Some("search") => conf.search = words.filter_map(search_domain).collect(),
                Some("options") => {
                    for option in words {
                        conf.apply_option(option);
                    }
                }
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers = ResolvConf::default().nameservers;
        }
        conf
    }

    fn apply_option(&mut self, option: &str) {
        let Some((name, value)) = option.split_once(':') else {
            return;
        };
        let Ok(n) = value.parse::<u32>() else {
            return;
        };
        match name {
            "ndots" => self.ndots = usize::try_from(n.min(15)).unwrap_or(15),
            "timeout" => self.timeout = Duration::from_secs(n.clamp(1, 30).into()),
            "attempts" => self.attempts = n.clamp(1, 5),
            _ => {}
        }
    }
}

fn search_domain(word: &str) -> Option<String> {
    let domain = word.trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// An IP address, allowing a `%zone` suffix on IPv6 addresses (dropped).
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = match text.split_once('%') {
        Some((addr, _zone)) if addr.contains(':') => addr,
        _ => text,
    };
    text.parse().ok()
}

/// The addresses that a hosts file gives `name`, in the file's order, each once.
///
/// Everything from `#` to the end of a line is a comment. A line is an address
/// followed by the names it stands for (the canonical name, then aliases); names
/// are compared without regard to ASCII case, and a trailing dot on `name` is
/// ignored. Lines whose address does not parse are skipped.
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_ascii_whitespace();
        let Some(ip) = words.next().and_then(parse_ip) else {
            continue;
        };
        if words.any(|w| w.eq_ignore_ascii_case(name)) && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found
}

/// The names DNS is asked for, in order, when looking up `name` (glibc's
/// `res_search`).
///
/// - A name with a trailing dot is absolute: only the name itself.
/// - A name with at least `ndots` dots is tried as it is first, then with each
///   search domain appended.
/// - Any other name is tried with each search domain first, then as it is. In a
///   Kubernetes pod (`ndots:5`, `search ns.svc.cluster.local svc.cluster.local
///   cluster.local`) `db` is asked as `db.ns.svc.cluster.local` first.
///
/// The names are returned without trailing dots.
pub fn search_names(name: &str, conf: &ResolvConf) -> Vec<String> {
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_string()];
    }
    let searched = conf.search.iter().map(|domain| format!("{name}.{domain}"));
    if name.matches('.').count() >= conf.ndots {
        std::iter::once(name.to_string()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_string())).collect()
    }
}

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

/// A server's answer to one query.
#[derive(Debug, Default)]
struct Answer {
    addrs: Vec<IpAddr>,
    nxdomain: bool,
}

/// One query, to each server in turn, for `attempts` rounds; the first answer
/// (addresses, no records, or NXDOMAIN) wins.
async fn query_all(conf: &ResolvConf, name: &DnsName, qtype: u16) -> Result<Answer, DnsProblem> {
    let mut last = None;
    for _ in 0..conf.attempts.max(1) {
        for &server in &conf.nameservers {
            match ask(server, name, qtype, conf.timeout).await {
                Ok(answer) => return Ok(answer),
                Err(problem) => last = Some(problem),
            }
        }
    }
    Err(last.unwrap_or(DnsProblem::GaveUp {
        after: Duration::ZERO,
        last: None,
    }))
}

/// One query to one server: UDP, then TCP when the reply is truncated.
async fn ask(
    server: SocketAddr,
    name: &DnsName,
    qtype: u16,
    timeout: Duration,
) -> Result<Answer, DnsProblem> {
    let id = random_id();
    let query = encode_query(id, name, qtype);
    let expect = Expect { id, name, qtype };
    let mut reply = tokio::time::timeout(timeout, udp_exchange(server, &query, &expect))
        .await
        .map_err(|_| DnsProblem::Timeout {
            server,
            after: timeout,
        })??;
    if reply.truncated {
        reply = tokio::time::timeout(timeout, tcp_exchange(server, &query, &expect))
            .await
            .map_err(|_| DnsProblem::Timeout {
                server,
                after: timeout,
            })??;
    }
    match reply.rcode {
        0 => Ok(Answer {
            addrs: reply.addrs,
            nxdomain: false,
        }),
        RCODE_NXDOMAIN => Ok(Answer {
            addrs: Vec::new(),
            nxdomain: true,
        }),
        rcode => Err(DnsProblem::ServerFailure { server, rcode }),
    }
}

fn network(server: SocketAddr) -> impl Fn(std::io::Error) -> DnsProblem {
    move |e| DnsProblem::Network {
        server,
        message: e.to_string(),
    }
}

async fn udp_exchange(
    server: SocketAddr,
    query: &[u8],
    expect: &Expect<'_>,
) -> Result<Reply, DnsProblem> {
    let local = match server {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = UdpSocket::bind(local).await.map_err(network(server))?;
    // A connected socket takes datagrams from `server` only, and reports an ICMP
    // "port unreachable" as connection refused instead of a silent timeout.
    socket.connect(server).await.map_err(network(server))?;
    socket.send(query).await.map_err(network(server))?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = socket.recv(&mut buf).await.map_err(network(server))?;
        match decode_reply(&buf[..n], expect) {
            Ok(reply) => return Ok(reply),
            // A late reply to an earlier query, or a forgery: keep waiting.
            Err(ReplyError::NotOurs) => {}
            Err(ReplyError::Malformed(reason)) => {
                return Err(DnsProblem::BadReply { server, reason });
            }
        }
    }
}

async fn tcp_exchange(
    server: SocketAddr,
    query: &[u8],
    expect: &Expect<'_>,
) -> Result<Reply, DnsProblem> {
    let mut stream = TcpStream::connect(server).await.map_err(network(server))?;
    let len = u16::try_from(query.len()).map_err(|_| DnsProblem::BadReply {
        server,
        reason: "query too long",
    })?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.map_err(network(server))?;
    let len = stream.read_u16().await.map_err(network(server))?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.map_err(network(server))?;
    match decode_reply(&buf, expect) {
        Ok(reply) if reply.truncated => Err(DnsProblem::BadReply {
            server,
            reason: "truncated over TCP",
        }),
        Ok(reply) => Ok(reply),
        Err(ReplyError::NotOurs) => Err(DnsProblem::BadReply {
            server,
            reason: "the reply over TCP does not match the query",
        }),
        Err(ReplyError::Malformed(reason)) => Err(DnsProblem::BadReply { server, reason }),
    }
}

/// A random query id: `RandomState` is seeded from the operating system's
/// random source; the counter makes two ids of one process differ.
fn random_id() -> u16 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let bytes = hasher.finish().to_le_bytes();
    u16::from_le_bytes([bytes[0], bytes[1]])
}

/// A name DNS can carry: labels of 1 to 63 bytes, at most 253 bytes in all,
/// printable ASCII without spaces. No trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DnsName(String);

impl DnsName {
    fn new(name: &str) -> Result<DnsName, &'static str> {
        if name.is_empty() {
            return Err("the name is empty");
        }
        if name.len() > 253 {
            return Err("the name is longer than 253 characters");
        }
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the name has spaces, control or non-ASCII characters (write international names in their xn-- form)",
            );
        }
        if name
            .split('.')
            .any(|label| label.is_empty() || label.len() > 63)
        {
            return Err("the name has an empty label or one longer than 63 characters");
        }
        Ok(DnsName(name.to_ascii_lowercase()))
    }
}

/// What a reply must match: the query's id and question.
struct Expect<'a> {
    id: u16,
    name: &'a DnsName,
    qtype: u16,
}

/// A standard recursive query for `name` and `qtype`, class IN.
fn encode_query(id: u16, name: &DnsName, qtype: u16) -> Vec<u8> {
    let mut msg = Vec::with_capacity(18 + name.0.len());
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question
    for label in name.0.split('.') {
        // DnsName keeps labels at 1..=63 bytes.
        msg.push(u8::try_from(label.len()).unwrap_or(63));
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    msg
}

/// A reply that matches the query.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    truncated: bool,
    rcode: u8,
    /// The addresses of the asked type, for the name at the end of the CNAME chain.
    addrs: Vec<IpAddr>,
}

#[derive(Debug, PartialEq, Eq)]
enum ReplyError {
    /// Not a reply to this query (other id, other question, not a response).
    NotOurs,
    /// A reply to this query that cannot be read.
    Malformed(&'static str),
}

fn be16(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// Checks that `msg` answers the query, and reads its addresses.
fn decode_reply(msg: &[u8], expect: &Expect<'_>) -> Result<Reply, ReplyError> {
    use ReplyError::{Malformed, NotOurs};
    let (Some(id), Some(flags), Some(qdcount), Some(ancount)) =
        (be16(msg, 0), be16(msg, 2), be16(msg, 4), be16(msg, 6))
    else {
        return Err(NotOurs);
    };
    if id != expect.id || flags & 0x8000 == 0 || qdcount != 1 {
        return Err(NotOurs);
    }
    let (qname, at) = read_name(msg, 12).map_err(|_| NotOurs)?;
    if qname != expect.name.0
        || be16(msg, at) != Some(expect.qtype)
        || be16(msg, at + 2) != Some(CLASS_IN)
    {
        return Err(NotOurs);
    }
    let truncated = flags & 0x0200 != 0;
    let rcode = u8::try_from(flags & 0x000f).unwrap_or(0);
    if truncated || rcode != 0 {
        return Ok(Reply {
            truncated,
            rcode,
            addrs: Vec::new(),
        });
    }
    let mut at = at + 4;
    let mut cnames: Vec<(String, String)> = Vec::new();
    let mut records: Vec<(String, IpAddr)> = Vec::new();
    for _ in 0..ancount {
        let (owner, next) = read_name(msg, at).map_err(Malformed)?;
        let (Some(rtype), Some(class), Some(rdlength)) =
            (be16(msg, next), be16(msg, next + 2), be16(msg, next + 8))
        else {
            return Err(Malformed("a record runs past the end"));
        };
        let start = next + 10;
        let end = start + usize::from(rdlength);
        let rdata = msg
            .get(start..end)
            .ok_or(Malformed("a record runs past the end"))?;
        at = end;
        if class != CLASS_IN {
            continue;
        }
        match (rtype, rdata.len()) {
            (TYPE_A, 4) if expect.qtype == TYPE_A => {
                let octets: [u8; 4] = rdata.try_into().map_err(|_| Malformed("bad A"))?;
                records.push((owner, IpAddr::from(octets)));
            }
            (TYPE_AAAA, 16) if expect.qtype == TYPE_AAAA => {
                let octets: [u8; 16] = rdata.try_into().map_err(|_| Malformed("bad AAAA"))?;
                records.push((owner, IpAddr::from(octets)));
            }
            (TYPE_A | TYPE_AAAA, _) if rtype == expect.qtype => {
                return Err(Malformed("an address record has the wrong length"));
            }
            (TYPE_CNAME, _) => {
                let (target, _) = read_name(msg, start).map_err(Malformed)?;
                cnames.push((owner, target));
            }
            _ => {}
        }
    }
    let mut name = qname;
    for _ in 0..=MAX_CNAMES {
        match cnames.iter().find(|(owner, _)| *owner == name) {
            Some((_, target)) => name = target.clone(),
            None => break,
        }
    }
    let mut addrs = Vec::new();
    for (owner, ip) in records {
        if owner == name && !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }
    Ok(Reply {
        truncated,
        rcode,
        addrs,
    })
}

/// Reads a (possibly compressed) name at `start`: the name in lower case without
/// a trailing dot, and the position after it.
fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), &'static str> {
    let mut name = String::new();
    let mut at = start;
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(at).ok_or("a name runs past the end")?;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok((name, after.unwrap_or(at + 1))),
            0x00 => {
                let label = msg
                    .get(at + 1..at + 1 + usize::from(len))
                    .ok_or("a name runs past the end")?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
                if name.len() > 255 {
                    return Err("a name is longer than 255 bytes");
                }
                at += 1 + usize::from(len);
            }
            0xc0 => {
                let low = *msg.get(at + 1).ok_or("a name runs past the end")?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                jumps += 1;
                if target >= at || jumps > 64 {
                    return Err("a compression pointer loops");
                }
                after.get_or_insert(at + 2);
                at = target;
            }
            _ => return Err("a name has an unknown label type"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    use tokio::net::TcpListener;

    const K8S_RESOLV_CONF: &str = "\
# generated by the kubelet
search ns.svc.cluster.local svc.cluster.local cluster.local
nameserver 10.96.0.10
options ndots:5
";

    fn name(s: &str) -> DnsName {
        DnsName::new(s).unwrap()
    }

    // ---- hosts ----

    #[test]
    fn hosts_file_lines_aliases_comments_and_case() {
        let hosts = "\
# comment line
127.0.0.1\tlocalhost
::1     localhost ip6-localhost ip6-loopback
10.0.0.5  db.Example.test  db   # the database
fe80::1%eth0  linklocal
not-an-ip db
10.0.0.6 other
10.0.0.5 db
2001:db8::5 DB
";
        let v4: IpAddr = "10.0.0.5".parse().unwrap();
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        assert_eq!(hosts_lookup(hosts, "db"), vec![v4, v6]);
        assert_eq!(hosts_lookup(hosts, "DB.example.TEST"), vec![v4]);
        assert_eq!(hosts_lookup(hosts, "db.example.test."), vec![v4]);
        assert_eq!(
            hosts_lookup(hosts, "localhost"),
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(
            hosts_lookup(hosts, "linklocal"),
            vec!["fe80::1".parse::<IpAddr>().unwrap()]
        );
        assert!(hosts_lookup(hosts, "comment").is_empty());
        assert!(hosts_lookup(hosts, "the").is_empty());
        assert!(hosts_lookup(hosts, "example.test").is_empty());
        assert!(hosts_lookup("", "db").is_empty());
    }

    // ---- resolv.conf ----

    #[test]
    fn kubernetes_resolv_conf() {
        let conf = ResolvConf::parse(K8S_RESOLV_CONF);
        assert_eq!(conf.nameservers, vec!["10.96.0.10:53".parse().unwrap()]);
        assert_eq!(
            conf.search,
            ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"]
        );
        assert_eq!(conf.ndots, 5);
        assert_eq!(conf.timeout, Duration::from_secs(5));
        assert_eq!(conf.attempts, 2);
    }

    #[test]
    fn resolv_conf_keywords_limits_and_comments() {
        let conf = ResolvConf::parse(
            "\
; comment
nameserver 10.0.0.1
nameserver bogus
nameserver 2001:db8::53
nameserver fe80::1%eth0 # link-local
nameserver 10.0.0.4
search a.example b.example.
domain only.example
options ndots:30 timeout:0 attempts:9 rotate edns0
options timeout:3
",
        );
        assert_eq!(
            conf.nameservers,
            vec![
                "10.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
            ]
        );
        // The last of `search` and `domain` wins.
        assert_eq!(conf.search, ["only.example"]);
        assert_eq!(conf.ndots, 15);
        assert_eq!(conf.timeout, Duration::from_secs(3));
        assert_eq!(conf.attempts, 5);

        let conf = ResolvConf::parse("domain x.example\nsearch a.example . b.example # c\n");
        assert_eq!(conf.search, ["a.example", "b.example"]);
    }

    #[test]
    fn empty_resolv_conf_gives_glibc_defaults() {
        assert_eq!(ResolvConf::parse(""), ResolvConf::default());
        assert_eq!(
            ResolvConf::default().nameservers,
            vec!["127.0.0.1:53".parse::<SocketAddr>().unwrap()]
        );
    }

    // ---- search order ----

    #[test]
    fn search_order_in_a_kubernetes_pod() {
        let conf = ResolvConf::parse(K8S_RESOLV_CONF);
        assert_eq!(
            search_names("db", &conf),
            [
                "db.ns.svc.cluster.local",
                "db.svc.cluster.local",
                "db.cluster.local",
                "db"
            ]
        );
        // 4 dots < ndots 5: the search list still comes first.
        assert_eq!(
            search_names("db.other.svc.cluster.local", &conf)[0],
            "db.other.svc.cluster.local.ns.svc.cluster.local"
        );
        assert_eq!(
            search_names("db.other.svc.cluster.local", &conf)[3],
            "db.other.svc.cluster.local"
        );
        // A trailing dot: absolute, nothing else.
        assert_eq!(search_names("db.example.com.", &conf), ["db.example.com"]);
    }

    #[test]
    fn a_name_with_ndots_dots_is_tried_as_it_is_first() {
        let conf = ResolvConf::parse("search corp.example\noptions ndots:1\n");
        assert_eq!(
            search_names("db.example.com", &conf),
            ["db.example.com", "db.example.com.corp.example"]
        );
        assert_eq!(search_names("db", &conf), ["db.corp.example", "db"]);
        let none = ResolvConf::default();
        assert_eq!(search_names("db", &none), ["db"]);
    }

    #[test]
    fn dns_names_are_checked() {
        assert!(DnsName::new("db.example").is_ok());
        assert_eq!(DnsName::new("DB.Example").unwrap().0, "db.example");
        assert!(DnsName::new("").is_err());
        assert!(DnsName::new("a..b").is_err());
        assert!(DnsName::new(".a").is_err());
        assert!(DnsName::new("a b").is_err());
        assert!(DnsName::new("bücher.example").is_err());
        assert!(DnsName::new(&"a".repeat(64)).is_err());
        assert!(DnsName::new(&"a".repeat(63)).is_ok());
        assert!(DnsName::new(&["a"; 127].join(".")).is_ok());
        assert!(DnsName::new(&["ab"; 85].join(".")).is_err());
    }

    // ---- messages ----

    #[test]
    fn query_encoding() {
        let q = encode_query(0xbeef, &name("db.example"), TYPE_AAAA);
        let mut want = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b"\x02db\x07example\x00");
        want.extend_from_slice(&[0, 28, 0, 1]);
        assert_eq!(q, want);
    }

    /// A record of a test reply.
    enum Rec {
        A(&'static str, [u8; 4]),
        Aaaa(&'static str, Ipv6Addr),
        Cname(&'static str, &'static str),
    }

    fn encode_name(out: &mut Vec<u8>, name: &str) {
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(u8::try_from(label.len()).unwrap());
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }

    /// A reply to `query` (the bytes of a query message), with the owner `qname`
    /// written as a compression pointer to the question.
    fn reply_to(query: &[u8], flags: u16, records: &[Rec]) -> Vec<u8> {
        let (qname, end) = read_name(query, 12).unwrap();
        let mut msg = query[..2].to_vec();
        msg.extend_from_slice(&(0x8180 | flags).to_be_bytes());
        msg.extend_from_slice(&[0, 1]);
        msg.extend_from_slice(&u16::try_from(records.len()).unwrap().to_be_bytes());
        msg.extend_from_slice(&[0, 0, 0, 0]);
        msg.extend_from_slice(&query[12..end + 4]);
        for rec in records {
            let (owner, rtype, rdata) = match rec {
                Rec::A(owner, ip) => (*owner, TYPE_A, ip.to_vec()),
                Rec::Aaaa(owner, ip) => (*owner, TYPE_AAAA, ip.octets().to_vec()),
                Rec::Cname(owner, target) => {
                    let mut data = Vec::new();
                    encode_name(&mut data, target);
                    (*owner, TYPE_CNAME, data)
                }
            };
            if owner.eq_ignore_ascii_case(&qname) {
                msg.extend_from_slice(&[0xc0, 12]);
            } else {
                encode_name(&mut msg, owner);
            }
            msg.extend_from_slice(&rtype.to_be_bytes());
            msg.extend_from_slice(&CLASS_IN.to_be_bytes());
            msg.extend_from_slice(&300u32.to_be_bytes());
            msg.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
            msg.extend_from_slice(&rdata);
        }
        msg
    }

    #[test]
    fn reply_decoding_follows_cname_chains_with_compression() {
        let n = name("db.example");
        let q = encode_query(7, &n, TYPE_A);
        let r = reply_to(
            &q,
            0,
            &[
                Rec::Cname("DB.example", "alias.example"),
                Rec::A("unrelated.example", [9, 9, 9, 9]),
                Rec::Cname("alias.example", "real.example"),
                Rec::A("real.example", [10, 0, 0, 7]),
                Rec::A("REAL.example", [10, 0, 0, 8]),
                Rec::Aaaa("real.example", Ipv6Addr::LOCALHOST),
            ],
        );
        let expect = Expect {
            id: 7,
            name: &n,
            qtype: TYPE_A,
        };
        let reply = decode_reply(&r, &expect).unwrap();
        assert_eq!(
            reply.addrs,
            vec![
                "10.0.0.7".parse::<IpAddr>().unwrap(),
                "10.0.0.8".parse().unwrap()
            ]
        );
        assert!(!reply.truncated);
        assert_eq!(reply.rcode, 0);
    }

    #[test]
    fn replies_that_do_not_match_the_query_are_not_ours() {
        let n = name("db.example");
        let q = encode_query(7, &n, TYPE_A);
        let r = reply_to(&q, 0, &[Rec::A("db.example", [1, 2, 3, 4])]);
        let other = name("other.example");
        let cases = [
            (
                Expect {
                    id: 8,
                    name: &n,
                    qtype: TYPE_A,
                },
                "other id",
            ),
            (
                Expect {
                    id: 7,
                    name: &other,
                    qtype: TYPE_A,
                },
                "other name",
            ),
            (
                Expect {
                    id: 7,
                    name: &n,
                    qtype: TYPE_AAAA,
                },
                "other type",
            ),
        ];
        for (expect, what) in cases {
            assert_eq!(
                decode_reply(&r, &expect),
                Err(ReplyError::NotOurs),
                "{what}"
            );
        }
        let expect = Expect {
            id: 7,
            name: &n,
            qtype: TYPE_A,
        };
        // The query itself is not a response.
        assert_eq!(decode_reply(&q, &expect), Err(ReplyError::NotOurs));
        assert_eq!(decode_reply(&r[..5], &expect), Err(ReplyError::NotOurs));
        // A reply cut inside its answer is malformed.
        assert!(matches!(
            decode_reply(&r[..r.len() - 2], &expect),
            Err(ReplyError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_and_error_replies() {
        let n = name("db.example");
        let q = encode_query(7, &n, TYPE_A);
        let expect = Expect {
            id: 7,
            name: &n,
            qtype: TYPE_A,
        };
        let tc = decode_reply(&reply_to(&q, 0x0200, &[]), &expect).unwrap();
        assert!(tc.truncated);
        let nx = decode_reply(&reply_to(&q, 3, &[]), &expect).unwrap();
        assert_eq!(nx.rcode, RCODE_NXDOMAIN);
        let servfail = decode_reply(&reply_to(&q, 2, &[]), &expect).unwrap();
        assert_eq!(servfail.rcode, 2);
        let nodata = decode_reply(&reply_to(&q, 0, &[]), &expect).unwrap();
        assert!(nodata.addrs.is_empty());
    }

    #[test]
    fn compression_loops_are_errors() {
        // A pointer to itself, and two pointers to each other.
        assert!(read_name(&[0xc0, 0], 0).is_err());
        let msg = [1, b'a', 0xc0, 0];
        assert!(read_name(&msg, 0).is_err());
        assert!(read_name(&[5, b'a'], 0).is_err());
        assert!(read_name(&[0x80], 0).is_err());
        assert_eq!(
            read_name(&[1, b'A', 0, 1, b'b', 0xc0, 0], 3).unwrap(),
            ("b.a".to_string(), 7)
        );
    }

    #[test]
    fn random_ids_differ() {
        let ids: std::collections::HashSet<u16> = (0..64).map(|_| random_id()).collect();
        assert!(ids.len() > 50, "{ids:?}");
    }

    // ---- a fake DNS server ----

    /// What the fake server does with a query.
    enum Behave {
        /// Reply with these flags (rcode, TC) and records.
        Reply(u16, Vec<Rec>),
        /// Never reply.
        Silent,
    }

    struct FakeDns {
        addr: SocketAddr,
        /// The (name, type, over TCP) of each query received.
        seen: Arc<Mutex<Vec<(String, u16, bool)>>>,
    }

    /// Starts a fake DNS server on 127.0.0.1, UDP and TCP on the same port. Over
    /// TCP, replies are never truncated.
    async fn fake_dns(handler: impl Fn(&str, u16) -> Behave + Send + Sync + 'static) -> FakeDns {
        let handler = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let respond = {
            let handler = handler.clone();
            let seen = seen.clone();
            move |query: &[u8], tcp: bool| -> Option<Vec<u8>> {
                let (qname, end) = read_name(query, 12).ok()?;
                let qtype = be16(query, end)?;
                seen.lock().unwrap().push((qname.clone(), qtype, tcp));
                match handler(&qname, qtype) {
                    Behave::Silent => None,
                    Behave::Reply(flags, records) => {
                        let flags = if tcp { flags & !0x0200 } else { flags };
                        Some(reply_to(query, flags, &records))
                    }
                }
            }
        };
        let udp_respond = respond.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                if let Some(reply) = udp_respond(&buf[..n], false) {
                    let _ = udp.send_to(&reply, from).await;
                }
            }
        });
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                let Ok(len) = stream.read_u16().await else {
                    continue;
                };
                let mut query = vec![0u8; usize::from(len)];
                if stream.read_exact(&mut query).await.is_err() {
                    continue;
                }
                if let Some(reply) = respond(&query, true) {
                    let mut framed = u16::try_from(reply.len()).unwrap().to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    let _ = stream.write_all(&framed).await;
                }
            }
        });
        FakeDns { addr, seen }
    }

    fn conf_for(server: SocketAddr, search: &[&str], ndots: usize) -> ResolvConf {
        ResolvConf {
            nameservers: vec![server],
            search: search.iter().map(|s| s.to_string()).collect(),
            ndots,
            timeout: Duration::from_millis(300),
            attempts: 2,
        }
    }

    fn resolver(conf: ResolvConf) -> Resolver {
        Resolver::new("/nonexistent/kubemigrate-test-hosts", conf)
    }

    #[tokio::test]
    async fn a_and_aaaa_records_ipv4_first() {
        let dns = fake_dns(|name, qtype| match (name, qtype) {
            ("db.example", TYPE_A) => Behave::Reply(0, vec![Rec::A("db.example", [10, 1, 2, 3])]),
            ("db.example", TYPE_AAAA) => Behave::Reply(
                0,
                vec![Rec::Aaaa("db.example", "2001:db8::3".parse().unwrap())],
            ),
            _ => Behave::Reply(3, vec![]),
        })
        .await;
        let addrs = resolver(conf_for(dns.addr, &[], 1))
            .lookup("db.example", 5432)
            .await
            .unwrap();
        assert_eq!(
            addrs,
            vec![
                "10.1.2.3:5432".parse::<SocketAddr>().unwrap(),
                "[2001:db8::3]:5432".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn nxdomain_names_every_name_tried() {
        let dns = fake_dns(|_, _| Behave::Reply(3, vec![])).await;
        let err = resolver(conf_for(
            dns.addr,
            &["ns.svc.cluster.local", "cluster.local"],
            5,
        ))
        .lookup("db", 5432)
        .await
        .unwrap_err();
        let ResolveError::NotFound { names, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            names,
            &["db.ns.svc.cluster.local", "db.cluster.local", "db"]
        );
        let text = err.to_string();
        assert!(
            text.starts_with("cannot resolve host \"db\": not in /nonexistent/"),
            "{text}"
        );
        assert!(text.contains(&format!("DNS ({})", dns.addr)), "{text}");
        assert!(
            text.ends_with("db.ns.svc.cluster.local, db.cluster.local, db"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_truncated_reply_is_asked_again_over_tcp() {
        let dns = fake_dns(|_, qtype| match qtype {
            TYPE_A => Behave::Reply(0x0200, vec![Rec::A("big.example", [10, 9, 9, 9])]),
            _ => Behave::Reply(0, vec![]),
        })
        .await;
        let addrs = resolver(conf_for(dns.addr, &[], 1))
            .lookup_ip("big.example")
            .await
            .unwrap();
        assert_eq!(addrs, vec!["10.9.9.9".parse::<IpAddr>().unwrap()]);
        let seen = dns.seen.lock().unwrap().clone();
        assert!(
            seen.contains(&("big.example".into(), TYPE_A, false)),
            "{seen:?}"
        );
        assert!(
            seen.contains(&("big.example".into(), TYPE_A, true)),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn search_domains_come_first_below_ndots() {
        let dns = fake_dns(|name, qtype| match (name, qtype) {
            ("db.svc.cluster.local", TYPE_A) => {
                Behave::Reply(0, vec![Rec::A("db.svc.cluster.local", [10, 96, 0, 20])])
            }
            ("db.svc.cluster.local", _) => Behave::Reply(0, vec![]),
            _ => Behave::Reply(3, vec![]),
        })
        .await;
        let conf = conf_for(
            dns.addr,
            &["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"],
            5,
        );
        let addrs = resolver(conf).lookup_ip("db").await.unwrap();
        assert_eq!(addrs, vec!["10.96.0.20".parse::<IpAddr>().unwrap()]);
        let mut asked: Vec<String> = dns
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t, _)| *t == TYPE_A)
            .map(|(n, _, _)| n.clone())
            .collect();
        asked.dedup();
        assert_eq!(asked, ["db.ns.svc.cluster.local", "db.svc.cluster.local"]);
    }

    #[tokio::test]
    async fn a_cname_to_another_name() {
        let dns = fake_dns(|name, qtype| match (name, qtype) {
            ("db.example", TYPE_A) => Behave::Reply(
                0,
                vec![
                    Rec::Cname("db.example", "primary.example"),
                    Rec::A("primary.example", [10, 0, 0, 1]),
                ],
            ),
            _ => Behave::Reply(0, vec![]),
        })
        .await;
        let addrs = resolver(conf_for(dns.addr, &[], 1))
            .lookup_ip("DB.Example.")
            .await
            .unwrap();
        assert_eq!(addrs, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_gives_a_bounded_error() {
        let dns = fake_dns(|_, _| Behave::Silent).await;
        let start = Instant::now();
        let err = resolver(conf_for(dns.addr, &["a.example", "b.example"], 1))
            .lookup_ip("db")
            .await
            .unwrap_err();
        // 2 attempts of 300 ms, A and AAAA at once; a timeout stops the search.
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let ResolveError::Dns { names, problem, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(names, &["db.a.example"]);
        assert!(matches!(problem, DnsProblem::Timeout { .. }), "{problem:?}");
        let text = err.to_string();
        assert!(text.contains("did not answer within 0.3s"), "{text}");
    }

    #[tokio::test]
    async fn the_limit_bounds_the_whole_lookup() {
        let dns = fake_dns(|_, _| Behave::Silent).await;
        let mut conf = conf_for(dns.addr, &[], 1);
        conf.timeout = Duration::from_secs(5);
        let start = Instant::now();
        let err = resolver(conf)
            .with_limit(Duration::from_millis(200))
            .lookup_ip("db.example")
            .await
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(
            matches!(
                &err,
                ResolveError::Dns {
                    problem: DnsProblem::GaveUp { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("no answer within 0.2s"), "{err}");
    }

    #[tokio::test]
    async fn servfail_moves_on_to_the_next_name_and_is_reported_at_the_end() {
        let dns = fake_dns(|name, _| match name {
            "db.broken.example" => Behave::Reply(2, vec![]),
            _ => Behave::Reply(3, vec![]),
        })
        .await;
        let err = resolver(conf_for(dns.addr, &["broken.example", "fine.example"], 1))
            .lookup_ip("db")
            .await
            .unwrap_err();
        let ResolveError::Dns { names, problem, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(names, &["db.broken.example", "db.fine.example", "db"]);
        assert_eq!(
            problem,
            &DnsProblem::ServerFailure {
                server: dns.addr,
                rcode: 2
            }
        );
        assert!(err.to_string().contains("answered SERVFAIL"), "{err}");
    }

    #[tokio::test]
    async fn a_refused_port_is_a_network_error_not_a_wait() {
        // Bind and drop a socket to find a port where nothing listens.
        let port = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let mut conf = conf_for(port, &[], 1);
        conf.timeout = Duration::from_secs(5);
        let start = Instant::now();
        let err = resolver(conf).lookup_ip("db.example").await.unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
        assert!(
            matches!(
                &err,
                ResolveError::Dns {
                    problem: DnsProblem::Network { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn forged_replies_are_ignored() {
        // The server first sends a reply with another id, then the real one.
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let query = &buf[..n];
                let (qname, end) = read_name(query, 12).unwrap();
                let qtype = be16(query, end).unwrap();
                let records = if qtype == TYPE_A && qname == "db.example" {
                    vec![Rec::A("db.example", [10, 0, 0, 2])]
                } else {
                    vec![]
                };
                let mut forged = reply_to(query, 0, &[Rec::A("db.example", [6, 6, 6, 6])]);
                forged[0] ^= 0xff;
                let _ = socket.send_to(&forged, from).await;
                let _ = socket.send_to(&reply_to(query, 0, &records), from).await;
            }
        });
        let addrs = resolver(conf_for(addr, &[], 1))
            .lookup_ip("db.example")
            .await
            .unwrap();
        assert_eq!(addrs, vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn the_hosts_file_and_localhost_need_no_dns() {
        let dns = fake_dns(|_, _| Behave::Silent).await;
        let dir = std::env::temp_dir().join(format!("kubemigrate-resolve-{}", random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hosts = dir.join("hosts");
        std::fs::write(&hosts, "127.0.0.1 db.kubemigrate.test db\n").unwrap();
        let r = Resolver::new(&hosts, conf_for(dns.addr, &[], 1));
        assert_eq!(
            r.lookup("DB.kubemigrate.test", 5432).await.unwrap(),
            vec!["127.0.0.1:5432".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            r.lookup_ip("localhost").await.unwrap(),
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(
            r.lookup_ip("::1").await.unwrap(),
            vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]
        );
        assert!(dns.seen.lock().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn invalid_names_are_refused_before_dns() {
        let dns = fake_dns(|_, _| Behave::Silent).await;
        let err = resolver(conf_for(dns.addr, &[], 1))
            .lookup_ip("db..example")
            .await
            .unwrap_err();
        assert!(matches!(err, ResolveError::InvalidName { .. }), "{err:?}");
        assert!(dns.seen.lock().unwrap().is_empty());
    }
}
