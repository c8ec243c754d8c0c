"""The probes against a real redis-server on loopback: each test is one thing a user sees.

Every failure here is produced for real (a full accept queue, a maxclients limit, a
full memory, a TLS port, a loading dataset, an isolated network namespace), so the
classification is checked against what Redis and the kernel actually do, not against
our reading of their sources. Nothing leaves the machine: all traffic is loopback or
inside a private network namespace.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# The repository root is not on sys.path when pytest runs from the venv's script.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from bench.latency import Link, free_address, running_forwarder  # noqa: E402
from redmedic.redis.probes.outcome import ProbeOutcome, ProbeResult  # noqa: E402
from redmedic.redis.probes.redis import PROBE_KEY_PREFIX, redis_probe  # noqa: E402
from redmedic.redis.probes.tcp import tcp_probe  # noqa: E402
from tests.support.redis_server import (  # noqa: E402
    HOST,
    RedisServer,
    RedisStartError,
    free_port,
    running_redis,
    self_signed_cert,
)

pytestmark = pytest.mark.integration

PASSWORD = "Pr0be-s3cret-must-not-leak"
SHORT = 0.5  # seconds: the timeout for probes that are expected to time out


def assert_no_password(*results: ProbeResult) -> None:
    for result in results:
        assert PASSWORD not in result.detail, result
        assert PASSWORD not in repr(result), result


def client(server: RedisServer, password: str | None = None) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, password=password, protocol=2)


def accepted(check: redis.Redis) -> int:
    """How many clients the server has accepted so far; asked on ``check``'s one held
    connection, so asking again adds none."""
    return int(check.info("stats")["total_connections_received"])


# --- the healthy cases -------------------------------------------------------------


def test_a_healthy_server_answers_ping_and_the_write_probe_cleans_up_after_itself() -> None:
    with running_redis() as server:
        read = redis_probe(server.host, server.port)
        written = redis_probe(server.host, server.port, write=True)
        with client(server) as check:
            leftovers = check.keys(PROBE_KEY_PREFIX + "*")

    assert read.ok and read.outcome is ProbeOutcome.OK and read.detail == "PONG"
    assert written.ok and "written and deleted" in written.detail
    assert (written.address, written.port) == (server.host, server.port)
    assert 0 < written.elapsed_ms < 2000
    assert leftovers == []


def test_tcp_probe_connects_to_a_listening_port() -> None:
    with running_redis() as server:
        result = tcp_probe(server.host, server.port)

    assert result.ok, result
    assert f"{server.host}:{server.port}" in result.detail


def test_the_right_password_gets_a_pong() -> None:
    with running_redis("--requirepass", PASSWORD) as server:
        result = redis_probe(server.host, server.port, password=PASSWORD, write=True)

    assert result.ok, result
    assert_no_password(result)


def test_an_acl_user_with_the_right_password_gets_a_pong() -> None:
    acl = ["--user", "prober", "on", f">{PASSWORD}", "+ping", "+set", "+del", "~redmedic:*"]
    with running_redis(*acl) as server:
        result = redis_probe(
            server.host, server.port, username="prober", password=PASSWORD, write=True
        )

    assert result.ok, result
    assert_no_password(result)


def test_a_password_sent_to_a_server_without_one_is_ok_and_says_so_on_one_connection() -> None:
    """The server refuses the AUTH and answers the PING, SET and DEL sent behind it: those
    are what a client without a password gets, so no second connection asks again."""
    with running_redis() as server, client(server) as check:
        before = accepted(check)
        result = redis_probe(server.host, server.port, password=PASSWORD, write=True)
        clients = accepted(check) - before
        leftovers = check.keys(PROBE_KEY_PREFIX + "*")

    assert result.outcome is ProbeOutcome.OK, result
    assert result.detail == (
        "PONG; probe key written and deleted; "
        "the server has no password configured (AUTH not needed)"
    )
    assert clients == 1
    assert leftovers == []
    assert_no_password(result)


def test_a_probe_over_a_slow_network_waits_for_the_connect_and_one_round_trip() -> None:
    """Given 50 ms of RTT between here and the server (the benchmark's forwarder, which
    counts turns: bytes sent, then bytes answered), a write probe with a needless password
    is one connection and one turn: its commands leave together. It used to take two
    connections and four turns (AUTH; then PING, SET, DEL), 6 RTT instead of 2."""
    rtt = 0.05
    with running_redis() as server:
        address = next(free_address(server.port))
        link = Link("redis", address, server.port, server.host, server.port)
        with running_forwarder([link], rtt) as forwarder:
            result = redis_probe(address, server.port, password=PASSWORD, write=True)
            deadline = time.monotonic() + 10.0
            while (forwarder.open or not forwarder.closed) and time.monotonic() < deadline:
                time.sleep(0.01)  # a connection is recorded once both sides have closed
            turns = [seen.turns for seen in forwarder.closed]

    assert result.outcome is ProbeOutcome.OK, result
    assert turns == [1]
    assert result.elapsed_ms >= 2 * rtt * 1000


# --- the network layer ---------------------------------------------------------------


def test_nothing_listening_is_refused_at_both_layers() -> None:
    port = free_port()

    tcp = tcp_probe(HOST, port)
    red = redis_probe(HOST, port)

    assert tcp.outcome is ProbeOutcome.REFUSED, tcp
    assert red.outcome is ProbeOutcome.REFUSED, red
    assert red.detail.startswith("Error 111 connecting to")


@contextlib.contextmanager
def full_accept_queue() -> Iterator[int]:
    """A listener whose accept queue is full, so the kernel drops further SYNs.

    ``listen(0)`` leaves room for one completed connection (Linux allows backlog + 1);
    we fill it and never call accept(). New SYNs are then silently dropped, which is
    exactly what a firewall DROP rule looks like to a client, without sending a packet
    off this machine.
    """
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection((HOST, port), timeout=2.0):
            yield port


def test_dropped_syns_time_out_within_the_timeout() -> None:
    with full_accept_queue() as port:
        tcp = tcp_probe(HOST, port, timeout=SHORT)
        red = redis_probe(HOST, port, timeout=SHORT)

    for result in (tcp, red):
        assert result.outcome is ProbeOutcome.TIMEOUT, result
        assert "TCP connect" in result.detail
        assert SHORT * 1000 * 0.9 <= result.elapsed_ms <= SHORT * 1000 + 1000, result


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port whose kernel completes the handshake but where nobody ever answers."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_server_that_accepts_but_never_answers_times_out_reading() -> None:
    with silent_listener() as port:
        tcp = tcp_probe(HOST, port, timeout=SHORT)
        red = redis_probe(HOST, port, timeout=SHORT)

    assert tcp.ok, "the TCP layer is fine; only Redis is silent"
    assert red.outcome is ProbeOutcome.TIMEOUT, red
    assert "did not reply in time" in red.detail


NETNS_SCRIPT = textwrap.dedent(
    """
    import json
    from redmedic.redis.probes.redis import redis_probe
    from redmedic.redis.probes.tcp import tcp_probe

    results = {}
    for host in ("192.0.2.1", "198.51.100.1", "redis.example.invalid"):
        tcp = tcp_probe(host, 6379, timeout=1.0)
        red = redis_probe(host, 6379, timeout=1.0)
        results[host] = [tcp.outcome.value, tcp.detail, red.outcome.value, red.detail]
    print(json.dumps(results))
    """
)


def test_unreachable_networks_are_no_route_and_unknown_names_are_errors() -> None:
    """In a private network namespace: one 'unreachable' route (EHOSTUNREACH, like
    firewalld's icmp-host-prohibited), no route at all (ENETUNREACH), no resolver."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip")
    shell = 'ip route add unreachable 192.0.2.0/24 && exec "$0" -c "$1"'
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", shell, sys.executable, NETNS_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip(f"cannot create a network namespace: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)

    assert results["192.0.2.1"][0::2] == ["no-route", "no-route"], results  # errno 113
    assert results["198.51.100.1"][0::2] == ["no-route", "no-route"], results  # errno 101
    assert "Error 113" in results["192.0.2.1"][3]
    unknown = results["redis.example.invalid"]
    assert unknown[0::2] == ["error", "error"], unknown
    assert "cannot resolve" in unknown[1] and "cannot resolve" in unknown[3]


