"""`redis_probe` and `tcp_probe`: what a client sees, from here and from the host itself.

Two vantage points answer the question a "connection refused" report leaves open:

* `control` connects from this machine to `address:port`, like the failing client does.
* `host` connects to 127.0.0.1:port as the host sees it.

Refused from `control` but answering on `host` means Redis runs and something excludes
remote clients (bind, protected mode, a firewall); refused on both means nothing listens
(not running, or another port). That comparison is what picks the fix.

How `host` is reached, and why:

* `redis_probe` speaks Redis through the connection's tunnel (`conn.forward`, an SSH
  direct-tcpip channel), so the same redis-py probe and classification serve both
  vantages. A probe costs one channel: its open and the probe's one pipelined exchange
  are the two round trips it waits for. A tunnel whose target refuses is accepted
  locally and then closed, which redis-py reports as "closed by server" or "connection
  reset" — indistinguishable from a refusal, or from sshd refusing to forward at all.
  So when the tunnel gets no Redis reply, one TCP connect run on the host itself names
  the cause.
* `tcp_probe` runs that on-host connect directly: through a tunnel every TCP connect
  "succeeds" (the local end accepts before the remote end is tried), so only a command on
  the host can say whether the port takes connections.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import Field, field_validator

from redmedic.model.plan import Finding, StepResult
from redmedic.redis.probes.outcome import ProbeOutcome, ProbeResult, one_line, redact
from redmedic.redis.probes.tcp import tcp_probe
from redmedic.steps.base import StepArgs, StepContext, StepType

Vantage = Literal["control", "host"]
VANTAGES: tuple[Vantage, ...] = ("control", "host")
LOOPBACK = "127.0.0.1"

# The on-host connect: bash's /dev/tcp (bash is essential on Debian), else `nc -z`.
_HOST_CONNECT = """\
LC_ALL=C; export LC_ALL
p={port}; t={timeout}
if command -v bash >/dev/null 2>&1; then
  out=$(timeout "$t" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$p" 2>&1); rc=$?
elif command -v nc >/dev/null 2>&1; then
  out=$(timeout "$t" nc -z -v -w "$t" 127.0.0.1 "$p" 2>&1); rc=$?
else
  echo 'redmedic:no-tool'; exit 0
fi
printf 'redmedic:rc %s\\n%s\\n' "$rc" "$out"
"""
_TIMEOUT_RC = 124  # coreutils `timeout`

# What each outcome, seen from a vantage, says about the cause (see the module docstring).
_CLIENT_SIDE = {ProbeOutcome.AUTH_REQUIRED, ProbeOutcome.AUTH_FAILED, ProbeOutcome.TLS}
_SERVER_SIDE = {
    ProbeOutcome.PROTECTED_MODE: ("protected-mode", True),
    ProbeOutcome.MAX_CLIENTS: ("max-clients", True),
    ProbeOutcome.OOM: ("oom", True),
}
# A Redis server spoke (even if only to refuse the command).
_ANSWERED = {
    ProbeOutcome.OK,
    ProbeOutcome.PROTECTED_MODE,
    ProbeOutcome.AUTH_REQUIRED,
    ProbeOutcome.AUTH_FAILED,
    ProbeOutcome.MAX_CLIENTS,
    ProbeOutcome.OOM,
    ProbeOutcome.LOADING,
}


class TcpProbeArgs(StepArgs):
    address: str | None = Field(
        default=None, description="Address probed from `control`; default: the host's address."
    )
    port: int = Field(default=6379, ge=1, le=65535, description="TCP port of the server.")
    timeout: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds each attempt may take before it counts as a timeout.",
    )
    vantage: list[Vantage] = Field(
        default=list(VANTAGES),
        min_length=1,
        description=(
            "Where to probe from: `control` (this machine to address:port) and/or `host` "
            "(127.0.0.1:port as the host itself sees it)."
        ),
    )

    findings: bool = Field(
        default=True,
        description="Report findings from comparing the vantage points; false when a later "
        "redis_triage step names the causes (so each cause is shown once, and right).",
    )

    @field_validator("vantage")
    @classmethod
    def _distinct(cls, value: list[Vantage]) -> list[Vantage]:
        return list(dict.fromkeys(value))

    @property
    def from_host(self) -> bool:
        """Whether a vantage is the host's own (through the connection)."""
        return "host" in self.vantage


class RedisProbeArgs(TcpProbeArgs):
    password: str | None = Field(
        default=None, description="Password (AUTH); never shown in any output."
    )
    username: str | None = Field(
        default=None, description="ACL user name, sent together with `password`."
    )
    write: bool = Field(
        default=False,
        description="Also SET and DEL a probe key: a full server (noeviction) still answers "
        "PING and only refuses writes.",
    )
    tls: bool = Field(default=False, description="Speak TLS (certificates are not verified).")


def host_connect_script(port: int, timeout: float) -> str:
    """The one command that tests a TCP connect to 127.0.0.1:port on the host itself."""
    return _HOST_CONNECT.format(port=int(port), timeout=f"{timeout:g}")


def classify_host_connect(output: str, port: int, timeout: float) -> tuple[ProbeOutcome, str]:
    """Name the outcome of `host_connect_script` from its output (bash or nc wording)."""
    if output.startswith("redmedic:no-tool"):
        return ProbeOutcome.ERROR, "cannot test TCP on the host: neither bash nor nc is installed"
    head, _, said = output.partition("\n")
    said = one_line(said)
    try:
        rc = int(head.removeprefix("redmedic:rc "))
    except ValueError:
        return ProbeOutcome.ERROR, f"unexpected answer from the host: {one_line(output)[:200]}"
    target = f"{LOOPBACK}:{port}"
    if rc == 0:
        return ProbeOutcome.OK, f"TCP connect to {target} on the host succeeded"
    if rc == _TIMEOUT_RC:
        return ProbeOutcome.TIMEOUT, (
            f"no answer to TCP connect to {target} on the host within {timeout:g}s"
        )
    reasons = (
        ("Connection refused", ProbeOutcome.REFUSED),
        ("No route to host", ProbeOutcome.NO_ROUTE),
        ("Network is unreachable", ProbeOutcome.NO_ROUTE),
        ("timed out", ProbeOutcome.TIMEOUT),
    )
    for phrase, outcome in reasons:
        if phrase in said:
            return outcome, f"TCP connect to {target} on the host: {phrase}"
    return ProbeOutcome.ERROR, f"TCP connect to {target} on the host failed: {said or rc}"


def host_connect(ctx: StepContext, port: int, timeout: float) -> ProbeResult:
    """Test a TCP connect to 127.0.0.1:port from the host itself (one round trip)."""
    started = time.monotonic()
    result = ctx.conn.run(host_connect_script(port, timeout), timeout=timeout + 10)
    outcome, detail = classify_host_connect(result.stdout, port, timeout)
    return ProbeResult(outcome, detail, LOOPBACK, port, (time.monotonic() - started) * 1000)


def _closed_at_once(result: ProbeResult) -> bool:
    """redis-py saw the socket closed or reset before any reply: through a tunnel, what a
    failed direct-tcpip open looks like (whether redis-py had sent PING yet decides which)."""
    return result.detail.startswith(
        ("server closed the connection without a reply", "server reset the connection")
    )


def explain_tunnel_failure(tunnel: ProbeResult, on_host: ProbeResult) -> ProbeResult:
    """Combine a tunnelled probe that got no Redis reply with a TCP connect on the host.

    The on-host connect is the direct observation, so a failure there names the outcome.
    If the port does accept connections, a tunnel closed at once means sshd would not
    forward; anything else (e.g. no reply in time) is the tunnel's own finding.
    """
    if on_host.outcome is not ProbeOutcome.OK:
        return replace(
            tunnel,
            outcome=on_host.outcome,
            detail=on_host.detail,
            elapsed_ms=tunnel.elapsed_ms + on_host.elapsed_ms,
        )
    if _closed_at_once(tunnel):
        return replace(
            tunnel,
            outcome=ProbeOutcome.ERROR,
            detail=(
                f"127.0.0.1:{tunnel.port} accepts connections on the host, but the SSH tunnel "
                "to it was closed: sshd may forbid forwarding (AllowTcpForwarding)"
            ),
        )
    return tunnel


def findings_for(results: dict[str, ProbeResult]) -> list[Finding]:
    """What the vantages' outcomes, compared, say about the cause."""
    control, host = results.get("control"), results.get("host")
    findings: dict[str, Finding] = {}

    def add(cause: str, summary: str, fixable: bool, *seen: ProbeResult | None) -> None:
        evidence = tuple(f"{_vantage(results, r)}: {r.outcome} — {r.detail}" for r in seen if r)
        if cause not in findings:
            findings[cause] = Finding(cause, summary, evidence, fixable)

    for result in (control, host):
        if result is None:
            continue
        if result.outcome in _SERVER_SIDE:
            cause, fixable = _SERVER_SIDE[result.outcome]
            add(cause, f"Redis answers with {result.outcome}", fixable, result)
        elif result.outcome in _CLIENT_SIDE:
            add("client", f"the client's settings do not fit: {result.outcome}", False, result)
    host_reached = host is not None and host.outcome in _ANSWERED
    if host is not None and host.outcome is ProbeOutcome.REFUSED:
        if control is not None and control.outcome in _ANSWERED:
            add(
                "bind",
                "Redis answers from here but not on the host's 127.0.0.1: its bind "
                "excludes loopback",
                True,
                control,
                host,
            )
        else:
            add(
                "not-running",
                f"nothing listens on 127.0.0.1:{host.port} on the host: Redis is not running, "
                "uses another port, or its bind excludes loopback",
                True,
                control,
                host,
            )
    if control is not None and host_reached:
        if control.outcome is ProbeOutcome.REFUSED:
            add(
                "bind",
                "Redis answers on the host but refuses connections from here: its bind "
                "excludes this address, or a firewall rejects the port",
                True,
                control,
                host,
            )
        elif control.outcome is ProbeOutcome.NO_ROUTE:
            add(
                "firewall-firewalld",
                "Redis answers on the host but the port is rejected with no-route "
                "(firewalld's default reject)",
                True,
                control,
                host,
            )
        elif control.outcome is ProbeOutcome.TIMEOUT:
            add(
                "network",
                "Redis answers on the host but packets from here are dropped (a firewall "
                "DROP rule such as ufw deny, or the network)",
                True,
                control,
                host,
            )
    return list(findings.values())


def _vantage(results: dict[str, ProbeResult], result: ProbeResult) -> str:
    return next(name for name, r in results.items() if r is result)


@dataclass(frozen=True)
class Probed:
    """Each vantage's result (secrets already redacted), and whether to report findings."""

    results: Mapping[str, ProbeResult]
    findings: bool = True


def probed(
    results: Mapping[str, ProbeResult], secret: str | None = None, *, findings: bool = True
) -> Probed:
    """The step's value: `results` with `secret` redacted from every detail."""
    clean = {name: replace(r, detail=redact(r.detail, secret)) for name, r in results.items()}
    return Probed(clean, findings)


def probe_result(found: Probed) -> StepResult:
    """Facts, stdout, rc and (unless `findings` is false) findings from each vantage's result."""
    results = dict(found.results)
    lines = []
    facts: dict[str, Any] = {}
    for name, r in results.items():
        detail = r.detail
        facts[name] = {
            "outcome": str(r.outcome),
            "detail": detail,
            "address": r.address,
            "port": r.port,
            "elapsed_ms": round(r.elapsed_ms, 1),
        }
        lines.append(f"{name} {_endpoint(r.address, r.port)} {r.outcome}: {detail}")
    failed = [r for r in results.values() if not r.ok]
    facts["outcome"] = str(failed[0].outcome) if failed else str(ProbeOutcome.OK)
    facts["ok"] = not failed
    return StepResult(
        rc=1 if failed else 0,
        stdout="\n".join(lines) + "\n",
        msg=", ".join(f"{name} {r.outcome}" for name, r in results.items()),
        facts=facts,
        findings=tuple(findings_for(results)) if found.findings else (),
    )


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _probe_all(
    ctx: StepContext,
    args: TcpProbeArgs,
    control: Callable[[str, int], ProbeResult],
    host: Callable[[], ProbeResult],
) -> dict[str, ProbeResult]:
    address = args.address or ctx.host.address
    results: dict[str, ProbeResult] = {}
    for vantage in args.vantage:
        results[vantage] = control(address, args.port) if vantage == "control" else host()
    return results


class TcpProbe(StepType[TcpProbeArgs, Probed]):
    """Can a TCP connection be opened, from here and on the host itself? rc 1 if not."""

    name = "tcp_probe"
    Args = TcpProbeArgs
    may_start_early = True
    summary = "TCP connect to the Redis port from this machine and from the host itself."
    read_only = True

    def needs_host(self, args: TcpProbeArgs) -> bool:
        return args.from_host

    def diagnose(self, args: TcpProbeArgs, ctx: StepContext) -> Probed:
        return probed(
            _probe_all(
                ctx,
                args,
                lambda address, port: tcp_probe(address, port, args.timeout),
                lambda: host_connect(ctx, args.port, args.timeout),
            ),
            findings=args.findings,
        )

    def registered(self, found: Probed) -> StepResult:
        return probe_result(found)


class RedisProbe(StepType[RedisProbeArgs, Probed]):
    """PING (optionally write) like a client, from here and through the host's tunnel."""

    name = "redis_probe"
    Args = RedisProbeArgs
    may_start_early = True
    summary = "PING Redis (optionally a write) from this machine and from the host itself."
    read_only = True

    def needs_host(self, args: RedisProbeArgs) -> bool:
        return args.from_host

    def diagnose(self, args: RedisProbeArgs, ctx: StepContext) -> Probed:
        if args.password:
            ctx.masker.add(args.password)

        # redis-py costs ~120 ms to import: only runs that probe Redis pay for it.
        from redmedic.redis.probes.redis import redis_probe

        def probe(address: str, port: int) -> ProbeResult:
            return redis_probe(
                address,
                port,
                password=args.password,
                username=args.username,
                timeout=args.timeout,
                write=args.write,
                tls=args.tls,
            )

        def from_host() -> ProbeResult:
            with ctx.conn.forward(LOOPBACK, args.port) as (local, local_port):
                seen = probe(local, local_port)
            seen = _as_host_sees_it(seen, local, local_port, args.port)
            if seen.outcome in _ANSWERED or seen.outcome is ProbeOutcome.TLS:
                return seen
            return explain_tunnel_failure(seen, host_connect(ctx, args.port, args.timeout))

        results = _probe_all(ctx, args, probe, from_host)
        return probed(results, args.password, findings=args.findings)

    def registered(self, found: Probed) -> StepResult:
        return probe_result(found)


def _as_host_sees_it(result: ProbeResult, local: str, local_port: int, port: int) -> ProbeResult:
    """Report a tunnelled probe as 127.0.0.1:port, the address the host sees."""
    detail = result.detail.replace(f"{local}:{local_port}", f"{LOOPBACK}:{port}")
    return replace(result, address=LOOPBACK, port=port, detail=detail)
