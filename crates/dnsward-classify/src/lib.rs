//! DGA classifier for dnsward.
//!
//! Judges a query name from the name alone: the registrable domain (label left of the public
//! suffix, PSL compiled in) is featurised exactly like `models/train/features.py` (hashed
//! character 1–5-grams, dictionary-word segmentation of the label, TLD id, fifteen numeric
//! features) and scored by `models/dga.onnx` with tract-onnx: a DGA score (`sigmoid(logit / T)`,
//! T chosen in training so that scores around the thresholds do not saturate in f32) and a
//! distribution over the malware families of the training data. Names that must never be judged (local, reverse DNS, DNSBL zones, CDN and dynamic-DNS
//! suffixes, the popular-domain allowlist) are filtered first.
//!
//! Scores depend only on the registrable domain, so verdicts are cached per registrable domain
//! (bounded, concurrent `quick_cache`). No networking.
//!
//! Inference: the model is loaded and validated with tract-onnx, and tract's plan stays the
//! reference. When the graph has the known structure (see `native.rs`) the weights are read out
//! of the ONNX initialisers and each name is scored by a native forward pass (~1 µs instead of
//! ~100 µs per tract run); otherwise the tract plan runs every name ([`DgaModel::backend`]).

pub mod features;
mod native;
mod skip;

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tract_onnx::prelude::*;

pub use skip::dnsbl_zone_of;

static EMBEDDED_MODEL: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/dga.onnx"
));
static EMBEDDED_POPULAR: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/popular-domains.txt"
));

/// File name of the popular-domain allowlist that [`DgaModel::from_path`] looks for next to the model.
pub const POPULAR_FILE_NAME: &str = "popular-domains.txt";
/// Default number of registrable domains whose verdicts are cached.
pub const DEFAULT_CACHE_ENTRIES: usize = 200_000;
/// Rows per batched inference call.
pub const BATCH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("cannot read DGA model {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid DGA model {origin}: {reason}")]
    Model { origin: String, reason: String },
    #[error("cannot read popular-domain allowlist {path}: {source}")]
    Allowlist {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Which implementation scores names (see [`DgaModel::backend`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Native forward pass over the weights read from the ONNX model (the tract plan is kept as
    /// the reference and checked against it at load).
    Native,
    /// The tract plan itself: the graph did not have the structure the native pass knows.
    Tract,
}

impl Backend {
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::Tract => "tract",
        }
    }
}

/// Why a name was not judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Empty or malformed name (empty label, over-long name).
    Invalid,
    /// A single-label name ("printer", "localhost").
    SingleLabel,
    /// A private-use name: `.local`, `.lan`, `.home.arpa`, `.internal`, ...
    LocalName,
    /// Reverse DNS (`in-addr.arpa`, `ip6.arpa`) and other `.arpa` names.
    ReverseDns,
    /// A lookup in a DNSBL/RBL zone (see [`dnsbl_zone_of`]).
    DnsblZone,
    /// Under a CDN CNAME suffix.
    CdnSuffix,
    /// Under a dynamic-DNS provider suffix.
    DynamicDns,
    /// Under a public suffix only vetted registrants can register in (`.gov`, `.edu`, `.mil`,
    /// `.int`, `gov.uk`, `ac.jp`, `gob.mx`, ...): a DGA cannot register names there.
    RestrictedSuffix,
    /// The label left of the public suffix is an IDN (`xn--…`) and judging IDN labels is off
    /// (the default; [`DgaModel::set_judge_idn`]): the model has seen almost no IDN names, and
    /// their punycode scores above the default threshold about ten times as often as ASCII
    /// benign names do (models/README.md, "Never judged").
    IdnLabel,
    /// The registrable domain is on the popular-domain allowlist.
    PopularDomain,
    /// The name is a public suffix itself, or has no label left of one.
    NoRegistrableDomain,
    /// Inference failed (should not happen with a model that loaded).
    InferenceError,
}

