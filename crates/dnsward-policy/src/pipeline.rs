//! The verdict pipeline in one place: allowlist → denylist → name classifiers → answer checks → action.
//!
//! The name stages ([`Policy::judge_name`]) run while the upstream query is in flight; the answer
//! stage ([`Policy::judge_answer`]) runs when the upstream answer arrives. Each stage either decides
//! (with a [`Reason`]) or passes the query on to the next one. Allowlists always win.

use crate::{
    ActionConfig, Category, ClientEscalation, DomainSet, Reason, Stage, Strike, Verdict,
    VerdictKind,
};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// A check on the query name alone (e.g. the DGA model). Must be cheap: it runs for every
/// uncached query, concurrently with the upstream lookup.
pub trait NameCheck: Send + Sync {
    /// Returns the block category and the reason when the name should be blocked.
    fn check_name(&self, name: &str) -> Option<(Category, Reason)>;

    /// The same check at its looser escalated threshold, for a client that has just had several
    /// names blocked by [`NameCheck::check_name`] ([`ClientEscalation`]). The reason's stage should
    /// be [`Stage::ClientEscalation`]. Checks without an escalated threshold return `None`.
    fn check_name_escalated(&self, _name: &str) -> Option<(Category, Reason)> {
        None
    }

    /// Both checks from one judgement, for an escalated client's uncached query: what
    /// [`NameCheck::check_name`] finds, else what [`NameCheck::check_name_escalated`] finds.
    /// Checks that judge a name at some cost (the DGA model) override it to judge once.
    fn check_name_both(&self, name: &str) -> NameFinding {
        if let Some((category, reason)) = self.check_name(name) {
            return NameFinding::Block(category, reason);
        }
        match self.check_name_escalated(name) {
            Some((category, reason)) => NameFinding::EscalatedBlock(category, reason),
            None => NameFinding::Pass,
        }
    }
}

