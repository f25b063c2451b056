//! Adapters that put the detectors into the verdict pipeline: the DGA model as a name stage,
//! the answer analyser (flux, IOC, parking) as an answer stage.

use dnsward_classify::{DgaJudgement, DgaModel};
use dnsward_intel::{
    Action as IntelAction, AnswerAnalyzer, FindingKind, IntelActions, Observation,
};
use dnsward_policy::{
    AnswerCheck, AnswerHit, AnswerView, Category, NameCheck, NameFinding, Reason, Stage,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// What to do when the model file is missing or corrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnModelError {
    /// Refuse to start (and keep the running model on reload).
    Fail,
    /// Run without the DGA stage, with a loud warning.
    Disable,
}

/// `[dga]`: the DGA classifier stage.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DgaConfig {
    /// Judge query names with the DGA model.
    pub enabled: bool,
    /// ONNX model file; unset = the model compiled into the binary (models/dga.onnx).
    pub model: Option<PathBuf>,
    /// Block at or above this DGA probability; unset = the model's default, chosen for a
    /// false-positive rate of at most 1e-4 on held-out benign names (see models/README.md).
    pub threshold: Option<f32>,
    /// Judge registrable labels that are IDNs (`xn--…`). Off by default: the model has seen
    /// almost no IDN names and scores their punycode above the default threshold about ten
    /// times as often as ASCII benign names (models/README.md); no DGA family in the training
    /// data generates IDNs.
    pub judge_idn: bool,
    pub on_model_error: OnModelError,
    /// `[dga.escalation]`: judge the names of clients that have just had several names blocked
    /// by the model at a looser threshold.
    pub escalation: EscalationConfig,
}

/// `[dga.escalation]`. A client that has had `after` distinct names blocked by the DGA model (at
/// its default threshold) within `window_secs` is probably infected: for `hold_secs` after its
/// latest such block, its names are judged at the escalated threshold (FPR 1e-3 on held-out
/// benign names instead of 1e-4). On held-out names that lifts the share of an infected client's
/// DGA lookups that are blocked from 59 % to 80 %; a clean client needs thousands of distinct
/// non-allowlisted names within the window to be escalated (models/README.md, "Per-client
/// escalation"). Clients behind one address (NAT, a downstream resolver) share one state: list
/// them in `exempt`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationConfig {
    pub enabled: bool,
    /// Distinct blocked names that escalate a client (>= 1).
    pub after: usize,
    pub window_secs: u64,
    pub hold_secs: u64,
    /// Escalated threshold on the DGA probability; unset = the model's
    /// (`dnsward.escalated_threshold`). Must not be above the blocking threshold.
    pub threshold: Option<f32>,
    /// Clients (addresses or CIDRs) never escalated.
    pub exempt: Vec<ipnet::IpNet>,
    /// Most clients tracked at once (memory bound: a few hundred bytes each: the map entry and up
    /// to `after` blocked names).
    pub max_clients: usize,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            enabled: true,
            after: 3,
            window_secs: 3600,
            hold_secs: 6 * 3600,
            threshold: None,
            exempt: Vec::new(),
            max_clients: 65536,
        }
    }
}

impl EscalationConfig {
    pub fn params(&self) -> dnsward_policy::EscalationParams {
        dnsward_policy::EscalationParams {
            after: self.after,
            window: std::time::Duration::from_secs(self.window_secs),
            hold: std::time::Duration::from_secs(self.hold_secs),
            exempt: self.exempt.clone(),
            max_clients: self.max_clients,
        }
    }
}

impl Default for DgaConfig {
    fn default() -> Self {
        DgaConfig {
            enabled: true,
            model: None,
            threshold: None,
            judge_idn: false,
            on_model_error: OnModelError::Fail,
            escalation: EscalationConfig::default(),
        }
    }
}