# --- authentication ---------------------------------------------------------------


def test_a_password_protected_server_probed_without_one_is_auth_required() -> None:
    with running_redis("--requirepass", PASSWORD) as server:
        result = redis_probe(server.host, server.port)

    assert result.outcome is ProbeOutcome.AUTH_REQUIRED, result
    assert result.detail.startswith("NOAUTH Authentication required")


def test_a_wrong_password_is_auth_failed_and_never_echoed() -> None:
    """The write probe's SET went out with the refused AUTH, and was refused too."""
    with running_redis("--requirepass", "the-real-one") as server:
        result = redis_probe(server.host, server.port, password=PASSWORD, write=True)
        with client(server, "the-real-one") as check:
            sets = check.info("commandstats").get("cmdstat_set", {}).get("calls", 0)

    assert result.outcome is ProbeOutcome.AUTH_FAILED, result
    assert result.detail.startswith("WRONGPASS")
    assert sets == 0
    assert_no_password(result)


def test_the_password_never_appears_in_any_result() -> None:
    with running_redis("--requirepass", PASSWORD) as protected, running_redis() as open_:
        results = [
            redis_probe(protected.host, protected.port, password=PASSWORD, write=True),
            redis_probe(protected.host, protected.port, password=PASSWORD + "x"),
            redis_probe(open_.host, open_.port, password=PASSWORD),
            redis_probe(HOST, free_port(), password=PASSWORD),
        ]

    assert_no_password(*results)


