//! `/metrics` in Prometheus text exposition format (0.0.4).

use crate::api::AdminBackend;
use crate::store::EventStore;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Render every metric.
pub fn render(store: &EventStore, backend: &dyn AdminBackend) -> String {
    let mut o = String::with_capacity(8192);
    let s = backend.stats();

    if let Some(e) = &s.engine {
        head(
            &mut o,
            "dnsward_queries_total",
            "counter",
            "DNS queries received, by transport.",
        );
        let _ = writeln!(
            o,
            "dnsward_queries_total{{transport=\"udp\"}} {}",
            e.queries_udp
        );
        let _ = writeln!(
            o,
            "dnsward_queries_total{{transport=\"tcp\"}} {}",
            e.queries_tcp
        );

        head(
            &mut o,
            "dnsward_blocks_total",
            "counter",
            "Blocked queries, by category.",
        );
        for (c, n) in &e.blocks_by_category {
            let _ = writeln!(o, "dnsward_blocks_total{{category=\"{}\"}} {n}", escape(c));
        }
        head(
            &mut o,
            "dnsward_block_actions_total",
            "counter",
            "Blocked queries, by action taken.",
        );
        for (a, n) in &e.blocks_by_action {
            let _ = writeln!(
                o,
                "dnsward_block_actions_total{{action=\"{}\"}} {n}",
                escape(a)
            );
        }
        head(
            &mut o,
            "dnsward_responses_total",
            "counter",
            "Queries not answered normally, by reason.",
        );
        for (r, n) in [
            ("malformed", e.malformed),
            ("refused_acl", e.refused_acl),
            ("rate_limited", e.rate_limited),
            ("dropped_overload", e.dropped_overload),
            ("servfail", e.servfail),
            ("truncated", e.truncated),
            ("served_stale", e.served_stale),
        ] {
            let _ = writeln!(o, "dnsward_responses_total{{result=\"{r}\"}} {n}");
        }
        head(
            &mut o,
            "dnsward_upstream_failures_total",
            "counter",
            "Upstream queries that failed.",
        );
        let _ = writeln!(o, "dnsward_upstream_failures_total {}", e.upstream_failures);
        head(
            &mut o,
            "dnsward_clients_escalated_total",
            "counter",
            "Clients escalated after repeated DGA blocks (their names judged at the escalated threshold).",
        );
        let _ = writeln!(o, "dnsward_clients_escalated_total {}", e.clients_escalated);
    }

    head(
        &mut o,
        "dnsward_queries_by_type_total",
        "counter",
        "Queries seen by the event sink, by query type and result (every query when query logging or client scoring is on; otherwise blocks only).",
    );
    for (t, r, n) in store.counters().queries_by_type() {
        let _ = writeln!(
            o,
            "dnsward_queries_by_type_total{{qtype=\"{t}\",result=\"{r}\"}} {n}"
        );
    }

    head(
        &mut o,
        "dnsward_blocks_by_category_action_total",
        "counter",
        "Blocks seen by the event sink, by category and action taken.",
    );
    for (c, a, n) in store.counters().blocks_by_category_action() {
        let _ = writeln!(
            o,
            "dnsward_blocks_by_category_action_total{{category=\"{c}\",action=\"{a}\"}} {n}"
        );
    }

    head(
        &mut o,
        "dnsward_cache_entries",
        "gauge",
        "Entries in the answer cache.",
    );
    let _ = writeln!(o, "dnsward_cache_entries {}", s.cache_entries);
    head(
        &mut o,
        "dnsward_cache_bytes",
        "gauge",
        "Bytes used by the answer cache.",
    );
    let _ = writeln!(o, "dnsward_cache_bytes {}", s.cache_bytes);
    if let Some(d) = s.answer_history_domains {
        head(
            &mut o,
            "dnsward_answer_history_domains",
            "gauge",
            "Domains in the answer history behind the flux features.",
        );
        let _ = writeln!(o, "dnsward_answer_history_domains {d}");
    }
    head(
        &mut o,
        "dnsward_reloads_total",
        "counter",
        "Reloads of lists and policy (SIGHUP, the API, a changed file), by result; a failed one keeps the running policy.",
    );
    let _ = writeln!(o, "dnsward_reloads_total{{result=\"ok\"}} {}", s.reloads_ok);
    let _ = writeln!(
        o,
        "dnsward_reloads_total{{result=\"error\"}} {}",
        s.reloads_failed
    );
    head(
        &mut o,
        "dnsward_monitor_mode",
        "gauge",
        "1 when blocks are only logged ([actions] monitor), for clients in no group (alert on a forgotten monitor mode).",
    );
    let _ = writeln!(o, "dnsward_monitor_mode {}", u8::from(s.monitor));
    if !s.client_groups.is_empty() {
        head(
            &mut o,
            "dnsward_client_group_monitor_mode",
            "gauge",
            "1 when a client group's blocks are only logged ([[actions.groups]] monitor).",
        );
        for g in &s.client_groups {
            let _ = writeln!(
                o,
                "dnsward_client_group_monitor_mode{{group=\"{}\"}} {}",
                escape(&g.name),
                u8::from(g.monitor)
            );
        }
    }
    if !s.ioc_lists.is_empty() {
        head(
            &mut o,
            "dnsward_ioc_list_entries",
            "gauge",
            "Indicators loaded from each IOC list.",
        );
        for l in &s.ioc_lists {
            let _ = writeln!(
                o,
                "dnsward_ioc_list_entries{{list=\"{}\"}} {}",
                escape(&l.file),
                l.entries
            );
        }
        head(
            &mut o,
            "dnsward_ioc_list_age_seconds",
            "gauge",
            "Seconds since the loaded copy of each IOC list was last modified (alert on a stale feed).",
        );
        let now = crate::time::now_secs() as u64;
        for l in &s.ioc_lists {
            if let Some(age) = l.age_secs(now) {
                let _ = writeln!(
                    o,
                    "dnsward_ioc_list_age_seconds{{list=\"{}\"}} {age}",
                    escape(&l.file)
                );
            }
        }
    }
    head(
        &mut o,
        "dnsward_cache_lookups_total",
        "counter",
        "Answer cache lookups, by result.",
    );
    let _ = writeln!(
        o,
        "dnsward_cache_lookups_total{{result=\"hit\"}} {}",
        s.cache_hits
    );
    let _ = writeln!(
        o,
        "dnsward_cache_lookups_total{{result=\"miss\"}} {}",
        s.cache_misses
    );
    head(
        &mut o,
        "dnsward_cache_hit_ratio",
        "gauge",
        "Cache hits / lookups since start.",
    );
    let lookups = s.cache_hits + s.cache_misses;
    let ratio = if lookups == 0 {
        0.0
    } else {
        s.cache_hits as f64 / lookups as f64
    };
    let _ = writeln!(o, "dnsward_cache_hit_ratio {ratio}");

    if let Some(h) = backend.upstream_latency() {
        h.render(
            &mut o,
            "dnsward_upstream_latency_seconds",
            "Upstream query latency.",
        );
    }
    if let Some(h) = backend.classifier_latency() {
        h.render(
            &mut o,
            "dnsward_classifier_latency_seconds",
            "Name classifier (DGA model) latency.",
        );
    }

    let c = store.counters();
    head(
        &mut o,
        "dnsward_store_events_total",
        "counter",
        "Events handled by the event store, by fate.",
    );
    for (k, v) in [
        ("enqueued", &c.enqueued),
        ("dropped", &c.dropped),
        ("lost", &c.lost),
    ] {
        let _ = writeln!(
            o,
            "dnsward_store_events_total{{result=\"{k}\"}} {}",
            v.load(Relaxed)
        );
    }
    head(
        &mut o,
        "dnsward_store_written_total",
        "counter",
        "Rows written to the event store, by table.",
    );
    for (k, v) in [
        ("blocks", &c.written_blocks),
        ("queries", &c.written_queries),
        ("client_evidence", &c.written_evidence),
    ] {
        let _ = writeln!(
            o,
            "dnsward_store_written_total{{table=\"{k}\"}} {}",
            v.load(Relaxed)
        );
    }
    head(
        &mut o,
        "dnsward_store_write_errors_total",
        "counter",
        "Failed store transactions.",
    );
    let _ = writeln!(
        o,
        "dnsward_store_write_errors_total {}",
        c.write_errors.load(Relaxed)
    );
    head(
        &mut o,
        "dnsward_store_retention_deleted_total",
        "counter",
        "Rows deleted by retention.",
    );
    let _ = writeln!(
        o,
        "dnsward_store_retention_deleted_total {}",
        c.retention_deleted.load(Relaxed)
    );
    head(
        &mut o,
        "dnsward_store_degraded",
        "gauge",
        "1 when the store fell back to memory (disk full or unwritable).",
    );
    let _ = writeln!(
        o,
        "dnsward_store_degraded {}",
        u8::from(store.is_degraded())
    );
    c.batch_latency.render(
        &mut o,
        "dnsward_store_batch_seconds",
        "Time to commit one batch of events.",
    );

    head(
        &mut o,
        "dnsward_clients_tracked",
        "gauge",
        "Clients tracked by infected-client scoring.",
    );
    let _ = writeln!(o, "dnsward_clients_tracked {}", store.tracked_clients());
    head(
        &mut o,
        "dnsward_clients_suspected",
        "gauge",
        "Clients whose score is at or above the threshold.",
    );
    let _ = writeln!(o, "dnsward_clients_suspected {}", store.suspected_count());
    o
}
