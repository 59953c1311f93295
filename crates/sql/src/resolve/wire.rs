//! The DNS protocol: a query to each server over UDP (TCP when truncated), the
//! encoding of questions and the decoding of replies.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::{DnsProblem, ResolvConf};

/// How many CNAME records a chain may have before the answer counts as broken.
pub(super) const MAX_CNAMES: usize = 16;
pub(super) const TYPE_A: u16 = 1;
pub(super) const TYPE_CNAME: u16 = 5;
pub(super) const TYPE_AAAA: u16 = 28;
pub(super) const CLASS_IN: u16 = 1;
pub(super) const RCODE_NXDOMAIN: u8 = 3;

/// A server's answer to one query.
#[derive(Debug, Default)]
pub(super) struct Answer {
    pub(super) addrs: Vec<IpAddr>,
    pub(super) nxdomain: bool,
}

/// One query, to each server in turn, for `attempts` rounds; the first answer
/// (addresses, no records, or NXDOMAIN) wins.
pub(super) async fn query_all(
    conf: &ResolvConf,
    name: &DnsName,
    qtype: u16,
) -> Result<Answer, DnsProblem> {
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
pub(super) async fn ask(
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

pub(super) fn network(server: SocketAddr) -> impl Fn(std::io::Error) -> DnsProblem {
    move |e| DnsProblem::Network {
        server,
        message: e.to_string(),
    }
}

/// How long [`udp_exchange`] waits for a reply before it sends the same query
/// again; the wait doubles after each resend. UDP may lose a datagram (a busy
/// bridge, a full socket buffer, a node's conntrack table): a resend makes such a
/// loss cost a second instead of the whole per-query `timeout` of resolv.conf,
/// which is 5 s by default and may be longer than the caller is willing to wait.
/// The caller's timeout still bounds the exchange.
pub(super) const RESEND_AFTER: Duration = Duration::from_secs(1);

/// One query to one server over UDP, sent again after [`RESEND_AFTER`] (then
/// twice as long each time) until a reply that matches `expect` arrives. Never
/// returns on its own without a reply: the caller bounds it with a timeout.
pub(super) async fn udp_exchange(
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
    let mut resend_after = RESEND_AFTER;
    let mut resend_at = Instant::now() + resend_after;
    loop {
        let n = tokio::select! {
            received = socket.recv(&mut buf) => received.map_err(network(server))?,
            () = tokio::time::sleep_until(resend_at) => {
                // The same datagram again (same id): a reply to either is taken.
                socket.send(query).await.map_err(network(server))?;
                resend_after = resend_after.saturating_mul(2);
                resend_at = Instant::now() + resend_after;
                continue;
            }
        };
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

pub(super) async fn tcp_exchange(
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
pub(super) fn random_id() -> u16 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let bytes = hasher.finish().to_le_bytes();
    u16::from_le_bytes([bytes[0], bytes[1]])
}

/// A name DNS can carry: labels of 1 to 63 bytes, at most 253 bytes in all,
/// printable ASCII without spaces. No trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DnsName(pub(super) String);

impl DnsName {
    pub(super) fn new(name: &str) -> Result<DnsName, &'static str> {
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
pub(super) struct Expect<'a> {
    pub(super) id: u16,
    pub(super) name: &'a DnsName,
    pub(super) qtype: u16,
}

/// A standard recursive query for `name` and `qtype`, class IN.
pub(super) fn encode_query(id: u16, name: &DnsName, qtype: u16) -> Vec<u8> {
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
pub(super) struct Reply {
    pub(super) truncated: bool,
    pub(super) rcode: u8,
    /// The addresses of the asked type, for the name at the end of the CNAME chain.
    pub(super) addrs: Vec<IpAddr>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReplyError {
    /// Not a reply to this query (other id, other question, not a response).
    NotOurs,
    /// A reply to this query that cannot be read.
    Malformed(&'static str),
}

pub(super) fn be16(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// Checks that `msg` answers the query, and reads its addresses.
pub(super) fn decode_reply(msg: &[u8], expect: &Expect<'_>) -> Result<Reply, ReplyError> {
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
pub(super) fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), &'static str> {
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
