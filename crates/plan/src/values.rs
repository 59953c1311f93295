//! Values with a grammar of their own: DNS-1123 names, Kubernetes quantities,
//! Go-style durations, label keys and values, environment variable names.
//! Each parses when the plan is read, so a bad one is reported at its position.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration as StdDuration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Checks a DNS-1123 label: at most 63 characters, lowercase letters, digits and
/// `-`, starting and ending with a letter or digit.
///
/// # Errors
/// Says which rule `s` breaks.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!(
            "{s:?} is {} characters; at most 63 are allowed",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{s:?} is not a DNS-1123 label: {c:?} is not allowed (use lowercase letters, digits and '-')"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(format!(
            "{s:?} is not a DNS-1123 label: it must start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a DNS-1123 subdomain (names of Secrets, ConfigMaps, service accounts):
/// at most 253 characters, dot-separated labels.
///
/// # Errors
/// Says which rule `s` breaks.
pub fn check_dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("{s:?} is longer than 253 characters"));
    }
    for part in s.split('.') {
        check_dns_label(part).map_err(|e| {
            if s.contains('.') {
                format!("{s:?} is not a DNS-1123 subdomain: {e}")
            } else {
                e
            }
        })?;
    }
    Ok(())
}

/// Checks a label or annotation key: an optional DNS subdomain prefix and `/`, then a
/// name of at most 63 characters of letters, digits, `-`, `_`, `.`, starting and
/// ending with a letter or digit.
///
/// # Errors
/// Says which rule `key` breaks.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        check_dns_subdomain(p).map_err(|e| format!("key prefix: {e}"))?;
    }
    check_label_value(name).map_err(|e| format!("key {key:?}: {e}"))?;
    if name.is_empty() {
        return Err(format!("key {key:?} has an empty name"));
    }
    Ok(())
}

/// Checks a label value: empty, or at most 63 characters of letters, digits, `-`,
/// `_`, `.`, starting and ending with a letter or digit.
///
/// # Errors
/// Says which rule `value` breaks.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err(format!("{value:?} is longer than 63 characters"));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !value.chars().all(ok)
        || !value.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !value.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "{value:?} must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks an environment variable name as Kubernetes does (`[-._a-zA-Z][-._a-zA-Z0-9]*`).
///
/// # Errors
/// Says why `name` is not one.
pub fn check_env_name(name: &str) -> Result<(), String> {
    let ok_first = |c: char| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_');
    if !name.starts_with(ok_first) || !name.chars().all(|c| ok_first(c) || c.is_ascii_digit()) {
        return Err(format!(
            "{name:?} is not a valid environment variable name (letters, digits, '_', '-', '.', not starting with a digit)"
        ));
    }
    Ok(())
}

/// A DNS-1123 label: the name of a plan, a target or a namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks and wraps `s`.
    ///
    /// # Errors
    /// `s` is not a DNS-1123 label.
    pub fn new(s: &str) -> Result<Name, String> {
        check_dns_label(s)?;
        Ok(Name(s.to_string()))
    }

    /// A built-in name known to be valid (tested where it is used).
    pub(crate) fn trusted(s: &'static str) -> Name {
        Name(s.to_string())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Name::new(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A DNS-1123 label: lowercase letters, digits and '-', at most 63 characters.",
            "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
            "maxLength": 63
        })
    }
}

/// A Kubernetes resource quantity (`500m`, `1`, `0.5`, `512Mi`, `1G`, `1e3`), kept as
/// written and as a number for comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    text: String,
    value: f64,
}

