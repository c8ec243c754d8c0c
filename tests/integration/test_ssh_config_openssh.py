"""Differential test: redmedic resolves every fixture host exactly as the real OpenSSH does.

`ssh -G -F FILE HOST` prints the configuration ssh would use, without connecting; for each
host of each fixture in tests/data/ssh_config, the fields redmedic honours must agree:
hostname, user, port, the identity files, the ProxyJump chain (every hop looked up with
`ssh -G` too), ProxyCommand, the known-hosts files, HostKeyAlias, the timeouts and
IdentitiesOnly.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from redmedic.model.sshconfig import SshOptions, load_ssh_config, resolve
from redmedic.model.sshconfig.evaluate import Local
from redmedic.model.sshconfig.lexer import parse_jump
from tests.support.ssh_fixtures import copy_fixtures, fixture_hosts

FIXTURES = ("basic.conf", "match.conf", "include.conf")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_fixtures(tmp_path_factory.mktemp("openssh"))


@pytest.fixture
def local() -> Local:
    """The real user, with the home ssh uses for `~` (its passwd entry, not $HOME)."""
    entry = pwd.getpwuid(os.getuid())
    current = Local.current()
    return Local(entry.pw_name, entry.pw_dir, current.hostname, current.uid)


def ssh_g(config: Path, host: str, local: Local, *flags: str) -> dict[str, list[str]]:
    """`ssh -G`'s answer: option name -> its values (one entry per printed line)."""
    ssh = shutil.which("ssh")
    assert ssh, "openssh-client is needed: sh tests/support/install-test-deps.sh"
    done = subprocess.run(
        [ssh, "-G", "-F", str(config), *flags, host],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HOME": local.home},
        stdin=subprocess.DEVNULL,
    )
    answer: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        answer.setdefault(key.lower(), []).append(value)
    return answer


def expected(config: Path, host: str, local: Local, *flags: str) -> dict[str, Any]:
    """What redmedic must say about `host`, from ssh's own answer."""
    got = ssh_g(config, host, local, *flags)
    one = {key: values[0] for key, values in got.items()}
    expand = {"%h": one["hostname"], "%p": one["port"], "%r": one["user"], "%n": host}
    command = one.get("proxycommand")
    if command is not None and "proxyjump" not in one:
        for token, value in expand.items():
            command = command.replace(token, value)
    return {
        "address": one["hostname"],
        "user": one["user"],
        "port": int(one["port"]),
        "identity_files": [
            os.path.expanduser(p.replace("~", local.home, 1)) for p in got["identityfile"]
        ],
        "proxy_command": None if command in (None, "none") or "proxyjump" in one else command,
        "user_known_hosts_files": one.get("userknownhostsfile", "").split(),
        "global_known_hosts_files": [
            p.replace("~", local.home, 1) for p in one.get("globalknownhostsfile", "").split()
        ],
        "host_key_alias": one.get("hostkeyalias"),
        "connect_timeout": None if one["connecttimeout"] == "none" else int(one["connecttimeout"]),
        "server_alive_interval": int(one["serveraliveinterval"]),
        "server_alive_count_max": int(one["serveralivecountmax"]),
        "identities_only": one["identitiesonly"] == "yes",
        "proxy_jump": one.get("proxyjump"),
    }


def actual(
    address: str, user: str | None, port: int, ssh: SshOptions, local: Local
) -> dict[str, Any]:
    """The same fields from redmedic's answer (its empty/None meaning ssh's defaults)."""
    defaults = [
        f"~/.ssh/id_{kind}"
        for kind in ("rsa", "ecdsa", "ecdsa_sk", "ed25519", "ed25519_sk", "xmss", "dsa")
    ]
    return {
        "address": address,
        "user": user or local.user,
        "port": port,
        "identity_files": list(ssh.identity_files)
        or [p.replace("~", local.home) for p in defaults],
        "proxy_command": ssh.proxy_command,
        "user_known_hosts_files": list(ssh.user_known_hosts_files),
        "global_known_hosts_files": list(ssh.global_known_hosts_files),
        "host_key_alias": ssh.host_key_alias,
        "connect_timeout": ssh.connect_timeout,
        "server_alive_interval": ssh.server_alive_interval or 0,
        "server_alive_count_max": ssh.server_alive_count_max,
        "identities_only": ssh.identities_only,
    }


def flattened_chain(
    config: Path, host: str, local: Local, *flags: str
) -> list[tuple[str, dict[str, Any]]]:
    """The hops ssh would go through for `host`, each as `ssh -G` resolves it.

    ssh runs `ssh -J h1..hn-1 hn -W host`: the first hop's own ProxyJump applies (it is
    reached directly), the later hops' are overridden by the hops before them.
    """
    jump = expected(config, host, local, *flags)["proxy_jump"]
    if jump is None or jump == "none":
        return []
    chain: list[tuple[str, dict[str, Any]]] = []
    for index, spec in enumerate(parse_jump(jump)):
        flags = [
            *(["-l", spec.user] if spec.user else []),
            *(["-p", str(spec.port)] if spec.port else []),
        ]
        if index == 0:
            chain.extend(flattened_chain(config, spec.host, local))
        hop = expected(config, spec.host, local, *flags)
        if index > 0:
            hop["proxy_command"] = None
        chain.append((spec.host, hop))
    return chain


def assert_same(config_path: Path, host: str, local: Local, args: str = "") -> None:
    """redmedic and `ssh -G` agree on `host`, with `args` as ansible_ssh_common_args."""
    config = load_ssh_config(str(config_path), local=local)
    fields = resolve(host, {"ssh_common_args": args} if args else {}, config)
    ssh: SshOptions = fields["ssh"]
    flags = shlex.split(args)
    want = expected(config_path, host, local, *flags)
    del want["proxy_jump"]
    got = actual(fields["address"], fields.get("user"), fields.get("port", 22), ssh, local)
    assert got == want, f"{config_path.name}: {host} {args}"

    hops = [
        (hop.name, actual(hop.address, hop.user, hop.port, hop.ssh, local))
        for hop in ssh.proxy_jump
    ]
    want_hops = [
        (name, {k: v for k, v in hop.items() if k != "proxy_jump"})
        for name, hop in flattened_chain(config_path, host, local, *flags)
    ]
    assert hops == want_hops, f"{config_path.name}: {host} {args}: the ProxyJump chain"


@pytest.mark.parametrize("fixture", FIXTURES)
def test_every_fixture_host_resolves_as_openssh_does(
    fixtures: Path, fixture: str, local: Local
) -> None:
    for host in fixture_hosts(fixtures / fixture):
        assert_same(fixtures / fixture, host, local)


@pytest.mark.parametrize(
    ("host", "args"),
    [
        ("web1", "-o User=args -p 2100 -J 192.0.2.9,ops@inner"),
        ("db-eu", "-oConnectTimeout=7 -i @DIR@/basic.conf -i /missing -o 'ServerAliveInterval 3'"),
        ("cache7", "-o HostKeyAlias=other -o UserKnownHostsFile=/kh/%h"),
        ("piped", "-o ProxyJump=bastion"),
        ("inner", "-o ProxyCommand='nc %h %p' -l someone"),
        ("plain", "-o IdentitiesOnly=yes -o ProxyJump=none"),
    ],
)
def test_ssh_args_resolve_as_on_the_ssh_command_line(
    fixtures: Path, host: str, args: str, local: Local
) -> None:
    assert_same(fixtures / "basic.conf", host, local, args.replace("@DIR@", str(fixtures)))
