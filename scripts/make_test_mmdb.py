#!/usr/bin/env python3
"""Writes small MaxMind-format (.mmdb) databases for bucketlog's tests and benchmarks.

    make_test_mmdb.py OUT_DIR                  # the test databases (below)
    make_test_mmdb.py OUT_DIR --networks N     # plus bench-city.mmdb and bench-asn.mmdb

No MaxMind data is used or shipped: every network here is a documentation range (RFC 5737,
RFC 3849) or, for the benchmark, generated. The records have the shape of GeoLite2's, so
the reader decodes them as it would the real files. Needs the PyPI package mmdb-writer.

Test databases (IPv6 trees holding IPv4 too, as GeoLite2's do):
- test-city.mmdb ("GeoLite2-City"):
    192.0.2.0/24     DE, Berlin
    198.51.100.0/24  US, Seattle
    203.0.113.0/24   JP (country only, no city)
    2001:db8::/32    NL, Amsterdam
- test-country.mmdb ("GeoLite2-Country"): the same countries, no cities.
- test-asn.mmdb ("GeoLite2-ASN"):
    192.0.2.0/24     AS64500 Example Telecom
    198.51.100.0/24  AS4200000001 Example Cloud (a four-byte ASN, past i32::MAX)
    2001:db8::/32    AS64501 Example Six
  203.0.113.0/24 has no ASN record, and 10.0.0.0/8 is in no network of any database.
"""

import argparse
import os
import random

from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPSet

CITY = [
    ("192.0.2.0/24", "DE", "Germany", "Berlin"),
    ("198.51.100.0/24", "US", "United States", "Seattle"),
    ("203.0.113.0/24", "JP", "Japan", None),
    ("2001:db8::/32", "NL", "Netherlands", "Amsterdam"),
]
ASN = [
    ("192.0.2.0/24", 64500, "Example Telecom"),
    ("198.51.100.0/24", 4200000001, "Example Cloud"),
    ("2001:db8::/32", 64501, "Example Six"),
]
LANGUAGES = ["de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN"]


def names(english):
    """A GeoLite2-style names map: every language, English as given."""
    return {lang: english if lang == "en" else f"{english} ({lang})" for lang in LANGUAGES}


def geo_record(iso, country, city, with_city):
    record = {
        "continent": {"code": "EU", "geoname_id": MmdbU32(6255148), "names": names("Europe")},
        "country": {"geoname_id": MmdbU32(2921044), "iso_code": iso, "names": names(country)},
        "registered_country": {
            "geoname_id": MmdbU32(2921044),
            "iso_code": iso,
            "names": names(country),
        },
    }
    if with_city and city:
        record["city"] = {"geoname_id": MmdbU32(2950159), "names": names(city)}
        record["location"] = {
            "accuracy_radius": MmdbU32(200),
            "latitude": 52.5,
            "longitude": 13.4,
            "time_zone": "Europe/Berlin",
        }
        record["postal"] = {"code": "10115"}
        record["subdivisions"] = [
            {"geoname_id": MmdbU32(2950157), "iso_code": "BE", "names": names("Land " + city)}
        ]
    return record


def writer(database_type):
    return MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=LANGUAGES,
        description="bucketlog test data",
        int_type="u32",
    )


def write_tests(out):
    city, country, asn = writer("GeoLite2-City"), writer("GeoLite2-Country"), writer("GeoLite2-ASN")
    for network, iso, name, town in CITY:
        city.insert_network(IPSet([network]), geo_record(iso, name, town, True))
        country.insert_network(IPSet([network]), geo_record(iso, name, town, False))
    for network, number, org in ASN:
        asn.insert_network(
            IPSet([network]),
            {"autonomous_system_number": MmdbU32(number), "autonomous_system_organization": org},
        )
    city.to_db_file(os.path.join(out, "test-city.mmdb"))
    country.to_db_file(os.path.join(out, "test-country.mmdb"))
    asn.to_db_file(os.path.join(out, "test-asn.mmdb"))


# The first octets `bucketlog gen` gives IPv4 clients (src/generate.rs), and its IPv6 prefix.
GENERATED_OCTETS = (10, 172, 192, 198, 203)
GENERATED_V6 = "2001:db8::/32"


def write_bench(out, count, seed):
    """Databases that answer for every client `bucketlog gen` writes, as a real database
    answers for nearly every routable address: each /16 of the generator's first octets,
    and `count` random /24s inside them, so a lookup walks 16 to 24 levels of an IPv4
    tree. As in a real database, networks share records: each gets one of 10,000 City
    records (full GeoLite2-shaped records, 250 countries) and one of 20,000 AS records."""
    rng = random.Random(seed)
    city, asn = writer("GeoLite2-City"), writer("GeoLite2-ASN")
    networks = [f"{a}.{b}.0.0/16" for a in GENERATED_OCTETS for b in range(256)]
    networks.append(GENERATED_V6)
    inside = set()
    while len(inside) < count:
        inside.add((rng.choice(GENERATED_OCTETS), rng.randrange(256), rng.randrange(256)))
    networks += [f"{a}.{b}.{c}.0/24" for a, b, c in sorted(inside)]
    for network in networks:
        place = rng.randrange(10_000)
        iso = chr(ord("A") + place % 250 // 26 % 26) + chr(ord("A") + place % 26)
        system = rng.randrange(20_000)
        cidr = IPSet([network])
        city.insert_network(cidr, geo_record(iso, f"Country {iso}", f"City {place}", True))
        asn.insert_network(
            cidr,
            {
                "autonomous_system_number": MmdbU32(64512 + system),
                "autonomous_system_organization": f"Network {system}",
            },
        )
    city.to_db_file(os.path.join(out, "bench-city.mmdb"))
    asn.to_db_file(os.path.join(out, "bench-asn.mmdb"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write the .mmdb files to")
    parser.add_argument("--networks", type=int, default=0, help="also write benchmark databases")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_tests(args.out)
    if args.networks:
        write_bench(args.out, args.networks, args.seed)


if __name__ == "__main__":
    main()
