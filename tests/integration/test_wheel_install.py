"""`pip install redmedic` brings the shipped playbooks: proven from a wheel in a fresh venv.

User story: given a wheel built from this checkout and installed into a new virtualenv (its
dependencies from the package index pip is set up with, through the usual pip cache), when
I run that venv's `redmedic` from a directory that is not the checkout, then
`redmedic playbooks` lists the shipped playbooks where pip put them, `validate` and `run`
take them by name against a real host (sshd + Redis on loopback, the demo's target), and a
plan made by name is applied — and refused once the installed playbook was edited.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.demo import REPO, DemoTarget, demo_target
from tests.support.loopback import LoginUser

pytestmark = pytest.mark.integration

SHIPPED = sorted(p.stem for p in (REPO / "playbooks").glob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema="
# What a build reads is copied; what earlier builds and tools left in the checkout is not
# (setuptools would put a stale build/lib into the wheel).
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".demo"
)


@dataclass(frozen=True)
class Installed:
    """A fresh virtualenv holding only the wheel and its dependencies."""

    venv: Path
    package: Path  # .../site-packages/redmedic

    def redmedic(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        return subprocess.run(
            [str(self.venv / "bin" / "redmedic"), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def _run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode:
        pytest.fail(f"{' '.join(argv[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def _pip_cache() -> str:
    """The user's pip cache (tests run with an empty HOME): dependencies are not fetched twice."""
    return os.environ.get("PIP_CACHE_DIR") or str(
        Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "pip"
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_SOURCES)
    wheels = root / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--quiet", "-w", str(wheels), str(source)])  # fmt: skip
    (wheel,) = wheels.glob("redmedic-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    env = {**os.environ, "PIP_CACHE_DIR": _pip_cache(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    _run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], env=env)
    location = _run(
        [str(venv / "bin" / "python"), "-c", "import redmedic; print(redmedic.__file__)"],
        cwd=root,
        env=env,
    )
    package = Path(location.strip()).parent
    assert package.is_relative_to(venv), f"redmedic imported from {package}, not the new venv"
    return Installed(venv, package)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory far from the checkout: no playbooks/ beside it."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return cwd


@pytest.fixture
def target(test_user: LoginUser) -> Iterator[DemoTarget]:
    with demo_target() as started:
        yield started


def test_playbooks_lists_the_installed_ones_with_where_they_are(
    installed: Installed, elsewhere: Path
) -> None:
    done = installed.redmedic("playbooks", cwd=elsewhere)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == SHIPPED
    assert lines[-1].startswith(f"(installed in {installed.package / 'playbooks'};")
    assert (installed.package / "playbooks" / "README.md").is_file()


def test_the_installed_playbooks_point_editors_at_the_installed_schema(
    installed: Installed,
) -> None:
    for name in SHIPPED:
        path = installed.package / "playbooks" / f"{name}.yaml"
        first = path.read_text().splitlines()[0]
        assert first.startswith(SCHEMA_LINE), name
        schema = (path.parent / first.removeprefix(SCHEMA_LINE)).resolve()
        assert schema == installed.package / "schema" / "playbook.schema.json"
        assert schema.read_text() == (REPO / "schema" / "playbook.schema.json").read_text()


def test_validate_takes_a_shipped_name(installed: Installed, elsewhere: Path) -> None:
    done = installed.redmedic("validate", "connection-refused", cwd=elsewhere)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{installed.package / 'playbooks' / 'connection-refused.yaml'}: ok\n"
    unknown = installed.redmedic("validate", "conection-refused", cwd=elsewhere)
    assert unknown.returncode == 2 and "did you mean connection-refused?" in unknown.stderr


def test_the_triage_runs_by_name_and_its_plan_applies(
    installed: Installed, elsewhere: Path, target: DemoTarget
) -> None:
    # Given the demo's host (Redis bound to 127.0.0.1 only), when I plan the triage by its
    # name, then it finds `bind` and would change the host. The kernel is this test
    # machine's: its overcommit fix is skipped by tag.
    ssh = ["-i", str(target.inventory), "--known-hosts", str(target.known_hosts),
           "--connect-timeout", "60"]  # fmt: skip
    plan = elsewhere / "plan.json"
    checked = installed.redmedic(
        "run", "connection-refused", *ssh, "--check", "--output", "json",
        "--skip-tags", "overcommit", "--plan-out", str(plan), cwd=elsewhere,
    )  # fmt: skip
    events = [json.loads(line) for line in checked.stdout.splitlines()]
    assert checked.returncode == 0, checked.stderr
    playbook = installed.package / "playbooks" / "connection-refused.yaml"
    assert events[0]["playbook"] == str(playbook)
    assert any(e.get("cause") == "bind" for e in events), events
    assert events[-1]["hosts"]["demo-redis"]["status"] == "would_change"

    # When the installed playbook is edited after the plan, then apply refuses the plan.
    original = playbook.read_text()
    playbook.write_text(original + "# edited after the plan\n")
    try:
        refused = installed.redmedic("apply", str(plan), *ssh, "--yes", cwd=elsewhere)
    finally:
        playbook.write_text(original)
    assert refused.returncode == 2
    assert f"the playbook {playbook} changed since the plan was made" in refused.stderr

    # When I apply the plan as it was made, then Redis answers a client from this machine.
    audit = elsewhere / "audit.jsonl"
    applied = installed.redmedic(
        "apply", str(plan), *ssh, "--yes", "--output", "json", "--audit-log", str(audit),
        cwd=elsewhere,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr
    summary = json.loads(applied.stdout.splitlines()[-1])
    assert summary["hosts"]["demo-redis"]["status"] == "changed"
    client = redis.Redis(
        host=target.host.address, port=target.port, password=target.password, protocol=2
    )
    try:
        assert client.ping() is True
    finally:
        client.close()
