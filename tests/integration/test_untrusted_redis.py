"""Discovery trusts only the unit's, root's or the redis user's redis-server.

Given Redis is down and an unprivileged user runs their own process named redis-server on
the port clients expect, with a config file of their own holding a password, when
`redis_facts` gathers the host or `redis_config` looks for the file to edit, as root, then
that process is not taken as Redis: its config file is not the one read (or edited), its
password is not sent, and it is reported as ignored.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redmedic.connection import LocalConnection
from redmedic.connection.scripts import new_marker, split_sections
from redmedic.model.inventory import Host
from redmedic.redis.facts import facts_script
from redmedic.steps.redis_config import RedisConfig, RedisConfigArgs
from redmedic.steps.redis_facts import parse_facts
from redmedic.testing import step_context
from tests.support.pool import STATE_DIR
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration

STRANGER = "redmedic-t2"  # tests/support/loopback.py's second login user
LOCAL = Host(name="box", address="127.0.0.1", connection="local")


@pytest.fixture
def their_dir() -> Iterator[Path]:
    """A directory STRANGER can read (pytest's temp dirs are root's alone)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="stranger-", dir=STATE_DIR))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


@contextlib.contextmanager
def strangers_redis(directory: Path, port: int) -> Iterator[int]:
    """`redis-server THEIR.conf` run by STRANGER on `port`; yields its PID, stopped by PID."""
    conf = directory / "theirs.conf"
    conf.write_text(f'port {port}\nbind 127.0.0.1\nsave ""\nrequirepass stranger-pw\n')
    conf.chmod(0o644)
    process = subprocess.Popen(
        ["runuser", "-u", STRANGER, "--", "redis-server", str(conf), "--dir", "/tmp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the stranger's redis-server exited"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "the stranger's redis-server never listened"
            time.sleep(0.05)
        pid = int(subprocess.run(
            ["pgrep", "-x", "-u", STRANGER, "-P", str(process.pid), "redis-server"],
            capture_output=True, text=True, check=True,
        ).stdout.split()[0])  # fmt: skip
        yield pid
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_a_redis_server_of_another_user_is_not_trusted(their_dir: Path) -> None:
    port = free_port()
    with strangers_redis(their_dir, port) as pid, LocalConnection(LOCAL) as conn:
        marker = new_marker()
        script = facts_script(
            marker, unit=None, config=None, port=port, lines=5, has_password=False
        )
        sections = split_sections(conn.run(script).stdout, marker)
    facts, secrets = parse_facts(sections, port)

    assert {"pid": pid, "user": STRANGER} in facts["untrusted"]
    assert facts["pid"] != pid
    assert facts["config"]["path"] != str(their_dir / "theirs.conf")
    assert "stranger-pw" not in secrets


def test_redis_config_discovery_skips_it_too_and_says_so(their_dir: Path) -> None:
    # No systemd on this machine: discovery falls to the running redis-server processes.
    with strangers_redis(their_dir, free_port()) as pid, LocalConnection(LOCAL) as conn:
        found = RedisConfig().diagnose(RedisConfigArgs(), step_context(conn))

    assert found.loaded.config.main != str(their_dir / "theirs.conf")
    assert found.facts["discovered_by"] != f"process {pid}"
    assert {"pid": pid, "user": STRANGER} in found.loaded.ignored
    assert any(
        f.cause == "untrusted-process" and f.summary.startswith(f"redis-server pid {pid} ")
        for f in found.findings
    )
