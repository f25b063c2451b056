mod common;

use common::*;
use dnsward_admin::{BlocksQuery, EventStore, ListKind};
use dnsward_policy::Verdict;
use dnsward_server::events::EventSink;
use std::time::{Duration, Instant, SystemTime};

#[test]
fn persists_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let store = EventStore::open(&cfg).unwrap();
        assert!(!store.is_degraded());
        seed(&store);
        store
            .add_rule(ListKind::Deny, "||evil.example^", "test")
            .unwrap();
        store.add_rule(ListKind::Allow, "good.example", "").unwrap();
        // Dropped without shutdown-specific calls: flush was the acknowledgement.
    }
    let store = EventStore::open(&cfg).unwrap();
    let rows = store
        .blocks(&BlocksQuery {
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 23);
    let newest = &rows[0];
    assert_eq!(newest.client, "10.0.0.66");
    assert_eq!(newest.category, "dga");
    assert_eq!(newest.action, "nxdomain");
    assert_eq!(newest.reason["stage"], "name_classifier");
    assert_eq!(newest.reason["family"], "conficker");
    assert!((newest.reason["score"].as_f64().unwrap() - 0.97).abs() < 1e-6);
    let list = rows.iter().find(|r| r.category == "list").unwrap();
    assert_eq!(list.reason["rule"], "||tracker.example^");
    assert_eq!(list.reason["source"], "lists/deny.txt:12");
    let mut rules = store.api_rules();
    rules.sort();
    assert_eq!(
        rules,
        vec![
            (ListKind::Allow, "good.example".to_string()),
            (ListKind::Deny, "||evil.example^".to_string())
        ]
    );
    // Client scores survive too.
    let c = store.clients(50.0, 10);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].client.to_string(), "10.0.0.66");
    let one = store
        .client("10.0.0.66".parse().unwrap(), 10)
        .unwrap()
        .unwrap();
    assert!(one.suspected);
    assert_eq!(one.evidence[0].kind, dnsward_admin::EvidenceKind::DgaBurst);
}

#[test]
fn saved_state_survives_a_restart_and_is_replaced_not_appended() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let store = EventStore::open(&cfg).unwrap();
        assert_eq!(store.load_state("answer_history").unwrap(), None);
        store.save_state("answer_history", b"first").unwrap();
        store
            .save_state("answer_history", b"second\0bytes")
            .unwrap();
        store.save_state("other", b"x").unwrap();
        store.shutdown();
    }
    let store = EventStore::open(&cfg).unwrap();
    let (saved_us, data) = store.load_state("answer_history").unwrap().unwrap();
    assert_eq!(data, b"second\0bytes");
    let age = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
        - saved_us;
    assert!((0..60_000_000).contains(&age), "saved {age} µs ago");
    assert_eq!(store.load_state("other").unwrap().unwrap().1, b"x");
}

#[test]
fn filters_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&config(dir.path())).unwrap();
    seed(&store);
    let q = |client: Option<&str>, category: Option<&str>, limit| {
        store
            .blocks(&BlocksQuery {
                since_us: None,
                client: client.map(str::to_string),
                category: category.map(str::to_string),
                limit,
                ..Default::default()
            })
            .unwrap()
    };
    assert_eq!(q(Some("10.0.0.3"), None, 100).len(), 2);
    assert_eq!(q(None, Some("ioc"), 100).len(), 1);
    assert_eq!(q(Some("10.0.0.66"), Some("dga"), 5).len(), 5);
    let all = q(None, None, 100);
    assert!(all.windows(2).all(|w| w[0].ts_us >= w[1].ts_us));
    let top = store.top(0, 5).unwrap();
    assert_eq!(top[0].name, "ads.tracker.example");
    assert_eq!(top[0].count, 2);
    assert_eq!(top[0].clients, 2);
}

#[test]
fn unblocked_queries_only_when_logging() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let store = EventStore::open(&cfg).unwrap();
    assert!(
        store.wants_all_queries(),
        "client scoring needs every query"
    );
    let now = SystemTime::now();
    record(
        &*store,
        now,
        "10.0.0.9",
        "www.example.com",
        &Verdict::PASS,
        0,
    );
    // A DNSBL query is kept for scoring but not stored as a query.
    record(
        &*store,
        now,
        "10.0.0.9",
        "9.0.0.10.zen.spamhaus.org",
        &Verdict::PASS,
        3,
    );
    store.flush();
    assert_eq!(store.query_count().unwrap(), 0);
    assert_eq!(
        store
            .counters()
            .enqueued
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    drop(store);

    cfg.log_all_queries = true;
    let store = EventStore::open(&cfg).unwrap();
    record(
        &*store,
        now,
        "10.0.0.9",
        "www.example.com",
        &Verdict::PASS,
        0,
    );
    store.flush();
    assert_eq!(store.query_count().unwrap(), 1);
    drop(store);

    cfg.log_all_queries = false;
    cfg.client_scoring = false;
    let store = EventStore::open(&cfg).unwrap();
    assert!(!store.wants_all_queries());
}

