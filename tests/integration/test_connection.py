"""The connection layer against real sshd, sudo and redis-server on loopback.

Each test is one thing an operator relies on when redmedic touches a host: commands report
what happened, files are edited atomically and keep their owner and mode, drift and bad
credentials are refused with a message that says what to do, and secrets never show.
"""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from redmedic.connection import (
    CommandResult,
    ConnectOptions,
    LocalConnection,
    SSHConnection,
    connect,
)
from redmedic.errors import (
    AuthError,
    BecomeError,
    CommandError,
    ConnectError,
    DriftError,
    HostKeyError,
)
from redmedic.model.inventory import Host
from redmedic.model.plan import CommandChange
from redmedic.steps.shell import Shell, ShellArgs
from redmedic.testing import step_context
from tests.support.loopback import (
    TEST_USER,
    LoginUser,
    SshdHost,
    SshSession,
    free_loopback_port,
    generate_key,
    known_hosts_line,
)
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

ADVERSARIAL = Path(__file__).parent.parent / "data" / "adversarial"


@pytest.fixture
def conn(ssh_host: Host, ssh_options: ConnectOptions) -> Iterator[SSHConnection]:
    with connect(ssh_host, ssh_options) as opened:
        assert isinstance(opened, SSHConnection)
        yield opened


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory only root can enter: the login user needs sudo to touch anything in it."""
    directory = tmp_path / "etc-redis"
    directory.mkdir(mode=0o750)
    return directory


def root_owned_config(directory: Path, content: bytes, mode: int = 0o640) -> Path:
    """A root-owned config file whose group is the login user's, like /etc/redis/redis.conf."""
    path = directory / "redis.conf"
    path.write_bytes(content)
    os.chown(path, 0, grp.getgrnam(TEST_USER).gr_gid)
    os.chmod(path, mode)
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if ".redmedic-" in name)


# --- running commands ------------------------------------------------------------------


def test_a_command_reports_exit_code_stdout_and_stderr(conn: SSHConnection) -> None:
    result = conn.run("echo out; echo err >&2; exit 3")

    assert result == CommandResult("echo out; echo err >&2; exit 3", 3, "out\n", "err\n")
    assert not result.ok
    assert result.tail() == "err"


def test_commands_get_their_stdin_and_bytes_round_trip(conn: SSHConnection) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value, not valid UTF-8

    result = conn.run("cat", stdin=data)

    assert result.ok
    assert result.stdout.encode("utf-8", "surrogateescape") == data


def test_big_output_before_reading_stdin_does_not_deadlock(conn: SSHConnection) -> None:
    # More output than both SSH windows hold, written before the command reads its input.
    result = conn.run("head -c 5000000 /dev/zero; wc -c", stdin=b"y" * 3_000_000, timeout=30)

    assert result.ok
    assert len(result.stdout) == 5_000_000 + len("3000000\n")
    assert result.stdout.endswith("3000000\n")


def test_many_commands_share_one_ssh_connection(conn: SSHConnection) -> None:
    started = time.monotonic()
    seen = {conn.run("echo $SSH_CONNECTION").stdout for _ in range(30)}
    elapsed = time.monotonic() - started

    assert len(seen) == 1, f"reconnected: {seen}"  # same client port every time
    assert elapsed < 3.0, f"30 commands took {elapsed:.2f}s"


def test_a_slow_command_times_out_with_a_clear_error(conn: SSHConnection) -> None:
    with pytest.raises(CommandError, match=r"did not finish within 0.3 s"):
        conn.run("sleep 5", timeout=0.3)

    assert conn.run("echo still usable").stdout == "still usable\n"


def test_become_runs_as_root_via_sudo_with_a_password(conn: SSHConnection) -> None:
    assert conn.run("id -un").stdout == f"{TEST_USER}\n"
    assert conn.run("id -un", become=True).stdout == "root\n"
    assert conn.run("cat", become=True, stdin=b"data for the command").stdout == (
        "data for the command"
    )


