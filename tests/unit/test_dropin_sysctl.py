"""`systemd_dropin` and `sysctl` as data: captured host output in, found value, changes out.

Each constant is what the step's own one-round-trip script printed on a systemd-nspawn test
host (tests/support/nspawn.py) in the state named above it, section by section, and the
file the step reads beside it. Given a host like that, when the step's pure parts read the
sections and plan, then it reports these facts and plans exactly these changes. The round
trip itself (`StepContext.run_reading`) is tested at the end over a real local shell.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from redmedic.connection.base import ConnectOptions, RemoteFile
from redmedic.connection.local import LocalConnection
from redmedic.model.inventory import Host
from redmedic.model.plan import Change, CommandChange, FileChange, StepResult
from redmedic.steps.sysctl import (
    Sysctl,
    SysctlArgs,
    effective,
    parse_grep,
    read_state,
    set_key,
    sysctl_found,
)
from redmedic.steps.systemd_dropin import SystemdDropin, SystemdDropinArgs
from redmedic.systemd.dropin import dropin_state, merge_dropin
from redmedic.testing import ScriptedConnection, step_context

DROPIN = "/etc/systemd/system/redis-server.service.d/redmedic.conf"
SYSCTL_FILE = "/etc/sysctl.d/60-redmedic.conf"


def remote(path: str, text: str) -> RemoteFile:
    return RemoteFile(path, text.encode(), 0o644, "root", "root")


# --- captured -----------------------------------------------------------------------------
# redis-server after a run that wrote LimitNOFILE=40 (systemctl show -p LimitNOFILE
# -p LimitNOFILESoft -p Nice, the drop-in directory, the drop-in itself)
DROPIN_PRESENT = {
    "show": "LimitNOFILE=40\nLimitNOFILESoft=40\nNice=0\nLoadState=loaded\nNeedDaemonReload=no",
    "dir": "yes",
}
DROPIN_PRESENT_FILE = remote(
    DROPIN,
    "# Written by redmedic: change the playbook rather than this file.\n"
    "[Service]\nLimitNOFILE=40\n",
)

# a fresh host: Debian's unit (LimitNOFILE=65535), no drop-in directory
DROPIN_ABSENT = {
    "show": "LimitNOFILE=65535\nLimitNOFILESoft=65535\nNice=0\nLoadState=loaded\n"
    "NeedDaemonReload=no",
    "dir": "no",
}

# vm.overcommit_memory inside nspawn (/proc/sys read-only) after a run wrote
# 60-redmedic.conf, with 10-early.conf, /usr/lib/sysctl.d/50-vendor.conf and a line in
# /etc/sysctl.conf also setting it
OVERCOMMIT_OVERRIDDEN = {
    "runtime": "0",
    "writable": "no",
    "files": "/etc/sysctl.d/10-early.conf:2: -vm.overcommit_memory = 1\n"
    "/etc/sysctl.d/60-redmedic.conf:2:vm.overcommit_memory = 1\n"
    "/usr/lib/sysctl.d/50-vendor.conf:1:vm/overcommit_memory = 2\n"
    "/etc/sysctl.conf:70:vm.overcommit_memory=0",
}
WRITTEN = remote(
    SYSCTL_FILE,
    "# Kernel settings for Redis, written by redmedic.\n"
    "vm.overcommit_memory = 1\nnet.core.somaxconn = 1024\n",
)

# vm.overcommit_memory on a fresh nspawn host
OVERCOMMIT_FRESH = {"runtime": "0", "writable": "no", "files": ""}

# net.core.somaxconn (per network namespace: writable in nspawn) after a run set 1024
SOMAXCONN_SET = {
    "runtime": "1024",
    "writable": "yes",
    "files": "/etc/sysctl.d/10-early.conf:1:net.core.somaxconn=512\n"
    "/etc/sysctl.d/60-redmedic.conf:3:net.core.somaxconn = 1024",
}

# net.core.somaxconn on a fresh host
SOMAXCONN_FRESH = {"runtime": "4096", "writable": "yes", "files": ""}

# systemctl show -p LoadState -p NeedDaemonReload -p LimitNOFILE -- nosuch.service (rc 0!)
NOT_FOUND = {"show": "LimitNOFILE=20000\nLoadState=not-found\nNeedDaemonReload=no", "dir": "no"}


# --- facts in, changes out ------------------------------------------------------------------


def plan_dropin(
    args: SystemdDropinArgs, sections: dict[str, str], file: RemoteFile | None = None
) -> tuple[StepResult, list[Change]]:
    """What the step registers and plans for a host that answered `sections`."""
    step = SystemdDropin()
    found = dropin_state(args.dropin, sections, file, become=False)
    return step.registered(found), step.plan(args, found)


def plan_sysctl(
    args: SysctlArgs, sections: dict[str, str], file: RemoteFile | None = None
) -> tuple[StepResult, list[Change]]:
    step = Sysctl()
    own = file.content.decode() if file is not None else ""
    found = sysctl_found(args, read_state(args, sections, own), file, become=False)
    return step.registered(found), step.plan(args, found)


def commands(changes: list[Change]) -> list[tuple[str, str | None]]:
    return [(c.command, c.undo_command) for c in changes if isinstance(c, CommandChange)]


def dropin(**settings: object) -> SystemdDropinArgs:
    return SystemdDropinArgs(unit="redis-server", settings=settings)  # type: ignore[arg-type]


# --- systemd_dropin -------------------------------------------------------------------------


def test_a_drop_in_for_a_unit_without_one_creates_dir_file_and_reloads() -> None:
    found, changes = plan_dropin(dropin(LimitNOFILE=40), DROPIN_ABSENT)
    assert found.facts["current"] == {"LimitNOFILE": "65535"}
    assert (found.facts["exists"], found.facts["dir_exists"]) == (False, False)
    mkdir, write, reload = changes
    assert isinstance(write, FileChange) and write.path == DROPIN and write.before is None
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
        ("systemctl daemon-reload", "systemctl daemon-reload"),
    ]


def test_a_second_run_plans_nothing() -> None:
    found, changes = plan_dropin(dropin(LimitNOFILE=40), DROPIN_PRESENT, DROPIN_PRESENT_FILE)
    assert changes == [] and found.facts["up_to_date"] is True
    assert found.facts["current"] == {"LimitNOFILE": "40"}


def test_changing_the_value_edits_in_place_and_keeps_the_existing_directory() -> None:
    _, changes = plan_dropin(dropin(LimitNOFILE=50), DROPIN_PRESENT, DROPIN_PRESENT_FILE)
    mkdir, write, _reload = changes
    assert commands([mkdir])[0][1] == "systemctl daemon-reload"  # no rmdir: it existed
    assert isinstance(write, FileChange) and write.before is not None
    assert write.after.endswith(b"[Service]\nLimitNOFILE=50\n")


def test_a_drop_in_systemd_has_not_loaded_yet_gets_just_the_reload() -> None:
    show = DROPIN_PRESENT["show"].replace("NeedDaemonReload=no", "NeedDaemonReload=yes")
    pending = {**DROPIN_PRESENT, "show": show}
    _, changes = plan_dropin(dropin(LimitNOFILE=40), pending, DROPIN_PRESENT_FILE)
    assert commands(changes) == [("systemctl daemon-reload", "systemctl daemon-reload")]


def test_a_unit_that_does_not_exist_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unit nosuch.service does not exist"):
        plan_dropin(SystemdDropinArgs(unit="nosuch", settings={"Nice": 1}), NOT_FOUND)
    with pytest.raises(ValueError, match="no systemd"):
        plan_dropin(dropin(Nice=1), {"no-systemd": ""})


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
    found, changes = plan_sysctl(sysctl(), OVERCOMMIT_FRESH)
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
    found, changes = plan_sysctl(sysctl(), OVERCOMMIT_OVERRIDDEN, WRITTEN)
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
    found, changes = plan_sysctl(sysctl("net.core.somaxconn", 8192), SOMAXCONN_FRESH)
    assert found.findings == ()
    write, command = changes
    assert isinstance(write, FileChange)
    assert commands([command]) == [
        ("sysctl -q -w net.core.somaxconn=8192", "sysctl -q -w net.core.somaxconn=4096")
    ]
    assert plan_sysctl(sysctl("net.core.somaxconn", 1024), SOMAXCONN_SET, WRITTEN)[1] == []


def test_runtime_false_only_persists() -> None:
    found, changes = plan_sysctl(sysctl("net.core.somaxconn", 8192, runtime=False), SOMAXCONN_FRESH)
    assert [c.kind for c in changes] == ["file"] and found.findings == ()


def test_two_sysctl_steps_compose_in_one_file() -> None:
    # Given the file an earlier step of this run plans (vm.overcommit_memory), when a
    # second step plans net.core.somaxconn on it, then its edit starts from that content.
    first = remote(
        SYSCTL_FILE, "# Kernel settings for Redis, written by redmedic.\nvm.overcommit_memory = 1\n"
    )
    _, changes = plan_sysctl(sysctl("net.core.somaxconn", 8192), SOMAXCONN_FRESH, first)
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
    with pytest.raises(ValueError, match="no such kernel setting"):
        plan_sysctl(sysctl("vm.nope"), {"missing": "", "writable": "no", "files": ""})
    tcp = {"runtime": "4096\t131072\t6291456", "writable": "yes", "files": ""}
    found, changes = plan_sysctl(
        sysctl("net.ipv4.tcp_rmem", "4096 131072 6291456"),
        tcp,
        remote(SYSCTL_FILE, "net.ipv4.tcp_rmem = 4096 131072 6291456\n"),
    )
    assert changes == [] and found.facts["runtime"] == "4096 131072 6291456"


# --- the round trip --------------------------------------------------------------------------


def test_the_script_and_the_file_come_back_in_one_round_trip(tmp_path: Path) -> None:
    # Given a file on a real (local) host, when a step runs its script and reads the file,
    # then it gets the script's output and the file's exact bytes (trailing newlines too).
    path = tmp_path / "60-redmedic.conf"
    path.write_bytes(b"vm.overcommit_memory = 1\n\n")
    with LocalConnection(Host(name="local", address="127.0.0.1"), ConnectOptions()) as conn:
        ctx = step_context(conn, phase="fix")
        output, file = ctx.run_reading("echo hello; exit 3", str(path))
        assert output == "hello\n"
        assert file is not None and file.content == b"vm.overcommit_memory = 1\n\n"
        assert ctx.run_reading("true", str(tmp_path / "absent.conf")) == ("", None)


def test_a_file_an_earlier_step_plans_is_not_read_again() -> None:
    conn = ScriptedConnection({"systemctl show": (0, "LoadState=loaded\n", "")})
    ctx = step_context(conn, phase="fix")
    ctx.planned_files[DROPIN] = DROPIN_PRESENT_FILE
    assert ctx.run_reading("systemctl show x", DROPIN) == (
        "LoadState=loaded\n",
        DROPIN_PRESENT_FILE,
    )
    assert conn.commands == ["systemctl show x"]  # one round trip, no read


# --- an existing file keeps its mode --------------------------------------------------------


def private(file: RemoteFile) -> RemoteFile:
    """`file` as an admin keeps it: 0600, readable by root alone."""
    return RemoteFile(file.path, file.content, 0o600, file.owner, file.group)


def test_an_existing_0600_drop_in_or_sysctl_file_is_edited_without_touching_its_mode() -> None:
    # Given a drop-in and a sysctl file an admin made 0600, when the steps edit them, then
    # neither asks for a mode (the write keeps the file's own) and the plan says "edit" only.
    _, dropin_changes = plan_dropin(
        dropin(LimitNOFILE=50), DROPIN_PRESENT, private(DROPIN_PRESENT_FILE)
    )
    _, sysctl_changes = plan_sysctl(
        sysctl("net.core.somaxconn", 8192), SOMAXCONN_SET, private(WRITTEN)
    )
    writes = [c for c in dropin_changes + sysctl_changes if isinstance(c, FileChange)]
    assert [(w.mode, w.mode_change, w.describe()) for w in writes] == [
        (None, None, f"edit {DROPIN}"),
        (None, None, f"edit {SYSCTL_FILE}"),
    ]


def test_a_new_drop_in_gets_0644_and_the_plan_says_so() -> None:
    _, changes = plan_dropin(dropin(LimitNOFILE=40), DROPIN_ABSENT)
    [write] = [c for c in changes if isinstance(c, FileChange)]
    assert write.mode == 0o644 and write.describe() == f"create {DROPIN} (mode 0644)"


def test_a_mode_a_step_asks_of_an_existing_file_is_shown_in_the_plan() -> None:
    change = FileChange(SYSCTL_FILE, private(WRITTEN), b"x\n", mode=0o644)
    assert change.mode_change == (0o600, 0o644)
    assert change.describe() == f"edit {SYSCTL_FILE} (mode 0600 → 0644)"
    assert FileChange(SYSCTL_FILE, WRITTEN, b"x\n", mode=0o644).describe() == f"edit {SYSCTL_FILE}"
