"""Disposable Debian 12 hosts running real systemd, booted with systemd-nspawn (test tier 2).

Why this exists: the fixes redmedic applies (systemd drop-ins, ``systemctl restart``, ufw and
firewalld rules, redis.conf edits) only mean something against a real systemd host.  Docker
is not available on the test machines and qemu/KVM does not boot a Debian kernel there, but
``systemd-nspawn`` boots a debootstrapped rootfs with systemd as PID 1 in about a second.
The measured facts this module is built on live in ``/work/shared/design/test-hosts.md``
("Tier 2"); comments below cite them where a step looks odd.

What it owns:

* ``build_base_rootfs()`` -- a Debian 12 base rootfs, built once per package list/recipe and
  cached under ``/var/cache/redmedic-test/rootfs-<hash>`` (built in a temp dir, renamed into
  place, guarded by a file lock so parallel pytest processes never race).
* ``HostPool`` -- boots hosts in parallel, each an overlayfs (lower = the shared base, upper
  per host) with its own SSH host keys, hostname and static address on a bridge the pool
  creates; hands out pristine hosts; tears everything down (clean poweroff, unmount, bridge
  removal), also when a test fails or pytest is interrupted, and cleans up what a killed run
  left behind.
* ``SystemdHost`` and ``ssh()`` -- what a test sees: name, address, the host's filesystem
  (``root``), the per-run private key, the known_hosts file; ``ssh()`` runs a command with the
  system OpenSSH client and strict host key checking.

Network rule (from the facts file): traffic goes only to the hosts on the pool's own bridge.
Hosts get no default route, so nothing inside them can reach any other address either.

On-disk layout::

    /var/cache/redmedic-test/rootfs-<hash>/      shared read-only base (overlay lower dir)
    /var/cache/redmedic-test/rootfs-<hash>.lock  build lock
    /var/tmp/redmedic-test/slot-<k>.lock         held by the pool using slot k
    /var/tmp/redmedic-test/slot-<k>/             that pool's key pair, known_hosts, hosts/<name>/

Each pool takes one of ``MAX_SLOTS`` slots; slot k uses bridge ``rmtbr<k>`` and the private
subnet ``10.213.<57+k>.0/24`` (bridge ``.1``, hosts ``.2``-``.254``), so two pytest processes
(two engineers, or xdist) on one machine never share names or addresses.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Final

__all__ = [
    "BASE_PACKAGES",
    "EXTRA_PACKAGES",
    "HostError",
    "HostPool",
    "SystemdHost",
    "build_base_rootfs",
    "debian_mirror",
    "missing_prerequisites",
    "raise_inotify_limit",
    "ssh",
]

SUITE: Final = "bookworm"
DEFAULT_MIRROR: Final = "http://deb.debian.org/debian"

#: Installed by debootstrap (facts file: this exact list works on this machine).
BASE_PACKAGES: Final[tuple[str, ...]] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "redis-server",
    "redis-tools",
    "ufw",
    "iproute2",
    "sudo",
    "procps",
    "python3",
    "iptables",
    "nftables",
)

#: Installed afterwards inside the rootfs with --no-install-recommends: in the debootstrap
#: include list firewalld's polkitd dependency fails to configure.
EXTRA_PACKAGES: Final[tuple[str, ...]] = ("firewalld",)

CACHE_DIR: Final = Path("/var/cache/redmedic-test")
STATE_DIR: Final = Path("/var/tmp/redmedic-test")
CGROUP_ROOTS: Final[tuple[Path, ...]] = (
    # nspawn with --keep-unit puts the container under the cgroup it was started from. Hosts
    # started from one shared cgroup share one payload tree: their units never become empty
    # and poweroff hangs. So each host's launcher first moves itself into its own cgroup in
    # both hierarchies systemd inside the container uses (hybrid layout on this machine).
    Path("/sys/fs/cgroup/systemd"),
    Path("/sys/fs/cgroup/unified"),
)
CGROUP_PARENT: Final = "redmedic-test"

MAX_SLOTS: Final = 8
SUBNET_BASE: Final = (10, 213, 57)
INOTIFY_INSTANCES: Final = 8192

#: Bump when the build recipe below changes in a way the package list does not show.
RECIPE_VERSION: Final = 1

#: Host key types each host gets. Not `ssh-keygen -A`: its RSA-3072 key took 3/4 of the
#: per-host setup CPU (~0.2 s a host): 12 hosts booted in 7.9 s instead of 3.7 s on 2 cores.
HOST_KEY_TYPES: Final[tuple[str, ...]] = ("ed25519", "ecdsa")

SSHD_DROPIN: Final = """\
# redmedic test host: root logs in with the per-run key only.
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

