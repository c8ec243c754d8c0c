"""`redis_restart`: a restart handler that says what the restart costs and refuses to lose data.

A restart drops every client, reloads the dataset and, with persistence off, loses it. So
diagnose asks the running server (`redis.restart_script.ask_script`: INFO and `CONFIG GET
save` in one round trip) and plan either refuses — keys present, no save points, no AOF,
and `allow_data_loss` not set (`RestartCost.refusal`, one line naming
`redis_allow_data_loss`) — or plans ONE command whose first line is the cost
(`RestartCost.summary`): BGSAVE first when RDB is the only persistence, then `systemctl
reset-failed` (systemd refuses a sixth start within 10 s) and `systemctl restart` (or the
restart command of a host without systemd), then wait for `loading:0` and check the keys
came back. A primary with connected replicas asks its own question at the gate (`question`;
--yes approves it like every gate).

Which server is asked: before the restart, the running one on its own TCP listener (else
where the configuration says); after it, the one the configuration describes *as this run
leaves it* — `load_config` sees the earlier fix steps' planned edits (`ctx.planned_files`),
so a restart that moves Redis to another port or gives it a password is checked there, with
that password. A Redis that is not running has nothing in memory to lose: it is started,
unguarded. One that runs but does not answer (e.g. every client slot taken) is restarted
only when its redis.conf persists the data (Redis saves on shutdown), and without the key
check; else it is refused like persistence off.

The executor plans the handlers a run would notify before it changes anything, so a refusal
stops the host with nothing changed (`run.executor.HostRun.preflight`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from redmedic.connection.scripts import new_marker, split_sections
from redmedic.errors import StepError
from redmedic.model.plan import Change, CommandChange, StepResult
from redmedic.redis.configset import live_target
from redmedic.redis.redisconf import Effective
from redmedic.redis.restart_guard import ALLOW_DATA_LOSS_VAR, RestartCost
from redmedic.redis.restart_script import (
    Running,
    Server,
    ask_script,
    ask_stdin,
    parse_ask,
    restart_script,
)
from redmedic.steps.base import PlanError, StepArgs, StepContext, StepType
from redmedic.steps.redis_config import load_config

# Redis's own save points when redis.conf sets none (server.c, initServerConfig).
_DEFAULT_SAVE = "3600 1 300 100 60 10000"


class RedisRestartArgs(StepArgs):
    unit: str = Field(
        default="redis-server",
        description="systemd unit of Redis (reset-failed, then restarted); without systemd "
        "its name is the init script's.",
    )
    restart_command: str | None = Field(
        default=None,
        description="How to restart Redis on a host without systemd; default: "
        "`service <unit> restart`.",
    )
    config: str | None = Field(
        default=None,
        description="redis.conf as the restarted Redis will read it (this run's planned edits "
        "included): where and with which password it is asked after the restart. Omitted: "
        "discovered as `redis_config` does.",
    )
    password: str | None = Field(
        default=None,
        description="A password also tried on the running Redis, after redis.conf's "
        "requirepass (e.g. one only set live); sent on stdin, never in argv.",
    )
    allow_data_loss: bool = Field(
        default=False,
        description=f"Restart even when keys exist and nothing persists them (the playbooks' "
        f"`{ALLOW_DATA_LOSS_VAR}`): the keys are lost.",
    )
    wait: int = Field(
        default=240,
        ge=10,
        le=3600,
        description="Seconds the restart may spend waiting for the BGSAVE and for the "
        "restarted Redis to load its data (keep it below --command-timeout).",
    )


@dataclass(frozen=True)
class RestartFound:
    """The running server as asked, and the one the configuration describes after the run."""

    unit: str
    running: Running = field(repr=False)  # holds a password
    after: Server | None = field(repr=False)  # None: the config listens on TLS only
    cost: RestartCost | None  # None: not running, or it did not answer
    persisted_by_config: bool  # redis.conf has save points or AOF (for a silent server)
    replicas: tuple[str, ...]  # "ip:port" of each connected replica
    become: bool

    @property
    def outline(self) -> str:
        """What the restart costs, in one line (the plan's headline, the step's msg)."""
        if self.running.pid is None:
            return "Redis is not running: it is started (nothing in memory to lose)"
        if self.cost is None:
            kept = "redis.conf persists the data" if self.persisted_by_config else "persistence OFF"
            return f"cost unknown, Redis does not answer ({self.running.error}); {kept}"
        return self.cost.summary()


class RedisRestart(StepType[RedisRestartArgs, RestartFound]):
    """Restart Redis only when it cannot lose data, saying what it costs; check it came back."""

    name = "redis_restart"
    Args = RedisRestartArgs
    summary = "Restart Redis guarded: its cost in the plan, BGSAVE first, refused if data is lost."
    read_only = False

    def diagnose(self, args: RedisRestartArgs, ctx: StepContext) -> RestartFound:
        in_force = load_config(ctx, args.config, args.unit).config.effective()
        target = live_target(in_force)
        planned_password = _value(in_force, "requirepass") or ""
        passwords = list(dict.fromkeys([planned_password, args.password or "", ""]))
        for password in passwords:
            if password:
                ctx.masker.add(password)
        after = Server(tuple(target), planned_password) if target else None
        marker = new_marker()
        result = ctx.conn.run(
            ask_script(
                marker, args.unit, after or Server(()), passwords, _value(in_force, "pidfile") or ""
            ),
            become=ctx.become,
            stdin=ask_stdin(passwords),
        )
        sections = split_sections(result.stdout, marker)
        if "init" not in sections:
            raise StepError(
                ctx.host.name,
                f"could not ask Redis what a restart costs (exit {result.rc}): {result.tail()}",
                step=ctx.step_name,
            )
        running = parse_ask(sections, passwords)
        file_save = _value(in_force, "save")
        save = running.save if running.save is not None else file_save
        cost = None
        if running.server is not None:
            cost = RestartCost.from_info(running.info, _DEFAULT_SAVE if save is None else save)
        aof = _value(in_force, "appendonly") == "yes"
        persisted = file_save is None or bool(file_save) or aof
        return RestartFound(
            unit=args.unit,
            running=running,
            after=after,
            cost=cost,
            persisted_by_config=persisted,
            replicas=_replicas(running.info),
            become=ctx.become,
        )

    def plan(self, args: RedisRestartArgs, found: RestartFound) -> list[Change]:
        if found.after is None:
            raise PlanError(
                "the restarted Redis would listen on TLS only (port 0): redmedic cannot check "
                "that it came back — restart it by hand"
            )
        running, cost = found.running, found.cost
        silent = running.pid is not None and cost is None
        if silent and not found.persisted_by_config and not args.allow_data_loss:
            raise PlanError(
                f"cannot read what a restart would cost ({running.error}) and redis.conf "
                "persists nothing (no `save` points, no AOF): a restart may lose every key "
                f"— let redmedic reach Redis, or set {ALLOW_DATA_LOSS_VAR}=true to accept "
                "the loss"
            )
        if cost is not None:
            refusal = cost.refusal(args.allow_data_loss)
            if refusal:
                raise PlanError(refusal)
        before = running.server if cost is not None else None
        headline = f"redmedic: restart {found.unit} — {found.outline}"
        script = restart_script(
            headline,
            _restart_command(args, running.init),
            before=before,
            after=found.after,
            bgsave=cost is not None and cost.needs_bgsave,
            count=cost is not None and cost.persistent,
            wait_s=args.wait,
        )
        return [CommandChange(script, become=found.become)]

    def question(self, args: RedisRestartArgs, found: RestartFound) -> str | None:
        """A primary with connected replicas is gated on its own: they all resync."""
        if found.cost is None or not found.cost.primary_with_replicas:
            return None
        names = ", ".join(found.replicas) or f"{found.cost.replicas}"
        return (
            f"Restart a primary with {found.cost.replicas} connected replicas ({names})? "
            "They lose their link and resync from it once it is back."
        )

    def registered(self, found: RestartFound) -> StepResult:
        cost = found.cost
        facts: dict[str, Any] = {
            "init": found.running.init,
            "running": found.running.pid is not None,
            "answered": found.running.server is not None,
            "keys": cost.keys if cost else None,
            "persistent": cost.persistent if cost else found.persisted_by_config,
            "primary_with_replicas": bool(cost and cost.primary_with_replicas),
        }
        return StepResult(msg=found.outline, facts=facts)


def _value(in_force: Mapping[str, Effective], name: str) -> str | None:
    return in_force[name].value if name in in_force else None


def _restart_command(args: RedisRestartArgs, init: str) -> str:
    """systemd: clear a failed state first (a sixth start within 10 s is refused)."""
    if init == "systemd":
        unit = shlex.quote(args.unit)
        return f"systemctl reset-failed {unit} 2>/dev/null; systemctl restart {unit}"
    if args.restart_command:
        return args.restart_command
    return f"service {shlex.quote(args.unit.removesuffix('.service'))} restart"


def _replicas(info: Mapping[str, Any]) -> tuple[str, ...]:
    """'ip:port' of each replica INFO replication lists (slave0:ip=...,port=...,...)."""
    replication = info.get("replication") or {}
    names = []
    for key, value in replication.items():
        if key.startswith("slave") and key[5:].isdigit():
            fields = dict(p.split("=", 1) for p in str(value).split(",") if "=" in p)
            names.append(f"{fields.get('ip', '?')}:{fields.get('port', '?')}")
    return tuple(names)
