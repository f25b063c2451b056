//! The admin HTTP server (axum): JSON API, Prometheus metrics, OpenAPI document and web page.

use crate::config::AdminConfig;
use crate::error::AdminError;
use crate::hist::Histogram;
use crate::store::{BlocksQuery, EventStore, ListKind, RuleError};
use crate::time::{now_us, parse_time};
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dnsward_policy::{Action, Category, Stage};
use dnsward_server::stats::StatsSnapshot;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::{oneshot, Semaphore};

/// Largest `limit` honoured (bigger values are capped, not refused).
pub const MAX_LIMIT: usize = 10_000;
/// Default `limit` for `/api/v1/blocks`.
pub const DEFAULT_LIMIT: usize = 100;

/// Every route: (method, path). The OpenAPI document must list each (tested).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/blocks"),
    ("get", "/api/v1/queries"),
    ("get", "/api/v1/top"),
    ("get", "/api/v1/verdict"),
    ("get", "/api/v1/clients"),
    ("get", "/api/v1/clients/{ip}"),
    ("get", "/api/v1/stats"),
    ("post", "/api/v1/reload"),
    ("get", "/api/v1/rules"),
    ("post", "/api/v1/rules"),
    ("delete", "/api/v1/rules"),
];

pub const OPENAPI_JSON: &str = include_str!("openapi.json");
const INDEX_HTML: &str = include_str!("../web/index.html");

/// What the admin server needs from the running resolver (implemented by the `dnsward` binary).
pub trait AdminBackend: Send + Sync + 'static {
    /// Verdict explanation for a name (normalised: lowercase, no trailing dot), from the same
    /// pipeline as serving, without serving, as `client` would get it (its client group; `None`:
    /// a client in no group). Any JSON; `Verdict` serialised is ideal.
    fn explain(&self, name: &str, client: Option<IpAddr>) -> Value;
    /// Reload lists and config (including [`EventStore::api_rules`]); `Err(message)` keeps the
    /// running policy.
    fn reload(&self) -> Result<(), String>;
    /// Current counters.
    fn stats(&self) -> AdminStats;
    /// Upstream latency histogram, if the engine keeps one.
    fn upstream_latency(&self) -> Option<&Histogram> {
        None
    }
    /// Name-classifier (DGA model) latency histogram, if the engine keeps one.
    fn classifier_latency(&self) -> Option<&Histogram> {
        None
    }
}

/// Counters the binary fills for `/api/v1/stats` and `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AdminStats {
    /// Engine counters (queries, blocks by category and action, ...).
    pub engine: Option<StatsSnapshot>,
    /// Entries in the answer cache.
    pub cache_entries: u64,
    /// Bytes used by the answer cache.
    pub cache_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Clients escalated now (`[dga.escalation]`) and the seconds their escalation has left.
    pub escalated_clients: Vec<(std::net::IpAddr, u64)>,
    /// Domains in the answer history behind the flux features (`[intel]`); None when the
    /// answer checks are off.
    pub answer_history_domains: Option<u64>,
    /// The IOC lists the running answer checks loaded.
    pub ioc_lists: Vec<IocListStat>,
    /// `[actions] monitor`: blocks of clients in no group are logged, not enforced.
    pub monitor: bool,
    /// `[[actions.groups]]`: client networks enforced or monitored whatever `monitor` says.
    pub client_groups: Vec<dnsward_policy::ClientGroup>,
    /// Reloads since start (SIGHUP, the API, a changed file), and the error of the latest one
    /// when it failed: a failed reload keeps the old policy, which nothing else would show.
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub last_reload_error: Option<String>,
}

/// One loaded IOC list: its file name, entries and modification time when it was loaded.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IocListStat {
    pub file: String,
    pub entries: u64,
    pub modified_unix: Option<u64>,
    /// `[intel] ioc_max_age_days` in seconds (None: no limit).
    pub max_age_secs: Option<u64>,
    /// A list on trial (`[intel] ioc_trial_files`): its hits are logged only.
    pub trial: bool,
}

