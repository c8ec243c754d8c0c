"""`-e allow_disable_protected_mode=false` means false in the shipped triage.

User story: given the demo's host (Redis bound to 127.0.0.1, no password, no systemd) and an
inventory without `redis_password`, when I dry-run the triage with
`-e allow_disable_protected_mode=false` — a string on the command line, as in Ansible — then
the host fails in diagnose with "a password is needed" and `protected-mode no` is not
planned; with `-e allow_disable_protected_mode=yes` it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from redmedic.cli import main
from tests.support.demo import REPO, demo_target
from tests.support.loopback import LoginUser

pytestmark = pytest.mark.integration

TRIAGE = str(REPO / "playbooks" / "connection-refused.yaml")


def test_a_false_string_from_the_command_line_keeps_protected_mode_on(
    test_user: LoginUser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with demo_target() as target:
        inventory = tmp_path / "inventory.yaml"
        lines = target.inventory.read_text().splitlines(keepends=True)
        inventory.write_text("".join(ln for ln in lines if "redis_password:" not in ln))

        def dry_run(allow: str) -> tuple[int, list[dict[str, Any]]]:
            code = main(
                ["run", TRIAGE, "-i", str(inventory), "--known-hosts", str(target.known_hosts),
                 "-C", "--output", "json", "-e", f"allow_disable_protected_mode={allow}"]
            )  # fmt: skip
            return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]

        refused_code, refused = dry_run("false")
        allowed_code, allowed = dry_run("yes")

    def diffs(events: list[dict[str, Any]]) -> str:
        return "".join(e["diff"] for e in events if e["event"] == "change_planned")

    finished = next(e for e in refused if e["event"] == "host_finished")
    assert refused_code == 1 and finished["status"] == "failed", refused[-3:]
    assert "has no password, so opening it would hand the data" in finished["message"]
    assert "protected-mode" not in diffs(refused)
    assert allowed_code == 0, allowed[-3:]
    assert "+protected-mode no" in diffs(allowed)
