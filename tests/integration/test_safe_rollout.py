"""Safe rollout on real files (`ansible_connection: local`): reviewed plans, audit, rollback.

Given redis.conf files that bind to loopback only and a password to set, when I plan, review,
apply, and later roll back, then exactly the reviewed bytes are written, drift is refused,
every change is in the audit log without a secret, and rollback restores the originals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redmedic.cli import main

PASSWORD = "S3cret-Redis-pw-9Z"
BROKEN = "# redis\nbind 127.0.0.1 -::1\n# requirepass foobared\nport 6379\n"
FIXED = (
    "# redis\nbind 0.0.0.0 -::*\n# requirepass foobared\n"
    "requirepass S3cret-Redis-pw-9Z\nport 6379\n"
)

PLAYBOOK = """\
name: Open redis to clients with a password
hosts: all
fix:
  - name: Listen on all interfaces
    file_line: {path: "{{ redis_conf }}", regexp: '^bind ', line: 'bind 0.0.0.0 -::*'}
    notify: restart redis
  - name: Require a password
    file_line:
      path: "{{ redis_conf }}"
      regexp: '^requirepass '
      line: "requirepass {{ redis_password }}"
      insertafter: '^# requirepass'
    notify: restart redis
  - name: Slow step
    shell: "sleep {{ pause | default(0) }}"
handlers:
  - name: restart redis
    shell: echo restarted >> {{ redis_conf | quote }}.restarts
verify:
  - name: Config has the password
    shell: grep -c '^requirepass ' {{ redis_conf | quote }}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    hosts = ""
    for name in ("r1", "r2"):
        conf = tmp_path / name / "redis.conf"
        conf.parent.mkdir()
        conf.write_text(BROKEN)
        hosts += f"    {name}: {{ansible_connection: local, redis_conf: {conf}}}\n"
    (tmp_path / "inv.yaml").write_text(
        f"all:\n  vars:\n    redis_password: {PASSWORD}\n  hosts:\n{hosts}"
    )
    return tmp_path


def cli(
    site: Path, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[dict[str, object]], str]:
    code = main([*argv, "--output", "json", "--audit-log", str(site / "audit.jsonl")])
    out = capsys.readouterr()
    assert code != 2, out.err
    return code, [json.loads(line) for line in out.out.splitlines()], out.out + out.err


