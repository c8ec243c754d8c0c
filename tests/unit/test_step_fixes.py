"""Step-type behaviours fixed while proving the shipped playbooks on real hosts.

Each test names the real-host situation that showed the problem (tests/e2e/test_faults.py
runs the playbooks there) and feeds the step, as data, what such a host gives.
"""

from __future__ import annotations

from redmedic.steps.sysctl import (
    Sysctl,
    SysctlArgs,
    SysctlFound,
    persisted_elsewhere,
    read_state,
    sysctl_found,
)

OVERCOMMIT = SysctlArgs(name="vm.overcommit_memory", value=1)


def gathered(*assignments: str, runtime: str = "0", writable: str = "no") -> dict[str, str]:
    """The sections the sysctl step's one round trip gives on a Debian 12 container host
    (nspawn: /proc/sys read-only)."""
    return {"runtime": runtime, "writable": writable, "files": "\n".join(assignments)}


def found_without_own_file(*assignments: str) -> SysctlFound:
    """What diagnose finds where /etc/sysctl.d/60-redmedic.conf does not exist."""
    state = read_state(OVERCOMMIT, gathered(*assignments), "")
    return sysctl_found(OVERCOMMIT, state, None, become=False)


def test_a_value_an_admin_persisted_in_sysctl_conf_gets_no_second_file() -> None:
    # Given a healthy host whose admin set vm.overcommit_memory = 1 in /etc/sysctl.conf
    # (read last at boot), when the step plans, then it writes nothing and says where the
    # value comes from; before the fix it planned /etc/sysctl.d/60-redmedic.conf anyway.
    found = found_without_own_file("/etc/sysctl.conf:69:vm.overcommit_memory = 1")

    assert Sysctl().plan(OVERCOMMIT, found) == []
    [finding] = found.findings  # the runtime value still cannot change in a container
    assert "/etc/sysctl.conf:69 sets 1, which takes effect at the next boot" in finding.summary


def test_another_file_that_sets_a_different_value_last_still_gets_ours_written() -> None:
    found = found_without_own_file(
        "/etc/sysctl.d/10-tuning.conf:1:vm.overcommit_memory = 1",
        "/etc/sysctl.conf:69:vm.overcommit_memory = 0",
    )

    [write] = Sysctl().plan(OVERCOMMIT, found)
    assert write.describe() == "create /etc/sysctl.d/60-redmedic.conf (mode 0644)"
    assert any("/etc/sysctl.conf:69 sets" in f.summary for f in found.findings)


def test_a_file_hidden_by_the_same_name_in_etc_does_not_count() -> None:
    state = read_state(
        OVERCOMMIT,
        gathered(
            "/etc/sysctl.d/50-redis.conf:1:vm.overcommit_memory = 0",
            "/usr/lib/sysctl.d/50-redis.conf:1:vm.overcommit_memory = 1",
        ),
        "",
    )
    assert persisted_elsewhere(OVERCOMMIT, state) is None
    own = read_state(OVERCOMMIT, gathered(), "vm.overcommit_memory = 0\n")
    assert persisted_elsewhere(OVERCOMMIT, own) is None  # our own file decides: edit it
