"""A user writing a playbook gets one precise line for each mistake, before any host is touched."""

from pathlib import Path

import pytest

from redmedic.errors import PlaybookError, TemplateError
from redmedic.playbook import check_variables, load_playbook
from redmedic.steps import builtin_step_types

REGISTRY = builtin_step_types()
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "pb.yaml"
    path.write_text(text)
    return str(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(PlaybookError) as err:
        load_playbook(write(tmp_path, text), REGISTRY)
    return str(err.value)


def test_the_issue_example_loads_with_every_option(tmp_path: Path) -> None:
    pb = load_playbook(
        write(
            tmp_path,
            """\
name: Fix bind
hosts: redis
vars: {redis_conf: /etc/redis/redis.conf}
diagnose:
  - name: Read bind line
    shell: grep -E '^bind ' {{ redis_conf | quote }}
    register: bind_line
fix:
  - name: Listen on all interfaces
    file_line: {path: "{{ redis_conf }}", regexp: '^bind ', line: 'bind 0.0.0.0 -::*'}
    when: "'127.0.0.1' in bind_line.stdout"
    confirm: true
    notify: restart redis
    tags: [bind]
handlers:
  - name: restart redis
    service: {name: redis-server, state: restarted}
verify:
  - name: Redis answers locally
    shell: redis-cli -p 6379 ping
    expect_stdout: PONG
""",
        ),
        REGISTRY,
    )
    fix = pb.fix[0]
    assert (fix.type, fix.confirm, fix.notify, fix.tags) == (
        "file_line",
        True,
        ("restart redis",),
        {"bind"},
    )
    assert fix.where.endswith("pb.yaml:9:5")
    check_variables(pb, known=set())


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    message = error_of(tmp_path, "name: x\nfix:\n  - name: a\n   shell: b\n")
    assert ":4:" in message and "invalid YAML" in message and " — " in message


def test_unknown_step_type_suggests_the_close_one(tmp_path: Path) -> None:
    message = error_of(tmp_path, "name: x\nfix:\n  - name: a\n    shel: echo\n")
    assert message.endswith(
        "pb.yaml:4:5: unknown step type 'shel' — did you mean 'shell'?; `redmedic steps` lists them"
    )


def test_two_step_types_in_one_step(tmp_path: Path) -> None:
    message = error_of(tmp_path, "name: x\nfix:\n  - name: a\n    shell: echo\n    fail: no\n")
    assert "exactly one step type; found shell, fail" in message and "pb.yaml:5:5" in message


def test_unknown_and_missing_arguments(tmp_path: Path) -> None:
    message = error_of(tmp_path, "name: x\nfix:\n  - file_line: {path: /a, lin: b}\n")
    assert (
        "unknown argument 'lin' for step type `file_line`" in message
        and "did you mean 'line'?" in message
    )
    message = error_of(tmp_path, "name: x\nfix:\n  - service: {state: started}\n")
    assert "`service` needs the argument 'name'" in message and "pb.yaml:3:" in message


def test_bad_argument_value_is_checked_when_not_templated(tmp_path: Path) -> None:
    message = error_of(tmp_path, "name: x\nfix:\n  - service: {name: r, state: runing}\n")
    assert "argument 'state' of `service`" in message


def test_changing_step_types_are_refused_in_diagnose(tmp_path: Path) -> None:
    message = error_of(tmp_path, "name: x\ndiagnose:\n  - file_line: {path: /a, line: b}\n")
    assert "cannot be used in diagnose" in message and "move the step to fix" in message


def test_notify_must_name_a_handler(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        "name: x\nfix:\n  - shell: a\n    notify: restart redsi\n"
        "handlers:\n  - name: restart redis\n    shell: b\n",
    )
    assert "not a handler" in message and "did you mean 'restart redis'?" in message


def test_undefined_variable_is_found_before_any_host_is_contacted(tmp_path: Path) -> None:
    pb = load_playbook(
        write(tmp_path, "name: x\ndiagnose:\n  - name: Read\n    shell: cat {{ redis_cnf }}\n"),
        REGISTRY,
    )
    with pytest.raises(TemplateError) as err:
        check_variables(pb, known={"redis_conf"})
    assert "pb.yaml:3:5: undefined variable 'redis_cnf' in step 'Read'" in str(err.value)


def test_register_used_before_it_is_registered(tmp_path: Path) -> None:
    pb = load_playbook(
        write(
            tmp_path,
            "name: x\ndiagnose:\n  - shell: echo {{ out.stdout }}\n"
            "  - shell: echo\n    register: out\n",
        ),
        REGISTRY,
    )
    with pytest.raises(TemplateError, match="undefined variable 'out'"):
        check_variables(pb, known=set())


def test_every_shipped_playbook_is_valid() -> None:
    shipped = sorted(PLAYBOOKS.glob("*.yaml"))
    assert shipped
    for path in shipped:
        load_playbook(path, REGISTRY)


def test_variables_guarded_by_is_defined_or_default_are_optional(tmp_path: Path) -> None:
    pb = load_playbook(
        write(
            tmp_path,
            """\
name: x
fix:
  - name: Set a password
    file_line: {path: /c, line: "requirepass {{ redis_password }}"}
    when: redis_password is defined
  - name: Restart
    shell: "{{ restart_command | default('systemctl restart redis') }}"
""",
        ),
        REGISTRY,
    )
    check_variables(pb, known=set())
