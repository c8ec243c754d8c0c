"""The inventory, as its users meet it: their Ansible YAML in, hosts to fix out."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from redmedic.errors import InventoryError, UsageError
from redmedic.model.inventory import Host, Inventory, load_inventory, select_hosts

REPO = Path(__file__).resolve().parents[2]


def inventory_file(tmp_path: Path, text: str, name: str = "inventory.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def load(tmp_path: Path, text: str, *, ssh_config: str | None = None) -> Inventory:
    return load_inventory(inventory_file(tmp_path, text), ssh_config=ssh_config)


def names(hosts: list[Host]) -> list[str]:
    return [host.name for host in hosts]


def load_error(tmp_path: Path, text: str) -> tuple[InventoryError, str]:
    path = inventory_file(tmp_path, text)
    with pytest.raises(InventoryError) as err:
        load_inventory(path, ssh_config=None)
    assert err.value.hint, "every inventory error says what to do"
    return err.value, path


# --- groups, hosts and variable precedence -------------------------------------------------

FLEET = """\
all:
  vars:
    redis_port: 6379
    tier: all
    maxmemory: 1gb
  hosts:
    cache1:
  children:
    redis:
      vars:
        tier: redis
        maxmemory: 2gb
      children:
        redis_eu:
          vars:
            tier: redis_eu
          hosts:
            eu1:
            eu2:
              tier: host
        redis_us:
          hosts:
            us1:
              ansible_host: 10.0.2.1
    sentinels:
      hosts:
        eu1:
        us1:
"""


def test_nested_groups_give_every_host_its_groups_in_inventory_order(tmp_path: Path) -> None:
    inv = load(tmp_path, FLEET)

    assert [h.name for h in inv.hosts] == ["cache1", "eu1", "eu2", "us1"]
    assert inv.host("eu1").groups == ("redis", "redis_eu", "sentinels")
    assert inv.host("us1").groups == ("redis", "redis_us", "sentinels")
    assert inv.host("cache1").groups == ("ungrouped",)  # in no group but all
    assert inv.groups["redis"].hosts == ("eu1", "eu2", "us1")  # through child groups
    assert inv.groups["redis"].children == ("redis_eu", "redis_us")
    assert inv.groups["redis_eu"].parents == ("redis",)
    assert (inv.groups["all"].depth, inv.groups["redis"].depth) == (0, 1)
    assert inv.groups["redis_eu"].depth == 2


def test_child_group_vars_beat_parent_vars_and_host_vars_beat_all(tmp_path: Path) -> None:
    inv = load(tmp_path, FLEET)

    assert inv.host("cache1").vars["tier"] == "all"
    assert inv.host("us1").vars["tier"] == "redis"  # redis_us sets no tier: parent's
    assert inv.host("eu1").vars["tier"] == "redis_eu"  # child beats parent
    assert inv.host("eu2").vars["tier"] == "host"  # host beats every group
    assert inv.host("eu1").vars["maxmemory"] == "2gb"
    assert inv.host("eu1").vars["redis_port"] == 6379  # all's vars reach everyone


def test_sibling_groups_at_the_same_depth_apply_alphabetically(tmp_path: Path) -> None:
    # Ansible's rule: same depth -> sorted by name, the later name wins. Depth beats name.
    inv = load(
        tmp_path,
        """\
        zeta:
          vars: {color: zeta}
          hosts: {h1: , h3: }
        alpha:
          vars: {color: alpha}
          hosts: {h1: , h2: }
          children:
            beta:
              vars: {color: beta}
              hosts: {h2: }
        """,
    )

    assert inv.host("h1").vars["color"] == "zeta"  # alpha < zeta, both depth 1
    assert inv.host("h2").vars["color"] == "beta"  # depth 2 beats depth 1
    assert inv.host("h3").vars["color"] == "zeta"


def test_depth_is_the_longest_path_from_all(tmp_path: Path) -> None:
    # `deep` is a top-level group and also a grandchild: it counts as depth 3 (> mid's 2).
    inv = load(
        tmp_path,
        """\
        top:
          children:
            mid:
              vars: {x: mid}
              children:
                deep:
        deep:
          vars: {x: deep}
          hosts: {h: }
        mid:
          hosts: {h: }
        """,
    )

    assert inv.groups["deep"].depth == 3
    assert inv.groups["deep"].parents == ("mid",)  # as in Ansible: only parentless groups join all
    assert inv.host("h").vars["x"] == "deep"


def test_top_level_groups_without_all_are_children_of_all(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        redis:
          hosts:
            r1:
        all:
          vars: {ansible_user: ops}
        """,
    )

    assert inv.groups["all"].children == ("ungrouped", "redis")  # as in Ansible
    assert inv.host("r1").user == "ops"
    assert inv.host("r1").groups == ("redis",)


