"""The ssh client config, as an OpenSSH user writes it: their ~/.ssh/config in, hosts out.

Each test gives a config (or one of the fixtures of tests/data/ssh_config), resolves host
names through it the way the inventory does, and checks what redmedic would connect to.
The same fixtures are compared with the real `ssh -G` in
tests/integration/test_ssh_config_openssh.py.
"""

from __future__ import annotations

import hashlib
import os
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest

from redmedic.errors import InventoryError
from redmedic.model.sshconfig import SshConfig, SshOptions, load_ssh_config, resolve, ssh_warnings
from redmedic.model.sshconfig.evaluate import Local
from tests.support.ssh_fixtures import copy_fixtures

ALICE = Local("alice", "/home/alice", "ctl.example.com", 1000)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config(tmp_path: Path, text: str, *, local: Local = ALICE) -> SshConfig:
    return load_ssh_config(str(write(tmp_path / "config", text)), local=local)


def ssh(name: str, cfg: SshConfig, **fields: Any) -> dict[str, Any]:
    return resolve(name, fields, cfg)


def options(name: str, cfg: SshConfig, **fields: Any) -> SshOptions:
    found: SshOptions = ssh(name, cfg, **fields)["ssh"]
    return found


def error(tmp_path: Path, text: str, name: str = "h", **fields: Any) -> InventoryError:
    with pytest.raises(InventoryError) as caught:
        ssh(name, config(tmp_path, text), **fields)
    return caught.value


# --- the line syntax ------------------------------------------------------------------------


def test_keys_are_case_insensitive_and_both_forms_and_quotes_are_read(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """\
        # a comment
        HOST web
          hostname=web.example.com   # trailing comment
          USER = "ops team"
          Port 2222
          IdentityFile "/keys/with space"
          identityfile='/keys/single'
        """,
    )

    found = ssh("web", cfg)

    assert (found["address"], found["user"], found["port"]) == ("web.example.com", "ops team", 2222)
    assert found["ssh"].identity_files == ("/keys/with space", "/keys/single")


def test_the_first_value_obtained_wins_and_identity_files_accumulate(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """\
        Host web
            User first
            IdentityFile /keys/one
        Host *
            User second
            IdentityFile /keys/two
            IdentityFile /keys/one
        """,
    )

    found = ssh("web", cfg)

    assert found["user"] == "first"
    assert found["ssh"].identity_files == ("/keys/one", "/keys/two")  # no duplicate
    assert found["private_key_file"] == "/keys/one"


def test_host_patterns_wildcards_negation_and_several_per_line(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """\
        Host db-* !db-test
            Port 2001
        Host cache? web[1]
            Port 2002
        """,
    )

    assert ssh("db-eu", cfg)["port"] == 2001
    assert "port" not in ssh("db-test", cfg)  # negated
    assert ssh("cache1", cfg)["port"] == 2002
    assert "port" not in ssh("cache12", cfg)  # ? is one character
    assert ssh("web[1]", cfg)["port"] == 2002  # [ ] are not special to ssh
    assert "port" not in ssh("web1", cfg)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('User "unbalanced', "unbalanced quotes"),
        ("HostName", "HostName needs a value"),
        ("Port 22 23", "takes one value"),
        ("Port 0", "bad port '0'"),
        ("Port http-nope", "bad port 'http-nope'"),
        ("ConnectTimeout soon", "bad time 'soon'"),
        ("ServerAliveCountMax -1", "bad number '-1'"),
        ("IdentitiesOnly maybe", "use yes or no"),
        ("UserKnownHostsFile none /x", '"none" must appear alone'),
        ("ProxyJump user@", "bad ProxyJump host"),
        ("Match", "Match needs a value"),
        ("Match host", "Match host needs patterns"),
        ("Match all host x", "Match all cannot be combined"),
        ("Match hostess x", "unsupported Match criterion 'hostess'"),
    ],
)
def test_a_malformed_line_is_an_error_at_its_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    # Also in a block that matches no host: ssh refuses the whole file too.
    err = error(tmp_path, f"Host other\n  User x\nHost nothing-matches\n  {line}\n")

    assert err.where == f"{tmp_path / 'config'}:4"
    assert message in err.message