impl DgaConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = self.threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err(format!("dga.threshold: {t} must be in (0, 1]"));
            }
        }
        let e = &self.escalation;
        if let Some(t) = e.threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err(format!("dga.escalation.threshold: {t} must be in (0, 1]"));
            }
            if self.threshold.is_some_and(|b| t > b) {
                return Err(format!(
                    "dga.escalation.threshold: {t} is above dga.threshold; escalation must loosen the threshold, not tighten it"
                ));
            }
        }
        if e.enabled {
            if e.after == 0 {
                return Err("dga.escalation.after: must be at least 1".into());
            }
            if e.window_secs == 0 || e.hold_secs == 0 {
                return Err("dga.escalation.window_secs and hold_secs: must be at least 1".into());
            }
            if e.max_clients == 0 {
                return Err("dga.escalation.max_clients: must be at least 1".into());
            }
        }
        Ok(())
    }
}

/// The DGA model as a [`NameCheck`].
pub struct DgaStage {
    pub model: Arc<DgaModel>,
    pub threshold: f32,
    /// For escalated clients; `None`: no escalated check.
    pub escalated_threshold: Option<f32>,
    source: Arc<str>,
}

impl DgaStage {
    pub fn new(model: Arc<DgaModel>, threshold: Option<f32>, source: &str) -> Self {
        let threshold = threshold.unwrap_or_else(|| model.default_threshold());
        DgaStage {
            model,
            threshold,
            escalated_threshold: None,
            source: Arc::from(source),
        }
    }

    /// Turns the escalated check on: `threshold`, or the model's; never above the blocking
    /// threshold (a looser check that is stricter would only hide blocks). Returns the threshold
    /// used, `None` when neither the config nor the model gives one.
    pub fn with_escalation(mut self, threshold: Option<f32>) -> (Self, Option<f32>) {
        let t = threshold
            .or_else(|| self.model.escalated_threshold())
            .map(|t| t.min(self.threshold));
        self.escalated_threshold = t;
        (self, t)
    }

    fn reason(
        &self,
        stage: Stage,
        registrable: &str,
        score: f32,
        threshold: f32,
        family: &str,
        family_prob: f32,
    ) -> Reason {
        let what = if stage == Stage::ClientEscalation {
            "escalated threshold (client escalated after repeated DGA blocks)"
        } else {
            "threshold"
        };
        let mut reason = Reason::new(
            stage,
            self.source.clone(),
            format!(
                "{registrable}: DGA probability {score:.4} >= {what} {threshold:.4}; family {family} ({family_prob:.2})"
            ),
        );
        reason.score = Some(score);
        reason.family = Some(Arc::from(family));
        reason.judged = Some(Arc::from(registrable));
        reason
    }

    /// The judgement as a block at `threshold`, reported as `stage`.
    fn block_at(
        &self,
        judgement: &DgaJudgement,
        stage: Stage,
        threshold: f32,
    ) -> Option<(Category, Reason)> {
        match judgement {
            DgaJudgement::Scored {
                registrable,
                score,
                family,
                family_prob,
            } if *score >= threshold => Some((
                Category::Dga,
                self.reason(stage, registrable, *score, threshold, family, *family_prob),
            )),
            _ => None,
        }
    }
}

impl NameCheck for DgaStage {
    fn check_name(&self, name: &str) -> Option<(Category, Reason)> {
        self.block_at(
            &self.model.judge(name),
            Stage::NameClassifier,
            self.threshold,
        )
    }

    fn check_name_escalated(&self, name: &str) -> Option<(Category, Reason)> {
        let threshold = self.escalated_threshold?;
        self.block_at(&self.model.judge(name), Stage::ClientEscalation, threshold)
    }

    // One judgement for both thresholds (callgrind: a second, cached judgement was 3.5k of the
    // 4.9k instructions per query the escalated check first cost on the miss path).
    fn check_name_both(&self, name: &str) -> NameFinding {
        let judgement = self.model.judge(name);
        if let Some((category, reason)) =
            self.block_at(&judgement, Stage::NameClassifier, self.threshold)
        {
            return NameFinding::Block(category, reason);
        }
        let looser = self
            .escalated_threshold
            .and_then(|t| self.block_at(&judgement, Stage::ClientEscalation, t));
        match looser {
            Some((category, reason)) => NameFinding::EscalatedBlock(category, reason),
            None => NameFinding::Pass,
        }
    }
}

/// The answer-side analyser (flux, double flux, IOC addresses/ASNs/domains, parking) as an
/// [`AnswerCheck`]. `[intel.actions]` decides per finding kind whether it blocks or is only
/// logged; `[actions]` decides how a blocked category is answered.
pub struct IntelStage {
    pub analyzer: Arc<AnswerAnalyzer>,
    actions: IntelActions,
}

