"""`systemd_dropin`: set unit settings (e.g. LimitNOFILE) in a drop-in file, then reload.

The drop-in itself — where it lives, how settings merge into it, the mkdir + write +
daemon-reload and their undo order — is `redmedic.systemd.dropin`, shared with
`redis_open_files`. Restarting the service is the playbook's handler (`notify`).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from redmedic.connection.scripts import new_marker, split_sections
from redmedic.errors import StepError
from redmedic.model.plan import Change, StepResult
from redmedic.steps.base import StepArgs, StepContext, StepType
from redmedic.systemd.dropin import (
    Dropin,
    DropinState,
    Value,
    check_settings,
    check_unit,
    check_word,
    dropin_state,
    plan_dropin,
    show_script,
)


class SystemdDropinArgs(StepArgs):
    unit: str = Field(description="Unit name, e.g. redis-server (`.service` is optional).")
    name: str = Field(
        default="redmedic", description="Drop-in file name without `.conf` (default redmedic)."
    )
    section: str = Field(default="Service", description="Unit file section, e.g. Service.")
    settings: dict[str, Value] = Field(
        description="Directives to set in that section, e.g. {LimitNOFILE: 65535}."
    )

    _unit = field_validator("unit")(check_unit)
    _word = field_validator("name", "section")(check_word)

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: dict[str, Value]) -> dict[str, Value]:
        check_settings(value)
        return value

    @property
    def dropin(self) -> Dropin:
        return Dropin(self.unit, self.name, self.section, self.settings)

    @property
    def unit_name(self) -> str:
        return self.dropin.unit_name

    @property
    def path(self) -> str:
        return self.dropin.path


class SystemdDropin(StepType[SystemdDropinArgs, DropinState]):
    """Diagnose reads the effective values (`systemctl show`) and the drop-in in one round
    trip; plan writes the drop-in and reloads systemd only when its content differs (or
    systemd still has to load it). Restarting the service is the playbook's `notify`.

    Facts: `unit`, `path`, `exists`, `content`, `up_to_date`, `current` (each setting's
    effective value now), `need_daemon_reload`, `dir_exists`."""

    name = "systemd_dropin"
    Args = SystemdDropinArgs
    summary = "Set directives (e.g. LimitNOFILE) in a systemd drop-in and daemon-reload."
    read_only = False

    def diagnose(self, args: SystemdDropinArgs, ctx: StepContext) -> DropinState:
        marker = new_marker()
        output, current = ctx.run_reading(show_script(args.dropin, marker), args.path)
        try:
            return dropin_state(args.dropin, split_sections(output, marker), current, ctx.become)
        except ValueError as exc:
            raise StepError(ctx.host.name, str(exc), step=ctx.step_name) from None

    def registered(self, found: DropinState) -> StepResult:
        return StepResult(
            msg=f"{found.path}: " + ("up to date" if found.up_to_date else "needs an update"),
            facts=found.facts(),
        )

    def plan(self, args: SystemdDropinArgs, found: DropinState) -> list[Change]:
        return plan_dropin(args.dropin, found)
