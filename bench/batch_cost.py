"""What one host spends on the workload's remote part: redmedic's batch vs the floor's script.

    .venv/bin/python bench/batch_cost.py [--runs 300]

Starts one simulated host (as bench/run.py does), opens one redmedic SSH connection to it
and, over that one connection, runs the workload's 8 commands and the read of redis.conf
`--runs` times in each of these ways, interleaved in two rounds:

- the 1-exec floor's script (bench/floor.py), sent as one command;
- `Connection.run_many` with the file read as one more command of the batch (what the
  executor does since the fix steps' reads joined the diagnose batch);
- `run_many` of the commands, then `read_file` (two round trips, as before that).

Prints, per way and round, the host's CPU (the sshd daemon and everything under it), the
control side's CPU (this process) and the wall time, each per run. Connecting is left out:
every tool pays it alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import floor  # noqa: E402  (bench/ is not a package)
import run as bench  # noqa: E402

from redmedic.connection import ConnectOptions, connect  # noqa: E402
from redmedic.connection.base import CommandResult  # noqa: E402
from redmedic.connection.scripts import read_script  # noqa: E402
from redmedic.model.inventory import Host  # noqa: E402


def _tree_cpu_s(root: int) -> float:
    """CPU of `root` and all its live descendants, with their waited-for children.

    The daemon's own /proc counters only grow when a connection ends; ours stays open, so
    its session processes (which wait for the shells and commands) are counted directly.
    """
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                raw = Path(f"/proc/{name}/stat").read_bytes()
                parents[int(name)] = int(raw[raw.rfind(b")") + 2 :].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(bench._tree_ticks(pid) for pid in tree) / bench.CLK_TCK


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="runs per way and round")
    args = parser.parse_args()
    bench.become_subreaper()
    with tempfile.TemporaryDirectory(prefix="redmedic-batch-") as scratch:
        Path(scratch).chmod(0o755)  # the login user reads its redis.conf copy below it
        measure(Path(scratch), args.runs)
    return 0


def measure(scratch: Path, runs: int) -> None:
    """Start the host, connect once, time each way (see the module docstring)."""
    workload = bench.Workload.load()
    with bench.running_fleet(1, scratch) as fleet:
        (target,) = fleet.hosts
        daemon = target.sshd.pid
        conf = str(target.conf)
        commands = workload.commands_for(conf)
        host = Host(
            target.name,
            target.sshd.address,
            port=target.sshd.port,
            user=fleet.user.name,
            private_key_file=str(fleet.session.client_key),
        )
        options = ConnectOptions(known_hosts_files=(str(fleet.known_hosts),))
        with connect(host, options) as conn:
            script = floor._one_script(commands, conf)
            ways: dict[str, Callable[[], object]] = {
                "floor: one script": lambda: check([conn.run(script)]),
                "run_many: commands + file read": lambda: check(
                    conn.run_many([*commands, read_script(conf)])
                ),
                "run_many, then read_file": lambda: (
                    check(conn.run_many(commands)),
                    conn.read_file(conf),
                ),
            }
            print(f"| round | way | host CPU ms | control CPU ms | wall ms |  ({runs} runs)")
            print("|--:|---|--:|--:|--:|")
            for round_ in (1, 2):
                for name, way in ways.items():
                    way()  # warm
                    host0, own0, wall0 = _tree_cpu_s(daemon), _own_cpu_s(), time.perf_counter()
                    for _ in range(runs):
                        way()
                    host1, own1, wall1 = _tree_cpu_s(daemon), _own_cpu_s(), time.perf_counter()
                    per = 1000 / runs
                    print(
                        f"| {round_} | {name} | {(host1 - host0) * per:.2f} | "
                        f"{(own1 - own0) * per:.2f} | {(wall1 - wall0) * per:.2f} |"
                    )


def check(results: list[CommandResult]) -> None:
    """Every command must succeed, or the numbers would time an error path."""
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"`{failed[0].command[:60]}` failed: {failed[0].tail()}")


if __name__ == "__main__":
    sys.exit(main())
