"""SSH connections with paramiko: one transport per host, one channel per command.

Reaching and logging in (sockets, ProxyJump hops, ProxyCommand, host keys) is `sshopen`'s
job and choosing keys `sshauth`'s; this module uses the logged-in transport: commands on
cheap channels, port forwards, ServerAlive keepalives. Every paramiko / socket exception
met here becomes ConnectError or CommandError; none escapes this module.
"""

from __future__ import annotations

import logging
import select
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import paramiko

from redmedic.connection.base import (
    ENCODING,
    ERRORS,
    Become,
    Connection,
    ConnectOptions,
    script_on_stdin,
    short_command,
    timeout_error,
)
from redmedic.connection.execrequest import exec_answer, exec_request
from redmedic.connection.keepalive import Keepalive
from redmedic.connection.keptshell import KeptShell, ShellEnded, loop_program, new_nonce, request
from redmedic.connection.outputcap import OutputCap
from redmedic.connection.spare import SpareChannel
from redmedic.connection.sshauth import SSH_ERRORS, reason
from redmedic.connection.sshopen import PARAMIKO_LOGGER, Chain, connect_timeout, open_chain
from redmedic.connection.traffic import Traffic
from redmedic.errors import CommandError, ConnectError
from redmedic.model.inventory import Host

_BUFFER = 65536
# stdin larger than this is sent from a helper thread, so a command that writes a lot of
# output before it reads all of its input cannot deadlock against our send.
_INLINE_STDIN = 256 * 1024
# Longest we sleep between checks while a command runs (for stderr and the deadline).
_SLICE = 0.05


