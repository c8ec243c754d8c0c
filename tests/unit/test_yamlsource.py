"""yamlsource: YAML files become plain values that can still say where each part was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from redmedic.errors import InputError, PlaybookError
from redmedic.model.yamlsource import load_yaml, parse_yaml

PLAYBOOK = """\
name: triage
hosts: redis
vars:
  port: 6379
steps:
  - name: probe
    redis_probe: {timeout: 2}
  - name: fix bind
    redis_config:
      bind: 0.0.0.0
"""


def write(tmp_path: Path, text: str, name: str = "file.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_loader_gets_plain_values_and_positions_for_any_key_path(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, PLAYBOOK, "pb.yaml"))

    assert doc.data["steps"][1]["redis_config"] == {"bind": "0.0.0.0"}
    assert type(doc.data) is dict and type(doc.data["steps"]) is list
    assert doc.source == str(tmp_path / "pb.yaml")
    src = doc.source
    assert doc.where("vars", "port") == f"{src}:4:9"
    assert doc.where_key("vars", "port") == f"{src}:4:3"
    assert doc.where("steps", 1) == f"{src}:8:5"  # a list item: its first key
    assert doc.where("steps", 0, "redis_probe", "timeout") == f"{src}:7:28"
    assert doc.where("steps", 1, "redis_config", "bind") == f"{src}:10:13"
    assert doc.where() == f"{src}:1:1"


def test_a_path_that_does_not_exist_points_at_its_nearest_parent() -> None:
    # A pydantic "field required" loc names a key that is not there: point at its mapping.
    doc = parse_yaml(PLAYBOOK, "pb.yaml")

    assert doc.where("steps", 1, "redis_config", "missing") == "pb.yaml:10:7"
    assert doc.where("steps", 7, "name") == "pb.yaml:6:3"
    assert doc.where("name", "deeper") == "pb.yaml:1:7"
    assert doc.where("nope") == "pb.yaml:1:1"
    assert doc.where_key("nope") == "pb.yaml:1:1"


def test_an_empty_file_is_none_and_locates_to_the_file_name() -> None:
    doc = parse_yaml("# only a comment\n", "empty.yaml")

    assert doc.data is None
    assert doc.where("anything") == "empty.yaml"


def test_merge_keys_and_anchors_work_and_point_where_the_value_was_written() -> None:
    doc = parse_yaml(
        "defaults: &d\n  port: 6379\n  user: redis\nprimary:\n  <<: *d\n  port: 7000\n", "m.yaml"
    )

    assert doc.data["primary"] == {"port": 7000, "user": "redis"}
    assert doc.where("primary", "port") == "m.yaml:6:9"  # the override, not the default
    assert doc.where("primary", "user") == "m.yaml:3:9"  # inherited: where the anchor says it


def test_integer_keys_are_found_by_integer_path() -> None:
    doc = parse_yaml("ports:\n  6379: main\n  '6380': quoted\n", "k.yaml")

    assert doc.where("ports", 6379) == "k.yaml:2:9"
    assert doc.where("ports", "6380") == "k.yaml:3:11"


def test_a_repeated_key_is_an_error_naming_both_lines() -> None:
    with pytest.raises(PlaybookError) as err:
        parse_yaml(
            "name: a\nvars:\n  port: 1\n  user: x\n  port: 2\n", "d.yaml", error=PlaybookError
        )

    assert err.value.where == "d.yaml:5:3"
    assert "duplicate key 'port'" in err.value.message
    assert "line 3" in err.value.message and "line 5" in err.value.message
    assert err.value.hint


def test_the_first_repeated_key_in_the_file_is_the_one_reported() -> None:
    text = "a:\n  x: 1\n  x: 2\nb: 1\nb: 2\n"

    with pytest.raises(InputError) as err:
        parse_yaml(text, "d.yaml")

    assert err.value.where == "d.yaml:3:3"


def test_a_merge_key_overridden_locally_is_not_a_duplicate() -> None:
    doc = parse_yaml("d: &d {a: 1}\ne:\n  <<: *d\n  a: 2\n", "ok.yaml")

    assert doc.data["e"] == {"a": 2}


@pytest.mark.parametrize(
    ("text", "where", "hint_word"),
    [
        ("a: [1, 2\nb: 3\n", "y.yaml:2:2", "indentation"),
        ("a:\n\tb: 1\n", "y.yaml:2:1", "tabs"),
        ("a: 1\n---\nb: 2\n", "y.yaml:2:1", "one document"),
        ("a: !!python/object/apply:os.system [ls]\n", "y.yaml:1:4", "tag"),
        ("a: *nowhere\n", "y.yaml:1:4", "indentation"),
        ("a: 'open\n", "y.yaml:2:1", "quoting"),
    ],
)
def test_malformed_yaml_reports_file_line_col_and_a_hint(
    text: str, where: str, hint_word: str
) -> None:
    with pytest.raises(InputError) as err:
        parse_yaml(text, "y.yaml")

    assert err.value.where == where
    assert err.value.message.startswith("invalid YAML: ")
    assert err.value.hint is not None and hint_word in err.value.hint
    assert str(err.value).startswith(f"{where}: invalid YAML: ")


def test_the_callers_error_class_is_raised(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError) as err:
        load_yaml(tmp_path / "missing.yaml", error=PlaybookError)

    assert err.value.where == str(tmp_path / "missing.yaml")
    assert err.value.message == "file not found"


def test_unreadable_inputs_are_reported_not_raised_as_os_errors(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")

    with pytest.raises(InputError, match="not UTF-8") as err:
        load_yaml(tmp_path / "latin1.yaml")
    assert err.value.hint == "save the file as UTF-8"

    with pytest.raises(InputError, match="is a directory"):
        load_yaml(tmp_path)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbfname: x\n")

    assert load_yaml(tmp_path / "bom.yaml").data == {"name": "x"}
