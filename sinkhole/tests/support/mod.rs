#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dnsward_sinkhole::{
    serve, BlockInfo, BlockLookup, HitSink, RecentBlocks, RunningSinkhole, SinkholeConfig,
    SinkholeHit,
};
use tokio::sync::mpsc;

pub struct ChanSink(pub mpsc::UnboundedSender<SinkholeHit>);

impl HitSink for ChanSink {
    fn hit(&self, hit: &SinkholeHit) {
        let _ = self.0.send(hit.clone());
    }
}

pub fn cfg() -> SinkholeConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    SinkholeConfig {
        enabled: true,
        http: vec![any],
        https: vec![any],
        tcp: vec![any, any],
        read_timeout_ms: 500,
        ..SinkholeConfig::default()
    }
}

pub fn blocks() -> Arc<RecentBlocks> {
    let r = Arc::new(RecentBlocks::default());
    let lo = "127.0.0.1".parse().unwrap();
    r.record(
        lo,
        BlockInfo {
            name: "c2.evil.example".into(),
            category: "ioc".into(),
            reason: "ioc: domain on feeds/c2.txt:12 <b>".into(),
        },
    );
    r.record(
        lo,
        BlockInfo {
            name: "xjw3kqpz0a.net".into(),
            category: "dga".into(),
            reason: "dga: score 0.97".into(),
        },
    );
    r
}

pub async fn start(cfg: SinkholeConfig) -> (RunningSinkhole, mpsc::UnboundedReceiver<SinkholeHit>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let lookup: Arc<dyn BlockLookup> = blocks();
    let running = serve(&cfg, lookup, Arc::new(ChanSink(tx)))
        .await
        .expect("serve");
    (running, rx)
}

pub async fn next_hit(rx: &mut mpsc::UnboundedReceiver<SinkholeHit>) -> SinkholeHit {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a hit within 5 s")
        .expect("sink open")
}

/// No further hit arrives shortly.
pub async fn no_more_hits(rx: &mut mpsc::UnboundedReceiver<SinkholeHit>) {
    if let Ok(Some(h)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        panic!("unexpected extra hit {h:?}");
    }
}
