"""Fixes without a restart: connection-refused.yaml on Redis 7 hosts keeps every client.

User story: given Debian 12 hosts (Redis 7.0.15) each broken one way — Debian's loopback
bind, port 6380, protected mode without a password, maxclients reached, memory full under
noeviction — and an application already connected to each Redis, when I run
`connection-refused.yaml --yes`, then each host is fixed while Redis keeps running: the
redis-server PID is the same, the application's connection is the same one (same CLIENT
ID, never dropped: redis-py here does not reconnect), the running value equals the one
redis.conf now holds, the plan said "live, no restart" and no restart handler ran; and a
second `--check` run finds nothing. The new password never appears in the host's process
list while it is set, and a plan saved with --check --plan-out and applied later makes the
live change too.

The application: a redis-py client on this machine, connected through an SSH tunnel to
the host's loopback, so it is there also where Redis refuses remote clients (bind). The
maxclients host is full (the application plus one more connection): redmedic cannot get a
client slot either, so the extra connection leaves once the triage has named the cause —
clients come and go — and redmedic, which waits for a free slot, sets maxclients live.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from redmedic.model.plan import LIVE
from redmedic.redis import live, redisconf
from tests.support.nspawn import HostPool, SystemdHost
from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "connection-refused.yaml"
PASSWORD = "E2e-live-s3cret"
CONF = "/etc/redis/redis.conf"
RESTART = "systemctl restart redis-server"
OPEN = f"printf 'bind 0.0.0.0 -::*\\nrequirepass {PASSWORD}\\n' >> {CONF} && {RESTART}"
# overcommit is one kernel value for the whole machine: persisted, it is no cause here
OVERCOMMIT_PERSISTED = "printf 'vm.overcommit_memory = 1\\n' >> /etc/sysctl.conf"
FILL = (
    f"REDISCLI_AUTH={PASSWORD} redis-cli EVAL \"for i=1,5000 do redis.call('SET', 'k'..i, "
    "string.rep('x', 1000)) end\" 0 >/dev/null 2>&1; true"
)
# Every argument of every process, sampled until /tmp/redmedic-stop appears, one per line.
SAMPLE_ARGV = (
    "rm -f /tmp/redmedic-stop; setsid sh -c 'while [ ! -e /tmp/redmedic-stop ]; do "
    'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\000" "\\n"; done | sort -u '
    "> /tmp/redmedic-argv' </dev/null >/dev/null 2>&1 & echo $!"
)


def conf_line(text: str) -> str:
    return f"printf '{text}\\n' >> {CONF}"


@dataclass(frozen=True)
class Case:
    """One host: its fault, the directive the fix sets live and the value it must run with."""

    setup: tuple[str, ...]
    cause: str
    directive: str
    value: str
    port: int = 6379  # where the application is connected before the fix
    password: str | None = PASSWORD  # what the application AUTHs with
    crowd: bool = False  # one more connection fills maxclients until the triage is done
    sample_argv: bool = False  # watch the host's process list during the apply
    saved_plan: bool = False  # --check --plan-out, then `redmedic apply`


CASES: dict[str, Case] = {
    "bind": Case((), "bind", "bind", "0.0.0.0 -::*", password=None, sample_argv=True),
    "port": Case((OPEN, conf_line("port 6380"), RESTART), "wrong-port", "port", "6379", 6380),
    "protected-mode": Case(
        (conf_line("bind 0.0.0.0 -::*"), RESTART),
        "protected-mode",
        "requirepass",
        PASSWORD,
        password=None,
        sample_argv=True,
    ),
    "maxclients": Case(
        (OPEN, conf_line("maxclients 2"), RESTART), "max-clients", "maxclients", "10000", crowd=True
    ),
    "oom": Case(
        (OPEN, conf_line("maxmemory 2mb"), RESTART, FILL),
        "oom",
        "maxmemory-policy",
        "allkeys-lru",
    ),
    "saved-plan": Case(
        (OPEN, conf_line("port 6380"), RESTART), "wrong-port", "port", "6379", 6380, saved_plan=True
    ),
}


# -- the application, connected before the fix -------------------------------------------------


@contextlib.contextmanager
def tunnel(host: SystemdHost, port: int) -> Iterator[int]:
    """A local port forwarded to the host's 127.0.0.1:`port` (the system ssh, stopped by PID)."""
    local = free_port()
    argv = ["ssh", *host.ssh_options, "-N", "-o", "ExitOnForwardFailure=yes",
            "-L", f"127.0.0.1:{local}:127.0.0.1:{port}", f"root@{host.address}"]  # fmt: skip
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        try:
            deadline = time.monotonic() + 120
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", local), 1),
                ):
                    break
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the SSH tunnel did not open"
                time.sleep(0.2)
            yield local
        finally:
            process.terminate()


