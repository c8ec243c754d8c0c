"""Fleet benchmark: redmedic vs the bare-paramiko floor, pyinfra and Ansible, on K loopback hosts.

    .venv/bin/python bench/run.py --hosts 1,10,50,200            # the comparison table
    .venv/bin/python bench/run.py --hosts 100,200,300,400,500 \\
        --tools redmedic,floor,floor-1exec --section scale        # the scale curve

Starts max(K) simulated hosts (a real sshd per loopback address, own host key, own copy of
Debian's redis.conf, strict host-key checking; tests/support/loopback.py), then for each K
times the same job (bench/workload.yaml: 8 read-only commands and a one-line edit shown as
a dry-run diff) with every tool, interleaved: repetition r runs the tools in an order
rotated by r. Each timed run is a fresh `bench/measure.py` process (wall, CPU of the whole
process tree, memory). Host-side CPU is read from the sshd daemons' /proc stat (their
waited-for children: sshd sessions, shells, commands). The table goes to stdout and into
bench/README.md between `<!-- bench:SECTION -->` markers. pyinfra and Ansible live in
bench/.venv, created on first use (never dependencies of redmedic).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.floor import END_MARK as FLOOR_END_MARK  # noqa: E402
from bench.floor import FILE_MARK as FLOOR_FILE_MARK  # noqa: E402
from bench.latency import ForwarderProcess, Link, free_address  # noqa: E402
from bench.triage_hosts import TriageRedis, inventory_vars, triage_redis  # noqa: E402
from redmedic.connection.scripts import new_marker  # noqa: E402
from redmedic.redis.facts import facts_script  # noqa: E402
from tests.support.loopback import (  # noqa: E402
    DEFAULT_PORT,
    LoginUser,
    LoopbackError,
    SshdHost,
    SshSession,
    ensure_test_user,
    known_hosts_line,
    missing_prerequisites,
)

BENCH_VENV = BENCH / ".venv"
REQUIREMENTS = BENCH / "requirements.txt"
WORKLOAD = BENCH / "workload.yaml"
TRIAGE = REPO / "playbooks" / "connection-refused.yaml"
README = BENCH / "README.md"
PROJECT_PYTHON = Path(sys.executable)
REDMEDIC = PROJECT_PYTHON.parent / "redmedic"
REAL_REDIS_CONF = Path("/etc/redis/redis.conf")
FALLBACK_REDIS_CONF = REPO / "tests" / "data" / "redis.conf"  # the same Debian file
EDIT_MARK = "+bind 0.0.0.0 -::*"
TRIAGE_BIND = "bind 0.0.0.0 -::*"  # the triage's bind fix on these hosts (Redis 7)
# One sshd listens per loopback address and port; 127.0.1.N gives 253 addresses, so larger
# fleets put the next 250 hosts on the next port (still one host key per host).
HOSTS_PER_PORT = 250
ALL_TOOLS = ("redmedic", "floor", "floor-1exec", "pyinfra", "ansible")
# Not run unless named in --tools: the shipped triage on hosts with the demo's broken Redis.
EXTRA_TOOLS = ("triage", "floor-triage")
# bench/prototype.py variants (not run unless named in --tools): what executor changes gain.
PROTOTYPES = {
    "proto-today": ("steps", "today"),
    "proto-fastpy": ("steps", "fast"),
    "proto-batched": ("batched", "fast"),
    "proto-onetrip": ("onetrip", "fast"),
}
FLOOR = "floor-1exec"
SETTLE_S = 0.3
QUIET_BUSY = 0.15  # wait before a timed run until under 15% of all CPUs are busy...
QUIET_WAIT_S = 600.0  # ...for at most this long (then run anyway; the bg column shows it)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the workload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """bench/workload.yaml, read once: the commands (templated on redis_conf) and the edit."""

    name: str
    steps: tuple[tuple[str, str], ...]  # (name, command template)
    edit_name: str
    edit_regexp: str
    edit_line: str

    @classmethod
    def load(cls, path: Path = WORKLOAD) -> Workload:
        doc = yaml.safe_load(path.read_text())
        steps = tuple((s["name"], s["shell"]) for s in doc["diagnose"])
        (fix,) = doc["fix"]
        edit = fix["file_line"]
        return cls(doc["name"], steps, fix["name"], edit["regexp"], edit["line"])

    def commands_for(self, conf: str) -> list[str]:
        """The commands as they run on a host whose redis.conf is `conf`."""
        rendered = []
        for _, template in self.steps:
            command = template.replace("{{ redis_conf | quote }}", shlex.quote(conf))
            if "{{" in command or "{%" in command:
                raise ValueError(f"the floor cannot render {template!r}: keep templates simple")
            rendered.append(command)
        return rendered


# -- the simulated fleet ---------------------------------------------------------------------


@dataclass(frozen=True)
class BenchHost:
    sshd: SshdHost
    conf: Path
    # Where tools connect: the sshd itself, or its latency forwarder (--rtt-ms).
    reach: tuple[str, int] | None = None
    triage: TriageRedis | None = None  # its Redis for the shipped triage (--tools triage)

    @property
    def name(self) -> str:
        return self.sshd.name

    @property
    def address(self) -> str:
        return self.reach[0] if self.reach else self.sshd.address

    @property
    def port(self) -> int:
        return self.reach[1] if self.reach else self.sshd.port

    @property
    def known_hosts_line(self) -> str:
        return known_hosts_line(self.address, self.port, self.sshd.host_key)


@dataclass
class Fleet:
    """Running simulated hosts and the files every tool needs to reach them."""

    root: Path
    session: SshSession
    user: LoginUser
    known_hosts: Path
    hosts: list[BenchHost] = field(default_factory=list)

    orphan_cpu_s: float = 0.0
    forwarder: ForwarderProcess | None = None

    def write_known_hosts(self) -> None:
        """One line per host, for the address tools connect to (strict checking stays on)."""
        self.known_hosts.write_text("".join(h.known_hosts_line + "\n" for h in self.hosts))

    def sshd_cpu_s(self) -> float:
        """CPU so far of the sshd daemons and everything they started, in seconds.

        A daemon's /proc stat counts its own time and its waited-for children's. sshd's
        privileged monitor exits without waiting for the session process that ran the
        commands, so that subtree would be reparented to init and lost: the harness is a
        child subreaper (`become_subreaper`), such orphans come here, and `reap_orphans`
        adds their time.
        """
        self.reap_orphans()
        total = 0
        for host in self.hosts:
            total += _tree_ticks(host.sshd.pid)
        return total / CLK_TCK + self.orphan_cpu_s

    def reap_orphans(self) -> None:
        daemons = {h.sshd.pid for h in self.hosts}
        me = os.getpid()
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in daemons:
                continue
            pid = int(name)
            try:
                raw = Path(f"/proc/{pid}/stat").read_bytes()
            except OSError:
                continue
            fields = raw[raw.rfind(b")") + 2 :].split()
            if fields[0] != b"Z" or int(fields[1]) != me:
                continue
            with contextlib.suppress(ChildProcessError):
                _, _, usage = os.wait4(pid, 0)
                self.orphan_cpu_s += usage.ru_utime + usage.ru_stime


def _tree_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of a process, in clock ticks (0 when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0
    fields = raw[raw.rfind(b")") + 2 :].split()
    return sum(int(f) for f in fields[11:15])


def become_subreaper() -> None:
    """Orphans of our sshd daemons (their session processes) are reparented to us."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _redis_conf_source() -> Path:
    return REAL_REDIS_CONF if os.access(REAL_REDIS_CONF, os.R_OK) else FALLBACK_REDIS_CONF


