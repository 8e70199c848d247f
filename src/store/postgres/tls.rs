//! PostgreSQL over TLS, through rustls: `sslmode` and `sslrootcert` in the
//! URL, read as libpq reads them.
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default, as libpq's) | when the server offers it | not checked |
//! | `require` | always | not checked; checked as `verify-ca` when `sslrootcert` is given (libpq does the same) |
//! | `verify-ca` | always | signed by `sslrootcert` (or the system's roots) |
//! | `verify-full` | always | that, and issued for the host name |
//!
//! Unix sockets never use TLS (libpq ignores `sslmode` there). The roots are
//! the system's (`rustls-native-certs`) unless `sslrootcert` names a PEM file;
//! `sslrootcert=system` names the system's explicitly. Client certificates
//! (`sslcert`, `sslkey`) are not supported: the URL is refused, saying so.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asks of TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS part of a PostgreSQL URL.
#[derive(Debug)]
pub(super) struct TlsRequest {
    mode: Mode,
    root: Option<PathBuf>,
}

/// `url` without `sslmode` and `sslrootcert` (which tokio-postgres does not
/// read), and what they asked. The message says what is wrong.
pub(super) fn split_url(url: &str) -> Result<(String, TlsRequest), String> {
    let mut request = TlsRequest {
        mode: Mode::Prefer,
        root: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), request));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = rocket::http::RawStr::new(value).percent_decode_lossy();
        match name {
            "sslmode" => {
                request.mode = match &*value {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                        ))
                    }
                }
            }
            "sslrootcert" => request.root = Some(PathBuf::from(&*value)),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(format!(
                    "`{name}`: client certificates are not supported; authenticate with a password"
                ))
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, request))
}

impl TlsRequest {
    /// The mode tokio-postgres is given for `config`: none over unix
    /// sockets only.
    pub(super) fn ssl_mode(&self, config: &tokio_postgres::Config) -> SslMode {
        let sockets_only =
            !config.get_hosts().is_empty() && config.get_hosts().iter().all(|host| !matches!(host, Host::Tcp(_)));
        match self.mode {
            _ if sockets_only => SslMode::Disable,
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    /// The connector for this request: its roots loaded, its checks set.
    pub(super) fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let verified = match (self.mode, &self.root) {
            (Mode::Disable | Mode::Prefer, _) | (Mode::Require, None) => None,
            (Mode::Require | Mode::VerifyCa, _) => Some(false),
            (Mode::VerifyFull, _) => Some(true),
        };
        let config = match verified {
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth(),
            Some(check_name) => {
                let roots = Arc::new(self.roots()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| format!("TLS: {e}"))?;
                if check_name {
                    builder.with_webpki_verifier(webpki).with_no_client_auth()
                } else {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
                        .with_no_client_auth()
                }
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }

    /// The roots certificates are checked against.
    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match &self.root {
            Some(path) if path.as_os_str() != "system" => {
                let shown = path.display();
                let pem = std::fs::read(path).map_err(|e| format!("cannot read sslrootcert `{shown}`: {e}"))?;
                for certificate in CertificateDer::pem_slice_iter(&pem) {
                    let certificate =
                        certificate.map_err(|e| format!("sslrootcert `{shown}` is not PEM certificates: {e}"))?;
                    roots
                        .add(certificate)
                        .map_err(|e| format!("sslrootcert `{shown}`: {e}"))?;
                }
                if roots.is_empty() {
                    return Err(format!("sslrootcert `{shown}` holds no certificate"));
                }
            }
            _ => {
                let found = rustls_native_certs::load_native_certs();
                for certificate in found.certs {
                    let _ = roots.add(certificate);
                }
                if roots.is_empty() {
                    return Err("no system root certificates were found; name a CA file with sslrootcert".into());
                }
            }
        }
        Ok(roots)
    }
}

use rustls_pki_types::pem::PemObject as _;

/// `sslmode=require` without a root: the connection is encrypted, the
/// certificate not checked (libpq's `require`); handshake signatures are.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked against the roots, the host name not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
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
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, request) =
            split_url("postgresql://u@db.example/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fca.pem")
                .unwrap();
        assert_eq!(url, "postgresql://u@db.example/app?application_name=x");
        assert_eq!(request.mode, Mode::VerifyFull);
        assert_eq!(request.root, Some(PathBuf::from("/ca.pem")));
        let (url, request) = split_url("postgresql://u@db.example/app").unwrap();
        assert_eq!(
            (url.as_str(), request.mode),
            ("postgresql://u@db.example/app", Mode::Prefer)
        );
        assert!(split_url("postgresql://u@h/app?sslmode=maybe")
            .unwrap_err()
            .contains("sslmode"));
        assert!(split_url("postgresql://u@h/app?sslcert=/c.pem")
            .unwrap_err()
            .contains("client certificates"));
    }
}
