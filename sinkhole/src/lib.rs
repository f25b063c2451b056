//! dnsward's sinkhole server.
//!
//! A sinkhole address is only useful if something listens there: the machine that then connects
//! to it is the infected one. This crate listens on the configured sinkhole addresses:
//! - HTTP: a plain block page naming the blocked name and why (looked up by client and Host);
//! - HTTPS: the ClientHello's SNI is read first (so it is logged even when the client then
//!   rejects the certificate), then the handshake with a configured or self-signed certificate,
//!   then the same block page;
//! - raw TCP catch-all: log and close.
//!
//! Every accepted connection becomes exactly one [`SinkholeHit`] given to the [`HitSink`].

mod config;
pub mod http;
mod recent;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub use config::SinkholeConfig;
pub use recent::RecentBlocks;
pub use tls::SELF_SIGNED_NAME;

/// Why a name was sinkholed, for the block page and the event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockInfo {
    /// The name the resolver answered with the sinkhole address.
    pub name: String,
    /// Block category (`list`, `dga`, `flux`, `ioc`, `parking`, ...).
    pub category: String,
    /// One-line reason.
    pub reason: String,
}

/// Which name the resolver recently sinkholed for a client.
pub trait BlockLookup: Send + Sync + 'static {
    /// The most recent name sinkholed for this client (and Host / SNI, if given) with a
    /// one-line reason. Called on the connection's task: must not block for long.
    fn lookup(&self, client: IpAddr, host: Option<&str>) -> Option<BlockInfo>;
}

/// A lookup that knows nothing (standalone binary).
pub struct NoLookup;

impl BlockLookup for NoLookup {
    fn lookup(&self, _: IpAddr, _: Option<&str>) -> Option<BlockInfo> {
        None
    }
}

/// One connection to the sinkhole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkholeHit {
    pub time: SystemTime,
    /// The connecting client (IPv4-mapped IPv6 addresses given as IPv4).
    pub client: SocketAddr,
    /// The sinkhole port it connected to.
    pub local_port: u16,
    /// `http`, `https` or `tcp`.
    pub protocol: &'static str,
    /// HTTP Host or TLS SNI, normalized (lower case, no port, no trailing dot).
    pub host_or_sni: Option<String>,
    /// The name the resolver sinkholed for this client ([`BlockLookup`]).
    pub name: Option<String>,
}

/// Receives every hit. Called on the connection's task: must not block (queue, don't write).
pub trait HitSink: Send + Sync + 'static {
    fn hit(&self, hit: &SinkholeHit);
}

#[derive(Debug, thiserror::Error)]
pub enum SinkholeError {
    #[error("{0}")]
    Config(String),
    #[error("sinkhole_server.{kind}: cannot listen on {addr}: {source}")]
    Bind {
        kind: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("sinkhole_server.{key}: {path}: {msg}")]
    CertFile {
        key: &'static str,
        path: PathBuf,
        msg: String,
    },
    #[error("sinkhole_server: TLS setup: {0}")]
    Tls(String),
}

/// The running listeners. Dropping this does not stop them; call [`RunningSinkhole::shutdown`].
pub struct RunningSinkhole {
    /// `(protocol, bound address)` for every listener, in config order (http, https, tcp).
    pub addrs: Vec<(&'static str, SocketAddr)>,
    /// DER of the certificate the HTTPS listeners serve (None without HTTPS listeners).
    pub certificate_der: Option<Vec<u8>>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSinkhole {
    /// Stop accepting (connections being handled finish within their timeouts).
    pub fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// The bound address of the first listener of this protocol.
    pub fn addr(&self, protocol: &str) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| *a)
    }
}

struct Ctx {
    lookup: Arc<dyn BlockLookup>,
    sink: Arc<dyn HitSink>,
    timeout: Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Ctx {
    fn emit(
        &self,
        client: SocketAddr,
        local_port: u16,
        protocol: &'static str,
        host: Option<String>,
        info: Option<&BlockInfo>,
    ) {
        let hit = SinkholeHit {
            time: SystemTime::now(),
            client,
            local_port,
            protocol,
            host_or_sni: host,
            name: info.map(|b| b.name.clone()),
        };
        tracing::debug!(
            client = %hit.client, port = hit.local_port, protocol,
            host = hit.host_or_sni.as_deref(), name = hit.name.as_deref(),
            "sinkhole hit"
        );
        self.sink.hit(&hit);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Http,
    Https,
    Tcp,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Tcp => "tcp",
        }
    }
}

