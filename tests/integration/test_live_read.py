"""Reading the running Redis costs the host one redis-cli where it answers at once.

A redis-cli start is ~6 ms of a host's CPU, and a triage reads the running values on every
host. Given a real redis-server, when the live read's script runs, then it asked with ONE
redis-cli (its PING in the same session) and got the values; where the first place to
ask does not answer, it tries the next, and where none does it says why, as before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from redmedic.connection.scripts import split_sections
from redmedic.redis.configset import Endpoint, read_script, state_script
from redmedic.steps.redis_config import parse_live, running_version
from tests.support.redis_server import RedisServer, free_port, running_redis

MARK = "@@mark-"


@pytest.fixture
def counted_cli(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """An environment whose `redis-cli` is the real one, each start logged to a file."""
    real = shutil.which("redis-cli")
    assert real, "redis-cli is installed with the test dependencies"
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "starts"
    wrapper = folder / "redis-cli"
    wrapper.write_text(f'#!/bin/sh\necho start >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    yield {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}, log


def run(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["sh", "-s"], input=script, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def starts(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def at(server: RedisServer, password: str = "") -> Endpoint:
    return Endpoint(("-h", server.host, "-p", str(server.port)), password)


def test_the_running_values_come_from_one_redis_cli(
    counted_cli: tuple[dict[str, str], Path],
) -> None:
    env, log = counted_cli
    with running_redis("--maxclients", "77") as server:
        sections = split_sections(run(read_script([at(server)], ["maxclients"], MARK), env), MARK)
    assert parse_live(sections) == ({"maxclients": "77"}, None)
    assert running_version(sections) is not None
    assert "Max open files" in sections["@limits"]
    assert starts(log) == 1


def test_a_place_that_does_not_answer_is_passed_over(
    counted_cli: tuple[dict[str, str], Path],
) -> None:
    env, log = counted_cli
    nobody = Endpoint(("-h", "127.0.0.1", "-p", str(free_port())))
    with running_redis("--requirepass", "right") as server:
        wrong, right = at(server, "wrong"), at(server, "right")
        script = read_script([nobody, wrong, right], ["maxclients"], MARK)
        values, error = parse_live(split_sections(run(script, env), MARK))
        state = run(state_script([nobody, right], {"port": str(server.port)}, ["port"]), env)
    assert (values, error) == ({"maxclients": "10000"}, None)
    assert starts(log) == 3 + 2  # one session per place asked, no separate PING
    assert state == f"port {server.port}\n"


def test_where_nobody_answers_the_read_says_where_it_asked(
    counted_cli: tuple[dict[str, str], Path],
) -> None:
    env, _ = counted_cli
    port = free_port()
    script = read_script([Endpoint(("-h", "127.0.0.1", "-p", str(port)))], ["bind"], MARK)
    values, error = parse_live(split_sections(run(script, env), MARK))
    assert values == {}
    assert error is not None and f"127.0.0.1:{port}" in error and "refused" in error