def application(port: int, password: str | None) -> redis.Redis:
    """A client that never reconnects behind our back: a dropped connection is an error."""
    return redis.Redis(
        port=port, password=password, socket_timeout=30, protocol=2,
        retry=Retry(NoBackoff(), 0), single_connection_client=True,
    )  # fmt: skip


def main_pid(host: SystemdHost) -> str:
    return host.ssh("systemctl show -p MainPID --value redis-server", check=True).stdout.strip()


# -- redmedic, as a user runs it ---------------------------------------------------------------


@dataclass
class Run:
    events: list[dict[str, Any]]
    code: int
    output: str

    @property
    def summary(self) -> dict[str, Any]:
        return dict(next(iter(self.events[-1]["hosts"].values())))

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]


def redmedic(*argv: str, on_event: Callable[[dict[str, Any]], None] = lambda e: None) -> Run:
    """The CLI in its own process, its JSON events read as they come."""
    command = [sys.executable, "-m", "redmedic.cli", *argv, "--output", "json"]
    events, lines = [], []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("{"):
                events.append(json.loads(line))
                on_event(events[-1])
        stderr = process.stderr.read()
        code = process.wait(timeout=300)
    assert events and events[-1]["event"] == "summary", (code, "".join(lines)[-2000:], stderr)
    return Run(events, code, "".join(lines) + stderr)


@dataclass
class Outcome:
    """What one host went through."""

    runs: dict[str, Run] = field(default_factory=dict)
    pid_before: str = ""
    pid_after: str = ""
    client_before: int = 0
    client_after: int | str = ""  # the CLIENT ID after the fix, or the error instead
    running: str = ""  # CONFIG GET of the directive after the fix
    in_file: str = ""  # the file's value after the fix, as it runs (`live.running_form`)
    argv_seen: str = ""  # every process argument seen on the host during the apply
    plan_file: str = ""
    audit: str = ""