@contextlib.contextmanager
def running_fleet(count: int, root: Path) -> Iterator[Fleet]:
    """Start `count` hosts under `root`; every daemon is stopped by PID on exit."""
    user = ensure_test_user()
    source = _redis_conf_source().read_bytes()
    with SshSession(root / "sshd", user) as session:
        fleet = Fleet(root, session, user, root / "known_hosts")
        port = DEFAULT_PORT
        for index in range(count):
            if index and index % HOSTS_PER_PORT == 0:
                port += 1
            name = f"bench{index + 1:03d}"
            for _ in range(5):  # another test run may hold some addresses on this port
                try:
                    sshd = session.start_sshd(port=port, name=name)
                    break
                except LoopbackError as exc:
                    if "no free loopback address" not in str(exc):
                        raise
                    port += 1
            else:
                raise LoopbackError(f"no free loopback address for host {index + 1}")
            conf = sshd.workdir / "redis.conf"
            conf.write_bytes(source)
            os.chown(conf, user.uid, user.gid)
            conf.chmod(0o640)
            fleet.hosts.append(BenchHost(sshd, conf))
        fleet.write_known_hosts()
        yield fleet


def with_triage_redis(fleet: Fleet, stack: contextlib.ExitStack) -> None:
    """Each host gets the demo's broken Redis (bench/triage_hosts.py) until `stack` closes."""
    workdirs = {h.name: h.sshd.workdir for h in fleet.hosts}
    found = stack.enter_context(triage_redis(workdirs))
    fleet.hosts = [dataclasses.replace(h, triage=found[h.name]) for h in fleet.hosts]