/// The query log is stored in chunks (one per writer batch): reads span chunks newest first,
/// filter by client and time, keep the allowlist reason, survive a restart, and retention drops
/// whole chunks by age and by count.
#[test]
fn query_log_spans_chunks_filters_and_retains() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.log_all_queries = true;
    cfg.retention_days = 1;
    cfg.max_events = 0;
    let t0 = SystemTime::now() - Duration::from_secs(600);
    let allow = Verdict::allow(dnsward_policy::Reason::new(
        dnsward_policy::Stage::Allowlist,
        "lists/allow.txt:3",
        "",
    ));
    {
        let store = EventStore::open(&cfg).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
        for i in 0..5 {
            record(
                &*store,
                old,
                "10.0.0.1",
                &format!("old{i}.example"),
                &Verdict::PASS,
                0,
            );
        }
        store.flush();
        // Three batches (chunks) of 100 queries from three clients, one second apart.
        for batch in 0..3u64 {
            for i in 0..100u64 {
                let n = batch * 100 + i;
                let client = ["10.0.0.1", "10.0.0.2", "2001:db8::7"][(n % 3) as usize];
                let v = if n == 250 { &allow } else { &Verdict::PASS };
                record(
                    &*store,
                    t0 + Duration::from_secs(n),
                    client,
                    &format!("q{n}.example"),
                    v,
                    (n % 4) as u8,
                );
            }
            store.flush();
        }
        assert_eq!(store.query_count().unwrap(), 305);
    }
    // Retention runs at open: the old chunk is gone.
    let store = EventStore::open(&cfg).unwrap();
    assert_eq!(store.query_count().unwrap(), 300);
    let q = |store: &EventStore, client: Option<&str>, since: Option<SystemTime>, limit| {
        store
            .queries(&BlocksQuery {
                since_us: since.map(|t| {
                    t.duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_micros() as i64
                }),
                client: client.map(str::to_string),
                limit,
                ..Default::default()
            })
            .unwrap()
    };
    let all = q(&store, None, None, 1000);
    assert_eq!(all.len(), 300);
    assert_eq!(all[0].name, "q299.example", "newest first");
    assert_eq!(all[299].name, "q0.example");
    assert!(all
        .windows(2)
        .all(|w| w[0].ts_us > w[1].ts_us && w[0].id > w[1].id));
    let allowed = all.iter().find(|r| r.name == "q250.example").unwrap();
    assert_eq!(allowed.verdict, "allow");
    assert_eq!(allowed.reason["source"], "lists/allow.txt:3");
    assert_eq!(all[1].verdict, "pass");
    assert_eq!(all[1].rcode, "SERVFAIL"); // q298: 298 % 4 == 2
    let v6 = q(&store, Some("2001:db8::7"), None, 1000);
    assert_eq!(v6.len(), 100);
    assert!(v6.iter().all(|r| r.client == "2001:db8::7"));
    assert_eq!(
        q(&store, Some("10.0.0.2"), None, 7).len(),
        7,
        "limit across chunks"
    );
    assert!(q(&store, Some("not-an-ip"), None, 10).is_empty());
    let recent = q(&store, None, Some(t0 + Duration::from_secs(150)), 1000);
    assert_eq!(recent.len(), 150);
    assert_eq!(recent.last().unwrap().name, "q150.example");
    drop(store);
    // Count retention keeps the newest chunks holding at most max_events queries.
    cfg.max_events = 250;
    let store = EventStore::open(&cfg).unwrap();
    let n = store.query_count().unwrap();
    assert_eq!(n, 200, "the oldest whole chunk is dropped");
    assert_eq!(q(&store, None, None, 1)[0].name, "q299.example");
}

#[test]
fn retention_by_age_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.retention_days = 1;
    cfg.max_events = 0;
    {
        let store = EventStore::open(&cfg).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
        for i in 0..10 {
            record(
                &*store,
                old,
                "10.0.0.1",
                &format!("old{i}.example"),
                &list_verdict("x"),
                3,
            );
        }
        for i in 0..30 {
            record(
                &*store,
                SystemTime::now(),
                "10.0.0.1",
                &format!("new{i}.example"),
                &list_verdict("x"),
                3,
            );
        }
        store.flush();
        assert_eq!(store.block_count().unwrap(), 40);
    }
    // Retention runs at open.
    let store = EventStore::open(&cfg).unwrap();
    assert_eq!(store.block_count().unwrap(), 30);
    drop(store);
    cfg.max_events = 12;
    let store = EventStore::open(&cfg).unwrap();
    assert_eq!(store.block_count().unwrap(), 12);
    let rows = store
        .blocks(&BlocksQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert!(rows.iter().all(|r| r.name.starts_with("new")));
    assert!(
        rows.iter().any(|r| r.name == "new29.example"),
        "the newest are kept"
    );
}