NETWORK_UNIT_NAME: Final = "redmedic-test-network.service"
NETWORK_ENV: Final = "/etc/redmedic-test/network.env"
# systemd-networkd left host0 "pending" on this machine; a oneshot with `ip` is enough and
# deterministic. host0 exists before PID 1 starts (nspawn moves the veth in), and there is no
# udev in the container, so no .device dependency (it would never appear).
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

# The journal stays in the container's /run: no disk I/O per host, gone with the host.
JOURNALD_DROPIN: Final = """\
[Journal]
Storage=volatile
RuntimeMaxUse=16M
"""

# Units that only add noise on a network-less disposable host: apt timers would fail (no
# route) at a random time and turn the host "degraded" in the middle of a test.
MASKED_UNITS: Final[tuple[str, ...]] = ("apt-daily.timer", "apt-daily-upgrade.timer")

SSH_OPTIONS: Final[tuple[str, ...]] = (
    "-F",
    "/dev/null",  # the developer's ~/.ssh/config stays out of tests
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=5",
    # The default post-quantum kex (sntrup761) costs ~80 ms of CPU per connection on these
    # VMs, a third of a test command's round trip; the test helper does not need it.
    "-o",
    "KexAlgorithms=curve25519-sha256,curve25519-sha256@libssh.org",
    "-o",
    "LogLevel=ERROR",
)


class HostError(RuntimeError):
    """A test host (or the shared base rootfs) could not be built, booted or stopped."""


# --------------------------------------------------------------------------- small helpers


def _run(
    argv: Sequence[str | Path],
    *,
    timeout: float = 600.0,
    env: dict[str, str] | None = None,
    log: IO[str] | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.CompletedProcess[str]:
    """Run a control-machine command; raise HostError carrying its output when it fails."""
    args = [str(a) for a in argv]
    result = subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        pass_fds=pass_fds,
        stdout=log if log is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout or "").strip()[-2000:]
        where = f" (log: {log.name})" if log is not None else ""
        raise HostError(f"`{' '.join(args)}` failed with exit {result.returncode}{where}: {tail}")
    return result


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[int]:
    """Hold an exclusive flock on ``path`` (waiting for it); yield the lock's fd."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _mounts_below(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first (for unmounting before deleting)."""
    prefix = str(path.resolve())
    found: list[Path] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def _unmount_below(path: Path) -> None:
    """Unmount everything at or below ``path`` (a killed debootstrap leaves proc/sys mounted)."""
    for point in _mounts_below(path):
        if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)


def _remove_tree(path: Path) -> None:
    """Delete a state/build directory, but never through a mount point still inside it."""
    if not path.exists():
        return
    _unmount_below(path)
    if _mounts_below(path):
        raise HostError(f"{path}: still has mounts below it, not deleting — check `findmnt`")
    shutil.rmtree(path)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, e.g. an orphan not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


# --------------------------------------------------------------------------- prerequisites


def missing_prerequisites() -> list[str]:
    """What this machine lacks to boot test hosts (empty list: ready). Checked, not assumed."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("must run as root (mounts, bridges, systemd-nspawn)")
    for tool in ("systemd-nspawn", "debootstrap", "ip", "ssh", "ssh-keygen", "mount", "chroot"):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` not found (run tests/support/install-test-deps.sh)")
    try:
        filesystems = Path("/proc/filesystems").read_text(encoding="utf-8")
    except OSError:
        filesystems = ""
    if "overlay" not in filesystems and not Path("/sys/module/overlay").exists():
        missing.append("the kernel has no overlay filesystem (modprobe overlay)")
    for root in CGROUP_ROOTS:
        if not (root / "cgroup.procs").exists():
            missing.append(f"{root} is not a mounted cgroup hierarchy")
    return missing


def raise_inotify_limit(minimum: int = INOTIFY_INSTANCES) -> None:
    """Raise fs.inotify.max_user_instances: past ~20 hosts systemd dies with EMFILE otherwise."""
    knob = Path("/proc/sys/fs/inotify/max_user_instances")
    if int(knob.read_text(encoding="utf-8")) < minimum:
        knob.write_text(f"{minimum}\n", encoding="utf-8")


# --------------------------------------------------------------------------- base rootfs


def _debian_sources() -> list[tuple[str, str]]:
    """(URI, suite) pairs of the Debian bookworm* entries the control machine's apt uses."""
    entries: list[tuple[str, str]] = []
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.exists():
        for paragraph in deb822.read_text(encoding="utf-8").split("\n\n"):
            fields: dict[str, str] = {}
            for line in paragraph.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            uris = fields.get("uris", "").split()
            for suite in fields.get("suites", "").split():
                if suite.startswith(SUITE) and uris:
                    entries.append((uris[0], suite))
    legacy = Path("/etc/apt/sources.list")
    if not entries and legacy.exists():
        for line in legacy.read_text(encoding="utf-8").splitlines():
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2].startswith(SUITE):
                entries.append((words[1], words[2]))
    return entries


