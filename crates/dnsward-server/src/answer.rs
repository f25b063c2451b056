//! Turns an upstream response into the [`AnswerView`] the answer checks read, straight from the
//! wire (no record objects): addresses, CNAME chain, NS names and the NS hosts' addresses.

use crate::wire::{self, be16, be32, read_name_text, skip_name};
use dnsward_policy::{AnswerView, Policy, Verdict};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The answer stage on an upstream response: runs the answer checks when they could still change
/// `name_verdict` (`record`: update their history). An unparsable answer keeps the name verdict.
pub fn judge_answer_wire(
    policy: &Policy,
    name: &str,
    name_verdict: Verdict,
    wire: &[u8],
    record: bool,
) -> Verdict {
    if !policy.wants_answer(&name_verdict) {
        return name_verdict;
    }
    match answer_view(name, wire) {
        Some(view) => policy.judge_answer(&name_verdict, &view, record),
        None => name_verdict,
    }
}

fn addr(rtype: u16, rdata: &[u8]) -> Option<IpAddr> {
    match (rtype, rdata.len()) {
        (wire::TYPE_A, 4) => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(rdata).ok()?))),
        (wire::TYPE_AAAA, 16) => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(rdata).ok()?,
        ))),
        _ => None,
    }
}

/// Extracts what the answer checks need. None if the packet is malformed.
pub fn answer_view(qname: &str, pkt: &[u8]) -> Option<AnswerView> {
    let qd = be16(pkt, 4)?;
    let an = be16(pkt, 6)? as usize;
    let ns = be16(pkt, 8)? as usize;
    let ar = be16(pkt, 10)? as usize;
    let mut pos = wire::HEADER_LEN;
    for _ in 0..qd {
        pos = skip_name(pkt, pos)? + 4;
    }
    let mut view = AnswerView {
        qname: qname.to_string(),
        ..Default::default()
    };
    // Additional-section addresses, kept with their owner's offset until NS names are known.
    let mut extra_addrs: Vec<(usize, IpAddr)> = Vec::new();
    for i in 0..an + ns + ar {
        let owner = pos;
        let after = skip_name(pkt, pos)?;
        let rtype = be16(pkt, after)?;
        let ttl = be32(pkt, after + 4)?;
        let rdlen = be16(pkt, after + 8)? as usize;
        let rdata_at = after + 10;
        let rdata = pkt.get(rdata_at..rdata_at + rdlen)?;
        let ttl = if ttl & 0x8000_0000 != 0 { 0 } else { ttl };
        let section_answer = i < an;
        let section_authority = i >= an && i < an + ns;
        match rtype {
            wire::TYPE_A | wire::TYPE_AAAA if section_answer => {
                if let Some(ip) = addr(rtype, rdata) {
                    view.addrs.push((ip, ttl));
                }
            }
            wire::TYPE_A | wire::TYPE_AAAA if !section_authority => {
                if let Some(ip) = addr(rtype, rdata) {
                    extra_addrs.push((owner, ip));
                }
            }
            wire::TYPE_CNAME if section_answer => {
                view.cnames.push((read_name_text(pkt, rdata_at)?, ttl))
            }
            wire::TYPE_NS if section_answer || section_authority => {
                view.ns.push((read_name_text(pkt, rdata_at)?, ttl))
            }
            _ => {}
        }
        pos = rdata_at + rdlen;
    }
    if !view.ns.is_empty() {
        for (owner, ip) in extra_addrs {
            let name = read_name_text(pkt, owner)?;
            if view.ns.iter().any(|(n, _)| *n == name) {
                view.ns_addrs.push(ip);
            }
        }
    }
    Some(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use std::str::FromStr;

    fn rec(name: &str, ttl: u32, data: RData) -> Record {
        Record::from_rdata(Name::from_str(name).unwrap(), ttl, data)
    }

    #[test]
    fn extracts_addresses_cnames_and_ns_with_glue() {
        let mut m = Message::response(7, hickory_proto::op::OpCode::Query);
        m.add_query(Query::query(
            Name::from_str("www.example.com.").unwrap(),
            RecordType::A,
        ));
        m.add_answer(rec(
            "www.example.com.",
            300,
            RData::CNAME(CNAME(Name::from_str("edge.cdn.example.net.").unwrap())),
        ));
        m.add_answer(rec(
            "edge.cdn.example.net.",
            20,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        m.add_answer(rec(
            "edge.cdn.example.net.",
            20,
            RData::AAAA(AAAA::from_str("2001:db8::1").unwrap()),
        ));
        m.add_authority(rec(
            "example.com.",
            3600,
            RData::NS(NS(Name::from_str("ns1.example.com.").unwrap())),
        ));
        m.add_additional(rec(
            "ns1.example.com.",
            3600,
            RData::A(A::new(198, 51, 100, 53)),
        ));
        m.add_additional(rec(
            "other.example.org.",
            3600,
            RData::A(A::new(203, 0, 113, 9)),
        ));
        let wire = m.to_vec().unwrap();
        let v = answer_view("www.example.com", &wire).unwrap();
        assert_eq!(v.cnames, vec![("edge.cdn.example.net".to_string(), 300)]);
        assert_eq!(v.addrs.len(), 2);
        assert_eq!(v.addrs[0], ("192.0.2.1".parse().unwrap(), 20));
        assert_eq!(v.ns, vec![("ns1.example.com".to_string(), 3600)]);
        assert_eq!(v.ns_addrs, vec!["198.51.100.53".parse::<IpAddr>().unwrap()]);
        // Every truncation fails cleanly or yields a view; never panics.
        for n in 0..wire.len() {
            let _ = answer_view("www.example.com", &wire[..n]);
        }
    }
}
