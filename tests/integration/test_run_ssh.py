"""The runner over real SSH: two simulated hosts (real sshd, sudo with a password) and a dead one.

Given redis.conf files that bind to loopback only, owned by another user and readable only
through sudo, when I run a playbook with redmedic, then...
"""

from __future__ import annotations

import json
import os
import pwd
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from redmedic.cli import main
from tests.support.loopback import LoginUser, SshdHost, SshSession, free_loopback_port

pytestmark = pytest.mark.integration

BROKEN = "# redis\nbind 127.0.0.1 -::1\nport 6379\n"

PLAYBOOK = """\
name: Fix bind
hosts: redis
become: true
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
    shell: echo restarted >> {{ redis_conf | quote }}.restarts
verify:
  - name: Redis would answer
    shell: cat {{ redis_conf | quote }}.verdict
    expect_stdout: PONG
"""


@dataclass
class Site:
    dir: Path
    playbook: Path
    inventory: Path
    known_hosts: Path
    confs: dict[str, Path]


@pytest.fixture(scope="module")
def fleet(ssh_session: SshSession) -> list[SshdHost]:
    return [ssh_session.start_sshd(name=f"redis-{i}") for i in (1, 2)]


@pytest.fixture
def site(
    tmp_path: Path, fleet: list[SshdHost], ssh_session: SshSession, test_user: LoginUser
) -> Iterator[Site]:
    nobody = pwd.getpwnam("nobody")
    confs = {}
    hosts_yaml = ""
    for host in fleet:
        conf = tmp_path / host.name / "redis.conf"
        conf.parent.mkdir()
        conf.write_text(BROKEN)
        os.chown(conf, nobody.pw_uid, nobody.pw_gid)
        conf.chmod(0o640)
        Path(f"{conf}.verdict").write_text("PONG\n")
        confs[host.name] = conf
        hosts_yaml += (
            f"        {host.name}:\n          ansible_host: {host.address}\n"
            f"          ansible_port: {host.port}\n          redis_conf: {conf}\n"
        )
    dead_port = free_loopback_port("127.0.1.250")
    hosts_yaml += (
        f"        dead:\n          ansible_host: 127.0.1.250\n          ansible_port: {dead_port}\n"
        "          redis_conf: /nonexistent\n"
    )
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  vars:\n"
        f"    ansible_user: {test_user.name}\n"
        f"    ansible_ssh_private_key_file: {ssh_session.client_key}\n"
        f"    ansible_become_password: {test_user.password}\n"
        "  children:\n    redis:\n      hosts:\n" + hosts_yaml
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(h.known_hosts_line + "\n" for h in fleet))
    playbook = tmp_path / "fix-bind.yaml"
    playbook.write_text(PLAYBOOK)
    yield Site(tmp_path, playbook, inventory, known_hosts, confs)


def run(
    site: Site, capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[int, list[dict[str, object]], str]:
    argv = [
        "run",
        str(site.playbook),
        "-i",
        str(site.inventory),
        "--known-hosts",
        str(site.known_hosts),
        "--connect-timeout",
        "3",
        *flags,
    ]
    code = main(argv)
    captured = capsys.readouterr()
    assert code != 2, captured.err
    events = [json.loads(line) for line in captured.out.splitlines()] if "--output" in flags else []
    return code, events, captured.out + captured.err


def test_dry_run_changes_no_byte_and_an_unreachable_host_does_not_stop_the_others(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    code, events, _ = run(site, capsys, "--check", "--output", "json")
    assert code == 4, events
    summary = events[-1]["hosts"]
    assert summary["redis-1"] == {"status": "would_change", "changed": 2, "failed": 0}  # type: ignore[index]
    assert summary["redis-2"]["status"] == "would_change"  # type: ignore[index]
    assert summary["dead"]["status"] == "unreachable"  # type: ignore[index]
    for conf in site.confs.values():
        assert conf.read_text() == BROKEN
        assert not Path(f"{conf}.restarts").exists()
    diffs = [e["diff"] for e in events if e["event"] == "change_planned" and e["diff"]]
    assert len(diffs) == 2 and all("+bind 0.0.0.0 -::*" in str(d) for d in diffs)


def test_apply_through_sudo_keeps_owner_and_mode_and_a_second_run_changes_nothing(
    site: Site, capsys: pytest.CaptureFixture[str], test_user: LoginUser
) -> None:
    code, _, text = run(site, capsys, "--yes", "--limit", "redis,!dead")
    assert code == 0, text
    assert test_user.password not in text
    for conf in site.confs.values():
        info = os.stat(conf)
        assert conf.read_text() == "# redis\nbind 0.0.0.0 -::*\nport 6379\n"
        assert (pwd.getpwuid(info.st_uid).pw_name, stat.S_IMODE(info.st_mode)) == ("nobody", 0o640)
        assert Path(f"{conf}.restarts").read_text() == "restarted\n"
        assert [b.read_text() for b in conf.parent.glob("redis.conf.redmedic-*~")] == [BROKEN]

    code, events, text = run(site, capsys, "--yes", "--limit", "redis,!dead", "--output", "json")
    assert code == 0
    assert test_user.password not in text
    assert {h: r["changed"] for h, r in events[-1]["hosts"].items()} == {"redis-1": 0, "redis-2": 0}  # type: ignore[union-attr]


def test_failed_verify_rolls_the_host_back_over_ssh(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    broken_host = "redis-2"
    Path(f"{site.confs[broken_host]}.verdict").write_text("LOADING\n")
    code, events, _ = run(site, capsys, "--yes", "--limit", "redis,!dead", "--output", "json")
    assert code == 1
    assert site.confs[broken_host].read_text() == BROKEN
    assert site.confs["redis-1"].read_text().startswith("# redis\nbind 0.0.0.0")
    assert events[-1]["hosts"][broken_host]["status"] == "failed"  # type: ignore[index]
    assert [e["host"] for e in events if e["event"] == "rolled_back"] == [broken_host]


def test_a_changed_host_key_stops_that_host_with_the_command_to_fix_it(
    site: Site, capsys: pytest.CaptureFixture[str], fleet: list[SshdHost], ssh_session: SshSession
) -> None:
    impostor = ssh_session.start_sshd()
    lines = site.known_hosts.read_text().splitlines()
    label = fleet[0].known_hosts_line.split()[0]
    lines[0] = f"{label} {impostor.host_key}"
    site.known_hosts.write_text("\n".join(lines) + "\n")
    code, events, _ = run(site, capsys, "--check", "--limit", "redis,!dead", "--output", "json")
    assert code == 4
    finished = {e["host"]: e for e in events if e["event"] == "host_finished"}
    assert finished["redis-1"]["status"] == "unreachable"
    assert "ssh-keygen -R" in str(finished["redis-1"]["message"])
    assert finished["redis-2"]["status"] == "would_change"
