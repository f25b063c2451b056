//! Compact storage for the query log (`log_all_queries`): one SQLite row per writer batch (a
//! "chunk" of up to `BATCH_MAX` answered queries in a small binary format) instead of one row per
//! query. A row per query cost the writer ~1.5 µs of SQLite work per query (bind, b-tree insert,
//! index insert, WAL), which on a one-core resolver at 100k+ QPS is a large share of the core; a
//! chunk costs ~0.1 µs per query to encode and one insert per batch. Blocks keep one row each
//! (they are rare, and the API filters them by client and category through indexes).
//!
//! Record format (all integers little-endian; varints are LEB128):
//! `zigzag-varint ts delta (µs, from the previous record; the first record's is its absolute time)`,
//! `u8 family (4|6)` + 4 or 16 address bytes, `varint len` + qname bytes, `u16 qtype`,
//! `u8 rcode`, `u8 flags (bit0 cached, bit1 verdict allow)`, `varint len` + reason JSON (0: none).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Chunk format version, stored with every chunk.
pub const CHUNK_FORMAT: i64 = 1;

const FLAG_CACHED: u8 = 1;
const FLAG_ALLOW: u8 = 2;

/// One logged query, borrowed from a decoded chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedQuery<'a> {
    pub ts_us: i64,
    pub client: IpAddr,
    pub qname: &'a str,
    pub qtype: u16,
    pub rcode: u8,
    pub cached: bool,
    /// `true`: an allowlist matched (`verdict = "allow"`), else `"pass"`.
    pub allow: bool,
    /// The verdict's reason as JSON, if any.
    pub reason: Option<&'a str>,
}

/// Builds one chunk.
#[derive(Default)]
pub struct ChunkEncoder {
    buf: Vec<u8>,
    first_us: i64,
    last_us: i64,
    prev_us: i64,
    n: u32,
}

impl ChunkEncoder {
    /// An encoder for about `records` records (typical records take 25-40 bytes).
    pub fn with_capacity(records: usize) -> Self {
        ChunkEncoder {
            buf: Vec::with_capacity(records.min(8192) * 40),
            ..Default::default()
        }
    }

    pub fn push(&mut self, q: &LoggedQuery<'_>) {
        self.push_with(q, |buf| {
            put_varint(buf, q.qname.len() as u64);
            buf.extend_from_slice(q.qname.as_bytes());
        });
    }

    /// Like [`push`](Self::push), but the name comes in wire form and is written as text straight
    /// into the chunk (the engine's fast lane: no `String` per logged query); `q.qname` is not
    /// read. Decodes exactly like a `push` of `dnsward_server::wire::name_to_text(qname_wire)`.
    pub fn push_wire(&mut self, q: &LoggedQuery<'_>, qname_wire: &[u8]) {
        self.push_with(q, |buf| {
            // Names are almost always < 128 bytes: write a one-byte length, widen it if not.
            let at = buf.len();
            buf.push(0);
            let n = dnsward_server::wire::write_name_text(qname_wire, buf);
            if n < 0x80 {
                buf[at] = n as u8;
            } else {
                let mut len = Vec::with_capacity(2);
                put_varint(&mut len, n as u64);
                buf.splice(at..at + 1, len);
            }
        });
    }

    fn push_with(&mut self, q: &LoggedQuery<'_>, put_name: impl FnOnce(&mut Vec<u8>)) {
        if self.n == 0 {
            self.first_us = q.ts_us;
            self.last_us = q.ts_us;
            // The first record carries its absolute time, so a chunk decodes on its own.
            self.prev_us = 0;
        }
        // Workers enqueue concurrently, so times may step back a little: zigzag.
        let delta = q.ts_us.wrapping_sub(self.prev_us);
        put_varint(&mut self.buf, ((delta << 1) ^ (delta >> 63)) as u64);
        self.prev_us = q.ts_us;
        self.first_us = self.first_us.min(q.ts_us);
        self.last_us = self.last_us.max(q.ts_us);
        match q.client {
            IpAddr::V4(a) => {
                self.buf.push(4);
                self.buf.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                self.buf.push(6);
                self.buf.extend_from_slice(&a.octets());
            }
        }
        put_name(&mut self.buf);
        self.buf.extend_from_slice(&q.qtype.to_le_bytes());
        self.buf.push(q.rcode);
        let mut flags = 0;
        if q.cached {
            flags |= FLAG_CACHED;
        }
        if q.allow {
            flags |= FLAG_ALLOW;
        }
        self.buf.push(flags);
        let reason = q.reason.unwrap_or("");
        put_varint(&mut self.buf, reason.len() as u64);
        self.buf.extend_from_slice(reason.as_bytes());
        self.n += 1;
    }

    pub fn len(&self) -> u32 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `(first_us, last_us, n, bytes)` of the chunk so far.
    pub fn parts(&self) -> (i64, i64, u32, &[u8]) {
        (self.first_us, self.last_us, self.n, &self.buf)
    }

    /// Empty the encoder (keeping its buffer).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.n = 0;
    }
}

