"""Logging in waits one round trip: the signed request rides behind the service request.

User story: given a host 100 ms away (bench/latency.py's forwarder), when redmedic logs in
with a key, then it waits one round trip fewer than paramiko's own login (service
request, accept, then the request), and an RSA key, whose signature algorithm the server's
answer decides, still logs in the usual way.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from bench.latency import Forwarder, Link, free_address, running_forwarder
from redmedic.connection import ConnectOptions, connect
from redmedic.connection.eagerauth import auth_publickey
from redmedic.model.inventory import Host
from tests.support.loopback import SshdHost, SshSession, generate_key

pytestmark = pytest.mark.integration

RTT_S = 0.1


def login_turns(
    forwarder: Forwarder,
    address: str,
    port: int,
    login: Callable[[paramiko.Transport], None],
) -> int:
    """The round trips (the forwarder's turns) of one login, after the key exchange."""
    sock = socket.create_connection((address, port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=60)
        time.sleep(0.3)  # the key exchange's last answers are in
        before = sum(t.turns for t in forwarder.open)
        login(transport)
        time.sleep(0.3)
        assert transport.is_authenticated()
        return sum(t.turns for t in forwarder.open) - before
    finally:
        transport.close()


def test_a_key_login_waits_one_round_trip_less_than_paramikos(
    sshd: SshdHost, ssh_session: SshSession, ssh_host: Host
) -> None:
    address = next(free_address(sshd.port))
    link = Link(sshd.name, address, sshd.port, sshd.address, sshd.port)
    key = paramiko.PKey.from_path(ssh_session.client_key)
    user = ssh_host.user or ""
    with running_forwarder([link], RTT_S) as forwarder:
        theirs = login_turns(forwarder, address, sshd.port, lambda t: t.auth_publickey(user, key))
        ours = login_turns(forwarder, address, sshd.port, lambda t: auth_publickey(t, user, key))
    assert theirs == 2
    assert ours == 1


def test_an_rsa_key_logs_in_as_paramiko_does(
    sshd: SshdHost, ssh_session: SshSession, ssh_host: Host, known_hosts_file: Path, tmp_path: Path
) -> None:
    rsa = tmp_path / "id_rsa"
    public = generate_key(rsa, "rsa")
    authorized = ssh_session.authorized_keys
    before = authorized.read_text()
    authorized.write_text(before + public + "\n")
    try:
        host = dataclasses.replace(ssh_host, private_key_file=str(rsa))
        options = ConnectOptions(known_hosts_files=(str(known_hosts_file),))
        with connect(host, options) as conn:
            assert conn.run("echo in").stdout == "in\n"
    finally:
        authorized.write_text(before)