class SSHConnection(Connection):
    """A logged-in SSH transport to one host; `run` opens a cheap channel per command.

    Build one with `SSHConnection.open` (or `redmedic.connection.connect`).
    """

    def __init__(
        self, host: Host, chain: Chain, options: ConnectOptions, traffic: Traffic | None = None
    ) -> None:
        super().__init__(host, command_timeout=options.command_timeout)
        if traffic is not None:
            self.traffic = traffic
        self._closed = False
        self._chain = chain
        self._transport = chain.target
        self._timeout = connect_timeout(host, options)
        self._spare = SpareChannel(self._open_session)
        # Become commands run on one kept-open shell (`keptshell`), started by the first.
        self._kept: KeptShell | None = None
        self._kept_lock = threading.Lock()
        self._keepalive: Keepalive | None = None
        interval = host.ssh.server_alive_interval
        if interval:
            self._keepalive = Keepalive(chain.target, interval, host.ssh.server_alive_count_max)

    @classmethod
    def open(cls, host: Host, options: ConnectOptions) -> SSHConnection:
        """Connect (through every ProxyJump hop), check host keys, log in.

        Raises an UnreachableError subclass when the host cannot be reached or logged into.
        """
        traffic = Traffic()
        return cls(host, open_chain(host, options, traffic), options, traffic)

    def close(self) -> None:
        """Close every transport of the chain (and with them every channel); idempotent.

        The first close logs what the connection cost (`-vvv` shows it: `traffic`).
        """
        if self._keepalive is not None:
            self._keepalive.stop()
        self._chain.close()
        if not self._closed:
            self._closed = True
            logging.getLogger(f"{PARAMIKO_LOGGER}.{self.host.name}").debug(self.traffic.summary())

    # -- commands ------------------------------------------------------------------------

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        """Run `command` under /bin/sh on a new channel of the shared transport.

        The login shell only sees `/bin/sh -c '...'`, so commands have POSIX sh semantics
        whatever the user's shell is. Waiting is event-driven: select() on the channel wakes
        on stdout data and on EOF; stderr is drained on the same loop. The wait for the
        server's answer to the exec request is bounded by the same deadline and liveness
        checks (`execrequest`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        channel = self._take_channel()
        try:
            return self._drive(channel, command, stdin, timeout, deadline)
        except SSH_ERRORS as exc:
            raise self._lost(exc) from None
        finally:
            channel.close()

    def _take_channel(self) -> paramiko.Channel:
        """A session channel: the one opened ahead, else a new one; the next is asked for."""
        channel = self._spare.take()
        if channel is None:
            try:
                channel = self._open_session()
            except SSH_ERRORS as exc:
                raise self._lost(exc) from None
        self._spare.ask()  # for the next command (`spare`)
        self.traffic.count("channels")  # channels used: a spare never used is not counted
        return channel

    def _open_session(self) -> paramiko.Channel:
        return self._transport.open_session(timeout=self._timeout)

    def _drive(
        self,
        channel: paramiko.Channel,
        command: str,
        stdin: bytes,
        timeout: float | None,
        deadline: float | None,
    ) -> tuple[int, bytes, bytes]:
        stdin = self._start(channel, command, timeout, deadline) + stdin
        sender = None
        if len(stdin) > _INLINE_STDIN:
            sender = threading.Thread(target=_send_stdin, args=(channel, stdin), daemon=True)
            sender.start()
        else:
            _send_stdin(channel, stdin)
        out, err = OutputCap(), OutputCap()
        stdout_open = True
        # No channel timeout: recv() only runs once select() says data (or EOF) is there, and
        # a timeout would also cut short the stdin sender running in another thread.
        while True:
            wait = _wait(deadline)
            if stdout_open:
                ready, _, _ = select.select([channel], [], [], wait)
                if ready:
                    data = channel.recv(_BUFFER)
                    if data:
                        out.add(data)
                    else:
                        stdout_open = False
            else:
                channel.status_event.wait(wait)
            while channel.recv_stderr_ready():
                err.add(channel.recv_stderr(_BUFFER))
            if not stdout_open and channel.exit_status_ready():
                break
            self._check_alive(command, timeout, deadline, "it may still be running on the host")
        while channel.recv_stderr_ready():
            err.add(channel.recv_stderr(_BUFFER))
        if sender is not None:
            sender.join(timeout=_SLICE)
        rc = channel.recv_exit_status()
        if rc == -1 and not self._transport.is_active():
            raise self._lost(EOFError("the transport closed"))
        return rc, out.value(), err.value()

    def _start(
        self, channel: paramiko.Channel, command: str, timeout: float | None, deadline: float | None
    ) -> bytes:
        """Start `command` (behind SCRIPT_READER) on `channel`; the stdin to send first."""
        reader, script = script_on_stdin(command)
        exec_request(channel, f"/bin/sh -c {shlex.quote(reader)}")
        self.traffic.count("execs")
        # Not Channel.exec_command: its wait for the answer has no timeout. The stdin waits
        # for the answer too: sshd grants the channel's window only when the command starts
        # (in the answer's flight), so an earlier send would only block inside sendall.
        while (accepted := exec_answer(channel, _wait(deadline))) is None:
            self._check_alive(command, timeout, deadline, "the host never started it")
        if not accepted:
            if not self._transport.is_active():
                raise self._lost(EOFError("the transport closed"))
            raise ConnectError(
                self.host.name,
                "sshd refused to start a command (it answered the exec request with a "
                "failure) — the login user may be at its process limit (ulimit -u) or the "
                "host out of memory; the host's sshd log says why",
            )
        return script

    # -- the kept-open become shell ------------------------------------------------------

    def _become_first(
        self, command: str, stdin: bytes, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        """The first become command starts the kept-open shell inside `become_script`: the
        way to become is found, the password checked and the shell started in ONE exec, the
        command its first request. Its own exec, as anywhere else, while the shell is busy."""
        if not self._kept_lock.acquire(blocking=False):
            return super()._become_first(command, stdin, timeout)
        try:
            known = self._become
            if known is None:
                how, result = self._on_kept_shell(None, command, stdin, timeout)
        finally:
            self._kept_lock.release()
        if known is not None:  # found meanwhile by a command that ran beside this one
            return self._exec_become(known, command, stdin, timeout)
        return result if how is Become.SELF else self._sudo_ran(*result)

    def _exec_become(
        self, how: Become, command: str, stdin: bytes, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        """Run a become command on the kept-open shell (`keptshell`), starting it if there
        is none; its own exec when the shell is busy with another step's command, or found
        ended before the request was written (a command never runs twice)."""
        if not self._kept_lock.acquire(blocking=False):
            return super()._exec_become(how, command, stdin, timeout)
        try:
            shell = self._kept
            if shell is not None and not shell.idle():
                self._drop_kept()
                return super()._exec_become(how, command, stdin, timeout)
            _, result = self._on_kept_shell(how, command, stdin, timeout)
        finally:
            self._kept_lock.release()
        return result if how is Become.SELF else self._sudo_ran(*result)

    def _on_kept_shell(
        self, how: Become | None, command: str, stdin: bytes, timeout: float | None
    ) -> tuple[Become, tuple[int, bytes, bytes]]:
        """(the way to become, the command's result) on the kept shell. A new shell starts
        the way `how` says, or inside `become_script` when `how` is None (not known yet):
        then the script's verdict comes first on stdout, and is taken off."""
        deadline = None if timeout is None else time.monotonic() + timeout
        data = request(command.encode(ENCODING, ERRORS), stdin)
        fresh = self._kept is None
        marker = None
        try:
            if self._kept is None:
                channel = self._take_channel()
                self._kept = KeptShell(channel, new_nonce())
                program = loop_program(self._kept.nonce)
                if how is None:
                    marker, wrapped, prefix = self.become_probe(program)
                else:
                    wrapped, prefix = self.become_launch(how, program)
                data = self._start(channel, wrapped, timeout, deadline) + prefix + data
            self.traffic.count("kept")
            rc, out, err = self._kept.run(
                data,
                wait=lambda: _wait(deadline),
                check_alive=lambda: self._check_alive(
                    command, timeout, deadline, "it may still be running on the host"
                ),
                inline_limit=_INLINE_STDIN,
            )
            if marker is not None:
                how, out = self.take_verdict(marker, rc, out, err)
        except ShellEnded as ended:
            # The transport's end closes its channels a moment before is_active() says so;
            # a shell that ended on the host sent its EOF first.
            said_eof = self._kept is not None and self._kept.channel.eof_received
            self._drop_kept()
            if not (said_eof and self._transport.is_active()):
                raise self._lost(EOFError("the transport closed")) from None
            out = ended.out
            if marker is not None:  # a refusal ends the script: the verdict says why
                how, out = self.take_verdict(marker, ended.rc, out, ended.err)
            if fresh and how is not Become.SELF:  # sudo may have said why it ran nothing
                self._sudo_ran(ended.rc, out, ended.err)
            raise CommandError(
                self.host.name,
                f"the kept-open shell ended while running `{short_command(command)}` "
                f"(exit {ended.rc}); it may have run in part — check the host, then run again",
            ) from None
        except SSH_ERRORS as exc:
            self._drop_kept()
            raise self._lost(exc) from None
        except BaseException:  # a timeout, a lost host: never leave a shell half-read
            self._drop_kept()
            raise
        assert how is not None  # known, or taken from the verdict just now
        return how, (rc, out, err)

    def _drop_kept(self) -> None:
        """Close the kept shell; the next become command starts a new one."""
        if self._kept is not None:
            self._kept.close()
            self._kept = None

    def _check_alive(
        self, command: str, timeout: float | None, deadline: float | None, detail: str
    ) -> None:
        """Raise if the command outlived its deadline or the connection died or froze."""
        if deadline is not None and time.monotonic() >= deadline:
            raise timeout_error(self.host.name, command, timeout, detail)
        if not self._transport.is_active():
            raise self._lost(EOFError("the transport closed"))
        if self._keepalive is not None and self._keepalive.dead():
            self._chain.close()
            raise ConnectError(
                self.host.name,
                f"the host stopped answering: no reply to keepalives for "
                f"{self._keepalive.limit:g} s (ServerAliveInterval x ServerAliveCountMax)"
                " — is it frozen or cut off?",
            )

    def _lost(self, exc: BaseException) -> ConnectError:
        return ConnectError(
            self.host.name,
            f"connection lost: {reason(exc)} — the host may have rebooted or sshd restarted",
        )

    # -- port forwarding -----------------------------------------------------------------

    @contextmanager
    def forward(self, remote_host: str, remote_port: int) -> Iterator[tuple[str, int]]:
        """Tunnel 127.0.0.1:<ephemeral> to remote_host:remote_port as the host sees it.

        Each accepted local connection becomes one direct-tcpip channel. All threads stop and
        all sockets close when the context exits; a refused tunnel just closes the local
        socket, so the client (redis-py) reports it as a connection error.
        """
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
        except OSError as exc:
            listener.close()
            raise CommandError(
                self.host.name, f"cannot open a local port for the tunnel: {exc.strerror}"
            ) from None
        stop = threading.Event()
        threads: list[threading.Thread] = []
        acceptor = threading.Thread(
            target=self._accept_loop,
            args=(listener, stop, threads, remote_host, remote_port),
            name=f"redmedic-forward-{self.host.name}",
            daemon=True,
        )
        acceptor.start()
        try:
            local_host, local_port = listener.getsockname()[:2]
            yield (str(local_host), int(local_port))
        finally:
            stop.set()
            acceptor.join(timeout=2.0)
            listener.close()
            for thread in list(threads):
                thread.join(timeout=2.0)

    def _accept_loop(
        self,
        listener: socket.socket,
        stop: threading.Event,
        threads: list[threading.Thread],
        remote_host: str,
        remote_port: int,
    ) -> None:
        while not stop.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], _SLICE)
                if not ready:
                    continue
                client, origin = listener.accept()
            except OSError:
                return
            try:
                channel = self._transport.open_channel(
                    "direct-tcpip",
                    (remote_host, remote_port),
                    origin[:2],
                    timeout=self._timeout,
                )
            except SSH_ERRORS:
                client.close()
                continue
            self.traffic.count("channels")
            pump = threading.Thread(
                target=_pump, args=(client, channel, stop), name="redmedic-tunnel", daemon=True
            )
            threads.append(pump)
            pump.start()


