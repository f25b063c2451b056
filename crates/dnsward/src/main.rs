//! The `dnsward` command line.

mod health;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use dnsward::{build_policy, App, Config, Detectors};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "dnsward",
    version,
    about = "An inline DNS filtering resolver (DNS firewall)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the resolver (embedded defaults: 127.0.0.1:5353, upstreams from /etc/resolv.conf).
    Serve(ServeArgs),
    /// Print each name's verdict and its reason without serving. Exit code 1 if any is blocked.
    Check(CheckArgs),
    /// Score names with the DGA model: one name per line in (FILE or stdin), one JSON object
    /// per line out: name, dga_score, family, blocked (what `serve` would do).
    Classify(ClassifyArgs),
    /// Replay an answer stream (JSON lines: t, name, answers with TTLs, cnames, ns, ns_addrs,
    /// optional label) through the answer checks of the config's [intel] section and report
    /// detections, recall per label and the Holz et al. baseline.
    ReplayAnswers(ReplayArgs),
    /// Write a realistic answer stream (flux and double-flux agents on residential ASNs, CDNs,
    /// round-robin pools, parked and benign domains) drawn from the configured ASN database.
    GenAnswers(GenArgs),
    /// Exit 0 if the DNS listener at ADDR (default 127.0.0.1:53) answers, 1 if not: a CHAOS
    /// query dnsward answers itself, independent of the upstreams (container health checks).
    Health(health::HealthArgs),
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    common: Overrides,
    /// The stream (JSON lines).
    stream: PathBuf,
    /// Write one JSON line per flagged answer here.
    #[arg(long)]
    detections: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GenArgs {
    #[command(flatten)]
    common: Overrides,
    /// Output file (JSON lines).
    out: PathBuf,
    /// Random seed (the stream is deterministic per seed).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Also write an IOC list file matching the generated stream's IOC domains.
    #[arg(long)]
    iocs: Option<PathBuf>,
}

#[derive(Args)]
struct ClassifyArgs {
    #[command(flatten)]
    common: Overrides,
    /// File with one name per line; stdin when absent or `-`.
    file: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
struct Overrides {
    /// TOML config file (see dnsward.example.toml). Without it the embedded defaults apply.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Block nothing: every block becomes `log` (monitor mode), also for client groups that
    /// the config enforces.
    #[arg(long)]
    monitor: bool,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Overrides,
    /// Listen address (repeatable); replaces server.listen.
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Upstream resolver IP[:port] (repeatable); replaces upstream.servers.
    #[arg(long)]
    upstream: Vec<String>,
    /// Worker threads; replaces server.workers.
    #[arg(long)]
    workers: Option<usize>,
    /// Admin API / web page address; replaces admin.listen ("off" disables the admin server
    /// and the event store).
    #[arg(long)]
    admin: Option<String>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `dnsward=debug`.
    #[arg(long, default_value = "info", env = "DNSWARD_LOG")]
    log: String,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    common: Overrides,
    /// Print one JSON object per name instead of text.
    #[arg(long)]
    json: bool,
    /// Also ask the upstream (A record) and run the answer checks on its answer (without
    /// recording it in the answer history).
    #[arg(long)]
    resolve: bool,
    /// Upstream resolver IP[:port] for --resolve (repeatable); replaces upstream.servers.
    #[arg(long)]
    upstream: Vec<String>,
    /// Judge for this client address: its `[[actions.groups]]` entry decides whether a block is
    /// enforced or only logged. Without it: a client in no group.
    #[arg(long)]
    client: Option<std::net::IpAddr>,
    /// Names to judge.
    #[arg(required = true)]
    names: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).map(|_| ExitCode::SUCCESS),
        Command::Check(args) => check(args),
        Command::Classify(args) => classify(args).map(|_| ExitCode::SUCCESS),
        Command::ReplayAnswers(args) => replay_answers(args).map(|_| ExitCode::SUCCESS),
        Command::GenAnswers(args) => gen_answers(args).map(|_| ExitCode::SUCCESS),
        Command::Health(args) => Ok(health::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dnsward: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load_config(common: &Overrides) -> Result<Config> {
    let mut cfg = match &common.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if common.monitor {
        cfg.actions.monitor_everyone();
    }
    Ok(cfg)
}

fn serve(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();
    let listen = args.listen.clone();
    let upstream = args.upstream.clone();
    let workers = args.workers;
    let admin = match args.admin.as_deref() {
        None => None,
        Some("off") => Some(None),
        Some(a) => Some(Some(a.parse::<SocketAddr>().context("--admin")?)),
    };
    let monitor = args.common.monitor;
    // Flags win over the file, on start and on every reload.
    let overrides: Arc<dyn Fn(&mut Config) + Send + Sync> = Arc::new(move |cfg: &mut Config| {
        if !listen.is_empty() {
            cfg.server.listen = listen.clone();
        }
        if !upstream.is_empty() {
            cfg.upstream.servers = upstream.clone();
        }
        if let Some(w) = workers {
            cfg.server.workers = w;
        }
        match admin {
            Some(Some(addr)) => cfg.admin.listen = addr,
            Some(None) => cfg.admin.enabled = false,
            None => {}
        }
        if monitor {
            cfg.actions.monitor_everyone();
        }
    });
    let mut cfg = load_config(&args.common)?;
    overrides(&mut cfg);
    cfg.validate()
        .map_err(anyhow::Error::msg)
        .context("after command-line flags")?;
    let workers = cfg.server.worker_count();
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let app = App::start(cfg, args.common.config.clone(), overrides, None).await?;
        let policy = app.engine().policy();
        let actions = policy.actions();
        if actions.monitor {
            tracing::warn!("monitor mode: blocks are logged, not enforced");
        }
        for g in &actions.groups {
            tracing::info!(
                group = %g.name,
                networks = g.clients.len(),
                "client group: blocks {}",
                if g.monitor { "logged, not enforced" } else { "enforced" }
            );
        }
        let result = run_until_signal(&app).await;
        app.shutdown().await;
        result
    })
}

