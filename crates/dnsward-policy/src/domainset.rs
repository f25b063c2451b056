//! Domain lists: allowlists and denylists in the formats operators actually have.
//!
//! One file may mix formats; each line is one of
//! - `example.com` — the name and every name below it (blocky / unbound `local-zone` semantics);
//! - `.example.com` — the same, written as a suffix rule;
//! - `*.example.com` — only names below it, not `example.com` itself;
//! - `0.0.0.0 ads.example.com tracker.example.com` — hosts-file format: exactly those names;
//! - `||example.com^` — adblock style: the name and everything below it (`$` options are
//!   ignored when they only narrow to `document`/`all`; other modifiers make the line unsupported);
//! - `@@||example.com^` — adblock exception: excluded from this list;
//! - `#` and `!` start comments, blank lines are ignored.
//!
//! A file that is a Response Policy Zone ([`crate::rpz`]: `$ORIGIN` / `$TTL` or a record first) is read
//! as one instead: `name CNAME .` blocks exactly `name`, `*.name CNAME .` the names below it,
//! `CNAME rpz-passthru.` makes the same trigger an exception. Every other RPZ action (NODATA,
//! drop, local data) blocks too, answered per `[actions] list`; response-IP triggers are read by
//! the answer checks (`[intel] ioc_files`); each file says in one warning what it did not use.
//!
//! Lookups walk the suffixes of the query name, one hash probe per label, no allocation.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A list file could not be used at all (a bad line only produces a [`ListFormatError`] warning).
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("cannot read list file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("list file {path} is not UTF-8 text (line {line})")]
    NotText { path: PathBuf, line: usize },
}

/// One line that could not be understood; the rest of the file still loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFormatError {
    pub source: Arc<str>,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for ListFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.message)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Origin {
    /// Index into `sources` plus one: non-zero, so an `Option<Origin>` takes 8 bytes and an
    /// [`Entry`]'s six slots fit in 48 (a million-rule list holds a million entries).
    source: std::num::NonZeroU32,
    line: u32,
}

impl Origin {
    fn new(source_idx: u32, line: u32) -> Origin {
        Origin {
            source: std::num::NonZeroU32::MIN.saturating_add(source_idx),
            line,
        }
    }

    fn source_idx(self) -> usize {
        self.source.get() as usize - 1
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// This exact name (hosts-file entries).
    exact: Option<Origin>,
    /// This name and everything below it.
    subtree: Option<Origin>,
    /// Only names strictly below it (`*.`).
    below: Option<Origin>,
    /// Adblock `@@` exception: this name and below are not in the set.
    exception: Option<Origin>,
    /// RPZ `rpz-passthru` on this exact name / only on the names below it.
    pass_exact: Option<Origin>,
    pass_below: Option<Origin>,
}

/// Which rule of which list matched a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMatch {
    /// `path:line` of the rule.
    pub source: Arc<str>,
    /// The rule in canonical form: `example.com` (exact), `||example.com^`, `*.example.com`.
    pub rule: Arc<str>,
}

/// A set of domain rules loaded from one or more list files (or added through the API).
#[derive(Clone, Debug, Default)]
pub struct DomainSet {
    entries: HashMap<Box<str>, Entry>,
    sources: Vec<Arc<str>>,
    rules: usize,
    /// An allowlist: in a Response Policy Zone only `rpz-passthru` rules count, as entries.
    allowlist: bool,
}

