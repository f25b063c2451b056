//! The event store: an [`EventSink`] that queues events off the DNS path, and a writer thread
//! that batches them into SQLite (WAL), feeds client scoring and the JSON-lines / dnstap streams.
//! API reads use their own connections, so a slow reader never holds up the writer (or DNS).

use crate::config::AdminConfig;
use crate::dnsbl::DnsblZones;
use crate::dnsnames::{
    qtype_index, qtype_name, rcode_name, result_index, METRIC_QTYPES, METRIC_RESULTS,
};
use crate::error::AdminError;
use crate::hist::Histogram;
use crate::scoring::{ClientSummary, Evidence, EvidenceKind, Observation, Scorer, ScoringParams};
use crate::stream::{EventStreams, StreamEvent};
use crate::time::{now_secs, now_us, rfc3339_us, unix_us};
use dnsward_policy::{Category, DomainSet, Verdict, VerdictKind};
use dnsward_server::events::{AnsweredQuery, EventSink, Outcome, QueryEvent};
use parking_lot::{Mutex, RwLock};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Events per transaction (at most). Bigger batches touch each hot index page once for many
/// events, which is what keeps the writer fast with many clients.
const BATCH_MAX: usize = 5000;
/// Records per query-log chunk (row ids of logged queries are `chunk id << QUERY_ID_SHIFT | index`).
const QUERY_CHUNK_MAX: u32 = 8192;
const QUERY_ID_SHIFT: u32 = 13;
/// `queries()` decodes at most this many logged queries per call (a filter that matches rarely
/// over a long log stops here rather than reading everything).
pub const QUERY_SCAN_MAX: usize = 5_000_000;
/// The writer drains the queue this often while events flow (see `Writer::run`).
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Empty polls in a row after which the writer blocks until the next event.
const IDLE_POLLS_BEFORE_BLOCKING: u32 = 50;
/// A partial batch is written after this long.
const BATCH_INTERVAL: Duration = Duration::from_millis(200);
/// Retention runs this often (and at open).
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// Rows deleted per retention statement (keeps each transaction short).
const RETENTION_CHUNK: i64 = 50_000;
/// At most this many chunks per retention run (the writer goes back to batching in between).
const RETENTION_MAX_CHUNKS: usize = 40;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blocks(
  id INTEGER PRIMARY KEY,
  ts_us INTEGER NOT NULL,
  client TEXT NOT NULL,
  qname TEXT NOT NULL,
  qtype INTEGER NOT NULL,
  category TEXT NOT NULL,
  action TEXT NOT NULL,
  rcode INTEGER NOT NULL,
  cached INTEGER NOT NULL,
  reason TEXT
);
CREATE INDEX IF NOT EXISTS blocks_time ON blocks(ts_us);
CREATE INDEX IF NOT EXISTS blocks_client_time ON blocks(client, ts_us);
CREATE INDEX IF NOT EXISTS blocks_category_time ON blocks(category, ts_us);
-- The query log (answered queries, log_all_queries): one row per writer batch, see qlog.rs.
CREATE TABLE IF NOT EXISTS query_chunks(
  id INTEGER PRIMARY KEY,
  first_us INTEGER NOT NULL,
  last_us INTEGER NOT NULL,
  n INTEGER NOT NULL,
  format INTEGER NOT NULL,
  data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS query_chunks_last ON query_chunks(last_us);
CREATE TABLE IF NOT EXISTS client_evidence(
  id INTEGER PRIMARY KEY,
  client TEXT NOT NULL,
  ts_us INTEGER NOT NULL,
  kind TEXT NOT NULL,
  weight REAL NOT NULL,
  detail TEXT NOT NULL,
  key TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS evidence_client_time ON client_evidence(client, ts_us);
CREATE INDEX IF NOT EXISTS evidence_time ON client_evidence(ts_us);
CREATE TABLE IF NOT EXISTS rules(
  list TEXT NOT NULL,
  rule TEXT NOT NULL,
  added_at INTEGER NOT NULL,
  comment TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(list, rule)
);
CREATE TABLE IF NOT EXISTS top_hourly(
  hour INTEGER NOT NULL,
  qname TEXT NOT NULL,
  category TEXT NOT NULL,
  n INTEGER NOT NULL,
  last_us INTEGER NOT NULL,
  clients_bits INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(hour, qname)
) WITHOUT ROWID;
-- State of other parts of the resolver that must survive a restart (one blob per key, e.g. the
-- answer history behind the flux features).
CREATE TABLE IF NOT EXISTS saved_state(
  key TEXT PRIMARY KEY,
  saved_us INTEGER NOT NULL,
  data BLOB NOT NULL
);
PRAGMA user_version = 3;
";

/// Hour bucket of a time (top-name aggregates).
fn hour_of(ts_us: i64) -> i64 {
    ts_us.div_euclid(3_600_000_000)
}

/// One bit of a 64-bit linear-counting sketch for a client address (stable across restarts).
fn client_bit(ip: IpAddr) -> u64 {
    let bytes = match crate::dnsbl::canonical_ip(ip) {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 finaliser, then the top 6 bits pick the bit.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    1u64 << (h >> 58)
}

/// Distinct clients estimated from the sketch (exact-ish for a handful, saturates near 265).
fn estimate_clients(bits: u64) -> u64 {
    let zeros = 64 - bits.count_ones();
    if bits == 0 {
        0
    } else if zeros == 0 {
        265
    } else {
        (-64.0 * (f64::from(zeros) / 64.0).ln()).round().max(1.0) as u64
    }
}

/// Which policy list an API rule belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Allow,
    Deny,
}

impl ListKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Allow => "allow",
            ListKind::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<ListKind> {
        match s {
            "allow" => Some(ListKind::Allow),
            "deny" => Some(ListKind::Deny),
            _ => None,
        }
    }
}

/// An allow/deny rule added through the API.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RuleRow {
    pub list: ListKind,
    pub rule: String,
    pub added_at: String,
    pub comment: String,
}

/// One stored block, as the API returns it.
#[derive(Clone, Debug, Serialize)]
pub struct BlockRow {
    pub id: i64,
    /// RFC 3339 UTC, millisecond precision.
    pub time: String,
    /// Unix time in microseconds.
    pub ts_us: i64,
    pub client: String,
    pub name: String,
    pub qtype: String,
    pub qtype_num: u16,
    pub category: String,
    pub action: String,
    pub rcode: String,
    pub cached: bool,
    /// The verdict's reason: stage, source (list file:line or model), rule, score, family,
    /// detail (features).
    pub reason: serde_json::Value,
}

/// One logged (answered) query, as the API returns it (query logging on).
#[derive(Clone, Debug, Serialize)]
pub struct QueryRow {
    pub id: i64,
    pub time: String,
    pub ts_us: i64,
    pub client: String,
    pub name: String,
    pub qtype: String,
    pub qtype_num: u16,
    /// `pass` or `allow`.
    pub verdict: String,
    pub rcode: String,
    pub cached: bool,
    /// For `allow`: the allowlist rule that matched.
    pub reason: serde_json::Value,
}

