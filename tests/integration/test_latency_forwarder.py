"""The benchmark's latency forwarder adds real round trips, and both counters see them.

User story: given a simulated host reached through bench/latency.py with 100 ms of RTT
added, when I log in and run one command with redmedic's SSH connection, then

- the first answer through the forwarder (sshd's banner) took at least one RTT,
- the command took at least one RTT,
- redmedic's own counter (`conn.traffic`, what `-vvv` prints per host) says 1 connection,
  1 channel, 1 exec and round trips in the connect and diagnose phases, and logs that line
  when the connection closes,
- the forwarder counted round trips on that one connection too.

Only lower bounds on time: how much slower than that the machine is, is not a test's
business.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from pathlib import Path

import pytest

from bench.latency import Link, free_address, running_forwarder
from redmedic.connection import ConnectOptions, connect
from redmedic.connection.sshopen import PARAMIKO_LOGGER
from redmedic.model.inventory import Host
from tests.support.loopback import SshdHost, known_hosts_line

pytestmark = pytest.mark.integration

RTT_S = 0.1


def test_the_forwarder_adds_the_rtt_and_every_round_trip_is_counted(
    sshd: SshdHost, ssh_host: Host, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    address = next(free_address(sshd.port))
    link = Link(sshd.name, address, sshd.port, sshd.address, sshd.port)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_line(address, sshd.port, sshd.host_key) + "\n")
    far_host = dataclasses.replace(ssh_host, address=address)
    options = ConnectOptions(known_hosts_files=(str(known_hosts),), connect_timeout=60.0)

    with running_forwarder([link], RTT_S) as forwarder:
        started = time.monotonic()
        with socket.create_connection((address, sshd.port), timeout=60.0) as raw:
            banner = raw.recv(64)
        banner_s = time.monotonic() - started

        with (
            caplog.at_level(logging.DEBUG, logger=PARAMIKO_LOGGER),
            connect(far_host, options) as conn,
        ):
            conn.traffic.phase = "diagnose"
            started = time.monotonic()
            result = conn.run("echo hello")
            command_s = time.monotonic() - started
            traffic = conn.traffic
        deadline = time.monotonic() + 30.0
        while len(forwarder.closed) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the forwarder records a connection once both sides closed
        seen = list(forwarder.closed)

    assert banner.startswith(b"SSH-")
    assert banner_s >= RTT_S
    assert result.stdout == "hello\n"
    assert command_s >= RTT_S
    assert (traffic.connections, traffic.channels, traffic.execs) == (1, 1, 1)
    assert traffic.trips["connect"] >= 1 and traffic.trips["diagnose"] >= 1
    assert traffic.summary().startswith("1 connection, 1 channel, 1 exec, ")
    assert traffic.summary() in caplog.text
    assert len(seen) == 2 and all(c.link == sshd.name for c in seen)
    assert seen[1].turns >= traffic.trips["diagnose"] + 1
