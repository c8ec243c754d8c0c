"""A user starts a playbook with `redmedic new playbook NAME` and gets one that already works.

The scaffold is commented, valid, passes the editor schema, and dry-runs cleanly against a
healthy Redis; and it never overwrites a file the user already has.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from redmedic.cli import main
from redmedic.playbook import validate_playbook
from redmedic.steps import builtin_step_types
from tests.support.redis_server import RedisServer

SCHEMA = Path(__file__).resolve().parents[2] / "schema" / "playbook.schema.json"


def test_new_playbook_is_commented_valid_and_passes_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "playbook", str(tmp_path / "fix-bind")]) == 0
    path = tmp_path / "fix-bind.yaml"
    assert f"created {path}" in capsys.readouterr().out
    text = path.read_text()
    assert text.startswith("# Fix bind: what this playbook fixes")
    for phase in ("diagnose:", "fix:", "handlers:", "verify:"):
        assert f"\n{phase}" in text and f". {phase.rstrip(':')}:" in text  # each is explained
    assert validate_playbook(path, builtin_step_types()) == []
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    assert list(validator.iter_errors(yaml.safe_load(text))) == []


def test_new_playbook_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: my own work\n")
    assert main(["new", "playbook", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists: not overwriting it" in err
    assert mine.read_text() == "name: my own work\n"


def test_the_scaffold_leaves_a_healthy_host_alone(
    tmp_path: Path, redis_on_loopback: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "playbook", str(tmp_path / "start")]) == 0
    conf = tmp_path / "redis.conf"
    conf.write_text("bind 0.0.0.0 -::*\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  hosts:\n    box:\n      ansible_connection: local\n"
        f"      redis_conf: {conf}\n      redis_port: {redis_on_loopback.port}\n"
    )
    capsys.readouterr()
    argv = ["run", str(tmp_path / "start.yaml"), "-i", str(inventory), "--check"]
    assert main([*argv, "--output", "json"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["hosts"] == {"box": {"status": "ok", "changed": 0, "failed": 0}}