def test_a_host_or_group_named_twice_is_merged_later_entry_winning(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        all:
          children:
            eu:
              hosts:
                r1: {ansible_port: 2201, zone: a}
            redis:
              hosts:
                r1: {zone: b}
              children:
                eu:
                  vars: {dc: fra}
        """,
    )

    host = inv.host("r1")
    assert (host.port, host.vars["zone"], host.vars["dc"]) == (2201, "b", "fra")
    assert host.groups == ("eu", "redis")
    assert inv.groups["eu"].parents == ("all", "redis")
    assert [h.name for h in inv.hosts] == ["r1"]


def test_host_ranges_expand_like_ansible(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        all:
          hosts:
            web[01:03].eu:
              ansible_user: w
            db-[a:c]:
            n[1:9:4]:
        """,
    )

    assert [h.name for h in inv.hosts] == [
        *("web01.eu", "web02.eu", "web03.eu"),
        *("db-a", "db-b", "db-c"),
        *("n1", "n5", "n9"),
    ]
    assert inv.host("web02.eu").user == "w"


# --- connection variables ------------------------------------------------------------------


def test_connection_variables_fill_the_host_and_stay_in_vars(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        all:
          hosts:
            r1:
              ansible_host: 10.0.0.5
              ansible_port: "2222"
              ansible_user: ops
              ansible_ssh_private_key_file: ~/.ssh/fleet
              ansible_ssh_pass: s3cret
              ansible_become: yes
              ansible_become_pass: sudo-pw
              ansible_connection: paramiko
            me:
              ansible_connection: local
        """,
    )

    r1 = inv.host("r1")
    assert (r1.address, r1.port, r1.user, r1.connection) == ("10.0.0.5", 2222, "ops", "ssh")
    assert r1.private_key_file == str(Path("~/.ssh/fleet").expanduser())
    assert (r1.password, r1.become, r1.become_password) == ("s3cret", True, "sudo-pw")
    assert r1.vars["ansible_ssh_pass"] == "s3cret"  # as written, for templates
    assert r1.vars["ansible_port"] == "2222"
    assert "s3cret" not in repr(r1) and "sudo-pw" not in repr(r1)
    me = inv.host("me")
    assert (me.address, me.connection, me.become, me.port) == ("me", "local", None, 22)


def test_every_connection_variable_also_works_without_the_ansible_prefix(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        all:
          hosts:
            r1:
              host: 10.0.0.6
              port: 2200
              user: admin
              ssh_private_key_file: /keys/r1
              password: pw
              become: true
              become_password: bpw
              connection: smart
        """,
    )

    r1 = inv.host("r1")
    assert (r1.address, r1.port, r1.user, r1.private_key_file) == (
        "10.0.0.6",
        2200,
        "admin",
        "/keys/r1",
    )
    assert (r1.password, r1.become, r1.become_password, r1.connection) == (
        "pw",
        True,
        "bpw",
        "ssh",
    )


