//! The decision half of dnsward: domain lists, the verdict pipeline and the actions.
//!
//! Nothing here touches the network. The server feeds a query name (and later the parsed
//! upstream answer) through a [`Policy`] and gets back a [`Verdict`] that always says *why*:
//! which stage decided, from which list line or model, with which score.

mod actions;
mod domainset;
mod escalation;
mod pipeline;
pub mod rpz;
mod verdict;

pub use actions::{Action, ActionConfig, ClientGroup, EdeText, SinkholeConfig};
pub use domainset::{DomainSet, ListError, ListFormatError, RuleMatch};
pub use escalation::{ClientEscalation, EscalationParams, Strike};
pub use pipeline::{
    AnswerCheck, AnswerHit, AnswerView, NameCheck, NameFinding, Policy, PolicyBuilder,
};
pub use verdict::{Category, Reason, Stage, Verdict, VerdictKind};

/// Normalises a query name for matching: ASCII-lowercase, no trailing dot.
pub fn normalize_name(name: &str) -> String {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    trimmed.to_ascii_lowercase()
}
