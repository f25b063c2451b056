//! Wires the crates together: config → policy (lists, classifiers, answer checks) → engine →
//! listeners; and reloads the policy without a restart.

use crate::config::Config;
use crate::stages::{unix_now, DgaStage, IntelStage, OnModelError};
use crate::watch::{self, Debounce, FileStamps, Tick};
use anyhow::{Context, Result};
use dnsward_admin::{
    AdminBackend, AdminStats, AdminToken, EventStore, Histogram, ListKind, RunningAdmin, TeeSink,
};
use dnsward_classify::DgaModel;
use dnsward_intel::AnswerHistory;
use dnsward_policy::Action;
use dnsward_policy::{ClientEscalation, DomainSet, EscalationParams, Policy};
use dnsward_server::engine::EngineParts;
use dnsward_server::upstream::Upstreams;
use dnsward_server::{Engine, EventSink, QueryEvent, RunningServer, TracingSink};
use dnsward_sinkhole::{BlockInfo, HitSink, RecentBlocks, RunningSinkhole, SinkholeHit};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Loads `paths` into `set` (a new [`DomainSet`], or [`DomainSet::allowlist`]); errors name
/// the key `lists.{what}`.
fn load_lists(mut set: DomainSet, paths: &[PathBuf], what: &str) -> Result<DomainSet> {
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
    /// Per-client escalation state, kept across reloads while its rule does not change (so a
    /// reload does not release escalated clients).
    escalation: Option<Arc<ClientEscalation>>,
    /// The answer history behind the flux features: each reload's analyser continues it, so a
    /// reload (new IOC lists, new MMDBs) does not start flux evidence over.
    answer_history: Option<Arc<AnswerHistory>>,
    /// The IOC lists the running answer checks loaded (empty when they are off), and the age
    /// past which they count as stale (`[intel] ioc_max_age_days`; None: no limit).
    ioc_lists: Vec<dnsward_intel::IocListInfo>,
    ioc_max_age_secs: Option<u64>,
}

impl Detectors {
    /// The answer history the running answer checks extend (None when they are off).
    pub fn answer_history(&self) -> Option<&Arc<AnswerHistory>> {
        self.answer_history.as_ref()
    }

