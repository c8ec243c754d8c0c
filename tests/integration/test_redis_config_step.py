"""`redis_config` on real files, a real shell, real sshd + sudo, and a real redis-server.

Given Debian's own redis.conf (tests/data/redis.conf), when an operator runs a playbook
that sets or removes directives, then exactly the lines in force change, in the file that
holds them, secrets never show, and a second run changes nothing. The parser's idea of the
effective configuration is checked against what a real redis-server reports.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redmedic.cli import main
from redmedic.connection import ConnectOptions, LocalConnection, connect
from redmedic.connection.base import Connection, RemoteFile
from redmedic.errors import StepError
from redmedic.model.inventory import Host
from redmedic.model.plan import LIVE, CommandChange, FileChange
from redmedic.model.templating import Templar
from redmedic.redis import redisconf
from redmedic.safety.apply import apply, undo
from redmedic.safety.secrets import MASK, Masker
from redmedic.steps.base import StepContext
from redmedic.steps.redis_config import RedisConfig, RedisConfigArgs, load_config
from tests.support.loopback import LoginUser, SshdHost, SshSession
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration

DEBIAN = (Path(__file__).parents[1] / "data" / "redis.conf").read_text()
PASSWORD = "Cfg-s3cret with space"
LOCAL = Host(name="box", address="127.0.0.1", connection="local")


# -- helpers -------------------------------------------------------------------------------


def context(conn: Connection, host: Host, *, become: bool = False) -> StepContext:
    return StepContext(
        host=host,
        conn=conn,
        vars={},
        phase="fix",
        step_name="redis config",
        where="test",
        become=become,
        check=False,
        templar=Templar(),
        masker=Masker(),
    )


def runnable_debian_conf(directory: Path, port: int, **extra: redisconf.Value) -> Path:
    """Debian's file, edited (by our own editor) so it runs as a foreground test server."""
    base = redisconf.Config("/c", {"/c": redisconf.parse(DEBIAN, "/c")})
    wanted: dict[str, redisconf.Value] = {
        "port": port,
        "daemonize": False,
        "pidfile": str(directory / "redis.pid"),
        "logfile": str(directory / "redis.log"),
        "dir": str(directory),
        "set-proc-title": False,  # keep the command line, as discovery reads it
        **extra,
    }
    path = directory / "redis.conf"
    path.write_text(redisconf.edit(base, wanted)["/c"])
    return path


@contextlib.contextmanager
def redis_from_conf(conf: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`redis-server CONF` (as an operator starts it), stopped by PID afterwards."""
    process = subprocess.Popen(
        ["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = conf.parent / "redis.log"
                pytest.fail(f"redis-server exited: {log.read_text() if log.exists() else ''}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.02)
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["run", *argv, "--output", "json"])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def events_of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


PLAYBOOK = """\
name: Password, clients and bind
hosts: all
fix:
  - name: Configure redis
    redis_config:
      path: "{{ conf }}"
      set:
        requirepass: "{{ redis_password }}"
        maxclients: 20000
        bind: [0.0.0.0, "-::*"]
        protected-mode: no
      remove: [appendonly]
    register: cfg
verify:
  - name: Show what the step saw
    shell: "echo files={{ cfg.files | length }} pw={{ cfg.has_password }} req={{ cfg.config.requirepass | default('none') }} max={{ cfg.config.maxclients | default('none') }}"
"""  # noqa: E501


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    """Debian's redis.conf plus a conf.d include that holds maxclients, and a playbook."""
    etc = tmp_path / "etc-redis"
    (etc / "conf.d").mkdir(parents=True)
    conf = etc / "redis.conf"
    conf.write_text(DEBIAN + f"include {etc}/conf.d/*.conf\n")
    conf.chmod(0o640)
    (etc / "conf.d" / "10-site.conf").write_text("# site limits\nmaxclients 500\n")
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  hosts:\n    box:\n      ansible_connection: local\n"
        f"      conf: {conf}\n      redis_password: {PASSWORD!r}\n"
    )
    dropin = etc / "conf.d" / "10-site.conf"
    return {"conf": conf, "dropin": dropin, "pb": playbook, "inv": inventory}


# -- the effective configuration is Redis's own ---------------------------------------------