# --- server limits and states ----------------------------------------------------------


@contextlib.contextmanager
def held_connection(server: RedisServer) -> Iterator[None]:
    """Occupy a client slot, confirmed by a PONG (the readiness check's slot may still
    be in the middle of being freed, so a rejected attempt is retried, bounded)."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        with socket.create_connection((server.host, server.port), timeout=2.0) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(64).startswith(b"+PONG"):
                yield
                return
        time.sleep(0.05)
    raise AssertionError("could not hold a connection")


def test_a_server_at_maxclients_is_max_clients() -> None:
    # maxclients 1 works here: redis reserves 32 descriptors on top, far below ulimit -n.
    with running_redis("--maxclients", "1") as server, held_connection(server):
        result = redis_probe(server.host, server.port)

    assert result.outcome is ProbeOutcome.MAX_CLIENTS, result
    assert result.detail == "ERR max number of clients reached"


FILL_SCRIPT = "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'fill:' .. i, ARGV[2]) end"


def fill_past_maxmemory(server: RedisServer) -> None:
    """Write ~2 MB in one script, leaving used memory far above the 1 MB limit.

    Filling key by key stops right at the limit, and there the verdict flips with
    client buffers: closing the filling connection freed enough for one more small
    SET. Redis checks maxmemory once before a script starts, so a single EVAL
    overshoots, like a real incident where the dataset outgrew maxmemory.
    """
    with client(server) as filler:
        filler.eval(FILL_SCRIPT, 0, 2000, "x" * 1024)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            filler.set("one-more", "x")


def test_a_full_server_answers_ping_but_the_write_probe_finds_oom() -> None:
    with running_redis("--maxmemory", "1mb", "--maxmemory-policy", "noeviction") as server:
        fill_past_maxmemory(server)
        read_only = redis_probe(server.host, server.port)
        written = redis_probe(server.host, server.port, write=True)
        needless_password = redis_probe(server.host, server.port, password=PASSWORD, write=True)

    assert read_only.ok, "PING alone cannot see a full memory"
    for result in (written, needless_password):
        assert result.outcome is ProbeOutcome.OOM, result
        assert result.detail.startswith(
            "writes refused: OOM command not allowed when used memory > 'maxmemory'"
        )
    assert needless_password.detail.endswith(
        "; the server has no password configured (AUTH not needed)"
    )


def test_a_server_loading_its_dataset_is_loading(tmp_path: Path) -> None:
    with running_redis("--dir", str(tmp_path)) as writer, client(writer) as filler:
        for start in range(0, 3000, 500):
            filler.mset({f"k:{i}": "v" * 100 for i in range(start, start + 500)})
        filler.save()
    # 3000 keys x 2 ms each: the load lasts about 6 s. The short event interval makes
    # the server answer (with -LOADING) while it loads instead of every 2 MB.
    slow_load = ["--key-load-delay", "2000", "--loading-process-events-interval-bytes", "1024"]
    with running_redis("--dir", str(tmp_path), *slow_load) as server:
        result = redis_probe(server.host, server.port)

    assert result.outcome is ProbeOutcome.LOADING, result
    assert result.detail.startswith("LOADING Redis is loading the dataset in memory")


# --- TLS ---------------------------------------------------------------------------


@contextlib.contextmanager
def tls_redis(directory: Path, *, client_certs: bool = False) -> Iterator[tuple[RedisServer, int]]:
    cert, key = self_signed_cert(directory)
    tls_port = free_port()
    args = ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    if client_certs:
        args += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "yes"]
    else:
        args += ["--tls-auth-clients", "no"]
    try:
        with running_redis(*args) as server:
            yield server, tls_port
    except RedisStartError as exc:
        if "tls" in str(exc).lower() and "Bad directive" in str(exc):
            pytest.skip("this redis-server was built without TLS")
        raise


def test_a_tls_port_spoken_to_in_plaintext_is_tls(tmp_path: Path) -> None:
    with tls_redis(tmp_path) as (server, tls_port):
        plaintext = redis_probe(server.host, tls_port)
        over_tls = redis_probe(server.host, tls_port, tls=True)

    assert plaintext.outcome is ProbeOutcome.TLS, plaintext
    assert "TLS handshake" in plaintext.detail and "tls=True" in plaintext.detail
    assert over_tls.ok, over_tls


def test_a_tls_port_that_demands_a_client_certificate_is_tls(tmp_path: Path) -> None:
    with tls_redis(tmp_path, client_certs=True) as (server, tls_port):
        result = redis_probe(server.host, tls_port, tls=True)

    assert result.outcome is ProbeOutcome.TLS, result
    assert result.detail.startswith("TLS failure")


def test_tls_spoken_to_a_plaintext_port_is_tls() -> None:
    with running_redis() as server:
        result = redis_probe(server.host, server.port, tls=True, timeout=SHORT)

    assert result.outcome is ProbeOutcome.TLS, result
    assert "answers plaintext Redis" in result.detail


# --- protected mode ------------------------------------------------------------------


@contextlib.contextmanager
def relay_from(source: str, server: RedisServer) -> Iterator[int]:
    """A loopback port whose one connection reaches ``server`` from ``source``.

    To Redis the relayed client is not local, so it meets protected mode as a remote
    client does, while redis_probe itself still connects to loopback. Bytes are copied
    as they come, both ways, until either side closes; every wait is bounded."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(1)
        listener.settimeout(10.0)
        relay = threading.Thread(target=_relay_one, args=(listener, source, server))
        relay.start()
        try:
            yield listener.getsockname()[1]
        finally:
            relay.join(timeout=15.0)