impl SkipReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::Invalid => "invalid",
            SkipReason::SingleLabel => "single_label",
            SkipReason::LocalName => "local_name",
            SkipReason::ReverseDns => "reverse_dns",
            SkipReason::DnsblZone => "dnsbl_zone",
            SkipReason::CdnSuffix => "cdn_suffix",
            SkipReason::DynamicDns => "dynamic_dns",
            SkipReason::RestrictedSuffix => "restricted_suffix",
            SkipReason::IdnLabel => "idn_label",
            SkipReason::PopularDomain => "popular_domain",
            SkipReason::NoRegistrableDomain => "no_registrable_domain",
            SkipReason::InferenceError => "inference_error",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classifier's verdict on one name. Serialises as
/// `{"verdict":"scored","registrable":"…","score":0.99,"family":"…","family_prob":0.9}` or
/// `{"verdict":"not_judged","reason":"cdn_suffix"}`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum DgaJudgement {
    NotJudged {
        reason: SkipReason,
    },
    Scored {
        registrable: String,
        score: f32,
        family: String,
        family_prob: f32,
    },
}

impl DgaJudgement {
    /// The DGA score (monotone in the model's logit, in (0, 1)), if the name was judged.
    pub fn score(&self) -> Option<f32> {
        match self {
            DgaJudgement::Scored { score, .. } => Some(*score),
            DgaJudgement::NotJudged { .. } => None,
        }
    }
    /// True when judged and `score >= threshold`.
    pub fn is_dga(&self, threshold: f32) -> bool {
        self.score().is_some_and(|s| s >= threshold)
    }
}

/// The registrable domain of a (lowercase) query name by the Public Suffix List compiled into the
/// binary, ICANN and private sections: `"a.b.foo.co.uk"` -> `Some("foo.co.uk")`. A trailing dot is
/// ignored; `None` for a public suffix itself or a single label.
pub fn registrable_domain(qname: &str) -> Option<&str> {
    let q = qname.strip_suffix('.').unwrap_or(qname);
    if q.is_empty() || !q.contains('.') {
        return None;
    }
    let d = psl::domain_str(q)?;
    // psl accepts names whose label is empty ("..com"); refuse them.
    if d.starts_with('.') || d.contains("..") {
        return None;
    }
    Some(d)
}

#[derive(Clone, Copy, Debug)]
struct Verdict {
    score: f32,
    family: u16,
    family_prob: f32,
}

/// The loaded DGA model: ONNX plans, families, allowlist and verdict cache. `Send + Sync`; share
/// one instance via `Arc` across workers.
pub struct DgaModel {
    /// Native forward pass, when the graph was recognised and matched tract at load.
    native: Option<native::NativeNet>,
    single: Arc<TypedRunnableModel>,
    batch: Arc<TypedRunnableModel>,
    families: Vec<String>,
    /// families + "other", indexed by `Verdict::family` (OTHER = families.len()).
    family_names: Vec<String>,
    default_threshold: f32,
    /// Threshold for escalated clients (FPR 1e-3 on benign validation names), when the model
    /// carries one (`dnsward.escalated_threshold`, since model v6 as patched in session 9).
    escalated_threshold: Option<f32>,
    other_min_prob: f32,
    words: features::Words,
    popular: skip::FastSet<Box<str>>,
    /// Judge registrable labels that are IDNs (`xn--…`); off unless the config turns it on.
    judge_idn: AtomicBool,
    cache: quick_cache::sync::Cache<Box<str>, Verdict>,
}

impl std::fmt::Debug for DgaModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DgaModel")
            .field("backend", &self.backend())
            .field("families", &self.families.len())
            .field("default_threshold", &self.default_threshold)
            .field("popular", &self.popular.len())
            .finish()
    }
}

fn parse_popular(txt: &str) -> skip::FastSet<Box<str>> {
    txt.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.to_ascii_lowercase().into_boxed_str())
        .collect()
}

