//! Wires the crates together: config → policy (lists, classifiers, answer checks) → engine →
//! listeners; and reloads the policy without a restart.

use crate::config::Config;
use anyhow::{Context, Result};
use dnsward_policy::{DomainSet, Policy};
use dnsward_server::engine::EngineParts;
use dnsward_server::upstream::Upstreams;
use dnsward_server::{Engine, EventSink, RunningServer, TracingSink};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static GENERATION: AtomicU64 = AtomicU64::new(1);

fn load_lists(paths: &[PathBuf], what: &str) -> Result<DomainSet> {
    let mut set = DomainSet::new();
    for path in paths {
        let warnings = set
            .load_file(path)
            .with_context(|| format!("lists.{what}"))?;
        for w in warnings.iter().take(5) {
            tracing::warn!("skipped list line {w}");
        }
        if warnings.len() > 5 {
            tracing::warn!(file = %path.display(), skipped = warnings.len(), "skipped unsupported list lines");
        }
    }
    Ok(set)
}

/// Builds the verdict pipeline from the config. Every failure names the file or key.
pub fn build_policy(cfg: &Config) -> Result<Policy> {
    let allow = load_lists(&cfg.lists.allow, "allow")?;
    let deny = load_lists(&cfg.lists.deny, "deny")?;
    tracing::info!(allow_rules = allow.len(), deny_rules = deny.len(), "lists loaded");
    Ok(Policy::builder()
        .allow(allow)
        .deny(deny)
        .actions(cfg.actions.clone())
        .generation(GENERATION.fetch_add(1, Ordering::Relaxed))
        .build())
}

/// A running resolver.
pub struct App {
    pub server: RunningServer,
    config_path: Option<PathBuf>,
    overrides: Arc<dyn Fn(&mut Config) + Send + Sync>,
}

impl App {
    /// Starts the resolver. Call inside a tokio runtime.
    /// `overrides` re-applies command-line flags to configs re-read on reload.
    pub async fn start(
        cfg: Config,
        config_path: Option<PathBuf>,
        overrides: Arc<dyn Fn(&mut Config) + Send + Sync>,
        events: Option<Arc<dyn EventSink>>,
    ) -> Result<App> {
        let policy = build_policy(&cfg)?;
        let specs = cfg.upstream.specs().map_err(anyhow::Error::msg)?;
        let upstreams = Upstreams::new(&specs, &cfg.upstream)
            .await
            .context("cannot set up the upstreams")?;
        tracing::info!(upstreams = ?upstreams.labels(), "upstreams");
        let engine = Arc::new(Engine::new(EngineParts {
            server: cfg.server.clone(),
            cache: cfg.cache.clone(),
            sinkhole: cfg.sinkhole.clone(),
            policy,
            upstreams,
            events: events.unwrap_or_else(|| Arc::new(TracingSink)),
        }));
        let server = dnsward_server::start(engine, &cfg.server)
            .await
            .with_context(|| format!("cannot listen on {:?}", cfg.server.listen))?;
        Ok(App {
            server,
            config_path,
            overrides,
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.server.engine
    }

    /// Re-reads the config file (if any) and the lists, and swaps the new policy in.
    /// On any error the running policy stays and the error is returned (and logged by the caller).
    /// Listener, upstream and cache settings need a restart; only the policy is reloaded.
    pub fn reload(&self) -> Result<()> {
        let mut cfg = match &self.config_path {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        (self.overrides)(&mut cfg);
        let policy = build_policy(&cfg)?;
        self.engine().set_policy(policy);
        Ok(())
    }
}
