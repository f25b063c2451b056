#!/usr/bin/env bash
# Obtain redistributable IP->ASN and IP->country databases for dnsward's answer stage
# (crates/dnsward-intel). Nothing here is needed to build or test dnsward: without the
# databases the answer stage runs on prefix-based features only.
#
#   tools/geo/fetch.sh [OUT_DIR]          (default: dnsward-data/geo, gitignored)
#
# Sources (npm registry, via `npm pack`; pin versions with ASN_VERSION / COUNTRY_VERSION):
#   @ip-location-db/asn                         CSV, converted here to a GeoLite2-ASN layout MMDB
#                                               (npm has no @ip-location-db/asn-mmdb package)
#   @ip-location-db/geo-whois-asn-country-mmdb  MMDB with a flat `country_code` field, used as is
# Licences: ASN data CC BY 4.0 — credit RouteViews (routeviews.org), NRO (nro.net) and DB-IP
# (db-ip.com); country data CC0 / CC BY 4.0 — credit NRO. The licence files and an
# ATTRIBUTION.txt are written next to the databases; keep them with any copy you ship.
#
# Config afterwards (dnsward.toml):
#   [intel]
#   asn_mmdb = "dnsward-data/geo/asn.mmdb"
#   country_mmdb = "dnsward-data/geo/country.mmdb"
# MaxMind GeoLite2-ASN / GeoLite2-Country (or GeoIP2) files work too (licence from MaxMind).
set -euo pipefail

OUT=${1:-dnsward-data/geo}
ASN_VERSION=${ASN_VERSION:-latest}
COUNTRY_VERSION=${COUNTRY_VERSION:-latest}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

command -v npm >/dev/null || { echo "fetch.sh: npm is required (apt-get install npm)" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/asn" "$tmp/country"
(cd "$tmp/asn" && npm pack --silent "@ip-location-db/asn@${ASN_VERSION}" >/dev/null && tar xzf ./*.tgz)
(cd "$tmp/country" && npm pack --silent "@ip-location-db/geo-whois-asn-country-mmdb@${COUNTRY_VERSION}" >/dev/null && tar xzf ./*.tgz)
asn_ver=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$tmp/asn/package/package.json" | head -1)
cc_ver=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$tmp/country/package/package.json" | head -1)

echo "converting @ip-location-db/asn@${asn_ver} CSV to MMDB..." >&2
(cd "$ROOT" && cargo run -q -p dnsward-intel --release --example asn-csv-to-mmdb -- \
    "$OUT/asn.mmdb" "$tmp/asn/package/asn-ipv4.csv" "$tmp/asn/package/asn-ipv6.csv")
cp "$tmp/country/package/geo-whois-asn-country.mmdb" "$OUT/country.mmdb"

for f in DBIP-LICENSE NRO_LICENSE ROUTEVIEWS-LICENSE MODIFICATIONS; do
    [ -f "$tmp/asn/package/$f" ] && cp "$tmp/asn/package/$f" "$OUT/asn-$f"
done
[ -f "$tmp/country/package/NRO_LICENSE" ] && cp "$tmp/country/package/NRO_LICENSE" "$OUT/country-NRO_LICENSE"
cat > "$OUT/ATTRIBUTION.txt" <<TXT
asn.mmdb     built by dnsward (tools/geo/fetch.sh) from npm @ip-location-db/asn@${asn_ver}
             (RouteViews + NRO RIR delegation data + DB-IP IP to ASN Lite), CC BY 4.0.
             IP to ASN data by RouteViews (https://www.routeviews.org/), NRO (https://www.nro.net/)
             and DB-IP (https://db-ip.com), licensed under CC BY 4.0. Modified: converted to MMDB.
country.mmdb npm @ip-location-db/geo-whois-asn-country-mmdb@${cc_ver}, data by NRO (https://www.nro.net/).
fetched      $(date -u +%Y-%m-%dT%H:%M:%SZ)
TXT
ls -l "$OUT" >&2
echo "done: $OUT/asn.mmdb $OUT/country.mmdb" >&2