/// What [`NameCheck::check_name_both`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum NameFinding {
    /// Blocked by the ordinary check, for every client.
    Block(Category, Reason),
    /// Passed by the ordinary check, blocked by the escalated one (escalated clients only).
    EscalatedBlock(Category, Reason),
    Pass,
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
    /// Denylists on trial: their matches are logged, not enforced.
    trial: DomainSet,
    name_checks: Vec<Arc<dyn NameCheck>>,
    answer_checks: Vec<Arc<dyn AnswerCheck>>,
    actions: ActionConfig,
    escalation: Option<Arc<ClientEscalation>>,
    generation: u64,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("allow_rules", &self.allow.len())
            .field("deny_rules", &self.deny.len())
            .field("trial_rules", &self.trial.len())
            .field("name_checks", &self.name_checks.len())
            .field("answer_checks", &self.answer_checks.len())
            .field("actions", &self.actions)
            .field("escalation", &self.escalation.as_ref().map(|e| e.params()))
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
    /// Denylists on trial (a new feed before it is trusted): a match is recorded as a `list`
    /// block with action `log`, and the name classifiers and answer checks still judge the name
    /// (one of them enforcing wins).
    pub fn trial(mut self, set: DomainSet) -> Self {
        self.0.trial = set;
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
    /// Per-client escalation state; shared by the policies of successive reloads so that
    /// escalated clients stay escalated.
    pub fn escalation(mut self, escalation: Arc<ClientEscalation>) -> Self {
        self.0.escalation = Some(escalation);
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
        self.judge_name_at(name, false).0
    }

    /// [`Policy::judge_name`] for a client that [`ClientEscalation::is_escalated`] (the server
    /// asks that first: it is the cheap part), on the miss path: the client-independent verdict
    /// (the one that is cached) and, when it passes the name, the escalated checks' verdict
    /// (client-specific, never cached). Each classifier judges the name once for both.
    pub fn judge_name_escalated(&self, name: &str) -> (Verdict, Option<Verdict>) {
        self.judge_name_at(name, self.escalation.is_some())
    }

    fn judge_name_at(&self, name: &str, escalated: bool) -> (Verdict, Option<Verdict>) {
        if let Some(m) = self.allow.lookup(name) {
            let mut reason = Reason::new(Stage::Allowlist, m.source, "");
            reason.rule = Some(m.rule);
            return (Verdict::allow(reason), None);
        }
        if let Some(m) = self.deny.lookup(name) {
            let mut reason = Reason::new(Stage::Denylist, m.source, "");
            reason.rule = Some(m.rule);
            return (self.block(Category::List, reason), None);
        }
        // A trial match only stands when no later name stage blocks.
        let trial = self.trial.lookup(name).map(|m| {
            let mut reason = Reason::new(
                Stage::TrialList,
                m.source,
                "trial list: logged, not enforced",
            );
            reason.rule = Some(m.rule);
            Verdict::block(Category::List, crate::Action::Log, reason)
        });
        let mut looser = None;
        for check in &self.name_checks {
            if !escalated {
                if let Some((category, reason)) = check.check_name(name) {
                    return (self.block(category, reason), None);
                }
                continue;
            }
            match check.check_name_both(name) {
                NameFinding::Block(category, reason) => {
                    return (self.block(category, reason), None)
                }
                NameFinding::EscalatedBlock(category, reason) if looser.is_none() => {
                    looser = Some(self.block(category, reason));
                }
                NameFinding::EscalatedBlock(..) | NameFinding::Pass => {}
            }
        }
        (trial.unwrap_or(Verdict::PASS), looser)
    }

    pub fn client_escalation(&self) -> Option<&Arc<ClientEscalation>> {
        self.escalation.as_ref()
    }

    /// The client-specific name stage when the client-independent verdict is already known (a
    /// cache hit, `dnsward check` / `classify`, the admin API): when `name_verdict` (what
    /// [`Policy::judge_name`] gave) let the name pass, the name classifiers at their escalated
    /// thresholds. `None` without escalation, for allowlisted or already blocked names, or when
    /// the looser checks pass the name too. The miss path uses
    /// [`Policy::judge_name_escalated`] instead.
    pub fn escalated_check(&self, name: &str, name_verdict: &Verdict) -> Option<Verdict> {
        let trial_only = name_verdict
            .reason
            .as_ref()
            .is_some_and(|r| r.stage == Stage::TrialList);
        if self.escalation.is_none() || (name_verdict.kind != VerdictKind::Pass && !trial_only) {
            return None;
        }
        self.name_checks.iter().find_map(|check| {
            let (category, reason) = check.check_name_escalated(name)?;
            Some(self.block(category, reason))
        })
    }

    /// Counts a block served to `client` towards its escalation: name-classifier blocks at the
    /// default threshold only (list, answer-check and escalated blocks never escalate anyone).
    /// One strike per judged name ([`Reason::judged`], else the query name).
    pub fn record_block(
        &self,
        name: &str,
        verdict: &Verdict,
        client: IpAddr,
        now: Instant,
    ) -> Strike {
        let Some(escalation) = &self.escalation else {
            return Strike::Ignored;
        };
        let by_classifier = verdict
            .reason
            .as_ref()
            .is_some_and(|r| r.stage == Stage::NameClassifier);
        if !verdict.is_block() || !by_classifier {
            return Strike::Ignored;
        }
        let judged = verdict.reason.as_ref().and_then(|r| r.judged.as_deref());
        let strike = escalation.record_strike(client, judged.unwrap_or(name), now);
        if strike == Strike::Escalated {
            let p = escalation.params();
            tracing::warn!(
                %client,
                after = p.after,
                window_secs = p.window.as_secs(),
                hold_secs = p.hold.as_secs(),
                last = name,
                "client escalated: {} distinct names blocked by a name classifier; its names are judged at the escalated threshold for {} s",
                p.after,
                p.hold.as_secs()
            );
        }
        strike
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
                // A logged name block (a trial-list match) is kept unless the answer check enforces.
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

    /// What `client` gets from `verdict` (as judged and cached, the same for every client):
    /// monitor mode, global or from the client's `[[actions.groups]]` entry, turns a block into
    /// `log`, and a group that decided is named in the reason. `None` (`dnsward check`, the
    /// admin API) is a client in no group. Verdicts that are not blocks come back borrowed, so
    /// the answered path does not allocate; so do blocks no setting changes.
    pub fn for_client<'a>(&self, verdict: &'a Verdict, client: Option<IpAddr>) -> Cow<'a, Verdict> {
        let VerdictKind::Block { category, action } = verdict.kind else {
            return Cow::Borrowed(verdict);
        };
        let (monitor, group) = self.actions.monitoring(client);
        let effective = if monitor { crate::Action::Log } else { action };
        if group.is_none() && effective == action {
            return Cow::Borrowed(verdict);
        }
        let mut out = verdict.clone();
        out.kind = VerdictKind::Block {
            category,
            action: effective,
        };
        if let (Some(group), Some(reason)) = (group, out.reason.as_mut()) {
            reason.client_group = Some(group.name.clone());
        }
        Cow::Owned(out)
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

    /// Blocks labels over 20 characters; escalated, over 10.
    struct LongLabelsEscalating;
    impl NameCheck for LongLabelsEscalating {
        fn check_name(&self, name: &str) -> Option<(Category, Reason)> {
            LongLabels.check_name(name)
        }
        fn check_name_escalated(&self, name: &str) -> Option<(Category, Reason)> {
            let first = name.split('.').next()?;
            (first.len() > 10).then(|| {
                let r = Reason::new(Stage::ClientEscalation, "long-label", "label over 10");
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
    fn a_trial_list_match_is_logged_and_any_other_stage_enforcing_wins() {
        use crate::EscalationParams;
        let mut trial = DomainSet::new();
        trial.load_str(
            "trial.txt",
            "feed.example\nbad.example\ngood.example\nabcdefghijklmnopqrstuvwxyz.net\nmediumlengthname.net\n",
        );
        let mut allow = DomainSet::new();
        allow.load_str("allow.txt", "good.example\n");
        let mut deny = DomainSet::new();
        deny.load_str("deny.txt", "bad.example\n");
        let p = Policy::builder()
            .allow(allow)
            .deny(deny)
            .trial(trial)
            .name_check(Arc::new(LongLabelsEscalating))
            .answer_check(Arc::new(IocAddr("192.0.2.66".parse().unwrap())))
            .escalation(Arc::new(ClientEscalation::new(EscalationParams {
                after: 2,
                window: std::time::Duration::from_secs(60),
                hold: std::time::Duration::from_secs(60),
                exempt: vec![],
                max_clients: 10,
            })))
            .build();
        // Only on the trial list: a logged list block, answered.
        let v = p.judge_name("www.feed.example");
        assert_eq!(v.category(), Some(Category::List));
        assert_eq!(v.action(), Some(Action::Log));
        assert!(!v.is_enforced());
        let r = v.reason.as_ref().unwrap();
        assert_eq!(
            (r.stage, &*r.source, r.rule.as_deref()),
            (Stage::TrialList, "trial.txt:1", Some("||feed.example^"))
        );
        // The allowlist and the denylist decide before it; a classifier that blocks wins.
        assert_eq!(p.judge_name("good.example").kind, VerdictKind::Allow);
        assert_eq!(
            p.judge_name("bad.example").reason.unwrap().stage,
            Stage::Denylist
        );
        let v = p.judge_name("abcdefghijklmnopqrstuvwxyz.net");
        assert_eq!((v.category(), v.is_enforced()), (Some(Category::Dga), true));
        // An answer check that enforces wins over the logged trial match; one that does not
        // find anything leaves it.
        let hit = AnswerView {
            qname: "www.feed.example".into(),
            addrs: vec![("192.0.2.66".parse().unwrap(), 60)],
            ..Default::default()
        };
        let trial_verdict = p.judge_name("www.feed.example");
        assert!(p.wants_answer(&trial_verdict));
        let v = p.judge_answer(&trial_verdict, &hit, true);
        assert_eq!(
            (v.category(), v.action()),
            (Some(Category::Ioc), Some(Action::Sinkhole))
        );
        let clean = AnswerView {
            qname: "www.feed.example".into(),
            ..Default::default()
        };
        assert_eq!(p.judge_answer(&trial_verdict, &clean, true), trial_verdict);
        // An escalated client still gets the looser check, on the miss and on the hit path.
        let medium = "mediumlengthname.net";
        let (v, looser) = p.judge_name_escalated(medium);
        assert_eq!(v.reason.as_ref().unwrap().stage, Stage::TrialList);
        assert_eq!(
            looser.as_ref().unwrap().reason.as_ref().unwrap().stage,
            Stage::ClientEscalation
        );
        assert_eq!(p.escalated_check(medium, &v), looser);
    }

    #[test]
    fn escalated_clients_get_the_looser_check_and_only_classifier_blocks_count() {
        use crate::EscalationParams;
        use std::time::Duration;
        let mut allow = DomainSet::new();
        allow.load_str("allow.txt", "mediumlength.example\n");
        let mut deny = DomainSet::new();
        deny.load_str("deny.txt", "listed.example\n");
        let p = Policy::builder()
            .allow(allow)
            .deny(deny)
            .name_check(Arc::new(LongLabelsEscalating))
            .escalation(Arc::new(ClientEscalation::new(EscalationParams {
                after: 2,
                window: Duration::from_secs(60),
                hold: Duration::from_secs(60),
                exempt: vec![],
                max_clients: 10,
            })))
            .build();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let now = Instant::now();
        // What the server does for one client's query: the escalated check, if it is escalated.
        let judge_escalated = |name: &str, verdict: &Verdict, client: IpAddr| {
            let escalated = p.client_escalation().unwrap().is_escalated(client, now);
            escalated
                .then(|| p.escalated_check(name, verdict))
                .flatten()
        };
        let medium = "mediumlengthname.example";
        let pass = p.judge_name(medium);
        assert_eq!(pass, Verdict::PASS);
        assert_eq!(judge_escalated(medium, &pass, a), None);
        // A list block and an escalated-stage block are not strikes.
        let listed = p.judge_name("listed.example");
        assert_eq!(
            p.record_block("listed.example", &listed, a, now),
            Strike::Ignored
        );
        let fake = Verdict::block(
            Category::Dga,
            Action::Nxdomain,
            Reason::new(Stage::ClientEscalation, "long-label", ""),
        );
        assert_eq!(p.record_block("x.example", &fake, a, now), Strike::Ignored);
        // Two classifier blocks escalate a.
        for name in [
            "abcdefghijklmnopqrstuvwxyz.net",
            "zyxwvutsrqponmlkjihgfedcba.net",
        ] {
            let v = p.judge_name(name);
            assert!(v.is_enforced());
            p.record_block(name, &v, a, now);
        }
        let v = judge_escalated(medium, &pass, a).expect("escalated block");
        assert!(v.is_enforced());
        assert_eq!(v.reason.unwrap().stage, Stage::ClientEscalation);
        assert_eq!(
            judge_escalated(medium, &pass, b),
            None,
            "b is not escalated"
        );
        // The allowlist still wins, and names the looser check passes stay passed.
        let allowed = p.judge_name("mediumlength.example");
        assert_eq!(judge_escalated("mediumlength.example", &allowed, a), None);
        assert_eq!(judge_escalated("short.example", &pass, a), None);
        // The miss path's one-pass judgement gives the same two verdicts as the cache-hit path's
        // two steps, for every kind of name.
        for name in [
            medium,
            "mediumlength.example",
            "listed.example",
            "short.example",
            "abcdefghijklmnopqrstuvwxyz.net",
        ] {
            let cached = p.judge_name(name);
            let looser = p.escalated_check(name, &cached);
            assert_eq!(p.judge_name_escalated(name), (cached, looser), "{name}");
        }
        let (v, looser) = p.judge_name_escalated(medium);
        assert_eq!(v, Verdict::PASS);
        assert_eq!(
            looser.unwrap().reason.unwrap().stage,
            Stage::ClientEscalation
        );
        // Without escalation there is no looser verdict.
        assert_eq!(policy(false).judge_name_escalated(medium).1, None);
    }

    #[test]
    fn monitor_mode_logs_instead_of_blocking_per_client() {
        let mut p = policy(true);
        // Judged (and cached) with the enforcing action: monitoring depends on the client.
        let v = p.judge_name("bad.example");
        assert!(v.is_enforced());
        let seen = p.for_client(&v, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(seen.action(), Some(Action::Log));
        assert!(seen.is_block() && !seen.is_enforced());
        assert_eq!(seen.reason.as_ref().unwrap().client_group, None);
        assert_eq!(p.for_client(&v, None).action(), Some(Action::Log));
        // A pilot group enforces while everyone else is monitored, and is named in the reason.
        p.actions.groups = vec![crate::ClientGroup {
            name: "pilot".into(),
            clients: vec!["10.1.2.0/24".parse().unwrap()],
            monitor: false,
        }];
        let pilot = p.for_client(&v, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(pilot.action(), Some(Action::Nxdomain));
        assert_eq!(
            pilot.reason.as_ref().unwrap().client_group.as_deref(),
            Some("pilot")
        );
        assert!(
            pilot.to_string().contains("[client group pilot])"),
            "{pilot}"
        );
        assert_eq!(
            p.for_client(&v, Some("10.1.3.3".parse().unwrap())).action(),
            Some(Action::Log)
        );
        // Nothing to change: borrowed, no allocation on the answered path.
        assert!(matches!(
            p.for_client(&Verdict::PASS, Some("10.1.2.3".parse().unwrap())),
            Cow::Borrowed(_)
        ));
        p.actions.monitor = false;
        assert!(matches!(
            p.for_client(&v, Some("192.0.2.1".parse().unwrap())),
            Cow::Borrowed(_)
        ));
    }
}
