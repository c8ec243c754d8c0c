"""The control machine's side of the test hosts: commands, locks, mounts, cgroups, PIDs.

Why a module of its own: building a rootfs, wiring a bridge and booting hosts all need the
same few careful primitives — a command whose failure carries its output, a file lock
that survives a SIGKILLed run, deleting a directory only once nothing is mounted below
it, finding a container's PID 1 — and none of them is about any one of those jobs.

Facts they rest on (measured on this kind of machine; see tests/support/README.md):

* no systemd as PID 1 and no machined: containers are tracked through our own pid files
  and cgroups, never through machinectl;
* nspawn with ``--keep-unit`` runs the container under the cgroup it was started from, and
  hosts started from one shared cgroup share one payload tree (units never become empty,
  poweroff hangs): each host gets its own cgroup in both hierarchies (hybrid layout here);
* a killed debootstrap or container leaves mounts behind: never ``rm -rf`` through them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Final

CGROUP_ROOTS: Final[tuple[Path, ...]] = (
    Path("/sys/fs/cgroup/systemd"),
    Path("/sys/fs/cgroup/unified"),
)
CGROUP_PARENT: Final = "redmedic-test"
INOTIFY_INSTANCES: Final = 8192


class HostError(RuntimeError):
    """A test host (or the shared base rootfs) could not be built, booted or stopped."""


def run(
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
def flock(path: Path) -> Iterator[int]:
    """Hold an exclusive flock on ``path`` (waiting for it); yield the lock's fd."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def mounts_below(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first (for unmounting before deleting)."""
    prefix = str(path.resolve())
    found: list[Path] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_below(path: Path) -> None:
    """Unmount everything at or below ``path`` (a killed debootstrap leaves proc/sys mounted)."""
    for point in mounts_below(path):
        if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)


def remove_tree(path: Path) -> None:
    """Delete a state/build directory, but never through a mount point still inside it."""
    if not path.exists():
        return
    unmount_below(path)
    if mounts_below(path):
        raise HostError(f"{path}: still has mounts below it, not deleting — check `findmnt`")
    shutil.rmtree(path)


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, e.g. an orphan not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def container_init(cgroup: Path) -> int | None:
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


def remove_cgroup(path: Path) -> None:
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
