"""The whole runner, end to end on this machine (`ansible_connection: local`) with real files.

Given a redis.conf that binds to loopback only, when I dry-run or apply a playbook, then...
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from redmedic.cli import main
from redmedic.connection import LocalConnection
from redmedic.events import ChangePlanned, HostFinished, StepDone
from redmedic.model.inventory import Host
from redmedic.playbook import load_playbook
from redmedic.run.executor import RunOptions
from redmedic.run.fleet import run_playbook
from redmedic.steps import builtin_step_types

BROKEN = "# redis\nbind 127.0.0.1 -::1\nport 6379\n"

PLAYBOOK = """\
name: Fix bind
hosts: redis
diagnose:
  - name: Read bind line
    shell: grep -E '^bind ' {{ redis_conf | quote }}
    register: bind_line
fix:
  - name: Listen on all interfaces
    file_line: {path: "{{ redis_conf }}", regexp: '^bind ', line: 'bind 0.0.0.0 -::*'}
    when: "'127.0.0.1' in bind_line.stdout"
    confirm: true
    notify: restart redis
handlers:
  - name: restart redis
    shell: echo restarted >> {{ restarts | quote }}
verify:
  - name: Config is what we want
    shell: grep -c '^bind 0.0.0.0' {{ redis_conf | quote }} && cat {{ verdict | quote }}
    expect_stdout: PONG