impl IntelStage {
    pub fn new(analyzer: Arc<AnswerAnalyzer>) -> Self {
        let actions = analyzer.config().actions.clone();
        IntelStage { analyzer, actions }
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AnswerCheck for IntelStage {
    fn check_answer(&self, answer: &AnswerView, record: bool) -> Option<AnswerHit> {
        let cnames: Vec<(&str, u32)> = answer
            .cnames
            .iter()
            .map(|(n, t)| (n.as_str(), *t))
            .collect();
        let ns: Vec<(&str, u32)> = answer.ns.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let obs = Observation {
            qname: &answer.qname,
            addrs: &answer.addrs,
            cnames: &cnames,
            ns: &ns,
            ns_addrs: &answer.ns_addrs,
        };
        let now = unix_now();
        let assessment = if record {
            self.analyzer.observe(&obs, now)
        } else {
            self.analyzer.assess(&obs, now)
        };
        let log_only = match assessment.action(&self.actions) {
            IntelAction::Allow => return None,
            IntelAction::Log => true,
            IntelAction::Block => false,
        };
        let finding = assessment.finding.as_ref()?;
        let category = match finding.kind {
            _ if finding.shared.is_some() => Category::Shared,
            FindingKind::FastFlux | FindingKind::DoubleFlux => Category::Flux,
            FindingKind::IocIp | FindingKind::IocAsn | FindingKind::IocDomain => Category::Ioc,
            FindingKind::ParkingMove => Category::Parking,
        };
        // A hit from an IOC list on trial is reported as the trial list's, so that nothing
        // counts it as evidence (client scoring skips trial-list verdicts).
        let stage = if finding.trial {
            Stage::TrialList
        } else {
            Stage::AnswerCheck
        };
        let mut reason = Reason::new(
            stage,
            format!("intel:{}", finding.kind.as_str()),
            finding.detail.clone(),
        );
        reason.score = Some(finding.score as f32);
        reason.features = serde_json::to_value(&assessment).ok().map(Arc::new);
        Some(AnswerHit {
            category,
            reason,
            log_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_judgement_gives_both_thresholds_verdicts() {
        let model = Arc::new(DgaModel::embedded().unwrap());
        let (stage, t) = DgaStage::new(model.clone(), None, "dga-model").with_escalation(None);
        let t = t.expect("the embedded model has an escalated threshold");
        // Between the escalated and the default threshold.
        let band = "xjw3kqpz0a.net";
        assert!(stage.check_name(band).is_none());
        let (_, reason) = stage.check_name_escalated(band).expect("escalated block");
        assert!(reason.score.unwrap() >= t);
        assert_eq!(reason.stage, Stage::ClientEscalation);
        assert_eq!(reason.judged.as_deref(), Some("xjw3kqpz0a.net"));
        // The one-pass check agrees with the two separate ones: band, blocked, passed, not judged.
        for name in [
            band,
            "zxkqwvbnmtr.org",
            "www.wikipedia.org",
            "printer.local",
        ] {
            let expected = match (stage.check_name(name), stage.check_name_escalated(name)) {
                (Some((c, r)), _) => NameFinding::Block(c, r),
                (None, Some((c, r))) => NameFinding::EscalatedBlock(c, r),
                (None, None) => NameFinding::Pass,
            };
            assert_eq!(stage.check_name_both(name), expected, "{name}");
        }
        assert!(matches!(
            stage.check_name_both(band),
            NameFinding::EscalatedBlock(Category::Dga, _)
        ));
        assert!(matches!(
            stage.check_name_both("zxkqwvbnmtr.org"),
            NameFinding::Block(Category::Dga, _)
        ));
        // Without escalation the band name passes.
        let plain = DgaStage::new(model.clone(), None, "dga-model");
        assert_eq!(plain.check_name_both(band), NameFinding::Pass);
        // A threshold from the config is used, and never above the blocking threshold.
        let (other, t2) = DgaStage::new(model, None, "dga-model").with_escalation(Some(0.999));
        assert_eq!(t2, Some(other.threshold));
        assert!(other.check_name("zxkqwvbnmtr.org").is_some());
    }
}
