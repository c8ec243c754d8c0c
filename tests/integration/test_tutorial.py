"""The playbooks of docs/writing-playbooks.md work as the tutorial says they do.

Given a host reached with `ansible_connection: local`, a redis.conf that binds to loopback
only, and a real redis-server on loopback, when I run the tutorial's playbooks, then...
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from redmedic.cli import main
from redmedic.playbook import validate_playbook
from redmedic.steps import builtin_step_types
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial"
GUIDE = ROOT / "docs" / "writing-playbooks.md"
BROKEN = "# redis\nbind 127.0.0.1 -::1\nprotected-mode yes\n"
PASSWORD = "tutorial-s3cret"


@pytest.fixture
def site(tmp_path: Path, redis_on_loopback: RedisServer) -> dict[str, object]:
    conf = tmp_path / "redis.conf"
    conf.write_text(BROKEN)
    return {
        "ansible_connection": "local",
        "redis_conf": str(conf),
        "redis_port": redis_on_loopback.port,
        "redis_restart_command": f"echo restarted >> {tmp_path / 'restarts'}",
    }


def run(
    name: str, host_vars: dict[str, object], tmp_path: Path, *flags: str
) -> tuple[int, list[dict[str, object]], str]:
    inventory = tmp_path / "inventory.yaml"
    hosts = {"box": host_vars}
    inventory.write_text(yaml.safe_dump({"all": {"children": {"redis": {"hosts": hosts}}}}))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(TUTORIAL / name), "-i", str(inventory), "--output", "json", *flags])
    text = out.getvalue()
    return code, [json.loads(line) for line in text.splitlines()], text


def summary(events: list[dict[str, object]]) -> object:
    return events[-1]["hosts"]["box"]  # type: ignore[index]


@pytest.mark.parametrize("path", sorted(TUTORIAL.glob("*.yaml")), ids=lambda p: p.name)
def test_each_tutorial_playbook_validates_passes_the_schema_and_is_in_the_guide(
    path: Path,
) -> None:
    assert validate_playbook(path, builtin_step_types()) == []
    schema = json.loads((ROOT / "schema" / "playbook.schema.json").read_text())
    data = yaml.safe_load(path.read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(data)) == []
    assert f"docs/tutorial/{path.name}" in GUIDE.read_text()


def test_step_1_looks_and_names_the_loopback_bind(site: dict[str, object], tmp_path: Path) -> None:
    code, events, _ = run("look.yaml", site, tmp_path, "--check")
    assert code == 1
    finished = next(e for e in events if e["event"] == "host_finished")
    assert "Redis listens on loopback only (bind 127.0.0.1 -::1; protected-mode yes)" in str(
        finished["message"]
    )
    assert Path(str(site["redis_conf"])).read_text() == BROKEN


def test_check_shows_the_diff_and_apply_fixes_restarts_once_and_verifies(
    site: dict[str, object], tmp_path: Path
) -> None:
    code, events, _ = run("fix-bind.yaml", site, tmp_path, "--check")
    assert (code, summary(events)) == (0, {"status": "would_change", "changed": 2, "failed": 0})
    diff = next(str(e["diff"]) for e in events if e["event"] == "change_planned")
    assert "-bind 127.0.0.1 -::1\n+bind 0.0.0.0 -::*\n" in diff

    code, events, _ = run("fix-bind.yaml", site, tmp_path, "--yes")
    assert (code, summary(events)) == (0, {"status": "changed", "changed": 2, "failed": 0})
    assert "bind 0.0.0.0 -::*\n" in Path(str(site["redis_conf"])).read_text()
    assert (tmp_path / "restarts").read_text() == "restarted\n"


def test_skip_tags_leaves_the_tagged_fix_out(site: dict[str, object], tmp_path: Path) -> None:
    code, events, _ = run("fix-bind.yaml", site, tmp_path, "--check", "--skip-tags", "bind")
    assert (code, summary(events)) == (0, {"status": "ok", "changed": 0, "failed": 0})


def test_the_password_fix_never_shows_the_password(
    site: dict[str, object], tmp_path: Path, redis_on_loopback: RedisServer
) -> None:
    port = redis_on_loopback.port
    host_vars = {
        **site,
        "redis_password": PASSWORD,
        # The "restart" makes the running server require what the file now says.
        "redis_restart_command": f"redis-cli -p {port} CONFIG SET requirepass {PASSWORD}",
    }
    code, events, text = run("fix-bind.yaml", host_vars, tmp_path, "--yes", "--tags", "auth")
    assert (code, summary(events)) == (0, {"status": "changed", "changed": 2, "failed": 0})
    assert f"requirepass {PASSWORD}\n" in Path(str(site["redis_conf"])).read_text()
    assert PASSWORD not in text and "requirepass ********" in text


def test_every_yaml_excerpt_in_the_guide_is_taken_from_a_tested_playbook() -> None:
    """Excerpts cannot drift: each of their lines is in a tutorial, example or shipped
    playbook (all three are run by the tests)."""
    sources = [
        *TUTORIAL.glob("*.yaml"),
        *(ROOT / "examples").glob("*.yaml"),
        *(ROOT / "playbooks").glob("*.yaml"),
    ]
    known = {line.strip() for path in sources for line in path.read_text().splitlines()}
    blocks = GUIDE.read_text().split("```yaml\n")[1:]
    assert blocks
    for block in blocks:
        for line in block.split("```")[0].splitlines():
            assert line.strip() in known, f"guide excerpt line not in any playbook: {line!r}"