"""


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    conf = tmp_path / "redis.conf"
    conf.write_text(BROKEN)
    conf.chmod(0o640)
    verdict = tmp_path / "verdict"
    verdict.write_text("PONG\n")
    playbook = tmp_path / "fix-bind.yaml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  children:\n    redis:\n      hosts:\n        box:\n"
        "          ansible_connection: local\n"
        f"          redis_conf: {conf}\n          restarts: {tmp_path / 'restarts'}\n"
        f"          verdict: {verdict}\n"
    )
    return {
        "conf": conf,
        "playbook": playbook,
        "inventory": inventory,
        "dir": tmp_path,
        "verdict": verdict,
    }


def run(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[int, list[dict[str, object]]]:
    code = main(
        ["run", str(site["playbook"]), "-i", str(site["inventory"]), "--output", "json", *flags]
    )
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def test_dry_run_shows_the_diff_and_changes_nothing(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = site["conf"].read_bytes()
    code, events = run(site, capsys, "--check")
    assert code == 0
    assert site["conf"].read_bytes() == before
    assert not (site["dir"] / "restarts").exists()
    planned = [e for e in events if e["event"] == "change_planned"]
    assert "-bind 127.0.0.1 -::1\n+bind 0.0.0.0 -::*\n" in str(planned[0]["diff"])
    assert planned[1]["step"] == "restart redis"
    assert events[-1] == {
        "event": "summary",
        "hosts": {"box": {"status": "would_change", "changed": 2, "failed": 0}},
    }


def test_apply_edits_keeps_mode_runs_the_handler_and_a_second_run_changes_nothing(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, events = run(site, capsys, "--yes")
    assert code == 0, events
    assert site["conf"].read_text() == "# redis\nbind 0.0.0.0 -::*\nport 6379\n"
    assert stat.S_IMODE(os.stat(site["conf"]).st_mode) == 0o640
    assert (site["dir"] / "restarts").read_text() == "restarted\n"
    backups = list(site["dir"].glob("redis.conf.redmedic-*~"))
    assert [b.read_text() for b in backups] == [BROKEN]
    assert events[-1]["hosts"] == {"box": {"status": "changed", "changed": 2, "failed": 0}}

    code, events = run(site, capsys, "--yes")
    assert code == 0
    assert events[-1]["hosts"] == {"box": {"status": "ok", "changed": 0, "failed": 0}}


def test_failed_verify_restores_the_file_and_reruns_handlers(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    site["verdict"].write_text("LOADING\n")
    code, events = run(site, capsys, "--yes")
    assert code == 1
    assert site["conf"].read_text() == BROKEN
    assert (site["dir"] / "restarts").read_text() == "restarted\nrestarted\n"
    rolled = [e for e in events if e["event"] == "rolled_back"]
    assert rolled and "verify 'Config is what we want' failed" in str(rolled[0]["reason"])
    assert events[-1]["hosts"]["box"]["status"] == "failed"  # type: ignore[index]


def test_applying_without_a_terminal_or_yes_is_refused(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(site["playbook"]), "-i", str(site["inventory"])])
    err = capsys.readouterr().err
    assert code == 2
    assert "refusing to apply" in err and "--yes" in err
    assert site["conf"].read_text() == BROKEN


def test_undefined_variable_stops_the_run_before_any_host(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    site["playbook"].write_text(
        PLAYBOOK.replace("{{ redis_conf | quote }}", "{{ redis_cnf | quote }}", 1)
    )
    code = main(["run", str(site["playbook"]), "-i", str(site["inventory"]), "--check"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "undefined variable 'redis_cnf' in step 'Read bind line'" in err
    assert "fix-bind.yaml:4:5" in err


def test_a_failing_canary_batch_stops_the_rollout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    playbook = tmp_path / "canary.yaml"
    playbook.write_text(
        "name: canary\nhosts: all\ndiagnose:\n"
        "  - fail: canary is sick\n    when: inventory_hostname == 'h1'\n"
    )
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        "all:\n  hosts:\n"
        + "".join(f"    h{i}: {{ansible_connection: local}}\n" for i in range(1, 5))
    )
    argv = [
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "--check",
        "--output",
        "json",
        "--serial",
        "1,100%",
        "--max-fail-percent",
        "0",
    ]
    assert main(argv) == 1
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])["hosts"]
    assert {h: r["status"] for h, r in summary.items()} == {
        "h1": "failed",
        "h2": "skipped",
        "h3": "skipped",
        "h4": "skipped",
    }


class CountingConnection(LocalConnection):
    """A real local connection that counts its round trips."""

    execs: ClassVar[list[str]] = []

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        CountingConnection.execs.append(command)
        return super()._exec(command, stdin, timeout)


def test_independent_diagnose_commands_share_one_round_trip(tmp_path: Path) -> None:
    playbook = tmp_path / "look.yaml"
    playbook.write_text(
        "name: look\nhosts: all\ndiagnose:\n"
        "  - {shell: echo a, register: a}\n"
        "  - {shell: 'echo b; exit 3', register: b}\n"
        "  - {shell: echo c >&2, register: c}\n"
        "  - {shell: 'echo {{ a.stdout | trim }}{{ b.rc }}', register: d}\n"
        "  - assert:\n"
        "      that:\n"
        "        - \"a.stdout == 'a\\n' and b.rc == 3\"\n"
        "        - \"c.stderr == 'c\\n' and d.stdout == 'a3\\n'\"\n"
    )
    host = Host("box", "127.0.0.1", connection="local")
    CountingConnection.execs.clear()
    result = run_playbook(
        load_playbook(playbook, builtin_step_types()),
        [host],
        RunOptions(check=True),
        registry=builtin_step_types(),
        reporter=lambda event: None,
        connector=lambda h, options: CountingConnection(h, options),
    )
    assert result.hosts[0].status.value == "ok", result.hosts[0].message
    assert len(CountingConnection.execs) == 2  # the three independent steps, then the fourth


AHEAD = """\
name: Fix bind
hosts: all
diagnose:
  - {name: Bind line, shell: "grep '^bind ' {{ redis_conf | quote }}", register: bind_line}
  - {name: Port line, shell: "grep '^port ' {{ redis_conf | quote }}"}
fix:
  - name: Listen on all interfaces
    file_line: {path: "{{ redis_conf }}", regexp: '^bind ', line: 'bind 0.0.0.0 -::*'}
    WHEN
verify:
  - {name: Bound to all, shell: "grep -c '^bind 0.0.0.0' {{ redis_conf | quote }}"}
