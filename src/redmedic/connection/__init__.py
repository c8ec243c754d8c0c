"""The one I/O seam between steps and hosts: open a `Connection`, then run and edit files.

    with connect(host, ConnectOptions()) as conn:
        found = conn.read_file("/etc/redis/redis.conf", become=True)
        conn.write_file(found.path, new, expected_sha256=found.sha256, become=True)

`connect` picks the implementation from `host.connection` ("ssh" or "local"); steps only see
the `Connection` API, so unit tests can hand them a scripted fake instead.
"""

from __future__ import annotations

from redmedic.connection import _paramiko  # noqa: F401  # first: paramiko without invoke
from redmedic.connection.base import CommandResult, Connection, ConnectOptions, RemoteFile
from redmedic.connection.local import LocalConnection
from redmedic.connection.ssh import SSHConnection
from redmedic.model.inventory import Host

__all__ = [
    "CommandResult",
    "ConnectOptions",
    "Connection",
    "LocalConnection",
    "RemoteFile",
    "SSHConnection",
    "connect",
]


def connect(host: Host, options: ConnectOptions) -> Connection:
    """Open the host's connection now, so unreachable hosts fail before any step runs.

    Raises ConnectError, AuthError or HostKeyError (all UnreachableError).
    """
    if host.connection == "local":
        return LocalConnection(host, options)
    return SSHConnection.open(host, options)
