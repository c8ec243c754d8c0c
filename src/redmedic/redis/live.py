"""What a running Redis takes without a restart, by version, read from Redis's own sources.

Why a table by version: whether `CONFIG SET` accepts a directive is decided by the server's
`src/config.c` (MODIFIABLE_CONFIG vs IMMUTABLE_CONFIG, or a special case), and that changed
over the releases. A fix that sets a value live where the server allows it keeps every
connected client and the dataset; where it does not, the change needs a restart, and the plan
must say so and why. The versions below are the first release whose config.c makes the
directive settable (checked in redis/redis at the tags 6.0.16, 6.2.0, 6.2.1, 7.0.15):

- `bind`, `port`, `tls-port`: IMMUTABLE up to 6.2.0, MODIFIABLE from 6.2.1 ("Make port,
  tls-port and bind configurations modifiable", redis/redis#8510);
- `requirepass`, `maxmemory`, `maxmemory-policy`: settable since 2.x (CONFIG SET's first
  releases), `maxclients` since 2.6, `protected-mode` since it exists (3.2.0);
- a directive not listed here is treated as needing a restart: claiming "live" for a
  value Redis would refuse would leave the running server on the old one.

`bind` syntax (server.c listenToPort): 7.0 added optional addresses (`-::1`: skipped when
the interface is missing) and the `*`/`::*` wildcards. Redis 6 takes each word as an
address to resolve and stops at the first that fails ("Could not create server TCP
listening socket -::*:6379: Name or service not known"), so `bind 0.0.0.0 -::*` — right
on 7.0 — keeps a 6.0 server from starting; `any_address_bind` gives each version's form.

Protected mode (networking.c): before 7.0 it refuses a non-loopback client only when no
`bind` is configured (`server.bindaddr_count == 0`) and the default user has no password;
from 7.0 the bind condition is gone, so `protected-mode yes` without a password refuses
every remote client whatever `bind` says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from redmedic.redis.redisconf import MULTI_ARG, memory_bytes

Version = tuple[int, int, int]

LIVE_SINCE: dict[str, Version] = {
    "bind": (6, 2, 1),
    "port": (6, 2, 1),
    "tls-port": (6, 2, 1),
    "requirepass": (2, 0, 0),
    "maxmemory": (2, 0, 0),
    "maxmemory-policy": (2, 0, 0),
    "maxclients": (2, 6, 0),
    "protected-mode": (3, 2, 0),
}

PROTECTED_MODE_IGNORES_BIND: Version = (7, 0, 0)
BIND_WILDCARDS_SINCE: Version = (7, 0, 0)

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None) -> Version | None:
    """`redis_version` from INFO ("7.0.15") as a tuple; None when it is not a version."""
    match = _VERSION.match(str(text or ""))
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def shown_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


def restart_reason(directive: str, version: Version | None) -> str | None:
    """None when the running Redis of `version` takes `directive` with CONFIG SET; else why
    the change needs a restart (a sentence for the plan: "needs a restart: <this>")."""
    name = directive.lower()
    if version is None:
        return "the running Redis's version is unknown (is it running?)"
    since = LIVE_SINCE.get(name)
    if since is None:
        return f"redmedic does not set `{name}` live"
    if version < since:
        return (
            f"Redis {shown_version(version)} cannot change `{name}` while running "
            f"(CONFIG SET takes it from {shown_version(since)})"
        )
    return None


def protected_mode_refuses_remote(
    version: Version | None, *, protected_mode: bool, has_password: bool, bind_set: bool
) -> bool:
    """Would this configuration answer a remote client with DENIED (see the module docstring)?

    `has_password`: the default user needs one (`requirepass`, or an ACL password);
    `bind_set`: a `bind` directive is in force. An unknown version is taken as 7.0 or later:
    it is the stricter rule, so a hidden cause is named rather than missed.
    """
    if not protected_mode or has_password:
        return False
    if version is not None and version < PROTECTED_MODE_IGNORES_BIND:
        return not bind_set
    return True


def any_address_bind(version: Version | None) -> str:
    """`bind` for "every address": IPv4 and, where the host has it, IPv6 on 7.0 and later;
    IPv4 only before (a 6.x `::` would stop the server on a host without IPv6)."""
    if version is not None and version < BIND_WILDCARDS_SINCE:
        return "0.0.0.0"
    return "0.0.0.0 -::*"


def bind_refusal(addresses: list[str], version: Version | None) -> str | None:
    """Why Redis `version` would not start with `bind ADDRESSES`; None when it would."""
    if version is None or version >= BIND_WILDCARDS_SINCE:
        return None
    unknown = [a for a in addresses if a.startswith("-") or a in ("*", "::*")]
    if not unknown:
        return None
    return (
        f"Redis {shown_version(version)} does not understand `bind {' '.join(unknown)}` "
        f"(optional `-` addresses and `*` wildcards came in 7.0) and would not start: "
        f"use plain addresses, e.g. `{any_address_bind(version)}`"
    )


_NUMBERS = frozenset({"port", "tls-port", "maxclients", "maxmemory"})


def running_form(name: str, args: Sequence[str]) -> str:
    """A redis.conf value as CONFIG GET prints it once it runs: what the both-layer check
    compares with. Sizes in bytes (`100mb` runs as `104857600`), yes/no and policy names
    in lower case, several words (bind) joined by one space; anything else as written."""
    value = " ".join(" ".join(args).split() if name in MULTI_ARG else args)
    if name in _NUMBERS and memory_bytes(value) is not None:
        return str(memory_bytes(value))
    if name in ("protected-mode", "maxmemory-policy"):
        return value.lower()
    return value


RESERVED_FDS = 32  # CONFIG_MIN_RESERVED_FDS: files Redis keeps for itself beyond its clients


def maxclients_reason(maxclients: str, open_files: int | None) -> str | None:
    """Why CONFIG SET maxclients would be refused (None: it is taken). Redis raises its own
    soft limit as far as the hard one; beyond it, it answers "The operating system is not
    able to handle the specified number of clients". `open_files`: the process's hard
    limit, None when unlimited or unknown."""
    if open_files is None or not maxclients.isdigit():
        return None
    if int(maxclients) + RESERVED_FDS <= open_files:
        return None
    return (
        f"the running process may open {open_files} files and maxclients {maxclients} needs "
        f"{int(maxclients) + RESERVED_FDS}: its open-file limit changes when it starts"
    )