/// Filters for [`EventStore::blocks`] (and [`EventStore::queries`], without `category`).
#[derive(Clone, Debug, Default)]
pub struct BlocksQuery {
    pub since_us: Option<i64>,
    pub client: Option<String>,
    pub category: Option<String>,
    /// The stage that decided (`trial_list`: what the lists on trial caught).
    pub stage: Option<String>,
    /// The action the client got (`log`: what was recorded but not enforced).
    pub action: Option<String>,
    /// The client's `[[actions.groups]]` entry named in the reason.
    pub client_group: Option<String>,
    pub limit: usize,
}

/// A top blocked name.
#[derive(Clone, Debug, Serialize)]
pub struct TopRow {
    pub name: String,
    pub category: String,
    pub count: u64,
    pub clients: u64,
    pub last_seen: String,
}

/// Store counters (also rendered in `/metrics`).
#[derive(Default)]
pub struct StoreCounters {
    /// Events queued by the sink.
    pub enqueued: AtomicU64,
    /// Events dropped because the queue was full (DNS is never slowed down instead).
    pub dropped: AtomicU64,
    pub written_blocks: AtomicU64,
    pub written_queries: AtomicU64,
    pub written_evidence: AtomicU64,
    pub write_errors: AtomicU64,
    /// Events lost because neither the file nor the in-memory fallback could take them.
    pub lost: AtomicU64,
    pub retention_deleted: AtomicU64,
    /// Batch write time.
    pub batch_latency: Histogram,
    /// Queries seen by the sink, by qtype x result (complete only when the engine reports every
    /// query to the sink, i.e. `wants_all_queries`; blocks always).
    pub(crate) by_type: [[AtomicU64; METRIC_RESULTS.len()]; METRIC_QTYPES.len() + 1],
    /// Blocks seen by the sink, by category x action.
    pub(crate) by_cat_action: [[AtomicU64; 4]; Category::ALL.len()],
}

/// Actions in metrics order.
pub(crate) const ACTIONS: [dnsward_policy::Action; 4] = [
    dnsward_policy::Action::Nxdomain,
    dnsward_policy::Action::Sinkhole,
    dnsward_policy::Action::Refused,
    dnsward_policy::Action::Log,
];

impl StoreCounters {
    /// `(category, action, count)` for every non-zero cell.
    pub fn blocks_by_category_action(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut v = Vec::new();
        for (ci, row) in self.by_cat_action.iter().enumerate() {
            for (ai, c) in row.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    v.push((Category::ALL[ci].as_str(), ACTIONS[ai].as_str(), n));
                }
            }
        }
        v
    }

    /// `(qtype, result, count)` for every non-zero cell.
    pub fn queries_by_type(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut v = Vec::new();
        for (ti, row) in self.by_type.iter().enumerate() {
            let t = METRIC_QTYPES.get(ti).map(|(_, n)| *n).unwrap_or("other");
            for (ri, c) in row.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    v.push((t, METRIC_RESULTS[ri], n));
                }
            }
        }
        v
    }
}

/// An event copied off the DNS path.
#[derive(Clone, Debug)]
pub struct OwnedEvent {
    pub ts_us: i64,
    pub client: IpAddr,
    pub qname: Box<str>,
    pub qtype: u16,
    pub verdict: Verdict,
    pub rcode: u8,
    pub cached: bool,
    pub blocked: bool,
    /// Stored and streamed (false: only looked at by client scoring).
    pub keep: bool,
    /// Possibly a DNSBL lookup (the sink's pre-filter said so): client scoring looks at it.
    pub dnsbl: bool,
}

enum Msg {
    Event(OwnedEvent),
    Sinkhole {
        ts_us: i64,
        client: IpAddr,
        port: u16,
        host: Option<String>,
        name: Option<String>,
    },
    /// Queries were staged (see [`QueryStage`]): write them with the next batch.
    Wake,
    Flush(SyncSender<()>),
    Exec(String, SyncSender<Result<(), String>>),
    Shutdown,
}

/// The query log's fast lane. With query logging on and no event stream configured, an answered
/// query is encoded on the DNS path straight into the chunk format the store keeps, under a
/// short lock: no allocation, no channel message and no hand-off per query (a DNSBL lookup is
/// also sent to the writer, for client scoring only). The writer takes the chunks with its next
/// batch. The first query staged after a take sends one `Msg::Wake`, so an idle server stays
/// idle.
#[derive(Default)]
struct QueryStage {
    current: crate::qlog::ChunkEncoder,
    full: Vec<crate::qlog::ChunkEncoder>,
    /// A `Msg::Wake` is queued (or taken) for what is staged.
    woken: bool,
}

/// Staged chunks beyond this (the writer stalled: 64 x 8192 queries) are dropped and counted.
const MAX_STAGED_CHUNKS: usize = 64;

impl QueryStage {
    fn take(&mut self) -> Vec<crate::qlog::ChunkEncoder> {
        let mut out = std::mem::take(&mut self.full);
        if !self.current.is_empty() {
            out.push(std::mem::take(&mut self.current));
        }
        self.woken = false;
        out
    }
}

#[derive(Clone, Debug)]
enum DbLoc {
    File(PathBuf),
    Memory(String),
}

struct Shared {
    loc: RwLock<(u64, DbLoc)>,
    pool: Mutex<Vec<(u64, Connection)>>,
    degraded: AtomicBool,
}

impl Shared {
    fn open_conn(loc: &DbLoc) -> rusqlite::Result<Connection> {
        let c = match loc {
            DbLoc::File(p) => Connection::open_with_flags(
                p,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?,
            DbLoc::Memory(uri) => {
                let c = Connection::open_with_flags(
                    uri,
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                        | OpenFlags::SQLITE_OPEN_URI
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.pragma_update(None, "read_uncommitted", true)?;
                c
            }
        };
        c.busy_timeout(Duration::from_secs(5))?;
        Ok(c)
    }

    /// Run `f` on a pooled connection to the current database.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, String> {
        let (generation, loc) = self.loc.read().clone();
        let pooled = {
            let mut pool = self.pool.lock();
            pool.retain(|(g, _)| *g == generation);
            pool.pop()
        };
        let conn = match pooled {
            Some((_, c)) => c,
            None => Self::open_conn(&loc).map_err(|e| format!("store: {e}"))?,
        };
        let r = f(&conn).map_err(|e| format!("store: {e}"));
        let mut pool = self.pool.lock();
        if pool.len() < 8 {
            pool.push((generation, conn));
        }
        r
    }
}

/// The embedded event store. Implements [`EventSink`]; cheap to share (`Arc`).
pub struct EventStore {
    log_all: bool,
    scoring: bool,
    /// An event stream is configured: every logged query goes through the writer.
    streaming: bool,
    zones: &'static DnsblZones,
    tx: SyncSender<Msg>,
    stage: Arc<Mutex<QueryStage>>,
    shared: Arc<Shared>,
    counters: Arc<StoreCounters>,
    scorer: Arc<Mutex<Scorer>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    db_path: PathBuf,
}

fn open_file_db(path: &Path) -> Result<Connection, String> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    let c = Connection::open(path).map_err(|e| e.to_string())?;
    let mode: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("could not switch to WAL mode (got {mode})"));
    }
    c.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| e.to_string())?;
    c.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    // The writer touches pages all over the (client, time) and (category, time) indexes: a
    // larger page cache keeps them in memory (64 MiB), and temporary b-trees stay in memory.
    // Checkpoint every 8192 WAL pages (32 MiB) rather than 1000: a hot index page rewritten by
    // many commits is copied into the database file once.
    c.execute_batch(
        "PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 8192;",
    )
    .map_err(|e| e.to_string())?;
    c.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    Ok(c)
}

