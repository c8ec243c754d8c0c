"""`sysctl` for vm.overcommit_memory inside a container, whatever the machine's value is.

Test hosts share the control machine's kernel and cannot write /proc/sys, so the e2e test
(tests/e2e/test_dropin_sysctl_steps.py) only ever sees the one value this machine has.
Here both values are fed to the step, as a fresh nspawn host answers its gather script:

Given a container whose running value already is 1, when the playbook wants 1, then the
file is written for the next boot and nothing is said about the runtime. Given 0, the
same file is written and a finding says plainly that the runtime value could not change.
"""

from __future__ import annotations

import pytest

from redmedic.model.plan import FileChange, StepResult
from redmedic.steps.sysctl import Sysctl, SysctlArgs
from redmedic.testing import ScriptedConnection, step_context

CONF = "/etc/sysctl.d/60-redmedic.conf"


def fresh_container(runtime: str) -> str:
    """What the step's one round trip answers on a fresh nspawn host (captured there)."""
    return (
        f"@@runtime\n{runtime}\n@@writable\nno\n@@files\n\n"
        "@@redmedic-read-file@@\nredmedic:absent\n"
    )


def overcommit(runtime: str) -> tuple[StepResult, list[FileChange]]:
    step, args = Sysctl(), SysctlArgs(name="vm.overcommit_memory", value=1)
    conn = ScriptedConnection({"@@runtime": (0, fresh_container(runtime), "")})
    ctx = step_context(conn, phase="fix")
    found = step.diagnose(args, ctx)
    changes = step.plan(args, ctx, found)
    assert all(isinstance(c, FileChange) for c in changes)  # never `sysctl -w` here
    return found, [c for c in changes if isinstance(c, FileChange)]


@pytest.mark.parametrize("runtime", ["0", "1"])
def test_the_file_for_the_next_boot_is_written_on_either_value(runtime: str) -> None:
    _, [write] = overcommit(runtime)
    assert write.path == CONF
    assert write.after == (
        b"# Kernel settings for Redis, written by redmedic.\nvm.overcommit_memory = 1\n"
    )


def test_with_1_already_running_there_is_nothing_to_fix_at_runtime() -> None:
    found, _ = overcommit("1")
    assert found.findings == ()


def test_with_0_running_the_refused_runtime_write_is_said_plainly() -> None:
    found, _ = overcommit("0")
    [finding] = found.findings
    assert finding.cause == "overcommit" and not finding.fixable
    assert "could not be changed here" in finding.summary
    assert "read-only" in finding.summary and "next boot" in finding.summary