def test_a_service_name_is_a_port_as_for_ssh(tmp_path: Path) -> None:
    assert ssh("h", config(tmp_path, "Port ssh\n"))["port"] == 22


def test_times_take_ssh_units(tmp_path: Path) -> None:
    cfg = config(tmp_path, "ConnectTimeout 1m30s\nServerAliveInterval 0\nServerAliveCountMax 7\n")

    found = options("h", cfg)

    assert (found.connect_timeout, found.server_alive_interval) == (90, None)  # 0 is off
    assert found.server_alive_count_max == 7


# --- which files ----------------------------------------------------------------------------


def test_by_default_the_user_file_comes_before_the_system_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write(home / ".ssh" / "config", "Host web\n  User mine\n")
    system = write(tmp_path / "etc" / "ssh_config", "Host *\n  User system\n  Port 2200\n")
    local = Local("alice", str(home), "ctl", 1000)

    cfg = load_ssh_config(local=local, system_file=str(system))

    assert (ssh("web", cfg)["user"], ssh("web", cfg)["port"]) == ("mine", 2200)
    assert ssh("db", cfg)["user"] == "system"


def test_missing_default_files_are_fine_and_none_reads_nothing(tmp_path: Path) -> None:
    local = Local("alice", str(tmp_path), "ctl", 1000)
    cfg = load_ssh_config(local=local, system_file=str(tmp_path / "nope"))

    assert ssh("web", cfg)["address"] == "web"
    assert load_ssh_config("none").files == ()


def test_the_user_file_must_not_be_writable_by_others(tmp_path: Path) -> None:
    home = tmp_path / "home"
    user_file = write(home / ".ssh" / "config", "Host *\n  ProxyCommand nc evil 22\n")
    user_file.chmod(0o666)

    with pytest.raises(InventoryError) as err:
        load_ssh_config(local=Local("alice", str(home), "ctl", 1000), system_file="/nope")

    assert err.value.where == str(user_file)
    assert "bad owner or permissions" in err.value.message


# --- Include --------------------------------------------------------------------------------


def test_the_include_fixture_globs_nests_and_keeps_the_including_block(tmp_path: Path) -> None:
    root = copy_fixtures(tmp_path)
    cfg = load_ssh_config(str(root / "include.conf"), local=ALICE)

    alpha = ssh("alpha", cfg)
    assert (alpha["address"], alpha["port"], alpha["user"]) == ("192.0.2.21", 2100, "alpha-user")
    # gamma's own file switches to a Match block; the Port after the Include still applies
    assert (ssh("gamma", cfg)["address"], ssh("gamma", cfg)["port"]) == ("192.0.2.23", 2300)
    assert ssh("delta", cfg)["port"] == 2400  # a glob matching nothing is fine
    assert ssh("beta", cfg)["ssh"].identity_files == ("/keys/from-include",)
    assert ssh("alpha", cfg)["user"] != "not-included"  # *.conf only


def test_relative_includes_are_found_in_home_ssh(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write(home / ".ssh" / "conf.d" / "web.conf", "Host web\n  Port 2022\n")
    write(home / ".ssh" / "config", "Include conf.d/*.conf\n")
    local = Local("alice", str(home), "ctl", 1000)

    cfg = load_ssh_config(local=local, system_file="/nope")

    assert ssh("web", cfg)["port"] == 2022


def test_an_include_loop_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "loop.conf", f"Include {tmp_path}/loop.conf\n")

    with pytest.raises(InventoryError) as err:
        load_ssh_config(str(tmp_path / "loop.conf"), local=ALICE)

    assert "Include nested more than 16 deep" in err.value.message


def test_an_unreadable_include_is_an_error(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "not-a-file.conf"))  # exists, cannot be opened (as root too)
    try:
        with pytest.raises(InventoryError) as err:
            config(tmp_path, f"Include {tmp_path}/*.conf\n")
    finally:
        sock.close()

    assert err.value.where == str(tmp_path / "not-a-file.conf")
    assert "cannot read the ssh config" in err.value.message


