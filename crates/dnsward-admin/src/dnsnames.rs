//! Names of DNS types and response codes for JSON output.

pub fn qtype_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        43 => "DS",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{t}"),
    };
    s.to_string()
}

pub fn rcode_name(r: u8) -> String {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => return format!("RCODE{r}"),
    };
    s.to_string()
}

/// Query types with their own metrics series; everything else is `other`.
pub const METRIC_QTYPES: [(u16, &str); 12] = [
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (15, "MX"),
    (16, "TXT"),
    (12, "PTR"),
    (33, "SRV"),
    (2, "NS"),
    (6, "SOA"),
    (65, "HTTPS"),
    (64, "SVCB"),
    (255, "ANY"),
];

/// Results with their own metrics series.
pub const METRIC_RESULTS: [&str; 6] = [
    "blocked", "noerror", "nxdomain", "servfail", "refused", "other",
];

pub fn qtype_index(t: u16) -> usize {
    METRIC_QTYPES
        .iter()
        .position(|(n, _)| *n == t)
        .unwrap_or(METRIC_QTYPES.len())
}

pub fn result_index(blocked: bool, rcode: u8) -> usize {
    if blocked {
        return 0;
    }
    match rcode {
        0 => 1,
        3 => 2,
        2 => 3,
        5 => 4,
        _ => 5,
    }
}
