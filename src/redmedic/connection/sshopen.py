"""Reaching a host over SSH: the socket, every ProxyJump hop, host keys, login.

What this module owns and why:
- The first socket is ours, not paramiko's: a TCP socket with `TCP_NODELAY` (without it
  every command waits for a delayed ACK, ~40 ms even on loopback; 2.6x slower for one host,
  measured), or the ProxyCommand's socketpair (`proxy`).
- ProxyJump, as `ssh -J` does it: log into the first hop (its own address, port, user,
  identity files, known hosts, HostKeyAlias), open a `direct-tcpip` channel from there to
  the next hop and run a new SSH transport over that channel, and so on to the target.
  Every hop's host key is checked strictly *before* authenticating to it, so no credential
  (and no tunnel) is ever given to an impostor. Errors about a jump host say so
  ("via bastion: ...") and are raised for the target host.
- Every paramiko / socket exception is translated here into ConnectError, AuthError or
  HostKeyError; none escapes this module.
"""

from __future__ import annotations

import logging
import socket
import threading
from contextlib import suppress
from dataclasses import dataclass, field

import paramiko

from redmedic.connection import hostkeys
from redmedic.connection.base import ConnectOptions
from redmedic.connection.proxy import ProxyProcess
from redmedic.connection.sshauth import SSH_ERRORS, authenticate, reason
from redmedic.connection.traffic import Traffic
from redmedic.errors import ConnectError, HostKeyError, UnreachableError
from redmedic.model.inventory import Host

# paramiko logs each transport to PARAMIKO_LOGGER.HOST (`-vvv` shows it: report.sshlog);
# a jump host's transport logs under the jump host's name.
PARAMIKO_LOGGER = "redmedic.connection.paramiko"
# Channel-open failure codes (RFC 4254 5.1) and what each means for a jump host.
_OPEN_FAILURE_HINTS = {
    1: "its sshd forbids this forwarding (AllowTcpForwarding, PermitOpen)",
    2: "it cannot connect there: is the host up, the name right, port open from the jump host?",
}


@dataclass
class Chain:
    """Everything one logged-in connection holds open; `close()` releases all of it."""

    transports: list[paramiko.Transport] = field(default_factory=list)
    proxy: ProxyProcess | None = None

    @property
    def target(self) -> paramiko.Transport:
        """The transport to the host itself (the last hop)."""
        return self.transports[-1]

    def close(self) -> None:
        """Close every transport, the target's first, then reap the ProxyCommand; idempotent."""
        for transport in reversed(self.transports):
            with suppress(*SSH_ERRORS):
                transport.close()
        if self.proxy is not None:
            self.proxy.close()


def connect_timeout(host: Host, options: ConnectOptions) -> float:
    """The host's ConnectTimeout from the ssh config beats the run's --connect-timeout."""
    return host.ssh.connect_timeout or options.connect_timeout


def open_chain(host: Host, options: ConnectOptions, traffic: Traffic | None = None) -> Chain:
    """Connect through every ProxyJump hop to `host`, checking each host key, logging in.

    With `traffic`, the first socket (which carries every hop) is counted there.
    """
    hops = [
        Host(name=j.name, address=j.address, port=j.port, user=j.user, ssh=j.ssh)
        for j in host.ssh.proxy_jump
    ]
    hops.append(host)
    chain = Chain()
    try:
        first = _first_socket(hops[0], options, chain)
        sock: socket.socket | paramiko.Channel = traffic.wrap(first) if traffic else first
        for index, hop in enumerate(hops):
            via = hop.name if hop is not host else None
            try:
                transport = _login(sock, hop, options, chain)
                if via is not None:
                    sock = _tunnel(transport, hop, hops[index + 1], options)
            except UnreachableError as exc:
                raise _for_target(exc, host, via) from None
    except BaseException:
        chain.close()
        raise
    return chain


def _for_target(exc: UnreachableError, host: Host, via: str | None) -> UnreachableError:
    """A jump host's error, reported for the host the user asked for."""
    if via is None:
        return exc
    return type(exc)(host.name, f"via {via}: {exc.message}")


def _first_socket(hop: Host, options: ConnectOptions, chain: Chain) -> socket.socket:
    command = hop.ssh.proxy_command
    if not command or command == "none":
        return _tcp_connect(hop, connect_timeout(hop, options))
    try:
        chain.proxy = ProxyProcess(command)
    except OSError as exc:
        raise ConnectError(hop.name, f"cannot run the ProxyCommand: {reason(exc)}") from None
    return chain.proxy.sock


