//! DNS wire format on the hot path: parse a query without allocating, patch a cached response,
//! synthesise block and error answers, and walk a response to find its TTLs and OPT record.
//!
//! Full parsing with hickory-proto happens only where the records' meaning is needed (answer
//! checks); everything a cache hit needs is done here on bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const HEADER_LEN: usize = 12;
pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_IXFR: u16 = 251;
pub const TYPE_AXFR: u16 = 252;
pub const TYPE_ANY: u16 = 255;
pub const TYPE_HINFO: u16 = 13;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;
/// Extended RCODE BADVERS (16): upper 8 bits = 1 in the OPT TTL field, lower 4 bits = 0.
pub const EXT_RCODE_BADVERS_HIGH: u8 = 1;

/// UDP payload size dnsward advertises (the DNS flag day 2020 value: avoids IP fragmentation).
pub const OUR_UDP_PAYLOAD: u16 = 1232;

const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const FLAG_AD: u16 = 0x0020;
const FLAG_CD: u16 = 0x0010;

/// EDNS(0) information from a query's OPT record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdnsInfo {
    /// The requestor's UDP payload size (values below 512 are treated as 512).
    pub udp_payload: u16,
    pub dnssec_ok: bool,
    pub version: u8,
}

/// A query parsed in place. The name is kept both as the client sent it (for echoing its case)
/// and lowercased (for cache keys and policy).
#[derive(Clone, Debug)]
pub struct Query {
    pub id: u16,
    pub opcode: u8,
    pub rd: bool,
    pub cd: bool,
    pub ad: bool,
    pub qtype: u16,
    pub qclass: u16,
    /// The client's question section bytes: name (uncompressed) + type + class.
    pub question: QuestionBuf,
    pub edns: Option<EdnsInfo>,
}

/// Question bytes on the stack: a wire name is at most 255 bytes, plus type and class.
#[derive(Clone)]
pub struct QuestionBuf {
    bytes: [u8; 259],
    len: u16,
}

impl std::fmt::Debug for QuestionBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuestionBuf({:?})", self.as_bytes())
    }
}

impl PartialEq for QuestionBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for QuestionBuf {}

impl QuestionBuf {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
    /// The wire name (with its terminating zero), as the client wrote it.
    pub fn name_wire(&self) -> &[u8] {
        &self.bytes[..self.len as usize - 4]
    }
}

impl Query {
    /// Cache key: lowercased wire name + type + class + DO/CD bits. Written into `out`.
    pub fn cache_key<'a>(&self, out: &'a mut [u8; 260]) -> &'a [u8] {
        let q = self.question.as_bytes();
        for (o, b) in out.iter_mut().zip(q.iter()) {
            *o = b.to_ascii_lowercase();
        }
        // type and class bytes were lowercased too: restore them.
        let n = q.len();
        out[n - 4..n].copy_from_slice(&q[n - 4..n]);
        let do_bit = self.edns.map(|e| e.dnssec_ok).unwrap_or(false);
        out[n] = (do_bit as u8) | ((self.cd as u8) << 1);
        &out[..n + 1]
    }

    /// The query name as text, lowercase, without the trailing dot (`.` for the root).
    /// Bytes outside letters, digits, `-` and `_` are written as `\DDD`, so no two wire names
    /// map to the same text.
    pub fn name_text(&self) -> String {
        name_to_text(self.question.name_wire())
    }

    pub fn dnssec_ok(&self) -> bool {
        self.edns.map(|e| e.dnssec_ok).unwrap_or(false)
    }

    /// Largest response the client accepts over UDP.
    pub fn max_udp_response(&self) -> usize {
        self.edns
            .map(|e| e.udp_payload.max(512) as usize)
            .unwrap_or(512)
    }
}

/// Why a packet is not a query we answer normally.
// `Respond` carries the echoed question inline (as `Query` does): parsing must not allocate,
// even for a flood of malformed packets, so it is not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// Too short for a header, or a response: never answered (no reflection of garbage).
    Drop,
    /// Answer with this RCODE (header echoed, question echoed when it parsed).
    Respond {
        id: u16,
        opcode: u8,
        rd: bool,
        rcode: u8,
        question: Option<QuestionBuf>,
        edns: Option<EdnsInfo>,
        /// BADVERS must be signalled through the OPT record's extended RCODE.
        badvers: bool,
    },
}

pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Parses a query packet. Never panics, never allocates.
// The error is as large as the `Query` it replaces (both hold a question inline; see `QueryError`).
#[allow(clippy::result_large_err)]
pub fn parse_query(pkt: &[u8]) -> Result<Query, QueryError> {
    if pkt.len() < HEADER_LEN {
        return Err(QueryError::Drop);
    }
    let id = be16(pkt, 0).unwrap_or(0);
    let flags = be16(pkt, 2).unwrap_or(0);
    if flags & FLAG_QR != 0 {
        return Err(QueryError::Drop);
    }
    let opcode = ((flags >> 11) & 0xf) as u8;
    let rd = flags & FLAG_RD != 0;
    let qdcount = be16(pkt, 4).unwrap_or(0);
    let ancount = be16(pkt, 6).unwrap_or(0);
    let nscount = be16(pkt, 8).unwrap_or(0);
    let arcount = be16(pkt, 10).unwrap_or(0);
    let respond =
        |rcode: u8, question: Option<QuestionBuf>, edns: Option<EdnsInfo>| QueryError::Respond {
            id,
            opcode,
            rd,
            rcode,
            question,
            edns,
            badvers: false,
        };
    if opcode != 0 {
        return Err(respond(RCODE_NOTIMP, None, None));
    }
    if qdcount != 1 {
        return Err(respond(RCODE_FORMERR, None, None));
    }
    // Question name: uncompressed in a query (a pointer here is malformed).
    let mut pos = HEADER_LEN;
    let mut qbuf = QuestionBuf {
        bytes: [0; 259],
        len: 0,
    };
    let mut name_len = 0usize;
    loop {
        let Some(&len) = pkt.get(pos) else {
            return Err(respond(RCODE_FORMERR, None, None));
        };
        if len & 0xc0 != 0 {
            return Err(respond(RCODE_FORMERR, None, None));
        }
        let len = len as usize;
        if name_len + len + 1 > 255 || pos + 1 + len > pkt.len() {
            return Err(respond(RCODE_FORMERR, None, None));
        }
        qbuf.bytes[name_len..name_len + 1 + len].copy_from_slice(&pkt[pos..pos + 1 + len]);
        name_len += 1 + len;
        pos += 1 + len;
        if len == 0 {
            break;
        }
    }
    let (Some(qtype), Some(qclass)) = (be16(pkt, pos), be16(pkt, pos + 2)) else {
        return Err(respond(RCODE_FORMERR, None, None));
    };
    qbuf.bytes[name_len..name_len + 4].copy_from_slice(&pkt[pos..pos + 4]);
    qbuf.len = (name_len + 4) as u16;
    pos += 4;

    // Find the OPT record among the other sections (queries rarely carry any).
    let mut edns = None;
    let others = ancount as usize + nscount as usize + arcount as usize;
    for i in 0..others {
        let Some(after_name) = skip_name(pkt, pos) else {
            return Err(respond(RCODE_FORMERR, Some(qbuf), None));
        };
        let (Some(rtype), Some(rclass), Some(ttl), Some(rdlen)) = (
            be16(pkt, after_name),
            be16(pkt, after_name + 2),
            be32(pkt, after_name + 4),
            be16(pkt, after_name + 8),
        ) else {
            return Err(respond(RCODE_FORMERR, Some(qbuf), None));
        };
        let end = after_name + 10 + rdlen as usize;
        if end > pkt.len() {
            return Err(respond(RCODE_FORMERR, Some(qbuf), None));
        }
        if rtype == TYPE_OPT {
            let in_additional = i >= ancount as usize + nscount as usize;
            // RFC 6891: one OPT, owner is the root, additional section only.
            if edns.is_some() || !in_additional || after_name != pos + 1 {
                return Err(respond(RCODE_FORMERR, Some(qbuf), None));
            }
            let info = EdnsInfo {
                udp_payload: rclass.max(512),
                dnssec_ok: ttl & 0x8000 != 0,
                version: ((ttl >> 16) & 0xff) as u8,
            };
            edns = Some(info);
        }
        pos = end;
    }
    if let Some(e) = edns {
        if e.version != 0 {
            return Err(QueryError::Respond {
                id,
                opcode,
                rd,
                rcode: RCODE_NOERROR,
                question: Some(qbuf),
                edns: Some(e),
                badvers: true,
            });
        }
    }
    Ok(Query {
        id,
        opcode,
        rd,
        cd: flags & FLAG_CD != 0,
        ad: flags & FLAG_AD != 0,
        qtype,
        qclass,
        question: qbuf,
        edns,
    })
}

