"""A redis-server process of another user is not trusted, and the operator is told.

Given what `redis_facts` gathered on a host whose Redis is down while an unprivileged user
runs their own redis-server on the port clients expect
(tests/data/adversarial/changes-untrusted-redis-gather.json), then the facts name no Redis
process and list the stranger's as ignored, and the step reports a finding saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

from redmedic.steps.redis_facts import Gathered, RedisFacts, parse_facts

CAPTURED = (
    Path(__file__).parents[1] / "data" / "adversarial" / "changes-untrusted-redis-gather.json"
)


def test_a_redis_server_of_another_user_is_ignored_with_a_finding() -> None:
    sections = json.loads(CAPTURED.read_text())
    facts, _ = parse_facts(sections, 6390)

    assert facts["pid"] is None
    assert facts["untrusted"] == [{"pid": 20998, "user": "redmedic-t2"}]
    [finding] = RedisFacts().registered(Gathered(facts)).findings
    assert finding.cause == "untrusted-process" and not finding.fixable
    assert finding.summary.startswith("redis-server pid 20998 runs as redmedic-t2")
    assert "ignored" in finding.summary