#[test]
fn retention_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_events = 0;
    cfg.max_db_mib = 0;
    {
        let store = EventStore::open(&cfg).unwrap();
        for i in 0..20_000 {
            record(
                &*store,
                SystemTime::now(),
                "10.0.0.1",
                &format!("n{i}.{}.example", "y".repeat(40)),
                &list_verdict("x"),
                3,
            );
            if i % 5000 == 0 {
                store.flush();
            }
        }
        store.flush();
        assert_eq!(store.block_count().unwrap(), 20_000);
    }
    cfg.max_db_mib = 1;
    let store = EventStore::open(&cfg).unwrap();
    let n = store.block_count().unwrap();
    assert!(n <= 16_000, "oldest fifth deleted, got {n}");
    let rows = store
        .blocks(&BlocksQuery {
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert!(rows[0].name.starts_with("n19999."), "newest kept");
}

#[test]
fn full_disk_degrades_to_memory_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&config(dir.path())).unwrap();
    seed(&store);
    store.add_rule(ListKind::Deny, "kept.example", "").unwrap();
    // Simulate a full disk: the database may not grow any more.
    let pages: i64 = {
        let c = rusqlite_page_count(&dir.path().join("events.sqlite3"));
        c
    };
    store
        .exec_on_writer(&format!("PRAGMA max_page_count = {pages}"))
        .unwrap();
    let t0 = Instant::now();
    for i in 0..5000 {
        record(
            &*store,
            SystemTime::now(),
            "10.0.0.4",
            &format!("n{i}-{}.example", "x".repeat(60)),
            &list_verdict("x"),
            3,
        );
    }
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "the sink must not block"
    );
    store.flush();
    assert!(store.is_degraded());
    // The API keeps working from memory, and API rules were carried over.
    let rows = store
        .blocks(&BlocksQuery {
            limit: 10_000,
            ..Default::default()
        })
        .unwrap();
    assert!(rows.len() >= 4000, "{}", rows.len());
    assert!(store.api_rules().iter().any(|(_, r)| r == "kept.example"));
    record(
        &*store,
        SystemTime::now(),
        "10.0.0.4",
        "after.example",
        &list_verdict("x"),
        3,
    );
    store.flush();
    let rows = store
        .blocks(&BlocksQuery {
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows[0].name, "after.example");
}

fn rusqlite_page_count(path: &std::path::Path) -> i64 {
    // Size of the main file in pages (the WAL is checkpointed into it later, so leave no room).
    let len = std::fs::metadata(path).unwrap().len() as i64;
    (len / 4096).max(1)
}

#[test]
fn unwritable_path_degrades_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    cfg.db_path = file.join("events.sqlite3");
    let store = EventStore::open(&cfg).unwrap();
    assert!(store.is_degraded());
    seed(&store);
    assert_eq!(
        store
            .blocks(&BlocksQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .len(),
        23
    );
}

#[test]
fn bad_rules_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&config(dir.path())).unwrap();
    assert!(store.add_rule(ListKind::Deny, "", "").is_err());
    assert!(store
        .add_rule(ListKind::Deny, "bad name with spaces", "")
        .is_err());
    assert!(store.add_rule(ListKind::Deny, "||", "").is_err());
    assert!(store.add_rule(ListKind::Deny, "*.ads.example", "").unwrap());
    assert!(!store.add_rule(ListKind::Deny, "*.ads.example", "").unwrap());
    assert!(store.remove_rule(ListKind::Deny, "*.ads.example").unwrap());
    assert!(!store.remove_rule(ListKind::Deny, "*.ads.example").unwrap());
}

#[test]
fn full_queue_drops_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.queue_capacity = 16;
    let store = EventStore::open(&cfg).unwrap();
    let v = list_verdict("x");
    let t0 = Instant::now();
    for i in 0..200_000 {
        record(
            &*store,
            SystemTime::now(),
            "10.0.0.1",
            &format!("q{i}.example"),
            &v,
            3,
        );
    }
    let per = t0.elapsed() / 200_000;
    store.flush();
    let c = store.counters();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(c.enqueued.load(Relaxed) + c.dropped.load(Relaxed), 200_000);
    assert!(per < Duration::from_micros(50), "record took {per:?}");
}