/// Skips a (possibly compressed) name starting at `pos`; returns the offset after it.
pub fn skip_name(pkt: &[u8], mut pos: usize) -> Option<usize> {
    let mut total = 0usize;
    loop {
        let len = *pkt.get(pos)?;
        match len & 0xc0 {
            0x00 => {
                pos += 1 + len as usize;
                total += 1 + len as usize;
                if total > 255 || pos > pkt.len() {
                    return None;
                }
                if len == 0 {
                    return Some(pos);
                }
            }
            0xc0 => {
                let target = (((len & 0x3f) as usize) << 8) | *pkt.get(pos + 1)? as usize;
                if target < HEADER_LEN || target >= pos {
                    // A pointer into the header is malformed, and dangerous to pass on: the
                    // header is rewritten (ID, flags, counts), which would change the name.
                    // Pointers point back at an earlier name (RFC 1035 §4.1.4); a forward
                    // or self pointer is what `read_name_text` refuses too.
                    return None;
                }
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
}

/// Reads a (possibly compressed) name into text, bounded against pointer loops.
pub fn read_name_text(pkt: &[u8], mut pos: usize) -> Option<String> {
    let mut wire = [0u8; 256];
    let mut wlen = 0usize;
    let mut jumps = 0;
    loop {
        let len = *pkt.get(pos)?;
        match len & 0xc0 {
            0x00 => {
                let l = len as usize;
                if wlen + 1 + l > 255 {
                    return None;
                }
                wire[wlen..wlen + 1 + l].copy_from_slice(pkt.get(pos..pos + 1 + l)?);
                wlen += 1 + l;
                if l == 0 {
                    return Some(name_to_text(&wire[..wlen]));
                }
                pos += 1 + l;
            }
            0xc0 => {
                jumps += 1;
                if jumps > 64 {
                    return None;
                }
                let target = (((len & 0x3f) as usize) << 8) | *pkt.get(pos + 1)? as usize;
                if target >= pos || target < HEADER_LEN {
                    // Pointers must point backwards, at a name: forward or self pointers are
                    // loops or junk, and the header holds no names.
                    return None;
                }
                pos = target;
            }
            _ => return None,
        }
    }
}

/// Wire name (uncompressed, terminated) to lowercase text without the trailing dot.
/// Bytes other than letters, digits, `-` and `_` are written as `\DDD`.
pub fn name_to_text(wire: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(wire.len());
    write_name_text(wire, &mut out);
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the text form of a wire name (as [`name_to_text`] gives it: lowercase, `\DDD` escapes,
/// `.` for the root) to `out` and returns its length. Written as bytes straight into the caller's
/// buffer: the query log encodes every logged name this way, with no `String` per query.
pub fn write_name_text(wire: &[u8], out: &mut Vec<u8>) -> usize {
    let start = out.len();
    // A plain name's text is never longer than its wire form.
    out.reserve(wire.len());
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        if out.len() > start {
            out.push(b'.');
        }
        let label = wire.get(pos + 1..pos + 1 + len as usize).unwrap_or(&[]);
        if label.iter().all(|&b| TEXT_BYTE[b as usize] != 0) {
            // Almost every label: one bounds check for the whole label, no branch per byte.
            out.extend(label.iter().map(|&b| TEXT_BYTE[b as usize]));
        } else {
            for &b in label {
                let c = b.to_ascii_lowercase();
                match TEXT_BYTE[b as usize] {
                    0 => out.extend_from_slice(&[
                        b'\\',
                        b'0' + c / 100,
                        b'0' + c / 10 % 10,
                        b'0' + c % 10,
                    ]),
                    t => out.push(t),
                }
            }
        }
        pos += 1 + len as usize;
    }
    if out.len() == start {
        out.push(b'.');
    }
    out.len() - start
}

/// A name byte as written in text: letters lowercased, digits, `-` and `_` as they are; 0 for
/// bytes written as a `\DDD` escape.
static TEXT_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = (b as u8).to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            t[b] = c;
        }
        b += 1;
    }
    t
};

/// Text name (`a.b.c`) to uncompressed wire form. Returns None for invalid names.
pub fn text_to_wire(name: &str) -> Option<Vec<u8>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    (out.len() <= 255).then_some(out)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends our OPT record (root owner, our payload size, DO echoed, optional extended RCODE).
pub fn push_opt(out: &mut Vec<u8>, dnssec_ok: bool, ext_rcode_high: u8) {
    out.push(0);
    put16(out, TYPE_OPT);
    put16(out, OUR_UDP_PAYLOAD);
    let ttl = ((ext_rcode_high as u32) << 24) | if dnssec_ok { 0x8000 } else { 0 };
    put32(out, ttl);
    put16(out, 0);
}

fn response_flags(opcode: u8, rd: bool, cd: bool, rcode: u8) -> u16 {
    let mut flags = FLAG_QR | FLAG_RA | ((opcode as u16 & 0xf) << 11) | (rcode as u16 & 0xf);
    if rd {
        flags |= FLAG_RD;
    }
    if cd {
        flags |= FLAG_CD;
    }
    flags
}

fn push_header(out: &mut Vec<u8>, id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) {
    put16(out, id);
    put16(out, flags);
    put16(out, qd);
    put16(out, an);
    put16(out, ns);
    put16(out, ar);
}

/// Builds the answer to a packet that [`parse_query`] rejected with `Respond`.
pub fn error_response(err: &QueryError, out: &mut Vec<u8>) -> bool {
    let QueryError::Respond {
        id,
        opcode,
        rd,
        rcode,
        question,
        edns,
        badvers,
    } = err
    else {
        return false;
    };
    out.clear();
    let qd = question.is_some() as u16;
    let ar = edns.is_some() as u16;
    push_header(
        out,
        *id,
        response_flags(*opcode, *rd, false, *rcode),
        qd,
        0,
        0,
        ar,
    );
    if let Some(q) = question {
        out.extend_from_slice(q.as_bytes());
    }
    if let Some(e) = edns {
        let high = if *badvers { EXT_RCODE_BADVERS_HIGH } else { 0 };
        push_opt(out, e.dnssec_ok, high);
    }
    true
}

/// A header-and-question-only answer with the given RCODE (REFUSED, SERVFAIL, NOTIMP...).
pub fn rcode_response(q: &Query, rcode: u8, out: &mut Vec<u8>) {
    out.clear();
    let ar = q.edns.is_some() as u16;
    push_header(out, q.id, response_flags(0, q.rd, q.cd, rcode), 1, 0, 0, ar);
    out.extend_from_slice(q.question.as_bytes());
    if let Some(e) = q.edns {
        push_opt(out, e.dnssec_ok, 0);
    }
}

/// What a synthesised block answer contains.
pub enum BlockAnswer<'a> {
    /// NXDOMAIN with a synthetic SOA (so clients cache the block for `ttl`).
    Nxdomain {
        ttl: u32,
    },
    /// A/AAAA with these addresses; other types (or no address of the type) get NODATA.
    Sinkhole {
        v4: &'a [Ipv4Addr],
        v6: &'a [Ipv6Addr],
        ttl: u32,
    },
    Refused,
}

/// EDNS option code of an Extended DNS Error (RFC 8914).
pub const OPT_EDE: u16 = 15;
/// Extended DNS Error info code 15, "Blocked": the operator's policy blocked the name.
pub const EDE_BLOCKED: u16 = 15;
/// Longest EDE text sent: it is for a person reading `dig` output, not a log record.
pub const EDE_MAX_TEXT: usize = 400;

