//! Sockets: UDP (one SO_REUSEPORT socket per worker) and TCP on the same addresses.

use crate::engine::{Engine, Fast, Transport};
use crate::stats::Stats;
use crate::ServerConfig;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// A running server; dropping it (or calling [`RunningServer::shutdown`]) stops the listeners.
pub struct RunningServer {
    /// The bound addresses (UDP and TCP share each), with ephemeral ports resolved.
    pub addrs: Vec<SocketAddr>,
    pub engine: Arc<Engine>,
    tasks: JoinSet<()>,
}

impl RunningServer {
    pub fn shutdown(mut self) {
        self.tasks.abort_all();
    }
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    // Room for bursts: a full receive queue drops queries silently.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Binds every listen address (UDP + TCP on the same port, also for port 0) and starts serving.
/// Must be called inside a tokio runtime.
pub async fn start(engine: Arc<Engine>, cfg: &ServerConfig) -> std::io::Result<RunningServer> {
    let mut tasks = JoinSet::new();
    let mut addrs = Vec::new();
    let workers = cfg.worker_count();
    let inflight = Arc::new(Semaphore::new(cfg.max_inflight));
    let tcp_slots = Arc::new(Semaphore::new(cfg.tcp_max_connections));
    let idle = Duration::from_millis(cfg.tcp_idle_timeout_ms);
    for &want in &cfg.listen {
        // With port 0, the kernel picks the UDP port; TCP must then get the same one.
        let (first, tcp, bound) = bind_pair(want)?;
        addrs.push(bound);
        let mut sockets = vec![first];
        for _ in 1..workers {
            sockets.push(udp_socket(bound)?);
        }
        for s in sockets {
            let s = Arc::new(UdpSocket::from_std(s)?);
            tasks.spawn(udp_loop(engine.clone(), s, inflight.clone()));
        }
        let tcp = TcpListener::from_std(tcp)?;
        tasks.spawn(tcp_accept_loop(
            engine.clone(),
            tcp,
            tcp_slots.clone(),
            idle,
        ));
        tracing::info!(%bound, workers, "listening (UDP and TCP)");
    }
    Ok(RunningServer {
        addrs,
        engine,
        tasks,
    })
}

fn bind_pair(
    want: SocketAddr,
) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener, SocketAddr)> {
    let mut last_err = None;
    for _ in 0..16 {
        let udp = udp_socket(want)?;
        let bound = udp.local_addr()?;
        match tcp_listener(bound) {
            Ok(tcp) => return Ok((udp, tcp, bound)),
            Err(e) if want.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free port for UDP+TCP")))
}

async fn udp_loop(engine: Arc<Engine>, socket: Arc<UdpSocket>, inflight: Arc<Semaphore>) {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        match engine.answer_fast(&buf[..n], peer, Transport::Udp, &mut out) {
            Fast::Respond => send(&socket, &out, peer).await,
            Fast::Drop => {}
            Fast::Upstream(q) => {
                let Ok(permit) = inflight.clone().try_acquire_owned() else {
                    Stats::bump(&engine.stats.dropped_overload);
                    continue;
                };
                let engine = engine.clone();
                let socket = socket.clone();
                tokio::spawn(async move {
                    let mut out = Vec::with_capacity(1024);
                    if engine.answer_slow(*q, peer, Transport::Udp, &mut out).await {
                        send(&socket, &out, peer).await;
                    }
                    drop(permit);
                });
            }
        }
    }
}

async fn send(socket: &UdpSocket, data: &[u8], peer: SocketAddr) {
    match socket.try_send_to(data, peer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let _ = socket.send_to(data, peer).await;
        }
        Err(e) => tracing::debug!(error = %e, %peer, "udp send failed"),
    }
}

async fn tcp_accept_loop(
    engine: Arc<Engine>,
    listener: TcpListener,
    slots: Arc<Semaphore>,
    idle: Duration,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many tcp connections, closing");
            continue;
        };
        let engine = engine.clone();
        tokio::spawn(async move {
            if let Err(e) = tcp_connection(engine, stream, peer, idle).await {
                tracing::trace!(%peer, error = %e, "tcp connection ended");
            }
            drop(permit);
        });
    }
}

async fn tcp_connection(
    engine: Arc<Engine>,
    mut stream: TcpStream,
    peer: SocketAddr,
    idle: Duration,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut out = Vec::with_capacity(4096);
    let mut msg = Vec::new();
    loop {
        let len = match tokio::time::timeout(idle, stream.read_u16()).await {
            Ok(Ok(len)) => len as usize,
            Ok(Err(_)) | Err(_) => return Ok(()),
        };
        msg.resize(len, 0);
        match tokio::time::timeout(idle, stream.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        if !engine.answer(&msg, peer, Transport::Tcp, &mut out).await {
            continue;
        }
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        stream.write_all(&framed).await?;
    }
}
