"""A plan file is applied only as it was written: signed, versioned, strictly typed.

User story: I review a plan at 3 am and someone (or something) edits the file before I
apply it. Whatever they changed — a command, a host name, the salt, an index — `apply` and
`show` refuse the file with one line saying what is wrong and what to do (exit 2, before
any host is contacted), and what `show` prints is the very command `apply` runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.model.plan import CommandChange, change_from_data
from redmedic.safety.planfile import PLAN_VERSION, plan_key, plan_key_path, signature

ADVERSARIAL = Path(__file__).parent.parent / "data" / "adversarial"


def signed_copy(name: str, tmp_path: Path) -> Path:
    """An adversarial plan signed with this user's key: as if written by a buggy redmedic."""
    data = json.loads((ADVERSARIAL / name).read_text())
    data["integrity"] = signature(data, plan_key(create=True))
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    return err


def test_a_command_change_has_no_text_of_its_own_beside_the_command() -> None:
    # Given an old-style record whose display says one thing and whose command another
    record = {"kind": "command", "command": "rm -rf /srv", "display": "systemctl status",
              "become": True, "undo_command": None}  # fmt: skip
    # Then what is shown is what runs, and no display is ever written again
    assert change_from_data(record).describe() == "rm -rf /srv"
    assert "display" not in CommandChange("systemctl start redis").to_data()


def test_the_plan_format_is_versioned_with_this_change() -> None:
    assert PLAN_VERSION == 2


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("plan-wrong-salt.json", "the plan: `salt` must be hex"),
        ("plan-index-string.json", "host 'r1', step 1: `index` must be int"),
        ("plan-change-without-command.json", "host 'r1', step 1, change 1 has no `command`"),
    ],
)
def test_a_malformed_plan_is_one_line_exit_2(
    name: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("apply", "show"):
        err = refused([command, str(signed_copy(name, tmp_path))], capsys)
        assert f"malformed plan file: {says}" in err
        assert len(err.strip().splitlines()) <= 2  # the error and its hint


def test_an_old_plan_version_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(["apply", str(signed_copy("plan-old-version.json", tmp_path))], capsys)
    assert "plan format version 1 is not this redmedic's (2)" in err


@pytest.mark.parametrize("name", sorted(p.name for p in ADVERSARIAL.glob("plan-*.json")))
def test_an_unsigned_or_hand_edited_plan_is_refused(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a plan file nobody's key signed (every adversarial file as it is on disk)
    plan_key(create=True)
    err = refused(["apply", str(ADVERSARIAL / name)], capsys)
    if "version" not in name:
        assert "the plan file was changed after it was made" in err
        assert "never edit a plan by hand" in err


def test_a_plan_made_by_another_user_cannot_be_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert not plan_key_path().exists()
    err = refused(["show", str(ADVERSARIAL / "plan-base.json")], capsys)
    assert "no plan key of this user" in err


def test_show_renders_each_host_step_and_command_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads((ADVERSARIAL / "plan-base.json").read_text())
    change = data["hosts"]["r1"]["steps"][0]["changes"][0]
    change["command"] = "redis-cli -a ⟦redmedic-secret:" + "ab" * 16 + "⟧ ping"
    data["integrity"] = signature(data, plan_key(create=True))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "r1:\n  fix step 1: Start\n    run (as root): redis-cli -a ******** ping\n" in out
    assert "undo: systemctl stop redis-server" in out
    assert "redmedic-secret" not in out


def test_the_plan_key_is_the_users_own_and_a_shared_one_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the key made by the first plan: readable by me only
    key = plan_key(create=True)
    assert len(key) == 32 and plan_key_path().stat().st_mode & 0o777 == 0o600
    assert plan_key() == key
    # When someone makes it readable by others, then no plan it signed is trusted
    plan_key_path().chmod(0o644)
    err = refused(["show", str(ADVERSARIAL / "plan-base.json")], capsys)
    assert "the plan key may be read by other users" in err and "chmod 600" in err
