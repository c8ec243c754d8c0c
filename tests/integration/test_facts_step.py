"""`redis_facts`, `log_scan` and `redis_triage` against a real redis-server, over real SSH.

The simulated host is an sshd on 127.0.1.N; the login user is unprivileged and becomes
root with a sudo password (sent on stdin, like the Redis password). Its Redis runs with a
password and is bound to 127.0.0.1 only, so — as on a stock Debian server — the control
machine is refused at the host's address while the host itself answers.

User stories:
* given a password-protected Redis, when I gather facts, then I see its PID, its
  listening socket, its config file and INFO, and the password appears nowhere;
* given no password argument, the script finds `requirepass` in the config it reads;
* the whole gathering is one SSH exec (counted in sshd's own log);
* given a server at maxclients, when a client leaves while I gather facts, then INFO is
  read after all (the triage sizes memory from it);
* when I run a triage playbook, the bind cause is named with `ss` as evidence.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redmedic.cli import main
from redmedic.connection import ConnectOptions, connect
from redmedic.connection.base import Connection
from redmedic.model.inventory import Host
from redmedic.safety.secrets import MASK, Masker
from redmedic.steps.log_scan import LogScan, LogScanArgs
from redmedic.steps.redis_facts import RedisFacts, RedisFactsArgs
from redmedic.testing import step_context
from tests.support.loopback import LoginUser, SshdHost, SshSession
from tests.support.redis_server import RedisServer, running_redis

pytestmark = pytest.mark.integration

PASSWORD = "Facts-st3p-s3cret-pw"


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    """A Redis with a password, and a redis.conf saying what it runs with."""
    with running_redis("--requirepass", PASSWORD) as server:
        conf = tmp_path / "redis.conf"
        conf.write_text(
            f"# as started by the test\nbind 127.0.0.1\nport {server.port}\n"
            f'requirepass "{PASSWORD}"\nlogfile {server.log_path}\n'
        )
        yield server, conf


@pytest.fixture
def conn(ssh_host: Host, ssh_options: ConnectOptions) -> Iterator[Connection]:
    with connect(ssh_host, ssh_options) as opened:
        opened.run("true", become=True)  # settle how sudo works before anything is counted
        yield opened


def sessions(sshd: SshdHost) -> int:
    """Exec sessions sshd has logged so far (LogLevel VERBOSE logs each one)."""
    return sshd.log_text().count("Starting session: command")


def commands(conn: Connection) -> int:
    """Commands the connection ran: execs, and requests on its kept-open become shell."""
    return conn.traffic.execs + conn.traffic.kept


def sessions_after(sshd: SshdHost, before: int, expected: int) -> int:
    """sshd writes its log asynchronously: wait (bounded) until it settles."""
    deadline = time.monotonic() + 5.0
    count = sessions(sshd) - before
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        count = sessions(sshd) - before
    time.sleep(0.2)
    return sessions(sshd) - before


def test_facts_show_socket_config_and_info_and_never_the_password(
    conn: Connection, protected_redis: tuple[RedisServer, Path], sshd: SshdHost
) -> None:
    server, conf = protected_redis
    ctx = step_context(conn, become=True)
    before, ran = sessions(sshd), commands(conn)
    started = time.monotonic()
    result = RedisFacts().registered(
        RedisFacts().diagnose(
            RedisFactsArgs(port=server.port, config=str(conf), password=PASSWORD), ctx
        )
    )
    elapsed = time.monotonic() - started
    facts = result.facts

    assert commands(conn) - ran == 1  # the whole gathering: one command,
    assert sessions_after(sshd, before, 0) == 0  # on the shell `conn`'s first become opened
    assert elapsed < 5.0, elapsed
    assert facts["pid"] == server.pid
    assert facts["pid_source"] == "ss"  # no systemd here: found as the port's owner
    assert facts["redis_listening"] == [
        {"address": "127.0.0.1", "port": server.port, "process": "redis-server", "pid": server.pid}
    ]
    assert facts["config"]["path"] == str(conf)
    assert facts["config"]["source"] == "arg"
    assert facts["config"]["directives"]["requirepass"] == MASK
    assert facts["config"]["directives"]["port"] == str(server.port)
    assert facts["info"]["answered"] is True
    assert facts["info"]["server"]["tcp_port"] == server.port
    assert facts["info"]["server"]["process_id"] == server.pid
    assert facts["info"]["clients"]["maxclients"] == 10000
    assert facts["live_config"]["bind"] == "127.0.0.1"
    assert facts["max_open_files"]["soft"] >= 10032
    assert facts["kernel"]["overcommit_memory"] in (0, 1, 2)
    assert facts["log"]["path"] == str(server.log_path)
    assert any("Ready to accept connections" in line for line in facts["log"]["lines"])
    assert facts["check_system"]["checks"]["overcommit"] in ("OK", "WARNING")
    assert result.msg.startswith(f"redis-server pid {server.pid}; listening 127.0.0.1:")

    everything = json.dumps(facts) + result.msg + result.stdout + result.stderr
    assert PASSWORD not in everything
    assert ctx.masker.mask(f"x {PASSWORD} y") == f"x {MASK} y"


def test_without_a_password_argument_the_configs_requirepass_is_used(
    conn: Connection, protected_redis: tuple[RedisServer, Path]
) -> None:
    server, conf = protected_redis
    masker = Masker()
    result = RedisFacts().registered(
        RedisFacts().diagnose(
            RedisFactsArgs(port=server.port, config=str(conf)),
            step_context(conn, become=True, masker=masker),
        )
    )
    assert result.facts["info"]["error"] is None
    assert result.facts["info"]["memory"]["maxmemory_policy"] == "noeviction"
    assert masker.mask(PASSWORD) == MASK  # learnt from the config file
    assert PASSWORD not in json.dumps(result.facts)


def test_a_wrong_password_is_reported_as_the_servers_answer(
    conn: Connection, protected_redis: tuple[RedisServer, Path]
) -> None:
    server, _ = protected_redis
    wrong = "not-the-Right-one-42"
    result = RedisFacts().registered(
        RedisFacts().diagnose(
            RedisFactsArgs(port=server.port, password=wrong), step_context(conn, become=True)
        )
    )
    info = result.facts["info"]
    assert info["answered"] is True  # the server is there; it refused us
    assert "WRONGPASS" in info["error"]
    assert wrong not in json.dumps(result.facts)
    assert result.facts["config"]["source"] in ("default", "none")


def test_a_full_server_is_asked_again_once_a_client_leaves(conn: Connection) -> None:
    with running_redis("--maxclients", "1") as server:
        holder = redis.Redis(host=server.host, port=server.port, socket_timeout=30)
        holder.ping()  # the one slot: taken

        def leave_once_refused() -> None:
            deadline = time.monotonic() + 30
            while not holder.info("stats")["rejected_connections"]:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            holder.close()  # like the run's own probe from this machine, done

        leaving = threading.Thread(target=leave_once_refused)
        leaving.start()
        try:
            result = RedisFacts().registered(
                RedisFacts().diagnose(RedisFactsArgs(port=server.port), step_context(conn))
            )
        finally:
            leaving.join()
    info = result.facts["info"]
    assert info["error"] is None, info
    assert info["stats"]["rejected_connections"] >= 1  # it was refused first
    assert info["clients"]["maxclients"] == 1


def test_log_scan_reads_the_log_in_one_command(
    conn: Connection, redis_on_loopback: RedisServer, sshd: SshdHost
) -> None:
    before, ran = sessions(sshd), commands(conn)
    result = LogScan().registered(
        LogScan().diagnose(
            LogScanArgs(path=str(redis_on_loopback.log_path), unit=None),
            step_context(conn, become=True),
        )
    )
    assert commands(conn) - ran == 1
    assert sessions_after(sshd, before, 0) == 0
    assert result.facts["log_path"] == str(redis_on_loopback.log_path)
    overcommit = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
    if overcommit != "1":  # this machine's redis warns at start, as in production
        assert "overcommit" in result.facts["hits"]
        assert [f.cause for f in result.findings] == ["overcommit"]
    else:
        assert result.facts["hits"] == {}


TRIAGE = """\
name: Triage
hosts: all
become: true
diagnose:
  - name: Gather facts
    redis_facts: {port: "{{ redis_port }}", password: "{{ redis_password }}"}
    register: facts
  - name: Probe
    redis_probe: {port: "{{ redis_port }}", password: "{{ redis_password }}"}
    register: probe
  - name: Scan logs
    log_scan: {facts: "{{ facts }}"}
    register: logs
  - name: Triage
    redis_triage: {facts: "{{ facts }}", probe: "{{ probe }}", logs: "{{ logs }}", port: "{{ redis_port }}"}
    register: triage
  - name: Bind was named
    assert:
      that: ["'bind' in triage.causes"]
