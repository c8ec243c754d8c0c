"""The guarded restart where PID 1 is not systemd (this very machine): a restart command.

Given a Redis started from its own redis.conf (pidfile, RDB save points, a password) with
keys written since its last save, when a fix moves it to another port in redis.conf only
(`live: false`: Redis 7 could move it live) and notifies the
`redis_restart` handler with a `restart_command`, then the handler saves first, restarts
it with that command and checks every key came back — asking the restarted server on the
NEW port, where the config as planned says it listens. With persistence off the same run
is refused before redis.conf is touched, and the server keeps running with its keys.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from redmedic.cli import main

PASSWORD = "Itg-restart-s3cret"
KEYS = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A redis-server of this test, started from `conf`, found by its pidfile."""

    dir: Path
    port: int

    @property
    def conf(self) -> Path:
        return self.dir / "redis.conf"

    @property
    def pid(self) -> int:
        return int((self.dir / "redis.pid").read_text())

    def cli(self, *args: str, port: int | None = None) -> str:
        env = {**os.environ, "REDISCLI_AUTH": PASSWORD}
        argv = ["redis-cli", "-p", str(port or self.port), *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30).stdout


def started(directory: Path, extra: str = "") -> Server:
    port = free_port()
    server = Server(directory, port)
    server.conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\npidfile {directory}/redis.pid\n"
        f"daemonize yes\nlogfile {directory}/redis.log\nrequirepass {PASSWORD}\n{extra}"
    )
    subprocess.run(["redis-server", str(server.conf)], check=True, timeout=30)
    for _ in range(300):  # bounded: up to 30 s on a busy machine
        if server.cli("PING").strip() == "PONG":
            break
        time.sleep(0.1)
    server.cli("EVAL", f"for i=1,{KEYS} do redis.call('SET', 'k'..i, 'v') end", "0")
    return server


@pytest.fixture
def redis_dir(tmp_path: Path) -> Iterator[Path]:
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("this machine runs systemd: the restart command is for hosts without it")
    directory = tmp_path / "redis"
    directory.mkdir()
    yield directory
    pidfile = directory / "redis.pid"
    if pidfile.exists():  # stop only the server this test started, by its PID
        subprocess.run(["kill", pidfile.read_text().strip()], check=False)


def run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: Server, new_port: int
) -> tuple[int, list[dict[str, Any]]]:
    restart = (
        f"kill $(cat {server.dir}/redis.pid); "
        f"while [ -e {server.dir}/redis.pid ]; do sleep 0.2; done; redis-server {server.conf}"
    )
    playbook = f"""\
name: Move Redis to another port
hosts: all
fix:
  - name: Listen on the new port
    redis_config: {{path: {server.conf}, set: {{port: {new_port}}}, live: false}}
    notify: [restart redis]
handlers:
  - name: restart redis
    redis_restart:
      unit: redmedic-itg-redis
      restart_command: "{restart}"
      config: {server.conf}
"""
    (tmp_path / "pb.yaml").write_text(playbook)
    (tmp_path / "inv.yaml").write_text("all:\n  hosts:\n    box: {ansible_connection: local}\n")
    code = main(["run", str(tmp_path / "pb.yaml"), "-i", str(tmp_path / "inv.yaml"),
                 "--output", "json", "--yes",
                 "--audit-log", str(tmp_path / "audit.jsonl")])  # fmt: skip
    out = capsys.readouterr().out
    assert PASSWORD not in out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return code, events


def test_the_restart_command_saves_first_and_the_new_port_is_checked(
    redis_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = started(redis_dir)
    pid, new_port = server.pid, free_port()
    code, events = run(tmp_path, capsys, server, new_port)
    finished = [e for e in events if e["event"] == "host_finished"][-1]
    assert code == 0, finished
    server.port = new_port
    assert server.pid != pid
    assert server.cli("DBSIZE").strip() == str(KEYS)
    log = (redis_dir / "redis.log").read_text()
    assert 0 <= log.find("Background saving terminated with success") < log.find("SIGTERM")


def test_with_persistence_off_nothing_changes(
    redis_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = started(redis_dir, 'save ""\nappendonly no\n')
    conf, pid = server.conf.read_bytes(), server.pid
    code, events = run(tmp_path, capsys, server, free_port())
    finished = [e for e in events if e["event"] == "host_finished"][-1]
    assert code != 0 and "redis_allow_data_loss=true" in finished["message"], finished
    assert server.conf.read_bytes() == conf and server.pid == pid
    assert server.cli("DBSIZE").strip() == str(KEYS)