"""


def counted_run(tmp_path: Path, when: str, *, check: bool) -> tuple[str, list[object]]:
    """Run AHEAD on a local host with a broken redis.conf; its status and the events."""
    conf = tmp_path / "redis.conf"
    if not conf.exists():
        conf.write_text(BROKEN)
    playbook = tmp_path / "ahead.yaml"
    playbook.write_text(AHEAD.replace("WHEN", when))
    host = Host("box", "127.0.0.1", connection="local", vars={"redis_conf": str(conf)})
    events: list[object] = []
    CountingConnection.execs.clear()
    result = run_playbook(
        load_playbook(playbook, builtin_step_types()),
        [host],
        RunOptions(check=check),
        registry=builtin_step_types(),
        reporter=events.append,
        approve_all=True,
        connector=lambda h, options: CountingConnection(h, options),
    )
    return result.hosts[0].status.value, events


def test_the_fix_steps_file_is_read_in_the_diagnose_round_trip(tmp_path: Path) -> None:
    status, events = counted_run(tmp_path, "", check=True)
    assert status == "would_change"
    assert len(CountingConnection.execs) == 1  # both diagnose commands and the file read
    (planned,) = [e for e in events if isinstance(e, ChangePlanned)]
    assert "-bind 127.0.0.1 -::1\n+bind 0.0.0.0 -::*\n" in planned.diff

    status, _ = counted_run(tmp_path, "", check=False)
    assert status == "changed"
    assert (tmp_path / "redis.conf").read_text() == "# redis\nbind 0.0.0.0 -::*\nport 6379\n"
    assert len(CountingConnection.execs) == 3  # diagnose and read; the write; verify


def test_a_fix_step_that_depends_on_a_diagnose_result_reads_its_file_itself(
    tmp_path: Path,
) -> None:
    status, _ = counted_run(tmp_path, "when: \"'127.0.0.1' in bind_line.stdout\"", check=True)
    assert status == "would_change"
    assert len(CountingConnection.execs) == 2  # the diagnose batch, then the read


LOOKED_AHEAD = """\
name: Fix three things where the diagnose found them
hosts: all
diagnose:
  - {name: Where the files are, shell: "echo DIR", register: found}
fix:
  - name: Listen on all interfaces
    file_line: {path: "{{ found.stdout | trim }}/a.conf", regexp: '^bind ', line: 'bind 0.0.0.0'}
    register: first
  - name: Keep the port
    file_line: {path: "{{ found.stdout | trim }}/b.conf", regexp: '^port ', line: 'port 6380'}
  - name: Overcommit, persistently
    sysctl: {name: vm.overcommit_memory, value: 1, file: "{{ found.stdout | trim }}/60.conf"}
  - name: After the first fix (its own read, in its turn)
    file_line: {path: "{{ found.stdout | trim }}/c.conf", line: 'maxclients 100'}
    when: first.changed
