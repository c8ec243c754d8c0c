"""A user validating a playbook gets every mistake in one run, each as `FILE:LINE:COL: message`.

`run` stops at the first error (it must not start with a broken playbook anyway), but a user
fixing a file wants the whole list at once, without a host, in the order of the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.errors import PlaybookError
from redmedic.model.inventory import load_inventory
from redmedic.playbook import load_playbook, validate_playbook
from redmedic.steps import builtin_step_types

REGISTRY = builtin_step_types()

MANY_MISTAKES = """\
name: Many mistakes
hots: redis
diagnose:
  - name: Read config
    shel: cat /etc/redis/redis.conf
  - name: Uses a result too early
    shell: echo {{ conf.stdout }}
  - name: Read it again
    shell: cat {{ redis_conf }}
    register: conf
fix:
  - name: Bad state
    service: {name: "{{ unit }}", state: runing}
  - name: Typo in an argument
    file_line: {path: /etc/redis/redis.conf, lin: bind 0.0.0.0}
    notify: restart redsi
  - name: Broken condition
    shell: echo hi
    when: conf.stdout ==
  - name: Broken template
    shell: echo {{ oops
    tags: 7
handlers:
  - name: restart redis
    service: {name: redis-server, state: restarted}
"""


def write(tmp_path: Path, text: str, name: str = "pb.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def lines_of(errors: Sequence[object]) -> list[str]:
    return [str(e).split(" — ")[0].split("/")[-1] for e in errors]


def test_every_mistake_is_reported_once_in_file_order(tmp_path: Path) -> None:
    errors = validate_playbook(write(tmp_path, MANY_MISTAKES), REGISTRY)
    assert lines_of(errors) == [
        "pb.yaml:2:1: unknown playbook key 'hots'",
        "pb.yaml:5:5: unknown step type 'shel'",
        "pb.yaml:6:5: undefined variable 'conf' in step 'Uses a result too early'",
        "pb.yaml:13:42: argument 'state' of `service`: Input should be 'started', 'stopped', "
        "'restarted' or 'reloaded'",
        "pb.yaml:15:46: unknown argument 'lin' for step type `file_line`",
        "pb.yaml:16:13: step 'Typo in an argument' notifies 'restart redsi', "
        "which is not a handler",
        "pb.yaml:19:11: `when:` template syntax error: unexpected ')'",
        "pb.yaml:21:12: argument 'cmd': template syntax error: unexpected end of template, "
        "expected 'end of print statement'.",
        "pb.yaml:22:11: `tags:` must be a string or a list of strings",
    ]
    hints = [str(e).partition(" — ")[2] for e in errors]
    assert hints[0].startswith("did you mean 'hosts'?")
    assert hints[1].startswith("did you mean 'shell'?")
    assert hints[4].startswith("did you mean 'line'?")
    assert hints[5] == "did you mean 'restart redis'?"


def test_run_still_stops_at_the_first_error_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError) as err:
        load_playbook(write(tmp_path, MANY_MISTAKES), REGISTRY)
    assert "pb.yaml:2:1: unknown playbook key 'hots'" in str(err.value)


def test_a_valid_playbook_has_no_errors(tmp_path: Path) -> None:
    text = "name: ok\ndiagnose:\n  - shell: cat {{ redis_conf }}\n    register: conf\n"
    assert validate_playbook(write(tmp_path, text), REGISTRY) == []


def test_broken_yaml_is_one_error(tmp_path: Path) -> None:
    errors = validate_playbook(write(tmp_path, "name: x\nfix:\n  - a: b\n   c: d\n"), REGISTRY)
    assert len(errors) == 1 and "invalid YAML" in str(errors[0]) and ":4:" in str(errors[0])


def test_a_misspelt_option_beside_a_step_type_still_checks_the_arguments(tmp_path: Path) -> None:
    text = "name: x\nfix:\n  - shell: {cmd: echo, chdr: /tmp}\n    regster: out\n"
    errors = lines_of(validate_playbook(write(tmp_path, text), REGISTRY))
    assert errors == [
        "pb.yaml:3:24: unknown argument 'chdr' for step type `shell`",
        "pb.yaml:4:5: a step has exactly one step type; found shell, regster",
    ]


def test_templated_values_are_checked_later_but_their_neighbours_now(tmp_path: Path) -> None:
    text = (
        "name: x\nfix:\n"
        "  - service: {name: redis, state: '{{ wanted }}', enabled: maybe}\n"
        "  - file_line: {path: /a, line: b, state: '{{ wanted }}'}\n"
    )
    errors = lines_of(validate_playbook(write(tmp_path, text), REGISTRY))
    assert errors == [
        "pb.yaml:3:60: argument 'enabled' of `service`: Input should be a valid boolean, "
        "unable to interpret input"
    ]


def test_with_an_inventory_each_host_must_provide_what_the_steps_read(tmp_path: Path) -> None:
    playbook = write(
        tmp_path,
        "name: x\nhosts: redis\ndiagnose:\n"
        "  - name: Read\n    shell: cat {{ redis_conf }} {{ extra | default('') }}\n",
    )
    inventory = write(
        tmp_path,
        "all:\n  children:\n    redis:\n      hosts:\n"
        "        r1: {redis_conf: /etc/redis/redis.conf}\n        r2:\n        r3:\n"
        "        r4:\n        r5:\n    other:\n      hosts:\n        o1:\n",
        "inventory.yaml",
    )
    errors = validate_playbook(playbook, REGISTRY, inventory=load_inventory(inventory))
    assert lines_of(errors) == [
        "pb.yaml:4:5: undefined variable 'redis_conf' in step 'Read' for hosts r2, r3, r4 (+1 more)"
    ]
    assert validate_playbook(playbook, REGISTRY) == []  # without one, it may come from there


def test_an_inventory_without_the_playbooks_hosts_is_an_error(tmp_path: Path) -> None:
    playbook = write(tmp_path, "name: x\nhosts: redis\ndiagnose:\n  - shell: 'true'\n")
    inventory = write(tmp_path, "all:\n  hosts:\n    o1:\n", "inventory.yaml")
    errors = validate_playbook(playbook, REGISTRY, inventory=load_inventory(inventory))
    assert len(errors) == 1 and "redis" in str(errors[0])


def test_the_cli_prints_one_line_per_error_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, MANY_MISTAKES)
    good = write(tmp_path, "name: ok\ndiagnose:\n  - shell: 'true'\n", "good.yaml")
    assert main(["validate", bad, good]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 9
    assert all(line.startswith(f"{bad}:") for line in captured.err.splitlines())
    assert captured.out == f"{good}: ok\n"


def test_the_cli_checks_variables_against_an_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    playbook = write(tmp_path, "name: x\ndiagnose:\n  - shell: cat {{ redis_conf }}\n")
    inventory = write(tmp_path, "all:\n  hosts:\n    r1:\n", "inventory.yaml")
    assert main(["validate", playbook]) == 0
    assert main(["validate", "-i", inventory, playbook]) == 2
    assert "undefined variable 'redis_conf' in step 'shell' for host r1" in capsys.readouterr().err


def test_arguments_that_do_not_fit_together_are_caught_before_any_host(tmp_path: Path) -> None:
    # Given a file_line step that wants a line present but names none, and a triage fed a
    # value that is no redis_facts result, when I validate, then both are reported at
    # their step, without contacting a host (before, the run failed on the host).
    text = (
        "name: x\ndiagnose:\n"
        "  - redis_triage: {facts: {rc: 0}}\n"
        "fix:\n"
        "  - file_line: {path: /etc/redis/redis.conf, regexp: '^bind '}\n"
    )
    errors = lines_of(validate_playbook(write(tmp_path, text), REGISTRY))
    assert errors == [
        "pb.yaml:3:27: argument 'facts' of `redis_triage`: Value error, `facts` holds no "
        "redis_facts result",
        "pb.yaml:5:16: argument 'file_line' of `file_line`: Value error, state=present "
        "needs `line`",
    ]