def _wait(deadline: float | None) -> float:
    """How long one wait of the command loops may last: a slice, never past the deadline."""
    if deadline is None:
        return _SLICE
    return max(0.0, min(_SLICE, deadline - time.monotonic()))


def _send_stdin(channel: paramiko.Channel, data: bytes) -> None:
    """Send all of `data`, then EOF. A command that exits without reading it is fine."""
    with suppress(*SSH_ERRORS):
        if data:
            channel.sendall(data)
        channel.shutdown_write()


def _pump(client: socket.socket, channel: paramiko.Channel, stop: threading.Event) -> None:
    """Copy bytes both ways until either side closes or the forward context ends."""
    try:
        while not stop.is_set():
            ready = _readable([client, channel])
            if client in ready:
                data = client.recv(_BUFFER)
                if not data:
                    return
                channel.sendall(data)
            if channel in ready:
                data = channel.recv(_BUFFER)
                if not data:
                    return
                client.sendall(data)
    except (*SSH_ERRORS, ValueError):
        return
    finally:
        channel.close()
        client.close()


def _readable(streams: list[socket.socket | paramiko.Channel]) -> list[object]:
    """select() for a socket and a paramiko channel (both have fileno()) at once."""
    ready, _, _ = select.select(streams, [], [], _SLICE)
    return list(ready)