def test_an_included_file_others_may_write_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "inc" / "x.conf", "Host *\n  User x\n").chmod(0o664)

    with pytest.raises(InventoryError) as err:
        config(tmp_path, f"Include {tmp_path}/inc/*.conf\n")

    assert "chmod go-w" in str(err.value)


def test_the_system_config_may_not_include_home_paths(tmp_path: Path) -> None:
    system = write(tmp_path / "ssh_config", "Include ~/.ssh/extra\n")

    with pytest.raises(InventoryError) as err:
        load_ssh_config(local=ALICE, system_file=str(system))

    assert err.value.where == f"{system}:1"


# --- Match ----------------------------------------------------------------------------------


def test_match_host_sees_the_hostname_and_originalhost_the_name_given(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """\
        Host app
            HostName app.internal
        Match host *.internal
            Port 2001
        Match originalhost app
            User by-alias
        Match user by-alias localuser alice
            IdentityFile /keys/alice
        """,
    )

    found = ssh("app", cfg)

    assert (found["port"], found["user"]) == (2001, "by-alias")
    assert found["ssh"].identity_files == ("/keys/alice",)


def test_match_final_reads_the_files_again_for_the_final_name(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """\
        Host short
            HostName Short.Example.COM
        Host short.example.com
            Port 2100
        Match final host short.example.com
            User final
        Match canonical all
            IdentitiesOnly yes
        """,
    )

    found = ssh("short", cfg)

    assert (found["address"], found["port"], found["user"]) == ("short.example.com", 2100, "final")
    assert found["ssh"].identities_only is True


def test_match_exec_is_never_run_and_warned_about_only_where_it_decides(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """\
        Match host web exec "touch /tmp/redmedic-must-not-run"
            Port 2999
        """,
    )

    web, db = ssh("web", cfg), ssh("db", cfg)

    assert "port" not in web and not os.path.exists("/tmp/redmedic-must-not-run")
    assert [w.message for w in web["ssh"].warnings] == [
        "Match exec is not evaluated by redmedic: the block is skipped"
    ]
    assert db["ssh"].warnings == ()  # `host web` already fails for db


# --- tokens ---------------------------------------------------------------------------------


def test_tokens_are_expanded_as_ssh_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYS", "/vault/keys")
    cfg = config(
        tmp_path,
        """\
        Host web
            HostName %h.example.com
            User ops
            Port 2222
            IdentityFile ~/.ssh/%n_%r@%h:%p
            IdentityFile ${KEYS}/%u-%L-%l-%i-%%
            UserKnownHostsFile %d/kh/%k %d/kh/%C
            HostKeyAlias Web-Alias
            ProxyCommand nc -x proxy %h %p # for %r from %n
        """,
    )

    found = options("web", cfg)

    assert found.identity_files == (
        "/home/alice/.ssh/web_ops@web.example.com:2222",
        "/vault/keys/alice-ctl-ctl.example.com-1000-%",
    )
    digest = hashlib.sha1(b"ctl.example.comweb.example.com2222ops").hexdigest()
    assert found.user_known_hosts_files == ("/home/alice/kh/web-alias", f"/home/alice/kh/{digest}")
    assert found.proxy_command == "nc -x proxy web.example.com 2222 # for ops from web"
    assert found.host_key_alias == "web-alias"  # ssh lowercases it


def test_an_unknown_token_is_an_error_at_its_line(tmp_path: Path) -> None:
    err = error(tmp_path, "Host h\n  HostName %p.example.com\n")

    assert err.where == f"{tmp_path / 'config'}:2"
    assert "unknown token %p" in err.message


def test_known_hosts_default_to_openssh_lists_and_none_means_none(tmp_path: Path) -> None:
    cfg = config(tmp_path, "Host bare\n  UserKnownHostsFile none\n  GlobalKnownHostsFile none\n")

    default = options("other", cfg)
    bare = options("bare", cfg)

    assert default.user_known_hosts_files == (
        "/home/alice/.ssh/known_hosts",
        "/home/alice/.ssh/known_hosts2",
    )
    assert default.global_known_hosts_files == (
        "/etc/ssh/ssh_known_hosts",
        "/etc/ssh/ssh_known_hosts2",
    )
    assert (bare.user_known_hosts_files, bare.global_known_hosts_files) == ((), ())