def fix(host: SystemdHost, case: Case, known_hosts: Path, tmp: Path) -> Outcome:
    """Break the host, connect the application, run the playbook, look at the host again."""
    outcome = Outcome()
    host.ssh(" && ".join((OVERCOMMIT_PERSISTED, *case.setup)), check=True, timeout=120)
    inventory = tmp / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {host.name: {
        "ansible_host": host.address, "ansible_user": "root",
        "ansible_ssh_private_key_file": str(host.private_key), "redis_password": PASSWORD,
    }}}}))  # fmt: skip
    common = ["--known-hosts", str(known_hosts), "--audit-log", str(tmp / "audit.jsonl")]
    run = ["run", str(PLAYBOOK), "-i", str(inventory), *common]
    with tunnel(host, case.port) as port, application(port, case.password) as app:
        outcome.client_before = app.client_id()
        outcome.pid_before = main_pid(host)
        crowd = socket.create_connection((host.address, 6379), 30) if case.crowd else None
        if crowd is not None:
            crowd.sendall(b"PING\r\n")
            assert crowd.recv(100).startswith(b"-NOAUTH")  # in: maxclients is reached now

        def leave_once_triaged(event: dict[str, Any]) -> None:
            if crowd is not None and event.get("step") == "Triage":
                crowd.close()

        sampler = host.ssh(SAMPLE_ARGV, check=True).stdout.strip() if case.sample_argv else ""
        if case.saved_plan:
            plan = tmp / "plan.json"
            outcome.runs["plan"] = redmedic(*run, "--check", "--plan-out", str(plan))
            outcome.plan_file = plan.read_text()
            outcome.runs["apply"] = redmedic("apply", str(plan), "--yes", *common)
        else:
            outcome.runs["apply"] = redmedic(*run, "--yes", on_event=leave_once_triaged)
        if crowd is not None:
            crowd.close()
        if sampler:
            host.ssh(f"touch /tmp/redmedic-stop; while kill -0 {sampler} 2>/dev/null; do "
                     "sleep 0.2; done", check=True)  # fmt: skip
            outcome.argv_seen = host.ssh("cat /tmp/redmedic-argv", check=True).stdout
        outcome.pid_after = main_pid(host)
        try:
            outcome.client_after = app.client_id()
            outcome.running = str(app.config_get(case.directive)[case.directive])
        except redis.RedisError as exc:
            outcome.client_after = f"{type(exc).__name__}: {exc}"
    text = (host.root / CONF.lstrip("/")).read_text()
    in_force = redisconf.effective(redisconf.parse(text, CONF).directives)
    outcome.in_file = live.running_form(case.directive, in_force[case.directive].args)
    outcome.runs["again"] = redmedic(*run, "--check")
    outcome.audit = (tmp / "audit.jsonl").read_text()
    return outcome


@pytest.fixture(scope="module")
def outcomes(
    host_pool: HostPool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    """Every case on its own host, all at once (see the module docstring)."""
    host_pool.prewarm(len(CASES))
    hosts = {name: host_pool.acquire() for name in CASES}
    try:
        with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
            futures = {
                name: pool.submit(
                    fix,
                    hosts[name],
                    CASES[name],
                    host_pool.known_hosts,
                    tmp_path_factory.mktemp(name),
                )
                for name in CASES
            }
            yield {name: future.result() for name, future in futures.items()}
    finally:
        for host in hosts.values():
            host_pool.release(host)


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not c.saved_plan])
def test_the_fix_is_live_and_keeps_the_running_redis_and_its_clients(
    outcomes: Mapping[str, Outcome], name: str
) -> None:
    case, outcome = CASES[name], outcomes[name]
    apply, again = outcome.runs["apply"], outcome.runs["again"]
    causes = {e["cause"] for e in apply.of("finding_reported") if e["step"] == "Triage"}
    assert case.cause in causes, apply.of("finding_reported")
    assert apply.summary["status"] == "changed", apply.of("host_finished")
    assert not apply.of("rolled_back")
    # the plan said live for every change, and no restart handler ran
    descriptions = [e["description"] for e in apply.of("change_planned")]
    assert descriptions and all(f"({LIVE})" in d for d in descriptions), descriptions
    assert not [e for e in apply.of("change_planned") if e["phase"] == "handlers"]
    # Redis kept running, the application kept its connection, both layers agree
    assert outcome.pid_after == outcome.pid_before != "0"
    assert outcome.client_after == outcome.client_before
    assert outcome.running == outcome.in_file == live.running_form(case.directive, [case.value])
    # a second run finds nothing; no secret anywhere in what redmedic wrote
    assert again.summary == {"status": "ok", "changed": 0, "failed": 0}, again.of("change_planned")
    for text in (apply.output, again.output, outcome.audit):
        assert PASSWORD not in text


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.sample_argv])
def test_the_password_never_shows_in_the_hosts_process_list(
    outcomes: Mapping[str, Outcome], name: str
) -> None:
    """Every process argument on the host, sampled all through the run: redis-cli ran
    (so the sample saw the commands that carry the password) and no argument holds it."""
    seen = outcomes[name].argv_seen
    assert "redis-cli" in seen.splitlines(), "the sample never caught a redis-cli"
    assert PASSWORD not in seen


