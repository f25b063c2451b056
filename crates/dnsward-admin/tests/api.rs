mod common;

use common::*;
use dnsward_admin::{serve, AdminConfig, EventStore, RunningAdmin};
use std::sync::atomic::Ordering;
use std::sync::Arc;

async fn start(
    token: Option<&str>,
) -> (
    tempfile::TempDir,
    Arc<EventStore>,
    Arc<FakeBackend>,
    RunningAdmin,
    AdminConfig,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.token = token.map(str::to_string);
    let store = EventStore::open(&cfg).unwrap();
    seed(&store);
    let backend = FakeBackend::new();
    let admin = serve(&cfg, store.clone(), backend.clone()).await.unwrap();
    (dir, store, backend, admin, cfg)
}

#[tokio::test]
async fn auth_required_when_token_set() {
    let (_d, _s, _b, admin, _) = start(Some(TOKEN)).await;
    let a = admin.addr;
    for path in [
        "/api/v1/blocks",
        "/api/v1/stats",
        "/metrics",
        "/api/v1/clients",
        "/api/v1/rules",
    ] {
        for tok in [None, Some("wrong-token-0123456789abcdef"), Some("")] {
            let r = http(a, "GET", path, tok, None).await;
            assert_eq!(r.status, 401, "{path} {tok:?}");
            assert_eq!(r.body, "", "401 carries no detail");
        }
        assert_eq!(
            http(a, "GET", path, Some(TOKEN), None).await.status,
            200,
            "{path}"
        );
    }
    assert_eq!(
        http(a, "POST", "/api/v1/reload", None, None).await.status,
        401
    );
    // Public: page, health, OpenAPI.
    for path in ["/", "/healthz", "/api/v1/openapi.json"] {
        assert_eq!(http(a, "GET", path, None, None).await.status, 200, "{path}");
    }
    admin.shutdown().await;
}

#[tokio::test]
async fn token_required_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    let e = EventStore::open(&cfg).err().expect("config error");
    assert!(e.to_string().starts_with("admin.token:"), "{e}");
    let mut ok = config(dir.path());
    let store = EventStore::open(&ok).unwrap();
    ok.listen = "0.0.0.0:0".parse().unwrap();
    let e = serve(&ok, store, FakeBackend::new())
        .await
        .err()
        .expect("config error");
    assert!(e.to_string().starts_with("admin.token:"), "{e}");
}

