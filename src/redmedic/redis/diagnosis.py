"""The triage brain: evidence about one host in, named causes with their evidence out.

`diagnose()` is a pure function of three kinds of evidence:

* the host's facts (`redis_facts`): unit, process, sockets, config, limits, INFO, firewall
  verdicts, kernel settings;
* what clients saw from each vantage point (probes): the *control* node (a remote client)
  and the *host* itself (loopback, through the SSH tunnel or redis-cli on the host);
* known log messages (`log_scan`).

The vantage points are what make a diagnosis rather than a guess. "Connection refused"
from the control node alone has five causes; the same refusal while the host itself gets
PONG rules out a stopped server, and `ss` then tells bind (listening on loopback only)
from firewall (listening everywhere, a ufw/firewalld rule in the way) from the network
in between (nothing on the host explains it: report it, nothing to fix here).

Each rule below is a small function over a `HostView` (the facts, read once into typed
values) that returns a `Finding` or None; a finding's evidence quotes the facts behind it
("ss: LISTEN 127.0.0.1:6379 redis-server (pid 812)"), so a reader can check the reasoning.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redmedic.model.plan import Finding
from redmedic.redis import memory
from redmedic.redis.facts import as_int
from redmedic.redis.live import parse_version, protected_mode_refuses_remote, shown_version
from redmedic.redis.logs import LogHit, clip
from redmedic.redis.probes.outcome import ProbeOutcome, one_line

CAUSES = (
    "not-running",
    "not-enabled",
    "wrong-port",
    "bind",
    "protected-mode",
    "firewall-ufw",
    "firewall-firewalld",
    "max-clients",
    "nofile-limit",
    "oom",
    "overcommit",
    "network",
    "client",
)
# Causes that explain why a client cannot connect (as opposed to latent host problems).
CONNECTIVITY = frozenset(
    {"not-running", "wrong-port", "bind", "protected-mode", "firewall-ufw", "firewall-firewalld"}
)
RESERVED_DESCRIPTORS = 32  # Redis keeps 32 descriptors for itself beyond maxclients
DEFAULT_MAXCLIENTS = 10000
DEFAULT_PORT = 6379

# Outcomes where a Redis server answered (the connection itself works).
_ANSWERED = frozenset(
    {
        ProbeOutcome.OK,
        ProbeOutcome.AUTH_REQUIRED,
        ProbeOutcome.AUTH_FAILED,
        ProbeOutcome.LOADING,
        ProbeOutcome.OOM,
    }
)
# Connection failures a firewall or the network can cause.
_BLOCKED = frozenset(
    {ProbeOutcome.REFUSED, ProbeOutcome.TIMEOUT, ProbeOutcome.NO_ROUTE, ProbeOutcome.ERROR}
)
_HOST_VANTAGES = ("host", "local", "loopback", "tunnel", "ssh")
_DISABLED_STATES = frozenset({"disabled", "masked", "enabled-runtime", "masked-runtime"})
_WILDCARDS = frozenset({"0.0.0.0", "*", "::", ""})


# -- probes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vantage:
    """What a client at one vantage point saw: a probe outcome and its one-line detail."""

    name: str  # "control" or "host"
    outcome: ProbeOutcome
    detail: str
    address: str | None = None

    @property
    def answered(self) -> bool:
        """A Redis server answered (even if only to say NOAUTH, LOADING or OOM)."""
        return self.outcome in _ANSWERED

    def evidence(self) -> str:
        return f"{self.name}: {clip(self.detail) or self.outcome.value}"


@dataclass(frozen=True)
class Probes:
    """The vantage points a triage compares; either may be missing."""

    control: Vantage | None = None
    host: Vantage | None = None


def probes_from(value: Any) -> Probes:
    """Read probe results out of registered step results, whatever their nesting.

    A probe is a mapping with `outcome` and `detail` (as `redis_probe`/`tcp_probe`
    register per vantage: `{control: {...}, host: {...}, outcome: <summary>}`); they may
    also come as a list, or nested deeper. A probe's vantage is its `vantage` (or
    `from`/`via`) key, else the key it sits under: names containing host, local,
    loopback, tunnel or ssh mean the host itself, anything else the control node. Nested
    probes are read before the mapping holding them, and the first probe per vantage wins.
    """
    found: dict[str, Vantage] = {}

    def visit(item: Any, hint: str | None) -> None:
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if isinstance(sub, Mapping | list | tuple):
                    visit(sub, str(key))
            if "outcome" in item and "detail" in item:
                explicit = item.get("vantage") or item.get("from") or item.get("via")
                name = _vantage_name(explicit, hint)
                found.setdefault(name, _vantage(name, item))
        elif isinstance(item, list | tuple):
            for sub in item:
                visit(sub, hint)

    visit(value, None)
    return Probes(control=found.get("control"), host=found.get("host"))


def _vantage_name(explicit: Any, hint: str | None) -> str:
    for name in (explicit, hint):
        if isinstance(name, str) and name:
            lowered = name.lower()
            if "control" in lowered:
                return "control"
            if any(word in lowered for word in _HOST_VANTAGES):
                return "host"
    return "control"


def _vantage(name: str, item: Mapping[str, Any]) -> Vantage:
    try:
        outcome = ProbeOutcome(str(item["outcome"]))
    except ValueError:
        outcome = ProbeOutcome.ERROR
    address = item.get("address")
    return Vantage(
        name,
        outcome,
        one_line(str(item.get("detail") or "")),
        str(address) if address else None,
    )


# -- the host, read once -----------------------------------------------------------------


@dataclass(frozen=True)
class Socket:
    address: str
    port: int
    process: str | None = None
    pid: int | None = None

    def evidence(self) -> str:
        shown = f"[{self.address}]" if ":" in self.address else self.address
        owner = f" {self.process} (pid {self.pid})" if self.process else ""
        return f"ss: LISTEN {shown}:{self.port}{owner}"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.address)

    @property
    def wildcard(self) -> bool:
        return self.address in _WILDCARDS


@dataclass(frozen=True)
class HostView:
    """The facts `diagnose` uses, as typed values; built by `host_view` from the dict."""

    port: int
    init: str = "none"
    unit: Mapping[str, Any] | None = None
    pid: int | None = None
    redis_sockets: tuple[Socket, ...] = ()
    port_holders: tuple[Socket, ...] = ()  # anything listening on the expected port
    owners_visible: bool = True
    config_path: str | None = None
    directives: Mapping[str, Any] = field(default_factory=dict)
    config_read: bool = False
    live: Mapping[str, str] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    binary_version: str | None = None  # the installed redis-server's (`--version`)
    open_files: int | None = None  # soft limit; None: unknown or unlimited
    open_files_known: bool = False
    overcommit: int | None = None
    overcommit_settable: bool | None = None  # False: /proc/sys is read-only (a container)
    ram: Mapping[str, Any] = field(default_factory=dict)  # `free -b`
    check_system: Mapping[str, str] = field(default_factory=dict)
    ufw: Mapping[str, Any] = field(default_factory=dict)
    firewalld: Mapping[str, Any] = field(default_factory=dict)

    @property
    def on_port(self) -> tuple[Socket, ...]:
        """Redis's sockets on the expected port (any listener there if owners are hidden)."""
        mine = tuple(s for s in self.redis_sockets if s.port == self.port)
        return mine if self.owners_visible else self.port_holders

    @property
    def running(self) -> bool:
        return self.pid is not None or bool(self.redis_sockets) or bool(self.on_port)

    @property
    def answered_locally(self) -> bool:
        return bool(self.info.get("answered"))

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.info.get(name)
        return value if isinstance(value, Mapping) else {}

    def directive(self, name: str) -> str | None:
        value = self.directives.get(name)
        return value if isinstance(value, str) else None

    @property
    def version(self) -> tuple[int, int, int] | None:
        """The running server's version (INFO server), else the installed binary's (what a
        stopped server starts as); None when neither was read."""
        return parse_version(self.section("server").get("redis_version") or self.binary_version)

    def configured(self, name: str) -> str | None:
        """What the next start uses: the config file's value when it was read, else the
        running server's (CONFIG GET)."""
        return self.directive(name) if self.config_read else self.live.get(name)

    def has_password(self) -> bool | None:
        """Must the default user authenticate? None when the configuration is unknown.

        `requirepass`, a `user default` rule with a password, or an ACL file (whose users
        are not read here: counted as a password, so protected mode is not blamed on a guess).
        """
        if not self.config_read:
            return None
        if self.directive("requirepass") or self.directive("aclfile"):
            return True
        users = self.directives.get("user")
        rules = users if isinstance(users, list) else []
        return any(_default_user_has_password(rule) for rule in rules)

    def config_evidence(self, name: str) -> list[str]:
        """`config PATH: name value` and `live: name value` lines where known."""
        lines = []
        if self.config_read:
            value = self.directive(name)
            shown = f"{name} {value}" if value is not None else f"no `{name}` line (default)"
            lines.append(f"config {self.config_path}: {shown}")
        if name in self.live:
            lines.append(f"live: {name} {self.live[name]}")
        return lines

    def unit_evidence(self) -> list[str]:
        if not self.unit:
            return []
        u = self.unit
        return [
            f"systemd: {u.get('name')} ActiveState={u.get('active_state')} "
            f"SubState={u.get('sub_state')} Result={u.get('result')} "
            f"NRestarts={u.get('n_restarts')} UnitFileState={u.get('unit_file_state')}"
        ]


