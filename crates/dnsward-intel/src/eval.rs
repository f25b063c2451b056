//! Replay evaluator: JSON-lines answer streams through the same [`AnswerAnalyzer`] code.
//!
//! One line per upstream answer:
//! `{"t": unix_secs, "name": "...", "answers": [{"ip": "...", "ttl": 60}], "cnames": [{"name": "...", "ttl": 60}],
//!   "ns": [{"name": "...", "ttl": 60}], "ns_addrs": ["..."], "label": "flux|double_flux|cdn|round_robin|parked|benign|..."}`
//! (`cnames`, `ns`, `ns_addrs`, `label` optional). Labels containing `flux` are positives
//! (detected = a `fast_flux` / `double_flux` finding); `parking_move` expects a
//! `parking_move` finding; every other label is negative.
use crate::analyzer::{AnswerAnalyzer, FindingKind, Observation};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::time::Instant;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnswerRec {
    pub ip: IpAddr,
    #[serde(default)]
    pub ttl: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NameRec {
    pub name: String,
    #[serde(default)]
    pub ttl: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub t: u64,
    pub name: String,
    #[serde(default)]
    pub answers: Vec<AnswerRec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cnames: Vec<NameRec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ns: Vec<NameRec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ns_addrs: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Detection counts of one detector on one label.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DetectorStats {
    /// Domains flagged at least once.
    pub flagged_domains: u64,
    /// Lookups flagged.
    pub flagged_lookups: u64,
    /// Domains first flagged by their 1st, 2nd, 3rd lookup (cumulative).
    pub within: [u64; 3],
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LabelStats {
    pub domains: u64,
    pub lookups: u64,
    pub positive: bool,
    /// This crate's detector (flux findings; `parking_move` for that label).
    pub detector: DetectorStats,
    /// Holz et al. 2008 flux score > 0.
    pub holz: DetectorStats,
    /// Any finding at all (IOC, parking move, ...), domains.
    pub any_finding_domains: u64,
    pub parked_domains: u64,
    pub kinds: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct EvalReport {
    pub records: u64,
    pub bad_lines: u64,
    pub first_error: Option<String>,
    pub labels: BTreeMap<String, LabelStats>,
    /// Mean wall time of one `observe` call during the replay (µs).
    pub mean_observe_us: f64,
    /// Mean on-CPU time of one `observe` call (µs, thread CPU clock over batches of 4096
    /// calls), robust against other load on the machine. None where unavailable.
    pub mean_observe_cpu_us: Option<f64>,
}

/// On-CPU nanoseconds of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), for timing that
/// does not depend on other load on the machine.
#[cfg(unix)]
pub fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; no other memory is touched.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(not(unix))]
pub fn thread_cpu_ns() -> Option<u64> {
    None
}

#[derive(Default)]
struct DomState {
    lookups: u32,
    ours_first: Option<u32>,
    holz_first: Option<u32>,
    any: bool,
    parked: bool,
}

/// Labels that should be flagged: `*flux*` (fast/double flux findings), `parking_move`,
/// `ioc` (IOC findings).
pub fn is_positive(label: &str) -> bool {
    label.contains("flux") || label == "parking_move" || label == "ioc"
}

/// Replay a JSON-lines stream. `detections`, when given, receives one JSON line per
/// flagged lookup (`{"t","name","label","finding","holz_score"}`).
pub fn replay<R: BufRead>(
    analyzer: &AnswerAnalyzer,
    input: R,
    mut detections: Option<&mut dyn Write>,
) -> std::io::Result<EvalReport> {
    let mut rep = EvalReport::default();
    let mut doms: HashMap<(String, String), DomState> = HashMap::new();
    let mut spent = std::time::Duration::ZERO;
    let mut cpu_spent = 0u64;
    let cpu_ok = thread_cpu_ns().is_some();
    const BATCH: usize = 4096;
    let mut lines = input.lines().enumerate();
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        for (i, line) in lines.by_ref() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(&line) {
                Ok(mut r) => {
                    r.name.make_ascii_lowercase();
                    batch.push(r);
                }
                Err(e) => {
                    rep.bad_lines += 1;
                    rep.first_error
                        .get_or_insert_with(|| format!("line {}: {e}", i + 1));
                }
            }
            if batch.len() == BATCH {
                break;
            }
        }
        if batch.is_empty() {
            break;
        }
        type Prepared<'a> = (Vec<(IpAddr, u32)>, Vec<(&'a str, u32)>, Vec<(&'a str, u32)>);
        let prepared: Vec<Prepared<'_>> = batch
            .iter()
            .map(|r| {
                (
                    r.answers.iter().map(|a| (a.ip, a.ttl)).collect(),
                    r.cnames.iter().map(|c| (c.name.as_str(), c.ttl)).collect(),
                    r.ns.iter().map(|c| (c.name.as_str(), c.ttl)).collect(),
                )
            })
            .collect();
        // time only the analyser calls (two clock reads per batch)
        let c0 = thread_cpu_ns();
        let t0 = Instant::now();
        let results: Vec<_> = batch
            .iter()
            .zip(&prepared)
            .map(|(r, (addrs, cnames, ns))| {
                let obs = Observation {
                    qname: &r.name,
                    addrs,
                    cnames,
                    ns,
                    ns_addrs: &r.ns_addrs,
                };
                analyzer.observe(&obs, r.t)
            })
            .collect();
        spent += t0.elapsed();
        if let (Some(c0), Some(c1)) = (c0, thread_cpu_ns()) {
            cpu_spent += c1.saturating_sub(c0);
        }
        for (r, a) in batch.iter().zip(results) {
            rep.records += 1;
            let name = r.name.clone();
            let label = r.label.clone().unwrap_or_else(|| "unlabelled".into());
            let ls = rep.labels.entry(label.clone()).or_default();
            ls.lookups += 1;
            let st = doms.entry((label.clone(), name.clone())).or_default();
            st.lookups += 1;
            let expect_move = label == "parking_move";
            let ours = match &a.finding {
                Some(f) if expect_move => f.kind == FindingKind::ParkingMove,
                Some(f) if label == "ioc" => matches!(
                    f.kind,
                    FindingKind::IocIp | FindingKind::IocAsn | FindingKind::IocDomain
                ),
                Some(f) => matches!(f.kind, FindingKind::FastFlux | FindingKind::DoubleFlux),
                None => false,
            };
            let holz = a.holz_score > 0.0;
            if ours {
                ls.detector.flagged_lookups += 1;
                st.ours_first.get_or_insert(st.lookups);
            }
            if holz {
                ls.holz.flagged_lookups += 1;
                st.holz_first.get_or_insert(st.lookups);
            }
            if let Some(f) = &a.finding {
                st.any = true;
                *ls.kinds.entry(f.kind.as_str().into()).or_default() += 1;
            }
            st.parked |= a.parked;
            if let (Some(w), true) = (detections.as_deref_mut(), a.finding.is_some() || holz) {
                let line = serde_json::json!({"t": r.t, "name": name, "label": label, "finding": a.finding, "holz_score": a.holz_score, "features": a.features});
                serde_json::to_writer(&mut *w, &line)?;
                w.write_all(b"\n")?;
            }
        }
    }
    for ((label, _), st) in doms {
        let ls = rep.labels.get_mut(&label).unwrap();
        ls.domains += 1;
        ls.positive = is_positive(&label);
        for (first, d) in [
            (st.ours_first, &mut ls.detector),
            (st.holz_first, &mut ls.holz),
        ] {
            if let Some(k) = first {
                d.flagged_domains += 1;
                for j in 0..3 {
                    if k as usize <= j + 1 {
                        d.within[j] += 1;
                    }
                }
            }
        }
        ls.any_finding_domains += st.any as u64;
        ls.parked_domains += st.parked as u64;
    }
    if cpu_ok && rep.records > 0 {
        rep.mean_observe_cpu_us = Some(cpu_spent as f64 / 1e3 / rep.records as f64);
    }
    rep.mean_observe_us = if rep.records > 0 {
        spent.as_secs_f64() * 1e6 / rep.records as f64
    } else {
        0.0
    };
    Ok(rep)
}

impl EvalReport {
    /// Plain-text table: recall within 1/2/3 lookups on positive labels, flagged domains on
    /// negative labels, for this detector and for the Holz baseline.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "records {}  bad lines {}  mean observe {:.2} µs wall{}\n",
            self.records,
            self.bad_lines,
            self.mean_observe_us,
            self.mean_observe_cpu_us
                .map(|c| format!(", {c:.2} µs CPU"))
                .unwrap_or_default()
        ));
        if let Some(e) = &self.first_error {
            s.push_str(&format!("first bad line: {e}\n"));
        }
        s.push_str("label            domains  | detector: rec@1  rec@2  rec@3  flagged | Holz: rec@1  rec@2  rec@3  flagged | parked  any-finding\n");
        for (l, st) in &self.labels {
            let d = st.domains.max(1) as f64;
            let row = |x: &DetectorStats| {
                if st.positive {
                    format!(
                        "{:5.3}  {:5.3}  {:5.3}  {:7}",
                        x.within[0] as f64 / d,
                        x.within[1] as f64 / d,
                        x.within[2] as f64 / d,
                        x.flagged_domains
                    )
                } else {
                    format!("    -      -      -  {:7}", x.flagged_domains)
                }
            };
            s.push_str(&format!(
                "{:<16} {:7}  |          {} |      {} | {:6}  {:6}\n",
                l,
                st.domains,
                row(&st.detector),
                row(&st.holz),
                st.parked_domains,
                st.any_finding_domains
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{generate, GenConfig};
    use crate::geo::fixtures::{asn_db, country_db, write_tmp};
    use crate::ioc::IocSet;
    use crate::IntelConfig;

    fn fixture_cfg() -> IntelConfig {
        const CCS: [&str; 8] = ["DE", "FR", "US", "BR", "IN", "RU", "CN", "VN"];
        let mut nets: Vec<(String, u32, &str, &str)> = Vec::new();
        for n in 1..=120u32 {
            nets.push((
                format!("240.{n}.0.0/16"),
                65000 + n,
                "Example Broadband",
                CCS[n as usize % 8],
            ));
        }
        for n in 1..=30u32 {
            nets.push((
                format!("241.{n}.0.0/16"),
                [16509, 15169, 14061][n as usize % 3],
                "Cloud Hosting",
                CCS[n as usize % 3],
            ));
        }
        for n in 1..=10u32 {
            nets.push((
                format!("243.{n}.0.0/16"),
                66000 + n,
                "Example University",
                CCS[n as usize % 8],
            ));
        }
        nets.push(("242.0.0.0/16".into(), 53667, "FranTech Solutions", "US"));
        let asn: Vec<(&str, u32, &str)> = nets
            .iter()
            .map(|(n, a, o, _)| (n.as_str(), *a, *o))
            .collect();
        let cc: Vec<(&str, &str)> = nets.iter().map(|(n, _, _, c)| (n.as_str(), *c)).collect();
        IntelConfig {
            asn_mmdb: Some(write_tmp("eval-asn.mmdb", &asn_db(&asn))),
            country_mmdb: Some(write_tmp("eval-cc.mmdb", &country_db(&cc, false))),
            ..Default::default()
        }
    }

    #[test]
    fn generate_and_replay_end_to_end() {
        let cfg = fixture_cfg();
        let a = AnswerAnalyzer::new(&cfg).unwrap();
        let g = GenConfig {
            flux: 40,
            double_flux: 20,
            cdn: 40,
            round_robin: 20,
            volunteer_pool: 6,
            parked: 20,
            benign: 60,
            ioc: 8,
            ..Default::default()
        };
        let mut buf = Vec::new();
        let sum = generate(a.geo(), a.lists(), &g, &mut buf).unwrap();
        assert!(sum.records > 500);
        // same seed, same stream
        let mut buf2 = Vec::new();
        generate(a.geo(), a.lists(), &g, &mut buf2).unwrap();
        assert_eq!(buf, buf2);
        buf.extend_from_slice(b"{not json}\n\n");
        let iocs = IocSet::parse(&sum.ioc_list, "gen-iocs.txt").unwrap();
        let a = AnswerAnalyzer::with_iocs(&cfg, iocs).unwrap();
        let mut det = Vec::new();
        let rep = replay(&a, &buf[..], Some(&mut det)).unwrap();
        assert_eq!(rep.bad_lines, 1);
        let l = |k: &str| {
            rep.labels
                .get(k)
                .unwrap_or_else(|| panic!("label {k} missing: {:?}", rep.labels.keys()))
        };
        let flux = l("flux");
        assert!(
            flux.detector.within[2] as f64 >= 0.9 * flux.domains as f64,
            "{}",
            rep.to_text()
        );
        assert_eq!(
            l("double_flux").detector.within[2],
            l("double_flux").domains,
            "{}",
            rep.to_text()
        );
        assert_eq!(l("cdn").detector.flagged_domains, 0, "{}", rep.to_text());
        assert_eq!(
            l("round_robin").detector.flagged_domains,
            0,
            "{}",
            rep.to_text()
        );
        // benign sites may sit in AS53667 (listed by ASN, a real cost of ASN-wide IOCs); no flux
        assert_eq!(l("benign").detector.flagged_domains, 0, "{}", rep.to_text());
        assert!(
            l("benign").kinds.keys().all(|k| k == "ioc_asn"),
            "{:?}",
            l("benign").kinds
        );
        assert_eq!(l("parked").any_finding_domains, 0, "{}", rep.to_text());
        assert_eq!(l("parked").parked_domains, l("parked").domains);
        assert_eq!(
            l("ioc").detector.within[0],
            l("ioc").domains,
            "{}",
            rep.to_text()
        );
        assert_eq!(
            l("parking_move").detector.flagged_domains,
            l("parking_move").domains,
            "{}",
            rep.to_text()
        );
        assert!(!det.is_empty());
        let text = rep.to_text();
        assert!(text.contains("flux") && text.contains("Holz"));
    }
}