def with_latency(fleet: Fleet, rtt_ms: float, stack: contextlib.ExitStack) -> None:
    """Put each host behind the latency forwarder (bench/latency.py) until `stack` closes.

    One forwarder address per host (127.0.100.x on, each on the host's own sshd port), so
    known_hosts keeps one key per address and checking stays strict. Only the ssh port is
    forwarded: the triage's Redis is bound to the host's 127.0.0.1, so the control probe is
    refused at the forwarder's address as at the host's (without the refused connect's RTT).
    """
    links = []
    addresses: dict[int, Iterator[str]] = {}
    for host in fleet.hosts:
        port = host.sshd.port
        address = next(addresses.setdefault(port, free_address(port)))
        links.append(Link(host.name, address, port, host.sshd.address, port))
    forwarder = ForwarderProcess(links, rtt_ms, fleet.root / "latency")
    stack.callback(forwarder.stop)
    fleet.forwarder = forwarder
    fleet.hosts = [
        dataclasses.replace(h, reach=(link.address, link.port))
        for h, link in zip(fleet.hosts, links, strict=True)
    ]
    fleet.write_known_hosts()


def _raise_nofile_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- per-K inputs for each tool --------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """Files describing the first K hosts, for each tool."""

    k: int
    dir: Path
    inventory: Path  # Ansible-style YAML: redmedic and Ansible read the same file
    job: Path  # the floor's JSON job
    pyinfra_inventory: Path