def plan(site: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    code, _, text = cli(
        site,
        capsys,
        "run",
        str(site / "pb.yaml"),
        "-i",
        str(site / "inv.yaml"),
        "--check",
        "--plan-out",
        str(site / "plan.json"),
    )
    assert code == 0
    return site / "plan.json", text


def conf(site: Path, host: str) -> Path:
    return site / host / "redis.conf"


def test_the_reviewed_plan_is_applied_exactly_and_shows_no_secret(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_file, text = plan(site, capsys)
    assert PASSWORD not in text
    saved = plan_file.read_text()
    assert PASSWORD not in saved and "requirepass ********" in saved
    assert oct(plan_file.stat().st_mode & 0o777) == "0o600"
    assert conf(site, "r1").read_text() == BROKEN
    # `show` renders each host's steps as apply runs them: the diff, the password masked
    assert main(["show", str(plan_file)]) == 0
    shown = capsys.readouterr().out
    assert "r1:\n  fix step 1: " in shown and f"write: {conf(site, 'r1')}" in shown
    assert "+requirepass ********" in shown and PASSWORD not in shown

    code, events, text = cli(site, capsys, "apply", str(plan_file), "--yes")
    assert code == 0, events
    assert PASSWORD not in text
    for host in ("r1", "r2"):
        assert conf(site, host).read_text() == FIXED
        assert Path(f"{conf(site, host)}.restarts").read_text() == "restarted\n"
    assert PASSWORD not in (site / "audit.jsonl").read_text()


def test_a_host_edited_by_hand_after_the_plan_is_refused_and_the_others_applied(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_file, _ = plan(site, capsys)
    conf(site, "r2").write_text(BROKEN + "maxclients 100\n")
    code, events, _ = cli(site, capsys, "apply", str(plan_file), "--yes")
    assert code == 1
    summary = events[-1]["hosts"]
    assert summary["r1"]["status"] == "changed"  # type: ignore[index]
    assert summary["r2"]["status"] == "failed"  # type: ignore[index]
    message = next(
        e["message"] for e in events if e["event"] == "host_finished" and e["host"] == "r2"
    )
    assert "changed since the plan was made" in str(message)
    assert conf(site, "r2").read_text() == BROKEN + "maxclients 100\n"


def test_an_edited_playbook_voids_the_plan(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_file, _ = plan(site, capsys)
    (site / "pb.yaml").write_text(PLAYBOOK.replace("0.0.0.0", "10.0.0.1"))
    assert main(["apply", str(plan_file), "--yes"]) == 2
    assert "changed since the plan was made" in capsys.readouterr().err
    assert conf(site, "r1").read_text() == BROKEN


def test_rollback_of_a_run_restores_every_file_and_reruns_handlers(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, events, _ = cli(
        site, capsys, "run", str(site / "pb.yaml"), "-i", str(site / "inv.yaml"), "--yes"
    )
    assert code == 0
    run_id = str(events[0]["run_id"])
    audit = [json.loads(line) for line in (site / "audit.jsonl").read_text().splitlines()]
    applied = [r for r in audit if r["event"] == "change_applied"]
    assert {r["run_id"] for r in audit} == {run_id}
    assert all(r["user"] and r["playbook_sha256"] and r["ts"] for r in applied)
    assert any("+requirepass ********" in r["diff"] for r in applied)

    code, events, text = cli(
        site, capsys, "rollback", run_id, "-i", str(site / "inv.yaml"), "--yes"
    )
    # The files are back and the handlers ran again, but the run's `sleep 0` has no undo:
    # the rollback says so and does not claim success (exit 1).
    assert code == 1, events
    assert [e["cannot_undo"] for e in events if e["event"] == "rolled_back"] == [["sleep 0"]] * 2
    assert PASSWORD not in text
    for host in ("r1", "r2"):
        assert conf(site, host).read_text() == BROKEN
        assert Path(f"{conf(site, host)}.restarts").read_text() == "restarted\nrestarted\n"
    code, events, _ = cli(site, capsys, "rollback", run_id, "-i", str(site / "inv.yaml"), "--yes")
    # Only what cannot be undone is left: named again, nothing run, no restart.
    assert code == 1 and "sleep 0: cannot be undone" in str(events[-2]["message"])
    assert Path(f"{conf(site, 'r1')}.restarts").read_text() == "restarted\nrestarted\n"


def test_rollback_leaves_a_file_changed_since_the_run_alone(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, events, _ = cli(
        site, capsys, "run", str(site / "pb.yaml"), "-i", str(site / "inv.yaml"), "--yes"
    )
    run_id = str(events[0]["run_id"])
    conf(site, "r1").write_text("edited by hand\n")
    code, events, _ = cli(site, capsys, "rollback", run_id, "-i", str(site / "inv.yaml"), "--yes")
    assert code == 1
    assert conf(site, "r1").read_text() == "edited by hand\n"
    assert conf(site, "r2").read_text() == BROKEN


def test_ctrl_c_mid_apply_marks_hosts_interrupted_and_says_how_to_roll_back(site: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "redmedic.cli",
        "run",
        str(site / "pb.yaml"),
        "-i",
        str(site / "inv.yaml"),
        "--yes",
        "--output",
        "json",
        "-e",
        "pause=8",
        "--audit-log",
        str(site / "audit.jsonl"),
    ]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 20
    while conf(site, "r1").read_text() != FIXED or conf(site, "r2").read_text() != FIXED:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    summary = json.loads(out.splitlines()[-1])["hosts"]
    assert {r["status"] for r in summary.values()} == {"interrupted"}
    for host in ("r1", "r2"):
        assert conf(site, host).read_text() == FIXED  # whole files: atomic writes
    finished = [json.loads(line) for line in out.splitlines() if '"host_finished"' in line]
    assert all("redmedic rollback " in f["message"] for f in finished)
    audit = (site / "audit.jsonl").read_text()
    assert '"status": "interrupted"' in audit


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A tiny tmpfs holding a redis.conf and a filler that leaves no room for a new copy."""
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        (mount / "redis.conf").write_text(BROKEN)
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"x" * 512):
                pass
        except OSError:
            pass  # the disk is full: that is the point
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_fails_the_host_and_leaves_the_file_whole(
    site: Path, full_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "inv.yaml").write_text(
        "all:\n  hosts:\n"
        f"    r1: {{ansible_connection: local, redis_conf: {full_disk / 'redis.conf'}, "
        f"redis_password: {PASSWORD}}}\n"
    )
    code, events, text = cli(
        site, capsys, "run", str(site / "pb.yaml"), "-i", str(site / "inv.yaml"), "--yes"
    )
    assert code == 1
    assert "cannot write" in str(events[-2]["message"]) and PASSWORD not in text
    assert (full_disk / "redis.conf").read_text() == BROKEN
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "redis.conf"]


def test_a_failed_verify_undoes_only_files_that_still_hold_what_the_run_wrote(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a handler that edits the file after the run wrote it, and a verify that fails,
    playbook = site / "touch.yaml"
    playbook.write_text(
        PLAYBOOK.replace(
            "echo restarted >> {{ redis_conf | quote }}.restarts",
            "echo '# touched by the service' >> {{ redis_conf | quote }}",
        ).replace("grep -c '^requirepass '", "grep -c '^never-there '")
    )
    # when I run it, then the host fails and its rollback leaves that file as it found it.
    code, events, text = cli(site, capsys, "run", str(playbook), "-i", str(site / "inv.yaml"),
                             "--yes", "-l", "r1")  # fmt: skip
    assert code == 1
    (rolled,) = [e for e in events if e["event"] == "rolled_back"]
    assert rolled["undone"] == [] and len(rolled["errors"]) == 2  # both file edits
    assert rolled["cannot_undo"] == ["sleep 0"]  # never claimed as undone
    assert all("changed since the run; left as it is" in str(e) for e in rolled["errors"])
    assert conf(site, "r1").read_text().startswith(FIXED + "# touched by the service\n")
    assert PASSWORD not in text
