//! Response-IP policy lists: `type value context...` lines with type `ip`, `cidr`, `asn` or
//! `domain` (the format of `seed-iocs.txt`), or a bare `value context...` whose type is read
//! from its shape (an address, a CIDR, `AS<number>`, a dotted name), so the plain one-per-line
//! blocklists that feeds publish (abuse.ch Feodo Tracker IPs, domain lists) load as they are.
//! `#` starts a comment; blank lines are ignored. A Response Policy Zone (RPZ) file is read as
//! one: its response-IP triggers (`32.1.2.0.192.rpz-ip CNAME .`) become addresses and ranges;
//! its query-name triggers are the deny list's (`[lists] deny`), and a note says so.
use crate::error::IntelError;
use crate::net::{ip_key, parse_cidr, suffix_lookup, FxMap, RangeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Where an indicator came from, for the operator-facing detail string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IocSource {
    pub file: Arc<str>,
    pub line: usize,
    pub context: Box<str>,
    /// From a list on trial (`[intel] ioc_trial_files`): its hits are logged, never enforced.
    pub trial: bool,
}

impl std::fmt::Display for IocSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if !self.context.is_empty() {
            write!(f, " \"{}\"", self.context)?;
        }
        Ok(())
    }
}

/// One loaded IOC list, for the operator: a feed that stopped updating goes stale (addresses
/// are reassigned to innocent hosts once an operation moves on).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IocListInfo {
    /// The file name, as findings name it.
    pub file: String,
    pub entries: usize,
    /// When the file was last modified before it was loaded (None for parsed text).
    pub modified_unix: Option<u64>,
    /// A list on trial: its hits are logged, never enforced.
    pub trial: bool,
}

#[derive(Debug, Default)]
pub struct IocSet {
    sources: Vec<IocSource>,
    lists: Vec<IocListInfo>,
    /// What a list held that the set does not use (RPZ triggers of other kinds), for the log.
    notes: Vec<String>,
    ips: FxMap<u128, u32>,
    cidrs: Vec<(u128, u128, u32)>,
    cidr_set: RangeSet<u32>,
    asns: FxMap<u32, u32>,
    domains: FxMap<Box<str>, u32>,
}

