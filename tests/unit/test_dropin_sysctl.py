"""`systemd_dropin` and `sysctl`, fed with output captured on real Debian 12 hosts.

Each constant is what the step's own one-round-trip script printed on a systemd-nspawn test
host (tests/support/nspawn.py) in the state named above it. Given a host like that, when
the step diagnoses and plans, then it reports these facts and plans exactly these changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pytest

from redmedic.connection.base import Connection, RemoteFile
from redmedic.errors import StepError
from redmedic.model.inventory import Host
from redmedic.model.plan import Change, CommandChange, FileChange, StepResult
from redmedic.model.templating import Templar
from redmedic.safety.secrets import Masker
from redmedic.steps.base import StepArgs, StepContext, StepType
from redmedic.steps.sysctl import Sysctl, SysctlArgs, effective, parse_grep, set_key
from redmedic.steps.systemd_dropin import SystemdDropin, SystemdDropinArgs, merge_dropin

A = TypeVar("A", bound=StepArgs)

# --- captured -----------------------------------------------------------------------------
# redis-server after a run that wrote LimitNOFILE=40 (systemctl show -p LimitNOFILE
# -p LimitNOFILESoft -p Nice, the drop-in directory, the drop-in itself)
DROPIN_PRESENT = """\
LimitNOFILE=40
LimitNOFILESoft=40
Nice=0
LoadState=loaded
NeedDaemonReload=no
@@dir

@@redmedic-read-file@@
redmedic:file
644 root root
# Written by redmedic: change the playbook rather than this file.
[Service]
LimitNOFILE=40
"""


# a fresh host: Debian's unit (LimitNOFILE=65535), no drop-in directory
DROPIN_ABSENT = """\
LimitNOFILE=65535
LimitNOFILESoft=65535
Nice=0
LoadState=loaded
NeedDaemonReload=no
@@nodir

@@redmedic-read-file@@
redmedic:absent
"""


# vm.overcommit_memory inside nspawn (/proc/sys read-only) after a run wrote
# 60-redmedic.conf, with 10-early.conf, /usr/lib/sysctl.d/50-vendor.conf and a line in
# /etc/sysctl.conf also setting it
OVERCOMMIT_OVERRIDDEN = """\
@@runtime
0
@@writable
no
@@files
/etc/sysctl.d/10-early.conf:2: -vm.overcommit_memory = 1
/etc/sysctl.d/60-redmedic.conf:2:vm.overcommit_memory = 1
/usr/lib/sysctl.d/50-vendor.conf:1:vm/overcommit_memory = 2
/etc/sysctl.conf:70:vm.overcommit_memory=0

@@redmedic-read-file@@
redmedic:file
644 root root
# Kernel settings for Redis, written by redmedic.
vm.overcommit_memory = 1
net.core.somaxconn = 1024
"""


# vm.overcommit_memory on a fresh nspawn host
OVERCOMMIT_FRESH = """\
@@runtime
0
@@writable
no
@@files

@@redmedic-read-file@@
redmedic:absent
"""


# net.core.somaxconn (per network namespace: writable in nspawn) after a run set 1024
SOMAXCONN_SET = """\
@@runtime
1024
@@writable
yes
@@files
/etc/sysctl.d/10-early.conf:1:net.core.somaxconn=512
/etc/sysctl.d/60-redmedic.conf:3:net.core.somaxconn = 1024

@@redmedic-read-file@@
redmedic:file
644 root root
# Kernel settings for Redis, written by redmedic.
vm.overcommit_memory = 1
net.core.somaxconn = 1024
"""


# net.core.somaxconn on a fresh host
SOMAXCONN_FRESH = """\
@@runtime
4096
@@writable
yes
@@files

@@redmedic-read-file@@
redmedic:absent
"""


# systemctl show -p LoadState -p NeedDaemonReload -p LimitNOFILE -- nosuch.service (rc 0!)
NOT_FOUND = """\
LimitNOFILE=20000
LoadState=not-found
NeedDaemonReload=no
@@nodir