def debian_mirror() -> str:
    """The Debian mirror the control machine's apt already uses (debootstrap needs one)."""
    for uri, suite in _debian_sources():
        if suite == SUITE:
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _recipe_digest() -> str:
    """Cache key: the package lists plus everything the build writes into the rootfs."""
    recipe = {
        "suite": SUITE,
        "packages": sorted(BASE_PACKAGES),
        "extra": sorted(EXTRA_PACKAGES),
        "sshd": SSHD_DROPIN,
        "network_unit": NETWORK_UNIT,
        "journald": JOURNALD_DROPIN,
        "masked": sorted(MASKED_UNITS),
        "version": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _Build:
    """One rootfs build: its target dir, its log, and the build lock's fd.

    Every command of the build inherits the lock fd, so if pytest is SIGKILLed mid-build
    the orphaned debootstrap keeps holding the lock: the next build waits for it instead
    of deleting a directory it is still writing into.
    """

    target: Path
    log: IO[str]
    lock_fd: int

    def run(self, *argv: str | Path, env: dict[str, str] | None = None) -> None:
        self.log.write(f"\n$ {' '.join(str(a) for a in argv)}\n")
        self.log.flush()
        _run(argv, env=env, log=self.log, pass_fds=(self.lock_fd,), timeout=1800.0)

    def chroot(self, *argv: str) -> None:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "DEBIAN_FRONTEND": "noninteractive",
            "LANG": "C.UTF-8",
            "HOME": "/root",
        }
        self.run("chroot", self.target, *argv, env=env)


def _build_rootfs(build: _Build) -> None:
    """debootstrap + firewalld + the per-recipe customisation, into an empty directory."""
    target = build.target
    mirror = debian_mirror()
    build.run(
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        SUITE,
        target,
        mirror,
    )
    # firewalld afterwards, from the same sources the control machine uses; a policy-rc.d
    # keeps maintainer scripts from trying to start daemons inside the chroot.
    sources = _debian_sources() or [(mirror, SUITE)]
    _write(
        target / "etc/apt/sources.list",
        "".join(f"deb {uri} {suite} main\n" for uri, suite in sources),
    )
    policy = target / "usr/sbin/policy-rc.d"
    _write(policy, "#!/bin/sh\nexit 101\n", 0o755)
    try:
        build.chroot("apt-get", "update")
        build.chroot("apt-get", "install", "-y", "--no-install-recommends", *EXTRA_PACKAGES)
        build.chroot("apt-get", "clean")
    finally:
        policy.unlink(missing_ok=True)
    _unmount_below(target)  # in case a maintainer script mounted something
    _customize_rootfs(build)


def _customize_rootfs(build: _Build) -> None:
    """Make the base a neutral, reproducible template every host starts from."""
    root = build.target
    # firewalld is installed but off: hosts boot like a stock server; tests start it.
    build.chroot("systemctl", "disable", "firewalld.service")
    build.chroot("systemctl", "mask", *MASKED_UNITS)
    # redis-server enabled at boot with Debian's default config (bind 127.0.0.1 -::1).
    build.chroot("systemctl", "enable", "redis-server.service", "ssh.service")
    _write(root / "etc/systemd/system" / NETWORK_UNIT_NAME, NETWORK_UNIT)
    build.chroot("systemctl", "enable", NETWORK_UNIT_NAME)
    _write(root / "etc/systemd/journald.conf.d/redmedic-test.conf", JOURNALD_DROPIN)
    _write(root / "etc/ssh/sshd_config.d/redmedic-test.conf", SSHD_DROPIN)
    # Each host gets its own SSH host keys and machine id; the base must have neither.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root / "etc/machine-id", "", 0o444)
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() and not dbus_id.is_symlink():
        dbus_id.unlink()
    (root / "etc/hostname").unlink(missing_ok=True)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    ssh_dir.chmod(0o700)
    for entry in (root / "var/lib/apt/lists").glob("*"):
        if entry.is_file():
            entry.unlink()