/// Bind every configured listener and start serving. Errors (bad config, address in use,
/// unreadable certificate) come back before anything is served. Does not look at `cfg.enabled`:
/// the caller decides whether to start it.
pub async fn serve(
    cfg: &SinkholeConfig,
    lookup: Arc<dyn BlockLookup>,
    sink: Arc<dyn HitSink>,
) -> Result<RunningSinkhole, SinkholeError> {
    cfg.validate().map_err(SinkholeError::Config)?;
    let tls = if cfg.https.is_empty() {
        None
    } else {
        Some(tls::build(cfg)?)
    };
    let mut listeners = Vec::new();
    for (kind, addrs) in [
        (Kind::Http, &cfg.http),
        (Kind::Https, &cfg.https),
        (Kind::Tcp, &cfg.tcp),
    ] {
        for addr in addrs {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| SinkholeError::Bind {
                    kind: kind.name(),
                    addr: *addr,
                    source,
                })?;
            let bound = l.local_addr().map_err(|source| SinkholeError::Bind {
                kind: kind.name(),
                addr: *addr,
                source,
            })?;
            listeners.push((kind, l, bound));
        }
    }
    let ctx = Arc::new(Ctx {
        lookup,
        sink,
        timeout: Duration::from_millis(cfg.read_timeout_ms),
        tls: tls.as_ref().map(|t| t.config.clone()),
    });
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let mut running = RunningSinkhole {
        addrs: Vec::new(),
        certificate_der: tls.map(|t| t.cert_der),
        tasks: Vec::new(),
    };
    for (kind, l, bound) in listeners {
        tracing::info!(protocol = kind.name(), addr = %bound, "sinkhole listening");
        running.addrs.push((kind.name(), bound));
        running.tasks.push(tokio::spawn(accept_loop(
            kind,
            l,
            bound.port(),
            ctx.clone(),
            limit.clone(),
        )));
    }
    Ok(running)
}

async fn accept_loop(
    kind: Kind,
    listener: TcpListener,
    port: u16,
    ctx: Arc<Ctx>,
    limit: Arc<Semaphore>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(protocol = kind.name(), error = %e, "sinkhole accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Wait for a slot before handling (and before accepting the next one): at most
        // max_connections handled plus one waiting per listener; the rest stay in the backlog.
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let client = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match kind {
                Kind::Http => handle_http(stream, client, port, &ctx).await,
                Kind::Https => handle_https(stream, client, port, &ctx).await,
                Kind::Tcp => handle_tcp(stream, client, port, &ctx),
            }
        });
    }
}

async fn handle_http(mut stream: TcpStream, client: SocketAddr, port: u16, ctx: &Ctx) {
    let head = http::read_head(&mut stream, ctx.timeout).await;
    let info = ctx.lookup.lookup(client.ip(), head.host.as_deref());
    ctx.emit(client, port, "http", head.host.clone(), info.as_ref());
    http::respond(&mut stream, &head, info.as_ref(), client, ctx.timeout).await;
}

fn handle_tcp(stream: TcpStream, client: SocketAddr, port: u16, ctx: &Ctx) {
    let info = ctx.lookup.lookup(client.ip(), None);
    ctx.emit(client, port, "tcp", None, info.as_ref());
    drop(stream);
}

async fn handle_https(stream: TcpStream, client: SocketAddr, port: u16, ctx: &Ctx) {
    let Some(config) = ctx.tls.clone() else {
        return;
    };
    // Read the ClientHello first: the SNI is recorded whether or not the handshake succeeds
    // (most clients reject the sinkhole's certificate).
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match tokio::time::timeout(ctx.timeout, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            tracing::debug!(%client, error = %e, "sinkhole: no TLS ClientHello");
            let info = ctx.lookup.lookup(client.ip(), None);
            ctx.emit(client, port, "https", None, info.as_ref());
            return;
        }
        Err(_) => {
            let info = ctx.lookup.lookup(client.ip(), None);
            ctx.emit(client, port, "https", None, info.as_ref());
            return;
        }
    };
    let sni = start
        .client_hello()
        .server_name()
        .and_then(http::normalize_host);
    let info = ctx.lookup.lookup(client.ip(), sni.as_deref());
    ctx.emit(client, port, "https", sni.clone(), info.as_ref());
    let mut tls = match tokio::time::timeout(ctx.timeout, start.into_stream(config)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%client, sni = sni.as_deref(), error = %e, "sinkhole: TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let mut head = http::read_head(&mut tls, ctx.timeout).await;
    // The page names the Host asked for; SNI when there is no Host.
    if head.host.is_none() {
        head.host = sni;
    }
    let page_info = match head.host.as_deref() {
        Some(h) if info.as_ref().is_none_or(|b| b.name != h) => {
            ctx.lookup.lookup(client.ip(), Some(h))
        }
        _ => info,
    };
    http::respond(&mut tls, &head, page_info.as_ref(), client, ctx.timeout).await;
}
