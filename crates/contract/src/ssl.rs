//! libpq's `sslmode`.

/// libpq's `sslmode`, as the plan, URLs and `PGSSLMODE` spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize, schemars::JsonSchema),
    serde(rename_all = "kebab-case")
)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// As libpq: try without TLS first (kubemigrate treats it as prefer).
    Allow,
    /// TLS when the server offers it, without verifying the certificate.
    #[default]
    Prefer,
    /// TLS, without verifying the certificate.
    Require,
    /// TLS and a certificate signed by a trusted root; the host name is not checked.
    VerifyCa,
    /// TLS, a trusted certificate, and a host name that matches it.
    VerifyFull,
}

impl SslMode {
    /// Every mode, in libpq's order.
    pub const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What kubemigrate does with it: `allow` works as `prefer`.
    pub fn effective(self) -> SslMode {
        match self {
            SslMode::Allow => SslMode::Prefer,
            other => other,
        }
    }
}

/// A string that is not an sslmode; its message lists the modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSslMode(pub String);

impl std::fmt::Display for UnknownSslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let modes: Vec<&str> = SslMode::ALL.iter().map(|m| m.as_str()).collect();
        write!(f, "sslmode {:?} is not one of {}", self.0, modes.join(", "))
    }
}

impl std::error::Error for UnknownSslMode {}

impl std::str::FromStr for SslMode {
    type Err = UnknownSslMode;
    fn from_str(s: &str) -> Result<Self, UnknownSslMode> {
        SslMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownSslMode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_spelled_and_others_are_listed() {
        for m in SslMode::ALL {
            assert_eq!(m.as_str().parse::<SslMode>(), Ok(m));
        }
        assert_eq!(SslMode::Allow.effective(), SslMode::Prefer);
        assert_eq!(
            "maybe".parse::<SslMode>().unwrap_err().to_string(),
            "sslmode \"maybe\" is not one of disable, allow, prefer, require, verify-ca, verify-full"
        );
    }
}
