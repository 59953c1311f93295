//! TLS over rustls: the client configuration for each sslmode, and the certificate
//! verifier of the modes that do not check the host name.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::*;

impl ConnectOptions {
    /// The TLS configuration of the sslmode (none for `disable`); `target` names the
    /// connection in errors.
    pub(super) fn tls_config(
        &self,
        target: &str,
    ) -> Result<Option<rustls::ClientConfig>, ConnectError> {
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
            SslMode::Allow | SslMode::Prefer | SslMode::Require => Arc::new(Verifier {
                algorithms: provider.signature_verification_algorithms,
                chain: None,
            }),
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
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| tls_err(e.to_string()))?;
                if self.ssl_mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(Verifier {
                        algorithms: provider.signature_verification_algorithms,
                        chain: Some(webpki),
                    })
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

/// The certificate check of the modes that do not check the host name, while still
/// checking that the handshake signatures are valid (verify-full uses webpki's own
/// verifier as it is).
#[derive(Debug)]
struct Verifier {
    /// What the handshake signatures are checked with (the provider's, as webpki's).
    algorithms: WebPkiSupportedAlgorithms,
    /// verify-ca: the chain must lead to a trusted root; the host name is not
    /// checked. `None`: any certificate is accepted (sslmode prefer/require do not
    /// verify, as in libpq).
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
