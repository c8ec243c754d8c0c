"""The cached Debian bases test hosts boot from (an overlayfs lower dir, read-only).

Why cached and shared: debootstrap takes ~50 s and ~1 GB; every host is an overlay on top
of one base, so a host costs ~15 MB of RAM and boots in about a second. The base is built
once per recipe (the suite, the package lists plus every file the build writes, hashed into
the directory name ``/var/cache/redmedic-test/rootfs-<hash>``), in a temporary sibling
directory renamed into place, under a file lock so parallel pytest processes never race.

Two recipes, one build: ``BOOKWORM`` (Debian 12, redis 7.0.15, the default) and
``BULLSEYE`` (Debian 11, redis 6.0.16: ``bind`` and ``port`` cannot be changed with CONFIG
SET there). A base is built only when a pool asks for it, so the bookworm tests never pay
for bullseye. The control machine (Debian 12) lists only bookworm sources; a bullseye base
gets the same mirrors with the suite names swapped (``bookworm-security`` ->
``bullseye-security``), which is how Debian names them since bullseye.

What it took on this kind of machine (each of these failed without it):

* ``debootstrap --variant=minbase --include=<BASE_PACKAGES> SUITE DIR <mirror>``, from the
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

#: The control machine's own suite: its apt sources name it (and its -updates/-security).
CONTROL_SUITE: Final = "bookworm"
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


@dataclass(frozen=True)
class Recipe:
    """One flavour of base: the Debian suite and what is installed in each of the two phases
    (``packages`` by debootstrap, ``extra_packages`` afterwards with apt inside the rootfs)."""

    suite: str
    packages: tuple[str, ...] = BASE_PACKAGES
    extra_packages: tuple[str, ...] = EXTRA_PACKAGES


#: Debian 12, redis-server 7.0.15: the default for every test host.
BOOKWORM: Final = Recipe("bookworm")
#: Debian 11, redis-server 6.0.16: every base package exists there under the same name, and
#: firewalld (0.9, on policykit-1) installs the same way.
BULLSEYE: Final = Recipe("bullseye")

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


def debian_sources(
    suite: str = CONTROL_SUITE,
    *,
    deb822: Path = Path("/etc/apt/sources.list.d/debian.sources"),
    legacy: Path = Path("/etc/apt/sources.list"),
) -> list[tuple[str, str]]:
    """(URI, suite) pairs of the control machine's apt entries for its own suite and pockets
    (bookworm, bookworm-updates, ...), renamed to ``suite`` (bullseye, bullseye-updates, ...)."""
    entries: list[tuple[str, str]] = []
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
            entries += [(uris[0], name) for name in fields.get("suites", "").split() if uris]
    if not entries and legacy.exists():
        for line in legacy.read_text(encoding="utf-8").splitlines():
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[1], words[2]))
    return [
        (uri, suite + name.removeprefix(CONTROL_SUITE))
        for uri, name in entries
        if name == CONTROL_SUITE or name.startswith(f"{CONTROL_SUITE}-")
    ]


def debian_mirror(suite: str = CONTROL_SUITE) -> str:
    """The Debian mirror the control machine's apt already uses (debootstrap needs one)."""
    for uri, name in debian_sources(suite):
        if name == suite:
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _recipe_digest(recipe: Recipe) -> str:
    """Cache key: the suite, the package lists plus everything the build writes into the
    rootfs (the same keys as before recipes existed, so the bookworm base keeps its hash)."""
    fields = {
        "suite": recipe.suite,
        "packages": sorted(recipe.packages),
        "extra": sorted(recipe.extra_packages),
        "sshd": SSHD_DROPIN,
        "network_unit": NETWORK_UNIT,
        "journald": JOURNALD_DROPIN,
        "masked": sorted(MASKED_UNITS),
        "version": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def base_path(recipe: Recipe, cache_dir: Path = CACHE_DIR) -> Path:
    """Where the recipe's base is cached: one directory per recipe, named by its digest."""
    return cache_dir / f"rootfs-{_recipe_digest(recipe)}"


@dataclass(frozen=True)
class _Build:
    """One rootfs build: its target dir, its log, and the build lock's fd.

    Every command of the build inherits the lock fd, so if pytest is SIGKILLed mid-build
    the orphaned debootstrap keeps holding the lock: the next build waits for it instead
    of deleting a directory it is still writing into.
    """

    recipe: Recipe
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
    target, suite = build.target, build.recipe.suite
    mirror = debian_mirror(suite)
    build.run(
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(build.recipe.packages)}",
        suite,
        target,
        mirror,
    )
    # firewalld afterwards, from the same mirrors the control machine uses; a policy-rc.d
    # keeps maintainer scripts from trying to start daemons inside the chroot.
    sources = debian_sources(suite) or [(mirror, suite)]
    write(
        target / "etc/apt/sources.list",
        "".join(f"deb {uri} {suite} main\n" for uri, suite in sources),
    )
    policy = target / "usr/sbin/policy-rc.d"
    write(policy, "#!/bin/sh\nexit 101\n", 0o755)
    try:
        build.chroot("apt-get", "update")
        extra = build.recipe.extra_packages
        build.chroot("apt-get", "install", "-y", "--no-install-recommends", *extra)
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


def build_base_rootfs(recipe: Recipe = BOOKWORM, cache_dir: Path = CACHE_DIR) -> Path:
    """Return the recipe's cached base rootfs, building it first if needed (~1 min, once).

    Built into a temporary sibling directory and renamed into place, so an existing
    ``rootfs-<hash>`` is always complete; the lock makes a second pytest process wait for
    the first one's build instead of running debootstrap twice.
    """
    final = base_path(recipe, cache_dir)
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
                _build_rootfs(_Build(recipe, build, log, lock_fd))
            build.rename(final)
        except BaseException:
            with contextlib.suppress(HostError, OSError):
                remove_tree(build)
            raise
    return final
