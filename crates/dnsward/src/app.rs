//! Wires the crates together: config → policy (lists, classifiers, answer checks) → engine →
//! listeners; and reloads the policy without a restart.

use crate::config::Config;
use crate::stages::{DgaStage, IntelStage, OnModelError};
use anyhow::{Context, Result};
use dnsward_classify::DgaModel;
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

/// Detectors that are expensive to load, kept across reloads while their files do not change.
#[derive(Default)]
pub struct Detectors {
    dga: Option<(Option<PathBuf>, Arc<DgaModel>)>,
}

impl Detectors {
    /// The DGA model for this config: loaded once, shared by every worker and every reload.
    pub fn dga(&mut self, path: &Option<PathBuf>) -> Result<Arc<DgaModel>> {
        if let Some((loaded_from, model)) = &self.dga {
            if loaded_from == path {
                return Ok(model.clone());
            }
        }
        let model = match path {
            Some(p) => {
                DgaModel::from_path(p).with_context(|| format!("dga.model {}", p.display()))?
            }
            None => DgaModel::embedded().context("the embedded DGA model")?,
        };
        let model = Arc::new(model);
        self.dga = Some((path.clone(), model.clone()));
        Ok(model)
    }
}

/// Builds the verdict pipeline from the config. Every failure names the file or key.
pub fn build_policy(cfg: &Config, detectors: &mut Detectors) -> Result<Policy> {
    let allow = load_lists(&cfg.lists.allow, "allow")?;
    let deny = load_lists(&cfg.lists.deny, "deny")?;
    tracing::info!(
        allow_rules = allow.len(),
        deny_rules = deny.len(),
        "lists loaded"
    );
    let mut builder = Policy::builder()
        .allow(allow)
        .deny(deny)
        .actions(cfg.actions.clone())
        .generation(GENERATION.fetch_add(1, Ordering::Relaxed));
    if cfg.dga.enabled {
        match detectors.dga(&cfg.dga.model) {
            Ok(model) => {
                let source = match &cfg.dga.model {
                    Some(p) => format!("dga-model {}", p.display()),
                    None => "dga-model".to_string(),
                };
                let stage = DgaStage::new(model, cfg.dga.threshold, &source);
                tracing::info!(threshold = stage.threshold, "DGA classifier on");
                builder = builder.name_check(Arc::new(stage));
            }
            Err(e) if cfg.dga.on_model_error == OnModelError::Disable => {
                tracing::error!(
                    "DGA classifier DISABLED (dga.on_model_error = \"disable\"): {e:#}"
                );
            }
            Err(e) => return Err(e),
        }
    }
    if cfg.intel.enabled {
        // Rebuilt on every reload so IOC list changes take effect (answer history starts over).
        let analyzer = dnsward_intel::AnswerAnalyzer::new(&cfg.intel).context("intel")?;
        for w in analyzer.warnings() {
            tracing::warn!("intel: {w}");
        }
        tracing::info!(stats = ?analyzer.stats(), "answer checks on");
        builder = builder.answer_check(Arc::new(IntelStage::new(Arc::new(analyzer))));
    }
    Ok(builder.build())
}

/// A running resolver.
pub struct App {
    pub server: RunningServer,
    config_path: Option<PathBuf>,
    overrides: Arc<dyn Fn(&mut Config) + Send + Sync>,
    detectors: std::sync::Mutex<Detectors>,
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
        let mut detectors = Detectors::default();
        let policy = build_policy(&cfg, &mut detectors)?;
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
            detectors: std::sync::Mutex::new(detectors),
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
        let mut detectors = self.detectors.lock().unwrap_or_else(|p| p.into_inner());
        let policy = build_policy(&cfg, &mut detectors)?;
        self.engine().set_policy(policy);
        Ok(())
    }
}
