//! Encrypted upstreams: DNS over TLS (RFC 7858) and DNS over HTTPS (RFC 8484), through
//! hickory-net's multiplexed clients. One long-lived connection per upstream, re-opened on error.
//! The answer comes back as wire bytes and goes through the same cache and pipeline as UDP.

use crate::upstream::UpstreamError;
use crate::wire;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::xfer::{DnsExchange, DnsHandle, FirstAnswer};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncryptedKind {
    /// DNS over TLS.
    Tls,
    /// DNS over HTTPS (HTTP/2 POST), with the URL path.
    Https { path: String },
}

/// One encrypted upstream.
pub struct EncryptedUpstream {
    addr: SocketAddr,
    server_name: String,
    kind: EncryptedKind,
    tls: Arc<rustls::ClientConfig>,
    /// Owns the connection's background task (dropping the provider aborts it).
    runtime: TokioRuntimeProvider,
    connection: tokio::sync::Mutex<Option<DnsExchange<TokioRuntimeProvider>>>,
}

/// The TLS client settings: Mozilla's roots (compiled in) plus an optional PEM file of extra CAs.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("upstream.ca_file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("upstream.ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "upstream.ca_file {}: no PEM certificate in it",
                path.display()
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("upstream.ca_file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl EncryptedUpstream {
    pub fn new(
        addr: SocketAddr,
        server_name: String,
        kind: EncryptedKind,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        EncryptedUpstream {
            addr,
            server_name,
            kind,
            tls,
            runtime: TokioRuntimeProvider::new(),
            connection: tokio::sync::Mutex::new(None),
        }
    }

    async fn connect(
        &self,
        budget: Duration,
    ) -> Result<DnsExchange<TokioRuntimeProvider>, UpstreamError> {
        let fail = |e: String| UpstreamError::Failed(self.addr, e);
        let provider = self.runtime.clone();
        let connecting = async {
            match &self.kind {
                EncryptedKind::Tls => {
                    let name = ServerName::try_from(self.server_name.clone()).map_err(|e| {
                        fail(format!("TLS server name {:?}: {e}", self.server_name))
                    })?;
                    let mut cfg = (*self.tls).clone();
                    cfg.alpn_protocols = vec![b"dot".to_vec()];
                    hickory_net::tls::tls_exchange(self.addr, name, cfg, budget, None, provider)
                        .await
                        .map_err(|e| fail(format!("DoT connect: {e}")))
                }
                EncryptedKind::Https { path } => {
                    let mut builder =
                        hickory_net::h2::HttpsClientStream::builder(self.tls.clone(), provider);
                    builder.request_timeout(budget);
                    builder
                        .exchange(
                            self.addr,
                            Arc::from(self.server_name.as_str()),
                            Arc::from(path.as_str()),
                        )
                        .await
                        .map_err(|e| fail(format!("DoH connect: {e}")))
                }
            }
        };
        match tokio::time::timeout(budget, connecting).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout(budget.as_millis() as u64)),
        }
    }

    /// One query over the (possibly re-opened) connection, within `budget`.
    pub async fn exchange(
        &self,
        question: &[u8],
        dnssec_ok: bool,
        cd: bool,
        budget: Duration,
    ) -> Result<Vec<u8>, UpstreamError> {
        let deadline = tokio::time::Instant::now() + budget;
        let exchange = {
            let mut conn = self.connection.lock().await;
            match conn.as_ref() {
                Some(c) => c.clone(),
                None => {
                    let c = self.connect(budget).await?;
                    *conn = Some(c.clone());
                    c
                }
            }
        };
        let mut pkt = Vec::with_capacity(question.len() + 24);
        // DoH recommends ID 0 (cache friendliness); the multiplexer for DoT assigns its own.
        wire::upstream_query(0, question, dnssec_ok, cd, &mut pkt);
        let msg = Message::from_vec(&pkt)
            .map_err(|e| UpstreamError::Failed(self.addr, format!("query encoding: {e}")))?;
        let request = DnsRequest::new(msg, DnsRequestOptions::default());
        let answer = tokio::time::timeout_at(deadline, exchange.send(request).first_answer()).await;
        match answer {
            Ok(Ok(resp)) => Ok(resp.into_buffer()),
            Ok(Err(e)) => {
                // Broken connection: open a new one for the next query.
                *self.connection.lock().await = None;
                Err(UpstreamError::Failed(
                    self.addr,
                    format!("encrypted exchange: {e}"),
                ))
            }
            Err(_) => Err(UpstreamError::Timeout(budget.as_millis() as u64)),
        }
    }
}
