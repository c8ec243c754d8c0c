"""The step reference and the JSON Schema are generated from the code and cannot drift.

A user reading docs/step-types.md, or an editor completing a playbook from
schema/playbook.schema.json, sees exactly the step types and arguments that `validate`
and `run` accept. When a step type changes, these tests say which command regenerates them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from redmedic.authoring.reference import STEP_OPTIONS, playbook_schema, schema_text, step_reference
from redmedic.cli import main
from redmedic.playbook import STEP_KEYS
from redmedic.steps import builtin_step_types, load_step_types

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "playbook.schema.json"
REFERENCE_FILE = ROOT / "docs" / "step-types.md"
SCHEMA_LINE = "# yaml-language-server: $schema="
SHIPPED = sorted(ROOT.glob("playbooks/*.yaml"))


def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text()))


def test_the_committed_step_reference_is_what_the_code_generates() -> None:
    assert REFERENCE_FILE.read_text() == step_reference(builtin_step_types()), (
        "docs/step-types.md is out of date: run "
        "`redmedic steps --markdown > docs/step-types.md` (with no plugins installed)"
    )


def test_the_committed_schema_is_what_the_code_generates() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(builtin_step_types()), (
        "schema/playbook.schema.json is out of date: run "
        "`redmedic schema > schema/playbook.schema.json` (with no plugins installed)"
    )


def test_the_schema_is_valid_draft_7() -> None:
    jsonschema.Draft7Validator.check_schema(playbook_schema(builtin_step_types()))


def test_every_step_type_and_argument_is_described() -> None:
    for name, step_type in builtin_step_types().items():
        assert step_type.summary.strip(), name
        for arg, info in step_type.Args.model_fields.items():
            assert info.description, f"argument '{arg}' of `{name}` has no description"


def test_the_step_options_are_documented() -> None:
    assert tuple(STEP_OPTIONS) == STEP_KEYS


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_playbooks_point_editors_at_the_schema_and_pass_it(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith(SCHEMA_LINE), f"{path.name} must start with {SCHEMA_LINE}..."
    assert (path.parent / first.removeprefix(SCHEMA_LINE)).resolve() == SCHEMA_FILE
    errors = [e.message for e in validator().iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


def schema_errors(text: str) -> list[tuple[list[Any], str]]:
    return [(list(e.path), e.message) for e in validator().iter_errors(yaml.safe_load(text))]


def test_the_schema_accepts_templates_where_values_are_typed() -> None:
    text = """\
name: x
fix:
  - service: {name: "{{ unit }}", state: "{{ wanted }}", enabled: "{{ boot }}"}
    when: [a, b]
    notify: restart
handlers:
  - name: restart
    shell: "true"
"""
    assert schema_errors(text) == []


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name: x\nfix:\n  - shel: echo\n", ["fix", 0]),
        ("name: x\nfix:\n  - shell: echo\n    regster: out\n", ["fix", 0]),
        ("name: x\nfix:\n  - service: {name: r, state: runing}\n", ["fix", 0]),
        ("name: x\ndiagnose:\n  - file_line: {path: /a, line: b}\n", ["diagnose", 0]),
        ("name: x\nhandlers:\n  - shell: echo\n", ["handlers", 0]),
        ("name: x\nhots: all\n", []),
    ],
)
def test_the_schema_flags_what_validate_rejects(text: str, where: list[Any]) -> None:
    assert [path for path, _ in schema_errors(text)] == [where]


def test_the_cli_prints_both_for_the_installed_step_types(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["steps", "--markdown"]) == 0
    assert capsys.readouterr().out == step_reference(load_step_types())
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == playbook_schema(load_step_types())