def test_a_saved_plan_applies_the_live_change_too(outcomes: Mapping[str, Outcome]) -> None:
    outcome = outcomes["saved-plan"]
    plan, apply = outcome.runs["plan"], outcome.runs["apply"]
    assert plan.summary["status"] == "would_change"
    assert PASSWORD not in outcome.plan_file  # sealed: the CONFIG SET session holds it
    kinds = [c["kind"] for h in json.loads(outcome.plan_file)["hosts"].values()
             for s in h["steps"] for c in s["changes"]]  # fmt: skip
    assert kinds == ["file", "command"]
    assert apply.summary["status"] == "changed", apply.of("host_finished")
    assert outcome.pid_after == outcome.pid_before
    assert outcome.client_after == outcome.client_before
    assert outcome.running == outcome.in_file == "6379"
    assert outcome.runs["again"].summary == {"status": "ok", "changed": 0, "failed": 0}


REFUSED = """\
name: A value the running Redis refuses
hosts: all
fix:
  - name: Change redis.conf
    redis_config: {set: {maxmemory-policy: evict-something}}
    notify: [restart redis]
handlers:
  - name: restart redis
    service: {name: redis-server, state: restarted}
"""


def test_a_value_the_running_redis_refuses_leaves_both_layers_and_the_process_alone(
    systemd_host: SystemdHost, tmp_path: Path
) -> None:
    """Given a working Redis 7, when a fix asks for a value CONFIG SET refuses, then the
    host fails with Redis's own reason, redis.conf is put back byte for byte, and Redis was
    never restarted (the plan was live: no handler runs on the way back either)."""
    conf = systemd_host.root / CONF.lstrip("/")
    before, pid = conf.read_bytes(), main_pid(systemd_host)
    playbook, inventory = tmp_path / "refused.yaml", tmp_path / "inventory.yaml"
    playbook.write_text(REFUSED)
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {systemd_host.name: {
        "ansible_host": systemd_host.address, "ansible_user": "root",
        "ansible_ssh_private_key_file": str(systemd_host.private_key),
    }}}}))  # fmt: skip
    run = redmedic("run", str(playbook), "-i", str(inventory), "--yes",
                   "--known-hosts", str(systemd_host.known_hosts))  # fmt: skip
    assert run.summary["status"] == "failed"
    [rolled_back] = run.of("rolled_back")
    assert rolled_back["undone"] == [f"edit {CONF}"]
    assert "CONFIG SET maxmemory-policy" in rolled_back["reason"]
    assert not [e for e in run.of("change_applied") if e["phase"] == "handlers"]
    assert conf.read_bytes() == before
    assert main_pid(systemd_host) == pid


NOFILE_40 = (
    "mkdir -p /etc/systemd/system/redis-server.service.d && printf '[Service]\\nLimitNOFILE=40\\n'"
    " > /etc/systemd/system/redis-server.service.d/nofile.conf && systemctl daemon-reload"
)


def test_maxclients_the_open_file_limit_cannot_hold_is_planned_for_the_restart(
    systemd_host: SystemdHost, tmp_path: Path
) -> None:
    """Given Redis running with LimitNOFILE=40, when maxclients-nofile.yaml plans maxclients
    10000, then the edit says it needs a restart and why (CONFIG SET would be refused), and
    so the restart that brings the new open-file limit brings maxclients too."""
    systemd_host.ssh(" && ".join((OPEN, conf_line("maxclients 2"), NOFILE_40, RESTART)), check=True)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {systemd_host.name: {
        "ansible_host": systemd_host.address, "ansible_user": "root",
        "ansible_ssh_private_key_file": str(systemd_host.private_key), "redis_password": PASSWORD,
    }}}}))  # fmt: skip
    run = redmedic("run", str(PLAYBOOK.parent / "maxclients-nofile.yaml"), "-i", str(inventory),
                   "--check", "--known-hosts", str(systemd_host.known_hosts))  # fmt: skip
    [edit] = [e for e in run.of("change_planned") if e["step"] == "Raise maxclients"]
    assert edit["description"] == (
        f"edit {CONF} (needs a restart: the running process may open 40 files and maxclients "
        "10000 needs 10032: its open-file limit changes when it starts)"
    )
