"""An edit keeps the file's mode unless a step asks, and a mode change is never hidden.

Given a root-owned 0600 redis.conf holding `requirepass` (readable by root alone, as an
admin keeps it), when redmedic edits it over real sshd + sudo with `file_line` or
`redis_config`, then the file stays 0600 and root's, and the plan says nothing of a mode;
when a step asks for a mode, the plan, the gate and --check say "mode 0600 → 0644".
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from redmedic.cli import main
from tests.support.loopback import LoginUser, SshdHost, SshSession

pytestmark = pytest.mark.integration

PASSWORD = "Mode-s3cret"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """/etc/redis/redis.conf as a careful admin leaves it: root:root 0600, with a password."""
    etc = tmp_path / "etc-redis"
    etc.mkdir(mode=0o700)
    path = etc / "redis.conf"
    path.write_text(f"port 6379\nrequirepass {PASSWORD}\nmaxclients 100\n")
    os.chown(path, 0, 0)
    path.chmod(0o600)
    return path


@pytest.fixture
def inventory(
    tmp_path: Path, sshd: SshdHost, ssh_session: SshSession, test_user: LoginUser, conf: Path
) -> Path:
    path = tmp_path / "inv.yaml"
    path.write_text(
        f"all:\n  hosts:\n    {sshd.name}:\n      ansible_host: {sshd.address}\n"
        f"      ansible_port: {sshd.port}\n      ansible_user: {test_user.name}\n"
        f"      ansible_ssh_private_key_file: {ssh_session.client_key}\n"
        f"      ansible_become: true\n      ansible_become_password: {test_user.password}\n"
        f"      conf: {conf}\n"
    )
    return path


def run(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    inventory: Path,
    known: Path,
    fix: str,
    *flags: str,
) -> tuple[int, list[dict[str, Any]]]:
    """`redmedic run` of a playbook whose fix phase is `fix`, as JSON events."""
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(f"name: Mode\nhosts: all\nfix:\n{fix}")
    argv = ["run", str(playbook), "-i", str(inventory), "--known-hosts", str(known)]
    code = main([*argv, *flags, "--output", "json"])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def planned(events: list[dict[str, Any]]) -> list[str]:
    return [e["description"] for e in events if e["event"] == "change_planned"]


def mode_of(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, stat.S_IMODE(info.st_mode)


FILE_LINE = """\
  - name: More clients
    file_line:
      path: "{{ conf }}"
      regexp: "^maxclients "
      line: maxclients 20000
"""

REDIS_CONFIG = """\
  - name: Even more clients
    redis_config:
      path: "{{ conf }}"
      set:
        maxclients: 30000
"""


@pytest.mark.parametrize("fix", [FILE_LINE, REDIS_CONFIG], ids=["file_line", "redis_config"])
def test_an_edited_0600_file_stays_0600_and_the_plan_names_no_mode(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    inventory: Path,
    known_hosts_file: Path,
    conf: Path,
    fix: str,
) -> None:
    code, events = run(capsys, tmp_path, inventory, known_hosts_file, fix, "--yes")
    assert code == 0, events
    # no Redis runs here, so redis_config's edit also says it needs a restart (not a mode)
    assert [p.split(" (needs a restart: ")[0] for p in planned(events)] == [f"edit {conf}"]
    assert "maxclients 20000" in conf.read_text() or "maxclients 30000" in conf.read_text()
    assert mode_of(conf) == (0, 0o600)
    assert PASSWORD not in json.dumps(events)


def test_a_mode_a_step_asks_for_is_shown_in_check_and_then_applied(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    inventory: Path,
    known_hosts_file: Path,
    conf: Path,
) -> None:
    fix = FILE_LINE + "      mode: '0644'\n"
    code, events = run(capsys, tmp_path, inventory, known_hosts_file, fix, "--check")
    assert planned(events) == [f"edit {conf} (mode 0600 → 0644)"], [
        str(e) for e in events if e["event"] == "host_finished"
    ]
    assert mode_of(conf) == (0, 0o600)  # --check changed nothing
    code, events = run(capsys, tmp_path, inventory, known_hosts_file, fix, "--yes")
    assert code == 0, events
    assert planned(events) == [f"edit {conf} (mode 0600 → 0644)"]
    assert mode_of(conf) == (0, 0o644)
