"""The `service` step where PID 1 is not systemd (this very machine): SysV init scripts.

Given a service with an init script in /etc/init.d that is stopped and not started at
boot, when I run a playbook wanting it started and enabled, then `service` and
`update-rc.d` do it, and a second run changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from redmedic.cli import main

NAME = "redmedic-sysv-test"
SCRIPT = Path("/etc/init.d") / NAME
PIDFILE = Path("/run") / f"{NAME}.pid"

INIT_SCRIPT = f"""#!/bin/sh
### BEGIN INIT INFO
# Provides:          {NAME}
# Required-Start:    $remote_fs
# Required-Stop:     $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: redmedic's SysV test service (a sleeping process)
### END INIT INFO
running() {{ [ -f {PIDFILE} ] && kill -0 "$(cat {PIDFILE})" 2>/dev/null; }}
case "$1" in
  start) running || {{ setsid sleep 600 >/dev/null 2>&1 & echo $! > {PIDFILE}; }} ;;
  stop) running && kill "$(cat {PIDFILE})"; rm -f {PIDFILE} ;;
  restart) "$0" stop; "$0" start ;;
  status) running ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
"""

PLAYBOOK = f"""\
name: Start the service
hosts: all
fix:
  - name: Running and started at boot
    service: {{name: {NAME}, state: started, enabled: true}}
"""


@pytest.fixture
def sysv_service() -> Iterator[None]:
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("this machine runs systemd: the SysV path is for hosts without it")
    SCRIPT.write_text(INIT_SCRIPT)
    SCRIPT.chmod(0o755)
    try:
        yield
    finally:
        subprocess.run([str(SCRIPT), "stop"], check=False)
        subprocess.run(["update-rc.d", "-f", NAME, "remove"], check=False, capture_output=True)
        SCRIPT.unlink()


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, object]:
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    (tmp_path / "inv.yaml").write_text("all:\n  hosts:\n    box: {ansible_connection: local}\n")
    code = main(
        [
            "run",
            str(tmp_path / "pb.yaml"),
            "-i",
            str(tmp_path / "inv.yaml"),
            "--output",
            "json",
            *flags,
        ]
    )
    summary: dict[str, object] = json.loads(capsys.readouterr().out.splitlines()[-1])["hosts"][
        "box"
    ]
    summary["exit"] = code
    return summary


def test_a_sysv_service_is_started_and_enabled(
    sysv_service: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, capsys, "--check")["changed"] == 2
    assert not PIDFILE.exists()
    assert run(tmp_path, capsys, "--yes")["status"] == "changed"
    assert subprocess.run([str(SCRIPT), "status"]).returncode == 0
    assert list(Path("/etc/rc2.d").glob(f"S*{NAME}"))
    assert run(tmp_path, capsys, "--yes") == {"status": "ok", "changed": 0, "failed": 0, "exit": 0}