def test_a_wrong_sudo_password_is_refused_without_showing_it(
    ssh_host: Host, ssh_options: ConnectOptions, test_user: LoginUser
) -> None:
    wrong = "Wr0ng-sudo-pass-XYZ"
    host = replace(ssh_host, become_password=wrong)
    with connect(host, ssh_options) as conn, pytest.raises(BecomeError) as caught:
        conn.run("true", become=True)

    message = str(caught.value)
    assert "sudo password was rejected — check ansible_become_password" in message
    for secret in (wrong, test_user.password):
        assert secret not in message
        assert secret not in repr(caught.value)


def test_a_missing_sudo_password_says_which_variable_to_set(
    ssh_host: Host, ssh_options: ConnectOptions
) -> None:
    host = replace(ssh_host, become_password=None)
    with connect(host, ssh_options) as conn, pytest.raises(BecomeError) as caught:
        conn.run("true", become=True)

    assert "sudo needs a password — set ansible_become_password" in str(caught.value)


def _cmdlines_and_environs() -> Iterator[tuple[int, bytes]]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            for name in ("cmdline", "environ"):
                try:
                    yield int(entry), Path("/proc", entry, name).read_bytes()
                except OSError:
                    continue


def _watch_processes(
    run: Callable[[], object], seen: bytes, secret: bytes
) -> tuple[bool, list[bytes]]:
    """Run `run` in a thread and read every process's argv and environment while it runs:
    (whether some argv held `seen`, the argv/environments that held a secret marker)."""
    runner = threading.Thread(target=run)
    runner.start()
    saw = False
    leaks: list[bytes] = []
    # Watch for as long as the command runs (bounded): on a busy machine it may start late.
    deadline = time.monotonic() + 60
    while runner.is_alive() and time.monotonic() < deadline:
        for _, text in _cmdlines_and_environs():
            if b"Ps-s3cret" in text or secret in text:
                leaks.append(text)
            saw = saw or seen in text
        time.sleep(0.05)
    runner.join(timeout=10)
    return saw, leaks


@pytest.mark.parametrize("become", [True, False], ids=["sudo", "plain"])
def test_no_secret_appears_in_process_listings(
    conn: SSHConnection, test_user: LoginUser, become: bool
) -> None:
    # Given a login whose sudo password is known, and a command that carries a secret
    # (as `redis-cli -a {{ redis_password }}` does),
    conn.run("true", become=become)  # the one-time sudo check happens before we watch
    command = "sleep 2; echo Ps-s3cret-in-the-command >/dev/null"
    # when it runs on the host (through sudo or not) while I read every process listing,
    # twice (under sudo on the kept-open shell the first command started),
    saw, leaks = _watch_processes(
        lambda: [conn.run(command, become=become) for _ in range(2)],
        b"sleep\0002",
        test_user.password.encode(),
    )
    # then the command was seen running, and no argv or environment held a secret.
    assert saw, "the command was never seen running"
    assert leaks == []


# --- reading and writing files ---------------------------------------------------------


def test_reading_a_missing_file_gives_none(conn: SSHConnection) -> None:
    assert conn.read_file("/nonexistent/redis.conf") is None
    assert conn.read_file("/etc/redmedic-no-such-file", become=True) is None


def test_a_root_only_file_needs_become(conn: SSHConnection, workdir: Path) -> None:
    path = root_owned_config(workdir, b"bind 127.0.0.1\n")

    with pytest.raises(CommandError, match="Permission denied"):
        conn.read_file(str(path))
    found = conn.read_file(str(path), become=True)

    assert found is not None
    assert (found.content, found.mode, found.owner, found.group) == (
        b"bind 127.0.0.1\n",
        0o640,
        "root",
        TEST_USER,
    )