#[cfg(unix)]
async fn run_until_signal(app: &App) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => match app.reload() {
                Ok(()) => tracing::info!("reloaded lists and policy"),
                Err(e) => tracing::error!("reload failed, keeping the running policy: {e:#}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down");
    Ok(())
}

#[cfg(not(unix))]
async fn run_until_signal(_app: &App) -> Result<()> {
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn check(args: CheckArgs) -> Result<ExitCode> {
    let mut cfg = load_config(&args.common)?;
    if !args.upstream.is_empty() {
        cfg.upstream.servers = args.upstream.clone();
    }
    let policy = build_policy(&cfg, &mut Detectors::default(), &[])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let upstreams = if args.resolve {
        let specs = cfg.upstream.specs().map_err(anyhow::Error::msg)?;
        Some(runtime.block_on(dnsward_server::upstream::Upstreams::new(
            &specs,
            &cfg.upstream,
        ))?)
    } else {
        None
    };
    let mut any_blocked = false;
    for raw in &args.names {
        let name = dnsward_policy::normalize_name(raw);
        let judged = policy.judge_name(&name);
        // What an escalated client ([dga.escalation]) would get instead, when that differs.
        let escalated = policy
            .escalated_check(&name, &judged)
            .map(|v| policy.for_client(&v, args.client).into_owned());
        let mut verdict = judged;
        let mut upstream_note = None;
        if let Some(up) = &upstreams {
            if policy.wants_answer(&verdict) {
                match resolve_a(&runtime, up, &name) {
                    Ok(wire) => match dnsward_server::answer::answer_view(&name, &wire) {
                        Some(view) => verdict = policy.judge_answer(&verdict, &view, false),
                        None => upstream_note = Some("malformed upstream answer".to_string()),
                    },
                    Err(e) => upstream_note = Some(format!("{e:#}")),
                }
            }
        }
        // As the client gets it (monitor mode and its `[[actions.groups]]` entry applied).
        let verdict = policy.for_client(&verdict, args.client).into_owned();
        any_blocked |= verdict.is_enforced();
        if args.json {
            let mut obj = serde_json::to_value(&verdict)?;
            obj["name"] = serde_json::Value::String(name.clone());
            obj["blocked"] = serde_json::Value::Bool(verdict.is_enforced());
            if let Some(e) = &escalated {
                obj["if_escalated"] = serde_json::to_value(e)?;
            }
            if let Some(note) = &upstream_note {
                obj["upstream_error"] = serde_json::Value::String(note.clone());
            }
            println!("{obj}");
        } else {
            println!("{name}\t{verdict}");
            if let Some(e) = &escalated {
                println!("  if the client is escalated: {e}");
            }
            if let Some(features) = verdict.reason.as_ref().and_then(|r| r.features.as_ref()) {
                println!("  features: {features}");
            }
            if let Some(note) = &upstream_note {
                println!("  upstream: {note}");
            }
        }
    }
    Ok(if any_blocked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One A query through the configured upstreams, for `check --resolve`.
fn resolve_a(
    runtime: &tokio::runtime::Runtime,
    up: &dnsward_server::upstream::Upstreams,
    name: &str,
) -> Result<Vec<u8>> {
    let mut question = dnsward_server::wire::text_to_wire(name).context("not a valid DNS name")?;
    question.extend_from_slice(&[0, 1, 0, 1]);
    let req = dnsward_server::upstream::UpstreamRequest {
        question: question.into(),
        dnssec_ok: false,
        checking_disabled: false,
    };
    Ok(runtime.block_on(up.resolve(&req))?)
}

fn classify(args: ClassifyArgs) -> Result<()> {
    use std::io::{BufRead, BufWriter, Write};
    let cfg = load_config(&args.common)?;
    let mut detectors = Detectors::default();
    let policy = build_policy(&cfg, &mut detectors, &[])?;
    let model = detectors.dga(&cfg.dga.model)?;
    let input: Box<dyn BufRead> = match &args.file {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        _ => Box::new(std::io::stdin().lock()),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut batch: Vec<String> = Vec::with_capacity(1024);
    let flush = |batch: &mut Vec<String>, out: &mut BufWriter<_>| -> Result<()> {
        let names: Vec<&str> = batch.iter().map(String::as_str).collect();
        for (name, judgement) in names.iter().zip(model.judge_batch(&names)) {
            let judged = policy.judge_name(name);
            // As a client in no `[[actions.groups]]` entry would get it (monitor mode applied).
            let verdict = policy.for_client(&judged, None);
            let (score, family, skipped) = match &judgement {
                dnsward_classify::DgaJudgement::Scored { score, family, .. } => {
                    (*score, Some(family.as_str()), None)
                }
                dnsward_classify::DgaJudgement::NotJudged { reason } => {
                    (0.0, None, Some(reason.as_str()))
                }
            };
            let mut obj = serde_json::json!({
                "name": name,
                "dga_score": score,
                "family": family,
                "blocked": verdict.is_enforced(),
            });
            if let Some(reason) = skipped {
                obj["not_judged"] = serde_json::Value::from(reason);
            }
            if policy.client_escalation().is_some() {
                // What serve does for a client escalated after repeated DGA blocks.
                let escalated = policy
                    .escalated_check(name, &judged)
                    .map(|v| policy.for_client(&v, None).into_owned());
                obj["blocked_if_escalated"] = serde_json::Value::from(
                    verdict.is_enforced() || escalated.is_some_and(|v| v.is_enforced()),
                );
            }
            if let Some(category) = verdict.category() {
                obj["category"] = serde_json::Value::from(category.as_str());
            }
            serde_json::to_writer(&mut *out, &obj)?;
            out.write_all(b"\n")?;
        }
        batch.clear();
        Ok(())
    };
    for line in input.lines() {
        let line = line.context("reading names")?;
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        batch.push(dnsward_policy::normalize_name(name));
        if batch.len() == 1024 {
            flush(&mut batch, &mut out)?;
        }
    }
    flush(&mut batch, &mut out)?;
    out.flush()?;
    Ok(())
}

fn intel_analyzer(common: &Overrides) -> Result<dnsward_intel::AnswerAnalyzer> {
    let cfg = load_config(common)?;
    let analyzer = dnsward_intel::AnswerAnalyzer::new(&cfg.intel).context("intel")?;
    for w in analyzer.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(analyzer)
}

fn replay_answers(args: ReplayArgs) -> Result<()> {
    let analyzer = intel_analyzer(&args.common)?;
    let input = std::fs::File::open(&args.stream)
        .with_context(|| format!("cannot read {}", args.stream.display()))?;
    let mut det_file = match &args.detections {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None => None,
    };
    let det = det_file.as_mut().map(|f| f as &mut dyn std::io::Write);
    let report = dnsward_intel::eval::replay(&analyzer, std::io::BufReader::new(input), det)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.stream.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn gen_answers(args: GenArgs) -> Result<()> {
    let analyzer = intel_analyzer(&args.common)?;
    let gcfg = dnsward_intel::gen::GenConfig {
        seed: args.seed,
        ..Default::default()
    };
    let out = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(out);
    let summary = dnsward_intel::gen::generate(analyzer.geo(), analyzer.lists(), &gcfg, &mut out)
        .map_err(anyhow::Error::msg)?;
    std::io::Write::flush(&mut out)?;
    if let Some(p) = &args.iocs {
        std::fs::write(p, &summary.ioc_list)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    eprintln!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