def _default_user_has_password(rule: str) -> bool:
    """Does a `user default ...` rule leave the default user without `nopass`?

    Protected mode tests that flag (networking.c). A configured user starts from `reset`
    (no `nopass`); `nopass` sets it, a password (`>secret`, `#hash`), `resetpass` and
    `reset` clear it: the last of them decides.
    """
    words = rule.split()
    if words[:1] != ["default"]:
        return False
    nopass = False
    for word in words[1:]:
        if word == "nopass":
            nopass = True
        elif word.startswith((">", "#")) or word in ("resetpass", "reset"):
            nopass = False
    return not nopass


def host_view(facts: Mapping[str, Any], port: int) -> HostView:
    """Read a `redis_facts` result (or any subset of it) into a `HostView`."""
    listening = [_socket(s) for s in facts.get("listening") or []]
    config = facts.get("config") or {}
    limits = facts.get("max_open_files")
    check = facts.get("check_system") or {}
    firewall = facts.get("firewall") or {}
    kernel = facts.get("kernel") or {}
    return HostView(
        port=port,
        init=str(facts.get("init") or "none"),
        unit=facts.get("unit") or None,
        pid=as_int(facts.get("pid")),
        redis_sockets=tuple(_socket(s) for s in facts.get("redis_listening") or []),
        port_holders=tuple(s for s in listening if s.port == port),
        owners_visible=any(s.process for s in listening) or not listening,
        config_path=config.get("path"),
        directives=config.get("directives") or {},
        config_read=config.get("status") == "read",
        live=facts.get("live_config") or {},
        info=facts.get("info") or {},
        binary_version=facts.get("binary_version"),
        open_files=as_int(limits.get("soft")) if isinstance(limits, Mapping) else None,
        open_files_known=isinstance(limits, Mapping),
        overcommit=as_int(kernel.get("overcommit_memory")),
        overcommit_settable=kernel.get("overcommit_settable"),
        ram=facts.get("memory") or {},
        check_system=check.get("checks") or {},
        ufw=firewall.get("ufw") or {},
        firewalld=firewall.get("firewalld") or {},
    )


