"""Can the running redis-server get the open files maxclients needs without a restart?

Redis needs maxclients + 32 descriptors (`CONFIG_MIN_RESERVED_FDS`). At start, and in
`CONFIG SET maxclients` when the value grows (config.c `updateMaxclients` →
server.c `adjustOpenFilesLimit`), it raises its own soft limit as far as the hard one
allows and lowers maxclients to fit what it got; an unchanged maxclients touches nothing,
so a soft limit lowered at runtime stays low (measured on 7.0.15). A process's limits can
be raised from outside with `prlimit --pid`, under the kernel's rules (kernel/sys.c
`check_prlimit_permission`, `do_prlimit`):

- raising a HARD limit needs CAP_SYS_RESOURCE (bit 24 of CapEff) in the caller; no limit
  may exceed `fs.nr_open`;
- changing another user's process needs CAP_SYS_RESOURCE, or the caller's real uid and
  gid equal to the target's real, effective and saved ones — so without the capability
  prlimit runs as the process's own ids (`setpriv --reuid --regid --clear-groups`), which
  may move the soft limit anywhere up to the hard one.

So: with the capability, soft and hard go to the wanted LimitNOFILE; without it, the
soft limit goes up to the hard one when that is enough for maxclients; otherwise the live
raise is refused with why, and the caller falls back to the drop-in and a restart. Pure:
the facts in (/proc/PID/limits, /proc/PID/status, the caller's CapEff), a decision out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redmedic.redis.diagnosis import RESERVED_DESCRIPTORS
from redmedic.redis.facts import as_int, parse_open_files

CAP_SYS_RESOURCE = 24


def needed_files(maxclients: int) -> int:
    """The open files Redis needs for `maxclients` clients."""
    return maxclients + RESERVED_DESCRIPTORS


def has_capability(status: str, bit: int = CAP_SYS_RESOURCE) -> bool:
    """Whether the `CapEff:` line of a /proc/PID/status text has capability `bit`."""
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)\s*$", status, re.MULTILINE)
    return match is not None and bool(int(match.group(1), 16) >> bit & 1)


def ids(status: str, name: str) -> tuple[int, ...]:
    """The (real, effective, saved, fs) ids of a /proc/PID/status `Uid:` or `Gid:` line."""
    match = re.search(rf"^{name}:\s*([\d\s]+)$", status, re.MULTILINE)
    return tuple(int(i) for i in match.group(1).split()) if match else ()


def shown_limit(value: int | None) -> str:
    """prlimit's and the plan's spelling of a limit (None: unlimited)."""
    return "unlimited" if value is None else str(value)


@dataclass(frozen=True)
class Process:
    """The running redis-server as /proc shows it (limits None: unlimited)."""

    pid: int
    soft: int | None
    hard: int | None
    uids: tuple[int, ...]
    gids: tuple[int, ...]

    @classmethod
    def read(cls, pid: int, limits: str, status: str) -> Process | None:
        """From the `Max open files` line and /proc/PID/status; None when either is missing
        (the process is gone, or /proc hides it)."""
        files = parse_open_files(limits)
        uids, gids = ids(status, "Uid"), ids(status, "Gid")
        if files is None or not uids or not gids:
            return None
        return cls(pid, files["soft"], files["hard"], uids, gids)

    def has(self, files: int) -> bool:
        return self.soft is None or self.soft >= files

    @property
    def own_ids(self) -> tuple[int, int] | None:
        """(uid, gid) a caller must have to change its limits without the capability, or
        None when its real, effective and saved ids differ (no one caller matches them)."""
        if len(set(self.uids[:3])) == 1 and len(set(self.gids[:3])) == 1:
            return self.uids[0], self.gids[0]
        return None


@dataclass(frozen=True)
class Caller:
    """The shell that will run prlimit: its capability, uid and tools."""

    cap_sys_resource: bool
    uid: int | None
    tools: frozenset[str]
    nr_open: int | None

    @classmethod
    def read(cls, status: str, tools: str, nr_open: str) -> Caller:
        uids = ids(status, "Uid")
        found = frozenset(line.rsplit("/", 1)[-1] for line in tools.split() if line)
        return cls(has_capability(status), uids[0] if uids else None, found, as_int(nr_open))

    @property
    def who(self) -> str:
        return "root" if self.uid == 0 else f"uid {self.uid}"


@dataclass(frozen=True)
class Raise:
    """The live raise: `prlimit --pid PID --nofile=SOFT:HARD`, run as `as_ids` (uid, gid)
    or, with `as_ids` None, as the caller itself (it has CAP_SYS_RESOURCE)."""

    soft: int | None
    hard: int | None
    as_ids: tuple[int, int] | None

    @property
    def value(self) -> str:
        return f"{shown_limit(self.soft)}:{shown_limit(self.hard)}"


def live_raise(process: Process, caller: Caller, nofile: int, maxclients: int) -> Raise | str:
    """How to give `process` the files `maxclients` needs now, aiming at `nofile`; or why
    that cannot be done live (a sentence for the plan)."""
    needed = needed_files(maxclients)
    if "prlimit" not in caller.tools:
        return "prlimit (util-linux) is not installed on the host"
    if caller.cap_sys_resource:
        if caller.nr_open is not None and nofile > caller.nr_open:
            return f"LimitNOFILE {nofile} is above the kernel's fs.nr_open ({caller.nr_open})"
        # Never lower a higher (or unlimited) hard limit: only raise.
        return Raise(nofile, None if process.hard is None else max(process.hard, nofile), None)
    soft = nofile if process.hard is None else min(nofile, process.hard)
    if soft < needed:
        return (
            f"raising the hard limit {shown_limit(process.hard)} → {nofile} needs "
            f"CAP_SYS_RESOURCE, which {caller.who} lacks on this host"
        )
    own = process.own_ids
    if own is None:
        return (
            f"redis-server (pid {process.pid}) runs with mixed uids/gids: only "
            f"CAP_SYS_RESOURCE, which {caller.who} lacks, may change its limits"
        )
    if "setpriv" not in caller.tools:
        return "setpriv (util-linux) is not installed: prlimit cannot act as redis's user"
    return Raise(soft, process.hard, own)


def parse_maxclients(answer: str) -> int | None:
    """The value from `redis-cli --raw CONFIG GET maxclients` (None: no such answer)."""
    lines = answer.strip().splitlines()
    if len(lines) == 2 and lines[0].strip() == "maxclients":
        return as_int(lines[1].strip())
    return None
