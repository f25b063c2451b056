//! The verdict pipeline in one place: allowlist → denylist → name classifiers → answer checks → action.
//!
//! The name stages ([`Policy::judge_name`]) run while the upstream query is in flight; the answer
//! stage ([`Policy::judge_answer`]) runs when the upstream answer arrives. Each stage either decides
//! (with a [`Reason`]) or passes the query on to the next one. Allowlists always win.

use crate::{ActionConfig, Category, DomainSet, Reason, Stage, Verdict, VerdictKind};
use std::net::IpAddr;
use std::sync::Arc;

/// A check on the query name alone (e.g. the DGA model). Must be cheap: it runs for every
/// uncached query, concurrently with the upstream lookup.
pub trait NameCheck: Send + Sync {
    /// Returns the block category and the reason when the name should be blocked.
    fn check_name(&self, name: &str) -> Option<(Category, Reason)>;
}

/// What an answer check found.
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerHit {
    pub category: Category,
    pub reason: Reason,
    /// The check only wants the finding logged (answer normally), whatever the category's action.
    pub log_only: bool,
}

/// A check on the upstream answer (fast flux, IOC addresses, parking).
pub trait AnswerCheck: Send + Sync {
    /// `record`: true when serving (update history), false when only explaining (`dnsward check`).
    fn check_answer(&self, answer: &AnswerView, record: bool) -> Option<AnswerHit>;
}

/// The parts of an upstream answer the answer checks look at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnswerView {
    /// Query name, lowercase, no trailing dot.
    pub qname: String,
    /// A/AAAA addresses in the answer section (after CNAMEs) with their TTLs.
    pub addrs: Vec<(IpAddr, u32)>,
    /// CNAME targets in order, with TTLs.
    pub cnames: Vec<(String, u32)>,
    /// NS names from the answer or authority section, with TTLs.
    pub ns: Vec<(String, u32)>,
    /// Addresses of the NS hosts from the additional section.
    pub ns_addrs: Vec<IpAddr>,
}

/// An immutable, swappable policy: rebuilt on reload and swapped in atomically.
#[derive(Default)]
pub struct Policy {
    allow: DomainSet,
    deny: DomainSet,
    name_checks: Vec<Arc<dyn NameCheck>>,
    answer_checks: Vec<Arc<dyn AnswerCheck>>,
    actions: ActionConfig,
    generation: u64,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("allow_rules", &self.allow.len())
            .field("deny_rules", &self.deny.len())
            .field("name_checks", &self.name_checks.len())
            .field("answer_checks", &self.answer_checks.len())
            .field("actions", &self.actions)
            .field("generation", &self.generation)
            .finish()
    }
}

/// Builds a [`Policy`]; every stage is optional.
#[derive(Default)]
pub struct PolicyBuilder(Policy);

impl PolicyBuilder {
    pub fn allow(mut self, set: DomainSet) -> Self {
        self.0.allow = set;
        self
    }
    pub fn deny(mut self, set: DomainSet) -> Self {
        self.0.deny = set;
        self
    }
    pub fn name_check(mut self, check: Arc<dyn NameCheck>) -> Self {
        self.0.name_checks.push(check);
        self
    }
    pub fn answer_check(mut self, check: Arc<dyn AnswerCheck>) -> Self {
        self.0.answer_checks.push(check);
        self
    }
    pub fn actions(mut self, actions: ActionConfig) -> Self {
        self.0.actions = actions;
        self
    }
    /// A number that changes on every reload; cached verdicts from another generation are stale.
    pub fn generation(mut self, generation: u64) -> Self {
        self.0.generation = generation;
        self
    }
    pub fn build(self) -> Policy {
        self.0
    }
}

impl Policy {
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn actions(&self) -> &ActionConfig {
        &self.actions
    }

    pub fn allowlist(&self) -> &DomainSet {
        &self.allow
    }

    pub fn denylist(&self) -> &DomainSet {
        &self.deny
    }

    /// The name stages: allowlist, denylist, then every name classifier in order.
    /// `name` is lowercase without a trailing dot.
    pub fn judge_name(&self, name: &str) -> Verdict {
        if let Some(m) = self.allow.lookup(name) {
            let mut reason = Reason::new(Stage::Allowlist, m.source, "");
            reason.rule = Some(m.rule);
            return Verdict::allow(reason);
        }
        if let Some(m) = self.deny.lookup(name) {
            let mut reason = Reason::new(Stage::Denylist, m.source, "");
            reason.rule = Some(m.rule);
            return self.block(Category::List, reason);
        }
        for check in &self.name_checks {
            if let Some((category, reason)) = check.check_name(name) {
                return self.block(category, reason);
            }
        }
        Verdict::PASS
    }