/// Synthesises the answer for a blocked query. `ede`: an Extended DNS Error text (RFC 8914,
/// info code 15 "Blocked") for a client that sent EDNS; it is shortened (at a character
/// boundary) to [`EDE_MAX_TEXT`] bytes and to keep the answer within the client's UDP size, and
/// left out when even the code would not fit.
pub fn block_response(q: &Query, answer: BlockAnswer<'_>, ede: Option<&str>, out: &mut Vec<u8>) {
    let (rcode, ttl) = match answer {
        BlockAnswer::Refused => (RCODE_REFUSED, 0),
        BlockAnswer::Nxdomain { ttl } => (RCODE_NXDOMAIN, ttl),
        BlockAnswer::Sinkhole { ttl, .. } => (RCODE_NOERROR, ttl),
    };
    out.clear();
    push_header(out, q.id, response_flags(0, q.rd, q.cd, rcode), 1, 0, 0, 0);
    out.extend_from_slice(q.question.as_bytes());
    if let BlockAnswer::Refused = answer {
        push_block_opt(q, ede, out);
        return;
    }
    let mut answers = 0u16;
    if let BlockAnswer::Sinkhole { v4, v6, .. } = answer {
        if q.qclass == CLASS_IN && q.qtype == TYPE_A {
            for ip in v4 {
                push_rr_ptr(out, TYPE_A, ttl, &ip.octets());
                answers += 1;
            }
        } else if q.qclass == CLASS_IN && q.qtype == TYPE_AAAA {
            for ip in v6 {
                push_rr_ptr(out, TYPE_AAAA, ttl, &ip.octets());
                answers += 1;
            }
        }
    }
    let mut authority = 0u16;
    if answers == 0 {
        // NXDOMAIN or NODATA: SOA owned by the query name, minimum = the block TTL (RFC 2308).
        out.extend_from_slice(&[0xc0, 0x0c]);
        put16(out, TYPE_SOA);
        put16(out, CLASS_IN);
        put32(out, ttl);
        let rdata_at = out.len();
        put16(out, 0);
        for label in [
            &b"\x07dnsward\x07invalid\x00"[..],
            &b"\x07blocked\x07dnsward\x07invalid\x00"[..],
        ] {
            out.extend_from_slice(label);
        }
        for v in [1u32, 3600, 600, 86400, ttl] {
            put32(out, v);
        }
        let rdlen = (out.len() - rdata_at - 2) as u16;
        out[rdata_at..rdata_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        authority = 1;
    }
    out[6..8].copy_from_slice(&answers.to_be_bytes());
    out[8..10].copy_from_slice(&authority.to_be_bytes());
    push_block_opt(q, ede, out);
}

/// The OPT record of a block answer (when the query had EDNS), with the Extended DNS Error.
fn push_block_opt(q: &Query, ede: Option<&str>, out: &mut Vec<u8>) {
    let Some(e) = q.edns else { return };
    push_opt(out, e.dnssec_ok, 0);
    out[10..12].copy_from_slice(&1u16.to_be_bytes());
    // The OPT record's RDLENGTH: its last two bytes so far.
    let rdlen_at = out.len() - 2;
    let Some(text) = ede else { return };
    // Option code, length, info code: 6 bytes before the text.
    let Some(room) = q.max_udp_response().checked_sub(out.len() + 6) else {
        return;
    };
    let mut end = text.len().min(room).min(EDE_MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text.as_bytes()[..end];
    put16(out, OPT_EDE);
    put16(out, 2 + text.len() as u16);
    put16(out, EDE_BLOCKED);
    out.extend_from_slice(text);
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&(6 + text.len() as u16).to_be_bytes());
}

fn push_rr_ptr(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&[0xc0, 0x0c]);
    put16(out, rtype);
    put16(out, CLASS_IN);
    put32(out, ttl);
    put16(out, rdata.len() as u16);
    out.extend_from_slice(rdata);
}

/// RFC 8482: answer ANY with a single synthesised HINFO instead of everything we know.
pub fn any_hinfo_response(q: &Query, out: &mut Vec<u8>) {
    out.clear();
    push_header(
        out,
        q.id,
        response_flags(0, q.rd, q.cd, RCODE_NOERROR),
        1,
        1,
        0,
        0,
    );
    out.extend_from_slice(q.question.as_bytes());
    push_rr_ptr(out, TYPE_HINFO, 3600, b"\x07RFC8482\x00");
    if let Some(e) = q.edns {
        push_opt(out, e.dnssec_ok, 0);
        out[10..12].copy_from_slice(&1u16.to_be_bytes());
    }
}

/// The query dnsward sends upstream: fresh ID, RD, the client's question (lowercased), and our OPT.
pub fn upstream_query(
    id: u16,
    question_lower: &[u8],
    dnssec_ok: bool,
    cd: bool,
    out: &mut Vec<u8>,
) {
    out.clear();
    let mut flags = FLAG_RD;
    if cd {
        flags |= FLAG_CD;
    }
    push_header(out, id, flags, 1, 0, 0, 1);
    out.extend_from_slice(question_lower);
    push_opt(out, dnssec_ok, 0);
}

/// What the cache needs from an upstream response, found by one walk over its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseLayout {
    pub rcode: u8,
    pub truncated: bool,
    pub authoritative: bool,
    pub authentic_data: bool,
    /// Offset and value of every TTL field except the OPT record's.
    pub ttls: Vec<(u16, u32)>,
    /// Byte range of the OPT record, if any (to be cut out: dnsward writes its own).
    pub opt: Option<(usize, usize)>,
    pub ancount: u16,
    pub nscount: u16,
    /// The SOA in the authority section: (TTL, MINIMUM), for negative caching (RFC 2308).
    pub soa: Option<(u32, u32)>,
    /// Offset where the question section ends.
    pub question_end: usize,
}

/// Where the domain names sit in the RDATA of the types whose names a receiver decompresses
/// (RFC 1035 and RFC 3597 §4, and the later types hickory also reads with compression): bytes
/// before the first name, how many names follow one another, and whether the RDATA must end
/// right after them (`Some(n)`: n more bytes) or may go on (`None`).
fn rdata_names(rtype: u16) -> Option<(usize, usize, Option<usize>)> {
    Some(match rtype {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 39 => (0, 1, Some(0)),
        TYPE_SOA => (0, 2, Some(20)),
        // MINFO, RP
        14 | 17 => (0, 2, Some(0)),
        // MX, AFSDB, RT, KX
        15 | 18 | 21 | 36 => (2, 1, Some(0)),
        // PX
        26 => (2, 2, Some(0)),
        // SRV
        33 => (6, 1, Some(0)),
        // SVCB, HTTPS: priority, target name, then the parameters
        64 | 65 => (2, 1, None),
        // RRSIG: 18 bytes of fields, the signer's name, then the signature; NSEC: the next
        // owner name, then the type bitmap (RFC 4034; senders must not compress these names,
        // but a receiver that meets a pointer follows it)
        46 => (18, 1, None),
        47 => (0, 1, None),
        _ => return None,
    })
}