impl Quantity {
    /// Parses a quantity.
    ///
    /// # Errors
    /// `s` is not a quantity, or is negative.
    pub fn parse(s: &str) -> Result<Quantity, String> {
        let bad = || format!("{s:?} is not a quantity (examples: 500m, 0.5, 2, 256Mi, 1Gi, 1G)");
        let number_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let digits = number.strip_prefix(['+', '-']).unwrap_or(number);
        if digits.is_empty() || digits.contains(['+', '-']) {
            return Err(bad());
        }
        let n: f64 = number.parse().map_err(|_| bad())?;
        let factor = match suffix {
            "" => 1.0,
            "n" => 1e-9,
            "u" => 1e-6,
            "m" => 1e-3,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "P" => 1e15,
            "E" => 1e18,
            "Ki" => 1024.0,
            "Mi" => 1024f64.powi(2),
            "Gi" => 1024f64.powi(3),
            "Ti" => 1024f64.powi(4),
            "Pi" => 1024f64.powi(5),
            "Ei" => 1024f64.powi(6),
            exp if exp.starts_with(['e', 'E']) => {
                let e: i32 = exp[1..].parse().map_err(|_| bad())?;
                if !(-30..=30).contains(&e) {
                    return Err(bad());
                }
                10f64.powi(e)
            }
            _ => return Err(bad()),
        };
        if n < 0.0 {
            return Err(format!("{s:?} is negative"));
        }
        Ok(Quantity {
            text: s.to_string(),
            value: n * factor,
        })
    }

    /// A built-in quantity known to be valid (tested where it is used).
    pub(crate) fn trusted(text: &'static str, value: f64) -> Quantity {
        Quantity {
            text: text.to_string(),
            value,
        }
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The amount (cores for cpu, bytes for memory).
    pub fn value(&self) -> f64 {
        self.value
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Quantity::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A Kubernetes quantity: 500m, 0.5, 2, 256Mi, 1Gi, 1G.",
            "anyOf": [
                {"type": "string", "pattern": "^\\+?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([numkMGTPE]|[KMGTPE]i|[eE][-+]?[0-9]+)?$"},
                {"type": "number", "minimum": 0}
            ]
        })
    }
}

/// The one duration grammar of kubemigrate, for plan fields and command-line flags
/// alike (docs/plan.md, "Durations"): one or more `<number><unit>` pairs with nothing
/// between them, as Go's `time.ParseDuration` and Terraform write them: `90s`,
/// `10m`, `1h30m`, `1.5s`, `500ms`. A number is decimal digits with an optional
/// fraction (`1.5`, `.5`); a unit is `ns`, `us` (or `µs`), `ms`, `s`, `m` or `h`. Zero
/// (`0s`) is a duration: whether a field or a flag accepts it is that field's or
/// flag's rule, as is any upper limit.
///
/// # Errors
///
/// [`DurationError`]: the text is negative, not in the grammar, or too long to hold.
pub fn parse_duration(text: &str) -> Result<StdDuration, DurationError> {
    if text.trim_start().starts_with('-') {
        return Err(DurationError::Negative(text.to_string()));
    }
    let invalid = || DurationError::Invalid(text.to_string());
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (n, after) = rest.split_at(n_end);
        let n: f64 = n.parse().map_err(|_| invalid())?;
        let u_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(u_end);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += n * secs;
        rest = after;
    }
    StdDuration::try_from_secs_f64(total).map_err(|_| DurationError::TooLong(text.to_string()))
}

/// Writes a length of time in the grammar of [`parse_duration`], largest units first:
/// `10m`, `1h30m`, `2s`, `1s500ms`, `0s`. Below a millisecond is dropped unless that
/// is all there is.
pub fn format_duration(d: StdDuration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return match d.as_nanos() {
            0 => "0s".to_string(),
            n if n % 1000 == 0 => format!("{}us", n / 1000),
            n => format!("{n}ns"),
        };
    }
    let mut out = String::new();
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (sec, milli) = (rest / 1000, rest % 1000);
    for (n, unit) in [(h, "h"), (m, "m"), (sec, "s"), (milli, "ms")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// A text that is not a duration of [`parse_duration`]'s grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// It starts with `-`.
    #[error("{0:?} is negative; give a duration such as 30s, 10m or 1h30m")]
    Negative(String),
    /// It is not in the grammar.
    #[error("{0:?} is not a duration (examples: 90s, 10m, 1h30m)")]
    Invalid(String),
    /// It is too long for a duration to hold.
    #[error("{0:?} is too long")]
    TooLong(String),
}

/// A duration written as Go and Terraform write them: `90s`, `10m`, `1h30m`, `500ms`
/// ([`parse_duration`]'s grammar), above zero and at most a year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    value: StdDuration,
}

