"""What restarting a Redis costs, read from its INFO, and when a restart must be refused.

A restart drops every connected client, makes Redis load its dataset again (minutes for a
large one), and loses the data outright when nothing persists it. So a plan that restarts
says what it costs, from the host's own numbers (`RestartCost.summary`), and the restart is
refused — before anything changes — when keys exist and neither RDB save points nor AOF
keep them, unless the user allows the loss by name (`ALLOW_DATA_LOSS_VAR`). With RDB on, the
restart is preceded by a completed BGSAVE newer than the last write (`needs_bgsave`); a
primary with connected replicas is flagged so it can be gated on its own.

The INFO mapping is `redmedic.redis.facts.parse_info`'s: sections `clients`, `memory`,
`persistence`, `replication`, `keyspace` (each a field -> value mapping).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ALLOW_DATA_LOSS_VAR = "redis_allow_data_loss"


def keyspace_counts(keyspace: Mapping[str, Any]) -> tuple[int, int]:
    """(keys, keys with a TTL) over every db of INFO keyspace ("db0": "keys=5,expires=1,...")."""
    keys = expires = 0
    for value in keyspace.values():
        fields = dict(part.split("=", 1) for part in str(value).split(",") if "=" in part)
        keys += int(fields.get("keys", 0))
        expires += int(fields.get("expires", 0))
    return keys, expires


def _int(section: Mapping[str, Any], name: str) -> int:
    value = section.get(name, 0)
    return value if isinstance(value, int) else 0


@dataclass(frozen=True)
class RestartCost:
    """The numbers a restart decision needs, as the running server reported them."""

    clients: int
    keys: int
    expires: int
    dataset_bytes: int
    rdb_save_points: bool  # `save` has at least one point: a BGSAVE keeps the data
    aof: bool
    changes_since_save: int
    last_bgsave_ok: bool
    role: str
    replicas: int

    @classmethod
    def from_info(cls, info: Mapping[str, Any], save: str | None) -> RestartCost:
        """From parsed INFO and the running `save` value (CONFIG GET save; "" = no RDB)."""
        persistence = info.get("persistence") or {}
        replication = info.get("replication") or {}
        memory = info.get("memory") or {}
        keys, expires = keyspace_counts(info.get("keyspace") or {})
        return cls(
            # INFO counts the connection that asked for it: not a client the restart drops
            clients=max(0, _int(info.get("clients") or {}, "connected_clients") - 1),
            keys=keys,
            expires=expires,
            dataset_bytes=_int(memory, "used_memory_dataset") or _int(memory, "used_memory"),
            rdb_save_points=bool((save or "").strip()),
            aof=_int(persistence, "aof_enabled") == 1,
            changes_since_save=_int(persistence, "rdb_changes_since_last_save"),
            last_bgsave_ok=persistence.get("rdb_last_bgsave_status", "ok") == "ok",
            role=str(replication.get("role") or "master"),
            replicas=_int(replication, "connected_slaves"),
        )

    @property
    def persistent(self) -> bool:
        return self.rdb_save_points or self.aof

    @property
    def needs_bgsave(self) -> bool:
        """Save first: RDB is the only persistence and something was written since."""
        return self.rdb_save_points and not self.aof and self.keys > 0

    @property
    def primary_with_replicas(self) -> bool:
        return self.role == "master" and self.replicas > 0

    def summary(self) -> str:
        """One line for the plan: what the restart drops and how the data comes back."""
        fate = "reloaded" if self.persistent else "LOST"
        parts = [
            f"drops {self.clients} connected client{'s' if self.clients != 1 else ''}",
            f"{self.keys} keys ({_size(self.dataset_bytes)}) {fate}",
        ]
        if self.aof:
            parts.append("AOF on")
        elif self.rdb_save_points:
            saved = "BGSAVE first" if self.needs_bgsave else "nothing to save"
            parts.append(f"RDB ({self.changes_since_save} changes since the last save; {saved})")
        else:
            parts.append("persistence OFF")
        if self.primary_with_replicas:
            parts.append(f"primary with {self.replicas} connected replicas")
        return ", ".join(parts)

    def refusal(self, allow_data_loss: bool) -> str | None:
        """Why the restart must not happen (one line naming the variable that allows it)."""
        if self.persistent or self.keys == 0 or allow_data_loss:
            return None
        return (
            f"a restart would lose all {self.keys} keys ({_size(self.dataset_bytes)}): "
            "persistence is off (no `save` points, no AOF) — enable persistence first, or "
            f"set {ALLOW_DATA_LOSS_VAR}=true to accept the loss"
        )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"
