"""Profile one redmedic `run --check` of the benchmark workload on K simulated hosts.

    .venv/bin/python bench/profile_run.py --hosts 50 [--triage] [--out DIR]

Starts K hosts like bench/run.py (with `--triage`: each with the demo's broken Redis, and
the run is the shipped triage, as `bench/run.py --tools triage`), runs redmedic once
untimed (warm caches), then twice more:

1. under py-spy (bench/.venv): a speedscope flame graph of every thread, for people
   (https://www.speedscope.app). Not summarised here: py-spy's idle detection and its
   `--gil` mode misattribute time in a process whose threads mostly wait on sockets
   (`--gil` blames the *last* GIL holder while nobody holds it);
2. in-process under cProfile with one profiler per thread, timed with `time.thread_time`,
   so each function's numbers are CPU seconds of the thread that ran it (waiting costs
   nothing): self CPU grouped by category, plus call counts. cProfile inflates Python
   function calls (~2x), so trust ratios and counts more than absolute seconds.

Prints the summary; raw files (flame graph, merged pstats) stay in DIR.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import io
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/ is not a package: its directory is on sys.path

# Where self CPU time goes, by the file a function lives in (first match wins). Built-ins
# (C functions: socket calls, hashing, regex engine...) count for their caller's file.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("connection: known_hosts parse + match", ("redmedic/connection/hostkeys.py",)),
    ("connection: channels, commands, files", ("redmedic/connection/",)),
    (
        "paramiko: key exchange, auth, keys",
        (
            "paramiko/kex",
            "paramiko/auth",
            "paramiko/pkey",
            "paramiko/ed25519",
            "paramiko/rsakey",
            "paramiko/agent",
            "paramiko/hostkeys",
        ),
    ),
    (
        "paramiko: channels",
        ("paramiko/channel.py", "paramiko/buffered_pipe.py", "paramiko/pipe.py"),
    ),
    ("paramiko: transport thread (packets, crypto)", ("paramiko/", "cryptography/")),
    ("secrets: directive scans, masking", ("redmedic/secrets.py",)),
    ("diff: difflib", ("difflib.py", "redmedic/plan.py")),
    ("plan file", ("redmedic/planfile.py",)),
    ("report: rich", ("rich/", "redmedic/report/")),
    ("templating: jinja2", ("jinja2/", "markupsafe/", "redmedic/templating.py")),
    ("step args: pydantic", ("pydantic",)),
    ("steps", ("redmedic/steps/",)),
    ("executor, fleet", ("redmedic/executor.py", "redmedic/fleet.py")),
    (
        "inventory, playbook, YAML",
        ("redmedic/inventory/", "redmedic/playbook.py", "redmedic/yamlsource.py", "yaml/"),
    ),
    ("threads, queues, locks", ("threading.py", "concurrent/", "queue.py")),
    ("regex (re)", ("re/", "sre_")),
)


def _category(filename: str) -> str:
    for name, markers in CATEGORIES:
        if any(marker in filename for marker in markers):
            return name
    return "other"


def cpu_by_category(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Self CPU per category; a built-in's time goes to its callers' categories."""
    totals: collections.defaultdict[str, float] = collections.defaultdict(float)
    table = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, self_time, _, callers) in table.items():
        if filename != "~":
            totals[_category(filename)] += self_time
            continue
        shares = {c: v[2] for c, v in callers.items()}
        whole = sum(shares.values())
        if not whole:
            totals["other"] += self_time
            continue
        for (caller_file, _, _), share in shares.items():
            totals[_category(caller_file)] += self_time * share / whole
    return sorted(totals.items(), key=lambda item: -item[1])


