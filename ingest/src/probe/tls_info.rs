//! The TLS series of a probe whose handshake succeeded: certificate expiry, the leaf's identity and
//! the protocol version, as blackbox_exporter names them.

use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

use super::registry::ProbeMetrics;

/// Go's zero `time.Time` in Unix seconds: what blackbox_exporter reports as the last chain's expiry
/// when no chain was verified (`insecure_skip_verify`).
const GO_ZERO_TIME: f64 = -62_135_596_800.0;

/// Sets the TLS series from the certificates the server presented (leaf first). `verified` is
/// whether the chain was checked against the roots.
pub fn set_tls_metrics(
    m: &mut ProbeMetrics,
    certs: &[rustls::pki_types::CertificateDer<'_>],
    version: Option<rustls::ProtocolVersion>,
    verified: bool,
) {
    let parsed: Vec<X509Certificate<'_>> = certs
        .iter()
        .filter_map(|c| X509Certificate::from_der(c.as_ref()).ok().map(|(_, x)| x))
        .collect();
    let not_after: Vec<f64> = parsed
        .iter()
        .map(|c| c.validity().not_after.timestamp() as f64)
        .collect();
    if let Some(earliest) = not_after.iter().copied().reduce(f64::min) {
        m.set(
            "probe_ssl_earliest_cert_expiry",
            "Returns last SSL chain expiry in unixtime",
            earliest,
        );
    }
    // blackbox_exporter takes the earliest expiry of each verified chain (which ends at a root
    // from the trust store) and reports the latest of those; rustls does not expose the chains it
    // built, so Vigil uses the chain the server presented.
    m.set(
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "Returns last SSL chain expiry in timestamp",
        if verified {
            not_after
                .iter()
                .copied()
                .reduce(f64::min)
                .unwrap_or(GO_ZERO_TIME)
        } else {
            GO_ZERO_TIME
        },
    );
    if let (Some(leaf), Some(der)) = (parsed.first(), certs.first()) {
        let fp = hex(&Sha256::digest(der.as_ref()));
        let subject = go_name(leaf.subject());
        let issuer = go_name(leaf.issuer());
        let sans = leaf
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        m.set_with(
            "probe_ssl_last_chain_info",
            "Contains SSL leaf certificate information",
            &[
                ("fingerprint_sha256", &fp),
                ("issuer", &issuer),
                ("subject", &subject),
                ("subjectalternative", &sans),
            ],
            1.0,
        );
    }
    let v = match version {
        Some(rustls::ProtocolVersion::TLSv1_0) => "TLS 1.0",
        Some(rustls::ProtocolVersion::TLSv1_1) => "TLS 1.1",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        _ => "unknown",
    };
    m.set_with(
        "probe_tls_version_info",
        "Returns the TLS version used or NaN when unknown",
        &[("version", v)],
        1.0,
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A distinguished name as Go's `pkix.Name.String()` writes it: RDNs last to first, `CN=…,O=…`.
fn go_name(n: &X509Name<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for rdn in n.iter().collect::<Vec<_>>().into_iter().rev() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let oid = a.attr_type().to_id_string();
                let key = match oid.as_str() {
                    "2.5.4.3" => "CN".to_string(),
                    "2.5.4.5" => "SERIALNUMBER".to_string(),
                    "2.5.4.6" => "C".to_string(),
                    "2.5.4.7" => "L".to_string(),
                    "2.5.4.8" => "ST".to_string(),
                    "2.5.4.9" => "STREET".to_string(),
                    "2.5.4.10" => "O".to_string(),
                    "2.5.4.11" => "OU".to_string(),
                    "2.5.4.17" => "POSTALCODE".to_string(),
                    other => other.to_string(),
                };
                let v = a.as_str().unwrap_or("").to_string();
                format!("{key}={}", escape_dn(&v))
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    parts.join(",")
}

/// RFC 4514 escaping, as Go applies it.
fn escape_dn(v: &str) -> String {
    let mut out = String::new();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == v.chars().count() - 1 && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