# --- ProxyJump and ProxyCommand -------------------------------------------------------------


def test_a_chain_is_flattened_with_every_hop_resolved_like_a_host(tmp_path: Path) -> None:
    root = copy_fixtures(tmp_path)
    cfg = load_ssh_config(str(root / "basic.conf"), local=ALICE)

    hops = options("deep", cfg).proxy_jump

    # deep: ProxyJump ops@inner:2200,10.1.0.3 — and inner itself is behind the bastion
    assert [(h.name, h.address, h.port, h.user) for h in hops] == [
        ("bastion", "127.0.0.1", 2222, "ops"),
        ("inner", "10.1.0.2", 2200, "ops"),
        ("10.1.0.3", "10.1.0.3", 22, None),
    ]
    assert hops[0].ssh.identity_files == ("/keys/bastion", "/keys/everyone")
    assert all(hop.ssh.proxy_jump == () for hop in hops)
    assert options("deep", cfg).proxy_command is None  # ProxyJump came first


def test_proxyjump_none_and_proxycommand_none_take_the_slot(tmp_path: Path) -> None:
    root = copy_fixtures(tmp_path)
    cfg = load_ssh_config(str(root / "basic.conf"), local=ALICE)

    for host in ("direct", "both"):
        found = options(host, cfg)
        assert (found.proxy_jump, found.proxy_command) == ((), None), host
    assert options("piped", cfg).proxy_command == (
        "nc -X connect -x proxy.example.com:3128 piped 22"
    )


def test_a_hop_reached_through_itself_is_a_loop(tmp_path: Path) -> None:
    text = "Host bastion\n  HostName 192.0.2.1\nHost *\n  ProxyJump bastion\n"

    err = error(tmp_path, text, "web")

    assert err.where == f"{tmp_path / 'config'}:4"
    assert "ProxyJump loop: bastion → bastion" in err.message
    assert "Host * !bastion" in str(err)


def test_a_host_in_its_own_chain_is_a_loop(tmp_path: Path) -> None:
    err = error(tmp_path, "Host web\n  ProxyJump 192.0.2.1,web\n", "web")

    assert err.where == f"{tmp_path / 'config'}:2"
    assert "ProxyJump loop: web → 192.0.2.1 → web" in err.message


def test_an_unknown_first_hop_is_an_error(tmp_path: Path) -> None:
    err = error(tmp_path, "Host web\n  ProxyJump ops@bastoin.invalid\n", "web")

    assert err.where == f"{tmp_path / 'config'}:2"
    assert "ProxyJump host 'bastoin.invalid' is unknown" in err.message


def test_known_first_hops_an_alias_an_address_or_a_name_that_resolves(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """\
        Host bastion
            HostName bastion.invalid
        Host a
            ProxyJump bastion
        Host b
            ProxyJump [2001:db8::1]:2022
        Host c
            ProxyJump localhost,inner.invalid
        """,
    )

    assert options("a", cfg).proxy_jump[0].address == "bastion.invalid"  # the config says so
    assert options("b", cfg).proxy_jump[0].port == 2022
    # the second hop's name is looked up by the first hop, not here
    assert [h.name for h in options("c", cfg).proxy_jump] == ["localhost", "inner.invalid"]


# --- ansible_ssh_common_args / ansible_ssh_extra_args ---------------------------------------


def test_ssh_args_beat_the_config_and_the_inventory_beats_them(tmp_path: Path) -> None:
    cfg = config(tmp_path, "Host *\n  User cfg\n  Port 2000\n  ConnectTimeout 5\n")

    found = ssh(
        "web",
        cfg,
        user="inv",
        ssh_common_args="-o User=args -p 2100 -oConnectTimeout=7",
        ssh_extra_args="-o 'ServerAliveInterval 20'",
    )

    assert (found["user"], found["port"]) == ("inv", 2100)
    assert (found["ssh"].connect_timeout, found["ssh"].server_alive_interval) == (7, 20)