def test_editing_a_root_owned_file_with_sudo_keeps_owner_group_mode(
    conn: SSHConnection, workdir: Path
) -> None:
    old = b"bind 127.0.0.1\nport 6379\n"
    new = b"bind 0.0.0.0\nport 6379\n"
    path = root_owned_config(workdir, old)
    before = os.stat(path)
    found = conn.read_file(str(path), become=True)
    assert found is not None

    backup = conn.write_file(str(path), new, expected_sha256=found.sha256, become=True)

    after = os.stat(path)
    assert path.read_bytes() == new
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (
        before.st_uid,
        before.st_gid,
        0o640,
    )
    assert after.st_ino != before.st_ino  # replaced by rename, never rewritten in place
    assert backup is not None
    assert Path(backup).name.startswith("redis.conf.redmedic-") and backup.endswith("~")
    assert Path(backup).read_bytes() == old
    kept = os.stat(backup)
    assert (kept.st_uid, kept.st_gid, stat.S_IMODE(kept.st_mode)) == (0, before.st_gid, 0o640)
    assert leftovers(workdir) == [Path(backup).name]  # no temp file left behind


def test_a_big_file_is_written_whole_through_sudo(conn: SSHConnection, workdir: Path) -> None:
    content = os.urandom(4_000_000)
    path = workdir / "dump.bin"

    conn.write_file(str(path), content, expected_sha256=None, become=True, mode=0o600)

    assert path.read_bytes() == content
    found = conn.read_file(str(path), become=True)
    assert found is not None and found.content == content


def test_a_file_changed_after_reading_is_not_overwritten(
    conn: SSHConnection, workdir: Path
) -> None:
    path = root_owned_config(workdir, b"port 6379\n")
    found = conn.read_file(str(path), become=True)
    assert found is not None
    path.write_bytes(b"port 6380\n")  # someone edits it between plan and apply

    with pytest.raises(DriftError, match=r"changed on the host after it was read"):
        conn.write_file(str(path), b"port 7000\n", expected_sha256=found.sha256, become=True)

    assert path.read_bytes() == b"port 6380\n"
    assert leftovers(workdir) == []


def test_creating_a_file_that_appeared_meanwhile_is_refused(
    conn: SSHConnection, workdir: Path
) -> None:
    path = workdir / "new.conf"
    path.write_bytes(b"theirs\n")

    with pytest.raises(DriftError, match="was created on the host"):
        conn.write_file(str(path), b"ours\n", expected_sha256=None, become=True)

    assert path.read_bytes() == b"theirs\n"


def test_restore_brings_back_the_original_bytes(conn: SSHConnection, workdir: Path) -> None:
    original = b"maxclients 10000\n\xff\xfe not utf-8\n"
    path = root_owned_config(workdir, original)
    found = conn.read_file(str(path), become=True)
    assert found is not None
    backup = conn.write_file(str(path), b"broken\n", expected_sha256=found.sha256, become=True)

    conn.restore_file(str(path), backup, become=True)

    assert path.read_bytes() == original
    restored = os.stat(path)
    assert (restored.st_uid, stat.S_IMODE(restored.st_mode)) == (0, 0o640)
    assert backup is not None and Path(backup).read_bytes() == original  # backup kept


def test_a_new_file_gets_the_requested_mode_and_rollback_removes_it(
    conn: SSHConnection, workdir: Path
) -> None:
    path = workdir / "50-redmedic.conf"

    backup = conn.write_file(
        str(path), b"net.core.somaxconn = 1024\n", expected_sha256=None, become=True, mode=0o600
    )

    assert backup is None
    assert path.read_bytes() == b"net.core.somaxconn = 1024\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.stat(path).st_uid == 0
    conn.restore_file(str(path), None, become=True)
    assert not path.exists()