impl IocSet {
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<IocSet, IntelError> {
        let mut set = IocSet::default();
        for p in paths {
            let p = p.as_ref();
            let text = std::fs::read_to_string(p).map_err(|source| IntelError::Io {
                path: p.to_path_buf(),
                source,
            })?;
            let label = p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string());
            let modified_unix = std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            set.add_text(&text, &label)?;
            if let Some(l) = set.lists.last_mut() {
                l.modified_unix = modified_unix;
            }
        }
        set.finish();
        Ok(set)
    }

    /// [`IocSet::load`] for lists on trial: every indicator's hits are logged, never enforced.
    pub fn load_trial(paths: &[impl AsRef<Path>]) -> Result<IocSet, IntelError> {
        let mut set = Self::load(paths)?;
        set.mark_trial();
        Ok(set)
    }

    /// Marks every indicator and list of this set as on trial.
    pub fn mark_trial(&mut self) {
        for s in &mut self.sources {
            s.trial = true;
        }
        for l in &mut self.lists {
            l.trial = true;
        }
    }

    /// Parse one list; `label` names it in errors and findings.
    pub fn parse(text: &str, label: &str) -> Result<IocSet, IntelError> {
        let mut set = IocSet::default();
        set.add_text(text, label)?;
        set.finish();
        Ok(set)
    }

    fn add_text(&mut self, text: &str, label: &str) -> Result<(), IntelError> {
        let file: Arc<str> = label.into();
        let before = self.sources.len();
        if dnsward_policy::rpz::is_zone(text) {
            self.add_rpz(text, &file)?;
        } else {
            self.add_lines(text, &file)?;
        }
        self.lists.push(IocListInfo {
            file: label.to_string(),
            entries: self.sources.len() - before,
            modified_unix: None,
            trial: false,
        });
        Ok(())
    }

    /// `type value context` lines, or bare values.
    fn add_lines(&mut self, text: &str, file: &Arc<str>) -> Result<(), IntelError> {
        let label: &str = file;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let err = |msg: String| IntelError::Parse {
                path: label.to_string(),
                line,
                msg,
            };
            let (first, rest) = l
                .split_once(char::is_whitespace)
                .map(|(a, b)| (a, b.trim()))
                .unwrap_or((l, ""));
            let (kind, value, context) = match bare_kind(first) {
                Some(kind) => (kind.to_string(), first, rest),
                None => {
                    let (value, context) = rest
                        .split_once(char::is_whitespace)
                        .map(|(a, b)| (a, b.trim()))
                        .unwrap_or((rest, ""));
                    (first.to_ascii_lowercase(), value, context)
                }
            };
            if value.is_empty() {
                return Err(err(format!(
                    "expected `type value [context]` (type ip, cidr, asn or domain) or a bare address, CIDR, AS<number> or dotted name, got {l:?}"
                )));
            }
            let idx = self.sources.len() as u32;
            match kind.as_str() {
                "ip" => {
                    let ip: IpAddr = value
                        .parse()
                        .map_err(|_| err(format!("bad IP address {value:?}")))?;
                    self.ips.entry(ip_key(ip)).or_insert(idx);
                }
                "cidr" | "net" | "prefix" => {
                    let (s, e) =
                        parse_cidr(value).ok_or_else(|| err(format!("bad CIDR {value:?}")))?;
                    self.cidrs.push((s, e, idx));
                }
                "asn" | "as" => {
                    let v = value.trim_start_matches("AS").trim_start_matches("as");
                    let n: u32 = v.parse().map_err(|_| err(format!("bad ASN {value:?}")))?;
                    self.asns.entry(n).or_insert(idx);
                }
                "domain" | "name" | "host" => {
                    let d = value.trim_end_matches('.').to_ascii_lowercase();
                    if !is_domain(&d) {
                        return Err(err(format!("bad domain {value:?}")));
                    }
                    self.domains.entry(d.into()).or_insert(idx);
                }
                other => {
                    return Err(err(format!(
                        "unknown indicator type {other:?} (expected ip, cidr, asn or domain)"
                    )))
                }
            }
            self.sources.push(IocSource {
                file: file.clone(),
                line,
                context: context.into(),
                trial: false,
            });
        }
        Ok(())
    }

    /// The response-IP triggers of a Response Policy Zone.
    fn add_rpz(&mut self, text: &str, file: &Arc<str>) -> Result<(), IntelError> {
        use dnsward_policy::rpz::{self, RpzAction, Trigger};
        let parse_err = |line: u32, msg: String| IntelError::Parse {
            path: file.to_string(),
            line: line as usize,
            msg,
        };
        let (mut used, mut names, mut passthru, mut other) = (0usize, 0usize, 0usize, 0usize);
        // The first bad record (an IOC list fails as a whole); records are read one at a time.
        let mut first_err: Option<(u32, String)> = None;
        let errors = rpz::visit(text, |r| {
            if first_err.is_some() {
                return;
            }
            let net = match rpz::trigger(&r.owner) {
                Ok(Some(Trigger::ResponseIp(net))) => net,
                Ok(Some(Trigger::Qname { .. })) => {
                    names += 1;
                    return;
                }
                Ok(Some(Trigger::Other(_))) => {
                    other += 1;
                    return;
                }
                Ok(None) => return,
                Err(msg) => {
                    first_err = Some((r.line, msg));
                    return;
                }
            };
            if rpz::action(&r.rtype, &r.rdata) == RpzAction::Passthru {
                passthru += 1;
                return;
            }
            let (s, e) = (ip_key(net.network()), ip_key(net.broadcast()));
            let idx = self.sources.len() as u32;
            if s == e {
                self.ips.entry(s).or_insert(idx);
            } else {
                self.cidrs.push((s, e, idx));
            }
            self.sources.push(IocSource {
                file: file.clone(),
                line: r.line as usize,
                context: format!("rpz-ip {} {}", r.rtype, r.rdata).into(),
                trial: false,
            });
            used += 1;
        });
        let first = errors
            .into_iter()
            .chain(first_err)
            .min_by_key(|(line, _)| *line);
        if let Some((line, msg)) = first {
            return Err(parse_err(line, msg));
        }
        if names + passthru + other > 0 {
            self.notes.push(format!(
                "ioc list {file} is a response policy zone: {used} rpz-ip rules used; {names} query-name rules are for [lists] deny, {passthru} rpz-ip passthru and {other} rpz-nsdname / rpz-nsip / rpz-client-ip rules are not used"
            ));
        }
        Ok(())
    }

    /// Notes on what the lists held that the set does not use.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The lists loaded, in order.
    pub fn lists(&self) -> &[IocListInfo] {
        &self.lists
    }

    fn finish(&mut self) {
        self.cidr_set = RangeSet::from_vec(self.cidrs.clone());
    }

    pub fn merge(&mut self, other: IocSet) {
        let off = self.sources.len() as u32;
        self.sources.extend(other.sources);
        for (k, v) in other.ips {
            self.ips.entry(k).or_insert(v + off);
        }
        for (k, v) in other.asns {
            self.asns.entry(k).or_insert(v + off);
        }
        for (k, v) in other.domains {
            self.domains.entry(k).or_insert(v + off);
        }
        self.cidrs
            .extend(other.cidrs.into_iter().map(|(s, e, v)| (s, e, v + off)));
        self.lists.extend(other.lists);
        self.notes.extend(other.notes);
        self.finish();
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Exact IP first, then the narrowest CIDR.
    #[inline]
    pub fn ip(&self, key: u128) -> Option<(&IocSource, bool)> {
        if self.ips.is_empty() && self.cidrs.is_empty() {
            return None;
        }
        if let Some(&i) = self.ips.get(&key) {
            return Some((&self.sources[i as usize], false));
        }
        self.cidr_set
            .get(key)
            .map(|&i| (&self.sources[i as usize], true))
    }

    #[inline]
    pub fn asn(&self, asn: u32) -> Option<&IocSource> {
        self.asns.get(&asn).map(|&i| &self.sources[i as usize])
    }

    pub fn has_asns(&self) -> bool {
        !self.asns.is_empty()
    }

    /// The name or any parent domain is listed. Returns the listed name.
    #[inline]
    pub fn domain<'a>(&'a self, name: &'a str) -> Option<(&'a str, &'a IocSource)> {
        if self.domains.is_empty() {
            return None;
        }
        suffix_lookup(&self.domains, name).map(|(d, &i)| (d, &self.sources[i as usize]))
    }
}

