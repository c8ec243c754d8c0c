"""`make demo`: the shipped triage playbook, dry-run against a host without systemd.

User story: given the demo's target — a real sshd on loopback, a login user that needs a
sudo password, and a redis-server started by hand (no systemd) from Debian's redis.conf,
bound to 127.0.0.1 — when I run `make demo`, then it exits 0, names the cause (`bind`)
with its evidence, shows the diffs it would apply (bind, a masked requirepass) and the
restart it would run through `redis_restart_command`, and changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from redmedic.cli import main
from tests.support.demo import REPO, demo_target, run_demo
from tests.support.loopback import (
    PASSWORD_FILE,
    SUDOERS_FILE,
    TEST_USER,
    LoginUser,
    ensure_test_user,
    live_leases,
    release_test_user,
)


def test_make_demo_shows_findings_and_diffs_and_exits_0(
    test_user: LoginUser, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_demo(REPO / "playbooks" / "connection-refused.yaml", keep=False)
    out = capsys.readouterr().out

    assert code == 0, out
    assert "bind" in out and "loopback only" in out
    assert "-bind 127.0.0.1 -::1" in out and "+bind 0.0.0.0 -::*" in out
    assert "+requirepass ********" in out
    assert "CONFIG SET bind 0.0.0.0 -::* on the running Redis" in out  # live: no restart
    assert "(live, no restart)" in out and "--daemonize yes" not in out
    assert "would change" in out
    assert "requirepass demo-" not in out  # the demo's password stays masked


def test_the_triage_fixes_a_host_without_systemd_live(
    test_user: LoginUser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the demo's target (Redis 7 on loopback only, no systemd), when the triage is
    # applied, then bind and requirepass are set in redis.conf and on the running server
    # (no restart: the same process, its inventory's redis_restart_command never runs), and
    # a client from this machine gets PONG at the host's address; a second run changes
    # nothing. The kernel is this test machine's: its overcommit fix is skipped by tag.
    with demo_target() as target:
        pid_before = (target.conf.parent / "redis.pid").read_text().strip()
        argv = ["run", str(REPO / "playbooks" / "connection-refused.yaml"),
                "-i", str(target.inventory), "--known-hosts", str(target.known_hosts),
                "--output", "json", "--yes", "--skip-tags", "overcommit",
                "--audit-log", str(tmp_path / "audit.jsonl")]  # fmt: skip
        first = main(argv)
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        client = redis.Redis(
            host=target.host.address, port=target.port, password=target.password, protocol=2
        )
        try:
            pong = client.ping()
        finally:
            client.close()
        pid_after = (target.conf.parent / "redis.pid").read_text().strip()
        second = main(argv)
        again = json.loads(capsys.readouterr().out.splitlines()[-1])["hosts"]["demo-redis"]

    summary = events[-1]["hosts"]["demo-redis"]
    assert (first, summary["status"]) == (0, "changed"), events[-3:]
    applied = [e["description"] for e in events if e["event"] == "change_applied"]
    assert [a for a in applied if a.startswith("edit ")] == [f"edit {target.conf}"] * 2
    assert not any(a.startswith("p=$(cat ") for a in applied)  # the restart command
    assert pid_after == pid_before
    assert pong is True
    assert (second, again) == (0, {"status": "ok", "changed": 0, "failed": 0})


def _shadow_entry(user: str) -> list[str]:
    for line in Path("/etc/shadow").read_text().splitlines():
        if line.split(":", 1)[0] == user:
            return line.split(":")
    raise AssertionError(f"{user} not in /etc/shadow")


def test_after_the_demo_no_login_of_ours_works() -> None:
    # Given this test process holds no lease on the login user, when `python -m
    # tests.support.demo` runs to its end, then the account's password is locked and the
    # account expired (no password, no key logs in), and neither the sudoers drop-in nor
    # the password file remains -- unless another test run still holds a lease (then the
    # demo's own lease must be gone, and the last run to leave locks the account).
    release_test_user()
    try:
        demo = subprocess.Popen(
            [sys.executable, "-m", "tests.support.demo"], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        output, _ = demo.communicate(timeout=600)
        others = live_leases()
        shadow = _shadow_entry(TEST_USER)
        leftovers = [p for p in (SUDOERS_FILE, PASSWORD_FILE) if p.exists()]
    finally:
        ensure_test_user()  # the rest of this session's tests use the account again

    assert demo.returncode == 0, output[-3000:]
    assert not [lease for lease in others if lease.startswith(f"{demo.pid}-")]
    if not others:
        assert shadow[1].startswith("!"), "password not locked"
        assert shadow[7] == "1", "account not expired"
        assert leftovers == []
