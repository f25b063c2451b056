//! Adapters that put the detectors into the verdict pipeline: the DGA model as a name stage,
//! the answer analyser (flux, IOC, parking) as an answer stage.

use dnsward_classify::{DgaJudgement, DgaModel};
use dnsward_intel::{
    Action as IntelAction, AnswerAnalyzer, FindingKind, IntelActions, Observation,
};
use dnsward_policy::{AnswerCheck, AnswerHit, AnswerView, Category, NameCheck, Reason, Stage};
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
}

impl Default for DgaConfig {
    fn default() -> Self {
        DgaConfig {
            enabled: true,
            model: None,
            threshold: None,
            judge_idn: false,
            on_model_error: OnModelError::Fail,
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
        Ok(())
    }
}

/// The DGA model as a [`NameCheck`].
pub struct DgaStage {
    pub model: Arc<DgaModel>,
    pub threshold: f32,
    source: Arc<str>,
}

impl DgaStage {
    pub fn new(model: Arc<DgaModel>, threshold: Option<f32>, source: &str) -> Self {
        let threshold = threshold.unwrap_or_else(|| model.default_threshold());
        DgaStage {
            model,
            threshold,
            source: Arc::from(source),
        }
    }
}

impl NameCheck for DgaStage {
    fn check_name(&self, name: &str) -> Option<(Category, Reason)> {
        match self.model.judge(name) {
            DgaJudgement::Scored {
                registrable,
                score,
                family,
                family_prob,
            } if score >= self.threshold => {
                let mut reason = Reason::new(
                    Stage::NameClassifier,
                    self.source.clone(),
                    format!(
                        "{registrable}: DGA probability {score:.4} >= threshold {:.4}; family {family} ({family_prob:.2})",
                        self.threshold
                    ),
                );
                reason.score = Some(score);
                reason.family = Some(Arc::from(family.as_str()));
                Some((Category::Dga, reason))
            }
            _ => None,
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

fn unix_now() -> u64 {
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
            FindingKind::FastFlux | FindingKind::DoubleFlux => Category::Flux,
            FindingKind::IocIp | FindingKind::IocAsn | FindingKind::IocDomain => Category::Ioc,
            FindingKind::ParkingMove => Category::Parking,
        };
        let mut reason = Reason::new(
            Stage::AnswerCheck,
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
