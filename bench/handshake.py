"""What an SSH connection costs in round trips with paramiko, step by step, at a given RTT.

    python bench/handshake.py --rtt-ms 50 [--repeat 5]

One loopback sshd (tests/support/loopback.py) behind the latency forwarder
(bench/latency.py, in process). Each step is what redmedic's connection layer does, timed
and counted by the forwarder's turns (client bytes answered by server bytes):

  tcp+banner   socket.create_connection + paramiko.Transport(sock) + start_client, up to the
               server's banner being read (the TCP handshake's RTT is paid here)
  kex          the rest of start_client: KEXINIT, ECDH, NEWKEYS
  auth none    transport.auth_none(user): the "which methods?" probe (redmedic skips it)
  auth key     transport.auth_publickey(user, key): service request, then the signed request
  open         transport.open_session()
  exec         channel.exec_command(...): paramiko waits for the server's reply
  output       stdin sent, EOF, output read to the exit status
  open+exec+output again, on the same transport (what a second command costs)

The auth none step runs on a connection of its own (it is not part of redmedic's login),
so the other steps' counts are redmedic's path. Prints a table of median turns and ms.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paramiko

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.latency import Forwarder, Link, free_address, running_forwarder  # noqa: E402
from tests.support.loopback import SshSession, ensure_test_user  # noqa: E402


def _turns(forwarder: Forwarder) -> int:
    return sum(t.turns for t in (*forwarder.open, *forwarder.closed))


class Steps:
    """Timing and counting one step after another against the forwarder."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.rows: list[tuple[str, int, float]] = []
        self._turns = _turns(forwarder)
        self._t = time.monotonic()

    def done(self, name: str) -> None:
        time.sleep(0.005)  # let the forwarder's thread record the last answer it forwarded
        now, turns = time.monotonic(), _turns(self.forwarder)
        self.rows.append((name, turns - self._turns, (now - self._t - 0.005) * 1000))
        self._turns, self._t = turns, time.monotonic()


def _banner_read(transport: paramiko.Transport) -> threading.Event:
    """Set when paramiko has read the server's banner (remote_version is set then)."""
    seen = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not transport.remote_version and time.monotonic() < deadline:
            time.sleep(0.0005)
        seen.set()

    threading.Thread(target=watch, daemon=True).start()
    return seen


def one_connection(
    forwarder: Forwarder, address: str, port: int, user: str, key: paramiko.PKey, probe: bool
) -> list[tuple[str, int, float]]:
    steps = Steps(forwarder)
    sock = socket.create_connection((address, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    banner = _banner_read(transport)
    done = threading.Event()
    transport.start_client(event=done)
    banner.wait(30)
    steps.done("tcp+banner")
    done.wait(30)
    steps.done("kex")
    if probe:
        with contextlib.suppress(paramiko.BadAuthenticationType):
            transport.auth_none(user)
        steps.done("auth none")
    transport.auth_publickey(user, key)
    steps.done("auth key")
    for again in ("", " again"):
        channel = transport.open_session()
        steps.done("open" + again)
        channel.exec_command("/bin/sh -s")
        steps.done("exec" + again)
        channel.sendall(b"echo hi\n")
        channel.shutdown_write()
        while channel.recv(65536):
            pass
        channel.recv_exit_status()
        steps.done("output" + again)
        channel.close()
    transport.close()
    return steps.rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    user = ensure_test_user()
    with (
        tempfile.TemporaryDirectory(prefix="redmedic-handshake-") as tmp,
        SshSession(Path(tmp), user) as session,
    ):
        sshd = session.start_sshd(name="handshake")
        address = next(free_address(sshd.port))
        link = Link("handshake", address, sshd.port, sshd.address, sshd.port)
        key = paramiko.PKey.from_path(session.client_key)
        samples: dict[str, list[tuple[int, float]]] = {}
        with running_forwarder([link], args.rtt_ms / 1000) as forwarder:
            for _ in range(args.repeat):
                for probe in (False, True):
                    rows = one_connection(forwarder, address, sshd.port, user.name, key, probe)
                    for name, turns, ms in rows:
                        if probe and name != "auth none":
                            continue
                        samples.setdefault(name, []).append((turns, ms))
    print(f"paramiko {paramiko.__version__}, {args.rtt_ms:g} ms RTT, median of {args.repeat}\n")
    print("| step | round trips | ms |\n|---|--:|--:|")
    order = ["tcp+banner", "kex", "auth none", "auth key", "open", "exec", "output"]
    order += [f"{name} again" for name in ("open", "exec", "output")]
    for name in order:
        values = samples[name]
        turns = statistics.median(t for t, _ in values)
        ms = statistics.median(m for _, m in values)
        print(f"| {name} | {turns:g} | {ms:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
