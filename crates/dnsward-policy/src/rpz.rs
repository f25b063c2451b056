//! Response Policy Zones (RPZ, draft-vixie-dnsop-dns-rpz): the zone files DNS firewall feeds
//! are published in (abuse.ch URLhaus and ThreatFox, Spamhaus, SURBL, and the ones BIND,
//! Unbound, Knot and PowerDNS read). This module only reads the records of such a file and
//! says what each one asks for; the deny list takes the name triggers
//! ([`crate::DomainSet`]) and the answer checks take the response-IP triggers (`dnsward-intel`).
//!
//! The zone-file subset read: one record a line (`owner [ttl] [class] type rdata`), an owner left
//! out (a line starting with white space) repeats the previous one, `;` comments, `$ORIGIN` and
//! `$TTL` directives, and parentheses spanning lines (the SOA record).

use ipnet::IpNet;
use std::net::{Ipv4Addr, Ipv6Addr};

/// One record of the zone, its owner made relative to the zone's origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpzRecord {
    pub line: u32,
    /// Lowercase, no trailing dot, relative to the origin (`*.evil.example`, `32.1.2.0.192.rpz-ip`).
    pub owner: String,
    /// Upper case (`CNAME`, `A`).
    pub rtype: String,
    /// The rest of the line.
    pub rdata: String,
}

/// What a record's owner name triggers on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The query name: this name, or (`below`) only names under it (`*.name`).
    Qname { name: String, below: bool },
    /// An address in the answer (`rpz-ip`).
    ResponseIp(IpNet),
    /// A name server name (`rpz-nsdname`), a name server address (`rpz-nsip`) or the client's
    /// address (`rpz-client-ip`): not used by dnsward.
    Other(&'static str),
}

/// What a record asks the resolver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpzAction {
    /// `CNAME .`
    Nxdomain,
    /// `CNAME *.`
    Nodata,
    /// `CNAME rpz-passthru.`: answer normally (an exception).
    Passthru,
    /// `CNAME rpz-drop.`
    Drop,
    /// `CNAME rpz-tcp-only.`
    TcpOnly,
    /// Any other record: local data to answer with (`A 10.0.0.1`, `CNAME walled.garden.`).
    LocalData,
}

/// True when `text` is a zone file, not a one-name-per-line list: its first line that is not a
/// comment is a `$ORIGIN` / `$TTL` directive or a record (`owner [ttl] [class] SOA|NS|CNAME|A|
/// AAAA ...`; some feeds ship only the records, for inclusion in a zone of one's own).
pub fn is_zone(text: &str) -> bool {
    for raw in text.lines().take(200) {
        let line = strip_comment(raw).trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let up = line.to_ascii_uppercase();
        if up.starts_with("$ORIGIN") || up.starts_with("$TTL") {
            return true;
        }
        // The type is the 2nd to 4th field (after the owner, an optional TTL and class); a
        // hosts-file line ("0.0.0.0 name") has no such field.
        return up
            .split_whitespace()
            .skip(1)
            .take(3)
            .any(|f| matches!(f, "SOA" | "NS" | "CNAME" | "A" | "AAAA" | "TXT"));
    }
    false
}

fn strip_comment(line: &str) -> &str {
    // `;` cannot occur inside the records an RPZ uses (no TXT strings are interpreted here).
    line.split(';').next().unwrap_or("")
}

const CLASSES: [&str; 4] = ["IN", "CH", "HS", "ANY"];

/// Reads the records of a zone file. Bad lines are returned as `(line, message)`; the rest
/// still counts.
pub fn records(text: &str) -> (Vec<RpzRecord>, Vec<(u32, String)>) {
    let mut out = Vec::new();
    let errors = visit(text, |r| out.push(r));
    (out, errors)
}

