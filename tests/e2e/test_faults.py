"""The shipped playbooks against every fault of the guide, on real systemd hosts.

User story: given a fleet of Debian 12 hosts, each broken in one way the guide lists
(stopped and disabled, port 6380, Debian's loopback bind, protected mode without a
password, ufw rejecting or dropping 6379, firewalld without 6379, maxclients reached,
LimitNOFILE=40 capping maxclients, memory full under noeviction), when I run
`connection-refused.yaml` with --check, then each host's cause is named (cause id in a
`finding_reported` event) and no host changes by a single byte; when I apply it with
--yes, then this machine's PING (and for OOM a SET) succeeds with the inventory's
password; and a second run changes nothing. Around them: a healthy host gets zero
changes, a problem outside the host (`network`) or in the client (`client`) is reported
and nothing changes, opening Redis without a password is refused, and each focused
playbook fixes its own fault.

Why one fleet run instead of one run per test: that is how redmedic is used, and it is
what keeps this module to seconds of redmedic time on 2 cores. Each case still has its own
disposable host and its own test, which asserts on that host's events only. The fleet
(`fleet` fixture, module scope) injects every fault in parallel, then runs each playbook
over its hosts — --check, snapshot, --yes, client probes, --yes again — with the
playbooks' runs going in parallel as separate `redmedic` processes.

The kernel's vm.overcommit_memory is one value for the whole test machine and /proc/sys is
read-only inside the hosts, so `overcommit` is expected exactly when this machine has it
off; the playbook then writes /etc/sysctl.d/60-redmedic.conf (and says the runtime value
cannot change here), and a "healthy" host is one whose /etc/sysctl.conf sets it already.
"""

from __future__ import annotations

import contextlib
import json
import re
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

from tests.support.nspawn import HostPool, SystemdHost, machine_sysctl

pytestmark = pytest.mark.e2e

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
PASSWORD = "E2e-fault-s3cret"
PORT = 6379
CONF = "/etc/redis/redis.conf"
DROPINS = "/etc/systemd/system/redis-server.service.d"

# -- faults, as shell commands run on the host ------------------------------------------------

RESTART = "systemctl restart redis-server"
# A Redis that remote clients could use: every other fault is injected on top of this.
OPEN = f"printf 'bind 0.0.0.0 -::*\\nrequirepass {PASSWORD}\\n' >> {CONF} && {RESTART}"
# What an administrator does (the classic way), also where the runtime value cannot change.
OVERCOMMIT_PERSISTED = "printf 'vm.overcommit_memory = 1\\n' >> /etc/sysctl.conf"
HEALTHY = f"{OPEN} && {OVERCOMMIT_PERSISTED}"
UFW_ON = "ufw allow 22/tcp && ufw --force enable"
NOFILE_40 = (
    f"mkdir -p {DROPINS} && printf '[Service]\\nLimitNOFILE=40\\n' > {DROPINS}/nofile.conf"
    f" && systemctl daemon-reload && {RESTART}"
)
FILL = (
    f"REDISCLI_AUTH={PASSWORD} redis-cli EVAL \"for i=1,5000 do redis.call('SET', 'k'..i, "
    "string.rep('x', 1000)) end\" 0 >/dev/null 2>&1; true"
)
# Packets to 6379 from outside dropped by a rule no Redis tool knows about: "the network".
NFT_DROP = (
    "nft add table inet elsewhere"
    " && nft 'add chain inet elsewhere input { type filter hook input priority 0; }'"
    " && nft add rule inet elsewhere input iifname != lo tcp dport 6379 drop"
)


def conf_line(text: str) -> str:
    return f"printf '{text}\\n' >> {CONF}"


