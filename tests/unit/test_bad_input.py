"""Bad input is a one-line error before any host, never a bug report nor a silent yes.

Each adversarial input is a data file under tests/data/adversarial/input-*.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.errors import PlaybookError, TemplateError
from redmedic.model.templating import Templar
from redmedic.model.yamlsource import load_yaml

ADVERSARIAL = Path(__file__).parent.parent / "data" / "adversarial"


def test_an_alias_bomb_is_refused_with_its_place(capsys: pytest.CaptureFixture[str]) -> None:
    """Given a playbook whose aliases expand to 10**10 strings, validate refuses it at once."""
    bomb = ADVERSARIAL / "input-alias-bomb.yaml"
    with pytest.raises(PlaybookError, match="aliases expand to more than 1,000,000 values"):
        load_yaml(bomb, error=PlaybookError)
    assert main(["validate", str(bomb)]) == 2
    err = capsys.readouterr().err
    assert f"{bomb}:10:7: aliases expand" in err
    assert "Traceback" not in err
    # and `run` stops at the same line, before reading any inventory or host
    assert main(["run", str(bomb), "-i", "absent.yaml", "--check"]) == 2
    assert f"{bomb}:10:7: aliases expand" in capsys.readouterr().err


def test_an_alias_may_still_be_shared_a_few_times(tmp_path: Path) -> None:
    """Given ordinary anchors and merge keys, the file loads as before."""
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {port: 6379}\none: {<<: *b}\ntwo: [*b, *b]\n")
    assert load_yaml(path).data["two"] == [{"port": 6379}, {"port": 6379}]


def test_an_alias_into_its_own_value_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(PlaybookError, match="refers to the value that contains it"):
        load_yaml(path, error=PlaybookError)


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{{ 1/0 }}", "ZeroDivisionError"),
        ("x{{ 1/0 }}", "ZeroDivisionError"),
        ("{{ 'x' * 10**9 }}", "more than 100000 items"),
        ("{{ [0] * 10**9 }}", "more than 100000 items"),
        ("{{ 10 ** (10**9) }}", "more than 100000 items"),
        ("{{ range(10**9) | list }}", "Range too big"),
        ("{{ group_names.append('x') }}", "unsafe"),
        ("{{ facts.update(a=1) }}", "unsafe"),
    ],
)
def test_a_template_failing_at_run_time_is_a_template_error_naming_the_step(
    template: str, says: str
) -> None:
    """When a template divides by zero, builds a huge value or mutates a variable, the error
    names the step and its place (the executor makes it a host error, not an "internal error").
    """
    variables = {"group_names": ["redis"], "facts": {}}
    with pytest.raises(TemplateError, match=f"in step 'Edit'.*{says}") as caught:
        Templar().render(template, variables, where="pb.yaml:7:5", step="Edit")
    assert str(caught.value).startswith("pb.yaml:7:5: ")
    assert variables == {"group_names": ["redis"], "facts": {}}


def test_small_repeats_still_work() -> None:
    render = Templar().render
    assert render("{{ '-' * 3 }}{{ 2 ** 10 }}", {}, where="f", step="s") == "---1024"


def test_plan_out_into_a_missing_directory_is_refused_before_any_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given --plan-out into a directory that does not exist, run stops before reading hosts."""
    missing = tmp_path / "no-such-dir" / "plan.json"
    inv = str(tmp_path / "absent.yaml")
    code = main(["run", "connection-refused", "-i", inv, "--check", "--plan-out", f"{missing}"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"the directory {missing.parent} does not exist" in err
    assert "Traceback" not in err


def test_plan_out_onto_a_directory_is_refused_before_any_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = str(tmp_path / "absent.yaml")
    code = main(["run", "connection-refused", "-i", inv, "--check", "--plan-out", f"{tmp_path}"])
    assert code == 2
    assert f"--plan-out: cannot write {tmp_path}" in capsys.readouterr().err


def test_rollback_of_a_log_without_run_started_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = ADVERSARIAL / "input-audit-no-run-started.jsonl"
    code = main(["rollback", "r1", "--audit-log", str(log), "-i", "absent.yaml"])
    assert code == 2
    err = capsys.readouterr().err
    assert "run r1 has no run_started record" in err
    assert "Traceback" not in err


def test_validate_refuses_templates_sure_to_fail_each_at_its_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Given templates that fail whatever the variables, validate lists each with FILE:LINE."""
    playbook = ADVERSARIAL / "input-template-static.yaml"
    assert main(["validate", str(playbook)]) == 2
    err = capsys.readouterr().err
    expected = [
        ("6", "ZeroDivisionError"),
        ("8", "`{% include %}` is not supported"),
        ("10", "`{% import %}` is not supported"),
        ("12", "`{% extends %}` is not supported"),
        ("14", "more than 100000 items"),
        ("16", "attribute '__class__' is not allowed"),
        ("18", "`.append()` is not allowed"),
        ("21", "ZeroDivisionError"),
    ]
    for line, says in expected:
        assert any(f"{playbook}:{line}:" in row and says in row for row in err.splitlines()), says
    assert "Traceback" not in err


def test_validate_refuses_a_bad_regexp_and_mode(capsys: pytest.CaptureFixture[str]) -> None:
    playbook = ADVERSARIAL / "input-file-line-bad-regexp-mode.yaml"
    assert main(["validate", str(playbook)]) == 2
    err = capsys.readouterr().err
    assert f"{playbook}:8:15: argument 'regexp' of `file_line`" in err
    assert "not a valid Python regexp" in err
    assert f"{playbook}:10:13: argument 'mode' of `file_line`" in err


def test_validate_refuses_a_when_that_is_a_quoted_string(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Given `when: "'some string'"`, always true, validate refuses it; a real test passes."""
    playbook = ADVERSARIAL / "input-when-string.yaml"
    assert main(["validate", str(playbook)]) == 2
    rows = capsys.readouterr().err.splitlines()
    assert [row.split(": ")[0] for row in rows] == [f"{playbook}:7:11", f"{playbook}:10:11"]
    assert all("`when:` is a quoted string, so it would always hold" in row for row in rows)


@pytest.mark.parametrize("value", ["false", "off", "some string"])
def test_a_when_that_renders_to_text_fails_without_showing_it(value: str) -> None:
    """When `-e flag=false` reaches `when: flag`, the step fails instead of silently running."""
    with pytest.raises(TemplateError, match="`when:` of step 'Restart' is text") as caught:
        Templar().evaluate("flag", {"flag": value}, where="pb.yaml:9:11", step="Restart")
    assert f"'{value}'" not in str(caught.value)
    assert value not in str(caught.value).replace("true or false", "")
    assert "| bool" in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "holds"),
    [("flag | bool", False), ("unit", True), ("missing_unit", False), ("1 and unit", True)],
)
def test_a_when_of_other_values_counts_as_python_does(expression: str, holds: bool) -> None:
    variables = {"flag": "false", "unit": {"active": "yes"}, "missing_unit": None}
    assert Templar().evaluate(expression, variables, where="f", step="s") is holds


def test_a_when_reading_a_missing_attribute_names_it_and_the_step() -> None:
    """`when: facts.nothing` is an error naming the variable, not an internal error."""
    with pytest.raises(TemplateError, match="in step 'Restart'"):
        Templar().evaluate("facts.nothing", {"facts": {}}, where="pb.yaml:9:11", step="Restart")