static MEM_SEQ: AtomicU64 = AtomicU64::new(0);

fn open_memory_db() -> rusqlite::Result<(Connection, DbLoc)> {
    let uri = format!(
        "file:dnsward-events-{}-{}?mode=memory&cache=shared",
        std::process::id(),
        MEM_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let c = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.execute_batch(SCHEMA)?;
    Ok((c, DbLoc::Memory(uri)))
}

impl EventStore {
    /// Open (or create) the store at `cfg.db_path` and start the writer thread. When the file
    /// cannot be opened or written, the store runs in memory and says so loudly (DNS goes on).
    pub fn open(cfg: &AdminConfig) -> Result<Arc<EventStore>, AdminError> {
        cfg.validate().map_err(AdminError::Config)?;
        let streams = EventStreams::open(cfg)?;
        let shared = Arc::new(Shared {
            loc: RwLock::new((0, DbLoc::File(cfg.db_path.clone()))),
            pool: Mutex::new(Vec::new()),
            degraded: AtomicBool::new(false),
        });
        let conn = match open_file_db(&cfg.db_path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    path = %cfg.db_path.display(),
                    error = %e,
                    "EVENT STORE UNAVAILABLE: cannot open the database; keeping events IN MEMORY ONLY (lost on restart)"
                );
                let (c, loc) = open_memory_db().map_err(|source| AdminError::Db {
                    path: ":memory:".into(),
                    source,
                })?;
                *shared.loc.write() = (1, loc);
                shared.degraded.store(true, Ordering::Relaxed);
                c
            }
        };
        let counters = Arc::new(StoreCounters::default());
        let mut scorer = Scorer::new(ScoringParams::from_config(cfg));
        restore_scores(&conn, &mut scorer);
        let scorer = Arc::new(Mutex::new(scorer));
        let (tx, rx) = mpsc::sync_channel(cfg.queue_capacity);
        let stage = Arc::new(Mutex::new(QueryStage::default()));
        let streaming = streams.is_active();
        let mut writer = Writer {
            conn,
            stage: stage.clone(),
            staged: Vec::new(),
            shared: shared.clone(),
            counters: counters.clone(),
            scorer: scorer.clone(),
            scoring: cfg.client_scoring,
            retention_days: cfg.retention_days,
            max_events: cfg.max_events,
            max_db_bytes: cfg.max_db_mib.saturating_mul(1024 * 1024),
            streams,
            failed_memory: false,
        };
        writer.retention();
        let handle = std::thread::Builder::new()
            .name("dnsward-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| AdminError::Output {
                what: "store writer thread".into(),
                source,
            })?;
        Ok(Arc::new(EventStore {
            log_all: cfg.log_all_queries,
            scoring: cfg.client_scoring,
            streaming,
            zones: DnsblZones::builtin(),
            tx,
            stage,
            shared,
            counters,
            scorer,
            writer: Mutex::new(Some(handle)),
            db_path: cfg.db_path.clone(),
        }))
    }

    /// The fast lane of the query log (see [`QueryStage`]). `qname_wire`, when given, is encoded
    /// as text straight into the chunk (the engine's answered queries: no `String` per query)
    /// and `record.qname` is not read.
    fn stage_query(&self, record: &crate::qlog::LoggedQuery<'_>, qname_wire: Option<&[u8]>) {
        let mut st = self.stage.lock();
        if st.current.len() >= QUERY_CHUNK_MAX {
            if st.full.len() >= MAX_STAGED_CHUNKS {
                drop(st);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let done = std::mem::take(&mut st.current);
            st.full.push(done);
        }
        if st.current.is_empty() && st.full.is_empty() {
            st.current = crate::qlog::ChunkEncoder::with_capacity(1024);
        }
        match qname_wire {
            Some(w) => st.current.push_wire(record, w),
            None => st.current.push(record),
        }
        if !st.woken && self.tx.try_send(Msg::Wake).is_ok() {
            st.woken = true;
        }
        drop(st);
        self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
    }

    /// Wait until everything queued so far is committed (and streamed). After `flush` returns,
    /// a crash or restart loses none of those events.
    pub fn flush(&self) {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv();
        }
    }

    /// Flush and stop the writer thread (also done on drop).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }

    pub fn counters(&self) -> &StoreCounters {
        &self.counters
    }

    /// True when the database file could not be written and events are kept in memory.
    pub fn is_degraded(&self) -> bool {
        self.shared.degraded.load(Ordering::Relaxed)
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Report a connection to the sinkhole (from the sinkhole server): evidence for scoring.
    pub fn record_sinkhole_hit(
        &self,
        client: IpAddr,
        port: u16,
        host_or_sni: Option<&str>,
        name: Option<&str>,
    ) {
        let msg = Msg::Sinkhole {
            ts_us: now_us(),
            client,
            port,
            host: host_or_sni.map(str::to_string),
            name: name.map(str::to_string),
        };
        if self.tx.try_send(msg).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Run a statement on the writer connection (tests: e.g. `PRAGMA max_page_count=...`).
    #[doc(hidden)]
    pub fn exec_on_writer(&self, sql: &str) -> Result<(), String> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Exec(sql.to_string(), tx))
            .map_err(|_| "writer stopped".to_string())?;
        rx.recv().map_err(|_| "writer stopped".to_string())?
    }

    /// Most recent logged (answered) queries, newest first; empty unless `log_all_queries`.
    /// The log is stored in chunks (see [`crate::qlog`]): chunks are decoded newest first until
    /// `limit` rows match, so a rare `client` over a long log reads at most
    /// [`QUERY_SCAN_MAX`] records.
    pub fn queries(&self, q: &BlocksQuery) -> Result<Vec<QueryRow>, String> {
        let since = q.since_us.unwrap_or(i64::MIN);
        // A client that does not parse matches nothing (as a text comparison would).
        let client: Option<Option<IpAddr>> = q
            .client
            .as_ref()
            .map(|c| c.parse::<IpAddr>().ok().map(crate::dnsbl::canonical_ip));
        if client == Some(None) {
            return Ok(Vec::new());
        }
        let client = client.flatten();
        self.shared.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, format, data FROM query_chunks WHERE last_us >= ?1 ORDER BY id DESC",
            )?;
            let mut rows = st.query(params![since])?;
            let mut out = Vec::new();
            let mut scanned = 0usize;
            while let Some(r) = rows.next()? {
                if out.len() >= q.limit || scanned >= QUERY_SCAN_MAX {
                    break;
                }
                let chunk_id: i64 = r.get(0)?;
                let format: i64 = r.get(1)?;
                if format != crate::qlog::CHUNK_FORMAT {
                    continue;
                }
                let data = r.get_ref(2)?.as_blob()?;
                let (recs, err) = crate::qlog::decode_chunk(data);
                if let Some(e) = err {
                    tracing::warn!(chunk = chunk_id, error = %e, "event store: damaged query chunk");
                }
                scanned += recs.len();
                for (i, x) in recs.iter().enumerate().rev() {
                    if x.ts_us < since || client.is_some_and(|ip| ip != x.client) {
                        continue;
                    }
                    out.push(QueryRow {
                        id: (chunk_id << QUERY_ID_SHIFT) | i as i64,
                        time: rfc3339_us(x.ts_us),
                        ts_us: x.ts_us,
                        client: x.client.to_string(),
                        name: x.qname.to_string(),
                        qtype: qtype_name(x.qtype),
                        qtype_num: x.qtype,
                        verdict: if x.allow { "allow" } else { "pass" }.to_string(),
                        rcode: rcode_name(x.rcode),
                        cached: x.cached,
                        reason: x
                            .reason
                            .and_then(|s| serde_json::from_str(s).ok())
                            .unwrap_or(serde_json::Value::Null),
                    });
                    if out.len() >= q.limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    /// Most recent blocks, newest first. Blocking (run it off the async runtime).
    pub fn blocks(&self, q: &BlocksQuery) -> Result<Vec<BlockRow>, String> {
        let mut sql = String::from(
            "SELECT id, ts_us, client, qname, qtype, category, action, rcode, cached, reason FROM blocks",
        );
        let mut conds = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(s) = q.since_us {
            conds.push("ts_us >= ?");
            args.push(s.into());
        }
        if let Some(c) = &q.client {
            conds.push("client = ?");
            args.push(c.clone().into());
        }
        if let Some(c) = &q.category {
            conds.push("category = ?");
            args.push(c.clone().into());
        }
        if let Some(s) = &q.stage {
            conds.push("json_extract(reason, '$.stage') = ?");
            args.push(s.clone().into());
        }
        if let Some(a) = &q.action {
            conds.push("action = ?");
            args.push(a.clone().into());
        }
        if let Some(g) = &q.client_group {
            conds.push("json_extract(reason, '$.client_group') = ?");
            args.push(g.clone().into());
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        sql.push_str(" ORDER BY ts_us DESC, id DESC LIMIT ?");
        args.push((q.limit as i64).into());
        self.shared.with_conn(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                let ts_us: i64 = r.get(1)?;
                let qtype: u16 = r.get::<_, i64>(4)? as u16;
                let reason: Option<String> = r.get(9)?;
                Ok(BlockRow {
                    id: r.get(0)?,
                    time: rfc3339_us(ts_us),
                    ts_us,
                    client: r.get(2)?,
                    name: r.get(3)?,
                    qtype: qtype_name(qtype),
                    qtype_num: qtype,
                    category: r.get(5)?,
                    action: r.get(6)?,
                    rcode: rcode_name(r.get::<_, i64>(7)? as u8),
                    cached: r.get::<_, i64>(8)? != 0,
                    reason: reason
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or(serde_json::Value::Null),
                })
            })?;
            rows.collect()
        })
    }

    /// Most blocked names since `since_us` (rounded down to the hour: the counts are kept in
    /// hourly aggregates, so this stays fast with millions of blocks), most blocked first.
    /// `clients` is an estimate (64-bit linear counting per hour): exact-ish for a few clients.
    pub fn top(&self, since_us: i64, limit: usize) -> Result<Vec<TopRow>, String> {
        let hour = hour_of(since_us);
        let now_hour = hour_of(now_us());
        self.shared.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT qname, MIN(category), SUM(n) AS total, MAX(last_us)
                 FROM top_hourly WHERE hour >= ?1 GROUP BY qname ORDER BY total DESC, qname LIMIT ?2",
            )?;
            let mut bits = c.prepare_cached(
                "SELECT clients_bits FROM top_hourly WHERE hour = ?1 AND qname = ?2",
            )?;
            let rows: Vec<(String, String, i64, i64)> = st
                .query_map(params![hour, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let first: Option<i64> =
                c.query_row("SELECT MIN(hour) FROM top_hourly", [], |r| r.get(0))?;
            let from = hour.max(first.unwrap_or(now_hour));
            rows.into_iter()
                .map(|(name, category, n, last)| {
                    // OR the per-hour sketches (point lookups; at most one per stored hour).
                    let mut acc = 0u64;
                    for h in from..=now_hour.max(hour_of(last)) {
                        if let Some(b) = bits
                            .query_row(params![h, name], |r| r.get::<_, i64>(0))
                            .map(Some)
                            .or_else(|e| match e {
                                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                                e => Err(e),
                            })?
                        {
                            acc |= b as u64;
                        }
                    }
                    Ok(TopRow {
                        name,
                        category,
                        count: n as u64,
                        clients: estimate_clients(acc),
                        last_seen: rfc3339_us(last),
                    })
                })
                .collect()
        })
    }

    /// Number of stored blocks (exact; a full count, so not for hot paths).
    pub fn block_count(&self) -> Result<u64, String> {
        self.shared
            .with_conn(|c| c.query_row("SELECT COUNT(*) FROM blocks", [], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
    }

    /// Number of stored (non-blocked) logged queries.
    pub fn query_count(&self) -> Result<u64, String> {
        self.shared
            .with_conn(|c| {
                c.query_row("SELECT COALESCE(SUM(n), 0) FROM query_chunks", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .map(|n| n as u64)
    }

    /// Suspected (and watched) clients, highest score first; `min_score` 0 lists every client
    /// with evidence.
    pub fn clients(&self, min_score: f64, limit: usize) -> Vec<ClientSummary> {
        self.scorer.lock().clients(now_secs(), min_score, limit)
    }

    /// One client: in-memory state with its stored evidence (newest first, up to `limit`).
    /// `None` when there is no evidence at all.
    pub fn client(&self, ip: IpAddr, limit: usize) -> Result<Option<ClientSummary>, String> {
        let ip = crate::dnsbl::canonical_ip(ip);
        let now = now_secs();
        let mem = self.scorer.lock().client(ip, now);
        let stored: Vec<Evidence> = self.shared.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT ts_us, kind, weight, detail FROM client_evidence
                 WHERE client = ?1 ORDER BY ts_us DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![ip.to_string(), limit as i64], |r| {
                let ts: i64 = r.get(0)?;
                let kind: String = r.get(1)?;
                Ok((ts, kind, r.get::<_, f64>(2)?, r.get::<_, String>(3)?))
            })?;
            let mut v = Vec::new();
            for row in rows {
                let (ts, kind, w, d) = row?;
                if let Some(k) = EvidenceKind::parse(&kind) {
                    v.push(Evidence::new(ts as f64 / 1e6, k, w, d));
                }
            }
            Ok(v)
        })?;
        match mem {
            Some(mut s) => {
                if !stored.is_empty() {
                    s.evidence = stored;
                }
                Ok(Some(s))
            }
            None if stored.is_empty() => Ok(None),
            None => {
                // Forgotten by the in-memory LRU: recompute from the stored evidence.
                let params = self.scorer.lock().params().clone();
                let mut s = Scorer::new(params);
                for e in stored.iter().rev() {
                    s.add_evidence(ip, e.clone(), &e.detail);
                }
                Ok(s.client(ip, now).map(|mut c| {
                    c.evidence = stored;
                    c
                }))
            }
        }
    }

    /// Allow/deny rules added through the API, for the binary to add to the policy on every
    /// (re)build.
    pub fn api_rules(&self) -> Vec<(ListKind, String)> {
        self.list_rules()
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read API rules");
                Vec::new()
            })
            .into_iter()
            .map(|r| (r.list, r.rule))
            .collect()
    }

    pub fn list_rules(&self) -> Result<Vec<RuleRow>, String> {
        self.shared.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT list, rule, added_at, comment FROM rules ORDER BY added_at, rule",
            )?;
            let rows = st.query_map([], |r| {
                let list: String = r.get(0)?;
                Ok(RuleRow {
                    list: ListKind::parse(&list).unwrap_or(ListKind::Deny),
                    rule: r.get(1)?,
                    added_at: rfc3339_us(r.get(2)?),
                    comment: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Validate (the same parser as list files) and persist a rule. `Ok(false)` when it existed.
    pub fn add_rule(&self, list: ListKind, rule: &str, comment: &str) -> Result<bool, RuleError> {
        let rule = validate_rule(rule)?;
        self.shared
            .with_conn(|c| {
                c.execute(
                    "INSERT OR IGNORE INTO rules(list, rule, added_at, comment) VALUES (?1, ?2, ?3, ?4)",
                    params![list.as_str(), rule, now_us(), comment],
                )
            })
            .map(|n| n > 0)
            .map_err(RuleError::Store)
    }

    /// Remove a rule; `Ok(false)` when there was none.
    pub fn remove_rule(&self, list: ListKind, rule: &str) -> Result<bool, String> {
        let rule = rule.trim();
        self.shared
            .with_conn(|c| {
                c.execute(
                    "DELETE FROM rules WHERE list = ?1 AND rule = ?2",
                    params![list.as_str(), rule],
                )
            })
            .map(|n| n > 0)
    }

    /// Stores (replaces) a blob of another part's state under `key`, for [`Self::load_state`]
    /// after a restart.
    pub fn save_state(&self, key: &str, data: &[u8]) -> Result<(), String> {
        self.shared
            .with_conn(|c| {
                c.execute(
                    "INSERT OR REPLACE INTO saved_state(key, saved_us, data) VALUES (?1, ?2, ?3)",
                    params![key, now_us(), data],
                )
            })
            .map(|_| ())
    }

    /// The blob last stored under `key` and when (microseconds since the epoch).
    pub fn load_state(&self, key: &str) -> Result<Option<(i64, Vec<u8>)>, String> {
        self.shared.with_conn(|c| {
            c.query_row(
                "SELECT saved_us, data FROM saved_state WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    /// Clients whose score is at or above the threshold now.
    pub fn suspected_count(&self) -> usize {
        self.scorer.lock().suspected_count(now_secs())
    }

    pub fn tracked_clients(&self) -> usize {
        self.scorer.lock().tracked()
    }
}

/// Why a rule was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule: {0}")]
    Invalid(String),
    #[error("{0}")]
    Store(String),
}

/// Check a rule with the list parser; returns it trimmed.
pub fn validate_rule(rule: &str) -> Result<&str, RuleError> {
    let rule = rule.trim();
    if rule.is_empty() || rule.starts_with('#') || rule.starts_with('!') {
        return Err(RuleError::Invalid("empty rule".into()));
    }
    if rule.len() > 300 || rule.contains(['\n', '\r']) {
        return Err(RuleError::Invalid(
            "must be one line of at most 300 bytes".into(),
        ));
    }
    let mut set = DomainSet::new();
    set.add_rule("api", rule).map_err(RuleError::Invalid)?;
    if set.is_empty() {
        return Err(RuleError::Invalid("the rule matches nothing".into()));
    }
    Ok(rule)
}

fn restore_scores(conn: &Connection, scorer: &mut Scorer) {
    let horizon = now_us() - (scorer.params().half_life_secs * 10.0 * 1e6) as i64;
    let r: rusqlite::Result<usize> = (|| {
        let mut st = conn.prepare(
            "SELECT client, ts_us, kind, weight, detail, key FROM client_evidence
             WHERE ts_us >= ?1 ORDER BY ts_us LIMIT 200000",
        )?;
        let mut rows = st.query(params![horizon])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let client: String = r.get(0)?;
            let kind: String = r.get(2)?;
            let (Ok(ip), Some(kind)) = (client.parse::<IpAddr>(), EvidenceKind::parse(&kind))
            else {
                continue;
            };
            let ev = Evidence::new(r.get::<_, i64>(1)? as f64 / 1e6, kind, r.get(3)?, r.get(4)?);
            let key: String = r.get(5)?;
            scorer.add_evidence(ip, ev, &key);
            n += 1;
        }
        Ok(n)
    })();
    match r {
        Ok(n) if n > 0 => tracing::info!(evidence = n, "restored client scores"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot restore client scores"),
    }
}

impl Drop for EventStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl EventSink for EventStore {
    fn record(&self, e: &QueryEvent<'_>) {
        let blocked = e.outcome == Outcome::Blocked;
        self.counters.by_type[qtype_index(e.qtype)][result_index(blocked, e.rcode)]
            .fetch_add(1, Ordering::Relaxed);
        if blocked {
            if let (Some(c), Some(a)) = (e.verdict.category(), e.verdict.action()) {
                let ci = Category::ALL.iter().position(|x| *x == c).unwrap_or(0);
                let ai = ACTIONS.iter().position(|x| *x == a).unwrap_or(0);
                self.counters.by_cat_action[ci][ai].fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut keep = blocked || self.log_all;
        let dnsbl = self.scoring && self.zones.maybe_under(e.qname);
        if !(keep || dnsbl) {
            return;
        }
        if !blocked && self.log_all && !self.streaming {
            // Every logged answer takes the fast lane, so the log keeps the order of answers.
            let reason = reason_json(e.verdict);
            self.stage_query(&logged_answer(e, &reason), None);
            if !dnsbl {
                return;
            }
            keep = false; // a DNSBL lookup still goes to client scoring
        }
        self.enqueue(e, blocked, keep, dnsbl);
    }

    fn record_answered(&self, q: &AnsweredQuery<'_>) {
        if !self.log_all || self.streaming {
            // Scoring or streaming needs the text name and an owned event anyway.
            let name = dnsward_server::wire::name_to_text(q.qname_wire);
            return self.record(&q.to_event(&name));
        }
        self.count_answered(q.qtype, q.rcode);
        // Every logged answer takes the fast lane, so the log keeps the order of answers.
        let reason = reason_json(q.verdict);
        // The name is written from `qname_wire` by the stage.
        let record = logged_answer(&q.to_event(""), &reason);
        self.stage_query(&record, Some(q.qname_wire));
        if self.scoring && self.zones.maybe_under_wire(q.qname_wire) {
            // A DNSBL lookup also goes to client scoring (not logged a second time). The wire
            // pre-filter gives the text one's answer (`dnsbl.rs` tests), so it is not asked again.
            let name = dnsward_server::wire::name_to_text(q.qname_wire);
            self.enqueue(&q.to_event(&name), false, false, true);
        }
    }

    fn wants_all_queries(&self) -> bool {
        self.log_all || self.scoring
    }

    fn wants_answered(&self, qname_wire: &[u8]) -> bool {
        self.log_all || self.scoring && self.zones.maybe_under_wire(qname_wire)
    }

    fn count_answered(&self, qtype: u16, rcode: u8) {
        self.counters.by_type[qtype_index(qtype)][result_index(false, rcode)]
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// A query-log record of an answered query. Only allowlisted answers carry a reason (rare next
/// to plain answers).
fn logged_answer<'a>(
    e: &QueryEvent<'a>,
    reason: &'a Option<String>,
) -> crate::qlog::LoggedQuery<'a> {
    crate::qlog::LoggedQuery {
        ts_us: unix_us(e.time),
        client: crate::dnsbl::canonical_ip(e.client),
        qname: e.qname,
        qtype: e.qtype,
        rcode: e.rcode,
        cached: e.from_cache,
        allow: matches!(e.verdict.kind, VerdictKind::Allow),
        reason: reason.as_deref(),
    }
}

impl EventStore {
    /// Hands an event to the writer (`keep`: store it; `dnsbl`: score it as a DNSBL lookup).
    fn enqueue(&self, e: &QueryEvent<'_>, blocked: bool, keep: bool, dnsbl: bool) {
        let ev = OwnedEvent {
            ts_us: unix_us(e.time),
            client: e.client,
            qname: e.qname.into(),
            qtype: e.qtype,
            verdict: e.verdict.clone(),
            rcode: e.rcode,
            cached: e.from_cache,
            blocked,
            keep,
            dnsbl,
        };
        match self.tx.try_send(Msg::Event(ev)) {
            Ok(()) => {
                self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

struct Writer {
    conn: Connection,
    stage: Arc<Mutex<QueryStage>>,
    /// Chunks taken from the stage and not yet committed (kept across a failed write).
    staged: Vec<crate::qlog::ChunkEncoder>,
    shared: Arc<Shared>,
    counters: Arc<StoreCounters>,
    scorer: Arc<Mutex<Scorer>>,
    scoring: bool,
    retention_days: u32,
    max_events: u64,
    max_db_bytes: u64,
    streams: EventStreams,
    failed_memory: bool,
}

enum Pending {
    Event(OwnedEvent),
    Evidence(IpAddr, Evidence, String),
    /// Queries are staged: makes the batch due like any event (written from the stage).
    Staged,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Pending> = Vec::with_capacity(BATCH_MAX);
        let mut batch_started = Instant::now();
        let mut last_retention = Instant::now();
        let mut idle_polls = 0u32;
        // Clock reads are rationed: at 100k+ events/s, three per event were a visible share of
        // the writer's time. The clocks are looked at when the queue runs dry and every 64 events.
        let mut events_since_clock = 0u32;
        loop {
            let timeout = |batch: &Vec<Pending>| {
                if batch.is_empty() {
                    Duration::from_secs(1)
                } else {
                    BATCH_INTERVAL.saturating_sub(batch_started.elapsed())
                }
            };
            // While events flow, the writer polls: it drains the queue, then sleeps. Blocking in
            // `recv` instead makes every `try_send` on the DNS path wake the writer (a futex call
            // and two context switches per query, which on a one-core resolver cost more than
            // the database write). After a quiet spell it blocks again, so an idle server is idle.
            let msg = match rx.try_recv() {
                Ok(m) => {
                    idle_polls = 0;
                    Ok(m)
                }
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) if idle_polls < IDLE_POLLS_BEFORE_BLOCKING => {
                    idle_polls += 1;
                    if !batch.is_empty() && batch_started.elapsed() >= BATCH_INTERVAL {
                        self.write(&mut batch);
                    }
                    std::thread::sleep(
                        POLL_INTERVAL.min(timeout(&batch).max(Duration::from_millis(1))),
                    );
                    Err(RecvTimeoutError::Timeout)
                }
                Err(TryRecvError::Empty) => {
                    let m = rx.recv_timeout(timeout(&batch));
                    if m.is_ok() {
                        idle_polls = 0;
                    }
                    m
                }
            };
            match msg {
                Ok(Msg::Event(e)) => {
                    if batch.is_empty() {
                        batch_started = Instant::now();
                    }
                    self.take_event(e, &mut batch);
                }
                Ok(Msg::Sinkhole {
                    ts_us,
                    client,
                    port,
                    host,
                    name,
                }) => {
                    if batch.is_empty() {
                        batch_started = Instant::now();
                    }
                    let hit = self.scorer.lock().sinkhole_hit(
                        ts_us as f64 / 1e6,
                        client,
                        port,
                        host.as_deref(),
                        name.as_deref(),
                    );
                    if let Some((ip, ev)) = hit {
                        let key = format!("{port}/{}", host.as_deref().unwrap_or(""));
                        batch.push(Pending::Evidence(ip, ev, key));
                    }
                }
                Ok(Msg::Wake) => {
                    if batch.is_empty() {
                        batch_started = Instant::now();
                    }
                    batch.push(Pending::Staged);
                }
                Ok(Msg::Flush(ack)) => {
                    self.write(&mut batch);
                    self.streams.flush();
                    let _ = ack.send(());
                }
                Ok(Msg::Exec(sql, ack)) => {
                    self.write(&mut batch);
                    let _ = ack.send(self.conn.execute_batch(&sql).map_err(|e| e.to_string()));
                }
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    self.write(&mut batch);
                    self.streams.flush();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if batch.len() >= BATCH_MAX {
                self.write(&mut batch);
            }
            events_since_clock += 1;
            if idle_polls == 0 && events_since_clock < 64 {
                continue;
            }
            events_since_clock = 0;
            if !batch.is_empty() && batch_started.elapsed() >= BATCH_INTERVAL {
                self.write(&mut batch);
            }
            if last_retention.elapsed() >= RETENTION_INTERVAL {
                self.retention();
                self.streams.flush();
                last_retention = Instant::now();
            }
        }
    }

    fn take_event(&mut self, e: OwnedEvent, batch: &mut Vec<Pending>) {
        // Scoring looks at categorised verdicts and DNSBL lookups only; with query logging on,
        // every other answered query would cost a lock and a zone parse for nothing.
        if self.scoring && (e.verdict.category().is_some() || e.dnsbl) {
            let new = self.scorer.lock().observe(&Observation {
                at: e.ts_us as f64 / 1e6,
                client: e.client,
                qname: &e.qname,
                category: e.verdict.category(),
                trial: e
                    .verdict
                    .reason
                    .as_ref()
                    .is_some_and(|r| r.stage == dnsward_policy::Stage::TrialList),
                rcode: e.rcode,
            });
            for (ip, ev) in new {
                let key = match ev.kind {
                    EvidenceKind::FluxOrIocLookup => e.qname.to_string(),
                    _ => String::new(),
                };
                batch.push(Pending::Evidence(ip, ev, key));
            }
        }
        if e.keep {
            if self.streams.is_active() {
                self.streams.send(&StreamEvent::from(&e));
            }
            batch.push(Pending::Event(e));
        }
    }

    fn write(&mut self, batch: &mut Vec<Pending>) {
        let taken = self.stage.lock().take();
        self.staged.extend(taken);
        if batch.is_empty() && self.staged.is_empty() {
            return;
        }
        let t0 = Instant::now();
        match insert_batch(&mut self.conn, batch, &self.staged) {
            Ok((b, q, ev)) => {
                self.staged.clear();
                self.counters.written_blocks.fetch_add(b, Ordering::Relaxed);
                self.counters
                    .written_queries
                    .fetch_add(q, Ordering::Relaxed);
                self.counters
                    .written_evidence
                    .fetch_add(ev, Ordering::Relaxed);
            }
            Err(e) if is_busy(&e) && batch.len() < BATCH_MAX * 100 => {
                // Another connection (an API rule change) holds the write lock beyond the busy
                // timeout: keep the batch and retry with the next one; nothing is wrong with the disk.
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, pending = batch.len(), "event store busy; retrying");
                return;
            }
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                if self.shared.degraded.load(Ordering::Relaxed) {
                    if !self.failed_memory {
                        tracing::error!(error = %e, "EVENT STORE: the in-memory fallback failed too; events are being DROPPED");
                        self.failed_memory = true;
                    }
                    self.counters
                        .lost
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                } else {
                    self.degrade(&e.to_string());
                    match insert_batch(&mut self.conn, batch, &self.staged) {
                        Ok((b, q, ev)) => {
                            self.staged.clear();
                            self.counters.written_blocks.fetch_add(b, Ordering::Relaxed);
                            self.counters
                                .written_queries
                                .fetch_add(q, Ordering::Relaxed);
                            self.counters
                                .written_evidence
                                .fetch_add(ev, Ordering::Relaxed);
                        }
                        Err(_) => {
                            self.counters
                                .lost
                                .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        if !self.staged.is_empty() {
            // Neither the file nor the in-memory fallback took them: lost, and counted so.
            let n: u64 = self.staged.iter().map(|c| u64::from(c.len())).sum();
            self.counters.lost.fetch_add(n, Ordering::Relaxed);
            self.staged.clear();
        }
        self.counters.batch_latency.observe(t0.elapsed());
        batch.clear();
    }

    /// The database file cannot be written (disk full, read-only, I/O error): carry on in memory.
    fn degrade(&mut self, error: &str) {
        let path = match &self.shared.loc.read().1 {
            DbLoc::File(p) => p.display().to_string(),
            DbLoc::Memory(u) => u.clone(),
        };
        tracing::error!(
            path = %path,
            error = %error,
            "EVENT STORE WRITE FAILED (disk full or unwritable?): switching to an IN-MEMORY store; \
             new events and API rules are NOT persisted until restart. DNS service continues."
        );
        match open_memory_db() {
            Ok((conn, loc)) => {
                // Carry the API rules over so the policy does not lose them.
                let rules: Vec<(String, String, i64, String)> = self
                    .conn
                    .prepare("SELECT list, rule, added_at, comment FROM rules")
                    .and_then(|mut st| {
                        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                            .collect()
                    })
                    .unwrap_or_default();
                for (l, r, a, c) in rules {
                    let _ = conn.execute(
                        "INSERT OR IGNORE INTO rules VALUES (?1, ?2, ?3, ?4)",
                        params![l, r, a, c],
                    );
                }
                self.conn = conn;
                let mut g = self.shared.loc.write();
                *g = (g.0 + 1, loc);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot open the in-memory fallback store");
            }
        }
        self.shared.degraded.store(true, Ordering::Relaxed);
    }

    fn retention(&mut self) {
        let mut deleted = 0u64;
        let r: rusqlite::Result<()> = (|| {
            if self.retention_days > 0 {
                let cutoff = now_us() - i64::from(self.retention_days) * 86_400_000_000;
                let cutoff_hour = hour_of(cutoff);
                deleted += self.conn.execute(
                    "DELETE FROM top_hourly WHERE hour < ?1",
                    params![cutoff_hour],
                )? as u64;
                deleted += self.conn.execute(
                    "DELETE FROM query_chunks WHERE last_us < ?1",
                    params![cutoff],
                )? as u64;
                for table in ["blocks", "client_evidence"] {
                    for _ in 0..RETENTION_MAX_CHUNKS {
                        let n = self.conn.execute(
                            &format!(
                                "DELETE FROM {table} WHERE id IN
                                 (SELECT id FROM {table} WHERE ts_us < ?1 ORDER BY ts_us LIMIT ?2)"
                            ),
                            params![cutoff, RETENTION_CHUNK],
                        )? as u64;
                        deleted += n;
                        if n < RETENTION_CHUNK as u64 {
                            break;
                        }
                    }
                }
            }
            // Size: when the file is over `max_db_mib`, keep only the newest 80% of each table
            // (freed pages are reused, so the file stops growing).
            let mut max_rows = [self.max_events as i64; 2];
            if self.max_db_bytes > 0 {
                let (pages, free, size): (i64, i64, i64) = self.conn.query_row(
                    "SELECT (SELECT page_count FROM pragma_page_count()),
                            (SELECT freelist_count FROM pragma_freelist_count()),
                            (SELECT page_size FROM pragma_page_size())",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                if (pages - free) * size > self.max_db_bytes as i64 {
                    tracing::warn!(
                        used_mib = (pages - free) * size / (1024 * 1024),
                        "event store over admin.max_db_mib: deleting the oldest events"
                    );
                    for (i, sql) in [
                        "SELECT COALESCE(MAX(id) - MIN(id) + 1, 0) FROM blocks",
                        "SELECT COALESCE(SUM(n), 0) FROM query_chunks",
                    ]
                    .iter()
                    .enumerate()
                    {
                        let n: i64 = self.conn.query_row(sql, [], |r| r.get(0))?;
                        let keep = n * 4 / 5;
                        max_rows[i] = if max_rows[i] > 0 {
                            max_rows[i].min(keep)
                        } else {
                            keep
                        };
                    }
                }
            }
            if max_rows[1] > 0 {
                // Keep the newest chunks holding at most max_rows[1] queries.
                let cut: Option<i64> = {
                    let mut st = self
                        .conn
                        .prepare_cached("SELECT id, n FROM query_chunks ORDER BY id DESC")?;
                    let mut rows = st.query([])?;
                    let mut kept = 0i64;
                    let mut cut = None;
                    while let Some(r) = rows.next()? {
                        kept += r.get::<_, i64>(1)?;
                        if kept > max_rows[1] {
                            cut = Some(r.get::<_, i64>(0)?);
                            break;
                        }
                    }
                    cut
                };
                if let Some(id) = cut {
                    let n: i64 = self.conn.query_row(
                        "SELECT COALESCE(SUM(n), 0) FROM query_chunks WHERE id <= ?1",
                        params![id],
                        |r| r.get(0),
                    )?;
                    self.conn
                        .execute("DELETE FROM query_chunks WHERE id <= ?1", params![id])?;
                    deleted += n as u64;
                }
            }
            for (i, table) in ["blocks"].iter().enumerate() {
                if max_rows[i] <= 0 {
                    continue;
                }
                for _ in 0..RETENTION_MAX_CHUNKS {
                    let (min, max): (Option<i64>, Option<i64>) = self.conn.query_row(
                        &format!("SELECT MIN(id), MAX(id) FROM {table}"),
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    let (Some(min), Some(max)) = (min, max) else {
                        break;
                    };
                    let keep_from = max - max_rows[i];
                    if keep_from < min {
                        break;
                    }
                    let upto = keep_from.min(min + RETENTION_CHUNK);
                    deleted += self.conn.execute(
                        &format!("DELETE FROM {table} WHERE id <= ?1"),
                        params![upto],
                    )? as u64;
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            tracing::warn!(error = %e, "event store retention failed");
        }
        self.counters
            .retention_deleted
            .fetch_add(deleted, Ordering::Relaxed);
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The verdict's reason as stored (JSON), if it has one.
fn reason_json(v: &Verdict) -> Option<String> {
    v.reason
        .as_ref()
        .and_then(|r| serde_json::to_string(r).ok())
}

fn insert_batch(
    conn: &mut Connection,
    batch: &[Pending],
    staged: &[crate::qlog::ChunkEncoder],
) -> rusqlite::Result<(u64, u64, u64)> {
    let tx = conn.transaction()?;
    let (mut b, mut q, mut ev) = (0, 0, 0);
    {
        let mut ins_block = tx.prepare_cached(
            "INSERT INTO blocks(ts_us, client, qname, qtype, category, action, rcode, cached, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut ins_chunk = tx.prepare_cached(
            "INSERT INTO query_chunks(first_us, last_us, n, format, data)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut put_chunk = |chunk: &crate::qlog::ChunkEncoder| -> rusqlite::Result<u64> {
            if chunk.is_empty() {
                return Ok(0);
            }
            let (first, last, n, data) = chunk.parts();
            ins_chunk.execute(params![first, last, n, crate::qlog::CHUNK_FORMAT, data])?;
            Ok(u64::from(n))
        };
        // Staged queries first: they were answered before the events queued with this batch.
        for c in staged {
            q += put_chunk(c)?;
        }
        let mut chunk = crate::qlog::ChunkEncoder::with_capacity(batch.len());
        let mut ins_ev = tx.prepare_cached(
            "INSERT INTO client_evidence(client, ts_us, kind, weight, detail, key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for p in batch {
            match p {
                Pending::Staged => {}
                Pending::Event(e) => {
                    let reason = reason_json(&e.verdict);
                    if !e.blocked {
                        chunk.push(&crate::qlog::LoggedQuery {
                            ts_us: e.ts_us,
                            client: crate::dnsbl::canonical_ip(e.client),
                            qname: &e.qname,
                            qtype: e.qtype,
                            rcode: e.rcode,
                            cached: e.cached,
                            allow: matches!(e.verdict.kind, VerdictKind::Allow),
                            reason: reason.as_deref(),
                        });
                        if chunk.len() >= QUERY_CHUNK_MAX {
                            q += put_chunk(&chunk)?;
                            chunk.clear();
                        }
                        continue;
                    }
                    let client = crate::dnsbl::canonical_ip(e.client).to_string();
                    {
                        let category = e.verdict.category().unwrap_or(Category::List).as_str();
                        let action = e.verdict.action().map(|a| a.as_str()).unwrap_or("log");
                        ins_block.execute(params![
                            e.ts_us, client, &*e.qname, e.qtype, category, action, e.rcode,
                            e.cached, reason
                        ])?;
                        b += 1;
                    }
                }
                Pending::Evidence(ip, e, key) => {
                    ins_ev.execute(params![
                        ip.to_string(),
                        (e.at * 1e6) as i64,
                        e.kind.as_str(),
                        e.weight,
                        e.detail,
                        key
                    ])?;
                    ev += 1;
                }
            }
        }
        q += put_chunk(&chunk)?;
    }
    // Hourly top-name aggregates, merged in memory first (block traffic repeats a lot).
    {
        let mut names: HashMap<(i64, &str), (&'static str, i64, i64, u64)> = HashMap::new();
        for p in batch {
            if let Pending::Event(e) = p {
                if e.blocked {
                    let h = hour_of(e.ts_us);
                    let cat = e.verdict.category().unwrap_or(Category::List).as_str();
                    let slot = names.entry((h, &e.qname)).or_insert((cat, 0, e.ts_us, 0));
                    slot.1 += 1;
                    slot.2 = slot.2.max(e.ts_us);
                    slot.3 |= client_bit(e.client);
                }
            }
        }
        let mut up = tx.prepare_cached(
            "INSERT INTO top_hourly(hour, qname, category, n, last_us, clients_bits)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(hour, qname) DO UPDATE SET n = n + excluded.n,
               last_us = MAX(last_us, excluded.last_us),
               clients_bits = clients_bits | excluded.clients_bits",
        )?;
        for ((h, name), (cat, n, last, bits)) in names {
            up.execute(params![h, name, cat, n, last, bits as i64])?;
        }
    }
    tx.commit()?;
    Ok((b, q, ev))
}

/// Sends every event to several sinks (e.g. `EventStore` and `TracingSink`, to keep the
/// per-block log line). Asks for all queries when any sink does.
pub struct TeeSink {
    sinks: Vec<Arc<dyn EventSink>>,
    wants_all: bool,
}

impl TeeSink {
    pub fn new(sinks: Vec<Arc<dyn EventSink>>) -> Self {
        let wants_all = sinks.iter().any(|s| s.wants_all_queries());
        TeeSink { sinks, wants_all }
    }
}

impl EventSink for TeeSink {
    fn record(&self, event: &QueryEvent<'_>) {
        for s in &self.sinks {
            s.record(event);
        }
    }

    fn wants_all_queries(&self) -> bool {
        self.wants_all
    }

    fn wants_answered(&self, qname_wire: &[u8]) -> bool {
        self.sinks.iter().any(|s| s.wants_answered(qname_wire))
    }

    fn record_answered(&self, q: &AnsweredQuery<'_>) {
        // Each sink as if it were alone: a sink that does not want this answer only counts it
        // (and none of them makes the name a `String` unless it needs one).
        for s in &self.sinks {
            if s.wants_answered(q.qname_wire) {
                s.record_answered(q);
            } else {
                s.count_answered(q.qtype, q.rcode);
            }
        }
    }

    fn count_answered(&self, qtype: u16, rcode: u8) {
        for s in &self.sinks {
            s.count_answered(qtype, rcode);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    /// Notes what it was handed: names of recorded events, and counts.
    struct Probe {
        wants: bool,
        names: Mutex<Vec<String>>,
        counted: AtomicU64,
    }

    impl EventSink for Probe {
        fn record(&self, e: &QueryEvent<'_>) {
            self.names.lock().push(e.qname.to_string());
        }
        fn wants_all_queries(&self) -> bool {
            self.wants
        }
        fn count_answered(&self, _qtype: u16, _rcode: u8) {
            self.counted.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn tee_hands_answers_only_to_the_sinks_that_want_them() {
        let probe = |wants| {
            Arc::new(Probe {
                wants,
                names: Mutex::new(Vec::new()),
                counted: AtomicU64::new(0),
            })
        };
        let (logger, quiet) = (probe(true), probe(false));
        let tee = TeeSink::new(vec![logger.clone(), quiet.clone()]);
        assert!(tee.wants_all_queries());
        let wire = b"\x03WWW\x07Example\x03com\x00";
        assert!(tee.wants_answered(wire));
        tee.record_answered(&AnsweredQuery {
            time: SystemTime::now(),
            client: IpAddr::from([192, 0, 2, 1]),
            qname_wire: wire,
            qtype: 1,
            verdict: &Verdict::PASS,
            rcode: 0,
            from_cache: false,
        });
        // The default `record_answered` formats the name (lowercase text) and records it.
        assert_eq!(*logger.names.lock(), vec!["www.example.com".to_string()]);
        assert_eq!(logger.counted.load(Ordering::Relaxed), 0);
        assert!(quiet.names.lock().is_empty());
        assert_eq!(quiet.counted.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn client_sketch() {
        assert_eq!(estimate_clients(0), 0);
        let ips: Vec<IpAddr> = (1..=40u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        assert_eq!(estimate_clients(client_bit(ips[0])), 1);
        assert_eq!(estimate_clients(client_bit(ips[0]) | client_bit(ips[0])), 1);
        let bits = ips.iter().fold(0, |a, ip| a | client_bit(*ip));
        let est = estimate_clients(bits);
        assert!((25..=60).contains(&est), "{est}");
    }
}