@dataclass(frozen=True)
class Case:
    """One host: its fault, the playbook run on it and what must come out.

    `outcome`: "fixed" (apply changes the host and PING works), "untouched" (nothing to
    change; PING works), "unfixable" (nothing changed, verify fails: the cause is not on the
    host), "refused" (diagnose stops the host before any change).
    """

    setup: tuple[str, ...]
    causes: frozenset[str] = frozenset()  # redis_triage cause ids --check must name
    playbook: str = "connection-refused.yaml"
    host_vars: Mapping[str, Any] = field(default_factory=lambda: {"redis_password": PASSWORD})
    hold: int = 0  # client connections this machine holds open while redmedic runs
    write: bool = False  # also SET from this machine after the fix
    outcome: str = "fixed"
    password: str | None = PASSWORD  # what this machine AUTHs with after the fix
    state_has: tuple[str, ...] = ()  # regexes the host's state must match after the fix


def causes(*names: str) -> frozenset[str]:
    return frozenset(names)


CASES: dict[str, Case] = {
    # connection-refused.yaml: the triage names the cause, then fixes it
    "stopped": Case(
        (OPEN, "systemctl disable --now redis-server"), causes("not-running", "not-enabled")
    ),
    "port-6380": Case((OPEN, conf_line("port 6380"), RESTART), causes("wrong-port")),
    "bind": Case(  # Debian's default: bind 127.0.0.1 -::1, and protected mode without a
        # password, which would refuse remote clients next (named from the configuration)
        (),
        causes("bind", "protected-mode"),
        state_has=(r"\nbind 0\.0\.0\.0 -::\*\n", r"\nrequirepass \*\*\*\n"),
    ),
    "protected-mode": Case((conf_line("bind 0.0.0.0 -::*"), RESTART), causes("protected-mode")),
    "ufw-reject": Case(
        (OPEN, "ufw reject 6379/tcp", UFW_ON),
        causes("firewall-ufw"),
        host_vars={"redis_password": PASSWORD, "redis_allowed_sources": ["@CONTROL@"]},
        # allowed for this machine only, in front of the reject that stays for the rest
        state_has=(r"6379/tcp +ALLOW IN +@CONTROL@ *\n[\s\S]*6379/tcp +REJECT IN +Anywhere",),
    ),
    "ufw-deny": Case(
        (OPEN, "ufw deny 6379/tcp", UFW_ON),
        causes("firewall-ufw"),
        state_has=(r"6379/tcp +ALLOW IN +Anywhere",),
    ),
    "firewalld": Case(
        (OPEN, "systemctl start firewalld"),
        causes("firewall-firewalld"),
        state_has=(r"ports: 6379/tcp\n[\s\S]*ports: 6379/tcp\n",),  # runtime and permanent
    ),
    "maxclients": Case((OPEN, conf_line("maxclients 2"), RESTART), causes("max-clients"), hold=2),
    "nofile-40": Case(
        (OPEN, NOFILE_40),
        causes("nofile-limit"),
        state_has=(r"zz-redmedic-nofile\.conf", r"LimitNOFILE=65535"),
    ),
    "oom": Case((OPEN, conf_line("maxmemory 2mb"), RESTART, FILL), causes("oom"), write=True),
    "healthy": Case((HEALTHY,), outcome="untouched"),
    "client": Case(
        (HEALTHY,),
        causes("client"),
        host_vars={"redis_password": PASSWORD, "redis_symptom": "Connection refused"},
        outcome="untouched",
    ),
    "network": Case((HEALTHY, NFT_DROP), causes("network"), outcome="unfixable"),
    "no-password": Case(
        (conf_line("bind 0.0.0.0 -::*"), RESTART),
        causes("protected-mode"),
        host_vars={},
        outcome="refused",
    ),
    # the focused playbooks, each on its own fault
    "start-service.yaml": Case(
        (OPEN, "systemctl disable --now redis-server"), playbook="start-service.yaml"
    ),
    "bind-and-port.yaml": Case((conf_line("port 6380"), RESTART), playbook="bind-and-port.yaml"),
    "protected-mode.yaml": Case(
        (conf_line("bind 0.0.0.0 -::*"), RESTART),
        playbook="protected-mode.yaml",
        host_vars={"allow_disable_protected_mode": True},
        password=None,
        state_has=(r"\nprotected-mode no\n",),
    ),
    "firewall.yaml": Case(
        (OPEN, "systemctl start firewalld"),
        playbook="firewall.yaml",
        host_vars={"redis_allowed_sources": ["@CONTROL@"]},
        state_has=(r'rule family="ipv4" source address="@CONTROL@" port port="6379" '
                   r'protocol="tcp" accept',),
    ),
    "maxclients-nofile.yaml": Case(
        (OPEN, conf_line("maxclients 2"), NOFILE_40), playbook="maxclients-nofile.yaml"
    ),
    "memory.yaml": Case(
        (OPEN, conf_line("maxmemory 2mb"), RESTART, FILL),
        playbook="memory.yaml",
        host_vars={
            "redis_password": PASSWORD,
            "redis_maxmemory": "64mb",
            "redis_maxmemory_policy": "noeviction",
        },
        write=True,
    ),
}  # fmt: skip