fn normalize(qname: &str) -> Cow<'_, str> {
    let q = qname.trim();
    let q = q.strip_suffix('.').unwrap_or(q);
    if q.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        // Non-ASCII characters become '?', as in features.py (`encode("ascii", "replace")`).
        Cow::Owned(
            q.chars()
                .map(|c| {
                    if c.is_ascii() {
                        c.to_ascii_lowercase()
                    } else {
                        '?'
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(q)
    }
}

impl DgaModel {
    /// The model and side files compiled into the binary (`models/dga.onnx`,
    /// `models/popular-domains.txt`, skip lists).
    pub fn embedded() -> Result<DgaModel, ClassifyError> {
        Self::from_parts(
            EMBEDDED_MODEL,
            "<embedded models/dga.onnx>",
            parse_popular(EMBEDDED_POPULAR),
        )
    }

    /// Loads a model file. The popular-domain allowlist is read from `popular-domains.txt` next
    /// to it when that file exists, else the embedded allowlist is used.
    pub fn from_path(path: &Path) -> Result<DgaModel, ClassifyError> {
        let bytes = std::fs::read(path).map_err(|source| ClassifyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let pop_path = path.with_file_name(POPULAR_FILE_NAME);
        let popular = match std::fs::read_to_string(&pop_path) {
            Ok(txt) => parse_popular(&txt),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => parse_popular(EMBEDDED_POPULAR),
            Err(source) => {
                return Err(ClassifyError::Allowlist {
                    path: pop_path,
                    source,
                })
            }
        };
        Self::from_parts(&bytes, &path.display().to_string(), popular)
    }

    /// Loads a model from bytes with an explicit allowlist (one registrable domain per line).
    pub fn from_bytes(model: &[u8], popular_domains: &str) -> Result<DgaModel, ClassifyError> {
        Self::from_parts(model, "<bytes>", parse_popular(popular_domains))
    }

    fn from_parts(
        bytes: &[u8],
        origin: &str,
        popular: skip::FastSet<Box<str>>,
    ) -> Result<DgaModel, ClassifyError> {
        let err = |reason: String| ClassifyError::Model {
            origin: origin.to_owned(),
            reason,
        };
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|e| err(format!("not an ONNX model: {e}")))?;
        let meta = |k: &str| {
            proto
                .metadata_props
                .iter()
                .find(|p| p.key == k)
                .map(|p| p.value.clone())
        };
        let need = |k: &str| meta(k).ok_or_else(|| err(format!("missing metadata {k}")));
        let fv: u32 = need("dnsward.feature_version")?
            .parse()
            .map_err(|e| err(format!("feature_version: {e}")))?;
        if fv != features::FEATURE_VERSION {
            return Err(err(format!(
                "feature version {fv}, this build computes version {}",
                features::FEATURE_VERSION
            )));
        }
        for (k, want) in [
            ("dnsward.buckets", features::BUCKETS.to_string()),
            ("dnsward.tld_buckets", features::TLD_BUCKETS.to_string()),
            ("dnsward.max_ids", features::MAX_IDS.to_string()),
            ("dnsward.max_words", features::MAX_WORDS.to_string()),
            ("dnsward.n_dense", features::N_DENSE.to_string()),
        ] {
            let got = need(k)?;
            if got != want {
                return Err(err(format!("{k} is {got}, expected {want}")));
            }
        }
        let families: Vec<String> = serde_json::from_str(&need("dnsward.families")?)
            .map_err(|e| err(format!("dnsward.families: {e}")))?;
        if families.is_empty() || families.len() >= u16::MAX as usize {
            return Err(err("no families".into()));
        }
        let default_threshold: f32 = need("dnsward.default_threshold")?
            .parse()
            .map_err(|e| err(format!("default_threshold: {e}")))?;
        let escalated_threshold: Option<f32> = meta("dnsward.escalated_threshold")
            .map(|v| v.parse())
            .transpose()
            .map_err(|e| err(format!("escalated_threshold: {e}")))?;
        if let Some(t) = escalated_threshold {
            if !(t > 0.0 && t <= default_threshold) {
                return Err(err(format!(
                    "escalated_threshold {t} must be in (0, default_threshold {default_threshold}]"
                )));
            }
        }
        let other_min_prob: f32 = need("dnsward.other_min_prob")?
            .parse()
            .map_err(|e| err(format!("other_min_prob: {e}")))?;
        let words = features::Words::from_lines(&need("dnsward.words")?)
            .map_err(|e| err(format!("dnsward.words: {e}")))?;
        let model = onnx
            .model_for_proto_model(&proto)
            .map_err(|e| err(format!("{e:#}")))?;
        let plan = |n: usize| -> TractResult<Arc<TypedRunnableModel>> {
            model
                .clone()
                .with_input_fact(
                    0,
                    InferenceFact::dt_shape(i64::datum_type(), tvec![n, features::MAX_IDS]),
                )?
                .with_input_fact(1, InferenceFact::dt_shape(f32::datum_type(), tvec![n, 1]))?
                .with_input_fact(
                    2,
                    InferenceFact::dt_shape(i64::datum_type(), tvec![n, features::MAX_WORDS]),
                )?
                .with_input_fact(3, InferenceFact::dt_shape(f32::datum_type(), tvec![n, 1]))?
                .with_input_fact(4, InferenceFact::dt_shape(i64::datum_type(), tvec![n]))?
                .with_input_fact(
                    5,
                    InferenceFact::dt_shape(f32::datum_type(), tvec![n, features::N_DENSE]),
                )?
                .into_optimized()?
                .into_runnable()
        };
        let single = plan(1).map_err(|e| err(format!("{e:#}")))?;
        let batch = plan(BATCH).map_err(|e| err(format!("{e:#}")))?;
        let mut family_names = families.clone();
        family_names.push("other".to_owned());
        skip::warm_up();
        let widths = native::Widths {
            ids: features::MAX_IDS,
            words: features::MAX_WORDS,
            dense: features::N_DENSE,
        };
        let native = match native::NativeNet::from_proto(&proto, widths, families.len()) {
            Ok(n) => Some(n),
            Err(reason) => {
                tracing::warn!(
                    model = origin,
                    reason = %reason,
                    "DGA model graph not recognised by the native forward pass; using the tract plan (~100x slower per name)"
                );
                None
            }
        };
        let mut m = DgaModel {
            native,
            single,
            batch,
            families,
            family_names,
            default_threshold,
            escalated_threshold,
            other_min_prob,
            words,
            popular,
            judge_idn: AtomicBool::new(false),
            cache: quick_cache::sync::Cache::new(DEFAULT_CACHE_ENTRIES),
        };
        // Smoke-run both plans so a model with wrong shapes fails at load, not at the first query.
        let f = m.features("example", "com");
        m.run(&m.single, &[&f])
            .map_err(|e| err(format!("test inference failed: {e:#}")))?;
        m.run(&m.batch, &[&f])
            .map_err(|e| err(format!("test inference failed: {e:#}")))?;
        // The native pass must reproduce the tract plan on probe names, else it is not used.
        if m.native.is_some() {
            if let Err(reason) = m.check_native_against_tract() {
                tracing::warn!(
                    model = origin,
                    reason = %reason,
                    "native DGA forward pass disagrees with the tract plan; using the tract plan (~100x slower per name)"
                );
                m.native = None;
            }
        }
        Ok(m)
    }

    /// Names scored at load by both the native pass and the tract plan.
    const PROBES: &'static [(&'static str, &'static str)] = &[
        ("example", "com"),
        ("kqvwxjzrtplmnbvcxqwe", "net"),
        ("prettyschoolgarden", "co.uk"),
        ("x", "io"),
        ("a1b2-c3d4e5f6", "info"),
        (
            "thisisaverylonglabelwithmanywordsandsomemorecharacterstofillsixtythree",
            "org",
        ),
    ];

    fn check_native_against_tract(&self) -> Result<(), String> {
        for &(label, suffix) in Self::PROBES {
            let (s_n, fam_n, l_n) = self
                .score_parts_native(label, suffix)
                .ok_or_else(|| format!("native pass failed on {label}.{suffix}"))?;
            let (s_t, fam_t, l_t) = self
                .reference_score_parts_logit(label, suffix)
                .map_err(|e| e.to_string())?;
            let fam_diff = fam_n
                .iter()
                .zip(&fam_t)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            if (l_n - l_t).abs() > 1e-3 * (1.0 + l_t.abs())
                || (s_n - s_t).abs() > 1e-4
                || fam_n.len() != fam_t.len()
                || fam_diff > 1e-4
            {
                return Err(format!(
                    "{label}.{suffix}: native logit {l_n} score {s_n}, tract logit {l_t} score {s_t}, family prob diff {fam_diff}"
                ));
            }
        }
        Ok(())
    }

    /// Which implementation scores names: [`Backend::Native`] when the graph was recognised (and
    /// agreed with the tract plan on probe names at load), else [`Backend::Tract`].
    pub fn backend(&self) -> Backend {
        if self.native.is_some() {
            Backend::Native
        } else {
            Backend::Tract
        }
    }

    /// Replaces the verdict cache with one holding up to `entries` registrable domains
    /// (0 disables caching in effect: a capacity of 1).
    pub fn with_cache_capacity(mut self, entries: usize) -> Self {
        self.cache = quick_cache::sync::Cache::new(entries.max(1));
        self
    }

    /// Family names of the model (without "other").
    pub fn families(&self) -> &[String] {
        &self.families
    }

    /// Decision threshold on `score` (blocked when `score >= threshold`) chosen for FPR <= 1e-4
    /// on held-out benign names (the benign validation split; see models/README.md).
    pub fn default_threshold(&self) -> f32 {
        self.default_threshold
    }

    /// The looser threshold for clients that have just looked up several names blocked at the
    /// default (FPR 1e-3 on held-out benign validation names); `None` when the model carries none.
    pub fn escalated_threshold(&self) -> Option<f32> {
        self.escalated_threshold
    }

    /// Minimum top-family probability below which the family is reported as "other".
    pub fn other_min_prob(&self) -> f32 {
        self.other_min_prob
    }

    /// Features of a registrable domain given as label and public suffix (the model's dictionary
    /// is used for the word segmentation).
    pub fn features(&self, label: &str, suffix: &str) -> features::Features {
        features::features(label, suffix, &self.words)
    }

    /// Number of domains on the popular-domain allowlist.
    pub fn popular_len(&self) -> usize {
        self.popular.len()
    }

    /// Whether registrable labels that are IDNs (`xn--…`) are judged (default: no, they are
    /// [`SkipReason::IdnLabel`]). Takes effect for the next judgement, cached verdicts included
    /// (the skip rules run before the cache).
    pub fn set_judge_idn(&self, on: bool) {
        self.judge_idn.store(on, Ordering::Relaxed);
    }

    /// Drops all cached verdicts.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// The skip rules alone: `Err(reason)` when the name is not to be judged, else the
    /// registrable domain split as (registrable, label, suffix).
    fn prepare<'a>(&self, name: &'a str) -> Result<(&'a str, &'a str, &'a str), SkipReason> {
        if name.is_empty() || name.len() > 253 || name.starts_with('.') || name.contains("..") {
            return Err(SkipReason::Invalid);
        }
        if !name.contains('.') {
            return Err(SkipReason::SingleLabel);
        }
        if skip::is_local(name) {
            return Err(SkipReason::LocalName);
        }
        if skip::is_reverse(name) {
            return Err(SkipReason::ReverseDns);
        }
        let listed = skip::listed_suffix(name);
        if listed == Some(skip::ListedSuffix::Dnsbl) {
            return Err(SkipReason::DnsblZone);
        }
        let reg = registrable_domain(name).ok_or(SkipReason::NoRegistrableDomain)?;
        match listed {
            Some(skip::ListedSuffix::Cdn) => return Err(SkipReason::CdnSuffix),
            Some(skip::ListedSuffix::DynDns) => return Err(SkipReason::DynamicDns),
            _ => {}
        }
        if self.popular.contains(reg) {
            return Err(SkipReason::PopularDomain);
        }
        let (label, suffix) = reg.split_once('.').ok_or(SkipReason::NoRegistrableDomain)?;
        if skip::is_restricted_suffix(suffix) {
            return Err(SkipReason::RestrictedSuffix);
        }
        if label.starts_with("xn--") && !self.judge_idn.load(Ordering::Relaxed) {
            return Err(SkipReason::IdnLabel);
        }
        Ok((reg, label, suffix))
    }

    fn judgement(&self, reg: &str, v: Verdict) -> DgaJudgement {
        DgaJudgement::Scored {
            registrable: reg.to_owned(),
            score: v.score,
            family: self.family_names[v.family as usize].clone(),
            family_prob: v.family_prob,
        }
    }

    /// Judges one query name (any case, with or without trailing dot), using the cache.
    pub fn judge(&self, qname: &str) -> DgaJudgement {
        let name = normalize(qname);
        let (reg, label, suffix) = match self.prepare(&name) {
            Ok(p) => p,
            Err(reason) => return DgaJudgement::NotJudged { reason },
        };
        if let Some(v) = self.cache.get(reg) {
            return self.judgement(reg, v);
        }
        match self.score_uncached(label, suffix) {
            Some(v) => {
                self.cache.insert(reg.into(), v);
                self.judgement(reg, v)
            }
            None => DgaJudgement::NotJudged {
                reason: SkipReason::InferenceError,
            },
        }
    }

    /// Verdict on one registrable domain, computed (no cache): features into this thread's
    /// reusable buffer, then the backend in use.
    fn score_uncached(&self, label: &str, suffix: &str) -> Option<Verdict> {
        thread_local! {
            static FEATURES: RefCell<features::Features> =
                RefCell::new(features::Features::with_capacity());
        }
        FEATURES.with(|f| {
            let f = &mut *f.borrow_mut();
            features::features_into(label, suffix, &self.words, f);
            self.verdict(f)
        })
    }

    /// Verdict on one feature row by the backend in use.
    fn verdict(&self, f: &features::Features) -> Option<Verdict> {
        match &self.native {
            Some(n) => {
                let o = n.run(f)?;
                let family = if o.best_prob >= self.other_min_prob {
                    o.best
                } else {
                    self.families.len()
                };
                Some(Verdict {
                    score: o.score,
                    family: family as u16,
                    family_prob: o.best_prob,
                })
            }
            None => self.run(&self.single, &[f]).ok().map(|v| v[0]),
        }
    }

    /// Batched judging (CLI, bench): same results as [`judge`](Self::judge). The native pass
    /// judges the names one by one through the cache; the tract plan scores each uncached
    /// registrable domain once, `BATCH` rows at a time.
    pub fn judge_batch(&self, qnames: &[&str]) -> Vec<DgaJudgement> {
        if self.native.is_some() {
            // The native pass has no batch form: each name is judged where it stands (the
            // feature buffers stay hot in L1 instead of a batch of them streaming through L2).
            return qnames.iter().map(|q| self.judge(q)).collect();
        }
        let names: Vec<Cow<'_, str>> = qnames.iter().map(|q| normalize(q)).collect();
        let mut out: Vec<Option<DgaJudgement>> = vec![None; names.len()];
        // (index into names, registrable) still to score, and unique work items
        let mut pending: Vec<(usize, &str)> = Vec::new();
        let mut work: Vec<(&str, features::Features)> = Vec::new();
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, name) in names.iter().enumerate() {
            match self.prepare(name) {
                Err(reason) => out[i] = Some(DgaJudgement::NotJudged { reason }),
                Ok((reg, label, suffix)) => {
                    if let Some(v) = self.cache.get(reg) {
                        out[i] = Some(self.judgement(reg, v));
                    } else {
                        pending.push((i, reg));
                        seen.entry(reg).or_insert_with(|| {
                            work.push((reg, self.features(label, suffix)));
                            work.len() - 1
                        });
                    }
                }
            }
        }
        let mut verdicts: Vec<Option<Verdict>> = vec![None; work.len()];
        for (c, chunk) in work.chunks(BATCH).enumerate() {
            let fs: Vec<&features::Features> = chunk.iter().map(|(_, f)| f).collect();
            let plan = if chunk.len() == 1 {
                &self.single
            } else {
                &self.batch
            };
            if let Ok(vs) = self.run(plan, &fs) {
                for (j, v) in vs.into_iter().enumerate() {
                    let k = c * BATCH + j;
                    self.cache.insert(work[k].0.into(), v);
                    verdicts[k] = Some(v);
                }
            }
        }
        for (i, reg) in pending {
            out[i] = Some(match verdicts[seen[reg]] {
                Some(v) => self.judgement(reg, v),
                None => DgaJudgement::NotJudged {
                    reason: SkipReason::InferenceError,
                },
            });
        }
        out.into_iter()
            .map(|j| j.expect("every name judged"))
            .collect()
    }

    /// Scores a registrable domain given as label and public suffix, bypassing skip rules and
    /// cache: `(dga_score, family_probabilities)` (families in [`families`](Self::families) order).
    pub fn score_parts(&self, label: &str, suffix: &str) -> Result<(f32, Vec<f32>), ClassifyError> {
        let (s, fam, _) = self.score_parts_logit(label, suffix)?;
        Ok((s, fam))
    }

    /// Like [`score_parts`](Self::score_parts), plus the raw logit of the DGA head
    /// (`score = sigmoid(logit / T)`). Uses the backend in use ([`backend`](Self::backend)).
    pub fn score_parts_logit(
        &self,
        label: &str,
        suffix: &str,
    ) -> Result<(f32, Vec<f32>, f32), ClassifyError> {
        if self.native.is_none() {
            return self.reference_score_parts_logit(label, suffix);
        }
        self.score_parts_native(label, suffix)
            .ok_or_else(|| ClassifyError::Model {
                origin: "inference".into(),
                reason: "an id is out of range of its embedding table".into(),
            })
    }

    fn score_parts_native(&self, label: &str, suffix: &str) -> Option<(f32, Vec<f32>, f32)> {
        let f = self.features(label, suffix);
        self.native.as_ref()?.run_full(&f)
    }

    /// [`score_parts_logit`](Self::score_parts_logit) computed by the tract plan of the ONNX
    /// graph, whatever the backend: the reference the native pass is checked against.
    pub fn reference_score_parts_logit(
        &self,
        label: &str,
        suffix: &str,
    ) -> Result<(f32, Vec<f32>, f32), ClassifyError> {
        let f = self.features(label, suffix);
        let (s, fam, logit) =
            self.run_raw(&self.single, &[&f])
                .map_err(|e| ClassifyError::Model {
                    origin: "inference".into(),
                    reason: format!("{e:#}"),
                })?;
        Ok((s[0], fam, logit[0]))
    }

    fn run(
        &self,
        plan: &Arc<TypedRunnableModel>,
        fs: &[&features::Features],
    ) -> TractResult<Vec<Verdict>> {
        let (scores, fam, _) = self.run_raw(plan, fs)?;
        let k = self.families.len();
        Ok(scores
            .iter()
            .enumerate()
            .map(|(r, &score)| {
                let row = &fam[r * k..(r + 1) * k];
                let (mut best, mut bp) = (0usize, f32::MIN);
                for (j, &p) in row.iter().enumerate() {
                    if p > bp {
                        best = j;
                        bp = p;
                    }
                }
                let family = if bp >= self.other_min_prob { best } else { k };
                Verdict {
                    score,
                    family: family as u16,
                    family_prob: bp,
                }
            })
            .collect())
    }

    /// Runs a plan on up to its batch size of feature rows (padded); returns (scores, family
    /// probabilities row-major, logits) for the real rows.
    fn run_raw(
        &self,
        plan: &Arc<TypedRunnableModel>,
        fs: &[&features::Features],
    ) -> TractResult<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let n = if Arc::ptr_eq(plan, &self.single) {
            1
        } else {
            BATCH
        };
        if fs.is_empty() || fs.len() > n {
            return Err(TractError::msg(format!(
                "batch of {} rows for a plan of {n}",
                fs.len()
            )));
        }
        let mut ids = vec![0i64; n * features::MAX_IDS];
        let mut inv = vec![0f32; n];
        let mut wids = vec![0i64; n * features::MAX_WORDS];
        let mut winv = vec![0f32; n];
        let mut tld = vec![0i64; n];
        let mut dense = vec![0f32; n * features::N_DENSE];
        for (r, f) in fs.iter().enumerate() {
            let m = f.ids.len().min(features::MAX_IDS);
            ids[r * features::MAX_IDS..r * features::MAX_IDS + m].copy_from_slice(&f.ids[..m]);
            inv[r] = 1.0 / (m.max(1) as f32);
            let k = f.word_ids.len().min(features::MAX_WORDS);
            wids[r * features::MAX_WORDS..r * features::MAX_WORDS + k]
                .copy_from_slice(&f.word_ids[..k]);
            winv[r] = 1.0 / (k.max(1) as f32);
            tld[r] = f.tld;
            dense[r * features::N_DENSE..(r + 1) * features::N_DENSE].copy_from_slice(&f.dense);
        }
        let inputs = tvec![
            Tensor::from_shape(&[n, features::MAX_IDS], &ids)?.into(),
            Tensor::from_shape(&[n, 1], &inv)?.into(),
            Tensor::from_shape(&[n, features::MAX_WORDS], &wids)?.into(),
            Tensor::from_shape(&[n, 1], &winv)?.into(),
            Tensor::from_shape(&[n], &tld)?.into(),
            Tensor::from_shape(&[n, features::N_DENSE], &dense)?.into(),
        ];
        let out = plan.run(inputs)?;
        let scores = out[0].to_plain_array_view::<f32>()?;
        let scores = scores
            .as_slice()
            .ok_or_else(|| TractError::msg("non-contiguous output"))?;
        let fam = out[1].to_plain_array_view::<f32>()?;
        let fam = fam
            .as_slice()
            .ok_or_else(|| TractError::msg("non-contiguous output"))?;
        let logits = out[2].to_plain_array_view::<f32>()?;
        let logits = logits
            .as_slice()
            .ok_or_else(|| TractError::msg("non-contiguous output"))?;
        let k = self.families.len();
        Ok((
            scores[..fs.len()].to_vec(),
            fam[..fs.len() * k].to_vec(),
            logits[..fs.len()].to_vec(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable() {
        assert_eq!(registrable_domain("a.b.foo.co.uk"), Some("foo.co.uk"));
        assert_eq!(registrable_domain("foo.co.uk."), Some("foo.co.uk"));
        assert_eq!(registrable_domain("co.uk"), None);
        assert_eq!(registrable_domain("com"), None);
        assert_eq!(registrable_domain("www.example.com"), Some("example.com"));
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize(" WWW.Example.COM. "), "www.example.com");
        assert!(matches!(normalize("www.example.com"), Cow::Borrowed(_)));
    }

    #[test]
    fn send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DgaModel>();
    }

    #[test]
    fn skip_reason_strings() {
        assert_eq!(SkipReason::CdnSuffix.as_str(), "cdn_suffix");
        let j = DgaJudgement::NotJudged {
            reason: SkipReason::ReverseDns,
        };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"verdict":"not_judged","reason":"reverse_dns"}"#
        );
    }
}