def test_the_login_user_edits_its_own_files_without_sudo(
    conn: SSHConnection, test_user: LoginUser
) -> None:
    path = f"{test_user.home}/redmedic-own.conf"
    try:
        assert conn.write_file(path, b"a\n", expected_sha256=None) is None
        found = conn.read_file(path)
        assert found is not None and found.owner == TEST_USER
        assert conn.write_file(path, b"b\n", expected_sha256=found.sha256, backup=False) is None
        assert Path(path).read_bytes() == b"b\n"
    finally:
        Path(path).unlink(missing_ok=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_leaves_the_file_untouched(conn: SSHConnection, tiny_disk: Path) -> None:
    path = root_owned_config(tiny_disk, b"port 6379\n")
    found = conn.read_file(str(path), become=True)
    assert found is not None

    with pytest.raises(CommandError, match="No space left on device") as caught:
        conn.write_file(str(path), b"x" * 200_000, expected_sha256=found.sha256, become=True)

    assert "is unchanged" in str(caught.value)
    assert path.read_bytes() == b"port 6379\n"
    assert leftovers(tiny_disk) == []


# --- host keys -------------------------------------------------------------------------


def test_an_unknown_host_key_is_refused_with_the_keyscan_hint(
    ssh_host: Host, sshd: SshdHost, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")

    with pytest.raises(HostKeyError) as caught:
        connect(ssh_host, ConnectOptions(known_hosts_files=(str(empty),)))

    message = str(caught.value)
    assert f"host key for [{sshd.address}]:{sshd.port} is unknown" in message
    assert "(SHA256:" in message
    assert f"`ssh-keyscan -p {sshd.port} {sshd.address} >> {empty}`" in message
    assert "--trust-new-host-keys" in message


def test_a_changed_host_key_is_refused_with_the_ssh_keygen_hint(
    ssh_host: Host, sshd: SshdHost, tmp_path: Path
) -> None:
    # The file pins another key for the same address, as after a reinstall or an attack.
    old_key = generate_key(tmp_path / "old_host_key")
    pinned = tmp_path / "known_hosts"
    pinned.write_text("# pinned\n" + known_hosts_line(sshd.address, sshd.port, old_key) + "\n")

    for trust in (False, True):
        options = ConnectOptions(known_hosts_files=(str(pinned),), trust_new_host_keys=trust)
        with pytest.raises(HostKeyError) as caught:
            connect(ssh_host, options)
        message = str(caught.value)
        assert f"host key for [{sshd.address}]:{sshd.port} has CHANGED" in message
        assert f"{pinned}:2 has SHA256:" in message
        assert f"ssh-keygen -R '[{sshd.address}]:{sshd.port}' -f {pinned}" in message
    assert pinned.read_text().count("\n") == 2  # a changed key is never recorded


def test_trusting_new_host_keys_records_them_once_then_checks_strictly(
    ssh_host: Host, sshd: SshdHost, tmp_path: Path
) -> None:
    file = tmp_path / "trusted_hosts"
    trusting = ConnectOptions(known_hosts_files=(str(file),), trust_new_host_keys=True)
    errors: list[BaseException] = []

    def connect_once() -> None:
        try:
            connect(ssh_host, trusting).close()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=connect_once) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert file.read_text() == sshd.known_hosts_line + "\n"  # one line, whatever the race
    with connect(ssh_host, ConnectOptions(known_hosts_files=(str(file),))) as conn:
        assert conn.run("true").ok


def test_trusted_keys_go_to_the_users_known_hosts_by_default(
    ssh_host: Host, sshd: SshdHost, isolated_home: Path
) -> None:
    connect(ssh_host, ConnectOptions(trust_new_host_keys=True)).close()

    recorded = (isolated_home / ".ssh" / "known_hosts").read_text()
    assert recorded == sshd.known_hosts_line + "\n"
    connect(ssh_host, ConnectOptions()).close()  # strict, and now known


# --- reaching and logging in -----------------------------------------------------------


def test_nothing_listening_is_a_quick_connect_error(ssh_host: Host) -> None:
    port = free_loopback_port(ssh_host.address)
    host = replace(ssh_host, port=port)
    started = time.monotonic()

    with pytest.raises(ConnectError, match=rf"connection to {ssh_host.address}:{port} refused"):
        connect(host, ConnectOptions())

    assert time.monotonic() - started < 1.0


def test_a_port_that_does_not_speak_ssh_is_a_connect_error(
    ssh_host: Host, redis_on_loopback: RedisServer
) -> None:
    host = replace(ssh_host, address="127.0.0.1", port=redis_on_loopback.port)

    with pytest.raises(ConnectError, match=r"SSH handshake .* failed"):
        connect(host, ConnectOptions(connect_timeout=0.5))


def test_password_login_works_and_a_wrong_password_is_an_auth_error(
    ssh_host: Host, ssh_options: ConnectOptions, test_user: LoginUser
) -> None:
    by_password = replace(ssh_host, private_key_file=None)
    with connect(replace(by_password, password=test_user.password), ssh_options) as conn:
        assert conn.run("id -un").stdout == f"{TEST_USER}\n"

    wrong = "N0t-the-ssh-password"
    with pytest.raises(AuthError) as caught:
        connect(replace(by_password, password=wrong), ssh_options)

    message = str(caught.value)
    assert f"SSH login as {TEST_USER} was refused (tried password)" in message
    assert wrong not in message and test_user.password not in message


def test_an_unauthorised_key_is_an_auth_error(
    ssh_host: Host, ssh_options: ConnectOptions, tmp_path: Path
) -> None:
    stranger = tmp_path / "id_stranger"
    generate_key(stranger)
    host = replace(ssh_host, private_key_file=str(stranger))

    with pytest.raises(AuthError, match=rf"tried key {stranger}"):
        connect(host, ssh_options)


def test_a_missing_key_file_is_an_auth_error_naming_the_variable(
    ssh_host: Host, ssh_options: ConnectOptions, tmp_path: Path
) -> None:
    host = replace(ssh_host, private_key_file=str(tmp_path / "nope"))

    with pytest.raises(AuthError, match="check ansible_ssh_private_key_file"):
        connect(host, ssh_options)


def test_a_dropped_connection_is_a_connect_error(conn: SSHConnection) -> None:
    conn.run("true")
    conn._transport.close()  # what a reboot looks like from here

    with pytest.raises(ConnectError, match="connection lost"):
        conn.run("true")


def test_a_command_sshd_refuses_to_start_is_one_clear_error_not_a_hang(
    ssh_session: SshSession, ssh_host: Host, tmp_path: Path
) -> None:
    # The login user at its process limit: sshd cannot fork the command and answers the
    # exec request with a failure (what OpenSSH's ssh prints as "exec request failed").
    full = ssh_session.start_sshd(name="nproc", max_user_processes=1)
    known = tmp_path / "known_hosts"
    known.write_text(full.known_hosts_line + "\n")
    host = replace(ssh_host, address=full.address, port=full.port)

    with connect(host, ConnectOptions(known_hosts_files=(str(known),))) as conn:
        started = time.monotonic()
        with pytest.raises(ConnectError) as refused:
            conn.run("echo hello", timeout=60)
        waited = time.monotonic() - started

    assert str(refused.value) == (
        f"{host.name}: sshd refused to start a command (it answered the exec request with a "
        "failure) — the login user may be at its process limit (ulimit -u) or the host out "
        "of memory; the host's sshd log says why"
    )
    assert waited < 30, "a refusal is an answer: nothing to wait for"
    assert "fork: Resource temporarily unavailable" in full.log_text()


# --- port forwarding -------------------------------------------------------------------


def redis_client(host: str, port: int) -> redis.Redis:
    """A client that reports a failure at once (redis-py retries with backoff by default)."""
    return redis.Redis(host=host, port=port, socket_timeout=2, retry=Retry(NoBackoff(), 0))


def _forward_threads() -> int:
    return sum(t.name.startswith("redmedic-") for t in threading.enumerate())


def test_redis_on_the_hosts_loopback_answers_through_the_tunnel(
    conn: SSHConnection, redis_on_loopback: RedisServer
) -> None:
    with conn.forward("127.0.0.1", redis_on_loopback.port) as (local_host, local_port):
        assert (local_host, local_port) != ("127.0.0.1", redis_on_loopback.port)
        for _ in range(2):  # two client connections, two channels
            client = redis_client(local_host, local_port)
            assert client.ping() is True
            assert client.set("redmedic:tunnel", "ok") and client.get("redmedic:tunnel") == b"ok"
            client.close()

    deadline = time.monotonic() + 3
    while _forward_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _forward_threads() == 0
    with pytest.raises(redis.ConnectionError):
        redis_client(local_host, local_port).ping()


def test_a_tunnel_to_a_closed_port_looks_like_connection_refused_to_the_client(
    conn: SSHConnection,
) -> None:
    closed = free_loopback_port()
    with conn.forward("127.0.0.1", closed) as (local_host, local_port):
        client = redis_client(local_host, local_port)
        with pytest.raises(redis.ConnectionError):
            client.ping()
        client.close()
    assert conn.run("true").ok


# --- local connections -----------------------------------------------------------------


def test_a_local_host_runs_reads_and_writes_the_same_way(
    tmp_path: Path, test_user: LoginUser
) -> None:
    host = Host(name="control", address="localhost", connection="local")
    path = root_owned_config(tmp_path, b"bind 127.0.0.1\n", mode=0o640)

    with connect(host, ConnectOptions()) as conn:
        assert isinstance(conn, LocalConnection)
        assert conn.run("echo out; echo err >&2; exit 2") == CommandResult(
            "echo out; echo err >&2; exit 2", 2, "out\n", "err\n"
        )
        assert conn.run("id -u", become=True).stdout == f"{os.geteuid()}\n"
        found = conn.read_file(str(path), become=True)
        assert found is not None and (found.mode, found.group) == (0o640, TEST_USER)
        backup = conn.write_file(str(path), b"bind 0.0.0.0\n", expected_sha256=found.sha256)
        assert path.read_bytes() == b"bind 0.0.0.0\n"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
        assert os.stat(path).st_gid == grp.getgrnam(TEST_USER).gr_gid
        with pytest.raises(DriftError):
            conn.write_file(str(path), b"again\n", expected_sha256=found.sha256)
        conn.restore_file(str(path), backup)
        assert path.read_bytes() == b"bind 127.0.0.1\n"
        with pytest.raises(CommandError, match=r"did not finish within 0\.2 s"):
            conn.run("sleep 5 & sleep 5", timeout=0.2)
        with conn.forward("127.0.0.1", 6379) as address:
            assert address == ("127.0.0.1", 6379)


def test_more_simulated_hosts_can_be_started(ssh_session: SshSession, ssh_host: Host) -> None:
    other = ssh_session.start_sshd()
    host = replace(ssh_host, name=other.name, address=other.address)
    options = ConnectOptions(known_hosts_files=(str(_write_known(other, ssh_session)),))

    with connect(host, options) as conn:
        assert conn.run("echo $SSH_CONNECTION").stdout.split()[2] == other.address


def _write_known(host: SshdHost, session: SshSession) -> Path:
    path = session.root / f"{host.name}.known_hosts"
    path.write_text(host.known_hosts_line + "\n")
    return path


# --- a shell step's stdin -------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["diagnose", "fix"])
def test_a_shell_steps_stdin_reaches_the_command_and_no_command_line(
    conn: SSHConnection, test_user: LoginUser, phase: str
) -> None:
    # Given a shell step that hands a secret to its command on stdin,
    case = yaml.safe_load((ADVERSARIAL / "secrets-shell-stdin.yaml").read_text())
    shell = Shell()
    args = ShellArgs(cmd=case["cmd"], stdin=case["stdin"])
    ctx = step_context(conn, phase=phase)
    got: list[str] = []

    def run() -> None:  # when it runs in diagnose, or is planned and then applied,
        if phase == "diagnose":
            ran = shell.diagnose(args, ctx).result
            assert ran is not None
            got.append(ran.stdout)
        else:
            [change] = shell.plan(args, shell.diagnose(args, ctx))
            assert isinstance(change, CommandChange)
            got.append(conn.run(change.command).stdout)

    saw, leaks = _watch_processes(run, b"sleep\x002", test_user.password.encode())
    # then the command read exactly that text, and no process listing held it.
    assert saw and leaks == []
    assert got == [case["stdin"]]