def test_the_effective_config_we_compute_is_what_a_real_redis_runs_with(tmp_path: Path) -> None:
    port = free_port()
    conf = runnable_debian_conf(tmp_path, port, bind="127.0.0.1")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-a.conf").write_text("maxclients 123\nsave 900 1\nsave 300 10\n")
    (tmp_path / "conf.d" / "20-b.conf").write_text(
        "maxmemory 1gb\nproc-title-template '{title} {port}'\ntimeout 7\n"
    )
    with conf.open("a") as handle:
        handle.write(f'include "{tmp_path}/conf.d/*.conf"\ntimeout 9\n')
    with LocalConnection(LOCAL) as conn:
        loaded = load_config(context(conn, LOCAL), str(conf))
    ours = loaded.config.effective()
    names = ["port", "bind", "maxclients", "save", "maxmemory", "proc-title-template",
             "timeout", "protected-mode", "notify-keyspace-events", "appendfilename",
             "tcp-backlog", "daemonize"]  # fmt: skip
    with redis_from_conf(conf, port), redis.Redis(port=port, protocol=2) as client:
        theirs = {name: str(client.config_get(name)[name]) for name in names}
    for name in names:
        assert redisconf.same_args(name, [theirs[name]], [ours[name].value]), name
    assert ours["timeout"].value == "9" and ours["save"].value == "900 1 300 10"
    assert loaded.config.load_order()[1:] == [
        f"{tmp_path}/conf.d/10-a.conf",
        f"{tmp_path}/conf.d/20-b.conf",
    ]


# -- the playbook, end to end on this machine ------------------------------------------------


