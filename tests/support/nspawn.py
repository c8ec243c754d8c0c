"""Disposable Debian hosts running real systemd, booted with systemd-nspawn (test tier 2).

Debian 12 (redis 7.0.15) by default; Debian 11 (redis 6.0.16) from
``HostPool(recipe=BULLSEYE)``.

Why this exists: the fixes redmedic applies (systemd drop-ins, ``systemctl restart``, ufw and
firewalld rules, redis.conf edits) only mean something against a real systemd host.  Docker
is not available on the test machines and qemu/KVM does not boot a Debian kernel there, but
``systemd-nspawn`` boots a debootstrapped rootfs with systemd as PID 1 in about a second.
What is known about such hosts on this kind of machine is in tests/support/README.md.

This module is the public face tests import from; each job lives in its own module:

* ``rootfs.py`` -- ``build_base_rootfs()``: the cached Debian base every host boots from,
  one per ``Recipe`` (``BOOKWORM``, ``BULLSEYE``);
* ``network.py`` -- a pool slot's bridge and /24, the host's static address on it;
* ``pool.py`` -- ``HostPool``: boots hosts in parallel, hands out pristine ones, tears every
  one down (also when a test fails or pytest is interrupted, and what a killed run left);
* ``readiness.py`` -- when a booted host is ready, on the host's own signals;
* ``hosts.py`` -- ``SystemdHost`` and ``ssh()``: what a test sees of a host;
* ``control.py`` -- the control machine's primitives (commands, locks, mounts, cgroups).
"""

from __future__ import annotations

from tests.support.control import HostError, missing_prerequisites, raise_inotify_limit
from tests.support.hosts import (
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    SSH_OPTIONS,
    SystemdHost,
    machine_sysctl,
    ssh,
)
from tests.support.pool import HostPool
from tests.support.rootfs import (
    BASE_PACKAGES,
    BOOKWORM,
    BULLSEYE,
    EXTRA_PACKAGES,
    Recipe,
    build_base_rootfs,
    debian_mirror,
)

__all__ = [
    "BASE_PACKAGES",
    "BOOKWORM",
    "BULLSEYE",
    "COMMAND_TIMEOUT",
    "CONNECT_TIMEOUT",
    "EXTRA_PACKAGES",
    "SSH_OPTIONS",
    "HostError",
    "HostPool",
    "Recipe",
    "SystemdHost",
    "build_base_rootfs",
    "debian_mirror",
    "machine_sysctl",
    "missing_prerequisites",
    "raise_inotify_limit",
    "ssh",
]
