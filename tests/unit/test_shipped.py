"""Shipped playbooks by name: `redmedic run connection-refused`, `redmedic playbooks`.

Given redmedic installed as the Makefile installs it (editable), the package data is the
repository's own playbooks/ and schema/; a wheel installed elsewhere is proven in
tests/integration/test_wheel_install.py.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.model.shipped import resolve_playbook, shipped_dir, shipped_playbooks

ROOT = Path(__file__).resolve().parents[2]
REPO_PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yaml"))


def test_the_package_data_is_the_repositorys_playbooks_and_schema() -> None:
    shipped = shipped_playbooks()
    assert [p.name for p in shipped] == [p.stem for p in REPO_PLAYBOOKS]
    for playbook, source in zip(shipped, REPO_PLAYBOOKS, strict=True):
        assert playbook.path.read_text() == source.read_text()
    assert (shipped_dir() / "README.md").read_text() == (ROOT / "playbooks/README.md").read_text()
    schema = resources.files("redmedic").joinpath("schema/playbook.schema.json")
    assert schema.read_text() == (ROOT / "schema/playbook.schema.json").read_text()


def test_a_name_finds_the_shipped_playbook_with_or_without_its_suffix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    expected = str(shipped_dir() / "connection-refused.yaml")
    assert resolve_playbook("connection-refused") == expected
    assert resolve_playbook("connection-refused.yaml") == expected


def test_a_file_always_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("memory.yaml").write_text("name: mine\nhosts: all\n")
    assert resolve_playbook("memory.yaml") == "memory.yaml"
    assert resolve_playbook("memory") == str(shipped_dir() / "memory.yaml")
    assert resolve_playbook("./missing/memory") == "./missing/memory"  # a path stays a path
    Path("firewall").mkdir()  # a directory is no playbook file
    assert resolve_playbook("firewall") == str(shipped_dir() / "firewall.yaml")


def test_validate_takes_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "connection-refused", "memory.yaml"]) == 0
    out = capsys.readouterr().out
    assert f"{shipped_dir() / 'connection-refused.yaml'}: ok" in out
    assert f"{shipped_dir() / 'memory.yaml'}: ok" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "conection-refused", "-i", "inv.yaml"], "did you mean connection-refused?"),
        (["validate", "fire"], "did you mean firewall?"),
        (["run", "nothing-like-it", "-i", "inv.yaml"], "— `redmedic playbooks` lists"),
    ],
)
def test_an_unknown_name_is_one_line_with_close_matches(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert f"no playbook file or shipped playbook named '{argv[1]}'" in err
    assert "`redmedic playbooks` lists the shipped ones" in err


def test_playbooks_lists_each_with_its_description_and_where_they_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["playbooks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [p.stem for p in REPO_PLAYBOOKS]
    triage = next(line for line in lines if line.startswith("connection-refused "))
    assert triage.split(None, 1)[1] == (
        "Diagnose why clients cannot reach Redis, fix the host-side causes, prove PONG."
    )
    assert lines[-1].startswith(f"(installed in {shipped_dir()};")