def test_the_higher_level_decides_whichever_spelling_it_uses(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        all:
          vars:
            ansible_user: from_all
            become: true
          hosts:
            r1:
              user: from_host           # host level beats all, short name or not
            r2:
              user: short
              ansible_user: prefixed    # same level: the ansible_ name wins
            r3:
              ansible_become: null      # null counts as not set
        """,
    )

    assert inv.host("r1").user == "from_host"
    assert inv.host("r2").user == "prefixed"
    assert inv.host("r3").become is True


# --- ~/.ssh/config -------------------------------------------------------------------------


def ssh_config_file(tmp_path: Path) -> str:
    path = tmp_path / "ssh_config"
    path.write_text(
        textwrap.dedent(
            """\
            Host r1
                HostName 192.0.2.1
                User cfg-user
                Port 2022
                IdentityFile /keys/cfg_key

            Host jump-alias
                HostName 192.0.2.9

            Host *
                User everyone
            """
        ),
        encoding="utf-8",
    )
    return str(path)


def test_ssh_config_fills_what_the_inventory_leaves_open(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        all:
          hosts:
            r1:
            r2:
              ansible_host: jump-alias
              ansible_port: 22
            r3:
              ansible_host: 198.51.100.7
              ansible_user: mine
        """,
        ssh_config=ssh_config_file(tmp_path),
    )

    r1 = inv.host("r1")
    assert (r1.address, r1.user, r1.port, r1.private_key_file) == (
        "192.0.2.1",
        "cfg-user",
        2022,
        "/keys/cfg_key",
    )
    r2 = inv.host("r2")  # looked up by its ansible_host, like `ssh jump-alias`
    assert (r2.address, r2.user, r2.port) == ("192.0.2.9", "everyone", 22)
    r3 = inv.host("r3")  # explicit values win
    assert (r3.address, r3.user, r3.port, r3.private_key_file) == (
        "198.51.100.7",
        "mine",
        22,
        None,
    )
    assert "ansible_user" not in r1.vars  # ssh config values are not inventory variables


def test_explicit_inventory_values_beat_the_ssh_config(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """\
        all:
          hosts:
            r1: {ansible_user: inv, ansible_port: 2200, ansible_private_key_file: /keys/inv}
            local1: {ansible_connection: local}
        """,
        ssh_config=ssh_config_file(tmp_path),
    )

    r1 = inv.host("r1")
    assert (r1.address, r1.user, r1.port, r1.private_key_file) == (
        "192.0.2.1",
        "inv",
        2200,
        "/keys/inv",
    )
    assert inv.host("local1").user is None  # local hosts are not looked up


def test_a_missing_ssh_config_is_an_error_as_with_ssh_dash_f(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")

    with pytest.raises(InventoryError) as err:
        load(tmp_path, "all:\n  hosts:\n    r1:\n", ssh_config=missing)

    assert err.value.where == missing
    assert "not found" in err.value.message


def test_a_bad_port_in_the_ssh_config_names_that_file(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host r1\n    Port 99999\n", encoding="utf-8")

    with pytest.raises(InventoryError) as err:
        load(tmp_path, "all:\n  hosts:\n    r1:\n", ssh_config=str(config))

    assert err.value.where == f"{config}:2"  # ssh takes a service name (`Port ssh`) too
    assert "bad port '99999'" in err.value.message


# --- selecting hosts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("all", ["cache1", "eu1", "eu2", "us1"]),
        ("*", ["cache1", "eu1", "eu2", "us1"]),
        ("eu2", ["eu2"]),
        ("redis", ["eu1", "eu2", "us1"]),
        ("redis_eu", ["eu1", "eu2"]),
        ("ungrouped", ["cache1"]),
        ("eu*", ["eu1", "eu2"]),  # glob over host names
        ("redis_u?", ["us1"]),  # glob over group names
        ("*_eu", ["eu1", "eu2"]),
        ("us1,cache1", ["cache1", "us1"]),  # union, in inventory order
        ("us1:cache1", ["cache1", "us1"]),
        ("redis,sentinels,eu1", ["eu1", "eu2", "us1"]),  # no duplicates
        ("redis,!eu2", ["eu1", "us1"]),
        ("!eu2,redis", ["eu1", "us1"]),  # order of terms does not matter
        ("redis,&sentinels", ["eu1", "us1"]),
        ("redis:&sentinels:!us1", ["eu1"]),
        ("!redis", ["cache1"]),  # only exclusions: start from all
        ("&sentinels", ["eu1", "us1"]),
        (" redis_eu , us1 ", ["eu1", "eu2", "us1"]),
        ("redis,!nothing*", ["eu1", "eu2", "us1"]),  # a glob may match nothing
    ],
)
def test_host_patterns(tmp_path: Path, pattern: str, expected: list[str]) -> None:
    inv = load(tmp_path, FLEET)

    assert names(select_hosts(inv, pattern, None)) == expected


