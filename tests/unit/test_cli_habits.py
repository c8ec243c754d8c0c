"""Ansible's command-line habits, as someone who knows ansible-playbook types them.

Given a small playbook and an inventory, when I use `--version`, `-e` in its Ansible forms,
`-C`/`-D`, `--list-*`, the connection flags, a misspelt or abbreviated flag, then redmedic
answers as ansible-playbook would (or with a one-line error and the sub-command's usage),
and contacts no host to list what it would do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import paramiko
import pytest

from redmedic.cli import _parser, connection_defaults, main
from redmedic.errors import UsageError
from redmedic.model.extravars import parse_extra_vars
from redmedic.model.inventory import load_inventory

PLAYBOOK = """\
name: Look and fix
hosts: redis
diagnose:
  - name: Look
    shell: 'true'
fix:
  - name: Fix bind
    tags: [bind, net]
    shell: 'true'
  - name: Fix firewall
    tags: [firewall]
    shell: 'true'
handlers:
  - name: restart
    shell: 'true'
verify:
  - name: Ping
    shell: 'true'
"""

# Addresses nobody answers on: listing must not try them.
INVENTORY = """\
all:
  children:
    redis:
      hosts:
        r1: {ansible_host: r1.invalid}
        r2: {ansible_host: r2.invalid, ansible_user: admin}
    other:
      hosts:
        o1: {ansible_host: o1.invalid}
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(INVENTORY)
    return str(playbook), str(inventory)


def test_version_names_redmedic_python_and_paramiko(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    lines = capsys.readouterr().out.splitlines()
    assert done.value.code == 0
    assert lines[0] == f"redmedic {version('redmedic')}"
    assert lines[1].startswith("  python version = 3.")
    assert lines[2] == f"  paramiko version = {paramiko.__version__}"


# -- -e -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["a=1 b=2"], {"a": "1", "b": "2"}),  # one argument, several words; strings
        (['redis_bind="10.0.0.11 127.0.0.1"'], {"redis_bind": "10.0.0.11 127.0.0.1"}),
        (["flag=false"], {"flag": "false"}),  # a string: playbooks test it with | bool
        (["empty="], {"empty": ""}),
        (['{"a": 1, "b": [true, null]}'], {"a": 1, "b": [True, None]}),  # JSON keeps types
        (["{a: 1, b: [x, y], c: no}"], {"a": 1, "b": ["x", "y"], "c": False}),  # YAML flow
        (["a=1", "a=2 b=3", '{"b": 4}'], {"a": "2", "b": 4}),  # in order, later wins
        ([""], {}),
    ],
)
def test_extra_vars_take_ansibles_forms(items: list[str], expected: dict[str, object]) -> None:
    assert parse_extra_vars(items) == expected


