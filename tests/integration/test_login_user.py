"""The tests' login user works only while a run uses it (tests/support/loopback.py).

User story: given several processes using the login user at once (two test runs, a bench
beside them), when one of them ends -- normally, by SIGTERM, or killed outright -- then the
others keep their login, and when the last one has gone the account is locked and expired
and its sudoers drop-in is removed: nothing of ours is left to log in with.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.loopback import (
    PASSWORD_FILE,
    SUDOERS_FILE,
    TEST_USER,
    LoginUser,
    ensure_test_user,
    live_leases,
    release_test_user,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
#: A process that takes a lease, says so, and waits for its stdin to close.
HOLDER = (
    "import sys; from tests.support.loopback import ensure_test_user; "
    "ensure_test_user(); print('leased', flush=True); sys.stdin.read()"
)


def holder() -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER], cwd=REPO, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline() == "leased\n"
    return process


def shadow_entry() -> list[str]:
    for line in Path("/etc/shadow").read_text().splitlines():
        if line.split(":", 1)[0] == TEST_USER:
            return line.split(":")
    raise AssertionError(f"{TEST_USER} not in /etc/shadow")


def usable() -> bool:
    entry = shadow_entry()
    return not entry[1].startswith("!") and entry[7] == "" and SUDOERS_FILE.exists()


def locked() -> bool:
    entry = shadow_entry()
    return entry[1].startswith("!") and entry[7] == "1" and not SUDOERS_FILE.exists()


def test_the_last_process_to_leave_locks_the_account(test_user: LoginUser) -> None:
    release_test_user()
    processes: list[subprocess.Popen[str]] = []
    try:
        processes += [holder(), holder(), holder()]
        first, interrupted, killed = processes
        assert usable()

        os.kill(interrupted.pid, signal.SIGTERM)  # an interrupted run releases its lease
        assert interrupted.wait(timeout=60) == 128 + signal.SIGTERM
        os.kill(killed.pid, signal.SIGKILL)  # a killed one cannot: its lease goes stale
        killed.wait(timeout=60)
        assert usable()  # the first process still uses it

        assert first.stdin is not None
        first.stdin.close()
        assert first.wait(timeout=60) == 0
        remaining, was_locked, password_left = live_leases(), locked(), PASSWORD_FILE.exists()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=60)
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
        ensure_test_user()  # the rest of this session's tests use the account again

    ours = {str(process.pid) for process in processes}
    assert not [lease for lease in remaining if lease.split("-", 1)[0] in ours]
    if not remaining:  # (another test run beside this one locks it when it ends)
        assert was_locked and not password_left