impl Duration {
    /// Parses a duration.
    ///
    /// # Errors
    /// `s` is not a duration, or is zero, or is longer than a year.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let value = parse_duration(s).map_err(|e| match e {
            DurationError::TooLong(_) => format!("{s:?} is longer than a year"),
            other => other.to_string(),
        })?;
        if value.is_zero() {
            return Err(format!("{s:?} must be longer than zero"));
        }
        if value > StdDuration::from_secs(366 * 86400) {
            return Err(format!("{s:?} is longer than a year"));
        }
        Ok(Duration {
            text: s.to_string(),
            value,
        })
    }

    /// A built-in duration known to be valid (tested where it is used).
    pub(crate) fn trusted(text: &'static str, value: StdDuration) -> Duration {
        Duration {
            text: text.to_string(),
            value,
        }
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The length of time.
    pub fn value(&self) -> StdDuration {
        self.value
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: 90s, 10m, 1h30m.",
            "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(Quantity::parse("500m").unwrap().value(), 0.5);
        assert_eq!(Quantity::parse("1Gi").unwrap().value(), 1073741824.0);
        assert_eq!(Quantity::parse("1e3").unwrap().value(), 1000.0);
        assert_eq!(Quantity::parse(".5").unwrap().value(), 0.5);
        for bad in ["", "m", "1.2.3", "512MB", "1 Gi", "-1", "1e", "++1", "1-"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            Duration::parse("10m").unwrap().value(),
            StdDuration::from_secs(600)
        );
        assert_eq!(
            Duration::parse("1h30m").unwrap().value(),
            StdDuration::from_secs(5400)
        );
        assert_eq!(
            Duration::parse("1.5s").unwrap().value(),
            StdDuration::from_millis(1500)
        );
        for bad in ["", "10", "m", "10 m", "10min", "0s", "-1s", "9999h"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_one_grammar() {
        let ok = |t: &str| parse_duration(t).unwrap();
        assert_eq!(ok("0s"), StdDuration::ZERO);
        assert_eq!(ok("90s"), StdDuration::from_secs(90));
        assert_eq!(ok("1h30m"), StdDuration::from_secs(5400));
        assert_eq!(ok("1.5s"), StdDuration::from_millis(1500));
        assert_eq!(ok(".5s"), StdDuration::from_millis(500));
        assert_eq!(ok("500ms"), StdDuration::from_millis(500));
        assert_eq!(ok("2us"), ok("2µs"));
        assert_eq!(ok("7ns"), StdDuration::from_nanos(7));
        assert_eq!(ok("1m1m"), StdDuration::from_secs(120));
        assert_eq!(
            parse_duration("-5s"),
            Err(DurationError::Negative("-5s".into()))
        );
        for bad in [
            "",
            "10",
            "s",
            "10 m",
            "1h 30m",
            " 5s",
            "5s ",
            "10min",
            "2d",
            "1e3s",
            "inf",
            "NaNs",
            "5 parsecs",
            "1..2s",
            ".s",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(DurationError::Invalid(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::TooLong("99999999999999999999h".into()))
        );
    }

    #[test]
    fn written_durations_read_back() {
        for (d, text) in [
            (StdDuration::ZERO, "0s"),
            (StdDuration::from_nanos(7), "7ns"),
            (StdDuration::from_micros(3), "3us"),
            (StdDuration::from_millis(500), "500ms"),
            (StdDuration::from_millis(1500), "1s500ms"),
            (StdDuration::from_secs(10), "10s"),
            (StdDuration::from_secs(600), "10m"),
            (StdDuration::from_secs(5400), "1h30m"),
            (StdDuration::from_secs(90_061), "25h1m1s"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text).unwrap(), d, "{text}");
        }
    }

    #[test]
    fn names() {
        assert!(check_dns_label("control-plane").is_ok());
        assert!(check_dns_label("Control").unwrap_err().contains("'C'"));
        assert!(check_dns_label("a_b").is_err());
        assert!(check_dns_label("-a").is_err());
        assert!(check_dns_label(&"a".repeat(64)).unwrap_err().contains("63"));
        assert!(check_dns_subdomain("db-creds.v1").is_ok());
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_key("team").is_ok());
        assert!(check_label_key("a/b/c").is_err());
        assert!(check_label_value("v1.2_x").is_ok());
        assert!(check_label_value("bad value").is_err());
        assert!(check_env_name("LOG_LEVEL").is_ok());
        assert!(check_env_name("1X").is_err());
        assert!(check_env_name("A=B").is_err());
    }
}