def _tcp_connect(host: Host, timeout: float) -> socket.socket:
    """Open the TCP connection ourselves so we can set TCP_NODELAY and word errors well."""
    where = f"{host.address}:{host.port}"
    try:
        sock = socket.create_connection((host.address, host.port), timeout=timeout)
    except socket.gaierror as exc:
        raise ConnectError(
            host.name,
            f"cannot resolve {host.address!r}: {exc.strerror} — check ansible_host "
            "(or HostName in the ssh config)",
        ) from None
    except TimeoutError:
        raise ConnectError(
            host.name,
            f"timed out after {timeout:g} s connecting to {where} — is the host up, "
            f"or is a firewall dropping port {host.port}? (--connect-timeout, ConnectTimeout)",
        ) from None
    except ConnectionRefusedError:
        raise ConnectError(
            host.name,
            f"connection to {where} refused — is sshd running and listening on port "
            f"{host.port}? (check ansible_port)",
        ) from None
    except OSError as exc:
        raise ConnectError(host.name, f"cannot connect to {where}: {reason(exc)}") from None
    with suppress(OSError):  # not fatal: only slower
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _tunnel(
    transport: paramiko.Transport, hop: Host, nxt: Host, options: ConnectOptions
) -> paramiko.Channel:
    """A `direct-tcpip` channel from the jump host `hop` to the next hop's SSH port."""
    where = f"{nxt.address}:{nxt.port}"
    try:
        return transport.open_channel(
            "direct-tcpip",
            (nxt.address, nxt.port),
            ("127.0.0.1", 0),
            timeout=connect_timeout(nxt, options),
        )
    except paramiko.ChannelException as exc:
        hint = _OPEN_FAILURE_HINTS.get(exc.code)
        raise ConnectError(
            hop.name,
            f"cannot open a tunnel to {where}: {exc.text}" + (f" — {hint}" if hint else ""),
        ) from None
    except SSH_ERRORS as exc:
        raise ConnectError(hop.name, f"cannot open a tunnel to {where}: {reason(exc)}") from None


def _login(
    sock: socket.socket | paramiko.Channel, hop: Host, options: ConnectOptions, chain: Chain
) -> paramiko.Transport:
    """Run SSH over `sock`: handshake, strict host key check, then authenticate."""
    try:
        transport = paramiko.Transport(sock)
    except SSH_ERRORS as exc:
        sock.close()
        raise ConnectError(hop.name, f"SSH setup failed: {reason(exc)}") from None
    chain.transports.append(transport)
    transport.set_log_channel(f"{_quiet_paramiko_logger()}.{hop.name}")
    timeout = connect_timeout(hop, options)
    transport.banner_timeout = timeout
    transport.auth_timeout = max(timeout, 10.0)
    proxy = chain.proxy if len(chain.transports) == 1 else None
    _handshake_and_check_key(transport, hop, options, timeout, proxy)
    authenticate(transport, hop)
    return transport


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


def _handshake_and_check_key(
    transport: paramiko.Transport,
    host: Host,
    options: ConnectOptions,
    timeout: float,
    proxy: ProxyProcess | None,
) -> None:
    name = hostkeys.KeyName(host.address, host.port, host.ssh.host_key_alias)
    label = name.label
    files = hostkeys.known_hosts_files(
        host.ssh.user_known_hosts_files,
        host.ssh.global_known_hosts_files,
        options.known_hosts_files,
    )
    try:
        entries = hostkeys.load_entries(files, label)
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
        finished = done.wait(timeout)
        failure = transport.get_exception()
        if finished and transport.is_active():
            key = transport.get_remote_server_key()
        else:
            why = reason(failure) if failure else f"no answer within {timeout:g} s"
            raise ConnectError(host.name, _handshake_failed(where, why, proxy))
    except SSH_ERRORS as exc:
        raise ConnectError(host.name, _handshake_failed(where, reason(exc), proxy)) from None
    _check_key(host, name, entries, key, options)


def _handshake_failed(where: str, why: str, proxy: ProxyProcess | None) -> str:
    if proxy is not None:  # its own words explain more than paramiko's
        return f"{proxy.failure()} (SSH handshake with {where} failed: {why})"
    return f"SSH handshake with {where} failed: {why} — is an SSH server listening there?"


def _check_key(
    host: Host,
    name: hostkeys.KeyName,
    entries: list[hostkeys.KnownHostEntry],
    key: paramiko.PKey,
    options: ConnectOptions,
) -> None:
    """Accept a known key; record an unknown one only with --trust-new-host-keys; refuse."""
    label = name.label
    key_type, blob = key.get_name(), key.asbytes()
    verdict, entry = hostkeys.verify(entries, label, key_type, blob)
    if verdict is hostkeys.Verdict.KNOWN:
        return
    target = hostkeys.trust_file(options.known_hosts_files, host.ssh.user_known_hosts_files)
    if verdict is hostkeys.Verdict.UNKNOWN and options.trust_new_host_keys:
        try:
            verdict = hostkeys.record_key(target, name, key_type, blob)
        except OSError as exc:
            raise HostKeyError(
                host.name, f"cannot record the new host key in {target}: {exc.strerror}"
            ) from None
        if verdict in (hostkeys.Verdict.UNKNOWN, hostkeys.Verdict.KNOWN):
            return
        entries = hostkeys.load_entries([target], label)
        verdict, entry = hostkeys.verify(entries, label, key_type, blob)
    if verdict is hostkeys.Verdict.UNKNOWN:
        message = hostkeys.unknown_key_message(name, key_type, blob, target)
    elif verdict is hostkeys.Verdict.REVOKED and entry is not None:
        message = hostkeys.revoked_key_message(name, blob, entry)
    elif entry is not None:
        message = hostkeys.changed_key_message(name, key_type, blob, entry)
    else:  # pragma: no cover - verify() always names the entry it blames
        message = f"host key for {label} was refused"
    raise HostKeyError(host.name, message)