def test_the_inventory_form_of_a_bastion(tmp_path: Path) -> None:
    cfg = config(tmp_path, "Host web\n  ProxyJump not-this-one\n")

    found = options("web", cfg, ssh_common_args="-o ProxyJump=ops@192.0.2.50:2222")

    assert [(h.address, h.port, h.user) for h in found.proxy_jump] == [("192.0.2.50", 2222, "ops")]


def test_ssh_flags_j_i_l_and_f(tmp_path: Path) -> None:
    other = write(tmp_path / "other.conf", "Host web\n  HostName 192.0.2.8\n")
    key = write(tmp_path / "a b", "not really a key")
    cfg = config(tmp_path, "Host web\n  IdentityFile /keys/cfg\n")

    found = ssh(
        "web",
        cfg,
        private_key_file="/keys/inv",
        ssh_common_args=f"-J 192.0.2.9 -i '{key}' -i /missing -l args -F {other}",
    )

    assert found["address"] == "192.0.2.8"  # -F: only that file
    assert found["user"] == "args"
    assert found["ssh"].identity_files == ("/keys/inv", str(key))  # ssh drops a missing -i
    assert [h.address for h in found["ssh"].proxy_jump] == ["192.0.2.9"]


def test_bad_ssh_args_name_the_host_and_the_variable(tmp_path: Path) -> None:
    cfg = config(tmp_path, "")

    for text, message in (("-o 'Port=abc", "cannot split"), ("-o Port=abc", "bad port 'abc'")):
        with pytest.raises(InventoryError) as err:
            ssh("web", cfg, ssh_common_args=text)
        assert f"ansible_ssh_common_args of host 'web': {message}" in err.value.message


# --- warnings -------------------------------------------------------------------------------


def test_options_redmedic_does_not_honour_are_warned_about_once_per_line(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """\
        IgnoreUnknown UseKeychain
        Host *
            ForwardAgent yes
            StrictHostKeyChecking no
            ControlMaster auto
            Colour blue
            UseKeychain yes
            SendEnv LANG LC_*
            HashKnownHosts yes
            GSSAPIAuthentication yes
            ForwardX11 no
        Host web
            ForwardAgent yes
        """,
    )
    hosts = [(name, options(name, cfg, ssh_extra_args="-A -q")) for name in ("web", "db")]

    lines = ssh_warnings(hosts)

    path = tmp_path / "config"
    assert lines == [
        f"{path}:3: ForwardAgent yes is not honoured: redmedic never forwards the agent "
        "(hosts: web, db)",
        f"{path}:4: StrictHostKeyChecking no is not honoured: redmedic always checks host "
        "keys strictly (--trust-new-host-keys accepts a host's first key) (hosts: web, db)",
        f"{path}:5: ControlMaster auto is not honoured: redmedic opens its own connection "
        "(no multiplexing) (hosts: web, db)",
        f"{path}:6: Colour is not an OpenSSH option (a typo?): ignored (hosts: web, db)",
        "ansible_ssh_extra_args: ssh flag -A is not honoured by redmedic (hosts: web, db)",
    ]


def test_warnings_of_a_jump_host_reach_the_host_behind_it(tmp_path: Path) -> None:
    cfg = config(tmp_path, "Host bastion\n  HostName 192.0.2.1\n  ForwardAgent yes\n")

    found = options("web", cfg, ssh_common_args="-J bastion")

    assert [w.where for w in found.warnings] == [f"{tmp_path / 'config'}:3"]


def test_the_stock_debian_system_config_warns_about_nothing(tmp_path: Path) -> None:
    system = write(
        tmp_path / "etc" / "ssh_config",
        f"""\
        Include {tmp_path}/etc/ssh_config.d/*.conf
        Host *
            SendEnv LANG LC_*
            HashKnownHosts yes
            GSSAPIAuthentication yes
        """,
    )
    local = Local("alice", str(tmp_path / "home"), "ctl", 1000)

    cfg = load_ssh_config(local=local, system_file=str(system))

    assert options("web", cfg).warnings == ()
