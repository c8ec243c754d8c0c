"""`make demo`: a disposable broken Redis host on loopback, and redmedic's dry run against it.

The built-in target is real: an sshd on 127.0.1.N (own host key, strict checking, a login
user that needs a sudo password) and a redis-server started from a copy of Debian's
redis.conf that binds to 127.0.0.1 only — the classic cause of "connection refused" for
every client that is not on the box. The demo prints the command it runs, runs the shipped
triage playbook with --check, and tears everything down (by PID) afterwards.

    python -m tests.support.demo [--playbook playbooks/connection-refused.yaml] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from redmedic.cli import main as redmedic
from tests.support.loopback import SshSession, ensure_test_user, missing_prerequisites
from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
DEBIAN_CONF = Path("/etc/redis/redis.conf")


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


@contextlib.contextmanager
def redis_server(conf: Path, port: int) -> Iterator[int]:
    """Run redis-server from `conf` until the block ends; yields its PID."""
    process = subprocess.Popen(
        ["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
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
        process.wait(timeout=10)


def write_inventory(
    path: Path, host: object, session: SshSession, conf: Path, port: int, pid: int
) -> None:
    user = ensure_test_user()
    restart = f"kill {pid}; redis-server {conf} --daemonize yes"
    path.write_text(
        "# Written by `make demo`: one simulated host, reached over real SSH.\n"
        "all:\n"
        "  hosts:\n"
        "    demo-redis:\n"
        f"      ansible_host: {host.address}\n"  # type: ignore[attr-defined]
        f"      ansible_port: {host.port}\n"  # type: ignore[attr-defined]
        f"      ansible_user: {user.name}\n"
        f"      ansible_ssh_private_key_file: {session.client_key}\n"
        "      ansible_become: true\n"
        f"      ansible_become_password: {user.password}\n"
        f"      redis_conf: {conf}\n"
        f"      redis_port: {port}\n"
        f"      redis_restart_command: {shlex.quote(restart)}\n"
    )


def run_demo(playbook: Path, keep: bool) -> int:
    problems = missing_prerequisites()
    if problems:
        print("demo: cannot start the local target: " + "; ".join(problems), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="redmedic-demo-") as tmp, \
            SshSession(Path(tmp) / "ssh", ensure_test_user()) as session:  # fmt: skip
        workdir = Path(tmp) / "redis"
        workdir.mkdir()
        port = free_port()
        conf = broken_redis_conf(workdir, port)
        host = session.start_sshd(name="demo-redis")
        known_hosts = Path(tmp) / "known_hosts"
        known_hosts.write_text(host.known_hosts_line + "\n")
        with redis_server(conf, port) as pid:
            inventory = Path(tmp) / "inventory.yaml"
            write_inventory(inventory, host, session, conf, port, pid)
            argv = [
                "run",
                str(playbook),
                "-i",
                str(inventory),
                "--check",
                "--known-hosts",
                str(known_hosts),
            ]
            print(
                f"Target: sshd at {host.address}:{host.port}, redis-server on port {port} "
                f"bound to 127.0.0.1 only (config {conf})."
            )
            print(f"$ redmedic {shlex.join(argv)}\n", flush=True)
            code = redmedic(argv)
            if keep:
                print(f"\nThe target stays up until you press Enter (inventory: {inventory}).")
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
    return run_demo(args.playbook, args.keep)


if __name__ == "__main__":
    sys.exit(main())
