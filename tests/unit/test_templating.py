"""Templates fail loudly on typos and quote shell arguments safely."""

import pytest

from redmedic.errors import TemplateError
from redmedic.model.templating import Templar


def test_undefined_variable_names_variable_step_and_place() -> None:
    with pytest.raises(TemplateError) as err:
        Templar().render(
            {"cmd": "cat {{ redis_cnf }}"}, {"redis_conf": "x"}, where="pb.yaml:7:7", step="Read"
        )
    assert str(err.value).startswith("pb.yaml:7:7: undefined variable 'redis_cnf' in step 'Read'")
    assert "-e NAME=VALUE" in str(err.value)


def test_quote_filter_makes_any_value_one_shell_word() -> None:
    out = Templar().render(
        "grep x {{ path | quote }}", {"path": "/etc/my redis/$(rm -rf).conf"}, where="f", step="s"
    )
    assert out == "grep x '/etc/my redis/$(rm -rf).conf'"


def test_when_expressions_and_their_variables() -> None:
    templar = Templar()
    variables = {"bind_line": {"stdout": "bind 127.0.0.1"}}
    assert templar.evaluate("'127.0.0.1' in bind_line.stdout", variables, where="f", step="s")
    assert templar.undeclared("a.b and c", expression=True) == {"a", "c"}


def test_a_lone_expression_passes_the_value_itself() -> None:
    templar = Templar()
    facts = {"ports": [6379], "active": True}
    assert templar.render("{{ facts }}", {"facts": facts}, where="f", step="s") == facts
    assert templar.render("{{ port + 1 }}", {"port": 6379}, where="f", step="s") == 6380
    assert templar.render("{{ a }}-{{ b }}", {"a": 1, "b": 2}, where="f", step="s") == "1-2"
    with pytest.raises(TemplateError, match="undefined variable 'nope'"):
        templar.render("{{ nope }}", {}, where="f", step="s")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(word, True) for word in ("yes", "on", "true", "1", "True", "YES", "On")],
        *[(word, False) for word in ("no", "off", "false", "0", "False", "NO", "Off")],
        (True, True),
        (False, False),
        (1, True),
        (0, False),
    ],
)
def test_bool_filter_reads_command_line_strings_as_ansible_does(
    value: object, expected: bool
) -> None:
    # Given `-e allow=false` (the string "false"), when a condition tests `allow | bool`,
    # then it is false, as in Ansible; a bare `allow` would be true (a non-empty string).
    assert Templar().evaluate("allow | bool", {"allow": value}, where="f", step="s") is expected


@pytest.mark.parametrize("value", ["ture", "", "y", 2, None, [1]])
def test_bool_filter_refuses_what_is_not_a_boolean_without_showing_it(value: object) -> None:
    with pytest.raises(TemplateError) as err:
        Templar().evaluate("allow | bool", {"allow": value}, where="pb.yaml:3:5", step="Gate")
    message = str(err.value)
    assert message.startswith("pb.yaml:3:5: template error in step 'Gate': bool: ")
    assert "true/false" in message
    assert not isinstance(value, str) or not value or repr(value) not in message