impl DomainSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// A set used as an allowlist. Plain lists read the same; in a Response Policy Zone the
    /// `rpz-passthru` rules are the entries (an allowlist zone is written that way) and its
    /// blocking rules are left out, with a warning.
    pub fn allowlist() -> Self {
        DomainSet {
            allowlist: true,
            ..Self::default()
        }
    }

    /// Number of rules loaded (exceptions included).
    pub fn len(&self) -> usize {
        self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// Loads a list file and merges it into the set. Bad lines are returned as warnings.
    pub fn load_file(&mut self, path: &Path) -> Result<Vec<ListFormatError>, ListError> {
        let bytes = std::fs::read(path).map_err(|source| ListError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
                return Err(ListError::NotText {
                    path: path.to_path_buf(),
                    line,
                });
            }
        };
        Ok(self.load_str(&path.display().to_string(), &text))
    }

    /// Parses list text (any mix of the supported formats) under the given source name.
    pub fn load_str(&mut self, source: &str, text: &str) -> Vec<ListFormatError> {
        let source_name: Arc<str> = Arc::from(source);
        let source_idx = self.sources.len() as u32;
        self.sources.push(source_name.clone());
        if crate::rpz::is_zone(text) {
            return self.load_rpz(&source_name, source_idx, text);
        }
        let mut warnings = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = (i + 1) as u32;
            let origin = Origin::new(source_idx, line_no);
            if let Err(message) = self.add_line(raw, origin) {
                warnings.push(ListFormatError {
                    source: source_name.clone(),
                    line: line_no,
                    message,
                });
            }
        }
        warnings
    }

    /// The name triggers of a Response Policy Zone; what the set cannot use is summed up in one
    /// warning per kind (a feed has thousands of lines).
    fn load_rpz(&mut self, source: &Arc<str>, source_idx: u32, text: &str) -> Vec<ListFormatError> {
        use crate::rpz::{self, RpzAction, Trigger};
        let warn = |line: u32, message: String| ListFormatError {
            source: source.clone(),
            line,
            message,
        };
        let mut warnings: Vec<ListFormatError> = Vec::new();
        // (first line, count) of what is not used as written.
        let mut other_action: Option<(u32, usize)> = None;
        let mut blocking_in_allowlist: Option<(u32, usize)> = None;
        let mut not_qname: Option<(u32, usize, &'static str)> = None;
        let errors = rpz::visit(text, |r| {
            let origin = Origin::new(source_idx, r.line);
            let trigger = match rpz::trigger(&r.owner) {
                Ok(Some(t)) => t,
                Ok(None) => return, // the apex: SOA, NS
                Err(e) => {
                    warnings.push(warn(r.line, e));
                    return;
                }
            };
            let (name, below) = match trigger {
                Trigger::Qname { name, below } => (name, below),
                Trigger::ResponseIp(_) => {
                    not_qname.get_or_insert((r.line, 0, "rpz-ip")).1 += 1;
                    return;
                }
                Trigger::Other(kind) => {
                    not_qname.get_or_insert((r.line, 0, kind)).1 += 1;
                    return;
                }
            };
            let name = match check_name(&name) {
                Ok(n) => n,
                Err(e) => {
                    warnings.push(warn(r.line, e));
                    return;
                }
            };
            let action = rpz::action(&r.rtype, &r.rdata);
            if self.allowlist {
                if action != RpzAction::Passthru {
                    blocking_in_allowlist.get_or_insert((r.line, 0)).1 += 1;
                    return;
                }
                let slot: fn(&mut Entry) -> &mut Option<Origin> = if below {
                    |e| &mut e.below
                } else {
                    |e| &mut e.exact
                };
                let _ = self.insert(&name, origin, slot);
                return;
            }
            if !matches!(action, RpzAction::Nxdomain | RpzAction::Passthru) {
                other_action.get_or_insert((r.line, 0)).1 += 1;
            }
            let slot: fn(&mut Entry) -> &mut Option<Origin> = match (action, below) {
                (RpzAction::Passthru, false) => |e| &mut e.pass_exact,
                (RpzAction::Passthru, true) => |e| &mut e.pass_below,
                (_, false) => |e| &mut e.exact,
                (_, true) => |e| &mut e.below,
            };
            let _ = self.insert(&name, origin, slot);
        });
        warnings.splice(0..0, errors.into_iter().map(|(l, m)| warn(l, m)));
        if let Some((line, n)) = other_action {
            warnings.push(warn(
                line,
                format!("{n} RPZ rules ask for NODATA, drop, TCP-only or local data (first here); dnsward blocks those names with [actions] list"),
            ));
        }
        if let Some((line, n)) = blocking_in_allowlist {
            warnings.push(warn(
                line,
                format!("{n} RPZ rules that block are left out of this allowlist (first here); an allowlist zone's entries are its rpz-passthru rules"),
            ));
        }
        if let Some((line, n, kind)) = not_qname {
            warnings.push(warn(
                line,
                format!("{n} RPZ rules trigger on something other than the query name ({kind} first, here); the deny list uses only query-name triggers; list this file in [intel] ioc_files too to use its rpz-ip rules"),
            ));
        }
        warnings
    }

    /// Adds a single rule (e.g. from the admin API). Returns an error message for a bad rule.
    pub fn add_rule(&mut self, source: &str, rule: &str) -> Result<(), String> {
        let idx = match self.sources.iter().position(|s| &**s == source) {
            Some(i) => i as u32,
            None => {
                self.sources.push(Arc::from(source));
                (self.sources.len() - 1) as u32
            }
        };
        self.add_line(rule, Origin::new(idx, 0))
    }

    fn add_line(&mut self, raw: &str, origin: Origin) -> Result<(), String> {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            return Ok(());
        }
        // Trailing comments in hosts files and plain lists.
        let line = match line.find(" #").or_else(|| line.find("\t#")) {
            Some(pos) => line[..pos].trim_end(),
            None => line,
        };
        if let Some(rest) = line.strip_prefix("@@") {
            let name = parse_adblock(rest)?;
            return self.insert(&name, origin, |e| &mut e.exception);
        }
        if line.starts_with("||") {
            let name = parse_adblock(line)?;
            return self.insert(&name, origin, |e| &mut e.subtree);
        }
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.parse::<std::net::IpAddr>().is_ok() {
            // hosts-file format: address followed by one or more exact names.
            let mut any = false;
            for name in fields {
                if name.starts_with('#') {
                    break;
                }
                any = true;
                if is_hosts_boilerplate(name) {
                    continue;
                }
                let name = check_name(name)?;
                self.insert(&name, origin, |e| &mut e.exact)?;
            }
            return if any {
                Ok(())
            } else {
                Err("hosts-file line without a name".into())
            };
        }
        if fields.next().is_some() {
            return Err(format!(
                "unsupported rule {line:?}: expected one name per line"
            ));
        }
        if let Some(rest) = first.strip_prefix("*.") {
            let name = check_name(rest)?;
            return self.insert(&name, origin, |e| &mut e.below);
        }
        let name = check_name(first.strip_prefix('.').unwrap_or(first))?;
        self.insert(&name, origin, |e| &mut e.subtree)
    }

    fn insert(
        &mut self,
        name: &str,
        origin: Origin,
        slot: impl FnOnce(&mut Entry) -> &mut Option<Origin>,
    ) -> Result<(), String> {
        let entry = self.entries.entry(name.into()).or_default();
        let slot = slot(entry);
        if slot.is_none() {
            self.rules += 1;
            *slot = Some(origin);
        }
        Ok(())
    }

    /// Removes every rule for exactly this name (as written in any accepted format).
    pub fn remove_rule(&mut self, rule: &str) -> bool {
        let line = rule.trim();
        let name = if line.starts_with("||") {
            parse_adblock(line).ok()
        } else {
            let n = line
                .strip_prefix("*.")
                .or_else(|| line.strip_prefix('.'))
                .unwrap_or(line);
            check_name(n).ok()
        };
        let Some(name) = name else { return false };
        match self.entries.remove(name.as_str()) {
            Some(e) => {
                self.rules -= [
                    e.exact,
                    e.subtree,
                    e.below,
                    e.exception,
                    e.pass_exact,
                    e.pass_below,
                ]
                .iter()
                .filter(|o| o.is_some())
                .count();
                true
            }
            None => false,
        }
    }

    /// Finds the rule matching `name` (lowercase, no trailing dot), if any.
    pub fn lookup(&self, name: &str) -> Option<RuleMatch> {
        if self.entries.is_empty() {
            return None;
        }
        let mut suffix = name;
        let mut at_name = true;
        loop {
            if let Some(entry) = self.entries.get(suffix) {
                let passthru = if at_name {
                    entry.pass_exact
                } else {
                    entry.pass_below
                };
                if entry.exception.is_some() || passthru.is_some() {
                    return None;
                }
                let hit = if at_name {
                    entry
                        .exact
                        .map(|o| (o, suffix.to_string()))
                        .or(entry.subtree.map(|o| (o, format!("||{suffix}^"))))
                } else {
                    entry
                        .subtree
                        .map(|o| (o, format!("||{suffix}^")))
                        .or(entry.below.map(|o| (o, format!("*.{suffix}"))))
                };
                if let Some((origin, rule)) = hit {
                    return Some(self.rule_match(origin, rule));
                }
            }
            match suffix.find('.') {
                Some(dot) => {
                    suffix = &suffix[dot + 1..];
                    at_name = false;
                }
                None => return None,
            }
        }
    }

    fn rule_match(&self, origin: Origin, rule: String) -> RuleMatch {
        let file = &self.sources[origin.source_idx()];
        let source = if origin.line == 0 {
            file.clone()
        } else {
            Arc::from(format!("{file}:{}", origin.line))
        };
        RuleMatch {
            source,
            rule: Arc::from(rule),
        }
    }
}