def _socket(item: Mapping[str, Any]) -> Socket:
    return Socket(
        str(item.get("address") or ""),
        as_int(item.get("port")) or 0,
        item.get("process"),
        as_int(item.get("pid")),
    )


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`: addresses only the host itself can reach."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


# -- the rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """What the fixes will set, where a cause depends on it: the open files maxclients
    needs once a max-clients fix raised it, the room eviction frees under the policy an
    oom fix leaves. None: the host's current value."""

    maxclients: int | None = None
    maxmemory_policy: str | None = None


INFERRED = "inferred from the configuration"


@dataclass(frozen=True)
class Evidence:
    """Everything one rule may look at."""

    host: HostView
    probes: Probes
    hits: Mapping[str, tuple[str, ...]]
    symptom: str | None = None
    targets: Targets = field(default_factory=Targets)

    def log(self, *kinds: str, last: int = 3) -> list[str]:
        lines = [line for kind in kinds for line in self.hits.get(kind, ())]
        return [f"log: {clip(line)}" for line in lines[-last:]]

    def seen(self) -> list[str]:
        """Evidence lines of every probe that was run."""
        return [v.evidence() for v in (self.probes.control, self.probes.host) if v]

    @property
    def control_failed(self) -> bool:
        control = self.probes.control
        return control is not None and control.outcome in _BLOCKED

    @property
    def host_fine(self) -> bool:
        """The server answers on the host itself (host probe, else redis-cli INFO)."""
        host = self.probes.host
        if host is not None and host.answered:
            return True
        return self.host.answered_locally and bool(self.host.on_port)

    def maxclients_after(self) -> int | None:
        """The maxclients the max-clients fix sets, if it will run and raise it."""
        target = self.targets.maxclients
        if target is None or target <= wanted_maxclients(self.host):
            return None
        return target if _max_clients(self) is not None else None

    def policy(self, state: memory.MemoryState) -> str:
        """The maxmemory-policy once the fixes ran (the oom fix's, else the running one)."""
        return self.targets.maxmemory_policy or state.policy

    def outcome_seen(self, outcome: ProbeOutcome) -> list[Vantage]:
        return [v for v in (self.probes.control, self.probes.host) if v and v.outcome is outcome]


Rule = Callable[[Evidence], Finding | None]


def _not_running(ev: Evidence) -> Finding | None:
    host = ev.host
    if host.running:
        return None
    evidence = host.unit_evidence()
    evidence.append(f"pgrep/ss: no redis-server process; nothing of Redis listens on {host.port}")
    evidence += [s.evidence() + " (holds the port)" for s in host.port_holders]
    evidence += ev.log("port-in-use", "bind-address", "listen-failed", "nofile")
    evidence += ev.seen()
    reason = ""
    if ev.hits.get("port-in-use"):
        reason = ": its port is taken by another process (Address already in use)"
    elif ev.hits.get("bind-address"):
        reason = ": it cannot bind an address this host does not have"
    elif host.unit and host.unit.get("active_state") == "failed":
        reason = f": {host.unit.get('name')} failed (Result={host.unit.get('result')})"
    return Finding("not-running", f"redis-server is not running{reason}", tuple(evidence))


def _not_enabled(ev: Evidence) -> Finding | None:
    unit = ev.host.unit
    if ev.host.init != "systemd" or not unit or unit.get("load_state") != "loaded":
        return None
    state = unit.get("unit_file_state")
    if state not in _DISABLED_STATES:
        return None
    return Finding(
        "not-enabled",
        f"{unit.get('name')} is {state}: Redis will not come back after a reboot",
        (f"systemctl: UnitFileState={state}",),
    )


def _wrong_port(ev: Evidence) -> Finding | None:
    host = ev.host
    if not host.running:
        return _wrong_port_configured(ev)
    if host.on_port:
        return None
    if not host.owners_visible:
        return None  # ss could not say which process listens where (not root)
    if host.redis_sockets:
        ports = ", ".join(sorted({str(s.port) for s in host.redis_sockets}))
        summary = f"Redis listens on port {ports}, clients expect {host.port}"
    else:
        summary = (
            f"redis-server (pid {host.pid}) listens on no TCP port; clients expect {host.port}"
        )
    evidence = [s.evidence() for s in host.redis_sockets]
    evidence += host.config_evidence("port") + ev.seen()
    return Finding("wrong-port", summary, tuple(evidence))


def _wrong_port_configured(ev: Evidence) -> Finding | None:
    """A stopped server configured for another port: starting it alone will not help."""
    host = ev.host
    port = as_int(host.directive("port")) if host.config_read else None
    if port is None or port == host.port:
        return None
    evidence = [
        f"{INFERRED}: Redis is not running, and its config makes it listen on {port}",
        *host.config_evidence("port"),
    ]
    return Finding(
        "wrong-port",
        f"Redis is configured for port {port}, clients expect {host.port}",
        tuple(evidence + ev.seen()),
    )


def _reachable_from(sockets: Sequence[Socket], address: str | None) -> bool:
    """Can a remote client reach one of these sockets (as far as addresses tell)?"""
    for s in sockets:
        if s.wildcard or (address is not None and s.address == address):
            return True
        if not s.loopback and not _is_ip(address):
            return True  # a name: cannot tell which address it resolves to
    return False


def _is_ip(text: str | None) -> bool:
    if not text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _bind(ev: Evidence) -> Finding | None:
    host, control = ev.host, ev.probes.control
    if not host.on_port:
        return _bind_configured(ev)
    if control is None or control.outcome is not ProbeOutcome.REFUSED:
        return None
    if _reachable_from(host.on_port, control.address):
        return None
    addresses = " ".join(s.address for s in host.on_port)
    where = "loopback only" if all(s.loopback for s in host.on_port) else "other addresses only"
    summary = f"Redis listens on {addresses} ({where}): remote clients are refused"
    evidence = [s.evidence() for s in host.on_port] + host.config_evidence("bind") + ev.seen()
    return Finding("bind", summary, tuple(evidence))


def _bind_configured(ev: Evidence) -> Finding | None:
    """Redis is down or on another port, and its own addresses (else its config's `bind`)
    are loopback only: once it listens on the clients' port, remote clients are refused."""
    host = ev.host
    if host.redis_sockets:
        addresses = [s.address for s in host.redis_sockets]
        evidence = [s.evidence() for s in host.redis_sockets]
    elif host.config_read and host.directive("bind"):
        addresses = [word.lstrip("-") for word in str(host.directive("bind")).split()]
        evidence = []
    else:
        return None
    if not addresses or not all(is_loopback(a) for a in addresses):
        return None
    why = "listens on another port" if host.running else "is not running"
    evidence = [f"{INFERRED}: Redis {why}; it binds loopback only", *evidence]
    evidence += host.config_evidence("bind") + ev.seen()
    return Finding(
        "bind",
        f"Redis is set to listen on {' '.join(addresses)} (loopback only): remote clients "
        "will be refused",
        tuple(evidence),
    )


def _protected_mode(ev: Evidence) -> Finding | None:
    # Only a remote client can meet protected mode: it never refuses loopback clients, so
    # a host-side "closed without a reply" is a tunnel that failed, not protected mode.
    control = ev.probes.control
    host = ev.host
    if control is not None and control.outcome is ProbeOutcome.PROTECTED_MODE:
        evidence = [control.evidence()]
    elif control is not None and control.answered:
        return None  # this machine got in: whatever the configuration says, it lets clients in
    elif _protected_mode_configured(host):
        # Hidden behind another cause: Redis checks maxclients (and a client must get
        # through bind, port and firewall) before protected mode.
        version = host.version
        rule = (
            "Redis before 7.0 refuses remote clients when no bind is set"
            if version is not None and version < (7, 0, 0)
            else "Redis 7+ refuses every remote client whatever bind says"
        )
        shown = f"this one is {shown_version(version)}" if version else "version unknown: 7+ taken"
        evidence = [f"{INFERRED}: protected mode on, no password; {rule} ({shown})"]
        evidence += ev.seen()
    else:
        return None
    evidence += host.config_evidence("protected-mode")
    if host.config_read and not host.directive("requirepass"):
        evidence.append(f"config {host.config_path}: no requirepass (no password set)")
    evidence += [s.evidence() for s in host.on_port] + ev.log("protected-mode")
    return Finding(
        "protected-mode",
        "protected mode refuses non-loopback clients because no password is set",
        tuple(evidence),
    )


def _protected_mode_configured(host: HostView) -> bool:
    """Would this configuration answer remote clients with DENIED (see `redis.live`)?"""
    has_password = host.has_password()
    if has_password is None:
        return False
    return protected_mode_refuses_remote(
        host.version,
        protected_mode=(host.configured("protected-mode") or "yes").lower() != "no",
        has_password=has_password,
        bind_set=bool(host.configured("bind")),
    )


def _firewall(backend: str, cause: str, state_key: str, active: str) -> Rule:
    """A rule for one firewall: it blocks the port (its own verdict) and a remote client
    failed to connect in a way a firewall causes."""

    def rule(ev: Evidence) -> Finding | None:
        facts = ev.host.ufw if backend == "ufw" else ev.host.firewalld
        if facts.get(state_key) != active or facts.get("port_open") is not False:
            return None
        if not ev.control_failed:
            return None
        evidence = [f"{backend}: {facts.get('deciding')}", *ev.seen()]
        summary = f"{backend} blocks {ev.host.port}/tcp for remote clients"
        return Finding(cause, summary, tuple(evidence))

    return rule


def _max_clients(ev: Evidence) -> Finding | None:
    clients, stats = ev.host.section("clients"), ev.host.section("stats")
    connected, limit = as_int(clients.get("connected_clients")), as_int(clients.get("maxclients"))
    rejected = as_int(stats.get("rejected_connections")) or 0
    full = connected is not None and limit is not None and connected >= limit
    seen = ev.outcome_seen(ProbeOutcome.MAX_CLIENTS)
    logged = ev.log("max-clients")
    cli_error = str(ev.host.info.get("error") or "")
    refused_cli = "max number of clients reached" in cli_error
    if not (full or seen or logged or rejected or refused_cli):
        return None
    if not (full or seen or logged or refused_cli) and (
        _maxclients_raised(ev) or _denied_by_protected_mode(ev)
    ):
        return None  # refused before a (live) raise, or the DENIED clients counted too
    evidence = [v.evidence() for v in seen]
    if refused_cli:
        evidence.append(f"redis-cli on the host: {clip(cli_error)}")
    if connected is not None and limit is not None:
        evidence.append(f"INFO clients: connected_clients={connected} maxclients={limit}")
    if rejected:
        evidence.append(f"INFO stats: rejected_connections={rejected} (refused at maxclients)")
    evidence += logged
    summary = (
        f"all {limit} client slots are taken: new clients get 'max number of clients reached'"
        if full
        else "Redis has refused clients at its maxclients limit"
    )
    return Finding("max-clients", summary, tuple(evidence))


def _denied_by_protected_mode(ev: Evidence) -> bool:
    """Protected mode refuses remote clients here, so INFO's rejected_connections is no
    sign of maxclients: Redis counts each DENIED client in it too (networking.c; the
    triage's own probe from this machine is one, and earlier runs' probes)."""
    control = ev.probes.control
    denied = control is not None and control.outcome is ProbeOutcome.PROTECTED_MODE
    return denied or _protected_mode_configured(ev.host)


def _maxclients_raised(ev: Evidence) -> bool:
    """The running maxclients is already what the max-clients fix would set."""
    wanted, running = ev.targets.maxclients, running_maxclients(ev.host)
    return wanted is not None and running is not None and running >= wanted


def wanted_maxclients(host: HostView) -> int:
    """The maxclients the operator asked for: the config file's (its default 10000), else
    the running server's, else the default. The running value may already be reduced."""
    if host.config_read:
        return as_int(host.directive("maxclients")) or DEFAULT_MAXCLIENTS
    return running_maxclients(host) or DEFAULT_MAXCLIENTS


def running_maxclients(host: HostView) -> int | None:
    """maxclients of the running server (CONFIG GET, else INFO clients)."""
    return as_int(host.live.get("maxclients")) or as_int(host.section("clients").get("maxclients"))


def _nofile(ev: Evidence) -> Finding | None:
    host = ev.host
    configured = wanted_maxclients(host)
    raised = ev.maxclients_after()
    wanted = raised or configured
    needed = wanted + RESERVED_DESCRIPTORS
    low = host.open_files is not None and host.open_files < needed
    running_max = running_maxclients(host)
    reduced = running_max is not None and host.config_read and running_max < configured
    logged = ev.log("nofile")
    if not (low or reduced or logged):
        return None
    evidence = []
    if host.open_files_known:
        shown = host.open_files if host.open_files is not None else "unlimited"
        evidence.append(f"/proc/{host.pid}/limits: Max open files {shown} (soft)")
    after_fix = " (after the max-clients fix)" if raised else ""
    evidence.append(f"maxclients {wanted}{after_fix} needs {needed} file descriptors")
    if running_max is not None:
        evidence.append(f"running maxclients {running_max}")
    evidence += logged
    summary = (
        f"the open-file limit ({host.open_files}) is below the {needed} that maxclients "
        f"{wanted} needs: Redis caps its clients"
        if low
        else "Redis logged that it reduced maxclients for a low open-file limit"
    )
    return Finding("nofile-limit", summary, tuple(evidence))


def _oom(ev: Evidence) -> Finding | None:
    state = memory.memory_state(ev.host.info, ev.host.ram)
    limit = state.maxmemory if state else 0
    full = state is not None and state.policy == "noeviction" and 0 < limit <= state.used
    stuck = (
        state is not None and memory.evicts(state.policy) and not memory.holds(state, state.policy)
    )
    seen = ev.outcome_seen(ProbeOutcome.OOM)
    refused = ev.log("oom")
    killed = ev.log("oom-killer")
    after = ev.maxclients_after()
    if killed and state is not None and limit and memory.holds(state, ev.policy(state), after):
        killed = []  # an earlier kill: a limit that holds is in place now
    if not (full or stuck or seen or refused or killed):
        return None
    evidence = [v.evidence() for v in seen]
    if state is not None and limit:
        evidence.append(
            f"INFO memory: used_memory={state.used} used_memory_overhead={state.overhead} "
            f"maxmemory={limit} maxmemory_policy={state.policy}"
        )
    evidence += refused + killed
    if stuck and state is not None:
        summary = (
            f"evicting keys ({state.policy}) cannot free room: what Redis cannot evict fills "
            "maxmemory, writes fail with OOM"
        )
    elif state is not None and state.policy != "noeviction" and (seen or refused):
        summary = f"Redis refused writes at maxmemory ({state.policy}): OOM"
    elif full or seen or refused:
        summary = "Redis is at maxmemory with noeviction: writes fail with OOM"
    else:
        summary = "the kernel's OOM killer killed redis-server"
    sizing = memory.size(state, ev.policy(state), after) if state is not None else None
    if state is None or sizing is None:
        return Finding("oom", summary, tuple(evidence))
    evidence += sizing.evidence(state)
    if sizing.maxmemory is not None:
        summary += f"; under {sizing.policy} maxmemory must grow: the fix sets {sizing.shown()}"
        return Finding("oom", summary, tuple(evidence))
    summary += (
        f"; under {sizing.policy} Redis needs maxmemory >= {memory.mib(sizing.least)}, more "
        f"than this host can give it ({memory.mib(sizing.ceiling or 0)}): add RAM or delete "
        "keys, or set redis_maxmemory (and redis_maxmemory_policy) knowingly"
    )
    return Finding("oom", summary, tuple(evidence), fixable=False)


def maxmemory_sizing(
    facts: Mapping[str, Any], policy: str | None = None, maxclients: int | None = None
) -> memory.Sizing | None:
    """The `maxmemory` an oom fix must set for writes to hold under `policy` (default: the
    running one) with `maxclients` (default: the running one): None when the current limit
    holds or INFO memory is unknown."""
    state = memory.memory_state(facts.get("info") or {}, facts.get("memory") or {})
    return memory.size(state, policy or state.policy, maxclients) if state is not None else None


def _overcommit(ev: Evidence) -> Finding | None:
    value = ev.host.overcommit
    if value is None or value == 1:
        return None
    evidence = [f"sysctl: vm.overcommit_memory = {value} (Redis wants 1)"]
    check = ev.host.check_system.get("overcommit")
    if check:
        evidence.append(f"redis-server --check-system: [overcommit]...{check}")
    evidence += ev.log("overcommit", "fork-failed")
    summary = "memory overcommit is off: background saves and replication can fail (fork)"
    if ev.host.overcommit_settable is False:
        # A container: the value is the machine's, one for every container on it. A fix
        # can persist 1 for a boot, not change the running kernel: reported, not "fixable".
        evidence.append("/proc/mounts: /proc/sys is read-only here (a container)")
        summary += (
            "; this host cannot change it (read-only /proc/sys): set vm.overcommit_memory = 1 "
            "on the machine that runs it"
        )
        return Finding("overcommit", summary, tuple(evidence), fixable=False)
    return Finding("overcommit", summary, tuple(evidence))


def _network(ev: Evidence, found: Iterable[Finding]) -> Finding | None:
    """Control cannot connect, the host itself is fine and nothing on the host explains it."""
    control = ev.probes.control
    if control is None or not ev.control_failed or not ev.host_fine:
        return None
    if any(f.cause in CONNECTIVITY for f in found):
        return None
    evidence = [control.evidence()]
    host = ev.probes.host
    evidence.append(host.evidence() if host else "host: redis-cli INFO answered")
    evidence += [s.evidence() for s in ev.host.on_port]
    evidence.append(f"ufw: {ev.host.ufw.get('status', 'unknown')}")
    evidence.append(f"firewalld: {ev.host.firewalld.get('state', 'unknown')}")
    what = {
        ProbeOutcome.TIMEOUT: "packets to the port are dropped on the way",
        ProbeOutcome.NO_ROUTE: "there is no route to the host",
        ProbeOutcome.REFUSED: "something between the client and the host refuses",
        ProbeOutcome.ERROR: "the client cannot reach the host (name resolution or network)",
    }[control.outcome]
    return Finding(
        "network",
        f"Redis is fine on the host, but {what}: check the network path, security groups "
        "and the address clients use",
        tuple(evidence),
        fixable=False,
    )


def _client(ev: Evidence, found: Iterable[Finding]) -> Finding | None:
    """Every vantage point reaches the server: what fails is the client's side."""
    control = ev.probes.control
    if control is None or any(f.cause in CONNECTIVITY for f in found):
        return None
    if control.outcome in (ProbeOutcome.AUTH_REQUIRED, ProbeOutcome.AUTH_FAILED):
        summary = "the server works; clients must send the right password (AUTH)"
    elif control.outcome is ProbeOutcome.OK and ev.symptom:
        host = ev.probes.host
        if host is not None and not host.answered:
            return None
        summary = (
            "Redis answers from the control node and the host itself: check the client's "
            "host, port, password and connection pool"
        )
    else:
        return None
    evidence = ev.seen() + ([f"reported: {clip(one_line(ev.symptom))}"] if ev.symptom else [])
    return Finding("client", summary, tuple(evidence), fixable=False)


HOST_RULES: tuple[Rule, ...] = (
    _not_running,
    _not_enabled,
    _wrong_port,
    _bind,
    _protected_mode,
    _firewall("ufw", "firewall-ufw", "status", "active"),
    _firewall("firewalld", "firewall-firewalld", "state", "running"),
    _max_clients,
    _nofile,
    _oom,
    _overcommit,
)


def diagnose(
    facts: Mapping[str, Any],
    probe: Probes | None = None,
    log_hits: Iterable[LogHit] = (),
    expected_port: int = DEFAULT_PORT,
    *,
    symptom: str | None = None,
    targets: Targets | None = None,
) -> list[Finding]:
    """The causes the evidence points at, in a fixed order (see `CAUSES`); pure.

    `facts` is a `redis_facts` result, `probe` what clients saw (see `probes_from`),
    `log_hits` known log messages, `expected_port` where clients connect. `symptom` is the
    error a client reported: with it, a server that answers from every vantage point is
    reported as a `client` problem; without it, such a host has no findings. `targets`:
    what the fixes will set (see `Targets`).

    A cause is named when the facts imply it, also where no probe can see it yet (Redis
    answers a full server's clients "max number of clients reached" before protected mode
    would refuse them; a stopped server's bind and port are in its config): those
    findings' evidence starts with "inferred from the configuration", so one run fixes
    every cause instead of meeting the next one in verify.
    """
    grouped: dict[str, list[str]] = {}
    for hit in log_hits:
        grouped.setdefault(hit.kind, []).append(hit.line)
    ev = Evidence(
        host_view(facts, expected_port),
        probe or Probes(),
        {kind: tuple(lines) for kind, lines in grouped.items()},
        symptom,
        targets or Targets(),
    )
    found = [f for f in (rule(ev) for rule in HOST_RULES) if f is not None]
    for late in (_network, _client):
        finding = late(ev, found)
        if finding is not None:
            found.append(finding)
    return found