/// [`records`] one record at a time, so a feed of millions of rules is never held as records
/// all at once. Returns the bad lines.
pub fn visit(text: &str, mut each: impl FnMut(RpzRecord)) -> Vec<(u32, String)> {
    let mut errors = Vec::new();
    let mut origin = String::new();
    let mut last_owner: Option<String> = None;
    let mut in_parens = false;
    for (i, raw) in text.lines().enumerate() {
        let line_no = (i + 1) as u32;
        let line = strip_comment(raw);
        if in_parens {
            in_parens = !line.contains(')');
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        if line.contains('(') && !line.contains(')') {
            in_parens = true;
        }
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.eq_ignore_ascii_case("$ORIGIN") {
            match fields.next() {
                Some(o) => origin = o.trim_end_matches('.').to_ascii_lowercase(),
                None => errors.push((line_no, "$ORIGIN without a name".into())),
            }
            continue;
        }
        if first.starts_with('$') {
            continue; // $TTL, $INCLUDE (not followed)
        }
        let starts_blank = raw.starts_with(' ') || raw.starts_with('\t');
        let mut rest: Vec<&str> = line.split_whitespace().collect();
        let owner = if starts_blank {
            match &last_owner {
                Some(o) => o.clone(),
                None => {
                    errors.push((line_no, "record without an owner name".into()));
                    continue;
                }
            }
        } else {
            let o = rest.remove(0);
            match relative_owner(o, &origin) {
                Ok(o) => o,
                Err(e) => {
                    errors.push((line_no, e));
                    continue;
                }
            }
        };
        last_owner = Some(owner.clone());
        // [ttl] [class] or [class] [ttl], then the type.
        let mut k = 0;
        while k < rest.len() && k < 2 {
            let f = rest[k];
            if f.bytes().all(|b| b.is_ascii_digit())
                || CLASSES.iter().any(|c| f.eq_ignore_ascii_case(c))
            {
                k += 1;
            } else {
                break;
            }
        }
        let Some(rtype) = rest.get(k) else {
            errors.push((line_no, format!("no record type in {:?}", line.trim())));
            continue;
        };
        each(RpzRecord {
            line: line_no,
            owner,
            rtype: rtype.to_ascii_uppercase(),
            rdata: rest[k + 1..].join(" "),
        });
    }
    errors
}

/// The owner relative to `origin`: `@` is the apex (empty), a relative name stays as it is, an
/// absolute one must lie under the origin.
fn relative_owner(owner: &str, origin: &str) -> Result<String, String> {
    if owner == "@" {
        return Ok(String::new());
    }
    let o = owner.to_ascii_lowercase();
    let Some(abs) = o.strip_suffix('.') else {
        return Ok(o);
    };
    if origin.is_empty() {
        return Ok(abs.to_string());
    }
    if abs == origin {
        return Ok(String::new());
    }
    abs.strip_suffix(origin)
        .and_then(|r| r.strip_suffix('.'))
        .map(str::to_string)
        .ok_or_else(|| format!("owner {owner} is outside the zone's origin {origin}"))
}

/// What the owner name of a record (relative to the origin) triggers on. The apex (SOA, NS) is
/// `Ok(None)`.
pub fn trigger(owner: &str) -> Result<Option<Trigger>, String> {
    if owner.is_empty() {
        return Ok(None);
    }
    for (suffix, kind) in [
        ("rpz-nsdname", "rpz-nsdname"),
        ("rpz-nsip", "rpz-nsip"),
        ("rpz-client-ip", "rpz-client-ip"),
    ] {
        if owner == suffix || owner.ends_with(&format!(".{suffix}")) {
            return Ok(Some(Trigger::Other(kind)));
        }
    }
    if let Some(ip) = owner.strip_suffix(".rpz-ip") {
        return ip_trigger(ip).map(|n| Some(Trigger::ResponseIp(n)));
    }
    let (name, below) = match owner.strip_prefix("*.") {
        Some(n) => (n, true),
        None => (owner, false),
    };
    if name.is_empty() || name.contains('*') {
        return Err(format!("bad trigger name {owner:?}"));
    }
    Ok(Some(Trigger::Qname {
        name: name.to_string(),
        below,
    }))
}

/// `32.1.2.0.192` → 192.0.2.1/32; `48.zz.1.db8.2001` → 2001:db8:1::/48.
fn ip_trigger(s: &str) -> Result<IpNet, String> {
    let bad = || format!("bad rpz-ip trigger {s:?}");
    let mut parts = s.split('.');
    let prefix: u8 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let labels: Vec<&str> = parts.collect();
    let net = if labels.len() == 4 && labels.iter().all(|l| l.parse::<u8>().is_ok()) {
        let o: Vec<u8> = labels
            .iter()
            .rev()
            .map(|l| l.parse().unwrap_or(0))
            .collect();
        IpNet::new(Ipv4Addr::new(o[0], o[1], o[2], o[3]).into(), prefix).map_err(|_| bad())?
    } else {
        // Reversed 16-bit groups, `zz` standing for the `::` run.
        let groups: Vec<&str> = labels.iter().rev().copied().collect();
        let text = groups
            .iter()
            .map(|g| if *g == "zz" { "" } else { g })
            .collect::<Vec<_>>()
            .join(":");
        let text = if groups.first() == Some(&"zz") {
            format!(":{text}")
        } else if groups.last() == Some(&"zz") {
            format!("{text}:")
        } else {
            text
        };
        let ip: Ipv6Addr = text.parse().map_err(|_| bad())?;
        IpNet::new(ip.into(), prefix).map_err(|_| bad())?
    };
    if net.network() != net.addr() {
        return Err(format!("{} has host bits set beyond /{prefix}", net.addr()));
    }
    Ok(net)
}

/// What a record asks for.
pub fn action(rtype: &str, rdata: &str) -> RpzAction {
    if rtype != "CNAME" {
        return RpzAction::LocalData;
    }
    match rdata.trim().to_ascii_lowercase().as_str() {
        "." => RpzAction::Nxdomain,
        "*." => RpzAction::Nodata,
        "rpz-passthru." => RpzAction::Passthru,
        "rpz-drop." => RpzAction::Drop,
        "rpz-tcp-only." => RpzAction::TcpOnly,
        _ => RpzAction::LocalData,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$TTL 300\n\
        @ SOA localhost. root.localhost. ( 2026120101 ; serial\n  3600 600 86400 60 )\n\
        \tNS localhost.\n\
        ; URLhaus style\n\
        evil.example CNAME .\n\
        *.evil.example CNAME .\n\
        empty.example 60 IN CNAME *.\n\
        ok.evil.example CNAME rpz-passthru.\n\
        garden.example A 10.0.0.1\n\
        32.1.2.0.192.rpz-ip CNAME .\n\
        48.zz.1.db8.2001.rpz-ip CNAME .\n\
        ns.bad.example.rpz-nsdname CNAME .\n\
        abs.example.rpz.test. CNAME rpz-drop.\n";

    #[test]
    fn reads_records_and_triggers() {
        assert!(is_zone(ZONE));
        assert!(!is_zone("# list\nevil.example\n"));
        assert!(!is_zone("0.0.0.0 a.example b.example\n"), "hosts file");
        // Records only, as some feeds ship them for inclusion.
        assert!(is_zone("; feed\nevil.example CNAME .\n"));
        assert!(is_zone("evil.example 300 IN CNAME .\n"));
        let mut z = String::from("$ORIGIN rpz.test.\n");
        z.push_str(ZONE);
        let (recs, errs) = records(&z);
        assert!(errs.is_empty(), "{errs:?}");
        let got: Vec<(String, Option<Trigger>, RpzAction)> = recs
            .iter()
            .map(|r| {
                (
                    r.owner.clone(),
                    trigger(&r.owner).unwrap(),
                    action(&r.rtype, &r.rdata),
                )
            })
            .collect();
        let q = |n: &str, below| {
            Some(Trigger::Qname {
                name: n.into(),
                below,
            })
        };
        assert_eq!(
            got[0],
            ("".into(), None, RpzAction::LocalData),
            "SOA at the apex"
        );
        assert_eq!(got[1].1, None, "NS of the apex (owner left out)");
        assert_eq!(
            got[2],
            (
                "evil.example".into(),
                q("evil.example", false),
                RpzAction::Nxdomain
            )
        );
        assert_eq!(got[3].1, q("evil.example", true));
        assert_eq!(got[4].2, RpzAction::Nodata);
        assert_eq!(got[5].2, RpzAction::Passthru);
        assert_eq!(got[6].2, RpzAction::LocalData);
        assert_eq!(
            got[7].1,
            Some(Trigger::ResponseIp("192.0.2.1/32".parse().unwrap()))
        );
        assert_eq!(
            got[8].1,
            Some(Trigger::ResponseIp("2001:db8:1::/48".parse().unwrap()))
        );
        assert_eq!(got[9].1, Some(Trigger::Other("rpz-nsdname")));
        assert_eq!(
            got[10],
            (
                "abs.example".into(),
                q("abs.example", false),
                RpzAction::Drop
            )
        );
        assert_eq!(recs[2].line, 7);
    }

    #[test]
    fn bad_records_name_their_line() {
        let (recs, errs) =
            records("$ORIGIN rpz.test.\nother.zone. CNAME .\n  CNAME .\nx.example\n");
        assert!(recs.is_empty(), "{recs:?}");
        let lines: Vec<u32> = errs.iter().map(|e| e.0).collect();
        assert_eq!(lines, [2, 3, 4], "{errs:?}");
        for bad in [
            "33.1.2.0.192",
            "24.1.2.0.192",
            "x.1.2.0.192",
            "64.zz.zz.db8",
        ] {
            assert!(ip_trigger(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ip_trigger("128.1.zz.db8.2001").unwrap(),
            "2001:db8::1/128".parse::<IpNet>().unwrap()
        );
        assert!(trigger("a.*.b").is_err());
    }
}
