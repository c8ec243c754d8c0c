#!/usr/bin/env python3
"""An inventory script with _meta: one --list call gives everything."""

import json
import sys

INVENTORY = {
    "redis": {"hosts": ["sr1", "sr2"], "vars": {"who": "redis_script", "port": 6379}},
    "eu": {"hosts": ["sr1"], "children": ["edge"]},
    "edge": ["sr3"],
    "all": {"vars": {"who": "all_script"}},
    "_meta": {"hostvars": {"sr1": {"ansible_host": "10.2.0.1", "who": "sr1_script"}}},
}

if sys.argv[1:] == ["--list"]:
    print(json.dumps(INVENTORY))
else:
    print("{}")