#[tokio::test]
async fn blocks_endpoint() {
    let (_d, _s, _b, admin, _) = start(None).await;
    let a = admin.addr;
    let r = http(a, "GET", "/api/v1/blocks", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["count"], 23);
    let b = &v["blocks"][0];
    for key in [
        "id", "time", "ts_us", "client", "name", "qtype", "category", "action", "rcode", "cached",
        "reason",
    ] {
        assert!(b.get(key).is_some(), "missing {key}: {b}");
    }
    assert_eq!(b["reason"]["stage"], "name_classifier");
    let v = http(
        a,
        "GET",
        "/api/v1/blocks?client=10.0.0.3&category=ioc",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(v["count"], 1);
    assert_eq!(v["blocks"][0]["name"], "c2.badhost.example");
    assert_eq!(v["blocks"][0]["action"], "sinkhole");
    // By the stage that decided (what the lists on trial caught, say).
    for stage in ["answer_check", "denylist", "name_classifier"] {
        let v = http(
            a,
            "GET",
            &format!("/api/v1/blocks?stage={stage}&limit=1000"),
            None,
            None,
        )
        .await
        .json();
        let rows = v["blocks"].as_array().unwrap();
        assert!(!rows.is_empty(), "{stage}");
        assert!(
            rows.iter().all(|b| b["reason"]["stage"] == stage),
            "{stage}: {v}"
        );
    }
    let v = http(a, "GET", "/api/v1/blocks?stage=trial_list", None, None)
        .await
        .json();
    assert_eq!(v["count"], 0);
    let v = http(a, "GET", "/api/v1/blocks?limit=3", None, None)
        .await
        .json();
    assert_eq!(v["count"], 3);
    let since = (std::time::SystemTime::now() - std::time::Duration::from_secs(35))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let v = http(
        a,
        "GET",
        &format!("/api/v1/blocks?since={since}"),
        None,
        None,
    )
    .await
    .json();
    assert!(
        (20..=22).contains(&v["count"].as_u64().unwrap()),
        "{}",
        v["count"]
    );
    let v = http(
        a,
        "GET",
        "/api/v1/blocks?since=2026-01-01T00:00:00Z",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(v["count"], 23);
    // Empty form fields mean "not given".
    let v = http(
        a,
        "GET",
        "/api/v1/blocks?since=&client=&category=&limit=",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(v["count"], 23);
    // Huge limits are capped, not refused.
    for l in ["100000000", "99999999999999999999999"] {
        let r = http(a, "GET", &format!("/api/v1/blocks?limit={l}"), None, None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["limit"], 10_000);
    }
    admin.shutdown().await;
}

#[tokio::test]
async fn query_log_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.log_all_queries = true;
    let store = EventStore::open(&cfg).unwrap();
    seed(&store);
    let now = std::time::SystemTime::now();
    record(
        &*store,
        now,
        "10.0.0.9",
        "www.example.com",
        &dnsward_policy::Verdict::PASS,
        0,
    );
    record(
        &*store,
        now,
        "10.0.0.8",
        "docs.example.org",
        &dnsward_policy::Verdict::PASS,
        0,
    );
    store.flush();
    let admin = serve(&cfg, store.clone(), FakeBackend::new())
        .await
        .unwrap();
    let v = http(admin.addr, "GET", "/api/v1/queries", None, None)
        .await
        .json();
    assert_eq!(v["count"], 2, "blocks are not in the query log: {v}");
    let v = http(
        admin.addr,
        "GET",
        "/api/v1/queries?client=10.0.0.9",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(v["queries"][0]["name"], "www.example.com");
    assert_eq!(v["queries"][0]["verdict"], "pass");
    assert_eq!(v["queries"][0]["rcode"], "NOERROR");
    let r = http(
        admin.addr,
        "GET",
        "/api/v1/queries?category=dga",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    admin.shutdown().await;
}

#[tokio::test]
async fn malformed_parameters_are_400_with_a_message() {
    let (_d, _s, _b, admin, _) = start(None).await;
    let a = admin.addr;
    for (path, needle) in [
        ("/api/v1/blocks?limit=abc", "limit"),
        ("/api/v1/blocks?limit=0", "limit"),
        ("/api/v1/blocks?limit=-5", "limit"),
        ("/api/v1/blocks?since=yesterday", "since"),
        ("/api/v1/blocks?client=not-an-ip", "client"),
        ("/api/v1/blocks?category=spam", "category"),
        ("/api/v1/blocks?stage=judge", "stage"),
        ("/api/v1/blocks?bogus=1", "bogus"),
        ("/api/v1/blocks?limit=1&limit=2", "twice"),
        ("/api/v1/verdict", "name"),
        ("/api/v1/verdict?name=bad%20name", "name"),
        ("/api/v1/verdict?name=a..b", "name"),
        ("/api/v1/clients/not-an-ip", "ip"),
        ("/api/v1/clients?min_score=x", "min_score"),
        ("/api/v1/top?limit=x", "limit"),
    ] {
        let r = http(a, "GET", path, None, None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    let r = http(a, "POST", "/api/v1/rules", None, Some("{not json")).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().starts_with("body:"));
    let r = http(
        a,
        "POST",
        "/api/v1/rules",
        None,
        Some(r#"{"list":"maybe","rule":"x.example"}"#),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = http(
        a,
        "POST",
        "/api/v1/rules",
        None,
        Some(r#"{"list":"deny","rule":"bad rule here"}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().starts_with("rule:"));
    let r = http(a, "DELETE", "/api/v1/rules?list=deny", None, None).await;
    assert_eq!(r.status, 400);
    let r = http(a, "GET", "/api/v1/nope", None, None).await;
    assert_eq!(r.status, 404);
    admin.shutdown().await;
}

#[tokio::test]
async fn verdict_clients_stats_top() {
    let (_d, _s, _b, admin, _) = start(None).await;
    let a = admin.addr;
    let v = http(
        a,
        "GET",
        "/api/v1/verdict?name=WWW.Evil.Example.",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(v["name"], "www.evil.example");
    assert_eq!(v["verdict"]["kind"], "block");
    assert_eq!(v["verdict"]["reason"]["rule"], "||evil.example^");
    let v = http(a, "GET", "/api/v1/verdict?name=example.org", None, None)
        .await
        .json();
    assert_eq!(v["verdict"]["kind"], "pass");

    let v = http(a, "GET", "/api/v1/clients", None, None).await.json();
    let clients = v["clients"].as_array().unwrap();
    assert_eq!(clients[0]["client"], "10.0.0.66");
    assert_eq!(clients[0]["suspected"], true);
    assert_eq!(clients[0]["evidence"][0]["kind"], "dga_burst");
    // 10.0.0.3 looked up one IOC name: listed with a low score, not suspected.
    let other = clients.iter().find(|c| c["client"] == "10.0.0.3").unwrap();
    assert_eq!(other["suspected"], false);
    let v = http(a, "GET", "/api/v1/clients?suspected=true", None, None)
        .await
        .json();
    assert_eq!(v["clients"].as_array().unwrap().len(), 1);
    let r = http(a, "GET", "/api/v1/clients/10.0.0.66", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["client"]["suspected"], true);
    assert_eq!(
        http(a, "GET", "/api/v1/clients/10.0.0.200", None, None)
            .await
            .status,
        404
    );

    let v = http(a, "GET", "/api/v1/stats", None, None).await.json();
    assert_eq!(v["queries"]["total"], 1020);
    assert_eq!(v["blocks_by_category"]["dga"], 30);
    assert_eq!(v["cache"]["hit_rate"], 0.75);
    assert_eq!(v["upstream_latency"]["count"], 4);
    assert_eq!(v["store"]["written_blocks"], 23);
    assert_eq!(v["clients"]["suspected"], 1);
    assert_eq!(v["clients"]["escalated"][0]["client"], "10.0.0.7");
    assert_eq!(v["clients"]["escalated"][0]["remaining_secs"], 21000);
    assert_eq!(v["answer_history"]["domains"], 4321);
    assert_eq!(v["ioc_lists"][0]["entries"], 250);
    assert!(v["ioc_lists"][0]["age_secs"].as_u64().unwrap() > 700_000_000);
    assert!(v["ioc_lists"][1]["age_secs"].is_null());
    assert_eq!(v["ioc_lists"][0]["stale"], true);
    assert_eq!(v["ioc_lists"][1]["stale"], false, "no age, not stale");
    assert_eq!(
        (
            v["ioc_lists"][0]["trial"].clone(),
            v["ioc_lists"][1]["trial"].clone()
        ),
        (false.into(), true.into())
    );
    assert_eq!(v["enforcement"]["monitor"], true);
    assert_eq!(
        v["reloads"],
        serde_json::json!({ "ok": 3, "failed": 1, "last_error": "lists/deny.txt: permission denied" })
    );
    assert_eq!(
        v["enforcement"]["client_groups"][0],
        serde_json::json!({ "name": "pilot", "clients": ["10.1.2.0/24"], "monitor": false })
    );

    let v = http(a, "GET", "/api/v1/top?limit=2", None, None)
        .await
        .json();
    assert_eq!(v["top"][0]["name"], "ads.tracker.example");
    assert_eq!(v["top"][0]["count"], 2);
    assert_eq!(v["top"].as_array().unwrap().len(), 2);
    admin.shutdown().await;
}

#[tokio::test]
async fn rules_persist_and_reload() {
    let (_d, store, backend, admin, cfg) = start(Some(TOKEN)).await;
    let a = admin.addr;
    let t = Some(TOKEN);
    let r = http(
        a,
        "POST",
        "/api/v1/rules",
        t,
        Some(r#"{"list":"deny","rule":"||evil.example^","comment":"ticket 42"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["reload"]["ok"], true);
    assert_eq!(backend.reloads.load(Ordering::SeqCst), 1);
    let r = http(
        a,
        "POST",
        "/api/v1/rules",
        t,
        Some(r#"{"list":"deny","rule":"||evil.example^"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["added"], false);
    let r = http(
        a,
        "POST",
        "/api/v1/rules",
        t,
        Some(r#"{"list":"allow","rule":"good.example"}"#),
    )
    .await;
    assert_eq!(r.status, 201);
    let v = http(a, "GET", "/api/v1/rules", t, None).await.json();
    assert_eq!(v["rules"].as_array().unwrap().len(), 2);
    assert_eq!(v["rules"][0]["comment"], "ticket 42");
    // A failing reload is reported, the rule stays stored.
    backend.fail_reload.store(true, Ordering::SeqCst);
    let r = http(
        a,
        "DELETE",
        "/api/v1/rules?list=allow&rule=good.example",
        t,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["reload"]["ok"], false);
    let r = http(a, "POST", "/api/v1/reload", t, None).await;
    assert_eq!(r.status, 500);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("permission denied"));
    backend.fail_reload.store(false, Ordering::SeqCst);
    assert_eq!(
        http(a, "POST", "/api/v1/reload", t, None).await.json()["ok"],
        true
    );
    assert_eq!(
        http(
            a,
            "DELETE",
            "/api/v1/rules?list=allow&rule=good.example",
            t,
            None
        )
        .await
        .status,
        404
    );
    admin.shutdown().await;
    drop(store);
    // Persisted.
    let store = EventStore::open(&cfg).unwrap();
    assert_eq!(
        store.api_rules(),
        vec![(dnsward_admin::ListKind::Deny, "||evil.example^".to_string())]
    );
}

#[tokio::test]
async fn metrics_text_format() {
    let (_d, _s, _b, admin, _) = start(None).await;
    let r = http(admin.addr, "GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let body = r.body;
    let mut typed = std::collections::HashSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap();
            let kind = it.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_string()), "duplicate TYPE {name}");
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        // name{labels} value
        let (series, value) = line.rsplit_once(' ').unwrap();
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let base = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_sum"))
            .or_else(|| name.strip_suffix("_count"))
            .filter(|b| typed.contains(*b))
            .unwrap_or(name);
        assert!(typed.contains(base), "series without TYPE: {line}");
        if series.contains('{') {
            assert!(series.ends_with('}'), "{line}");
        }
    }
    for needle in [
        "dnsward_queries_total{transport=\"udp\"} 1000",
        "dnsward_blocks_total{category=\"dga\"} 30",
        "dnsward_block_actions_total{action=\"nxdomain\"} 37",
        "dnsward_queries_by_type_total{qtype=\"A\",result=\"blocked\"} 23",
        "dnsward_upstream_latency_seconds_bucket{le=\"+Inf\"} 4",
        "dnsward_upstream_latency_seconds_count 4",
        "dnsward_classifier_latency_seconds_bucket{le=\"0.0001\"} 1",
        "dnsward_cache_entries 321",
        "dnsward_answer_history_domains 4321",
        "dnsward_ioc_list_entries{list=\"feodo \\\"ips\\\".txt\"} 250",
        "dnsward_ioc_list_entries{list=\"inline\"} 3",
        "dnsward_ioc_list_age_seconds{list=\"feodo \\\"ips\\\".txt\"} ",
        "dnsward_blocks_by_category_action_total{category=\"dga\",action=\"nxdomain\"} 20",
        "dnsward_blocks_by_category_action_total{category=\"ioc\",action=\"sinkhole\"} 1",
        "dnsward_cache_hit_ratio 0.75",
        "dnsward_clients_suspected 1",
        "dnsward_clients_escalated_total 2",
        "dnsward_store_degraded 0",
        "dnsward_monitor_mode 1",
        "dnsward_reloads_total{result=\"error\"} 1",
        "dnsward_client_group_monitor_mode{group=\"pilot\"} 0",
    ] {
        assert!(body.contains(needle), "missing {needle}\n{body}");
    }
    assert!(
        !body.contains("dnsward_ioc_list_age_seconds{list=\"inline\"}"),
        "no age without a modification time"
    );
    admin.shutdown().await;
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let (_d, _s, _b, admin, _) = start(None).await;
    for (method, path) in dnsward_admin::api::ROUTES {
        let p = path.replace("{ip}", "10.0.0.66");
        let m = method.to_uppercase();
        let (p, body) = match (m.as_str(), *path) {
            ("POST", "/api/v1/rules") => (p, Some(r#"{"list":"deny","rule":"x.example"}"#)),
            ("DELETE", _) => (format!("{p}?list=deny&rule=x.example"), None),
            ("GET", "/api/v1/verdict") => (format!("{p}?name=example.org"), None),
            _ => (p, None),
        };
        let r = http(admin.addr, &m, &p, None, body).await;
        assert!(r.status < 300, "{m} {p}: {} {}", r.status, r.body);
    }
    admin.shutdown().await;
}

#[tokio::test]
async fn slow_admin_client_does_not_stall_the_sink() {
    let (_d, store, _b, admin, _) = start(None).await;
    // A client that opens connections and never finishes its request.
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(admin.addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        s.write_all(b"GET /api/v1/blocks HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(s);
    }
    let v = list_verdict("x");
    let t0 = std::time::Instant::now();
    for i in 0..10_000 {
        record(
            &*store,
            std::time::SystemTime::now(),
            "10.0.0.8",
            &format!("s{i}.example"),
            &v,
            3,
        );
    }
    assert!(t0.elapsed() < std::time::Duration::from_secs(1));
    store.flush();
    // Other admin clients are still served.
    let r = http(admin.addr, "GET", "/api/v1/blocks?limit=1", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["blocks"][0]["name"], "s9999.example");
    drop(idle);
    admin.shutdown().await;
}
