"""The cached Debian 12 base every test host boots from (an overlayfs lower dir, read-only).

Why cached and shared: debootstrap takes ~50 s and ~1 GB; every host is an overlay on top
of one base, so a host costs ~15 MB of RAM and boots in about a second. The base is built
once per recipe (the package lists plus every file the build writes, hashed into the
directory name ``/var/cache/redmedic-test/rootfs-<hash>``), in a temporary sibling directory
renamed into place, under a file lock so parallel pytest processes never race.

What it took on this kind of machine (each of these failed without it):

* ``debootstrap --variant=minbase --include=<BASE_PACKAGES> bookworm DIR <mirror>``, from the
  Debian mirror the control machine's apt already uses;
* firewalld installed afterwards inside the rootfs (``--no-install-recommends``, with the
  control machine's apt sources copied in): in the debootstrap include list its polkitd
  dependency fails to configure. Its unit is disabled so hosts boot like a stock server;
* no SSH host keys and an empty machine id in the base: each host gets its own;
* the apt timers masked: with no route they fail at a random time and turn a host
  "degraded" in the middle of a test.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from tests.support.control import HostError, flock, remove_tree, run, unmount_below, write
from tests.support.network import NETWORK_UNIT, NETWORK_UNIT_NAME

SUITE: Final = "bookworm"
DEFAULT_MIRROR: Final = "http://deb.debian.org/debian"
CACHE_DIR: Final = Path("/var/cache/redmedic-test")

#: Installed by debootstrap (this exact list works on this machine).
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

#: Bump when the build recipe below changes in a way the package list does not show.
RECIPE_VERSION: Final = 1

SSHD_DROPIN: Final = """\
# redmedic test host: root logs in with the per-run key only.
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
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


def debian_sources() -> list[tuple[str, str]]:
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
    for uri, suite in debian_sources():
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
        run(argv, env=env, log=self.log, pass_fds=(self.lock_fd,), timeout=1800.0)

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
    sources = debian_sources() or [(mirror, SUITE)]
    write(
        target / "etc/apt/sources.list",
        "".join(f"deb {uri} {suite} main\n" for uri, suite in sources),
    )
    policy = target / "usr/sbin/policy-rc.d"
    write(policy, "#!/bin/sh\nexit 101\n", 0o755)
    try:
        build.chroot("apt-get", "update")
        build.chroot("apt-get", "install", "-y", "--no-install-recommends", *EXTRA_PACKAGES)
        build.chroot("apt-get", "clean")
    finally:
        policy.unlink(missing_ok=True)
    unmount_below(target)  # in case a maintainer script mounted something
    _customize_rootfs(build)


def _customize_rootfs(build: _Build) -> None:
    """Make the base a neutral, reproducible template every host starts from."""
    root = build.target
    # firewalld is installed but off: hosts boot like a stock server; tests start it.
    build.chroot("systemctl", "disable", "firewalld.service")
    build.chroot("systemctl", "mask", *MASKED_UNITS)
    # redis-server enabled at boot with Debian's default config (bind 127.0.0.1 -::1).
    build.chroot("systemctl", "enable", "redis-server.service", "ssh.service")
    write(root / "etc/systemd/system" / NETWORK_UNIT_NAME, NETWORK_UNIT)
    build.chroot("systemctl", "enable", NETWORK_UNIT_NAME)
    write(root / "etc/systemd/journald.conf.d/redmedic-test.conf", JOURNALD_DROPIN)
    write(root / "etc/ssh/sshd_config.d/redmedic-test.conf", SSHD_DROPIN)
    # Each host gets its own SSH host keys and machine id; the base must have neither.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    write(root / "etc/machine-id", "", 0o444)
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
    with flock(cache_dir / f"{final.name}.lock") as lock_fd:
        if final.is_dir():
            return final
        for stale in cache_dir.glob(f"{final.name}.build-*"):
            remove_tree(stale)  # a build killed midway, left behind (we hold the lock)
        build = Path(tempfile.mkdtemp(prefix=f"{final.name}.build-", dir=cache_dir))
        build.chmod(0o755)
        log_path = cache_dir / f"{final.name}.log"
        try:
            with open(log_path, "w", encoding="utf-8") as log:
                _build_rootfs(_Build(build, log, lock_fd))
            build.rename(final)
        except BaseException:
            with contextlib.suppress(HostError, OSError):
                remove_tree(build)
            raise
    return final