impl IocListStat {
    /// Seconds since the loaded copy was last modified (None when unknown): it grows until a
    /// reload loads a newer file, so a feed that stopped updating, or one updated on disk but
    /// never reloaded, shows.
    pub fn age_secs(&self, now_unix: u64) -> Option<u64> {
        self.modified_unix.map(|m| now_unix.saturating_sub(m))
    }

    /// Older than the configured limit.
    pub fn is_stale(&self, now_unix: u64) -> bool {
        matches!((self.age_secs(now_unix), self.max_age_secs), (Some(a), Some(m)) if a > m)
    }
}

struct AppState {
    store: Arc<EventStore>,
    backend: Arc<dyn AdminBackend>,
    token: Arc<AdminToken>,
    readers: Semaphore,
    top_cache: Mutex<Option<TopCache>>,
    threshold: f64,
}

type St = State<Arc<AppState>>;

/// The last `/api/v1/top` answer: (when, (since, limit), body).
type TopCache = (Instant, (i64, usize), Value);

/// An API error: status and a message (`{"error": "..."}`).
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
    fn internal(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Query parameters: known keys only, each at most once.
fn params(
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let Query(pairs) = q.map_err(|e| ApiError::bad(format!("malformed query string: {e}")))?;
    let mut m = HashMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad(format!(
                "unknown parameter `{k}` (expected: {})",
                allowed.join(", ")
            )));
        }
        if m.contains_key(&k) {
            return Err(ApiError::bad(format!("parameter `{k}` given twice")));
        }
        // `?since=&limit=50` (an empty form field) means "not given".
        if !v.trim().is_empty() {
            m.insert(k, v);
        }
    }
    Ok(m)
}

fn parse_limit(p: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, ApiError> {
    match p.get("limit") {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(0) => Err(ApiError::bad("limit: must be at least 1")),
            Ok(n) => Ok((n.min(max as u64)) as usize),
            Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Ok(max),
            Err(_) => Err(ApiError::bad(format!(
                "limit: expected a positive integer, got `{v}`"
            ))),
        },
    }
}

/// The value of `key` when it is one of `allowed` (case and surrounding space ignored).
fn parse_one_of(
    p: &HashMap<String, String>,
    key: &str,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    let Some(v) = p.get(key) else {
        return Ok(None);
    };
    let v = v.trim().to_ascii_lowercase();
    if !allowed.contains(&v.as_str()) {
        return Err(ApiError::bad(format!(
            "{key}: expected one of {}, got `{v}`",
            allowed.join(", ")
        )));
    }
    Ok(Some(v))
}

fn parse_since(p: &HashMap<String, String>) -> Result<Option<i64>, ApiError> {
    match p.get("since") {
        None => Ok(None),
        Some(v) => parse_time(v).map(Some).ok_or_else(|| {
            ApiError::bad(format!(
                "since: expected Unix seconds or an RFC 3339 time (2026-11-22T10:00:00Z), got `{v}`"
            ))
        }),
    }
}

fn parse_ip(v: &str, key: &str) -> Result<IpAddr, ApiError> {
    v.trim()
        .parse::<IpAddr>()
        .map(crate::dnsbl::canonical_ip)
        .map_err(|_| ApiError::bad(format!("{key}: expected an IP address, got `{v}`")))
}

/// Lowercase, strip the trailing dot, check it is a plausible DNS name.
pub fn normalize_query_name(v: &str) -> Result<String, String> {
    let n = v.trim().trim_end_matches('.').to_ascii_lowercase();
    if n.is_empty() {
        return Err("name: must not be empty".into());
    }
    if n.len() > 253 {
        return Err("name: longer than 253 characters".into());
    }
    for label in n.split('.') {
        if label.is_empty() {
            return Err("name: empty label".into());
        }
        if label.len() > 63 {
            return Err("name: label longer than 63 characters".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        {
            return Err(format!("name: invalid character in `{label}`"));
        }
    }
    Ok(n)
}

async fn blocking<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = tokio::time::timeout(Duration::from_secs(10), st.readers.acquire())
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "busy, retry later".into()))?
        .map_err(|_| ApiError::internal("shutting down"))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal("internal error"))
}

fn json_ok(v: impl Serialize) -> ApiResult {
    Ok(Json(v).into_response())
}