"""  # noqa: E501


def test_a_triage_playbook_names_bind_with_the_socket_as_evidence(
    tmp_path: Path,
    sshd: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    known_hosts_file: Path,
    protected_redis: tuple[RedisServer, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _ = protected_redis
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    {sshd.name}:\n      ansible_host: {sshd.address}\n"
        f"      ansible_port: {sshd.port}\n      ansible_user: {test_user.name}\n"
        f"      ansible_ssh_private_key_file: {ssh_session.client_key}\n"
        f"      ansible_become_password: {test_user.password}\n"
        f"      redis_port: {server.port}\n      redis_password: {PASSWORD}\n"
    )
    playbook = tmp_path / "triage.yaml"
    playbook.write_text(TRIAGE)
    code = main(["run", str(playbook), "-i", str(inventory), "--known-hosts",
                 str(known_hosts_file), "--output", "json", "--check"])  # fmt: skip
    out = capsys.readouterr().out
    events: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
    assert code == 0, events
    assert events[-1]["hosts"][sshd.name]["status"] == "ok"

    triage = [e for e in events if e["event"] == "finding_reported" and e["step"] == "Triage"]
    bind = next(e for e in triage if e["cause"] == "bind")
    assert (
        bind["evidence"][0] == f"ss: LISTEN 127.0.0.1:{server.port} redis-server (pid {server.pid})"
    )
    assert any(
        line.startswith(f"control: Error 111 connecting to {sshd.address}:{server.port}")
        for line in bind["evidence"]
    )
    assert "host: PONG" in bind["evidence"]
    assert {e["cause"] for e in triage} <= {"bind", "overcommit"}
    assert PASSWORD not in out
    assert test_user.password not in out