# Everything a run could touch: config and unit files, firewall and kernel settings, the
# service's state (MainPID: not even restarted). Firewall counters are left out.
SNAPSHOT = r"""
LC_ALL=C; export LC_ALL
for p in /etc/redis /etc/systemd/system /etc/ufw /etc/firewalld /etc/sysctl.d /etc/sysctl.conf; do
  find "$p" -printf '%p %y %m %u %l\n' 2>/dev/null
  find "$p" -type f -exec sha256sum {} + 2>/dev/null
done | sort
systemctl is-active redis-server; systemctl is-enabled redis-server
systemctl show -p MainPID -p NRestarts -p LimitNOFILE redis-server
iptables -S; ip6tables -S
nft list ruleset | sed -E 's/counter packets [0-9]+ bytes [0-9]+//'
# ufw and firewall-cmd are Python programs: only asked where they are on
if grep -qs '^ENABLED=yes' /etc/ufw/ufw.conf; then ufw status verbose; fi
if systemctl is-active --quiet firewalld; then
  firewall-cmd --list-all; firewall-cmd --permanent --list-all
fi
cat /proc/sys/vm/overcommit_memory
# the directives the fixes touch, with requirepass's value hidden
sed -nE -e 's/^(requirepass) .*/\1 ***/p' \
  -e '/^(bind|port|protected-mode|maxclients|maxmemory|maxmemory-policy) /p' /etc/redis/redis.conf
"""


def overcommit_off() -> bool:
    return machine_sysctl("vm.overcommit_memory") != "1"


def snapshot(host: SystemdHost) -> str:
    return host.ssh(SNAPSHOT, check=True).stdout


def hold_clients(address: str, count: int) -> list[socket.socket]:
    """Open `count` client connections and wait until Redis has answered each (NOAUTH)."""
    held = []
    for _ in range(count):
        sock = socket.create_connection((address, PORT), timeout=30)
        sock.sendall(b"PING\r\n")
        assert sock.recv(100).startswith(b"-NOAUTH")
        held.append(sock)
    return held


def client_check(host: SystemdHost, case: Case) -> str:
    """What this machine gets from Redis now: PING (and SET/GET), as a client would.
    10 s: patient enough for a busy machine, and what a dropped packet (`network`) costs."""
    client = redis.Redis(
        host=host.address, port=PORT, password=case.password, socket_timeout=10,
        socket_connect_timeout=10, protocol=2, retry=Retry(NoBackoff(), 0),
    )  # fmt: skip
    try:
        answer = "PONG" if client.ping() else "no PONG"
        if case.write:
            client.set("redmedic:e2e", "x" * 1000)
            answer += " SET " + ("ok" if client.get("redmedic:e2e") == b"x" * 1000 else "lost")
        return answer
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


# -- the fleet run -----------------------------------------------------------------------------