#[test]
fn jsonl_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let path = dir.path().join("events.jsonl");
    cfg.jsonl = Some(path.to_string_lossy().to_string());
    let store = EventStore::open(&cfg).unwrap();
    seed(&store);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 23);
    let first = &lines[0];
    assert_eq!(first["name"], "ads.tracker.example");
    assert_eq!(first["client"], "10.0.0.2");
    assert_eq!(first["outcome"], "blocked");
    assert_eq!(first["category"], "list");
    assert_eq!(first["action"], "nxdomain");
    assert_eq!(first["qtype"], "A");
    assert_eq!(first["rcode"], "NXDOMAIN");
    assert_eq!(first["reason"]["rule"], "||tracker.example^");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn sinkhole_hits_score() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(&config(dir.path())).unwrap();
    let ip = "10.9.9.9".parse().unwrap();
    store.record_sinkhole_hit(ip, 443, Some("c2.evil.example"), Some("c2.evil.example"));
    store.flush();
    let c = store.client(ip, 10).unwrap().unwrap();
    assert!(!c.suspected, "one hit does not brand");
    store.record_sinkhole_hit(ip, 80, Some("c2.evil.example"), None);
    store.record_sinkhole_hit(ip, 8080, Some("other.evil.example"), None);
    store.flush();
    let c = store.client(ip, 10).unwrap().unwrap();
    assert!(c.suspected, "{c:?}");
    assert_eq!(c.evidence.len(), 3);
}

/// Run in a child process by `crash_loses_nothing_acknowledged`: record, flush, then die
/// without any cleanup (no destructor, no checkpoint).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("DNSWARD_ADMIN_CRASH_DIR") else {
        return;
    };
    let store = EventStore::open(&config(std::path::Path::new(&dir))).unwrap();
    seed(&store);
    store.add_rule(ListKind::Deny, "crash.example", "").unwrap();
    // Not acknowledged: may or may not survive.
    record(
        &*store,
        SystemTime::now(),
        "10.0.0.1",
        "unflushed.example",
        &list_verdict("x"),
        3,
    );
    std::process::abort();
}

#[test]
fn crash_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("DNSWARD_ADMIN_CRASH_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have crashed");
    let store = EventStore::open(&config(dir.path())).unwrap();
    let rows = store
        .blocks(&BlocksQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let acknowledged = rows
        .iter()
        .filter(|r| r.name != "unflushed.example")
        .count();
    assert_eq!(acknowledged, 23);
    assert!(store.api_rules().iter().any(|(_, r)| r == "crash.example"));
    assert_eq!(store.clients(50.0, 10).len(), 1, "evidence survived");
}

/// With query logging on, answered queries are encoded on the DNS path (the store's fast lane);
/// the log keeps the order of the answers, an allowlisted answer keeps its reason, and a DNSBL
/// self-check is logged in place and still reaches client scoring.
#[test]
fn logged_queries_keep_order_and_dnsbl_lookups_still_score() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.log_all_queries = true;
    let allow = Verdict::allow(dnsward_policy::Reason::new(
        dnsward_policy::Stage::Allowlist,
        "lists/allow.txt:9",
        "",
    ));
    let t0 = SystemTime::now() - Duration::from_secs(60);
    {
        let store = EventStore::open(&cfg).unwrap();
        for i in 0..20u64 {
            let name = match i {
                7 => "9.0.0.10.zen.spamhaus.org".to_string(),
                _ => format!("n{i}.example"),
            };
            let v = if i == 11 { &allow } else { &Verdict::PASS };
            record(
                &*store,
                t0 + Duration::from_millis(i),
                "10.0.0.9",
                &name,
                v,
                0,
            );
        }
        store.flush();
        let c = store
            .client("10.0.0.9".parse().unwrap(), 10)
            .unwrap()
            .expect("the DNSBL self-check was scored");
        assert_eq!(c.evidence_counts.get("dnsbl_self_check"), Some(&1), "{c:?}");
    }
    // After a restart: all 20, newest first, in answer order.
    let store = EventStore::open(&cfg).unwrap();
    let rows = store
        .queries(&BlocksQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let names: Vec<&str> = rows.iter().rev().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), 20, "{names:?}");
    assert_eq!(names[7], "9.0.0.10.zen.spamhaus.org");
    assert_eq!(names[0], "n0.example");
    assert_eq!(names[19], "n19.example");
    assert!(rows
        .windows(2)
        .all(|w| w[0].id > w[1].id && w[0].ts_us > w[1].ts_us));
    let allowed = rows.iter().find(|r| r.name == "n11.example").unwrap();
    assert_eq!(allowed.verdict, "allow");
    assert_eq!(allowed.reason["source"], "lists/allow.txt:9");
}
