//! The fuzz target's setup, shared with the corpus replay in `tests/faults.rs` (which includes
//! this file as a module): a request path with a denylist, an allowlist, the embedded DGA model
//! (with its escalated threshold), per-client escalation with one client kept escalated, the
//! answer checks (with an IOC list), and the checks every response must pass.

use dnsward::stages::{DgaStage, IntelStage};
use dnsward_classify::DgaModel;
use dnsward_intel::{AnswerAnalyzer, IntelConfig};
use dnsward_policy::{
    Action, ActionConfig, ClientEscalation, ClientGroup, DomainSet, EdeText, EscalationParams,
    Policy, SinkholeConfig,
};
use dnsward_server::cache::CacheConfig;
use dnsward_server::fuzzing::{check_response, Input, Outcome, RequestPath, ESCALATED_CLIENT};
use dnsward_server::ServerConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Denylist rules (plain, `*.`, adblock) and an allowlist exception, as the corpus uses them.
const DENY: &[&str] = &[
    "bad.test",
    "*.wild.test",
    "||ads.test^",
    "0.0.0.0 hosts.test",
];
const ALLOW: &[&str] = &["ok.bad.test"];
/// IOC lines: answers landing here (or CNAMEs to the domain) are blocked by the answer checks;
/// the Cloudflare range, the public suffix and the bare entry are hits on shared infrastructure
/// (logged), so the shared-infrastructure checks see fuzzed names and answers too.
const IOC: &str =
    "ip 192.0.2.66 test-c2\ncidr 198.51.100.0/24 test-net\ndomain ioc.test test-domain\n\
    cidr 104.16.0.0/13 test-cdn-edge\ndomain github.io test-suffix\npastebin.com test-shared\n";

/// The request path the fuzz target and the corpus replay run: default server settings
/// (loopback ACL, rate limiter with loopback exempt), a small cache, sinkhole addresses set.
pub fn request_path() -> RequestPath {
    let model = Arc::new(DgaModel::embedded().expect("the embedded DGA model loads"));
    let (dga, escalated_threshold) = DgaStage::new(model, None, "dga-model").with_escalation(None);
    assert!(
        escalated_threshold.is_some(),
        "the embedded model has an escalated threshold"
    );
    let dga = Arc::new(dga);
    // One client escalated for good (flags::ESCALATED asks from it); every other client the
    // harness uses is exempt, so no input changes who is escalated and results stay
    // reproducible per input.
    let escalation = Arc::new(ClientEscalation::new(EscalationParams {
        after: 1,
        window: Duration::from_secs(3600),
        hold: Duration::from_secs(10 * 365 * 86_400),
        exempt: ["127.0.0.1/32", "::1/128", "10.9.8.7/32"]
            .iter()
            .map(|n| n.parse().expect("CIDR literal"))
            .collect(),
        max_clients: 16,
    }));
    escalation.record_strike(
        ESCALATED_CLIENT,
        "escalated-by-the-harness.test",
        Instant::now(),
    );
    assert!(escalation.is_escalated(ESCALATED_CLIENT, Instant::now()));
    // One file per call: tests in one process build harnesses concurrently.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let ioc = std::env::temp_dir().join(format!(
        "dnsward-fuzz-ioc-{}-{}.txt",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&ioc, IOC).expect("IOC file written to the temp dir");
    let intel_cfg = IntelConfig {
        ioc_files: vec![ioc.clone()],
        ..IntelConfig::default()
    };
    let analyzer = Arc::new(AnswerAnalyzer::new(&intel_cfg).expect("answer checks set up"));
    let _ = std::fs::remove_file(&ioc);
    let intel = Arc::new(IntelStage::new(analyzer));
    let generation = AtomicU64::new(1);
    let make_policy = move || {
        let mut deny = DomainSet::new();
        for r in DENY {
            deny.add_rule("fuzz-deny", r).expect("deny rule");
        }
        let mut allow = DomainSet::new();
        for r in ALLOW {
            allow.add_rule("fuzz-allow", r).expect("allow rule");
        }
        Policy::builder()
            .allow(allow)
            .deny(deny)
            .name_check(dga.clone())
            .answer_check(intel.clone())
            .escalation(escalation.clone())
            .actions(ActionConfig {
                list: Action::Sinkhole,
                dga: Action::Nxdomain,
                flux: Action::Refused,
                ioc: Action::Sinkhole,
                // The longest Extended DNS Error texts, into answers sized to the client.
                ede: EdeText::Reason,
                // The IPv6 client's blocks are logged: answered from the upstream (or the
                // cache), with a per-client copy of the verdict.
                groups: vec![ClientGroup {
                    name: "v6-monitored".into(),
                    clients: vec!["::1/128".parse().expect("literal")],
                    monitor: true,
                }],
                ..ActionConfig::default()
            })
            .generation(generation.fetch_add(1, Ordering::Relaxed))
            .build()
    };
    let cache = CacheConfig {
        max_mib: 4,
        serve_stale_secs: 86_400,
        ..CacheConfig::default()
    };
    let sinkhole = SinkholeConfig {
        ipv4: vec!["10.99.0.1".parse().unwrap(), "10.99.0.2".parse().unwrap()],
        ipv6: vec!["fd00::99".parse().unwrap()],
        ..SinkholeConfig::default()
    };
    RequestPath::new(
        ServerConfig::default(),
        cache,
        sinkhole,
        Box::new(make_policy),
    )
}

/// Runs one input and checks every response: structure (`check_response`), and, when neither
/// the query nor the upstream bytes are garbage to hickory, that hickory parses the response.
pub fn run_and_check(path: &RequestPath, data: &[u8]) -> Result<Outcome, String> {
    let outcome = path.run(data);
    let input = Input::parse(data);
    let query_ok = hickory_proto::op::Message::from_vec(input.query).is_ok();
    // A second ask answered from the cache carries the first ask's upstream records, so "did
    // the upstream bytes parse" applies to it too (dnsward forwards RDATA as it came).
    let any_upstream =
        outcome.first.went_upstream || outcome.second.as_ref().is_some_and(|r| r.went_upstream);
    for reply in std::iter::once(&outcome.first).chain(outcome.second.as_ref()) {
        check_response(input.query, reply)?;
        if let (Some(resp), true) = (&reply.response, query_ok) {
            let upstream_ok = !any_upstream || upstream_parses(&input);
            if upstream_ok {
                hickory_proto::op::Message::from_vec(resp)
                    .map_err(|e| format!("hickory cannot parse the response ({e}): {resp:02x?}"))?;
            }
        }
    }
    Ok(outcome)
}

/// Whether the upstream bytes, as the in-process upstream hands them over, parse with hickory.
fn upstream_parses(input: &Input<'_>) -> bool {
    use dnsward_server::fuzzing::flags;
    if input.flags & flags::RAW_UPSTREAM != 0 {
        return hickory_proto::op::Message::from_vec(input.upstream).is_ok();
    }
    // Dressed: header from the first 12 bytes, then the question, then the rest.
    let Ok(q) = dnsward_server::wire::parse_query(input.query) else {
        return false;
    };
    let mut key = [0u8; 260];
    let key = q.cache_key(&mut key);
    let mut v = vec![0u8; 12];
    let n = input.upstream.len().min(12);
    v[..n].copy_from_slice(&input.upstream[..n]);
    v[2] |= 0x80;
    v[4] = 0;
    v[5] = 1;
    v.extend_from_slice(&key[..key.len() - 1]);
    v.extend_from_slice(&input.upstream[n..]);
    hickory_proto::op::Message::from_vec(&v).is_ok()
}