@dataclass
class Run:
    """One `redmedic run` over one playbook's hosts: its events and its exit code."""

    events: list[dict[str, Any]]
    code: int
    seconds: float

    def summary(self, host: str) -> dict[str, Any]:
        return dict(self.events[-1]["hosts"][host])

    def of(self, host: str, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("host") == host and e["event"] == event]

    def message(self, host: str) -> str:
        return str(self.of(host, "host_finished")[-1]["message"])


@dataclass
class Fleet:
    """What the fleet run saw: snapshots per host, the runs per phase, timings."""

    hosts: dict[str, SystemdHost]
    control: str  # this machine's address as the hosts see it
    before: dict[str, str] = field(default_factory=dict)
    after_check: dict[str, str] = field(default_factory=dict)
    after_apply: dict[str, str] = field(default_factory=dict)
    client: dict[str, str] = field(default_factory=dict)
    runs: dict[str, dict[str, Run]] = field(default_factory=dict)  # phase -> playbook -> run
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, phase: str, name: str) -> Run:
        return self.runs[phase][CASES[name].playbook]


def inject(host: SystemdHost, case: Case) -> None:
    """Break the host: the case's commands in one SSH session."""
    host.ssh(" && ".join(case.setup) or "true", check=True, timeout=120)


def write_inventories(
    directory: Path, hosts: Mapping[str, SystemdHost], cases: Mapping[str, Case], control: str
) -> dict[str, Path]:
    """One inventory per playbook, with each host's variables (`@CONTROL@`: this machine's
    address as the hosts see it): {playbook: path}."""
    groups: dict[str, dict[str, Any]] = {}
    for name, host in hosts.items():
        case = cases[name]
        variables = json.loads(json.dumps(dict(case.host_vars)).replace("@CONTROL@", control))
        groups.setdefault(case.playbook, {})[name] = {
            "ansible_host": host.address,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(host.private_key),
            **variables,
        }
    paths = {}
    for playbook, members in groups.items():
        paths[playbook] = directory / f"{playbook}.inventory.yaml"
        paths[playbook].write_text(yaml.safe_dump({"all": {"hosts": members}}, sort_keys=False))
    return paths


def redmedic(playbook: str, inventory: Path, known_hosts: Path, audit: Path, *flags: str) -> Run:
    """The CLI in its own process, so several playbooks run at once; JSON events back."""
    argv = [sys.executable, "-m", "redmedic.cli", "run", str(PLAYBOOKS / playbook),
            "-i", str(inventory), "--known-hosts", str(known_hosts), "--output", "json",
            "--audit-log", str(audit), *flags]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    seconds = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines and '"summary"' in lines[-1], (done.returncode, done.stdout[-2000:], done.stderr)
    return Run([json.loads(line) for line in lines], done.returncode, seconds)


def parallel(items: Mapping[str, Any], work: Callable[[str, Any], Any]) -> dict[str, Any]:
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = {name: pool.submit(work, name, item) for name, item in items.items()}
        return {name: future.result() for name, future in futures.items()}


@contextlib.contextmanager
def timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    seconds[stage] = round(time.monotonic() - started, 1)