/// Checks the names in a record's RDATA (`rdata..end`) as the owner names are checked: well
/// formed, inside the RDATA, no pointer into the header. dnsward rewrites the header (ID, flags,
/// counts) before an answer goes to a client, so a pointer into it would change the name the
/// client reads, or make the answer unparseable (found by the fuzzer: a CNAME target `c0 00`).
fn rdata_names_ok(pkt: &[u8], rtype: u16, rdata: usize, end: usize) -> bool {
    let Some((before, names, after)) = rdata_names(rtype) else {
        return true;
    };
    let mut pos = rdata + before;
    for _ in 0..names {
        match skip_name(&pkt[..end], pos) {
            Some(next) => pos = next,
            None => return false,
        }
    }
    match after {
        Some(n) => pos + n == end,
        None => pos <= end,
    }
}

/// Checks the fixed layout of the RDATA types whose fields any receiver reads: TXT and SPF are
/// character-strings that fill the RDATA exactly (RFC 1035 §3.3.14), HINFO exactly two of them;
/// DS and DNSKEY carry 4 bytes of fields before the digest or key (RFC 4034), SSHFP 2 (RFC
/// 4255), TLSA 3 (RFC 6698), CAA a flags byte and a tag inside the RDATA (RFC 8659), NAPTR
/// three strings and a name that ends it (RFC 3403; the name checked as in `rdata_names_ok`). A record
/// that breaks its layout would reach the client unparseable and sit in the cache, so the
/// answer is malformed. Other types are passed as the upstream sent them.
fn rdata_layout_ok(pkt: &[u8], rtype: u16, rdata: usize, end: usize) -> bool {
    let rd = &pkt[rdata..end];
    // The number of character-strings that fill `rd` exactly, or None when one overruns.
    let strings = |rd: &[u8]| {
        let (mut at, mut n) = (0usize, 0usize);
        while at < rd.len() {
            at += 1 + rd[at] as usize;
            n += 1;
        }
        (at == rd.len()).then_some(n)
    };
    match rtype {
        // TXT, SPF
        16 | 99 => strings(rd).is_some(),
        // HINFO
        13 => strings(rd) == Some(2),
        // DS, DNSKEY
        43 | 48 => rd.len() >= 4,
        // SSHFP
        44 => rd.len() >= 2,
        // TLSA
        52 => rd.len() >= 3,
        // CAA: flags, tag length, tag, value
        257 => rd.len() >= 2 && 2 + rd[1] as usize <= rd.len(),
        // NAPTR (RFC 3403): order, preference, three character-strings (flags, services,
        // regexp), then the replacement name, which ends the RDATA
        35 => {
            let mut at = 4;
            for _ in 0..3 {
                match rd.get(at) {
                    Some(&len) => at += 1 + len as usize,
                    None => return false,
                }
            }
            at <= rd.len() && skip_name(&pkt[..end], rdata + at) == Some(end)
        }
        _ => true,
    }
}

