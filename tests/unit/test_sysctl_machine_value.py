"""`sysctl` for vm.overcommit_memory inside a container, whatever the machine's value is.

Test hosts share the control machine's kernel and cannot write /proc/sys, so the e2e test
(tests/e2e/test_dropin_sysctl_steps.py) only ever sees the one value this machine has.
Here both values are fed to the step as data, as a fresh nspawn host answers its gather
script (facts in, changes out):

Given a container whose running value already is 1, when the playbook wants 1, then the
file is written for the next boot and nothing is said about the runtime. Given 0, the
same file is written and a finding says plainly that the runtime value could not change.
"""

from __future__ import annotations

import pytest

from redmedic.model.plan import FileChange, Finding
from redmedic.steps.sysctl import Sysctl, SysctlArgs, read_state, sysctl_found

CONF = "/etc/sysctl.d/60-redmedic.conf"


def overcommit(runtime: str) -> tuple[tuple[Finding, ...], list[FileChange]]:
    """The findings and changes for a fresh nspawn host (its gather sections, as captured
    there: /proc/sys read-only, no sysctl.d file) whose running value is `runtime`."""
    step, args = Sysctl(), SysctlArgs(name="vm.overcommit_memory", value=1)
    sections = {"runtime": runtime, "writable": "no", "files": ""}
    found = sysctl_found(args, read_state(args, sections, ""), None, become=True)
    changes = step.plan(args, found)
    assert all(isinstance(c, FileChange) for c in changes)  # never `sysctl -w` here
    return found.findings, [c for c in changes if isinstance(c, FileChange)]


@pytest.mark.parametrize("runtime", ["0", "1"])
def test_the_file_for_the_next_boot_is_written_on_either_value(runtime: str) -> None:
    _, [write] = overcommit(runtime)
    assert write.path == CONF
    assert write.after == (
        b"# Kernel settings for Redis, written by redmedic.\nvm.overcommit_memory = 1\n"
    )


def test_with_1_already_running_there_is_nothing_to_fix_at_runtime() -> None:
    findings, _ = overcommit("1")
    assert findings == ()


def test_with_0_running_the_refused_runtime_write_is_said_plainly() -> None:
    findings, _ = overcommit("0")
    [finding] = findings
    assert finding.cause == "overcommit" and not finding.fixable
    assert "could not be changed here" in finding.summary
    assert "read-only" in finding.summary and "next boot" in finding.summary