@pytest.mark.parametrize(
    ("pattern", "limit", "expected"),
    [
        ("redis", "eu1", ["eu1"]),
        ("redis", "sentinels", ["eu1", "us1"]),
        ("all", "redis_eu,cache1", ["cache1", "eu1", "eu2"]),
        ("redis", "!eu*", ["us1"]),
        ("redis", "*", ["eu1", "eu2", "us1"]),
    ],
)
def test_limit_narrows_the_playbook_hosts(
    tmp_path: Path, pattern: str, limit: str, expected: list[str]
) -> None:
    inv = load(tmp_path, FLEET)

    assert names(inv.select(pattern, limit)) == expected


def test_a_misspelt_group_gets_a_did_you_mean(tmp_path: Path) -> None:
    inv = load(tmp_path, FLEET)

    with pytest.raises(InventoryError) as err:
        select_hosts(inv, "redis-eu", None, where="play.yaml:2:8")

    assert err.value.where == "play.yaml:2:8"
    assert "'redis-eu' is neither a host nor a group" in err.value.message
    assert err.value.hint is not None and err.value.hint.startswith("did you mean 'redis_eu'")


def test_a_misspelt_limit_or_exclusion_is_an_error_too(tmp_path: Path) -> None:
    # `!eu_2` silently excluding nothing could fix a host someone meant to spare.
    inv = load(tmp_path, FLEET)

    with pytest.raises(InventoryError) as err:
        inv.select("redis", "redis,!eu_2")
    assert err.value.where is None
    assert err.value.message.startswith("--limit 'redis,!eu_2': 'eu_2' is neither")
    assert err.value.hint is not None and "'eu2'" in err.value.hint

    with pytest.raises(InventoryError, match="neither a host nor a group"):
        inv.select("redis,!sentinals")


def test_an_unknown_name_with_nothing_close_lists_the_groups(tmp_path: Path) -> None:
    inv = load(tmp_path, FLEET)

    with pytest.raises(InventoryError) as err:
        inv.select("postgres")

    assert err.value.hint == "groups are: redis, redis_eu, redis_us, sentinels"


def test_asking_for_localhost_explains_how_to_add_it(tmp_path: Path) -> None:
    inv = load(tmp_path, FLEET)

    with pytest.raises(InventoryError) as err:
        inv.select("localhost")

    assert err.value.hint is not None and "ansible_connection: local" in err.value.hint


def test_a_selection_with_no_hosts_is_an_error(tmp_path: Path) -> None:
    inv = load(tmp_path, FLEET)

    with pytest.raises(InventoryError) as err:
        inv.select("db*", where="play.yaml:2:8")
    assert err.value.where == "play.yaml:2:8"
    assert err.value.message.startswith("hosts pattern 'db*' matches no hosts")
    assert err.value.hint

    with pytest.raises(InventoryError) as err:
        inv.select("redis_eu", "us1")
    assert err.value.message == "--limit 'us1' leaves none of the hosts of 'redis_eu'"
    assert err.value.hint == "'redis_eu' matches: eu1, eu2"

    with pytest.raises(InventoryError, match="matches no hosts"):
        inv.select("redis,!redis")