/// Decode a chunk. A damaged chunk yields the records before the damage
/// and an error message (the store logs it and carries on).
pub fn decode_chunk(data: &[u8]) -> (Vec<LoggedQuery<'_>>, Option<String>) {
    let mut out = Vec::new();
    let mut r = Reader { data, pos: 0 };
    let mut prev = 0i64;
    while r.pos < data.len() {
        match r.record(prev) {
            Some(q) => {
                prev = q.ts_us;
                out.push(q);
            }
            None => {
                return (
                    out,
                    Some(format!(
                        "query chunk damaged at byte {} of {}",
                        r.pos,
                        data.len()
                    )),
                )
            }
        }
    }
    (out, None)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.varint()?).ok()?;
        std::str::from_utf8(self.bytes(n)?).ok()
    }

    fn record(&mut self, prev: i64) -> Option<LoggedQuery<'a>> {
        let z = self.varint()?;
        let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let client = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(self.bytes(4)?).ok()?)),
            6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(self.bytes(16)?).ok()?)),
            _ => return None,
        };
        let qname = self.str()?;
        let qtype = u16::from_le_bytes(self.bytes(2)?.try_into().ok()?);
        let rcode = self.u8()?;
        let flags = self.u8()?;
        let reason = self.str()?;
        Some(LoggedQuery {
            ts_us: prev.wrapping_add(delta),
            client,
            qname,
            qtype,
            rcode,
            cached: flags & FLAG_CACHED != 0,
            allow: flags & FLAG_ALLOW != 0,
            reason: (!reason.is_empty()).then_some(reason),
        })
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(ts: i64, client: &str, name: &'static str, allow: bool) -> LoggedQuery<'static> {
        LoggedQuery {
            ts_us: ts,
            client: client.parse().unwrap(),
            qname: name,
            qtype: 28,
            rcode: 3,
            cached: ts % 2 == 0,
            allow,
            reason: allow.then_some(r#"{"stage":"allowlist"}"#),
        }
    }

    #[test]
    fn round_trip_with_out_of_order_times_and_both_families() {
        let input = vec![
            q(1_700_000_000_000_000, "10.0.0.1", "a.example", false),
            q(1_700_000_000_000_120, "2001:db8::1", "b.example", true),
            // A worker enqueued slightly late: time steps back.
            q(1_699_999_999_999_990, "10.0.0.2", "", false),
            q(
                1_700_000_000_900_000,
                "::ffff:10.0.0.3",
                "ünïcode.example",
                false,
            ),
        ];
        let mut enc = ChunkEncoder::default();
        for x in &input {
            enc.push(x);
        }
        assert_eq!(enc.len(), 4);
        let (first, last, n, bytes) = enc.parts();
        let bytes = bytes.to_vec();
        enc.clear();
        assert!(enc.is_empty());
        enc.push(&input[1]);
        assert_eq!(
            enc.parts().0,
            input[1].ts_us,
            "a cleared encoder starts a new chunk"
        );
        assert_eq!(
            (first, last, n),
            (1_699_999_999_999_990, 1_700_000_000_900_000, 4)
        );
        let (out, err) = decode_chunk(&bytes);
        assert_eq!(err, None);
        assert_eq!(out, input);
    }

    #[test]
    fn wire_names_decode_like_their_text_form() {
        use dnsward_server::wire::{name_to_text, text_to_wire};
        let long = format!("{}.{}.example", "a".repeat(63), "B".repeat(63));
        let mut names: Vec<Vec<u8>> = ["WWW.Example.COM", "x", "", "a-b_c.d"]
            .iter()
            .map(|n| text_to_wire(n).unwrap())
            .collect();
        names.push(text_to_wire(&long).unwrap());
        // Escaped bytes; 40 labels of "\032" make a 160-byte text name (two-byte length).
        names.push(b"\x03a b\x02\xff.\x00".to_vec());
        names.push([b"\x01 ".repeat(40), vec![0]].concat());
        let mut by_wire = ChunkEncoder::default();
        let mut by_text = ChunkEncoder::default();
        for (i, w) in names.iter().enumerate() {
            let text = name_to_text(w);
            let rec = q(i as i64 * 1000, "192.0.2.1", "", i % 2 == 0);
            by_wire.push_wire(&rec, w);
            by_text.push(&LoggedQuery {
                qname: &text,
                ..rec.clone()
            });
        }
        assert_eq!(by_wire.parts().3, by_text.parts().3);
        let (out, err) = decode_chunk(by_wire.parts().3);
        assert_eq!(err, None);
        assert_eq!(out.len(), names.len());
        assert_eq!(out[0].qname, "www.example.com");
        assert_eq!(out[2].qname, ".");
        assert_eq!(out[6].qname.len(), 40 * 4 + 39);
    }

    #[test]
    fn damaged_chunk_keeps_the_records_before_the_damage() {
        let mut enc = ChunkEncoder::default();
        enc.push(&q(10, "10.0.0.1", "a.example", false));
        enc.push(&q(20, "10.0.0.1", "b.example", false));
        let mut bytes = enc.parts().3.to_vec();
        bytes.truncate(bytes.len() - 3);
        let (out, err) = decode_chunk(&bytes);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].qname, "a.example");
        assert!(err.unwrap().contains("damaged"));
        // Garbage never panics.
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 200) as u8).collect();
            let _ = decode_chunk(&junk);
        }
    }
}
