"""Prototype of a faster executor: the benchmark job on redmedic's own library pieces.

    python bench/prototype.py JOB.json --trips steps|batched|onetrip --python today|fast

Not a product: it measures what proposed executor changes would gain before anyone makes
them. Per host, on a thread pool, it does what `redmedic run --check` does for the workload:
connect (SSHConnection: strict host keys, TCP_NODELAY), run the 8 diagnose commands, read
redis.conf, plan the file_line edit (`edit_lines`), learn the file's secrets, build the diff
and print it with rich under one lock, like the console reporter. What varies:

--trips steps     one channel per command, and read_file twice (diagnose, then plan): today
--trips batched   Connection.run_many for the 8 commands, read_file once: 2 round trips
--trips onetrip   the 8 commands and the file read in one run_many: 1 round trip
--python today    directive_secrets over the whole before and after text; diff built twice
--python fast     secret scan only on lines that can hold a directive; diff built once, on
                  the changed window (common head/tail trimmed before difflib)

The fast paths are checked against the slow ones on the first host (same secrets, same
diff); bench/run.py checks every host's diff line.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.console import Console
from rich.text import Text

from redmedic.connection import ConnectOptions, SSHConnection
from redmedic.connection.base import RemoteFile
from redmedic.connection.scripts import parse_stat_line, read_script
from redmedic.errors import RedmedicError
from redmedic.model.inventory import Host
from redmedic.model.plan import FileChange
from redmedic.report.console import diff_text
from redmedic.safety.secrets import directive_secrets
from redmedic.steps.file_line import FileLineArgs, edit_lines

_KEYWORDS = ("requirepass", "masterauth", "redis-cli")


def fast_directive_secrets(text: str) -> list[str]:
    """directive_secrets on the only lines that can hold one (each spot needs a keyword)."""
    lowered = text.lower()
    if not any(word in lowered for word in _KEYWORDS):
        return []
    lines = [ln for ln in text.splitlines() if any(w in ln.lower() for w in _KEYWORDS)]
    return directive_secrets("\n".join(lines))


def window_diff(path: str, before: str, after: str, context: int = 3) -> str:
    """FileChange.diff's text, with difflib run only on the lines that differ (± context)."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    start = max(0, head - context)
    a_end, b_end = len(a) - max(0, tail - context), len(b) - max(0, tail - context)
    lines = difflib.unified_diff(a[start:a_end], b[start:b_end], fromfile=path, tofile=path)

    def shift(match: re.Match[str]) -> str:  # window line numbers -> file line numbers
        old, new = int(match.group(1)) + start, int(match.group(3)) + start
        return f"@@ -{old}{match.group(2) or ''} +{new}{match.group(4) or ''} @@"

    out = []
    for line in lines:
        if line.startswith("@@"):
            line = re.sub(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@", shift, line)
        out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out)


def parse_read(out: str, path: str) -> RemoteFile | None:
    """read_file's parsing, for a read script that ran inside a batch."""
    raw = out.encode("utf-8", "surrogateescape")
    marker, _, rest = raw.partition(b"\n")
    if marker == b"redmedic:absent":
        return None
    stat_line, _, content = rest.partition(b"\n")
    mode, owner, group = parse_stat_line(stat_line.decode())
    return RemoteFile(path, content, mode, owner, group)


class Prototype:
    def __init__(self, job: dict[str, Any], trips: str, python: str) -> None:
        self.job = job
        self.trips = trips
        self.python = python
        self.options = ConnectOptions(known_hosts_files=(job["known_hosts"],))
        self.args = FileLineArgs(
            path="/placeholder", regexp=job["edit"]["regexp"], line=job["edit"]["line"]
        )
        self.console = Console(highlight=False)
        self.lock = threading.Lock()
        self.unchecked = True

    def host(self, spec: dict[str, Any]) -> str:
        host = Host(
            name=spec["name"],
            address=spec["address"],
            port=spec["port"],
            user=spec["user"],
            private_key_file=self.job["key"],
        )
        conf = spec["conf"]
        with SSHConnection.open(host, self.options) as conn:
            if self.trips == "steps":
                results = [conn.run(command) for command in spec["commands"]]
                conn.read_file(conf)  # diagnose reads it, plan reads it again
                current = conn.read_file(conf)
            elif self.trips == "batched":
                results = conn.run_many(spec["commands"])
                current = conn.read_file(conf)
            else:
                *results, read = conn.run_many([*spec["commands"], read_script(conf)])
                current = parse_read(read.stdout, conf)
        if any(r.rc for r in results) or current is None:
            return f"{spec['name']}: a command failed"
        before = current.content.decode("utf-8", "surrogateescape")
        after = edit_lines(before, self.args).encode("utf-8", "surrogateescape")
        change = FileChange(conf, current, after, become=False)
        if self.python == "today":
            secrets = directive_secrets(before) + directive_secrets(after.decode())
            diff = change.diff()
            change.diff()  # the executor builds it again for the plan record
        else:
            secrets = fast_directive_secrets(before) + fast_directive_secrets(after.decode())
            diff = window_diff(conf, before, after.decode())
            with self.lock:
                check, self.unchecked = self.unchecked, False
            if check and (  # once per run: the check costs what the fast path saves
                diff != change.diff()
                or secrets != directive_secrets(before) + directive_secrets(after.decode())
            ):
                return f"{spec['name']}: fast path differs from the slow one"
        with self.lock:
            self.console.print(
                Text.assemble((f"~ {spec['name']} › edit:", "cyan"), f" would edit {conf}", "\n"),
                diff_text(diff),
                soft_wrap=True,
            )
        return ""

    def checked(self, spec: dict[str, Any]) -> str:
        try:
            return self.host(spec)
        except RedmedicError as exc:
            return f"{spec['name']}: {exc}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job")
    parser.add_argument("--trips", choices=("steps", "batched", "onetrip"), default="steps")
    parser.add_argument("--python", choices=("today", "fast"), default="today")
    parser.add_argument("--forks", type=int, default=50)
    args = parser.parse_args()
    with open(args.job) as handle:
        job = json.load(handle)
    proto = Prototype(job, args.trips, args.python)
    with ThreadPoolExecutor(max_workers=max(1, min(args.forks, len(job["hosts"])))) as pool:
        problems = [p for p in pool.map(proto.checked, job["hosts"]) if p]
    for problem in problems:
        print(problem)
    print(f"{len(job['hosts']) - len(problems)} ok, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
