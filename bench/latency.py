"""A network's round trips on loopback: a TCP forwarder that holds every chunk RTT/2 each way.

    python bench/latency.py --rtt-ms 50 --links LINKS.json --log TURNS.jsonl

This kernel has no `netem` (CONFIG_NET_SCH_NETEM is not set), so the latency is added in
user space. Each link listens on its own loopback address (127.0.N.M: the whole 127/8 is
local) and forwards to one test host's real port (its sshd, or its redis). Tools are
pointed at the listening address (inventory, known_hosts), so every tool pays the same
delay for the same conversation.

How the delay is modelled, per connection accepted at t0:
- the TCP handshake costs one RTT, as on a real network: the upstream connection is opened
  at t0 + RTT/2 (the SYN's trip), so the server's first bytes (sshd's banner) reach the
  client at t0 + RTT; the client's bytes cannot leave before t0 + RTT (its connect() would
  only then return) and arrive RTT/2 later. The kernel completes the client's connect() at
  once, so the client sees that RTT as its first wait instead of inside connect().
- every later chunk is delivered RTT/2 after it was read, in order (one queue and one
  writer per direction; the delay is the same for all, so order is kept).
- TCP_NODELAY on both sockets: the forwarder must not add Nagle/delayed-ACK stalls of its
  own (paramiko does not set it; redmedic and the floor do).
No bandwidth limit and no loss: only latency. A connection the upstream refuses is closed
at once (the client sees EOF, not ECONNREFUSED: a forwarded port the host does not serve
should simply not be linked).

Counting: per connection the forwarder counts chunks and bytes each way and *turns* — a
client→server chunk followed by a server→client chunk — which is what a request/response
protocol pays one RTT for. Each closed connection is appended to the `--log` JSON-lines
file (the link's name, turns, chunks, bytes, seconds open). The same `Forwarder` runs in
process for tests and bench/handshake.py (`running_forwarder`), stats kept in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

_CHUNK = 65536
_CONNECT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Link:
    """Listen on (address, port), forward to (target_address, target_port)."""

    name: str
    address: str
    port: int
    target_address: str
    target_port: int


@dataclass(eq=False)
class Turns:
    """One forwarded connection's traffic: what a tool's conversation cost in round trips."""

    link: str
    turns: int = 0  # client→server chunk(s) answered by a server→client chunk
    c2s_chunks: int = 0
    s2c_chunks: int = 0
    c2s_bytes: int = 0
    s2c_bytes: int = 0
    seconds: float = 0.0
    refused: bool = False
    # where the last chunk came from: "c" client, "s" server ("" before any)
    _last: str = field(default="", repr=False)

    def client_chunk(self, size: int) -> None:
        self.c2s_chunks += 1
        self.c2s_bytes += size
        self._last = "c"

    def server_chunk(self, size: int) -> None:
        self.s2c_chunks += 1
        self.s2c_bytes += size
        if self._last == "c":
            self.turns += 1
        self._last = "s"

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_last")
        return data


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Forwarder:
    """Every link's listener on one asyncio loop; `closed` holds each finished connection."""

    def __init__(self, links: list[Link], rtt_s: float, log: TextIO | None = None) -> None:
        self.links = links
        self.half = rtt_s / 2
        self.rtt = rtt_s
        self.log = log
        self.closed: list[Turns] = []
        self.open: set[Turns] = set()
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        for link in self.links:
            server = await asyncio.start_server(
                lambda r, w, link=link: self._serve(link, r, w),
                link.address,
                link.port,
                reuse_address=True,
                backlog=512,
            )
            self._servers.append(server)

    async def stop(self) -> None:
        """Stop listening and end every connection still open (their stats are kept)."""
        for server in self._servers:
            server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _serve(
        self, link: Link, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        t0 = time.monotonic()
        stats = Turns(link.name)
        self.open.add(stats)
        _nodelay(client_w)
        try:
            if self.half:
                await asyncio.sleep(self.half)  # the SYN's trip to the host
            try:
                server_r, server_w = await asyncio.wait_for(
                    asyncio.open_connection(link.target_address, link.target_port),
                    _CONNECT_TIMEOUT_S,
                )
            except (OSError, TimeoutError):
                stats.refused = True
                client_w.close()
                return
            _nodelay(server_w)
            # The client could first send at t0 + RTT (its connect() returns then).
            await asyncio.gather(
                self._pipe(client_r, server_w, stats.client_chunk, t0 + self.rtt),
                self._pipe(server_r, client_w, stats.server_chunk, 0.0),
            )
        finally:
            stats.seconds = round(time.monotonic() - t0, 4)
            self.open.discard(stats)
            self.closed.append(stats)
            if self.log is not None:
                self.log.write(json.dumps(stats.record()) + "\n")
                self.log.flush()
            client_w.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        count: Any,
        not_before: float,
    ) -> None:
        """Copy one direction, each chunk delivered `half` after it was read, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            try:
                while True:
                    due, data = await queue.get()
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
            except OSError:
                return

        sender = asyncio.create_task(deliver())
        try:
            while True:
                try:
                    data = await reader.read(_CHUNK)
                except OSError:
                    data = b""
                now = time.monotonic()
                if data:
                    count(len(data))
                queue.put_nowait((max(now, not_before) + self.half, data))
                if not data:
                    break
            await sender
        finally:
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


@contextlib.contextmanager
def running_forwarder(links: list[Link], rtt_s: float) -> Iterator[Forwarder]:
    """The forwarder on its own thread and loop for the block (tests, bench/handshake.py)."""
    loop = asyncio.new_event_loop()
    forwarder = Forwarder(links, rtt_s)
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(forwarder.start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="latency-forwarder", daemon=True)
    thread.start()
    ready.wait(30.0)
    if failure:
        raise failure[0]
    try:
        yield forwarder
    finally:
        asyncio.run_coroutine_threadsafe(forwarder.stop(), loop).result(30.0)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30.0)
        loop.close()


def free_address(port: int, start: int = 100) -> Iterator[str]:
    """Loopback addresses 127.0.N.M (N from `start`) where `port` is free, in order.

    The simulated hosts use 127.0.1-16.x (tests/support/loopback.py); the forwarder's
    addresses start above them, so a forwarded address never shadows a host.
    """
    for slot in range(253 * 100):
        address = f"127.0.{start + slot // 253}.{2 + slot % 253}"
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
        yield address


class ForwarderProcess:
    """`latency.py` as a child process for bench/run.py, stopped by its PID.

    Its own process: its CPU is not the harness's nor any tool's (measure.py counts only the
    tool's tree), and the harness's waits do not stall its timers.
    """

    def __init__(self, links: list[Link], rtt_ms: float, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.links_file = folder / "links.json"
        self.links_file.write_text(json.dumps([asdict(link) for link in links]))
        self.log = folder / "turns.jsonl"
        self.log.touch()
        self._read = 0
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--rtt-ms", str(rtt_ms), "--links", str(self.links_file),
             "--log", str(self.log)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"the latency forwarder did not start (said {line!r})")

    def new_connections(self) -> list[dict[str, Any]]:
        """Connections closed since the last call (one record each, see `Turns`)."""
        with open(self.log) as handle:
            handle.seek(self._read)
            text = handle.read()
        done, _, _ = text.rpartition("\n")  # a line being written stays for next time
        self._read += len(done) + 1 if done else 0
        return [json.loads(line) for line in done.splitlines() if line]

    def cpu_s(self) -> float:
        """CPU the forwarder used so far (is it the bottleneck?)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", type=float, required=True, help="round-trip time to add")
    parser.add_argument("--links", type=Path, required=True, help="JSON list of links")
    parser.add_argument("--log", type=Path, required=True, help="JSON lines, one per connection")
    args = parser.parse_args()
    links = [Link(**item) for item in json.loads(args.links.read_text())]

    async def main() -> None:
        with open(args.log, "a") as log:
            forwarder = Forwarder(links, args.rtt_ms / 1000, log)
            await forwarder.start()
            print("ready", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()
            await forwarder.stop()

    asyncio.run(main())
    return 0


if __name__ == "__main__":
    sys.exit(_main())
