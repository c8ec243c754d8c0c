"""The shipped triage's fleet for bench/run.py: each bench host gets the demo's broken Redis.

`playbooks/connection-refused.yaml --check` needs a Redis to diagnose. Each host gets what
`make demo` gives its one host (tests/support/demo.py): a real redis-server from a copy of
Debian's redis.conf on its own free port, bound to 127.0.0.1 only — the classic cause of
"connection refused". So every run takes the same path: facts, the control probe is
refused, the host-side probe (through the SSH connection) gets PONG, the log scan, the
triage names `bind`, and the plan is the bind fix, a requirepass and the restart handler.
The inventory gives the login user's sudo password (the playbook becomes root), the
host's redis.conf, port and restart command (no systemd here), and a redis_password.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.demo import broken_redis_conf, redis_server, restart_command
from tests.support.redis_server import free_port


@dataclass(frozen=True)
class TriageRedis:
    conf: Path
    port: int


@contextlib.contextmanager
def triage_redis(workdirs: dict[str, Path]) -> Iterator[dict[str, TriageRedis]]:
    """One loopback-only redis-server per host (name -> its workdir); all stopped by PID."""
    with contextlib.ExitStack() as stack:
        found = {}
        for name, workdir in workdirs.items():
            folder = workdir / "triage-redis"
            folder.mkdir(exist_ok=True)
            port = free_port()
            conf = broken_redis_conf(folder, port)
            stack.enter_context(redis_server(conf, port))
            found[name] = TriageRedis(conf, port)
        yield found


def inventory_vars(redis: TriageRedis, become_password: str) -> dict[str, Any]:
    """What the triage needs from the inventory for one host, beside how to reach it."""
    restart = restart_command(redis.conf, redis.conf.parent / "redis.pid")
    return {
        "ansible_become": True,
        "ansible_become_password": become_password,
        "redis_conf": str(redis.conf),
        "redis_port": redis.port,
        "redis_restart_command": restart,
        "redis_password": "bench-" + secrets.token_urlsafe(12),
    }