fn is_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|lb| !lb.is_empty() && lb.len() <= 63)
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// The indicator type of a line that starts with its value (no type word), from the value's
/// shape. A domain needs a dot, so a misspelt type word (`doamin x.com`) is still an error.
fn bare_kind(token: &str) -> Option<&'static str> {
    if token.parse::<IpAddr>().is_ok() {
        return Some("ip");
    }
    if token.contains('/') {
        return Some("cidr"); // a bad one is reported as a bad CIDR
    }
    if let Some(n) = token
        .strip_prefix("AS")
        .or_else(|| token.strip_prefix("as"))
    {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            return Some("asn");
        }
    }
    let d = token.trim_end_matches('.').to_ascii_lowercase();
    (d.contains('.') && is_domain(&d)).then_some("domain")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "# comment\n\nip 198.51.100.7 c2 server\ncidr 203.0.113.0/24 bulletproof range\nasn AS64666 bad hoster\nasn 64667\ndomain Evil.Example. phishing\nip 2001:db8::66\n";

    #[test]
    fn parses_fixture() {
        let s = IocSet::parse(FIXTURE, "fixture.txt").unwrap();
        assert_eq!(s.len(), 6);
        let k = |x: &str| ip_key(x.parse().unwrap());
        let (src, cidr) = s.ip(k("198.51.100.7")).unwrap();
        assert!(!cidr);
        assert_eq!(src.to_string(), "fixture.txt:3 \"c2 server\"");
        assert!(s.ip(k("203.0.113.99")).unwrap().1);
        assert!(s.ip(k("2001:db8::66")).is_some());
        assert!(s.ip(k("198.51.100.8")).is_none());
        assert_eq!(s.asn(64666).unwrap().line, 5);
        assert!(s.asn(64667).is_some());
        assert_eq!(s.domain("www.evil.example").unwrap().0, "evil.example");
        assert!(s.domain("notevil.example").is_none());
    }

    #[test]
    fn bare_values_take_their_type_from_their_shape() {
        // The abuse.ch Feodo Tracker IP blocklist layout, a domain feed, and a mixed list.
        let text = "# Feodo Tracker style\n51.75.172.103\n203.0.113.0/24 bad range\nAS64666 hoster\n\
                    Evil.Example. phishing kit\n2001:db8::66\nip 198.51.100.7 typed lines still work\n";
        let s = IocSet::parse(text, "feed.txt").unwrap();
        assert_eq!(s.len(), 6);
        let k = |x: &str| ip_key(x.parse().unwrap());
        assert_eq!(s.ip(k("51.75.172.103")).unwrap().0.line, 2);
        assert!(s.ip(k("203.0.113.7")).unwrap().1);
        assert_eq!(s.asn(64666).unwrap().context.as_ref(), "hoster");
        let (d, src) = s.domain("cdn.evil.example").unwrap();
        assert_eq!((d, src.context.as_ref()), ("evil.example", "phishing kit"));
        assert!(s.ip(k("2001:db8::66")).is_some());
        assert_eq!(s.ip(k("198.51.100.7")).unwrap().0.line, 7);
        // A misspelt type word, a bare single label or a bad bare CIDR is still an error.
        for bad in ["doamin evil.com", "localhost", "10.0.0.0/33", "AS", "ASX1"] {
            let e = IocSet::parse(bad, "x.txt").unwrap_err();
            assert!(e.to_string().starts_with("x.txt:1:"), "{bad}: {e}");
        }
    }

    #[test]
    fn response_policy_zones_give_their_response_ip_triggers() {
        let zone =
            "$TTL 30\n@ SOA localhost. root.localhost. 1 300 1800 604800 30\n@ NS localhost.\n\
            32.7.100.51.198.rpz-ip CNAME .\n24.0.113.0.203.rpz-ip CNAME rpz-drop.\n\
            48.zz.66.db8.2001.rpz-ip CNAME .\n32.1.0.0.10.rpz-ip CNAME rpz-passthru.\n\
            evil.example CNAME .\nns.x.rpz-nsdname CNAME .\n";
        let s = IocSet::parse(zone, "feed.rpz").unwrap();
        let k = |x: &str| ip_key(x.parse().unwrap());
        let (src, cidr) = s.ip(k("198.51.100.7")).unwrap();
        assert_eq!(
            (src.to_string(), cidr),
            ("feed.rpz:4 \"rpz-ip CNAME .\"".into(), false)
        );
        assert!(s.ip(k("203.0.113.200")).unwrap().1);
        assert!(s.ip(k("2001:db8:66::1")).is_some());
        assert!(
            s.ip(k("10.0.0.1")).is_none(),
            "passthru is not an indicator"
        );
        assert!(
            s.domain("evil.example").is_none(),
            "name triggers are the deny list's"
        );
        assert_eq!(s.lists()[0].entries, 3);
        assert_eq!(s.notes().len(), 1);
        assert!(s.notes()[0].contains("3 rpz-ip rules used; 1 query-name rules are for [lists] deny, 1 rpz-ip passthru and 1 rpz-nsdname"), "{:?}", s.notes());
        for bad in [
            "$TTL 30\n33.1.2.0.192.rpz-ip CNAME .\n",
            "$ORIGIN rpz.test.\nother.zone. CNAME .\n",
        ] {
            let e = IocSet::parse(bad, "bad.rpz").unwrap_err();
            assert!(e.to_string().starts_with("bad.rpz:2:"), "{e}");
        }
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (bad, line) in [
            ("ip 1.2.3.4\nip 300.1.1.1\n", 2),
            ("\n\n\nbogus 1.2.3.4\n", 4),
            ("cidr 1.2.3.0/40", 1),
            ("asn ASX", 1),
            ("ip", 1),
            ("domain a..b", 1),
        ] {
            let e = IocSet::parse(bad, "x.txt").unwrap_err();
            match &e {
                IntelError::Parse { path, line: l, .. } => {
                    assert_eq!(path, "x.txt");
                    assert_eq!(*l, line, "{e}");
                }
                _ => panic!("{e}"),
            }
            assert!(e.to_string().starts_with(&format!("x.txt:{line}:")), "{e}");
        }
    }

    #[test]
    fn reads_shared_seed_list_if_present() {
        let p = Path::new("/work/shared/data/intel/seed-iocs.txt");
        if !p.exists() {
            return;
        }
        let s = IocSet::load(&[p]).unwrap();
        assert!(s.asn(53667).is_some());
        assert!(s.ip(ip_key("205.185.117.44".parse().unwrap())).is_some());
        assert!(s.domain("jamb2.monster").is_some());
    }
}