    /// The escalation state for this rule: the running one when the rule is unchanged, else a
    /// new one that takes over the running one's clients under the new rule (its hold, window
    /// and exemptions), so changing the rule does not release every escalated client.
    pub fn escalation(&mut self, params: EscalationParams) -> Arc<ClientEscalation> {
        match &self.escalation {
            Some(e) if *e.params() == params => e.clone(),
            previous => {
                let e = Arc::new(ClientEscalation::new(params));
                if let Some(previous) = previous {
                    let now = std::time::Instant::now();
                    let carried = e.restore(&previous.snapshot(now), now, Duration::ZERO);
                    if let Err(err) = carried {
                        tracing::error!("escalated clients not carried over: {err}");
                    }
                }
                self.escalation = Some(e.clone());
                e
            }
        }
    }

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

/// Builds the verdict pipeline from the config (and the rules added through the admin API).
/// Every failure names the file or key.
pub fn build_policy(
    cfg: &Config,
    detectors: &mut Detectors,
    api_rules: &[(ListKind, String)],
) -> Result<Policy> {
    let mut allow = load_lists(DomainSet::allowlist(), &cfg.lists.allow, "allow")?;
    let mut deny = load_lists(DomainSet::new(), &cfg.lists.deny, "deny")?;
    let trial = load_lists(DomainSet::new(), &cfg.lists.trial, "trial")?;
    for (kind, rule) in api_rules {
        let set = match kind {
            ListKind::Allow => &mut allow,
            ListKind::Deny => &mut deny,
        };
        if let Err(e) = set.add_rule("admin-api", rule) {
            tracing::warn!(rule, "skipped admin API rule: {e}");
        }
    }
    tracing::info!(
        allow_rules = allow.len(),
        deny_rules = deny.len(),
        trial_rules = trial.len(),
        "lists loaded"
    );
    let mut builder = Policy::builder()
        .allow(allow)
        .deny(deny)
        .trial(trial)
        .actions(cfg.actions.clone())
        .generation(GENERATION.fetch_add(1, Ordering::Relaxed));
    let mut idn_switch = None;
    if cfg.dga.enabled {
        match detectors.dga(&cfg.dga.model) {
            Ok(model) => {
                // The model is shared across reloads: set its IDN switch only once the whole
                // policy has built, so a reload that fails leaves the running one as it was.
                idn_switch = Some((model.clone(), cfg.dga.judge_idn));
                let source = match &cfg.dga.model {
                    Some(p) => format!("dga-model {}", p.display()),
                    None => "dga-model".to_string(),
                };
                let mut stage = DgaStage::new(model, cfg.dga.threshold, &source);
                let esc = &cfg.dga.escalation;
                if esc.enabled {
                    let (with, threshold) = stage.with_escalation(esc.threshold);
                    stage = with;
                    match threshold {
                        Some(t) => {
                            tracing::info!(
                                escalated_threshold = t,
                                after = esc.after,
                                window_secs = esc.window_secs,
                                hold_secs = esc.hold_secs,
                                "per-client escalation on"
                            );
                            builder = builder.escalation(detectors.escalation(esc.params()));
                        }
                        None => tracing::warn!(
                            "per-client escalation off: the DGA model carries no escalated threshold \
                             and dga.escalation.threshold is unset"
                        ),
                    }
                }
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
        // Rebuilt on every reload so IOC list and MMDB changes take effect; the answer history
        // carries over.
        let mut analyzer = dnsward_intel::AnswerAnalyzer::new(&cfg.intel).context("intel")?;
        if let Some(previous) = &detectors.answer_history {
            analyzer.adopt_history(previous);
        }
        detectors.answer_history = Some(analyzer.history().clone());
        detectors.ioc_lists = analyzer.ioc_lists().to_vec();
        let days = cfg.intel.ioc_max_age_days;
        detectors.ioc_max_age_secs = (days > 0).then(|| days.saturating_mul(86_400));
        for w in analyzer.warnings() {
            tracing::warn!("intel: {w}");
        }
        tracing::info!(stats = ?analyzer.stats(), "answer checks on");
        builder = builder.answer_check(Arc::new(IntelStage::new(Arc::new(analyzer))));
    } else {
        detectors.answer_history = None;
        detectors.ioc_lists.clear();
    }
    if let Some((model, judge_idn)) = idn_switch {
        model.set_judge_idn(judge_idn);
    }
    Ok(builder.build())
}

/// What a reload needs: where the config comes from, the flags to re-apply, the loaded detectors
/// and the rules added through the admin API.
struct Reloader {
    engine: Arc<Engine>,
    config_path: Option<PathBuf>,
    overrides: Arc<dyn Fn(&mut Config) + Send + Sync>,
    detectors: std::sync::Mutex<Detectors>,
    store: Option<Arc<EventStore>>,
    /// The running answer history and IOC lists, updated after every build (readable without
    /// waiting for a reload to finish with `detectors`).
    intel_view: IntelSlot,
    /// The admin server's address and token, once it runs: a reload applies a rotated
    /// `admin.token` / `admin.token_file`.
    admin_token: std::sync::OnceLock<(std::net::SocketAddr, Arc<AdminToken>)>,
    /// What the running policy was loaded from, for reload on change.
    loaded: std::sync::Mutex<Loaded>,
    /// Reloads since start and the last failure, for the admin API and `/metrics`.
    reloads: std::sync::Mutex<ReloadCounts>,
}

/// The files the running policy was loaded from, as they were, and `[lists] auto_reload_secs`.
#[derive(Clone, Default)]
struct Loaded {
    stamps: FileStamps,
    auto_reload_secs: u64,
}

impl Loaded {
    /// `config_stamp` (the config file's) is taken before the file is read: a change while it
    /// is being read then still shows as a change.
    fn new(cfg: &Config, config_stamp: FileStamps) -> Self {
        let files = watch::watched_files(cfg);
        Loaded {
            stamps: config_stamp.join(FileStamps::take(&files)),
            auto_reload_secs: cfg.lists.auto_reload_secs,
        }
    }
}

#[derive(Clone, Default)]
struct ReloadCounts {
    ok: u64,
    failed: u64,
    last_error: Option<String>,
}

/// What the state saver and the admin side read of the running answer checks.
#[derive(Default)]
struct IntelView {
    history: Option<Arc<AnswerHistory>>,
    ioc_lists: Vec<dnsward_intel::IocListInfo>,
    ioc_max_age_secs: Option<u64>,
}

type IntelSlot = Arc<std::sync::Mutex<IntelView>>;

fn intel_slot(detectors: &Detectors) -> IntelSlot {
    let slot = IntelSlot::default();
    slot_set(&slot, detectors);
    slot
}

fn slot_get(slot: &IntelSlot) -> Option<Arc<AnswerHistory>> {
    slot.lock()
        .unwrap_or_else(|p| p.into_inner())
        .history
        .clone()
}

fn slot_set(slot: &IntelSlot, detectors: &Detectors) {
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = IntelView {
        history: detectors.answer_history().cloned(),
        ioc_lists: detectors.ioc_lists.clone(),
        ioc_max_age_secs: detectors.ioc_max_age_secs,
    };
}

impl Reloader {
    /// The running answer checks' IOC lists, for `/api/v1/stats` and `/metrics`.
    fn ioc_list_stats(&self) -> Vec<dnsward_admin::IocListStat> {
        let view = self.intel_view.lock().unwrap_or_else(|p| p.into_inner());
        view.ioc_lists
            .iter()
            .map(|l| dnsward_admin::IocListStat {
                file: l.file.clone(),
                entries: l.entries as u64,
                modified_unix: l.modified_unix,
                max_age_secs: view.ioc_max_age_secs,
                trial: l.trial,
            })
            .collect()
    }

    fn reload(&self) -> Result<()> {
        let result = self.reload_inner();
        let mut counts = self.reloads.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(()) => {
                counts.ok += 1;
                counts.last_error = None;
            }
            Err(e) => {
                counts.failed += 1;
                counts.last_error = Some(format!("{e:#}"));
            }
        }
        result
    }

    fn reload_inner(&self) -> Result<()> {
        let config_stamp = FileStamps::take(self.config_path.as_slice());
        let mut cfg = match &self.config_path {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        (self.overrides)(&mut cfg);
        if let Some((addr, _)) = self.admin_token.get() {
            token_kept_off_loopback(*addr, &cfg)?;
        }
        let rules = self
            .store
            .as_ref()
            .map(|s| s.api_rules())
            .unwrap_or_default();
        let mut detectors = self.detectors.lock().unwrap_or_else(|p| p.into_inner());
        // Before the files are read: a list rewritten while it is being loaded shows as changed.
        let loaded = Loaded::new(&cfg, config_stamp);
        let policy = build_policy(&cfg, &mut detectors, &rules)?;
        slot_set(&self.intel_view, &detectors);
        self.engine.set_policy(policy);
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = loaded;
        if let Some((_, token)) = self.admin_token.get() {
            if token.set(cfg.admin.token.as_deref()) {
                tracing::info!(
                    token_set = cfg.admin.token.is_some(),
                    "admin API token replaced"
                );
            }
        }
        Ok(())
    }
}

/// `admin.listen` needs a restart, so a reloaded config is checked against the address the
/// admin server really listens on: off loopback it must keep a token.
fn token_kept_off_loopback(running: std::net::SocketAddr, cfg: &Config) -> Result<()> {
    if cfg.admin.token.is_none() && !running.ip().is_loopback() {
        anyhow::bail!(
            "admin.token: the admin server listens on {running}, not a loopback address, and \
             needs a token; the reload would remove it (nothing was changed)"
        );
    }
    Ok(())
}

/// The admin API's view of the running resolver.
struct Backend {
    reloader: Arc<Reloader>,
}

impl AdminBackend for Backend {
    fn explain(&self, name: &str, client: Option<std::net::IpAddr>) -> serde_json::Value {
        let policy = self.reloader.engine.policy();
        let judged = policy.judge_name(name);
        let verdict = policy.for_client(&judged, client);
        let mut v = serde_json::to_value(&*verdict).unwrap_or_default();
        v["blocked"] = serde_json::Value::from(verdict.is_enforced());
        // What a client escalated after repeated DGA blocks would get, when that differs.
        if let Some(e) = policy.escalated_check(name, &judged) {
            let e = policy.for_client(&e, client);
            v["if_escalated"] = serde_json::to_value(&*e).unwrap_or_default();
        }
        v
    }

    fn reload(&self) -> Result<(), String> {
        self.reloader.reload().map_err(|e| format!("{e:#}"))
    }

    fn stats(&self) -> AdminStats {
        let engine = &self.reloader.engine;
        // One policy for every field: a reload in between would mix two.
        let policy = engine.policy();
        let reloads = self
            .reloader
            .reloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        AdminStats {
            monitor: policy.actions().monitor,
            client_groups: policy.actions().groups.clone(),
            reloads_ok: reloads.ok,
            reloads_failed: reloads.failed,
            last_reload_error: reloads.last_error,
            engine: Some(engine.stats.snapshot()),
            cache_entries: engine.cache().len() as u64,
            cache_bytes: engine.cache().weight_bytes(),
            cache_hits: engine.cache().hits(),
            cache_misses: engine.cache().misses(),
            escalated_clients: policy
                .client_escalation()
                .map(|e| {
                    e.escalated_clients(std::time::Instant::now())
                        .into_iter()
                        .map(|(ip, left)| (ip, left.as_secs()))
                        .collect()
                })
                .unwrap_or_default(),
            answer_history_domains: slot_get(&self.reloader.intel_view).map(|h| h.len() as u64),
            ioc_lists: self.reloader.ioc_list_stats(),
        }
    }

    fn upstream_latency(&self) -> Option<&Histogram> {
        Some(&self.reloader.engine.upstream_latency)
    }

    fn classifier_latency(&self) -> Option<&Histogram> {
        Some(&self.reloader.engine.name_stage_latency)
    }
}

/// Remembers, per client, the names the resolver answered with the sinkhole, so the sinkhole
/// server can say which name brought a connecting client there.
struct SinkholeFeed(Arc<RecentBlocks>);

impl EventSink for SinkholeFeed {
    fn record(&self, e: &QueryEvent<'_>) {
        if e.verdict.action() == Some(Action::Sinkhole) {
            let reason = e
                .verdict
                .reason
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default();
            self.0.record(
                e.client,
                BlockInfo {
                    name: e.qname.to_string(),
                    category: e
                        .verdict
                        .category()
                        .map(|c| c.as_str())
                        .unwrap_or("-")
                        .to_string(),
                    reason,
                },
            );
        }
    }
}

/// Sinkhole connections go to the event store (and so into the client scores).
struct StoreHits(Arc<EventStore>);

impl HitSink for StoreHits {
    fn hit(&self, h: &SinkholeHit) {
        self.0.record_sinkhole_hit(
            h.client.ip(),
            h.local_port,
            h.host_or_sni.as_deref(),
            h.name.as_deref(),
        );
    }
}

/// Logs sinkhole connections when there is no store.
struct LogHits;

impl HitSink for LogHits {
    fn hit(&self, h: &SinkholeHit) {
        tracing::info!(client = %h.client, port = h.local_port, protocol = h.protocol, host = ?h.host_or_sni, name = ?h.name, "sinkhole hit");
    }
}

/// A running resolver (and its admin server, event store and sinkhole server, when enabled).
pub struct App {
    pub server: RunningServer,
    pub admin: Option<RunningAdmin>,
    pub store: Option<Arc<EventStore>>,
    pub sinkhole: Option<RunningSinkhole>,
    state_saver: Option<Worker>,
    watcher: Option<Worker>,
    reloader: Arc<Reloader>,
}

/// Keys of the detection state in the event store's `saved_state`.
const HISTORY_STATE_KEY: &str = "answer_history";
const ESCALATION_STATE_KEY: &str = "client_escalation";

/// Loads one saved state blob and the seconds since it was saved; read errors are logged.
fn load_saved(store: &EventStore, key: &str) -> Option<(u64, Vec<u8>)> {
    match store.load_state(key) {
        Ok(found) => found.map(|(saved_us, bytes)| {
            let ago = unix_now().saturating_sub((saved_us.max(0) / 1_000_000) as u64);
            (ago, bytes)
        }),
        Err(e) => {
            tracing::error!("cannot read the saved {key}: {e}");
            None
        }
    }
}

/// Puts the detection state saved by the previous run back: the answer history (domains still
/// within the window) and the escalated clients (the time since the save counts against their
/// hold). An unreadable snapshot is logged and skipped; that part starts empty.
fn restore_state(store: &EventStore, detectors: &Detectors, window_secs: u64) {
    if let (Some(history), Some((ago, bytes))) = (
        detectors.answer_history(),
        load_saved(store, HISTORY_STATE_KEY),
    ) {
        match history.restore(&bytes, unix_now(), window_secs) {
            Ok(n) => tracing::info!(
                domains = n,
                bytes = bytes.len(),
                saved_secs_ago = ago,
                "answer history restored"
            ),
            Err(e) => tracing::error!("{e}; starting with an empty answer history"),
        }
    }
    if let (Some(escalation), Some((ago, bytes))) = (
        &detectors.escalation,
        load_saved(store, ESCALATION_STATE_KEY),
    ) {
        let downtime = std::time::Duration::from_secs(ago);
        match escalation.restore(&bytes, std::time::Instant::now(), downtime) {
            Ok(n) => tracing::info!(
                escalated = n,
                saved_secs_ago = ago,
                "client escalations restored"
            ),
            Err(e) => tracing::error!("{e}; no client starts escalated"),
        }
    }
}

/// A background thread that runs until [`Worker::stop`] (or until its owner is dropped: the
/// thread then sees its stop channel closed).
struct Worker {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    /// `body` gets the stop channel: any message or a closed channel means stop.
    fn spawn(
        name: &str,
        body: impl FnOnce(std::sync::mpsc::Receiver<()>) + Send + 'static,
    ) -> Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(stopped))
            .with_context(|| format!("{name} thread"))?;
        Ok(Worker { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Saves the detection state (answer history, client escalations) to the event store every
/// `[admin] save_state_secs` and once more when stopped.
fn start_state_saver(
    store: Arc<EventStore>,
    reloader: Arc<Reloader>,
    every: std::time::Duration,
) -> Result<Worker> {
    let save_one = move |key: &str, bytes: Vec<u8>, t0: std::time::Instant| match store
        .save_state(key, &bytes)
    {
        Ok(()) => tracing::debug!(
            key,
            bytes = bytes.len(),
            ms = t0.elapsed().as_millis() as u64,
            "state saved"
        ),
        Err(e) => tracing::error!("cannot save the {key}: {e}"),
    };
    let save = move || {
        if let Some(history) = slot_get(&reloader.intel_view) {
            let t0 = std::time::Instant::now();
            save_one(HISTORY_STATE_KEY, history.snapshot(), t0);
        }
        let escalation = reloader.engine.policy().client_escalation().cloned();
        if let Some(escalation) = escalation {
            let t0 = std::time::Instant::now();
            save_one(ESCALATION_STATE_KEY, escalation.snapshot(t0), t0);
        }
    };
    Worker::spawn("dnsward-state", move |stopped| loop {
        match stopped.recv_timeout(every) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => save(),
            _ => {
                save();
                return;
            }
        }
    })
}

/// Reloads when the config file or a file it names changes (`[lists] auto_reload_secs`).
fn start_reload_watcher(reloader: Arc<Reloader>) -> Result<Worker> {
    Worker::spawn("dnsward-watch", move |stopped| {
        let mut debounce = Debounce::default();
        loop {
            let loaded = reloader
                .loaded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            // Off: look again later, a reload may turn it on.
            let every = Duration::from_secs(match loaded.auto_reload_secs {
                0 => 10,
                s => s,
            });
            if stopped.recv_timeout(every) != Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            if loaded.auto_reload_secs == 0 {
                continue;
            }
            let now = FileStamps::take(&loaded.stamps.files());
            if debounce.tick(&loaded.stamps, now.clone()) != Tick::Reload {
                continue;
            }
            let changed: Vec<String> = now
                .changed_since(&loaded.stamps)
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            match reloader.reload() {
                Ok(()) => tracing::info!(?changed, "files changed: reloaded"),
                Err(e) => {
                    tracing::error!(
                        ?changed,
                        "files changed, but the reload failed (the running policy stays; \
                         retried when the files change again): {e:#}"
                    );
                    debounce.failed(now);
                }
            }
        }
    })
}

impl App {
    /// Starts the resolver. Call inside a tokio runtime.
    /// `overrides` re-applies command-line flags to configs re-read on reload.
    /// `events`: an extra event sink (tests); blocks are always logged through `tracing` too.
    pub async fn start(
        cfg: Config,
        config_path: Option<PathBuf>,
        overrides: Arc<dyn Fn(&mut Config) + Send + Sync>,
        events: Option<Arc<dyn EventSink>>,
    ) -> Result<App> {
        // The caller read the config file just before: its stamp now stands for that read.
        let config_stamp = FileStamps::take(config_path.as_slice());
        let store = if cfg.admin.enabled {
            Some(EventStore::open(&cfg.admin).context("admin event store")?)
        } else {
            None
        };
        let rules = store.as_ref().map(|s| s.api_rules()).unwrap_or_default();
        let mut detectors = Detectors::default();
        let loaded = Loaded::new(&cfg, config_stamp);
        let policy = build_policy(&cfg, &mut detectors, &rules)?;
        let intel_view = intel_slot(&detectors);
        let save_every = cfg.admin.save_state_secs;
        if let (Some(store), true) = (&store, save_every > 0) {
            restore_state(store, &detectors, cfg.intel.window_secs);
        }
        let specs = cfg.upstream.specs().map_err(anyhow::Error::msg)?;
        let upstreams = Upstreams::new(&specs, &cfg.upstream)
            .await
            .context("cannot set up the upstreams")?;
        tracing::info!(upstreams = ?upstreams.labels(), "upstreams");
        let mut sinks: Vec<Arc<dyn EventSink>> = vec![Arc::new(TracingSink)];
        sinks.extend(store.iter().map(|s| s.clone() as Arc<dyn EventSink>));
        sinks.extend(events);
        let recent = Arc::new(RecentBlocks::default());
        if cfg.sinkhole_server.enabled {
            sinks.push(Arc::new(SinkholeFeed(recent.clone())));
        }
        let engine = Arc::new(Engine::new(EngineParts {
            server: cfg.server.clone(),
            cache: cfg.cache.clone(),
            sinkhole: cfg.sinkhole.clone(),
            policy,
            upstreams,
            events: Arc::new(TeeSink::new(sinks)),
        }));
        let server = dnsward_server::start(engine.clone(), &cfg.server)
            .await
            .with_context(|| format!("cannot listen on {:?}", cfg.server.listen))?;
        let reloader = Arc::new(Reloader {
            engine,
            config_path,
            overrides,
            detectors: std::sync::Mutex::new(detectors),
            store: store.clone(),
            intel_view,
            admin_token: Default::default(),
            loaded: std::sync::Mutex::new(loaded),
            reloads: Default::default(),
        });
        // Without a config file only the lists of the built-in config could change, and there
        // are none.
        let watcher = match &reloader.config_path {
            Some(_) => Some(start_reload_watcher(reloader.clone())?),
            None => None,
        };
        let state_saver = match &store {
            Some(store) if save_every > 0 => Some(start_state_saver(
                store.clone(),
                reloader.clone(),
                std::time::Duration::from_secs(save_every),
            )?),
            _ => None,
        };
        let admin = match &store {
            Some(store) => {
                let backend = Arc::new(Backend {
                    reloader: reloader.clone(),
                });
                let admin = dnsward_admin::serve(&cfg.admin, store.clone(), backend)
                    .await
                    .with_context(|| format!("admin.listen {}", cfg.admin.listen))?;
                tracing::info!(addr = %admin.addr, "admin API and web page");
                let _ = reloader.admin_token.set((admin.addr, admin.token.clone()));
                Some(admin)
            }
            None => None,
        };
        let sinkhole = if cfg.sinkhole_server.enabled {
            let hits: Arc<dyn HitSink> = match &store {
                Some(s) => Arc::new(StoreHits(s.clone())),
                None => Arc::new(LogHits),
            };
            let running = dnsward_sinkhole::serve(&cfg.sinkhole_server, recent, hits)
                .await
                .context("sinkhole_server")?;
            tracing::info!(addrs = ?running.addrs, "sinkhole server");
            Some(running)
        } else {
            None
        };
        Ok(App {
            server,
            admin,
            store,
            sinkhole,
            state_saver,
            watcher,
            reloader,
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.server.engine
    }

    /// Re-reads the config file (if any), the lists and the admin API's rules, and swaps the new
    /// policy in. On any error the running policy stays and the error is returned.
    /// Listener, upstream, cache and admin settings need a restart; the policy and the admin
    /// token are reloaded.
    pub fn reload(&self) -> Result<()> {
        self.reloader.reload()
    }

    /// Stops the admin server and flushes the event store.
    pub async fn shutdown(self) {
        if let Some(sinkhole) = &self.sinkhole {
            sinkhole.shutdown();
        }
        if let Some(admin) = self.admin {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), admin.shutdown()).await;
        }
        if let Some(watcher) = self.watcher {
            watcher.stop();
        }
        // The last state snapshot goes into the store before it closes.
        if let Some(saver) = self.state_saver {
            saver.stop();
        }
        if let Some(store) = &self.store {
            store.shutdown();
        }
        self.server.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Korean IDN from the Tranco benign test names that the model scores above its default.
    const IDN: &str = "xn--hu1b43d9l72a44a66pca542avufjx8asjn.xn--mk1bu44c";

    fn config(judge_idn: bool, ioc_file: Option<&str>) -> Config {
        let mut text = format!("[dga]\njudge_idn = {judge_idn}\n");
        if let Some(f) = ioc_file {
            text += &format!("[intel]\nioc_files = [{f:?}]\n");
        }
        Config::parse(&text).unwrap()
    }

    #[test]
    fn judge_idn_follows_the_config_and_a_failed_reload_changes_nothing() {
        let mut detectors = Detectors::default();
        let on = build_policy(&config(true, None), &mut detectors, &[]).unwrap();
        assert!(on.judge_name(IDN).is_enforced());
        // A reload that fails (unreadable IOC file) must leave the running policy as it was,
        // including the IDN switch of the shared model.
        let failed = build_policy(
            &config(false, Some("/nonexistent/iocs.txt")),
            &mut detectors,
            &[],
        );
        assert!(failed.is_err());
        assert!(on.judge_name(IDN).is_enforced());
        let off = build_policy(&config(false, None), &mut detectors, &[]).unwrap();
        assert!(!off.judge_name(IDN).is_enforced());
    }

    #[test]
    fn escalation_state_survives_reloads_and_is_carried_over_when_its_rule_changes() {
        let mut detectors = Detectors::default();
        let cfg = Config::default();
        let first = build_policy(&cfg, &mut detectors, &[]).unwrap();
        let e1 = first.client_escalation().expect("on by default").clone();
        let again = build_policy(&cfg, &mut detectors, &[]).unwrap();
        assert!(Arc::ptr_eq(&e1, again.client_escalation().unwrap()));
        // An escalated client stays escalated when the rule changes, unless it is now exempt.
        let client: std::net::IpAddr = "10.0.0.7".parse().unwrap();
        let t = std::time::Instant::now();
        for name in ["a.example", "b.example", "c.example"] {
            e1.record_strike(client, name, t);
        }
        assert!(e1.is_escalated(client, t));
        let changed = Config::parse("[dga.escalation]\nafter = 5\n").unwrap();
        let third = build_policy(&changed, &mut detectors, &[]).unwrap();
        assert!(!Arc::ptr_eq(&e1, third.client_escalation().unwrap()));
        assert_eq!(third.client_escalation().unwrap().params().after, 5);
        let now = std::time::Instant::now();
        assert!(third.client_escalation().unwrap().is_escalated(client, now));
        let exempt =
            Config::parse("[dga.escalation]\nafter = 5\nexempt = [\"10.0.0.0/8\"]\n").unwrap();
        let fourth = build_policy(&exempt, &mut detectors, &[]).unwrap();
        assert!(!fourth
            .client_escalation()
            .unwrap()
            .is_escalated(client, now));
        let off = Config::parse("[dga.escalation]\nenabled = false\n").unwrap();
        assert!(build_policy(&off, &mut detectors, &[])
            .unwrap()
            .client_escalation()
            .is_none());
    }

    #[test]
    fn the_answer_history_survives_reloads_and_is_resized_with_its_config() {
        let mut detectors = Detectors::default();
        build_policy(&Config::default(), &mut detectors, &[]).unwrap();
        let first = detectors
            .answer_history()
            .expect("intel on by default")
            .clone();
        build_policy(&Config::default(), &mut detectors, &[]).unwrap();
        assert!(Arc::ptr_eq(&first, detectors.answer_history().unwrap()));
        // A failed reload (unreadable IOC file) keeps the running history.
        assert!(build_policy(
            &config(false, Some("/nonexistent/iocs.txt")),
            &mut detectors,
            &[]
        )
        .is_err());
        assert!(Arc::ptr_eq(&first, detectors.answer_history().unwrap()));
        let smaller = Config::parse("[intel]\nmax_domains = 1000\n").unwrap();
        build_policy(&smaller, &mut detectors, &[]).unwrap();
        let resized = detectors.answer_history().unwrap().clone();
        assert!(!Arc::ptr_eq(&first, &resized));
        assert_eq!(resized.max_domains(), 1000);
        let off = Config::parse("[intel]\nenabled = false\n").unwrap();
        build_policy(&off, &mut detectors, &[]).unwrap();
        assert!(detectors.answer_history().is_none());
    }

    #[test]
    fn a_reload_cannot_remove_the_token_of_an_admin_server_off_loopback() {
        let none = Config::default();
        let mut with = Config::default();
        with.admin.token = Some("0123456789abcdef-rotated".into());
        let public: std::net::SocketAddr = "192.0.2.1:8053".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:8053".parse().unwrap();
        let err = token_kept_off_loopback(public, &none)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("admin.token:"), "{err}");
        assert!(token_kept_off_loopback(public, &with).is_ok());
        assert!(token_kept_off_loopback(local, &none).is_ok());
        assert!(token_kept_off_loopback("[::1]:8053".parse().unwrap(), &none).is_ok());
    }
}
