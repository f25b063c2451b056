#!/usr/bin/env python3
"""Writes the seed corpus of the request_path fuzz target into corpus/request_path/.

Each file is one fuzz input (dnsward_server::fuzzing::Input):
    flags (1 byte) | query length (2, big endian) | query packet | upstream bytes
Unless the RAW flag is set, the upstream bytes are a 12-byte header followed by the answer's
records; the in-process upstream inserts the question that was asked after the header.

    python3 fuzz/gen_corpus.py        # deterministic; rewrites the directory
"""
import os
import random
import shutil
import struct

TCP, OUTSIDE_ACL, UPSTREAM_FAILS, RAW, TWICE, RELOAD, IPV6, ESCALATED = 1, 2, 4, 8, 16, 32, 64, 128
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "request_path")
T = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "HINFO": 13, "MX": 15, "TXT": 16,
     "AAAA": 28, "SRV": 33, "OPT": 41, "DS": 43, "DNSKEY": 48, "HTTPS": 65, "SVCB": 64,
     "IXFR": 251, "AXFR": 252, "ANY": 255, "CAA": 257, "NULL": 10}


def name(n):
    out = b""
    for label in n.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def header(id=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", id, flags, qd, an, ns, ar)


def opt(payload=1232, do=False, version=0, options=b"", owner=b"\0"):
    ttl = (version << 16) | (0x8000 if do else 0)
    return owner + struct.pack(">HHIH", 41, payload, ttl, len(options)) + options


def query(n, t="A", cls=1, flags=0x0100, edns=None, id=0x1234, extra=b"", ar=None):
    t = T[t] if isinstance(t, str) else t
    body = name(n) + struct.pack(">HH", t, cls)
    arc = 0
    if edns is not None:
        body += edns
        arc = 1
    if ar is not None:
        arc = ar
    return header(id, flags, 1, 0, 0, arc) + body + extra


def rr(owner, t, rdata, ttl=300, cls=1):
    t = T[t] if isinstance(t, str) else t
    return owner + struct.pack(">HHIH", t, cls, ttl, len(rdata)) + rdata


PTR_Q = b"\xc0\x0c"  # the question name


def up(records=(), rcode=0, an=None, ns=0, ar=0, flags=0x8180):
    recs = b"".join(records)
    return header(0, flags | rcode, 1, len(records) if an is None else an, ns, ar) + recs


def soa(owner=b"\xc0\x0c", ttl=300, minimum=30):
    rd = name("ns.test") + name("hostmaster.test") + struct.pack(">IIIII", 1, 3600, 600, 86400, minimum)
    return rr(owner, "SOA", rd, ttl)


def a(ip, owner=PTR_Q, ttl=300):
    return rr(owner, "A", bytes(int(x) for x in ip.split(".")), ttl)


def aaaa(owner=PTR_Q, ttl=300):
    return rr(owner, "AAAA", bytes.fromhex("20010db8000000000000000000000010"), ttl)


def txt(s, owner=PTR_Q):
    s = s.encode()
    return rr(owner, "TXT", bytes([len(s)]) + s)


def enc(flags, q, u=b""):
    return bytes([flags]) + struct.pack(">H", len(q)) + q + u


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    seeds = {}

    def add(label, data):
        assert label not in seeds, label
        seeds[label] = data

    ok_a = up([a("192.0.2.10")])
    # Valid queries of many types, plain and EDNS, each with a fitting upstream answer.
    for t in ["A", "AAAA", "MX", "TXT", "NS", "SOA", "PTR", "SRV", "HTTPS", "SVCB", "CAA",
              "DS", "DNSKEY", "NULL", "CNAME"]:
        rec = {"A": a("192.0.2.10"), "AAAA": aaaa(),
               "MX": rr(PTR_Q, "MX", b"\0\x0a" + name("mail.test")),
               "TXT": txt("v=spf1 -all"), "NS": rr(PTR_Q, "NS", name("ns1.test")),
               "SOA": soa(), "PTR": rr(PTR_Q, "PTR", name("host.test")),
               "SRV": rr(PTR_Q, "SRV", struct.pack(">HHH", 0, 5, 443) + name("srv.test")),
               "HTTPS": rr(PTR_Q, "HTTPS", b"\0\x01\0" + struct.pack(">HH", 1, 3) + b"\x02h2"),
               "SVCB": rr(PTR_Q, "SVCB", b"\0\x01\0"),
               "CAA": rr(PTR_Q, "CAA", b"\0\x05issue" + b"ca.test"),
               "DS": rr(PTR_Q, "DS", struct.pack(">HBB", 1, 13, 2) + bytes(32)),
               "DNSKEY": rr(PTR_Q, "DNSKEY", struct.pack(">HBB", 257, 3, 13) + bytes(64)),
               "NULL": rr(PTR_Q, "NULL", b"\x01\x02\x03"),
               "CNAME": rr(PTR_Q, "CNAME", name("target.test"))}[t]
        add(f"valid-{t}", enc(0, query("www.test", t), up([rec])))
        add(f"valid-{t}-edns1232-twice", enc(TWICE, query("www.test", t, edns=opt(1232)), up([rec])))
    add("valid-A-tcp", enc(TCP, query("www.test"), ok_a))
    add("valid-A-ipv6-client", enc(IPV6, query("www.test"), ok_a))
    add("valid-A-reload-rejudge", enc(TWICE | RELOAD, query("www.test"), ok_a))
    add("valid-A-mixed-case", enc(TWICE, query("WwW.TeSt"), ok_a))
    add("valid-A-no-rd", enc(0, query("www.test", flags=0), ok_a))
    add("valid-A-cd-ad", enc(0, query("www.test", flags=0x0130, edns=opt(1232, do=True)),
                             up([a("192.0.2.10")], flags=0x81a0)))
    add("valid-root-NS", enc(0, query(".", "NS"), up([rr(PTR_Q, "NS", name("a.root-servers.net"))])))
    add("valid-long-name", enc(0, query(".".join(["a" * 63] * 3) + "." + "b" * 61), ok_a))
    add("valid-ANY", enc(0, query("www.test", "ANY")))
    add("valid-AXFR", enc(0, query("test", "AXFR")))
    add("valid-IXFR", enc(0, query("test", "IXFR")))
    add("qtype-OPT", enc(0, query("www.test", "OPT")))
    add("class-CH", enc(0, query("version.bind", "TXT", cls=3)))
    add("class-ANY", enc(0, query("www.test", "A", cls=255)))
    add("outside-acl", enc(OUTSIDE_ACL, query("www.test"), ok_a))
    add("outside-acl-malformed", enc(OUTSIDE_ACL, header() + b"\x05ab"))

    # EDNS variants.
    for size in [0, 512, 1232, 4096, 65535]:
        add(f"edns-{size}", enc(0, query("big.test", "TXT", edns=opt(size)),
                                up([txt("x" * 200) for _ in range(12)])))
    add("edns-do", enc(0, query("www.test", edns=opt(1232, do=True)), ok_a))
    add("edns-badvers", enc(0, query("www.test", edns=opt(1232, version=1))))
    add("edns-cookie-ecs", enc(0, query("www.test", edns=opt(
        1232, options=struct.pack(">HH", 10, 8) + bytes(8) + struct.pack(">HHHBB", 8, 7, 1, 24, 0) + b"\xc0\x00\x02")), ok_a))
    add("edns-two-opts", enc(0, query("www.test", edns=opt() + opt(), ar=2)))
    add("edns-opt-in-answer", enc(0, header(an=1) + name("www.test") + b"\0\x01\0\x01" + opt()))
    add("edns-opt-nonroot-owner", enc(0, query("www.test", edns=opt(owner=name("x.test")))))
    add("edns-opt-rdlen-past-end", enc(0, query("www.test", edns=b"\0\0\x29\x04\xd0\0\0\0\0\0\x20")))
    add("tc-udp-512-big-answer", enc(TWICE, query("big.test", "TXT"), up([txt("y" * 250) for _ in range(10)])))
    add("tc-big-answer-tcp", enc(TCP | TWICE, query("big.test", "TXT"), up([txt("y" * 250) for _ in range(10)])))

    # Malformed queries.
    add("empty", b"")
    add("flags-only", bytes([0]))
    add("short-header-1", enc(0, b"\x12"))
    add("short-header-11", enc(0, bytes(11)))
    add("header-only-zero", enc(0, bytes(12)))
    add("qd1-no-question", enc(0, header()))
    add("qd0", enc(0, header(qd=0) + name("www.test") + b"\0\x01\0\x01"))
    add("qd2", enc(0, header(qd=2) + (name("www.test") + b"\0\x01\0\x01") * 2))
    add("qd65535", enc(0, header(qd=65535) + name("www.test") + b"\0\x01\0\x01"))
    add("huge-counts", enc(0, header(an=65535, ns=65535, ar=65535) + name("www.test") + b"\0\x01\0\x01"))
    add("qr-set", enc(0, query("www.test", flags=0x8100), ok_a))
    for op in range(1, 16):
        add(f"opcode-{op}", enc(0, query("www.test", flags=(op << 11) | 0x0100)))
    add("label-64", enc(0, header() + b"\x40" + b"a" * 64 + b"\0\0\x01\0\x01"))
    add("label-0x80", enc(0, header() + b"\x80abc\0\0\x01\0\x01"))
    add("label-past-end", enc(0, header() + b"\x3fab"))
    add("name-over-255", enc(0, header() + (b"\x3f" + b"x" * 63) * 5 + b"\0\0\x01\0\x01"))
    add("question-pointer", enc(0, header() + b"\xc0\x0c\0\x01\0\x01"))
    add("question-pointer-loop", enc(0, header() + b"\xc0\x0c"))
    add("compression-loop-additional", enc(0, header(ar=1) + name("www.test") + b"\0\x01\0\x01" + b"\xc0\x1e\xc0\x1c" + b"\0\x29\x04\xd0\0\0\0\0\0\0"))
    add("no-type-class", enc(0, header() + name("www.test")))
    add("half-type", enc(0, header() + name("www.test") + b"\0"))
    add("trailing-garbage", enc(0, query("www.test") + b"\xde\xad\xbe\xef", ok_a))
    add("ar-claims-missing", enc(0, query("www.test", ar=9)))
    add("all-ff", enc(0, b"\xff" * 600))
    add("nul-label", enc(0, query("a\0b.test"), ok_a))
    add("dot-in-label", enc(0, header() + b"\x03a.b\x04test\0\0\x01\0\x01", ok_a))
    add("binary-label", enc(0, header() + b"\x04\x00\xff\x80\x7f\x04test\0\0\x01\0\x01", ok_a))

    # Policy: denylist (sinkhole), allowlist exception, wildcard, adblock, hosts, DGA, IOC.
    add("deny-sinkhole-A", enc(TWICE, query("bad.test"), ok_a))
    add("deny-sinkhole-AAAA", enc(0, query("x.bad.test", "AAAA"), ok_a))
    add("deny-sinkhole-MX", enc(0, query("bad.test", "MX"), ok_a))
    add("deny-sinkhole-edns", enc(0, query("bad.test", edns=opt(1232)), ok_a))
    add("allow-exception", enc(0, query("ok.bad.test"), ok_a))
    add("deny-wildcard", enc(0, query("a.wild.test"), ok_a))
    add("deny-wildcard-apex", enc(0, query("wild.test"), ok_a))
    add("deny-adblock", enc(0, query("x.ads.test"), ok_a))
    add("deny-hosts", enc(0, query("hosts.test"), ok_a))
    add("dga-name", enc(TWICE, query("kqvwxjzrtplmnbvcxqwe.net"), ok_a))
    add("dga-name-sub", enc(0, query("www.xjwqkzptrvbnmlqwe.com"), ok_a))
    add("benign-name", enc(0, query("www.wikipedia.org"), ok_a))
    # The escalated client (the harness keeps 127.0.0.9 escalated): a name between the escalated
    # and the default DGA threshold is blocked for it only; asked twice (the second ask is a
    # cache hit of the client-independent answer), over TCP, after a reload, as a benign name,
    # as a default-threshold block and when the upstream fails.
    add("escalated-band-name", enc(ESCALATED | TWICE, query("xjw3kqpz0a.net"), ok_a))
    add("escalated-band-name-tcp-edns", enc(ESCALATED | TCP, query("www.xjw3kqpz0a.net", "AAAA", edns=opt(1232)), up([aaaa()])))
    add("escalated-band-name-reload", enc(ESCALATED | TWICE | RELOAD, query("xjw3kqpz0a.net"), ok_a))
    add("escalated-benign-name", enc(ESCALATED | TWICE, query("www.wikipedia.org"), ok_a))
    add("escalated-dga-name", enc(ESCALATED | TWICE, query("kqvwxjzrtplmnbvcxqwe.net"), ok_a))
    add("escalated-upstream-fails", enc(ESCALATED | UPSTREAM_FAILS, query("xjw3kqpz0a.net"), ok_a))
    add("escalated-allow-exception", enc(ESCALATED, query("ok.bad.test"), ok_a))
    add("reverse-name", enc(0, query("10.2.0.192.in-addr.arpa", "PTR"), up([rr(PTR_Q, "PTR", name("host.test"))])))
    add("ioc-ip", enc(TWICE, query("c2.example"), up([a("192.0.2.66")])))
    add("ioc-cidr", enc(0, query("c3.example"), up([a("198.51.100.7")])))
    # Answer records start after the header and the question; CNAME rdata 12 bytes after that.
    def rdata_at(qname, records_before=b""):
        return struct.pack(">H", 0xc000 | (12 + len(name(qname)) + 4 + len(records_before) + 12))
    add("ioc-cname", enc(0, query("www.example"), up([rr(PTR_Q, "CNAME", name("ioc.test")), a("192.0.2.1", owner=rdata_at("www.example"))])))
    # IOC hits on shared infrastructure (logged, answered): a listed CDN edge range, a popular
    # site on a listed address, a listed public-service domain, a listed public suffix.
    add("ioc-shared-edge", enc(TWICE, query("shop.example"), up([a("104.16.1.1")])))
    add("ioc-shared-popular", enc(0, query("www.google.com"), up([a("198.51.100.7")])))
    add("ioc-shared-listed-service", enc(0, query("pastebin.com"), up([a("192.0.2.10")])))
    add("ioc-shared-listed-suffix", enc(0, query("someone.github.io"), up([a("192.0.2.10")])))
    first = rr(PTR_Q, "CNAME", name("b.test"))
    second = rr(rdata_at("alias.test"), "CNAME", name("c.test"))
    add("cname-chain", enc(TWICE, query("alias.test"), up([first, second, a("192.0.2.11", owner=rdata_at("alias.test", first))])))
    add("flux-many-ips", enc(0, query("flux.example"), up([a(f"{20 + i}.{i * 7 % 250}.{i}.1", ttl=60) for i in range(30)])))
    add("ns-with-glue", enc(0, query("test", "NS"), up([rr(PTR_Q, "NS", name("ns1.test"))] + [a("192.0.2.53", owner=name("ns1.test"))], an=1, ar=1)))

    # Upstream answers: negative, errors, odd TTLs, broken records.
    add("up-nxdomain-soa", enc(TWICE, query("nothere.test"), up([soa()], rcode=3, an=0, ns=1)))
    add("up-nodata-soa", enc(TWICE, query("www.test", "MX"), up([soa()], an=0, ns=1)))
    add("up-nxdomain-no-soa", enc(0, query("nothere.test"), up([], rcode=3)))
    add("up-servfail", enc(0, query("www.test"), up([], rcode=2)))
    add("up-refused", enc(0, query("www.test"), up([], rcode=5)))
    add("up-ttl-0", enc(TWICE, query("www.test"), up([a("192.0.2.10", ttl=0)])))
    add("up-ttl-max", enc(TWICE, query("www.test"), up([a("192.0.2.10", ttl=0xffffffff)])))
    add("up-soa-ttl-huge", enc(TWICE, query("nothere.test"), up([soa(ttl=0x7fffffff, minimum=0xffffffff)], rcode=3, an=0, ns=1)))
    add("up-tc-set", enc(0, query("www.test"), up([a("192.0.2.10")], flags=0x8380)))
    add("up-opt-in-additional", enc(0, query("www.test", edns=opt(4096, do=True)), up([a("192.0.2.10"), opt(4096, do=True)], an=1, ar=1)))
    add("up-rdlen-past-end", enc(0, query("www.test"), up([b"\xc0\x0c\0\x01\0\x01\0\0\x01\x2c\x00\x40\xc0\x00"])))
    add("up-a-rdlen-3", enc(0, query("www.test"), up([rr(PTR_Q, "A", b"\x01\x02\x03")])))
    add("up-counts-too-high", enc(0, query("www.test"), up([a("192.0.2.10")], an=5)))
    add("up-compression-loop", enc(0, query("www.test"), up([b"\xc0\x1d\xc0\x1b\0\x01\0\x01\0\0\x01\x2c\0\x04\xc0\0\x02\x0a"])))
    add("up-pointer-forward", enc(0, query("www.test"), up([b"\xc0\xff\0\x01\0\x01\0\0\x01\x2c\0\x04\xc0\0\x02\x0a"])))
    add("up-cname-loop", enc(0, query("www.test"), up([rr(PTR_Q, "CNAME", b"\xc0\x0c")])))
    add("up-header-only", enc(0, query("www.test"), header(0, 0x8180, 1, 0, 0, 0)))
    add("up-empty", enc(0, query("www.test"), b""))
    add("up-timeout", enc(UPSTREAM_FAILS | TWICE, query("www.test")))

    # Upstream garbage as is (RAW): random bytes, wrong question, truncated header, no QR.
    rnd = random.Random(6)
    add("raw-random", enc(RAW, query("www.test"), bytes(rnd.getrandbits(8) for _ in range(80))))
    good = header(0x1234, 0x8180, 1, 1, 0, 0) + name("www.test") + b"\0\x01\0\x01" + a("192.0.2.10")
    add("raw-good", enc(RAW | TWICE, query("www.test"), good))
    add("raw-wrong-question", enc(RAW, query("www.test"), header(0x1234, 0x8180, 1, 1, 0, 0) + name("evil.test") + b"\0\x01\0\x01" + a("192.0.2.66")))
    add("raw-wrong-type", enc(RAW, query("www.test"), header(0x1234, 0x8180, 1, 1, 0, 0) + name("www.test") + b"\0\x1c\0\x01" + a("192.0.2.66")))
    add("raw-truncated-header", enc(RAW, query("www.test"), good[:7]))
    add("raw-no-qr", enc(RAW, query("www.test"), header(0x1234, 0x0100, 1, 1) + good[12:]))
    add("raw-qd0", enc(RAW, query("www.test"), header(0x1234, 0x8180, 0, 1) + a("192.0.2.10", owner=name("www.test"))))
    add("raw-cut-in-record", enc(RAW, query("www.test"), good[:-3]))

    for label, data in seeds.items():
        with open(os.path.join(OUT, label), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {OUT}")


if __name__ == "__main__":
    main()
