//! Turns an upstream response into the [`AnswerView`] the answer checks read.

use dnsward_policy::AnswerView;
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use std::collections::HashSet;

fn name_text(name: &hickory_proto::rr::Name) -> String {
    let mut s = name.to_ascii();
    if s.len() > 1 && s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

/// Extracts addresses, CNAME chain, NS names and NS addresses. None if the packet does not parse.
pub fn answer_view(qname: &str, wire: &[u8]) -> Option<AnswerView> {
    let msg = Message::from_vec(wire).ok()?;
    let mut view = AnswerView {
        qname: qname.to_string(),
        ..Default::default()
    };
    for rec in &msg.answers {
        match &rec.data {
            RData::A(a) => view.addrs.push((a.0.into(), rec.ttl)),
            RData::AAAA(a) => view.addrs.push((a.0.into(), rec.ttl)),
            RData::CNAME(c) => view.cnames.push((name_text(&c.0), rec.ttl)),
            RData::NS(ns) => view.ns.push((name_text(&ns.0), rec.ttl)),
            _ => {}
        }
    }
    for rec in &msg.authorities {
        if let RData::NS(ns) = &rec.data {
            view.ns.push((name_text(&ns.0), rec.ttl));
        }
    }
    let ns_names: HashSet<&str> = view.ns.iter().map(|(n, _)| n.as_str()).collect();
    let mut ns_addrs = Vec::new();
    for rec in &msg.additionals {
        if matches!(rec.record_type(), RecordType::A | RecordType::AAAA)
            && ns_names.contains(name_text(&rec.name).as_str())
        {
            match &rec.data {
                RData::A(a) => ns_addrs.push(a.0.into()),
                RData::AAAA(a) => ns_addrs.push(a.0.into()),
                _ => {}
            }
        }
    }
    view.ns_addrs = ns_addrs;
    Some(view)
}