/// Hosts files carry entries for the machine itself; they are not rules.
fn is_hosts_boilerplate(name: &str) -> bool {
    matches!(
        name,
        "localhost"
            | "localhost.localdomain"
            | "local"
            | "broadcasthost"
            | "ip6-localhost"
            | "ip6-loopback"
            | "ip6-localnet"
            | "ip6-mcastprefix"
            | "ip6-allnodes"
            | "ip6-allrouters"
            | "ip6-allhosts"
            | "0.0.0.0"
    )
}

fn parse_adblock(rule: &str) -> Result<String, String> {
    let body = rule
        .strip_prefix("||")
        .ok_or_else(|| format!("unsupported adblock rule {rule:?}: only ||domain^ rules"))?;
    let (body, options) = match body.split_once('$') {
        Some((b, o)) => (b, Some(o)),
        None => (body, None),
    };
    if let Some(options) = options {
        // Only options that keep the rule meaning "the whole domain" are acceptable for DNS.
        for opt in options.split(',') {
            if !matches!(
                opt,
                "important" | "all" | "document" | "doc" | "third-party" | "3p"
            ) {
                return Err(format!("unsupported adblock option ${opt} in {rule:?}"));
            }
        }
    }
    let name = body.strip_suffix('^').unwrap_or(body);
    if name.contains('/') || name.contains('*') {
        return Err(format!(
            "unsupported adblock rule {rule:?}: paths and wildcards inside names"
        ));
    }
    check_name(name)
}

