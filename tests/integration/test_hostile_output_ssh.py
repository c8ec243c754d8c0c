"""A hostile host over real SSH: its redis.conf holds bytes that are not UTF-8 and terminal
escapes, and a command floods 50 MB. Given such a host, when I diagnose, apply and roll back
with redmedic, then every JSON line parses, the screen gets no raw escape, the audit log keeps
every record and `redmedic rollback` restores the file byte for byte, and memory stays bounded.
"""

from __future__ import annotations

import json
import os
import pwd
import tracemalloc
from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.connection.base import ConnectOptions
from redmedic.connection.outputcap import OUTPUT_CAP
from redmedic.connection.ssh import SSHConnection
from redmedic.model.inventory import Host
from tests.support.loopback import LoginUser, SshdHost, SshSession

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent.parent / "data" / "adversarial"
HOSTILE = (DATA / "output-bytes.bin").read_bytes() + (DATA / "output-escapes.bin").read_bytes()
CONF = b"# redis\nbind 127.0.0.1 -::1\n" + HOSTILE + b"port 6379\n"

PLAYBOOK = """\
name: Fix bind on a hostile host
hosts: redis
become: true
diagnose:
  - name: Show the config
    shell: cat {{ redis_conf | quote }}
fix:
  - name: Listen on all interfaces
    file_line: {path: "{{ redis_conf }}", regexp: '^bind ', line: 'bind 0.0.0.0 -::*'}
"""


@pytest.fixture
def site(tmp_path: Path, sshd: SshdHost, ssh_session: SshSession, test_user: LoginUser) -> Path:
    nobody = pwd.getpwnam("nobody")
    conf = tmp_path / "redis.conf"
    conf.write_bytes(CONF)
    conf.chmod(0o640)
    os.chown(conf, nobody.pw_uid, nobody.pw_gid)
    (tmp_path / "inv.yaml").write_text(
        "all:\n  vars:\n"
        f"    ansible_user: {test_user.name}\n"
        f"    ansible_ssh_private_key_file: {ssh_session.client_key}\n"
        f"    ansible_become_password: {test_user.password}\n"
        "  children:\n    redis:\n      hosts:\n"
        f"        {sshd.name}:\n          ansible_host: {sshd.address}\n"
        f"          ansible_port: {sshd.port}\n          redis_conf: {conf}\n"
    )
    (tmp_path / "known_hosts").write_text(sshd.known_hosts_line + "\n")
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    return tmp_path


def _redmedic(site: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    common = ["-i", str(site / "inv.yaml"), "--known-hosts", str(site / "known_hosts")]
    code = main([*argv, *common, "--audit-log", str(site / "audit.jsonl")])
    captured = capsys.readouterr()
    assert code != 2, captured.err
    return code, captured.out + captured.err


def test_json_output_parses_on_every_line_and_keeps_the_hosts_bytes(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _redmedic(
        site, capsys, "run", str(site / "pb.yaml"), "--check", "-v", "--output", "json"
    )
    events = [json.loads(line) for line in out.splitlines()]  # every line parses
    shown = [e for e in events if e["event"] == "step_done" and e["step"] == "Show the config"]
    assert shown and HOSTILE.rstrip(b"\n") in str(shown[0]["output"]).encode(
        "utf-8", "surrogateescape"
    )
    assert code == 0 and events[-1]["event"] == "summary"


def test_text_output_shows_escapes_visibly_and_never_raw(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = _redmedic(site, capsys, "run", str(site / "pb.yaml"), "--check", "-v")
    assert "before\\x1b]0;owned title\\x07" in out
    raw = [c for c in out if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]
    assert not raw and "\\xff\\xfe" in out


def test_apply_audits_every_record_and_rollback_restores_the_bytes(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = site / "redis.conf"
    code, out = _redmedic(site, capsys, "run", str(site / "pb.yaml"), "--yes", "--output", "json")
    assert code == 0, out
    assert b"bind 0.0.0.0 -::*\n" in conf.read_bytes()
    lines = (site / "audit.jsonl").read_bytes().decode("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    kinds = [r["event"] for r in records]
    assert (
        kinds.count("change_applied") == 1 and "host_finished" in kinds and kinds[-1] == "summary"
    )
    code, out = _redmedic(
        site, capsys, "rollback", records[0]["run_id"], "--yes", "--output", "json"
    )
    assert code == 0, out
    assert conf.read_bytes() == CONF


def test_a_command_printing_50_mb_over_ssh_keeps_memory_bounded(
    ssh_host: Host, ssh_options: ConnectOptions
) -> None:
    with SSHConnection.open(ssh_host, ssh_options) as conn:
        tracemalloc.start()
        try:
            result = conn.run("head -c 50000000 /dev/zero | tr '\\0' x")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.ok
    assert f"[redmedic: {50_000_000 - OUTPUT_CAP} bytes of output cut here" in result.stdout
    assert peak < 5 * OUTPUT_CAP, f"peak {peak / 2**20:.0f} MiB"