def write_inputs(fleet: Fleet, k: int, workload: Workload) -> Inputs:
    folder = fleet.root / f"k{k}"
    folder.mkdir(exist_ok=True)
    hosts = fleet.hosts[:k]
    key = str(fleet.session.client_key)
    inventory: dict[str, Any] = {"all": {"hosts": {}}}
    for host in hosts:
        inventory["all"]["hosts"][host.name] = {
            "ansible_host": host.address,
            "ansible_port": host.port,
            "ansible_user": fleet.user.name,
            "ansible_ssh_private_key_file": key,
            "redis_conf": str(host.conf),
        }
    (folder / "inventory.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    if all(h.triage for h in hosts):
        triage: dict[str, Any] = {"all": {"hosts": {}}}
        for host in hosts:
            assert host.triage is not None
            entry = dict(inventory["all"]["hosts"][host.name])
            entry.update(inventory_vars(host.triage, fleet.user.password))
            triage["all"]["hosts"][host.name] = entry
        fd = os.open(folder / "triage-inventory.yaml", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:  # it holds the login user's sudo password
            handle.write(yaml.safe_dump(triage, sort_keys=False))
        write_triage_job(folder / "triage-job.json", fleet, hosts, key)
    job = {
        "known_hosts": str(fleet.known_hosts),
        "key": key,
        "edit": {"regexp": workload.edit_regexp, "line": workload.edit_line},
        "hosts": [
            {
                "name": h.name,
                "address": h.address,
                "port": h.port,
                "user": fleet.user.name,
                "conf": str(h.conf),
                "commands": workload.commands_for(str(h.conf)),
            }
            for h in hosts
        ],
    }
    (folder / "job.json").write_text(json.dumps(job, indent=1))
    rows = [
        (
            h.name,
            {
                "ssh_hostname": h.address,
                "ssh_port": h.port,
                "ssh_user": fleet.user.name,
                "ssh_key": key,
                "ssh_known_hosts_file": str(fleet.known_hosts),
                "ssh_strict_host_key_checking": "yes",
                "redis_conf": str(h.conf),
                "bench_commands": workload.commands_for(str(h.conf)),
            },
        )
        for h in hosts
    ]
    (folder / "pyinfra_inventory.py").write_text(f"bench = {rows!r}\n")
    return Inputs(
        k, folder, folder / "inventory.yaml", folder / "job.json", folder / "pyinfra_inventory.py"
    )


def write_triage_job(path: Path, fleet: Fleet, hosts: list[BenchHost], key: str) -> None:
    """The triage floor's job (bench/floor.py --mode triage): per host the one script of
    every read the triage makes, rendered with what the triage only learns on the way
    (the config path and port): redmedic's own facts script, redis.conf, the running
    values the live fixes read, the overcommit setting. Mode 0600: the sudo password."""
    jobs = []
    for host in hosts:
        assert host.triage is not None
        conf, port = str(host.triage.conf), host.triage.port
        facts = facts_script(
            new_marker(), unit=None, config=conf, port=port, lines=200, has_password=False
        )
        reads = (
            f"echo '{FLOOR_FILE_MARK}'; cat -- {shlex.quote(conf)}; echo '{FLOOR_END_MARK}'\n"
            f"printf 'CONFIG GET bind\\nCONFIG GET requirepass\\nCONFIG GET protected-mode\\n'"
            f" | redis-cli -h 127.0.0.1 -p {port} --raw\n"
            "cat /proc/sys/vm/overcommit_memory; ls /etc/sysctl.d\n"
        )
        jobs.append(
            {
                "name": host.name,
                "address": host.address,
                "port": host.port,
                "user": fleet.user.name,
                "conf": conf,
                "become_password": fleet.user.password,
                "script": f"{facts}\n{reads}",
            }
        )
    job = {
        "known_hosts": str(fleet.known_hosts),
        "key": key,
        "edit": {"regexp": "^bind ", "line": TRIAGE_BIND},
        "hosts": jobs,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(job, handle, indent=1)


def write_ansible_files(root: Path, fleet: Fleet, workload: Workload) -> tuple[Path, Path]:
    """ansible.cfg (ssh, pipelining, ControlPersist, strict host keys) and the playbook."""
    tasks: list[dict[str, Any]] = [
        {
            "name": name,
            "ansible.builtin.shell": command,
            "check_mode": False,  # read-only: run it under --check, as redmedic's diagnose does
            "changed_when": False,
        }
        for name, command in workload.steps
    ]
    tasks.append(
        {
            "name": workload.edit_name,
            "ansible.builtin.lineinfile": {
                "path": "{{ redis_conf }}",
                "regexp": workload.edit_regexp,
                "line": workload.edit_line,
            },
        }
    )
    play = [{"name": workload.name, "hosts": "all", "gather_facts": False, "tasks": tasks}]
    playbook = root / "ansible-workload.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False, width=1000))
    ssh_args = " ".join(
        [
            "-o ControlMaster=auto",
            "-o ControlPersist=60s",
            f"-o UserKnownHostsFile={fleet.known_hosts}",
            "-o GlobalKnownHostsFile=/dev/null",
            "-o StrictHostKeyChecking=yes",
            "-o IdentitiesOnly=yes",
            "-o BatchMode=yes",
        ]
    )
    config = root / "ansible.cfg"
    config.write_text(
        "[defaults]\n"
        "host_key_checking = True\n"
        "gathering = explicit\n"
        "interpreter_python = /usr/bin/python3\n"
        "retry_files_enabled = False\n"
        f"local_tmp = {root / 'ansible-local'}\n"
        "\n[ssh_connection]\n"
        "pipelining = True\n"
        f"ssh_args = {ssh_args}\n"
    )
    return config, playbook


# -- tools -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    label: str
    in_bench_venv: bool
    # (inputs, forks, run scratch dir) -> argv
    argv: Callable[[Inputs, int, Path], list[str]]
    # the diff line every host's output must show once (stripped)
    diff_mark: str = EDIT_MARK
    counts_trips: bool = False  # redmedic: its untimed warm-up runs with -vvv (round trips)


def _tools(ansible_config: Path, ansible_playbook: Path) -> dict[str, Tool]:
    venv_bin = BENCH_VENV / "bin"

    def prototype(trips: str, python: str) -> Callable[[Inputs, int, Path], list[str]]:
        return lambda i, f, _: [
            str(PROJECT_PYTHON), str(BENCH / "prototype.py"), str(i.job),
            "--trips", trips, "--python", python, "--forks", str(f),
        ]  # fmt: skip

    prototypes = {
        name: Tool(
            name, f"prototype: {trips} trips, {python} Python", False, prototype(trips, python)
        )
        for name, (trips, python) in PROTOTYPES.items()
    }
    return prototypes | {
        "redmedic": Tool(
            "redmedic",
            "redmedic `run --check`",
            False,
            lambda i, f, _: [
                str(REDMEDIC),
                "run",
                str(WORKLOAD),
                "-i",
                str(i.inventory),
                "--check",
                "--known-hosts",
                str(i.dir.parent / "known_hosts"),
                "-f",
                str(f),
            ],
            counts_trips=True,
        ),
        "triage": Tool(
            "triage",
            "redmedic triage `connection-refused.yaml --check`",
            False,
            lambda i, f, _: [
                str(REDMEDIC),
                "run",
                str(TRIAGE),
                "-i",
                str(i.dir / "triage-inventory.yaml"),
                "--check",
                "--known-hosts",
                str(i.dir.parent / "known_hosts"),
                "-f",
                str(f),
            ],
            counts_trips=True,
        ),
        "floor-triage": Tool(
            "floor-triage",
            "floor: paramiko, the triage's reads in 1 exec/host",
            False,
            lambda i, f, _: [
                str(PROJECT_PYTHON),
                str(BENCH / "floor.py"),
                str(i.dir / "triage-job.json"),
                "--mode",
                "triage",
                "--forks",
                str(f),
            ],
        ),
        "floor": Tool(
            "floor",
            "floor: paramiko, 1 channel/command",
            False,
            lambda i, f, _: [
                str(PROJECT_PYTHON),
                str(BENCH / "floor.py"),
                str(i.job),
                "--mode",
                "channels",
                "--forks",
                str(f),
            ],
        ),
        "floor-1exec": Tool(
            "floor-1exec",
            "floor: paramiko, 1 exec/host",
            False,
            lambda i, f, _: [
                str(PROJECT_PYTHON),
                str(BENCH / "floor.py"),
                str(i.job),
                "--mode",
                "oneexec",
                "--forks",
                str(f),
            ],
        ),
        "pyinfra": Tool(
            "pyinfra",
            "pyinfra `--dry --diff`",
            True,
            lambda i, f, _: [
                str(venv_bin / "pyinfra"),
                str(i.pyinfra_inventory),
                str(BENCH / "pyinfra_deploy.py"),
                "--dry",
                "--diff",
                "--parallel",
                str(f),
            ],
            diff_mark="+ bind 0.0.0.0 -::*",  # pyinfra's own diff layout
        ),
        "ansible": Tool(
            "ansible",
            "ansible-core `--check --diff`",
            True,
            lambda i, f, scratch: [
                "env",
                f"ANSIBLE_CONFIG={ansible_config}",
                f"ANSIBLE_SSH_CONTROL_PATH_DIR={scratch / 'cp'}",
                str(venv_bin / "ansible-playbook"),
                "-i",
                str(i.inventory),
                str(ansible_playbook),
                "--check",
                "--diff",
                "-f",
                str(f),
            ],
        ),
    }


def snapshot_source(target: Path) -> Path:
    """HEAD's src/ under `target` (git archive): redmedic as committed, whatever is edited."""
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "HEAD", "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def source_state(snapshot: bool) -> str:
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if snapshot:
        return f"redmedic at commit {head}"
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"redmedic working tree of {head}" + (" (with uncommitted changes)" if dirty else "")


def bench_venv_ready() -> bool:
    return all((BENCH_VENV / "bin" / tool).exists() for tool in ("pyinfra", "ansible-playbook"))


def build_bench_venv() -> None:
    """bench/.venv with pyinfra, ansible-core and py-spy, pinned in bench/requirements.txt."""
    if not (BENCH_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run(
        [str(BENCH_VENV / "bin" / "pip"), "install", "--quiet", "-r", str(REQUIREMENTS)],
        check=True,
    )


def tool_versions(names: list[str]) -> dict[str, str]:
    def version(python: Path, module: str) -> str:
        code = f"import importlib.metadata as m; print(m.version({module!r}))"
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
        return done.stdout.strip() or "?"

    found = {"redmedic": version(PROJECT_PYTHON, "redmedic")}
    found["paramiko"] = version(PROJECT_PYTHON, "paramiko")
    if "pyinfra" in names:
        found["pyinfra"] = version(BENCH_VENV / "bin" / "python", "pyinfra")
    if "ansible" in names:
        found["ansible-core"] = version(BENCH_VENV / "bin" / "python", "ansible-core")
    found["OpenSSH"] = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.split(
        ","
    )[0]
    return found


# -- running and measuring -------------------------------------------------------------------


@dataclass
class Sample:
    tool: str
    k: int
    rep: int
    ok: bool
    wall_s: float
    cpu_s: float
    host_cpu_s: float
    maxrss_mb: float
    tree_rss_mb: float
    background_cpu_s: float = 0.0  # CPU used meanwhile by processes that are not the run's
    threads: int = 0  # most threads seen in one process of the tool's tree
    note: str = ""
    # --rtt-ms: what the latency forwarder saw during the run (all hosts together)
    connections: int = 0
    round_trips: int = 0  # turns: client chunk(s) answered by a server chunk
    forwarder_cpu_s: float = 0.0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return (total - idle) / CLK_TCK, total / CLK_TCK


def wait_for_quiet(limit_s: float = QUIET_WAIT_S) -> float:
    """Wait (bounded) until other work leaves the machine mostly idle; seconds waited.

    Hosts and tools share this machine's CPUs, so a parallel test run elsewhere would
    make any tool look slow. Returns at once when less than QUIET_BUSY of the machine was
    busy over one second.
    """
    waited = 0.0
    while waited < limit_s:
        busy0, total0 = machine_cpu()
        time.sleep(1.0)
        busy1, total1 = machine_cpu()
        if total1 > total0 and (busy1 - busy0) / (total1 - total0) < QUIET_BUSY:
            return waited
        waited += 1.0
    return waited


def tool_env(home: Path) -> dict[str, str]:
    """A clean environment: empty HOME (no ~/.ssh, no shell init), no agent, no colours."""
    env = {
        "HOME": str(home),
        "PATH": f"{BENCH_VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "COLUMNS": "120",
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
    }
    return env


def check_output(tool: Tool, k: int, rc: int, text: str) -> str:
    """Why a run does not count (empty when it did the whole job)."""
    if rc != 0:
        tail = " | ".join(text.strip().splitlines()[-3:])
        return f"exit {rc}: {tail[:300]}"
    shown = sum(1 for line in text.splitlines() if line.strip() == tool.diff_mark)
    if shown != k:
        return f"showed {shown} diffs for {k} hosts"
    return ""


def measure_once(
    tool: Tool,
    inputs: Inputs,
    fleet: Fleet,
    forks: int,
    rep: int,
    env: dict[str, str],
    wait: bool = True,
) -> Sample:
    scratch = inputs.dir / f"{tool.name}-{rep}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    (scratch / "cp").mkdir()
    log, result = scratch / "output.txt", scratch / "result.json"
    argv = [
        str(PROJECT_PYTHON),
        str(BENCH / "measure.py"),
        "--result",
        str(result),
        "--stdout",
        str(log),
        "--",
        *tool.argv(inputs, forks, scratch),
        *(["-vvv"] if rep < 0 and tool.counts_trips else []),
    ]
    if rep >= 0 and wait:
        waited = wait_for_quiet()
        if waited:
            print(f"bench: waited {waited:.0f} s for the machine to be quiet", file=sys.stderr)
    before = fleet.sshd_cpu_s()
    machine_before, _ = machine_cpu()
    forwarder = fleet.forwarder
    if forwarder is not None:
        forwarder.new_connections()  # anything left from before is not this run's
        forwarder_before = forwarder.cpu_s()
    subprocess.run(argv, env=env, check=True, cwd=scratch)
    time.sleep(SETTLE_S)  # let the sshd daemons reap their session processes
    host_cpu = fleet.sshd_cpu_s() - before
    connections, trips, forwarder_cpu = 0, 0, 0.0
    if forwarder is not None:
        seen = forwarder.new_connections()
        connections, trips = len(seen), sum(c["turns"] for c in seen)
        forwarder_cpu = forwarder.cpu_s() - forwarder_before
    measured = json.loads(result.read_text())
    background = machine_cpu()[0] - machine_before - host_cpu - measured["cpu_s"] - forwarder_cpu
    note = check_output(tool, inputs.k, measured["rc"], log.read_text(errors="replace"))
    return Sample(
        tool.name,
        inputs.k,
        rep,
        not note,
        measured["wall_s"],
        measured["cpu_s"],
        host_cpu,
        measured["maxrss_mb"],
        measured["tree_rss_mb"],
        max(0.0, background),
        measured.get("threads", 0),
        note,
        connections,
        trips,
        forwarder_cpu,
    )


_TRIPS_LINE = re.compile(r"^ssh (\S+): (\d+ connections?, .*round trips?.*)$", re.M)


def host_trips(output: Path) -> str:
    """redmedic's own count for one host, from its -vvv output (connection.traffic).

    The most common line over the hosts, with how many hosts showed it.
    """
    lines = [m.group(2) for m in _TRIPS_LINE.finditer(output.read_text(errors="replace"))]
    if not lines:
        return "no count in the output"
    line, hosts = collections.Counter(lines).most_common(1)[0]
    return f"{line} — {hosts} of {len(lines)} hosts"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(samples: list[Sample], tools: list[str], ks: list[int]) -> list[dict[str, Any]]:
    rows = []
    for k in ks:
        floor_wall = median([s.wall_s for s in samples if s.k == k and s.tool == FLOOR and s.ok])
        chan_wall = median([s.wall_s for s in samples if s.k == k and s.tool == "floor" and s.ok])
        for name in tools:
            mine = [s for s in samples if s.k == k and s.tool == name]
            good = [s for s in mine if s.ok]
            if not mine:
                continue
            wall = median([s.wall_s for s in good])
            rows.append(
                {
                    "k": k,
                    "tool": name,
                    "runs": f"{len(good)}/{len(mine)}",
                    "wall_s": wall,
                    "x_floor": wall / floor_wall if floor_wall else float("nan"),
                    "x_floor_chan": wall / chan_wall if chan_wall else float("nan"),
                    "cpu_s": median([s.cpu_s for s in good]),
                    "host_cpu_s": median([s.host_cpu_s for s in good]),
                    "maxrss_mb": median([s.maxrss_mb for s in good]),
                    "tree_rss_mb": median([s.tree_rss_mb for s in good]),
                    "background_cpu_s": median([s.background_cpu_s for s in good]),
                    "threads": max([s.threads for s in good], default=0),
                    "connections": median([s.connections for s in good]),
                    "round_trips": median([s.round_trips for s in good]),
                    "forwarder_cpu_s": median([s.forwarder_cpu_s for s in good]),
                    "failures": sorted({s.note for s in mine if not s.ok}),
                }
            )
    return rows


def render_table(rows: list[dict[str, Any]], labels: dict[str, str], latency: bool = False) -> str:
    """The markdown table; with `latency`, what the forwarder counted, per run, all hosts."""
    extra = " connections | round trips | forwarder CPU s |" if latency else ""
    head = (
        "| K | tool | wall s | x floor (1 exec) | x floor (channels) | CPU s | host CPU s "
        "| peak RSS MB | tree RSS MB | threads | other CPU s | runs ok |" + extra + "\n"
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|" + ("--:|" * 3 if latency else "") + "\n"
    )

    def num(value: float, digits: int = 2) -> str:
        return "—" if value != value else f"{value:.{digits}f}"  # NaN: no good run

    lines = [
        f"| {r['k']} | {labels[r['tool']]} | {num(r['wall_s'])} | {num(r['x_floor'])} "
        f"| {num(r['x_floor_chan'])} | {num(r['cpu_s'])} | {num(r['host_cpu_s'])} "
        f"| {num(r['maxrss_mb'], 0)} | {num(r['tree_rss_mb'], 0)} | {r['threads']} "
        f"| {num(r['background_cpu_s'], 1)} | {r['runs']} |"
        + (
            f" {num(r['connections'], 0)} | {num(r['round_trips'], 0)} "
            f"| {num(r['forwarder_cpu_s'])} |"
            if latency
            else ""
        )
        for r in rows
    ]
    failures = [f"- K={r['k']} {r['tool']}: {note}" for r in rows for note in r["failures"] if note]
    return (
        head + "\n".join(lines) + ("\n\nFailed runs:\n" + "\n".join(failures) if failures else "")
    )


def update_readme(path: Path, section: str, block: str) -> None:
    start, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    text = path.read_text() if path.exists() else ""
    replacement = f"{start}\n{block}\n{end}"
    if start in text and end in text:
        before, _, rest = text.partition(start)
        _, _, after = rest.partition(end)
        text = before + replacement + after
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + replacement + "\n"
    path.write_text(text)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,10,50,200", help="fleet sizes K, comma list")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per tool and K (5)")
    parser.add_argument(
        "--tools",
        default=",".join(ALL_TOOLS),
        help=f"comma list of {', '.join([*ALL_TOOLS, *EXTRA_TOOLS, *PROTOTYPES])}",
    )
    parser.add_argument(
        "--rtt-ms",
        type=float,
        help="add this round-trip time: every tool reaches the hosts through bench/latency.py",
    )
    parser.add_argument("--forks", type=int, default=50, help="hosts in parallel, every tool (50)")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not build bench/.venv: skip pyinfra/ansible when it is missing",
    )
    parser.add_argument("--readme", type=Path, default=README, help="README to update")
    parser.add_argument("--section", default="compare", help="README section to replace")
    parser.add_argument("--json", type=Path, help="also write every sample here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="time redmedic as committed at HEAD (git archive), not the working tree",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for a quiet machine before each timed run (smoke tests)",
    )
    args = parser.parse_args(argv)
    args.ks = sorted({int(k) for k in args.hosts.split(",") if k.strip()})
    args.tool_names = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(args.tool_names) - set(ALL_TOOLS) - set(EXTRA_TOOLS) - set(PROTOTYPES)
    if unknown or not args.ks or min(args.ks) < 1 or args.repeat < 1:
        parser.error(f"bad --hosts/--tools/--repeat (unknown tools: {sorted(unknown)})")
    return args


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the fleet's finally: daemons stop


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_prerequisites()
    if missing:
        print("bench: cannot start simulated hosts: " + "; ".join(missing), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    become_subreaper()
    _raise_nofile_limit()
    names = list(args.tool_names)
    if {"pyinfra", "ansible"} & set(names) and not bench_venv_ready():
        if args.no_install:
            skipped = [n for n in names if n in ("pyinfra", "ansible")]
            print(f"bench: bench/.venv not built, skipping {', '.join(skipped)}", file=sys.stderr)
            names = [n for n in names if n not in skipped]
        else:
            print("bench: building bench/.venv (pyinfra, ansible-core, py-spy)", file=sys.stderr)
            build_bench_venv()
    workload = Workload.load()
    root = Path(tempfile.mkdtemp(prefix="redmedic-bench-"))
    root.chmod(0o755)  # the login user reads its redis.conf copy below it
    samples: list[Sample] = []
    trips: dict[str, str] = {}  # tool -> redmedic's own per-host count (-vvv)
    started = dt.datetime.now(dt.UTC)
    source = source_state(args.snapshot)  # now: the snapshot is taken from HEAD below
    try:
        print(f"bench: starting {max(args.ks)} simulated hosts in {root}", file=sys.stderr)
        with running_fleet(max(args.ks), root) as fleet, contextlib.ExitStack() as stack:
            if "triage" in names or "floor-triage" in names:
                with_triage_redis(fleet, stack)
            if args.rtt_ms is not None:
                with_latency(fleet, args.rtt_ms, stack)
            config, playbook = write_ansible_files(root, fleet, workload)
            tools = _tools(config, playbook)
            home = root / "home"
            home.mkdir()
            env = tool_env(home)
            if args.snapshot:
                env["PYTHONPATH"] = str(snapshot_source(root / "snapshot"))
            warmed: set[str] = set()
            for k in args.ks:
                inputs = write_inputs(fleet, k, workload)
                for name in names:
                    if name not in warmed:  # untimed: page cache, .pyc files, a sanity check
                        sample = measure_once(tools[name], inputs, fleet, args.forks, -1, env)
                        warmed.add(name)
                        if tools[name].counts_trips:
                            trips[name] = host_trips(inputs.dir / f"{name}--1" / "output.txt")
                        if not sample.ok:
                            print(f"bench: warm-up {name} K={k}: {sample.note}", file=sys.stderr)
                for rep in range(args.repeat):
                    order = names[rep % len(names) :] + names[: rep % len(names)]
                    for name in order:
                        sample = measure_once(
                            tools[name], inputs, fleet, args.forks, rep, env, not args.no_wait
                        )
                        samples.append(sample)
                        print(
                            f"bench: K={k} {name} rep {rep + 1}/{args.repeat}: "
                            f"{sample.wall_s:.2f} s wall, {sample.cpu_s:.2f} s CPU"
                            + (f" [{sample.note}]" if sample.note else ""),
                            file=sys.stderr,
                        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    rows = summarize(samples, names, args.ks)
    labels = {name: _tools(Path(), Path())[name].label for name in names}
    versions = tool_versions(names)
    meta = (
        f"Run {started:%Y-%m-%d %H:%M} UTC, {source}, "
        f"on {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; forks {args.forks}, median of {args.repeat} interleaved runs"
        + (f"; {args.rtt_ms:g} ms RTT added (bench/latency.py)" if args.rtt_ms is not None else "")
        + ".\n"
        f"Command: `{' '.join(['python', 'bench/run.py', *(argv or sys.argv[1:])])}`\n\n"
    )
    table = meta + render_table(rows, labels, latency=args.rtt_ms is not None)
    if trips:
        table += "\n\nredmedic's own count per host (`-vvv`, untimed warm-up run):\n\n" + "\n".join(
            f"- {labels[name]}: {line}" for name, line in trips.items()
        )
    print(table)
    update_readme(args.readme, args.section, table)
    if args.json:
        args.json.write_text(json.dumps([s.__dict__ for s in samples], indent=1))
    return 0 if all(s.ok for s in samples) else 1


if __name__ == "__main__":
    sys.exit(main())
