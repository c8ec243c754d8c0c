"""The connection honours the user's SSH settings, against real sshd daemons on loopback.

Given hosts reached the way OpenSSH users configure them — through a bastion (ProxyJump),
through a ProxyCommand, with several IdentityFiles, IdentitiesOnly, a HostKeyAlias — when
redmedic connects, then it takes the same path `ssh` would, checks every host key on the
way strictly, and says which hop failed when one does.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest

from redmedic.cli import main
from redmedic.connection import ConnectOptions, connect
from redmedic.errors import AuthError, ConnectError, HostKeyError
from redmedic.model.inventory import Host
from redmedic.model.sshconfig import JumpHost, SshOptions
from tests.support.loopback import (
    LoginUser,
    SshdHost,
    SshSession,
    generate_key,
    known_hosts_line,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def target(ssh_session: SshSession) -> SshdHost:
    return ssh_session.start_sshd(name="target")


@pytest.fixture(scope="module")
def bastion(ssh_session: SshSession, target: SshdHost) -> SshdHost:
    """A jump host that may forward to the target and nowhere else."""
    return ssh_session.start_sshd(
        name="bastion", extra_config=f"PermitOpen {target.address}:{target.port}\n"
    )


@pytest.fixture
def via_bastion(
    target: SshdHost, bastion: SshdHost, ssh_session: SshSession, test_user: LoginUser
) -> Host:
    """The target as a host whose ssh config says `ProxyJump bastion`."""
    return behind(target, test_user, ssh_session, jump(bastion, ssh_session, test_user))


def known_hosts(path: Path, *hosts: SshdHost) -> Path:
    path.write_text("".join(h.known_hosts_line + "\n" for h in hosts))
    return path


def jump(host: SshdHost, session: SshSession, user: LoginUser, **ssh: object) -> JumpHost:
    """A ProxyJump hop as the ssh config parser resolves it: its own user and key."""
    options = SshOptions(identity_files=(str(session.client_key),), **ssh)  # type: ignore[arg-type]
    return JumpHost(host.name, host.address, host.port, user.name, options)


def behind(target: SshdHost, user: LoginUser, session: SshSession, *hops: JumpHost) -> Host:
    return Host(
        name="db1",
        address=target.address,
        port=target.port,
        user=user.name,
        private_key_file=str(session.client_key),
        ssh=SshOptions(proxy_jump=hops),
    )


def owner_pids(local_port: int) -> set[int]:
    """PIDs holding a TCP socket whose local port is `local_port` (from /proc, IPv4)."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == local_port:
                inodes.add(fields[9])
    owners = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if any(link == f"socket:[{inode}]" for inode in inodes for link in links):
            owners.add(int(pid))
    return owners


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        with open(f"/proc/{pid}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
    return False


def transports() -> set[paramiko.Transport]:
    """The paramiko transports whose threads run now (each open SSH session has one)."""
    return {t for t in threading.enumerate() if isinstance(t, paramiko.Transport)}


def still_running(these: set[paramiko.Transport]) -> set[paramiko.Transport]:
    """Those of `these` still running after a bounded wait for their threads to end."""
    for transport in these:
        transport.join(timeout=10)
    return {t for t in these if t.is_alive()}


# --- ProxyJump -------------------------------------------------------------------------


def test_a_host_behind_a_bastion_is_reached_through_it_and_every_hop_is_closed(
    target: SshdHost, bastion: SshdHost, via_bastion: Host, tmp_path: Path
) -> None:
    host = via_bastion
    options = ConnectOptions(
        known_hosts_files=(str(known_hosts(tmp_path / "kh", target, bastion)),)
    )
    before = transports()

    with connect(host, options) as conn:
        seen = conn.run("echo $SSH_CONNECTION").stdout.split()
        # The target's client is the bastion's sshd, not us: the TCP connection it sees
        # belongs to a process of the bastion's daemon.
        client_port = int(seen[1])
        owners = owner_pids(client_port)
        assert owners and all(descends_from(pid, bastion.pid) for pid in owners), owners
        opened = transports() - before
        assert len(opened) == 2  # the bastion's and the target's

    assert still_running(opened) == set()


def test_a_chain_of_two_jump_hosts_reaches_the_target(
    target: SshdHost, ssh_session: SshSession, test_user: LoginUser, tmp_path: Path
) -> None:
    inner = ssh_session.start_sshd(
        name="inner", extra_config=f"PermitOpen {target.address}:{target.port}\n"
    )
    outer = ssh_session.start_sshd(
        name="outer", extra_config=f"PermitOpen {inner.address}:{inner.port}\n"
    )
    hops = (jump(outer, ssh_session, test_user), jump(inner, ssh_session, test_user))
    host = behind(target, test_user, ssh_session, *hops)
    kh = known_hosts(tmp_path / "kh", target, inner, outer)

    with connect(host, ConnectOptions(known_hosts_files=(str(kh),))) as conn:
        assert conn.run("echo reached").stdout == "reached\n"


def test_a_bastion_that_forbids_forwarding_fails_the_host_naming_the_bastion(
    target: SshdHost, ssh_session: SshSession, test_user: LoginUser, tmp_path: Path
) -> None:
    closed = ssh_session.start_sshd(name="closed", extra_config="AllowTcpForwarding no\n")
    host = behind(target, test_user, ssh_session, jump(closed, ssh_session, test_user))
    kh = known_hosts(tmp_path / "kh", target, closed)

    with pytest.raises(ConnectError) as caught:
        connect(host, ConnectOptions(known_hosts_files=(str(kh),)))

    assert str(caught.value).startswith(
        f"db1: via closed: cannot open a tunnel to {target.address}:{target.port}: "
        "Administratively prohibited"
    )
    assert "AllowTcpForwarding" in str(caught.value)


@pytest.mark.parametrize("pinned", ["nothing", "another key"])
def test_a_bastion_whose_key_is_unknown_or_changed_is_refused_before_logging_in(
    pinned: str,
    target: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    tmp_path: Path,
) -> None:
    guarded = ssh_session.start_sshd(
        name=f"guarded-{pinned[0]}", extra_config=f"PermitOpen {target.address}:{target.port}\n"
    )
    kh = known_hosts(tmp_path / "kh", target)
    if pinned == "another key":
        old = generate_key(tmp_path / "old_key")
        with kh.open("a") as handle:
            handle.write(known_hosts_line(guarded.address, guarded.port, old) + "\n")
    host = behind(target, test_user, ssh_session, jump(guarded, ssh_session, test_user))

    for trust in (False, True) if pinned == "another key" else (False,):
        options = ConnectOptions(known_hosts_files=(str(kh),), trust_new_host_keys=trust)
        with pytest.raises(HostKeyError) as caught:
            connect(host, options)
        verdict = "is unknown" if pinned == "nothing" else "has CHANGED"
        label = f"[{guarded.address}]:{guarded.port}"
        assert str(caught.value).startswith(
            f"db1: via {guarded.name}: host key for {label} {verdict}"
        )

    assert "Accepted publickey" not in guarded.log_text()  # no credential went to it


def test_the_targets_key_behind_a_bastion_is_checked_too(
    target: SshdHost, bastion: SshdHost, via_bastion: Host, tmp_path: Path
) -> None:
    host = via_bastion
    kh = known_hosts(tmp_path / "kh", bastion)

    with pytest.raises(HostKeyError) as caught:
        connect(host, ConnectOptions(known_hosts_files=(str(kh),)))

    assert str(caught.value).startswith(
        f"db1: host key for [{target.address}]:{target.port} is unknown"
    )


def test_trusting_new_keys_records_both_the_bastions_and_the_targets(
    target: SshdHost, bastion: SshdHost, via_bastion: Host, tmp_path: Path
) -> None:
    host = via_bastion
    kh = tmp_path / "kh"

    connect(host, ConnectOptions(known_hosts_files=(str(kh),), trust_new_host_keys=True)).close()

    assert sorted(kh.read_text().splitlines()) == sorted(
        [target.known_hosts_line, bastion.known_hosts_line]
    )


# --- ProxyCommand ----------------------------------------------------------------------


def ssh_w(bastion: SshdHost, session: SshSession, user: LoginUser, kh: Path) -> str:
    """`ssh -W %h:%p bastion` as a user would put it in ProxyCommand (tokens expanded)."""
    return shlex.join(
        ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={kh}", "-i", str(session.client_key), "-p", str(bastion.port),
         "-W", "%s:%d", f"{user.name}@{bastion.address}"]
    )  # fmt: skip