@@redmedic-read-file@@
redmedic:absent
"""


# --- a host that answers every command with one captured output ---------------------------


class Captured(Connection):
    """Answers each command with `output`; records the commands (round trips)."""

    def __init__(self, output: str) -> None:
        super().__init__(Host(name="db1", address="10.0.0.5"))
        self.output = output
        self.commands: list[str] = []

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        self.commands.append(command)
        return 0, self.output.encode(), b""

    def close(self) -> None:
        pass


def context(conn: Connection, planned: Mapping[str, RemoteFile] | None = None) -> StepContext:
    return StepContext(
        host=conn.host,
        conn=conn,
        vars={},
        phase="fix",
        step_name="step",
        where="pb.yaml:3",
        become=False,
        check=True,
        templar=Templar(),
        masker=Masker(),
        planned_files=dict(planned or {}),
    )


def run_step(
    step: StepType[A, Any],
    args: A,
    output: str,
    planned: Mapping[str, RemoteFile] | None = None,
) -> tuple[StepResult, list[Change], Captured]:
    """Diagnose then plan, as the executor does in the fix phase."""
    conn = Captured(output)
    ctx = context(conn, planned)
    found = step.diagnose(args, ctx)
    return step.registered(found), step.plan(args, found), conn


def commands(changes: list[Change]) -> list[tuple[str, str | None]]:
    return [(c.command, c.undo_command) for c in changes if isinstance(c, CommandChange)]


def dropin(**settings: object) -> SystemdDropinArgs:
    return SystemdDropinArgs(unit="redis-server", settings=settings)  # type: ignore[arg-type]


# --- systemd_dropin -------------------------------------------------------------------------


def test_a_drop_in_for_a_unit_without_one_creates_dir_file_and_reloads() -> None:
    found, changes, conn = run_step(SystemdDropin(), dropin(LimitNOFILE=40), DROPIN_ABSENT)
    assert len(conn.commands) == 1  # diagnose: one round trip; plan: none
    assert found.facts["current"] == {"LimitNOFILE": "65535"}
    assert (found.facts["exists"], found.facts["dir_exists"]) == (False, False)
    path = "/etc/systemd/system/redis-server.service.d/redmedic.conf"
    mkdir, write, reload = changes
    assert isinstance(write, FileChange) and write.path == path and write.before is None
    assert write.after == (
        b"# Written by redmedic: change the playbook rather than this file.\n"
        b"[Service]\nLimitNOFILE=40\n"
    )
    # Rollback runs undos in reverse: the reload that forgets the drop-in must come after
    # the file is removed, so it is the undo of the change planned *before* the file.
    assert commands([mkdir, reload]) == [
        (
            "mkdir -p -- /etc/systemd/system/redis-server.service.d",
            "rmdir -- /etc/systemd/system/redis-server.service.d 2>/dev/null; "
            "systemctl daemon-reload",
        ),
        ("systemctl daemon-reload", None),
    ]


def test_a_second_run_plans_nothing() -> None:
    found, changes, _ = run_step(SystemdDropin(), dropin(LimitNOFILE=40), DROPIN_PRESENT)
    assert changes == [] and found.facts["up_to_date"] is True
    assert found.facts["current"] == {"LimitNOFILE": "40"}


def test_changing_the_value_edits_in_place_and_keeps_the_existing_directory() -> None:
    _, changes, _ = run_step(SystemdDropin(), dropin(LimitNOFILE=50), DROPIN_PRESENT)
    mkdir, write, _reload = changes
    assert commands([mkdir])[0][1] == "systemctl daemon-reload"  # no rmdir: it existed
    assert isinstance(write, FileChange) and write.before is not None
    assert write.after.endswith(b"[Service]\nLimitNOFILE=50\n")


def test_a_drop_in_systemd_has_not_loaded_yet_gets_just_the_reload() -> None:
    pending = DROPIN_PRESENT.replace("NeedDaemonReload=no", "NeedDaemonReload=yes")
    _, changes, _ = run_step(SystemdDropin(), dropin(LimitNOFILE=40), pending)
    assert commands(changes) == [("systemctl daemon-reload", None)]


def test_a_unit_that_does_not_exist_is_a_clear_error() -> None:
    with pytest.raises(StepError, match=r"unit nosuch.service does not exist"):
        run_step(SystemdDropin(), SystemdDropinArgs(unit="nosuch", settings={"Nice": 1}), NOT_FOUND)
    with pytest.raises(StepError, match="no systemd"):
        run_step(
            SystemdDropin(),
            dropin(Nice=1),
            "@@no-systemd\n\n@@redmedic-read-file@@\nredmedic:absent\n",
        )


def test_merging_keeps_other_lines_and_sections() -> None:
    text = "[Unit]\nDescription=x\n\n[Service]\nLimitNOFILE=10\nNice=5\n\n[Install]\nWantedBy=a\n"
    merged = merge_dropin(text, "Service", {"LimitNOFILE": 20, "Restart": "always"})
    assert merged == (
        "[Unit]\nDescription=x\n\n[Service]\nLimitNOFILE=20\nNice=5\nRestart=always\n\n"
        "[Install]\nWantedBy=a\n"
    )
    assert merge_dropin("[Unit]\nAfter=b\n", "Service", {"NoNewPrivileges": True}) == (
        "[Unit]\nAfter=b\n\n[Service]\nNoNewPrivileges=yes\n"
    )


def test_drop_in_arguments_are_checked() -> None:
    assert dropin(Nice=1).path == "/etc/systemd/system/redis-server.service.d/redmedic.conf"
    assert SystemdDropinArgs(unit="redis@a.service", settings={"Nice": 1}).unit_name == (
        "redis@a.service"
    )
    with pytest.raises(ValueError, match="not a unit directive"):
        dropin(**{"Limit NOFILE": 1})
    with pytest.raises(ValueError, match="one line"):
        dropin(Environment="A=1\nB=2")


# --- sysctl ---------------------------------------------------------------------------------


def sysctl(name: str = "vm.overcommit_memory", value: str | int = 1, **more: object) -> SysctlArgs:
    return SysctlArgs(name=name, value=value, **more)  # type: ignore[arg-type]


def test_in_a_container_the_file_is_written_and_the_runtime_refusal_is_reported() -> None:
    found, changes, conn = run_step(Sysctl(), sysctl(), OVERCOMMIT_FRESH)
    assert len(conn.commands) == 1
    [write] = changes  # no `sysctl -w`: /proc/sys is read-only here
    assert isinstance(write, FileChange) and write.path == "/etc/sysctl.d/60-redmedic.conf"
    assert (
        write.after
        == b"# Kernel settings for Redis, written by redmedic.\nvm.overcommit_memory = 1\n"
    )
    [finding] = found.findings
    assert finding.cause == "overcommit" and not finding.fixable
    assert "could not be changed here" in finding.summary
    assert "read-only" in finding.summary and "next boot" in finding.summary
    assert found.facts["runtime"] == "0" and found.facts["writable"] is False


def test_a_later_file_that_would_win_at_boot_is_reported() -> None:
    found, changes, _ = run_step(Sysctl(), sysctl(), OVERCOMMIT_OVERRIDDEN)
    assert changes == []  # the file is right and the runtime cannot be written: nothing
    assert found.facts["persisted"] == "1"
    assert found.facts["overridden_by"] == ["/etc/sysctl.conf:70: 0"]
    summaries = [f.summary for f in found.findings]
    assert any(s.startswith("/etc/sysctl.conf:70 sets vm.overcommit_memory = 0") for s in summaries)


def test_boot_order_follows_file_names_then_sysctl_conf_last() -> None:
    grep = (
        "/etc/sysctl.d/10-early.conf:2: -vm.overcommit_memory = 1\n"
        "/usr/lib/sysctl.d/50-vendor.conf:1:vm/overcommit_memory = 2\n"
        "/usr/lib/sysctl.d/10-early.conf:1:vm.overcommit_memory = 5\n"  # hidden by /etc's
        "/etc/sysctl.conf:70:vm.overcommit_memory=0\n"
    )
    order = effective(parse_grep(grep, "vm.overcommit_memory"))
    assert [(a.path, a.value) for a in order] == [
        ("/etc/sysctl.d/10-early.conf", "1"),
        ("/usr/lib/sysctl.d/50-vendor.conf", "2"),
        ("/etc/sysctl.conf", "0"),
    ]


def test_where_proc_sys_is_writable_the_runtime_changes_too_with_an_undo() -> None:
    found, changes, _ = run_step(Sysctl(), sysctl("net.core.somaxconn", 8192), SOMAXCONN_FRESH)
    assert found.findings == ()
    write, command = changes
    assert isinstance(write, FileChange)
    assert commands([command]) == [
        ("sysctl -q -w net.core.somaxconn=8192", "sysctl -q -w net.core.somaxconn=4096")
    ]
    assert run_step(Sysctl(), sysctl("net.core.somaxconn", 1024), SOMAXCONN_SET)[1] == []


def test_runtime_false_only_persists() -> None:
    found, changes, _ = run_step(
        Sysctl(), sysctl("net.core.somaxconn", 8192, runtime=False), SOMAXCONN_FRESH
    )
    assert [c.kind for c in changes] == ["file"] and found.findings == ()


def test_two_sysctl_steps_compose_in_one_file() -> None:
    first = RemoteFile(
        "/etc/sysctl.d/60-redmedic.conf",
        b"# Kernel settings for Redis, written by redmedic.\nvm.overcommit_memory = 1\n",
        0o644,
        "root",
        "root",
    )
    output = SOMAXCONN_FRESH.split("\n@@redmedic-read-file@@")[0]  # the read is skipped
    _, changes, conn = run_step(
        Sysctl(), sysctl("net.core.somaxconn", 8192), output, planned={first.path: first}
    )
    assert "redmedic:" not in conn.commands[0]  # no read of a file already planned
    write = changes[0]
    assert isinstance(write, FileChange) and write.before == first
    assert write.after.endswith(b"vm.overcommit_memory = 1\nnet.core.somaxconn = 8192\n")


def test_setting_a_key_keeps_other_lines_and_drops_stale_duplicates() -> None:
    text = "# tuning\nvm/overcommit_memory=0\nnet.core.somaxconn = 511\nvm.overcommit_memory = 2\n"
    assert set_key(text, "vm.overcommit_memory", "1") == (
        "# tuning\nnet.core.somaxconn = 511\nvm.overcommit_memory = 1\n"
    )
    assert set_key("a = 1", "b.c", "2") == "a = 1\nb.c = 2\n"


def test_an_unknown_key_is_an_error_and_multi_word_values_compare_by_words() -> None:
    with pytest.raises(StepError, match="no such kernel setting"):
        run_step(Sysctl(), sysctl("vm.nope"), "@@runtime\n@@missing\n@@writable\nno\n@@files\n"
                 "\n@@redmedic-read-file@@\nredmedic:absent\n")  # fmt: skip
    tcp = "@@runtime\n4096\t131072\t6291456\n@@writable\nyes\n@@files\n"
    found, changes, _ = run_step(
        Sysctl(),
        sysctl("net.ipv4.tcp_rmem", "4096 131072 6291456"),
        tcp + "\n@@redmedic-read-file@@\nredmedic:file\n644 root root\n"
        "net.ipv4.tcp_rmem = 4096 131072 6291456\n",
    )
    assert changes == [] and found.facts["runtime"] == "4096 131072 6291456"