// ---- handlers ----

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn healthz(State(st): St) -> Response {
    let degraded = st.store.is_degraded();
    Json(json!({
        "status": "ok",
        "store": if degraded { "memory" } else { "sqlite" },
        "store_degraded": degraded,
    }))
    .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

async fn blocks(
    State(st): St,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = params(
        q,
        &[
            "since",
            "client",
            "category",
            "stage",
            "action",
            "client_group",
            "limit",
        ],
    )?;
    let limit = parse_limit(&p, DEFAULT_LIMIT, MAX_LIMIT)?;
    let since_us = parse_since(&p)?;
    let client = match p.get("client") {
        Some(c) => Some(parse_ip(c, "client")?.to_string()),
        None => None,
    };
    let category = parse_one_of(&p, "category", &Category::ALL.map(|k| k.as_str()))?;
    let stage = parse_one_of(&p, "stage", &Stage::ALL.map(|k| k.as_str()))?;
    let action = parse_one_of(&p, "action", &Action::ALL.map(|k| k.as_str()))?;
    let q = BlocksQuery {
        since_us,
        client,
        category,
        stage,
        action,
        client_group: p.get("client_group").cloned(),
        limit,
    };
    let store = st.store.clone();
    let rows = blocking(&st, move || store.blocks(&q))
        .await?
        .map_err(ApiError::internal)?;
    json_ok(json!({ "count": rows.len(), "limit": limit, "blocks": rows }))
}

async fn queries(
    State(st): St,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = params(q, &["since", "client", "limit"])?;
    let limit = parse_limit(&p, DEFAULT_LIMIT, MAX_LIMIT)?;
    let since_us = parse_since(&p)?;
    let client = match p.get("client") {
        Some(c) => Some(parse_ip(c, "client")?.to_string()),
        None => None,
    };
    let q = BlocksQuery {
        since_us,
        client,
        limit,
        ..BlocksQuery::default()
    };
    let store = st.store.clone();
    let rows = blocking(&st, move || store.queries(&q))
        .await?
        .map_err(ApiError::internal)?;
    json_ok(json!({ "count": rows.len(), "limit": limit, "queries": rows }))
}

async fn top(State(st): St, q: Result<Query<Vec<(String, String)>>, QueryRejection>) -> ApiResult {
    let p = params(q, &["since", "limit"])?;
    let limit = parse_limit(&p, 20, 1000)?;
    // Default window: the last 24 hours (rounded to the minute so the result can be cached).
    let since = parse_since(&p)?.unwrap_or_else(|| {
        let m = 60_000_000;
        (now_us() - 86_400_000_000) / m * m
    });
    let key = (since, limit);
    if let Some((at, k, v)) = &*st.top_cache.lock() {
        if *k == key && at.elapsed() < Duration::from_secs(5) {
            return json_ok(v.clone());
        }
    }
    let store = st.store.clone();
    let rows = blocking(&st, move || store.top(since, limit))
        .await?
        .map_err(ApiError::internal)?;
    let v = json!({ "since": crate::time::rfc3339_us(since), "top": rows });
    *st.top_cache.lock() = Some((Instant::now(), key, v.clone()));
    json_ok(v)
}

async fn verdict(
    State(st): St,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = params(q, &["name", "client"])?;
    let raw = p
        .get("name")
        .ok_or_else(|| ApiError::bad("name: required"))?;
    let name = normalize_query_name(raw).map_err(ApiError::bad)?;
    let client = p.get("client").map(|c| parse_ip(c, "client")).transpose()?;
    let backend = st.backend.clone();
    let n = name.clone();
    let v = blocking(&st, move || backend.explain(&n, client)).await?;
    json_ok(json!({ "name": name, "verdict": v }))
}

async fn clients(
    State(st): St,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = params(q, &["limit", "min_score", "suspected"])?;
    let limit = parse_limit(&p, 100, MAX_LIMIT)?;
    let mut min_score = match p.get("min_score") {
        None => 0.0,
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .ok_or_else(|| {
                ApiError::bad(format!("min_score: expected a number >= 0, got `{v}`"))
            })?,
    };
    match p.get("suspected").map(|s| s.as_str()) {
        None | Some("false") | Some("0") => {}
        Some("true") | Some("1") => min_score = min_score.max(st.threshold),
        Some(v) => {
            return Err(ApiError::bad(format!(
                "suspected: expected true or false, got `{v}`"
            )))
        }
    }
    // Sorting thousands of clients under the scorer lock: not on an async worker (DNS shares
    // the runtime).
    let store = st.store.clone();
    let list = blocking(&st, move || store.clients(min_score, limit)).await?;
    let suspected = list.iter().filter(|c| c.suspected).count();
    json_ok(json!({
        "threshold": st.threshold,
        "suspected": suspected,
        "clients": list,
    }))
}

async fn client_one(State(st): St, Path(ip): Path<String>) -> ApiResult {
    let ip = parse_ip(&ip, "ip")?;
    let store = st.store.clone();
    match blocking(&st, move || store.client(ip, 100))
        .await?
        .map_err(ApiError::internal)?
    {
        Some(c) => json_ok(json!({ "threshold": st.threshold, "client": c })),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no evidence recorded for {ip}"),
        )),
    }
}