def children_of_us() -> list[str]:
    me = str(os.getpid())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parent = stat.read().rsplit(")", 1)[1].split()[1]
            if parent == me:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    found.append(cmdline.read().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def test_a_proxy_command_carries_the_connection_and_is_reaped_on_close(
    target: SshdHost,
    bastion: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    tmp_path: Path,
) -> None:
    kh = known_hosts(tmp_path / "kh", target, bastion)
    command = ssh_w(bastion, ssh_session, test_user, kh) % (target.address, target.port)
    host = Host(
        name="db1",
        address=target.address,
        port=target.port,
        user=test_user.name,
        private_key_file=str(ssh_session.client_key),
        ssh=SshOptions(proxy_command=command),
    )

    with connect(host, ConnectOptions(known_hosts_files=(str(kh),))) as conn:
        assert conn.run("echo through").stdout == "through\n"
        assert any(" -W " in c for c in children_of_us())

    assert not [c for c in children_of_us() if " -W " in c]  # reaped, not a zombie


def test_a_failing_proxy_command_is_one_line_with_its_own_words(
    target: SshdHost, ssh_session: SshSession, test_user: LoginUser, tmp_path: Path
) -> None:
    host = Host(
        name="db1",
        address=target.address,
        port=target.port,
        user=test_user.name,
        private_key_file=str(ssh_session.client_key),
        ssh=SshOptions(proxy_command="sh -c 'echo bastion.example: no route >&2; exit 3'"),
    )
    kh = known_hosts(tmp_path / "kh", target)

    with pytest.raises(ConnectError) as caught:
        connect(host, ConnectOptions(known_hosts_files=(str(kh),), connect_timeout=5.0))

    message = str(caught.value)
    assert "\n" not in message
    assert "exited with 3: bastion.example: no route" in message
    assert not [c for c in children_of_us() if "no route" in c]  # reaped


# --- keys ------------------------------------------------------------------------------


@pytest.fixture
def wrong_key(tmp_path: Path) -> Path:
    path = tmp_path / "wrong_ed25519"
    generate_key(path)
    return path


def with_keys(host: SshdHost, user: LoginUser, *files: Path, only: bool = False) -> Host:
    return Host(
        name=host.name,
        address=host.address,
        port=host.port,
        user=user.name,
        ssh=SshOptions(identity_files=tuple(map(str, files)), identities_only=only),
    )


def test_every_identity_file_is_tried_in_order_and_missing_ones_are_skipped(
    sshd: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    known_hosts_file: Path,
    wrong_key: Path,
    tmp_path: Path,
) -> None:
    host = with_keys(sshd, test_user, tmp_path / "absent", wrong_key, ssh_session.client_key)
    options = ConnectOptions(known_hosts_files=(str(known_hosts_file),))

    with connect(host, options) as conn:
        assert conn.run("true").ok

    with pytest.raises(AuthError) as caught:
        connect(with_keys(sshd, test_user, tmp_path / "absent", wrong_key), options)
    assert f"tried key {wrong_key})" in str(caught.value)


@pytest.fixture
def agent(tmp_path: Path, ssh_session: SshSession) -> Iterator[str]:
    """A real ssh-agent holding the session's client key; yields its socket path."""
    sock = str(tmp_path / "agent.sock")
    process = subprocess.Popen(
        ["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            threading.Event().wait(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": sock}
        subprocess.run(
            ["ssh-add", str(ssh_session.client_key)], env=env, check=True, capture_output=True
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SSH_AUTH_SOCK", sock)
            yield sock
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def test_identities_only_keeps_agent_keys_that_are_not_listed_out(
    sshd: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    known_hosts_file: Path,
    wrong_key: Path,
    agent: str,
) -> None:
    options = ConnectOptions(known_hosts_files=(str(known_hosts_file),))

    with connect(with_keys(sshd, test_user, wrong_key), options) as conn:
        assert conn.run("true").ok  # the agent's key got us in

    with pytest.raises(AuthError) as caught:
        connect(with_keys(sshd, test_user, wrong_key, only=True), options)
    assert "ssh-agent" not in str(caught.value)

    # A listed file whose private half is encrypted (only its .pub is readable here) lets
    # the agent use the matching key, as with `ssh -o IdentitiesOnly=yes -i FILE`.
    listed = Path(agent).parent / "listed"
    listed.write_text("not a readable private key\n")
    shutil.copy(f"{ssh_session.client_key}.pub", f"{listed}.pub")
    with connect(with_keys(sshd, test_user, listed, only=True), options) as conn:
        assert conn.run("true").ok


# --- HostKeyAlias ----------------------------------------------------------------------


def test_a_host_key_alias_is_the_name_checked_and_recorded(
    ssh_host: Host, sshd: SshdHost, tmp_path: Path
) -> None:
    kh = tmp_path / "kh"
    kh.write_text(f"db-primary {sshd.host_key}\n")
    aliased = replace(ssh_host, ssh=SshOptions(host_key_alias="db-primary"))

    with connect(aliased, ConnectOptions(known_hosts_files=(str(kh),))) as conn:
        assert conn.run("true").ok
    with pytest.raises(HostKeyError, match=r"host key for \[.*\]:\d+ is unknown"):
        connect(ssh_host, ConnectOptions(known_hosts_files=(str(kh),)))

    other = tmp_path / "other"
    renamed = replace(ssh_host, ssh=SshOptions(host_key_alias="db-new"))
    connect(renamed, ConnectOptions(known_hosts_files=(str(other),), trust_new_host_keys=True))
    assert other.read_text() == f"db-new {sshd.host_key}\n"


# --- known hosts files from the ssh config ---------------------------------------------


def test_user_known_hosts_files_from_the_ssh_config_are_read_and_recorded_to(
    ssh_host: Host, sshd: SshdHost, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    configured = replace(ssh_host, ssh=SshOptions(user_known_hosts_files=(str(mine),)))

    connect(configured, ConnectOptions(trust_new_host_keys=True)).close()
    assert mine.read_text() == sshd.known_hosts_line + "\n"

    with connect(configured, ConnectOptions()) as conn:  # strict, found there
        assert conn.run("true").ok
    glob = replace(ssh_host, ssh=SshOptions(global_known_hosts_files=(str(mine),)))
    with connect(glob, ConnectOptions()) as conn:
        assert conn.run("true").ok


def test_the_hosts_connect_timeout_beats_the_runs(ssh_host: Host) -> None:
    # A socket that listens but never speaks: the TCP connection opens, no SSH banner comes.
    with socket.socket() as silent:
        silent.bind((ssh_host.address, 0))
        silent.listen(0)
        port = silent.getsockname()[1]
        host = replace(ssh_host, port=port, ssh=SshOptions(connect_timeout=0.5))
        with pytest.raises(ConnectError, match=r"no answer within 0\.5 s"):
            connect(host, ConnectOptions(connect_timeout=60.0))


# --- the user's path: ~/.ssh/config, the CLI ------------------------------------------


def test_the_cli_follows_proxy_jump_from_the_users_ssh_config(
    target: SshdHost,
    bastion: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    isolated_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kh = known_hosts(tmp_path / "kh", target, bastion)
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "config").write_text(
        f"Host bastion\n  HostName {bastion.address}\n  Port {bastion.port}\n"
        f"Host db1\n  HostName {target.address}\n  Port {target.port}\n  ProxyJump bastion\n"
        f"Host *\n  User {test_user.name}\n  IdentityFile {ssh_session.client_key}\n"
        f"  UserKnownHostsFile {kh}\n  ServerAliveInterval 5\n"
    )
    (ssh_dir / "config").chmod(0o600)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all:\n  hosts:\n    db1:\n")
    playbook = tmp_path / "look.yaml"
    playbook.write_text("name: Look\nhosts: all\ndiagnose:\n  - name: Hello\n    shell: 'true'\n")
    logins = bastion.log_text().count("Accepted publickey")

    code = main(["run", str(playbook), "-i", str(inventory), "--check"])

    assert code == 0, capsys.readouterr()
    assert bastion.log_text().count("Accepted publickey") == logins + 1
