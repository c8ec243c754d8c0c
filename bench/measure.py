"""Run one command and measure it: wall time, CPU and memory of its whole process tree.

    python bench/measure.py --result OUT.json --stdout LOG -- COMMAND ARGS...

Why a separate process per timed run: `getrusage(RUSAGE_CHILDREN)` only grows (its
`ru_maxrss` is the largest child ever waited for), so a fresh parent per run is the only way
to get per-run numbers from it.

What is measured:
- `wall_s`: from spawning COMMAND to its exit (interpreter start-up and imports included:
  that is what a user waits for).
- `cpu_s`: user + sys of COMMAND and every descendant, from RUSAGE_CHILDREN. This process
  makes itself a *child subreaper* first, so processes that daemonize (Ansible's
  ControlPersist ssh masters) are reparented here instead of to init; once COMMAND exits,
  leftover descendants get SIGTERM (by PID; they are ours), are reaped, and their CPU counts.
- `maxrss_mb`: `ru_maxrss` of RUSAGE_CHILDREN, i.e. the largest single process of the tree.
- `tree_rss_mb`: the largest sum of RSS over the whole tree, sampled at 0.1 s and then every
  0.5 s (pages shared by forked workers count once per process, so it overstates forking
  tools a bit).
- `threads`: the most threads seen in one process of the tree (same samples).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
_SAMPLE_S = 0.5
_REAP_TIMEOUT_S = 20.0
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, rss bytes, threads) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    # fields[0] is the state (field 3 of stat); ppid is field 4, threads 20, rss 24.
    return int(fields[1]), int(fields[21]) * _PAGE, int(fields[17])


class TreeSampler(threading.Thread):
    """Samples the summed RSS of this process's descendants until stopped."""

    def __init__(self) -> None:
        super().__init__(name="tree-sampler", daemon=True)
        self.peak = 0
        self.threads = 0  # most threads seen in one process of the tree
        self._done = threading.Event()
        self._ours: set[int] = {os.getpid()}
        self._foreign: set[int] = set()

    def run(self) -> None:
        wait = 0.1  # a first look soon, for short runs
        while not self._done.wait(wait):
            self.sample()
            wait = _SAMPLE_S

    def sample(self) -> None:
        total = 0
        for name in sorted(os.listdir("/proc"), key=lambda n: (len(n), n)):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid in self._foreign:
                continue
            info = _stat(pid)
            if info is None:
                continue
            ppid, rss, threads = info
            if pid in self._ours or ppid in self._ours:
                self._ours.add(pid)
                if pid != os.getpid():
                    total += rss
                    self.threads = max(self.threads, threads)
            else:
                self._foreign.add(pid)
        self.peak = max(self.peak, total)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5.0)
        with contextlib.suppress(OSError):
            self.sample()


def _children() -> list[int]:
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _stat(int(name))
            if info is not None and info[0] == me:
                found.append(int(name))
    return found


def _reap_leftovers() -> int:
    """SIGTERM descendants still alive (reparented to us), reap them; how many there were."""
    leftovers = _children()
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _REAP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return len(leftovers)
        if pid == 0:
            time.sleep(0.02)
    for pid in _children():  # bounded: give up politely, then by force, by PID
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, 0):
            pass
    return len(leftovers)


def measure(command: list[str], stdout: Path) -> dict[str, float]:
    _become_subreaper()
    sampler = TreeSampler()
    with open(stdout, "wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        sampler.start()
        rc = process.wait()
        wall = time.perf_counter() - start
    sampler.stop()
    leftovers = _reap_leftovers()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rc": rc,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "maxrss_mb": usage.ru_maxrss / 1024.0,
        "tree_rss_mb": sampler.peak / 1024.0 / 1024.0,
        "threads": sampler.threads,
        "leftovers": leftovers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result", required=True, type=Path, help="JSON file to write")
    parser.add_argument("--stdout", required=True, type=Path, help="COMMAND's output (and stderr)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    args.result.write_text(json.dumps(measure(command, args.stdout)))


if __name__ == "__main__":
    main()
