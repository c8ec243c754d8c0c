"""Diffs shown to the user are exactly `diff -u`'s, also when computed on a window."""

from __future__ import annotations

import difflib
import random
from pathlib import Path

from redmedic.model.plan import unified_diff

CONF = (Path(__file__).resolve().parents[1] / "data" / "redis.conf").read_text()


def reference(before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile="a", tofile="b"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def test_window_diff_equals_difflib_for_edits_anywhere_in_a_real_redis_conf() -> None:
    rng = random.Random(6379)
    lines = CONF.splitlines(keepends=True)
    cases = [(CONF, CONF), ("", "x\n"), ("x\n", ""), ("a\nb\n", "a\nb\nc\n"), ("a\nb", "z\na\nb")]
    for _ in range(200):
        edited = list(lines)
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(edited) + 1)
            kind = rng.choice(["insert", "delete", "replace"])
            if kind == "insert":
                edited.insert(where, f"maxclients {rng.randint(1, 9999)}\n")
            elif edited and where < len(edited):
                if kind == "delete":
                    del edited[where]
                else:
                    edited[where] = "bind 0.0.0.0 -::*\n"
        cases.append((CONF, "".join(edited)))
    for before, after in cases:
        assert unified_diff(before, after, fromfile="a", tofile="b") == reference(before, after)