/// Walks an upstream response. Returns None if it is malformed in any way.
pub fn walk_response(pkt: &[u8]) -> Option<ResponseLayout> {
    let flags = be16(pkt, 2)?;
    if flags & FLAG_QR == 0 {
        return None;
    }
    let qd = be16(pkt, 4)?;
    let an = be16(pkt, 6)?;
    let ns = be16(pkt, 8)?;
    let ar = be16(pkt, 10)?;
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        pos = skip_name(pkt, pos)? + 4;
        if pos > pkt.len() {
            return None;
        }
    }
    let question_end = pos;
    let total = an as usize + ns as usize + ar as usize;
    let mut layout = ResponseLayout {
        rcode: (flags & 0xf) as u8,
        truncated: flags & FLAG_TC != 0,
        authoritative: flags & FLAG_AA != 0,
        authentic_data: flags & FLAG_AD != 0,
        // The counts come from the packet (u16 each, so their sum can overflow u16): reserve no
        // more than the records that fit in it (11 bytes at least each).
        ttls: Vec::with_capacity(total.min(pkt.len().saturating_sub(question_end) / 11)),
        opt: None,
        ancount: an,
        nscount: ns,
        soa: None,
        question_end,
    };
    for i in 0..total {
        let start = pos;
        let after_name = skip_name(pkt, pos)?;
        let rtype = be16(pkt, after_name)?;
        let ttl = be32(pkt, after_name + 4)?;
        let rdlen = be16(pkt, after_name + 8)? as usize;
        let rdata = after_name + 10;
        let end = rdata + rdlen;
        if end > pkt.len() || end > u16::MAX as usize {
            return None;
        }
        if !rdata_names_ok(pkt, rtype, rdata, end) || !rdata_layout_ok(pkt, rtype, rdata, end) {
            return None;
        }
        // An IN address of the wrong length is no address: the answer checks would skip it
        // (so an IOC address could not be matched) and the client could not use it.
        let class = be16(pkt, after_name + 2)?;
        if class == CLASS_IN
            && ((rtype == TYPE_A && rdlen != 4) || (rtype == TYPE_AAAA && rdlen != 16))
        {
            return None;
        }
        if rtype == TYPE_OPT {
            // RFC 6891 §6.1.1: one OPT, in the additional section, owned by the root. The cache
            // strips it and lowers ARCOUNT, so an OPT elsewhere would leave a count pointing at
            // a record that is no longer there (a malformed answer to the client).
            let in_additional = i >= an as usize + ns as usize;
            if layout.opt.is_some() || !in_additional || after_name != start + 1 {
                return None;
            }
            layout.opt = Some((start, end));
        } else {
            // RFC 2181 §8: a TTL with the top bit set is treated as zero.
            let ttl = if ttl & 0x8000_0000 != 0 { 0 } else { ttl };
            layout.ttls.push(((after_name + 4) as u16, ttl));
            let in_authority = i >= an as usize && i < an as usize + ns as usize;
            if rtype == TYPE_SOA && in_authority && layout.soa.is_none() {
                // rdata_names_ok has walked MNAME and RNAME: the five counters fill the last
                // 20 bytes of the RDATA exactly, MINIMUM last.
                let minimum = be32(pkt, end - 4)?;
                layout.soa = Some((ttl, minimum));
            }
        }
        pos = end;
    }
    if pos != pkt.len() {
        // Trailing garbage: a sign of a broken or spoofed packet.
        return None;
    }
    Some(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16, edns: Option<(u16, bool)>) -> Vec<u8> {
        let mut out = Vec::new();
        push_header(&mut out, 0x1234, FLAG_RD, 1, 0, 0, edns.is_some() as u16);
        out.extend(text_to_wire(name).unwrap());
        put16(&mut out, qtype);
        put16(&mut out, CLASS_IN);
        if let Some((size, d)) = edns {
            out.push(0);
            put16(&mut out, TYPE_OPT);
            put16(&mut out, size);
            put32(&mut out, if d { 0x8000 } else { 0 });
            put16(&mut out, 0);
        }
        out
    }

    #[test]
    fn parses_query_with_edns() {
        let pkt = query("WwW.Example.COM", TYPE_A, Some((4096, true)));
        let q = parse_query(&pkt).unwrap();
        assert_eq!(q.id, 0x1234);
        assert!(q.rd);
        assert_eq!(q.qtype, TYPE_A);
        assert_eq!(q.name_text(), "www.example.com");
        assert_eq!(q.edns.unwrap().udp_payload, 4096);
        assert!(q.dnssec_ok());
        let mut k = [0u8; 260];
        let key = q.cache_key(&mut k).to_vec();
        let q2 = parse_query(&query("www.example.com", TYPE_A, Some((1232, true)))).unwrap();
        assert_eq!(key, q2.cache_key(&mut k));
        let q3 = parse_query(&query("www.example.com", TYPE_A, None)).unwrap();
        assert_ne!(key, q3.cache_key(&mut k), "DO bit is part of the key");
        assert_eq!(q3.max_udp_response(), 512);
    }

    #[test]
    fn rejects_malformed_queries() {
        assert_eq!(parse_query(&[0; 5]).unwrap_err(), QueryError::Drop);
        let mut resp = query("a.com", TYPE_A, None);
        resp[2] |= 0x80;
        assert_eq!(parse_query(&resp).unwrap_err(), QueryError::Drop);
        // Truncated question.
        let pkt = query("example.com", TYPE_A, None);
        let err = parse_query(&pkt[..pkt.len() - 3]).unwrap_err();
        assert!(matches!(
            err,
            QueryError::Respond {
                rcode: RCODE_FORMERR,
                ..
            }
        ));
        // Compression pointer in the question.
        let mut pkt = query("a.com", TYPE_A, None);
        pkt[12] = 0xc0;
        assert!(matches!(
            parse_query(&pkt),
            Err(QueryError::Respond {
                rcode: RCODE_FORMERR,
                ..
            })
        ));
        // Opcode 5 (UPDATE) is not implemented.
        let mut pkt = query("a.com", TYPE_A, None);
        pkt[2] |= 5 << 3;
        assert!(matches!(
            parse_query(&pkt),
            Err(QueryError::Respond {
                rcode: RCODE_NOTIMP,
                ..
            })
        ));
        // A name over 255 bytes.
        let mut pkt = Vec::new();
        push_header(&mut pkt, 1, 0, 1, 0, 0, 0);
        for _ in 0..5 {
            pkt.push(63);
            pkt.extend([b'a'; 63]);
        }
        pkt.push(0);
        put16(&mut pkt, 1);
        put16(&mut pkt, 1);
        assert!(matches!(
            parse_query(&pkt),
            Err(QueryError::Respond {
                rcode: RCODE_FORMERR,
                ..
            })
        ));
    }

    #[test]
    fn edns_version_one_gets_badvers() {
        let mut pkt = query("a.com", TYPE_A, Some((1232, false)));
        let n = pkt.len();
        pkt[n - 5] = 1; // version byte of the OPT TTL
        let err = parse_query(&pkt).unwrap_err();
        let mut out = Vec::new();
        assert!(error_response(&err, &mut out));
        let layout = walk_response(&out).unwrap();
        let (s, _) = layout.opt.unwrap();
        assert_eq!(out[s + 5], EXT_RCODE_BADVERS_HIGH);
    }

    #[test]
    fn block_answers_are_well_formed() {
        let q = parse_query(&query("bad.example", TYPE_A, Some((1232, false)))).unwrap();
        let mut out = Vec::new();
        block_response(&q, BlockAnswer::Nxdomain { ttl: 60 }, None, &mut out);
        let l = walk_response(&out).unwrap();
        assert_eq!(l.rcode, RCODE_NXDOMAIN);
        assert_eq!(l.soa, Some((60, 60)));
        assert!(l.opt.is_some());
        let v4 = ["10.0.0.1".parse().unwrap()];
        block_response(
            &q,
            BlockAnswer::Sinkhole {
                v4: &v4,
                v6: &[],
                ttl: 30,
            },
            None,
            &mut out,
        );
        let l = walk_response(&out).unwrap();
        assert_eq!((l.rcode, l.ancount, l.nscount), (RCODE_NOERROR, 1, 0));
        let q6 = parse_query(&query("bad.example", TYPE_AAAA, None)).unwrap();
        block_response(
            &q6,
            BlockAnswer::Sinkhole {
                v4: &v4,
                v6: &[],
                ttl: 30,
            },
            None,
            &mut out,
        );
        let l = walk_response(&out).unwrap();
        assert_eq!(
            (l.rcode, l.ancount, l.nscount),
            (RCODE_NOERROR, 0, 1),
            "NODATA"
        );
    }

    /// The EDE options of a response, parsed with hickory (an independent parser).
    fn ede_of(out: &[u8]) -> Vec<(u16, String)> {
        use hickory_proto::op::Message;
        use hickory_proto::rr::rdata::opt::EdnsOption;
        let m = Message::from_vec(out).expect("hickory parses the answer");
        let edns = m.edns.as_ref().expect("an OPT record");
        edns.options()
            .as_ref()
            .iter()
            .filter_map(|(_, o)| match o {
                EdnsOption::Unknown(OPT_EDE, raw) => Some((
                    u16::from_be_bytes([raw[0], raw[1]]),
                    String::from_utf8(raw[2..].to_vec()).unwrap(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn block_answers_carry_an_extended_dns_error_that_fits_the_client() {
        let q = parse_query(&query("bad.example", TYPE_A, Some((1232, false)))).unwrap();
        let mut out = Vec::new();
        for answer in [BlockAnswer::Nxdomain { ttl: 60 }, BlockAnswer::Refused] {
            block_response(&q, answer, Some("blocked by policy: dga"), &mut out);
            assert!(walk_response(&out).is_some());
            assert_eq!(
                ede_of(&out),
                vec![(EDE_BLOCKED, "blocked by policy: dga".into())]
            );
        }
        // A long text for a client at 512 bytes: cut at a character boundary, the answer fits.
        let long_name = format!("{}.{}.example", "a".repeat(63), "b".repeat(63));
        let q512 = parse_query(&query(&long_name, TYPE_A, Some((512, false)))).unwrap();
        let text = "é".repeat(300);
        block_response(
            &q512,
            BlockAnswer::Nxdomain { ttl: 60 },
            Some(&text),
            &mut out,
        );
        assert!(out.len() <= 512, "{}", out.len());
        let ede = ede_of(&out);
        assert!(
            ede[0].1.len() > 100 && ede[0].1.chars().all(|c| c == 'é'),
            "{ede:?}"
        );
        // Without EDNS there is nowhere to put it.
        let plain = parse_query(&query("bad.example", TYPE_A, None)).unwrap();
        block_response(
            &plain,
            BlockAnswer::Nxdomain { ttl: 60 },
            Some("x"),
            &mut out,
        );
        assert!(walk_response(&out).unwrap().opt.is_none());
    }

    #[test]
    fn name_text_escapes_odd_bytes_and_pointer_loops_fail() {
        assert_eq!(name_to_text(b"\x03a.b\x03COM\x00"), "a\\046b.com");
        assert_eq!(name_to_text(b"\x00"), ".");
        assert_eq!(name_to_text(b"\x03A\xffB\x02Xy\x00"), "a\\255b.xy");
        assert_eq!(name_to_text(b"\x03a b\x00"), "a\\032b");
        // A pointer to itself.
        let pkt = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 12];
        assert_eq!(read_name_text(&pkt, 12), None);
        assert_eq!(walk_response(&[0x12]), None);
    }

    /// An upstream answer to `www.test A` (ID 0, QR) with one answer record: `www.test`
    /// (a pointer to the question), then `rtype`, class IN, TTL 300, `rdata`.
    fn answer_with(rtype: u16, rdata: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        push_header(&mut p, 0, FLAG_QR | FLAG_RD | FLAG_RA, 1, 1, 0, 0);
        p.extend(text_to_wire("www.test").unwrap());
        put16(&mut p, TYPE_A);
        put16(&mut p, CLASS_IN);
        p.extend_from_slice(&[0xc0, 12]);
        put16(&mut p, rtype);
        put16(&mut p, CLASS_IN);
        put32(&mut p, 300);
        put16(&mut p, rdata.len() as u16);
        p.extend_from_slice(rdata);
        p
    }

    #[test]
    fn names_in_rdata_are_checked_like_owner_names() {
        let target = text_to_wire("target.test").unwrap();
        let mut mx = vec![0, 10];
        mx.extend(&target);
        let mut srv = vec![0, 0, 0, 5, 1, 187];
        srv.extend(&target);
        let mut soa = target.clone();
        soa.extend([0xc0, 12]);
        soa.extend([0u8; 20]);
        let mut https = vec![0, 1];
        https.extend([0xc0, 12]);
        https.extend([0, 1, 0, 3, 2, b'h', b'2']);
        // Well-formed: plain names, a pointer back to the question, trailing SVCB parameters.
        for (rtype, rdata) in [
            (TYPE_CNAME, target.clone()),
            (TYPE_CNAME, vec![0xc0, 12]),
            (TYPE_NS, target.clone()),
            (15, mx.clone()),
            (33, srv.clone()),
            (TYPE_SOA, soa.clone()),
            (65, https.clone()),
            (TYPE_A, vec![192, 0, 2, 1]),
            (TYPE_HINFO, vec![1, b'x', 1, b'y']),
        ] {
            assert!(
                walk_response(&answer_with(rtype, &rdata)).is_some(),
                "{rtype}"
            );
        }
        // The fuzzer's finding: a CNAME target pointing into the header (at the ID, which
        // dnsward replaces with the client's).
        assert!(walk_response(&answer_with(TYPE_CNAME, &[0xc0, 0])).is_none());
        // A forward pointer, and one to itself.
        let len = answer_with(TYPE_CNAME, &[0, 0]).len();
        let fwd = (len - 2 + 8) as u8;
        assert!(walk_response(&answer_with(TYPE_CNAME, &[0xc0, fwd])).is_none());
        assert!(walk_response(&answer_with(TYPE_CNAME, &[0xc0, (len - 2) as u8])).is_none());
        // Empty NS RDATA (legal only in UPDATE), a name that runs past its RDATA, trailing bytes
        // after a single-name RDATA, a short SOA, a pointer into the header in an MX and in an
        // SRV target.
        assert!(walk_response(&answer_with(TYPE_NS, &[])).is_none());
        assert!(walk_response(&answer_with(TYPE_CNAME, &target[..5])).is_none());
        let mut long = target.clone();
        long.push(0);
        assert!(walk_response(&answer_with(TYPE_CNAME, &long)).is_none());
        assert!(walk_response(&answer_with(TYPE_SOA, &soa[..soa.len() - 1])).is_none());
        assert!(walk_response(&answer_with(15, &[0, 10, 0xc0, 2])).is_none());
        assert!(walk_response(&answer_with(33, &[0, 0, 0, 5, 1, 187, 0xc0, 4])).is_none());
    }

    #[test]
    fn addresses_of_the_wrong_length_are_malformed() {
        assert!(walk_response(&answer_with(TYPE_A, &[192, 0, 2, 1])).is_some());
        assert!(walk_response(&answer_with(TYPE_AAAA, &[0x20; 16])).is_some());
        assert!(walk_response(&answer_with(TYPE_A, &[192, 0, 2])).is_none());
        assert!(walk_response(&answer_with(TYPE_A, &[192, 0, 2, 1, 0])).is_none());
        assert!(walk_response(&answer_with(TYPE_AAAA, &[0x20; 4])).is_none());
        // Another class (CHAOS A holds a name and an address) is left alone.
        let mut ch = answer_with(TYPE_A, &[192, 0, 2]);
        let class_at = ch.len() - 3 - 8;
        ch[class_at..class_at + 2].copy_from_slice(&3u16.to_be_bytes());
        assert!(walk_response(&ch).is_some());
    }

    #[test]
    fn fixed_rdata_layouts_are_checked() {
        // (type, well-formed RDATA, malformed RDATA)
        let cases: [(u16, &[u8], &[u8]); 8] = [
            (16, b"\x05hello\x00\x02hi", b"\x05hell"),
            (16, b"", b"\x01"),
            (99, b"\x06v=spf1", b"\x07v=spf1"),
            (TYPE_HINFO, b"\x01x\x01y", b"\x01x"),
            (43, &[0x30, 0x39, 8, 2], &[0x30, 0x39, 8]),
            (48, &[1, 1, 3, 8, 0xaa], &[1, 1, 3]),
            (52, &[3, 1, 1], &[3, 1]),
            (257, b"\x00\x05issueca.example", b"\x00\x09issue"),
        ];
        for (rtype, good, bad) in cases {
            assert!(
                walk_response(&answer_with(rtype, good)).is_some(),
                "{rtype} {good:?}"
            );
            assert!(
                walk_response(&answer_with(rtype, bad)).is_none(),
                "{rtype} {bad:?}"
            );
        }
        assert!(walk_response(&answer_with(44, &[1, 2])).is_some());
        assert!(walk_response(&answer_with(44, &[1])).is_none());
        // NAPTR: well formed (a pointer back to the question as replacement, too); a string
        // that overruns, a name past the end, a pointer into the header, bytes after the name.
        let mut naptr = vec![0, 100, 0, 10, 1, b'u', 7];
        naptr.extend(b"E2U+sip");
        naptr.push(0);
        // `naptr` stops before the replacement name; the root name completes it.
        let with_root = [naptr.clone(), vec![0]].concat();
        assert!(walk_response(&answer_with(35, &with_root)).is_some());
        let mut to_question = naptr.clone();
        to_question.extend([0xc0, 12]);
        assert!(walk_response(&answer_with(35, &to_question)).is_some());
        assert!(walk_response(&answer_with(35, &naptr)).is_none());
        assert!(walk_response(&answer_with(35, &[0, 100, 0, 10, 9, b'u'])).is_none());
        let mut into_header = naptr.clone();
        into_header.extend([0xc0, 0]);
        assert!(walk_response(&answer_with(35, &into_header)).is_none());
        assert!(walk_response(&answer_with(35, &[with_root, vec![7]].concat())).is_none());
        // RRSIG signer and NSEC next name: checked like the other names in RDATA.
        let mut rrsig = vec![0, 1, 8, 2, 0, 0, 1, 44, 0, 0, 0, 1, 0, 0, 0, 0, 0x30, 0x39];
        let mut bad_rrsig = rrsig.clone();
        rrsig.extend([0xc0, 12, 0xaa, 0xbb]);
        bad_rrsig.extend([0xc0, 0, 0xaa]);
        assert!(walk_response(&answer_with(46, &rrsig)).is_some());
        assert!(walk_response(&answer_with(46, &bad_rrsig)).is_none());
        assert!(walk_response(&answer_with(46, &rrsig[..17])).is_none());
        assert!(walk_response(&answer_with(47, &[0xc0, 12, 0, 1, 0x40])).is_some());
        assert!(walk_response(&answer_with(47, &[0xc0, 2, 0, 1, 0x40])).is_none());
        // HINFO with three strings, and a type without a fixed layout (NULL, 10).
        assert!(walk_response(&answer_with(TYPE_HINFO, b"\x01x\x01y\x01z")).is_none());
        assert!(walk_response(&answer_with(10, &[0xff])).is_some());
    }

    #[test]
    fn fuzzish_inputs_never_panic() {
        // Every prefix and single-byte corruption of a valid packet.
        let pkt = query("www.example.com", TYPE_A, Some((4096, true)));
        for n in 0..pkt.len() {
            let _ = parse_query(&pkt[..n]);
            let _ = walk_response(&pkt[..n]);
            for v in [0u8, 0x3f, 0xc0, 0xff] {
                let mut p = pkt.clone();
                p[n] = v;
                let _ = parse_query(&p);
                let _ = walk_response(&p);
                let _ = read_name_text(&p, 12);
            }
        }
    }
}
