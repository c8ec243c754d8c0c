"""A real, throwaway ``redis-server`` on loopback for integration tests (test tier 1).

Why a real server: the probe's whole job is to recognise what a real Redis says and does
(the exact error texts, when it closes a socket, what it answers while loading), so fakes
would only test our assumptions. Each server gets its own free port, its own temp dir for
``dir`` and ``logfile``, no persistence unless a test asks, and is stopped by its own PID
(SIGTERM, then SIGKILL if it does not exit in time). Every wait is bounded.

Arguments given to :func:`running_redis` come last on the command line, so they override
the defaults (redis-server lets a later ``--dir`` win, for example).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
#: Bound for a busy 2-core machine; a server that starts answers in milliseconds.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class RedisServer:
    """A running redis-server: where it listens, its PID, and where it writes."""

    host: str
    port: int
    pid: int
    workdir: Path

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def log_text(self) -> str:
        """The server's log so far, for assertion messages."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class RedisStartError(RuntimeError):
    """redis-server exited or never answered; the message carries its log tail."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_redis(*args: str) -> Iterator[RedisServer]:
    """Start ``redis-server`` on a free loopback port, yield it once it answers, stop it.

    The free port can be taken between choosing and binding it; the server then exits
    with "Address already in use" and another port is tried.
    """
    with tempfile.TemporaryDirectory(prefix="redmedic-redis-") as tmp:
        workdir = Path(tmp)
        for attempt in range(_PORT_ATTEMPTS):
            port = free_port()
            process = _spawn(port, workdir, args)
            try:
                server = RedisServer(HOST, port, process.pid, workdir)
                if _wait_until_answering(process, server, last_try=attempt == _PORT_ATTEMPTS - 1):
                    yield server
                    return
            finally:
                _stop(process)
    raise RedisStartError("redis-server could not get a free port")  # pragma: no cover


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """Write a throwaway self-signed certificate and key for a TLS port; return both paths."""
    cert, key = directory / "redis.crt", directory / "redis.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def _spawn(port: int, workdir: Path, args: tuple[str, ...]) -> subprocess.Popen[bytes]:
    command = [
        "redis-server",
        "--port", str(port),
        "--bind", HOST,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(workdir),
        "--logfile", str(workdir / "redis.log"),
        *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _wait_until_answering(
    process: subprocess.Popen[bytes], server: RedisServer, *, last_try: bool
) -> bool:
    """True once the server answers PING at all (``-LOADING``/``-NOAUTH`` count).

    False if it exited because the port was taken and another port may be tried.
    """
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = server.log_text()
            if "Address already in use" in log and not last_try:
                return False
            raise RedisStartError(f"redis-server exited with {process.returncode}:\n{log[-2000:]}")
        if _answers(server.host, server.port):
            return True
        time.sleep(0.05)
    raise RedisStartError(
        f"redis-server did not answer within {READY_TIMEOUT_S}s:\n{server.log_text()[-2000:]}"
    )


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(1) in (b"+", b"-")
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, wait (bounded), then SIGKILL: never leave a server behind."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)
