//! The verdict and its reason: the value that flows to the DNS answer, the logs, the API and metrics.

use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// Why a name was blocked, grouped the way operators configure actions and read reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A denylist rule matched the query name.
    List,
    /// The DGA model judged the name as generated.
    Dga,
    /// The answer looks like fast flux or double flux.
    Flux,
    /// The answer (or the name) hit an indicator of compromise: IP, CIDR, ASN or domain.
    Ioc,
    /// A parked domain that moved to fresh infrastructure.
    Parking,
    /// An IOC hit on shared infrastructure (a CDN edge address, a popular site or public web
    /// service): recorded with its reason, answered normally unless the operator chose to block.
    Shared,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::List,
        Category::Dga,
        Category::Flux,
        Category::Ioc,
        Category::Parking,
        Category::Shared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::List => "list",
            Category::Dga => "dga",
            Category::Flux => "flux",
            Category::Ioc => "ioc",
            Category::Parking => "parking",
            Category::Shared => "shared",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the resolver does with a blocked query.
pub use crate::actions::Action;

/// The pipeline stage that produced a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Allowlist,
    Denylist,
    /// A trial denylist (`[lists] trial`): the match is logged, never enforced, while the
    /// other stages still judge the name.
    TrialList,
    /// A name classifier (the DGA model, or any other [`crate::NameCheck`]).
    NameClassifier,
    /// A name classifier at its looser escalated threshold, for a client that has just had
    /// several names blocked by it ([`crate::ClientEscalation`]).
    ClientEscalation,
    /// A check on the upstream answer (flux, IOC IPs, parking).
    AnswerCheck,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Allowlist,
        Stage::Denylist,
        Stage::TrialList,
        Stage::NameClassifier,
        Stage::ClientEscalation,
        Stage::AnswerCheck,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Allowlist => "allowlist",
            Stage::Denylist => "denylist",
            Stage::TrialList => "trial_list",
            Stage::NameClassifier => "name_classifier",
            Stage::ClientEscalation => "client_escalation",
            Stage::AnswerCheck => "answer_check",
        }
    }
}

/// Why: which stage decided, from what source (list file and line, model), with which score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reason {
    pub stage: Stage,
    /// The list file and line (`lists/deny.txt:12`), or the model/check name (`dga-model`).
    pub source: Arc<str>,
    /// The rule or entry that matched (`||example.com^`, `*.ads.example`), when a list decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<str>>,
    /// Model or check score, when a classifier decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Likely malware family, when the DGA model decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<Arc<str>>,
    /// The name the stage judged when it is not the query name: the registrable domain, for the
    /// DGA model (it judges and caches per registrable domain, so `a.x.com` and `b.x.com` are one
    /// finding, also for per-client escalation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judged: Option<Arc<str>>,
    /// Human-readable detail.
    pub detail: String,
    /// The numbers that drove an answer check (flux features, ASNs, TTLs...), for operators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Arc<serde_json::Value>>,
    /// The client's `[[actions.groups]]` entry, when one decided whether this block was enforced
    /// or only logged for that client ([`crate::Policy::for_client`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_group: Option<Arc<str>>,
}

impl Reason {
    pub fn new(stage: Stage, source: impl Into<Arc<str>>, detail: impl Into<String>) -> Self {
        Reason {
            stage,
            source: source.into(),
            rule: None,
            score: None,
            family: None,
            judged: None,
            detail: detail.into(),
            features: None,
            client_group: None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.stage.as_str(), self.source)?;
        if let Some(rule) = &self.rule {
            write!(f, " rule {rule}")?;
        }
        if let Some(score) = self.score {
            write!(f, " score {score:.4}")?;
        }
        if let Some(family) = &self.family {
            write!(f, " family {family}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if let Some(group) = &self.client_group {
            write!(f, " [client group {group}]")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VerdictKind {
    /// Nothing matched: answer normally.
    Pass,
    /// An allowlist rule matched: answer normally and skip every later check.
    Allow,
    /// Blocked; `action` is what the resolver does. As judged (and cached) it is the
    /// category's configured action; [`crate::Policy::for_client`] turns it into `log` for a
    /// client in monitor mode.
    Block { category: Category, action: Action },
}

/// The outcome of the pipeline for one query, with its reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub kind: VerdictKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl Verdict {
    pub const PASS: Verdict = Verdict {
        kind: VerdictKind::Pass,
        reason: None,
    };

    pub fn allow(reason: Reason) -> Self {
        Verdict {
            kind: VerdictKind::Allow,
            reason: Some(reason),
        }
    }

    pub fn block(category: Category, action: Action, reason: Reason) -> Self {
        Verdict {
            kind: VerdictKind::Block { category, action },
            reason: Some(reason),
        }
    }

    /// True when the client gets something other than the real answer.
    pub fn is_enforced(&self) -> bool {
        matches!(self.kind, VerdictKind::Block { action, .. } if action != Action::Log)
    }

    /// True for any block, including monitor-mode (`log`) blocks.
    pub fn is_block(&self) -> bool {
        matches!(self.kind, VerdictKind::Block { .. })
    }

    pub fn category(&self) -> Option<Category> {
        match self.kind {
            VerdictKind::Block { category, .. } => Some(category),
            _ => None,
        }
    }

    pub fn action(&self) -> Option<Action> {
        match self.kind {
            VerdictKind::Block { action, .. } => Some(action),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            VerdictKind::Pass => f.write_str("pass")?,
            VerdictKind::Allow => f.write_str("allow")?,
            VerdictKind::Block { category, action } => {
                write!(f, "block category={category} action={}", action.as_str())?
            }
        }
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}
