"""What an SSH connection costs in round trips with paramiko, step by step, at a given RTT.

    python bench/handshake.py --rtt-ms 50 [--repeat 5]

One loopback sshd (tests/support/loopback.py) behind the latency forwarder
(bench/latency.py, in process). Each step is what redmedic's connection layer does, timed
and counted by the forwarder's turns (client bytes answered by server bytes):

  tcp+kex      socket.create_connection + paramiko.Transport(sock) + start_client: the TCP
               handshake, both banners, KEXINIT, ECDH, NEWKEYS (where one ends and the next
               begins depends on thread timing, so they are one step)
  auth none    transport.auth_none(user): the "which methods?" probe (redmedic skips it)
  auth key (paramiko)  transport.auth_publickey(user, key): the service request, its accept
               awaited, then the signed request (on the auth none connection, after it)
  auth key     redmedic's connection/eagerauth.py: the signed request right behind the
               service request
  open         transport.open_session()
  exec         redmedic's exec_request + exec_answer (connection/execrequest.py): the exec
               request sent, its answer awaited
  output       stdin sent, EOF, output read to the exit status
  open+exec+output again, on the same transport (what a second command costs)
  ... (exec_command)    the same with paramiko's own channel.exec_command (redmedic before)
  ... (stdin at once)   exec_request, then the stdin right behind it without awaiting the
               answer (as OpenSSH's client does): it still waits, inside sendall, for the
               window sshd grants only when the command starts
  ... (command in env)  not redmedic: the command in an `env` request (LC_REDMEDIC_SCRIPT,
               the sshd here has `AcceptEnv LC_*` as Debian's default config does), then
               exec_request for `eval "$LC_REDMEDIC_SCRIPT"` and the EOF at once: nothing
               has to wait for the window

The auth none step runs on a connection of its own (it is not part of redmedic's login),
so the other steps' counts are redmedic's path. Each round runs once without added
latency and once with it (interleaved, same sshd); `waited` is the difference in time over
the RTT — how many round trips the step really waits for, which a turn count can only
approximate. Prints a table of medians.
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
from redmedic.connection.eagerauth import auth_publickey  # noqa: E402
from redmedic.connection.execrequest import exec_answer, exec_request  # noqa: E402
from tests.support.loopback import SshSession, ensure_test_user  # noqa: E402

_PARAMIKO = " (exec_command)"
_AT_ONCE = " (stdin at once)"
_IN_ENV = " (command in env)"
_VARIANTS = ("", " again", _PARAMIKO, _AT_ONCE, _IN_ENV)
_PARAMIKO_AUTH = "auth key (paramiko)"


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


def one_connection(
    forwarder: Forwarder, address: str, port: int, user: str, key: paramiko.PKey, probe: bool
) -> list[tuple[str, int, float]]:
    steps = Steps(forwarder)
    sock = socket.create_connection((address, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    done = threading.Event()
    transport.start_client(event=done)
    done.wait(30)
    steps.done("tcp+kex")
    if probe:
        with contextlib.suppress(paramiko.BadAuthenticationType):
            transport.auth_none(user)
        steps.done("auth none")
        transport.auth_publickey(user, key)
        steps.done(_PARAMIKO_AUTH)
    else:
        auth_publickey(transport, user, key)
        steps.done("auth key")
    for again in _VARIANTS:
        channel = transport.open_session()
        steps.done("open" + again)
        if again == _PARAMIKO:
            channel.exec_command("/bin/sh -s")
        elif again == _IN_ENV:
            channel.set_environment_variable("LC_REDMEDIC_SCRIPT", "echo hi\n")
            exec_request(channel, 'eval "$LC_REDMEDIC_SCRIPT"')
        else:
            exec_request(channel, "/bin/sh -s")
            if again != _AT_ONCE and not exec_answer(channel, 30.0):
                raise RuntimeError("sshd refused the exec request")
        steps.done("exec" + again)
        if again != _IN_ENV:
            channel.sendall(b"echo hi\n")
        channel.shutdown_write()
        output = b""
        while data := channel.recv(65536):
            output += data
        if channel.recv_exit_status() != 0 or output != b"hi\n":
            raise RuntimeError(f"the command{again} printed {output!r}")
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
        sshd = session.start_sshd(name="handshake", extra_config="AcceptEnv LC_*")
        address = next(free_address(sshd.port))
        link = Link("handshake", address, sshd.port, sshd.address, sshd.port)
        key = paramiko.PKey.from_path(session.client_key)
        # (rtt ms, step) -> [(turns, ms)]
        samples: dict[tuple[float, str], list[tuple[int, float]]] = {}
        for _ in range(args.repeat):
            for rtt_ms in (0.0, args.rtt_ms):
                with running_forwarder([link], rtt_ms / 1000) as forwarder:
                    for probe in (False, True):
                        rows = one_connection(forwarder, address, sshd.port, user.name, key, probe)
                        for name, turns, ms in rows:
                            if probe and name not in ("auth none", _PARAMIKO_AUTH):
                                continue
                            samples.setdefault((rtt_ms, name), []).append((turns, ms))
    rtt = args.rtt_ms
    print(f"paramiko {paramiko.__version__}, {rtt:g} ms RTT, median of {args.repeat}\n")
    print(f"| step | turns | ms at 0 ms | ms at {rtt:g} ms | waited RTTs |\n|---|--:|--:|--:|--:|")
    order = ["tcp+kex", "auth none", _PARAMIKO_AUTH, "auth key", "open", "exec", "output"]
    for again in _VARIANTS[1:]:
        order += [f"{name}{again}" for name in ("open", "exec", "output")]
    for name in order:
        turns = statistics.median(t for t, _ in samples[(rtt, name)])
        slow = statistics.median(m for _, m in samples[(rtt, name)])
        fast = statistics.median(m for _, m in samples[(0.0, name)])
        print(f"| {name} | {turns:g} | {fast:.0f} | {slow:.0f} | {(slow - fast) / rtt:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