def build_base_rootfs(cache_dir: Path = CACHE_DIR) -> Path:
    """Return the cached base rootfs, building it first if needed (~1 min, once per recipe).

    Built into a temporary sibling directory and renamed into place, so an existing
    ``rootfs-<hash>`` is always complete; the lock makes a second pytest process wait for
    the first one's build instead of running debootstrap twice.
    """
    final = cache_dir / f"rootfs-{_recipe_digest()}"
    if final.is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _flock(cache_dir / f"{final.name}.lock") as lock_fd:
        if final.is_dir():
            return final
        for stale in cache_dir.glob(f"{final.name}.build-*"):
            _remove_tree(stale)  # a build killed midway, left behind (we hold the lock)
        build = Path(tempfile.mkdtemp(prefix=f"{final.name}.build-", dir=cache_dir))
        build.chmod(0o755)
        log_path = cache_dir / f"{final.name}.log"
        try:
            with open(log_path, "w", encoding="utf-8") as log:
                _build_rootfs(_Build(build, log, lock_fd))
            build.rename(final)
        except BaseException:
            with contextlib.suppress(HostError, OSError):
                _remove_tree(build)
            raise
    return final


# --------------------------------------------------------------------------- hosts


@dataclass(frozen=True)
class SystemdHost:
    """One booted test host, as a test sees it.

    ``root`` is the host's whole filesystem as mounted on the control machine (its overlay),
    handy to read a file without SSH; write through SSH so the host sees a normal change.
    """

    name: str
    address: str
    root: Path
    private_key: Path
    known_hosts: Path
    known_hosts_line: str
    user: str = "root"
    port: int = 22

    @property
    def ssh_options(self) -> list[str]:
        """Options for the system ``ssh``/``scp`` client: this run's key, strict checking."""
        return [
            *SSH_OPTIONS,
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-i",
            str(self.private_key),
            "-p",
            str(self.port),
        ]

    def ssh(
        self, command: str, *, check: bool = False, timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on this host over SSH (shorthand for ``ssh(host, command)``)."""
        return ssh(self, command, check=check, timeout=timeout, input=input)


def ssh(
    host: SystemdHost,
    command: str,
    *,
    check: bool = False,
    timeout: float = 60.0,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a shell command on ``host`` as root with the system OpenSSH client.

    Tests use it to inject faults and inspect state through the same door redmedic uses,
    with host key checking on. ``check=True`` raises ``subprocess.CalledProcessError``
    (its message then carries the command; stdout/stderr are on the exception).
    """
    argv = ["ssh", *host.ssh_options, f"{host.user}@{host.address}", "--", command]
    result = subprocess.run(
        argv,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, f"{host.name}: {command}", result.stdout, result.stderr
        )
    return result


@dataclass
class _Machine:
    """Control-side state of one host: its directories, cgroups and nspawn process."""

    host: SystemdHost
    index: int
    dir: Path
    cgroups: tuple[Path, ...]
    process: subprocess.Popen[bytes] | None = None
    stop_deadline: float | None = None
    killed_init: bool = False
    known_hosts_lines: tuple[str, ...] = ()

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    def console_tail(self, lines: int = 30) -> str:
        try:
            text = self.console_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class _Network:
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


@dataclass
class _Reserve:
    """Pristine hosts booted ahead of demand, and the free address indexes."""

    ready: list[_Machine] = field(default_factory=list)
    # pop() takes from the end: .2 first; freed indexes go to the front, so an address is
    # reused as late as possible.
    free_indexes: list[int] = field(default_factory=lambda: list(range(254, 1, -1)))


class HostPool:
    """Boots disposable systemd hosts in parallel and tears every one of them down.

    Use as a context manager. ``acquire()`` hands out a pristine host (booting ``batch``
    at once when none is ready), ``release()`` starts its poweroff without waiting (it is
    reaped later), ``close()`` stops everything, unmounts, removes the bridge. Faults are
    destructive, so a host is never handed out twice.

    Only processes this pool started are ever signalled, by the PID it recorded.
    """

    def __init__(
        self,
        *,
        base: Path | None = None,
        state_dir: Path = STATE_DIR,
        boot_timeout: float = 180.0,
        stop_timeout: float = 30.0,
        max_parallel_setup: int = 8,
    ) -> None:
        self._base_arg = base
        self._state_root = state_dir
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self._workers = max_parallel_setup
        self._slot_lock_fd: int | None = None
        self._network: _Network | None = None
        self._base: Path | None = None
        self._machines: dict[str, _Machine] = {}
        self._stopping: list[_Machine] = []
        self._leaked: list[_Machine] = []  # would not stop: left for the next run's cleanup
        self._reserve = _Reserve()
        self._serial = 0

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> HostPool:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Take a slot, clean what a killed run left in it, build/find the base, make keys."""
        missing = missing_prerequisites()
        if missing:
            raise HostError("cannot boot test hosts: " + "; ".join(missing))
        self._take_slot()
        self._cleanup_slot()
        self._base = self._base_arg or build_base_rootfs()
        self.state_dir.mkdir(parents=True)
        (self.state_dir / "hosts").mkdir()
        _run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"redmedic-test-{self.network.slot}",
                "-f",
                self.private_key,
            ]
        )
        self.known_hosts.write_text("", encoding="utf-8")
        raise_inotify_limit()
        net = self.network
        _run(["ip", "link", "add", net.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{net.gateway}/24", "dev", net.bridge])
        _run(["ip", "link", "set", net.bridge, "up"])

    def close(self) -> None:
        """Stop every host (clean poweroff, kill PID 1 if it hangs), unmount, drop bridge."""
        errors: list[str] = []
        for machine in list(self._machines.values()):
            if machine not in self._stopping:
                self._begin_stop(machine)
        self._reserve.ready.clear()
        self._reap(wait=True, errors=errors)
        if self._network is not None:
            for root in CGROUP_ROOTS:
                _remove_cgroup(root / CGROUP_PARENT / f"slot-{self._network.slot}")
            if _link_exists(self._network.bridge):
                with contextlib.suppress(HostError):
                    _run(["ip", "link", "del", self._network.bridge])
            if not self._machines and not self._leaked:
                with contextlib.suppress(HostError, OSError):
                    _remove_tree(self.state_dir)
        if self._slot_lock_fd is not None:
            os.close(self._slot_lock_fd)
            self._slot_lock_fd = None
        if errors:
            raise HostError("test host teardown: " + "; ".join(errors))

    # -- public views --------------------------------------------------------------------

    @property
    def network(self) -> _Network:
        if self._network is None:
            raise HostError("HostPool is not open (use it as a context manager)")
        return self._network

    @property
    def bridge(self) -> str:
        """Name of the bridge the hosts are attached to."""
        return self.network.bridge

    @property
    def gateway(self) -> str:
        """The control machine's address on the bridge."""
        return self.network.gateway

    @property
    def state_dir(self) -> Path:
        return self._state_root / f"slot-{self.network.slot}"

    @property
    def private_key(self) -> Path:
        """This run's ed25519 key, authorized for root on every host."""
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """known_hosts listing every live host's keys (rewritten as hosts come and go)."""
        return self.state_dir / "known_hosts"

    @property
    def hosts(self) -> list[SystemdHost]:
        """Every host currently running (handed out or in reserve)."""
        stopping = {m.host.name for m in self._stopping}
        return [m.host for m in self._machines.values() if m.host.name not in stopping]

    @property
    def ready_count(self) -> int:
        """Pristine hosts booted and waiting to be handed out."""
        return len(self._reserve.ready)

    # -- hosts ---------------------------------------------------------------------------

    def boot(self, count: int) -> list[SystemdHost]:
        """Boot ``count`` fresh hosts in parallel and wait until each is ready for SSH."""
        return [m.host for m in self._boot(count)]

    def prewarm(self, count: int) -> None:
        """Boot ``count`` hosts now (in parallel) so later ``acquire()`` calls are instant."""
        if count > 0:
            self._reserve.ready.extend(self._boot(count))

    def acquire(self, batch: int = 1) -> SystemdHost:
        """Hand out a pristine host; if none is ready, boot ``batch`` of them first."""
        self._reap(wait=False)
        if not self._reserve.ready:
            self.prewarm(max(1, batch))
        return self._reserve.ready.pop(0).host

    def release(self, host: SystemdHost) -> None:
        """Start powering ``host`` off; it is reaped (unmounted, deleted) later."""
        machine = self._machines.get(host.name)
        if machine is None or machine in self._stopping:
            return
        if machine in self._reserve.ready:
            self._reserve.ready.remove(machine)
        self._begin_stop(machine)
        self._write_known_hosts()
        self._reap(wait=False)

    def stop(self, host: SystemdHost) -> None:
        """Power ``host`` off and wait until it is fully gone."""
        self.release(host)
        errors: list[str] = []
        self._reap(wait=True, errors=errors, only=host.name)
        if errors:
            raise HostError("; ".join(errors))

    # -- internals: slot -------------------------------------------------------------------

    def _take_slot(self) -> None:
        self._state_root.mkdir(parents=True, exist_ok=True)
        for slot in range(MAX_SLOTS):
            fd = os.open(self._state_root / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._slot_lock_fd = fd
            self._network = _Network(slot)
            return
        raise HostError(f"all {MAX_SLOTS} test host slots are in use by other test runs")

    def _cleanup_slot(self) -> None:
        """Undo what a killed run of this slot left: containers, mounts, cgroups, bridge."""
        hosts_dir = self.state_dir / "hosts"
        if hosts_dir.is_dir():
            for host_dir in sorted(hosts_dir.iterdir()):
                self._cleanup_stale_host(host_dir)
        for root in CGROUP_ROOTS:
            _remove_cgroup(root / CGROUP_PARENT / f"slot-{self.network.slot}")
        if _link_exists(self.network.bridge):
            _run(["ip", "link", "del", self.network.bridge])
        _remove_tree(self.state_dir)

    def _cleanup_stale_host(self, host_dir: Path) -> None:
        root = host_dir / "root"
        pid_file = host_dir / "nspawn.pid"
        try:
            pid = int(pid_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pid = 0
        # Only a PID our own pid file names, and only if it is still that nspawn (PIDs get
        # reused): its command line must be systemd-nspawn on this host's root.
        argv = _cmdline(pid) if pid else []
        if argv and Path(argv[0]).name == "systemd-nspawn" and str(root) in argv:
            os.kill(pid, signal.SIGTERM)
            cgroups = tuple(
                r / CGROUP_PARENT / self.state_dir.name / host_dir.name for r in CGROUP_ROOTS
            )
            deadline = time.monotonic() + self.stop_timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid_alive(pid):
                init = _container_init(cgroups[0])
                if init is not None:
                    os.kill(init, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
            if _pid_alive(pid):
                raise HostError(
                    f"stale test host {host_dir.name} (nspawn PID {pid}) will not stop — "
                    f"inspect with `ps -o pid,args --ppid {pid}`"
                )
        veth = _veth_name(host_dir.name)
        if _link_exists(veth):
            with contextlib.suppress(HostError):
                _run(["ip", "link", "del", veth])

    # -- internals: boot -------------------------------------------------------------------

    def _boot(self, count: int) -> list[_Machine]:
        if count > len(self._reserve.free_indexes):
            self._reap(wait=True)
        if count > len(self._reserve.free_indexes):
            raise HostError(f"only {len(self._reserve.free_indexes)} addresses left in the /24")
        machines = [self._new_machine() for _ in range(count)]
        cancel = threading.Event()
        for machine in machines:
            self._machines[machine.host.name] = machine
        try:
            with ThreadPoolExecutor(max_workers=min(self._workers, count)) as pool:
                list(pool.map(self._prepare, machines))
            self._write_known_hosts()
            for machine in machines:
                self._launch(machine)
            deadline = time.monotonic() + self.boot_timeout
            with ThreadPoolExecutor(max_workers=min(32, count)) as pool:
                list(pool.map(lambda m: self._wait_ready(m, deadline, cancel), machines))
        except BaseException:
            cancel.set()  # e.g. Ctrl-C: the other waiters give up within a second or so
            for machine in machines:
                if machine not in self._stopping:
                    self._begin_stop(machine)
            with contextlib.suppress(HostError):
                self._reap(wait=True)
            raise
        return machines

    def _new_machine(self) -> _Machine:
        self._serial += 1
        index = self._reserve.free_indexes.pop()
        slot = self.network.slot
        name = f"rmt{slot}-{self._serial:03d}"
        directory = self.state_dir / "hosts" / name
        host = SystemdHost(
            name=name,
            address=self.network.address(index),
            root=directory / "root",
            private_key=self.private_key,
            known_hosts=self.known_hosts,
            known_hosts_line="",
        )
        cgroups = tuple(r / CGROUP_PARENT / f"slot-{slot}" / name for r in CGROUP_ROOTS)
        return _Machine(host=host, index=index, dir=directory, cgroups=cgroups)

    def _prepare(self, machine: _Machine) -> None:
        """Overlay mount + the per-host identity: host keys, address, hostname, root key."""
        assert self._base is not None
        upper, work, root = machine.dir / "upper", machine.dir / "work", machine.host.root
        for d in (upper, work, root):
            d.mkdir(parents=True)
        name, address = machine.host.name, machine.host.address
        _run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={self._base},upperdir={upper},workdir={work}",
                root,
            ]
        )
        # Fresh host keys for this host only (the base has none).
        for keytype in HOST_KEY_TYPES:
            key_file = root / f"etc/ssh/ssh_host_{keytype}_key"
            _run(
                ["ssh-keygen", "-q", "-t", keytype, "-N", "", "-C", f"root@{name}", "-f", key_file]
            )
        _write(root / "etc/hostname", f"{name}\n")
        _write(
            root / "etc/hosts",
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n{address}\t{name}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n",
        )
        _write(root / NETWORK_ENV.lstrip("/"), f"ADDRESS={address}/24\n")
        public = self.private_key.with_suffix(".pub").read_text(encoding="utf-8")
        _write(root / "root/.ssh/authorized_keys", public, 0o600)
        lines = []
        for pub in sorted((root / "etc/ssh").glob("ssh_host_*_key.pub")):
            keytype, key = pub.read_text(encoding="utf-8").split()[:2]
            lines.append(f"{address} {keytype} {key}")
        if not lines:
            raise HostError(f"{name}: ssh-keygen wrote no host keys in {root}/etc/ssh")
        ed25519 = [line for line in lines if " ssh-ed25519 " in line]
        machine.known_hosts_lines = tuple(lines)
        machine.host = replace(machine.host, known_hosts_line=(ed25519 or lines)[0])
        for cgroup in machine.cgroups:
            cgroup.mkdir(parents=True, exist_ok=True)
        # A reused address: forget the previous host's MAC, or the first packets go to it.
        _run(["ip", "neigh", "flush", "to", address, "dev", self.network.bridge])

    def _launch(self, machine: _Machine) -> None:
        """Start nspawn in its own session (Ctrl-C in pytest's terminal never reaches it)
        and its own cgroup (the launcher shell moves itself there, then execs nspawn)."""
        argv = [
            "sh",
            "-c",
            'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"',
            "sh",
            *(str(c / "cgroup.procs") for c in machine.cgroups),
            "systemd-nspawn",
            "-b",
            "-D",
            str(machine.host.root),
            "-M",
            machine.host.name,
            # No systemd/machined on the control machine: without these two nspawn fails
            # with "Failed to open system bus".
            "--register=no",
            "--keep-unit",
            f"--network-bridge={self.network.bridge}",
            "--console=read-only",
        ]
        with open(machine.console_log, "wb") as console:
            machine.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # what `setsid` does
            )
        (machine.dir / "nspawn.pid").write_text(f"{machine.process.pid}\n", encoding="utf-8")

    def _wait_ready(self, machine: _Machine, deadline: float, cancel: threading.Event) -> None:
        """Poll until sshd answers and systemd reports running/degraded (bounded)."""
        host = machine.host
        state = ""
        while time.monotonic() < deadline and not cancel.is_set():
            if machine.process is None or machine.process.poll() is not None:
                raise HostError(
                    f"{host.name}: systemd-nspawn exited while booting — console:\n"
                    + machine.console_tail()
                )
            if not _port_open(host.address, host.port, timeout=0.5):
                time.sleep(0.1)
                continue
            # --wait returns once boot finished; bounded in short slices so a cancelled
            # boot does not keep this thread (and pytest's exit) waiting.
            wait = int(min(5.0, max(1.0, deadline - time.monotonic())))
            try:
                result = ssh(
                    host, f"timeout {wait} systemctl is-system-running --wait", timeout=wait + 5
                )
            except subprocess.TimeoutExpired:
                continue
            state = result.stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        if cancel.is_set():
            raise HostError(f"{host.name}: boot cancelled")
        raise HostError(
            f"{host.name} ({host.address}): not ready within {self.boot_timeout:.0f} s "
            f"(last state {state or 'unknown'!r}) — console:\n{machine.console_tail()}"
        )

    def _write_known_hosts(self) -> None:
        stopping = {m.host.name for m in self._stopping}
        lines = [
            line
            for m in self._machines.values()
            if m.host.name not in stopping
            for line in m.known_hosts_lines
        ]
        tmp = self.known_hosts.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        tmp.replace(self.known_hosts)

    # -- internals: stop -------------------------------------------------------------------

    def _begin_stop(self, machine: _Machine) -> None:
        """SIGTERM to nspawn: it turns that into a clean poweroff of the container."""
        if machine.process is not None and machine.process.poll() is None:
            machine.process.send_signal(signal.SIGTERM)
        machine.stop_deadline = time.monotonic() + self.stop_timeout
        self._stopping.append(machine)

    def _reap(
        self, *, wait: bool, errors: list[str] | None = None, only: str | None = None
    ) -> None:
        """Finish stopping hosts whose nspawn exited; with ``wait``, escalate and block."""
        hard_deadline = time.monotonic() + self.stop_timeout + 15
        while True:
            pending = [m for m in self._stopping if only is None or m.host.name == only]
            for machine in pending:
                proc = machine.process
                if proc is not None and proc.poll() is None:
                    assert machine.stop_deadline is not None
                    if time.monotonic() > machine.stop_deadline and not machine.killed_init:
                        # Poweroff hangs: kill the container's PID 1, never nspawn first
                        # (an orphaned container keeps its veth: next start "File exists").
                        init = _container_init(machine.cgroups[0])
                        if init is not None:
                            os.kill(init, signal.SIGKILL)
                        machine.killed_init = True
                        machine.stop_deadline = time.monotonic() + 10
                    elif time.monotonic() > machine.stop_deadline and machine.killed_init:
                        proc.kill()  # last resort, a PID we started
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            proc.wait(timeout=10)
                    else:
                        continue
                    if proc.poll() is None:
                        continue
                try:
                    self._finalize(machine)
                except (HostError, OSError) as e:
                    if errors is not None:
                        errors.append(f"{machine.host.name}: {e}")
                    self._forget(machine)
            remaining = [m for m in self._stopping if only is None or m.host.name == only]
            if not wait or not remaining:
                return
            if time.monotonic() > hard_deadline:
                for machine in remaining:
                    if errors is not None:
                        errors.append(
                            f"{machine.host.name}: did not stop, left running for the next "
                            f"run to clean up — console log {machine.console_log}"
                        )
                    self._stopping.remove(machine)
                    self._machines.pop(machine.host.name, None)
                    self._leaked.append(machine)
                return
            time.sleep(0.05)

    def _finalize(self, machine: _Machine) -> None:
        """After nspawn exited: unmount the overlay, delete the host's files and cgroups."""
        try:
            if machine.process is not None:
                machine.process.wait(timeout=5)
            veth = _veth_name(machine.host.name)
            if _link_exists(veth):
                _run(["ip", "link", "del", veth])
            for cgroup in machine.cgroups:
                _remove_cgroup(cgroup)
            _remove_tree(machine.dir)
        finally:
            self._forget(machine)

    def _forget(self, machine: _Machine) -> None:
        if machine in self._stopping:
            self._stopping.remove(machine)
        if self._machines.pop(machine.host.name, None) is not None:
            self._reserve.free_indexes.insert(0, machine.index)


def _veth_name(machine_name: str) -> str:
    """The host-side veth nspawn creates for --network-bridge (names here stay short)."""
    return f"vb-{machine_name}"[:15]


def _port_open(address: str, port: int, *, timeout: float) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _container_init(cgroup: Path) -> int | None:
    """PID (control-machine view) of the container's PID 1, found in the host's cgroup."""
    for procs in sorted(cgroup.rglob("cgroup.procs")):
        try:
            pids = [int(p) for p in procs.read_text(encoding="utf-8").split()]
        except OSError:
            continue
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
            except OSError:
                continue
            match = re.search(r"^NSpid:\s+(.*)$", status, re.MULTILINE)
            if match and match.group(1).split()[-1] == "1" and len(match.group(1).split()) > 1:
                return pid
    return None


def _remove_cgroup(path: Path) -> None:
    """rmdir a cgroup tree depth-first (cgroupfs only allows rmdir of empty leaves)."""
    if not path.is_dir():
        return
    for child in sorted(
        (p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()
