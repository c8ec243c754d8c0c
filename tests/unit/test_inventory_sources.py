"""An existing Ansible fleet's inventory, as its users wrote it: INI, scripts, directories,
group_vars, several -i. What Ansible reads, redmedic reads (the differential test proves the
values); what Ansible rejects is one line naming FILE:LINE and what to write instead."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.errors import InventoryError
from redmedic.model.inventory import Inventory, load_inventory
from redmedic.model.vault import open_vault
from redmedic.playbook import load_playbook
from redmedic.run.executor import HostRun, RunOptions
from redmedic.run.gate import Gate
from redmedic.steps import builtin_step_types


def write(path: Path, text: str, *, mode: int | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    if mode is not None:
        path.chmod(mode)
    return str(path)


def load(*sources: str, playbook_dir: str | None = None) -> Inventory:
    return load_inventory(list(sources), ssh_config=None, playbook_dir=playbook_dir)


def refused(*sources: str) -> InventoryError:
    with pytest.raises(InventoryError) as err:
        load(*sources)
    assert err.value.hint, "every inventory error says what to do"
    assert "\n" not in str(err.value), "one line"
    return err.value


# --- INI -----------------------------------------------------------------------------------


def test_an_ini_inventory_gives_groups_children_ranges_and_typed_vars(tmp_path: Path) -> None:
    inv = load(
        write(
            tmp_path / "hosts",
            """\
            lonely
            [prod:children]
            redis
            [redis]
            r[1:2] ansible_port=2222 ratio=0.5 up=True word=true motd='a b'
            r9:2200
            [redis:vars]
            ansible_become=yes
            """,
        )
    )

    assert [h.name for h in inv.hosts] == ["lonely", "r1", "r2", "r9"]
    assert inv.host("lonely").groups == ("ungrouped",)
    assert inv.host("r1").groups == ("prod", "redis")
    assert (inv.host("r1").port, inv.host("r9").port) == (2222, 2200)
    assert inv.host("r1").become is True
    r1 = inv.host("r1").vars
    assert (r1["ratio"], r1["up"], r1["word"], r1["motd"]) == (0.5, True, "true", "a b")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[web:hosts]\nw1\n[web:nope]\n", 3, "unknown type 'nope'"),
        ("[web server]\nw1\n", 1, "invalid section header"),
        ("[web]\nw1 port\n", 2, "word 2 of the host line is not NAME=VALUE"),
        ("[web]\nw1 motd='unclosed\n", 2, "cannot split the host line"),
        ("[web]\nw1:\n", 2, "ends in ':'"),
        ("[web]\nw[3:1]\n", 2, "bad host range"),
        ("[web]\nw1\n[web:vars]\nno equals sign\n", 4, "must be NAME=VALUE"),
        ("[all:children]\nweb ; comment\n", 2, "must be one group name"),
        ("[all:children]\nweb\n", 2, "'web', which is never declared"),
        ("[db:vars]\nx=1\n", 1, "never declared"),
        ("---\nall:\n", 1, "looks like a YAML file"),
    ],
)
def test_an_ini_line_ansible_rejects_names_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path / "hosts.ini", text)

    err = refused(path)

    assert err.where == f"{path}:{line}"
    assert message in err.message


def test_an_ini_file_named_yaml_is_told_to_rename(tmp_path: Path) -> None:
    path = write(tmp_path / "inventory.yaml", "[redis]\nr1 ansible_host=10.0.0.1\n")

    err = refused(path)

    assert err.hint is not None and "rename it to" in err.hint and err.hint.endswith(".ini")


# --- scripts ---------------------------------------------------------------------------------


def script(tmp_path: Path, body: str) -> str:
    return write(tmp_path / "inventory.sh", "#!/bin/sh\n" + body, mode=0o755)


def test_a_script_without_meta_is_asked_for_each_host(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """\
        case "$1" in
          --list) echo '{"redis": ["r1", "r2"], "all": {"vars": {"tier": "x"}}}' ;;
          --host) echo "{\\"who\\": \\"$2\\"}" ;;
        esac
        """,
    )

    inv = load(path)

    assert [(h.name, h.vars["who"], h.vars["tier"]) for h in inv.hosts] == [
        ("r1", "r1", "x"),
        ("r2", "r2", "x"),
    ]


def test_a_failing_script_shows_the_last_line_of_its_stderr(tmp_path: Path) -> None:
    path = script(tmp_path, "echo 'Traceback...' >&2\necho 'auth: token expired' >&2\nexit 3\n")

    err = refused(path)

    assert err.where == path
    assert err.message.endswith("failed with exit code 3: auth: token expired")
    assert "Traceback" not in str(err)


def test_a_script_printing_no_json_is_refused(tmp_path: Path) -> None:
    path = script(tmp_path, "echo 'hosts: r1'\necho 'warming up' >&2\n")

    err = refused(path)

    assert "printed no JSON" in err.message and "warming up" in err.message


# --- directories, host lists, several -i -----------------------------------------------------


def test_a_directory_reads_its_files_in_order_skipping_what_ansible_skips(
    tmp_path: Path,
) -> None:
    write(tmp_path / "inv" / "10-web.ini", "[web]\nw1 who=ini\n")
    write(tmp_path / "inv" / "20-web.yaml", "web:\n  hosts:\n    w1: {who: yaml}\n")
    write(tmp_path / "inv" / "README.md", "# not an inventory\n")
    write(tmp_path / "inv" / "hosts.bak", "[broken\n")
    write(tmp_path / "inv" / "group_vars" / "web.yml", "color: blue\n")

    inv = load(str(tmp_path / "inv"))

    assert inv.host("w1").vars["who"] == "yaml"  # the later file wins
    assert inv.host("w1").vars["color"] == "blue"  # group_vars inside the directory


def test_a_host_list_and_a_later_source_merge(tmp_path: Path) -> None:
    later = write(tmp_path / "more.ini", "[redis]\nr1 ansible_port=2201\n")

    inv = load("r1:2200,r2,", later)

    assert [(h.name, h.port, h.groups) for h in inv.hosts] == [
        ("r1", 2201, ("redis",)),
        ("r2", 22, ("ungrouped",)),
    ]


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    toml = write(tmp_path / "hosts.toml", "[web.hosts]\n")
    binary = tmp_path / "hosts.db"
    binary.write_bytes(b"\xff\xfe\x00junk")

    assert "TOML" in refused(toml).message
    assert "not UTF-8" in refused(str(binary)).message
    assert refused(str(tmp_path / "nope")).message == "inventory file not found"


# --- group_vars and host_vars ----------------------------------------------------------------


def test_playbook_host_vars_beat_inventory_host_vars_and_a_bad_file_is_named(
    tmp_path: Path,
) -> None:
    inventory = write(tmp_path / "inv" / "hosts", "[redis]\nr1 who=inline\n")
    write(tmp_path / "inv" / "host_vars" / "r1.yml", "who: inventory_host_vars\n")
    write(tmp_path / "play" / "host_vars" / "r1" / "main.yml", "who: playbook_host_vars\n")

    assert load(inventory).host("r1").vars["who"] == "inventory_host_vars"
    assert load(inventory, playbook_dir=str(tmp_path / "play")).host("r1").vars["who"] == (
        "playbook_host_vars"
    )

    bad = write(tmp_path / "inv" / "group_vars" / "redis.yml", "\n- a\n- b\n")
    err = refused(inventory)
    assert err.where == f"{bad}:2:1"
    assert err.message == "group_vars/redis must hold a mapping of variables, not a list"


# --- connection variables beat the playbook's keywords ---------------------------------------


def test_an_inventory_ansible_become_beats_the_playbooks_become(tmp_path: Path) -> None:
    # Given a playbook that says become: true, and a step that says become: false
    playbook = load_playbook(
        write(
            tmp_path / "play.yaml",
            """\
            name: Become
            hosts: all
            become: true
            diagnose:
              - name: as the playbook says
                shell: id -u
              - name: as the step says
                shell: id -u
                become: false
            """,
        ),
        builtin_step_types(),
    )
    hosts = "silent\nno_sudo ansible_become=False\nsudo ansible_become=True\n"
    inventory = load(write(tmp_path / "hosts", hosts))

    def become(host: str, *, cli_b: bool = False) -> list[bool]:
        run = HostRun(
            inventory.host(host),
            playbook,
            RunOptions(become=cli_b),
            builtin_step_types(),
            lambda event: None,
            Gate(None, approve_all=False),
        )
        return [run.become_for(step) for step in playbook.diagnose]

    # Then the keywords decide only where the inventory is silent, as in Ansible
    assert become("silent") == [True, False]
    assert become("no_sudo") == [False, False]
    assert become("sudo") == [True, True]
    # and the command line's -b is below the keywords: it decides only where all are silent
    assert become("silent", cli_b=True) == [True, False]
    assert become("no_sudo", cli_b=True) == [False, False]
    # and -e ansible_become is above everything
    extra = inventory.with_extra_vars({"ansible_become": "false"})
    assert extra.host("sudo").become is False


# --- the command line ------------------------------------------------------------------------


def test_several_i_flags_merge_and_the_playbooks_group_vars_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two inventories and a playbook whose group_vars/ provide what its step reads
    first = write(tmp_path / "inv" / "hosts.ini", "[redis]\nr1\n")
    second = write(tmp_path / "inv" / "more.yaml", "redis:\n  hosts:\n    r2:\n")
    playbook = write(
        tmp_path / "play" / "look.yaml",
        "name: Look\nhosts: redis\ndiagnose:\n  - shell: cat {{ redis_conf | quote }}\n",
    )

    # When I validate against both (-i twice), then every host of both is checked
    assert main(["validate", "-i", first, "-i", second, playbook]) == 2
    err = capsys.readouterr().err
    assert "r1, r2" in err  # hosts of both sources

    # and a group_vars/ file beside the playbook provides the variable to all of them
    write(tmp_path / "play" / "group_vars" / "redis.yml", "redis_conf: /etc/redis.conf\n")
    assert main(["validate", "-i", first, "-i", second, playbook]) == 0


def test_vault_encrypted_inventory_files_are_never_read_as_text(tmp_path: Path) -> None:
    # Given an INI inventory and a group_vars file, each encrypted whole with ansible-vault
    envelope = "$ANSIBLE_VAULT;1.1;AES256\n" + "6162636465666768\n" * 3
    ini = write(tmp_path / "enc" / "hosts", envelope)
    plain = write(tmp_path / "plain" / "hosts", "[redis]\nr1\n")
    secret = write(tmp_path / "plain" / "group_vars" / "redis.yml", envelope)

    # When I load them without a vault password, then each is refused with what to pass
    for source, where in ((ini, ini), (plain, secret)):
        err = refused(source)
        assert err.where == where
        assert err.hint is not None and "--vault-password-file" in err.hint


def test_a_bad_ini_line_stops_the_cli_with_exit_2_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = write(tmp_path / "hosts", "[redis]\nr1 maxmemory\n")
    playbook = write(tmp_path / "look.yaml", "name: Look\nhosts: redis\ndiagnose:\n  - shell: id\n")

    assert main(["validate", "-i", hosts, playbook]) == 2
    err = capsys.readouterr().err
    assert f"error: {hosts}:2: word 2 of the host line is not NAME=VALUE — " in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_every_value_of_a_vault_encrypted_ini_inventory_is_masked(tmp_path: Path) -> None:
    # Given an INI inventory encrypted whole by the real ansible-vault, whose values hold
    # secrets under names that do not look secret,
    password = tmp_path / "vault-pass"
    password.write_text("ini-vault-pass\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("[redis]\nr1 api_key=K3y-from-ini\n\n[redis:vars]\ncluster='Cl-v4lue'\n")
    vault_cli = str(Path(sys.executable).parent / "ansible-vault")
    subprocess.run(
        [vault_cli, "encrypt", "--vault-password-file", str(password), str(hosts)],
        check=True,
        capture_output=True,
    )
    vault = open_vault([], [str(password)])
    # when redmedic reads it,
    inv = load_inventory(str(hosts), ssh_config=None, vault=vault)
    # then the values are there, and every one of them is a secret to mask.
    assert inv.host("r1").vars["api_key"] == "K3y-from-ini"
    assert {"K3y-from-ini", "Cl-v4lue"} <= vault.secrets
