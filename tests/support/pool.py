"""``HostPool``: boots disposable systemd hosts in parallel, hands them out, tears them down.

Each host is an overlayfs (lower = the shared base from rootfs.py, upper per host) with its
own SSH host keys, hostname and static address on the bridge of the pool's slot
(network.py), started with ``systemd-nspawn`` and handed out once ready (readiness.py).
A host is never handed out twice: faults are destructive.

What it took on this kind of machine (each of these failed without it):

* ``systemd-nspawn -b -D ROOT -M NAME --register=no --keep-unit --network-bridge=BRIDGE
  --console=read-only``, in its own session (what ``setsid`` does): without
  ``--register=no --keep-unit`` it fails with "Failed to open system bus" (no
  systemd/machined on the control machine);
* each host's nspawn started from its own cgroup (control.py says why);
* ``fs.inotify.max_user_instances`` raised before booting more than ~20 hosts, or systemd in
  the later ones dies with "Too many open files";
* stopping: SIGTERM to the nspawn PID (kept in a pid file; nspawn turns it into a clean
  poweroff), then unmount the overlay. If it hangs, kill the container's PID 1, never nspawn
  first: an orphaned container keeps its veth and the next start fails with "File exists".
  Never kill by name: only PIDs this pool started (or its own pid files name) are signalled.

On-disk layout::

    /var/cache/redmedic-test/rootfs-<hash>/      shared read-only base (overlay lower dir)
    /var/tmp/redmedic-test/slot-<k>.lock         held by the pool using slot k
    /var/tmp/redmedic-test/slot-<k>/             that pool's key pair, known_hosts, hosts/<name>/

Each pool takes one of ``MAX_SLOTS`` slots, so two pytest processes (two engineers, or a
helper booting a host while the suite runs) never share names, addresses or files; the
first thing a pool does in its slot is clean what a killed run left there.

Bounds: ``boot_timeout`` (600 s for a whole batch, up to 16 hosts booting at once) is the
last resort for a host that hangs, never a measure of a working boot: readiness waits on
the host's own signals, and systemd's job timeouts bound a boot that goes wrong on the
host. Measured when idle: 3 hosts boot in ~3 s, 50 in ~50 s.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Final

from tests.support.control import (
    CGROUP_PARENT,
    CGROUP_ROOTS,
    HostError,
    cmdline,
    container_init,
    missing_prerequisites,
    pid_alive,
    raise_inotify_limit,
    remove_cgroup,
    remove_tree,
    run,
    write,
)
from tests.support.hosts import SystemdHost
from tests.support.network import NETWORK_ENV, Network, delete_link, host_address_env, veth_name
from tests.support.readiness import NotReady, wait_ready
from tests.support.rootfs import BOOKWORM, Recipe, build_base_rootfs

STATE_DIR: Final = Path("/var/tmp/redmedic-test")
MAX_SLOTS: Final = 8
BOOT_TIMEOUT: Final = 600.0

#: Host key types each host gets. Not `ssh-keygen -A`: its RSA-3072 key took 3/4 of the
#: per-host setup CPU (~0.2 s a host): 12 hosts booted in 7.9 s instead of 3.7 s on 2 cores.
HOST_KEY_TYPES: Final[tuple[str, ...]] = ("ed25519", "ecdsa")


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

    Every host of a pool boots from one base: ``recipe`` picks it (``BULLSEYE`` for Debian
    11 hosts), and the pool builds that base on ``open()`` if it is not cached yet.

    Only processes this pool started are ever signalled, by the PID it recorded.
    """

    def __init__(
        self,
        *,
        recipe: Recipe = BOOKWORM,
        base: Path | None = None,
        state_dir: Path = STATE_DIR,
        boot_timeout: float = BOOT_TIMEOUT,
        stop_timeout: float = 30.0,
        max_parallel_setup: int = 8,
    ) -> None:
        self.recipe = recipe
        self._base_arg = base
        self._state_root = state_dir
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self._workers = max_parallel_setup
        self._slot_lock_fd: int | None = None
        self._network: Network | None = None
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
        self._base = self._base_arg or build_base_rootfs(self.recipe)
        self.state_dir.mkdir(parents=True)
        (self.state_dir / "hosts").mkdir()
        run(
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
        self.network.create_bridge()

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
                remove_cgroup(root / CGROUP_PARENT / f"slot-{self._network.slot}")
            with contextlib.suppress(HostError):
                delete_link(self._network.bridge)
            if not self._machines and not self._leaked:
                with contextlib.suppress(HostError, OSError):
                    remove_tree(self.state_dir)
        if self._slot_lock_fd is not None:
            os.close(self._slot_lock_fd)
            self._slot_lock_fd = None
        if errors:
            raise HostError("test host teardown: " + "; ".join(errors))

    # -- public views --------------------------------------------------------------------

    @property
    def network(self) -> Network:
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
            self._network = Network(slot)
            return
        raise HostError(f"all {MAX_SLOTS} test host slots are in use by other test runs")

    def _cleanup_slot(self) -> None:
        """Undo what a killed run of this slot left: containers, mounts, cgroups, bridge."""
        hosts_dir = self.state_dir / "hosts"
        if hosts_dir.is_dir():
            for host_dir in sorted(hosts_dir.iterdir()):
                self._cleanup_stale_host(host_dir)
        for root in CGROUP_ROOTS:
            remove_cgroup(root / CGROUP_PARENT / f"slot-{self.network.slot}")
        delete_link(self.network.bridge)
        remove_tree(self.state_dir)

    def _cleanup_stale_host(self, host_dir: Path) -> None:
        root = host_dir / "root"
        pid_file = host_dir / "nspawn.pid"
        try:
            pid = int(pid_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pid = 0
        # Only a PID our own pid file names, and only if it is still that nspawn (PIDs get
        # reused): its command line must be systemd-nspawn on this host's root.
        argv = cmdline(pid) if pid else []
        if argv and Path(argv[0]).name == "systemd-nspawn" and str(root) in argv:
            os.kill(pid, signal.SIGTERM)
            cgroups = tuple(
                r / CGROUP_PARENT / self.state_dir.name / host_dir.name for r in CGROUP_ROOTS
            )
            deadline = time.monotonic() + self.stop_timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid):
                init = container_init(cgroups[0])
                if init is not None:
                    os.kill(init, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
            if pid_alive(pid):
                raise HostError(
                    f"stale test host {host_dir.name} (nspawn PID {pid}) will not stop — "
                    f"inspect with `ps -o pid,args --ppid {pid}`"
                )
        with contextlib.suppress(HostError):
            delete_link(veth_name(host_dir.name))

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
        run(
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
            run(["ssh-keygen", "-q", "-t", keytype, "-N", "", "-C", f"root@{name}", "-f", key_file])
        write(root / "etc/hostname", f"{name}\n")
        write(
            root / "etc/hosts",
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n{address}\t{name}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n",
        )
        write(root / NETWORK_ENV.lstrip("/"), host_address_env(address))
        public = self.private_key.with_suffix(".pub").read_text(encoding="utf-8")
        write(root / "root/.ssh/authorized_keys", public, 0o600)
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
        self.network.forget_neighbour(address)

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
        """Wait on the host's own signals (readiness.py), bounded by the batch's deadline."""
        host = machine.host

        def alive() -> bool:
            return machine.process is not None and machine.process.poll() is None

        try:
            wait_ready(host, deadline=deadline, cancel=cancel, alive=alive)
        except NotReady as exc:
            raise HostError(
                f"{host.name} ({host.address}): not ready within {self.boot_timeout:.0f} s "
                f"(last answer: {exc.last}) — console:\n{machine.console_tail()}"
            ) from None
        except HostError as exc:
            if cancel.is_set():
                raise HostError(f"{host.name}: boot cancelled") from None
            raise HostError(
                f"{host.name} ({host.address}): {exc} — console:\n{machine.console_tail()}"
            ) from None

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
                        init = container_init(machine.cgroups[0])
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
            delete_link(veth_name(machine.host.name))
            for cgroup in machine.cgroups:
                remove_cgroup(cgroup)
            remove_tree(machine.dir)
        finally:
            self._forget(machine)

    def _forget(self, machine: _Machine) -> None:
        if machine in self._stopping:
            self._stopping.remove(machine)
        if self._machines.pop(machine.host.name, None) is not None:
            self._reserve.free_indexes.insert(0, machine.index)
