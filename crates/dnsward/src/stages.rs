//! Adapters that put the detectors into the verdict pipeline: the DGA model as a name stage.

use dnsward_classify::{DgaJudgement, DgaModel};
use dnsward_policy::{Category, NameCheck, Reason, Stage};
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
    pub on_model_error: OnModelError,
}

impl Default for DgaConfig {
    fn default() -> Self {
        DgaConfig {
            enabled: true,
            model: None,
            threshold: None,
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