def test_extra_vars_files_may_be_yaml_or_json_and_replace_whole_keys(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("ports: [6379, 6380]\nallow: true\n")
    (tmp_path / "b.json").write_text('{"ports": [7000]}')
    got = parse_extra_vars([f"@{tmp_path / 'a.yaml'}", f"@{tmp_path / 'b.json'}"])
    assert got == {"ports": [7000], "allow": True}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("novalue", "-e #1: -e word 'novalue' is not NAME=VALUE"),
        ("a=1 2x=s3cr3t", "-e #1: -e NAME=VALUE needs a variable name before '='"),
        ("a='s3cr3t", "-e #1: cannot split -e into words: No closing quotation"),
        ("[1, 2]", "-e #1: -e needs a mapping of variables, not a list"),
        ('{"pw": "s3cr3t"', "-e #1:2:1: invalid YAML: did not find expected ',' or '}'"),
        ("./vars.yaml", "looks like a file name — prepend @ to load it: -e @./vars.yaml"),
    ],
)
def test_bad_extra_vars_are_one_line_and_never_echo_a_value(item: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_extra_vars([item])
    text = str(caught.value)
    assert message in text and "\n" not in text and "s3cr3t" not in text


# -- listing ------------------------------------------------------------------------------


def test_list_hosts_tasks_and_tags_read_like_ansible_playbook(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    playbook, inventory = files
    argv = ["run", playbook, "-i", inventory, "--list-hosts", "--list-tasks", "--list-tags"]
    assert main([*argv, "-l", "r1,o1", "--skip-tags", "firewall"]) == 0
    assert capsys.readouterr().out == (
        f"\nplaybook: {playbook}\n\n"
        "  play #1 (redis): Look and fix\tTAGS: []\n"
        "    pattern: ['redis']\n"
        "    hosts (1):\n"
        "      r1\n"
        "    diagnose:\n"
        "      Look\tTAGS: []\n"
        "    fix:\n"
        "      Fix bind\tTAGS: [bind, net]\n"
        "    handlers:\n"
        "      restart\tTAGS: []\n"
        "    verify:\n"
        "      Ping\tTAGS: []\n"
        "      TASK TAGS: [bind, net]\n"
    )


def test_each_list_flag_alone(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    playbook, inventory = files
    assert main(["run", playbook, "-i", inventory, "--list-hosts", "-k", "-K"]) == 0
    out = capsys.readouterr().out  # -k/-K ask nothing: no host will be contacted
    assert "    hosts (2):\n      r1\n      r2\n" in out and "diagnose:" not in out
    assert main(["run", playbook, "-i", inventory, "--list-tags", "-t", "firewall"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("TAGS: []\n      TASK TAGS: [firewall]\n") and "hosts (" not in out


# -- -C, -D, -v ---------------------------------------------------------------------------


def test_short_check_and_diff_flags_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "touched"
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(f"name: x\nhosts: all\nfix:\n  - name: Touch\n    shell: touch {marker}\n")
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("all:\n  hosts:\n    box: {ansible_connection: local}\n")
    code = main(["run", str(playbook), "-i", str(inventory), "-C", "-D", "--output", "json"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and not marker.exists()
    assert [e["event"] for e in events if e["event"] == "change_planned"] == ["change_planned"]


# -- connection flags ---------------------------------------------------------------------


def test_connection_flags_rank_below_every_inventory_variable(tmp_path: Path) -> None:
    # Given r2 sets ansible_user in the inventory, when I pass -u ops -b --become-user redis,
    # then r1 takes all of them and r2 keeps its own user, as in Ansible. -b is no inventory
    # variable: the playbook's `become:` keywords beat it (RunOptions.become, the fallback).
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(INVENTORY)
    args = _parser().parse_args(
        ["run", "pb", "-i", "x", "-u", "ops", "--key-file", "/k", "-b", "--become-user", "redis"]
    )
    loaded = load_inventory(inventory, ssh_config=None, defaults=connection_defaults(args))
    r1, r2 = loaded.host("r1"), loaded.host("r2")
    assert (r1.user, r1.private_key_file, r1.become, r1.become_user) == ("ops", "/k", None, "redis")
    assert args.become is True
    assert (r2.user, r2.private_key_file) == ("admin", "/k")


def test_asking_for_a_password_without_a_terminal_is_a_usage_error(
    files: tuple[str, str],
) -> None:
    # Given no terminal (cron, CI), when I pass -k, then redmedic says so in one line and
    # exits 2 instead of reading the password from stdin with echo on.
    playbook, inventory = files
    for flag in ("-k", "-K"):
        done = subprocess.run(
            [sys.executable, "-m", "redmedic.cli", "run", playbook, "-i", inventory, flag],
            input="s3cr3t\n",
            capture_output=True,
            text=True,
            start_new_session=True,  # no controlling terminal
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("redmedic: error: ") and done.stderr.count("\n") == 1
        assert "needs a terminal to ask for the password" in done.stderr


# -- bad flags ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["run", "PB", "-i", "INV"], "--lim"),  # an abbreviation of --limit
        (["run", "PB", "-i", "INV"], "--chek"),
        (["apply", "plan.json"], "--confirm"),  # of --confirm-each
        (["rollback", "RUN", "-i", "INV"], "--for"),  # of --forks
        (["validate", "PB"], "--inv"),  # of --inventory
        (["steps"], "--mark"),  # of --markdown
    ],
)
def test_an_unknown_or_abbreviated_flag_shows_that_commands_usage(
    command: list[str],
    flag: str,
    files: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    playbook, inventory = files
    argv = [playbook if a == "PB" else inventory if a == "INV" else a for a in command]
    with pytest.raises(SystemExit) as done:
        main([*argv, f"{flag}=s3cr3t"])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert err.startswith(f"usage: redmedic {command[0]} ")
    assert f"redmedic {command[0]}: error: unrecognized arguments: {flag}\n" in err
    assert "s3cr3t" not in err


def test_a_stray_word_is_counted_not_echoed(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # `-k` takes no value: a password typed after it must not be printed back.
    playbook, inventory = files
    with pytest.raises(SystemExit):
        main(["run", playbook, "-i", inventory, "-k", "s3cr3t"])
    err = capsys.readouterr().err
    assert "1 unexpected word(s)" in err and "s3cr3t" not in err