def _relay_one(listener: socket.socket, source: str, server: RedisServer) -> None:
    with contextlib.suppress(OSError):
        accepted_client, _ = listener.accept()
        with (
            accepted_client as near,
            socket.create_connection((server.host, server.port), 5.0, (source, 0)) as far,
        ):
            while True:
                ready, _, _ = select.select([near, far], [], [], 5.0)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (far if sock is near else near).sendall(data)


def test_protected_mode_denial_from_a_real_server_is_protected_mode() -> None:
    """Redis 7.0 treats only 127.0.0.1 and ::1 as local; redis_probe cannot choose its
    source address, so a relay connects from 127.0.0.2. The probe's pipelined commands
    meet the server's DENIED and its close."""
    with running_redis("--protected-mode", "yes") as server:
        try:
            socket.create_connection((HOST, server.port), 2.0, ("127.0.0.2", 0)).close()
        except OSError as exc:
            pytest.skip(f"cannot use 127.0.0.2 as a source address: {exc}")
        with relay_from("127.0.0.2", server) as port:
            remote = redis_probe(HOST, port, password=PASSWORD, write=True)
        from_loopback = redis_probe(server.host, server.port)

    assert remote.outcome is ProbeOutcome.PROTECTED_MODE, remote
    assert remote.detail.startswith("DENIED Redis is running in protected mode"), remote
    assert from_loopback.ok, "protected mode never blocks 127.0.0.1"