@pytest.fixture(scope="module")
def fleet(host_pool: HostPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Every case's host, broken, then run through its playbook (see the module docstring)."""
    tmp = tmp_path_factory.mktemp("faults")
    seconds: dict[str, float] = {}
    hosts: dict[str, SystemdHost] = {}
    held: list[socket.socket] = []
    try:
        with timed(seconds, "boot"):
            host_pool.prewarm(len(CASES))
            hosts.update((name, host_pool.acquire()) for name in CASES)
        fleet = Fleet(hosts, host_pool.gateway, seconds=seconds)
        with timed(seconds, "inject"):
            parallel(hosts, lambda name, host: inject(host, CASES[name]))
            for name, host in hosts.items():
                held += hold_clients(host.address, CASES[name].hold)
        with timed(seconds, "snapshots"):
            fleet.before = parallel(hosts, lambda name, host: snapshot(host))
        inventories = write_inventories(tmp, hosts, CASES, host_pool.gateway)

        def run_all(phase: str, *flags: str) -> None:
            with timed(seconds, phase):
                fleet.runs[phase] = parallel(
                    inventories,
                    lambda playbook, inventory: redmedic(
                        playbook, inventory, host_pool.known_hosts, tmp / "audit.jsonl", *flags
                    ),
                )

        run_all("check", "--check")
        with timed(seconds, "snapshots after check"):
            fleet.after_check = parallel(hosts, lambda name, host: snapshot(host))
        run_all("apply", "--yes")
        for sock in held:
            sock.close()
        with timed(seconds, "client"):
            fleet.client = parallel(hosts, lambda name, host: client_check(host, CASES[name]))
        with timed(seconds, "snapshots after apply"):
            fleet.after_apply = parallel(hosts, lambda name, host: snapshot(host))
        run_all("again", "--yes")
        print(f"\n{len(hosts)} hosts, seconds per stage: {seconds}")
        for phase, runs in fleet.runs.items():
            print(f"  {phase}: " + ", ".join(f"{p} {r.seconds:.1f}" for p, r in runs.items()))
        yield fleet
    finally:
        for sock in held:
            sock.close()
        for host in hosts.values():
            host_pool.release(host)


# -- the tests, one per host -------------------------------------------------------------------


def triage_causes(run: Run, host: str) -> set[str]:
    return {e["cause"] for e in run.of(host, "finding_reported") if e["step"] == "Triage"}


@pytest.mark.parametrize("name", list(CASES))
def test_fault(fleet: Fleet, name: str) -> None:
    case = CASES[name]
    check, apply, again = (
        fleet.run("check", name),
        fleet.run("apply", name),
        fleet.run("again", name),
    )
    out = json.dumps([r.events for r in (check, apply, again)])
    assert PASSWORD not in out

    # --check: the right cause, with evidence; the host byte for byte as it was
    if case.playbook == "connection-refused.yaml":
        wanted = set(case.causes) | ({"overcommit"} if overcommit_off() else set())
        assert triage_causes(check, name) == wanted, check.of(name, "finding_reported")
        assert all(e["evidence"] for e in check.of(name, "finding_reported"))
    assert fleet.after_check[name] == fleet.before[name]
    planned = check.summary(name)

    if case.outcome == "refused":
        why = check.message(name)
        assert planned["status"] == "failed"
        assert "Set redis_password" in why and "Nothing was changed" in why
        assert apply.summary(name)["status"] == "failed" and not apply.of(name, "change_applied")
        assert fleet.after_apply[name] == fleet.before[name]
        return
    if case.outcome in ("untouched", "unfixable"):
        assert planned == {"status": "ok", "changed": 0, "failed": 0}
        assert not apply.of(name, "change_applied")
        assert fleet.after_apply[name] == fleet.before[name]
        if case.outcome == "unfixable":  # verify says Redis is still unreachable from here
            assert apply.summary(name)["status"] == "failed"
            assert "Nothing on the host can fix that" in apply.message(name)
            assert fleet.client[name].startswith("TimeoutError")
            return
        assert apply.summary(name) == {"status": "ok", "changed": 0, "failed": 0}
        assert fleet.client[name] == "PONG"
        return

    # apply: Redis answers this machine; a second run finds nothing to do
    assert planned["status"] == "would_change" and planned["changed"] > 0
    assert apply.summary(name)["status"] == "changed", apply.message(name)
    assert not apply.of(name, "rolled_back")
    assert fleet.client[name] == ("PONG SET ok" if case.write else "PONG")
    for pattern in case.state_has:
        control = re.escape(fleet.control)
        assert re.search(pattern.replace("@CONTROL@", control), fleet.after_apply[name]), pattern
    assert again.summary(name) == {"status": "ok", "changed": 0, "failed": 0}, again.of(
        name, "change_planned"
    )