fn latency_json(h: Option<&Histogram>) -> Value {
    match h {
        Some(h) if h.count() > 0 => json!({
            "count": h.count(),
            "mean_ms": (h.mean_us() / 10.0).round() / 100.0,
            "p50_ms_le": h.quantile_us(0.5).map(|u| u as f64 / 1000.0),
            "p99_ms_le": h.quantile_us(0.99).map(|u| u as f64 / 1000.0),
        }),
        _ => json!({ "count": 0 }),
    }
}

async fn stats(State(st): St) -> ApiResult {
    let backend = st.backend.clone();
    let s = blocking(&st, move || backend.stats()).await?;
    let c = st.store.counters();
    use std::sync::atomic::Ordering::Relaxed;
    let lookups = s.cache_hits + s.cache_misses;
    let (queries, by_cat, by_action) = match &s.engine {
        Some(e) => (
            json!({ "udp": e.queries_udp, "tcp": e.queries_tcp, "total": e.queries_udp + e.queries_tcp }),
            e.blocks_by_category
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>(),
            e.blocks_by_action
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>(),
        ),
        None => (json!(null), Default::default(), Default::default()),
    };
    let store = st.store.clone();
    let (clients, tracked) = blocking(&st, move || {
        (store.suspected_count(), store.tracked_clients())
    })
    .await?;
    json_ok(json!({
        "queries": queries,
        "blocks_by_category": by_cat,
        "blocks_by_action": by_action,
        "cache": {
            "entries": s.cache_entries,
            "bytes": s.cache_bytes,
            "hits": s.cache_hits,
            "misses": s.cache_misses,
            "hit_rate": if lookups == 0 { 0.0 } else { s.cache_hits as f64 / lookups as f64 },
        },
        "answer_history": s.answer_history_domains.map(|d| json!({ "domains": d })),
        "reloads": {
            "ok": s.reloads_ok,
            "failed": s.reloads_failed,
            "last_error": s.last_reload_error,
        },
        // Whether blocks are enforced: an operator must see a forgotten monitor mode.
        "enforcement": {
            "monitor": s.monitor,
            "client_groups": s.client_groups,
        },
        "ioc_lists": s.ioc_lists.iter().map(|l| {
            let now = crate::time::now_secs() as u64;
            json!({
                "file": l.file,
                "entries": l.entries,
                "modified_unix": l.modified_unix,
                "age_secs": l.age_secs(now),
                "max_age_secs": l.max_age_secs,
                "stale": l.is_stale(now),
                "trial": l.trial,
            })
        }).collect::<Vec<_>>(),
        "upstream_latency": latency_json(st.backend.upstream_latency()),
        "classifier_latency": latency_json(st.backend.classifier_latency()),
        "store": {
            "degraded": st.store.is_degraded(),
            "enqueued": c.enqueued.load(Relaxed),
            "dropped": c.dropped.load(Relaxed),
            "written_blocks": c.written_blocks.load(Relaxed),
            "written_queries": c.written_queries.load(Relaxed),
            "write_errors": c.write_errors.load(Relaxed),
        },
        "clients": {
            "tracked": tracked,
            "suspected": clients,
            "escalated": s.escalated_clients.iter()
                .map(|(ip, secs)| json!({ "client": ip.to_string(), "remaining_secs": secs }))
                .collect::<Vec<_>>(),
        },
        "engine": s.engine,
    }))
}