def profile_in_process(argv: list[str], out: Path) -> pstats.Stats:
    """Run redmedic's CLI here with a cProfile per thread; return the merged stats."""
    from redmedic.cli import main  # imported here: the profile excludes import time

    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start(frame: object, event: str, arg: object) -> None:
        profiler = cProfile.Profile(time.thread_time)
        with lock:
            profilers.append(profiler)
        profiler.enable()  # replaces this hook for the rest of the thread

    threading.setprofile(start)
    main_profiler = cProfile.Profile(time.thread_time)
    main_profiler.enable()
    try:
        stdout = sys.stdout
        sys.stdout = io.StringIO()
        try:
            main(argv)
        finally:
            sys.stdout = stdout
    finally:
        main_profiler.disable()
        threading.setprofile(None)
    stats = pstats.Stats(main_profiler)
    for profiler in profilers:
        profiler.create_stats()
        stats.add(profiler)
    stats.dump_stats(str(out))
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None, help="keep raw profiles here")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--snapshot", action="store_true", help="profile redmedic as committed at HEAD"
    )
    parser.add_argument(
        "--triage", action="store_true", help="profile the shipped triage, not the workload"
    )
    args = parser.parse_args()
    py_spy = bench.BENCH_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        bench.build_bench_venv()
    bench.become_subreaper()
    bench._raise_nofile_limit()
    out = args.out or Path(tempfile.mkdtemp(prefix="redmedic-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    workload = bench.Workload.load()
    root = Path(tempfile.mkdtemp(prefix="redmedic-bench-"))
    root.chmod(0o755)
    try:
        with bench.running_fleet(args.hosts, root) as fleet, contextlib.ExitStack() as stack:
            if args.triage:
                bench.with_triage_redis(fleet, stack)
            inputs = bench.write_inputs(fleet, args.hosts, workload)
            home = root / "home"
            home.mkdir()
            env = bench.tool_env(home)
            print(bench.source_state(args.snapshot))
            if args.snapshot:
                source = bench.snapshot_source(root / "snapshot")
                env["PYTHONPATH"] = str(source)
                sys.path.insert(0, str(source))  # for the in-process cProfile run
            playbook, inventory = (
                (bench.TRIAGE, inputs.dir / "triage-inventory.yaml")
                if args.triage
                else (bench.WORKLOAD, inputs.inventory)
            )
            cli_args = [
                "run",
                str(playbook),
                "-i",
                str(inventory),
                "--check",
                "--known-hosts",
                str(fleet.known_hosts),
                "-f",
                str(args.forks),
            ]
            command = [str(bench.REDMEDIC), *cli_args]
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)  # warm
            raw = out / f"py-spy-k{args.hosts}.speedscope.json"
            started = time.perf_counter()
            subprocess.run(
                [
                    str(py_spy),
                    "record",
                    "--threads",
                    "--format",
                    "speedscope",
                    "--rate",
                    str(args.rate),
                    "-o",
                    str(raw),
                    "--",
                    *command,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            spy_wall = time.perf_counter() - started
            saved = dict(os.environ)
            os.environ.clear()
            os.environ.update(env)
            try:
                stats = profile_in_process(cli_args, out / f"cprofile-k{args.hosts}.pstats")
            finally:
                os.environ.clear()
                os.environ.update(saved)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    hosts = args.hosts
    rows = cpu_by_category(stats)
    total = sum(seconds for _, seconds in rows)
    print(f"## Thread CPU by category, K={hosts} (cProfile, one profiler per thread)\n")
    print(f"Wall under py-spy {spy_wall:.1f} s; flame graph: {raw}\n")
    print("| share | CPU s | ms per host | where (self time; built-ins count for their caller) |")
    print("|--:|--:|--:|---|")
    for name, seconds in rows:
        share, per_host = 100 * seconds / total, 1000 * seconds / hosts
        print(f"| {share:.1f}% | {seconds:.2f} | {per_host:.1f} | {name} |")
    print(f"| 100% | {total:.2f} | {1000 * total / hosts:.1f} | total |")
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(r"redmedic/", 40)
    print(re.sub(r"\n{3,}", "\n\n", buffer.getvalue()))
    print(f"raw profiles in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
