"""SSH connections with paramiko: one transport per host, one channel per command.

What this module owns and why:
- The TCP socket is ours (not paramiko's) so `TCP_NODELAY` is set: without it every command
  waits for a delayed ACK (~40 ms even on loopback; 2.6x slower for one host, measured).
- Host keys are checked strictly by `hostkeys` *before* authenticating, so no credential is
  ever sent to an impostor.
- Authentication order: the inventory's key file, the ssh-agent, the default ~/.ssh keys
  (only when no key file is given), then the password — as OpenSSH does.
- Every paramiko / socket exception is translated here into ConnectError, AuthError,
  HostKeyError or CommandError; none escapes this module.
"""

from __future__ import annotations

import getpass
import logging
import os
import select
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import paramiko
from paramiko.pkey import UnknownKeyType

from redmedic.connection import hostkeys
from redmedic.connection.base import Connection, ConnectOptions, short_command
from redmedic.errors import AuthError, CommandError, ConnectError, HostKeyError
from redmedic.inventory import Host

_BUFFER = 65536
# stdin larger than this is sent from a helper thread, so a command that writes a lot of
# output before it reads all of its input cannot deadlock against our send.
_INLINE_STDIN = 256 * 1024
# Longest we sleep between checks while a command runs (for stderr and the deadline).
_SLICE = 0.05
_DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
# paramiko logs each transport to PARAMIKO_LOGGER.HOST (`-vvv` shows it: report.sshlog).
PARAMIKO_LOGGER = "redmedic.connection.paramiko"
_SSH_ERRORS = (paramiko.SSHException, EOFError, OSError)


