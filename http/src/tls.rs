//! rustls configurations built from Prometheus's `tls_config` (outgoing) and `tls_server_config`
//! (incoming): PEM loading, root stores, client certificates, `server_name` and
//! `insecure_skip_verify`.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::HttpConfigError;

/// The one crypto provider of every TLS connection Vigil makes or accepts.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS version as Prometheus names it (`TLS12`, `TLS13`).
pub fn version(name: &str) -> Result<&'static rustls::SupportedProtocolVersion, HttpConfigError> {
    match name {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        "TLS10" | "TLS11" => Err(HttpConfigError::Invalid(format!(
            "TLS version {name} is not supported: Vigil speaks TLS12 and TLS13"
        ))),
        other => Err(HttpConfigError::Invalid(format!(
            "unknown TLS version: {other}"
        ))),
    }
}

/// The protocol versions between `min` and `max` (either may be empty: no bound).
pub fn versions(
    min: &str,
    max: &str,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, HttpConfigError> {
    let rank = |v: &rustls::SupportedProtocolVersion| {
        if v.version == rustls::ProtocolVersion::TLSv1_2 {
            0
        } else {
            1
        }
    };
    let lo = if min.is_empty() {
        0
    } else {
        rank(version(min)?)
    };
    let hi = if max.is_empty() {
        1
    } else {
        rank(version(max)?)
    };
    if lo > hi {
        return Err(HttpConfigError::Invalid(format!(
            "max_version must be greater than or equal to min_version, got min_version {min} and max_version {max}"
        )));
    }
    Ok([&rustls::version::TLS12, &rustls::version::TLS13]
        .into_iter()
        .filter(|v| (lo..=hi).contains(&rank(v)))
        .collect())
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, HttpConfigError> {
    std::fs::read(path).map_err(|e| {
        HttpConfigError::Invalid(format!("unable to read {what} {}: {e}", path.display()))
    })
}

/// Certificates from PEM text; `origin` names the file (or "inline") in errors.
pub fn certs_from_pem(
    pem: &[u8],
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, HttpConfigError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| HttpConfigError::Invalid(format!("{origin}: invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(HttpConfigError::Invalid(format!(
            "{origin}: no PEM certificate found"
        )));
    }
    Ok(certs)
}

/// A private key from PEM text (PKCS#8, PKCS#1 or SEC1).
pub fn key_from_pem(pem: &[u8], origin: &str) -> Result<PrivateKeyDer<'static>, HttpConfigError> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| HttpConfigError::Invalid(format!("{origin}: invalid PEM: {e}")))?
        .ok_or_else(|| HttpConfigError::Invalid(format!("{origin}: no PEM private key found")))
}

/// Certificates from a file or inline PEM (exactly one of them is non-empty).
pub fn load_certs(
    file: &str,
    inline: &str,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, HttpConfigError> {
    if !file.is_empty() {
        certs_from_pem(&read(Path::new(file), what)?, file)
    } else {
        certs_from_pem(inline.as_bytes(), &format!("inline {what}"))
    }
}

/// A private key from a file or inline PEM.
pub fn load_key(
    file: &str,
    inline: &str,
    what: &str,
) -> Result<PrivateKeyDer<'static>, HttpConfigError> {
    if !file.is_empty() {
        key_from_pem(&read(Path::new(file), what)?, file)
    } else {
        key_from_pem(inline.as_bytes(), &format!("inline {what}"))
    }
}

/// The roots a client trusts without a `ca`/`ca_file`: the system's certificates, or the Mozilla set
/// compiled in when the system has none (a minimal container).
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

/// A root store holding exactly these CA certificates.
pub fn roots_of(certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, HttpConfigError> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| HttpConfigError::Invalid(format!("invalid CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// Accepts any server certificate (`insecure_skip_verify: true`). Signatures are still checked, so
/// the handshake is with the holder of the presented key.
#[derive(Debug)]
pub(crate) struct NoVerification(pub Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Verifies the server's certificate against `server_name` instead of the URL's host, as Go's
/// `tls.Config.ServerName` does.
#[derive(Debug)]
pub(crate) struct FixedName {
    pub inner: Arc<dyn ServerCertVerifier>,
    pub name: ServerName<'static>,
}

impl ServerCertVerifier for FixedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