async fn reload(State(st): St) -> ApiResult {
    let backend = st.backend.clone();
    match blocking(&st, move || backend.reload()).await? {
        Ok(()) => json_ok(json!({ "ok": true })),
        Err(e) => Ok((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "ok": false, "error": e })),
        )
            .into_response()),
    }
}

async fn rules_list(State(st): St) -> ApiResult {
    let store = st.store.clone();
    let rules = blocking(&st, move || store.list_rules())
        .await?
        .map_err(ApiError::internal)?;
    json_ok(json!({ "rules": rules }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRule {
    list: ListKind,
    rule: String,
    #[serde(default)]
    comment: String,
}

async fn after_rule_change(st: &AppState) -> Result<Value, ApiError> {
    let backend = st.backend.clone();
    Ok(match blocking(st, move || backend.reload()).await? {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e }),
    })
}

async fn rules_add(State(st): St, body: Result<Json<AddRule>, JsonRejection>) -> ApiResult {
    let Json(r) = body.map_err(|e| ApiError::bad(format!("body: {}", e.body_text())))?;
    if r.comment.len() > 1000 {
        return Err(ApiError::bad("comment: at most 1000 bytes"));
    }
    let store = st.store.clone();
    let (rule, comment, list) = (r.rule.clone(), r.comment.clone(), r.list);
    let added = blocking(&st, move || store.add_rule(list, &rule, &comment))
        .await?
        .map_err(|e| match e {
            RuleError::Invalid(_) => ApiError::bad(e.to_string()),
            RuleError::Store(m) => ApiError::internal(m),
        })?;
    let reload = if added {
        after_rule_change(&st).await?
    } else {
        json!({ "ok": true, "skipped": "rule already present" })
    };
    Ok((
        if added {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(json!({ "list": r.list, "rule": r.rule.trim(), "added": added, "reload": reload })),
    )
        .into_response())
}

async fn rules_remove(
    State(st): St,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = params(q, &["list", "rule"])?;
    let list = p
        .get("list")
        .ok_or_else(|| ApiError::bad("list: required (allow or deny)"))?;
    let list = ListKind::parse(list.trim())
        .ok_or_else(|| ApiError::bad(format!("list: expected allow or deny, got `{list}`")))?;
    let rule = p
        .get("rule")
        .ok_or_else(|| ApiError::bad("rule: required"))?
        .clone();
    let store = st.store.clone();
    let r2 = rule.clone();
    let removed = blocking(&st, move || store.remove_rule(list, &r2))
        .await?
        .map_err(ApiError::internal)?;
    if !removed {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no {} rule `{}` added through the API",
                list.as_str(),
                rule.trim()
            ),
        ));
    }
    let reload = after_rule_change(&st).await?;
    json_ok(json!({ "list": list, "rule": rule.trim(), "removed": true, "reload": reload }))
}