class SSHConnection(Connection):
    """A logged-in SSH transport to one host; `run` opens a cheap channel per command.

    Build one with `SSHConnection.open` (or `redmedic.connection.connect`).
    """

    def __init__(self, host: Host, transport: paramiko.Transport, options: ConnectOptions) -> None:
        super().__init__(host, command_timeout=options.command_timeout)
        self._transport = transport
        self._options = options

    @classmethod
    def open(cls, host: Host, options: ConnectOptions) -> SSHConnection:
        """Connect, check the host key, log in; raise an UnreachableError subclass if not."""
        sock = _tcp_connect(host, options.connect_timeout)
        try:
            transport = paramiko.Transport(sock)
        except _SSH_ERRORS as exc:
            sock.close()
            raise ConnectError(host.name, f"SSH setup failed: {_reason(exc)}") from None
        transport.set_log_channel(f"{_quiet_paramiko_logger()}.{host.name}")
        try:
            transport.banner_timeout = options.connect_timeout
            transport.auth_timeout = max(options.connect_timeout, 10.0)
            _handshake_and_check_key(transport, host, options)
            _authenticate(transport, host)
        except BaseException:
            transport.close()
            raise
        return cls(host, transport, options)

    def close(self) -> None:
        """Close the transport (and with it every channel); safe to call twice."""
        with suppress(*_SSH_ERRORS):
            self._transport.close()

    # -- commands ------------------------------------------------------------------------

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        """Run `command` under /bin/sh on a new channel of the shared transport.

        The login shell only sees `/bin/sh -c '...'`, so commands have POSIX sh semantics
        whatever the user's shell is. Waiting is event-driven: select() on the channel wakes
        on stdout data and on EOF; stderr is drained on the same loop.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            channel = self._transport.open_session(timeout=self._options.connect_timeout)
        except _SSH_ERRORS as exc:
            raise self._lost(exc) from None
        try:
            return self._drive(channel, command, stdin, timeout, deadline)
        except _SSH_ERRORS as exc:
            raise self._lost(exc) from None
        finally:
            channel.close()

    def _drive(
        self,
        channel: paramiko.Channel,
        command: str,
        stdin: bytes,
        timeout: float | None,
        deadline: float | None,
    ) -> tuple[int, bytes, bytes]:
        channel.exec_command(f"/bin/sh -c {shlex.quote(command)}")
        sender = None
        if len(stdin) > _INLINE_STDIN:
            sender = threading.Thread(target=_send_stdin, args=(channel, stdin), daemon=True)
            sender.start()
        else:
            _send_stdin(channel, stdin)
        out: list[bytes] = []
        err: list[bytes] = []
        stdout_open = True
        # No channel timeout: recv() only runs once select() says data (or EOF) is there, and
        # a timeout would also cut short the stdin sender running in another thread.
        while True:
            wait = (
                _SLICE if deadline is None else max(0.0, min(_SLICE, deadline - time.monotonic()))
            )
            if stdout_open:
                ready, _, _ = select.select([channel], [], [], wait)
                if ready:
                    data = channel.recv(_BUFFER)
                    if data:
                        out.append(data)
                    else:
                        stdout_open = False
            else:
                channel.status_event.wait(wait)
            while channel.recv_stderr_ready():
                err.append(channel.recv_stderr(_BUFFER))
            if not stdout_open and channel.exit_status_ready():
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise CommandError(
                    self.host.name,
                    f"`{short_command(command)}` did not finish within {timeout:g} s "
                    "(it may still be running on the host)",
                )
            if not self._transport.is_active():
                raise self._lost(EOFError("the transport closed"))
        while channel.recv_stderr_ready():
            err.append(channel.recv_stderr(_BUFFER))
        if sender is not None:
            sender.join(timeout=_SLICE)
        rc = channel.recv_exit_status()
        if rc == -1 and not self._transport.is_active():
            raise self._lost(EOFError("the transport closed"))
        return rc, b"".join(out), b"".join(err)

    def _lost(self, exc: BaseException) -> ConnectError:
        return ConnectError(
            self.host.name,
            f"connection lost: {_reason(exc)} — the host may have rebooted or sshd restarted",
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
                    timeout=self._options.connect_timeout,
                )
            except _SSH_ERRORS:
                client.close()
                continue
            pump = threading.Thread(
                target=_pump, args=(client, channel, stop), name="redmedic-tunnel", daemon=True
            )
            threads.append(pump)
            pump.start()


def _send_stdin(channel: paramiko.Channel, data: bytes) -> None:
    """Send all of `data`, then EOF. A command that exits without reading it is fine."""
    with suppress(*_SSH_ERRORS):
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
    except (*_SSH_ERRORS, ValueError):
        return
    finally:
        channel.close()
        client.close()


def _readable(streams: list[socket.socket | paramiko.Channel]) -> list[object]:
    """select() for a socket and a paramiko channel (both have fileno()) at once."""
    ready, _, _ = select.select(streams, [], [], _SLICE)
    return list(ready)


# -- opening -------------------------------------------------------------------------------


def _quiet_paramiko_logger() -> str:
    """The logger paramiko's transports write to: ours, silent unless the app configures it.

    paramiko logs every failed handshake with a traceback at ERROR level; with no logging
    configured Python would print those to stderr next to our one-line message. Records
    still propagate, so `--debug`-style logging setups see them.
    """
    logger = logging.getLogger(PARAMIKO_LOGGER)
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return PARAMIKO_LOGGER


def _tcp_connect(host: Host, timeout: float) -> socket.socket:
    """Open the TCP connection ourselves so we can set TCP_NODELAY and word errors well."""
    where = f"{host.address}:{host.port}"
    try:
        sock = socket.create_connection((host.address, host.port), timeout=timeout)
    except socket.gaierror as exc:
        raise ConnectError(
            host.name, f"cannot resolve {host.address!r}: {exc.strerror} — check ansible_host"
        ) from None
    except TimeoutError:
        raise ConnectError(
            host.name,
            f"timed out after {timeout:g} s connecting to {where} — is the host up, "
            f"or is a firewall dropping port {host.port}?",
        ) from None
    except ConnectionRefusedError:
        raise ConnectError(
            host.name,
            f"connection to {where} refused — is sshd running and listening on port "
            f"{host.port}? (check ansible_port)",
        ) from None
    except OSError as exc:
        raise ConnectError(host.name, f"cannot connect to {where}: {_reason(exc)}") from None
    with suppress(OSError):  # not fatal: only slower
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _handshake_and_check_key(
    transport: paramiko.Transport, host: Host, options: ConnectOptions
) -> None:
    label = hostkeys.host_label(host.address, host.port)
    try:
        entries = hostkeys.load_entries(
            hostkeys.known_hosts_files(options.known_hosts_files), label
        )
    except OSError as exc:
        raise HostKeyError(
            host.name, f"cannot read known_hosts {exc.filename}: {exc.strerror}"
        ) from None
    preferred = hostkeys.preferred_algorithms(entries, label)
    if preferred:
        security = transport.get_security_options()
        available = list(security.key_types)
        first = [a for a in preferred if a in available]
        security.key_types = first + [a for a in available if a not in first]
    where = f"{host.address}:{host.port}"
    # With an event, start_client returns at once and we wait ourselves: with a timeout
    # instead, paramiko returns silently when it expires, as if the handshake had worked.
    done = threading.Event()
    try:
        transport.start_client(event=done)
        finished = done.wait(options.connect_timeout)
        if finished and transport.is_active():
            key = transport.get_remote_server_key()
        else:
            failure = transport.get_exception()
            raise ConnectError(
                host.name,
                f"SSH handshake with {where} failed: "
                + (
                    _reason(failure)
                    if failure
                    else f"no answer within {options.connect_timeout:g} s"
                )
                + " — is an SSH server listening there?",
            )
    except _SSH_ERRORS as exc:
        raise ConnectError(
            host.name,
            f"SSH handshake with {where} failed: {_reason(exc)} — "
            "is an SSH server listening there?",
        ) from None
    key_type, blob = key.get_name(), key.asbytes()
    verdict, entry = hostkeys.verify(entries, label, key_type, blob)
    if verdict is hostkeys.Verdict.KNOWN:
        return
    if verdict is hostkeys.Verdict.UNKNOWN and options.trust_new_host_keys:
        target = hostkeys.trust_file(options.known_hosts_files)
        try:
            verdict = hostkeys.record_key(target, host.address, host.port, key_type, blob)
        except OSError as exc:
            raise HostKeyError(
                host.name, f"cannot record the new host key in {target}: {exc.strerror}"
            ) from None
        if verdict in (hostkeys.Verdict.UNKNOWN, hostkeys.Verdict.KNOWN):
            return
        entries = hostkeys.load_entries([target], label)
        verdict, entry = hostkeys.verify(entries, label, key_type, blob)
    if verdict is hostkeys.Verdict.UNKNOWN:
        target = hostkeys.trust_file(options.known_hosts_files)
        message = hostkeys.unknown_key_message(host.address, host.port, key_type, blob, target)
    elif verdict is hostkeys.Verdict.REVOKED and entry is not None:
        message = hostkeys.revoked_key_message(host.address, host.port, blob, entry)
    elif entry is not None:
        message = hostkeys.changed_key_message(host.address, host.port, key_type, blob, entry)
    else:  # pragma: no cover - verify() always names the entry it blames
        message = f"host key for {label} was refused"
    raise HostKeyError(host.name, message)


def _authenticate(transport: paramiko.Transport, host: Host) -> None:
    """Try the key file, the agent, default keys, then the password; AuthError if none works.

    The message lists what was tried (file names, "agent", "password") — never a secret.
    """
    user = host.user or getpass.getuser()
    tried: list[str] = []
    keys: list[tuple[str, paramiko.PKey]] = []
    if host.private_key_file:
        keys.append((f"key {host.private_key_file}", _load_key(host, host.private_key_file)))
    agent: paramiko.Agent | None = None
    if os.environ.get("SSH_AUTH_SOCK"):
        try:
            agent = paramiko.Agent()
            keys.extend(("ssh-agent", key) for key in agent.get_keys())
        except _SSH_ERRORS:
            agent = None
    if not host.private_key_file:
        for name in _DEFAULT_KEYS:
            path = os.path.expanduser(name)
            if os.path.isfile(path):
                try:
                    keys.append((f"key {name}", paramiko.PKey.from_path(path)))
                except (*_SSH_ERRORS, ValueError, UnknownKeyType):
                    continue
    try:
        for what, key in keys:
            if what not in tried:
                tried.append(what)
            try:
                transport.auth_publickey(user, key)
            except paramiko.BadAuthenticationType as exc:
                if "publickey" not in exc.allowed_types:
                    break
                continue
            except paramiko.AuthenticationException:
                continue
            except _SSH_ERRORS as exc:
                raise _auth_transport_error(host, exc) from None
            if transport.is_authenticated():
                return
        if host.password is not None:
            tried.append("password")
            try:
                transport.auth_password(user, host.password)
            except paramiko.AuthenticationException:
                pass
            except _SSH_ERRORS as exc:
                raise _auth_transport_error(host, exc) from None
            if transport.is_authenticated():
                return
    finally:
        if agent is not None:
            agent.close()
    if not tried:
        raise AuthError(
            host.name,
            f"no credentials to log in as {user} — set ansible_ssh_private_key_file or "
            "ansible_password, or load a key into ssh-agent",
        )
    raise AuthError(
        host.name,
        f"SSH login as {user} was refused (tried {', '.join(tried)}) — check ansible_user, "
        "that the key is in the user's authorized_keys, or ansible_password",
    )


def _load_key(host: Host, path: str) -> paramiko.PKey:
    """Load the inventory's key file (any type); an encrypted one may use the password."""
    expanded = os.path.expanduser(path)
    try:
        return paramiko.PKey.from_path(expanded)
    except paramiko.PasswordRequiredException:
        if host.password is not None:
            with suppress(*_SSH_ERRORS, ValueError):
                return paramiko.PKey.from_path(expanded, password=host.password)
        raise AuthError(
            host.name, f"private key {path} is encrypted — load it into ssh-agent first"
        ) from None
    except FileNotFoundError:
        raise AuthError(
            host.name, f"private key {path} does not exist — check ansible_ssh_private_key_file"
        ) from None
    except (*_SSH_ERRORS, ValueError, UnknownKeyType) as exc:
        raise AuthError(host.name, f"cannot load private key {path}: {_reason(exc)}") from None


def _auth_transport_error(host: Host, exc: BaseException) -> ConnectError:
    return ConnectError(host.name, f"connection failed while logging in: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text or type(exc).__name__
