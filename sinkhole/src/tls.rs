//! HTTPS: certificate (configured or self-signed) and the rustls server config.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

use crate::{SinkholeConfig, SinkholeError};

/// The name in the generated self-signed certificate.
pub const SELF_SIGNED_NAME: &str = "sinkhole.dnsward.invalid";

pub(crate) struct Tls {
    pub config: Arc<ServerConfig>,
    /// DER of the leaf certificate served.
    pub cert_der: Vec<u8>,
}

pub(crate) fn build(cfg: &SinkholeConfig) -> Result<Tls, SinkholeError> {
    let (chain, key) = match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => (load_certs(cert)?, load_key(key)?),
        _ => self_signed()?,
    };
    let cert_der = chain[0].as_ref().to_vec();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkholeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match &cfg.key_file {
            Some(p) => SinkholeError::CertFile {
                key: "key_file",
                path: p.clone(),
                msg: format!("does not fit the certificate: {e}"),
            },
            None => SinkholeError::Tls(e.to_string()),
        })?;
    // No ALPN: a client offering only h2 still completes the handshake (and falls back to HTTP/1.1).
    Ok(Tls {
        config: Arc::new(config),
        cert_der,
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, SinkholeError> {
    let err = |msg: String| SinkholeError::CertFile {
        key: "cert_file",
        path: path.to_path_buf(),
        msg,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, SinkholeError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| SinkholeError::CertFile {
        key: "key_file",
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), SinkholeError> {
    let ck = rcgen::generate_simple_self_signed(vec![SELF_SIGNED_NAME.to_string()])
        .map_err(|e| SinkholeError::Tls(format!("generating a self-signed certificate: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    Ok((vec![ck.cert.der().clone()], key))
}
