#!/usr/bin/env python3
"""Converts uap-core's regexes.yaml to the JSON that src/user_agent.rs embeds.

    update_uap_core.py path/to/regexes.yaml [--out data/uap-core/regexes.json]

Keeps the three parser lists (user_agent_parsers, os_parsers, device_parsers) in their
order, which is significant: the first matching regex wins. The output is compact and
deterministic, so a regeneration from the same regexes.yaml changes nothing. Every value
must be a string (the Rust side deserializes them as such); anything else is an error
rather than a silent conversion. Needs PyYAML.
"""

import argparse
import json
import os
import sys

import yaml

KEYS = ("user_agent_parsers", "os_parsers", "device_parsers")
DEFAULT_OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "uap-core", "regexes.json"
)


def convert(data):
    if not isinstance(data, dict):
        raise ValueError("regexes.yaml: top level is not a mapping")
    out = {}
    for key in KEYS:
        parsers = data.get(key)
        if not isinstance(parsers, list) or not parsers:
            raise ValueError(f"regexes.yaml: {key} is missing or empty")
        for index, parser in enumerate(parsers):
            if not isinstance(parser, dict) or not isinstance(parser.get("regex"), str):
                raise ValueError(f"regexes.yaml: {key}[{index}] has no regex")
            for field, value in parser.items():
                if not isinstance(value, str):
                    raise ValueError(
                        f"regexes.yaml: {key}[{index}].{field} is {value!r}, not a string"
                    )
        out[key] = parsers
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("regexes_yaml", help="uap-core's regexes.yaml")
    parser.add_argument("--out", default=DEFAULT_OUT, help="where to write regexes.json")
    args = parser.parse_args()
    with open(args.regexes_yaml, encoding="utf-8") as f:
        data = convert(yaml.safe_load(f))
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.write("\n")
    counts = ", ".join(f"{len(data[k])} {k}" for k in KEYS)
    print(f"wrote {os.path.normpath(args.out)}: {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
