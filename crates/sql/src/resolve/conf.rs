//! `/etc/resolv.conf` and `/etc/hosts`: their parsing, and the names a lookup asks
//! for, in order.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::MAX_NAMESERVERS;

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

pub(super) fn search_domain(word: &str) -> Option<String> {
    let domain = word.trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// An IP address, allowing a `%zone` suffix on IPv6 addresses (dropped).
pub(super) fn parse_ip(text: &str) -> Option<IpAddr> {
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
