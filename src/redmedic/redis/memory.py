"""Can Redis take writes at its memory limit, and which `maxmemory` would let it: sized from
what the host has.

Why a policy change is not always the fix: Redis counts its own memory against `maxmemory`
(client buffers, the replication backlog, its dictionaries: INFO's `used_memory_overhead`),
and eviction frees keys only: `allkeys-*` any key, `volatile-*` only keys with a TTL,
`noeviction` none. When what eviction cannot free fills the limit, writes fail with OOM
whatever the policy says. Such a host even passes a check right after a restart (its
buffers are small then) and fails again on the next run. So the triage asks, for the
policy the fix leaves in place: after evicting everything it may, is at least a quarter of
`maxmemory` left for data (`holds`)? If not, it sizes a new limit (`size`): room to double
what eviction cannot free, at least `MIN_MAXMEMORY`, and never more than Redis's memory
now plus half of the RAM still available (the rest stays for the system, other processes
and the copy-on-write of background saves). When even the least limit that holds does not
fit there, nothing is sized: the host needs RAM, fewer keys or an operator's decision.

Raising maxclients grows that overhead too: Redis sizes its event loop for maxclients + 128
descriptors (`aeCreateEventLoop(server.maxclients+CONFIG_FDSET_INCR)` in server.c, resized
by `CONFIG SET maxclients`), an `aeFileEvent` (32 bytes) and an `aeFiredEvent` (8 bytes) per
slot, all counted in used_memory: from maxclients 3 to 10000 that is ~0.4 MiB more, enough to
turn a limit that held into one that does not. So the judgement takes the maxclients the
fixes leave.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redmedic.redis.facts import as_int
from redmedic.redis.restart_guard import keyspace_counts

MIB = 1024 * 1024
MIN_MAXMEMORY = 64 * MIB  # a sized limit is never smaller: a cache of a few MiB is no cache
EVENT_SLOT_BYTES = 40  # per maxclients slot: aeFileEvent + aeFiredEvent (ae.h, 64-bit)


@dataclass(frozen=True)
class MemoryState:
    """INFO memory and keyspace, and the host's RAM (`free -b`), in bytes."""

    used: int
    overhead: int
    maxmemory: int  # 0: no limit
    policy: str
    keys: int = 0
    expires: int = 0  # keys with a TTL
    available_ram: int | None = None
    maxclients: int | None = None  # the running server's

    @property
    def dataset(self) -> int:
        return max(0, self.used - self.overhead)


def memory_state(info: Mapping[str, Any], ram: Mapping[str, Any]) -> MemoryState | None:
    """The state from a `redis_facts` result's `info` and `memory`; None without INFO memory."""
    memory = info.get("memory")
    if not isinstance(memory, Mapping):
        return None
    used = as_int(memory.get("used_memory"))
    if used is None:
        return None
    keyspace = info.get("keyspace")
    keys, expires = keyspace_counts(keyspace if isinstance(keyspace, Mapping) else {})
    return MemoryState(
        used=used,
        overhead=as_int(memory.get("used_memory_overhead")) or 0,
        maxmemory=as_int(memory.get("maxmemory")) or 0,
        policy=str(memory.get("maxmemory_policy") or "noeviction"),
        keys=keys,
        expires=expires,
        available_ram=as_int(ram.get("available")),
        maxclients=as_int((info.get("clients") or {}).get("maxclients")),
    )


def evicts(policy: str) -> bool:
    return policy.startswith(("allkeys-", "volatile-"))


def unevictable(state: MemoryState, policy: str, maxclients: int | None = None) -> int:
    """The memory Redis still uses after `policy` has evicted every key it may, with
    `maxclients` (default: the running one) sizing its event loop."""
    if policy.startswith("allkeys-"):
        share = 1.0
    elif policy.startswith("volatile-") and state.keys:
        share = state.expires / state.keys  # the dataset's part in keys with a TTL, roughly
    else:
        share = 0.0
    grown = 0
    if maxclients is not None and state.maxclients is not None:
        grown = max(0, maxclients - state.maxclients) * EVENT_SLOT_BYTES
    return state.used - int(state.dataset * share) + grown


def least_maxmemory(state: MemoryState, policy: str, maxclients: int | None = None) -> int:
    """The smallest limit that leaves a quarter of itself for data under `policy`."""
    return -(-unevictable(state, policy, maxclients) * 4 // 3)


def holds(state: MemoryState, policy: str, maxclients: int | None = None) -> bool:
    """Writes keep working under `policy` at the current limit (or there is no limit)."""
    return not state.maxmemory or state.maxmemory >= least_maxmemory(state, policy, maxclients)


@dataclass(frozen=True)
class Sizing:
    """What `maxmemory` must become for writes to hold under `policy`, and what fits."""

    policy: str
    unevictable: int
    least: int  # the least limit that holds
    ceiling: int | None  # the most this host can give Redis; None: RAM unknown
    maxmemory: int | None  # the limit to set (whole MiB); None: it does not fit

    def shown(self) -> str | None:
        """The limit as redis.conf takes it (`96mb`), None when it does not fit."""
        return f"{self.maxmemory // MIB}mb" if self.maxmemory is not None else None

    def evidence(self, state: MemoryState) -> list[str]:
        lines = [
            f"{self.policy} leaves {mib(self.unevictable)} that eviction cannot free "
            f"(used_memory {mib(state.used)}, used_memory_overhead {mib(state.overhead)}, "
            f"{state.keys} keys, {state.expires} with a TTL): writes need maxmemory "
            f">= {mib(self.least)}, it is {mib(state.maxmemory)}"
        ]
        if self.ceiling is not None and state.available_ram is not None:
            lines.append(
                f"free -b: {mib(state.available_ram)} available: Redis may have at most "
                f"{mib(self.ceiling)} (its {mib(state.used)} + half of that)"
            )
        return lines


def size(state: MemoryState, policy: str, maxclients: int | None = None) -> Sizing | None:
    """The new limit for `policy` (and `maxclients`), or None when the current one holds."""
    if holds(state, policy, maxclients):
        return None
    floor = unevictable(state, policy, maxclients)
    least = least_maxmemory(state, policy, maxclients)
    if state.available_ram is None:
        return Sizing(policy, floor, least, None, None)
    ceiling = state.used + state.available_ram // 2
    wanted = -(-max(2 * floor, MIN_MAXMEMORY, least) // MIB) * MIB
    chosen = min(wanted, ceiling // MIB * MIB)
    return Sizing(policy, floor, least, ceiling, chosen if chosen >= least else None)


def mib(value: int) -> str:
    """Bytes as MiB for evidence lines (one decimal below 10 MiB)."""
    shown = value / MIB
    return f"{shown:.1f} MiB" if shown < 10 else f"{shown:.0f} MiB"
