//! Connection URLs: parsing `postgres://…` into its fields, and the %-encoding
//! that writes them back (and hides a password in printed text).

use super::*;

/// Connection fields from one source (the URL, the libpq variables, the module's
/// variables), as written; [`Partial::or`] fills the gaps of one from the next.
#[derive(Default)]
pub(super) struct Partial {
    pub(super) host: Option<String>,
    pub(super) port: Option<String>,
    pub(super) dbname: Option<String>,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
    pub(super) ssl_mode: Option<String>,
    pub(super) ssl_root_cert: Option<String>,
    pub(super) application_name: Option<String>,
    pub(super) options: Option<String>,
    pub(super) schema: Option<String>,
    pub(super) connect_timeout: Option<String>,
}

impl Partial {
    /// Each field from `self`, or else from `other`.
    pub(super) fn or(self, other: Partial) -> Partial {
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

/// Parses `postgres://user:password@host:port/dbname?param=value`.
pub(super) fn parse_url(url: &str) -> Result<Partial, ConfigError> {
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

/// Undoes %-encoding; `None` for a bad escape or a result that is not UTF-8.
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

/// %-encodes everything but the URL's unreserved characters.
pub(super) fn encode(s: &str) -> String {
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