def test_dry_run_shows_masked_diffs_for_each_file_and_changes_nothing(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = site["conf"].read_bytes(), site["dropin"].read_bytes()
    code, events = run_cli(capsys, str(site["pb"]), "-i", str(site["inv"]), "--check")
    assert code == 0, events
    assert (site["conf"].read_bytes(), site["dropin"].read_bytes()) == before
    planned = events_of(events, "change_planned")
    # no Redis runs here: the edit can only reach it through a restart, and says why
    assert [p["description"].split(" (")[0] for p in planned] == [
        f"edit {site['conf']}",
        f"edit {site['dropin']}",
    ]
    assert "(needs a restart: " in planned[0]["description"]
    assert "Redis could not be asked (Could not connect to Redis" in planned[0]["description"]
    main_diff, dropin_diff = planned[0]["diff"], planned[1]["diff"]
    assert f"+requirepass {MASK}\n" in main_diff
    assert "-bind 127.0.0.1 -::1\n+bind 0.0.0.0 -::*\n" in main_diff
    assert "-protected-mode yes\n+protected-mode no\n" in main_diff
    assert "-appendonly no\n" in main_diff
    assert "-maxclients 500\n+maxclients 20000\n" in dropin_diff
    everything = json.dumps(events)
    assert PASSWORD not in everything and "Cfg-s3cret" not in everything
    assert events[-1]["hosts"]["box"]["status"] == "would_change"


def test_apply_edits_in_place_keeps_the_mode_and_a_second_run_changes_nothing(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, events = run_cli(capsys, str(site["pb"]), "-i", str(site["inv"]), "--yes")
    assert code == 0, events
    text = site["conf"].read_text()
    assert f'# requirepass foobared\nrequirepass "{PASSWORD}"\n' in text
    assert "\nbind 0.0.0.0 -::*\n" in text and "\nappendonly " not in text
    assert "maxclients 20000" not in text  # it lives in the drop-in, which wins
    assert site["dropin"].read_text() == "# site limits\nmaxclients 20000\n"
    assert stat.S_IMODE(site["conf"].stat().st_mode) == 0o640
    assert events[-1]["hosts"]["box"] == {"status": "changed", "changed": 2, "failed": 0}

    code, events = run_cli(capsys, str(site["pb"]), "-i", str(site["inv"]), "--yes")
    assert code == 0, events
    assert events[-1]["hosts"]["box"] == {"status": "ok", "changed": 0, "failed": 0}
    shown = events_of(events, "step_done")[-1]["output"]
    assert shown == f"files=2 pw=True req={MASK} max=20000"
    assert PASSWORD not in json.dumps(events)


def test_two_steps_on_one_file_compose(tmp_path: Path) -> None:
    conf = tmp_path / "redis.conf"
    conf.write_text(DEBIAN)
    step = RedisConfig()
    with LocalConnection(LOCAL) as conn:
        ctx = context(conn, LOCAL)
        first_args = RedisConfigArgs(path=str(conf), set={"maxclients": 100})
        (first,) = step.plan(first_args, step.diagnose(first_args, ctx))
        assert isinstance(first, FileChange)
        ctx.planned_files[str(conf)] = conf_after(first)
        second_args = RedisConfigArgs(path=str(conf), set={"maxmemory": "100mb"})
        (second,) = step.plan(second_args, step.diagnose(second_args, ctx))
    assert isinstance(second, FileChange)
    assert b"\nmaxclients 100\n" in second.after and b"\nmaxmemory 100mb\n" in second.after


def conf_after(change: FileChange) -> RemoteFile:
    """The file as the executor's overlay shows it to later steps once `change` is planned."""
    assert change.before is not None
    before = change.before
    return RemoteFile(change.path, change.after, before.mode, before.owner, before.group)


def test_a_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with LocalConnection(LOCAL) as conn, pytest.raises(StepError, match="set `path:`"):
        load_config(context(conn, LOCAL), str(tmp_path / "nope.conf"))


# -- a real SSH host with sudo ---------------------------------------------------------------


def test_over_ssh_with_sudo_a_root_only_file_is_edited_and_keeps_owner_and_mode(
    tmp_path: Path,
    sshd: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    known_hosts_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    etc = tmp_path / "etc-redis"
    etc.mkdir(mode=0o750)
    conf = etc / "redis.conf"
    conf.write_text(DEBIAN)
    os.chown(conf, 0, grp.getgrnam("root").gr_gid)
    conf.chmod(0o640)
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(PLAYBOOK.split("verify:")[0])
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    {sshd.name}:\n      ansible_host: {sshd.address}\n"
        f"      ansible_port: {sshd.port}\n      ansible_user: {test_user.name}\n"
        f"      ansible_ssh_private_key_file: {ssh_session.client_key}\n"
        f"      ansible_become: true\n      ansible_become_password: {test_user.password}\n"
        f"      conf: {conf}\n      redis_password: {PASSWORD!r}\n"
    )
    args = [str(playbook), "-i", str(inventory), "--known-hosts", str(known_hosts_file)]
    code, events = run_cli(capsys, *args, "--yes")
    assert code == 0, events
    assert f'requirepass "{PASSWORD}"' in conf.read_text()
    info = conf.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o640)
    everything = json.dumps(events)
    assert PASSWORD not in everything and test_user.password not in everything
    code, events = run_cli(capsys, *args, "--yes")
    assert events[-1]["hosts"][sshd.name]["status"] == "ok", events


def test_without_become_an_unreadable_file_says_to_use_become(
    tmp_path: Path, ssh_host: Host, ssh_options: ConnectOptions
) -> None:
    conf = tmp_path / "redis.conf"
    conf.write_text("port 1\n")
    conf.chmod(0o600)
    with connect(ssh_host, ssh_options) as conn, pytest.raises(StepError, match="become: true"):
        load_config(context(conn, ssh_host), str(conf))


# -- finding the file, and the running values -----------------------------------------------


@pytest.fixture
def fake_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `systemctl` first on PATH whose answers the test writes (this VM has no systemd)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "systemctl"
    script.write_text(
        '#!/bin/sh\ncase $* in\n*MainPID*) cat "$0.pid" ;;\n*ExecStart*) cat "$0.exec" ;;\nesac\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return script


def test_discovery_reads_the_units_running_process_then_its_execstart(
    tmp_path: Path, fake_systemctl: Path
) -> None:
    port = free_port()
    conf = runnable_debian_conf(tmp_path, port, bind="127.0.0.1")
    with redis_from_conf(conf, port) as process, LocalConnection(LOCAL) as conn:
        Path(f"{fake_systemctl}.pid").write_text(f"{process.pid}\n")
        loaded = load_config(context(conn, LOCAL), None, "redis-server")
    assert loaded.config.main == str(conf)
    assert loaded.discovered_by == f"process {process.pid} of redis-server"

    elsewhere = tmp_path / "etc" / "my.conf"
    elsewhere.parent.mkdir()
    shutil.copy(conf, elsewhere)
    Path(f"{fake_systemctl}.pid").write_text("0\n")
    Path(f"{fake_systemctl}.exec").write_text(
        f"{{ path=/usr/bin/redis-server ; argv[]=/usr/bin/redis-server {elsewhere} "
        "--supervised systemd --daemonize no ; ignore_errors=no ; start_time=[n/a] }\n"
    )
    with LocalConnection(LOCAL) as conn:
        loaded = load_config(context(conn, LOCAL), None, "redis-server")
    assert (loaded.config.main, loaded.discovered_by) == (
        str(elsewhere),
        "ExecStart of redis-server",
    )


def test_a_live_value_a_restart_would_undo_is_reported_and_set_back_live(tmp_path: Path) -> None:
    """Given a Redis whose maxclients someone lowered with CONFIG SET (the file says 100),
    when the step wants the file's values, then the drift is reported and the plan is one
    CONFIG SET (the file needs no edit), live: applied, Redis runs with 100 on the same
    connection; its undo puts the running 50 back."""
    port = free_port()
    conf = runnable_debian_conf(
        tmp_path, port, bind="127.0.0.1", requirepass=PASSWORD, maxclients=100
    )
    with (
        redis_from_conf(conf, port),
        redis.Redis(port=port, password=PASSWORD, protocol=2) as client,
    ):
        client.config_set("maxclients", 50)
        me = client.client_id()
        with LocalConnection(LOCAL) as conn:
            ctx = context(conn, LOCAL)
            args = RedisConfigArgs(path=str(conf), set={"maxclients": 100, "requirepass": PASSWORD})
            found = RedisConfig().diagnose(args, ctx)
            (change,) = RedisConfig().plan(args, found)
            assert isinstance(change, CommandChange) and change.effect == LIVE
            assert found.facts["redis_version"] == client.info("server")["redis_version"]
            applied = apply(conn, change)
            assert client.config_get("maxclients") == {"maxclients": "100"}
            undo(conn, applied)
            assert client.config_get("maxclients") == {"maxclients": "50"}
        assert client.client_id() == me  # the same connection all along
    assert found.facts["live"] == {"maxclients": "50", "requirepass": MASK}
    assert found.facts["live_error"] is None
    (finding,) = found.findings
    assert finding.cause == "max-clients"
    assert "a restart would undo the live value" in finding.summary
    assert PASSWORD not in repr(found)
    assert ctx.masker.mask(f'requirepass "{PASSWORD}"') == f"requirepass {MASK}"
    assert ctx.masker.mask(f"it was {PASSWORD}.") == f"it was {MASK}."  # registered by diagnose


# Every program a script starts, logged with its arguments (what `ps` would show) and then
# run for real: the shell's own builtins (printf, echo, [) start no process.
SHIM = '#!/bin/sh\nprintf "%s\\n" "$0 $*" >> "$ARGV_LOG"\nexec /usr/bin/{name} "$@"\n'
PROGRAMS = ("redis-cli", "timeout", "sed", "tr", "grep", "sleep", "cat")


def test_a_new_password_set_live_is_on_no_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a Redis without a password and a step that sets requirepass and moves the port,
    when the plan's live change is applied, checked and undone through the real redis-cli,
    then every program the scripts started is in the log, and none got the old or new
    password as an argument; the session stayed authenticated after the new password
    (its CONFIG GETs passed)."""
    shims = tmp_path / "bin"
    shims.mkdir()
    for name in PROGRAMS:
        (shims / name).write_text(SHIM.format(name=name))
        (shims / name).chmod(0o755)
    log = tmp_path / "argv.log"
    monkeypatch.setenv("ARGV_LOG", str(log))
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    port, moved = free_port(), free_port()
    conf = runnable_debian_conf(tmp_path, port, bind="127.0.0.1")
    with redis_from_conf(conf, port), redis.Redis(port=port, protocol=2) as client:
        me = client.client_id()
        with LocalConnection(LOCAL) as conn:
            args = RedisConfigArgs(path=str(conf), set={"requirepass": PASSWORD, "port": moved})
            found = RedisConfig().diagnose(args, context(conn, LOCAL))
            changes = RedisConfig().plan(args, found)
            assert len(changes) == 2, (changes[0].effect, found.facts)
            command = changes[1]
            assert isinstance(command, CommandChange) and command.precondition is not None
            check, expected = command.precondition
            assert conn.run(check).stdout == expected
            applied = apply(conn, command)
            assert client.config_get("port") == {"port": str(moved)}  # same connection
            undo(conn, applied)
        assert client.config_get("requirepass") == {"requirepass": ""}
        assert client.client_id() == me
    started = log.read_text()
    assert f"{shims}/redis-cli" in started and f"{shims}/timeout" in started
    assert PASSWORD not in started and redisconf.format_arg(PASSWORD) not in started