def test_an_empty_pattern_or_a_limit_file_is_refused(tmp_path: Path) -> None:
    inv = load(tmp_path, FLEET)

    with pytest.raises(InventoryError, match="empty hosts pattern"):
        inv.select(" , ")
    with pytest.raises(UsageError, match="not supported"):
        inv.select("all", "@retry.txt")


def test_an_ipv6_host_name_is_not_split_on_colons(tmp_path: Path) -> None:
    inv = load(tmp_path, "all:\n  hosts:\n    '2001:db8::1':\n    other:\n")

    assert names(inv.select("2001:db8::1")) == ["2001:db8::1"]


# --- -e extra vars ------------------------------------------------------------------------


def test_extra_vars_are_highest_and_reach_connection_fields(tmp_path: Path) -> None:
    inv = load(tmp_path, FLEET).with_extra_vars({"ansible_user": "break-glass", "tier": "cli"})

    assert inv.host("eu2").vars["tier"] == "cli"  # beats the host's own var
    assert inv.host("eu2").user == "break-glass"
    assert names(inv.select("redis_eu")) == ["eu1", "eu2"]

    with pytest.raises(UsageError) as err:
        inv.with_extra_vars({"ansible_port": "ssh"})
    assert err.value.message.startswith("-e ansible_port must be a port number")


# --- errors say where and what to do -----------------------------------------------------