/// Validates a domain name from a list: ASCII letters, digits, `-`, `_`, dots; lowercased.
fn check_name(name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > 253 {
        return Err(format!("name longer than 253 characters: {name:.40}..."));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad label in {name:?}: labels are 1-63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "bad character {c:?} in {name:?} (internationalised names must be punycode)"
            ));
        }
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> (DomainSet, Vec<ListFormatError>) {
        let mut s = DomainSet::new();
        let w = s.load_str("test.txt", text);
        (s, w)
    }

    #[test]
    fn plain_names_cover_subdomains() {
        let (s, w) = set("example.com\n");
        assert!(w.is_empty());
        let m = s.lookup("example.com").unwrap();
        assert_eq!(&*m.source, "test.txt:1");
        assert_eq!(&*m.rule, "||example.com^");
        assert!(s.lookup("a.b.example.com").is_some());
        assert!(s.lookup("notexample.com").is_none());
        assert!(s.lookup("com").is_none());
    }

    #[test]
    fn hosts_format_is_exact() {
        let (s, w) =
            set("# hosts\n127.0.0.1 localhost\n0.0.0.0 ads.example.com track.example.com # c\n");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            &*s.lookup("ads.example.com").unwrap().rule,
            "ads.example.com"
        );
        assert!(s.lookup("track.example.com").is_some());
        assert!(s.lookup("x.ads.example.com").is_none());
        assert!(s.lookup("example.com").is_none());
        assert!(s.lookup("localhost").is_none());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn wildcard_is_below_only() {
        let (s, _) = set("*.example.org\n");
        assert!(s.lookup("example.org").is_none());
        assert_eq!(&*s.lookup("a.example.org").unwrap().rule, "*.example.org");
    }

    #[test]
    fn adblock_rules_and_exceptions() {
        let (s, w) = set("! adblock\n||evil.net^\n||tracker.io^$important\n@@||ok.evil.net^\n||x.com/path\n||y.com^$script\n");
        assert!(s.lookup("evil.net").is_some());
        assert!(s.lookup("sub.evil.net").is_some());
        assert!(s.lookup("ok.evil.net").is_none());
        assert!(s.lookup("a.ok.evil.net").is_none());
        assert!(s.lookup("tracker.io").is_some());
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].line, 5);
        assert!(w[1].message.contains("$script"));
    }

    #[test]
    fn suffix_rule_and_trailing_dot_and_case() {
        let (s, w) = set(".Example.NET.\n");
        assert!(w.is_empty());
        assert!(s.lookup("www.example.net").is_some());
    }

    #[test]
    fn response_policy_zones_are_read_as_zones() {
        // The shape of the abuse.ch URLhaus / ThreatFox RPZ feeds, plus passthru and the actions
        // and triggers the deny list cannot use as written.
        let zone = "$TTL 30\n$ORIGIN rpz.urlhaus.abuse.ch.\n\
            @ SOA rpz.urlhaus.abuse.ch. hostmaster.abuse.ch. ( 2026120101 300 1800 604800 30 )\n\
            @ NS localhost.\n\
            evil.example CNAME . ; malware download\n\
            *.evil.example CNAME .\n\
            ok.evil.example CNAME rpz-passthru.\n\
            *.ok.evil.example CNAME rpz-passthru.\n\
            exact-only.example CNAME .\n\
            garden.example A 10.0.0.1\n\
            Upper.Example.rpz.urlhaus.abuse.ch. CNAME *.\n\
            32.1.2.0.192.rpz-ip CNAME .\n\
            bad..name CNAME .\n";
        let (s, w) = set(zone);
        let hit = |n: &str| {
            s.lookup(n)
                .map(|m| (m.source.to_string(), m.rule.to_string()))
        };
        assert_eq!(
            hit("evil.example"),
            Some(("test.txt:5".into(), "evil.example".into()))
        );
        assert_eq!(
            hit("a.b.evil.example"),
            Some(("test.txt:6".into(), "*.evil.example".into()))
        );
        assert_eq!(hit("ok.evil.example"), None, "passthru");
        assert_eq!(hit("x.ok.evil.example"), None, "passthru below");
        assert!(hit("exact-only.example").is_some());
        assert_eq!(hit("www.exact-only.example"), None, "RPZ names are exact");
        assert!(hit("garden.example").is_some() && hit("upper.example").is_some());
        assert_eq!(hit("rpz.urlhaus.abuse.ch"), None, "the apex is no trigger");
        let msgs: Vec<String> = w.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].starts_with("test.txt:13:"), "{msgs:?}");
        assert!(
            msgs[1].starts_with("test.txt:10: 2 RPZ rules ask for NODATA"),
            "{msgs:?}"
        );
        assert!(
            msgs[2].starts_with("test.txt:12: 1 RPZ rules trigger on something other"),
            "{msgs:?}"
        );
    }

    #[test]
    fn an_allowlist_zone_allows_its_passthru_names() {
        let zone = "$TTL 60\n@ SOA localhost. root.localhost. 1 3600 600 86400 60\n\
            partner.example CNAME rpz-passthru.\n*.cdn.partner.example CNAME rpz-passthru.\n\
            evil.example CNAME .\n";
        let mut s = DomainSet::allowlist();
        let w = s.load_str("allow.rpz", zone);
        assert_eq!(
            s.lookup("partner.example").unwrap().source.as_ref(),
            "allow.rpz:3"
        );
        assert!(
            s.lookup("www.partner.example").is_none(),
            "RPZ names are exact"
        );
        assert!(s.lookup("a.cdn.partner.example").is_some());
        assert!(
            s.lookup("evil.example").is_none(),
            "blocking rules are left out"
        );
        assert_eq!(w.len(), 1);
        assert!(
            w[0].to_string()
                .starts_with("allow.rpz:5: 1 RPZ rules that block"),
            "{}",
            w[0]
        );
        // A plain list reads the same in either role.
        let mut s = DomainSet::allowlist();
        s.load_str("allow.txt", "partner.example\n");
        assert!(s.lookup("www.partner.example").is_some());
    }

    #[test]
    fn bad_lines_are_warnings_naming_the_line() {
        let (s, w) = set("good.com\nbad name here\nb@d.com\n\n");
        assert!(s.lookup("good.com").is_some());
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].line, 2);
        assert_eq!(w[1].line, 3);
        assert!(w[1].to_string().starts_with("test.txt:3:"));
    }

    #[test]
    fn unreadable_and_binary_files_are_errors() {
        let mut s = DomainSet::new();
        let err = s.load_file(Path::new("/nonexistent/list.txt")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/list.txt"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin.txt");
        std::fs::write(&p, b"ok.com\n\xff\xfe\n").unwrap();
        let err = s.load_file(&p).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn api_rules_add_and_remove() {
        let mut s = DomainSet::new();
        s.add_rule("api", "blocked.example").unwrap();
        assert_eq!(&*s.lookup("blocked.example").unwrap().source, "api");
        assert!(s.add_rule("api", "not a name").is_err());
        assert!(s.remove_rule("blocked.example"));
        assert!(s.lookup("blocked.example").is_none());
        assert!(s.is_empty());
    }
}