"""


def test_fix_steps_that_need_the_diagnose_results_are_read_in_one_round_trip(
    tmp_path: Path,
) -> None:
    # Given three fix steps whose files the diagnose names (not known before it ran) and a
    # fourth that waits for the first one's result, when I dry-run, then the three are read
    # in one round trip after the diagnose, the fourth reads for itself, and every diff is
    # the one each step would have shown alone.
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.conf").write_text(BROKEN)
    playbook = tmp_path / "three.yaml"
    playbook.write_text(LOOKED_AHEAD.replace("DIR", str(tmp_path)))
    host = Host("box", "127.0.0.1", connection="local")
    events: list[object] = []
    CountingConnection.execs.clear()
    result = run_playbook(
        load_playbook(playbook, builtin_step_types()),
        [host],
        RunOptions(check=True),
        registry=builtin_step_types(),
        reporter=events.append,
        connector=lambda h, options: CountingConnection(h, options),
    )
    assert result.hosts[0].status.value == "would_change", result.hosts[0].message
    assert len(CountingConnection.execs) == 3  # diagnose; the three fix steps' reads; the 4th
    diffs: dict[str, str] = {}
    for e in events:
        if isinstance(e, ChangePlanned):
            diffs[e.step] = diffs.get(e.step, "") + e.diff
    assert "-bind 127.0.0.1 -::1\n+bind 0.0.0.0\n" in diffs["Listen on all interfaces"]
    assert "-port 6379\n+port 6380\n" in diffs["Keep the port"]
    assert "+vm.overcommit_memory = 1\n" in diffs["Overcommit, persistently"]
    assert "+maxclients 100\n" in diffs["After the first fix (its own read, in its turn)"]


def test_a_file_that_cannot_be_read_ahead_fails_its_own_step(tmp_path: Path) -> None:
    (tmp_path / "redis.conf").mkdir()
    status, events = counted_run(tmp_path, "", check=True)
    assert status == "failed"
    (finished,) = [e for e in events if isinstance(e, HostFinished)]
    assert "Listen on all interfaces" in finished.message
    assert "cannot read" in finished.message


def test_a_fix_that_cannot_be_planned_fails_the_host_naming_its_step(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a redis.conf that is not there, when I dry-run, then the host fails with the
    # reason its fix step could not be planned, naming the step, and nothing is written.
    site["conf"].unlink()
    site["playbook"].write_text(
        PLAYBOOK.replace("    when: \"'127.0.0.1' in bind_line.stdout\"\n", "")
    )
    code, events = run(site, capsys, "--check")
    assert code == 1
    (finished,) = [e for e in events if e["event"] == "host_finished"]
    assert finished["status"] == "failed"
    assert "Listen on all interfaces" in str(finished["message"])
    assert "does not exist — set `create: true` to create it" in str(finished["message"])
    assert not site["conf"].exists()


def test_a_probe_from_this_machine_runs_while_the_connection_opens(tmp_path: Path) -> None:
    # Given a host whose connection takes a while to open and a diagnose that first asks
    # from this machine, when I run it, then that probe reaches the port before the
    # connection is open, and it is still reported in its turn with what it found.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[float] = []

    def accept() -> None:
        client, _ = listener.accept()
        accepted.append(time.monotonic())
        client.close()

    threading.Thread(target=accept, daemon=True).start()
    opened: list[float] = []

    def slow_connector(host: Host, options: object) -> CountingConnection:
        time.sleep(1.0)  # the handshake of a far-away host
        opened.append(time.monotonic())
        return CountingConnection(host, options)  # type: ignore[arg-type]

    playbook = tmp_path / "early.yaml"
    playbook.write_text(
        "name: early\nhosts: all\ndiagnose:\n"
        f"  - {{name: From here, tcp_probe: {{address: 127.0.0.1, port: {port},"
        " vantage: [control]}, register: here}\n"
        "  - {name: Then the host, shell: 'echo {{ here.rc }}'}\n"
    )
    events: list[object] = []
    try:
        result = run_playbook(
            load_playbook(playbook, builtin_step_types()),
            [Host("box", "127.0.0.1", connection="local")],
            RunOptions(check=True),
            registry=builtin_step_types(),
            reporter=events.append,
            connector=slow_connector,
        )
    finally:
        listener.close()
    assert result.hosts[0].status.value == "ok", result.hosts[0].message
    assert accepted and opened and accepted[0] < opened[0]
    done = [e.step for e in events if isinstance(e, StepDone)]
    assert done == ["From here", "Then the host"]


class SlowConnection(LocalConnection):
    """A real local connection whose every exec takes half a second, and says when it ran."""

    spans: ClassVar[list[tuple[float, float]]] = []

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        start = time.monotonic()
        time.sleep(0.5)
        done = super()._exec(command, stdin, timeout)
        SlowConnection.spans.append((start, time.monotonic()))
        return done


def test_independent_reads_of_the_host_share_their_wait(tmp_path: Path) -> None:
    # Given two diagnose steps that each read the host and need nothing from each other,
    # when I run them on a slow host, then their reads are under way at the same time, and
    # each is reported in its turn.
    playbook = tmp_path / "both.yaml"
    playbook.write_text(
        "name: both\nhosts: all\ndiagnose:\n"
        "  - {name: First, tcp_probe: {port: 9, vantage: [host], timeout: 1}}\n"
        "  - {name: Second, tcp_probe: {port: 10, vantage: [host], timeout: 1}}\n"
    )
    SlowConnection.spans.clear()
    events: list[object] = []
    result = run_playbook(
        load_playbook(playbook, builtin_step_types()),
        [Host("box", "127.0.0.1", connection="local")],
        RunOptions(check=True),
        registry=builtin_step_types(),
        reporter=events.append,
        connector=lambda h, options: SlowConnection(h, options),
    )
    assert result.hosts[0].status.value in ("ok", "failed"), result.hosts[0].message
    first, second = sorted(SlowConnection.spans)
    assert second[0] < first[1]  # the second read began before the first had come back
    done = [e.step for e in events if isinstance(e, StepDone)]
    assert done == ["First", "Second"]