def test_a_missing_inventory_file_says_to_pass_one(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")

    with pytest.raises(InventoryError) as err:
        load_inventory(missing, ssh_config=None)

    assert err.value.where == missing
    assert err.value.message == "inventory file not found"
    assert err.value.hint is not None and err.value.hint.startswith("pass -i FILE")


def test_malformed_yaml_points_at_line_and_column(tmp_path: Path) -> None:
    err, path = load_error(tmp_path, "all:\n  hosts:\n    r1: {port: 22\n    r2:\n")

    assert err.where is not None and err.where.startswith(f"{path}:4:")
    assert err.message.startswith("invalid YAML")
    assert str(err).startswith(f"{err.where}: invalid YAML")


def test_an_ini_inventory_gets_a_conversion_hint(tmp_path: Path) -> None:
    err, path = load_error(tmp_path, "[redis]\nr1 ansible_host=10.0.0.1\n")

    assert err.hint is not None and f"rename it to {path[: -len('.yaml')]}.ini" in err.hint


@pytest.mark.parametrize(
    ("text", "line_col", "message"),
    [
        ("all:\n  hosts:\n    - r1\n    - r2\n", "3:5", "hosts of group 'all' must be a mapping"),
        (
            "all:\n  children:\n    redis:\n      vars:\n        - a\n",
            "5:9",
            "vars of group 'redis' must be a mapping",
        ),
        ("all:\n  hosts:\n    r1: 10.0.0.1\n", "3:9", "host 'r1' must be followed by a mapping"),
        (
            "all:\n  hosts:\n    r1:\n      ansible_port: ssh\n",
            "4:21",
            "ansible_port must be a port number 1-65535, got text (host 'r1')",
        ),
        ("all:\n  hosts:\n    r1: {port: 70000}\n", "3:16", "port must be a port number"),
        ("all:\n  hosts:\n    r1: {port: true}\n", "3:16", "port must be a port number"),
        ("all:\n  host:\n    r1:\n", "2:3", "unknown key 'host' in group 'all'"),
        ("redis:\n  - r1\n", "2:3", "group 'redis' must be a mapping"),
        ("all:\n  children: [redis]\n", "2:13", "children of group 'all' must be a mapping"),
        ("hosts:\n  r1:\n", "1:1", "top-level 'hosts' must belong to a group"),
        ("- r1\n- r2\n", "1:1", "an inventory must be a mapping of groups, not a list"),
        ("all:\n  hosts:\n    r1: {become: maybe}\n", "3:18", "become must be true or false"),
        ("all:\n  hosts:\n    r1: {connection: docker}\n", "3:22", "must be ssh or local"),
        ("all:\n  hosts:\n    r1: {ansible_password: 0123}\n", "3:28", "must be text"),
        (
            "all:\n  hosts:\n    r1: {ansible_host: '{{ ip }}'}\n",
            "3:24",
            "must be a plain value, not a template",
        ),
        ("all:\n  hosts:\n    r[3:1]:\n", "3:5", "bad host range"),
        ("all:\n  hosts:\n    12:\n", "3:5", "host name must be text"),
        (
            "a:\n  children:\n    b:\n      children:\n        a:\n",
            "5:9",
            "group 'a' is inside itself",
        ),
        ("x:\n  children:\n    all:\n", "3:5", "group 'all' cannot be a child"),
    ],
)
def test_wrong_shapes_name_file_line_col_and_say_what_to_do(
    tmp_path: Path, text: str, line_col: str, message: str
) -> None:
    err, path = load_error(tmp_path, text)

    assert err.where == f"{path}:{line_col}"
    assert message in err.message
    assert str(err).startswith(f"{path}:{line_col}: ")


def test_an_unknown_group_key_suggests_the_right_one(tmp_path: Path) -> None:
    err, _ = load_error(tmp_path, "all:\n  chidlren:\n    redis:\n")

    assert err.hint is not None and err.hint.startswith("did you mean 'children'?")


def test_a_bad_group_var_is_reported_where_it_is_written(tmp_path: Path) -> None:
    err, path = load_error(
        tmp_path,
        "all:\n  children:\n    redis:\n      vars:\n        ansible_port: x\n"
        "      hosts:\n        r1:\n",
    )

    assert err.where == f"{path}:5:23"
    assert "(host 'r1')" in err.message


def test_a_duplicate_host_in_one_mapping_names_both_lines(tmp_path: Path) -> None:
    err, path = load_error(tmp_path, "all:\n  hosts:\n    r1:\n    r2:\n    r1:\n")

    assert err.where == f"{path}:5:5"
    assert "duplicate key 'r1' (first at line 3, again at line 5)" in err.message


def test_an_empty_inventory_is_an_error(tmp_path: Path) -> None:
    err, path = load_error(tmp_path, "# nothing yet\n")

    assert err.where == path
    assert err.message == "the inventory is empty"


# --- the shipped example --------------------------------------------------------------------


def test_the_example_inventory_loads_and_selects(tmp_path: Path) -> None:
    inv = load_inventory(REPO / "inventory.example.yaml", ssh_config=None)

    assert names(inv.select("redis")) == ["eu-1", "eu-2", "eu-3", "us-1", "us-2"]
    assert names(inv.select("redis", "redis_eu,!eu-3")) == ["eu-1", "eu-2"]
    assert inv.host("eu-3").port == 2222
    assert inv.host("us-1").user == "admin"  # redis_us vars beat all's
    assert inv.host("eu-1").become is True
    assert inv.host("localhost").connection == "local"
    assert inv.host("eu-1").groups == ("redis", "redis_eu", "sentinels")


ADVERSARIAL = Path(__file__).parent.parent / "data" / "adversarial"


def test_a_mistyped_password_is_described_by_its_type_never_echoed() -> None:
    # Given a sudo password written unquoted, so YAML reads it as a number,
    path = str(ADVERSARIAL / "secrets-inventory-type.yaml")

    # when the inventory is loaded,
    with pytest.raises(InventoryError) as err:
        load_inventory(path, ssh_config=None)

    # then the error says what is wrong with it, and never what it is.
    assert "ansible_become_password must be text, got a number" in err.value.message
    assert "73915562" not in str(err.value) + (err.value.hint or "")


def test_a_mistyped_connection_value_from_e_is_not_echoed_either(tmp_path: Path) -> None:
    inv = load(tmp_path, FLEET)

    with pytest.raises(UsageError) as err:
        inv.with_extra_vars({"ansible_password": 31415926, "ansible_port": "s3cr3t-port"})

    assert "31415926" not in str(err.value) and "s3cr3t-port" not in str(err.value)