    /// Whether the answer stage could still change `name_verdict` (so the answer must be parsed).
    pub fn wants_answer(&self, name_verdict: &Verdict) -> bool {
        !self.answer_checks.is_empty()
            && !matches!(name_verdict.kind, VerdictKind::Allow)
            && !name_verdict.is_enforced()
    }

    /// The answer stage. Returns the stronger of the name verdict and any answer-check verdict:
    /// an allowlisted or already enforced name is returned unchanged.
    pub fn judge_answer(
        &self,
        name_verdict: &Verdict,
        answer: &AnswerView,
        record: bool,
    ) -> Verdict {
        if !self.wants_answer(name_verdict) {
            return name_verdict.clone();
        }
        for check in &self.answer_checks {
            if let Some(hit) = check.check_answer(answer, record) {
                let verdict = if hit.log_only {
                    Verdict::block(hit.category, crate::Action::Log, hit.reason)
                } else {
                    self.block(hit.category, hit.reason)
                };
                // A monitor-mode name block is kept unless the answer check enforces.
                if name_verdict.is_block() && !verdict.is_enforced() {
                    return name_verdict.clone();
                }
                return verdict;
            }
        }
        name_verdict.clone()
    }

    fn block(&self, category: Category, reason: Reason) -> Verdict {
        Verdict::block(category, self.actions.for_category(category), reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    struct LongLabels;
    impl NameCheck for LongLabels {
        fn check_name(&self, name: &str) -> Option<(Category, Reason)> {
            let first = name.split('.').next()?;
            (first.len() > 20).then(|| {
                let mut r = Reason::new(Stage::NameClassifier, "long-label", "label over 20");
                r.score = Some(0.99);
                (Category::Dga, r)
            })
        }
    }

    struct IocAddr(IpAddr);
    impl AnswerCheck for IocAddr {
        fn check_answer(&self, a: &AnswerView, _record: bool) -> Option<AnswerHit> {
            a.addrs
                .iter()
                .any(|(ip, _)| *ip == self.0)
                .then(|| AnswerHit {
                    category: Category::Ioc,
                    reason: Reason::new(Stage::AnswerCheck, "ioc", format!("answer {}", self.0)),
                    log_only: false,
                })
        }
    }

    fn policy(monitor: bool) -> Policy {
        let mut allow = DomainSet::new();
        allow.load_str("allow.txt", "good.example\n");
        let mut deny = DomainSet::new();
        deny.load_str("deny.txt", "example\nbad.example\n");
        Policy::builder()
            .allow(allow)
            .deny(deny)
            .name_check(Arc::new(LongLabels))
            .answer_check(Arc::new(IocAddr("192.0.2.66".parse().unwrap())))
            .actions(ActionConfig {
                monitor,
                ..Default::default()
            })
            .build()
    }

    #[test]
    fn allowlist_beats_denylist_and_classifiers() {
        let p = policy(false);
        let v = p.judge_name("www.good.example");
        assert_eq!(v.kind, VerdictKind::Allow);
        assert_eq!(&*v.reason.unwrap().source, "allow.txt:1");
        let v = p.judge_name("bad.example");
        assert_eq!(
            v.kind,
            VerdictKind::Block {
                category: Category::List,
                action: Action::Nxdomain
            }
        );
        // The most specific rule is reported.
        assert_eq!(&*v.reason.as_ref().unwrap().source, "deny.txt:2");
    }

    #[test]
    fn name_classifier_blocks_with_score() {
        let p = policy(false);
        let v = p.judge_name("abcdefghijklmnopqrstuvwxyz.net");
        assert_eq!(v.category(), Some(Category::Dga));
        assert_eq!(v.reason.unwrap().score, Some(0.99));
        assert_eq!(p.judge_name("short.net"), Verdict::PASS);
    }

    #[test]
    fn answer_checks_run_unless_allowed_or_enforced() {
        let p = policy(false);
        let answer = AnswerView {
            qname: "x.net".into(),
            addrs: vec![("192.0.2.66".parse().unwrap(), 60)],
            ..Default::default()
        };
        let v = p.judge_answer(&Verdict::PASS, &answer, true);
        assert_eq!(v.category(), Some(Category::Ioc));
        assert_eq!(v.action(), Some(Action::Sinkhole));
        let allowed = p.judge_name("good.example");
        assert_eq!(p.judge_answer(&allowed, &answer, true), allowed);
        assert!(!p.wants_answer(&allowed));
    }

    #[test]
    fn monitor_mode_logs_instead_of_blocking() {
        let p = policy(true);
        let v = p.judge_name("bad.example");
        assert_eq!(v.action(), Some(Action::Log));
        assert!(v.is_block() && !v.is_enforced());
        // A logged name block still lets the answer checks look.
        assert!(p.wants_answer(&v));
    }
}
