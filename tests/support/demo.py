"""`make demo`: a disposable broken Redis host on loopback, and redmedic's dry run against it.

The built-in target is real: an sshd on 127.0.1.N (own host key, strict checking, a login
user that needs a sudo password) and a redis-server started from a copy of Debian's
redis.conf that binds to 127.0.0.1 only — the classic cause of "connection refused" for
every client that is not on the box. There is no systemd here, so the inventory tells the
playbook how to restart this Redis (`redis_restart_command`). The demo prints the command
it runs, runs the shipped triage playbook with --check, and tears everything down (by PID)
afterwards. Its login user has a random password for the run only: when the demo ends
(or is interrupted) the account is locked and expired and its sudoers drop-in removed
(tests/support/loopback.py, ensure_test_user).

    python -m tests.support.demo [--playbook playbooks/connection-refused.yaml] [--keep]

`demo_target()` is the same target for tests (tests/integration/test_demo.py applies the
playbook to it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from redmedic.cli import main as redmedic
from tests.support.loopback import (
    SshdHost,
    SshSession,
    ensure_test_user,
    missing_prerequisites,
    release_test_user,
)
from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
DEBIAN_CONF = Path("/etc/redis/redis.conf")
STOP_TIMEOUT_S = 10.0
#: Bound for a busy machine; Debian's redis answers within milliseconds of starting.
READY_TIMEOUT_S = 60.0


def broken_redis_conf(workdir: Path, port: int) -> Path:
    """Debian's redis.conf, adapted to run unprivileged in `workdir`, still bound to 127.0.0.1."""
    overrides = {
        "port": str(port),
        "daemonize": "no",
        "supervised": "no",
        "pidfile": str(workdir / "redis.pid"),
        "logfile": str(workdir / "redis.log"),
        "dir": str(workdir),
    }
    lines = []
    for line in DEBIAN_CONF.read_text().splitlines():
        key = line.split(" ", 1)[0]
        lines.append(f"{key} {overrides.pop(key)}" if key in overrides else line)
    lines += [f"{key} {value}" for key, value in overrides.items()]
    conf = workdir / "redis.conf"
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o640)
    return conf


def restart_command(conf: Path, pidfile: Path) -> str:
    """How the playbook restarts this Redis (no systemd): stop the one in the pid file,
    wait (bounded) until it is gone and its port free, start a daemonized one."""
    pid = shlex.quote(str(pidfile))
    return (
        f'p=$(cat {pid} 2>/dev/null); if [ -n "$p" ]; then kill "$p"; '
        'for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; fi; '
        f"redis-server {shlex.quote(str(conf))} --daemonize yes"
    )


def _stop(pid: int) -> None:
    """Stop a redis-server by PID (only if that PID still is one), waiting a bounded time."""
    try:
        if b"redis-server" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ProcessLookupError):
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)


@contextlib.contextmanager
def redis_server(conf: Path, port: int) -> Iterator[int]:
    """Run redis-server from `conf` until the block ends; yields its PID.

    A restart by the playbook replaces the process by a daemonized one that records its
    PID in the config's pid file: that one is stopped at the end too.
    """
    process = subprocess.Popen(
        ["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # Reaped as soon as it exits (the playbook's restart kills it), so `kill -0` in the
    # restart command stops seeing it at once instead of waiting on a zombie.
    threading.Thread(target=process.wait, daemon=True).start()
    pidfile = conf.parent / "redis.pid"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, timeout=5
            )
            if ping.stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=STOP_TIMEOUT_S)
        with contextlib.suppress(FileNotFoundError, ValueError):
            _stop(int(pidfile.read_text().strip()))


@dataclass(frozen=True)
class DemoTarget:
    """The running target: what to pass to `redmedic run`, and what a client needs."""

    host: SshdHost
    inventory: Path
    known_hosts: Path
    conf: Path
    port: int
    password: str  # the requirepass the fix would set (the inventory's redis_password)


def write_inventory(path: Path, target: DemoTarget, session: SshSession) -> None:
    user = ensure_test_user()
    restart = restart_command(target.conf, target.conf.parent / "redis.pid")
    path.write_text(
        "# Written by `make demo`: one simulated host, reached over real SSH.\n"
        "all:\n"
        "  hosts:\n"
        "    demo-redis:\n"
        f"      ansible_host: {target.host.address}\n"
        f"      ansible_port: {target.host.port}\n"
        f"      ansible_user: {user.name}\n"
        f"      ansible_ssh_private_key_file: {session.client_key}\n"
        "      ansible_become: true\n"
        f"      ansible_become_password: {user.password}\n"
        f"      redis_conf: {target.conf}\n"
        f"      redis_port: {target.port}\n"
        f"      redis_restart_command: {shlex.quote(restart)}\n"
        # Opening Redis to remote clients without a password is refused by the playbook
        # (protected mode exists for a reason): this is the requirepass the fix would set.
        f"      redis_password: {target.password}\n"
    )


@contextlib.contextmanager
def demo_target() -> Iterator[DemoTarget]:
    """Start the target (sshd + a loopback-only redis-server); stop and remove it after."""
    with tempfile.TemporaryDirectory(prefix="redmedic-demo-") as tmp, \
            SshSession(Path(tmp) / "ssh", ensure_test_user()) as session:  # fmt: skip
        workdir = Path(tmp) / "redis"
        workdir.mkdir()
        port = free_port()
        conf = broken_redis_conf(workdir, port)
        host = session.start_sshd(name="demo-redis")
        known_hosts = Path(tmp) / "known_hosts"
        known_hosts.write_text(host.known_hosts_line + "\n")
        with redis_server(conf, port):
            target = DemoTarget(
                host,
                Path(tmp) / "inventory.yaml",
                known_hosts,
                conf,
                port,
                "demo-" + secrets.token_urlsafe(12),
            )
            write_inventory(target.inventory, target, session)
            yield target


def run_demo(playbook: Path, keep: bool) -> int:
    problems = missing_prerequisites()
    if problems:
        print("demo: cannot start the local target: " + "; ".join(problems), file=sys.stderr)
        return 2
    with demo_target() as target:
        argv = [
            "run",
            str(playbook),
            "-i",
            str(target.inventory),
            "--check",
            "--known-hosts",
            str(target.known_hosts),
        ]
        print(
            f"Target: sshd at {target.host.address}:{target.host.port}, redis-server on port "
            f"{target.port} bound to 127.0.0.1 only, no systemd (config {target.conf})."
        )
        print(f"$ redmedic {shlex.join(argv)}\n", flush=True)
        code = redmedic(argv)
        if keep:
            print(f"\nThe target stays up until you press Enter (inventory: {target.inventory}).")
            sys.stdin.readline()
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--playbook", type=Path, default=REPO / "playbooks" / "connection-refused.yaml"
    )
    parser.add_argument("--keep", action="store_true", help="keep the target up to experiment")
    args = parser.parse_args()
    os.environ.pop("SSH_AUTH_SOCK", None)
    try:
        return run_demo(args.playbook, args.keep)
    finally:
        release_test_user()  # the login user is locked again (unless a test run uses it)


if __name__ == "__main__":
    sys.exit(main())
