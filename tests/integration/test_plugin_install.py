"""A third party ships a step type as a package; once pip-installed, playbooks can use it.

Given the example plugin in tests/data/redmedic-example-plugin (the `runtime_dir` step type),
installed into this virtualenv for the session and uninstalled after, then...
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redmedic.steps import load_step_types

pytestmark = pytest.mark.integration

PLUGIN = Path(__file__).resolve().parents[1] / "data" / "redmedic-example-plugin"
REDMEDIC = str(Path(sys.executable).with_name("redmedic"))

PLAYBOOK = """\
name: Runtime directory for the unix socket
hosts: all
fix:
  - name: Create the socket directory
    runtime_dir: {path: "{{ socket_dir }}", mode: "0750"}
verify:
  - name: Redis could bind its socket there
    shell: test -d {{ socket_dir | quote }} && cat {{ verdict | quote }}
    expect_stdout: PONG
"""


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pip-installs the example plugin (from a copy: the build leaves files behind)."""
    source = tmp_path_factory.mktemp("plugin") / PLUGIN.name
    shutil.copytree(PLUGIN, source)
    installed = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(source))
    if installed.returncode:
        pytest.fail(f"pip could not install the example plugin:\n{installed.stderr[-3000:]}")
    importlib.invalidate_caches()
    try:
        yield "redmedic-example-plugin"
    finally:
        _pip("uninstall", "--yes", "redmedic-example-plugin")
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    verdict = tmp_path / "verdict"
    verdict.write_text("PONG\n")
    playbook = tmp_path / "rundir.yaml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  hosts:\n    box:\n      ansible_connection: local\n"
        f"      socket_dir: {tmp_path / 'run' / 'redis'}\n      verdict: {verdict}\n"
    )
    return {"dir": tmp_path, "playbook": playbook, "inventory": inventory, "verdict": verdict}


def redmedic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REDMEDIC, *args], capture_output=True, text=True, timeout=120, check=False
    )


def run(site: dict[str, Path], *flags: str) -> tuple[int, list[dict[str, object]]]:
    done = redmedic(
        "run", str(site["playbook"]), "-i", str(site["inventory"]), "--output", "json", *flags
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def test_the_installed_step_type_is_listed_and_described(example_plugin: str) -> None:
    assert "runtime_dir" in load_step_types()
    listing = redmedic("steps")
    assert listing.returncode == 0 and "runtime_dir" in listing.stdout
    described = redmedic("steps", "runtime_dir")
    assert described.returncode == 0 and "mode" in described.stdout


def test_validate_knows_the_plugin_arguments(example_plugin: str, tmp_path: Path) -> None:
    playbook = tmp_path / "bad.yaml"
    playbook.write_text("name: x\nfix:\n  - runtime_dir: {path: /run/redis, mode: rwx}\n")
    done = redmedic("validate", str(playbook))
    assert done.returncode == 2
    assert "bad.yaml:3:43: argument 'mode' of `runtime_dir`: Value error, 'rwx' is not" in (
        done.stderr
    )


def test_check_plans_apply_creates_and_a_second_run_changes_nothing(
    example_plugin: str, site: dict[str, Path]
) -> None:
    socket_dir = site["dir"] / "run" / "redis"
    code, events = run(site, "--check")
    assert code == 0, events
    assert any(e.get("cause") == "runtime_dir" for e in events)  # its finding is reported
    planned = [e for e in events if e["event"] == "change_planned"]
    assert [p["description"] for p in planned] == [f"mkdir -p -m 0750 {socket_dir}"]
    assert not socket_dir.exists()

    code, events = run(site, "--yes")
    assert code == 0, events
    assert stat.S_IMODE(os.stat(socket_dir).st_mode) == 0o750
    assert events[-1]["hosts"] == {"box": {"status": "changed", "changed": 1, "failed": 0}}

    code, events = run(site, "--yes")
    assert (code, events[-1]["hosts"]) == (0, {"box": {"status": "ok", "changed": 0, "failed": 0}})


def test_a_failed_verify_undoes_the_plugin_change(
    example_plugin: str, site: dict[str, Path]
) -> None:
    site["verdict"].write_text("LOADING\n")
    code, events = run(site, "--yes")
    assert code == 1
    assert not (site["dir"] / "run" / "redis").exists()
    assert any(e["event"] == "rolled_back" for e in events)
