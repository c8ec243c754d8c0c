"""The examples in examples/ do what they say, against real redis-server processes on loopback.

Given a host reached with `ansible_connection: local` whose Redis is (or is not) set up the
way an example checks, when I run that example, then it passes or names the problem.
Each example also validates and passes the editor schema, like a shipped playbook.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from redmedic.cli import main
from redmedic.playbook import validate_playbook
from redmedic.steps import builtin_step_types
from tests.support.redis_server import RedisServer, free_port, running_redis, self_signed_cert

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCHEMA_LINE = "# yaml-language-server: $schema=../schema/playbook.schema.json\n"


def run_example(
    name: str, host_vars: dict[str, object], tmp_path: Path, *flags: str
) -> tuple[int, list[dict[str, object]]]:
    """`redmedic run examples/NAME` on one local host; `--check` unless flags say otherwise."""
    inventory = tmp_path / "inventory.yaml"
    box = {"ansible_connection": "local", **host_vars}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"box": box}}}))
    argv = ["run", str(EXAMPLES / name), "-i", str(inventory), "--output", "json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*argv, *(flags or ["--check"])])
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def status(events: list[dict[str, object]]) -> object:
    return events[-1]["hosts"]["box"]  # type: ignore[index]


def failures(events: list[dict[str, object]]) -> str:
    return " | ".join(
        str(e.get("message") or e.get("detail") or e.get("reason"))
        for e in events
        if e.get("status") == "failed" or e["event"] in ("host_finished", "rolled_back")
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates_and_passes_the_schema(path: Path) -> None:
    text = path.read_text()
    assert text.startswith(SCHEMA_LINE)
    assert validate_playbook(path, builtin_step_types()) == []
    schema = json.loads((ROOT / "schema" / "playbook.schema.json").read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(yaml.safe_load(text))) == []


def test_the_examples_cover_sentinel_multi_instance_and_tls() -> None:
    names = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert {"sentinel-aware.yaml", "multi-instance.yaml", "tls-probe.yaml"} <= names


# -- Sentinel ------------------------------------------------------------------------------


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def sentinel_for(tmp_path: Path) -> Iterator[Callable[[int], int]]:
    """Starts a Sentinel monitoring 127.0.0.1:PORT as `mymaster`; stops it by its PID."""
    started: list[subprocess.Popen[bytes]] = []

    def start(master_port: int) -> int:
        port = free_port()
        conf = tmp_path / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
            "sentinel down-after-milliseconds mymaster 60000\n"  # never down mid-test
        )
        process = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel", "--logfile", str(tmp_path / "s.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        deadline = time.monotonic() + 10
        while not _answers(port):
            assert process.poll() is None and time.monotonic() < deadline, "sentinel did not start"
            time.sleep(0.05)
        return port

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def test_sentinel_names_a_master_that_answers(
    redis_on_loopback: RedisServer, sentinel_for: Callable[[int], int], tmp_path: Path
) -> None:
    sentinel = sentinel_for(redis_on_loopback.port)
    code, events = run_example("sentinel-aware.yaml", {"sentinel_port": sentinel}, tmp_path)
    assert code == 0, failures(events)
    assert status(events) == {"status": "ok", "changed": 0, "failed": 0}


def test_sentinel_pointing_at_a_dead_master_fails_the_host(
    sentinel_for: Callable[[int], int], tmp_path: Path
) -> None:
    sentinel = sentinel_for(free_port())
    code, events = run_example("sentinel-aware.yaml", {"sentinel_port": sentinel}, tmp_path)
    assert code == 1
    assert "The master Sentinel names answers PING" in failures(events)


# -- several instances on one host ---------------------------------------------------------


@pytest.fixture
def instances(
    tmp_path: Path, redis_on_loopback: RedisServer
) -> Iterator[tuple[dict[str, object], int, int]]:
    """Instance A runs; instance B (a free port) is down. Its restart starts a daemon
    whose pidfile lets the test stop it again."""
    a, b = redis_on_loopback.port, free_port()
    for port in (a, b):
        (tmp_path / f"redis-{port}.conf").write_text(f"# instance {port}\nport {port}\n")
    restart = (
        "redis-server --port {port} --bind 127.0.0.1 --daemonize yes --save '' "
        f"--appendonly no --dir {tmp_path} --pidfile {tmp_path}/redis-{{port}}.pid "
        f"--logfile {tmp_path}/redis-{{port}}.log"
    )
    host_vars: dict[str, object] = {
        "redis_ports": [a, b],
        "redis_conf_pattern": f"{tmp_path}/redis-{{port}}.conf",
        "redis_restart_pattern": restart,
    }
    yield host_vars, a, b
    pidfile = tmp_path / f"redis-{b}.pid"
    deadline = time.monotonic() + 5
    while not pidfile.exists() and _answers(b) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pidfile.exists():
        os.kill(int(pidfile.read_text()), signal.SIGTERM)


def test_only_the_instance_that_is_down_is_restarted(
    instances: tuple[dict[str, object], int, int], tmp_path: Path
) -> None:
    host_vars, a, b = instances
    code, events = run_example("multi-instance.yaml", host_vars, tmp_path, "--check")
    assert code == 0, failures(events)
    planned = [str(e["description"]) for e in events if e["event"] == "change_planned"]
    assert len(planned) == 1 and f"--port {b} " in planned[0] and f"--port {a} " not in planned[0]
    assert not _answers(b)

    code, events = run_example("multi-instance.yaml", host_vars, tmp_path, "--yes")
    assert code == 0, failures(events)
    assert status(events) == {"status": "changed", "changed": 1, "failed": 0}
    assert _answers(a) and _answers(b)


def test_a_copied_config_that_names_another_port_is_reported_not_restarted(
    instances: tuple[dict[str, object], int, int], tmp_path: Path
) -> None:
    host_vars, a, b = instances
    (tmp_path / f"redis-{b}.conf").write_text(f"# copied from {a}\nport {a}\n")
    code, events = run_example("multi-instance.yaml", host_vars, tmp_path, "--yes")
    assert code == 1
    assert f"{b} but {tmp_path}/redis-{b}.conf says port {a}" in failures(events)
    assert not _answers(b)


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A Redis with a plain port and a TLS port, its certificate valid for one day."""
    cert, key = self_signed_cert(tmp_path)
    tls_port = free_port()
    directives = [
        ("tls-port", str(tls_port)),
        ("tls-cert-file", str(cert)),
        ("tls-key-file", str(key)),
        ("tls-ca-cert-file", str(cert)),
        ("tls-auth-clients", "no"),
    ]
    args = [part for name, value in directives for part in (f"--{name}", value)]
    with running_redis(*args) as server:
        conf = tmp_path / "redis.conf"
        conf.write_text(f"port {server.port}\n" + "".join(f"{n} {v}\n" for n, v in directives))
        yield {
            "redis_conf": str(conf),
            "redis_tls_port": tls_port,
            "redis_tls_ca": str(cert),
            "redis_tls_cert": str(cert),
            "plain_port": server.port,
        }


def test_tls_port_speaks_tls_and_answers_a_tls_client(
    tls_redis: dict[str, object], tmp_path: Path
) -> None:
    code, events = run_example("tls-probe.yaml", {**tls_redis, "tls_min_days": 0}, tmp_path)
    assert code == 0, failures(events)
    assert status(events) == {"status": "ok", "changed": 0, "failed": 0}


def test_a_certificate_about_to_expire_fails_the_host(
    tls_redis: dict[str, object], tmp_path: Path
) -> None:
    code, events = run_example("tls-probe.yaml", tls_redis, tmp_path)  # wants 14 days
    assert code == 1
    assert "the certificate expires within 14 days" in failures(events)


def test_the_plain_port_is_not_mistaken_for_the_tls_port(
    tls_redis: dict[str, object], tmp_path: Path
) -> None:
    plain = int(
        str(tls_redis["redis_conf"] and Path(str(tls_redis["redis_conf"])).read_text().split()[1])
    )
    host_vars = {**tls_redis, "tls_min_days": 0, "redis_tls_port": plain}
    code, events = run_example("tls-probe.yaml", host_vars, tmp_path)
    assert code == 1
    assert f"redis.conf has no `tls-port {plain}`" in failures(events)