async fn metrics(State(st): St) -> ApiResult {
    let backend = st.backend.clone();
    let store = st.store.clone();
    let text = blocking(&st, move || crate::metrics::render(&store, &*backend)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The bearer token the admin API requires (none: no token), replaceable while the server runs,
/// so a reload after the token (file) was rotated takes effect without a restart.
#[derive(Debug, Default)]
pub struct AdminToken(parking_lot::RwLock<Option<Vec<u8>>>);

impl AdminToken {
    pub fn new(token: Option<&str>) -> AdminToken {
        AdminToken(parking_lot::RwLock::new(
            token.map(|t| t.as_bytes().to_vec()),
        ))
    }

    /// Require this token from the next request on (requests in flight are not affected).
    /// Returns whether it differs from the one before.
    pub fn set(&self, token: Option<&str>) -> bool {
        let new = token.map(|t| t.as_bytes().to_vec());
        let mut guard = self.0.write();
        let changed = *guard != new;
        *guard = new;
        changed
    }

    /// Whether a request with this `Authorization` header value may pass.
    fn admits(&self, authorization: Option<&str>) -> bool {
        let guard = self.0.read();
        let Some(token) = guard.as_deref() else {
            return true;
        };
        authorization
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .map(|given| {
                // Constant-time (for equal lengths; the length itself is not secret enough to matter).
                bool::from(given.as_bytes().ct_eq(token))
            })
            .unwrap_or(false)
    }
}

async fn auth(State(st): St, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !st.token.admits(given) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such endpoint".into())
}

/// The router (exposed for tests and embedding), requiring `cfg.token`.
pub fn router(cfg: &AdminConfig, store: Arc<EventStore>, backend: Arc<dyn AdminBackend>) -> Router {
    let token = Arc::new(AdminToken::new(cfg.token.as_deref()));
    router_with_token(cfg, store, backend, token)
}

/// The router, requiring whatever `token` holds at the time of each request.
fn router_with_token(
    cfg: &AdminConfig,
    store: Arc<EventStore>,
    backend: Arc<dyn AdminBackend>,
    token: Arc<AdminToken>,
) -> Router {
    let state = Arc::new(AppState {
        store,
        backend,
        token,
        readers: Semaphore::new(4),
        top_cache: Mutex::new(None),
        threshold: cfg.suspect_threshold,
    });
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/blocks", get(blocks))
        .route("/api/v1/queries", get(queries))
        .route("/api/v1/top", get(top))
        .route("/api/v1/verdict", get(verdict))
        .route("/api/v1/clients", get(clients))
        .route("/api/v1/clients/{ip}", get(client_one))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/reload", post(reload))
        .route(
            "/api/v1/rules",
            get(rules_list).post(rules_add).delete(rules_remove),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(protected)
        .fallback(not_found)
        .with_state(state)
}

/// A running admin server.
pub struct RunningAdmin {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The token the API requires; [`AdminToken::set`] replaces it while the server runs.
    pub token: Arc<AdminToken>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningAdmin {
    /// Stop accepting, finish in-flight requests, return.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Bind `cfg.listen` and serve the admin API on the current Tokio runtime.
pub async fn serve(
    cfg: &AdminConfig,
    store: Arc<EventStore>,
    backend: Arc<dyn AdminBackend>,
) -> Result<RunningAdmin, AdminError> {
    cfg.validate().map_err(AdminError::Config)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| AdminError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AdminError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let token = Arc::new(AdminToken::new(cfg.token.as_deref()));
    let app = router_with_token(cfg, store, backend, token.clone());
    let listener = crate::listener::LimitedListener::new(
        listener,
        crate::listener::MAX_CONNECTIONS,
        crate::listener::IDLE_TIMEOUT,
    );
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "admin server stopped");
        }
    });
    tracing::info!(%addr, "admin API listening");
    Ok(RunningAdmin {
        addr,
        token,
        shutdown: Some(tx),
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI_JSON).expect("openapi.json parses");
        assert_eq!(
            doc["openapi"].as_str().map(|s| s.starts_with("3.")),
            Some(true)
        );
        let paths = doc["paths"].as_object().unwrap();
        for (method, path) in ROUTES {
            let p = paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} missing from openapi.json"));
            assert!(
                p.get(*method).is_some(),
                "{method} {path} missing from openapi.json"
            );
        }
        for (path, ops) in paths {
            for m in ops.as_object().unwrap().keys() {
                if m == "parameters" {
                    continue;
                }
                assert!(
                    ROUTES.iter().any(|(rm, rp)| rm == m && rp == path),
                    "openapi.json documents {m} {path}, which the router does not serve"
                );
            }
        }
    }

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(
            normalize_query_name("WWW.Example.COM.").unwrap(),
            "www.example.com"
        );
        assert!(normalize_query_name("").is_err());
        assert!(normalize_query_name("a..b").is_err());
        assert!(normalize_query_name("bad name.com").is_err());
        assert!(normalize_query_name(&"a".repeat(64)).is_err());
    }
}
