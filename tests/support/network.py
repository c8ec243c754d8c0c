"""Both ends of a test host's link: the pool's bridge here, a static address inside.

Each pool takes a slot k (see pool.py); slot k owns bridge ``rmtbr<k>`` and the private
subnet ``10.213.<57+k>.0/24`` — the bridge is ``.1`` (the control machine as the hosts see
it), hosts get ``.2``-``.254`` — so two pytest processes on one machine never share names or
addresses. nspawn's ``--network-bridge`` gives each host a veth pair, ``host0`` inside and
``vb-<name>`` on the bridge.

Network rule: traffic goes only to the hosts on the pool's own bridge. Hosts get no
default route, so nothing inside them can reach any other address either.

Inside the host, systemd-networkd left ``host0`` "pending" on this machine; a oneshot unit
running ``ip`` is enough and deterministic. ``host0`` exists before PID 1 starts (nspawn
moves the veth in) and there is no udev in the container, so the unit has no ``.device``
dependency (it would never appear).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.support.control import run

SUBNET_BASE: Final = (10, 213, 57)

NETWORK_UNIT_NAME: Final = "redmedic-test-network.service"
NETWORK_ENV: Final = "/etc/redmedic-test/network.env"
NETWORK_UNIT: Final = f"""\
[Unit]
Description=redmedic test host: static address on host0
DefaultDependencies=no
Before=network-pre.target network.target ssh.service redis-server.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile={NETWORK_ENV}
ExecStart=/usr/sbin/ip link set host0 up
ExecStart=/usr/sbin/ip addr replace ${{ADDRESS}} dev host0

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class Network:
    """The bridge and /24 of one pool slot."""

    slot: int

    @property
    def bridge(self) -> str:
        return f"rmtbr{self.slot}"

    @property
    def prefix(self) -> str:
        a, b, c = SUBNET_BASE
        return f"{a}.{b}.{c + self.slot}"

    @property
    def gateway(self) -> str:
        return f"{self.prefix}.1"

    def address(self, index: int) -> str:
        return f"{self.prefix}.{index}"

    def create_bridge(self) -> None:
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])

    def forget_neighbour(self, address: str) -> None:
        """A reused address: forget the previous host's MAC, or the first packets go to it."""
        run(["ip", "neigh", "flush", "to", address, "dev", self.bridge])


def host_address_env(address: str) -> str:
    """The host's NETWORK_ENV file: its address on the slot's /24."""
    return f"ADDRESS={address}/24\n"


def veth_name(machine_name: str) -> str:
    """The host-side veth nspawn creates for --network-bridge (names here stay short)."""
    return f"vb-{machine_name}"[:15]


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def delete_link(name: str) -> None:
    """Remove a bridge or veth if it is there (an orphaned container keeps its veth)."""
    if link_exists(name):
        run(["ip", "link", "del", name])


def port_open(address: str, port: int, *, timeout: float) -> bool:
    """A TCP connect from the control machine succeeds (the cheap first sign of a host)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False
