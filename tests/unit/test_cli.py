"""The CLI's small commands and its error contract: one line, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from redmedic.cli import main

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def test_validate_accepts_the_shipped_playbooks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *map(str, sorted(PLAYBOOKS.glob("*.yaml")))]) == 0
    assert ": ok\n" in capsys.readouterr().out


def test_validate_reports_every_bad_file_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfix:\n  - shel: echo\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml:3:5: unknown step type 'shel'" in err


def test_steps_lists_and_describes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["steps"]) == 0
    assert "file_line" in capsys.readouterr().out
    assert main(["steps", "file_line"]) == 0
    assert "regexp" in capsys.readouterr().out
    assert main(["steps", "file_lin"]) == 2
    assert "did you mean 'file_line'?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "PB", "-i", "missing.yaml", "--check"], "missing.yaml: inventory file not found"),
        (
            ["run", "PB", "-i", "INV", "--check", "-e", "novalue"],
            "-e word 'novalue' is not NAME=VALUE",
        ),
        (["run", "PB", "-i", "INV", "--check", "--limit", "nosuchgroup"], "nosuchgroup"),
        (["run", "PB", "-i", "INV", "--check", "--serial", "0"], "bad --serial value"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    playbook = tmp_path / "pb.yaml"
    playbook.write_text("name: x\nhosts: all\ndiagnose:\n  - shell: 'true'\n")
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("all:\n  hosts:\n    box: {ansible_connection: local}\n")
    argv = [str(playbook) if a == "PB" else str(inventory) if a == "INV" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("redmedic: error: ") and err.count("\n") == 1 and message in err
